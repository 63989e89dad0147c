//! Dependency resolution: from a package universe and a request to the sorted set of packages
//! to install.
//!
//! The universe merges repositories: a repository's allow-list restricts what it contributes
//! and pins those names (they win over other repositories); otherwise the highest version of
//! a name wins, the earlier repository on ties. The closure follows `Pre-Depends` and
//! `Depends` only (never `Recommends`), breadth-first in request order. For each group of
//! alternatives the choice is deterministic: an alternative already chosen, else the first
//! alternative naming a real package with a satisfying version, else a provider of a virtual
//! name (one already chosen, else one the request names, else the best by apt's order:
//! essential, then `Priority`, then name; logged at debug level). Afterwards every version constraint is re-checked against the final set and
//! `Conflicts`/`Breaks` between chosen packages are errors. Failures name the chain from the
//! request to the broken relation. Limits: no backtracking across groups (apt does none for
//! a fresh install either), one architecture.
//!
//! Stages follow mmdebstrap: the `Essential: yes` set is closed first (mmdebstrap installs
//! it before calling apt for the rest), then `Priority: required`, `apt` and the request are
//! marked together and closed, so a dependency already met by an essential package's
//! `Provides` pulls in nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::packages::Package;
use crate::relation::Relation;
use crate::repo::RepoIndex;
use crate::version::Version;

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
    #[error("{package} {kind} {relation}, but {other} is chosen ({})", chain.join(" -> "))]
    Conflict {
        /// The declaring package and its version, e.g. `a 1.0`.
        package: String,
        /// `conflicts with` or `breaks`.
        kind: &'static str,
        /// The relation as written.
        relation: String,
        /// The chosen package it hits and its version.
        other: String,
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
        let mut all = Vec::new();
        for (repo, index) in indices.iter().enumerate() {
            let allow = index.repository.allow.as_ref();
            for p in &index.packages {
                if allow.is_none_or(|a| a.contains(&p.name)) {
                    all.push((allow.is_some(), repo, p.clone()));
                }
            }
        }
        Self::build(all)
    }

    /// Sorts candidates (pinned first, then highest version, then earliest repository),
    /// drops duplicate versions, and indexes providers.
    fn build(all: Vec<(bool, usize, Package)>) -> Universe {
        let mut by_name: BTreeMap<String, Vec<(bool, usize, Package)>> = BTreeMap::new();
        for entry in all {
            by_name.entry(entry.2.name.clone()).or_default().push(entry);
        }
        let mut packages = BTreeMap::new();
        let mut providers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, mut cands) in by_name {
            cands.sort_by(|(pa, ra, a), (pb, rb, b)| {
                pb.cmp(pa)
                    .then_with(|| b.version.cmp(&a.version))
                    .then_with(|| ra.cmp(rb))
            });
            let mut list: Vec<Package> = Vec::new();
            for (_, _, p) in cands {
                if !list.iter().any(|q| q.version == p.version) {
                    list.push(p);
                }
            }
            for p in &list {
                for prov in &p.provides {
                    providers
                        .entry(prov.name.clone())
                        .or_default()
                        .insert(name.clone());
                }
            }
            packages.insert(name, list);
        }
        Universe {
            packages,
            providers,
        }
    }

    /// A universe of the given packages, no pins (highest version of a name first).
    pub fn from_packages(packages: impl IntoIterator<Item = Package>) -> Universe {
        Self::build(packages.into_iter().map(|p| (false, 0, p)).collect())
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
    let mut r = Resolver {
        universe,
        requested: request
            .packages
            .iter()
            .map(|p| p.split_once('=').map_or(p.as_str(), |(n, _)| n).to_string())
            .collect(),
        chosen: BTreeMap::new(),
    };
    // Like mmdebstrap: first the Essential set with its dependencies (installed before
    // anything else, so later alternatives see it), then the rest in one apt-get call.
    let essential: Vec<(String, String)> = match request.variant {
        Variant::None => Vec::new(),
        Variant::Essential | Variant::Minbase => universe
            .iter()
            .filter(|p| p.essential)
            .map(|p| (p.name.clone(), format!("essential {}", p.name)))
            .collect(),
    };
    let mut second: Vec<(String, String)> = Vec::new();
    if request.variant == Variant::Minbase {
        second.extend(
            universe
                .iter()
                .filter(|p| p.is_required() && !p.essential)
                .map(|p| (p.name.clone(), format!("minbase: required {}", p.name))),
        );
        second.push(("apt".into(), "minbase: apt".into()));
    }
    for (stage, base) in [(0, essential), (1, second)] {
        // 1. Mark the stage's packages without dependencies (as apt-get install does).
        let mut roots = Vec::new();
        for (name, why) in base {
            if r.chosen.contains_key(&name) {
                continue;
            }
            let chain = vec![why];
            let p = r
                .best(&name, None)
                .ok_or_else(|| ResolveError::Unsatisfiable {
                    chain: chain.clone(),
                    reason: "no such package".into(),
                })?;
            r.mark(p, chain);
            roots.push(name);
        }
        if stage == 1 {
            for spec in &request.packages {
                let chain = vec![format!("requested {spec}")];
                let name = r.mark_requested(spec, chain)?;
                if !roots.contains(&name) {
                    roots.push(name);
                }
            }
        }
        // 2. Close over Pre-Depends and Depends, depth-first in marking order.
        for name in roots {
            r.install_deps(&name)?;
        }
    }
    // 3. Conflicts and Breaks among the chosen.
    r.check_conflicts()?;
    Ok(Resolution {
        packages: r.chosen.into_values().map(|(p, _)| p.clone()).collect(),
    })
}

