//! The `oauth` provider: OAuth 2.0 and OpenID Connect on the `oauth2` crate.
//!
//! Flows: authorization code with PKCE S256 through a loopback redirect (RFC 8252, RFC 7636,
//! RFC 9207's `iss` check), device authorization (RFC 8628), client credentials. Tokens are
//! kept in the host's secret store, refreshed with rotation, revoked at logout (RFC 7009).
//! Endpoints come from discovery (RFC 8414 / OpenID Connect Discovery, the document's `issuer`
//! must equal the configured one) or from the configuration.
//!
//! ```toml
//! [[contexts.dev.auth_providers]]
//! name = "corp-sso"
//! provider = "oauth"
//! issuer = "https://login.example.com"
//! client_id = "qlam-cli"
//! scopes = ["openid", "offline_access"]
//! ```

mod browser;
mod client_auth;
pub mod clock;
mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod id_token;
mod presets;
mod stored;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpRequest,
    HttpResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardErrorResponse, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use qlam_plugin_api::{
    export_providers, BuildRequest, CacheControl, Capabilities, Credential, CredentialDetails,
    CredentialStatus, Error, ErrorKind, Headers, HostServices, HttpHeaders, LogLevel, LoginLogout,
    LoginOptions, LogoutReport, OAuthCredential, Provider, ProviderFactory, Refresh, Result,
    Secret, Token, TokenSource,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{endpoint, AuthMethod, Flow, OAuthConfig};
use crate::http::{normalize_token_answer, to_error, Http, HttpError};
use crate::id_token::{Expected, Refused};
use crate::presets::{HelperUsername, IssuerRule};
use crate::stored::Stored;

/// The longest device-flow poll interval a server may ask for (RFC 8628 suggests 5 s).
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// The `id_token` of an OpenID Connect token response, kept secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenFields {
    #[serde(default)]
    id_token: Option<Secret<String>>,
}
impl ExtraTokenFields for IdTokenFields {}

type TokenResp = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type OClient<A = EndpointNotSet, D = EndpointNotSet, R = EndpointNotSet, T = EndpointNotSet> =
    Client<
        BasicErrorResponse,
        TokenResp,
        BasicTokenIntrospectionResponse,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
        A,
        D,
        EndpointNotSet,
        R,
        T,
    >;

/// The `oauth` provider type.
#[derive(Default)]
pub struct OAuthFactory {
    clock: Option<SharedClock>,
}

impl OAuthFactory {
    /// A factory whose providers use `clock` (tests move time without sleeping).
    pub fn with_clock(clock: SharedClock) -> Self {
        OAuthFactory { clock: Some(clock) }
    }
}

impl ProviderFactory for OAuthFactory {
    fn name(&self) -> &str {
        "oauth"
    }

    fn description(&self) -> String {
        "OAuth 2.0 / OpenID Connect (browser with PKCE, device code, client credentials)".into()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            token: true,
            refresh: true,
        }
    }

    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        let config =
            OAuthConfig::parse(&req.config)?.with_paths_resolved(|p| req.services.resolve_path(p));
        Ok(Box::new(OAuthProvider {
            name: req.provider_name,
            identity: config.identity(),
            config,
            services: req.services,
            clock: self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock)),
            http: OnceLock::new(),
            metadata: OnceLock::new(),
            jwks: std::sync::Mutex::new(None),
        }))
    }

    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let c = OAuthConfig::parse(config)?;
        let mut m = Map::new();
        if let Some(i) = &c.issuer {
            m.insert("issuer".into(), json!(i));
        } else if let Some(t) = &c.endpoints.token {
            m.insert("token_endpoint".into(), json!(t.as_str()));
        }
        m.insert("client_id".into(), json!(c.client_id));
        m.insert("flow".into(), json!(c.flow.as_str()));
        if let Some(p) = c.quirks.preset {
            m.insert("preset".into(), json!(p.key()));
        }
        // Hosts whose git (and other helper) credentials this provider answers without a
        // `hosts` route in the configuration.
        if !c.quirks.helper_hosts.is_empty() {
            m.insert("helper_hosts".into(), json!(c.quirks.helper_hosts));
        }
        Ok(m)
    }
}

/// Endpoints after discovery and configuration.
#[derive(Debug, Clone)]
struct Resolved {
    /// The issuer as discovery named it (Entra ID's may be a `{tenantid}` template).
    issuer: Option<String>,
    jwks_uri: Option<Url>,
    authorization: Option<Url>,
    token: Url,
    device_authorization: Option<Url>,
    revocation: Option<Url>,
    iss_parameter_supported: bool,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    jwks_uri: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

struct OAuthProvider {
    name: String,
    identity: String,
    config: OAuthConfig,
    services: HostServices,
    clock: SharedClock,
    http: OnceLock<Http>,
    metadata: OnceLock<Resolved>,
    /// The issuer's keys, fetched when an ID token first needs them.
    jwks: std::sync::Mutex<Option<jsonwebtoken::jwk::JwkSet>>,
}

type TokenError =
    RequestTokenError<HttpError, StandardErrorResponse<oauth2::basic::BasicErrorResponseType>>;

impl OAuthProvider {
    fn log(&self, level: LogLevel, message: &str) {
        self.services.log(level, message)
    }

