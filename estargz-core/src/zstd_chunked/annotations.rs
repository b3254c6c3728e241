//! Layer annotations (spec §3.4, §4.7, §7.2): the keys, the position
//! strings, and the check that what a manifest says agrees with the blob.
//!
//! containers/storage ≤ v1.43 (podman ≤ 4.3) reads only the
//! `io.containers.*` keys, later versions only `io.github.containers.*`;
//! stargz-snapshotter verifies only `containerd.io/snapshot/stargz/toc.digest`,
//! the sha256 of the TOC JSON, while the `manifest-checksum` keys hold the
//! sha256 of the compressed TOC frame.

use super::footer::{TarSplitLocation, ZstdFooter};
use super::{Dialect, ZstdError};
use crate::digest::Digest;
use std::collections::BTreeMap;

/// The stargz TOC digest (sha256 of the TOC JSON).
pub const STARGZ_TOC_DIGEST: &str = "containerd.io/snapshot/stargz/toc.digest";
/// Uncompressed (DiffID input) size, decimal.
pub const UNCOMPRESSED_SIZE: &str = "io.containers.estargz.uncompressed-size";
/// Manifest checksum, containers/storage ≤ v1.43 and the stargz package.
pub const LEGACY_MANIFEST_CHECKSUM: &str = "io.containers.zstd-chunked.manifest-checksum";
/// Manifest position `M:L:U:1`, containers/storage ≤ v1.43 and the stargz package.
pub const LEGACY_MANIFEST_POSITION: &str = "io.containers.zstd-chunked.manifest-position";
/// Manifest checksum, containers/storage ≥ v1.44.
pub const MANIFEST_CHECKSUM: &str = "io.github.containers.zstd-chunked.manifest-checksum";
/// Manifest position, containers/storage ≥ v1.44.
pub const MANIFEST_POSITION: &str = "io.github.containers.zstd-chunked.manifest-position";
/// Tar-split position `T:compressed:uncompressed`, containers/storage ≥ v1.47.
pub const TAR_SPLIT_POSITION: &str = "io.github.containers.zstd-chunked.tarsplit-position";

/// What the TOC-locating annotations of a layer say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Located {
    /// `(M, L, U, type)` from a manifest-position key.
    pub manifest_position: Option<(u64, u64, u64, u64)>,
    /// From a manifest-checksum key.
    pub manifest_checksum: Option<Digest>,
    /// From the tarsplit-position key.
    pub tar_split: Option<TarSplitLocation>,
    /// From the stargz key.
    pub toc_digest: Option<Digest>,
    /// Oddities a verifier reports (both TOC digests present, …).
    pub warnings: Vec<String>,
}

fn bad(key: &str, reason: String) -> ZstdError {
    ZstdError::Annotation {
        key: key.to_string(),
        reason,
    }
}

/// `n` decimal numbers separated by `:`, no signs (`fmt.Sscanf("%d:…")` of
/// the references, without its tolerance of signs and trailing text).
fn numbers(key: &str, value: &str, n: usize) -> Result<Vec<u64>, ZstdError> {
    let parts: Vec<&str> = value.split(':').collect();
    let ok = parts.len() == n
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let parsed: Option<Vec<u64>> = ok
        .then(|| parts.iter().map(|p| p.parse().ok()).collect())
        .flatten();
    parsed.ok_or_else(|| {
        bad(
            key,
            format!("{value:?} is not {n} unsigned decimal numbers separated by ':'"),
        )
    })
}

fn digest(key: &str, value: &str) -> Result<Digest, ZstdError> {
    value
        .parse()
        .map_err(|e: crate::digest::ParseDigestError| bad(key, format!("{value:?}: {}", e.0)))
}

