//! The loopback redirect of the browser flow (RFC 8252 §7.3): a listener on `127.0.0.1`
//! (never `localhost`), open until the first valid callback or a timeout.
//!
//! Every request is answered; only a request to the redirect path whose `state` matches ends
//! the wait. A forged or replayed callback (wrong `state`) and stray requests such as
//! `/favicon.ico` are answered and ignored, so they cannot end the flow nor cause a token
//! request. Query strings are never logged: they carry the code.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use chrono::{DateTime, Utc};
use qlam_plugin_api::{Error, Result, Secret};
use url::Url;

use crate::clock::Clock;

/// What a valid callback carried.
#[derive(Debug)]
pub struct Callback {
    pub code: Secret<String>,
}

/// A bound loopback listener.
pub struct Loopback {
    listener: TcpListener,
    pub redirect_uri: String,
    path: String,
}

impl Loopback {
    pub fn bind(port: u16, path: &str) -> Result<Loopback> {
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            Error::configuration(format!(
                "cannot listen on 127.0.0.1:{port} for the login redirect: {e}{}",
                if port != 0 {
                    "; set `redirect_port = 0` for any free port"
                } else {
                    ""
                }
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::other(e.to_string()))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::other(e.to_string()))?;
        Ok(Loopback {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{path}"),
            path: path.to_owned(),
        })
    }

    /// Waits for the callback whose `state` is `expected_state`.
    ///
    /// `issuer` is checked against the callback's `iss` when the server announced
    /// `authorization_response_iss_parameter_supported` (RFC 9207): a mismatch is a mix-up
    /// attack and ends the flow with an error, before any token request.
    pub fn wait(
        self,
        expected_state: &str,
        issuer: Option<&str>,
        iss_required: bool,
        deadline: DateTime<Utc>,
        clock: &dyn Clock,
    ) -> Result<Callback> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(result) = self.handle(stream, expected_state, issuer, iss_required)
                    {
                        return result;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if clock.now() >= deadline {
                        return Err(Error::interaction(
                            "the login was not completed in the browser in time; run the login again",
                        ));
                    }
                    clock.sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(Error::other(format!(
                        "the login redirect listener failed: {e}"
                    )))
                }
            }
        }
    }

    /// Answers one request; `Some` ends the wait.
    fn handle(
        &self,
        mut stream: TcpStream,
        expected_state: &str,
        issuer: Option<&str>,
        iss_required: bool,
    ) -> Option<Result<Callback>> {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let Some(target) = read_request_target(&mut stream) else {
            respond(
                &mut stream,
                400,
                "Bad request",
                "This is qlam's login listener.",
            );
            return None;
        };
        let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
            respond(
                &mut stream,
                400,
                "Bad request",
                "This is qlam's login listener.",
            );
            return None;
        };
        if url.path() != self.path {
            respond(
                &mut stream,
                404,
                "Not found",
                "This is qlam's login listener.",
            );
            return None;
        }
        let get = |k: &str| {
            url.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        // The state is checked first: nothing from a callback with the wrong state is used.
        if get("state").as_deref() != Some(expected_state) {
            respond(&mut stream, 400, "Login failed", "This login link is not the one qlam is waiting for (state mismatch). Start the login again from qlam.");
            return None;
        }
        let iss = get("iss");
        if let Some(expected) = issuer {
            let ok = match &iss {
                Some(i) => i == expected,
                None => !iss_required,
            };
            if !ok {
                respond(&mut stream, 400, "Login failed", "The authorization response came from an unexpected issuer. qlam stopped the login.");
                return Some(Err(Error::other(format!(
                    "the authorization response names issuer `{}`, expected `{expected}` (RFC 9207 mix-up defence); the login was stopped",
                    iss.as_deref().unwrap_or("(none)")
                ))));
            }
        }
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            respond(
                &mut stream,
                400,
                "Login failed",
                &format!("The server answered: {error} {description}"),
            );
            return Some(Err(if error == "access_denied" {
                Error::interaction(format!(
                    "the login was denied ({error}{})",
                    suffix(&description)
                ))
            } else {
                Error::other(format!(
                    "the authorization server answered `{error}`{}",
                    suffix(&description)
                ))
            }));
        }
        match get("code") {
            Some(code) if !code.is_empty() => {
                respond(
                    &mut stream,
                    200,
                    "Logged in",
                    "You are logged in to qlam. You can close this tab.",
                );
                Some(Ok(Callback {
                    code: Secret::new(code),
                }))
            }
            _ => {
                respond(
                    &mut stream,
                    400,
                    "Login failed",
                    "The callback carries no code.",
                );
                None
            }
        }
    }
}

