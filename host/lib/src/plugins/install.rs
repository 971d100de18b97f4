//! Installing and removing libraries in the user's plugin folder (`qlam plugins install` and
//! `qlam plugins remove`, and the same for an embedder).
//!
//! A candidate library is copied into a temp file inside the plugin folder first, and that
//! copy — the exact bytes that will be installed — is loaded in a process of its own (the
//! isolation child, `qlam __isolated-plugin`): a library that crashes or hangs its loader
//! (constructors run inside `dlopen`) takes down only that process, and this one never maps
//! it. Only then is the temp file renamed over the destination, so a running qlam that mapped
//! the old library keeps its old, intact file (rewriting a mapped library in place crashes
//! it). Pins and `isolated_plugins` are written to the configuration after the rename.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config;
use crate::error::{Error, Result};
use crate::paths;
use crate::plugins::{LibraryOutcome, Origin, Registry};
use crate::AuthClient;

/// How to install a library.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Record its SHA-256 in `trusted_plugins` (required to replace a pinned file, and when
    /// `require_pinned_plugins` is set).
    pub pin: bool,
    /// Add it to `isolated_plugins`: its providers run in a process of their own.
    pub isolate: bool,
}

/// A library that was installed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Installed {
    /// Where it now is.
    pub path: PathBuf,
    /// Where it was copied from.
    pub source: PathBuf,
    /// The SHA-256 (hex) of the installed bytes.
    pub sha256: String,
    /// The provider types it exports.
    pub provider_types: Vec<String>,
    /// The qlam-plugin-api version it was built with.
    pub api_version: String,
    /// A file of the same name was replaced.
    pub replaced: bool,
    /// Where its pin was written: `Some(true)` when a pin was updated, `Some(false)` when one
    /// was added, `None` without `pin`.
    pub pin_updated: Option<bool>,
    /// It was added to `isolated_plugins`.
    pub isolated: bool,
    /// The configuration file the pin or isolation was written to.
    pub config_file: Option<PathBuf>,
}

/// A library that was removed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Removed {
    /// The file that was deleted.
    pub path: PathBuf,
    /// Its provider types, when it was found by one of them.
    pub provider_types: Vec<String>,
    /// Its pin was taken out of `trusted_plugins`.
    pub unpinned: bool,
}

