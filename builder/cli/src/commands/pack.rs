//! `vmimage pack --kernel F --rootfs F ... DEST`: make an artifact from files.

use std::path::PathBuf;

use anyhow::Context as _;

use super::push::{RegistryArgs, parse_ref};
use crate::output::Output;

/// Arguments of `vmimage pack`.
#[derive(Debug, clap::Args)]
// `--version` here is the image version, not vmimage's own.
#[command(disable_version_flag = true)]
pub struct Args {
    /// Uncompressed kernel (vmlinux).
    #[arg(long)]
    pub kernel: PathBuf,
    /// ext4 root filesystem image.
    #[arg(long)]
    pub rootfs: PathBuf,
    /// Directory of Firecracker snapshot files to include.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// SPDX JSON SBOM, attached as a referrer.
    #[arg(long)]
    pub sbom: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long)]
    pub cmdline: Option<String>,
    /// vCPUs.
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Version annotation.
    #[arg(long)]
    pub version: Option<String>,
    /// Git revision annotation.
    #[arg(long)]
    pub revision: Option<String>,
    /// Source repository URL annotation.
    #[arg(long)]
    pub source: Option<String>,
    /// Recipe file (recorded by digest).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Lockfile (recorded by digest).
    #[arg(long)]
    pub lockfile: Option<PathBuf>,
    /// Kernel release (default: read from the vmlinux banner).
    #[arg(long)]
    pub kernel_release: Option<String>,
    /// oci:DIR[:TAG] or REGISTRY/REPO[:TAG].
    pub dest: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let dest = parse_ref(&args.dest)?;
    let opts = args.registry.options(out, "pack");
    let req = vmimage_oci::PackRequest {
        kernel: args.kernel,
        rootfs: args.rootfs,
        snapshot: args.snapshot,
        sbom: args.sbom,
        boot_args: args.cmdline,
        vcpus: args.vcpus,
        memory_mib: args.memory_mib,
        version: args.version,
        revision: args.revision,
        source: args.source,
        recipe: args.recipe,
        lockfile: args.lockfile,
        kernel_release: args.kernel_release,
        source_date_epoch: None,
    };
    let done = vmimage_oci::block_on(vmimage_oci::pack(&req, &dest, &opts))
        .with_context(|| format!("packing into {dest}"))?;
    out.result(&done, || {
        format!(
            "{}@{}{}",
            done.destination,
            done.digest,
            done.sbom_digest
                .as_ref()
                .map(|s| format!("\nsbom: {s}"))
                .unwrap_or_default()
        )
    });
    Ok(())
}
