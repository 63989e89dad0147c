//! Makes a finished tree reproducible: the same packages and recipe give the same bytes.
//!
//! Removes caches that record build-time state (`/var/cache/ldconfig/aux-cache` holds
//! inode numbers and times; debconf's `*-old` backups), leaves `/etc/machine-id` present and
//! empty (systemd fills it on first boot), and clamps every timestamp to
//! `SOURCE_DATE_EPOCH` (symlinks included, without following them). Python bytecode needs no
//! fix: maintainer scripts and `[[run]]` steps see `SOURCE_DATE_EPOCH`, under which
//! `py_compile` writes hash-checked `.pyc` files instead of timestamped ones.

use std::path::Path;

use filetime::FileTime;

use crate::error::{RootfsError, io_err};
use crate::install::write_file;

/// Files that only record the build's own state.
const VOLATILE: &[&str] = &[
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/passwords.dat-old",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
];

/// Applies every fix, clamping last.
pub fn normalize(root: &Path, source_date_epoch: i64) -> Result<(), RootfsError> {
    for rel in VOLATILE {
        let p = root.join(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    let machine_id = root.join("etc/machine-id");
    if std::fs::symlink_metadata(&machine_id).is_ok() {
        std::fs::remove_file(&machine_id).map_err(io_err(&machine_id))?;
    }
    write_file(&machine_id, b"", 0o444)?;
    clamp_times(root, source_date_epoch)
}

/// Sets every mtime (and atime) later than `epoch` to `epoch`, depth first so a directory's
/// time is set after its children were touched.
pub fn clamp_times(path: &Path, epoch: i64) -> Result<(), RootfsError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).map_err(io_err(path))? {
            let e = e.map_err(io_err(path))?;
            clamp_times(&e.path(), epoch)?;
        }
    }
    let mtime = FileTime::from_last_modification_time(&meta);
    let atime = FileTime::from_last_access_time(&meta);
    if mtime.unix_seconds() > epoch || atime.unix_seconds() > epoch {
        let m = if mtime.unix_seconds() > epoch {
            FileTime::from_unix_time(epoch, 0)
        } else {
            mtime
        };
        filetime::set_symlink_file_times(path, m, m).map_err(io_err(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_normalize_empties_machine_id_and_clamps_times() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("var/cache/ldconfig")).unwrap();
        std::fs::write(root.path().join("etc/machine-id"), "0123\n").unwrap();
        std::fs::write(root.path().join("var/cache/ldconfig/aux-cache"), "x").unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/python3")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.path().join("etc/dangling")).unwrap();
        normalize(root.path(), 1_000_000).unwrap();
        assert_eq!(
            std::fs::read(root.path().join("etc/machine-id")).unwrap(),
            b""
        );
        assert!(!root.path().join("var/cache/ldconfig/aux-cache").exists());
        for p in ["etc", "etc/machine-id", "usr/lib/python3", ""] {
            let m = std::fs::symlink_metadata(root.path().join(p)).unwrap();
            assert_eq!(
                FileTime::from_last_modification_time(&m).unix_seconds(),
                1_000_000,
                "{p}"
            );
        }
        let m = std::fs::symlink_metadata(root.path().join("etc/dangling")).unwrap();
        assert_eq!(
            FileTime::from_last_modification_time(&m).unix_seconds(),
            1_000_000
        );
    }
}
