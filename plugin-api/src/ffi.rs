//! The plugin boundary: every `StableAbi` type of qlam, and the two edges that convert between
//! them and the plain Rust API.
//!
//! - The **plugin edge**: [`export_providers!`](crate::export_providers) wraps each
//!   [`ProviderFactory`] in an adapter that implements [`FfiFactory`], and each built
//!   [`Provider`] in one that implements [`FfiProvider`]. Every call goes through
//!   `catch_unwind`: a panic becomes an error of kind [`ErrorKind::Panic`] naming the provider,
//!   because abi_stable aborts the process on a panic that reaches its FFI glue.
//! - The **host edge**: [`load_library`] opens a library with
//!   `lib_header_from_path(p)?.init_root_module()` (never `RootModule::load_from_file`, which
//!   returns the first library loaded for every later path), and [`FactoryHandle`] /
//!   [`ProviderHandle`] turn FFI answers back into plain Rust. In-process factories
//!   ([`FactoryHandle::in_process`]) go through the same adapter, so there is one code path.
//!
//! Evolution rule: the root module and the trait vtables never change within a minor version
//! series (0.1.x): abi_stable refuses a library whose interface has *fewer* fields than the
//! host's, so an added field or method would lock out every plugin built before it (a test
//! loads a plugin built against a frozen copy of 0.1.0 to keep us honest). Additions come as
//! optional exported symbols (`qlam_…_vN`, looked up on the loaded library, absent in older
//! plugins) and optional JSON members; codes that may grow are plain integers. Every item here
//! exists since qlam-plugin-api 0.1.0 unless its documentation says otherwise.

// abi_stable's derive and sabi_trait macros generate these; allowed here and nowhere else.
#![allow(non_local_definitions, non_camel_case_types, missing_docs)]

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule, RootModuleError};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::{declare_root_module_statics, StableAbi};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    BuildRequest, CacheControl, Capabilities, Credential, Error, ErrorKind, Headers, HostServices,
    Interaction, InteractionReply, LogLevel, LoginOptions, LogoutReport, Provider, ProviderFactory,
    Result, Secret, ServicesBackend, Token,
};

/// The version of qlam-plugin-api this crate is: the ABI version.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// Data types

/// An error crossing the boundary. `kind` is an [`ErrorKind`] code.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    pub kind: u8,
    pub message: RString,
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError {
            kind: e.kind().code(),
            message: e.message().into(),
        }
    }
}

impl From<FfiError> for Error {
    fn from(e: FfiError) -> Self {
        Error::new(ErrorKind::from_code(e.kind), e.message.into_string())
    }
}

/// [`CacheControl`] at the boundary: `kind` 0 never, 1 session, 2 until `until_unix_millis`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiCache {
    pub kind: u8,
    pub until_unix_millis: i64,
}

impl From<CacheControl> for FfiCache {
    fn from(c: CacheControl) -> Self {
        match c {
            CacheControl::Never => FfiCache {
                kind: 0,
                until_unix_millis: 0,
            },
            CacheControl::Session => FfiCache {
                kind: 1,
                until_unix_millis: 0,
            },
            CacheControl::Until(t) => FfiCache {
                kind: 2,
                until_unix_millis: t.timestamp_millis(),
            },
        }
    }
}

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

/// [`Headers`] at the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiHeaders {
    pub headers: RVec<Tuple2<RString, RString>>,
    pub cache: FfiCache,
}

/// [`Token`] at the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiToken {
    pub token: RString,
    pub cache: FfiCache,
}

// ---------------------------------------------------------------------------------------------
// Trait objects

