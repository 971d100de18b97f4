//! The Windows build under wine: `qlam.exe` and the bundled provider DLLs, the vendor example
//! and the fixtures, cross-built for `x86_64-pc-windows-gnu` by `windows/build.sh` (once per
//! test process; cargo skips what is up to date) and run by wine on this Linux machine
//! (windows/README.md says what wine does differently from Windows).
//!
//! Every test has its own wine prefix: wine takes `%APPDATA%` and `%LOCALAPPDATA%` from the
//! prefix's registry, never from the environment, so a private prefix is the only way to a
//! private store. A prefix is a hard-link copy of the one build.sh made (a few MB, 0.04 s) with
//! its own registry files, and has its own wineserver, stopped when the test ends.
//!
//! Without wine, mingw-w64 or the Rust target the tests say why and pass, unless
//! `QLAM_REQUIRE_WINE=1` (CI): then that is a failure. `QLAM_REQUIRE_WINE=0` skips them.
//! Run only these: `cargo test -p qlam-tests --test it windows`.

mod wine;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::util::oauth::{server_dir, OAuthServer};
use wine::{assert_file, winpath, Running, Wine};

/// The bundled providers and the token and basic ones, with a token from the environment,
/// one from a command (`cmd /c type`, CRLF and all), and a host for the git helper.
fn basic_config(w: &Wine) -> PathBuf {
    let answer = w.write(
        "answer.json",
        "{\"token\": \"from-cmd\", \"expires_at\": \"2099-01-01T00:00:00Z\"}\r\n",
    );
    w.write(
        "config.toml",
        &format!(
            r#"current_context = "w"
[contexts.w]
[[contexts.w.auth_providers]]
name = "tok"
provider = "token"
[[contexts.w.auth_providers]]
name = "bas"
provider = "basic"
[[contexts.w.auth_providers]]
name = "envtok"
provider = "token"
env = "QLAM_WINE_TOKEN"
[[contexts.w.auth_providers]]
name = "cmdtok"
provider = "token"
command = ["cmd", "/c", "type", '{answer}']
[contexts.w.hosts]
"git.example.com" = "envtok"
"#,
            answer = winpath(&answer)
        ),
    )
}

/// The fixtures' configuration: `first` (plugin-api 0.1.0) and `pan` (panics in every call),
/// from the folder `plugins`; `isolated` puts `pan` in its own process.
fn fixtures_config(w: &Wine, isolated: bool) -> PathBuf {
    for dll in ["qlam_fixture_first_layout", "qlam_fixture_panicky"] {
        w.extra_dll(dll, "plugins");
    }
    let isolation = if isolated {
        "isolation = \"process\"\n"
    } else {
        ""
    };
    w.write(
        if isolated {
            "isolated.toml"
        } else {
            "fixtures.toml"
        },
        &format!(
            r#"current_context = "f"
[contexts.f]
plugin_dirs = ["plugins"]
[[contexts.f.auth_providers]]
name = "first"
provider = "first-layout"
[[contexts.f.auth_providers]]
name = "pan"
provider = "panicky"
{isolation}"#
        ),
    )
}

// --- start and discovery ----------------------------------------------------------------

