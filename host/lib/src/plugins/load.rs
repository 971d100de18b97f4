//! Loading one library: the trust and file checks on an open descriptor, then the dynamic
//! loader through that descriptor, and the description of each provider type, under a
//! deadline.

use std::path::Path;
use std::time::Duration;

use qlam_plugin_api::ffi::{load_library_from, LoadError, LoadErrorKind};
use qlam_plugin_api::Capabilities;

/// Whether a library sits beside the running executable (the bundled providers).
pub(super) fn is_bundled(path: &Path) -> bool {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    match (exe_dir, path.parent()) {
        (Some(e), Some(p)) => {
            std::fs::canonicalize(&e).unwrap_or(e) == std::fs::canonicalize(p).unwrap_or(p.into())
        }
        _ => false,
    }
}

/// A loaded library and, for each of its provider types, its description (escaped) and
/// capabilities or why they could not be had.
pub(super) struct Opened {
    pub(super) library: qlam_plugin_api::ffi::LoadedLibrary,
    pub(super) described: Vec<std::result::Result<(String, Capabilities), String>>,
}

/// [`open_library`] and the description of every provider type, under one deadline (one
/// hand-over to a worker thread per library, not one per call): a library that does not
/// finish in time is refused; the `bool` says so (such a refusal is not remembered in the
/// index: the next run tries again).
pub(super) fn open_library_in_time(
    path: &Path,
    policy: &crate::plugins::trust::TrustPolicy,
    limit: Duration,
) -> OpenResult {
    let (p, pol) = (path.to_owned(), policy.clone());
    let answer = crate::boundary::loading(path, limit, move || {
        open_and_describe(&p, &pol, &mut Default::default())
    });
    finish_opening(path, limit, answer)
}

/// What opening a library in time came to: the library, or why not and whether it missed
/// its deadline.
pub(super) type OpenResult = std::result::Result<Opened, (LoadError, bool)>;

/// [`open_library_in_time`] for several libraries, opened one after the other on one thread
/// ([`crate::boundary::LoadingEach`]): for discovery, where a hand-over per library cost a
/// third of the time.
pub(super) struct OpenEach {
    each: crate::boundary::LoadingEach<std::result::Result<Opened, LoadError>>,
    limit: Duration,
}

impl OpenEach {
    /// `one_cpu`: see [`crate::plugins::Registry::set_loading_on_one_cpu`].
    pub(super) fn start(
        paths: Vec<std::path::PathBuf>,
        policy: &crate::plugins::trust::TrustPolicy,
        limit: Duration,
        one_cpu: bool,
    ) -> OpenEach {
        let policy = policy.clone();
        // The folders that passed, for this scan. Taken out while a library loads, never
        // locked through it: a thread left behind in a library that hangs must not keep the
        // next thread from loading the others.
        let folders = std::sync::Mutex::new(crate::plugins::trust::TrustedFolders::default());
        OpenEach {
            each: crate::boundary::LoadingEach::start(paths, limit, one_cpu, move |p| {
                let shared = || folders.lock().unwrap_or_else(|e| e.into_inner());
                let mut mine = std::mem::take(&mut *shared());
                let opened = open_and_describe(p, &policy, &mut mine);
                *shared() = mine;
                opened
            }),
            limit,
        }
    }

    /// `path`'s result when it is the next one; `None` (and nothing taken) otherwise.
    pub(super) fn take(&mut self, path: &Path) -> Option<OpenResult> {
        if self.each.peek() != Some(path) {
            return None;
        }
        let (path, answer) = self.each.next_answer()?;
        Some(finish_opening(&path, self.limit, answer))
    }
}

/// The library and its types' descriptions: what runs on the loading thread.
fn open_and_describe(
    path: &Path,
    policy: &crate::plugins::trust::TrustPolicy,
    folders: &mut crate::plugins::trust::TrustedFolders,
) -> std::result::Result<Opened, LoadError> {
    open_library_in(path, policy, folders).map(|library| {
        let described = library
            .factories
            .iter()
            .map(|(_, f)| {
                f.description()
                    .and_then(|d| Ok((d, f.capabilities()?)))
                    .map(|(d, c)| (crate::boundary::validate::escape(&d).into_owned(), c))
                    .map_err(|e| crate::boundary::registration_error(&e))
            })
            .collect();
        Opened { library, described }
    })
}

/// The loading thread's answer (`None`: it missed the deadline) as the caller's result.
fn finish_opening(
    path: &Path,
    limit: Duration,
    answer: Option<std::result::Result<Opened, LoadError>>,
) -> OpenResult {
    match answer {
        // The loader's words can quote the library's own (its error, its type names).
        Some(r) => r.map_err(|mut e| {
            e.summary = crate::boundary::validate::escape(&e.summary).into_owned();
            e.detail = crate::boundary::validate::escape_lines(&e.detail);
            (e, false)
        }),
        None => Err((
            LoadError {
                path: path.to_owned(),
                kind: LoadErrorKind::InitFailed,
                summary: format!(
                    "did not finish loading within {}; it is not used (set `call_timeout_secs` to wait longer)",
                    crate::boundary::show_duration(limit)
                ),
                detail: String::new(),
                api_version: None,
            },
            true,
        )),
    }
}

