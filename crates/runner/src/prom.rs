//! Metric clients: where a physical size comes from when the system itself cannot say it, and
//! where a stage's results go for dashboards.
//!
//! - [`PromSource`]: the `prometheus` size probe. A PromQL instant query against a Prometheus
//!   HTTP API (`/api/v1/query`), its answer parsed strictly and **summed over every series**
//!   (a volume has one series per replica or node; the tool we replace took the first). A
//!   built-in template resolves a Kubernetes PVC to its Longhorn volume.
//! - [`ScrapeSource`]: the `scrape` size probe. One metric read straight from an endpoint in
//!   the Prometheus text format, summed over the series whose labels match.
//! - [`settle_steady`] / [`settle_moved`]: remote metrics update periodically, so a reading
//!   polls until the value holds (and, after a stage, first until it has moved), bounded.
//! - [`push_stage`]: one stage's results to a Prometheus Pushgateway, one group per stage.
//!
//! Every failure is an error naming the probe, the query or URL and the cause: an empty
//! answer, a query error, a value that is not a finite number. None of them ever becomes a
//! number in a delta (the tool we replace fed a failed query's −1 into deltas).
//!
//! All HTTP goes through the project's one client ([`dedup_lab_backends::net::http`]):
//! no proxy from the environment, no redirects, timeouts, credentials never in messages.

use crate::{RunError, interrupted};
use dedup_lab_backends::Secret;
use dedup_lab_backends::config::ExposeSecret;
use dedup_lab_backends::net::http::{HttpClient, HttpOptions, Request, redacted_url};
use dedup_lab_backends::net::settings::{NameOverride, PasswordSource, ServerSettings, SslMode, TlsSettings};
use dedup_lab_core::{BackendError, ErrorClass};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The largest answer read: a Prometheus answer or a metrics page (a MinIO bucket page with
/// thousands of buckets is a few MiB).
const MAX_ANSWER: u64 = 64 << 20;

// ----- settings (validated in the plan, stored in run.json; never a secret) -----

/// Where a remote probe's credentials come from: the names of environment variables or
/// files, never the secrets themselves (they are read when the probe is built).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSpec {
    /// Bearer token: the variable holding it, or a file holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Basic authentication: the user, and where its password is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl AuthSpec {
    /// The environment variables named here (they hold secrets: a cold command never sees them).
    pub fn secret_env_names(&self) -> Vec<String> {
        self.token_env.iter().chain(self.password_env.iter()).cloned().collect()
    }

    /// Reads the secret. `what` names the settings table in messages (`[systems.files.prometheus]`).
    pub fn resolve(&self, what: &str) -> Result<Auth, RunError> {
        let read = |env: &Option<String>, file: &Option<PathBuf>, key: &str| -> Result<Option<Secret>, RunError> {
            if let Some(var) = env {
                return match std::env::var(var) {
                    Ok(v) if !v.is_empty() => Ok(Some(Secret::from(v))),
                    _ => Err(RunError::Invalid(format!(
                        "{what} {key}_env = {var:?}: the variable is not set (or empty); export it, or use {key}_file"
                    ))),
                };
            }
            if let Some(path) = file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    RunError::Invalid(format!("{what} {key}_file = {:?}: cannot read it: {e}", path.display()))
                })?;
                let text = text.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    return Err(RunError::Invalid(format!("{what} {key}_file = {:?} is empty", path.display())));
                }
                return Ok(Some(Secret::from(text.to_string())));
            }
            Ok(None)
        };
        if let Some(token) = read(&self.token_env, &self.token_file, "token")? {
            return Ok(Auth::bearer(&token));
        }
        match (&self.user, read(&self.password_env, &self.password_file, "password")?) {
            (Some(user), Some(password)) => Ok(Auth::basic(user, password)),
            (Some(user), None) => Ok(Auth::basic(user, Secret::from(String::new()))),
            (None, _) => Ok(Auth::None),
        }
    }
}

/// How long a remote reading polls. All in seconds (fractions allowed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settle {
    /// The most a reading waits before it takes the last value (and says so in a note).
    pub bound_secs: f64,
    /// Between two polls; at least the metric's update period is meaningful.
    pub interval_secs: f64,
    /// Consecutive polls that must read the same value.
    pub polls: u32,
}

impl Default for Settle {
    fn default() -> Settle {
        Settle { bound_secs: 300.0, interval_secs: 5.0, polls: 3 }
    }
}

