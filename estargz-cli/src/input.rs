//! Where inputs come from: paths, `-` for stdin, and blobs opened for
//! random access from a file, an `http(s)://` URL or a registry
//! (`docker://HOST/REPO@DIGEST`).

use crate::UsageError;
use anyhow::{bail, Context, Result};
use estargz_core::{Blob, OpenOptions, ReadAt};
use estargz_registry::{
    credentials_from_auth_files, Credentials, Reference, Registry, RegistryOptions,
};
use estargz_remote::{HttpBlob, HttpOptions, UnauthorizedHook};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// Environment variable with extra HTTP headers for URL blobs, one
/// `Name: value` per line: a token kept there stays out of `ps` output and
/// shell history, unlike `--header`.
pub const HEADERS_ENV: &str = "ESTARGZ_HTTP_HEADERS";

/// An input named on the command line: a path or `-` for stdin, with a
/// [`Watch`] on it when it is a regular file, for the caller to check once
/// it has read everything.
pub fn open_input(name: &str) -> Result<(Box<dyn Read + Send>, Option<Watch>)> {
    if name == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
    let watch = Watch::of(&file, name)?;
    Ok((Box::new(file), watch))
}

/// What tells that a file changed: size, modification and change times.
#[derive(PartialEq, Eq, Debug)]
struct Stamp(u64, i64, i64, i64, i64);

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp(
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    }
}

/// A regular-file input watched for changes while it is read: a file
/// appended to or rewritten during the run gives a result that mixes old
/// and new bytes (or misses the new ones) yet is well formed, so the
/// stamps before and after are compared and a difference is an error.
pub struct Watch {
    /// The same open file: its stamp is taken through the descriptor, so a
    /// rename over the path (which leaves what was read intact) is no change.
    file: File,
    name: String,
    seen: Stamp,
}

impl Watch {
    /// Watches `file`, already stat'ed as `meta`, named `name` in messages.
    pub fn new(file: File, name: &str, meta: &Metadata) -> Watch {
        Watch {
            file,
            name: name.to_string(),
            seen: Stamp::of(meta),
        }
    }

    /// Watches `file` if it is a regular file; pipes, terminals and devices
    /// have no size or times that tell a change.
    pub fn of(file: &File, name: &str) -> Result<Option<Watch>> {
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat {name}"))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let file = file
            .try_clone()
            .with_context(|| format!("cannot watch {name}"))?;
        Ok(Some(Watch::new(file, name, &meta)))
    }

    /// Opens `path` to watch it; `-` (stdin) is not watched.
    pub fn open(path: &str) -> Result<Option<Watch>> {
        if path == "-" {
            return Ok(None);
        }
        let file = File::open(path).with_context(|| format!("cannot open {path}"))?;
        Watch::of(&file, path)
    }

    /// Fails when the file changed since it was first stat'ed.
    pub fn check_unchanged(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .with_context(|| format!("cannot stat {}", self.name))?;
        if Stamp::of(&now) != self.seen {
            // A file output is then never committed; stdout has the bytes already.
            bail!(
                "{} changed while it was being read: the result may mix old and new bytes",
                self.name
            );
        }
        Ok(())
    }
}

/// A blob file, for positioned reads.
pub fn open_blob_file(path: &str) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {path}"))
}

/// How to reach a blob given as a URL; flattened into every command that
/// takes one.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// Extra HTTP request header when BLOB is an http(s):// URL, as
    /// "Name: value" (repeatable), e.g. "Authorization: Bearer TOKEN".
    /// Headers are also read from ESTARGZ_HTTP_HEADERS, one per line.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Trust the CA certificates in this PEM file for https:// URLs
    /// instead of the bundled Mozilla roots (e.g. a private registry's CA).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Seconds each HTTP request may take in all, plus 1 s per 128 KiB it
    /// asks for, when BLOB is a URL [default: 30]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Times an HTTP request is tried again after a connection reset or a
    /// 408, 429, 500, 502, 503 or 504, waiting 0.5 s, then twice as long
    /// each time (or what Retry-After says), within 60 s [default: 4]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Credentials for a docker:// BLOB, USER or USER:PASS (default: the auth
    /// files convert-image reads)
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Verify a docker:// BLOB's registry certificate; `false` also allows
    /// plain HTTP (a registry on localhost), as skopeo's --tls-verify
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: bool,
}

