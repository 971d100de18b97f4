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
    // The ELF header and, in practice, the program headers right after it: one read.
    let mut head = vec![0u8; 4096.min(size as usize)];
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
    use object::read::elf::{FileHeader, ProgramHeader};
    // The identification bytes first, to say what is wrong for this machine: the header type
    // below is this machine's word size, which a file of the other class does not parse as.
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

    #[cfg(target_pointer_width = "64")]
    type Header = object::elf::FileHeader64<object::Endianness>;
    #[cfg(not(target_pointer_width = "64"))]
    type Header = object::elf::FileHeader32<object::Endianness>;
    let Ok(header) = Header::parse(head) else {
        return Some("is truncated or damaged (incomplete ELF header)".into());
    };
    let endian = header.endian().ok()?;
    let e_type = header.e_type(endian);
    if e_type != object::elf::ET_DYN {
        return Some(format!(
            "is not a shared library (ELF type {}: {})",
            e_type,
            match e_type {
                object::elf::ET_REL => "relocatable object",
                object::elf::ET_EXEC => "executable",
                object::elf::ET_CORE => "core dump",
                _ => "unknown",
            }
        ));
    }
    let machine = header.e_machine(endian);
    if let Some(expected) = expected_machine() {
        if machine != expected {
            return Some(format!(
                "is built for {}, but this qlam runs on {}",
                machine_name(machine),
                std::env::consts::ARCH
            ));
        }
    }
    // The section header table is not read (the loader does not use it), only placed.
    // A u32 in ELF32: the conversion is only useless on 64-bit machines.
    #[allow(clippy::useless_conversion)]
    let shoff: u64 = header.e_shoff(endian).into();
    let sh_end = u64::from(header.e_shentsize(endian))
        .checked_mul(header.e_shnum(endian).into())
        .and_then(|len| shoff.checked_add(len));
    if shoff != 0 && !matches!(sh_end, Some(end) if end <= size) {
        return Some("is truncated or damaged (its section headers lie outside the file)".into());
    }
    // The program headers follow the ELF header in every library a linker writes, so they
    // are in `head`; elsewhere they are read from the file.
    let cache;
    let segments = match header.program_headers(endian, head) {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => {
            cache = object::ReadCache::new(file);
            header.program_headers(endian, &cache)
        }
    };
    let segments = match segments {
        Ok(p) if !p.is_empty() => p,
        _ => {
            return Some(
                "is truncated or damaged (its program headers lie outside the file)".into(),
            )
        }
    };
    // Every loaded segment must lie inside the file, or mapping it faults in the loader.
    for segment in segments {
        if segment.p_type(endian) != object::elf::PT_LOAD {
            continue;
        }
        let (offset, len) = segment.file_range(endian);
        if !matches!(offset.checked_add(len), Some(end) if end <= size) {
            return Some(
                "is truncated or damaged (a loadable segment lies outside the file)".into(),
            );
        }
    }
    None
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
