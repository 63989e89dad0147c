//! Whole-image tests: build images from tables of awkward entries, then
//! check them with the real e2fsprogs (`e2fsck -fn`, `debugfs`) and read
//! them back with the `ext4-view` crate (a strict, independent reader).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    Content, Entry, Ext4WriteError, Ext4Writer, ImageSize, ImageSummary, Metadata, Node, Options,
    Timestamp,
};

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install e2fsprogs (scripts/deps.sh)");
}

fn meta(mode: u16) -> Metadata {
    Metadata {
        mode,
        uid: 0,
        gid: 0,
        atime: Timestamp {
            sec: 1_700_000_000,
            nsec: 123_456_789,
        },
        mtime: Timestamp {
            sec: 1_700_000_001,
            nsec: 5,
        },
        ctime: Timestamp {
            sec: 1_700_000_002,
            nsec: 0,
        },
        xattrs: BTreeMap::new(),
    }
}

/// Where a test file's bytes come from.
enum Src {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

type Item = (Entry, Option<Src>);

fn file(path: &str, data: &[u8]) -> Item {
    (
        Entry {
            path: path.as_bytes().to_vec(),
            node: Node::File {
                size: data.len() as u64,
            },
            meta: meta(0o644),
        },
        Some(Src::Bytes(data.to_vec())),
    )
}

fn node(path: &str, node: Node, mode: u16) -> Item {
    (
        Entry {
            path: path.as_bytes().to_vec(),
            node,
            meta: meta(mode),
        },
        None,
    )
}

struct Built {
    _dir: tempfile::TempDir,
    path: PathBuf,
    summary: ImageSummary,
}

fn build(entries: Vec<Item>, options: Options) -> Result<Built, Ext4WriteError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img.ext4");
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create");
    let mut w = Ext4Writer::new(f, options)?;
    for (e, c) in entries {
        let c = c.map(|c| match c {
            Src::Bytes(b) => Content::Bytes(b),
            Src::Path(p) => Content::Path(p),
        });
        w.add(e, c)?;
    }
    let summary = w.finish()?;
    Ok(Built {
        _dir: dir,
        path,
        summary,
    })
}

/// `e2fsck -fn` must exit 0 and report nothing but its pass banners.
fn fsck(img: &Path) {
    let out = Command::new(tool("e2fsck"))
        .arg("-fn")
        .arg(img)
        .output()
        .expect("run e2fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.starts_with("Pass ")
                || l.starts_with("e2fsck ")
                || l.contains("% non-contiguous)")
                || l.trim().is_empty())
        })
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "e2fsck -fn failed ({}):\n{text}",
        out.status
    );
}

fn debugfs(img: &Path, req: &str) -> String {
    let out = Command::new(tool("debugfs"))
        .arg("-R")
        .arg(req)
        .arg(img)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs {req}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opts() -> Options {
    Options {
        size: ImageSize::Auto { headroom: 1 << 20 },
        source_date_epoch: Some(1_700_000_100),
        ..Options::default()
    }
}

#[test]
fn test_minimal_image_passes_e2fsck() {
    let b = build(vec![file("hello", b"hi\n")], opts()).expect("build");
    fsck(&b.path);
    let fs = ext4_view::Ext4::load_from_path(&b.path).expect("ext4-view loads");
    assert_eq!(fs.read("/hello").expect("read"), b"hi\n");
}

/// Alternating data and hole blocks: `n` extents.
fn fragmented(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; 2 * n * 4096];
    for i in 0..n {
        v[2 * i * 4096] = (i % 251) as u8 + 1;
    }
    v
}

fn with_xattrs(mut item: Item, xs: &[(&str, &[u8])]) -> Item {
    for (k, v) in xs {
        item.0.meta.xattrs.insert(k.as_bytes().to_vec(), v.to_vec());
    }
    item
}

