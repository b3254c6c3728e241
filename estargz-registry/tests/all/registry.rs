//! The client against a real registry (distribution 2.8, started by the
//! test: plain HTTP anonymous, htpasswd Basic auth, and token auth with
//! a token issuer the test starts) and against an in-process fake for
//! token expiry and damaged blobs.

use crate::common::fake::Fake;
use crate::common::registry::{require, RegistryServer, PASSWORD, USER};
use crate::common::{digest, Image};
use estargz_registry::{Credentials, Error, Registry, RegistryOptions, OCI_MANIFEST};
use std::io::Read;
use std::process::Command;
use std::time::Duration;

fn client(host: &str, credentials: Credentials) -> Registry {
    let mut opts = RegistryOptions::default();
    opts.credentials = credentials;
    // Plain HTTP on loopback, found by the https-then-http probe.
    opts.tls_verify = false;
    Registry::new(host, opts).unwrap()
}

fn read_blob(r: &Registry, repo: &str, d: &str) -> Vec<u8> {
    let mut out = Vec::new();
    r.blob_reader(repo, d)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Pushes `image` to `repo` as a client would: blobs, then the manifest by
/// digest, then by tag. Returns the manifest digest.
fn push_image(r: &Registry, repo: &str, tag: &str, image: &Image) -> String {
    for blob in [&image.layer, &image.config] {
        let d = digest(blob);
        assert!(!r.blob_exists(repo, &d).unwrap(), "{d} before the push");
        r.push_blob(repo, &d, blob.len() as u64, &blob[..]).unwrap();
        assert!(r.blob_exists(repo, &d).unwrap(), "{d} after the push");
    }
    let by_digest = digest(&image.manifest);
    let pushed = r
        .push_manifest(repo, &by_digest, OCI_MANIFEST, &image.manifest)
        .unwrap();
    assert_eq!(pushed, by_digest);
    let tagged = r
        .push_manifest(repo, tag, OCI_MANIFEST, &image.manifest)
        .unwrap();
    assert_eq!(tagged, by_digest);
    by_digest
}

fn skopeo_inspect(reference: &str, creds: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let out = cmd.arg(reference).output().expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

fn skopeo_present() -> bool {
    require(
        "skopeo",
        Command::new("skopeo").arg("--version").output().is_ok(),
    )
}

#[test]
fn push_pull_mount_and_skopeo_reads_it() {
    let Some(server) = RegistryServer::start() else {
        return;
    };
    let r = client(&server.host(), Credentials::Anonymous);
    let image = Image::new("hello from the registry test\n");
    let manifest_digest = push_image(&r, "team/app", "v1", &image);

    for reference in ["v1", manifest_digest.as_str()] {
        let pulled = r.pull_manifest("team/app", reference).unwrap();
        assert_eq!(pulled.bytes, image.manifest);
        assert_eq!(pulled.media_type, OCI_MANIFEST);
        assert_eq!(pulled.digest, manifest_digest);
    }
    assert_eq!(
        read_blob(&r, "team/app", &digest(&image.layer)),
        image.layer
    );
    assert_eq!(
        read_blob(&r, "team/app", &digest(&image.config)),
        image.config
    );

    // Cross-repository mount: no bytes move, the blob is there after.
    let layer = digest(&image.layer);
    assert!(!r.blob_exists("team/copy", &layer).unwrap());
    assert!(r.mount_blob("team/app", "team/copy", &layer).unwrap());
    assert!(r.blob_exists("team/copy", &layer).unwrap());
    assert_eq!(read_blob(&r, "team/copy", &layer), image.layer);
    // A blob the source does not have cannot be mounted.
    let unknown = digest(b"never pushed");
    assert!(!r.mount_blob("team/app", "team/copy", &unknown).unwrap());
    assert!(!r.blob_exists("team/copy", &unknown).unwrap());

    if skopeo_present() {
        let inspected = skopeo_inspect(&format!("docker://{}/team/app:v1", server.host()), None);
        assert_eq!(inspected["Digest"], manifest_digest.as_str());
        assert_eq!(inspected["Layers"][0], layer.as_str());
        assert_eq!(inspected["Architecture"], "amd64");
    }
}

#[test]
fn missing_things_are_typed_not_found_errors() {
    let Some(server) = RegistryServer::start() else {
        return;
    };
    let r = client(&server.host(), Credentials::Anonymous);
    let e = r.pull_manifest("no/such-repo", "latest").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(e.status(), Some(404));
    assert!(
        matches!(e.code(), Some("NAME_UNKNOWN" | "MANIFEST_UNKNOWN")),
        "{e}"
    );
    let image = Image::new("x");
    push_image(&r, "some/repo", "v1", &image);
    let e = r.pull_manifest("some/repo", "v2").unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("MANIFEST_UNKNOWN")),
        "{e}"
    );
    let e = r.blob_reader("some/repo", &digest(b"absent")).unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("BLOB_UNKNOWN")),
        "{e}"
    );
    assert!(e.to_string().contains(&server.host()), "the URL in {e}");

    // The registry checks the digest of what is pushed.
    let e = r
        .push_blob("some/repo", &digest(b"other"), 5, &b"bytes"[..])
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(400), Some("DIGEST_INVALID")),
        "{e}"
    );
    // A reader shorter than the size given is refused before the PUT completes.
    let e = r
        .push_blob("some/repo", &digest(b"bytes"), 9, &b"bytes"[..])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::SizeMismatch {
                expected: 9,
                received: 5,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn htpasswd_basic_auth() {
    let Some(server) = RegistryServer::start_with_htpasswd() else {
        return;
    };
    let good = client(
        &server.host(),
        Credentials::from_user_pass(&format!("{USER}:{PASSWORD}")),
    );
    let image = Image::new("behind a password\n");
    let manifest_digest = push_image(&good, "private/app", "v1", &image);
    let pulled = good.pull_manifest("private/app", "v1").unwrap();
    assert_eq!(pulled.bytes, image.manifest);
    assert_eq!(
        read_blob(&good, "private/app", &digest(&image.layer)),
        image.layer
    );

    let wrong = client(
        &server.host(),
        Credentials::from_user_pass(&format!("{USER}:not-{PASSWORD}")),
    );
    let e = wrong.pull_manifest("private/app", "v1").unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.code(), Some("UNAUTHORIZED"), "{e}");
    for shown in [e.to_string(), format!("{e:?}"), format!("{wrong:?}")] {
        assert!(!shown.contains(PASSWORD), "secret shown: {shown}");
    }
    let anonymous = client(&server.host(), Credentials::Anonymous);
    let e = anonymous
        .blob_exists("private/app", &digest(&image.layer))
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");

    if skopeo_present() {
        let reference = format!("docker://{}/private/app:v1", server.host());
        let creds = format!("{USER}:{PASSWORD}");
        let inspected = skopeo_inspect(&reference, Some(&creds));
        assert_eq!(inspected["Digest"], manifest_digest.as_str());
    }
}

