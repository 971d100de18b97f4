//! A stub per preset, reproducing the documented wire behaviour of its service (named in
//! each test); the real server (tests/oauth-server) stays the main one. Endpoints point at the
//! stub through the preset's own parameters (`host = "http://127.0.0.1:PORT"`) or explicit
//! keys, so the preset's derived paths are what is exercised.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use qlam_plugin_api::{ErrorKind, Interaction, LoginOptions};
use serde_json::{json, Value};

use super::{everything_said, provider, Req, Stub, NOW};
use crate::clock::fake::FakeClock;
use crate::id_token::testing::Signer;

fn device_opts() -> LoginOptions {
    LoginOptions {
        flow: Some("device".into()),
        ..LoginOptions::default()
    }
}

fn said(services: &qlam_plugin_api::testing::MemoryServices) -> String {
    everything_said(services, &[])
}

fn verification_uri(services: &qlam_plugin_api::testing::MemoryServices) -> String {
    services
        .interactions()
        .iter()
        .find_map(|i| match i {
            Interaction::ShowVerification {
                verification_uri, ..
            } => Some(verification_uri.clone()),
            _ => None,
        })
        .expect("a verification was shown")
}

/// GitHub ("Authorizing OAuth apps", device flow): form-encoded answers unless the request
/// accepts JSON; every polling error with HTTP 200 (oauth2-rs #218/#310, cli/cli #9370);
/// `slow_down` carries the new interval (5 s more); `scope` comma-separated; no expiry and no
/// refresh token for an OAuth app; the login from `GET /user`, which needs a User-Agent.
fn github_stub(json_when_asked: bool, final_answer: &'static str) -> Stub {
    let polls = Mutex::new(0);
    Stub::start(move |r: &Req| {
        let json = json_when_asked
            && r.accept
                .as_deref()
                .is_some_and(|a| a.contains("application/json"));
        let answer = |pairs: &[(&str, &str)]| -> (u16, String) {
            if json {
                let m: serde_json::Map<String, Value> = pairs
                    .iter()
                    .map(|(k, v)| {
                        let v = v.parse::<u64>().map(Value::from).unwrap_or(json!(v));
                        (k.to_string(), v)
                    })
                    .collect();
                (200, Value::Object(m).to_string())
            } else {
                let mut f = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    f.append_pair(k, v);
                }
                (200, f.finish())
            }
        };
        match r.path.as_str() {
            "/login/device/code" => answer(&[
                ("device_code", "canary-device-code"),
                ("user_code", "WDJB-MJHT"),
                ("verification_uri", "https://github.com/login/device"),
                ("expires_in", "899"),
                ("interval", "5"),
            ]),
            "/login/oauth/access_token" => {
                let mut n = polls.lock().unwrap();
                *n += 1;
                match *n {
                    1 => answer(&[
                        ("error", "authorization_pending"),
                        (
                            "error_description",
                            "The authorization request is still pending.",
                        ),
                    ]),
                    2 => answer(&[
                        ("error", "slow_down"),
                        (
                            "error_description",
                            "Too many requests have been made in the same timeframe.",
                        ),
                        ("interval", "10"),
                    ]),
                    _ => match final_answer {
                        "token" => answer(&[
                            ("access_token", "gho_canary"),
                            ("token_type", "bearer"),
                            ("scope", "repo,gist,read:org"),
                        ]),
                        "expiring" => answer(&[
                            ("access_token", "ghu_canary"),
                            ("expires_in", "28800"),
                            ("refresh_token", "ghr_canary"),
                            ("refresh_token_expires_in", "15897600"),
                            ("token_type", "bearer"),
                            ("scope", ""),
                        ]),
                        code => answer(&[("error", code), ("error_description", "stub")]),
                    },
                }
            }
            "/user" if r.auth() == "Bearer gho_canary" || r.auth() == "Bearer ghu_canary" => {
                if r.user_agent.as_deref().unwrap_or("").is_empty() {
                    return (403, json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}).to_string());
                }
                (200, json!({"login": "octocat", "id": 1}).to_string())
            }
            "/user" => (401, json!({"message": "Bad credentials"}).to_string()),
            _ => (404, "{}".into()),
        }
    })
}

