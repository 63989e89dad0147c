//! `vmimage mkfs` against the real tools: every image the tests make must
//! pass `e2fsck -fn`, and reads back equal to its source through three
//! independent readers: the kernel's ext4 driver (a read-only loop mount,
//! compared with `lstat`, content and xattrs of the source), the
//! `ext4-view` crate, and `debugfs`.
//!
//! Needs root (mknod, chown, loop mounts) and e2fsprogs, GNU tar, gzip,
//! zstd, setpriv and mmdebstrap (`scripts/deps.sh` installs them). The
//! Debian tree is built once per machine and cached under
//! `$VMIMAGE_CACHE/test-trees` (default `~/.cache/vmimage/test-trees`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use vmimage_tests::{run_ok, vmimage, which};

// ---------------------------------------------------------------- helpers

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the mkfs tests need root (mknod, chown, loop mounts); CI runs them as root"
    );
}

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("`{name}` is missing: run scripts/deps.sh"))
}

/// A scratch directory on the build machine's disk (not tmpfs, so
/// `user.*` xattrs work on any kernel).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mkfs-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
}

/// `vmimage mkfs SRC OUT EXTRA...`, without any SOURCE_DATE_EPOCH the
/// caller's environment may carry.
fn mkfs_cmd(src: impl AsRef<std::ffi::OsStr>, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = vmimage([std::ffi::OsStr::new("mkfs"), src.as_ref(), out.as_os_str()]);
    cmd.args(extra).env_remove("SOURCE_DATE_EPOCH");
    cmd
}

fn mkfs_ok(src: impl AsRef<std::ffi::OsStr>, out: &Path, extra: &[&str]) {
    run_ok(&mut mkfs_cmd(src, out, extra));
    e2fsck_clean(out);
}

fn e2fsck_clean(img: &Path) {
    let out = Command::new(tool("e2fsck"))
        .args(["-fn"])
        .arg(img)
        .output()
        .expect("running e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn {} found problems ({}):\n{}{}",
        img.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn debugfs(img: &Path, request: &str) -> String {
    let out = run_ok(
        Command::new(tool("debugfs"))
            .arg("-R")
            .arg(request)
            .arg(img),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_file(p: &Path) -> [u8; 32] {
    let mut f = fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h)).unwrap();
    h.finalize().into()
}

/// sha2 0.11 hashers are not `io::Write`; this adapter is.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A read-only loop mount, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new(img: &Path) -> Self {
        let dir = scratch();
        run_ok(
            Command::new(tool("mount"))
                .args(["-t", "ext4", "-o", "loop,ro"])
                .arg(img)
                .arg(dir.path()),
        );
        Self { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new(tool("umount")).arg(self.dir.path()).status();
    }
}

fn list_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = cstr(p);
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    // SAFETY: `c` is NUL-terminated; `names` has the length passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        assert!(
            m >= 0,
            "lgetxattr {}: {}",
            p.display(),
            io::Error::last_os_error()
        );
        val.truncate(m as usize);
        out.insert(name.to_vec(), val);
    }
    out
}

// ------------------------------------------------------- what a tree holds

/// One entry as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Full `st_mode` (type and permissions).
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    nlink: u64,
    /// Files only (directory sizes differ between filesystems).
    size: u64,
    sha: Option<[u8; 32]>,
    link: Option<Vec<u8>>,
    rdev: (u32, u32),
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For multiply-linked files: the first path (in sorted order) with the
    /// same inode, so hard-link groups can be compared across filesystems.
    same_as: Option<Vec<u8>>,
}

/// Every entry under `root` (root itself as the empty path), via lstat.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut first_of_inode: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((p, rel)) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let mut seen = Seen {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), md.mtime_nsec()),
            nlink: md.nlink(),
            size: 0,
            sha: None,
            link: None,
            rdev: (libc::major(md.rdev()), libc::minor(md.rdev())),
            xattrs: list_xattrs(&p),
            same_as: None,
        };
        if ft.is_file() {
            seen.size = md.len();
            seen.sha = Some(sha256_file(&p));
        }
        if ft.is_symlink() {
            seen.link = Some(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec());
        }
        if !ft.is_dir() && md.nlink() > 1 {
            seen.same_as = Some(
                first_of_inode
                    .entry(md.ino())
                    .or_insert(rel.clone())
                    .clone(),
            );
        }
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            // Reverse so the stack pops in sorted order: `same_as` is then
            // the sorted-first path on both sides.
            names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            for n in names {
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(n.as_bytes());
                stack.push((p.join(&n), r));
            }
        }
        out.insert(rel, seen);
    }
    out
}

/// The image's snapshot minus what mkfs adds (lost+found, and the root's
/// link count, which lost+found raises).
fn image_snapshot(mnt: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut snap = snapshot(mnt);
    let lf = snap
        .remove(&b"lost+found"[..])
        .expect("the image has /lost+found");
    assert_eq!(lf.mode, libc::S_IFDIR | 0o700);
    snap.get_mut(&b""[..]).unwrap().nlink = 0;
    snap
}

fn assert_same_tree(want: &BTreeMap<Vec<u8>, Seen>, got: &BTreeMap<Vec<u8>, Seen>, what: &str) {
    let mut want = want.clone();
    want.get_mut(&b""[..]).unwrap().nlink = 0;
    for (path, w) in &want {
        let shown = String::from_utf8_lossy(path);
        let g = got
            .get(path)
            .unwrap_or_else(|| panic!("{what}: `{shown}` missing from the image"));
        assert_eq!(
            g, w,
            "{what}: `{shown}` differs (left: image, right: source)"
        );
    }
    for path in got.keys() {
        assert!(
            want.contains_key(path),
            "{what}: image has `{}` that the source does not",
            String::from_utf8_lossy(path)
        );
    }
}

