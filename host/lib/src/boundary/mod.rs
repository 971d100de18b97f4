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
pub(crate) mod isolated;
mod ops;
pub(crate) mod validate;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use qlam_plugin_api::ffi::{FactoryHandle, ProviderHandle};
use qlam_plugin_api::{
    Capabilities, Credential, ErrorKind as ProviderErrorKind, Headers, LoginOptions, LogoutReport,
    ServicesBackend, Token,
};

use ops::{Op, Reply};
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

/// How a call into a provider failed, before the host words it.
pub(crate) enum Failure {
    /// The provider answered with an error.
    Provider(qlam_plugin_api::Error),
    /// An isolated provider's process ended during the call: how (`signal 11, SIGSEGV`).
    Crashed(String),
    /// An isolated provider's process answered something that is not the protocol.
    Garbled(String),
    /// An isolated provider's process did not answer by the deadline (it was killed).
    TimedOut,
}

impl From<qlam_plugin_api::Error> for Failure {
    fn from(e: qlam_plugin_api::Error) -> Self {
        Failure::Provider(e)
    }
}

impl Callee {
    /// Runs `f` (code of this process's plugins) on a worker thread with a deadline and
    /// turns its failure into a host error.
    fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        limit: Duration,
        f: impl FnOnce() -> std::result::Result<T, Failure> + Send + 'static,
    ) -> std::result::Result<T, CallError> {
        let _in_call = exit_watch::InCall::new(self.to_string(), call);
        match deadline::run(limit, deadline::Wait::Spin, f) {
            Some(r) => self.outcome(call, limit, r),
            None => Err(self.timed_out(call, limit)),
        }
    }

    /// Runs `f` (a call into a child process, which keeps the deadline it is given itself)
    /// on this thread and turns its failure into a host error.
    fn call_isolated<T>(
        &self,
        call: &'static str,
        limit: Duration,
        f: impl FnOnce(Instant) -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, CallError> {
        let r = f(Instant::now() + limit);
        self.outcome(call, limit, r)
    }

    fn outcome<T>(
        &self,
        call: &str,
        limit: Duration,
        r: std::result::Result<T, Failure>,
    ) -> std::result::Result<T, CallError> {
        match r {
            Ok(v) => Ok(v),
            Err(Failure::TimedOut) => Err(self.timed_out(call, limit)),
            Err(e) => Err(CallError::Failed(self.error(call, e))),
        }
    }

    fn timed_out(&self, call: &str, limit: Duration) -> CallError {
        CallError::TimedOut(Error::new(
            ErrorKind::Timeout,
            format!("{self} did not answer `{call}` within {}", secs(limit)),
        ))
    }

    /// A failure as the host shows it: a panic without its message (which goes to the debug
    /// log, redacted), any other message with its control characters escaped.
    fn error(&self, call: &str, e: Failure) -> Error {
        match e {
            Failure::Provider(e) if e.kind() == ProviderErrorKind::Panic => {
                tracing::debug!(
                    "{}",
                    validate::escape(&crate::plugins::log::redact(e.message()))
                );
                Error::new(
                    ErrorKind::Provider(ProviderErrorKind::Panic),
                    format!("{self} panicked in `{call}` (run with -v to see its message)"),
                )
            }
            Failure::Provider(e) => Error::new(
                ErrorKind::Provider(e.kind()),
                validate::escape(e.message()).into_owned(),
            ),
            Failure::Crashed(how) => Error::new(
                ErrorKind::Crashed,
                format!("{self} crashed in `{call}` ({how})"),
            ),
            Failure::Garbled(why) => Error::new(
                ErrorKind::InvalidAnswer,
                format!("{self} gave an answer qlam cannot read to `{call}`: {why}"),
            ),
            Failure::TimedOut => Error::new(
                ErrorKind::Timeout,
                format!("{self} did not answer `{call}` in time"),
            ),
        }
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

/// Where a built provider runs.
enum Backend {
    /// In this process, through the plugin ABI.
    InProcess(Arc<ProviderHandle>),
    /// In a child process that loaded its library (`isolation = "process"`).
    Isolated(Arc<isolated::RemoteProvider>),
}

/// A built provider as the rest of the host uses it: calls bounded in time, answers checked.
pub(crate) struct BoundProvider {
    callee: Callee,
    backend: Backend,
    capabilities: Capabilities,
    limits: Limits,
    /// The call that missed its deadline. An in-process provider is not called again: its
    /// stuck thread may hold locks that the next call would wait on for ever. (An isolated
    /// one's process is killed instead, and the next call starts a new one.)
    stuck: OnceLock<(&'static str, Duration)>,
}

impl BoundProvider {
    /// What it can do (read once, at build).
    pub(crate) fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn call(&self, op: Op) -> Result<Reply> {
        let call = op.name();
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
        let result = match &self.backend {
            Backend::InProcess(handle) => {
                let handle = handle.clone();
                self.callee
                    .call(call, limit, move || op.run(&handle).map_err(Failure::from))
            }
            Backend::Isolated(remote) => self
                .callee
                .call_isolated(call, limit, |deadline| remote.call(op, deadline)),
        };
        result.map_err(|e| {
            if let (CallError::TimedOut(_), Backend::InProcess(_)) = (&e, &self.backend) {
                let _ = self.stuck.set((call, limit));
            }
            e.into()
        })
    }

    /// A reply of the wrong kind: only a child process that lies can send one.
    fn unexpected(&self, call: &str) -> Error {
        self.callee
            .invalid(call, "an answer of the wrong kind".into())
    }

    pub(crate) fn description(&self) -> Result<String> {
        match self.call(Op::Description)? {
            Reply::Text(d) => Ok(validate::escape(&d).into_owned()),
            _ => Err(self.unexpected("description")),
        }
    }

    fn boolean(&self, op: Op) -> Result<bool> {
        let call = op.name();
        match self.call(op)? {
            Reply::Bool(b) => Ok(b),
            _ => Err(self.unexpected(call)),
        }
    }

    pub(crate) fn is_authenticated(&self) -> Result<bool> {
        self.boolean(Op::IsAuthenticated)
    }

    pub(crate) fn auth_context(&self) -> Result<Map<String, Value>> {
        match self.call(Op::AuthContext)? {
            Reply::Object(m) => Ok(validate::escape_object(m)),
            _ => Err(self.unexpected("auth_context")),
        }
    }

    pub(crate) fn credential(&self) -> Result<Option<Credential>> {
        let Reply::Credential(c) = self.call(Op::Credential)? else {
            return Err(self.unexpected("credential"));
        };
        if let Some(c) = &c {
            validate::credential(c).map_err(|why| self.callee.invalid("credential", why))?;
        }
        Ok(c)
    }

    pub(crate) fn headers(&self) -> Result<Headers> {
        let Reply::Headers(h) = self.call(Op::Headers)? else {
            return Err(self.unexpected("headers"));
        };
        let h = Headers::from(h);
        validate::headers(&h).map_err(|why| self.callee.invalid("headers", why))?;
        Ok(h)
    }

    pub(crate) fn token(&self) -> Result<Token> {
        let Reply::Token(t) = self.call(Op::Token)? else {
            return Err(self.unexpected("token"));
        };
        let t = Token::from(t);
        validate::token(&t).map_err(|why| self.callee.invalid("token", why))?;
        Ok(t)
    }

    pub(crate) fn login(&self, options: &LoginOptions) -> Result<()> {
        match self.call(Op::Login(options.clone()))? {
            Reply::Done => Ok(()),
            _ => Err(self.unexpected("login")),
        }
    }

    pub(crate) fn logout(&self) -> Result<LogoutReport> {
        let Reply::Logout(mut report) = self.call(Op::Logout)? else {
            return Err(self.unexpected("logout"));
        };
        for w in &mut report.warnings {
            *w = validate::escape(w).into_owned();
        }
        Ok(report)
    }

    pub(crate) fn can_refresh(&self) -> Result<bool> {
        self.boolean(Op::CanRefresh)
    }

    pub(crate) fn refresh(&self, force: bool) -> Result<bool> {
        self.boolean(Op::Refresh { force })
    }
}

/// A provider type's factory: in this process, or in the child process of an isolated
/// library.
#[derive(Clone)]
pub(crate) enum FactoryRef {
    InProcess(FactoryHandle),
    Isolated(Arc<isolated::IsolatedLibrary>),
}

/// A provider type's factory, bound to its name for messages.
#[derive(Clone)]
pub(crate) struct BoundFactory<'a> {
    pub factory: FactoryRef,
    pub type_name: &'a str,
}

impl BoundFactory<'_> {
    fn callee(&self) -> Callee {
        Callee::Type(self.type_name.to_owned())
    }

    /// Builds provider `provider_name` of context `context_name`, configured by `config` in
    /// the configuration file whose folder is `config_dir`.
    pub(crate) fn build(
        &self,
        context_name: &str,
        provider_name: &str,
        config: &Value,
        config_dir: Option<&std::path::Path>,
        services: Arc<dyn ServicesBackend>,
        limits: Limits,
    ) -> Result<BoundProvider> {
        let request = isolated::BuildRequest {
            type_name: self.type_name.to_owned(),
            context: context_name.to_owned(),
            provider: provider_name.to_owned(),
            config: config.clone(),
            config_dir: config_dir.map(ToOwned::to_owned),
        };
        let (backend, capabilities) = match &self.factory {
            FactoryRef::InProcess(factory) => {
                let factory = *factory;
                let handle = self.callee().call("build", limits.call, move || {
                    factory
                        .build(
                            &request.context,
                            &request.provider,
                            &request.config,
                            request.config_dir.as_deref(),
                            services,
                        )
                        .map_err(Failure::from)
                })?;
                let capabilities = handle.capabilities();
                (Backend::InProcess(Arc::new(handle)), capabilities)
            }
            FactoryRef::Isolated(library) => {
                let remote = self
                    .callee()
                    .call_isolated("build", limits.call, |deadline| {
                        isolated::RemoteProvider::build(
                            library.clone(),
                            request,
                            services,
                            deadline,
                        )
                    })?;
                let capabilities = remote.capabilities();
                (Backend::Isolated(Arc::new(remote)), capabilities)
            }
        };
        Ok(BoundProvider {
            callee: Callee::Provider(provider_name.to_owned()),
            backend,
            capabilities,
            limits,
            stuck: OnceLock::new(),
        })
    }

    /// Display-only facts from a provider's configuration, escaped.
    pub(crate) fn extra_info(&self, config: &Value, limit: Duration) -> Result<Map<String, Value>> {
        let config = config.clone();
        let info = match &self.factory {
            FactoryRef::InProcess(factory) => {
                let factory = *factory;
                self.callee().call("extra_info", limit, move || {
                    factory.extra_info(&config).map_err(Failure::from)
                })?
            }
            FactoryRef::Isolated(library) => {
                self.callee()
                    .call_isolated("extra_info", limit, |deadline| {
                        library.extra_info(self.type_name, &config, deadline)
                    })?
            }
        };
        Ok(validate::escape_object(info))
    }

    /// The description (escaped) and capabilities of an in-process factory, for the
    /// registry (an isolated library's process describes its types when it starts).
    pub(crate) fn describe(
        factory: FactoryHandle,
        type_name: &str,
        limit: Duration,
    ) -> Result<(String, Capabilities)> {
        let callee = Callee::Type(type_name.to_owned());
        let description = callee.call("description", limit, move || {
            factory.description().map_err(Failure::from)
        })?;
        let capabilities = callee.call("capabilities", limit, move || {
            factory.capabilities().map_err(Failure::from)
        })?;
        Ok((validate::escape(&description).into_owned(), capabilities))
    }
}

/// A provider type's failure while its library was being loaded (its `name`, `description`
/// or `capabilities` panicked or failed), as the registry reports it: without a panic's
/// message. The plugin's adapter labels the type (`provider type `x``, or by position
/// `provider type #3` when its name is unknown) and the call; both are kept, escaped.
pub(crate) fn registration_error(e: &qlam_plugin_api::Error) -> String {
    if e.kind() != ProviderErrorKind::Panic {
        return validate::escape(e.message()).into_owned();
    }
    tracing::debug!(
        "{}",
        validate::escape(&crate::plugins::log::redact(e.message()))
    );
    let labelled = e
        .message()
        .split_once(" panicked in `")
        .and_then(|(who, rest)| {
            let call = rest.split_once('`')?.0;
            let plain = |s: &str| s.len() <= 80 && s.chars().all(|c| !c.is_control());
            (who.starts_with("provider type ") && plain(who) && plain(call)).then_some((who, call))
        });
    match labelled {
        Some((who, call)) => {
            format!("{who} panicked in `{call}` (run with -v to see its message)")
        }
        None => "a provider type panicked while being registered (run with -v to see its message)"
            .into(),
    }
}

/// Loads a plugin library (which runs its code) with a deadline; `None` when it missed it.
pub(crate) fn loading<T: Send + 'static>(
    path: &std::path::Path,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _in_call = exit_watch::InCall::new(loading_who(path), "loading");
    deadline::run(limit, deadline::Wait::Sleep, f)
}

