//! Installing a compiled filter in the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::bpf::SockFilter;
use crate::compile::Filter;

pub const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

impl Filter {
    /// Load the filter. Needs no_new_privs or CAP_SYS_ADMIN. With a NOTIFY rule the kernel returns
    /// the listener descriptor, returned here.
    pub fn load(&self) -> io::Result<Option<OwnedFd>> {
        let prog = SockFprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr(),
        };
        let flags = self.flags
            | if self.notify {
                SECCOMP_FILTER_FLAG_NEW_LISTENER
            } else {
                0
            };
        // SAFETY: prog points to self.program, which outlives the call; the kernel copies it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const SockFprog,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        if self.notify {
            // SAFETY: with NEW_LISTENER the return value is a new descriptor that we now own.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
        } else {
            Ok(None)
        }
    }
}