#[test]
fn discovery_loads_the_bundled_dlls_and_refuses_bad_files() {
    let Some(w) = Wine::new("discovery") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let r = w.run(&["--version"]);
    r.code(0);
    if !r.stdout.starts_with("qlam ") {
        r.fail("`qlam VERSION` on stdout");
    }

    let r = w.run(&["--config", config, "plugins", "list"]);
    for (dll, provider) in [
        ("qlam_provider_basic.dll", "basic"),
        ("qlam_provider_oauth.dll", "oauth"),
        ("qlam_provider_token.dll", "token"),
    ] {
        // Found in qlam.exe's own folder.
        r.expect_line_with(0, &["loaded", &winpath(&w.build.bin.join(dll)), provider]);
    }
    w.run(&[
        "--config",
        config,
        "plugins",
        "inspect",
        w.build
            .bin
            .join("qlam_provider_token.dll")
            .to_str()
            .unwrap(),
    ])
    .expect_line_with(0, &["status:", "loaded"]);

    // Files that are not plugins, each refused with its reason.
    let token_dll = std::fs::read(w.build.bin.join("qlam_provider_token.dll")).unwrap();
    w.write("bad/notes.dll", "just text\n");
    w.write("bad/empty.dll", "");
    std::fs::write(w.work().join("bad/truncated.dll"), &token_dll[..100_000]).unwrap();
    // The same DLL for another machine (ARM64 in the COFF header's Machine field).
    let mut foreign = token_dll.clone();
    let pe = u32::from_le_bytes(foreign[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&foreign[pe..pe + 4], b"PE\0\0");
    foreign[pe + 4..pe + 6].copy_from_slice(&0xAA64u16.to_le_bytes());
    std::fs::write(w.work().join("bad/foreign.dll"), &foreign).unwrap();
    // A real Windows DLL that is no qlam plugin.
    std::fs::copy(
        w.prefix
            .join("drive_c/windows/system32/bcryptprimitives.dll"),
        w.work().join("bad/notqlam.dll"),
    )
    .unwrap();
    let inspect = |name: &str| w.run(&["--config", config, "plugins", "inspect", name]);
    inspect("bad/notes.dll")
        .expect_line_with(4, &["reason:", "is not a Windows DLL (no MZ header)"]);
    inspect("bad/empty.dll").expect_line_with(4, &["reason:", "is empty (0 bytes)"]);
    inspect("bad/notqlam.dll").expect_line_with(
        4,
        &[
            "reason:",
            "not a qlam plugin (the library exports no qlam root module)",
        ],
    );
    // Refused by the PE header check, before LoadLibrary.
    inspect("bad/truncated.dll").expect_line_with(
        4,
        &[
            "reason:",
            "is truncated: its section `.text` ends at byte",
            "but the file has 100000 bytes",
        ],
    );
    inspect("bad/foreign.dll").expect_line_with(
        4,
        &[
            "reason:",
            "is built for aarch64, but this qlam runs on x86_64",
        ],
    );

    // `plugins list` reports each bad file and still loads the bundled DLLs.
    let r = w.run(&["--config", config, "--plugin-dir", "bad", "plugins", "list"]);
    r.code(0);
    for name in ["notes", "empty", "truncated", "foreign", "notqlam"] {
        r.expect_line_with(0, &["failed", &format!("\\bad\\{name}.dll")]);
    }
    for provider in ["basic", "oauth", "token"] {
        r.expect_line_with(0, &["loaded", &format!("qlam_provider_{provider}.dll")]);
    }
}

// --- the vendor example and the fixtures ----------------------------------------------------

#[test]
fn vendor_example_and_fixtures_load_or_are_refused() {
    let Some(w) = Wine::new("fixtures") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    // The vendor example (examples/vendor-provider: ureq, rustls and ring in a DLL).
    let acme = w.extra_dll("acme_qlam_provider", "plugins");
    w.run(&[
        "--config",
        config,
        "plugins",
        "inspect",
        acme.to_str().unwrap(),
    ])
    .expect_line_with(0, &["provider:", "acme"]);
    let old = w.extra_dll("qlam_fixture_old_api", "plugins");
    w.run(&[
        "--config",
        config,
        "plugins",
        "inspect",
        old.to_str().unwrap(),
    ])
    .expect(4, "built against qlam-plugin-api 0.0.9");
    let changed = w.extra_dll("qlam_fixture_changed_layout", "plugins");
    w.run(&[
        "--config",
        config,
        "plugins",
        "inspect",
        changed.to_str().unwrap(),
    ])
    .expect(4, "interface layout is incompatible");

    let fixtures = fixtures_config(&w, false);
    let fixtures = fixtures.to_str().unwrap();
    // A plugin built against plugin-api 0.1.0 works.
    w.run(&["--config", fixtures, "auth", "headers", "first"])
        .expect_line(0, "X-First: v0.1.0");
    // A panic in a provider call is contained and named; its text only at -v.
    w.run(&["--config", fixtures, "auth", "headers", "pan"])
        .expect(1, "provider `pan` panicked in `headers`")
        .lacks("exploded");
    w.run(&["--config", fixtures, "-v", "auth", "headers", "pan"])
        .expect(1, "headers exploded");
}

/// Process isolation's Windows child (host/lib/src/boundary/isolated.rs): a panic there is
/// reported like an in-process one, not as a crash (the child used to exit 2).
#[test]
fn an_isolated_panicking_provider_is_contained() {
    let Some(w) = Wine::new("isolated") else {
        return;
    };
    let isolated = fixtures_config(&w, true);
    let isolated = isolated.to_str().unwrap();
    w.run(&["--config", isolated, "auth", "headers", "pan"])
        .expect(1, "provider `pan` panicked in `headers`")
        .lacks("crashed");
    // The other (in-process) plugin of the same folder still loads and works.
    w.run(&["--config", isolated, "auth", "headers", "first"])
        .expect_line(0, "X-First: v0.1.0");
}

/// Libraries that panic or hang while the host loads them (their factory list's code, after
/// `LoadLibrary` returned) are refused, the others load; isolated, the hanging one's child
/// is killed at the deadline.
#[test]
fn libraries_that_panic_or_hang_while_loading_are_refused() {
    let Some(w) = Wine::new("loaders") else {
        return;
    };
    for dll in [
        "qlam_fixture_panicky_loader",
        "qlam_fixture_hang_loader",
        "qlam_fixture_first_layout",
    ] {
        w.extra_dll(dll, "plugins");
    }
    let body = "[contexts.c]\nplugin_dirs = [\"plugins\"]\n[[contexts.c.auth_providers]]\nname = \"first\"\nprovider = \"first-layout\"\n";
    let config = w.write(
        "loaders.toml",
        &format!("current_context = \"c\"\ncall_timeout_secs = 2\n{body}"),
    );
    let config = config.to_str().unwrap();
    w.run(&["--config", config, "plugins", "list"])
        .expect_line_with(
            0,
            &["failed", "qlam_fixture_panicky_loader.dll", "panicked"],
        )
        .expect_line_with(
            0,
            &[
                "failed",
                "qlam_fixture_hang_loader.dll",
                "did not finish loading within 2 s",
            ],
        )
        .expect_line_with(
            0,
            &["loaded", "qlam_fixture_first_layout.dll", "first-layout"],
        );
    w.run(&["--config", config, "auth", "headers", "first"])
        .expect_line(0, "X-First: v0.1.0");
    let isolated = w.write(
        "isolated-loaders.toml",
        &format!("current_context = \"c\"\ncall_timeout_secs = 2\ndefault_isolation = \"process\"\n{body}"),
    );
    w.run(&["--config", isolated.to_str().unwrap(), "plugins", "list"])
        .expect_line_with(
            0,
            &[
                "failed",
                "qlam_fixture_hang_loader.dll",
                "did not finish loading within 2 s (in its own process, which was killed)",
            ],
        );
}

/// A plugin's dependencies come from its own folder and System32 only
/// (`LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32`): never from the current
/// folder or `PATH` (wine: `WINEPATH`), where anyone who can write there could plant one.
/// Two small C DLLs, one importing the other, built here with mingw.
#[test]
fn a_plugins_dependencies_are_found_beside_it_never_in_the_current_folder_or_path() {
    let Some(w) = Wine::new("dll-search") else {
        return;
    };
    let gcc = |args: &[&str]| {
        let out = Command::new("x86_64-w64-mingw32-gcc")
            .args(args)
            .current_dir(w.work())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mingw gcc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    w.write(
        "dep.c",
        "__declspec(dllexport) int qlam_test_dep(void) { return 7; }\n",
    );
    w.write(
        "plug.c",
        "__declspec(dllimport) int qlam_test_dep(void);\n__declspec(dllexport) int plug(void) { return qlam_test_dep(); }\n",
    );
    gcc(&["-shared", "-o", "dep.dll", "dep.c"]);
    std::fs::create_dir_all(w.work().join("plugins")).unwrap();
    gcc(&[
        "-shared",
        "-o",
        "plugins/plug.dll",
        "plug.c",
        "-L.",
        "-l:dep.dll",
    ]);
    std::fs::create_dir_all(w.work().join("on-path")).unwrap();
    std::fs::copy(w.work().join("dep.dll"), w.work().join("on-path/dep.dll")).unwrap();
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let plug = w.work().join("plugins/plug.dll");
    let inspect = || {
        w.run_env(
            &[("WINEPATH", &winpath(&w.work().join("on-path")))],
            &[
                "--config",
                config,
                "plugins",
                "inspect",
                plug.to_str().unwrap(),
            ],
        )
    };
    // dep.dll in the current folder and on the path: not found.
    inspect()
        .expect(4, "cannot be loaded as a shared library")
        .expect(4, "(os error 126)");
    // The control: a plain LoadLibrary in the same setting finds it in the current folder.
    w.write(
        "naive.c",
        "#include <windows.h>\nint main(int argc, char **argv) { return LoadLibraryA(argv[1]) ? 0 : 1; }\n",
    );
    gcc(&["-o", "naive.exe", "naive.c"]);
    w.run_program(&w.work().join("naive.exe"), &[&winpath(&plug)])
        .code(0);
    // Beside the plugin: found; the DLL loads and is then refused for what it is.
    std::fs::copy(w.work().join("dep.dll"), w.work().join("plugins/dep.dll")).unwrap();
    inspect()
        .expect(4, "not a qlam plugin")
        .lacks("os error 126");
}

/// What in-process code cannot survive, an isolated provider's child can: a write through
/// a null pointer, `abort()`, a stack overflow and a call that never returns each end (or
/// kill) only the child, named by the exception its exit status carries, and a
/// well-behaved isolated provider of the same library goes on working.
#[test]
fn an_isolated_provider_that_crashes_or_hangs_is_contained() {
    let Some(w) = Wine::new("isolated-crash") else {
        return;
    };
    w.extra_dll("qlam_fixture_hostile", "plugins");
    let mut text =
        String::from("current_context = \"c\"\n[contexts.c]\nplugin_dirs = [\"plugins\"]\n");
    for (name, mode) in [
        ("segv", "segv"),
        ("abort", "abort"),
        ("overflow", "stack-overflow"),
        ("hang", "hang"),
        ("good", "none"),
    ] {
        text += &format!(
            "[[contexts.c.auth_providers]]\nname = \"{name}\"\nprovider = \"hostile\"\nmisbehave = \"{mode}\"\nisolation = \"process\"\ncall_timeout_secs = 2\n"
        );
    }
    let config = w.write("crash.toml", &text);
    let config = config.to_str().unwrap();
    for (name, how) in [
        ("segv", "exception 0xC0000005, an access violation"),
        ("abort", "exception 0xC0000409, a fail-fast abort"),
        ("overflow", "exception 0xC00000FD, a stack overflow"),
    ] {
        w.run(&["--config", config, "auth", "headers", name])
            .expect(
                1,
                &format!("provider `{name}` crashed in `headers` (its process ended with {how})"),
            );
    }
    w.run(&["--config", config, "auth", "headers", "hang"])
        .expect(1, "provider `hang` did not answer `headers` within 2 s");
    w.run(&["--config", config, "auth", "headers", "good"])
        .expect_line(0, "X-Hostile: ok");
}

/// Plugin trust on Windows reads the DLL's and its folders' security descriptors. Wine
/// derives them from the Unix owner and mode (windows/README.md): world-writable becomes an
/// access entry letting Everyone write, a file of another Unix user is owned by ANONYMOUS
/// LOGON. Each refusal, then the same file loading again once put right.
#[test]
fn plugin_trust_refuses_what_everyone_can_write_or_another_owns() {
    use std::os::unix::fs::PermissionsExt;
    let Some(w) = Wine::new("trust") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let folder = w.work().join("trusted/plugins");
    std::fs::create_dir_all(&folder).unwrap();
    // A copy, not a link: its mode and owner change below.
    let dll = folder.join("acme_qlam_provider.dll");
    std::fs::copy(w.build.extra.join("acme_qlam_provider.dll"), &dll).unwrap();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&dll, 0o755);
    mode(&folder, 0o755);
    mode(folder.parent().unwrap(), 0o755);
    let inspect = || {
        w.run(&[
            "--config",
            config,
            "plugins",
            "inspect",
            dll.to_str().unwrap(),
        ])
    };
    inspect().expect_line_with(0, &["provider:", "acme"]);

    mode(&folder, 0o777);
    inspect()
        .expect(
            4,
            &format!(
                "is in folder `{}`, which Everyone can write to",
                winpath(&folder)
            ),
        )
        .expect(
            4,
            &format!("icacls \"{}\" /remove:g *S-1-1-0", winpath(&folder)),
        );
    mode(&folder, 0o755);

    let above = folder.parent().unwrap();
    mode(above, 0o777);
    inspect().expect(
        4,
        &format!(
            "is in folder `{}`, which Everyone can write to",
            winpath(above)
        ),
    );
    mode(above, 0o755);

    mode(&dll, 0o777);
    inspect().expect(
        4,
        "is writable by Everyone (its ACL allows Everyone to change its contents",
    );
    mode(&dll, 0o755);

    std::os::unix::fs::chown(&dll, Some(65534), None).unwrap();
    inspect().expect(
        4,
        "is owned by ANONYMOUS LOGON (S-1-5-7), neither you nor an administrator or the system",
    );
    std::os::unix::fs::chown(&dll, Some(0), None).unwrap();

    inspect().expect_line_with(0, &["provider:", "acme"]);
}

/// The host library's own unit tests, built for Windows and run under wine (the store's
/// paths and locks, the configuration, the plugin checks; the Windows trust checks on files
/// whose access lists the test sets).
#[test]
fn the_host_librarys_unit_tests_pass_under_wine() {
    let Some(w) = Wine::new("unit") else {
        return;
    };
    let out = Command::new("cargo")
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "-p",
            "qlam-host",
            "--lib",
        ])
        .args(["--target", "x86_64-pc-windows-gnu"])
        .env("CARGO_TARGET_DIR", &w.build.target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo test --no-run for Windows failed"
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .find(|p| p.extension().is_some_and(|e| e == "exe"))
        .expect("cargo names the test executable");
    let r = w.run_program(&exe, &[]);
    r.code(0);
    let summary = r
        .stdout
        .lines()
        .find(|l| l.starts_with("test result: ok."))
        .unwrap_or_else(|| r.fail("a `test result: ok.` line"));
    // Not a run that found nothing to test.
    let passed: u32 = summary
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 40, "{summary}");
}