/// Host services, implemented by the host, called by plugins. See [`ServicesBackend`].
#[sabi_trait]
pub trait FfiServices: Send + Sync {
    fn secret_load(&self, key: RStr<'_>) -> RResult<ROption<RString>, FfiError>;
    fn secret_store(&self, key: RStr<'_>, value: RStr<'_>) -> RResult<(), FfiError>;
    fn secret_delete(&self, key: RStr<'_>) -> RResult<(), FfiError>;
    /// `request_json` is an [`Interaction`]; the answer an [`InteractionReply`].
    fn interact(&self, request_json: RStr<'_>) -> RResult<RString, FfiError>;
    fn is_interactive(&self) -> bool;
    #[sabi(last_prefix_field)]
    fn log(&self, level: u8, message: RStr<'_>);
}

/// A boxed [`FfiServices`].
pub type FfiServicesBox = FfiServices_TO<'static, RBox<()>>;

/// A built provider. See [`Provider`].
#[sabi_trait]
pub trait FfiProvider: Send + Sync {
    fn description(&self) -> RResult<RString, FfiError>;
    /// [`Capabilities::bits`].
    fn capabilities(&self) -> RResult<u32, FfiError>;
    fn is_authenticated(&self) -> RResult<bool, FfiError>;
    /// A JSON object.
    fn auth_context(&self) -> RResult<RString, FfiError>;
    /// A JSON [`Credential`].
    fn credential(&self) -> RResult<ROption<RString>, FfiError>;
    fn headers(&self) -> RResult<FfiHeaders, FfiError>;
    fn token(&self) -> RResult<FfiToken, FfiError>;
    /// `options_json` is [`LoginOptions`].
    fn login(&self, options_json: RStr<'_>) -> RResult<(), FfiError>;
    /// Answers a JSON [`LogoutReport`].
    fn logout(&self) -> RResult<RString, FfiError>;
    fn can_refresh(&self) -> RResult<bool, FfiError>;
    #[sabi(last_prefix_field)]
    fn refresh(&self, force: bool) -> RResult<bool, FfiError>;
}

/// A boxed [`FfiProvider`].
pub type FfiProviderBox = FfiProvider_TO<'static, RBox<()>>;

/// A provider type. See [`ProviderFactory`].
#[sabi_trait]
pub trait FfiFactory: Send + Sync {
    fn name(&self) -> RResult<RString, FfiError>;
    fn description(&self) -> RResult<RString, FfiError>;
    fn capabilities(&self) -> RResult<u32, FfiError>;
    /// `config_json` is the provider's config object; answers a JSON object.
    fn extra_info(&self, config_json: RStr<'_>) -> RResult<RString, FfiError>;
    /// `request_json` is a [`BuildRequestWire`].
    #[sabi(last_prefix_field)]
    fn build(
        &self,
        request_json: RStr<'_>,
        services: FfiServicesBox,
    ) -> RResult<FfiProviderBox, FfiError>;
}

/// A boxed [`FfiFactory`].
pub type FfiFactoryBox = FfiFactory_TO<'static, RBox<()>>;

/// The build request without its services, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequestWire {
    pub context_name: String,
    pub provider_name: String,
    pub config: Value,
}

// ---------------------------------------------------------------------------------------------
// Root module

/// The root module of a qlam plugin library: the provider factories it exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The qlam-plugin-api version the library was built with.
    pub api_version: RStr<'static>,
    /// The factories; they live as long as the process (libraries are never unloaded).
    #[sabi(last_prefix_field)]
    pub factories: RSlice<'static, FfiFactoryBox>,
}

/// Where a plugin library's own `log` records (and `tracing` events) go: a host function, and
/// the most verbose level the host wants (a [`LogLevel`] code; 5 = none). Handed over through
/// the optional symbol [`LOG_SINK_SYMBOL`] (since qlam-plugin-api 0.1.1). Its layout is frozen:
/// a change would be a new symbol (`…_v2`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FfiLogSink {
    pub max_level: u8,
    /// `(level, target, message)`; it never unwinds.
    pub log: extern "C" fn(u8, RStr<'_>, RStr<'_>),
}

/// The optional function a plugin library exports to receive the host's [`FfiLogSink`]
/// (`extern "C" fn(FfiLogSink)`). Libraries built before qlam-plugin-api 0.1.1 lack it.
///
/// Extensions come as optional symbols like this one because the root module and the trait
/// vtables cannot grow: abi_stable refuses a library whose interface has fewer fields than the
/// host's, so a new field would lock out every plugin built before it.
pub const LOG_SINK_SYMBOL: &str = "qlam_plugin_set_log_sink_v1";

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "qlam_plugin";
    const NAME: &'static str = "qlam_plugin";
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

/// Names and re-exports the `export_providers!` macro needs. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::logbridge::install as set_log_sink;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };

    /// The symbol a library's root module loader is exported as
    /// (`abi_stable::library::ROOT_MODULE_LOADER_NAME`; a test keeps the two equal).
    pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Builds the root module of a plugin library. Called by the code `export_providers!`
/// generates, once, inside abi_stable's loader (which catches a panic here).
#[doc(hidden)]
pub fn __plugin_module(make: fn() -> Vec<Box<dyn ProviderFactory>>) -> PluginModRef {
    install_panic_hook();
    let boxes: Vec<FfiFactoryBox> = make()
        .into_iter()
        .enumerate()
        .map(|(i, f)| ffi_factory(f, &format!("#{}", i + 1)))
        .collect();
    let factories: &'static [FfiFactoryBox] = Box::leak(boxes.into_boxed_slice());
    PluginMod {
        api_version: RStr::from_str(API_VERSION),
        factories: RSlice::from_slice(factories),
    }
    .leak_into_prefix()
}

/// Inside a plugin library the standard library (and so the panic hook) is the plugin's own
/// copy. Replace the default hook, which prints to stderr, with one that records the message
/// and location for the error the adapter returns.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()));
            let text = format!(
                "{}{}",
                payload_text(info.payload()),
                location.unwrap_or_default()
            );
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    };
    // A panic message is written by the provider; keep it to one short line.
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    line
}

/// Runs `f`, turning a panic into an error of kind `Panic` that names `who` and the call.
fn guard<T>(
    who: &dyn fmt::Display,
    call: &str,
    f: impl FnOnce() -> Result<T>,
) -> RResult<T, FfiError> {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => {
            let detail = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| payload_text(payload.as_ref()));
            // Dropping a payload can itself panic; never let that escape.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            RResult::RErr(FfiError {
                kind: ErrorKind::Panic.code(),
                message: format!("{who} panicked in `{call}`: {detail}").into(),
            })
        }
    }
}

