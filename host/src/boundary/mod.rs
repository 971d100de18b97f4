//! The boundary between the host and its providers. Every call into a provider — a built one
//! or a provider type's factory — goes through here, and nothing a provider answers is
//! trusted:
//!
//! - every call has a deadline ([`deadline`]); a provider that misses one is not called again
//!   by this process (its thread may still hold its locks);
//! - every answer is checked ([`validate`]) before the host caches, prints or forwards it;
//! - a panic is reported as ``provider `x` panicked in `call` ``: its message is the
//!   vendor's words and may hold anything, so it goes to the debug log only, redacted;
//! - a provider that calls `exit()` during a call does not pass for a success
//!   ([`exit_watch`]).

mod deadline;
mod exit_watch;
pub(crate) mod validate;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use qlam_plugin_api::ffi::{FactoryHandle, ProviderHandle};
use qlam_plugin_api::{
    Capabilities, Credential, ErrorKind as ProviderErrorKind, Headers, LoginOptions, LogoutReport,
    ServicesBackend, Token,
};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// The default deadline of a provider call (`call_timeout_secs`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a login may take when the provider's table has no `login_timeout_secs` (the
/// OAuth provider's default flow timeout); the call deadline is added to it.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The deadlines of one provider's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Every call but `login`.
    pub call: Duration,
    /// `login`: the flow's own timeout plus `call`.
    pub login: Duration,
}

/// Who is called, for messages: a configured provider or a provider type.
#[derive(Debug, Clone)]
enum Callee {
    Provider(String),
    Type(String),
}

impl std::fmt::Display for Callee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Callee::Provider(n) => write!(f, "provider `{n}`"),
            Callee::Type(t) => write!(f, "provider type `{t}`"),
        }
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

impl Callee {
    /// Runs `f` with a deadline and turns its failure into a host error.
    fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        limit: Duration,
        f: impl FnOnce() -> qlam_plugin_api::Result<T> + Send + 'static,
    ) -> std::result::Result<T, CallError> {
        let _in_call = exit_watch::InCall::new(self.to_string(), call);
        match deadline::run(limit, f) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(CallError::Failed(self.error(call, e))),
            None => Err(CallError::TimedOut(Error::new(
                ErrorKind::Timeout,
                format!("{self} did not answer `{call}` within {}", secs(limit)),
            ))),
        }
    }

    /// A provider's error as the host shows it: a panic without its message (which goes to
    /// the debug log, redacted), any other message with its control characters escaped.
    fn error(&self, call: &str, e: qlam_plugin_api::Error) -> Error {
        if e.kind() == ProviderErrorKind::Panic {
            tracing::debug!(
                "{}",
                validate::escape(&crate::plugin_log::redact(e.message()))
            );
            return Error::new(
                ErrorKind::Provider(ProviderErrorKind::Panic),
                format!("{self} panicked in `{call}` (run with -v to see its message)"),
            );
        }
        Error::new(
            ErrorKind::Provider(e.kind()),
            validate::escape(e.message()).into_owned(),
        )
    }

    fn invalid(&self, call: &str, why: String) -> Error {
        Error::new(
            ErrorKind::InvalidAnswer,
            format!("{self} gave an invalid answer to `{call}`: {why}"),
        )
    }
}

enum CallError {
    Failed(Error),
    TimedOut(Error),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Failed(e) | CallError::TimedOut(e) => e,
        }
    }
}

/// A built provider as the rest of the host uses it: calls bounded in time, answers checked.
pub(crate) struct BoundProvider {
    callee: Callee,
    handle: Arc<ProviderHandle>,
    limits: Limits,
    /// The call that missed its deadline. The provider is not called again: its stuck thread
    /// may hold locks that the next call would wait on for ever.
    stuck: OnceLock<(&'static str, Duration)>,
}

impl BoundProvider {
    /// What it can do (read once, at build).
    pub(crate) fn capabilities(&self) -> Capabilities {
        self.handle.capabilities()
    }

    fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        f: impl FnOnce(&ProviderHandle) -> qlam_plugin_api::Result<T> + Send + 'static,
    ) -> Result<T> {
        let limit = if call == "login" {
            self.limits.login
        } else {
            self.limits.call
        };
        if let Some((earlier, limit)) = self.stuck.get() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer `{earlier}` within {} and is not called again by this process",
                    self.callee,
                    secs(*limit)
                ),
            ));
        }
        let handle = self.handle.clone();
        self.callee
            .call(call, limit, move || f(&handle))
            .map_err(|e| {
                if let CallError::TimedOut(_) = e {
                    let _ = self.stuck.set((call, limit));
                }
                e.into()
            })
    }

    pub(crate) fn description(&self) -> Result<String> {
        self.call("description", ProviderHandle::description)
            .map(|d| validate::escape(&d).into_owned())
    }

    pub(crate) fn is_authenticated(&self) -> Result<bool> {
        self.call("is_authenticated", ProviderHandle::is_authenticated)
    }

    pub(crate) fn auth_context(&self) -> Result<Map<String, Value>> {
        self.call("auth_context", ProviderHandle::auth_context)
            .map(validate::escape_object)
    }

    pub(crate) fn credential(&self) -> Result<Option<Credential>> {
        let c = self.call("credential", ProviderHandle::credential)?;
        if let Some(c) = &c {
            validate::credential(c).map_err(|why| self.callee.invalid("credential", why))?;
        }
        Ok(c)
    }

    pub(crate) fn headers(&self) -> Result<Headers> {
        let h = self.call("headers", ProviderHandle::headers)?;
        validate::headers(&h).map_err(|why| self.callee.invalid("headers", why))?;
        Ok(h)
    }

    pub(crate) fn token(&self) -> Result<Token> {
        let t = self.call("token", ProviderHandle::token)?;
        validate::token(&t).map_err(|why| self.callee.invalid("token", why))?;
        Ok(t)
    }

    pub(crate) fn login(&self, options: &LoginOptions) -> Result<()> {
        let options = options.clone();
        self.call("login", move |p| p.login(&options))
    }

    pub(crate) fn logout(&self) -> Result<LogoutReport> {
        let mut report = self.call("logout", ProviderHandle::logout)?;
        for w in &mut report.warnings {
            *w = validate::escape(w).into_owned();
        }
        Ok(report)
    }

    pub(crate) fn can_refresh(&self) -> Result<bool> {
        self.call("can_refresh", ProviderHandle::can_refresh)
    }

    pub(crate) fn refresh(&self, force: bool) -> Result<bool> {
        self.call("refresh", move |p| p.refresh(force))
    }
}

/// A provider type's factory as the host calls it.
#[derive(Clone, Copy)]
pub(crate) struct BoundFactory<'a> {
    pub factory: FactoryHandle,
    pub type_name: &'a str,
}

impl BoundFactory<'_> {
    fn callee(&self) -> Callee {
        Callee::Type(self.type_name.to_owned())
    }

    /// Builds provider `provider_name` of context `context_name`.
    pub(crate) fn build(
        &self,
        context_name: &str,
        provider_name: &str,
        config: &Value,
        services: Arc<dyn ServicesBackend>,
        limits: Limits,
    ) -> Result<BoundProvider> {
        let (factory, ctx, name, config) = (
            self.factory,
            context_name.to_owned(),
            provider_name.to_owned(),
            config.clone(),
        );
        let handle = self.callee().call("build", limits.call, move || {
            factory.build(&ctx, &name, &config, services)
        })?;
        Ok(BoundProvider {
            callee: Callee::Provider(provider_name.to_owned()),
            handle: Arc::new(handle),
            limits,
            stuck: OnceLock::new(),
        })
    }

    /// Display-only facts from a provider's configuration, escaped.
    pub(crate) fn extra_info(&self, config: &Value, limit: Duration) -> Result<Map<String, Value>> {
        let (factory, config) = (self.factory, config.clone());
        let info = self
            .callee()
            .call("extra_info", limit, move || factory.extra_info(&config))?;
        Ok(validate::escape_object(info))
    }

    /// The description (escaped) and capabilities, for the registry.
    pub(crate) fn describe(&self, limit: Duration) -> Result<(String, Capabilities)> {
        let factory = self.factory;
        let description = self
            .callee()
            .call("description", limit, move || factory.description())?;
        let capabilities = self
            .callee()
            .call("capabilities", limit, move || factory.capabilities())?;
        Ok((validate::escape(&description).into_owned(), capabilities))
    }
}

/// A provider type's failure while its library was being loaded (its `name` panicked or
/// failed), as the registry reports it: without a panic's message. The loader labels a type
/// whose name is unknown by its position (`provider type #3`); that label is kept.
pub(crate) fn registration_error(e: &qlam_plugin_api::Error) -> String {
    if e.kind() != ProviderErrorKind::Panic {
        return validate::escape(e.message()).into_owned();
    }
    tracing::debug!(
        "{}",
        validate::escape(&crate::plugin_log::redact(e.message()))
    );
    let position = e
        .message()
        .strip_prefix("provider type #")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse::<u32>().ok());
    match position {
        Some(n) => {
            format!("provider type #{n} panicked in `name` (run with -v to see its message)")
        }
        None => "a provider type panicked in `name` (run with -v to see its message)".into(),
    }
}

/// Loads a plugin library (which runs its code) with a deadline; `None` when it missed it.
pub(crate) fn loading<T: Send + 'static>(
    path: &std::path::Path,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _in_call = exit_watch::InCall::new(format!("plugin `{}`", path.display()), "loading");
    deadline::run(limit, f)
}

/// `30 s`, `1.5 s`: a deadline in messages.
pub(crate) fn show_duration(d: Duration) -> String {
    secs(d)
}
