//! The distribution API calls, with authentication and retries.

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::error::{Error, Result};
use crate::reference::check_digest;
use crate::retry;
use crate::verify::BlobReader;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use ureq::http::{Method, Response};
use ureq::Body;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted: distribution refuses to store larger
/// ones, so a larger body is not a manifest.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// How long the `GET /v2/` that decides between https and http (without
/// TLS verification) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`Registry`] connects and authenticates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Who to authenticate as.
    pub credentials: Credentials,
    /// Verify TLS certificates (`true`). With `false`, as skopeo's
    /// `--tls-verify=false`: HTTPS without verification, and plain HTTP
    /// when the registry does not speak TLS (decided once, by a
    /// `GET /v2/`).
    pub tls_verify: bool,
    /// PEM CA certificates trusted instead of the built-in (Mozilla)
    /// roots, for a private CA.
    pub ca_certs: Option<Vec<u8>>,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any byte of a response.
    pub read_timeout: Duration,
    /// How many times a request is repeated after a connection reset,
    /// a `5xx` or a `429` (requests whose body is a stream are not).
    pub max_retries: u32,
    /// The first wait before a retry, doubled each time (a `Retry-After`
    /// is honoured, up to [`retry::MAX_RETRY_AFTER`]).
    pub retry_backoff: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: Credentials::Anonymous,
            tls_verify: true,
            ca_certs: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_retries: 3,
            retry_backoff: Duration::from_millis(250),
        }
    }
}

/// A manifest or index as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    /// The bytes, exactly as served (their digest is the manifest's).
    pub bytes: Vec<u8>,
    /// The media type (`Content-Type`, else the document's `mediaType`).
    pub media_type: String,
    /// `sha256:` of the bytes, checked against the reference when it is a
    /// digest.
    pub digest: String,
}

/// One registry, with its credentials and the tokens obtained for them.
/// Shareable between threads (`&Registry` is enough for every call).
///
/// ```no_run
/// use estargz_registry::{Credentials, Registry, RegistryOptions};
///
/// let mut opts = RegistryOptions::default();
/// opts.credentials = Credentials::from_user_pass("alice:s3cret");
/// let registry = Registry::new("registry.example:5000", opts)?;
/// let manifest = registry.pull_manifest("team/app", "v1")?;
/// println!("{} {}", manifest.media_type, manifest.digest);
/// let mut layer = registry.blob_reader("team/app", "sha256:…")?;
/// std::io::copy(&mut layer, &mut std::io::sink())?; // fails at EOF on a wrong digest
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Registry {
    host: String,
    agent: ureq::Agent,
    credentials: Credentials,
    tls_verify: bool,
    /// `scheme://host`, decided by the first request.
    base: Mutex<Option<String>>,
    auth: Mutex<AuthState>,
    max_retries: u32,
    retry_backoff: Duration,
}

#[derive(Default)]
struct AuthState {
    /// The scheme the registry asked for, once it has.
    challenge: Option<Challenge>,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, String>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens = self.auth.lock().map_or(0, |a| a.tokens.len());
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("credentials", &self.credentials)
            .field("tls_verify", &self.tls_verify)
            .field("cached_tokens", &tokens)
            .finish_non_exhaustive()
    }
}

/// A blob's URL and the headers reading it needs; see
/// [`Registry::blob_location`]. `Debug` hides the header values (tokens).
#[derive(Clone)]
#[non_exhaustive]
pub struct BlobLocation {
    /// `https://HOST/v2/REPO/blobs/DIGEST` (or `http://`).
    pub url: String,
    /// `Authorization`, when the registry wants one.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("BlobLocation")
            .field("url", &self.url)
            .field("headers", &names)
            .finish()
    }
}

/// A request body.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Sent once: a request with it is neither retried nor replayed after
    /// a `401`.
    Stream(&'a mut dyn Read, u64),
}

/// What a request needs beyond method and URL.
struct Call<'a> {
    method: Method,
    url: String,
    /// The token scopes (`repository:NAME:pull`).
    scopes: Vec<String>,
    headers: Vec<(&'static str, String)>,
    payload: Payload<'a>,
}

