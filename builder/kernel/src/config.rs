//! Kernel `.config` files and config fragments: strict parsing with
//! file:line errors, merging (a later fragment overrides an earlier one, as
//! `scripts/kconfig/merge_config.sh` does), and the check that every option a
//! fragment asked for survived `make olddefconfig`.
//!
//! A line is one of: blank, `CONFIG_NAME=value` (value `y`, `m`, `n`, a
//! decimal or `0x` number, or a double-quoted string), `# CONFIG_NAME is not
//! set`, or any other `#` comment. Anything else is an error that names the
//! file and line. `CONFIG_NAME=n` means the same as `is not set`.
//!
//! Limits: the merge does not know Kconfig's types; it trusts `olddefconfig`
//! to reject a value of the wrong type, and the survival check then reports it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A config file or fragment could not be read or has a line that is not a
/// config line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigParseError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is neither a setting, a `# ... is not set` line, a comment nor blank.
    #[error(
        "{path}:{line}: expected `CONFIG_NAME=value`, `# CONFIG_NAME is not set` or a `#` comment, found `{text}`"
    )]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// The value after `=` is not one Kconfig writes.
    #[error(
        "{path}:{line}: {symbol} has value `{value}`: expected y, m, n, a number or a double-quoted string"
    )]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The symbol, with its `CONFIG_` prefix.
        symbol: String,
        /// The offending value.
        value: String,
    },
    /// The same option appears twice in one fragment: one of them is a mistake.
    #[error("{path}:{line}: {symbol} is already set on line {first_line} of the same file")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The second occurrence.
        line: usize,
        /// The first occurrence.
        first_line: usize,
        /// The symbol, with its `CONFIG_` prefix.
        symbol: String,
    },
}

/// The value of one option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigValue {
    /// `CONFIG_X=<raw value>`, exactly as written (strings keep their quotes).
    Set(String),
    /// `# CONFIG_X is not set` (or `CONFIG_X=n`).
    NotSet,
}

impl ConfigValue {
    /// Whether this is `=y`.
    pub fn is_y(&self) -> bool {
        matches!(self, ConfigValue::Set(v) if v == "y")
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Set(v) => f.write_str(v),
            ConfigValue::NotSet => f.write_str("is not set"),
        }
    }
}

/// Where a setting was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One setting in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The symbol with its `CONFIG_` prefix, e.g. `CONFIG_PVH`.
    pub symbol: String,
    /// Its value.
    pub value: ConfigValue,
    /// Where it was written.
    pub origin: Origin,
}

/// A parsed config file or fragment: its settings in file order.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// The settings in the order they appear.
    pub settings: Vec<Setting>,
}

impl ConfigFile {
    /// Reads and parses `path`; duplicate settings are an error (see [`ConfigFile::parse`]).
    pub fn read(path: &Path) -> Result<Self, ConfigParseError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigParseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` (named `path` in errors). A symbol set twice in one
    /// file is an error: within one fragment that is always a mistake.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigParseError> {
        let mut settings = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let Some((symbol, value)) = parse_line(path, line, raw)? else {
                continue;
            };
            if let Some(&first_line) = seen.get(&symbol) {
                return Err(ConfigParseError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    first_line,
                    symbol,
                });
            }
            seen.insert(symbol.clone(), line);
            settings.push(Setting {
                symbol,
                value,
                origin: Origin {
                    path: path.to_path_buf(),
                    line,
                },
            });
        }
        Ok(Self { settings })
    }

    /// The settings as a map (the last one wins if a name repeats).
    pub fn to_map(&self) -> BTreeMap<String, ConfigValue> {
        self.settings
            .iter()
            .map(|s| (s.symbol.clone(), s.value.clone()))
            .collect()
    }

    /// The file as Kconfig writes it: one line per setting.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.settings {
            match &s.value {
                ConfigValue::Set(v) => out.push_str(&format!("{}={}\n", s.symbol, v)),
                ConfigValue::NotSet => out.push_str(&format!("# {} is not set\n", s.symbol)),
            }
        }
        out
    }
}

fn is_symbol(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

fn valid_value(v: &str) -> bool {
    if matches!(v, "y" | "m" | "n") {
        return true;
    }
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    // A quoted string: Kconfig escapes `"` and `\` inside with a backslash.
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => return false,
                _ => {}
            }
        }
        return !escaped;
    }
    false
}

