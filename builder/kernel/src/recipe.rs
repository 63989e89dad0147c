//! Kernel recipes: TOML files in `kernels/` that pin a kernel source by
//! sha256 and say how to configure it. Read strictly ([`KernelRecipeSpec`],
//! unknown keys are errors), then validated into a [`KernelRecipe`] with
//! paths resolved against the recipe's directory and the default `make`
//! variables applied. Every error names the file, line and column.
//!
//! ```toml
//! source = { path = "/usr/src/linux-source-6.1.tar.xz", sha256 = "..." }
//! arch = "x86_64"
//! base = "tinyconfig"            # or defconfig, allnoconfig, { file = "my.config" }
//! fragments = ["fragments/base.config", "fragments/virtio-mmio.config"]
//! cmdline = "console=ttyS0"      # optional: the default kernel command line
//! [make]                         # optional: extra/overriding make variables
//! KBUILD_BUILD_HOST = "ci"
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Default `KBUILD_BUILD_TIMESTAMP`: a fixed time, so `uname -v` and the
/// build do not depend on the clock.
pub const DEFAULT_KBUILD_BUILD_TIMESTAMP: &str = "Thu Jan  1 00:00:00 UTC 1970";
/// Default `KBUILD_BUILD_USER`.
pub const DEFAULT_KBUILD_BUILD_USER: &str = "vmimage";
/// Default `KBUILD_BUILD_HOST`.
pub const DEFAULT_KBUILD_BUILD_HOST: &str = "vmimage";
/// Default `KBUILD_BUILD_VERSION` (the `#1` in `uname -v`).
pub const DEFAULT_KBUILD_BUILD_VERSION: &str = "1";

/// The make variables set for reproducibility unless a recipe overrides them.
pub fn default_make_vars() -> BTreeMap<String, String> {
    [
        ("KBUILD_BUILD_TIMESTAMP", DEFAULT_KBUILD_BUILD_TIMESTAMP),
        ("KBUILD_BUILD_USER", DEFAULT_KBUILD_BUILD_USER),
        ("KBUILD_BUILD_HOST", DEFAULT_KBUILD_BUILD_HOST),
        ("KBUILD_BUILD_VERSION", DEFAULT_KBUILD_BUILD_VERSION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Make variables vmimage sets itself; a recipe may not.
const RESERVED_MAKE_VARS: &[&str] = &["ARCH", "O", "KBUILD_OUTPUT", "KCONFIG_CONFIG", "SRCARCH"];

/// A kernel recipe could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum KernelRecipeError {
    /// The file could not be read.
    #[error("reading kernel recipe {path}: {source}")]
    Read {
        /// The recipe.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The recipe.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A field has a value vmimage cannot use.
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The recipe.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field, e.g. `fragments[2]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The TOML as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRecipeSpec {
    /// The kernel source tarball.
    pub source: Spanned<SourceSpec>,
    /// Target architecture; only `x86_64`.
    pub arch: Spanned<String>,
    /// The starting config: a make target name or `{ file = "..." }`.
    pub base: Spanned<toml::Value>,
    /// Config fragments, applied in order (later wins).
    #[serde(default)]
    pub fragments: Vec<Spanned<String>>,
    /// Default kernel command line for images using this kernel.
    pub cmdline: Option<String>,
    /// Extra or overriding make variables.
    #[serde(default)]
    pub make: BTreeMap<String, Spanned<String>>,
}

/// `source = { url = ..., sha256 = ... }` or `{ path = ..., sha256 = ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Where to download the tarball.
    pub url: Option<String>,
    /// A local tarball (relative paths are against the recipe's directory).
    pub path: Option<String>,
    /// The tarball's sha256, lowercase hex.
    pub sha256: String,
}

/// Where the kernel source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// Downloaded over HTTP(S) into the cache.
    Url {
        /// The URL.
        url: String,
        /// Expected sha256 (lowercase hex).
        sha256: String,
    },
    /// A local tarball, e.g. Debian's `/usr/src/linux-source-6.1.tar.xz`.
    Path {
        /// The file.
        path: PathBuf,
        /// Expected sha256 (lowercase hex).
        sha256: String,
    },
}

impl KernelSource {
    /// The pinned sha256.
    pub fn sha256(&self) -> &str {
        match self {
            KernelSource::Url { sha256, .. } | KernelSource::Path { sha256, .. } => sha256,
        }
    }
}

/// Target architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// 64-bit x86.
    X86_64,
}

impl Arch {
    /// The `ARCH=` value for make.
    pub fn make_arch(self) -> &'static str {
        "x86_64"
    }
    /// The directory under `arch/` (Kconfig's `$(SRCARCH)`).
    pub fn srcarch(self) -> &'static str {
        "x86"
    }
}

/// The starting config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseConfig {
    /// `make tinyconfig`.
    Tinyconfig,
    /// `make defconfig`.
    Defconfig,
    /// `make allnoconfig`.
    Allnoconfig,
    /// A full `.config` file.
    File(PathBuf),
}

