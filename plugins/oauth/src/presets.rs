//! `preset = "…"`: the endpoints and the known deviations of the identity services people
//! actually log in to, so that a configuration is three lines. Explicit keys override a
//! preset's endpoints (which is also how the tests point a preset at a loopback stub).
//!
//! Every deviation here comes from the service's public documentation or a known client
//! issue, named where it is handled; `tests/presets.rs` has a stub per service that
//! reproduces it.

use qlam_plugin_api::{Error, Result};

/// The services with a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    GitHub,
    Entra,
    Google,
    GitLab,
    Okta,
    Auth0,
    Keycloak,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::GitHub,
        Preset::Entra,
        Preset::Google,
        Preset::GitLab,
        Preset::Okta,
        Preset::Auth0,
        Preset::Keycloak,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Preset::GitHub => "github",
            Preset::Entra => "entra",
            Preset::Google => "google",
            Preset::GitLab => "gitlab",
            Preset::Okta => "okta",
            Preset::Auth0 => "auth0",
            Preset::Keycloak => "keycloak",
        }
    }

    /// The service's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Preset::GitHub => "GitHub",
            Preset::Entra => "Microsoft Entra ID",
            Preset::Google => "Google",
            Preset::GitLab => "GitLab",
            Preset::Okta => "Okta",
            Preset::Auth0 => "Auth0",
            Preset::Keycloak => "Keycloak",
        }
    }

    fn parse(key: &str) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.key() == key)
            .ok_or_else(|| {
                let known: Vec<_> = Preset::ALL
                    .iter()
                    .map(|p| format!("`{}`", p.key()))
                    .collect();
                Error::configuration(format!(
                    "unknown preset `{key}`; known presets: {}",
                    known.join(", ")
                ))
            })
    }

    /// The parameters each preset takes (`host`, `tenant`…); any other is an error.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Preset::GitHub | Preset::GitLab => &["host"],
            Preset::Entra => &["tenant", "authority_host"],
            Preset::Google => &[],
            Preset::Okta => &["domain", "authorization_server"],
            Preset::Auth0 => &["domain"],
            Preset::Keycloak => &["host", "realm"],
        }
    }
}

/// The preset parameters of a provider table (valid only with `preset`).
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    pub host: Option<String>,
    pub tenant: Option<String>,
    pub authority_host: Option<String>,
    pub domain: Option<String>,
    pub realm: Option<String>,
    pub authorization_server: Option<String>,
}

impl Parameters {
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("host", self.host.is_some()),
            ("tenant", self.tenant.is_some()),
            ("authority_host", self.authority_host.is_some()),
            ("domain", self.domain.is_some()),
            ("realm", self.realm.is_some()),
            ("authorization_server", self.authorization_server.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect()
    }
}

/// How a discovery document's `issuer` (and an ID token's `iss`) must relate to the issuer
/// the configuration implies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IssuerRule {
    /// Identical to the byte (RFC 8414 §3.3, OpenID Connect Discovery §4.3).
    #[default]
    Exact,
    /// Microsoft Entra ID: see [`entra_issuer_accepted`].
    Entra { authority: String, tenant: String },
    /// Google: ID tokens say `iss` = `accounts.google.com` or `https://accounts.google.com`
    /// ("OpenID Connect", Validating an ID token: "The value of iss in the ID token is equal
    /// to accounts.google.com or https://accounts.google.com").
    Google,
}

/// The user name git should send with a token for a preset's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperUsername {
    /// The account's login (GitHub accepts any non-empty user name with a token; Git Credential
    /// Manager sends the login, so `git credential` output names the right account).
    Login,
    /// A fixed name (GitLab: `oauth2` for OAuth tokens over HTTPS).
    Fixed(&'static str),
}

/// What a preset changes beyond endpoints.
#[derive(Debug, Clone, Default)]
pub struct Quirks {
    pub preset: Option<Preset>,
    /// The site shown at login ("Logging in to github.com").
    pub site: Option<String>,
    pub issuer_rule: IssuerRule,
    /// Token responses list scopes separated by commas (GitHub: `scope=repo,gist`).
    pub comma_separated_scopes: bool,
    /// No ID token: the account's login comes from the REST API (`userinfo_endpoint`, GitHub's
    /// `GET /user`, field `login`).
    pub login_from_api: bool,
    /// The browser flow needs a client secret (GitHub's web application flow requires
    /// `client_secret` at the code exchange); without one `flow = "auto"` uses the device flow.
    pub browser_needs_secret: bool,
    /// Hosts whose git credentials this provider answers without a `hosts` route.
    pub helper_hosts: Vec<String>,
    pub helper_username: Option<HelperUsername>,
    /// Said at logout when the service cannot revoke tokens for this client.
    pub logout_note: Option<&'static str>,
}

