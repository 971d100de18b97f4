//! Shared test helpers: build the real `qlam` binary and plugin libraries once, lay them out
//! like an installation, and run `qlam` in an isolated home.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod keyring;
pub mod oauth;
pub mod stub;

/// Where the built artifacts are laid out for this test process.
pub struct Artifacts {
    /// `qlam` and the bundled plugins side by side, as `cargo build` leaves them.
    pub bin_dir: PathBuf,
    /// `qlam` alone: no plugin in the executable's folder.
    pub bare_dir: PathBuf,
    /// The fixture plugins (panicking, incompatible…).
    pub fixtures_dir: PathBuf,
    /// The bundled plugin files by short name (`token`, `basic`).
    pub token_lib: PathBuf,
    pub basic_lib: PathBuf,
}

pub const LIB_EXT: &str = std::env::consts::DLL_EXTENSION;

pub fn lib_name(crate_name: &str) -> String {
    let stem = crate_name.replace('-', "_");
    if cfg!(windows) {
        format!("{stem}.{LIB_EXT}")
    } else {
        format!("lib{stem}.{LIB_EXT}")
    }
}

fn cargo(args: &[&str], root: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(
        status.success(),
        "`cargo {}` failed: {status}",
        args.join(" ")
    );
}

fn link_or_copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    }
}

/// Builds everything once per test process (cargo skips what is up to date).
pub fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        // The plugins are cdylibs, which cargo does not build for tests: build them (and the
        // qlam binary) here, in their own target dir so this never waits on the lock of the
        // `cargo test` that runs us.
        let main_target = target.join("qlam-it");
        let fixtures_target = target.join("fixtures");
        let mt = main_target.to_string_lossy().into_owned();
        let ft = fixtures_target.to_string_lossy().into_owned();
        cargo(
            &[
                "build",
                "--quiet",
                "-p",
                "qlam",
                "-p",
                "qlam-commands",
                "-p",
                "qlam-provider-token",
                "-p",
                "qlam-provider-basic",
                "-p",
                "qlam-provider-oauth",
                // Test-only switches (QLAM_FAILPOINT, QLAM_TEST_DISABLE_LOCKS) for the crash
                // and race tests; without their variables the binary behaves as released.
                "--features",
                "qlam-host/failpoints",
                "--target-dir",
                &mt,
            ],
            &root,
        );
        cargo(
            &[
                "build",
                "--quiet",
                "--manifest-path",
                "tests/fixtures/Cargo.toml",
                "--target-dir",
                &ft,
            ],
            &root,
        );
        let built = main_target.join("debug");
        let run = target
            .join("qlam-it-runs")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&run);
        let (bin_dir, bare_dir, fixtures_dir) =
            (run.join("bin"), run.join("bare"), run.join("fixtures"));
        for d in [&bin_dir, &bare_dir, &fixtures_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        // The front `qlam` and, where it loads them (Linux), the commands beside it.
        let exe = format!("qlam{}", std::env::consts::EXE_SUFFIX);
        let mut pieces = vec![exe];
        if cfg!(target_os = "linux") {
            pieces.push(lib_name("qlam-commands"));
        }
        for piece in pieces {
            link_or_copy(&built.join(&piece), &bin_dir.join(&piece));
            link_or_copy(&built.join(&piece), &bare_dir.join(&piece));
        }
        for p in [
            "qlam-provider-token",
            "qlam-provider-basic",
            "qlam-provider-oauth",
        ] {
            link_or_copy(&built.join(lib_name(p)), &bin_dir.join(lib_name(p)));
        }
        for f in [
            "qlam-fixture-panicky",
            "qlam-fixture-panicky-loader",
            "qlam-fixture-changed-layout",
            "qlam-fixture-old-api",
            "qlam-fixture-marker",
            "qlam-fixture-chatty",
            "qlam-fixture-first-layout",
            "qlam-fixture-aws",
            "qlam-fixture-hostile",
            "qlam-fixture-hang-loader",
        ] {
            link_or_copy(
                &fixtures_target.join("debug").join(lib_name(f)),
                &fixtures_dir.join(lib_name(f)),
            );
        }
        clean_old_runs(&target.join("qlam-it-runs"));
        Artifacts {
            token_lib: bin_dir.join(lib_name("qlam-provider-token")),
            basic_lib: bin_dir.join(lib_name("qlam-provider-basic")),
            bin_dir,
            bare_dir,
            fixtures_dir,
        }
    })
}

