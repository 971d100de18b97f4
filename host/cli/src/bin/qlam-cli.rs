//! `qlam-cli`: every command of qlam. People run `qlam`, which hands over to this executable
//! what it does not answer itself; exit codes are the ones DESIGN.md fixes.
#![cfg_attr(target_os = "linux", no_main)]

#[cfg(target_os = "linux")]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    qlam_cli::process::run(qlam_cli::run)
}

#[cfg(not(target_os = "linux"))]
fn main() {
    qlam_cli::process::run(qlam_cli::run)
}