/// The awkward table: every node type and the corners of the format.
fn awkward(sparse_src: &Path) -> Vec<Item> {
    let long = "n".repeat(255);
    let slow_target = "t".repeat(200);
    let mut v = vec![
        node("", Node::Directory, 0o755),
        file("empty", b""),
        file("small", b"hello world\n"),
        file("exact-block", &[0xAB; 4096]),
        file("zeros-then-data", &{
            let mut x = vec![0u8; 3 * 4096 + 17];
            x[3 * 4096 + 3] = 9;
            x
        }),
        file("frag-depth1", &fragmented(1000)),
        file("frag-depth2", &fragmented(2000)),
        (
            Entry {
                path: b"sparse-10g".to_vec(),
                node: Node::File { size: 10 << 30 },
                meta: meta(0o600),
            },
            Some(Src::Path(sparse_src.to_path_buf())),
        ),
        file(&format!("deep/er/than/{long}"), b"long name\n"),
        node(
            "fast-link",
            Node::Symlink {
                target: b"small".to_vec(),
            },
            0o777,
        ),
        node(
            "slow-link",
            Node::Symlink {
                target: slow_target.into_bytes(),
            },
            0o777,
        ),
        node("dev/null", Node::CharDevice { major: 1, minor: 3 }, 0o666),
        node(
            "dev/nvme0n1p300",
            Node::BlockDevice {
                major: 259,
                minor: 300,
            },
            0o660,
        ),
        node(
            "dev/big",
            Node::CharDevice {
                major: 4095,
                minor: 1 << 19,
            },
            0o600,
        ),
        node("fifo", Node::Fifo, 0o644),
        node("sock", Node::Socket, 0o755),
        node(
            "hard2",
            Node::HardLink {
                target: b"small".to_vec(),
            },
            0,
        ),
        node(
            "deep/hard3",
            Node::HardLink {
                target: b"small".to_vec(),
            },
            0,
        ),
        with_xattrs(
            file("bin/ping", b"\x7fELF"),
            &[(
                "security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            )],
        ),
        with_xattrs(
            file("xattr-block", b"x"),
            &[
                ("user.big", &[b'v'; 300]),
                ("trusted.t", b"1"),
                ("security.selinux", b"system_u:object_r:bin_t:s0\0"),
            ],
        ),
        with_xattrs(
            node("xattr-dir", Node::Directory, 0o1777),
            &[("user.k", b"v")],
        ),
    ];
    // Special bits and large ids.
    let mut suid = file("usr/bin/sudo", b"#!/bin/true\n");
    suid.0.meta.mode = 0o4755;
    suid.0.meta.uid = 100_000;
    suid.0.meta.gid = 70_000;
    v.push(suid);
    let mut sgid = node("var/mail", Node::Directory, 0o2775);
    sgid.0.meta.gid = 8;
    v.push(sgid);
    // A directory given after its children only sets its metadata.
    v.push(node("deep", Node::Directory, 0o750));
    // A duplicate path replaces the earlier entry.
    v.push(file("replaced", b"old"));
    v.push(file("replaced", b"new!"));
    // 3000 names: an htree.
    for i in 0..3000 {
        v.push(file(
            &format!("big/entry-{i:05}"),
            format!("{i}").as_bytes(),
        ));
    }
    v
}

fn sparse_source(dir: &Path) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let p = dir.join("sparse");
    let f = std::fs::File::create(&p).expect("create");
    f.set_len(10 << 30).expect("set_len");
    for (i, off) in [0u64, 1 << 30, 5 << 30, (10 << 30) - 4096]
        .iter()
        .enumerate()
    {
        f.write_all_at(&[i as u8 + 1; 4096], *off).expect("write");
    }
    p
}

#[test]
fn test_awkward_entries_pass_e2fsck_and_read_back() {
    let src = tempfile::tempdir().expect("tempdir");
    let sparse = sparse_source(src.path());
    let b = build(awkward(&sparse), opts()).expect("build");
    fsck(&b.path);

    let fs = ext4_view::Ext4::load_from_path(&b.path).expect("ext4-view loads");
    assert_eq!(fs.read("/small").expect("read"), b"hello world\n");
    assert_eq!(fs.read("/replaced").expect("read"), b"new!");
    assert_eq!(fs.read("/empty").expect("read"), b"");
    assert_eq!(fs.read("/exact-block").expect("read"), vec![0xAB; 4096]);
    assert_eq!(fs.read("/frag-depth2").expect("read"), fragmented(2000));
    assert_eq!(fs.read("/frag-depth1").expect("read"), fragmented(1000));
    let long = "n".repeat(255);
    assert_eq!(
        fs.read(format!("/deep/er/than/{long}").as_str())
            .expect("read"),
        b"long name\n"
    );
    assert_eq!(
        fs.read_link("/fast-link").expect("link"),
        ext4_view::PathBuf::new(&"small")
    );
    assert_eq!(
        fs.read_link("/slow-link").expect("link"),
        ext4_view::PathBuf::new(&"t".repeat(200))
    );
    for i in (0..3000).step_by(97) {
        assert_eq!(
            fs.read(format!("/big/entry-{i:05}").as_str())
                .expect("read htree"),
            format!("{i}").as_bytes()
        );
    }
    assert_eq!(fs.read_dir("/big").expect("dir").count(), 3002);
    let m = fs.metadata("/usr/bin/sudo").expect("meta");
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o4755, 100_000, 70_000)
    );
    assert_eq!(fs.metadata("/deep").expect("meta").mode() & 0o7777, 0o750);
    assert_eq!(
        fs.metadata("/xattr-dir").expect("meta").mode() & 0o7777,
        0o1777
    );
    assert_eq!(fs.metadata("/sparse-10g").expect("meta").len(), 10 << 30);
    let mut f = fs.open("/sparse-10g").expect("open");
    let mut buf = vec![0u8; 4096];
    f.seek_to(5 << 30).expect("seek");
    f.read_bytes(&mut buf).expect("read");
    assert_eq!(buf, vec![3u8; 4096]);

    let stat = debugfs(&b.path, "stat /small");
    assert!(stat.contains("Links: 3"), "{stat}");
    let stat = debugfs(&b.path, "stat /bin/ping");
    assert!(stat.contains("security.capability (20)"), "{stat}");
    let stat = debugfs(&b.path, "stat /xattr-block");
    assert!(
        stat.contains("File ACL: ") && !stat.contains("File ACL: 0"),
        "{stat}"
    );
    assert!(
        stat.contains("user.big (300)") && stat.contains("security.selinux (27)"),
        "{stat}"
    );
    let stat = debugfs(&b.path, "stat /dev/nvme0n1p300");
    assert!(
        stat.contains("Device major/minor number: 259:300"),
        "{stat}"
    );
    let stat = debugfs(&b.path, "stat /dev/big");
    assert!(
        stat.contains(&format!("Device major/minor number: 4095:{}", 1 << 19)),
        "{stat}"
    );
    let stat = debugfs(&b.path, "stat /");
    // 2 + subdirs: lost+found, deep, dev, bin, usr, var, xattr-dir, big
    assert!(stat.contains("Links: 10"), "{stat}");
    let stat = debugfs(&b.path, "stat /big");
    assert!(stat.contains("Flags: 0x81000"), "htree + extents: {stat}");
    let stat = debugfs(&b.path, "stat /frag-depth2");
    assert!(
        stat.contains("(ETB0)") && stat.contains("(ETB1)"),
        "two index levels expected"
    );
}

