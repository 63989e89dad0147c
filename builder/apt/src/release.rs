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

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::KeyDetails;

/// How far a Release `Date` may lie ahead of "now" before it is refused (clock skew).
pub const MAX_FUTURE_DATE_SECS: i64 = 24 * 3600;

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
    /// The Release is for another suite than the one asked for (a validly signed Release
    /// of another suite served in its place, e.g. an old one to hold back updates).
    #[error(
        "{url}: asked for suite {expected:?}, but the Release is for suite {suite:?}, codename {codename:?}"
    )]
    WrongSuite {
        /// Where the file came from.
        url: String,
        /// The suite asked for.
        expected: String,
        /// The Release's `Suite`.
        suite: String,
        /// The Release's `Codename`.
        codename: String,
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
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            Clock::Fixed(t) => *t,
        }
    }
}

/// A set of OpenPGP public keys trusted to sign Release files.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    name: String,
}

impl Keyring {
    /// Loads a keyring file: binary (`.gpg`, e.g. `/usr/share/keyrings/debian-archive-keyring.gpg`)
    /// or ASCII-armored (`.asc`), one or more keys.
    pub fn load(path: &Path) -> Result<Keyring, ReleaseError> {
        let bytes = std::fs::read(path).map_err(|e| ReleaseError::Keyring {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Keyring::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses keyring bytes (binary or armored); `name` labels it in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Keyring, ReleaseError> {
        let err = |message: String| ReleaseError::Keyring {
            path: PathBuf::from(name),
            message,
        };
        let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
        let iter = if armored {
            SignedPublicKey::from_armor_many(bytes).map(|(it, _headers)| it)
        } else {
            SignedPublicKey::from_bytes_many(bytes)
        }
        .map_err(|e| err(format!("not an OpenPGP keyring: {e}")))?;
        let mut keys = Vec::new();
        for key in iter {
            match key {
                Ok(k) => keys.push(k),
                // One unusable key (an algorithm rPGP lacks) must not hide the others.
                Err(e) => tracing::warn!(keyring = name, "skipping unreadable key: {e}"),
            }
        }
        if keys.is_empty() {
            return Err(err("no usable public key".into()));
        }
        Ok(Keyring {
            keys,
            name: name.to_string(),
        })
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
        self.keys
            .iter()
            .map(|k| format!("{:X}", k.fingerprint()))
            .collect()
    }

    /// Finds a key (primary or subkey) that verified `sig` over `text`; returns the primary
    /// key's fingerprint.
    fn verify(&self, sig: &pgp::packet::Signature, text: &[u8]) -> Option<String> {
        for key in &self.keys {
            let primary = format!("{:X}", key.fingerprint());
            if sig.verify(&key.primary_key, text).is_ok() {
                return Some(primary);
            }
            if key
                .public_subkeys
                .iter()
                .any(|sub| sig.verify(&sub.key, text).is_ok())
            {
                return Some(primary);
            }
        }
        None
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
        let malformed = |message: String| ReleaseError::Malformed {
            url: url.to_string(),
            message,
        };
        let paragraphs =
            crate::deb822::parse_paragraphs(text).map_err(|e| malformed(e.to_string()))?;
        let [p] = paragraphs.as_slice() else {
            return Err(malformed(format!(
                "expected one paragraph, found {}",
                paragraphs.len()
            )));
        };
        let date_field = |field: &str| {
            p.get(field)
                .map(|d| {
                    parse_rfc2822(d)
                        .ok_or_else(|| malformed(format!("field {field}: bad date {d:?}")))
                })
                .transpose()
        };
        let words = |field: &str| {
            p.get(field)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut sha256 = BTreeMap::new();
        for (i, line) in p.get("SHA256").unwrap_or("").lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [hash, size, path] = parts.as_slice() else {
                return Err(malformed(format!(
                    "SHA256 entry {}: expected 'hash size path', found {line:?}",
                    i
                )));
            };
            let size = size
                .parse()
                .map_err(|_| malformed(format!("SHA256 entry {path}: bad size {size:?}")))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed(format!("SHA256 entry {path}: bad hash {hash:?}")));
            }
            sha256.insert(
                path.to_string(),
                ReleaseFile {
                    path: path.to_string(),
                    size,
                    sha256: hash.to_ascii_lowercase(),
                },
            );
        }
        if sha256.is_empty() {
            return Err(malformed("no SHA256 file list".into()));
        }
        Ok(Release {
            origin: p.get("Origin").map(str::to_string),
            label: p.get("Label").map(str::to_string),
            suite: p.get("Suite").map(str::to_string),
            codename: p.get("Codename").map(str::to_string),
            date: date_field("Date")?,
            valid_until: date_field("Valid-Until")?,
            acquire_by_hash: p
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            architectures: words("Architectures"),
            components: words("Components"),
            sha256,
            text: text.to_string(),
            signed_by: String::new(),
        })
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
    let unsigned = |message: String| ReleaseError::Unsigned {
        url: url.to_string(),
        message,
    };
    let text = std::str::from_utf8(data).map_err(|e| unsigned(format!("not UTF-8: {e}")))?;
    if !text
        .trim_start()
        .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
    {
        return Err(unsigned(
            "no '-----BEGIN PGP SIGNED MESSAGE-----' header".into(),
        ));
    }
    let (msg, _headers) =
        CleartextSignedMessage::from_string(text).map_err(|e| unsigned(e.to_string()))?;
    if msg.signatures().is_empty() {
        return Err(unsigned("no signature".into()));
    }
    let signed_text = msg.signed_text();
    let mut signer = None;
    let mut issuers = Vec::new();
    for sig in msg.signatures() {
        issuers.extend(sig.issuer_fingerprint().iter().map(|f| format!("{f:X}")));
        issuers.extend(
            sig.issuer_key_id()
                .iter()
                .map(|k| k.to_string().to_ascii_uppercase()),
        );
        // SHA-1 and MD5 signatures are forgeable; apt refuses them too.
        if matches!(
            sig.hash_alg(),
            None | Some(HashAlgorithm::Md5 | HashAlgorithm::Sha1)
        ) {
            continue;
        }
        if let Some(fp) = keyring.verify(sig, signed_text.as_bytes()) {
            signer = Some(fp);
            break;
        }
    }
    let Some(signed_by) = signer else {
        issuers.dedup();
        return Err(ReleaseError::BadSignature {
            url: url.to_string(),
            keyring: keyring.name.clone(),
            issuers: if issuers.is_empty() {
                "unknown".into()
            } else {
                issuers.join(", ")
            },
        });
    };
    // Parse what the signature covers, never the raw file.
    let verified = signed_text.replace("\r\n", "\n");
    let mut release = Release::parse_unverified(&verified, url)?;
    release.signed_by = signed_by;
    check_dates(&release, clock, url)?;
    Ok(release)
}

/// Refuses an expired Release (`Valid-Until` before now) or one dated in the future.
fn check_dates(release: &Release, clock: &Clock, url: &str) -> Result<(), ReleaseError> {
    let now = clock.now();
    let field = |name: &str| {
        crate::deb822::parse_paragraphs(&release.text)
            .ok()
            .and_then(|ps| ps.first().and_then(|p| p.get(name).map(str::to_string)))
            .unwrap_or_default()
    };
    if let Some(until) = release.valid_until
        && until < now
    {
        return Err(ReleaseError::Expired {
            url: url.to_string(),
            valid_until: field("Valid-Until"),
            now,
        });
    }
    if let Some(date) = release.date
        && date > now + MAX_FUTURE_DATE_SECS
    {
        return Err(ReleaseError::NotYetValid {
            url: url.to_string(),
            date: field("Date"),
            now,
        });
    }
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parses the RFC 2822 dates of Release files, e.g. `Sat, 10 May 2025 09:24:56 UTC`
/// (zone `UTC`, `GMT`, `Z` or `+hhmm`/`-hhmm`), into Unix seconds.
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    let text = text.trim();
    // The weekday is optional and carries no information.
    let text = match text.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => text,
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year, time, zone @ ..] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| month.eq_ignore_ascii_case(m))? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (h, mi, sec) = match hms.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let offset = match zone {
        [] => 0,
        [z] if ["UTC", "GMT", "Z", "UT"]
            .iter()
            .any(|u| z.eq_ignore_ascii_case(u)) =>
        {
            0
        }
        [z] if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().ok()?;
            let mm: i64 = z[3..5].parse().ok()?;
            let off = hh * 3600 + mm * 60;
            if z.starts_with('-') { -off } else { off }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "\
Origin: Debian
Label: Debian
Suite: stable
Version: 12.11
Codename: bookworm
Date: Sat, 17 May 2025 09:24:56 UTC
Valid-Until: Sat, 24 May 2025 09:24:56 +0000
Acquire-By-Hash: yes
Architectures: all amd64 arm64
Components: main contrib
Description: Debian 12.11 Released 17 May 2025
SHA256:
 0ab3c5ee8e5e0b3b6fc4a6dc6c0fbd6a5cb5b4f1c5dbdbd3d1fa1bd1c8b9e2f0   1484322 contrib/Contents-all
 1111111111111111111111111111111111111111111111111111111111111111  8947456 main/binary-amd64/Packages
 2222222222222222222222222222222222222222222222222222222222222222  1990248 main/binary-amd64/Packages.gz
 3333333333333333333333333333333333333333333333333333333333333333  1500000 main/binary-amd64/Packages.xz
";

    #[test]
    fn test_parse_release_fields_and_sha256_list() {
        let r = Release::parse_unverified(RELEASE, "test").unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert!(r.acquire_by_hash);
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.date, Some(1747473896));
        assert_eq!(r.valid_until, Some(1747473896 + 7 * 86400));
        assert_eq!(r.sha256.len(), 4);
        let best = r.find_index("main/binary-amd64/Packages").unwrap();
        assert_eq!(
            (best.path.as_str(), best.size),
            ("main/binary-amd64/Packages.xz", 1500000)
        );
        assert!(r.find_index("main/binary-arm64/Packages").is_none());
    }