/// `plugins install` loads the copy in an isolated child before installing it.
#[test]
fn plugins_install_puts_a_plugin_in_the_user_folder() {
    let Some(w) = Wine::new("install") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let src = w.extra_dll("qlam_fixture_first_layout", "candidates");
    w.run(&[
        "--config",
        config,
        "plugins",
        "install",
        src.to_str().unwrap(),
    ])
    .expect(0, "Installed ")
    .expect(0, "(provider types: first-layout)");
    let installed = w.profile("AppData/Roaming/qlam/plugins/qlam_fixture_first_layout.dll");
    assert_file("the installed copy in %APPDATA%\\qlam\\plugins", &installed);
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&src).unwrap()
    );
    // Found there without any plugin folder in the configuration.
    let user = w.write(
        "user.toml",
        "current_context = \"u\"\n[contexts.u]\n[[contexts.u.auth_providers]]\nname = \"first\"\nprovider = \"first-layout\"\n",
    );
    w.run(&[
        "--config",
        user.to_str().unwrap(),
        "auth",
        "headers",
        "first",
    ])
    .expect_line(0, "X-First: v0.1.0");
}

/// The marker fixture's constructor runs when the DLL is loaded (on Windows from `.CRT$XCU`,
/// which mingw's CRT runs at `DLL_PROCESS_ATTACH`): what the trust tests rely on.
#[test]
fn the_marker_fixture_marks_when_loaded() {
    let Some(w) = Wine::new("marker") else {
        return;
    };
    let config = basic_config(&w);
    let marker_dll = w.extra_dll("qlam_fixture_marker", "plugins");
    let marker = w.work().join("marker.txt");
    let r = w.run_env(
        &[(
            "QLAM_TEST_MARKER",
            &format!("{}\\marker.txt", winpath(w.work())),
        )],
        &[
            "--config",
            config.to_str().unwrap(),
            "plugins",
            "inspect",
            marker_dll.to_str().unwrap(),
        ],
    );
    r.expect_line_with(0, &["provider:", "marker"]);
    if !marker.is_file() {
        r.fail(&format!(
            "the constructor to write {} when the DLL was loaded",
            marker.display()
        ));
    }
}

