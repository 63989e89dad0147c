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

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::fetch::{Download, FetchError, Fetcher};
use crate::packages::{Package, parse_packages};
use crate::release::{Clock, Keyring, Release, ReleaseError, ReleaseFile, verify_inrelease};

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
    /// An index's size did not match the Release.
    #[error("{url}: size mismatch: expected {expected} bytes (from the Release), got {actual}")]
    SizeMismatch {
        /// The index URL.
        url: String,
        /// Expected bytes.
        expected: u64,
        /// Actual bytes.
        actual: u64,
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
        if self.components.is_empty() {
            return Err(IndexError::Config {
                uri: self.uri.clone(),
                message: "no components".into(),
            });
        }
        let keyring = Keyring::load(&self.keyring)?;
        let url = self.inrelease_url();
        let bytes = fetcher.fetch_release(&url)?;
        let inrelease_sha256 = hex::encode(Sha256::digest(&bytes));
        let release = verify_inrelease(&bytes, &keyring, clock, &url)?;
        tracing::debug!(%url, signed_by = %release.signed_by, "Release verified");
        // apt only warns here; a build that must be reproducible refuses.
        let names = [release.suite.as_deref(), release.codename.as_deref()];
        if names.iter().any(Option::is_some) && !names.contains(&Some(self.suite.as_str())) {
            return Err(ReleaseError::WrongSuite {
                url,
                expected: self.suite.clone(),
                suite: release.suite.clone().unwrap_or_default(),
                codename: release.codename.clone().unwrap_or_default(),
            }
            .into());
        }
        let mut packages = Vec::new();
        for component in &self.components {
            let entry = format!("{component}/binary-{}/Packages", self.architecture);
            let file = release
                .find_index(&entry)
                .ok_or_else(|| ReleaseError::MissingEntry {
                    url: url.clone(),
                    entry: entry.clone(),
                })?;
            let (index_url, path) = self.fetch_index(fetcher, &release, file)?;
            let text = decompress(&path, &file.path, &index_url)?;
            packages.extend(parse_packages(
                &text,
                &self.architecture,
                &self.uri,
                &index_url,
            )?);
        }
        Ok(RepoIndex {
            repository: self.clone(),
            release,
            inrelease_sha256,
            packages,
        })
    }

    /// Fetches one index file listed in the Release, by hash when offered (falling back to
    /// the plain name when a mirror lacks the by-hash copy). Returns the URL used and the
    /// verified cache path.
    fn fetch_index(
        &self,
        fetcher: &Fetcher,
        release: &Release,
        file: &ReleaseFile,
    ) -> Result<(String, std::path::PathBuf), IndexError> {
        let dists = format!("{}/dists/{}", self.uri.trim_end_matches('/'), self.suite);
        let plain = format!("{dists}/{}", file.path);
        let mut urls = Vec::new();
        if release.acquire_by_hash {
            let dir = file.path.rsplit_once('/').map_or("", |(d, _)| d);
            urls.push(format!("{dists}/{dir}/by-hash/SHA256/{}", file.sha256));
        }
        urls.push(plain);
        let mut last = None;
        for url in urls {
            let download = Download {
                url: url.clone(),
                sha256: file.sha256.clone(),
                size: file.size,
            };
            match fetcher.fetch(&download) {
                Ok(path) => return Ok((url, path)),
                Err(FetchError::Status { status: 404, .. }) if last.is_none() => {
                    tracing::debug!(%url, "no by-hash copy; trying the plain name");
                    last = Some(());
                }
                Err(FetchError::HashMismatch {
                    url,
                    expected,
                    actual,
                }) => {
                    return Err(IndexError::HashMismatch {
                        url,
                        expected,
                        actual,
                    });
                }
                Err(FetchError::SizeMismatch {
                    url,
                    expected,
                    actual,
                }) => {
                    return Err(IndexError::SizeMismatch {
                        url,
                        expected,
                        actual,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the plain URL is always tried last and returns")
    }
}

/// Decompresses a verified index by its Release name (`.xz`, `.gz` or plain).
fn decompress(path: &Path, name: &str, url: &str) -> Result<String, IndexError> {
    let err = |message: String| IndexError::Decompress {
        url: url.to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut reader: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| IndexError::Parse {
        url: url.to_string(),
        line: 0,
        message: format!("not UTF-8: {e}"),
    })
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
