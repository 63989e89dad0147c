//! Sizing and metadata placement for `finish`: for a candidate block count,
//! place every metadata block after the data (same sequential allocator),
//! then check the result fits. `Auto` grows the candidate until the content
//! plus the requested free space fits; `Fixed` tries exactly one size.
//! Also fills in the superblock.

use zerocopy::FromZeros;
use zerocopy::byteorder::little_endian::{U16, U32, U64};

use crate::error::Ext4WriteError;
use crate::extent::{FileExtent, tree_blocks_needed};
use crate::finish::{Layout, Placed, Slot, runs_to_extents, single_blocks};
use crate::format::*;
use crate::journal;
use crate::layout::{Allocator, gdt_blocks, has_super};
use crate::writer::{Ext4Writer, Kind};

/// Inputs for the superblock that `finish` computed.
pub(crate) struct SbInput {
    pub total: u64,
    pub free_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
    pub ipg: u32,
    pub uuid: [u8; 16],
    pub hash_seed: [u32; 4],
    pub journal_i_block: Option<[u8; 60]>,
    pub journal_blocks: u64,
}

/// Inodes a group gets for `want` inodes over `groups` groups: whole
/// inode-table blocks, at least one block.
fn ipg_for(want: u64, groups: u64) -> u64 {
    let per = want.div_ceil(groups).max(INODES_PER_BLOCK as u64);
    per.div_ceil(INODES_PER_BLOCK as u64) * INODES_PER_BLOCK as u64
}

/// Smallest block count of a partial last group: room for its backup
/// superblock and GDT (if it has them) plus a little data.
fn last_group_ok(total: u64) -> Result<(), u64> {
    let groups = total.div_ceil(BLOCKS_PER_GROUP);
    let last = groups - 1;
    let r = total - last * BLOCKS_PER_GROUP;
    let min = if has_super(last) {
        1 + gdt_blocks(groups)
    } else {
        0
    } + 16;
    if r < min {
        Err(last * BLOCKS_PER_GROUP + min)
    } else {
        Ok(())
    }
}

/// Blocks a fixed size can use: a last group too small to be worth it is
/// left out (like mke2fs), the file keeps its length.
pub(crate) fn usable_blocks(fixed: u64) -> u64 {
    if fixed == 0 {
        return 0;
    }
    match last_group_ok(fixed) {
        Ok(()) => fixed,
        Err(_) => (fixed.div_ceil(BLOCKS_PER_GROUP) - 1) * BLOCKS_PER_GROUP,
    }
}

/// Superblock + GDT copies in the first `groups` groups.
fn backup_blocks(groups: u64) -> u64 {
    (0..groups).filter(|&g| has_super(g)).count() as u64 * (1 + gdt_blocks(groups))
}

impl Ext4Writer {
    /// Places all metadata after `data_end` for the given geometry.
    fn plan(
        &self,
        slots: &[Slot],
        data_end: u64,
        groups: u64,
        ipg: u32,
        journal_blocks: u64,
    ) -> Layout {
        let mut a = Allocator {
            next: data_end,
            region: 1 + self.gdt_reserve,
        };
        let mut meta = 0u64;
        let mut per_inode = Vec::with_capacity(slots.len());
        for slot in slots {
            let mut p = Placed::default();
            match &self.nodes[slot.node].kind {
                Kind::Dir { .. } => {
                    let n = slot.dir.as_ref().map_or(0, |d| d.blocks.len() as u64);
                    p.extents = runs_to_extents(&a.runs(n));
                    meta += n;
                    let t = tree_blocks_needed(p.extents.len());
                    p.tree = single_blocks(&mut a, t);
                    meta += t;
                }
                Kind::File { extents, .. } => {
                    let t = tree_blocks_needed(extents.len());
                    p.tree = single_blocks(&mut a, t);
                    meta += t;
                }
                Kind::Symlink(t) if t.len() >= 60 => {
                    let (b, _) = a.run(1);
                    p.extents = vec![FileExtent {
                        logical: 0,
                        len: 1,
                        phys: b,
                    }];
                    meta += 1;
                }
                _ => {}
            }
            if matches!(slot.xattr, crate::xattr::Placement::Block(_)) {
                p.xattr_block = a.run(1).0;
                meta += 1;
            }
            per_inode.push(p);
        }
        let mut journal = Placed::default();
        if journal_blocks > 0 {
            journal.extents = runs_to_extents(&a.runs(journal_blocks));
            let t = tree_blocks_needed(journal.extents.len());
            journal.tree = single_blocks(&mut a, t);
            meta += journal_blocks + t;
        }
        let itb = (ipg / INODES_PER_BLOCK) as u64;
        let itable: Vec<u64> = (0..groups).map(|_| a.contiguous(itb)).collect();
        let block_bitmap = single_blocks(&mut a, groups);
        let inode_bitmap = single_blocks(&mut a, groups);
        meta += groups * (itb + 2);
        Layout {
            groups,
            ipg,
            per_inode,
            journal,
            journal_blocks,
            itable,
            block_bitmap,
            inode_bitmap,
            end: a.next,
            meta_blocks: meta,
        }
    }

