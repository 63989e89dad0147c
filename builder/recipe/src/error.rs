//! Recipe errors that point at the offending place: file, line, column and field.
//!
//! The `toml` crate reports byte spans; this module turns them into 1-based line and column
//! numbers for both its parse errors and our own validation errors, and recovers the dotted
//! key path (`rootfs.variant`, `files.2.mode`) that the parser tracked.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a recipe could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The recipe file could not be read.
    #[error("reading recipe {}: {source}", path.display())]
    Read {
        /// The recipe path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The recipe is not valid TOML, has an unknown key, a wrong type or an invalid value.
    #[error("{}:{line}:{column}: {}{message}", path.display(), field_prefix(field))]
    Invalid {
        /// The recipe path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// Dotted key path of the offending value, when known.
        field: Option<String>,
        /// What is wrong and what was expected.
        message: String,
    },
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(f) if !f.is_empty() => format!("{f}: "),
        _ => String::new(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..floor_char_boundary(src, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl RecipeError {
    /// An error at `span` of `src` about `field`.
    pub(crate) fn at(
        path: &Path,
        src: &str,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(src, span.start);
        RecipeError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Converts a `toml` deserialization error, keeping its span and key path.
    pub(crate) fn from_toml(path: &Path, src: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err.span().map_or((1, 1), |s| line_col(src, s.start));
        let mut field = toml_key_path(err);
        // For an unknown key the parser's path stops at its table: name the key too.
        if let Some(key) = err
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = Some(match field {
                Some(table) if !table.is_empty() => format!("{table}.{key}"),
                _ => key.to_string(),
            });
        }
        RecipeError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            field,
            message: err.message().trim().to_string(),
        }
    }
}

/// The key path `toml` tracked for `err`. The crate keeps it private but prints it as
/// "in `a.b`" when the error carries no input text, so render a copy without input.
fn toml_key_path(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let text = bare.to_string();
    let line = text.lines().rev().find(|l| l.starts_with("in `"))?;
    Some(
        line.trim_start_matches("in `")
            .trim_end_matches('`')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_line_col_counts_from_one_in_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        let off = src.find('=').unwrap();
        assert_eq!(line_col(src, off), (1, 3));
        let off = src.rfind('"').unwrap();
        assert_eq!(line_col(src, off), (2, 8));
    }
}
