//! `vmimage kernel RECIPE --out DIR` (also `vmimage kernel build ...`):
//! build a `vmlinux` from a kernel recipe; `vmimage kernel extract BZIMAGE
//! OUT`: turn a distribution's compressed kernel into a `vmlinux`.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Output;

/// Arguments of `vmimage kernel`: a subcommand, or the build arguments
/// directly (`vmimage kernel RECIPE --out DIR` is `kernel build`).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<KernelCommand>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Debug, clap::Subcommand)]
enum KernelCommand {
    /// Build vmlinux from a kernel recipe (the default).
    Build(BuildArgs),
    /// Extract vmlinux from a compressed kernel (bzImage/vmlinuz).
    Extract(ExtractArgs),
}

/// Arguments of `vmimage kernel [build]`.
#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The kernel recipe (TOML), e.g. kernels/microvm-6.1-x86_64.toml.
    #[arg(required = true)]
    recipe: Option<PathBuf>,
    /// Directory for vmlinux, .config, System.map and build.json (replaced atomically).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Build even if the cache has this kernel.
    #[arg(long)]
    rebuild: bool,
    /// Cache directory (default: $VMIMAGE_CACHE, else ~/.cache/vmimage).
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Arguments of `vmimage kernel extract`.
#[derive(Debug, clap::Args)]
struct ExtractArgs {
    /// The compressed kernel, e.g. /boot/vmlinuz-6.1.0-28-cloud-amd64.
    bzimage: PathBuf,
    /// The vmlinux to write.
    out: PathBuf,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    match args.command {
        Some(KernelCommand::Extract(a)) => extract(a, out),
        Some(KernelCommand::Build(a)) => build(a, out),
        None => build(args.build, out),
    }
}

fn build(args: BuildArgs, out: &Output) -> anyhow::Result<()> {
    let recipe_path = args.recipe.context("a kernel recipe is required")?;
    let out_dir = args.out.context("--out DIR is required")?;
    let recipe = vmimage_kernel::KernelRecipe::load(&recipe_path)?;
    let opts = vmimage_kernel::BuildOptions {
        out: out_dir,
        jobs: args.jobs,
        rebuild: args.rebuild,
        cache: args.cache.unwrap_or_else(vmimage_kernel::default_cache_dir),
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static template"),
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let result = vmimage_kernel::build_kernel(&recipe, &opts, &mut |step| {
        tracing::info!("{step}");
        spinner.set_message(step.to_string());
    });
    spinner.finish_and_clear();
    let outcome =
        result.with_context(|| format!("building the kernel of {}", recipe_path.display()))?;
    out.result(&outcome, || {
        let r = &outcome.record;
        let how = if outcome.cache_hit {
            format!(
                "cache hit in {:.2} s (built in {:.0} s)",
                outcome.seconds, r.duration_seconds
            )
        } else {
            format!("built in {:.0} s", outcome.seconds)
        };
        format!(
            "{}/vmlinux: Linux {} ({:.1} MB, {} options, PVH {}), {how}",
            outcome.out.display(),
            r.kernel_release,
            r.vmlinux_size as f64 / 1e6,
            r.option_count,
            if r.pvh { "yes" } else { "no" },
        )
    });
    Ok(())
}

fn extract(args: ExtractArgs, out: &Output) -> anyhow::Result<()> {
    let report = vmimage_kernel::extract_vmlinux(&args.bzimage, &args.out)
        .with_context(|| format!("extracting vmlinux from {}", args.bzimage.display()))?;
    out.result(&report, || {
        format!(
            "{}: {} payload ({} bytes, boot protocol {}) -> {} bytes of ELF{}",
            report.output.display(),
            report.compression,
            report.payload_size,
            report.protocol,
            report.vmlinux_size,
            if report.pvh { ", PVH entry" } else { "" }
        )
    });
    Ok(())
}
