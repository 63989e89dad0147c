//! One repository in a registry, over the OCI distribution API, through
//! oci-client: manifests, blobs (streamed from and to disk), tags and
//! referrers, with retries and resumable downloads.
//!
//! - Every call is retried on dropped connections, 5xx, 429 and 408, up to
//!   [`MAX_TRIES`] times with exponential backoff from [`BACKOFF_START`].
//! - Blob uploads are one streaming monolithic `PUT` (POST then PUT with the
//!   body): ECR rejects chunks under 5 MB and has a reported data-loss bug in
//!   chunked uploads, and one request is also the fastest on other
//!   registries. A failed upload restarts from byte 0 in a new session
//!   (the distribution API has no reliable resume for uploads).
//! - Blob downloads hash as they go and, after a dropped connection, resume
//!   with `Range: bytes=N-`; a registry that answers 200 instead of 206 makes
//!   the download start over. The digest is checked before the caller keeps
//!   anything.
//! - Referrers: the OCI 1.1 referrers API when the registry has it, else the
//!   tag schema (`sha256-<hex>` holding an index), which vmimage maintains
//!   itself because oci-client does not.
//! - ECR: credentials from `GetAuthorizationToken`, renewed 15 minutes before
//!   they expire.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use crate::auth::{Credentials, EcrOptions, EcrToken};
use crate::error::{TransferError, chain, from_oci, is_retryable};
use crate::format::{
    DescriptorView, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, ManifestView, canonical_json,
    sha256_digest,
};
use crate::reference::parse_ecr_host;

/// Attempts per request before giving up.
pub const MAX_TRIES: u32 = 5;
/// First retry delay; doubled for each further attempt.
pub const BACKOFF_START: Duration = Duration::from_millis(200);
/// Blobs moved at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Read size when streaming a file to the registry.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Accepted manifest media types when resolving.
const ACCEPT: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Called with the number of bytes just moved (for progress bars).
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// How to reach and authenticate to registries.
#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// Use HTTP instead of HTTPS.
    pub plain_http: bool,
    /// A PEM file with the CA certificate(s) of a private registry.
    pub ca_file: Option<PathBuf>,
    /// ECR control-plane settings.
    pub ecr: EcrOptions,
    /// Credentials to use instead of the docker config.
    pub credentials: Option<Credentials>,
    /// Blobs moved at once (0 = [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("plain_http", &self.plain_http)
            .field("ca_file", &self.ca_file)
            .field("ecr", &self.ecr)
            .field("credentials", &self.credentials)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

struct Session {
    client: Client,
    auth: RegistryAuth,
    ecr_token: Option<EcrToken>,
}

/// A repository in a registry.
pub struct Registry {
    host: String,
    repository: String,
    opts: RegistryOptions,
    who: String,
    ecr: Option<(Option<String>, Option<String>)>,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({}/{})", self.host, self.repository)
    }
}

/// A sink for blob bytes that can start over (after a 200 to a Range request).
trait BlobSink {
    fn reset(&mut self) -> std::io::Result<()>;
    fn put(&mut self, data: &[u8]) -> std::io::Result<()>;
}

impl BlobSink for Vec<u8> {
    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// A download into a file. Where the file system takes it, bytes go through a second,
/// `O_DIRECT` handle in 4 MiB aligned writes: no copy into the page cache and none of the
/// first-touch cost of fresh cache pages, which is most of a pull's system time (the blob
/// is verified by its hash as it streams, so nothing needs to read it back). Elsewhere
/// (tmpfs, no /proc) it is a plain buffered write.
struct FileSink<'a> {
    file: &'a std::fs::File,
    direct: Option<std::fs::File>,
    /// Staging area: `stage[at..at + len]`, with `at` 4 KiB-aligned in memory.
    stage: Vec<u8>,
    at: usize,
    len: usize,
    /// File offset of the staged bytes.
    pos: u64,
}

const SINK_STAGE: usize = 4 << 20;
const SINK_ALIGN: usize = 4096;

impl<'a> FileSink<'a> {
    fn new(file: &'a std::fs::File) -> FileSink<'a> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok();
        let stage = vec![0u8; SINK_STAGE + SINK_ALIGN];
        let at = stage.as_ptr().align_offset(SINK_ALIGN);
        FileSink {
            file,
            direct,
            stage,
            at,
            len: 0,
            pos: 0,
        }
    }

