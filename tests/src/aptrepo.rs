//! A local, signed apt repository built by a test: `.deb`s made with `dpkg-deb --build`
//! (xz, zstd or gzip data), indices by `apt-ftparchive`, `InRelease` clearsigned with a
//! throwaway `gpg` key in a temporary `GNUPGHOME`. Served as a `file://` URL, so nothing
//! touches the network.
//!
//! Besides packages described in the test ([`DebSpec`]), [`AptRepo::add_host_package`]
//! repacks a package installed on the build host (its files from `dpkg -L`, its control
//! fields from `dpkg-query -s`, no maintainer scripts): that gives a test repository a real
//! dpkg, libc and shell so maintainer scripts can run in a chroot without the archive.
//!
//! Tools: dpkg-deb, dpkg-query, apt-ftparchive (apt-utils), gpg, xz, gzip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compression of a built package's data member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `data.tar.xz` (Debian's default).
    Xz,
    /// `data.tar.zst` (Ubuntu's default since 21.10).
    Zstd,
    /// `data.tar.gz`.
    Gzip,
}

/// A package to build.
#[derive(Debug, Clone)]
pub struct DebSpec {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Extra control fields (`Depends`, `Provides`, `Essential`, ...), in order.
    pub fields: Vec<(String, String)>,
    /// Files: absolute path, content, mode.
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Symlinks: absolute path, target.
    pub symlinks: Vec<(String, String)>,
    /// Maintainer scripts: name (`postinst`, ...), content.
    pub scripts: Vec<(String, String)>,
    /// Data compression.
    pub compression: Compression,
}

impl DebSpec {
    /// An `amd64` package with no files.
    pub fn new(name: &str, version: &str) -> DebSpec {
        DebSpec {
            name: name.into(),
            version: version.into(),
            fields: Vec::new(),
            files: Vec::new(),
            symlinks: Vec::new(),
            scripts: Vec::new(),
            compression: Compression::Xz,
        }
    }

    /// Adds a control field.
    pub fn field(mut self, k: &str, v: &str) -> DebSpec {
        self.fields.push((k.into(), v.into()));
        self
    }

    /// Adds a file.
    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>, mode: u32) -> DebSpec {
        self.files.push((path.into(), content.into(), mode));
        self
    }

    /// Adds a symlink.
    pub fn symlink(mut self, path: &str, target: &str) -> DebSpec {
        self.symlinks.push((path.into(), target.into()));
        self
    }

    /// Adds a maintainer script.
    pub fn script(mut self, name: &str, body: &str) -> DebSpec {
        self.scripts.push((name.into(), body.into()));
        self
    }

    /// Sets the data compression.
    pub fn compression(mut self, c: Compression) -> DebSpec {
        self.compression = c;
        self
    }
}