/// One line: `Ok(None)` for blank lines and comments.
fn parse_line(
    path: &Path,
    line: usize,
    raw: &str,
) -> Result<Option<(String, ConfigValue)>, ConfigParseError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || ConfigParseError::BadLine {
        path: path.to_path_buf(),
        line,
        text: raw.to_string(),
    };
    if let Some(comment) = text.strip_prefix('#') {
        // `# CONFIG_X is not set` is a setting; any other comment is ignored.
        let comment = comment.trim();
        if let Some(sym) = comment.strip_suffix(" is not set").map(str::trim) {
            if is_symbol(sym) {
                return Ok(Some((sym.to_string(), ConfigValue::NotSet)));
            }
        }
        return Ok(None);
    }
    let (sym, value) = text.split_once('=').ok_or_else(bad)?;
    let (sym, value) = (sym.trim(), value.trim());
    if !is_symbol(sym) {
        return Err(bad());
    }
    if !valid_value(value) {
        return Err(ConfigParseError::BadValue {
            path: path.to_path_buf(),
            line,
            symbol: sym.to_string(),
            value: value.to_string(),
        });
    }
    let value = if value == "n" {
        ConfigValue::NotSet
    } else {
        ConfigValue::Set(value.to_string())
    };
    Ok(Some((sym.to_string(), value)))
}

/// The result of merging fragments onto a base config.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The config to hand to `make olddefconfig`.
    pub config: ConfigFile,
    /// What the fragments asked for, after later fragments overrode earlier
    /// ones: the options to check once Kconfig has had its say.
    pub requested: Vec<Setting>,
}

/// Merges `fragments` onto `base`, the way `merge_config.sh -m` does: an
/// option a fragment sets is removed from where it was and appended, so a
/// fragment's choice (`CONFIG_SLUB=y`) comes after the base's (`CONFIG_SLOB=y`)
/// and Kconfig, which keeps the last `y` of a choice, takes the fragment's.
pub fn merge(base: &ConfigFile, fragments: &[ConfigFile]) -> Merged {
    let mut settings: Vec<Setting> = base.settings.clone();
    let mut requested: Vec<Setting> = Vec::new();
    for fragment in fragments {
        for s in &fragment.settings {
            if let Some(prev) = requested.iter().position(|r| r.symbol == s.symbol) {
                let old = requested.remove(prev);
                if old.value != s.value {
                    tracing::debug!(
                        "{} overrides {} ({} -> {})",
                        s.origin,
                        old.origin,
                        old.value,
                        s.value
                    );
                }
            }
            settings.retain(|b| b.symbol != s.symbol);
            settings.push(s.clone());
            requested.push(s.clone());
        }
    }
    Merged {
        config: ConfigFile { settings },
        requested,
    }
}

/// An option a fragment set that the final config does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedOption {
    /// The symbol, with its `CONFIG_` prefix.
    pub symbol: String,
    /// What the fragment asked for.
    pub requested: ConfigValue,
    /// What the final config has (`NotSet` if it is absent).
    pub actual: ConfigValue,
    /// The fragment line that asked for it.
    pub origin: Origin,
    /// Why, as far as the Kconfig files tell (filled in by the caller).
    pub reason: Option<String>,
}

impl fmt::Display for DroppedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &ConfigValue| match v {
            ConfigValue::Set(v) => format!("{}={v}", self.symbol),
            ConfigValue::NotSet => format!("{} not set", self.symbol),
        };
        write!(
            f,
            "{}: {} was requested, the final config has {}",
            self.origin,
            show(&self.requested),
            show(&self.actual)
        )?;
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Every requested option whose final value differs. An option that is
/// absent from the final config counts as not set (Kconfig omits invisible
/// symbols).
pub fn dropped_options(
    requested: &[Setting],
    final_config: &BTreeMap<String, ConfigValue>,
) -> Vec<DroppedOption> {
    requested
        .iter()
        .filter_map(|r| {
            let actual = final_config
                .get(&r.symbol)
                .cloned()
                .unwrap_or(ConfigValue::NotSet);
            (actual != r.value).then(|| DroppedOption {
                symbol: r.symbol.clone(),
                requested: r.value.clone(),
                actual,
                origin: r.origin.clone(),
                reason: None,
            })
        })
        .collect()
}

