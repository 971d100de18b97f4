//! Trust checks before the loader: a library refused for ownership, permissions or being a
//! symbolic link never runs its constructor (the fixture's would write a marker file).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::{fixture, install, run, Home};

struct Case {
    home: Home,
    dir: PathBuf,
    lib: PathBuf,
    marker: PathBuf,
}

fn case() -> Case {
    let home = Home::new();
    let dir = home.path().join("parent/plugins");
    let lib = install(&fixture("qlam-fixture-marker"), &dir, "libmarker.so");
    for d in [home.path().join("parent"), dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = home.path().join("marker");
    Case {
        home,
        dir,
        lib,
        marker,
    }
}

fn list(c: &Case, dir: &Path) -> crate::util::Run {
    let r = run(c.home.qlam().env("QLAM_TEST_MARKER", &c.marker).args([
        "--plugin-dir",
        dir.to_str().unwrap(),
        "plugins",
        "list",
    ]));
    r.ok();
    r
}

fn refused(c: &Case, dir: &Path, reason: &str) {
    let r = list(c, dir);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("libmarker.so"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.starts_with("refused"), "{line}");
    assert!(line.contains(reason), "expected `{reason}` in\n{line}");
    assert!(!c.marker.exists(), "the refused library's constructor ran");
    // The bundled plugins still load in the same run.
    assert!(
        r.stdout.lines().filter(|l| l.starts_with("loaded")).count() >= 3,
        "{}",
        r.stdout
    );
}

/// The marker library is listed as loaded, and its constructor ran.
fn loaded(c: &Case, dir: &Path) {
    let r = list(c, dir);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("loaded")
            && l.contains("libmarker.so")
            && l.ends_with("marker")),
        "{}",
        r.stdout
    );
    assert!(c.marker.exists(), "the constructor ran");
}

#[test]
fn a_library_that_passes_is_loaded_and_its_constructor_runs() {
    // The control: the marker works, so its absence elsewhere means something.
    let c = case();
    loaded(&c, &c.dir);
}

#[test]
fn a_group_writable_folder_or_file_is_refused_before_loading() {
    let c = case();
    refused_while_group_writable(&c);
}

/// The folder made group-writable, then the file: each refused with its reason (and the
/// constructor never run); each put right after.
fn refused_while_group_writable(c: &Case) {
    let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&c.dir, 0o775).unwrap();
    refused(
        c,
        &c.dir,
        &format!(
            "is in folder `{}`, which is writable by its group (mode 775)",
            c.dir.display()
        ),
    );
    mode(&c.dir, 0o755).unwrap();
    mode(&c.lib, 0o664).unwrap();
    refused(c, &c.dir, "is writable by its group (mode 664)");
    mode(&c.lib, 0o755).unwrap();
}

/// The index vouches for a library by its file's stamp (size, mtime, inode), which a chmod,
/// or a folder made writable, does not change: `plugins list` puts a library the index
/// vouched for through the trust checks again and shows it refused, as a command opening it
/// would be — without loading it.
#[test]
fn a_library_made_writable_after_it_was_indexed_is_listed_as_refused() {
    let c = case();
    loaded(&c, &c.dir);
    std::fs::remove_file(&c.marker).unwrap();
    refused_while_group_writable(&c);
    // Put right: listed as loaded again, still from the index (its constructor did not run).
    let r = list(&c, &c.dir);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("loaded") && l.contains("libmarker.so")),
        "{}",
        r.stdout
    );
    assert!(!c.marker.exists(), "listed from the index, not loaded");
}

#[test]
fn a_world_writable_parent_is_refused_before_loading() {
    let c = case();
    let parent = c.home.path().join("parent");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(
        &c,
        &c.dir,
        &format!(
            "is in folder `{}`, which is writable by its group and others (mode 777)",
            parent.display()
        ),
    );
}

#[test]
fn a_symbolic_link_is_refused_unless_allowed_then_its_target_is_checked() {
    let c = case();
    let links = c.home.path().join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink(&c.lib, links.join("libmarker.so")).unwrap();
    refused(&c, &links, "is a symbolic link");
    // Allowed in the configuration: the target (in a sound folder) is loaded.
    c.home.write_config("allow_symlink_plugins = true\n");
    loaded(&c, &links);
}

