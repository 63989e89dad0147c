//! A deterministic tar of a tree: the same tree always gives the same bytes.
//!
//! Format: POSIX ustar headers, plus a PAX extended header where ustar cannot say it: paths
//! longer than its name/prefix split (`path`), long link targets (`linkpath`) and extended
//! attributes (`SCHILY.xattr.<name>`, e.g. `security.capability`, as GNU tar and bsdtar
//! write them). Entries are in depth-first order with each directory's children sorted by
//! their name bytes, named `./`, `./etc/`, `./etc/passwd`. Owners are numeric only (no user
//! or group names), mtimes are clamped to `SOURCE_DATE_EPOCH`, and no atime/ctime is written.
//! A file with several links is stored once; its other names are hard-link entries pointing
//! at the first name in that order. Sockets cannot be stored in tar and are skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::error::{RootfsError, io_err};

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TarStats {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
}

/// Writes `root` as a deterministic tar to `out`.
pub fn write_tar<W: Write>(
    root: &Path,
    out: W,
    source_date_epoch: i64,
) -> Result<TarStats, RootfsError> {
    let mut w = TarWriter {
        builder: tar::Builder::new(out),
        epoch: source_date_epoch,
        links: BTreeMap::new(),
        stats: TarStats::default(),
    };
    w.entry(root, b"./")?;
    w.dir(root, b".")?;
    let tar_err = |e: std::io::Error| RootfsError::Io {
        path: root.to_path_buf(),
        source: e,
    };
    w.builder.finish().map_err(tar_err)?;
    Ok(w.stats)
}

/// Writes the tar to `path` and returns its SHA256 (lowercase hex) with the stats.
pub fn write_tar_file(
    root: &Path,
    path: &Path,
    source_date_epoch: i64,
) -> Result<(String, TarStats), RootfsError> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut hashing = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    };
    let stats = write_tar(root, &mut hashing, source_date_epoch)?;
    let file = hashing.inner.into_inner().map_err(|e| RootfsError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(path))?;
    Ok((hex::encode(hashing.hash.finalize()), stats))
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    epoch: i64,
    /// (device, inode) of multiply-linked files -> the name they were first written under.
    links: BTreeMap<(u64, u64), Vec<u8>>,
    stats: TarStats,
}

impl<W: Write> TarWriter<W> {
    fn dir(&mut self, dir: &Path, name: &[u8]) -> Result<(), RootfsError> {
        let mut children: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for child in children {
            let path = dir.join(&child);
            let mut child_name = name.to_vec();
            child_name.push(b'/');
            child_name.extend_from_slice(child.as_bytes());
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if meta.is_dir() {
                let mut with_slash = child_name.clone();
                with_slash.push(b'/');
                self.entry(&path, &with_slash)?;
                self.dir(&path, &child_name)?;
            } else {
                self.entry(&path, &child_name)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, name: &[u8]) -> Result<(), RootfsError> {
        let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
        let ft = meta.file_type();
        let mut header = Header::new_ustar();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(meta.uid().into());
        header.set_gid(meta.gid().into());
        header.set_mtime(meta.mtime().clamp(0, self.epoch) as u64);
        header.set_size(0);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut content: Option<std::fs::File> = None;

        if ft.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                header.set_entry_type(EntryType::Link);
                set_link(&mut header, &first, &mut pax);
            } else {
                self.links.insert(key, name.to_vec());
            }
        }
        if header.entry_type() != EntryType::Link {
            if ft.is_dir() {
                header.set_entry_type(EntryType::Directory);
            } else if ft.is_file() {
                header.set_entry_type(EntryType::Regular);
                header.set_size(meta.len());
                content = Some(std::fs::File::open(path).map_err(io_err(path))?);
                self.stats.content_bytes += meta.len();
            } else if ft.is_symlink() {
                header.set_entry_type(EntryType::Symlink);
                let target = std::fs::read_link(path).map_err(io_err(path))?;
                set_link(&mut header, target.as_os_str().as_bytes(), &mut pax);
            } else if ft.is_char_device() || ft.is_block_device() {
                header.set_entry_type(if ft.is_char_device() {
                    EntryType::Char
                } else {
                    EntryType::Block
                });
                let (major, minor) = dev_major_minor(meta.rdev());
                header.set_device_major(major).map_err(io_err(path))?;
                header.set_device_minor(minor).map_err(io_err(path))?;
            } else if ft.is_fifo() {
                header.set_entry_type(EntryType::Fifo);
            } else {
                tracing::warn!(path = %path.display(), "skipping a socket: tar cannot store it");
                return Ok(());
            }
        }
        set_name(&mut header, name, &mut pax);
        {
            let mut names: Vec<_> = xattr::list(path).map_err(io_err(path))?.collect();
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for n in names {
                if let Some(value) = xattr::get(path, &n).map_err(io_err(path))? {
                    pax.push((format!("SCHILY.xattr.{}", n.to_string_lossy()), value));
                }
            }
        }
        let io = |e: std::io::Error| RootfsError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io)?;
        }
        header.set_cksum();
        match content {
            Some(f) => {
                // Read through a limit so a file growing under us cannot corrupt the archive.
                let len = header.size().map_err(io)?;
                let mut reader = std::io::Read::take(f, len);
                self.builder.append(&header, &mut reader).map_err(io)?;
            }
            None => self.builder.append(&header, std::io::empty()).map_err(io)?,
        }
        self.stats.entries += 1;
        Ok(())
    }
}