/// [`loading`] for a list of libraries, one after the other on one thread
/// ([`deadline::Each`]): each within `limit` of the one before.
pub(crate) struct LoadingEach<T>(deadline::Each<std::path::PathBuf, T>);

impl<T: Send + 'static> LoadingEach<T> {
    /// `one_cpu`: see [`deadline::Each`].
    pub(crate) fn start(
        paths: Vec<std::path::PathBuf>,
        limit: Duration,
        one_cpu: bool,
        f: impl Fn(&std::path::Path) -> T + Send + Sync + 'static,
    ) -> LoadingEach<T> {
        LoadingEach(deadline::Each::start(paths, limit, one_cpu, move |path| {
            let _in_call = exit_watch::InCall::new(loading_who(path), "loading");
            f(path)
        }))
    }

    /// The library whose answer comes next.
    pub(crate) fn peek(&self) -> Option<&std::path::Path> {
        self.0.peek().map(|p| p.as_path())
    }

    /// The next library and its answer, `None` when it missed its deadline.
    pub(crate) fn next_answer(&mut self) -> Option<(std::path::PathBuf, Option<T>)> {
        let (path, answer) = self.0.next_answer()?;
        if answer.is_none() {
            // Its thread still holds its mark: an exit() from it now is no longer a call of
            // ours, as with `loading`.
            exit_watch::forget(&loading_who(&path));
        }
        Some((path, answer))
    }
}

impl<T> Drop for LoadingEach<T> {
    fn drop(&mut self) {
        // Left unasked (the caller loaded them another way, or not at all): whatever the
        // thread is still loading is not a call of ours when the process exits.
        for path in self.0.stop() {
            exit_watch::forget(&loading_who(path));
        }
    }
}

fn loading_who(path: &std::path::Path) -> String {
    format!("plugin `{}`", path.display())
}

/// `30 s`, `1.5 s`: a deadline in messages.
pub(crate) fn show_duration(d: Duration) -> String {
    secs(d)
}