/// The trust checks, the structural check, then the loader — all on one open descriptor.
pub(crate) fn open_library(
    path: &Path,
    policy: &crate::plugins::trust::TrustPolicy,
) -> std::result::Result<qlam_plugin_api::ffi::LoadedLibrary, LoadError> {
    open_library_in(path, policy, &mut Default::default())
}

/// [`open_library`], skipping the folder checks `folders` has seen pass.
fn open_library_in(
    path: &Path,
    policy: &crate::plugins::trust::TrustPolicy,
    folders: &mut crate::plugins::trust::TrustedFolders,
) -> std::result::Result<qlam_plugin_api::ffi::LoadedLibrary, LoadError> {
    let refuse = |kind, summary| LoadError {
        path: path.to_owned(),
        kind,
        summary,
        detail: String::new(),
        api_version: None,
    };
    let mut checked = crate::plugins::trust::check_in(path, policy, folders).map_err(|s| {
        let kind = if s == "is not a regular file" || s.starts_with("cannot be") {
            LoadErrorKind::Open
        } else {
            LoadErrorKind::Untrusted
        };
        refuse(kind, s)
    })?;
    if let Some(summary) = crate::plugins::check::problem_in(&mut checked.file) {
        return Err(refuse(LoadErrorKind::Open, summary));
    }
    #[cfg(windows)]
    preload_safely(&checked.load_path).map_err(|e| {
        refuse(
            LoadErrorKind::Open,
            format!("cannot be loaded as a shared library: {e}"),
        )
    })?;
    let loaded = load_library_from(&checked.load_path, path);
    #[cfg(all(unix, not(target_os = "linux")))]
    if loaded.is_ok() && !same_file(&checked.file, &checked.load_path) {
        // No descriptor path on this system: the path was loaded, so make sure it still is
        // the file that was checked. (Its constructors have run; its providers are not used.)
        return Err(refuse(
            LoadErrorKind::Untrusted,
            "was replaced between the trust checks and loading; refusing to use it".into(),
        ));
    }
    if let Ok(lib) = &loaded {
        if let Some(set_log_sink) = lib.set_log_sink {
            set_log_sink(crate::plugins::log::sink_for_plugins());
        }
    }
    // Keep the descriptor open for the life of the process, like the library itself: the
    // loader knows libraries by name, and a reused `/proc/self/fd/N` would make the next
    // library "already loaded" as this one.
    std::mem::forget(checked.file);
    loaded
}

/// Windows: load the checked file first with a search limited to its own folder and
/// System32 for its dependencies (never the current directory or PATH), and keep it loaded;
/// abi_stable's load of the same full path then finds this module.
#[cfg(windows)]
fn preload_safely(path: &Path) -> std::result::Result<(), String> {
    use libloading::os::windows::{
        Library, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR, LOAD_LIBRARY_SEARCH_SYSTEM32,
    };
    // SAFETY: loading runs the library's initialisers; the file passed the trust checks.
    let lib = unsafe {
        Library::load_with_flags(
            path,
            LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32,
        )
    }
    // libloading says only "LoadLibraryExW failed"; the system's reason is its source
    // ("The specified module could not be found. (os error 126)": a missing dependency;
    // 193: not a library for this machine).
    .map_err(|e| match std::error::Error::source(&e) {
        Some(why) => format!("{e}: {why}"),
        None => e.to_string(),
    })?;
    // Libraries are never unloaded.
    std::mem::forget(lib);
    Ok(())
}

/// Whether `path` is (still) the open `file`: same device and inode.
#[cfg(all(unix, not(target_os = "linux")))]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

pub(crate) fn kind_name(k: LoadErrorKind) -> &'static str {
    match k {
        LoadErrorKind::Open => "open",
        LoadErrorKind::NotAPlugin => "not_a_plugin",
        LoadErrorKind::IncompatibleVersion => "incompatible_version",
        LoadErrorKind::IncompatibleLayout => "incompatible_layout",
        LoadErrorKind::IncompatibleAbiStable => "incompatible_abi_stable",
        LoadErrorKind::Untrusted => "untrusted",
        _ => "init_failed",
    }
}

pub(crate) fn kind_from_name(s: &str) -> LoadErrorKind {
    match s {
        "open" => LoadErrorKind::Open,
        "not_a_plugin" => LoadErrorKind::NotAPlugin,
        "incompatible_version" => LoadErrorKind::IncompatibleVersion,
        "incompatible_layout" => LoadErrorKind::IncompatibleLayout,
        "incompatible_abi_stable" => LoadErrorKind::IncompatibleAbiStable,
        "untrusted" => LoadErrorKind::Untrusted,
        _ => LoadErrorKind::InitFailed,
    }
}
