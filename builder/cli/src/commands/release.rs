//! `vmimage release REF --version X.Y.Z [--channel NAME]...` and
//! `vmimage release list REPO`.

use anyhow::Context as _;

use super::push::{RegistryArgs, parse_ref};
use crate::output::Output;

/// Arguments of `vmimage release`.
#[derive(Debug, clap::Args)]
// `--version` here is the image version, not vmimage's own.
#[command(disable_version_flag = true)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub list: Option<Sub>,
    /// The image to release: REGISTRY/REPO[:TAG|@DIGEST] or oci:DIR[:TAG].
    pub reference: Option<String>,
    /// Semantic version X.Y.Z; its tag is immutable.
    #[arg(long)]
    pub version: Option<String>,
    /// Channel tag to move to this image (latest, stable, 1, 1.2); repeatable.
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Move an existing version tag to this image.
    #[arg(long)]
    pub force: bool,
    /// Git revision to record (default: `git rev-parse HEAD` here).
    #[arg(long)]
    pub revision: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `release list`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Show released versions, digests and dates.
    List {
        /// REGISTRY/REPO or oci:DIR.
        repository: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    if let Some(Sub::List {
        repository,
        registry,
    }) = args.list
    {
        let r = parse_ref(&repository)?;
        let opts = registry.options(out, "release list");
        let list = vmimage_oci::block_on(vmimage_oci::release_list(&r, &opts))
            .with_context(|| format!("listing releases of {r}"))?;
        out.result(&list, || {
            list.iter()
                .map(|e| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        e.version,
                        e.digest,
                        e.released
                            .as_deref()
                            .or(e.created.as_deref())
                            .unwrap_or("-"),
                        e.channels.join(",")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let reference = args
        .reference
        .context("missing REF: vmimage release REF --version X.Y.Z")?;
    let version = args.version.context("missing --version X.Y.Z")?;
    let r = parse_ref(&reference)?;
    let opts = args.registry.options(out, "release");
    let req = vmimage_oci::ReleaseRequest {
        version,
        channels: args.channels,
        force: args.force,
        revision: args.revision,
        date_epoch: None,
    };
    let done = vmimage_oci::block_on(vmimage_oci::release(&r, &req, &opts))
        .with_context(|| format!("releasing {r} as {}", req.version))?;
    out.result(&done, || {
        format!(
            "{} {} -> {}\ntags: {}{}",
            done.repository,
            done.version,
            done.digest,
            done.tags.join(", "),
            if done.forced {
                " (version tag forced)"
            } else {
                ""
            }
        )
    });
    Ok(())
}
