//! `qlam.HostServices`: the host's services as a Python provider sees them (its
//! `host_services`): the credential store, the user, logging, paths.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use qlam_host::api::{HostServices, LogLevel, Secret};

use crate::errors::service_error_to_py;

/// The host's services for one provider. Every call that may wait (the store, the user)
/// releases the GIL.
#[pyclass(frozen, name = "HostServices", module = "qlam._native")]
pub(crate) struct PyHostServices {
    inner: HostServices,
}

impl PyHostServices {
    pub(crate) fn new(inner: HostServices) -> Self {
        PyHostServices { inner }
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&HostServices) -> qlam_host::api::Result<T> + Send,
    ) -> PyResult<T> {
        let inner = &self.inner;
        py.detach(|| f(inner))
            .map_err(|e| service_error_to_py(py, &e))
    }
}

#[pymethods]
impl PyHostServices {
    /// The value stored under `key` for this provider (in this context), or `None`.
    fn load_secret(&self, py: Python<'_>, key: String) -> PyResult<Option<String>> {
        Ok(self
            .run(py, |s| s.secret_load(&key))?
            .map(Secret::into_inner))
    }

    /// Stores `value` under `key`, durably, replacing any old one (one key is written
    /// atomically: keep values that must change together in one document).
    fn save_secret(&self, py: Python<'_>, key: String, value: String) -> PyResult<()> {
        let value = Secret::new(value);
        self.run(py, |s| s.secret_store(&key, &value))
    }

    /// Deletes the value under `key` (a missing key is not an error).
    fn delete_secret(&self, py: Python<'_>, key: String) -> PyResult<()> {
        self.run(py, |s| s.secret_delete(&key))
    }

    /// Whether anyone can be asked anything.
    #[getter]
    fn is_interactive(&self) -> bool {
        self.inner.is_interactive()
    }

    /// Asks the user for a line of text.
    fn prompt_text(&self, py: Python<'_>, prompt: String) -> PyResult<String> {
        self.run(py, |s| s.prompt_text(&prompt))
    }

    /// Asks the user for a secret, without echo.
    fn prompt_secret(&self, py: Python<'_>, prompt: String) -> PyResult<String> {
        Ok(self.run(py, |s| s.prompt_secret(&prompt))?.into_inner())
    }

    /// Shows a device-flow verification URI and user code.
    #[pyo3(signature = (verification_uri, user_code, verification_uri_complete=None))]
    fn show_verification(
        &self,
        py: Python<'_>,
        verification_uri: String,
        user_code: String,
        verification_uri_complete: Option<String>,
    ) -> PyResult<()> {
        self.run(py, |s| {
            s.show_verification(
                &verification_uri,
                &user_code,
                verification_uri_complete.as_deref(),
            )
        })
    }

    /// Opens `url` in a browser; `False` when none could be (the URL was shown instead).
    fn open_url(&self, py: Python<'_>, url: String) -> PyResult<bool> {
        self.run(py, |s| s.open_url(&url))
    }

    /// Reports progress of a long step (`done=True` ends it).
    #[pyo3(signature = (message, done=false))]
    fn progress(&self, py: Python<'_>, message: String, done: bool) -> PyResult<()> {
        self.run(py, |s| s.progress(&message, done))
    }

    /// Logs through the host (its filters and redaction apply). `level`: `trace`, `debug`,
    /// `info`, `warn` or `error`. Never log a secret.
    fn log(&self, py: Python<'_>, level: &str, message: String) -> PyResult<()> {
        let level = match level {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown log level {other:?}"
                )))
            }
        };
        let inner = &self.inner;
        py.detach(|| inner.log(level, &message));
        Ok(())
    }

    /// A path from the provider's settings: `~/` is the home folder, a relative path is
    /// relative to the configuration file's folder (as in a kubeconfig).
    fn resolve_path(&self, path: PathBuf) -> PathBuf {
        self.inner.resolve_path(&path)
    }

    /// The folder of the configuration file the provider's settings come from.
    #[getter]
    fn config_dir(&self) -> Option<PathBuf> {
        self.inner.config_dir().map(PathBuf::from)
    }

    fn __repr__(&self) -> String {
        "HostServices(...)".to_owned()
    }
}
