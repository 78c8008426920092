//! The contract between the node agent and the runtimes that run its tasks, and what every
//! runtime shares. The agent and each runtime (`shoal-native`, `shoal-docker`) depend on this
//! crate; it depends on no runtime.
//!
//! - the [`RuntimeDriver`] trait and its types ([`TaskRun`], [`ExitInfo`], [`LogLine`],
//!   [`Health`], [`VolumeInfo`], [`ImageInfo`], [`RuntimeError`]…).
//! - [`exec`]: processes started inside a running task, and what else the node asks of one
//!   (signals, processes, usage); and attaching to a task's own process.
//! - [`archive`]: a task's files as tar archives (`docker cp`).
//! - [`catalog`]: images and volumes in detail, as an engine serves them (inspect, history,
//!   volume creation and pruning).
//! - [`image`]: the seam to the node's image store, for the native runtime.
//! - [`route`]: the driver that sends each task to the native or the Docker runtime.
//! - [`fake`]: an in-memory driver for tests and simulation.
//! - `conformance` (feature `conformance`): the driver contract as one suite every driver runs.
//! - [`parse_stop_signal`]: stop-signal names as Docker accepts them.

pub mod archive;
pub mod catalog;
#[cfg(feature = "conformance")]
pub mod conformance;
mod driver;
pub mod exec;
pub mod fake;
pub mod files;
pub mod image;
mod owner;
pub mod route;
mod signal;

pub use archive::{ArchiveStream, PathStat};
pub use catalog::{ImageDetails, ImageHistoryEntry, VolumeCreate, VolumePrune, VolumesPruned};
pub use driver::{
    ExitInfo, Health, ImageInfo, LogLine, LogOptions, LogStream, LogStreamKind, RuntimeDriver,
    RuntimeError, RuntimeTask, RuntimeTaskState, TaskRun, VolumeInfo, next_log_line,
};
pub use exec::{ExecHandle, ExecProcess, ExecSpec, TaskStats};
pub use files::TaskFile;
pub use image::is_host_image;
pub use owner::is_standalone;
pub use signal::parse_stop_signal;
