//! The Windows trust rules over a security descriptor's parts as bytes (the owner SID and the
//! DACL, as `GetSecurityInfo` returns them): plain code, so that it is tested on every
//! platform; `windows.rs` reads the descriptors.
//!
//! The rules are those of the Unix checks, in Windows terms: the owner is you, LocalSystem,
//! BUILTIN\Administrators or TrustedInstaller (the owners of the system's own files); and no
//! broad group (Everyone, Authenticated Users, BUILTIN\Users, …) is allowed a right that
//! could change the library or the folders that lead to it. Deny entries are ignored: they
//! can only take rights away, so ignoring them can only refuse more.

use std::fmt;

/// A security identifier, parsed from its binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sid {
    /// The 48-bit identifier authority (5 for NT AUTHORITY).
    authority: u64,
    sub: Vec<u32>,
}

impl Sid {
    /// `S-1-<authority>-<sub>…`.
    #[cfg(test)]
    pub(super) fn new(authority: u64, sub: &[u32]) -> Sid {
        Sid {
            authority,
            sub: sub.to_vec(),
        }
    }

    /// Parses a SID at the start of `b`; also returns its length in bytes.
    pub(super) fn parse(b: &[u8]) -> Option<(Sid, usize)> {
        let (&revision, &count) = (b.first()?, b.get(1)?);
        // SID_MAX_SUB_AUTHORITIES is 15.
        if revision != 1 || count > 15 {
            return None;
        }
        let len = 8 + 4 * usize::from(count);
        let b = b.get(..len)?;
        let authority = b[2..8].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        let sub = b[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((Sid { authority, sub }, len))
    }

    /// The binary form (what `GetLengthSid` measures).
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![1, self.sub.len() as u8];
        b.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for s in &self.sub {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    /// The name of a well-known SID this is, if it is one the rules know.
    pub(super) fn known_name(&self) -> Option<&'static str> {
        BROAD_GROUPS
            .iter()
            .chain(TRUSTED_OWNERS)
            .find(|k| k.is(self))
            .map(|k| k.name)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-1-{}", self.authority)?;
        for s in &self.sub {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

/// A well-known SID and the name the messages give it.
pub(super) struct Known {
    pub(super) name: &'static str,
    authority: u64,
    sub: &'static [u32],
}

impl Known {
    pub(super) fn is(&self, sid: &Sid) -> bool {
        sid.authority == self.authority && sid.sub == self.sub
    }

    #[cfg(test)]
    pub(super) fn sid(&self) -> Sid {
        Sid::new(self.authority, self.sub)
    }
}

const fn known(name: &'static str, authority: u64, sub: &'static [u32]) -> Known {
    Known {
        name,
        authority,
        sub,
    }
}

/// Groups that take in people other than you and the administrators: a right granted to one
/// of them is a right granted to others (the `o` in a Unix mode).
pub(super) const BROAD_GROUPS: &[Known] = &[
    known("Everyone", 1, &[0]),
    known("Authenticated Users", 5, &[11]),
    known("BUILTIN\\Users", 5, &[32, 545]),
    known("INTERACTIVE", 5, &[4]),
    known("ANONYMOUS LOGON", 5, &[7]),
    known("BUILTIN\\Guests", 5, &[32, 546]),
];

/// Owners trusted besides the current user (root's part on Unix).
pub(super) const TRUSTED_OWNERS: &[Known] = &[
    known("SYSTEM", 5, &[18]),
    known("BUILTIN\\Administrators", 5, &[32, 544]),
    known(
        "TrustedInstaller",
        5,
        &[
            80, 956008885, 3418522649, 1831038044, 1853292631, 2271478464,
        ],
    ),
];

/// Whether `owner` may own a plugin or a folder leading to it.
pub(super) fn owner_ok(owner: &Sid, me: &Sid) -> bool {
    owner == me || TRUSTED_OWNERS.iter().any(|k| k.is(owner))
}

/// An access-allowed entry of a DACL (deny and audit entries are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Allow {
    /// The ACE flags (inheritance).
    pub(super) flags: u8,
    /// The rights.
    pub(super) mask: u32,
    /// Whom.
    pub(super) sid: Sid,
}

const ACCESS_ALLOWED_ACE_TYPE: u8 = 0x0;
const ACCESS_ALLOWED_OBJECT_ACE_TYPE: u8 = 0x5;
const ACCESS_ALLOWED_CALLBACK_ACE_TYPE: u8 = 0x9;
const ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE: u8 = 0xb;
const INHERIT_ONLY_ACE: u8 = 0x08;
const INHERITED_ACE: u8 = 0x10;
const ACE_OBJECT_TYPE_PRESENT: u32 = 0x1;
const ACE_INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;

/// The access-allowed entries of a DACL in binary form (an `ACL` header, then its ACEs).
/// Callback ("conditional") entries count as plain ones: whether their condition holds is
/// not known here.
pub(super) fn parse_acl(b: &[u8]) -> Result<Vec<Allow>, String> {
    let damaged = |what: &str| Err(format!("a damaged access list ({what})"));
    if b.len() < 8 {
        return damaged("shorter than its header");
    }
    let size = usize::from(u16::from_le_bytes([b[2], b[3]]));
    let count = usize::from(u16::from_le_bytes([b[4], b[5]]));
    let Some(b) = b.get(..size) else {
        return damaged("its size is past its end");
    };
    let mut at = 8;
    let mut allowed = Vec::new();
    for _ in 0..count {
        let Some(&[kind, flags, l0, l1]) = b.get(at..at + 4) else {
            return damaged("an entry is past its end");
        };
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let Some(ace) = b.get(at..at + len).filter(|_| len >= 8) else {
            return damaged("an entry is past its end");
        };
        at += len;
        let mask = u32::from_le_bytes([ace[4], ace[5], ace[6], ace[7]]);
        let sid_at = match kind {
            ACCESS_ALLOWED_ACE_TYPE | ACCESS_ALLOWED_CALLBACK_ACE_TYPE => 8,
            ACCESS_ALLOWED_OBJECT_ACE_TYPE | ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE => {
                let Some(f) = ace.get(8..12) else {
                    return damaged("an object entry is cut short");
                };
                let f = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                let guid = |bit| if f & bit != 0 { 16 } else { 0 };
                12 + guid(ACE_OBJECT_TYPE_PRESENT) + guid(ACE_INHERITED_OBJECT_TYPE_PRESENT)
            }
            _ => continue,
        };
        let Some((sid, _)) = ace.get(sid_at..).and_then(Sid::parse) else {
            return damaged("an entry's SID does not parse");
        };
        allowed.push(Allow { flags, mask, sid });
    }
    Ok(allowed)
}

/// What is being checked: the rights that count as "writable" differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Object {
    /// The library itself.
    File,
    /// The folder the library is in.
    PluginFolder,
    /// A folder further up.
    Ancestor,
}

const FILE_WRITE_DATA: u32 = 0x2; // a folder's FILE_ADD_FILE
const FILE_APPEND_DATA: u32 = 0x4; // a folder's FILE_ADD_SUBDIRECTORY
const FILE_DELETE_CHILD: u32 = 0x40;
const DELETE: u32 = 0x1_0000;
const WRITE_DAC: u32 = 0x4_0000;
const WRITE_OWNER: u32 = 0x8_0000;
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;

/// The rights that make `object` writable for the rules, each with the words for it
/// ("its ACL allows Everyone to …").
fn write_rights(object: Object) -> &'static [(u32, &'static str)] {
    const COMMON: [(u32, &str); 5] = [
        (GENERIC_ALL, "do anything (full control)"),
        (GENERIC_WRITE, "write to it"),
        (DELETE, "delete or rename it"),
        (WRITE_DAC, "change its permissions"),
        (WRITE_OWNER, "take ownership of it"),
    ];
    const FILE: [(u32, &str); 7] = [
        COMMON[0],
        COMMON[1],
        (FILE_WRITE_DATA, "change its contents"),
        (FILE_APPEND_DATA, "append to it"),
        COMMON[2],
        COMMON[3],
        COMMON[4],
    ];
    // The plugin's own folder: adding a subfolder does not let anyone replace or add a DLL
    // in it, but it is refused all the same. That folder is where the loader looks for the
    // library's dependencies (LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR), and for the bundled
    // providers it is qlam.exe's folder, where a subfolder named `qlam.exe.local` redirects
    // the executable's own DLL loads (DotLocal redirection, for a program without a
    // manifest); a subfolder `x.dll` there is also listed as a plugin on every run. No
    // sane plugin folder grants "create folders" to everyone, so refusing costs nothing.
    const PLUGIN_FOLDER: [(u32, &str); 8] = [
        COMMON[0],
        COMMON[1],
        (FILE_WRITE_DATA, "add files"),
        (FILE_APPEND_DATA, "add subfolders"),
        (FILE_DELETE_CHILD, "delete files in it"),
        COMMON[2],
        COMMON[3],
        COMMON[4],
    ];
    // A folder further up: adding entries — "create folders" (FILE_ADD_SUBDIRECTORY, which
    // C:\ grants Authenticated Users by default) or "create files" (FILE_ADD_FILE, which
    // C:\ProgramData grants BUILTIN\Users) — cannot remove or rename the folder that leads
    // to the library, so neither counts there: the sticky-folder rule of the Unix checks.
    // Deleting entries does.
    const ANCESTOR: [(u32, &str); 6] = [
        COMMON[0],
        COMMON[1],
        (FILE_DELETE_CHILD, "delete files in it"),
        COMMON[2],
        COMMON[3],
        COMMON[4],
    ];
    match object {
        Object::File => &FILE,
        Object::PluginFolder => &PLUGIN_FOLDER,
        Object::Ancestor => &ANCESTOR,
    }
}

