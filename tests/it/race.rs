//! One refresh per expiry across processes and threads, against the real server, whose
//! refresh-token rotation with reuse detection turns a race into a logout.

use std::process::Stdio;
use std::sync::{Arc, Barrier};

use qlam_host::AuthClient;

use crate::util::oauth::OAuthServer;
use crate::util::{artifacts, Home};

const PROCESSES: usize = 16;
const THREADS: usize = 16;

struct Outcome {
    ok: usize,
    failures: Vec<String>,
    refresh_requests: usize,
    later_refresh_works: bool,
}

/// Logs in, waits for the access token to expire, then asks for a token from 16 processes
/// and 16 threads of this process at once.
fn race(disable_locks: bool) -> Outcome {
    let server = OAuthServer::start(1);
    let home = Home::new();
    home.write_config(&server.sso_config());
    crate::util::run(
        home.qlam()
            .env("BROWSER", server.browser(""))
            .args(["auth", "login", "sso", "--flow", "browser"]),
    )
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(1200));

    let client = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .no_plugin_index()
        .plugin_dir(&artifacts().bin_dir)
        .config_file(home.config_path())
        .store_dir(home.store_dir())
        .build()
        .unwrap();
    client.registry(); // load the plugin before the start line
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let mut children = Vec::new();
    let mut failures = Vec::new();
    let mut ok = 0;
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, client) = (barrier.clone(), &client);
                s.spawn(move || {
                    barrier.wait();
                    client
                        .token("sso")
                        .map(|t| t.token.expose().clone())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for _ in 0..PROCESSES {
            let mut cmd = home.qlam();
            if disable_locks {
                cmd.env("QLAM_TEST_DISABLE_LOCKS", "1");
            }
            children.push(
                cmd.args(["auth", "token", "sso"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        barrier.wait();
        for t in threads {
            match t.join().unwrap() {
                Ok(_) => ok += 1,
                Err(e) => failures.push(format!("thread: {e}")),
            }
        }
    });
    for c in children {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            ok += 1;
        } else {
            failures.push(format!(
                "process: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let refresh_requests = server.events("grant.success", Some("refresh_token")).len()
        + server.events("grant.error", Some("refresh_token")).len();
    let later_refresh_works = home.run(&["auth", "refresh", "sso", "--force"]).code == Some(0);
    Outcome {
        ok,
        failures,
        refresh_requests,
        later_refresh_works,
    }
}

#[test]
fn sixteen_processes_and_sixteen_threads_make_one_refresh() {
    let o = race(false);
    assert!(o.failures.is_empty(), "{:#?}", o.failures);
    assert_eq!(o.ok, PROCESSES + THREADS);
    assert_eq!(
        o.refresh_requests, 1,
        "exactly one refresh grant reached the server"
    );
    assert!(o.later_refresh_works, "the session survived");
}

#[test]
fn without_the_lock_the_same_test_catches_the_race() {
    // The control. Whether 16 processes overlap depends on scheduling: on a loaded 2-core
    // machine they can start one after another, each finding the previous one's tokens. So
    // up to three tries; one that shows the race proves the test above can fail.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let o = race(true);
        seen.push(format!(
            "{} refresh requests, {} failures, later refresh works: {}",
            o.refresh_requests,
            o.failures.len(),
            o.later_refresh_works
        ));
        if o.refresh_requests > 1 || !o.later_refresh_works || !o.failures.is_empty() {
            eprintln!("without locks: {}", seen.last().unwrap());
            return;
        }
    }
    panic!("without cross-process locks the race must show; three tries saw: {seen:#?}");
}

#[test]
fn two_concurrent_logins_make_one_device_code_and_the_second_reuses_the_first() {
    use std::io::{BufRead, BufReader};
    let server = OAuthServer::start(600);
    let home = Home::new();
    home.write_config(&server.sso_config());
    let login = || {
        home.qlam()
            .args(["auth", "login", "sso", "--flow", "device"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = login();
    let mut first_err = BufReader::new(first.stderr.take().unwrap()).lines();
    let visit = first_err.next().unwrap().unwrap();
    let (uri, code) = visit
        .strip_prefix("Visit ")
        .unwrap()
        .split_once(" and enter code ")
        .unwrap();
    // The second login starts while the first waits for approval: it must wait, not start
    // a device authorization of its own.
    let second = login();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.events("device_authorization.success", None).len(), 1);
    assert!(server.approve_device(uri, code).status.success());
    let rest: Vec<String> = first_err.map_while(Result::ok).collect();
    assert!(first.wait().unwrap().success(), "{rest:?}");
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "warning: sso: another qlam process logged in to `sso` meanwhile; using its login\nLogged in to `sso` as alice\n"
    );
    assert_eq!(
        server.events("device_authorization.success", None).len(),
        1,
        "one device code in all"
    );
    assert_eq!(
        server
            .events(
                "grant.success",
                Some("urn:ietf:params:oauth:grant-type:device_code")
            )
            .len(),
        1
    );
}
