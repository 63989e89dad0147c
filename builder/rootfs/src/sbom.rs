//! An SPDX 2.3 JSON software bill of materials of the installed packages.
//!
//! One SPDX package per installed `.deb`: name, version, architecture, a purl
//! (`pkg:deb/<distro>/<name>@<version>?arch=<arch>`), the `.deb`'s SHA256, and the declared
//! license when `/usr/share/doc/<pkg>/copyright` is a machine-readable (DEP-5) file: the
//! most common `License:` name in it (the first on ties), mapped to its SPDX identifier when
//! we know it, otherwise recorded as a `LicenseRef-`. The document is deterministic: no
//! clock, no random UUID; its namespace is derived from a hash of its package list and
//! `created` is `SOURCE_DATE_EPOCH`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::plan::PlannedPackage;

/// DEP-5 short names whose SPDX identifier differs, and a few that are the same.
const SPDX_NAMES: &[(&str, &str)] = &[
    ("GPL-1+", "GPL-1.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-3", "GPL-3.0-only"),
    ("GPL-3+", "GPL-3.0-or-later"),
    ("LGPL-2", "LGPL-2.0-only"),
    ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("LGPL-3+", "LGPL-3.0-or-later"),
    ("Apache-2.0", "Apache-2.0"),
    ("MIT", "MIT"),
    ("Expat", "MIT"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"),
    ("ISC", "ISC"),
    ("Zlib", "Zlib"),
    ("public-domain", "LicenseRef-public-domain"),
    ("MPL-2.0", "MPL-2.0"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("PSF-2", "Python-2.0"),
    ("curl", "curl"),
];

/// The declared license of a DEP-5 copyright file, as its DEP-5 short name.
pub fn dep5_license(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    if !first.starts_with("Format:") {
        return None;
    }
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // name -> (count, first seen)
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.strip_prefix("License:") {
            let name = v.split_whitespace().next()?;
            let e = counts.entry(name).or_insert((0, i));
            e.0 += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .map(|(n, _)| n.to_string())
}

/// An SPDX license identifier (or `LicenseRef-`) for a DEP-5 short name.
pub fn spdx_license(dep5: &str) -> String {
    if let Some((_, id)) = SPDX_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(dep5))
    {
        return id.to_string();
    }
    format!("LicenseRef-{}", spdx_id_chars(dep5))
}

fn spdx_id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Percent-encodes a purl name or version segment (`:` of an epoch and `+` become `%3A`,
/// `%2B`; unreserved characters stay).
fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds the SPDX document for `packages` installed in `root`.
pub fn spdx(
    image_name: &str,
    distro: &str,
    packages: &[PlannedPackage],
    root: &Path,
    source_date_epoch: i64,
) -> Value {
    let mut ids_hash = Sha256::new();
    let mut pkgs = Vec::new();
    let mut rels = Vec::new();
    let mut refs = BTreeMap::new();
    for p in packages {
        ids_hash.update(format!(
            "{} {} {} {}\n",
            p.name, p.version, p.architecture, p.sha256
        ));
        let id = format!(
            "SPDXRef-Package-deb-{}-{}",
            spdx_id_chars(&p.name),
            spdx_id_chars(&p.architecture)
        );
        let license =
            std::fs::read_to_string(root.join("usr/share/doc").join(&p.name).join("copyright"))
                .ok()
                .and_then(|t| dep5_license(&t));
        let declared = match &license {
            Some(l) => {
                let id = spdx_license(l);
                if id.starts_with("LicenseRef-") {
                    refs.insert(id.clone(), l.clone());
                }
                id
            }
            None => "NOASSERTION".to_string(),
        };
        pkgs.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": p.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!(
                    "pkg:deb/{distro}/{}@{}?arch={}",
                    purl_escape(&p.name), purl_escape(&p.version), p.architecture
                ),
            }],
        }));
        rels.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    let digest = hex::encode(ids_hash.finalize());
    let extracted: Vec<Value> = refs
        .into_iter()
        .map(|(id, name)| {
            json!({
                "licenseId": id,
                "name": name,
                "extractedText": format!("See /usr/share/doc/<package>/copyright (DEP-5 license name {name:?})."),
            })
        })
        .collect();
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": format!("https://vmimage.invalid/spdx/{image_name}/{digest}"),
        "creationInfo": {
            "created": rfc3339(source_date_epoch),
            "creators": [format!("Tool: vmimage-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": pkgs,
        "relationships": rels,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    doc
}

/// `YYYY-MM-DDThh:mm:ssZ` of Unix seconds (proleptic Gregorian, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn test_dep5_license_takes_the_most_common() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
                    Files: *\nLicense: GPL-2+\n\nFiles: a\nLicense: BSD-3-clause\n\nFiles: b\nLicense: GPL-2+\n\n\
                    License: GPL-2+\n On Debian systems...\n";
        assert_eq!(dep5_license(text).as_deref(), Some("GPL-2+"));
        assert_eq!(spdx_license("GPL-2+"), "GPL-2.0-or-later");
        assert_eq!(spdx_license("Sun RPC"), "LicenseRef-Sun-RPC");
        assert_eq!(dep5_license("This is free software.\nLicense: GPL\n"), None);
    }

    #[test]
    fn test_spdx_is_deterministic_with_purls() {
        let p = PlannedPackage {
            name: "libstdc++6".into(),
            version: "1:12.2.0-14".into(),
            architecture: "amd64".into(),
            repository: "http://m.invalid/debian".into(),
            suite: "bookworm".into(),
            filename: "pool/x.deb".into(),
            size: 1,
            sha256: "00".repeat(32),
        };
        let root = tempfile::tempdir().unwrap();
        let a = spdx(
            "img",
            "debian",
            std::slice::from_ref(&p),
            root.path(),
            86_400,
        );
        let b = spdx("img", "debian", &[p], root.path(), 86_400);
        assert_eq!(a, b);
        assert_eq!(a["creationInfo"]["created"], "1970-01-02T00:00:00Z");
        let purl = a["packages"][0]["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap();
        assert_eq!(
            purl,
            "pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14?arch=amd64"
        );
        assert_eq!(
            a["packages"][0]["SPDXID"],
            "SPDXRef-Package-deb-libstdc--6-amd64"
        );
    }
}