impl Registry {
    /// A client for the registry at `host` (`HOST[:PORT]`, as
    /// [`Reference::api_host`](crate::Reference::api_host) gives it).
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Registry> {
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(!opts.tls_verify);
        if let Some(pem) = &opts.ca_certs {
            let roots =
                estargz_remote::root_certs(pem).map_err(|reason| Error::BadCaCerts { reason })?;
            tls = tls.root_certs(roots);
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            // Statuses are checked here, with the registry's error code.
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.read_timeout))
            // Blobs must arrive as stored: their digest is of those bytes.
            .accept_encoding("identity")
            .user_agent(concat!("estargz/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Registry {
            host: host.to_string(),
            agent: config.into(),
            credentials: opts.credentials,
            tls_verify: opts.tls_verify,
            base: Mutex::new(opts.tls_verify.then(|| format!("https://{host}"))),
            auth: Mutex::new(AuthState::default()),
            max_retries: opts.max_retries,
            retry_backoff: opts.retry_backoff,
        })
    }

    /// The host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Fetches a manifest or index by tag or digest, accepting the OCI and
    /// Docker schema 2 media types.
    pub fn pull_manifest(&self, repo: &str, reference: &str) -> Result<PulledManifest> {
        if reference.contains(':') {
            check_digest(reference).map_err(|reason| Error::BadDigest { reason })?;
        }
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base()?);
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let response = self.send(Call {
            method: Method::GET,
            url: url.clone(),
            scopes: vec![scope(repo, false)],
            headers: vec![("Accept", accept)],
            payload: Payload::Empty,
        })?;
        let response = self.expect(&Method::GET, &url, response, &[200])?;
        let content_type = header(&response, "content-type");
        let bytes = response
            .into_body()
            .into_with_config()
            .limit(MAX_MANIFEST_SIZE)
            .read_to_vec()
            .map_err(|e| self.transport(&Method::GET, &url, e))?;
        let digest = sha256_digest(&bytes);
        // Tags have no `:`; a reference with one is a digest to check.
        if reference.contains(':') && reference != digest {
            return Err(Error::DigestMismatch {
                url,
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let media_type = content_type
            .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
            .filter(|t| !t.is_empty() && t != "application/json")
            .or_else(|| media_type_in(&bytes))
            .ok_or_else(|| Error::BadResponse {
                url: url.clone(),
                reason: "a manifest without a media type".into(),
            })?;
        Ok(PulledManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// A reader of the blob `digest` that checks, while streaming, that
    /// the bytes are those of the digest and as many as announced: the
    /// read that reaches the end fails otherwise, with an
    /// [`std::io::Error`] wrapping [`Error::DigestMismatch`] or
    /// [`Error::SizeMismatch`].
    pub fn blob_reader(&self, repo: &str, digest: &str) -> Result<BlobReader> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base()?);
        let response = self.send(Call {
            method: Method::GET,
            url: url.clone(),
            scopes: vec![scope(repo, false)],
            headers: Vec::new(),
            payload: Payload::Empty,
        })?;
        let response = self.expect(&Method::GET, &url, response, &[200])?;
        let size = response.body().content_length();
        let body = response.into_body().into_with_config().reader();
        Ok(BlobReader::new(Box::new(body), url, digest, size))
    }

    /// Bytes `offset..offset + len` of a blob (a `Range` request), fewer
    /// at its end. Unverified: a range cannot be checked against the
    /// blob's digest, so use it only to decide how to read the whole blob
    /// (an eStargz footer, say). A registry that does not answer `206`
    /// is an error.
    ///
    /// ```no_run
    /// # use estargz_registry::{Registry, RegistryOptions};
    /// let registry = Registry::new("registry.example", RegistryOptions::default())?;
    /// let tail = registry.blob_range("team/app", "sha256:…", 1000, 51)?;
    /// assert!(tail.len() <= 51);
    /// # Ok::<(), estargz_registry::Error>(())
    /// ```
    pub fn blob_range(&self, repo: &str, digest: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base()?);
        let last = offset.saturating_add(len - 1);
        let response = self.send(Call {
            method: Method::GET,
            url: url.clone(),
            scopes: vec![scope(repo, false)],
            headers: vec![("Range", format!("bytes={offset}-{last}"))],
            payload: Payload::Empty,
        })?;
        let response = self.expect(&Method::GET, &url, response, &[206])?;
        response
            .into_body()
            .into_with_config()
            .limit(len)
            .read_to_vec()
            .map_err(|e| self.transport(&Method::GET, &url, e))
    }

    /// Whether the repository has the blob (`HEAD`).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let (url, response) = self.head_blob(repo, digest)?;
        if response.status().as_u16() == 404 {
            return Ok(false);
        }
        self.expect(&Method::HEAD, &url, response, &[200])?;
        Ok(true)
    }

    /// `HEAD` of the blob, authenticated for pulling from `repo`: its URL
    /// and the response.
    fn head_blob(&self, repo: &str, digest: &str) -> Result<(String, Response<Body>)> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base()?);
        let response = self.send(Call {
            method: Method::HEAD,
            url: url.clone(),
            scopes: vec![scope(repo, false)],
            headers: Vec::new(),
            payload: Payload::Empty,
        })?;
        Ok((url, response))
    }

    /// Where to read the blob `digest` with range requests, as an HTTP
    /// client other than this one (`estargz_remote::HttpBlob`, a
    /// snapshotter's) does: its URL and the headers to send. The blob is
    /// asked for once (`HEAD`), which answers the registry's challenge, so
    /// the headers hold a token for pulling from `repo` where it wants one.
    /// When that token expires (the URL answers `401`),
    /// [`Registry::reauthorize`] gives new headers.
    ///
    /// ```no_run
    /// # use estargz_registry::{Registry, RegistryOptions};
    /// let registry = Registry::new("registry.example", RegistryOptions::default())?;
    /// let location = registry.blob_location("team/app", "sha256:…")?;
    /// println!("GET {} with {} header(s)", location.url, location.headers.len());
    /// # Ok::<(), estargz_registry::Error>(())
    /// ```
    pub fn blob_location(&self, repo: &str, digest: &str) -> Result<BlobLocation> {
        let (url, response) = self.head_blob(repo, digest)?;
        self.expect(&Method::HEAD, &url, response, &[200])?;
        Ok(BlobLocation {
            url,
            headers: self.pull_headers(repo),
        })
    }

    /// New headers for reading `repo`'s blobs after the registry refused the
    /// old ones with `401` and this `WWW-Authenticate` challenge: a fresh
    /// token, or the Basic credentials. `None` when there is nothing new to
    /// try (no credentials where they are needed, an unknown scheme).
    pub fn reauthorize(
        &self,
        repo: &str,
        www_authenticate: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        let call = Call {
            method: Method::GET,
            url: String::new(),
            scopes: vec![scope(repo, false)],
            headers: Vec::new(),
            payload: Payload::Empty,
        };
        if !self.authenticate(&call, Some(www_authenticate))? {
            return Ok(None);
        }
        Ok(Some(self.pull_headers(repo)))
    }

    /// The `Authorization` header for pulling from `repo`, as things stand.
    fn pull_headers(&self, repo: &str) -> Vec<(String, String)> {
        self.auth_header(&[scope(repo, false)])
            .map(|value| ("Authorization".to_string(), value))
            .into_iter()
            .collect()
    }

    /// Asks the registry to link the blob from `from_repo` into `to_repo`
    /// without transferring it: `true` when it did, `false` when it would
    /// not (blob unknown there, mounting not allowed) and the blob must be
    /// pushed.
    pub fn mount_blob(&self, from_repo: &str, to_repo: &str, digest: &str) -> Result<bool> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        let url = format!(
            "{}/v2/{to_repo}/blobs/uploads/?mount={digest}&from={}",
            self.base()?,
            encode_query(from_repo)
        );
        let response = self.send(Call {
            method: Method::POST,
            url: url.clone(),
            scopes: vec![scope(to_repo, true), scope(from_repo, false)],
            headers: vec![("Content-Length", "0".into())],
            payload: Payload::Empty,
        })?;
        let status = response.status().as_u16();
        let response = self.expect(&Method::POST, &url, response, &[201, 202])?;
        if status == 202 {
            // The registry opened an upload instead; it is not wanted.
            if let Ok(location) = self.location(&url, &response) {
                let _ = self.send(Call {
                    method: Method::DELETE,
                    url: location,
                    scopes: vec![scope(to_repo, true)],
                    headers: Vec::new(),
                    payload: Payload::Empty,
                });
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Uploads a blob of `size` bytes read from `data`, in one `PUT`
    /// (after the `POST` that opens the upload). The registry checks the
    /// digest and refuses the blob on a mismatch (`DIGEST_INVALID`).
    pub fn push_blob(&self, repo: &str, digest: &str, size: u64, data: impl Read) -> Result<()> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        let scopes = vec![scope(repo, true)];
        let location = self.start_upload(repo)?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={digest}");
        let mut counted = Counted {
            inner: data.take(size),
            count: 0,
            size,
        };
        let sent = self.send(Call {
            method: Method::PUT,
            url: put_url.clone(),
            scopes,
            headers: vec![("Content-Type", "application/octet-stream".into())],
            payload: Payload::Stream(&mut counted, size),
        });
        if counted.count < size {
            return Err(Error::SizeMismatch {
                url: put_url,
                expected: size,
                received: counted.count,
            });
        }
        self.expect(&Method::PUT, &put_url, sent?, &[201])?;
        Ok(())
    }

    /// Uploads a blob of `size` bytes from `data` in `PATCH` requests of at
    /// most `chunk_size` bytes each (held in memory, so a chunk that meets
    /// a reset connection or a `5xx` is sent again), then a `PUT` that
    /// closes the upload with the digest. For registries or proxies that
    /// limit the size of one request.
    pub fn push_blob_chunked(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        mut data: impl Read,
        chunk_size: usize,
    ) -> Result<()> {
        check_digest(digest).map_err(|reason| Error::BadDigest { reason })?;
        let mut location = self.start_upload(repo)?;
        let mut chunk = vec![0u8; chunk_size.max(1)];
        let mut sent = 0u64;
        while sent < size {
            let want =
                usize::try_from(size - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
            let io = |cause| Error::Io {
                url: location.clone(),
                cause,
            };
            let n = read_full(&mut data, &mut chunk[..want]).map_err(io)?;
            if n < want {
                return Err(Error::SizeMismatch {
                    url: location,
                    expected: size,
                    received: sent + n as u64,
                });
            }
            let range = format!("{sent}-{}", sent + n as u64 - 1);
            let response = self.send(Call {
                method: Method::PATCH,
                url: location.clone(),
                scopes: vec![scope(repo, true)],
                headers: vec![
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Range", range),
                ],
                payload: Payload::Bytes(&chunk[..n]),
            })?;
            let response = self.expect(&Method::PATCH, &location, response, &[202])?;
            location = self.location(&location, &response)?;
            sent += n as u64;
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={digest}");
        let response = self.send(Call {
            method: Method::PUT,
            url: put_url.clone(),
            scopes: vec![scope(repo, true)],
            headers: vec![("Content-Length", "0".into())],
            payload: Payload::Empty,
        })?;
        self.expect(&Method::PUT, &put_url, response, &[201])?;
        Ok(())
    }

    /// Opens an upload (`POST …/blobs/uploads/`) and returns where it goes.
    fn start_upload(&self, repo: &str) -> Result<String> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base()?);
        let response = self.send(Call {
            method: Method::POST,
            url: url.clone(),
            scopes: vec![scope(repo, true)],
            headers: vec![("Content-Length", "0".into())],
            payload: Payload::Empty,
        })?;
        let response = self.expect(&Method::POST, &url, response, &[202])?;
        self.location(&url, &response)
    }

    /// Stores a manifest or index under `reference` (a tag, or its own
    /// digest) and returns its digest. Push it by digest first, then tag
    /// it, so a tag never names content that failed to arrive.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let digest = sha256_digest(bytes);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base()?);
        if reference.contains(':') && reference != digest {
            return Err(Error::DigestMismatch {
                url,
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let response = self.send(Call {
            method: Method::PUT,
            url: url.clone(),
            scopes: vec![scope(repo, true)],
            headers: vec![("Content-Type", media_type.to_string())],
            payload: Payload::Bytes(bytes),
        })?;
        let response = self.expect(&Method::PUT, &url, response, &[201])?;
        if let Some(stored) = header(&response, "docker-content-digest") {
            if stored != digest {
                return Err(Error::DigestMismatch {
                    url,
                    expected: digest,
                    actual: stored,
                });
            }
        }
        Ok(digest)
    }

    /// `scheme://host`: https when verifying TLS; otherwise what a
    /// `GET /v2/` shows the registry speaks, https first, as skopeo does.
    fn base(&self) -> Result<String> {
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &*base {
            return Ok(b.clone());
        }
        let probe = |url: String| {
            self.agent
                .get(url)
                .config()
                // A server that is not TLS may wait for more of what it
                // took for a request rather than answer the handshake.
                .timeout_global(Some(PROBE_TIMEOUT))
                .build()
                .call()
        };
        let https = format!("https://{}", self.host);
        let chosen = match probe(format!("{https}/v2/")) {
            Ok(_) => https,
            Err(https_error) => {
                let http = format!("http://{}", self.host);
                match probe(format!("{http}/v2/")) {
                    Ok(_) => http,
                    Err(_) => {
                        return Err(self.transport(
                            &Method::GET,
                            &format!("{https}/v2/"),
                            https_error,
                        ))
                    }
                }
            }
        };
        *base = Some(chosen.clone());
        Ok(chosen)
    }

    /// Sends `call`, answering one `401` challenge (a fresh token, or
    /// Basic credentials) and repeating transient failures.
    fn send(&self, mut call: Call<'_>) -> Result<Response<Body>> {
        let mut authenticated = false;
        let mut retries = 0;
        loop {
            let replayable = !matches!(call.payload, Payload::Stream(..));
            let result = self.send_once(&mut call);
            let wait = match &result {
                Err(ureq::Error::Io(e)) if retry::is_transient_io(e) => None,
                Ok(r) if retry::is_transient_status(r.status().as_u16()) => {
                    let after = header(r, "retry-after");
                    Some(after.and_then(|v| retry::retry_after(&v, SystemTime::now())))
                }
                Ok(r) if r.status().as_u16() == 401 && !authenticated => {
                    authenticated = true;
                    let challenge = header(r, "www-authenticate");
                    if self.authenticate(&call, challenge.as_deref())? && replayable {
                        continue;
                    }
                    return result.map_err(|e| self.transport(&call.method, &call.url, e));
                }
                _ => return result.map_err(|e| self.transport(&call.method, &call.url, e)),
            };
            if !replayable || retries >= self.max_retries {
                return result.map_err(|e| self.transport(&call.method, &call.url, e));
            }
            let backoff = retry::backoff(self.retry_backoff, retries);
            std::thread::sleep(wait.flatten().map_or(backoff, retry::cap_retry_after));
            retries += 1;
        }
    }

    fn send_once(&self, call: &mut Call<'_>) -> Result<Response<Body>, ureq::Error> {
        let mut request = ureq::http::Request::builder()
            .method(call.method.clone())
            .uri(&call.url);
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(auth) = self.auth_header(&call.scopes) {
            request = request.header("Authorization", auth);
        }
        match &mut call.payload {
            Payload::Empty => self.agent.run(request.body(())?),
            Payload::Bytes(b) => self.agent.run(request.body(*b)?),
            Payload::Stream(reader, size) => {
                let request = request.header("Content-Length", size.to_string());
                self.agent
                    .run(request.body(ureq::SendBody::from_reader(&mut **reader))?)
            }
        }
    }

    /// The `Authorization` value for a request needing `scopes`, from
    /// what the registry asked for so far.
    fn auth_header(&self, scopes: &[String]) -> Option<String> {
        let auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        match &auth.challenge {
            None => None,
            Some(Challenge::Basic) => self.credentials.basic_header(),
            Some(Challenge::Bearer { .. }) => auth
                .tokens
                .get(&scopes.join(" "))
                .map(|t| format!("Bearer {t}")),
        }
    }

    /// Answers a `401`: records a Basic challenge, or fetches a new token
    /// for the call's scopes. `false` when nothing new can be tried.
    fn authenticate(&self, call: &Call<'_>, challenge: Option<&str>) -> Result<bool> {
        let challenge = challenge.and_then(parse_challenge);
        let Some(challenge) = challenge else {
            return Ok(false);
        };
        let token = match &challenge {
            Challenge::Basic => None,
            Challenge::Bearer { realm, service } => {
                Some(self.fetch_token(realm, service.as_deref(), &call.scopes)?)
            }
        };
        let mut auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = token {
            auth.tokens.insert(call.scopes.join(" "), token);
        } else if self.credentials == Credentials::Anonymous {
            auth.challenge = Some(challenge);
            return Ok(false);
        }
        auth.challenge = Some(challenge);
        Ok(true)
    }

    /// A token from the token service (`GET realm?service=…&scope=…`, with
    /// the credentials as Basic when there are any).
    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut url = realm.to_string();
        let mut separator = if url.contains('?') { '&' } else { '?' };
        for (name, value) in service
            .map(|s| ("service", s))
            .into_iter()
            .chain(scopes.iter().map(|s| ("scope", s.as_str())))
        {
            url.push(separator);
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_query(value));
            separator = '&';
        }
        let mut request = self.agent.get(&url);
        if let Some(basic) = self.credentials.basic_header() {
            request = request.header("Authorization", basic);
        }
        let response = request
            .call()
            .map_err(|e| self.transport(&Method::GET, &url, e))?;
        let response = self.expect(&Method::GET, &url, response, &[200])?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| self.transport(&Method::GET, &url, e))?;
        let bad = |reason: &str| Error::BadResponse {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| bad("the token response is not JSON"))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the token response has no token"))
    }

    /// `response` when its status is one of `ok`, else the error it
    /// carries (with the registry's error code).
    fn expect(
        &self,
        method: &Method,
        url: &str,
        response: Response<Body>,
        ok: &[u16],
    ) -> Result<Response<Body>> {
        let status = response.status().as_u16();
        if ok.contains(&status) {
            return Ok(response);
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        let (code, message) = error_code(&body);
        if status == 404 {
            return Err(Error::NotFound {
                url: url.to_string(),
                code,
                message,
            });
        }
        Err(Error::Status {
            method: method.to_string(),
            url: url.to_string(),
            status,
            code,
            message,
        })
    }

    fn transport(&self, method: &Method, url: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Io(cause) => Error::Io {
                url: url.to_string(),
                cause,
            },
            e => Error::Transport {
                method: method.to_string(),
                url: url.to_string(),
                cause: Box::new(e),
            },
        }
    }

    /// The absolute URL of the response's `Location` (often a path).
    fn location(&self, url: &str, response: &Response<Body>) -> Result<String> {
        let location = header(response, "location").ok_or_else(|| Error::BadResponse {
            url: url.to_string(),
            reason: "no Location for the upload".into(),
        })?;
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location);
        }
        let base = self.base()?;
        Ok(format!("{base}/{}", location.trim_start_matches('/')))
    }
}

