//! `vmimage mkfs SOURCE OUTPUT`: write an ext4 image from a directory or a
//! tar archive (plain, gzip, zstd; `-` for stdin).

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vmimage_ext4::{DEFAULT_HEADROOM, ImageSize, MkfsProgress, Options, Source};

use crate::output::Output;

/// Arguments of `vmimage mkfs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory, or a tar archive (plain, gzip or zstd); `-` reads a tar from stdin.
    pub source: PathBuf,
    /// The image file to write (replaced only once the new image is complete).
    pub output: PathBuf,
    /// Image size: `auto` (content plus --headroom) or a size such as
    /// `512M`, `2G`, `1.5GiB`, `1000000000` (K/M/G/T and KiB.. are powers
    /// of 1024, KB/MB/GB/TB powers of 1000).
    #[arg(long, default_value = "auto", value_parser = parse_size_arg)]
    pub size: SizeArg,
    /// Free space `--size auto` leaves in the image [default: 64M].
    #[arg(long, value_parser = parse_size)]
    pub headroom: Option<u64>,
    /// Volume label (at most 16 bytes).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Filesystem UUID (8-4-4-4-12 hex); derived from the content by default.
    #[arg(long, value_parser = parse_uuid)]
    pub uuid: Option<[u8; 16]>,
    /// Clamp all timestamps to this Unix time and use it as the
    /// filesystem's own time.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<i64>,
    /// Leave out the jbd2 journal.
    #[arg(long)]
    pub no_journal: bool,
}

/// `--size`: automatic or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeArg {
    Auto,
    Fixed(u64),
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    let size = match (args.size, args.headroom) {
        (SizeArg::Auto, headroom) => ImageSize::Auto {
            headroom: headroom.unwrap_or(DEFAULT_HEADROOM),
        },
        (SizeArg::Fixed(_), Some(_)) => {
            anyhow::bail!("--headroom applies only to --size auto")
        }
        (SizeArg::Fixed(n), None) => ImageSize::Fixed(n),
    };
    let options = Options {
        size,
        label: args.label.into_bytes(),
        uuid: args.uuid,
        source_date_epoch: args.source_date_epoch,
        journal: !args.no_journal,
        ..Options::default()
    };
    let source = Source::detect(&args.source);
    tracing::info!(%source, output = %args.output.display(), "mkfs");

    let bar = out.progress(0, false, "reading");
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let summary = vmimage_ext4::mkfs_with_progress(&source, &args.output, options, &mut |p| {
        show_progress(&bar, p)
    })
    .with_context(|| format!("mkfs {} -> {}", source, args.output.display()))?;
    bar.finish_and_clear();

    out.result(&summary, || {
        format!(
            "{}: {} bytes, {} of {} blocks used, {} of {} inodes used, uuid {}",
            args.output.display(),
            summary.size_bytes,
            summary.blocks - summary.free_blocks,
            summary.blocks,
            summary.inodes - summary.free_inodes,
            summary.inodes,
            summary.uuid
        )
    });
    Ok(())
}

fn show_progress(bar: &ProgressBar, p: MkfsProgress<'_>) {
    match p {
        // Formatting a message per entry is wasted work on big trees.
        MkfsProgress::Entry {
            entries,
            file_bytes,
            ..
        } if entries % 256 == 0 => {
            bar.set_message(format!(
                "{entries} entries, {} MiB of files",
                file_bytes >> 20
            ));
        }
        MkfsProgress::Entry { .. } => {}
        MkfsProgress::Finishing => bar.set_message("writing file data and metadata"),
    }
}

fn parse_size_arg(s: &str) -> Result<SizeArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        Ok(SizeArg::Auto)
    } else {
        parse_size(s).map(SizeArg::Fixed)
    }
}

/// `512M`, `2G`, `1.5GiB`, `100KB`, `4096`: a number, optionally with a
/// fraction, then a unit. Single letters and `iB` units are binary, `B`
/// units decimal (as in coreutils).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        "T" | "TIB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(format!("size `{s}`: unknown unit `{unit}`")),
    };
    let bad = || format!("size `{s}`: expected a number such as 512M, 2G or 1.5GiB");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    // Exact integer arithmetic for the fraction: `1.5GiB` is 3 << 29.
    let mut total = whole
        .checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))?;
    if !frac.is_empty() {
        if frac.len() > 12 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let scale = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().map_err(|_| bad())?;
        let part = f * u128::from(mult) / scale;
        if f * u128::from(mult) % scale != 0 {
            return Err(format!("size `{s}` is not a whole number of bytes"));
        }
        total = total
            .checked_add(part as u64)
            .ok_or_else(|| format!("size `{s}` is too large"))?;
    }
    Ok(total)
}

/// `01234567-89ab-cdef-0123-456789abcdef` (hex digits in either case).
pub fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return Err(format!(
            "uuid `{s}`: expected 8-4-4-4-12 hex digits, like 01234567-89ab-cdef-0123-456789abcdef"
        ));
    }
    let hex: String = groups.concat();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("uuid `{s}`: not hex"));
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_size_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100KB"), Ok(100_000));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
    }

    #[test]
    fn test_parse_size_rejects_nonsense() {
        for bad in ["", "M", "12X", "1.2.3G", "-5M", "0.1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_parse_size_arg_auto() {
        assert_eq!(parse_size_arg("auto"), Ok(SizeArg::Auto));
        assert_eq!(parse_size_arg("1K"), Ok(SizeArg::Fixed(1024)));
    }

    #[test]
    fn test_parse_uuid_accepts_8_4_4_4_12_and_rejects_others() {
        let u = parse_uuid("01234567-89AB-cdef-0123-456789abcdef").unwrap();
        assert_eq!(u[0], 0x01);
        assert_eq!(u[5], 0xab);
        assert_eq!(u[15], 0xef);
        assert!(parse_uuid("0123456789abcdef0123456789abcdef").is_err());
        assert!(parse_uuid("0123456g-89ab-cdef-0123-456789abcdef").is_err());
    }
}