impl RemoteArgs {
    pub fn http_options(&self) -> Result<HttpOptions> {
        let from_env = std::env::var(HEADERS_ENV).unwrap_or_default();
        let lines = from_env
            .lines()
            .map(|l| (l, HEADERS_ENV))
            .chain(self.headers.iter().map(|h| (h.as_str(), "--header")));
        let mut headers = Vec::new();
        for (line, origin) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| {
                UsageError(format!(
                    "{origin}: {:?} is not of the form \"Name: value\"",
                    // The value may be a secret: show the name only.
                    line.split_whitespace().next().unwrap_or("")
                ))
            })?;
            let name = name.trim();
            if !is_token(name) {
                return Err(
                    UsageError(format!("{origin}: invalid HTTP header name {name:?}")).into(),
                );
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let ca_certs = match &self.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --cacert {}", path.display()))?,
            ),
            None => None,
        };
        let defaults = HttpOptions::default();
        Ok(HttpOptions {
            headers,
            ca_certs,
            request_timeout: self
                .timeout
                .map_or(defaults.request_timeout, std::time::Duration::from_secs),
            max_retries: self.retries.unwrap_or(defaults.max_retries),
            ..defaults
        })
    }
}

/// The bytes of a blob named on the command line: a local file, or an
/// `http://` / `https://` URL or `docker://HOST/REPO@DIGEST` read lazily
/// with range requests.
pub fn open_blob_source(name: &str, remote: &RemoteArgs) -> Result<Box<dyn ReadAt>> {
    match open_remote_blob(name, remote)? {
        Some(http) => Ok(Box::new(http)),
        None => Ok(Box::new(open_blob_file(name)?)),
    }
}

/// A blob named by URL or registry reference, opened for range reads;
/// `None` for anything else (a local file).
pub fn open_remote_blob(name: &str, remote: &RemoteArgs) -> Result<Option<HttpBlob>> {
    open_remote_blob_with(name, remote, remote.http_options()?)
}

/// [`open_remote_blob`] with these HTTP options (`remote`'s, tuned).
pub fn open_remote_blob_with(
    name: &str,
    remote: &RemoteArgs,
    http: HttpOptions,
) -> Result<Option<HttpBlob>> {
    if name.starts_with("docker://") {
        return open_registry_blob(name, remote, http).map(Some);
    }
    if !estargz_remote::is_url(name) {
        return Ok(None);
    }
    // The error names the URL, the range and the status already.
    Ok(Some(HttpBlob::open(name, &http)?))
}

/// `docker://HOST/REPO@DIGEST`: the registry's blob URL, with the token
/// (or Basic credentials) the registry asks for, renewed when it expires.
fn open_registry_blob(name: &str, remote: &RemoteArgs, mut http: HttpOptions) -> Result<HttpBlob> {
    let reference = Reference::parse(name).map_err(|e| UsageError(format!("{name}: {e}")))?;
    let Some(digest) = reference.digest() else {
        let wanted = "a layer is named by its digest: docker://HOST/REPO@sha256:…";
        return Err(UsageError(format!("{name}: {wanted}")).into());
    };
    let registry = Arc::new(registry_client(&reference, remote)?);
    let repo = reference.repository().to_string();
    let location = registry
        .blob_location(&repo, digest)
        .with_context(|| format!("cannot reach {name}"))?;
    let given: Vec<_> = http
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
        .cloned()
        .collect();
    http.headers = given.iter().cloned().chain(location.headers).collect();
    http.on_unauthorized = Some(UnauthorizedHook::new(move |challenge| {
        let value = challenge.www_authenticate.first()?;
        let fresh = registry.reauthorize(&repo, value).ok().flatten()?;
        Some(given.iter().cloned().chain(fresh).collect())
    }));
    Ok(HttpBlob::open(&location.url, &http)?)
}

