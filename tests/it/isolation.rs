//! `isolation = "process"`: a provider's library in a child `qlam` process. What no
//! in-process guard can catch — abort, SIGSEGV, stack overflow, a panic while panicking,
//! `exit()`, a call that never returns — becomes an error naming the provider, and qlam goes
//! on. The store, its locks and the user's prompts stay in the parent.

use std::path::PathBuf;

use qlam_host::{AuthClient, ErrorKind};

use crate::hostile::qlam;
use crate::util::{artifacts, lib_name, run_with_stdin, Home};

/// Hostile providers `(name, misbehave, in)` and a well-behaved `good`, all isolated.
fn setup(providers: &[(&str, &str, &str)], top: &str) -> (Home, PathBuf) {
    crate::hostile::hostile_home(providers, top, "isolation = \"process\"\n", "")
}

/// An `AuthClient` on the home's config, its isolated providers run by the test build's qlam.
fn client(home: &Home, dir: &std::path::Path) -> AuthClient {
    AuthClient::builder()
        .config_file(home.config_path())
        .ignore_environment()
        .no_default_plugin_dirs()
        .no_plugin_index()
        .plugin_dir(dir)
        .store_dir(home.store_dir())
        .isolation_executable(artifacts().bare_dir.join("qlam"))
        .build()
        .unwrap()
}

#[test]
fn every_crash_is_an_error_naming_the_provider_and_qlam_goes_on() {
    let cases = [
        ("abort", "signal 6, SIGABRT"),
        ("segv", "signal 11, SIGSEGV"),
        ("stack-overflow", "signal "),
        ("double-panic", "signal 6, SIGABRT"),
        ("exit0", "its process exited with status 0"),
    ];
    let providers: Vec<(String, &str)> = cases
        .iter()
        .map(|(mode, _)| (format!("p-{mode}"), *mode))
        .collect();
    let table: Vec<(&str, &str, &str)> = providers
        .iter()
        .map(|(name, mode)| (name.as_str(), *mode, "headers"))
        .collect();
    let (home, dir) = setup(&table, "");
    for (mode, how) in cases {
        let name = format!("p-{mode}");
        let r = qlam(&home, &dir, &["auth", "headers", &name]);
        r.code(1);
        assert_eq!(r.stdout, "", "{mode}");
        assert!(
            r.stderr.contains(&format!(
                "error: provider `{name}` crashed in `headers` ({how}"
            )),
            "{mode}:\n{}",
            r.stderr
        );
    }
    // One command, several providers: the crash of one does not stop the others.
    let (home, dir) = setup(&[("dies", "segv", "is_authenticated")], "");
    let r = qlam(&home, &dir, &["--output", "json", "auth", "status"]);
    r.ok();
    let v = r.json();
    assert_eq!(v[0]["name"], "dies");
    assert_eq!(v[0]["status"], "error", "{v:#}");
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("crashed in `is_authenticated` (signal 11, SIGSEGV)"),
        "{v:#}"
    );
    assert_eq!(v[1]["name"], "good");
    assert_eq!(v[1]["status"], "authenticated", "{v:#}");
}

#[test]
fn without_isolation_the_same_crash_takes_qlam_down() {
    // The control: what isolation is for.
    let (home, dir) = setup(&[], "");
    home.write_config(
        "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"p\"\nprovider = \"hostile\"\nmisbehave = \"segv\"\nisolation = \"none\"\n",
    );
    let r = qlam(&home, &dir, &["auth", "headers", "p"]);
    assert_eq!(r.signal, Some(11), "{r:#?}");
}

#[test]
fn default_isolation_and_isolated_plugins_isolate_whole_libraries() {
    let (home, dir) = setup(&[], "");
    let lib = dir.join(lib_name("qlam-fixture-hostile"));
    let providers = "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"p\"\nprovider = \"hostile\"\nmisbehave = \"segv\"\n";
    for top in [
        "default_isolation = \"process\"\n".to_owned(),
        format!("isolated_plugins = [\"{}\"]\n", lib.display()),
    ] {
        home.write_config(&format!("{top}{providers}"));
        let r = qlam(&home, &dir, &["auth", "headers", "p"]);
        r.code(1);
        assert!(
            r.stderr
                .contains("provider `p` crashed in `headers` (signal 11, SIGSEGV)"),
            "{top}:\n{}",
            r.stderr
        );
    }
    // A provider's own `isolation = "none"` wins (and so the crash is the process's).
    home.write_config(&format!(
        "default_isolation = \"process\"\n{providers}isolation = \"none\"\n"
    ));
    let r = qlam(&home, &dir, &["auth", "headers", "p"]);
    assert_eq!(r.signal, Some(11), "{r:#?}");
}

