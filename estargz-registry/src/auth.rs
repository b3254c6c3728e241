//! Credentials, `WWW-Authenticate` challenges, and the auth files of
//! podman/skopeo and Docker.

use crate::error::Error;
use base64::Engine;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// How to authenticate. `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials: anonymous access (a Bearer flow still runs, without
    /// a password, as Docker Hub's anonymous pulls need).
    #[default]
    Anonymous,
    /// A user name and password, sent as HTTP Basic to a registry that
    /// asks for Basic, or to the token service of one that asks for Bearer.
    Basic {
        /// The user name.
        username: String,
        /// The password (or an access token used as one).
        password: String,
    },
}

impl Credentials {
    /// `USER[:PASS]`, as `--creds` spells it (an empty password without
    /// `:`).
    ///
    /// ```
    /// use estargz_registry::Credentials;
    /// let c = Credentials::from_user_pass("alice:s3cret");
    /// assert_eq!(format!("{c:?}"), r#"Basic { username: "alice", password: <redacted> }"#);
    /// ```
    pub fn from_user_pass(text: &str) -> Credentials {
        let (username, password) = text.split_once(':').unwrap_or((text, ""));
        Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// The `Authorization` value for Basic, `None` when anonymous.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses the first challenge this client understands from a
/// `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"`).
/// The `scope` offered is ignored: the client asks for the scope the
/// request needs.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
    })
}

/// `name="quoted, value",name=token` pairs (RFC 9110 auth-params).
fn parse_params(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        let Some((name, rest)) = s.split_once('=') else {
            return out;
        };
        let rest = rest.trim_start();
        let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().to_string(), &rest[end..])
        };
        out.push((name.trim().to_string(), value));
        s = rest;
    }
}

/// The auth files consulted by [`credentials_from_auth_files`], in order:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.docker/config.json`.
pub fn auth_file_paths() -> Vec<PathBuf> {
    auth_file_paths_with(|name| std::env::var_os(name))
}

/// [`auth_file_paths`], with the environment read through `var`: a caller
/// (or a test) can resolve them for another environment than the
/// process's own.
pub fn auth_file_paths_with(var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = var("REGISTRY_AUTH_FILE") {
        paths.push(PathBuf::from(p));
    }
    if let Some(d) = var("XDG_RUNTIME_DIR") {
        paths.push(Path::new(&d).join("containers/auth.json"));
    }
    if let Some(h) = var("HOME") {
        paths.push(Path::new(&h).join(".docker/config.json"));
    }
    paths
}

/// The credentials stored for `registry` (`HOST[:PORT]`, `docker.io` for
/// Docker Hub) in the first of [`auth_file_paths`] that has an entry for
/// it; missing files are skipped. Only the `auths` entries with an `auth`
/// field (base64 `USER:PASS`) are used: credential helpers (`credHelpers`,
/// `credsStore`) are not run.
///
/// ```no_run
/// let creds = estargz_registry::credentials_from_auth_files("quay.io")?;
/// # Ok::<(), estargz_registry::Error>(())
/// ```
pub fn credentials_from_auth_files(registry: &str) -> Result<Credentials, Error> {
    credentials_from_files(&auth_file_paths(), registry)
}

/// [`credentials_from_auth_files`] over the files `paths`, in that order.
pub fn credentials_from_files(paths: &[PathBuf], registry: &str) -> Result<Credentials, Error> {
    for path in paths.iter().cloned() {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::AuthFile {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        if let Some(c) = credentials_from_auth_json(&bytes, registry)
            .map_err(|reason| Error::AuthFile { path, reason })?
        {
            return Ok(c);
        }
    }
    Ok(Credentials::Anonymous)
}

/// The entry for `registry` in one auth file's JSON, `None` when it has
/// none. Keys match as Docker and podman write them: `HOST`,
/// `https://HOST`, `http://HOST`, with a path after the host ignored, and
/// `https://index.docker.io/v1/` for `docker.io`.
pub fn credentials_from_auth_json(
    json: &[u8],
    registry: &str,
) -> Result<Option<Credentials>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
    }
    // serde_json's messages name a position, never the text at it.
    let file: File = serde_json::from_slice(json).map_err(|e| format!("not an auth file: {e}"))?;
    fn host_of(key: &str) -> &str {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let host = key.split('/').next().unwrap_or(key);
        if host == "index.docker.io" || host == "registry-1.docker.io" {
            crate::reference::DOCKER_HUB
        } else {
            host
        }
    }
    let Some(entry) = file
        .auths
        .iter()
        .find(|(k, _)| host_of(k) == registry)
        .map(|(_, e)| e)
    else {
        return Ok(None);
    };
    let Some(auth) = &entry.auth else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| format!("the auth entry for {registry} is not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| format!("the auth entry for {registry} is not UTF-8"))?;
    if !text.contains(':') {
        return Err(format!("the auth entry for {registry} is not USER:PASS"));
    }
    Ok(Some(Credentials::from_user_pass(&text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer service=svc, realm="http://x/t\"q""#),
            Some(Challenge::Bearer {
                realm: "http://x/t\"q".into(),
                service: Some("svc".into())
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), {
            Some(Challenge::Bearer {
                realm: "unterminated".into(),
                service: None,
            })
        });
    }

    #[test]
    fn auth_json_entries() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                "localhost:5000":{{"auth":"{}"}},
                "quay.io/org":{{"auth":"{}"}},
                "bad.io":{{"auth":"!!"}},
                "helper.io":{{}}}},
              "credHelpers":{{"x.io":"secret"}}}}"#,
            b64("hub:pw1"),
            b64("local:pw:with:colons"),
            b64("q:pw3")
        );
        let get = |r: &str| credentials_from_auth_json(json.as_bytes(), r);
        assert_eq!(
            get("docker.io"),
            Ok(Some(Credentials::from_user_pass("hub:pw1")))
        );
        assert_eq!(
            get("localhost:5000"),
            Ok(Some(Credentials::Basic {
                username: "local".into(),
                password: "pw:with:colons".into()
            }))
        );
        assert_eq!(
            get("quay.io"),
            Ok(Some(Credentials::from_user_pass("q:pw3")))
        );
        assert_eq!(get("helper.io"), Ok(None));
        assert_eq!(get("other.io"), Ok(None));
        let e = get("bad.io").unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        let e =
            credentials_from_auth_json(b"{\"auths\": 7, \"pw\": \"hunter2\"}", "x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::from_user_pass("alice:hunter2");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
        assert_eq!(
            c.basic_header().as_deref(),
            Some("Basic YWxpY2U6aHVudGVyMg==")
        );
    }
}