/// Reads the zstd:chunked keys of `annotations`; where both generations of
/// a key are present they must agree.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the reader side of annotations (spec §7.4 rule 2); no command takes a manifest's annotations yet, the unit tests check it"
    )
)]
pub fn locate(annotations: &BTreeMap<String, String>) -> Result<Located, ZstdError> {
    let mut found = Located::default();
    for (legacy, current) in [
        (LEGACY_MANIFEST_POSITION, MANIFEST_POSITION),
        (LEGACY_MANIFEST_CHECKSUM, MANIFEST_CHECKSUM),
    ] {
        let (a, b) = (annotations.get(legacy), annotations.get(current));
        if let (Some(a), Some(b)) = (a, b) {
            if a != b {
                return Err(bad(current, format!("{b:?}, while {legacy} is {a:?}")));
            }
        }
        let Some((key, value)) = b.map(|v| (current, v)).or(a.map(|v| (legacy, v))) else {
            continue;
        };
        if current == MANIFEST_POSITION {
            let v = numbers(key, value, 4)?;
            found.manifest_position = Some((v[0], v[1], v[2], v[3]));
        } else {
            found.manifest_checksum = Some(digest(key, value)?);
        }
    }
    if let Some(value) = annotations.get(TAR_SPLIT_POSITION) {
        let v = numbers(TAR_SPLIT_POSITION, value, 3)?;
        found.tar_split = Some(TarSplitLocation {
            offset: v[0],
            compressed: v[1],
            uncompressed: v[2],
        });
    }
    if let Some(value) = annotations.get(STARGZ_TOC_DIGEST) {
        found.toc_digest = Some(digest(STARGZ_TOC_DIGEST, value)?);
        if found.manifest_checksum.is_some() {
            found.warnings.push(format!(
                "both {STARGZ_TOC_DIGEST} and a manifest-checksum key are set: containers/storage \
                 v1.52 and later refuse such a layer"
            ));
        }
    }
    Ok(found)
}

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the reader side of annotations (spec §7.4 rule 2); no command takes a manifest's annotations yet, the unit tests check it"
    )
)]
impl Located {
    /// Spec §7.4 rule 2: positions given as annotations equal the footer's;
    /// checksums given equal the ones computed from the blob.
    pub fn check(
        &self,
        footer: &ZstdFooter,
        manifest_checksum: &Digest,
        toc_digest: &Digest,
    ) -> Result<(), ZstdError> {
        let position = (
            footer.manifest_offset,
            footer.toc_compressed,
            footer.toc_uncompressed,
            footer.manifest_type,
        );
        if let Some(p) = self.manifest_position.filter(|&p| p != position) {
            return Err(bad(
                MANIFEST_POSITION,
                format!(
                    "{}:{}:{}:{}, the footer says {}",
                    p.0,
                    p.1,
                    p.2,
                    p.3,
                    footer.manifest_position()
                ),
            ));
        }
        if let (Some(a), Some(f)) = (self.tar_split, footer.tar_split) {
            if a != f {
                return Err(bad(
                    TAR_SPLIT_POSITION,
                    format!(
                        "{}, the footer says {}",
                        tar_split_position(&a),
                        tar_split_position(&f)
                    ),
                ));
            }
        }
        for (key, want, got, what) in [
            (
                MANIFEST_CHECKSUM,
                self.manifest_checksum,
                manifest_checksum,
                "manifest checksum",
            ),
            (STARGZ_TOC_DIGEST, self.toc_digest, toc_digest, "TOC digest"),
        ] {
            if let Some(want) = want.filter(|w| w != got) {
                return Err(bad(
                    key,
                    format!("{want}, but the blob's {what} is {got} (TOC digest {toc_digest}, manifest checksum {manifest_checksum})"),
                ));
            }
        }
        Ok(())
    }
}

/// `T:compressed:uncompressed`.
pub fn tar_split_position(t: &TarSplitLocation) -> String {
    format!("{}:{}:{}", t.offset, t.compressed, t.uncompressed)
}

