//! Reads and validates vmimage recipes (TOML): the rootfs, kernel, disk, boot and publish
//! settings of one image.
//!
//! A recipe is read in two steps, as the house style asks: [`RecipeSpec`] mirrors the TOML
//! strictly (unknown keys are errors), then [`Recipe::load`] validates it into a [`Recipe`]:
//! paths resolved against the recipe's directory, defaults applied from the `DEFAULT_*`
//! constants, and every error pointing at file, line, column and field ([`RecipeError`]).
//!
//! ```no_run
//! let recipe = vmimage_recipe::Recipe::load("recipes/debian-12-minimal.toml".as_ref())?;
//! println!("{} {}", recipe.rootfs.distro, recipe.rootfs.suite);
//! # Ok::<(), vmimage_recipe::RecipeError>(())
//! ```

#![warn(missing_docs)]

mod error;
pub mod spec;
mod validate;

pub use error::RecipeError;
pub use spec::RecipeSpec;
pub use validate::*;