    /// The smallest block count holding everything plus `headroom` bytes
    /// free, and its layout.
    pub(crate) fn auto_size(
        &self,
        slots: &[Slot],
        data_end: u64,
        live_data: u64,
        used_inodes: u64,
        headroom: u64,
        check_reserve: bool,
    ) -> Result<(u64, Layout), Ext4WriteError> {
        let hb = headroom.div_ceil(BLOCK_SIZE);
        let want_inodes = used_inodes + headroom / (16 << 10);
        let mut total = (data_end + hb + 64).max(2048);
        loop {
            let groups = total.div_ceil(BLOCKS_PER_GROUP);
            if check_reserve && gdt_blocks(groups) > self.gdt_reserve {
                return Err(Ext4WriteError::TooLargeForAuto {
                    needed: total * BLOCK_SIZE,
                    max: self.gdt_reserve * GROUPS_PER_DESC_BLOCK * BLOCKS_PER_GROUP * BLOCK_SIZE,
                });
            }
            if let Err(min) = last_group_ok(total) {
                total = min;
                continue;
            }
            let ipg = ipg_for(want_inodes, groups);
            if ipg > MAX_INODES_PER_GROUP as u64 {
                total = want_inodes.div_ceil(MAX_INODES_PER_GROUP as u64) * BLOCKS_PER_GROUP;
                continue;
            }
            let j = if self.options.journal {
                journal::default_size(total)
            } else {
                0
            };
            let lay = self.plan(slots, data_end, groups, ipg as u32, j);
            let used = live_data + lay.meta_blocks + backup_blocks(groups);
            if lay.end <= total && total >= used + hb {
                return Ok((total, lay));
            }
            total = (total + 1).max(lay.end).max(used + hb);
        }
    }

    /// The layout for exactly `fixed` blocks, if the content fits.
    pub(crate) fn fixed_size(
        &self,
        slots: &[Slot],
        fixed: u64,
        data_end: u64,
        used_inodes: u64,
    ) -> Option<(u64, Layout)> {
        let total = usable_blocks(fixed);
        if total < 64 {
            return None;
        }
        let groups = total.div_ceil(BLOCKS_PER_GROUP);
        if gdt_blocks(groups) > self.gdt_reserve {
            return None;
        }
        // One inode per 16 KiB, like mke2fs, or what the content needs.
        let want = (total * BLOCK_SIZE / (16 << 10)).max(used_inodes);
        let ipg = ipg_for(want, groups).min(MAX_INODES_PER_GROUP as u64);
        if ipg * groups < used_inodes {
            return None;
        }
        let j = if self.options.journal {
            journal::default_size(total)
        } else {
            0
        };
        let lay = self.plan(slots, data_end, groups, ipg as u32, j);
        (lay.end <= total).then_some((total, lay))
    }

