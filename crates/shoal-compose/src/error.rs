//! Where a problem is and what it is: [`Location`] (file, line, column), [`Error`] (one problem,
//! named by the dotted key of the value it is about) and [`Errors`] (every problem found in one
//! pass, so a user fixes a file in one go rather than one error per run).
//!
//! Inside the crate positions travel as [`Pos`], a `Copy` triple whose file is an index into the
//! list of source names, so the YAML tree stays small; they become [`Location`]s when they leave.

use std::fmt;

/// A place in a source file; line and column are 1-based (the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem: `docker-compose.yml:14:7: services.web.deploy.replicas: expected a number, got "three"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub at: Option<Location>,
    /// The dotted path of the value (`services.web.ports[1]`); empty for the whole file.
    pub key: String,
    pub message: String,
}

impl Error {
    pub fn new(at: Option<Location>, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            at,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in the order of the files and then of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<Error> for Errors {
    fn from(e: Error) -> Errors {
        Errors(vec![e])
    }
}

/// A position inside the crate: `file` indexes the source names given to `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Pos {
    pub file: u32,
    pub line: u32,
    pub col: u32,
}

/// Collects errors and warnings while a pass walks the documents, and turns [`Pos`] into
/// [`Location`].
pub(crate) struct Diag<'a> {
    pub files: &'a [String],
    pub errors: Vec<Error>,
    pub warnings: Vec<String>,
}

/// More errors than anyone reads; a hostile document could otherwise make millions.
const MAX_ERRORS: usize = 100;

impl<'a> Diag<'a> {
    pub fn new(files: &'a [String]) -> Diag<'a> {
        Diag {
            files,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn loc(&self, pos: Pos) -> Location {
        Location {
            file: self
                .files
                .get(pos.file as usize)
                .cloned()
                .unwrap_or_default(),
            line: pos.line as usize,
            column: pos.col as usize,
        }
    }

    pub fn err(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            let at = Some(self.loc(pos));
            self.errors.push(Error::new(at, key, message));
        }
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        if self.warnings.len() < MAX_ERRORS {
            self.warnings.push(message.into());
        }
    }
}

/// `a.b` + `c` = `a.b.c`; the root has the empty path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a.b` + 2 = `a.b[2]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
