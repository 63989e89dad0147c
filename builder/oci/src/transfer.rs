//! Moving artifacts: [`push`] copies an artifact (manifest, blobs and
//! referrers) from any store to any store; [`pull`] writes an artifact's
//! files into a directory; [`inspect`] and [`tags`] read without copying.
//!
//! Blobs move several at a time ([`Store::concurrency`]); blobs the
//! destination has are skipped (HEAD); between two repositories of one
//! registry a cross-repository mount is tried first. Nothing unverified is
//! kept: downloads go to a temporary file that is checked against the digest
//! before it is renamed, and `pull` builds its output in a temporary
//! directory next to `--out` that is renamed into place only when every file
//! matched both its compressed and uncompressed digests. A file sent as parts
//! (the rootfs) is made at full size first; its parts, checked to tile it,
//! download and decompress concurrently, each into its own range.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::TransferError;
use crate::format::{
    ANN_FILE_SIZE, ANN_PART_OFFSET, ANN_TITLE, ANN_UNCOMPRESSED_DIGEST, ANN_UNCOMPRESSED_SIZE,
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, DescriptorView, ImageConfig, ManifestView,
};
use crate::reference::{ImageRef, Target};
use crate::registry::RegistryOptions;
use crate::store::Store;

/// What [`push`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// Destination reference.
    pub destination: String,
    /// Manifest digest at the destination.
    pub digest: String,
    /// Blobs uploaded.
    pub blobs_copied: usize,
    /// Blobs the destination already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Bytes uploaded.
    pub bytes_copied: u64,
    /// Referrers (SBOM, release records) copied along.
    pub referrers: usize,
}

/// A file written by [`pull`].
#[derive(Debug, Clone, Serialize)]
pub struct PulledFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file (of a file made of parts: none; each part was checked against
    /// its own digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Number of part layers the file was assembled from (1 for a whole-file layer).
    pub parts: usize,
}

/// What [`pull`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PullOutcome {
    /// The output directory.
    pub out: PathBuf,
    /// Manifest digest.
    pub digest: String,
    /// Files written, in manifest order.
    pub files: Vec<PulledFile>,
}

/// One layer as [`inspect`] shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// File name (title annotation).
    pub title: Option<String>,
    /// Media type.
    pub media_type: String,
    /// Blob digest.
    pub digest: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed size, for compressed layers.
    pub uncompressed_size: Option<u64>,
    /// Where a part layer's bytes start in its file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_offset: Option<u64>,
}

/// What [`inspect`] shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The reference inspected.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Artifact type.
    pub artifact_type: Option<String>,
    /// Manifest annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The config blob, when it is a vmimage config.
    pub config: Option<ImageConfig>,
    /// Layers.
    pub layers: Vec<LayerInfo>,
    /// Referrers (artifact type, digest).
    pub referrers: Vec<DescriptorView>,
}

/// A target that must name one manifest (`latest` when none was given).
fn target_of(r: &ImageRef) -> String {
    r.target().as_str().to_string()
}

/// Resolves `r` and checks it is a vmimage image manifest.
async fn resolve_image(
    store: &Store,
    r: &ImageRef,
) -> Result<(Vec<u8>, String, String, ManifestView), TransferError> {
    let (bytes, digest, mt) = store.resolve(&target_of(r)).await?;
    let view = ManifestView::parse(&bytes).map_err(|e| TransferError::Format {
        reference: r.to_string(),
        reason: format!("manifest {digest} is not valid JSON: {e}"),
    })?;
    if view.is_index() {
        return Err(TransferError::Format {
            reference: r.to_string(),
            reason: format!("{digest} is an image index, not a vmimage image manifest"),
        });
    }
    Ok((bytes, digest, mt, view))
}