/// A client of the registry `reference` names, with the credentials and
/// TLS settings of `remote`.
pub fn registry_client(reference: &Reference, remote: &RemoteArgs) -> Result<Registry> {
    let mut opts = RegistryOptions::default();
    opts.credentials = match &remote.creds {
        Some(c) => Credentials::from_user_pass(c),
        None => credentials_from_auth_files(reference.registry())?,
    };
    opts.tls_verify = remote.tls_verify;
    opts.ca_certs = remote.http_options()?.ca_certs;
    Ok(Registry::new(reference.api_host(), opts)?)
}

/// Like [`open_blob_source`], with a [`Watch`] when the blob is a local
/// regular file, for a caller whose output a changed blob would spoil.
pub fn open_watched_blob_source(
    name: &str,
    remote: &RemoteArgs,
) -> Result<(Box<dyn ReadAt>, Option<Watch>)> {
    if let Some(http) = open_remote_blob(name, remote)? {
        return Ok((Box::new(http), None));
    }
    let file = open_blob_file(name)?;
    let watch = Watch::of(&file, name)?;
    Ok((Box::new(file), watch))
}

/// Header names are tokens (RFC 9110 §5.6.2): checked here so that a typo
/// is a usage error (exit 2) rather than a failed request.
fn is_token(name: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.bytes().all(token)
}

/// Where the TOC of an external-TOC blob is; flattened into the commands
/// that read the TOC.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TocArgs {
    /// The TOC file of a blob written with `convert --external-toc` (such a
    /// blob ends with the external-TOC footer and holds no TOC itself).
    #[arg(long, value_name = "FILE")]
    pub external_toc: Option<std::path::PathBuf>,
}

impl TocArgs {
    /// Reader options carrying the external TOC, when one was given.
    pub fn open_options(&self) -> Result<OpenOptions> {
        let external_toc = match &self.external_toc {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --external-toc {}", path.display()))?,
            ),
            None => None,
        };
        Ok({
            let mut o = OpenOptions::default();
            o.external_toc = external_toc;
            o
        })
    }
}

/// A blob named on the command line and how to read it: its path or URL,
/// HTTP options, and the TOC file of an external-TOC blob. Flattened into
/// every command that reads a blob's TOC.
#[derive(clap::Args, Debug, Clone)]
pub struct BlobArgs {
    /// The blob: a file, an http:// or https:// URL, or docker://HOST/REPO@DIGEST, read with range requests.
    pub blob: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub toc: TocArgs,
}

impl BlobArgs {
    /// The blob's bytes, for positioned reads.
    pub fn source(&self) -> Result<Box<dyn ReadAt>> {
        open_blob_source(&self.blob, &self.remote)
    }

    /// The blob opened through its footer and TOC.
    pub fn open(&self) -> Result<Blob<Box<dyn ReadAt>>> {
        let opts = self.toc.open_options()?;
        let source = self.source()?;
        Blob::open(source, &opts).with_context(|| format!("opening {}", self.blob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_regular_file_changed_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, b"first bytes").unwrap();
        let name = path.to_str().unwrap();
        let (mut input, watch) = open_input(name).unwrap();
        let watch = watch.expect("a regular file is watched");
        let mut head = [0u8; 5];
        input.read_exact(&mut head).unwrap();
        watch.check_unchanged().unwrap();
        // Appended: the stream would go on to read the new bytes.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b" and more").unwrap();
        let err = watch.check_unchanged().unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("changed while"), "{err}");

        // Stdin and devices are not watched.
        assert!(open_input("-").unwrap().1.is_none());
        assert!(open_input("/dev/null").unwrap().1.is_none());
        assert!(Watch::open("-").unwrap().is_none());
    }
}
