//! One interface over the two places artifacts live: an OCI layout on disk
//! ([`Layout`]) and a registry repository ([`Registry`]). Push, pull,
//! inspect and release are written once against [`Store`].

use crate::error::TransferError;
use crate::format::DescriptorView;
use crate::layout::Layout;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryOptions};

/// An opened layout or registry repository.
#[derive(Debug)]
pub enum Store {
    /// OCI image layout.
    Layout(Layout),
    /// Registry repository (boxed: it is much larger than a layout).
    Registry(Box<Registry>),
}

impl Store {
    /// Opens the store `r` names. Layouts are created when `create` is set
    /// (destinations), else they must exist.
    pub async fn open(
        r: &ImageRef,
        opts: &RegistryOptions,
        create: bool,
    ) -> Result<Store, TransferError> {
        Ok(match r {
            ImageRef::Layout { dir, .. } => Store::Layout(if create {
                Layout::open_or_create(dir)?
            } else {
                Layout::open(dir)?
            }),
            ImageRef::Registry {
                registry,
                repository,
                ..
            } => Store::Registry(Box::new(
                Registry::connect(registry, repository, opts).await?,
            )),
        })
    }

    /// `oci:DIR` or `host/repo`, for messages.
    pub fn location(&self) -> String {
        match self {
            Store::Layout(l) => format!("oci:{}", l.dir().display()),
            Store::Registry(r) => format!("{}/{}", r.host(), r.repository()),
        }
    }

    /// The manifest a tag or digest names: bytes, digest, media type.
    pub async fn resolve(&self, target: &str) -> Result<(Vec<u8>, String, String), TransferError> {
        match self {
            Store::Layout(l) => Ok(l.resolve(target).map_err(|e| match e {
                crate::layout::LayoutError::NotFound { what, dir } => TransferError::NotFound {
                    what,
                    location: format!("oci:{}", dir.display()),
                },
                e => e.into(),
            })?),
            Store::Registry(r) => r.resolve(target).await.map_err(|e| match e {
                TransferError::NotFound { location, .. } => TransferError::NotFound {
                    what: format!("tag or digest `{target}`"),
                    location,
                },
                e => e,
            }),
        }
    }

    /// The digest a tag names, `None` if the tag does not exist.
    pub async fn tag_digest(&self, tag: &str) -> Result<Option<String>, TransferError> {
        match self {
            Store::Layout(l) => Ok(l
                .tag_digests()?
                .into_iter()
                .find(|(t, _)| t == tag)
                .map(|(_, d)| d)),
            Store::Registry(r) => r.tag_digest(tag).await,
        }
    }

    /// Stores a manifest, tagged or by digest; returns its digest.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        artifact_type: Option<&str>,
        tag: Option<&str>,
    ) -> Result<String, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.put_manifest(bytes, media_type, artifact_type, tag)?),
            Store::Registry(r) => r.put_manifest(bytes, media_type, tag).await,
        }
    }

    /// Whether the blob is present.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.has_blob(digest)),
            Store::Registry(r) => r.has_blob(digest).await,
        }
    }

    /// A small blob, verified.
    pub async fn fetch_blob_bytes(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.read_blob(digest)?),
            Store::Registry(r) => r.fetch_blob_bytes(digest, size).await,
        }
    }

    /// Stores small bytes as a blob.
    pub async fn put_blob_bytes(&self, data: &[u8]) -> Result<String, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.put_blob_bytes(data)?),
            Store::Registry(r) => {
                let d = crate::format::sha256_digest(data);
                if !r.has_blob(&d).await? {
                    r.push_blob_bytes(data).await?;
                }
                Ok(d)
            }
        }
    }

    /// Tags, sorted.
    pub async fn tags(&self) -> Result<Vec<String>, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.tags()?),
            Store::Registry(r) => r.tags().await,
        }
    }

    /// Manifests whose subject is `digest`, sorted by digest.
    pub async fn referrers(&self, digest: &str) -> Result<Vec<DescriptorView>, TransferError> {
        match self {
            Store::Layout(l) => Ok(l.referrers(digest)?),
            Store::Registry(r) => r.referrers(digest).await,
        }
    }

    /// Makes an already stored referrer manifest findable from its subject.
    pub async fn add_referrer(
        &self,
        subject: &str,
        referrer: DescriptorView,
    ) -> Result<(), TransferError> {
        match self {
            // Layouts find referrers by reading index entries' subjects;
            // put_manifest already listed it.
            Store::Layout(_) => Ok(()),
            Store::Registry(r) => r.add_referrer(subject, referrer).await,
        }
    }

    /// How many blobs to move at once.
    pub fn concurrency(&self) -> usize {
        match self {
            Store::Layout(_) => crate::registry::DEFAULT_CONCURRENCY,
            Store::Registry(r) => r.concurrency(),
        }
    }
}
