//! Typed rows for the native insertion mode: column types, schemas, values and the
//! canonical encoding of a row.
//!
//! A native record travels as a typed row ([`Value`]s in the order of a [`Schema`]'s
//! columns) *and* as the row's canonical encoding ([`Schema::encode`]), which is what the
//! record's `data` holds. Backends with typed storage write the row into typed columns and,
//! when asked to read a record back, rebuild the canonical encoding from what they stored;
//! backends without typed storage store the encoding. Either way the read-back check
//! compares the same bytes, and the encoding is what native logical bytes count.
//!
//! Canonical forms are fixed points: encoding a row that was decoded from a system's own
//! representation (e.g. PostgreSQL's `jsonb` output, which reorders keys and adds spaces)
//! gives the same bytes as encoding the row that was sent.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The type of a column. Every backend with typed storage maps it to its natural type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// 64-bit signed integer.
    Int,
    /// 64-bit IEEE 754 float (finite values only).
    Float,
    /// Exact decimal with `scale` fraction digits (money); the value is the unscaled integer
    /// (`1234.56` at scale 2 is `123456`). Scale at most 18.
    Decimal {
        scale: u8,
    },
    /// UTF-8 text.
    Text,
    Bool,
    /// An instant in UTC, microseconds since the Unix epoch.
    Timestamp,
    Uuid,
    /// A JSON document (`jsonb` where the system has it), held as canonical JSON text.
    Json,
    /// Raw bytes.
    Bytes,
}

impl ColumnType {
    pub fn name(self) -> String {
        match self {
            ColumnType::Int => "int".into(),
            ColumnType::Float => "float".into(),
            ColumnType::Decimal { scale } => format!("decimal({scale})"),
            ColumnType::Text => "text".into(),
            ColumnType::Bool => "bool".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Uuid => "uuid".into(),
            ColumnType::Json => "json".into(),
            ColumnType::Bytes => "bytes".into(),
        }
    }
}

/// A column of a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    /// `[a-z][a-z0-9_]*`, at most 40 characters, never `k` (the record key's column).
    pub name: String,
    pub ty: ColumnType,
}

/// How a row is encoded into bytes: the canonical encoding that a record's `data` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowEncoding {
    /// A compact JSON object, columns in schema order, NULL columns left out:
    /// `{"id":1,"user":"alice_smith",…}` (an NDJSON line without its newline).
    JsonObject,
    /// Values joined by `,`, quoted as RFC 4180 when needed: `<uuid>,<value>`.
    Csv,
    /// The only column's own bytes: text as UTF-8, bytes as they are, JSON as canonical text.
    Raw,
}

/// The typed shape of the native records of one payload type: what a backend with typed
/// storage creates its tables from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// What the rows are, e.g. `structured_json` (for messages and table comments).
    pub name: String,
    pub columns: Vec<Column>,
    pub encoding: RowEncoding,
}

/// A value of a typed row. Floats compare by bit pattern, so values (and records) are `Eq`.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    /// The unscaled integer of a [`ColumnType::Decimal`] column.
    Decimal(i64),
    Text(String),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Uuid([u8; 16]),
    /// Canonical JSON text ([`canonical_json`]).
    Json(String),
    Bytes(Vec<u8>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Int(a), Int(b)) | (Decimal(a), Decimal(b)) | (Timestamp(a), Timestamp(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) | (Json(a), Json(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Uuid(a), Uuid(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// Whether the value may be stored in a column of type `ty` (NULL fits every column).
    pub fn fits(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::Int(_), ColumnType::Int)
                | (Value::Float(_), ColumnType::Float)
                | (Value::Decimal(_), ColumnType::Decimal { .. })
                | (Value::Text(_), ColumnType::Text)
                | (Value::Bool(_), ColumnType::Bool)
                | (Value::Timestamp(_), ColumnType::Timestamp)
                | (Value::Uuid(_), ColumnType::Uuid)
                | (Value::Json(_), ColumnType::Json)
                | (Value::Bytes(_), ColumnType::Bytes)
        )
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bool(_) => "bool",
            Value::Timestamp(_) => "timestamp",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
            Value::Bytes(_) => "bytes",
        }
    }
}

/// A row that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row does not fit schema {schema}: {why}")]
pub struct RowError {
    pub schema: String,
    pub why: String,
}

