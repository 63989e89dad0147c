//! Walks a directory tree into entries: depth first, children sorted by
//! name bytes, parents before children, the root first (as the empty path).
//!
//! Symlinks are never followed (only the root itself may be one); the walk
//! crosses mount points. Regular files are handed over as
//! [`Content::Path`] so the writer can copy them later and in parallel (an
//! unreadable file is reported, with its path, by that copy). Extended attributes are read with
//! `llistxattr`/`lgetxattr`, so `security.capability` and `user.*` survive
//! (what the kernel hides from the caller, e.g. `trusted.*` for non-root,
//! is not seen). Hard links are found by `(st_dev, st_ino)` and become
//! [`Node::HardLink`] to the first path seen.
//!
//! Access times are not taken from the tree (walking and copying it moves
//! them, which would make images of one tree differ): atime is set to
//! mtime.
//!
//! Limits: the tree must not change during the walk; POSIX ACLs are passed
//! on as the raw `system.posix_acl_*` xattrs the kernel reports.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{ReadSourceError, check_name_lengths, display_path};
use crate::{Content, Entry, Metadata, Node, Timestamp};

/// Why the walk thread ended early.
enum WalkErr {
    /// The receiving side stopped (its own error is reported there).
    Stopped,
    Failed(ReadSourceError),
}

impl From<ReadSourceError> for WalkErr {
    fn from(e: ReadSourceError) -> Self {
        WalkErr::Failed(e)
    }
}

/// Entries the walk may run ahead of the writer.
const WALK_QUEUE: usize = 4096;

/// A directory walk, configured then [`run`](DirWalk::run).
#[derive(Debug, Clone)]
pub struct DirWalk {
    root: PathBuf,
    skip: Vec<(u64, u64)>,
}

impl DirWalk {
    /// A walk of the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            skip: Vec::new(),
        }
    }

    /// Leaves out the file with this `(st_dev, st_ino)`: the image being
    /// written, when it lies inside the tree.
    pub fn skip_inode(mut self, dev: u64, ino: u64) -> Self {
        self.skip.push((dev, ino));
        self
    }

    /// Walks the tree, calling `add` for every entry in order. Stops at the
    /// first error, from the walk or from `add`.
    ///
    /// The walk's system calls (`statx`, `llistxattr`, `getdents`) run on a
    /// thread of their own, a bounded queue ahead of `add`, so they overlap
    /// with the copying `add` does.
    pub fn run<E, F>(&self, mut add: F) -> Result<(), E>
    where
        E: From<ReadSourceError>,
        F: FnMut(Entry, Option<Content<'_>>) -> Result<(), E>,
    {
        type Item = Result<(Entry, Option<PathBuf>), ReadSourceError>;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(WALK_QUEUE);
            std::thread::Builder::new()
                .name("ext4-walk".into())
                .spawn_scoped(s, move || {
                    // A send fails only once `add` stopped: stop too.
                    let res = self.walk(&mut |e, c| tx.send(Ok((e, c))).is_ok());
                    if let Err(WalkErr::Failed(e)) = res {
                        let _ = tx.send(Err(e));
                    }
                })
                .map_err(|source| ReadSourceError::Io {
                    path: self.root.display().to_string(),
                    source,
                })?;
            // Returning drops `rx`, which ends the walk thread.
            for item in rx {
                let (entry, path) = item?;
                add(entry, path.map(Content::Path))?;
            }
            Ok(())
        })
    }

    /// The walk proper: `emit` gets each entry in order and returns false
    /// to stop it.
    fn walk(&self, emit: &mut dyn FnMut(Entry, Option<PathBuf>) -> bool) -> Result<(), WalkErr> {
        let mut add = |e: Entry, c: Option<PathBuf>| -> Result<(), WalkErr> {
            if emit(e, c) {
                Ok(())
            } else {
                Err(WalkErr::Stopped)
            }
        };
        let io_err = |path: &Path, source: io::Error| ReadSourceError::Io {
            path: path.display().to_string(),
            source,
        };
        // The root may be a symlink to the tree (a convenience for callers);
        // nothing below it is followed.
        let root_meta = fs::metadata(&self.root).map_err(|e| io_err(&self.root, e))?;
        if !root_meta.is_dir() {
            return Err(ReadSourceError::Io {
                path: self.root.display().to_string(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            }
            .into());
        }
        let xattrs = read_xattrs(&self.root).map_err(|e| io_err(&self.root, e))?;
        add(
            Entry {
                path: Vec::new(),
                node: Node::Directory,
                meta: metadata_of(&root_meta, xattrs),
            },
            None,
        )?;

        // (dev, ino) of multiply-linked non-directories -> first image path.
        let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        // One frame per open directory: its disk path, image path, and the
        // children still to visit (sorted, reversed so `pop` yields in order).
        let mut stack: Vec<(PathBuf, Vec<u8>, Vec<OsString>)> =
            vec![(self.root.clone(), Vec::new(), sorted_children(&self.root)?)];
        while let Some((dir, rel, children)) = stack.last_mut() {
            let Some(name) = children.pop() else {
                stack.pop();
                continue;
            };
            let fs_path = dir.join(&name);
            let mut path = rel.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            check_name_lengths(name.as_bytes(), &path)?;

            let md = fs::symlink_metadata(&fs_path).map_err(|e| io_err(&fs_path, e))?;
            if self.skip.contains(&(md.dev(), md.ino())) {
                continue;
            }
            let ft = md.file_type();
            if !ft.is_dir() && md.nlink() > 1 {
                match links.get(&(md.dev(), md.ino())) {
                    Some(first) => {
                        let target = first.clone();
                        add(
                            Entry {
                                path,
                                node: Node::HardLink { target },
                                meta: Metadata::default(),
                            },
                            None,
                        )?;
                        continue;
                    }
                    None => {
                        links.insert((md.dev(), md.ino()), path.clone());
                    }
                }
            }
            let xattrs = read_xattrs(&fs_path).map_err(|e| io_err(&fs_path, e))?;
            let meta = metadata_of(&md, xattrs);
            let rdev = md.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            let (node, content) = if ft.is_dir() {
                (Node::Directory, None)
            } else if ft.is_file() {
                (Node::File { size: md.len() }, Some(fs_path.clone()))
            } else if ft.is_symlink() {
                let target = fs::read_link(&fs_path).map_err(|e| io_err(&fs_path, e))?;
                (
                    Node::Symlink {
                        target: target.into_os_string().into_vec(),
                    },
                    None,
                )
            } else if ft.is_char_device() {
                (Node::CharDevice { major, minor }, None)
            } else if ft.is_block_device() {
                (Node::BlockDevice { major, minor }, None)
            } else if ft.is_fifo() {
                (Node::Fifo, None)
            } else if ft.is_socket() {
                (Node::Socket, None)
            } else {
                return Err(ReadSourceError::Unsupported {
                    entry: display_path(&path),
                    what: format!("unknown file type (mode {:o})", md.mode()),
                }
                .into());
            };
            let dir_path = (node == Node::Directory).then(|| path.clone());
            add(Entry { path, node, meta }, content)?;
            if let Some(rel) = dir_path {
                let children = sorted_children(&fs_path)?;
                stack.push((fs_path, rel, children));
            }
        }
        Ok(())
    }
}