/// A broad group that may write to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Writer {
    /// The group's name (`Everyone`).
    pub(super) group: &'static str,
    /// Its SID (`S-1-1-0`).
    pub(super) sid: String,
    /// What it may do, in words ("add files and delete files in it").
    pub(super) rights: String,
    /// Whether the entry is inherited (icacls /remove does not remove it).
    pub(super) inherited: bool,
}

/// The first broad group the DACL lets write to `object`: an access-allowed entry that
/// applies to the object itself (not an inherit-only one) with a right of [`write_rights`].
pub(super) fn broad_writer(dacl: &[Allow], object: Object) -> Option<Writer> {
    dacl.iter()
        .filter(|ace| ace.flags & INHERIT_ONLY_ACE == 0)
        .find_map(|ace| {
            let group = BROAD_GROUPS.iter().find(|k| k.is(&ace.sid))?;
            let rights: Vec<&str> = write_rights(object)
                .iter()
                .filter(|(bit, _)| ace.mask & bit != 0)
                .map(|&(_, words)| words)
                .collect();
            (!rights.is_empty()).then(|| Writer {
                group: group.name,
                sid: ace.sid.to_string(),
                rights: join_words(&rights),
                inherited: ace.flags & INHERITED_ACE != 0,
            })
        })
}

/// "a", "a and b", "a, b and c".
fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A path as a user would type it: without the `\\?\` prefix that canonicalising adds.
pub(super) fn shown(path: &str) -> String {
    if let Some(unc) = path.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{unc}")
    } else if let Some(rest) = path.strip_prefix(r"\\?\") {
        rest.to_owned()
    } else {
        path.to_owned()
    }
}

/// What to run to remove a writer's entry from `path`.
fn remedy(path: &str, w: &Writer) -> String {
    if w.inherited {
        format!(
            "remove that entry (it is inherited: icacls \"{path}\" /inheritance:d, then icacls \"{path}\" /remove:g *{})",
            w.sid
        )
    } else {
        format!("remove that entry (icacls \"{path}\" /remove:g *{})", w.sid)
    }
}

/// Refusal: the library's owner. `who` names the owner.
pub(super) fn file_owner_refusal(who: &str) -> String {
    format!(
        "is owned by {who}, neither you nor an administrator or the system; refusing to load it"
    )
}

/// Refusal: a folder's owner.
pub(super) fn folder_owner_refusal(dir: &str, who: &str) -> String {
    format!(
        "is in folder `{dir}`, owned by {who}, neither you nor an administrator or the system; refusing to load it"
    )
}

/// Refusal: the library is writable by a broad group.
pub(super) fn file_writable(path: &str, w: &Writer) -> String {
    format!(
        "is writable by {group} (its ACL allows {group} to {rights}): anyone who can change it could run code in qlam; {remedy}",
        group = w.group,
        rights = w.rights,
        remedy = remedy(path, w)
    )
}

/// Refusal: a folder is writable by a broad group.
pub(super) fn folder_writable(dir: &str, w: &Writer) -> String {
    format!(
        "is in folder `{dir}`, which {group} can write to (its ACL allows {group} to {rights}): anyone who can write there could swap the library; {remedy}",
        group = w.group,
        rights = w.rights,
        remedy = remedy(dir, w)
    )
}

/// Refusal: the library has a NULL DACL (no access list: everyone may do anything).
pub(super) fn file_without_dacl(path: &str) -> String {
    format!(
        "has no access list (a NULL DACL), so everyone can change it: anyone could run code in qlam; give it the access list of its folder (icacls \"{path}\" /reset)"
    )
}

/// Refusal: a folder has a NULL DACL.
pub(super) fn folder_without_dacl(dir: &str) -> String {
    format!(
        "is in folder `{dir}`, which has no access list (a NULL DACL), so everyone can write there: anyone could swap the library; give it the access list of its parent (icacls \"{dir}\" /reset)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &[u32] = &[21, 0, 0, 0, 1000];
    const OBJECT_INHERIT: u8 = 0x1;
    const CONTAINER_INHERIT: u8 = 0x2;
    /// FA in SDDL.
    const FILE_ALL_ACCESS: u32 = 0x1f01ff;

    fn me() -> Sid {
        Sid::new(5, ME)
    }

    fn everyone() -> Sid {
        BROAD_GROUPS[0].sid()
    }

    /// A DACL in binary form from (type, flags, mask, SID) entries.
    fn acl(entries: &[(u8, u8, u32, Sid)]) -> Vec<u8> {
        let mut aces = Vec::new();
        for (kind, flags, mask, sid) in entries {
            let sid = sid.to_bytes();
            let mut ace = vec![*kind, *flags];
            ace.extend_from_slice(&((8 + sid.len()) as u16).to_le_bytes());
            ace.extend_from_slice(&mask.to_le_bytes());
            ace.extend_from_slice(&sid);
            aces.extend(ace);
        }
        let mut b = vec![2, 0];
        b.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend(aces);
        b
    }

    /// What wine makes of a Unix folder: `D:(A;OICI;FA;;;SY)(A;OICI;FA;;;<me>)(A;OICI;<everyone>;;;WD)`.
    fn wine_folder(everyone_mask: u32) -> Vec<Allow> {
        let f = OBJECT_INHERIT | CONTAINER_INHERIT;
        parse_acl(&acl(&[
            (0, f, FILE_ALL_ACCESS, TRUSTED_OWNERS[0].sid()),
            (0, f, FILE_ALL_ACCESS, me()),
            (0, f, everyone_mask, everyone()),
        ]))
        .unwrap()
    }

    #[test]
    fn sids_round_trip_and_print() {
        let ti = TRUSTED_OWNERS[2].sid();
        assert_eq!(
            ti.to_string(),
            "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
        );
        let b = ti.to_bytes();
        assert_eq!(b.len(), 8 + 4 * 6);
        assert_eq!(Sid::parse(&b), Some((ti, b.len())));
        assert_eq!(everyone().to_string(), "S-1-1-0");
        assert_eq!(everyone().known_name(), Some("Everyone"));
        assert_eq!(Sid::parse(&b[..10]), None);
        assert_eq!(Sid::parse(&[2, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn owners() {
        assert!(owner_ok(&me(), &me()));
        for k in TRUSTED_OWNERS {
            assert!(owner_ok(&k.sid(), &me()), "{}", k.name);
        }
        // What wine reports for a file another Unix user owns.
        assert!(!owner_ok(&Sid::new(5, &[7]), &me()));
        assert!(!owner_ok(&Sid::new(5, &[21, 0, 0, 0, 1001]), &me()));
        assert_eq!(
            file_owner_refusal("NT AUTHORITY\\ANONYMOUS LOGON (S-1-5-7)"),
            "is owned by NT AUTHORITY\\ANONYMOUS LOGON (S-1-5-7), neither you nor an administrator or the system; refusing to load it"
        );
        assert_eq!(
            folder_owner_refusal(r"Z:\srv\plugins", "S-1-5-21-1-2-3-1001"),
            r"is in folder `Z:\srv\plugins`, owned by S-1-5-21-1-2-3-1001, neither you nor an administrator or the system; refusing to load it"
        );
    }

    #[test]
    fn wine_modes() {
        // 755: Everyone may read and execute.
        let ok = wine_folder(0x1200a9);
        for o in [Object::File, Object::PluginFolder, Object::Ancestor] {
            assert_eq!(broad_writer(&ok, o), None, "{o:?}");
        }
        // 777: Everyone may also write, delete files in it and delete it.
        let open = wine_folder(0x1301ff);
        let w = broad_writer(&open, Object::Ancestor).unwrap();
        assert_eq!(w.group, "Everyone");
        assert_eq!(w.rights, "delete files in it and delete or rename it");
        assert_eq!(
            folder_writable(r"C:\plugins", &w),
            r#"is in folder `C:\plugins`, which Everyone can write to (its ACL allows Everyone to delete files in it and delete or rename it): anyone who can write there could swap the library; remove that entry (icacls "C:\plugins" /remove:g *S-1-1-0)"#
        );
        let w = broad_writer(&open, Object::PluginFolder).unwrap();
        assert_eq!(
            w.rights,
            "add files, add subfolders, delete files in it and delete or rename it"
        );
        let w = broad_writer(&open, Object::File).unwrap();
        assert_eq!(
            file_writable(r"C:\p\x.dll", &w),
            r#"is writable by Everyone (its ACL allows Everyone to change its contents, append to it and delete or rename it): anyone who can change it could run code in qlam; remove that entry (icacls "C:\p\x.dll" /remove:g *S-1-1-0)"#
        );
    }

    #[test]
    fn what_counts_as_writing() {
        let users = BROAD_GROUPS[2].sid();
        let auth = BROAD_GROUPS[1].sid();
        let one = |kind: u8, flags: u8, mask: u32, sid: &Sid| {
            parse_acl(&acl(&[
                (0, 0, FILE_ALL_ACCESS, me()),
                (kind, flags, mask, sid.clone()),
            ]))
            .unwrap()
        };
        // C:\ by default: Authenticated Users may create folders (AD) there, and have Modify
        // on everything below through an inherit-only entry.
        let root = one(0, 0, FILE_APPEND_DATA | 0x1200a9, &auth);
        assert_eq!(broad_writer(&root, Object::Ancestor), None);
        // C:\ProgramData: BUILTIN\Users may create files and folders there (WD, AD), not
        // delete anyone else's: fine further up, not as the plugins' own folder.
        let data = one(0, 0, FILE_WRITE_DATA | FILE_APPEND_DATA | 0x1200a9, &users);
        assert_eq!(broad_writer(&data, Object::Ancestor), None);
        assert_eq!(
            broad_writer(&data, Object::PluginFolder).unwrap().rights,
            "add files and add subfolders"
        );
        assert_eq!(
            broad_writer(&root, Object::PluginFolder).unwrap().rights,
            "add subfolders"
        );
        assert_eq!(
            broad_writer(&root, Object::File).unwrap().rights,
            "append to it"
        );
        let below = one(
            0,
            OBJECT_INHERIT | CONTAINER_INHERIT | INHERIT_ONLY_ACE,
            0x1301bf,
            &auth,
        );
        assert_eq!(broad_writer(&below, Object::PluginFolder), None);
        // Generic rights, and the same entry inherited.
        let g = one(0, INHERITED_ACE, GENERIC_ALL, &users);
        let w = broad_writer(&g, Object::Ancestor).unwrap();
        assert_eq!(
            (w.group, w.rights.as_str()),
            ("BUILTIN\\Users", "do anything (full control)")
        );
        assert!(folder_writable(r"C:\p", &w).ends_with(
            r#"remove that entry (it is inherited: icacls "C:\p" /inheritance:d, then icacls "C:\p" /remove:g *S-1-5-32-545)"#
        ));
        let g = one(0, 0, GENERIC_WRITE | WRITE_DAC | WRITE_OWNER, &users);
        assert_eq!(
            broad_writer(&g, Object::File).unwrap().rights,
            "write to it, change its permissions and take ownership of it"
        );
        // Deletion of entries: a folder's FILE_DELETE_CHILD; a file has no children.
        let d = one(0, 0, FILE_DELETE_CHILD, &users);
        assert!(broad_writer(&d, Object::Ancestor).is_some());
        assert_eq!(broad_writer(&d, Object::File), None);
        // Deny entries are skipped, and so is a write right given to someone narrow.
        let deny = one(1, 0, FILE_ALL_ACCESS, &everyone());
        assert_eq!(deny.len(), 1);
        assert_eq!(broad_writer(&deny, Object::File), None);
        // A conditional (callback) entry counts as granted.
        let cb = one(
            ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
            0,
            FILE_WRITE_DATA,
            &everyone(),
        );
        assert!(broad_writer(&cb, Object::File).is_some());
        for k in BROAD_GROUPS {
            let w = one(0, 0, FILE_WRITE_DATA, &k.sid());
            assert_eq!(broad_writer(&w, Object::File).unwrap().group, k.name);
        }
    }

    #[test]
    fn damaged_lists_are_errors() {
        let good = acl(&[(0, 0, FILE_ALL_ACCESS, me())]);
        assert!(parse_acl(&good).is_ok());
        assert!(parse_acl(&good[..6]).is_err());
        assert!(parse_acl(&good[..good.len() - 1]).is_err());
        let mut more = good.clone();
        more[4] = 2; // two entries, one present
        assert!(parse_acl(&more).is_err());
        let mut bad_sid = good;
        bad_sid[16] = 7; // the SID's revision
        assert!(parse_acl(&bad_sid).is_err());
        // An empty DACL: nobody but the owner (through its implicit rights) may do anything.
        assert_eq!(parse_acl(&acl(&[])).unwrap(), vec![]);
    }

    #[test]
    fn paths_are_shown_as_typed() {
        assert_eq!(shown(r"\\?\C:\p\x.dll"), r"C:\p\x.dll");
        assert_eq!(shown(r"\\?\UNC\srv\share\x.dll"), r"\\srv\share\x.dll");
        assert_eq!(shown(r"Z:\work"), r"Z:\work");
        assert_eq!(
            folder_without_dacl("C:\\p"),
            "is in folder `C:\\p`, which has no access list (a NULL DACL), so everyone can write there: anyone could swap the library; give it the access list of its parent (icacls \"C:\\p\" /reset)"
        );
        assert!(file_without_dacl("C:\\p\\x.dll").contains("icacls \"C:\\p\\x.dll\" /reset"));
    }
}
