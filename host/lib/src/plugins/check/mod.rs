//! A structural check of a library file before it reaches the dynamic loader.
//!
//! `dlopen` maps a file's segments as its headers describe them; a truncated or damaged file
//! then faults (SIGBUS) inside the loader, which kills the host. Checking that the headers
//! describe a library for this platform and architecture, and that everything they point to
//! lies inside the file, turns that crash into an error message. One module per format: `elf`
//! (Linux, the BSDs), `pe` (Windows); the Mach-O check is only its magic number.

mod elf;
mod pe;

use std::io::Read;

/// Why a file is not a loadable library for this platform; `None` when it looks well formed.
#[cfg(all(test, target_os = "linux"))]
pub fn problem(path: &std::path::Path) -> Option<String> {
    match std::fs::File::open(path) {
        Ok(mut f) => problem_in(&mut f),
        Err(e) => Some(format!("cannot be opened: {e}")),
    }
}

/// The same check on an open file (the descriptor that will be loaded).
pub fn problem_in(file: &mut std::fs::File) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        return Some(format!("cannot be read: {e}"));
    }
    let size = match file.metadata() {
        Ok(m) if !m.is_file() => return Some("is not a regular file".into()),
        Ok(m) => m.len(),
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    if size == 0 {
        return Some("is empty (0 bytes), not a shared library".into());
    }
    // The ELF header and, in practice, the program headers right after it: one read.
    let mut head = vec![0u8; 4096.min(size as usize)];
    if let Err(e) = file.read_exact(&mut head) {
        return Some(format!("cannot be read: {e}"));
    }
    if cfg!(target_os = "linux") || cfg!(target_os = "freebsd") {
        elf::check_elf(file, &head, size)
    } else if cfg!(target_os = "macos") {
        let magic = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
        match magic {
            0xfeed_facf | 0xcafe_babe | 0xbeba_feca => None,
            _ => Some("is not a Mach-O library (wrong magic number)".into()),
        }
    } else if cfg!(windows) {
        pe::check_pe_file(file, &head, size)
    } else {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn this_exe() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn refuses_non_libraries_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.so");
        std::fs::write(&p, b"").unwrap();
        assert!(problem(&p).unwrap().contains("empty"));
        std::fs::write(
            &p,
            b"hello world, not a library at all, just some text..........................",
        )
        .unwrap();
        assert!(problem(&p).unwrap().contains("no ELF header"));
        // The test binary is an ELF executable (PIE executables are ET_DYN too, so patch the type).
        let mut exe = this_exe();
        exe[16] = 2;
        exe[17] = 0;
        std::fs::write(&p, &exe).unwrap();
        assert!(
            problem(&p).unwrap().contains("executable"),
            "{:?}",
            problem(&p)
        );
        let mut exe = this_exe();
        exe[16] = 3;
        exe[17] = 0;
        exe[18] = 183;
        exe[19] = 0;
        std::fs::write(&p, &exe).unwrap();
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                problem(&p).unwrap(),
                "is built for aarch64, but this qlam runs on x86_64"
            );
        }
        let mut exe = this_exe();
        exe[16] = 3;
        exe[17] = 0;
        exe.truncate(exe.len() / 2);
        std::fs::write(&p, &exe).unwrap();
        assert!(
            problem(&p).unwrap().contains("truncated"),
            "{:?}",
            problem(&p)
        );
        // Section headers past the end (e_shoff, ELF64 little-endian at byte 40).
        let mut exe = this_exe();
        exe[16] = 3;
        exe[17] = 0;
        let past_the_end = (exe.len() as u64 + 4096).to_le_bytes();
        exe[40..48].copy_from_slice(&past_the_end);
        std::fs::write(&p, &exe).unwrap();
        assert_eq!(
            problem(&p).unwrap(),
            "is truncated or damaged (its section headers lie outside the file)"
        );
        // A header cut short.
        std::fs::write(&p, &this_exe()[..40]).unwrap();
        assert!(
            problem(&p).unwrap().contains("incomplete ELF header"),
            "{:?}",
            problem(&p)
        );
        std::fs::create_dir(dir.path().join("d.so")).unwrap();
        assert!(problem(&dir.path().join("d.so"))
            .unwrap()
            .contains("not a regular file"));
    }

    #[test]
    fn accepts_a_real_library() {
        for candidate in [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib64/libm.so.6",
        ] {
            let p = std::path::Path::new(candidate);
            if p.exists() && std::env::consts::ARCH == "x86_64" {
                assert_eq!(problem(p), None, "{candidate}");
                return;
            }
        }
    }
}