/// The names in `dir`, sorted by bytes and reversed (popped from the end).
fn sorted_children(dir: &Path) -> Result<Vec<OsString>, ReadSourceError> {
    let io_err = |source| ReadSourceError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for de in fs::read_dir(dir).map_err(io_err)? {
        names.push(de.map_err(io_err)?.file_name());
    }
    names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    Ok(names)
}

fn metadata_of(md: &fs::Metadata, xattrs: BTreeMap<Vec<u8>, Vec<u8>>) -> Metadata {
    let ts = |sec: i64, nsec: i64| Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    };
    Metadata {
        mode: (md.mode() & 0o7777) as u16,
        uid: md.uid(),
        gid: md.gid(),
        // Reading the tree moves atimes (relatime), so the live value would
        // make two images of one tree differ: use the mtime instead.
        atime: ts(md.mtime(), md.mtime_nsec()),
        mtime: ts(md.mtime(), md.mtime_nsec()),
        ctime: ts(md.ctime(), md.ctime_nsec()),
        xattrs,
    }
}

/// All extended attributes of `path` itself (not a symlink's target).
/// A filesystem without xattr support yields none.
pub fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut out = BTreeMap::new();
    let names = match xattr_call(|buf, len| {
        // SAFETY: `cpath` is NUL-terminated; `buf` is null with len 0 or
        // points at `len` writable bytes (see `xattr_call`).
        unsafe { libc::llistxattr(cpath.as_ptr(), buf.cast(), len) }
    }) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split on NUL");
        let value = xattr_call(|buf, len| {
            // SAFETY: as above; `cname` is NUL-terminated.
            unsafe { libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), buf.cast(), len) }
        });
        match value {
            Ok(v) => {
                out.insert(name.to_vec(), v);
            }
            // Removed between list and get: the tree changed under us, but
            // the attribute is gone, so leaving it out is right.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Runs a size-then-fill xattr call: first with no buffer to learn the
/// size, then with a buffer that large, again if it grew in between.
fn xattr_call(mut call: impl FnMut(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size as usize];
        let n = call(buf.as_mut_ptr(), buf.len());
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(n as usize);
        return Ok(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Entries with their content read out.
    type Collected = Vec<(Entry, Option<Vec<u8>>)>;

    fn collect(root: &Path) -> Result<Collected, ReadSourceError> {
        let mut out = Vec::new();
        DirWalk::new(root).run(|entry, content| {
            let bytes = content.map(|c| match c {
                Content::Path(p) => fs::read(p).unwrap(),
                Content::Bytes(b) => b,
                Content::Reader(r) => {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).unwrap();
                    v
                }
            });
            out.push((entry, bytes));
            Ok::<(), ReadSourceError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn test_walk_emits_root_first_then_sorted_depth_first() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("b/inner")).unwrap();
        fs::write(r.join("b/inner/f"), b"x").unwrap();
        fs::write(r.join("a"), b"hello").unwrap();
        fs::write(r.join("B"), b"").unwrap();
        fs::write(r.join("c"), b"").unwrap();
        let paths: Vec<String> = collect(r)
            .unwrap()
            .iter()
            .map(|(e, _)| String::from_utf8(e.path.clone()).unwrap())
            .collect();
        assert_eq!(paths, ["", "B", "a", "b", "b/inner", "b/inner/f", "c"]);
    }

    #[test]
    fn test_walk_reports_file_types_content_and_metadata() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("file"), b"content").unwrap();
        fs::set_permissions(r.join("file"), fs::Permissions::from_mode(0o4751)).unwrap();
        symlink("../nowhere", r.join("link")).unwrap();
        let fifo = CString::new(r.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: `fifo` is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let entries = collect(r).unwrap();
        let find = |p: &[u8]| entries.iter().find(|(e, _)| e.path == p).unwrap();

        let (file, content) = find(b"file");
        assert_eq!(file.node, Node::File { size: 7 });
        assert_eq!(file.meta.mode, 0o4751);
        assert_eq!(content.as_deref(), Some(&b"content"[..]));
        let md = fs::metadata(r.join("file")).unwrap();
        assert_eq!(file.meta.mtime.sec, md.mtime());
        assert_eq!(file.meta.mtime.nsec as i64, md.mtime_nsec());
        assert_eq!(file.meta.uid, md.uid());

        assert_eq!(
            find(b"link").0.node,
            Node::Symlink {
                target: b"../nowhere".to_vec()
            }
        );
        assert_eq!(find(b"fifo").0.node, Node::Fifo);
        assert_eq!(find(b"fifo").0.meta.mode, 0o640 & !umask());
    }

    fn umask() -> u16 {
        // SAFETY: umask has no memory effects; set it back at once.
        let m = unsafe { libc::umask(0o022) };
        // SAFETY: as above.
        unsafe { libc::umask(m) };
        m as u16
    }

    #[test]
    fn test_walk_turns_second_name_of_an_inode_into_a_hard_link() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a"), b"same").unwrap();
        fs::hard_link(r.join("a"), r.join("z")).unwrap();
        let entries = collect(r).unwrap();
        assert_eq!(entries[1].0.node, Node::File { size: 4 });
        assert_eq!(
            entries[2].0.node,
            Node::HardLink {
                target: b"a".to_vec()
            }
        );
        assert!(entries[2].1.is_none());
    }

    #[test]
    fn test_walk_reads_user_xattrs() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"").unwrap();
        let cpath = CString::new(f.as_os_str().as_bytes()).unwrap();
        let value = b"\x00binary\xff";
        // SAFETY: pointers are valid for the lengths given.
        let rc = unsafe {
            libc::lsetxattr(
                cpath.as_ptr(),
                c"user.test".as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            // tmpfs before 6.6 has no user.* xattrs: nothing to check there.
            eprintln!("skipping: {}", io::Error::last_os_error());
            return;
        }
        let entries = collect(t.path()).unwrap();
        assert_eq!(
            entries[1].0.meta.xattrs.get(&b"user.test"[..]),
            Some(&value.to_vec())
        );
    }

    #[test]
    fn test_walk_skips_the_excluded_inode() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("image"), b"").unwrap();
        fs::write(t.path().join("keep"), b"").unwrap();
        let md = fs::metadata(t.path().join("image")).unwrap();
        let mut paths = Vec::new();
        DirWalk::new(t.path())
            .skip_inode(md.dev(), md.ino())
            .run(|e, _| {
                paths.push(e.path);
                Ok::<(), ReadSourceError>(())
            })
            .unwrap();
        assert_eq!(paths, [b"".to_vec(), b"keep".to_vec()]);
    }

    #[test]
    fn test_walk_of_a_missing_directory_names_it() {
        let err = collect(Path::new("/nonexistent/tree")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tree"), "{err}");
    }

    #[test]
    fn test_walk_stops_at_the_callbacks_error() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a"), b"").unwrap();
        let mut calls = 0;
        let res = DirWalk::new(t.path()).run(|_, _| {
            calls += 1;
            Err(ReadSourceError::Unsupported {
                entry: "x".into(),
                what: "stop".into(),
            })
        });
        assert!(res.is_err());
        assert_eq!(calls, 1);
    }
}
