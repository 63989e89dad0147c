//! Writes ext4 filesystem images from a stream of entries, without root,
//! mounts or e2fsprogs, and byte-for-byte deterministically.
//!
//! Owns: the ext4 on-disk format (`format`), block and inode layout, and the
//! sources that feed it (a directory walk, a tar stream). Does not own: where
//! the tree comes from (`vmimage-rootfs`) or what is done with the image.
//!
//! The image ([`Ext4Writer`]): 4 KiB blocks, 256-byte inodes with
//! nanosecond times, extents (with index levels), 64bit, flex_bg,
//! sparse_super, large/huge files, dir_nlink, hashed directories (half-MD4,
//! up to two htree levels), xattrs in the inode or one block,
//! metadata_csum (crc32c) everywhere, an internal jbd2 journal sized like
//! mke2fs's, lost+found. No resize inode, orphan file, quota or inline
//! data. Output is sparse: all-zero blocks, unused inode-table space and
//! the journal body are holes.

#![warn(missing_docs)]

mod csum;
mod data;
mod dir;
pub mod entry;
mod error;
mod extent;
mod finish;
pub mod format;
mod inode;
mod journal;
mod layout;
mod size;
mod writer;
mod xattr;

#[cfg(test)]
mod image_tests;
pub mod mkfs;
pub mod source;

pub use entry::{Content, Entry, Metadata, Node, Timestamp};
pub use error::Ext4WriteError;
pub use writer::Ext4Writer;

/// What [`Ext4Writer::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageSummary {
    /// Length of the image file.
    pub size_bytes: u64,
    /// Filesystem block size (4096).
    pub block_size: u32,
    /// Blocks in the filesystem (may be less than `size_bytes / block_size`
    /// when a fixed size ends in a sliver too small for a block group).
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Inodes in the filesystem.
    pub inodes: u32,
    /// Free inodes.
    pub free_inodes: u32,
    /// Filesystem UUID, 8-4-4-4-12 hex.
    pub uuid: String,
    /// Block groups.
    pub groups: u32,
    /// Journal blocks (0 without a journal).
    pub journal_blocks: u64,
    /// Directory hash seed, formatted like a UUID.
    pub hash_seed: String,
}
pub use mkfs::{MkfsError, MkfsProgress, Source, mkfs, mkfs_with_progress};
pub use source::ReadSourceError;

/// How large the image should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSize {
    /// The smallest image that holds the content, plus `headroom` bytes free.
    Auto {
        /// Free space to leave for the guest to write into.
        headroom: u64,
    },
    /// Exactly this many bytes (rounded down to whole blocks); an error if
    /// the content does not fit.
    Fixed(u64),
}

/// Free space `--size auto` leaves by default: 64 MiB, enough for a guest's
/// logs, apt lists and a language server's caches without making every
/// image carry gigabytes of zeros (the file is sparse, but pulls and
/// snapshots still see its length).
pub const DEFAULT_HEADROOM: u64 = 64 << 20;

/// Settings for one image. Everything that lands in the image comes from
/// here or from the entries: nothing reads the clock or a random source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Image size policy.
    pub size: ImageSize,
    /// Volume label (at most 16 bytes).
    pub label: Vec<u8>,
    /// Filesystem UUID; derived from the content when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Directory hash seed; derived from the content when `None`.
    pub hash_seed: Option<[u8; 16]>,
    /// Clamp every timestamp to at most this (SOURCE_DATE_EPOCH); it is also
    /// the time written into the superblock (0 when `None`).
    pub source_date_epoch: Option<i64>,
    /// Whether to create a jbd2 journal.
    pub journal: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: ImageSize::Auto {
                headroom: DEFAULT_HEADROOM,
            },
            label: Vec::new(),
            uuid: None,
            hash_seed: None,
            source_date_epoch: None,
            journal: true,
        }
    }
}
