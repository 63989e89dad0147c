//! One apt repository: where it is, how it is signed, what may be taken from it, and loading
//! its verified indices.
//!
//! [`Repository::load`] fetches `dists/<suite>/InRelease`, verifies it ([`crate::release`]),
//! then for each component fetches `binary-<arch>/Packages` (`.xz`, `.gz` or plain, by-hash
//! when the Release offers `Acquire-By-Hash`), checks size and SHA256 against the Release
//! through the cache ([`crate::fetch`]), decompresses and parses it. Architecture-`all`
//! packages are in the per-architecture index, as in Debian. Limits: flat repositories
//! (no `dists/`) are not supported.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::fetch::{FetchError, Fetcher};
use crate::packages::Package;
use crate::release::{Clock, Release, ReleaseError};

/// A failure to load a repository's indices.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The Release was refused.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A download failed (including size/hash mismatches, which carry expected/actual).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// An index's content did not match the Release's hash.
    #[error("{url}: SHA256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The index URL.
        url: String,
        /// Expected lowercase hex (from the Release).
        expected: String,
        /// Actual lowercase hex.
        actual: String,
    },
    /// The index could not be decompressed.
    #[error("{url}: decompressing: {message}")]
    Decompress {
        /// The index URL.
        url: String,
        /// The decoder's complaint.
        message: String,
    },
    /// A stanza is malformed.
    #[error("{url}: line {line}: {message}")]
    Parse {
        /// The index URL (or file name).
        url: String,
        /// 1-based line of the offending stanza or line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The repository's configuration is invalid.
    #[error("repository {uri}: {message}")]
    Config {
        /// The repository's base URI.
        uri: String,
        /// What is wrong.
        message: String,
    },
}

/// An apt repository to take packages from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Base URI (`http://`, `https://` or `file://`), the directory holding `dists/`.
    pub uri: String,
    /// Suite or codename (`bookworm`).
    pub suite: String,
    /// Components (`main`, ...).
    pub components: Vec<String>,
    /// Architecture (`amd64`).
    pub architecture: String,
    /// Keyring file (binary `.gpg` or armored `.asc`).
    pub keyring: PathBuf,
    /// When set, only these packages are taken from this repository, and they win over other
    /// repositories' versions of the same name (a pin).
    pub allow: Option<BTreeSet<String>>,
}

impl Repository {
    /// The `InRelease` URL.
    pub fn inrelease_url(&self) -> String {
        format!(
            "{}/dists/{}/InRelease",
            self.uri.trim_end_matches('/'),
            self.suite
        )
    }

    /// Fetches and verifies the Release and every component's Packages index.
    pub fn load(&self, fetcher: &Fetcher, clock: &Clock) -> Result<RepoIndex, IndexError> {
        let _ = (fetcher, clock);
        todo!()
    }
}

/// A repository's verified Release and parsed packages.
#[derive(Debug, Clone)]
pub struct RepoIndex {
    /// The repository it came from.
    pub repository: Repository,
    /// The verified Release.
    pub release: Release,
    /// SHA256 of the `InRelease` bytes that were verified (for lock files).
    pub inrelease_sha256: String,
    /// All packages of all components, in index order (allow-list not yet applied).
    pub packages: Vec<Package>,
}
