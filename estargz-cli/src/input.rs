//! Where inputs come from: paths, `-` for stdin, and blobs opened for
//! random access from a file or an `http(s)://` URL.

use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::read::{Blob, OpenOptions, ReadAt};
use estargz_remote::{HttpBlob, HttpOptions};
use std::fs::File;
use std::io::{self, Read};

/// Environment variable with extra HTTP headers for URL blobs, one
/// `Name: value` per line: a token kept there stays out of `ps` output and
/// shell history, unlike `--header`.
pub const HEADERS_ENV: &str = "ESTARGZ_HTTP_HEADERS";

/// An input named on the command line: a path or `-` for stdin.
pub fn open_input(name: &str) -> Result<Box<dyn Read + Send>> {
    if name == "-" {
        return Ok(Box::new(io::stdin()));
    }
    let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
    Ok(Box::new(file))
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
}

impl RemoteArgs {
    fn http_options(&self) -> Result<HttpOptions> {
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
/// `http://` / `https://` URL read lazily with range requests.
pub fn open_blob_source(name: &str, remote: &RemoteArgs) -> Result<Box<dyn ReadAt>> {
    if estargz_remote::is_url(name) {
        let opts = remote.http_options()?;
        // The error names the URL, the range and the status already.
        return Ok(Box::new(HttpBlob::open(name, &opts)?));
    }
    Ok(Box::new(open_blob_file(name)?))
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
        Ok(OpenOptions {
            external_toc,
            ..OpenOptions::default()
        })
    }
}

/// A blob named on the command line and how to read it: its path or URL,
/// HTTP options, and the TOC file of an external-TOC blob. Flattened into
/// every command that reads a blob's TOC.
#[derive(clap::Args, Debug, Clone)]
pub struct BlobArgs {
    /// The blob: a file, or an http:// or https:// URL read with range requests.
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
