//! Configuration variants (a matrix axis): the table engine, and column codecs.
//!
//! - `mergetree`: `MergeTree ORDER BY k`; every row sent is kept (EDR ≈ 1 for duplicates,
//!   apart from compression within a column block).
//! - `replacing`: `ReplacingMergeTree ORDER BY h`, where `h` is a MATERIALIZED 64-bit content
//!   hash (`cityHash64`) of the payload (blob mode) or of every typed column (native mode).
//!   Rows with equal content collapse into one when parts merge (`OPTIMIZE … FINAL` merges
//!   everything), so duplicates are stored once: the variant deduplicates by design. Two
//!   different payloads with the same 64-bit hash would collapse too (probability ~n²/2⁶⁵).
//! - `mergetree-zstd`: `MergeTree` with `CODEC(ZSTD(3))` on the payload columns. Column codecs
//!   exist from ClickHouse 19.1; an older server refuses the variant when it opens (and so
//!   at preflight), naming the version it needs.

use dedup_lab_core::{BackendError, ErrorClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    MergeTree,
    Replacing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub engine: Engine,
    /// A column codec for the payload columns (`ZSTD(3)`), when the variant has one.
    pub codec: Option<&'static str>,
}

/// Variants measured when `variants` is not set.
pub const DEFAULTS: &[&str] = &["mergetree", "replacing"];

/// Every variant name, for messages.
pub const ALL: &[&str] = &["mergetree", "replacing", "mergetree-zstd"];

/// The first server version with column codecs.
pub const CODECS_SINCE: (u32, u32) = (19, 1);

/// The first server version whose lightweight `DELETE FROM` needs no experimental setting.
pub const LIGHTWEIGHT_DELETE_SINCE: (u32, u32) = (23, 3);

impl Variant {
    pub fn parse(name: &str) -> Result<Variant, BackendError> {
        let (engine, codec) = match name {
            "mergetree" => (Engine::MergeTree, None),
            "replacing" => (Engine::Replacing, None),
            "mergetree-zstd" => (Engine::MergeTree, Some("ZSTD(3)")),
            _ => {
                return Err(BackendError::msg(format!(
                    "clickhouse has no variant {name:?}; its variants are {}",
                    ALL.join(", ")
                ))
                .classed(ErrorClass::Config));
            }
        };
        Ok(Variant { name: name.to_string(), engine, codec })
    }
}

/// `(major, minor)` of a version string such as `18.16.1` or `24.3.2.23`.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.trim().split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_and_versions_compare() {
        assert_eq!(Variant::parse("replacing").unwrap().engine, Engine::Replacing);
        assert_eq!(Variant::parse("mergetree-zstd").unwrap().codec, Some("ZSTD(3)"));
        let e = Variant::parse("mergetree-lz4").unwrap_err();
        assert!(e.to_string().contains("\"mergetree-lz4\"") && e.to_string().contains("replacing"), "{e}");
        assert_eq!(major_minor("18.16.1"), Some((18, 16)));
        assert!(major_minor("18.16.1").unwrap() < CODECS_SINCE);
        assert!(major_minor("24.3.2.23").unwrap() >= CODECS_SINCE);
        assert_eq!(major_minor("x"), None);
        assert!(major_minor("18.16.1").unwrap() < LIGHTWEIGHT_DELETE_SINCE);
        assert!(major_minor("23.3.1").unwrap() >= LIGHTWEIGHT_DELETE_SINCE);
    }
}
