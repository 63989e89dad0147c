//! Extent trees: up to four extents live in the inode's `i_block`; more
//! get leaf blocks (340 extents each) and, above four leaves, index levels,
//! packed full so e2fsck finds no tree it could make shallower or narrower.

use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::{U16, U32};

use crate::csum;
use crate::format::{
    BLOCK_SIZE, EXT_INIT_MAX_LEN, EXTENT_MAGIC, EXTENTS_IN_INODE, EXTENTS_PER_BLOCK, Extent,
    ExtentHeader, ExtentIdx,
};

/// One mapped run: `len` blocks of the file from `logical` at `phys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileExtent {
    /// First file block.
    pub logical: u32,
    /// Number of blocks, `1..=32768`.
    pub len: u16,
    /// First disk block.
    pub phys: u64,
}

/// The inode's `i_block` and the tree blocks to write (disk block, bytes).
pub struct ExtentTree {
    /// Root of the tree as stored in the inode.
    pub i_block: [u8; 60],
    /// Leaf and index blocks.
    pub blocks: Vec<(u64, Vec<u8>)>,
}

/// How many tree blocks `n` extents need.
pub fn tree_blocks_needed(n: usize) -> u64 {
    let mut total = 0;
    let mut level = n;
    while level > EXTENTS_IN_INODE {
        level = level.div_ceil(EXTENTS_PER_BLOCK);
        total += level as u64;
    }
    total
}

fn header(entries: usize, max: usize, depth: u16) -> ExtentHeader {
    ExtentHeader {
        eh_magic: U16::new(EXTENT_MAGIC),
        eh_entries: U16::new(entries as u16),
        eh_max: U16::new(max as u16),
        eh_depth: U16::new(depth),
        eh_generation: U32::new(0),
    }
}

fn extent_bytes(e: &FileExtent) -> [u8; 12] {
    let x = Extent {
        ee_block: U32::new(e.logical),
        ee_len: U16::new(e.len),
        ee_start_hi: U16::new((e.phys >> 32) as u16),
        ee_start_lo: U32::new(e.phys as u32),
    };
    let mut out = [0u8; 12];
    out.copy_from_slice(x.as_bytes());
    out
}

fn index_bytes(logical: u32, phys: u64) -> [u8; 12] {
    let x = ExtentIdx {
        ei_block: U32::new(logical),
        ei_leaf_lo: U32::new(phys as u32),
        ei_leaf_hi: U16::new((phys >> 32) as u16),
        ei_unused: U16::new(0),
    };
    let mut out = [0u8; 12];
    out.copy_from_slice(x.as_bytes());
    out
}

/// Builds the tree for `extents` (sorted by `logical`), placing tree blocks
/// at `tree_blocks` (exactly [`tree_blocks_needed`] of them, leaves first).
pub fn build(extents: &[FileExtent], tree_blocks: &[u64], inode_seed: u32) -> ExtentTree {
    assert_eq!(tree_blocks.len() as u64, tree_blocks_needed(extents.len()));
    let mut i_block = [0u8; 60];
    let mut blocks = Vec::new();
    // Entries of the current level: (first logical block, 12-byte entry).
    let mut level: Vec<(u32, [u8; 12])> = extents
        .iter()
        .map(|e| (e.logical, extent_bytes(e)))
        .collect();
    let mut depth: u16 = 0;
    let mut next_block = tree_blocks.iter();
    while level.len() > EXTENTS_IN_INODE {
        let mut upper = Vec::with_capacity(level.len().div_ceil(EXTENTS_PER_BLOCK));
        for chunk in level.chunks(EXTENTS_PER_BLOCK) {
            let phys = *next_block.next().expect("counted tree blocks");
            let mut b = vec![0u8; BLOCK_SIZE as usize];
            b[..12].copy_from_slice(header(chunk.len(), EXTENTS_PER_BLOCK, depth).as_bytes());
            for (i, (_, e)) in chunk.iter().enumerate() {
                b[12 + i * 12..24 + i * 12].copy_from_slice(e);
            }
            csum::set_extent_block(inode_seed, &mut b, EXTENTS_PER_BLOCK);
            upper.push((chunk[0].0, index_bytes(chunk[0].0, phys)));
            blocks.push((phys, b));
        }
        level = upper;
        depth += 1;
    }
    i_block[..12].copy_from_slice(header(level.len(), EXTENTS_IN_INODE, depth).as_bytes());
    for (i, (_, e)) in level.iter().enumerate() {
        i_block[12 + i * 12..24 + i * 12].copy_from_slice(e);
    }
    ExtentTree { i_block, blocks }
}

/// Appends `phys..phys+n` at file block `logical` to `out`, merging with the
/// last extent when contiguous and splitting at the extent length limit.
pub fn push(out: &mut Vec<FileExtent>, mut logical: u64, mut phys: u64, mut n: u64) {
    while n > 0 {
        if let Some(last) = out.last_mut() {
            let end_l = last.logical as u64 + last.len as u64;
            let end_p = last.phys + last.len as u64;
            if end_l == logical && end_p == phys && (last.len as u64) < EXT_INIT_MAX_LEN {
                let take = n.min(EXT_INIT_MAX_LEN - last.len as u64);
                last.len += take as u16;
                logical += take;
                phys += take;
                n -= take;
                continue;
            }
        }
        let take = n.min(EXT_INIT_MAX_LEN);
        out.push(FileExtent {
            logical: logical as u32,
            len: take as u16, // at most 32768 (EXT_INIT_MAX_LEN)
            phys,
        });
        logical += take;
        phys += take;
        n -= take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_tree_depth_grows_with_extent_count() {
        assert_eq!(tree_blocks_needed(4), 0);
        assert_eq!(tree_blocks_needed(5), 1);
        assert_eq!(tree_blocks_needed(340 * 4), 4);
        assert_eq!(tree_blocks_needed(340 * 4 + 1), 5 + 1);
    }

    #[test]
    fn test_push_merges_contiguous_runs() {
        let mut v = Vec::new();
        push(&mut v, 0, 100, 10);
        push(&mut v, 10, 110, 5);
        push(&mut v, 20, 115, 1);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len, 15);
        push(&mut v, 21, 116, 40000);
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].len as u64 + v[2].len as u64, 40001);
    }
}