/// What a preset sets; the caller keeps every key the configuration gives explicitly.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub default_scopes: Vec<&'static str>,
    pub extra_auth_params: Vec<(&'static str, &'static str)>,
    pub quirks: Quirks,
}

/// `host = "git.example.com"` (https) or, for a loopback test server, a full origin such as
/// `http://127.0.0.1:8080` (the endpoint rules then refuse plain http anywhere else).
fn origin(key: &str, value: &str) -> Result<(String, String)> {
    let bad = || {
        Error::configuration(format!(
            "`{key}` must be a host name with an optional port (`sso.example.com:8443`), got `{value}`"
        ))
    };
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("https://{value}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| bad())?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    let host = url.host_str().ok_or_else(bad)?;
    let host_port = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok((url.origin().ascii_serialization(), host_port))
}

/// A path segment chosen by the user (realm, tenant, authorization server).
fn segment(key: &str, value: &str) -> Result<String> {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    {
        return Err(Error::configuration(format!(
            "`{key}` must be a name of letters, digits, `-`, `.`, `_` and `~`, got `{value}`"
        )));
    }
    Ok(value.to_owned())
}

fn required<'a>(
    preset: Preset,
    key: &str,
    v: &'a Option<String>,
    example: &str,
) -> Result<&'a str> {
    v.as_deref().ok_or_else(|| {
        Error::configuration(format!(
            "preset `{}` needs `{key}` (for example `{key} = \"{example}\"`)",
            preset.key()
        ))
    })
}

