//! `vmimage`: turns recipes into Firecracker microVM images and ships them
//! through OCI registries. Each subcommand lives in `commands/<verb>.rs`,
//! parses its arguments, calls one library function and prints the result.

mod commands;
mod output;

use clap::{Parser, Subcommand};

/// Build, publish and pre-pull Firecracker microVM images.
#[derive(Debug, Parser)]
#[command(name = "vmimage", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print the result as JSON on stdout (logs and progress go to stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write an ext4 image from a directory or a tar archive.
    Mkfs(commands::mkfs::Args),
    /// Build a recipe's root filesystem as a directory or a deterministic tar.
    Rootfs(commands::rootfs::Args),
    /// Resolve a recipe's packages and write its lockfile (RECIPE.lock).
    Lock(commands::lock::Args),
    /// Build vmlinux from a kernel recipe, or extract it from a bzImage.
    Kernel(commands::kernel::Args),
    /// Make an OCI artifact from a kernel, a rootfs and optional snapshot/SBOM.
    Pack(commands::pack::Args),
    /// Copy an artifact between OCI layouts and registries.
    Push(commands::push::Args),
    /// Write an artifact's files (decompressed, verified) into a directory.
    Pull(commands::pull::Args),
    /// Show an artifact's manifest, config, layers and referrers.
    Inspect(commands::inspect::Args),
    /// List the tags of a repository.
    Tags(commands::tags::Args),
    /// Tag an image with an immutable version and move channel tags; `release list`.
    Release(commands::release::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.verbose);
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Mkfs(args) => commands::mkfs::run(args, &out),
        Command::Rootfs(args) => commands::rootfs::run(args, &out),
        Command::Lock(args) => commands::lock::run(args, &out),
        Command::Kernel(args) => commands::kernel::run(args, &out),
        Command::Pack(args) => commands::pack::run(args, &out),
        Command::Push(args) => commands::push::run(args, &out),
        Command::Pull(args) => commands::pull::run(args, &out),
        Command::Inspect(args) => commands::inspect::run(args, &out),
        Command::Tags(args) => commands::tags::run(args, &out),
        Command::Release(args) => commands::release::run(args, &out),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
