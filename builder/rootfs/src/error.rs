//! The error type of rootfs composition: one enum, each variant naming the step and the
//! offending thing (package, file, command, digest).

use std::path::PathBuf;

/// Why a rootfs could not be built or locked.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// No mirror was given and the host's apt sources name none for the suite.
    #[error(
        "no {distro} mirror for suite {suite}: {source}; give one with --mirror, VMIMAGE_MIRROR or `mirror =` in [rootfs]"
    )]
    NoMirror {
        /// Distribution.
        distro: String,
        /// Suite.
        suite: String,
        /// What the host's sources said.
        source: Box<vmimage_apt::SourcesError>,
    },
    /// Loading a repository's signed indices failed (bad signature, expired, tampered index).
    #[error("loading {url} {suite}: {source}")]
    Index {
        /// Repository URL.
        url: String,
        /// Suite.
        suite: String,
        /// The cause.
        source: Box<vmimage_apt::IndexError>,
    },
    /// Dependency resolution failed.
    #[error("resolving packages: {0}")]
    Resolve(Box<vmimage_apt::ResolveError>),
    /// A download failed or did not verify.
    #[error("downloading packages: {0}")]
    Fetch(Box<vmimage_apt::FetchError>),
    /// A `.deb` could not be read.
    #[error("reading package: {0}")]
    Deb(Box<vmimage_apt::DebError>),
    /// The lockfile is unreadable, malformed or stale.
    #[error("{}: {message}", path.display())]
    Lockfile {
        /// The lockfile.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A package set that cannot be installed (e.g. no dpkg in it).
    #[error("installing: {0}")]
    Install(String),
    /// A command run in or for the tree failed.
    #[error("{step}: `{command}` failed ({status}){}", output_tail(output))]
    Command {
        /// What the command was for.
        step: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output: String,
    },
    /// A recipe setting cannot be applied to the tree (unknown user, unit without [Install]).
    #[error("{field}: {message}")]
    Recipe {
        /// The recipe field, e.g. `files.2.owner`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn output_tail(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{output}")
    }
}

/// `.map_err(io_err(path))` shorthand.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RootfsError {
    let path = path.into();
    move |source| RootfsError::Io { path, source }
}

impl From<vmimage_apt::ResolveError> for RootfsError {
    fn from(e: vmimage_apt::ResolveError) -> Self {
        RootfsError::Resolve(Box::new(e))
    }
}

impl From<vmimage_apt::FetchError> for RootfsError {
    fn from(e: vmimage_apt::FetchError) -> Self {
        RootfsError::Fetch(Box::new(e))
    }
}

impl From<vmimage_apt::DebError> for RootfsError {
    fn from(e: vmimage_apt::DebError) -> Self {
        RootfsError::Deb(Box::new(e))
    }
}
