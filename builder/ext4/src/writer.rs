//! `Ext4Writer`: takes entries in any order (a tar stream, a directory
//! walk), keeps the tree in memory (one small record per entry), and puts
//! file data at its final place in the image as it arrives. All metadata is
//! laid out and written by `finish` (see `finish.rs`).
//!
//! Tree semantics are tar's: a later entry for the same path replaces the
//! earlier one (a directory given again only updates its metadata), parents
//! that never appear are created as 0755 root-owned directories, and hard
//! links bind to whatever their target path names at the time they arrive.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::data::{BATCH_BYTES, BATCH_FILE_MAX, BATCH_FILES, DataSink};
use crate::entry::{Content, Entry, Metadata, Node, Timestamp};
use crate::error::{Ext4WriteError, show};
use crate::extent::FileExtent;
use crate::format::{BLOCK_SIZE, NAME_MAX};
use crate::layout::{Allocator, gdt_reserve_for};
use crate::{ImageSize, Options};

/// Index into the writer's node table.
pub(crate) type NodeId = usize;

/// What a node is, with what `finish` needs to write it.
#[derive(Debug)]
pub(crate) enum Kind {
    Dir { children: BTreeMap<Vec<u8>, NodeId> },
    File { size: u64, extents: Vec<FileExtent> },
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    Socket,
}

/// One inode-to-be.
#[derive(Debug)]
pub(crate) struct NodeData {
    pub kind: Kind,
    pub meta: Metadata,
    /// Path it was first added under (for error messages in `finish`).
    pub path: Vec<u8>,
}

/// Root and lost+found are always nodes 0 and 1.
pub(crate) const ROOT: NodeId = 0;
pub(crate) const LOST_FOUND: NodeId = 1;

/// A queued `Content::Path` copy.
struct Pending {
    node: NodeId,
    src: PathBuf,
    size: u64,
    path: String,
}

/// Writes one ext4 image. See the crate docs for the format it produces.
///
/// ```no_run
/// use vmimage_ext4::{Content, Entry, Ext4Writer, Metadata, Node, Options};
/// let file = std::fs::File::create("/tmp/rootfs.ext4.tmp")?;
/// let mut w = Ext4Writer::new(file, Options::default())?;
/// let meta = Metadata { mode: 0o644, ..Default::default() };
/// w.add(
///     Entry { path: b"etc/hostname".to_vec(), node: Node::File { size: 3 }, meta },
///     Some(Content::Bytes(b"vm\n".to_vec())),
/// )?;
/// let summary = w.finish()?;
/// println!("{} bytes, uuid {}", summary.size_bytes, summary.uuid);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ext4Writer {
    pub(crate) options: Options,
    pub(crate) sink: DataSink,
    pub(crate) nodes: Vec<NodeData>,
    pending: Vec<Pending>,
    pending_bytes: u64,
    /// Everything added, in order: paths and metadata (`finish` adds the
    /// content digests).
    pub(crate) content_id: Sha256,
    /// GDT blocks reserved in each backup region.
    pub(crate) gdt_reserve: u64,
}

/// The default metadata for directories nobody described.
pub(crate) fn implicit_dir_meta(options: &Options) -> Metadata {
    let t = Timestamp {
        sec: options.source_date_epoch.unwrap_or(0),
        nsec: 0,
    };
    Metadata {
        mode: 0o755,
        atime: t,
        mtime: t,
        ctime: t,
        ..Default::default()
    }
}

fn clamp(t: Timestamp, sde: Option<i64>) -> Timestamp {
    match sde {
        Some(s) if t.sec >= s => Timestamp { sec: s, nsec: 0 },
        _ => t,
    }
}

