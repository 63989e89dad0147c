//! One module per subcommand.

pub mod mkfs;
pub mod lock;
pub mod rootfs;
pub mod inspect;
pub mod kernel;
pub mod pack;
pub mod pull;
pub mod push;
pub mod release;
pub mod tags;
