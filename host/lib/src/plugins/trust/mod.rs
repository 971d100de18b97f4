//! Checks a plugin file before it reaches the dynamic loader (whose constructors run at
//! load): a regular file (a symbolic link only when allowed, and then its target is checked),
//! owned by root or by the user, not writable by group or others, in folders that are owned
//! by root or the user and not writable by others (as OpenSSH's StrictModes; a root-owned
//! sticky folder such as /tmp is fine). The file is opened once; the checks, the structural
//! check and the loading all use that descriptor (`/proc/self/fd/N` on Linux), so what was
//! checked is what is loaded.
//!
//! On Windows the same rules read the security descriptors of the open library and of its
//! folders (`windows.rs`, by the rules of `acl.rs`): owned by you, SYSTEM, Administrators or
//! TrustedInstaller; no access-list entry letting a broad group (Everyone, Authenticated
//! Users, Users, …) change the library, add or remove files in its folder, or remove,
//! rename or re-permission a folder above it.

// The rules are plain code over the descriptor's bytes, tested on every platform.
#[cfg(any(windows, test))]
mod acl;
#[cfg(windows)]
mod windows;

use std::fs::File;
use std::path::{Path, PathBuf};

/// What the configuration says about plugin files.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Follow symbolic links (their targets are checked).
    pub allow_symlinks: bool,
    /// `trusted_plugins`: files whose contents must have this SHA-256.
    pub pins: Vec<(PathBuf, String)>,
    /// `require_pinned_plugins`: load only pinned files.
    pub require_pinned: bool,
}

/// The SHA-256 of an open file, hex (the descriptor is left at its start).
pub fn sha256(file: &mut File) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A file that passed the checks, held open.
#[derive(Debug)]
pub struct Checked {
    /// The open file.
    pub file: File,
    /// The path to hand to the loader: the open descriptor where the OS allows it.
    pub load_path: PathBuf,
}

#[cfg(unix)]
fn owner_ok(uid: u32) -> bool {
    uid == 0 || uid == crate::sys::effective_uid()
}

