//! `Ext4Writer::finish`: everything after the last entry. The write order is
//! the outline of the code:
//!
//! 1. copy the queued files;
//! 2. number inodes (breadth-first, names in byte order) and count links;
//! 3. derive UUID and hash seed from the content digest (unless given);
//! 4. build directory blocks and xattr layouts;
//! 5. size the image and place metadata after the data (directory, extent
//!    tree, symlink and xattr blocks, journal, inode tables, bitmaps);
//! 6. write those blocks, the inode tables and the bitmaps;
//! 7. group descriptors and superblock (primary and backups) last.
//!
//! Inode policy: `Auto` gives used inodes + headroom/16 KiB, spread over the
//! groups and rounded up to whole inode-table blocks; `Fixed` gives one inode
//! per 16 KiB like mke2fs (more if the content needs them). No blocks are
//! reserved for root, no resize inode (the image is resized offline with
//! `resize2fs` if at all), no orphan file, no quota.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::csum;
use crate::dir::{self, DirBlocks, DirChild};
use crate::error::{Ext4WriteError, io, show};
use crate::extent::{self, FileExtent};
use crate::format::*;
use crate::inode::{self, InodeSpec};
use crate::journal;
use crate::layout::{Allocator, gdt_blocks, has_super};
use crate::size::{SbInput, fmt_uuid};
use crate::writer::{Ext4Writer, Kind, LOST_FOUND, NodeId, ROOT};
use crate::xattr::{self, Placement};
use crate::{ImageSize, ImageSummary};

const BS: usize = BLOCK_SIZE as usize;

/// Per inode (by number), what `finish` writes.
pub(crate) struct Slot {
    pub(crate) node: NodeId,
    pub(crate) links: u32,
    /// Parent directory's inode (directories only).
    pub(crate) parent: u32,
    pub(crate) dir: Option<DirBlocks>,
    pub(crate) xattr: Placement,
}

/// Where the metadata of one inode went.
#[derive(Default, Clone)]
pub(crate) struct Placed {
    /// Directory blocks (logical 0..) or the slow-symlink block.
    pub(crate) extents: Vec<FileExtent>,
    pub(crate) tree: Vec<u64>,
    pub(crate) xattr_block: u64,
}

/// Everything `finish` placed for one candidate size.
pub(crate) struct Layout {
    pub(crate) groups: u64,
    pub(crate) ipg: u32,
    pub(crate) per_inode: Vec<Placed>,
    pub(crate) journal: Placed,
    pub(crate) journal_blocks: u64,
    pub(crate) itable: Vec<u64>,
    pub(crate) block_bitmap: Vec<u64>,
    pub(crate) inode_bitmap: Vec<u64>,
    /// First block past everything placed.
    pub(crate) end: u64,
    /// Metadata blocks placed (excluding superblock/GDT copies).
    pub(crate) meta_blocks: u64,
}

fn file_type(k: &Kind) -> (u8, u16) {
    match k {
        Kind::Dir { .. } => (ft::DIR, mode::S_IFDIR),
        Kind::File { .. } => (ft::REG_FILE, mode::S_IFREG),
        Kind::Symlink(_) => (ft::SYMLINK, mode::S_IFLNK),
        Kind::Char(..) => (ft::CHRDEV, mode::S_IFCHR),
        Kind::Block(..) => (ft::BLKDEV, mode::S_IFBLK),
        Kind::Fifo => (ft::FIFO, mode::S_IFIFO),
        Kind::Socket => (ft::SOCK, mode::S_IFSOCK),
    }
}

