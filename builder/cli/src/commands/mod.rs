//! One module per subcommand.

pub mod inspect;
pub mod kernel;
pub mod lock;
pub mod mkfs;
pub mod pack;
pub mod pull;
pub mod push;
pub mod release;
pub mod rootfs;
pub mod tags;
