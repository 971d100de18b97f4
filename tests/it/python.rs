//! The Python package (bindings/python), with a real interpreter: built by maturin into a
//! virtual environment (target/python-venv, made with the pinned requirements when missing)
//! and its pytest suite run against the qlam these tests built, whose bundled providers the
//! Python client loads from beside it. Two real OAuth servers (`oidc-provider`) run for it:
//! one with long-lived access tokens, one whose tokens expire in seconds; the Python tests
//! find them in `$QLAM_TEST_OAUTH`.

use std::path::Path;
use std::process::Command;

use crate::util::artifacts;
use crate::util::oauth::{server_dir, OAuthServer};

/// Seconds the short-lived server's access tokens live: long enough for 16 processes to
/// start on a loaded 2-core machine, short enough to wait for.
const SHORT_TTL: u64 = 8;

fn describe(server: &OAuthServer) -> serde_json::Value {
    serde_json::json!({
        "issuer": server.issuer,
        "ca_file": server.ca_file,
        "log_file": server.log_file,
    })
}

fn must(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_package_passes_its_pytest_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let a = artifacts();
    let venv = root.join("target/python-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        must(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        );
        must(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(root.join("bindings/python/requirements-test.txt")),
            "pip install -r bindings/python/requirements-test.txt",
        );
    }
    // Into the folder the other test binaries are built in (not the one `cargo test` holds
    // locked while it runs us); its dependencies are already built there.
    must(
        Command::new(venv.join("bin/maturin"))
            .args(["develop", "--quiet", "--manifest-path"])
            .arg(root.join("bindings/python/Cargo.toml"))
            .env("VIRTUAL_ENV", &venv)
            .env("CARGO_TARGET_DIR", root.join("target/qlam-it")),
        "maturin develop (bindings/python)",
    );
    let long = OAuthServer::start(600);
    let short = OAuthServer::start(SHORT_TTL);
    let oauth = serde_json::json!({
        "long": describe(&long),
        "short": describe(&short),
        "short_ttl": SHORT_TTL,
        "scripted_user": server_dir().join("scripted-user.mjs"),
    });
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("bindings/python/tests"))
        .env("QLAM_EXE", a.bin_dir.join("qlam"))
        .env("QLAM_TEST_OAUTH", oauth.to_string())
        .current_dir(root)
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its summary in this test's output (`cargo test -- --nocapture` shows it).
    println!("{text}");
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(text.contains(" passed"), "pytest ran nothing:\n{text}");
}
