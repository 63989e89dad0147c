//! One module per subcommand.

pub mod mkfs;
