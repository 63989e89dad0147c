//! `Ext4WriteError`: every way writing an image can fail, each naming the
//! entry path (as given, lossily shown as UTF-8) or the sizes involved.

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Ext4WriteError {
    /// A fixed size cannot hold the content.
    #[error("image needs at least {needed} bytes, --size gives {size}")]
    TooSmall {
        /// Smallest size that would work (with no headroom).
        needed: u64,
        /// The size asked for.
        size: u64,
    },
    /// Automatic sizing stops where the streaming GDT reservation ends.
    #[error(
        "content needs {needed} bytes, more than automatic sizing supports ({max}); give a fixed size"
    )]
    TooLargeForAuto {
        /// Bytes the content needs.
        needed: u64,
        /// Largest automatic size.
        max: u64,
    },
    /// A path component is longer than 255 bytes.
    #[error("{path}: a name is longer than 255 bytes")]
    NameTooLong {
        /// Entry path.
        path: String,
    },
    /// A malformed entry path.
    #[error("{path:?}: invalid path: {reason}")]
    InvalidPath {
        /// Entry path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parent component exists and is not a directory.
    #[error("{path}: parent {parent} is not a directory")]
    NotADirectory {
        /// Entry path.
        path: String,
        /// The offending parent.
        parent: String,
    },
    /// A hard link names a path that was not added (or is a directory).
    #[error("{path}: hard link target {target}: {reason}")]
    BadLinkTarget {
        /// Entry path.
        path: String,
        /// Link target.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry that makes no sense (content for a non-file, an empty
    /// symlink target, a root that is not a directory, ...).
    #[error("{path}: {reason}")]
    BadEntry {
        /// Entry path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// File content shorter or longer than the entry's size.
    #[error("{path}: content has {actual} bytes, the entry says {expected}")]
    SizeMismatch {
        /// Entry path.
        path: String,
        /// Size from the entry.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// An extended attribute that ext4 cannot store.
    #[error("{path}: extended attribute {name}: {reason}")]
    Xattr {
        /// Entry path.
        path: String,
        /// Attribute name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A directory too large for a two-level htree.
    #[error(
        "{path}: directory needs {leaves} blocks of names, more than a two-level htree indexes"
    )]
    DirectoryTooLarge {
        /// Directory path.
        path: String,
        /// Leaf blocks it would need.
        leaves: usize,
    },
    /// A file beyond ext4's 16 TiB (2^32 blocks) limit.
    #[error("{path}: {size} bytes is larger than ext4's 16 TiB file limit")]
    FileTooLarge {
        /// Entry path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A volume label over 16 bytes.
    #[error("volume label is {len} bytes, at most 16 fit")]
    LabelTooLong {
        /// Its length.
        len: usize,
    },
    /// An I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Shows an entry path (bytes) for messages.
pub(crate) fn show(path: &[u8]) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Ext4WriteError {
    let context = context.into();
    move |source| Ext4WriteError::Io { context, source }
}