/// A repository under construction.
pub struct AptRepo {
    dir: tempfile::TempDir,
    gnupg: PathBuf,
    /// The public key (binary OpenPGP), for a recipe's `keyring`/`key`.
    pub key: PathBuf,
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e} (scripts/deps.sh installs the tools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl AptRepo {
    /// An empty repository with a fresh signing key.
    pub fn new() -> AptRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let gnupg = dir.path().join("gnupg");
        std::fs::create_dir(&gnupg).unwrap();
        run(Command::new("chmod").arg("700").arg(&gnupg));
        std::fs::create_dir_all(dir.path().join("repo/pool/main")).unwrap();
        run(Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args(["--batch", "--quiet", "--passphrase", "", "--quick-gen-key"])
            .args([
                "vmimage test repository <test@vmimage.invalid>",
                "ed25519",
                "sign",
                "never",
            ]));
        let key = dir.path().join("repo-key.gpg");
        let public = run(Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args(["--batch", "--export"]));
        assert!(!public.is_empty(), "gpg exported no key");
        std::fs::write(&key, public).unwrap();
        AptRepo { dir, gnupg, key }
    }

    /// The repository's root (holding `dists/` and `pool/`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The repository's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.root().display())
    }

    /// A scratch directory inside the fixture (removed with it).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Builds `spec` into `pool/main/` and returns the `.deb` path.
    pub fn add(&self, spec: &DebSpec) -> PathBuf {
        let build = self
            .dir
            .path()
            .join(format!("build-{}-{}", spec.name, spec.version));
        let _ = std::fs::remove_dir_all(&build);
        std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: vmimage tests <test@vmimage.invalid>\n",
            spec.name, spec.version
        );
        for (k, v) in &spec.fields {
            control.push_str(&format!("{k}: {v}\n"));
        }
        control.push_str(&format!("Description: test package {}\n", spec.name));
        std::fs::write(build.join("DEBIAN/control"), control).unwrap();
        for (name, body) in &spec.scripts {
            let p = build.join("DEBIAN").join(name);
            std::fs::write(&p, body).unwrap();
            run(Command::new("chmod").arg("755").arg(&p));
        }
        for (path, content, mode) in &spec.files {
            let p = build.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            run(Command::new("chmod").arg(format!("{mode:o}")).arg(&p));
        }
        // As debhelper does: every file under /etc is a conffile.
        let conffiles: String = spec
            .files
            .iter()
            .filter(|(p, _, _)| p.starts_with("/etc/"))
            .map(|(p, _, _)| format!("{p}\n"))
            .collect();
        if !conffiles.is_empty() {
            std::fs::write(build.join("DEBIAN/conffiles"), conffiles).unwrap();
        }
        for (path, target) in &spec.symlinks {
            let p = build.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &p).unwrap();
        }
        self.build_deb(&build, &spec.name, &spec.version, spec.compression)
    }

    fn build_deb(&self, build: &Path, name: &str, version: &str, c: Compression) -> PathBuf {
        let deb = self
            .root()
            .join("pool/main")
            .join(format!("{name}_{}_amd64.deb", version.replace(':', "%3a")));
        let z = match c {
            Compression::Xz => "-Zxz",
            Compression::Zstd => "-Zzstd",
            Compression::Gzip => "-Zgzip",
        };
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", z, "-z1", "--build"])
            .arg(build)
            .arg(&deb));
        let _ = std::fs::remove_dir_all(build);
        deb
    }

    /// Repacks the host's installed package `name` (files and control fields; no
    /// maintainer scripts) into `pool/main/`.
    pub fn add_host_package(&self, name: &str) -> PathBuf {
        let status = String::from_utf8(run(Command::new("dpkg-query").args(["-s", name]))).unwrap();
        let mut control = String::new();
        let mut conffiles = String::new();
        let mut current = String::new();
        let mut version = String::new();
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix(' ') {
                if current == "Conffiles" {
                    if let Some(path) = rest.split_whitespace().next() {
                        conffiles.push_str(path);
                        conffiles.push('\n');
                    }
                } else if !["Status", "Config-Version"].contains(&current.as_str()) {
                    control.push_str(line);
                    control.push('\n');
                }
                continue;
            }
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            current = k.to_string();
            if k == "Version" {
                version = v.trim().to_string();
            }
            if !["Status", "Conffiles", "Config-Version", "Installed-Size"].contains(&k) {
                control.push_str(line);
                control.push('\n');
            }
        }
        let build = self.dir.path().join(format!("host-{name}"));
        let _ = std::fs::remove_dir_all(&build);
        std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
        std::fs::write(build.join("DEBIAN/control"), control).unwrap();
        if !conffiles.is_empty() {
            std::fs::write(build.join("DEBIAN/conffiles"), conffiles).unwrap();
        }
        let list = String::from_utf8(run(Command::new("dpkg-query").args(["-L", name]))).unwrap();
        for path in list.lines().filter(|l| l.starts_with('/') && *l != "/.") {
            let src = Path::new(path);
            let meta = match std::fs::symlink_metadata(src) {
                Ok(m) => m,
                Err(_) => continue, // diverted or removed on the host
            };
            let dst = build.join(path.trim_start_matches('/'));
            // A merged-/usr host has /bin, /lib64... as symlinks; the package ships them as
            // directories, so keep them directories.
            let is_dir = std::fs::metadata(src).is_ok_and(|m| m.is_dir());
            if is_dir && (!meta.file_type().is_symlink() || list.contains(&format!("{path}/"))) {
                std::fs::create_dir_all(&dst).unwrap();
            } else {
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                run(Command::new("cp").arg("-a").arg(src).arg(&dst));
            }
        }
        self.build_deb(&build, name, &version, Compression::Zstd)
    }

    /// Writes `dists/<suite>/main/binary-amd64/Packages{,.xz,.gz}`, `Release` (with
    /// `extra_release` fields appended) and the signed `InRelease`.
    pub fn publish(&self, suite: &str, extra_release: &str) {
        let root = self.root();
        let bin = root.join(format!("dists/{suite}/main/binary-amd64"));
        std::fs::create_dir_all(&bin).unwrap();
        let packages = run(Command::new("apt-ftparchive")
            .current_dir(&root)
            .args(["packages", "pool"]));
        std::fs::write(bin.join("Packages"), &packages).unwrap();
        for (tool, ext) in [("xz", "xz"), ("gzip", "gz")] {
            let out = run(Command::new(tool)
                .args(["-9", "-c"])
                .arg(bin.join("Packages")));
            std::fs::write(bin.join(format!("Packages.{ext}")), out).unwrap();
        }
        self.sign_release(suite, extra_release);
    }

    /// (Re)writes `Release` and `InRelease` of `suite` from the current index files.
    pub fn sign_release(&self, suite: &str, extra_release: &str) {
        let root = self.root();
        let dists = root.join(format!("dists/{suite}"));
        let _ = std::fs::remove_file(dists.join("Release"));
        let _ = std::fs::remove_file(dists.join("InRelease"));
        let release = run(Command::new("apt-ftparchive")
            .current_dir(&root)
            .args(["-o", &format!("APT::FTPArchive::Release::Suite={suite}")])
            .args(["-o", &format!("APT::FTPArchive::Release::Codename={suite}")])
            .args(["-o", "APT::FTPArchive::Release::Architectures=amd64"])
            .args(["-o", "APT::FTPArchive::Release::Components=main"])
            .arg("release")
            .arg(format!("dists/{suite}")));
        let mut text = String::from_utf8(release).unwrap();
        if !extra_release.is_empty() {
            // Fields go before the hash lists, as apt-ftparchive orders them.
            let at = text.find("MD5Sum:").unwrap_or(text.len());
            text.insert_str(at, extra_release);
        }
        std::fs::write(dists.join("Release"), &text).unwrap();
        run(Command::new("gpg")
            .env("GNUPGHOME", &self.gnupg)
            .args([
                "--batch",
                "--yes",
                "--clearsign",
                "--digest-algo",
                "SHA512",
                "-o",
            ])
            .arg(dists.join("InRelease"))
            .arg(dists.join("Release")));
    }
}

impl Default for AptRepo {
    fn default() -> Self {
        Self::new()
    }
}
