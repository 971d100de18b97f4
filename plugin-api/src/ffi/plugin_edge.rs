//! The plugin edge: adapters from the plain Rust traits a provider implements to the FFI
//! traits, generated into every plugin library by `export_providers!`. Always built: a host's
//! in-process factories use it too.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Once};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, Tuple2};
use serde_json::Value;

use super::{
    guard, json_error, payload_text, BuildRequestWire, FfiError, FfiFactory, FfiFactoryBox,
    FfiFactory_TO, FfiHeaders, FfiProvider, FfiProviderBox, FfiProvider_TO, FfiServicesBox,
    FfiToken, PluginMod, PluginModRef, API_VERSION, LAST_PANIC,
};
use crate::{
    BuildRequest, Error, HostServices, Interaction, InteractionReply, LogLevel, LoginOptions,
    Provider, ProviderFactory, Result, Secret, ServicesBackend,
};

/// Builds the root module of a plugin library. Called by the code `export_providers!`
/// generates, once, inside abi_stable's loader (which catches a panic here).
#[doc(hidden)]
pub fn __plugin_module(make: fn() -> Vec<Box<dyn ProviderFactory>>) -> PluginModRef {
    install_panic_hook();
    let boxes: Vec<FfiFactoryBox> = make()
        .into_iter()
        .enumerate()
        .map(|(i, f)| ffi_factory(f, Some(i + 1)))
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

fn unsupported(who: &dyn fmt::Display, what: &str) -> Error {
    Error::unsupported(format!("{who} does not support {what}"))
}

/// A provider type in messages: its name, or its position in the library's list when its
/// `name` panicked (`None`: registered in process, not from a list).
struct TypeLabel<'a>(&'a Result<String, Option<usize>>);
impl fmt::Display for TypeLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(name) => write!(f, "provider type `{name}`"),
            Err(Some(position)) => write!(f, "provider type #{position}"),
            Err(None) => write!(f, "provider type (in-process)"),
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
    /// its position instead. (The position is formatted only then: formatting it for every
    /// library at discovery touched two more pages of each library's code.)
    label: Result<String, Option<usize>>,
}

pub(super) fn ffi_factory(
    factory: Box<dyn ProviderFactory>,
    position: Option<usize>,
) -> FfiFactoryBox {
    let label = catch_unwind(AssertUnwindSafe(|| factory.name().to_owned())).map_err(|_| position);
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
            let services = HostServices::new(Arc::new(ServicesClient(services)))
                .with_config_dir(wire.config_dir);
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
