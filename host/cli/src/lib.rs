//! The `qlam` command as a library for its two executables:
//!
//! - `qlam` ([`front`]): what users, scripts, kubectl, git, docker and cargo run. It answers
//!   `--help` and a still-valid `auth token`/`auth headers` itself, from configuration and
//!   store alone, and hands every other command to `qlam-cli` (the same arguments, the same
//!   process on Unix). It links only what those answers need, so it starts about as fast as
//!   a process can (bench/README.md).
//! - `qlam-cli` ([`run`]): every command (clap, plugins, the store, the helpers).

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

pub use app::main as run;
