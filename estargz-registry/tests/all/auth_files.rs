//! Credentials from the auth files, in their order, used against a real
//! htpasswd registry. The environment is given to the library rather than
//! set: tests share the process, and children (docker-registry reads
//! `REGISTRY_*` variables as configuration) inherit it.

use crate::common::registry::{RegistryServer, PASSWORD, USER};
use base64::Engine;
use estargz_registry::{
    auth_file_paths_with, credentials_from_files, Credentials, Registry, RegistryOptions,
};

fn auth_json(host: &str, user_pass: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(user_pass);
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
}

#[test]
fn auth_files_in_order_and_used_for_real() {
    let Some(server) = RegistryServer::start_with_htpasswd() else {
        return;
    };
    let host = server.host();
    let dir = tempfile::tempdir().unwrap();
    let (xdg, home) = (dir.path().join("run"), dir.path().join("home"));
    std::fs::create_dir_all(xdg.join("containers")).unwrap();
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let good = format!("{USER}:{PASSWORD}");
    std::fs::write(xdg.join("containers/auth.json"), auth_json(&host, &good)).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        auth_json(&format!("https://{host}"), "docker:other")
            .replace("\"auths\"", "\"credsStore\":\"none\",\"auths\""),
    )
    .unwrap();
    let absent = dir.path().join("absent.json");
    let env = |auth_file: &std::path::Path| {
        let vars = [
            ("REGISTRY_AUTH_FILE", auth_file.as_os_str().to_owned()),
            ("XDG_RUNTIME_DIR", xdg.as_os_str().to_owned()),
            ("HOME", home.as_os_str().to_owned()),
        ];
        auth_file_paths_with(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
    };
    let paths = env(&absent);
    assert_eq!(
        paths,
        [
            dir.path().join("absent.json"),
            xdg.join("containers/auth.json"),
            home.join(".docker/config.json")
        ]
    );

    // The missing REGISTRY_AUTH_FILE is skipped; containers' file wins.
    let creds = credentials_from_files(&paths, &host).unwrap();
    assert_eq!(creds, Credentials::from_user_pass(&good));
    let mut opts = RegistryOptions::default();
    opts.credentials = creds;
    opts.tls_verify = false;
    let r = Registry::new(&host, opts).unwrap();
    assert!(!r
        .blob_exists("private/x", &crate::common::digest(b"nothing"))
        .unwrap());

    // Docker's file, for a host only it names (its key with a scheme).
    std::fs::remove_file(xdg.join("containers/auth.json")).unwrap();
    assert_eq!(
        credentials_from_files(&paths, &host).unwrap(),
        Credentials::from_user_pass("docker:other")
    );
    assert_eq!(
        credentials_from_files(&paths, "elsewhere.example").unwrap(),
        Credentials::Anonymous
    );

    // REGISTRY_AUTH_FILE overrides the others; a broken one is an error
    // that names the file and not its content.
    let explicit = dir.path().join("explicit.json");
    std::fs::write(&explicit, r#"{"auths": {"x": {"auth": "c2VjcmV0"}}, oops"#).unwrap();
    let e = credentials_from_files(&env(&explicit), &host).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("explicit.json"), "{shown}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
}
