//! `vmimage inspect REF`: show an artifact's manifest, config, layers and
//! referrers.

use anyhow::Context as _;

use super::push::{RegistryArgs, parse_ref};
use crate::output::Output;

/// Arguments of `vmimage inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// oci:DIR[:TAG|@DIGEST] or REGISTRY/REPO[:TAG|@DIGEST].
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let r = parse_ref(&args.reference)?;
    let opts = args.registry.options(out, "inspect");
    let i = vmimage_oci::block_on(vmimage_oci::inspect(&r, &opts))
        .with_context(|| format!("inspecting {r}"))?;
    out.result(&i, || {
        let mut s = format!(
            "{}\ndigest:        {}\nartifact type: {}\n",
            i.reference,
            i.digest,
            i.artifact_type.as_deref().unwrap_or("-")
        );
        for (k, v) in &i.annotations {
            s.push_str(&format!("annotation:    {k}={v}\n"));
        }
        if let Some(c) = &i.config {
            s.push_str(&format!(
                "kernel:        {}\ncmdline:       {}\nvcpus/memory:  {} / {} MiB\nrootfs:        {} {} bytes\n",
                c.kernel_release.as_deref().unwrap_or("?"),
                c.boot_args,
                c.vcpus,
                c.memory_mib,
                c.rootfs_filesystem,
                c.rootfs_size
            ));
        }
        for l in &i.layers {
            s.push_str(&format!(
                "layer:         {}{} {} {} bytes{}\n",
                l.title.as_deref().unwrap_or("-"),
                l.part_offset
                    .map(|o| format!(" @{o}"))
                    .unwrap_or_default(),
                l.digest,
                l.size,
                l.uncompressed_size
                    .map(|u| format!(" ({u} uncompressed)"))
                    .unwrap_or_default()
            ));
        }
        for r in &i.referrers {
            s.push_str(&format!(
                "referrer:      {} {}\n",
                r.artifact_type.as_deref().unwrap_or("-"),
                r.digest
            ));
        }
        s.trim_end().to_string()
    });
    Ok(())
}
