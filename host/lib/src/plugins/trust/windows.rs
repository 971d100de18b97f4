//! The Windows side of the trust checks: the owner and DACL of the open library (its handle,
//! the one that is checked and held through the load) and of every folder above it (each
//! opened with FILE_FLAG_BACKUP_SEMANTICS for its handle), judged by the rules in `acl.rs`.
//! All `unsafe` of the trust checks is here, each call's result checked.

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_FILE_OBJECT};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, IsValidAcl, IsValidSid, LookupAccountSidW, TokenUser, ACL,
    DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION, PSID, SID_NAME_USE, TOKEN_QUERY,
    TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{FILE_FLAG_BACKUP_SEMANTICS, READ_CONTROL};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::acl::{self, Object, Sid};

/// The parts of a security descriptor the rules read, copied out of it.
struct Security {
    owner: Sid,
    /// `None`: a NULL DACL (everyone may do anything).
    dacl: Option<Vec<acl::Allow>>,
}

/// Frees a `LocalAlloc`ed block (a security descriptor) when dropped.
struct LocalMemory(*mut c_void);

impl Drop for LocalMemory {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the block came from GetSecurityInfo, which allocates with LocalAlloc,
            // and is freed once, here.
            unsafe { LocalFree(self.0) };
        }
    }
}

/// A SID in a buffer the OS gave, as a [`Sid`].
///
/// # Safety
/// `sid` is null or points to a SID that stays valid during the call.
unsafe fn sid_at(sid: PSID) -> std::io::Result<Sid> {
    let damaged = || std::io::Error::new(std::io::ErrorKind::InvalidData, "a damaged SID");
    // SAFETY: the caller's promise; IsValidSid checks the structure before its length is
    // read, and the length is the SID's own.
    let bytes = unsafe {
        if sid.is_null() || IsValidSid(sid) == 0 {
            return Err(damaged());
        }
        std::slice::from_raw_parts(sid as *const u8, GetLengthSid(sid) as usize)
    };
    Sid::parse(bytes).map(|(s, _)| s).ok_or_else(damaged)
}

/// The owner and DACL of an open file or folder (the handle needs READ_CONTROL).
fn security_of(handle: HANDLE) -> std::io::Result<Security> {
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut descriptor: *mut c_void = std::ptr::null_mut();
    // SAFETY: the out-pointers are valid; on success `owner` and `dacl` point into
    // `descriptor`, which is freed (once) by the guard after they were last used.
    let status = unsafe {
        GetSecurityInfo(
            handle,
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(status as i32));
    }
    let _descriptor = LocalMemory(descriptor);
    // SAFETY: `owner` points into the live descriptor (or is null: an error).
    let owner = unsafe { sid_at(owner) }?;
    let dacl = if dacl.is_null() {
        None
    } else {
        // SAFETY: `dacl` points into the live descriptor; IsValidAcl checks the header and
        // its entries before AclSize is trusted as the length.
        let bytes = unsafe {
            if IsValidAcl(dacl) == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a damaged access list",
                ));
            }
            std::slice::from_raw_parts(dacl as *const u8, usize::from((*dacl).AclSize))
        };
        Some(
            acl::parse_acl(bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        )
    };
    Ok(Security { owner, dacl })
}

