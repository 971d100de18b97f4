//! The `oauth` provider's configuration: the keys of its `auth_providers` entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qlam_plugin_api::{Error, Result, Secret};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::presets::{self, Preset, Quirks};

/// Which grant `login` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// Browser when one can be opened, else device.
    Auto,
    /// Authorization code with PKCE through a loopback redirect (RFC 8252).
    Browser,
    /// Device authorization grant (RFC 8628).
    Device,
    /// Client credentials (confidential clients, no user).
    ClientCredentials,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Auto => "auto",
            Flow::Browser => "browser",
            Flow::Device => "device",
            Flow::ClientCredentials => "client_credentials",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    token_endpoint_auth_method: Option<AuthMethod>,
    private_key_file: Option<PathBuf>,
    private_key_id: Option<String>,
    certificate_file: Option<PathBuf>,
    scopes: Option<Vec<String>>,
    audience: Option<String>,
    #[serde(default)]
    extra_auth_params: BTreeMap<String, String>,
    #[serde(default = "default_flow")]
    flow: Flow,
    #[serde(default)]
    redirect_port: u16,
    #[serde(default = "default_redirect_path")]
    redirect_path: String,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_margin")]
    refresh_margin_secs: u64,
    #[serde(default = "default_login_timeout")]
    login_timeout_secs: u64,
    preset: Option<String>,
    host: Option<String>,
    tenant: Option<String>,
    authority_host: Option<String>,
    domain: Option<String>,
    realm: Option<String>,
    authorization_server: Option<String>,
}

fn default_flow() -> Flow {
    Flow::Auto
}
fn default_redirect_path() -> String {
    "/callback".into()
}
fn default_timeout() -> u64 {
    30
}
fn default_margin() -> u64 {
    60
}
fn default_login_timeout() -> u64 {
    300
}

/// Where the client secret comes from (read when needed, never stored in the config struct's
/// `Debug`).
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret<String>),
    Env(String),
    File(PathBuf),
}

/// How the client authenticates at the token endpoint (the names of OpenID Connect Dynamic
/// Client Registration's `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A signed JWT assertion (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
}

/// The key of `private_key_jwt`: a PEM file, the key id the server knows it by, and the
/// certificate whose thumbprint Entra ID wants in the assertion's header.
#[derive(Debug, Clone)]
pub struct AssertionKey {
    pub key_file: PathBuf,
    pub key_id: Option<String>,
    pub certificate_file: Option<PathBuf>,
}

impl OAuthConfig {
    /// The configuration with its file paths (`ca_file`, `client_secret_file`,
    /// `private_key_file`, `certificate_file`) as the host resolves them: relative to the
    /// configuration file's folder, `~` the home folder.
    pub fn with_paths_resolved(mut self, resolve: impl Fn(&Path) -> PathBuf) -> Self {
        if let Some(p) = &mut self.ca_file {
            *p = resolve(p);
        }
        if let Some(SecretSource::File(p)) = &mut self.client_secret {
            *p = resolve(p);
        }
        if let Some(k) = &mut self.assertion_key {
            k.key_file = resolve(&k.key_file);
            if let Some(c) = &mut k.certificate_file {
                *c = resolve(c);
            }
        }
        self
    }
}

/// Endpoints given explicitly (they override discovery).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: Option<Url>,
    pub token: Option<Url>,
    pub device_authorization: Option<Url>,
    pub revocation: Option<Url>,
    pub userinfo: Option<Url>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Exactly as configured: discovery's `issuer` must equal it to the byte (RFC 8414 §3.3).
    pub issuer: Option<String>,
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_secret: Option<SecretSource>,
    pub auth_method: AuthMethod,
    pub assertion_key: Option<AssertionKey>,
    pub scopes: Vec<String>,
    pub extra_auth_params: BTreeMap<String, String>,
    pub flow: Flow,
    pub redirect_port: u16,
    pub redirect_path: String,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
    pub refresh_margin_secs: u64,
    pub login_timeout_secs: u64,
    /// What a preset changes beyond endpoints (the default without one).
    pub quirks: Quirks,
}