    fn http(&self) -> Result<&Http> {
        if let Some(h) = self.http.get() {
            return Ok(h);
        }
        let h = Http::new(
            self.config.ca_file.as_deref(),
            Duration::from_secs(self.config.timeout_secs),
        )?;
        let _ = self.http.set(h);
        Ok(self.http.get().expect("set above"))
    }

    /// `flow = "client_credentials"` with a client secret: a service identity, which gets
    /// tokens without a person.
    fn is_service_identity(&self) -> bool {
        self.config.flow == config::Flow::ClientCredentials
            && self.config.auth_method != AuthMethod::None
    }

    fn not_logged_in(&self) -> Error {
        Error::not_authenticated(format!(
            "provider `{}` is not logged in; run `qlam auth login {}`",
            self.name, self.name
        ))
    }

    /// Discovery (once per process), then the configuration's explicit endpoints on top.
    fn resolve(&self) -> Result<Resolved> {
        if let Some(r) = self.metadata.get() {
            return Ok(r.clone());
        }
        let e = &self.config.endpoints;
        let mut r = Resolved {
            issuer: None,
            jwks_uri: None,
            authorization: e.authorization.clone(),
            token: e
                .token
                .clone()
                .unwrap_or_else(|| Url::parse("https://unset.invalid/").expect("valid")),
            device_authorization: e.device_authorization.clone(),
            revocation: e.revocation.clone(),
            iss_parameter_supported: false,
        };
        if let Some(issuer) = &self.config.issuer {
            let m = self.discover(issuer)?;
            let pick = |key: &str,
                        configured: &Option<Url>,
                        found: Option<String>|
             -> Result<Option<Url>> {
                match (configured, found) {
                    (Some(u), _) => Ok(Some(u.clone())),
                    (None, Some(f)) => endpoint(key, &f).map(Some).map_err(|e| {
                        Error::other(format!(
                            "the discovery document of `{issuer}` has a bad {key}: {}",
                            e.message()
                        ))
                    }),
                    (None, None) => Ok(None),
                }
            };
            r.authorization = pick(
                "authorization_endpoint",
                &e.authorization,
                m.authorization_endpoint,
            )?;
            r.token = pick("token_endpoint", &e.token, m.token_endpoint)?.ok_or_else(|| {
                Error::configuration(format!(
                    "`{issuer}` announces no token endpoint; set `token_endpoint`"
                ))
            })?;
            r.device_authorization = pick(
                "device_authorization_endpoint",
                &e.device_authorization,
                m.device_authorization_endpoint,
            )?;
            r.revocation = pick("revocation_endpoint", &e.revocation, m.revocation_endpoint)?;
            r.iss_parameter_supported = m.authorization_response_iss_parameter_supported;
            r.jwks_uri = pick("jwks_uri", &None, m.jwks_uri)?;
            r.issuer = Some(m.issuer);
        }
        let _ = self.metadata.set(r.clone());
        Ok(r)
    }

    fn discover(&self, issuer: &str) -> Result<Metadata> {
        let base = issuer.trim_end_matches('/');
        let mut candidates = vec![format!("{base}/.well-known/openid-configuration")];
        // RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
        let url = Url::parse(issuer)
            .map_err(|e| Error::configuration(format!("`issuer` is not a URL: {e}")))?;
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        candidates.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
        let mut last = String::new();
        for c in candidates {
            let u = Url::parse(&c).map_err(|e| Error::other(e.to_string()))?;
            self.log(LogLevel::Debug, &format!("discovery: GET {u}"));
            match self.http()?.get_json(&u) {
                Ok((200, body)) => {
                    let m: Metadata = serde_json::from_slice(&body).map_err(|e| {
                        Error::other(format!(
                            "the discovery document at `{u}` is not valid metadata: {e}"
                        ))
                    })?;
                    let accepted = match &self.config.quirks.issuer_rule {
                        IssuerRule::Entra { authority, tenant } => {
                            presets::entra_issuer_accepted(authority, tenant, &m.issuer)
                        }
                        _ => m.issuer == issuer,
                    };
                    if !accepted {
                        return Err(Error::configuration(format!(
                            "the discovery document at `{u}` names issuer `{}`, but the configuration says `{issuer}`; they must be identical (RFC 8414 §3.3)",
                            m.issuer
                        )));
                    }
                    return Ok(m);
                }
                Ok((status, _)) => last = format!("`{u}` answered {status}"),
                Err(e) => return Err(to_error(&format!("discovery at `{u}` failed"), &e)),
            }
        }
        Err(Error::configuration(format!(
            "no discovery document for issuer `{issuer}` ({last}); set the endpoints explicitly"
        )))
    }

