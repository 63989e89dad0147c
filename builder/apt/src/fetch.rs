//! Verified downloads into a content-addressed cache.
//!
//! Layout: `<cache>/sha256/<hex>` holds verified blobs (indices and `.deb`s alike);
//! `<cache>/tmp/` holds partial downloads, named after the hash they must have, so an
//! interrupted download resumes with an HTTP `Range` request; `<cache>/refs/` remembers the
//! last `InRelease` fetched per URL for offline mode. A blob is renamed into `sha256/` only
//! after its size and SHA256 matched, so nothing unverified is ever served from the cache.
//! A warm cache means no network at all, except `InRelease`, which is fetched again unless the
//! [`Fetcher`] is offline. Transient failures are retried with exponential backoff.
//! Supported URL schemes: `http://`, `https://`, `file://`.

use std::path::{Path, PathBuf};

use crate::packages::Package;

/// Default parallel downloads.
pub const DEFAULT_PARALLEL_DOWNLOADS: usize = 4;
/// Default attempts per download (the first try included).
pub const DEFAULT_ATTEMPTS: u32 = 4;

/// A download or cache failure.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The transfer failed (after retries).
    #[error("fetching {url}: {message}")]
    Transfer {
        /// The URL.
        url: String,
        /// The last error.
        message: String,
    },
    /// The server answered with an error status.
    #[error("fetching {url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The content did not have the expected SHA256.
    #[error("{url}: SHA256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The URL.
        url: String,
        /// Expected lowercase hex.
        expected: String,
        /// Actual lowercase hex.
        actual: String,
    },
    /// The content did not have the expected size.
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The URL.
        url: String,
        /// Expected bytes.
        expected: u64,
        /// Actual bytes.
        actual: u64,
    },
    /// Offline mode and the blob is not cached.
    #[error("offline and {url} (sha256 {sha256}) is not in the cache {cache}")]
    NotCached {
        /// The URL.
        url: String,
        /// The wanted hash (or `InRelease` for a Release ref).
        sha256: String,
        /// The cache directory.
        cache: PathBuf,
    },
    /// A URL scheme we do not speak.
    #[error("unsupported URL {url:?} (expected http://, https:// or file://)")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// Local file system error on the cache.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A content-addressed blob cache rooted at a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `$VMIMAGE_CACHE`, else `~/.cache/vmimage` (`$XDG_CACHE_HOME/vmimage` when set).
    pub fn default_location() -> PathBuf {
        if let Some(dir) = std::env::var_os("VMIMAGE_CACHE").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("vmimage");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache").join("vmimage")
    }

    /// The cache at [`Cache::default_location`].
    pub fn at_default_location() -> Cache {
        Cache::new(Self::default_location())
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with this SHAZ256 lives (whether or not it is there).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256.to_ascii_lowercase())
    }

    /// The path of a cached blob, if present.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.blob_path(sha256);
        p.is_file().then_some(p)
    }
}

/// One blob to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Where from.
    pub url: String,
    /// Expected SHA256, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
}

impl Download {
    /// The download of a package's `.deb`.
    pub fn of_package(p: &Package) -> Download {
        Download {
            url: p.download_url(),
            sha256: p.sha256.clone(),
            size: p.size,
        }
    }
}

/// Downloads into a [`Cache`], verifying everything.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache: Cache,
    offline: bool,
    parallel: usize,
    attempts: u32,
}

impl Fetcher {
    /// An online fetcher with default parallelism and retries.
    pub fn new(cache: Cache) -> Fetcher {
        Fetcher {
            cache,
            offline: false,
            parallel: DEFAULT_PARALLEL_DOWNLOADS,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Offline mode: never touch the network; everything, `InRelease` included, must come
    /// from the cache.
    pub fn offline(mut self, offline: bool) -> Fetcher {
        self.offline = offline;
        self
    }

    /// Number of parallel downloads (at least 1).
    pub fn parallel(mut self, n: usize) -> Fetcher {
        self.parallel = n.max(1);
        self
    }

    /// Attempts per download, the first included (at least 1).
    pub fn attempts(mut self, n: u32) -> Fetcher {
        self.attempts = n.max(1);
        self
    }

    /// Whether this fetcher is offline.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Fetches a blob of known hash and size into the cache (a no-op on a hit) and returns its
    /// cache path.
    pub fn fetch(&self, download: &Download) -> Result<PathBuf, FetchError> {
        let _ = download;
        todo!()
    }

    /// Fetches an `InRelease` (or any unhashed small file): from the network when online
    /// (remembering it in the cache), from the cache's record of that URL when offline.
    /// Returns the bytes; verification is the caller's ([`crate::verify_inrelease`]).
    pub fn fetch_release(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let _ = url;
        todo!()
    }

    /// Fetches many blobs in parallel; returns their cache paths in input order. Stops at the
    /// first failure (after its retries) and returns that error. `progress(done, total)` is
    /// called after each blob.
    pub fn fetch_all(
        &self,
        downloads: &[Download],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<PathBuf>, FetchError> {
        let _ = (downloads, progress);
        todo!()
    }

    /// Downloads the `.deb` of each package (see [`Fetcher::fetch_all`]).
    pub fn download_packages(&self, packages: &[Package]) -> Result<Vec<PathBuf>, FetchError> {
        let downloads: Vec<Download> = packages.iter().map(Download::of_package).collect();
        self.fetch_all(&downloads, &|_, _| {})
    }
}