/// Removes a temp file unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl AuthClient {
    /// Copies the library at `source` into the user's plugin folder, after loading that copy
    /// in a process of its own under this client's trust rules (pins aside: `pin` records
    /// them). Errors are `Usage` (a file that is not a library, a pin in the way), `Plugin`
    /// (it does not load; the message says why and nothing is left behind) or `Config`.
    pub fn install_plugin(&self, source: &Path, options: &InstallOptions) -> Result<Installed> {
        let source = crate::fsutil::absolute(source);
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
        let config = self.config();
        let config_file = config.path.as_deref();
        if let Some(p) = config_file.filter(|p| p.exists()) {
            if !options.pin && config.trusted_plugins.iter().any(|(f, _)| f == &dest) {
                return Err(Error::usage(format!(
                    "`{}` is pinned in `{}`; pass --pin to install the new version and update its pin",
                    dest.display(),
                    p.display()
                )));
            }
            if !options.pin && config.require_pinned_plugins {
                return Err(Error::usage(format!(
                    "require_pinned_plugins is set in `{}`, so an unpinned plugin would not load; pass --pin",
                    p.display()
                )));
            }
        }
        // The file a pin or an isolation entry is written to (only those need one).
        let edited_config = match (config_file, options.pin || options.isolate) {
            (_, false) => None,
            (Some(p), true) => Some(p),
            (None, true) => {
                return Err(Error::config(
                    "cannot find a configuration folder (no home folder) to record the pin or isolation in",
                ))
            }
        };

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
            .and_then(|mut f| crate::plugins::trust::sha256(&mut f))
            .map_err(|e| Error::plugin(format!("cannot read `{}`: {e}", tmp.display())))?;
        let not_installed = |why: &str| {
            Error::plugin_library(
                &source,
                format!(
                    "`{}` was not installed: {why}; `qlam plugins inspect {}` shows the details",
                    source.display(),
                    source.display()
                ),
            )
        };
        let (api_version, provider_types) = {
            // Pins are the caller's to record: the copy is checked without them.
            let mut registry = self.new_registry();
            registry.ignore_pins();
            let report = registry
                .load_file_in_child(&tmp)
                .map_err(|e| not_installed(e.message()))?;
            usable(&report.outcome).map_err(|why| not_installed(&why))?
            // The registry, and with it the checking process, ends here.
        };

        let replaced = dest.exists();
        std::fs::rename(&tmp, &dest).map_err(|e| {
            Error::plugin(format!(
                "cannot move the checked copy to `{}`: {e}",
                dest.display()
            ))
        })?;
        guard.0 = None;
        sync_dir(&dir);

        let mut pin_updated = None;
        if let (true, Some(config_path)) = (options.pin, edited_config) {
            let updated = config::set_plugin_pin(config_path, &dest, &sha256).map_err(|e| {
                Error::config(format!(
                    "`{}` is installed but its pin was not recorded: {}; add {{ path = \"{}\", sha256 = \"{sha256}\" }} to trusted_plugins by hand",
                    dest.display(),
                    e.message(),
                    dest.display()
                ))
            })?;
            pin_updated = Some(updated);
        }
        if let (true, Some(config_path)) = (options.isolate, edited_config) {
            config::add_isolated_plugin(config_path, &dest).map_err(|e| {
                Error::config(format!(
                    "`{}` is installed but was not listed in isolated_plugins: {}; add \"{}\" to isolated_plugins by hand",
                    dest.display(),
                    e.message(),
                    dest.display()
                ))
            })?;
        }
        Ok(Installed {
            path: dest,
            source,
            sha256,
            provider_types,
            api_version,
            replaced,
            pin_updated,
            isolated: options.isolate,
            config_file: edited_config.map(Path::to_owned),
        })
    }

    /// Deletes a library from the user's plugin folder, named by its file name (with or
    /// without `lib` and the extension) or by a provider type it exports, and takes its pin
    /// and `isolated_plugins` entry out of the configuration. Libraries are asked for their
    /// provider types each in a process of its own, so a broken one cannot stop its own
    /// removal. Running processes keep the file they mapped.
    pub fn remove_plugin(&self, name: &str) -> Result<Removed> {
        let dir = user_dir()?;
        let files = Registry::list_dir(&dir).unwrap_or_default();
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
            for f in &files {
                let mut registry = self.new_registry();
                let Ok(report) = registry.load_file_in_child(f) else {
                    continue;
                };
                if let Ok((_, types)) = usable(&report.outcome) {
                    if types.iter().any(|t| t == name) {
                        matches.push((f.clone(), types));
                    }
                }
            }
        }
        let (path, provider_types) = match matches.len() {
            1 => matches.pop().expect("one"),
            0 => {
                let elsewhere = match &self.registry().get(name).map(|t| &t.origin) {
                    Some(Origin::Library(p)) => Some(p.clone()),
                    _ => None,
                };
                if let Some(elsewhere) = elsewhere {
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
        let mut unpinned = false;
        if let Some(c) = &self.config().path {
            unpinned = config::remove_plugin_pin(c, &path).map_err(|e| {
                Error::config(format!(
                    "`{}` was removed but its pin could not be: {}",
                    path.display(),
                    e.message()
                ))
            })?;
            // Best effort: a stale entry names a file that no longer exists and does no harm.
            let _ = config::remove_isolated_plugin(c, &path);
        }
        Ok(Removed {
            path,
            provider_types,
            unpinned,
        })
    }
}

/// The API version and provider types of a library that loaded whole, or why it is not
/// usable: refused, a provider type that fails, or no provider type at all.
fn usable(outcome: &LibraryOutcome) -> std::result::Result<(String, Vec<String>), String> {
    match outcome {
        LibraryOutcome::Loaded { errors, .. } if !errors.is_empty() => Err(format!(
            "some of its provider types fail: {}",
            errors.join("; ")
        )),
        LibraryOutcome::Loaded { provider_types, .. } if provider_types.is_empty() => {
            Err("it exports no provider types".into())
        }
        LibraryOutcome::Loaded {
            api_version,
            provider_types,
            ..
        } => Ok((api_version.clone(), provider_types.clone())),
        LibraryOutcome::Refused(e) => Err(e.summary.clone()),
    }
}

fn user_dir() -> Result<PathBuf> {
    paths::user_plugin_dir()
        .ok_or_else(|| Error::config("cannot find the user plugin folder (no home folder)"))
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
