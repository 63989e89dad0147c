//! Boots a [`BootConfig`] under QEMU's `microvm` machine, the stand-in for
//! Firecracker on machines without usable KVM: the same virtio-mmio device
//! model and serial console, entered through the kernel's PVH note.
//!
//! The machine runs with `acpi=off`, so QEMU describes the virtio-mmio
//! devices on the kernel command line (`virtio_mmio.device=`, which needs
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y`); with `-no-reboot`, a guest
//! `reboot -f` (or a panic with `panic=-1`) makes QEMU exit.
//!
//! [`boot_qemu`] captures the serial console and returns when a given line
//! appears (then stops QEMU), when QEMU exits, or fails after a timeout.
//! Limits: one block device, no network; TCG by default, because nested
//! KVM on the build machines cannot run a stock guest.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::boot::BootConfig;

/// The QEMU binary used unless [`QemuOptions::qemu`] says otherwise.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";
/// Default time limit for a boot.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// A command line for test boots: serial console, the virtio disk as root,
/// and QEMU exiting (through `-no-reboot`) if the kernel panics.
pub const DEFAULT_QEMU_CMDLINE: &str = "console=ttyS0 root=/dev/vda rw panic=-1 reboot=t";

/// A QEMU boot failed.
#[derive(Debug, thiserror::Error)]
pub enum QemuBootError {
    /// QEMU could not be started.
    #[error("starting {qemu}: {source}")]
    Spawn {
        /// The binary.
        qemu: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An input file is missing.
    #[error("{what} {path} does not exist")]
    Missing {
        /// "kernel" or "rootfs".
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The wanted line did not appear in time.
    #[error(
        "no line containing {wanted:?} on the console within {timeout:?}; last output:\n{tail}"
    )]
    Timeout {
        /// The awaited text.
        wanted: String,
        /// The limit.
        timeout: Duration,
        /// The end of the console output.
        tail: String,
    },
    /// QEMU exited before the wanted line appeared.
    #[error(
        "QEMU exited ({status}) before a line containing {wanted:?} appeared; last output:\n{tail}"
    )]
    ExitedEarly {
        /// The awaited text.
        wanted: String,
        /// QEMU's exit status.
        status: String,
        /// The end of the console output.
        tail: String,
    },
}

/// How to run QEMU.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// The binary (default [`DEFAULT_QEMU`]).
    pub qemu: String,
    /// Return as soon as a console line contains this; `None` waits for
    /// QEMU to exit.
    pub wait_for: Option<String>,
    /// Time limit (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// `-accel` value (default `tcg`).
    pub accel: String,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            qemu: DEFAULT_QEMU.to_string(),
            wait_for: None,
            timeout: DEFAULT_TIMEOUT,
            accel: "tcg".to_string(),
        }
    }
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// Everything the serial console printed.
    pub console: String,
    /// Whether the awaited line appeared.
    pub saw_line: bool,
    /// QEMU's exit code, if it exited by itself (not stopped by us).
    pub exit_code: Option<i32>,
    /// Wall time from starting QEMU to the line (or to exit).
    pub elapsed: Duration,
}

/// The QEMU command line for `cfg` (exposed for logs and tests).
pub fn qemu_args(cfg: &BootConfig, opts: &QemuOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "-M",
        "microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off",
        "-accel",
        &opts.accel,
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-smp".into(),
        cfg.vcpus.to_string(),
        "-m".into(),
        format!("{}M", cfg.memory_mib),
        "-kernel".into(),
        cfg.kernel.display().to_string(),
        "-append".into(),
        cfg.cmdline.clone(),
    ]);
    if let Some(rootfs) = &cfg.rootfs {
        args.extend([
            "-device".into(),
            "virtio-blk-device,drive=d0".into(),
            "-drive".into(),
            format!("id=d0,file={},format=raw,if=none", rootfs.display()),
        ]);
    }
    args
}

fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots `cfg` under QEMU microvm and watches the serial console.
///
/// ```no_run
/// use vmimage_vm::{BootConfig, QemuOptions, boot_qemu, DEFAULT_QEMU_CMDLINE};
/// let cfg = BootConfig::new("out/kernel/vmlinux", Some("rootfs.ext4".into()), DEFAULT_QEMU_CMDLINE);
/// let opts = QemuOptions { wait_for: Some("login:".into()), ..QemuOptions::default() };
/// let outcome = boot_qemu(&cfg, &opts)?;
/// println!("booted in {:?}", outcome.elapsed);
/// # Ok::<(), vmimage_vm::QemuBootError>(())
/// ```
pub fn boot_qemu(cfg: &BootConfig, opts: &QemuOptions) -> Result<BootOutcome, QemuBootError> {
    if !cfg.kernel.is_file() {
        return Err(QemuBootError::Missing {
            what: "kernel",
            path: cfg.kernel.clone(),
        });
    }
    if let Some(r) = cfg.rootfs.as_ref().filter(|r| !r.is_file()) {
        return Err(QemuBootError::Missing {
            what: "rootfs",
            path: r.clone(),
        });
    }
    let args = qemu_args(cfg, opts);
    tracing::debug!("{} {}", opts.qemu, args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(&opts.qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| QemuBootError::Spawn {
            qemu: opts.qemu.clone(),
            source,
        })?;
    // Readers send chunks; a closed channel means both pipes hit EOF.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut readers = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    for mut pipe in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut raw = Vec::new();
    let wanted = opts.wait_for.clone();
    let deadline = start + opts.timeout;
    let mut saw_line = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            stop(&mut child);
            let console = String::from_utf8_lossy(&raw).into_owned();
            return Err(QemuBootError::Timeout {
                wanted: wanted.unwrap_or_else(|| "<QEMU exit>".into()),
                timeout: opts.timeout,
                tail: tail(&console),
            });
        }
        match rx.recv_timeout(deadline - now) {
            Ok(chunk) => {
                raw.extend_from_slice(&chunk);
                if let Some(w) = &wanted {
                    // Only complete lines count: a marker is a whole line's text.
                    let text = String::from_utf8_lossy(&raw);
                    if text
                        .lines()
                        .rev()
                        .skip(usize::from(!text.ends_with('\n')))
                        .any(|l| l.contains(w.as_str()))
                    {
                        saw_line = true;
                        break;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let elapsed = start.elapsed();
    let exit_code = if saw_line {
        // Give a guest that is rebooting a moment to let QEMU exit by
        // itself, then stop it.
        let grace = Instant::now() + Duration::from_secs(2);
        let mut code = None;
        while Instant::now() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                code = status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if code.is_none() {
            stop(&mut child);
        }
        code
    } else {
        child.wait().ok().and_then(|s| s.code())
    };
    // Drain what is left.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        raw.extend_from_slice(&chunk);
    }
    let console = String::from_utf8_lossy(&raw).into_owned();
    if let (Some(w), false) = (&wanted, saw_line) {
        return Err(QemuBootError::ExitedEarly {
            wanted: w.clone(),
            status: exit_code.map_or("killed by a signal".into(), |c| format!("exit code {c}")),
            tail: tail(&console),
        });
    }
    Ok(BootOutcome {
        console,
        saw_line,
        exit_code,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_qemu_args_describe_a_microvm_with_a_virtio_mmio_disk() {
        let cfg = BootConfig {
            kernel: "/k/vmlinux".into(),
            rootfs: Some("/r/root.ext4".into()),
            cmdline: "console=ttyS0 root=/dev/vda".into(),
            vcpus: 2,
            memory_mib: 512,
        };
        let args = qemu_args(&cfg, &QemuOptions::default()).join(" ");
        assert_eq!(
            args,
            "-M microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off -accel tcg -nodefaults -no-user-config -nographic -serial stdio -no-reboot -smp 2 -m 512M -kernel /k/vmlinux -append console=ttyS0 root=/dev/vda -device virtio-blk-device,drive=d0 -drive id=d0,file=/r/root.ext4,format=raw,if=none"
        );
    }

    #[test]
    fn test_missing_kernel_is_reported_before_starting_qemu() {
        let cfg = BootConfig::new("/nonexistent/vmlinux", None, "");
        let err = boot_qemu(&cfg, &QemuOptions::default()).unwrap_err();
        assert!(
            matches!(err, QemuBootError::Missing { what: "kernel", .. }),
            "{err}"
        );
    }

    #[test]
    fn test_console_capture_wait_and_timeout_with_a_stand_in_binary() {
        // A shell script stands in for QEMU here (the real boot is in
        // tests/tests/kernel.rs): it checks the runner's line matching,
        // exit handling and timeout, not QEMU.
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"").unwrap();
        let script = dir.path().join("fake-qemu");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'booting'\nprintf 'MARK'\nsleep 0.2\necho 'ER-42'\nsleep 30\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        let cfg = BootConfig::new(&kernel, None, "");
        let opts = QemuOptions {
            qemu: script.display().to_string(),
            wait_for: Some("MARKER-42".into()),
            timeout: Duration::from_secs(20),
            ..QemuOptions::default()
        };
        let out = boot_qemu(&cfg, &opts).unwrap();
        assert!(out.saw_line && out.console.contains("booting"));
        assert!(out.elapsed < Duration::from_secs(10));

        let opts = QemuOptions {
            wait_for: Some("never".into()),
            timeout: Duration::from_secs(1),
            ..opts
        };
        let err = boot_qemu(&cfg, &opts).unwrap_err();
        assert!(matches!(err, QemuBootError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("MARKER-42"), "{err}");

        std::fs::write(&script, "#!/bin/sh\necho 'panic'\nexit 3\n").unwrap();
        let err = boot_qemu(&cfg, &opts).unwrap_err();
        assert!(err.to_string().contains("exit code 3"), "{err}");
    }
}