/// Removes the layouts of test processes that have ended.
fn clean_old_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let alive = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Copies a fixture or bundled library into `dir` under `name`.
pub fn install(lib: &Path, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(name);
    std::fs::copy(lib, &to).unwrap();
    to
}

/// The path of a fixture library.
pub fn fixture(name: &str) -> PathBuf {
    artifacts().fixtures_dir.join(lib_name(name))
}

/// An isolated user: its own home, config, data and state folders.
pub struct Home {
    pub dir: tempfile::TempDir,
}

/// What a `qlam` run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }

    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}:\n{self:#?}"
        );
        assert_eq!(self.signal, None);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self:#?}"))
    }

    /// Lines of stderr that start with `warning:`.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config/qlam/config.toml")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.path().join("state/qlam/credentials")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_path();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `qlam` from the folder with the bundled plugins, in this home.
    pub fn qlam(&self) -> Command {
        self.qlam_in(&artifacts().bin_dir)
    }

    /// `qlam` from a folder without plugins.
    pub fn bare_qlam(&self) -> Command {
        self.qlam_in(&artifacts().bare_dir)
    }

    /// `qlam` from `dir`, with this home.
    pub fn qlam_in(&self, dir: &Path) -> Command {
        let mut c = Command::new(dir.join(format!("qlam{}", std::env::consts::EXE_SUFFIX)));
        for v in [
            "QLAM_CONFIG",
            "QLAM_CONTEXT",
            "QLAM_PLUGIN_PATH",
            "QLAM_LOG",
            "BROWSER",
        ] {
            c.env_remove(v);
        }
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.qlam().args(args))
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_with_stdin(self.qlam().args(args), stdin)
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run qlam");
    to_run(out)
}

pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qlam");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    to_run(child.wait_with_output().unwrap())
}

fn to_run(out: std::process::Output) -> Run {
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&out.status);
    #[cfg(not(unix))]
    let signal = None;
    Run {
        code: out.status.code(),
        signal,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The demo configuration used by most CLI tests (and by the Python package's tests).
pub const DEMO_CONFIG: &str = include_str!("../demo-config.toml");

/// Installs a Debian package's tool when missing and we can.
pub fn require_tool(tool: &str) {
    let have = || {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have() {
        let _ = std::process::Command::new("sh")
            .args(["-c", &format!("apt-get install -y -qq {tool} || (apt-get update -qq && apt-get install -y -qq {tool})")])
            .status();
    }
    assert!(have(), "this test needs `{tool}` (apt-get install {tool})");
}

/// Runs qlam under strace and returns (run, the files it opened).
pub fn traced(home: &Home, args: &[&str], env: &[(&str, &str)]) -> (Run, Vec<String>) {
    require_tool("strace");
    let mut cmd = std::process::Command::new("strace");
    let trace = home.path().join("trace");
    cmd.args(["-f", "-e", "trace=openat,open", "-o"])
        .arg(&trace);
    cmd.arg(artifacts().bin_dir.join("qlam")).args(args);
    for (k, v) in home.qlam().get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = run(&mut cmd);
    let opened = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("ENOENT"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();
    (run, opened)
}

/// Runs the real `git` with `args` in `home` (its config and cache folders), with terminal
/// prompts off, `input` on stdin and `env` added.
pub fn git(
    home: &Home,
    args: &[&str],
    input: &str,
    env: &[(&str, std::ffi::OsString)],
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    require_tool("git");
    let mut c = Command::new("git");
    c.args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("QLAM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("run git");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `git credential fill` with qlam as git's only credential helper (`qlam_options`, such as
/// `--plugin-dir 'DIR'`, go before `credential-helper git`); `git_options` are more `-c`
/// settings, `input` is what git reads (`url=…`).
pub fn git_credential_fill(
    home: &Home,
    qlam_options: &str,
    git_options: &[&str],
    input: &str,
    env: &[(&str, std::ffi::OsString)],
) -> std::process::Output {
    let helper = format!(
        "credential.helper=!'{}' {qlam_options} credential-helper git",
        home.qlam().get_program().to_str().unwrap()
    );
    let mut args = vec!["-c", "credential.helper=", "-c", &helper];
    for o in git_options {
        args.extend(["-c", o]);
    }
    args.extend(["credential", "fill"]);
    git(home, &args, input, env)
}

/// Runs `cmd` like [`run`], killing it if it runs for more than 60 s: a hang is a failure of
/// the test, not a hung test run.
pub fn run_bounded(cmd: &mut Command) -> Run {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qlam");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{cmd:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    to_run(child.wait_with_output().unwrap())
}
