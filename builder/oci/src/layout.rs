//! An OCI image layout on disk (image-spec `image-layout.md`):
//!
//! ```text
//! DIR/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json          an image index; tags are the
//!                         org.opencontainers.image.ref.name annotations
//! DIR/blobs/sha256/<hex>  content-addressed blobs
//! ```
//!
//! Every write goes to a temporary name in the same directory and is renamed
//! into place, so a crash leaves either the old or the new file. Blobs are
//! verified against their digest before the rename. Referrers (SBOM, release
//! records) are kept as untagged index entries, found by reading their
//! `subject`. Limits: there is no lock, so two processes updating the same
//! layout's `index.json` at once can lose one update.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::format::{
    ANN_REF_NAME, DescriptorView, INDEX_MEDIA_TYPE, ManifestView, canonical_json, sha256_digest,
};

/// A layout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// File system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a layout, or a broken one.
    #[error("{path}: {reason}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tag or digest that the layout does not hold.
    #[error("{what} not found in OCI layout {dir}")]
    NotFound {
        /// The layout.
        dir: PathBuf,
        /// Tag or digest.
        what: String,
    },
    /// Content did not match its digest.
    #[error("digest mismatch for {path}: expected {expected}, actual {actual}")]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// Expected digest.
        expected: String,
        /// Digest of the bytes read.
        actual: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<DescriptorView>,
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Opens an existing layout.
    pub fn open(dir: &Path) -> Result<Layout, LayoutError> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(LayoutError::Invalid {
                path: dir.to_path_buf(),
                reason: "not an OCI image layout (no oci-layout file)".into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// Opens a layout, creating an empty one if `dir` is missing or empty.
    pub fn open_or_create(dir: &Path) -> Result<Layout, LayoutError> {
        if dir.join("oci-layout").is_file() {
            return Layout::open(dir);
        }
        fs::create_dir_all(dir.join("blobs/sha256")).map_err(io(dir))?;
        let l = Layout {
            dir: dir.to_path_buf(),
        };
        if !dir.join("index.json").exists() {
            l.write_index(&Index {
                schema_version: 2,
                media_type: Some(INDEX_MEDIA_TYPE.into()),
                manifests: vec![],
            })?;
        }
        l.write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Ok(l)
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Whether the blob exists.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a small blob (manifest, config) and checks its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let data = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LayoutError::NotFound {
                    dir: self.dir.clone(),
                    what: format!("blob {digest}"),
                }
            } else {
                LayoutError::Io {
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        let actual = sha256_digest(&data);
        if actual != digest {
            return Err(LayoutError::DigestMismatch {
                path,
                expected: digest.into(),
                actual,
            });
        }
        Ok(data)
    }

    /// Stores bytes as a blob.
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<String, LayoutError> {
        let digest = sha256_digest(data);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            self.write_atomic(&path, data)?;
        }
        Ok(digest)
    }

    /// Copies `src` into the layout as blob `digest`, hashing while copying;
    /// a mismatch leaves nothing behind.
    pub fn put_blob_file(&self, src: &Path, digest: &str) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(());
        }
        let parent = dest.parent().expect("blobs/sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-blob-")
            .tempfile_in(parent)
            .map_err(io(parent))?;
        let mut input = fs::File::open(src).map_err(io(src))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).map_err(io(src))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io(&dest))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(LayoutError::DigestMismatch {
                path: src.to_path_buf(),
                expected: digest.into(),
                actual,
            });
        }
        tmp.persist(&dest).map_err(|e| LayoutError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Moves an already verified file into the layout as blob `digest`.
    /// The file must be on the same file system (e.g. a temp file made with
    /// [`Layout::temp_file`]).
    pub fn adopt_blob(
        &self,
        file: tempfile::NamedTempFile,
        digest: &str,
    ) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        file.persist(&dest).map_err(|e| LayoutError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// A temporary file inside the blob directory, removed unless adopted.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        let d = self.dir.join("blobs/sha256");
        tempfile::Builder::new()
            .prefix(".tmp-blob-")
            .tempfile_in(&d)
            .map_err(io(&d))
    }

    /// Stores a manifest blob and records it in `index.json`, under `tag`
    /// (replacing what the tag named before) or untagged.
    pub fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        artifact_type: Option<&str>,
        tag: Option<&str>,
    ) -> Result<String, LayoutError> {
        let digest = self.put_blob_bytes(bytes)?;
        let mut index = self.read_index()?;
        let mut desc = DescriptorView {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            artifact_type: artifact_type.map(str::to_string),
            annotations: Default::default(),
        };
        match tag {
            Some(t) => {
                index
                    .manifests
                    .retain(|m| m.annotations.get(ANN_REF_NAME).map(String::as_str) != Some(t));
                desc.annotations.insert(ANN_REF_NAME.into(), t.into());
                index.manifests.push(desc);
            }
            None => {
                if !index.manifests.iter().any(|m| m.digest == digest) {
                    index.manifests.push(desc);
                }
            }
        }
        self.write_index(&index)?;
        Ok(digest)
    }

    /// The manifest a tag (or digest) names: bytes, digest, media type.
    pub fn resolve(&self, target: &str) -> Result<(Vec<u8>, String, String), LayoutError> {
        let index = self.read_index()?;
        let desc = if target.starts_with("sha256:") {
            index.manifests.iter().find(|m| m.digest == target).cloned()
        } else {
            index
                .manifests
                .iter()
                .find(|m| m.annotations.get(ANN_REF_NAME).map(String::as_str) == Some(target))
                .cloned()
        };
        let (digest, media_type) = match desc {
            Some(d) => (d.digest, d.media_type),
            // A digest may name a manifest that only the blob store holds.
            None if target.starts_with("sha256:") && self.has_blob(target) => {
                let bytes = self.read_blob(target)?;
                let mt = ManifestView::parse(&bytes)
                    .ok()
                    .and_then(|m| m.media_type)
                    .unwrap_or_else(|| crate::format::MANIFEST_MEDIA_TYPE.into());
                (target.to_string(), mt)
            }
            None => {
                let tags = self.tags()?;
                return Err(LayoutError::NotFound {
                    dir: self.dir.clone(),
                    what: format!("tag or digest `{target}` (tags: {})", tags.join(", ")),
                });
            }
        };
        let bytes = self.read_blob(&digest)?;
        Ok((bytes, digest, media_type))
    }

    /// Tags, sorted, with the digest each names.
    pub fn tag_digests(&self) -> Result<Vec<(String, String)>, LayoutError> {
        let mut v: Vec<(String, String)> = self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|m| {
                m.annotations
                    .get(ANN_REF_NAME)
                    .cloned()
                    .map(|t| (t, m.digest))
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Tags, sorted.
    pub fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self.tag_digests()?.into_iter().map(|(t, _)| t).collect())
    }

    /// Manifests in the index whose `subject` is `digest`.
    pub fn referrers(&self, digest: &str) -> Result<Vec<DescriptorView>, LayoutError> {
        let mut out = Vec::new();
        for m in self.read_index()?.manifests {
            let Ok(bytes) = self.read_blob(&m.digest) else {
                continue;
            };
            let Ok(view) = ManifestView::parse(&bytes) else {
                continue;
            };
            if view.subject.as_ref().is_some_and(|s| s.digest == digest) {
                let mut d = m.clone();
                d.artifact_type = view.effective_artifact_type().map(str::to_string);
                d.annotations = view.annotations.clone();
                if !out.iter().any(|x: &DescriptorView| x.digest == d.digest) {
                    out.push(d);
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn read_index(&self) -> Result<Index, LayoutError> {
        let path = self.dir.join("index.json");
        let text = fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&text).map_err(|e| LayoutError::Invalid {
            path,
            reason: format!("index.json: {e}"),
        })
    }

    fn write_index(&self, index: &Index) -> Result<(), LayoutError> {
        self.write_atomic(&self.dir.join("index.json"), &canonical_json(index))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), LayoutError> {
        let parent = path.parent().expect("inside the layout");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(parent)
            .map_err(io(parent))?;
        tmp.write_all(data).map_err(io(path))?;
        tmp.as_file().sync_all().map_err(io(path))?;
        tmp.persist(path).map_err(|e| LayoutError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_tag_moves_and_untagged_manifest_stays_once() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let a = l
            .put_manifest(b"{\"a\":1}", "application/x", None, Some("v1"))
            .unwrap();
        let b = l
            .put_manifest(b"{\"b\":1}", "application/x", None, Some("v1"))
            .unwrap();
        assert_eq!(l.resolve("v1").unwrap().1, b);
        l.put_manifest(b"{\"a\":1}", "application/x", None, None)
            .unwrap();
        l.put_manifest(b"{\"a\":1}", "application/x", None, None)
            .unwrap();
        assert_eq!(l.resolve(&a).unwrap().1, a);
        assert_eq!(l.read_index().unwrap().manifests.len(), 2);
        let e = l.resolve("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("v1"), "{e}");
    }

    #[test]
    fn test_put_blob_file_refuses_wrong_digest_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::open_or_create(d.path()).unwrap();
        let src = d.path().join("f");
        fs::write(&src, b"hello").unwrap();
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = l.put_blob_file(&src, &wrong).unwrap_err().to_string();
        assert!(e.contains("expected") && e.contains("actual"), "{e}");
        assert_eq!(
            fs::read_dir(d.path().join("blobs/sha256")).unwrap().count(),
            0
        );
    }
}
