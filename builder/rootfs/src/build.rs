//! The build and lock entry points: plan, download, install, customize, normalize, write.
//!
//! Output is atomic. The tree is composed in a hidden temporary directory beside the
//! destination (same file system, so the final step is a rename); a tar is written to a
//! hidden temporary file beside its destination and renamed into place. On any error,
//! refused signatures and tampered downloads included, the temporaries are removed and
//! nothing appears at the destination (an existing destination is left untouched).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use vmimage_apt::{Cache, Clock, Fetcher};
use vmimage_recipe::{Distro, Recipe};

use crate::error::{RootfsError, io_err};
use crate::lockfile::Lockfile;
use crate::plan::{self, PlannedPackage};
use crate::{customize, install, normalize, sbom, tarball};

/// What `build` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// A directory tree.
    Dir(PathBuf),
    /// A deterministic tar archive (the tree lives in a temporary directory meanwhile).
    Tar(PathBuf),
}

/// Download progress: `(done, total)`.
pub type ProgressFn = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Options of [`build`].
#[derive(Clone)]
pub struct BuildOptions {
    /// The validated recipe.
    pub recipe: Recipe,
    /// Where the result goes.
    pub output: OutputKind,
    /// The download cache directory.
    pub cache: PathBuf,
    /// Archive URL overriding the recipe and the host's apt sources.
    pub mirror: Option<String>,
    /// Install exactly this lockfile's set (no resolution).
    pub lockfile: Option<PathBuf>,
    /// Also write an SPDX 2.3 JSON SBOM here.
    pub sbom: Option<PathBuf>,
    /// "Now" for Release expiry checks.
    pub clock: Clock,
    /// Download progress callback.
    pub progress: Option<ProgressFn>,
}

impl BuildOptions {
    /// Options with the default cache ([`Cache::default_location`]) and nothing else set.
    pub fn new(recipe: Recipe, output: OutputKind) -> BuildOptions {
        BuildOptions {
            recipe,
            output,
            cache: Cache::default_location(),
            mirror: None,
            lockfile: None,
            sbom: None,
            clock: Clock::System,
            progress: None,
        }
    }
}

/// What [`build`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The tree or tar written.
    pub output: PathBuf,
    /// Number of packages installed.
    pub packages: usize,
    /// Whether the package set came from a lockfile.
    pub locked: bool,
    /// The timestamp clamp used.
    pub source_date_epoch: i64,
    /// SHA256 of the tar (tar output only).
    pub sha256: Option<String>,
    /// Tar entries written (tar output only).
    pub entries: Option<u64>,
    /// The SBOM written, if asked for.
    pub sbom: Option<PathBuf>,
}

/// Builds the recipe's root filesystem.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, RootfsError> {
    let recipe = &opts.recipe;
    let dest = match &opts.output {
        OutputKind::Dir(p) | OutputKind::Tar(p) => p.clone(),
    };
    let parent = parent_dir(&dest);
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let archive = plan::archive_url(recipe, opts.mirror.as_deref())?;
    let fetcher = Fetcher::new(Cache::new(&opts.cache));

    let (planned, locked) = match &opts.lockfile {
        Some(path) => {
            let lock = Lockfile::read(path)?;
            lock.check_fresh(recipe, path)?;
            (plan::from_lock(&lock, recipe, &archive), true)
        }
        None => (
            plan::resolve(recipe, &archive, &fetcher, &opts.clock)?,
            false,
        ),
    };
    tracing::info!(packages = planned.len(), locked, "downloading");
    let noop = |_: usize, _: usize| {};
    let progress: &(dyn Fn(usize, usize) + Sync) = match &opts.progress {
        Some(p) => p.as_ref(),
        None => &noop,
    };
    let paths = plan::download(&planned, &fetcher, progress)?;
    let debs = install::read_debs(&planned, &paths)?;
    let source_date_epoch = recipe
        .rootfs
        .source_date_epoch
        .unwrap_or_else(|| debs.iter().map(|d| d.mtime).max().unwrap_or(0));

    let name = dest
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let scratch = match &opts.output {
        // The tree must end up at the destination by a rename: build it beside it.
        OutputKind::Dir(_) => parent.clone(),
        OutputKind::Tar(_) => scratch_dir(&parent, debs.iter().map(|d| d.installed_size).sum()),
    };
    tracing::debug!(scratch = %scratch.display(), "tree location");
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&scratch)
        .map_err(io_err(&scratch))?;
    // The tree's root directory is the image's `/`: root-owned, 0755.
    install::set_mode(work.path(), 0o755)?;
    compose(
        work.path(),
        recipe,
        &planned,
        &debs,
        &archive,
        source_date_epoch,
    )?;

    if let Some(sbom_path) = &opts.sbom {
        let doc = sbom::spdx(
            &recipe.image.name,
            &recipe.rootfs.distro.to_string(),
            &planned,
            work.path(),
            source_date_epoch,
        );
        let mut text = serde_json::to_vec_pretty(&doc).expect("json serializes");
        text.push(b'\n');
        write_atomic(sbom_path, &text)?;
    }

    let mut report = BuildReport {
        output: dest.clone(),
        packages: planned.len(),
        locked,
        source_date_epoch,
        sha256: None,
        entries: None,
        sbom: opts.sbom.clone(),
    };
    match &opts.output {
        OutputKind::Dir(_) => {
            let tree = work.keep();
            if let Err(e) = replace_dir(&tree, &dest) {
                let _ = std::fs::remove_dir_all(&tree);
                return Err(e);
            }
        }
        OutputKind::Tar(_) => {
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}.tmp-"))
                .tempfile_in(&parent)
                .map_err(io_err(&parent))?;
            let (sha, stats) = tarball::write_tar_file(work.path(), tmp.path(), source_date_epoch)?;
            tmp.persist(&dest).map_err(|e| RootfsError::Io {
                path: dest.clone(),
                source: e.error,
            })?;
            report.sha256 = Some(sha);
            report.entries = Some(stats.entries);
        }
    }
    Ok(report)
}

