//! The out-of-tree vendor provider (`examples/vendor-provider`, "Acme Cloud"): built by cargo
//! as a vendor would (its own crate, outside this workspace), installed with `qlam plugins
//! install`, and used through `qlam` against Acme's API served on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::util::Home;

const KEY: &str = "acme-key-canary-7781";

/// Builds the example in its own target dir, once per test run.
fn vendor_library() -> &'static PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = root.join("target/vendor");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(root.join("examples/vendor-provider/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "building examples/vendor-provider failed");
        target.join(format!(
            "debug/{}acme_qlam_provider.{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_EXTENSION
        ))
    })
}

/// What the Acme server saw: (method, path, authorization).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// Acme's API: `POST /v1/sessions` with `ApiKey <KEY>` makes session `sess-N`;
/// `DELETE /v1/sessions/current` ends one.
fn acme_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut sessions = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let (mut auth, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_owned();
                } else if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or("").to_owned();
            let path = parts.next().unwrap_or("").to_owned();
            log.lock()
                .unwrap()
                .push((method.clone(), path.clone(), auth.clone()));
            let (status, body) = match (method.as_str(), path.as_str()) {
                ("POST", "/v1/sessions") if auth == format!("ApiKey {KEY}") => {
                    sessions += 1;
                    (
                        "200 OK",
                        format!(r#"{{"session_token": "sess-{sessions}", "expires_in": 900}}"#),
                    )
                }
                ("POST", "/v1/sessions") => ("401 Unauthorized", r#"{"error":"bad key"}"#.into()),
                ("DELETE", "/v1/sessions/current") => ("204 No Content", String::new()),
                _ => ("404 Not Found", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, seen)
}

#[test]
fn the_out_of_tree_vendor_provider_installs_and_works_through_qlam() {
    let lib = vendor_library();
    let home = Home::new();
    let (base, seen) = acme_server();
    home.write_config(&format!(
        "current_context = \"work\"\n[contexts.work]\nauth_providers = [{{ name = \"acme-prod\", provider = \"acme\", api_url = \"{base}\" }}]\n"
    ));
    // Only the vendor's library: `bare_qlam` has no bundled plugins beside it.
    let qlam = |args: &[&str]| crate::util::run(home.bare_qlam().args(args));
    let qlam_in = |args: &[&str], stdin: &str| {
        crate::util::run_with_stdin(home.bare_qlam().args(args), stdin)
    };
    let r = qlam(&[
        "--output",
        "json",
        "plugins",
        "install",
        lib.to_str().unwrap(),
    ]);
    r.ok();
    assert_eq!(r.json()["provider_types"], serde_json::json!(["acme"]));

    let r = qlam(&["auth", "token", "acme-prod"]);
    r.code(3);
    assert!(
        r.stderr.contains("run `qlam auth login acme-prod`"),
        "{}",
        r.stderr
    );

    // A wrong key is refused by Acme and not kept.
    let r = qlam_in(&["auth", "login", "acme-prod"], "not-the-key\n");
    r.code(3);
    assert!(
        r.stderr.contains("Acme refused the API key"),
        "{}",
        r.stderr
    );

    // Log in: the key is checked by making a session, which is then used.
    let r = qlam_in(&["-vv", "auth", "login", "acme-prod"], &format!("{KEY}\n"));
    r.ok();
    assert!(!r.stderr.contains(KEY), "the key leaked: {}", r.stderr);
    let r = qlam(&["auth", "token", "acme-prod"]);
    r.ok();
    assert_eq!(r.stdout, "sess-1\n");
    let r = qlam(&["auth", "headers", "acme-prod"]);
    r.ok();
    assert_eq!(r.stdout, "Authorization: Bearer sess-1\n");
    let r = qlam(&["--output", "json", "auth", "status"]);
    r.ok();
    assert_eq!(r.json()[0]["status"], "authenticated", "{}", r.stdout);

    // Refresh makes a new session.
    qlam(&["auth", "refresh", "acme-prod", "--force"]).ok();
    let r = qlam(&["auth", "token", "acme-prod"]);
    r.ok();
    assert_eq!(r.stdout, "sess-2\n");

    // The credential model: vendor kind, secrets redacted.
    let r = qlam(&["auth", "credential", "acme-prod"]);
    r.ok();
    assert!(
        r.stdout.contains("\"type\": \"acme-api-key\"") && r.stdout.contains("REDACTED"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(KEY), "{}", r.stdout);

    // Logout ends the session at Acme and forgets the key.
    qlam(&["auth", "logout", "acme-prod"]).ok();
    qlam(&["auth", "token", "acme-prod"]).code(3);

    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/v1/sessions"),
            ("POST", "/v1/sessions"),
            ("POST", "/v1/sessions"),
            ("DELETE", "/v1/sessions/current"),
        ],
        "wrong key, login, forced refresh, logout — and nothing else"
    );
    assert_eq!(seen[3].2, "Bearer sess-2");
    // The key never shows in any output.
    for run in [
        qlam(&["-vv", "auth", "status"]),
        qlam(&["-vv", "auth", "credential", "acme-prod"]),
    ] {
        assert!(!run.stderr.contains(KEY) && !run.stdout.contains(KEY));
    }
}
