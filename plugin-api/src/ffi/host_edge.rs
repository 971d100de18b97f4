//! The host edge (feature `host`): loading plugin libraries, and handles that turn the FFI
//! answers of their factories and providers back into plain Rust. A provider never needs it.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::library::{LibraryError, RootModuleError};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, Tuple2};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::plugin_edge::ffi_factory;
use super::{
    guard, json_error, BuildRequestWire, FfiCache, FfiError, FfiFactoryBox, FfiLogSink,
    FfiProviderBox, FfiServices, FfiServices_TO, PluginModRef, API_VERSION, INTERFACE_SYMBOL,
    LOG_SINK_SYMBOL,
};
#[cfg(doc)]
use crate::Provider;
use crate::{
    CacheControl, Capabilities, Credential, Error, ErrorKind, Headers, Interaction, LogLevel,
    LoginOptions, LogoutReport, ProviderFactory, Result, Secret, ServicesBackend, Token,
};

impl From<FfiCache> for CacheControl {
    fn from(c: FfiCache) -> Self {
        match c.kind {
            1 => CacheControl::Session,
            2 => DateTime::<Utc>::from_timestamp_millis(c.until_unix_millis)
                .map(CacheControl::Until)
                .unwrap_or(CacheControl::Never),
            _ => CacheControl::Never,
        }
    }
}

/// The host's services adapter: implements [`FfiServices`] over a [`ServicesBackend`], turning
/// a panic in the host's own code into an error rather than an abort.
struct ServicesAdapter(Arc<dyn ServicesBackend>);

struct HostLabel;
impl fmt::Display for HostLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host's services")
    }
}

impl FfiServices for ServicesAdapter {
    fn secret_load(&self, key: RStr<'_>) -> RResult<ROption<RString>, FfiError> {
        guard(&HostLabel, "secret_load", || {
            Ok(self
                .0
                .secret_load(key.as_str())?
                .map(|s| RString::from(s.into_inner()))
                .into())
        })
    }

    fn secret_store(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), FfiError> {
        guard(&HostLabel, "secret_store", || {
            self.0
                .secret_store(key.as_str(), &Secret::new(value.as_str().to_owned()))
        })
    }

    fn secret_delete(&self, key: RStr<'_>) -> RResult<(), FfiError> {
        guard(&HostLabel, "secret_delete", || {
            self.0.secret_delete(key.as_str())
        })
    }

    fn interact(&self, request_json: RStr<'_>) -> RResult<RString, FfiError> {
        guard(&HostLabel, "interact", || {
            let request: Interaction = serde_json::from_str(request_json.as_str())
                .map_err(|e| json_error("interaction", e))?;
            let reply = self.0.interact(&request)?;
            Ok(serde_json::to_string(&reply)
                .map_err(|e| json_error("interaction reply", e))?
                .into())
        })
    }

    fn is_interactive(&self) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.0.is_interactive())).unwrap_or(false)
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.0.log(LogLevel::from_code(level), message.as_str())
        }));
    }
}

/// A provider type as the host holds it: from a plugin library or registered in-process.
#[derive(Clone, Copy)]
pub struct FactoryHandle {
    inner: &'static FfiFactoryBox,
}

impl fmt::Debug for FactoryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FactoryHandle")
    }
}

impl FactoryHandle {
    /// An in-process provider type, wrapped in the same adapter a plugin library uses. The
    /// factory lives for the rest of the process, like a plugin library's.
    pub fn in_process(factory: Box<dyn ProviderFactory>) -> FactoryHandle {
        FactoryHandle {
            inner: Box::leak(Box::new(ffi_factory(factory, None))),
        }
    }

    /// The provider type name.
    pub fn name(&self) -> Result<String> {
        self.inner
            .name()
            .into_result()
            .map(RString::into_string)
            .map_err(Into::into)
    }

    /// The provider type's description.
    pub fn description(&self) -> Result<String> {
        self.inner
            .description()
            .into_result()
            .map(RString::into_string)
            .map_err(Into::into)
    }

    /// What providers of this type can do.
    pub fn capabilities(&self) -> Result<Capabilities> {
        self.inner
            .capabilities()
            .into_result()
            .map(Capabilities::from_bits)
            .map_err(Into::into)
    }

