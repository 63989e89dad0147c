//! Registry credentials: anonymous, docker `config.json` (inline `auths`,
//! `credHelpers`, `credsStore`), and Amazon ECR tokens from
//! `GetAuthorizationToken` through the standard AWS credential chain.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `***`,
//! so they cannot reach logs, error messages or `--json` output by accident.
//! Limits: docker `identitytoken` (OAuth refresh tokens) is not supported;
//! such entries are treated as anonymous with a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Deserialize;

/// A secret string: prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to authenticate to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// User name and password (or ECR's `AWS` + token); used for basic auth
    /// or to obtain a bearer token, whichever the registry asks for.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
}

impl Credentials {
    /// The oci-client form.
    pub fn to_registry_auth(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Credentials::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => oci_client::secrets::RegistryAuth::Basic(
                username.clone(),
                password.expose().to_string(),
            ),
        }
    }
}

/// Finding or fetching credentials failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The docker config file could not be read or parsed.
    #[error("reading docker config {path}: {reason}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} for {registry}: {reason}")]
    Helper {
        /// Helper name.
        helper: String,
        /// Registry host.
        registry: String,
        /// What went wrong (never the secret).
        reason: String,
    },
    /// An ECR API call failed.
    #[error("ECR {operation} ({region}): {reason}")]
    Ecr {
        /// The API operation.
        operation: &'static str,
        /// Region used.
        region: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `https://host/v1/` → `host`: docker writes keys in several forms.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `registry` (`host[:port]`) from the docker config, or
/// anonymous when the file or an entry is missing.
pub fn docker_credentials(registry: &str) -> Result<Credentials, AuthError> {
    let Some(path) = docker_config_path() else {
        return Ok(Credentials::Anonymous);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::Anonymous),
        Err(e) => {
            return Err(AuthError::DockerConfig {
                path,
                reason: e.to_string(),
            });
        }
    };
    let cfg: DockerConfig = serde_json::from_str(&text).map_err(|e| AuthError::DockerConfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(helper) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize_key(k) == registry)
        .map(|(_, v)| v.clone())
    {
        return run_helper(&helper, registry);
    }
    if let Some((_, entry)) = cfg.auths.iter().find(|(k, _)| normalize_key(k) == registry) {
        if let Some(b64) = &entry.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AuthError::DockerConfig {
                    path: path.clone(),
                    reason: format!("auths.{registry}.auth is not base64 of `user:password`"),
                })?;
            let Some((user, pass)) = decoded.split_once(':') else {
                return Err(AuthError::DockerConfig {
                    path,
                    reason: format!("auths.{registry}.auth does not decode to `user:password`"),
                });
            };
            return Ok(Credentials::Basic {
                username: user.to_string(),
                password: Secret::new(pass),
            });
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Credentials::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            });
        }
        if entry.identitytoken.is_some() {
            tracing::warn!(
                registry,
                "docker config identitytoken is not supported; anonymous"
            );
        }
    }
    if let Some(store) = cfg.creds_store {
        return run_helper(&store, registry);
    }
    Ok(Credentials::Anonymous)
}

/// Runs `docker-credential-<helper> get` with the registry on stdin.
fn run_helper(helper: &str, registry: &str) -> Result<Credentials, AuthError> {
    let err = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(registry.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The helper protocol's "not found" answer means: no credentials.
        if msg.contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        return Err(err(format!("exited with {}: {msg}", out.status)));
    }
    #[derive(Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let parsed: HelperOut =
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("unreadable answer: {e}")))?;
    Ok(Credentials::Basic {
        username: parsed.username,
        password: Secret::new(parsed.secret),
    })
}

/// How to reach ECR's control plane.
#[derive(Clone, Debug, Default)]
pub struct EcrOptions {
    /// Treat the registry as ECR even if its host name is not an ECR one.
    pub force: bool,
    /// Endpoint override (e.g. a moto server); env `VMIMAGE_ECR_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Registry id (AWS account); taken from the host name when absent.
    pub registry_id: Option<String>,
    /// Region; taken from the host name, else the AWS config chain.
    pub region: Option<String>,
    /// Create a missing repository (tag immutability IMMUTABLE, scan on push).
    pub create_repository: bool,
}

