//! Preflight: connect and report TLS, create the lab database in the variant, run the shared
//! consistency check ([`crate::net::consistency`]) with a marker row in a `preflight` table,
//! settle, find the data files, and drop the lab again whatever happened.

use super::MariaBackend;
use super::conn::{close, open};
use super::errors::{ER_BAD_DB, ER_NO_SUCH_TABLE, OpKind, op_error};
use crate::net::consistency::{self, MarkerProbe, Observation, ProbeError, Terms};
use dedup_lab_core::{BackendError, Namespace, PreflightReport};
use mysql_async::Error as MyError;
use mysql_async::prelude::Queryable;

impl MariaBackend {
    pub(super) fn run_preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.ensure_conn()?;
        let mode = self.s.tls.mode.name();
        let tls: Vec<(String, String)> = self.run(
            OpKind::Admin,
            || "reading the session's TLS status".into(),
            async |c| c.query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')").await,
        )?;
        let get = |name: &str| tls.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
        let tls = if get("Ssl_version").is_empty() {
            format!("no TLS, sslmode={mode}")
        } else {
            format!("TLS {} {} (sslmode={mode})", get("Ssl_version"), get("Ssl_cipher"))
        };
        let mut checks =
            vec![format!("connected and authenticated as {} ({tls}); server: {}", self.s.user, self.server.version)];
        let result = self.preflight_checks(ns, &mut checks);
        // Drop the lab whatever happened above.
        let dropped = self.drop_lab_database(ns.lab());
        result?;
        dropped?;
        checks.push(format!("dropped database {}", ns.lab()));
        Ok(PreflightReport { server_version: Some(self.server.version.clone()), checks })
    }

    fn preflight_checks(&mut self, ns: &Namespace, checks: &mut Vec<String>) -> Result<(), BackendError> {
        self.reset_lab(ns)?;
        checks.push(format!(
            "created database {} with tables {} ({})",
            ns.lab(),
            ns.containers().map(|(_, c)| c).collect::<Vec<_>>().join(", "),
            self.variant.table_options()
        ));
        let local_infile: Option<i64> = self.run(
            OpKind::Admin,
            || "reading @@local_infile".into(),
            async |c| c.query_first("SELECT @@GLOBAL.local_infile").await,
        )?;
        checks.push(match (self.s.bulk, local_infile) {
            (super::settings::BulkPath::Insert, _) => "bulk path: batched INSERT (bulk = \"insert\")".into(),
            (_, Some(0)) => "bulk path: batched INSERT (the server forbids LOAD DATA LOCAL INFILE)".into(),
            _ => "bulk path: streamed LOAD DATA LOCAL INFILE (local_infile=ON)".into(),
        });

        let table = format!("{}.`preflight`", super::ddl::db(ns.lab()));
        let terms = Terms {
            system: self.sys(),
            holder: format!("database {}", ns.lab()),
            marker: "marker row".into(),
            identity: "server".into(),
        };
        let n = self.s.preflight_connections;
        let line = consistency::check(&mut MarkerTable { b: self, table, n }, n, &terms)?;
        checks.push(line);

        self.flush_and_analyze(ns)?;
        checks.push(format!("settle: {}", self.settle_note));
        if let Some(dir) = self.s.data_dir.clone() {
            let files = self.table_files(ns)?;
            checks.push(format!("data_dir {}: found the {} .ibd files of the lab tables", dir.display(), files.len()));
        }
        Ok(())
    }
}

/// The consistency check's two steps: a `preflight` table in the lab database holding one
/// marker row. MariaDB has no identifier shared by the servers of one replicated cluster,
/// so only the marker is compared.
struct MarkerTable<'a> {
    b: &'a mut MariaBackend,
    table: String,
    n: u32,
}

impl MarkerProbe for MarkerTable<'_> {
    fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError> {
        let t = &self.table;
        let create = format!("CREATE TABLE {t} (token VARCHAR(64) NOT NULL) ENGINE=InnoDB");
        self.b.exec_sql(OpKind::Ddl, || format!("preflight: creating {t}"), &create)?;
        let insert = format!("INSERT INTO {t} (token) VALUES (?)");
        self.b.run(
            OpKind::Dml,
            || format!("preflight: writing the marker row into {t}"),
            async |c| c.exec_drop(&insert, (token,)).await,
        )?;
        Ok(None)
    }

    fn read_marker_on_fresh_connection(&mut self, i: u32) -> Result<Observation, ProbeError> {
        let b = &mut *self.b;
        let mut plain_only = b.plain_only;
        let mut fresh = open(&b.rt, &b.s, &mut plain_only).map_err(ProbeError::Connect)?;
        let select = format!("SELECT token FROM {}", self.table);
        let seen: Result<Option<String>, MyError> = b.rt.block_on(fresh.query_first(&select));
        close(&b.rt, fresh);
        let token = match seen {
            Ok(t) => t,
            // The lab database or the marker table is not there: another server.
            Err(MyError::Server(e)) if matches!(e.code, ER_NO_SUCH_TABLE | ER_BAD_DB) => None,
            Err(e) => {
                let op = format!("preflight: reading {} on fresh connection {i} of {}", self.table, self.n);
                return Err(ProbeError::Read(op_error(&b.s, &op, OpKind::Dml, e)));
            }
        };
        Ok(Observation { identity: None, token })
    }
}
