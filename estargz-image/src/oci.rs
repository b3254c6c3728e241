//! The OCI documents this crate reads and rewrites, as serde structs that
//! keep every field they do not name (`extra`), so rewriting a document
//! loses nothing: platform, urls, artifactType, subject, annotations.

use crate::error::{Error, Result};
use estargz_core::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker manifest list (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI non-distributable gzip layer, what Docker's foreign layers become.
pub const MEDIA_TYPE_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Annotation naming a tag in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// `sha256:<hex>`, as written (validated with [`parse_digest`] before use).
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// Annotations, kept as they are except on converted layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Every other field (platform, urls, artifactType, data, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image index (or Docker manifest list, or an OCI layout's index.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type, when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (and nested indexes) it lists.
    pub manifests: Vec<Descriptor>,
    /// Every other field (annotations, subject, artifactType, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// Every other field (annotations, subject, artifactType, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a descriptor's media type makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An index or manifest list: walk its children.
    Index,
    /// An image manifest: convert its layers.
    Manifest,
    /// Anything else: copy it as it is.
    Other,
}

/// Classifies a descriptor by its media type.
pub fn kind_of(media_type: &str) -> Kind {
    match media_type {
        MEDIA_TYPE_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        MEDIA_TYPE_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        _ => Kind::Other,
    }
}

/// What to do with a layer, by media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// A tar, plain or gzip: the converter takes either.
    Convertible,
    /// A zstd tar: decompressed, then converted like the others.
    Zstd,
    /// Non-distributable (foreign) layers: their blobs may legitimately be absent.
    NonDistributable,
    /// Not a filesystem layer at all (attestations, signatures, artifacts).
    Other,
}

/// Classifies a layer by its media type.
pub fn layer_kind(media_type: &str) -> LayerKind {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => LayerKind::Convertible,
        "application/vnd.oci.image.layer.v1.tar+zstd" => LayerKind::Zstd,
        "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            LayerKind::NonDistributable
        }
        _ => LayerKind::Other,
    }
}

/// The annotation zstd:chunked layers carry their TOC's checksum in.
pub const ANNOTATION_ZSTD_MANIFEST_CHECKSUM: &str =
    "io.github.containers.zstd-chunked.manifest-checksum";
/// The same, as older containers/storage writes it.
pub const ANNOTATION_ZSTD_MANIFEST_CHECKSUM_LEGACY: &str =
    "io.containers.zstd-chunked.manifest-checksum";

/// The TOC digest a layer can be read lazily by: an eStargz layer
/// (`tar+gzip` with `containerd.io/snapshot/stargz/toc.digest`) or a
/// zstd:chunked one (`tar+zstd` with its manifest checksum). `Err` says
/// why another layer cannot be, for the caller to name the layer.
///
/// ```
/// use estargz_image::oci::{lazy_toc_digest, Descriptor};
///
/// let plain: Descriptor = serde_json::from_str(
///     r#"{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:00","size":1}"#,
/// ).unwrap();
/// assert!(lazy_toc_digest(&plain).unwrap_err().contains("no TOC digest"));
/// ```
pub fn lazy_toc_digest(layer: &Descriptor) -> std::result::Result<Digest, String> {
    let keys: &[&str] = match layer.media_type.as_str() {
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            &[estargz_core::ANNOTATION_TOC_DIGEST]
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => &[
            ANNOTATION_ZSTD_MANIFEST_CHECKSUM,
            ANNOTATION_ZSTD_MANIFEST_CHECKSUM_LEGACY,
            estargz_core::ANNOTATION_TOC_DIGEST,
        ],
        other => {
            return Err(format!(
                "media type {other} is not a gzip or zstd tar layer"
            ))
        }
    };
    let found = keys
        .iter()
        .find_map(|k| layer.annotations.as_ref()?.get(*k));
    let Some(value) = found else {
        return Err(format!(
            "no TOC digest annotation ({}): not eStargz or zstd:chunked, so it cannot be read lazily",
            keys[0]
        ));
    };
    value
        .parse()
        .map_err(|e| format!("bad TOC digest annotation {value:?}: {e}"))
}

/// The manifest of `index` for `os`/`arch` (the descriptor's `platform`).
///
/// ```
/// use estargz_image::oci::{pick_platform, ImageIndex};
///
/// let index: ImageIndex = serde_json::from_str(r#"{"schemaVersion":2,"manifests":[
///   {"mediaType":"m","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"arm64"}},
///   {"mediaType":"m","digest":"sha256:bb","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#).unwrap();
/// assert_eq!(pick_platform(&index, "linux", "amd64").unwrap().digest, "sha256:bb");
/// ```
pub fn pick_platform<'a>(index: &'a ImageIndex, os: &str, arch: &str) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|m| {
        let p = &m.extra.get("platform");
        let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
        field("os") == Some(os) && field("architecture") == Some(arch)
    })
}

/// The OCI media type a Docker one becomes when its manifest turns OCI
/// (annotations, which carry the TOC digest, exist only in OCI manifests).
pub fn oci_media_type(media_type: &str) -> &str {
    match media_type {
        DOCKER_MANIFEST_LIST => MEDIA_TYPE_INDEX,
        DOCKER_MANIFEST => MEDIA_TYPE_MANIFEST,
        DOCKER_CONFIG => MEDIA_TYPE_CONFIG,
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => estargz_core::MEDIA_TYPE_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            MEDIA_TYPE_NONDISTRIBUTABLE_GZIP
        }
        other => other,
    }
}

/// Parses a descriptor's digest. Only `sha256:` with 64 lower-case hex
/// digits is accepted; that the digest becomes a file name is why nothing
/// else (`sha256:../../x`) may pass.
pub fn parse_digest(digest: &str, file: &str) -> Result<Digest> {
    let bad = |reason| Error::BadDigest {
        file: file.to_string(),
        digest: digest.to_string(),
        reason,
    };
    match digest.split_once(':') {
        None => Err(bad("no algorithm prefix")),
        Some(("sha256", _)) => digest
            .parse()
            .map_err(|_| bad("expected 64 lower-case hex digits after sha256:")),
        Some(("sha512" | "blake3", _)) => Err(bad("unsupported algorithm (only sha256 is)")),
        Some(_) => Err(bad("unknown algorithm")),
    }
}

/// Parses a JSON document, naming `file` in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], file: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        file: file.to_string(),
        source,
    })
}

/// The bytes a rewritten document is stored as: compact JSON, whose key
/// order is fixed, so the same input always gives the same digests.
pub fn to_json<T: Serialize>(doc: &T) -> Vec<u8> {
    // Serializing these structs (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_vec(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_digests_that_are_not_plain_sha256() {
        let good = Digest::of(b"x").to_string();
        assert!(parse_digest(&good, "f").is_ok());
        for (bad, why) in [
            ("sha256:../../x", "hex"),
            ("sha512:abcd", "unsupported"),
            ("md5:abcd", "unknown"),
            ("abcd", "prefix"),
            (&good.to_uppercase().replace("SHA256", "sha256"), "hex"),
        ] {
            let err = parse_digest(bad, "f").unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn keeps_unknown_fields() {
        let text =
            r#"{"mediaType":"x","digest":"d","size":1,"platform":{"os":"linux"},"urls":["u"]}"#;
        let d: Descriptor = serde_json::from_str(text).unwrap();
        let again: Value = serde_json::from_slice(&to_json(&d)).unwrap();
        assert_eq!(again["platform"]["os"], "linux");
        assert_eq!(again["urls"][0], "u");
    }
}
