//! Error types shared across crates.

use std::error::Error as StdError;
use std::fmt;

/// A value given by the user (CLI, config, dataset spec) that cannot be used.
///
/// The message always names the thing, the value and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {hint}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub hint: String,
}

impl ParseError {
    pub fn new(what: &'static str, value: impl Into<String>, hint: impl Into<String>) -> Self {
        ParseError { what, value: value.into(), hint: hint.into() }
    }
}

/// What kind of failure an error is, set by each driver from its own error codes. Messages
/// use it to name the fix; retries use it to tell a passing fault from a permanent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Wrong or missing credentials.
    Authentication,
    /// Authenticated, but not allowed to do this (a missing grant or ACL rule).
    Permission,
    /// Nothing answers at the address (refused, no route, unknown host).
    Unreachable,
    /// No answer within the configured time.
    Timeout,
    /// An established connection broke (server stopped, restarted, network cut).
    ConnectionLost,
    /// The server refused what was sent as malformed or unknown (a bug or a version gap).
    BadRequest,
    /// The server failed while doing what was asked (disk full, internal error).
    Server,
    /// The configuration cannot work (bad setting, unusable certificate file).
    Config,
}

impl ErrorClass {
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Authentication => "authentication",
            ErrorClass::Permission => "permission",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionLost => "connection lost",
            ErrorClass::BadRequest => "bad request",
            ErrorClass::Server => "server error",
            ErrorClass::Config => "configuration",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorClass::Unreachable | ErrorClass::Timeout | ErrorClass::ConnectionLost)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error and all its causes joined by ": ", on one line (line breaks inside a message,
/// such as a server's DETAIL, become "; "). The one error-chain formatter of the workspace.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out.replace('\n', "; ")
}

/// An error from a storage backend: what was being done (with the system and endpoint,
/// never a secret), its class when the driver could tell, and the underlying cause as the
/// error source.
#[derive(Debug)]
pub struct BackendError {
    context: String,
    class: Option<ErrorClass>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl BackendError {
    /// An error with only a message.
    pub fn msg(context: impl Into<String>) -> Self {
        BackendError { context: context.into(), class: None, source: None }
    }

    /// An error with a message and an underlying cause.
    pub fn with_source(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        BackendError { context: context.into(), class: None, source: Some(source.into()) }
    }

    /// The same error, classified.
    pub fn classed(mut self, class: ErrorClass) -> Self {
        self.class = Some(class);
        self
    }

    /// The class of this error, or of the first classified [`BackendError`] among its causes.
    pub fn class(&self) -> Option<ErrorClass> {
        if self.class.is_some() {
            return self.class;
        }
        let mut cur: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            if let Some(b) = e.downcast_ref::<BackendError>()
                && b.class.is_some()
            {
                return b.class;
            }
            cur = e.source();
        }
        None
    }

    /// The message of this error and all its causes joined by ": ", on one line.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::with_source("I/O error", e)
    }
}

/// Adds context to any error, turning it into a [`BackendError`].
pub trait ResultExt<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BackendError>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: StdError + Send + Sync + 'static,
{
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, BackendError> {
        self.map_err(|e| BackendError::with_source(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_causes() {
        let io = std::io::Error::other("disk on fire");
        let e = BackendError::with_source("sqlite: insert r00000001", io);
        assert_eq!(e.chain(), "sqlite: insert r00000001: disk on fire");
        let multi = BackendError::with_source("pg", std::io::Error::other("ERROR: x\nDETAIL: y"));
        assert_eq!(multi.chain(), "pg: ERROR: x; DETAIL: y");
    }

    #[test]
    fn class_is_found_in_the_chain() {
        let inner = BackendError::msg("connecting").classed(ErrorClass::Authentication);
        let outer = BackendError::with_source("preflight", inner);
        assert_eq!(outer.class(), Some(ErrorClass::Authentication));
        assert_eq!(BackendError::msg("x").class(), None);
        assert!(ErrorClass::ConnectionLost.is_transient() && !ErrorClass::Permission.is_transient());
    }
}
