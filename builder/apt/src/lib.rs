//! Talks to apt archives: signed Release files, Packages indices, Debian versions, dependency
//! resolution, verified downloads and .deb reading.
//!
//! The pipeline a caller drives, lowest step first:
//! 1. [`Repository`] (or [`host_mirror`] to find one in the build host's apt sources);
//! 2. [`Repository::load`] fetches `InRelease`, checks its OpenPGP signature against the
//!    repository's [`Keyring`] and its expiry against a [`Clock`], then fetches and checks the
//!    `Packages` indices by SHA256 ([`RepoIndex`]);
//! 3. [`Universe::new`] merges the indices (allow-lists, pins, highest version wins);
//! 4. [`resolve()`] closes a [`ResolveRequest`] over `Pre-Depends` and `Depends`;
//! 5. [`Fetcher::download_packages`] fills the content-addressed [`Cache`] in parallel;
//! 6. [`DebFile`] reads each downloaded `.deb` (control members and a streaming data tar).
//!
//! ```no_run
//! use vmimage_apt::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mirror = host_mirror("bookworm")?;
//! let repo = Repository {
//!     uri: mirror.uri,
//!     suite: "bookworm".into(),
//!     components: vec!["main".into()],
//!     architecture: "amd64".into(),
//!     keyring: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
//!     allow: None,
//! };
//! let fetcher = Fetcher::new(Cache::at_default_location());
//! let index = repo.load(&fetcher, &Clock::System)?;
//! let universe = Universe::new(&[index]);
//! let request = ResolveRequest { packages: vec!["git".into()], variant: Variant::Minbase };
//! let resolution = resolve(&universe, &request)?;
//! let debs = fetcher.download_packages(&resolution.packages)?;
//! for entry in DebFile::open(&debs[0])?.data()?.entries()? {
//!     println!("{}", entry?.path()?.display());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Limits: binary packages only (no sources), one architecture per repository, no
//! `Recommends` installation, no `Multi-Arch: foreign` cross-architecture choice.

#![warn(missing_docs)]

pub mod deb;
pub mod deb822;
pub mod fetch;
pub mod packages;
pub mod relation;
pub mod release;
pub mod repo;
pub mod resolve;
pub mod sources;
pub mod version;

pub use deb::{ControlInfo, ControlMember, DebError, DebFile};
pub use deb822::{ControlError, Paragraph, parse_paragraphs};
pub use fetch::{Cache, Download, FetchError, Fetcher};
pub use packages::{Package, parse_packages};
pub use relation::{RelOp, Relation, RelationError, VersionConstraint, parse_relations};
pub use release::{Clock, Keyring, Release, ReleaseError, ReleaseFile, verify_inrelease};
pub use repo::{IndexError, RepoIndex, Repository};
pub use resolve::{Resolution, ResolveError, ResolveRequest, Universe, Variant, resolve};
pub use sources::{
    HostMirror, HostSource, SourcesError, find_mirror, host_mirror, read_host_sources,
};
pub use version::{Version, VersionError};