impl Settle {
    fn bound(&self) -> Duration {
        Duration::from_secs_f64(self.bound_secs)
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_secs)
    }
}

/// What a `prometheus` probe asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromTarget {
    /// A PromQL expression, summed over every series it gives.
    Query(String),
    /// A Kubernetes PVC, resolved to its Longhorn volume (see [`PromTarget::promql`]).
    Pvc { pvc: String, namespace: String },
}

impl PromTarget {
    /// The PromQL sent. The PVC template keeps every `longhorn_volume_actual_size_bytes`
    /// series whose `volume` is the PV that kube-state-metrics names as bound to the PVC
    /// (`volumename`; Longhorn names a volume after its PV), one per replica or node.
    pub fn promql(&self) -> String {
        match self {
            PromTarget::Query(q) => q.clone(),
            PromTarget::Pvc { pvc, namespace } => format!(
                "longhorn_volume_actual_size_bytes and on(volume) label_replace({}, \"volume\", \"$1\", \"volumename\", \"(.+)\")",
                pvc_info(pvc, namespace)
            ),
        }
    }

    /// What the method label says was read.
    fn label(&self) -> String {
        match self {
            PromTarget::Query(q) => q.clone(),
            PromTarget::Pvc { pvc, namespace } => format!("pvc {namespace}/{pvc}"),
        }
    }
}

fn pvc_info(pvc: &str, namespace: &str) -> String {
    format!(
        "kube_persistentvolumeclaim_info{{persistentvolumeclaim=\"{}\",namespace=\"{}\"}}",
        promql_string(pvc),
        promql_string(namespace)
    )
}

/// A PromQL string literal's content: backslashes and quotes escaped.
fn promql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The settings of a `prometheus` probe (`[systems.<name>.prometheus]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromProbe {
    /// The Prometheus server's base URL (`http://prometheus:9090`, or with a path prefix).
    pub url: String,
    pub target: PromTarget,
    #[serde(default)]
    pub auth: AuthSpec,
    /// Every request, from connecting to the last byte.
    pub timeout_secs: f64,
    #[serde(default)]
    pub settle: Settle,
    /// A CA file: with it an `https://` URL is verified against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
}

/// The settings of a `scrape` probe (`[systems.<name>.scrape]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeProbe {
    /// The metrics endpoint (`http://minio:9000/minio/v2/metrics/bucket`).
    pub url: String,
    pub metric: String,
    /// Label filters, all of which a series must match: an exact value, or a pattern where
    /// `*` stands for any run of characters. An absent label has the value `""`.
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    #[serde(default)]
    pub auth: AuthSpec,
    pub timeout_secs: f64,
    #[serde(default)]
    pub settle: Settle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
}

impl ScrapeProbe {
    /// `metric{label="value",…}` as the method label shows it.
    pub fn selector(&self) -> String {
        if self.labels.is_empty() {
            return self.metric.clone();
        }
        let l: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", promql_string(v))).collect();
        format!("{}{{{}}}", self.metric, l.join(","))
    }
}

// ----- authentication and the HTTP client -----

/// How requests authenticate. `Debug` shows no secret.
#[derive(Debug)]
pub enum Auth {
    None,
    /// The whole `Authorization` header value (`Bearer …`).
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
}

impl Auth {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &Secret) -> Auth {
        Auth::Bearer(Secret::from(format!("Bearer {}", token.expose_secret())))
    }

    /// `Authorization: Basic …` for `user` and `password`.
    pub fn basic(user: &str, password: Secret) -> Auth {
        Auth::Basic { user: user.to_string(), password }
    }

    fn apply<'a>(&self, req: Request<'a>) -> Request<'a> {
        match self {
            Auth::None => req,
            Auth::Bearer(header) => req.secret_header("authorization", header),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
        }
    }
}

/// Checks a base URL: `http://` or `https://` and a host. `what` names the setting.
pub fn check_url(what: &str, url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(format!("{what} = {url:?} is not a URL; expected http://host:port or https://host:port")),
    }
}

