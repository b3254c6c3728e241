//! A `401`'s `WWW-Authenticate` challenge, and the hook that answers it
//! with fresh credentials.

use std::sync::Arc;

/// What a server said when it refused a request with `401 Unauthorized`:
/// the `WWW-Authenticate` header(s), e.g. a registry's
/// `Bearer realm="https://auth.example/token",service="registry",scope="repository:app:pull"`.
///
/// ```
/// use estargz_remote::Challenge;
///
/// let c = Challenge::new(
///     "https://registry.example/v2/app/blobs/sha256:00",
///     vec![r#"Bearer realm="https://auth.example/token",scope="repository:app:pull""#.into()],
/// );
/// assert_eq!(c.scheme(), Some("Bearer"));
/// assert_eq!(c.param("realm").as_deref(), Some("https://auth.example/token"));
/// assert_eq!(c.param("service"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// The URL that answered (as shown in messages: without credentials).
    pub url: String,
    /// The `WWW-Authenticate` values, as sent (none when it sent none).
    pub www_authenticate: Vec<String>,
}

impl Challenge {
    /// A challenge from `url` with these `WWW-Authenticate` values.
    pub fn new(url: impl Into<String>, www_authenticate: Vec<String>) -> Challenge {
        Challenge {
            url: url.into(),
            www_authenticate,
        }
    }

    /// The scheme of the first challenge (`Bearer`, `Basic`, ...).
    pub fn scheme(&self) -> Option<&str> {
        let first = self.www_authenticate.first()?.trim();
        first.split_whitespace().next()
    }

    /// The parameter `name` (case-insensitive) of the first challenge,
    /// unquoted.
    pub fn param(&self, name: &str) -> Option<String> {
        let first = self.www_authenticate.first()?.trim();
        let scheme_len = self.scheme()?.len();
        params(&first[scheme_len..])
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.www_authenticate.join(", "))
    }
}

/// `k=v, k2="v 2"` pairs (RFC 9110 §11.2 auth-params), quoted strings
/// unescaped.
fn params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|&c| c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value.trim_end().to_string()));
    }
}

/// The function behind [`HttpOptions::on_unauthorized`](crate::HttpOptions::on_unauthorized).
pub type UnauthorizedFn = dyn Fn(&Challenge) -> Option<Vec<(String, String)>> + Send + Sync;

/// Called when the server answers `401 Unauthorized` (an expired token,
/// say) with its challenge; returns the headers to send from then on
/// (they replace [`HttpOptions::headers`](crate::HttpOptions::headers)),
/// and the request is made again once with them. `None`: the `401` is the
/// error ([`Error::Status`](crate::Error::Status), challenge kept).
///
/// ```
/// use estargz_remote::{HttpOptions, UnauthorizedHook};
///
/// let opts = HttpOptions {
///     on_unauthorized: Some(UnauthorizedHook::new(|challenge| {
///         let realm = challenge.param("realm")?;
///         let token = format!("token from {realm}"); // ask the realm for one
///         Some(vec![("Authorization".into(), format!("Bearer {token}"))])
///     })),
///     ..HttpOptions::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct UnauthorizedHook(pub Arc<UnauthorizedFn>);

impl UnauthorizedHook {
    /// A hook calling `f`.
    pub fn new(
        f: impl Fn(&Challenge) -> Option<Vec<(String, String)>> + Send + Sync + 'static,
    ) -> UnauthorizedHook {
        UnauthorizedHook(Arc::new(f))
    }
}

impl std::fmt::Debug for UnauthorizedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnauthorizedHook")
    }
}

impl PartialEq for UnauthorizedHook {
    /// The same function.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UnauthorizedHook {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params() {
        let c = Challenge::new(
            "u",
            vec![r#"Bearer realm="https://a/token", service=reg, scope="x:\"y\":pull""#.into()],
        );
        assert_eq!(c.scheme(), Some("Bearer"));
        assert_eq!(c.param("REALM").as_deref(), Some("https://a/token"));
        assert_eq!(c.param("service").as_deref(), Some("reg"));
        assert_eq!(c.param("scope").as_deref(), Some("x:\"y\":pull"));
        assert_eq!(Challenge::new("u", vec![]).scheme(), None);
        assert_eq!(
            Challenge::new("u", vec!["Basic".into()]).param("realm"),
            None
        );
    }
}
