//! Can the service user read a fleet folder? `espfleetd` runs as the unprivileged `espfleet`
//! user inside a systemd sandbox, so a manifest that builds for root may fail for the daemon:
//! a key that is root-owned 0600, a directory without search permission, a file under `/home`
//! (hidden by `ProtectHome=yes`) or `/tmp` (`PrivateTmp=yes`). `espfleet check --as espfleet
//! DIR` asks this module before the service is enabled.
//!
//! Permissions are evaluated from the mode bits, owner and group of the file and of every
//! directory on its path, for the user's uid, primary group and supplementary groups (read
//! from `/etc/passwd` and `/etc/group`). POSIX ACLs are not evaluated.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// A local account: who the daemon runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary and supplementary group ids.
    pub gids: Vec<u32>,
}

/// Why an account could not be looked up.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AccountError {
    /// No such user in the passwd file.
    #[error("there is no user `{name}` in {passwd}")]
    #[diagnostic(
        code(espfleet::access::user_unknown),
        help(
            "install the espfleet package first (it creates the `espfleet` user), or name an \
             existing user"
        )
    )]
    UserUnknown {
        /// The name asked for.
        name: String,
        /// The passwd file read.
        passwd: String,
    },
    /// The passwd or group file could not be read.
    #[error("cannot read {path}: {message}")]
    #[diagnostic(
        code(espfleet::access::accounts_unreadable),
        help("run as a user who may read it")
    )]
    AccountsUnreadable {
        /// File.
        path: String,
        /// The I/O error.
        message: String,
    },
}

impl Account {
    /// Looks `name` up in `/etc/passwd` and `/etc/group`.
    pub fn lookup(name: &str) -> Result<Account, AccountError> {
        Self::lookup_in(name, Path::new("/etc/passwd"), Path::new("/etc/group"))
    }

    /// [`Account::lookup`] in other files (for tests).
    pub fn lookup_in(name: &str, passwd: &Path, group: &Path) -> Result<Account, AccountError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| AccountError::AccountsUnreadable {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let (uid, gid) = read(passwd)?
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && f[0] == name)
            .and_then(|f| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?)))
            .ok_or_else(|| AccountError::UserUnknown {
                name: name.to_owned(),
                passwd: passwd.display().to_string(),
            })?;
        let mut gids = vec![gid];
        for f in read(group)?
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
        {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if !gids.contains(&g) {
                        gids.push(g);
                    }
                }
            }
        }
        Ok(Account {
            name: name.to_owned(),
            uid,
            gids,
        })
    }
}

/// What the account needs of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read a file.
    Read,
    /// List a directory (read and search).
    List,
}

/// Why the account cannot do what it needs with a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The path does not exist (or cannot be examined at all).
    Missing(String),
    /// A directory on the way has no search (`x`) permission for the account.
    NoSearch {
        /// The directory.
        dir: PathBuf,
        /// Its mode, owner and group, for the message.
        mode: u32,
    },
    /// The path itself lacks read (or, for a directory, read and search) permission.
    NoAccess {
        /// Its permission bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Group gid.
        gid: u32,
    },
    /// The systemd sandbox of `espfleetd.service` hides this part of the file system.
    Sandboxed {
        /// The unit setting responsible.
        setting: &'static str,
    },
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Missing(e) => write!(f, "cannot be examined ({e})"),
            Denial::NoSearch { dir, mode } => write!(
                f,
                "directory {} (mode {:04o}) does not let it through",
                dir.display(),
                mode & 0o7777
            ),
            Denial::NoAccess { mode, uid, gid } => write!(
                f,
                "mode {:04o}, owner uid {uid}, group gid {gid}",
                mode & 0o7777
            ),
            Denial::Sandboxed { setting } => {
                write!(
                    f,
                    "hidden from the service by {setting} in espfleetd.service"
                )
            }
        }
    }
}

/// The part of the file system the unit's sandbox hides, if `path` lies in it.
fn sandboxed(path: &Path) -> Option<&'static str> {
    let under = |root: &str| path.starts_with(root);
    if under("/home") || under("/root") || under("/run/user") {
        Some("ProtectHome=yes")
    } else if under("/tmp") || under("/var/tmp") {
        Some("PrivateTmp=yes")
    } else {
        None
    }
}

/// The permission class that applies to `account` for an object owned by `uid`:`gid`, as a
/// shift of the mode bits (6 owner, 3 group, 0 other).
fn class_shift(account: &Account, uid: u32, gid: u32) -> u32 {
    if account.uid == uid {
        6
    } else if account.gids.contains(&gid) {
        3
    } else {
        0
    }
}

