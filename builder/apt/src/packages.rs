//! Binary package records from a `Packages` index.
//!
//! Each stanza becomes a [`Package`]: the fields the resolver and installer need, parsed
//! (versions, relations, sizes, hashes), plus the raw stanza for `/var/lib/dpkg/status`.
//! Relations restricted to other architectures are dropped here, so the resolver only sees
//! what applies. Limits: `Recommends`/`Suggests` are recorded but never followed.

use crate::deb822::{Paragraph, parse_paragraphs};
use crate::relation::{Relation, parse_relations};
use crate::repo::IndexError;
use crate::version::Version;

/// One binary package as listed in a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: Version,
    /// `Architecture` (`amd64`, `all`, ...).
    pub architecture: String,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`), if present.
    pub multi_arch: Option<String>,
    /// `Priority` (`required`, `important`, `standard`, `optional`, `extra`), if present.
    pub priority: Option<String>,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Section`, if present.
    pub section: Option<String>,
    /// `Depends`, groups of alternatives.
    pub depends: Vec<Vec<Relation>>,
    /// `Pre-Depends`, groups of alternatives.
    pub pre_depends: Vec<Vec<Relation>>,
    /// `Recommends` (recorded, never installed).
    pub recommends: Vec<Vec<Relation>>,
    /// `Provides`: virtual names, possibly versioned (`(= 1.2)`).
    pub provides: Vec<Relation>,
    /// `Conflicts`.
    pub conflicts: Vec<Vec<Relation>>,
    /// `Breaks`.
    pub breaks: Vec<Vec<Relation>>,
    /// `Replaces`.
    pub replaces: Vec<Vec<Relation>>,
    /// `Filename`: path of the `.deb` below the repository's base URI.
    pub filename: String,
    /// `Size` of the `.deb` in bytes.
    pub size: u64,
    /// `SHA256` of the `.deb`, lowercase hex.
    pub sha256: String,
    /// `Source`, if it differs from the package name (may carry `(version)`).
    pub source: Option<String>,
    /// `Installed-Size` in KiB, if present.
    pub installed_size: Option<u64>,
    /// First line of `Description`, if present.
    pub description: Option<String>,
    /// The whole stanza as the index wrote it (each line ending in `\n`).
    pub stanza: String,
    /// Base URI of the repository this record came from (no trailing `/`).
    pub base_uri: String,
}

impl Package {
    /// Where to download the `.deb`: base URI joined with `Filename`.
    pub fn download_url(&self) -> String {
        format!(
            "{}/{}",
            self.base_uri,
            self.filename.trim_start_matches('/')
        )
    }

    /// `Priority: required`.
    pub fn is_required(&self) -> bool {
        self.priority.as_deref() == Some("required")
    }

    /// Parses one stanza. `arch` filters arch-restricted relations; `origin` names the index
    /// in errors; `base_uri` is recorded for [`Package::download_url`].
    pub fn from_paragraph(
        p: &Paragraph,
        arch: &str,
        base_uri: &str,
        origin: &str,
    ) -> Result<Package, IndexError> {
        let err = |message: String| IndexError::Parse {
            url: origin.to_string(),
            line: p.line(),
            message,
        };
        let name = p
            .get("Package")
            .ok_or_else(|| err("stanza without a Package field".into()))?
            .to_string();
        let required = |field: &str| {
            p.get(field)
                .ok_or_else(|| err(format!("package {name}: missing field {field}")))
        };
        let version = required("Version")?
            .parse::<Version>()
            .map_err(|e| err(format!("package {name}: {e}")))?;
        let number = |field: &str, text: &str| {
            text.parse::<u64>().map_err(|_| {
                err(format!(
                    "package {name}: field {field}: not a number: {text:?}"
                ))
            })
        };
        let size = number("Size", required("Size")?)?;
        let sha256 = required("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!(
                "package {name}: field SHA256: not a SHA256: {sha256:?}"
            )));
        }
        let installed_size = p
            .get("Installed-Size")
            .map(|t| number("Installed-Size", t))
            .transpose()?;
        let rel = |field: &str| {
            relations_for_arch(p.get(field), arch)
                .map_err(|e| err(format!("package {name}: field {field}: {e}")))
        };
        let provides = rel("Provides")?.into_iter().flatten().collect();
        let opt = |field: &str| p.get(field).map(str::to_string);
        Ok(Package {
            version,
            architecture: required("Architecture")?.to_string(),
            multi_arch: opt("Multi-Arch"),
            priority: opt("Priority"),
            essential: p
                .get("Essential")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            section: opt("Section"),
            depends: rel("Depends")?,
            pre_depends: rel("Pre-Depends")?,
            recommends: rel("Recommends")?,
            provides,
            conflicts: rel("Conflicts")?,
            breaks: rel("Breaks")?,
            replaces: rel("Replaces")?,
            filename: required("Filename")?.to_string(),
            size,
            sha256,
            source: opt("Source"),
            installed_size,
            description: p
                .get("Description")
                .map(|d| d.lines().next().unwrap_or("").to_string()),
            stanza: p.raw().to_string(),
            base_uri: base_uri.trim_end_matches('/').to_string(),
            name,
        })
    }
}

