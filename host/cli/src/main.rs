//! `qlam`: parse, run, exit with the code DESIGN.md fixes.
//!
//! On Linux the binary has its own C `main` instead of std's runtime start-up, which probes
//! the main thread's stack bounds for its stack-overflow message by parsing /proc/self/maps
//! (`pthread_getattr_np`: about 100 k instructions, a seventh of a cached `qlam auth token`;
//! see bench/README.md). What else that start-up does and qlam relies on is done here: SIGPIPE
//! ignored (a write to a closed pipe is an error, as in any Rust program), standard
//! descriptors that are closed opened on /dev/null, a panic that escapes exits 101. stdout is
//! flushed by `std::process::exit`.
#![cfg_attr(all(target_os = "linux", not(test)), no_main)]

/// `println!` for command results: a closed stdout (`qlam … | head`) is not an error worth a
/// panic; the command's exit code still says how it went.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod app;
mod args;
mod commands;
mod exit;
mod fast_path;
mod logging;
mod render;

#[cfg(all(target_os = "linux", not(test)))]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    open_standard_descriptors();
    // std::env::args still works: on Linux std captures argc/argv from .init_array.
    let code = std::panic::catch_unwind(app::main).unwrap_or(101);
    std::process::exit(code)
}

/// Opens /dev/null on any of descriptors 0, 1 and 2 that is closed, so that no file qlam
/// opens (a credential file!) becomes someone's stdout.
#[cfg(all(target_os = "linux", not(test)))]
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

#[cfg(any(not(target_os = "linux"), test))]
fn main() {
    let code = app::main();
    std::process::exit(code);
}
