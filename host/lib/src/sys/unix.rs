//! Unix.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};

/// The process's effective user id (who owns what we create; whose files we trust).
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `fd` has data to read (or its other end closed) within `timeout_ms` (0: do not
/// wait; negative: for ever). An interrupted wait reads as "not yet".
pub(crate) fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack; poll(2) only reads and writes it.
    match unsafe { libc::poll(&mut p, 1, timeout_ms) } {
        n if n >= 0 => Ok(n > 0),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Sets the file-creation mask and returns the old one (tests: "whatever the umask").
#[cfg(test)]
pub(crate) fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) has no preconditions and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Ends the process at once with SIGKILL (the crash tests' failpoints).
#[cfg(feature = "failpoints")]
pub(crate) fn kill_self() {
    // SAFETY: kill(2) on our own pid with a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Registers `handler` to run when the process calls `exit`.
pub(crate) fn at_exit(handler: extern "C" fn()) {
    // SAFETY: registering a function with no preconditions; it runs at exit.
    unsafe {
        libc::atexit(handler);
    }
}

/// Registers `handler` to run in the child after every `fork()` (before `fork` returns
/// there). It may only do async-signal-safe work: an atomic store, say.
pub(crate) fn after_fork_in_child(handler: unsafe extern "C" fn()) {
    // SAFETY: registering a function with no preconditions; it runs in forked children.
    unsafe {
        libc::pthread_atfork(None, None, Some(handler));
    }
}

/// Writes `message` to stderr and ends the process with `code`, running no more exit
/// handlers: what an exit handler may still do.
pub(crate) fn say_and_exit_now(message: &str, code: i32) -> ! {
    // SAFETY: writing a buffer we own to descriptor 2, then _exit(2), are async-signal-safe
    // and fine at any point of an exit.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(code)
    }
}

/// Moves the process's stdin and stdout to new descriptors and returns them; stdin then
/// reads /dev/null and stdout writes to stderr. (An isolated child: the protocol's pipes must
/// not be the descriptors a plugin's own code reads or prints to.) Call before other threads
/// use the standard streams.
pub(crate) fn take_standard_streams() -> io::Result<(File, File)> {
    // SAFETY: duplicating and replacing the process's own standard descriptors; every result
    // is checked, and each new descriptor is owned by exactly one File.
    unsafe {
        let input = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        let output = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if input < 0 || output < 0 {
            return Err(io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 || libc::dup2(null, 0) < 0 || libc::dup2(2, 1) < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::close(null);
        Ok((File::from_raw_fd(input), File::from_raw_fd(output)))
    }
}

/// See `sys::OnThisCpu`.
#[cfg(target_os = "linux")]
pub(crate) struct OnThisCpu {
    /// The CPUs the thread was allowed before, and the one it was kept on (`None`: nothing
    /// was changed).
    before: Option<(libc::cpu_set_t, usize)>,
    /// Affinity belongs to a thread: this is dropped on the thread that made it.
    _this_thread: std::marker::PhantomData<*const ()>,
}

#[cfg(target_os = "linux")]
impl OnThisCpu {
    pub(crate) fn pin() -> OnThisCpu {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: sched_getscheduler(2) and sched_getcpu(3) have no preconditions; the
        // cpu_set_t values are plain bit sets on the stack, of the size passed; 0 is the
        // calling thread.
        let before = unsafe {
            let policy = libc::sched_getscheduler(0) & !libc::SCHED_RESET_ON_FORK;
            let cpu = libc::sched_getcpu();
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            // A real-time caller is left alone: a loading thread busy at its priority on the
            // shared CPU would never let it run to see the deadline.
            let ordinary = [libc::SCHED_OTHER, libc::SCHED_BATCH, libc::SCHED_IDLE];
            if !ordinary.contains(&policy)
                || cpu < 0
                || libc::sched_getaffinity(0, size, &mut allowed) != 0
            {
                None
            } else {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut one);
                (libc::sched_setaffinity(0, size, &one) == 0).then_some((allowed, cpu as usize))
            }
        };
        OnThisCpu {
            before,
            _this_thread: std::marker::PhantomData,
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for OnThisCpu {
    fn drop(&mut self) {
        let Some((allowed, cpu)) = self.before.take() else {
            return;
        };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t values on the stack, of the size passed; 0 is the calling thread
        // (the one that pinned itself: this type is not `Send`).
        unsafe {
            let mut now: libc::cpu_set_t = std::mem::zeroed();
            // Give back only what was taken: a change made meanwhile (taskset) stands.
            let unchanged = libc::sched_getaffinity(0, size, &mut now) == 0
                && libc::CPU_COUNT(&now) == 1
                && libc::CPU_ISSET(cpu, &now);
            if unchanged && libc::sched_setaffinity(0, size, &allowed) != 0 {
                tracing::debug!(
                    "cannot give this thread its CPUs back: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
}