/// An entry as `ext4-view` shows it (no link counts, xattrs or devices).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Viewed {
    kind: char,
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    size: u64,
    sha: Option<[u8; 32]>,
    link: Option<Vec<u8>>,
}

fn kind_of_mode(mode: u32) -> char {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFREG => 'f',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        m => panic!("unknown file type {m:o}"),
    }
}

impl From<&Seen> for Viewed {
    fn from(s: &Seen) -> Self {
        Self {
            kind: kind_of_mode(s.mode),
            mode: (s.mode & 0o7777) as u16,
            uid: s.uid,
            gid: s.gid,
            mtime: (s.mtime.0, s.mtime.1 as u32),
            size: s.size,
            sha: s.sha,
            link: s.link.clone(),
        }
    }
}

/// Every entry of the image through `ext4-view` (lost+found left out).
fn view_image(img: &Path) -> BTreeMap<Vec<u8>, Viewed> {
    let fs = ext4_view::Ext4::load_from_path(img)
        .unwrap_or_else(|e| panic!("ext4-view cannot load {}: {e}", img.display()));
    let mut out = BTreeMap::new();
    let root_md = fs.symlink_metadata("/").unwrap();
    out.insert(
        Vec::new(),
        viewed(&fs, &ext4_view::PathBuf::new("/"), &root_md),
    );
    let mut stack = vec![ext4_view::PathBuf::new("/")];
    while let Some(dir) = stack.pop() {
        for e in fs.read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            let path = e.path();
            let rel = path.as_ref()[1..].to_vec();
            if rel == b"lost+found" {
                continue;
            }
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(path.clone());
            }
            out.insert(rel, viewed(&fs, &path, &md));
        }
    }
    out
}

fn viewed(fs: &ext4_view::Ext4, path: &ext4_view::PathBuf, md: &ext4_view::Metadata) -> Viewed {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_regular_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_dev() {
        'c'
    } else if ft.is_block_dev() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let (size, sha) = if kind == 'f' {
        let data = fs.read(path).unwrap();
        (data.len() as u64, Some(Sha256::digest(&data).into()))
    } else {
        (0, None)
    };
    let link = (kind == 'l').then(|| fs.read_link(path).unwrap().as_ref().to_vec());
    Viewed {
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime: (md.modified().seconds(), md.modified().nanoseconds()),
        size,
        sha,
        link,
    }
}

