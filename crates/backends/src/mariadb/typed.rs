//! Native insertion mode on MariaDB: typed columns for a [`Schema`], the text form of each
//! value (what `LOAD DATA` reads and what a SQL literal holds), the parameter of a prepared
//! statement, and the way back from what the server returns.
//!
//! | column type | MariaDB |
//! |---|---|
//! | int | `BIGINT` |
//! | float | `DOUBLE` |
//! | decimal(s) | `DECIMAL(19, s)` |
//! | text | `LONGTEXT` (utf8mb4, binary collation) |
//! | bool | `BOOLEAN` |
//! | timestamp | `DATETIME(6)` (UTC wall time) |
//! | uuid | `UUID` (MariaDB 10.7+), otherwise `BINARY(16)` |
//! | json | `JSON` (MariaDB: `LONGTEXT` checked by `JSON_VALID`) |
//! | bytes | `LONGBLOB` |
//!
//! The key column is `k VARCHAR(64)` (ASCII, binary collation) in every table. Reading back
//! decodes the stored values into [`Value`]s, so the record's canonical encoding is rebuilt
//! from what the server holds.

use dedup_lab_core::value::{canonicalize_json, format_decimal, format_float, format_timestamp, format_uuid};
use dedup_lab_core::value::{parse_decimal, parse_timestamp, parse_uuid};
use dedup_lab_core::{ColumnType, Schema, Value};
use mysql_async::Value as My;
use std::borrow::Cow;
use std::error::Error;

type BoxError = Box<dyn Error + Sync + Send>;

/// The key column of every lab table.
pub const KEY_COLUMN: &str = "k VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY";

/// The SQL type of a column; `uuid_native`: the server has the `UUID` type.
pub fn sql_type(ty: ColumnType, uuid_native: bool) -> String {
    match ty {
        ColumnType::Int => "BIGINT".into(),
        ColumnType::Float => "DOUBLE".into(),
        ColumnType::Decimal { scale } => format!("DECIMAL(19, {scale})"),
        ColumnType::Text => "LONGTEXT".into(),
        ColumnType::Bool => "BOOLEAN".into(),
        ColumnType::Timestamp => "DATETIME(6)".into(),
        ColumnType::Uuid if uuid_native => "UUID".into(),
        ColumnType::Uuid => "BINARY(16)".into(),
        ColumnType::Json => "JSON".into(),
        ColumnType::Bytes => "LONGBLOB".into(),
    }
}

/// `` `name` `` (names are validated `[a-z][a-z0-9_]*`; quoted because some are keywords).
pub fn ident(name: &str) -> String {
    format!("`{name}`")
}

/// The columns of a typed table after `k`: `` `id` BIGINT, `user` LONGTEXT, … ``.
pub fn column_defs(schema: &Schema, uuid_native: bool) -> String {
    schema
        .columns
        .iter()
        .map(|c| format!("{} {}", ident(&c.name), sql_type(c.ty, uuid_native)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `` k, `id`, `user`, … ``.
pub fn column_names(schema: &Schema) -> String {
    std::iter::once("k".to_string()).chain(schema.columns.iter().map(|c| ident(&c.name))).collect::<Vec<_>>().join(", ")
}

/// Whether the text form of `ty` is a number (unquoted in SQL).
pub fn numeric(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Int | ColumnType::Float | ColumnType::Decimal { .. } | ColumnType::Bool)
}

/// Whether the text form of `ty` is raw bytes (a `_binary` literal in SQL).
pub fn binary(ty: ColumnType, uuid_native: bool) -> bool {
    matches!(ty, ColumnType::Bytes) || (ty == ColumnType::Uuid && !uuid_native)
}

/// `2021-03-04 05:06:07.5` (DATETIME's spelling of a UTC instant).
fn datetime(micros: i64) -> String {
    let s = format_timestamp(micros);
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// The text of a value as the server reads it from `LOAD DATA` or a string literal; `None`
/// for NULL. Floats are written in full (`format_float`), which parses back to the same bits.
pub fn text_form(v: &Value, ty: ColumnType, uuid_native: bool) -> Result<Option<Cow<'_, [u8]>>, BoxError> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        Value::Float(f) => Cow::Owned(format_float(*f).ok_or("a float is not finite")?.into_bytes()),
        Value::Decimal(u) => {
            let scale = match ty {
                ColumnType::Decimal { scale } => scale,
                _ => 0,
            };
            Cow::Owned(format_decimal(*u, scale).into_bytes())
        }
        Value::Text(s) | Value::Json(s) => Cow::Borrowed(s.as_bytes()),
        Value::Bool(b) => Cow::Borrowed(if *b { b"1" } else { b"0" }),
        Value::Timestamp(t) => Cow::Owned(datetime(*t).into_bytes()),
        Value::Uuid(u) if uuid_native => Cow::Owned(format_uuid(u).into_bytes()),
        Value::Uuid(u) => Cow::Borrowed(&u[..]),
        Value::Bytes(b) => Cow::Borrowed(&b[..]),
    }))
}

/// A value as the parameter of a prepared statement.
pub fn param(v: &Value, ty: ColumnType, uuid_native: bool) -> Result<My, BoxError> {
    Ok(match v {
        Value::Null => My::NULL,
        Value::Int(i) => My::Int(*i),
        Value::Float(f) => My::Double(*f),
        Value::Bool(b) => My::Int(i64::from(*b)),
        Value::Bytes(b) => My::Bytes(b.clone()),
        other => My::Bytes(text_form(other, ty, uuid_native)?.map(Cow::into_owned).unwrap_or_default()),
    })
}