#[test]
fn test_same_entries_give_identical_bytes() {
    let src = tempfile::tempdir().expect("tempdir");
    let sparse = sparse_source(src.path());
    let a = build(awkward(&sparse), opts()).expect("build a");
    let b = build(awkward(&sparse), opts()).expect("build b");
    assert_eq!(a.summary, b.summary);
    let (x, y) = (
        std::fs::read(&a.path).expect("read"),
        std::fs::read(&b.path).expect("read"),
    );
    assert!(x == y, "two builds differ");
    // A different content gives a different derived UUID.
    let c = build(vec![file("other", b"x")], opts()).expect("build c");
    assert_ne!(a.summary.uuid, c.summary.uuid);
}

#[test]
fn test_fixed_size_too_small_names_the_needed_size() {
    let big = vec![7u8; 8 << 20];
    let err = build(
        vec![file("big", &big)],
        Options {
            size: ImageSize::Fixed(6 << 20),
            ..opts()
        },
    )
    .err()
    .expect("must not fit");
    match err {
        Ext4WriteError::TooSmall { needed, size } => {
            assert_eq!(size, 6 << 20);
            assert!(needed > 8 << 20 && needed < 16 << 20, "needed {needed}");
            assert!(err.to_string().contains("--size gives 6291456"), "{err}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn test_fixed_size_is_exact_and_spans_groups() {
    let size = 300 * (1 << 20) + 1234; // 300 MiB and change: 3 groups
    let b = build(
        vec![file("a", b"a"), file("b", &[1u8; 100_000])],
        Options {
            size: ImageSize::Fixed(size),
            ..opts()
        },
    )
    .expect("build");
    assert_eq!(
        std::fs::metadata(&b.path).expect("stat").len(),
        size / 4096 * 4096
    );
    assert_eq!(b.summary.groups, 3);
    fsck(&b.path);
}

#[test]
fn test_two_level_htree_directory() {
    // 200-byte names: 19 per leaf, so 12000 names need ~632 leaves (> 507).
    let mut v = Vec::new();
    for i in 0..12000 {
        let name = format!("{i:0>200}");
        v.push(node(&format!("d/{name}"), Node::Fifo, 0o600));
    }
    let b = build(v, opts()).expect("build");
    fsck(&b.path);
    let stat = debugfs(&b.path, "htree_dump /d");
    assert!(
        stat.contains("Indirect levels: 1"),
        "htree dump: {}",
        &stat[..stat.len().min(500)]
    );
    let fs = ext4_view::Ext4::load_from_path(&b.path).expect("ext4-view loads");
    assert_eq!(fs.read_dir("/d").expect("dir").count(), 12002);
    for i in (0..12000).step_by(1111) {
        let p = format!("/d/{i:0>200}");
        assert!(fs.exists(p.as_str()).expect("lookup"), "{p}");
    }
}

#[test]
fn test_kernel_mounts_the_image_read_only() {
    let src = tempfile::tempdir().expect("tempdir");
    let sparse = sparse_source(src.path());
    let b = build(awkward(&sparse), opts()).expect("build");
    let mnt = tempfile::tempdir().expect("mountpoint");
    let st = Command::new("mount")
        .args(["-t", "ext4", "-o", "ro,loop"])
        .arg(&b.path)
        .arg(mnt.path())
        .status()
        .expect("run mount");
    assert!(
        st.success(),
        "mount -o ro,loop failed (needs root and loop devices)"
    );
    let check = || -> Result<(), String> {
        let rd = |p: &str| std::fs::read(mnt.path().join(p)).map_err(|e| format!("{p}: {e}"));
        if rd("small")? != b"hello world\n" {
            return Err("small".into());
        }
        if rd("big/entry-02999")? != b"2999" {
            return Err("htree lookup".into());
        }
        if rd("frag-depth2")? != fragmented(2000) {
            return Err("extent tree".into());
        }
        let t = std::fs::read_link(mnt.path().join("slow-link")).map_err(|e| e.to_string())?;
        if t.as_os_str().len() != 200 {
            return Err("slow symlink".into());
        }
        Ok(())
    };
    let res = check();
    let _ = Command::new("umount").arg(mnt.path()).status();
    res.expect("kernel reads the image");
}

/// A deterministic synthetic tree: dirs, files of assorted sizes (some
/// with zero blocks), symlinks.
fn synthetic_tree(root: &Path) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for d in 0..60 {
        let dir = root.join(format!("dir{d:02}/sub{}", d % 7));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..40 {
            let size = match rnd() % 10 {
                0 => 0,
                1..=6 => rnd() % 8192,
                7 | 8 => rnd() % 200_000,
                _ => rnd() % 600_000,
            } as usize;
            let mut data: Vec<u8> = (0..size).map(|_| rnd() as u8).collect();
            if size > 3 * 4096 && f % 3 == 0 {
                data[4096..8192].fill(0);
            }
            std::fs::write(dir.join(format!("file-{f}.bin")), &data).expect("write");
        }
        std::os::unix::fs::symlink("file-0.bin", dir.join("link")).expect("symlink");
    }
}

fn build_from_dir(tree: &Path, img: &Path, options: Options) -> ImageSummary {
    let f = std::fs::File::create(img).expect("create");
    let mut w = Ext4Writer::new(f, options).expect("writer");
    crate::source::dir::DirWalk::new(tree)
        .run(|e, c| -> Result<(), Box<dyn std::error::Error>> { Ok(w.add(e, c)?) })
        .expect("walk");
    w.finish().expect("finish")
}

#[test]
fn test_auto_size_is_not_larger_than_mkfs_then_resize2fs_minimum() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    synthetic_tree(&tree);
    let ours = tmp.path().join("ours.ext4");
    let s = build_from_dir(
        &tree,
        &ours,
        Options {
            size: ImageSize::Auto { headroom: 0 },
            source_date_epoch: Some(1_700_000_000),
            ..Options::default()
        },
    );
    fsck(&ours);
    let theirs = tmp.path().join("theirs.ext4");
    let st = Command::new(tool("mkfs.ext4"))
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&theirs)
        .arg("1G")
        .status()
        .expect("mkfs.ext4");
    assert!(st.success());
    let st = Command::new(tool("resize2fs"))
        .args(["-M"])
        .arg(&theirs)
        .output()
        .expect("resize2fs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let theirs_len = std::fs::metadata(&theirs).expect("stat").len();
    eprintln!(
        "auto size: ours {} bytes, mkfs.ext4 -d + resize2fs -M {theirs_len} bytes",
        s.size_bytes
    );
    assert!(
        s.size_bytes <= theirs_len,
        "ours {} > mkfs+resize2fs {theirs_len}",
        s.size_bytes
    );
}

/// Timing against `mkfs.ext4 -d` on a real tree:
/// `VMIMAGE_BENCH_TREE=/usr/share cargo test --release -p vmimage-ext4 --lib bench -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run by hand"]
fn bench_against_mkfs_ext4() {
    let tree =
        PathBuf::from(std::env::var("VMIMAGE_BENCH_TREE").unwrap_or_else(|_| "/usr/share".into()));
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let ours = tmp.path().join("ours.ext4");
    let t = std::time::Instant::now();
    let s = build_from_dir(&tree, &ours, Options::default());
    let ours_t = t.elapsed();
    let theirs = tmp.path().join("theirs.ext4");
    let size = format!("{}k", s.size_bytes / 1024 * 2);
    let t = std::time::Instant::now();
    let st = Command::new(tool("mkfs.ext4"))
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&theirs)
        .arg(&size)
        .status()
        .expect("mkfs.ext4");
    let theirs_t = t.elapsed();
    assert!(st.success());
    eprintln!(
        "ours: {ours_t:?} ({} bytes, {} inodes used); mkfs.ext4 -d: {theirs_t:?}; ratio {:.2}",
        s.size_bytes,
        s.inodes - s.free_inodes,
        theirs_t.as_secs_f64() / ours_t.as_secs_f64()
    );
    fsck(&ours);
    // The kernel sees the same tree.
    let mnt = tempfile::tempdir().expect("mountpoint");
    let st = Command::new("mount")
        .args(["-t", "ext4", "-o", "ro,loop"])
        .arg(&ours)
        .arg(mnt.path())
        .status()
        .expect("mount");
    assert!(st.success(), "mount failed");
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference", "-q"])
        .arg(&tree)
        .arg(mnt.path())
        .output()
        .expect("diff");
    let _ = Command::new("umount").arg(mnt.path()).status();
    let out = String::from_utf8_lossy(&diff.stdout);
    let real: Vec<&str> = out.lines().filter(|l| !l.contains("lost+found")).collect();
    assert!(real.is_empty(), "trees differ: {real:?}");
}