/// The endpoints and quirks of `preset` with `params`.
pub fn derive(preset: &str, params: &Parameters) -> Result<Derived> {
    let preset = Preset::parse(preset)?;
    let allowed = preset.parameters();
    if let Some(extra) = params.given().into_iter().find(|k| !allowed.contains(k)) {
        let takes = if allowed.is_empty() {
            "takes no parameters".to_owned()
        } else {
            format!(
                "takes {}",
                allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(Error::configuration(format!(
            "preset `{}` {takes}, not `{extra}`",
            preset.key()
        )));
    }
    let mut d = Derived {
        quirks: Quirks {
            preset: Some(preset),
            ..Quirks::default()
        },
        ..Derived::default()
    };
    match preset {
        // Docs: "Authorizing OAuth apps" (web application flow, device flow; `scope` in token
        // responses is comma-separated) and "Refreshing user access tokens" (no client secret
        // for tokens from the device flow); REST "Get the authenticated user" (`login`).
        // Device-flow errors come with HTTP 200 (oauth2-rs #218 and #310, cli/cli #9370).
        Preset::GitHub => {
            let (base, host) = origin("host", params.host.as_deref().unwrap_or("github.com"))?;
            // github.com serves its REST API from api.github.com; GitHub Enterprise Server
            // from /api/v3 on its own host.
            let api = if host.eq_ignore_ascii_case("github.com") {
                "https://api.github.com/user".to_owned()
            } else {
                format!("{base}/api/v3/user")
            };
            d.authorization_endpoint = Some(format!("{base}/login/oauth/authorize"));
            d.token_endpoint = Some(format!("{base}/login/oauth/access_token"));
            d.device_authorization_endpoint = Some(format!("{base}/login/device/code"));
            d.userinfo_endpoint = Some(api);
            // What `gh auth login` asks for: enough to clone, push and read org membership.
            d.default_scopes = vec!["repo", "read:org", "gist"];
            d.quirks.comma_separated_scopes = true;
            d.quirks.login_from_api = true;
            d.quirks.browser_needs_secret = true;
            d.quirks.helper_hosts = vec![host.clone()];
            d.quirks.helper_username = Some(HelperUsername::Login);
            d.quirks.logout_note = Some(
                "GitHub has no revocation endpoint for OAuth apps without a client secret: the token stays valid until you revoke it under Settings → Applications",
            );
            d.quirks.site = Some(host);
        }
        // Docs: "Microsoft identity platform and OAuth 2.0 authorization code flow",
        // "... device authorization grant flow", "OpenID Connect on the Microsoft identity
        // platform" (Find your app's OpenID configuration document URI).
        Preset::Entra => {
            let (authority, host) = origin(
                "authority_host",
                params
                    .authority_host
                    .as_deref()
                    .unwrap_or("login.microsoftonline.com"),
            )?;
            let tenant = segment(
                "tenant",
                params.tenant.as_deref().unwrap_or("organizations"),
            )?;
            d.issuer = Some(format!("{authority}/{tenant}/v2.0"));
            // Refresh tokens only with `offline_access` (MSAL adds openid, profile and
            // offline_access to every user request).
            d.default_scopes = vec!["openid", "profile", "offline_access"];
            d.quirks.issuer_rule = IssuerRule::Entra {
                authority,
                tenant: tenant.clone(),
            };
            d.quirks.logout_note = Some(
                "Microsoft Entra ID has no token revocation endpoint: the tokens stay valid until they expire (an administrator can revoke sessions)",
            );
            d.quirks.site = Some(format!("{host} (tenant {tenant})"));
        }
        // Docs: "OAuth 2.0 for Mobile & Desktop Apps", "OAuth 2.0 for TV and Limited-Input
        // Device Applications", "OpenID Connect". Discovery announces the endpoints
        // (oauth2.googleapis.com/token, /device/code, /revoke).
        Preset::Google => {
            d.issuer = Some("https://accounts.google.com".into());
            d.default_scopes = vec!["openid", "email", "profile"];
            // Refresh tokens come with access_type=offline (not an offline_access scope), and
            // a second grant to the same client gets one only with prompt=consent.
            d.extra_auth_params = vec![("access_type", "offline"), ("prompt", "consent")];
            d.quirks.issuer_rule = IssuerRule::Google;
            d.quirks.site = Some("accounts.google.com".into());
        }
        // Docs: GitLab "OAuth 2.0 identity provider API" (device authorization grant since
        // 17.2) and "OpenID Connect"; git over HTTPS takes an OAuth token as the password of
        // the user `oauth2`.
        Preset::GitLab => {
            let (base, host) = origin("host", params.host.as_deref().unwrap_or("gitlab.com"))?;
            d.issuer = Some(base);
            d.default_scopes = vec!["openid", "profile", "read_repository", "write_repository"];
            d.quirks.helper_hosts = vec![host.clone()];
            d.quirks.helper_username = Some(HelperUsername::Fixed("oauth2"));
            d.quirks.site = Some(host);
        }
        // Docs: Okta "Authorization servers" (issuer of a custom server:
        // https://{domain}/oauth2/{authorizationServerId}; `default` ships with every org).
        Preset::Okta => {
            let (base, host) = origin(
                "domain",
                required(preset, "domain", &params.domain, "example.okta.com")?,
            )?;
            let server = segment(
                "authorization_server",
                params.authorization_server.as_deref().unwrap_or("default"),
            )?;
            d.issuer = Some(format!("{base}/oauth2/{server}"));
            d.default_scopes = vec!["openid", "profile", "offline_access"];
            d.quirks.site = Some(host);
        }
        // Docs: Auth0 "Locate the Tenant Domain" / OIDC discovery: the issuer ends with `/`.
        Preset::Auth0 => {
            let (base, host) = origin(
                "domain",
                required(preset, "domain", &params.domain, "example.us.auth0.com")?,
            )?;
            d.issuer = Some(format!("{base}/"));
            d.default_scopes = vec!["openid", "profile", "offline_access"];
            d.quirks.site = Some(host);
        }
        // Docs: Keycloak "Server administration" (OIDC endpoints under /realms/{realm}; the
        // /auth prefix went away in Keycloak 17 — set `issuer` for an older server).
        Preset::Keycloak => {
            let (base, host) = origin(
                "host",
                required(preset, "host", &params.host, "sso.example.com")?,
            )?;
            let realm = segment(
                "realm",
                required(preset, "realm", &params.realm, "myrealm")?,
            )?;
            d.issuer = Some(format!("{base}/realms/{realm}"));
            d.default_scopes = vec!["openid", "profile", "offline_access"];
            d.quirks.site = Some(format!("{host} (realm {realm})"));
        }
    }
    Ok(d)
}

/// Entra ID's tenant aliases whose discovery document carries the issuer *template*
/// `https://login.microsoftonline.com/{tenantid}/v2.0` (an exact issuer check refuses it:
/// coreos/go-oidc #212, openidconnect-rs #216).
const ENTRA_TEMPLATE_TENANTS: [&str; 2] = ["common", "organizations"];

/// The tenant of personal Microsoft accounts; `organizations` must not let it in.
pub const ENTRA_CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

fn is_guid(s: &str) -> bool {
    let groups: Vec<_> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether Entra's discovery document may name `found` as its issuer, for the configured
/// tenant: the template for `common`/`organizations`; the tenant's GUID issuer for a tenant
/// given by domain name or for `consumers`; the exact issuer otherwise.
pub fn entra_issuer_accepted(authority: &str, tenant: &str, found: &str) -> bool {
    if found == format!("{authority}/{tenant}/v2.0") {
        return true;
    }
    if ENTRA_TEMPLATE_TENANTS.contains(&tenant) {
        return found == format!("{authority}/{{tenantid}}/v2.0");
    }
    if is_guid(tenant) {
        return false;
    }
    found
        .strip_prefix(&format!("{authority}/"))
        .and_then(|rest| rest.strip_suffix("/v2.0"))
        .is_some_and(is_guid)
}

/// The issuer an Entra ID token must carry, given the discovery issuer and the token's `tid`
/// claim (the tenant the user signed in to). `Err` says why the token is refused.
pub fn entra_expected_issuer(
    discovered: &str,
    tenant: &str,
    tid: Option<&str>,
) -> std::result::Result<String, String> {
    let tid = tid.ok_or("it has no `tid` (tenant) claim")?;
    if !is_guid(tid) {
        return Err("its `tid` claim is not a tenant id".into());
    }
    if tenant == "organizations" && tid == ENTRA_CONSUMERS_TENANT {
        return Err(
            "it is for a personal Microsoft account, but `tenant = \"organizations\"` admits work and school accounts only"
                .into(),
        );
    }
    if discovered.contains("{tenantid}") {
        return Ok(discovered.replace("{tenantid}", tid));
    }
    // A concrete issuer names its tenant: the token's must be the same one.
    if !discovered.contains(tid) {
        return Err(format!("its tenant `{tid}` is not the configured tenant"));
    }
    Ok(discovered.to_owned())
}

/// A hint for an `AADSTS…` code in an Entra ID error description (what to do next).
pub fn aadsts_hint(description: &str) -> Option<&'static str> {
    let start = description.find("AADSTS")? + "AADSTS".len();
    let code: String = description[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some(match code.as_str() {
        "50020" => "the account is not in this tenant: sign in with an account of the tenant, set `tenant` to the account's tenant, or ask for a guest invitation",
        "50076" | "50079" => "the tenant requires multi-factor authentication: log in with the browser or device flow",
        "50126" => "the user name or password is wrong",
        "53003" => "a Conditional Access policy blocked the sign-in: ask the tenant's administrator",
        "65001" => "the application has no consent for these scopes: log in with the browser flow to consent, or ask an administrator to grant consent",
        "70000" | "70008" | "700082" | "50173" => "the refresh token has expired or was revoked: run the login again",
        "70011" | "1002012" => "a scope is not valid: user flows take scopes like `https://graph.microsoft.com/User.Read`; the client credentials flow takes one `RESOURCE/.default` scope",
        "90002" => "the tenant does not exist: check `tenant`",
        "700016" => "the application is not registered in this tenant: check `client_id` and `tenant`",
        "7000218" => "the application is registered as a confidential client: enable \"Allow public client flows\" in its Authentication settings, or configure its secret or certificate",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: impl FnOnce(&mut Parameters)) -> Parameters {
        let mut params = Parameters::default();
        f(&mut params);
        params
    }

    #[test]
    fn endpoints_of_each_preset() {
        let gh = derive("github", &Parameters::default()).unwrap();
        assert_eq!(
            gh.device_authorization_endpoint.as_deref(),
            Some("https://github.com/login/device/code")
        );
        assert_eq!(
            gh.token_endpoint.as_deref(),
            Some("https://github.com/login/oauth/access_token")
        );
        assert_eq!(
            gh.userinfo_endpoint.as_deref(),
            Some("https://api.github.com/user")
        );
        assert_eq!(gh.quirks.helper_hosts, ["github.com"]);
        let ghes = derive("github", &p(|p| p.host = Some("git.corp.example".into()))).unwrap();
        assert_eq!(
            ghes.userinfo_endpoint.as_deref(),
            Some("https://git.corp.example/api/v3/user")
        );
        assert_eq!(ghes.quirks.helper_hosts, ["git.corp.example"]);

        let entra = derive("entra", &Parameters::default()).unwrap();
        assert_eq!(
            entra.issuer.as_deref(),
            Some("https://login.microsoftonline.com/organizations/v2.0")
        );
        let us = derive(
            "entra",
            &p(|p| {
                p.authority_host = Some("login.microsoftonline.us".into());
                p.tenant = Some("contoso.onmicrosoft.com".into())
            }),
        )
        .unwrap();
        assert_eq!(
            us.issuer.as_deref(),
            Some("https://login.microsoftonline.us/contoso.onmicrosoft.com/v2.0")
        );
        assert_eq!(
            derive("google", &Parameters::default())
                .unwrap()
                .issuer
                .as_deref(),
            Some("https://accounts.google.com")
        );
        assert_eq!(
            derive("gitlab", &Parameters::default())
                .unwrap()
                .issuer
                .as_deref(),
            Some("https://gitlab.com")
        );
        assert_eq!(
            derive("okta", &p(|p| p.domain = Some("acme.okta.com".into())))
                .unwrap()
                .issuer
                .as_deref(),
            Some("https://acme.okta.com/oauth2/default")
        );
        assert_eq!(
            derive("auth0", &p(|p| p.domain = Some("acme.eu.auth0.com".into())))
                .unwrap()
                .issuer
                .as_deref(),
            Some("https://acme.eu.auth0.com/")
        );
        assert_eq!(
            derive(
                "keycloak",
                &p(|p| {
                    p.host = Some("sso.example.com:8443".into());
                    p.realm = Some("dev".into())
                })
            )
            .unwrap()
            .issuer
            .as_deref(),
            Some("https://sso.example.com:8443/realms/dev")
        );
    }

    #[test]
    fn parameters_are_checked() {
        let err = |name: &str, params: Parameters| derive(name, &params).unwrap_err().to_string();
        assert!(err("gitbucket", Parameters::default()).contains("unknown preset `gitbucket`"));
        assert!(err("okta", Parameters::default()).contains("preset `okta` needs `domain`"));
        assert!(err("google", p(|p| p.host = Some("x".into())))
            .contains("preset `google` takes no parameters, not `host`"));
        assert!(err(
            "keycloak",
            p(|p| {
                p.host = Some("sso.example.com".into());
                p.realm = Some("../admin".into())
            })
        )
        .contains("`realm` must be a name"));
        assert!(
            err("github", p(|p| p.host = Some("github.com/evil".into())))
                .contains("`host` must be a host name")
        );
        assert!(
            err("github", p(|p| p.host = Some("user@github.com".into())))
                .contains("`host` must be a host name")
        );
    }

    #[test]
    fn entra_issuers() {
        let a = "https://login.microsoftonline.com";
        let template = format!("{a}/{{tenantid}}/v2.0");
        let guid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert!(entra_issuer_accepted(a, "organizations", &template));
        assert!(entra_issuer_accepted(a, "common", &template));
        // Only the aliases may answer with the template.
        assert!(!entra_issuer_accepted(a, guid, &template));
        assert!(!entra_issuer_accepted(
            a,
            "contoso.onmicrosoft.com",
            &template
        ));
        assert!(entra_issuer_accepted(a, guid, &format!("{a}/{guid}/v2.0")));
        assert!(entra_issuer_accepted(
            a,
            "contoso.onmicrosoft.com",
            &format!("{a}/{guid}/v2.0")
        ));
        assert!(entra_issuer_accepted(
            a,
            "consumers",
            &format!("{a}/{ENTRA_CONSUMERS_TENANT}/v2.0")
        ));
        assert!(!entra_issuer_accepted(
            a,
            "organizations",
            &format!("{a}/{guid}/v2.0")
        ));
        assert!(!entra_issuer_accepted(
            a,
            "contoso.onmicrosoft.com",
            "https://evil.example/x/v2.0"
        ));

        assert_eq!(
            entra_expected_issuer(&template, "organizations", Some(guid)).unwrap(),
            format!("{a}/{guid}/v2.0")
        );
        assert!(entra_expected_issuer(&template, "organizations", None)
            .unwrap_err()
            .contains("no `tid`"));
        assert!(
            entra_expected_issuer(&template, "organizations", Some(ENTRA_CONSUMERS_TENANT))
                .unwrap_err()
                .contains("personal Microsoft account")
        );
        assert!(entra_expected_issuer(&template, "common", Some(ENTRA_CONSUMERS_TENANT)).is_ok());
        let other = "00000000-0000-0000-0000-000000000001";
        assert!(
            entra_expected_issuer(&format!("{a}/{guid}/v2.0"), guid, Some(other))
                .unwrap_err()
                .contains("not the configured tenant")
        );
    }

    #[test]
    fn aadsts_hints() {
        assert!(
            aadsts_hint("AADSTS700016: Application with identifier 'x' was not found")
                .unwrap()
                .contains("check `client_id` and `tenant`")
        );
        assert!(
            aadsts_hint("AADSTS7000218: The request body must contain client_assertion")
                .unwrap()
                .contains("Allow public client flows")
        );
        assert_eq!(aadsts_hint("AADSTS1: unknown"), None);
        assert_eq!(aadsts_hint("no code here"), None);
    }
}
