//! Dependency relation fields (`Depends`, `Pre-Depends`, `Provides`, `Conflicts`, ...).
//!
//! Grammar (Debian Policy 7.1): comma-separated groups of `|`-separated alternatives, each
//! `name[:arch-qualifier] [(op version)] [[arch list]] [<build profiles>]`. Operators are
//! `<<`, `<=`, `=`, `>=`, `>>` (and the obsolete `<`/`>`, read as `<=`/`>=` as dpkg does).
//! Architecture lists are kept so callers can drop relations for other architectures; build
//! profile lists are parsed and ignored (they only matter for source packages).

use std::fmt;
use std::str::FromStr;

use crate::version::Version;

/// A malformed relation field, naming the text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relation {text:?}: {reason}")]
pub struct RelationError {
    /// The relation (one alternative) that failed to parse.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A version comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelOp {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=`: earlier or equal.
    Le,
    /// `=`: exactly equal.
    Eq,
    /// `>=`: later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl RelOp {
    /// The operator as written in control files.
    pub fn as_str(self) -> &'static str {
        match self {
            RelOp::Lt => "<<",
            RelOp::Le => "<=",
            RelOp::Eq => "=",
            RelOp::Ge => ">=",
            RelOp::Gt => ">>",
        }
    }
}

impl fmt::Display for RelOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `(op version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    /// The comparison.
    pub op: RelOp,
    /// The version compared against.
    pub version: Version,
}

impl VersionConstraint {
    /// Whether `v` satisfies this constraint.
    pub fn matches(&self, v: &Version) -> bool {
        let ord = v.cmp(&self.version);
        match self.op {
            RelOp::Lt => ord.is_lt(),
            RelOp::Le => ord.is_le(),
            RelOp::Eq => ord.is_eq(),
            RelOp::Ge => ord.is_ge(),
            RelOp::Gt => ord.is_gt(),
        }
    }
}

impl fmt::Display for VersionConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.version)
    }
}

/// One alternative of a relation: a package name with optional qualifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The package (or virtual package) name.
    pub name: String,
    /// `:any`, `:native` or an architecture name, without the colon.
    pub arch_qualifier: Option<String>,
    /// The version constraint, if any.
    pub constraint: Option<VersionConstraint>,
    /// The `[...]` architecture restriction list as written (`amd64`, `!i386`); empty when
    /// the relation holds on every architecture.
    pub architectures: Vec<String>,
}

impl Relation {
    /// Whether the relation applies on `arch`, per its `[...]` list (Policy 7.1: a list of
    /// plain names includes, a list of `!names` excludes).
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.architectures.is_empty() {
            return true;
        }
        let negated = self.architectures.iter().all(|a| a.starts_with('!'));
        if negated {
            !self
                .architectures
                .iter()
                .any(|a| &a[1..] == arch || &a[1..] == "any")
        } else {
            self.architectures.iter().any(|a| a == arch || a == "any")
        }
    }

    /// Whether `version` of the named package satisfies this relation's constraint (always
    /// true without one).
    pub fn version_matches(&self, version: &Version) -> bool {
        self.constraint.as_ref().is_none_or(|c| c.matches(version))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({c})")?;
        }
        if !self.architectures.is_empty() {
            write!(f, " [{}]", self.architectures.join(" "))?;
        }
        Ok(())
    }
}

impl FromStr for Relation {
    type Err = RelationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_one(text)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

fn parse_one(text: &str) -> Result<Relation, RelationError> {
    let err = |reason: &str| RelationError {
        text: text.trim().to_string(),
        reason: reason.to_string(),
    };
    let mut rest = text.trim();
    let name_end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() {
        return Err(err("missing package name"));
    }
    rest = &rest[name_end..];
    let mut arch_qualifier = None;
    if let Some(r) = rest.strip_prefix(':') {
        let end = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(r.len());
        if end == 0 {
            return Err(err("empty architecture qualifier after ':'"));
        }
        arch_qualifier = Some(r[..end].to_string());
        rest = &r[end..];
    }
    rest = rest.trim_start();
    let mut constraint = None;
    if let Some(r) = rest.strip_prefix('(') {
        let close = r.find(')').ok_or_else(|| err("unclosed '('"))?;
        let inner = r[..close].trim();
        rest = r[close + 1..].trim_start();
        let (op, ver) = if let Some(v) = inner.strip_prefix("<<") {
            (RelOp::Lt, v)
        } else if let Some(v) = inner.strip_prefix("<=") {
            (RelOp::Le, v)
        } else if let Some(v) = inner.strip_prefix(">=") {
            (RelOp::Ge, v)
        } else if let Some(v) = inner.strip_prefix(">>") {
            (RelOp::Gt, v)
        } else if let Some(v) = inner.strip_prefix('=') {
            (RelOp::Eq, v)
        } else if let Some(v) = inner.strip_prefix('<') {
            (RelOp::Le, v) // obsolete, dpkg reads it as <=
        } else if let Some(v) = inner.strip_prefix('>') {
            (RelOp::Ge, v) // obsolete, dpkg reads it as >=
        } else {
            return Err(err("version constraint without an operator"));
        };
        let version = ver
            .trim()
            .parse()
            .map_err(|e: crate::version::VersionError| err(&e.to_string()))?;
        constraint = Some(VersionConstraint { op, version });
    }
    let mut architectures = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']').ok_or_else(|| err("unclosed '['"))?;
        architectures = r[..close].split_whitespace().map(str::to_string).collect();
        if architectures.is_empty() {
            return Err(err("empty architecture list"));
        }
        rest = r[close + 1..].trim_start();
    }
    // Build profile restriction lists: `<!nocheck> <stage1 cross>`. Parsed, then ignored.
    while let Some(r) = rest.strip_prefix('<') {
        let close = r.find('>').ok_or_else(|| err("unclosed '<'"))?;
        rest = r[close + 1..].trim_start();
    }
    if !rest.is_empty() {
        return Err(err(&format!("unexpected text {rest:?}")));
    }
    Ok(Relation {
        name: name.to_string(),
        arch_qualifier,
        constraint,
        architectures,
    })
}

/// Parses a relation field into groups of alternatives: `a (>= 1) | b, c` gives
/// `[[a (>= 1), b], [c]]`. Empty groups (a trailing comma) are skipped.
///
/// ```
/// let groups = vmimage_apt::parse_relations("a (>= 1.0) | b:any, c [amd64] <!nocheck>").unwrap();
/// assert_eq!(groups[0][0].to_string(), "a (>= 1.0)");
/// assert_eq!(groups[0][1].arch_qualifier.as_deref(), Some("any"));
/// assert!(groups[1][0].applies_to("amd64"));
/// ```
pub fn parse_relations(field: &str) -> Result<Vec<Vec<Relation>>, RelationError> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alts = group
            .split('|')
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alts);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_groups_alternatives_qualifiers_and_restrictions() {
        let g = parse_relations("a (>= 1.0) | b:any, c [amd64] <!nocheck>, d:native (<< 2:3-1)")
            .unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].len(), 2);
        assert_eq!(g[0][0].name, "a");
        let c = g[0][0].constraint.as_ref().unwrap();
        assert_eq!(
            (c.op, c.version.to_string()),
            (RelOp::Ge, "1.0".to_string())
        );
        assert_eq!(g[0][1].name, "b");
        assert_eq!(g[0][1].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(g[1][0].architectures, ["amd64"]);
        assert_eq!(g[2][0].arch_qualifier.as_deref(), Some("native"));
        assert_eq!(g[2][0].constraint.as_ref().unwrap().op, RelOp::Lt);
        assert_eq!(g[2][0].to_string(), "d:native (<< 2:3-1)");
    }

    #[test]
    fn test_parse_reads_every_operator_and_tight_spacing() {
        for (text, op) in [
            ("x (<< 1)", RelOp::Lt),
            ("x (<= 1)", RelOp::Le),
            ("x (= 1)", RelOp::Eq),
            ("x (>= 1)", RelOp::Ge),
            ("x (>> 1)", RelOp::Gt),
            ("x(>=1)", RelOp::Ge),
            ("x (< 1)", RelOp::Le),
            ("x (> 1)", RelOp::Ge),
        ] {
            let r: Relation = text.parse().unwrap();
            assert_eq!(r.constraint.unwrap().op, op, "{text}");
        }
    }

    #[test]
    fn test_parse_handles_folded_fields_and_trailing_commas() {
        let g = parse_relations("libc6 (>= 2.34),\n libgcc-s1 (>= 3.0),\n").unwrap();
        let names: Vec<&str> = g.iter().map(|a| a[0].name.as_str()).collect();
        assert_eq!(names, ["libc6", "libgcc-s1"]);
    }

    #[test]
    fn test_parse_rejects_malformed_relations() {
        for bad in [
            "(>= 1)", "a (>= 1", "a (1.0)", "a [amd64", "a b", "a:", "a (>= !)", "a | ",
        ] {
            let e = parse_relations(bad).expect_err(bad);
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn test_constraint_matching_follows_operators() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let c = |op, s: &str| VersionConstraint { op, version: v(s) };
        assert!(c(RelOp::Ge, "7.88").matches(&v("7.88.1-10")));
        assert!(!c(RelOp::Ge, "7.88").matches(&v("7.74.0-1.3")));
        assert!(c(RelOp::Lt, "2.0").matches(&v("2.0~rc1")));
        assert!(!c(RelOp::Gt, "1.0").matches(&v("1.0")));
        assert!(c(RelOp::Eq, "1.0").matches(&v("0:1.0-0")));
        assert!(c(RelOp::Le, "1.0").matches(&v("1.0")));
    }

    #[test]
    fn test_arch_restrictions_include_or_exclude() {
        let r = |s: &str| s.parse::<Relation>().unwrap();
        assert!(r("x [amd64 arm64]").applies_to("amd64"));
        assert!(!r("x [arm64]").applies_to("amd64"));
        assert!(!r("x [!amd64]").applies_to("amd64"));
        assert!(r("x [!i386]").applies_to("amd64"));
        assert!(r("x").applies_to("amd64"));
    }
}
