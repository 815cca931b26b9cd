//! Preflight: connect and authenticate (done when opening), check the cluster's topology
//! (every master reachable, all 16384 slots covered, `cluster_state:ok`), try every command
//! the run needs under the user's ACL (a denial names the command and the rule that allows
//! it), write and delete a probe key inside the prefix, and check that fresh connections
//! see the same data (`net::consistency`).

use super::resp::Reply;
use super::router::Router;
use super::{RedisBackend, cmd, keys};
use crate::net::consistency::{self, MarkerProbe, Observation, ProbeError, Terms};
use dedup_lab_core::{Backend, BackendError, ErrorClass, Namespace, PreflightReport};

impl RedisBackend {
    pub(super) fn run_preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        let mut checks = vec![format!("connected and authenticated to {} ({})", self.endpoint(), self.r.version)];
        if let Some(map) = self.r.cluster.clone() {
            let gaps = map.uncovered();
            if !gaps.is_empty() {
                let list: Vec<String> =
                    gaps.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
                return Err(BackendError::msg(format!(
                    "{}: preflight: slots {} are not served by any master; every key in them would fail (fix the \
                     cluster with `redis-cli --cluster fix`)",
                    self.sys(),
                    list.join(", ")
                ))
                .classed(ErrorClass::Config));
            }
            for node in &map.masters {
                let (mut c, _) = self.r.connect_node(node).map_err(|e| {
                    BackendError::with_source(format!("{}: preflight: master {node} is not reachable", self.sys()), e)
                })?;
                let info = c
                    .call(&cmd(&["CLUSTER", "INFO"]))
                    .map_err(|e| super::errors::io_error(self.sys(), node, "CLUSTER INFO", e))?;
                let text = info.text().unwrap_or_default();
                if !text.contains("cluster_state:ok") {
                    return Err(BackendError::msg(format!(
                        "{}: preflight: master {node} reports {}; the cluster is not serving all slots",
                        self.sys(),
                        text.lines().find(|l| l.starts_with("cluster_state")).unwrap_or("no cluster_state")
                    ))
                    .classed(ErrorClass::ConnectionLost));
                }
            }
            checks.push(format!(
                "cluster: {} masters ({}) reachable and ok, all 16384 slots covered",
                map.masters.len(),
                map.masters.join(", ")
            ));
        }
        // Every command a run sends, under this user's ACL.
        let probe_key = keys::marker_key(ns.lab());
        let mut tried = Vec::new();
        for (args, why) in [
            (vec![b"SET".to_vec(), probe_key.clone(), b"probe".to_vec()], "store records"),
            (vec![b"GET".to_vec(), probe_key.clone()], "read records back"),
            (vec![b"UNLINK".to_vec(), probe_key.clone()], "delete records"),
            (vec![b"HSET".to_vec(), probe_key.clone(), b"f".to_vec(), b"v".to_vec()], "store native records as hashes"),
            (vec![b"HGETALL".to_vec(), probe_key.clone()], "read native records back"),
            (vec![b"UNLINK".to_vec(), probe_key.clone()], "delete records"),
        ] {
            self.r.keyed(&args, why)?;
            tried.push(String::from_utf8_lossy(&args[0]).into_owned());
        }
        for node in self.r.masters() {
            self.r.scan(&node, &keys::lab_pattern(ns.lab()))?;
            self.r.on(&node, &cmd(&["MEMORY", "STATS"]), "read the memory it measures")?;
        }
        tried.extend(["SCAN".to_string(), "MEMORY STATS".to_string()]);
        if self.s.rdb_probe {
            let files = self.rdb_files()?;
            self.save_if_measured()?;
            tried.extend(["CONFIG GET".to_string(), "SAVE".to_string()]);
            checks.push(format!(
                "RDB files measured by the fs probe: {}",
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        checks.push(format!("the ACL allows {} on keys {}*", tried.join(", "), keys::lab_prefix(ns.lab())));
        checks.push(match (&self.purge_denied, self.aof) {
            (None, Some(true)) => "maintenance: MEMORY PURGE and BGREWRITEAOF (AOF is on)".into(),
            (None, _) => "maintenance: MEMORY PURGE (AOF off or not readable)".into(),
            (Some(d), _) => format!("maintenance: unsupported ({d})"),
        });
        let n = self.s.preflight_connections;
        let terms = Terms {
            system: self.r.sys.clone(),
            holder: format!("key prefix {}", keys::lab_prefix(ns.lab())),
            marker: "marker key".into(),
            identity: "node id".into(),
        };
        let line = consistency::check(&mut Marker { b: self, key: probe_key.clone() }, n, &terms)?;
        self.r.keyed(&[b"UNLINK".to_vec(), probe_key], "delete the preflight marker")?;
        checks.push(line);
        self.reset(ns)?;
        self.teardown(ns)?;
        checks.push(format!("wrote and deleted keys under {}", keys::lab_prefix(ns.lab())));
        Ok(PreflightReport { server_version: Some(self.server_version()?), checks })
    }
}

struct Marker<'a> {
    b: &'a mut RedisBackend,
    key: Vec<u8>,
}

/// The identity of the node that owns the marker: its cluster node id (`CLUSTER MYID`); a
/// standalone server has none that a confined user may read (`INFO` is `@dangerous`).
fn identity(r: &mut Router, key: &[u8]) -> Result<Option<String>, BackendError> {
    if r.cluster.is_none() {
        return Ok(None);
    }
    let node = r.node_for(key)?;
    Ok(r.on(&node, &cmd(&["CLUSTER", "MYID"]), "identify the node")?.text())
}

impl MarkerProbe for Marker<'_> {
    fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError> {
        self.b
            .r
            .keyed(&[b"SET".to_vec(), self.key.clone(), token.as_bytes().to_vec()], "write the preflight marker")?;
        identity(&mut self.b.r, &self.key)
    }

    fn read_marker_on_fresh_connection(&mut self, _i: u32) -> Result<Observation, ProbeError> {
        let mut fresh = Router::open(&self.b.s, self.b.r_tls()).map_err(ProbeError::Connect)?;
        let got =
            fresh.keyed(&[b"GET".to_vec(), self.key.clone()], "read the preflight marker").map_err(ProbeError::Read)?;
        let token = match got {
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        Ok(Observation { identity: identity(&mut fresh, &self.key).map_err(ProbeError::Read)?, token })
    }
}
