//! Kernel source tarballs: downloading one (a blocking HTTP GET into the
//! cache, verified by sha256 before it is kept), verifying a local one, and
//! unpacking it once per sha256 under `<cache>/kernel/src/<sha256>`.
//!
//! Unpacking writes to a temporary directory and renames it into place, so
//! a directory named after a sha256 is always a complete tree; two
//! processes unpacking the same tarball race harmlessly (the loser deletes
//! its copy). Tarballs may be plain or xz, gzip, bzip2 or zstd compressed.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::recipe::KernelSource;

/// Getting the kernel source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The local tarball does not exist.
    #[error("kernel source {path} does not exist{hint}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// How to get it, if known.
        hint: String,
    },
    /// The download failed.
    #[error("downloading {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The tarball is not the pinned one.
    #[error("sha256 mismatch for {what}: expected {expected}, actual {actual}{hint}")]
    Sha256Mismatch {
        /// The file or URL.
        what: String,
        /// The recipe's sha256.
        expected: String,
        /// The file's sha256.
        actual: String,
        /// What probably happened.
        hint: String,
    },
    /// The archive could not be unpacked or is not a kernel tree.
    #[error("unpacking {path}: {message}")]
    Unpack {
        /// The tarball.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, SourceError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The Debian package that installs `path`, for `/usr/src/linux-source-X.tar.*`.
fn debian_package_of(path: &Path) -> Option<String> {
    if path.parent() != Some(Path::new("/usr/src")) {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let stem = name.split(".tar").next()?;
    stem.starts_with("linux-source-").then(|| stem.to_string())
}

/// `dpkg-query`'s idea of the installed version of `package`.
fn installed_version(package: &str) -> Option<String> {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// Returns the path of a verified tarball for `source`: the local file
/// (hashed every time: cheap next to a build, and it catches a package
/// upgrade), or the cached download (fetched first if missing).
pub fn fetch(source: &KernelSource, cache: &Path) -> Result<PathBuf, SourceError> {
    match source {
        KernelSource::Path { path, sha256 } => {
            let pkg = debian_package_of(path);
            if !path.is_file() {
                let hint = pkg
                    .map(|p| format!(" (install the Debian package {p})"))
                    .unwrap_or_default();
                return Err(SourceError::Missing {
                    path: path.clone(),
                    hint,
                });
            }
            let actual = sha256_file(path)?;
            if &actual != sha256 {
                let hint = match pkg {
                    Some(p) => format!(
                        " (the Debian package {p} was probably updated{}: pin the new sha256 in the recipe after checking its changelog)",
                        installed_version(&p)
                            .map(|v| format!(" to {v}"))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                };
                return Err(SourceError::Sha256Mismatch {
                    what: path.display().to_string(),
                    expected: sha256.clone(),
                    actual,
                    hint,
                });
            }
            Ok(path.clone())
        }
        KernelSource::Url { url, sha256 } => download(url, sha256, &cache.join("kernel/download")),
    }
}

/// Downloads `url` into `dir/<sha256>-<name>` unless it is already there.
/// The body is hashed while it is written to a temporary file, which is
/// renamed into place only if the sha256 matches.
pub fn download(url: &str, sha256: &str, dir: &Path) -> Result<PathBuf, SourceError> {
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("source.tar");
    let dest = dir.join(format!("{sha256}-{name}"));
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    tracing::info!("downloading {url}");
    let dl_err = |message: String| SourceError::Download {
        url: url.to_string(),
        message,
    };
    let response = ureq::get(url).call().map_err(|e| dl_err(e.to_string()))?;
    let mut body = response.into_body().into_reader();
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = body.read(&mut buf).map_err(|e| dl_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
    }
    let actual = hex::encode(h.finalize());
    if actual != sha256 {
        return Err(SourceError::Sha256Mismatch {
            what: url.to_string(),
            expected: sha256.to_string(),
            actual,
            hint: String::new(),
        });
    }
    tmp.persist(&dest).map_err(|e| SourceError::Io {
        path: dest.clone(),
        source: e.error,
    })?;
    Ok(dest)
}

fn decompressor<'a>(path: &Path, f: std::fs::File) -> Result<Box<dyn Read + 'a>, SourceError> {
    let mut r = BufReader::new(f);
    let mut magic = [0u8; 6];
    let n = r.read(&mut magic).map_err(io_err(path))?;
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(r);
    let m = &magic[..n];
    Ok(if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(head))
    } else if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(head))
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(head).map_err(io_err(path))?)
    } else {
        Box::new(head)
    })
}

