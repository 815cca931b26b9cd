//! Size probes: where the physical size of a namespace comes from.
//!
//! - `fs`: allocated bytes (`st_blocks × 512`) of the backend's data paths, each inode once.
//! - `internal`: the system's own total for the namespace ([`Backend::sizes`]).
//! - `prometheus`: a PromQL query against a Prometheus server, summed over every series
//!   (or a Kubernetes PVC resolved to its Longhorn volume); see [`crate::prom`].
//! - `scrape`: one metric of a Prometheus-format endpoint, summed over the matching series.
//!
//! Every reading settles the backend first. A local reading is repeated until two
//! consecutive readings agree (bounded), so a number is never taken while the system is
//! still writing. A remote one polls until the metric holds, and after a stage first until it
//! has moved (remote metrics lag: see [`crate::prom::settle_moved`]); running out of
//! `settle_bound` is said in the stage's notes. A failed reading is an error, never a number
//! (the original fed a failed query's −1 into deltas).

use crate::RunError;
use crate::prom::{AuthSpec, PromProbe, PromSource, PromTarget, Reading, ScrapeProbe, ScrapeSource, Settle};
use dedup_lab_core::{Backend, BackendError, Namespace};
use std::time::Duration;

const MAX_READS: usize = 8;
const BETWEEN_READS: Duration = Duration::from_millis(25);

/// How to read the physical size of a system's namespace: `probe = "…"` of
/// `[systems.<name>]`, with the remote probes' own table (`[systems.<name>.prometheus]`,
/// `[systems.<name>.scrape]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `fs` when the backend has local data paths, `internal` otherwise.
    Auto,
    Fs,
    Internal,
    Prometheus(PromProbe),
    Scrape(ScrapeProbe),
}

/// Keys of `[systems.<name>.prometheus]` and `[systems.<name>.scrape]` besides their own.
const REMOTE_KEYS: &[&str] = &[
    "url",
    "token_env",
    "token_file",
    "user",
    "password_env",
    "password_file",
    "timeout",
    "settle_bound",
    "settle_interval",
    "settle_polls",
    "sslrootcert",
];

impl ProbeKind {
    /// The probe's name as configured (`auto`, `fs`, `internal`, `prometheus`, `scrape`).
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Auto => "auto",
            ProbeKind::Fs => "fs",
            ProbeKind::Internal => "internal",
            ProbeKind::Prometheus(_) => "prometheus",
            ProbeKind::Scrape(_) => "scrape",
        }
    }

    /// The probe of a `[systems.<system>]` table (as JSON): `probe` and, for the remote
    /// probes, their table, checked completely (nothing connects, no secret is read). A table
    /// of a probe that is not selected is refused, so a setting never silently does nothing.
    pub fn from_settings(system: &str, settings: &serde_json::Value) -> Result<ProbeKind, String> {
        let name = match settings.get("probe") {
            None => "auto",
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(v) => {
                return Err(format!("config [systems.{system}] probe = {v}: expected a probe name, e.g. \"fs\""));
            }
        };
        for table in ["prometheus", "scrape"] {
            if settings.get(table).is_some() && name != table {
                return Err(format!(
                    "config [systems.{system}.{table}] is set, but probe = {name:?}: set probe = \"{table}\" to use it, \
                     or remove the table"
                ));
            }
        }
        let table = |key: &str| -> Result<&serde_json::Map<String, serde_json::Value>, String> {
            settings.get(key).and_then(|t| t.as_object()).ok_or_else(|| {
                format!(
                    "config [systems.{system}] probe = \"{key}\" needs a table [systems.{system}.{key}] with its `url`"
                )
            })
        };
        Ok(match name {
            "auto" => ProbeKind::Auto,
            "fs" => ProbeKind::Fs,
            "internal" => ProbeKind::Internal,
            "prometheus" => ProbeKind::Prometheus(prom_probe(system, table("prometheus")?)?),
            "scrape" => ProbeKind::Scrape(scrape_probe(system, table("scrape")?)?),
            other => {
                return Err(format!(
                    "config [systems.{system}] probe = {other:?} is not a size probe; valid probes: auto, fs, internal, \
                     prometheus, scrape"
                ));
            }
        })
    }

    /// Variables named by the probe's `*_env` settings: they hold secrets.
    pub fn secret_env_names(&self) -> Vec<String> {
        match self {
            ProbeKind::Prometheus(p) => p.auth.secret_env_names(),
            ProbeKind::Scrape(p) => p.auth.secret_env_names(),
            _ => Vec::new(),
        }
    }
}

