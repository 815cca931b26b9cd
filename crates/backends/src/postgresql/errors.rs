//! The error messages and classes of this backend.
//!
//! Every message names the system and endpoint (`postgresql 127.0.0.1:54329/dedup as dedup`)
//! and, where we can tell, what to fix. The password is never part of the settings that are
//! formatted, and the server never echoes it, so it cannot appear in a message. Every error
//! carries an [`ErrorClass`], from the server's SQLSTATE ([`sqlstate_class`]) or, below the
//! protocol, from the socket or TLS failure ([`crate::net::class`]).

use super::dialect::Dialect;
use super::settings::{Settings, SslMode};
use crate::net::{class, tls};
use dedup_lab_core::{BackendError, ErrorClass, chain};
use tokio_postgres::error::SqlState;

/// What kind of operation failed, to say which privilege is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// CREATE/DROP of the lab schema or database and its tables.
    Ddl,
    /// Reading or writing lab rows.
    Dml,
    /// VACUUM, ANALYZE, CHECKPOINT, size functions.
    Admin,
}

/// The class of a server error code.
pub fn sqlstate_class(code: &SqlState) -> ErrorClass {
    let c = code.code();
    match c {
        "28P01" | "28000" => ErrorClass::Authentication,
        "42501" => ErrorClass::Permission,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or coming.
        "57P01" | "57P02" | "57P03" => ErrorClass::ConnectionLost,
        // query_canceled: statement_timeout (or someone cancelled it).
        "57014" => ErrorClass::Timeout,
        // invalid_catalog_name: the configured database does not exist.
        "3D000" => ErrorClass::Config,
        _ if c.starts_with("08") => ErrorClass::ConnectionLost,
        // Syntax and access rules, data exceptions, integrity constraints, wrong object state,
        // dependent objects: the server refused what was sent.
        _ if ["42", "22", "23", "2B", "3F", "0A", "55"].iter().any(|p| c.starts_with(p)) => ErrorClass::BadRequest,
        // Insufficient resources (disk full, out of memory, too many connections), program
        // limits, system and internal errors, and everything else the server failed at.
        _ => ErrorClass::Server,
    }
}

/// The class of a driver error that is not a server error code: a closed connection, the
/// socket or TLS below it, or (otherwise) a value we could not convert.
fn driver_class(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = e.code() {
        return sqlstate_class(code);
    }
    if e.is_closed() {
        return ErrorClass::ConnectionLost;
    }
    class::classify_chain(e).unwrap_or(ErrorClass::BadRequest)
}

/// The message for a failed operation on an open connection. `ended` is why the connection
/// ended, when it did.
pub fn op_error(s: &Settings, op: &str, kind: OpKind, e: tokio_postgres::Error, ended: Option<String>) -> BackendError {
    let prefix = format!("{} {}: {op}", s.kind, s.endpoint());
    let code = e.code().cloned();
    let lost = e.is_closed()
        || matches!(
            code,
            Some(ref c) if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN || *c == SqlState::CANNOT_CONNECT_NOW
        )
        || class::find_io(&e).is_some();
    if lost {
        let why = ended.filter(|w| *w != chain(&e)).map(|w| format!(" ({w})")).unwrap_or_default();
        return BackendError::with_source(
            format!(
                "{prefix}: the connection to the server was lost{why}; the server stopped, restarted or became \
                 unreachable. The next call reconnects"
            ),
            e,
        )
        .classed(ErrorClass::ConnectionLost);
    }
    let class = driver_class(&e);
    let user = &s.user;
    let hint = match code {
        Some(c) if c == SqlState::INSUFFICIENT_PRIVILEGE => match kind {
            OpKind::Ddl => Dialect::of(s.kind).ddl_permission_hint(user, &s.database, &s.env("database")),
            _ => format!(": permission denied for user {user}"),
        },
        Some(c) if c == SqlState::INVALID_SCHEMA_NAME || c == SqlState::UNDEFINED_TABLE => {
            ": the lab table does not exist (reset not run yet, or dropped by someone else)".to_string()
        }
        Some(c) if c == SqlState::DEPENDENT_OBJECTS_STILL_EXIST => {
            ": other objects depend on the lab's tables or remain in the lab (the DETAIL of the server's message \
             names them); dedup-lab drops only its own tables and never cascades into anything else, so remove \
             or change those objects by hand"
                .to_string()
        }
        Some(c) if c == SqlState::DISK_FULL => ": the server's disk is full".to_string(),
        Some(c) if c == SqlState::QUERY_CANCELED && s.statement_timeout.is_some() => format!(
            ": cancelled, probably by statement_timeout ({} s, {})",
            s.statement_timeout.unwrap_or_default().as_secs(),
            s.env("statement_timeout")
        ),
        _ => String::new(),
    };
    BackendError::with_source(format!("{prefix}{hint}"), e).classed(class)
}