    fn client_for(
        &self,
        token: &Url,
    ) -> Result<OClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>> {
        // Without a secret oauth2 sends `client_id` in the body: what public clients and
        // `private_key_jwt` (whose assertion `token_call` adds) need.
        let auth_type = match self.config.auth_method {
            AuthMethod::ClientSecretPost => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        };
        let mut c = OClient::new(ClientId::new(self.config.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(token.clone()))
            .set_auth_type(auth_type);
        if let Some(s) = self.config.client_secret()? {
            c = c.set_client_secret(ClientSecret::new(s.into_inner()));
        }
        Ok(c)
    }

    /// One request to the token or device authorization endpoint: with a fresh client
    /// assertion under `private_key_jwt`, and the answer made standard (see
    /// [`normalize_token_answer`]).
    fn token_call(&self, request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let request = match &self.config.assertion_key {
            Some(key) if self.config.auth_method == AuthMethod::PrivateKeyJwt => {
                let (mut parts, body) = request.into_parts();
                // The audience is the endpoint's URL (RFC 7523 §3: the token endpoint).
                let mut audience = parts.uri.to_string();
                if let Some(q) = audience.find('?') {
                    audience.truncate(q);
                }
                let assertion = client_auth::assertion(
                    key,
                    &self.config.client_id,
                    &audience,
                    self.clock.now(),
                )
                .map_err(HttpError::Local)?;
                let mut form = url::form_urlencoded::Serializer::new(
                    String::from_utf8_lossy(&body).into_owned(),
                );
                form.append_pair("client_assertion_type", client_auth::ASSERTION_TYPE)
                    .append_pair("client_assertion", assertion.expose());
                let body = form.finish().into_bytes();
                parts.headers.remove(oauth2::http::header::CONTENT_LENGTH);
                HttpRequest::from_parts(parts, body)
            }
            _ => request,
        };
        let http = self.http().map_err(HttpError::Local)?;
        http.call(request)
            .map(|r| normalize_token_answer(r, self.config.quirks.comma_separated_scopes))
    }

    fn scopes(&self) -> Vec<Scope> {
        self.config.scopes.iter().cloned().map(Scope::new).collect()
    }

    fn load(&self) -> Result<Option<Stored>> {
        Stored::load(&self.services, &self.identity, &self.name)
    }

    /// How long before expiry to refresh: `refresh_margin_secs`, but never more than half
    /// the token's lifetime (a margin as long as the lifetime would refresh on every use).
    fn margin(&self, s: &Stored) -> chrono::Duration {
        let configured = chrono::Duration::seconds(self.config.refresh_margin_secs as i64);
        match s.expires_at {
            Some(t) => configured.min((t - s.obtained_at) / 2),
            None => configured,
        }
    }

    /// Turns a token error into a provider error. The raw body of a malformed response is
    /// never shown (it may hold tokens).
    fn token_error(&self, what: &str, e: TokenError) -> Error {
        match e {
            RequestTokenError::Request(h) => to_error(what, &h),
            RequestTokenError::ServerResponse(r) => {
                let code = r.error().as_ref().to_owned();
                let desc = self.describe(r.error_description());
                match code.as_str() {
                    "invalid_client" | "unauthorized_client" => Error::configuration(format!(
                        "{what}: the server rejected the client (`{code}`{desc}); check `client_id` and the client secret"
                    )),
                    "invalid_scope" => Error::configuration(format!("{what}: `{code}`{desc}; check `scopes`")),
                    "invalid_grant" => Error::not_authenticated(format!(
                        "{what}: `{code}`{desc}; run `qlam auth login {}`",
                        self.name
                    )),
                    _ => Error::other(format!("{what}: the server answered `{code}`{desc}")),
                }
            }
            RequestTokenError::Parse(err, body) => Error::other(format!(
                "{what}: the server's answer is not a valid token response ({} bytes; {})",
                body.len(),
                parse_error_summary(&err)
            )),
            RequestTokenError::Other(m) => Error::other(format!("{what}: {m}")),
        }
    }

    /// An error description as shown: `: <text>`, with what to do for a known Entra ID code.
    fn describe(&self, description: Option<&String>) -> String {
        let Some(d) = description else {
            return String::new();
        };
        match (self.config.quirks.preset, presets::aadsts_hint(d)) {
            (Some(presets::Preset::Entra), Some(hint)) => format!(": {d} (hint: {hint})"),
            _ => format!(": {d}"),
        }
    }

    /// The issuer's signing keys; `refetch` after a token named a key the cached set lacks
    /// (the issuer rotated its keys).
    fn signing_keys(&self, url: &Url, refetch: bool) -> Result<jsonwebtoken::jwk::JwkSet> {
        let mut cache = self.jwks.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(keys), false) = (cache.as_ref(), refetch) {
            return Ok(keys.clone());
        }
        self.log(LogLevel::Debug, &format!("ID token keys: GET {url}"));
        let keys = match self.http()?.get_json(url) {
            Ok((200, body)) => id_token::parse_jwks(&body)
                .map_err(|e| Error::other(format!("the keys at `{url}` do not read: {e}")))?,
            Ok((status, _)) => {
                return Err(Error::other(format!(
                "the issuer's keys at `{url}` could not be fetched (the server answered {status})"
            )))
            }
            Err(e) => {
                return Err(to_error(
                    &format!("fetching the keys at `{url}` failed"),
                    &e,
                ))
            }
        };
        *cache = Some(keys.clone());
        Ok(keys)
    }

