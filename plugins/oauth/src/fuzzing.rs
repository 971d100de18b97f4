//! The hook of the fuzz target `token_response` and of its corpus replay in the tests: not
//! an API. It runs the provider's real grant code (oauth2's parsing, [`OAuthProvider`]'s
//! error mapping, `accept`, storing, and reading the tokens back) against an in-memory
//! server that gives the fuzzed answer. No network, no files, no sleeping.
//!
//! An input is a header line and the body of the answer:
//!
//! ```text
//! <grant> <status> [<content-type>]
//! <body…>
//! ```
//!
//! `grant` is where the fuzzed answer goes:
//! - `refresh`: the token endpoint's answer to a refresh of expired stored tokens;
//! - `client_credentials`: the token endpoint's answer to a client-credentials login;
//! - `device`: the token endpoint's answer to every poll of a device login;
//! - `device_authorization`: the device authorization endpoint's answer (the token endpoint
//!   then answers `slow_down` once, then tokens).
//!
//! A header that does not parse means `refresh 200`, with the whole input as the body.
//!
//! Checked: no panic; no secret in an error, a log line or an interaction. The secrets are
//! the stored tokens and client secret, and the body's `access_token`, `refresh_token`,
//! `id_token` and `device_code` strings that contain `canary` (corpus inputs name their
//! tokens so) unless the answer also puts that text where it may be shown (the
//! Content-Type, a key, `error`, `error_description`, `token_type`…). Tokens that were
//! accepted must read back.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::HttpRequest;
use qlam_plugin_api::testing::MemoryServices;
use qlam_plugin_api::{LoginLogout, LoginOptions, Provider, Refresh, Secret};
use serde_json::{json, Map, Value};

use crate::clock::Clock;
use crate::config::OAuthConfig;
use crate::http::Http;
use crate::stored::Stored;
use crate::OAuthProvider;

const NOW: &str = "2030-01-01T00:00:00Z";
const TOKEN_URL: &str = "https://idp.invalid/token";
const DEVICE_URL: &str = "https://idp.invalid/device";
const FIXED_SECRETS: [&str; 4] = [
    "canary-stored-access",
    "canary-stored-refresh",
    "canary-client-secret",
    "canary-device-code",
];

/// Where the fuzzed answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Refresh,
    ClientCredentials,
    Device,
    DeviceAuthorization,
}

/// A clock that moves only when slept on (saturating at the end of time).
struct StepClock(Mutex<DateTime<Utc>>);

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn sleep(&self, d: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now = chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

/// The header line and the body of an input.
fn split(input: &[u8]) -> (Grant, u16, Option<String>, &[u8]) {
    let fallback = (Grant::Refresh, 200, None, input);
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        return fallback;
    };
    let Ok(header) = std::str::from_utf8(&input[..nl]) else {
        return fallback;
    };
    let mut words = header.split(' ');
    let grant = match words.next() {
        Some("refresh") => Grant::Refresh,
        Some("client_credentials") => Grant::ClientCredentials,
        Some("device") => Grant::Device,
        Some("device_authorization") => Grant::DeviceAuthorization,
        _ => return fallback,
    };
    let Some(status) = words.next().and_then(|s| s.parse::<u16>().ok()) else {
        return fallback;
    };
    let content_type = words.next().map(str::to_owned);
    (grant, status, content_type, &input[nl + 1..])
}

/// The secrets that must never be shown, and the text the body allows to be shown.
fn secrets_of(body: &[u8]) -> (Vec<String>, String) {
    let mut secrets: Vec<String> = FIXED_SECRETS.iter().map(|s| s.to_string()).collect();
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        // Not a JSON object: nothing in it is a token, but nothing is exempt either.
        return (secrets, String::from_utf8_lossy(body).into_owned());
    };
    let mut shown = String::new();
    fn walk(v: &Value, secret_field: bool, shown: &mut String, secrets: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    shown.push_str(k);
                    shown.push('\n');
                    walk(v, false, shown, secrets);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, false, shown, secrets)),
            Value::String(s) if secret_field && s.contains("canary") => secrets.push(s.clone()),
            Value::String(s) => {
                shown.push_str(s);
                shown.push('\n');
            }
            _ => {}
        }
    }
    for (k, v) in &top {
        shown.push_str(k);
        shown.push('\n');
        let secret_field = matches!(
            k.as_str(),
            "access_token" | "refresh_token" | "id_token" | "device_code"
        );
        walk(v, secret_field, &mut shown, &mut secrets);
    }
    (secrets, shown)
}

