//! The committed fuzz inputs as regression tests: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` (crash reproducers) goes through the same hook as the fuzz
//! target `<target>` (fuzz/fuzz_targets/), and none may panic. A missing or empty corpus
//! fails: a replay of nothing proves nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// Runs every committed input of `target` through `hook`; returns how many ran.
fn replay(target: &str, hook: impl Fn(&[u8])) -> usize {
    let corpus = files_in(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for fuzz target `{target}` in `{}`",
        fuzz_dir().join("corpus").join(target).display()
    );
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    let mut failures = Vec::new();
    for file in corpus.iter().chain(&regressions) {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook(&bytes))) {
            failures.push(format!(
                "{}: {}",
                file.display(),
                panic_message(payload.as_ref())
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz target `{target}`: {} of {} inputs panicked (reproduce with `cargo +nightly fuzz run {target} FILE` in fuzz/):\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
    corpus.len() + regressions.len()
}

#[test]
fn config_corpus_replays_without_panics() {
    // As fuzz/fuzz_targets/config.rs.
    let n = replay("config", |data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(config) = qlam_host::config::Config::parse(text, Path::new("/fuzz/config.toml")) {
            let _ = config.select_context(None);
            if let Some(first) = config.contexts.first() {
                let _ = config.select_context(Some(&first.name));
            }
        }
    });
    assert!(n > 0);
}

#[test]
fn store_entry_corpus_replays_without_panics() {
    let n = replay("store_entry", qlam_host::store::fuzzing::state_file);
    assert!(n > 0);
}

#[test]
fn token_response_corpus_replays_without_panics() {
    let n = replay(
        "token_response",
        qlam_provider_oauth::fuzzing::token_response,
    );
    assert!(n > 0);
}