fn json_error(what: &str, e: serde_json::Error) -> Error {
    Error::other(format!("invalid {what} JSON at the plugin boundary: {e}"))
}

fn unsupported(who: &dyn fmt::Display, what: &str) -> Error {
    Error::unsupported(format!("{who} does not support {what}"))
}

// ---------------------------------------------------------------------------------------------
// Plugin edge: adapters from the Rust traits to the FFI traits

/// A provider type in messages: its name, or its position in the library's list when its
/// `name` panicked.
struct TypeLabel<'a>(&'a Result<String, String>);
impl fmt::Display for TypeLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(name) => write!(f, "provider type `{name}`"),
            Err(position) => write!(f, "provider type {position}"),
        }
    }
}

struct ProviderLabel<'a>(&'a str);
impl fmt::Display for ProviderLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider `{}`", self.0)
    }
}

/// Holds a value whose `Drop` runs inside `catch_unwind`: a panicking destructor in a provider
/// must not abort the host either.
struct DropGuard<T>(Option<T>);

impl<T> Drop for DropGuard<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(v)));
        }
    }
}

impl<T> DropGuard<T> {
    fn get(&self) -> &T {
        self.0.as_ref().expect("value present until drop")
    }
}

struct FactoryAdapter {
    inner: DropGuard<Box<dyn ProviderFactory>>,
    /// The type name for messages, read once; a factory whose `name` panics is labelled by
    /// its position instead.
    label: Result<String, String>,
}

fn ffi_factory(factory: Box<dyn ProviderFactory>, position: &str) -> FfiFactoryBox {
    let label = catch_unwind(AssertUnwindSafe(|| factory.name().to_owned()))
        .map_err(|_| position.to_owned());
    FfiFactory_TO::from_value(
        FactoryAdapter {
            inner: DropGuard(Some(factory)),
            label,
        },
        TD_Opaque,
    )
}