fn provider(grant: Grant, services: &Arc<MemoryServices>, http: Http) -> OAuthProvider {
    let mut config = json!({
        "client_id": "qlam-fuzz",
        "token_endpoint": TOKEN_URL,
        "device_authorization_endpoint": DEVICE_URL,
        "revocation_endpoint": "https://idp.invalid/revoke",
        "scopes": ["openid", "offline_access"],
        "refresh_margin_secs": 120,
        "flow": "device",
    });
    if grant == Grant::ClientCredentials {
        config["flow"] = json!("client_credentials");
        config["client_secret"] = json!("canary-client-secret");
    }
    let config = OAuthConfig::parse(&config).expect("the fuzz configuration is valid");
    let now: DateTime<Utc> = NOW.parse().expect("a valid time");
    OAuthProvider {
        name: "fuzz".into(),
        identity: config.identity(),
        config,
        services: services.handle(),
        clock: Arc::new(StepClock(Mutex::new(now))),
        http: OnceLock::from(http),
        metadata: OnceLock::new(),
        jwks: std::sync::Mutex::new(None),
    }
}

/// Panics when a secret is in what was said, unless the answer allowed it to be shown.
fn check_not_shown(secrets: &[String], shown: &str, said: &str) {
    for s in secrets {
        assert!(
            shown.contains(s.as_str()) || !said.contains(s.as_str()),
            "a secret (`{s}`) was shown:\n{said}"
        );
    }
}

/// Runs one input; panics when a check fails.
pub fn token_response(input: &[u8]) {
    let _ = run(input);
}

