//! The plugin search path: which folders are searched, in which order. First hit of a
//! provider type wins: `--plugin-dir` flags, `$QLAM_PLUGIN_PATH`, the context's
//! `plugin_dirs`, the user's plugin folder, the folder of the `qlam` executable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::paths;

/// Where a plugin folder on the search path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSource {
    /// `--plugin-dir`.
    Flag,
    /// `$QLAM_PLUGIN_PATH`.
    Env,
    /// The context's `plugin_dirs`.
    Context,
    /// The user's plugin folder.
    User,
    /// The folder of the executable.
    Executable,
}

impl DirSource {
    /// A short name for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            DirSource::Flag => "--plugin-dir",
            DirSource::Env => "QLAM_PLUGIN_PATH",
            DirSource::Context => "context",
            DirSource::User => "user",
            DirSource::Executable => "executable",
        }
    }
}

/// A folder on the plugin search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDir {
    /// The folder.
    pub path: PathBuf,
    /// Where it came from.
    pub source: DirSource,
}

/// The search path, in order, without repeats.
pub fn search_path(
    flags: &[PathBuf],
    env_path: Option<&std::ffi::OsStr>,
    context_dirs: &[PathBuf],
    include_defaults: bool,
) -> Vec<PluginDir> {
    let mut dirs = Vec::new();
    dirs.extend(flags.iter().map(|p| PluginDir {
        path: p.clone(),
        source: DirSource::Flag,
    }));
    if let Some(env) = env_path {
        dirs.extend(
            std::env::split_paths(env)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|path| PluginDir {
                    path,
                    source: DirSource::Env,
                }),
        );
    }
    dirs.extend(context_dirs.iter().map(|p| PluginDir {
        path: p.clone(),
        source: DirSource::Context,
    }));
    if include_defaults {
        if let Some(p) = paths::user_plugin_dir() {
            dirs.push(PluginDir {
                path: p,
                source: DirSource::User,
            });
        }
        if let Some(p) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(PluginDir {
                path: p,
                source: DirSource::Executable,
            });
        }
    }
    let mut seen = HashSet::new();
    dirs.retain(|d| seen.insert(std::fs::canonicalize(&d.path).unwrap_or_else(|_| d.path.clone())));
    dirs
}
