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

/// An error from a storage backend: what was being done (with the system and endpoint,
/// never a secret) and the underlying cause as the error source.
#[derive(Debug)]
pub struct BackendError {
    context: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl BackendError {
    /// An error with only a message.
    pub fn msg(context: impl Into<String>) -> Self {
        BackendError { context: context.into(), source: None }
    }

    /// An error with a message and an underlying cause.
    pub fn with_source(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        BackendError { context: context.into(), source: Some(source.into()) }
    }

    /// The message of this error and all its causes joined by ": ".
    pub fn chain(&self) -> String {
        let mut out = self.context.clone();
        let mut cur: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
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
    }
}