impl Schema {
    /// A schema; column names are checked (they become SQL identifiers).
    pub fn new(name: &str, columns: Vec<Column>, encoding: RowEncoding) -> Result<Schema, ParseError> {
        if columns.is_empty() {
            return Err(ParseError::new("schema", name, "a schema needs at least one column"));
        }
        if encoding == RowEncoding::Raw && columns.len() != 1 {
            return Err(ParseError::new("schema", name, "the raw encoding takes exactly one column"));
        }
        for (i, c) in columns.iter().enumerate() {
            let ok = c.name.len() <= 40
                && c.name.starts_with(|ch: char| ch.is_ascii_lowercase())
                && c.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && c.name != "k";
            if !ok {
                return Err(ParseError::new(
                    "column name",
                    &c.name,
                    "use [a-z][a-z0-9_]*, at most 40 characters, and not `k` (the key column)",
                ));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(ParseError::new("column name", &c.name, "listed twice"));
            }
            if let ColumnType::Decimal { scale } = c.ty
                && scale > 18
            {
                return Err(ParseError::new("column type", c.ty.name(), "a decimal's scale is at most 18"));
            }
        }
        Ok(Schema { name: name.into(), columns, encoding })
    }

    fn err(&self, why: impl Into<String>) -> RowError {
        RowError { schema: self.name.clone(), why: why.into() }
    }

    /// Checks that `row` has one fitting value per column.
    pub fn check(&self, row: &[Value]) -> Result<(), RowError> {
        if row.len() != self.columns.len() {
            return Err(self.err(format!("{} values for {} columns", row.len(), self.columns.len())));
        }
        for (c, v) in self.columns.iter().zip(row) {
            if !v.fits(c.ty) {
                return Err(self.err(format!("column {} is {}, the value is {}", c.name, c.ty.name(), v.kind())));
            }
        }
        Ok(())
    }

    /// The canonical encoding of `row` (what a native record's `data` holds).
    pub fn encode(&self, row: &[Value]) -> Result<Vec<u8>, RowError> {
        self.check(row)?;
        let mut out = String::new();
        match self.encoding {
            RowEncoding::JsonObject => self.json_object(row, &mut out)?,
            RowEncoding::Csv => {
                for (i, (c, v)) in self.columns.iter().zip(row).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let text = self.plain(c.ty, v)?;
                    if text.contains([',', '"', '\n', '\r']) {
                        out.push('"');
                        out.push_str(&text.replace('"', "\"\""));
                        out.push('"');
                    } else {
                        out.push_str(&text);
                    }
                }
            }
            RowEncoding::Raw => match &row[0] {
                Value::Bytes(b) => return Ok(b.clone()),
                v => out = self.plain(self.columns[0].ty, v)?,
            },
        }
        Ok(out.into_bytes())
    }

    fn json_object(&self, row: &[Value], out: &mut String) -> Result<(), RowError> {
        out.push('{');
        let mut first = true;
        for (c, v) in self.columns.iter().zip(row) {
            if matches!(v, Value::Null) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            json_string(&c.name, out);
            out.push(':');
            self.json_value(c.ty, v, out)?;
        }
        out.push('}');
        Ok(())
    }

    /// `row` as a compact JSON object whatever the schema's own encoding (columns in schema
    /// order, NULLs left out; timestamps, UUIDs and bytes as strings, bytes in hex): what a
    /// system that carries JSON messages stores. The same bytes as [`encode`](Self::encode)
    /// for a `JsonObject` schema.
    pub fn encode_json_object(&self, row: &[Value]) -> Result<Vec<u8>, RowError> {
        self.check(row)?;
        let mut out = String::new();
        self.json_object(row, &mut out)?;
        Ok(out.into_bytes())
    }

    /// The row of a JSON object written by [`encode_json_object`](Self::encode_json_object)
    /// (a column that is absent is NULL).
    pub fn decode_json_object(&self, bytes: &[u8]) -> Result<Vec<Value>, RowError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| self.err(format!("not a JSON object: {e}")))?;
        let obj = v.as_object().ok_or_else(|| self.err("not a JSON object"))?;
        let mut row = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let Some(v) = obj.get(&c.name).filter(|v| !v.is_null()) else {
                row.push(Value::Null);
                continue;
            };
            let bad = || self.err(format!("column {}: {v} is not a {}", c.name, c.ty.name()));
            let s = || v.as_str().ok_or_else(bad);
            row.push(match c.ty {
                ColumnType::Int => Value::Int(v.as_i64().ok_or_else(bad)?),
                ColumnType::Float => Value::Float(v.as_f64().ok_or_else(bad)?),
                ColumnType::Decimal { scale } => Value::Decimal(parse_decimal(&v.to_string(), scale).ok_or_else(bad)?),
                ColumnType::Text => Value::Text(s()?.to_string()),
                ColumnType::Bool => Value::Bool(v.as_bool().ok_or_else(bad)?),
                ColumnType::Timestamp => Value::Timestamp(parse_timestamp(s()?).ok_or_else(bad)?),
                ColumnType::Uuid => Value::Uuid(parse_uuid(s()?).ok_or_else(bad)?),
                ColumnType::Json => Value::Json(canonical_json(v)),
                ColumnType::Bytes => Value::Bytes(unhex(s()?).ok_or_else(bad)?),
            });
        }
        Ok(row)
    }

    /// A value as plain text (CSV field, raw column).
    fn plain(&self, ty: ColumnType, v: &Value) -> Result<String, RowError> {
        Ok(match v {
            Value::Null => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f).ok_or_else(|| self.err("a float is not finite"))?,
            Value::Decimal(u) => format_decimal(*u, scale_of(ty)),
            Value::Text(s) | Value::Json(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Timestamp(t) => format_timestamp(*t),
            Value::Uuid(u) => format_uuid(u),
            Value::Bytes(b) => hex(b),
        })
    }

    fn json_value(&self, ty: ColumnType, v: &Value, out: &mut String) -> Result<(), RowError> {
        match v {
            Value::Null => out.push_str("null"),
            Value::Int(_) | Value::Float(_) | Value::Decimal(_) | Value::Bool(_) => out.push_str(&self.plain(ty, v)?),
            Value::Json(s) => out.push_str(s),
            Value::Text(s) => json_string(s, out),
            Value::Timestamp(_) | Value::Uuid(_) | Value::Bytes(_) => json_string(&self.plain(ty, v)?, out),
        }
        Ok(())
    }
}

