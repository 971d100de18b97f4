//! The out-of-tree vendor provider (`examples/vendor-provider`, "Acme Cloud"): built by cargo
//! as a vendor would (its own crate, outside this workspace), installed with `qlam plugins
//! install`, and used through `qlam` against Acme's API served on loopback.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::util::stub::{serve, Reply};
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
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let mut sessions = 0;
    let base = serve(move |r| {
        log.lock()
            .unwrap()
            .push((r.method.clone(), r.path.clone(), r.auth().to_owned()));
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/v1/sessions") if r.auth() == format!("ApiKey {KEY}") => {
                sessions += 1;
                Reply::json(
                    "200 OK",
                    format!(r#"{{"session_token": "sess-{sessions}", "expires_in": 900}}"#),
                )
            }
            ("POST", "/v1/sessions") => Reply::json("401 Unauthorized", r#"{"error":"bad key"}"#),
            ("DELETE", "/v1/sessions/current") => Reply::empty("204 No Content"),
            _ => Reply::empty("404 Not Found"),
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