/// The annotations a written blob gets (spec §7.2).
///
/// Stargz dialect: the two `io.containers.*` keys, the stargz TOC digest and
/// the uncompressed size (what `ctr-remote --zstdchunked` sets). Containers
/// dialect: the three `io.github.*` keys and, with `legacy_keys` (podman ≤
/// 4.3 reads only those), the two `io.containers.*` ones; never the stargz
/// key, which current containers/storage refuses beside its own.
pub fn written(
    dialect: Dialect,
    footer: &ZstdFooter,
    manifest_checksum: &Digest,
    toc_digest: &Digest,
    uncompressed_size: u64,
    legacy_keys: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let position = footer.manifest_position();
    let checksum = manifest_checksum.to_string();
    let mut put = |k: &str, v: &str| out.insert(k.to_string(), v.to_string());
    if dialect == Dialect::Stargz || legacy_keys {
        put(LEGACY_MANIFEST_CHECKSUM, &checksum);
        put(LEGACY_MANIFEST_POSITION, &position);
    }
    match dialect {
        Dialect::Stargz => {
            put(STARGZ_TOC_DIGEST, &toc_digest.to_string());
            put(UNCOMPRESSED_SIZE, &uncompressed_size.to_string());
        }
        Dialect::Containers => {
            put(MANIFEST_CHECKSUM, &checksum);
            put(MANIFEST_POSITION, &position);
            if let Some(t) = &footer.tar_split {
                put(TAR_SPLIT_POSITION, &tar_split_position(t));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::footer::parse;
    use super::super::footer::tests::{unhex, C40_SMALL, C64_SMALL};
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const C64_CHECKSUM: &str =
        "sha256:bb41b3365e1e67a180eea8f939a497d7c4c8ca4d8906e27b2eaa77ca2bdcc91e";

    /// §4.8: the annotations containers/storage main wrote for small.tar.
    #[test]
    fn writes_and_checks_the_c64_example_annotations() {
        let footer = parse(&unhex(C64_SMALL), 860).unwrap().unwrap();
        let checksum: Digest = C64_CHECKSUM.parse().unwrap();
        let toc_digest = Digest::of(b"json");
        let got = written(
            Dialect::Containers,
            &footer,
            &checksum,
            &toc_digest,
            10240,
            false,
        );
        let want = map(&[
            (MANIFEST_CHECKSUM, C64_CHECKSUM),
            (MANIFEST_POSITION, "186:268:435:1"),
            (TAR_SPLIT_POSITION, "462:326:13958"),
        ]);
        assert_eq!(got, want);
        let located = locate(&got).unwrap();
        located.check(&footer, &checksum, &toc_digest).unwrap();
        assert!(located
            .check(&footer, &Digest::of(b"x"), &toc_digest)
            .is_err());
        let with_legacy = written(
            Dialect::Containers,
            &footer,
            &checksum,
            &toc_digest,
            0,
            true,
        );
        assert_eq!(with_legacy.len(), 5);
        assert_eq!(with_legacy[LEGACY_MANIFEST_POSITION], "186:268:435:1");
    }

    /// §4.8: what Debian's skopeo wrote for small.tar (C40, legacy keys).
    #[test]
    fn checks_the_c40_example_annotations() {
        let footer = parse(&unhex(C40_SMALL), 468).unwrap().unwrap();
        let ann = map(&[
            (
                LEGACY_MANIFEST_CHECKSUM,
                "sha256:cb0258d4b20693af77ad02ce107c743b8c837aa18cbf6c1f066f0ee70e507310",
            ),
            (LEGACY_MANIFEST_POSITION, "177:243:488:1"),
        ]);
        let located = locate(&ann).unwrap();
        assert_eq!(located.manifest_position, Some((177, 243, 488, 1)));
        let checksum = located.manifest_checksum.unwrap();
        located.check(&footer, &checksum, &Digest::of(b"")).unwrap();
        let moved = map(&[(LEGACY_MANIFEST_POSITION, "177:243:489:1")]);
        assert!(locate(&moved)
            .unwrap()
            .check(&footer, &checksum, &checksum)
            .is_err());
    }

    #[test]
    fn stargz_dialect_annotations() {
        let footer = parse(&unhex(super::super::footer::tests::S_SMALL), 495)
            .unwrap()
            .unwrap();
        let (m, t) = (Digest::of(b"m"), Digest::of(b"t"));
        let got = written(Dialect::Stargz, &footer, &m, &t, 10240, false);
        assert_eq!(got.len(), 4);
        assert_eq!(got[LEGACY_MANIFEST_POSITION], "173:274:566:1");
        assert_eq!(got[STARGZ_TOC_DIGEST], t.to_string());
        assert_eq!(got[UNCOMPRESSED_SIZE], "10240");
        let located = locate(&got).unwrap();
        assert_eq!(located.warnings.len(), 1);
        located.check(&footer, &m, &t).unwrap();
        // Z32: a wrong TOC digest names both digests.
        let err = located.check(&footer, &m, &m).unwrap_err().to_string();
        assert!(
            err.contains(&m.to_string()) && err.contains(&t.to_string()),
            "{err}"
        );
    }

    #[test]
    fn rejects_malformed_and_disagreeing_keys() {
        for (k, v) in [
            (MANIFEST_POSITION, "1:2:3"),
            (MANIFEST_POSITION, "+1:2:3:1"),
            (MANIFEST_POSITION, "-1:2:3:1"),
            (MANIFEST_POSITION, "1:2:3:1 "),
            (MANIFEST_POSITION, "1::3:1"),
            (MANIFEST_POSITION, "99999999999999999999:2:3:1"),
            (TAR_SPLIT_POSITION, "1:2"),
            (MANIFEST_CHECKSUM, "sha256:xyz"),
            (STARGZ_TOC_DIGEST, "md5:00"),
        ] {
            assert!(locate(&map(&[(k, v)])).is_err(), "{k}={v}");
        }
        let both = map(&[
            (MANIFEST_POSITION, "1:2:3:1"),
            (LEGACY_MANIFEST_POSITION, "1:2:4:1"),
        ]);
        assert!(locate(&both).is_err());
        let same = map(&[
            (MANIFEST_POSITION, "1:2:3:1"),
            (LEGACY_MANIFEST_POSITION, "1:2:3:1"),
        ]);
        assert_eq!(locate(&same).unwrap().manifest_position, Some((1, 2, 3, 1)));
    }
}
