pub mod deploy;
pub mod undeploy;
