//! `qlam plugins install` and `qlam plugins remove`: the user plugin folder, managed.
//!
//! A candidate library is copied into a temp file inside the plugin folder first, and that
//! copy — the exact bytes that will be installed — is loaded by a separate `qlam plugins
//! inspect` process: a library that crashes its loader (constructors run inside `dlopen`)
//! takes down only that process. Only then is the temp file renamed over the destination, so
//! a running qlam that mapped the old library keeps its old, intact file (rewriting a mapped
//! library in place crashes it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qlam_host::config::{self, Config};
use qlam_host::plugins::trust;
use qlam_host::plugins::Origin;
use qlam_host::{paths, Error};
use serde_json::{json, Value};

use crate::app::Ctx;
use crate::exit::Exit;
use crate::render::print_json;

/// Removes a temp file unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The deadline for loading a library: the configuration's `call_timeout_secs`, else 30 s.
fn load_timeout(ctx: &Ctx) -> std::time::Duration {
    ctx.config_path()
        .filter(|p| p.exists())
        .and_then(|p| Config::load(&p).ok())
        .and_then(|c| c.call_timeout)
        .unwrap_or(qlam_host::DEFAULT_CALL_TIMEOUT)
}

fn user_dir() -> Result<PathBuf, Error> {
    paths::user_plugin_dir()
        .ok_or_else(|| Error::config("cannot find the user plugin folder (no home folder)"))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_owned())
    }
}

/// What `qlam plugins inspect --output json FILE` says, run in a child process under the
/// same configuration (so its trust rules apply; `ignore_pins` for a copy whose pin the
/// caller checks). `Err` is a one-line reason the library cannot be used. The child has the
/// load deadline (`call_timeout_secs`, default 30 s) and is killed when it misses it.
fn inspect_in_child(ctx: &Ctx, file: &Path, ignore_pins: bool) -> Result<Value, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the qlam executable: {e}"))?;
    let mut cmd = Command::new(exe);
    if let Some(c) = &ctx.cli.config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(["--output", "json", "plugins", "inspect"]);
    if ignore_pins {
        cmd.arg("--ignore-pins");
    }
    let mut child = cmd
        .arg(file)
        .env_remove("QLAM_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a qlam process to check it: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
        bytes
    });
    let limit = load_timeout(ctx) + std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not finish loading within {} s",
                    limit.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for the process that checks it: {e}")),
        }
    };
    let out = std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: Vec::new(),
    };
    if out.status.code().is_none() {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = out.status.signal() {
                return Err(format!(
                    "it crashed the process that loaded it (signal {sig}{})",
                    signal_name(sig)
                ));
            }
        }
        return Err("it crashed the process that loaded it".into());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "the process that loaded it exited with {} without a report",
            out.status
        )
    })?;
    match v["status"].as_str() {
        Some("loaded") => {
            let errors = v["errors"].as_array().cloned().unwrap_or_default();
            if !errors.is_empty() {
                let list: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
                return Err(format!(
                    "some of its provider types fail: {}",
                    list.join("; ")
                ));
            }
            if v["provider_types"].as_array().is_none_or(|a| a.is_empty()) {
                return Err("it exports no provider types".into());
            }
            Ok(v)
        }
        _ => Err(v["error"].as_str().unwrap_or("it was refused").to_owned()),
    }
}

#[cfg(unix)]
fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => ", SIGILL",
        6 => ", SIGABRT",
        7 => ", SIGBUS",
        8 => ", SIGFPE",
        9 => ", SIGKILL",
        11 => ", SIGSEGV",
        _ => "",
    }
}