    /// Who logged in, from what a login returned: the claims of its verified ID token, or the
    /// account's login from the service's API (GitHub). An ID token that does not verify
    /// fails the login (it may be another issuer's or another client's: a mix-up); without the
    /// issuer's keys (no discovery) its claims are not shown.
    fn login_claims(
        &self,
        resp: &TokenResp,
        r: &Resolved,
        nonce: Option<&str>,
    ) -> Result<Option<Map<String, Value>>> {
        if self.config.quirks.login_from_api {
            return self.account_from_api(resp).map(Some);
        }
        let Some(token) = &resp.extra_fields().id_token else {
            return Ok(None);
        };
        let (Some(issuer), Some(jwks_uri)) = (&r.issuer, &r.jwks_uri) else {
            self.log(
                LogLevel::Debug,
                "the ID token is not verified (no discovery document with a `jwks_uri`); who is logged in is not shown",
            );
            return Ok(None);
        };
        let expected = Expected {
            issuer,
            rule: &self.config.quirks.issuer_rule,
            client_id: &self.config.client_id,
            nonce,
            now: self.clock.now(),
        };
        let mut result = id_token::verify(
            token.expose(),
            &self.signing_keys(jwks_uri, false)?,
            &expected,
        );
        if result == Err(Refused::UnknownKey) {
            result = id_token::verify(
                token.expose(),
                &self.signing_keys(jwks_uri, true)?,
                &expected,
            );
        }
        match result {
            Ok(claims) => Ok(Some(id_token::display_claims(&claims))),
            Err(refused) => {
                let why = match refused {
                    Refused::UnknownKey => {
                        "it is signed with a key the issuer does not publish".to_owned()
                    }
                    Refused::Invalid(why) => why,
                };
                Err(Error::other(format!(
                    "the ID token `{issuer}` returned does not verify: {why}; nothing was saved"
                )))
            }
        }
    }

