//! `libqlam_commands.so`: every command of qlam, for the `qlam` front to load (on Linux).
//!
//! The front answers `--help` and a still-valid token or headers itself, linked small so that
//! it starts about as fast as a process can; for anything else it loads this library and
//! calls [`qlam_commands_main`] in the same process. Loading a shared library costs what the
//! dynamic loader spent on one large executable before the split (bench/README.md), and far
//! less than starting a second executable.

use std::ffi::c_int;

/// Runs the command in the process's arguments and returns its exit code (DESIGN.md's).
/// The front has done the process set-up (SIGPIPE, standard descriptors) and exits with it.
#[no_mangle]
pub extern "C" fn qlam_commands_main() -> c_int {
    // A panic must not unwind into the front (another copy of the standard library).
    let code = std::panic::catch_unwind(qlam_cli::run).unwrap_or(101);
    // This library's stdout buffer is its own: flush it before the front exits.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
