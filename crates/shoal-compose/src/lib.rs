//! Compose files for `stack deploy`: load them (the Compose Specification, and docker's version
//! 3.x files), and convert a project into the Docker Engine API objects that
//! `docker stack deploy` creates, exactly as the docker CLI's client-side conversion does
//! (github.com/docker/cli `cli/compose/{loader,interpolation,template,convert}` and
//! `cli/command/stack`), so that the same file deployed with docker and with shoal gives the same
//! services. Where docker's behaviour is odd, shoal matches it and the code says so.
//!
//! The pipeline: [`load`] parses each file into a marked YAML tree ([`yaml`]), interpolates
//! variables ([`interp`]), reads it into a typed [`Project`] with docker's schema strictness
//! (every error with its file, line and column), merges the files in order ([`merge`]) and checks
//! the dependencies between services. [`render`] prints a project back (`stack config`);
//! [`convert`] makes the create bodies for networks, secrets, configs and services.
//!
//! No IO but through [`Files`] (the real filesystem: [`DiskFiles`]; tests and fuzzing:
//! [`MemFiles`]); the environment comes in [`Options`]. Everything is synchronous and pure
//! otherwise; hostile documents (deep nesting, alias bombs) are refused with an error.

mod convert;
mod decode;
mod deploy;
mod error;
mod interp;
mod load;
mod merge;
mod model;
mod mounts;
mod render;
mod service;
mod short;
mod syntax;
mod top;
mod validate;
mod yaml;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use convert::{Stack, StackNetwork, StackPayload, StackService, convert};
pub use error::{Error, Errors, Location};
pub use load::{Ignored, IgnoredKind, Loaded, load};
pub use model::*;
pub use render::render;

/// One compose file: its name (shown in errors, e.g. `docker-compose.yml`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// Where env files, `.env`, secret and config files are read from. Paths given to `read` are
/// already resolved against [`Options::working_dir`].
pub trait Files {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskFiles;

impl Files for DiskFiles {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Files held in memory, for tests and fuzzing: exact paths to contents.
#[derive(Debug, Clone, Default)]
pub struct MemFiles {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemFiles {
    pub fn new() -> MemFiles {
        MemFiles::default()
    }

    /// Adds a file (builder style).
    pub fn with(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> MemFiles {
        self.files.insert(path.into(), contents.into());
        self
    }
}

impl Files for MemFiles {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("open {}: no such file or directory", path.display()),
            )
        })
    }
}

/// What loading and converting depend on besides the files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// Relative paths in the files resolve against it (docker: the first file's directory).
    pub working_dir: PathBuf,
    /// The process environment, for interpolation and `KEY`-only environment entries.
    pub env: BTreeMap<String, String>,
    /// Read `<working_dir>/.env` for interpolation too (the process environment wins). The
    /// Compose Specification does this; `docker stack deploy` does not.
    pub dotenv: bool,
}
