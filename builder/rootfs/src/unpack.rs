//! Unpacks `.deb` files into a tree the way `dpkg --unpack` leaves them, without dpkg and in
//! parallel: the files of every package, conffiles as `<path>.dpkg-new`, and the dpkg
//! database that says each package is unpacked but not configured (`status`, `info/<pkg>.*`,
//! trigger interests). `dpkg --configure --pending` then finishes the job in the tree, with
//! every maintainer script run by dpkg itself.
//!
//! Determinism: packages are unpacked concurrently, so everything that two packages could
//! race on is settled afterwards in install order: a non-directory shipped by two packages
//! is unpacked again from the later one (dpkg's `Replaces` outcome) and leaves the earlier
//! one's file list; a directory keeps the mode and owner of the first package that ships it
//! (dpkg never changes an existing directory).
//!
//! Safety: paths are checked (`..` and absolute names refused) and every parent directory
//! must resolve inside the tree, so a symlink in one package cannot send another package's
//! files onto the build host.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use vmimage_apt::{ControlInfo, DebFile};

use crate::error::{RootfsError, io_err};
use crate::install::{DebInfo, write_file};

/// What unpacking one package produced.
pub struct Unpacked {
    /// Index into the installer's package list.
    pub index: usize,
    /// Its control archive.
    pub control: ControlInfo,
    /// Paths as dpkg lists them (`/.` first, no trailing slashes), in archive order.
    pub list: Vec<String>,
    /// Directories it ships: path (relative) and (mode, uid, gid).
    dirs: Vec<(String, (u32, u64, u64))>,
    /// Non-directories it ships (relative paths, as unpacked: conffiles with `.dpkg-new`).
    files: Vec<String>,
    /// Entries that lost a race with another package's unpack of the same path: unpacked
    /// again, in order, by [`unpack_all`].
    deferred: Vec<String>,
}

/// Unpacks `order` (indices into `debs`, install order) into `root` in parallel; returns the
/// results in `order`.
pub fn unpack_all(
    root: &Path,
    debs: &[DebInfo],
    order: &[usize],
) -> Result<Vec<Unpacked>, RootfsError> {
    let canon_root = root.canonicalize().map_err(io_err(root))?;
    let results: Vec<Result<Unpacked, RootfsError>> = order
        .par_iter()
        .map(|&i| unpack_one(root, &canon_root, &debs[i], i, None))
        .collect();
    let mut done = Vec::with_capacity(results.len());
    for r in results {
        done.push(r?);
    }

    // A non-directory shipped twice: the later package in install order wins.
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut shared: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (k, u) in done.iter().enumerate() {
        for f in &u.files {
            if let Some(prev) = owner.insert(f.clone(), k) {
                shared.entry(prev).or_default().push(f.clone());
            }
        }
    }
    let mut redo: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (k, u) in done.iter().enumerate() {
        for f in &u.deferred {
            redo.entry(owner.get(f).copied().unwrap_or(k))
                .or_default()
                .push(f.clone());
        }
    }
    for (prev, paths) in &shared {
        for p in paths {
            let winner = owner[p];
            redo.entry(winner).or_default().push(p.clone());
            let listed = format!("/{}", p.trim_end_matches(".dpkg-new"));
            done[*prev].list.retain(|l| *l != listed);
            tracing::debug!(path = %p, from = %debs[done[*prev].index].name,
                to = %debs[done[winner].index].name, "file replaced by a later package");
        }
    }
    for (k, paths) in redo {
        let only: std::collections::HashSet<String> = paths.into_iter().collect();
        let u = &done[k];
        unpack_one(root, &canon_root, &debs[u.index], u.index, Some(&only))?;
    }

    // Directories: the first package to ship one sets its mode and owner.
    let mut seen = std::collections::HashSet::new();
    for u in &done {
        for (d, (mode, uid, gid)) in &u.dirs {
            if !seen.insert(d.as_str()) {
                continue;
            }
            let p = root.join(d);
            let md = std::fs::symlink_metadata(&p).map_err(io_err(&p))?;
            if md.file_type().is_symlink() {
                continue; // merged /usr: the alias stays a symlink
            }
            std::os::unix::fs::lchown(&p, Some(*uid as u32), Some(*gid as u32))
                .map_err(io_err(&p))?;
            crate::install::set_mode(&p, *mode & 0o7777)?;
        }
    }
    Ok(done)
}

