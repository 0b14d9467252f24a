//! stockade: a container sandbox runtime with every isolation mechanism of the seed on by default.
//!
//! One module per concept of `tips-for-sandboxing-docker-containers`: [`namespaces`],
//! [`rootfs`] (mounts, setuid defanged), [`cgroups`] (hardware), [`capabilities`], [`seccomp`],
//! [`process`] (keyring, no_new_privs, exec). The modules form layers; a module uses only its
//! own layer and those below (`tests/layers.rs` checks it, and that there is no import circle):
//!
//! ```text
//! front ends   sandbox  policy  audit  probe  scenario (`stockade learn`)   (the binary's cli/ above)
//!                 |
//! engine       container (run: the table of contents; child.rs, runtime.rs, exec.rs)  lifecycle
//!                 |
//! plan         plan (validate; the typed Plan, made once from a spec and the front end's choices)
//!                 |
//! subsystems   cgroups  namespaces  rootfs  net  seccomp  process  hooks  state  idpool
//!              agent  learn (the recorder, profiles, the report, learning under engines)
//!                 |
//! bottom       sys  diag  error  ebpf  dbus  procfs  mountinfo  capabilities  landlock
//!              init  tty  spec (the OCI vocabulary: load, defaults, accessors)
//! ```

pub mod agent;
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
pub mod scenario;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;

pub use error::{Error, Result};
