//! `vmimage lock RECIPE [--update]`: write the recipe's lockfile (`RECIPE.lock`).

use std::path::PathBuf;

use anyhow::Context;
use vmimage_rootfs::LockOptions;

use crate::output::Output;

/// Arguments of `vmimage lock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipe (TOML).
    pub recipe: PathBuf,
    /// Resolve again and rewrite the lockfile even if it is up to date.
    #[arg(long)]
    pub update: bool,
    /// Lockfile path [default: RECIPE.lock].
    #[arg(long)]
    pub lockfile: Option<PathBuf>,
    /// Download cache [default: $VMIMAGE_CACHE, else ~/.cache/vmimage].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Archive URL; default: the recipe's `mirror`, else the host's apt sources.
    #[arg(long, env = "VMIMAGE_MIRROR")]
    pub mirror: Option<String>,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let recipe = vmimage_recipe::Recipe::load(&args.recipe)?;
    let opts = LockOptions {
        recipe,
        path: args.lockfile,
        update: args.update,
        cache: args
            .cache
            .unwrap_or_else(vmimage_apt::Cache::default_location),
        mirror: args.mirror,
        clock: vmimage_apt::Clock::System,
    };
    let report = vmimage_rootfs::lock(&opts)
        .with_context(|| format!("locking {}", args.recipe.display()))?;
    out.result(&report, || {
        format!(
            "{} {} ({} packages)",
            if report.written {
                "wrote"
            } else {
                "up to date:"
            },
            report.path.display(),
            report.packages
        )
    });
    Ok(())
}