/// Parses a whole (decompressed) `Packages` index. `origin` (usually its URL) names the index
/// in errors; records are returned in index order.
///
/// Large indices (Debian's main has 60,000+ stanzas) are cut at stanza boundaries and parsed
/// on all cores; the result and the first error are the same as a sequential parse.
pub fn parse_packages(
    text: &str,
    arch: &str,
    base_uri: &str,
    origin: &str,
) -> Result<Vec<Package>, IndexError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks = split_at_stanzas(text, threads);
    if chunks.len() <= 1 {
        return parse_chunk(text, 0, arch, base_uri, origin);
    }
    let results: Vec<Result<Vec<Package>, IndexError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(chunk, line_offset)| {
                scope.spawn(move || parse_chunk(chunk, line_offset, arch, base_uri, origin))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("Packages parser thread panicked"))
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Minimum chunk size worth a thread.
const PARALLEL_CHUNK_MIN: usize = 1 << 20;

/// Cuts `text` into at most `n` pieces, each ending at a blank line, with the number of
/// lines before each piece.
fn split_at_stanzas(text: &str, n: usize) -> Vec<(&str, usize)> {
    let n = n.min(text.len() / PARALLEL_CHUNK_MIN).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut lines_before = 0;
    for i in 1..n {
        let target = (text.len() * i / n).max(start);
        let Some(rel) = text[target..].find("\n\n") else {
            break;
        };
        let end = target + rel + 2;
        out.push((&text[start..end], lines_before));
        lines_before += text[start..end].bytes().filter(|&b| b == b'\n').count();
        start = end;
    }
    out.push((&text[start..], lines_before));
    out
}

fn parse_chunk(
    text: &str,
    line_offset: usize,
    arch: &str,
    base_uri: &str,
    origin: &str,
) -> Result<Vec<Package>, IndexError> {
    let paragraphs = parse_paragraphs(text).map_err(|e| IndexError::Parse {
        url: origin.to_string(),
        line: e.line + line_offset,
        message: e.message,
    })?;
    paragraphs
        .iter()
        .map(|p| {
            Package::from_paragraph(p, arch, base_uri, origin).map_err(|e| match e {
                IndexError::Parse { url, line, message } => IndexError::Parse {
                    url,
                    line: line + line_offset,
                    message,
                },
                other => other,
            })
        })
        .collect()
}