/// Copies one blob from `src` to `dst`; returns how it went.
async fn copy_blob(
    src: &Store,
    dst: &Store,
    desc: &DescriptorView,
    spool: &Path,
) -> Result<BlobMove, TransferError> {
    if dst.has_blob(&desc.digest).await? {
        return Ok(BlobMove::Skipped);
    }
    match (src, dst) {
        (Store::Layout(s), Store::Layout(d)) => {
            d.put_blob_file(&s.blob_path(&desc.digest), &desc.digest)?;
        }
        (Store::Layout(s), Store::Registry(d)) => {
            d.push_blob_file(&s.blob_path(&desc.digest), &desc.digest, desc.size)
                .await?;
        }
        (Store::Registry(s), Store::Layout(d)) => {
            let tmp = d.temp_file()?;
            s.fetch_blob_to_file(&desc.digest, desc.size, tmp.as_file())
                .await?;
            d.adopt_blob(tmp, &desc.digest)?;
        }
        (Store::Registry(s), Store::Registry(d)) => {
            if s.host() == d.host()
                && s.repository() != d.repository()
                && d.mount(s.repository(), &desc.digest).await
            {
                return Ok(BlobMove::Mounted);
            }
            let tmp =
                tempfile::NamedTempFile::new_in(spool).map_err(|source| TransferError::Io {
                    path: spool.to_path_buf(),
                    source,
                })?;
            s.fetch_blob_to_file(&desc.digest, desc.size, tmp.as_file())
                .await?;
            d.push_blob_file(tmp.path(), &desc.digest, desc.size)
                .await?;
        }
    }
    Ok(BlobMove::Copied(desc.size))
}

enum BlobMove {
    Skipped,
    Mounted,
    Copied(u64),
}

/// Copies the blobs of `view` that `dst` lacks, several at once.
async fn copy_blobs(
    src: &Store,
    dst: &Store,
    blobs: Vec<DescriptorView>,
    stats: &Stats,
) -> Result<(), TransferError> {
    let spool = std::env::temp_dir();
    let concurrency = dst.concurrency().max(src.concurrency()).max(1);
    futures_util::stream::iter(blobs.into_iter().map(Ok))
        .try_for_each_concurrent(concurrency, |desc| {
            let spool = spool.clone();
            async move {
                match copy_blob(src, dst, &desc, &spool).await? {
                    BlobMove::Skipped => stats.skipped.fetch_add(1, Ordering::Relaxed),
                    BlobMove::Mounted => stats.mounted.fetch_add(1, Ordering::Relaxed),
                    BlobMove::Copied(n) => {
                        stats.bytes.fetch_add(n, Ordering::Relaxed);
                        stats.copied.fetch_add(1, Ordering::Relaxed)
                    }
                };
                Ok::<(), TransferError>(())
            }
        })
        .await
}

#[derive(Default)]
struct Stats {
    copied: AtomicUsize,
    skipped: AtomicUsize,
    mounted: AtomicUsize,
    bytes: AtomicU64,
}

/// Copies the artifact `src` names to `dest` (layout or registry), with its
/// referrers. The destination tag is `dest`'s, else `src`'s, else none
/// (stored by digest).
pub async fn push(
    src: &ImageRef,
    dest: &ImageRef,
    opts: &RegistryOptions,
) -> Result<PushOutcome, TransferError> {
    let src_store = Store::open(src, opts, false).await?;
    let dst_store = Store::open(dest, opts, true).await?;
    push_between(&src_store, src, &dst_store, dest).await
}

