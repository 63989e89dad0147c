//! Verified downloads into a content-addressed cache.
//!
//! Layout: `<cache>/sha256/<hex>` holds verified blobs (indices and `.deb`s alike);
//! `<cache>/tmp/` holds partial downloads, named after the hash they must have, so an
//! interrupted download resumes with an HTTP `Range` request; `<cache>/refs/` remembers the
//! last `InRelease` fetched per URL for offline mode. A blob is renamed into `sha256/` only
//! after its size and SHA256 matched, so nothing unverified is ever served from the cache.
//! Cache hits are re-hashed (cheap next to a wrong package), and a damaged blob is
//! fetched again. A warm cache means no network at all, except `InRelease`, which is fetched again unless the
//! [`Fetcher`] is offline. Transient failures are retried with exponential backoff.
//! Supported URL schemes: `http://`, `https://`, `file://`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::packages::Package;

/// Default parallel downloads.
pub const DEFAULT_PARALLEL_DOWNLOADS: usize = 4;
/// Default attempts per download (the first try included).
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// Delay before the first retry; doubled for each further one.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(500);
/// TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence allowed while reading a response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// Where a blob with this SHA256 lives (whether or not it is there).
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
    agent: ureq::Agent,
}

impl Fetcher {
    /// An online fetcher with default parallelism and retries.
    pub fn new(cache: Cache) -> Fetcher {
        Fetcher {
            cache,
            offline: false,
            parallel: DEFAULT_PARALLEL_DOWNLOADS,
            attempts: DEFAULT_ATTEMPTS,
            agent: ureq::Agent::with_parts(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_connect(Some(CONNECT_TIMEOUT))
                    .timeout_per_read(Some(READ_TIMEOUT))
                    .user_agent(concat!("vmimage/", env!("CARGO_PKG_VERSION")))
                    .build(),
                ureq::unversioned::transport::DefaultConnector::default(),
                CachingResolver::default(),
            ),
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
        let sha = download.sha256.to_ascii_lowercase();
        let dest = self.cache.blob_path(&sha);
        if dest.exists() {
            // Only verified blobs are renamed in, but the disk (or a person) may have changed
            // one since; hashing is cheap next to what a wrong package costs.
            match verify_file(&dest, &download.url, &sha, download.size) {
                Ok(()) => return Ok(dest),
                Err(e) => {
                    tracing::warn!(path = %dest.display(), "cached blob damaged ({e}); fetching again");
                    remove_if_exists(&dest)?;
                }
            }
        }
        if self.offline {
            return Err(FetchError::NotCached {
                url: download.url.clone(),
                sha256: sha,
                cache: self.cache.root.clone(),
            });
        }
        let tmp_dir = self.cache.root.join("tmp");
        create_dir(&tmp_dir)?;
        create_dir(dest.parent().unwrap_or(&self.cache.root))?;
        let partial = tmp_dir.join(format!("{sha}.partial"));
        self.with_retries(&download.url, |_attempt| {
            let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            // A complete partial (crash between verify and rename) needs no transfer; an
            // over-long one is garbage.
            if have > download.size
                || (have == download.size
                    && verify_file(&partial, &download.url, &sha, download.size).is_err())
            {
                remove_if_exists(&partial)?;
            }
            let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            if have < download.size {
                self.transfer_to(&download.url, &partial, download.size)?;
            }
            match verify_file(&partial, &download.url, &sha, download.size) {
                Ok(()) => Ok(()),
                Err(e) => {
                    remove_if_exists(&partial)?;
                    // A resumed download may have glued two versions together: start over.
                    // A fresh one that fails verification is the server's content: final.
                    if have > 0 {
                        Err(Attempt::Retry(e))
                    } else {
                        Err(Attempt::Fatal(e))
                    }
                }
            }
        })?;
        fs::rename(&partial, &dest).map_err(|source| FetchError::Io {
            path: dest.clone(),
            source,
        })?;
        tracing::debug!(url = %download.url, sha256 = %sha, "cached");
        Ok(dest)
    }

    /// Fetches an `InRelease` (or any unhashed small file): from the network when online
    /// (remembering it in the cache), from the cache's record of that URL when offline.
    /// Returns the bytes; verification is the caller's ([`crate::verify_inrelease`]).
    pub fn fetch_release(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let refs = self.cache.root.join("refs");
        let ref_path = refs.join(hex::encode(Sha256::digest(url.as_bytes())));
        if self.offline {
            let not_cached = || FetchError::NotCached {
                url: url.to_string(),
                sha256: "InRelease".into(),
                cache: self.cache.root.clone(),
            };
            let sha = fs::read_to_string(&ref_path).map_err(|_| not_cached())?;
            let blob = self.cache.get(sha.trim()).ok_or_else(not_cached)?;
            let bytes = fs::read(&blob).map_err(|source| FetchError::Io { path: blob, source })?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != sha.trim() {
                return Err(FetchError::HashMismatch {
                    url: url.to_string(),
                    expected: sha.trim().to_string(),
                    actual,
                });
            }
            return Ok(bytes);
        }
        let bytes = self.with_retries(url, |_| self.get_bytes(url))?;
        // Remember it for offline mode; it is content-addressed like everything else.
        let sha = hex::encode(Sha256::digest(&bytes));
        let blob = self.cache.blob_path(&sha);
        create_dir(&refs)?;
        create_dir(blob.parent().unwrap_or(&self.cache.root))?;
        if !blob.is_file() {
            write_atomically(&blob, &bytes)?;
        }
        write_atomically(&ref_path, sha.as_bytes())?;
        Ok(bytes)
    }

    /// Runs `op` up to `attempts` times, sleeping with exponential backoff between transient
    /// failures.
    fn with_retries<T>(
        &self,
        url: &str,
        mut op: impl FnMut(u32) -> Result<T, Attempt>,
    ) -> Result<T, FetchError> {
        let mut attempt = 0;
        loop {
            match op(attempt) {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(e)) if attempt + 1 >= self.attempts => return Err(e),
                Err(Attempt::Retry(e)) => {
                    let delay = RETRY_BASE_DELAY * 2u32.pow(attempt.min(6));
                    tracing::warn!(%url, "{e}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
            }
        }
    }

    /// Reads a whole small file from a URL.
    fn get_bytes(&self, url: &str) -> Result<Vec<u8>, Attempt> {
        if let Some(path) = file_url_path(url) {
            return fs::read(&path).map_err(|e| {
                Attempt::Fatal(FetchError::Transfer {
                    url: url.to_string(),
                    message: e.to_string(),
                })
            });
        }
        check_scheme(url)?;
        let resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| Attempt::retry(url, e))?;
        check_status(url, resp.status().as_u16(), false)?;
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| Attempt::retry(url, e))?;
        Ok(bytes)
    }

