//! `FORMAT RowBinary` written by hand, and the typed columns of native insertion mode.
//!
//! RowBinary is a row after row of values in the table's column order, without names or
//! types (18.16 has no `RowBinaryWithNamesAndTypes`): a `String` is a LEB128 length and its
//! bytes; integers and floats are little-endian; `Decimal(18, s)` is its unscaled `Int64`;
//! `DateTime` is a `UInt32` of seconds; `UUID` is two little-endian `UInt64`, the high half
//! first; `Nullable(T)` is a byte 1 (NULL) or 0 followed by the `T`.
//!
//! | column type | ClickHouse |
//! |---|---|
//! | int | `Nullable(Int64)` |
//! | float | `Nullable(Float64)` |
//! | decimal(s) | `Nullable(Decimal(18, s))` |
//! | text, json, bytes | `Nullable(String)` (JSON as its canonical text) |
//! | bool | `Nullable(UInt8)` |
//! | timestamp | `Nullable(DateTime)` (whole seconds; a value with a fraction is refused) |
//! | uuid | `Nullable(UUID)` |
//!
//! Reading back asks the server for each column as text (`toString`, `toUnixTimestamp`) and
//! parses that, so a record that reads back equal proves the binary encoding: the server
//! understood each value as it was meant, not only as this module would decode it.

use dedup_lab_core::value::{canonicalize_json, parse_decimal, parse_uuid};
use dedup_lab_core::{ColumnType, Schema, Value};

/// Appends a LEB128 length.
pub fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Appends a `String`.
pub fn string(s: &[u8], out: &mut Vec<u8>) {
    varint(s.len() as u64, out);
    out.extend_from_slice(s);
}

/// The ClickHouse type of a column.
pub fn ch_type(ty: ColumnType) -> String {
    let inner = match ty {
        ColumnType::Int => "Int64".to_string(),
        ColumnType::Float => "Float64".into(),
        ColumnType::Decimal { scale } => format!("Decimal(18, {scale})"),
        ColumnType::Text | ColumnType::Json | ColumnType::Bytes => "String".into(),
        ColumnType::Bool => "UInt8".into(),
        ColumnType::Timestamp => "DateTime".into(),
        ColumnType::Uuid => "UUID".into(),
    };
    format!("Nullable({inner})")
}

/// `` `name` `` (names are `[a-z][a-z0-9_]*`).
pub fn ident(name: &str) -> String {
    format!("`{name}`")
}

/// A column as an argument of the content hash: `cityHash64` of 18.16 takes neither
/// `Decimal` nor `UUID`, so every column that is not a string is hashed as its text.
pub fn hash_expr(name: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Text | ColumnType::Json | ColumnType::Bytes => ident(name),
        _ => format!("toString({})", ident(name)),
    }
}