/// Splits and checks an entry path.
fn components(path: &[u8]) -> Result<Vec<&[u8]>, Ext4WriteError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |reason| Ext4WriteError::InvalidPath {
        path: show(path),
        reason,
    };
    if path.contains(&0) {
        return Err(bad("contains a NUL byte"));
    }
    if path[0] == b'/' {
        return Err(bad("must be relative"));
    }
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" => return Err(bad("empty component")),
            b"." | b".." => return Err(bad("`.` or `..` component")),
            c if c.len() > NAME_MAX => {
                return Err(Ext4WriteError::NameTooLong { path: show(path) });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Ext4Writer {
    /// Starts an image in `file` (an empty, writable, seekable file; the
    /// caller handles temp naming and rename).
    pub fn new(file: File, options: Options) -> Result<Self, Ext4WriteError> {
        if options.label.len() > 16 {
            return Err(Ext4WriteError::LabelTooLong {
                len: options.label.len(),
            });
        }
        let fixed = match options.size {
            ImageSize::Fixed(n) => Some(crate::size::usable_blocks(n / BLOCK_SIZE)),
            ImageSize::Auto { .. } => None,
        };
        let gdt_reserve = gdt_reserve_for(fixed);
        let root_meta = implicit_dir_meta(&options);
        let lf_meta = Metadata {
            mode: 0o700,
            ..root_meta.clone()
        };
        let mut root_children = BTreeMap::new();
        root_children.insert(b"lost+found".to_vec(), LOST_FOUND);
        let nodes = vec![
            NodeData {
                kind: Kind::Dir {
                    children: root_children,
                },
                meta: root_meta,
                path: Vec::new(),
            },
            NodeData {
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                },
                meta: lf_meta,
                path: b"lost+found".to_vec(),
            },
        ];
        let mut content_id = Sha256::new();
        content_id.update(b"vmimage-ext4 v1");
        Ok(Self {
            sink: DataSink::new(file, Allocator::new(gdt_reserve), fixed),
            options,
            nodes,
            pending: Vec::new(),
            pending_bytes: 0,
            content_id,
            gdt_reserve,
        })
    }

    /// Adds one entry. Entries may come in any order; a directory given
    /// again only sets its metadata; missing parents are created (0755,
    /// root, time `source_date_epoch` or 0). `content` must be `Some` for
    /// [`Node::File`] (exactly `size` bytes) and `None` otherwise. A
    /// duplicate path replaces the earlier entry. Errors name the path.
    pub fn add(
        &mut self,
        entry: Entry,
        content: Option<Content<'_>>,
    ) -> Result<(), Ext4WriteError> {
        let Entry {
            path,
            node,
            mut meta,
        } = entry;
        let shown = show(&path);
        let comps = components(&path)?;
        let sde = self.options.source_date_epoch;
        meta.mode &= 0o7777;
        meta.atime = clamp(meta.atime, sde);
        meta.mtime = clamp(meta.mtime, sde);
        meta.ctime = clamp(meta.ctime, sde);
        match (&node, &content) {
            (Node::File { .. }, None) => {
                return Err(Ext4WriteError::BadEntry {
                    path: shown,
                    reason: "regular file without content".into(),
                });
            }
            (Node::File { .. }, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Ext4WriteError::BadEntry {
                    path: shown,
                    reason: "content given for an entry that is not a regular file".into(),
                });
            }
        }
        self.hash_entry(&path, &node, &meta);

        let Some((&name, parents)) = comps.split_last() else {
            // The root itself.
            return match node {
                Node::Directory => {
                    self.nodes[ROOT].meta = meta;
                    Ok(())
                }
                _ => Err(Ext4WriteError::BadEntry {
                    path: shown,
                    reason: "the root must be a directory".into(),
                }),
            };
        };
        let parent = self.walk(parents, &path, true)?;
        let existing = self.children(parent).get(name).copied();
        if existing == Some(LOST_FOUND) && !matches!(node, Node::Directory) {
            return Err(Ext4WriteError::BadEntry {
                path: shown,
                reason: "lost+found must stay a directory".into(),
            });
        }

        let id = match node {
            Node::Directory => {
                if let Some(old) = existing
                    && matches!(self.nodes[old].kind, Kind::Dir { .. })
                {
                    self.nodes[old].meta = meta;
                    return Ok(());
                }
                self.push(
                    Kind::Dir {
                        children: BTreeMap::new(),
                    },
                    meta,
                    &path,
                )
            }
            Node::HardLink { target } => {
                let tcomps = components(&target)?;
                let bad = |reason| Ext4WriteError::BadLinkTarget {
                    path: shown.clone(),
                    target: show(&target),
                    reason,
                };
                let Some((&tname, tparents)) = tcomps.split_last() else {
                    return Err(bad("is the root directory"));
                };
                let tparent = self
                    .walk(tparents, &target, false)
                    .map_err(|_| bad("does not exist"))?;
                let t = *self
                    .children(tparent)
                    .get(tname)
                    .ok_or_else(|| bad("does not exist"))?;
                if matches!(self.nodes[t].kind, Kind::Dir { .. }) {
                    return Err(bad("is a directory"));
                }
                t
            }
            Node::File { size } => {
                if size.div_ceil(BLOCK_SIZE) > u32::MAX as u64 {
                    return Err(Ext4WriteError::FileTooLarge { path: shown, size });
                }
                let id = self.push(
                    Kind::File {
                        size,
                        extents: Vec::new(),
                    },
                    meta,
                    &path,
                );
                self.store(id, size, content.expect("checked above"), shown)?;
                id
            }
            Node::Symlink { target } => {
                if target.is_empty() || target.len() >= BLOCK_SIZE as usize || target.contains(&0) {
                    return Err(Ext4WriteError::BadEntry {
                        path: shown,
                        reason: format!(
                            "symlink target must be 1..4095 bytes without NUL (got {} bytes)",
                            target.len()
                        ),
                    });
                }
                self.push(Kind::Symlink(target), meta, &path)
            }
            Node::CharDevice { major, minor } => self.push(Kind::Char(major, minor), meta, &path),
            Node::BlockDevice { major, minor } => self.push(Kind::Block(major, minor), meta, &path),
            Node::Fifo => self.push(Kind::Fifo, meta, &path),
            Node::Socket => self.push(Kind::Socket, meta, &path),
        };
        if let Kind::Dir { children } = &mut self.nodes[parent].kind {
            children.insert(name.to_vec(), id);
        }
        Ok(())
    }

    /// Feeds one entry to the content id: every field, length-prefixed
    /// where variable, so different entries never encode alike.
    fn hash_entry(&mut self, path: &[u8], node: &Node, meta: &Metadata) {
        let mut b: Vec<u8> = Vec::with_capacity(96 + path.len());
        let bytes = |b: &mut Vec<u8>, x: &[u8]| {
            b.extend_from_slice(&(x.len() as u64).to_le_bytes());
            b.extend_from_slice(x);
        };
        bytes(&mut b, path);
        let (tag, a, c, extra): (u8, u64, u64, &[u8]) = match node {
            Node::Directory => (0, 0, 0, b""),
            Node::File { size } => (1, *size, 0, b""),
            Node::Symlink { target } => (2, 0, 0, target),
            Node::HardLink { target } => (3, 0, 0, target),
            Node::CharDevice { major, minor } => (4, *major as u64, *minor as u64, b""),
            Node::BlockDevice { major, minor } => (5, *major as u64, *minor as u64, b""),
            Node::Fifo => (6, 0, 0, b""),
            Node::Socket => (7, 0, 0, b""),
        };
        b.push(tag);
        b.extend_from_slice(&a.to_le_bytes());
        b.extend_from_slice(&c.to_le_bytes());
        bytes(&mut b, extra);
        b.extend_from_slice(&meta.mode.to_le_bytes());
        b.extend_from_slice(&meta.uid.to_le_bytes());
        b.extend_from_slice(&meta.gid.to_le_bytes());
        for t in [meta.atime, meta.mtime, meta.ctime] {
            b.extend_from_slice(&t.sec.to_le_bytes());
            b.extend_from_slice(&t.nsec.to_le_bytes());
        }
        b.extend_from_slice(&(meta.xattrs.len() as u64).to_le_bytes());
        for (k, v) in &meta.xattrs {
            bytes(&mut b, k);
            bytes(&mut b, v);
        }
        self.content_id.update(&b);
    }

    fn push(&mut self, kind: Kind, meta: Metadata, path: &[u8]) -> NodeId {
        self.nodes.push(NodeData {
            kind,
            meta,
            path: path.to_vec(),
        });
        self.nodes.len() - 1
    }

    fn children(&self, dir: NodeId) -> &BTreeMap<Vec<u8>, NodeId> {
        match &self.nodes[dir].kind {
            Kind::Dir { children } => children,
            _ => unreachable!("walk returns directories"),
        }
    }

    /// Finds (and with `create`, makes) the directory `parents` names.
    fn walk(
        &mut self,
        parents: &[&[u8]],
        path: &[u8],
        create: bool,
    ) -> Result<NodeId, Ext4WriteError> {
        let mut cur = ROOT;
        for (depth, &c) in parents.iter().enumerate() {
            let next = self.children(cur).get(c).copied();
            cur = match next {
                Some(n) if matches!(self.nodes[n].kind, Kind::Dir { .. }) => n,
                Some(_) => {
                    return Err(Ext4WriteError::NotADirectory {
                        path: show(path),
                        parent: show(&parents[..=depth].join(&b'/')),
                    });
                }
                None if create => {
                    let meta = implicit_dir_meta(&self.options);
                    let p = parents[..=depth].join(&b'/');
                    let n = self.push(
                        Kind::Dir {
                            children: BTreeMap::new(),
                        },
                        meta,
                        &p,
                    );
                    if let Kind::Dir { children } = &mut self.nodes[cur].kind {
                        children.insert(c.to_vec(), n);
                    }
                    n
                }
                None => {
                    return Err(Ext4WriteError::NotADirectory {
                        path: show(path),
                        parent: show(&parents[..=depth].join(&b'/')),
                    });
                }
            };
        }
        Ok(cur)
    }

    /// Places a file's content (now, or queued for a parallel batch).
    fn store(
        &mut self,
        id: NodeId,
        size: u64,
        content: Content<'_>,
        path: String,
    ) -> Result<(), Ext4WriteError> {
        match content {
            Content::Path(src) if size <= BATCH_FILE_MAX => {
                self.pending_bytes += size;
                self.pending.push(Pending {
                    node: id,
                    src,
                    size,
                    path,
                });
                if self.pending_bytes >= BATCH_BYTES || self.pending.len() >= BATCH_FILES {
                    self.flush()?;
                }
                Ok(())
            }
            Content::Path(src) => {
                self.flush()?;
                let extents = self.sink.large_file(&src, size, &path)?;
                self.placed(id, extents);
                Ok(())
            }
            Content::Reader(r) => {
                self.flush()?;
                let extents = self.sink.reader(r, size, &path)?;
                self.placed(id, extents);
                Ok(())
            }
            Content::Bytes(b) => {
                if b.len() as u64 != size {
                    return Err(Ext4WriteError::SizeMismatch {
                        path,
                        expected: size,
                        actual: b.len() as u64,
                    });
                }
                self.flush()?;
                let extents = self.sink.bytes(b)?;
                self.placed(id, extents);
                Ok(())
            }
        }
    }

    fn placed(&mut self, id: NodeId, placed: Vec<FileExtent>) {
        if let Kind::File { extents, .. } = &mut self.nodes[id].kind {
            *extents = placed;
        }
    }

    /// Copies the queued `Content::Path` files.
    pub(crate) fn flush(&mut self) -> Result<(), Ext4WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let files: Vec<(PathBuf, u64, String)> = batch
            .iter()
            .map(|p| (p.src.clone(), p.size, p.path.clone()))
            .collect();
        let placed = self.sink.batch(&files)?;
        for (p, pl) in batch.iter().zip(placed) {
            self.placed(p.node, pl);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_components_reject_bad_paths() {
        assert!(components(b"a/b").is_ok());
        assert!(matches!(
            components(b"/a"),
            Err(Ext4WriteError::InvalidPath { .. })
        ));
        assert!(matches!(
            components(b"a//b"),
            Err(Ext4WriteError::InvalidPath { .. })
        ));
        assert!(matches!(
            components(b"a/../b"),
            Err(Ext4WriteError::InvalidPath { .. })
        ));
        let long = vec![b'x'; 256];
        assert!(matches!(
            components(&long),
            Err(Ext4WriteError::NameTooLong { .. })
        ));
        assert!(components(&long[..255]).is_ok());
    }
}
