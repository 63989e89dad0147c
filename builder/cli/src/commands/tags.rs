//! `vmimage tags REPO`: list a repository's (or layout's) tags.

use anyhow::Context as _;

use super::push::{RegistryArgs, parse_ref};
use crate::output::Output;

/// Arguments of `vmimage tags`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// REGISTRY/REPO or oci:DIR.
    pub repository: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let r = parse_ref(&args.repository)?;
    let opts = args.registry.options(out, "tags");
    let tags = vmimage_oci::block_on(vmimage_oci::tags(&r, &opts))
        .with_context(|| format!("listing tags of {r}"))?;
    out.result(&tags, || tags.join("\n"));
    Ok(())
}
