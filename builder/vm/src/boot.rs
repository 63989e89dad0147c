//! What to boot, as plain data shared by the QEMU runner and the
//! Firecracker configuration: a kernel, an optional root disk, a command
//! line, vCPUs and memory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default vCPU count.
pub const DEFAULT_VCPUS: u8 = 1;
/// Default guest memory in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

/// A VM to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootConfig {
    /// An uncompressed ELF `vmlinux` (PVH entry).
    pub kernel: PathBuf,
    /// A raw ext4 image attached as the first virtio block device
    /// (`/dev/vda`), or none.
    pub rootfs: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// vCPUs (default [`DEFAULT_VCPUS`]).
    pub vcpus: u8,
    /// Memory in MiB (default [`DEFAULT_MEMORY_MIB`]).
    pub memory_mib: u32,
}

impl BootConfig {
    /// A config with the default vCPUs and memory.
    pub fn new(
        kernel: impl Into<PathBuf>,
        rootfs: Option<PathBuf>,
        cmdline: impl Into<String>,
    ) -> Self {
        Self {
            kernel: kernel.into(),
            rootfs,
            cmdline: cmdline.into(),
            vcpus: DEFAULT_VCPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }
}