/// One HTTP client for one endpoint: `timeout` for every request (and at most 10 s of it for
/// connecting); TLS for `https://`, verified against `ca` when given.
fn client(system: &str, url: &str, timeout: Duration, ca: Option<&PathBuf>) -> Result<HttpClient, RunError> {
    let mut opts = HttpOptions::new(system, timeout.min(Duration::from_secs(10)));
    opts.timeout = Some(timeout);
    if url.starts_with("https://") {
        // The shared TLS configuration is built from server settings: only its TLS part matters.
        let settings = ServerSettings {
            system: "metrics",
            host: String::new(),
            port: 0,
            user: String::new(),
            database: String::new(),
            password: None,
            password_source: PasswordSource::Env(String::new()),
            connect_timeout: timeout,
            statement_timeout: Some(timeout),
            tls: TlsSettings {
                mode: if ca.is_some() { SslMode::VerifyFull } else { SslMode::Require },
                ca_file: ca.cloned(),
                server_name: None,
            },
            name_override: NameOverride::ServerName,
            env_prefix: String::new(),
        };
        opts.tls = Some(dedup_lab_backends::net::tls::client_config(&settings)?);
    }
    Ok(HttpClient::new(opts)?)
}

// ----- the prometheus probe -----

/// A `prometheus` probe bound to its server, credentials read.
pub struct PromSource {
    http: HttpClient,
    /// `<url>/api/v1/query`.
    endpoint: String,
    target: PromTarget,
    auth: Auth,
    /// `prometheus probe of files`, the start of every message.
    what: String,
}

impl PromSource {
    /// Reads the credentials (a variable that is not set is an error here, before any stage).
    pub fn new(system: &str, p: &PromProbe) -> Result<PromSource, RunError> {
        let auth = p.auth.resolve(&format!("config [systems.{system}.prometheus]"))?;
        Ok(PromSource {
            http: client("prometheus", &p.url, Duration::from_secs_f64(p.timeout_secs), p.sslrootcert.as_ref())?,
            endpoint: format!("{}/api/v1/query", p.url.trim_end_matches('/')),
            target: p.target.clone(),
            auth,
            what: format!("prometheus probe of {system}"),
        })
    }

    /// The PromQL this probe sends.
    pub fn query(&self) -> String {
        self.target.promql()
    }

    /// The method label: `prometheus:<query>` or `prometheus:pvc <namespace>/<name>`.
    pub fn method(&self) -> String {
        format!("prometheus:{}", self.target.label())
    }

    /// One reading: the query's value summed over every series, in bytes.
    pub fn read(&self) -> Result<u64, RunError> {
        self.try_read()?
    }

    /// One reading, or `Ok(Err(why))` when the answer has no series (a namespace just
    /// created may not be in the metrics yet): `why` is the error to give if it stays so.
    pub fn try_read(&self) -> Result<Result<u64, RunError>, RunError> {
        let query = self.query();
        let fail = |why: String| {
            RunError::Backend(
                BackendError::msg(format!("{}: query `{query}` at {}: {why}", self.what, redacted_url(&self.endpoint)))
                    .classed(ErrorClass::BadRequest),
            )
        };
        let answer = self.instant(&query).map_err(|e| match e {
            Failure::Http(e) => {
                RunError::Backend(BackendError::with_source(format!("{}: query `{query}`", self.what), e))
            }
            Failure::Answer(why) => fail(why),
        })?;
        if answer.series.is_empty() {
            return Ok(Err(fail(self.why_empty())));
        }
        to_bytes(&answer).map(Ok).map_err(fail)
    }

    /// Asks an instant query; the answer's series and values, strictly checked.
    fn instant(&self, query: &str) -> Result<Answer, Failure> {
        let url = format!("{}?query={}", self.endpoint, percent_encode(query));
        // Prometheus answers a refused query with a JSON error body under these statuses:
        // read it, rather than a generic HTTP error.
        let req = self.http.get(&url).accept(400).accept(422).accept(500).accept(503);
        let resp = self.auth.apply(req).call().map_err(Failure::Http)?;
        let status = resp.status();
        let body = resp.text(MAX_ANSWER).map_err(Failure::Http)?;
        parse_answer(status, &body).map_err(Failure::Answer)
    }

    /// Why the query matched nothing, as precisely as the server can tell.
    fn why_empty(&self) -> String {
        let PromTarget::Pvc { pvc, namespace } = &self.target else {
            return "no series: the query matched nothing (check the metric name and label values; a metric \
                    Prometheus has not scraped yet gives nothing too)"
                .into();
        };
        let info = pvc_info(pvc, namespace);
        match self.instant(&info) {
            Ok(a) if a.series.is_empty() => format!(
                "no series: PVC {namespace}/{pvc} is not in kube_persistentvolumeclaim_info (is kube-state-metrics \
                 scraped? are `pvc` and `namespace` right?)"
            ),
            Ok(a) => {
                let volumes: Vec<&str> =
                    a.series.iter().filter_map(|s| s.labels.get("volumename")).map(String::as_str).collect();
                match volumes.iter().find(|v| !v.is_empty()) {
                    None => format!("no series: PVC {namespace}/{pvc} is not bound to a volume yet (no `volumename`)"),
                    Some(v) => format!(
                        "no series: PVC {namespace}/{pvc} is bound to volume {v}, but longhorn_volume_actual_size_bytes \
                         has no series with volume=\"{v}\" (is Longhorn's metrics endpoint scraped?)"
                    ),
                }
            }
            Err(_) => "no series: the PVC template matched nothing".into(),
        }
    }
}

