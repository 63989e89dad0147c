//! Making an artifact from files: kernel, rootfs (64 MiB parts, zstd, the
//! parts compressed in parallel), optional snapshot files and SBOM, into an
//! OCI layout, or through a temporary layout straight to a registry.
//!
//! Packing is deterministic: the manifest digest depends only on the input
//! files and options. Times come from `SOURCE_DATE_EPOCH` (0 when unset),
//! annotations are serialized in sorted order, snapshot files are taken in
//! name order, rootfs parts are compressed single-threaded each (parallel
//! across parts), and snapshot files with at least one zstd worker thread,
//! whose output does not depend on the number of workers.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageManifestBuilder, MediaType};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::TransferError;
use crate::format::{
    ANN_CREATED, ANN_FILE_SIZE, ANN_PART_OFFSET, ANN_REVISION, ANN_SOURCE, ANN_TITLE,
    ANN_UNCOMPRESSED_DIGEST, ANN_UNCOMPRESSED_SIZE, ANN_VERSION, ARTIFACT_TYPE, CONFIG_MEDIA_TYPE,
    EMPTY_JSON, ImageConfig, KERNEL_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, ROOTFS_MEDIA_TYPE,
    SBOM_ARTIFACT_TYPE, SNAPSHOT_MEDIA_TYPE, canonical_json, descriptor, referrer_manifest,
    rfc3339,
};
use crate::layout::Layout;
use crate::reference::ImageRef;
use crate::registry::RegistryOptions;
use crate::store::Store;

/// Default kernel command line (Firecracker's, with the console on ttyS0).
pub const DEFAULT_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw";
/// Default vCPU count.
pub const DEFAULT_VCPUS: u32 = 1;
/// Default memory in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// zstd level for the rootfs and snapshots.
pub const ZSTD_LEVEL: i32 = 3;
/// The rootfs travels as parts of this many (uncompressed) bytes, one layer each: parts
/// compress, upload, download and decompress in parallel (one blob keeps one registry
/// connection and one core busy), and a part whose bytes did not change between two
/// builds is a blob the registry already has.
pub const ROOTFS_PART_SIZE: u64 = 64 << 20;

/// Packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// An input file is unusable.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing or pushing failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// The inputs of [`pack`].
#[derive(Debug, Clone, Default)]
pub struct PackRequest {
    /// Uncompressed `vmlinux`.
    pub kernel: PathBuf,
    /// ext4 root filesystem image.
    pub rootfs: PathBuf,
    /// Directory of Firecracker snapshot files.
    pub snapshot: Option<PathBuf>,
    /// SPDX JSON SBOM, attached as a referrer.
    pub sbom: Option<PathBuf>,
    /// Kernel command line ([`DEFAULT_BOOT_ARGS`] when `None`).
    pub boot_args: Option<String>,
    /// vCPUs ([`DEFAULT_VCPUS`] when `None`).
    pub vcpus: Option<u32>,
    /// Memory in MiB ([`DEFAULT_MEMORY_MIB`] when `None`).
    pub memory_mib: Option<u64>,
    /// `org.opencontainers.image.version`.
    pub version: Option<String>,
    /// `org.opencontainers.image.revision`.
    pub revision: Option<String>,
    /// `org.opencontainers.image.source`.
    pub source: Option<String>,
    /// Recipe file, recorded by digest.
    pub recipe: Option<PathBuf>,
    /// Lockfile, recorded by digest.
    pub lockfile: Option<PathBuf>,
    /// Kernel release; read from the vmlinux banner when `None`.
    pub kernel_release: Option<String>,
    /// Seconds since the epoch for `created`; `SOURCE_DATE_EPOCH`, else 0.
    pub source_date_epoch: Option<u64>,
}

/// What [`pack`] made.
#[derive(Debug, Clone, Serialize)]
pub struct PackOutcome {
    /// Where it went.
    pub destination: String,
    /// Image manifest digest.
    pub digest: String,
    /// SBOM referrer manifest digest.
    pub sbom_digest: Option<String>,
    /// The config written.
    pub config: ImageConfig,
}

struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A blob added to the layout, with its uncompressed identity.
struct Ingested {
    digest: String,
    size: u64,
    raw_digest: String,
    raw_size: u64,
}

/// Copies (or compresses) `src` into `layout` as a blob.
fn ingest(layout: &Layout, src: &Path, compress: bool) -> Result<Ingested, PackError> {
    ingest_range(layout, src, compress, 0, u64::MAX, 0)
}

