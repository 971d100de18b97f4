//! qlam-plugin-api as a vendor gets it from the registry (issue 13): `cargo package` makes
//! the `.crate` that crates.io would serve, and the out-of-tree vendor example
//! (`examples/vendor-provider`) is built against that crate alone — its dependency written as
//! a vendor writes it, `qlam-plugin-api = "<version>"`, resolved through `[patch.crates-io]`
//! to the unpacked package, never to `plugin-api/` — then loaded by the real `qlam`.
//!
//! Guards what only a vendor would notice: a source file left out of the package, metadata or
//! a dependency inherited from this workspace, a plugin-side item that only builds with the
//! host's feature `host`.
//!
//! The build shares `target/vendor` with `vendor.rs` (the same dependencies, built once); the
//! library gets a name of its own there so neither test overwrites the other's file. Paths
//! stay the same from run to run, so a warm run rebuilds nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{lib_name, Home};

/// The library name the packaged build gets (the example's is `acme_qlam_provider`).
const PACKAGED_LIB: &str = "acme_qlam_provider_packaged";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `cmd`, failing the test with everything it printed when it fails.
fn must_run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The `.rs` files under `dir`, relative to it.
fn sources(dir: &Path) -> BTreeSet<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect()
}

/// Writes `contents` unless the file already holds them: an unchanged file keeps its time,
/// and cargo its cached build.
fn write_if_changed(path: &Path, contents: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A path as a TOML string.
fn toml_path(p: &Path) -> String {
    format!("{:?}", p.to_str().expect("a UTF-8 path"))
}

/// Makes `to` hold exactly the files of `from`, rewriting only those whose contents differ.
///
/// Not a plain unpack into `to`: cargo gives every file of a `.crate` the same fixed time
/// (2006), and cargo's own rebuild check compares times, so a changed source unpacked with its
/// archive time would go unnoticed and the build would use the previous one.
fn sync_tree(from: &Path, to: &Path) {
    let (old, new) = (files(to), files(from));
    for gone in old.difference(&new) {
        std::fs::remove_file(to.join(gone)).unwrap();
    }
    for f in &new {
        let dest = to.join(f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        write_if_changed(&dest, &std::fs::read(from.join(f)).unwrap());
    }
}

/// Packages qlam-plugin-api and unpacks the `.crate`; answers the unpacked folder.
fn packaged_api(root: &Path, work: &Path) -> PathBuf {
    must_run(
        Command::new(env!("CARGO"))
            .args([
                "package",
                "-p",
                "qlam-plugin-api",
                "--no-verify",
                "--allow-dirty",
                "--target-dir",
            ])
            .arg(work)
            .current_dir(root),
        "`cargo package -p qlam-plugin-api`",
    );
    let name = format!("qlam-plugin-api-{}", qlam_plugin_api::API_VERSION);
    let crate_file = work.join("package").join(format!("{name}.crate"));
    let extracted = work.join("extracted");
    let _ = std::fs::remove_dir_all(&extracted);
    std::fs::create_dir_all(&extracted).unwrap();
    must_run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&crate_file)
            .arg("-C")
            .arg(&extracted),
        &format!("unpacking `{}`", crate_file.display()),
    );
    // Where the build finds it: the same folder every run, unchanged files untouched, so a
    // warm run rebuilds nothing and a changed file is rebuilt.
    let unpacked = work.join("unpacked").join(&name);
    sync_tree(&extracted.join(&name), &unpacked);
    unpacked
}

#[test]
fn the_vendor_example_builds_against_the_packaged_plugin_api_and_loads() {
    let root = root();
    let work = root.join("target/packaging");
    let api = packaged_api(&root, &work);

    // Every source file is in the package, including those a vendor's build never compiles
    // (the host's side, behind feature `host`), which the build below could not notice.
    let missing: Vec<_> = sources(&root.join("plugin-api/src"))
        .difference(&sources(&api.join("src")))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "source files missing from the packaged qlam-plugin-api: {missing:?} (see `include` in plugin-api/Cargo.toml)"
    );

    // The vendor example's manifest, depending on the registry version, patched to the
    // package. Its sources stay where they are.
    let example = root.join("examples/vendor-provider");
    let original = std::fs::read_to_string(example.join("Cargo.toml")).unwrap();
    let dependency = original
        .lines()
        .find(|l| l.starts_with("qlam-plugin-api "))
        .expect("examples/vendor-provider/Cargo.toml has a `qlam-plugin-api = …` line");
    assert!(
        original.contains("\n[lib]\n") && original.contains("\n[workspace]"),
        "examples/vendor-provider/Cargo.toml has a [lib] table and is a workspace of its own"
    );
    let manifest = original
        .replacen(
            dependency,
            &format!("qlam-plugin-api = \"{}\"", qlam_plugin_api::API_VERSION),
            1,
        )
        .replacen(
            "\n[lib]\n",
            &format!(
                "\n[lib]\nname = \"{PACKAGED_LIB}\"\npath = {}\n",
                toml_path(&example.join("src/lib.rs"))
            ),
            1,
        )
        + &format!(
            "\n[patch.crates-io]\nqlam-plugin-api = {{ path = {} }}\n",
            toml_path(&api)
        );
    let vendor = work.join("vendor-provider");
    std::fs::create_dir_all(&vendor).unwrap();
    write_if_changed(&vendor.join("Cargo.toml"), manifest.as_bytes());
    // The example's lockfile: the same dependency versions as `vendor.rs` builds, so the
    // shared target dir has them already.
    write_if_changed(
        &vendor.join("Cargo.lock"),
        &std::fs::read(example.join("Cargo.lock")).unwrap(),
    );

    // `vendor.rs`'s target dir, and like it with this process's environment: some build
    // scripts (ring's) rerun when a variable they read changes, so two different environments
    // would rebuild the TLS stack back and forth.
    let target = root.join("target/vendor");
    must_run(
        Command::new(env!("CARGO"))
            .args(["build", "--manifest-path"])
            .arg(vendor.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target),
        "building examples/vendor-provider against the packaged qlam-plugin-api",
    );
    let lib = target.join("debug").join(lib_name(PACKAGED_LIB));

    // The real host loads it and lists its provider type.
    let home = Home::new();
    let r = crate::util::run(
        home.bare_qlam()
            .args(["--output", "json", "plugins", "inspect"])
            .arg(&lib),
    );
    r.ok();
    let v = r.json();
    assert_eq!(v["status"], "loaded", "{v:#}");
    assert_eq!(v["api_version"], qlam_plugin_api::API_VERSION, "{v:#}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v:#}");
    let types = v["provider_types"].as_array().expect("provider_types");
    let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["acme"], "{v:#}");
    assert_eq!(
        types[0]["capabilities"],
        serde_json::json!(["headers", "login", "token", "refresh"]),
        "{v:#}"
    );
}