// --- token and basic providers, paths ----------------------------------------------------

#[test]
fn token_and_basic_login_status_token_headers_logout() {
    let Some(w) = Wine::new("login") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let c = |args: &[&'static str]| {
        let mut v = vec!["--config", config];
        v.extend_from_slice(args);
        v
    };
    // Answers piped on stdin, LF and CRLF.
    w.run_stdin("tok-secret-1\n", &c(&["auth", "login", "tok"]))
        .expect(0, "Logged in to `tok`");
    w.run_stdin("ann\r\nsecret\r\n", &c(&["auth", "login", "bas"]))
        .expect(0, "Logged in to `bas` as ann");
    w.run(&c(&["auth", "status"]))
        .expect_line_with(0, &["tok ", "token", "authenticated"])
        .expect_line_with(0, &["bas ", "basic", "authenticated"]);
    w.run(&c(&["auth", "token", "tok"]))
        .expect_stdout("tok-secret-1\n");
    w.run(&c(&["auth", "headers", "bas"]))
        .expect_stdout("Authorization: Basic YW5uOnNlY3JldA==\n");
    let r = w.run(&c(&["--output", "json", "auth", "headers", "tok"]));
    r.code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| r.fail(&format!("JSON on stdout ({e})")));
    if v["Authorization"] != "Bearer tok-secret-1" {
        r.fail("{\"Authorization\": \"Bearer tok-secret-1\"}");
    }
    // Where things are: %LOCALAPPDATA% and %APPDATA% of the prefix's user.
    assert_file(
        "the file store under %LOCALAPPDATA%\\qlam\\credentials",
        &w.local_qlam().join("credentials/w/tok.json"),
    );
    assert_file(
        "the plugin index under %LOCALAPPDATA%\\qlam",
        &w.local_qlam().join("plugin-index.json"),
    );
    w.run(&["config", "path"]).expect_stdout(&format!(
        "C:\\users\\{}\\AppData\\Roaming\\qlam\\config.toml\n",
        w.user
    ));

    let r = w.run(&c(&["auth", "logout"]));
    r.expect(0, "Logged out of `tok`")
        .expect(0, "Logged out of `bas`");
    w.run(&c(&["auth", "token", "tok"]))
        .expect(3, "run `qlam auth login tok`");
    if w.local_qlam().join("credentials/w/tok.json").exists() {
        panic!("logout left credentials/w/tok.json behind");
    }
    w.run_env(
        &[("QLAM_WINE_TOKEN", "from-env")],
        &c(&["auth", "token", "envtok"]),
    )
    .expect_stdout("from-env\n");
}

