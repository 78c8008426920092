//! Tests of the reconcilers through the public API, one module per rule family, plus the
//! property-based simulation (`sim`). One test binary keeps link time down.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;
mod global;
mod jobs;
mod nodes;
mod orphans;
mod reaper;
mod replicated;
mod restart;
mod sim;
mod update;
