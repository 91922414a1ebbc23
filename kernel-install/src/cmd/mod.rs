//! One module per subcommand.

pub mod deploy;
pub mod digest;
pub mod dump;
pub mod kernel_install;
pub mod mkcomposefs;
pub mod undeploy;
