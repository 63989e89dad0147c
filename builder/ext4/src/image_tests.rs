//! Whole-image tests: build images from tables of awkward entries, then
//! check them with the real e2fsprogs (`e2fsck -fn`, `debugfs`) and read
//! them back with the `ext4-view` crate (a strict, independent reader).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Content, Entry, Ext4WriteError, Ext4Writer, ImageSize, ImageSummary, Metadata, Node, Options, Timestamp};

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
        atime: Timestamp { sec: 1_700_000_000, nsec: 123_456_789 },
        mtime: Timestamp { sec: 1_700_000_001, nsec: 5 },
        ctime: Timestamp { sec: 1_700_000_002, nsec: 0 },
        xattrs: BTreeMap::new(),
    }
}

fn file(path: &str, data: &[u8]) -> (Entry, Option<Vec<u8>>) {
    (
        Entry {
            path: path.as_bytes().to_vec(),
            node: Node::File { size: data.len() as u64 },
            meta: meta(0o644),
        },
        Some(data.to_vec()),
    )
}

fn node(path: &str, node: Node, mode: u16) -> (Entry, Option<Vec<u8>>) {
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

fn build(entries: Vec<(Entry, Option<Vec<u8>>)>, options: Options) -> Result<Built, Ext4WriteError> {
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
        w.add(e, c.map(Content::Bytes))?;
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
                || l.contains("files,")
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
    assert!(out.status.success(), "debugfs {req}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opts() -> Options {
    Options {
        size: ImageSize::Auto { headroom: 1 << 20 },
        source_date_epoch: Some(1_800_000_000),
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
