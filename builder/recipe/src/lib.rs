//! Reads and validates vmimage recipes (TOML): the rootfs, kernel, disk, boot and publish settings of one image.

#![warn(missing_docs)]
