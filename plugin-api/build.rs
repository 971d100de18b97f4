//! The interface fingerprint: a hash of this crate's source files, so that every library
//! built from the same qlam-plugin-api source carries the same value (`export_providers!`
//! exports it). A host checks the interface layout of the first library with a given
//! fingerprint in full (abi_stable's check, most of the time discovery takes) and trusts the
//! same result for the others. The same source gives the same layout; a changed source, even
//! by a comment, gives another fingerprint and so a full check.

use std::path::{Path, PathBuf};

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files.sort();
    // FNV-1a, twice with different offsets: 128 bits, stable across builds and machines.
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            a = (a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        eat(rel.as_bytes());
        eat(&[0]);
        // Line endings as checked out do not change the interface.
        let text = std::fs::read(f).unwrap();
        let text: Vec<u8> = text.into_iter().filter(|&c| c != b'\r').collect();
        eat(&text);
        eat(&[0]);
    }
    println!("cargo:rustc-env=QLAM_PLUGIN_INTERFACE={a:016x}{b:016x}");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
