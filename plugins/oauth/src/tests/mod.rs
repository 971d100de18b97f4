//! The provider against a stub server that misbehaves in exactly the ways the real server
//! (tests/oauth-server) never does. Time is a fake clock: polling and expiry never sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qlam_plugin_api::testing::MemoryServices;
use qlam_plugin_api::{
    BuildRequest, ErrorKind, Interaction, LoginOptions, Provider, ProviderFactory,
};
use serde_json::{json, Value};

use crate::clock::fake::FakeClock;
use crate::OAuthFactory;

#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    pub body: String,
}

impl Req {
    pub fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

type Handler = dyn Fn(&Req) -> (u16, String) + Send + Sync;

pub struct Stub {
    pub base: String,
    requests: Arc<Mutex<Vec<Req>>>,
}

impl Stub {
    pub fn start(handler: impl Fn(&Req) -> (u16, String) + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let _method = parts.next();
                    let path = parts.next().unwrap_or("").to_owned();
                    let (mut len, mut authorization) = (0usize, None);
                    let (mut accept, mut user_agent) = (None, None);
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("authorization:") {
                            authorization = Some(h["authorization:".len()..].trim().to_owned());
                        }
                        if lower.starts_with("accept:") {
                            accept = Some(h["accept:".len()..].trim().to_owned());
                        }
                        if lower.starts_with("user-agent:") {
                            user_agent = Some(h["user-agent:".len()..].trim().to_owned());
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = reader.read_exact(&mut body);
                    let req = Req {
                        path,
                        authorization,
                        accept,
                        user_agent,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    log.lock().unwrap().push(req.clone());
                    let (status, body) = handler(&req);
                    let extra = if status == 302 {
                        "Location: /elsewhere\r\n"
                    } else {
                        ""
                    };
                    // JSON unless the body is a form (GitHub's default answer).
                    let content_type =
                        if body.starts_with('{') || body.starts_with('[') || body.is_empty() {
                            "application/json"
                        } else {
                            "application/x-www-form-urlencoded"
                        };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Stub { base, requests }
    }

    pub fn requests_to(&self, path: &str) -> Vec<Req> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path))
            .cloned()
            .collect()
    }
}

const NOW: &str = "2030-01-01T00:00:00Z";

