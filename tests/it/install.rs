//! `qlam plugins install` / `remove`: candidates are checked in a child process (a library
//! that kills its loader cannot hurt), installed by temp file + rename (a running process keeps
//! the library it mapped), pinned on request; removal by file or provider type.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{artifacts, fixture, run, Home};

fn user_dir(home: &Home) -> PathBuf {
    home.path().join("data/qlam/plugins")
}

pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// Every entry of the user plugin folder (temp files included).
fn entries(home: &Home) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(user_dir(home))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A copy of `lib` named `name` in a fresh folder, with `extra` bytes appended (a different
/// build as far as hashes go; the loader ignores trailing bytes).
fn candidate(home: &Home, lib: &Path, name: &str, extra: &[u8]) -> PathBuf {
    let dir = home.path().join(format!("downloads-{}", extra.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(name);
    let mut bytes = std::fs::read(lib).unwrap();
    bytes.extend_from_slice(extra);
    std::fs::write(&to, bytes).unwrap();
    to
}

#[test]
fn install_checks_copies_and_pins_and_remove_undoes_it() {
    let home = Home::new();
    let src = candidate(&home, &artifacts().token_lib, "libacme.so", b"");
    let dest = user_dir(&home).join("libacme.so");

    let r = home.run(&[
        "--output",
        "json",
        "plugins",
        "install",
        src.to_str().unwrap(),
    ]);
    r.ok();
    let v = r.json();
    assert_eq!(
        v,
        serde_json::json!({
            "path": dest, "source": src, "sha256": sha256_of(&src), "provider_types": ["token"],
            "api_version": qlam_plugin_api::API_VERSION, "replaced": false, "pinned": false,
            "isolated": false,
        })
    );
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(entries(&home), ["libacme.so"], "no temp file is left");
    let mode = std::fs::metadata(&dest).unwrap().mode() & 0o777;
    assert_eq!(
        mode & 0o022,
        0,
        "installed mode {mode:o} must pass the trust checks"
    );

    // It is listed with its hash, unpinned.
    let r = home.run(&["--output", "json", "plugins", "list"]);
    r.ok();
    let v = r.json();
    let lib = v["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == serde_json::json!(dest))
        .unwrap_or_else(|| panic!("{v:#}"))
        .clone();
    assert_eq!(lib["status"], "loaded");
    assert_eq!(lib["sha256"], sha256_of(&dest));
    assert_eq!(lib["pinned"], false);

    // A new build with --pin: the file is replaced by rename (a new inode, never rewritten
    // in place) and the pin recorded; the text output says so.
    let ino_before = std::fs::metadata(&dest).unwrap().ino();
    let src2 = candidate(&home, &artifacts().token_lib, "libacme.so", b"build-2");
    let r = home.run(&["plugins", "install", "--pin", src2.to_str().unwrap()]);
    r.ok();
    assert!(
        r.stderr.contains(&format!(
            "Installed {} (provider types: token)",
            dest.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Replaced the previous file"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Recorded its pin in"), "{}", r.stderr);
    assert_ne!(std::fs::metadata(&dest).unwrap().ino(), ino_before);
    let new_sha = sha256_of(&src2);
    let config = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(
        config.contains(&format!(
            "{{ path = \"{}\", sha256 = \"{new_sha}\" }}",
            dest.display()
        )),
        "{config}"
    );
    let r = home.run(&["plugins", "list"]);
    r.ok();
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("libacme.so"))
        .unwrap()
        .to_owned();
    assert!(
        row.starts_with("loaded") && row.contains(&new_sha[..12]) && row.contains(" yes "),
        "{row}"
    );

    // A pinned file is not replaced without --pin (the new one would be refused).
    let src3 = candidate(&home, &artifacts().token_lib, "libacme.so", b"build-three");
    let r = home.run(&["plugins", "install", src3.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr.contains("is pinned in") && r.stderr.contains("pass --pin"),
        "{}",
        r.stderr
    );
    assert_eq!(sha256_of(&dest), new_sha, "the pinned file is untouched");

    // Remove by provider type: the file and its pin go.
    let r = home.run(&["plugins", "remove", "token"]);
    r.ok();
    assert!(
        r.stderr.contains(&format!(
            "Removed {} (provider types: token)",
            dest.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Removed its pin"), "{}", r.stderr);
    assert!(!dest.exists());
    let config = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(!config.contains("libacme.so"), "{config}");
    let r = home.run(&["plugins", "remove", "token"]);
    r.code(2);
    assert!(
        r.stderr.contains("comes from") && r.stderr.contains("not in your plugin folder"),
        "the bundled token plugin is not removed: {}",
        r.stderr
    );

    // Remove by file name (with or without `lib` and the extension).
    home.run(&["plugins", "install", src.to_str().unwrap()])
        .ok();
    let r = home.run(&["--output", "json", "plugins", "remove", "acme"]);
    r.ok();
    assert_eq!(
        r.json(),
        serde_json::json!({"path": dest, "provider_types": [], "unpinned": false})
    );
    assert!(entries(&home).is_empty());
    let r = home.run(&["plugins", "remove", "acme"]);
    r.code(2);
    assert!(r.stderr.contains("nothing named `acme`"), "{}", r.stderr);
}

#[test]
fn bad_candidates_are_not_installed_and_nothing_is_left_behind() {
    let home = Home::new();
    let downloads = home.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    // Not named like a library.
    let txt = downloads.join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let r = home.run(&["plugins", "install", txt.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr
            .contains("is not named like a shared library (*.so)"),
        "{}",
        r.stderr
    );

    // (file, environment, expected message)
    type Case = (PathBuf, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            {
                let p = downloads.join("libtext.so");
                std::fs::write(&p, "not a library").unwrap();
                p
            },
            vec![],
            "was not installed: is not a shared library",
        ),
        (
            fixture("qlam-fixture-old-api"),
            vec![],
            "was not installed: built against qlam-plugin-api 0.0.9",
        ),
        (
            fixture("qlam-fixture-panicky-loader"),
            vec![],
            "was not installed: panicked while loading its provider list",
        ),
        (
            // Its load-time constructor aborts the process that loads it.
            fixture("qlam-fixture-marker"),
            vec![("QLAM_TEST_ABORT_ON_LOAD", "1")],
            "was not installed: crashed the process that loaded it (signal 6, SIGABRT)",
        ),
    ];
    for (file, env, want) in cases {
        let mut cmd = home.qlam();
        cmd.args(["plugins", "install", file.to_str().unwrap()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let r = run(&mut cmd);
        r.code(4);
        assert!(r.stderr.contains(want), "want `{want}`:\n{}", r.stderr);
        assert!(
            r.stderr.contains("qlam plugins inspect"),
            "says what to run next: {}",
            r.stderr
        );
        assert!(
            entries(&home).is_empty(),
            "left behind for {}: {:?}",
            file.display(),
            entries(&home)
        );
    }

    // The marker fixture exports a provider type, so without the abort it installs.
    home.run(&[
        "plugins",
        "install",
        fixture("qlam-fixture-marker").to_str().unwrap(),
    ])
    .ok();
}

#[test]
fn require_pinned_plugins_needs_pin_and_the_pinned_plugin_then_loads() {
    let home = Home::new();
    home.write_config("require_pinned_plugins = true\n");
    let src = candidate(&home, &artifacts().token_lib, "libacme.so", b"");
    let r = home.run(&["plugins", "install", src.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr.contains("require_pinned_plugins is set") && r.stderr.contains("pass --pin"),
        "{}",
        r.stderr
    );
    assert!(entries(&home).is_empty());
    home.run(&["plugins", "install", "--pin", src.to_str().unwrap()])
        .ok();
    let config = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(
        config.starts_with("require_pinned_plugins = true\n"),
        "{config}"
    );
    // Only the pinned library loads; the unpinned bundled ones are refused.
    let r = home.run(&["plugins", "list"]);
    r.ok();
    let loaded: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("loaded"))
        .collect();
    assert_eq!(loaded.len(), 1, "{}", r.stdout);
    assert!(loaded[0].contains("libacme.so"), "{}", r.stdout);
}

/// Starts `qlam auth token t` with a token command that waits for `go` (at most 20 s, so that
/// it never outlives a test whose qlam was killed), using the token plugin installed in the
/// user folder; answers once the plugin's code is running.
fn start_waiting(home: &Home, tag: &str) -> (std::process::Child, PathBuf) {
    let started = home.path().join(format!("started-{tag}"));
    let go = home.path().join(format!("go-{tag}"));
    use std::os::unix::process::CommandExt;
    let child = home
        .bare_qlam()
        // Its own process group, so a killed qlam's command can be cleaned up.
        .process_group(0)
        .args(["auth", "token", "t"])
        .env("QLAM_T_STARTED", &started)
        .env("QLAM_T_GO", &go)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the token command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, go)
}

#[test]
fn a_plugin_replaced_while_a_process_uses_it_keeps_that_process_alive() {
    let home = Home::new();
    home.write_config(
        r#"current_context = "x"
[contexts.x]
auth_providers = [{ name = "t", provider = "token", command = ["sh", "-c", "touch \"$QLAM_T_STARTED\"; i=0; while [ ! -e \"$QLAM_T_GO\" ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i+1)); done; echo tok-1"] }]
"#,
    );
    let src = candidate(&home, &artifacts().token_lib, "libtok.so", b"");
    home.run(&["plugins", "install", src.to_str().unwrap()])
        .ok();
    let dest = user_dir(&home).join("libtok.so");

    // 1. `plugins install` of a new build while a process is inside the old one.
    let (child, go) = start_waiting(&home, "install");
    let src2 = candidate(&home, &artifacts().token_lib, "libtok.so", b"build-2");
    home.run(&["plugins", "install", src2.to_str().unwrap()])
        .ok();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the running process was hurt by the install: {out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tok-1\n");
    assert_eq!(sha256_of(&dest), sha256_of(&src2));
    // A new process uses the new file.
    let r = home
        .bare_qlam()
        .args(["--output", "json", "plugins", "list"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["libraries"][0]["sha256"], sha256_of(&src2), "{v:#}");

    // 2. The control: rewriting the mapped file in place (what `cp` does) kills a process
    //    inside it — so the check above can fail.
    let (child, go) = start_waiting(&home, "in-place");
    let group = child.id() as i32;
    std::fs::write(&dest, b"truncated in place").unwrap();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    // The dead qlam's token command may still be waiting: end it too.
    // SAFETY: signalling a process group we created.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    use std::os::unix::process::ExitStatusExt;
    assert!(
        matches!(out.status.signal(), Some(7 | 11)),
        "rewriting a mapped library in place was expected to kill the process (SIGBUS or SIGSEGV): {out:?}"
    );
}
