//! The PostgreSQL bulk path: one binary `COPY … FROM STDIN` per container, streamed, with the
//! row count taken from the servers' `COPY n` tags.

use super::PgBackend;
use super::conn::Conn;
use super::errors::{OpKind, op_error};
use super::records::typed_row;
use super::settings::Settings;
use super::typed::{self, PgValue};
use dedup_lab_core::{BackendError, Namespace, RecordStream};
use std::pin::Pin;
use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;

impl PgBackend {
    pub(super) fn bulk_copy(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.ensure_conn()?;
        let n = usize::from(ns.container_count());
        let cols = ns.schema().map_or_else(|| "k, v".to_string(), typed::column_names);
        let stmts: Vec<String> =
            (0..n).map(|i| format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", self.table(ns, i as u8))).collect();
        let mut extra: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
        let main = &self.conn.as_ref().expect("connected above").client;
        let target = CopyTarget { ns, stmts: &stmts };
        let result = copy_all(&self.rt, &self.s, &self.tls, main, &mut extra, &target, records);
        drop(extra);
        match result {
            Ok(rows) => Ok(rows),
            Err(BulkError::Backend(e)) => Err(e),
            Err(BulkError::Pg { container: 0, op, err }) => Err(self.fail(OpKind::Dml, &op, err)),
            Err(BulkError::Pg { op, err, .. }) => Err(op_error(&self.s, &op, OpKind::Dml, err, None)),
        }
    }
}

/// Why a bulk COPY failed: our own error, or the driver's on the connection of a container.
enum BulkError {
    Backend(BackendError),
    Pg { container: usize, op: String, err: tokio_postgres::Error },
}

impl From<BackendError> for BulkError {
    fn from(e: BackendError) -> Self {
        BulkError::Backend(e)
    }
}

/// What the COPYs write: the namespace (containers, schema) and one statement per container.
struct CopyTarget<'a> {
    ns: &'a Namespace,
    stmts: &'a [String],
}

/// Streams records into one binary COPY per container; container 0 on the main connection,
/// the others on connections opened here (one COPY at a time per connection). Dropping a
/// writer before `finish` aborts its COPY.
fn copy_all(
    rt: &Runtime,
    s: &Settings,
    tls: &MakeRustlsConnect,
    main: &tokio_postgres::Client,
    extra: &mut [Option<Conn>],
    target: &CopyTarget<'_>,
    records: RecordStream<'_>,
) -> Result<u64, BulkError> {
    let (stmts, schema) = (target.stmts, target.ns.schema());
    let types: Vec<Type> = match schema {
        None => vec![Type::TEXT, Type::BYTEA],
        Some(s) => std::iter::once(Type::TEXT).chain(s.columns.iter().map(|c| typed::pg_type(c.ty).1)).collect(),
    };
    let mut writers: Vec<Option<Pin<Box<BinaryCopyInWriter>>>> = stmts.iter().map(|_| None).collect();
    let pg = |container: usize, op: String| move |err| BulkError::Pg { container, op, err };
    for item in records {
        let r = item?;
        let i = target.ns.container_of(&r.id)?;
        if writers[i].is_none() {
            if i > 0 && extra[i].is_none() {
                extra[i] = Some(Conn::open(rt, s, tls)?);
            }
            let client = if i == 0 { main } else { &extra[i].as_ref().expect("opened above").client };
            let sink = rt.block_on(client.copy_in(&stmts[i])).map_err(pg(i, format!("starting {}", stmts[i])))?;
            writers[i] = Some(Box::pin(BinaryCopyInWriter::new(sink, &types)));
        }
        let w = writers[i].as_mut().expect("created above");
        let written = match schema {
            None => {
                let values: [&(dyn ToSql + Sync); 2] = [&r.id.key, &r.data];
                rt.block_on(w.as_mut().write(&values))
            }
            Some(s) => {
                let row = typed_row(s, &r)?;
                let cells: Vec<PgValue<'_>> =
                    s.columns.iter().zip(row).map(|(c, value)| PgValue { value, ty: c.ty }).collect();
                let values: Vec<&(dyn ToSql + Sync)> =
                    std::iter::once(&r.id.key as &(dyn ToSql + Sync)).chain(cells.iter().map(|v| v as _)).collect();
                rt.block_on(w.as_mut().write(&values))
            }
        };
        written.map_err(pg(i, format!("COPY of record {}", r.id.key)))?;
    }
    let mut total = 0;
    for (i, w) in writers.iter_mut().enumerate() {
        if let Some(w) = w {
            total += rt.block_on(w.as_mut().finish()).map_err(pg(i, format!("finishing {}", stmts[i])))?;
        }
    }
    Ok(total)
}
