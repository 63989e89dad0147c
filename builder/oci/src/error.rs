//! The error of moving artifacts between stores ([`TransferError`]), with
//! oci-client's errors turned into messages that name the registry, the
//! operation and, for content, the expected and actual digests.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::auth::AuthError;
use crate::layout::LayoutError;
use crate::reference::ReferenceError;

/// Pushing, pulling, copying or inspecting an artifact failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A reference did not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// An OCI layout operation failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Credentials could not be found or fetched.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The registry could not be reached.
    #[error("cannot connect to registry {registry}: {reason}")]
    Connect {
        /// `host[:port]`.
        registry: String,
        /// The cause chain.
        reason: String,
    },
    /// The registry refused the credentials (or anonymous access).
    #[error("registry {registry} refused access to {repository} ({who}): check the credentials")]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// Repository.
        repository: String,
        /// `anonymous` or `user NAME` (never the password).
        who: String,
    },
    /// A tag, manifest or blob does not exist.
    #[error("{what} not found in {location}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Registry repository or layout.
        location: String,
    },
    /// Any other registry failure.
    #[error("registry {registry}: {operation} failed: {reason}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being done.
        operation: String,
        /// The cause chain.
        reason: String,
    },
    /// Content did not match its digest (or size).
    #[error("{what}: digest mismatch: expected {expected}, actual {actual}")]
    DigestMismatch {
        /// Which blob or file.
        what: String,
        /// Expected digest (or size).
        expected: String,
        /// What the bytes gave.
        actual: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The manifest is not what vmimage expects.
    #[error("{reference}: {reason}")]
    Format {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A release rule was broken (version syntax, immutable version tag).
    #[error("{0}")]
    Release(String),
}

/// Formats an error and its sources on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Whether an oci-client error is worth retrying: dropped connections,
/// 5xx, 429 and 408.
pub fn is_retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408,
            None => !r.is_builder() && !r.is_redirect(),
        },
        OciDistributionError::IoError(_) => true,
        OciDistributionError::ServerError { code, .. } => {
            *code >= 500 || *code == 429 || *code == 408
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

/// Turns an oci-client error into a [`TransferError`] with context.
pub fn from_oci(
    e: OciDistributionError,
    registry: &str,
    repository: &str,
    who: &str,
    operation: &str,
) -> TransferError {
    let unauthorized = || TransferError::Unauthorized {
        registry: registry.into(),
        repository: repository.into(),
        who: who.into(),
    };
    let not_found = || TransferError::NotFound {
        what: operation.into(),
        location: format!("{registry}/{repository}"),
    };
    match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::ServerError { code: 401, .. } => unauthorized(),
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::RegistryError { envelope, .. } => {
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized()
            } else if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found()
            } else {
                TransferError::Registry {
                    registry: registry.into(),
                    operation: operation.into(),
                    reason: chain(&e),
                }
            }
        }
        OciDistributionError::RequestError(r) if r.status().is_some_and(|s| s.as_u16() == 401) => {
            unauthorized()
        }
        OciDistributionError::RequestError(r) if r.status().is_some_and(|s| s.as_u16() == 404) => {
            not_found()
        }
        OciDistributionError::RequestError(r) if r.is_connect() => TransferError::Connect {
            registry: registry.into(),
            reason: chain(&e),
        },
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => TransferError::DigestMismatch {
            what: operation.into(),
            expected: expected.clone(),
            actual: actual.clone(),
        },
        _ => TransferError::Registry {
            registry: registry.into(),
            operation: operation.into(),
            reason: chain(&e),
        },
    }
}
