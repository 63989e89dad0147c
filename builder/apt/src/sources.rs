//! The build host's apt sources: `/etc/apt/sources.list.d/*.sources` (deb822) and
//! `/etc/apt/sources.list` plus `sources.list.d/*.list` (one-line format, with
//! `[signed-by=... arch=...]` options), and finding the mirror that serves a suite.
//!
//! This is how vmimage follows the user's own mirror or proxy instead of naming one.
//! Limits: `deb-src` entries are read but never chosen; `Enabled: no` stanzas are skipped;
//! inline `Signed-By` key blocks in deb822 are not supported (only a path).

use std::path::{Path, PathBuf};

/// A malformed or unreadable sources file.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line or stanza is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No `deb` entry serves the suite.
    #[error("no 'deb' entry for suite {suite:?} in the apt sources under {dir}")]
    NoMirror {
        /// The suite asked for.
        suite: String,
        /// The apt configuration directory searched.
        dir: PathBuf,
    },
}

/// One source entry (a deb822 stanza or a one-line entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSource {
    /// `deb` and/or `deb-src`.
    pub types: Vec<String>,
    /// Base URIs, without trailing `/`.
    pub uris: Vec<String>,
    /// Suites (`bookworm`, `bookworm-updates`, ...).
    pub suites: Vec<String>,
    /// Components (`main`, ...).
    pub components: Vec<String>,
    /// `Signed-By` / `signed-by=` keyring path, if given.
    pub signed_by: Option<PathBuf>,
    /// `Architectures` / `arch=` restriction, empty when unrestricted.
    pub architectures: Vec<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// The 1-based line where the entry starts.
    pub line: usize,
}

/// The mirror chosen for a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMirror {
    /// Base URI (e.g. the directory holding `dists/` and `pool/`), no trailing `/`.
    pub uri: String,
    /// The suite matched.
    pub suite: String,
    /// Components the host enables for it.
    pub components: Vec<String>,
    /// Keyring the host uses for it, if declared.
    pub signed_by: Option<PathBuf>,
}

/// Parses a deb822 `.sources` file; `file` names it in errors and records.
pub fn parse_deb822_sources(text: &str, file: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let paragraphs = crate::deb822::parse_paragraphs(text).map_err(|e| SourcesError::Parse {
        path: file.to_path_buf(),
        line: e.line,
        message: e.message,
    })?;
    let mut out = Vec::new();
    for p in paragraphs {
        let words = |field: &str| -> Vec<String> {
            p.get(field)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if p.get("Enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let missing = |field: &str| SourcesError::Parse {
            path: file.to_path_buf(),
            line: p.line(),
            message: format!("stanza without {field}"),
        };
        let source = HostSource {
            types: words("Types"),
            uris: words("URIs")
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            suites: words("Suites"),
            components: words("Components"),
            signed_by: p.get("Signed-By").and_then(|v| {
                // An inline key block spans several lines; only a path is usable here.
                (!v.contains('\n') && !v.is_empty()).then(|| PathBuf::from(v))
            }),
            architectures: words("Architectures"),
            file: file.to_path_buf(),
            line: p.line(),
        };
        for (field, empty) in [
            ("Types", source.types.is_empty()),
            ("URIs", source.uris.is_empty()),
            ("Suites", source.suites.is_empty()),
        ] {
            if empty {
                return Err(missing(field));
            }
        }
        out.push(source);
    }
    Ok(out)
}

/// Parses a one-line-format `sources.list` file; `file` names it in errors and records.
pub fn parse_one_line_sources(text: &str, file: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |message: String| SourcesError::Parse {
            path: file.to_path_buf(),
            line,
            message,
        };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let (kind, mut rest) = content.split_once(char::is_whitespace).ok_or_else(|| {
            err(format!(
                "expected 'deb URI SUITE [COMPONENT...]', found {content:?}"
            ))
        })?;
        if kind != "deb" && kind != "deb-src" {
            return Err(err(format!(
                "unknown type {kind:?} (expected deb or deb-src)"
            )));
        }
        rest = rest.trim_start();
        let mut signed_by = None;
        let mut architectures = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| err("unclosed '[' in options".into()))?;
            for opt in r[..close].split_whitespace() {
                let (k, v) = opt
                    .split_once('=')
                    .ok_or_else(|| err(format!("option {opt:?} is not key=value")))?;
                match k {
                    "signed-by" => signed_by = Some(PathBuf::from(v)),
                    "arch" => architectures = v.split(',').map(str::to_string).collect(),
                    _ => {} // trusted=, lang=, target=...: irrelevant to choosing a mirror
                }
            }
            rest = &r[close + 1..];
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            return Err(err(format!(
                "expected 'URI SUITE' after {kind:?}, found {rest:?}"
            )));
        };
        out.push(HostSource {
            types: vec![kind.to_string()],
            uris: vec![uri.trim_end_matches('/').to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
            architectures,
            file: file.to_path_buf(),
            line,
        });
    }
    Ok(out)
}

