//! The ext4 and jbd2 on-disk structures as plain data: field names and order
//! as in the kernel's `fs/ext4/ext4.h`, `ext4_extents.h`, `xattr.h` and
//! `include/linux/jbd2.h`, every integer little-endian (jbd2: big-endian),
//! no padding (all fields are byte-aligned wrapper types). No logic lives
//! here beyond constants derived from other constants.
//!
//! Limits: only what this writer emits (4 KiB blocks, 256-byte inodes,
//! 64-byte group descriptors); no bigalloc, inline data, encryption or
//! casefolding structures.

use bitflags::bitflags;
use zerocopy::byteorder::big_endian as be;
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Block size in bytes; the only one this writer supports.
pub const BLOCK_SIZE: u64 = 4096;
/// `s_log_block_size`: 2^(10+2) = 4096.
pub const LOG_BLOCK_SIZE: u32 = 2;
/// Blocks per group: one bitmap block holds this many bits.
pub const BLOCKS_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// On-disk inode size (`s_inode_size`).
pub const INODE_SIZE: u64 = 256;
/// Inodes in one inode-table block.
pub const INODES_PER_BLOCK: u32 = (BLOCK_SIZE / INODE_SIZE) as u32;
/// Most inodes a group can have: one inode bitmap block.
pub const MAX_INODES_PER_GROUP: u32 = (BLOCK_SIZE * 8) as u32;
/// `i_extra_isize`: the fields of [`Inode`] past the 128-byte base.
pub const EXTRA_ISIZE: u16 = (size_of::<Inode>() - GOOD_OLD_INODE_SIZE) as u16;
/// The ext2 inode size, where `i_extra_isize` starts.
pub const GOOD_OLD_INODE_SIZE: usize = 128;
/// Group descriptor size with the 64bit feature (`s_desc_size`).
pub const GROUP_DESC_SIZE: u64 = size_of::<GroupDesc>() as u64;
/// Group descriptors per GDT block.
pub const GROUPS_PER_DESC_BLOCK: u64 = BLOCK_SIZE / GROUP_DESC_SIZE;
/// Byte offset of the primary superblock in the image.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// `s_magic`.
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;
/// First non-reserved inode (`s_first_ino`).
pub const FIRST_INO: u32 = 11;
/// Root directory inode.
pub const ROOT_INO: u32 = 2;
/// Journal inode.
pub const JOURNAL_INO: u32 = 8;
/// lost+found, by mke2fs convention the first non-reserved inode.
pub const LOST_FOUND_INO: u32 = 11;
/// Longest file name.
pub const NAME_MAX: usize = 255;
/// `EXT2_FLAGS_SIGNED_HASH`: names hash with signed chars, as mke2fs sets
/// on x86 (the alternative, `EXT2_FLAGS_UNSIGNED_HASH`, is 0x0002).
pub const FLAGS_SIGNED_HASH: u32 = 0x0001;
/// `DX_HASH_HALF_MD4`, the mke2fs default.
pub const DX_HASH_HALF_MD4: u8 = 1;
/// `s_checksum_type` for crc32c.
pub const CHECKSUM_TYPE_CRC32C: u8 = 1;
/// `EXT3_JNL_BACKUP_BLOCKS`: `s_jnl_blocks` holds a copy of the journal
/// inode's `i_block`, `i_size_high` and `i_size`.
pub const JNL_BACKUP_BLOCKS: u8 = 1;
/// `EXT4_DEFM_XATTR_USER | EXT4_DEFM_ACL`, as mke2fs sets.
pub const DEFAULT_MOUNT_OPTS: u32 = 0x0004 | 0x0008;
/// Link count a directory gets once it has too many subdirectories
/// (`dir_nlink`), and the limit past which that applies.
pub const EXT4_LINK_MAX: u32 = 65000;

bitflags! {
    /// `s_feature_compat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Compat: u32 {
        /// `COMPAT_HAS_JOURNAL`.
        const HAS_JOURNAL = 0x0004;
        /// `COMPAT_EXT_ATTR`.
        const EXT_ATTR = 0x0008;
        /// `COMPAT_DIR_INDEX`.
        const DIR_INDEX = 0x0020;
    }
}

