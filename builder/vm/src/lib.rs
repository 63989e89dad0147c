//! Boots images: a Firecracker client and a QEMU microvm runner used to prove an image boots, and snapshots.

#![warn(missing_docs)]