    /// Downloads `url` into `partial`, resuming from its current length with a `Range`
    /// request when it is non-empty.
    fn transfer_to(&self, url: &str, partial: &Path, size: u64) -> Result<(), Attempt> {
        let io_err = |source| {
            Attempt::Fatal(FetchError::Io {
                path: partial.to_path_buf(),
                source,
            })
        };
        if let Some(path) = file_url_path(url) {
            let mut src = File::open(&path).map_err(|e| {
                Attempt::Fatal(FetchError::Transfer {
                    url: url.to_string(),
                    message: e.to_string(),
                })
            })?;
            let mut dst = File::create(partial).map_err(io_err)?;
            // Copy at most one byte too many: enough to detect a size mismatch.
            io::copy(&mut (&mut src).take(size + 1), &mut dst).map_err(io_err)?;
            return dst.sync_all().map_err(io_err);
        }
        check_scheme(url)?;
        let have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let mut req = self.agent.get(url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| Attempt::retry(url, e))?;
        let status = resp.status().as_u16();
        if status == 416 {
            // Our partial is no prefix of theirs: start over on the next attempt.
            remove_if_exists(partial).map_err(Attempt::Fatal)?;
            return Err(Attempt::retry(url, "range not satisfiable"));
        }
        check_status(url, status, true)?;
        let append = status == 206 && have > 0;
        if have > 0 {
            tracing::debug!(%url, have, resumed = append, "partial download found");
        }
        let mut dst = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(io_err)?;
        let already = if append { have } else { 0 };
        let mut body = resp.into_body().into_reader();
        // Never write more than one byte past the expected size.
        let limit = (size + 1).saturating_sub(already);
        io::copy(&mut (&mut body).take(limit), &mut dst).map_err(|e| Attempt::retry(url, e))?;
        dst.sync_all().map_err(io_err)
    }

