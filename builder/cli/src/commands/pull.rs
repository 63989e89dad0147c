//! `vmimage pull REF --out DIR`: write an artifact's files (decompressed,
//! sparse, verified) into a new directory.

use anyhow::Context as _;

use super::push::{RegistryArgs, parse_ref};
use crate::output::Output;

/// Arguments of `vmimage pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// oci:DIR[:TAG|@DIGEST] or REGISTRY/REPO[:TAG|@DIGEST].
    pub reference: String,
    /// Directory to create (must not exist, or be empty).
    #[arg(long)]
    pub out: std::path::PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let r = parse_ref(&args.reference)?;
    let opts = args.registry.options(out, "pull");
    let done = vmimage_oci::block_on(vmimage_oci::pull(&r, &args.out, &opts))
        .with_context(|| format!("pulling {r} into {}", args.out.display()))?;
    out.result(&done, || {
        let mut s = format!("{} from {}@{}", done.out.display(), r, done.digest);
        for f in &done.files {
            let check = match &f.digest {
                Some(d) => d.clone(),
                None => format!("{} parts, each verified", f.parts),
            };
            s.push_str(&format!("\n  {}  {} bytes  {check}", f.path, f.size));
        }
        s
    });
    Ok(())
}