    /// Display-only facts from a provider's configuration.
    pub fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let json = self
            .inner
            .extra_info(config.to_string().as_str().into())
            .into_result()?;
        parse_object(json.as_str(), "extra info")
    }

    /// Builds a provider; `config_dir` is the folder of the configuration file it comes from
    /// (the base of relative paths in `config`).
    pub fn build(
        &self,
        context_name: &str,
        provider_name: &str,
        config: &Value,
        config_dir: Option<&Path>,
        services: Arc<dyn ServicesBackend>,
    ) -> Result<ProviderHandle> {
        let wire = BuildRequestWire {
            context_name: context_name.to_owned(),
            provider_name: provider_name.to_owned(),
            config: config.clone(),
            config_dir: config_dir.map(Path::to_owned),
        };
        let json = serde_json::to_string(&wire).map_err(|e| json_error("build request", e))?;
        let services = FfiServices_TO::from_value(ServicesAdapter(services), TD_Opaque);
        let inner = self
            .inner
            .build(json.as_str().into(), services)
            .into_result()?;
        let capabilities = Capabilities::from_bits(inner.capabilities().into_result()?);
        Ok(ProviderHandle {
            inner,
            capabilities,
        })
    }
}

fn parse_object(json: &str, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(json).map_err(|e| json_error(what, e))? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::other(format!(
            "the provider's {what} is not a JSON object"
        ))),
    }
}

/// A built provider as the host holds it.
pub struct ProviderHandle {
    inner: FfiProviderBox,
    capabilities: Capabilities,
}

impl fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHandle")
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl ProviderHandle {
    /// The capabilities, read once at build.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// See [`Provider::description`].
    pub fn description(&self) -> Result<String> {
        Ok(self.inner.description().into_result()?.into_string())
    }

    /// See [`Provider::is_authenticated`].
    pub fn is_authenticated(&self) -> Result<bool> {
        Ok(self.inner.is_authenticated().into_result()?)
    }

    /// See [`Provider::auth_context`].
    pub fn auth_context(&self) -> Result<Map<String, Value>> {
        parse_object(
            self.inner.auth_context().into_result()?.as_str(),
            "auth context",
        )
    }

    /// See [`Provider::credential`].
    pub fn credential(&self) -> Result<Option<Credential>> {
        match self.inner.credential().into_result()?.into_option() {
            None => Ok(None),
            Some(json) => serde_json::from_str(json.as_str())
                .map(Some)
                .map_err(|e| json_error("credential", e)),
        }
    }

    /// See [`HttpHeaders::headers`](crate::HttpHeaders::headers).
    pub fn headers(&self) -> Result<Headers> {
        let h = self.inner.headers().into_result()?;
        Ok(Headers {
            headers: h
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), Secret::new(v.into_string())))
                .collect(),
            cache: h.cache.into(),
        })
    }

    /// See [`TokenSource::token`](crate::TokenSource::token).
    pub fn token(&self) -> Result<Token> {
        let t = self.inner.token().into_result()?;
        Ok(Token {
            token: Secret::new(t.token.into_string()),
            cache: t.cache.into(),
        })
    }

    /// See [`LoginLogout::login`](crate::LoginLogout::login).
    pub fn login(&self, options: &LoginOptions) -> Result<()> {
        let json = serde_json::to_string(options).map_err(|e| json_error("login options", e))?;
        Ok(self.inner.login(json.as_str().into()).into_result()?)
    }

    /// See [`LoginLogout::logout`](crate::LoginLogout::logout).
    pub fn logout(&self) -> Result<LogoutReport> {
        let json = self.inner.logout().into_result()?;
        serde_json::from_str(json.as_str()).map_err(|e| json_error("logout report", e))
    }

    /// See [`Refresh::can_refresh`](crate::Refresh::can_refresh).
    pub fn can_refresh(&self) -> Result<bool> {
        Ok(self.inner.can_refresh().into_result()?)
    }

    /// See [`Refresh::refresh`](crate::Refresh::refresh).
    pub fn refresh(&self, force: bool) -> Result<bool> {
        Ok(self.inner.refresh(force).into_result()?)
    }
}

/// A plugin library that loaded.
#[derive(Debug)]
pub struct LoadedLibrary {
    /// The file.
    pub path: PathBuf,
    /// The qlam-plugin-api version it was built with.
    pub api_version: String,
    /// Its provider types, in the order it lists them.
    pub factories: Vec<(String, FactoryHandle)>,
    /// Provider types that could not even be named (their `name` failed or panicked).
    pub factory_errors: Vec<Error>,
    /// Hands the library a log sink ([`LOG_SINK_SYMBOL`]); `None` for libraries built before
    /// qlam-plugin-api 0.1.1.
    pub set_log_sink: Option<extern "C" fn(FfiLogSink)>,
}

