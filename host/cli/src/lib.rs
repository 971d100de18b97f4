//! The `qlam` command:
//!
//! - [`front`]: what users, scripts, kubectl, git, docker and cargo run (the `qlam`
//!   executable). It answers `--help` and a still-valid `auth token`/`auth headers` itself,
//!   from configuration and store alone, and links only what those need (not clap, not the
//!   plugin loader, not the keyring), so it starts about as fast as a process can.
//! - [`run`]: every command (clap, plugins, the store, the helpers). On Linux it lives in the
//!   commands library (host/commands, `libqlam_commands.so`) that the front loads when it
//!   does not answer itself; elsewhere it is linked into the front.

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
pub mod front;
mod logging;
pub mod process;
mod render;

/// Runs the command in this process's arguments and returns its exit code.
pub use app::main as run;