/// Unpacks `tarball` (already verified to have `sha256`) into
/// `<cache>/kernel/src/<sha256>` unless it is there, and returns that
/// directory: the kernel tree itself (the archive's single top-level
/// directory, if it has one).
pub fn unpack(tarball: &Path, sha256: &str, cache: &Path) -> Result<PathBuf, SourceError> {
    let src_dir = cache.join("kernel/src");
    let dest = src_dir.join(sha256);
    if dest.join("Makefile").is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&src_dir).map_err(io_err(&src_dir))?;
    tracing::info!("unpacking {} into {}", tarball.display(), dest.display());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".unpack-{}-", &sha256[..12]))
        .tempdir_in(&src_dir)
        .map_err(io_err(&src_dir))?;
    let f = std::fs::File::open(tarball).map_err(io_err(tarball))?;
    let mut archive = tar::Archive::new(decompressor(tarball, f)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive
        .unpack(tmp.path())
        .map_err(|e| SourceError::Unpack {
            path: tarball.to_path_buf(),
            message: e.to_string(),
        })?;
    // The tree is the single top-level directory, or the archive root.
    let entries: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .map_err(io_err(tmp.path()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let root = match entries.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => tmp.path().to_path_buf(),
    };
    if !root.join("Makefile").is_file() || !root.join("Kconfig").is_file() {
        return Err(SourceError::Unpack {
            path: tarball.to_path_buf(),
            message: "no kernel tree (Makefile and Kconfig) at the top of the archive".into(),
        });
    }
    match std::fs::rename(&root, &dest) {
        Ok(()) => {}
        // Another process finished first: its tree is as good as ours.
        Err(_) if dest.join("Makefile").is_file() => {}
        Err(e) => return Err(io_err(&dest)(e)),
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_tarball(dir: &Path) -> PathBuf {
        let tree = dir.join("linux-x");
        std::fs::create_dir_all(tree.join("scripts")).unwrap();
        std::fs::write(tree.join("Makefile"), "all:\n").unwrap();
        std::fs::write(tree.join("Kconfig"), "config A\n\tbool \"a\"\n").unwrap();
        std::fs::write(tree.join("scripts/x.sh"), "#!/bin/sh\n").unwrap();
        let tarball = dir.join("linux-x.tar.xz");
        let status = std::process::Command::new("tar")
            .args(["-cJf"])
            .arg(&tarball)
            .arg("-C")
            .arg(dir)
            .arg("linux-x")
            .status()
            .unwrap();
        assert!(status.success());
        tarball
    }

    #[test]
    fn test_fetch_path_verifies_sha256_and_names_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = make_tarball(dir.path());
        let sha = sha256_file(&tarball).unwrap();
        let src = KernelSource::Path {
            path: tarball.clone(),
            sha256: sha.clone(),
        };
        assert_eq!(fetch(&src, dir.path()).unwrap(), tarball);
        let wrong = "0".repeat(64);
        let src = KernelSource::Path {
            path: tarball,
            sha256: wrong.clone(),
        };
        let err = fetch(&src, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("expected {wrong}, actual {sha}")),
            "{err}"
        );
    }

    #[test]
    fn test_debian_hint_names_the_package() {
        assert_eq!(
            debian_package_of(Path::new("/usr/src/linux-source-6.1.tar.xz")).as_deref(),
            Some("linux-source-6.1")
        );
        assert_eq!(
            debian_package_of(Path::new("/tmp/linux-source-6.1.tar.xz")),
            None
        );
        let src = KernelSource::Path {
            path: "/usr/src/linux-source-0.0-missing.tar.xz".into(),
            sha256: "0".repeat(64),
        };
        let err = fetch(&src, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("install the Debian package linux-source-0.0-missing"),
            "{err}"
        );
    }

    #[test]
    fn test_unpack_once_into_the_sha_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = make_tarball(dir.path());
        let cache = dir.path().join("cache");
        let sha = sha256_file(&tarball).unwrap();
        let tree = unpack(&tarball, &sha, &cache).unwrap();
        assert_eq!(tree, cache.join("kernel/src").join(&sha));
        assert!(tree.join("scripts/x.sh").is_file());
        // The second call finds it and does not read the tarball.
        std::fs::remove_file(&tarball).unwrap();
        assert_eq!(unpack(&tarball, &sha, &cache).unwrap(), tree);
        let leftovers: Vec<_> = std::fs::read_dir(cache.join("kernel/src"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "temporary directories left: {leftovers:?}"
        );
    }

    #[test]
    fn test_download_from_a_local_http_server_verifies_before_keeping() {
        // A one-shot HTTP server on a free port, serving a fixed body.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = b"kernel tarball bytes".to_vec();
        let served = body.clone();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    served.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(&served).unwrap();
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/linux-9.9.tar.xz");
        let wrong = "f".repeat(64);
        let err = download(&url, &wrong, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("sha256 mismatch") && err.contains(&wrong),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing kept"
        );
        let sha = hex::encode(Sha256::digest(&body));
        let got = download(&url, &sha, dir.path()).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), body);
        assert!(got.ends_with(format!("{sha}-linux-9.9.tar.xz")));
        server.join().unwrap();
    }
}
