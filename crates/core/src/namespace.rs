//! The lab namespace: the only place dedup-lab may create, write or drop anything.
//!
//! Every table, directory, key prefix, topic or bucket a backend touches is derived from a
//! [`Namespace`], and a namespace can only be built from a validated [`LabName`], so the
//! tool has no way to name anything outside its lab.

use crate::error::{BackendError, ErrorClass, ParseError};
use crate::record::RecordId;
use crate::value::Schema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The lab prefix, e.g. `dedup_lab`: lower-case ASCII letters, digits and `_`, starting with
/// `dedup`, at most 40 characters. Backends derive their own spelling from it
/// (schema `dedup_lab`, key prefix `dedup:`, topic prefix `dedup-lab-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabName(String);

impl LabName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `_` replaced by `-` (for topics and buckets, which do not allow `_`).
    pub fn dashed(&self) -> String {
        self.0.replace('_', "-")
    }
}

impl Default for LabName {
    fn default() -> Self {
        LabName("dedup_lab".to_string())
    }
}

impl FromStr for LabName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.starts_with("dedup")
            && s.len() <= 40
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(LabName(s.to_string()))
        } else {
            Err(ParseError::new(
                "lab namespace",
                s,
                "it must start with `dedup`, use only a-z, 0-9 and `_`, and have at most 40 characters",
            ))
        }
    }
}

impl TryFrom<String> for LabName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LabName> for String {
    fn from(l: LabName) -> String {
        l.0
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lab namespace with its containers (tables, buckets, topics, key groups).
///
/// Placement `within` uses one container, `across` two. In native insertion mode the
/// namespace carries the [`Schema`] of the records: a backend with typed storage creates
/// typed containers from it in `reset`; a backend without ignores it and stores each
/// record's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    lab: LabName,
    containers: u8,
    schema: Option<Schema>,
}

impl Namespace {
    pub fn new(lab: &LabName, containers: u8) -> Namespace {
        Namespace { lab: lab.clone(), containers: containers.max(1), schema: None }
    }

    /// The same namespace for typed records of `schema` (native insertion mode).
    pub fn with_schema(mut self, schema: Schema) -> Namespace {
        self.schema = Some(schema);
        self
    }

    /// The schema of the records, in native insertion mode.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    pub fn lab(&self) -> &LabName {
        &self.lab
    }

    pub fn container_count(&self) -> u8 {
        self.containers
    }

    /// Container names `c0`, `c1`, …: backends qualify them with the lab name.
    pub fn containers(&self) -> impl Iterator<Item = (u8, String)> + '_ {
        (0..self.containers).map(|i| (i, format!("c{i}")))
    }

    /// The name of container `index`, which must be one of [`containers`](Self::containers).
    pub fn container_name(&self, index: u8) -> String {
        debug_assert!(index < self.containers, "container {index} outside namespace");
        format!("c{index}")
    }

    /// The index of the container record `id` belongs to; an error when the namespace has
    /// no such container (never an index panic in a backend).
    pub fn container_of(&self, id: &RecordId) -> Result<usize, BackendError> {
        if id.container < self.containers {
            Ok(usize::from(id.container))
        } else {
            Err(BackendError::msg(format!(
                "record {} names container {}, but namespace {} has {} container(s)",
                id.key, id.container, self.lab, self.containers
            ))
            .classed(ErrorClass::BadRequest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_confined() {
        assert!("dedup_lab".parse::<LabName>().is_ok());
        assert!("dedup_lab2".parse::<LabName>().is_ok());
        for bad in ["public", "dedup-lab", "dedup_lab; DROP SCHEMA public", "Dedup", "", "dedup.x"] {
            assert!(bad.parse::<LabName>().is_err(), "{bad}");
        }
        assert_eq!("dedup_lab".parse::<LabName>().unwrap().dashed(), "dedup-lab");
    }

    #[test]
    fn a_record_outside_the_namespace_is_an_error() {
        let ns = Namespace::new(&LabName::default(), 2);
        let id = |c| RecordId { key: "r00000001".into(), container: c };
        assert_eq!(ns.container_of(&id(1)).unwrap(), 1);
        let e = ns.container_of(&id(2)).unwrap_err();
        assert!(e.to_string().contains("names container 2, but namespace dedup_lab has 2"), "{e}");
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
    }
}