/// Fills `buf` from `r` unless it ends first; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A reader that counts what went through, and fails when it ends
/// before `size`: ureq would otherwise keep waiting for the bytes its
/// `Content-Length` promised.
struct Counted<R> {
    inner: R,
    count: u64,
    size: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.count < self.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob's reader ended before its size",
            ));
        }
        self.count += n as u64;
        Ok(n)
    }
}

fn scope(repo: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repo}:{actions}")
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `sha256:` and the hex digest of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The document's own `mediaType`, for registries that serve manifests
/// as `application/json`.
fn media_type_in(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(bytes).ok()?.media_type
}

/// The first `{"errors":[{"code":…,"message":…}]}` entry.
fn error_code(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e.errors.into_iter().next().map_or((None, None), |e| {
            (e.code, e.message.filter(|m| !m.is_empty()))
        }),
        Err(_) => (None, None),
    }
}

/// Percent-encodes all but unreserved characters and `:/,`, which scopes
/// and repository names use and query strings allow.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Registry>();
        send::<BlobReader>();
    }

    #[test]
    fn query_encoding_and_error_codes() {
        assert_eq!(
            encode_query("repository:a/b:pull,push"),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            encode_query("Docker registry&x=1"),
            "Docker%20registry%26x%3D1"
        );
        assert_eq!(
            error_code(br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#),
            (Some("BLOB_UNKNOWN".into()), Some("blob unknown to registry".into()))
        );
        assert_eq!(error_code(b"<html>"), (None, None));
        assert_eq!(
            media_type_in(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            ),
            Some(OCI_INDEX.into())
        );
    }
}
