//! Debian package versions (`[epoch:]upstream[-revision]`) with dpkg's ordering.
//!
//! Parsing follows dpkg's `parseversion` (lib/dpkg/parsehelp.c): the epoch is the digits before
//! the first `:`, the revision is what follows the last `-`. Ordering follows `verrevcmp`
//! (lib/dpkg/version.c): compare epochs numerically, then upstream and revision part by part,
//! where non-digit runs compare character by character (`~` before the end of the string,
//! which sorts before letters, which sort before other characters) and digit runs compare as
//! numbers. Limits: dpkg's "does not start with a digit" warning is accepted silently, as dpkg
//! itself does when reading archives.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parse failure, naming the offending version string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {version:?}: {reason}")]
pub struct VersionError {
    /// The text that failed to parse.
    pub version: String,
    /// Why it is not a valid Debian version.
    pub reason: &'static str,
}

/// A Debian version: `Ord` is dpkg's ordering, `Display` gives back the canonical text
/// (the epoch is shown only when it is non-zero or was written).
///
/// ```
/// use vmimage_apt::Version;
/// let v = |s: &str| s.parse::<Version>().unwrap();
/// assert!(v("1.0~rc1") < v("1.0"));
/// assert!(v("1.0") < v("1.0+b1"));
/// assert!(v("1:0.9") > v("2.0"));
/// assert_eq!(v("0:1.0-0"), v("1.0"));
/// assert_eq!(v("1:2.3-4").to_string(), "1:2.3-4");
/// ```
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u32,
    upstream: String,
    revision: String,
    /// Whether the text carried an epoch (`0:1.0` keeps its `0:` when printed).
    explicit_epoch: bool,
    /// Whether the text carried a revision (`1.0-` is invalid; `1.0` has none).
    has_revision: bool,
}