/// A settings table, as JSON.
pub type Table = serde_json::Map<String, serde_json::Value>;

/// The credentials of a table (`token_env` / `token_file`, or `user` with `password_env` /
/// `password_file`), checked for contradictions; `at` names the table in messages. Names
/// only: no secret is read here.
pub fn auth_spec(at: &str, t: &Table) -> Result<AuthSpec, String> {
    let string = |key: &str| -> Result<Option<String>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(v) => Err(format!("{at} {key} = {v}: expected a non-empty string")),
        }
    };
    let auth = AuthSpec {
        token_env: string("token_env")?,
        token_file: string("token_file")?.map(Into::into),
        user: string("user")?,
        password_env: string("password_env")?,
        password_file: string("password_file")?.map(Into::into),
    };
    let token = auth.token_env.is_some() || auth.token_file.is_some();
    let password = auth.password_env.is_some() || auth.password_file.is_some();
    if auth.token_env.is_some() && auth.token_file.is_some() {
        return Err(format!("{at} has token_env and token_file: give one"));
    }
    if auth.password_env.is_some() && auth.password_file.is_some() {
        return Err(format!("{at} has password_env and password_file: give one"));
    }
    if token && (auth.user.is_some() || password) {
        return Err(format!("{at} has a bearer token and basic authentication (user/password): give one"));
    }
    if auth.user.is_some() != password {
        return Err(format!(
            "{at}: basic authentication needs both `user` and `password_env` (or `password_file`); one is missing"
        ));
    }
    Ok(auth)
}

/// Reads `[systems.<system>.<name>]`: checks the keys, and returns the settings every remote
/// probe has (url, credentials, timeout, settle, CA file).
fn remote_common(
    system: &str,
    name: &str,
    t: &Table,
    own: &[&str],
) -> Result<(String, AuthSpec, f64, Settle, Option<std::path::PathBuf>), String> {
    let at = format!("config [systems.{system}.{name}]");
    for key in t.keys() {
        if key == "token" || key == "password" {
            return Err(format!(
                "{at} has `{key}`: secrets never go in the config file; name the variable that holds it with \
                 `{key}_env`, or a file with `{key}_file`"
            ));
        }
        if !REMOTE_KEYS.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            let mut valid: Vec<&str> = own.to_vec();
            valid.extend(REMOTE_KEYS);
            return Err(format!("{at} has an unknown key `{key}`; valid keys: {}", valid.join(", ")));
        }
    }
    let string = |key: &str| -> Result<Option<String>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(v) => Err(format!("{at} {key} = {v}: expected a non-empty string")),
        }
    };
    let secs = |key: &str, default: f64, example: &str| -> Result<f64, String> {
        match t.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|s| *s > 0.0 && *s <= 86_400.0).ok_or_else(|| {
                format!("{at} {key} = {v}: expected seconds above 0 (fractions allowed), e.g. {example}")
            }),
        }
    };
    let url = string("url")?.ok_or_else(|| format!("{at} needs `url`, e.g. url = \"http://prometheus:9090\""))?;
    crate::prom::check_url(&format!("{at} url"), &url)?;
    let auth = auth_spec(&at, t)?;
    let timeout = secs("timeout", 10.0, "10")?;
    let polls =
        match t.get("settle_polls") {
            None => Settle::default().polls,
            Some(v) => v.as_u64().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                format!("{at} settle_polls = {v}: expected a whole number of polls from 1 to 100, e.g. 3")
            })? as u32,
        };
    let settle = Settle {
        bound_secs: secs("settle_bound", Settle::default().bound_secs, "300")?,
        interval_secs: secs("settle_interval", Settle::default().interval_secs, "5")?,
        polls,
    };
    let ca = string("sslrootcert")?.map(std::path::PathBuf::from);
    if ca.is_some() && !url.starts_with("https://") {
        return Err(format!("{at} has sslrootcert, but url {url:?} is not https://"));
    }
    Ok((url, auth, timeout, settle, ca))
}

