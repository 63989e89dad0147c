//! Directory blocks: a single linear block when the entries fit, otherwise
//! a hashed (htree, `dir_index`) directory: a root block with `.`/`..` and
//! the dx root, one level of interior nodes when the root's 507 slots do
//! not suffice (up to 507 × 510 leaves, about 1 GiB of names), and leaf
//! blocks filled in (hash, minor hash) order. Every leaf ends with the
//! metadata_csum dirent tail; every dx block with a `dx_tail`.
//!
//! Limits: no third htree level (that needs `large_dir`); larger
//! directories are an error.

use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::{U16, U32};

use crate::csum;
use crate::format::{
    BLOCK_SIZE, DIR_TAIL_SIZE, DX_HASH_HALF_MD4, DX_NODE_ENTRIES_OFFSET, DX_NODE_LIMIT,
    DX_ROOT_ENTRIES_OFFSET, DX_ROOT_LIMIT, DirEntryHeader, DirEntryTail, DxRootInfo, ft,
};

const BS: usize = BLOCK_SIZE as usize;
/// Usable bytes of a leaf block (before the checksum tail).
const LEAF_SPACE: usize = BS - DIR_TAIL_SIZE;

/// One name in a directory.
#[derive(Debug, Clone)]
pub struct DirChild<'a> {
    /// Entry name (1..=255 bytes, no `/` or NUL).
    pub name: &'a [u8],
    /// Inode number.
    pub ino: u32,
    /// `EXT4_FT_*` of the target.
    pub file_type: u8,
}

/// A directory's blocks in logical order and whether it is hashed.
pub struct DirBlocks {
    /// Block contents, each [`BLOCK_SIZE`] bytes, checksummed.
    pub blocks: Vec<Vec<u8>>,
    /// Set `EXT4_INDEX_FL`.
    pub htree: bool,
}

/// Why a directory cannot be written.
#[derive(Debug)]
pub struct DirTooLarge {
    /// Leaf blocks it would need.
    pub leaves: usize,
}

/// A name as written into a leaf: (name, inode, file type).
type Named<'a> = (&'a [u8], u32, u8);

fn rec_len(name_len: usize) -> usize {
    (8 + name_len).div_ceil(4) * 4
}

fn put_entry(b: &mut [u8], off: usize, ino: u32, rec: usize, name: &[u8], file_type: u8) {
    let h = DirEntryHeader {
        inode: U32::new(ino),
        rec_len: U16::new(rec as u16),
        name_len: name.len() as u8,
        file_type,
    };
    b[off..off + 8].copy_from_slice(h.as_bytes());
    b[off + 8..off + 8 + name.len()].copy_from_slice(name);
}

fn put_tail(b: &mut [u8], inode_seed: u32) {
    let t = DirEntryTail {
        det_rec_len: U16::new(DIR_TAIL_SIZE as u16),
        det_reserved_ft: ft::DIR_CSUM,
        ..Default::default()
    };
    b[LEAF_SPACE..].copy_from_slice(t.as_bytes());
    csum::set_dir_leaf(inode_seed, b);
}