#[test]
fn bearer_tokens_are_fetched_cached_and_refreshed() {
    let fake = Fake::start(false);
    let body = b"layer bytes".to_vec();
    let d = digest(&body);
    fake.blob("team/app", &d, &body, body.len());
    let r = client(
        &fake.host(),
        Credentials::from_user_pass(&format!("{USER}:{PASSWORD}")),
    );
    assert_eq!(read_blob(&r, "team/app", &d), body);
    assert_eq!(read_blob(&r, "team/app", &d), body);
    let seen = fake.seen();
    let tokens: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert_eq!(tokens.len(), 1, "one token for two reads: {seen:#?}");
    assert_eq!(
        tokens[0].target,
        "/token?service=fake%20registry&scope=repository:team/app:pull"
    );
    assert!(tokens[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));
    let bearer: Vec<_> = seen
        .iter()
        .filter(|s| s.target.contains("/blobs/") && s.authorization.is_some())
        .collect();
    assert_eq!(bearer.len(), 2, "{seen:#?}");

    // A token that stopped working is replaced on the 401.
    fake.expire_tokens();
    assert_eq!(read_blob(&r, "team/app", &d), body);
    let seen = fake.seen();
    assert_eq!(
        seen.iter()
            .filter(|s| s.target.starts_with("/token"))
            .count(),
        2
    );
    assert_eq!(
        seen.last().unwrap().authorization.as_deref(),
        Some("Bearer tok-2")
    );
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("tok-") && !shown.contains(PASSWORD),
        "{shown}"
    );

    // Errors behind the token keep the registry's code.
    let e = r.pull_manifest("team/app", "missing").unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("MANIFEST_UNKNOWN")),
        "{e}"
    );
}

