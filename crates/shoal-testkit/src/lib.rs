//! Test support shared by every crate whose tests need something from the machine.
//!
//! - [`need`]: the one guard for "a tool or privilege this test needs is missing". A missing
//!   prerequisite fails the test with what to install, unless `SHOAL_TEST_ALLOW_MISSING` opts
//!   out of it explicitly, in which case the test says loudly that it did not run.
//! - [`reap`]: the cleanup every test daemon or driver runs on Drop, so that no shim, task
//!   process, mount, cgroup or Docker container/volume of a test survives it.
//! - [`hosts`]: simulated machines for multi-node tests, as network namespaces on an underlay
//!   bridge of their own, removed with everything in them on Drop.
//! - [`probe`]: what the node enforces on a process (its cgroup's limits) and signals to it,
//!   for the driver conformance suite's harnesses.
//!
//! Dev-only (`publish = false`): no production crate depends on it.

pub mod hosts;
pub mod need;
pub mod probe;
pub mod reap;

pub use need::{ALLOW_MISSING, Need, TEST_ARCHIVE, TEST_IMAGE, need};
pub use reap::{reap, scoped_name};
