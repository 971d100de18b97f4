//! The Rust SDK from async code: `AsyncAuthClient` and the reqwest-middleware layer, against
//! an API on loopback that rejects an old token with `401 invalid_token`.

use std::sync::{Arc, Mutex};

use qlam_host::config::Config;
use qlam_host::middleware::QlamAuth;
use qlam_host::{AsyncAuthClient, AuthClient};

use crate::util::stub::{serve, Reply};

/// An API that accepts only `Bearer t2`; `t1` gets `401` with `error="invalid_token"`,
/// `/plain-401` always answers a 401 without it. Records the Authorization headers.
fn api() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let base = serve(move |r| {
        log.lock().unwrap().push(r.auth().to_owned());
        if r.path == "/plain-401" {
            Reply::empty("401 Unauthorized").with("WWW-Authenticate", "Bearer realm=\"api\"")
        } else if r.auth() == "Bearer t2" {
            Reply::json("200 OK", "hello")
        } else {
            Reply::empty("401 Unauthorized").with(
                "WWW-Authenticate",
                "Bearer error=\"invalid_token\", error_description=\"expired\"",
            )
        }
    });
    (base, seen)
}

#[test]
fn middleware_adds_headers_and_renews_once_on_invalid_token() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    // A token command that answers t1, then t2, … (each run is a new token).
    let config = format!(
        r#"[contexts.c]
[[contexts.c.auth_providers]]
name = "api"
provider = "token"
command = ["sh", "-c", "n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'; echo \"{{\\\"token\\\": \\\"t$n\\\", \\\"expires_at\\\": \\\"2099-01-01T00:00:00Z\\\"}}\""]
"#,
        c = counter.display()
    );
    let client = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .no_plugin_index()
        .plugin_dir(&crate::util::artifacts().bin_dir)
        .store_dir(dir.path().join("store"))
        .config(Config::parse(&config, std::path::Path::new("/c.toml")).unwrap())
        .build()
        .unwrap();
    let auth = AsyncAuthClient::new(client);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(QlamAuth::new(auth.clone(), "api"))
        .build();
    let (base, seen) = api();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // t1 is rejected as invalid_token: one renewal (a new command run), one retry.
        let r = http.get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "hello");
        assert_eq!(*seen.lock().unwrap(), ["Bearer t1", "Bearer t2"]);
        // The renewed answer is reused: no new token, one request.
        let r = http.get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(seen.lock().unwrap().len(), 3);
        // A 401 without invalid_token is the server's answer: no renewal, no retry.
        let r = http.get(format!("{base}/plain-401")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(seen.lock().unwrap().len(), 4);
        // The async client answers like the blocking one.
        let t = auth.token("api").await.unwrap();
        assert_eq!(t.token.expose(), "t2");
        assert!(auth.is_authenticated(Some("api")).await.unwrap());
    });
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "2");
}