/// [`push`] with both stores already open.
pub async fn push_between(
    src_store: &Store,
    src: &ImageRef,
    dst_store: &Store,
    dest: &ImageRef,
) -> Result<PushOutcome, TransferError> {
    let (bytes, digest, mt, view) = resolve_image(src_store, src).await?;
    let stats = Stats::default();
    copy_blobs(src_store, dst_store, view.blobs(), &stats).await?;
    let tag = match (dest.target(), src.target()) {
        (Target::Tag(t), _) => Some(t.clone()),
        (Target::Digest(d), _) if *d != digest => {
            return Err(TransferError::DigestMismatch {
                what: format!("destination {dest}"),
                expected: d.clone(),
                actual: digest,
            });
        }
        (Target::Digest(_), _) => None,
        (Target::None, Target::Tag(t)) => Some(t.clone()),
        (Target::None, _) => None,
    };
    let stored = put_image_manifest(dst_store, &bytes, &mt, &view, tag.as_deref()).await?;
    if stored != digest {
        tracing::warn!(
            original = %digest, stored = %stored,
            "destination refused the OCI 1.1 manifest; stored the fallback form"
        );
    }
    // Referrers: SBOM and release records travel with the image.
    let mut referrers = 0;
    for r in src_store.referrers(&digest).await? {
        let (rbytes, rdigest, rmt) = src_store.resolve(&r.digest).await?;
        let rview = ManifestView::parse(&rbytes).map_err(|e| TransferError::Format {
            reference: format!("{src} referrer {rdigest}"),
            reason: e.to_string(),
        })?;
        copy_blobs(src_store, dst_store, rview.blobs(), &stats).await?;
        let rbytes = if stored != digest {
            resubject(&rbytes, &stored, bytes_len_of(dst_store, &stored).await?)
        } else {
            rbytes
        };
        let new_digest = put_image_manifest(dst_store, &rbytes, &rmt, &rview, None).await?;
        // What the registry stored (the fallback form, perhaps) describes the referrer.
        let (sbytes, _, _) = dst_store.resolve(&new_digest).await?;
        let sview = ManifestView::parse(&sbytes).map_err(|e| TransferError::Format {
            reference: format!("{dest} referrer {new_digest}"),
            reason: e.to_string(),
        })?;
        let mut d = r.clone();
        d.digest = new_digest;
        d.size = sbytes.len() as u64;
        d.media_type = rmt;
        d.artifact_type = sview.effective_artifact_type().map(str::to_string);
        d.annotations = rview.annotations.clone();
        dst_store.add_referrer(&stored, d).await?;
        referrers += 1;
    }
    Ok(PushOutcome {
        destination: dest.to_string(),
        digest: stored,
        blobs_copied: stats.copied.load(Ordering::Relaxed),
        blobs_skipped: stats.skipped.load(Ordering::Relaxed),
        blobs_mounted: stats.mounted.load(Ordering::Relaxed),
        bytes_copied: stats.bytes.load(Ordering::Relaxed),
        referrers,
    })
}

async fn bytes_len_of(store: &Store, digest: &str) -> Result<u64, TransferError> {
    Ok(store.resolve(digest).await?.0.len() as u64)
}

/// Points a referrer manifest at a new subject digest.
fn resubject(bytes: &[u8], subject: &str, size: u64) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).expect("parsed before");
    if let Some(s) = v.get_mut("subject") {
        s["digest"] = serde_json::Value::String(subject.into());
        s["size"] = serde_json::Value::from(size);
    }
    crate::format::canonical_json(&v)
}

/// Stores an image manifest; if the registry refuses it (a registry that
/// predates OCI 1.1 rejecting `artifactType` or `subject`), stores the
/// fallback form without `artifactType`, where the config media type
/// identifies the artifact (the OCI 1.0 convention). Returns the digest
/// stored.
pub async fn put_image_manifest(
    store: &Store,
    bytes: &[u8],
    media_type: &str,
    view: &ManifestView,
    tag: Option<&str>,
) -> Result<String, TransferError> {
    let at = view.effective_artifact_type();
    match store.put_manifest(bytes, media_type, at, tag).await {
        Ok(d) => Ok(d),
        Err(TransferError::Registry { reason, .. })
            if view.artifact_type.is_some()
                && (reason.contains("MANIFEST_INVALID")
                    || reason.contains("UNSUPPORTED")
                    || reason.contains("code: 400")
                    || reason.contains("code: 415")) =>
        {
            tracing::warn!(%reason, "registry refused artifactType; retrying without it");
            let mut v: serde_json::Value = serde_json::from_slice(bytes).expect("parsed before");
            if let Some(o) = v.as_object_mut() {
                let artifact_type = o.remove("artifactType");
                // OCI 1.1's fallback: an artifact with an empty config names its type
                // in the config's media type instead.
                if let (Some(t), Some(cfg)) = (artifact_type, o.get_mut("config"))
                    && cfg["mediaType"] == crate::format::EMPTY_MEDIA_TYPE
                {
                    cfg["mediaType"] = t;
                }
            }
            let fallback = crate::format::canonical_json(&v);
            store.put_manifest(&fallback, media_type, at, tag).await
        }
        Err(e) => Err(e),
    }
}