/// The Bearer flow against the real registry with `token` auth and a
/// token issuer the harness starts: the client follows the challenge,
/// asks for the push and pull scopes it needs, and the registry accepts
/// the JWTs.
#[test]
fn bearer_tokens_from_a_real_token_registry() {
    let Some(server) = RegistryServer::start_with_token(Duration::from_secs(600)) else {
        return;
    };
    let issuer = server.issuer().unwrap();
    let r = client(
        &server.host(),
        Credentials::from_user_pass(&format!("{USER}:{PASSWORD}")),
    );
    let image = Image::new("behind a token\n");
    let manifest_digest = push_image(&r, "tokens/app", "v1", &image);
    assert_eq!(
        r.pull_manifest("tokens/app", "v1").unwrap().bytes,
        image.manifest
    );
    let layer = digest(&image.layer);
    assert_eq!(read_blob(&r, "tokens/app", &layer), image.layer);
    let asked = issuer.requests();
    assert!(!asked.is_empty(), "no token was asked for");
    assert!(
        asked.iter().all(|t| t.authenticated == Some(true)),
        "every token request carries the credentials: {asked:#?}"
    );
    let scopes: Vec<&str> = asked
        .iter()
        .flat_map(|t| &t.scopes)
        .map(|s| s.as_str())
        .collect();
    assert!(
        scopes
            .iter()
            .any(|s| s.starts_with("repository:tokens/app:") && s.contains("push")),
        "a push scope for the push: {scopes:?}"
    );

    // A mount from another repository asks for pull on the source too.
    assert!(r.mount_blob("tokens/app", "tokens/copy", &layer).unwrap());
    assert_eq!(read_blob(&r, "tokens/copy", &layer), image.layer);

    let wrong = client(
        &server.host(),
        Credentials::from_user_pass(&format!("{USER}:not-{PASSWORD}")),
    );
    let e = wrong.pull_manifest("tokens/app", "v1").unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(
        e.to_string().contains("/token"),
        "names the token service: {e}"
    );
    assert!(!format!("{e} {e:?}").contains(PASSWORD), "{e:?}");
    // Without credentials the issuer refuses, so the registry does too.
    let anonymous = client(&server.host(), Credentials::Anonymous);
    let e = anonymous.pull_manifest("tokens/app", "v1").unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");

    if skopeo_present() {
        let reference = format!("docker://{}/tokens/app:v1", server.host());
        let inspected = skopeo_inspect(&reference, Some(&format!("{USER}:{PASSWORD}")));
        assert_eq!(inspected["Digest"], manifest_digest.as_str());
    }
}

#[test]
fn bearer_with_a_wrong_password_is_a_clear_401() {
    let fake = Fake::start(false);
    let r = client(
        &fake.host(),
        Credentials::from_user_pass("tester:wrong-secret"),
    );
    let e = r.pull_manifest("team/app", "v1").unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(
        e.to_string().contains("/token"),
        "names the token service: {e}"
    );
    assert!(!format!("{e} {e:?}").contains("wrong-secret"), "{e:?}");
}

