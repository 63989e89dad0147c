//! A real, signed apt repository built in a temporary directory with Debian's own tools
//! (`dpkg-deb`, `apt-ftparchive`, `gpg`), read back through `file://` and through a small
//! HTTP server (below) that honours `Range`, logs requests and can be stopped: resolve,
//! download, verify and read the packages, then tamper with each layer and check that every
//! change is refused with a clear error and that nothing unverified stays in the cache.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vmimage_apt::{
    Cache, Clock, DebFile, Download, FetchError, Fetcher, IndexError, Keyring, ReleaseError,
    Repository, ResolveError, ResolveRequest, Universe, Variant, resolve, verify_inrelease,
};

/// Runs a tool, failing the test with its output when it fails or is missing.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (install it via scripts/deps.sh): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One package to build: control fields, files, maintainer scripts, compressor.
struct Pkg {
    name: &'static str,
    version: &'static str,
    fields: &'static [&'static str],
    files: &'static [(&'static str, &'static str)],
    scripts: &'static [&'static str],
    conffiles: &'static [&'static str],
    compress: &'static str,
}

const PACKAGES: &[Pkg] = &[
    Pkg {
        name: "base-a",
        version: "1.0",
        fields: &[
            "Essential: yes",
            "Priority: required",
            "Pre-Depends: libfoo (>= 1.0)",
        ],
        files: &[
            ("usr/bin/base-a", "#!/bin/sh\necho base\n"),
            ("etc/base-a.conf", "x=1\n"),
        ],
        scripts: &["postinst"],
        conffiles: &["/etc/base-a.conf"],
        compress: "xz",
    },
    Pkg {
        name: "libfoo",
        version: "0.9-1",
        fields: &["Priority: optional"],
        files: &[("usr/lib/libfoo.so.1", "libfoo 0.9\n")],
        scripts: &[],
        conffiles: &[],
        compress: "gzip",
    },
    Pkg {
        name: "libfoo",
        version: "1.2-1",
        fields: &["Priority: optional"],
        files: &[("usr/lib/libfoo.so.1", "libfoo 1.2\n")],
        scripts: &[],
        conffiles: &[],
        compress: "zstd",
    },
    Pkg {
        name: "app",
        version: "2.0",
        fields: &[
            "Depends: mailer-a | mail-transport-agent, libfoo (>= 1.1), virt-editor",
            "Recommends: extra",
        ],
        files: &[("usr/bin/app", "#!/bin/sh\necho app\n")],
        scripts: &["preinst", "prerm"],
        conffiles: &[],
        compress: "zstd",
    },
    Pkg {
        name: "mailer-b",
        version: "1.0",
        fields: &["Provides: mail-transport-agent"],
        files: &[("usr/sbin/sendmail", "#!/bin/sh\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
    Pkg {
        name: "ed-x",
        version: "1.0",
        fields: &["Provides: virt-editor"],
        files: &[("usr/bin/ed-x", "#!/bin/sh\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
    Pkg {
        name: "ed-y",
        version: "1.0",
        fields: &["Provides: virt-editor"],
        files: &[("usr/bin/ed-y", "#!/bin/sh\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
    Pkg {
        name: "extra",
        version: "1.0",
        fields: &[],
        files: &[("usr/share/extra", "x\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
    Pkg {
        name: "broken",
        version: "1.0",
        fields: &["Depends: libfoo (>= 5)"],
        files: &[("usr/share/broken", "x\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
    Pkg {
        name: "conflicter",
        version: "1.0",
        fields: &["Conflicts: app"],
        files: &[("usr/share/conflicter", "x\n")],
        scripts: &[],
        conffiles: &[],
        compress: "xz",
    },
];

/// A throwaway GnuPG home with one signing key.
struct Signer {
    home: PathBuf,
    fingerprint: String,
}

impl Signer {
    fn new(dir: &Path, uid: &str) -> Signer {
        let home = dir.to_path_buf();
        std::fs::create_dir_all(&home).unwrap();
        run(Command::new("gpg").arg("--homedir").arg(&home).args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]));
        let listing = run(Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--with-colons", "--list-keys"]));
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .expect("gpg lists a fingerprint")
            .to_string();
        Signer { home, fingerprint }
    }

    fn clearsign(&self, input: &Path, output: &Path) {
        run(Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(["--local-user", &self.fingerprint, "--clearsign", "-o"])
            .arg(output)
            .arg(input));
    }

    fn export(&self, output: &Path, armor: bool) {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir").arg(&self.home).arg("--batch");
        if armor {
            cmd.arg("--armor");
        }
        cmd.args(["--output"])
            .arg(output)
            .args(["--export", &self.fingerprint]);
        run(&mut cmd);
        assert!(std::fs::metadata(output).unwrap().len() > 0);
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Options for building the repository's Release.
#[derive(Default, Clone, Copy)]
struct RepoOptions {
    by_hash: bool,
    /// Replaces apt-ftparchive's `Date` (now).
    date: Option<&'static str>,
    valid_until: Option<&'static str>,
}

/// The repository on disk plus the keys around it.
struct LocalRepo {
    dir: tempfile::TempDir,
    signer: Signer,
    other: Signer,
    keyring: PathBuf,
}

impl LocalRepo {
    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn dists(&self) -> PathBuf {
        self.root().join("dists/test")
    }

    fn uri(&self) -> String {
        format!("file://{}", self.root().display())
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn repository(&self, uri: String) -> Repository {
        Repository {
            uri,
            suite: "test".into(),
            components: vec!["main".into()],
            architecture: "amd64".into(),
            keyring: self.keyring.clone(),
            allow: None,
        }
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::new(Cache::new(self.cache()))
    }

    fn build(options: RepoOptions) -> LocalRepo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let pool = root.join("pool/main");
        std::fs::create_dir_all(&pool).unwrap();
        for pkg in PACKAGES {
            let src = dir.path().join(format!("src/{}_{}", pkg.name, pkg.version));
            let debian = src.join("DEBIAN");
            std::fs::create_dir_all(&debian).unwrap();
            let mut control = format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: Test <t@test.invalid>\nSection: misc\n",
                pkg.name, pkg.version
            );
            for f in pkg.fields {
                control.push_str(f);
                control.push('\n');
            }
            control.push_str(&format!(
                "Description: test package {}\n long text\n",
                pkg.name
            ));
            std::fs::write(debian.join("control"), control).unwrap();
            for script in pkg.scripts {
                let p = debian.join(script);
                std::fs::write(&p, format!("#!/bin/sh\necho {script} {}\n", pkg.name)).unwrap();
                set_mode(&p, 0o755);
            }
            if !pkg.conffiles.is_empty() {
                std::fs::write(debian.join("conffiles"), pkg.conffiles.join("\n") + "\n").unwrap();
            }
            for (path, content) in pkg.files {
                let p = src.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, content).unwrap();
                if path.contains("bin/") {
                    set_mode(&p, 0o755);
                }
            }
            // dpkg-deb leaves md5sums to debhelper; write it the way dh_md5sums does.
            let mut sums = String::new();
            for (path, _) in pkg.files {
                let out = run(Command::new("md5sum").current_dir(&src).arg(path));
                sums.push_str(&out);
            }
            std::fs::write(debian.join("md5sums"), sums).unwrap();
            let deb = pool.join(format!("{}_{}_amd64.deb", pkg.name, pkg.version));
            run(Command::new("dpkg-deb")
                .args([
                    "--root-owner-group",
                    &format!("-Z{}", pkg.compress),
                    "--build",
                ])
                .arg(&src)
                .arg(&deb));
        }
        let signer = Signer::new(
            &dir.path().join("gnupg"),
            "Test Archive <archive@test.invalid>",
        );
        let other = Signer::new(
            &dir.path().join("gnupg-other"),
            "Intruder <evil@test.invalid>",
        );
        let keyring = dir.path().join("archive-keyring.gpg");
        signer.export(&keyring, false);
        let repo = LocalRepo {
            dir,
            signer,
            other,
            keyring,
        };
        repo.write_indices(options);
        repo
    }

    /// Writes Packages{,.xz,.gz}, Release and InRelease for the current pool.
    fn write_indices(&self, options: RepoOptions) {
        let bin = self.dists().join("main/binary-amd64");
        std::fs::create_dir_all(&bin).unwrap();
        let packages = run(Command::new("apt-ftparchive")
            .current_dir(self.root())
            .args(["packages", "pool"]));
        std::fs::write(bin.join("Packages"), &packages).unwrap();
        self.compress_packages();
        self.write_release(options);
    }

    fn compress_packages(&self) {
        let bin = self.dists().join("main/binary-amd64");
        run(Command::new("xz").args(["-kf"]).arg(bin.join("Packages")));
        run(Command::new("gzip")
            .args(["-kfn"])
            .arg(bin.join("Packages")));
    }

    fn write_release(&self, options: RepoOptions) {
        let dists = self.dists();
        let _ = std::fs::remove_dir_all(dists.join("main/binary-amd64/by-hash"));
        let mut release = run(Command::new("apt-ftparchive").current_dir(&dists).args([
            "-o",
            "APT::FTPArchive::Release::Suite=test",
            "-o",
            "APT::FTPArchive::Release::Codename=test",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "release",
            ".",
        ]));
        let mut extra = String::new();
        if options.by_hash {
            extra.push_str("Acquire-By-Hash: yes\n");
            let by_hash = dists.join("main/binary-amd64/by-hash/SHA256");
            std::fs::create_dir_all(&by_hash).unwrap();
            for name in ["Packages", "Packages.xz", "Packages.gz"] {
                let bytes = std::fs::read(dists.join("main/binary-amd64").join(name)).unwrap();
                let hash =
                    vmimage_apt::fetch::sha256_file(&dists.join("main/binary-amd64").join(name))
                        .unwrap();
                std::fs::write(by_hash.join(hash), bytes).unwrap();
            }
        }
        if let Some(v) = options.valid_until {
            extra.push_str(&format!("Valid-Until: {v}\n"));
        }
        if let Some(date) = options.date {
            let start = release.find("Date: ").expect("Release has Date");
            let end = start + release[start..].find('\n').unwrap();
            release.replace_range(start..end, &format!("Date: {date}"));
        }
        let at = release
            .find("Architectures:")
            .expect("Release has Architectures");
        release.insert_str(at, &extra);
        std::fs::write(dists.join("Release"), &release).unwrap();
        self.signer
            .clearsign(&dists.join("Release"), &dists.join("InRelease"));
    }

    fn deb(&self, name: &str, version: &str) -> PathBuf {
        self.root()
            .join(format!("pool/main/{name}_{version}_amd64.deb"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file below `dir` (recursively), as paths relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            for f in files_under(&p) {
                out.insert(format!("{}/{f}", p.file_name().unwrap().to_string_lossy()));
            }
        } else {
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

/// Asserts that every blob in the cache has the SHA256 it is named after, and that no partial
/// download is left behind.
fn assert_cache_clean(cache: &Path) {
    for name in files_under(&cache.join("sha256")) {
        let actual = vmimage_apt::fetch::sha256_file(&cache.join("sha256").join(&name)).unwrap();
        assert_eq!(actual, name, "cache blob does not match its name");
    }
    let tmp = files_under(&cache.join("tmp"));
    assert!(tmp.is_empty(), "partial downloads left: {tmp:?}");
}

fn request(variant: Variant, packages: &[&str]) -> ResolveRequest {
    ResolveRequest {
        packages: packages.iter().map(|s| s.to_string()).collect(),
        variant,
    }
}

#[test]
fn test_file_repo_resolves_downloads_and_reads_debs() {
    let repo = LocalRepo::build(RepoOptions::default());
    let fetcher = repo.fetcher();
    let index = repo
        .repository(repo.uri())
        .load(&fetcher, &Clock::System)
        .expect("load the local repository");
    assert_eq!(index.release.codename.as_deref(), Some("test"));
    assert_eq!(index.release.signed_by, repo.signer.fingerprint);
    assert_eq!(index.packages.len(), PACKAGES.len());
    let universe = Universe::new(std::slice::from_ref(&index));
    assert_eq!(universe.candidates("libfoo").len(), 2);

    // Essential base + app: libfoo at the version app needs, a provider for each virtual name
    // (the first by name among several), never the Recommends.
    let resolution = resolve(&universe, &request(Variant::Essential, &["app"])).unwrap();
    let got: Vec<String> = resolution
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    assert_eq!(
        got,
        [
            "app=2.0",
            "base-a=1.0",
            "ed-x=1.0",
            "libfoo=1.2-1",
            "mailer-b=1.0"
        ]
    );
    // Requesting the other provider makes it the choice.
    let resolution2 = resolve(&universe, &request(Variant::Essential, &["app", "ed-y"])).unwrap();
    assert!(resolution2.get("ed-y").is_some() && resolution2.get("ed-x").is_none());

    let paths = fetcher
        .download_packages(&resolution.packages)
        .expect("download");
    for (pkg, path) in resolution.packages.iter().zip(&paths) {
        assert_eq!(path, &repo.cache().join("sha256").join(&pkg.sha256));
    }
    assert_cache_clean(&repo.cache());

    // A cached blob damaged after the fact is noticed and fetched again (or refused offline).
    let base_pkg = resolution.get("base-a").unwrap();
    let blob = fetcher.cache().blob_path(&base_pkg.sha256);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 0x20;
    std::fs::write(&blob, &bad).unwrap();
    let e = repo
        .fetcher()
        .offline(true)
        .fetch(&Download::of_package(base_pkg))
        .unwrap_err();
    assert!(matches!(e, FetchError::NotCached { .. }), "{e}");
    std::fs::write(&blob, &bad).unwrap();
    fetcher.fetch(&Download::of_package(base_pkg)).unwrap();
    assert_eq!(std::fs::read(&blob).unwrap(), good);
    assert_cache_clean(&repo.cache());

    // base-a: xz data, postinst, conffiles, md5sums.
    let base = DebFile::open(
        resolution
            .get("base-a")
            .map(|p| fetcher.cache().blob_path(&p.sha256))
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(base.data_member_name(), "data.tar.xz");
    let control = base.control().unwrap();
    assert_eq!(control.control.get("Essential"), Some("yes"));
    let postinst = control.members.get("postinst").unwrap();
    assert_eq!(postinst.mode & 0o777, 0o755);
    assert_eq!(
        control.script("postinst").unwrap(),
        b"#!/bin/sh\necho postinst base-a\n"
    );
    assert_eq!(control.conffiles(), ["/etc/base-a.conf"]);
    let sums: BTreeSet<String> = control.md5sums().into_iter().map(|(_, p)| p).collect();
    assert!(sums.contains("usr/bin/base-a"), "{sums:?}");
    let mut data = base.data().unwrap();
    let mut seen = BTreeSet::new();
    for entry in data.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path == "./usr/bin/base-a" {
            assert_eq!(entry.header().mode().unwrap() & 0o777, 0o755);
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            assert_eq!(s, "#!/bin/sh\necho base\n");
        }
        seen.insert(path);
    }
    assert!(seen.contains("./etc/base-a.conf"), "{seen:?}");

    // app and libfoo 1.2: zstd members, scripts kept by name.
    let app = DebFile::open(
        &fetcher
            .cache()
            .blob_path(&resolution.get("app").unwrap().sha256),
    )
    .unwrap();
    assert_eq!(app.data_member_name(), "data.tar.zst");
    let app_control = app.control().unwrap();
    let names: Vec<&str> = app_control.members.keys().map(String::as_str).collect();
    assert_eq!(names, ["md5sums", "preinst", "prerm"]);
    let libfoo = DebFile::open(
        &fetcher
            .cache()
            .blob_path(&resolution.get("libfoo").unwrap().sha256),
    )
    .unwrap();
    let mut content = String::new();
    for entry in libfoo.data().unwrap().entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("libfoo.so.1") {
            entry.read_to_string(&mut content).unwrap();
        }
    }
    assert_eq!(content, "libfoo 1.2\n");
    // The gzip-compressed old libfoo reads too.
    let old = DebFile::open(&repo.deb("libfoo", "0.9-1")).unwrap();
    assert_eq!(old.data_member_name(), "data.tar.gz");
    assert_eq!(old.control().unwrap().control.get("Version"), Some("0.9-1"));

    // Unsatisfiable and conflicting requests name the chain.
    let e = resolve(&universe, &request(Variant::None, &["broken"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "requested broken -> depends libfoo (>= 5) -> no version satisfies: available 1.2-1, 0.9-1"
    );
    let e = resolve(&universe, &request(Variant::None, &["app", "conflicter"])).unwrap_err();
    assert!(matches!(e, ResolveError::Conflict { .. }), "{e}");

    // An ASCII-armored keyring works as well as a binary one.
    let asc = repo.dir.path().join("archive-keyring.asc");
    repo.signer.export(&asc, true);
    let mut r = repo.repository(repo.uri());
    r.keyring = asc;
    r.load(&fetcher, &Clock::System).expect("armored keyring");

    // A .deb that is not one is refused with its path.
    let junk = repo.dir.path().join("junk.deb");
    std::fs::write(&junk, b"!<arch>\nnot really").unwrap();
    let e = DebFile::open(&junk).unwrap_err().to_string();
    assert!(e.starts_with(&junk.display().to_string()), "{e}");
}

#[test]
fn test_tampered_packages_index_is_refused() {
    let repo = LocalRepo::build(RepoOptions::default());
    let bin = repo.dists().join("main/binary-amd64");
    let fetcher = repo.fetcher();
    let original = std::fs::read(bin.join("Packages.xz")).unwrap();

    // Same size, one byte flipped after the Release was signed: a hash mismatch, found
    // before anything tries to decompress it.
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x01;
    std::fs::write(bin.join("Packages.xz"), &flipped).unwrap();
    let tampered = vmimage_apt::fetch::sha256_file(&bin.join("Packages.xz")).unwrap();
    let e = repo
        .repository(repo.uri())
        .load(&fetcher, &Clock::System)
        .unwrap_err();
    let IndexError::HashMismatch {
        url,
        expected,
        actual,
    } = &e
    else {
        panic!("expected a hash mismatch, got {e}");
    };
    assert!(
        url.ends_with("dists/test/main/binary-amd64/Packages.xz"),
        "{url}"
    );
    assert_eq!(actual, &tampered);
    assert_ne!(expected, actual);
    assert!(
        e.to_string()
            .contains(&format!("expected {expected}, got {actual}")),
        "{e}"
    );
    assert!(!repo.cache().join("sha256").join(&tampered).exists());
    assert_cache_clean(&repo.cache());

    // A changed package record (a different size): refused too.
    let text = std::fs::read_to_string(bin.join("Packages")).unwrap();
    let edited = text.replace("Depends: libfoo (>= 5)", "Depends: libfoo (>= 0)");
    assert_ne!(edited, text);
    std::fs::write(bin.join("Packages"), edited).unwrap();
    repo.compress_packages();
    let e = repo
        .repository(repo.uri())
        .load(&fetcher, &Clock::System)
        .unwrap_err();
    assert!(
        matches!(
            e,
            IndexError::HashMismatch { .. } | IndexError::SizeMismatch { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("Packages.xz"), "{e}");
    assert_cache_clean(&repo.cache());
}

#[test]
fn test_tampered_deb_is_refused_and_not_cached() {
    let repo = LocalRepo::build(RepoOptions::default());
    let fetcher = repo.fetcher();
    let index = repo
        .repository(repo.uri())
        .load(&fetcher, &Clock::System)
        .unwrap();
    let universe = Universe::new(std::slice::from_ref(&index));
    let app = universe.get("app").unwrap().clone();

    // Same size, one byte changed.
    let deb = repo.deb("app", "2.0");
    let mut bytes = std::fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&deb, &bytes).unwrap();
    let e = fetcher
        .download_packages(std::slice::from_ref(&app))
        .unwrap_err();
    let FetchError::HashMismatch { url, expected, .. } = &e else {
        panic!("expected a hash mismatch, got {e}");
    };
    assert!(url.ends_with("pool/main/app_2.0_amd64.deb"), "{url}");
    assert_eq!(expected, &app.sha256);
    assert!(!fetcher.cache().blob_path(&app.sha256).exists());
    assert_cache_clean(&repo.cache());

    // Longer than the index says.
    bytes.extend_from_slice(b"more");
    std::fs::write(&deb, &bytes).unwrap();
    let e = fetcher.fetch(&Download::of_package(&app)).unwrap_err();
    assert!(
        matches!(e, FetchError::SizeMismatch { expected, actual, .. } if expected == app.size && actual == app.size + 1),
        "{e}"
    );
    assert_cache_clean(&repo.cache());

    // Offline with a cold cache: a clear refusal, no network.
    let offline = repo.fetcher().offline(true);
    let e = offline.fetch(&Download::of_package(&app)).unwrap_err();
    assert!(matches!(e, FetchError::NotCached { .. }), "{e}");
}

#[test]
fn test_bad_signatures_and_expired_releases_are_refused() {
    let repo = LocalRepo::build(RepoOptions {
        by_hash: false,
        date: Some("Wed, 01 Jan 2014 00:00:00 UTC"),
        valid_until: Some("Thu, 01 Jan 2015 00:00:00 UTC"),
    });
    let dists = repo.dists();
    let inrelease = std::fs::read(dists.join("InRelease")).unwrap();
    let keyring = Keyring::load(&repo.keyring).unwrap();
    let url = "test/InRelease";

    // Expired by the real clock; accepted by a clock frozen before Valid-Until.
    let e = verify_inrelease(&inrelease, &keyring, &Clock::System, url).unwrap_err();
    assert!(matches!(e, ReleaseError::Expired { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("Valid-Until Thu, 01 Jan 2015 00:00:00 UTC"),
        "{e}"
    );
    let frozen = Clock::Fixed(1_400_000_000);
    let release = verify_inrelease(&inrelease, &keyring, &frozen, url).unwrap();
    assert_eq!(release.valid_until, Some(1_420_070_400));
    // The same through Repository::load, which must fail before fetching any index.
    let fetcher = repo.fetcher();
    let e = repo
        .repository(repo.uri())
        .load(&fetcher, &Clock::System)
        .unwrap_err();
    assert!(
        matches!(e, IndexError::Release(ReleaseError::Expired { .. })),
        "{e}"
    );
    repo.repository(repo.uri()).load(&fetcher, &frozen).unwrap();

    // Text changed after signing.
    let text = String::from_utf8(inrelease.clone()).unwrap();
    let forged = text.replace("Codename: test", "Codename: evil");
    assert_ne!(forged, text);
    let e = verify_inrelease(forged.as_bytes(), &keyring, &frozen, url).unwrap_err();
    assert!(matches!(e, ReleaseError::BadSignature { .. }), "{e}");

    // Fields added outside the signed part are not read: a second copy of the text after
    // the signature block does not parse as part of the Release.
    let smuggled = format!("{text}\nValid-Until: Thu, 01 Jan 2099 00:00:00 UTC\n");
    let r = verify_inrelease(smuggled.as_bytes(), &keyring, &frozen, url);
    if let Ok(r) = r {
        assert_eq!(
            r.valid_until,
            Some(1_420_070_400),
            "unsigned trailer was parsed"
        );
    }

    // Signed by a key that is not in the keyring: the error names the signer.
    let other_signed = repo.dir.path().join("InRelease.other");
    repo.other.clearsign(&dists.join("Release"), &other_signed);
    let e = verify_inrelease(
        &std::fs::read(&other_signed).unwrap(),
        &keyring,
        &frozen,
        url,
    )
    .unwrap_err();
    assert!(matches!(e, ReleaseError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains(&repo.other.fingerprint), "{e}");

    // A validly signed Release of another suite, served in place of the one asked for.
    let dists = repo.root().join("dists");
    copy_dir(&dists.join("test"), &dists.join("stable"));
    let mut stable = repo.repository(repo.uri());
    stable.suite = "stable".into();
    let e = stable.load(&fetcher, &frozen).unwrap_err();
    assert!(
        matches!(e, IndexError::Release(ReleaseError::WrongSuite { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("asked for suite \"stable\""), "{e}");
    let dists = repo.dists();

    // Not signed at all.
    let e = verify_inrelease(
        &std::fs::read(dists.join("Release")).unwrap(),
        &keyring,
        &frozen,
        url,
    )
    .unwrap_err();
    assert!(matches!(e, ReleaseError::Unsigned { .. }), "{e}");
    assert_cache_clean(&repo.cache());
}

/// Requests seen by the server: path and `Range` header.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A one-shot failure for the next request whose path ends with a suffix.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Announce the full length, send this many bytes, then drop the connection.
    CutAfter(usize),
}

/// Queued faults: path suffix and what to do.
type Faults = Arc<Mutex<Vec<(String, Fault)>>>;

/// A small static file server over plain HTTP/1.1 with `Range: bytes=N-` support, a request
/// log, one-shot fault injection, and a stop switch. Real `ureq` talks to it over real TCP
/// on a free port.
struct HttpServer {
    port: u16,
    log: RequestLog,
    faults: Faults,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start(root: PathBuf) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let faults: Faults = Arc::new(Mutex::new(Vec::new()));
        let (log2, stop2, faults2) = (log.clone(), stop.clone(), faults.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &root, &log2, &faults2);
                }
            }
        });
        HttpServer {
            port,
            log,
            faults,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn inject(&self, suffix: &str, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .push((suffix.to_string(), fault));
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    log: &Mutex<Vec<(String, Option<String>)>>,
    faults: &Mutex<Vec<(String, Fault)>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    log.lock().unwrap().push((path.clone(), range.clone()));
    let mut out = stream;
    let fault = {
        let mut f = faults.lock().unwrap();
        f.iter()
            .position(|(suffix, _)| path.ends_with(suffix.as_str()))
            .map(|i| f.remove(i).1)
    };
    if let Some(Fault::Status(code)) = fault {
        let head =
            format!("HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return out.write_all(head.as_bytes());
    }
    let Ok(body) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        Some(n) if n < body.len() => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{}\r\nConnection: close\r\n\r\n",
                body.len() - n,
                body.len() - 1,
                body.len()
            );
            out.write_all(head.as_bytes())?;
            out.write_all(&body[n..])
        }
        Some(_) => out.write_all(
            b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
        None => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            match fault {
                Some(Fault::CutAfter(n)) => {
                    out.write_all(&body[..n.min(body.len())])?;
                    out.flush()?;
                    out.shutdown(std::net::Shutdown::Both)
                }
                _ => out.write_all(&body),
            }
        }
    }
}

#[test]
fn test_http_repo_by_hash_resume_warm_cache_and_offline() {
    let repo = LocalRepo::build(RepoOptions {
        by_hash: true,
        ..RepoOptions::default()
    });
    let server = HttpServer::start(repo.root());
    let fetcher = repo.fetcher().parallel(3);
    let repository = repo.repository(server.url());
    let index = repository
        .load(&fetcher, &Clock::System)
        .expect("load over HTTP");
    let universe = Universe::new(std::slice::from_ref(&index));
    let resolution = resolve(&universe, &request(Variant::Essential, &["app"])).unwrap();

    // The index came by hash.
    let first = server.requests();
    assert!(
        first
            .iter()
            .any(|(p, _)| p.contains("/main/binary-amd64/by-hash/SHA256/")),
        "{first:?}"
    );

    // Leave half of app's .deb as a partial download: it must be resumed with a Range request.
    let app = resolution.get("app").unwrap();
    let bytes = std::fs::read(repo.deb("app", "2.0")).unwrap();
    let tmp = repo.cache().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let half = bytes.len() / 2;
    std::fs::write(tmp.join(format!("{}.partial", app.sha256)), &bytes[..half]).unwrap();

    // A server error on one .deb (retried), a connection cut mid-body on another (resumed).
    server.inject("ed-x_1.0_amd64.deb", Fault::Status(503));
    server.inject("mailer-b_1.0_amd64.deb", Fault::CutAfter(100));

    let done = std::sync::atomic::AtomicUsize::new(0);
    let downloads: Vec<Download> = resolution
        .packages
        .iter()
        .map(Download::of_package)
        .collect();
    let paths = fetcher
        .fetch_all(&downloads, &|n, total| {
            assert_eq!(total, 5);
            done.fetch_max(n, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 5);
    assert_eq!(
        std::fs::read(fetcher.cache().blob_path(&app.sha256)).unwrap(),
        bytes
    );
    assert_eq!(paths.len(), 5);
    let log = server.requests();
    let app_requests: Vec<_> = log
        .iter()
        .filter(|(p, _)| p.ends_with("app_2.0_amd64.deb"))
        .collect();
    assert_eq!(app_requests.len(), 1, "{log:?}");
    assert_eq!(
        app_requests[0].1.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    let of = |name: &str| -> Vec<Option<String>> {
        log.iter()
            .filter(|(p, _)| p.ends_with(name))
            .map(|(_, r)| r.clone())
            .collect()
    };
    assert_eq!(of("ed-x_1.0_amd64.deb"), [None, None], "{log:?}");
    assert_eq!(
        of("mailer-b_1.0_amd64.deb"),
        [None, Some("bytes=100-".to_string())],
        "{log:?}"
    );
    assert_cache_clean(&repo.cache());

    // Warm cache: only the InRelease goes over the network.
    let before = server.requests().len();
    let index = repository.load(&fetcher, &Clock::System).unwrap();
    fetcher.download_packages(&resolution.packages).unwrap();
    let new: Vec<_> = server.requests()[before..].to_vec();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].0.ends_with("/dists/test/InRelease"));
    let inrelease_sha = index.inrelease_sha256.clone();

    // Offline: the server is gone, and everything still loads from the cache.
    drop(server);
    let offline = repo.fetcher().offline(true);
    let index = repository
        .load(&offline, &Clock::System)
        .expect("offline load");
    assert_eq!(index.inrelease_sha256, inrelease_sha);
    let again = resolve(
        &Universe::new(std::slice::from_ref(&index)),
        &request(Variant::Essential, &["app"]),
    )
    .unwrap();
    assert_eq!(again, resolution);
    offline
        .download_packages(&again.packages)
        .expect("offline download");
    // ... while an online fetcher reports the dead server clearly (one attempt, no backoff).
    let online = repo.fetcher().attempts(1);
    let e = repository.load(&online, &Clock::System).unwrap_err();
    assert!(
        matches!(e, IndexError::Fetch(FetchError::Transfer { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("/dists/test/InRelease"), "{e}");
}