/// Install, customize, clean up and normalize the tree at `root`.
fn compose(
    root: &Path,
    recipe: &Recipe,
    planned: &[PlannedPackage],
    debs: &[install::DebInfo],
    archive: &str,
    source_date_epoch: i64,
) -> Result<(), RootfsError> {
    tracing::info!(root = %root.display(), "installing");
    install::install(root, debs, &recipe.rootfs.architecture, source_date_epoch)?;
    write_apt_sources(root, recipe, archive)?;
    tracing::info!("applying the recipe");
    customize::apply(root, recipe, source_date_epoch)?;
    customize::cleanup(root, &recipe.rootfs.cleanup)?;
    let _ = planned;
    normalize::normalize(root, source_date_epoch)
}

/// Writes `/etc/apt/sources.list.d/vmimage.sources` so apt in the image uses the archive the
/// image was built from (and the recipe's extra repositories, keys copied in).
fn write_apt_sources(root: &Path, recipe: &Recipe, archive: &str) -> Result<(), RootfsError> {
    if archive.starts_with("file:") {
        return Ok(()); // a build-host directory means nothing inside the image
    }
    let r = &recipe.rootfs;
    let default_keyring = match r.distro {
        Distro::Debian => vmimage_recipe::DEBIAN_KEYRING,
        Distro::Ubuntu => vmimage_recipe::UBUNTU_KEYRING,
    };
    let keyring_in_image = if r.keyring == Path::new(default_keyring) {
        default_keyring.to_string()
    } else {
        copy_key(root, &r.keyring, "vmimage-archive")?
    };
    let mut suites = vec![r.suite.clone()];
    suites.extend(r.extra_suites.iter().cloned());
    let mut text = format!(
        "Types: deb\nURIs: {archive}\nSuites: {}\nComponents: {}\nSigned-By: {keyring_in_image}\n",
        suites.join(" "),
        r.components.join(" ")
    );
    for (i, repo) in r.repositories.iter().enumerate() {
        if repo.url.starts_with("file:") {
            continue;
        }
        let key = copy_key(root, &repo.key, &format!("vmimage-repo-{i}"))?;
        text.push_str(&format!(
            "\nTypes: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: {key}\n",
            repo.url,
            repo.suite,
            repo.components.join(" ")
        ));
    }
    install::write_file(
        &root.join("etc/apt/sources.list.d/vmimage.sources"),
        text.as_bytes(),
        0o644,
    )
}

fn copy_key(root: &Path, key: &Path, name: &str) -> Result<String, RootfsError> {
    let data = std::fs::read(key).map_err(io_err(key))?;
    let ext = if data.starts_with(b"-----BEGIN") {
        "asc"
    } else {
        "gpg"
    };
    let rel = format!("etc/apt/keyrings/{name}.{ext}");
    install::write_file(&root.join(&rel), &data, 0o644)?;
    Ok(format!("/{rel}"))
}

