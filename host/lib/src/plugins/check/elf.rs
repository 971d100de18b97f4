//! ELF: the header, the program headers, every loadable segment inside the file.

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

pub(super) fn check_elf(file: &mut std::fs::File, head: &[u8], size: u64) -> Option<String> {
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
