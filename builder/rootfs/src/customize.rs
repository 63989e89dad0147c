//! Applies a recipe's own settings to an installed tree: groups, users, files, enabled
//! services, hostname, build-time commands and cleanup.
//!
//! Accounts are made by the tree's `groupadd`/`useradd` in a chroot (so shadow's own rules
//! apply, and `SOURCE_DATE_EPOCH` fixes the password-change dates). Files are written from the
//! host side with numeric owners looked up in the tree's `/etc/passwd` and `/etc/group`.
//! Services are enabled as systemd would: a symlink in `<target>.wants/` for each
//! `WantedBy=` (and `.requires/` for `RequiredBy=`) of the unit's `[Install]` section.
//! `[[run]]` steps get the host's `/etc/resolv.conf` for network access; the tree's own is
//! restored afterwards.

use std::path::{Path, PathBuf};

use vmimage_recipe::{FileSource, OwnerId, Recipe};

use crate::error::{RootfsError, io_err};
use crate::install::{Chroot, set_mode, write_file};

/// Applies everything but cleanup, in recipe order within each kind.
pub fn apply(root: &Path, recipe: &Recipe, source_date_epoch: i64) -> Result<(), RootfsError> {
    let chroot = Chroot::new(root, source_date_epoch);
    let mut account_cmds: Vec<Vec<String>> = Vec::new();
    for g in &recipe.groups {
        let mut cmd = vec!["groupadd".to_string()];
        if g.system {
            cmd.push("--system".into());
        }
        if let Some(gid) = g.gid {
            cmd.extend(["--gid".into(), gid.to_string()]);
        }
        cmd.push(g.name.clone());
        account_cmds.push(cmd);
    }
    for u in &recipe.users {
        let mut cmd = vec!["useradd".to_string()];
        if u.system {
            cmd.push("--system".into());
        } else {
            cmd.push("--create-home".into());
        }
        if let Some(uid) = u.uid {
            cmd.extend(["--uid".into(), uid.to_string()]);
        }
        match u.gid {
            Some(gid) => cmd.extend(["--gid".into(), gid.to_string(), "--no-user-group".into()]),
            None => cmd.push("--user-group".into()),
        }
        cmd.extend([
            "--home-dir".into(),
            u.home.clone(),
            "--shell".into(),
            u.shell.clone(),
        ]);
        if !u.groups.is_empty() {
            cmd.extend(["--groups".into(), u.groups.join(",")]);
        }
        cmd.push(u.name.clone());
        account_cmds.push(cmd);
    }
    if !account_cmds.is_empty() {
        chroot.run("creating groups and users", &account_cmds)?;
    }

    for (i, f) in recipe.files.iter().enumerate() {
        write_entry(root, f, &format!("files.{i}"))?;
    }
    for (i, unit) in recipe.services.iter().enumerate() {
        enable_unit(root, unit).map_err(|message| RootfsError::Recipe {
            field: format!("services.enable.{i}"),
            message,
        })?;
    }
    if let Some(h) = &recipe.rootfs.hostname {
        write_file(
            &root.join("etc/hostname"),
            format!("{h}\n").as_bytes(),
            0o644,
        )?;
    }
    if !recipe.run.is_empty() {
        with_host_resolv_conf(root, || {
            for (i, step) in recipe.run.iter().enumerate() {
                chroot.run(&format!("run.{i}"), std::slice::from_ref(&step.argv))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn write_entry(root: &Path, f: &vmimage_recipe::FileEntry, field: &str) -> Result<(), RootfsError> {
    let dest = inside(root, &f.destination);
    let data = match &f.source {
        FileSource::Content(c) => c.clone().into_bytes(),
        FileSource::Path(p) => std::fs::read(p).map_err(io_err(p))?,
    };
    // Replace, never write through, whatever is there (a symlink could point at the host).
    if std::fs::symlink_metadata(&dest).is_ok() {
        std::fs::remove_file(&dest).map_err(io_err(&dest))?;
    }
    write_file(&dest, &data, f.mode)?;
    let uid = lookup(root, "etc/passwd", &f.user).map_err(|m| RootfsError::Recipe {
        field: format!("{field}.owner"),
        message: m,
    })?;
    let gid = lookup(root, "etc/group", &f.group).map_err(|m| RootfsError::Recipe {
        field: format!("{field}.owner"),
        message: m,
    })?;
    std::os::unix::fs::lchown(&dest, Some(uid), Some(gid)).map_err(io_err(&dest))?;
    // chown clears setuid/setgid bits: set the mode again.
    set_mode(&dest, f.mode)
}

/// `root` joined with an absolute in-image path.
fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// A numeric id for a name from the tree's passwd/group file.
fn lookup(root: &Path, db: &str, id: &OwnerId) -> Result<u32, String> {
    let name = match id {
        OwnerId::Id(n) => return Ok(*n),
        OwnerId::Name(n) => n,
    };
    let text = std::fs::read_to_string(root.join(db)).map_err(|e| format!("reading /{db}: {e}"))?;
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(':');
            Some((parts.next()?, parts.nth(1)?))
        })
        .find(|(n, _)| n == name)
        .and_then(|(_, id)| id.parse().ok())
        .ok_or_else(|| format!("{name:?} is not in the image's /{db}"))
}

/// Directories systemd loads units from, most specific first.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

fn enable_unit(root: &Path, unit: &str) -> Result<(), String> {
    let (dir, text) = UNIT_DIRS
        .iter()
        .find_map(|d| {
            std::fs::read_to_string(root.join(d).join(unit))
                .ok()
                .map(|t| (*d, t))
        })
        .ok_or_else(|| format!("unit {unit} not found in /{}", UNIT_DIRS.join(", /")))?;
    let mut in_install = false;
    let mut links = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let suffix = match key.trim() {
                "WantedBy" => "wants",
                "RequiredBy" => "requires",
                _ => continue,
            };
            for target in value.split_whitespace() {
                links.push(format!("etc/systemd/system/{target}.{suffix}"));
            }
        }
    }
    if links.is_empty() {
        return Err(format!(
            "unit {unit} has no WantedBy= or RequiredBy= in [Install]"
        ));
    }
    for dir_rel in links {
        let wants = root.join(&dir_rel);
        std::fs::create_dir_all(&wants).map_err(|e| format!("{}: {e}", wants.display()))?;
        let link = wants.join(unit);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/{dir}/{unit}"), &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(())
}

/// Runs `f` with the host's resolv.conf in the tree, then puts the tree's own back.
fn with_host_resolv_conf(
    root: &Path,
    f: impl FnOnce() -> Result<(), RootfsError>,
) -> Result<(), RootfsError> {
    let conf = root.join("etc/resolv.conf");
    let saved = root.join("etc/.resolv.conf.vmimage-saved");
    let had = std::fs::symlink_metadata(&conf).is_ok();
    if had {
        std::fs::rename(&conf, &saved).map_err(io_err(&conf))?;
    }
    if let Ok(host) = std::fs::read("/etc/resolv.conf") {
        write_file(&conf, &host, 0o644)?;
    }
    let result = f();
    let _ = std::fs::remove_file(&conf);
    if had {
        std::fs::rename(&saved, &conf).map_err(io_err(&conf))?;
    }
    result
}

/// Deletes what the recipe's `cleanup` asks for.
pub fn cleanup(root: &Path, c: &vmimage_recipe::Cleanup) -> Result<(), RootfsError> {
    if c.apt_lists {
        clear_dir(&root.join("var/lib/apt/lists"), &["partial", "lock"])?;
    }
    if c.apt_cache {
        clear_dir(&root.join("var/cache/apt"), &["archives"])?;
        clear_dir(&root.join("var/cache/apt/archives"), &["partial", "lock"])?;
    }
    if c.logs {
        for f in ["dpkg.log", "alternatives.log", "bootstrap.log"] {
            let _ = std::fs::remove_file(root.join("var/log").join(f));
        }
        clear_dir(&root.join("var/log/apt"), &[])?;
        // Package scripts create the remaining logs (wtmp, lastlog...): keep them, empty.
        truncate_files(&root.join("var/log"))?;
    }
    if c.docs {
        let doc = root.join("usr/share/doc");
        if let Ok(entries) = std::fs::read_dir(&doc) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    for inner in std::fs::read_dir(&p).map_err(io_err(&p))?.flatten() {
                        if inner.file_name() != "copyright" {
                            remove_any(&inner.path())?;
                        }
                    }
                }
            }
        }
    }
    if c.man {
        clear_dir(&root.join("usr/share/man"), &[])?;
        clear_dir(&root.join("usr/share/info"), &[])?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<(), RootfsError> {
    let meta = std::fs::symlink_metadata(p).map_err(io_err(p))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(p).map_err(io_err(p))
    } else {
        std::fs::remove_file(p).map_err(io_err(p))
    }
}

