//! [`AuthClient`]: the programmatic API, with the semantics of the Python original.
//!
//! With a provider named, failures are typed errors. With none, the call is best effort over
//! all providers that support it and returns one [`Outcome`] per provider, failing only for
//! configuration or usage errors.

#[cfg(feature = "async")]
pub(crate) mod asynch;
mod builder;
#[cfg(feature = "reqwest")]
pub mod middleware;

pub use builder::AuthClientBuilder;
use builder::{find_qlam_executable, SearchInputs};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use chrono::Utc;
use qlam_plugin_api::{
    CacheControl, Capabilities, Credential, ErrorKind as ProviderErrorKind, Headers, LoginOptions,
    ProviderFactory, Token,
};
use serde_json::{Map, Value};

use crate::boundary::{BoundFactory, BoundProvider, Limits};
use crate::config::{Config, ContextConfig, HostRoute, ProviderConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::plugins::{search_path, PluginDir, Registry};
use crate::services::{NonInteractive, ProviderServices, UserInteraction};
use crate::store::{FileStore, Secrets, StoreKind};

/// The extra margin the host adds before a `CacheControl::Until` time when none is
/// configured. Providers subtract their own refresh margin (for OAuth, `refresh_margin_secs`)
/// from the time they report, so the host adds nothing by default.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::ZERO;

/// The result of a best-effort operation on one provider.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The provider.
    pub provider: String,
    /// `Ok(true)` when done (for refresh: when new credentials were obtained).
    pub result: Result<bool>,
    /// Problems that did not stop the operation (for example a failed revocation).
    pub warnings: Vec<String>,
}

/// A problem `validate_all_contexts` found.
#[derive(Debug, Clone)]
pub struct ConfigProblem {
    /// The context.
    pub context: String,
    /// The provider.
    pub provider: String,
    /// What is wrong (naming the file and line).
    pub message: String,
    /// The error, for its kind and exit code.
    pub error: Error,
}

/// The status of a configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// It has usable credentials.
    Authenticated,
    /// It is configured and loadable, without usable credentials.
    Available,
    /// It cannot be used; the message says why.
    Error(String),
    /// It did not answer within its deadline (`call_timeout_secs`); the message says which
    /// call.
    Timeout(String),
}

impl ProviderStatus {
    /// `authenticated`, `available` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderStatus::Authenticated => "authenticated",
            ProviderStatus::Available => "available",
            ProviderStatus::Error(_) => "error",
            ProviderStatus::Timeout(_) => "timeout",
        }
    }
}

impl std::fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderStatus::Error(m) => write!(f, "error: {m}"),
            ProviderStatus::Timeout(m) => write!(f, "timeout: {m}"),
            s => f.write_str(s.as_str()),
        }
    }
}

/// One row of [`AuthClient::list_providers`].
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// The provider's name.
    pub name: String,
    /// Its type.
    pub provider_type: String,
    /// Its status.
    pub status: ProviderStatus,
    /// Its description.
    pub description: String,
    /// What it can do (empty when its type is unknown).
    pub capabilities: Capabilities,
    /// Display-only facts from its configuration.
    pub extra_info: Map<String, Value>,
    /// Where its credentials are kept: `file` or `keyring`.
    pub store: &'static str,
}

struct Slot {
    name: String,
    provider: BoundProvider,
    /// Serialises login, logout and refresh of this provider within the process.
    op_lock: Mutex<()>,
    /// The last reusable answers. Reads take no lock (the hot path of `headers()` and
    /// `token()` scales across threads).
    headers: ArcSwapOption<Headers>,
    token: ArcSwapOption<Token>,
}

impl Slot {
    fn forget_answers(&self) {
        self.headers.store(None);
        self.token.store(None);
    }
}

