//! Per-record operations on the main connection: insert, delete and read one record with
//! prepared statements (the driver caches them per connection; a table dropped and created
//! again is re-prepared by the server), and count the lab's rows.

use super::MariaBackend;
use super::errors::OpKind;
use super::typed;
use dedup_lab_core::{BackendError, ErrorClass, Namespace, Record, RecordId, Schema, Value};
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value as My};

impl MariaBackend {
    pub(super) fn insert_record(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let t = self.table_of(ns, &r.id)?;
        let (sql, params) = match ns.schema() {
            None => (format!("INSERT INTO {t} (k, v) VALUES (?, ?)"), vec![key(&r.id), My::Bytes(r.data.clone())]),
            Some(schema) => {
                let row = typed_row(schema, r)?;
                let marks = vec!["?"; schema.columns.len() + 1].join(", ");
                let mut params = vec![key(&r.id)];
                for (c, v) in schema.columns.iter().zip(row) {
                    params.push(typed::param(v, c.ty, self.server.uuid_native).map_err(|e| {
                        BackendError::with_source(format!("record {}: column {}", r.id.key, c.name), e)
                            .classed(ErrorClass::BadRequest)
                    })?);
                }
                (format!("INSERT INTO {t} ({}) VALUES ({marks})", typed::column_names(schema)), params)
            }
        };
        self.run(
            OpKind::Dml,
            || format!("inserting {} into {t}", r.id.key),
            async |c| {
                c.exec_drop(&sql, Params::Positional(params)).await?;
                Ok(c.affected_rows())
            },
        )
    }

    pub(super) fn delete_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let t = self.table_of(ns, id)?;
        let sql = format!("DELETE FROM {t} WHERE k = ?");
        self.purge_pending = true;
        self.run(
            OpKind::Dml,
            || format!("deleting {} from {t}", id.key),
            async |c| {
                c.exec_drop(&sql, (id.key.as_str(),)).await?;
                Ok(c.affected_rows())
            },
        )
    }

    pub(super) fn read_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let t = self.table_of(ns, id)?;
        let Some(schema) = ns.schema() else {
            let sql = format!("SELECT v FROM {t} WHERE k = ?");
            return self.run(
                OpKind::Dml,
                || format!("reading {} from {t}", id.key),
                async |c| c.exec_first::<Vec<u8>, _, _>(&sql, (id.key.as_str(),)).await,
            );
        };
        let names: Vec<String> = schema.columns.iter().map(|c| typed::ident(&c.name)).collect();
        let sql = format!("SELECT {} FROM {t} WHERE k = ?", names.join(", "));
        let row: Option<Row> = self.run(
            OpKind::Dml,
            || format!("reading {} from {t}", id.key),
            async |c| c.exec_first(&sql, (id.key.as_str(),)).await,
        )?;
        let Some(row) = row else { return Ok(None) };
        // What the server returned cannot be turned back into the record: a server-side
        // surprise (a type or value we do not read), not something we sent.
        let rebuild = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
            BackendError::with_source(format!("{}: rebuilding record {} from {t}: {what}", self.sys(), id.key), e)
                .classed(ErrorClass::Server)
        };
        let values = row.unwrap();
        let mut out = Vec::with_capacity(values.len());
        for (c, v) in schema.columns.iter().zip(values) {
            out.push(typed::decode(c.ty, v).map_err(|e| rebuild(&format!("column {}", c.name), e))?);
        }
        schema.encode(&out).map(Some).map_err(|e| rebuild("encoding", e.into()))
    }

    pub(super) fn count_rows(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut total = 0u64;
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            let sql = format!("SELECT COUNT(*) FROM {t}");
            let n: Option<u64> =
                self.run(OpKind::Dml, || format!("counting {t}"), async |c| c.query_first(&sql).await)?;
            total += n.unwrap_or(0);
        }
        Ok(total)
    }
}

fn key(id: &RecordId) -> My {
    My::Bytes(id.key.as_bytes().to_vec())
}

/// The typed row of a record for a typed table, checked against the schema.
pub(super) fn typed_row<'r>(schema: &Schema, r: &'r Record) -> Result<&'r [Value], BackendError> {
    let row = r.row.as_deref().ok_or_else(|| {
        BackendError::msg(format!(
            "record {} has no typed row, but the lab tables are typed ({})",
            r.id.key, schema.name
        ))
        .classed(ErrorClass::BadRequest)
    })?;
    schema
        .check(row)
        .map_err(|e| BackendError::with_source(format!("record {}", r.id.key), e).classed(ErrorClass::BadRequest))?;
    Ok(row)
}
