//! Configuration variants (a matrix axis): how PostgreSQL stores the value column.
//!
//! Names are `<storage>[-lz4]`:
//! - storage `extended` (TOAST compresses, then moves out of line), `external` (out of line,
//!   never compressed) or `main` (compresses, keeps in line as long as it can);
//! - compression `pglz` (the default, no suffix) or `lz4` (`-lz4`, PostgreSQL 14+ built with
//!   lz4; checked when the backend opens). `external` never compresses, so `external-lz4`
//!   is refused.
//!
//! CockroachDB has no such knobs: its only variant is `default`.

use dedup_lab_core::{BackendError, SystemKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Extended,
    External,
    Main,
}

impl Storage {
    pub fn sql(self) -> &'static str {
        match self {
            Storage::Extended => "EXTENDED",
            Storage::External => "EXTERNAL",
            Storage::Main => "MAIN",
        }
    }

    pub fn compresses(self) -> bool {
        self != Storage::External
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Pglz,
    Lz4,
}

impl Compression {
    pub fn sql(self) -> &'static str {
        match self {
            Compression::Pglz => "pglz",
            Compression::Lz4 => "lz4",
        }
    }
}

/// The column type of the payload value in blob mode: a file is one `bytea` value.
///
/// Native insertion mode does not use it: there the namespace's schema gives typed
/// columns, and JSON documents become `jsonb` (see [`super::typed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueColumn {
    Bytea,
}

impl ValueColumn {
    pub fn sql(self) -> &'static str {
        match self {
            ValueColumn::Bytea => "bytea",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    /// `None` for CockroachDB (`default`).
    pub storage: Option<Storage>,
    pub compression: Compression,
}

impl Variant {
    pub fn parse(kind: SystemKind, name: &str) -> Result<Variant, BackendError> {
        if kind == SystemKind::Cockroachdb {
            return if name == "default" {
                Ok(Variant { name: name.into(), storage: None, compression: Compression::Pglz })
            } else {
                Err(BackendError::msg(format!("cockroachdb has no variant {name:?}; its only variant is `default`")))
            };
        }
        let bad = |why: &str| {
            BackendError::msg(format!(
                "postgresql has no variant {name:?}: {why}; valid: extended, external, main, extended-lz4, main-lz4"
            ))
        };
        let (storage, comp) = match name.split_once('-') {
            Some((s, c)) => (s, Some(c)),
            None => (name, None),
        };
        let storage = match storage {
            "extended" => Storage::Extended,
            "external" => Storage::External,
            "main" => Storage::Main,
            _ => return Err(bad("unknown TOAST storage")),
        };
        let compression = match comp {
            None => Compression::Pglz,
            Some("lz4") => Compression::Lz4,
            Some("pglz") => {
                return Err(bad("pglz is the default compression; leave out the `-pglz` suffix"));
            }
            Some(_) => return Err(bad("unknown compression")),
        };
        if !storage.compresses() && compression != Compression::Pglz {
            return Err(bad("EXTERNAL storage never compresses, so a compression method means nothing"));
        }
        Ok(Variant { name: name.into(), storage: Some(storage), compression })
    }

    pub fn defaults(kind: SystemKind) -> Vec<String> {
        match kind {
            SystemKind::Cockroachdb => vec!["default".into()],
            _ => vec!["extended".into(), "external".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgresql_variants() {
        let pg = SystemKind::Postgresql;
        let v = Variant::parse(pg, "extended").unwrap();
        assert_eq!((v.storage, v.compression), (Some(Storage::Extended), Compression::Pglz));
        let v = Variant::parse(pg, "extended-lz4").unwrap();
        assert_eq!((v.storage, v.compression), (Some(Storage::Extended), Compression::Lz4));
        assert_eq!(Variant::parse(pg, "external").unwrap().storage, Some(Storage::External));
        assert_eq!(Variant::parse(pg, "main-lz4").unwrap().storage, Some(Storage::Main));
        for bad in ["default", "external-lz4", "extended-pglz", "extended-zstd", "plain", "", "EXTENDED"] {
            let e = Variant::parse(pg, bad).unwrap_err().to_string();
            assert!(e.contains("valid: extended"), "{bad}: {e}");
        }
    }

    #[test]
    fn cockroach_has_only_default() {
        assert!(Variant::parse(SystemKind::Cockroachdb, "default").is_ok());
        assert!(Variant::parse(SystemKind::Cockroachdb, "extended").is_err());
        assert_eq!(Variant::defaults(SystemKind::Cockroachdb), ["default"]);
        assert_eq!(Variant::defaults(SystemKind::Postgresql), ["extended", "external"]);
    }
}
