//! The keyring credential store against a real Secret Service (gnome-keyring on a private
//! D-Bus), and the visible fallback to files without one.

use serde_json::Value;

use crate::util::keyring::SecretService;
use crate::util::{run, Home};

const CONFIG: &str = r#"current_context = "demo"
credential_store = "STORE"
[contexts.demo]
[[contexts.demo.auth_providers]]
name = "token-demo"
provider = "token"
"#;

fn home_with(store: &str) -> Home {
    let home = Home::new();
    home.write_config(&CONFIG.replace("STORE", store));
    home
}

#[test]
fn keyring_store_across_processes_then_logout_deletes() {
    let ss = SecretService::start();
    let home = home_with("keyring");
    let q = || {
        let mut c = home.qlam();
        c.env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
        c
    };
    crate::util::run_with_stdin(
        q().args(["auth", "login", "token-demo"]),
        "tok-in-the-keyring\n",
    )
    .ok();
    assert_eq!(
        ss.lookup("demo/token-demo/token").as_deref(),
        Some("tok-in-the-keyring"),
        "another program sees it in the keyring"
    );
    assert!(
        !home.store_dir().join("demo/token-demo.json").exists(),
        "nothing in files"
    );
    let r = run(q().args(["auth", "token", "token-demo"]));
    r.ok();
    assert_eq!(r.stdout, "tok-in-the-keyring\n");
    let status: Value = run(q().args(["--output", "json", "auth", "status"])).json();
    assert_eq!(status[0]["store"], "keyring");
    assert_eq!(status[0]["status"], "authenticated");
    run(q().args(["auth", "logout"])).ok();
    assert_eq!(ss.lookup("demo/token-demo/token"), None);
    run(q().args(["auth", "token", "token-demo"])).code(3);
}

#[test]
fn large_values_are_split_transparently() {
    let ss = SecretService::start();
    let home = home_with("keyring");
    let q = || {
        let mut c = home.qlam();
        c.env("DBUS_SESSION_BUS_ADDRESS", &ss.address)
            .env("QLAM_TEST_KEYRING_CHUNK", "100");
        c
    };
    let big: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    crate::util::run_with_stdin(
        q().args(["auth", "login", "token-demo"]),
        &format!("{big}\n"),
    )
    .ok();
    let head = ss.lookup("demo/token-demo/token").unwrap();
    assert!(
        head.starts_with("qlam-split:v1:") && head.ends_with(":10"),
        "{head}"
    );
    assert_eq!(
        run(q().args(["auth", "token", "token-demo"])).stdout,
        format!("{big}\n")
    );
    // Replacing it leaves no parts of the old value behind; logout removes everything.
    crate::util::run_with_stdin(
        q().args(["auth", "login", "token-demo"]),
        &format!("{}\n", &big[..450]),
    )
    .ok();
    assert_eq!(
        run(q().args(["auth", "token", "token-demo"])).stdout,
        format!("{}\n", &big[..450])
    );
    run(q().args(["auth", "logout"])).ok();
    let left = ss
        .secret_tool(&["search", "--all", "service", "qlam"], None)
        .unwrap_or_default();
    assert!(
        !left.contains("attribute.username"),
        "items left in the keyring:\n{left}"
    );
}

#[test]
fn without_d_bus_auto_falls_back_to_files_visibly_and_keyring_refuses() {
    let no_bus = "unix:path=/nonexistent/qlam-test-bus";
    let home = home_with("auto");
    let r = crate::util::run_with_stdin(
        home.qlam()
            .env("DBUS_SESSION_BUS_ADDRESS", no_bus)
            .args(["auth", "login", "token-demo"]),
        "tok-in-a-file\n",
    );
    r.ok();
    let warnings = r.warnings();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(
        warnings[0].contains("the system keyring is not available (")
            && warnings[0].contains("keeping credentials in files under `"),
        "{}",
        warnings[0]
    );
    assert!(home.store_dir().join("demo/token-demo.json").exists());
    let status: Value = run(home
        .qlam()
        .env("DBUS_SESSION_BUS_ADDRESS", no_bus)
        .args(["--output", "json", "auth", "status"]))
    .json();
    assert_eq!(status[0]["store"], "file");
    assert_eq!(status[0]["status"], "authenticated");

    let home = home_with("keyring");
    let r = crate::util::run_with_stdin(
        home.qlam()
            .env("DBUS_SESSION_BUS_ADDRESS", no_bus)
            .args(["auth", "login", "token-demo"]),
        "never-stored\n",
    );
    r.code(1);
    assert!(
        r.stderr
            .contains("credential_store = \"keyring\", but the system keyring is not available ("),
        "{}",
        r.stderr
    );
    assert!(!home.store_dir().join("demo/token-demo.json").exists());
}

#[test]
fn a_locked_keyring_never_hangs_auto_falls_back_to_files() {
    let ss = SecretService::start();
    let locked = std::process::Command::new("dbus-send")
        .args([
            "--session",
            "--dest=org.freedesktop.secrets",
            "--print-reply",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", &ss.address)
        .output()
        .unwrap();
    assert!(
        locked.status.success(),
        "lock: {}",
        String::from_utf8_lossy(&locked.stderr)
    );
    assert_eq!(ss.lookup("anything"), None);
    let home = home_with("auto");
    let start = std::time::Instant::now();
    let r = crate::util::run_with_stdin(
        home.qlam()
            .env("DBUS_SESSION_BUS_ADDRESS", &ss.address)
            .env("QLAM_TEST_KEYRING_TIMEOUT_MS", "1500")
            .args(["auth", "login", "token-demo"]),
        "tok\n",
    );
    let elapsed = start.elapsed();
    r.ok();
    let w = r.warnings();
    assert_eq!(w.len(), 1, "{}", r.stderr);
    assert!(
        w[0].starts_with("warning: the system keyring is not available ("),
        "{}",
        w[0]
    );
    assert!(home.store_dir().join("demo/token-demo.json").exists());
    // A bound, not a timing assertion: the login did not wait for a prompt nobody answers.
    assert!(elapsed < std::time::Duration::from_secs(30), "{elapsed:?}");
    eprintln!("locked keyring: {}", w[0]);
}