#[test]
fn damaged_blobs_fail_at_the_end_of_the_stream() {
    let fake = Fake::start(true);
    let good = b"the real layer".to_vec();
    let d = digest(&good);
    let r = client(&fake.host(), Credentials::Anonymous);
    let inner = |e: &std::io::Error| -> String {
        let e = e
            .get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .expect("typed");
        format!("{e:?}")
    };

    // Same length, different bytes: a digest mismatch.
    fake.blob("team/app", &d, b"the fake layer", good.len());
    let e = r
        .blob_reader("team/app", &d)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(inner(&e).starts_with("DigestMismatch"), "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);

    // Fewer bytes than announced, then the connection closes.
    fake.blob("team/app", &d, &good[..5], good.len());
    let e = r
        .blob_reader("team/app", &d)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(inner(&e).starts_with("SizeMismatch"), "{e}");
}

#[test]
fn htpasswd_behind_tls_with_a_private_ca() {
    let Some(server) = RegistryServer::start_with_htpasswd_and_tls() else {
        return;
    };
    let creds = Credentials::from_user_pass(&format!("{USER}:{PASSWORD}"));
    let mut opts = RegistryOptions::default();
    opts.credentials = creds.clone();
    opts.ca_certs = Some(std::fs::read(server.ca()).unwrap());
    let verified = Registry::new(&server.host(), opts).unwrap();
    let image = Image::new("over TLS\n");
    let manifest_digest = push_image(&verified, "secure/app", "v1", &image);
    assert_eq!(
        verified.pull_manifest("secure/app", "v1").unwrap().bytes,
        image.manifest
    );

    // Without the CA the certificate is refused, and the error says where.
    let mut opts = RegistryOptions::default();
    opts.credentials = creds.clone();
    let untrusting = Registry::new(&server.host(), opts).unwrap();
    let e = untrusting.pull_manifest("secure/app", "v1").unwrap_err();
    assert!(
        matches!(e, Error::Transport { .. } | Error::Io { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains(&format!("https://{}", server.host())),
        "{e}"
    );

    // --tls-verify=false still speaks https to a registry that has it.
    let unverified = client(&server.host(), creds);
    let pulled = unverified
        .pull_manifest("secure/app", &manifest_digest)
        .unwrap();
    assert_eq!(pulled.bytes, image.manifest);

    if skopeo_present() {
        // skopeo trusts the *.crt files of --cert-dir.
        let certs = tempfile::tempdir().unwrap();
        std::fs::copy(server.ca(), certs.path().join("ca.crt")).unwrap();
        let out = Command::new("skopeo")
            .args(["inspect", "--cert-dir"])
            .arg(certs.path())
            .args(["--creds", &format!("{USER}:{PASSWORD}")])
            .arg(format!("docker://{}/secure/app:v1", server.host()))
            .output()
            .expect("skopeo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Digest"], manifest_digest.as_str());
    }
}

#[test]
fn transient_failures_are_retried_within_a_bound() {
    let fake = Fake::start(true);
    let body = b"worth the wait".to_vec();
    let d = digest(&body);
    fake.blob("team/app", &d, &body, body.len());
    let path = format!("/v2/team/app/blobs/{d}");
    let r = client(&fake.host(), Credentials::Anonymous);
    fake.fail(&path, 503, 2);
    assert_eq!(read_blob(&r, "team/app", &d), body);
    fake.fail(&path, 429, 3);
    assert_eq!(read_blob(&r, "team/app", &d), body);
    let requests = fake.seen().iter().filter(|s| s.target == path).count();
    assert_eq!(requests, 8, "401, 2 x 503, 200, 3 x 429, 200");
    // One more failure than the retries allowed: the status is the error.
    fake.fail(&path, 503, 4);
    let e = r.blob_reader("team/app", &d).unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    let e = r.pull_manifest("team/app", "sha512:abc").unwrap_err();
    assert!(matches!(e, Error::BadDigest { .. }), "{e}");
}

#[test]
fn chunked_uploads() {
    let Some(server) = RegistryServer::start() else {
        return;
    };
    let r = client(&server.host(), Credentials::Anonymous);
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = digest(&blob);
    // 100 000 bytes in chunks of 30 000: three full PATCHes and a short one.
    r.push_blob_chunked("team/chunked", &d, blob.len() as u64, &blob[..], 30_000)
        .unwrap();
    assert_eq!(read_blob(&r, "team/chunked", &d), blob);
    let patches = server
        .log()
        .matches("\"PATCH /v2/team/chunked/blobs/uploads/")
        .count();
    assert_eq!(patches, 4, "{}", server.log());
    // An empty blob is only the closing PUT.
    let empty = digest(b"");
    r.push_blob_chunked("team/chunked", &empty, 0, &b""[..], 10)
        .unwrap();
    assert!(r.blob_exists("team/chunked", &empty).unwrap());
    // A reader that ends early is caught before the upload is closed.
    let e = r
        .push_blob_chunked("team/chunked", &digest(b"abc"), 5, &b"abc"[..], 2)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::SizeMismatch {
                expected: 5,
                received: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(!r.blob_exists("team/chunked", &digest(b"abc")).unwrap());
}