enum Failure {
    /// The request failed (connect, timeout, authentication, a status that is no answer).
    Http(BackendError),
    /// The server answered, but not with a usable value.
    Answer(String),
}

/// One series of an answer: its labels and value.
#[derive(Debug)]
struct Series {
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Answer {
    series: Vec<Series>,
}

/// Parses a `/api/v1/query` answer: `status` must be `success`, the result an instant vector
/// (or a scalar), every value a finite number. Errors are sentences for the message.
fn parse_answer(status: u16, body: &str) -> Result<Answer, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        format!("HTTP {status}, and the answer is not JSON, so not a Prometheus API: {}", excerpt(body))
    })?;
    match v.get("status").and_then(|s| s.as_str()) {
        Some("success") => {}
        Some("error") => {
            let kind = v.get("errorType").and_then(|s| s.as_str()).unwrap_or("error");
            let msg = v.get("error").and_then(|s| s.as_str()).unwrap_or("(no message)");
            return Err(format!("Prometheus refused it ({kind}, HTTP {status}): {msg}"));
        }
        _ => {
            return Err(format!(
                "HTTP {status}, and the answer has no `status`: not a Prometheus API: {}",
                excerpt(body)
            ));
        }
    }
    let data = v.get("data").ok_or("the answer has no `data`")?;
    let result = data.get("result").ok_or("the answer has no `data.result`")?;
    let kind = data.get("resultType").and_then(|s| s.as_str()).ok_or("the answer has no `data.resultType`")?;
    let series = match kind {
        "vector" => {
            let items = result.as_array().ok_or("`data.result` of a vector is not a list")?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let labels: std::collections::BTreeMap<String, String> = item
                    .get("metric")
                    .and_then(|m| m.as_object())
                    .ok_or("a series has no `metric`")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let value = sample_value(item.get("value"), &labels)?;
                out.push(Series { labels, value });
            }
            out
        }
        "scalar" => {
            let labels = Default::default();
            let value = sample_value(Some(result), &labels)?;
            vec![Series { labels, value }]
        }
        "matrix" => {
            return Err(
                "it gives a range vector (matrix); a size probe needs an instant vector: drop the `[…]` range".into()
            );
        }
        other => return Err(format!("it gives a {other}; a size probe needs an instant vector of numbers")),
    };
    Ok(Answer { series })
}

/// `[<time>, "<value>"]` → the value, which must be a finite number.
fn sample_value(
    v: Option<&serde_json::Value>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<f64, String> {
    let text = v
        .and_then(|v| v.as_array())
        .filter(|a| a.len() == 2)
        .and_then(|a| a[1].as_str())
        .ok_or_else(|| format!("the series {} has no [time, \"value\"] pair", series_name(labels)))?;
    finite(text).map_err(|why| format!("the series {} {why}", series_name(labels)))
}

/// A sample value as text: a finite number, or why not.
fn finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("has the value {text}, not a finite number of bytes")),
        Err(_) => Err(format!("has the value {text:?}, which is not a number")),
    }
}

fn series_name(labels: &std::collections::BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").map(String::as_str).unwrap_or("");
    let l: Vec<String> = labels.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", l.join(","))
}

/// The sum of every series, as whole bytes (rounded; a negative or too large sum is refused).
fn to_bytes(answer: &Answer) -> Result<u64, String> {
    let sum: f64 = answer.series.iter().map(|s| s.value).sum();
    if sum < 0.0 {
        return Err(format!("the sum over {} series is {sum}, a negative size", answer.series.len()));
    }
    if sum >= u64::MAX as f64 {
        return Err(format!("the sum over {} series is {sum}, larger than any size", answer.series.len()));
    }
    Ok(sum.round() as u64)
}

fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{} …", &one_line[..i]),
        None => one_line,
    }
}

/// Percent-encoding of a query-string value: everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ----- the scrape probe -----

