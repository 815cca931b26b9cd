//! The streaming parsers behind [`Format::parse`].

use super::{Format, NativeError, NativeRecord};
use dedup_lab_core::value::{canonical_json, parse_timestamp, parse_uuid};
use dedup_lab_core::{ColumnType, Schema, Value};
use std::io::{BufRead, Read};

/// The records of one file, one at a time.
pub struct Records<R: BufRead> {
    format: Format,
    schema: Schema,
    file: String,
    reader: R,
    /// Lines read so far.
    line: u64,
    ordinal: u64,
    /// A paragraph being collected, and the line it started on.
    paragraph: Vec<u8>,
    paragraph_line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Records<R> {
    pub(super) fn new(format: Format, file: &str, reader: R) -> Records<R> {
        Records {
            format,
            schema: format.schema(),
            file: file.to_string(),
            reader,
            line: 0,
            ordinal: 0,
            paragraph: Vec::new(),
            paragraph_line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    fn error(&self, line: u64, message: impl Into<String>) -> NativeError {
        NativeError { file: self.file.clone(), line, message: message.into() }
    }

    /// The next line into `self.buf` (with its `\n`, if any); false at the end.
    fn read_line(&mut self) -> Result<bool, NativeError> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| self.error(self.line + 1, e.to_string()))?;
        if n > 0 {
            self.line += 1;
        }
        Ok(n > 0)
    }

    fn record(&mut self, line: u64, row: Result<Vec<Value>, String>) -> Result<NativeRecord, NativeError> {
        let ordinal = self.ordinal;
        self.ordinal += 1;
        match row {
            Ok(row) => Ok(NativeRecord { ordinal, line, row }),
            Err(why) => Err(self.error(line, why)),
        }
    }

    /// Reads up to the next line that is not blank (blank lines hold no record) into `buf`;
    /// false at the end of the file.
    fn next_nonblank_line(&mut self) -> Result<bool, NativeError> {
        while self.read_line()? {
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn next_json_line(&mut self) -> Option<Result<NativeRecord, NativeError>> {
        match self.next_nonblank_line() {
            Ok(true) => Some(self.record(self.line, json_row(&self.schema, &self.buf))),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn next_uuid_line(&mut self) -> Option<Result<NativeRecord, NativeError>> {
        match self.next_nonblank_line() {
            Ok(true) => Some(self.record(self.line, uuid_row(&self.buf))),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Paragraphs are the pieces between `\n\n` separators (found left to right, without
    /// overlap), empty pieces left out: exactly what `text.split("\n\n")` gives, read line
    /// by line.
    fn next_paragraph(&mut self) -> Option<Result<NativeRecord, NativeError>> {
        loop {
            let more = match self.read_line() {
                Ok(more) => more,
                Err(e) => return Some(Err(e)),
            };
            let piece = if !more {
                self.done = true;
                std::mem::take(&mut self.paragraph)
            } else if self.buf == b"\n" && self.paragraph.last() == Some(&b'\n') {
                let mut p = std::mem::take(&mut self.paragraph);
                p.pop();
                p
            } else {
                if self.paragraph.is_empty() {
                    self.paragraph_line = self.line;
                }
                self.paragraph.extend_from_slice(&self.buf);
                continue;
            };
            if piece.is_empty() {
                if self.done {
                    return None;
                }
                continue;
            }
            let start = self.paragraph_line;
            let row = match String::from_utf8(piece) {
                Ok(text) => Ok(vec![Value::Text(text)]),
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let bytes = e.as_bytes();
                    let line = start + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
                    let column = at - bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
                    let ordinal = self.ordinal;
                    self.ordinal += 1;
                    return Some(Err(self.error(
                        line,
                        format!("invalid UTF-8 at byte {column} of the line (paragraph {} of the file)", ordinal + 1),
                    )));
                }
            };
            return Some(self.record(start, row));
        }
    }

    fn next_document(&mut self) -> Option<Result<NativeRecord, NativeError>> {
        self.done = true;
        let mut all = Vec::new();
        if let Err(e) = self.reader.read_to_end(&mut all) {
            return Some(Err(self.error(0, e.to_string())));
        }
        if all.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        self.ordinal = 1;
        match serde_json::from_slice::<serde_json::Value>(&all) {
            Ok(v) => Some(Ok(NativeRecord { ordinal: 0, line: 1, row: vec![Value::Json(canonical_json(&v))] })),
            Err(e) => Some(Err(self.error(e.line() as u64, format!("malformed JSON document: {e}")))),
        }
    }

    fn next_chunk(&mut self, size: usize) -> Option<Result<NativeRecord, NativeError>> {
        let mut chunk = Vec::with_capacity(size);
        match (&mut self.reader).take(size as u64).read_to_end(&mut chunk) {
            Ok(0) => None,
            Ok(_) => {
                let ordinal = self.ordinal;
                self.ordinal += 1;
                Some(Ok(NativeRecord { ordinal, line: 0, row: vec![Value::Bytes(chunk)] }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(self.error(0, format!("read error at chunk {}: {e}", self.ordinal))))
            }
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<NativeRecord, NativeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.format {
            Format::StructuredJson { .. } => self.next_json_line(),
            Format::JsonDocument => self.next_document(),
            Format::TextParagraphs => self.next_paragraph(),
            Format::UuidLines => self.next_uuid_line(),
            Format::BinaryChunks { size } => self.next_chunk(size),
        }
    }
}

/// A flat JSON object into a row of `schema`: missing and `null` fields are NULL; a field
/// the schema does not have is an error (it would be lost).
fn json_row(schema: &Schema, line: &[u8]) -> Result<Vec<Value>, String> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("malformed JSON: {e}"))?;
    let serde_json::Value::Object(mut obj) = v else {
        return Err(format!("expected a JSON object, found {}", json_kind(&v)));
    };
    let mut row = Vec::with_capacity(schema.columns.len());
    for c in &schema.columns {
        let value = match obj.remove(&c.name) {
            None | Some(serde_json::Value::Null) => Value::Null,
            Some(v) => json_value(c.ty, &v).map_err(|why| format!("field {:?}: {why}", c.name))?,
        };
        row.push(value);
    }
    if let Some(extra) = obj.keys().next() {
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        return Err(format!("unknown field {extra:?} (the {} schema has: {})", schema.name, names.join(", ")));
    }
    Ok(row)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_value(ty: ColumnType, v: &serde_json::Value) -> Result<Value, String> {
    let wrong = |want: &str| format!("expected {want}, found {}", json_kind(v));
    Ok(match ty {
        ColumnType::Int => Value::Int(v.as_i64().ok_or_else(|| wrong("an integer"))?),
        ColumnType::Float => Value::Float(v.as_f64().ok_or_else(|| wrong("a number"))?),
        ColumnType::Decimal { scale } => {
            let p = 10i64.pow(u32::from(scale));
            if let Some(i) = v.as_i64() {
                Value::Decimal(i.checked_mul(p).ok_or_else(|| format!("{i} is out of range"))?)
            } else {
                let f = v.as_f64().ok_or_else(|| wrong("a number"))?;
                let u = (f * p as f64).round();
                // Exact when the number has at most `scale` decimals: then u / 10^scale is
                // the double nearest to the literal, which is what parsing it gave.
                if u.abs() >= 2f64.powi(53) || u / p as f64 != f {
                    return Err(format!("{v} does not fit a decimal with {scale} fraction digits"));
                }
                Value::Decimal(u as i64)
            }
        }
        ColumnType::Text => Value::Text(v.as_str().ok_or_else(|| wrong("a string"))?.to_string()),
        ColumnType::Bool => Value::Bool(v.as_bool().ok_or_else(|| wrong("a boolean"))?),
        ColumnType::Timestamp => {
            let s = v.as_str().ok_or_else(|| wrong("a timestamp string"))?;
            Value::Timestamp(
                parse_timestamp(s)
                    .ok_or_else(|| format!("{s:?} is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)"))?,
            )
        }
        ColumnType::Uuid => {
            let s = v.as_str().ok_or_else(|| wrong("a UUID string"))?;
            Value::Uuid(parse_uuid(s).ok_or_else(|| format!("{s:?} is not a UUID"))?)
        }
        ColumnType::Json => Value::Json(canonical_json(v)),
        ColumnType::Bytes => return Err("bytes columns cannot come from JSON".into()),
    })
}

/// `<uuid>,<integer>` (trailing spaces are padding and ignored).
fn uuid_row(line: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1))?;
    let text = text.trim_end_matches(['\n', '\r', ' ']);
    let Some((key, value)) = text.split_once(',') else {
        return Err(format!("expected `<uuid>,<value>`, found {:?}", truncate(text)));
    };
    let key = parse_uuid(key).ok_or_else(|| format!("{:?} is not a UUID", truncate(key)))?;
    let value: i64 = value.parse().map_err(|_| format!("value {:?} is not an integer", truncate(value)))?;
    Ok(vec![Value::Uuid(key), Value::Int(value)])
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
