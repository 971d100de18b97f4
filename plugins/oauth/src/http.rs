//! The HTTP transport: blocking reqwest (through `oauth2::reqwest`, so there is one reqwest),
//! no redirects (SSRF and credential leaks), an optional CA bundle, proxies from the standard
//! environment variables, a timeout. It records when each request was sent, because expiry is
//! computed from the send time.

use std::path::Path;
use std::time::Duration;

use oauth2::reqwest;
use oauth2::{HttpRequest, HttpResponse};
use qlam_plugin_api::{Error, Result};

/// Why an HTTP exchange failed before there was a usable response.
#[derive(Debug)]
pub enum HttpError {
    /// The server could not be reached, or timed out.
    Network(String),
    /// The server answered a redirect, which qlam never follows.
    Redirect(u16),
    /// The server answered 5xx.
    Server(u16),
    /// The request could not be made here (the client assertion could not be signed).
    Local(qlam_plugin_api::Error),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Network(m) => f.write_str(m),
            HttpError::Redirect(s) => write!(
                f,
                "the server answered a redirect ({s}), which qlam does not follow"
            ),
            HttpError::Server(s) => write!(f, "the server answered {s}"),
            HttpError::Local(e) => f.write_str(e.message()),
        }
    }
}

impl std::error::Error for HttpError {}

/// reqwest's Display shows only the outermost error; the cause is what helps.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// An in-memory server: answers a request with a status, a `Content-Type` and a body.
pub type Responder = dyn Fn(&HttpRequest) -> (u16, Option<String>, Vec<u8>) + Send + Sync;

enum Transport {
    Network(reqwest::blocking::Client),
    /// No network: the fuzz hook answers from memory (see `Http::in_memory`, which only the
    /// `fuzzing` feature builds; without it this variant is never made).
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    Memory(Box<Responder>),
}

/// The HTTP client of one provider.
pub struct Http {
    transport: Transport,
}

