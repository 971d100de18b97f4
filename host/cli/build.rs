//! Links the unwinder statically (libgcc_eh) on Linux with glibc, instead of through
//! libgcc_s.so: one shared library fewer for the dynamic loader to find, map and bind at every
//! start of the front (a cached `qlam auth token` is mostly process start-up; bench/README.md
//! has the numbers). The whole archive, so that its definitions are there
//! before the standard library asks for libgcc_s. Unwinding never crosses from qlam into a
//! plugin (panics are caught at every plugin edge), so the plugins' own libgcc_s is no
//! concern.
fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
    }
}
