//! `vmimage push SRC DEST`: copy an artifact (with its referrers) between OCI
//! layouts and registries. Also holds the registry flags the OCI commands share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use vmimage_oci::{EcrOptions, ImageRef, RegistryOptions};

use crate::output::Output;

/// Flags for reaching registries, shared by the OCI commands.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Talk HTTP instead of HTTPS to registries.
    #[arg(long)]
    pub plain_http: bool,
    /// PEM file with the CA certificate(s) of a private registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Treat the registry as Amazon ECR even if its host name is not an ECR one.
    #[arg(long)]
    pub ecr: bool,
    /// ECR API endpoint (e.g. a local moto server); implies --ecr.
    #[arg(long, env = "VMIMAGE_ECR_ENDPOINT", value_name = "URL")]
    pub ecr_endpoint: Option<String>,
    /// ECR registry id (AWS account); default: from the host name.
    #[arg(long, value_name = "ID")]
    pub ecr_registry_id: Option<String>,
    /// AWS region for ECR; default: from the host name, else the AWS config.
    #[arg(long, value_name = "REGION")]
    pub ecr_region: Option<String>,
    /// Create a missing ECR repository (immutable tags, scan on push).
    #[arg(long)]
    pub create_repository: bool,
    /// Blobs moved at once.
    #[arg(long, default_value_t = vmimage_oci::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

impl RegistryArgs {
    /// The library's options, with a byte-counting progress bar from `out`.
    pub fn options(&self, out: &Output, what: &str) -> RegistryOptions {
        let bar = out.progress(0, true, what);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}")
                .expect("static template"),
        );
        let progress: vmimage_oci::registry::ProgressFn = Arc::new(move |n| bar.inc(n));
        RegistryOptions {
            plain_http: self.plain_http,
            ca_file: self.ca_file.clone(),
            ecr: EcrOptions {
                force: self.ecr || self.ecr_endpoint.is_some(),
                endpoint: self.ecr_endpoint.clone(),
                registry_id: self.ecr_registry_id.clone(),
                region: self.ecr_region.clone(),
                create_repository: self.create_repository,
            },
            credentials: None,
            concurrency: self.concurrency,
            progress: Some(progress),
        }
    }
}

/// Parses a reference with the argument name in the error.
pub fn parse_ref(s: &str) -> anyhow::Result<ImageRef> {
    Ok(ImageRef::parse(s)?)
}

/// Arguments of `vmimage push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source: oci:DIR[:TAG|@DIGEST] or REGISTRY/REPO[:TAG|@DIGEST].
    pub src: String,
    /// Destination: oci:DIR[:TAG] or REGISTRY/REPO[:TAG].
    pub dest: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let src = parse_ref(&args.src)?;
    let dest = parse_ref(&args.dest)?;
    let opts = args.registry.options(out, "push");
    let done = vmimage_oci::block_on(vmimage_oci::push(&src, &dest, &opts))
        .with_context(|| format!("pushing {src} to {dest}"))?;
    out.result(&done, || {
        format!(
            "{}@{}\n{} blobs uploaded ({} bytes), {} already present, {} mounted, {} referrers",
            done.destination,
            done.digest,
            done.blobs_copied,
            done.bytes_copied,
            done.blobs_skipped,
            done.blobs_mounted,
            done.referrers
        )
    });
    Ok(())
}
