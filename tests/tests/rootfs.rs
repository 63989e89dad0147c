//! `vmimage rootfs` and `vmimage lock` end to end: recipe errors, a local signed repository
//! (real dpkg, maintainer scripts, no network), tampering, and the real Debian bookworm
//! archive from the host's apt sources (compared with mmdebstrap, checked with dpkg and apt,
//! rebuilt from its lockfile to the same bytes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmimage_tests::aptrepo::{AptRepo, Compression, DebSpec};
use vmimage_tests::{have_tool, run_ok, vmimage};

fn require(tools: &[&str]) {
    for t in tools {
        assert!(
            have_tool(t),
            "{t} is missing: run scripts/deps.sh (CI does)"
        );
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sha256_file(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Asserts `dir` holds nothing but `allowed` (no temporaries left behind).
fn assert_only(dir: &Path, allowed: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let extra: Vec<&String> = names
        .iter()
        .filter(|n| !allowed.contains(&n.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "left behind in {}: {extra:?}",
        dir.display()
    );
}

// ---------------------------------------------------------------- recipe errors

fn recipe_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("bad.toml");
    std::fs::write(&recipe, body).unwrap();
    let out = vmimage([
        "rootfs".as_ref(),
        recipe.as_os_str(),
        "--tar".as_ref(),
        dir.path().join("o.tar").as_os_str(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success(), "a bad recipe was accepted:\n{body}");
    assert!(!dir.path().join("o.tar").exists());
    stderr(&out)
}

const HEAD: &str = "[rootfs]\ndistro = \"debian\"\nsuite = \"bookworm\"\n";

#[test]
fn test_recipe_syntax_error_names_file_line_and_column() {
    let err = recipe_error(&format!("{HEAD}packages = [\"curl\"\n"));
    assert!(err.contains("bad.toml:4:"), "{err}");
    assert!(err.contains("expected"), "{err}");
}

#[test]
fn test_recipe_unknown_field_is_named() {
    let err = recipe_error(&format!(
        "{HEAD}[[files]]\ndestination = \"/a\"\ncontent = \"\"\npermissions = \"0644\"\n"
    ));
    assert!(
        err.contains("bad.toml:7:1: files.permissions: unknown field `permissions`"),
        "{err}"
    );
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn test_recipe_wrong_type_says_what_was_expected() {
    let err = recipe_error(&format!("{HEAD}[boot]\nvcpus = \"two\"\n"));
    assert!(
        err.contains("bad.toml:5:9: boot.vcpus: invalid type"),
        "{err}"
    );
    assert!(err.contains("expected u32"), "{err}");
}

#[test]
fn test_recipe_invalid_variant_lists_choices() {
    let err = recipe_error(&format!("{HEAD}variant = \"tiny\"\n"));
    assert!(err.contains("bad.toml:4:11: rootfs.variant:"), "{err}");
    assert!(
        err.contains("`minbase`") && err.contains("`essential`"),
        "{err}"
    );
}

// ---------------------------------------------------------------- local repository

/// Host packages that give a test tree a working dpkg (and its libraries, tar, coreutils).
const HOST_PACKAGES: &[&str] = &[
    "dpkg",
    "tar",
    "coreutils",
    "libc6",
    "libgcc-s1",
    "gcc-12-base",
    "libselinux1",
    "libacl1",
    "libattr1",
    "libgmp10",
    "libpcre2-8-0",
    "libzstd1",
    "liblzma5",
    "libbz2-1.0",
    "zlib1g",
    "libmd0",
    "diffutils",
    "libc-bin",
];

/// The test's own packages: dependencies with versions, an alternative whose first choice
/// does not exist, a virtual package, zstd/xz/gzip data, and maintainer scripts.
fn add_test_packages(repo: &AptRepo) {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    repo.add(
        &DebSpec::new("sh-busybox", "1.0")
            .field("Essential", "yes")
            .file("/bin/busybox", busybox, 0o755)
            .symlink("/bin/sh", "busybox")
            .compression(Compression::Gzip),
    );
    repo.add(&DebSpec::new("libgreet", "0.9").file("/usr/share/greet/version", "0.9\n", 0o644));
    repo.add(
        &DebSpec::new("libgreet", "1.1")
            .file("/usr/share/greet/version", "1.1\n", 0o644)
            .compression(Compression::Zstd),
    );
    repo.add(
        &DebSpec::new("mta-test", "2.0")
            .field("Provides", "mail-transport-agent")
            .file("/usr/sbin/sendmail-test", "#!/bin/sh\nexit 0\n", 0o755),
    );
    repo.add(&DebSpec::new("editor-b", "1").file("/usr/bin/editor-b", "#!/bin/sh\n", 0o755));
    repo.add(
        &DebSpec::new("hello-app", "3.0-1")
            .field("Pre-Depends", "libgreet (>= 1.0)")
            .field("Depends", "mail-transport-agent, editor-a | editor-b")
            // Takes a file over from a package unpacked alongside it (dpkg's Replaces).
            .field("Replaces", "editor-b")
            .file("/usr/bin/editor-b", "#!/bin/sh\necho from hello-app\n", 0o755)
            .file("/usr/bin/hello-app", "#!/bin/sh\necho hello\n", 0o755)
            .file("/etc/hello-app.conf", "greeting=hello\n", 0o644)
            .file("/usr/share/doc/hello-app/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Expat\n",
                0o644)
            .script("preinst", "#!/bin/sh\nset -e\n[ -e /usr/share/greet/version ] || { echo pre-dependency not unpacked >&2; exit 1; }\nmkdir -p /var/lib/hello-app\necho \"$1 $DPKG_MAINTSCRIPT_NAME $DPKG_MAINTSCRIPT_PACKAGE\" > /var/lib/hello-app/preinst-ran\n")
            .script(
                "postinst",
                "#!/bin/sh\nset -e\nmkdir -p /var/lib/hello-app\necho \"$1 $(cat /usr/share/greet/version)\" > /var/lib/hello-app/postinst-ran\n",
            )
            .compression(Compression::Zstd),
    );
}

fn write_recipe(dir: &Path, repo: &AptRepo, extra: &str) -> PathBuf {
    let recipe = dir.join("local.toml");
    std::fs::write(
        &recipe,
        format!(
            "[rootfs]\ndistro = \"debian\"\nsuite = \"testing-local\"\nmirror = \"{}\"\nkeyring = \"{}\"\n\
             variant = \"essential\"\npackages = [\"hello-app\"]\nhostname = \"local-test\"\n{extra}",
            repo.url(),
            repo.key.display()
        ),
    )
    .unwrap();
    recipe
}

#[test]
fn test_local_repo_installs_with_real_dpkg_and_maintainer_scripts() {
    require(&["dpkg-deb", "apt-ftparchive", "gpg", "unshare", "chroot"]);
    let repo = AptRepo::new();
    for p in HOST_PACKAGES {
        repo.add_host_package(p);
    }
    add_test_packages(&repo);
    repo.publish("testing-local", "");
    let work = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        work.path(),
        &repo,
        // This tree has no passwd package (no groupadd): numeric owners.
        "[[files]]\ndestination = \"/etc/app/config\"\ncontent = \"x=1\\n\"\nmode = \"0640\"\nowner = \"0:1500\"\n",
    );
    let cache = work.path().join("cache");
    let tree = work.path().join("tree");
    let sbom = work.path().join("sbom.json");
    let out = run_ok(
        vmimage([
            "rootfs".as_ref(),
            recipe.as_os_str(),
            "--out".as_ref(),
            tree.as_os_str(),
        ])
        .arg("--cache")
        .arg(&cache)
        .arg("--sbom")
        .arg(&sbom),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("packages"), "{text}");

    // The postinst ran, after its pre-dependency was configured, with dpkg's "configure".
    let ran =
        std::fs::read_to_string(tree.join("var/lib/hello-app/postinst-ran")).expect("postinst ran");
    assert_eq!(
        ran, "configure 1.1\n",
        "highest libgreet chosen and configured first"
    );
    // Alternatives and virtual packages were resolved; dpkg knows every package.
    let status = std::fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    for p in [
        "hello-app",
        "libgreet",
        "mta-test",
        "editor-b",
        "sh-busybox",
        "dpkg",
        "libc6",
    ] {
        let stanza = status
            .split("\n\n")
            .find(|s| s.starts_with(&format!("Package: {p}\n")))
            .unwrap_or_else(|| panic!("{p} not in dpkg status"));
        assert!(stanza.contains("Status: install ok installed"), "{stanza}");
    }
    assert!(status.contains("Package: libgreet\nStatus: install ok installed"));
    assert!(status.contains("Version: 1.1"));
    assert!(
        std::fs::read_to_string(tree.join("var/lib/dpkg/info/hello-app.list"))
            .unwrap()
            .contains("/usr/bin/hello-app")
    );
    assert!(
        std::fs::read_to_string(tree.join("var/lib/dpkg/info/hello-app.conffiles"))
            .unwrap()
            .contains("/etc/hello-app.conf")
    );
    // A file two packages ship goes to the later one in install order, which alone lists
    // it (as dpkg does with Replaces), whatever order the parallel unpack ran in.
    assert_eq!(
        std::fs::read_to_string(tree.join("usr/bin/editor-b")).unwrap(),
        "#!/bin/sh\necho from hello-app\n"
    );
    let listed = |pkg: &str| {
        std::fs::read_to_string(tree.join(format!("var/lib/dpkg/info/{pkg}.list")))
            .unwrap()
            .lines()
            .any(|l| l == "/usr/bin/editor-b")
    };
    assert!(listed("hello-app"));
    assert!(!listed("editor-b"));
    // The preinst ran as dpkg runs it, for a fresh install.
    assert_eq!(
        std::fs::read_to_string(tree.join("var/lib/hello-app/preinst-ran")).unwrap(),
        "install preinst hello-app\n"
    );
    // The conffile is in place (not left as .dpkg-new) and dpkg recorded its hash on
    // configuring, as after a normal install.
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/hello-app.conf")).unwrap(),
        "greeting=hello\n"
    );
    let md5 = run_ok(Command::new("md5sum").arg(tree.join("etc/hello-app.conf")));
    let md5 = String::from_utf8_lossy(&md5.stdout);
    let md5 = md5.split_whitespace().next().unwrap();
    assert!(
        status.contains(&format!("Conffiles:\n /etc/hello-app.conf {md5}\n")),
        "{status}"
    );
    let leftovers = run_ok(Command::new("find").arg(&tree).args([
        "(",
        "-name",
        "*.dpkg-new",
        "-o",
        "-name",
        "tmp.ci*",
        ")",
        "-print",
    ]));
    assert!(
        leftovers.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
    // dpkg's own check of every file against the md5sums (written by vmimage where a
    // package ships none, as dpkg does).
    assert_chroot_silent(&tree, &["dpkg", "--verify"]);
    // The tree's own dpkg is happy with its database.
    assert_chroot_silent(&tree, &["dpkg", "--audit"]);
    // Recipe settings applied; build scaffolding gone.
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/hostname")).unwrap(),
        "local-test\n"
    );
    assert_eq!(
        std::fs::metadata(tree.join("etc/machine-id"))
            .unwrap()
            .len(),
        0
    );
    assert!(!tree.join("usr/sbin/policy-rc.d").exists());
    assert!(!tree.join("var/cache/vmimage-debs").exists());
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let cfg = std::fs::metadata(tree.join("etc/app/config")).unwrap();
    assert_eq!(
        (cfg.permissions().mode() & 0o7777, cfg.uid(), cfg.gid()),
        (0o640, 0, 1500)
    );
    // SBOM lists what was installed, with a license from the DEP-5 copyright file.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let hello = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello-app")
        .unwrap();
    assert_eq!(hello["licenseDeclared"], "MIT");
    assert_eq!(
        hello["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/hello-app@3.0-1?arch=amd64"
    );
    assert_only(work.path(), &["local.toml", "cache", "tree", "sbom.json"]);
}

// ---------------------------------------------------------------- tampering

/// A small repository (no dpkg needed: every failure comes before installing).
/// Without root, vmimage re-runs itself as root of a user namespace (the `vmimage-test`
/// user and its subordinate ids come from scripts/deps.sh), and its tar is the same, byte
/// for byte, as a root build's: owners, modes, maintainer scripts' work and all.
#[test]
fn test_unprivileged_build_in_a_user_namespace_matches_a_root_build() {
    require(&[
        "dpkg-deb",
        "apt-ftparchive",
        "gpg",
        "unshare",
        "chroot",
        "newuidmap",
        "setpriv",
    ]);
    let user = "vmimage-test";
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let uid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("vmimage-test:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|u| u.parse().ok())
        .expect("user vmimage-test is missing: run scripts/deps.sh (CI does)");
    let repo = AptRepo::new();
    for p in HOST_PACKAGES {
        repo.add_host_package(p);
    }
    add_test_packages(&repo);
    repo.publish("testing-local", "");
    let work = tempfile::Builder::new()
        .prefix("rootfs-userns-")
        .tempdir_in("/tmp")
        .unwrap();
    let recipe = write_recipe(work.path(), &repo, "");

    let root_tar = work.path().join("root.tar");
    let root_cache = work.path().join("root-cache");
    run_ok(&mut vmimage([
        "rootfs".as_ref(),
        recipe.as_os_str(),
        "--tar".as_ref(),
        root_tar.as_os_str(),
        "--cache".as_ref(),
        root_cache.as_os_str(),
    ]));

    // Everything the user's build reads must be readable by it; the build's binary may
    // sit under /root.
    let bin = work.path().join("vmimage");
    std::fs::copy(vmimage_tests::vmimage_bin(), &bin).unwrap();
    run_ok(
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(repo.key.parent().unwrap())
            .arg(work.path()),
    );
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    run_ok(Command::new("chown").arg(format!("{user}:")).arg(&home));
    let user_tar = home.join("user.tar");
    let out = run_ok(
        Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(&bin)
            .arg("rootfs")
            .arg(&recipe)
            .arg("--tar")
            .arg(&user_tar)
            .arg("--cache")
            .arg(home.join("cache")),
    );
    assert!(
        stderr(&out).is_empty() || !stderr(&out).contains("error"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha256_file(&user_tar), sha256_file(&root_tar));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&user_tar).unwrap().uid(), uid);
    // And the tar holds root-owned files, as a root build's does.
    let listing = run_ok(Command::new("tar").arg("-tvf").arg(&user_tar));
    let listing = String::from_utf8_lossy(&listing.stdout);
    let hello = listing
        .lines()
        .find(|l| l.ends_with("./usr/bin/hello-app"))
        .expect("hello-app in the tar");
    assert!(hello.contains(" 0/0 "), "{hello}");
}

fn small_repo() -> AptRepo {
    require(&["dpkg-deb", "apt-ftparchive", "gpg"]);
    let repo = AptRepo::new();
    add_test_packages(&repo);
    repo.publish("testing-local", "");
    repo
}

fn build_fails(repo: &AptRepo, expect: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let recipe = write_recipe(work.path(), repo, "");
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for (flag, target) in [("--tar", "rootfs.tar"), ("--out", "tree")] {
        let out = vmimage(["rootfs".as_ref(), recipe.as_os_str()])
            .arg(flag)
            .arg(out_dir.join(target))
            .arg("--cache")
            .arg(work.path().join("cache"))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "tampered repository accepted ({flag})"
        );
        for e in expect {
            assert!(err.contains(e), "expected {e:?} in:\n{err}");
        }
        assert_only(&out_dir, &[]);
    }
}

#[test]
fn test_tampered_packages_index_is_refused() {
    let repo = small_repo();
    let bin = repo.root().join("dists/testing-local/main/binary-amd64");
    for name in ["Packages", "Packages.xz", "Packages.gz"] {
        let p = bin.join(name);
        let mut text = std::fs::read_to_string(bin.join("Packages")).unwrap();
        text = text.replace("Version: 1.1", "Version: 1.2");
        if name == "Packages" {
            std::fs::write(&p, &text).unwrap();
        } else {
            let tool = if name.ends_with("xz") { "xz" } else { "gzip" };
            let mut child = Command::new(tool)
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            std::fs::write(&p, out.stdout).unwrap();
        }
    }
    build_fails(&repo, &["mismatch", "Packages"]);
}

#[test]
fn test_tampered_deb_is_refused() {
    let repo = small_repo();
    // Same name and size class, different bytes: rebuild editor-b with other content.
    let deb = repo.root().join("pool/main/editor-b_1_amd64.deb");
    let mut bytes = std::fs::read(&deb).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&deb, bytes).unwrap();
    build_fails(&repo, &["editor-b", "mismatch"]);
}

#[test]
fn test_bad_signature_is_refused() {
    let repo = small_repo();
    let inrelease = repo.root().join("dists/testing-local/InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(
        &inrelease,
        text.replacen("Codename: testing-local", "Codename: testing-locaL", 1),
    )
    .unwrap();
    build_fails(&repo, &["signature"]);
}

#[test]
fn test_expired_release_is_refused() {
    let repo = small_repo();
    repo.sign_release(
        "testing-local",
        "Valid-Until: Thu, 01 Jan 2015 00:00:00 UTC\n",
    );
    build_fails(&repo, &["expired", "Valid-Until"]);
}

// ---------------------------------------------------------------- the real archive

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn installed_packages(admindir: &Path) -> Vec<String> {
    let out = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admindir.display()))
            .args(["-W", "-f=${Package}\\n"]),
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn test_debian_bookworm_minimal_builds_locks_and_rebuilds_identically() {
    require(&["mmdebstrap", "unshare", "chroot", "dpkg-query", "apt-get"]);
    let recipe_src = repo_root().join("recipes/debian-12-minimal.toml");
    let work = tempfile::tempdir().unwrap();
    // A copy, so the lockfile lands in the temporary directory, not in the checkout.
    let recipe = work.path().join("debian-12-minimal.toml");
    std::fs::copy(&recipe_src, &recipe).unwrap();
    let lock = work.path().join("debian-12-minimal.toml.lock");

    let t1 = work.path().join("first.tar");
    let sbom = work.path().join("sbom.json");
    run_ok(
        vmimage([
            "rootfs".as_ref(),
            recipe.as_os_str(),
            "--tar".as_ref(),
            t1.as_os_str(),
        ])
        .arg("--sbom")
        .arg(&sbom),
    );
    run_ok(&mut vmimage(["lock".as_ref(), recipe.as_os_str()]));
    assert!(lock.exists());
    let locked = std::fs::read_to_string(&lock).unwrap();
    assert!(locked.contains("name = \"iproute2\""), "{locked}");
    // The lockfile is picked up by default now.
    let t2 = work.path().join("second.tar");
    let out = run_ok(
        vmimage(["--json", "rootfs"])
            .arg(&recipe)
            .arg("--tar")
            .arg(&t2),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["locked"], true);
    assert_eq!(
        sha256_file(&t1),
        sha256_file(&t2),
        "a locked rebuild must give the same tar"
    );
    assert_eq!(report["sha256"].as_str().unwrap(), sha256_file(&t2));

    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xpf")
            .arg(&t2)
            .arg("-C")
            .arg(&tree),
    );
    // dpkg and apt inside the result are content.
    // Every unpacked file matches its package's md5sums (vmimage unpacks, not dpkg).
    assert_chroot_silent(&tree, &["dpkg", "--verify"]);
    assert_chroot_silent(&tree, &["dpkg", "--audit"]);
    run_ok(Command::new("chroot").arg(&tree).args(["apt-get", "check"]));
    assert_eq!(
        std::fs::metadata(tree.join("etc/machine-id"))
            .unwrap()
            .len(),
        0
    );
    assert!(
        std::fs::read_to_string(tree.join("etc/motd"))
            .unwrap()
            .contains("vmimage")
    );
    assert!(!tree.join("usr/sbin/policy-rc.d").exists());

    // Same package set as mmdebstrap --variant=minbase with the same extra packages.
    let ours = installed_packages(&tree.join("var/lib/dpkg"));
    let mm = work.path().join("mm");
    run_ok(
        Command::new("mmdebstrap")
            .args([
                "--quiet",
                "--variant=minbase",
                "--include=ca-certificates,iproute2,netbase,ifupdown",
            ])
            .args(["--skip=cleanup/apt", "bookworm"])
            .arg(&mm),
    );
    let theirs = installed_packages(&mm.join("var/lib/dpkg"));
    assert_eq!(ours, theirs, "package sets differ from mmdebstrap's");

    // The SBOM names every installed package with a purl.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let names: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), ours.len());
    let bash = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bash")
        .unwrap();
    assert!(
        bash["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/bash@5.2")
    );

    // Editing the package inputs makes the lockfile stale, with a clear message.
    let edited = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("\"ifupdown\"", "\"ifupdown\", \"less\"");
    std::fs::write(&recipe, edited).unwrap();
    let out = vmimage([
        "rootfs".as_ref(),
        recipe.as_os_str(),
        "--tar".as_ref(),
        work.path().join("third.tar").as_os_str(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "debian-12-minimal.toml changed since debian-12-minimal.toml.lock was written"
        ),
        "{err}"
    );
    assert!(err.contains("vmimage lock --update"), "{err}");
    assert!(!work.path().join("third.tar").exists());
}

/// Runs `argv` chrooted into `tree`; it must succeed and print nothing (dpkg's checks
/// print only problems).
fn assert_chroot_silent(tree: &Path, argv: &[&str]) {
    let out = run_ok(Command::new("chroot").arg(tree).args(argv));
    assert!(
        out.stdout.is_empty(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
