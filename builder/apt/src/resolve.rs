//! Dependency resolution: from a package universe and a request to the sorted set of packages
//! to install.
//!
//! The universe merges repositories: a repository's allow-list restricts what it contributes
//! and pins those names (they win over other repositories); otherwise the highest version of
//! a name wins, the earlier repository on ties. The closure follows `Pre-Depends` and
//! `Depends` only (never `Recommends`), breadth-first in request order. For each group of
//! alternatives the choice is deterministic: an alternative already chosen, else the first
//! alternative naming a real package with a satisfying version, else a provider of a virtual
//! name (one already chosen, else one the request names, else the first by name, logged at
//! debug level). Afterwards every version constraint is re-checked against the final set and
//! `Conflicts`/`Breaks` between chosen packages are errors. Failures name the chain from the
//! request to the broken relation. Limits: no backtracking across groups (apt does none for
//! a fresh install either), one architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::packages::Package;
use crate::repo::RepoIndex;

/// What base set a request starts from, like mmdebstrap's `--variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Every `Priority: required` package plus `apt` (debootstrap/mmdebstrap `minbase`).
    #[default]
    Minbase,
    /// Every `Essential: yes` package.
    Essential,
    /// Only the requested packages.
    None,
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minbase" => Ok(Variant::Minbase),
            "essential" => Ok(Variant::Essential),
            "none" => Ok(Variant::None),
            other => Err(format!(
                "unknown variant {other:?} (expected minbase, essential or none)"
            )),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Minbase => "minbase",
            Variant::Essential => "essential",
            Variant::None => "none",
        })
    }
}

/// What to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveRequest {
    /// Package names to install on top of the variant's base set. `name=version` asks for
    /// exactly that version.
    pub packages: Vec<String>,
    /// The base set.
    pub variant: Variant,
}

/// Why a request cannot be resolved. `chain` runs from the request to the failing relation,
/// e.g. `["requested git", "depends libcurl3-gnutls (>= 7.88)"]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing satisfies a relation.
    #[error("{} -> {reason}", chain.join(" -> "))]
    Unsatisfiable {
        /// From the request to the relation.
        chain: Vec<String>,
        /// E.g. `no version satisfies: available 7.74` or `no such package`.
        reason: String,
    },
    /// Two chosen packages conflict (`Conflicts` or `Breaks`).
    #[error("{package} {version} {kind} {relation}, but {other} {other_version} is chosen ({})", chain.join(" -> "))]
    Conflict {
        /// The declaring package.
        package: String,
        /// Its version.
        version: String,
        /// `conflicts with` or `breaks`.
        kind: String,
        /// The relation as written.
        relation: String,
        /// The chosen package it hits.
        other: String,
        /// That package's version.
        other_version: String,
        /// Why `other` was chosen.
        chain: Vec<String>,
    },
}

/// All packages available for resolution, by name.
#[derive(Debug, Clone, Default)]
pub struct Universe {
    /// Candidates by name, best first.
    packages: BTreeMap<String, Vec<Package>>,
    /// Virtual name -> names of real packages providing it (sorted, deduplicated).
    providers: BTreeMap<String, BTreeSet<String>>,
}

impl Universe {
    /// Merges repository indices, in priority order (earlier wins ties), applying their
    /// allow-lists and pins.
    pub fn new(indices: &[RepoIndex]) -> Universe {
        let _ = indices;
        todo!()
    }

    /// A universe of the given packages, no pins (highest version of a name first).
    pub fn from_packages(packages: impl IntoIterator<Item = Package>) -> Universe {
        let _ = packages;
        todo!()
    }

    /// The best candidate of a name.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name).and_then(|v| v.first())
    }

    /// All candidates of a name, best first.
    pub fn candidates(&self, name: &str) -> &[Package] {
        self.packages.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Names of real packages providing `name` (sorted).
    pub fn providers(&self, name: &str) -> impl Iterator<Item = &str> {
        self.providers
            .get(name)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    /// Every best candidate, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Package> {
        self.packages.values().filter_map(|v| v.first())
    }

    /// Number of distinct package names.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the universe is empty.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

/// The packages to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Sorted by name, one version each.
    pub packages: Vec<Package>,
}

impl Resolution {
    /// The chosen package of a name.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.packages[i])
    }

    /// The chosen names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.packages.iter().map(|p| p.name.as_str())
    }
}

/// Resolves `request` against `universe`.
pub fn resolve(universe: &Universe, request: &ResolveRequest) -> Result<Resolution, ResolveError> {
    let _ = (universe, request);
    todo!()
}
