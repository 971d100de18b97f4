//! Links the unwinder statically (libgcc_eh) on Linux with glibc, instead of through
//! libgcc_s.so: one shared library fewer for the dynamic loader to find, map and bind at every
//! start of the front (a cached `qlam auth token` is mostly process start-up; bench/README.md
//! has the numbers). The whole archive, so that its definitions are there
//! before the standard library asks for libgcc_s. Unwinding never crosses from qlam into a
//! plugin (panics are caught at every plugin edge), so the plugins' own libgcc_s is no
//! concern.
//!
//! Also on Linux: the front's hot code together (front-layout.ld, an augmenting linker script:
//! the default layout with one output section inserted after `.text`). The kernel maps a
//! file's pages 64 KiB at a time around each fault, so a cached `qlam auth token` costs as
//! much memory as the 64 KiB windows its code touches: spread over the whole text, its
//! ~265 KB left 730 KB resident, gathered 480 KB (bench/front-layout.py makes the
//! script; bench/README.md has the numbers). LLD and GNU ld both read it.
fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let script = std::path::Path::new(&dir).join("front-layout.ld");
        println!("cargo:rerun-if-changed={}", script.display());
        println!("cargo:rustc-link-arg-bin=qlam=-Wl,-T,{}", script.display());
    }
}
