//! The plugin boundary: every `StableAbi` type of qlam, and the two edges that convert between
//! them and the plain Rust API.
//!
//! - The **plugin edge** (`ffi/plugin_edge.rs`, always built):
//!   [`export_providers!`](crate::export_providers) wraps each [`ProviderFactory`] in an
//!   adapter that implements [`FfiFactory`], and each built [`Provider`] in one that implements
//!   [`FfiProvider`]. Every call goes through `catch_unwind`: a panic becomes an error of kind
//!   [`ErrorKind::Panic`] naming the provider, because abi_stable aborts the process on a panic
//!   that reaches its FFI glue.
//! - The **host edge** (`ffi/host_edge.rs`, feature `host`, which only a host enables):
//!   `load_library` opens a library with `lib_header_from_path(p)?.init_root_module()` (never
//!   `RootModule::load_from_file`, which returns the first library loaded for every later
//!   path), and `FactoryHandle` / `ProviderHandle` turn FFI answers back into plain Rust.
//!   In-process factories (`FactoryHandle::in_process`) go through the plugin edge's adapter,
//!   so there is one code path.
//!
//! The types, trait objects and the root module are declared here, in this module, and only
//! here: abi_stable's layout check compares them, module path included, with those of every
//! plugin already built. The edges are submodules whose items are re-exported from here.
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

use abi_stable::library::RootModule;
use abi_stable::sabi_trait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::{declare_root_module_statics, StableAbi};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CacheControl, Error, ErrorKind, Result};
// Named in the documentation below.
#[cfg(doc)]
use crate::{
    Capabilities, Credential, Headers, Interaction, InteractionReply, LogLevel, LoginOptions,
    LogoutReport, Provider, ProviderFactory, ServicesBackend, Token,
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
    /// The configuration file's folder (since 0.1.2; older libraries ignore it, older hosts
    /// leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<std::path::PathBuf>,
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

/// The optional function a plugin library exports with the interface fingerprint it was
/// built with (`extern "C" fn() -> *const c_char`, a NUL-terminated hex string; since
/// qlam-plugin-api 0.1.2): a hash of the qlam-plugin-api source it was compiled from. A host
/// checks the interface layout of the first library with a fingerprint in full and takes the
/// result for every other library with the same one (cold discovery of many plugins is
/// otherwise mostly layout checking). Libraries without it are always checked in full.
pub const INTERFACE_SYMBOL: &str = "qlam_plugin_interface_v1";

/// This crate's interface fingerprint (see [`INTERFACE_SYMBOL`]).
pub const INTERFACE_FINGERPRINT: &str = env!("QLAM_PLUGIN_INTERFACE");

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

    /// [`INTERFACE_FINGERPRINT`](super::INTERFACE_FINGERPRINT) as a C string, for
    /// `export_providers!`.
    pub const INTERFACE_C: &str = concat!(env!("QLAM_PLUGIN_INTERFACE"), "\0");

    /// The symbol a library's root module loader is exported as
    /// (`abi_stable::library::ROOT_MODULE_LOADER_NAME`; a test keeps the two equal).
    pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
}

mod plugin_edge;
#[doc(hidden)]
pub use plugin_edge::__plugin_module;

#[cfg(feature = "host")]
mod host_edge;
#[cfg(feature = "host")]
#[cfg_attr(docsrs, doc(cfg(feature = "host")))]
pub use host_edge::{
    compatible_range, load_library, load_library_from, FactoryHandle, LoadError, LoadErrorKind,
    LoadedLibrary, ProviderHandle,
};

// ---------------------------------------------------------------------------------------------
// What both edges use: the call guard

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
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
}
