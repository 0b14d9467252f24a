//! stockade: a container sandbox runtime with every isolation mechanism of the seed on by default.
//!
//! One module per concept of `tips-for-sandboxing-docker-containers`: [`namespaces`],
//! [`rootfs`] (mounts, setuid defanged), [`cgroups`] (hardware), [`capabilities`], [`seccomp`],
//! [`process`] (keyring, no_new_privs, exec). [`container`] is the engine that runs them in order;
//! [`spec`] and [`sandbox`] are the front ends that feed it one OCI spec.

pub mod audit;
pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod dbus;
pub mod diag;
pub mod ebpf;
pub mod error;
pub mod hooks;
pub mod idpool;
pub mod init;
pub mod landlock;
pub mod learn;
pub mod lifecycle;
pub mod mountinfo;
pub mod namespaces;
pub mod net;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;

pub use error::{Error, Result};
