//! One module per subcommand.

pub mod commit_metadata;
pub mod deploy;
pub mod digest;
pub mod dump;
pub mod finalize_staged;
pub mod grubenv;
pub mod kernel_install;
pub mod keygen;
pub mod mkcomposefs;
pub mod repo_image;
pub mod sign;
pub mod undeploy;
pub mod verify;
