//! `qlam credential-helper TOOL ACTION`: other tools ask qlam for credentials in their own
//! protocol, answered from the same providers, store, locks and refresh rules as `qlam auth
//! token`. Which provider answers for a host is set per context:
//!
//! ```toml
//! [contexts.work.hosts]
//! "git.example.com" = "corp-sso"
//! "git.example.com/team" = { provider = "team-token", username = "x-token" }
//! ```

use std::io::{BufRead, Write};

use qlam_host::api::CacheControl;
use qlam_host::config::HostRoute;
use qlam_host::{AuthClient, Error};

use crate::app::Ctx;
use crate::args::HelperCommand;
use crate::exit::Exit;

pub(crate) fn run(ctx: &Ctx, cmd: &HelperCommand) -> Result<Exit, Error> {
    match cmd {
        HelperCommand::Git { action } => git(ctx, action),
        HelperCommand::Docker { action } => docker(ctx, action),
        HelperCommand::Cargo { .. } => cargo(ctx),
    }
}

/// Protocol: <https://doc.rust-lang.org/cargo/reference/credential-provider-protocol.html>.
/// qlam says hello (`{"v":[1]}`), then answers each request line: `get` with the routed
/// provider's token and cache control from its expiry, `logout` by logging out, `login` only
/// when the provider is already logged in (qlam's sign-in cannot run inside cargo's
/// protocol: it tells the user to run `qlam auth login`). An index URL without a route is
/// `url-not-supported`, so cargo asks its next provider.
fn cargo(ctx: &Ctx) -> Result<Exit, Error> {
    use serde_json::{json, Value};
    let mut stdout = std::io::stdout().lock();
    let mut send = |v: Value| {
        let _ = writeln!(stdout, "{v}");
        let _ = stdout.flush();
    };
    send(json!({"v": [1]}));
    let client = ctx.client(true);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let other = |m: String| json!({"Err": {"kind": "other", "message": m}});
        let request: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                send(other(format!("qlam cannot read cargo's request: {e}")));
                continue;
            }
        };
        let client = match &client {
            Ok(c) => c,
            Err(e) => {
                send(other(e.message().to_owned()));
                continue;
            }
        };
        let index = request["registry"]["index-url"].as_str().unwrap_or("");
        let (host, path) = server_host_path(index.trim_start_matches("sparse+"));
        let Some(route) = client.helper_route(&host, path.as_deref()) else {
            send(json!({"Err": {"kind": "url-not-supported"}}));
            continue;
        };
        let p = route.provider.as_str();
        let answer = match request["kind"].as_str().unwrap_or("") {
            "get" => match token(client, p) {
                Ok(t) => {
                    let mut ok = json!({"kind": "get", "token": t.token.expose(), "operation_independent": true});
                    match t.cache {
                        CacheControl::Until(at) => {
                            ok["cache"] = json!("expires");
                            ok["expiration"] = json!(at.timestamp());
                        }
                        CacheControl::Session => ok["cache"] = json!("session"),
                        _ => ok["cache"] = json!("never"),
                    }
                    json!({"Ok": ok})
                }
                Err(e) if e.is_not_authenticated() => other(format!(
                    "qlam provider `{p}` is not logged in; run `qlam auth login {p}`"
                )),
                Err(e) => other(e.message().to_owned()),
            },
            "login" => match client.is_authenticated(Some(p)) {
                Ok(true) => json!({"Ok": {"kind": "login"}}),
                _ => other(format!(
                    "qlam provider `{p}` signs in outside cargo: run `qlam auth login {p}`, then cargo uses it"
                )),
            },
            "logout" => match client.logout(Some(p)) {
                Ok(outcomes) if outcomes.iter().all(|o| o.result.is_ok()) => {
                    json!({"Ok": {"kind": "logout"}})
                }
                Ok(outcomes) => other(
                    outcomes
                        .iter()
                        .filter_map(|o| o.result.as_ref().err().map(|e| e.message().to_owned()))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(e) => other(e.message().to_owned()),
            },
            k => json!({"Err": {"kind": "other", "message": format!("qlam does not handle cargo's `{k}` request")}}),
        };
        send(answer);
    }
    Ok(Exit::Ok)
}

/// The host (with port) and path of what Docker calls a server URL: `registry.example.com`,
/// `https://registry.example.com:5000/v2/`, `https://index.docker.io/v1/`.
fn server_host_path(server: &str) -> (String, Option<String>) {
    let rest = server
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(server)
        .trim();
    match rest.split_once('/') {
        Some((h, p)) if !p.trim_matches('/').is_empty() => {
            (h.to_owned(), Some(p.trim_matches('/').to_owned()))
        }
        Some((h, _)) => (h.to_owned(), None),
        None => (rest.to_owned(), None),
    }
}