impl Http {
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Http> {
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("qlam-provider-oauth/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::configuration(format!("cannot read `ca_file` `{}`: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::configuration(format!(
                    "`ca_file` `{}` is not a PEM certificate bundle: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::configuration(format!(
                    "`ca_file` `{}` holds no certificate",
                    ca.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|e| {
            Error::other(format!("cannot create an HTTP client: {}", error_chain(&e)))
        })?;
        Ok(Http {
            transport: Transport::Network(client),
        })
    }

    /// A client whose requests never leave the process: `responder` answers them, and the
    /// answers are handled exactly like network ones (redirects and 5xx are errors).
    #[cfg(feature = "fuzzing")]
    pub fn in_memory(responder: Box<Responder>) -> Http {
        Http {
            transport: Transport::Memory(responder),
        }
    }

    /// Sends a request built by `oauth2` (or by us). 3xx and 5xx are errors; every other
    /// status is returned for the caller to interpret.
    pub fn call(&self, request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let client = match &self.transport {
            Transport::Network(client) => client,
            Transport::Memory(responder) => {
                let (status, content_type, body) = responder(&request);
                check_status(status)?;
                let mut builder = oauth2::http::Response::builder().status(status);
                if let Some(ct) = content_type {
                    builder = builder.header("Content-Type", ct);
                }
                return builder
                    .body(body)
                    .map_err(|e| HttpError::Network(e.to_string()));
            }
        };
        let (parts, body) = request.into_parts();
        let mut req = client
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in parts.headers.iter() {
            req = req.header(name, value);
        }
        let resp = send(req)?;
        let mut builder = oauth2::http::Response::builder().status(resp.status().as_u16());
        for (name, value) in resp.headers() {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        let body = resp
            .bytes()
            .map_err(|e| HttpError::Network(error_chain(&e)))?
            .to_vec();
        builder
            .body(body)
            .map_err(|e| HttpError::Network(e.to_string()))
    }

    /// A GET that expects JSON (discovery).
    pub fn get_json(&self, url: &url::Url) -> std::result::Result<(u16, Vec<u8>), HttpError> {
        let client = match &self.transport {
            Transport::Network(client) => client,
            Transport::Memory(_) => {
                let req = oauth2::http::Request::builder()
                    .method("GET")
                    .uri(url.as_str())
                    .header("Accept", "application/json")
                    .body(Vec::new())
                    .map_err(|e| HttpError::Network(e.to_string()))?;
                let resp = self.call(req)?;
                return Ok((resp.status().as_u16(), resp.into_body()));
            }
        };
        let resp = send(
            client
                .get(url.as_str())
                .header("Accept", "application/json"),
        )?;
        let status = resp.status();
        let body = resp
            .bytes()
            .map_err(|e| HttpError::Network(error_chain(&e)))?
            .to_vec();
        Ok((status.as_u16(), body))
    }
}

/// Sends; a redirect (never followed) and a 5xx are errors, every other status is the
/// caller's to interpret.
fn send(
    req: reqwest::blocking::RequestBuilder,
) -> std::result::Result<reqwest::blocking::Response, HttpError> {
    let resp = req
        .send()
        .map_err(|e| HttpError::Network(error_chain(&e)))?;
    check_status(resp.status().as_u16())?;
    Ok(resp)
}

/// A redirect (never followed) and a 5xx are errors.
fn check_status(status: u16) -> std::result::Result<(), HttpError> {
    match status {
        300..=399 => Err(HttpError::Redirect(status)),
        500..=599 => Err(HttpError::Server(status)),
        _ => Ok(()),
    }
}

/// An [`HttpError`] as a provider error: network trouble and 5xx are transient (keep every
/// token), a redirect is not.
pub fn to_error(what: &str, e: &HttpError) -> Error {
    match e {
        HttpError::Network(_) | HttpError::Server(_) => {
            Error::transient(format!("{what}: {e}; try again later"))
        }
        HttpError::Redirect(_) => Error::other(format!("{what}: {e}")),
        HttpError::Local(e) => Error::configuration(format!("{what}: {}", e.message())),
    }
}

/// Makes a token or device-authorization answer of a server that strays from RFC 6749 §5 and
/// RFC 8628 §3.2 read like one that does, so that one code path handles every server:
/// - a form-encoded body (GitHub's answer unless asked for JSON) becomes JSON;
/// - an error with HTTP 200 (GitHub's device flow: oauth2-rs #218 and #310, cli/cli #9370)
///   becomes a 400, as an error is never a success; 403, 428 and other statuses with an error
///   body were already errors;
/// - with `comma_separated_scopes`, `scope=repo,gist` (GitHub) becomes `repo gist`.
pub fn normalize_token_answer(
    response: HttpResponse,
    comma_separated_scopes: bool,
) -> HttpResponse {
    let (mut parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(oauth2::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut object = if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut m = serde_json::Map::new();
        for (k, v) in url::form_urlencoded::parse(&body) {
            // Numbers are numbers in JSON (`expires_in`, `interval`…).
            let value = match v.parse::<u64>() {
                Ok(n) if k.ends_with("expires_in") || k == "interval" => serde_json::Value::from(n),
                _ => serde_json::Value::from(v.into_owned()),
            };
            m.insert(k.into_owned(), value);
        }
        m
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return HttpResponse::from_parts(parts, body),
        }
    };
    if parts.status.is_success()
        && object
            .get("error")
            .is_some_and(serde_json::Value::is_string)
        && !object.contains_key("access_token")
        && !object.contains_key("device_code")
    {
        parts.status = oauth2::http::StatusCode::BAD_REQUEST;
    }
    if comma_separated_scopes {
        if let Some(serde_json::Value::String(scope)) = object.get_mut("scope") {
            *scope = scope
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    parts.headers.insert(
        oauth2::http::header::CONTENT_TYPE,
        oauth2::http::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&object).unwrap_or_default();
    parts.headers.remove(oauth2::http::header::CONTENT_LENGTH);
    HttpResponse::from_parts(parts, body)
}