fn suffix(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

/// Reads the request line and headers; returns the request target.
fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut parts = text.lines().next()?.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET" && target.starts_with('/')).then(|| target.to_owned())
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = html_escape(title),
        m = html_escape(message)
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn get(uri: &str) -> String {
        let url = Url::parse(uri).unwrap();
        let mut s = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn run(
        requests: Vec<String>,
        issuer: Option<&'static str>,
        iss_required: bool,
    ) -> (Result<Callback>, Vec<String>) {
        let lb = Loopback::bind(0, "/callback").unwrap();
        let base = lb.redirect_uri.clone();
        let client = std::thread::spawn(move || {
            requests
                .iter()
                .map(|r| get(&format!("{base}{r}")))
                .collect::<Vec<_>>()
        });
        let deadline = Utc::now() + chrono::Duration::seconds(10);
        let r = lb.wait("s123", issuer, iss_required, deadline, &SystemClock);
        (r, client.join().unwrap())
    }

    #[test]
    fn stray_and_forged_requests_do_not_end_the_flow() {
        let (r, answers) = run(
            vec![
                "/../favicon.ico".into(),
                "?state=forged&code=evil".into(),
                "?state=s123&code=good&iss=https%3A%2F%2Fidp".into(),
            ],
            Some("https://idp"),
            true,
        );
        let cb = r.unwrap();
        assert_eq!(cb.code.expose(), "good");
        assert!(answers[0].starts_with("HTTP/1.1 404"));
        assert!(answers[1].starts_with("HTTP/1.1 400") && answers[1].contains("state mismatch"));
        assert!(
            answers[2].starts_with("HTTP/1.1 200") && answers[2].contains("You can close this tab")
        );
    }

    #[test]
    fn wrong_or_missing_iss_stops_the_flow_when_required() {
        let (r, _) = run(
            vec!["?state=s123&code=c&iss=https%3A%2F%2Fevil".into()],
            Some("https://idp"),
            true,
        );
        assert!(r
            .unwrap_err()
            .message()
            .contains("names issuer `https://evil`, expected `https://idp`"));
        let (r, _) = run(vec!["?state=s123&code=c".into()], Some("https://idp"), true);
        assert!(r.is_err());
        let (r, _) = run(
            vec!["?state=s123&code=c".into()],
            Some("https://idp"),
            false,
        );
        assert!(
            r.is_ok(),
            "iss is optional when the server does not announce it"
        );
    }

    #[test]
    fn error_callbacks_are_escaped() {
        let (r, answers) = run(
            vec!["?state=s123&error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E".into()],
            None,
            false,
        );
        assert!(r
            .unwrap_err()
            .message()
            .starts_with("the login was denied (access_denied"));
        assert!(
            answers[0].contains("&lt;script&gt;") && !answers[0].contains("<script>"),
            "{}",
            answers[0]
        );
    }

    #[test]
    fn times_out_without_sleeping_for_real() {
        let clock = crate::clock::fake::FakeClock::at("2030-01-01T00:00:00Z");
        let lb = Loopback::bind(0, "/callback").unwrap();
        let deadline: DateTime<Utc> = "2030-01-01T00:05:00Z".parse().unwrap();
        let e = lb
            .wait("s", None, false, deadline, clock.as_ref())
            .unwrap_err();
        assert!(e.message().contains("not completed in the browser in time"));
        assert!(clock.sleeps().len() >= 300 * 50 - 1);
    }
}
