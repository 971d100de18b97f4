//! A provider written by someone else cannot hurt you: the `hostile` fixture
//! (tests/fixtures/hostile) misbehaves in one call chosen by its config — forged lines in
//! headers, tokens and usernames, control characters in display text, panics with canary
//! messages, hangs, `exit(0)` — and each case is driven through the real CLI (and, for the
//! SDK, through `AuthClient`). The host must refuse what it cannot use, report without
//! repeating, stop waiting at the deadline, and never pass an exit for a success.

use std::path::{Path, PathBuf};

use qlam_host::{AuthClient, ErrorKind};

use crate::util::{fixture, install, lib_name, Home, Run};

/// The panic canary the fixture uses: its message may be shown at -v (redacted), never
/// elsewhere; the secret-looking half never at all.
const PANIC_CANARY: &str = "canary-panic-7Qz9";
const SECRET_CANARY: &str = "canary-secret-7Qz9";

/// A home with the hostile library in a plugin folder and a config whose top has `top`
/// lines, then hostile providers `(name, misbehave, in)` and a well-behaved `good`, each
/// with the lines `each` (`isolation = "process"`…), then `tail`.
pub(crate) fn hostile_home(
    providers: &[(&str, &str, &str)],
    top: &str,
    each: &str,
    tail: &str,
) -> (Home, PathBuf) {
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(
        &fixture("qlam-fixture-hostile"),
        &dir,
        &lib_name("qlam-fixture-hostile"),
    );
    let mut config = format!("current_context = \"c\"\n{top}\n[contexts.c]\n");
    let good = [("good", "none", "headers")];
    for (name, misbehave, call) in providers.iter().chain(&good) {
        config.push_str(&format!(
            "[[contexts.c.auth_providers]]\nname = \"{name}\"\nprovider = \"hostile\"\nmisbehave = \"{misbehave}\"\nin = \"{call}\"\n{each}"
        ));
    }
    config.push_str(tail);
    home.write_config(&config);
    (home, dir)
}

/// [`hostile_home`] in process, with git routes: `ok.example.com` to `good`, and
/// `git.example.com` to `tok-lf` when there is one.
fn setup(providers: &[(&str, &str, &str)], top: &str) -> (Home, PathBuf) {
    let mut hosts = "[contexts.c.hosts]\n\"ok.example.com\" = \"good\"\n".to_owned();
    if providers.iter().any(|(name, _, _)| *name == "tok-lf") {
        hosts.push_str("\"git.example.com\" = \"tok-lf\"\n");
    }
    hostile_home(providers, top, "", &hosts)
}

/// `qlam --plugin-dir DIR ARGS…`, bounded in time.
pub(crate) fn qlam(home: &Home, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = home.qlam();
    cmd.arg("--plugin-dir").arg(dir).args(args);
    crate::util::run_bounded(&mut cmd)
}

/// No line of the output starts with a forged prefix, and no escape sequence gets through.
fn no_forged_lines(r: &Run) {
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        assert!(
            !line.starts_with("error: forged")
                && !line.starts_with("forged")
                && !line.starts_with("Evil")
                && !line.starts_with("username=attacker")
                && !line.starts_with("password=stolen"),
            "a forged line:\n{r:#?}"
        );
    }
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'),
        "an escape sequence or CR got through:\n{r:#?}"
    );
}