/// Why a library was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file could not be opened as a shared library (not a library, damaged, unreadable,
    /// missing, another architecture).
    Open,
    /// A shared library without a qlam root module.
    NotAPlugin,
    /// Built against an incompatible qlam-plugin-api version.
    IncompatibleVersion,
    /// Built against a qlam-plugin-api whose interface layout differs from this one.
    IncompatibleLayout,
    /// Built with an incompatible abi_stable.
    IncompatibleAbiStable,
    /// Its initialiser panicked or failed.
    InitFailed,
    /// Refused before loading: ownership, permissions, a symbolic link (host policy).
    Untrusted,
}

/// A library that could not be loaded: one line for people, full detail for `-v`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{}`: {summary}", path.display())]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The category.
    pub kind: LoadErrorKind,
    /// One line: what is wrong and what to do.
    pub summary: String,
    /// Everything the loader said (layout differences can be long).
    pub detail: String,
    /// The qlam-plugin-api version the library says it was built with, when known.
    pub api_version: Option<String>,
}

/// The range of plugin-api versions this host loads, for messages: `0.1.x` or `1.x`.
pub fn compatible_range() -> String {
    let mut parts = API_VERSION.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" {
        format!("0.{minor}.x")
    } else {
        format!("{major}.x")
    }
}

/// Loads a plugin library. It is never unloaded.
///
/// # Safety of loading
/// Loading a shared library runs its initialisers; the caller decides which files to trust.
pub fn load_library(path: &Path) -> std::result::Result<LoadedLibrary, LoadError> {
    load_library_from(path, path)
}

/// Loads the library at `load_path` (for example `/proc/self/fd/N`, the descriptor the host
/// checked), naming it `shown_path` in every message and report.
pub fn load_library_from(
    load_path: &Path,
    shown_path: &Path,
) -> std::result::Result<LoadedLibrary, LoadError> {
    let path = shown_path;
    let fail = |kind, summary: String, detail: String, api_version: Option<String>| LoadError {
        path: path.to_owned(),
        kind,
        summary,
        detail,
        api_version,
    };
    // One load of the library: its root module and its optional symbols through the same
    // handle (a second load of the same file cost 6 µs a library at discovery).
    let loaded = abi_stable::library::RawLibrary::load_at(load_path).and_then(|raw| {
        // SAFETY: a plugin is never unloaded (`raw` is leaked below), so the header's
        // `'static` references stay valid.
        let header = unsafe { abi_stable::library::lib_header_from_raw_library(&raw) }?;
        Ok((raw, header))
    });
    let (raw, header) = loaded.map_err(|e| {
        let detail = e.to_string();
        match e {
            LibraryError::GetSymbolError { .. } => fail(
                LoadErrorKind::NotAPlugin,
                "not a qlam plugin (the library exports no qlam root module); remove it from the plugin folder".into(),
                detail,
                None,
            ),
            LibraryError::InvalidAbiHeader(_) => fail(
                LoadErrorKind::IncompatibleAbiStable,
                "built with an incompatible abi_stable version; rebuild it against this qlam's qlam-plugin-api".into(),
                detail,
                None,
            ),
            LibraryError::OpenError { err, .. } => fail(
                LoadErrorKind::Open,
                format!("cannot be loaded as a shared library: {}", dlopen_reason(&err.to_string(), load_path)),
                detail,
                None,
            ),
            _ => fail(LoadErrorKind::Open, format!("cannot be loaded: {}", first_line(&detail)), detail, None),
        }
    })?;
    let raw: &'static abi_stable::library::RawLibrary = Box::leak(Box::new(raw));
    let version = header.version_strings().to_string();
    // abi_stable's layout check is most of what discovering a plugin costs; a library built
    // from the same qlam-plugin-api source as one already checked has the same layout.
    let fingerprint = interface_fingerprint(raw);
    let checked_before = fingerprint
        .as_ref()
        .is_some_and(|f| checked_interfaces().contains(f));
    let module = if checked_before {
        // SAFETY: a library with the same interface fingerprint (a hash of the
        // qlam-plugin-api source it was built from, exported by `export_providers!`) passed
        // the full layout check in this process; the version is still checked.
        unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() }
    } else {
        header.init_root_module::<PluginModRef>()
    };
    let module = module.map_err(|e| {
        let detail = e.to_string();
        let v = Some(version.clone());
        match e {
            LibraryError::IncompatibleVersionNumber { actual_version, .. } => fail(
                LoadErrorKind::IncompatibleVersion,
                format!(
                    "built against qlam-plugin-api {actual_version}, but this qlam loads {}; rebuild the plugin against qlam-plugin-api {API_VERSION}",
                    compatible_range()
                ),
                detail,
                v,
            ),
            LibraryError::AbiInstability(_) => fail(
                LoadErrorKind::IncompatibleLayout,
                format!(
                    "its interface layout is incompatible with qlam-plugin-api {API_VERSION} (the plugin says {version}); rebuild it against qlam-plugin-api {API_VERSION} (run with -v for the layout differences)"
                ),
                detail,
                v,
            ),
            LibraryError::RootModule { err: RootModuleError::Unwound, .. } => fail(
                LoadErrorKind::InitFailed,
                "panicked while loading its provider list".into(),
                detail,
                v,
            ),
            _ => fail(
                LoadErrorKind::InitFailed,
                format!("failed to initialise: {}", first_line(&detail)),
                detail,
                v,
            ),
        }
    })?;
    if let (Some(f), false) = (fingerprint, checked_before) {
        checked_interfaces().insert(f);
    }
    let mut factories = Vec::new();
    let mut factory_errors = Vec::new();
    let listed: &'static [FfiFactoryBox] = module.factories().as_slice();
    for (i, f) in listed.iter().enumerate() {
        let handle = FactoryHandle { inner: f };
        match handle.name() {
            Ok(name) => factories.push((name, handle)),
            Err(e) if e.kind() == ErrorKind::Panic => factory_errors.push(e),
            Err(e) => factory_errors.push(e.context(format_args!("provider type #{}", i + 1))),
        }
    }
    Ok(LoadedLibrary {
        path: path.to_owned(),
        api_version: module.api_version().to_string(),
        factories,
        factory_errors,
        set_log_sink: log_sink(raw),
    })
}

