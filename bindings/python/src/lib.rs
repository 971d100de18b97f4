//! `qlam._native`: the native host (`qlam_host::AuthClient`) for the Python package `qlam`.
//!
//! The Python side (`python/qlam/`) holds the API people import: `AuthClient` with the
//! reference's semantics, the credential models and the exceptions. This module is the thin
//! part under it: one `Client` wrapping an `AuthClient`, its calls made with the GIL released
//! (network and file work never holds it), errors raised as the Python package's exception
//! classes by kind, secrets handed over only where the API returns them (headers, tokens,
//! credentials).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use qlam_host::api::LoginOptions;
use qlam_host::{AuthClient, Error, ErrorKind, Outcome, ProviderStatus};

/// The exception class of `qlam.errors` named `name` (imported once).
fn error_class<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyType>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = ERRORS.get_or_try_init(py, || py.import("qlam.errors").map(|m| m.unbind()))?;
    module
        .bind(py)
        .getattr(name)?
        .cast_into::<PyType>()
        .map_err(Into::into)
}

/// The Python exception for a host error: the class by kind (see `qlam/errors.py`), the
/// message (never a secret: host messages are redacted), and `kind` as an attribute.
fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let (class, kind) = match e.kind() {
        ErrorKind::Config => ("ConfigurationError", "config".to_owned()),
        ErrorKind::Usage => ("UnknownProviderError", "usage".to_owned()),
        ErrorKind::Plugin => ("PluginError", "plugin".to_owned()),
        ErrorKind::Store => ("StoreError", "store".to_owned()),
        ErrorKind::Timeout => ("ProviderTimeoutError", "timeout".to_owned()),
        ErrorKind::InvalidAnswer => ("InvalidAnswerError", "invalid_answer".to_owned()),
        ErrorKind::Crashed => ("ProviderCrashedError", "crashed".to_owned()),
        ErrorKind::Provider(k) => {
            use qlam_host::api::ErrorKind as P;
            let class = match k {
                P::Configuration => "ConfigurationError",
                P::NotAuthenticated => "NotAuthenticatedError",
                P::Unsupported => "UnsupportedOperationError",
                P::Interaction => "InteractionError",
                _ => "AuthenticationError",
            };
            (class, format!("provider_{}", k.as_str()))
        }
        // A kind newer than this module.
        _ => ("QlamCoreError", "other".to_owned()),
    };
    let class = match error_class(py, class) {
        Ok(c) => c,
        Err(import_failed) => return import_failed,
    };
    match class.call1((e.to_string(),)) {
        Ok(instance) => {
            let _ = instance.setattr("kind", kind);
            // Where in a configuration file, for programs that point at it.
            if let Some(at) = e.config_location() {
                let _ = instance.setattr("path", at.path.clone());
                let _ = instance.setattr("line", at.line);
                let _ = instance.setattr("column", at.column);
            }
            PyErr::from_value(instance)
        }
        Err(err) => err,
    }
}

/// Runs `f` with the GIL released and turns its error into the Python exception.
fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> qlam_host::Result<T> + Send,
) -> PyResult<T> {
    py.detach(f).map_err(|e| to_py(py, &e))
}

/// Converts JSON to Python objects through the standard library (credentials, contexts and
/// extra info are small and rare).
fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let loads = LOADS.get_or_try_init(py, || {
        py.import("json")?.getattr("loads").map(|f| f.unbind())
    })?;
    loads.bind(py).call1((text,))
}

