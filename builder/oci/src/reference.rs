//! Where an artifact lives: the textual references vmimage accepts and their
//! parsed form.
//!
//! Two kinds exist: `oci:DIR[:TAG|@DIGEST]`, an OCI image layout on disk, and
//! `REGISTRY/REPO[:TAG|@DIGEST]`, a repository in a registry reached over
//! HTTPS (HTTP with `--plain-http`). The registry part must name a host
//! (`localhost`, a name containing a dot, or one with a port): unlike docker,
//! vmimage never guesses Docker Hub. Amazon ECR hosts
//! (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`) are recognised so that their
//! credentials come from AWS.

use std::fmt;
use std::path::PathBuf;

/// A reference that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed reference {input:?}: expected {expected}")]
pub struct ReferenceError {
    /// The text given.
    pub input: String,
    /// What a valid reference looks like at the point parsing failed.
    pub expected: String,
}

/// Which version of an artifact a reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A tag (mutable name).
    Tag(String),
    /// A manifest digest, `sha256:<64 hex>`.
    Digest(String),
    /// Nothing given: the whole repository (for `tags`, `release list`), or
    /// `latest` where one manifest is needed.
    None,
}

impl Target {
    /// The tag or digest, `latest` when none was given.
    pub fn as_str(&self) -> &str {
        match self {
            Target::Tag(t) => t,
            Target::Digest(d) => d,
            Target::None => "latest",
        }
    }
}

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// Tag or digest.
        target: Target,
    },
    /// A repository in a registry.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// Repository path, e.g. `team/images/web`.
        repository: String,
        /// Tag or digest.
        target: Target,
    },
}

/// An Amazon ECR registry host, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrHost {
    /// The 12-digit AWS account (the registry id).
    pub account: String,
    /// The AWS region.
    pub region: String,
}

