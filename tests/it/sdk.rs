//! The Rust SDK from async code: `AsyncAuthClient` and the reqwest-middleware layer, against
//! an API on loopback that rejects an old token with `401 invalid_token`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use qlam_host::config::Config;
use qlam_host::middleware::QlamAuth;
use qlam_host::{AsyncAuthClient, AuthClient};

/// An API that accepts only `Bearer t2`; `t1` gets `401` with `error="invalid_token"`,
/// `/plain-401` always answers a 401 without it. Records the Authorization headers.
fn api() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_owned();
                }
            }
            log.lock().unwrap().push(auth.clone());
            let plain = first.contains("/plain-401");
            let (status, extra, body) = if plain {
                (
                    "401 Unauthorized",
                    "WWW-Authenticate: Bearer realm=\"api\"\r\n",
                    "",
                )
            } else if auth == "Bearer t2" {
                ("200 OK", "", "hello")
            } else {
                (
                    "401 Unauthorized",
                    "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"expired\"\r\n",
                    "",
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
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
