//! Plugins: the provider registry (here) and what it is built from — the search path
//! (`search`), the checks before a library reaches the dynamic loader (`trust`: who owns it
//! and who may write it, pins; `check`: a well-formed library for this machine), loading
//! (`load`), the index of which library exports which type (`index`), content hashes
//! ([`hashes`]), the bridge for plugin log lines (`log`), and installing into and removing
//! from the user's plugin folder (`install`).
//!
//! Each folder of the search path is listed non-recursively; files with the platform's
//! library extension are loaded in name order; the first hit of a provider type wins. A file
//! that cannot be loaded is reported with one line and skipped.

pub(crate) mod check;
pub mod hashes;
pub(crate) mod index;
mod install;
mod load;
pub(crate) mod log;
mod search;
pub(crate) mod trust;

pub use install::{InstallOptions, Installed, Removed};
use load::{is_bundled, open_library_in_time, OpenEach, Opened};
pub(crate) use load::{kind_from_name, kind_name, open_library};
pub use search::{search_path, DirSource, PluginDir};

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indexmap::IndexMap;
use qlam_plugin_api::ffi::{FactoryHandle, LoadError, LoadErrorKind};
use qlam_plugin_api::{Capabilities, ProviderFactory};

use crate::boundary::isolated::IsolatedLibrary;
use crate::boundary::{BoundFactory, FactoryRef};
use crate::error::{Error, Result};
use crate::paths;
use crate::plugins::index::{IndexedOutcome, IndexedType, PluginIndex, Stamp};

/// The file name of the `qlam` command's commands library (host/commands; the front,
/// host/cli/src/front.rs, loads it on Linux).
const COMMANDS_LIBRARY: &str = "libqlam_commands.so";

/// Where a provider type came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A plugin library.
    Library(PathBuf),
    /// Registered in-process with [`Registry::register_factory`].
    InProcess,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Library(p) => write!(f, "`{}`", p.display()),
            Origin::InProcess => f.write_str("in-process registration"),
        }
    }
}

/// A registered provider type.
#[derive(Debug, Clone)]
pub struct ProviderType {
    /// The type name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// What its providers can do.
    pub capabilities: Capabilities,
    /// Where it came from.
    pub origin: Origin,
    source: FactorySource,
    /// Its library as a child process would run it (none for in-process registrations);
    /// nothing starts until a provider uses it.
    isolated: Option<Arc<IsolatedLibrary>>,
    /// Whether its providers run isolated unless their table says `isolation = "none"`
    /// (`isolated_plugins`, or `default_isolation` for a library that is not bundled).
    pub isolated_by_default: bool,
}

/// A factory at hand, or the library to open when it is first needed (known from the index).
#[derive(Debug, Clone)]
enum FactorySource {
    Ready(FactoryHandle),
    Lazy(Arc<LazyLibrary>),
}

#[derive(Debug)]
struct LazyLibrary {
    path: PathBuf,
    policy: crate::plugins::trust::TrustPolicy,
    load_timeout: Duration,
    loaded: OnceLock<std::result::Result<Vec<(String, FactoryHandle)>, String>>,
}

impl ProviderType {
    /// The factory a provider of this type is built with: in a child process when
    /// `isolation` (the provider's own setting, else the type's default) says so, else in
    /// this process.
    pub(crate) fn factory_ref(&self, isolation: Option<Isolation>) -> Result<FactoryRef> {
        let isolate = match isolation {
            Some(i) => i == Isolation::Process,
            None => self.isolated_by_default,
        };
        if !isolate {
            return self.factory().map(FactoryRef::InProcess);
        }
        match &self.isolated {
            Some(lib) => Ok(FactoryRef::Isolated(lib.clone())),
            None if self.origin == Origin::InProcess => Err(Error::config(format!(
                "provider type `{}` is registered in-process and cannot run isolated; remove `isolation = \"process\"`",
                self.name
            ))),
            None => Err(Error::config(format!(
                "provider type `{}` should run isolated, but there is no `qlam` executable to run it with (AuthClientBuilder::isolation_executable or $QLAM_EXE)",
                self.name
            ))),
        }
    }

