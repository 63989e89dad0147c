//! The lockfile (`RECIPE.lock`, TOML): the exact package set of a recipe, so a later build
//! installs the same `.deb`s (by filename and SHA256) without resolving again.
//!
//! It records a digest of the recipe's `[rootfs]` package inputs
//! ([`vmimage_recipe::Recipe::rootfs_digest`]); a build notices a recipe edited after
//! locking and refuses, naming the command that refreshes the lock. Written atomically
//! (temporary file in the same directory, then rename), packages sorted by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vmimage_recipe::Recipe;

use crate::error::{RootfsError, io_err};
use crate::plan::PlannedPackage;

/// Format version written into lockfiles.
pub const LOCKFILE_VERSION: u32 = 1;

/// A lockfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version ([`LOCKFILE_VERSION`]).
    pub version: u32,
    /// Digest of the recipe's `[rootfs]` package inputs when locked.
    pub rootfs_digest: String,
    /// Distribution.
    pub distro: String,
    /// Main suite.
    pub suite: String,
    /// Architecture.
    pub architecture: String,
    /// The packages, sorted by name.
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

/// One locked package.
pub type LockedPackage = PlannedPackage;

impl Lockfile {
    /// The lockfile of a planned set.
    pub fn new(recipe: &Recipe, planned: &[PlannedPackage]) -> Lockfile {
        let mut packages = planned.to_vec();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Lockfile {
            version: LOCKFILE_VERSION,
            rootfs_digest: recipe.rootfs_digest(),
            distro: recipe.rootfs.distro.to_string(),
            suite: recipe.rootfs.suite.clone(),
            architecture: recipe.rootfs.architecture.clone(),
            packages,
        }
    }

    /// The default lockfile path of a recipe: `RECIPE.lock` beside it.
    pub fn default_path(recipe_path: &Path) -> PathBuf {
        let mut name = recipe_path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        recipe_path.with_file_name(name)
    }

    /// Reads a lockfile.
    pub fn read(path: &Path) -> Result<Lockfile, RootfsError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let lock: Lockfile = toml::from_str(&text).map_err(|e| RootfsError::Lockfile {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        if lock.version != LOCKFILE_VERSION {
            return Err(RootfsError::Lockfile {
                path: path.to_path_buf(),
                message: format!(
                    "lockfile version {} is not supported (expected {LOCKFILE_VERSION})",
                    lock.version
                ),
            });
        }
        for p in &lock.packages {
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RootfsError::Lockfile {
                    path: path.to_path_buf(),
                    message: format!(
                        "package {}: sha256 {:?} is not 64 hex digits",
                        p.name, p.sha256
                    ),
                });
            }
        }
        Ok(lock)
    }

    /// Refuses a lockfile written for a different `[rootfs]` than `recipe`'s.
    pub fn check_fresh(&self, recipe: &Recipe, path: &Path) -> Result<(), RootfsError> {
        let now = recipe.rootfs_digest();
        if self.rootfs_digest != now {
            return Err(RootfsError::Lockfile {
                path: path.to_path_buf(),
                message: format!(
                    "{} changed since {} was written (rootfs digest {} locked, {} now): run `vmimage lock --update {}`",
                    recipe.path.display(),
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    self.rootfs_digest,
                    now,
                    recipe.path.display()
                ),
            });
        }
        Ok(())
    }

    /// Writes the lockfile atomically.
    pub fn write(&self, path: &Path) -> Result<(), RootfsError> {
        let body = toml::to_string(self).map_err(|e| RootfsError::Lockfile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Written by `vmimage lock`: the exact packages of this recipe.\n# Refresh with `vmimage lock --update`.\n{body}"
        );
        crate::build::write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(extra: &str) -> Recipe {
        let src = format!("[rootfs]\ndistro = \"debian\"\nsuite = \"bookworm\"\n{extra}");
        Recipe::parse(&src, Path::new("/r/x.toml")).unwrap()
    }

    fn pkg(name: &str) -> PlannedPackage {
        PlannedPackage {
            name: name.into(),
            version: "1.0-1".into(),
            architecture: "amd64".into(),
            repository: "http://mirror.invalid/debian".into(),
            suite: "bookworm".into(),
            filename: format!("pool/main/{name}_1.0-1_amd64.deb"),
            size: 10,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn test_lockfile_round_trips_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml.lock");
        let lock = Lockfile::new(&recipe(""), &[pkg("zlib1g"), pkg("bash")]);
        lock.write(&path).unwrap();
        let back = Lockfile::read(&path).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.packages[0].name, "bash");
        assert_eq!(
            Lockfile::default_path(Path::new("/r/x.toml")),
            Path::new("/r/x.toml.lock")
        );
    }

    #[test]
    fn test_stale_lockfile_names_recipe_and_command() {
        let lock = Lockfile::new(&recipe(""), &[pkg("bash")]);
        let changed = recipe("packages = [\"curl\"]\n");
        let err = lock
            .check_fresh(&changed, Path::new("/r/x.toml.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/r/x.toml changed since x.toml.lock was written"),
            "{err}"
        );
        assert!(err.contains("vmimage lock --update"), "{err}");
        lock.check_fresh(&recipe(""), Path::new("/r/x.toml.lock"))
            .unwrap();
    }

    #[test]
    fn test_malformed_sha_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let mut lock = Lockfile::new(&recipe(""), &[pkg("bash")]);
        lock.packages[0].sha256 = "nothex".into();
        lock.write(&path).unwrap();
        let err = Lockfile::read(&path).unwrap_err().to_string();
        assert!(err.contains("package bash: sha256"), "{err}");
    }
}
