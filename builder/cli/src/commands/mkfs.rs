//! `vmimage mkfs SOURCE OUTPUT`: write an ext4 image.

use crate::output::Output;

/// Arguments of `vmimage mkfs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory, or a tar archive (plain, gzip or zstd); `-` reads a tar from stdin.
    pub source: std::path::PathBuf,
    /// The image file to write.
    pub output: std::path::PathBuf,
}

pub fn run(_args: Args, _out: &Output) -> anyhow::Result<()> {
    anyhow::bail!("mkfs: not written yet")
}
