//! A structural check of a library file before it reaches the dynamic loader.
//!
//! `dlopen` maps a file's segments as its headers describe them; a truncated or damaged file
//! then faults (SIGBUS) inside the loader, which kills the host. Checking that the headers
//! describe a library for this platform and architecture, and that everything they point to
//! lies inside the file, turns that crash into an error message.

use std::io::Read;

/// Why a file is not a loadable library for this platform; `None` when it looks well formed.
#[cfg(test)]
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
    let mut head = vec![0u8; 64.min(size as usize)];
    if let Err(e) = file.read_exact(&mut head) {
        return Some(format!("cannot be read: {e}"));
    }
    if cfg!(target_os = "linux") || cfg!(target_os = "freebsd") {
        check_elf(file, &head, size)
    } else if cfg!(target_os = "macos") {
        let magic = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
        match magic {
            0xfeed_facf | 0xcafe_babe | 0xbeba_feca => None,
            _ => Some("is not a Mach-O library (wrong magic number)".into()),
        }
    } else if cfg!(windows) {
        (!head.starts_with(b"MZ")).then(|| "is not a Windows DLL (no MZ header)".into())
    } else {
        None
    }
}

fn expected_machine() -> Option<u16> {
    Some(match std::env::consts::ARCH {
        "x86_64" => 62,
        "x86" => 3,
        "aarch64" => 183,
        "arm" => 40,
        "riscv64" => 243,
        "powerpc64" => 21,
        "s390x" => 22,
        "loongarch64" => 258,
        _ => return None,
    })
}

fn machine_name(m: u16) -> String {
    match m {
        62 => "x86_64".into(),
        3 => "x86".into(),
        183 => "aarch64".into(),
        40 => "arm".into(),
        243 => "riscv".into(),
        21 => "powerpc64".into(),
        22 => "s390x".into(),
        258 => "loongarch".into(),
        other => format!("machine {other}"),
    }
}

fn check_elf(file: &mut std::fs::File, head: &[u8], size: u64) -> Option<String> {
    if !head.starts_with(b"\x7fELF") {
        return Some("is not a shared library (no ELF header)".into());
    }
    let is64 = match head.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Some("has a damaged ELF header (bad class)".into()),
    };
    let little = match head.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Some("has a damaged ELF header (bad byte order)".into()),
    };
    let header_len = if is64 { 64 } else { 52 };
    if head.len() < header_len {
        return Some("is truncated (incomplete ELF header)".into());
    }
    if is64 != cfg!(target_pointer_width = "64") {
        return Some(format!(
            "is a {}-bit library; this qlam is {}-bit",
            if is64 { 64 } else { 32 },
            if cfg!(target_pointer_width = "64") {
                64
            } else {
                32
            }
        ));
    }
    if little != cfg!(target_endian = "little") {
        return Some("is a library for the other byte order".into());
    }
    let r = Reader { is64, little };
    let u16_at = |o: usize| r.u16(head, o);
    let word_at = |o: usize| r.word(head, o);
    let e_type = u16_at(16);
    if e_type != 3 {
        return Some(format!(
            "is not a shared library (ELF type {}: {})",
            e_type,
            match e_type {
                1 => "relocatable object",
                2 => "executable",
                4 => "core dump",
                _ => "unknown",
            }
        ));
    }
    let machine = u16_at(18);
    if let Some(expected) = expected_machine() {
        if machine != expected {
            return Some(format!(
                "is built for {}, but this qlam runs on {}",
                machine_name(machine),
                std::env::consts::ARCH
            ));
        }
    }
    let (phoff, shoff, phentsize, phnum, shentsize, shnum) = if is64 {
        (
            word_at(32),
            word_at(40),
            u16_at(54),
            u16_at(56),
            u16_at(58),
            u16_at(60),
        )
    } else {
        (
            word_at(28),
            word_at(32),
            u16_at(42),
            u16_at(44),
            u16_at(46),
            u16_at(48),
        )
    };
    let table_end = |off: u64, entsize: u16, num: u16| off.checked_add(entsize as u64 * num as u64);
    match table_end(phoff, phentsize, phnum) {
        Some(end) if phnum > 0 && end <= size => {}
        _ => {
            return Some(
                "is truncated or damaged (its program headers lie outside the file)".into(),
            )
        }
    }
    if shoff != 0 && !matches!(table_end(shoff, shentsize, shnum), Some(end) if end <= size) {
        return Some("is truncated or damaged (its section headers lie outside the file)".into());
    }
    // Every loaded segment must lie inside the file, or mapping it faults in the loader.
    let min_entsize = if is64 { 56 } else { 32 };
    if (phentsize as usize) < min_entsize {
        return Some("has damaged program headers".into());
    }
    let mut table = vec![0u8; phentsize as usize * phnum as usize];
    use std::io::{Seek, SeekFrom};
    if file
        .seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut table))
        .is_err()
    {
        return Some("is truncated (cannot read its program headers)".into());
    }
    for entry in table.chunks(phentsize as usize) {
        let u32_at = |o: usize| r.u32(entry, o);
        let w = |o: usize| r.word(entry, o);
        const PT_LOAD: u32 = 1;
        if u32_at(0) != PT_LOAD {
            continue;
        }
        let (offset, filesz) = if is64 { (w(8), w(32)) } else { (w(4), w(16)) };
        if !matches!(offset.checked_add(filesz), Some(end) if end <= size) {
            return Some(
                "is truncated or damaged (a loadable segment lies outside the file)".into(),
            );
        }
    }
    None
}

/// Reads ELF fields in the file's byte order and word size.
#[derive(Clone, Copy)]
struct Reader {
    is64: bool,
    little: bool,
}

impl Reader {
    fn u16(self, b: &[u8], o: usize) -> u16 {
        let a = [b[o], b[o + 1]];
        if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }

    fn u32(self, b: &[u8], o: usize) -> u32 {
        let a: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
        if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }

    /// An address-sized field: 8 bytes in ELF64, 4 in ELF32.
    fn word(self, b: &[u8], o: usize) -> u64 {
        if !self.is64 {
            return self.u32(b, o) as u64;
        }
        let a: [u8; 8] = b[o..o + 8].try_into().expect("8 bytes");
        if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
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
