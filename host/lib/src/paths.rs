//! Where qlam keeps things by default, per platform conventions (XDG on Linux).

use std::path::PathBuf;

/// The file name extension of a shared library on this platform (`so`, `dylib`, `dll`).
pub const LIBRARY_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// `~/.config/qlam/config.toml` on Linux (honours `$XDG_CONFIG_HOME`).
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("qlam").join("config.toml"))
}

/// `~/.local/share/qlam/plugins` on Linux (honours `$XDG_DATA_HOME`).
pub fn user_plugin_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("qlam").join("plugins"))
}

/// Creates `dir` (a plugin folder: the user's, for an installer) and its parents; the folder
/// itself is private (0700 on Unix) whatever the umask: a folder others can write to is one
/// qlam refuses to load plugins from.
pub(crate) fn create_plugin_dir(dir: &std::path::Path) -> std::io::Result<()> {
    crate::fsutil::ensure_private_dir(dir)
}

/// `~/.cache/qlam/plugin-index.json` on Linux (honours `$XDG_CACHE_HOME`).
pub fn plugin_index_file() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("qlam").join("plugin-index.json"))
}

/// `~/.local/state/qlam/credentials` on Linux (honours `$XDG_STATE_HOME`); the local data
/// dir where there is no state dir (macOS, Windows).
pub fn default_store_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("qlam").join("credentials"))
}