/// Stores `name` in the ustar name/prefix fields, or in a PAX `path` record when it does not
/// fit (the header then carries a truncated name for old readers).
fn set_name(header: &mut Header, name: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    let ustar = header.as_ustar_mut().expect("ustar header");
    ustar.name = [0; 100];
    ustar.prefix = [0; 155];
    if name.len() <= 100 {
        ustar.name[..name.len()].copy_from_slice(name);
        return;
    }
    // Split at a '/' so that prefix <= 155 and the rest <= 100 (trailing '/' of a
    // directory stays with the name).
    let split = (0..name.len().saturating_sub(1))
        .rev()
        .find(|&i| name[i] == b'/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0);
    match split {
        Some(i) => {
            ustar.prefix[..i].copy_from_slice(&name[..i]);
            ustar.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
        }
        None => {
            ustar.name.copy_from_slice(&name[..100]);
            pax.push(("path".into(), name.to_vec()));
        }
    }
}

fn set_link(header: &mut Header, target: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    let old = header.as_old_mut();
    old.linkname = [0; 100];
    let n = target.len().min(100);
    old.linkname[..n].copy_from_slice(&target[..n]);
    if target.len() > 100 {
        pax.push(("linkpath".into(), target.to_vec()));
    }
}

/// Linux's `major()`/`minor()` of a `dev_t`.
fn dev_major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awkward_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("b/sub")).unwrap();
        std::fs::write(r.join("b/z"), "zz").unwrap();
        std::fs::write(r.join("a"), "aaa").unwrap();
        std::fs::hard_link(r.join("a"), r.join("b/a-link")).unwrap();
        std::os::unix::fs::symlink("../a", r.join("b/sym")).unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(r.join(&long)).unwrap();
        std::fs::write(r.join(&long).join("f".repeat(90)), "long").unwrap();
        std::os::unix::fs::symlink("t".repeat(150), r.join("longlink")).unwrap();
        root
    }

    fn tar_bytes(root: &Path, epoch: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_tar(root, &mut out, epoch).unwrap();
        out
    }

    #[test]
    fn test_tar_is_sorted_clamped_and_repeatable() {
        let root = awkward_tree();
        let a = tar_bytes(root.path(), 1000);
        assert_eq!(a, tar_bytes(root.path(), 1000));
        let mut archive = tar::Archive::new(&a[..]);
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert!(e.header().mtime().unwrap() <= 1000);
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            names.push(String::from_utf8(e.path_bytes().into_owned()).unwrap());
        }
        assert_eq!(&names[..4], &["./", "./a", "./b/", "./b/a-link"]);
        assert!(
            names.iter().any(|n| n.len() > 200),
            "long path kept via PAX: {names:?}"
        );
    }

    #[test]
    fn test_tar_keeps_hard_links_symlinks_and_long_names_for_gnu_tar() {
        let root = awkward_tree();
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("t.tar");
        let (sha, stats) = write_tar_file(root.path(), &tar_path, 1000).unwrap();
        assert_eq!(sha.len(), 64);
        assert!(stats.entries >= 9);
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        let st = std::process::Command::new("tar")
            .args(["-xpf"])
            .arg(&tar_path)
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let a = std::fs::metadata(out.join("a")).unwrap();
        let b = std::fs::metadata(out.join("b/a-link")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard link restored");
        assert_eq!(
            std::fs::read_link(out.join("b/sym")).unwrap(),
            Path::new("../a")
        );
        assert_eq!(
            std::fs::read_link(out.join("longlink"))
                .unwrap()
                .as_os_str()
                .len(),
            150
        );
        let long = out.join("d".repeat(120)).join("f".repeat(90));
        assert_eq!(std::fs::read(long).unwrap(), b"long");
    }

    #[test]
    fn test_xattrs_become_schily_pax_records() {
        let root = tempfile::tempdir().unwrap();
        let f = root.path().join("ping");
        std::fs::write(&f, "x").unwrap();
        if xattr::set(&f, "user.vmimage", b"v1").is_err() {
            // tmpfs without user xattrs: use a trusted/security name only root may set.
            xattr::set(
                &f,
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            )
            .expect("setting an xattr (run as root)");
        }
        let bytes = tar_bytes(root.path(), 1000);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = false;
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    found |= x.key().unwrap().starts_with("SCHILY.xattr.");
                }
            }
        }
        assert!(found, "no SCHILY.xattr record written");
    }
}