/// A `scrape` probe bound to its endpoint, credentials read.
pub struct ScrapeSource {
    http: HttpClient,
    probe: ScrapeProbe,
    auth: Auth,
    what: String,
}

impl ScrapeSource {
    pub fn new(system: &str, p: &ScrapeProbe) -> Result<ScrapeSource, RunError> {
        let auth = p.auth.resolve(&format!("config [systems.{system}.scrape]"))?;
        Ok(ScrapeSource {
            http: client("scrape", &p.url, Duration::from_secs_f64(p.timeout_secs), p.sslrootcert.as_ref())?,
            probe: p.clone(),
            auth,
            what: format!("scrape probe of {system}"),
        })
    }

    /// The method label: `scrape:<metric>{<labels>}`.
    pub fn method(&self) -> String {
        format!("scrape:{}", self.probe.selector())
    }

    /// One reading: the metric summed over the matching series, in bytes.
    pub fn read(&self) -> Result<u64, RunError> {
        self.try_read()?
    }

    /// One reading, or `Ok(Err(why))` when no series matches (yet): as [`PromSource::try_read`].
    pub fn try_read(&self) -> Result<Result<u64, RunError>, RunError> {
        let url = &self.probe.url;
        let selector = self.probe.selector();
        // The text format, not protobuf or OpenMetrics, whatever the endpoint prefers.
        let req = self.http.get(url).header("accept", "text/plain; version=0.0.4");
        let text = self.auth.apply(req).call().and_then(|r| r.text(MAX_ANSWER)).map_err(|e| {
            RunError::Backend(BackendError::with_source(format!("{}: reading {selector}", self.what), e))
        })?;
        let fail = |why: String| {
            RunError::Backend(
                BackendError::msg(format!("{}: {selector} at {}: {why}", self.what, redacted_url(url)))
                    .classed(ErrorClass::BadRequest),
            )
        };
        let found = sum_exposition(&text, &self.probe.metric, &self.probe.labels).map_err(fail)?;
        if found.matched == 0 {
            return Ok(Err(fail(if found.of_metric == 0 {
                format!("no series: the endpoint has no metric {} at all (check `metric` and `url`)", self.probe.metric)
            } else {
                format!(
                    "no series: none of the endpoint's {} series of {} matches the labels (check `labels`)",
                    found.of_metric, self.probe.metric
                )
            })));
        }
        to_bytes(&Answer { series: vec![Series { labels: Default::default(), value: found.sum }] })
            .map(Ok)
            .map_err(|_| fail(format!("the sum over {} matching series is {}, not a size", found.matched, found.sum)))
    }
}

/// What [`sum_exposition`] found.
#[derive(Debug, PartialEq)]
pub struct Scraped {
    pub sum: f64,
    /// Series of the metric whose labels matched.
    pub matched: usize,
    /// Series of the metric at all.
    pub of_metric: usize,
}

/// Sums `metric` over the series of a Prometheus text exposition whose labels match
/// `filters` (see [`ScrapeProbe::labels`]). Lines of other metrics are skipped unread; a line
/// of this metric that is malformed, or a matching value that is not a finite number, is an
/// error naming the line.
pub fn sum_exposition(text: &str, metric: &str, filters: &[(String, String)]) -> Result<Scraped, String> {
    let mut out = Scraped { sum: 0.0, matched: 0, of_metric: 0 };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_len = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
        if &line[..name_len] != metric {
            continue;
        }
        let at = |why: &str| format!("line {} ({}): {why}", n + 1, excerpt(line));
        let (labels, rest) = parse_labels(line[name_len..].trim_start()).map_err(|why| at(&why))?;
        out.of_metric += 1;
        let value = rest.split_whitespace().next().ok_or_else(|| at("no value"))?;
        let matches = filters.iter().all(|(k, pattern)| {
            let v = labels.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str()).unwrap_or("");
            glob(pattern, v)
        });
        if matches {
            out.sum += finite(value).map_err(|why| at(&format!("the series {why}")))?;
            out.matched += 1;
        }
    }
    Ok(out)
}

/// A series' labels, `(name, value)` in the order given.
type Labels = Vec<(String, String)>;