/// Files of `dir` ending in `.ext`, sorted by name (apt reads them in that order).
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, SourcesError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SourcesError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn read_optional(path: &Path) -> Result<Option<String>, SourcesError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SourcesError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads every source under an apt configuration directory (normally `/etc/apt`):
/// `sources.list.d/*.sources`, `sources.list`, `sources.list.d/*.list`, in that order, files
/// of a directory sorted by name. Missing files are skipped.
pub fn read_host_sources(etc_apt: &Path) -> Result<Vec<HostSource>, SourcesError> {
    let dir = etc_apt.join("sources.list.d");
    let mut out = Vec::new();
    for file in files_with_extension(&dir, "sources")? {
        if let Some(text) = read_optional(&file)? {
            out.extend(parse_deb822_sources(&text, &file)?);
        }
    }
    let main = etc_apt.join("sources.list");
    if let Some(text) = read_optional(&main)? {
        out.extend(parse_one_line_sources(&text, &main)?);
    }
    for file in files_with_extension(&dir, "list")? {
        if let Some(text) = read_optional(&file)? {
            out.extend(parse_one_line_sources(&text, &file)?);
        }
    }
    Ok(out)
}

/// The first `deb` entry whose suites include `suite`.
pub fn find_mirror(sources: &[HostSource], suite: &str) -> Option<HostMirror> {
    let source = sources.iter().find(|s| {
        s.types.iter().any(|t| t == "deb")
            && s.suites.iter().any(|x| x == suite)
            && !s.uris.is_empty()
    })?;
    Some(HostMirror {
        uri: source.uris[0].clone(),
        suite: suite.to_string(),
        components: source.components.clone(),
        signed_by: source.signed_by.clone(),
    })
}

/// [`read_host_sources`] of `/etc/apt` then [`find_mirror`] for `suite`.
pub fn host_mirror(suite: &str) -> Result<HostMirror, SourcesError> {
    let dir = Path::new("/etc/apt");
    let sources = read_host_sources(dir)?;
    find_mirror(&sources, suite).ok_or_else(|| SourcesError::NoMirror {
        suite: suite.to_string(),
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: trixie

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: trixie

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main contrib
";

    #[test]
    fn test_deb822_sources_parse_and_pick_mirror_per_suite() {
        let s = parse_deb822_sources(DEB822, Path::new("debian.sources")).unwrap();
        assert_eq!(s.len(), 3, "the disabled stanza is skipped");
        let m = find_mirror(&s, "bookworm").unwrap();
        assert_eq!(m.uri, "http://mirror.example/debian");
        assert_eq!(m.components, ["main"]);
        assert_eq!(
            m.signed_by.as_deref(),
            Some(Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"))
        );
        let m = find_mirror(&s, "bookworm-security").unwrap();
        assert_eq!(m.uri, "http://security.example/debian-security");
        assert!(
            find_mirror(&s, "trixie").is_none(),
            "deb-src and disabled entries never serve"
        );
    }

    #[test]
    fn test_one_line_sources_parse_options_and_comments() {
        let text = "\
# comment
deb [arch=amd64,arm64 signed-by=/etc/apt/keyrings/x.asc] http://a.example/debian bookworm main contrib # trailing
deb-src http://b.example/debian bookworm main

deb http://c.example/ubuntu jammy main universe
";
        let s = parse_one_line_sources(text, Path::new("sources.list")).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].architectures, ["amd64", "arm64"]);
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some(Path::new("/etc/apt/keyrings/x.asc"))
        );
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[0].line, 2);
        assert_eq!(
            find_mirror(&s, "jammy").unwrap().uri,
            "http://c.example/ubuntu"
        );
        assert_eq!(
            find_mirror(&s, "bookworm").unwrap().uri,
            "http://a.example/debian"
        );
    }

    #[test]
    fn test_malformed_sources_name_file_and_line() {
        let e = parse_one_line_sources("deb http://x\n", Path::new("a.list")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.list:1: expected 'URI SUITE' after \"deb\", found \"http://x\""
        );
        let e = parse_one_line_sources("\ndeb [arch=amd64 http://x s\n", Path::new("a.list"))
            .unwrap_err();
        assert!(e.to_string().starts_with("a.list:2: unclosed"), "{e}");
        let e =
            parse_deb822_sources("Types: deb\nSuites: x\n", Path::new("b.sources")).unwrap_err();
        assert_eq!(e.to_string(), "b.sources:1: stanza without URIs");
    }

    #[test]
    fn test_read_host_sources_orders_deb822_before_lists() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sources.list.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "deb http://list.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(d.join("z.sources"), DEB822).unwrap();
        std::fs::write(d.join("a.list"), "deb http://extra.example/x stable main\n").unwrap();
        std::fs::write(d.join("ignored.txt"), "garbage").unwrap();
        let s = read_host_sources(dir.path()).unwrap();
        let uris: Vec<&str> = s.iter().map(|x| x.uris[0].as_str()).collect();
        assert_eq!(
            uris,
            [
                "http://mirror.example/debian",
                "http://src.example/debian",
                "http://security.example/debian-security",
                "http://list.example/debian",
                "http://extra.example/x",
            ]
        );
        assert_eq!(
            find_mirror(&s, "bookworm").unwrap().uri,
            "http://mirror.example/debian"
        );
    }

    /// This build host's own sources (the project's tests rely on them).
    #[test]
    fn test_host_mirror_serves_bookworm() {
        let m = host_mirror("bookworm").expect("the build host's apt sources must list bookworm");
        assert!(
            m.uri.starts_with("http://") || m.uri.starts_with("https://"),
            "{m:?}"
        );
        assert!(m.components.iter().any(|c| c == "main"), "{m:?}");
    }
}