/// Whether a URL's host is loopback (where plain http is allowed).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What a preset's service requires of a configuration, said before the first request fails
/// with a less helpful message from the server.
fn preset_rules(
    preset: Option<Preset>,
    flow: Flow,
    scopes: &[String],
    auth_method: &AuthMethod,
    has_audience: bool,
) -> Result<()> {
    let Some(preset) = preset else {
        return Ok(());
    };
    let problem = match preset {
        // Google rejects the scope (`invalid_scope`: "Some requested scopes were invalid.
        // {…invalid=[offline_access]}"); refresh tokens come with access_type=offline, which the
        // preset sends.
        Preset::Google if scopes.iter().any(|s| s == "offline_access") => {
            "Google does not know the `offline_access` scope (the preset asks for a refresh token with access_type=offline): remove it from `scopes`"
        }
        // Installed-app and TV clients get a client secret that Google requires with every
        // token request (for such clients it is not confidential).
        Preset::Google if *auth_method == AuthMethod::None => {
            "Google requires the client secret of desktop and TV clients with every token request: set `client_secret` (for these clients it is not confidential)"
        }
        // "Client Credentials Grant Requires 'audience' Parameter": without it Auth0 issues no
        // token for an API.
        Preset::Auth0 if flow == Flow::ClientCredentials && !has_audience => {
            "Auth0 issues client credentials tokens for an API: set `audience` to the API's identifier"
        }
        // The client credentials flow takes the resource's `/.default` scope
        // ("scenario-daemon-acquire-token").
        Preset::Entra
            if flow == Flow::ClientCredentials
                && !(scopes.len() == 1 && scopes[0].ends_with("/.default")) =>
        {
            "Microsoft Entra ID's client credentials flow takes one scope, `RESOURCE/.default` (for example `scopes = [\"https://graph.microsoft.com/.default\"]`)"
        }
        _ => return Ok(()),
    };
    Err(Error::configuration(problem))
}

/// The client authentication: as configured (checked against the credentials given), else
/// what the credentials imply.
fn client_auth_method(
    configured: Option<AuthMethod>,
    has_secret: bool,
    has_key: bool,
) -> Result<AuthMethod> {
    if has_secret && has_key {
        return Err(Error::configuration(
            "set a client secret or `private_key_file`, not both",
        ));
    }
    let method = configured.unwrap_or(if has_key {
        AuthMethod::PrivateKeyJwt
    } else if has_secret {
        AuthMethod::ClientSecretBasic
    } else {
        AuthMethod::None
    });
    let needs = match method {
        AuthMethod::None if has_secret || has_key => {
            "`token_endpoint_auth_method = \"none\"` sends no client credentials: remove the secret or key"
        }
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost if !has_secret => {
            "this `token_endpoint_auth_method` needs a client secret: set `client_secret_env` or `client_secret_file`"
        }
        AuthMethod::PrivateKeyJwt if !has_key => {
            "`token_endpoint_auth_method = \"private_key_jwt\"` needs `private_key_file` (a PEM private key)"
        }
        _ => return Ok(method),
    };
    Err(Error::configuration(needs))
}

/// Parses an endpoint URL and requires https, except on loopback hosts.
pub fn endpoint(key: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value)
        .map_err(|e| Error::configuration(format!("`{key}` is not a URL ({e}): `{value}`")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(Error::configuration(format!(
            "`{key}` must be an https URL (plain http only for loopback hosts): `{value}`"
        ))),
    }
}