    /// Writes the first `n` staged bytes (a multiple of 4 KiB, or all of them at the end).
    fn write_stage(&mut self, n: usize) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let data = &self.stage[self.at..self.at + n];
        let res = match &self.direct {
            Some(d) => d.write_all_at(data, self.pos),
            None => self.file.write_all_at(data, self.pos),
        };
        match res {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct.is_some() => {
                self.direct = None;
                self.file.write_all_at(data, self.pos)?;
            }
            r => r?,
        }
        self.pos += n as u64;
        self.len = 0;
        Ok(())
    }

    /// Writes what is staged; the file ends exactly at the last byte put.
    fn finish(&mut self) -> std::io::Result<()> {
        let end = self.pos + self.len as u64;
        if self.len > 0 {
            // Direct writes go in whole blocks: pad, then cut the file back.
            let padded = self.len.next_multiple_of(SINK_ALIGN);
            self.stage[self.at + self.len..self.at + padded].fill(0);
            self.write_stage(padded)?;
        }
        self.file.set_len(end)?;
        self.pos = end;
        Ok(())
    }
}

impl BlobSink for FileSink<'_> {
    fn reset(&mut self) -> std::io::Result<()> {
        self.len = 0;
        self.pos = 0;
        self.file.set_len(0)
    }
    fn put(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(SINK_STAGE - self.len);
            self.stage[self.at + self.len..self.at + self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == SINK_STAGE {
                self.write_stage(SINK_STAGE)?;
            }
        }
        Ok(())
    }
}

impl Registry {
    /// Connects to `host/repository`: finds credentials (docker config, or
    /// ECR), creates a missing ECR repository when asked.
    pub async fn connect(
        host: &str,
        repository: &str,
        opts: &RegistryOptions,
    ) -> Result<Registry, TransferError> {
        let ecr_host = parse_ecr_host(host);
        let is_ecr = ecr_host.is_some() || opts.ecr.force;
        let ecr = is_ecr.then(|| {
            let region = opts
                .ecr
                .region
                .clone()
                .or_else(|| ecr_host.as_ref().map(|h| h.region.clone()));
            let id = opts
                .ecr
                .registry_id
                .clone()
                .or_else(|| ecr_host.as_ref().map(|h| h.account.clone()));
            (region, id)
        });
        let mut reg = Registry {
            host: host.to_string(),
            repository: repository.to_string(),
            opts: opts.clone(),
            who: "anonymous".into(),
            ecr,
            session: Mutex::new(Session {
                client: Client::default(),
                auth: RegistryAuth::Anonymous,
                ecr_token: None,
            }),
        };
        if let Some((region, id)) = &reg.ecr {
            if opts.ecr.create_repository {
                let created = crate::auth::ecr_create_repository(
                    region.as_deref(),
                    opts.ecr.endpoint.as_deref(),
                    id.as_deref(),
                    repository,
                )
                .await?;
                if created {
                    tracing::info!(repository, "created ECR repository");
                }
            }
        }
        let (creds, token) = reg.credentials().await?;
        reg.who = match &creds {
            Credentials::Anonymous => "anonymous".into(),
            Credentials::Basic { username, .. } => format!("user {username}"),
        };
        let session = reg.new_session(&creds, token).await?;
        *reg.session.get_mut() = session;
        Ok(reg)
    }

    async fn credentials(&self) -> Result<(Credentials, Option<EcrToken>), TransferError> {
        if let Some(c) = &self.opts.credentials {
            return Ok((c.clone(), None));
        }
        if let Some((region, id)) = &self.ecr {
            let t = crate::auth::ecr_token(
                region.as_deref(),
                self.opts.ecr.endpoint.as_deref(),
                id.as_deref(),
            )
            .await?;
            return Ok((t.credentials.clone(), Some(t)));
        }
        Ok((crate::auth::docker_credentials(&self.host)?, None))
    }

