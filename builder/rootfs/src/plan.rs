//! Which packages go into the tree, and where their `.deb`s come from.
//!
//! Two sources: resolving the recipe's `[rootfs]` through `vmimage-apt` (signed indices of
//! the archive suites and the extra repositories, then the resolver), or a [`Lockfile`]'s
//! exact set, which needs no index at all: each `.deb` is fetched by its locked filename and
//! verified against its locked SHA256. Either way the result is a [`PlannedPackage`] list
//! sorted by name.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vmimage_apt::{Clock, Download, Fetcher, Repository, ResolveRequest, Universe};
use vmimage_recipe::{Distro, Recipe, Variant};

use crate::error::RootfsError;
use crate::lockfile::Lockfile;

/// One package to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture (`amd64`, `all`).
    pub architecture: String,
    /// Repository base URL the `.deb` is fetched from.
    pub repository: String,
    /// Suite of that repository (informational: the pool is shared by an archive's suites).
    pub suite: String,
    /// Path of the `.deb` below the repository URL.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA256 of the `.deb`, lowercase hex.
    pub sha256: String,
}

impl PlannedPackage {
    /// The verified download of this package.
    pub fn download(&self) -> Download {
        Download {
            url: format!(
                "{}/{}",
                self.repository.trim_end_matches('/'),
                self.filename.trim_start_matches('/')
            ),
            sha256: self.sha256.clone(),
            size: self.size,
        }
    }
}

/// The archive URL to use: an explicit override (flag/env), the recipe's `mirror`, or the
/// build host's apt sources for the recipe's suite.
pub fn archive_url(recipe: &Recipe, mirror_override: Option<&str>) -> Result<String, RootfsError> {
    if let Some(m) = mirror_override.filter(|m| !m.is_empty()) {
        return Ok(m.trim_end_matches('/').to_string());
    }
    if let Some(m) = &recipe.rootfs.mirror {
        return Ok(m.clone());
    }
    let r = &recipe.rootfs;
    let host = vmimage_apt::host_mirror(&r.suite).map_err(|source| RootfsError::NoMirror {
        distro: r.distro.to_string(),
        suite: r.suite.clone(),
        source: Box::new(source),
    })?;
    // The host may list an archive of another distribution under the same suite name only
    // by mistake; nothing to check here but the name, which is the user's sources file.
    Ok(host.uri.trim_end_matches('/').to_string())
}

/// The repositories a recipe draws from, highest priority first: extra repositories (their
/// allow-lists pin names), then the archive's main and extra suites.
pub fn repositories(recipe: &Recipe, archive: &str) -> Vec<Repository> {
    let r = &recipe.rootfs;
    let mut repos: Vec<Repository> = r
        .repositories
        .iter()
        .map(|x| Repository {
            uri: x.url.clone(),
            suite: x.suite.clone(),
            components: x.components.clone(),
            architecture: r.architecture.clone(),
            keyring: x.key.clone(),
            allow: x.packages.as_ref().map(|p| {
                p.iter()
                    .map(|n| n.split('=').next().unwrap_or(n).to_string())
                    .collect::<BTreeSet<_>>()
            }),
        })
        .collect();
    for suite in std::iter::once(&r.suite).chain(&r.extra_suites) {
        repos.push(Repository {
            uri: archive.to_string(),
            suite: suite.clone(),
            components: r.components.clone(),
            architecture: r.architecture.clone(),
            keyring: r.keyring.clone(),
            allow: None,
        });
    }
    repos
}

/// Resolves the recipe's package set against the signed indices.
pub fn resolve(
    recipe: &Recipe,
    archive: &str,
    fetcher: &Fetcher,
    clock: &Clock,
) -> Result<Vec<PlannedPackage>, RootfsError> {
    let repos = repositories(recipe, archive);
    let mut indices = Vec::with_capacity(repos.len());
    for repo in &repos {
        if !repo.keyring.is_file() {
            return Err(RootfsError::Install(format!(
                "keyring {} for {} {} does not exist{}",
                repo.keyring.display(),
                repo.uri,
                repo.suite,
                match recipe.rootfs.distro {
                    Distro::Debian => " (install debian-archive-keyring or set `keyring`)",
                    Distro::Ubuntu => " (install ubuntu-keyring or set `keyring`)",
                }
            )));
        }
        tracing::info!(url = %repo.uri, suite = %repo.suite, "loading signed indices");
        let index = repo
            .load(fetcher, clock)
            .map_err(|source| RootfsError::Index {
                url: repo.uri.clone(),
                suite: repo.suite.clone(),
                source: Box::new(source),
            })?;
        indices.push(index);
    }
    let universe = Universe::new(&indices);
    let request = ResolveRequest {
        packages: recipe.rootfs.packages.clone(),
        variant: match recipe.rootfs.variant {
            Variant::Minbase => vmimage_apt::Variant::Minbase,
            Variant::Essential => vmimage_apt::Variant::Essential,
        },
    };
    let resolution = vmimage_apt::resolve(&universe, &request)?;
    // Which suite each package came from, for the lockfile: the first index holding that
    // exact version and file.
    let mut planned: Vec<PlannedPackage> = resolution
        .packages
        .iter()
        .map(|p| {
            let suite = indices
                .iter()
                .find(|i| {
                    i.repository.uri == p.base_uri
                        && i.packages.iter().any(|q| q.sha256 == p.sha256)
                })
                .map_or_else(String::new, |i| i.repository.suite.clone());
            PlannedPackage {
                name: p.name.clone(),
                version: p.version.to_string(),
                architecture: p.architecture.clone(),
                repository: p.base_uri.trim_end_matches('/').to_string(),
                suite,
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.to_ascii_lowercase(),
            }
        })
        .collect();
    planned.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(planned)
}

/// The locked set, with each package's repository mapped to where to fetch it now: an extra
/// repository of the recipe keeps its URL; anything else is the archive, fetched from
/// `archive` (the same pool path on any mirror; the SHA256 guards the content).
pub fn from_lock(lock: &Lockfile, recipe: &Recipe, archive: &str) -> Vec<PlannedPackage> {
    let extra: BTreeSet<&str> = recipe
        .rootfs
        .repositories
        .iter()
        .map(|r| r.url.trim_end_matches('/'))
        .collect();
    let mut planned: Vec<PlannedPackage> = lock
        .packages
        .iter()
        .map(|p| {
            let repo = p.repository.trim_end_matches('/');
            PlannedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                repository: if extra.contains(repo) {
                    repo.to_string()
                } else {
                    archive.to_string()
                },
                suite: p.suite.clone(),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            }
        })
        .collect();
    planned.sort_by(|a, b| a.name.cmp(&b.name));
    planned
}

/// Downloads every planned `.deb` into the cache (verified); returns their cache paths in
/// plan order.
pub fn download(
    planned: &[PlannedPackage],
    fetcher: &Fetcher,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<PathBuf>, RootfsError> {
    let downloads: Vec<Download> = planned.iter().map(PlannedPackage::download).collect();
    Ok(fetcher.fetch_all(&downloads, progress)?)
}