/// Whether a manifest is a vmimage image (either form).
pub fn is_vmimage(view: &ManifestView) -> bool {
    matches!(
        view.effective_artifact_type(),
        Some(ARTIFACT_TYPE) | Some(CONFIG_MEDIA_TYPE)
    )
}

/// Writes the files of the artifact `src` names into `out` (which must not
/// exist or be empty): decompressed, sparse where blocks are zero, every
/// byte verified; nothing is left at `out` on failure.
pub async fn pull(
    src: &ImageRef,
    out: &Path,
    opts: &RegistryOptions,
) -> Result<PullOutcome, TransferError> {
    let store = Store::open(src, opts, false).await?;
    let (_, digest, _, view) = resolve_image(&store, src).await?;
    if !is_vmimage(&view) {
        return Err(TransferError::Format {
            reference: src.to_string(),
            reason: format!(
                "not a vmimage artifact (artifact type {:?})",
                view.effective_artifact_type()
            ),
        });
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TransferError::Io { path: p, source }
    };
    if out.exists() && fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(TransferError::Io {
            path: out.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "output directory exists and is not empty",
            ),
        });
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(parent)
        .map_err(io(parent))?;

    // Config first: a small blob, kept as vmimage.json.
    let mut files = Vec::new();
    if let Some(cfg) = &view.config {
        let data = store.fetch_blob_bytes(&cfg.digest, cfg.size).await?;
        let p = staging.path().join("vmimage.json");
        fs::write(&p, &data).map_err(io(&p))?;
        files.push(PulledFile {
            path: "vmimage.json".into(),
            size: data.len() as u64,
            digest: Some(cfg.digest.clone()),
            parts: 1,
        });
    }

    // Whole-file layers and parts: parts of one file are checked to cover it exactly,
    // the file is made at its full (sparse) size, and every part writes its own range.
    let staging_path = staging.path().to_path_buf();
    let mut units: Vec<(DescriptorView, Option<u64>)> = Vec::new();
    let mut parted: BTreeMap<PathBuf, (u64, Vec<(u64, u64)>)> = BTreeMap::new();
    for layer in &view.layers {
        let rel = title_path(layer)?;
        match part_of(layer)? {
            None => units.push((layer.clone(), None)),
            Some((offset, len, file_size)) => {
                let e = parted.entry(rel).or_insert((file_size, Vec::new()));
                if e.0 != file_size {
                    return Err(bad_parts(layer, "parts disagree on the file size"));
                }
                e.1.push((offset, len));
                units.push((layer.clone(), Some(offset)));
            }
        }
    }
    for (rel, (file_size, ranges)) in &mut parted {
        check_coverage(ranges, *file_size).map_err(|reason| TransferError::Format {
            reference: rel.display().to_string(),
            reason,
        })?;
        let dest = staging_path.join(rel);
        if let Some(d) = dest.parent() {
            fs::create_dir_all(d).map_err(io(d))?;
        }
        let f = fs::File::create(&dest).map_err(io(&dest))?;
        f.set_len(*file_size).map_err(io(&dest))?;
    }
    let concurrency = store.concurrency().max(1);
    let store_ref = &store;
    let pulled: Vec<PulledFile> = futures_util::stream::iter(units)
        .map(|(layer, part)| {
            let staging = staging_path.clone();
            async move { pull_layer(store_ref, &layer, &staging, part).await }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    // One entry per file, in layer order.
    for layer in &view.layers {
        let rel = title_path(layer)?.to_string_lossy().into_owned();
        if files.iter().any(|f| f.path == rel) {
            continue;
        }
        if let Some((size, ranges)) = parted.get(Path::new(&rel)) {
            files.push(PulledFile {
                path: rel,
                size: *size,
                digest: None,
                parts: ranges.len(),
            });
        } else if let Some(f) = pulled.iter().find(|f| f.path == rel) {
            files.push(f.clone());
        }
    }
    // Durable before the directory takes its name.
    for f in &files {
        let p = staging_path.join(&f.path);
        fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(io(&p))?;
    }

    let staged = staging.keep();
    if let Err(source) = fs::rename(&staged, out) {
        let _ = fs::remove_dir_all(&staged);
        return Err(TransferError::Io {
            path: out.to_path_buf(),
            source,
        });
    }
    Ok(PullOutcome {
        out: out.to_path_buf(),
        digest,
        files,
    })
}

/// Safe relative path from a title annotation: no absolute paths, no `..`.
fn title_path(layer: &DescriptorView) -> Result<PathBuf, TransferError> {
    let title = layer
        .annotations
        .get(ANN_TITLE)
        .cloned()
        .unwrap_or_else(|| layer.digest.replace(':', "-"));
    let p = PathBuf::from(&title);
    let ok = !title.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !ok {
        return Err(TransferError::Format {
            reference: layer.digest.clone(),
            reason: format!("layer title `{title}` is not a relative path inside the output"),
        });
    }
    Ok(p)
}

/// A part layer's `(offset, length, whole file size)`; `None` for a whole-file layer.
fn part_of(layer: &DescriptorView) -> Result<Option<(u64, u64, u64)>, TransferError> {
    let Some(off) = layer.annotations.get(ANN_PART_OFFSET) else {
        return Ok(None);
    };
    let num = |key: &str| -> Result<u64, TransferError> {
        layer
            .annotations
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad_parts(layer, &format!("part without a numeric `{key}`")))
    };
    let off: u64 = off
        .parse()
        .map_err(|_| bad_parts(layer, "part offset is not a number"))?;
    Ok(Some((
        off,
        num(ANN_UNCOMPRESSED_SIZE)?,
        num(ANN_FILE_SIZE)?,
    )))
}