    async fn new_session(
        &self,
        creds: &Credentials,
        ecr_token: Option<EcrToken>,
    ) -> Result<Session, TransferError> {
        let mut config = ClientConfig {
            protocol: if self.opts.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("vmimage/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        if let Some(ca) = &self.opts.ca_file {
            let data = std::fs::read(ca).map_err(|source| TransferError::Io {
                path: ca.clone(),
                source,
            })?;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let client = Client::try_from(config).map_err(|e| TransferError::Registry {
            registry: self.host.clone(),
            operation: "setting up the HTTP client".into(),
            reason: chain(&e),
        })?;
        let auth = creds.to_registry_auth();
        client.store_auth_if_needed(&self.host, &auth).await;
        Ok(Session {
            client,
            auth,
            ecr_token,
        })
    }

    /// The client for the next request, renewing an expiring ECR token.
    async fn client(&self) -> Result<(Client, RegistryAuth), TransferError> {
        let mut s = self.session.lock().await;
        if s.ecr_token.as_ref().is_some_and(EcrToken::needs_refresh) {
            tracing::info!(registry = %self.host, "renewing the ECR token");
            let (creds, token) = self.credentials().await?;
            *s = self.new_session(&creds, token).await?;
        }
        Ok((s.client.clone(), s.auth.clone()))
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// How many blobs to move at once.
    pub fn concurrency(&self) -> usize {
        if self.opts.concurrency == 0 {
            DEFAULT_CONCURRENCY
        } else {
            self.opts.concurrency
        }
    }

    fn reference(&self, target: &str) -> Reference {
        if target.starts_with("sha256:") {
            Reference::with_digest(self.host.clone(), self.repository.clone(), target.into())
        } else {
            Reference::with_tag(self.host.clone(), self.repository.clone(), target.into())
        }
    }

    fn err(&self, e: OciDistributionError, op: &str) -> TransferError {
        from_oci(e, &self.host, &self.repository, &self.who, op)
    }

    /// Runs `f` until it succeeds, fails for good, or [`MAX_TRIES`] is reached.
    async fn retry<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T, TransferError>
    where
        F: FnMut(Client, RegistryAuth) -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let mut delay = BACKOFF_START;
        let mut attempt = 1;
        loop {
            let (client, auth) = self.client().await?;
            match f(client, auth).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < MAX_TRIES && is_retryable(&e) => {
                    tracing::warn!(registry = %self.host, op, attempt, error = %chain(&e), "retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(self.err(e, op)),
            }
        }
    }

    /// The manifest `target` (tag or digest) names: bytes, digest, media type.
    pub async fn resolve(&self, target: &str) -> Result<(Vec<u8>, String, String), TransferError> {
        let r = self.reference(target);
        let op = format!("manifest {target}");
        let (bytes, digest) = self
            .retry(&op, |c, a| {
                let r = r.clone();
                async move { c.pull_manifest_raw(&r, &a, ACCEPT).await }
            })
            .await?;
        let mt = ManifestView::parse(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.into());
        Ok((bytes.to_vec(), digest, mt))
    }

    /// The digest `tag` names, or `None` when the tag does not exist.
    pub async fn tag_digest(&self, tag: &str) -> Result<Option<String>, TransferError> {
        match self.resolve(tag).await {
            Ok((_, d, _)) => Ok(Some(d)),
            Err(TransferError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a manifest under `tag_or_digest`; returns its digest.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag_or_digest: Option<&str>,
    ) -> Result<String, TransferError> {
        let digest = sha256_digest(bytes);
        let target = tag_or_digest.unwrap_or(&digest).to_string();
        let r = self.reference(&target);
        let body = Bytes::copy_from_slice(bytes);
        let ct = reqwest::header::HeaderValue::from_str(media_type).map_err(|_| {
            TransferError::Format {
                reference: target.clone(),
                reason: format!("media type `{media_type}` is not a valid header value"),
            }
        })?;
        self.retry(&format!("storing manifest {target}"), |c, _| {
            let (r, body, ct) = (r.clone(), body.clone(), ct.clone());
            async move { c.push_manifest_raw(&r, body, ct).await }
        })
        .await?;
        Ok(digest)
    }

    /// Whether the repository has the blob (HEAD).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, TransferError> {
        let r = self.reference("latest");
        self.retry(&format!("blob {digest}"), |c, _| {
            let r = r.clone();
            async move { c.blob_exists(&r, digest).await }
        })
        .await
    }

    /// Tries a cross-repository mount of `digest` from `from_repository` on
    /// the same registry; `false` when the registry declined.
    pub async fn mount(&self, from_repository: &str, digest: &str) -> bool {
        let r = self.reference("latest");
        let from = Reference::with_tag(self.host.clone(), from_repository.into(), "latest".into());
        let Ok((c, _)) = self.client().await else {
            return false;
        };
        match c.mount_blob(&r, &from, digest).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(digest, error = %chain(&e), "mount declined; uploading");
                false
            }
        }
    }

    /// Uploads `path` as blob `digest` (`size` bytes), streaming from disk.
    pub async fn push_blob_file(
        &self,
        path: &Path,
        digest: &str,
        size: u64,
    ) -> Result<(), TransferError> {
        let r = self.reference("latest");
        let mut attempt = 1;
        let mut delay = BACKOFF_START;
        loop {
            let file = std::fs::File::open(path).map_err(|source| TransferError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let stream = file_stream(file, self.opts.progress.clone());
            let (c, _) = self.client().await?;
            match c.push_blob_stream(&r, stream, digest, Some(size)).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < MAX_TRIES && is_retryable(&e) => {
                    tracing::warn!(digest, attempt, error = %chain(&e), "upload failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                    // An upload cut after the registry committed it is done.
                    if self.has_blob(digest).await.unwrap_or(false) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(self.err(e, &format!("uploading blob {digest}"))),
            }
        }
    }

    /// Uploads small bytes as a blob.
    pub async fn push_blob_bytes(&self, data: &[u8]) -> Result<String, TransferError> {
        let digest = sha256_digest(data);
        let r = self.reference("latest");
        let data = Bytes::copy_from_slice(data);
        self.retry(&format!("uploading blob {digest}"), |c, _| {
            let (r, data, d) = (r.clone(), data.clone(), digest.clone());
            async move { c.push_blob(&r, data, &d).await }
        })
        .await?;
        Ok(digest)
    }

    /// Downloads blob `digest` into `file` (truncated first), resuming after
    /// dropped connections, and checks size and digest.
    pub async fn fetch_blob_to_file(
        &self,
        digest: &str,
        size: u64,
        file: &std::fs::File,
    ) -> Result<(), TransferError> {
        let mut sink = FileSink::new(file);
        sink.reset().map_err(|source| TransferError::Io {
            path: PathBuf::from(format!("<temp file for {digest}>")),
            source,
        })?;
        self.fetch_blob(digest, size, &mut sink).await?;
        sink.finish().map_err(|source| TransferError::Io {
            path: PathBuf::from(format!("<temp file for {digest}>")),
            source,
        })?;
        Ok(())
    }

    /// Downloads a small blob into memory, checked against its digest.
    pub async fn fetch_blob_bytes(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, TransferError> {
        let mut v = Vec::with_capacity(size as usize);
        self.fetch_blob(digest, size, &mut v).await?;
        Ok(v)
    }

    async fn fetch_blob(
        &self,
        digest: &str,
        size: u64,
        sink: &mut dyn BlobSink,
    ) -> Result<(), TransferError> {
        let r = self.reference("latest");
        let desc = OciDescriptor {
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let io_err = |source| TransferError::Io {
            path: PathBuf::from(format!("<download of {digest}>")),
            source,
        };
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let mut attempt = 1;
        let mut delay = BACKOFF_START;
        let what = format!("blob {digest}");
        loop {
            let (c, _) = self.client().await?;
            let failure: OciDistributionError =
                match c.pull_blob_stream_partial(&r, &desc, written, None).await {
                    Ok(resp) => {
                        let mut stream = match resp {
                            BlobResponse::Partial(s) => s,
                            BlobResponse::Full(s) => {
                                if written > 0 {
                                    tracing::info!(digest, "registry ignored Range; starting over");
                                    sink.reset().map_err(io_err)?;
                                    hasher = Sha256::new();
                                    written = 0;
                                }
                                s
                            }
                        };
                        let mut failure = None;
                        while let Some(chunk) = stream.next().await {
                            match chunk {
                                Ok(b) => {
                                    written += b.len() as u64;
                                    if written > size {
                                        return Err(TransferError::DigestMismatch {
                                            what: what.clone(),
                                            expected: format!("{size} bytes"),
                                            actual: format!("more than {size} bytes"),
                                        });
                                    }
                                    hasher.update(&b);
                                    sink.put(&b).map_err(io_err)?;
                                    if let Some(p) = &self.opts.progress {
                                        p(b.len() as u64);
                                    }
                                }
                                Err(e) => {
                                    failure = Some(OciDistributionError::IoError(e));
                                    break;
                                }
                            }
                        }
                        match failure {
                            None if written == size => break,
                            None => OciDistributionError::IoError(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!("connection closed after {written} of {size} bytes"),
                            )),
                            Some(f) => f,
                        }
                    }
                    Err(e) => e,
                };
            if attempt < MAX_TRIES && is_retryable(&failure) {
                tracing::warn!(digest, attempt, written, error = %chain(&failure), "download interrupted; resuming");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
                continue;
            }
            return Err(self.err(failure, &what));
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(TransferError::DigestMismatch {
                what,
                expected: digest.into(),
                actual,
            });
        }
        Ok(())
    }

    /// Tags in the repository, sorted.
    pub async fn tags(&self) -> Result<Vec<String>, TransferError> {
        let r = self.reference("latest");
        let resp = self
            .retry("repository", |c, a| {
                let r = r.clone();
                async move { c.list_tags(&r, &a, None, None).await }
            })
            .await?;
        let mut t = resp.tags;
        t.sort();
        Ok(t)
    }

    /// Manifests whose subject is `digest` (referrers API or tag schema).
    pub async fn referrers(&self, digest: &str) -> Result<Vec<DescriptorView>, TransferError> {
        let r = self.reference(digest);
        let index = self
            .retry(&format!("referrers of {digest}"), |c, _| {
                let r = r.clone();
                async move { c.pull_referrers(&r, None).await }
            })
            .await?;
        let v = serde_json::to_value(&index.manifests).map_err(|e| TransferError::Format {
            reference: digest.into(),
            reason: e.to_string(),
        })?;
        let mut list: Vec<DescriptorView> =
            serde_json::from_value(v).map_err(|e| TransferError::Format {
                reference: digest.into(),
                reason: e.to_string(),
            })?;
        list.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(list)
    }

    /// Whether the registry serves the OCI 1.1 referrers API.
    async fn has_referrers_api(&self, digest: &str) -> Result<bool, TransferError> {
        let scheme = if self.opts.plain_http {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{}/v2/{}/referrers/{digest}",
            self.host, self.repository
        );
        let (c, auth) = self.client().await?;
        let r = self.reference(digest);
        // `auth` returns the bearer token for token registries (None for basic).
        let bearer = c
            .auth(&r, &auth, RegistryOperation::Pull)
            .await
            .ok()
            .flatten();
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = &self.opts.ca_file {
            if let Ok(pem) = std::fs::read(ca) {
                if let Ok(cert) = reqwest::Certificate::from_pem(&pem) {
                    builder = builder.tls_certs_merge([cert]);
                }
            }
        }
        let http = builder.build().map_err(|e| TransferError::Registry {
            registry: self.host.clone(),
            operation: "setting up the HTTP client".into(),
            reason: chain(&e),
        })?;
        let mut req = http.get(&url).header("Accept", INDEX_MEDIA_TYPE);
        req = match (&bearer, &auth) {
            (Some(t), _) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            _ => req,
        };
        let resp = req.send().await.map_err(|e| TransferError::Registry {
            registry: self.host.clone(),
            operation: "probing the referrers API".into(),
            reason: chain(&e),
        })?;
        let ok = resp.status().is_success()
            && resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(INDEX_MEDIA_TYPE));
        Ok(ok)
    }

    /// Records `referrer` (a manifest already stored, whose subject is
    /// `subject`) where clients look for referrers: nothing to do with the
    /// referrers API, else the `sha256-<hex>` tag's index.
    pub async fn add_referrer(
        &self,
        subject: &str,
        referrer: DescriptorView,
    ) -> Result<(), TransferError> {
        if self.has_referrers_api(subject).await? {
            return Ok(());
        }
        let tag = subject.replace(':', "-");
        let mut manifests = match self.resolve(&tag).await {
            Ok((bytes, _, _)) => ManifestView::parse(&bytes)
                .map(|m| m.manifests)
                .unwrap_or_default(),
            Err(TransferError::NotFound { .. }) => vec![],
            Err(e) => return Err(e),
        };
        if manifests.iter().any(|m| m.digest == referrer.digest) {
            return Ok(());
        }
        manifests.push(referrer);
        manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        self.put_manifest(&canonical_json(&index), INDEX_MEDIA_TYPE, Some(&tag))
            .await?;
        Ok(())
    }
}

/// A file as a stream of 1 MiB chunks for an upload body.
fn file_stream(
    file: std::fs::File,
    progress: Option<ProgressFn>,
) -> impl futures_util::Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::unfold(Some(file), move |state| {
        let progress = progress.clone();
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; UPLOAD_CHUNK];
            // Reads come from the page cache or a local disk; short enough
            // to do on the runtime thread.
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(p) = &progress {
                        p(n as u64);
                    }
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
            }
        }
    })
}