fn answer_files(home: &Home) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![home.store_dir()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".answers.json") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn forged_headers_tokens_and_usernames_are_refused_and_never_cached() {
    let (home, dir) = setup(
        &[
            ("hdr-value", "header-crlf-value", "headers"),
            ("hdr-name", "header-crlf-name", "headers"),
            ("hdr-space", "header-space-name", "headers"),
            ("hdr-nul", "header-nul-value", "headers"),
            ("tok-lf", "token-lf", "token"),
            ("tok-esc", "token-esc", "token"),
            ("user-lf", "username-lf", "credential"),
        ],
        "",
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["auth", "headers", "hdr-value"],
            "error: provider `hdr-value` gave an invalid answer to `headers`: the value of header `X-Hostile` contains a control character (CR)",
        ),
        (
            &["auth", "headers", "hdr-name"],
            "error: provider `hdr-name` gave an invalid answer to `headers`: header #1's name contains a control character",
        ),
        (
            &["auth", "headers", "hdr-space"],
            "error: provider `hdr-space` gave an invalid answer to `headers`: header #1's name is not an HTTP token",
        ),
        (
            &["auth", "headers", "hdr-nul"],
            "error: provider `hdr-nul` gave an invalid answer to `headers`: the value of header `X-Hostile` contains a control character (NUL)",
        ),
        (
            &["auth", "token", "tok-lf"],
            "error: provider `tok-lf` gave an invalid answer to `token`: the token contains a control character (LF)",
        ),
        (
            &["auth", "token", "tok-lf", "--format", "exec-credential"],
            "the token contains a control character (LF)",
        ),
        (
            &["auth", "headers", "tok-lf"],
            "the value of header `Authorization` contains a control character (LF)",
        ),
        (
            &["auth", "token", "tok-esc"],
            "the token contains a control character (U+001B)",
        ),
        (
            &["auth", "credential", "user-lf"],
            "error: provider `user-lf` gave an invalid answer to `credential`: credential field `username` contains a control character (LF)",
        ),
    ];
    // Twice: the second run would be served from the answer cache if the first had cached.
    for round in 0..2 {
        for (args, expected) in cases {
            let r = qlam(&home, &dir, args);
            r.code(1);
            assert_eq!(r.stdout, "", "round {round}, {args:?}: nothing printed");
            assert!(
                r.stderr.contains(expected),
                "round {round}, {args:?}: expected `{expected}` in\n{}",
                r.stderr
            );
            assert!(
                !r.stderr.contains("Evil") && !r.stderr.contains("stolen"),
                "the rejected value is not repeated:\n{}",
                r.stderr
            );
            no_forged_lines(&r);
        }
    }
    assert_eq!(answer_files(&home), Vec::<PathBuf>::new(), "nothing cached");
    // JSON output says what kind of failure it was.
    let r = qlam(
        &home,
        &dir,
        &["--output", "json", "auth", "headers", "hdr-value"],
    );
    r.code(1);
    assert_eq!(r.json()["error"]["kind"], "invalid_answer");
    // The well-behaved provider in the same context still answers, and is cached.
    let r = qlam(&home, &dir, &["auth", "headers", "good"]);
    r.ok();
    assert_eq!(r.stdout, "X-Hostile: ok\n");
    assert_eq!(answer_files(&home).len(), 1);
}

#[test]
fn a_forged_answer_already_in_the_cache_is_not_served() {
    // An answer file written before qlam checked answers (or by hand): the fast path and the
    // client read it through the same checks, miss, and ask the provider again.
    let (home, dir) = setup(&[], "");
    qlam(&home, &dir, &["auth", "headers", "good"]).ok();
    let files = answer_files(&home);
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("\"ok\""), "{text}");
    std::fs::write(&files[0], text.replace("\"ok\"", "\"ok\\r\\nEvil: 1\"")).unwrap();
    let r = qlam(&home, &dir, &["auth", "headers", "good"]);
    r.ok();
    assert_eq!(r.stdout, "X-Hostile: ok\n");
}

/// `git credential fill` with qlam as the helper for git.example.com, routed to `tok-lf`.
fn git_fill(home: &Home, dir: &Path, host: &str) -> std::process::Output {
    crate::util::git_credential_fill(
        home,
        &format!("--plugin-dir '{}'", dir.display()),
        &[],
        &format!("url=https://{host}/repo.git\n\n"),
        &[],
    )
}

#[test]
fn git_never_receives_a_forged_username_or_password() {
    // The class of git's CVE-2020-5260: a line feed in a token is a `password=` line of its
    // own. The real git, with qlam as its credential helper.
    let (home, dir) = setup(&[("tok-lf", "token-lf", "token")], "");
    let out = git_fill(&home, &dir, "git.example.com");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("attacker") && !stdout.contains("stolen"),
        "{stdout}"
    );
    assert!(!out.status.success(), "git got no credential: {stdout}");
    assert!(
        stderr.contains("gave an invalid answer to `token`"),
        "{stderr}"
    );
    // The control: the same route to a sound provider fills.
    let out = git_fill(&home, &dir, "ok.example.com");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("password=hostile-token\n"),
        "{out:?}"
    );
}

