//! Boots images: a QEMU microvm runner used to prove an image boots, and the
//! Firecracker configuration for production.
//!
//! - [`BootConfig`]: what to boot, as plain data ([`boot`]);
//! - [`boot_qemu`]: QEMU `microvm` with TCG, watching the serial console ([`qemu`]);
//! - [`FirecrackerConfig`]: Firecracker's `--config-file` JSON ([`firecracker`]),
//!   which cannot run on the build machines.

#![warn(missing_docs)]

pub mod boot;
pub mod firecracker;
pub mod qemu;

pub use boot::{BootConfig, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
pub use firecracker::{DEBUG_BOOT_ARGS, DEFAULT_BOOT_ARGS, FirecrackerConfig};
pub use qemu::{
    BootOutcome, DEFAULT_QEMU_CMDLINE, QemuBootError, QemuOptions, boot_qemu, qemu_args,
};
