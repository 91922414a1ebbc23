pub mod deploy;
pub mod undeploy;
pub mod kernel_install;