/// Unpacks one package (only the paths in `only`, when given).
fn unpack_one(
    root: &Path,
    canon_root: &Path,
    deb: &DebInfo,
    index: usize,
    only: Option<&std::collections::HashSet<String>>,
) -> Result<Unpacked, RootfsError> {
    let fail = |what: String| RootfsError::Install(format!("unpacking {}: {what}", deb.name));
    let file = DebFile::open(&deb.path)?;
    let control = file.control()?;
    let conffiles: std::collections::HashSet<String> = control
        .conffiles()
        .into_iter()
        .map(|c| c.trim_start_matches('/').to_string())
        .collect();
    let mut archive = file.data()?;
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);

    let mut out = Unpacked {
        index,
        control,
        list: vec!["/.".to_string()],
        dirs: Vec::new(),
        files: Vec::new(),
        deferred: Vec::new(),
    };
    // Parent directories already checked to lie inside the tree.
    let mut safe: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let entries = archive.entries().map_err(|e| fail(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(e.to_string()))?;
        let raw = entry.path().map_err(|e| fail(e.to_string()))?.into_owned();
        let rel = relative(&raw).ok_or_else(|| fail(format!("unsafe path {}", raw.display())))?;
        if rel.as_os_str().is_empty() {
            continue; // "./": the root itself
        }
        let rel_s = rel.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if only.is_none() {
            out.list.push(format!("/{rel_s}"));
        }
        let dst = root.join(&rel);
        if kind.is_dir() {
            if only.is_some() {
                continue;
            }
            let h = entry.header();
            let meta = (
                h.mode().unwrap_or(0o755),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
            );
            out.dirs.push((rel_s, meta));
            if std::fs::symlink_metadata(&dst).is_err() {
                check_parent(&dst, canon_root, &mut safe).map_err(&fail)?;
                match std::fs::create_dir(&dst) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(fail(format!("{}: {e}", dst.display()))),
                }
            }
            continue;
        }
        let (dst, name) = if conffiles.contains(&rel_s) {
            let mut p = dst.into_os_string();
            p.push(".dpkg-new");
            (PathBuf::from(p), format!("{rel_s}.dpkg-new"))
        } else {
            (dst, rel_s)
        };
        if let Some(only) = only
            && !only.contains(&name)
        {
            continue;
        }
        if only.is_none() {
            out.files.push(name.clone());
        }
        check_parent(&dst, canon_root, &mut safe).map_err(&fail)?;
        let res = if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("{name}: hard link without a target")))?;
            let target =
                relative(&target).ok_or_else(|| fail(format!("{name}: unsafe link target")))?;
            let _ = std::fs::remove_file(&dst);
            std::fs::hard_link(root.join(target), &dst)
        } else {
            entry.unpack(&dst).map(|_| ())
        };
        match res {
            Ok(()) => {}
            // Another package is writing the same path at this moment: settled later.
            Err(e) if only.is_none() && is_race(&e) => out.deferred.push(name),
            Err(e) => return Err(fail(format!("{}: {e}", dst.display()))),
        }
    }
    Ok(out)
}

/// tar's unpack errors keep the kind of the system call that failed.
fn is_race(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// `./usr/bin/x` → `usr/bin/x`; `None` for absolute or `..` paths.
fn relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// Creates `path`'s parent when missing and checks that it resolves inside the tree.
fn check_parent(
    path: &Path,
    canon_root: &Path,
    safe: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), String> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if safe.contains(parent) {
        return Ok(());
    }
    if std::fs::symlink_metadata(parent).is_err() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let canon = parent
        .canonicalize()
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    if !canon.starts_with(canon_root) {
        return Err(format!(
            "{} resolves to {}, outside the tree",
            parent.display(),
            canon.display()
        ));
    }
    safe.insert(parent.to_path_buf());
    Ok(())
}

/// The name dpkg files a package's database entries under: `name:arch` for
/// `Multi-Arch: same` packages, else `name`.
pub fn db_name(control: &ControlInfo) -> String {
    let c = &control.control;
    let name = c.get("Package").unwrap_or_default();
    match (c.get("Multi-Arch"), c.get("Architecture")) {
        (Some(ma), Some(arch)) if ma.trim() == "same" => format!("{name}:{}", arch.trim()),
        _ => name.to_string(),
    }
}