#[cfg(unix)]
fn who_can_write(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// Folders that passed the checks, in one discovery: their checks are not repeated for the
/// next library in them. Sound because a folder that passed can only be changed by you or
/// root; kept for one scan of the search path only, so that a folder you loosen yourself is
/// checked again by the next command (or the next scan of a long-running program).
/// (Unix only: the Windows checks judge a folder by whether it holds the library or is
/// further up, so a pass is not one fact about the folder.)
#[derive(Debug, Default)]
pub struct TrustedFolders(
    #[cfg_attr(not(unix), allow(dead_code))] std::collections::HashSet<PathBuf>,
);

/// Checks `path`; `Err` is the one-line reason for refusing it.
#[cfg(test)]
pub fn check(path: &Path, policy: &TrustPolicy) -> Result<Checked, String> {
    check_in(path, policy, &mut TrustedFolders::default())
}

/// [`check`], skipping the folders in `folders` and adding those that pass.
pub fn check_in(
    path: &Path,
    policy: &TrustPolicy,
    folders: &mut TrustedFolders,
) -> Result<Checked, String> {
    let allow_symlinks = policy.allow_symlinks;
    if !path.is_absolute() {
        return Err("is not an absolute path".into());
    }
    let link = std::fs::symlink_metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    let real = if link.file_type().is_symlink() {
        if !allow_symlinks {
            return Err(
                "is a symbolic link; qlam loads regular files only (set `allow_symlink_plugins = true` to follow links: their target is checked)"
                    .into(),
            );
        }
        std::fs::canonicalize(path)
            .map_err(|e| format!("is a symbolic link that cannot be followed: {e}"))?
    } else {
        path.to_owned()
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW | libc::O_CLOEXEC);
    // Windows has no descriptor path to load through; instead the file is opened without
    // FILE_SHARE_WRITE / FILE_SHARE_DELETE, so nobody can change, rename or replace it while
    // the handle is open — through the checks and the load.
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::share_mode(
        &mut opts,
        0x0000_0001, /* FILE_SHARE_READ */
    );
    let mut file = opts
        .open(&real)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if !owner_ok(meta.uid()) {
            return Err(format!(
                "is owned by user {}, neither you nor root; refusing to load it",
                meta.uid()
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(format!(
                "is writable by {} (mode {mode:o}): anyone who can change it could run code in qlam; run `chmod go-w` on it",
                who_can_write(mode)
            ));
        }
        let mut passed = Vec::new();
        for dir in real.ancestors().skip(1) {
            if folders.0.contains(dir) {
                // It passed, and so did everything above it.
                break;
            }
            passed.push(dir.to_owned());
            let m = std::fs::metadata(dir)
                .map_err(|e| format!("its folder `{}` cannot be read: {e}", dir.display()))?;
            if !owner_ok(m.uid()) {
                return Err(format!(
                    "is in folder `{}`, owned by user {}, neither you nor root; refusing to load it",
                    dir.display(),
                    m.uid()
                ));
            }
            let mode = m.mode() & 0o7777;
            let sticky_root = mode & 0o1000 != 0 && m.uid() == 0;
            if mode & 0o022 != 0 && !sticky_root {
                return Err(format!(
                    "is in folder `{}`, which is writable by {} (mode {mode:o}): anyone who can write there could swap the library; run `chmod go-w` on it",
                    dir.display(),
                    who_can_write(mode)
                ));
            }
        }
        folders.0.extend(passed);
    }
    #[cfg(windows)]
    {
        let _ = folders;
        windows::check(&file, &real)?;
    }
    // The hash is taken of the very descriptor that will be loaded.
    let pin = policy.pins.iter().find(|(p, _)| p == path);
    if pin.is_some() || policy.require_pinned {
        let digest = sha256(&mut file).map_err(|e| format!("cannot be read: {e}"))?;
        match pin {
            Some((_, want)) if !want.eq_ignore_ascii_case(&digest) => {
                return Err(format!(
                    "does not match its pin in trusted_plugins (pinned sha256 {want}, the file's is {digest}); refusing to load it"
                ))
            }
            Some(_) => {}
            None => {
                return Err(format!(
                    "is not pinned, and require_pinned_plugins is set; to trust it add {{ path = \"{}\", sha256 = \"{digest}\" }} to trusted_plugins",
                    path.display()
                ))
            }
        }
    }
    #[cfg(target_os = "linux")]
    let load_path = {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    };
    // Elsewhere the path is loaded, and `open_library` verifies afterwards that it was this
    // file (macOS: the loader cannot open a descriptor path) or the handle pins it (Windows).
    #[cfg(not(target_os = "linux"))]
    let load_path = real;
    Ok(Checked { file, load_path })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libx.so");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, p)
    }

    #[test]
    fn refusals_name_the_reason() {
        let (dir, p) = setup();
        let strict = TrustPolicy::default();
        let links = TrustPolicy {
            allow_symlinks: true,
            ..TrustPolicy::default()
        };
        assert!(check(&p, &strict).is_ok());
        assert_eq!(
            check(Path::new("libx.so"), &strict).unwrap_err(),
            "is not an absolute path"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(check(&p, &strict)
            .unwrap_err()
            .starts_with("is writable by its group (mode 775)"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&p, &strict).unwrap_err();
        assert!(
            e.contains("which is writable by its group and others (mode 777)"),
            "{e}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("liblink.so");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(check(&link, &strict)
            .unwrap_err()
            .starts_with("is a symbolic link"));
        assert!(
            check(&link, &links).is_ok(),
            "allowed, and the target passes"
        );
        if crate::sys::effective_uid() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            assert!(check(&p, &strict)
                .unwrap_err()
                .starts_with("is owned by user 65534"));
        }
    }

    /// In one scan, a folder that passed is not checked again (only you or root could have
    /// changed it since); a folder below it that did not pass still is, and the next scan
    /// checks everything again.
    #[test]
    fn a_scan_checks_each_folder_once() {
        let (dir, p) = setup();
        let policy = TrustPolicy::default();
        let mut scan = TrustedFolders::default();
        assert!(check_in(&p, &policy, &mut scan).is_ok());
        assert!(scan.0.contains(dir.path()) && scan.0.contains(Path::new("/")));
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let q = open.join("liby.so");
        std::fs::copy(&p, &q).unwrap();
        let e = check_in(&q, &policy, &mut scan).unwrap_err();
        assert!(
            e.contains("which is writable by its group and others"),
            "{e}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_in(&p, &policy, &mut scan).is_ok(),
            "passed in this scan"
        );
        assert!(check_in(&p, &policy, &mut TrustedFolders::default()).is_err());
    }

    #[test]
    fn pins_are_checked_on_the_descriptor() {
        let (_dir, p) = setup();
        // sha256("x")
        let right = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
        let pinned = |h: &str, require: bool| TrustPolicy {
            pins: vec![(p.clone(), h.into())],
            require_pinned: require,
            ..TrustPolicy::default()
        };
        assert!(check(&p, &pinned(right, true)).is_ok());
        assert!(check(&p, &pinned(&right.to_uppercase(), false)).is_ok());
        let e = check(&p, &pinned(&"0".repeat(64), false)).unwrap_err();
        assert!(
            e.starts_with("does not match its pin in trusted_plugins") && e.contains(right),
            "{e}"
        );
        let e = check(
            &p,
            &TrustPolicy {
                require_pinned: true,
                ..TrustPolicy::default()
            },
        )
        .unwrap_err();
        assert!(e.contains(&format!("sha256 = \"{right}\"")), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_load_path_is_the_checked_descriptor() {
        let (_dir, p) = setup();
        let c = check(&p, &TrustPolicy::default()).unwrap();
        assert!(c.load_path.starts_with("/proc/self/fd/"));
        assert_eq!(std::fs::read_link(&c.load_path).unwrap(), p);
    }
}

/// The Windows checks on real files (run under wine too: windows/README.md). Permissions are
/// set with SDDL, as icacls would set them; wine turns them into a Unix mode and back.
#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::ConvertStringSecurityDescriptorToSecurityDescriptorW;
    use windows_sys::Win32::Security::{SetFileSecurityW, DACL_SECURITY_INFORMATION};

    fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
        s.encode_wide().chain([0]).collect()
    }

    /// Sets the DACL of `path` from SDDL (`D:(A;;FA;;;SY)…`).
    fn set_dacl(path: &Path, sddl: &str) {
        let text = wide(sddl.as_ref());
        let mut sd = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; `sd` is an out-pointer, freed with LocalFree
        // after its last use.
        unsafe {
            assert_ne!(
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    text.as_ptr(),
                    1, // SDDL_REVISION_1
                    &mut sd,
                    std::ptr::null_mut(),
                ),
                0,
                "{sddl}: {}",
                std::io::Error::last_os_error()
            );
            let ok = SetFileSecurityW(
                wide(path.as_os_str()).as_ptr(),
                DACL_SECURITY_INFORMATION,
                sd,
            );
            let e = std::io::Error::last_os_error();
            LocalFree(sd);
            assert_ne!(ok, 0, "{}: {e}", path.display());
        }
    }

    /// A DACL giving SYSTEM and this user full control and Everyone `everyone` (a mask).
    fn dacl(inherit: &str, everyone: u32) -> String {
        let me = windows::current_user().unwrap();
        format!("D:(A;{inherit};FA;;;SY)(A;{inherit};FA;;;{me})(A;{inherit};{everyone:#x};;;WD)")
    }

    const READ_EXECUTE: u32 = 0x1200a9;
    /// What wine makes of `o+rwx`.
    const WRITE_TOO: u32 = 0x1301ff;

    #[test]
    fn permissions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let p = plugins.join("x.dll");
        std::fs::write(&p, b"x").unwrap();
        let strict = TrustPolicy::default();
        set_dacl(dir.path(), &dacl("OICI", READ_EXECUTE));
        set_dacl(&plugins, &dacl("OICI", READ_EXECUTE));
        set_dacl(&p, &dacl("", READ_EXECUTE));
        if let Err(e) = check(&p, &strict) {
            panic!("{}: {e}", p.display());
        }

        set_dacl(&p, &dacl("", WRITE_TOO));
        let e = check(&p, &strict).unwrap_err();
        assert!(
            e.starts_with(
                "is writable by Everyone (its ACL allows Everyone to change its contents"
            ),
            "{e}"
        );
        assert!(e.ends_with("/remove:g *S-1-1-0)"), "{e}");
        set_dacl(&p, &dacl("", READ_EXECUTE));

        set_dacl(&plugins, &dacl("OICI", WRITE_TOO));
        let e = check(&p, &strict).unwrap_err();
        let shown = plugins.display().to_string();
        assert!(
            e.starts_with(&format!("is in folder `{shown}`, which Everyone can write to (its ACL allows Everyone to add files")),
            "{e}"
        );
        set_dacl(&plugins, &dacl("OICI", READ_EXECUTE));

        set_dacl(dir.path(), &dacl("OICI", WRITE_TOO));
        let e = check(&p, &strict).unwrap_err();
        assert!(e.contains("which Everyone can write to"), "{e}");
        assert!(!e.contains("add subfolders"), "{e}");
        set_dacl(dir.path(), &dacl("OICI", READ_EXECUTE));

        assert!(check(&p, &strict).is_ok());
    }
}
