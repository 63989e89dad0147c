//! One module per subcommand.

pub mod mkfs;
pub mod inspect;
pub mod pack;
pub mod pull;
pub mod push;
pub mod release;
pub mod tags;
