//! Crash safety of the credential store: kill -9 at the worst moments leaves the old or the
//! new file, never a torn one, and qlam keeps working (or asks for a login) afterwards.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qlam_host::store::FileStore;

use crate::util::oauth::OAuthServer;
use crate::util::{run, Home};

#[test]
fn killed_between_the_token_response_and_the_write_or_before_the_rename() {
    let server = OAuthServer::start(600);
    for failpoint in ["store-before-write", "write-before-rename"] {
        let home = Home::new();
        home.write_config(&server.sso_config());
        run(home
            .qlam()
            .env("BROWSER", server.browser(""))
            .args(["auth", "login", "sso", "--flow", "browser"]))
        .ok();
        let entry = home.store_dir().join("t/sso.json");
        let before = std::fs::read(&entry).unwrap();
        let r = run(home
            .qlam()
            .env("QLAM_FAILPOINT", failpoint)
            .args(["auth", "refresh", "sso", "--force"]));
        assert_eq!(
            r.signal,
            Some(9),
            "{failpoint}: the process was killed at the failpoint: {r:#?}"
        );
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            before,
            "{failpoint}: the old file, intact"
        );
        // The old access token is still valid and is served.
        run(home.qlam().args(["auth", "token", "sso"])).ok();
        // The server rotated the refresh token we never stored: using the old one is reuse,
        // which the server punishes by revoking the grant. qlam says to log in again.
        let r = home.run(&["auth", "refresh", "sso", "--force"]);
        r.code(3);
        assert!(
            r.stderr.contains("run `qlam auth login sso`"),
            "{}",
            r.stderr
        );
        run(home
            .qlam()
            .env("BROWSER", server.browser(""))
            .args(["auth", "login", "sso", "--flow", "browser"]))
        .ok();
    }
}

/// Child process body: writes `w<pid>-<n>` values into one store entry as fast as it can.
#[test]
#[ignore = "a child process of kill_9_loop_against_four_concurrent_writers"]
fn store_writer_child() {
    let Some(dir) = std::env::var_os("QLAM_TEST_WRITER_DIR") else {
        return;
    };
    let store = FileStore::new(dir);
    let pid = std::process::id();
    for n in 0u64.. {
        // Values of varying size, so a torn write could not look whole by accident.
        let value = format!("w{pid}-{n}-{}", "x".repeat((n % 700) as usize));
        store.store("ctx", "p", "k", &value).unwrap();
    }
}

fn writer(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::store_writer_child",
            "--exact",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("QLAM_TEST_WRITER_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_loop_against_four_concurrent_writers() {
    const ITERATIONS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let mut writers: Vec<Child> = (0..4).map(|_| writer(dir.path())).collect();
    let mut seen_values = 0;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..ITERATIONS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(2 + seed % 15));
        let victim = (seed as usize / 7) % writers.len();
        writers[victim].kill().unwrap();
        let status = writers[victim].wait().unwrap();
        assert_eq!(status.signal(), Some(9));
        // Whatever moment the kill hit, the entry is the old or the new value, whole.
        match store.load("ctx", "p", "k") {
            Ok(Some(v)) => {
                assert!(
                    v.starts_with('w') && v.split('-').count() == 3,
                    "iteration {i}: torn value {v:?}"
                );
                seen_values += 1;
            }
            Ok(None) => assert!(i < 3, "iteration {i}: the entry vanished"),
            Err(e) => panic!("iteration {i}: {e}"),
        }
        let corrupt = std::fs::read_dir(dir.path().join("ctx"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".corrupt-")
            })
            .count();
        assert_eq!(
            corrupt, 0,
            "iteration {i}: a torn file was found and moved aside"
        );
        writers[victim] = writer(dir.path());
    }
    for mut w in writers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert!(seen_values >= ITERATIONS - 3);
    eprintln!("kill -9 loop: {ITERATIONS} kills, the entry parsed every time");
}

#[test]
fn a_damaged_credential_file_reads_as_logged_out_never_a_crash() {
    let home = Home::new();
    home.write_config(crate::util::DEMO_CONFIG);
    crate::util::run_with_stdin(home.qlam().args(["auth", "login", "token-demo"]), "t\n").ok();
    let entry = home.store_dir().join("demo/token-demo.json");
    let whole = std::fs::read(&entry).unwrap();
    for damage in [
        Vec::new(),
        whole[..whole.len() / 2].to_vec(),
        b"\x00\xffgarbage".to_vec(),
        // Valid JSON of the wrong shape: serde's message would quote the value.
        br#"{"version": "canary-damaged-secret", "secrets": {}}"#.to_vec(),
        br#"{"version": 1, "secrets": {"token": 42, "other": "canary-damaged-secret"}}"#.to_vec(),
    ] {
        std::fs::write(&entry, &damage).unwrap();
        let r = home.run(&["auth", "token", "token-demo"]);
        r.code(3);
        assert_eq!(r.warnings().len(), 1, "{}", r.stderr);
        assert!(
            r.warnings()[0].contains("is damaged") && r.warnings()[0].contains("moved it to"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("canary-damaged-secret"),
            "the damaged file's content leaked: {}",
            r.stderr
        );
        assert!(!entry.exists());
        crate::util::run_with_stdin(home.qlam().args(["auth", "login", "token-demo"]), "t\n").ok();
    }
}