/// The typed column list after `k String`.
pub fn column_defs(schema: &Schema, codec: Option<&str>) -> String {
    schema
        .columns
        .iter()
        .map(|c| {
            let codec = match (codec, c.ty) {
                (Some(codec), ColumnType::Text | ColumnType::Json | ColumnType::Bytes) => format!(" CODEC({codec})"),
                _ => String::new(),
            };
            format!("{} {}{codec}", ident(&c.name), ch_type(c.ty))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends one value of a `Nullable(<ch_type(ty)>)` column.
pub fn value(v: &Value, ty: ColumnType, out: &mut Vec<u8>) -> Result<(), String> {
    if matches!(v, Value::Null) {
        out.push(1);
        return Ok(());
    }
    out.push(0);
    match v {
        Value::Null => unreachable!("handled above"),
        Value::Int(i) | Value::Decimal(i) => out.extend_from_slice(&i.to_le_bytes()),
        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Text(s) | Value::Json(s) => string(s.as_bytes(), out),
        Value::Bytes(b) => string(b, out),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Timestamp(us) => {
            if us % 1_000_000 != 0 {
                return Err(format!(
                    "timestamp {} has a fraction of a second, which DateTime cannot hold (DateTime64 needs \
                     ClickHouse 20.1+, which this backend does not use)",
                    dedup_lab_core::value::format_timestamp(*us)
                ));
            }
            let secs = u32::try_from(us / 1_000_000)
                .map_err(|_| format!("timestamp {us} µs is outside DateTime's range (1970 to 2106)"))?;
            out.extend_from_slice(&secs.to_le_bytes());
        }
        Value::Uuid(u) => {
            let hi = u64::from_be_bytes(u[..8].try_into().expect("8 bytes"));
            let lo = u64::from_be_bytes(u[8..].try_into().expect("8 bytes"));
            out.extend_from_slice(&hi.to_le_bytes());
            out.extend_from_slice(&lo.to_le_bytes());
        }
    }
    let _ = ty;
    Ok(())
}

/// The expression that reads a column back as text: `toString(x)`, or the seconds of a
/// timestamp (`toUnixTimestamp`, independent of the server's time zone).
pub fn text_expr(name: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Timestamp => format!("toString(toUnixTimestamp({}))", ident(name)),
        ColumnType::Text | ColumnType::Json | ColumnType::Bytes => ident(name),
        _ => format!("toString({})", ident(name)),
    }
}

/// Parses the text the server gave for a column (`None`: NULL) back into a value.
pub fn parse_text(ty: ColumnType, raw: Option<&[u8]>) -> Result<Value, String> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let text = || std::str::from_utf8(raw).map_err(|e| e.to_string());
    let bad = |what: &str| format!("the server gave {:?} for a {what} column", String::from_utf8_lossy(raw));
    Ok(match ty {
        ColumnType::Int => Value::Int(text()?.parse().map_err(|_| bad("Int64"))?),
        ColumnType::Float => Value::Float(text()?.parse().map_err(|_| bad("Float64"))?),
        ColumnType::Decimal { scale } => Value::Decimal(parse_decimal(text()?, scale).ok_or_else(|| bad("Decimal"))?),
        ColumnType::Text => Value::Text(text()?.to_string()),
        ColumnType::Json => Value::Json(canonicalize_json(text()?).map_err(|e| e.to_string())?),
        ColumnType::Bytes => Value::Bytes(raw.to_vec()),
        ColumnType::Bool => Value::Bool(text()? != "0"),
        ColumnType::Timestamp => {
            Value::Timestamp(text()?.parse::<i64>().map_err(|_| bad("DateTime"))?.saturating_mul(1_000_000))
        }
        ColumnType::Uuid => Value::Uuid(parse_uuid(text()?).ok_or_else(|| bad("UUID"))?),
    })
}

/// Reads RowBinary `String`s and `Nullable(String)`s from an answer.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (b, rest) = self.buf.split_first().ok_or("the answer ends early")?;
        self.buf = rest;
        Ok(*b)
    }

    pub fn string(&mut self) -> Result<&'a [u8], String> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let n = usize::try_from(n).map_err(|_| "a length overflows")?;
                if n > self.buf.len() {
                    return Err("the answer ends inside a string".into());
                }
                let (s, rest) = self.buf.split_at(n);
                self.buf = rest;
                return Ok(s);
            }
        }
        Err("a length is not a varint".into())
    }

    pub fn nullable_string(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.byte()? {
            0 => self.string().map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_strings() {
        for (n, want) in [(0u64, vec![0u8]), (127, vec![127]), (128, vec![0x80, 1]), (300, vec![0xac, 2])] {
            let mut out = Vec::new();
            varint(n, &mut out);
            assert_eq!(out, want, "{n}");
        }
        let mut out = Vec::new();
        string(&[7u8; 200], &mut out);
        out.extend_from_slice(&[1]);
        out.extend_from_slice(&[0, 2, b'h', b'i']);
        let mut r = Reader::new(&out);
        assert_eq!(r.string().unwrap(), &[7u8; 200][..]);
        assert_eq!(r.nullable_string().unwrap(), None);
        assert_eq!(r.nullable_string().unwrap(), Some(&b"hi"[..]));
        assert!(r.is_empty());
        assert!(Reader::new(&[5, 1]).string().is_err());
    }

    #[test]
    fn values_encode_as_clickhouse_reads_them() {
        let mut out = Vec::new();
        value(&Value::Int(-2), ColumnType::Int, &mut out).unwrap();
        assert_eq!(out, [0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let mut out = Vec::new();
        value(&Value::Null, ColumnType::Text, &mut out).unwrap();
        assert_eq!(out, [1]);
        let mut out = Vec::new();
        let u = parse_uuid("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        value(&Value::Uuid(u), ColumnType::Uuid, &mut out).unwrap();
        assert_eq!(out[1..9], [0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00]);
        assert_eq!(out[9..], [0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88]);
        let e = value(&Value::Timestamp(1_500_000), ColumnType::Timestamp, &mut Vec::new()).unwrap_err();
        assert!(e.contains("fraction"), "{e}");
        assert_eq!(parse_text(ColumnType::Timestamp, Some(b"2")).unwrap(), Value::Timestamp(2_000_000));
        assert_eq!(parse_text(ColumnType::Decimal { scale: 2 }, Some(b"12.5")).unwrap(), Value::Decimal(1250));
    }
}
