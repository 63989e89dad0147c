//! Builds `vmlinux` from a [`KernelRecipe`]: verify and unpack the source,
//! make the base config, merge the fragments, `make olddefconfig`, check
//! that every requested option survived (naming the unmet dependency when
//! one did not), `make vmlinux` out of tree, verify the ELF, and install
//! `vmlinux`, `.config`, `System.map` and `build.json` into the output
//! directory atomically.
//!
//! Cache layout under `<cache>/kernel/` (`<cache>` is `--cache`, else
//! `$VMIMAGE_CACHE`, else `~/.cache/vmimage`):
//!
//! ```text
//! src/<source-sha256>/        the unpacked tree, never written to (builds use O=)
//! download/<sha256>-<name>    downloaded tarballs (url sources)
//! build/<key>/                an O= build directory while a build runs; kept
//!                             after a failure so the next run resumes, removed
//!                             after success
//! build/<key>.lock/           held by the process building <key>
//! out/<key>/                  finished outputs: vmlinux .config System.map build.json
//! prekey/<prekey>             the <key> an input set produced
//! ```
//!
//! `key` is the sha256 of the source sha256, the final `.config`, the
//! compiler version and the make variables: what determines the build.
//! `prekey` is the sha256 of what determines the final config (source, base,
//! fragment contents, compiler, make variables), so a repeated build finds
//! its output without running even `make olddefconfig`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{self, ConfigFile, ConfigParseError};
use crate::elf::{self, ElfCheckError};
use crate::kconfig::{KconfigParseError, KconfigTree};
use crate::recipe::{BaseConfig, KernelRecipe};
use crate::source::{self, SourceError};

/// Bumped when the build procedure changes in a way that changes outputs,
/// so old cache entries are not reused.
const BUILD_SCHEME: u32 = 1;

/// Environment variables that change what kbuild does; cleared so the
/// recipe alone decides (a `make -j` parent's jobserver in MAKEFLAGS
/// included).
const SCRUBBED_ENV: &[&str] = &[
    "ARCH",
    "SRCARCH",
    "CROSS_COMPILE",
    "O",
    "KBUILD_OUTPUT",
    "KCONFIG_CONFIG",
    "KCONFIG_ALLCONFIG",
    "KBUILD_EXTMOD",
    "KCFLAGS",
    "KCPPFLAGS",
    "KAFLAGS",
    "KRUSTFLAGS",
    "LLVM",
    "LLVM_IAS",
    "CC",
    "LD",
    "HOSTCC",
    "LOCALVERSION",
    "KBUILD_BUILD_TIMESTAMP",
    "KBUILD_BUILD_USER",
    "KBUILD_BUILD_HOST",
    "KBUILD_BUILD_VERSION",
    "KBUILD_VERBOSE",
    "V",
    "W",
    "C",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    "GNUMAKEFLAGS",
];

/// Files installed into the output directory.
pub const OUTPUT_FILES: [&str; 4] = ["vmlinux", ".config", "System.map", "build.json"];

