//! The preflight consistency check: is one server (or one replicated cluster) behind the
//! configured address, or several that do not share their data?
//!
//! The original study ran two unreplicated primaries behind one load balancer; every other
//! measurement then went to a different server. The check writes a random marker on the
//! backend's connection, then opens N fresh connections and requires each to see that
//! marker (and, where the system reports one, the same server identity). A backend supplies
//! only its two system-specific steps ([`MarkerProbe`]); [`check`] runs them and
//! [`verdict`] judges each fresh connection.

use dedup_lab_core::{BackendError, ErrorClass};

/// The verdict when connections reach servers that do not share their data.
pub const SEVERAL_SERVERS: &str = "several unreplicated servers answer behind this address (as with two primaries \
    behind one load balancer: what one of them is told, the other does not know); point dedup-lab at a single \
    primary, or fix the replication, before measuring";

/// What a fresh connection saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The server identity it reports (`None` when the system has none or it is not readable).
    pub identity: Option<String>,
    /// The marker it read; `None` when the marker (or the namespace holding it) is absent.
    pub token: Option<String>,
}

/// Why reading on a fresh connection failed: the connection could not be opened (which
/// itself may mean another server answers), or the read failed.
#[derive(Debug)]
pub enum ProbeError {
    Connect(BackendError),
    Read(BackendError),
}

/// The two system-specific steps of the check.
pub trait MarkerProbe {
    /// Writes `token` where fresh connections can read it, on the backend's own connection;
    /// returns the server identity that connection sees.
    fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError>;

    /// Opens fresh connection `i` (1-based) and reads the marker on it.
    fn read_marker_on_fresh_connection(&mut self, i: u32) -> Result<Observation, ProbeError>;
}

/// How messages name things: the system and endpoint (`postgresql host:5432/db as u`), what
/// holds the marker (`schema "dedup_lab"`), the marker (`marker row`) and what the identity
/// is called (`system identifier`).
#[derive(Debug, Clone)]
pub struct Terms {
    pub system: String,
    pub holder: String,
    pub marker: String,
    pub identity: String,
}

/// Runs the check with `n` fresh connections; returns the line for the preflight report.
pub fn check(probe: &mut dyn MarkerProbe, n: u32, terms: &Terms) -> Result<String, BackendError> {
    let token = random_token();
    let main_id = probe.write_marker(&token)?;
    for i in 1..=n {
        let seen = match probe.read_marker_on_fresh_connection(i) {
            Ok(seen) => seen,
            Err(ProbeError::Connect(e)) => {
                return Err(BackendError::with_source(
                    format!(
                        "{}: preflight: fresh connection {i} of {n} failed although the first one worked; if only \
                         some connections fail, {SEVERAL_SERVERS}",
                        terms.system
                    ),
                    e,
                ));
            }
            Err(ProbeError::Read(e)) => return Err(e),
        };
        verdict(&token, main_id.as_deref(), i, n, &seen, terms)?;
    }
    Ok(match &main_id {
        Some(id) => {
            format!("{n} fresh connections saw the same server ({} {id}) and the {}", terms.identity, terms.marker)
        }
        None => format!("{n} fresh connections saw the {} written on the first connection", terms.marker),
    })
}

