//! Installs a package set into an empty directory: vmimage unpacks, the tree's own dpkg
//! configures.
//!
//! 1. Read every `.deb`'s control file and order the set so dependencies come first
//!    (`Pre-Depends` before `Depends`; cycles are broken deterministically, by name).
//! 2. Make merged `/usr` and an empty dpkg database, then unpack every package at once
//!    ([`crate::unpack`]: parallel, and written as `dpkg --unpack` leaves a package).
//! 3. In a private mount namespace (`unshare --mount`, so every mount vanishes with the
//!    process, even on error) mount `/proc`, `/sys` and `/dev`, `chroot`, run each
//!    `preinst install`, then `dpkg --configure --pending`: dpkg runs every `postinst` and
//!    trigger and writes its final database. `/usr/sbin/policy-rc.d` (exit 101) keeps
//!    services from starting and is removed afterwards.
//!
//! Limits: root (chroot and mounts), which a caller that is not root gets inside a user
//! namespace ([`crate::userns`]); the tree's architecture must run on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use vmimage_apt::{DebFile, parse_relations};

use crate::error::{RootfsError, io_err};
use crate::plan::PlannedPackage;

/// `PATH` inside the chroot.
pub const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the installer needs to know of one `.deb`.
#[derive(Debug, Clone)]
pub struct DebInfo {
    /// Package name.
    pub name: String,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Pre-Depends` alternatives (names only).
    pub pre_depends: Vec<Vec<String>>,
    /// `Depends` alternatives (names only).
    pub depends: Vec<Vec<String>>,
    /// `Provides` names.
    pub provides: Vec<String>,
    /// The `.deb` in the cache.
    pub path: PathBuf,
    /// The `ar` member time of the `.deb` (dpkg-deb sets it from the package's changelog
    /// date when built reproducibly).
    pub mtime: i64,
    /// `Installed-Size`, in bytes (0 when not given).
    pub installed_size: u64,
}

/// Reads the control information of each planned package's `.deb`.
pub fn read_debs(
    planned: &[PlannedPackage],
    paths: &[PathBuf],
) -> Result<Vec<DebInfo>, RootfsError> {
    use rayon::prelude::*;
    planned
        .par_iter()
        .zip(paths.par_iter())
        .map(|(p, path)| {
            let deb = DebFile::open(path)?;
            let control = deb.control()?.control;
            let field = |name: &str| -> Result<Vec<Vec<String>>, RootfsError> {
                let Some(text) = control.get(name) else {
                    return Ok(Vec::new());
                };
                let rels = parse_relations(text).map_err(|e| {
                    RootfsError::Install(format!("{} {}: {name}: {e}", p.name, p.version))
                })?;
                Ok(rels
                    .into_iter()
                    .map(|group| group.into_iter().map(|r| r.name).collect())
                    .collect())
            };
            let name = control.get("Package").unwrap_or(&p.name).to_string();
            if name != p.name {
                return Err(RootfsError::Install(format!(
                    "{} holds package {name:?}, but the index/lockfile said {:?}",
                    path.display(),
                    p.name
                )));
            }
            Ok(DebInfo {
                essential: control.get("Essential").is_some_and(|v| v.trim() == "yes"),
                pre_depends: field("Pre-Depends")?,
                depends: field("Depends")?,
                provides: field("Provides")?.into_iter().flatten().collect(),
                mtime: deb.mtime(),
                installed_size: control
                    .get("Installed-Size")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(0, |kib| kib * 1024),
                path: path.clone(),
                name,
            })
        })
        .collect()
}

/// Indices of `debs` in install order: each package after what it (pre-)depends on, ties
/// and cycles resolved by name order.
pub fn install_order(debs: &[DebInfo]) -> Vec<usize> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in debs.iter().enumerate() {
        by_name.insert(&d.name, i);
    }
    let mut providers: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in debs.iter().enumerate() {
        for v in &d.provides {
            providers.entry(v.as_str()).or_insert(i);
        }
    }
    let pick = |group: &Vec<String>| -> Option<usize> {
        group.iter().find_map(|n| {
            by_name
                .get(n.as_str())
                .or_else(|| providers.get(n.as_str()))
                .copied()
        })
    };
    let deps: Vec<Vec<usize>> = debs
        .iter()
        .map(|d| {
            d.pre_depends
                .iter()
                .chain(&d.depends)
                .filter_map(pick)
                .collect()
        })
        .collect();
    let mut state = vec![0u8; debs.len()]; // 0 new, 1 on stack, 2 done
    let mut order = Vec::with_capacity(debs.len());
    let mut names: Vec<usize> = (0..debs.len()).collect();
    names.sort_by(|a, b| debs[*a].name.cmp(&debs[*b].name));
    fn visit(i: usize, deps: &[Vec<usize>], state: &mut [u8], order: &mut Vec<usize>) {
        if state[i] != 0 {
            return; // done, or a cycle: the package on the stack goes first
        }
        state[i] = 1;
        for &d in &deps[i] {
            visit(d, deps, state, order);
        }
        state[i] = 2;
        order.push(i);
    }
    for i in names {
        visit(i, &deps, &mut state, &mut order);
    }
    order
}

/// The essential set: `Essential: yes` packages and everything they (pre-)depend on.
pub fn essential_set(debs: &[DebInfo]) -> BTreeSet<usize> {
    let by_name: BTreeMap<&str, usize> = debs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut providers: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in debs.iter().enumerate() {
        for v in &d.provides {
            providers.entry(v.as_str()).or_insert(i);
        }
    }
    let mut set = BTreeSet::new();
    let mut todo: Vec<usize> = (0..debs.len()).filter(|&i| debs[i].essential).collect();
    while let Some(i) = todo.pop() {
        if !set.insert(i) {
            continue;
        }
        for group in debs[i].pre_depends.iter().chain(&debs[i].depends) {
            if let Some(&d) = group.iter().find_map(|n| {
                by_name
                    .get(n.as_str())
                    .or_else(|| providers.get(n.as_str()))
            }) {
                todo.push(d);
            }
        }
    }
    set
}

/// Installs `debs` into the empty directory `root`: unpacks every package in parallel
/// (see [`crate::unpack`]), runs each `preinst install` in install order, then has the
/// tree's dpkg configure everything (`dpkg --configure --pending`), which runs the
/// `postinst` scripts and triggers and writes the final database.
///
/// dpkg would run a `preinst` before its package's files exist and configure the essential
/// set before unpacking the rest; here every file exists before the first script runs,
/// which is what a fresh bootstrap needs (mmdebstrap and debootstrap also unpack the
/// essential set before any script runs). `dpkg --audit` checks the result.
pub fn install(
    root: &Path,
    debs: &[DebInfo],
    architecture: &str,
    source_date_epoch: i64,
) -> Result<(), RootfsError> {
    if !debs.iter().any(|d| d.name == "dpkg") {
        return Err(RootfsError::Install(
            "the package set has no dpkg, so maintainer scripts cannot run: use variant minbase or essential".into(),
        ));
    }
    let order = install_order(debs);
    prepare_dpkg_dirs(root, architecture)?;
    merge_usr(root)?;
    let started = std::time::Instant::now();
    let unpacked = crate::unpack::unpack_all(root, debs, &order)?;
    crate::unpack::write_database(root, &unpacked)?;
    tracing::info!(packages = unpacked.len(), elapsed = ?started.elapsed(), "unpacked");
    let dpkg_version = unpacked
        .iter()
        .map(|u| &u.control.control)
        .find(|c| c.get("Package") == Some("dpkg"))
        .and_then(|c| c.get("Version"))
        .unwrap_or_default()
        .to_string();

    let policy = root.join("usr/sbin/policy-rc.d");
    write_file(
        &policy,
        b"#!/bin/sh\n# vmimage: no service starts during the build\nexit 101\n",
        0o755,
    )?;
    // Each preinst runs as dpkg runs it: from the package's control files in
    // /var/lib/dpkg/tmp.ci (debconf reads templates and the owner's name from there).
    let mut commands: Vec<Vec<String>> = Vec::new();
    for u in &unpacked {
        if !u.control.members.contains_key("preinst") {
            continue;
        }
        let c = &u.control.control;
        let name = c.get("Package").unwrap_or_default();
        let arch = c.get("Architecture").unwrap_or(architecture);
        let db = crate::unpack::db_name(&u.control);
        // Staged on the host, moved into place just before the script runs.
        let stage = format!("var/lib/dpkg/tmp.ci.{db}");
        let mut control = c.raw().trim_end().to_string();
        control.push('\n');
        write_file(
            &root.join(&stage).join("control"),
            control.as_bytes(),
            0o644,
        )?;
        crate::unpack::write_members(&u.control, |m| root.join(&stage).join(m))?;
        let script = format!(
            "set -e\nCI=/var/lib/dpkg/tmp.ci\nrm -rf $CI\nmv {} $CI\n\
             DPKG_MAINTSCRIPT_PACKAGE={name} DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 \
             DPKG_MAINTSCRIPT_ARCH={arch} DPKG_MAINTSCRIPT_NAME=preinst \
             DPKG_RUNNING_VERSION={dpkg_version} DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT= \
             $CI/preinst install\nrm -rf $CI\n",
            sh_quote(&format!("/{stage}"))
        );
        commands.push(vec!["/bin/sh".into(), "-c".into(), script]);
    }
    // The essential set is configured first, as a bootstrap does: the rest's scripts may
    // read its configuration (passwd's postinst reads login's /etc/login.defs).
    let essential = essential_set(debs);
    let mut first: Vec<String> = [
        "dpkg",
        "--force-depends",
        "--force-unsafe-io",
        "--configure",
    ]
    .map(String::from)
    .to_vec();
    first.extend(
        unpacked
            .iter()
            .filter(|u| essential.contains(&u.index))
            .map(|u| crate::unpack::db_name(&u.control)),
    );
    if first.len() > 4 {
        commands.push(first);
    }
    commands.push(
        [
            "dpkg",
            "--force-depends",
            "--force-unsafe-io",
            "--configure",
            "--pending",
        ]
        .map(String::from)
        .to_vec(),
    );
    let chroot = Chroot::new(root, source_date_epoch);
    let started = std::time::Instant::now();
    let result = chroot.run("configuring packages with dpkg", &commands);
    tracing::info!(elapsed = ?started.elapsed(), "configured");
    // policy-rc.d is ours, not a package's: it must not ship.
    let _ = std::fs::remove_file(&policy);
    result?;
    let audit = Chroot::new(root, source_date_epoch).output(
        "checking the dpkg database",
        &["dpkg".into(), "--audit".into()],
    )?;
    if !audit.trim().is_empty() {
        return Err(RootfsError::Install(format!(
            "dpkg --audit reports problems:\n{audit}"
        )));
    }
    Ok(())
}

/// Merged `/usr` (Debian since bookworm, Ubuntu since 21.04): `/bin`, `/sbin`, `/lib` and
/// `/lib64` are symlinks into `/usr`, made before anything is unpacked, as debootstrap and
/// mmdebstrap do, so packages' files land once, in `/usr`.
fn merge_usr(root: &Path) -> Result<(), RootfsError> {
    for d in ["bin", "sbin", "lib", "lib64"] {
        let target = root.join("usr").join(d);
        std::fs::create_dir_all(&target).map_err(io_err(&target))?;
        let link = root.join(d);
        std::os::unix::fs::symlink(format!("usr/{d}"), &link).map_err(io_err(&link))?;
    }
    Ok(())
}

fn prepare_dpkg_dirs(root: &Path, architecture: &str) -> Result<(), RootfsError> {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/lib/dpkg/alternatives",
        "var/lib/dpkg/parts",
        "etc/dpkg/dpkg.cfg.d",
        "proc",
        "sys",
        "dev",
        "tmp",
    ] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(io_err(&p))?;
    }
    set_mode(&root.join("tmp"), 0o1777)?;
    write_file(&root.join("var/lib/dpkg/status"), b"", 0o644)?;
    write_file(&root.join("var/lib/dpkg/available"), b"", 0o644)?;
    write_file(
        &root.join("var/lib/dpkg/arch"),
        format!("{architecture}\n").as_bytes(),
        0o644,
    )?;
    Ok(())
}

pub(crate) fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), RootfsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::write(path, data).map_err(io_err(path))?;
    set_mode(path, mode)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Runs commands chrooted into a tree, with `/proc`, `/sys` and `/dev` mounted in a private
/// mount namespace that dies with the command.
pub struct Chroot<'a> {
    root: &'a Path,
    env: Vec<(String, String)>,
}

impl<'a> Chroot<'a> {
    /// A chroot into `root` with a clean, reproducible environment.
    pub fn new(root: &'a Path, source_date_epoch: i64) -> Chroot<'a> {
        let env = [
            ("PATH", CHROOT_PATH.to_string()),
            ("HOME", "/root".into()),
            ("LC_ALL", "C.UTF-8".into()),
            ("DEBIAN_FRONTEND", "noninteractive".into()),
            ("DEBCONF_NONINTERACTIVE_SEEN", "true".into()),
            ("SOURCE_DATE_EPOCH", source_date_epoch.to_string()),
        ];
        Chroot {
            root,
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn script(&self, commands: &[Vec<String>]) -> String {
        let mut s = String::from(
            "set -e\nR=\"$1\"\n\
             mount -t proc proc \"$R/proc\"\n\
             mount --rbind /sys \"$R/sys\"\n\
             mount --rbind /dev \"$R/dev\"\n",
        );
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| sh_quote(&format!("{k}={v}")))
            .collect();
        for cmd in commands {
            let argv: Vec<String> = cmd.iter().map(|a| sh_quote(a)).collect();
            s.push_str(&format!(
                "chroot \"$R\" /usr/bin/env -i {} {}\n",
                env.join(" "),
                argv.join(" ")
            ));
        }
        s
    }

    fn command(&self, commands: &[Vec<String>]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(self.script(commands))
            .arg("vmimage-chroot")
            .arg(self.root);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd
    }

    /// Runs `commands` in order; the first failure stops the rest.
    pub fn run(&self, step: &str, commands: &[Vec<String>]) -> Result<(), RootfsError> {
        self.run_all(step, commands).map(|_| ())
    }

    fn run_all(&self, step: &str, commands: &[Vec<String>]) -> Result<String, RootfsError> {
        let mut cmd = self.command(commands);
        tracing::debug!(step, ?commands, "running in chroot");
        let out = cmd.output().map_err(|e| RootfsError::Command {
            step: step.to_string(),
            command: "unshare".into(),
            status: e.to_string(),
            output: String::new(),
        })?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        tracing::trace!(step, output = %text);
        if !out.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            return Err(RootfsError::Command {
                step: step.to_string(),
                command: commands
                    .iter()
                    .map(|c| c.join(" "))
                    .collect::<Vec<_>>()
                    .join("; "),
                status: out.status.to_string(),
                output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(text)
    }

    /// Runs one command and returns its output.
    pub fn output(&self, step: &str, argv: &[String]) -> Result<String, RootfsError> {
        if argv.is_empty() {
            return Ok(String::new());
        }
        self.run_all(step, &[argv.to_vec()])
    }
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(
        name: &str,
        pre: &[&str],
        deps: &[&[&str]],
        provides: &[&str],
        essential: bool,
    ) -> DebInfo {
        DebInfo {
            name: name.into(),
            essential,
            pre_depends: pre.iter().map(|p| vec![p.to_string()]).collect(),
            depends: deps
                .iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect(),
            provides: provides.iter().map(|s| s.to_string()).collect(),
            path: PathBuf::new(),
            mtime: 0,
            installed_size: 0,
        }
    }

    #[test]
    fn test_install_order_puts_dependencies_first() {
        let debs = vec![
            deb(
                "app",
                &[],
                &[&["mail-transport-agent"], &["libfoo"]],
                &[],
                false,
            ),
            deb("exim", &["libc6"], &[], &["mail-transport-agent"], false),
            deb("libc6", &[], &[], &[], false),
            deb("libfoo", &["libc6"], &[&["missing", "libc6"]], &[], false),
        ];
        let order: Vec<&str> = install_order(&debs)
            .iter()
            .map(|&i| debs[i].name.as_str())
            .collect();
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("libc6") < pos("exim"));
        assert!(
            pos("exim") < pos("app"),
            "virtual package provider first: {order:?}"
        );
        assert!(pos("libfoo") < pos("app"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn test_install_order_survives_cycles() {
        let debs = vec![
            deb("a", &[], &[&["b"]], &[], false),
            deb("b", &[], &[&["a"]], &[], false),
        ];
        let order = install_order(&debs);
        assert_eq!(order.len(), 2);
    }

    #[test]
    fn test_essential_set_closes_over_dependencies() {
        let debs = vec![
            deb("dash", &["libc6"], &[], &[], true),
            deb("libc6", &[], &[&["libgcc-s1"]], &[], false),
            deb("libgcc-s1", &[], &[], &[], false),
            deb("curl", &[], &[&["libc6"]], &[], false),
        ];
        let set: Vec<&str> = essential_set(&debs)
            .iter()
            .map(|&i| debs[i].name.as_str())
            .collect();
        assert_eq!(set, vec!["dash", "libc6", "libgcc-s1"]);
    }

    #[test]
    fn test_sh_quote_round_trips_awkward_strings() {
        for s in ["plain", "with space", "it's", "", "$HOME;rm"] {
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