fn clear_dir(dir: &Path, keep: &[&str]) -> Result<(), RootfsError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if keep.iter().any(|k| e.file_name() == *k) {
            continue;
        }
        remove_any(&e.path())?;
    }
    Ok(())
}

fn truncate_files(dir: &Path) -> Result<(), RootfsError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).map_err(io_err(&p))?;
        if meta.is_dir() {
            truncate_files(&p)?;
        } else if meta.is_file() && meta.len() > 0 {
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&p)
                .map_err(io_err(&p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_enable_unit_links_every_wanted_by_target() {
        let root = tempfile::tempdir().unwrap();
        let unit_dir = root.path().join("usr/lib/systemd/system");
        std::fs::create_dir_all(&unit_dir).unwrap();
        std::fs::write(
            unit_dir.join("x.service"),
            "[Unit]\nWantedBy=ignored.target\n[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=y.service\n",
        )
        .unwrap();
        enable_unit(root.path(), "x.service").unwrap();
        for d in [
            "multi-user.target.wants",
            "graphical.target.wants",
            "y.service.requires",
        ] {
            let link = root
                .path()
                .join("etc/systemd/system")
                .join(d)
                .join("x.service");
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                Path::new("/usr/lib/systemd/system/x.service")
            );
        }
        assert!(
            !root
                .path()
                .join("etc/systemd/system/ignored.target.wants")
                .exists()
        );
    }

    #[test]
    fn test_enable_unit_without_install_section_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let unit_dir = root.path().join("etc/systemd/system");
        std::fs::create_dir_all(&unit_dir).unwrap();
        std::fs::write(
            unit_dir.join("x.service"),
            "[Service]\nExecStart=/bin/true\n",
        )
        .unwrap();
        let err = enable_unit(root.path(), "x.service").unwrap_err();
        assert!(err.contains("no WantedBy"), "{err}");
        let err = enable_unit(root.path(), "missing.service").unwrap_err();
        assert!(err.contains("not found"), "{err}");
    }

    #[test]
    fn test_owner_names_come_from_the_image() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1234:1234::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(
            lookup(root.path(), "etc/passwd", &OwnerId::Name("app".into())),
            Ok(1234)
        );
        assert_eq!(lookup(root.path(), "etc/passwd", &OwnerId::Id(7)), Ok(7));
        assert!(lookup(root.path(), "etc/passwd", &OwnerId::Name("nobody2".into())).is_err());
    }
}
