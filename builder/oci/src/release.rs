//! Releases: giving an image a semantic version tag and moving channel tags.
//!
//! A release re-tags the *same* image manifest (its digest never changes, so
//! what was tested is what ships) and records the version, git revision,
//! channels and date in a small release-record referrer: an OCI 1.1 manifest
//! with `artifactType` [`RELEASE_ARTIFACT_TYPE`] whose `subject` is the
//! image. Version tags are immutable: moving an existing version tag to
//! another digest is refused (naming both digests) unless forced. Channel
//! tags (`latest`, `stable`, `1`, `1.2`) move freely but may not look like a
//! full version. Limit: the check-then-tag is not atomic; two releases of
//! the same version racing can both pass the check.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::TransferError;
use crate::format::{
    ANN_CREATED, ANN_REVISION, ANN_VERSION, EMPTY_JSON, EMPTY_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
    ManifestView, RELEASE_ARTIFACT_TYPE, canonical_json, descriptor, referrer_manifest, rfc3339,
};
use crate::reference::{ImageRef, check_tag};
use crate::registry::RegistryOptions;
use crate::store::Store;
use crate::transfer::is_vmimage;

/// Annotation on a release record: the channels moved, comma-separated.
pub const ANN_CHANNELS: &str = "vnd.vmimage.release.channels";

/// What to release.
#[derive(Debug, Clone, Default)]
pub struct ReleaseRequest {
    /// Semantic version, `X.Y.Z[-pre][+build]`.
    pub version: String,
    /// Channel tags to point at the image.
    pub channels: Vec<String>,
    /// Move an existing version tag to another digest.
    pub force: bool,
    /// Git revision; else the image's revision annotation.
    pub revision: Option<String>,
    /// Release date (seconds since the epoch); else the image's `created`.
    pub date_epoch: Option<u64>,
}

/// What [`release`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseOutcome {
    /// The repository.
    pub repository: String,
    /// The version released.
    pub version: String,
    /// Image manifest digest.
    pub digest: String,
    /// Tags now naming the image.
    pub tags: Vec<String>,
    /// Channels that moved: tag and the digest it named before.
    pub moved: Vec<(String, Option<String>)>,
    /// The release record's digest.
    pub record: String,
    /// Whether a version tag was forced away from another digest.
    pub forced: bool,
}

/// One row of [`release_list`].
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseEntry {
    /// Version tag.
    pub version: String,
    /// Image manifest digest.
    pub digest: String,
    /// Image creation date (annotation).
    pub created: Option<String>,
    /// Release date (release record), when recorded.
    pub released: Option<String>,
    /// Git revision.
    pub revision: Option<String>,
    /// Other tags (channels) naming the same digest.
    pub channels: Vec<String>,
}

/// Validates a version: semver, no leading `v`.
pub fn parse_version(v: &str) -> Result<semver::Version, TransferError> {
    semver::Version::parse(v).map_err(|e| {
        TransferError::Release(format!(
            "invalid version `{v}`: expected a semantic version X.Y.Z[-PRERELEASE][+BUILD] ({e})"
        ))
    })
}

fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn parse_rfc3339_date(s: &str) -> Option<u64> {
    // YYYY-MM-DDTHH:MM:SSZ only: what vmimage writes.
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days-from-civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Releases the image `r` names as `req.version` in its repository.
pub async fn release(
    r: &ImageRef,
    req: &ReleaseRequest,
    opts: &RegistryOptions,
) -> Result<ReleaseOutcome, TransferError> {
    let version = parse_version(&req.version)?;
    check_tag(&req.version).map_err(|e| {
        TransferError::Release(format!(
            "version `{}` cannot be a tag: expected {e}",
            req.version
        ))
    })?;
    for c in &req.channels {
        check_tag(c).map_err(|e| TransferError::Release(format!("channel: expected {e}")))?;
        if semver::Version::parse(c).is_ok() {
            return Err(TransferError::Release(format!(
                "channel `{c}` looks like a version; version tags are immutable and set by --version"
            )));
        }
    }
    let store = Store::open(r, opts, false).await?;
    let (bytes, digest, mt) = store.resolve(r.target().as_str()).await?;
    let view = ManifestView::parse(&bytes).map_err(|e| TransferError::Format {
        reference: r.to_string(),
        reason: e.to_string(),
    })?;
    if !is_vmimage(&view) {
        return Err(TransferError::Format {
            reference: r.to_string(),
            reason: "not a vmimage image; only images are released".into(),
        });
    }

    // 1. Immutability of the version tag.
    let tag = version.to_string();
    let mut forced = false;
    if let Some(existing) = store.tag_digest(&tag).await? {
        if existing != digest {
            if !req.force {
                return Err(TransferError::Release(format!(
                    "version {tag} is already released as {existing} in {}; refusing to move it to {digest} (version tags are immutable; --force overrides)",
                    store.location()
                )));
            }
            tracing::warn!(version = %tag, from = %existing, to = %digest, "forcing the version tag");
            forced = true;
        }
    }

    // 2. Release record referrer.
    let revision = req
        .revision
        .clone()
        .or_else(git_head)
        .or_else(|| view.annotations.get(ANN_REVISION).cloned());
    let date = req
        .date_epoch
        .or_else(|| {
            std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })
        .or_else(|| {
            view.annotations
                .get(ANN_CREATED)
                .and_then(|c| parse_rfc3339_date(c))
        })
        .unwrap_or(0);
    let mut ann = HashMap::from([
        (ANN_VERSION.to_string(), tag.clone()),
        (ANN_CREATED.to_string(), rfc3339(date)),
    ]);
    if let Some(rev) = &revision {
        ann.insert(ANN_REVISION.to_string(), rev.clone());
    }
    let mut channels = req.channels.clone();
    channels.sort();
    channels.dedup();
    if !channels.is_empty() {
        ann.insert(ANN_CHANNELS.to_string(), channels.join(","));
    }
    let empty = store.put_blob_bytes(EMPTY_JSON).await?;
    let empty_desc = descriptor(
        EMPTY_MEDIA_TYPE,
        &empty,
        EMPTY_JSON.len() as u64,
        HashMap::new(),
    );
    let record = referrer_manifest(
        RELEASE_ARTIFACT_TYPE,
        &empty,
        vec![empty_desc],
        descriptor(&mt, &digest, bytes.len() as u64, HashMap::new()),
        ann.clone(),
    );
    let record_bytes = canonical_json(&record);
    let record_digest = store
        .put_manifest(
            &record_bytes,
            MANIFEST_MEDIA_TYPE,
            Some(RELEASE_ARTIFACT_TYPE),
            None,
        )
        .await?;
    store
        .add_referrer(
            &digest,
            crate::format::DescriptorView {
                media_type: MANIFEST_MEDIA_TYPE.into(),
                digest: record_digest.clone(),
                size: record_bytes.len() as u64,
                artifact_type: Some(RELEASE_ARTIFACT_TYPE.into()),
                annotations: ann.into_iter().collect(),
            },
        )
        .await?;

    // 3. Tags: the version, then the channels.
    let at = view.effective_artifact_type();
    store.put_manifest(&bytes, &mt, at, Some(&tag)).await?;
    let mut moved = Vec::new();
    for c in &channels {
        let before = store.tag_digest(c).await?;
        if before.as_deref() != Some(digest.as_str()) {
            store.put_manifest(&bytes, &mt, at, Some(c)).await?;
            moved.push((c.clone(), before));
        }
    }
    let mut tags = vec![tag.clone()];
    tags.extend(channels);
    Ok(ReleaseOutcome {
        repository: store.location(),
        version: tag,
        digest,
        tags,
        moved,
        record: record_digest,
        forced,
    })
}

/// Lists the releases (semver tags) of a repository, newest version first.
pub async fn release_list(
    repo: &ImageRef,
    opts: &RegistryOptions,
) -> Result<Vec<ReleaseEntry>, TransferError> {
    let store = Store::open(repo, opts, false).await?;
    let tags = store.tags().await?;
    let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut versions: Vec<(semver::Version, String, String)> = Vec::new();
    for t in &tags {
        // The referrers fallback tags are bookkeeping, not channels.
        if t.starts_with("sha256-") {
            continue;
        }
        let Some(d) = store.tag_digest(t).await? else {
            continue;
        };
        match semver::Version::parse(t) {
            Ok(v) => versions.push((v, t.clone(), d)),
            Err(_) => by_digest.entry(d).or_default().push(t.clone()),
        }
    }
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    let mut out = Vec::new();
    for (_, tag, digest) in versions {
        let (bytes, _, _) = store.resolve(&digest).await?;
        let view = ManifestView::parse(&bytes).unwrap_or_default();
        let record = store
            .referrers(&digest)
            .await?
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(RELEASE_ARTIFACT_TYPE))
            .find(|r| r.annotations.get(ANN_VERSION) == Some(&tag));
        out.push(ReleaseEntry {
            version: tag,
            created: view.annotations.get(ANN_CREATED).cloned(),
            released: record
                .as_ref()
                .and_then(|r| r.annotations.get(ANN_CREATED).cloned()),
            revision: record
                .as_ref()
                .and_then(|r| r.annotations.get(ANN_REVISION).cloned())
                .or_else(|| view.annotations.get(ANN_REVISION).cloned()),
            channels: by_digest.get(&digest).cloned().unwrap_or_default(),
            digest,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_version_must_be_semver() {
        assert!(parse_version("1.2.3").is_ok());
        assert!(parse_version("1.2.3-rc.1").is_ok());
        let e = parse_version("v1.2").unwrap_err().to_string();
        assert!(e.contains("v1.2") && e.contains("X.Y.Z"), "{e}");
    }

    #[test]
    fn test_rfc3339_round_trip() {
        for t in [0u64, 1_700_000_000, 951_782_400] {
            assert_eq!(parse_rfc3339_date(&rfc3339(t)), Some(t));
        }
    }
}
