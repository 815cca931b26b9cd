//! Per-record operations: insert, delete and read one record, and count the lab's rows.
//! Statements are unnamed, with explicit parameter types (`execute_typed`/`query_typed`):
//! nothing is cached on the server, so a dropped and recreated schema cannot collide with or
//! invalidate a prepared statement.

use super::PgBackend;
use super::errors::OpKind;
use super::typed::{self, PgValue, RawValue};
use dedup_lab_core::{BackendError, ErrorClass, Namespace, Record, RecordId, Schema, Value};
use tokio_postgres::types::{ToSql, Type};

impl PgBackend {
    pub(super) fn insert_record(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let t = self.table_of(ns, &r.id)?;
        let Some(schema) = ns.schema() else {
            let sql = format!("INSERT INTO {t} (k, v) VALUES ($1, $2)");
            return self.run(
                OpKind::Dml,
                || format!("inserting {} into {t}", r.id.key),
                async |c| c.execute_typed(&sql, &[(&r.id.key, Type::TEXT), (&r.data, Type::BYTEA)]).await,
            );
        };
        let row = typed_row(schema, r)?;
        let marks: Vec<String> = (1..=schema.columns.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!("INSERT INTO {t} ({}) VALUES ({})", typed::column_names(schema), marks.join(", "));
        let cells: Vec<PgValue<'_>> =
            schema.columns.iter().zip(row).map(|(c, value)| PgValue { value, ty: c.ty }).collect();
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&r.id.key, Type::TEXT)];
        for (c, v) in schema.columns.iter().zip(&cells) {
            params.push((v, typed::pg_type(c.ty).1));
        }
        self.run(
            OpKind::Dml,
            || format!("inserting {} into {t}", r.id.key),
            async |c| c.execute_typed(&sql, &params).await,
        )
    }

    pub(super) fn delete_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let t = self.table_of(ns, id)?;
        let sql = format!("DELETE FROM {t} WHERE k = $1");
        self.run(
            OpKind::Dml,
            || format!("deleting {} from {t}", id.key),
            async |c| c.execute_typed(&sql, &[(&id.key, Type::TEXT)]).await,
        )
    }

    pub(super) fn read_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let t = self.table_of(ns, id)?;
        let Some(schema) = ns.schema() else {
            let sql = format!("SELECT v FROM {t} WHERE k = $1");
            return self.run(
                OpKind::Dml,
                || format!("reading {} from {t}", id.key),
                async |c| {
                    let rows = c.query_typed(&sql, &[(&id.key, Type::TEXT)]).await?;
                    rows.first().map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()
                },
            );
        };
        let names: Vec<String> = schema.columns.iter().map(|c| typed::ident(&c.name)).collect();
        let sql = format!("SELECT {} FROM {t} WHERE k = $1", names.join(", "));
        let raw: Option<Vec<Option<Vec<u8>>>> = self.run(
            OpKind::Dml,
            || format!("reading {} from {t}", id.key),
            async |c| {
                let rows = c.query_typed(&sql, &[(&id.key, Type::TEXT)]).await?;
                rows.first()
                    .map(|r| {
                        (0..schema.columns.len())
                            .map(|j| Ok(r.try_get::<_, Option<RawValue<'_>>>(j)?.map(|v| v.0.to_vec())))
                            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    })
                    .transpose()
            },
        )?;
        let Some(raw) = raw else { return Ok(None) };
        // What the server returned cannot be turned back into the record: a server-side
        // surprise (a type or encoding we do not read), not something we sent.
        let rebuild = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
            BackendError::with_source(format!("{}: rebuilding record {} from {t}: {what}", self.sys(), id.key), e)
                .classed(ErrorClass::Server)
        };
        let mut row = Vec::with_capacity(raw.len());
        for (c, v) in schema.columns.iter().zip(&raw) {
            row.push(typed::decode(c.ty, v.as_deref()).map_err(|e| rebuild(&format!("column {}", c.name), e))?);
        }
        schema.encode(&row).map(Some).map_err(|e| rebuild("encoding", e.into()))
    }

    pub(super) fn count_rows(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut total = 0u64;
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            let sql = format!("SELECT count(*) FROM {t}");
            let n: i64 = self.run(
                OpKind::Dml,
                || format!("counting {t}"),
                async |c| c.query_typed(&sql, &[]).await?.first().map(|r| r.try_get::<_, i64>(0)).unwrap_or(Ok(0)),
            )?;
            total += n.max(0) as u64;
        }
        Ok(total)
    }
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
