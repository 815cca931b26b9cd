//! The bulk paths: a streamed `LOAD DATA LOCAL INFILE` per container, and batched
//! multi-row `INSERT` where the server forbids local infile (or `bulk = "insert"`).
//!
//! # Streaming without a temporary file
//! Each container's `LOAD DATA LOCAL INFILE` runs on its own connection (the main one for
//! `c0`, a fresh one for each further container), inside a transaction. The driver asks the
//! connection's infile handler for the data when the server requests the "file"; the
//! handler hands over the receiving end of a small bounded channel. One task on the
//! backend's current-thread runtime polls every lane's statement and, whenever a channel
//! has room, pulls the next record from the iterator, encodes it as a line (`\t` between
//! fields, `\n` at the end, `\` before those bytes and before itself in the data) and
//! queues it for its container. At most [`QUEUE`] chunks of about [`CHUNK`] bytes wait per
//! container, so memory stays bounded whatever the dataset size.
//!
//! The rows each statement inserted are the server's own count (`affected_rows`). A record
//! stream that fails, a record outside the namespace, a statement that fails, or a `LOAD
//! DATA` that reports warnings (MariaDB turns some errors into warnings for `LOCAL`, e.g. a
//! duplicate key is skipped) rolls every lane back: a failed bulk insert leaves nothing.

use super::MariaBackend;
use super::conn::{close, opts};
use super::errors::{OpKind, connect_error, connect_timeout_error, is_lost, op_error};
use super::records::typed_row;
use super::settings::{BulkPath, SslMode};
use super::typed;
use crate::net::batch::Batcher;
use bytes::Bytes;
use dedup_lab_core::{BackendError, ErrorClass, Namespace, Record, RecordStream, Schema, format_bytes};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error as MyError, Opts};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes gathered into one chunk of a lane's stream (a larger record is one chunk).
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait in a lane's channel.
const QUEUE: usize = 8;

