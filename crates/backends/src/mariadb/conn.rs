//! Connections: options (TLS, session settings), one connect under one timeout, and the
//! backend's way of running statements on its main connection (connect on demand,
//! reconnect after the server went away, every error explained and classed by
//! [`errors`](super::errors)).

use super::MariaBackend;
use super::errors::{OpKind, connect_error, connect_timeout_error, is_lost, op_error};
use super::settings::{Settings, SslMode};
use dedup_lab_core::BackendError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Error as MyError, Opts, OptsBuilder, SslOpts};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Session settings of every connection: strict SQL (a value that does not fit is an error,
/// never a silent truncation), strict InnoDB (a table option the engine cannot honour is an
/// error, never silently dropped), utf8mb4, backslash escapes (the INSERT bulk path relies
/// on them), and the statement timeout when one is set.
fn session_init(s: &Settings) -> Vec<String> {
    let mut init = vec![
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin".to_string(),
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE,\
         ERROR_FOR_DIVISION_BY_ZERO', innodb_strict_mode = ON, time_zone = '+00:00'"
            .to_string(),
    ];
    if let Some(t) = s.statement_timeout {
        init.push(format!("SET SESSION max_statement_time = {}", t.as_secs_f64()));
    }
    init
}

/// TLS options for `mode`: `prefer`/`require` encrypt and accept any certificate (the
/// handshake signatures are still checked), `verify-full` checks the chain against
/// `sslrootcert` and the name against `tls_server_name` or `host`.
fn ssl_opts(s: &Settings, mode: SslMode) -> Option<SslOpts> {
    let mut o = SslOpts::default();
    if let Some(name) = &s.tls.server_name {
        o = o.with_danger_tls_hostname_override(Some(name.clone()));
    }
    match mode {
        SslMode::Disable => None,
        // The driver builds its verifier from some root even when it accepts any
        // certificate: its built-in roots serve that purpose and nothing else.
        SslMode::Prefer | SslMode::Require => Some(o.with_danger_accept_invalid_certs(true)),
        SslMode::VerifyFull => {
            let ca = s.tls.ca_file.clone().map(Into::into).into_iter().collect();
            Some(o.with_root_certs(ca).with_disable_built_in_roots(true))
        }
    }
}

/// The driver options; TLS as `mode` says (`prefer` is tried as `require` first).
pub fn opts(s: &Settings, mode: SslMode) -> Opts {
    use secrecy::ExposeSecret;
    OptsBuilder::default()
        .ip_or_hostname(s.host.clone())
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(s.password.as_ref().map(|p| p.expose_secret().to_string()))
        .db_name(s.connect_db.clone())
        // Stay on the TCP connection asked for: the driver would otherwise switch to the
        // server's unix socket when the address is a loopback one.
        .prefer_socket(false)
        .tcp_nodelay(true)
        // Notice a dead peer mid-stage instead of waiting forever.
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .ssl_opts(ssl_opts(s, mode))
        .init(session_init(s))
        .into()
}

/// Connects with TLS as the settings say, under `connect_timeout` for the whole handshake.
/// `prefer` tries TLS and falls back to plaintext when the server offers none; `plain_only`
/// remembers that (so later connections skip the attempt).
pub fn open(rt: &Runtime, s: &Settings, plain_only: &mut bool) -> Result<Conn, BackendError> {
    let mode = if *plain_only { SslMode::Disable } else { s.tls.mode };
    match connect(rt, s, mode) {
        Err(ConnectError::Driver(MyError::Driver(DriverError::NoClientSslFlagFromServer)))
            if mode == SslMode::Prefer =>
        {
            *plain_only = true;
            connect(rt, s, SslMode::Disable).map_err(|e| e.into_backend(s))
        }
        r => r.map_err(|e| e.into_backend(s)),
    }
}

enum ConnectError {
    Driver(MyError),
    Timeout,
}

impl ConnectError {
    fn into_backend(self, s: &Settings) -> BackendError {
        match self {
            ConnectError::Driver(e) => connect_error(s, e),
            ConnectError::Timeout => connect_timeout_error(s),
        }
    }
}

fn connect(rt: &Runtime, s: &Settings, mode: SslMode) -> Result<Conn, ConnectError> {
    let opts = self::opts(s, mode);
    match rt.block_on(async { tokio::time::timeout(s.connect_timeout, Conn::new(opts)).await }) {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ConnectError::Driver(e)),
        Err(_elapsed) => Err(ConnectError::Timeout),
    }
}

/// Closes a connection politely (bounded: a dead server gets no goodbye).
pub fn close(rt: &Runtime, conn: Conn) {
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), conn.disconnect()).await });
}

/// What the server told us when we first connected.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub version: String,
    /// MariaDB 10.7+: the `UUID` column type exists.
    pub uuid_native: bool,
}

impl MariaBackend {
    /// Connects when there is no connection (first use, after `reopen`, after the server
    /// went away).
    pub(super) fn ensure_conn(&mut self) -> Result<(), BackendError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = open(&self.rt, &self.s, &mut self.plain_only)?;
        if self.server.version.is_empty() {
            let version: Option<String> = self
                .rt
                .block_on(conn.query_first("SELECT VERSION()"))
                .map_err(|e| op_error(&self.s, "reading the server version", OpKind::Admin, e))?;
            let version = version.unwrap_or_default();
            let (major, minor, _) = conn.server_version();
            let mariadb = version.contains("MariaDB");
            self.server = ServerInfo { uuid_native: mariadb && (major, minor) >= (10, 7), version };
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs `f` on the main connection; errors get the system, endpoint, `op`, a hint and a
    /// class. A lost connection is forgotten, so the next call reconnects.
    pub(super) fn run<T>(
        &mut self,
        kind: OpKind,
        op: impl FnOnce() -> String,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, MyError>,
    ) -> Result<T, BackendError> {
        self.ensure_conn()?;
        let conn = self.conn.as_mut().expect("connected above");
        let result = self.rt.block_on(f(conn));
        result.map_err(|e| self.fail(kind, &op(), e))
    }

    /// Turns a driver error into our error; forgets a dead connection.
    pub(super) fn fail(&mut self, kind: OpKind, op: &str, e: MyError) -> BackendError {
        if is_lost(&e) {
            self.conn = None;
        }
        op_error(&self.s, op, kind, e)
    }

    /// Runs one or more statements (text protocol), discarding results.
    pub(super) fn exec_sql(
        &mut self,
        kind: OpKind,
        op: impl FnOnce() -> String,
        sql: &str,
    ) -> Result<(), BackendError> {
        self.run(kind, op, async |c| c.query_drop(sql).await)
    }
}
