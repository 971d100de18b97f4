//! What both executables do before anything else, in place of Rust's runtime start-up.
//!
//! On Linux each binary has its own C `main` instead of std's runtime start-up, which probes
//! the main thread's stack bounds for its stack-overflow message by parsing /proc/self/maps
//! (`pthread_getattr_np`: about 100 k instructions, a seventh of a cached `qlam auth token`;
//! see bench/README.md). What else that start-up does and qlam relies on is done here: SIGPIPE
//! ignored (a write to a closed pipe is an error, as in any Rust program), standard
//! descriptors that are closed opened on /dev/null, a panic that escapes exits 101. stdout is
//! flushed by `std::process::exit`.

/// Runs `body` as a process's whole life (called from a C `main`) and exits with its code.
#[cfg(target_os = "linux")]
pub fn run(body: fn() -> i32) -> ! {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    open_standard_descriptors();
    // std::env::args still works: on Linux std captures argc/argv from .init_array.
    let code = std::panic::catch_unwind(body).unwrap_or(101);
    std::process::exit(code)
}

/// Runs `body` (from std's `main`, which did the start-up) and exits with its code.
#[cfg(not(target_os = "linux"))]
pub fn run(body: fn() -> i32) -> ! {
    std::process::exit(body())
}

/// Opens /dev/null on any of descriptors 0, 1 and 2 that is closed, so that no file qlam
/// opens (a credential file!) becomes someone's stdout.
#[cfg(target_os = "linux")]
fn open_standard_descriptors() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd; a zero timeout never blocks.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for pfd in fds {
        let closed = if polled == -1 {
            // SAFETY: F_GETFD on any integer is harmless.
            unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) == -1 }
        } else {
            pfd.revents & libc::POLLNVAL != 0
        };
        if closed {
            // SAFETY: the path is a valid C string; the lowest free descriptor is the
            // closed one, because lower ones are open (checked in order).
            unsafe {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}
