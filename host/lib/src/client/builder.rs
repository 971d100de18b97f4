//! [`AuthClientBuilder`]: where the configuration, the plugin folders, the store and the
//! interaction of an [`AuthClient`] come from.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use qlam_plugin_api::ProviderFactory;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::paths;
use crate::services::{NonInteractive, UserInteraction};
use crate::store::{FileStore, Secrets, StoreKind};

use super::{AuthClient, DEFAULT_REFRESH_SKEW};

/// Builds an [`AuthClient`]. Unless told otherwise it reads `$QLAM_CONFIG`, `$QLAM_CONTEXT`
/// and `$QLAM_PLUGIN_PATH`, and searches the default plugin folders.
pub struct AuthClientBuilder {
    config_file: Option<PathBuf>,
    config: Option<Config>,
    context: Option<String>,
    plugin_dirs: Vec<PathBuf>,
    use_environment: bool,
    default_plugin_dirs: bool,
    store_dir: Option<PathBuf>,
    interaction: Arc<dyn UserInteraction>,
    factories: Vec<Box<dyn ProviderFactory>>,
    refresh_skew: Duration,
    lock_timeout: Duration,
    credential_store: Option<StoreKind>,
    plugin_index: bool,
    isolation_executable: Option<PathBuf>,
    loading_on_one_cpu: bool,
}

impl Default for AuthClientBuilder {
    fn default() -> Self {
        AuthClientBuilder {
            config_file: None,
            config: None,
            context: None,
            plugin_dirs: Vec::new(),
            use_environment: true,
            default_plugin_dirs: true,
            store_dir: None,
            interaction: Arc::new(NonInteractive),
            factories: Vec::new(),
            refresh_skew: DEFAULT_REFRESH_SKEW,
            lock_timeout: crate::store::lock::DEFAULT_LOCK_TIMEOUT,
            credential_store: None,
            plugin_index: true,
            isolation_executable: None,
            loading_on_one_cpu: false,
        }
    }
}

impl AuthClientBuilder {
    /// Reads configuration from this file (it must exist).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Uses this configuration instead of reading a file.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Selects a context (else `$QLAM_CONTEXT`, else the file's `current_context`).
    pub fn context(mut self, name: impl Into<String>) -> Self {
        self.context = Some(name.into());
        self
    }