/// `{a="x",b="y"} rest` → the labels and the rest; no `{` → no labels.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let Some(mut rest) = s.strip_prefix('{') else { return Ok((Vec::new(), s)) };
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if name_len == 0 {
            return Err("a label name was expected".into());
        }
        let name = rest[..name_len].to_string();
        rest = rest[name_len..].trim_start();
        rest = rest.strip_prefix('=').ok_or_else(|| format!("label {name}: `=` was expected"))?.trim_start();
        rest = rest.strip_prefix('"').ok_or_else(|| format!("label {name}: a quoted value was expected"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {name}: the value has no closing quote")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {name}: the value has no closing quote")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        rest = &rest[end + 1..];
        labels.push((name, value));
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last) {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

// ----- settling -----

/// A reading and what the probe wants said about it in the stage's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub bytes: u64,
    pub note: Option<String>,
}

/// Polls `read` until `polls` consecutive readings agree, or `bound` runs out (then the last
/// reading, with a note saying so). For a reading before a stage.
pub fn settle_steady(s: &Settle, read: impl FnMut() -> Result<u64, RunError>) -> Result<Reading, RunError> {
    settle(s, None, read)
}

/// After a stage: polls `read` until the value has moved away from `before` and then held for
/// `polls` consecutive readings, or `bound` runs out (then the last reading, with a note
/// saying which of the two did not happen). A remote metric lags behind the system: without
/// waiting for the move the first poll would often still show the old size.
pub fn settle_moved(s: &Settle, before: u64, read: impl FnMut() -> Result<u64, RunError>) -> Result<Reading, RunError> {
    settle(s, Some(before), read)
}

/// As [`settle_steady`] (`before` = `None`) or [`settle_moved`], for a metric whose series
/// may not exist yet (an exporter publishes a namespace created a moment ago on its next
/// round): an answer without series is polled again until the series appear, within
/// `settle_bound`; one that stays empty is the error `read` gave for it, never a number.
pub fn settle_series(
    s: &Settle,
    before: Option<u64>,
    mut read: impl FnMut() -> Result<Result<u64, RunError>, RunError>,
) -> Result<Reading, RunError> {
    let started = Instant::now();
    let first = loop {
        match read()? {
            Ok(v) => break v,
            Err(empty) if started.elapsed() + s.interval() > s.bound() => return Err(empty),
            Err(_) => {
                std::thread::sleep(s.interval());
                if interrupted() {
                    return Err(RunError::Interrupted);
                }
            }
        }
    };
    let waited = started.elapsed().as_secs_f64();
    let rest = Settle { bound_secs: (s.bound_secs - waited).max(s.interval_secs), ..*s };
    let mut first = Some(first);
    let mut r = settle(&rest, before, || match first.take() {
        Some(v) => Ok(v),
        None => read().and_then(|r| r),
    })?;
    if waited >= s.interval_secs {
        let wait = format!("waited {waited:.1} s for the metric's series to appear");
        r.note = Some(match r.note {
            Some(n) => format!("{wait}; {n}"),
            None => wait,
        });
    }
    Ok(r)
}

fn settle(
    s: &Settle,
    before: Option<u64>,
    mut read: impl FnMut() -> Result<u64, RunError>,
) -> Result<Reading, RunError> {
    let started = Instant::now();
    let mut moved = before.is_none();
    let (mut last, mut same) = (None, 0u32);
    loop {
        let v = read()?;
        moved |= Some(v) != before;
        same = if Some(v) == last { same + 1 } else { 1 };
        last = Some(v);
        if moved && same >= s.polls.max(1) {
            let note = before.map(|b| {
                format!(
                    "probe settled after {:.1} s: moved from {b} B to {v} B, then {} equal polls {} s apart",
                    started.elapsed().as_secs_f64(),
                    s.polls,
                    s.interval_secs
                )
            });
            return Ok(Reading { bytes: v, note });
        }
        if started.elapsed() + s.interval() > s.bound() {
            let why = match before {
                Some(b) if !moved => {
                    format!(
                        "the value stayed at {b} B (the stage changed nothing the metric shows, or it had not updated yet)"
                    )
                }
                _ => format!("the value had not held for {} polls", s.polls),
            };
            return Ok(Reading {
                bytes: v,
                note: Some(format!(
                    "probe not settled: {why} when settle_bound ({} s) ran out; took the last reading, {v} B",
                    s.bound_secs
                )),
            });
        }
        std::thread::sleep(s.interval());
        if interrupted() {
            return Err(RunError::Interrupted);
        }
    }
}

// ----- the pushgateway -----

/// A Prometheus Pushgateway to push stage results to.
pub struct PushTarget {
    http: HttpClient,
    url: String,
    job: String,
    auth: Auth,
}