/// The programmatic API: log in and out, list providers, get headers and tokens.
pub struct AuthClient {
    /// Runs isolated providers' libraries, when the builder or `$QLAM_EXE` named one.
    isolation_exe: Option<PathBuf>,
    config: Config,
    context: Option<ContextConfig>,
    search: SearchInputs,
    search_path: OnceLock<Vec<PluginDir>>,
    plugin_index: Option<PathBuf>,
    /// [`AuthClientBuilder::load_plugins_on_one_cpu`].
    loading_on_one_cpu: bool,
    pending_factories: Mutex<Option<Vec<Box<dyn ProviderFactory>>>>,
    registry: OnceLock<Registry>,
    secrets: Arc<Secrets>,
    interaction: Arc<dyn UserInteraction>,
    /// One cell per configured provider, created with the client; a provider is built on
    /// first use. The map never changes, so finding a built provider takes no lock.
    slots: HashMap<String, OnceLock<Arc<Slot>>>,
    skew: chrono::Duration,
    lock_timeout: Duration,
}

impl AuthClient {
    /// A builder.
    pub fn builder() -> AuthClientBuilder {
        AuthClientBuilder::default()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The selected context, when there is one.
    pub fn context(&self) -> Option<&ContextConfig> {
        self.context.as_ref()
    }

    /// The plugin search path.
    pub fn search_path(&self) -> &[PluginDir] {
        self.search_path.get_or_init(|| {
            let s = &self.search;
            search_path(&s.flags, s.env_path.as_deref(), &s.context_dirs, s.defaults)
        })
    }

    /// The file credential store (also where the lock files live, whatever the backend).
    pub fn store(&self) -> &FileStore {
        &self.secrets.file
    }

    /// The credential store in use: `file` or `keyring` (`auto` until first used).
    pub fn store_name(&self) -> &'static str {
        self.secrets.name()
    }

    /// The registry; plugins are loaded the first time this is called.
    pub fn registry(&self) -> &Registry {
        self.registry.get_or_init(|| {
            let mut registry = match &self.plugin_index {
                Some(p) => Registry::with_index(p.clone()),
                None => Registry::new(),
            };
            self.configure(&mut registry);
            let pending = self
                .pending_factories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            for f in pending.unwrap_or_default() {
                if let Err(e) = registry.register_factory(f) {
                    tracing::warn!("{}", e.message());
                }
            }
            registry.load_dirs(self.search_path());
            registry.save_index();
            registry
        })
    }

    /// An empty registry, without the plugin index, that loads libraries under this
    /// client's rules (trust policy, pins, load deadline): for looking at single files.
    pub fn new_registry(&self) -> Registry {
        let mut registry = Registry::new();
        self.configure(&mut registry);
        registry
    }

    fn configure(&self, registry: &mut Registry) {
        registry.set_loading_on_one_cpu(self.loading_on_one_cpu);
        registry.set_trust(crate::plugins::trust::TrustPolicy {
            allow_symlinks: self.config.allow_symlink_plugins,
            pins: self.config.trusted_plugins.clone(),
            require_pinned: self.config.require_pinned_plugins,
        });
        if let Some(t) = self.config.call_timeout {
            registry.set_load_timeout(t);
        }
        registry.set_isolation(crate::plugins::IsolationRules {
            exe: self.isolation_exe.clone().or_else(find_qlam_executable),
            libraries: self.config.isolated_plugins.clone(),
            default_process: self.config.default_isolation
                == Some(crate::plugins::Isolation::Process),
            some_provider: self.context.iter().any(|c| {
                c.auth_providers
                    .iter()
                    .any(|p| p.isolation == Some(crate::plugins::Isolation::Process))
            }),
        });
    }

    /// The names of the providers of the selected context, in file order.
    pub fn provider_names(&self) -> Vec<String> {
        self.context
            .iter()
            .flat_map(|c| c.auth_providers.iter().map(|p| p.name.clone()))
            .collect()
    }

    /// The configuration file's folder: providers resolve relative paths in their settings
    /// against it.
    fn config_dir(&self) -> Option<&Path> {
        self.config.path.as_deref().and_then(Path::parent)
    }

    fn where_(&self, p: &ProviderConfig) -> String {
        match &self.config.path {
            Some(path) => format!("`{}` line {}", path.display(), p.line),
            None => format!("line {}", p.line),
        }
    }