impl BaseConfig {
    /// The make target, if this base is one.
    pub fn make_target(&self) -> Option<&'static str> {
        match self {
            BaseConfig::Tinyconfig => Some("tinyconfig"),
            BaseConfig::Defconfig => Some("defconfig"),
            BaseConfig::Allnoconfig => Some("allnoconfig"),
            BaseConfig::File(_) => None,
        }
    }
}

/// A validated kernel recipe.
#[derive(Debug, Clone)]
pub struct KernelRecipe {
    /// The recipe file.
    pub path: PathBuf,
    /// The pinned source.
    pub source: KernelSource,
    /// Target architecture.
    pub arch: Arch,
    /// The starting config.
    pub base: BaseConfig,
    /// Fragment files, in order.
    pub fragments: Vec<PathBuf>,
    /// Default kernel command line, if the recipe gives one.
    pub cmdline: Option<String>,
    /// All make variables: the defaults, overridden by the recipe's `[make]`.
    pub make_vars: BTreeMap<String, String>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl KernelRecipe {
    /// Reads and validates the recipe at `path`.
    ///
    /// ```no_run
    /// let recipe = vmimage_kernel::KernelRecipe::load("kernels/microvm-6.1-x86_64.toml".as_ref())?;
    /// println!("{} fragments", recipe.fragments.len());
    /// # Ok::<(), vmimage_kernel::KernelRecipeError>(())
    /// ```
    pub fn load(path: &Path) -> Result<Self, KernelRecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| KernelRecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates recipe `text` as if read from `path` (relative paths in it
    /// are resolved against `path`'s directory; fragment files must exist).
    pub fn parse(path: &Path, text: &str) -> Result<Self, KernelRecipeError> {
        let spec: KernelRecipeSpec = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            KernelRecipeError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let invalid = |span: Range<usize>, field: &str, message: String| {
            let (line, column) = line_col(text, span.start);
            KernelRecipeError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                field: field.to_string(),
                message,
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };

        let src_span = spec.source.span();
        let src = spec.source.into_inner();
        if !is_sha256(&src.sha256) {
            return Err(invalid(
                src_span,
                "source.sha256",
                format!("`{}` is not 64 lowercase hex digits", src.sha256),
            ));
        }
        let source = match (src.url, src.path) {
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(
                        src_span,
                        "source.url",
                        format!("`{url}` is not an http(s) URL"),
                    ));
                }
                KernelSource::Url {
                    url,
                    sha256: src.sha256,
                }
            }
            (None, Some(p)) => KernelSource::Path {
                path: resolve(&p),
                sha256: src.sha256,
            },
            _ => {
                return Err(invalid(
                    src_span,
                    "source",
                    "give exactly one of `url` or `path` (with `sha256`)".into(),
                ));
            }
        };

        let arch = match spec.arch.get_ref().as_str() {
            "x86_64" => Arch::X86_64,
            other => {
                return Err(invalid(
                    spec.arch.span(),
                    "arch",
                    format!("`{other}` is not supported (only x86_64)"),
                ));
            }
        };

        let base_span = spec.base.span();
        let base_err = |what: String| {
            invalid(
                base_span.clone(),
                "base",
                format!(
                    "{what}: expected \"tinyconfig\", \"defconfig\", \"allnoconfig\" or {{ file = \"PATH\" }}"
                ),
            )
        };
        let base = match spec.base.into_inner() {
            toml::Value::String(s) => match s.as_str() {
                "tinyconfig" => BaseConfig::Tinyconfig,
                "defconfig" => BaseConfig::Defconfig,
                "allnoconfig" => BaseConfig::Allnoconfig,
                other => return Err(base_err(format!("unknown base `{other}`"))),
            },
            toml::Value::Table(t) => {
                let file = match (t.get("file"), t.len()) {
                    (Some(toml::Value::String(f)), 1) => resolve(f),
                    _ => {
                        return Err(base_err(
                            "a table base must be exactly `{ file = \"PATH\" }`".into(),
                        ));
                    }
                };
                if !file.is_file() {
                    return Err(base_err(format!(
                        "base config file {} does not exist",
                        file.display()
                    )));
                }
                BaseConfig::File(file)
            }
            other => return Err(base_err(format!("a {} is not a base", other.type_str()))),
        };

        let mut fragments = Vec::new();
        for (i, f) in spec.fragments.iter().enumerate() {
            let p = resolve(f.get_ref());
            if !p.is_file() {
                return Err(invalid(
                    f.span(),
                    &format!("fragments[{i}]"),
                    format!("fragment file {} does not exist", p.display()),
                ));
            }
            fragments.push(p);
        }

