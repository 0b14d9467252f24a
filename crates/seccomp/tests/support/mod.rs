pub mod docker;
pub mod libseccomp;