/// One login at a time across processes: the first `auth login` holds the entry's lock while
/// it waits for its answers (and says who it is in `bas.lock-holder`: a Windows lock keeps
/// others from reading the lock file itself); a second one waits, then finds the first's
/// login and keeps it.
#[test]
fn a_second_login_waits_for_the_first_and_keeps_its_login() {
    use std::io::Write;
    let Some(w) = Wine::new("lock") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let args = ["--config", config, "auth", "login", "bas"];
    let (first, mut answers) =
        Running::start_waiting_for_input(w.qlam(&args), format!("qlam.exe {}", args.join(" ")));
    let note = w.local_qlam().join("credentials/w/bas.lock-holder");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&note).is_ok_and(|t| t.ends_with(" login")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first login never noted itself in {}",
            note.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = Running::start(
        w.qlam(&args),
        format!("qlam.exe {}", args.join(" ")),
        Some("bob\nother\n"),
    );
    // Time for the second to start and find the lock taken (wine starts it in well under 1 s).
    std::thread::sleep(std::time::Duration::from_secs(3));
    answers.write_all(b"ann\nsecret\n").unwrap();
    drop(answers);
    first.finish().expect(0, "Logged in to `bas` as ann");
    second.finish().expect(
        0,
        "another qlam process logged in to `bas` meanwhile; using its login",
    );
    w.run(&["--config", config, "auth", "headers", "bas"])
        .expect_stdout("Authorization: Basic YW5uOnNlY3JldA==\n");
}

