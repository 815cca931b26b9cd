//! Byte sizes: parsing `512KiB`, `1GiB`, `4096` and formatting for humans.

use crate::error::ParseError;

/// Parses a byte size: a whole number with an optional unit `B`, `KiB`, `MiB`, `GiB`,
/// `TiB` (binary) or `KB`, `MB`, `GB`, `TB` (decimal); `K`/`M`/`G` are binary.
pub fn parse_bytes(what: &'static str, s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let err = || ParseError::new(what, s, "expected a size such as 4096, 512KiB, 64MiB or 1GiB");
    if num.is_empty() {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Formats bytes with a binary unit and up to one decimal (e.g. `8.0 MiB`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_bytes("size", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("size", "512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_bytes("size", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("size", "5GB").unwrap(), 5_000_000_000);
        assert!(parse_bytes("size", "12XB").is_err());
        assert!(parse_bytes("size", "KiB").is_err());
        assert!(parse_bytes("size", "-4").is_err());
        assert!(parse_bytes("size", "99999999999TiB").is_err());
        assert_eq!(format_bytes(8 << 20), "8.0 MiB");
    }
}