    /// The account's login from the service's REST API (GitHub: `GET /user`, field `login`;
    /// the API refuses requests without a User-Agent, which the client always sends).
    fn account_from_api(&self, resp: &TokenResp) -> Result<Map<String, Value>> {
        let Some(url) = &self.config.endpoints.userinfo else {
            return Ok(Map::new());
        };
        let req = oauth2::http::Request::builder()
            .method("GET")
            .uri(url.as_str())
            .header("Accept", "application/vnd.github+json")
            .header(
                "Authorization",
                format!("Bearer {}", resp.access_token().secret()),
            )
            .body(Vec::new())
            .map_err(|e| Error::other(e.to_string()))?;
        let answer = self
            .http()?
            .call(req)
            .map_err(|e| to_error(&format!("asking `{url}` for the account failed"), &e))?;
        let login = serde_json::from_slice::<Value>(answer.body())
            .ok()
            .filter(|_| answer.status().as_u16() == 200)
            .and_then(|v| v.get("login").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| {
                Error::other(format!(
                    "`{url}` did not name the account (it answered {}); nothing was saved",
                    answer.status().as_u16()
                ))
            })?;
        // A login is letters, digits and hyphens; anything else is not one.
        if login.is_empty()
            || login.len() > 100
            || !login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::other(format!(
                "`{url}` answered an account name that is not a login; nothing was saved"
            )));
        }
        let mut m = Map::new();
        m.insert("preferred_username".into(), json!(login));
        Ok(m)
    }

    /// Stores a token response (refresh token rotation: a new one replaces the old, none
    /// keeps the old) before anyone uses the new access token.
    fn accept(
        &self,
        resp: &TokenResp,
        sent_at: DateTime<Utc>,
        flow: &str,
        previous: Option<&Stored>,
        r: &Resolved,
        claims: Option<Map<String, Value>>,
    ) -> Result<Stored> {
        if *resp.token_type() != BasicTokenType::Bearer {
            return Err(Error::other(format!(
                "the server issued a `{}` token; qlam supports bearer tokens only",
                resp.token_type().as_ref()
            )));
        }
        // An expiry too far away for a date is an unknown one (`expires_in` = 10^14 s
        // panicked here: fuzz/regressions/token_response).
        let expires_at = resp
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .and_then(|d| sent_at.checked_add_signed(d));
        let refresh_token = resp
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone()))
            .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
        // A refresh keeps who logged in (verified then).
        let claims = claims
            .or_else(|| previous.map(|p| p.claims.clone()))
            .unwrap_or_default();
        let stored = Stored {
            identity: self.identity.clone(),
            access_token: Some(Secret::new(resp.access_token().secret().clone())),
            refresh_token,
            expires_at,
            // What the server granted: the response's `scope`, else (RFC 6749 §5.1: omitted
            // when unchanged) what this grant had before, else what was asked for.
            scopes: resp
                .scopes()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .or_else(|| previous.and_then(|p| p.scopes.clone()))
                .or_else(|| Some(self.config.scopes.clone())),
            token_endpoint: r.token.to_string(),
            revocation_endpoint: r.revocation.as_ref().map(|u| u.to_string()),
            claims,
            flow: flow.to_owned(),
            obtained_at: sent_at,
        };
        stored.save(&self.services)?;
        Ok(stored)
    }

    fn choose_flow(&self, options: &LoginOptions, r: &Resolved) -> Result<Flow> {
        let asked = match options.flow.as_deref() {
            None => self.config.flow,
            Some("browser") => Flow::Browser,
            Some("device") => Flow::Device,
            Some("client_credentials") => Flow::ClientCredentials,
            Some(other) => {
                return Err(Error::configuration(format!(
                    "unknown login flow `{other}`"
                )))
            }
        };
        Ok(match asked {
            Flow::Auto
                if self.config.auth_method != AuthMethod::None
                    && r.authorization.is_none()
                    && r.device_authorization.is_none() =>
            {
                Flow::ClientCredentials
            }
            Flow::Auto if r.authorization.is_none() => Flow::Device,
            // GitHub's web flow needs the app's client secret; its device flow does not (the
            // way `gh auth login` logs in).
            Flow::Auto
                if self.config.quirks.browser_needs_secret
                    && self.config.client_secret.is_none()
                    && r.device_authorization.is_some() =>
            {
                Flow::Device
            }
            Flow::Auto if r.device_authorization.is_none() => Flow::Browser,
            // `--no-browser` keeps the browser flow and shows the URL instead; with no way to
            // open a browser at all (an SSH session), the device flow works from anywhere.
            Flow::Auto if !options.no_browser && !browser_available() => Flow::Device,
            Flow::Auto => Flow::Browser,
            f => f,
        })
    }

    /// The host decides how to open the URL (the CLI prints it with `--no-browser`).
    fn login_browser(&self, r: &Resolved) -> Result<()> {
        let auth = r.authorization.clone().ok_or_else(|| {
            Error::configuration("the server has no authorization endpoint; use `flow = \"device\"` or set `authorization_endpoint`")
        })?;
        let listener =
            browser::Loopback::bind(self.config.redirect_port, &self.config.redirect_path)?;
        let redirect = RedirectUrl::new(listener.redirect_uri.clone())
            .map_err(|e| Error::other(e.to_string()))?;
        let client = self
            .client_for(&r.token)?
            .set_auth_uri(AuthUrl::from_url(auth))
            .set_redirect_uri(redirect);
        // A fresh verifier and state for every attempt.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge);
        for (k, v) in &self.config.extra_auth_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        // OpenID Connect Core §3.1.2.1: a nonce binds the ID token to this login.
        let nonce = self
            .config
            .scopes
            .iter()
            .any(|s| s == "openid")
            .then(|| CsrfToken::new_random().secret().clone());
        if let Some(n) = &nonce {
            request = request.add_extra_param("nonce", n.clone());
        }
        let (url, state) = request.url();
        self.services.open_url(url.as_str())?;
        self.services
            .progress("Waiting for the login in the browser", false)?;
        let deadline =
            self.clock.now() + chrono::Duration::seconds(self.config.login_timeout_secs as i64);
        let callback = listener.wait(
            state.secret(),
            self.config.issuer.as_deref(),
            r.iss_parameter_supported,
            deadline,
            self.clock.as_ref(),
        );
        self.services.progress("Done", true)?;
        let callback = callback?;
        let sent_at = self.clock.now();
        let resp = client
            .exchange_code(AuthorizationCode::new(callback.code.into_inner()))
            .set_pkce_verifier(verifier)
            .request(&|req| self.token_call(req))
            .map_err(|e| self.token_error("the code exchange failed", e))?;
        let claims = self.login_claims(&resp, r, nonce.as_deref())?;
        self.accept(&resp, sent_at, "browser", None, r, claims)?;
        Ok(())
    }

    fn login_device(&self, r: &Resolved) -> Result<()> {
        let dev = r.device_authorization.clone().ok_or_else(|| {
            Error::configuration("the server has no device authorization endpoint; use `flow = \"browser\"` or set `device_authorization_endpoint`")
        })?;
        let client = self
            .client_for(&r.token)?
            .set_device_authorization_url(DeviceAuthorizationUrl::from_url(dev));
        let mut details_request = client.exchange_device_code().add_scopes(self.scopes());
        // Auth0 issues tokens for an API only when told which (`audience`).
        if let Some(a) = self.config.extra_auth_params.get("audience") {
            details_request = details_request.add_extra_param("audience", a.clone());
        }
        let details: StandardDeviceAuthorizationResponse = details_request
            .request(&|req| self.token_call(req))
            .map_err(|e| self.token_error("the device authorization request failed", e))?;
        // The interval is slept as given, and oauth2 adds 5 s to it on every `slow_down`
        // without an overflow check (a panic near u64::MAX seconds): refuse absurd ones.
        if details.interval() > MAX_POLL_INTERVAL {
            return Err(Error::other(format!(
                "the device authorization request failed: the server asks to poll every {} s; qlam waits at most {} s between polls",
                details.interval().as_secs(),
                MAX_POLL_INTERVAL.as_secs()
            )));
        }
        self.services.show_verification(
            details.verification_uri().as_str(),
            details.user_code().secret(),
            details
                .verification_uri_complete()
                .map(|u| u.secret().as_str()),
        )?;
        self.services
            .progress("Waiting for you to approve the login", false)?;
        let clock = self.clock.clone();
        let sleeper = self.clock.clone();
        // `sent_at` is taken before each poll; the last one is the successful one.
        let last_sent = std::sync::Mutex::new(self.clock.now());
        let result = client
            .exchange_device_access_token(&details)
            .set_time_fn(move || clock.now())
            .request(
                &|req| {
                    *last_sent.lock().unwrap_or_else(|p| p.into_inner()) = self.clock.now();
                    self.token_call(req)
                },
                |d| sleeper.sleep(d),
                None,
            );
        self.services.progress("Done", true)?;
        let resp = result.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => {
                let desc = self.describe(r.error_description());
                match r.error().as_ref() {
                    // `authorization_declined`: Entra ID's word for it.
                    code @ ("access_denied" | "authorization_declined") => Error::interaction(format!("the login was denied ({code}{desc})")),
                    // GitHub's documentation spells it `token_expired` in one place.
                    code @ ("expired_token" | "token_expired" | "bad_verification_code" | "incorrect_device_code") => Error::interaction(format!(
                        "the device code expired before the login was approved ({code}{desc}); run the login again"
                    )),
                    code @ ("device_flow_disabled" | "unauthorized_client") => Error::configuration(format!(
                        "the server does not allow the device flow for this client (`{code}`{desc}); enable it for the application, or use `--flow browser`"
                    )),
                    code @ ("incorrect_client_credentials" | "invalid_client") => Error::configuration(format!(
                        "the server rejected the client (`{code}`{desc}); check `client_id`"
                    )),
                    code => Error::other(format!("the device login failed: the server answered `{code}`{desc}")),
                }
            }
            RequestTokenError::Request(h) => to_error("the device login failed", &h),
            RequestTokenError::Parse(err, body) => Error::other(format!(
                "the device login failed: the server's answer is not a valid token response ({} bytes; {})",
                body.len(),
                parse_error_summary(&err)
            )),
            RequestTokenError::Other(m) => Error::other(format!("the device login failed: {m}")),
        })?;
        let sent_at = *last_sent.lock().unwrap_or_else(|p| p.into_inner());
        let claims = self.login_claims(&resp, r, None)?;
        self.accept(&resp, sent_at, "device", None, r, claims)?;
        Ok(())
    }

    fn client_credentials(&self, r: &Resolved, previous: Option<&Stored>) -> Result<Stored> {
        let client = self.client_for(&r.token)?;
        if self.config.auth_method == AuthMethod::None {
            return Err(Error::configuration(
                "the client credentials flow needs a confidential client: set `client_secret_env`, `client_secret_file` or `private_key_file`",
            ));
        }
        let sent_at = self.clock.now();
        let mut request = client
            .exchange_client_credentials()
            .add_scopes(self.scopes());
        if let Some(a) = self.config.extra_auth_params.get("audience") {
            request = request.add_extra_param("audience", a.clone());
        }
        let resp = request
            .request(&|req| self.token_call(req))
            .map_err(|e| self.token_error("the client credentials grant failed", e))?;
        self.accept(&resp, sent_at, "client_credentials", previous, r, None)
    }

    /// The refresh grant (or a new client-credentials grant). `force` refreshes even a valid
    /// token. Returns whether new tokens were obtained.
    fn do_refresh(&self, force: bool) -> Result<bool> {
        // Re-read: another process (or thread) may have refreshed while we waited.
        let Some(stored) = self.load()? else {
            // A service identity needs no login: its first token is fetched on first use
            // (like MSAL's acquire_token_for_client), under the host's refresh lock, so that
            // many processes make one grant.
            if self.is_service_identity() {
                self.client_credentials(&self.resolve()?, None)?;
                return Ok(true);
            }
            return Err(self.not_logged_in());
        };
        let now = self.clock.now();
        if !force
            && stored.access_token.is_some()
            && stored
                .expires_at
                .is_none_or(|t| t - self.margin(&stored) > now)
        {
            return Ok(false);
        }
        let r = Resolved {
            issuer: None,
            jwks_uri: None,
            authorization: None,
            token: Url::parse(&stored.token_endpoint)
                .map_err(|e| Error::other(format!("stored token endpoint is not a URL: {e}")))?,
            device_authorization: None,
            revocation: stored
                .revocation_endpoint
                .as_deref()
                .and_then(|u| Url::parse(u).ok()),
            iss_parameter_supported: false,
        };
        let Some(rt) = stored.refresh_token.clone() else {
            if stored.flow == "client_credentials" {
                self.client_credentials(&r, Some(&stored))?;
                return Ok(true);
            }
            return Err(Error::not_authenticated(format!(
                "the session of provider `{}` has expired and cannot be refreshed; run `qlam auth login {}`",
                self.name, self.name
            )));
        };
        let client = self.client_for(&r.token)?;
        let sent_at = self.clock.now();
        self.log(
            LogLevel::Debug,
            &format!("refreshing the tokens of `{}`", self.name),
        );
        // No `scope`: "as originally granted" (RFC 6749 §6). Asking for the configured scopes
        // fails with `invalid_scope` whenever the server granted fewer than were asked.
        let result = client
            .exchange_refresh_token(&RefreshToken::new(rt.expose().clone()))
            .request(&|req| self.token_call(req));
        match result {
            Ok(resp) => {
                self.accept(&resp, sent_at, &stored.flow, Some(&stored), &r, None)?;
                Ok(true)
            }
            Err(RequestTokenError::ServerResponse(r)) if r.error().as_ref() == "invalid_scope" => {
                // The refresh asked for no scope, so the server holds the grant itself to be
                // insufficient now (a policy changed): only a new login helps. The refresh
                // token is kept; it is not known to be dead.
                let desc = self.describe(r.error_description());
                Err(Error::not_authenticated(format!(
                    "the refresh failed: `invalid_scope`{desc}; the server no longer grants these scopes to this login; run `qlam auth login {}`",
                    self.name
                )))
            }
            Err(e) => {
                let err = self.token_error("the refresh failed", e);
                if err.kind() == ErrorKind::NotAuthenticated {
                    // invalid_grant: if another process rotated the token meanwhile, use its
                    // tokens; otherwise this refresh token is dead: forget it (only it).
                    if let Some(now_stored) = self.load()? {
                        if now_stored.refresh_token.as_ref().map(|t| t.expose())
                            != Some(rt.expose())
                        {
                            self.log(
                                LogLevel::Info,
                                "another process refreshed first; using its tokens",
                            );
                            return Ok(true);
                        }
                        let mut dead = now_stored;
                        dead.refresh_token = None;
                        dead.access_token = dead
                            .access_token
                            .filter(|_| dead.expires_at.is_some_and(|t| t > self.clock.now()));
                        dead.save(&self.services)?;
                    }
                }
                Err(err)
            }
        }
    }

    /// RFC 7009 revocation. (oauth2's own request insists on https even for loopback, which
    /// our endpoint rules allow, so the request is built here: it is one form POST.)
    fn revoke(
        &self,
        url: &Url,
        token: &Secret<String>,
        hint: &str,
    ) -> std::result::Result<(), String> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.expose())
            .append_pair("token_type_hint", hint);
        let mut req = oauth2::http::Request::builder()
            .method("POST")
            .uri(url.as_str())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        match self.config.client_secret().map_err(|e| e.to_string())? {
            Some(secret) => {
                use base64::Engine;
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&self.config.client_id),
                    enc(secret.expose())
                ));
                req = req.header("Authorization", format!("Basic {basic}"));
            }
            None => {
                form.append_pair("client_id", &self.config.client_id);
            }
        }
        let req = req
            .body(form.finish().into_bytes())
            .map_err(|e| e.to_string())?;
        let http = self.http().map_err(|e| e.to_string())?;
        match http.call(req) {
            Ok(resp) if resp.status().as_u16() == 200 => Ok(()),
            Ok(resp) => {
                let code = serde_json::from_slice::<Value>(resp.body())
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
                Err(match code {
                    Some(c) => format!("the server answered {} `{c}`", resp.status().as_u16()),
                    None => format!("the server answered {}", resp.status().as_u16()),
                })
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn current_token(&self) -> Result<(Secret<String>, CacheControl)> {
        let stored = self.load()?.ok_or_else(|| self.not_logged_in())?;
        let now = self.clock.now();
        let Some(token) = stored.access_token.clone() else {
            return Err(self.not_logged_in());
        };
        match stored.expires_at {
            Some(t) if t <= now => Err(Error::not_authenticated(format!(
                "the access token of provider `{}` has expired; run `qlam auth refresh {}` or `qlam auth login {}`",
                self.name, self.name, self.name
            ))),
            Some(t) => Ok((token, CacheControl::Until(t - self.margin(&stored)))),
            // Unknown expiry: reuse within this process; a 401 tells when it is over.
            None => Ok((token, CacheControl::Session)),
        }
    }
}

/// oauth2 reports parse errors as `serde_path_to_error::Error<serde_json::Error>`; its
/// Display can quote values from the body (`invalid type: string "…"`), so only the path and
/// the position are shown.
fn parse_error_summary(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    {
        let inner = e.inner();
        let category = match inner.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "unexpected content",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            format!(
                "{category} at line {} column {}",
                inner.line(),
                inner.column()
            )
        } else {
            format!("{category} in `{path}`")
        }
    }
}

