//! Firecracker's `--config-file` JSON for a [`BootConfig`]: `boot-source`,
//! `drives`, `machine-config` and `network-interfaces`, with the boot
//! arguments Firecracker's own boot-time test uses.
//!
//! This is real code that cannot run on the build machines (their nested
//! KVM cannot run Firecracker); the shape is checked against Firecracker's
//! documented schema in the unit test. Firecracker adds `root=/dev/vda rw`
//! (or `ro`) itself for the drive marked `is_root_device`, and the
//! `virtio_mmio.device=` arguments for its devices.

use serde::{Deserialize, Serialize};

use crate::boot::BootConfig;

/// Boot arguments for production guests, from Firecracker's boot-time
/// test: reboot through the keyboard controller, panic reboots at once,
/// no module loading, no serial console (`8250.nr_uarts=0`: printing to a
/// UART traps to the VMM on every byte), no i8042 probing beyond reset,
/// no swiotlb bounce buffers and no crypto self-tests.
pub const DEFAULT_BOOT_ARGS: &str = "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd swiotlb=noforce cryptomgr.notests";

/// Boot arguments for debugging: the same with the serial console on.
pub const DEBUG_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 nomodule i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd swiotlb=noforce cryptomgr.notests";

/// The whole `--config-file` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerConfig {
    /// The kernel and its command line.
    #[serde(rename = "boot-source")]
    pub boot_source: BootSource,
    /// Block devices.
    pub drives: Vec<Drive>,
    /// vCPUs and memory.
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfig,
    /// Network interfaces (tap devices on the host).
    #[serde(rename = "network-interfaces", default)]
    pub network_interfaces: Vec<NetworkInterface>,
}

/// `boot-source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSource {
    /// Path of the uncompressed `vmlinux` on the host.
    pub kernel_image_path: String,
    /// The kernel command line.
    pub boot_args: String,
    /// An initrd, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initrd_path: Option<String>,
}

/// One entry of `drives`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drive {
    /// An id unique among the drives.
    pub drive_id: String,
    /// The image file on the host.
    pub path_on_host: String,
    /// Whether this is `/dev/vda`, the root filesystem.
    pub is_root_device: bool,
    /// Attach read-only.
    pub is_read_only: bool,
}

/// `machine-config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// vCPUs.
    pub vcpu_count: u8,
    /// Memory in MiB.
    pub mem_size_mib: u32,
    /// Simultaneous multithreading in the guest.
    pub smt: bool,
}

/// One entry of `network-interfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    /// Interface id, e.g. `eth0`.
    pub iface_id: String,
    /// The host tap device.
    pub host_dev_name: String,
    /// The guest MAC address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub guest_mac: Option<String>,
}

impl FirecrackerConfig {
    /// The config for `boot` (its rootfs as the read-write root drive).
    pub fn from_boot(boot: &BootConfig) -> Self {
        Self {
            boot_source: BootSource {
                kernel_image_path: boot.kernel.display().to_string(),
                boot_args: boot.cmdline.clone(),
                initrd_path: None,
            },
            drives: boot
                .rootfs
                .iter()
                .map(|r| Drive {
                    drive_id: "rootfs".into(),
                    path_on_host: r.display().to_string(),
                    is_root_device: true,
                    is_read_only: false,
                })
                .collect(),
            machine_config: MachineConfig {
                vcpu_count: boot.vcpus,
                mem_size_mib: boot.memory_mib,
                smt: false,
            },
            network_interfaces: Vec::new(),
        }
    }

    /// The JSON document for `firecracker --config-file`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_config_file_json_has_firecrackers_shape() {
        let mut boot = BootConfig::new(
            "/img/vmlinux",
            Some("/img/rootfs.ext4".into()),
            DEFAULT_BOOT_ARGS,
        );
        boot.vcpus = 2;
        boot.memory_mib = 1024;
        let mut cfg = FirecrackerConfig::from_boot(&boot);
        cfg.network_interfaces.push(NetworkInterface {
            iface_id: "eth0".into(),
            host_dev_name: "tap0".into(),
            guest_mac: Some("06:00:AC:10:00:02".into()),
        });
        let v: serde_json::Value = serde_json::from_str(&cfg.to_json()).unwrap();
        let expected = serde_json::json!({
            "boot-source": {
                "kernel_image_path": "/img/vmlinux",
                "boot_args": DEFAULT_BOOT_ARGS,
            },
            "drives": [{
                "drive_id": "rootfs",
                "path_on_host": "/img/rootfs.ext4",
                "is_root_device": true,
                "is_read_only": false,
            }],
            "machine-config": { "vcpu_count": 2, "mem_size_mib": 1024, "smt": false },
            "network-interfaces": [{
                "iface_id": "eth0",
                "host_dev_name": "tap0",
                "guest_mac": "06:00:AC:10:00:02",
            }],
        });
        assert_eq!(v, expected);
        // And it reads back.
        let back: FirecrackerConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn test_default_boot_args_turn_off_the_serial_console() {
        assert!(DEFAULT_BOOT_ARGS.contains("8250.nr_uarts=0"));
        assert!(!DEFAULT_BOOT_ARGS.contains("console="));
        assert!(DEBUG_BOOT_ARGS.contains("console=ttyS0"));
    }
}
