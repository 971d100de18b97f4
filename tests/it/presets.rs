//! OAuth presets end to end through the `qlam` binary, against loopback stubs of services
//! that cannot run here. Each stub reproduces the service's documented wire behaviour; the
//! deviations are named where they are played. (The preset logic itself is tested per service
//! in plugins/oauth/src/tests/presets.rs; this is the path a user takes.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::util::stub::{serve, Reply, Request};
use crate::util::Home;

/// GitHub's device flow ("Authorizing OAuth apps", device flow): form-encoded answers unless
/// the request accepts JSON; polling errors with HTTP 200 (oauth2-rs #218 and #310: oauth2-rs
/// read them as a malformed token response; cli/cli #9370); `scope` comma-separated; tokens of
/// an OAuth app with no expiry and no refresh token; the login from the REST API's `GET /user`,
/// which refuses requests without a User-Agent.
fn github_stub(polls: Arc<AtomicUsize>) -> String {
    serve(move |r: &Request| {
        let json = r
            .header("accept")
            .is_some_and(|a| a.contains("application/json"));
        let answer = |pairs: &[(&str, &str)]| {
            if json {
                let m: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| {
                        let v = v
                            .parse::<u64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| serde_json::json!(v));
                        (k.to_string(), v)
                    })
                    .collect();
                Reply::json("200 OK", serde_json::Value::Object(m).to_string())
            } else {
                let mut f = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    f.append_pair(k, v);
                }
                Reply {
                    status: "200 OK",
                    headers: vec![(
                        "Content-Type",
                        "application/x-www-form-urlencoded; charset=utf-8".into(),
                    )],
                    body: f.finish(),
                }
            }
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/login/device/code")
                if r.form("client_id").as_deref() == Some("Ov23li-e2e") =>
            {
                answer(&[
                    ("device_code", "canary-device-code-e2e"),
                    ("user_code", "WDJB-MJHT"),
                    ("verification_uri", "https://github.com/login/device"),
                    ("expires_in", "899"),
                    // GitHub says 5; the stub says 1 to keep the test short.
                    ("interval", "1"),
                ])
            }
            ("POST", "/login/oauth/access_token") => {
                if r.form("device_code").as_deref() != Some("canary-device-code-e2e") {
                    return answer(&[("error", "incorrect_device_code")]);
                }
                match polls.fetch_add(1, Ordering::SeqCst) {
                    0 => answer(&[
                        ("error", "authorization_pending"),
                        ("error_description", "The authorization request is still pending."),
                        ("error_uri", "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow"),
                    ]),
                    _ => answer(&[
                        ("access_token", "gho_canaryE2Etoken"),
                        ("token_type", "bearer"),
                        ("scope", "gist,read:org,repo"),
                    ]),
                }
            }
            ("GET", "/user") => {
                if r.header("user-agent").unwrap_or("").is_empty() {
                    return Reply::json(
                        "403 Forbidden",
                        r#"{"message":"Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}"#,
                    );
                }
                if r.auth() != "Bearer gho_canaryE2Etoken" {
                    return Reply::json("401 Unauthorized", r#"{"message":"Bad credentials"}"#);
                }
                Reply::json("200 OK", r#"{"login":"octocat","id":583231,"type":"User"}"#)
            }
            _ => Reply::json("404 Not Found", r#"{"message":"Not Found"}"#),
        }
    })
}

#[test]
fn github_device_login_then_git_credential_fill_for_github_com() {
    crate::util::require_tool("git");
    let polls = Arc::new(AtomicUsize::new(0));
    let base = github_stub(polls.clone());
    let home = Home::new();
    // Three lines for a user; the endpoint keys only point the preset at the stub.
    home.write_config(&format!(
        r#"current_context = "t"
[contexts.t]
[[contexts.t.auth_providers]]
name = "gh"
provider = "oauth"
preset = "github"
client_id = "Ov23li-e2e"
device_authorization_endpoint = "{base}/login/device/code"
token_endpoint = "{base}/login/oauth/access_token"
authorization_endpoint = "{base}/login/oauth/authorize"
userinfo_endpoint = "{base}/user"
"#
    ));
    let r = home.run(&["auth", "login", "gh", "--flow", "device"]);
    r.ok();
    assert!(
        r.stderr
            .contains("Visit https://github.com/login/device and enter code WDJB-MJHT"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .ends_with("Logged in to `gh` at github.com as octocat\n"),
        "{}",
        r.stderr
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2, "one pending, one token");
    assert!(!r.stderr.contains("canary"), "{}", r.stderr);

    let status = home
        .run(&["--output", "json", "auth", "status", "-v"])
        .json();
    assert_eq!(status[0]["status"], "authenticated");
    assert_eq!(
        status[0]["extra_info"]["helper_hosts"],
        serde_json::json!(["github.com"])
    );
    assert_eq!(
        status[0]["auth_context"]["scopes"],
        serde_json::json!(["gist", "read:org", "repo"])
    );

    // git asks about github.com: no `hosts` route is configured, the preset claims it, and
    // the user name is the account's login (as Git Credential Manager sends).
    let fill = |url: &str| {
        crate::util::git_credential_fill(&home, "", &[], &format!("url={url}\n\n"), &[])
    };
    let out = fill("https://github.com/octocat/Hello-World.git");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "protocol=https\nhost=github.com\nusername=octocat\npassword=gho_canaryE2Etoken\n"
    );
    // Another host is not GitHub's: git gets nothing from qlam (and, with prompts off, fails).
    let out = fill("https://gitlab.com/x/y.git");
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());

    // Logout: nothing to revoke at GitHub for this client; said, and the token is gone here.
    let r = home.run(&["auth", "logout", "gh"]);
    r.ok();
    assert!(r.stderr.contains("no revocation endpoint"), "{}", r.stderr);
    home.run(&["auth", "token", "gh"]).code(3);
}