/// Whether fresh connection `i` of `n`, which saw `seen`, reached the server the marker
/// `token` was written on (whose identity was `main_id`). An error of class
/// [`ErrorClass::Config`] otherwise: the deployment, not the tool, must change.
pub fn verdict(
    token: &str,
    main_id: Option<&str>,
    i: u32,
    n: u32,
    seen: &Observation,
    terms: &Terms,
) -> Result<(), BackendError> {
    let other_id = match (main_id, seen.identity.as_deref()) {
        (Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    };
    if seen.token.as_deref() == Some(token) && other_id.is_none() {
        return Ok(());
    }
    let what = match &seen.token {
        None => format!("does not see the {} and {}", terms.holder, terms.marker),
        Some(t) if t == token => format!("sees the {}", terms.marker),
        Some(_) => format!("sees a different {}", terms.marker),
    };
    let ids = match other_id {
        Some((a, b)) => format!(" ({} {a} on the first, {b} on this one)", terms.identity),
        None => String::new(),
    };
    Err(BackendError::msg(format!(
        "{}: preflight: fresh connection {i} of {n} {what} that the first connection created{ids}: {SEVERAL_SERVERS}",
        terms.system
    ))
    .classed(ErrorClass::Config))
}

/// A random marker (not a secret; it only has to differ between runs and processes).
pub fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Servers in memory: connection i goes to server `route[i % len]`; each server has an
    /// identity and the markers written to it.
    struct Fake {
        route: Vec<usize>,
        ids: Vec<Option<String>>,
        markers: HashMap<usize, String>,
        refuse: Option<u32>,
    }

    impl Fake {
        fn new(route: Vec<usize>, ids: Vec<Option<&str>>) -> Fake {
            Fake {
                route,
                ids: ids.into_iter().map(|i| i.map(str::to_string)).collect(),
                markers: HashMap::new(),
                refuse: None,
            }
        }
        fn server(&self, conn: u32) -> usize {
            self.route[conn as usize % self.route.len()]
        }
    }

    impl MarkerProbe for Fake {
        fn write_marker(&mut self, token: &str) -> Result<Option<String>, BackendError> {
            let s = self.server(0);
            self.markers.insert(s, token.to_string());
            Ok(self.ids[s].clone())
        }
        fn read_marker_on_fresh_connection(&mut self, i: u32) -> Result<Observation, ProbeError> {
            if self.refuse == Some(i) {
                return Err(ProbeError::Connect(
                    BackendError::msg("connecting: refused").classed(ErrorClass::Unreachable),
                ));
            }
            let s = self.server(i);
            Ok(Observation { identity: self.ids[s].clone(), token: self.markers.get(&s).cloned() })
        }
    }

    fn terms() -> Terms {
        Terms {
            system: "somedb h:1/db as u".into(),
            holder: "schema \"dedup_lab\"".into(),
            marker: "marker row".into(),
            identity: "system identifier".into(),
        }
    }

    #[test]
    fn one_server_passes() {
        let line = check(&mut Fake::new(vec![0], vec![Some("42")]), 4, &terms()).unwrap();
        assert_eq!(line, "4 fresh connections saw the same server (system identifier 42) and the marker row");
        let line = check(&mut Fake::new(vec![0], vec![None]), 3, &terms()).unwrap();
        assert_eq!(line, "3 fresh connections saw the marker row written on the first connection");
    }

    #[test]
    fn two_servers_behind_one_address_fail_with_the_verdict() {
        // Round robin: fresh connection 1 reaches the other server, which has no marker.
        let e = check(&mut Fake::new(vec![0, 1], vec![Some("42"), Some("43")]), 4, &terms()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("somedb h:1/db as u: preflight: fresh connection 1 of 4 does not see the schema"),
            "{text}"
        );
        assert!(text.contains("(system identifier 42 on the first, 43 on this one)"), "{text}");
        assert!(text.ends_with(SEVERAL_SERVERS), "{text}");
        assert_eq!(e.class(), Some(ErrorClass::Config));
        // Without identities the missing marker alone tells; the third connection is the
        // first to go elsewhere.
        let e = check(&mut Fake::new(vec![0, 0, 0, 1], vec![None, None]), 4, &terms()).unwrap_err();
        assert!(e.to_string().contains("fresh connection 3 of 4 does not see"), "{e}");
    }

    #[test]
    fn verdict_cases() {
        let t = terms();
        let obs = |id: Option<&str>, tok: Option<&str>| Observation {
            identity: id.map(Into::into),
            token: tok.map(Into::into),
        };
        assert!(verdict("t", Some("1"), 1, 2, &obs(Some("1"), Some("t")), &t).is_ok());
        assert!(
            verdict("t", None, 1, 2, &obs(Some("1"), Some("t")), &t).is_ok(),
            "an identity on one side only says nothing"
        );
        let e = verdict("t", Some("1"), 1, 2, &obs(Some("1"), Some("old")), &t).unwrap_err().to_string();
        assert!(e.contains("sees a different marker row"), "{e}");
        // Same marker, another server: replication that copies data but not identity is
        // still two servers.
        let e = verdict("t", Some("1"), 2, 2, &obs(Some("2"), Some("t")), &t).unwrap_err().to_string();
        assert!(
            e.contains("fresh connection 2 of 2 sees the marker row") && e.contains("1 on the first, 2 on this one"),
            "{e}"
        );
    }

    #[test]
    fn a_fresh_connection_that_fails_is_named_with_the_verdict() {
        let mut f = Fake::new(vec![0], vec![None]);
        f.refuse = Some(2);
        let e = check(&mut f, 3, &terms()).unwrap_err();
        assert!(e.to_string().contains("fresh connection 2 of 3 failed although the first one worked"), "{e}");
        assert!(e.to_string().contains(SEVERAL_SERVERS));
        assert_eq!(e.class(), Some(ErrorClass::Unreachable), "the class of the cause");
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 32);
    }
}
