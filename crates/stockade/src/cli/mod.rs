//! The command line's groups, one file each (as runc's): `lifecycle` (exec, create, update
//! arguments) and `seccomp` (compile, explain, diff), `policy`
//! (show, check, and the policy applied to create/run/exec), `docs` (man, completion, --version),
//! `fast` (the engine verbs' lines read without clap).
//! `main.rs` holds the command table and the dispatch.

pub mod docs;
pub mod fast;
pub mod lifecycle;
pub mod policy;
pub mod seccomp;
