//! Against the real Debian bookworm archive, found through this host's apt sources: verify
//! the InRelease with Debian's keyring, parse main/amd64, resolve minbase and compare the set
//! with what `mmdebstrap --variant=minbase --dry-run` (apt's own resolver) installs, then
//! download and read a few real `.deb`s.
//!
//! Downloads go to the default cache (`$VMIMAGE_CACHE` or `~/.cache/vmimage`), so a second
//! run only re-fetches the InRelease.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use vmimage_apt::{
    Cache, Clock, DebFile, Fetcher, Repository, ResolveRequest, Universe, Variant, host_mirror,
    resolve,
};

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

fn bookworm() -> (Repository, Fetcher) {
    let mirror = host_mirror("bookworm").expect("this host's apt sources must serve bookworm");
    let repo = Repository {
        uri: mirror.uri,
        suite: "bookworm".into(),
        components: vec!["main".into()],
        architecture: "amd64".into(),
        keyring: KEYRING.into(),
        allow: None,
    };
    (repo, Fetcher::new(Cache::at_default_location()))
}

/// Package names `mmdebstrap --variant=minbase` installs with `extra` included. With
/// `dry_run` only apt's simulated plan is read (fast, but in one apt call: it may differ
/// where an Essential package's `Provides` would have been installed first); otherwise
/// mmdebstrap really builds the tree and we read its `var/lib/dpkg/status`.
fn mmdebstrap_set(mirror: &str, extra: &[&str], dry_run: bool) -> BTreeSet<String> {
    let out_dir = tempfile::tempdir().unwrap();
    let status = out_dir.path().join("status");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--verbose"]);
    if dry_run {
        cmd.arg("--dry-run");
    } else {
        cmd.arg("--format=null").arg(format!(
            "--customize-hook=cp \"$1/var/lib/dpkg/status\" {}",
            status.display()
        ));
    }
    if !extra.is_empty() {
        cmd.arg(format!("--include={}", extra.join(",")));
    }
    cmd.args(["bookworm"])
        .arg(out_dir.path().join("x.tar"))
        .arg(mirror);
    let out = cmd
        .output()
        .expect("mmdebstrap must be installed (scripts/deps.sh)");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mmdebstrap failed:\n{log}");
    let set: BTreeSet<String> = if dry_run {
        log.lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    } else {
        std::fs::read_to_string(&status)
            .expect("the customize hook copied dpkg's status")
            .lines()
            .filter_map(|l| l.strip_prefix("Package: "))
            .map(str::to_string)
            .collect()
    };
    assert!(
        set.len() > 50,
        "could not read mmdebstrap's package set:\n{log}"
    );
    set
}

#[test]
fn test_bookworm_minbase_matches_mmdebstrap_and_debs_read() {
    let (repo, fetcher) = bookworm();
    let t = Instant::now();
    let index = repo.load(&fetcher, &Clock::System).expect("load bookworm");
    eprintln!("load bookworm main/amd64: {:?}", t.elapsed());
    // Warm cache: the same index again, now without any index download (offline mode
    // proves it: it would fail on anything not cached).
    let t = Instant::now();
    let again = repo
        .load(&fetcher.clone().offline(true), &Clock::System)
        .expect("offline reload from the cache");
    eprintln!("reload bookworm offline (parse only): {:?}", t.elapsed());
    assert_eq!(again.inrelease_sha256, index.inrelease_sha256);
    assert_eq!(again.packages.len(), index.packages.len());
    assert_eq!(index.release.codename.as_deref(), Some("bookworm"));
    assert!(!index.release.signed_by.is_empty());
    assert!(
        index.packages.len() > 50_000,
        "{} packages",
        index.packages.len()
    );
    let universe = Universe::new(std::slice::from_ref(&index));

    let extra = ["git", "openssh-server", "ca-certificates"];
    for (include, dry_run) in [(&[][..], true), (&extra[..], false)] {
        let request = ResolveRequest {
            packages: include.iter().map(|s| s.to_string()).collect(),
            variant: Variant::Minbase,
        };
        let t = Instant::now();
        let resolution = resolve(&universe, &request).expect("resolve minbase");
        eprintln!(
            "resolve minbase + {include:?}: {} packages in {:?}",
            resolution.packages.len(),
            t.elapsed()
        );
        let ours: BTreeSet<String> = resolution.names().map(str::to_string).collect();
        for must in ["dpkg", "apt", "libc6", "base-files", "bash", "coreutils"] {
            assert!(ours.contains(must), "{must} missing from {ours:?}");
        }
        let theirs = mmdebstrap_set(&repo.uri, include, dry_run);
        let only_ours: Vec<_> = ours.difference(&theirs).collect();
        let only_theirs: Vec<_> = theirs.difference(&ours).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "minbase + {include:?}: only ours {only_ours:?}, only mmdebstrap's {only_theirs:?}"
        );
    }

    // Download two real packages and read them (bookworm uses xz data members).
    let resolution = resolve(
        &universe,
        &ResolveRequest {
            packages: vec![],
            variant: Variant::Essential,
        },
    )
    .unwrap();
    let picked: Vec<_> = ["dpkg", "base-files"]
        .iter()
        .map(|n| resolution.get(n).unwrap().clone())
        .collect();
    let paths = fetcher.download_packages(&picked).expect("download");
    let dpkg = DebFile::open(&paths[0]).unwrap();
    let control = dpkg.control().unwrap();
    assert_eq!(control.control.get("Package"), Some("dpkg"));
    assert!(control.script("postinst").is_some());
    assert!(control.md5sums().iter().any(|(_, p)| p == "usr/bin/dpkg"));
    let mut archive = dpkg.data().unwrap();
    let files: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f == "./usr/bin/dpkg"), "{files:?}");
    let base_files = DebFile::open(&paths[1]).unwrap().control().unwrap();
    assert!(base_files.conffiles().iter().any(|c| c == "/etc/issue"));
    assert!(Path::new(&paths[1]).starts_with(fetcher.cache().root()));
}