/// Sorts `ranges` (offset, length) and checks that they tile `0..file_size` exactly.
fn check_coverage(ranges: &mut [(u64, u64)], file_size: u64) -> Result<(), String> {
    ranges.sort_unstable();
    let mut at = 0u64;
    for &(off, len) in ranges.iter() {
        if off != at {
            return Err(format!(
                "parts leave a gap or overlap at byte {at} (next part at {off})"
            ));
        }
        at = off.checked_add(len).ok_or("part range overflows")?;
    }
    if at != file_size {
        return Err(format!("parts cover {at} bytes of a {file_size}-byte file"));
    }
    Ok(())
}

fn bad_parts(layer: &DescriptorView, reason: &str) -> TransferError {
    TransferError::Format {
        reference: layer.digest.clone(),
        reason: reason.to_string(),
    }
}

async fn pull_layer(
    store: &Store,
    layer: &DescriptorView,
    staging: &Path,
    part: Option<u64>,
) -> Result<PulledFile, TransferError> {
    let rel = title_path(layer)?;
    let dest = staging.join(&rel);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TransferError::Io { path: p, source }
    };
    if let Some(d) = dest.parent() {
        fs::create_dir_all(d).map_err(io(d))?;
    }
    // The blob as a local file: the layout's own, or a verified download.
    let _download;
    let blob_path = match store {
        Store::Layout(l) => l.blob_path(&layer.digest),
        Store::Registry(r) => {
            let tmp = tempfile::Builder::new()
                .prefix(".blob-")
                .tempfile_in(staging)
                .map_err(io(staging))?;
            r.fetch_blob_to_file(&layer.digest, layer.size, tmp.as_file())
                .await?;
            let p = tmp.path().to_path_buf();
            _download = tmp;
            p
        }
    };
    let compressed = layer.media_type.ends_with("+zstd");
    let expected_digest = if compressed {
        layer.annotations.get(ANN_UNCOMPRESSED_DIGEST).cloned()
    } else {
        Some(layer.digest.clone())
    };
    let expected_size = if compressed {
        layer
            .annotations
            .get(ANN_UNCOMPRESSED_SIZE)
            .and_then(|s| s.parse::<u64>().ok())
    } else {
        Some(layer.size)
    };
    let (blob_path2, dest2, digest2) = (blob_path.clone(), dest.clone(), layer.digest.clone());
    let verify_blob = matches!(store, Store::Layout(_));
    let (size, digest) = tokio::task::spawn_blocking(move || {
        write_sparse(
            &blob_path2,
            &dest2,
            part,
            compressed,
            verify_blob.then_some(&*digest2),
        )
    })
    .await
    .expect("decompression task")?;
    if let Some(e) = expected_size {
        if e != size {
            return Err(TransferError::DigestMismatch {
                what: format!("{} (size)", rel.display()),
                expected: format!("{e} bytes"),
                actual: format!("{size} bytes"),
            });
        }
    }
    if let Some(e) = expected_digest {
        if e != digest {
            return Err(TransferError::DigestMismatch {
                what: rel.display().to_string(),
                expected: e,
                actual: digest,
            });
        }
    }
    Ok(PulledFile {
        path: rel.to_string_lossy().into_owned(),
        size,
        digest: Some(digest),
        parts: 1,
    })
}

