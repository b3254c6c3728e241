//! Image references in the `docker://` transport syntax of skopeo.

use crate::error::Error;
use std::fmt;

/// The registry Docker Hub short names resolve to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API is served (`docker.io` itself
/// redirects elsewhere).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.
///
/// Names are normalized as Docker and skopeo do: a first path component
/// without a `.` or `:` that is not `localhost` is not a host, so the image
/// lives on Docker Hub (`docker.io`), and a one-component Docker Hub name
/// is an official image under `library/`. Without a tag or digest the tag
/// is `latest`.
///
/// ```
/// use estargz_registry::Reference;
///
/// let r = Reference::parse("docker://busybox")?;
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/busybox");
/// assert_eq!(r.reference(), "latest");
///
/// let r = Reference::parse("docker://127.0.0.1:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")?;
/// assert_eq!(r.registry(), "127.0.0.1:5000");
/// assert_eq!(r.repository(), "team/app");
/// assert!(r.digest().is_some());
/// assert_eq!(r.to_string(), "127.0.0.1:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
/// # Ok::<(), estargz_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference, with or without the `docker://` prefix.
    pub fn parse(text: &str) -> Result<Reference, Error> {
        let bad = |reason: &str| Error::BadReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let rest = text.strip_prefix("docker://").unwrap_or(text);
        if rest.starts_with("//") || rest.is_empty() {
            return Err(bad("no image name"));
        }
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => {
                check_digest(digest).map_err(|e| bad(&e))?;
                (name, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        // A `:` after the last `/` starts a tag; one before it is a port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(&bad)?;
            if digest.is_some() {
                // containers/image refuses these for the docker transport
                // too: which of the two would be meant is ambiguous.
                return Err(bad("both a tag and a digest"));
            }
        }
        let (registry, repository) = split_registry(name);
        check_repository(&repository).map_err(&bad)?;
        if registry.is_empty() {
            return Err(bad("empty registry host"));
        }
        let tag = match (&digest, tag) {
            (None, None) => Some("latest".to_string()),
            (_, tag) => tag.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as named: `HOST[:PORT]`, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the distribution API is reached at:
    /// [`DOCKER_HUB_API`] for Docker Hub, else [`Reference::registry`].
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path, `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, `None` when the reference names a digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, `sha256:…`, when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What goes after `/manifests/`: the digest, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "@{d}"),
            (None, Some(t)) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

/// Splits `NAME` into registry and repository, as Docker normalizes it.
fn split_registry(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    (registry, repository)
}

/// The distribution spec's repository grammar: `/`-separated components
/// of `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_repository(repo: &str) -> Result<(), &'static str> {
    if repo.is_empty() || repo.len() > 255 {
        return Err("repository name empty or longer than 255 characters");
    }
    for component in repo.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return Err("empty repository path component");
        };
        if !alnum(first) || !alnum(last) {
            return Err("a repository path component must start and end with [a-z0-9]");
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) || b == b'-' {
                i += 1;
                continue;
            }
            let sep = match (b, bytes.get(i + 1)) {
                (b'_', Some(b'_')) => 2,
                (b'.' | b'_', _) => 1,
                _ => return Err("repository names are lowercase [a-z0-9] joined by . _ __ -"),
            };
            if bytes.get(i + sep).is_none_or(|&n| !alnum(n)) || !alnum(bytes[i - 1]) {
                return Err("a separator in a repository name must sit between [a-z0-9]");
            }
            i += sep;
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(&b) if ok(b) && bytes.len() <= 128 => {}
        _ => return Err("a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -"),
    }
    if bytes.iter().all(|&b| ok(b) || b == b'.' || b == b'-') {
        Ok(())
    } else {
        Err("a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -")
    }
}

/// Checks a digest this crate can verify: `sha256:` and 64 lowercase hex.
pub(crate) fn check_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!("unsupported digest {digest:?} (only sha256)"));
    };
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!("malformed digest {digest:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn docker_hub_short_names_expand_as_skopeo_does() {
        let hub = |repo: &str, tag: &str| {
            (
                "docker.io".to_string(),
                repo.to_string(),
                Some(tag.to_string()),
                None,
            )
        };
        assert_eq!(parts("docker://busybox"), hub("library/busybox", "latest"));
        assert_eq!(parts("busybox:1.36"), hub("library/busybox", "1.36"));
        assert_eq!(parts("docker://user/app:v1"), hub("user/app", "v1"));
        assert_eq!(
            parts("docker://docker.io/busybox"),
            hub("library/busybox", "latest")
        );
        assert_eq!(
            parts("docker://index.docker.io/library/alpine:3"),
            hub("library/alpine", "3")
        );
        let r = Reference::parse("docker://busybox").unwrap();
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn hosts_ports_tags_and_digests() {
        let own = |host: &str, repo: &str, tag: Option<&str>, digest: Option<&str>| {
            (
                host.to_string(),
                repo.to_string(),
                tag.map(str::to_string),
                digest.map(str::to_string),
            )
        };
        assert_eq!(
            parts("docker://127.0.0.1:5000/a/b:t"),
            own("127.0.0.1:5000", "a/b", Some("t"), None)
        );
        assert_eq!(
            parts("docker://localhost/app"),
            own("localhost", "app", Some("latest"), None)
        );
        assert_eq!(
            parts(&format!("docker://quay.io/org/app@{D}")),
            own("quay.io", "org/app", None, Some(D))
        );
        assert_eq!(
            parts("docker://[::1]:5000/app:x"),
            own("[::1]:5000", "app", Some("x"), None)
        );
        let r = Reference::parse(&format!("ghcr.io/o/a@{D}")).unwrap();
        assert_eq!(r.reference(), D);
        assert_eq!(r.api_host(), "ghcr.io");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "docker://",
            "docker:///app",
            "docker://Busybox",
            "docker://host.io/App",
            "docker://host.io/a//b",
            "docker://host.io/a-",
            "docker://host.io/a..b",
            "docker://host.io/a:",
            "docker://host.io/a:.x",
            "docker://host.io/a@sha256:abc",
            "docker://host.io/a@md5:0123",
            &format!("docker://host.io/a:t@{D}"),
            &format!("docker://host.io/a:{}", "t".repeat(129)),
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(matches!(e, Error::BadReference { .. }), "{bad}: {e}");
        }
        for good in ["a__b", "a_b", "a.b", "a---b", "a-b/c.d_e"] {
            assert!(check_repository(good).is_ok(), "{good}");
        }
    }
}