/// Whether a browser can be opened here: `$BROWSER`, a graphical session, or a desktop OS.
fn browser_available() -> bool {
    if std::env::var_os("BROWSER").is_some_and(|b| !b.is_empty()) {
        return true;
    }
    if cfg!(any(target_os = "macos", windows)) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

impl Provider for OAuthProvider {
    fn description(&self) -> String {
        if let (Some(p), Some(site)) = (self.config.quirks.preset, &self.config.quirks.site) {
            return format!("{} at {site}", p.title());
        }
        match &self.config.issuer {
            Some(i) => format!("OAuth 2.0 / OpenID Connect at {i}"),
            None => "OAuth 2.0".into(),
        }
    }

    fn is_authenticated(&self) -> bool {
        matches!(self.load(), Ok(Some(s)) if s.access_valid_at(self.clock.now()))
    }

    fn auth_context(&self) -> Result<Map<String, Value>> {
        let stored = self.load()?;
        let mut m = Map::new();
        m.insert("provider".into(), json!(self.name));
        m.insert("issuer".into(), json!(self.config.issuer));
        m.insert("client_id".into(), json!(self.config.client_id));
        if let Some(site) = &self.config.quirks.site {
            m.insert("site".into(), json!(site));
        }
        m.insert(
            "authenticated".into(),
            json!(stored
                .as_ref()
                .is_some_and(|s| s.access_valid_at(self.clock.now()))),
        );
        if let Some(s) = stored {
            for (k, v) in &s.claims {
                let key = match k.as_str() {
                    "sub" => "subject",
                    "preferred_username" => "username",
                    other => other,
                };
                m.insert(key.into(), v.clone());
            }
            m.insert(
                "scopes".into(),
                json!(s.scopes.unwrap_or_else(|| self.config.scopes.clone())),
            );
            m.insert("expires_at".into(), json!(s.expires_at));
            m.insert("flow".into(), json!(s.flow));
            m.insert("refreshable".into(), json!(s.refresh_token.is_some()));
            // The user name credential helpers (git) send with the token.
            let helper_username = match &self.config.quirks.helper_username {
                Some(HelperUsername::Login) => s
                    .claims
                    .get("preferred_username")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                Some(HelperUsername::Fixed(name)) => Some((*name).to_owned()),
                None => None,
            };
            if let Some(u) = helper_username {
                m.insert("helper_username".into(), json!(u));
            }
        } else {
            m.insert("scopes".into(), json!(self.config.scopes));
        }
        Ok(m)
    }

    fn credential(&self) -> Result<Option<Credential>> {
        let stored = self.load()?;
        let now = self.clock.now();
        let (status, c) = match stored {
            None => (
                CredentialStatus::NotAuthenticated,
                OAuthCredential {
                    client_id: self.config.client_id.clone(),
                    allows_refresh: false,
                    ..Default::default()
                },
            ),
            Some(s) => {
                let status = if s.access_valid_at(now) {
                    CredentialStatus::Authenticated
                } else if s.access_token.is_some() {
                    CredentialStatus::Expired
                } else {
                    CredentialStatus::NotAuthenticated
                };
                let allows_refresh = s.refresh_token.is_some() || s.flow == "client_credentials";
                (
                    status,
                    OAuthCredential {
                        client_id: self.config.client_id.clone(),
                        access_token: s.access_token,
                        refresh_token: s.refresh_token,
                        expires_at: s.expires_at,
                        allows_refresh,
                    },
                )
            }
        };
        Ok(Some(Credential::new(
            &self.name,
            status,
            CredentialDetails::OAuth(c),
        )))
    }

    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }

    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        Some(self)
    }

    fn token_source(&self) -> Option<&dyn TokenSource> {
        Some(self)
    }

    fn refresher(&self) -> Option<&dyn Refresh> {
        Some(self)
    }
}

