//! The error messages and classes of the MariaDB backend.
//!
//! Every message starts with the system and endpoint (`mariadb 127.0.0.1:33069 as dedup`)
//! and says, where we can tell, what to fix. The password is never part of the settings that
//! are formatted, and the server never echoes it. Every error carries an [`ErrorClass`]: from
//! the server's error code ([`server_class`]) or, below the protocol, from the socket or TLS
//! failure ([`crate::net::class`]).

use super::settings::{SYSTEM, Settings, SslMode};
use crate::net::{class, tls};
use dedup_lab_core::{BackendError, ErrorClass, chain};
use mysql_async::{DriverError, Error as MyError};

/// What kind of operation failed, to say which privilege is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// CREATE/DROP of the lab database and its tables.
    Ddl,
    /// Reading or writing lab rows.
    Dml,
    /// FLUSH, ANALYZE, OPTIMIZE, size queries.
    Admin,
}

// Server error codes (MariaDB's `mysqld_error.h`).
pub const ER_DBACCESS_DENIED: u16 = 1044;
pub const ER_ACCESS_DENIED: u16 = 1045;
pub const ER_BAD_DB: u16 = 1049;
pub const ER_SERVER_SHUTDOWN: u16 = 1053;
pub const ER_TABLEACCESS_DENIED: u16 = 1142;
pub const ER_NO_SUCH_TABLE: u16 = 1146;
pub const ER_NOT_ALLOWED_COMMAND: u16 = 1148;
pub const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
pub const ER_ILLEGAL_HA_CREATE_OPTION: u16 = 1478;
pub const ER_CONNECTION_KILLED: u16 = 1927;
pub const ER_STATEMENT_TIMEOUT: u16 = 1969;
/// MySQL 8's "loading local data is disabled".
pub const ER_CLIENT_LOCAL_FILES_DISABLED: u16 = 3948;

/// The class of a server error code (SQLSTATE as the fallback).
pub fn server_class(code: u16, state: &str) -> ErrorClass {
    match code {
        ER_ACCESS_DENIED | 1698 | 1862 => ErrorClass::Authentication,
        ER_DBACCESS_DENIED | ER_TABLEACCESS_DENIED | ER_SPECIFIC_ACCESS_DENIED | 1143 | 1370 => ErrorClass::Permission,
        ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED | 1152 | 1184 | 1317 => ErrorClass::ConnectionLost,
        // Lock wait timeout, max_statement_time exceeded (MariaDB, MySQL).
        1205 | ER_STATEMENT_TIMEOUT | 3024 => ErrorClass::Timeout,
        ER_BAD_DB => ErrorClass::Config,
        // A table option the engine refuses (a variant the server cannot serve), local infile
        // forbidden, unknown storage engine, read-only ROW_FORMAT=COMPRESSED.
        ER_ILLEGAL_HA_CREATE_OPTION | ER_NOT_ALLOWED_COMMAND | ER_CLIENT_LOCAL_FILES_DISABLED | 1286 | 4047 => {
            ErrorClass::Config
        }
        // Too many connections, disk or table full, out of memory, internal errors.
        1040 | 1021 | 1114 | 1030 | 1037 | 1041 | 1815 => ErrorClass::Server,
        _ if state.starts_with("08") => ErrorClass::ConnectionLost,
        _ if state == "28000" => ErrorClass::Authentication,
        // Syntax, unknown objects, duplicates, data errors: the server refused what was sent.
        _ if state.starts_with("42") || state.starts_with("22") || state.starts_with("23") => ErrorClass::BadRequest,
        _ if (1000..2000).contains(&code) => ErrorClass::BadRequest,
        _ => ErrorClass::Server,
    }
}

/// Whether the error means the connection is gone (the next call must reconnect).
pub fn is_lost(e: &MyError) -> bool {
    match e {
        MyError::Io(_) => true,
        MyError::Driver(DriverError::ConnectionClosed | DriverError::PacketOutOfOrder) => true,
        MyError::Server(s) => matches!(s.code, ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED),
        _ => false,
    }
}

/// The class of a driver error.
pub fn class_of(e: &MyError) -> ErrorClass {
    match e {
        MyError::Server(s) => server_class(s.code, &s.state),
        MyError::Driver(DriverError::ConnectionClosed | DriverError::PacketOutOfOrder) => ErrorClass::ConnectionLost,
        MyError::Driver(DriverError::NoClientSslFlagFromServer) => ErrorClass::Config,
        MyError::Driver(DriverError::UnknownAuthPlugin { .. } | DriverError::CleartextPluginDisabled) => {
            ErrorClass::Authentication
        }
        _ => class::classify_chain(e).unwrap_or(if is_lost(e) {
            ErrorClass::ConnectionLost
        } else {
            ErrorClass::BadRequest
        }),
    }
}

