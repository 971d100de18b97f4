//! Provider types written in Python, as provider types of the host.
//!
//! A factory registered in `qlam.auth_registry` becomes a [`ProviderFactory`] registered
//! with the `AuthClient`, so its providers go through the host's boundary like any plugin's:
//! deadlines, answer checks, the answer cache, the store and the refresh locks. Each call
//! takes the GIL on the host's worker thread (the Python caller released it) and goes through
//! `qlam._adapter`, which turns results into plain values and exceptions into
//! `Failure(kind, message)`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use qlam_host::api::chrono::{DateTime, Utc};
use qlam_host::api::{
    BuildRequest, CacheControl, Capabilities, Credential, Error as ProviderError,
    ErrorKind as ProviderKind, Headers, HttpHeaders, LoginLogout, LoginOptions, LogoutReport,
    Provider, ProviderFactory, Refresh, Result, Secret, Token, TokenSource,
};
use serde_json::{Map, Value};

use crate::services::PyHostServices;

/// `qlam._adapter`, imported once.
fn adapter_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static ADAPTER: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    ADAPTER
        .get_or_try_init(py, || py.import("qlam._adapter").map(|m| m.unbind()))
        .map(|m| m.bind(py))
}

/// A Python failure as a provider error. `qlam._adapter.Failure` carries the kind the
/// provider meant; anything else escaped the adapter and is reported as a panic (its text
/// reaches the debug log only).
fn provider_error(py: Python<'_>, err: PyErr) -> ProviderError {
    let value = err.value(py);
    let is_failure = adapter_module(py)
        .and_then(|m| m.getattr("Failure"))
        .is_ok_and(|class| value.is_instance(&class).unwrap_or(false));
    if is_failure {
        let kind: String = value
            .getattr("kind")
            .and_then(|k| k.extract())
            .unwrap_or_default();
        let message: String = value
            .getattr("message")
            .and_then(|m| m.extract())
            .unwrap_or_default();
        let kind = match kind.as_str() {
            "configuration" => ProviderKind::Configuration,
            "not_authenticated" => ProviderKind::NotAuthenticated,
            "unsupported" => ProviderKind::Unsupported,
            "transient" => ProviderKind::Transient,
            "interaction" => ProviderKind::Interaction,
            "panic" => ProviderKind::Panic,
            _ => ProviderKind::Other,
        };
        return ProviderError::new(kind, message);
    }
    ProviderError::new(ProviderKind::Panic, err.to_string())
}

/// Runs `f` with the GIL, its Python error made a provider error.
fn with_python<T>(f: impl for<'py> FnOnce(Python<'py>) -> PyResult<T>) -> Result<T> {
    Python::attach(|py| f(py).map_err(|e| provider_error(py, e)))
}

