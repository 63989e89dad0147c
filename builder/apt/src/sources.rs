//! The build host's apt sources: `/etc/apt/sources.list.d/*.sources` (deb822) and
//! `/etc/apt/sources.list` plus `sources.list.d/*.list` (one-line format, with
//! `[signed-by=... arch=...]` options), and finding the mirror that serves a suite.
//!
//! This is how vmimage follows the user's own mirror or proxy instead of naming one.
//! Limits: `deb-src` entries are read but never chosen; `Enabled: no` stanzas are skipped;
//! inline `Signed-By` key blocks in deb822 are not supported (only a path).

use std::path::{Path, PathBuf};

/// A malformed or unreadable sources file.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line or stanza is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No `deb` entry serves the suite.
    #[error("no 'deb' entry for suite {suite:?} in the apt sources under {dir}")]
    NoMirror {
        /// The suite asked for.
        suite: String,
        /// The apt configuration directory searched.
        dir: PathBuf,
    },
}

/// One source entry (a deb822 stanza or a one-line entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSource {
    /// `deb` and/or `deb-src`.
    pub types: Vec<String>,
    /// Base URIs, without trailing `/`.
    pub uris: Vec<String>,
    /// Suites (`bookworm`, `bookworm-updates`, ...).
    pub suites: Vec<String>,
    /// Components (`main`, ...).
    pub components: Vec<String>,
    /// `Signed-By` / `signed-by=` keyring path, if given.
    pub signed_by: Option<PathBuf>,
    /// `Architectures` / `arch=` restriction, empty when unrestricted.
    pub architectures: Vec<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// The 1-based line where the entry starts.
    pub line: usize,
}

/// The mirror chosen for a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMirror {
    /// Base URI (e.g. the directory holding `dists/` and `pool/`), no trailing `/`.
    pub uri: String,
    /// The suite matched.
    pub suite: String,
    /// Components the host enables for it.
    pub components: Vec<String>,
    /// Keyring the host uses for it, if declared.
    pub signed_by: Option<PathBuf>,
}

/// Parses a deb822 `.sources` file; `file` names it in errors and records.
pub fn parse_deb822_sources(text: &str, file: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let _ = (text, file);
    todo!()
}

/// Parses a one-line-format `sources.list` file; `file` names it in errors and records.
pub fn parse_one_line_sources(text: &str, file: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let _ = (text, file);
    todo!()
}

/// Reads every source under an apt configuration directory (normally `/etc/apt`):
/// `sources.list.d/*.sources`, `sources.list`, `sources.list.d/*.list`, in that order, files
/// of a directory sorted by name. Missing files are skipped.
pub fn read_host_sources(etc_apt: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let _ = etc_apt;
    todo!()
}

/// The first `deb` entry whose suites include `suite`.
pub fn find_mirror(sources: &[HostSource], suite: &str) -> Option<HostMirror> {
    let _ = (sources, suite);
    todo!()
}

/// [`read_host_sources`] of `/etc/apt` then [`find_mirror`] for `suite`.
pub fn host_mirror(suite: &str) -> Result<HostMirror, SourcesError> {
    let dir = Path::new("/etc/apt");
    let sources = read_host_sources(dir)?;
    find_mirror(&sources, suite).ok_or_else(|| SourcesError::NoMirror {
        suite: suite.to_string(),
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
}