/// Runs one input, checks, and answers how the grant ended and what was stored.
fn run(input: &[u8]) -> (qlam_plugin_api::Result<()>, Option<Stored>) {
    let (grant, status, content_type, body) = split(input);
    let answer = (status, content_type.clone(), body.to_vec());
    let polls = Mutex::new(0u32);
    let responder = move |req: &HttpRequest| -> (u16, Option<String>, Vec<u8>) {
        let json = Some("application/json".to_owned());
        let to_device = *req.uri() == DEVICE_URL;
        match (grant, to_device) {
            (Grant::DeviceAuthorization, true) => answer.clone(),
            (Grant::DeviceAuthorization, false) => {
                let mut n = polls.lock().unwrap_or_else(|p| p.into_inner());
                *n += 1;
                if *n == 1 {
                    (400, json, br#"{"error":"slow_down"}"#.to_vec())
                } else {
                    let t = r#"{"access_token":"canary-a","token_type":"Bearer","expires_in":600}"#;
                    (200, json, t.as_bytes().to_vec())
                }
            }
            (_, true) => {
                let d = json!({
                    "device_code": "canary-device-code",
                    "user_code": "WDJB-MJHT",
                    "verification_uri": "https://idp.invalid/activate",
                    "expires_in": 30,
                    "interval": 5,
                });
                (200, json, d.to_string().into_bytes())
            }
            (_, false) => answer.clone(),
        }
    };
    let services = MemoryServices::new(&[]);
    let p = provider(grant, &services, Http::in_memory(Box::new(responder)));
    let result = match grant {
        Grant::Refresh => {
            let now = p.clock.now();
            Stored {
                identity: p.identity.clone(),
                access_token: Some(Secret::new("canary-stored-access".into())),
                refresh_token: Some(Secret::new("canary-stored-refresh".into())),
                expires_at: Some(now - chrono::Duration::minutes(1)),
                scopes: Some(vec!["openid".into()]),
                token_endpoint: TOKEN_URL.into(),
                revocation_endpoint: Some("https://idp.invalid/revoke".into()),
                claims: Map::new(),
                flow: "device".into(),
                obtained_at: now - chrono::Duration::hours(1),
            }
            .save(&p.services)
            .expect("memory services store");
            p.refresh(false).map(drop)
        }
        _ => p.login(&LoginOptions::default()),
    };
    let mut said: Vec<String> = services.logs().into_iter().map(|(_, m)| m).collect();
    said.extend(services.interactions().iter().map(|i| format!("{i:?}")));
    let mut stored = None;
    match &result {
        Ok(()) => {
            let s = p
                .load()
                .expect("memory services load")
                .expect("accepted tokens read back");
            assert!(s.access_token.is_some(), "accepted tokens read back");
            stored = Some(s);
            // What the host asks next, reading the stored tokens: none of it may panic.
            let _ = p.is_authenticated();
            let _ = p.can_refresh();
            let _ = p.credential();
            let _ = p.auth_context();
            if let Err(e) = p.current_token() {
                said.push(format!("{e} {e:?}"));
            }
        }
        Err(e) => said.push(format!("{e} {e:?}")),
    }
    let (secrets, mut shown) = secrets_of(body);
    // The Content-Type is quoted when it is not JSON: the header is shown, never the body.
    if let Some(ct) = &content_type {
        shown.push_str(ct);
        if let Ok(v) = oauth2::http::HeaderValue::from_str(ct) {
            shown.push_str(&format!("{v:?}"));
        }
    }
    check_not_shown(&secrets, &shown, &said.join("\n"));
    (result, stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qlam_plugin_api::ErrorKind;

    fn ok(input: &str) -> Stored {
        match run(input.as_bytes()) {
            (Ok(()), Some(s)) => s,
            (r, _) => panic!("{input}: {r:?}"),
        }
    }

    fn err(input: &str) -> qlam_plugin_api::Error {
        run(input.as_bytes()).0.unwrap_err()
    }

    #[test]
    fn every_grant_reaches_the_provider_and_stores_what_it_accepts() {
        let s = ok("refresh 200\n{\"access_token\":\"canary-a\",\"token_type\":\"Bearer\",\"expires_in\":600}");
        assert_eq!(s.access_token.unwrap().expose(), "canary-a");
        assert_eq!(s.expires_at, Some("2030-01-01T00:10:00Z".parse().unwrap()));
        assert_eq!(
            s.refresh_token.unwrap().expose(),
            "canary-stored-refresh",
            "kept: none was returned"
        );
        let s = ok("{\"access_token\":\"canary-a\",\"token_type\":\"bearer\"}");
        assert_eq!(s.flow, "device", "no header: a refresh");
        assert_eq!(
            ok("client_credentials 200\n{\"access_token\":\"canary-c\",\"token_type\":\"Bearer\"}")
                .flow,
            "client_credentials"
        );
        assert_eq!(
            ok("device 200\n{\"access_token\":\"canary-d\",\"token_type\":\"Bearer\"}").flow,
            "device"
        );
        let s = ok("device_authorization 200 application/json\n{\"device_code\":\"canary-dc\",\"user_code\":\"U\",\"verification_uri\":\"https://idp.invalid/a\",\"expires_in\":600}");
        assert_eq!(s.access_token.unwrap().expose(), "canary-a");
        assert_eq!(
            err("refresh 400\n{\"error\":\"invalid_grant\"}").kind(),
            ErrorKind::NotAuthenticated
        );
        assert_eq!(
            err("device 400\n{\"error\":\"access_denied\"}").kind(),
            ErrorKind::Interaction
        );
        assert_eq!(err("refresh 503\n{}").kind(), ErrorKind::Transient);
    }

    #[test]
    fn crashes_found_by_fuzzing_stay_fixed() {
        // An expiry beyond the last representable date is an unknown one.
        let s = ok("refresh 200\n{\"access_token\":\"canary-a\",\"token_type\":\"Bearer\",\"expires_in\":100000000000000}");
        assert_eq!(s.expires_at, None);
        // A poll interval near u64::MAX overflowed in oauth2 on `slow_down`.
        let e = err("device_authorization 200\n{\"device_code\":\"canary-dc\",\"user_code\":\"U\",\"verification_uri\":\"https://idp.invalid/a\",\"expires_in\":600,\"interval\":18446744073709551615}");
        assert!(
            e.message()
                .contains("asks to poll every 18446744073709551615 s"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "a secret (`canary-stored-refresh`) was shown")]
    fn a_shown_secret_is_caught() {
        let (secrets, shown) = secrets_of(br#"{"error":"canary-x","access_token":"canary-x"}"#);
        check_not_shown(
            &secrets,
            &shown,
            "`canary-x`: allowed, the server said it as the error",
        );
        let (secrets, shown) = secrets_of(b"{}");
        check_not_shown(
            &secrets,
            &shown,
            "the refresh failed: canary-stored-refresh",
        );
    }
}