impl Req {
    fn auth(&self) -> &str {
        self.authorization.as_deref().unwrap_or("")
    }
}

fn github(stub: &Stub) -> Value {
    json!({
        "preset": "github",
        "client_id": "Iv1.canary",
        // Explicit keys point the preset at the stub; the helper host stays github.com.
        "device_authorization_endpoint": format!("{}/login/device/code", stub.base),
        "token_endpoint": format!("{}/login/oauth/access_token", stub.base),
        "authorization_endpoint": format!("{}/login/oauth/authorize", stub.base),
        "userinfo_endpoint": format!("{}/user", stub.base),
    })
}

#[test]
fn github_device_flow_with_errors_as_http_200_form_encoded_and_comma_scopes() {
    for json_when_asked in [true, false] {
        let stub = github_stub(json_when_asked, "token");
        let clock = FakeClock::at(NOW);
        let (p, _services) = provider(github(&stub), &clock);
        // flow = auto, no client secret: GitHub's web flow needs one, so the device flow.
        p.login_logout()
            .unwrap()
            .login(&LoginOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            clock.sleeps(),
            [Duration::from_secs(5), Duration::from_secs(10)],
            "5 s, then 5 s more after slow_down"
        );
        let polls = stub.requests_to("/login/oauth/access_token");
        assert_eq!(polls.len(), 3);
        assert!(polls.iter().all(|r| r.form("client_secret").is_none()));
        assert_eq!(
            stub.requests_to("/login/device/code")[0]
                .form("scope")
                .as_deref(),
            Some("repo read:org gist"),
            "gh's scopes by default"
        );
        let ctx = p.auth_context().unwrap();
        assert_eq!(ctx["username"], "octocat");
        assert_eq!(ctx["helper_username"], "octocat");
        assert_eq!(ctx["scopes"], json!(["repo", "gist", "read:org"]));
        assert_eq!(ctx["expires_at"], Value::Null);
        assert_eq!(ctx["site"], "github.com");
        assert_eq!(
            p.token_source().unwrap().token().unwrap().token.expose(),
            "gho_canary"
        );
        let logout = p.login_logout().unwrap().logout().unwrap();
        assert!(
            logout.warnings[0].contains("no revocation endpoint"),
            "{logout:?}"
        );
    }
}

#[test]
fn github_device_flow_stop_conditions_arrive_with_http_200_too() {
    for (code, kind, text) in [
        (
            "expired_token",
            ErrorKind::Interaction,
            "device code expired",
        ),
        ("access_denied", ErrorKind::Interaction, "login was denied"),
        (
            "device_flow_disabled",
            ErrorKind::Configuration,
            "does not allow the device flow",
        ),
        (
            "incorrect_client_credentials",
            ErrorKind::Configuration,
            "rejected the client",
        ),
    ] {
        let stub = github_stub(true, code);
        let clock = FakeClock::at(NOW);
        let (p, services) = provider(github(&stub), &clock);
        let e = p.login_logout().unwrap().login(&device_opts()).unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(e.message().contains(text), "{code}: {e}");
        assert!(services.secrets().is_empty(), "nothing saved");
        assert!(!said(&services).contains("canary-device-code"));
    }
}

