//! Number formatting shared by the human-readable exporters.

use crate::metrics::Unit;
use crate::stats::Stats;

/// Bytes with a binary unit (`8.0 MiB`); negative values keep their sign.
pub fn bytes(v: f64) -> String {
    let s = dedup_lab_core::format_bytes(v.abs().round() as u64);
    if v < 0.0 && v.abs().round() > 0.0 { format!("−{s}") } else { s }
}

/// A duration in nanoseconds with a fitting unit (`820 µs`, `1.62 ms`, `1.20 s`).
pub fn nanos(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 {
        format!("{v:.0} ns")
    } else if a < 1e6 {
        format!("{} µs", sig3(v / 1e3))
    } else if a < 1e9 {
        format!("{} ms", sig3(v / 1e6))
    } else {
        format!("{} s", sig3(v / 1e9))
    }
}

/// Three significant digits, at most two decimals (`1.23`, `12.3`, `123`, `1234`).
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() { s[1..].to_string() } else { s }
}

/// A tick label: the shortest exact form (`0`, `0.5`, `2.5`, `1500`).
pub fn tick(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    if r == 0.0 { "0".into() } else { format!("{r}") }
}

/// A byte tick label without a needless decimal (`2 MiB`, `1.5 MiB`).
pub fn bytes_tick(v: f64) -> String {
    bytes(v).replace(".0 ", " ")
}

/// A duration tick label (`500 µs`, `2 ms`, `1.5 s`).
pub fn nanos_tick(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a < 1e3 {
        (v, "ns")
    } else if a < 1e6 {
        (v / 1e3, "µs")
    } else if a < 1e9 {
        (v / 1e6, "ms")
    } else {
        (v / 1e9, "s")
    };
    format!("{} {unit}", tick((x * 1000.0).round() / 1000.0))
}

/// A share as a whole percentage (`100%`); a rounded −0 prints as `0%`.
pub fn pct(v: f64) -> String {
    format!("{:.0}%", (v * 100.0).round() + 0.0)
}

/// A value in its unit, for tables.
pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ratio => format!("{v:.2}"),
        Unit::Share => pct(v),
        Unit::Bytes => bytes(v),
        Unit::Seconds => format!("{} s", sig3(v)),
        Unit::MegabytesPerSecond => sig3(v),
        Unit::OpsPerSecond => sig3(v),
        Unit::Nanoseconds => nanos(v),
        Unit::Count => {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
    }
}

/// A value in its unit, with the unit spelled out where [`value`] leaves it to the column
/// header (MB/s, ops/s).
pub fn value_unit(unit: Unit, v: f64) -> String {
    match unit {
        Unit::MegabytesPerSecond | Unit::OpsPerSecond => format!("{} {}", value(unit, v), unit.symbol()),
        _ => value(unit, v),
    }
}

/// The half-width of an interval in the metric's unit (a share as percentage points).
pub fn half(unit: Unit, h: f64) -> String {
    match unit {
        Unit::Share => format!("{:.0} pp", (h * 100.0).round() + 0.0),
        Unit::Ratio => format!("{h:.2}"),
        _ => value(unit, h),
    }
}

/// `mean ± half-width` (or the mean alone for a single repetition); `–` when absent.
pub fn mean_ci(unit: Unit, s: Option<&Stats>, sep: &str) -> String {
    match s {
        None => "–".into(),
        Some(s) => match s.ci_half {
            Some(h) => format!("{}{sep}{}", value(unit, s.mean), half(unit, h)),
            None => value(unit, s.mean),
        },
    }
}

/// The mean alone; `–` when absent.
pub fn mean(unit: Unit, s: Option<&Stats>) -> String {
    s.map_or_else(|| "–".into(), |s| value(unit, s.mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(8_400_896.0), "8.0 MiB");
        assert_eq!(bytes(-4096.0), "−4.0 KiB");
        assert_eq!(nanos(820_736.0), "821 µs");
        assert_eq!(nanos(1_615_871.0), "1.62 ms");
        assert_eq!(nanos(512.0), "512 ns");
        assert_eq!(pct(-0.001), "0%");
        assert_eq!(pct(0.996), "100%");
        assert_eq!(sig3(-0.001), "0.00");
        assert_eq!(sig3(59.01), "59.0");
        assert_eq!(
            (tick(0.0), tick(0.5), tick(1500.0), tick(0.1 + 0.2)),
            ("0".into(), "0.5".into(), "1500".into(), "0.3".into())
        );
        assert_eq!(bytes_tick(2_097_152.0), "2 MiB");
        assert_eq!(nanos_tick(500_000.0), "500 µs");
        assert_eq!(nanos_tick(2e6), "2 ms");
        let s = Stats::of(&[2.0, 4.0, 6.0], 0.95).unwrap();
        assert_eq!(mean_ci(Unit::Ratio, Some(&s), " ± "), "4.00 ± 4.97");
        assert_eq!(mean_ci(Unit::Ratio, None, " ± "), "–");
    }
}
