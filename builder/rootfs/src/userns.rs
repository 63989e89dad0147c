//! Building without root: a user namespace in which the caller is root.
//!
//! A root tree needs root's powers: files owned by many users, `chroot`, mounts for the
//! maintainer scripts. A caller that is not root gets them inside a user namespace, the way
//! mmdebstrap's `unshare` mode does: the caller's uid and gid become 0, and the first 65,536
//! ids after 0 map onto the caller's subordinate ranges from `/etc/subuid` and
//! `/etc/subgid` (set up by `newuidmap`/`newgidmap`, Debian package `uidmap`). New mount
//! and pid namespaces come with it, so `/proc` can be mounted for the scripts.
//!
//! Limits: device nodes cannot be made inside a user namespace (no Debian package ships
//! one in its data); files in a tree left behind by a crash belong to subordinate ids.

use std::path::Path;
use std::process::Command;

/// Set in the re-executed process: it runs inside the namespace already.
pub const INSIDE_ENV: &str = "VMIMAGE_IN_USERNS";
/// Ids mapped after 0: all a Debian system uses (nobody is 65534).
pub const MAPPED_IDS: u64 = 65536;

/// Why the namespace cannot be set up, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "building a root filesystem needs root, or subordinate ids for the caller: {reason}. \
     Run as root, or give `{user}` {MAPPED_IDS} subordinate uids and gids \
     (`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`) and install \
     newuidmap/newgidmap (Debian package `uidmap`)"
)]
pub struct UsernsError {
    /// The caller's user name (or uid).
    pub user: String,
    /// What is missing.
    pub reason: String,
}

/// Whether this process must re-execute itself in a user namespace: it is not root and
/// not inside one already.
pub fn needed() -> bool {
    !rustix::process::geteuid().is_root() && std::env::var_os(INSIDE_ENV).is_none()
}

/// The first range `(start, count)` of subordinate ids for `user` (a name or a uid) in a
/// `/etc/subuid`-style file, if one holds at least [`MAPPED_IDS`].
pub fn subordinate_range(text: &str, name: &str, id: u32) -> Option<(u64, u64)> {
    let id = id.to_string();
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != id {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u64>().ok()?);
        (count >= MAPPED_IDS).then_some((start, count))
    })
}

/// The user name of `uid` from a `/etc/passwd`-style file.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    let uid = uid.to_string();
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
    })
}

/// `unshare` re-running `program args` as root of a new user, mount and pid namespace.
pub fn command(program: &Path, args: &[std::ffi::OsString]) -> Result<Command, UsernsError> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let name = user_name(&read("/etc/passwd"), uid).unwrap_or_else(|| uid.to_string());
    let fail = |reason: String| UsernsError {
        user: name.clone(),
        reason,
    };
    let (subuid, _) = subordinate_range(&read("/etc/subuid"), &name, uid)
        .ok_or_else(|| fail(format!("no range of {MAPPED_IDS} ids in /etc/subuid")))?;
    let (subgid, _) = subordinate_range(&read("/etc/subgid"), &name, gid)
        .or_else(|| subordinate_range(&read("/etc/subgid"), &name, uid))
        .ok_or_else(|| fail(format!("no range of {MAPPED_IDS} ids in /etc/subgid")))?;
    for tool in ["newuidmap", "newgidmap", "unshare"] {
        let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Err(fail(format!("`{tool}` is not installed")));
        }
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        &format!("--map-users={subuid},1,{MAPPED_IDS}"),
        &format!("--map-groups={subgid},1,{MAPPED_IDS}"),
        "--mount",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--",
    ])
    .arg(program)
    .args(args)
    .env(INSIDE_ENV, "1");
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_subordinate_range_by_name_or_uid_and_large_enough() {
        let text = "alice:100000:65536\n1001:300000:70000\nbob:200000:1000\n";
        assert_eq!(
            subordinate_range(text, "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            subordinate_range(text, "carol", 1001),
            Some((300000, 70000))
        );
        assert_eq!(subordinate_range(text, "bob", 1002), None, "too few ids");
        assert_eq!(subordinate_range(text, "dave", 1003), None);
    }

    #[test]
    fn test_user_name_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nci:x:1000:1000::/home/ci:/bin/sh\n";
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("ci"));
        assert_eq!(user_name(passwd, 5), None);
    }
}
