//! Loading plugins: good ones register, every kind of bad file gives one clear line and the
//! good plugins keep working; panics in provider code never abort the host.

use crate::util::{artifacts, fixture, install, lib_name, Home, DEMO_CONFIG};

fn refused_line<'a>(run: &'a crate::util::Run, file: &str) -> &'a str {
    let lines: Vec<&str> = run
        .warnings()
        .into_iter()
        .filter(|l| l.contains(file))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line for `{file}`:\n{}",
        run.stderr
    );
    lines[0]
}

#[test]
fn bundled_plugins_are_listed_with_their_api_version() {
    let home = Home::new();
    let run = home.run(&["--output", "json", "plugins", "list"]);
    run.ok();
    let v = run.json();
    assert_eq!(v["api_version"], qlam_plugin_api::API_VERSION);
    let libs = v["libraries"].as_array().unwrap();
    assert_eq!(libs.len(), 3, "{v:#}");
    let a = artifacts();
    assert_eq!(
        libs[0],
        serde_json::json!({
            "path": a.basic_lib, "status": "loaded", "api_version": qlam_plugin_api::API_VERSION,
            "provider_types": ["basic"], "errors": [],
            "sha256": crate::install::sha256_of(&a.basic_lib), "pinned": false,
        })
    );
    assert_eq!(libs[1]["provider_types"], serde_json::json!(["oauth"]));
    assert_eq!(libs[2]["provider_types"], serde_json::json!(["token"]));
    assert_eq!(v["problems"], serde_json::json!([]));
    // Text form: one row per library, on stdout.
    let run = home.run(&["plugins", "list"]);
    run.ok();
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(rows.len(), 4, "{}", run.stdout);
    assert!(rows[0].starts_with("STATUS"));
    assert!(
        rows[1].starts_with("loaded") && rows[1].ends_with("basic"),
        "{}",
        rows[1]
    );
}

#[test]
fn two_plugins_dropped_in_one_folder_both_register() {
    let home = Home::new();
    let dir = home.path().join("plugins");
    let a = artifacts();
    install(&a.token_lib, &dir, &lib_name("vendor-token"));
    install(&a.basic_lib, &dir, &lib_name("vendor-basic"));
    home.write_config(DEMO_CONFIG);
    // A qlam with no plugins of its own: everything comes from the dropped-in folder.
    let run = crate::util::run(home.bare_qlam().args([
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "plugins",
        "list",
    ]));
    run.ok();
    let v = run.json();
    let types: Vec<&str> = v["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            l["provider_types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
        })
        .collect();
    assert_eq!(types, ["basic", "token"]);
    let run = crate::util::run(home.bare_qlam().env("QLAM_TEST_API_KEY", "k1").args([
        "--plugin-dir",
        dir.to_str().unwrap(),
        "auth",
        "headers",
        "env-key",
    ]));
    run.ok();
    assert_eq!(run.stdout, "X-API-Key: k1\n");
    // The same folder through $QLAM_PLUGIN_PATH.
    let run = crate::util::run(
        home.bare_qlam()
            .env("QLAM_TEST_API_KEY", "k2")
            .env("QLAM_PLUGIN_PATH", &dir)
            .args(["auth", "headers", "env-key"]),
    );
    run.ok();
    assert_eq!(run.stdout, "X-API-Key: k2\n");
}