/// Copies (or compresses, with `threads` zstd workers; 0: none) `len` bytes of `src`
/// from `offset` into `layout` as a blob.
fn ingest_range(
    layout: &Layout,
    src: &Path,
    compress: bool,
    offset: u64,
    len: u64,
    threads: u32,
) -> Result<Ingested, PackError> {
    let input_err = |e: std::io::Error| PackError::Input {
        path: src.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = layout.temp_file().map_err(TransferError::from)?;
    let mut file = fs::File::open(src).map_err(input_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(input_err)?;
    let mut input = file.take(len);
    let mut raw_hasher = Sha256::new();
    let mut raw_size = 0u64;
    let file = tmp.as_file().try_clone().map_err(|e| {
        PackError::Transfer(TransferError::Io {
            path: tmp.path().to_path_buf(),
            source: e,
        })
    })?;
    let out = HashWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        count: 0,
    };
    let out_err = |e: std::io::Error| {
        PackError::Transfer(TransferError::Io {
            path: layout.dir().to_path_buf(),
            source: e,
        })
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut out = if compress {
        let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(out_err)?;
        if threads > 0 {
            enc.multithread(threads).map_err(out_err)?;
        }
        loop {
            let n = input.read(&mut buf).map_err(input_err)?;
            if n == 0 {
                break;
            }
            raw_hasher.update(&buf[..n]);
            raw_size += n as u64;
            enc.write_all(&buf[..n]).map_err(out_err)?;
        }
        enc.finish().map_err(out_err)?
    } else {
        let mut out = out;
        loop {
            let n = input.read(&mut buf).map_err(input_err)?;
            if n == 0 {
                break;
            }
            raw_hasher.update(&buf[..n]);
            raw_size += n as u64;
            out.write_all(&buf[..n]).map_err(out_err)?;
        }
        out
    };
    out.flush().map_err(out_err)?;
    let digest = format!("sha256:{}", hex::encode(out.hasher.finalize()));
    let size = out.count;
    drop(out.inner);
    if layout.has_blob(&digest) {
        drop(tmp);
    } else {
        layout
            .adopt_blob(tmp, &digest)
            .map_err(TransferError::from)?;
    }
    Ok(Ingested {
        digest,
        size,
        raw_digest: format!("sha256:{}", hex::encode(raw_hasher.finalize())),
        raw_size,
    })
}

fn file_digest(path: &Path) -> Result<String, PackError> {
    let mut f = fs::File::open(path).map_err(|e| PackError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| PackError::Input {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Reads the release from the `Linux version X ...` banner in a vmlinux.
pub fn kernel_release(path: &Path) -> Result<Option<String>, std::io::Error> {
    const NEEDLE: &[u8] = b"Linux version ";
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        carry.extend_from_slice(&buf[..n]);
        if let Some(i) = carry.windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            let rest = &carry[i + NEEDLE.len()..];
            if rest.len() < 128 && n == buf.len() {
                // The release may run past this chunk; read one more.
                continue;
            }
            let end = rest
                .iter()
                .position(|&b| b == b' ' || b == 0)
                .unwrap_or(rest.len());
            let rel = String::from_utf8_lossy(&rest[..end]).into_owned();
            // `%s` in a format string, not the real banner.
            if !rel.is_empty() && !rel.contains('%') {
                return Ok(Some(rel));
            }
            carry.drain(..i + NEEDLE.len());
            continue;
        }
        let keep = carry.len().saturating_sub(NEEDLE.len());
        carry.drain(..keep);
    }
}

/// Checks the ext4 superblock magic (0xEF53 at byte 1080).
fn check_ext4(path: &Path) -> Result<u64, PackError> {
    let err = |reason: String| PackError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let len = f.metadata().map_err(|e| err(e.to_string()))?.len();
    let mut sb = [0u8; 1082];
    f.read_exact(&mut sb)
        .map_err(|_| err(format!("too small for an ext4 image ({len} bytes)")))?;
    if sb[1080..1082] != [0x53, 0xEF] {
        return Err(err(
            "not an ext4 image (no superblock magic 0xEF53 at byte 1080)".into(),
        ));
    }
    Ok(len)
}

/// Packs the files of `req` into the artifact `dest` names (a layout tag, or
/// a registry reference through a temporary layout).
pub async fn pack(
    req: &PackRequest,
    dest: &ImageRef,
    opts: &RegistryOptions,
) -> Result<PackOutcome, PackError> {
    let _tmpdir;
    let layout = match dest {
        ImageRef::Layout { dir, .. } => Layout::open_or_create(dir).map_err(TransferError::from)?,
        ImageRef::Registry { .. } => {
            let d = tempfile::tempdir().map_err(|source| TransferError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
            let l = Layout::open_or_create(d.path()).map_err(TransferError::from)?;
            _tmpdir = d;
            l
        }
    };
    let tag = match dest.target() {
        crate::reference::Target::Tag(t) => t.clone(),
        crate::reference::Target::None => "latest".to_string(),
        crate::reference::Target::Digest(d) => {
            return Err(PackError::Transfer(TransferError::Format {
                reference: dest.to_string(),
                reason: format!("pack needs a tag to write, not a digest ({d})"),
            }));
        }
    };
    let req2 = req.clone();
    let layout2 = layout.clone();
    let tag2 = tag.clone();
    let (digest, sbom_digest, config) =
        tokio::task::spawn_blocking(move || pack_into_layout(&req2, &layout2, &tag2))
            .await
            .expect("pack task")?;
    if let ImageRef::Registry { .. } = dest {
        let src = ImageRef::Layout {
            dir: layout.dir().to_path_buf(),
            target: crate::reference::Target::Tag(tag),
        };
        let src_store = Store::Layout(layout.clone());
        let dst_store = Store::open(dest, opts, true).await?;
        let out = crate::transfer::push_between(&src_store, &src, &dst_store, dest).await?;
        return Ok(PackOutcome {
            destination: dest.to_string(),
            digest: out.digest,
            sbom_digest,
            config,
        });
    }
    Ok(PackOutcome {
        destination: dest.to_string(),
        digest,
        sbom_digest,
        config,
    })
}

/// The synchronous part of [`pack`]: writes blobs and manifests to `layout`.
pub fn pack_into_layout(
    req: &PackRequest,
    layout: &Layout,
    tag: &str,
) -> Result<(String, Option<String>, ImageConfig), PackError> {
    let epoch = match req.source_date_epoch {
        Some(e) => e,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) => s.trim().parse().map_err(|_| PackError::Input {
                path: PathBuf::from("$SOURCE_DATE_EPOCH"),
                reason: format!("`{s}` is not a number of seconds"),
            })?,
            Err(_) => 0,
        },
    };
    if !req.kernel.is_file() {
        return Err(PackError::Input {
            path: req.kernel.clone(),
            reason: "kernel file not found".into(),
        });
    }
    let rootfs_size = check_ext4(&req.rootfs)?;
    let kernel_release = match &req.kernel_release {
        Some(r) => Some(r.clone()),
        None => kernel_release(&req.kernel).map_err(|e| PackError::Input {
            path: req.kernel.clone(),
            reason: e.to_string(),
        })?,
    };

    let title = |t: &str| HashMap::from([(ANN_TITLE.to_string(), t.to_string())]);
    let compressed = |t: &str, i: &Ingested| {
        HashMap::from([
            (ANN_TITLE.to_string(), t.to_string()),
            (ANN_UNCOMPRESSED_SIZE.to_string(), i.raw_size.to_string()),
            (ANN_UNCOMPRESSED_DIGEST.to_string(), i.raw_digest.clone()),
        ])
    };

    // 1. Layers: kernel as is, rootfs and snapshot files compressed.
    let kernel = ingest(layout, &req.kernel, false)?;
    let mut layers = vec![descriptor(
        KERNEL_MEDIA_TYPE,
        &kernel.digest,
        kernel.size,
        title("vmlinux"),
    )];
    // Parts compress on all cores, one part per core at a time; the result is the same
    // bytes whatever the core count.
    let parts: Vec<(u64, u64)> = (0..rootfs_size.div_ceil(ROOTFS_PART_SIZE).max(1))
        .map(|k| {
            let off = k * ROOTFS_PART_SIZE;
            (
                off,
                ROOTFS_PART_SIZE.min(rootfs_size - off.min(rootfs_size)),
            )
        })
        .collect();
    let ingested: Vec<Result<Ingested, PackError>> = parts
        .par_iter()
        .map(|&(off, len)| ingest_range(layout, &req.rootfs, true, off, len, 0))
        .collect();
    for (&(off, _), part) in parts.iter().zip(ingested) {
        let part = part?;
        let mut ann = compressed("rootfs.ext4", &part);
        ann.insert(ANN_PART_OFFSET.to_string(), off.to_string());
        ann.insert(ANN_FILE_SIZE.to_string(), rootfs_size.to_string());
        layers.push(descriptor(ROOTFS_MEDIA_TYPE, &part.digest, part.size, ann));
    }
    if let Some(dir) = &req.snapshot {
        let mut names: Vec<(String, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| PackError::Input {
                path: dir.clone(),
                reason: e.to_string(),
            })?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(PackError::Input {
                path: dir.clone(),
                reason: "snapshot directory has no files".into(),
            });
        }
        for (name, path) in names {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let i = ingest_range(layout, &path, true, 0, u64::MAX, threads)?;
            layers.push(descriptor(
                SNAPSHOT_MEDIA_TYPE,
                &i.digest,
                i.size,
                compressed(&format!("snapshot/{name}"), &i),
            ));
        }
    }

    // 2. Config.
    let config = ImageConfig {
        kernel_release,
        boot_args: req
            .boot_args
            .clone()
            .unwrap_or_else(|| DEFAULT_BOOT_ARGS.to_string()),
        vcpus: req.vcpus.unwrap_or(DEFAULT_VCPUS),
        memory_mib: req.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        rootfs_filesystem: "ext4".into(),
        rootfs_size,
        recipe_digest: req.recipe.as_deref().map(file_digest).transpose()?,
        lockfile_digest: req.lockfile.as_deref().map(file_digest).transpose()?,
        source_date_epoch: epoch,
        builder_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let config_bytes = canonical_json(&config);
    let config_digest = layout
        .put_blob_bytes(&config_bytes)
        .map_err(TransferError::from)?;

    // 3. Manifest.
    let created = rfc3339(epoch);
    let mut annotations = HashMap::from([(ANN_CREATED.to_string(), created.clone())]);
    for (k, v) in [
        (ANN_VERSION, &req.version),
        (ANN_REVISION, &req.revision),
        (ANN_SOURCE, &req.source),
    ] {
        if let Some(v) = v {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(ARTIFACT_TYPE))
        .config(descriptor(
            CONFIG_MEDIA_TYPE,
            &config_digest,
            config_bytes.len() as u64,
            HashMap::new(),
        ))
        .layers(layers)
        .annotations(annotations)
        .build()
        .expect("all required manifest fields set");
    let manifest_bytes = canonical_json(&manifest);
    let digest = layout
        .put_manifest(
            &manifest_bytes,
            MANIFEST_MEDIA_TYPE,
            Some(ARTIFACT_TYPE),
            Some(tag),
        )
        .map_err(TransferError::from)?;

    // 4. SBOM as a referrer of the image manifest.
    let sbom_digest = match &req.sbom {
        None => None,
        Some(path) => {
            let sbom = ingest(layout, path, false)?;
            let empty = layout
                .put_blob_bytes(EMPTY_JSON)
                .map_err(TransferError::from)?;
            let m = referrer_manifest(
                SBOM_ARTIFACT_TYPE,
                &empty,
                vec![descriptor(
                    SBOM_ARTIFACT_TYPE,
                    &sbom.digest,
                    sbom.size,
                    title("sbom.spdx.json"),
                )],
                descriptor(
                    MANIFEST_MEDIA_TYPE,
                    &digest,
                    manifest_bytes.len() as u64,
                    HashMap::new(),
                ),
                HashMap::from([(ANN_CREATED.to_string(), created)]),
            );
            let bytes = canonical_json(&m);
            Some(
                layout
                    .put_manifest(&bytes, MANIFEST_MEDIA_TYPE, Some(SBOM_ARTIFACT_TYPE), None)
                    .map_err(TransferError::from)?,
            )
        }
    };
    Ok((digest, sbom_digest, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kernel_release_from_banner_skips_format_strings() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmlinux");
        let mut data = vec![0u8; 3 << 20];
        let fmt = b"Linux version %s (%s)\0";
        data[100..100 + fmt.len()].copy_from_slice(fmt);
        let banner = b"Linux version 6.1.0-vmimage (root@build) #1 SMP\0";
        let at = (1 << 20) - 20; // straddles a read boundary
        data[at..at + banner.len()].copy_from_slice(banner);
        fs::write(&p, &data).unwrap();
        assert_eq!(
            kernel_release(&p).unwrap().as_deref(),
            Some("6.1.0-vmimage")
        );
    }

    #[test]
    fn test_rootfs_without_ext4_magic_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rootfs.img");
        fs::write(&p, vec![0u8; 4096]).unwrap();
        let e = check_ext4(&p).unwrap_err().to_string();
        assert!(e.contains("rootfs.img") && e.contains("0xEF53"), "{e}");
    }
}
