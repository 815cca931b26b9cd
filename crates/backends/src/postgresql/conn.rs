//! Connections: one connection (client + the task that drives it), opened under one timeout,
//! and the backend's way of running statements on its main connection (connect on demand,
//! reconnect after the server went away, every error explained and classed by
//! [`errors`](super::errors)).

use super::PgBackend;
use super::errors::{OpKind, connect_error, connect_timeout_error, op_error};
use super::settings::Settings;
use dedup_lab_core::{BackendError, ErrorClass};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use dedup_lab_core::chain;

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
            Err(_elapsed) => Err(connect_timeout_error(s)),
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

/// What the server told us when we first connected.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub version: String,
    /// `server_version_num` (PostgreSQL only; 0 when unknown).
    pub version_num: u32,
    pub lz4: bool,
}

impl PgBackend {
    /// Connects when there is no live connection (first use, after `reopen`, after the
    /// server went away).
    pub(super) fn ensure_conn(&mut self) -> Result<(), BackendError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.conn = None;
        let conn = Conn::open(&self.rt, &self.s, &self.tls)?;
        if self.server.version.is_empty() {
            let row = self
                .rt
                .block_on(conn.client.query_typed(self.dialect.version_sql(), &[]))
                .map_err(|e| op_error(&self.s, "reading the server version", OpKind::Admin, e, None))?;
            let row = row.into_iter().next().ok_or_else(|| {
                BackendError::msg(format!("{}: no version row", self.sys())).classed(ErrorClass::Server)
            })?;
            self.server = ServerInfo {
                version: row.get::<_, String>(0),
                version_num: row.get::<_, i32>(1).max(0) as u32,
                lz4: row.get::<_, bool>(2),
            };
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs `f` on the connection; errors get the system, endpoint, `op`, a hint and a class.
    pub(super) fn run<T>(
        &mut self,
        kind: OpKind,
        op: impl FnOnce() -> String,
        f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, BackendError> {
        self.ensure_conn()?;
        let conn = self.conn.as_ref().expect("connected above");
        let result = self.rt.block_on(f(&conn.client));
        result.map_err(|e| self.fail(kind, &op(), e))
    }

    /// Turns a driver error into our error; forgets a dead connection (the next call
    /// reconnects) and says why it died.
    pub(super) fn fail(&mut self, kind: OpKind, op: &str, e: tokio_postgres::Error) -> BackendError {
        let ended = if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn.take().and_then(|c| c.end_reason(&self.rt))
        } else {
            None
        };
        op_error(&self.s, op, kind, e, ended)
    }

    /// Runs statements as one simple-query batch.
    pub(super) fn batch(&mut self, kind: OpKind, op: impl FnOnce() -> String, sql: &str) -> Result<(), BackendError> {
        self.run(kind, op, async |c| c.batch_execute(sql).await)
    }
}