#[test]
fn without_any_plugin_the_provider_type_is_unknown_exit_4() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let run = crate::util::run(home.bare_qlam().args(["auth", "headers", "env-key"]));
    run.code(4);
    assert!(
        run.stderr.contains("provider `env-key` (`")
            && run
                .stderr
                .contains("has type `token`, which no loaded plugin provides"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_bad_file_gives_one_line_and_good_plugins_still_work() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let dir = home.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notalib.so"), "this is text, not a library\n").unwrap();
    std::fs::write(dir.join("empty.so"), "").unwrap();
    std::fs::create_dir(dir.join("folder.so")).unwrap();
    let token = std::fs::read(&artifacts().token_lib).unwrap();
    std::fs::write(dir.join("truncated.so"), &token[..token.len() / 3]).unwrap();
    let mut other_arch = token.clone();
    other_arch[18] = 183; // e_machine: aarch64
    other_arch[19] = 0;
    std::fs::write(dir.join("otherarch.so"), &other_arch).unwrap();
    install(
        &fixture("qlam-fixture-changed-layout"),
        &dir,
        "changed-layout.so",
    );
    install(&fixture("qlam-fixture-old-api"), &dir, "old-api.so");
    install(
        &fixture("qlam-fixture-panicky-loader"),
        &dir,
        "panicky-loader.so",
    );
    let system_lib = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib64/libz.so.1",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("a system shared library to copy (libz or libm)");
    install(std::path::Path::new(system_lib), &dir, "system.so");

    let run = crate::util::run(home.qlam().env("QLAM_TEST_API_KEY", "still-works").args([
        "--plugin-dir",
        dir.to_str().unwrap(),
        "auth",
        "headers",
        "env-key",
    ]));
    run.ok();
    assert_eq!(run.stdout, "X-API-Key: still-works\n");
    let expect = [
        ("notalib.so", "is not a shared library (no ELF header)"),
        ("empty.so", "is empty (0 bytes), not a shared library"),
        ("folder.so", "is not a regular file"),
        ("truncated.so", "is truncated or damaged"),
        (
            "otherarch.so",
            "is built for aarch64, but this qlam runs on",
        ),
        (
            "changed-layout.so",
            "its interface layout is incompatible with qlam-plugin-api",
        ),
        (
            "old-api.so",
            "built against qlam-plugin-api 0.0.9, but this qlam loads 0.",
        ),
        (
            "panicky-loader.so",
            "panicked while loading its provider list",
        ),
        (
            "system.so",
            "not a qlam plugin (the library exports no qlam root module)",
        ),
    ];
    for (file, text) in expect {
        if file == "otherarch.so" && std::env::consts::ARCH != "x86_64" {
            continue;
        }
        let line = refused_line(&run, file);
        assert!(
            line.starts_with(&format!("warning: plugin `{}`: ", dir.join(file).display())),
            "{line}"
        );
        assert!(
            line.contains(text),
            "`{file}`: expected `{text}` in\n{line}"
        );
    }
    assert_eq!(
        run.warnings().len(),
        expect.len(),
        "nothing else is reported:\n{}",
        run.stderr
    );
    // The layout differences are shown only with -v.
    assert!(!run.stderr.contains("Layout of expected type"));
    let verbose = crate::util::run(home.qlam().args([
        "-v",
        "--plugin-dir",
        dir.to_str().unwrap(),
        "plugins",
        "list",
    ]));
    verbose.ok();
    assert!(
        verbose.stderr.contains("Layout of expected type"),
        "{}",
        verbose.stderr
    );
}

#[test]
fn inspect_shows_why_a_library_is_refused() {
    let home = Home::new();
    let run = home.run(&[
        "--output",
        "json",
        "plugins",
        "inspect",
        fixture("qlam-fixture-old-api").to_str().unwrap(),
    ]);
    run.code(4);
    let v = run.json();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["api_version"], "0.0.9");
    assert_eq!(v["host_api_version"], qlam_plugin_api::API_VERSION);
    assert_eq!(v["error_kind"], "IncompatibleVersion");
    let run = home.run(&[
        "plugins",
        "inspect",
        artifacts().token_lib.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stdout.contains("status:       loaded"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("provider:     token — "),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_plugin_dir_is_reported_and_the_rest_works() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let missing = home.path().join("no-such-dir");
    let run = crate::util::run(home.qlam().env("QLAM_TEST_API_KEY", "x").args([
        "--plugin-dir",
        missing.to_str().unwrap(),
        "auth",
        "token",
        "env-key",
    ]));
    run.ok();
    assert_eq!(run.stdout, "x\n");
    assert_eq!(run.warnings().len(), 1, "{}", run.stderr);
    assert!(run.warnings()[0].starts_with(&format!(
        "warning: plugin folder `{}` (from --plugin-dir) cannot be read:",
        missing.display()
    )));
}

#[test]
fn duplicate_provider_types_first_wins_and_both_origins_are_reported() {
    let home = Home::new();
    let dir = home.path().join("first");
    install(&artifacts().token_lib, &dir, &lib_name("my-token"));
    let run = home.run(&[
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "plugins",
        "list",
    ]);
    run.ok();
    let v = run.json();
    assert_eq!(
        v["duplicates"],
        serde_json::json!([{
            "provider_type": "token",
            "kept": format!("`{}`", dir.join(lib_name("my-token")).display()),
            "ignored": format!("`{}`", artifacts().token_lib.display()),
        }])
    );
    let text = home.run(&["--plugin-dir", dir.to_str().unwrap(), "plugins", "list"]);
    assert!(
        text.stderr.contains("note: provider type `token` from `"),
        "{}",
        text.stderr
    );
}

#[test]
fn panics_in_every_provider_call_become_errors_naming_the_provider() {
    let home = Home::new();
    let dir = home.path().join("p");
    install(&fixture("qlam-fixture-panicky"), &dir, "panicky.so");
    home.write_config(
        "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"boom\"\nprovider = \"panicky\"\n[[contexts.c.auth_providers]]\nname = \"boom-build\"\nprovider = \"panicky-build\"\n[[contexts.c.auth_providers]]\nname = \"ok\"\nprovider = \"token\"\nenv = \"QLAM_TEST_API_KEY\"\n",
    );
    let d = dir.to_str().unwrap();
    // Each panic is reported without its message, which is the vendor's words (it may hold
    // anything, a secret included): that goes to the debug log only.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["auth", "headers", "boom"],
            "provider `boom` panicked in `headers` (run with -v to see its message)",
            "headers exploded",
        ),
        (
            &["auth", "token", "boom"],
            "provider `boom` panicked in `token`",
            "index out of bounds",
        ),
        (
            &["auth", "login", "boom"],
            "provider `boom` panicked in `login`",
            "a non-string panic payload",
        ),
        (
            &["auth", "logout", "boom"],
            "provider `boom` panicked in `logout`",
            "logout exploded",
        ),
        (
            &["auth", "refresh", "boom"],
            "provider `boom` panicked in `refresh`",
            "refresh exploded",
        ),
        (
            &["auth", "credential", "boom"],
            "provider `boom` panicked in `credential`",
            "credential exploded",
        ),
        (
            &["auth", "headers", "boom-build"],
            "provider type `panicky-build` panicked in `build`",
            "build exploded",
        ),
    ];
    for (args, text, message) in cases {
        let mut full = vec!["--plugin-dir", d];
        full.extend_from_slice(args);
        let run = home.run(&full);
        run.code(1);
        assert!(
            run.stderr.contains(text),
            "{args:?}: expected `{text}` in\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(message) && !run.stderr.contains("panicked at"),
            "{args:?}: the panic's message is not shown without -v:\n{}",
            run.stderr
        );
        // At -v it is in a debug line.
        let mut verbose = vec!["-v"];
        verbose.extend_from_slice(&full);
        let run = home.run(&verbose);
        run.code(1);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("debug: ") && l.contains(message)),
            "{args:?}: expected `{message}` in a debug line:\n{}",
            run.stderr
        );
    }
    // Status survives the panics of one provider and shows the others.
    let run = crate::util::run(home.qlam().env("QLAM_TEST_API_KEY", "v").args([
        "--plugin-dir",
        d,
        "--output",
        "json",
        "auth",
        "status",
    ]));
    run.ok();
    let v = run.json();
    assert_eq!(v[0]["status"], "error");
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("panicked in `is_authenticated`"),
        "{v:#}"
    );
    assert_eq!(v[1]["status"], "error");
    assert_eq!(v[2]["status"], "authenticated");
    // The type whose name panics is reported once, by position.
    let lines: Vec<&str> = run
        .warnings()
        .into_iter()
        .filter(|l| l.contains("provider type #3"))
        .collect();
    assert_eq!(
        lines,
        ["warning: plugin `".to_owned()
            + dir.join("panicky.so").to_str().unwrap()
            + "`: provider type #3 panicked in `name` (run with -v to see its message)"],
        "{}",
        run.stderr
    );
    // So is the provider whose description panics (the type's description is shown).
    assert!(
        run.stderr
            .contains("warning: provider `boom` panicked in `description`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_warm_index_opens_only_the_library_a_command_needs() {
    crate::util::require_tool("strace");
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    // Cold: every library is opened and remembered.
    let (r, opened) = crate::util::traced(
        &home,
        &["auth", "headers", "env-key"],
        &[("QLAM_TEST_API_KEY", "k")],
    );
    r.ok();
    assert!(
        opened
            .iter()
            .any(|p| p.ends_with("libqlam_provider_basic.so")),
        "cold: all opened"
    );
    assert!(home.path().join("cache/qlam/plugin-index.json").exists());
    // Warm: only the library of the `token` type.
    let (r, opened) = crate::util::traced(
        &home,
        &["auth", "headers", "env-key"],
        &[("QLAM_TEST_API_KEY", "k")],
    );
    r.ok();
    assert_eq!(r.stdout, "X-API-Key: k\n");
    let mut libs: Vec<&String> = opened
        .iter()
        .filter(|p| p.contains("libqlam_provider"))
        .collect();
    // (Opened twice: the structural check reads its headers, then the loader maps it.)
    libs.dedup();
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert!(libs[0].ends_with("libqlam_provider_token.so"), "{libs:?}");
}

#[test]
fn a_changed_library_is_read_again_and_a_refused_file_is_not_reloaded() {
    crate::util::require_tool("strace");
    let home = Home::new();
    let dir = home.path().join("p");
    let a = artifacts();
    install(&a.token_lib, &dir, "libvendor.so");
    std::fs::write(dir.join("notalib.so"), "text\n").unwrap();
    let d = dir.to_str().unwrap();
    let types = |home: &Home| -> serde_json::Value {
        let v = home
            .run(&["--plugin-dir", d, "--output", "json", "plugins", "list"])
            .json();
        v["libraries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with("libvendor.so"))
            .unwrap()["provider_types"]
            .clone()
    };
    assert_eq!(types(&home), serde_json::json!(["token"]));
    // Replaced the way an installer should (write elsewhere, rename over): read again.
    install(&a.basic_lib, home.path(), "new.so");
    std::fs::rename(home.path().join("new.so"), dir.join("libvendor.so")).unwrap();
    assert_eq!(types(&home), serde_json::json!(["basic"]));
    // The refused file is still reported, from the index, without being opened again.
    let (r, opened) = crate::util::traced(&home, &["--plugin-dir", d, "plugins", "list"], &[]);
    r.ok();
    assert!(
        r.stdout.contains("notalib.so") && r.stdout.contains("no ELF header"),
        "{}",
        r.stdout
    );
    assert!(
        !opened.iter().any(|p| p.ends_with("notalib.so")),
        "{opened:?}"
    );
    // Fixed in place (new content, new size): tried again.
    std::fs::copy(&a.token_lib, dir.join("notalib.so")).unwrap();
    let v = home
        .run(&["--plugin-dir", d, "--output", "json", "plugins", "list"])
        .json();
    let fixed = v["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("notalib.so"))
        .unwrap()
        .clone();
    assert_eq!(fixed["status"], "loaded", "{fixed}");
}

#[test]
fn a_plugin_built_against_the_frozen_first_interface_still_loads_and_works() {
    // tests/fixtures/frozen/plugin-api-0.1.0 is qlam-plugin-api 0.1.0 as released; the
    // first-layout fixture is built against it.
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(
        &fixture("qlam-fixture-first-layout"),
        &dir,
        &lib_name("first"),
    );
    let cfg = home.write_config(
        "current_context = \"x\"\n[contexts.x]\nauth_providers = [{ name = \"old\", provider = \"first-layout\" }]\n",
    );
    let (cfg, dir) = (cfg.to_str().unwrap(), dir.to_str().unwrap());
    let run = home.run(&[
        "--config",
        cfg,
        "--plugin-dir",
        dir,
        "--output",
        "json",
        "plugins",
        "list",
    ]);
    run.ok();
    let v = run.json();
    let lib = v["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["provider_types"] == serde_json::json!(["first-layout"]))
        .unwrap_or_else(|| panic!("first-layout is listed as loaded: {v:#}"));
    assert_eq!(lib["api_version"], "0.1.0");
    assert_eq!(lib["status"], "loaded");
    let run = home.run(&[
        "--config",
        cfg,
        "--plugin-dir",
        dir,
        "auth",
        "headers",
        "old",
    ]);
    run.ok();
    assert_eq!(run.stdout, "X-First: v0.1.0\n");
    assert!(run.warnings().is_empty(), "{}", run.stderr);
    let run = home.run(&["--config", cfg, "--plugin-dir", dir, "auth", "token", "old"]);
    run.ok();
    assert_eq!(run.stdout, "first-layout-token\n");
}

#[test]
fn plugin_libraries_log_through_the_host_filtered_and_redacted() {
    // The chatty fixture logs through its own `log` and `tracing` copies and through the host
    // service, each line carrying a canary credential.
    let home = Home::new();
    let dir = home.path().join("plugins");
    install(&fixture("qlam-fixture-chatty"), &dir, &lib_name("chatty"));
    let cfg = home.write_config(
        "current_context = \"x\"\n[contexts.x]\nauth_providers = [{ name = \"ch\", provider = \"chatty\" }]\n",
    );
    let (cfg, dir) = (cfg.to_str().unwrap(), dir.to_str().unwrap());
    let base = [
        "--config",
        cfg,
        "--plugin-dir",
        dir,
        "auth",
        "headers",
        "ch",
    ];
    let no_canary = |run: &crate::util::Run| {
        for n in 1..=4 {
            let canary = format!("canary-log-{n}");
            assert!(
                !run.stderr.contains(&canary),
                "{canary} leaked:\n{}",
                run.stderr
            );
            assert!(!run.stdout.contains(&canary));
        }
    };

    // Default level (warnings): the three warnings, redacted; nothing below.
    let run = home.run(&base);
    run.ok();
    assert_eq!(run.stdout, "X-Chatty: yes\n");
    assert_eq!(
        run.warnings(),
        [
            "warning: qlam_fixture_chatty: chatty-log-warn sending access_token=[REDACTED]",
            "warning: qlam_fixture_chatty: chatty-tracing-warn password=[REDACTED]",
            "warning: ch: chatty-service-warn client_secret=[REDACTED]",
        ],
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("chatty-log-info"), "{}", run.stderr);
    no_canary(&run);

    // -v: info and debug from both crates, with their targets.
    let mut args = vec!["-v"];
    args.extend(base);
    let run = home.run(&args);
    run.ok();
    for line in [
        "info: qlam_fixture_chatty: chatty-log-info",
        "debug: chatty::http: chatty-log-debug Authorization: Bearer [REDACTED]",
        "debug: qlam_fixture_chatty: chatty-tracing-debug",
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "missing `{line}`:\n{}",
            run.stderr
        );
    }
    no_canary(&run);

    // QLAM_LOG filters plugin output like the host's own: errors only shows none of it.
    let run = run_env(&home, &base, &[("QLAM_LOG", "error")]);
    run.ok();
    assert!(!run.stderr.contains("chatty-"), "{}", run.stderr);
    let run = run_env(&home, &base, &[("QLAM_LOG", "trace")]);
    run.ok();
    assert!(
        run.stderr.contains("chatty-tracing-debug"),
        "{}",
        run.stderr
    );
    no_canary(&run);
}

fn run_env(home: &Home, args: &[&str], env: &[(&str, &str)]) -> crate::util::Run {
    let mut cmd = home.qlam();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::util::run(&mut cmd)
}

/// The layout check is shared between libraries built from the same qlam-plugin-api source
/// (the interface fingerprint `export_providers!` exports): the first is checked in full, the
/// others take its result. A library with another interface is still checked, and refused,
/// after good ones were loaded.
#[test]
fn a_changed_layout_is_refused_after_libraries_whose_check_was_shared() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let dir = home.path().join("many");
    std::fs::create_dir_all(&dir).unwrap();
    // Name order is load order: three copies of the token plugin, then the changed layout.
    for name in ["a1.so", "a2.so", "a3.so"] {
        install(&artifacts().token_lib, &dir, name);
    }
    install(
        &fixture("qlam-fixture-changed-layout"),
        &dir,
        "b-changed-layout.so",
    );
    let r = home.run(&[
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "plugins",
        "list",
    ]);
    let listed = r.json();
    let status = |file: &str| {
        listed["libraries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"].as_str().is_some_and(|p| p.ends_with(file)))
            .unwrap_or_else(|| panic!("{file} not listed: {listed}"))
            .clone()
    };
    for name in ["a1.so", "a2.so", "a3.so"] {
        assert_eq!(status(name)["status"], "loaded", "{name}: {listed}");
    }
    let changed = status("b-changed-layout.so");
    assert_eq!(changed["status"], "failed", "{changed}");
    assert!(
        changed
            .to_string()
            .contains("interface layout is incompatible"),
        "{changed}"
    );
}