impl HttpHeaders for OAuthProvider {
    fn headers(&self) -> Result<Headers> {
        let (token, cache) = self.current_token()?;
        Ok(Headers {
            headers: vec![("Authorization".into(), token.map(|t| format!("Bearer {t}")))],
            cache,
        })
    }
}

impl TokenSource for OAuthProvider {
    fn token(&self) -> Result<Token> {
        let (token, cache) = self.current_token()?;
        Ok(Token { token, cache })
    }
}

impl LoginLogout for OAuthProvider {
    fn login(&self, options: &LoginOptions) -> Result<()> {
        let r = self.resolve()?;
        match self.choose_flow(options, &r)? {
            Flow::Browser | Flow::Auto => self.login_browser(&r),
            Flow::Device => self.login_device(&r),
            Flow::ClientCredentials => self.client_credentials(&r, None).map(drop),
        }
    }

    fn logout(&self) -> Result<LogoutReport> {
        let mut report = LogoutReport::default();
        let stored = self.load()?;
        if let Some(s) = &stored {
            match s.revocation_endpoint.as_deref().map(Url::parse) {
                Some(Ok(url)) => {
                    // The refresh token first: revoking it ends the grant, so what is left of a
                    // stolen copy is an access token that expires soon.
                    let tokens = [
                        ("refresh token", "refresh_token", &s.refresh_token),
                        ("access token", "access_token", &s.access_token),
                    ];
                    for (what, hint, token) in tokens {
                        if let Some(t) = token {
                            if let Err(e) = self.revoke(&url, t, hint) {
                                report.warnings.push(format!(
                                    "could not revoke the {what} at the server: {e}"
                                ));
                            }
                        }
                    }
                }
                Some(Err(_)) => report.warnings.push(
                    "the stored revocation endpoint is not a URL; tokens were not revoked".into(),
                ),
                None => {
                    if let Some(note) = self.config.quirks.logout_note {
                        report.warnings.push(note.to_owned());
                    }
                }
            }
        }
        // Local state goes whatever happened at the server.
        self.services.secret_delete(stored::KEY)?;
        Ok(report)
    }
}

impl Refresh for OAuthProvider {
    fn can_refresh(&self) -> bool {
        match self.load() {
            Ok(Some(s)) => {
                s.refresh_token.is_some()
                    || (s.flow == "client_credentials"
                        && self.config.auth_method != AuthMethod::None)
            }
            // Nothing yet: a service identity fetches its first token as a "refresh".
            Ok(None) => self.is_service_identity(),
            Err(_) => false,
        }
    }

    fn refresh(&self, force: bool) -> Result<bool> {
        self.do_refresh(force)
    }
}

export_providers!(OAuthFactory::default());

#[cfg(test)]
mod tests;