/// The user this process runs as (its token's user: the Unix effective uid).
pub(super) fn current_user() -> Result<&'static Sid, String> {
    static ME: OnceLock<Result<Sid, String>> = OnceLock::new();
    ME.get_or_init(|| {
        read_current_user().map_err(|e| format!("cannot be checked: who you are is unknown ({e})"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn read_current_user() -> std::io::Result<Sid> {
    struct Token(HANDLE);
    impl Drop for Token {
        fn drop(&mut self) {
            // SAFETY: a handle OpenProcessToken returned, closed once.
            unsafe { CloseHandle(self.0) };
        }
    }
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess is a pseudo-handle; `token` is a valid out-pointer.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let token = Token(token);
    // TOKEN_USER and the SID after it; u64s for the alignment of the pointer in it.
    let mut buf = vec![0u64; 16];
    loop {
        let mut needed = 0u32;
        let len = (buf.len() * 8) as u32;
        // SAFETY: `buf` is writable for `len` bytes; `needed` is a valid out-pointer.
        let ok = unsafe {
            GetTokenInformation(
                token.0,
                TokenUser,
                buf.as_mut_ptr().cast(),
                len,
                &mut needed,
            )
        };
        if ok != 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if needed <= len {
            return Err(e);
        }
        buf = vec![0u64; (needed as usize).div_ceil(8)];
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into `buf`,
    // which lives until the end of this function.
    unsafe {
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        sid_at(user.User.Sid)
    }
}

/// Who a SID is, for a message: its account name when Windows knows it, and the SID.
fn who(sid: &Sid) -> String {
    if let Some(name) = sid.known_name() {
        return format!("{name} ({sid})");
    }
    let mut bytes = sid.to_bytes();
    let mut name = [0u16; 256];
    let mut domain = [0u16; 256];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: `bytes` is a well-formed SID (it was parsed); the buffers are writable for the
    // lengths given, which the call updates to the lengths written (without the NUL).
    let found = unsafe {
        LookupAccountSidW(
            std::ptr::null(),
            bytes.as_mut_ptr().cast(),
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    } != 0;
    if !found {
        return sid.to_string();
    }
    let text = |b: &[u16], n: u32| String::from_utf16_lossy(&b[..(n as usize).min(b.len())]);
    let (name, domain) = (text(&name, name_len), text(&domain, domain_len));
    let account = if domain.is_empty() {
        name
    } else {
        format!("{domain}\\{name}")
    };
    // Account names are chosen by whoever made the account: escape them like any display text.
    format!(
        "{} ({sid})",
        crate::boundary::validate::escape(&account).into_owned()
    )
}

/// The checks of the library (already open, `file`) at `real`, and of its folders.
pub(super) fn check(file: &File, real: &Path) -> Result<(), String> {
    let me = current_user()?;
    let path = acl::shown(&real.display().to_string());
    let sec = security_of(file.as_raw_handle() as HANDLE)
        .map_err(|e| format!("cannot be checked: its permissions cannot be read: {e}"))?;
    if !acl::owner_ok(&sec.owner, me) {
        return Err(acl::file_owner_refusal(&who(&sec.owner)));
    }
    match &sec.dacl {
        None => return Err(acl::file_without_dacl(&path)),
        Some(dacl) => {
            if let Some(w) = acl::broad_writer(dacl, Object::File) {
                return Err(acl::file_writable(&path, &w));
            }
        }
    }
    for (i, dir) in real.ancestors().skip(1).enumerate() {
        let shown = acl::shown(&dir.display().to_string());
        let sec = open_folder(dir)
            .and_then(|f| security_of(f.as_raw_handle() as HANDLE))
            .map_err(|e| format!("its folder `{shown}` cannot be read: {e}"))?;
        if !acl::owner_ok(&sec.owner, me) {
            return Err(acl::folder_owner_refusal(&shown, &who(&sec.owner)));
        }
        let object = if i == 0 {
            Object::PluginFolder
        } else {
            Object::Ancestor
        };
        match &sec.dacl {
            None => return Err(acl::folder_without_dacl(&shown)),
            Some(dacl) => {
                if let Some(w) = acl::broad_writer(dacl, object) {
                    return Err(acl::folder_writable(&shown, &w));
                }
            }
        }
    }
    Ok(())
}

/// A folder's handle, for its security descriptor only (READ_CONTROL; a folder can be opened
/// only with FILE_FLAG_BACKUP_SEMANTICS).
fn open_folder(dir: &Path) -> std::io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .access_mode(READ_CONTROL)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(dir)
}