/// A Kubernetes object name (PVC, namespace): lower-case letters, digits, `-` and `.`.
fn k8s_name(at: &str, key: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!("{at} {key} = {v:?} is not a Kubernetes name (lower-case letters, digits, `-` and `.`)"))
    }
}

fn prom_probe(system: &str, t: &Table) -> Result<PromProbe, String> {
    let at = format!("config [systems.{system}.prometheus]");
    let (url, auth, timeout_secs, settle, sslrootcert) =
        remote_common(system, "prometheus", t, &["query", "pvc", "namespace"])?;
    let get = |k: &'static str| t.get(k).map(|v| v.as_str().map(str::trim).filter(|s| !s.is_empty()).ok_or(k));
    let target = match (get("query"), get("pvc"), get("namespace")) {
        (Some(Ok(q)), None, None) => PromTarget::Query(q.to_string()),
        (None, Some(Ok(pvc)), Some(Ok(namespace))) => {
            k8s_name(&at, "pvc", pvc)?;
            k8s_name(&at, "namespace", namespace)?;
            PromTarget::Pvc { pvc: pvc.to_string(), namespace: namespace.to_string() }
        }
        (Some(Err(k)), _, _) | (_, Some(Err(k)), _) | (_, _, Some(Err(k))) => {
            return Err(format!("{at} {k}: expected a non-empty string"));
        }
        (Some(_), _, _) => return Err(format!("{at} has `query` and the PVC template (`pvc`, `namespace`): give one")),
        _ => {
            return Err(format!(
                "{at} needs `query` (PromQL, summed over every series it gives) or `pvc` and `namespace` (a \
                 Kubernetes PVC on Longhorn)"
            ));
        }
    };
    Ok(PromProbe { url, target, auth, timeout_secs, settle, sslrootcert })
}

fn scrape_probe(system: &str, t: &Table) -> Result<ScrapeProbe, String> {
    let at = format!("config [systems.{system}.scrape]");
    let (url, auth, timeout_secs, settle, sslrootcert) = remote_common(system, "scrape", t, &["metric", "labels"])?;
    let metric = match t.get("metric") {
        Some(serde_json::Value::String(m))
            if m.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') =>
        {
            m.clone()
        }
        None => return Err(format!("{at} needs `metric`, e.g. metric = \"minio_bucket_usage_total_bytes\"")),
        Some(v) => return Err(format!("{at} metric = {v}: expected a metric name (letters, digits, _ and :)")),
    };
    let labels = match t.get("labels") {
        None => Vec::new(),
        Some(serde_json::Value::Object(m)) => {
            let mut out = Vec::new();
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(format!(
                        "{at} labels.{k} = {v}: expected a string (`*` matches any run of characters)"
                    ));
                };
                out.push((k.clone(), v.to_string()));
            }
            out
        }
        Some(v) => {
            return Err(format!(
                "{at} labels = {v}: expected a table of label values, e.g. labels = {{ bucket = \"dedup-lab-c*\" }}"
            ));
        }
    };
    Ok(ScrapeProbe { url, metric, labels, auth, timeout_secs, settle, sslrootcert })
}

pub use dedup_lab_backends::local::allocated_bytes;

/// The client of a remote probe.
enum Remote {
    Prom(PromSource),
    Scrape(ScrapeSource),
}

/// A reader of the physical size for the metrics trace's samples, independent of the backend
/// (it runs on the sampler's thread); `None` from it: that reading failed.
pub type SampleReader = Box<dyn FnMut() -> Option<u64> + Send>;

/// A configured probe, ready to read (a remote one with its client and credentials).
pub struct Probe {
    kind: ProbeKind,
    remote: Option<(Remote, Settle)>,
}