impl PushTarget {
    /// The gateway at `url` (`http://pushgateway:9091`), job `dedup_lab`, no authentication,
    /// 10 s per push.
    pub fn new(url: &str) -> Result<PushTarget, RunError> {
        check_url("pushgateway url", url).map_err(RunError::Invalid)?;
        Ok(PushTarget {
            http: client("pushgateway", url, Duration::from_secs(10), None)?,
            url: url.trim_end_matches('/').to_string(),
            job: "dedup_lab".into(),
            auth: Auth::None,
        })
    }

    /// The `job` label of every group (default `dedup_lab`).
    pub fn with_job(mut self, job: &str) -> Result<PushTarget, RunError> {
        if job.is_empty() {
            return Err(RunError::Invalid("pushgateway job: the name is empty; give e.g. \"dedup_lab\"".into()));
        }
        self.job = job.to_string();
        Ok(self)
    }

    pub fn with_auth(mut self, auth: Auth) -> PushTarget {
        self.auth = auth;
        self
    }

    /// A different limit per push (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<PushTarget, RunError> {
        self.http = client("pushgateway", &self.url, timeout, None)?;
        Ok(self)
    }

    /// The gateway's address (no credentials), for messages.
    pub fn url(&self) -> String {
        redacted_url(&self.url)
    }

    /// Reaches the gateway with the credentials without pushing (`GET /api/v1/status`), for
    /// `preflight`.
    pub fn check(&self) -> Result<(), RunError> {
        let req = self.http.get(&format!("{}/api/v1/status", self.url));
        self.auth.apply(req).call()?;
        Ok(())
    }

    /// `<url>/metrics/job/<job>/<label>/<value>/…`: the group of these labels. Values that
    /// are not plain (a `/`, `=`, `,`, space, empty) go base64url-encoded (`<label>@base64`).
    fn group_url(&self, labels: &[(&str, &str)]) -> String {
        let mut url = format!("{}/metrics/{}", self.url, path_pair("job", &self.job));
        for (k, v) in labels {
            url.push('/');
            url.push_str(&path_pair(k, v));
        }
        url
    }
}

fn path_pair(name: &str, value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if plain { format!("{name}/{value}") } else { format!("{name}@base64/{}", base64url(value.as_bytes())) }
}

/// Pushes one stage's metrics as one group of the gateway: its grouping key is the job and
/// every label in `labels` (pass the cell's labels and the stage: system, variant, payload,
/// grade, mode, stage, run), so each stage of each cell and run is a group of its own and a
/// later stage never replaces an earlier one. PUT: a repeated push of the same group replaces
/// it whole. Every metric is a gauge carrying the group's labels.
///
/// Refused before anything is sent: a label or metric name Prometheus would not accept, a
/// name given twice, a value that is not a finite number (an undefined EDR is left out by
/// the caller, never pushed as NaN).
pub fn push_stage(target: &PushTarget, labels: &[(&str, &str)], metrics: &[(&str, f64)]) -> Result<(), RunError> {
    let bad = |why: String| RunError::Invalid(format!("pushgateway push: {why}"));
    let mut seen: Vec<&str> = vec!["job"];
    for (k, _) in labels {
        if !is_name(k, false) || k.starts_with("__") {
            return Err(bad(format!(
                "{k:?} is not a label name (letters, digits and _, not starting with a digit or __)"
            )));
        }
        if seen.contains(k) {
            return Err(bad(format!("label {k} is given twice (`job` is the target's)")));
        }
        seen.push(k);
    }
    if metrics.is_empty() {
        return Err(bad("no metric to push".into()));
    }
    let mut body = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, value) in metrics {
        if !is_name(name, true) {
            return Err(bad(format!(
                "{name:?} is not a metric name (letters, digits, _ and :, not starting with a digit)"
            )));
        }
        if names.contains(name) {
            return Err(bad(format!("metric {name} is given twice")));
        }
        if !value.is_finite() {
            return Err(bad(format!("metric {name} = {value}: only finite numbers are pushed")));
        }
        names.push(name);
        body.push_str(&format!("# TYPE {name} gauge\n{name} {value}\n"));
    }
    let url = target.group_url(labels);
    let req = target.http.put(&url).header("content-type", "text/plain; version=0.0.4");
    target.auth.apply(req).send_bytes(body.as_bytes())?;
    Ok(())
}

/// A Prometheus label name (`metric`: a metric name, which may also hold `:`).
fn is_name(s: &str, metric: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
    s.chars().next().is_some_and(|c| !c.is_ascii_digit() && ok(c)) && s.chars().all(ok)
}

