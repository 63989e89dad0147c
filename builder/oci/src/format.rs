//! The vmimage artifact format: media types, the config blob, annotation
//! keys, and canonical JSON for manifests. `docs/artifact-format.md` is the
//! prose version of this file; keep them in step.
//!
//! A vmimage artifact is an OCI 1.1 image manifest with
//! `artifactType` = [`ARTIFACT_TYPE`], a JSON config blob ([`ImageConfig`],
//! [`CONFIG_MEDIA_TYPE`]) and one layer per file. Manifests are serialized
//! with sorted keys and no whitespace so the same inputs give the same
//! manifest digest.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `artifactType` of an image manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.vmimage.image.v1+json";
/// Media type of the config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.vmimage.config.v1+json";
/// Layer: the uncompressed kernel ELF.
pub const KERNEL_MEDIA_TYPE: &str = "application/vnd.vmimage.kernel.vmlinux.v1";
/// Layer: the ext4 root filesystem, zstd-compressed.
pub const ROOTFS_MEDIA_TYPE: &str = "application/vnd.vmimage.rootfs.ext4.v1+zstd";
/// Layer: a Firecracker snapshot file (state or memory), zstd-compressed.
pub const SNAPSHOT_MEDIA_TYPE: &str = "application/vnd.vmimage.snapshot.v1+zstd";
/// `artifactType` of the SBOM referrer.
pub const SBOM_ARTIFACT_TYPE: &str = "application/spdx+json";
/// `artifactType` of a release record referrer.
pub const RELEASE_ARTIFACT_TYPE: &str = "application/vnd.vmimage.release.v1+json";
/// The OCI empty config (`{}`), used by referrers that carry no config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of the empty config.
pub const EMPTY_JSON: &[u8] = b"{}";
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Annotation: file name of a layer when pulled.
pub const ANN_TITLE: &str = "org.opencontainers.image.title";
/// Annotation: version of the packaged image.
pub const ANN_VERSION: &str = "org.opencontainers.image.version";
/// Annotation: source revision (git commit).
pub const ANN_REVISION: &str = "org.opencontainers.image.revision";
/// Annotation: creation time, RFC 3339, from SOURCE_DATE_EPOCH.
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
/// Annotation: source repository URL.
pub const ANN_SOURCE: &str = "org.opencontainers.image.source";
/// Annotation: tag name of a manifest in an OCI layout's index.json.
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation on a compressed layer: size of the uncompressed file.
pub const ANN_UNCOMPRESSED_SIZE: &str = "vnd.vmimage.uncompressed.size";
/// Annotation on a compressed layer: sha256 digest of the uncompressed file.
pub const ANN_UNCOMPRESSED_DIGEST: &str = "vnd.vmimage.uncompressed.digest";
/// Annotation on a part layer: where its bytes start in the file its title names (the
/// uncompressed size and digest annotations then describe the part).
pub const ANN_PART_OFFSET: &str = "vnd.vmimage.part.offset";
/// Annotation on a part layer: size of the whole file the parts make up.
pub const ANN_FILE_SIZE: &str = "vnd.vmimage.file.size";

/// The config blob: what a VMM needs to boot the image, and where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageConfig {
    /// Kernel release (`uname -r`), read from the vmlinux banner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// Kernel command line.
    pub boot_args: String,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Root filesystem type (`ext4`).
    pub rootfs_filesystem: String,
    /// Root filesystem size in bytes (uncompressed).
    pub rootfs_size: u64,
    /// sha256 of the recipe the image was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_digest: Option<String>,
    /// sha256 of the lockfile the image was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockfile_digest: Option<String>,
    /// SOURCE_DATE_EPOCH used for the build and the `created` annotation.
    pub source_date_epoch: u64,
    /// vmimage version that packed the artifact.
    pub builder_version: String,
}

