//! Composes a root filesystem tree from a recipe and the packages `vmimage-apt` resolved: unpack, dpkg database, maintainer scripts, files, users, services, lockfile and SBOM.

#![warn(missing_docs)]
