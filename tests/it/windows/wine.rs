//! The harness of the wine suite: the Windows build (`windows/build.sh`, once per test
//! process), a private wine prefix per test ([`Wine`]), and `qlam.exe` runs whose output a
//! failed assertion shows whole ([`Out`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one `qlam.exe` may run before the test kills it and fails.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The Windows build and the wine that runs it, from `windows/env.sh` after `windows/build.sh`.
pub(super) struct Build {
    /// wine64's loader.
    pub(super) wine: PathBuf,
    pub(super) wineserver: PathBuf,
    /// `qlam.exe` and the bundled provider DLLs, side by side.
    pub(super) bin: PathBuf,
    /// The vendor example's and the fixtures' DLLs.
    pub(super) extra: PathBuf,
    /// The prefix build.sh prepared, cloned for each test.
    pub(super) template: PathBuf,
    /// Where each test's folder goes: the template's file system (hard links).
    pub(super) runs: PathBuf,
    /// cargo's target dir for the Windows build (`$QLAM_WIN_TARGET_DIR`).
    pub(super) target_dir: PathBuf,
    /// `WINEDEBUG`, `WINEDLLOVERRIDES`, … as env.sh sets them.
    pub(super) env: Vec<(String, String)>,
}

enum Setup {
    Ready(Build),
    Skip(String),
    Fail(String),
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `$QLAM_WIN_TARGET_DIR`, by default `target/windows` beside the target dir the other tests use.
fn win_target_dir() -> PathBuf {
    let root = root();
    if let Some(dir) = std::env::var_os("QLAM_WIN_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("windows");
    // Under a world-writable folder (a checkout in /tmp) every DLL would be refused: wine
    // shows such a folder as writable by Everyone, sticky or not (windows/env.sh does the same).
    match (world_writable_ancestor(&dir), std::env::var_os("HOME")) {
        (Some(_), Some(home)) => PathBuf::from(home).join(".cache/qlam-windows"),
        _ => dir,
    }
}

/// The first folder above `path` that anyone may write to.
fn world_writable_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .filter_map(|d| std::fs::metadata(d).ok().map(|m| (d, m)))
        .find(|(_, m)| m.is_dir() && m.permissions().mode() & 0o002 != 0)
        .map(|(d, _)| d.to_owned())
}

/// A shell command with the environment the scripts get from here: the target dir fixed,
/// the debug profile, the default prefix, wine's own settings as env.sh makes them.
fn script_env(cmd: &mut Command) -> &mut Command {
    for v in [
        "WINEPREFIX",
        "WINEDEBUG",
        "WINEDLLOVERRIDES",
        "WINELOADER",
        "WINEARCH",
        "QLAM_WINE",
        "QLAM_WIN_PROFILE",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("QLAM_WIN_TARGET_DIR", win_target_dir())
        .current_dir(root())
}

/// What env.sh says: the paths and wine's environment.
fn read_env_sh() -> Result<(Vec<(String, String)>, Build), String> {
    const VARS: [&str; 10] = [
        "QLAM_WINE",
        "QLAM_WINESERVER",
        "QLAM_WIN_BIN",
        "QLAM_WIN_EXTRA_BIN",
        "WINEPREFIX",
        "WINEARCH",
        "WINEDEBUG",
        "WINEDLLOVERRIDES",
        "WINELOADER",
        "QLAM_WIN_TARGET_DIR",
    ];
    let script = format!(
        ". windows/env.sh && for v in {}; do printf '%s=%s\\n' \"$v\" \"${{!v:-}}\"; done",
        VARS.join(" ")
    );
    let out = script_env(Command::new("bash").args(["-c", &script]))
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "windows/env.sh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let env = ["WINEARCH", "WINEDEBUG", "WINEDLLOVERRIDES", "WINELOADER"]
        .iter()
        .map(|k| (k.to_string(), get(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let build = Build {
        wine: get("QLAM_WINE").into(),
        wineserver: get("QLAM_WINESERVER").into(),
        bin: get("QLAM_WIN_BIN").into(),
        extra: get("QLAM_WIN_EXTRA_BIN").into(),
        template: get("WINEPREFIX").into(),
        runs: PathBuf::from(get("QLAM_WIN_TARGET_DIR")).join("it-runs"),
        target_dir: PathBuf::from(get("QLAM_WIN_TARGET_DIR")),
        env: Vec::new(),
    };
    Ok((env, build))
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What is missing for the build and wine, in words (empty: nothing).
fn missing_pieces(build: &Build) -> Vec<String> {
    let mut missing = Vec::new();
    if build.wine.as_os_str().is_empty() || !build.wine.is_file() {
        missing.push("wine's 64-bit loader (Debian: wine64)".to_owned());
    }
    if !on_path("wineboot") || !build.wineserver.is_file() {
        missing.push("wineboot and wineserver (Debian: wine)".to_owned());
    }
    if !on_path("x86_64-w64-mingw32-gcc") {
        missing.push("x86_64-w64-mingw32-gcc (Debian: gcc-mingw-w64-x86-64)".to_owned());
    }
    let libdir = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "x86_64-pc-windows-gnu",
        ])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_std = libdir
        .and_then(|d| std::fs::read_dir(d).ok())
        .is_some_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    if !has_std {
        missing.push(
            "the Rust standard library for x86_64-pc-windows-gnu (rustup target add x86_64-pc-windows-gnu)"
                .to_owned(),
        );
    }
    missing
}

fn set_up() -> Setup {
    let required = std::env::var("QLAM_REQUIRE_WINE").ok();
    if required.as_deref() == Some("0") {
        return Setup::Skip("QLAM_REQUIRE_WINE=0".into());
    }
    let required = required.as_deref() == Some("1");
    let not_here = |why: String| {
        if required {
            Setup::Fail(format!("{why} (and QLAM_REQUIRE_WINE=1)"))
        } else {
            Setup::Skip(format!(
                "{why}; windows/build.sh installs them as root, QLAM_REQUIRE_WINE=1 makes this a failure"
            ))
        }
    };
    if !cfg!(target_os = "linux") {
        return not_here("the wine suite runs on Linux".into());
    }
    // Wine shows files of other Unix users (root's `/` among them) as owned by ANONYMOUS
    // LOGON, which qlam's trust checks refuse, as they should: as anyone but root, every
    // plugin on drive Z: would be refused.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return not_here("the wine suite runs as root (wine reports root's folders as owned by ANONYMOUS LOGON, and qlam refuses to load DLLs below them)".into());
    }
    if let Some(d) = world_writable_ancestor(&win_target_dir()) {
        return Setup::Fail(format!(
            "the Windows build would be below `{}`, which anyone may write to; wine shows it as writable by Everyone and qlam refuses every DLL there: set QLAM_WIN_TARGET_DIR",
            d.display()
        ));
    }
    let (env, mut build) = match read_env_sh() {
        Ok(x) => x,
        Err(e) => return Setup::Fail(e),
    };
    let missing = missing_pieces(&build);
    if !missing.is_empty() {
        return not_here(format!("missing {}", missing.join(", ")));
    }
    let started = Instant::now();
    let out = script_env(&mut Command::new("bash"))
        .arg("windows/build.sh")
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return Setup::Fail(format!("cannot run windows/build.sh: {e}")),
    };
    if !out.status.success() {
        // Its last lines (cargo's errors, or the step that failed).
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        return Setup::Fail(format!("windows/build.sh failed ({}):\n{tail}", out.status));
    }
    let _ = writeln!(
        std::io::stderr(),
        "windows: windows/build.sh took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // build.sh may have installed wine: read the paths again.
    match read_env_sh() {
        Ok((env2, b)) => {
            build = b;
            build.env = env2;
        }
        Err(_) => build.env = env,
    }
    for (what, path) in [
        ("qlam.exe", build.bin.join("qlam.exe")),
        ("the template prefix", build.template.join("system.reg")),
        (
            "the vendor example",
            build.extra.join("acme_qlam_provider.dll"),
        ),
    ] {
        if !path.exists() {
            return Setup::Fail(format!(
                "windows/build.sh succeeded but {what} is not at {}",
                path.display()
            ));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&build.runs) {
        return Setup::Fail(format!("cannot create {}: {e}", build.runs.display()));
    }
    clean_old_runs(&build.runs);
    Setup::Ready(build)
}

/// The build, once per process; `None` (after saying why) when the suite is skipped.
fn build(test: &str) -> Option<&'static Build> {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    static SAID: OnceLock<()> = OnceLock::new();
    match SETUP.get_or_init(set_up) {
        Setup::Ready(b) => Some(b),
        Setup::Skip(why) => {
            // Once where cargo test shows it, then in each test's own output.
            SAID.get_or_init(|| {
                let _ = writeln!(std::io::stderr(), "windows: skipped: {why}");
            });
            eprintln!("windows::{test}: skipped: {why}");
            None
        }
        Setup::Fail(why) => panic!("windows::{test}: {why}"),
    }
}

/// Removes the folders of test processes that have ended (and stops their wineservers).
fn clean_old_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let alive = name
            .split('-')
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A test's own wine prefix, work folder and wineserver.
pub(super) struct Wine {
    pub(super) build: &'static Build,
    pub(super) dir: tempfile::TempDir,
    pub(super) prefix: PathBuf,
    pub(super) user: String,
}

impl Wine {
    /// A fresh prefix for `test`, or `None` when the suite is skipped.
    pub(super) fn new(test: &str) -> Option<Wine> {
        let build = build(test)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-{test}-", std::process::id()))
            .tempdir_in(&build.runs)
            .unwrap();
        let prefix = dir.path().join("prefix");
        let out = Command::new("cp")
            .args(["-a", "--link"])
            .arg(&build.template)
            .arg(&prefix)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cp -a --link {} {}: {}",
            build.template.display(),
            prefix.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // wineserver rewrites the registry files (by rename): each prefix has its own.
        for e in std::fs::read_dir(&build.template).unwrap().flatten() {
            let name = e.file_name();
            if name.to_string_lossy().ends_with(".reg") {
                let to = prefix.join(&name);
                std::fs::remove_file(&to).unwrap();
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
        let user = Command::new("id").arg("-un").output().unwrap();
        let wine = Wine {
            build,
            user: String::from_utf8_lossy(&user.stdout).trim().to_owned(),
            prefix,
            dir,
        };
        // Its own wineserver for the whole test (each command would otherwise start one),
        // ending by itself a while after the last client should the test die unstopped.
        let status = wine
            .env(&mut Command::new(&build.wineserver))
            .arg("-p30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "wineserver -p30: {status}");
        // The first program in a prefix starts wine's services (services.exe, explorer.exe,
        // winedevice.exe…), which inherit its stdout and stderr and keep them open as long as
        // the wineserver runs: started from a command without pipes, they hold none of ours.
        let status = wine
            .qlam(&["--version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "qlam.exe --version under wine: {status}");
        Some(wine)
    }

    /// The test's folder (the current folder of every command).
    pub(super) fn work(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for v in [
            "QLAM_CONFIG",
            "QLAM_CONTEXT",
            "QLAM_PLUGIN_PATH",
            "QLAM_LOG",
            "QLAM_TEST_MARKER",
            "BROWSER",
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "WINEDEBUG",
            "WINEDLLOVERRIDES",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in &self.build.env {
            cmd.env(k, v);
        }
        cmd.env("WINEPREFIX", &self.prefix).current_dir(self.work())
    }

    /// `qlam.exe ARGS` under wine, in this prefix and folder.
    pub(super) fn qlam(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.build.wine);
        c.arg(self.build.bin.join("qlam.exe")).args(args);
        self.env(&mut c);
        c
    }

    /// Runs another Windows program to its end, in this prefix and folder.
    pub(super) fn run_program(&self, exe: &Path, args: &[&str]) -> Out {
        self.run_program_with(exe, &[], None, args)
    }

    /// The same, with `env` added and `stdin` (or nothing) on stdin.
    pub(super) fn run_program_with(
        &self,
        exe: &Path,
        env: &[(&str, &str)],
        stdin: Option<&str>,
        args: &[&str],
    ) -> Out {
        let mut c = Command::new(&self.build.wine);
        c.arg(exe).args(args);
        self.env(&mut c);
        c.envs(env.iter().copied());
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        Running::start(c, format!("{name} {}", args.join(" ")), stdin).finish()
    }

    /// Runs `qlam.exe ARGS` to its end, with `env` added and `stdin` (or nothing) on stdin.
    pub(super) fn run_with(&self, env: &[(&str, &str)], stdin: Option<&str>, args: &[&str]) -> Out {
        let mut c = self.qlam(args);
        c.envs(env.iter().copied());
        Running::start(c, format!("qlam.exe {}", args.join(" ")), stdin).finish()
    }

    pub(super) fn run(&self, args: &[&str]) -> Out {
        self.run_with(&[], None, args)
    }

    pub(super) fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Out {
        self.run_with(env, None, args)
    }

    pub(super) fn run_stdin(&self, stdin: &str, args: &[&str]) -> Out {
        self.run_with(&[], Some(stdin), args)
    }

    /// Writes `text` to `name` in the work folder.
    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.work().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A folder of the Windows user's profile, as a Unix path.
    pub(super) fn profile(&self, sub: &str) -> PathBuf {
        self.prefix.join("drive_c/users").join(&self.user).join(sub)
    }

    /// `%LOCALAPPDATA%\qlam`, as a Unix path.
    pub(super) fn local_qlam(&self) -> PathBuf {
        self.profile("AppData/Local/qlam")
    }

    /// Links (or copies) a DLL of the extra build into `dir` of the work folder.
    pub(super) fn extra_dll(&self, name: &str, dir: &str) -> PathBuf {
        let from = self.build.extra.join(format!("{name}.dll"));
        assert!(from.is_file(), "{} is missing", from.display());
        let to = self.work().join(dir).join(format!("{name}.dll"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
        to
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // Stop this prefix's wineserver (and anything still running in it), and wait for it
        // to end so that it writes nothing into the folder being removed.
        for arg in ["-k", "-w"] {
            let _ = self
                .env(&mut Command::new(&self.build.wineserver))
                .arg(arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `Z:\…`: the Windows path of a Unix path (wine maps `/` to drive Z).
pub(super) fn winpath(p: &Path) -> String {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// A `qlam.exe` under way: its output collected by threads, so that a test can wait for a
/// line (the device flow's code) and nothing blocks on a full pipe.
pub(super) struct Running {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Running {
    /// Starts `cmd`, `what` in messages.
    pub(super) fn start(cmd: Command, what: String, stdin: Option<&str>) -> Running {
        let (running, pipe) = Running::spawn(cmd, what, stdin.is_some());
        if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
            let text = text.to_owned();
            std::thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        running
    }

    /// Starts `cmd` with its stdin a pipe the caller writes to (and closes) when it likes.
    pub(super) fn start_waiting_for_input(cmd: Command, what: String) -> (Running, ChildStdin) {
        let (running, pipe) = Running::spawn(cmd, what, true);
        (running, pipe.expect("piped"))
    }

    fn spawn(mut cmd: Command, what: String, piped: bool) -> (Running, Option<ChildStdin>) {
        cmd.stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} under wine: {e}"));
        let pipe = child.stdin.take();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        let running = Running {
            what,
            child,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        };
        (running, pipe)
    }

    pub(super) fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until `find` finds something in stderr; fails if the process ends first.
    pub(super) fn wait_for_stderr<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        loop {
            if let Some(found) = find(&self.stderr_so_far()) {
                return found;
            }
            let ended = self.child.try_wait().unwrap().is_some();
            if ended || self.started.elapsed() > COMMAND_TIMEOUT {
                let out = self.finish_quietly();
                panic!("waited for {what} in stderr in vain:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn finish(mut self) -> Out {
        let out = self.finish_quietly();
        if out.code.is_none() && out.timed_out {
            panic!("did not end within {COMMAND_TIMEOUT:?}, killed:\n{out}");
        }
        out
    }

    pub(super) fn finish_quietly(&mut self) -> Out {
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.started.elapsed() > COMMAND_TIMEOUT {
                timed_out = true;
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // A program qlam.exe started may hold the pipes a little longer (wine hands Linux
        // programs its own stdout and stderr); what it has not closed after 5 s is not waited for.
        let deadline = Instant::now() + Duration::from_secs(5);
        for r in std::mem::take(&mut self.readers) {
            while !r.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        Out {
            what: self.what.clone(),
            code: status.code(),
            timed_out,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// What a `qlam.exe` run did. The exit code is the Windows one modulo 256.
pub(super) struct Out {
    pub(super) what: String,
    pub(super) code: Option<i32>,
    pub(super) timed_out: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ {}", self.what)?;
        match (self.code, self.timed_out) {
            (_, true) => writeln!(f, "(killed after {COMMAND_TIMEOUT:?})")?,
            (Some(c), _) => writeln!(f, "exit code {c}")?,
            (None, _) => writeln!(f, "ended by a signal")?,
        }
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}---", self.stderr)
    }
}

impl Out {
    #[track_caller]
    pub(super) fn fail(&self, want: &str) -> ! {
        panic!("want {want}\n{self}")
    }

    #[track_caller]
    pub(super) fn code(&self, code: i32) -> &Self {
        if self.code != Some(code) {
            self.fail(&format!("exit code {code}"));
        }
        self
    }

    /// Exit code `code` and `needle` in stdout or stderr.
    #[track_caller]
    pub(super) fn expect(&self, code: i32, needle: &str) -> &Self {
        self.code(code);
        if !self.stdout.contains(needle) && !self.stderr.contains(needle) {
            self.fail(&format!(
                "exit code {code} and output containing {needle:?}"
            ));
        }
        self
    }

    /// Exit code `code` and a line of stdout or stderr equal to `line`.
    #[track_caller]
    pub(super) fn expect_line(&self, code: i32, line: &str) -> &Self {
        self.code(code);
        if !self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .any(|l| l == line)
        {
            self.fail(&format!("exit code {code} and the line {line:?}"));
        }
        self
    }

    /// Exit code 0 and exactly `text` on stdout.
    #[track_caller]
    pub(super) fn expect_stdout(&self, text: &str) -> &Self {
        self.code(0);
        if self.stdout != text {
            self.fail(&format!("exit code 0 and stdout {text:?}"));
        }
        self
    }

    /// `needle` in neither stdout nor stderr.
    #[track_caller]
    pub(super) fn lacks(&self, needle: &str) -> &Self {
        if self.stdout.contains(needle) || self.stderr.contains(needle) {
            self.fail(&format!("no {needle:?} in the output"));
        }
        self
    }

    /// A line of stdout or stderr with all of `parts`.
    #[track_caller]
    pub(super) fn expect_line_with(&self, code: i32, parts: &[&str]) -> &Self {
        self.code(code);
        let found = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .any(|l| parts.iter().all(|p| l.contains(p)));
        if !found {
            self.fail(&format!(
                "exit code {code} and a line with all of {parts:?}"
            ));
        }
        self
    }
}

#[track_caller]
pub(super) fn assert_file(what: &str, path: &Path) {
    assert!(path.is_file(), "{what}: {} does not exist", path.display());
}