/// How many options the config sets (`CONFIG_X=...` lines).
pub fn option_count(config: &BTreeMap<String, ConfigValue>) -> usize {
    config
        .values()
        .filter(|v| matches!(v, ConfigValue::Set(_)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new(name), text).unwrap()
    }

    #[test]
    fn test_parse_accepts_settings_not_set_lines_and_comments() {
        let f = parse(
            "a.config",
            "# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=0x10\nCONFIG_E=-3\nCONFIG_F=n\n",
        );
        let m = f.to_map();
        assert_eq!(m["CONFIG_A"], ConfigValue::Set("y".into()));
        assert_eq!(m["CONFIG_B"], ConfigValue::NotSet);
        assert_eq!(m["CONFIG_C"], ConfigValue::Set("\"x y\"".into()));
        assert_eq!(m["CONFIG_D"], ConfigValue::Set("0x10".into()));
        assert_eq!(m["CONFIG_E"], ConfigValue::Set("-3".into()));
        assert_eq!(m["CONFIG_F"], ConfigValue::NotSet);
        assert_eq!(f.settings[1].origin.line, 4);
    }

    #[test]
    fn test_parse_rejects_a_line_that_is_not_a_setting_naming_file_and_line() {
        let err = ConfigFile::parse(Path::new("frag.config"), "CONFIG_A=y\nPVH=y\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("frag.config:2:"), "{msg}");
        assert!(msg.contains("`PVH=y`"), "{msg}");
        let err = ConfigFile::parse(Path::new("f"), "CONFIG_A y\n").unwrap_err();
        assert!(matches!(err, ConfigParseError::BadLine { line: 1, .. }));
    }

    #[test]
    fn test_parse_rejects_bad_values_and_duplicates() {
        let err = ConfigFile::parse(Path::new("f"), "CONFIG_A=yes\n").unwrap_err();
        assert!(
            matches!(&err, ConfigParseError::BadValue { symbol, value, .. } if symbol == "CONFIG_A" && value == "yes"),
            "{err}"
        );
        let err = ConfigFile::parse(Path::new("f"), "CONFIG_A=\"unterminated\n").unwrap_err();
        assert!(matches!(err, ConfigParseError::BadValue { .. }));
        let err =
            ConfigFile::parse(Path::new("f"), "CONFIG_A=y\n\n# CONFIG_A is not set\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigParseError::Duplicate {
                    line: 3,
                    first_line: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn test_merge_later_fragment_overrides_earlier_and_moves_to_the_end() {
        let base = parse(
            "base",
            "CONFIG_A=y\nCONFIG_SLOB=y\n# CONFIG_SLUB is not set\nCONFIG_Z=y\n",
        );
        let f1 = parse(
            "f1",
            "CONFIG_SLUB=y\n# CONFIG_SLOB is not set\nCONFIG_X=y\n",
        );
        let f2 = parse("f2", "# CONFIG_X is not set\nCONFIG_NEW=\"s\"\n");
        let merged = merge(&base, &[f1, f2]);
        let rendered = merged.config.render();
        assert_eq!(
            rendered,
            "CONFIG_A=y\nCONFIG_Z=y\nCONFIG_SLUB=y\n# CONFIG_SLOB is not set\n# CONFIG_X is not set\nCONFIG_NEW=\"s\"\n"
        );
        let req: Vec<_> = merged
            .requested
            .iter()
            .map(|s| (s.symbol.as_str(), s.value.clone(), s.origin.to_string()))
            .collect();
        assert_eq!(
            req,
            vec![
                ("CONFIG_SLUB", ConfigValue::Set("y".into()), "f1:1".into()),
                ("CONFIG_SLOB", ConfigValue::NotSet, "f1:2".into()),
                ("CONFIG_X", ConfigValue::NotSet, "f2:1".into()),
                (
                    "CONFIG_NEW",
                    ConfigValue::Set("\"s\"".into()),
                    "f2:2".into()
                ),
            ]
        );
    }

    #[test]
    fn test_dropped_options_lists_changed_and_missing_but_not_absent_not_set() {
        let frag = parse(
            "f",
            "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\nCONFIG_E=\"x\"\n",
        );
        let fin = parse(
            "final",
            "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=y\nCONFIG_E=\"y\"\n",
        )
        .to_map();
        let dropped = dropped_options(&frag.settings, &fin);
        let names: Vec<_> = dropped.iter().map(|d| d.symbol.as_str()).collect();
        // C is absent from the final config: that is "not set", as requested.
        assert_eq!(names, ["CONFIG_B", "CONFIG_D", "CONFIG_E"]);
        assert_eq!(
            dropped[0].to_string(),
            "f:2: CONFIG_B=y was requested, the final config has CONFIG_B not set"
        );
    }

    #[test]
    fn test_option_count_counts_set_options_only() {
        let m = parse("f", "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=5\n").to_map();
        assert_eq!(option_count(&m), 2);
    }
}