    /// The primary superblock (checksum and group number set per copy).
    pub(crate) fn superblock(&self, i: SbInput) -> SuperBlock {
        let mut sb = SuperBlock::new_zeroed();
        let t = self.options.source_date_epoch.unwrap_or(0).max(0) as u64;
        let (t_lo, t_hi) = (U32::new(t as u32), (t >> 32) as u8);
        sb.s_inodes_count = U32::new(i.inodes as u32);
        sb.s_blocks_count_lo = U32::new(i.total as u32);
        sb.s_blocks_count_hi = U32::new((i.total >> 32) as u32);
        sb.s_free_blocks_count_lo = U32::new(i.free_blocks as u32);
        sb.s_free_blocks_count_hi = U32::new((i.free_blocks >> 32) as u32);
        sb.s_free_inodes_count = U32::new(i.free_inodes as u32);
        sb.s_first_data_block = U32::new(0); // 4 KiB blocks: the superblock sits inside block 0
        sb.s_log_block_size = U32::new(LOG_BLOCK_SIZE);
        sb.s_log_cluster_size = U32::new(LOG_BLOCK_SIZE);
        sb.s_blocks_per_group = U32::new(BLOCKS_PER_GROUP as u32);
        sb.s_clusters_per_group = U32::new(BLOCKS_PER_GROUP as u32);
        sb.s_inodes_per_group = U32::new(i.ipg);
        // s_mtime (last mount) stays 0: the image was never mounted.
        sb.s_wtime = t_lo;
        sb.s_wtime_hi = t_hi;
        sb.s_mkfs_time = t_lo;
        sb.s_mkfs_time_hi = t_hi;
        sb.s_lastcheck = t_lo;
        sb.s_lastcheck_hi = t_hi;
        sb.s_max_mnt_count = U16::new(0xFFFF); // -1: no mount-count fsck
        sb.s_magic = U16::new(EXT4_SUPER_MAGIC);
        sb.s_state = U16::new(1); // EXT2_VALID_FS: cleanly unmounted
        sb.s_errors = U16::new(1); // EXT2_ERRORS_CONTINUE
        sb.s_creator_os = U32::new(0); // Linux
        sb.s_rev_level = U32::new(1); // EXT2_DYNAMIC_REV
        sb.s_first_ino = U32::new(FIRST_INO);
        sb.s_inode_size = U16::new(INODE_SIZE as u16);
        let mut compat = Compat::EXT_ATTR | Compat::DIR_INDEX;
        if i.journal_blocks > 0 {
            compat |= Compat::HAS_JOURNAL;
        }
        sb.s_feature_compat = U32::new(compat.bits());
        sb.s_feature_incompat = U32::new(
            (Incompat::FILETYPE | Incompat::EXTENTS | Incompat::BIT64 | Incompat::FLEX_BG).bits(),
        );
        sb.s_feature_ro_compat = U32::new(
            (RoCompat::SPARSE_SUPER
                | RoCompat::LARGE_FILE
                | RoCompat::HUGE_FILE
                | RoCompat::DIR_NLINK
                | RoCompat::EXTRA_ISIZE
                | RoCompat::METADATA_CSUM)
                .bits(),
        );
        sb.s_uuid = i.uuid;
        sb.s_volume_name[..self.options.label.len()].copy_from_slice(&self.options.label);
        sb.s_hash_seed = i.hash_seed.map(U32::new);
        sb.s_def_hash_version = DX_HASH_HALF_MD4;
        sb.s_desc_size = U16::new(GROUP_DESC_SIZE as u16);
        sb.s_default_mount_opts = U32::new(DEFAULT_MOUNT_OPTS);
        if let Some(ib) = i.journal_i_block {
            sb.s_journal_inum = U32::new(JOURNAL_INO);
            sb.s_jnl_backup_type = JNL_BACKUP_BLOCKS;
            for k in 0..15 {
                sb.s_jnl_blocks[k] = U32::new(u32::from_le_bytes(
                    ib[k * 4..k * 4 + 4].try_into().expect("4"),
                ));
            }
            let size = i.journal_blocks * BLOCK_SIZE;
            sb.s_jnl_blocks[15] = U32::new((size >> 32) as u32);
            sb.s_jnl_blocks[16] = U32::new(size as u32);
        }
        sb.s_min_extra_isize = U16::new(EXTRA_ISIZE);
        sb.s_want_extra_isize = U16::new(EXTRA_ISIZE);
        sb.s_flags = U32::new(FLAGS_SIGNED_HASH);
        sb.s_log_groups_per_flex = 4; // 16 groups per flex group, the mke2fs default
        sb.s_checksum_type = CHECKSUM_TYPE_CRC32C;
        sb.s_kbytes_written = U64::new(0);
        sb
    }
}

/// 8-4-4-4-12 hex.
pub(crate) fn fmt_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ipg_fills_inode_table_blocks() {
        assert_eq!(ipg_for(1, 1), 16);
        assert_eq!(ipg_for(17, 1), 32);
        assert_eq!(ipg_for(100, 3), 48);
    }

    #[test]
    fn test_tiny_last_group_is_dropped_from_fixed_sizes() {
        assert_eq!(usable_blocks(BLOCKS_PER_GROUP + 3), BLOCKS_PER_GROUP);
        assert_eq!(
            usable_blocks(2 * BLOCKS_PER_GROUP + 20),
            2 * BLOCKS_PER_GROUP + 20
        );
    }
}