impl FfiFactory for FactoryAdapter {
    fn name(&self) -> RResult<RString, FfiError> {
        guard(&TypeLabel(&self.label), "name", || {
            Ok(self.inner.get().name().into())
        })
    }

    fn description(&self) -> RResult<RString, FfiError> {
        guard(&TypeLabel(&self.label), "description", || {
            Ok(self.inner.get().description().into())
        })
    }

    fn capabilities(&self) -> RResult<u32, FfiError> {
        guard(&TypeLabel(&self.label), "capabilities", || {
            Ok(self.inner.get().capabilities().bits())
        })
    }

    fn extra_info(&self, config_json: RStr<'_>) -> RResult<RString, FfiError> {
        guard(&TypeLabel(&self.label), "extra_info", || {
            let config: Value =
                serde_json::from_str(config_json.as_str()).map_err(|e| json_error("config", e))?;
            let info = self.inner.get().extra_info(&config)?;
            Ok(Value::Object(info).to_string().into())
        })
    }

    fn build(
        &self,
        request_json: RStr<'_>,
        services: FfiServicesBox,
    ) -> RResult<FfiProviderBox, FfiError> {
        guard(&TypeLabel(&self.label), "build", move || {
            let wire: BuildRequestWire = serde_json::from_str(request_json.as_str())
                .map_err(|e| json_error("build request", e))?;
            let services = HostServices::new(Arc::new(ServicesClient(services)));
            let name = wire.provider_name.clone();
            let provider = self.inner.get().build(BuildRequest {
                context_name: wire.context_name,
                provider_name: wire.provider_name,
                config: wire.config,
                services,
            })?;
            Ok(FfiProvider_TO::from_value(
                ProviderAdapter {
                    inner: DropGuard(Some(provider)),
                    name,
                },
                TD_Opaque,
            ))
        })
    }
}

struct ProviderAdapter {
    inner: DropGuard<Box<dyn Provider>>,
    name: String,
}

impl ProviderAdapter {
    fn call<T>(
        &self,
        call: &str,
        f: impl FnOnce(&dyn Provider) -> Result<T>,
    ) -> RResult<T, FfiError> {
        guard(&ProviderLabel(&self.name), call, || {
            f(self.inner.get().as_ref())
        })
    }
}

impl FfiProvider for ProviderAdapter {
    fn description(&self) -> RResult<RString, FfiError> {
        self.call("description", |p| Ok(p.description().into()))
    }

    fn capabilities(&self) -> RResult<u32, FfiError> {
        self.call("capabilities", |p| Ok(p.capabilities().bits()))
    }

    fn is_authenticated(&self) -> RResult<bool, FfiError> {
        self.call("is_authenticated", |p| Ok(p.is_authenticated()))
    }

    fn auth_context(&self) -> RResult<RString, FfiError> {
        self.call("auth_context", |p| {
            Ok(Value::Object(p.auth_context()?).to_string().into())
        })
    }

    fn credential(&self) -> RResult<ROption<RString>, FfiError> {
        self.call("credential", |p| {
            Ok(match p.credential()? {
                Some(c) => ROption::RSome(
                    serde_json::to_string(&c)
                        .map_err(|e| json_error("credential", e))?
                        .into(),
                ),
                None => ROption::RNone,
            })
        })
    }

    fn headers(&self) -> RResult<FfiHeaders, FfiError> {
        self.call("headers", |p| {
            let h = p
                .http_headers()
                .ok_or_else(|| unsupported(&ProviderLabel(&self.name), "HTTP headers"))?
                .headers()?;
            Ok(FfiHeaders {
                headers: h
                    .headers
                    .into_iter()
                    .map(|(k, v)| Tuple2(RString::from(k), RString::from(v.into_inner())))
                    .collect(),
                cache: h.cache.into(),
            })
        })
    }

    fn token(&self) -> RResult<FfiToken, FfiError> {
        self.call("token", |p| {
            let t = p
                .token_source()
                .ok_or_else(|| unsupported(&ProviderLabel(&self.name), "tokens"))?
                .token()?;
            Ok(FfiToken {
                token: t.token.into_inner().into(),
                cache: t.cache.into(),
            })
        })
    }

