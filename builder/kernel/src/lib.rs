//! Builds an uncompressed `vmlinux` from a kernel recipe (pinned source, base config,
//! fragments) and extracts one from a compressed bzImage.
//!
//! - [`KernelRecipe`]: a `kernels/*.toml` recipe, read strictly ([`recipe`]);
//! - [`build_kernel`]: source → config → checked options → `make vmlinux` → outputs,
//!   cached by content ([`build`]);
//! - [`extract_vmlinux`]: a distribution's `vmlinuz` → `vmlinux` ([`extract`]);
//! - [`config`], [`kconfig`], [`elf`], [`lzo`], [`source`]: the pieces, usable alone.
//!
//! Limits: x86_64 only; the build runs the host's `make` and `gcc`.

#![warn(missing_docs)]

pub mod build;
pub mod config;
pub mod elf;
pub mod extract;
pub mod kconfig;
pub mod lzo;
pub mod recipe;
pub mod source;

pub use build::{
    BuildOptions, BuildOutcome, BuildRecord, KernelBuildError, build_kernel, default_cache_dir,
};
pub use config::{ConfigFile, ConfigParseError, ConfigValue, DroppedOption};
pub use extract::{Compression, ExtractError, ExtractReport, extract_vmlinux};
pub use kconfig::KconfigTree;
pub use recipe::{Arch, BaseConfig, KernelRecipe, KernelRecipeError, KernelSource};
pub use source::SourceError;