/// The receiving end of a lane, as the driver reads the "file".
struct Infile(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Infile {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// How one lane's statement ended.
enum LaneError {
    Connect(MyError),
    ConnectTimeout,
    Query(MyError),
}

struct Loaded {
    rows: u64,
    warnings: Vec<String>,
}

type LaneOutput = (Option<Conn>, Result<Loaded, LaneError>);

/// One container's `LOAD DATA`: connect if needed, start a transaction, load from `rx`.
async fn load_lane(
    conn: Option<Conn>,
    opts: Opts,
    timeout: Duration,
    sql: String,
    rx: mpsc::Receiver<Bytes>,
) -> LaneOutput {
    let mut conn = match conn {
        Some(c) => c,
        None => match tokio::time::timeout(timeout, Conn::new(opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return (None, Err(LaneError::Connect(e))),
            Err(_) => return (None, Err(LaneError::ConnectTimeout)),
        },
    };
    let result = async {
        conn.query_drop("START TRANSACTION").await?;
        conn.set_infile_handler(async move { Ok(Box::pin(Infile(rx)) as mysql_async::InfileData) });
        conn.query_drop(sql).await?;
        let rows = conn.affected_rows();
        let warnings = if conn.get_warnings() > 0 {
            let w: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS LIMIT 3").await?;
            w.into_iter().map(|(level, code, msg)| format!("{level} {code}: {msg}")).collect()
        } else {
            Vec::new()
        };
        Ok::<_, MyError>(Loaded { rows, warnings })
    }
    .await;
    (Some(conn), result.map_err(LaneError::Query))
}

/// One container's stream: its channel, the line being gathered, the statement.
struct Lane {
    tx: Option<mpsc::Sender<Bytes>>,
    buf: Vec<u8>,
    fut: Option<Pin<Box<dyn Future<Output = LaneOutput>>>>,
    done: Option<LaneOutput>,
}

/// What the record encoder needs to know.
struct Encoder<'a> {
    schema: Option<&'a Schema>,
    uuid_native: bool,
}

impl Encoder<'_> {
    /// Appends `r` as one line.
    fn line(&self, out: &mut Vec<u8>, r: &Record) -> Result<(), BackendError> {
        typed::push_field(out, Some(r.id.key.as_bytes()));
        match self.schema {
            None => {
                out.push(b'\t');
                typed::push_field(out, Some(&r.data));
            }
            Some(s) => {
                for (c, v) in s.columns.iter().zip(typed_row(s, r)?) {
                    out.push(b'\t');
                    let text = typed::text_form(v, c.ty, self.uuid_native).map_err(|e| {
                        BackendError::with_source(format!("record {}: column {}", r.id.key, c.name), e)
                            .classed(ErrorClass::BadRequest)
                    })?;
                    typed::push_field(out, text.as_deref());
                }
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

/// The column list (and `SET` clause) of a `LOAD DATA`. The data is read as `binary`, so
/// that any bytes pass unchanged; a `UUID` column would take a binary string for the
/// 16-byte form, so its text goes through a variable and `CONVERT(… USING ascii)`.
fn load_columns(schema: Option<&Schema>, uuid_native: bool) -> String {
    let Some(schema) = schema else { return "(k, v)".into() };
    let mut cols = vec!["k".to_string()];
    let mut set = Vec::new();
    for (j, c) in schema.columns.iter().enumerate() {
        if c.ty == dedup_lab_core::ColumnType::Uuid && uuid_native {
            cols.push(format!("@u{j}"));
            set.push(format!("{} = CONVERT(@u{j} USING ascii)", typed::ident(&c.name)));
        } else {
            cols.push(typed::ident(&c.name));
        }
    }
    let set = if set.is_empty() { String::new() } else { format!(" SET {}", set.join(", ")) };
    format!("({}){set}", cols.join(", "))
}

impl MariaBackend {
    pub(super) fn bulk(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        if self.s.bulk == BulkPath::Insert {
            return self.bulk_batches(ns, records, "bulk = \"insert\" is configured");
        }
        let local_infile: Option<i64> = self.run(
            OpKind::Admin,
            || "reading @@local_infile".into(),
            async |c| c.query_first("SELECT @@GLOBAL.local_infile").await,
        )?;
        if local_infile == Some(0) {
            return self.bulk_batches(ns, records, "the server forbids LOAD DATA LOCAL INFILE (local_infile=OFF)");
        }
        self.bulk_load(ns, records)
    }

    fn bulk_load(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.ensure_conn()?;
        let n = usize::from(ns.container_count());
        let cols = load_columns(ns.schema(), self.server.uuid_native);
        let tables: Vec<String> = (0..n).map(|i| self.table(ns, i as u8)).collect();
        let stmts: Vec<String> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "LOAD DATA LOCAL INFILE 'dedup-lab-stream-{i}' INTO TABLE {t} CHARACTER SET binary FIELDS \
                     TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' {cols}"
                )
            })
            .collect();
        let enc = Encoder { schema: ns.schema(), uuid_native: self.server.uuid_native };
        let mode = if self.plain_only { SslMode::Disable } else { self.s.tls.mode };
        let extra_opts = opts(&self.s, mode);
        let timeout = self.s.connect_timeout;
        let mut main = self.conn.take();
        let mut lanes: Vec<Lane> = (0..n).map(|_| Lane { tx: None, buf: Vec::new(), fut: None, done: None }).collect();
        let mut queue: VecDeque<(usize, Bytes)> = VecDeque::new();
        let mut source_done = false;
        let mut closing = false;
        let mut abort: Option<BackendError> = None;

        self.rt.block_on(std::future::poll_fn(|cx| {
            loop {
                for lane in lanes.iter_mut() {
                    if let Some(f) = lane.fut.as_mut()
                        && let Poll::Ready(out) = f.as_mut().poll(cx)
                    {
                        lane.fut = None;
                        lane.tx = None;
                        if out.1.is_err() {
                            closing = true;
                        }
                        lane.done = Some(out);
                    }
                }
                if closing {
                    // Nothing more is sent: every stream ends, every statement finishes.
                    queue.clear();
                    for lane in lanes.iter_mut() {
                        lane.tx = None;
                    }
                    return if lanes.iter().all(|l| l.fut.is_none()) { Poll::Ready(()) } else { Poll::Pending };
                }
                if let Some((i, chunk)) = queue.pop_front() {
                    match lanes[i].tx.as_ref().map(|tx| tx.try_send(chunk)) {
                        Some(Ok(())) => {}
                        Some(Err(mpsc::error::TrySendError::Full(chunk))) => {
                            queue.push_front((i, chunk));
                            return Poll::Pending;
                        }
                        // The lane's statement ended early; its result says why.
                        Some(Err(mpsc::error::TrySendError::Closed(_))) | None => closing = true,
                    }
                    continue;
                }
                if source_done {
                    closing = true;
                    continue;
                }
                let r = match records.next() {
                    None => {
                        source_done = true;
                        for (i, lane) in lanes.iter_mut().enumerate() {
                            if !lane.buf.is_empty() {
                                queue.push_back((i, Bytes::from(std::mem::take(&mut lane.buf))));
                            }
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        abort = Some(e);
                        closing = true;
                        continue;
                    }
                    Some(Ok(r)) => r,
                };
                let i = match ns.container_of(&r.id) {
                    Ok(i) => i,
                    Err(e) => {
                        abort = Some(e);
                        closing = true;
                        continue;
                    }
                };
                let lane = &mut lanes[i];
                if lane.fut.is_none() && lane.done.is_none() {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    let conn = if i == 0 { main.take() } else { None };
                    lane.tx = Some(tx);
                    lane.fut = Some(Box::pin(load_lane(conn, extra_opts.clone(), timeout, stmts[i].clone(), rx)));
                }
                if let Err(e) = enc.line(&mut lane.buf, &r) {
                    abort = Some(e);
                    closing = true;
                    continue;
                }
                if lane.buf.len() >= CHUNK {
                    queue.push_back((i, Bytes::from(std::mem::take(&mut lane.buf))));
                }
            }
        }));

        // Judge the lanes, then commit all or roll all back.
        let started = lanes.iter().filter(|l| l.done.is_some()).count();
        let mut failure = abort;
        let mut rows = 0u64;
        let mut warnings = Vec::new();
        let mut conns: Vec<(usize, Conn)> = Vec::new();
        for (i, lane) in lanes.into_iter().enumerate() {
            let Some((conn, result)) = lane.done else { continue };
            let lost = matches!(&result, Err(LaneError::Query(e)) if is_lost(e));
            if let Some(c) = conn
                && !lost
            {
                conns.push((i, c));
            }
            match result {
                Ok(l) => {
                    rows += l.rows;
                    warnings.extend(l.warnings.into_iter().map(|w| format!("{}: {w}", tables[i])));
                }
                Err(e) if failure.is_none() => {
                    failure = Some(match e {
                        LaneError::Connect(e) => connect_error(&self.s, e),
                        LaneError::ConnectTimeout => connect_timeout_error(&self.s),
                        LaneError::Query(e) => {
                            op_error(&self.s, &format!("LOAD DATA LOCAL INFILE into {}", tables[i]), OpKind::Dml, e)
                        }
                    });
                }
                Err(_) => {}
            }
        }
        if failure.is_none() && !warnings.is_empty() {
            failure = Some(
                BackendError::msg(format!(
                    "{}: LOAD DATA LOCAL INFILE reported warnings (a row was skipped or changed), so the bulk insert \
                     was rolled back: {}",
                    self.sys(),
                    warnings.join("; ")
                ))
                .classed(ErrorClass::BadRequest),
            );
        }
        let end = if failure.is_some() { "ROLLBACK" } else { "COMMIT" };
        for (i, mut c) in conns {
            let done = self.rt.block_on(c.query_drop(end));
            if let Err(e) = done
                && failure.is_none()
            {
                failure = Some(op_error(&self.s, &format!("{end} of the load into {}", tables[i]), OpKind::Dml, e));
            }
            if i == 0 && self.conn.is_none() {
                self.conn = Some(c);
            } else {
                close(&self.rt, c);
            }
        }
        if let Some(c) = main {
            // No record went to container 0: the main connection was never used.
            self.conn = Some(c);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.notes.push(format!(
            "bulk path: LOAD DATA LOCAL INFILE streamed from the record iterator (no temporary file), one statement \
             and transaction per table ({started} table(s)); the server reported {rows} rows"
        ));
        Ok(rows)
    }

    /// Batched multi-row `INSERT` (text protocol, escaped literals), one transaction.
    fn bulk_batches(&mut self, ns: &Namespace, records: RecordStream<'_>, why: &str) -> Result<u64, BackendError> {
        let max_packet: Option<u64> = self.run(
            OpKind::Admin,
            || "reading @@max_allowed_packet".into(),
            async |c| c.query_first("SELECT @@max_allowed_packet").await,
        )?;
        // Escaping can double a value's bytes; a statement must fit into one packet.
        let limit = max_packet.map_or(self.s.batch_bytes, |p| (p as usize / 3).max(1));
        let batch_bytes = self.s.batch_bytes.min(limit);
        self.exec_sql(OpKind::Dml, || "START TRANSACTION".into(), "START TRANSACTION")?;
        let mut statements = 0u64;
        let result = self.insert_all(ns, records, batch_bytes, &mut statements);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.exec_sql(OpKind::Dml, || end.into(), end);
        let rows = result?;
        ended?;
        self.notes.push(format!(
            "bulk path: batched multi-row INSERT, {statements} statement(s) of at most {} rows / {}, one transaction, \
             because {why}; the server reported {rows} rows",
            self.s.batch_rows,
            format_bytes(batch_bytes as u64)
        ));
        Ok(rows)
    }

    fn insert_all(
        &mut self,
        ns: &Namespace,
        records: RecordStream<'_>,
        batch_bytes: usize,
        statements: &mut u64,
    ) -> Result<u64, BackendError> {
        let n = usize::from(ns.container_count());
        let mut batcher = Batcher::new(n, self.s.batch_rows, batch_bytes);
        let mut total = 0u64;
        for item in records {
            let r = item?;
            let i = ns.container_of(&r.id)?;
            let bytes = r.id.key.len() + r.data.len() + 8;
            if let Some(batch) = batcher.push(i, r, bytes) {
                total += self.insert_batch(ns, batch.container, &batch.items)?;
                *statements += 1;
            }
        }
        for batch in batcher.finish() {
            total += self.insert_batch(ns, batch.container, &batch.items)?;
            *statements += 1;
        }
        Ok(total)
    }

    fn insert_batch(&mut self, ns: &Namespace, container: usize, items: &[Record]) -> Result<u64, BackendError> {
        let t = self.table(ns, container as u8);
        let cols = ns.schema().map_or_else(|| "k, v".to_string(), typed::column_names);
        let size: usize = items.iter().map(|r| r.data.len() + r.id.key.len() + 16).sum();
        let mut sql = Vec::with_capacity(size + size / 16 + 64);
        sql.extend_from_slice(format!("INSERT INTO {t} ({cols}) VALUES ").as_bytes());
        let uuid_native = self.server.uuid_native;
        for (j, r) in items.iter().enumerate() {
            sql.extend_from_slice(if j == 0 { b"(" } else { b",(" });
            typed::push_literal(
                &mut sql,
                Some(r.id.key.as_bytes()),
                Some(dedup_lab_core::ColumnType::Text),
                uuid_native,
            );
            match ns.schema() {
                None => {
                    sql.push(b',');
                    typed::push_literal(&mut sql, Some(&r.data), None, uuid_native);
                }
                Some(s) => {
                    for (c, v) in s.columns.iter().zip(typed_row(s, r)?) {
                        sql.push(b',');
                        let text = typed::text_form(v, c.ty, uuid_native).map_err(|e| {
                            BackendError::with_source(format!("record {}: column {}", r.id.key, c.name), e)
                                .classed(ErrorClass::BadRequest)
                        })?;
                        typed::push_literal(&mut sql, text.as_deref(), Some(c.ty), uuid_native);
                    }
                }
            }
            sql.push(b')');
        }
        let first = items.first().map(|r| r.id.key.clone()).unwrap_or_default();
        self.run(
            OpKind::Dml,
            || format!("inserting {} rows from {first} into {t}", items.len()),
            async |c| {
                c.query_drop(sql.as_slice()).await?;
                Ok(c.affected_rows())
            },
        )
    }
}