/// The message for a failed operation on an open connection.
pub fn op_error(s: &Settings, op: &str, kind: OpKind, e: MyError) -> BackendError {
    let prefix = format!("{SYSTEM} {}: {op}", s.endpoint());
    if is_lost(&e) {
        return BackendError::with_source(
            format!(
                "{prefix}: the connection to the server was lost; the server stopped, restarted or became \
                 unreachable. The next call reconnects"
            ),
            e,
        )
        .classed(ErrorClass::ConnectionLost);
    }
    let class = class_of(&e);
    let user = &s.user;
    let code = match &e {
        MyError::Server(se) => Some(se.code),
        _ => None,
    };
    let hint = match code {
        Some(ER_DBACCESS_DENIED | ER_TABLEACCESS_DENIED | ER_SPECIFIC_ACCESS_DENIED) => match kind {
            OpKind::Ddl => format!(
                ": user {user} may not create or drop the lab database; grant it, e.g. GRANT ALL PRIVILEGES ON `{}`.* \
                 TO '{user}'@'%'",
                s.lab
            ),
            _ => format!(": permission denied for user {user}"),
        },
        Some(ER_NO_SUCH_TABLE | ER_BAD_DB) => {
            ": the lab table does not exist (reset not run yet, or dropped by someone else)".to_string()
        }
        Some(ER_NOT_ALLOWED_COMMAND | ER_CLIENT_LOCAL_FILES_DISABLED) => {
            ": the server forbids LOAD DATA LOCAL INFILE (local_infile=OFF); set bulk = \"insert\" or enable it".into()
        }
        Some(1021 | 1114) => ": the server's disk or the table is full".to_string(),
        Some(ER_STATEMENT_TIMEOUT) if s.statement_timeout.is_some() => format!(
            ": cancelled by statement_timeout ({} s, {})",
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
        "{SYSTEM} {}: connecting: no complete answer within {} s (connect_timeout); check {} / {}, firewalls, \
         and that a MariaDB/MySQL server (not something else) listens there",
        s.endpoint(),
        s.connect_timeout.as_secs(),
        s.env("host"),
        s.env("port")
    ))
    .classed(ErrorClass::Timeout)
}

/// The message for a failed connection attempt.
pub fn connect_error(s: &Settings, e: MyError) -> BackendError {
    let prefix = format!("{SYSTEM} {}: connecting", s.endpoint());
    let text = chain(&e);
    let code = match &e {
        MyError::Server(se) => Some(se.code),
        _ => None,
    };
    let (hint, class) = if matches!(code, Some(ER_ACCESS_DENIED | 1698)) {
        let hint = if s.password.is_some() {
            format!("authentication failed for user {}; check {} and {}", s.user, s.password_source, s.env("user"))
        } else {
            format!("authentication failed for user {}; no password is set: set {}", s.user, s.password_source)
        };
        (hint, ErrorClass::Authentication)
    } else if code == Some(ER_BAD_DB) {
        (format!("database {:?} does not exist; check {}", s.database, s.env("database")), ErrorClass::Config)
    } else if code == Some(ER_DBACCESS_DENIED) {
        (
            format!("user {} may not use database {:?}; check {}", s.user, s.database, s.env("database")),
            ErrorClass::Permission,
        )
    } else if code == Some(1040) {
        ("the server has no free connection slots (max_connections)".to_string(), ErrorClass::Server)
    } else if code == Some(1130) {
        (format!("the server does not let user {} connect from this host", s.user), ErrorClass::Authentication)
    } else if matches!(e, MyError::Driver(DriverError::NoClientSslFlagFromServer)) {
        (
            format!(
                "the server does not offer TLS, but sslmode={} requires it; enable TLS on the server (ssl_cert, \
                 ssl_key), or set sslmode=disable or prefer ({}) if plaintext is acceptable",
                s.tls.mode.name(),
                s.env("sslmode")
            ),
            ErrorClass::Config,
        )
    } else if let Some(t) = tls::explain(&e, s) {
        (t, class::classify_chain(&e).unwrap_or(ErrorClass::Config))
    } else if let Some(io) = class::find_io(&e) {
        let class = class::io_class(io).unwrap_or(ErrorClass::Unreachable);
        let hint = match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!(
                "nothing accepts connections at {}:{}; is the server running, and are {} / {} right?",
                s.host,
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
            _ if class == ErrorClass::Unreachable && (text.contains("lookup") || text.contains("resolve")) => {
                format!("cannot resolve host {:?}; check {}", s.host, s.env("host"))
            }
            _ if class == ErrorClass::ConnectionLost => {
                "the server closed the connection during the handshake (is it a MariaDB/MySQL server, and does it \
                 accept this client's TLS setting?)"
                    .to_string()
            }
            _ => "cannot reach the server".to_string(),
        };
        (hint, class)
    } else {
        ("failed".to_string(), class_of(&e))
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

    #[test]
    fn server_codes_map_to_classes() {
        use ErrorClass::*;
        for (code, state, want) in [
            (1045, "28000", Authentication),
            (1044, "42000", Permission),
            (1142, "42000", Permission),
            (1227, "42000", Permission),
            (1053, "08S01", ConnectionLost),
            (1927, "70100", ConnectionLost),
            (1969, "70100", Timeout),
            (1205, "HY000", Timeout),
            (1049, "42000", Config),
            (1478, "HY000", Config),
            (1148, "42000", Config),
            (1040, "08004", Server),
            (1114, "HY000", Server),
            (1064, "42000", BadRequest),
            (1146, "42S02", BadRequest),
            (1062, "23000", BadRequest),
            (1366, "22007", BadRequest),
        ] {
            assert_eq!(server_class(code, state), want, "{code}");
        }
    }
}