impl Probe {
    /// A probe of `kind` for `system`; a remote probe reads its credentials here, so a
    /// variable that is not set fails the cell before its first stage.
    pub fn new(kind: &ProbeKind, system: &str) -> Result<Probe, RunError> {
        let remote = match kind {
            ProbeKind::Prometheus(p) => Some((Remote::Prom(PromSource::new(system, p)?), p.settle)),
            ProbeKind::Scrape(p) => Some((Remote::Scrape(ScrapeSource::new(system, p)?), p.settle)),
            _ => None,
        };
        Ok(Probe { kind: kind.clone(), remote })
    }

    fn resolve(
        &self,
        backend: &mut dyn Backend,
        ns: &Namespace,
    ) -> Result<(ProbeKind, Vec<std::path::PathBuf>), BackendError> {
        let paths = match self.kind {
            ProbeKind::Internal => Vec::new(),
            _ => backend.data_paths(ns)?,
        };
        let kind = match &self.kind {
            ProbeKind::Auto if paths.is_empty() => ProbeKind::Internal,
            ProbeKind::Auto => ProbeKind::Fs,
            ProbeKind::Fs if paths.is_empty() => {
                return Err(BackendError::msg(format!(
                    "{}: the fs size probe needs the system's local data directory; set its `data_dir` or use probe = \"internal\"",
                    backend.kind()
                )));
            }
            k => k.clone(),
        };
        Ok((kind, paths))
    }

    /// For the trace: the fs probe's paths, or a client of its own for a remote probe, read
    /// once per sample without settling (a sample shows where the metric stands, it is not a
    /// measurement); `None` for a probe that asks the system itself (`internal`).
    pub fn sample_reader(&self, backend: &mut dyn Backend, ns: &Namespace, system: &str) -> Option<SampleReader> {
        match &self.kind {
            ProbeKind::Prometheus(p) => {
                let src = PromSource::new(system, p).ok()?;
                Some(Box::new(move || src.read().ok()))
            }
            ProbeKind::Scrape(p) => {
                let src = ScrapeSource::new(system, p).ok()?;
                Some(Box::new(move || src.read().ok()))
            }
            _ => match self.resolve(backend, ns).ok()? {
                (ProbeKind::Fs, paths) => Some(Box::new(move || allocated_bytes(&paths).ok())),
                _ => None,
            },
        }
    }

