//! Turns a distribution's compressed x86 kernel (`bzImage`, e.g. Debian's
//! `/boot/vmlinuz-*`) into the uncompressed ELF `vmlinux` a microVM monitor
//! loads.
//!
//! The payload is found through the boot protocol's setup header
//! (`Documentation/x86/boot.rst`): the `HdrS` magic at 0x202, the number of
//! setup sectors at 0x1f1, and `payload_offset`/`payload_length` at
//! 0x248/0x24c, relative to the protected-mode code that starts at
//! `(setup_sects + 1) * 512`. The compression is recognised by its magic and
//! decoded: gzip, xz, lzma, bzip2, lzo (an `lzop` stream), lz4 (the legacy
//! frame `lz4 -l` writes) and zstd. The kernel appends the decompressed size
//! as 4 little-endian bytes after the stream; the output length is checked
//! against it.
//!
//! The output is the whole decompressed payload, as the kernel's own
//! `scripts/extract-vmlinux` writes it: the ELF plus, for relocatable
//! kernels, the relocation table the decompressor appends (loaders ignore
//! bytes past the ELF's segments).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{self, ElfCheckError};
use crate::lzo::{self, LzoError};

/// Extracting `vmlinux` from a `bzImage` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Reading the input or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The setup header is missing or too old to say where the payload is.
    #[error("{path}: not an x86 bzImage: {what}")]
    NotBzImage {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// The payload starts with no magic we know.
    #[error("{path}: unknown payload compression (first bytes {magic:02x?})")]
    UnknownCompression {
        /// The file.
        path: PathBuf,
        /// The first bytes of the payload.
        magic: Vec<u8>,
    },
    /// Decoding the payload failed.
    #[error("{path}: decompressing the {compression} payload: {message}")]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The format.
        compression: Compression,
        /// The decoder's message.
        message: String,
    },
    /// The decompressed payload is not an x86_64 ELF.
    #[error("{path}: the decompressed payload is not an x86_64 vmlinux: {source}")]
    NotVmlinux {
        /// The file.
        path: PathBuf,
        /// What the ELF check found.
        source: ElfCheckError,
    },
}

/// A payload compression the kernel supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `CONFIG_KERNEL_GZIP`.
    Gzip,
    /// `CONFIG_KERNEL_XZ`.
    Xz,
    /// `CONFIG_KERNEL_LZMA` (the `.lzma` "alone" format).
    Lzma,
    /// `CONFIG_KERNEL_BZIP2`.
    Bzip2,
    /// `CONFIG_KERNEL_LZO` (an lzop stream).
    Lzo,
    /// `CONFIG_KERNEL_LZ4` (the legacy lz4 frame).
    Lz4,
    /// `CONFIG_KERNEL_ZSTD`.
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Bzip2 => "bzip2",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        };
        f.write_str(s)
    }
}

// Setup header fields (Documentation/x86/boot.rst).
/// `setup_sects`: 512-byte sectors of real-mode setup code (0 means 4).
const SETUP_SECTS: usize = 0x1f1;
/// `header`: the magic "HdrS".
const HEADER_MAGIC_AT: usize = 0x202;
const HEADER_MAGIC: &[u8; 4] = b"HdrS";
/// `version`: boot protocol version; payload fields exist from 2.08.
const PROTOCOL_VERSION: usize = 0x206;
const MIN_PROTOCOL: u16 = 0x0208;
/// `payload_offset` and `payload_length`, relative to the protected-mode code.
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;

/// The legacy lz4 frame magic (`lz4 -l`), little-endian on disk.
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// The legacy frame's fixed block size: 8 MiB decompressed.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Where the payload sits in a bzImage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLocation {
    /// Boot protocol version (e.g. 0x020f).
    pub protocol: u16,
    /// Offset of the payload in the file.
    pub offset: usize,
    /// Its length (including the kernel's 4-byte size trailer).
    pub length: usize,
}