struct Resolver<'u> {
    universe: &'u Universe,
    /// Names the request lists (preferred among providers).
    requested: BTreeSet<String>,
    /// Chosen package by name, with the chain that brought it in.
    chosen: BTreeMap<String, (&'u Package, Vec<String>)>,
}

/// Whether `p` satisfies `rel` itself or through a matching `Provides`.
fn satisfies(p: &Package, rel: &Relation) -> bool {
    if !arch_ok(p, rel) {
        return false;
    }
    if p.name == rel.name && rel.version_matches(&p.version) {
        return true;
    }
    p.provides.iter().any(|prov| {
        prov.name == rel.name
            && match (&rel.constraint, &prov.constraint) {
                (None, _) => true,
                // A versioned relation is satisfied only by a versioned Provides (Policy 7.5).
                (Some(c), Some(pv)) => c.matches(&pv.version),
                (Some(_), None) => false,
            }
    })
}

/// The relation's architecture qualifier against the package (`:any`/`:native` match
/// anything in a one-architecture universe).
fn arch_ok(p: &Package, rel: &Relation) -> bool {
    match rel.arch_qualifier.as_deref() {
        None | Some("any") | Some("native") => true,
        Some(a) => p.architecture == a || p.architecture == "all",
    }
}

/// `Priority` as apt ranks it: required first, unknown last.
fn priority_rank(p: &Package) -> u8 {
    match p.priority.as_deref() {
        Some("required") => 0,
        Some("important") => 1,
        Some("standard") => 2,
        Some("optional") => 3,
        Some("extra") => 4,
        _ => 5,
    }
}

