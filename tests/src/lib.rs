//! Shared helpers for the integration tests in `tests/tests/`: finding the
//! `vmimage` binary and running real tools.

#![warn(missing_docs)]

pub mod aptrepo;
pub mod proxy;
pub mod registry;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `vmimage` binary built for this test run (`make test` builds it
/// first). `VMIMAGE_BIN` overrides.
pub fn vmimage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VMIMAGE_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binary one up.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("vmimage");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --bin vmimage` first (make test does)",
        bin.display()
    );
    bin
}

/// A `Command` for `vmimage` with the given arguments.
pub fn vmimage<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(vmimage_bin());
    cmd.args(args);
    cmd
}

/// Runs `cmd`, panicking with its stderr if it fails; returns its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `tool` is on PATH (including the sbin directories).
pub fn have_tool(tool: &str) -> bool {
    which(tool).is_some()
}

/// The full path of `tool`, searching PATH plus /usr/sbin and /sbin.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