/// Base64 with the URL-safe alphabet and padding (what the Pushgateway's `@base64` reads).
fn base64url(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if input.is_empty() {
        // The gateway's spelling of an empty value.
        return "=".into();
    }
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_strictly() {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"volume":"v","node":"a"},"value":[1.5,"100"]},
            {"metric":{"volume":"v","node":"b"},"value":[1.5,"250"]}]}}"#;
        let a = parse_answer(200, ok).unwrap();
        assert_eq!(to_bytes(&a).unwrap(), 350, "the sum over every series, not the first");
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"7"]}}"#;
        assert_eq!(to_bytes(&parse_answer(200, scalar).unwrap()).unwrap(), 7);
        for (body, want) in [
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
                "refused it (bad_data, HTTP 400): parse error",
            ),
            (r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, "range vector"),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"m"},"value":[1,"NaN"]}]}}"#,
                "m{} has the value NaN",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}}"#,
                "+Inf, not a finite",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
                "\"x\", which is not a number",
            ),
            ("<html>proxy</html>", "not JSON"),
        ] {
            let e = parse_answer(400, body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        let neg = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"-5"]}]}}"#;
        assert!(to_bytes(&parse_answer(200, neg).unwrap()).unwrap_err().contains("negative"));
    }

    #[test]
    fn expositions_sum_the_matching_series() {
        let text = "# HELP m bytes\n# TYPE m gauge\nm{bucket=\"dedup-lab-c0\",x=\"a\\\"b\"} 100\n\
                    m{bucket=\"dedup-lab-c1\"} 2.5e2 1700000000000\nm{bucket=\"other\"} 9999\n\
                    m_total{bucket=\"dedup-lab-c0\"} 7\nm 1\n";
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let s = sum_exposition(text, "m", &f("bucket", "dedup-lab-c*")).unwrap();
        assert_eq!(s, Scraped { sum: 350.0, matched: 2, of_metric: 4 });
        assert_eq!(sum_exposition(text, "m", &f("bucket", "")).unwrap().sum, 1.0, "absent means empty");
        assert_eq!(sum_exposition(text, "m", &f("x", "a\"b")).unwrap().sum, 100.0, "escapes");
        assert_eq!(sum_exposition(text, "m", &[]).unwrap().sum, 10350.0);
        let e = sum_exposition("m{a=\"x} 1\n", "m", &[]).unwrap_err();
        assert!(e.contains("line 1") && e.contains("closing quote"), "{e}");
        let e = sum_exposition("m{a=\"x\"} NaN\n", "m", &[]).unwrap_err();
        assert!(e.contains("NaN"), "{e}");
    }

    #[test]
    fn globs_match_runs_of_characters() {
        for (p, v, want) in [
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ] {
            assert_eq!(glob(p, v), want, "{p} ~ {v}");
        }
    }

    #[test]
    fn group_urls_encode_what_is_not_plain() {
        assert_eq!(
            base64url(b"compression=zstd,cleanup=compact-hash"),
            "Y29tcHJlc3Npb249enN0ZCxjbGVhbnVwPWNvbXBhY3QtaGFzaA=="
        );
        assert_eq!(base64url(b"a/b?"), "YS9iPw==");
        assert_eq!(path_pair("stage", "bulk_insert"), "stage/bulk_insert");
        assert_eq!(path_pair("v", ""), "v@base64/=");
        assert_eq!(percent_encode("sum(x{a=\"b\"})"), "sum%28x%7Ba%3D%22b%22%7D%29");
    }

    #[test]
    fn settling_waits_for_a_move_then_for_polls_that_agree() {
        let s = Settle { bound_secs: 5.0, interval_secs: 0.001, polls: 3 };
        let mut values = [10, 10, 20, 30, 30, 30, 99].into_iter();
        let r = settle_moved(&s, 10, || Ok(values.next().unwrap())).unwrap();
        assert_eq!(r.bytes, 30);
        let mut values = [10, 10, 10].into_iter();
        let r = settle_steady(&s, || Ok(values.next().unwrap())).unwrap();
        assert_eq!((r.bytes, r.note), (10, None));
        let bound = Settle { bound_secs: 0.05, interval_secs: 0.01, polls: 3 };
        let r = settle_moved(&bound, 10, || Ok(10)).unwrap();
        assert!(r.note.unwrap().contains("stayed at 10 B"));
        let e = settle_moved(&s, 10, || Err(RunError::Invalid("down".into()))).unwrap_err();
        assert_eq!(e.to_string(), "down", "a failed reading is an error, never a number");
    }
}
