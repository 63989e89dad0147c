//! The deb822 control format shared by `Packages`, `Release`, `.sources` files and a
//! `.deb`'s `control`: paragraphs separated by blank lines, `Field: value` lines, and
//! continuation lines starting with a space or tab.
//!
//! Field names compare case-insensitively (Policy 5.1). Values keep their continuation lines,
//! each trimmed and joined with `\n`; the paragraph's raw text is kept too, since dpkg's
//! status file wants the stanza as the archive wrote it. Lines starting with `#` are comments
//! (allowed by deb822 sources files). Limits: no OpenPGP armor here (verify first, see
//! [`crate::release`]).

use std::fmt;

/// A malformed control file: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ControlError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// One paragraph (stanza): fields in file order plus the raw text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
    raw: String,
    line: usize,
}

impl Paragraph {
    /// The value of `name` (case-insensitive), continuation lines joined with `\n`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields in file order, as written.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The paragraph's text as it appeared, each line ending in `\n`, no trailing blank line.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The 1-based line where the paragraph starts in the parsed text.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for Paragraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Parses all paragraphs of a deb822 text. CRLF line ends are accepted.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, ControlError> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = cur.fields.last_mut() else {
                return Err(ControlError {
                    line: lineno,
                    message: "continuation line before any field".into(),
                });
            };
            value.push('\n');
            value.push_str(line.trim());
            cur.raw.push_str(line);
            cur.raw.push('\n');
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ControlError {
                line: lineno,
                message: format!("expected 'Field: value', found {line:?}"),
            });
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ControlError {
                line: lineno,
                message: format!("invalid field name {name:?}"),
            });
        }
        if cur.fields.is_empty() {
            cur.line = lineno;
        }
        if cur.fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Err(ControlError {
                line: lineno,
                message: format!("duplicate field {name:?}"),
            });
        }
        cur.fields
            .push((name.to_string(), value.trim().to_string()));
        cur.raw.push_str(line);
        cur.raw.push('\n');
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_splits_paragraphs_and_folds_continuations() {
        let text = "Package: a\nDescription: short\n long line\n .\n more\n\n\nPackage: b\r\nversion: 1\r\n";
        let ps = parse_paragraphs(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\nlong line\n.\nmore"));
        assert_eq!(
            ps[0].raw(),
            "Package: a\nDescription: short\n long line\n .\n more\n"
        );
        assert_eq!(ps[1].get("Version"), Some("1"));
        assert_eq!(ps[1].line(), 8);
    }

    #[test]
    fn test_parse_skips_comments() {
        let ps = parse_paragraphs("# a comment\nTypes: deb\n# inside\nURIs: x\n").unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].get("URIs"), Some("x"));
    }

    #[test]
    fn test_parse_reports_line_of_malformed_input() {
        let e = parse_paragraphs("Package: a\nno colon here\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_paragraphs(" leading continuation\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_paragraphs("A: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
    }
}
