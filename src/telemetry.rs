//! `[trace]`: validates the telemetry settings into [`TelemetryOptions`] before anything
//! connects, and provides the Kafka topics the runner's sinks write to.

use anyhow::{Result, bail};
use dedup_lab_core::LabName;
use dedup_lab_runner::telemetry::{EVENTS_TOPIC, KafkaTopics, METRICS_TOPIC, TelemetryOptions};
use std::time::Duration;

/// The environment-variable prefix of `[trace.kafka]` (e.g. `DEDUP_TRACE_KAFKA_PASSWORD`).
pub const KAFKA_ENV_PREFIX: &str = "DEDUP_TRACE_KAFKA";

/// `"100ms"`, `"1s"`, `"2.5s"`, `"1m"`.
fn duration(key: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len()));
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>() {
        Ok(n) if scale.is_finite() && n > 0.0 && n * scale >= 0.01 && n * scale <= 3600.0 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => bail!(
            "config [trace] {key} = {text:?}: expected a duration from 10ms to 1h such as \"100ms\", \"1s\" or \"1m\""
        ),
    }
}

/// The validated `[trace]` and `[pushgateway]` sections.
pub fn options(cfg: &crate::config::RawConfig, lab: &LabName) -> Result<TelemetryOptions> {
    let raw = &cfg.trace;
    let mut o = TelemetryOptions::default();
    match raw.interval.as_deref().map(str::trim) {
        Some("off") => o.interval = None,
        Some(t) => o.interval = Some(duration("interval", t)?),
        None => {}
    }
    if let Some(t) = &raw.probe_interval {
        o.probe_interval = duration("probe_interval", t)?;
    }
    if let Some(table) = &raw.kafka {
        o.kafka = Some(kafka_topics(table, lab)?);
    }
    if let Some(table) = &cfg.pushgateway {
        o.push = Some(pushgateway(table)?);
    }
    Ok(o)
}

/// `[pushgateway]`: where each stage's figures are pushed. The credentials are read here
/// (a variable that is not set is an error before the run starts); nothing connects.
pub fn pushgateway(table: &toml::Table) -> Result<Box<dyn dedup_lab_runner::telemetry::sink::TopicSink>> {
    use dedup_lab_runner::prom::PushTarget;
    let at = "config [pushgateway]";
    const KEYS: &[&str] =
        &["url", "job", "timeout", "token_env", "token_file", "user", "password_env", "password_file"];
    for key in table.keys() {
        if key == "token" || key == "password" {
            bail!(
                "{at} has `{key}`: secrets never go in the config file; name a variable with `{key}_env`, or a file with `{key}_file`"
            );
        }
        if !KEYS.contains(&key.as_str()) {
            bail!("{at} has an unknown key `{key}`; valid keys: {}", KEYS.join(", "));
        }
    }
    let json = serde_json::to_value(table)?;
    let t = json.as_object().expect("a table is an object");
    let url = t
        .get("url")
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow::anyhow!("{at} needs `url`, e.g. url = \"http://pushgateway:9091\""))?;
    let auth = dedup_lab_runner::probe::auth_spec(at, t).map_err(anyhow::Error::msg)?;
    let mut target = PushTarget::new(url).map_err(|e| anyhow::anyhow!("{at}: {}", e.chain()))?;
    if let Some(job) = t.get("job") {
        let job =
            job.as_str().ok_or_else(|| anyhow::anyhow!("{at} job = {job}: expected a name such as \"dedup_lab\""))?;
        target = target.with_job(job).map_err(|e| anyhow::anyhow!("{at}: {}", e.chain()))?;
    }
    if let Some(v) = t.get("timeout") {
        let secs = v
            .as_f64()
            .filter(|s| *s > 0.0 && *s <= 600.0)
            .ok_or_else(|| anyhow::anyhow!("{at} timeout = {v}: expected seconds above 0 and at most 600, e.g. 10"))?;
        target =
            target.with_timeout(Duration::from_secs_f64(secs)).map_err(|e| anyhow::anyhow!("{at}: {}", e.chain()))?;
    }
    let target = target.with_auth(auth.resolve(at).map_err(|e| anyhow::anyhow!("{}", e.chain()))?);
    Ok(Box::new(dedup_lab_runner::telemetry::push::PushSink(target)))
}