fn provider(config: Value, clock: &Arc<FakeClock>) -> (Box<dyn Provider>, Arc<MemoryServices>) {
    let services = MemoryServices::new(&[]);
    let p = OAuthFactory::with_clock(clock.clone())
        .build(BuildRequest {
            context_name: "dev".into(),
            provider_name: "sso".into(),
            config,
            services: services.handle(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    (p, services)
}

fn explicit(stub: &Stub) -> Value {
    json!({
        "client_id": "qlam-cli",
        "token_endpoint": format!("{}/token", stub.base),
        "device_authorization_endpoint": format!("{}/device", stub.base),
        "revocation_endpoint": format!("{}/revoke", stub.base),
        "flow": "device",
        "scopes": ["openid", "offline_access"],
    })
}

fn tokens(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> String {
    let mut v = json!({"access_token": access, "token_type": "Bearer"});
    if let Some(r) = refresh {
        v["refresh_token"] = json!(r);
    }
    if let Some(e) = expires_in {
        v["expires_in"] = json!(e);
    }
    v.to_string()
}

fn everything_said(services: &MemoryServices, extra: &[String]) -> String {
    let mut all: Vec<String> = services.logs().into_iter().map(|(_, m)| m).collect();
    all.extend(services.interactions().iter().map(|i| format!("{i:?}")));
    all.extend(extra.iter().cloned());
    all.join("\n")
}

/// A device login whose token endpoint answers with `script`, one answer per poll.
fn device_login(
    script: Vec<(u16, String)>,
    device_extra: Value,
) -> (
    qlam_plugin_api::Result<()>,
    Arc<FakeClock>,
    Arc<MemoryServices>,
    Stub,
) {
    let script = Mutex::new(script.into_iter());
    let stub = Stub::start(move |r| match r.path.as_str() {
        "/device" => {
            let mut v = json!({
                "device_code": "canary-device-code",
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://idp.example/device",
                "expires_in": 600,
            });
            for (k, x) in device_extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            (200, v.to_string())
        }
        "/token" => script.lock().unwrap().next().unwrap_or((500, "{}".into())),
        _ => (404, "{}".into()),
    });
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(explicit(&stub), &clock);
    let r = p.login_logout().unwrap().login(&LoginOptions::default());
    (r, clock, services, stub)
}

fn pending() -> (u16, String) {
    (400, json!({"error": "authorization_pending"}).to_string())
}

#[test]
fn device_flow_honours_default_interval_slow_down_and_pending() {
    let (r, clock, services, stub) = device_login(
        vec![
            pending(),
            (400, json!({"error": "slow_down"}).to_string()),
            pending(),
            (
                200,
                tokens("canary-access-1", Some("canary-refresh-1"), Some(3600)),
            ),
        ],
        json!({}),
    );
    r.unwrap();
    // No `interval` in the answer: 5 s. slow_down adds 5 s for every later poll.
    assert_eq!(
        clock.sleeps(),
        [
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(10)
        ]
    );
    let polls = stub.requests_to("/token");
    assert_eq!(polls.len(), 4);
    assert_eq!(
        polls[0].form("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:device_code")
    );
    assert_eq!(
        polls[0].form("device_code").as_deref(),
        Some("canary-device-code")
    );
    // The code was shown through the host.
    assert!(services.interactions().iter().any(|i| matches!(i,
        Interaction::ShowVerification { user_code, verification_uri, .. } if user_code == "WDJB-MJHT" && verification_uri == "https://idp.example/device")));
    let stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
    assert_eq!(stored["access_token"], "canary-access-1");
    // Expiry from the send time of the successful poll: 25 s of polling, then 3600 s.
    assert_eq!(stored["expires_at"], "2030-01-01T01:00:25Z");
    let said = everything_said(&services, &[]);
    for canary in ["canary-device-code", "canary-access-1", "canary-refresh-1"] {
        assert!(!said.contains(canary), "{canary} leaked: {said}");
    }
}

#[test]
fn device_flow_announced_interval_and_stop_conditions() {
    let (r, clock, services, _) = device_login(
        vec![
            pending(),
            (400, json!({"error": "access_denied"}).to_string()),
        ],
        json!({"interval": 2}),
    );
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interaction);
    assert_eq!(e.message(), "the login was denied (access_denied)");
    assert_eq!(clock.sleeps(), [Duration::from_secs(2)]);
    assert!(services.secrets().is_empty());

    let (r, _, services, _) = device_login(
        vec![(400, json!({"error": "expired_token"}).to_string())],
        json!({}),
    );
    assert!(r
        .unwrap_err()
        .message()
        .starts_with("the device code expired before the login was approved"));
    assert!(services.secrets().is_empty());

    // The local deadline: `expires_in` passes while the server keeps saying pending.
    let (r, clock, services, stub) = device_login(
        std::iter::repeat_with(pending).take(500).collect(),
        json!({"expires_in": 30, "interval": 5}),
    );
    let e = r.unwrap_err();
    assert!(e.message().contains("expired"), "{e}");
    assert!(
        stub.requests_to("/token").len() <= 8,
        "polling stops at the deadline"
    );
    assert!(clock.sleeps().iter().sum::<Duration>() <= Duration::from_secs(40));
    assert!(services.secrets().is_empty());
}

/// Logs in through the device flow with one successful answer, returning the provider.
fn logged_in(
    token_script: Vec<(u16, String)>,
    config_extra: Value,
) -> (Box<dyn Provider>, Arc<FakeClock>, Arc<MemoryServices>, Stub) {
    let script = Mutex::new(token_script.into_iter());
    let stub = Stub::start(move |r| {
        match r.path.as_str() {
        "/device" => (200, json!({"device_code": "d", "user_code": "U", "verification_uri": "https://x/d", "expires_in": 600, "interval": 1}).to_string()),
        "/token" => script.lock().unwrap().next().unwrap_or((500, "{}".into())),
        "/revoke" => (200, String::new()),
        _ => (404, "{}".into()),
    }
    });
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    for (k, v) in config_extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let (p, services) = provider(config, &clock);
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    (p, clock, services, stub)
}

#[test]
fn refresh_rotates_keeps_old_when_none_returned_and_respects_the_margin() {
    let (p, clock, services, stub) = logged_in(
        vec![
            (200, tokens("a1", Some("r1"), Some(600))),
            (200, tokens("a2", Some("r2"), Some(600))),
            (200, tokens("a3", None, Some(600))),
        ],
        json!({"refresh_margin_secs": 120}),
    );
    let h = p.http_headers().unwrap().headers().unwrap();
    assert_eq!(h.headers[0].1.expose(), "Bearer a1");
    // (A margin longer than half the lifetime is capped there; 120 s of 600 s is kept.)
    // Reused until expiry minus the margin.
    assert_eq!(
        h.cache,
        qlam_plugin_api::CacheControl::Until("2030-01-01T00:08:00Z".parse().unwrap())
    );
    let refresher = p.refresher().unwrap();
    assert!(refresher.can_refresh());
    assert!(
        !refresher.refresh(false).unwrap(),
        "valid beyond the margin: no request"
    );
    assert_eq!(stub.requests_to("/token").len(), 1);
    clock.advance(Duration::from_secs(481));
    assert!(refresher.refresh(false).unwrap());
    let req = stub.requests_to("/token").pop().unwrap();
    assert_eq!(req.form("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(req.form("refresh_token").as_deref(), Some("r1"));
    assert_eq!(
        req.form("scope"),
        None,
        "no scope on refresh: as granted (RFC 6749 §6)"
    );
    let stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
    assert_eq!(
        (
            stored["access_token"].as_str(),
            stored["refresh_token"].as_str()
        ),
        (Some("a2"), Some("r2"))
    );
    assert!(refresher.refresh(true).unwrap());
    assert_eq!(
        stub.requests_to("/token")
            .pop()
            .unwrap()
            .form("refresh_token")
            .as_deref(),
        Some("r2")
    );
    let stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
    assert_eq!(
        (
            stored["access_token"].as_str(),
            stored["refresh_token"].as_str()
        ),
        (Some("a3"), Some("r2"))
    );
}

#[test]
fn transient_failures_keep_every_token() {
    let (p, _, services, _) = logged_in(
        vec![
            (200, tokens("a1", Some("r1"), Some(600))),
            (503, "<html>down</html>".into()),
            (302, String::new()),
        ],
        json!({}),
    );
    let before = services.secrets();
    let e = p.refresher().unwrap().refresh(true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.message().contains("503"), "{e}");
    assert_eq!(services.secrets(), before);
    let e = p.refresher().unwrap().refresh(true).unwrap_err();
    assert!(
        e.message()
            .contains("redirect (302), which qlam does not follow"),
        "{e}"
    );
    assert_eq!(services.secrets(), before);
}

#[test]
fn token_endpoint_timeouts_are_transient() {
    let stub = Stub::start(|r| {
        if r.path == "/token" {
            std::thread::sleep(Duration::from_secs(3));
        }
        (200, tokens("late", None, None))
    });
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    config["client_secret"] = json!("s");
    config["timeout_secs"] = json!(1);
    let (p, services) = provider(config, &clock);
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(services.secrets().is_empty());
}

#[test]
fn invalid_grant_drops_the_refresh_token_only_then() {
    let (p, clock, services, _) = logged_in(
        vec![
            (200, tokens("a1", Some("r1"), Some(600))),
            (
                400,
                json!({"error": "invalid_grant", "error_description": "grant revoked"}).to_string(),
            ),
        ],
        json!({}),
    );
    clock.advance(Duration::from_secs(700));
    let e = p.refresher().unwrap().refresh(false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAuthenticated);
    assert_eq!(
        e.message(),
        "the refresh failed: `invalid_grant`: grant revoked; run `qlam auth login sso`"
    );
    let stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
    assert_eq!(stored["refresh_token"], Value::Null);
    assert!(!p.refresher().unwrap().can_refresh());
    assert_eq!(
        p.http_headers().unwrap().headers().unwrap_err().kind(),
        ErrorKind::NotAuthenticated
    );
}

#[test]
fn invalid_scope_on_refresh_asks_for_a_login_and_keeps_the_refresh_token() {
    let (p, clock, services, _) = logged_in(
        vec![
            (200, tokens("a1", Some("r1"), Some(600))),
            (
                400,
                json!({"error": "invalid_scope", "error_description": "policy changed"})
                    .to_string(),
            ),
        ],
        json!({}),
    );
    clock.advance(Duration::from_secs(700));
    let e = p.refresher().unwrap().refresh(false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAuthenticated);
    assert_eq!(
        e.message(),
        "the refresh failed: `invalid_scope`: policy changed; the server no longer grants these scopes to this login; run `qlam auth login sso`"
    );
    let stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
    assert_eq!(stored["refresh_token"], "r1", "not known to be dead: kept");
}

#[test]
fn invalid_grant_after_another_process_rotated_adopts_its_tokens() {
    let services_slot: Arc<Mutex<Option<Arc<MemoryServices>>>> = Arc::default();
    let slot = services_slot.clone();
    let calls = Mutex::new(0);
    let stub = Stub::start(move |r| match r.path.as_str() {
        "/token" => {
            let mut n = calls.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return (200, json!({"access_token": "a1", "token_type": "bearer", "refresh_token": "r1", "expires_in": 60}).to_string());
            }
            // A sibling process refreshed first and stored its rotated tokens.
            let services = slot.lock().unwrap().clone().unwrap();
            let mut stored: Value = serde_json::from_str(&services.secrets()["tokens"]).unwrap();
            stored["access_token"] = json!("sibling-a2");
            stored["refresh_token"] = json!("sibling-r2");
            stored["expires_at"] = json!("2030-01-01T01:00:00Z");
            use qlam_plugin_api::ServicesBackend;
            services
                .secret_store("tokens", &stored.to_string().into())
                .unwrap();
            (400, json!({"error": "invalid_grant"}).to_string())
        }
        _ => (404, "{}".into()),
    });
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    config["client_secret"] = json!("s");
    let (p, services) = provider(config, &clock);
    *services_slot.lock().unwrap() = Some(services.clone());
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    clock.advance(Duration::from_secs(61));
    assert!(p.refresher().unwrap().refresh(false).unwrap());
    assert_eq!(
        p.token_source().unwrap().token().unwrap().token.expose(),
        "sibling-a2"
    );
}

#[test]
fn malformed_token_responses_never_show_their_body() {
    let stub = Stub::start(|_| {
        (200, r#"{"access_token": "canary-in-body", "token_type": "Bearer", "expires_in": "soon-canary"}"#.into())
    });
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    config["client_secret"] = json!("canary-client-secret");
    let (p, services) = provider(config, &clock);
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    assert!(e.message().starts_with("the client credentials grant failed: the server's answer is not a valid token response"), "{e}");
    let said = everything_said(&services, &[e.to_string(), format!("{e:?}")]);
    assert!(!said.contains("canary"), "{said}");
}

#[test]
fn token_responses_unknown_members_case_insensitive_type_unknown_expiry() {
    let stub = Stub::start(|_| {
        (
            200,
            r#"{"access_token": "a", "token_type": "BEARER", "x_vendor": {"n": 1}}"#.into(),
        )
    });
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    config["client_secret"] = json!("s");
    let (p, _) = provider(config, &clock);
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    let t = p.token_source().unwrap().token().unwrap();
    assert_eq!(t.token.expose(), "a");
    assert_eq!(
        t.cache,
        qlam_plugin_api::CacheControl::Session,
        "no expires_in: unknown expiry"
    );
}

/// The token request a client-credentials login sends with these configuration keys.
fn client_credentials_request(keys: Value) -> Req {
    let stub = Stub::start(|_| (200, tokens("a", None, Some(60))));
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    for (k, v) in keys.as_object().unwrap() {
        config[k] = v.clone();
    }
    let (p, _) = provider(config, &clock);
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    stub.requests_to("/token").remove(0)
}

#[test]
fn client_secret_basic_form_urlencodes_id_and_secret() {
    let sent = client_credentials_request(
        json!({"client_id": "my client:1", "client_secret": "s3 cr:et/+%"}),
    );
    let auth = sent.authorization.unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("{}:{}", enc("my client:1"), enc("s3 cr:et/+%"))
    );
}

#[test]
fn client_secret_post_sends_id_and_secret_in_the_body_and_no_basic_header() {
    let sent = client_credentials_request(json!({
        "client_secret": "s3 cr:et/+%", "token_endpoint_auth_method": "client_secret_post"
    }));
    assert_eq!(sent.authorization, None);
    assert_eq!(sent.form("client_id").as_deref(), Some("qlam-cli"));
    assert_eq!(sent.form("client_secret").as_deref(), Some("s3 cr:et/+%"));
    // A method that needs what is not configured is said at once.
    let e = crate::config::OAuthConfig::parse(&json!({
        "client_id": "c", "token_endpoint": "https://as.example/token",
        "token_endpoint_auth_method": "private_key_jwt"
    }))
    .unwrap_err();
    assert!(e.message().contains("needs `private_key_file`"), "{e}");
}

#[test]
fn invalid_client_is_a_configuration_error() {
    let stub = Stub::start(|_| (401, json!({"error": "invalid_client"}).to_string()));
    let clock = FakeClock::at(NOW);
    let mut config = explicit(&stub);
    config["flow"] = json!("client_credentials");
    config["client_secret"] = json!("s");
    let (p, _) = provider(config, &clock);
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
}

#[test]
fn discovery_issuer_must_match_and_falls_back_to_rfc8414() {
    let issuer_seen = Arc::new(Mutex::new(String::new()));
    let seen = issuer_seen.clone();
    let stub = Stub::start(move |r| {
        match r.path.as_str() {
        "/.well-known/openid-configuration" => (404, "{}".into()),
        "/.well-known/oauth-authorization-server" => (200, json!({"issuer": seen.lock().unwrap().clone(), "token_endpoint": "http://127.0.0.1:9/token"}).to_string()),
        _ => (404, "{}".into()),
    }
    });
    *issuer_seen.lock().unwrap() = "https://evil.example".into();
    let clock = FakeClock::at(NOW);
    let config = json!({"issuer": stub.base, "client_id": "c", "client_secret": "s", "flow": "client_credentials"});
    let (p, _) = provider(config.clone(), &clock);
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        e.message()
            .contains("names issuer `https://evil.example`, but the configuration says"),
        "{e}"
    );
    assert_eq!(
        stub.requests_to("/.well-known/").len(),
        2,
        "OIDC first, then RFC 8414"
    );
    // With the right issuer, discovery proceeds to the (unreachable) token endpoint.
    *issuer_seen.lock().unwrap() = stub.base.clone();
    let (p, _) = provider(config, &clock);
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
}

#[test]
fn browser_flow_stops_on_a_wrong_iss_before_any_token_request() {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let stub = Stub::start(move |r| {
        let base = b.lock().unwrap().clone();
        match r.path.as_str() {
            "/.well-known/openid-configuration" => (
                200,
                json!({
                    "issuer": base,
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/token"),
                    "authorization_response_iss_parameter_supported": true,
                })
                .to_string(),
            ),
            _ => (200, tokens("a", None, Some(60))),
        }
    });
    *base.lock().unwrap() = stub.base.clone();
    let clock = FakeClock::at(NOW);
    let config = json!({"issuer": stub.base, "client_id": "c", "flow": "browser"});
    let (p, services) = provider(config.clone(), &clock);
    let browser = std::thread::spawn({
        let services = services.clone();
        move || act_as_browser(&services, "&iss=https%3A%2F%2Fevil.example")
    });
    let e = p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap_err();
    browser.join().unwrap();
    assert!(
        e.message().contains("names issuer `https://evil.example`"),
        "{e}"
    );
    assert!(
        stub.requests_to("/token").is_empty(),
        "no token request after a mix-up"
    );
    assert!(services.secrets().is_empty());
    // The announced `iss` is required: a callback without it is refused too.
    let (p, services) = provider(config.clone(), &clock);
    let browser = std::thread::spawn({
        let services = services.clone();
        move || act_as_browser(&services, "")
    });
    assert!(p
        .login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .is_err());
    browser.join().unwrap();
    assert!(stub.requests_to("/token").is_empty());
    // The right `iss`: the code is exchanged with the PKCE verifier.
    let (p, services) = provider(config, &clock);
    let iss = url::form_urlencoded::byte_serialize(stub.base.as_bytes()).collect::<String>();
    let browser = std::thread::spawn({
        let services = services.clone();
        move || act_as_browser(&services, &format!("&iss={iss}"))
    });
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    browser.join().unwrap();
    let exchange = &stub.requests_to("/token")[0];
    assert_eq!(
        exchange.form("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(exchange.form("code").as_deref(), Some("the-code"));
    assert!(exchange
        .form("code_verifier")
        .is_some_and(|v| v.len() >= 43));
}

/// Waits for the provider to open the authorization URL, checks it, and calls the loopback
/// redirect like a browser would after the user logged in.
fn act_as_browser(services: &MemoryServices, extra: &str) {
    let url = loop {
        if let Some(u) = services.interactions().iter().find_map(|i| match i {
            Interaction::OpenUrl { url } => Some(url.clone()),
            _ => None,
        }) {
            break u;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let url = url::Url::parse(&url).unwrap();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(q("response_type").as_deref(), Some("code"));
    let state = q("state").unwrap();
    assert!(state.len() >= 22, "at least 128 bits of state");
    let redirect = url::Url::parse(&q("redirect_uri").unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redirect.port().unwrap())).unwrap();
    write!(
        s,
        "GET {}?code=the-code&state={state}{extra} HTTP/1.1\r\nHost: x\r\n\r\n",
        redirect.path()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
}

#[test]
fn logout_revokes_refresh_then_access_and_always_deletes() {
    let (p, _, services, stub) =
        logged_in(vec![(200, tokens("a1", Some("r1"), Some(600)))], json!({}));
    let report = p.login_logout().unwrap().logout().unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let revokes = stub.requests_to("/revoke");
    assert_eq!(revokes.len(), 2);
    assert_eq!(revokes[0].form("token").as_deref(), Some("r1"));
    assert_eq!(
        revokes[0].form("token_type_hint").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(revokes[1].form("token").as_deref(), Some("a1"));
    assert!(services.secrets().is_empty());

    // A failing revocation is reported, and local state still goes.
    let stub = Stub::start(|r| {
        match r.path.as_str() {
        "/device" => (200, json!({"device_code": "d", "user_code": "U", "verification_uri": "https://x/d", "expires_in": 600, "interval": 1}).to_string()),
        "/token" => (200, tokens("a1", Some("r1"), Some(600))),
        _ => (503, String::new()),
    }
    });
    let clock = FakeClock::at(NOW);
    let (p, services) = provider(explicit(&stub), &clock);
    p.login_logout()
        .unwrap()
        .login(&LoginOptions::default())
        .unwrap();
    let report = p.login_logout().unwrap().logout().unwrap();
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0]
        .starts_with("could not revoke the refresh token at the server: the server answered 503"));
    assert!(services.secrets().is_empty());
}

#[test]
fn the_refresh_margin_is_capped_at_half_the_lifetime() {
    let (p, clock, _, stub) = logged_in(
        vec![(200, tokens("a1", Some("r1"), Some(60)))],
        json!({"refresh_margin_secs": 600}),
    );
    let t = p.token_source().unwrap().token().unwrap();
    assert_eq!(
        t.cache,
        qlam_plugin_api::CacheControl::Until("2030-01-01T00:00:30Z".parse().unwrap())
    );
    assert!(
        !p.refresher().unwrap().refresh(false).unwrap(),
        "not yet inside the (capped) margin"
    );
    clock.advance(Duration::from_secs(31));
    assert_eq!(stub.requests_to("/token").len(), 1);
}

mod presets;
