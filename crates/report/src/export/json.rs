//! JSON: the whole report, every statistic and every sample.

use super::{Artifact, Exporter, Format};
use crate::model::Report;

pub struct Json;

impl Exporter for Json {
    fn format(&self) -> Format {
        Format::Json
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        let mut bytes = serde_json::to_vec_pretty(report).expect("the report serialises");
        bytes.push(b'\n');
        vec![Artifact { path: "report.json".into(), bytes }]
    }
}