/// Options of [`lock`].
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// The validated recipe.
    pub recipe: Recipe,
    /// Lockfile path (default `RECIPE.lock`).
    pub path: Option<PathBuf>,
    /// Re-resolve even when a fresh lockfile exists (and replace a stale one).
    pub update: bool,
    /// Download cache (indices are cached too).
    pub cache: PathBuf,
    /// Archive URL overriding the recipe and the host's apt sources.
    pub mirror: Option<String>,
    /// "Now" for Release expiry checks.
    pub clock: Clock,
}

/// What [`lock`] did.
#[derive(Debug, Clone, Serialize)]
pub struct LockReport {
    /// The lockfile.
    pub path: PathBuf,
    /// Packages in it.
    pub packages: usize,
    /// Whether it was (re)written.
    pub written: bool,
    /// The recipe's rootfs digest.
    pub rootfs_digest: String,
}

/// Resolves the recipe and writes its lockfile; an existing fresh lockfile is kept unless
/// `update`, a stale one is an error unless `update`.
pub fn lock(opts: &LockOptions) -> Result<LockReport, RootfsError> {
    let recipe = &opts.recipe;
    let path = opts
        .path
        .clone()
        .unwrap_or_else(|| Lockfile::default_path(&recipe.path));
    if path.exists() && !opts.update {
        let existing = Lockfile::read(&path)?;
        existing.check_fresh(recipe, &path)?;
        return Ok(LockReport {
            path,
            packages: existing.packages.len(),
            written: false,
            rootfs_digest: existing.rootfs_digest,
        });
    }
    let archive = plan::archive_url(recipe, opts.mirror.as_deref())?;
    let fetcher = Fetcher::new(Cache::new(&opts.cache));
    let planned = plan::resolve(recipe, &archive, &fetcher, &opts.clock)?;
    let lock = Lockfile::new(recipe, &planned);
    lock.write(&path)?;
    Ok(LockReport {
        path,
        packages: lock.packages.len(),
        written: true,
        rootfs_digest: lock.rootfs_digest,
    })
}

/// Where a tree that only feeds a tar is built: `$VMIMAGE_SCRATCH` when set; else
/// `/dev/shm` when that memory file system has room for three times the packages'
/// installed size plus 1 GiB for what `[[run]]` steps add (a scratch tree there costs no
/// disk writes and none of a disk file system's inode allocation, which dominates
/// unpacking ten thousand small files); else `fallback`. A pod's default 64 MiB
/// `/dev/shm` therefore always falls back to disk.
fn scratch_dir(fallback: &Path, installed: u64) -> PathBuf {
    if let Some(dir) = std::env::var_os("VMIMAGE_SCRATCH").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    if shm.is_dir() && shm_fits(room, installed) {
        shm.to_path_buf()
    } else {
        fallback.to_path_buf()
    }
}

/// Whether a tree of `installed` bytes of packages fits a memory file system with `room`
/// bytes free, with margin for scripts and run steps.
fn shm_fits(room: u64, installed: u64) -> bool {
    installed > 0 && room >= installed.saturating_mul(3).saturating_add(1 << 30)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Moves the finished tree `new` to `dest`, replacing a previous tree there.
fn replace_dir(new: &Path, dest: &Path) -> Result<(), RootfsError> {
    if std::fs::symlink_metadata(dest).is_ok() {
        let mut old = dest.as_os_str().to_owned();
        old.push(format!(".old-{}", std::process::id()));
        let old = PathBuf::from(old);
        std::fs::rename(dest, &old).map_err(io_err(dest))?;
        if let Err(e) = std::fs::rename(new, dest) {
            let _ = std::fs::rename(&old, dest);
            return Err(RootfsError::Io {
                path: dest.to_path_buf(),
                source: e,
            });
        }
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    } else {
        std::fs::rename(new, dest).map_err(io_err(dest))?;
    }
    Ok(())
}

/// Writes `data` to `path` through a temporary file in the same directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RootfsError> {
    use std::io::Write;
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".vmimage-tmp-")
        .tempfile_in(&dir)
        .map_err(io_err(&dir))?;
    tmp.write_all(data).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    install::set_mode(tmp.path(), 0o644)?;
    tmp.persist(path).map_err(|e| RootfsError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_scratch_in_memory_only_with_ample_room() {
        let mib = 1u64 << 20;
        assert!(
            shm_fits(24 << 30, 200 * mib),
            "a minbase tree on a 24 GiB /dev/shm"
        );
        assert!(
            !shm_fits(64 * mib, 200 * mib),
            "a pod's default 64 MiB /dev/shm"
        );
        assert!(!shm_fits(1 << 30, 10 * mib), "no margin left for run steps");
        assert!(!shm_fits(u64::MAX, 0), "unknown size: stay on disk");
        assert!(!shm_fits(u64::MAX - 1, u64::MAX / 2));
    }
}