    fn provider_config(&self, name: &str) -> Result<&ProviderConfig> {
        let Some(ctx) = &self.context else {
            return Err(Error::usage(match &self.config.path {
                Some(p) if p.exists() => format!("no provider `{name}`: `{}` defines no context", p.display()),
                Some(p) => format!(
                    "no provider `{name}`: there is no config file at `{}`; create one or pass `--config FILE`",
                    p.display()
                ),
                None => format!("no provider `{name}`: no configuration"),
            }));
        };
        ctx.auth_providers.iter().find(|p| p.name == name).ok_or_else(|| {
            Error::usage(format!(
                "no provider `{name}` in context `{}`; `qlam auth status` lists the configured ones",
                ctx.name
            ))
        })
    }

    fn slot(&self, name: &str) -> Result<&Arc<Slot>> {
        let Some(cell) = self.slots.get(name) else {
            return Err(self
                .provider_config(name)
                .expect_err("every configured provider has a cell"));
        };
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let pc = self.provider_config(name)?;
        let ptype = self.registry().get(&pc.provider_type).ok_or_else(|| {
            Error::plugin(format!(
                "provider `{name}` ({}) has type `{}`, which no loaded plugin provides; `qlam plugins list` shows what was found",
                self.where_(pc),
                pc.provider_type
            ))
        })?;
        let ctx = self
            .context
            .as_ref()
            .expect("provider_config found a context");
        let services = Arc::new(ProviderServices {
            context: ctx.name.clone(),
            provider: name.to_owned(),
            store: self.secrets.clone(),
            interaction: self.interaction.clone(),
        });
        let place = || format!("provider `{name}` ({})", self.where_(pc));
        let factory = BoundFactory {
            factory: ptype
                .factory_ref(pc.isolation)
                .map_err(|e| e.context(place()))?,
            type_name: &pc.provider_type,
        };
        let provider = factory
            .build(
                &ctx.name,
                name,
                &pc.config,
                self.config_dir(),
                services,
                self.limits(pc),
            )
            .map_err(|e| e.context(place()))?;
        let slot = Arc::new(Slot {
            name: name.to_owned(),
            provider,
            op_lock: Mutex::new(()),
            headers: ArcSwapOption::empty(),
            token: ArcSwapOption::empty(),
        });
        // Two threads may build at once; the first to finish wins, the other's is dropped.
        let _ = cell.set(slot);
        Ok(cell.get().expect("set above"))
    }

    /// The deadlines of a provider's calls: its `call_timeout_secs`, else the top-level one,
    /// else 30 s; a login gets its flow's `login_timeout_secs` (else 300 s) on top.
    fn limits(&self, pc: &ProviderConfig) -> Limits {
        let call = pc
            .call_timeout
            .or(self.config.call_timeout)
            .unwrap_or(crate::boundary::DEFAULT_CALL_TIMEOUT);
        let flow = pc
            .config
            .get("login_timeout_secs")
            .and_then(Value::as_u64)
            .map(|s| Duration::from_secs(s.min(86_400)))
            .unwrap_or(crate::boundary::DEFAULT_LOGIN_TIMEOUT);
        Limits {
            call,
            login: flow + call,
        }
    }

    fn require(&self, name: &str, has: bool, what: &str) -> Result<()> {
        if has {
            return Ok(());
        }
        let ptype = self
            .provider_config(name)
            .map(|p| p.provider_type.clone())
            .unwrap_or_default();
        Err(Error::new(
            ErrorKind::Provider(ProviderErrorKind::Unsupported),
            format!("provider `{name}` (type `{ptype}`) does not support {what}"),
        ))
    }

