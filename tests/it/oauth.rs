//! The `oauth` provider end to end through the `qlam` binary, against a real authorization
//! server on loopback (`oidc-provider` over TLS with a test CA, so `ca_file` is used for real).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::{json, Value};

use crate::util::oauth::OAuthServer;
use crate::util::{run, Home};

fn config(server: &OAuthServer, extra: &str) -> String {
    format!(
        r#"current_context = "t"
[contexts.t]

[[contexts.t.auth_providers]]
name = "sso"
provider = "oauth"
issuer = "{issuer}"
client_id = "qlam-cli"
scopes = ["openid", "offline_access", "profile", "email", "api"]
ca_file = "{ca}"
{extra}

[[contexts.t.auth_providers]]
name = "svc"
provider = "oauth"
issuer = "{issuer}"
client_id = "qlam-service"
client_secret_env = "QLAM_TEST_CLIENT_SECRET"
flow = "client_credentials"
scopes = ["api"]
ca_file = "{ca}"
"#,
        issuer = server.issuer,
        ca = server.ca_file.display()
    )
}

fn secrets(home: &Home, provider: &str) -> Value {
    let r = home.run(&["auth", "credential", provider, "--show-secrets"]);
    r.ok();
    r.json()
}

fn browser_login(home: &Home, server: &OAuthServer) -> crate::util::Run {
    run(home
        .qlam()
        .env("BROWSER", server.browser(""))
        .args(["auth", "login", "sso", "--flow", "browser"]))
}