fn scale_of(ty: ColumnType) -> u8 {
    match ty {
        ColumnType::Decimal { scale } => scale,
        _ => 0,
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("a string serialises"));
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        write!(s, "{x:02x}").expect("writing to a String cannot fail");
    }
    s
}

/// A finite float in its shortest round-trip form without exponent (`12.5`, `100`,
/// `0.0000001`); `-0` is written `0`. `None` for NaN and infinities.
pub fn format_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    Some(if f == 0.0 { "0".into() } else { format!("{f}") })
}

/// The unscaled integer `unscaled` at `scale` fraction digits: `format_decimal(123456, 2)`
/// is `1234.56`, `format_decimal(-5, 2)` is `-0.05`.
pub fn format_decimal(unscaled: i64, scale: u8) -> String {
    if scale == 0 {
        return unscaled.to_string();
    }
    let p = 10u128.pow(u32::from(scale));
    let abs = i128::from(unscaled).unsigned_abs();
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", abs / p, abs % p, width = usize::from(scale))
}

/// The unscaled integer of a decimal literal (`-12.5` at scale 2 is `-1250`); `None` when it
/// has more fraction digits than `scale` (other than trailing zeros), or does not fit.
pub fn parse_decimal(s: &str, scale: u8) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if body.contains('.') && frac.is_empty() {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > usize::from(scale) {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    v = v.checked_mul(10i128.checked_pow(u32::from(scale) - frac.len() as u32)?)?;
    if neg {
        v = -v;
    }
    i64::try_from(v).ok()
}

/// A UUID in its lower-case hyphenated form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let digits: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = nib(pair[0])? << 4 | nib(pair[1])?;
    }
    Some(out)
}