    /// Fetches many blobs in parallel; returns their cache paths in input order. Stops at the
    /// first failure (after its retries) and returns that error. `progress(done, total)` is
    /// called after each blob.
    pub fn fetch_all(
        &self,
        downloads: &[Download],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<PathBuf>, FetchError> {
        // The same blob twice must not race on one partial file.
        let mut unique: Vec<&Download> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for d in downloads {
            if seen.insert(d.sha256.to_ascii_lowercase()) {
                unique.push(d);
            }
        }
        let total = unique.len();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<(usize, FetchError)>> = Mutex::new(None);
        let workers = self.parallel.min(total.max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(d) = unique.get(i) else { break };
                        match self.fetch(d) {
                            Ok(_) => progress(done.fetch_add(1, Ordering::Relaxed) + 1, total),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut slot =
                                    first_error.lock().unwrap_or_else(|p| p.into_inner());
                                // Keep the error of the earliest input for a stable message.
                                if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                    *slot = Some((i, e));
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(downloads
            .iter()
            .map(|d| self.cache.blob_path(&d.sha256))
            .collect())
    }

    /// Downloads the `.deb` of each package (see [`Fetcher::fetch_all`]).
    pub fn download_packages(&self, packages: &[Package]) -> Result<Vec<PathBuf>, FetchError> {
        let downloads: Vec<Download> = packages.iter().map(Download::of_package).collect();
        self.fetch_all(&downloads, &|_, _| {})
    }
}

/// Resolves each host once per fetcher. Every parallel download opens its own connection,
/// and a resolver that stalls now and then (a lost AAAA answer costs glibc 5 s) would
/// otherwise stall each of them in turn.
#[derive(Debug, Default)]
struct CachingResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    known:
        Mutex<std::collections::HashMap<String, ureq::unversioned::resolver::ResolvedSocketAddrs>>,
}

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        );
        if let Some(hit) = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, addrs.clone());
        Ok(addrs)
    }
}

/// One attempt's failure: worth retrying (network) or not (hash mismatch, 404, local I/O).
enum Attempt {
    Retry(FetchError),
    Fatal(FetchError),
}

impl Attempt {
    fn retry(url: &str, e: impl std::fmt::Display) -> Attempt {
        Attempt::Retry(FetchError::Transfer {
            url: url.to_string(),
            message: e.to_string(),
        })
    }
}

impl From<FetchError> for Attempt {
    fn from(e: FetchError) -> Self {
        Attempt::Fatal(e)
    }
}

/// The local path of a `file://` URL.
fn file_url_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("file://").map(PathBuf::from)
}

fn check_scheme(url: &str) -> Result<(), Attempt> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(Attempt::Fatal(FetchError::UnsupportedUrl {
            url: url.to_string(),
        }))
    }
}

/// 2xx passes (206 only when a range was asked for); 5xx, 408 and 429 are retried; any other
/// status is final.
fn check_status(url: &str, status: u16, range_ok: bool) -> Result<(), Attempt> {
    let err = FetchError::Status {
        url: url.to_string(),
        status,
    };
    match status {
        200 => Ok(()),
        206 if range_ok => Ok(()),
        408 | 429 | 500..=599 => Err(Attempt::Retry(err)),
        _ => Err(Attempt::Fatal(err)),
    }
}

/// Checks size and SHA256 of a downloaded file.
fn verify_file(path: &Path, url: &str, sha256: &str, size: u64) -> Result<(), FetchError> {
    let io_err = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let actual_size = fs::metadata(path).map_err(io_err)?.len();
    if actual_size != size {
        return Err(FetchError::SizeMismatch {
            url: url.to_string(),
            expected: size,
            actual: actual_size,
        });
    }
    let actual = sha256_file(path).map_err(io_err)?;
    if actual != sha256 {
        return Err(FetchError::HashMismatch {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(dir).map_err(|source| FetchError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FetchError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `bytes` to a temporary name beside `path`, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let io_err = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io_err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

/// SHA256 of a file's content, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
