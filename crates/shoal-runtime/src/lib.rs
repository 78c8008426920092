//! The contract between the node agent and the runtimes that run its tasks, and what every
//! runtime shares. The agent and each runtime (`shoal-native`, `shoal-docker`) depend on this
//! crate; it depends on no runtime.
//!
//! - the [`RuntimeDriver`] trait and its types ([`TaskRun`], [`ExitInfo`], [`LogLine`],
//!   [`Health`], [`VolumeInfo`], [`ImageInfo`], [`RuntimeError`]…).
//! - [`image`]: the seam to the node's image store, for the native runtime.
//! - [`route`]: the driver that sends each task to the native or the Docker runtime.
//! - [`fake`]: an in-memory driver for tests and simulation.
//! - `conformance` (feature `conformance`): the driver contract as one suite every driver runs.
//! - [`parse_stop_signal`]: stop-signal names as Docker accepts them.

#[cfg(feature = "conformance")]
pub mod conformance;
mod driver;
pub mod fake;
pub mod files;
pub mod image;
pub mod route;
mod signal;

pub use driver::{
    ExitInfo, Health, ImageInfo, LogLine, LogOptions, LogStream, LogStreamKind, RuntimeDriver,
    RuntimeError, RuntimeTask, RuntimeTaskState, TaskRun, VolumeInfo, next_log_line,
};
pub use files::TaskFile;
pub use image::is_host_image;
pub use signal::parse_stop_signal;