#[test]
fn isolated_answers_are_checked_and_panics_reported_like_in_process_ones() {
    let (home, dir) = setup(
        &[
            ("forged", "header-crlf-value", "headers"),
            ("boom", "panic", "token"),
        ],
        "",
    );
    let r = qlam(&home, &dir, &["auth", "headers", "forged"]);
    r.code(1);
    assert!(
        r.stderr.contains(
            "provider `forged` gave an invalid answer to `headers`: the value of header `X-Hostile` contains a control character (CR)"
        ),
        "{}",
        r.stderr
    );
    let r = qlam(&home, &dir, &["auth", "token", "boom"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("provider `boom` panicked in `token` (run with -v to see its message)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("canary-panic-7Qz9"), "{}", r.stderr);
    // At -vv the message crosses from the child to the parent's debug log, redacted.
    let r = qlam(&home, &dir, &["-vv", "auth", "token", "boom"]);
    assert!(r.stderr.contains("canary-panic-7Qz9"), "{}", r.stderr);
    assert!(!r.stderr.contains("canary-secret-7Qz9"), "{}", r.stderr);
}

#[test]
fn a_missed_deadline_kills_the_child_and_the_next_call_gets_a_new_one() {
    let (home, dir) = setup(&[("stuck", "hang", "headers")], "call_timeout_secs = 1");
    let client = client(&home, &dir);
    assert_eq!(
        client.headers("good").unwrap().headers[0].0,
        "X-Hostile",
        "a child serves `good`"
    );
    let e = client.headers("stuck").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(
        e.message(),
        "provider `stuck` did not answer `headers` within 1 s"
    );
    // The child (shared by both providers of the library) was killed; `good` is built
    // again in a new one.
    client.forget_answers("good").unwrap();
    assert_eq!(client.headers("good").unwrap().headers[0].0, "X-Hostile");
    // And `stuck` is called again (in-process it would not be): it times out again.
    let e = client.headers("stuck").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(!e.message().contains("not called again"), "{e}");
}

#[test]
fn the_sdk_gets_a_crash_as_an_error_of_its_own_kind() {
    let (home, dir) = setup(&[("dies", "abort", "token")], "");
    let client = client(&home, &dir);
    let e = client.token("dies").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Crashed, "{e}");
    assert_eq!(
        e.message(),
        "provider `dies` crashed in `token` (signal 6, SIGABRT)"
    );
    assert_eq!(
        client.token("good").unwrap().token.expose(),
        "hostile-token"
    );
}

#[test]
fn an_isolated_provider_uses_the_parents_store_prompts_and_answer_cache() {
    // The bundled token provider, isolated: its login prompt is answered by the parent's
    // terminal (piped here), the token lands in the parent's store, and a reusable answer
    // is served later without any child (no library opened at all).
    let (home, dir) = setup(&[], "");
    home.write_config(
        "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"tok\"\nprovider = \"token\"\nisolation = \"process\"\n[[contexts.c.auth_providers]]\nname = \"good\"\nprovider = \"hostile\"\nisolation = \"process\"\n",
    );
    let mut login = home.qlam();
    login.args(["auth", "login", "tok"]);
    let r = run_with_stdin(&mut login, "isolated-canary-token\n");
    r.ok();
    let stored = std::fs::read_to_string(home.store_dir().join("c/tok.json")).unwrap();
    assert!(
        stored.contains("isolated-canary-token"),
        "in the parent's store"
    );
    let r = home.run(&["auth", "token", "tok"]);
    r.ok();
    assert_eq!(r.stdout, "isolated-canary-token\n");
    // An `Until` answer from an isolated provider is cached like any other.
    qlam(&home, &dir, &["auth", "headers", "good"]).ok();
    let (r, opened) = crate::util::traced(
        &home,
        &[
            "--plugin-dir",
            dir.to_str().unwrap(),
            "auth",
            "headers",
            "good",
        ],
        &[],
    );
    r.ok();
    assert_eq!(r.stdout, "X-Hostile: ok\n");
    assert!(
        !opened.iter().any(|p| p.ends_with(".so")),
        "served without a plugin: {opened:?}"
    );
}

#[test]
fn plugins_install_isolate_records_the_library_in_isolated_plugins() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.write_config("# mine\n");
    let r = home.run(&[
        "plugins",
        "install",
        "--isolate",
        artifacts().token_lib.to_str().unwrap(),
    ]);
    r.ok();
    let installed = home
        .path()
        .join("data/qlam/plugins")
        .join(lib_name("qlam-provider-token"));
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains("# mine\n"), "comments kept: {text}");
    assert!(
        text.contains(&format!("isolated_plugins = [\"{}\"]", installed.display())),
        "{text}"
    );
    // Its providers now run in a child: `$QLAM_EXE` (a wrapper that notes each start) is
    // what the parent runs for them.
    let log = home.path().join("children.log");
    let wrapper = home.path().join("qlam-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            artifacts().bin_dir.join("qlam").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        home.config_path(),
        format!("{text}[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"t\"\nprovider = \"token\"\nenv = \"QLAM_TEST_ISOLATED\"\n"),
    )
    .unwrap();
    let r = crate::util::run(
        home.qlam()
            .env("QLAM_EXE", &wrapper)
            .env("QLAM_TEST_ISOLATED", "from-the-child")
            .args(["auth", "token", "t"]),
    );
    r.ok();
    assert_eq!(r.stdout, "from-the-child\n");
    let started = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(started.contains(qlam_host::CHILD_SUBCOMMAND), "{started:?}");
    // Removing it takes it off the list.
    home.run(&["plugins", "remove", &lib_name("qlam-provider-token")])
        .ok();
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(!text.contains(installed.to_str().unwrap()), "{text}");
}
