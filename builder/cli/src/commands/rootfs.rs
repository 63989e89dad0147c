//! `vmimage rootfs RECIPE (--out DIR | --tar FILE)`: build a recipe's root filesystem.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use vmimage_rootfs::{BuildOptions, Lockfile, OutputKind};

use crate::output::Output;

/// Arguments of `vmimage rootfs`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["out", "tar"])))]
pub struct Args {
    /// The recipe (TOML).
    pub recipe: PathBuf,
    /// Write the tree to this directory (replaced atomically when the build succeeds).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a deterministic tar archive instead of a tree.
    #[arg(long)]
    pub tar: Option<PathBuf>,
    /// Download cache [default: $VMIMAGE_CACHE, else ~/.cache/vmimage].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Archive URL; default: the recipe's `mirror`, else the host's apt sources.
    #[arg(long, env = "VMIMAGE_MIRROR")]
    pub mirror: Option<String>,
    /// Install exactly this lockfile's packages [default: RECIPE.lock when it exists].
    #[arg(long)]
    pub lockfile: Option<PathBuf>,
    /// Ignore RECIPE.lock and resolve afresh.
    #[arg(long, conflicts_with = "lockfile")]
    pub no_lockfile: bool,
    /// Also write an SPDX 2.3 JSON SBOM of the installed packages.
    #[arg(long)]
    pub sbom: Option<PathBuf>,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let recipe = vmimage_recipe::Recipe::load(&args.recipe)?;
    if vmimage_rootfs::userns::needed() {
        // Not root: run this same command again as root of a user namespace.
        let exe = std::env::current_exe().context("finding the vmimage binary")?;
        let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let status = vmimage_rootfs::userns::command(&exe, &argv)?
            .status()
            .context("running unshare")?;
        // The inner run printed its own result or error.
        std::process::exit(status.code().unwrap_or(1));
    }
    let output = match (args.out, args.tar) {
        (Some(dir), None) => OutputKind::Dir(dir),
        (None, Some(tar)) => OutputKind::Tar(tar),
        _ => anyhow::bail!("give exactly one of --out DIR or --tar FILE"),
    };
    let lockfile = match args.lockfile {
        Some(p) => Some(p),
        None if args.no_lockfile => None,
        None => Some(Lockfile::default_path(&args.recipe)).filter(|p| p.exists()),
    };
    let mut opts = BuildOptions::new(recipe, output);
    if let Some(c) = args.cache {
        opts.cache = c;
    }
    opts.mirror = args.mirror;
    opts.lockfile = lockfile;
    opts.sbom = args.sbom;
    let bar = out.progress(0, false, "downloading");
    let progress_bar = bar.clone();
    opts.progress = Some(Arc::new(move |done, total| {
        progress_bar.set_length(total as u64);
        progress_bar.set_position(done as u64);
    }));
    let report = vmimage_rootfs::build(&opts)
        .with_context(|| format!("building the rootfs of {}", args.recipe.display()))?;
    bar.finish_and_clear();
    out.result(&report, || {
        let mut s = format!(
            "{} packages{} -> {} (SOURCE_DATE_EPOCH {})",
            report.packages,
            if report.locked { " (locked)" } else { "" },
            report.output.display(),
            report.source_date_epoch
        );
        if let Some(sha) = &report.sha256 {
            s.push_str(&format!("\nsha256:{sha}"));
        }
        if let Some(sbom) = &report.sbom {
            s.push_str(&format!("\nSBOM: {}", sbom.display()));
        }
        s
    });
    Ok(())
}