#[cfg(feature = "kafka")]
fn kafka_topics(table: &toml::Table, lab: &LabName) -> Result<KafkaTopics> {
    use dedup_lab_backends::kafka::TopicWriter;
    let entry = dedup_lab_backends::entry(dedup_lab_core::SystemKind::Kafka);
    let accepted = entry.accepted_keys();
    let mut settings = table.clone();
    let mut topic = |key: &str, default: &str| -> Result<String> {
        match settings.remove(key) {
            None => Ok(default.to_string()),
            Some(toml::Value::String(s)) if !s.trim().is_empty() && !s.contains([' ', '/']) => Ok(s),
            Some(v) => bail!("config [trace.kafka] {key} = {v:?}: expected a topic name such as \"{default}\""),
        }
    };
    let metrics = topic("metrics_topic", METRICS_TOPIC)?;
    let events = topic("events_topic", EVENTS_TOPIC)?;
    if metrics == events {
        bail!("config [trace.kafka]: metrics_topic and events_topic are both {metrics:?}; give them two names");
    }
    for key in settings.keys() {
        if entry.secret_keys().any(|s| s == key) {
            bail!(
                "config [trace.kafka] has `{key}`: secrets never go in the config file; set ${KAFKA_ENV_PREFIX}_{}, \
                 or `{key}_env` / `{key}_file`",
                key.to_ascii_uppercase()
            );
        }
        if !accepted.contains(key) || ["variants", "replicas", "probe", "max_bytes"].contains(&key.as_str()) {
            bail!(
                "config [trace.kafka] has an unknown key `{key}`; valid keys: metrics_topic, events_topic and the \
                 connection keys of [systems.kafka] (host, port, bootstrap, user, sasl_mechanism, sslmode, …)"
            );
        }
    }
    let json = serde_json::to_value(&settings)?;
    let cfg = dedup_lab_backends::BackendConfig::new(lab.clone(), "kafka", KAFKA_ENV_PREFIX, json, Default::default());
    let open = |t: &str| -> Result<Box<dyn dedup_lab_runner::telemetry::sink::TopicSink>> {
        let w = TopicWriter::open(&cfg, t).map_err(|e| anyhow::anyhow!("config [trace.kafka]: {}", e.chain()))?;
        Ok(Box::new(KafkaSink(w)))
    };
    Ok(KafkaTopics { metrics: open(&metrics)?, events: open(&events)? })
}

#[cfg(not(feature = "kafka"))]
fn kafka_topics(_: &toml::Table, _: &LabName) -> Result<KafkaTopics> {
    bail!(
        "config [trace.kafka]: this build of dedup-lab has no Kafka client; rebuild with `cargo build --release \
         --features kafka`, or remove [trace.kafka]"
    )
}

#[cfg(feature = "kafka")]
struct KafkaSink(dedup_lab_backends::kafka::TopicWriter);

#[cfg(feature = "kafka")]
impl dedup_lab_runner::telemetry::sink::TopicSink for KafkaSink {
    fn target(&self) -> String {
        self.0.target()
    }

    fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String> {
        self.0.send(lines).map_err(|e| e.chain())
    }

    fn check(&mut self) -> Result<String, String> {
        match self.0.check() {
            Ok(true) => Ok("topic exists".into()),
            Ok(false) => Ok("topic missing: created on the first send".into()),
            Err(e) => Err(e.chain()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_their_errors() {
        assert_eq!(duration("interval", "100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(duration("interval", "2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(duration("interval", "1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "100", "5ms", "2h", "fast", "-1s"] {
            let e = duration("interval", bad).unwrap_err().to_string();
            assert!(e.contains("[trace] interval") && e.contains("\"100ms\""), "{bad}: {e}");
        }
        let lab: LabName = "dedup_lab".parse().unwrap();
        let cfg = crate::config::RawConfig {
            trace: crate::config::RawTrace { interval: Some("off".into()), ..Default::default() },
            ..Default::default()
        };
        let off = options(&cfg, &lab).unwrap();
        assert!(off.interval.is_none());
    }
}