#[test]
fn browser_flow_then_refresh_with_rotation_then_logout_revokes() {
    let server = OAuthServer::start(600);
    let home = Home::new();
    home.write_config(&config(&server, ""));
    let r = browser_login(&home, &server);
    r.ok();
    assert!(
        r.stderr
            .contains("Opened your browser at https://127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.ends_with("Logged in to `sso` as alice\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        server
            .events("grant.success", Some("authorization_code"))
            .len(),
        1
    );
    // Who logged in comes from the ID token, verified against the server's published RS256
    // key, with the nonce this login sent (OpenID Connect Core §3.1.3.7).
    let who = home
        .run(&["--output", "json", "auth", "status", "-v"])
        .json()[0]["auth_context"]
        .clone();
    // (oidc-provider puts only `sub` in the ID token; profile claims are at userinfo.)
    let subject = who["subject"].as_str().expect("a verified subject");
    assert_eq!(subject, "alice", "{who}");

    let status = home.run(&["--output", "json", "auth", "status"]).json();
    assert_eq!(status[0]["status"], "authenticated");
    assert_eq!(
        status[0]["extra_info"],
        json!({"issuer": server.issuer, "client_id": "qlam-cli", "flow": "auto"})
    );
    let c1 = secrets(&home, "sso");
    assert_eq!(c1["kind"], "oauth");
    assert_eq!(c1["allows_refresh"], true);
    let (at1, rt1) = (
        c1["access_token"].as_str().unwrap().to_owned(),
        c1["refresh_token"].as_str().unwrap().to_owned(),
    );
    let t = home.run(&["auth", "token", "sso"]);
    t.ok();
    assert_eq!(t.stdout.trim(), at1);
    assert_eq!(
        home.run(&["auth", "headers", "sso"]).stdout,
        format!("Authorization: Bearer {at1}\n")
    );

    // A forced refresh rotates the refresh token; the old one is dead afterwards.
    let r = home.run(&["auth", "refresh", "sso", "--force"]);
    r.ok();
    assert_eq!(r.stderr, "Refreshed `sso`\n");
    let c2 = secrets(&home, "sso");
    let (at2, rt2) = (
        c2["access_token"].as_str().unwrap().to_owned(),
        c2["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_ne!(at1, at2);
    assert_ne!(rt1, rt2, "refresh token rotation");
    assert_eq!(
        server.events("grant.success", Some("refresh_token")).len(),
        1
    );
    // The refresh dropped the remembered answer: the new token is served, not the old one.
    assert_eq!(home.run(&["auth", "token", "sso"]).stdout.trim(), at2);
    // Without --force a valid token is not refreshed.
    let r = home.run(&["auth", "refresh", "sso"]);
    r.ok();
    assert_eq!(r.stderr, "`sso`: still valid; nothing to refresh\n");
    assert_eq!(
        server.events("grant.success", Some("refresh_token")).len(),
        1
    );

    // Logout revokes at the server and forgets locally.
    let r = home.run(&["auth", "logout", "sso"]);
    r.ok();
    assert_eq!(r.stderr, "Logged out of `sso`\n");
    assert!(!server.events("revocation.success", None).is_empty());
    let (status, body) = server.refresh_directly(&rt2);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the revoked refresh token is dead: {body}"
    );
    // Logged out: no remembered answer is served.
    home.run(&["auth", "token", "sso"]).code(3);
    home.run(&["auth", "headers", "sso"]).code(3);
    let (status, _) = server.refresh_directly(&rt1);
    assert_eq!(
        status, 400,
        "the rotated-out refresh token never worked again"
    );
}

#[test]
fn device_flow_prints_the_code_and_completes_when_approved() {
    let server = OAuthServer::start(60);
    let home = Home::new();
    home.write_config(&config(&server, ""));
    let mut child = home
        .qlam()
        .args(["auth", "login", "sso", "--flow", "device"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let visit = lines.next().unwrap().unwrap();
    let rest = visit
        .strip_prefix("Visit ")
        .unwrap_or_else(|| panic!("first line: {visit}"));
    let (uri, code) = rest.split_once(" and enter code ").unwrap();
    assert!(uri.starts_with(&server.issuer), "{uri}");
    let complete = lines.next().unwrap().unwrap();
    assert!(
        complete.starts_with("or open ") && complete.contains("user_code="),
        "{complete}"
    );
    let approved = server.approve_device(uri, code);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let tail: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{tail:?}");
    assert_eq!(
        tail.last().map(String::as_str),
        Some("Logged in to `sso` as alice"),
        "{tail:?}"
    );
    assert_eq!(
        server
            .events(
                "grant.success",
                Some("urn:ietf:params:oauth:grant-type:device_code")
            )
            .len(),
        1
    );
    let c = secrets(&home, "sso");
    assert_eq!(c["status"], "authenticated");
    assert!(c["refresh_token"].is_string());
}

#[test]
fn client_credentials_and_renewal_by_a_new_grant() {
    let server = OAuthServer::start(2);
    let home = Home::new();
    home.write_config(&config(&server, ""));
    let secret = |cmd: &mut std::process::Command| {
        cmd.env("QLAM_TEST_CLIENT_SECRET", "qlam-service-secret");
    };
    let mut login = home.qlam();
    secret(&mut login);
    run(login.args(["auth", "login", "svc"])).ok();
    assert_eq!(
        server
            .events("grant.success", Some("client_credentials"))
            .len(),
        1
    );
    let c = secrets(&home, "svc");
    assert_eq!(
        c["refresh_token"],
        Value::Null,
        "no refresh token for client credentials"
    );
    assert_eq!(c["allows_refresh"], true);
    // Within the margin (at most half of the 2 s lifetime) a use renews by a new grant.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut token = home.qlam();
    secret(&mut token);
    let t = run(token.args(["auth", "token", "svc", "--format", "json"]));
    t.ok();
    assert_eq!(
        server
            .events("grant.success", Some("client_credentials"))
            .len(),
        2
    );
    assert_ne!(t.json()["token"], c["access_token"]);
    // Proxies from the standard environment variables are used (and NO_PROXY is honoured):
    // through a proxy that is not there the grant fails as transient, without it it works.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut proxied = home.qlam();
    secret(&mut proxied);
    let r = run(proxied
        .env("HTTPS_PROXY", format!("http://{closed}"))
        .env_remove("NO_PROXY")
        .args(["auth", "login", "svc"]));
    r.code(1);
    assert!(r.stderr.contains("try again later"), "{}", r.stderr);
    let mut bypass = home.qlam();
    secret(&mut bypass);
    run(bypass
        .env("HTTPS_PROXY", format!("http://{closed}"))
        .env("NO_PROXY", "127.0.0.1")
        .args(["auth", "login", "svc"]))
    .ok();
    // A wrong secret is a configuration error.
    let mut bad = home.qlam();
    bad.env("QLAM_TEST_CLIENT_SECRET", "wrong");
    let r = run(bad.args(["auth", "login", "svc"]));
    r.code(1);
    assert!(
        r.stderr
            .contains("the server rejected the client (`invalid_client`"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_expired_access_token_is_refreshed_on_use_and_exec_credential_is_valid() {
    let server = OAuthServer::start(1);
    let home = Home::new();
    home.write_config(&config(&server, "refresh_margin_secs = 0"));
    browser_login(&home, &server).ok();
    let before = secrets(&home, "sso");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    home.run(&["auth", "status"]).ok();
    let r = home.run(&["auth", "token", "sso", "--format", "exec-credential"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v["kind"], "ExecCredential");
    let token = v["status"]["token"].as_str().unwrap();
    assert_ne!(
        token,
        before["access_token"].as_str().unwrap(),
        "refreshed on use"
    );
    let ts = v["status"]["expirationTimestamp"].as_str().unwrap();
    assert!(chrono_like_rfc3339(ts), "{ts}");
    assert_eq!(
        v.as_object().unwrap().len(),
        3,
        "only apiVersion, kind and status: {v}"
    );
    assert_eq!(
        server.events("grant.success", Some("refresh_token")).len(),
        1
    );
}

/// `2030-01-02T03:04:05Z`: RFC 3339 in UTC, as Kubernetes' `metav1.Time` expects.
fn chrono_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && s.chars().filter(char::is_ascii_digit).count() == 14
}

#[test]
fn no_token_value_reaches_stderr_at_trace_level() {
    let server = OAuthServer::start(60);
    let home = Home::new();
    home.write_config(&config(&server, ""));
    let mut stderr = String::new();
    let mut trace = |args: &[&str]| {
        let r = run(home
            .qlam()
            .env("BROWSER", server.browser(""))
            .env("QLAM_TEST_CLIENT_SECRET", "qlam-service-secret")
            .env("QLAM_LOG", "trace")
            .arg("-vv")
            .args(args));
        stderr.push_str(&r.stderr);
        r
    };
    trace(&["auth", "login", "sso", "--flow", "browser"]).ok();
    trace(&["auth", "login", "svc"]).ok();
    let mut values = Vec::new();
    for p in ["sso", "svc"] {
        let c = secrets(&home, p);
        for k in ["access_token", "refresh_token"] {
            if let Some(v) = c[k].as_str() {
                values.push(v.to_owned());
            }
        }
    }
    trace(&["auth", "refresh", "sso", "--force"]).ok();
    values.extend(
        ["access_token", "refresh_token"]
            .iter()
            .filter_map(|k| secrets(&home, "sso")[*k].as_str().map(str::to_owned)),
    );
    for args in [
        &["auth", "status"][..],
        &["auth", "token", "sso"],
        &["auth", "headers", "svc"],
        &["auth", "credential", "sso"],
        &["auth", "logout"],
    ] {
        trace(args).ok();
    }
    assert!(stderr.contains("trace: ") || stderr.contains("debug: "));
    values.push("qlam-service-secret".into());
    for v in &values {
        assert!(
            !stderr.contains(v.as_str()),
            "a secret reached stderr:\n{stderr}"
        );
    }
    assert!(values.len() >= 5);
}

#[test]
fn a_refresh_asks_for_no_more_than_was_granted() {
    // The server grants fewer scopes than asked (`phone` is not one it knows, so it drops
    // it). RFC 6749 §6: a refresh may ask only for scopes the refresh token has, and no
    // `scope` means "as granted" — sending the configured scopes made every refresh fail with
    // `invalid_scope` (refresh token missing requested scope): logged out at the first expiry.
    let server = OAuthServer::start(600);
    let home = Home::new();
    home.write_config(&config(&server, "").replace(
        r#"scopes = ["openid", "offline_access", "profile", "email", "api"]"#,
        r#"scopes = ["openid", "offline_access", "api", "phone"]"#,
    ));
    browser_login(&home, &server).ok();
    let before = secrets(&home, "sso");
    let r = home.run(&["auth", "refresh", "sso", "--force"]);
    r.ok();
    let after = secrets(&home, "sso");
    assert_ne!(before["access_token"], after["access_token"], "a new token");
    let refresh = server.events("grant.success", Some("refresh_token"));
    assert_eq!(refresh.len(), 1, "{refresh:?}");
    // The granted scope is kept with the tokens (the token response's `scope`).
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(home.store_dir().join("t/sso.json")).unwrap(),
    )
    .unwrap();
    let tokens: Value =
        serde_json::from_str(stored["entries"]["tokens"].as_str().unwrap()).unwrap();
    let scopes: Vec<&str> = tokens["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        scopes.contains(&"api") && !scopes.contains(&"phone"),
        "{scopes:?}"
    );
    // And it still works after the refresh (rotation: the new refresh token).
    home.run(&["auth", "refresh", "sso", "--force"]).ok();
    // `auth status -v` shows what was granted.
    let r = home.run(&["-v", "--output", "json", "auth", "status"]);
    r.ok();
    let granted = &r.json()[0]["auth_context"]["scopes"];
    assert!(
        granted
            .as_array()
            .is_some_and(|a| a.contains(&json!("api")) && !a.contains(&json!("phone"))),
        "{granted}"
    );
    let r = home.run(&["-v", "auth", "status"]);
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("  scopes: "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("api") && !line.contains("phone"), "{line}");
    // And `auth credential` shows them beside the tokens.
    let r = home.run(&["auth", "credential", "sso"]);
    r.ok();
    let granted = &r.json()["scopes"];
    assert!(
        granted
            .as_array()
            .is_some_and(|a| a.contains(&json!("api")) && !a.contains(&json!("phone"))),
        "{}",
        r.stdout
    );
}

#[test]
fn a_service_identity_gets_its_token_on_first_use_one_grant_for_sixteen_processes() {
    // flow = "client_credentials" with a secret needs no person and no `auth login` (like
    // MSAL's acquire_token_for_client, kubelogin's client-credentials grant): the first use
    // fetches a token, under the host's cross-process refresh lock.
    let server = OAuthServer::start(600);
    let home = Home::new();
    home.write_config(&config(&server, ""));
    let qlam = |args: &[&str]| {
        let mut c = home.qlam();
        c.env("QLAM_TEST_CLIENT_SECRET", "qlam-service-secret")
            .args(args);
        c
    };
    let status = run(&mut qlam(&["--output", "json", "auth", "status"]));
    status.ok();
    assert_eq!(status.json()[1]["name"], "svc");
    assert_eq!(status.json()[1]["status"], "available", "no token yet");
    let children: Vec<_> = (0..16)
        .map(|_| {
            qlam(&["auth", "token", "svc"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let tokens: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(tokens
        .iter()
        .all(|t| t == &tokens[0] && !t.trim().is_empty()));
    assert_eq!(
        server
            .events("grant.success", Some("client_credentials"))
            .len(),
        1,
        "one grant for sixteen processes"
    );
    // Headers and the status work the same way; `auth login svc` stays valid.
    run(&mut qlam(&["auth", "headers", "svc"])).ok();
    let status = run(&mut qlam(&["--output", "json", "auth", "status"]));
    assert_eq!(status.json()[1]["status"], "authenticated");
    run(&mut qlam(&["auth", "login", "svc"])).ok();
}

/// `private_key_jwt` (RFC 7523): what Entra ID, Okta and Keycloak recommend for services. The
/// real server checks the signature against the client's registered key, the audience, and
/// that no assertion is used twice (a fresh `jti` for every request).
#[test]
fn private_key_jwt_service_identities_with_ec_and_rsa_keys() {
    let server = OAuthServer::start(600);
    let home = Home::new();
    let provider = |name: &str, client: &str, key: &std::path::Path, kid: &str| {
        format!(
            "[[contexts.t.auth_providers]]\nname = \"{name}\"\nprovider = \"oauth\"\nissuer = \"{}\"\nclient_id = \"{client}\"\nprivate_key_file = \"{}\"\nprivate_key_id = \"{kid}\"\nflow = \"client_credentials\"\nscopes = [\"api\"]\nca_file = \"{}\"\n",
            server.issuer,
            key.display(),
            server.ca_file.display()
        )
    };
    home.write_config(&format!(
        "current_context = \"t\"\n[contexts.t]\n{}{}{}",
        provider("ec", "qlam-jwt", &server.client_key, "qlam-jwt-key"),
        provider(
            "rsa",
            "qlam-jwt-rsa",
            &server.client_rsa_key,
            "qlam-jwt-rsa-key"
        ),
        // The EC client presenting the RSA key: the server must refuse it.
        provider("wrong", "qlam-jwt", &server.client_rsa_key, "qlam-jwt-key"),
    ));
    for name in ["ec", "rsa"] {
        let t = home.run(&["auth", "token", name]);
        t.ok();
        assert!(!t.stdout.trim().is_empty());
    }
    // A forced renewal is a new grant with a new assertion (a replayed one is refused).
    home.run(&["auth", "refresh", "ec", "--force"]).ok();
    let grants = server.events("grant.success", Some("client_credentials"));
    let by = |client: &str| {
        grants
            .iter()
            .filter(|g| g["client_id"] == client && g["client_auth_method"] == "private_key_jwt")
            .count()
    };
    assert_eq!((by("qlam-jwt"), by("qlam-jwt-rsa")), (2, 1), "{grants:?}");

    let r = home.run(&["auth", "token", "wrong"]);
    r.code(1);
    assert!(r.stderr.contains("rejected the client"), "{}", r.stderr);
}