/// Writes `entries` into one leaf block; the last entry's `rec_len` runs to
/// the tail. An empty list gives an empty-slot entry (inode 0).
fn leaf_block(entries: &[Named<'_>], start: usize, mut b: Vec<u8>, seed: u32) -> Vec<u8> {
    let mut off = start;
    if entries.is_empty() {
        put_entry(&mut b, off, 0, LEAF_SPACE - off, b"", 0);
    }
    for (i, &(name, ino, t)) in entries.iter().enumerate() {
        let rec = if i + 1 == entries.len() {
            LEAF_SPACE - off
        } else {
            rec_len(name.len())
        };
        put_entry(&mut b, off, ino, rec, name, t);
        off += rec;
    }
    put_tail(&mut b, seed);
    b
}

/// Builds the blocks of directory `ino` (children sorted by name), at least
/// `min_blocks` long (lost+found is preallocated like mke2fs does).
pub fn build(
    ino: u32,
    parent: u32,
    children: &[DirChild<'_>],
    min_blocks: usize,
    hash_seed: &[u32; 4],
    inode_seed: u32,
) -> Result<DirBlocks, DirTooLarge> {
    let need: usize = 24
        + children
            .iter()
            .map(|c| rec_len(c.name.len()))
            .sum::<usize>();
    if need <= LEAF_SPACE {
        let mut entries: Vec<Named<'_>> = vec![(b".", ino, ft::DIR), (b"..", parent, ft::DIR)];
        entries.extend(children.iter().map(|c| (c.name, c.ino, c.file_type)));
        let mut blocks = vec![leaf_block(&entries, 0, vec![0u8; BS], inode_seed)];
        while blocks.len() < min_blocks {
            blocks.push(leaf_block(&[], 0, vec![0u8; BS], inode_seed));
        }
        return Ok(DirBlocks {
            blocks,
            htree: false,
        });
    }

    // Hash order; ties by minor hash, then name, so the layout is total.
    let mut hashed: Vec<(u32, u32, &DirChild<'_>)> = children
        .iter()
        .map(|c| {
            let (h, m) = csum::dx_hash_half_md4(c.name, hash_seed);
            (h, m, c)
        })
        .collect();
    hashed.sort_by(|a, b| (a.0, a.1, a.2.name).cmp(&(b.0, b.1, b.2.name)));

    // Pack leaves: (dx hash of the first entry, entries).
    let mut leaves: Vec<(u32, Vec<Named<'_>>)> = Vec::new();
    let mut used = LEAF_SPACE; // forces a first leaf
    let mut prev_hash: Option<u32> = None;
    for &(h, _, c) in &hashed {
        let r = rec_len(c.name.len());
        if used + r > LEAF_SPACE {
            // A hash continuing from the previous leaf gets the collision bit.
            let dx = if prev_hash == Some(h) { h | 1 } else { h };
            leaves.push((dx, Vec::new()));
            used = 0;
        }
        leaves
            .last_mut()
            .expect("leaf")
            .1
            .push((c.name, c.ino, c.file_type));
        used += r;
        prev_hash = Some(h);
    }

    let n_leaves = leaves.len();
    let levels: u8 = if n_leaves <= DX_ROOT_LIMIT { 0 } else { 1 };
    let n_nodes = if levels == 0 {
        0
    } else {
        n_leaves.div_ceil(DX_NODE_LIMIT)
    };
    if n_nodes > DX_ROOT_LIMIT {
        return Err(DirTooLarge { leaves: n_leaves });
    }
    let first_leaf = 1 + n_nodes;

    let mut blocks = Vec::with_capacity(first_leaf + n_leaves);
    // Root: ".", ".." (covering the rest of the block), dx_root_info, entries.
    let mut root = vec![0u8; BS];
    put_entry(&mut root, 0, ino, 12, b".", ft::DIR);
    put_entry(&mut root, 12, parent, BS - 12, b"..", ft::DIR);
    let info = DxRootInfo {
        hash_version: DX_HASH_HALF_MD4,
        info_length: 8,
        indirect_levels: levels,
        ..Default::default()
    };
    root[24..32].copy_from_slice(info.as_bytes());
    // Root entries: (hash, logical block).
    let root_entries: Vec<(u32, u32)> = if levels == 0 {
        leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (l.0, (first_leaf + i) as u32))
            .collect()
    } else {
        (0..n_nodes)
            .map(|n| (leaves[n * DX_NODE_LIMIT].0, (1 + n) as u32))
            .collect()
    };
    put_dx(
        &mut root,
        DX_ROOT_ENTRIES_OFFSET,
        DX_ROOT_LIMIT,
        &root_entries,
    );
    csum::set_dx_node(inode_seed, &mut root, DX_ROOT_ENTRIES_OFFSET);
    blocks.push(root);

    for n in 0..n_nodes {
        let mut b = vec![0u8; BS];
        // An empty dirent spanning the block hides the node from readers
        // that do not know htree.
        put_entry(&mut b, 0, 0, BS, b"", 0);
        let lo = n * DX_NODE_LIMIT;
        let hi = (lo + DX_NODE_LIMIT).min(n_leaves);
        let entries: Vec<(u32, u32)> = (lo..hi)
            .map(|i| (leaves[i].0, (first_leaf + i) as u32))
            .collect();
        put_dx(&mut b, DX_NODE_ENTRIES_OFFSET, DX_NODE_LIMIT, &entries);
        csum::set_dx_node(inode_seed, &mut b, DX_NODE_ENTRIES_OFFSET);
        blocks.push(b);
    }
    for (_, entries) in &leaves {
        blocks.push(leaf_block(entries, 0, vec![0u8; BS], inode_seed));
    }
    Ok(DirBlocks {
        blocks,
        htree: true,
    })
}

/// Writes `dx_countlimit` and the dx entries; entry 0's hash slot is the
/// count/limit pair.
fn put_dx(b: &mut [u8], off: usize, limit: usize, entries: &[(u32, u32)]) {
    b[off..off + 2].copy_from_slice(&(limit as u16).to_le_bytes());
    b[off + 2..off + 4].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (i, &(hash, block)) in entries.iter().enumerate() {
        let e = off + i * 8;
        if i > 0 {
            b[e..e + 4].copy_from_slice(&hash.to_le_bytes());
        }
        b[e + 4..e + 8].copy_from_slice(&block.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_small_directory_is_one_linear_block() {
        let c = [DirChild {
            name: b"a",
            ino: 12,
            file_type: ft::REG_FILE,
        }];
        let d = build(2, 2, &c, 1, &[1, 2, 3, 4], 0).expect("fits");
        assert!(!d.htree);
        assert_eq!(d.blocks.len(), 1);
    }

    #[test]
    fn test_htree_splits_at_block_boundary() {
        let names: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("file-{i:05}").into_bytes())
            .collect();
        let c: Vec<DirChild<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirChild {
                name: n,
                ino: 12 + i as u32,
                file_type: ft::REG_FILE,
            })
            .collect();
        let d = build(2, 2, &c, 1, &[1, 2, 3, 4], 0).expect("fits");
        assert!(d.htree);
        // 3000 × 20-byte entries need 15 leaves of 4084 bytes, plus the root.
        assert_eq!(d.blocks.len(), 1 + 3000usize.div_ceil(LEAF_SPACE / 20));
    }
}