/// Finds the payload through the setup header.
pub fn locate_payload(bz: &[u8]) -> Result<PayloadLocation, String> {
    if bz.len() < 0x250 {
        return Err(format!(
            "{} bytes is too short for a setup header",
            bz.len()
        ));
    }
    if &bz[HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4] != HEADER_MAGIC {
        return Err(format!(
            "no \"HdrS\" magic at 0x202 (found {:02x?})",
            &bz[HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4]
        ));
    }
    let protocol = u16::from_le_bytes([bz[PROTOCOL_VERSION], bz[PROTOCOL_VERSION + 1]]);
    if protocol < MIN_PROTOCOL {
        return Err(format!(
            "boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            protocol >> 8,
            protocol & 0xff
        ));
    }
    let setup_sects = match bz[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let le32 = |at: usize| u32::from_le_bytes(bz[at..at + 4].try_into().expect("4 bytes")) as usize;
    let pm_start = (setup_sects + 1) * 512;
    let offset = pm_start + le32(PAYLOAD_OFFSET);
    let length = le32(PAYLOAD_LENGTH);
    if length == 0 || offset.checked_add(length).is_none_or(|end| end > bz.len()) {
        return Err(format!(
            "payload at {offset:#x}+{length:#x} is outside the {}-byte file",
            bz.len()
        ));
    }
    Ok(PayloadLocation {
        protocol,
        offset,
        length,
    })
}

/// Recognises the compression by the payload's first bytes.
pub fn detect(payload: &[u8]) -> Option<Compression> {
    let m = |magic: &[u8]| payload.starts_with(magic);
    if m(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if m(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Compression::Xz)
    } else if m(b"BZh") {
        Some(Compression::Bzip2)
    } else if m(&lzo::LZOP_MAGIC) {
        Some(Compression::Lzo)
    } else if m(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Some(Compression::Lz4)
    } else if m(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if m(&[0x5d, 0x00, 0x00]) {
        // lzma "alone": properties byte 0x5d (lc=3 lp=0 pb=2), then the
        // dictionary size; the kernel's `lzma -9` writes this.
        Some(Compression::Lzma)
    } else {
        None
    }
}

/// Decompresses one payload (trailing bytes after the stream are ignored).
pub fn decompress(compression: Compression, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(payload.len() * 4);
    let read_all = |mut r: Box<dyn Read + '_>, out: &mut Vec<u8>| {
        r.read_to_end(out).map(|_| ()).map_err(|e| e.to_string())
    };
    match compression {
        // Single-member/single-stream readers stop at the end of the stream
        // and leave the kernel's size trailer alone.
        Compression::Gzip => read_all(Box::new(flate2::read::GzDecoder::new(payload)), &mut out)?,
        Compression::Xz => read_all(Box::new(liblzma::read::XzDecoder::new(payload)), &mut out)?,
        Compression::Lzma => {
            let stream =
                liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(|e| e.to_string())?;
            read_all(
                Box::new(liblzma::read::XzDecoder::new_stream(payload, stream)),
                &mut out,
            )?
        }
        Compression::Bzip2 => read_all(Box::new(bzip2::read::BzDecoder::new(payload)), &mut out)?,
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| e.to_string())?
                .single_frame();
            read_all(Box::new(d), &mut out)?
        }
        Compression::Lzo => {
            out = lzo::decompress_lzop(payload)
                .map_err(|e: LzoError| e.to_string())?
                .0
        }
        Compression::Lz4 => out = lz4_legacy(payload)?,
    }
    Ok(out)
}

/// The legacy lz4 frame: the magic, then blocks of `[u32 LE compressed
/// size][lz4 block]`, each at most 8 MiB decompressed. It has no end mark:
/// the kernel's 4-byte size trailer follows the last block, and a new magic
/// may start another frame.
fn lz4_legacy(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut pos = 4;
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while pos < input.len() {
        let rest = input.len() - pos;
        if rest < 4 {
            return Err(format!("{rest} stray bytes at {pos}"));
        }
        let size = u32::from_le_bytes(input[pos..pos + 4].try_into().expect("4 bytes"));
        if size == LZ4_LEGACY_MAGIC {
            pos += 4;
            continue;
        }
        if rest == 4 {
            break; // the size trailer
        }
        let size = size as usize;
        let data = input
            .get(pos + 4..pos + 4 + size)
            .ok_or_else(|| format!("block at {pos} claims {size} bytes past the end"))?;
        let n = lz4_flex::block::decompress_into(data, &mut block)
            .map_err(|e| format!("block at {pos}: {e}"))?;
        out.extend_from_slice(&block[..n]);
        pos += 4 + size;
    }
    Ok(out)
}

