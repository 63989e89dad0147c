//! The internal jbd2 journal: its size (mke2fs's
//! `ext2fs_default_journal_size`) and its v2 superblock. The journal is
//! clean (`s_start = 0`), so every other journal block is zero and stays a
//! hole in the output file.

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromZeros, IntoBytes};

use crate::format::{
    BLOCK_SIZE, JBD2_MAGIC, JBD2_MIN_JOURNAL_BLOCKS, JBD2_SUPERBLOCK_V2, JournalSuperBlock,
};

/// Journal blocks for a filesystem of `fs_blocks` blocks, as mke2fs picks
/// them (below 2048 blocks mke2fs makes none; we keep the kernel's minimum).
pub fn default_size(fs_blocks: u64) -> u64 {
    match fs_blocks {
        b if b < 32768 => JBD2_MIN_JOURNAL_BLOCKS, // < 128 MiB: 4 MiB
        b if b < 256 * 1024 => 4096,               // < 1 GiB: 16 MiB
        b if b < 512 * 1024 => 8192,               // < 2 GiB: 32 MiB
        b if b < 4096 * 1024 => 16384,             // < 16 GiB: 64 MiB
        b if b < 8192 * 1024 => 32768,             // < 32 GiB: 128 MiB
        b if b < 16384 * 1024 => 65536,            // < 64 GiB: 256 MiB
        b if b < 32768 * 1024 => 131072,           // < 128 GiB: 512 MiB
        _ => 262144,                               // 1 GiB
    }
}

/// The first journal block: a v2 superblock for a clean, empty journal of
/// `blocks` blocks belonging to the filesystem `uuid`.
pub fn superblock(blocks: u64, uuid: &[u8; 16]) -> Vec<u8> {
    let mut jsb = JournalSuperBlock::new_zeroed();
    jsb.h_magic = U32::new(JBD2_MAGIC);
    jsb.h_blocktype = U32::new(JBD2_SUPERBLOCK_V2);
    jsb.s_blocksize = U32::new(BLOCK_SIZE as u32);
    jsb.s_maxlen = U32::new(blocks as u32);
    jsb.s_first = U32::new(1); // block 0 is this superblock
    jsb.s_sequence = U32::new(1);
    jsb.s_nr_users = U32::new(1);
    jsb.s_uuid = *uuid;
    let mut b = vec![0u8; 1024];
    b[..size_of::<JournalSuperBlock>()].copy_from_slice(jsb.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_journal_size_follows_mke2fs_table() {
        assert_eq!(default_size(20_000), 1024);
        assert_eq!(default_size(100_000), 4096);
        assert_eq!(default_size(1 << 30), 262144);
    }
}