fn type_names(v: &Value) -> Vec<String> {
    v["provider_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies `from` into a new file `to` (mode 0755, never an existing file), flushed to disk.
fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = File::open(from)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o755);
    let mut dst = opts.open(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.flush()?;
    dst.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(super) fn install(ctx: &Ctx, file: &Path, pin: bool, isolate: bool) -> Result<Exit, Error> {
    let source = absolute(file);
    let meta = std::fs::metadata(&source)
        .map_err(|e| Error::usage(format!("cannot read `{}`: {e}", source.display())))?;
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "`{}` is not a file",
            source.display()
        )));
    }
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .ok_or_else(|| Error::usage(format!("`{}` has no usable file name", source.display())))?
        .to_owned();
    if !name.ends_with(&format!(".{}", paths::LIBRARY_EXTENSION)) {
        return Err(Error::usage(format!(
            "`{}` is not named like a shared library (*.{}); qlam only loads such files",
            source.display(),
            paths::LIBRARY_EXTENSION
        )));
    }
    let dir = user_dir()?;
    let dest = dir.join(&name);

    // The configuration decides whether the new file would load: check before touching it.
    let config_path = ctx.config_path();
    let config = match &config_path {
        Some(p) if p.exists() => Some(Config::load(p)?),
        _ => None,
    };
    if let (Some(c), Some(p)) = (&config, &config_path) {
        if !pin && c.trusted_plugins.iter().any(|(f, _)| f == &dest) {
            return Err(Error::usage(format!(
                "`{}` is pinned in `{}`; pass --pin to install the new version and update its pin",
                dest.display(),
                p.display()
            )));
        }
        if !pin && c.require_pinned_plugins {
            return Err(Error::usage(format!(
                "require_pinned_plugins is set in `{}`, so an unpinned plugin would not load; pass --pin",
                p.display()
            )));
        }
    }
    if (pin || isolate) && config_path.is_none() {
        return Err(Error::config(
            "cannot find a configuration folder (no home folder) to record the pin or isolation in",
        ));
    }

    if !dir.is_dir() {
        paths::create_plugin_dir(&dir).map_err(|e| {
            Error::plugin(format!(
                "cannot create the plugin folder `{}`: {e}",
                dir.display()
            ))
        })?;
    }
    let tmp = dir.join(format!(".{name}.install-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut guard = TempFile(Some(tmp.clone()));
    copy_new(&source, &tmp).map_err(|e| {
        Error::plugin(format!(
            "cannot copy `{}` into `{}`: {e}",
            source.display(),
            dir.display()
        ))
    })?;
    let sha256 = File::open(&tmp)
        .and_then(|mut f| trust::sha256(&mut f))
        .map_err(|e| Error::plugin(format!("cannot read `{}`: {e}", tmp.display())))?;
    let report = inspect_in_child(ctx, &tmp, true).map_err(|why| {
        Error::plugin(format!(
            "`{}` was not installed: {why}; `qlam plugins inspect {}` shows the details",
            source.display(),
            source.display()
        ))
    })?;
    let types = type_names(&report);

    let replaced = dest.exists();
    std::fs::rename(&tmp, &dest).map_err(|e| {
        Error::plugin(format!(
            "cannot move the checked copy to `{}`: {e}",
            dest.display()
        ))
    })?;
    guard.0 = None;
    sync_dir(&dir);

    let mut pin_replaced = false;
    if pin {
        let p = config_path.as_ref().expect("checked above");
        pin_replaced = config::set_plugin_pin(p, &dest, &sha256).map_err(|e| {
            Error::config(format!(
                "`{}` is installed but its pin was not recorded: {}; add {{ path = \"{}\", sha256 = \"{sha256}\" }} to trusted_plugins by hand",
                dest.display(),
                e.message(),
                dest.display()
            ))
        })?;
    }

    if isolate {
        let p = config_path.as_ref().expect("checked above");
        config::add_isolated_plugin(p, &dest).map_err(|e| {
            Error::config(format!(
                "`{}` is installed but was not listed in isolated_plugins: {}; add \"{}\" to isolated_plugins by hand",
                dest.display(),
                e.message(),
                dest.display()
            ))
        })?;
    }

    if ctx.json() {
        print_json(&json!({
            "path": dest, "source": source, "sha256": sha256, "provider_types": types,
            "api_version": report["api_version"], "replaced": replaced, "pinned": pin, "isolated": isolate,
        }));
    } else {
        eprintln!(
            "Installed {} (provider types: {})",
            dest.display(),
            types.join(", ")
        );
        eprintln!("sha256 {sha256}");
        if replaced {
            eprintln!(
                "Replaced the previous file; qlam processes already running keep the old one until they exit"
            );
        }
        for line in shadowing(ctx, &dest) {
            eprintln!("note: {line}");
        }
        if pin {
            let verb = if pin_replaced { "Updated" } else { "Recorded" };
            eprintln!(
                "{verb} its pin in {}",
                config_path.as_ref().expect("checked above").display()
            );
        }
        if isolate {
            eprintln!(
                "Its providers run in a process of their own (isolated_plugins in {})",
                config_path.as_ref().expect("checked above").display()
            );
        }
    }
    Ok(Exit::Ok)
}

pub(super) fn remove(ctx: &Ctx, name: &str) -> Result<Exit, Error> {
    let dir = user_dir()?;
    let files = qlam_host::plugins::Registry::list_dir(&dir).unwrap_or_default();
    let ext = paths::LIBRARY_EXTENSION;
    let wanted = [
        name.to_owned(),
        format!("{name}.{ext}"),
        format!("lib{name}.{ext}"),
    ];
    let mut matches: Vec<(PathBuf, Vec<String>)> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| wanted.iter().any(|w| w == n))
        })
        .map(|f| (f.clone(), Vec::new()))
        .collect();
    if matches.is_empty() {
        // A provider type: ask each library in a child process, so a broken one cannot stop
        // its own removal.
        for f in &files {
            if let Ok(v) = inspect_in_child(ctx, f, false) {
                let types = type_names(&v);
                if types.iter().any(|t| t == name) {
                    matches.push((f.clone(), types));
                }
            }
        }
    }
    let (path, types) = match matches.len() {
        1 => matches.pop().expect("one"),
        0 => {
            if let Some(elsewhere) = provided_elsewhere(ctx, name) {
                return Err(Error::usage(format!(
                    "provider type `{name}` comes from `{}`, which is not in your plugin folder `{}`; qlam removes only files there (remove that one yourself)",
                    elsewhere.display(),
                    dir.display()
                )));
            }
            return Err(Error::usage(format!(
                "nothing named `{name}` in your plugin folder `{}` (neither a file nor a provider type); `qlam plugins list` shows what is installed where",
                dir.display()
            )));
        }
        _ => {
            let list: Vec<String> = matches
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            return Err(Error::usage(format!(
                "`{name}` is provided by several files: {}; name the file to remove",
                list.join(", ")
            )));
        }
    };
    // Unlinking is safe for running processes: they keep the file they mapped.
    std::fs::remove_file(&path)
        .map_err(|e| Error::plugin(format!("cannot remove `{}`: {e}", path.display())))?;
    sync_dir(&dir);
    let unpinned = match ctx.config_path() {
        Some(c) => config::remove_plugin_pin(&c, &path).map_err(|e| {
            Error::config(format!(
                "`{}` was removed but its pin could not be: {}",
                path.display(),
                e.message()
            ))
        })?,
        None => false,
    };
    if let Some(c) = ctx.config_path() {
        // Best effort: a stale entry names a file that no longer exists and does no harm.
        let _ = config::remove_isolated_plugin(&c, &path);
    }
    if ctx.json() {
        print_json(&json!({"path": path, "provider_types": types, "unpinned": unpinned}));
    } else {
        if types.is_empty() {
            eprintln!("Removed {}", path.display());
        } else {
            eprintln!(
                "Removed {} (provider types: {})",
                path.display(),
                types.join(", ")
            );
        }
        if unpinned {
            eprintln!("Removed its pin from trusted_plugins");
        }
    }
    Ok(Exit::Ok)
}

/// Provider types of `dest` that another library on the search path also provides, and which
/// one wins (the search path order decides).
fn shadowing(ctx: &Ctx, dest: &Path) -> Vec<String> {
    let Ok(client) = ctx.client(true) else {
        return Vec::new();
    };
    client
        .registry()
        .duplicates()
        .iter()
        .filter_map(|d| {
            let lib = |o: &Origin| matches!(o, Origin::Library(p) if p == dest);
            if lib(&d.kept) {
                Some(format!(
                    "provider type `{}` is also in {}, which is now ignored",
                    d.name, d.ignored
                ))
            } else if lib(&d.ignored) {
                Some(format!(
                    "provider type `{}` is also in {}, which comes first in the search path: the installed one is ignored",
                    d.name, d.kept
                ))
            } else {
                None
            }
        })
        .collect()
}

/// The library that provides provider type `name`, from the whole search path.
fn provided_elsewhere(ctx: &Ctx, name: &str) -> Option<PathBuf> {
    let client = ctx.client(true).ok()?;
    match &client.registry().get(name)?.origin {
        Origin::Library(p) => Some(p.clone()),
        Origin::InProcess => None,
    }
}
