//! The plain Rust traits a provider author implements.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Credential, HostServices, Result, Secret};

/// How long the host may reuse a `headers()` or `token()` answer (as in cargo's credential
/// protocol). See "Answers the host keeps" in the [crate documentation](crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheControl {
    /// Ask the provider every time.
    Never,
    /// Reuse for the rest of this process (in memory; never written anywhere).
    Session,
    /// Reuse until this time (UTC). After it the host asks again, and first refreshes when
    /// the provider can. A provider with a refresh margin reports `expires_at - margin`, so
    /// that the refresh happens before the credential really expires.
    ///
    /// The host **writes such an answer to disk** (with its `file` credential store, the
    /// default): the token, or the headers with their secret values, in the user's private
    /// store. Until this time other processes (`qlam auth token`, the git, docker and cargo
    /// helpers) are answered from there without loading the plugin, so the provider cannot
    /// withdraw the answer before then, except by a `login`, `logout` or `refresh`.
    Until(DateTime<Utc>),
}

/// An answer to `headers()`: header names and values, and how long they may be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// `(name, value)` pairs, in order. Values are secret (they carry the credential).
    pub headers: Vec<(String, Secret<String>)>,
    /// How long the answer may be reused.
    pub cache: CacheControl,
}

/// An answer to `token()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The access token.
    pub token: Secret<String>,
    /// How long the answer may be reused.
    pub cache: CacheControl,
}

/// What `login()` is asked to do. Fields are options the user gave on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginOptions {
    /// The flow the user asked for (`browser`, `device`, …); none means the provider chooses.
    pub flow: Option<String>,
    /// Do not try to open a browser: show the URL instead.
    pub no_browser: bool,
}

/// What `logout()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogoutReport {
    /// Things that went wrong but did not stop the logout (for example a failed revocation);
    /// local state is deleted regardless.
    pub warnings: Vec<String>,
}

/// The optional capabilities of a provider (the mixins of the Python original).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// `headers()`.
    pub headers: bool,
    /// `login()` and `logout()`.
    pub login: bool,
    /// `token()`.
    pub token: bool,
    /// `can_refresh()` and `refresh()`.
    pub refresh: bool,
}

impl Capabilities {
    /// Packs into bits for the plugin boundary.
    pub fn bits(self) -> u32 {
        (self.headers as u32)
            | (self.login as u32) << 1
            | (self.token as u32) << 2
            | (self.refresh as u32) << 3
    }

    /// Unpacks from bits; unknown bits from a newer plugin are ignored.
    pub fn from_bits(bits: u32) -> Self {
        Capabilities {
            headers: bits & 1 != 0,
            login: bits & 2 != 0,
            token: bits & 4 != 0,
            refresh: bits & 8 != 0,
        }
    }

    /// The names of the capabilities that are present: `headers`, `login`, `token`, `refresh`.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.headers, "headers"),
            (self.login, "login"),
            (self.token, "token"),
            (self.refresh, "refresh"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

/// A built provider: the core every provider has, and accessors for the optional
/// capabilities (return `Some(self)` for each one you implement).
///
/// Every method takes `&self` and may be called from several threads: keep mutable state
/// behind a `Mutex`. The host serialises `login`, `logout` and `refresh` for one provider,
/// but `headers()` and `token()` run concurrently.
pub trait Provider: Send + Sync + 'static {
    /// A human-readable description, for help and UIs.
    fn description(&self) -> String;

    /// Whether there are usable credentials. Cheap: never does network I/O.
    fn is_authenticated(&self) -> bool;

    /// A JSON object describing state and metadata for clients.
    fn auth_context(&self) -> Result<Map<String, Value>>;

    /// The credential model, possibly with a non-authenticated status to convey metadata;
    /// `None` only when there is no data at all.
    fn credential(&self) -> Result<Option<Credential>>;

    /// The HTTP-headers capability.
    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        None
    }