fn writer() -> (tempfile::TempDir, Ext4Writer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = std::fs::File::create(dir.path().join("img")).expect("create");
    let w = Ext4Writer::new(f, opts()).expect("writer");
    (dir, w)
}

#[test]
fn test_reader_content_streams_and_short_reads_are_errors() {
    let (_d, mut w) = writer();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let (e, _) = file("streamed", &data);
    w.add(e, Some(Content::Reader(&mut data.as_slice())))
        .expect("streams");
    let (e, _) = file("short", &[1u8; 100]);
    let err = w
        .add(e, Some(Content::Reader(&mut &[1u8; 10][..])))
        .expect_err("short stream");
    assert!(
        matches!(&err, Ext4WriteError::SizeMismatch { path, expected: 100, actual: 10 } if path == "short"),
        "{err}"
    );
}

#[test]
fn test_bad_entries_are_rejected_with_their_path() {
    let (_d, mut w) = writer();
    w.add(file("f", b"x").0, Some(Content::Bytes(b"x".to_vec())))
        .expect("file");
    let cases: Vec<(Item, &str)> = vec![
        (
            node("f/child", Node::Fifo, 0o644),
            "f/child: parent f is not a directory",
        ),
        (
            node(
                "h",
                Node::HardLink {
                    target: b"missing".to_vec(),
                },
                0,
            ),
            "h: hard link target missing: does not exist",
        ),
        (
            node("lost+found", Node::Fifo, 0o644),
            "lost+found: lost+found must stay a directory",
        ),
        (
            node("s", Node::Symlink { target: Vec::new() }, 0o777),
            "s: symlink target must be",
        ),
        (
            with_xattrs(node("x", Node::Fifo, 0o644), &[("bogus.name", b"v")]),
            "bogus.name",
        ),
        (node("a//b", Node::Fifo, 0o644), "empty component"),
        (
            node(&"y".repeat(256), Node::Fifo, 0o644),
            "longer than 255 bytes",
        ),
    ];
    for ((e, _), want) in cases {
        // xattr problems surface in finish; the rest in add.
        let r = w.add(e, None);
        if let Err(err) = r {
            assert!(
                err.to_string().contains(want),
                "{err} does not say {want:?}"
            );
        } else {
            assert_eq!(want, "bogus.name");
        }
    }
    let err = w.finish().expect_err("bad xattr");
    assert!(
        err.to_string().contains("x: extended attribute bogus.name"),
        "{err}"
    );
}