/// Mode bits and ownership of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perm {
    /// The path.
    pub path: PathBuf,
    /// `st_mode`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Perm {
    fn of(path: &Path) -> Result<Perm, Denial> {
        let meta = std::fs::metadata(path).map_err(|e| Denial::Missing(e.to_string()))?;
        Ok(Perm {
            path: path.to_owned(),
            mode: meta.permissions().mode(),
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }
}

/// The decision, from the permissions of every directory above the target (outermost first)
/// and of the target itself.
pub fn decide(account: &Account, dirs: &[Perm], target: &Perm, need: Need) -> Result<(), Denial> {
    if account.uid == 0 {
        return Ok(());
    }
    for dir in dirs {
        if (dir.mode >> class_shift(account, dir.uid, dir.gid)) & 0o1 == 0 {
            return Err(Denial::NoSearch {
                dir: dir.path.clone(),
                mode: dir.mode,
            });
        }
    }
    let bits = (target.mode >> class_shift(account, target.uid, target.gid)) & 0o7;
    let wanted = match need {
        Need::Read => 0o4,
        Need::List => 0o5,
    };
    if bits & wanted == wanted {
        Ok(())
    } else {
        Err(Denial::NoAccess {
            mode: target.mode,
            uid: target.uid,
            gid: target.gid,
        })
    }
}

/// Whether `account` can do `need` with `path` (and pass every directory above it), inside the
/// service's sandbox.
pub fn check(account: &Account, path: &Path, need: Need) -> Result<(), Denial> {
    let real = std::fs::canonicalize(path).map_err(|e| Denial::Missing(e.to_string()))?;
    if let Some(setting) = sandboxed(&real) {
        return Err(Denial::Sandboxed { setting });
    }
    permissions(account, &real, need)
}

/// [`check`] without the sandbox: the mode bits of `real` (a canonical path) and its parents.
fn permissions(account: &Account, real: &Path, need: Need) -> Result<(), Denial> {
    let mut dirs = real
        .ancestors()
        .skip(1)
        .map(Perm::of)
        .collect::<Result<Vec<_>, _>>()?;
    dirs.reverse();
    decide(account, &dirs, &Perm::of(real)?, need)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn set_mode(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn accounts_come_from_passwd_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\nespfleet:x:990:990:espfleet:/var/lib/espfleet:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            &group,
            "root:x:0:\nespfleet:x:990:\ndialout:x:20:espfleet,alice\n",
        )
        .unwrap();
        let a = Account::lookup_in("espfleet", &passwd, &group).unwrap();
        assert_eq!((a.uid, a.gids.clone()), (990, vec![990, 20]));
        assert!(matches!(
            Account::lookup_in("nobody-here", &passwd, &group),
            Err(AccountError::UserUnknown { .. })
        ));
    }

    fn perm(path: &str, mode: u32, uid: u32, gid: u32) -> Perm {
        Perm {
            path: path.into(),
            mode,
            uid,
            gid,
        }
    }

    #[test]
    fn mode_bits_decide_for_owner_group_and_others() {
        let service = Account {
            name: "espfleet".into(),
            uid: 990,
            gids: vec![990],
        };
        let open = [perm("/", 0o40_755, 0, 0), perm("/etc", 0o40_755, 0, 0)];
        // Root-owned 0600: the normal case, and unreadable for the service.
        let key = perm("/etc/k.pem", 0o100_600, 0, 0);
        assert!(matches!(
            decide(&service, &open, &key, Need::Read),
            Err(Denial::NoAccess {
                mode: 0o100_600,
                uid: 0,
                gid: 0
            })
        ));
        // Group espfleet, 0640: readable, and not by the world.
        let key = perm("/etc/k.pem", 0o100_640, 0, 990);
        assert_eq!(decide(&service, &open, &key, Need::Read), Ok(()));
        let other = Account {
            name: "o".into(),
            uid: 1000,
            gids: vec![1000],
        };
        assert!(decide(&other, &open, &key, Need::Read).is_err());
        // The owner's bits apply to the owner even when the group's would allow more.
        let owned = perm("/etc/k.pem", 0o100_040, 990, 990);
        assert!(decide(&service, &open, &owned, Need::Read).is_err());
        // A directory on the way without x for the service stops it.
        let closed = [
            perm("/", 0o40_755, 0, 0),
            perm("/etc/fleet", 0o40_750, 0, 0),
        ];
        assert!(matches!(
            decide(&service, &closed, &key, Need::Read),
            Err(Denial::NoSearch { ref dir, .. }) if dir == Path::new("/etc/fleet")
        ));
        // Listing needs r and x.
        let dir = perm("/etc/fleet", 0o40_710, 0, 990);
        assert!(decide(&service, &open, &dir, Need::List).is_err());
        let dir = perm("/etc/fleet", 0o40_750, 0, 990);
        assert_eq!(decide(&service, &open, &dir, Need::List), Ok(()));
        // Root passes everything.
        let root = Account {
            name: "root".into(),
            uid: 0,
            gids: vec![0],
        };
        assert_eq!(
            decide(&root, &closed, &perm("/x", 0o100_000, 5, 5), Need::Read),
            Ok(())
        );
    }

    #[test]
    fn check_reads_the_real_file_system() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let key = dir.path().join("board.key");
        std::fs::write(&key, "secret").unwrap();
        set_mode(&key, 0o600);
        let meta = std::fs::metadata(&key).unwrap();
        let me = Account {
            name: "me".into(),
            uid: meta.uid(),
            gids: vec![meta.gid()],
        };
        // (`permissions`, not `check`: the checkout itself may lie under /tmp or /home.)
        let real = std::fs::canonicalize(&key).unwrap();
        assert_eq!(permissions(&me, &real, Need::Read), Ok(()));
        let stranger = Account {
            name: "s".into(),
            uid: meta.uid().wrapping_add(1),
            gids: vec![meta.gid().wrapping_add(1)],
        };
        assert!(permissions(&stranger, &real, Need::Read).is_err());
        assert!(matches!(
            check(&me, &dir.path().join("gone"), Need::Read),
            Err(Denial::Missing(_))
        ));
    }

    #[test]
    fn the_sandbox_hides_home_and_tmp() {
        assert_eq!(
            sandboxed(Path::new("/home/alice/fleet/key.pem")),
            Some("ProtectHome=yes")
        );
        assert_eq!(sandboxed(Path::new("/root/k")), Some("ProtectHome=yes"));
        assert_eq!(sandboxed(Path::new("/tmp/fleet")), Some("PrivateTmp=yes"));
        assert_eq!(sandboxed(Path::new("/etc/espfleet/manifests/a.kdl")), None);
    }
}
