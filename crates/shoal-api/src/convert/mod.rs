//! Mapping between the Docker API's wire types (bollard-stubs) and shoal's object model. Going
//! from the model to the wire and back is the identity, so a client that reads a spec, changes one
//! field and writes it back (every `docker service update`) changes only that field.
//!
//! Fields shoal cannot honour yet are refused with a message naming them rather than dropped,
//! except those Swarm itself keeps without applying everywhere (a service's privileges and log
//! driver): those are kept, shown, and reported in the answer's `Warnings`, as Docker does.

pub mod container;
pub mod container_create;
pub mod generic;
pub mod image;
pub mod network;
pub mod node;
pub mod payload;
pub mod service;
pub mod service_extras;
pub mod service_task;
pub mod swarm;
pub mod task;
pub mod volume;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shoal_types::Timestamp;
use shoal_types::clock::format_rfc3339;

use crate::error::ApiError;

pub fn time(t: Timestamp) -> Option<String> {
    Some(format_rfc3339(t))
}

pub fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub fn duration(field: &str, n: i64) -> Result<Duration, ApiError> {
    u64::try_from(n).map(Duration::from_nanos).map_err(|_| {
        ApiError::invalid(field, format!("a duration must not be negative, got {n}ns"))
    })
}

pub fn opt_duration(field: &str, n: Option<i64>) -> Result<Option<Duration>, ApiError> {
    n.map(|n| duration(field, n)).transpose()
}

pub fn non_negative(field: &str, n: Option<i64>) -> Result<u64, ApiError> {
    match n {
        None => Ok(0),
        Some(v) => u64::try_from(v)
            .map_err(|_| ApiError::invalid(field, format!("must be 0 or more, got {v}"))),
    }
}

pub fn labels_in(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

pub fn labels_out(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub fn version(v: u64) -> Option<bollard_stubs::models::ObjectVersion> {
    Some(bollard_stubs::models::ObjectVersion { index: Some(v) })
}