    /// The factory, opening its library now if the index let it wait.
    pub(crate) fn factory(&self) -> Result<FactoryHandle> {
        match &self.source {
            FactorySource::Ready(f) => Ok(*f),
            FactorySource::Lazy(lib) => {
                let loaded = lib.loaded.get_or_init(|| {
                    tracing::debug!(
                        "opening plugin `{}` for provider type `{}`",
                        lib.path.display(),
                        self.name
                    );
                    open_library_in_time(&lib.path, &lib.policy, lib.load_timeout)
                        .map(|opened| opened.library.factories)
                        .map_err(|(e, _)| e.to_string())
                });
                match loaded {
                    Ok(factories) => factories.iter().find(|(n, _)| *n == self.name).map(|(_, f)| *f).ok_or_else(|| {
                        Error::plugin_library(&lib.path, format!(
                            "plugin `{}` no longer provides `{}`; `qlam plugins list` shows what it provides now",
                            lib.path.display(),
                            self.name
                        ))
                    }),
                    Err(e) => Err(Error::plugin_library(&lib.path, e.clone())),
                }
            }
        }
    }
}

/// Where a provider runs: `isolation = "none" | "process"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the host's process (the default).
    None,
    /// In a child process of its own, which a crash or a hang cannot take the host down with.
    Process,
}

/// Which libraries run isolated, and with what.
#[derive(Debug, Clone, Default)]
pub(crate) struct IsolationRules {
    /// The `qlam` executable a child runs; isolation is impossible without one.
    pub exe: Option<PathBuf>,
    /// `isolated_plugins`: these libraries always.
    pub libraries: Vec<PathBuf>,
    /// `default_isolation = "process"`: every library but the bundled ones.
    pub default_process: bool,
    /// Some provider of the context asks for isolation: libraries that are not bundled are
    /// then first opened in a child too, since which types a library has is only known by
    /// opening it.
    pub some_provider: bool,
}

impl IsolationRules {
    fn by_default(&self, path: &Path) -> bool {
        self.libraries.iter().any(|l| l == path) || (self.default_process && !is_bundled(path))
    }

    fn discover_in_child(&self, path: &Path) -> bool {
        self.exe.is_some() && (self.by_default(path) || (self.some_provider && !is_bundled(path)))
    }
}

/// A provider type that was found again after the first one, and ignored.
#[derive(Debug, Clone)]
pub struct Duplicate {
    /// The type name.
    pub name: String,
    /// The one in use.
    pub kept: Origin,
    /// The one ignored.
    pub ignored: Origin,
}

/// What happened to one library file.
#[derive(Debug, Clone)]
pub struct LibraryReport {
    /// The file.
    pub path: PathBuf,
    /// Loaded (with its version and provider types) or refused (with why).
    pub outcome: LibraryOutcome,
}

/// The outcome of loading a library.
#[derive(Debug, Clone)]
pub enum LibraryOutcome {
    /// It loaded.
    Loaded {
        /// The qlam-plugin-api version it was built with.
        api_version: String,
        /// The provider types it exports (including ones shadowed by an earlier plugin).
        provider_types: Vec<String>,
        /// Provider types it exports that failed (a panic in `name`, `description`…).
        errors: Vec<String>,
    },
    /// It was refused.
    Refused(LoadError),
}

/// A problem found while scanning the search path that is not about one library.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// One line for people.
    pub message: String,
}

/// The provider types known to a host.
#[derive(Debug)]
pub struct Registry {
    types: IndexMap<String, ProviderType>,
    libraries: Vec<LibraryReport>,
    duplicates: Vec<Duplicate>,
    diagnostics: Vec<Diagnostic>,
    /// The libraries this registry opened (in this process or a child), and so put through
    /// the trust checks; the others it registered from the index.
    opened: HashSet<PathBuf>,
    index: Option<PluginIndex>,
    policy: crate::plugins::trust::TrustPolicy,
    load_timeout: Duration,
    isolation: IsolationRules,
    /// The child processes of isolated libraries (started on first use).
    children: std::collections::HashMap<PathBuf, Arc<IsolatedLibrary>>,
    /// See [`Registry::set_loading_on_one_cpu`].
    loading_on_one_cpu: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            types: IndexMap::new(),
            libraries: Vec::new(),
            duplicates: Vec::new(),
            diagnostics: Vec::new(),
            opened: HashSet::new(),
            index: None,
            policy: crate::plugins::trust::TrustPolicy::default(),
            load_timeout: crate::boundary::DEFAULT_CALL_TIMEOUT,
            isolation: IsolationRules::default(),
            children: Default::default(),
            loading_on_one_cpu: false,
        }
    }
}