/// Parses a relation field, dropping alternatives restricted to other architectures (and
/// groups left empty by that).
fn relations_for_arch(
    field: Option<&str>,
    arch: &str,
) -> Result<Vec<Vec<Relation>>, crate::relation::RelationError> {
    let Some(field) = field else {
        return Ok(Vec::new());
    };
    Ok(parse_relations(field)?
        .into_iter()
        .filter_map(|alts| {
            let alts: Vec<Relation> = alts.into_iter().filter(|r| r.applies_to(arch)).collect();
            (!alts.is_empty()).then_some(alts)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "\
Package: libc6
Version: 2.36-9+deb12u10
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Replaces: libc6-amd64
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6), hurd (<< 1:0.9.git20220301-2)
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Multi-Arch: same
Homepage: https://www.gnu.org/software/libc/libc.html
Section: libs
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 2757936
SHA256: 8D2A1B8EC6C1AB29C0E6A0B6BC44EAC8A3AA3F2E1F0EAF7B8C1F4F3EE0A1D1E5

Package: dpkg
Essential: yes
Version: 1.21.22
Architecture: amd64
Pre-Depends: libbz2-1.0, libc6 (>= 2.34), liblzma5 (>= 5.4.0), libmd0 (>= 0.0.0), libselinux1 (>= 3.1~), libzstd1 (>= 1.5.2), zlib1g (>= 1:1.1.4)
Depends: tar (>= 1.28-1)
Provides: dpkg-dev-tools (= 1.21.22), x [i386]
Priority: required
Section: admin
Filename: pool/main/d/dpkg/dpkg_1.21.22_amd64.deb
Size: 1541588
SHA256: 5e4ea5f3c8a0a7f3cd1bd5a8e5c7c8bbd0a8f3e2b8d3d7c4a0b2c1d4e5f6a7b8
";

    fn parse(text: &str) -> Result<Vec<Package>, IndexError> {
        parse_packages(
            text,
            "amd64",
            "http://mirror.invalid/debian/",
            "test/Packages",
        )
    }

    #[test]
    fn test_parse_packages_reads_fields() {
        // The fixture repeats Multi-Arch in the first stanza: that must be refused ...
        let e = parse(INDEX).unwrap_err();
        assert!(
            e.to_string().contains("duplicate field \"Multi-Arch\""),
            "{e}"
        );
        assert!(e.to_string().contains("test/Packages: line 15"), "{e}");
        // ... and without the duplicate everything parses.
        let index = INDEX.replacen("Multi-Arch: same\nHomepage", "Homepage", 1);
        let pkgs = parse(&index).unwrap();
        assert_eq!(pkgs.len(), 2);
        let libc = &pkgs[0];
        assert_eq!(libc.name, "libc6");
        assert_eq!(libc.version.to_string(), "2.36-9+deb12u10");
        assert_eq!(libc.multi_arch.as_deref(), Some("same"));
        assert_eq!(libc.breaks.len(), 3);
        assert_eq!(libc.recommends[0][0].name, "libidn2-0");
        assert_eq!(libc.installed_size, Some(12986));
        assert_eq!(libc.size, 2757936);
        assert_eq!(
            libc.sha256,
            "8d2a1b8ec6c1ab29c0e6a0b6bc44eac8a3aa3f2e1f0eaf7b8c1f4f3ee0a1d1e5"
        );
        assert_eq!(
            libc.description.as_deref(),
            Some("GNU C Library: Shared libraries")
        );
        assert!(!libc.essential);
        assert_eq!(
            libc.download_url(),
            "http://mirror.invalid/debian/pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb"
        );
        assert!(libc.stanza.starts_with("Package: libc6\n"));
        assert!(libc.stanza.ends_with(
            "SHA256: 8D2A1B8EC6C1AB29C0E6A0B6BC44EAC8A3AA3F2E1F0EAF7B8C1F4F3EE0A1D1E5\n"
        ));
        let dpkg = &pkgs[1];
        assert!(dpkg.essential && dpkg.is_required());
        assert_eq!(dpkg.pre_depends.len(), 7);
        assert_eq!(dpkg.depends[0][0].to_string(), "tar (>= 1.28-1)");
        // `x [i386]` does not apply on amd64.
        assert_eq!(dpkg.provides.len(), 1);
        assert_eq!(dpkg.provides[0].to_string(), "dpkg-dev-tools (= 1.21.22)");
    }

    #[test]
    fn test_parallel_split_keeps_order_and_line_numbers() {
        let zeros = "0".repeat(64);
        let mut text = String::new();
        for i in 0..40_000 {
            text.push_str(&format!(
                "Package: p{i}\nVersion: 1.{i}\nArchitecture: all\nFilename: p{i}.deb\nSize: {i}\nSHA256: {zeros}\nDescription: padding padding padding\n\n"
            ));
        }
        assert!(text.len() > 4 * PARALLEL_CHUNK_MIN);
        let chunks = split_at_stanzas(&text, 4);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.iter().map(|c| c.0).collect::<String>(), text);
        let pkgs = parse_packages(&text, "amd64", "b", "o").unwrap();
        assert_eq!(pkgs.len(), 40_000);
        assert!(
            pkgs.iter()
                .enumerate()
                .all(|(i, p)| p.name == format!("p{i}"))
        );
        // An error deep in a later chunk still reports its line in the whole text.
        let broken = text.replace("Size: 39999\n", "Size: many\n");
        let e = parse_packages(&broken, "amd64", "b", "o").unwrap_err();
        let IndexError::Parse { line, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(line, 39_999 * 8 + 1);
    }

    #[test]
    fn test_parse_packages_names_package_and_field_on_error() {
        let zeros = "0".repeat(64);
        let with_hash = |s: &str| s.replace("{Z}", &zeros);
        let bad =
            "Package: a\nVersion: 1\nArchitecture: all\nFilename: a.deb\nSize: x\nSHA256: {Z}\n";
        let e = parse(&with_hash(bad)).unwrap_err().to_string();
        assert!(e.contains("package a: field Size: not a number"), "{e}");
        let bad = "Package: a\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: {Z}\n";
        let e = parse(&with_hash(bad)).unwrap_err().to_string();
        assert!(e.contains("package a: missing field Filename"), "{e}");
        let bad = "Package: a\nVersion: 1\nArchitecture: all\nFilename: a.deb\nSize: 1\nSHA256: {Z}\nDepends: b (>= )\n";
        let e = parse(&with_hash(bad)).unwrap_err().to_string();
        assert!(e.contains("package a: field Depends"), "{e}");
        let bad =
            "Package: a\nVersion: 1\nArchitecture: all\nFilename: a.deb\nSize: 1\nSHA256: 00\n";
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("package a: field SHA256: not a SHA256"), "{e}");
    }
}