#[test]
fn a_command_token_is_cached_and_served_from_the_answer_cache() {
    let Some(w) = Wine::new("answers") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    w.run(&["--config", config, "auth", "token", "cmdtok"])
        .expect_stdout("from-cmd\n");
    assert_file(
        "the answer cached beside the store entry",
        &w.local_qlam().join("credentials/w/cmdtok.answers.json"),
    );
    // The command now says something else: the cached answer is served, the command not run.
    w.write(
        "answer.json",
        "{\"token\": \"changed\", \"expires_at\": \"2099-01-01T00:00:00Z\"}\r\n",
    );
    w.run(&["--config", config, "auth", "token", "cmdtok"])
        .expect_stdout("from-cmd\n");
    // Without the cached answer the command is asked again.
    std::fs::remove_file(w.local_qlam().join("credentials/w/cmdtok.answers.json")).unwrap();
    w.run(&["--config", config, "auth", "token", "cmdtok"])
        .expect_stdout("changed\n");
}

#[test]
fn git_credential_helper_answers_a_crlf_request() {
    let Some(w) = Wine::new("git") else {
        return;
    };
    let config = basic_config(&w);
    let config = config.to_str().unwrap();
    let r = w.run_with(
        &[("QLAM_WINE_TOKEN", "abc")],
        Some("protocol=https\r\nhost=git.example.com\r\n\r\n"),
        &["--config", config, "credential-helper", "git", "get"],
    );
    r.expect_line(0, "password=abc").lacks("\r");
    // Another host: nothing to say, and no password.
    w.run_stdin(
        "protocol=https\r\nhost=other.example.com\r\n\r\n",
        &["--config", config, "credential-helper", "git", "get"],
    )
    .code(0)
    .lacks("password=");
}

