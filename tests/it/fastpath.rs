//! The `auth token` / `auth headers` fast path: an answer still valid is served from
//! configuration and store alone — no plugin library is opened — and stale or reconfigured
//! answers are never served. The fast path is the front's (`qlam`): it answers alone, links
//! no plugin loader, and hands every other command to `qlam-cli` unchanged.

use crate::util::{run, Home};

const CONFIG: &str = r#"current_context = "x"
[contexts.x]
[[contexts.x.auth_providers]]
name = "cmd"
provider = "token"
command = ["sh", "-c", "n=$(cat \"$QLAM_TEST_COUNTER\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$QLAM_TEST_COUNTER\"; echo \"{\\\"token\\\": \\\"t$n\\\", \\\"expires_at\\\": \\\"2099-01-01T00:00:00Z\\\"}\""]
"#;

fn setup() -> (Home, std::path::PathBuf) {
    let home = Home::new();
    home.write_config(CONFIG);
    let counter = home.path().join("counter");
    (home, counter)
}

fn token(home: &Home, counter: &std::path::Path) -> String {
    let r = run(home
        .qlam()
        .env("QLAM_TEST_COUNTER", counter)
        .args(["auth", "token", "cmd"]));
    r.ok();
    r.stdout.trim().to_owned()
}

#[test]
fn a_valid_answer_is_served_without_opening_any_plugin() {
    let (home, counter) = setup();
    assert_eq!(token(&home, &counter), "t1");
    let (r, opened) = crate::util::traced(
        &home,
        &["auth", "token", "cmd"],
        &[("QLAM_TEST_COUNTER", counter.to_str().unwrap())],
    );
    r.ok();
    assert_eq!(
        r.stdout, "t1\n",
        "the cached answer, the command did not run again"
    );
    assert!(
        opened.iter().any(|p| p.ends_with("cmd.answers.json")),
        "the answer came from the store: {opened:?}"
    );
    let opened_plugins: Vec<&String> = opened
        .iter()
        .filter(|p| p.contains("libqlam_provider"))
        .collect();
    assert!(
        opened_plugins.is_empty(),
        "no provider library is opened: {opened_plugins:#?}"
    );
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "1");
    // Headers too.
    let r = run(home
        .qlam()
        .env("QLAM_TEST_COUNTER", &counter)
        .args(["auth", "headers", "cmd"]));
    r.ok();
    assert_eq!(
        r.stdout, "Authorization: Bearer t2\n",
        "headers are a separate answer, asked once"
    );
    let r = run(home
        .qlam()
        .env("QLAM_TEST_COUNTER", &counter)
        .args(["auth", "headers", "cmd"]));
    assert_eq!(r.stdout, "Authorization: Bearer t2\n");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "2");
}