/// Microseconds since the Unix epoch as RFC 3339 UTC: `2021-03-04T05:06:07Z`, with the
/// fraction only when there is one, trailing zeros cut (`…:07.5Z`).
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod % 3600) / 60, sod % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` into microseconds since the Unix epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let rest = rest.strip_suffix('Z')?;
    let frac = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32)
        }
        _ => return None,
    };
    let days_in = |y: i64, m: i64| match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in(y, mo) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days = crate::time::days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + frac)
}

/// Canonical JSON: compact, object keys sorted by their bytes, numbers in one form
/// (integers as integers, other numbers by [`format_float`]). Equal JSON values — whatever
/// their spacing, key order or number spelling (`12.50`, `1.25e1`) — have equal canonical
/// text, and a system that stores JSON as a parsed tree (PostgreSQL `jsonb`) gives back text
/// whose canonical form is the one that was sent.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

/// [`canonical_json`] of a JSON text.
pub fn canonicalize_json(text: &str) -> Result<String, serde_json::Error> {
    Ok(canonical_json(&serde_json::from_str(text)?))
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                write!(out, "{i}").expect("writing to a String cannot fail");
            } else if let Some(u) = n.as_u64() {
                write!(out, "{u}").expect("writing to a String cannot fail");
            } else {
                // serde_json numbers are always finite.
                out.push_str(&format_float(n.as_f64().unwrap_or(0.0)).unwrap_or_else(|| "0".into()));
            }
        }
        J::String(s) => json_string(s, out),
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        J::Object(m) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                write_canonical(x, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: ColumnType) -> Column {
        Column { name: name.into(), ty }
    }

    #[test]
    fn rows_round_trip_through_a_json_object_whatever_the_schema_encoding() {
        let cols = vec![
            col("id", ColumnType::Int),
            col("x", ColumnType::Float),
            col("amount", ColumnType::Decimal { scale: 2 }),
            col("name", ColumnType::Text),
            col("ok", ColumnType::Bool),
            col("at", ColumnType::Timestamp),
            col("key", ColumnType::Uuid),
            col("doc", ColumnType::Json),
            col("blob", ColumnType::Bytes),
            col("gone", ColumnType::Int),
        ];
        let row = vec![
            Value::Int(-42),
            Value::Float(0.1),
            Value::Decimal(-123_450),
            Value::Text("a \"quoted\", text".into()),
            Value::Bool(true),
            Value::Timestamp(1_700_000_000_123_456),
            Value::Uuid(*b"0123456789abcdef"),
            Value::Json(canonicalize_json(r#"{"b":[1,2.5],"a":null}"#).unwrap()),
            Value::Bytes(vec![0, 1, 254, 255]),
            Value::Null,
        ];
        let csv = Schema::new("c", cols.clone(), RowEncoding::Csv).unwrap();
        let json = csv.encode_json_object(&row).unwrap();
        assert!(json.starts_with(b"{\"id\":-42,\"x\":0.1,\"amount\":-1234.50,"), "{}", String::from_utf8_lossy(&json));
        assert!(!String::from_utf8_lossy(&json).contains("gone"), "NULL columns are left out");
        let back = csv.decode_json_object(&json).unwrap();
        assert_eq!(back, row);
        assert_eq!(csv.encode(&back).unwrap(), csv.encode(&row).unwrap());
        let obj = Schema::new("j", cols, RowEncoding::JsonObject).unwrap();
        assert_eq!(obj.encode_json_object(&row).unwrap(), obj.encode(&row).unwrap());
        let e = csv.decode_json_object(br#"{"id":"seven"}"#).unwrap_err();
        assert!(e.why.contains("column id"), "{e:?}");
        assert_eq!(parse_decimal("12.5", 2), Some(1250));
        assert_eq!(parse_decimal("12.555", 2), None);
    }

    #[test]
    fn schemas_refuse_bad_column_names() {
        for bad in ["k", "User", "1a", "a-b", "", "a b"] {
            assert!(Schema::new("t", vec![col(bad, ColumnType::Int)], RowEncoding::Csv).is_err(), "{bad}");
        }
        assert!(
            Schema::new("t", vec![col("a", ColumnType::Int), col("a", ColumnType::Int)], RowEncoding::Csv).is_err()
        );
        assert!(
            Schema::new("t", vec![col("a", ColumnType::Int), col("b", ColumnType::Int)], RowEncoding::Raw).is_err()
        );
        assert!(Schema::new("t", vec![col("a", ColumnType::Decimal { scale: 19 })], RowEncoding::Raw).is_err());
    }

    #[test]
    fn encodes_rows() {
        let s = Schema::new(
            "t",
            vec![
                col("id", ColumnType::Int),
                col("name", ColumnType::Text),
                col("amount", ColumnType::Decimal { scale: 2 }),
                col("at", ColumnType::Timestamp),
                col("doc", ColumnType::Json),
                col("gone", ColumnType::Bool),
            ],
            RowEncoding::JsonObject,
        )
        .unwrap();
        let row = vec![
            Value::Int(7),
            Value::Text("a \"b\"".into()),
            Value::Decimal(-5),
            Value::Timestamp(1_500_000),
            Value::Json("{\"x\":[1,2]}".into()),
            Value::Null,
        ];
        assert_eq!(
            String::from_utf8(s.encode(&row).unwrap()).unwrap(),
            r#"{"id":7,"name":"a \"b\"","amount":-0.05,"at":"1970-01-01T00:00:01.5Z","doc":{"x":[1,2]}}"#
        );
        assert!(s.encode(&row[..5]).is_err());
        let mut bad = row.clone();
        bad[0] = Value::Text("7".into());
        assert!(s.encode(&bad).unwrap_err().to_string().contains("column id is int"));

        let csv =
            Schema::new("u", vec![col("key", ColumnType::Uuid), col("v", ColumnType::Text)], RowEncoding::Csv).unwrap();
        let u = parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        assert_eq!(
            csv.encode(&[Value::Uuid(u), Value::Text("a,\"b\"".into())]).unwrap(),
            b"0f8fad5b-d9cb-469f-a165-70867728950e,\"a,\"\"b\"\"\""
        );
        let raw = Schema::new("r", vec![col("chunk", ColumnType::Bytes)], RowEncoding::Raw).unwrap();
        assert_eq!(raw.encode(&[Value::Bytes(vec![0, 255])]).unwrap(), vec![0, 255]);
    }

    #[test]
    fn decimals_round_trip() {
        for (s, scale, u, back) in [
            ("1234.56", 2, 123_456, "1234.56"),
            ("-0.05", 2, -5, "-0.05"),
            ("7", 2, 700, "7.00"),
            ("1.5", 2, 150, "1.50"),
            ("1.500", 2, 150, "1.50"),
            ("42", 0, 42, "42"),
        ] {
            assert_eq!(parse_decimal(s, scale), Some(u), "{s}");
            assert_eq!(format_decimal(u, scale), back);
        }
        for bad in ["1.234", "", "-", "1.", ".5", "1e3", "abc", "99999999999999999999"] {
            assert_eq!(parse_decimal(bad, 2), None, "{bad}");
        }
        assert_eq!(format_decimal(i64::MIN, 18), "-9.223372036854775808");
    }

    #[test]
    fn timestamps_and_uuids_round_trip() {
        for s in
            ["1970-01-01T00:00:00Z", "2021-03-04T05:06:07Z", "2000-02-29T23:59:59.000001Z", "1969-12-31T23:59:59.5Z"]
        {
            let t = parse_timestamp(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(format_timestamp(t), s);
        }
        assert_eq!(parse_timestamp("2021-03-04T05:06:07Z"), Some(1_614_834_367_000_000));
        for bad in ["2021-02-29T00:00:00Z", "2021-03-04 05:06:07Z", "2021-03-04T05:06:07", "2021-03-04T05:06:07+01:00"]
        {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        let u = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(format_uuid(&parse_uuid(u).unwrap()), u);
        assert_eq!(format_uuid(&parse_uuid(&u.to_uppercase()).unwrap()), u);
        for bad in ["0f8fad5bd9cb469fa16570867728950e", "0f8fad5b-d9cb-469f-a165-70867728950g", ""] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn canonical_json_is_a_fixed_point_of_jsonb_output() {
        let sent =
            canonicalize_json(r#"{ "b": 12.50, "a": [1, 1e2, -0.0, 0.0000001], "ab": {"z": null, "y": "é\u0001"} }"#)
                .unwrap();
        assert_eq!(sent, r#"{"a":[1,100,0,0.0000001],"ab":{"y":"é\u0001","z":null},"b":12.5}"#);
        // What PostgreSQL's jsonb output looks like: keys by length, spaces, numerics kept.
        let jsonb_out = r#"{"a": [1, 100, 0, 0.0000001], "b": 12.5, "ab": {"y": "é\u0001", "z": null}}"#;
        assert_eq!(canonicalize_json(jsonb_out).unwrap(), sent);
        assert_eq!(canonicalize_json(&sent).unwrap(), sent);
        assert_eq!(format_float(1e300).unwrap().len(), 301);
        assert_eq!(format_float(f64::NAN), None);
    }

    #[test]
    fn float_values_compare_by_bits() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_ne!(Value::Int(1), Value::Decimal(1));
    }
}
