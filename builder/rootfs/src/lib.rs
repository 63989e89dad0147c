//! Composes a root filesystem tree from a recipe and the packages `vmimage-apt` resolved:
//! unpack, dpkg database, maintainer scripts, files, users, services, lockfile and SBOM.
//!
//! [`build`] drives the whole job: plan the package set ([`plan`]: resolve through
//! `vmimage-apt`, or take a [`Lockfile`]'s set), download it (verified), install it
//! ([`install`]: hand-extract the essential set, then let the tree's own `dpkg` install
//! everything inside a chroot, as mmdebstrap does), apply the recipe ([`customize`]), make
//! the tree reproducible ([`normalize`]), and write the output atomically: a directory, or a
//! deterministic tar ([`tarball`]); optionally an SPDX SBOM ([`sbom`]). [`lock`] writes a
//! lockfile without building.
//!
//! Limits: runs as root (chroot, mounts in a private mount namespace via `unshare`); the
//! target architecture must be the host's (no qemu-user emulation).
//!
//! ```no_run
//! use vmimage_rootfs::{BuildOptions, OutputKind, build};
//! let recipe = vmimage_recipe::Recipe::load("recipes/debian-12-minimal.toml".as_ref())?;
//! let opts = BuildOptions::new(recipe, OutputKind::Tar("rootfs.tar".into()));
//! let report = build(&opts)?;
//! println!("{} packages, tar sha256 {:?}", report.packages, report.sha256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod build;
pub mod customize;
mod error;
pub mod install;
pub mod lockfile;
pub mod normalize;
pub mod plan;
pub mod sbom;
pub mod tarball;
pub mod unpack;
pub mod userns;

pub use build::{BuildOptions, BuildReport, LockOptions, LockReport, OutputKind, build, lock};
pub use error::RootfsError;
pub use lockfile::{LockedPackage, Lockfile};
pub use plan::PlannedPackage;
