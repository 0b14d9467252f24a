//! CNI 1.0 (placeholder, filled in below).
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {}

impl Record {
    pub fn addresses(&self) -> Vec<IpAddr> {
        vec![]
    }
}

pub fn prepare(_plan: &super::Plan, _name: &str, _state_dir: &Path) -> Result<Record> {
    Err(Error::Other("cni: not yet".into()))
}

pub fn add(_rec: &mut Record, _id: &str, _pid: i32, _publish: &[super::Publish]) -> Result<()> {
    Err(Error::Other("cni: not yet".into()))
}

pub fn del(_rec: &Record, _id: &str) -> Result<()> {
    Ok(())
}
