//! Exporters: pure functions from an aggregated [`Report`] to files (bytes with a relative
//! path). Writing them to disk is the caller's job.

pub mod compat;
pub mod csv;
pub mod fmt;
pub mod html;
pub mod json;
pub mod latex;
pub mod markdown;
pub mod svg;

use crate::model::{Group, Report, StageAgg};
use std::fmt as stdfmt;
use std::str::FromStr;

/// One output file: a path relative to the output directory (`/`-separated) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl Artifact {
    pub fn text(path: impl Into<String>, text: String) -> Artifact {
        Artifact { path: path.into(), bytes: text.into_bytes() }
    }
}

/// An export format.
pub trait Exporter {
    fn format(&self) -> Format;
    /// The files of this format, rendered from the report. Deterministic: the same report
    /// gives the same bytes.
    fn export(&self, report: &Report) -> Vec<Artifact>;
}

/// The export formats, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Csv,
    Json,
    Markdown,
    Latex,
    Html,
    /// `experiment_results.csv`, the original harness's columns (one row per stage execution).
    Compat,
}

impl Format {
    pub const ALL: [Format; 6] =
        [Format::Csv, Format::Json, Format::Markdown, Format::Latex, Format::Html, Format::Compat];

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Markdown => "md",
            Format::Latex => "tex",
            Format::Html => "html",
            Format::Compat => "compat",
        }
    }

    pub fn exporter(self) -> &'static dyn Exporter {
        match self {
            Format::Csv => &csv::Csv,
            Format::Json => &json::Json,
            Format::Markdown => &markdown::Markdown,
            Format::Latex => &latex::Latex,
            Format::Html => &html::Html,
            Format::Compat => &compat::Compat,
        }
    }

    /// Parses a comma-separated list (`csv,json,md,tex,html,compat`, `all`, or `none`).
    pub fn parse_list(list: &[String]) -> Result<Vec<Format>, String> {
        let mut out = Vec::new();
        for item in list.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "all" => out.extend(Format::ALL),
                "none" => {}
                other => out.push(other.parse()?),
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl stdfmt::Display for Format {
    fn fmt(&self, f: &mut stdfmt::Formatter<'_>) -> stdfmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "md" | "markdown" => Ok(Format::Markdown),
            "tex" | "latex" => Ok(Format::Latex),
            "html" => Ok(Format::Html),
            "compat" | "experiment_results" => Ok(Format::Compat),
            _ => Err(format!(
                "invalid export format {s:?}: valid formats: csv, json, md, tex, html, compat (or all, none)"
            )),
        }
    }
}

/// Every stage of every group that the system did not support in some valid repetition
/// (not run, in no statistic), in report order: what the exporters list with its reason.
pub fn unsupported_stages(report: &Report) -> Vec<(&Group, &StageAgg)> {
    report.groups.iter().flat_map(|g| g.stages.iter().filter(|s| s.unsupported_runs > 0).map(move |s| (g, s))).collect()
}

/// The word a figure's cell shows for a stage the system does not support.
pub const UNSUPPORTED: &str = "unsupported";

/// Every file of the given formats.
pub fn export(report: &Report, formats: &[Format]) -> Vec<Artifact> {
    formats.iter().flat_map(|f| f.exporter().export(report)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_lists() {
        let l = |s: &str| Format::parse_list(&[s.to_string()]);
        assert_eq!(l("all").unwrap(), Format::ALL.to_vec());
        assert_eq!(l("html, csv,html").unwrap(), vec![Format::Csv, Format::Html]);
        assert_eq!(l("latex,markdown").unwrap(), vec![Format::Markdown, Format::Latex]);
        assert!(l("none").unwrap().is_empty());
        assert_eq!(l("experiment_results,compat").unwrap(), vec![Format::Compat]);
        assert_eq!("compat".parse::<Format>().unwrap().to_string(), "compat");
        let err = l("pdf").unwrap_err();
        assert!(err.contains("valid formats: csv, json, md, tex, html, compat (or all, none)"), "{err}");
    }
}
