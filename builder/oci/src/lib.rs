//! Packs images as OCI artifacts and moves them between OCI image layouts,
//! registries and Amazon ECR.
//!
//! Entry points, all async (run them with [`block_on`]): [`pack`], [`push`],
//! [`pull`], [`inspect`], [`tags`], [`release`] and [`release_list`]. The
//! artifact format is in [`format`] and `docs/artifact-format.md`.
//!
//! ```no_run
//! use vmimage_oci::{ImageRef, RegistryOptions, block_on, push};
//! let src = ImageRef::parse("oci:out/oci:web").unwrap();
//! let dst = ImageRef::parse("registry.example:5000/team/web:1").unwrap();
//! let done = block_on(push(&src, &dst, &RegistryOptions::default())).unwrap();
//! println!("{} ({} blobs uploaded)", done.digest, done.blobs_copied);
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod error;
pub mod format;
pub mod layout;
pub mod pack;
pub mod reference;
pub mod registry;
pub mod release;
pub mod store;
pub mod transfer;

pub use auth::{Credentials, EcrOptions, Secret};
pub use error::TransferError;
pub use pack::{PackError, PackOutcome, PackRequest, pack};
pub use reference::{ImageRef, ReferenceError, Target};
pub use registry::{DEFAULT_CONCURRENCY, RegistryOptions};
pub use release::{ReleaseEntry, ReleaseOutcome, ReleaseRequest, release, release_list};
pub use transfer::{Inspection, PullOutcome, PushOutcome, inspect, pull, push, tags};

/// Runs one of this crate's async entry points on a multi-threaded tokio
/// runtime (for synchronous callers such as the CLI).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}
