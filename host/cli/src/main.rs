//! `qlam`: the front. A still-valid answer or the help text at once; anything else is the
//! commands library's. See the library's documentation.
#![cfg_attr(target_os = "linux", no_main)]

#[cfg(target_os = "linux")]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    qlam_cli::process::run(qlam_cli::front::main)
}

#[cfg(not(target_os = "linux"))]
fn main() {
    qlam_cli::process::run(qlam_cli::front::main)
}
