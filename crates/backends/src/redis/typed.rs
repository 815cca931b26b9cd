//! Native insertion mode: how a typed record is stored, and read back as its canonical
//! encoding.
//!
//! - A schema of one column (a paragraph of text, a JSON document, a binary chunk) is one
//!   string per record: `SET key <the value>` — text as UTF-8, bytes as they are.
//! - A schema of several columns (`structured_json` lines, `uuid_keys` rows) is one hash per
//!   record: `HSET key <column> <value> …`, each value in its plain text form (integers,
//!   decimals `1234.56`, RFC 3339 timestamps, UUIDs as text, booleans `true`/`false`),
//!   bytes as they are; a NULL column is left out of the hash.
//!
//! `read_one` rebuilds the row from the string or the hash (`HGETALL`) and encodes it with
//! the schema, so a value Redis changed would be caught by the read-back check.

use dedup_lab_core::value::{
    format_decimal, format_float, format_timestamp, format_uuid, parse_decimal, parse_timestamp, parse_uuid,
};
use dedup_lab_core::{BackendError, ColumnType, ErrorClass, Record, Schema, Value};

/// Whether records of `schema` are hashes (else one string each).
pub fn is_hash(schema: &Schema) -> bool {
    schema.columns.len() > 1
}

/// What [`native_storage`](dedup_lab_core::Backend::native_storage) says.
pub fn describe(schema: &Schema) -> String {
    if is_hash(schema) {
        let cols: Vec<String> = schema.columns.iter().map(|c| format!("{} {}", c.name, c.ty.name())).collect();
        format!(
            "one hash per record (HSET of its fields: {}; NULL fields left out), key dedup:<lab>:c<n>:<record>",
            cols.join(", ")
        )
    } else {
        format!(
            "one string per record (SET of its {} value), key dedup:<lab>:c<n>:<record>",
            schema.columns[0].ty.name()
        )
    }
}

fn bad(schema: &Schema, why: String) -> BackendError {
    BackendError::msg(format!("redis: native record of {}: {why}", schema.name)).classed(ErrorClass::BadRequest)
}

/// A value's stored bytes.
fn field(ty: ColumnType, v: &Value) -> Option<Vec<u8>> {
    Some(match v {
        Value::Null => return None,
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Float(f) => format_float(*f)?.into_bytes(),
        Value::Decimal(u) => {
            format_decimal(*u, if let ColumnType::Decimal { scale } = ty { scale } else { 0 }).into_bytes()
        }
        Value::Text(s) | Value::Json(s) => s.clone().into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Timestamp(t) => format_timestamp(*t).into_bytes(),
        Value::Uuid(u) => format_uuid(u).into_bytes(),
        Value::Bytes(b) => b.clone(),
    })
}

/// A value from its stored bytes.
fn value(ty: ColumnType, b: &[u8]) -> Option<Value> {
    let text = || std::str::from_utf8(b).ok();
    Some(match ty {
        ColumnType::Int => Value::Int(text()?.parse().ok()?),
        ColumnType::Float => Value::Float(text()?.parse().ok()?),
        ColumnType::Decimal { scale } => Value::Decimal(parse_decimal(text()?, scale)?),
        ColumnType::Text => Value::Text(text()?.to_string()),
        ColumnType::Json => Value::Json(text()?.to_string()),
        ColumnType::Bool => Value::Bool(text()?.parse().ok()?),
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text()?)?),
        ColumnType::Uuid => Value::Uuid(parse_uuid(text()?)?),
        ColumnType::Bytes => Value::Bytes(b.to_vec()),
    })
}

/// The write command of record `r` under `key`: `SET key value` or `HSET key f v …`.
/// Takes the record by value: a blob's bytes move into the command, uncopied.
pub fn write_command(schema: Option<&Schema>, key: Vec<u8>, r: Record) -> Result<Vec<Vec<u8>>, BackendError> {
    let (Some(schema), Some(row)) = (schema, &r.row) else {
        return Ok(vec![b"SET".to_vec(), key, r.data]);
    };
    schema.check(row).map_err(|e| bad(schema, e.to_string()))?;
    if !is_hash(schema) {
        let v = field(schema.columns[0].ty, &row[0]).ok_or_else(|| bad(schema, "the only column is NULL".into()))?;
        return Ok(vec![b"SET".to_vec(), key, v]);
    }
    let mut cmd = vec![b"HSET".to_vec(), key];
    for (c, v) in schema.columns.iter().zip(row) {
        if let Some(b) = field(c.ty, v) {
            cmd.push(c.name.as_bytes().to_vec());
            cmd.push(b);
        }
    }
    if cmd.len() == 2 {
        return Err(bad(schema, format!("record {} has no non-NULL field (a hash cannot be empty)", r.id.key)));
    }
    Ok(cmd)
}

/// The canonical encoding of the row stored as hash fields `pairs` (`HGETALL`).
pub fn decode_hash(schema: &Schema, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>, BackendError> {
    let mut row = Vec::with_capacity(schema.columns.len());
    for c in &schema.columns {
        match pairs.iter().find(|(f, _)| f == c.name.as_bytes()) {
            None => row.push(Value::Null),
            Some((_, b)) => row.push(value(c.ty, b).ok_or_else(|| {
                bad(schema, format!("field {} holds {:?}, not a {}", c.name, String::from_utf8_lossy(b), c.ty.name()))
            })?),
        }
    }
    schema.encode(&row).map_err(|e| bad(schema, e.to_string()))
}

/// The canonical encoding of a one-column record stored as a string.
pub fn decode_string(schema: &Schema, b: &[u8]) -> Result<Vec<u8>, BackendError> {
    let ty = schema.columns[0].ty;
    let v = value(ty, b).ok_or_else(|| bad(schema, format!("the stored value is not a {}", ty.name())))?;
    schema.encode(&[v]).map_err(|e| bad(schema, e.to_string()))
}