#[test]
fn display_text_from_providers_is_escaped() {
    let (home, dir) = setup(
        &[
            ("desc", "description-ctl", "description"),
            ("err", "error-crlf", "headers"),
            ("warn", "warning-crlf", "logout"),
        ],
        "",
    );
    // A provider's own description, in the status table.
    let r = qlam(&home, &dir, &["auth", "status"]);
    r.ok();
    assert!(
        r.stdout.contains("Hostile\\n\\u{1b}[31mforged line"),
        "{}",
        r.stdout
    );
    no_forged_lines(&r);
    // An error message.
    let r = qlam(&home, &dir, &["auth", "headers", "err"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("error: failed\\nerror: forged line\\r\\u{1b}[2J"),
        "{}",
        r.stderr
    );
    no_forged_lines(&r);
    // A logout warning.
    let r = qlam(&home, &dir, &["auth", "logout", "warn"]);
    r.ok();
    assert!(
        r.stderr.contains("revocation failed\\nforged: line"),
        "{}",
        r.stderr
    );
    no_forged_lines(&r);
    // Type descriptions and type names at registration: `plugins list` and `inspect`.
    let r = qlam(&home, &dir, &["plugins", "list"]);
    r.ok();
    no_forged_lines(&r);
    let lib = dir.join(lib_name("qlam-fixture-hostile"));
    let r = qlam(&home, &dir, &["plugins", "inspect", lib.to_str().unwrap()]);
    r.code(4); // some of its types fail
    assert!(
        r.stdout
            .contains("hostile-description — Line one\\nerror: forged line\\u{1b}[31m"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "a provider type's name `bad\\nname\\u{1b}[2J` must start with a letter or digit"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("a provider type's name `` is empty"),
        "{}",
        r.stdout
    );
    no_forged_lines(&r);
    // The sound types of the same library still load.
    assert!(
        r.stdout.contains("provider:     hostile — "),
        "{}",
        r.stdout
    );
}

/// Every entry point into a provider, with the fixture panicking there.
const PANIC_CASES: &[(&str, &[&str])] = &[
    ("is_authenticated", &["auth", "status"]),
    ("description", &["auth", "status"]),
    ("extra_info", &["auth", "status"]),
    ("build", &["auth", "headers", "p"]),
    ("headers", &["auth", "headers", "p"]),
    ("token", &["auth", "token", "p"]),
    ("login", &["auth", "login", "p"]),
    ("logout", &["auth", "logout", "p"]),
    ("refresh", &["auth", "refresh", "p", "--force"]),
    ("credential", &["auth", "credential", "p"]),
];

#[test]
fn panic_messages_stay_in_the_debug_log_and_out_of_every_file() {
    for (call, args) in PANIC_CASES {
        let (home, dir) = setup(&[("p", "panic", call)], "");
        for json in [false, true] {
            let mut full: Vec<&str> = if json {
                vec!["--output", "json"]
            } else {
                vec![]
            };
            full.extend_from_slice(args);
            let r = qlam(&home, &dir, &full);
            assert!(
                r.stdout.contains(&format!("panicked in `{call}`"))
                    || r.stderr.contains(&format!("panicked in `{call}`")),
                "{call}: the panic is reported:\n{r:#?}"
            );
            for text in [&r.stdout, &r.stderr] {
                assert!(
                    !text.contains(PANIC_CANARY) && !text.contains(SECRET_CANARY),
                    "{call}: the panic's message is shown without -v:\n{r:#?}"
                );
            }
        }
        // At -vv the message is in the debug log, redacted.
        let mut verbose = vec!["-vv"];
        verbose.extend_from_slice(args);
        let r = qlam(&home, &dir, &verbose);
        assert!(
            r.stderr.contains(PANIC_CANARY),
            "{call}: the message is in the debug log:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains(SECRET_CANARY) && !r.stdout.contains(SECRET_CANARY),
            "{call}: redacted:\n{}",
            r.stderr
        );
        no_files_hold_the_canary(&home);
    }
}

#[test]
fn a_panic_while_registering_is_reported_without_its_message() {
    // `hostile-panics-describing` panics in its factory's `description()`, which runs while
    // the library is loaded and its types recorded in the plugin index.
    let (home, dir) = setup(&[], "");
    for args in [
        &["plugins", "list"][..],
        &["--output", "json", "plugins", "list"],
        &["-v", "plugins", "list"],
        &["auth", "status"],
    ] {
        let r = qlam(&home, &dir, args);
        r.ok();
        assert!(
            format!("{}{}", r.stdout, r.stderr)
                .contains("provider type `hostile-panics-describing` panicked in `description`"),
            "{args:?}:\n{r:#?}"
        );
        for text in [&r.stdout, &r.stderr] {
            assert!(!text.contains(SECRET_CANARY), "{args:?}:\n{r:#?}");
            if !args.contains(&"-v") {
                assert!(!text.contains(PANIC_CANARY), "{args:?}:\n{r:#?}");
            }
        }
    }
    let index = home.path().join("cache/qlam/plugin-index.json");
    assert!(index.exists(), "the index was written");
    no_files_hold_the_canary(&home);
}

/// No file under the home (store, answer cache, plugin index, hashes) holds a canary.
fn no_files_hold_the_canary(home: &Home) {
    let mut dirs = vec![home.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_none_or(|x| x != "so") {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(PANIC_CANARY) && !text.contains(SECRET_CANARY),
                    "`{}` holds a panic canary",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn a_call_that_never_answers_ends_at_its_deadline() {
    let (home, dir) = setup(
        &[
            ("stuck-headers", "hang", "headers"),
            ("stuck-status", "hang", "is_authenticated"),
        ],
        "call_timeout_secs = 1",
    );
    let r = qlam(&home, &dir, &["auth", "headers", "stuck-headers"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("error: provider `stuck-headers` did not answer `headers` within 1 s"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Status shows every other provider and marks the stuck one.
    let r = qlam(&home, &dir, &["--output", "json", "auth", "status"]);
    r.ok();
    let v = r.json();
    let status = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v:#}"))["status"]
            .clone()
    };
    assert_eq!(status("stuck-status"), "timeout", "{v:#}");
    assert_eq!(status("good"), "authenticated", "{v:#}");
    let r = qlam(&home, &dir, &["auth", "status"]);
    r.ok();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("stuck-status") && l.contains("timeout")),
        "{}",
        r.stdout
    );
}

#[test]
fn a_login_is_bounded_by_its_flow_timeout_plus_the_call_deadline() {
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(
        &fixture("qlam-fixture-hostile"),
        &dir,
        &lib_name("qlam-fixture-hostile"),
    );
    home.write_config(
        "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"slow\"\nprovider = \"hostile\"\nmisbehave = \"hang\"\nin = \"login\"\nlogin_timeout_secs = 1\ncall_timeout_secs = 1\n",
    );
    let r = qlam(&home, &dir, &["auth", "login", "slow"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("error: provider `slow` did not answer `login` within 2 s"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_library_that_hangs_while_loading_is_refused_and_the_others_load() {
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(
        &fixture("qlam-fixture-hang-loader"),
        &dir,
        &lib_name("qlam-fixture-hang-loader"),
    );
    // Libraries of the same folder before and after it (a folder's libraries are opened one
    // after the other on one thread: the ones after the stuck one go to a new thread).
    let token = &crate::util::artifacts().token_lib;
    install(token, &dir, &lib_name("aaa-before"));
    install(token, &dir, &lib_name("zzz-after"));
    home.write_config("call_timeout_secs = 1\n");
    let r = qlam(&home, &dir, &["plugins", "list"]);
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("hang_loader"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.starts_with("failed"), "{line}");
    assert!(line.contains("did not finish loading within 1 s"), "{line}");
    let neighbours_load = |r: &Run| {
        for neighbour in ["aaa_before", "zzz_after"] {
            assert!(
                r.stdout
                    .lines()
                    .any(|l| l.starts_with("loaded") && l.contains(neighbour)),
                "{neighbour} loads:\n{}",
                r.stdout
            );
        }
    };
    neighbours_load(&r);
    assert!(
        r.stdout.lines().filter(|l| l.starts_with("loaded")).count() >= 3,
        "the bundled plugins load:\n{}",
        r.stdout
    );
    // Busy instead of asleep: the CLI keeps the loading thread and itself on one CPU while a
    // folder loads (sys::OnThisCpu); a library spinning on it must not keep the caller from
    // its deadline, nor the libraries after it from loading. Without the index, so that the
    // folder's three libraries are opened on one loading thread again.
    std::fs::remove_file(home.path().join("cache/qlam/plugin-index.json")).unwrap();
    let mut spinning = home.qlam();
    spinning
        .env("QLAM_FIXTURE_HANG_SPIN", "1")
        .arg("--plugin-dir")
        .arg(&dir)
        .args(["plugins", "list"]);
    let r = crate::util::run_bounded(&mut spinning);
    r.ok();
    assert!(
        r.stdout.lines().any(|l| l.starts_with("failed")
            && l.contains("hang_loader")
            && l.contains("did not finish loading within 1 s")),
        "{}",
        r.stdout
    );
    neighbours_load(&r);
    // Isolated, its process is killed at the deadline.
    home.write_config("call_timeout_secs = 1\ndefault_isolation = \"process\"\n");
    let r = qlam(&home, &dir, &["plugins", "list"]);
    r.ok();
    assert!(
        r.stdout.lines().any(|l| l.starts_with("failed")
            && l.contains("hang_loader")
            && l.contains(
                "did not finish loading within 1 s (in its own process, which was killed)"
            )),
        "{}",
        r.stdout
    );
    home.write_config("call_timeout_secs = 1\n");
    // Installing it: the checking child is killed at the deadline, nothing is left behind.
    let r = crate::util::run_bounded(home.qlam().args([
        "plugins",
        "install",
        fixture("qlam-fixture-hang-loader").to_str().unwrap(),
    ]));
    r.code(4);
    assert!(r.stderr.contains("was not installed: "), "{}", r.stderr);
    let user_dir = home.path().join("data/qlam/plugins");
    let left: Vec<_> = std::fs::read_dir(&user_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the plugin folder: {left:?}");
}

#[test]
fn a_provider_that_exits_during_a_call_does_not_pass_for_a_success() {
    let (home, dir) = setup(
        &[
            ("quits-headers", "exit0", "headers"),
            ("quits-token", "exit0", "token"),
        ],
        "",
    );
    for (args, call) in [
        (&["auth", "headers", "quits-headers"][..], "headers"),
        (&["auth", "token", "quits-token"], "token"),
    ] {
        let r = qlam(&home, &dir, args);
        r.code(1);
        assert_eq!(r.stdout, "");
        assert!(
            r.stderr.contains(&format!(
                "error: provider `{}` ended the process during `{call}` (it called exit)",
                args[2]
            )),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn the_sdk_gets_typed_errors_and_goes_on_with_the_other_providers() {
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(
        &fixture("qlam-fixture-hostile"),
        &dir,
        &lib_name("qlam-fixture-hostile"),
    );
    let config = home.write_config(
        "[contexts.c]\n\
         [[contexts.c.auth_providers]]\nname = \"forged\"\nprovider = \"hostile\"\nmisbehave = \"header-crlf-value\"\n\
         [[contexts.c.auth_providers]]\nname = \"stuck\"\nprovider = \"hostile\"\nmisbehave = \"hang\"\nin = \"headers\"\ncall_timeout_secs = 1\n\
         [[contexts.c.auth_providers]]\nname = \"boom\"\nprovider = \"hostile\"\nmisbehave = \"panic\"\nin = \"token\"\n\
         [[contexts.c.auth_providers]]\nname = \"good\"\nprovider = \"hostile\"\n",
    );
    let client = AuthClient::builder()
        .config_file(&config)
        .ignore_environment()
        .no_default_plugin_dirs()
        .no_plugin_index()
        .plugin_dir(&dir)
        .store_dir(home.store_dir())
        .build()
        .unwrap();
    let e = client.headers("forged").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidAnswer, "{e}");
    let e = client.headers("stuck").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(
        e.message(),
        "provider `stuck` did not answer `headers` within 1 s"
    );
    // The stuck provider is not called again (its thread may hold its locks): at once.
    let e = client.headers("stuck").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("is not called again"), "{e}");
    let e = client.token("boom").unwrap_err();
    assert!(!e.message().contains(PANIC_CANARY), "{e}");
    // The others go on.
    let h = client.headers("good").unwrap();
    assert_eq!(h.headers[0].0, "X-Hostile");
    assert_eq!(
        client.token("good").unwrap().token.expose(),
        "hostile-token"
    );
}
