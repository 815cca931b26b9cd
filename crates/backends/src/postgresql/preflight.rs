//! Preflight: connect and report TLS, create the lab, run the shared consistency check
//! ([`crate::net::consistency`]) with a marker row in a `preflight` table, settle, find the
//! data files, and drop the lab again whatever happened.

use super::PgBackend;
use super::conn::Conn;
use super::dialect::Dialect;
use super::errors::{OpKind, op_error};
use crate::net::consistency::{self, MarkerProbe, Observation, ProbeError, Terms};
use dedup_lab_core::{BackendError, Namespace, PreflightReport};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

impl PgBackend {
    pub(super) fn run_preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.ensure_conn()?;
        let mode = self.s.tls.mode.name();
        let tls = match self.dialect.tls_status_sql() {
            Some(sql) => self
                .run(
                    OpKind::Admin,
                    || "reading pg_stat_ssl".into(),
                    async |c| {
                        let rows = c.query_typed(sql, &[]).await?;
                        Ok(rows.first().map(|r| (r.get::<_, bool>(0), r.get::<_, String>(1))))
                    },
                )?
                .map(|(on, v)| if on { format!("TLS {v} (sslmode={mode})") } else { "no TLS".into() })
                .unwrap_or_else(|| format!("sslmode={mode}")),
            None => format!("sslmode={mode}"),
        };
        let mut checks =
            vec![format!("connected and authenticated as {} ({tls}); server: {}", self.s.user, self.server.version)];
        let result = self.preflight_checks(ns, &mut checks);
        // Drop the lab whatever happened above.
        let dropped = self.drop_lab_objects(ns.lab());
        result?;
        dropped?;
        checks.push(format!("dropped {}", self.lab_phrase(ns.lab())));
        Ok(PreflightReport { server_version: Some(self.server.version.clone()), checks })
    }

    fn preflight_checks(&mut self, ns: &Namespace, checks: &mut Vec<String>) -> Result<(), BackendError> {
        self.reset_lab(ns)?;
        checks.push(format!(
            "created {} with tables {} (variant {})",
            self.lab_phrase(ns.lab()),
            ns.containers().map(|(_, c)| c).collect::<Vec<_>>().join(", "),
            self.variant.name
        ));

        // A marker row written on this connection must be visible on every fresh one.
        let marker = self.rel(ns, "preflight");
        let terms = Terms {
            system: self.sys(),
            holder: self.lab_phrase(ns.lab()),
            marker: "marker row".into(),
            identity: "system identifier".into(),
        };
        let n = self.s.preflight_connections;
        let line = consistency::check(&mut MarkerTable { b: self, table: marker, n }, n, &terms)?;
        checks.push(line);

        self.checkpoint()?;
        checks.push(format!("settle: {}", self.settle_note));
        if let Some(dir) = self.s.data_dir.clone() {
            let files = self.relation_paths(ns)?;
            checks.push(format!("data_dir {}: found the {} files of the lab relations", dir.display(), files.len()));
        }
        Ok(())
    }
}

/// The consistency check's two steps on this protocol: a `preflight` table in the lab holding
/// one marker row, and the server's system identifier where it can be read.
struct MarkerTable<'a> {
    b: &'a mut PgBackend,
    table: String,
    n: u32,
}

/// The server identity a connection sees (`None` when not readable, and on CockroachDB).
async fn identity(dialect: Dialect, c: &tokio_postgres::Client) -> Option<String> {
    let sql = dialect.identity_sql()?;
    c.query_typed(sql, &[]).await.ok().and_then(|rows| rows.first().map(|r| r.get::<_, String>(0)))
}

impl MarkerProbe for MarkerTable<'_> {
    fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError> {
        let marker = &self.table;
        let create = format!("CREATE TABLE {marker} (token text NOT NULL)");
        self.b.batch(OpKind::Ddl, || format!("preflight: creating {marker}"), &create)?;
        let insert = format!("INSERT INTO {marker} (token) VALUES ($1)");
        let dialect = self.b.dialect;
        self.b.run(
            OpKind::Dml,
            || format!("preflight: writing the marker row into {marker}"),
            async |c| {
                c.execute_typed(&insert, &[(&token, Type::TEXT)]).await?;
                Ok(identity(dialect, c).await)
            },
        )
    }

    fn read_marker_on_fresh_connection(&mut self, i: u32) -> Result<Observation, ProbeError> {
        let b = &mut *self.b;
        let fresh = Conn::open(&b.rt, &b.s, &b.tls).map_err(ProbeError::Connect)?;
        let select = format!("SELECT token FROM {}", self.table);
        let (id, seen) = b.rt.block_on(async {
            let id = identity(b.dialect, &fresh.client).await;
            (id, fresh.client.query_typed(&select, &[]).await)
        });
        let token = match seen {
            Ok(rows) => rows.first().map(|r| r.get::<_, String>(0)),
            // The lab (schema or database) or the marker table is not there: another server.
            Err(e)
                if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE
                    || *c == SqlState::INVALID_SCHEMA_NAME
                    || *c == SqlState::INVALID_CATALOG_NAME) =>
            {
                None
            }
            Err(e) => {
                let op = format!("preflight: reading {} on fresh connection {i} of {}", self.table, self.n);
                return Err(ProbeError::Read(op_error(&b.s, &op, OpKind::Dml, e, None)));
            }
        };
        Ok(Observation { identity: id, token })
    }
}