impl ImageRef {
    /// Parses `oci:DIR[:TAG|@DIGEST]` or `REGISTRY/REPO[:TAG|@DIGEST]`.
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        let err = |expected: &str| ReferenceError {
            input: input.to_string(),
            expected: expected.to_string(),
        };
        if let Some(rest) = input.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(err("a directory after `oci:` (oci:DIR[:TAG|@DIGEST])"));
            }
            // The directory may contain ':' only if a tag follows; the last
            // component decides: `@sha256:...` or `:TAG` after the last '/'.
            let (dir, target) = if let Some((dir, digest)) = rest.rsplit_once('@') {
                (
                    dir,
                    Target::Digest(parse_digest(digest).map_err(|e| err(&e))?),
                )
            } else {
                let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
                match rest[last_slash..].rfind(':') {
                    Some(i) => {
                        let tag = &rest[last_slash + i + 1..];
                        check_tag(tag).map_err(|e| err(&e))?;
                        (&rest[..last_slash + i], Target::Tag(tag.to_string()))
                    }
                    None => (rest, Target::None),
                }
            };
            if dir.is_empty() {
                return Err(err("a directory after `oci:` (oci:DIR[:TAG|@DIGEST])"));
            }
            return Ok(ImageRef::Layout {
                dir: PathBuf::from(dir),
                target,
            });
        }
        if input.contains("://") {
            return Err(err(
                "REGISTRY/REPO[:TAG|@DIGEST] without a URL scheme (use --plain-http for HTTP)",
            ));
        }
        let (name, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(|e| err(&e))?)),
            None => (input, None),
        };
        let Some((registry, path)) = name.split_once('/') else {
            return Err(err(
                "REGISTRY/REPO[:TAG|@DIGEST] (a registry host, then a repository) or oci:DIR[:TAG]",
            ));
        };
        if !(registry == "localhost" || registry.contains('.') || registry.contains(':')) {
            return Err(err(&format!(
                "a registry host before the first '/' (`{registry}` is not one: use a name with a dot, a port, or localhost)"
            )));
        }
        check_host(registry).map_err(|e| err(&e))?;
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].rfind(':') {
            Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
            None => (path, None),
        };
        check_repository(repository).map_err(|e| err(&e))?;
        let target = match (tag, digest) {
            (_, Some(d)) => Target::Digest(d),
            (Some(t), None) => {
                check_tag(t).map_err(|e| err(&e))?;
                Target::Tag(t.to_string())
            }
            (None, None) => Target::None,
        };
        Ok(ImageRef::Registry {
            registry: registry.to_string(),
            repository: repository.to_string(),
            target,
        })
    }

    /// The tag or digest part.
    pub fn target(&self) -> &Target {
        match self {
            ImageRef::Layout { target, .. } | ImageRef::Registry { target, .. } => target,
        }
    }

    /// The same repository with another target.
    pub fn with_target(&self, target: Target) -> ImageRef {
        let mut r = self.clone();
        match &mut r {
            ImageRef::Layout { target: t, .. } | ImageRef::Registry { target: t, .. } => {
                *t = target
            }
        }
        r
    }

    /// The ECR account and region when the registry is an ECR host.
    pub fn ecr_host(&self) -> Option<EcrHost> {
        match self {
            ImageRef::Registry { registry, .. } => parse_ecr_host(registry),
            ImageRef::Layout { .. } => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = |t: &Target| match t {
            Target::Tag(t) => format!(":{t}"),
            Target::Digest(d) => format!("@{d}"),
            Target::None => String::new(),
        };
        match self {
            ImageRef::Layout { dir, target } => {
                write!(f, "oci:{}{}", dir.display(), suffix(target))
            }
            ImageRef::Registry {
                registry,
                repository,
                target,
            } => write!(f, "{registry}/{repository}{}", suffix(target)),
        }
    }
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com` (also `.com.cn`, and `dkr-ecr`
/// dual-stack names) → account and region.
pub fn parse_ecr_host(host: &str) -> Option<EcrHost> {
    let host = host.split(':').next()?;
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 6 || parts[1] != "dkr" || parts[2] != "ecr" || parts[4] != "amazonaws" {
        return None;
    }
    let account = parts[0];
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(EcrHost {
        account: account.to_string(),
        region: parts[3].to_string(),
    })
}

/// Checks `sha256:<64 lowercase hex>`; returns it.
pub fn parse_digest(d: &str) -> Result<String, String> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(format!(
            "a digest `sha256:<64 hex digits>` after '@', got `{d}`"
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "a digest `sha256:<64 hex digits>` after '@', got `{d}`"
        ));
    }
    Ok(d.to_string())
}

/// OCI distribution tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a tag of letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-'), got `{tag}`"
        ))
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(format!("a numeric port after the registry host, got `{p}`"));
        }
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(format!("a registry host name, got `{host}`"));
    }
    Ok(())
}

/// Repository path components: lowercase alphanumerics separated by `.`,
/// `_`, `__`, `-`, joined by `/`.
fn check_repository(repo: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "a repository of lowercase letters, digits and separators ('.', '_', '-', '/'), got `{repo}`"
        )
    };
    if repo.is_empty() {
        return Err(bad());
    }
    for comp in repo.split('/') {
        let b = comp.as_bytes();
        if b.is_empty()
            || !b[0].is_ascii_alphanumeric()
            || !b[b.len() - 1].is_ascii_alphanumeric()
            || !b.iter().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
        {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn test_registry_reference_with_port_and_tag() {
        let r = ImageRef::parse("127.0.0.1:5000/team/web:1.2.3").unwrap();
        assert_eq!(
            r,
            ImageRef::Registry {
                registry: "127.0.0.1:5000".into(),
                repository: "team/web".into(),
                target: Target::Tag("1.2.3".into())
            }
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/web:1.2.3");
    }

    #[test]
    fn test_registry_reference_with_digest() {
        let r = ImageRef::parse(&format!("reg.example/web@{D}")).unwrap();
        assert_eq!(r.target(), &Target::Digest(D.into()));
    }

    #[test]
    fn test_layout_reference_forms() {
        assert_eq!(
            ImageRef::parse("oci:out/oci:v1").unwrap(),
            ImageRef::Layout {
                dir: "out/oci".into(),
                target: Target::Tag("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/x").unwrap().target(),
            &Target::None
        );
        assert_eq!(
            ImageRef::parse(&format!("oci:/tmp/x@{D}"))
                .unwrap()
                .target(),
            &Target::Digest(D.into())
        );
    }

    #[test]
    fn test_malformed_references_say_what_was_expected() {
        for bad in [
            "web:latest",
            "oci:",
            "http://reg.example/web",
            "reg.example/Web",
            "reg.example/web:-x",
            "reg.example/web@sha256:abc",
            "reg.example:port/web",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed reference"), "{bad}: {e}");
            assert!(e.contains("expected"), "{bad}: {e}");
        }
    }

    #[test]
    fn test_ecr_hosts_are_recognised() {
        let r = ImageRef::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1").unwrap();
        assert_eq!(
            r.ecr_host(),
            Some(EcrHost {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            })
        );
        assert_eq!(parse_ecr_host("reg.example"), None);
        assert_eq!(parse_ecr_host("12.dkr.ecr.x.amazonaws.com"), None);
    }
}