    /// The login/logout capability.
    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        None
    }

    /// The token capability.
    fn token_source(&self) -> Option<&dyn TokenSource> {
        None
    }

    /// The refresh capability.
    fn refresher(&self) -> Option<&dyn Refresh> {
        None
    }

    /// Which capabilities this provider has, from the accessors above.
    ///
    /// This, not [`ProviderFactory::capabilities`], is what the host acts on: it reads it once,
    /// right after `build`, and refuses a capability missing here without calling the provider.
    /// Override it only to agree with the accessors.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: self.http_headers().is_some(),
            login: self.login_logout().is_some(),
            token: self.token_source().is_some(),
            refresh: self.refresher().is_some(),
        }
    }
}

/// Makes HTTP headers for a request.
pub trait HttpHeaders {
    /// The headers to add to a request, and how long they may be reused.
    fn headers(&self) -> Result<Headers>;
}

/// Interactive login and logout. Both do nothing by default, like the Python library's
/// `LoginLogoutMixin`: implement the one your provider needs (a provider whose credentials
/// come from elsewhere may only forget a cache at logout).
pub trait LoginLogout {
    /// Logs in, asking the user through the host's interaction service where needed.
    /// Default: nothing to do.
    fn login(&self, options: &LoginOptions) -> Result<()> {
        let _ = options;
        Ok(())
    }

    /// Forgets local credentials (and revokes them where the server supports it). Local state
    /// is deleted even when revocation fails; report that as a warning. Default: nothing to
    /// forget.
    fn logout(&self) -> Result<LogoutReport> {
        Ok(LogoutReport::default())
    }
}

/// Gives an access token.
pub trait TokenSource {
    /// The access token and how long it may be reused.
    fn token(&self) -> Result<Token>;
}

/// Non-interactive refresh.
pub trait Refresh {
    /// Whether the credentials can be refreshed without the user, right now.
    fn can_refresh(&self) -> bool;

    /// Refreshes (always when `force`, else only when needed). Returns whether new credentials
    /// were obtained.
    fn refresh(&self, force: bool) -> Result<bool>;
}

/// What a factory gets to build a provider.
#[derive(Clone)]
pub struct BuildRequest {
    /// The configuration context the provider belongs to.
    pub context_name: String,
    /// The provider's name in that context (unique within it).
    pub provider_name: String,
    /// The provider's configuration: every key of its `auth_providers` entry except `name`
    /// and `provider`, as a JSON object. Resolve file paths in it with
    /// [`HostServices::resolve_path`]: a relative path means the configuration file's folder
    /// (as in a kubeconfig), not the directory the command happens to run in.
    pub config: Value,
    /// The host's services: secret store, interaction, logging.
    pub services: HostServices,
}

/// A provider type: named in configuration (`provider = "token"`), builds providers.
pub trait ProviderFactory: Send + Sync + 'static {
    /// The type name used in configuration, for example `token` or `acme-sso`.
    fn name(&self) -> &str;

    /// A description of the provider type.
    fn description(&self) -> String;

    /// The capabilities providers of this type can have: the union of what [`build`] may
    /// return.
    ///
    /// Descriptive only: `qlam plugins inspect` and the host's registry show it before any
    /// provider exists. What the host calls is decided by each built provider's
    /// [`Provider::capabilities`] (its accessors).
    ///
    /// [`build`]: ProviderFactory::build
    fn capabilities(&self) -> Capabilities;

    /// Builds a provider from its configuration. Validate the configuration here and return a
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) error that names the bad
    /// key. Do no network I/O.
    fn build(&self, request: BuildRequest) -> Result<Box<dyn Provider>>;

    /// Display-only facts derived from the configuration (for example an issuer or a client
    /// id). Never secrets.
    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let _ = config;
        Ok(Map::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_and_logout_do_nothing_unless_implemented() {
        struct Cached;
        impl LoginLogout for Cached {}
        let c = Cached;
        assert!(c.login(&LoginOptions::default()).is_ok());
        assert_eq!(c.logout().unwrap(), LogoutReport::default());
    }
}
