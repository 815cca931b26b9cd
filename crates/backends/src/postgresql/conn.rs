//! One connection (client + the task that drives it) and the error messages of this backend.
//!
//! Every message names the system and endpoint (`postgresql 127.0.0.1:54329/dedup as dedup`)
//! and, where we can tell, what to fix. The password is never part of the settings that are
//! formatted, and the server never echoes it, so it cannot appear in a message.

use super::settings::{Settings, SslMode};
use super::tls;
use dedup_lab_core::BackendError;
use std::error::Error as StdError;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A live connection. Its driver task runs on the backend's current-thread runtime, i.e.
/// whenever the backend blocks on a query.
pub struct Conn {
    pub client: tokio_postgres::Client,
    task: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Conn {
    /// Connects, with `connect_timeout` bounding the whole handshake (TCP, TLS, auth), not
    /// only the TCP connect as tokio-postgres' own timeout does.
    pub fn open(rt: &Runtime, s: &Settings, tls: &MakeRustlsConnect) -> Result<Conn, BackendError> {
        let config = s.pg_config();
        let tls = tls.clone();
        let result = rt.block_on(async {
            let connect = async {
                let (client, connection) = config.connect(tls).await?;
                let task = tokio::spawn(connection);
                Ok::<_, tokio_postgres::Error>(Conn { client, task })
            };
            tokio::time::timeout(s.connect_timeout, connect).await
        });
        match result {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(connect_error(s, e)),
            Err(_elapsed) => Err(BackendError::msg(format!(
                "{} {}: connecting: no complete answer within {} s (connect_timeout); check {} / {}, firewalls, \
                 and that a PostgreSQL-protocol server (not something else) listens there",
                s.kind,
                s.endpoint(),
                s.connect_timeout.as_secs(),
                s.env("host"),
                s.env("port")
            ))),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Why the connection ended, when its driver task has finished with an error.
    pub fn end_reason(self, rt: &Runtime) -> Option<String> {
        if !self.task.is_finished() {
            return None;
        }
        match rt.block_on(self.task) {
            Ok(Err(e)) => Some(chain(&e)),
            _ => None,
        }
    }
}

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
        || find_io(&e).is_some();
    if lost {
        let why = ended.filter(|w| *w != chain(&e)).map(|w| format!(" ({w})")).unwrap_or_default();
        return BackendError::with_source(
            format!(
                "{prefix}: the connection to the server was lost{why}; the server stopped, restarted or became \
                 unreachable. The next call reconnects"
            ),
            e,
        );
    }
    let user = &s.user;
    let hint = match code {
        Some(c) if c == SqlState::INSUFFICIENT_PRIVILEGE => match kind {
            OpKind::Ddl if s.kind == dedup_lab_core::SystemKind::Cockroachdb => format!(
                ": permission denied for user {user}; it needs the CREATEDB role option (ALTER USER {user} CREATEDB) \
                 to create and drop the lab database"
            ),
            OpKind::Ddl => format!(
                ": permission denied for user {user}; grant it the right to create schemas in database {db} \
                 (as a superuser or the database owner: GRANT CREATE ON DATABASE {db} TO {user}), or point \
                 dedup-lab at a database where it has it ({dbenv}); if the lab schema already exists and belongs \
                 to another role, drop it as that role",
                db = s.database,
                dbenv = s.env("database")
            ),
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
        _ => String::new(),
    };
    BackendError::with_source(format!("{prefix}{hint}"), e)
}

/// The message for a failed connection attempt.
pub fn connect_error(s: &Settings, e: tokio_postgres::Error) -> BackendError {
    let prefix = format!("{} {}: connecting", s.kind, s.endpoint());
    let text = chain(&e);
    let code = e.code().cloned();
    let hint =
        if code == Some(SqlState::INVALID_PASSWORD) || code == Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION) {
            if s.password.is_some() {
                format!("authentication failed for user {}; check {} and {}", s.user, s.password_source, s.env("user"))
            } else {
                format!("authentication failed for user {}; no password is set: set {}", s.user, s.password_source)
            }
        } else if text.contains("password missing") {
            format!("the server asks for a password but none is set; set {}", s.password_source)
        } else if code == Some(SqlState::INVALID_CATALOG_NAME) {
            format!("database {:?} does not exist; check {}", s.database, s.env("database"))
        } else if code == Some(SqlState::INSUFFICIENT_PRIVILEGE) {
            format!("user {} may not connect to database {:?} (GRANT CONNECT needed)", s.user, s.database)
        } else if code == Some(SqlState::CANNOT_CONNECT_NOW) {
            "the server is starting up or shutting down; try again when it is up".to_string()
        } else if code == Some(SqlState::TOO_MANY_CONNECTIONS) {
            "the server has no free connection slots (max_connections)".to_string()
        } else if let Some(t) = tls::explain(&e, s) {
            t
        } else if text.contains("server does not support TLS") {
            format!(
                "the server does not offer TLS, but sslmode={} requires it; enable ssl on the server, or set \
             sslmode=disable ({}) if plaintext is acceptable",
                s.sslmode.name(),
                s.env("sslmode")
            )
        } else if let Some(io) = find_io(&e) {
            match io.kind() {
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
            }
        } else {
            "failed".to_string()
        };
    let hint = if s.sslmode == SslMode::Disable && text.contains("SSL") {
        format!("{hint} (sslmode=disable: the server may insist on TLS; try sslmode=require)")
    } else {
        hint
    };
    BackendError::with_source(format!("{prefix}: {hint}"), e)
}

/// The first I/O error in a chain.
fn find_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

pub use dedup_lab_core::chain;
