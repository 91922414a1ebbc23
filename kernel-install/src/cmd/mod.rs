//! One module per subcommand.

pub mod commit_metadata;
pub mod digest;
pub mod dump;
pub mod keygen;
pub mod mkcomposefs;
pub mod repo_image;
pub mod sign;
pub mod verify;
