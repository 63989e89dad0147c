//! The input model: what a source (a directory walk, a tar stream) hands the
//! writer. Paths are raw bytes because ext4 names are bytes, not UTF-8.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds; may be negative (before 1970).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

/// Ownership, permissions, times and extended attributes of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`0o7777`); the
    /// file type comes from [`Node`].
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access.
    pub atime: Timestamp,
    /// Last modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Extended attributes by full name (`security.capability`,
    /// `user.foo`, ...), sorted so iteration is deterministic.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory; its children are the entries whose paths it prefixes.
    Directory,
    /// A regular file of `size` bytes; the bytes come as [`Content`].
    File {
        /// Length in bytes.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Link target, stored verbatim.
        target: Vec<u8>,
    },
    /// Another name for an entry added earlier (same inode).
    HardLink {
        /// Path of the earlier entry, in the same form as [`Entry::path`].
        target: Vec<u8>,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// One object to place in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image: relative, components separated by `/`, no
    /// empty, `.` or `..` components. The empty path is the root directory.
    pub path: Vec<u8>,
    /// The kind of object.
    pub node: Node,
    /// Ownership, mode, times, xattrs. Ignored for [`Node::HardLink`].
    pub meta: Metadata,
}

/// Where a regular file's bytes come from.
pub enum Content<'a> {
    /// Exactly `size` bytes to read now, before the next entry (a tar stream).
    Reader(&'a mut dyn Read),
    /// A file on disk the writer may read later and in parallel (a
    /// directory source). Holes are found with `SEEK_DATA`/`SEEK_HOLE`.
    Path(PathBuf),
    /// Bytes already in memory.
    Bytes(Vec<u8>),
}
