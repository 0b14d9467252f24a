//! Docker's published default profile (../shared/data, beside the checkout) and the 14
//! capabilities Docker gives containers by default.
#![allow(dead_code)]

use stockade_seccomp::Profile;

pub const DOCKER_CAPS: &[&str] = stockade_seccomp::DOCKER_DEFAULT_CAPS;

pub const DOCKER_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/docker-default-seccomp.json"
);

pub fn docker_json() -> Profile {
    let text = std::fs::read_to_string(DOCKER_JSON)
        .expect("../shared/data/docker-default-seccomp.json (CI has shared/ beside the checkout)");
    Profile::from_json(&text).unwrap()
}