fn assert_same_view(want: &BTreeMap<Vec<u8>, Viewed>, got: &BTreeMap<Vec<u8>, Viewed>, what: &str) {
    for (path, w) in want {
        let shown = String::from_utf8_lossy(path);
        let g = got
            .get(path)
            .unwrap_or_else(|| panic!("{what}: `{shown}` missing (ext4-view)"));
        assert_eq!(g, w, "{what}: `{shown}` differs (ext4-view; left: image)");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: the image has entries the source does not: {:?}",
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
}

// ------------------------------------------------------ a tree of oddities

fn set_times(p: &Path, sec: i64, nsec: i64) {
    let ts = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let c = cstr(p);
    // SAFETY: `c` is NUL-terminated and `ts` two valid timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = cstr(p);
    let n = CString::new(name).unwrap();
    // SAFETY: pointers valid for the lengths given.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "lsetxattr {} {name}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = cstr(p);
    // SAFETY: `c` is NUL-terminated.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}

fn write_file(p: &Path, data: &[u8], mode: u32, owner: (u32, u32)) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1)).unwrap();
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A file capability granting cap_net_raw (VFS_CAP_REVISION_2, effective).
const CAP_NET_RAW: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Builds the reference tree: every file type, odd names, owners, modes,
/// nanosecond times, xattrs, hard links, holes, a large directory. With
/// `wide_times`, also times before 1970 and after 2038, which the kernel
/// reads but `ext4-view` 1.0 cannot (its `Timestamp::from_raw` refuses raw
/// seconds of 2^31 and up, so it fails on every such inode). No sockets:
/// tar cannot carry them (tested separately).
fn make_tree(root: &Path, wide_times: bool) {
    fs::create_dir_all(root).unwrap();
    write_file(&root.join("etc/hostname"), b"vm\n", 0o644, (0, 0));
    write_file(
        &root.join("usr/bin/ping"),
        &pseudo_random(30_000, 1),
        0o755,
        (0, 0),
    );
    set_xattr(
        &root.join("usr/bin/ping"),
        "security.capability",
        &CAP_NET_RAW,
    );
    write_file(
        &root.join("usr/bin/su"),
        &pseudo_random(5_000, 2),
        0o4755,
        (0, 0),
    );
    write_file(&root.join("usr/bin/wall"), b"#!/bin/sh\n", 0o2755, (0, 5));
    write_file(&root.join("data/empty"), b"", 0o600, (1000, 1000));
    write_file(
        &root.join("data/small"),
        b"small file\n",
        0o644,
        (65534, 65534),
    );
    write_file(
        &root.join("data/onemeg"),
        &pseudo_random(1 << 20, 3),
        0o640,
        (4_000_000_000, 4_000_000_001),
    );
    // Hard links: three names for one inode, in different directories.
    fs::hard_link(root.join("data/small"), root.join("data/small-link")).unwrap();
    fs::hard_link(root.join("data/small"), root.join("etc/small-link")).unwrap();
    // A sparse file: data at 0 and at 8 MiB, a hole between, 10 MiB long.
    {
        let p = root.join("data/sparse");
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(&pseudo_random(5000, 4)).unwrap();
        use std::io::Seek;
        f.seek(io::SeekFrom::Start(8 << 20)).unwrap();
        f.write_all(&pseudo_random(70_000, 5)).unwrap();
        f.set_len(10 << 20).unwrap();
    }
    let x = root.join("data/xattrs");
    write_file(&x, b"x", 0o644, (0, 0));
    set_xattr(&x, "user.comment", b"hello");
    set_xattr(&x, "user.binary", b"\x00\x01\xff\xfe");
    set_xattr(&x, "user.big", &pseudo_random(3000, 6)); // needs an xattr block
    set_xattr(&root.join("etc"), "user.on-a-dir", b"yes");

    let names = root.join("names");
    fs::create_dir_all(&names).unwrap();
    for name in [
        &b"with space"[..],
        b"new\nline",
        b"\xff\xfe not utf-8",
        "ünïcödé".as_bytes(),
        b"-leading-dash",
        b"tab\there",
        &[b'L'; 255],
    ] {
        let p = names.join(std::ffi::OsStr::from_bytes(name));
        write_file(&p, name, 0o644, (0, 0));
    }
    std::os::unix::fs::symlink("hostname", root.join("etc/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("/does/not/exist", root.join("dangling")).unwrap();
    // A target stored in a data block (over 59 bytes); ext4-view rejects
    // targets with a component over 255 bytes, so keep components short.
    std::os::unix::fs::symlink("long/".repeat(200), root.join("names/long-target")).unwrap();
    std::os::unix::fs::lchown(root.join("abs-link"), Some(1000), Some(1000)).unwrap();

    let dev = root.join("dev");
    fs::create_dir_all(&dev).unwrap();
    mknod(&dev.join("null"), libc::S_IFCHR, 1, 3);
    mknod(&dev.join("sda"), libc::S_IFBLK, 8, 0);
    mknod(&dev.join("big"), libc::S_IFCHR, 300, 70_000);
    mknod(&dev.join("fifo"), libc::S_IFIFO, 0, 0);
    fs::set_permissions(dev.join("null"), fs::Permissions::from_mode(0o666)).unwrap();

    // Enough names for an htree index.
    let many = root.join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..3000 {
        fs::write(many.join(format!("entry-with-a-longish-name-{i:05}")), b"").unwrap();
    }
    let mut deep = root.join("deep");
    for i in 0..30 {
        deep.push(format!("level{i}"));
    }
    write_file(&deep.join("bottom"), b"deep", 0o644, (0, 0));
    fs::create_dir_all(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::lchown(root.join("private"), Some(1000), Some(1000)).unwrap();

    // Times last (children change their directory's mtime): nanoseconds,
    // before 1970 and after 2038.
    let all = snapshot(root);
    for (i, rel) in all.keys().enumerate() {
        let p = root.join(std::ffi::OsStr::from_bytes(rel));
        let (sec, nsec) = match i % 4 {
            0 => (
                1_700_000_000 + i as i64,
                (i as i64 * 7_654_321) % 1_000_000_000,
            ),
            1 if wide_times => (-1_000 - i as i64, 999_999_999),
            2 if wide_times => ((1i64 << 31) + 100 + i as i64, 1),
            _ => (1_000_000_000 + i as i64, 0),
        };
        set_times(&p, sec, nsec);
    }
}

/// `tar` (GNU) of `dir` in PAX format with xattrs and numeric owners,
/// optionally piped through a compressor.
fn make_tar(dir: &Path, out: &Path, compress: Option<&str>) {
    let tar_out = if compress.is_some() {
        out.with_extension("plain-tmp")
    } else {
        out.to_path_buf()
    };
    run_ok(
        Command::new(tool("tar"))
            .args([
                "--format=pax",
                "--xattrs",
                "--xattrs-include=*",
                "--numeric-owner",
                "--sort=name",
                "-C",
            ])
            .arg(dir)
            .arg("-cf")
            .arg(&tar_out)
            .arg("."),
    );
    if let Some(c) = compress {
        let out_f = fs::File::create(out).unwrap();
        run_ok(
            Command::new(tool(c))
                .args(["-c", "-q"])
                .arg(&tar_out)
                .stdout(out_f),
        );
        fs::remove_file(&tar_out).unwrap();
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn test_same_tree_as_directory_and_tars_reads_back_identically() {
    require_root();
    let t = scratch();
    let src = t.path().join("src");
    make_tree(&src, true);
    let want = snapshot(&src);

    let tar = t.path().join("tree.tar");
    make_tar(&src, &tar, None);
    let tgz = t.path().join("tree.tar.gz");
    make_tar(&src, &tgz, Some("gzip"));
    let tzst = t.path().join("tree.tar.zst");
    make_tar(&src, &tzst, Some("zstd"));

    let cases: [(&str, &Path); 4] = [
        ("directory", &src),
        ("tar", &tar),
        ("tar.gz", &tgz),
        ("tar.zst", &tzst),
    ];
    for (what, input) in cases {
        let img = t.path().join(format!("{what}.ext4"));
        mkfs_ok(input, &img, &[]);
        let mnt = Mount::new(&img);
        assert_same_tree(&want, &image_snapshot(mnt.path()), what);
    }

    // The same tar on stdin.
    let img = t.path().join("stdin.ext4");
    let mut cmd = mkfs_cmd("-", &img, &[]);
    cmd.stdin(fs::File::open(&tzst).unwrap());
    run_ok(&mut cmd);
    e2fsck_clean(&img);
    let mnt = Mount::new(&img);
    assert_same_tree(&want, &image_snapshot(mnt.path()), "stdin");
    drop(mnt);

    // debugfs, a third reader: device numbers, xattrs, link counts.
    let img = t.path().join("directory.ext4");
    let stat = debugfs(&img, "stat /dev/big");
    assert!(
        stat.contains("Device major/minor number: 300:70000"),
        "{stat}"
    );
    let stat = debugfs(&img, "stat /data/small");
    assert!(stat.contains("Links: 3"), "{stat}");
    let wide = want
        .iter()
        .find(|(_, s)| s.mtime.0 < 0)
        .expect("a pre-1970 entry");
    let stat = debugfs(
        &img,
        &format!("stat \"/{}\"", String::from_utf8_lossy(wide.0)),
    );
    assert!(stat.contains("1969"), "{stat}");
    let ea = debugfs(&img, "ea_list /data/xattrs");
    assert!(ea.contains("user.comment (5) = \"hello\""), "{ea}");
    assert!(ea.contains("user.big"), "{ea}");
    let ea = debugfs(&img, "ea_list /usr/bin/ping");
    assert!(ea.contains("security.capability"), "{ea}");
}

/// The same checks through `ext4-view`, a reader that shares no code with
/// the kernel or e2fsprogs (times kept inside its range, see `make_tree`).
#[test]
fn test_ext4_view_reads_back_directory_and_tar() {
    require_root();
    let t = scratch();
    let src = t.path().join("src");
    make_tree(&src, false);
    let want: BTreeMap<_, Viewed> = snapshot(&src)
        .iter()
        .map(|(k, v)| (k.clone(), v.into()))
        .collect();
    let tar = t.path().join("tree.tar.gz");
    make_tar(&src, &tar, Some("gzip"));
    for (what, input) in [("directory", &src), ("tar.gz", &tar)] {
        let img = t.path().join(format!("{what}.ext4"));
        mkfs_ok(input, &img, &[]);
        assert_same_view(&want, &view_image(&img), what);
    }
}

#[test]
fn test_directory_source_keeps_sockets_and_reports_json() {
    require_root();
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    fs::write(src.join("file"), b"data").unwrap();
    let img = t.path().join("img.ext4");
    let out = run_ok(&mut mkfs_cmd(&src, &img, &["--json", "--label", "rootfs"]));
    e2fsck_clean(&img);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["size_bytes"].as_u64(),
        Some(fs::metadata(&img).unwrap().len())
    );
    assert_eq!(summary["block_size"].as_u64(), Some(4096));
    let mnt = Mount::new(&img);
    assert_same_tree(&snapshot(&src), &image_snapshot(mnt.path()), "socket");
    let label = run_ok(Command::new(tool("e2label")).arg(&img));
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "rootfs");
}

#[test]
fn test_images_are_deterministic_and_follow_source_date_epoch() {
    require_root();
    let t = scratch();
    let src = t.path().join("src");
    make_tree(&src, true);
    let tar = t.path().join("tree.tar");
    make_tar(&src, &tar, None);
    let image = |name: &str, src: &Path, extra: &[&str]| {
        let img = t.path().join(name);
        mkfs_ok(src, &img, extra);
        sha256_file(&img)
    };
    let a = image("a.ext4", &tar, &["--source-date-epoch", "1700000000"]);
    let b = image("b.ext4", &tar, &["--source-date-epoch", "1700000000"]);
    assert_eq!(a, b, "two runs on the same tar differ");
    let c = image("c.ext4", &tar, &["--source-date-epoch", "1600000000"]);
    assert_ne!(a, c, "a different SOURCE_DATE_EPOCH gave the same image");
    // The environment variable is the default for the flag.
    let img = t.path().join("env.ext4");
    run_ok(mkfs_cmd(&tar, &img, &[]).env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(
        sha256_file(&img),
        a,
        "SOURCE_DATE_EPOCH from the environment"
    );
    // A directory (whose atimes move as it is read) is stable under an epoch.
    let d1 = image("d1.ext4", &src, &["--source-date-epoch", "1700000000"]);
    let d2 = image("d2.ext4", &src, &["--source-date-epoch", "1700000000"]);
    assert_eq!(d1, d2, "two runs on the same directory differ");
    // A fixed uuid and size are honoured.
    let img = t.path().join("fixed.ext4");
    mkfs_ok(
        &tar,
        &img,
        &[
            "--size",
            "200M",
            "--uuid",
            "01234567-89ab-cdef-0123-456789abcdef",
            "--no-journal",
        ],
    );
    assert_eq!(fs::metadata(&img).unwrap().len(), 200 << 20);
    let sb = debugfs(&img, "stats");
    assert!(sb.contains("01234567-89ab-cdef-0123-456789abcdef"), "{sb}");
    assert!(!sb.contains("has_journal"), "{sb}");
}

// ------------------------------------------------------------- bad input

/// Runs a mkfs that must fail: non-zero exit, every `needles` in stderr,
/// nothing at `out` (or its old content), no temporary files in its dir.
fn assert_fails(mut cmd: Command, out: &Path, old: Option<&[u8]>, needles: &[&str]) {
    let res = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{cmd:?} succeeded; stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`: {stderr}");
    }
    match old {
        Some(old) => assert_eq!(fs::read(out).unwrap(), old, "the old output was changed"),
        None => assert!(!out.exists(), "{} was left behind", out.display()),
    }
    let dir = out.parent().unwrap();
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A tar whose one file is named by a PAX `path` record.
fn tar_named(name: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", name)]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("placeholder").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"abc"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn test_bad_archives_fail_naming_the_entry_and_leave_nothing() {
    let t = scratch();
    let out = t.path().join("out").join("img.ext4");
    fs::create_dir(out.parent().unwrap()).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "long-name.tar",
            tar_named(format!("dir/{}", "n".repeat(256)).as_bytes()),
            vec!["dir/nnnn", "256 bytes"],
        ),
        (
            "dotdot.tar",
            tar_named(b"a/../../etc/shadow"),
            vec!["a/../../etc/shadow", ".."],
        ),
        (
            "absolute.tar",
            tar_named(b"/etc/shadow"),
            vec!["/etc/shadow", "absolute"],
        ),
        ("garbage.tar", pseudo_random(8192, 9), vec!["corrupt"]),
    ];
    for (name, data, needles) in cases {
        let input = t.path().join(name);
        fs::write(&input, data).unwrap();
        assert_fails(mkfs_cmd(&input, &out, &[]), &out, None, &needles);
    }
}

#[test]
fn test_truncated_archives_fail_and_keep_the_old_output() {
    let t = scratch();
    let src = t.path().join("src");
    for i in 0..20 {
        write_file(
            &src.join(format!("f{i:02}")),
            &pseudo_random(10_000, i),
            0o644,
            (0, 0),
        );
    }
    let tar = t.path().join("full.tar");
    make_tar(&src, &tar, None);
    let full = fs::read(&tar).unwrap();
    let out = t.path().join("out").join("img.ext4");
    fs::create_dir(out.parent().unwrap()).unwrap();
    fs::write(&out, b"the previous image").unwrap();
    // Cut in the middle of a file, where an entry starts, and where the
    // end-of-archive blocks start; then the same through zstd and stdin.
    let mut starts = Vec::new();
    let mut data_end = 0;
    let mut ar = tar::Archive::new(&full[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        starts.push((e.raw_header_position(), e.raw_file_position()));
        data_end = e.raw_file_position() + e.size().div_ceil(512) * 512;
    }
    let cuts = [
        starts[5].1 as usize + 100,
        starts[10].0 as usize,
        data_end as usize,
    ];
    for cut in cuts {
        let input = t.path().join(format!("cut-{cut}.tar"));
        fs::write(&input, &full[..cut]).unwrap();
        assert_fails(
            mkfs_cmd(&input, &out, &[]),
            &out,
            Some(b"the previous image"),
            &["truncated"],
        );
    }
    let zst = zstd::encode_all(&full[..], 3).unwrap();
    let input = t.path().join("cut.tar.zst");
    fs::write(&input, &zst[..zst.len() / 2]).unwrap();
    assert_fails(
        mkfs_cmd(&input, &out, &[]),
        &out,
        Some(b"the previous image"),
        &[],
    );
    let mut cmd = mkfs_cmd("-", &out, &[]);
    cmd.stdin(fs::File::open(t.path().join(format!("cut-{}.tar", cuts[0]))).unwrap());
    assert_fails(
        cmd,
        &out,
        Some(b"the previous image"),
        &["truncated", "stdin"],
    );
}

#[test]
fn test_too_small_size_fails_and_leaves_nothing() {
    let t = scratch();
    let src = t.path().join("src");
    write_file(&src.join("big"), &pseudo_random(20 << 20, 7), 0o644, (0, 0));
    let out = t.path().join("out").join("img.ext4");
    fs::create_dir(out.parent().unwrap()).unwrap();
    assert_fails(
        mkfs_cmd(&src, &out, &["--size", "8M"]),
        &out,
        None,
        &["--size"],
    );
}

/// Root reads any file, so the unreadable-file case runs vmimage as
/// `nobody` (setpriv drops root and its capabilities): a real EACCES.
#[test]
fn test_unreadable_file_fails_naming_it() {
    require_root();
    let t = tempfile::Builder::new()
        .prefix("mkfs-nobody-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The build's binary may sit under /root, which nobody cannot enter.
    let bin = t.path().join("vmimage");
    fs::copy(vmimage_tests::vmimage_bin(), &bin).unwrap();
    let src = t.path().join("src");
    write_file(&src.join("readable"), b"ok", 0o644, (0, 0));
    write_file(&src.join("secret"), b"no", 0o000, (0, 0));
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    let outdir = t.path().join("out");
    fs::create_dir(&outdir).unwrap();
    std::os::unix::fs::chown(&outdir, Some(65534), Some(65534)).unwrap();
    let out = outdir.join("img.ext4");
    let mut cmd = Command::new(tool("setpriv"));
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("mkfs")
        .arg(&src)
        .arg(&out)
        .env_remove("SOURCE_DATE_EPOCH");
    assert_fails(cmd, &out, None, &["secret", "ermission denied"]);
}

// ----------------------------------------------------- random trees (tar)

/// A small xorshift generator: the property test draws a seed and a shape,
/// and the tree follows from them deterministically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A file's bytes: zeros except `chunks` of generated data, so large
/// sparse-like files cost no memory to describe.
#[derive(Debug, Clone)]
struct Data {
    len: u64,
    chunks: Vec<(u64, u64, u64)>, // (offset, length, seed)
}

impl Data {
    fn reader(&self) -> DataReader<'_> {
        DataReader { data: self, pos: 0 }
    }
    fn sha(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        io::copy(&mut self.reader(), &mut HashWriter(&mut h)).unwrap();
        h.finalize().into()
    }
}

struct DataReader<'a> {
    data: &'a Data,
    pos: u64,
}

impl Read for DataReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.data.len - self.pos) as usize);
        let buf = &mut buf[..n];
        buf.fill(0);
        for &(off, len, seed) in &self.data.chunks {
            let (start, end) = (off.max(self.pos), (off + len).min(self.pos + n as u64));
            for p in start..end {
                let v = (p - off + seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                buf[(p - self.pos) as usize] = (v >> 56) as u8;
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Clone)]
enum GenKind {
    Dir,
    File(Data),
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Debug, Clone)]
struct GenEntry {
    path: Vec<u8>,
    kind: GenKind,
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
}

/// ext4-view resolves paths of at most 4096 bytes.
const MAX_PATH: usize = 3900;

fn random_name(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.chance(10) {
        1 + rng.below(255)
    } else {
        1 + rng.below(16)
    } as usize;
    loop {
        let name: Vec<u8> = (0..len)
            .map(|_| {
                loop {
                    let b = 1 + rng.below(255) as u8;
                    if b != b'/' {
                        break b;
                    }
                }
            })
            .collect();
        if name != b"." && name != b".." {
            return name;
        }
    }
}

fn random_meta(rng: &mut Rng, path: Vec<u8>, kind: GenKind) -> GenEntry {
    let id = |rng: &mut Rng| {
        if rng.chance(20) {
            rng.next() as u32
        } else {
            rng.below(2000) as u32
        }
    };
    let mode = if matches!(kind, GenKind::Symlink(_)) {
        0o777
    } else {
        rng.below(0o10000) as u16
    };
    // ext4-view 1.0 reads only [0, 2^31) (see `make_tree`); the kernel
    // checks wider times in the directory/tar test.
    let sec = rng.below(1 << 31) as i64;
    GenEntry {
        path,
        kind,
        mode,
        uid: id(rng),
        gid: id(rng),
        mtime: (sec, rng.below(1_000_000_000) as u32),
    }
}

/// Builds a random tree entry by entry, parents before children.
struct TreeGen {
    rng: Rng,
    entries: Vec<GenEntry>,
    /// Directories (by image path) and the names used in each.
    dirs: Vec<(Vec<u8>, BTreeSet<Vec<u8>>)>,
    files: Vec<Vec<u8>>,
}

impl TreeGen {
    /// Adds a child of `kind` with a fresh random name to directory `dir`;
    /// returns the new directory's index if it made one. `None` also when
    /// the name was taken or the path would be too long.
    fn add_child(&mut self, dir: usize, kind: GenKind) -> Option<usize> {
        let name = random_name(&mut self.rng);
        let (parent, used) = &mut self.dirs[dir];
        if used.contains(&name) || parent.len() + 1 + name.len() > MAX_PATH {
            return None;
        }
        used.insert(name.clone());
        let mut path = parent.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let is_dir = matches!(kind, GenKind::Dir);
        if matches!(kind, GenKind::File(_)) {
            self.files.push(path.clone());
        }
        let entry = random_meta(&mut self.rng, path.clone(), kind);
        self.entries.push(entry);
        if is_dir {
            self.dirs.push((path, BTreeSet::new()));
            return Some(self.dirs.len() - 1);
        }
        None
    }

    fn small_data(&mut self) -> Data {
        let rng = &mut self.rng;
        let len = match rng.below(4) {
            0 => 0,
            1 => rng.below(60),
            2 => rng.below(5000),
            _ => rng.below(200_000),
        };
        Data {
            len,
            chunks: vec![(0, len, rng.next() >> 8)],
        }
    }

    fn random_kind(&mut self) -> GenKind {
        let rng = &mut self.rng;
        match rng.below(12) {
            0..=2 => GenKind::Dir,
            3..=6 => GenKind::File(self.small_data()),
            7 => {
                let max = if rng.chance(20) { 2000 } else { 80 };
                let len = 1 + rng.below(max) as usize;
                // Any bytes but NUL; a `/` at least every 200 bytes because
                // ext4-view refuses target components over 255 bytes.
                GenKind::Symlink(
                    (0..len)
                        .map(|i| {
                            if i % 200 == 199 {
                                b'/'
                            } else {
                                1 + rng.below(255) as u8
                            }
                        })
                        .collect(),
                )
            }
            8 if !self.files.is_empty() => {
                let i = rng.below(self.files.len() as u64) as usize;
                GenKind::HardLink(self.files[i].clone())
            }
            9 => GenKind::Char(rng.below(4096) as u32, rng.below(1 << 20) as u32),
            10 => GenKind::Block(rng.below(4096) as u32, rng.below(1 << 20) as u32),
            _ => GenKind::Fifo,
        }
    }
}

fn random_tree(seed: u64, deep: bool, many: bool, large: bool) -> Vec<GenEntry> {
    let mut rng = Rng(seed | 1);
    let root = random_meta(&mut rng, Vec::new(), GenKind::Dir);
    let mut g = TreeGen {
        rng,
        entries: vec![root],
        // The writer makes /lost+found itself.
        dirs: vec![(Vec::new(), [b"lost+found".to_vec()].into())],
        files: Vec::new(),
    };
    let n = 40 + g.rng.below(200);
    for _ in 0..n {
        let dir = g.rng.below(g.dirs.len() as u64) as usize;
        let kind = g.random_kind();
        g.add_child(dir, kind);
    }
    if deep {
        let mut dir = 0;
        for _ in 0..200 {
            match g.add_child(dir, GenKind::Dir) {
                Some(d) => dir = d,
                None => break,
            }
        }
        let data = g.small_data();
        g.add_child(dir, GenKind::File(data));
    }
    if many {
        if let Some(d) = g.add_child(0, GenKind::Dir) {
            for _ in 0..(500 + g.rng.below(2500)) {
                let kind = if g.rng.chance(80) {
                    GenKind::File(Data {
                        len: 0,
                        chunks: vec![],
                    })
                } else {
                    GenKind::Symlink(b"target".to_vec())
                };
                g.add_child(d, kind);
            }
        }
    }
    if large {
        let len = (8 << 20) + g.rng.below(24 << 20);
        let mut chunks = vec![(0, 4096, 1), (len - 1000, 1000, 2)];
        for _ in 0..g.rng.below(8) {
            let off = g.rng.below(len - 70_000);
            let l = 1 + g.rng.below(70_000);
            chunks.push((off, l, g.rng.next()));
        }
        g.add_child(0, GenKind::File(Data { len, chunks }));
    }
    g.entries
}

/// Writes the tree as a PAX tar: every path, link target, id and time in
/// PAX records so nothing is cut to ustar's limits.
fn write_random_tar(entries: &[GenEntry], out: &Path) {
    let mut b = tar::Builder::new(io::BufWriter::new(fs::File::create(out).unwrap()));
    for e in entries {
        let mtime = format!("{}", Timestamp(e.mtime));
        let uid = e.uid.to_string();
        let gid = e.gid.to_string();
        let path = if e.path.is_empty() {
            b"./".to_vec()
        } else {
            e.path.clone()
        };
        let mut pax: Vec<(&str, &[u8])> = vec![
            ("path", path.as_slice()),
            ("mtime", mtime.as_bytes()),
            ("uid", uid.as_bytes()),
            ("gid", gid.as_bytes()),
        ];
        let mut h = tar::Header::new_ustar();
        h.set_path("placeholder").unwrap();
        h.set_mode(u32::from(e.mode));
        h.set_mtime(0);
        h.set_size(0);
        let (kind, data) = match &e.kind {
            GenKind::Dir => (tar::EntryType::Directory, None),
            GenKind::File(d) => {
                h.set_size(d.len);
                (tar::EntryType::Regular, Some(d))
            }
            GenKind::Symlink(t) => {
                pax.push(("linkpath", t.as_slice()));
                (tar::EntryType::Symlink, None)
            }
            GenKind::HardLink(t) => {
                pax.push(("linkpath", t.as_slice()));
                (tar::EntryType::Link, None)
            }
            GenKind::Char(ma, mi) | GenKind::Block(ma, mi) => {
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                let k = if matches!(e.kind, GenKind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                (k, None)
            }
            GenKind::Fifo => (tar::EntryType::Fifo, None),
        };
        h.set_entry_type(kind);
        h.set_cksum();
        b.append_pax_extensions(pax).unwrap();
        match data {
            Some(d) => b.append(&h, d.reader()).unwrap(),
            None => b.append(&h, io::empty()).unwrap(),
        }
    }
    b.into_inner().unwrap().flush().unwrap();
}

struct Timestamp((i64, u32));

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (sec, nsec) = self.0;
        if sec >= 0 || nsec == 0 {
            write!(f, "{sec}.{nsec:09}")
        } else {
            // PAX: -1.25 is 1.25 s before the epoch, i.e. sec -2 + 0.75.
            write!(f, "-{}.{:09}", -(sec + 1), 1_000_000_000 - nsec)
        }
    }
}

fn expected_view(entries: &[GenEntry]) -> BTreeMap<Vec<u8>, Viewed> {
    let mut out: BTreeMap<Vec<u8>, Viewed> = BTreeMap::new();
    for e in entries {
        let (kind, size, sha, link) = match &e.kind {
            GenKind::Dir => ('d', 0, None, None),
            GenKind::File(d) => ('f', d.len, Some(d.sha()), None),
            GenKind::Symlink(t) => ('l', 0, None, Some(t.clone())),
            GenKind::HardLink(t) => {
                let target = out[t].clone();
                out.insert(e.path.clone(), target);
                continue;
            }
            GenKind::Char(..) => ('c', 0, None, None),
            GenKind::Block(..) => ('b', 0, None, None),
            GenKind::Fifo => ('p', 0, None, None),
        };
        out.insert(
            e.path.clone(),
            Viewed {
                kind,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
                size,
                sha,
                link,
            },
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random trees (every name byte, deep paths, big directories, large
    /// sparse files, every entry type) made as PAX tars: mkfs, e2fsck,
    /// read back with ext4-view.
    #[test]
    fn prop_random_trees_round_trip(seed in any::<u64>(), deep in any::<bool>(),
                                    many in any::<bool>(), large in any::<bool>()) {
        let t = scratch();
        let entries = random_tree(seed, deep, many, large);
        let tar = t.path().join("random.tar");
        write_random_tar(&entries, &tar);
        let img = t.path().join("random.ext4");
        mkfs_ok(&tar, &img, &[]);
        let want = expected_view(&entries);
        let what = format!("seed {seed}");
        // The kernel reads everything back.
        let mnt = Mount::new(&img);
        let got: BTreeMap<_, Viewed> = image_snapshot(mnt.path())
            .iter()
            .map(|(k, v)| (k.clone(), v.into()))
            .collect();
        drop(mnt);
        assert_same_view(&want, &got, &format!("{what} (kernel)"));
        // ext4-view 1.0 hashes names with signed chars whatever the
        // superblock says; our images use the signed hash (as x86 mke2fs
        // does), so its htree lookups must find every name.
        assert!(signed_dir_hash(&img), "{what}: expected signed dir hash");
        assert_same_view(&want, &view_image(&img), &what);
    }
}

/// Whether the superblock's `s_flags` (offset 0x160) has
/// EXT2_FLAGS_SIGNED_HASH.
fn signed_dir_hash(img: &Path) -> bool {
    use std::io::Seek;
    let mut f = fs::File::open(img).unwrap();
    f.seek(io::SeekFrom::Start(1024 + 0x160)).unwrap();
    let mut b = [0u8; 4];
    f.read_exact(&mut b).unwrap();
    u32::from_le_bytes(b) & 0x3 == 0x1
}

// --------------------------------------------------- a real Debian tree

/// The first Debian mirror in the host's apt sources.
fn host_debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "sources") {
                texts.push(fs::read_to_string(p).unwrap_or_default());
            }
        }
    }
    for text in &texts {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                })
            };
            let types = field("Types").unwrap_or_default();
            let suites = field("Suites").unwrap_or_default();
            let uris = field("URIs").unwrap_or_default();
            if types.split_whitespace().any(|t| t == "deb")
                && suites.split_whitespace().any(|s| s == "bookworm")
                && !uris.is_empty()
            {
                return uris.split_whitespace().next().unwrap().to_string();
            }
        }
    }
    let list = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in list.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"deb") {
            if let Some(url) = words.iter().find(|w| w.starts_with("http")) {
                return url.to_string();
            }
        }
    }
    panic!("no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list");
}

/// `mmdebstrap --variant=minbase bookworm` as a tar, built once per machine.
fn minbase_tar() -> PathBuf {
    let cache = std::env::var_os("VMIMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/vmimage"))
        .join("test-trees");
    let tar = cache.join("bookworm-minbase.tar");
    if tar.is_file() {
        return tar;
    }
    fs::create_dir_all(&cache).unwrap();
    // mmdebstrap picks its output format from the name: keep `.tar`.
    let tmp = cache.join(format!(".tmp-{}-bookworm-minbase.tar", std::process::id()));
    run_ok(
        Command::new(tool("mmdebstrap"))
            .args(["--quiet", "--variant=minbase", "--format=tar", "bookworm"])
            .arg(&tmp)
            .arg(host_debian_mirror())
            .stdin(Stdio::null()),
    );
    fs::rename(&tmp, &tar).unwrap();
    tar
}

/// What a tar says each path should be, as ext4-view shows it.
fn tar_view(tar: &Path) -> BTreeMap<Vec<u8>, Viewed> {
    let mut out: BTreeMap<Vec<u8>, Viewed> = BTreeMap::new();
    let mut ar = tar::Archive::new(io::BufReader::new(fs::File::open(tar).unwrap()));
    let norm = |p: &[u8]| -> Vec<u8> {
        let p = p.strip_prefix(b"./").unwrap_or(p);
        let p = p.strip_suffix(b"/").unwrap_or(p);
        if p == b"." { Vec::new() } else { p.to_vec() }
    };
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = norm(&e.path_bytes());
        let mut mtime = (e.header().mtime().unwrap() as i64, 0u32);
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                if x.key() == Ok("mtime") {
                    let v = x.value().unwrap();
                    let (s, f) = v.split_once('.').unwrap_or((v, ""));
                    let f = format!("{f:0<9}");
                    mtime = (s.parse().unwrap(), f[..9].parse().unwrap());
                }
            }
        }
        let h = e.header();
        let (mode, uid, gid) = (
            (h.mode().unwrap() & 0o7777) as u16,
            h.uid().unwrap() as u32,
            h.gid().unwrap() as u32,
        );
        let kind = h.entry_type();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let (k, size, sha) = match kind {
            tar::EntryType::Directory => ('d', 0, None),
            tar::EntryType::Regular => {
                let mut hsh = Sha256::new();
                let n = io::copy(&mut e, &mut HashWriter(&mut hsh)).unwrap();
                ('f', n, Some(hsh.finalize().into()))
            }
            tar::EntryType::Symlink => ('l', 0, None),
            tar::EntryType::Link => {
                let target = out[&norm(&link.unwrap())].clone();
                out.insert(path, target);
                continue;
            }
            tar::EntryType::Char => ('c', 0, None),
            tar::EntryType::Block => ('b', 0, None),
            tar::EntryType::Fifo => ('p', 0, None),
            other => panic!("unexpected entry type {other:?} in {}", tar.display()),
        };
        out.insert(
            path,
            Viewed {
                kind: k,
                mode,
                uid,
                gid,
                mtime,
                size,
                sha,
                link: if k == 'l' { link } else { None },
            },
        );
    }
    out
}

#[test]
fn test_debian_minbase_tar_round_trips() {
    require_root();
    let tar = minbase_tar();
    let t = scratch();
    let img = t.path().join("minbase.ext4");
    mkfs_ok(&tar, &img, &["--source-date-epoch", "4000000000"]);
    let want = tar_view(&tar);
    assert!(
        want.len() > 5000,
        "a minbase tree has thousands of entries, got {}",
        want.len()
    );
    assert_same_view(&want, &view_image(&img), "bookworm minbase");
}