#[test]
fn a_library_owned_by_another_user_is_refused_before_loading() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot give the fixture to another user; skipped");
        return;
    }
    let c = case();
    std::os::unix::fs::chown(&c.lib, Some(65534), None).unwrap();
    refused(&c, &c.dir, "is owned by user 65534, neither you nor root");
}

fn sha256_of(p: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn pinned_plugins_load_only_with_the_right_sha256() {
    let c = case();
    let right = sha256_of(&c.lib);
    c.home.write_config(&format!(
        "trusted_plugins = [{{ path = \"{}\", sha256 = \"{}\" }}]\n",
        c.lib.display(),
        "0".repeat(64)
    ));
    refused(
        &c,
        &c.dir,
        &format!(
            "does not match its pin in trusted_plugins (pinned sha256 {}, the file's is {right})",
            "0".repeat(64)
        ),
    );
    c.home.write_config(&format!(
        "trusted_plugins = [{{ path = \"{}\", sha256 = \"{right}\" }}]\n",
        c.lib.display()
    ));
    loaded(&c, &c.dir);
}

#[test]
fn require_pinned_plugins_refuses_everything_unpinned() {
    let c = case();
    c.home.write_config("require_pinned_plugins = true\n");
    let r = list(&c, &c.dir);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("libmarker.so"))
        .unwrap();
    assert!(
        line.starts_with("refused")
            && line.contains("is not pinned, and require_pinned_plugins is set"),
        "{line}"
    );
    assert!(!c.marker.exists());
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("loaded")).count(),
        0,
        "{}",
        r.stdout
    );
    // A bad pin in the configuration names the file, line and column.
    let path = c
        .home
        .write_config("trusted_plugins = [{ path = \"/x.so\", sha256 = \"abc\" }]\n");
    let r = c.home.run(&["auth", "status"]);
    r.code(1);
    assert!(
        r.stderr.contains(&format!(
            "`{}`:1:20: the sha256 of trusted plugin `/x.so` must be 64 hexadecimal digits",
            path.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn inspect_and_remove_never_load_a_file_its_pin_refuses() {
    // `plugins inspect FILE` and `plugins remove TYPE` look inside libraries; under a pin that
    // does not match, neither may run the file's code.
    let c = case();
    let user_dir = c.home.path().join("data/qlam/plugins");
    // Named unlike its provider type, so that `remove marker` must ask the files.
    let lib = install(&c.lib, &user_dir, "libpinned.so");
    for d in [&user_dir, &user_dir.parent().unwrap().to_path_buf()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    c.home.write_config(&format!(
        "trusted_plugins = [{{ path = \"{}\", sha256 = \"{}\" }}]\n",
        lib.display(),
        "0".repeat(64)
    ));
    let r = run(c.home.qlam().env("QLAM_TEST_MARKER", &c.marker).args([
        "plugins",
        "inspect",
        lib.to_str().unwrap(),
    ]));
    r.code(4);
    assert!(r.stdout.contains("status:       refused"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("does not match its pin in trusted_plugins"),
        "{}",
        r.stdout
    );
    assert!(!c.marker.exists(), "inspect ran the refused library");
    // By provider type: the refused file is not asked what it provides, so it is not found.
    let r = run(c
        .home
        .qlam()
        .env("QLAM_TEST_MARKER", &c.marker)
        .args(["plugins", "remove", "marker"]));
    r.code(2);
    assert!(!c.marker.exists(), "remove ran the refused library");
    assert!(lib.exists(), "nothing was removed");
    // The control: with the right pin, inspect loads it (and its constructor runs).
    c.home.write_config(&format!(
        "trusted_plugins = [{{ path = \"{}\", sha256 = \"{}\" }}]\n",
        lib.display(),
        sha256_of(&lib)
    ));
    let r = run(c.home.qlam().env("QLAM_TEST_MARKER", &c.marker).args([
        "plugins",
        "inspect",
        lib.to_str().unwrap(),
    ]));
    r.ok();
    assert!(c.marker.exists());
}