/// The interface fingerprints whose layout passed abi_stable's full check in this process.
fn checked_interfaces() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<String>> {
    static CHECKED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    CHECKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The interface fingerprint the loaded library exports ([`INTERFACE_SYMBOL`]), if it does
/// and it looks like one (hex, at most 64 digits).
fn interface_fingerprint(lib: &abi_stable::library::RawLibrary) -> Option<String> {
    // SAFETY: where a library exports it, the symbol is the function `export_providers!`
    // defines with exactly this signature, returning a static NUL-terminated string.
    let f =
        unsafe { lib.get::<extern "C" fn() -> *const std::ffi::c_char>(&c_name(INTERFACE_SYMBOL)) }
            .ok()?;
    let p = f();
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, and NUL-terminated by `export_providers!`.
    let text = unsafe { std::ffi::CStr::from_ptr(p) }.to_str().ok()?;
    (!text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_owned())
}

/// The log-sink receiver the loaded library exports ([`LOG_SINK_SYMBOL`]), if it does.
fn log_sink(lib: &abi_stable::library::RawLibrary) -> Option<extern "C" fn(FfiLogSink)> {
    // SAFETY: where a library exports it, the symbol is the function `export_providers!`
    // defines with exactly this signature.
    let f = unsafe { lib.get::<extern "C" fn(FfiLogSink)>(&c_name(LOG_SINK_SYMBOL)) }.ok()?;
    Some(*f)
}

/// `name` NUL-terminated, as symbol look-ups want it.
fn c_name(name: &str) -> Vec<u8> {
    let mut symbol = name.as_bytes().to_vec();
    symbol.push(0);
    symbol
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// dlerror messages repeat the path; keep the reason.
fn dlopen_reason(message: &str, path: &Path) -> String {
    let p = path.display().to_string();
    let reason = message
        .rsplit_once(&format!("{p}: "))
        .map(|(_, r)| r)
        .unwrap_or(message);
    first_line(reason).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_round_trips() {
        let t: DateTime<Utc> = "2030-01-01T00:00:00.123Z".parse().unwrap();
        for c in [
            CacheControl::Never,
            CacheControl::Session,
            CacheControl::Until(t),
        ] {
            assert_eq!(CacheControl::from(FfiCache::from(c)), c);
        }
    }

    #[test]
    fn compatible_range_for_zero_major() {
        assert!(compatible_range().starts_with("0."));
        assert!(compatible_range().ends_with(".x"));
    }

    #[test]
    fn dlopen_reason_strips_path() {
        let p = Path::new("/tmp/p/libx.so");
        assert_eq!(
            dlopen_reason("/tmp/p/libx.so: invalid ELF header", p),
            "invalid ELF header"
        );
        assert_eq!(dlopen_reason("something else", p), "something else");
    }
}