/// Building a kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelBuildError {
    /// Getting or unpacking the source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A fragment or config file is malformed.
    #[error(transparent)]
    Config(#[from] ConfigParseError),
    /// The Kconfig files could not be read while explaining a dropped option.
    #[error(transparent)]
    Kconfig(#[from] KconfigParseError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tool could not be run.
    #[error("running {command}: {message}")]
    Tool {
        /// The command line.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// `make` failed.
    #[error("`{command}` failed ({status}); log: {log}\n{tail}")]
    Make {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The full log.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// Kconfig dropped options the fragments set.
    #[error("{} option(s) the fragments set did not survive `make olddefconfig`:\n{list}", .dropped.len())]
    OptionsDropped {
        /// Each dropped option, with the reason.
        dropped: Vec<config::DroppedOption>,
        /// The same, one per line.
        list: String,
    },
    /// The built file is not a loadable vmlinux.
    #[error("{path}: {source}")]
    Vmlinux {
        /// The file.
        path: PathBuf,
        /// What the check found.
        source: ElfCheckError,
    },
    /// `CONFIG_PVH=y` but the PVH entry note is missing.
    #[error("{path}: CONFIG_PVH=y but the Xen PHYS32_ENTRY (PVH) ELF note is missing")]
    NoPvhNote {
        /// The file.
        path: PathBuf,
    },
    /// `--out` exists and is not a directory.
    #[error("output {0} exists and is not a directory")]
    OutNotDir(PathBuf),
    /// A cached output does not match its record.
    #[error("cached output {path} is corrupt: {what}; delete it or use --rebuild")]
    CorruptCache {
        /// The cache entry.
        path: PathBuf,
        /// What did not match.
        what: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KernelBuildError + '_ {
    move |source| KernelBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The record written as `build.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    /// sha256 of the source tarball.
    pub source_sha256: String,
    /// sha256 of the final `.config`.
    pub config_sha256: String,
    /// First line of `gcc --version` (or of `$CC --version`).
    pub compiler: String,
    /// `make -s kernelrelease`.
    pub kernel_release: String,
    /// Target architecture.
    pub arch: String,
    /// The make variables the build used.
    pub make_variables: BTreeMap<String, String>,
    /// sha256 of `vmlinux`.
    pub vmlinux_sha256: String,
    /// Size of `vmlinux` in bytes.
    pub vmlinux_size: u64,
    /// Whether `vmlinux` has the PVH entry note.
    pub pvh: bool,
    /// Options set (`CONFIG_X=...` lines) in the final config.
    pub option_count: usize,
    /// How long the build that produced this took, in seconds. A record of
    /// the build, not an input of any image.
    pub duration_seconds: f64,
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The directory to install the outputs into (replaced atomically).
    pub out: PathBuf,
    /// `make -j`; `None` uses the number of CPUs.
    pub jobs: Option<usize>,
    /// Build even if the cache has the output.
    pub rebuild: bool,
    /// The cache root (see the module docs).
    pub cache: PathBuf,
}

/// What [`build_kernel`] did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    /// The output directory.
    pub out: PathBuf,
    /// The cache key.
    pub key: String,
    /// Whether the output came from the cache.
    pub cache_hit: bool,
    /// Seconds this call took.
    pub seconds: f64,
    /// The recipe's default command line.
    pub cmdline: Option<String>,
    /// The build record.
    pub record: BuildRecord,
}

/// `$VMIMAGE_CACHE`, else `~/.cache/vmimage`, else `.vmimage-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VMIMAGE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/vmimage"),
        None => PathBuf::from(".vmimage-cache"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Removes a directory when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// A lock directory for one build key: created atomically, holding the
/// owner's pid; a lock whose owner is gone is taken over.
struct BuildLock(PathBuf);

impl BuildLock {
    fn acquire(dir: &Path, step: &mut dyn FnMut(&str)) -> Result<Self, KernelBuildError> {
        let mut waited = false;
        loop {
            match std::fs::create_dir(dir) {
                Ok(()) => {
                    let pid_file = dir.join("pid");
                    std::fs::write(&pid_file, std::process::id().to_string())
                        .map_err(io_err(&pid_file))?;
                    return Ok(BuildLock(dir.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(dir.join("pid")).ok();
                    let alive = owner
                        .as_deref()
                        .and_then(|p| p.trim().parse::<u32>().ok())
                        .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
                    if alive {
                        if !waited {
                            step(&format!(
                                "waiting for pid {} to finish building (lock {})",
                                owner.unwrap_or_default().trim(),
                                dir.display()
                            ));
                            waited = true;
                        }
                        std::thread::sleep(Duration::from_secs(2));
                    } else {
                        // The owner died (or is still writing its pid: then
                        // the pid file appears within a moment).
                        std::thread::sleep(Duration::from_millis(200));
                        if std::fs::read_to_string(dir.join("pid")).ok() == owner {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                }
                Err(e) => return Err(io_err(dir)(e)),
            }
        }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs make in `srctree` with `O=build_dir`, the recipe's variables and a
/// scrubbed environment. Output goes to `log` (appended).
fn make(
    recipe: &KernelRecipe,
    srctree: &Path,
    build_dir: &Path,
    args: &[String],
    log: &Path,
) -> Result<(), KernelBuildError> {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(srctree)
        .arg(format!("O={}", build_dir.display()))
        .arg(format!("ARCH={}", recipe.arch.make_arch()));
    for (k, v) in &recipe.make_vars {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.args(args);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("LC_ALL", "C");
    let shown = format!(
        "make O={} ARCH={} {}",
        build_dir.display(),
        recipe.arch.make_arch(),
        args.join(" ")
    );
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    writeln!(logf, "$ {shown}").map_err(io_err(log))?;
    let err_f = logf.try_clone().map_err(io_err(log))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(logf))
        .stderr(Stdio::from(err_f));
    tracing::debug!("{cmd:?}");
    let status = cmd.status().map_err(|e| KernelBuildError::Tool {
        command: shown.clone(),
        message: e.to_string(),
    })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n");
    Err(KernelBuildError::Make {
        command: shown,
        status: status.to_string(),
        log: log.to_path_buf(),
        tail,
    })
}

/// `make -s kernelrelease`.
fn kernel_release(
    recipe: &KernelRecipe,
    srctree: &Path,
    build_dir: &Path,
) -> Result<String, KernelBuildError> {
    let mut cmd = Command::new("make");
    cmd.arg("-s")
        .arg("-C")
        .arg(srctree)
        .arg(format!("O={}", build_dir.display()))
        .arg(format!("ARCH={}", recipe.arch.make_arch()))
        .arg("kernelrelease");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|e| KernelBuildError::Tool {
        command: "make -s kernelrelease".into(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `make -C` may print "make[1]: Entering directory"; the release is the
    // last non-empty line.
    match text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("make"))
    {
        Some(release) if out.status.success() => Ok(release.trim().to_string()),
        _ => Err(KernelBuildError::Tool {
            command: "make -s kernelrelease".into(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

/// The first line of `$CC --version` (CC from the recipe's make variables,
/// else gcc).
pub fn compiler_version(make_vars: &BTreeMap<String, String>) -> Result<String, KernelBuildError> {
    let cc = make_vars.get("CC").map_or("gcc", String::as_str);
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("gcc");
    let out = Command::new(program)
        .args(words)
        .arg("--version")
        .output()
        .map_err(|e| KernelBuildError::Tool {
            command: format!("{cc} --version"),
            message: format!("{e} (is a C compiler installed?)"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().next() {
        Some(line) if out.status.success() => Ok(line.trim().to_string()),
        _ => Err(KernelBuildError::Tool {
            command: format!("{cc} --version"),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

#[derive(Serialize)]
struct PreKey<'a> {
    scheme: u32,
    source_sha256: &'a str,
    arch: &'a str,
    base: String,
    fragments: Vec<String>,
    compiler: &'a str,
    make_vars: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Key<'a> {
    scheme: u32,
    source_sha256: &'a str,
    arch: &'a str,
    config: &'a str,
    compiler: &'a str,
    make_vars: &'a BTreeMap<String, String>,
}

fn hash_json<T: Serialize>(v: &T) -> String {
    sha256_hex(&serde_json::to_vec(v).expect("keys serialize"))
}

/// Checks a cache entry against its record and returns the record.
fn cached_output(dir: &Path) -> Result<Option<BuildRecord>, KernelBuildError> {
    let json = dir.join("build.json");
    let Ok(bytes) = std::fs::read(&json) else {
        return Ok(None);
    };
    let record: BuildRecord =
        serde_json::from_slice(&bytes).map_err(|e| KernelBuildError::CorruptCache {
            path: dir.to_path_buf(),
            what: format!("build.json: {e}"),
        })?;
    for f in OUTPUT_FILES {
        if !dir.join(f).is_file() {
            return Err(KernelBuildError::CorruptCache {
                path: dir.to_path_buf(),
                what: format!("{f} is missing"),
            });
        }
    }
    Ok(Some(record))
}

/// Copies a finished cache entry into `out`: into a temporary sibling
/// directory first (checking vmlinux against the record), then renamed
/// into place; an existing `out` directory is replaced.
fn install(entry: &Path, record: &BuildRecord, out: &Path) -> Result<(), KernelBuildError> {
    if out.exists() && !out.is_dir() {
        return Err(KernelBuildError::OutNotDir(out.to_path_buf()));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    for f in OUTPUT_FILES {
        let (from, to) = (entry.join(f), tmp.path().join(f));
        std::fs::copy(&from, &to).map_err(io_err(&from))?;
    }
    let vmlinux = tmp.path().join("vmlinux");
    let bytes = std::fs::read(&vmlinux).map_err(io_err(&vmlinux))?;
    let actual = sha256_hex(&bytes);
    if actual != record.vmlinux_sha256 {
        return Err(KernelBuildError::CorruptCache {
            path: entry.to_path_buf(),
            what: format!(
                "vmlinux sha256 expected {}, actual {actual}",
                record.vmlinux_sha256
            ),
        });
    }
    // Swap: the old output moves aside, the new one in, the old one goes.
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = out.is_dir();
    if had_old {
        std::fs::rename(out, &old).map_err(io_err(out))?;
    }
    if let Err(e) = std::fs::rename(tmp.path(), out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(io_err(out)(e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_file_atomically(path: &Path, text: &[u8]) -> Result<(), KernelBuildError> {
    crate::extract::write_atomically(path, text).map_err(io_err(path))
}

/// Builds (or finds in the cache) the kernel `recipe` describes and
/// installs it into `opts.out`. `step` is told what is happening, for
/// progress display.
///
/// ```no_run
/// use vmimage_kernel::{BuildOptions, KernelRecipe, build_kernel, default_cache_dir};
/// let recipe = KernelRecipe::load("kernels/microvm-6.1-x86_64.toml".as_ref())?;
/// let opts = BuildOptions {
///     out: "out/kernel".into(),
///     jobs: None,
///     rebuild: false,
///     cache: default_cache_dir(),
/// };
/// let outcome = build_kernel(&recipe, &opts, &mut |step| eprintln!("{step}"))?;
/// println!("{} ({} bytes)", outcome.record.kernel_release, outcome.record.vmlinux_size);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_kernel(
    recipe: &KernelRecipe,
    opts: &BuildOptions,
    step: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, KernelBuildError> {
    let start = Instant::now();
    let outcome = |key: String, cache_hit: bool, record: BuildRecord| BuildOutcome {
        out: opts.out.clone(),
        key,
        cache_hit,
        seconds: start.elapsed().as_secs_f64(),
        cmdline: recipe.cmdline.clone(),
        record,
    };

    // 1. Inputs: fragments and base parse first, so a bad line fails fast.
    let fragments = recipe
        .fragments
        .iter()
        .map(|p| ConfigFile::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let base_text = match &recipe.base {
        BaseConfig::File(p) => {
            ConfigFile::read(p)?;
            Some(std::fs::read_to_string(p).map_err(io_err(p))?)
        }
        _ => None,
    };
    let compiler = compiler_version(&recipe.make_vars)?;
    let sha = recipe.source.sha256();
    step("verifying the kernel source");
    let tarball = source::fetch(&recipe.source, &opts.cache)?;

    let kdir = opts.cache.join("kernel");
    let prekey = hash_json(&PreKey {
        scheme: BUILD_SCHEME,
        source_sha256: sha,
        arch: recipe.arch.make_arch(),
        base: match (&recipe.base, &base_text) {
            (_, Some(text)) => format!("file:{}", sha256_hex(text.as_bytes())),
            (b, None) => b.make_target().unwrap_or_default().to_string(),
        },
        fragments: recipe
            .fragments
            .iter()
            .map(|p| std::fs::read_to_string(p).map_err(io_err(p)))
            .collect::<Result<_, _>>()?,
        compiler: &compiler,
        make_vars: &recipe.make_vars,
    });
    let prekey_file = kdir.join("prekey").join(&prekey);

    // 2. Cache hit by inputs alone.
    if !opts.rebuild {
        if let Ok(key) = std::fs::read_to_string(&prekey_file) {
            let key = key.trim().to_string();
            if let Some(record) = cached_output(&kdir.join("out").join(&key))? {
                step("cache hit");
                install(&kdir.join("out").join(&key), &record, &opts.out)?;
                return Ok(outcome(key, true, record));
            }
        }
    }

    // 3. Source tree.
    step("unpacking the kernel source (once per sha256)");
    let srctree = source::unpack(&tarball, sha, &opts.cache)?;

    // 4. Configure in a scratch O= directory.
    let build_root = kdir.join("build");
    std::fs::create_dir_all(&build_root).map_err(io_err(&build_root))?;
    let scratch = build_root.join(format!(".cfg-{}-{}", &prekey[..16], std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(io_err(&scratch))?;
    let mut scratch_guard = RemoveOnDrop(Some(scratch.clone()));
    let cfg_log = scratch.join("vmimage-config.log");
    let dot_config = scratch.join(".config");
    match (&recipe.base, &base_text) {
        (_, Some(text)) => std::fs::write(&dot_config, text).map_err(io_err(&dot_config))?,
        (base, None) => {
            let target = base.make_target().expect("named base");
            step(&format!("make {target}"));
            make(recipe, &srctree, &scratch, &[target.to_string()], &cfg_log)?;
        }
    }
    let base_cfg = ConfigFile::read(&dot_config)?;
    let merged = config::merge(&base_cfg, &fragments);
    std::fs::write(&dot_config, merged.config.render()).map_err(io_err(&dot_config))?;
    step("make olddefconfig");
    make(
        recipe,
        &srctree,
        &scratch,
        &["olddefconfig".into()],
        &cfg_log,
    )?;
    let final_text = std::fs::read_to_string(&dot_config).map_err(io_err(&dot_config))?;
    let final_map = ConfigFile::parse(&dot_config, &final_text)?.to_map();

    // 5. Every requested option must have survived.
    let mut dropped = config::dropped_options(&merged.requested, &final_map);
    if !dropped.is_empty() {
        step("explaining dropped options from the Kconfig files");
        let tree = KconfigTree::parse(&srctree, recipe.arch.srcarch())?;
        for d in &mut dropped {
            d.reason = Some(tree.explain(&d.symbol, &d.requested, &final_map));
        }
        let list = dropped
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(KernelBuildError::OptionsDropped { dropped, list });
    }

    // 6. The output key, from what determines the build.
    let key = hash_json(&Key {
        scheme: BUILD_SCHEME,
        source_sha256: sha,
        arch: recipe.arch.make_arch(),
        config: &final_text,
        compiler: &compiler,
        make_vars: &recipe.make_vars,
    });
    let out_entry = kdir.join("out").join(&key);
    let remember_prekey = || -> Result<(), KernelBuildError> {
        std::fs::create_dir_all(kdir.join("prekey")).map_err(io_err(&kdir))?;
        write_file_atomically(&prekey_file, key.as_bytes())
    };
    if !opts.rebuild {
        if let Some(record) = cached_output(&out_entry)? {
            step("cache hit (same final config)");
            remember_prekey()?;
            install(&out_entry, &record, &opts.out)?;
            return Ok(outcome(key, true, record));
        }
    }

    // 7. Build in build/<key>, under its lock.
    let _lock = BuildLock::acquire(&build_root.join(format!("{key}.lock")), step)?;
    if !opts.rebuild {
        // Another process may have built it while this one waited.
        if let Some(record) = cached_output(&out_entry)? {
            remember_prekey()?;
            install(&out_entry, &record, &opts.out)?;
            return Ok(outcome(key, true, record));
        }
    }
    let bdir = build_root.join(&key);
    if opts.rebuild && bdir.exists() {
        std::fs::remove_dir_all(&bdir).map_err(io_err(&bdir))?;
    }
    if bdir.is_dir() {
        // A build of this key was interrupted: resume it.
        std::fs::copy(&dot_config, bdir.join(".config")).map_err(io_err(&bdir))?;
    } else {
        std::fs::rename(&scratch, &bdir).map_err(io_err(&bdir))?;
        scratch_guard.disarm();
    }
    drop(scratch_guard);
    let jobs = opts.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let log = bdir.join("vmimage-build.log");
    step(&format!("make -j{jobs} vmlinux (log: {})", log.display()));
    make(
        recipe,
        &srctree,
        &bdir,
        &[format!("-j{jobs}"), "vmlinux".into()],
        &log,
    )?;

    // 8. Check what came out.
    let vmlinux_path = bdir.join("vmlinux");
    let vmlinux = std::fs::read(&vmlinux_path).map_err(io_err(&vmlinux_path))?;
    let info = elf::inspect(&vmlinux).map_err(|source| KernelBuildError::Vmlinux {
        path: vmlinux_path.clone(),
        source,
    })?;
    let want_pvh = final_map.get("CONFIG_PVH").is_some_and(|v| v.is_y());
    if want_pvh && info.pvh_entry.is_none() {
        return Err(KernelBuildError::NoPvhNote { path: vmlinux_path });
    }
    let record = BuildRecord {
        source_sha256: sha.to_string(),
        config_sha256: sha256_hex(final_text.as_bytes()),
        compiler,
        kernel_release: kernel_release(recipe, &srctree, &bdir)?,
        arch: recipe.arch.make_arch().to_string(),
        make_variables: recipe.make_vars.clone(),
        vmlinux_sha256: sha256_hex(&vmlinux),
        vmlinux_size: vmlinux.len() as u64,
        pvh: info.pvh_entry.is_some(),
        option_count: config::option_count(&final_map),
        duration_seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    drop(vmlinux);

    // 9. Into the cache (staged, then renamed), then into --out.
    let out_root = kdir.join("out");
    std::fs::create_dir_all(&out_root).map_err(io_err(&out_root))?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{}-", &key[..16]))
        .tempdir_in(&out_root)
        .map_err(io_err(&out_root))?;
    for (from, to) in [
        ("vmlinux", "vmlinux"),
        (".config", ".config"),
        ("System.map", "System.map"),
    ] {
        let src = bdir.join(from);
        std::fs::copy(&src, stage.path().join(to)).map_err(io_err(&src))?;
    }
    let json = serde_json::to_vec_pretty(&record).expect("record serializes");
    std::fs::write(stage.path().join("build.json"), json).map_err(io_err(stage.path()))?;
    if out_entry.exists() {
        std::fs::remove_dir_all(&out_entry).map_err(io_err(&out_entry))?;
    }
    std::fs::rename(stage.path(), &out_entry).map_err(io_err(&out_entry))?;
    remember_prekey()?;
    // The objects are ~10x the outputs; the cache keeps only the outputs.
    let _ = std::fs::remove_dir_all(&bdir);
    install(&out_entry, &record, &opts.out)?;
    Ok(outcome(key, false, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BuildRecord {
        BuildRecord {
            source_sha256: "s".into(),
            config_sha256: "c".into(),
            compiler: "gcc".into(),
            kernel_release: "6.1.0".into(),
            arch: "x86_64".into(),
            make_variables: BTreeMap::new(),
            vmlinux_sha256: sha256_hex(b"ELF"),
            vmlinux_size: 3,
            pvh: true,
            option_count: 1,
            duration_seconds: 1.0,
        }
    }

    fn entry(dir: &Path) -> PathBuf {
        let e = dir.join("entry");
        std::fs::create_dir_all(&e).unwrap();
        std::fs::write(e.join("vmlinux"), b"ELF").unwrap();
        std::fs::write(e.join(".config"), b"CONFIG_A=y\n").unwrap();
        std::fs::write(e.join("System.map"), b"map").unwrap();
        std::fs::write(e.join("build.json"), serde_json::to_vec(&record()).unwrap()).unwrap();
        e
    }

    #[test]
    fn test_install_replaces_an_existing_output_directory() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry(dir.path());
        let out = dir.path().join("out/kernel");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("stale"), b"x").unwrap();
        install(&e, &record(), &out).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".config", "System.map", "build.json", "vmlinux"]);
        let siblings: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings.len(), 1, "temporaries left: {siblings:?}");
    }

    #[test]
    fn test_install_refuses_a_corrupt_cache_entry_and_leaves_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry(dir.path());
        std::fs::write(e.join("vmlinux"), b"XXX").unwrap();
        let out = dir.path().join("out");
        let err = install(&e, &record(), &out).unwrap_err();
        assert!(err.to_string().contains("vmlinux sha256 expected"), "{err}");
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn test_cached_output_requires_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry(dir.path());
        assert_eq!(cached_output(&e).unwrap(), Some(record()));
        std::fs::remove_file(e.join("System.map")).unwrap();
        assert!(
            cached_output(&e)
                .unwrap_err()
                .to_string()
                .contains("System.map is missing")
        );
        assert_eq!(cached_output(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn test_build_lock_is_exclusive_and_taken_over_from_a_dead_owner() {
        let dir = tempfile::tempdir().unwrap();
        let lock_dir = dir.path().join("k.lock");
        // A dead owner: a pid that cannot exist.
        std::fs::create_dir(&lock_dir).unwrap();
        std::fs::write(lock_dir.join("pid"), "4294967295").unwrap();
        let lock = BuildLock::acquire(&lock_dir, &mut |_| {}).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock_dir.join("pid")).unwrap(),
            std::process::id().to_string()
        );
        drop(lock);
        assert!(!lock_dir.exists());
    }

    #[test]
    fn test_compiler_version_is_the_first_line() {
        let v = compiler_version(&BTreeMap::new()).unwrap();
        assert!(v.contains("gcc") || v.contains("GCC"), "{v}");
        assert!(!v.contains('\n'));
    }
}
