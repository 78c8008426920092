//! Error chains. Library errors keep what caused them as `source()` and say in their own message
//! only what was being done, so a failure reads from what the user asked down to the syscall or
//! the peer. [`chain`] is the one way such an error becomes text: for logs, for messages that
//! cross the wire (HTTP, RPC), and for the CLI's last line.
//!
//! [`Cause`] and [`Remote`] are for the few errors that must be `Clone` (they are cached or
//! fanned out) or whose cause arrived as text from another node.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A shared cause, for error types that must stay `Clone`.
///
/// It is not an error itself but derefs to the one it holds, so a `#[source] Cause` field gives
/// that error as `source()` (thiserror looks through the deref): callers can downcast it to the
/// original type (`io::Error`, `rustls::Error`, ...) as with an owned source.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    pub fn new(err: impl Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(err))
    }
}

impl From<Box<dyn Error + Send + Sync + 'static>> for Cause {
    fn from(err: Box<dyn Error + Send + Sync + 'static>) -> Cause {
        Cause(Arc::from(err))
    }
}

impl std::ops::Deref for Cause {
    type Target = dyn Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// An error known only by its text: one another node sent us (its chain, flattened once at the
/// wire), or a condition we found ourselves that no other error type describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote(pub String);

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Remote {}

impl Remote {
    /// A [`Cause`] carrying `text`.
    pub fn cause(text: impl Into<String>) -> Cause {
        Cause::new(Remote(text.into()))
    }
}

/// `err` and each of its sources, joined with ": ", e.g. "creating service web: proposing to
/// raft: writing the log: No space left on device (os error 28)".
///
/// A level whose text is already in what came before is left out: some third-party errors both
/// print their cause and return it from `source()`, and the chain should say it once.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Formats an error as its [`chain`]: `tracing::warn!(error = %Chain(&e), ...)`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&chain(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("creating service web")]
        Create(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    enum Middle {
        #[error("proposing to raft")]
        Propose(#[source] std::io::Error),
    }

    #[derive(Debug, Clone, thiserror::Error)]
    #[error("reaching the peer")]
    struct Shared(#[source] Cause);

    /// A shared cause is the source itself, so it can be downcast to its type.
    #[test]
    fn a_shared_cause_is_the_source_itself() {
        let e = Shared(Cause::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let copy = e.clone();
        let io = copy
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(chain(&e), "reaching the peer: connection refused");
    }

    #[test]
    fn a_chain_reads_from_the_request_down_to_the_syscall() {
        let io = std::io::Error::from_raw_os_error(28);
        let e = Outer::Create(Middle::Propose(io));
        let text = chain(&e);
        assert!(
            text.starts_with("creating service web: proposing to raft: No space left on device"),
            "{text}"
        );
        assert_eq!(Chain(&e).to_string(), text);
    }

    /// A third-party error that prints its cause and also returns it must not show it twice.
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request: {0}")]
        struct Pastes(#[source] std::io::Error);
        let e = Pastes(std::io::Error::other("connection refused"));
        assert_eq!(chain(&e), "error sending request: connection refused");
    }

    /// An io::Error wrapping another error prints that error and skips it in `source()`; the
    /// chain goes on with the wrapped error's own cause.
    #[test]
    fn an_io_error_wrapping_an_error_continues_with_its_cause() {
        let e = Outer::Create(Middle::Propose(std::io::Error::other(Remote(
            "the disk is gone".into(),
        ))));
        assert_eq!(
            chain(&e),
            "creating service web: proposing to raft: the disk is gone"
        );
    }
}