    /// Runs `op` over one provider (typed errors) or over every provider that `applies`
    /// (best effort).
    fn one_or_all(
        &self,
        provider: Option<&str>,
        applies: impl Fn(Capabilities) -> bool,
        what: &str,
        op: impl Fn(&str, &Slot) -> Result<(bool, Vec<String>)>,
    ) -> Result<Vec<Outcome>> {
        if let Some(name) = provider {
            let slot = self.slot(name)?;
            self.require(name, applies(slot.provider.capabilities()), what)?;
            let (ok, warnings) = op(name, slot)?;
            return Ok(vec![Outcome {
                provider: name.to_owned(),
                result: Ok(ok),
                warnings,
            }]);
        }
        let mut out = Vec::new();
        for name in self.provider_names() {
            let slot = match self.slot(&name) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::Usage => return Err(e),
                Err(e) => {
                    out.push(Outcome {
                        provider: name,
                        result: Err(e),
                        warnings: Vec::new(),
                    });
                    continue;
                }
            };
            if !applies(slot.provider.capabilities()) {
                continue;
            }
            let (result, warnings) = match op(&name, slot) {
                Ok((ok, w)) => (Ok(ok), w),
                Err(e) => (Err(e), Vec::new()),
            };
            out.push(Outcome {
                provider: name,
                result,
                warnings,
            });
        }
        Ok(out)
    }

    /// Runs a state-changing operation of one provider exclusively: one at a time in this
    /// process (threads queue on the provider's mutex, and each then finds the state the
    /// previous one left), and one at a time across processes (the entry's lock file, waited
    /// on for at most the lock timeout). Remembered answers are dropped before and after.
    /// `f` learns whether another process held the lock when we asked.
    fn exclusive<T>(
        &self,
        slot: &Slot,
        operation: &str,
        f: impl FnOnce(bool) -> Result<T>,
    ) -> Result<T> {
        let _op = slot.op_lock.lock().unwrap_or_else(|p| p.into_inner());
        let file_lock = match (&self.context, crate::failpoint::locks_disabled()) {
            (Some(ctx), false) => Some(crate::store::lock::acquire(
                &crate::store::lock::lock_path(
                    &self.secrets.file.entry_path(&ctx.name, &slot.name),
                ),
                operation,
                &slot.name,
                self.lock_timeout,
            )?),
            _ => None,
        };
        let forget = || self.drop_answers(&slot.name, Some(slot));
        forget();
        let r = f(file_lock.as_ref().is_some_and(|l| l.contended));
        forget();
        r
    }

    /// Forgets the reusable answers of `provider`, in this process and on disk, so that the
    /// next `headers()` or `token()` asks the provider again: for when a server rejected a
    /// credential qlam gave out. Loads no plugin.
    pub fn forget_answers(&self, provider: &str) -> Result<()> {
        self.provider_config(provider)?;
        let slot = self.slots.get(provider).and_then(|c| c.get());
        self.drop_answers(provider, slot.map(|s| &**s));
        Ok(())
    }

    /// Drops the reusable answers of provider `name`: the slot's (when it is built) and the
    /// answer file's.
    fn drop_answers(&self, name: &str, slot: Option<&Slot>) {
        if let Some(slot) = slot {
            slot.forget_answers();
        }
        if let Some((path, _)) = self.answer_file(name) {
            crate::store::answers::drop_all(&path);
        }
    }

    /// After a server rejected `provider`'s credential: forgets the reusable answers and,
    /// where the provider can refresh, refreshes now (forced), so the next answer is new.
    /// Answers whether it refreshed. Never logs out.
    pub fn renew(&self, provider: &str) -> Result<bool> {
        self.forget_answers(provider)?;
        let slot = self.slot(provider)?;
        let caps = slot.provider.capabilities();
        if caps.refresh && slot.provider.can_refresh().unwrap_or(false) {
            self.refresh_slot(slot, true)
        } else {
            Ok(false)
        }
    }

    /// Logs in to one provider, or to every provider that supports login.
    ///
    /// When another process is logging in to the same provider, this waits for it (at most
    /// the lock timeout) and, if that login succeeded, uses it instead of starting a second
    /// one: two concurrent `qlam auth login` never open two browsers or two device codes.
    pub fn login(&self, provider: Option<&str>, options: &LoginOptions) -> Result<Vec<Outcome>> {
        self.one_or_all(provider, |c| c.login, "login", |name, slot| {
            // Find out where the credentials will go before asking the user anything.
            self.secrets.backend()?;
            self.exclusive(slot, "login", |waited| {
                if waited && slot.provider.is_authenticated().unwrap_or(false) {
                    return Ok((
                        true,
                        vec![format!("another qlam process logged in to `{name}` meanwhile; using its login")],
                    ));
                }
                slot.provider.login(options).map(|()| (true, Vec::new()))
            })
        })
    }

    /// Logs out of one provider, or of every provider that supports logout.
    pub fn logout(&self, provider: Option<&str>) -> Result<Vec<Outcome>> {
        self.one_or_all(
            provider,
            |c| c.login,
            "logout",
            |_, slot| {
                self.exclusive(slot, "logout", |_| {
                    slot.provider.logout().map(|report| (true, report.warnings))
                })
            },
        )
    }

    /// Refreshes one provider's credentials non-interactively, or every refreshable
    /// provider's. `Ok(true)` in an outcome means new credentials were obtained.
    pub fn refresh_credentials(&self, provider: Option<&str>, force: bool) -> Result<Vec<Outcome>> {
        self.one_or_all(
            provider,
            |c| c.refresh,
            "refresh",
            |_, slot| self.refresh_slot(slot, force).map(|r| (r, Vec::new())),
        )
    }

    /// The provider re-reads its stored state once it holds the lock, so a process that
    /// waited finds the tokens the winner stored and sends no request of its own.
    fn refresh_slot(&self, slot: &Slot, force: bool) -> Result<bool> {
        self.exclusive(slot, "refresh", |_| slot.provider.refresh(force))
    }

    /// Whether one provider (or, with none, any provider) is authenticated. Provider errors
    /// count as "no"; an unknown provider name is an error.
    pub fn is_authenticated(&self, provider: Option<&str>) -> Result<bool> {
        match provider {
            Some(name) => {
                self.provider_config(name)?;
                Ok(self
                    .slot(name)
                    .ok()
                    .and_then(|s| s.provider.is_authenticated().ok())
                    .unwrap_or(false))
            }
            None => Ok(self.provider_names().iter().any(|n| {
                self.slot(n)
                    .ok()
                    .and_then(|s| s.provider.is_authenticated().ok())
                    .unwrap_or(false)
            })),
        }
    }

    /// The provider's credential model; `None` when it has no data at all.
    pub fn get_credential(&self, provider: &str) -> Result<Option<Credential>> {
        self.slot(provider)?.provider.credential()
    }

    /// The provider's auth context (a JSON object).
    pub fn auth_context(&self, provider: &str) -> Result<Map<String, Value>> {
        self.slot(provider)?.provider.auth_context()
    }

    /// A provider type's display facts about one configured provider (empty when its type is
    /// unknown or the call fails; the failure is logged).
    fn extra_info(&self, pc: &ProviderConfig) -> Map<String, Value> {
        let limits = self.limits(pc);
        self.registry()
            .get(&pc.provider_type)
            .and_then(|t| {
                let factory = BoundFactory {
                    factory: t.factory_ref(pc.isolation).ok()?,
                    type_name: &t.name,
                };
                factory
                    .extra_info(&pc.config, limits.call)
                    .map_err(|e| tracing::warn!("{}", e.message()))
                    .ok()
            })
            .unwrap_or_default()
    }

    /// Which provider answers a credential helper (git, docker, cargo) for `host` and `path`:
    /// the context's most specific `hosts` route, else the first provider that claims the host
    /// itself (the `helper_hosts` list of its extra info: the OAuth provider's `github` and
    /// `gitlab` presets claim their site). Claims are read only when no route matches.
    pub fn helper_route(&self, host: &str, path: Option<&str>) -> Option<HostRoute> {
        let ctx = self.context.as_ref()?;
        if let Some(r) = ctx.route(host, path) {
            return Some(r.clone());
        }
        ctx.auth_providers
            .iter()
            .find(|pc| {
                self.extra_info(pc)
                    .get("helper_hosts")
                    .and_then(Value::as_array)
                    .is_some_and(|hosts| {
                        hosts
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|h| h.eq_ignore_ascii_case(host))
                    })
            })
            .map(|pc| HostRoute {
                pattern: host.to_owned(),
                provider: pc.name.clone(),
                username: None,
            })
    }

    /// The user name a helper sends with `provider`'s token when nothing else names one: the
    /// provider's `helper_username` (its auth context: GitHub's account login, GitLab's
    /// `oauth2`), if it is a plain name.
    pub fn helper_username(&self, provider: &str) -> Option<String> {
        let context = self.auth_context(provider).ok()?;
        let name = context.get("helper_username")?.as_str()?;
        let plain = !name.is_empty()
            && name.len() <= 256
            && !name
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
        plain.then(|| name.to_owned())
    }

    /// Lists the providers of the selected context with their status.
    pub fn list_providers(&self) -> Result<Vec<ProviderInfo>> {
        let Some(ctx) = &self.context else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for pc in &ctx.auth_providers {
            let ptype = self.registry().get(&pc.provider_type);
            let extra_info = self.extra_info(pc);
            let mut description = ptype
                .map(|t| t.description.clone())
                .unwrap_or_else(|| format!("{} authentication", pc.provider_type));
            let mut capabilities = Capabilities::default();
            let failed = |e: Error| match e.kind() {
                ErrorKind::Timeout => ProviderStatus::Timeout(e.message().to_owned()),
                _ => ProviderStatus::Error(e.message().to_owned()),
            };
            let status = match self.slot(&pc.name) {
                Err(e) => failed(e),
                Ok(slot) => {
                    capabilities = slot.provider.capabilities();
                    match slot.provider.description() {
                        Ok(d) => description = d,
                        Err(e) => tracing::warn!("{}", e.message()),
                    }
                    match slot.provider.is_authenticated() {
                        Ok(true) => ProviderStatus::Authenticated,
                        Ok(false) => ProviderStatus::Available,
                        Err(e) => failed(e),
                    }
                }
            };
            out.push(ProviderInfo {
                name: pc.name.clone(),
                provider_type: pc.provider_type.clone(),
                status,
                description,
                capabilities,
                extra_info,
                store: self.secrets.name(),
            });
        }
        Ok(out)
    }

    /// Checks every provider of every context: its type is provided by a plugin (searching
    /// every context's `plugin_dirs`) and its configuration is accepted by the provider.
    /// Builds providers without using them: no network, no prompts, no store writes.
    pub fn validate_all_contexts(&self) -> Vec<ConfigProblem> {
        let mut registry = self.new_registry();
        let s = &self.search;
        registry.load_dirs(&search_path(
            &s.flags,
            s.env_path.as_deref(),
            &s.all_context_dirs,
            s.defaults,
        ));
        let mut problems = Vec::new();
        for ctx in &self.config.contexts {
            for pc in &ctx.auth_providers {
                let result = match registry.get(&pc.provider_type) {
                    None => Err(Error::plugin(format!(
                        "provider `{}` in context `{}` ({}) has type `{}`, which no plugin provides",
                        pc.name,
                        ctx.name,
                        self.where_(pc),
                        pc.provider_type
                    ))),
                    Some(t) => {
                        let services = Arc::new(ProviderServices {
                            context: ctx.name.clone(),
                            provider: pc.name.clone(),
                            store: self.secrets.clone(),
                            interaction: Arc::new(NonInteractive),
                        });
                        let place = format!("provider `{}` in context `{}` ({})", pc.name, ctx.name, self.where_(pc));
                        t.factory_ref(pc.isolation).map_err(|e| e.context(&place)).and_then(|factory| {
                            BoundFactory { factory, type_name: &t.name }
                                .build(&ctx.name, &pc.name, &pc.config, self.config_dir(), services, self.limits(pc))
                                .map(drop)
                                .map_err(|e| e.context(&place))
                        })
                    }
                };
                if let Err(error) = result {
                    problems.push(ConfigProblem {
                        context: ctx.name.clone(),
                        provider: pc.name.clone(),
                        message: error.message().to_owned(),
                        error,
                    });
                }
            }
        }
        problems
    }

    /// HTTP headers for a request. A reusable answer is served from memory; one whose
    /// `Until` time has passed is asked for again, after a refresh when the provider can.
    pub fn headers(&self, provider: &str) -> Result<Headers> {
        let slot = self.slot(provider)?;
        self.require(
            provider,
            slot.provider.capabilities().headers,
            "HTTP headers",
        )?;
        self.answer(
            slot,
            &slot.headers,
            BoundProvider::headers,
            |h| h.cache,
            crate::store::answers::save_headers,
        )
    }

    /// The headers of `provider` if this client holds a reusable answer: no provider call,
    /// no plugin loaded, no lock (what an async caller can use without leaving its thread).
    pub fn reusable_headers(&self, provider: &str) -> Option<Headers> {
        let slot = self.slots.get(provider)?.get()?;
        self.reusable(&slot.headers, |h| h.cache)
    }

    /// The token of `provider` if this client holds a reusable answer (see
    /// [`AuthClient::reusable_headers`]).
    pub fn reusable_token(&self, provider: &str) -> Option<Token> {
        let slot = self.slots.get(provider)?.get()?;
        self.reusable(&slot.token, |t| t.cache)
    }

    fn reusable<T: Clone>(
        &self,
        memo: &ArcSwapOption<T>,
        cache: fn(&T) -> CacheControl,
    ) -> Option<T> {
        let v = memo.load_full()?;
        match cache(&v) {
            CacheControl::Session => Some((*v).clone()),
            CacheControl::Until(t) if t - self.skew > Utc::now() => Some((*v).clone()),
            _ => None,
        }
    }

    /// The access token, with the same reuse and refresh rules as [`AuthClient::headers`].
    pub fn token(&self, provider: &str) -> Result<Token> {
        let slot = self.slot(provider)?;
        self.require(provider, slot.provider.capabilities().token, "tokens")?;
        self.answer(
            slot,
            &slot.token,
            BoundProvider::token,
            |t| t.cache,
            crate::store::answers::save_token,
        )
    }

    fn answer<T: Clone>(
        &self,
        slot: &Slot,
        memo: &ArcSwapOption<T>,
        get: fn(&BoundProvider) -> Result<T>,
        cache: fn(&T) -> CacheControl,
        persist: fn(&Path, &str, &T),
    ) -> Result<T> {
        let now = Utc::now();
        let fresh = |c: CacheControl| match c {
            CacheControl::Never => false,
            CacheControl::Session => true,
            CacheControl::Until(t) => t - self.skew > now,
        };
        if let Some(v) = memo.load().as_deref() {
            if fresh(cache(v)) {
                return Ok(v.clone());
            }
        }
        let first = get(&slot.provider);
        let stale = match &first {
            Ok(v) => matches!(cache(v), CacheControl::Until(t) if t - self.skew <= now),
            Err(e) => e.is_not_authenticated(),
        };
        let value = if stale
            && slot.provider.capabilities().refresh
            && slot.provider.can_refresh().unwrap_or(false)
        {
            tracing::debug!("answer expires within the refresh margin; refreshing first");
            self.refresh_slot(slot, false)?;
            get(&slot.provider)?
        } else {
            first?
        };
        if !matches!(cache(&value), CacheControl::Never) {
            memo.store(Some(Arc::new(value.clone())));
            if let Some((path, hash)) = self.answer_file(&slot.name) {
                persist(&path, &hash, &value);
            }
        }
        Ok(value)
    }

    /// The on-disk answer cache of a provider: only with the file store (a keyring user does
    /// not want tokens in files), keyed by a hash of the provider's type and configuration.
    fn answer_file(&self, name: &str) -> Option<(PathBuf, String)> {
        if self.secrets.kind() != StoreKind::File {
            return None;
        }
        let ctx = self.context.as_ref()?;
        let pc = ctx.auth_providers.iter().find(|p| p.name == name)?;
        Some((
            crate::store::answers::path(&self.secrets.file.entry_path(&ctx.name, name)),
            crate::store::answers::config_hash(&pc.provider_type, &pc.config),
        ))
    }

    /// Headers answered earlier (by any process) and still valid, read from the store alone:
    /// no plugin is loaded. `None` means "ask [`AuthClient::headers`]".
    pub fn cached_headers(&self, provider: &str) -> Option<Headers> {
        let (path, hash) = self.answer_file(provider)?;
        crate::store::answers::headers(&path, &hash, Utc::now() + self.skew)
    }

    /// A token answered earlier and still valid, from the store alone (see
    /// [`AuthClient::cached_headers`]).
    pub fn cached_token(&self, provider: &str) -> Option<Token> {
        let (path, hash) = self.answer_file(provider)?;
        crate::store::answers::token(&path, &hash, Utc::now() + self.skew)
    }
}
