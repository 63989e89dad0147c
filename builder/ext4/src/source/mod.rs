//! Sources that feed the writer: a directory walk ([`dir`]) and a tar stream
//! ([`tar`]). Both turn what they read into [`Entry`](crate::Entry) values,
//! parents before children, and hand each one to a callback together with
//! the file's [`Content`](crate::Content). The callback is usually
//! `Ext4Writer::add`; it returns its own error type `E`, which must be able
//! to carry a [`ReadSourceError`] so both kinds of failure travel one way.
//!
//! Limits: names are checked here (no `..`, no absolute paths, components
//! of at most [`MAX_NAME_LEN`] bytes); whether the tree fits an image and
//! whether a hard link's target exists are the writer's business.

pub mod dir;
pub mod tar;

use std::io;

/// Longest name of one path component ext4 can store.
pub const MAX_NAME_LEN: usize = 255;

/// Reading a source (directory or tar archive) failed. Every variant names
/// the entry or file it was at.
#[derive(Debug, thiserror::Error)]
pub enum ReadSourceError {
    /// A system call on a file of the source failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or entry that could not be read.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// A path component longer than ext4 allows.
    #[error("entry `{entry}`: name component is {len} bytes, ext4 allows at most {MAX_NAME_LEN}")]
    NameTooLong {
        /// The entry whose path holds the long component.
        entry: String,
        /// Length of the offending component.
        len: usize,
    },
    /// An archive path that would escape the image root.
    #[error("entry `{entry}`: {reason}")]
    UnsafePath {
        /// The offending entry path as written in the archive.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The archive stops before its end-of-archive marker.
    #[error("tar archive is truncated: {detail} (last complete entry: `{last}`)")]
    Truncated {
        /// Where the data ran out.
        detail: String,
        /// The last entry read whole (empty when none was).
        last: String,
    },
    /// The archive is not a tar archive, or is damaged.
    #[error("tar archive is corrupt after entry `{last}`: {source}")]
    Corrupt {
        /// The last entry read whole (empty when none was).
        last: String,
        /// What the tar reader or decompressor said.
        source: io::Error,
    },
    /// One archive entry's header cannot be read.
    #[error("entry `{entry}`: damaged tar header: {source}")]
    BadHeader {
        /// The entry.
        entry: String,
        /// What the tar reader said.
        source: io::Error,
    },
    /// An archive entry type or encoding this reader does not handle.
    #[error("entry `{entry}`: {what}")]
    Unsupported {
        /// The offending entry.
        entry: String,
        /// What is unsupported.
        what: String,
    },
}

/// Shows a byte path in messages: UTF-8 where it is, `\xNN` elsewhere.
pub(crate) fn display_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Checks every component of a normalised image path against
/// [`MAX_NAME_LEN`]. `shown` is how the entry is named in the error.
pub(crate) fn check_name_lengths(path: &[u8], shown: &[u8]) -> Result<(), ReadSourceError> {
    match path.split(|&b| b == b'/').find(|c| c.len() > MAX_NAME_LEN) {
        Some(c) => Err(ReadSourceError::NameTooLong {
            entry: display_path(shown),
            len: c.len(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display_path_escapes_invalid_utf8() {
        assert_eq!(display_path(b"a/\xffb\xc3\xa9"), "a/\\xffbé");
    }

    #[test]
    fn test_check_name_lengths_allows_255_and_rejects_256() {
        let ok = [b'a'; 255];
        assert!(check_name_lengths(&ok, &ok).is_ok());
        let mut long = b"dir/".to_vec();
        long.extend([b'b'; 256]);
        let err = check_name_lengths(&long, &long).unwrap_err().to_string();
        assert!(err.contains("256 bytes"), "{err}");
        assert!(err.starts_with("entry `dir/bbb"), "{err}");
    }
}
