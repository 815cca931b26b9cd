//! Native insertion mode on the PostgreSQL wire: typed columns for a [`Schema`], and the
//! binary wire format of their values (for COPY, `unnest` arrays and per-record statements)
//! without further driver features.
//!
//! | column type | PostgreSQL | CockroachDB |
//! |---|---|---|
//! | int | `bigint` | `INT8` |
//! | float | `double precision` | `FLOAT8` |
//! | decimal(s) | `numeric(19, s)` | `DECIMAL(19, s)` |
//! | text | `text` | `STRING` |
//! | bool | `boolean` | `BOOL` |
//! | timestamp | `timestamptz` | `TIMESTAMPTZ` |
//! | uuid | `uuid` | `UUID` |
//! | json | `jsonb` | `JSONB` |
//! | bytes | `bytea` | `BYTES` |
//!
//! Reading back decodes the stored binary values into [`Value`]s, so the canonical encoding
//! is rebuilt from what the server holds (a `jsonb` comes back with its keys reordered and
//! spaces added; its canonical form is the one that was sent).

use dedup_lab_core::value::canonicalize_json;
use dedup_lab_core::{ColumnType, Schema, Value};
use std::error::Error;
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The SQL type, the wire type and the wire type of an array of it.
pub fn pg_type(ty: ColumnType) -> (String, Type, Type) {
    match ty {
        ColumnType::Int => ("bigint".into(), Type::INT8, Type::INT8_ARRAY),
        ColumnType::Float => ("double precision".into(), Type::FLOAT8, Type::FLOAT8_ARRAY),
        ColumnType::Decimal { scale } => (format!("numeric(19, {scale})"), Type::NUMERIC, Type::NUMERIC_ARRAY),
        ColumnType::Text => ("text".into(), Type::TEXT, Type::TEXT_ARRAY),
        ColumnType::Bool => ("boolean".into(), Type::BOOL, Type::BOOL_ARRAY),
        ColumnType::Timestamp => ("timestamptz".into(), Type::TIMESTAMPTZ, Type::TIMESTAMPTZ_ARRAY),
        ColumnType::Uuid => ("uuid".into(), Type::UUID, Type::UUID_ARRAY),
        ColumnType::Json => ("jsonb".into(), Type::JSONB, Type::JSONB_ARRAY),
        ColumnType::Bytes => ("bytea".into(), Type::BYTEA, Type::BYTEA_ARRAY),
    }
}

/// Whether values of `ty` are variable-length (TOAST-able), so the variant's storage and
/// compression apply to the column.
pub fn toastable(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Decimal { .. } | ColumnType::Text | ColumnType::Json | ColumnType::Bytes)
}

/// `"name"` (names are validated `[a-z][a-z0-9_]*`; quoted because some, like `user`, are
/// reserved words).
pub fn ident(name: &str) -> String {
    format!("\"{name}\"")
}

/// The column list of a typed table after `k`: `"id" bigint, "user" text, …`.
pub fn column_defs(schema: &Schema) -> String {
    schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), pg_type(c.ty).0)).collect::<Vec<_>>().join(", ")
}

/// `k, "id", "user", …`.
pub fn column_names(schema: &Schema) -> String {
    std::iter::once("k".to_string()).chain(schema.columns.iter().map(|c| ident(&c.name))).collect::<Vec<_>>().join(", ")
}

/// A value of a typed row, sent in the binary format of its column's type.
#[derive(Debug, Clone, Copy)]
pub struct PgValue<'a> {
    pub value: &'a Value,
    pub ty: ColumnType,
}

