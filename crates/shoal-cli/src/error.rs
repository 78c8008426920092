//! The CLI's error type and how each kind maps to docker's wording and an exit code.
//!
//! Callers can act on [`CliError::Daemon`] (the daemon answered with a status and a message, e.g. a
//! 404 that turns into "no such service") and [`CliError::Usage`] (bad flags, exit 2); everything
//! else is a failed operation (exit 1).

use http::StatusCode;

/// Exit code for a failed operation.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad usage (a flag value that does not parse, a missing argument).
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag value that does not parse; printed like docker's pflag errors.
    #[error("invalid argument \"{value}\" for \"--{flag}\" flag: {why}")]
    InvalidFlag {
        flag: String,
        value: String,
        why: String,
    },
    /// Other bad usage (conflicting flags, malformed positional arguments).
    #[error("{0}")]
    Usage(String),
    /// The daemon answered with an error status and a JSON `{"message": ...}` body.
    #[error("Error response from daemon: {message}")]
    Daemon { status: StatusCode, message: String },
    /// The daemon could not be reached at all.
    #[error("Cannot connect to the daemon at {host}: {source}. Is the daemon running?")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The `-H` value is not an address this client can dial.
    #[error("invalid host \"{0}\": expected unix:///path/to.sock or tcp://host:port")]
    BadHost(String),
    /// TLS could not be set up: a certificate file, a key, or the handshake.
    #[error("{0}")]
    Tls(String),
    /// HTTP-level failure after the connection was made.
    #[error("error during connect: {0}")]
    Http(String),
    /// A response body that is not what the API promises.
    #[error("cannot decode the daemon's answer to {what}: {why}")]
    Decode { what: String, why: String },
    /// A failed operation with a message of its own (docker prints these bare).
    #[error("{0}")]
    Failed(String),
    /// The command ran and exits with this code, saying nothing more (`exec` passes on its
    /// process's exit code, as docker does).
    #[error("")]
    Exit(i32),
    /// Several independent failures (e.g. `service rm a b`), one per line.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<CliError>),
}

impl CliError {
    pub fn invalid_flag(flag: &str, value: &str, why: impl Into<String>) -> Self {
        CliError::InvalidFlag {
            flag: flag.to_string(),
            value: value.to_string(),
            why: why.into(),
        }
    }

    /// The exit code docker users expect: 2 for bad usage, 1 for everything that failed later.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::InvalidFlag { .. } | CliError::Usage(_) | CliError::BadHost(_) => EXIT_USAGE,
            CliError::Exit(code) => *code,
            CliError::Many(errs)
                if !errs.is_empty() && errs.iter().all(|e| e.exit_code() == EXIT_USAGE) =>
            {
                EXIT_USAGE
            }
            _ => EXIT_FAILED,
        }
    }

    /// True when the daemon said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Daemon { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_flag_reads_like_pflag() {
        let e = CliError::invalid_flag("replicas", "-1", "expected a number >= 0");
        assert_eq!(
            e.to_string(),
            r#"invalid argument "-1" for "--replicas" flag: expected a number >= 0"#
        );
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn daemon_errors_are_prefixed_and_fail_with_one() {
        let e = CliError::Daemon {
            status: StatusCode::NOT_FOUND,
            message: "service web not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "Error response from daemon: service web not found"
        );
        assert_eq!(e.exit_code(), EXIT_FAILED);
        assert!(e.is_not_found());
    }

    #[test]
    fn many_joins_lines() {
        let e = CliError::Many(vec![
            CliError::Failed("a".into()),
            CliError::Failed("b".into()),
        ]);
        assert_eq!(e.to_string(), "a\nb");
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }
}
