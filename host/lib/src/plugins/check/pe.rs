//! PE (Windows DLLs): the DOS and PE headers, the machine, a DLL and not a program, every
//! section inside the file.

use std::io::Read;

/// [`check_pe`] on an open file: reads more than `head` when the headers are longer (a DLL
/// with very many sections).
pub(super) fn check_pe_file(file: &mut std::fs::File, head: &[u8], size: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut bytes = head.to_vec();
    loop {
        match check_pe(&bytes, size, expected_pe_machine()) {
            Ok(()) => return None,
            Err(PeProblem::Bad(why)) => return Some(why),
            // Each step asks for more (the header, then the optional header, then the
            // section table), never past the file or PE_HEADERS_MAX.
            Err(PeProblem::NeedMore(len)) if len > bytes.len() => {
                bytes.resize(len, 0);
                if let Err(e) = file
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| file.read_exact(&mut bytes))
                {
                    return Some(format!("cannot be read: {e}"));
                }
            }
            Err(PeProblem::NeedMore(_)) => {
                return Some("is truncated or damaged (its PE headers do not parse)".into())
            }
        }
    }
}

/// Why [`check_pe`] did not accept a file.
#[derive(Debug, PartialEq, Eq)]
enum PeProblem {
    /// The one-line reason.
    Bad(String),
    /// The headers continue past the bytes given: call again with this many (no more than
    /// the file has, and at most [`PE_HEADERS_MAX`]).
    NeedMore(usize),
}

/// The most header bytes [`check_pe`] asks for (the Windows loader itself maps headers of at
/// most a few pages; 96 sections of 40 bytes plus the optional header fit in 4 KiB).
const PE_HEADERS_MAX: usize = 1 << 20;

const IMAGE_FILE_MACHINE_I386: u16 = 0x014c;
const IMAGE_FILE_MACHINE_AMD64: u16 = 0x8664;
const IMAGE_FILE_MACHINE_ARM64: u16 = 0xaa64;
const IMAGE_FILE_MACHINE_ARMNT: u16 = 0x01c4;
const IMAGE_FILE_EXECUTABLE_IMAGE: u16 = 0x0002;
const IMAGE_FILE_DLL: u16 = 0x2000;
const IMAGE_NT_OPTIONAL_HDR32_MAGIC: u16 = 0x10b;
const IMAGE_NT_OPTIONAL_HDR64_MAGIC: u16 = 0x20b;

/// The PE `Machine` of the running qlam.
fn expected_pe_machine() -> Option<u16> {
    Some(match std::env::consts::ARCH {
        "x86_64" => IMAGE_FILE_MACHINE_AMD64,
        "x86" => IMAGE_FILE_MACHINE_I386,
        "aarch64" => IMAGE_FILE_MACHINE_ARM64,
        "arm" => IMAGE_FILE_MACHINE_ARMNT,
        _ => return None,
    })
}