/// What [`extract_vmlinux`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    /// The file written.
    pub output: PathBuf,
    /// The payload's compression.
    pub compression: Compression,
    /// Boot protocol version, e.g. "2.15".
    pub protocol: String,
    /// Compressed payload size in bytes.
    pub payload_size: u64,
    /// Size of the written vmlinux.
    pub vmlinux_size: u64,
    /// Whether the ELF has the PVH entry note.
    pub pvh: bool,
}

/// Reads `bzimage`, decompresses its payload, checks it is an x86_64 ELF
/// and writes it to `output` (through a temporary file in the same
/// directory, renamed into place only once complete).
///
/// ```no_run
/// let report = vmimage_kernel::extract_vmlinux(
///     "/boot/vmlinuz-6.1.0-28-cloud-amd64".as_ref(),
///     "vmlinux".as_ref(),
/// )?;
/// println!("{} payload, {} bytes", report.compression, report.vmlinux_size);
/// # Ok::<(), vmimage_kernel::ExtractError>(())
/// ```
pub fn extract_vmlinux(bzimage: &Path, output: &Path) -> Result<ExtractReport, ExtractError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExtractError::Io { path, source }
    };
    let bz = std::fs::read(bzimage).map_err(io(bzimage))?;
    let loc = locate_payload(&bz).map_err(|what| ExtractError::NotBzImage {
        path: bzimage.to_path_buf(),
        what,
    })?;
    let payload = &bz[loc.offset..loc.offset + loc.length];
    let compression = detect(payload).ok_or_else(|| ExtractError::UnknownCompression {
        path: bzimage.to_path_buf(),
        magic: payload[..payload.len().min(8)].to_vec(),
    })?;
    let vmlinux = decompress(compression, payload).map_err(|message| ExtractError::Decompress {
        path: bzimage.to_path_buf(),
        compression,
        message,
    })?;
    // The kernel's trailer: the decompressed size, 4 bytes little-endian.
    let trailer = u32::from_le_bytes(payload[payload.len() - 4..].try_into().expect("4 bytes"));
    if trailer as usize != vmlinux.len() {
        tracing::warn!(
            "{}: payload trailer says {trailer} bytes, decompressed {}",
            bzimage.display(),
            vmlinux.len()
        );
    }
    let info = elf::inspect(&vmlinux).map_err(|source| ExtractError::NotVmlinux {
        path: bzimage.to_path_buf(),
        source,
    })?;
    write_atomically(output, &vmlinux).map_err(io(output))?;
    Ok(ExtractReport {
        output: output.to_path_buf(),
        compression,
        protocol: format!("{}.{:02}", loc.protocol >> 8, loc.protocol & 0xff),
        payload_size: loc.length as u64,
        vmlinux_size: vmlinux.len() as u64,
        pvh: info.pvh_entry.is_some(),
    })
}