    /// Adds a plugin folder, searched before all others (like `--plugin-dir`).
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dirs.push(dir.into());
        self
    }

    /// Ignores `$QLAM_CONFIG`, `$QLAM_CONTEXT` and `$QLAM_PLUGIN_PATH`.
    pub fn ignore_environment(mut self) -> Self {
        self.use_environment = false;
        self
    }

    /// Does not search the user's plugin folder and the executable's folder.
    pub fn no_default_plugin_dirs(mut self) -> Self {
        self.default_plugin_dirs = false;
        self
    }

    /// Keeps credentials under this folder instead of the user's state folder.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// How providers talk to the user; the default refuses every interactive step.
    pub fn interaction(mut self, interaction: Arc<dyn UserInteraction>) -> Self {
        self.interaction = interaction;
        self
    }

    /// Registers an in-process provider type (before any plugin, so it wins over a plugin of
    /// the same name; the duplicate is reported).
    pub fn register_factory(mut self, factory: impl ProviderFactory) -> Self {
        self.factories.push(Box::new(factory));
        self
    }

    /// Sets an extra margin: answers are refreshed this long before their `Until` time.
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.refresh_skew = skew;
        self
    }

    /// Does not use the plugin index (`~/.cache/qlam/plugin-index.json`): every library on
    /// the search path is opened.
    pub fn no_plugin_index(mut self) -> Self {
        self.plugin_index = false;
        self
    }

    /// Where credentials are kept, overriding the configuration.
    pub fn credential_store(mut self, kind: StoreKind) -> Self {
        self.credential_store = Some(kind);
        self
    }

    /// The `qlam` executable that runs isolated providers (`isolation = "process"`) in child
    /// processes. Default: `$QLAM_EXE`, else this program when it is `qlam`, else `qlam`
    /// beside it or on `PATH`.
    pub fn isolation_executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.isolation_executable = Some(path.into());
        self
    }

    /// For a short-lived program (the `qlam` CLI): while plugin discovery opens a folder's
    /// libraries on its loading thread, that thread and the caller are kept on one CPU, which
    /// spares the dynamic loader's cross-CPU TLB flushes (cold discovery of 100 libraries
    /// about 10 % faster; Linux only). The caller gets its CPUs back when the folder is done;
    /// threads a library starts while it loads stay on that CPU, so a program that lives on
    /// should leave this off (the default).
    pub fn load_plugins_on_one_cpu(mut self) -> Self {
        self.loading_on_one_cpu = true;
        self
    }

    /// How long to wait for another process working on the same provider (default 30 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Reads the configuration and selects the context. Plugins are loaded on first use.
    pub fn build(self) -> Result<AuthClient> {
        let env = |k: &str| {
            if self.use_environment {
                std::env::var_os(k).filter(|v| !v.is_empty())
            } else {
                None
            }
        };
        let config = match (self.config, self.config_file, env("QLAM_CONFIG")) {
            (Some(c), _, _) => c,
            (None, Some(path), _) => Config::load(&path)?,
            (None, None, Some(path)) => Config::load(Path::new(&path))?,
            (None, None, None) => match paths::default_config_file() {
                Some(path) if path.exists() => Config::load(&path)?,
                Some(path) => Config {
                    path: Some(path),
                    ..Config::default()
                }
                .without_file(),
                None => Config::default(),
            },
        };
        let context_name = self
            .context
            .or_else(|| env("QLAM_CONTEXT").map(|v| v.to_string_lossy().into_owned()));
        let context = config.select_context(context_name.as_deref())?.cloned();
        let context_dirs = context
            .as_ref()
            .map(|c| c.plugin_dirs.clone())
            .unwrap_or_default();
        let env_path: Option<OsString> = env("QLAM_PLUGIN_PATH");
        let store_dir = match self.store_dir {
            Some(d) => d,
            None => paths::default_store_dir().ok_or_else(|| {
                Error::store("cannot find a folder for credentials (no home folder)")
            })?,
        };
        let all_context_dirs: Vec<PathBuf> = config
            .contexts
            .iter()
            .flat_map(|c| c.plugin_dirs.iter().cloned())
            .collect();
        // Computed when plugins are needed: the fast path of `auth token` never needs them.
        let search = SearchInputs {
            flags: self.plugin_dirs,
            env_path,
            context_dirs,
            all_context_dirs,
            defaults: self.default_plugin_dirs,
        };
        let slots = context
            .iter()
            .flat_map(|c| {
                c.auth_providers
                    .iter()
                    .map(|p| (p.name.clone(), OnceLock::new()))
            })
            .collect();
        let store_kind = self
            .credential_store
            .or(context.as_ref().and_then(|c| c.credential_store))
            .or(config.credential_store)
            .unwrap_or_default();
        // Looked for only when plugins are loaded: the fast path never needs it.
        let isolation_exe = self
            .isolation_executable
            .or_else(|| env("QLAM_EXE").map(PathBuf::from));
        Ok(AuthClient {
            isolation_exe,
            config,
            context,
            search,
            search_path: OnceLock::new(),
            plugin_index: if self.plugin_index {
                paths::plugin_index_file()
            } else {
                None
            },
            loading_on_one_cpu: self.loading_on_one_cpu,
            pending_factories: Mutex::new(Some(self.factories)),
            registry: OnceLock::new(),
            secrets: Arc::new(Secrets::new(
                Arc::new(FileStore::new(store_dir)),
                store_kind,
            )),
            interaction: self.interaction,
            slots,
            skew: chrono::Duration::from_std(self.refresh_skew)
                .unwrap_or(chrono::Duration::seconds(60)),
            lock_timeout: self.lock_timeout,
        })
    }
}

impl Config {
    /// A configuration whose file does not exist: remembers the path for messages, has no
    /// contexts.
    fn without_file(mut self) -> Self {
        self.contexts.clear();
        self.current_context = None;
        self
    }
}

/// The `qlam` executable for isolated providers: this program if it is `qlam`, else `qlam`
/// beside it, else on `PATH`.
pub(super) fn find_qlam_executable() -> Option<PathBuf> {
    let name = format!("qlam{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == name.as_str()) {
        return Some(exe);
    }
    let beside = exe.parent()?.join(&name);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

/// What the plugin search path is made of, kept until it is needed.
pub(super) struct SearchInputs {
    pub(super) flags: Vec<PathBuf>,
    pub(super) env_path: Option<OsString>,
    pub(super) context_dirs: Vec<PathBuf>,
    pub(super) all_context_dirs: Vec<PathBuf>,
    pub(super) defaults: bool,
}