/// Protocol: <https://github.com/docker/docker-credential-helpers>. The action is an argument,
/// the payload is on stdin (the server URL, or a JSON credential for `store`), the answer on
/// stdout; "not found" is that exact message on stdout and exit 1, which Docker treats as "no
/// credentials" (and then tries anonymously).
fn docker(ctx: &Ctx, action: &str) -> Result<Exit, Error> {
    const NOT_FOUND: &str = "credentials not found in native keychain";
    let mut input = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut input);
    let out = |s: &str| {
        let _ = std::io::stdout().lock().write_all(s.as_bytes());
    };
    match action {
        "get" | "erase" => {
            let server = input.trim();
            let client = ctx.client(true)?;
            let (host, path) = server_host_path(server);
            let Some(route) = client.helper_route(&host, path.as_deref()) else {
                if action == "get" {
                    out(&format!("{NOT_FOUND}\n"));
                    return Ok(Exit::Error);
                }
                return Ok(Exit::Ok);
            };
            if action == "erase" {
                renew(&client, &route.provider);
                return Ok(Exit::Ok);
            }
            match token(&client, &route.provider) {
                Ok(t) => {
                    let username = route
                        .username
                        .clone()
                        .or_else(|| client.helper_username(&route.provider))
                        .unwrap_or_else(|| "oauth2".to_owned());
                    let answer = serde_json::json!({
                        "ServerURL": server,
                        "Username": username,
                        "Secret": t.token.expose(),
                    });
                    out(&format!("{answer}\n"));
                    Ok(Exit::Ok)
                }
                Err(e) => {
                    // Docker shows stdout as the error.
                    out(&format!("qlam: {}\n", e.message()));
                    Ok(Exit::Error)
                }
            }
        }
        "list" => {
            let client = ctx.client(true)?;
            let mut map = serde_json::Map::new();
            if let Some(c) = client.context() {
                for r in &c.hosts {
                    map.insert(
                        r.pattern.clone(),
                        serde_json::json!(r.username.as_deref().unwrap_or("oauth2")),
                    );
                }
            }
            out(&format!("{}\n", serde_json::Value::Object(map)));
            Ok(Exit::Ok)
        }
        // `store`: the provider already holds the credential (`docker login` to a routed host
        // needs no password kept anywhere else).
        _ => Ok(Exit::Ok),
    }
}

/// git's attributes: `key=value` lines up to a blank line or the end of input.
fn read_attributes(input: impl BufRead) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            attrs.push((k.to_owned(), v.to_owned()));
        }
    }
    attrs
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The provider's token as `qlam auth token` gets it: a still-valid answer from the disk
/// cache (no plugin loaded), else from the provider (refreshing first when due).
fn token(client: &AuthClient, provider: &str) -> Result<qlam_host::api::Token, Error> {
    match client.cached_token(provider) {
        Some(t) => Ok(t),
        None => client.token(provider),
    }
}

/// A tool says the server rejected the provider's token: renew it (forget the cached answer,
/// refresh where the provider can) and keep the new answer for the tool's next request.
fn renew(client: &AuthClient, provider: &str) {
    match client.renew(provider) {
        Ok(_) => {
            let _ = client.token(provider);
        }
        Err(e) => eprintln!("qlam: {}", e.message()),
    }
}

/// The provider route for what git asks about, if the current context has one.
fn git_route(client: &AuthClient, attrs: &[(String, String)]) -> Option<HostRoute> {
    let host = attr(attrs, "host")?;
    client.helper_route(host, attr(attrs, "path"))
}

/// Protocol: <https://git-scm.com/docs/git-credential#IOFMT>. A host qlam has no provider for
/// gets no answer (git asks its next helper or the user). qlam keeps refresh tokens itself and
/// never hands them to git (git would pass them on to every other helper, such as `store`,
/// which writes plain text), so `oauth_refresh_token` is never sent; `password_expiry_utc` is,
/// so git and other helpers do not reuse a token after it expires.
fn git(ctx: &Ctx, action: &str) -> Result<Exit, Error> {
    let attrs = read_attributes(std::io::stdin().lock());
    if !matches!(action, "get" | "erase") {
        // `store` (qlam's providers already hold the credential) and any future action.
        return Ok(Exit::Ok);
    }
    let client = ctx.client(true)?;
    let Some(route) = git_route(&client, &attrs) else {
        return Ok(Exit::Ok);
    };
    if action == "erase" {
        // The server rejected what it was given. If that is qlam's current token, ask the
        // provider again next time (after a forced refresh, where it can refresh); never log
        // the user out for it.
        let current = token(&client, &route.provider).ok();
        let rejected = attr(&attrs, "password");
        if current.is_some_and(|t| Some(t.token.expose().as_str()) == rejected) {
            renew(&client, &route.provider);
        }
        return Ok(Exit::Ok);
    }
    let token = match token(&client, &route.provider) {
        Ok(t) => t,
        Err(e) => {
            // git shows this and goes on to its next helper or a prompt.
            eprintln!("qlam: {}", e.message());
            return Ok(Exit::Ok);
        }
    };
    // The route's, else the one in the remote's URL, else the provider's (GitHub: the account
    // login, as Git Credential Manager sends), else `oauth2`.
    let username = route
        .username
        .clone()
        .or_else(|| attr(&attrs, "username").map(str::to_owned))
        .or_else(|| client.helper_username(&route.provider))
        .unwrap_or_else(|| "oauth2".to_owned());
    let mut out = format!("username={username}\npassword={}\n", token.token.expose());
    if let CacheControl::Until(t) = token.cache {
        out.push_str(&format!("password_expiry_utc={}\n", t.timestamp()));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_stop_at_a_blank_line() {
        let input = "protocol=https\nhost=git.example.com\npath=team/x.git\n\nignored=1\n";
        let a = read_attributes(input.as_bytes());
        assert_eq!(attr(&a, "host"), Some("git.example.com"));
        assert_eq!(attr(&a, "path"), Some("team/x.git"));
        assert_eq!(attr(&a, "ignored"), None);
    }

    #[test]
    fn docker_server_urls() {
        let hp = |s: &str| server_host_path(s);
        assert_eq!(
            hp("registry.example.com"),
            ("registry.example.com".into(), None)
        );
        assert_eq!(
            hp("https://registry.example.com:5000/v2/"),
            ("registry.example.com:5000".into(), Some("v2".into()))
        );
        assert_eq!(
            hp("https://index.docker.io/v1/"),
            ("index.docker.io".into(), Some("v1".into()))
        );
        assert_eq!(hp("http://r.example.com/"), ("r.example.com".into(), None));
    }
}