    fn login(&self, options_json: RStr<'_>) -> RResult<(), FfiError> {
        self.call("login", |p| {
            let options: LoginOptions = serde_json::from_str(options_json.as_str())
                .map_err(|e| json_error("login options", e))?;
            p.login_logout()
                .ok_or_else(|| unsupported(&ProviderLabel(&self.name), "login"))?
                .login(&options)
        })
    }

    fn logout(&self) -> RResult<RString, FfiError> {
        self.call("logout", |p| {
            let report = p
                .login_logout()
                .ok_or_else(|| unsupported(&ProviderLabel(&self.name), "logout"))?
                .logout()?;
            Ok(serde_json::to_string(&report)
                .map_err(|e| json_error("logout report", e))?
                .into())
        })
    }

    fn can_refresh(&self) -> RResult<bool, FfiError> {
        self.call("can_refresh", |p| {
            Ok(p.refresher().is_some_and(|r| r.can_refresh()))
        })
    }

    fn refresh(&self, force: bool) -> RResult<bool, FfiError> {
        self.call("refresh", |p| {
            p.refresher()
                .ok_or_else(|| unsupported(&ProviderLabel(&self.name), "refresh"))?
                .refresh(force)
        })
    }
}

/// The plugin's view of the host services: converts calls to FFI.
struct ServicesClient(FfiServicesBox);

impl ServicesBackend for ServicesClient {
    fn secret_load(&self, key: &str) -> Result<Option<Secret<String>>> {
        match self.0.secret_load(key.into()).into_result() {
            Ok(v) => Ok(v.into_option().map(|s| Secret::new(s.into_string()))),
            Err(e) => Err(e.into()),
        }
    }

    fn secret_store(&self, key: &str, value: &Secret<String>) -> Result<()> {
        self.0
            .secret_store(key.into(), value.expose().as_str().into())
            .into_result()
            .map_err(Into::into)
    }

    fn secret_delete(&self, key: &str) -> Result<()> {
        self.0
            .secret_delete(key.into())
            .into_result()
            .map_err(Into::into)
    }

    fn interact(&self, request: &Interaction) -> Result<InteractionReply> {
        let json = serde_json::to_string(request).map_err(|e| json_error("interaction", e))?;
        let reply = self
            .0
            .interact(json.as_str().into())
            .into_result()
            .map_err(Error::from)?;
        serde_json::from_str(reply.as_str()).map_err(|e| json_error("interaction reply", e))
    }

    fn is_interactive(&self) -> bool {
        self.0.is_interactive()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.0.log(level.code(), message.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Host edge

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
            inner: Box::leak(Box::new(ffi_factory(factory, "(in-process)"))),
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

    /// Builds a provider.
    pub fn build(
        &self,
        context_name: &str,
        provider_name: &str,
        config: &Value,
        services: Arc<dyn ServicesBackend>,
    ) -> Result<ProviderHandle> {
        let wire = BuildRequestWire {
            context_name: context_name.to_owned(),
            provider_name: provider_name.to_owned(),
            config: config.clone(),
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
    let header = lib_header_from_path(load_path).map_err(|e| {
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
    let version = header.version_strings().to_string();
    let module = header.init_root_module::<PluginModRef>().map_err(|e| {
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
        set_log_sink: optional_symbol(load_path, LOG_SINK_SYMBOL),
    })
}

/// An optional `extern "C" fn(FfiLogSink)` the loaded library at `load_path` exports.
fn optional_symbol(load_path: &Path, name: &str) -> Option<extern "C" fn(FfiLogSink)> {
    // The library is loaded (and never unloaded): this only takes another reference to it,
    // dropped at the end, and runs no initialiser.
    let lib = abi_stable::library::RawLibrary::load_at(load_path).ok()?;
    let mut symbol = name.as_bytes().to_vec();
    symbol.push(0);
    // SAFETY: the symbol, where a library exports it, is the function `export_providers!`
    // defines with exactly this signature.
    let f = unsafe { lib.get::<extern "C" fn(FfiLogSink)>(&symbol) }.ok()?;
    Some(*f)
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
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            __private::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

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