#[test]
fn stale_and_reconfigured_answers_are_never_served() {
    let (home, counter) = setup();
    assert_eq!(token(&home, &counter), "t1");
    assert_eq!(token(&home, &counter), "t1");
    // The cached answer's time passes.
    let answers = home.store_dir().join("x/cmd.answers.json");
    let text = std::fs::read_to_string(&answers).unwrap();
    assert!(text.contains("2099-01-01T00:00:00Z"), "{text}");
    std::fs::write(
        &answers,
        text.replace("2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        token(&home, &counter),
        "t2",
        "an expired answer is not served"
    );
    assert_eq!(token(&home, &counter), "t2");
    // The provider is reconfigured: its old answer is not served.
    home.write_config(&CONFIG.replace(
        "provider = \"token\"",
        "provider = \"token\"\ntimeout_secs = 30",
    ));
    assert_eq!(token(&home, &counter), "t3");
}

#[test]
fn the_fast_path_answers_like_the_normal_path() {
    let (home, counter) = setup();
    assert_eq!(token(&home, &counter), "t1");
    let q = |args: &[&str]| {
        let r = run(home.qlam().env("QLAM_TEST_COUNTER", &counter).args(args));
        r.ok();
        r.stdout
    };
    // Served from the cache (the counter does not move), in every output form.
    let json = q(&["--output=json", "auth", "token", "cmd"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!({"token": "t1", "expires_at": "2099-01-01T00:00:00Z"})
    );
    let exec = q(&["auth", "token", "--format", "exec-credential", "cmd"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&exec).unwrap()["status"],
        serde_json::json!({"token": "t1", "expirationTimestamp": "2099-01-01T00:00:00Z"})
    );
    assert_eq!(q(&["--context", "x", "auth", "token", "cmd"]), "t1\n");
    // Options the fast path does not take go the normal way, with the same answer.
    let verbose = run(home
        .qlam()
        .env("QLAM_TEST_COUNTER", &counter)
        .args(["-v", "auth", "token", "cmd"]));
    verbose.ok();
    assert_eq!(
        verbose.stdout, "t1\n",
        "clap's path serves the same remembered answer"
    );
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "1");
    // A bad value is still reported by the normal path.
    run(home
        .qlam()
        .args(["auth", "token", "cmd", "--format", "yaml"]))
    .code(2);
}

#[test]
fn the_front_answers_alone_and_hands_everything_else_to_the_commands() {
    let (home, counter) = setup();
    assert_eq!(token(&home, &counter), "t1");
    // The front alone in a folder: a cached answer needs nothing else...
    let lonely = home.path().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    let front = format!("qlam{}", std::env::consts::EXE_SUFFIX);
    std::fs::copy(
        crate::util::artifacts().bin_dir.join(&front),
        lonely.join(&front),
    )
    .unwrap();
    let r = run(home
        .qlam_in(&lonely)
        .env("QLAM_TEST_COUNTER", &counter)
        .args(["auth", "token", "cmd"]));
    r.ok();
    assert_eq!(r.stdout, "t1\n");
    // ... anything else is the commands library's, and without it the front says so.
    let r = run(home.qlam_in(&lonely).args(["auth", "status"]));
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("libqlam_commands.so") && r.stderr.contains("installation is incomplete"),
        "{}",
        r.stderr
    );
    // Beside it, the same command runs (the control), with its exit codes: 2 for usage.
    home.run(&["auth", "status"]).ok();
    let r = home.run(&["auth", "no-such-command"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    // The commands library is no plugin: `plugins list` does not show it.
    let r = home.run(&["plugins", "list"]);
    r.ok();
    assert!(
        !r.stdout.contains("qlam_commands") && !r.stderr.contains("qlam_commands"),
        "{r:?}"
    );
}

/// The front links what a cached answer needs and nothing of the rest: no clap, no plugin
/// loader, no keyring (symbol names of those crates, read from the files).
#[test]
fn the_front_links_neither_clap_nor_the_plugin_loader() {
    use object::{Object, ObjectSymbol, SymbolKind};
    let dir = &crate::util::artifacts().bin_dir;
    let crates_in = |file: &str| -> Vec<&'static str> {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        // Functions and data; not the names of the object files a linker looked into.
        let names: Vec<String> = file
            .symbols()
            .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Data))
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .collect();
        ["clap_builder", "libloading", "keyring"]
            .into_iter()
            .filter(|c| names.iter().any(|n| n.contains(c)))
            .collect()
    };
    // The control: the commands library has all three.
    assert_eq!(
        crates_in(&crate::util::lib_name("qlam-commands")),
        ["clap_builder", "libloading", "keyring"]
    );
    assert_eq!(crates_in("qlam"), Vec::<&str>::new());
}

/// The front's hot code is gathered by host/cli/front-layout.ld (peak RSS: the kernel maps
/// 64 KiB around each fault; bench/front-layout.py): its `main` is in that section, the
/// commands it hands over to are not in the file at all, and cold code stays outside.
#[cfg(target_os = "linux")]
#[test]
fn the_fronts_cached_path_is_laid_out_together() {
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
    let bytes = std::fs::read(crate::util::artifacts().bin_dir.join("qlam")).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let hot = file
        .section_by_name(".text.front_hot")
        .expect("the front is linked with host/cli/front-layout.ld");
    let hot = hot.address()..hot.address() + hot.size();
    let place = |wanted: &str| -> Vec<bool> {
        file.symbols()
            .filter(|s| s.kind() == SymbolKind::Text)
            .filter(|s| s.name().is_ok_and(|n| n.contains(wanted)))
            .map(|s| hot.contains(&s.address()))
            .collect()
    };
    assert_eq!(place("8qlam_cli5front4main"), [true], "the front's main");
    // The control: the standard library's backtrace symbolizer, linked but never run.
    let gimli = place("gimli");
    assert!(
        !gimli.is_empty() && gimli.iter().all(|inside| !inside),
        "{gimli:?}"
    );
}