/// An ECR token: credentials plus when they stop working.
#[derive(Clone, Debug)]
pub struct EcrToken {
    /// `AWS` and the password.
    pub credentials: Credentials,
    /// Expiry reported by ECR (12 h after issue).
    pub expires_at: SystemTime,
}

impl EcrToken {
    /// Whether to fetch a new token: within 15 minutes of expiry, so a
    /// transfer in flight does not outlive it.
    pub fn needs_refresh(&self) -> bool {
        SystemTime::now() + Duration::from_secs(15 * 60) >= self.expires_at
    }
}

async fn ecr_client(region: Option<&str>, endpoint: Option<&str>) -> aws_sdk_ecr::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    // Without a region from the host name or flag, the AWS chain decides
    // (AWS_REGION, profile).
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let shared = loader.load().await;
    let mut b = aws_sdk_ecr::config::Builder::from(&shared);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    aws_sdk_ecr::Client::from_conf(b.build())
}

/// Fetches a registry token with `GetAuthorizationToken`.
pub async fn ecr_token(
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
) -> Result<EcrToken, AuthError> {
    let err = |reason: String| AuthError::Ecr {
        operation: "GetAuthorizationToken",
        region: region.unwrap_or("default region").to_string(),
        reason,
    };
    let client = ecr_client(region, endpoint).await;
    let mut req = client.get_authorization_token();
    if let Some(id) = registry_id {
        #[allow(deprecated)]
        {
            req = req.registry_ids(id);
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|e| err(aws_sdk_ecr::error::DisplayErrorContext(e).to_string()))?;
    let data = resp
        .authorization_data()
        .first()
        .ok_or_else(|| err("no authorizationData in the answer".into()))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| err("no authorizationToken in the answer".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err("authorizationToken is not base64 text".into()))?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(|| err("authorizationToken does not decode to `AWS:<password>`".into()))?;
    let twelve_hours = SystemTime::now() + Duration::from_secs(12 * 3600);
    let expires_at = match data
        .expires_at()
        .and_then(|t| SystemTime::try_from(*t).ok())
    {
        Some(t) if t > SystemTime::now() => t,
        // Already expired on arrival (a skewed clock, or a stand-in such as
        // moto that reports a fixed past date): use ECR's documented 12 h
        // rather than renewing before every request.
        Some(_) => {
            tracing::warn!("ECR token reports a past expiry; assuming 12 h");
            twelve_hours
        }
        None => twelve_hours,
    };
    Ok(EcrToken {
        credentials: Credentials::Basic {
            username: user.to_string(),
            password: Secret::new(pass),
        },
        expires_at,
    })
}

/// Creates `repository` with immutable tags and scan-on-push; an existing
/// repository is left as it is. Returns whether it was created.
pub async fn ecr_create_repository(
    region: Option<&str>,
    endpoint: Option<&str>,
    registry_id: Option<&str>,
    repository: &str,
) -> Result<bool, AuthError> {
    use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
    let client = ecr_client(region, endpoint).await;
    let mut req = client
        .create_repository()
        .repository_name(repository)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        );
    if let Some(id) = registry_id {
        req = req.registry_id(id);
    }
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_already_exists_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(AuthError::Ecr {
            operation: "CreateRepository",
            region: region.unwrap_or("default region").to_string(),
            reason: aws_sdk_ecr::error::DisplayErrorContext(e).to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_secret_never_prints() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "***");
    }

    #[test]
    fn test_ecr_token_is_renewed_fifteen_minutes_before_expiry() {
        let token = |left: Duration| EcrToken {
            credentials: Credentials::Basic {
                username: "AWS".into(),
                password: Secret::new("p"),
            },
            expires_at: SystemTime::now() + left,
        };
        assert!(!token(Duration::from_secs(12 * 3600)).needs_refresh());
        assert!(!token(Duration::from_secs(20 * 60)).needs_refresh());
        assert!(token(Duration::from_secs(10 * 60)).needs_refresh());
        assert!(token(Duration::ZERO).needs_refresh());
    }

    #[test]
    fn test_docker_config_keys_are_normalised() {
        assert_eq!(
            normalize_key("https://reg.example:5000/v1/"),
            "reg.example:5000"
        );
        assert_eq!(normalize_key("reg.example"), "reg.example");
    }
}