/// Docker runs `docker-credential-qlam.exe get` (a link to qlam.exe, found by its name with
/// the `.exe`), the registry on stdin; a CRLF after it is not part of the name.
#[test]
fn docker_credential_helper_by_its_exe_name() {
    let Some(w) = Wine::new("docker") else {
        return;
    };
    let config = w.write(
        "docker.toml",
        "current_context = \"w\"\n[contexts.w]\n[[contexts.w.auth_providers]]\nname = \"envtok\"\nprovider = \"token\"\nenv = \"QLAM_WINE_TOKEN\"\n[contexts.w.hosts]\n\"registry.example.com:5000\" = { provider = \"envtok\", username = \"robot\" }\n",
    );
    // Its own folder: the helper's name, and the bundled providers beside it.
    let bin = w.work().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-qlam.exe");
    std::fs::hard_link(w.build.bin.join("qlam.exe"), &helper).unwrap();
    for e in std::fs::read_dir(&w.build.bin).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("qlam_provider_") && name.ends_with(".dll") {
            std::fs::hard_link(e.path(), bin.join(&name)).unwrap();
        }
    }
    let env = [
        ("QLAM_CONFIG", config.to_str().unwrap()),
        ("QLAM_WINE_TOKEN", "abc"),
    ];
    w.run_program_with(
        &helper,
        &env,
        Some("registry.example.com:5000\r\n"),
        &["get"],
    )
    .expect_stdout(
        "{\"Secret\":\"abc\",\"ServerURL\":\"registry.example.com:5000\",\"Username\":\"robot\"}\n",
    );
    w.run_program_with(&helper, &env, Some("other.example.com\r\n"), &["get"])
        .expect(1, "credentials not found in native keychain");
}

// --- Credential Manager ------------------------------------------------------------------

#[test]
fn keyring_store_is_the_credential_manager() {
    let Some(w) = Wine::new("keyring") else {
        return;
    };
    basic_config(&w);
    let text = std::fs::read_to_string(w.work().join("config.toml")).unwrap();
    let keyring = w.write(
        "keyring.toml",
        &format!("credential_store = \"keyring\"\n{text}"),
    );
    let c = |args: &[&'static str]| {
        let mut v = vec!["--config", keyring.to_str().unwrap()];
        v.extend_from_slice(args);
        v
    };
    w.run_stdin("kr-secret\n", &c(&["auth", "login", "tok"]))
        .expect(0, "Logged in to `tok`");
    w.run(&c(&["auth", "status"]))
        .expect_line_with(0, &["tok ", "authenticated", " keyring "]);
    w.run(&c(&["auth", "token", "tok"]))
        .expect_stdout("kr-secret\n");
    if w.local_qlam().join("credentials/w/tok.json").exists() {
        panic!("the keyring store wrote the file store's credentials/w/tok.json");
    }
    // A value longer than one credential blob (split over several).
    let big = "k".repeat(6000);
    w.run_stdin(&format!("{big}\n"), &c(&["auth", "login", "tok"]))
        .expect(0, "Logged in to `tok`");
    w.run(&c(&["auth", "token", "tok"]))
        .expect_stdout(&format!("{big}\n"));
    w.run(&c(&["auth", "logout", "tok"])).code(0);
    w.run(&c(&["auth", "token", "tok"]))
        .expect(3, "not logged in");
}