bitflags! {
    /// `s_feature_incompat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Incompat: u32 {
        /// `INCOMPAT_FILETYPE`: file type in directory entries.
        const FILETYPE = 0x0002;
        /// `INCOMPAT_EXTENTS`.
        const EXTENTS = 0x0040;
        /// `INCOMPAT_64BIT`: 64-byte group descriptors, 48-bit block numbers.
        const BIT64 = 0x0080;
        /// `INCOMPAT_FLEX_BG`: bitmaps and inode tables anywhere.
        const FLEX_BG = 0x0200;
    }
}

bitflags! {
    /// `s_feature_ro_compat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RoCompat: u32 {
        /// `RO_COMPAT_SPARSE_SUPER`: backups only in groups 0, 1, 3^n, 5^n, 7^n.
        const SPARSE_SUPER = 0x0001;
        /// `RO_COMPAT_LARGE_FILE`: files over 2 GiB.
        const LARGE_FILE = 0x0002;
        /// `RO_COMPAT_HUGE_FILE`.
        const HUGE_FILE = 0x0008;
        /// `RO_COMPAT_DIR_NLINK`: more than 65000 subdirectories.
        const DIR_NLINK = 0x0020;
        /// `RO_COMPAT_EXTRA_ISIZE`.
        const EXTRA_ISIZE = 0x0040;
        /// `RO_COMPAT_METADATA_CSUM`: crc32c on all metadata.
        const METADATA_CSUM = 0x0400;
    }
}

bitflags! {
    /// `i_flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct InodeFlags: u32 {
        /// `EXT4_INDEX_FL`: hashed (htree) directory.
        const INDEX = 0x0000_1000;
        /// `EXT4_EXTENTS_FL`: `i_block` holds an extent tree.
        const EXTENTS = 0x0008_0000;
    }
}

bitflags! {
    /// `bg_flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BgFlags: u16 {
        /// `EXT4_BG_INODE_ZEROED`: the inode table is zero (our output is
        /// sparse, so unwritten inode-table blocks read as zeros).
        const INODE_ZEROED = 0x0004;
    }
}

/// File type bits of `i_mode`.
pub mod mode {
    /// Socket.
    pub const S_IFSOCK: u16 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u16 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u16 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u16 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u16 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u16 = 0o020000;
    /// FIFO.
    pub const S_IFIFO: u16 = 0o010000;
}

/// `file_type` in directory entries (`EXT4_FT_*`).
pub mod ft {
    /// Regular file.
    pub const REG_FILE: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHRDEV: u8 = 3;
    /// Block device.
    pub const BLKDEV: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
    /// Marks the checksum tail that closes a directory block.
    pub const DIR_CSUM: u8 = 0xDE;
}