/// Writes the dpkg database for the unpacked packages: `info/<pkg>.{list,<control member>}`,
/// `status` (every package `install ok unpacked`, conffiles pending as `newconffile`, as
/// dpkg records them before configuring) and the trigger interests (`triggers/File`,
/// `triggers/<name>`) dpkg would have registered while unpacking.
pub fn write_database(root: &Path, unpacked: &[Unpacked]) -> Result<(), RootfsError> {
    let admin = root.join("var/lib/dpkg");
    let info = admin.join("info");
    let mut status = String::new();
    let mut file_interests: Vec<String> = Vec::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in unpacked {
        let c = &u.control;
        let name = db_name(c);
        let mut list = u.list.join("\n");
        list.push('\n');
        write_file(&info.join(format!("{name}.list")), list.as_bytes(), 0o644)?;
        write_members(c, |m| info.join(format!("{name}.{m}")))?;
        if !c.members.contains_key("md5sums") {
            // dpkg writes one from what it unpacked when a package ships none.
            let sums = md5sums(root, u)?;
            write_file(
                &info.join(format!("{name}.md5sums")),
                sums.as_bytes(),
                0o644,
            )?;
        }
        // The control stanza as shipped, with dpkg's status line after `Package`.
        let mut stanza = String::new();
        for line in c.control.raw().trim_end().lines() {
            stanza.push_str(line);
            stanza.push('\n');
            if line.starts_with("Package:") {
                stanza.push_str("Status: install ok unpacked\n");
            }
        }
        let conffiles = c.conffiles();
        if !conffiles.is_empty() {
            stanza.push_str("Conffiles:\n");
            for f in conffiles {
                stanza.push_str(&format!(" {f} newconffile\n"));
            }
        }
        status.push_str(&stanza);
        status.push('\n');

        let pkg = c.control.get("Package").unwrap_or_default();
        if let Some(t) = c.members.get("triggers") {
            for line in String::from_utf8_lossy(&t.data).lines() {
                let mut words = line.split_whitespace();
                let (Some(directive), Some(trigger)) = (words.next(), words.next()) else {
                    continue;
                };
                let suffix = match directive {
                    "interest" | "interest-await" => "",
                    "interest-noawait" => "/noawait",
                    _ => continue,
                };
                if trigger.starts_with('/') {
                    file_interests.push(format!("{trigger} {pkg}{suffix}"));
                } else {
                    named
                        .entry(trigger.to_string())
                        .or_default()
                        .push(format!("{pkg}{suffix}"));
                }
            }
        }
    }
    write_file(&admin.join("status"), status.as_bytes(), 0o644)?;
    write_file(&info.join("format"), b"1\n", 0o644)?;
    let triggers = admin.join("triggers");
    if !file_interests.is_empty() {
        let mut t = file_interests.join("\n");
        t.push('\n');
        write_file(&triggers.join("File"), t.as_bytes(), 0o644)?;
    }
    for (trigger, pkgs) in named {
        let mut t = pkgs.join("\n");
        t.push('\n');
        write_file(&triggers.join(trigger), t.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Writes every control member but `control` to `path(member name)`, executable when
/// the archive had it so (the maintainer scripts).
pub fn write_members(
    control: &ControlInfo,
    path: impl Fn(&str) -> PathBuf,
) -> Result<(), RootfsError> {
    for m in control.members.values() {
        let mode = if m.mode & 0o111 != 0 { 0o755 } else { 0o644 };
        write_file(&path(&m.name), &m.data, mode)?;
    }
    Ok(())
}

/// `md5sums` as dpkg generates it: every regular file the package unpacked, conffiles
/// excepted, in archive order, `<md5>  <path without the leading slash>`.
fn md5sums(root: &Path, u: &Unpacked) -> Result<String, RootfsError> {
    use md5::{Digest, Md5};
    let mut out = String::new();
    for f in &u.files {
        if f.ends_with(".dpkg-new") {
            continue;
        }
        let p = root.join(f);
        let md = std::fs::symlink_metadata(&p).map_err(io_err(&p))?;
        if !md.is_file() {
            continue;
        }
        let mut h = Md5::new();
        let mut file = std::fs::File::open(&p).map_err(io_err(&p))?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = io::Read::read(&mut file, &mut buf).map_err(io_err(&p))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        out.push_str(&format!("{}  {f}\n", hex::encode(h.finalize())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_relative_refuses_escapes() {
        assert_eq!(
            relative(Path::new("./usr/bin/x")),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(relative(Path::new("./")), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("../etc/passwd")), None);
        assert_eq!(relative(Path::new("/etc/passwd")), None);
        assert_eq!(relative(Path::new("./a/../../b")), None);
    }

    #[test]
    fn test_check_parent_refuses_a_symlink_out_of_the_tree() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path().join("root");
        std::fs::create_dir(&root).expect("root");
        std::os::unix::fs::symlink("/etc", root.join("evil")).expect("link");
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("link");
        let canon = root.canonicalize().expect("canon");
        let mut safe = Default::default();
        let err = check_parent(&root.join("evil/passwd"), &canon, &mut safe).unwrap_err();
        assert!(err.contains("outside the tree"), "{err}");
        // A relative alias inside the tree (merged /usr) is fine, and its target is created.
        check_parent(&root.join("bin/ls"), &canon, &mut safe).expect_err("bin -> missing usr/bin");
        std::fs::create_dir_all(root.join("usr/bin")).expect("usr/bin");
        check_parent(&root.join("bin/ls"), &canon, &mut safe).expect("inside");
    }
}