// --- OAuth against the real server on the Linux side -------------------------------------

#[test]
fn oauth_device_refresh_logout_and_browser_flows() {
    let Some(w) = Wine::new("oauth") else {
        return;
    };
    let server = OAuthServer::start(3600);
    let sso = w.write(
        "sso.toml",
        &format!(
            "current_context = \"t\"\n[contexts.t]\n[[contexts.t.auth_providers]]\nname = \"sso\"\nprovider = \"oauth\"\nissuer = \"{}\"\nclient_id = \"qlam-cli\"\nscopes = [\"openid\", \"offline_access\", \"api\"]\nca_file = '{}'\n",
            server.issuer,
            winpath(&server.ca_file)
        ),
    );
    let sso = sso.to_str().unwrap();

    // Device flow: qlam.exe prints the code, the scripted user approves it from Linux.
    let args = ["--config", sso, "auth", "login", "sso", "--flow", "device"];
    let mut login = Running::start(w.qlam(&args), format!("qlam.exe {}", args.join(" ")), None);
    let (uri, code) = login.wait_for_stderr("`Visit URI and enter code CODE`", |e| {
        e.lines().find_map(|l| {
            let (uri, code) = l.strip_prefix("Visit ")?.split_once(" and enter code ")?;
            Some((uri.to_owned(), code.trim().to_owned()))
        })
    });
    let approved = server.approve_device(&uri, &code);
    assert!(
        approved.status.success(),
        "the scripted user could not approve {code} at {uri}: {}",
        String::from_utf8_lossy(&approved.stderr)
    );
    login.finish().expect(0, "Logged in to `sso` as alice");
    let device_grants = server.events(
        "grant.success",
        Some("urn:ietf:params:oauth:grant-type:device_code"),
    );
    assert_eq!(device_grants.len(), 1, "{device_grants:?}");
    let token = w.run(&["--config", sso, "auth", "token", "sso"]);
    token.code(0);
    let at1 = token.stdout.trim().to_owned();
    if at1.is_empty() {
        token.fail("an access token");
    }

    w.run(&["--config", sso, "auth", "refresh", "sso", "--force"])
        .expect(0, "Refreshed `sso`");
    assert_eq!(
        server.events("grant.success", Some("refresh_token")).len(),
        1
    );
    let r = w.run(&["--config", sso, "auth", "token", "sso"]);
    r.code(0);
    if r.stdout.trim() == at1 || r.stdout.trim().is_empty() {
        r.fail("a new access token after the refresh");
    }

    w.run(&["--config", sso, "auth", "logout", "sso"])
        .expect(0, "Logged out of `sso`");
    assert!(
        !server.events("revocation.success", None).is_empty(),
        "logout revoked nothing"
    );
    w.run(&["--config", sso, "auth", "token", "sso"]).code(3);

    // Browser flow: $BROWSER is the scripted user, a Linux program (wine starts those too),
    // reaching qlam.exe's loopback redirect listener from the Linux side.
    let browser = format!(
        "/usr/bin/env node {} --ca {}",
        server_dir().join("scripted-user.mjs").display(),
        server.ca_file.display()
    );
    w.run_env(
        &[("BROWSER", &browser)],
        &["--config", sso, "auth", "login", "sso", "--flow", "browser"],
    )
    .expect(0, "Logged in to `sso` as alice");
    assert_eq!(
        server
            .events("grant.success", Some("authorization_code"))
            .len(),
        1
    );
    w.run(&["--config", sso, "auth", "token", "sso"]).code(0);
}
