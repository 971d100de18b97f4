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

/// Keeps the calling thread on the CPU it is on while it lives; threads it starts meanwhile
/// are kept there too, for good. Dropping it (on the same thread) gives the thread back the
/// CPUs it was allowed before, unless they were changed meanwhile.
///
/// For a short-lived program whose thread hands work to another and sleeps until it is done
/// (plugin discovery in the CLI): when both share one CPU, the dynamic loader's
/// `mmap`/`mprotect` on the worker need no cross-CPU TLB flush for the sleeper's. Measured:
/// 100 `dlopen`s on a second thread 8.6 ms, on the main thread 7.9 ms, on a second thread
/// with both on one CPU 7.3 ms (bench/README.md). Linux only; a real-time caller, a refused
/// call and other systems change nothing.
#[cfg(target_os = "linux")]
pub(crate) use unix::OnThisCpu;

/// See the Linux version: nothing to do elsewhere.
#[cfg(not(target_os = "linux"))]
pub(crate) struct OnThisCpu(std::marker::PhantomData<*const ()>);

#[cfg(not(target_os = "linux"))]
impl OnThisCpu {
    pub(crate) fn pin() -> OnThisCpu {
        OnThisCpu(std::marker::PhantomData)
    }
}
