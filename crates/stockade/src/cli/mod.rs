//! The command line's groups, one file each (as runc's): `lifecycle` (exec, create, update
//! arguments) and `seccomp` (compile, explain, diff). `main.rs` holds the command table and
//! the dispatch.

pub mod lifecycle;
pub mod seccomp;