#[test]
fn github_app_expiring_tokens_refresh_without_a_client_secret() {
    let stub = github_stub(true, "expiring");
    let clock = FakeClock::at(NOW);
    let (p, _) = provider(github(&stub), &clock);
    p.login_logout().unwrap().login(&device_opts()).unwrap();
    let c = p.auth_context().unwrap();
    assert_eq!(c["refreshable"], true);
    assert_eq!(
        c["expires_at"], "2030-01-01T08:00:15Z",
        "8 h from the last poll"
    );
    // "Refreshing user access tokens": no client secret for tokens from the device flow.
    assert!(p.refresher().unwrap().refresh(true).unwrap());
    let sent = stub.requests_to("/login/oauth/access_token").pop().unwrap();
    assert_eq!(sent.form("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(sent.form("refresh_token").as_deref(), Some("ghr_canary"));
    assert_eq!(sent.form("client_secret"), None);
    assert_eq!(sent.authorization, None);
}

/// Google ("OAuth 2.0 for TV and Limited-Input Device Applications"): discovery announces the
/// endpoints; the device answer says `verification_url`; polling errors come with 428
/// (authorization_pending) and 403 (slow_down); the client secret goes with every token
/// request; ID tokens signed with the keys at `jwks_uri`.
#[test]
fn google_verification_url_non_400_polling_errors_and_a_verified_id_token() {
    let signer = Signer::new("g1");
    let polls = Mutex::new(0);
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let stub = Stub::start(move |r: &Req| {
        let base = b.lock().unwrap().clone();
        match r.path.as_str() {
            "/.well-known/openid-configuration" => (200, json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/o/oauth2/v2/auth"),
                "device_authorization_endpoint": format!("{base}/device/code"),
                "token_endpoint": format!("{base}/token"),
                "revocation_endpoint": format!("{base}/revoke"),
                "jwks_uri": format!("{base}/certs"),
            }).to_string()),
            "/certs" => (200, signer.jwks()),
            "/device/code" => (200, json!({
                "device_code": "canary-device-code", "user_code": "GQVQ-JKEC",
                "verification_url": "https://www.google.com/device", "expires_in": 1800, "interval": 5
            }).to_string()),
            "/token" => {
                let mut n = polls.lock().unwrap();
                *n += 1;
                match *n {
                    1 => (428, json!({"error": "authorization_pending", "error_description": "Precondition Required"}).to_string()),
                    2 => (403, json!({"error": "slow_down", "error_description": "Forbidden"}).to_string()),
                    _ => {
                        let id = signer.sign(&json!({
                            "iss": base, "aud": "cli.apps.googleusercontent.com", "sub": "1098",
                            "email": "ada@example.com", "exp": 1_893_460_000
                        }));
                        (200, json!({"access_token": "ya29.canary", "expires_in": 3599, "refresh_token": "1//canary",
                            "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                            "token_type": "Bearer", "id_token": id}).to_string())
                    }
                }
            }
            _ => (404, "{}".into()),
        }
    });
    *base.lock().unwrap() = stub.base.clone();
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(
        json!({"preset": "google", "issuer": stub.base, "client_id": "cli.apps.googleusercontent.com",
               "client_secret": "GOCSPX-canary", "scopes": ["openid", "email"]}),
        &clock,
    );
    p.login_logout()
        .unwrap()
        .login(&device_opts())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verification_uri(&services), "https://www.google.com/device");
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(5), Duration::from_secs(10)]
    );
    // The installed-app secret went with every token request.
    assert!(stub.requests_to("/token").iter().all(|r| r
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic "))));
    let ctx = p.auth_context().unwrap();
    assert_eq!(ctx["email"], "ada@example.com");
    assert_eq!(ctx["refreshable"], true);
    assert_eq!(ctx["site"], "accounts.google.com");
    assert!(!said(&services).contains("canary"));
}

#[test]
fn google_asks_for_refresh_tokens_with_access_type_offline_not_a_scope() {
    let c = crate::config::OAuthConfig::parse(&json!({
        "preset": "google", "client_id": "c", "client_secret": "s"
    }))
    .unwrap();
    assert_eq!(c.extra_auth_params["access_type"], "offline");
    assert_eq!(c.extra_auth_params["prompt"], "consent");
    let e = crate::config::OAuthConfig::parse(&json!({
        "preset": "google", "client_id": "c", "client_secret": "s", "scopes": ["openid", "offline_access"]
    }))
    .unwrap_err();
    assert!(e.message().contains("remove it from `scopes`"), "{e}");
    let e = crate::config::OAuthConfig::parse(&json!({"preset": "google", "client_id": "c"}))
        .unwrap_err();
    assert!(e.message().contains("set `client_secret`"), "{e}");
}

/// Entra ID ("OpenID Connect on the Microsoft identity platform"): the discovery document of
/// `organizations` names the issuer template `…/{tenantid}/v2.0` (coreos/go-oidc #212,
/// openidconnect-rs #216); the token's issuer is the user's tenant, named by `tid`
/// ("Convert single-tenant app to multitenant": check that `iss` contains `tid`).
fn entra_stub(signer: Arc<Signer>, tid: &'static str, token_error: Option<&'static str>) -> Stub {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let stub = Stub::start(move |r: &Req| {
        let base = b.lock().unwrap().clone();
        match r.path.as_str() {
            // Entra serves every tenant's document; `common` and `organizations` name the
            // template (the stub names it for every tenant, so that a test can show where it
            // is refused).
            p if p.ends_with("/v2.0/.well-known/openid-configuration") => (200, json!({
                "issuer": format!("{base}/{{tenantid}}/v2.0"),
                "authorization_endpoint": format!("{base}/organizations/oauth2/v2.0/authorize"),
                "token_endpoint": format!("{base}/organizations/oauth2/v2.0/token"),
                "device_authorization_endpoint": format!("{base}/organizations/oauth2/v2.0/devicecode"),
                "jwks_uri": format!("{base}/organizations/discovery/v2.0/keys"),
            }).to_string()),
            "/organizations/discovery/v2.0/keys" => (200, signer.jwks()),
            "/organizations/oauth2/v2.0/devicecode" => (200, json!({
                "user_code": "FJ7K2PTQB", "device_code": "canary-device-code",
                "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 5,
                "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJ7K2PTQB to authenticate."
            }).to_string()),
            "/organizations/oauth2/v2.0/token" => match token_error {
                Some(desc) => (400, json!({"error": "invalid_client", "error_description": desc, "error_codes": [700016]}).to_string()),
                None => {
                    let id = signer.sign(&json!({
                        "iss": format!("{base}/{tid}/v2.0"), "tid": tid, "aud": "entra-app",
                        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
                        "preferred_username": "ada@contoso.example", "exp": 1_893_460_000
                    }));
                    (200, json!({"token_type": "Bearer", "scope": "openid profile User.Read",
                        "expires_in": 3599, "access_token": "eyJ0.canary", "refresh_token": "0.AR-canary", "id_token": id}).to_string())
                }
            },
            _ => (404, "{}".into()),
        }
    });
    *base.lock().unwrap() = stub.base.clone();
    stub
}

fn entra(stub: &Stub) -> Value {
    json!({"preset": "entra", "authority_host": stub.base, "client_id": "entra-app"})
}

#[test]
fn entra_template_issuer_is_accepted_for_organizations_and_the_tenant_comes_from_tid() {
    let signer = Arc::new(Signer::new("e1"));
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let stub = entra_stub(signer, tid, None);
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(entra(&stub), &clock);
    p.login_logout()
        .unwrap()
        .login(&device_opts())
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = p.auth_context().unwrap();
    assert_eq!(ctx["tid"], tid);
    assert_eq!(ctx["username"], "ada@contoso.example");
    assert_eq!(ctx["iss"], format!("{}/{tid}/v2.0", stub.base));
    // offline_access by default: refresh tokens.
    let asked = stub.requests_to("/organizations/oauth2/v2.0/devicecode")[0].form("scope");
    assert_eq!(asked.as_deref(), Some("openid profile offline_access"));
    assert_eq!(
        ctx["site"],
        format!(
            "{} (tenant organizations)",
            stub.base.trim_start_matches("http://")
        )
    );
    // No revocation endpoint: logout says so and deletes.
    let out = p.login_logout().unwrap().logout().unwrap();
    assert!(out.warnings[0].contains("no token revocation endpoint"));
    assert!(services.secrets().is_empty());
}

#[test]
fn entra_personal_account_under_organizations_is_refused_and_nothing_is_saved() {
    let signer = Arc::new(Signer::new("e1"));
    let stub = entra_stub(signer, crate::presets::ENTRA_CONSUMERS_TENANT, None);
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(entra(&stub), &clock);
    let e = p.login_logout().unwrap().login(&device_opts()).unwrap_err();
    assert!(e.message().contains("personal Microsoft account"), "{e}");
    assert!(services.secrets().is_empty());
}

#[test]
fn entra_template_issuer_is_refused_for_a_specific_tenant() {
    // The template belongs to the aliases only: a tenant's own document names its issuer.
    let signer = Arc::new(Signer::new("e1"));
    let stub = entra_stub(signer, "72f988bf-86f1-41af-91ab-2d7cd011db47", None);
    let clock = FakeClock::at(NOW);
    let mut config = entra(&stub);
    config["tenant"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let (p, _) = provider(config, &clock);
    let e = p.login_logout().unwrap().login(&device_opts()).unwrap_err();
    assert!(
        e.message().contains("names issuer `http://127.0.0.1:")
            && e.message().contains("/{tenantid}/v2.0`"),
        "{e}"
    );
}

#[test]
fn entra_aadsts_codes_come_with_a_hint() {
    let signer = Arc::new(Signer::new("e1"));
    let stub = entra_stub(
        signer,
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        Some("AADSTS700016: Application with identifier 'entra-app' was not found in the directory 'Contoso'."),
    );
    let clock = FakeClock::at(NOW);
    let (p, _) = provider(entra(&stub), &clock);
    let e = p.login_logout().unwrap().login(&device_opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        e.message()
            .contains("hint: the application is not registered in this tenant"),
        "{e}"
    );
}

/// Okta, Keycloak, GitLab and Auth0 follow the standards; their presets derive the issuer
/// (and so the discovery URL) from the parameters: Okta `/oauth2/default`, Keycloak
/// `/realms/{realm}`, GitLab the host, Auth0 the domain *with a trailing slash* (its issuer
/// always ends with `/`; an exact check against `https://domain` fails).
#[test]
fn discovery_presets_derive_their_issuer_and_verify_id_tokens() {
    let cases = [
        ("okta", "domain", None, "/oauth2/default"),
        ("keycloak", "host", Some(("realm", "dev")), "/realms/dev"),
        ("gitlab", "host", None, ""),
        ("auth0", "domain", None, "/"),
    ];
    for (preset, key, extra, path) in cases {
        let signer = Arc::new(Signer::new("k"));
        let issuer = Arc::new(Mutex::new(String::new()));
        let i = issuer.clone();
        let s = signer.clone();
        let well_known = format!(
            "{}/.well-known/openid-configuration",
            path.trim_end_matches('/')
        );
        let stub = Stub::start(move |r: &Req| {
            let iss = i.lock().unwrap().clone();
            let base = iss.trim_end_matches('/').to_owned();
            match r.path.as_str() {
                p if p == well_known => (200, json!({
                    "issuer": iss, "token_endpoint": format!("{base}/token"),
                    "device_authorization_endpoint": format!("{base}/device"),
                    "revocation_endpoint": format!("{base}/revoke"),
                    "jwks_uri": format!("{base}/keys"),
                }).to_string()),
                "/oauth2/default/keys" | "/realms/dev/keys" | "/keys" => (200, s.jwks()),
                "/oauth2/default/device" | "/realms/dev/device" | "/device" => (200, json!({
                    "device_code": "d", "user_code": "U", "verification_uri": "https://x/d", "expires_in": 600, "interval": 1
                }).to_string()),
                "/oauth2/default/token" | "/realms/dev/token" | "/token" => {
                    let id = s.sign(&json!({"iss": iss, "aud": "app", "sub": "u-1", "preferred_username": "ada", "exp": 1_893_460_000}));
                    (200, json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                        "refresh_token": "rt", "id_token": id}).to_string())
                }
                _ => (404, "{}".into()),
            }
        });
        *issuer.lock().unwrap() = format!("{}{path}", stub.base);
        let mut config = json!({"preset": preset, key: stub.base, "client_id": "app"});
        if let Some((k, v)) = extra {
            config[k] = json!(v);
        }
        let clock = FakeClock::at(NOW);
        let (p, _) = provider(config, &clock);
        p.login_logout()
            .unwrap()
            .login(&device_opts())
            .unwrap_or_else(|e| panic!("{preset}: {e}"));
        let ctx = p.auth_context().unwrap();
        assert_eq!(ctx["username"], "ada", "{preset}");
        if preset == "gitlab" {
            assert_eq!(
                ctx["helper_username"], "oauth2",
                "GitLab's user name for OAuth tokens"
            );
        }
    }
}

#[test]
fn auth0_client_credentials_send_the_audience() {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let stub = Stub::start(move |r: &Req| {
        let base = b.lock().unwrap().clone();
        match r.path.as_str() {
            // The issuer ends with `/`.
            "/.well-known/openid-configuration" => (
                200,
                json!({
                    "issuer": format!("{base}/"), "token_endpoint": format!("{base}/oauth/token"),
                    "device_authorization_endpoint": format!("{base}/oauth/device/code"),
                    "revocation_endpoint": format!("{base}/oauth/revoke"),
                })
                .to_string(),
            ),
            "/oauth/token" => (
                200,
                json!({"access_token": "at", "token_type": "Bearer", "expires_in": 86400})
                    .to_string(),
            ),
            _ => (404, "{}".into()),
        }
    });
    *base.lock().unwrap() = stub.base.clone();
    let clock = FakeClock::at(NOW);
    // Without `audience`, a configuration error before any request.
    let e = crate::config::OAuthConfig::parse(&json!({
        "preset": "auth0", "domain": "acme.eu.auth0.com", "client_id": "svc",
        "client_secret": "s", "flow": "client_credentials"
    }))
    .unwrap_err();
    assert!(e.message().contains("set `audience`"), "{e}");
    let (p, _) = provider(
        json!({"preset": "auth0", "domain": stub.base, "client_id": "svc", "client_secret": "s",
               "flow": "client_credentials", "audience": "https://api.acme.example"}),
        &clock,
    );
    assert!(p.refresher().unwrap().refresh(false).unwrap());
    let sent = stub.requests_to("/oauth/token");
    assert_eq!(
        sent[0].form("audience").as_deref(),
        Some("https://api.acme.example")
    );
    assert_eq!(
        sent[0].form("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        p.token_source().unwrap().token().unwrap().token.expose(),
        "at"
    );
}

#[test]
fn an_id_token_that_does_not_verify_fails_the_login() {
    let real = Arc::new(Signer::new("k1"));
    let forger = Arc::new(Signer::new("k1"));
    let issuer = Arc::new(Mutex::new(String::new()));
    let i = issuer.clone();
    let stub = Stub::start(move |r: &Req| {
        let iss = i.lock().unwrap().clone();
        match r.path.as_str() {
            "/.well-known/openid-configuration" => (200, json!({
                "issuer": iss, "token_endpoint": format!("{iss}/token"),
                "device_authorization_endpoint": format!("{iss}/device"), "jwks_uri": format!("{iss}/keys"),
            }).to_string()),
            "/keys" => (200, real.jwks()),
            "/device" => (200, json!({"device_code": "d", "user_code": "U", "verification_uri": "https://x/d", "expires_in": 600, "interval": 1}).to_string()),
            "/token" => {
                let id = forger.sign(&json!({"iss": iss, "aud": "app", "sub": "mallory", "exp": 1_893_460_000}));
                (200, json!({"access_token": "canary-at", "token_type": "Bearer", "id_token": id}).to_string())
            }
            _ => (404, "{}".into()),
        }
    });
    *issuer.lock().unwrap() = stub.base.clone();
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(json!({"issuer": stub.base, "client_id": "app"}), &clock);
    let e = p.login_logout().unwrap().login(&device_opts()).unwrap_err();
    assert!(
        e.message()
            .contains("does not verify: its signature is wrong"),
        "{e}"
    );
    assert!(services.secrets().is_empty(), "nothing saved");
    // The keys were fetched again once (a rotation would have been picked up), not in a loop.
    assert!(stub.requests_to("/keys").len() <= 2);
}
