//! `qlam._native`: the native host (`qlam_host::AuthClient`) for the Python package `qlam`.
//!
//! The Python side (`python/qlam/`) holds the API people import: `AuthClient` with the
//! reference's semantics, the credential models, the exceptions, the provider base classes
//! and the registry. This crate is the thin part under it:
//!
//! - [`client`]: one `Client` wrapping an `AuthClient` (calls made with the GIL released,
//!   built again in a forked child);
//! - [`providers`]: provider types written in Python as provider types of the host;
//! - [`services`]: the host's services (store, user, logging) for those providers;
//! - [`interaction`]: a Python object as the way to talk to the user;
//! - [`errors`]: host errors as the package's exception classes, by kind.

mod client;
mod convert;
mod errors;
mod interaction;
mod providers;
mod services;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    client::init_process_id();
    m.add_class::<client::Client>()?;
    m.add_class::<services::PyHostServices>()?;
    m.add_function(wrap_pyfunction!(client::after_fork_in_child, m)?)?;
    m.add("API_VERSION", qlam_host::api::API_VERSION)?;
    Ok(())
}
