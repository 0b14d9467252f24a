//! Docker's published default profile (../shared/data, beside the checkout) and the 14
//! capabilities Docker gives containers by default.
#![allow(dead_code)]

use stockade_seccomp::Profile;

pub const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DOCKER_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/docker-default-seccomp.json"
);

pub fn docker_json() -> Profile {
    let text = std::fs::read_to_string(DOCKER_JSON)
        .expect("../shared/data/docker-default-seccomp.json (CI has shared/ beside the checkout)");
    Profile::from_json(&text).unwrap()
}