/// Buffers writes that follow each other into one `pwrite`.
struct SeqWriter<'a> {
    file: &'a File,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> SeqWriter<'a> {
    fn new(file: &'a File) -> Self {
        Self {
            file,
            start: 0,
            buf: Vec::new(),
        }
    }
    fn put(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if offset != self.start + self.buf.len() as u64 || self.buf.len() >= 16 << 20 {
            self.flush()?;
            self.start = offset;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.start)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Extents for `runs` laid end to end from file block 0.
pub(crate) fn runs_to_extents(runs: &[(u64, u64)]) -> Vec<FileExtent> {
    let mut out = Vec::new();
    let mut logical = 0;
    for &(p, n) in runs {
        extent::push(&mut out, logical, p, n);
        logical += n;
    }
    out
}

pub(crate) fn single_blocks(alloc: &mut Allocator, n: u64) -> Vec<u64> {
    alloc
        .runs(n)
        .into_iter()
        .flat_map(|(s, l)| s..s + l)
        .collect()
}

impl Ext4Writer {
    /// Lays out and writes all metadata; returns what was written.
    pub fn finish(mut self) -> Result<ImageSummary, Ext4WriteError> {
        // 1. Copy the queued files; wait for every data write.
        self.flush()?;
        for d in self.sink.drain()? {
            self.content_id.update(d);
        }

        // 2. Number inodes breadth-first and count links.
        let (slots, ino_of) = self.number();
        let last_ino = 9 + slots.len() as u32; // slot k ≥ 1 is inode 10 + k

        // 3. UUID and hash seed.
        let digest: [u8; 32] = self.content_id.clone().finalize().into();
        let derive = |what: &[u8]| -> [u8; 16] {
            let mut h = Sha256::new();
            h.update(digest);
            h.update(what);
            let d: [u8; 32] = h.finalize().into();
            d[..16].try_into().expect("16 bytes")
        };
        let uuid = self.options.uuid.unwrap_or_else(|| {
            let mut u = derive(b"uuid");
            u[6] = (u[6] & 0x0f) | 0x40; // RFC 4122 version 4 layout
            u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
            u
        });
        let seed_bytes = self
            .options
            .hash_seed
            .unwrap_or_else(|| derive(b"hash seed"));
        let hash_seed: [u32; 4] = std::array::from_fn(|i| {
            u32::from_le_bytes(seed_bytes[i * 4..i * 4 + 4].try_into().expect("4"))
        });
        let fs_seed = csum::fs_seed(&uuid);

        // 4. Directory blocks and xattr layouts.
        let mut slots = slots;
        for (k, slot) in slots.iter_mut().enumerate() {
            let ino = if k == 0 {
                ROOT_INO
            } else {
                FIRST_INO + k as u32 - 1
            };
            let node = &self.nodes[slot.node];
            let path = show(&node.path);
            let mut xs = Vec::with_capacity(node.meta.xattrs.len());
            for (name, value) in &node.meta.xattrs {
                xs.push(
                    xattr::to_disk(name, value).map_err(|e| Ext4WriteError::Xattr {
                        path: path.clone(),
                        name: show(name),
                        reason: e.to_string(),
                    })?,
                );
            }
            xattr::sort(&mut xs);
            slot.xattr = xattr::place(&xs).map_err(|e| Ext4WriteError::Xattr {
                path: path.clone(),
                name: "(all)".into(),
                reason: e.to_string(),
            })?;
            if let Kind::Dir { children } = &node.kind {
                let kids: Vec<DirChild<'_>> = children
                    .iter()
                    .map(|(name, &c)| DirChild {
                        name,
                        ino: ino_of[c],
                        file_type: file_type(&self.nodes[c].kind).0,
                    })
                    .collect();
                let parent = slot.parent;
                let min = if slot.node == LOST_FOUND { 4 } else { 1 };
                let iseed = csum::inode_seed(fs_seed, ino, 0);
                slot.dir = Some(
                    dir::build(ino, parent, &kids, min, &hash_seed, iseed).map_err(|e| {
                        Ext4WriteError::DirectoryTooLarge {
                            path: path.clone(),
                            leaves: e.leaves,
                        }
                    })?,
                );
            }
        }

        // 5. Size the image and place the metadata.
        let data_end = self.sink.alloc.next;
        let live_data: u64 = slots
            .iter()
            .map(|s| match &self.nodes[s.node].kind {
                Kind::File { extents, .. } => extents.iter().map(|e| e.len as u64).sum(),
                _ => 0,
            })
            .sum();
        let used_inodes = last_ino as u64;
        let (total, lay) = match self.options.size {
            ImageSize::Auto { headroom } => {
                self.auto_size(&slots, data_end, live_data, used_inodes, headroom, true)?
            }
            ImageSize::Fixed(n) => {
                let fit = self.fixed_size(&slots, n / BLOCK_SIZE, data_end, used_inodes);
                match fit {
                    Some(x) => x,
                    None => {
                        let needed = self
                            .auto_size(&slots, data_end, live_data, used_inodes, 0, false)
                            .map(|(t, _)| t * BLOCK_SIZE)
                            .unwrap_or(u64::MAX);
                        return Err(Ext4WriteError::TooSmall { needed, size: n });
                    }
                }
            }
        };
        let file_len = match self.options.size {
            ImageSize::Fixed(n) => n / BLOCK_SIZE * BLOCK_SIZE,
            ImageSize::Auto { .. } => total * BLOCK_SIZE,
        };

        // 6. Metadata blocks, inode tables, bitmaps.
        let file = &self.sink.file;
        let mut w = SeqWriter::new(file);
        let werr = || io("writing the image");
        let groups = lay.groups;
        let ipg = lay.ipg;
        let mut bitmap = vec![0u8; (groups * BLOCKS_PER_GROUP / 8) as usize];
        let set = |bm: &mut Vec<u8>, start: u64, n: u64| {
            for b in start..start + n {
                bm[(b / 8) as usize] |= 1 << (b % 8);
            }
        };
        let gdt = gdt_blocks(groups);
        for g in 0..groups {
            if has_super(g) {
                set(&mut bitmap, g * BLOCKS_PER_GROUP, 1 + gdt);
            }
        }
        let mut itable = vec![0u8; last_ino as usize * INODE_SIZE as usize];
        let sde = self.options.source_date_epoch.unwrap_or(0);
        let sde_ts = crate::entry::Timestamp { sec: sde, nsec: 0 };
        let mut used_dirs = vec![0u32; groups as usize];
        for (k, slot) in slots.iter().enumerate() {
            let ino = if k == 0 {
                ROOT_INO
            } else {
                FIRST_INO + k as u32 - 1
            };
            let pl = &lay.per_inode[k];
            let node = &self.nodes[slot.node];
            let iseed = csum::inode_seed(fs_seed, ino, 0);
            let (_, type_bits) = file_type(&node.kind);
            let mut flags = InodeFlags::empty();
            let mut i_block = [0u8; 60];
            let mut size = 0u64;
            let mut blocks = pl.tree.len() as u64;
            let mut data_extents: &[FileExtent] = &[];
            match &node.kind {
                Kind::Dir { .. } => {
                    let d = slot.dir.as_ref().expect("built");
                    used_dirs[((ino - 1) / ipg) as usize] += 1;
                    let mut logical = 0usize;
                    for e in &pl.extents {
                        let mut buf = Vec::with_capacity(e.len as usize * BS);
                        for b in &d.blocks[logical..logical + e.len as usize] {
                            buf.extend_from_slice(b);
                        }
                        w.put(e.phys * BLOCK_SIZE, &buf).map_err(werr())?;
                        logical += e.len as usize;
                    }
                    if d.htree {
                        flags |= InodeFlags::INDEX;
                    }
                    size = d.blocks.len() as u64 * BLOCK_SIZE;
                    data_extents = &pl.extents;
                }
                Kind::File { size: s, extents } => {
                    size = *s;
                    data_extents = extents;
                }
                Kind::Symlink(t) => {
                    size = t.len() as u64;
                    if t.len() < 60 {
                        i_block[..t.len()].copy_from_slice(t);
                    } else {
                        let mut b = vec![0u8; BS];
                        b[..t.len()].copy_from_slice(t);
                        w.put(pl.extents[0].phys * BLOCK_SIZE, &b).map_err(werr())?;
                        data_extents = &pl.extents;
                    }
                }
                Kind::Char(ma, mi) | Kind::Block(ma, mi) => i_block = inode::encode_dev(*ma, *mi),
                Kind::Fifo | Kind::Socket => {}
            }
            let has_extents = matches!(node.kind, Kind::Dir { .. } | Kind::File { .. })
                || !data_extents.is_empty();
            if has_extents {
                flags |= InodeFlags::EXTENTS;
                for e in data_extents {
                    set(&mut bitmap, e.phys, e.len as u64);
                    blocks += e.len as u64;
                }
                let tree = extent::build(data_extents, &pl.tree, iseed);
                for (p, b) in &tree.blocks {
                    w.put(p * BLOCK_SIZE, b).map_err(werr())?;
                    set(&mut bitmap, *p, 1);
                }
                i_block = tree.i_block;
            }
            let mut ibody = None;
            match &slot.xattr {
                Placement::None => {}
                Placement::Inode(area) => ibody = Some(area.as_slice()),
                Placement::Block(b) => {
                    let mut b = b.clone();
                    xattr::finish_block(&mut b, fs_seed, pl.xattr_block);
                    w.put(pl.xattr_block * BLOCK_SIZE, &b).map_err(werr())?;
                    set(&mut bitmap, pl.xattr_block, 1);
                    blocks += 1;
                }
            }
            let m = &node.meta;
            let links = slot.links.min(u16::MAX as u32) as u16;
            let spec = InodeSpec {
                mode: type_bits | m.mode,
                uid: m.uid,
                gid: m.gid,
                size,
                links,
                blocks,
                flags,
                i_block,
                file_acl: pl.xattr_block,
                atime: m.atime,
                mtime: m.mtime,
                ctime: m.ctime,
                ibody_xattr: ibody,
            };
            let raw = inode::encode(&spec, ino, fs_seed);
            let off = (ino - 1) as usize * INODE_SIZE as usize;
            itable[off..off + INODE_SIZE as usize].copy_from_slice(&raw);
        }
        // Journal: inode 8, its superblock in its first block.
        let journal_spec = if lay.journal_blocks > 0 {
            let iseed = csum::inode_seed(fs_seed, JOURNAL_INO, 0);
            for e in &lay.journal.extents {
                set(&mut bitmap, e.phys, e.len as u64);
            }
            let tree = extent::build(&lay.journal.extents, &lay.journal.tree, iseed);
            for (p, b) in &tree.blocks {
                w.put(p * BLOCK_SIZE, b).map_err(werr())?;
                set(&mut bitmap, *p, 1);
            }
            w.put(
                lay.journal.extents[0].phys * BLOCK_SIZE,
                &journal::superblock(lay.journal_blocks, &uuid),
            )
            .map_err(werr())?;
            let spec = InodeSpec {
                mode: mode::S_IFREG | 0o600,
                uid: 0,
                gid: 0,
                size: lay.journal_blocks * BLOCK_SIZE,
                links: 1,
                blocks: lay.journal_blocks + lay.journal.tree.len() as u64,
                flags: InodeFlags::EXTENTS,
                i_block: tree.i_block,
                file_acl: 0,
                atime: sde_ts,
                mtime: sde_ts,
                ctime: sde_ts,
                ibody_xattr: None,
            };
            Some(spec)
        } else {
            None
        };
        // Reserved inodes 1, 3..=10: empty but checksummed.
        for ino in 1..FIRST_INO {
            if ino == ROOT_INO {
                continue;
            }
            let spec = match (&journal_spec, ino) {
                (Some(s), JOURNAL_INO) => s.clone(),
                _ => InodeSpec {
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    links: 0,
                    blocks: 0,
                    flags: InodeFlags::empty(),
                    i_block: [0; 60],
                    file_acl: 0,
                    atime: Default::default(),
                    mtime: Default::default(),
                    ctime: Default::default(),
                    ibody_xattr: None,
                },
            };
            let raw = inode::encode(&spec, ino, fs_seed);
            let off = (ino - 1) as usize * INODE_SIZE as usize;
            itable[off..off + INODE_SIZE as usize].copy_from_slice(&raw);
        }
        let journal_i_block = journal_spec.as_ref().map(|s| s.i_block);

        // Inode tables: only the used part of each is written (the rest
        // stays a hole, i.e. zero, as INODE_ZEROED promises).
        let itb = (ipg / INODES_PER_BLOCK) as u64;
        for g in 0..groups {
            set(&mut bitmap, lay.itable[g as usize], itb);
            let first = g as usize * ipg as usize * INODE_SIZE as usize;
            if first < itable.len() {
                let end = (first + ipg as usize * INODE_SIZE as usize).min(itable.len());
                w.put(lay.itable[g as usize] * BLOCK_SIZE, &itable[first..end])
                    .map_err(werr())?;
            }
        }
        for g in 0..groups as usize {
            set(&mut bitmap, lay.block_bitmap[g], 1);
            set(&mut bitmap, lay.inode_bitmap[g], 1);
        }
        // Free counts before the last group's padding bits are set.
        let mut free_per_group = Vec::with_capacity(groups as usize);
        for g in 0..groups {
            let blocks_in = (total - g * BLOCKS_PER_GROUP).min(BLOCKS_PER_GROUP);
            let slice = &bitmap
                [(g * BLOCKS_PER_GROUP / 8) as usize..((g + 1) * BLOCKS_PER_GROUP / 8) as usize];
            let used: u64 = slice.iter().map(|b| b.count_ones() as u64).sum();
            free_per_group.push(blocks_in - used);
        }
        set(&mut bitmap, total, groups * BLOCKS_PER_GROUP - total);
        let mut block_csums = Vec::with_capacity(groups as usize);
        for g in 0..groups as usize {
            let slice = &bitmap[g * BS..(g + 1) * BS];
            block_csums.push(csum::bitmap(fs_seed, slice));
            w.put(lay.block_bitmap[g] * BLOCK_SIZE, slice)
                .map_err(werr())?;
        }
        let mut inode_csums = Vec::with_capacity(groups as usize);
        let mut used_in_group = Vec::with_capacity(groups as usize);
        for g in 0..groups {
            let used = (last_ino as u64)
                .saturating_sub(g * ipg as u64)
                .min(ipg as u64) as u32;
            used_in_group.push(used);
            let mut ib = vec![0u8; BS];
            for i in (0..used).chain(ipg..MAX_INODES_PER_GROUP) {
                ib[(i / 8) as usize] |= 1 << (i % 8);
            }
            inode_csums.push(csum::bitmap(fs_seed, &ib[..(ipg / 8) as usize]));
            w.put(lay.inode_bitmap[g as usize] * BLOCK_SIZE, &ib)
                .map_err(werr())?;
        }
        w.flush().map_err(werr())?;

        // 7. Group descriptors, then superblocks.
        let mut gdt_bytes = vec![0u8; (gdt * BLOCK_SIZE) as usize];
        for g in 0..groups as usize {
            let used = used_in_group[g];
            let d = GroupDesc {
                bg_block_bitmap_lo: (lay.block_bitmap[g] as u32).into(),
                bg_block_bitmap_hi: ((lay.block_bitmap[g] >> 32) as u32).into(),
                bg_inode_bitmap_lo: (lay.inode_bitmap[g] as u32).into(),
                bg_inode_bitmap_hi: ((lay.inode_bitmap[g] >> 32) as u32).into(),
                bg_inode_table_lo: (lay.itable[g] as u32).into(),
                bg_inode_table_hi: ((lay.itable[g] >> 32) as u32).into(),
                bg_free_blocks_count_lo: (free_per_group[g] as u16).into(),
                bg_free_blocks_count_hi: ((free_per_group[g] >> 16) as u16).into(),
                bg_free_inodes_count_lo: ((ipg - used) as u16).into(),
                bg_free_inodes_count_hi: (((ipg - used) >> 16) as u16).into(),
                bg_used_dirs_count_lo: (used_dirs[g] as u16).into(),
                bg_used_dirs_count_hi: ((used_dirs[g] >> 16) as u16).into(),
                bg_itable_unused_lo: ((ipg - used) as u16).into(),
                bg_itable_unused_hi: (((ipg - used) >> 16) as u16).into(),
                bg_flags: BgFlags::INODE_ZEROED.bits().into(),
                bg_block_bitmap_csum_lo: (block_csums[g] as u16).into(),
                bg_block_bitmap_csum_hi: ((block_csums[g] >> 16) as u16).into(),
                bg_inode_bitmap_csum_lo: (inode_csums[g] as u16).into(),
                bg_inode_bitmap_csum_hi: ((inode_csums[g] >> 16) as u16).into(),
                ..Default::default()
            };
            let off = g * GROUP_DESC_SIZE as usize;
            let slot = &mut gdt_bytes[off..off + GROUP_DESC_SIZE as usize];
            slot.copy_from_slice(zerocopy::IntoBytes::as_bytes(&d));
            let c = csum::group_desc(fs_seed, g as u32, slot);
            slot[0x1E..0x20].copy_from_slice(&c.to_le_bytes());
        }
        let free_blocks: u64 = free_per_group.iter().sum();
        let inodes = groups * ipg as u64;
        let free_inodes = inodes - last_ino as u64;
        let sb = self.superblock(SbInput {
            total,
            free_blocks,
            inodes,
            free_inodes,
            ipg,
            uuid,
            hash_seed,
            journal_i_block,
            journal_blocks: lay.journal_blocks,
        });
        for g in 0..groups {
            if !has_super(g) {
                continue;
            }
            let mut s = sb.clone();
            s.s_block_group_nr = (g as u16).into();
            let mut bytes = zerocopy::IntoBytes::as_bytes(&s).to_vec();
            let c = csum::superblock(&bytes);
            bytes[SUPERBLOCK_CSUM_OFFSET..].copy_from_slice(&c.to_le_bytes());
            let base = g * BLOCKS_PER_GROUP * BLOCK_SIZE;
            let sb_off = if g == 0 { SUPERBLOCK_OFFSET } else { base };
            file.write_all_at(&bytes, sb_off).map_err(werr())?;
            file.write_all_at(&gdt_bytes, base + BLOCK_SIZE)
                .map_err(werr())?;
        }
        file.set_len(file_len).map_err(io("sizing the image"))?;
        file.sync_all().map_err(io("syncing the image"))?;

        Ok(ImageSummary {
            size_bytes: file_len,
            block_size: BLOCK_SIZE as u32,
            blocks: total,
            free_blocks,
            inodes: inodes as u32,
            free_inodes: free_inodes as u32,
            uuid: fmt_uuid(&uuid),
            groups: groups as u32,
            journal_blocks: lay.journal_blocks,
            hash_seed: fmt_uuid(&seed_bytes),
        })
    }

    /// Inode numbers: root 2, lost+found 11, then breadth-first from 12
    /// with names in byte order. Returns the slots (index 0 = root, k ≥ 1 =
    /// inode 10 + k) and each node's inode number (0: not in the tree).
    fn number(&self) -> (Vec<Slot>, Vec<u32>) {
        let mut ino_of = vec![0u32; self.nodes.len()];
        let mut links = vec![0u32; self.nodes.len()];
        let mut order: Vec<NodeId> = vec![ROOT, LOST_FOUND];
        ino_of[ROOT] = ROOT_INO;
        ino_of[LOST_FOUND] = LOST_FOUND_INO;
        let mut parent = vec![ROOT_INO; self.nodes.len()];
        let mut next = FIRST_INO + 1;
        let mut q = 0;
        let mut dirs = vec![ROOT];
        while q < dirs.len() {
            let d = dirs[q];
            q += 1;
            let Kind::Dir { children } = &self.nodes[d].kind else {
                unreachable!()
            };
            let mut subdirs = 0u32;
            for &c in children.values() {
                let is_dir = matches!(self.nodes[c].kind, Kind::Dir { .. });
                if is_dir {
                    subdirs += 1;
                    dirs.push(c);
                    parent[c] = ino_of[d];
                } else {
                    links[c] += 1;
                }
                if ino_of[c] == 0 {
                    ino_of[c] = next;
                    next += 1;
                    order.push(c);
                }
            }
            let n = 2 + subdirs;
            links[d] = if n > EXT4_LINK_MAX { 1 } else { n };
        }
        // order: root, lost+found, then 12.. ; slot k ≥ 1 is inode 10 + k.
        let slots = order
            .into_iter()
            .map(|node| Slot {
                node,
                links: links[node],
                parent: parent[node],
                dir: None,
                xattr: Placement::None,
            })
            .collect();
        (slots, ino_of)
    }
}