impl OAuthConfig {
    pub fn parse(config: &Value) -> Result<OAuthConfig> {
        let mut raw: Raw = serde_json::from_value(config.clone())
            .map_err(|e| Error::configuration(format!("invalid oauth provider config: {e}")))?;
        let params = presets::Parameters {
            host: raw.host.take(),
            tenant: raw.tenant.take(),
            authority_host: raw.authority_host.take(),
            domain: raw.domain.take(),
            realm: raw.realm.take(),
            authorization_server: raw.authorization_server.take(),
        };
        let mut quirks = Quirks::default();
        let mut default_scopes = Vec::new();
        let mut preset_params = Vec::new();
        match raw.preset.as_deref() {
            Some(name) => {
                // Explicit keys win over what the preset derives.
                let d = presets::derive(name, &params)?;
                raw.issuer = raw.issuer.or(d.issuer);
                raw.authorization_endpoint =
                    raw.authorization_endpoint.or(d.authorization_endpoint);
                raw.token_endpoint = raw.token_endpoint.or(d.token_endpoint);
                raw.device_authorization_endpoint = raw
                    .device_authorization_endpoint
                    .or(d.device_authorization_endpoint);
                raw.userinfo_endpoint = raw.userinfo_endpoint.or(d.userinfo_endpoint);
                default_scopes = d.default_scopes;
                preset_params = d.extra_auth_params;
                quirks = d.quirks;
            }
            None => {
                if let Some(key) = params.given().first() {
                    return Err(Error::configuration(format!(
                        "`{key}` is a preset parameter; set `preset` too, or remove it"
                    )));
                }
            }
        }
        let opt =
            |key: &str, v: &Option<String>| v.as_deref().map(|s| endpoint(key, s)).transpose();
        let endpoints = Endpoints {
            authorization: opt("authorization_endpoint", &raw.authorization_endpoint)?,
            token: opt("token_endpoint", &raw.token_endpoint)?,
            device_authorization: opt(
                "device_authorization_endpoint",
                &raw.device_authorization_endpoint,
            )?,
            revocation: opt("revocation_endpoint", &raw.revocation_endpoint)?,
            userinfo: opt("userinfo_endpoint", &raw.userinfo_endpoint)?,
        };
        opt("issuer", &raw.issuer)?;
        let issuer = raw.issuer;
        if issuer.is_none() && endpoints.token.is_none() {
            return Err(Error::configuration(
                "set `issuer` (for discovery) or at least `token_endpoint`",
            ));
        }
        if raw.client_id.is_empty() {
            return Err(Error::configuration("`client_id` must not be empty"));
        }
        let secrets = [
            raw.client_secret.is_some(),
            raw.client_secret_env.is_some(),
            raw.client_secret_file.is_some(),
        ];
        if secrets.iter().filter(|s| **s).count() > 1 {
            return Err(Error::configuration(
                "set at most one of `client_secret`, `client_secret_env` and `client_secret_file`",
            ));
        }
        let client_secret = if let Some(s) = raw.client_secret {
            Some(SecretSource::Inline(Secret::new(s)))
        } else if let Some(v) = raw.client_secret_env {
            Some(SecretSource::Env(v))
        } else {
            raw.client_secret_file.map(SecretSource::File)
        };
        let assertion_key = raw.private_key_file.map(|key_file| AssertionKey {
            key_file,
            key_id: raw.private_key_id,
            certificate_file: raw.certificate_file,
        });
        let auth_method = client_auth_method(
            raw.token_endpoint_auth_method,
            client_secret.is_some(),
            assertion_key.is_some(),
        )?;
        if raw.flow == Flow::ClientCredentials && auth_method == AuthMethod::None {
            return Err(Error::configuration(
                "`flow = \"client_credentials\"` needs a confidential client: set `client_secret_env`, `client_secret_file` or `private_key_file`",
            ));
        }
        if !raw.redirect_path.starts_with('/') {
            return Err(Error::configuration("`redirect_path` must start with `/`"));
        }
        // A service identity asks for what it configures: user-flow defaults (openid,
        // offline_access…) mean nothing to a client credentials grant.
        let scopes = match raw.scopes {
            Some(s) => s,
            None if raw.flow == Flow::ClientCredentials => Vec::new(),
            None => default_scopes.iter().map(|s| s.to_string()).collect(),
        };
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(Error::configuration(format!(
                "scope `{bad}` is empty or contains whitespace"
            )));
        }
        preset_rules(
            quirks.preset,
            raw.flow,
            &scopes,
            &auth_method,
            raw.audience.is_some(),
        )?;
        let mut extra_auth_params = raw.extra_auth_params;
        for (k, v) in preset_params {
            extra_auth_params
                .entry(k.to_owned())
                .or_insert_with(|| v.to_owned());
        }
        if let Some(a) = raw.audience {
            extra_auth_params.insert("audience".into(), a);
        }
        for reserved in [
            "state",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "client_id",
            "response_type",
            "scope",
        ] {
            if extra_auth_params.contains_key(reserved) {
                return Err(Error::configuration(format!(
                    "`extra_auth_params` must not set `{reserved}`; qlam sets it"
                )));
            }
        }
        // Durations are used in date arithmetic: bound them so that no setting can overflow it.
        for (key, value, max) in [
            ("timeout_secs", raw.timeout_secs, 3600),
            ("refresh_margin_secs", raw.refresh_margin_secs, 86_400 * 365),
            ("login_timeout_secs", raw.login_timeout_secs, 86_400),
        ] {
            if value > max {
                return Err(Error::configuration(format!(
                    "`{key}` = {value} is too large (at most {max})"
                )));
            }
        }
        Ok(OAuthConfig {
            issuer,
            endpoints,
            client_id: raw.client_id,
            client_secret,
            auth_method,
            assertion_key,
            scopes,
            extra_auth_params,
            flow: raw.flow,
            redirect_port: raw.redirect_port,
            redirect_path: raw.redirect_path,
            ca_file: raw.ca_file,
            timeout_secs: raw.timeout_secs.max(1),
            refresh_margin_secs: raw.refresh_margin_secs,
            login_timeout_secs: raw.login_timeout_secs.max(1),
            quirks,
        })
    }

    /// Reads the client secret from its source.
    pub fn client_secret(&self) -> Result<Option<Secret<String>>> {
        Ok(match &self.client_secret {
            None => None,
            Some(SecretSource::Inline(s)) => Some(s.clone()),
            Some(SecretSource::Env(v)) => Some(Secret::new(std::env::var(v).map_err(|_| {
                Error::configuration(format!(
                    "`client_secret_env`: environment variable `{v}` is not set"
                ))
            })?)),
            Some(SecretSource::File(p)) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::configuration(format!(
                        "cannot read `client_secret_file` `{}`: {e}",
                        p.display()
                    ))
                })?;
                Some(Secret::new(text.trim().to_owned()))
            }
        })
    }

    /// The identity of the credentials this configuration asks for: tokens stored under a
    /// different identity (another issuer, client or scope set) are never used.
    pub fn identity(&self) -> String {
        let mut scopes = self.scopes.clone();
        scopes.sort();
        format!(
            "{}|{}|{}|{}",
            self.issuer.as_deref().unwrap_or(""),
            self.endpoints.token.as_ref().map(Url::as_str).unwrap_or(""),
            self.client_id,
            scopes.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        OAuthConfig::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn validation() {
        assert!(err(json!({"client_id": "c"})).contains("set `issuer`"));
        assert!(
            err(json!({"issuer": "http://login.example.com", "client_id": "c"}))
                .contains("must be an https URL")
        );
        assert!(
            err(json!({"issuer": "https://x", "client_id": "c", "clientid": "d"}))
                .contains("unknown field `clientid`")
        );
        assert!(err(
            json!({"issuer": "https://x", "client_id": "c", "flow": "client_credentials"})
        )
        .contains("confidential"));
        assert!(err(json!({"issuer": "https://x", "client_id": "c", "client_secret": "a", "client_secret_env": "B"})).contains("at most one"));
        assert!(
            err(json!({"issuer": "https://x", "client_id": "c", "flow": "magic"}))
                .contains("unknown variant `magic`")
        );
        assert!(err(
            json!({"issuer": "https://x", "client_id": "c", "extra_auth_params": {"state": "x"}})
        )
        .contains("must not set `state`"));
        // Found by fuzzing review: huge durations overflowed date arithmetic at first use.
        assert!(err(
            json!({"issuer": "https://x", "client_id": "c", "refresh_margin_secs": 100000000000000000u64})
        )
        .contains("`refresh_margin_secs` = 100000000000000000 is too large"));
        assert!(err(
            json!({"issuer": "https://x", "client_id": "c", "login_timeout_secs": u64::MAX})
        )
        .contains("`login_timeout_secs`"));
        let c = OAuthConfig::parse(
            &json!({"issuer": "http://127.0.0.1:8080", "client_id": "c", "audience": "api"}),
        )
        .unwrap();
        assert_eq!(
            c.extra_auth_params.get("audience").map(String::as_str),
            Some("api")
        );
        assert_eq!(c.flow, Flow::Auto);
        assert!(
            OAuthConfig::parse(&json!({"issuer": "http://[::1]:8080", "client_id": "c"})).is_ok()
        );
        assert!(
            OAuthConfig::parse(&json!({"issuer": "http://localhost:8080", "client_id": "c"}))
                .is_ok()
        );
    }

    #[test]
    fn identity_isolates_issuer_client_and_scopes() {
        let a = OAuthConfig::parse(
            &json!({"issuer": "https://a", "client_id": "c", "scopes": ["x", "y"]}),
        )
        .unwrap();
        let b = OAuthConfig::parse(
            &json!({"issuer": "https://a", "client_id": "c", "scopes": ["y", "x"]}),
        )
        .unwrap();
        let c =
            OAuthConfig::parse(&json!({"issuer": "https://a", "client_id": "c", "scopes": ["x"]}))
                .unwrap();
        let d = OAuthConfig::parse(
            &json!({"issuer": "https://b", "client_id": "c", "scopes": ["x", "y"]}),
        )
        .unwrap();
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
        assert_ne!(a.identity(), d.identity());
    }
}