/// `struct ext4_super_block`.
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct SuperBlock {
    pub s_inodes_count: U32,
    pub s_blocks_count_lo: U32,
    pub s_r_blocks_count_lo: U32,
    pub s_free_blocks_count_lo: U32,
    pub s_free_inodes_count: U32,
    pub s_first_data_block: U32,
    pub s_log_block_size: U32,
    pub s_log_cluster_size: U32,
    pub s_blocks_per_group: U32,
    pub s_clusters_per_group: U32,
    pub s_inodes_per_group: U32,
    pub s_mtime: U32,
    pub s_wtime: U32,
    pub s_mnt_count: U16,
    pub s_max_mnt_count: U16,
    pub s_magic: U16,
    pub s_state: U16,
    pub s_errors: U16,
    pub s_minor_rev_level: U16,
    pub s_lastcheck: U32,
    pub s_checkinterval: U32,
    pub s_creator_os: U32,
    pub s_rev_level: U32,
    pub s_def_resuid: U16,
    pub s_def_resgid: U16,
    pub s_first_ino: U32,
    pub s_inode_size: U16,
    pub s_block_group_nr: U16,
    pub s_feature_compat: U32,
    pub s_feature_incompat: U32,
    pub s_feature_ro_compat: U32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_last_mounted: [u8; 64],
    pub s_algorithm_usage_bitmap: U32,
    pub s_prealloc_blocks: u8,
    pub s_prealloc_dir_blocks: u8,
    pub s_reserved_gdt_blocks: U16,
    pub s_journal_uuid: [u8; 16],
    pub s_journal_inum: U32,
    pub s_journal_dev: U32,
    pub s_last_orphan: U32,
    pub s_hash_seed: [U32; 4],
    pub s_def_hash_version: u8,
    pub s_jnl_backup_type: u8,
    pub s_desc_size: U16,
    pub s_default_mount_opts: U32,
    pub s_first_meta_bg: U32,
    pub s_mkfs_time: U32,
    pub s_jnl_blocks: [U32; 17],
    pub s_blocks_count_hi: U32,
    pub s_r_blocks_count_hi: U32,
    pub s_free_blocks_count_hi: U32,
    pub s_min_extra_isize: U16,
    pub s_want_extra_isize: U16,
    pub s_flags: U32,
    pub s_raid_stride: U16,
    pub s_mmp_update_interval: U16,
    pub s_mmp_block: U64,
    pub s_raid_stripe_width: U32,
    pub s_log_groups_per_flex: u8,
    pub s_checksum_type: u8,
    pub s_encryption_level: u8,
    pub s_reserved_pad: u8,
    pub s_kbytes_written: U64,
    pub s_snapshot_inum: U32,
    pub s_snapshot_id: U32,
    pub s_snapshot_r_blocks_count: U64,
    pub s_snapshot_list: U32,
    pub s_error_count: U32,
    pub s_first_error_time: U32,
    pub s_first_error_ino: U32,
    pub s_first_error_block: U64,
    pub s_first_error_func: [u8; 32],
    pub s_first_error_line: U32,
    pub s_last_error_time: U32,
    pub s_last_error_ino: U32,
    pub s_last_error_line: U32,
    pub s_last_error_block: U64,
    pub s_last_error_func: [u8; 32],
    pub s_mount_opts: [u8; 64],
    pub s_usr_quota_inum: U32,
    pub s_grp_quota_inum: U32,
    pub s_overhead_clusters: U32,
    pub s_backup_bgs: [U32; 2],
    pub s_encrypt_algos: [u8; 4],
    pub s_encrypt_pw_salt: [u8; 16],
    pub s_lpf_ino: U32,
    pub s_prj_quota_inum: U32,
    pub s_checksum_seed: U32,
    pub s_wtime_hi: u8,
    pub s_mtime_hi: u8,
    pub s_mkfs_time_hi: u8,
    pub s_lastcheck_hi: u8,
    pub s_first_error_time_hi: u8,
    pub s_last_error_time_hi: u8,
    pub s_first_error_errcode: u8,
    pub s_last_error_errcode: u8,
    pub s_encoding: U16,
    pub s_encoding_flags: U16,
    pub s_orphan_file_inum: U32,
    pub s_reserved: [U32; 94],
    pub s_checksum: U32,
}
const _: () = assert!(size_of::<SuperBlock>() == 1024);
/// Offset of `s_checksum`: the superblock checksum covers the bytes before it.
pub const SUPERBLOCK_CSUM_OFFSET: usize = 1020;

/// `struct ext4_group_desc` (64-byte form).
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct GroupDesc {
    pub bg_block_bitmap_lo: U32,
    pub bg_inode_bitmap_lo: U32,
    pub bg_inode_table_lo: U32,
    pub bg_free_blocks_count_lo: U16,
    pub bg_free_inodes_count_lo: U16,
    pub bg_used_dirs_count_lo: U16,
    pub bg_flags: U16,
    pub bg_exclude_bitmap_lo: U32,
    pub bg_block_bitmap_csum_lo: U16,
    pub bg_inode_bitmap_csum_lo: U16,
    pub bg_itable_unused_lo: U16,
    pub bg_checksum: U16,
    pub bg_block_bitmap_hi: U32,
    pub bg_inode_bitmap_hi: U32,
    pub bg_inode_table_hi: U32,
    pub bg_free_blocks_count_hi: U16,
    pub bg_free_inodes_count_hi: U16,
    pub bg_used_dirs_count_hi: U16,
    pub bg_itable_unused_hi: U16,
    pub bg_exclude_bitmap_hi: U32,
    pub bg_block_bitmap_csum_hi: U16,
    pub bg_inode_bitmap_csum_hi: U16,
    pub bg_reserved: U32,
}
const _: () = assert!(size_of::<GroupDesc>() == 64);

