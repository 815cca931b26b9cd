//! What goes to a Prometheus Pushgateway after each stage: the metric and label names (the
//! Grafana dashboard in `deploy/grafana/` is checked against them) and one stage's values.
//! The sending itself goes through a [`TopicSink`](super::sink::TopicSink) on a thread of
//! its own, with the sinks' backoff, so a gateway that is down never holds up a run.

use crate::prom::{PushTarget, push_stage};
use dedup_lab_core::Measurement;
use serde_json::{Value, json};

/// The gateway as a telemetry sink: each line (a [`stage_line`]) becomes one group.
pub struct PushSink(pub PushTarget);

impl super::sink::TopicSink for PushSink {
    fn target(&self) -> String {
        format!("pushgateway {}", self.0.url())
    }

    fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String> {
        for line in lines {
            let v: Value = serde_json::from_slice(line).map_err(|e| format!("not a stage line: {e}"))?;
            let labels: Vec<(&str, &str)> = v["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect();
            let metrics: Vec<(&str, f64)> = v["metrics"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?)))
                .collect();
            push_stage(&self.0, &labels, &metrics).map_err(|e| e.chain())?;
        }
        Ok(())
    }

    fn check(&mut self) -> Result<String, String> {
        self.0.check().map(|()| "reachable; pushes one group per stage".into()).map_err(|e| e.chain())
    }
}

/// Every metric pushed, with its meaning.
pub const METRICS: &[(&str, &str)] = &[
    ("dedup_edr", "effective dedup ratio of an insert stage (only where defined)"),
    ("dedup_throughput_bps", "payload bytes per second of the stage's timed work"),
    ("dedup_phys_delta_bytes", "physical size after minus before, as the size probe read it"),
    ("dedup_duration_ms", "the stage's timed work in milliseconds"),
];

/// The labels of every pushed series (the Pushgateway adds `job` and `instance`).
pub const LABELS: &[&str] = &["system", "variant", "payload", "grade", "mode", "stage", "run"];

/// One stage as a line for the push sink: `{"labels": {...}, "metrics": {...}}`. An EDR that
/// is undefined (no growth, or not an insert stage) is left out, never pushed as a number;
/// a stage the system does not support pushes nothing (`None`).
pub fn stage_line(run: &str, m: &Measurement) -> Option<Value> {
    if m.unsupported.is_some() {
        return None;
    }
    let labels = json!({
        "system": m.cell.system.to_string(),
        "variant": m.cell.variant,
        "payload": m.cell.payload,
        "grade": m.cell.grade.to_string(),
        "mode": m.cell.mode.to_string(),
        "stage": m.stage.to_string(),
        "run": run,
    });
    let mut metrics = json!({
        "dedup_throughput_bps": m.mb_per_s * 1e6,
        "dedup_phys_delta_bytes": m.physical.delta,
        "dedup_duration_ms": m.duration_ns as f64 / 1e6,
    });
    if let Some(e) = m.edr_replica.filter(|e| e.is_finite()) {
        metrics["dedup_edr"] = json!(e);
    }
    Some(json!({ "labels": labels, "metrics": metrics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_label_and_only_known_metrics() {
        let line = r#"{"type":"stage","cell":{"system":"files","variant":"default","payload":"random_binary","grade":"U50","mode":"blob","placement":"within","cache":"warm","run":1},"stage":"perfile_delete","started_at":"2026-12-01T03:56:42.164Z","rows_sent":2,"rows_reported":2,"rows_counted":0,"logical_bytes":0,"physical":{"method":"fs","before":8192,"after":0,"delta":-8192},"replicas":1,"edr_replica":null,"edr_cluster":null,"edr_note":"x","reclaimed_bytes":8192,"reclaimed_share":1.0,"duration_ns":2000000,"mb_per_s":0.0,"ops_per_s":1000.0,"latency":null,"internal_before":{"total_bytes":null,"details":{}},"internal_after":{"total_bytes":null,"details":{}},"readback_sampled":0,"readback_matched":0,"notes":[],"valid":true,"invalid_reasons":[]}"#;
        let m: Measurement = match serde_json::from_str::<dedup_lab_core::JournalLine>(line).unwrap() {
            dedup_lab_core::JournalLine::Stage(m) => *m,
            _ => unreachable!(),
        };
        let v = stage_line("r1", &m).unwrap();
        let labels: Vec<&str> = v["labels"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = LABELS.to_vec();
        want.sort();
        assert_eq!(labels, want);
        assert_eq!(v["labels"]["stage"], "perfile_delete");
        let metrics = v["metrics"].as_object().unwrap();
        assert!(metrics.keys().all(|k| METRICS.iter().any(|(n, _)| n == k)));
        assert!(!metrics.contains_key("dedup_edr"), "an undefined EDR is not pushed: {v}");
        assert_eq!(metrics["dedup_phys_delta_bytes"], -8192);
        assert_eq!(metrics["dedup_duration_ms"], 2.0);
    }
}
