//! Configuration variants (a matrix axis): how InnoDB stores the lab tables.
//!
//! - `dynamic`: `ROW_FORMAT=DYNAMIC`, InnoDB's default: long values go to overflow pages
//!   uncompressed.
//! - `compressed`: `ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=<k>` (zlib on every page, held in
//!   `k` KiB blocks; `k` from the `key_block_size` setting, default 8), or `compressed-<k>`
//!   with `k` one of 1, 2, 4, 8, 16 to measure several sizes side by side.
//! - `page-compressed`: `PAGE_COMPRESSED=1` on a DYNAMIC table: each page is compressed with
//!   the server's `innodb_compression_algorithm` when written, and the file keeps a hole
//!   where the page shrank (only the file system's allocated blocks show it).
//!   `page_compression_level` sets `PAGE_COMPRESSION_LEVEL`.
//!
//! Whether the server can serve a variant is checked when the backend opens (see
//! `MariaBackend::check_variant`), so `preflight` names a refused variant before a run.

use dedup_lab_core::BackendError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dynamic,
    /// `KEY_BLOCK_SIZE` in KiB.
    Compressed(u32),
    /// `PAGE_COMPRESSION_LEVEL`, when set.
    PageCompressed(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub format: Format,
}

pub const VALID: &str = "dynamic, compressed, compressed-1, compressed-2, compressed-4, compressed-8, compressed-16, \
                         page-compressed";

impl Variant {
    /// `key_block_size` and `page_compression_level` are the settings' values.
    pub fn parse(name: &str, key_block_size: u32, page_level: Option<u32>) -> Result<Variant, BackendError> {
        let format = match name {
            "dynamic" => Format::Dynamic,
            "compressed" => Format::Compressed(key_block_size),
            "page-compressed" => Format::PageCompressed(page_level),
            other => match other.strip_prefix("compressed-").and_then(|k| k.parse::<u32>().ok()) {
                Some(k) if [1, 2, 4, 8, 16].contains(&k) => Format::Compressed(k),
                _ => return Err(BackendError::msg(format!("mariadb has no variant {name:?}; valid: {VALID}"))),
            },
        };
        Ok(Variant { name: name.into(), format })
    }

    pub fn defaults() -> Vec<String> {
        vec!["dynamic".into(), "compressed".into(), "page-compressed".into()]
    }

    /// The table options after `ENGINE=InnoDB`.
    pub fn table_options(&self) -> String {
        match self.format {
            Format::Dynamic => "ROW_FORMAT=DYNAMIC".into(),
            Format::Compressed(k) => format!("ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE={k}"),
            Format::PageCompressed(None) => "ROW_FORMAT=DYNAMIC PAGE_COMPRESSED=1".into(),
            Format::PageCompressed(Some(l)) => {
                format!("ROW_FORMAT=DYNAMIC PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL={l}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variants() {
        assert_eq!(Variant::parse("dynamic", 8, None).unwrap().table_options(), "ROW_FORMAT=DYNAMIC");
        assert_eq!(Variant::parse("compressed", 4, None).unwrap().format, Format::Compressed(4));
        assert_eq!(
            Variant::parse("compressed-16", 8, None).unwrap().table_options(),
            "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=16"
        );
        assert_eq!(
            Variant::parse("page-compressed", 8, Some(3)).unwrap().table_options(),
            "ROW_FORMAT=DYNAMIC PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=3"
        );
        for bad in ["default", "compressed-3", "compact", "DYNAMIC", "", "page_compressed"] {
            let e = Variant::parse(bad, 8, None).unwrap_err().to_string();
            assert!(e.contains("valid: dynamic"), "{bad}: {e}");
        }
        assert_eq!(Variant::defaults(), ["dynamic", "compressed", "page-compressed"]);
    }
}