/// Writes `data` to a temporary file next to `path`, syncs it, and renames
/// it over `path`; the temporary file is removed on failure.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".vmimage-")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs a real compressor over `data` (stdin to stdout).
    fn compress_with(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} is needed (scripts/deps.sh installs it): {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let w = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        w.join().unwrap();
        assert!(out.status.success(), "{tool} {args:?} failed");
        out.stdout
    }

    /// A bzImage-like file: setup sectors, the HdrS header with protocol
    /// 2.15 and the payload fields, then the payload (with the kernel's
    /// size trailer) inside the protected-mode part.
    fn fake_bzimage(compressed: &[u8], uncompressed_len: usize) -> Vec<u8> {
        let setup_sects = 3u8;
        let pm_start = (usize::from(setup_sects) + 1) * 512;
        let payload_off = 0x3c0usize; // past a stand-in for the decompressor head
        let mut payload = compressed.to_vec();
        payload.extend_from_slice(&(uncompressed_len as u32).to_le_bytes());
        let mut f = vec![0u8; pm_start + payload_off];
        f[SETUP_SECTS] = setup_sects;
        f[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        f[HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4].copy_from_slice(HEADER_MAGIC);
        f[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        f[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&(payload_off as u32).to_le_bytes());
        f[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&payload);
        f.extend_from_slice(&[0u8; 100]); // the decompressor's tail
        f
    }

    /// An "ELF": the tiny ELF with a PVH note followed by several MiB of
    /// kernel-like data, so lz4 needs more than one 8 MiB block.
    fn known_elf() -> Vec<u8> {
        let mut elf = crate::elf::tests::tiny_elf(&[(
            b"Xen",
            crate::elf::XEN_ELFNOTE_PHYS32_ENTRY,
            &0x0100_0000u32.to_le_bytes(),
        )]);
        let mut x = 7u32;
        while elf.len() < 9 << 20 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Mostly repetitive with some noise, like machine code.
            let b = if x % 7 == 0 {
                (x >> 24) as u8
            } else {
                (elf.len() % 251) as u8
            };
            elf.push(b);
        }
        elf
    }

    #[test]
    fn test_extract_each_compression_made_by_the_real_tool() {
        let elf = known_elf();
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &[&str], Compression)] = &[
            // The kernel uses the highest levels; the formats are the same
            // at the fast ones, which keep this test quick.
            ("gzip", &["-1", "-n", "-c"], Compression::Gzip),
            ("xz", &["-1", "--check=crc32", "-c"], Compression::Xz),
            ("lzma", &["-1", "-c"], Compression::Lzma),
            ("bzip2", &["-1", "-c"], Compression::Bzip2),
            ("lzop", &["-1", "-c"], Compression::Lzo),
            ("lz4", &["-l", "-c"], Compression::Lz4),
            ("zstd", &["-3", "-c"], Compression::Zstd),
        ];
        for (tool, args, expected) in cases {
            let compressed = compress_with(tool, args, &elf);
            let bz = fake_bzimage(&compressed, elf.len());
            let bz_path = dir.path().join(format!("vmlinuz.{tool}"));
            std::fs::write(&bz_path, &bz).unwrap();
            let out = dir.path().join(format!("vmlinux.{tool}"));
            let report = extract_vmlinux(&bz_path, &out).unwrap_or_else(|e| panic!("{tool}: {e}"));
            assert_eq!(report.compression, *expected, "{tool}");
            assert!(report.pvh, "{tool}");
            assert_eq!(report.payload_size as usize, compressed.len() + 4);
            let got = std::fs::read(&out).unwrap();
            assert!(got == elf, "{tool}: output differs from the input ELF");
        }
    }

    #[test]
    fn test_extract_rejects_non_bzimage_and_non_elf_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let not_bz = dir.path().join("not-bz");
        std::fs::write(&not_bz, vec![0u8; 4096]).unwrap();
        let out = dir.path().join("out");
        let err = extract_vmlinux(&not_bz, &out).unwrap_err();
        assert!(
            err.to_string().contains("no \"HdrS\" magic at 0x202"),
            "{err}"
        );

        let text = b"this is not an ELF file at all, just text ".repeat(100);
        let gz = compress_with("gzip", &["-c"], &text);
        let bz = dir.path().join("bz");
        std::fs::write(&bz, fake_bzimage(&gz, text.len())).unwrap();
        let err = extract_vmlinux(&bz, &out).unwrap_err();
        assert!(matches!(err, ExtractError::NotVmlinux { .. }), "{err}");

        std::fs::write(&bz, fake_bzimage(b"\x01\x02\x03\x04junk", 10)).unwrap();
        let err = extract_vmlinux(&bz, &out).unwrap_err();
        assert!(
            matches!(err, ExtractError::UnknownCompression { .. }),
            "{err}"
        );
        assert!(!out.exists(), "no output may be left behind on error");
    }

    #[test]
    fn test_locate_payload_rejects_an_old_protocol_and_out_of_range_payload() {
        let mut bz = fake_bzimage(&[0x1f, 0x8b, 0, 0], 4);
        bz[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x0206u16.to_le_bytes());
        assert!(locate_payload(&bz).unwrap_err().contains("2.08 or later"));
        let mut bz = fake_bzimage(&[0x1f, 0x8b, 0, 0], 4);
        bz[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert!(locate_payload(&bz).unwrap_err().contains("outside"));
    }
}