        let mut make_vars = default_make_vars();
        for (name, value) in &spec.make {
            let field = format!("make.{name}");
            let valid_name = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                return Err(invalid(
                    value.span(),
                    &field,
                    "a make variable name is A-Z, 0-9 and _".into(),
                ));
            }
            if RESERVED_MAKE_VARS.contains(&name.as_str()) {
                return Err(invalid(
                    value.span(),
                    &field,
                    "vmimage sets this variable itself".into(),
                ));
            }
            if value.get_ref().contains(['\n', '\0']) {
                return Err(invalid(
                    value.span(),
                    &field,
                    "the value may not contain a newline".into(),
                ));
            }
            make_vars.insert(name.clone(), value.get_ref().clone());
        }

        Ok(KernelRecipe {
            path: path.to_path_buf(),
            source,
            arch,
            base,
            fragments,
            cmdline: spec.cmdline,
            make_vars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "cacdc3830989309d042083be3307969e55600ed7f908cf00df544c5ff50759a1";

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fragments")).unwrap();
        std::fs::write(dir.path().join("fragments/a.config"), "CONFIG_A=y\n").unwrap();
        std::fs::write(dir.path().join("base.config"), "CONFIG_B=y\n").unwrap();
        dir
    }

    fn parse(dir: &Path, text: &str) -> Result<KernelRecipe, KernelRecipeError> {
        KernelRecipe::parse(&dir.join("k.toml"), text)
    }

    #[test]
    fn test_parse_valid_recipe_resolves_paths_and_merges_make_vars() {
        let dir = setup();
        let r = parse(
            dir.path(),
            &format!(
                "source = {{ path = \"/usr/src/linux-source-6.1.tar.xz\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\nfragments = [\"fragments/a.config\"]\ncmdline = \"console=ttyS0\"\n[make]\nKBUILD_BUILD_HOST = \"ci\"\nKCFLAGS = \"-O2\"\n"
            ),
        )
        .unwrap();
        assert_eq!(r.source.sha256(), SHA);
        assert_eq!(r.base, BaseConfig::Tinyconfig);
        assert_eq!(r.fragments, vec![dir.path().join("fragments/a.config")]);
        assert_eq!(r.make_vars["KBUILD_BUILD_HOST"], "ci");
        assert_eq!(r.make_vars["KCFLAGS"], "-O2");
        assert_eq!(r.make_vars["KBUILD_BUILD_USER"], DEFAULT_KBUILD_BUILD_USER);
        assert_eq!(r.cmdline.as_deref(), Some("console=ttyS0"));

        let r = parse(
            dir.path(),
            &format!("source = {{ url = \"https://example.org/linux.tar.xz\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = {{ file = \"base.config\" }}\n"),
        )
        .unwrap();
        assert_eq!(r.base, BaseConfig::File(dir.path().join("base.config")));
        assert!(matches!(r.source, KernelSource::Url { .. }));
    }

    #[test]
    fn test_unknown_key_is_an_error_with_line_and_column() {
        let dir = setup();
        let err = parse(
            dir.path(),
            &format!("source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\nfragmets = []\n"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("k.toml:4:1:"), "{msg}");
        assert!(msg.contains("fragmets"), "{msg}");
    }

    #[test]
    fn test_unknown_base_names_the_value_and_position() {
        let dir = setup();
        let err = parse(
            dir.path(),
            &format!("source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"smallconfig\"\n"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("k.toml:3:8: base: unknown base `smallconfig`"),
            "{msg}"
        );
    }

    #[test]
    fn test_missing_fragment_names_the_entry() {
        let dir = setup();
        let err = parse(
            dir.path(),
            &format!("source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\nfragments = [\n  \"fragments/a.config\",\n  \"fragments/nope.config\",\n]\n"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("k.toml:6:3: fragments[1]: fragment file"),
            "{msg}"
        );
        assert!(msg.contains("nope.config does not exist"), "{msg}");
    }

    #[test]
    fn test_bad_sha_source_arch_and_make_vars_are_rejected() {
        let dir = setup();
        let bad = |text: String, expect: &str| {
            let err = parse(dir.path(), &text).unwrap_err().to_string();
            assert!(err.contains(expect), "{err} should contain {expect}");
        };
        bad(
            "source = { path = \"x\", sha256 = \"ABC\" }\narch = \"x86_64\"\nbase = \"tinyconfig\"\n".into(),
            "k.toml:1:10: source.sha256: `ABC` is not 64 lowercase hex digits",
        );
        bad(
            format!(
                "source = {{ path = \"x\", url = \"http://a\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\n"
            ),
            "exactly one of `url` or `path`",
        );
        bad(
            format!(
                "source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"arm64\"\nbase = \"tinyconfig\"\n"
            ),
            "k.toml:2:8: arch: `arm64` is not supported",
        );
        bad(
            format!(
                "source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\n[make]\nARCH = \"arm\"\n"
            ),
            "make.ARCH: vmimage sets this variable itself",
        );
        bad(
            format!(
                "source = {{ path = \"x\", sha256 = \"{SHA}\", mirror = \"y\" }}\narch = \"x86_64\"\nbase = \"tinyconfig\"\n"
            ),
            "mirror",
        );
        bad(
            format!(
                "source = {{ path = \"x\", sha256 = \"{SHA}\" }}\narch = \"x86_64\"\nbase = {{ file = \"none.config\" }}\n"
            ),
            "none.config does not exist",
        );
    }
}