fn versions_list(cands: &[Package]) -> String {
    cands
        .iter()
        .map(|p| p.version.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'u> Resolver<'u> {
    /// Best candidate of `name` satisfying `rel` (any version when `rel` is None).
    fn best(&self, name: &str, rel: Option<&Relation>) -> Option<&'u Package> {
        self.universe
            .candidates(name)
            .iter()
            .find(|p| rel.is_none_or(|r| arch_ok(p, r) && r.version_matches(&p.version)))
    }

    fn mark(&mut self, p: &'u Package, chain: Vec<String>) {
        tracing::trace!(package = %p.name, version = %p.version, "chosen");
        self.chosen.insert(p.name.clone(), (p, chain));
    }

    /// Marks one requested `name` or `name=version`; returns the chosen name.
    fn mark_requested(&mut self, spec: &str, chain: Vec<String>) -> Result<String, ResolveError> {
        let (name, version) = match spec.split_once('=') {
            Some((n, v)) => {
                let v: Version = v.parse().map_err(|e: crate::version::VersionError| {
                    ResolveError::Unsatisfiable {
                        chain: chain.clone(),
                        reason: e.to_string(),
                    }
                })?;
                (n, Some(v))
            }
            None => (spec, None),
        };
        let rel = Relation {
            name: name.to_string(),
            arch_qualifier: None,
            constraint: version.map(|version| crate::relation::VersionConstraint {
                op: crate::relation::RelOp::Eq,
                version,
            }),
            architectures: Vec::new(),
        };
        if let Some((p, _)) = self.chosen.get(name) {
            if satisfies(p, &rel) {
                return Ok(name.to_string());
            }
            return Err(ResolveError::Unsatisfiable {
                chain,
                reason: format!("version {} is already chosen", p.version),
            });
        }
        match self.choose(std::slice::from_ref(&rel)) {
            Ok(p) => {
                let n = p.name.clone();
                if !self.chosen.contains_key(&n) {
                    self.mark(p, chain);
                }
                Ok(n)
            }
            Err(reason) => Err(ResolveError::Unsatisfiable { chain, reason }),
        }
    }

    /// Chooses a package for a group of alternatives that nothing chosen satisfies yet.
    /// Returns why nothing fits otherwise.
    fn choose(&self, alts: &[Relation]) -> Result<&'u Package, String> {
        // A real package with a fitting version, first alternative first.
        for rel in alts {
            if let Some(p) = self.best(&rel.name, Some(rel))
                && !self.chosen.contains_key(&p.name)
            {
                return Ok(p);
            }
        }
        // A provider of a virtual name: one the request names, else apt's favourite.
        for rel in alts {
            let providers: Vec<&'u Package> = self
                .universe
                .providers(&rel.name)
                .filter(|n| !self.chosen.contains_key(*n))
                .filter_map(|n| {
                    self.universe
                        .candidates(n)
                        .iter()
                        .find(|p| satisfies(p, rel))
                })
                .collect();
            // Like apt's provider order: essential, then by Priority, then by name.
            let rank = |p: &&&Package| (!p.essential, priority_rank(p), p.name.clone());
            let pick = providers
                .iter()
                .find(|p| self.requested.contains(&p.name))
                .or_else(|| providers.iter().min_by_key(rank));
            if let Some(p) = pick {
                if providers.len() > 1 {
                    tracing::debug!(
                        virtual_package = %rel.name,
                        chosen = %p.name,
                        candidates = ?providers.iter().map(|p| &p.name).collect::<Vec<_>>(),
                        "several packages provide it; choosing one"
                    );
                }
                return Ok(p);
            }
        }
        // Nothing: explain each alternative.
        let reasons: Vec<String> = alts
            .iter()
            .map(|rel| {
                let cands = self.universe.candidates(&rel.name);
                let why = if let Some((p, _)) = self.chosen.get(&rel.name) {
                    format!("chosen version {} does not satisfy it", p.version)
                } else if !cands.is_empty() {
                    format!("no version satisfies: available {}", versions_list(cands))
                } else if self.universe.providers.contains_key(&rel.name) {
                    "no provider satisfies it".to_string()
                } else {
                    "no such package".to_string()
                };
                if alts.len() > 1 {
                    format!("{rel}: {why}")
                } else {
                    why
                }
            })
            .collect();
        Err(reasons.join("; "))
    }

    /// Marks what `name`'s Pre-Depends and Depends need, then recurses into each newly
    /// marked package (apt's MarkInstall order).
    fn install_deps(&mut self, name: &str) -> Result<(), ResolveError> {
        let (pkg, chain) = self.chosen[name].clone();
        let groups = pkg
            .pre_depends
            .iter()
            .map(|g| ("pre-depends", g))
            .chain(pkg.depends.iter().map(|g| ("depends", g)));
        let mut newly = Vec::new();
        for (kind, alts) in groups {
            if alts
                .iter()
                .any(|rel| self.chosen.values().any(|(p, _)| satisfies(p, rel)))
            {
                continue;
            }
            let text = alts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ");
            let mut sub = chain.clone();
            sub.push(format!("{kind} {text}"));
            match self.choose(alts) {
                Ok(p) => {
                    newly.push(p.name.clone());
                    self.mark(p, sub);
                }
                Err(reason) => {
                    return Err(ResolveError::Unsatisfiable { chain: sub, reason });
                }
            }
        }
        for n in newly {
            self.install_deps(&n)?;
        }
        Ok(())
    }

    fn check_conflicts(&self) -> Result<(), ResolveError> {
        for (p, _) in self.chosen.values() {
            let rules = p
                .conflicts
                .iter()
                .map(|g| ("conflicts with", g))
                .chain(p.breaks.iter().map(|g| ("breaks", g)));
            for (kind, alts) in rules {
                for rel in alts {
                    for (q, q_chain) in self.chosen.values() {
                        // A package may conflict with what it provides itself (Policy 7.6.2).
                        if q.name == p.name {
                            continue;
                        }
                        if satisfies(q, rel) {
                            return Err(ResolveError::Conflict {
                                package: format!("{} {}", p.name, p.version),
                                kind,
                                relation: rel.to_string(),
                                other: format!("{} {}", q.name, q.version),
                                chain: q_chain.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::parse_packages;

    /// A universe from short stanzas: `name version [Field: value]...` separated by `;`.
    fn universe(specs: &[&str]) -> Universe {
        let mut text = String::new();
        for spec in specs {
            let mut parts = spec.split(';').map(str::trim);
            let head = parts.next().unwrap();
            let (name, version) = head.split_once(' ').unwrap();
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: pool/{name}_{version}.deb\nSize: 1\nSHA256: {}\n",
                "0".repeat(64)
            ));
            for field in parts {
                text.push_str(field);
                text.push('\n');
            }
            text.push('\n');
        }
        Universe::from_packages(parse_packages(&text, "amd64", "file:///r", "test").unwrap())
    }

    fn request(packages: &[&str]) -> ResolveRequest {
        ResolveRequest {
            packages: packages.iter().map(|s| s.to_string()).collect(),
            variant: Variant::None,
        }
    }

    fn names(r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    }

    #[test]
    fn test_closure_follows_pre_depends_and_depends_not_recommends() {
        let u = universe(&[
            "app 1; Depends: liba; Pre-Depends: libpre; Recommends: extra",
            "liba 1; Depends: libb (>= 2)",
            "libb 1",
            "libb 2",
            "libpre 1",
            "extra 1",
            "unrelated 1",
        ]);
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "liba=1", "libb=2", "libpre=1"]);
    }

    #[test]
    fn test_alternatives_prefer_chosen_then_first_real() {
        let u = universe(&[
            "app 1; Depends: mta-a | mta-b",
            "mta-a 1",
            "mta-b 1",
            "other 1; Depends: mta-b",
        ]);
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "mta-a=1"]);
        // mta-b is requested, so it is marked before app's dependencies are looked at.
        let r = resolve(&u, &request(&["app", "mta-b"])).unwrap();
        assert_eq!(names(&r), ["app=1", "mta-b=1"]);
        // Dependencies are closed in request order: other's choice is seen by app ...
        let r = resolve(&u, &request(&["other", "app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "mta-b=1", "other=1"]);
        // ... and the other way round app takes its first alternative (as apt would).
        let r = resolve(&u, &request(&["app", "other"])).unwrap();
        assert_eq!(names(&r), ["app=1", "mta-a=1", "mta-b=1", "other=1"]);
        // The first alternative does not exist: the second one is taken.
        let u = universe(&["app 1; Depends: gone | mta-b (>= 1)", "mta-b 1"]);
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "mta-b=1"]);
    }

    #[test]
    fn test_alternative_with_unsatisfiable_version_is_skipped() {
        let u = universe(&["app 1; Depends: a (>= 5) | b", "a 1", "b 1"]);
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "b=1"]);
    }

    #[test]
    fn test_virtual_package_providers_chosen_deterministically() {
        let u = universe(&[
            "app 1; Depends: mail-transport-agent",
            "zmailer 1; Provides: mail-transport-agent",
            "exim 1; Provides: mail-transport-agent",
        ]);
        // Several providers, none requested: the first by name.
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "exim=1"]);
        // The request names one: that one.
        let r = resolve(&u, &request(&["zmailer", "app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "zmailer=1"]);
        // A virtual name can itself be requested.
        let r = resolve(&u, &request(&["mail-transport-agent"])).unwrap();
        assert_eq!(names(&r), ["exim=1"]);
        // Priority beats the name (mawk over gawk for `awk`), Essential beats Priority.
        let u = universe(&[
            "base 1; Pre-Depends: awk",
            "gawk 1; Priority: optional; Provides: awk",
            "mawk 1; Priority: required; Provides: awk",
        ]);
        let r = resolve(&u, &request(&["base"])).unwrap();
        assert_eq!(names(&r), ["base=1", "mawk=1"]);
        let u = universe(&[
            "base 1; Pre-Depends: awk",
            "busybox 1; Priority: optional; Essential: yes; Provides: awk",
            "mawk 1; Priority: required; Provides: awk",
        ]);
        let r = resolve(&u, &request(&["base"])).unwrap();
        assert_eq!(names(&r), ["base=1", "busybox=1"]);
    }

    #[test]
    fn test_versioned_dependency_needs_versioned_provides() {
        let u = universe(&[
            "app 1; Depends: awk (>= 2)",
            "plain 1; Provides: awk",
            "versioned 1; Provides: awk (= 3)",
        ]);
        let r = resolve(&u, &request(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1", "versioned=1"]);
    }

    #[test]
    fn test_unsatisfiable_dependency_names_whole_chain() {
        let u = universe(&[
            "git 1; Depends: libcurl3-gnutls (>= 7.88)",
            "libcurl3-gnutls 7.74",
            "libcurl3-gnutls 7.70",
        ]);
        let e = resolve(&u, &request(&["git"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requested git -> depends libcurl3-gnutls (>= 7.88) -> no version satisfies: available 7.74, 7.70"
        );
        let u = universe(&[
            "top 1; Depends: mid",
            "mid 1; Pre-Depends: a | b (>= 2)",
            "b 1",
        ]);
        let e = resolve(&u, &request(&["top"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requested top -> depends mid -> pre-depends a | b (>= 2) -> a: no such package; b (>= 2): no version satisfies: available 1"
        );
        let e = resolve(&u, &request(&["nope"])).unwrap_err();
        assert_eq!(e.to_string(), "requested nope -> no such package");
    }

    #[test]
    fn test_chosen_version_that_fails_a_later_constraint_is_an_error() {
        let u = universe(&[
            "a 1; Depends: lib (<< 2)",
            "b 1; Depends: lib (>= 2)",
            "lib 1",
            "lib 2",
        ]);
        let e = resolve(&u, &request(&["a", "b"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requested b -> depends lib (>= 2) -> chosen version 1 does not satisfy it"
        );
    }

    #[test]
    fn test_conflicts_and_breaks_between_chosen_are_errors() {
        let u = universe(&["a 1; Conflicts: b", "b 1"]);
        let e = resolve(&u, &request(&["a", "b"])).unwrap_err();
        assert!(matches!(e, ResolveError::Conflict { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "a 1 conflicts with b, but b 1 is chosen (requested b)"
        );
        let u = universe(&["a 1; Breaks: b (<< 2)", "b 1", "c 1; Depends: b"]);
        let e = resolve(&u, &request(&["a", "c"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a 1 breaks b (<< 2), but b 1 is chosen (requested c -> depends b)"
        );
        // Breaks outside the version range and self-conflicts via Provides are fine.
        let u = universe(&[
            "a 1; Breaks: b (<< 1); Provides: mta; Conflicts: mta",
            "b 1",
        ]);
        let r = resolve(&u, &request(&["a", "b"])).unwrap();
        assert_eq!(names(&r), ["a=1", "b=1"]);
    }

    #[test]
    fn test_variants_select_base_sets() {
        let u = universe(&[
            "apt 2; Priority: important; Depends: libapt",
            "libapt 2; Priority: optional",
            "dpkg 1; Priority: required; Essential: yes",
            "mawk 1; Priority: required",
            "vim 1; Priority: optional",
        ]);
        let mut req = request(&["vim"]);
        req.variant = Variant::Minbase;
        let r = resolve(&u, &req).unwrap();
        assert_eq!(
            names(&r),
            ["apt=2", "dpkg=1", "libapt=2", "mawk=1", "vim=1"]
        );
        req.variant = Variant::Essential;
        let r = resolve(&u, &req).unwrap();
        assert_eq!(names(&r), ["dpkg=1", "vim=1"]);
        assert_eq!("minbase".parse::<Variant>().unwrap(), Variant::Minbase);
        assert!("mini".parse::<Variant>().is_err());
    }

    #[test]
    fn test_essential_stage_provides_satisfy_later_dependencies() {
        // mmdebstrap installs the Essential set first: a later dependency on `lsb-base` is
        // then met by sysvinit-utils' Provides, and the real lsb-base is not pulled in.
        let u = universe(&[
            "sysvinit-utils 3; Essential: yes; Provides: lsb-base (= 11.1.0)",
            "lsb-base 11.6; Depends: sysvinit-utils",
            "openssh-server 9; Depends: lsb-base",
        ]);
        let mut req = request(&["openssh-server"]);
        req.variant = Variant::Essential;
        let r = resolve(&u, &req).unwrap();
        assert_eq!(names(&r), ["openssh-server=9", "sysvinit-utils=3"]);
    }

    #[test]
    fn test_request_pins_exact_version() {
        let u = universe(&["lib 1", "lib 2"]);
        let r = resolve(&u, &request(&["lib=1"])).unwrap();
        assert_eq!(names(&r), ["lib=1"]);
        let e = resolve(&u, &request(&["lib=3"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requested lib=3 -> no version satisfies: available 2, 1"
        );
    }

    #[test]
    fn test_universe_merges_repositories_with_pins_and_allow_lists() {
        use crate::release::Release;
        use crate::repo::{RepoIndex, Repository};
        let pkgs = |text: &str, base: &str| {
            let mut s = String::new();
            for (name, version) in text.split(',').map(|x| x.trim().split_once(' ').unwrap()) {
                s.push_str(&format!(
                    "Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: {name}.deb\nSize: 1\nSHA256: {}\n\n",
                    "0".repeat(64)
                ));
            }
            parse_packages(&s, "amd64", base, "t").unwrap()
        };
        let release = Release::parse_unverified(
            &format!(
                "Suite: x\nSHA256:\n {} 1 main/binary-amd64/Packages\n",
                "0".repeat(64)
            ),
            "t",
        )
        .unwrap();
        let index = |uri: &str, list: &str, allow: Option<&[&str]>| RepoIndex {
            repository: Repository {
                uri: uri.into(),
                suite: "x".into(),
                components: vec!["main".into()],
                architecture: "amd64".into(),
                keyring: "k".into(),
                allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            },
            release: release.clone(),
            inrelease_sha256: String::new(),
            packages: pkgs(list, uri),
        };
        let u = Universe::new(&[
            index("file:///main", "curl 7.74, tool 1, same 1", None),
            index("file:///updates", "curl 7.88, same 1", None),
            index(
                "file:///vendor",
                "tool 0.5, extra 1, curl 9",
                Some(&["tool"]),
            ),
        ]);
        // Highest version wins across unpinned repositories.
        assert_eq!(u.get("curl").unwrap().version.to_string(), "7.88");
        assert_eq!(u.get("curl").unwrap().base_uri, "file:///updates");
        // The allow-list pins `tool` to the vendor's (lower) version ...
        assert_eq!(u.get("tool").unwrap().version.to_string(), "0.5");
        assert_eq!(u.candidates("tool").len(), 2);
        // ... and keeps everything else of that repository out.
        assert!(u.get("extra").is_none());
        assert_eq!(u.candidates("curl").len(), 2);
        // Equal versions: the earlier repository wins.
        assert_eq!(u.get("same").unwrap().base_uri, "file:///main");
    }
}
