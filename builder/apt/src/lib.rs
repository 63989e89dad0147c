//! Talks to apt archives: signed Release files, Packages indices, Debian versions, dependency resolution, verified downloads and .deb reading.

#![warn(missing_docs)]