/// A stored value, as the binary protocol returns it, back into a value of column type `ty`.
pub fn decode(ty: ColumnType, v: My) -> Result<Value, BoxError> {
    let text = |b: Vec<u8>| -> Result<String, BoxError> { Ok(String::from_utf8(b)?) };
    Ok(match (ty, v) {
        (_, My::NULL) => Value::Null,
        (ColumnType::Int, My::Int(i)) => Value::Int(i),
        (ColumnType::Int, My::UInt(u)) => Value::Int(i64::try_from(u)?),
        (ColumnType::Float, My::Double(f)) => Value::Float(f),
        (ColumnType::Float, My::Float(f)) => Value::Float(f64::from(f)),
        (ColumnType::Bool, My::Int(i)) => Value::Bool(i != 0),
        (ColumnType::Decimal { scale }, My::Bytes(b)) => {
            let s = text(b)?;
            Value::Decimal(parse_decimal(&s, scale).ok_or_else(|| format!("DECIMAL {s:?} does not fit scale {scale}"))?)
        }
        (ColumnType::Text, My::Bytes(b)) => Value::Text(text(b)?),
        (ColumnType::Json, My::Bytes(b)) => Value::Json(canonicalize_json(&text(b)?)?),
        (ColumnType::Bytes, My::Bytes(b)) => Value::Bytes(b),
        (ColumnType::Uuid, My::Bytes(b)) if b.len() == 16 => Value::Uuid(b.try_into().expect("16 bytes")),
        (ColumnType::Uuid, My::Bytes(b)) => {
            let s = text(b)?;
            Value::Uuid(parse_uuid(&s).ok_or_else(|| format!("not a UUID: {s:?}"))?)
        }
        (ColumnType::Timestamp, My::Date(y, mo, d, h, mi, s, us)) => {
            let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z");
            Value::Timestamp(parse_timestamp(&t).ok_or_else(|| format!("not a valid DATETIME: {t}"))?)
        }
        (ty, v) => return Err(format!("a {} column returned {v:?}", ty.name()).into()),
    })
}

/// Appends `field` to a `LOAD DATA` line (fields end in `\t`, lines in `\n`, `\` escapes):
/// the three special bytes get a `\` before them, so any bytes come through unchanged.
pub fn push_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    let Some(field) = field else {
        out.extend_from_slice(b"\\N");
        return;
    };
    let mut start = 0;
    for (i, &b) in field.iter().enumerate() {
        if matches!(b, b'\t' | b'\n' | b'\\') {
            out.extend_from_slice(&field[start..i]);
            out.push(b'\\');
            start = i;
        }
    }
    out.extend_from_slice(&field[start..]);
}

/// Appends a SQL literal of a value's text form: a number as it is, text as `'…'`, bytes
/// as `_binary'…'`, NULL as `NULL` (backslash escapes; the session's `sql_mode` never has
/// `NO_BACKSLASH_ESCAPES`).
pub fn push_literal(out: &mut Vec<u8>, text: Option<&[u8]>, ty: Option<ColumnType>, uuid_native: bool) {
    let Some(text) = text else {
        out.extend_from_slice(b"NULL");
        return;
    };
    if ty.is_some_and(numeric) {
        out.extend_from_slice(text);
        return;
    }
    if ty.is_none_or(|t| binary(t, uuid_native)) {
        out.extend_from_slice(b"_binary");
    }
    out.push(b'\'');
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let esc: &[u8] = match b {
            0 => b"\\0",
            b'\'' => b"\\'",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0x1a => b"\\Z",
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_only_the_special_bytes() {
        let mut out = Vec::new();
        push_field(&mut out, Some(b"a\tb\\c\nd\0e"));
        out.push(b'\t');
        push_field(&mut out, None);
        assert_eq!(out, b"a\\\tb\\\\c\\\nd\0e\t\\N");
    }

    #[test]
    fn literals() {
        let lit = |text: Option<&[u8]>, ty| {
            let mut out = Vec::new();
            push_literal(&mut out, text, ty, true);
            String::from_utf8_lossy(&out).into_owned()
        };
        assert_eq!(lit(Some(b"it's\\\0\x1a\n\r"), Some(ColumnType::Text)), r"'it\'s\\\0\Z\n\r'");
        assert_eq!(lit(Some(b"12.5"), Some(ColumnType::Decimal { scale: 2 })), "12.5");
        assert_eq!(lit(Some(b"ab"), None), "_binary'ab'");
        assert_eq!(lit(None, Some(ColumnType::Int)), "NULL");
    }

    #[test]
    fn values_round_trip_through_their_server_forms() {
        let t = 1_614_834_367_000_001;
        assert_eq!(datetime(t), "2021-03-04 05:06:07.000001");
        let back = decode(ColumnType::Timestamp, My::Date(2021, 3, 4, 5, 6, 7, 1)).unwrap();
        assert_eq!(back, Value::Timestamp(t));
        assert_eq!(datetime(-1_000_001), "1969-12-31 23:59:58.999999");
        let d = decode(ColumnType::Decimal { scale: 2 }, My::Bytes(b"-0.05".to_vec())).unwrap();
        assert_eq!(d, Value::Decimal(-5));
        let u = [7u8; 16];
        let uuid = Value::Uuid(u);
        let text = text_form(&uuid, ColumnType::Uuid, true).unwrap().unwrap().into_owned();
        assert_eq!(decode(ColumnType::Uuid, My::Bytes(text)).unwrap(), uuid);
        assert_eq!(decode(ColumnType::Uuid, My::Bytes(u.to_vec())).unwrap(), Value::Uuid(u));
        let j = decode(ColumnType::Json, My::Bytes(br#"{"b": 1.50, "a": [1]}"#.to_vec())).unwrap();
        assert_eq!(j, Value::Json(r#"{"a":[1],"b":1.5}"#.into()));
        assert!(decode(ColumnType::Int, My::Bytes(b"x".to_vec())).is_err());
    }
}