    #[test]
    fn test_parse_release_rejects_malformed_entries() {
        let bad = RELEASE.replace(" 1500000 main", " x main");
        let e = Release::parse_unverified(&bad, "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad size"), "{e}");
        let bad = RELEASE.replace("Date: Sat, 17 May", "Date: Sat, 17 Mai");
        let e = Release::parse_unverified(&bad, "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field Date: bad date"), "{e}");
        let e = Release::parse_unverified("Origin: x\n", "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no SHA256 file list"), "{e}");
    }

    #[test]
    fn test_rfc2822_dates_match_known_unix_times() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 08:55:33 UTC"),
            Some(1686387333)
        );
        assert_eq!(
            parse_rfc2822("10 Jun 2023 10:55:33 +0200"),
            Some(1686387333)
        );
        assert_eq!(
            parse_rfc2822("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951825600)
        );
        assert_eq!(parse_rfc2822("Tue, 29 Foo 2000 12:00:00 GMT"), None);
        assert_eq!(parse_rfc2822("Tue, 29 Feb 2000 25:00:00 GMT"), None);
    }

    #[test]
    fn test_expiry_uses_injected_clock() {
        let r = Release::parse_unverified(RELEASE, "u").unwrap();
        let before = Clock::Fixed(1747473896 + 86400);
        assert!(check_dates(&r, &before, "u").is_ok());
        let after = Clock::Fixed(1747473896 + 8 * 86400);
        let e = check_dates(&r, &after, "u").unwrap_err();
        assert!(matches!(e, ReleaseError::Expired { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("Valid-Until Sat, 24 May 2025 09:24:56 +0000"),
            "{e}"
        );
        let long_before = Clock::Fixed(1747473896 - 3 * 86400);
        let e = check_dates(&r, &long_before, "u").unwrap_err();
        assert!(matches!(e, ReleaseError::NotYetValid { .. }), "{e}");
    }

    #[test]
    fn test_verify_rejects_unsigned_text() {
        let keyring = Keyring::load(Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"))
            .expect("debian-archive-keyring must be installed");
        assert!(keyring.len() >= 3, "{:?}", keyring.fingerprints());
        let e = verify_inrelease(RELEASE.as_bytes(), &keyring, &Clock::System, "u").unwrap_err();
        assert!(matches!(e, ReleaseError::Unsigned { .. }), "{e}");
    }

    #[test]
    fn test_keyring_refuses_garbage() {
        let e = Keyring::from_bytes(b"not a key", "junk.gpg")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("keyring junk.gpg:"), "{e}");
    }
}