/// The message for a connect attempt that did not finish within `connect_timeout`.
pub fn connect_timeout_error(s: &Settings) -> BackendError {
    BackendError::msg(format!(
        "{} {}: connecting: no complete answer within {} s (connect_timeout); check {} / {}, firewalls, \
         and that a PostgreSQL-protocol server (not something else) listens there",
        s.kind,
        s.endpoint(),
        s.connect_timeout.as_secs(),
        s.env("host"),
        s.env("port")
    ))
    .classed(ErrorClass::Timeout)
}

/// The message for a failed connection attempt.
pub fn connect_error(s: &Settings, e: tokio_postgres::Error) -> BackendError {
    let prefix = format!("{} {}: connecting", s.kind, s.endpoint());
    let text = chain(&e);
    let code = e.code().cloned();
    let (hint, class) = if code == Some(SqlState::INVALID_PASSWORD)
        || code == Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        let hint = if s.password.is_some() {
            format!("authentication failed for user {}; check {} and {}", s.user, s.password_source, s.env("user"))
        } else {
            format!("authentication failed for user {}; no password is set: set {}", s.user, s.password_source)
        };
        (hint, ErrorClass::Authentication)
    } else if text.contains("password missing") {
        (
            format!("the server asks for a password but none is set; set {}", s.password_source),
            ErrorClass::Authentication,
        )
    } else if code == Some(SqlState::INVALID_CATALOG_NAME) {
        (format!("database {:?} does not exist; check {}", s.database, s.env("database")), ErrorClass::Config)
    } else if code == Some(SqlState::INSUFFICIENT_PRIVILEGE) {
        (
            format!("user {} may not connect to database {:?} (GRANT CONNECT needed)", s.user, s.database),
            ErrorClass::Permission,
        )
    } else if code == Some(SqlState::CANNOT_CONNECT_NOW) {
        ("the server is starting up or shutting down; try again when it is up".to_string(), ErrorClass::ConnectionLost)
    } else if code == Some(SqlState::TOO_MANY_CONNECTIONS) {
        ("the server has no free connection slots (max_connections)".to_string(), ErrorClass::Server)
    } else if let Some(t) = tls::explain(&e, s) {
        (t, class::classify_chain(&e).unwrap_or(ErrorClass::Config))
    } else if text.contains("server does not support TLS") {
        (
            format!(
                "the server does not offer TLS, but sslmode={} requires it; enable ssl on the server, or set \
                 sslmode=disable ({}) if plaintext is acceptable",
                s.tls.mode.name(),
                s.env("sslmode")
            ),
            ErrorClass::Config,
        )
    } else if let Some(io) = class::find_io(&e) {
        let class = class::io_class(io).unwrap_or(ErrorClass::Unreachable);
        let hint = match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!(
                "nothing accepts connections at {}:{}; is the server running, and are {} / {} right?",
                s.hostaddr.map(|a| a.to_string()).unwrap_or_else(|| s.host.clone()),
                s.port,
                s.env("host"),
                s.env("port")
            ),
            std::io::ErrorKind::TimedOut => format!(
                "no answer within {} s (connect_timeout); check {} / {}, firewalls, and that the server is up",
                s.connect_timeout.as_secs(),
                s.env("host"),
                s.env("port")
            ),
            _ if text.contains("lookup") || text.contains("resolve") => {
                format!("cannot resolve host {:?}; check {}", s.host, s.env("host"))
            }
            _ => "cannot reach the server".to_string(),
        };
        (hint, class)
    } else if let Some(code) = &code {
        ("failed".to_string(), sqlstate_class(code))
    } else {
        ("failed".to_string(), driver_class(&e))
    };
    let hint = if s.tls.mode == SslMode::Disable && text.contains("SSL") {
        format!("{hint} (sslmode=disable: the server may insist on TLS; try sslmode=require)")
    } else {
        hint
    };
    BackendError::with_source(format!("{prefix}: {hint}"), e).classed(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: &str) -> ErrorClass {
        sqlstate_class(&SqlState::from_code(code))
    }

    #[test]
    fn sqlstates_map_to_classes() {
        use ErrorClass::*;
        for (code, want) in [
            ("28P01", Authentication), // invalid_password
            ("28000", Authentication), // invalid_authorization_specification
            ("42501", Permission),     // insufficient_privilege
            ("57P01", ConnectionLost), // admin_shutdown
            ("57P02", ConnectionLost), // crash_shutdown
            ("57P03", ConnectionLost), // cannot_connect_now
            ("08006", ConnectionLost), // connection_failure
            ("08003", ConnectionLost), // connection_does_not_exist
            ("57014", Timeout),        // query_canceled (statement_timeout)
            ("53100", Server),         // disk_full
            ("53300", Server),         // too_many_connections
            ("XX000", Server),         // internal_error
            ("58030", Server),         // io_error
            ("42601", BadRequest),     // syntax_error
            ("42P01", BadRequest),     // undefined_table
            ("42P07", BadRequest),     // duplicate_table
            ("23505", BadRequest),     // unique_violation
            ("22P02", BadRequest),     // invalid_text_representation
            ("2BP01", BadRequest),     // dependent_objects_still_exist
            ("3D000", Config),         // invalid_catalog_name: the configured database
        ] {
            assert_eq!(class(code), want, "{code}");
        }
    }
}