/// The native client. `qlam.AuthClient` wraps it; use that.
#[pyclass(frozen, module = "qlam._native")]
struct Client {
    inner: Arc<AuthClient>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (config_path=None, context=None, plugin_dirs=Vec::new(), interactive=true, no_browser=false, qlam_executable=None))]
    fn new(
        py: Python<'_>,
        config_path: Option<PathBuf>,
        context: Option<String>,
        plugin_dirs: Vec<PathBuf>,
        interactive: bool,
        no_browser: bool,
        qlam_executable: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut b = AuthClient::builder();
        if interactive {
            b = b.interaction(Arc::new(qlam_host::Terminal::new(no_browser)));
        }
        if let Some(p) = config_path {
            b = b.config_file(p);
        }
        if let Some(c) = context {
            b = b.context(c);
        }
        for d in plugin_dirs {
            b = b.plugin_dir(d);
        }
        // The providers bundled with qlam live beside the `qlam` executable; a Python program
        // sees the same ones as the CLI, and isolated providers run in that executable.
        if let Some(exe) = qlam_executable {
            if let Some(dir) = exe.parent() {
                b = b.plugin_dir(dir);
            }
            b = b.isolation_executable(exe);
        }
        let inner = detached(py, move || b.build())?;
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// The configured provider names of the selected context, in file order.
    fn provider_names(&self) -> Vec<String> {
        self.inner.provider_names()
    }

    /// `{name: ok}` for every provider (best effort), or `True` for one named provider
    /// (its failure raised).
    #[pyo3(signature = (provider=None))]
    fn login(&self, py: Python<'_>, provider: Option<String>) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.inner.clone();
        let outcomes = detached(py, move || {
            client.login(provider.as_deref(), &LoginOptions::default())
        })?;
        outcomes_to_py(py, outcomes, one)
    }

    #[pyo3(signature = (provider=None))]
    fn logout(&self, py: Python<'_>, provider: Option<String>) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.inner.clone();
        let outcomes = detached(py, move || client.logout(provider.as_deref()))?;
        outcomes_to_py(py, outcomes, one)
    }

    #[pyo3(signature = (provider=None, force=false))]
    fn refresh_credentials(
        &self,
        py: Python<'_>,
        provider: Option<String>,
        force: bool,
    ) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.inner.clone();
        let outcomes = detached(py, move || {
            client.refresh_credentials(provider.as_deref(), force)
        })?;
        outcomes_to_py(py, outcomes, one)
    }

    /// As in the Python library: an unknown provider, or one that fails, is `False`.
    #[pyo3(signature = (provider=None))]
    fn is_authenticated(&self, py: Python<'_>, provider: Option<String>) -> PyResult<bool> {
        let client = self.inner.clone();
        match py.detach(move || client.is_authenticated(provider.as_deref())) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::Usage => Ok(false),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// The credential as a dict (with `kind`), or `None`.
    fn get_credential(&self, py: Python<'_>, provider: String) -> PyResult<Py<PyAny>> {
        let client = self.inner.clone();
        let credential = detached(py, move || client.get_credential(&provider))?;
        match credential {
            None => Ok(py.None()),
            Some(c) => {
                let value =
                    serde_json::to_value(&c).map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok(json_to_py(py, &value)?.unbind())
            }
        }
    }

    fn auth_context(&self, py: Python<'_>, provider: String) -> PyResult<Py<PyAny>> {
        let client = self.inner.clone();
        let context = detached(py, move || client.auth_context(&provider))?;
        Ok(json_to_py(py, &serde_json::Value::Object(context))?.unbind())
    }

    /// One dict per configured provider: `name`, `type`, `status`, `description`, the
    /// provider's extra info merged in (as the Python library does), and `capabilities`.
    fn list_providers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let client = self.inner.clone();
        let providers = detached(py, move || client.list_providers())?;
        let rows: Vec<serde_json::Value> = providers
            .into_iter()
            .map(|p| {
                let (status, reason) = match &p.status {
                    ProviderStatus::Authenticated => ("authenticated", None),
                    ProviderStatus::Available => ("available", None),
                    ProviderStatus::Error(why) => ("error", Some(why.clone())),
                    ProviderStatus::Timeout(why) => ("timeout", Some(why.clone())),
                };
                let mut row = serde_json::Map::new();
                row.insert("name".into(), p.name.into());
                row.insert("type".into(), p.provider_type.into());
                row.insert("status".into(), status.into());
                row.insert("description".into(), p.description.into());
                // Extra info is merged in, but never over the keys above.
                for (k, v) in p.extra_info {
                    row.entry(k).or_insert(v);
                }
                row.insert(
                    "capabilities".into(),
                    serde_json::json!(p.capabilities.names()),
                );
                if let Some(r) = reason {
                    row.insert("error".into(), r.into());
                }
                serde_json::Value::Object(row)
            })
            .collect();
        Ok(json_to_py(py, &serde_json::Value::Array(rows))?.unbind())
    }

    /// The provider's HTTP headers (renewed first when they are about to expire).
    fn headers<'py>(&self, py: Python<'py>, provider: String) -> PyResult<Bound<'py, PyDict>> {
        // A still-valid answer is served without releasing the GIL: no I/O, no waiting.
        let headers = match self.inner.reusable_headers(&provider) {
            Some(h) => h,
            None => {
                let client = self.inner.clone();
                detached(py, move || client.headers(&provider))?
            }
        };
        let dict = PyDict::new(py);
        for (name, value) in &headers.headers {
            dict.set_item(name, value.expose())?;
        }
        Ok(dict)
    }

    /// The provider's access token.
    fn token(&self, py: Python<'_>, provider: String) -> PyResult<String> {
        if let Some(t) = self.inner.reusable_token(&provider) {
            return Ok(t.token.expose().clone());
        }
        let client = self.inner.clone();
        let token = detached(py, move || client.token(&provider))?;
        Ok(token.token.expose().clone())
    }

    /// Forgets the reusable answers of a provider and renews its credentials where it can
    /// (what an HTTP client does after a 401 with `invalid_token`); `True` when renewed.
    fn renew(&self, py: Python<'_>, provider: String) -> PyResult<bool> {
        let client = self.inner.clone();
        detached(py, move || client.renew(&provider))
    }
}

/// For one named provider: `True`/`False`, its error raised. For all: `{name: ok}`, errors
/// logged (best effort, as in the Python library). Warnings go to the `qlam` logger.
fn outcomes_to_py(py: Python<'_>, outcomes: Vec<Outcome>, one: bool) -> PyResult<Py<PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let logger = LOGGER.get_or_try_init(py, || {
        py.import("logging")?
            .getattr("getLogger")?
            .call1(("qlam",))
            .map(|l| l.unbind())
    })?;
    let logger = logger.bind(py);
    let dict = PyDict::new(py);
    for o in outcomes {
        for w in &o.warnings {
            logger.call_method1("warning", (format!("{}: {w}", o.provider),))?;
        }
        match o.result {
            Ok(done) if one => return Ok(done.into_pyobject(py)?.to_owned().into_any().unbind()),
            Err(e) if one => return Err(to_py(py, &e)),
            Ok(done) => dict.set_item(&o.provider, done)?,
            Err(e) => {
                logger.call_method1("warning", (format!("{}: {e}", o.provider),))?;
                dict.set_item(&o.provider, false)?;
            }
        }
    }
    Ok(dict.into_any().unbind())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add("API_VERSION", qlam_host::api::API_VERSION)?;
    Ok(())
}
