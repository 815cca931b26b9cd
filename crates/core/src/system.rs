//! The storage systems dedup-lab can measure.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemKind {
    /// Embedded SQLite (no server).
    Sqlite,
    /// Embedded LSM tree (fjall, LZ4) (no server).
    Lsm,
    /// One file per record in a local directory (no server).
    Files,
    Postgresql,
    Cockroachdb,
    Mariadb,
    Clickhouse,
    Redis,
    Kafka,
    S3,
}

impl SystemKind {
    pub const ALL: [SystemKind; 10] = [
        SystemKind::Sqlite,
        SystemKind::Lsm,
        SystemKind::Files,
        SystemKind::Postgresql,
        SystemKind::Cockroachdb,
        SystemKind::Mariadb,
        SystemKind::Clickhouse,
        SystemKind::Redis,
        SystemKind::Kafka,
        SystemKind::S3,
    ];

    /// The embedded default: what `dedup-lab run` measures with no configuration.
    pub const EMBEDDED: [SystemKind; 3] = [SystemKind::Sqlite, SystemKind::Lsm, SystemKind::Files];

    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Sqlite => "sqlite",
            SystemKind::Lsm => "lsm",
            SystemKind::Files => "files",
            SystemKind::Postgresql => "postgresql",
            SystemKind::Cockroachdb => "cockroachdb",
            SystemKind::Mariadb => "mariadb",
            SystemKind::Clickhouse => "clickhouse",
            SystemKind::Redis => "redis",
            SystemKind::Kafka => "kafka",
            SystemKind::S3 => "s3",
        }
    }

    pub fn is_embedded(self) -> bool {
        Self::EMBEDDED.contains(&self)
    }

    pub fn valid_names() -> String {
        Self::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SystemKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "postgres" | "pg" => "postgresql",
            "crdb" | "cockroach" => "cockroachdb",
            "mysql" => "mariadb",
            "minio" => "s3",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|k| k.name() == alias)
            .ok_or_else(|| ParseError::new("system", s, format!("valid systems: {}", Self::valid_names())))
    }
}
