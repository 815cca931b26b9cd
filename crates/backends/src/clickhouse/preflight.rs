//! Preflight: connect and authenticate (the server version), create and drop the lab
//! database, and the shared consistency check ([`crate::net::consistency`]): a marker row in
//! a lab table, read on fresh connections, with the server's `hostName()` as its identity.

use super::ChBackend;
use super::conn::{Client, quote};
use super::ddl::table;
use crate::net::consistency::{self, MarkerProbe, Observation, ProbeError, Terms};
use dedup_lab_core::{BackendError, LabName, Namespace, PreflightReport};

struct Probe<'a> {
    b: &'a mut ChBackend,
    lab: LabName,
}

impl Probe<'_> {
    fn marker(&self) -> String {
        table(&self.lab, "preflight_marker")
    }
}

impl MarkerProbe for Probe<'_> {
    fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError> {
        let t = self.marker();
        let c = &self.b.c;
        c.execute("creating the preflight marker", &format!("CREATE TABLE {t} (token String) ENGINE = TinyLog"))?;
        c.execute("writing the preflight marker", &format!("INSERT INTO {t} VALUES ({})", quote(token)))?;
        let id = c.rows("reading the server's host name", "SELECT hostName()")?;
        Ok(id.into_iter().next().and_then(|r| r.into_iter().next()))
    }

    fn read_marker_on_fresh_connection(&mut self, _i: u32) -> Result<Observation, ProbeError> {
        // A new client has a new connection pool: its first request opens a new connection.
        let fresh = Client::new(&self.b.s).map_err(ProbeError::Connect)?;
        let id = fresh.rows("reading the server's host name", "SELECT hostName()").map_err(ProbeError::Connect)?;
        let exists = fresh
            .number(
                "looking for the preflight marker",
                &format!(
                    "SELECT count() FROM system.tables WHERE database = {} AND name = 'preflight_marker'",
                    quote(self.lab.as_str())
                ),
            )
            .map_err(ProbeError::Read)?;
        let token = if exists == 0 {
            None
        } else {
            let rows = fresh
                .rows("reading the preflight marker", &format!("SELECT token FROM {}", self.marker()))
                .map_err(ProbeError::Read)?;
            rows.into_iter().next().and_then(|r| r.into_iter().next())
        };
        Ok(Observation { identity: id.into_iter().next().and_then(|r| r.into_iter().next()), token })
    }
}

impl ChBackend {
    pub(super) fn run_preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        let mut checks = vec![format!(
            "connected to {} and authenticated as {} (ClickHouse {})",
            self.s.endpoint(),
            self.s.server.user,
            self.server.version
        )];
        self.reset_lab(ns)?;
        checks.push(format!("created the lab database {} and its tables ({})", ns.lab(), self.variant.name));
        let terms = Terms {
            system: self.c.sys.clone(),
            holder: format!("database {}", ns.lab()),
            marker: "marker row".into(),
            identity: "host name".into(),
        };
        let n = self.s.preflight_connections;
        let lab = ns.lab().clone();
        let verdict = consistency::check(&mut Probe { b: self, lab }, n, &terms);
        let dropped = self.drop_lab_objects(ns.lab());
        checks.push(verdict?);
        dropped?;
        checks.push(format!("dropped the lab database {}", ns.lab()));
        Ok(PreflightReport { server_version: Some(self.server.version.clone()), checks })
    }
}
