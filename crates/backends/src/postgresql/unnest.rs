//! The CockroachDB bulk path (and PostgreSQL's with `bulk = unnest`): records grouped per
//! container by the shared [`Batcher`] (rows and bytes per batch), each batch one
//! `INSERT … SELECT * FROM unnest($1::text[], …)` with one array per column.

use super::PgBackend;
use super::errors::OpKind;
use super::records::typed_row;
use super::typed::{self, PgValue};
use crate::net::batch::Batcher;
use dedup_lab_core::{BackendError, Namespace, Record, RecordStream, Schema};
use tokio_postgres::types::{ToSql, Type};

impl PgBackend {
    pub(super) fn bulk_unnest(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let n = usize::from(ns.container_count());
        let (cols, arrays) = match ns.schema() {
            None => ("k, v".to_string(), format!("$1::text[], $2::{}[]", self.value_column.sql())),
            Some(s) => {
                let arrays: Vec<String> = std::iter::once("$1::text[]".to_string())
                    .chain(
                        s.columns.iter().enumerate().map(|(j, c)| format!("${}::{}[]", j + 2, typed::pg_type(c.ty).0)),
                    )
                    .collect();
                (typed::column_names(s), arrays.join(", "))
            }
        };
        let sql: Vec<String> = (0..n)
            .map(|i| format!("INSERT INTO {} ({cols}) SELECT * FROM unnest({arrays})", self.table(ns, i as u8)))
            .collect();
        let mut batcher = Batcher::new(n, self.s.batch_rows, self.s.batch_bytes);
        let mut total = 0u64;
        for item in records {
            let r = item?;
            let i = ns.container_of(&r.id)?;
            let bytes = r.id.key.len() + r.data.len();
            if let Some(batch) = batcher.push(i, r, bytes) {
                total += self.insert_batch(&sql[batch.container], ns.schema(), &batch.items)?;
            }
        }
        for batch in batcher.finish() {
            total += self.insert_batch(&sql[batch.container], ns.schema(), &batch.items)?;
        }
        Ok(total)
    }

    /// One `INSERT … SELECT * FROM unnest(…)` of `batch`: one array per column.
    fn insert_batch(&mut self, sql: &str, schema: Option<&Schema>, batch: &[Record]) -> Result<u64, BackendError> {
        let first = batch.first().map(|r| r.id.key.clone()).unwrap_or_default();
        let n = batch.len();
        let keys: Vec<&str> = batch.iter().map(|r| r.id.key.as_str()).collect();
        let Some(schema) = schema else {
            let vals: Vec<&[u8]> = batch.iter().map(|r| r.data.as_slice()).collect();
            return self.run(
                OpKind::Dml,
                || format!("bulk insert of {n} rows from {first}"),
                async |c| c.execute_typed(sql, &[(&keys, Type::TEXT_ARRAY), (&vals, Type::BYTEA_ARRAY)]).await,
            );
        };
        let rows = batch.iter().map(|r| typed_row(schema, r)).collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<Vec<PgValue<'_>>> = schema
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| rows.iter().map(|row| PgValue { value: &row[j], ty: c.ty }).collect())
            .collect();
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&keys, Type::TEXT_ARRAY)];
        for (c, col) in schema.columns.iter().zip(&columns) {
            params.push((col, typed::pg_type(c.ty).2));
        }
        self.run(
            OpKind::Dml,
            || format!("bulk insert of {n} rows from {first}"),
            async |c| c.execute_typed(sql, &params).await,
        )
    }
}
