//! One module per subcommand.

pub mod commit_metadata;
pub mod keygen;
pub mod repo_image;
pub mod sign;
pub mod verify;
