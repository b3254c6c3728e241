//! # estargz-registry
//!
//! A small, blocking client of the OCI distribution API (what Docker
//! registries, distribution, Harbor, quay.io and the cloud registries
//! serve): manifests and indexes, blobs streamed and checked against their
//! digest, existence checks, cross-repository mounts, uploads, with
//! anonymous, Basic and Bearer-token authentication configured once.
//!
//! ```no_run
//! use estargz_registry::{credentials_from_auth_files, Reference, Registry, RegistryOptions};
//!
//! let src = Reference::parse("docker://registry.example/team/app:v1")?;
//! let mut opts = RegistryOptions::default();
//! opts.credentials = credentials_from_auth_files(src.registry())?;
//! let registry = Registry::new(src.api_host(), opts)?;
//! let manifest = registry.pull_manifest(src.repository(), src.reference())?;
//!
//! // Copy one blob to another repository of the same registry: a mount
//! // when the registry allows it, else a verified download and an upload.
//! let (digest, size) = ("sha256:…", 1234);
//! if !registry.blob_exists("team/copy", digest)?
//!     && !registry.mount_blob("team/app", "team/copy", digest)?
//! {
//!     let blob = registry.blob_reader("team/app", digest)?;
//!     registry.push_blob("team/copy", digest, size, blob)?;
//! }
//! // Manifests last, by digest and then by tag.
//! let pushed = registry.push_manifest("team/copy", &manifest.digest, &manifest.media_type, &manifest.bytes)?;
//! registry.push_manifest("team/copy", "v1", &manifest.media_type, &manifest.bytes)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Secrets (passwords, tokens) never appear in errors or `Debug` output.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod client;
mod error;
mod reference;
/// When a failed request is tried again: the policy `estargz-remote`'s
/// range reads follow too.
pub use estargz_remote::retry;
mod verify;

pub use auth::{
    auth_file_paths, auth_file_paths_with, credentials_from_auth_files, credentials_from_auth_json,
    credentials_from_files, Credentials,
};
pub use client::{
    BlobLocation, PulledManifest, Registry, RegistryOptions, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE, OCI_INDEX, OCI_MANIFEST,
};
pub use error::{Error, Result};
pub use reference::{Reference, DOCKER_HUB, DOCKER_HUB_API};
pub use verify::BlobReader;