/// `struct ext4_inode` up to `i_projid` (160 bytes), followed in the inode
/// table by in-inode extended attributes up to [`INODE_SIZE`].
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct Inode {
    pub i_mode: U16,
    pub i_uid: U16,
    pub i_size_lo: U32,
    pub i_atime: U32,
    pub i_ctime: U32,
    pub i_mtime: U32,
    pub i_dtime: U32,
    pub i_gid: U16,
    pub i_links_count: U16,
    pub i_blocks_lo: U32,
    pub i_flags: U32,
    pub l_i_version: U32,
    pub i_block: [u8; 60],
    pub i_generation: U32,
    pub i_file_acl_lo: U32,
    pub i_size_high: U32,
    pub i_obso_faddr: U32,
    pub l_i_blocks_high: U16,
    pub l_i_file_acl_high: U16,
    pub l_i_uid_high: U16,
    pub l_i_gid_high: U16,
    pub l_i_checksum_lo: U16,
    pub l_i_reserved: U16,
    pub i_extra_isize: U16,
    pub i_checksum_hi: U16,
    pub i_ctime_extra: U32,
    pub i_mtime_extra: U32,
    pub i_atime_extra: U32,
    pub i_crtime: U32,
    pub i_crtime_extra: U32,
    pub i_version_hi: U32,
    pub i_projid: U32,
}
const _: () = assert!(size_of::<Inode>() == 160);
/// Byte offset of `l_i_checksum_lo` in an inode.
pub const INODE_CSUM_LO_OFFSET: usize = 0x7C;
/// Byte offset of `i_checksum_hi` in an inode.
pub const INODE_CSUM_HI_OFFSET: usize = 0x82;

/// `struct ext4_extent_header`.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct ExtentHeader {
    pub eh_magic: U16,
    pub eh_entries: U16,
    pub eh_max: U16,
    pub eh_depth: U16,
    pub eh_generation: U32,
}
/// `eh_magic`.
pub const EXTENT_MAGIC: u16 = 0xF30A;

/// `struct ext4_extent`: a leaf entry.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct Extent {
    pub ee_block: U32,
    pub ee_len: U16,
    pub ee_start_hi: U16,
    pub ee_start_lo: U32,
}

/// `struct ext4_extent_idx`: an index entry.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct ExtentIdx {
    pub ei_block: U32,
    pub ei_leaf_lo: U32,
    pub ei_leaf_hi: U16,
    pub ei_unused: U16,
}
const _: () = assert!(size_of::<ExtentHeader>() == 12);
const _: () = assert!(size_of::<Extent>() == 12 && size_of::<ExtentIdx>() == 12);
/// Longest initialized extent (`EXT_INIT_MAX_LEN`).
pub const EXT_INIT_MAX_LEN: u64 = 1 << 15;
/// Extent entries in the inode's `i_block` (60 bytes minus the header).
pub const EXTENTS_IN_INODE: usize = (60 - size_of::<ExtentHeader>()) / size_of::<Extent>();
/// Extent entries in a tree block, leaving room for the 4-byte checksum tail.
pub const EXTENTS_PER_BLOCK: usize =
    (BLOCK_SIZE as usize - size_of::<ExtentHeader>()) / size_of::<Extent>();

