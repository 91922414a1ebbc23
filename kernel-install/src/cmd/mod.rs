//! One module per subcommand.

pub mod digest;
pub mod dump;
pub mod mkcomposefs;