impl Version {
    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream part, between the epoch and the last `-`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision, after the last `-` (empty when absent).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| VersionError {
            version: text.to_string(),
            reason,
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(err("version string is empty"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(err("version string has embedded spaces"));
        }
        let (epoch, explicit_epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() {
                    return Err(err("epoch in version is empty"));
                }
                if !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("epoch in version is not number"));
                }
                let epoch: u32 = e.parse().map_err(|_| err("epoch in version is too big"))?;
                if epoch > i32::MAX as u32 {
                    return Err(err("epoch in version is too big"));
                }
                (epoch, true, rest)
            }
            None => (0, false, s),
        };
        let (upstream, revision, has_revision) = match rest.rsplit_once('-') {
            Some((u, r)) => {
                if r.is_empty() {
                    return Err(err("revision number is empty"));
                }
                (u, r, true)
            }
            None => (rest, "", false),
        };
        if upstream.is_empty() {
            return Err(err("version number is empty"));
        }
        if !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
        {
            return Err(err("invalid character in version number"));
        }
        if !revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        {
            return Err(err("invalid character in revision number"));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
            explicit_epoch,
            has_revision,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.explicit_epoch || self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if self.has_revision {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

/// dpkg's weight of one non-digit character; 0 stands for the end of the string.
fn order(c: u8) -> i32 {
    match c {
        0 => 0,
        b'~' => -1,
        c if c.is_ascii_digit() => 0,
        c if c.is_ascii_alphabetic() => i32::from(c),
        c => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: compares upstream or revision strings.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let at = |i: usize| a.get(i).copied().unwrap_or(0);
    let bt = |j: usize| b.get(j).copied().unwrap_or(0);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (at(i) != 0 && !at(i).is_ascii_digit()) || (bt(j) != 0 && !bt(j).is_ascii_digit()) {
            let (ac, bc) = (order(at(i)), order(bt(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically: skip leading zeros, then the longer run wins, else the
        // first differing digit.
        while at(i) == b'0' {
            i += 1;
        }
        while bt(j) == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while at(i).is_ascii_digit() && bt(j).is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = at(i).cmp(&bt(j));
            }
            i += 1;
            j += 1;
        }
        if at(i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if bt(j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equality is dpkg's: `1.0` equals `0:1.0` and `1.0-0`.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn cmp(a: &str, b: &str) -> Ordering {
        v(a).cmp(&v(b))
    }

    /// apt's test/libapt/versions.lst (itself checked against `dpkg --compare-versions`)
    /// plus the comparisons of dpkg's lib/dpkg/t/t-version.c.
    const VECTORS: &[(&str, &str, i8)] = &[
        ("7.6p2-4", "7.6-0", 1),
        ("1.0.3-3", "1.0-1", 1),
        ("1.3", "1.2.2-2", 1),
        ("1.3", "1.2.2", 1),
        ("1:0.4", "10.3", 1),
        ("1:1.25-4", "1:1.25-8", -1),
        ("0:1.18.36", "1.18.36", 0),
        ("1.18.36", "1.18.35", 1),
        ("0:1.18.36", "1.18.35", 1),
        ("9:1.18.36:5.4-20", "10:0.5.1-22", -1),
        ("9:1.18.36:5.4-20", "9:1.18.36:5.5-1", -1),
        ("9:1.18.36:5.4-20", "9:1.18.37:4.3-22", -1),
        ("1.18.36-0.17.35-18", "1.18.36-19", 1),
        ("1:1.2.13-3", "1:1.2.13-3.1", -1),
        ("2.0.7pre1-4", "2.0.7r-1", -1),
        ("0-pre", "0-pre", 0),
        ("0-pre", "0-pree", -1),
        ("1.1.6r2-2", "1.1.6r-1", 1),
        ("2.6b2-1", "2.6b-2", 1),
        ("98.1p5-1", "98.1-pre2-b6-2", -1),
        ("0.4a6-2", "0.4-1", 1),
        ("1:3.0.5-2", "1:3.0.5.1", -1),
        ("3.0~rc1-1", "3.0-1", -1),
        ("1.0", "1.0-0", 0),
        ("0.2", "1.0-0", -1),
        ("1.0", "1.0-0+b1", -1),
        ("1.0", "1.0-0~", 1),
        ("0:0-0-0", "0-0", 1),
        ("0", "0", 0),
        ("0", "00", 0),
        ("1.2.3", "1.2.3", 0),
        ("4.4.3-2", "4.4.3-2", 0),
        ("1:2ab:5", "1:2ab:5", 0),
        ("7:1-a:b-5", "7:1-a:b-5", 0),
        ("57:1.2.3abYZ+~-4-5", "57:1.2.3abYZ+~-4-5", 0),
        ("1.2.3", "0:1.2.3", 0),
        ("1.2.3", "1.2.3-0", 0),
        ("009", "9", 0),
        ("009ab5", "9ab5", 0),
        ("1.2.3", "1.2.3-1", -1),
        ("1.2.3", "1.2.4", -1),
        ("1.2.4", "1.2.3", 1),
        ("1.2.24", "1.2.3", 1),
        ("0.10.0", "0.8.7", 1),
        ("3.2", "2.3", 1),
        ("1.3.2a", "1.3.2", 1),
        ("0.5.0~git", "0.5.0~git2", -1),
        ("2a", "21", -1),
        ("1.3.2a", "1.3.2b", -1),
        ("1:1.2.3", "1.2.4", 1),
        ("1:1.2.3", "1:1.2.4", -1),
        ("1.2a+~bCd3", "1.2a++", -1),
        ("1.2a+~bCd3", "1.2a+~", 1),
        ("5:2", "304-2", 1),
        ("5:2", "304:2", -1),
        ("25:2", "3:2", 1),
        ("1:2:123", "1:12:3", -1),
        ("1.2-5", "1.2-3-5", -1),
        ("5.10.0", "5.005", 1),
        ("3a9.8", "3.10.2", -1),
        ("3a9.8", "3~10", 1),
        ("1.4+OOo3.0.0~", "1.4+OOo3.0.0-4", -1),
        ("2.4.7-1", "2.4.7-z", -1),
        ("1.002-1+b2", "1.00", 1),
        // t-version.c
        ("0-0", "0-00", 0),
        ("0:0-0", "00-0", 0),
        ("1:2-3", "1:2-3", 0),
        ("0-0", "1:0-0", -1),
        ("0a-0", "0b-0", -1),
        ("0-a", "0-b", -1),
        ("1-1", "2-1", -1),
        ("1-1", "1-2", -1),
        // the tilde family
        ("1.0~rc1", "1.0", -1),
        ("1.0~~", "1.0~", -1),
        ("1.0~~a", "1.0~~", 1),
        ("1.0~", "1.0", -1),
        ("1.0", "1.0a", -1),
        ("1.0a", "1.0+", -1),
        ("1.0+", "1.0.", -1),
    ];

    #[test]
    fn test_compare_matches_dpkg_vectors() {
        for &(a, b, want) in VECTORS {
            let want = want.cmp(&0);
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    /// The installed dpkg is the reference implementation: every vector must agree with
    /// `dpkg --compare-versions` as well (fails loudly when dpkg is missing).
    #[test]
    fn test_compare_agrees_with_installed_dpkg() {
        for &(a, b, _) in VECTORS.iter().step_by(3) {
            let ours = cmp(a, b);
            for (op, holds) in [
                ("lt", ours.is_lt()),
                ("eq", ours.is_eq()),
                ("gt", ours.is_gt()),
            ] {
                let status = std::process::Command::new("dpkg")
                    .args(["--compare-versions", a, op, b])
                    .status()
                    .expect("dpkg must be installed (scripts/deps.sh)");
                assert_eq!(
                    status.success(),
                    holds,
                    "dpkg --compare-versions {a} {op} {b}"
                );
            }
        }
    }

    #[test]
    fn test_parse_splits_epoch_upstream_revision() {
        let x = v("1:2.3-4-5");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (1, "2.3-4", "5"));
        let x = v("0:0:0-0");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "0:0", "0"));
        let x = v("  \t0:0-1  ");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "0", "1"));
        let x = v("2.36");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "2.36", ""));
        assert_eq!(v("0:09azAZ.-+~:-0").upstream(), "09azAZ.-+~:");
        assert_eq!(v("0:0-azAZ09.+~").revision(), "azAZ09.+~");
    }

    #[test]
    fn test_display_round_trips() {
        for s in [
            "1.0",
            "0:1.0",
            "1:2.3-4",
            "2.36-9+deb12u10",
            "1.0~rc1-1~bpo12+1",
        ] {
            assert_eq!(v(s).to_string(), s);
        }
    }

    #[test]
    fn test_parse_rejects_malformed_versions() {
        for bad in [
            "",
            "  ",
            "0:",
            "0:0 0-1",
            "-1:0-1",
            "999999999999999999999999:0-1",
            "a:0-0",
            "A:0-0",
            "-0",
            "0:-0",
            "0:0-",
            "0:0-0:0",
            "0:0!-0",
            "0:0_-0",
            "0:0-0_",
        ] {
            let e = bad.parse::<Version>().expect_err(bad);
            assert_eq!(e.version, bad);
        }
    }

    #[test]
    fn test_equal_versions_are_equal_across_spellings() {
        assert_eq!(v("1.0"), v("0:1.0-0"));
        assert_ne!(v("1.0"), v("1.0-1"));
        let mut list: Vec<Version> = ["1.0-1", "1:0.1", "1.0~rc1", "1.0", "0.9"]
            .iter()
            .map(|s| v(s))
            .collect();
        list.sort();
        let sorted: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, ["0.9", "1.0~rc1", "1.0", "1.0-1", "1:0.1"]);
    }
}