/// `struct ext4_dir_entry_2` without the name.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct DirEntryHeader {
    pub inode: U32,
    pub rec_len: U16,
    pub name_len: u8,
    pub file_type: u8,
}
/// `struct ext4_dir_entry_tail`: the checksum entry closing a leaf block.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct DirEntryTail {
    pub det_reserved_zero1: U32,
    pub det_rec_len: U16,
    pub det_reserved_zero2: u8,
    pub det_reserved_ft: u8,
    pub det_checksum: U32,
}
/// Size of the leaf-block checksum tail.
pub const DIR_TAIL_SIZE: usize = size_of::<DirEntryTail>();
const _: () = assert!(DIR_TAIL_SIZE == 12);

/// `struct dx_root_info`, at byte 24 of an htree root block (after the `.`
/// and `..` entries).
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct DxRootInfo {
    pub reserved_zero: U32,
    pub hash_version: u8,
    pub info_length: u8,
    pub indirect_levels: u8,
    pub unused_flags: u8,
}
/// `struct dx_entry`.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct DxEntry {
    pub hash: U32,
    pub block: U32,
}
/// `struct dx_tail`: the checksum after the `limit` dx entries.
pub const DX_TAIL_SIZE: usize = 8;
/// Where `dx_countlimit` starts in a root block: `.` (12) + `..` header (12) + info (8).
pub const DX_ROOT_ENTRIES_OFFSET: usize = 32;
/// Where `dx_countlimit` starts in an interior node: after an empty 8-byte dirent.
pub const DX_NODE_ENTRIES_OFFSET: usize = 8;
/// dx entries in a root block.
pub const DX_ROOT_LIMIT: usize =
    (BLOCK_SIZE as usize - DX_ROOT_ENTRIES_OFFSET - DX_TAIL_SIZE) / size_of::<DxEntry>();
/// dx entries in an interior node block.
pub const DX_NODE_LIMIT: usize =
    (BLOCK_SIZE as usize - DX_NODE_ENTRIES_OFFSET - DX_TAIL_SIZE) / size_of::<DxEntry>();

/// `h_magic` of xattr blocks and `i_extra` xattr areas.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;
/// `struct ext4_xattr_header` (block form) size.
pub const XATTR_BLOCK_HEADER_SIZE: usize = 32;
/// `struct ext4_xattr_entry` without the name.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct XattrEntry {
    pub e_name_len: u8,
    pub e_name_index: u8,
    pub e_value_offs: U16,
    pub e_value_inum: U32,
    pub e_value_size: U32,
    pub e_hash: U32,
}
const _: () = assert!(size_of::<XattrEntry>() == 16);

/// `journal_superblock_t` (jbd2, big-endian), first 0x100 bytes (the
/// `s_users` array after it stays zero for an internal journal).
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct JournalSuperBlock {
    pub h_magic: be::U32,
    pub h_blocktype: be::U32,
    pub h_sequence: be::U32,
    pub s_blocksize: be::U32,
    pub s_maxlen: be::U32,
    pub s_first: be::U32,
    pub s_sequence: be::U32,
    pub s_start: be::U32,
    pub s_errno: be::U32,
    pub s_feature_compat: be::U32,
    pub s_feature_incompat: be::U32,
    pub s_feature_ro_compat: be::U32,
    pub s_uuid: [u8; 16],
    pub s_nr_users: be::U32,
    pub s_dynsuper: be::U32,
    pub s_max_transaction: be::U32,
    pub s_max_trans_data: be::U32,
    pub s_checksum_type: u8,
    pub s_padding2: [u8; 3],
    pub s_num_fc_blks: be::U32,
    pub s_head: be::U32,
    pub s_padding: [be::U32; 40],
    pub s_checksum: be::U32,
}
const _: () = assert!(size_of::<JournalSuperBlock>() == 0x100);
/// `JBD2_MAGIC_NUMBER`.
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`.
pub const JBD2_SUPERBLOCK_V2: u32 = 4;
/// Smallest journal the kernel accepts (`JBD2_MIN_JOURNAL_BLOCKS`).
pub const JBD2_MIN_JOURNAL_BLOCKS: u64 = 1024;
