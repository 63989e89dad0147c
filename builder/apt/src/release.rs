//! Signed `InRelease` files: OpenPGP cleartext signature check, expiry check, and the parsed
//! Release fields (suite, dates, by-hash support, the SHA256 file list).
//!
//! Only the text the signature covers is parsed (rPGP's normalised signed text), never the
//! raw file, so nothing outside the signature can smuggle fields in. A Release is refused when
//! unsigned, when no signature verifies against a key (primary or subkey) of the keyring, when
//! its `Valid-Until` lies before "now", or when its `Date` lies more than a day after "now".
//! "Now" comes from a [`Clock`], so tests and locked builds of old snapshots can fix it.
//! Limits: detached `Release.gpg` signatures are not supported; MD5/SHA1 lists are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a Release file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The keyring file could not be read or holds no usable key.
    #[error("keyring {path}: {message}")]
    Keyring {
        /// The keyring file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is not an OpenPGP cleartext-signed message.
    #[error("{url}: not a cleartext-signed InRelease: {message}")]
    Unsigned {
        /// Where the file came from.
        url: String,
        /// The parser's complaint.
        message: String,
    },
    /// No signature verified against any key of the keyring.
    #[error("{url}: no valid signature by a key in {keyring} (signed by {issuers})")]
    BadSignature {
        /// Where the file came from.
        url: String,
        /// The keyring checked against.
        keyring: String,
        /// Issuer key ids/fingerprints named by the signatures, comma-separated.
        issuers: String,
    },
    /// `Valid-Until` lies in the past.
    #[error("{url}: Release expired: Valid-Until {valid_until} is before now ({now})")]
    Expired {
        /// Where the file came from.
        url: String,
        /// The `Valid-Until` field as written.
        valid_until: String,
        /// "Now" as Unix seconds.
        now: i64,
    },
    /// `Date` lies in the future (more than a day after now).
    #[error("{url}: Release Date {date} is in the future (now {now})")]
    NotYetValid {
        /// Where the file came from.
        url: String,
        /// The `Date` field as written.
        date: String,
        /// "Now" as Unix seconds.
        now: i64,
    },
    /// The verified text is malformed or lacks a needed field.
    #[error("{url}: malformed Release: {message}")]
    Malformed {
        /// Where the file came from.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The Release does not list an index file we need.
    #[error("{url}: Release lists no {entry} (nor a compressed variant)")]
    MissingEntry {
        /// Where the Release came from.
        url: String,
        /// The index path wanted, e.g. `main/binary-amd64/Packages`.
        entry: String,
    },
}

/// Source of "now" for expiry checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The real time of the machine.
    #[default]
    System,
    /// A fixed instant in Unix seconds (tests, locked builds of frozen snapshots).
    Fixed(i64),
}

impl Clock {
    /// "Now" in Unix seconds.
    pub fn now(&self) -> i64 {
        todo!()
    }
}

/// A set of OpenPGP public keys trusted to sign Release files.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<pgp::composed::SignedPublicKey>,
    name: String,
}

impl Keyring {
    /// Loads a keyring file: binary (`.gpg`, e.g. `/usr/share/keyrings/debian-archive-keyring.gpg`)
    /// or ASCII-armored (`.asc`), one or more keys.
    pub fn load(path: &Path) -> Result<Keyring, ReleaseError> {
        let _ = path;
        todo!()
    }

    /// Parses keyring bytes (binary or armored); `name` labels it in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Keyring, ReleaseError> {
        let _ = (bytes, name);
        todo!()
    }

    /// Number of primary keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the keyring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Upper-case hex fingerprints of the primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        todo!()
    }
}

/// One entry of the Release's `SHA256` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    /// Path below `dists/<suite>/`, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA256, lowercase hex.
    pub sha256: String,
}

/// A verified Release.
#[derive(Debug, Clone)]
pub struct Release {
    /// `Origin`.
    pub origin: Option<String>,
    /// `Label`.
    pub label: Option<String>,
    /// `Suite`.
    pub suite: Option<String>,
    /// `Codename`.
    pub codename: Option<String>,
    /// `Date` as Unix seconds.
    pub date: Option<i64>,
    /// `Valid-Until` as Unix seconds.
    pub valid_until: Option<i64>,
    /// `Acquire-By-Hash: yes`.
    pub acquire_by_hash: bool,
    /// `Architectures`.
    pub architectures: Vec<String>,
    /// `Components`.
    pub components: Vec<String>,
    /// The `SHA256` list by path.
    pub sha256: BTreeMap<String, ReleaseFile>,
    /// The verified text (LF line ends).
    pub text: String,
    /// Fingerprint (upper-case hex) of the key that verified the signature.
    pub signed_by: String,
}

impl Release {
    /// Parses Release text without any signature check (the caller vouches for it);
    /// `url` names it in errors.
    pub fn parse_unverified(text: &str, url: &str) -> Result<Release, ReleaseError> {
        let _ = (text, url);
        todo!()
    }

    /// Finds the best-compressed listed variant of an index (`.xz`, then `.gz`, then
    /// uncompressed), e.g. `entry = "main/binary-amd64/Packages"`.
    pub fn find_index(&self, entry: &str) -> Option<&ReleaseFile> {
        ["xz", "gz", ""].iter().find_map(|ext| {
            let key = if ext.is_empty() {
                entry.to_string()
            } else {
                format!("{entry}.{ext}")
            };
            self.sha256.get(&key)
        })
    }
}

/// Verifies an `InRelease` file against `keyring`, checks its dates against `clock`, and
/// parses the signed text. `url` names the file in errors.
pub fn verify_inrelease(
    data: &[u8],
    keyring: &Keyring,
    clock: &Clock,
    url: &str,
) -> Result<Release, ReleaseError> {
    let _ = (data, keyring, clock, url);
    todo!()
}

#[cfg(test)]
mod tests {
    use super::*;
}
