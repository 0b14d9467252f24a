//! Seccomp for stockade (seed §4): OCI and Docker profiles in, a classic-BPF program out.
//!
//! Written by hand instead of binding libseccomp: Debian's libseccomp 2.5.4 does not know the
//! syscalls numbered 457 and above and silently drops them from profiles, and a C dependency would
//! be the only one of the runtime. The pieces:
//!
//! - [`profile`]: the JSON formats (OCI `linux.seccomp` and Docker's, a superset), with errors
//!   naming the JSON path.
//! - [`resolve`]: Docker's `includes`/`excludes` (capabilities, architectures, minimum kernel)
//!   decided against a [`Context`], giving a flat rule list per architecture.
//! - [`compile`]: arch dispatch, then a balanced search over runs of syscall numbers that share
//!   a decision; unconditional decisions read only `nr` and `arch` (so the kernel's action cache
//!   serves them); argument checks are 64-bit-correct on both 32-bit halves.
//! - [`bpf`]: instructions, an interpreter (used to verify the compiler) and a disassembler.
//! - [`builtin`]: the `default` (stricter than Docker), `docker` and `unconfined` profiles.
//!
//! Semantics of overlapping rules for one syscall: among the rules whose argument conditions all
//! hold, the action the kernel ranks highest wins (kill-process > kill-thread > trap > errno >
//! notify > trace > log > allow); rules without conditions are the fallback when no conditional
//! rule matches; without any, the profile's default action applies.

pub mod arch;
pub mod bpf;
pub mod builtin;
pub mod compile;
pub mod load;
pub mod profile;
pub mod resolve;

pub use arch::Arch;
pub use builtin::{builtin, DOCKER_DEFAULT_CAPS};
pub use compile::{compile, Filter};
pub use profile::{Action, Op, Profile};
pub use resolve::{Context, Resolved};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}{msg}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Parse { path: String, msg: String },
    #[error("the filter needs {0} instructions; the kernel accepts at most 4096 (split the profile or use fewer argument rules)")]
    TooLong(usize),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The JSON path as a suffix for a field name (`.syscalls[3].action`), or "".
    pub fn path_suffix(&self) -> String {
        match self {
            Error::Parse { path, .. } if !path.is_empty() => {
                if path.starts_with('[') {
                    path.clone()
                } else {
                    format!(".{path}")
                }
            }
            _ => String::new(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
