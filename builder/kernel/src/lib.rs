//! Builds an uncompressed `vmlinux` from a kernel recipe (pinned source, base config, fragments) and extracts one from a compressed bzImage.

#![warn(missing_docs)]