fn pe_machine_name(m: u16) -> String {
    match m {
        IMAGE_FILE_MACHINE_AMD64 => "x86_64".into(),
        IMAGE_FILE_MACHINE_I386 => "x86".into(),
        IMAGE_FILE_MACHINE_ARM64 => "aarch64".into(),
        IMAGE_FILE_MACHINE_ARMNT => "arm".into(),
        0x0200 => "Itanium".into(),
        0xa641 => "ARM64EC".into(),
        other => format!("machine {other:#06x}"),
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The structural check of a Windows DLL, on its first bytes (`bytes`, from offset 0) and
/// the size of the whole file: the DOS header's `e_lfanew` inside the file, the `PE\0\0`
/// signature, the machine against `machine` (the running architecture; `None`: any), a DLL
/// and not a program, the optional header of the machine's word size, and every section's
/// raw data inside the file — what the loader maps, so a DLL cut short is an error message
/// instead of `LoadLibraryExW failed`.
fn check_pe(bytes: &[u8], size: u64, machine: Option<u16>) -> Result<(), PeProblem> {
    let bad = |why: &str| Err(PeProblem::Bad(why.into()));
    // What the file has, or else what more to read.
    let need = |end: u64, what: &str| -> Result<(), PeProblem> {
        if end > size {
            Err(PeProblem::Bad(format!(
                "is truncated or damaged (its {what} lies outside the file)"
            )))
        } else if end > bytes.len() as u64 {
            match usize::try_from(end) {
                Ok(n) if n <= PE_HEADERS_MAX => Err(PeProblem::NeedMore(n)),
                _ => Err(PeProblem::Bad(format!(
                    "is damaged (its {what} ends past the first {PE_HEADERS_MAX} bytes)"
                ))),
            }
        } else {
            Ok(())
        }
    };
    if !bytes.starts_with(b"MZ") {
        return bad("is not a Windows DLL (no MZ header)");
    }
    need(0x40, "DOS header")?;
    let pe = u64::from(le32(bytes, 0x3c).unwrap_or_default());
    // The signature and the COFF file header (20 bytes).
    need(pe + 24, "PE header")?;
    let pe = pe as usize;
    if bytes.get(pe..pe + 4) != Some(&b"PE\0\0"[..]) {
        return bad("is not a Windows DLL (no PE signature after its DOS header)");
    }
    let coff = pe + 4;
    let field16 = |at: usize| le16(bytes, at).unwrap_or_default();
    let file_machine = field16(coff);
    let sections = usize::from(field16(coff + 2));
    let optional_len = usize::from(field16(coff + 16));
    let characteristics = field16(coff + 18);
    if let Some(expected) = machine {
        if file_machine != expected {
            let arch = pe_machine_name(expected);
            return Err(PeProblem::Bad(match file_machine {
                IMAGE_FILE_MACHINE_I386 => {
                    format!("is a 32-bit (x86) DLL, but this qlam runs on {arch}")
                }
                m => format!(
                    "is built for {}, but this qlam runs on {arch}",
                    pe_machine_name(m)
                ),
            }));
        }
    }
    if characteristics & IMAGE_FILE_EXECUTABLE_IMAGE == 0 {
        return bad(
            "is not a loadable Windows image (an object file, or a DLL that failed to link)",
        );
    }
    if characteristics & IMAGE_FILE_DLL == 0 {
        return bad("is a Windows program (.exe), not a DLL");
    }
    let optional = coff + 20;
    need((optional + optional_len) as u64, "optional header")?;
    let want_magic = match file_machine {
        IMAGE_FILE_MACHINE_I386 | IMAGE_FILE_MACHINE_ARMNT => IMAGE_NT_OPTIONAL_HDR32_MAGIC,
        _ => IMAGE_NT_OPTIONAL_HDR64_MAGIC,
    };
    let magic = if optional_len >= 2 {
        field16(optional)
    } else {
        0
    };
    if magic != want_magic {
        return Err(PeProblem::Bad(format!(
            "has a damaged PE header (optional header magic {magic:#x}, expected {want_magic:#x} for {})",
            pe_machine_name(file_machine)
        )));
    }
    let table = optional + optional_len;
    need((table + 40 * sections) as u64, "section table")?;
    for i in 0..sections {
        let at = table + 40 * i;
        let raw_len = u64::from(le32(bytes, at + 16).unwrap_or_default());
        let raw_at = u64::from(le32(bytes, at + 20).unwrap_or_default());
        let end = raw_at + raw_len;
        if raw_len != 0 && end > size {
            let name: String = bytes[at..at + 8]
                .iter()
                .take_while(|&&b| b != 0)
                .map(|&b| {
                    if b.is_ascii_graphic() {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .collect();
            // `/45`: a long name (mingw's `.debug_*`) in the COFF string table, which a cut
            // file has usually lost; the section's number says more.
            let which = if name.starts_with('/') {
                format!("`{name}` (section {} of {sections})", i + 1)
            } else {
                format!("`{name}`")
            };
            return Err(PeProblem::Bad(format!(
                "is truncated: its section {which} ends at byte {end}, but the file has {size} bytes"
            )));
        }
    }
    Ok(())
}

/// The PE check is plain code over bytes: tested on every platform.
#[cfg(test)]
mod pe_tests {
    use super::*;

    const AMD64: Option<u16> = Some(IMAGE_FILE_MACHINE_AMD64);

    /// A minimal PE32+ DLL header: DOS header, `PE\0\0` at 0x40, two sections whose raw
    /// data fills the file to 0x800 bytes.
    fn dll() -> Vec<u8> {
        let mut b = vec![0u8; 0x800];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        let coff = 0x44;
        b[coff..coff + 2].copy_from_slice(&IMAGE_FILE_MACHINE_AMD64.to_le_bytes());
        b[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        b[coff + 16..coff + 18].copy_from_slice(&0xf0u16.to_le_bytes());
        b[coff + 18..coff + 20].copy_from_slice(&0x2022u16.to_le_bytes());
        let opt = coff + 20;
        b[opt..opt + 2].copy_from_slice(&IMAGE_NT_OPTIONAL_HDR64_MAGIC.to_le_bytes());
        let table = opt + 0xf0;
        for (i, (name, at)) in [(b".text\0\0\0", 0x400u32), (b".data\0\0\0", 0x600)]
            .into_iter()
            .enumerate()
        {
            let s = table + 40 * i;
            b[s..s + 8].copy_from_slice(name);
            b[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
            b[s + 20..s + 24].copy_from_slice(&at.to_le_bytes());
        }
        b
    }

    fn problem_of(b: &[u8], machine: Option<u16>) -> Option<String> {
        match check_pe(b, b.len() as u64, machine) {
            Ok(()) => None,
            Err(PeProblem::Bad(why)) => Some(why),
            Err(PeProblem::NeedMore(n)) => panic!("asks for {n} bytes of a whole file"),
        }
    }

    fn set16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn accepts_a_well_formed_dll() {
        assert_eq!(problem_of(&dll(), AMD64), None);
        assert_eq!(problem_of(&dll(), None), None);
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            problem_of(b"hello, not a DLL", AMD64).unwrap(),
            "is not a Windows DLL (no MZ header)"
        );
        assert!(problem_of(b"MZ", AMD64).unwrap().contains("DOS header"));
        let mut b = dll();
        b[0x3c..0x40].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert_eq!(
            problem_of(&b, AMD64).unwrap(),
            "is truncated or damaged (its PE header lies outside the file)"
        );
        let mut b = dll();
        b[0x40..0x44].copy_from_slice(b"NE\0\0");
        assert!(problem_of(&b, AMD64).unwrap().contains("no PE signature"));
        let mut b = dll();
        set16(&mut b, 0x44, IMAGE_FILE_MACHINE_I386);
        set16(&mut b, 0x58, IMAGE_NT_OPTIONAL_HDR32_MAGIC);
        assert!(problem_of(&b, AMD64)
            .unwrap()
            .starts_with("is a 32-bit (x86) DLL, but this qlam runs on x86_64"));
        // The same file is fine for a 32-bit qlam.
        assert_eq!(problem_of(&b, Some(IMAGE_FILE_MACHINE_I386)), None);
        let mut b = dll();
        set16(&mut b, 0x44, IMAGE_FILE_MACHINE_ARM64);
        assert!(problem_of(&b, AMD64)
            .unwrap()
            .starts_with("is built for aarch64, but this qlam runs on x86_64"));
        let mut b = dll();
        set16(&mut b, 0x44 + 18, 0x0022);
        assert_eq!(
            problem_of(&b, AMD64).unwrap(),
            "is a Windows program (.exe), not a DLL"
        );
        let mut b = dll();
        set16(&mut b, 0x44 + 18, 0x2000);
        assert!(problem_of(&b, AMD64).unwrap().contains("not a loadable"));
        let mut b = dll();
        set16(&mut b, 0x58, IMAGE_NT_OPTIONAL_HDR32_MAGIC);
        assert_eq!(
            problem_of(&b, AMD64).unwrap(),
            "has a damaged PE header (optional header magic 0x10b, expected 0x20b for x86_64)"
        );
        // A section table past the end of the file.
        let mut b = dll();
        set16(&mut b, 0x44 + 2, 60);
        assert_eq!(
            problem_of(&b, AMD64).unwrap(),
            "is truncated or damaged (its section table lies outside the file)"
        );
        // Cut inside the second section's data.
        let b = &dll()[..0x700];
        assert_eq!(
            problem_of(b, AMD64).unwrap(),
            "is truncated: its section `.data` ends at byte 2048, but the file has 1792 bytes"
        );
        // A long section name is a reference into the string table.
        let mut b = dll();
        b[0x170..0x178].copy_from_slice(b"/45\0\0\0\0\0");
        assert_eq!(
            problem_of(&b[..0x700], AMD64).unwrap(),
            "is truncated: its section `/45` (section 2 of 2) ends at byte 2048, but the file has 1792 bytes"
        );
        // An empty section (no raw data) may point anywhere.
        let mut b = dll();
        b[0x148 + 16..0x148 + 20].copy_from_slice(&0u32.to_le_bytes());
        b[0x148 + 20..0x148 + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(problem_of(&b, AMD64), None);
    }

    #[test]
    fn reads_more_when_the_headers_are_long() {
        let b = dll();
        // The optional header, then the section table.
        assert_eq!(
            check_pe(&b[..0x100], b.len() as u64, AMD64),
            Err(PeProblem::NeedMore(0x148))
        );
        assert_eq!(
            check_pe(&b[..0x148], b.len() as u64, AMD64),
            Err(PeProblem::NeedMore(0x148 + 2 * 40))
        );
        assert_eq!(check_pe(&b[..0x1a0], b.len() as u64, AMD64), Ok(()));
    }

    /// The DLLs of the Windows cross-build (`windows/build.sh`), when there is one: every one
    /// passes, and cut in half each is truncated.
    #[test]
    fn real_mingw_dlls() {
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/windows");
        let dirs = [
            target.join("x86_64-pc-windows-gnu/debug"),
            target.join("extra/x86_64-pc-windows-gnu/debug"),
        ];
        let dlls: Vec<_> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "dll"))
            .collect();
        if dlls.is_empty() {
            eprintln!("no Windows build in {}: skipped", target.display());
            return;
        }
        for p in dlls {
            let b = std::fs::read(&p).unwrap();
            assert_eq!(problem_of(&b, AMD64), None, "{}", p.display());
            let half = &b[..b.len() / 2];
            let why = problem_of(half, AMD64).unwrap();
            assert!(why.starts_with("is truncated: its section `"), "{why}");
            assert_eq!(
                problem_of(&b, Some(IMAGE_FILE_MACHINE_I386)).unwrap(),
                "is built for x86_64, but this qlam runs on x86"
            );
        }
    }
}