/// A file's stamp now; `None` when it is not a regular file (or is gone).
fn stamp_of(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| Stamp::of(&m))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// How long loading one library (and describing its provider types) may take; the
    /// default is 30 s (`call_timeout_secs` at the top of the configuration).
    pub fn set_load_timeout(&mut self, limit: Duration) {
        self.load_timeout = limit;
    }

    /// While a folder's libraries load on their loading thread, keep that thread and the
    /// caller on one CPU (Linux; `sys::OnThisCpu`): for short-lived programs (the CLI), not
    /// for programs that live on, since the threads a library starts while loading stay on
    /// that CPU. Not for a folder with a library that is discovered in a child process (the
    /// child would inherit it).
    pub(crate) fn set_loading_on_one_cpu(&mut self, on: bool) {
        self.loading_on_one_cpu = on;
    }

    /// An empty registry that remembers what each library exports in the index at `path`,
    /// so that later a command opens only the library it needs.
    pub fn with_index(path: PathBuf) -> Self {
        Registry {
            index: Some(PluginIndex::open(path)),
            ..Registry::default()
        }
    }

    /// Loads files whatever `trusted_plugins` and `require_pinned_plugins` say (ownership and
    /// permissions are still checked): for a file the caller checks against its pin itself.
    pub(crate) fn ignore_pins(&mut self) {
        self.policy.pins.clear();
        self.policy.require_pinned = false;
    }

    /// Which libraries run isolated.
    pub(crate) fn set_isolation(&mut self, rules: IsolationRules) {
        self.isolation = rules;
    }

    /// A library's child process, one per library, shared by its provider types (none
    /// without an executable to run).
    fn isolated_library(&mut self, path: &Path) -> Option<Arc<IsolatedLibrary>> {
        let exe = self.isolation.exe.as_ref()?;
        Some(
            self.children
                .entry(path.to_owned())
                .or_insert_with(|| IsolatedLibrary::new(path, exe, &self.policy))
                .clone(),
        )
    }

    /// What plugin files must satisfy before they are loaded (symbolic links, pins).
    pub(crate) fn set_trust(&mut self, policy: crate::plugins::trust::TrustPolicy) {
        self.policy = policy;
    }

    /// Writes the index back, when there is one and it changed.
    pub fn save_index(&mut self) {
        if let Some(i) = &mut self.index {
            i.save();
        }
    }

    /// The factory of a provider type, opening its library if needed.
    pub fn factory(&self, name: &str) -> Result<FactoryHandle> {
        self.types
            .get(name)
            .ok_or_else(|| {
                Error::plugin(format!("no loaded plugin provides provider type `{name}`"))
            })?
            .factory()
    }

    /// Registers an in-process provider type. It goes through the same adapter as a plugin
    /// library (so a panic in it becomes an error too). A second type with the same name is
    /// refused.
    pub fn register_factory(&mut self, factory: Box<dyn ProviderFactory>) -> Result<()> {
        let handle = FactoryHandle::in_process(factory);
        let name = handle.name().map_err(|e| {
            Error::plugin(format!(
                "cannot register an in-process provider type: {}",
                crate::boundary::registration_error(&e)
            ))
        })?;
        if let Some(existing) = self.types.get(&name) {
            return Err(Error::plugin(format!(
                "provider type `{name}` is already registered by {}",
                existing.origin
            )));
        }
        let described =
            BoundFactory::describe(handle, &name, self.load_timeout).map_err(|e| e.to_string());
        self.add(name, handle, Origin::InProcess, described)
            .map_err(Error::plugin)
    }

    /// Registers a provider type with its description (escaped) and capabilities, or the
    /// reason they could not be had.
    fn add(
        &mut self,
        name: String,
        factory: FactoryHandle,
        origin: Origin,
        described: std::result::Result<(String, Capabilities), String>,
    ) -> std::result::Result<(), String> {
        if let Some(why) = crate::boundary::validate::type_name_problem(&name) {
            return Err(format!(
                "a provider type's name `{}` {why}",
                crate::boundary::validate::escape(&name)
            ));
        }
        if let Some(existing) = self.types.get(&name) {
            self.duplicates.push(Duplicate {
                name,
                kept: existing.origin.clone(),
                ignored: origin,
            });
            return Ok(());
        }
        let (description, capabilities) = described?;
        let (isolated, isolated_by_default) = self.isolation_of(&origin);
        self.types.insert(
            name.clone(),
            ProviderType {
                name,
                description,
                capabilities,
                origin,
                source: FactorySource::Ready(factory),
                isolated,
                isolated_by_default,
            },
        );
        Ok(())
    }

    fn isolation_of(&mut self, origin: &Origin) -> (Option<Arc<IsolatedLibrary>>, bool) {
        match origin {
            Origin::Library(path) => (self.isolated_library(path), self.isolation.by_default(path)),
            Origin::InProcess => (None, false),
        }
    }

    /// Registers a type known without opening its library in this process (from the index,
    /// or listed by a child process); the library is opened when a provider needs it.
    fn add_indexed(&mut self, t: &IndexedType, lib: &Arc<LazyLibrary>, origin: Origin) {
        if let Some(existing) = self.types.get(&t.name) {
            self.duplicates.push(Duplicate {
                name: t.name.clone(),
                kept: existing.origin.clone(),
                ignored: origin,
            });
            return;
        }
        let (isolated, isolated_by_default) = self.isolation_of(&origin);
        self.types.insert(
            t.name.clone(),
            ProviderType {
                name: t.name.clone(),
                description: t.description.clone(),
                capabilities: Capabilities::from_bits(t.capabilities),
                origin,
                source: FactorySource::Lazy(lib.clone()),
                isolated,
                isolated_by_default,
            },
        );
    }

    fn lazy(&self, path: &Path) -> Arc<LazyLibrary> {
        Arc::new(LazyLibrary {
            path: path.to_owned(),
            policy: self.policy.clone(),
            load_timeout: self.load_timeout,
            loaded: OnceLock::new(),
        })
    }

    /// Lists the library files of a folder: the platform's extension, regular files, sorted;
    /// not the `qlam` command's own commands library, which sits beside it like the bundled
    /// plugins but is no plugin (opening it would load the whole command a second time).
    pub(crate) fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == paths::LIBRARY_EXTENSION))
            .filter(|p| p.file_name().is_none_or(|n| n != COMMANDS_LIBRARY))
            .collect();
        // Byte-wise: the order only has to be the same every time (component-wise `Path`
        // comparison was 1 % of a cold discovery of 100 libraries).
        files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
        Ok(files)
    }

    /// Scans the folders in order and loads every library in them. The libraries to open in
    /// this process are opened one after the other on one thread while the results are
    /// registered here, in order.
    pub fn load_dirs(&mut self, dirs: &[PluginDir]) {
        for dir in dirs {
            match Self::list_dir(&dir.path) {
                Ok(files) => {
                    // Each file stamped once, for the plan and for loading it.
                    let files: Vec<(PathBuf, Option<Stamp>)> = files
                        .iter()
                        .map(|f| {
                            let f = crate::fsutil::absolute(f);
                            let stamp = stamp_of(&f);
                            (f, stamp)
                        })
                        .collect();
                    let to_open: Vec<PathBuf> = files
                        .iter()
                        .filter(|(f, stamp)| self.opens_in_process(f, *stamp))
                        .map(|(f, _)| f.clone())
                        .collect();
                    let one_cpu = self.loading_on_one_cpu
                        && !files
                            .iter()
                            .any(|(f, _)| self.isolation.discover_in_child(f));
                    let mut opening = (to_open.len() > 1).then(|| {
                        OpenEach::start(to_open, &self.policy, self.load_timeout, one_cpu)
                    });
                    for (f, stamp) in files {
                        self.load_file_with(&f, stamp, opening.as_mut());
                    }
                }
                Err(e) => {
                    // Default folders are optional; a folder the user named must exist.
                    let named = matches!(
                        dir.source,
                        DirSource::Flag | DirSource::Env | DirSource::Context
                    );
                    if named || e.kind() != std::io::ErrorKind::NotFound {
                        self.diagnostics.push(Diagnostic {
                            message: format!(
                                "plugin folder `{}` (from {}) cannot be read: {e}",
                                dir.path.display(),
                                dir.source.as_str()
                            ),
                        });
                    }
                }
            }
        }
    }

    /// Whether [`Registry::load_file`] would open `path` (absolute, stamped `stamp`) in this
    /// process: not loaded yet, not vouched for by the index, not to be looked at in a child.
    fn opens_in_process(&mut self, path: &Path, stamp: Option<Stamp>) -> bool {
        self.position(path).is_none()
            && self.indexed(path, stamp).is_none()
            && !self.isolation.discover_in_child(path)
    }

    /// Where `path` (absolute) is in the libraries already looked at. Byte-wise: both sides
    /// come from `fsutil::absolute` (component-wise `Path` equality was 2 % of a cold
    /// discovery of 100 libraries).
    fn position(&self, path: &Path) -> Option<usize> {
        self.libraries
            .iter()
            .position(|l| l.path.as_os_str() == path.as_os_str())
    }

    /// What the index says of `path` if it is unchanged since (`stamp`: its stamp now).
    fn indexed(&mut self, path: &Path, stamp: Option<Stamp>) -> Option<&IndexedOutcome> {
        self.index.as_mut()?.lookup(path, stamp?)
    }

    /// Loads one library file and registers its provider types.
    pub fn load_file(&mut self, path: &Path) -> &LibraryReport {
        let path = crate::fsutil::absolute(path);
        let stamp = stamp_of(&path);
        self.load_file_with(&path, stamp, None)
    }

    /// [`Registry::load_file`] of `path` (absolute, stamped `stamp`), taking the library from
    /// `opening` when it has it next.
    fn load_file_with(
        &mut self,
        path: &Path,
        stamp: Option<Stamp>,
        opening: Option<&mut OpenEach>,
    ) -> &LibraryReport {
        let path = path.to_owned();
        if let Some(i) = self.position(&path) {
            return &self.libraries[i];
        }
        // A file the index knows, unchanged since: its provider types are registered without
        // opening it (the library is opened when one of them is first used); a refused file
        // stays refused without being handed to the loader again.
        let indexed = self.indexed(&path, stamp).cloned();
        let outcome = match indexed {
            Some(IndexedOutcome::Loaded {
                api_version,
                types,
                errors,
            }) => {
                let lib = self.lazy(&path);
                for t in &types {
                    self.add_indexed(t, &lib, Origin::Library(path.clone()));
                }
                LibraryOutcome::Loaded {
                    api_version,
                    provider_types: types.into_iter().map(|t| t.name).collect(),
                    errors,
                }
            }
            Some(IndexedOutcome::Refused {
                kind,
                summary,
                detail,
                api_version,
            }) => LibraryOutcome::Refused(LoadError {
                path: path.clone(),
                kind: kind_from_name(&kind),
                summary,
                detail,
                api_version,
            }),
            None => {
                let (outcome, indexed) = self.load_now(&path, opening);
                if let (Some(st), Some(index), Some(indexed)) =
                    (stamp, self.index.as_mut(), indexed)
                {
                    index.insert(path.clone(), st, indexed);
                }
                outcome
            }
        };
        match &outcome {
            LibraryOutcome::Loaded {
                api_version,
                provider_types,
                ..
            } => {
                tracing::debug!(
                    "loaded plugin `{}` (plugin-api {api_version}): {}",
                    path.display(),
                    provider_types.join(", ")
                )
            }
            LibraryOutcome::Refused(e) => tracing::debug!("refused {e}"),
        }
        self.libraries.push(LibraryReport { path, outcome });
        self.libraries.last().expect("just pushed")
    }

    /// Opens a library now and registers its provider types. The second half is what the
    /// index should remember, `None` for what must be tried again next time: a refusal for
    /// ownership or permissions (fixing it with chmod or chown does not change what the index
    /// keys on) or a load that missed its deadline.
    fn load_now(
        &mut self,
        path: &Path,
        opening: Option<&mut OpenEach>,
    ) -> (LibraryOutcome, Option<IndexedOutcome>) {
        if self.isolation.discover_in_child(path) {
            if let Some(child) = self.isolated_library(path) {
                return self.load_in_child(path, child);
            }
        }
        let opened = match opening.and_then(|o| o.take(path)) {
            Some(opened) => opened,
            None => open_library_in_time(path, &self.policy, self.load_timeout),
        };
        match opened {
            Ok(Opened {
                library: lib,
                described,
            }) => {
                let mut types = Vec::new();
                let mut errors: Vec<String> = lib
                    .factory_errors
                    .iter()
                    .map(crate::boundary::registration_error)
                    .collect();
                for ((name, handle), described) in lib.factories.into_iter().zip(described) {
                    let origin = Origin::Library(path.to_owned());
                    match (
                        self.add(name.clone(), handle, origin, described.clone()),
                        described,
                    ) {
                        (Ok(()), Ok((description, capabilities))) => types.push(IndexedType {
                            name,
                            description,
                            capabilities: capabilities.bits(),
                        }),
                        // A type that failed (a duplicate of a registered name is not
                        // registered, and not described again, but its failure is shown).
                        (Err(e), _) | (Ok(()), Err(e)) => errors.push(e),
                    }
                }
                self.opened.insert(path.to_owned());
                let outcome = LibraryOutcome::Loaded {
                    api_version: crate::boundary::validate::escape(&lib.api_version).into_owned(),
                    provider_types: types.iter().map(|t| t.name.clone()).collect(),
                    errors: errors.clone(),
                };
                (
                    outcome,
                    Some(IndexedOutcome::Loaded {
                        api_version: crate::boundary::validate::escape(&lib.api_version)
                            .into_owned(),
                        types,
                        errors,
                    }),
                )
            }
            Err((e, timed_out)) => {
                let indexed = (!timed_out && e.kind != LoadErrorKind::Untrusted).then(|| {
                    IndexedOutcome::Refused {
                        kind: kind_name(e.kind).into(),
                        summary: e.summary.clone(),
                        detail: e.detail.clone(),
                        api_version: e.api_version.clone(),
                    }
                });
                (LibraryOutcome::Refused(e), indexed)
            }
        }
    }

    /// Loads one library in a process of its own, never in this one, and registers the types
    /// it lists: for looking at a file that may crash or hang whoever loads it. The process
    /// ends with the registry. An error when there is no qlam executable to run it.
    pub(crate) fn load_file_in_child(&mut self, path: &Path) -> Result<&LibraryReport> {
        let child = self.isolated_library(path).ok_or_else(|| {
            Error::plugin(
                "cannot load it in a process of its own: no qlam executable was found (set QLAM_EXE)",
            )
        })?;
        let (outcome, _) = self.load_in_child(path, child);
        self.libraries.push(LibraryReport {
            path: path.to_owned(),
            outcome,
        });
        Ok(self.libraries.last().expect("just pushed"))
    }

    /// Opens a library in its child process (which stays up for the providers that will
    /// use it) and registers the types it lists; it is opened in this process only when a
    /// provider of one of them runs here.
    fn load_in_child(
        &mut self,
        path: &Path,
        child: Arc<IsolatedLibrary>,
    ) -> (LibraryOutcome, Option<IndexedOutcome>) {
        let ready = match child.discover(self.load_timeout) {
            Ok(ready) => ready,
            Err(e) => {
                let summary = if e.timed_out {
                    format!(
                        "did not finish loading within {} (in its own process, which was killed); it is not used",
                        crate::boundary::show_duration(self.load_timeout)
                    )
                } else {
                    crate::boundary::validate::escape(&e.summary).into_owned()
                };
                let e = LoadError {
                    path: path.to_owned(),
                    kind: e.kind,
                    summary,
                    detail: crate::boundary::validate::escape_lines(&e.detail),
                    api_version: e.api_version,
                };
                // A crash or a hang while loading is tried again next time, like a refusal
                // for ownership or permissions.
                let indexed = (e.kind != LoadErrorKind::Untrusted
                    && e.kind != LoadErrorKind::InitFailed)
                    .then(|| IndexedOutcome::Refused {
                        kind: kind_name(e.kind).into(),
                        summary: e.summary.clone(),
                        detail: e.detail.clone(),
                        api_version: e.api_version.clone(),
                    });
                return (LibraryOutcome::Refused(e), indexed);
            }
        };
        let mut errors: Vec<String> = ready
            .errors
            .into_iter()
            .map(|e| crate::boundary::registration_error(&e.into()))
            .collect();
        let lib = self.lazy(path);
        let mut types = Vec::new();
        for t in ready.types {
            if let Some(why) = crate::boundary::validate::type_name_problem(&t.name) {
                errors.push(format!(
                    "a provider type's name `{}` {why}",
                    crate::boundary::validate::escape(&t.name)
                ));
                continue;
            }
            let indexed = IndexedType {
                description: crate::boundary::validate::escape(&t.description).into_owned(),
                name: t.name,
                capabilities: t.capabilities,
            };
            self.add_indexed(&indexed, &lib, Origin::Library(path.to_owned()));
            types.push(indexed);
        }
        self.opened.insert(path.to_owned());
        let outcome = LibraryOutcome::Loaded {
            api_version: crate::boundary::validate::escape(&ready.api_version).into_owned(),
            provider_types: types.iter().map(|t| t.name.clone()).collect(),
            errors: errors.clone(),
        };
        (
            outcome,
            Some(IndexedOutcome::Loaded {
                api_version: crate::boundary::validate::escape(&ready.api_version).into_owned(),
                types,
                errors,
            }),
        )
    }

    /// A provider type by name.
    pub fn get(&self, name: &str) -> Option<&ProviderType> {
        self.types.get(name)
    }

    /// Every provider type, in registration order.
    pub fn types(&self) -> impl Iterator<Item = &ProviderType> {
        self.types.values()
    }

    /// Every library tried, in order.
    pub fn libraries(&self) -> &[LibraryReport] {
        &self.libraries
    }

    /// [`Registry::libraries`], where each library registered from the index without being
    /// opened is put through the trust checks again (ownership, permissions, links, pins):
    /// the index notices a changed file, not a `chmod`, a `chown` or a folder made writable
    /// since, and such a library would be refused when a command opens it. One that fails
    /// them now is reported refused, as that command would report it. Nothing is loaded.
    pub fn libraries_checked(&self) -> Vec<LibraryReport> {
        let mut folders = crate::plugins::trust::TrustedFolders::default();
        self.libraries
            .iter()
            .map(|l| {
                let from_index = matches!(l.outcome, LibraryOutcome::Loaded { .. })
                    && !self.opened.contains(&l.path);
                // The reason can quote a folder's name: escaped, as when loading refuses it.
                let refusal = from_index
                    .then(|| crate::plugins::trust::check_in(&l.path, &self.policy, &mut folders))
                    .and_then(|checked| checked.err())
                    .map(|why| crate::boundary::validate::escape(&why).into_owned());
                match (refusal, &l.outcome) {
                    (Some(summary), LibraryOutcome::Loaded { api_version, .. }) => LibraryReport {
                        path: l.path.clone(),
                        outcome: LibraryOutcome::Refused(LoadError {
                            path: l.path.clone(),
                            kind: LoadErrorKind::Untrusted,
                            summary,
                            detail: String::new(),
                            api_version: Some(api_version.clone()),
                        }),
                    },
                    _ => l.clone(),
                }
            })
            .collect()
    }

    /// Provider types found more than once.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Problems with the search path itself.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// One line per problem: refused libraries, failed provider types, unreadable folders.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.diagnostics.iter().map(|d| d.message.clone()).collect();
        for lib in &self.libraries {
            match &lib.outcome {
                LibraryOutcome::Refused(e) => out.push(e.to_string()),
                LibraryOutcome::Loaded { errors, .. } => out.extend(
                    errors
                        .iter()
                        .map(|e| format!("plugin `{}`: {e}", lib.path.display())),
                ),
            }
        }
        out
    }
}