/// A document a provider gave as JSON text (the adapter's `json.dumps`).
fn parse_json<T: qlam_host::api::serde::de::DeserializeOwned>(call: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        // Position only: serde's message may quote the document, which may hold a secret.
        ProviderError::other(format!(
            "`{call}` gave a document qlam cannot read (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// How long an answer may be reused: the provider's `answers_valid_until()` as seconds
/// since the epoch, or ask every time.
fn cache_control(until: Option<f64>) -> CacheControl {
    until
        .filter(|t| t.is_finite())
        .and_then(|t| DateTime::<Utc>::from_timestamp_millis((t * 1000.0) as i64))
        .map_or(CacheControl::Never, CacheControl::Until)
}

/// A provider type registered in Python.
pub(crate) struct PyFactory {
    pub name: String,
    pub description: String,
    pub capabilities: Capabilities,
    pub factory: Py<PyAny>,
}

/// One factory shared by every `AuthClient` built from it (a client rebuilt after `fork()`
/// takes the same ones).
#[derive(Clone)]
pub(crate) struct SharedFactory(pub Arc<PyFactory>);

impl ProviderFactory for SharedFactory {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn description(&self) -> String {
        self.0.description.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities
    }

    fn build(&self, request: BuildRequest) -> Result<Box<dyn Provider>> {
        let config = serde_json::to_string(&request.config)
            .map_err(|e| ProviderError::configuration(e.to_string()))?;
        with_python(|py| {
            let services = Py::new(py, PyHostServices::new(request.services.clone()))?;
            let adapter = adapter_module(py)?.call_method1(
                "build",
                (
                    self.0.factory.clone_ref(py),
                    &request.context_name,
                    &request.provider_name,
                    config,
                    services,
                ),
            )?;
            let (headers, login, token, refresh): (bool, bool, bool, bool) =
                adapter.getattr("capabilities")?.extract()?;
            Ok(Box::new(PyProvider {
                adapter: adapter.unbind(),
                capabilities: Capabilities {
                    headers,
                    login,
                    token,
                    refresh,
                },
            }) as Box<dyn Provider>)
        })
    }

    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let config =
            serde_json::to_string(config).map_err(|e| ProviderError::other(e.to_string()))?;
        let text: String = with_python(|py| {
            adapter_module(py)?
                .call_method1("extra_info", (self.0.factory.clone_ref(py), config))?
                .extract()
        })?;
        parse_json("extra_info_from_config", &text)
    }
}

/// A built Python provider, behind its adapter.
struct PyProvider {
    adapter: Py<PyAny>,
    capabilities: Capabilities,
}

impl PyProvider {
    fn call<T>(
        &self,
        method: &str,
        args: impl for<'py> pyo3::call::PyCallArgs<'py>,
        extract: impl for<'py> FnOnce(Bound<'py, PyAny>) -> PyResult<T>,
    ) -> Result<T> {
        with_python(|py| extract(self.adapter.bind(py).call_method1(method, args)?))
    }

    fn call0<T: for<'py> FromPyObjectOwned<'py>>(&self, method: &str) -> Result<T> {
        self.call(method, (), |r| r.extract().map_err(Into::into))
    }
}

impl Provider for PyProvider {
    fn description(&self) -> String {
        // The trait gives no way to fail here; a failure is shown as such.
        self.call0::<String>("description")
            .unwrap_or_else(|e| format!("(description failed: {})", e.kind()))
    }

    fn is_authenticated(&self) -> bool {
        self.call0("is_authenticated").unwrap_or(false)
    }

    fn auth_context(&self) -> Result<Map<String, Value>> {
        let text: String = self.call0("auth_context")?;
        parse_json("get_auth_context", &text)
    }

    fn credential(&self) -> Result<Option<Credential>> {
        let text: Option<String> = self.call0("credential")?;
        text.map(|t| parse_json("get_credential", &t)).transpose()
    }

    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        self.capabilities.headers.then_some(self as _)
    }

    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        self.capabilities.login.then_some(self as _)
    }

    fn token_source(&self) -> Option<&dyn TokenSource> {
        self.capabilities.token.then_some(self as _)
    }

    fn refresher(&self) -> Option<&dyn Refresh> {
        self.capabilities.refresh.then_some(self as _)
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

impl HttpHeaders for PyProvider {
    fn headers(&self) -> Result<Headers> {
        self.call("headers", (), |answer| {
            let (dict, until): (Bound<'_, PyDict>, Option<f64>) = answer.extract()?;
            let mut headers = Vec::with_capacity(dict.len());
            for (name, value) in dict.iter() {
                headers.push((name.extract()?, Secret::new(value.extract()?)));
            }
            Ok(Headers {
                headers,
                cache: cache_control(until),
            })
        })
    }
}

impl TokenSource for PyProvider {
    fn token(&self) -> Result<Token> {
        let (token, until): (String, Option<f64>) = self.call0("token")?;
        Ok(Token {
            token: Secret::new(token),
            cache: cache_control(until),
        })
    }
}

impl LoginLogout for PyProvider {
    fn login(&self, options: &LoginOptions) -> Result<()> {
        self.call("login", (options.flow.clone(), options.no_browser), |_| {
            Ok(())
        })
    }

    fn logout(&self) -> Result<LogoutReport> {
        let warnings: Vec<String> = self.call0("logout")?;
        Ok(LogoutReport { warnings })
    }
}

impl Refresh for PyProvider {
    fn can_refresh(&self) -> bool {
        self.call0("can_refresh").unwrap_or(false)
    }

    fn refresh(&self, force: bool) -> Result<bool> {
        self.call("refresh", (force,), |r| r.extract())
    }
}