    /// The method label for measurements, e.g. `fs`, `internal`, `prometheus:<query>`.
    pub fn method(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<String, RunError> {
        match &self.remote {
            Some((Remote::Prom(p), _)) => return Ok(p.method()),
            Some((Remote::Scrape(s), _)) => return Ok(s.method()),
            None => {}
        }
        Ok(match self.resolve(backend, ns)?.0 {
            ProbeKind::Fs => "fs",
            _ => "internal",
        }
        .to_string())
    }

    fn read_once(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<u64, RunError> {
        let (kind, paths) = self.resolve(backend, ns)?;
        match kind {
            ProbeKind::Fs => allocated_bytes(&paths).map_err(|e| {
                RunError::Backend(BackendError::with_source(format!("{}: fs size probe", backend.kind()), e))
            }),
            _ => backend.sizes(ns)?.total_bytes.ok_or_else(|| {
                RunError::Backend(BackendError::msg(format!(
                    "{}: the system reports no total size for the namespace; use probe = \"fs\"",
                    backend.kind()
                )))
            }),
        }
    }

    fn read_remote(remote: &Remote) -> Result<Result<u64, RunError>, RunError> {
        match remote {
            Remote::Prom(p) => p.try_read(),
            Remote::Scrape(s) => s.try_read(),
        }
    }

    /// Settles the backend, then reads until the value holds: two consecutive local readings
    /// agree, or `settle_polls` remote ones (bounded by `settle_bound`).
    pub fn read(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<Reading, RunError> {
        backend.settle(ns)?;
        if let Some((remote, settle)) = &self.remote {
            return crate::prom::settle_series(settle, None, || Self::read_remote(remote));
        }
        let mut last = self.read_once(backend, ns)?;
        for _ in 1..MAX_READS {
            std::thread::sleep(BETWEEN_READS);
            let next = self.read_once(backend, ns)?;
            if next == last {
                break;
            }
            last = next;
        }
        Ok(Reading { bytes: last, note: None })
    }

    /// The reading after a stage whose reading before was `before`: as [`Probe::read`] for a
    /// local probe; a remote one first waits for the metric to move away from `before`.
    pub fn read_after(&self, backend: &mut dyn Backend, ns: &Namespace, before: u64) -> Result<Reading, RunError> {
        match &self.remote {
            Some((remote, settle)) => {
                backend.settle(ns)?;
                crate::prom::settle_series(settle, Some(before), || Self::read_remote(remote))
            }
            None => self.read(backend, ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<ProbeKind, String> {
        ProbeKind::from_settings("files", &v)
    }

    #[test]
    fn remote_probes_are_read_from_their_tables() {
        let p = parse(json!({"probe": "prometheus", "prometheus": {
            "url": "http://prom:9090", "pvc": "data-0", "namespace": "db", "user": "u", "password_env": "PW",
            "timeout": 3, "settle_bound": 60, "settle_interval": 0.5, "settle_polls": 4}}))
        .unwrap();
        let ProbeKind::Prometheus(p) = &p else { panic!("{p:?}") };
        assert_eq!(p.target, PromTarget::Pvc { pvc: "data-0".into(), namespace: "db".into() });
        assert_eq!(p.settle, Settle { bound_secs: 60.0, interval_secs: 0.5, polls: 4 });
        assert!(p.target.promql().contains("persistentvolumeclaim=\"data-0\",namespace=\"db\""));
        let s = parse(json!({"probe": "scrape", "scrape": {
            "url": "http://minio:9000/minio/v2/metrics/bucket", "metric": "minio_bucket_usage_total_bytes",
            "labels": {"bucket": "dedup-lab-c*"}, "token_env": "TOKEN"}}))
        .unwrap();
        assert_eq!(s.secret_env_names(), ["TOKEN"]);
        assert_eq!(parse(json!({})).unwrap(), ProbeKind::Auto);
        // run.json keeps the old spelling of the local probes.
        assert_eq!(serde_json::to_value(ProbeKind::Fs).unwrap(), json!("fs"));
        let back: ProbeKind = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn bad_probe_settings_name_the_key_and_the_fix() {
        for (v, want) in [
            (json!({"probe": "prom"}), "probe = \"prom\" is not a size probe; valid probes: auto, fs"),
            (json!({"probe": "prometheus"}), "needs a table [systems.files.prometheus]"),
            (json!({"prometheus": {"url": "http://p"}}), "[systems.files.prometheus] is set, but probe = \"auto\""),
            (json!({"probe": "prometheus", "prometheus": {"query": "x"}}), "needs `url`"),
            (json!({"probe": "prometheus", "prometheus": {"url": "prom:9090", "query": "x"}}), "is not a URL"),
            (json!({"probe": "prometheus", "prometheus": {"url": "http://p"}}), "needs `query` (PromQL"),
            (json!({"probe": "prometheus", "prometheus": {"url": "http://p", "pvc": "a"}}), "needs `query`"),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "pvc": "a", "namespace": "b"}}),
                "give one",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "pvc": "A_b", "namespace": "b"}}),
                "pvc = \"A_b\" is not a Kubernetes name",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "token": "s3cret"}}),
                "secrets never go in the config file",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "querry": "y"}}),
                "unknown key `querry`",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "user": "u"}}),
                "needs both `user` and `password_env`",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "token_env": "T", "user": "u", "password_env": "P"}}),
                "bearer token and basic",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "settle_bound": -1}}),
                "settle_bound = -1: expected seconds above 0",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "settle_polls": 0}}),
                "settle_polls = 0",
            ),
            (
                json!({"probe": "prometheus", "prometheus": {"url": "http://p", "query": "x", "sslrootcert": "/ca.pem"}}),
                "is not https://",
            ),
            (json!({"probe": "scrape", "scrape": {"url": "http://e/metrics"}}), "needs `metric`"),
            (
                json!({"probe": "scrape", "scrape": {"url": "http://e/metrics", "metric": "a-b"}}),
                "expected a metric name",
            ),
            (
                json!({"probe": "scrape", "scrape": {"url": "http://e/metrics", "metric": "m", "labels": {"a": 1}}}),
                "labels.a = 1",
            ),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
    }
}