impl ToSql for PgValue<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self.value {
            Value::Null => return Ok(IsNull::Yes),
            Value::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
            Value::Float(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
            Value::Decimal(u) => {
                let scale = match self.ty {
                    ColumnType::Decimal { scale } => scale,
                    _ => 0,
                };
                out.extend_from_slice(&numeric_bytes(*u, scale));
            }
            Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Bool(b) => out.extend_from_slice(&[u8::from(*b)]),
            Value::Timestamp(us) => {
                let pg = us.checked_sub(PG_EPOCH_US).ok_or("timestamp out of range")?;
                out.extend_from_slice(&pg.to_be_bytes());
            }
            Value::Uuid(u) => out.extend_from_slice(u),
            Value::Json(s) => {
                if *ty == Type::JSONB {
                    out.extend_from_slice(&[1]); // jsonb binary format version
                }
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => out.extend_from_slice(b),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        // The column types come from `pg_type`; the value was checked against them.
        true
    }

    to_sql_checked!();
}

/// A column's raw binary value, whatever its type.
pub struct RawValue<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(RawValue(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A stored binary value (`None`: SQL NULL) back into a value of column type `ty`.
pub fn decode(ty: ColumnType, raw: Option<&[u8]>) -> Result<Value, BoxError> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let be8 = || -> Result<[u8; 8], BoxError> { Ok(raw.try_into().map_err(|_| "expected 8 bytes")?) };
    Ok(match ty {
        ColumnType::Int => Value::Int(i64::from_be_bytes(be8()?)),
        ColumnType::Float => Value::Float(f64::from_bits(u64::from_be_bytes(be8()?))),
        ColumnType::Decimal { scale } => Value::Decimal(numeric_unscaled(raw, scale)?),
        ColumnType::Text => Value::Text(std::str::from_utf8(raw)?.to_string()),
        ColumnType::Bool => Value::Bool(raw.first().ok_or("empty boolean")? != &0),
        ColumnType::Timestamp => {
            Value::Timestamp(i64::from_be_bytes(be8()?).checked_add(PG_EPOCH_US).ok_or("timestamp out of range")?)
        }
        ColumnType::Uuid => Value::Uuid(raw.try_into().map_err(|_| "expected 16 bytes")?),
        ColumnType::Json => {
            // jsonb: a version byte (1) and the text; json: the text.
            let text = match raw.split_first() {
                Some((1, rest)) => rest,
                _ => raw,
            };
            Value::Json(canonicalize_json(std::str::from_utf8(text)?)?)
        }
        ColumnType::Bytes => Value::Bytes(raw.to_vec()),
    })
}

const NUMERIC_NEG: u16 = 0x4000;

/// The binary `numeric` of the unscaled integer `unscaled` at `scale` fraction digits:
/// ndigits, weight, sign, dscale, then base-10000 digits, most significant first.
pub fn numeric_bytes(unscaled: i64, scale: u8) -> Vec<u8> {
    let pad = (4 - u32::from(scale) % 4) % 4;
    let frac_groups = (u32::from(scale) + pad) as usize / 4;
    let mut abs = i128::from(unscaled).unsigned_abs() * 10u128.pow(pad);
    let mut digits: Vec<i16> = Vec::new(); // least significant first
    while abs > 0 {
        digits.push((abs % 10_000) as i16);
        abs /= 10_000;
    }
    while digits.len() < frac_groups {
        digits.push(0);
    }
    digits.reverse();
    let mut weight = digits.len() as i32 - frac_groups as i32 - 1;
    let lead = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..lead);
    weight -= lead as i32;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let sign = if unscaled < 0 { NUMERIC_NEG } else { 0 };
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&u16::from(scale).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// The unscaled integer at `scale` of a binary `numeric`.
pub fn numeric_unscaled(raw: &[u8], scale: u8) -> Result<i64, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        Ok(u16::from_be_bytes(raw.get(2 * i..2 * i + 2).ok_or("short numeric")?.try_into().expect("2 bytes")))
    };
    let (ndigits, weight, sign) = (word(0)? as usize, word(1)? as i16, word(2)?);
    if sign != 0 && sign != NUMERIC_NEG {
        return Err("numeric is NaN or infinite".into());
    }
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let d = i128::from(word(4 + i)?);
        acc = acc.checked_mul(10_000).and_then(|a| a.checked_add(d)).ok_or("numeric overflow")?;
    }
    // acc × 10000^(weight − ndigits + 1) is the number; × 10^scale is the unscaled integer.
    let exp10 = 4 * (i32::from(weight) - ndigits as i32 + 1) + i32::from(scale);
    if exp10 >= 0 {
        acc = acc.checked_mul(10i128.checked_pow(exp10 as u32).ok_or("numeric overflow")?).ok_or("numeric overflow")?;
    } else {
        let div = 10i128.checked_pow((-exp10) as u32).ok_or("numeric underflow")?;
        if acc % div != 0 {
            return Err(format!("numeric has more than {scale} fraction digits").into());
        }
        acc /= div;
    }
    if sign == NUMERIC_NEG {
        acc = -acc;
    }
    Ok(i64::try_from(acc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_round_trip() {
        for (u, scale, ndigits, weight) in [
            (123_456i64, 2u8, 2i16, 0i16), // 1234.56: [1234, 5600]
            (5, 2, 1, -1),                 // 0.05: [500]
            (5, 8, 1, -2),                 // 0.00000005: [5]
            (700, 2, 1, 0),                // 7.00: [7]
            (0, 2, 0, 0),
            (-123_456, 2, 2, 0),
            (123_456_789_012, 0, 3, 2),
            (i64::MAX, 2, 6, 4),
            (i64::MIN, 18, 6, 0),
        ] {
            let b = numeric_bytes(u, scale);
            assert_eq!(i16::from_be_bytes([b[0], b[1]]), ndigits, "{u} at {scale}");
            assert_eq!(i16::from_be_bytes([b[2], b[3]]), weight, "{u} at {scale}");
            assert_eq!(u16::from_be_bytes([b[6], b[7]]), u16::from(scale));
            assert_eq!(numeric_unscaled(&b, scale).unwrap(), u, "{u} at {scale}");
        }
        // 1.234 does not fit scale 2.
        assert!(numeric_unscaled(&numeric_bytes(1234, 3), 2).is_err());
        assert_eq!(numeric_unscaled(&numeric_bytes(1230, 3), 2).unwrap(), 123);
    }

    #[test]
    fn jsonb_reads_back_canonical() {
        let mut raw = vec![1u8];
        raw.extend_from_slice(br#"{"b": 12.50, "a": [1, 2]}"#);
        assert_eq!(decode(ColumnType::Json, Some(&raw)).unwrap(), Value::Json(r#"{"a":[1,2],"b":12.5}"#.into()));
        assert_eq!(decode(ColumnType::Text, None).unwrap(), Value::Null);
    }
}
