//! The `basic` provider's `verify_url` against an HTTP server on loopback that checks HTTP
//! Basic credentials the way a real API does (401 for wrong ones).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::util::Home;

/// Serves `GET /whoami`: 200 for `ann:right-pw`, 401 otherwise; `/broken` answers 503;
/// `/moved` redirects to `/whoami` (a client must not follow it with credentials).
fn server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or_else(|| line.strip_prefix("Authorization: "))
                {
                    auth = Some(v.trim().to_owned());
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            // base64("ann:right-pw")
            let good = auth.as_deref() == Some("Basic YW5uOnJpZ2h0LXB3");
            let (status, extra) = match path.as_str() {
                "/broken" => ("503 Service Unavailable", String::new()),
                "/moved" => ("302 Found", "Location: /whoami\r\n".to_owned()),
                _ if good => ("200 OK", String::new()),
                _ => (
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"test\"\r\n".to_owned(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (base, hits)
}

fn config(url: &str) -> String {
    format!("[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"b\"\nprovider = \"basic\"\nusername = \"ann\"\nverify_url = \"{url}\"\n")
}

#[test]
fn verify_url_accepts_right_and_rejects_wrong_passwords() {
    let (base, hits) = server();
    let home = Home::new();
    home.write_config(&config(&format!("{base}/whoami")));

    let r = home.run_stdin(&["auth", "login", "b"], "wrong-pw\n");
    r.code(3);
    assert!(
        r.stderr
            .contains("rejected the username or password (401 Unauthorized); nothing was stored"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong-pw"));
    assert!(
        !home.store_dir().join("c/b.json").exists(),
        "nothing stored"
    );

    let r = home.run_stdin(&["auth", "login", "b"], "right-pw\n");
    r.ok();
    let c = home.run(&["auth", "credential", "b"]).json();
    assert_eq!(c["auth_source"], format!("{base}/whoami"));
    assert_eq!(
        home.run(&["auth", "headers", "b"]).stdout,
        "Authorization: Basic YW5uOnJpZ2h0LXB3\n"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "one request per login, none for headers"
    );
}

#[test]
fn verify_url_server_errors_are_transient_and_redirects_are_not_followed() {
    let (base, hits) = server();
    let home = Home::new();
    home.write_config(&config(&format!("{base}/broken")));
    let r = home.run_stdin(&["auth", "login", "b"], "right-pw\n");
    r.code(1);
    assert!(
        r.stderr
            .contains("answered 503 Service Unavailable; try again later"),
        "{}",
        r.stderr
    );

    home.write_config(&config(&format!("{base}/moved")));
    let r = home.run_stdin(&["auth", "login", "b"], "right-pw\n");
    r.code(1);
    assert!(
        r.stderr.contains("answered 302 Found, expected 2xx"),
        "{}",
        r.stderr
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the redirect was not followed"
    );
    assert!(
        !home.store_dir().join("c/b.json").exists(),
        "nothing stored"
    );
}