#[test]
fn test_no_journal_option_and_label() {
    let b = build(
        vec![file("a", b"a")],
        Options {
            journal: false,
            label: b"rootfs".to_vec(),
            uuid: Some([0x11; 16]),
            ..opts()
        },
    )
    .expect("build");
    fsck(&b.path);
    assert_eq!(b.summary.journal_blocks, 0);
    assert_eq!(b.summary.uuid, "11111111-1111-1111-1111-111111111111");
    let out = Command::new(tool("dumpe2fs"))
        .arg("-h")
        .arg(&b.path)
        .output()
        .expect("dumpe2fs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Filesystem volume name:   rootfs"), "{text}");
    assert!(!text.contains("has_journal"), "{text}");
}

#[test]
fn test_more_than_65000_subdirectories_set_nlink_to_one() {
    let v: Vec<Item> = (0..65_010)
        .map(|i| node(&format!("many/{i}"), Node::Directory, 0o755))
        .collect();
    let b = build(v, opts()).expect("build");
    fsck(&b.path);
    let stat = debugfs(&b.path, "stat /many");
    assert!(stat.contains("Links: 1 "), "dir_nlink");
    let stat = debugfs(&b.path, "stat /many/77");
    assert!(stat.contains("Links: 2 "), "leaf dir");
}