/// A digest string for `data`: `sha256:<hex>`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Serializes `value` as canonical JSON: object keys sorted, no whitespace.
/// oci-spec keeps annotations in `HashMap`s, so plain serialization would
/// order them differently from run to run.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let v = serde_json::to_value(value).expect("OCI types serialize");
    let mut out = Vec::new();
    write_canonical(&sort_value(v), &mut out);
    out
}

fn sort_value(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sort_value(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_value).collect())
        }
        other => other,
    }
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => {
            // Sort again here: with serde_json's `preserve_order` feature
            // (enabled by any crate in the build) maps keep insertion order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).expect("string"));
                out.push(b':');
                write_canonical(&map[*k], out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).expect("scalar")),
    }
}

/// RFC 3339 UTC time for seconds since the epoch (no clock involved).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all u64 epochs we meet.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// A manifest or index as plain JSON, for the fields vmimage reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestView {
    /// Manifest media type.
    #[serde(default)]
    pub media_type: Option<String>,
    /// OCI 1.1 artifact type.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Config descriptor (image manifests).
    #[serde(default)]
    pub config: Option<DescriptorView>,
    /// Layers (image manifests).
    #[serde(default)]
    pub layers: Vec<DescriptorView>,
    /// Manifests (indexes).
    #[serde(default)]
    pub manifests: Vec<DescriptorView>,
    /// Subject (referrers).
    #[serde(default)]
    pub subject: Option<DescriptorView>,
    /// Annotations, sorted.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A descriptor as plain JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescriptorView {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations, sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ManifestView {
    /// Parses a manifest or index.
    pub fn parse(bytes: &[u8]) -> Result<ManifestView, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Whether this is an index (rather than an image manifest).
    pub fn is_index(&self) -> bool {
        self.media_type.as_deref() == Some(INDEX_MEDIA_TYPE)
            || self.media_type.as_deref()
                == Some("application/vnd.docker.distribution.manifest.list.v2+json")
            || (self.config.is_none() && !self.manifests.is_empty())
    }

    /// The artifact type: `artifactType`, else the config media type (the
    /// OCI 1.0 convention, used by the fallback form).
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// Every blob the manifest needs: config first, then layers.
    pub fn blobs(&self) -> Vec<DescriptorView> {
        self.config
            .iter()
            .cloned()
            .chain(self.layers.iter().cloned())
            .collect()
    }
}

/// A descriptor of our own blob or manifest; annotations are left out of the
/// JSON when empty.
pub(crate) fn descriptor(
    media_type: &str,
    digest: &str,
    size: u64,
    annotations: HashMap<String, String>,
) -> Descriptor {
    let mut b = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(Digest::from_str(digest).expect("sha256 digest we computed"))
        .size(size);
    if !annotations.is_empty() {
        b = b.annotations(annotations);
    }
    b.build().expect("all required descriptor fields set")
}

/// An OCI 1.1 referrer manifest (SBOM, release record): the empty config,
/// `layers`, pointing at `subject`.
pub(crate) fn referrer_manifest(
    artifact_type: &str,
    empty_config_digest: &str,
    layers: Vec<Descriptor>,
    subject: Descriptor,
    annotations: HashMap<String, String>,
) -> ImageManifest {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact_type))
        .config(descriptor(
            EMPTY_MEDIA_TYPE,
            empty_config_digest,
            EMPTY_JSON.len() as u64,
            HashMap::new(),
        ))
        .layers(layers)
        .subject(subject)
        .annotations(annotations)
        .build()
        .expect("all required manifest fields set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": "d"}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":"d","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn test_rfc3339_from_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn test_fallback_manifest_is_recognised_by_config_media_type() {
        let m = ManifestView::parse(
            br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.vmimage.config.v1+json","digest":"sha256:00","size":2},"layers":[]}"#,
        )
        .unwrap();
        assert_eq!(m.effective_artifact_type(), Some(CONFIG_MEDIA_TYPE));
    }
}