/// Copies (or zstd-decompresses) `src` to `dest` (from byte `part` of an existing file
/// of full size, or as a new file), leaving 4 KiB blocks of zeros unwritten so the file
/// is sparse; returns size and sha256 of the bytes. With `blob_digest`, also checks the
/// input against it (layout blobs are read without a separate pass).
fn write_sparse(
    src: &Path,
    dest: &Path,
    part: Option<u64>,
    decompress: bool,
    blob_digest: Option<&str>,
) -> Result<(u64, String), TransferError> {
    use std::os::unix::fs::FileExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TransferError::Io { path: p, source }
    };
    let file = fs::File::open(src).map_err(io(src))?;
    let mut input = HashReader {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    let out = match part {
        Some(_) => fs::OpenOptions::new().write(true).open(dest),
        None => fs::File::create(dest),
    }
    .map_err(io(dest))?;
    let base = part.unwrap_or(0);
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    {
        let mut reader: Box<dyn Read + '_> = if decompress {
            Box::new(zstd::stream::read::Decoder::new(&mut input).map_err(io(src))?)
        } else {
            Box::new(&mut input)
        };
        let mut buf = vec![0u8; 4 << 20];
        loop {
            let n = read_full(&mut reader, &mut buf).map_err(|e| TransferError::Format {
                reference: src.display().to_string(),
                reason: format!("reading layer: {e}"),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            // One write per run of non-zero blocks.
            let data = &buf[..n];
            let mut i = 0;
            while i < n {
                let zero = |k: usize| data[k..(k + 4096).min(n)].iter().all(|&b| b == 0);
                if zero(i) {
                    i += 4096;
                    continue;
                }
                let start = i;
                while i < n && !zero(i) {
                    i += 4096;
                }
                let end = i.min(n);
                out.write_all_at(&data[start..end], base + total + start as u64)
                    .map_err(io(dest))?;
            }
            total += n as u64;
        }
        if part.is_none() {
            out.set_len(total).map_err(io(dest))?;
        }
    }
    // Drain what the decoder did not need, so the blob hash covers it all.
    std::io::copy(&mut input, &mut std::io::sink()).map_err(io(src))?;
    if let Some(expected) = blob_digest {
        let actual = format!("sha256:{}", hex::encode(input.hasher.finalize()));
        if actual != expected {
            return Err(TransferError::DigestMismatch {
                what: format!("blob {}", src.display()),
                expected: expected.into(),
                actual,
            });
        }
    }
    Ok((total, format!("sha256:{}", hex::encode(hasher.finalize()))))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Describes the artifact `src` names.
pub async fn inspect(src: &ImageRef, opts: &RegistryOptions) -> Result<Inspection, TransferError> {
    let store = Store::open(src, opts, false).await?;
    let (_, digest, mt, view) = resolve_image(&store, src).await?;
    let config = match &view.config {
        Some(c) if c.media_type == CONFIG_MEDIA_TYPE => {
            let data = store.fetch_blob_bytes(&c.digest, c.size).await?;
            Some(
                serde_json::from_slice(&data).map_err(|e| TransferError::Format {
                    reference: src.to_string(),
                    reason: format!("config {}: {e}", c.digest),
                })?,
            )
        }
        _ => None,
    };
    let layers = view
        .layers
        .iter()
        .map(|l| LayerInfo {
            title: l.annotations.get(ANN_TITLE).cloned(),
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            uncompressed_size: l
                .annotations
                .get(ANN_UNCOMPRESSED_SIZE)
                .and_then(|s| s.parse().ok()),
            part_offset: l
                .annotations
                .get(ANN_PART_OFFSET)
                .and_then(|s| s.parse().ok()),
        })
        .collect();
    let referrers = store.referrers(&digest).await?;
    Ok(Inspection {
        reference: src.to_string(),
        digest,
        media_type: mt,
        artifact_type: view.effective_artifact_type().map(str::to_string),
        annotations: view.annotations.clone(),
        config,
        layers,
        referrers,
    })
}

/// Tags of the repository (or layout) `repo` names, sorted.
pub async fn tags(repo: &ImageRef, opts: &RegistryOptions) -> Result<Vec<String>, TransferError> {
    let store = Store::open(repo, opts, false).await?;
    store.tags().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parts_must_tile_the_file() {
        let mut ok = vec![(64, 36), (0, 64)];
        assert_eq!(check_coverage(&mut ok, 100), Ok(()));
        assert_eq!(ok, vec![(0, 64), (64, 36)], "sorted by offset");
        let gap = check_coverage(&mut [(0, 60), (64, 36)], 100).unwrap_err();
        assert!(gap.contains("gap or overlap at byte 60"), "{gap}");
        let overlap = check_coverage(&mut [(0, 70), (64, 36)], 100).unwrap_err();
        assert!(overlap.contains("at byte 70"), "{overlap}");
        let short = check_coverage(&mut [(0, 64)], 100).unwrap_err();
        assert!(
            short.contains("cover 64 bytes of a 100-byte file"),
            "{short}"
        );
        assert!(check_coverage(&mut [(0, u64::MAX), (u64::MAX, 2)], 1).is_err());
    }

    #[test]
    fn test_part_annotations_are_read_and_checked() {
        let mut layer = DescriptorView {
            media_type: "application/vnd.vmimage.rootfs.ext4.v1+zstd".into(),
            digest: "sha256:00".into(),
            size: 10,
            artifact_type: None,
            annotations: Default::default(),
        };
        assert_eq!(part_of(&layer).unwrap(), None, "a whole-file layer");
        layer
            .annotations
            .insert(ANN_PART_OFFSET.into(), "64".into());
        layer
            .annotations
            .insert(ANN_UNCOMPRESSED_SIZE.into(), "36".into());
        assert!(part_of(&layer).is_err(), "no file size");
        layer.annotations.insert(ANN_FILE_SIZE.into(), "100".into());
        assert_eq!(part_of(&layer).unwrap(), Some((64, 36, 100)));
        layer.annotations.insert(ANN_PART_OFFSET.into(), "x".into());
        assert!(part_of(&layer).is_err());
    }
}
