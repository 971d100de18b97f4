//! The few operating-system calls the host makes outside the standard library, each behind a
//! safe function, so that `unsafe` lives here (and in the dynamic loader, `plugins/load.rs`,
//! and the Windows trust checks, `plugins/trust/`).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
