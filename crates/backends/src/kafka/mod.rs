//! Kafka (any broker that speaks the Kafka protocol): one message per record, in lab topics.
//!
//! What is measured: how much log a broker keeps for records with a known share of exact
//! duplicates, and what its codecs and log compaction save on them.
//!
//! - **Topics**: one per container, `dedup-lab-…-c<i>` ([`topic_base`]), created and deleted
//!   by the tool only; `reset` deletes the lab's topics and creates the namespace's anew with
//!   `partitions` and `replication_factor`, the variant's `compression.type` and
//!   `cleanup.policy`, and `max.message.bytes` = `max_message_bytes` (the study's 1 MiB
//!   records failed against librdkafka's default of 1,000,000 bytes).
//! - **Variants** ([`Variant`]): `compression=none|gzip|snappy|lz4|zstd` (the topic's
//!   `compression.type`, and the producer compresses its batches with the same codec, so the
//!   broker stores them as sent) and `cleanup=delete|compact-key|compact-hash`. In
//!   `compact-key` every record is keyed by its record key; in `compact-hash` by the SHA-256
//!   of its value (16 bytes), so compaction keeps one copy of each distinct value — like
//!   ClickHouse's ReplacingMergeTree. The record key then rides in a header `id`, so a record
//!   can still be read back.
//! - **Writes**: `bulk_insert` batches records per partition (`batch_bytes`) into record
//!   batches and keeps `in_flight` produce requests (`acks=all`) on the wire; the count is
//!   the records in acknowledged batches. `insert_one` is one produce, timed (by the
//!   engine's wrapper) until the broker's acknowledgement. The partition of a record is a
//!   hash of its Kafka key modulo `partitions`.
//! - **Deletes**: `delete_one` writes a tombstone in `compact-key`; it is unsupported on
//!   `delete` topics (Kafka cannot remove one record: `DeleteRecords` truncates a prefix) and
//!   in `compact-hash` (a tombstone would remove every copy of the value).
//! - **Maintenance**: on compacted topics, first closes the active segments (the cleaner never
//!   touches them: a tombstone written by the delete stage would otherwise stay unseen) with a
//!   roll-marker batch under `segment.bytes=14`, then waits (up to `cleaner_timeout`) for the
//!   broker's cleaner to rewrite the closed segments; unsupported on `delete` topics, with the
//!   reason. Compacted topics get `segment.bytes` = `segment_bytes` so segments also close
//!   on their own.
//! - **Counting**: [`count`](dedup_lab_core::Backend::count) reads every partition back and
//!   counts the keys whose latest record is not a tombstone — the topic as a table, which is
//!   what a consumer that applies the log sees (a re-sent key counts once).
//! - **Sizes**: `DescribeLogDirs` over every broker, summed over the lab's partitions and
//!   divided by the replication factor (one copy, like the other systems); the `fs` probe
//!   reads the partition directories under `data_dir` when the broker runs here.
//! - **Credentials**: SASL PLAIN or SCRAM-SHA-256/512 with the password from
//!   `$DEDUP_KAFKA_PASSWORD`, `password_env` or `password_file`; TLS with `sslrootcert`.
//!
//! # Modules
//! [`settings`], [`wire`] (one connection: framing, versions, SASL), [`scram`], [`cluster`]
//! (metadata, leaders, admin, produce, fetch, log dirs) and [`errors`].

pub mod cluster;
pub mod errors;
pub mod scram;
pub mod settings;
pub mod wire;

use crate::BackendConfig;
use crate::net::settings::SslMode;
use crate::net::stream::ConnectOptions;
use bytes::Bytes;
use cluster::{Cluster, Sent};
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, Operation,
    PreflightReport, Record, RecordId, RecordStream, Schema, SystemKind,
};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record as KRecord, RecordBatchDecoder, TimestampType};
use settings::Settings;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a topic does with old records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Delete,
    CompactKey,
    CompactHash,
}

/// One variant: a codec and a cleanup policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub codec: Compression,
    pub policy: Policy,
}

/// The variants measured when none are configured: every codec on a `delete` topic, and
/// both compacted forms uncompressed.
pub const DEFAULT_VARIANTS: [&str; 7] = [
    "compression=none",
    "compression=gzip",
    "compression=snappy",
    "compression=lz4",
    "compression=zstd",
    "cleanup=compact-key",
    "cleanup=compact-hash",
];

impl Variant {
    /// Parses `compression=<codec>`, `cleanup=<policy>`, or both joined by `,`; `default` is
    /// `compression=none`.
    pub fn parse(name: &str) -> Result<Variant, BackendError> {
        let bad = |why: &str| {
            BackendError::msg(format!(
                "kafka has no variant {name:?} ({why}); a variant is `compression=none|gzip|snappy|lz4|zstd`, \
                 `cleanup=delete|compact-key|compact-hash`, or both joined by `,`; the defaults are {}",
                DEFAULT_VARIANTS.join(", ")
            ))
            .classed(ErrorClass::Config)
        };
        let (mut codec, mut policy) = (Compression::None, Policy::Delete);
        if name != "default" {
            for part in name.split(',') {
                match part.trim().split_once('=') {
                    Some(("compression", c)) => {
                        codec = match c {
                            "none" => Compression::None,
                            "gzip" => Compression::Gzip,
                            "snappy" => Compression::Snappy,
                            "lz4" => Compression::Lz4,
                            "zstd" => Compression::Zstd,
                            _ => return Err(bad("unknown codec")),
                        }
                    }
                    Some(("cleanup", p)) => {
                        policy = match p {
                            "delete" => Policy::Delete,
                            "compact-key" => Policy::CompactKey,
                            "compact-hash" => Policy::CompactHash,
                            _ => return Err(bad("unknown cleanup policy")),
                        }
                    }
                    _ => return Err(bad("unknown setting")),
                }
            }
        }
        Ok(Variant { name: name.to_string(), codec, policy })
    }

    fn codec_name(&self) -> &'static str {
        match self.codec {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    fn compacted(&self) -> bool {
        self.policy != Policy::Delete
    }
}

/// The configured variants (default: [`DEFAULT_VARIANTS`]), validated offline.
pub fn variants(cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = cfg.string_list("variants")?.unwrap_or_else(|| DEFAULT_VARIANTS.iter().map(|v| v.to_string()).collect());
    if list.is_empty() {
        return Err(BackendError::msg("kafka: the `variants` list is empty").classed(ErrorClass::Config));
    }
    for v in &list {
        Variant::parse(v)?;
    }
    Ok(list)
}

/// The Kafka key of the marker records maintenance appends to close segments (never a
/// record key: those are `[a-z0-9]`, and content hashes are 16 bytes).
const ROLL_MARKER: &[u8] = b"\0dedup-lab-segment-roll";

/// The prefix every lab topic starts with.
pub const TOPIC_PREFIX: &str = "dedup-lab-";

/// The base of lab `lab`'s topic names: its dashed name, under `dedup-lab-`.
pub fn topic_base(lab: &LabName) -> String {
    let d = lab.dashed();
    if d == "dedup-lab" || d.starts_with(TOPIC_PREFIX) { d } else { format!("{TOPIC_PREFIX}{d}") }
}

/// The topic of container `c` of lab `lab`.
pub fn topic_name(lab: &LabName, c: u8) -> String {
    format!("{}-c{c}", topic_base(lab))
}

/// Whether `topic` is a container topic of lab `lab` (`<base>-c<digits>`).
pub fn is_lab_topic(lab: &LabName, topic: &str) -> bool {
    topic
        .strip_prefix(&topic_base(lab))
        .and_then(|rest| rest.strip_prefix("-c"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || topic == format!("{}-preflight", topic_base(lab))
}

pub struct KafkaBackend {
    s: Settings,
    v: Variant,
    cluster: Cluster,
    /// Keys (Kafka keys) known to be live per topic, kept while every write goes through
    /// this backend since the topic was created; `None`: unknown (read the topic to learn).
    live: HashMap<String, HashSet<Vec<u8>>>,
    /// The broker named in the configuration (`broker`), e.g. `crabka-broker 0.3.0`.
    broker_name: Option<String>,
    /// What [`server_version`](Backend::server_version) said, for every stage's notes.
    version_line: Option<String>,
    /// What the backend had to repair since the last stage's notes (stranded directories).
    repairs: Vec<String>,
}

/// The cluster client for validated settings (no connection is opened yet).
fn cluster_for(s: &Settings) -> Result<Cluster, BackendError> {
    let tls = match s.server.tls.mode {
        SslMode::Disable => None,
        _ => Some((crate::net::tls::client_config(&s.server)?, s.server.tls_name().to_string())),
    };
    let opts = ConnectOptions {
        connect_timeout: s.server.connect_timeout,
        io_timeout: Some(s.server.statement_timeout.unwrap_or(Duration::from_secs(120))),
        tls,
    };
    let auth = wire::Auth { mechanism: s.mechanism, user: s.server.user.clone(), password: s.server.password.clone() };
    let mut cluster = Cluster::new(s.bootstrap.clone(), opts, auth);
    cluster.bootstrap_only = s.bootstrap_only;
    Ok(cluster)
}

/// A plain producer for dedup-lab's own output topics (the metrics trace and the event
/// stream), not for measuring: values without keys, gzip-compressed, to partition 0 of one
/// topic, acknowledged by all replicas. The topic is created on first use when it is missing
/// (one partition) and never deleted: it is output the user named, like the results
/// directory, and outside every lab.
pub struct TopicWriter {
    s: Settings,
    cluster: Cluster,
    topic: String,
    ready: bool,
}

impl TopicWriter {
    /// Validates the settings (the same keys as `[systems.kafka]`); connects on first send.
    pub fn open(cfg: &BackendConfig, topic: &str) -> Result<TopicWriter, BackendError> {
        let s = Settings::from_config(cfg)?;
        let cluster = cluster_for(&s)?;
        Ok(TopicWriter { s, cluster, topic: topic.to_string(), ready: false })
    }

    /// `host:port` of the first bootstrap broker and the topic, for messages.
    pub fn target(&self) -> String {
        format!("topic {} at {}", self.topic, self.s.endpoint())
    }

    /// Connects, authenticates and reads the metadata: whether the topic exists (a missing
    /// one is created on the first send). For `preflight`; sends nothing.
    pub fn check(&mut self) -> Result<bool, BackendError> {
        self.cluster.admin()?;
        Ok(self.cluster.partitions(&self.topic)?.is_some())
    }

    /// Sends `values` as one batch and waits for the acknowledgement.
    pub fn send(&mut self, values: &[Vec<u8>]) -> Result<(), BackendError> {
        if values.is_empty() {
            return Ok(());
        }
        if !self.ready {
            if self.cluster.partitions(&self.topic)?.is_none() {
                self.cluster.create_topic(&self.topic, 1, self.s.replication_factor, &[])?;
            }
            self.ready = true;
        }
        let now = now_ms();
        let recs: Vec<KRecord> = values
            .iter()
            .enumerate()
            .map(|(i, v)| krecord(None, Some(Bytes::copy_from_slice(v)), IndexMap::new(), i as i64, now))
            .collect();
        let batch = cluster::encode_batch(&recs, Compression::Gzip)?;
        let r = self.cluster.send_produce(&self.topic, 0, batch, values.len() as u64).and_then(|s| self.cluster.ack(s));
        if r.is_err() {
            // Reconnect and re-check the topic on the next send (the broker may have restarted).
            self.cluster.disconnect();
            self.ready = false;
        }
        r.map(|_| ())
    }

    /// Every value in the topic, in order (for tests and checks; reads the whole topic).
    pub fn read_all(&mut self) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut out = Vec::new();
        let topic = self.topic.clone();
        scan_topic(&mut self.cluster, &topic, &mut |r| out.extend(r.value.as_ref().map(|v| v.to_vec())))?;
        Ok(out)
    }
}

/// Reads every record of `topic` (control records left out) and calls `f` on each, in log
/// order per partition; `false` when the topic does not exist.
fn scan_topic(cluster: &mut Cluster, topic: &str, f: &mut dyn FnMut(&KRecord)) -> Result<bool, BackendError> {
    let Some(parts) = cluster.partitions(topic)? else { return Ok(false) };
    for p in parts {
        cluster.fetch_all(topic, p, &mut |mut batch: Bytes| {
            let sets = RecordBatchDecoder::decode_all(&mut batch).map_err(|e| {
                BackendError::msg(format!("kafka: cannot decode a record batch of {topic}/{p}: {e}"))
                    .classed(ErrorClass::BadRequest)
            })?;
            for set in sets {
                for r in set.records.iter().filter(|r| !r.control) {
                    f(r);
                }
            }
            Ok(())
        })?;
    }
    Ok(true)
}

impl KafkaBackend {
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<KafkaBackend, BackendError> {
        let v = Variant::parse(variant)?;
        let s = Settings::from_config(cfg)?;
        let cluster = cluster_for(&s)?;
        let broker_name = cfg.string("broker").filter(|b| !b.trim().is_empty());
        Ok(KafkaBackend { s, v, cluster, live: HashMap::new(), broker_name, version_line: None, repairs: Vec::new() })
    }

    /// The cluster, for tests that set up a broker (SCRAM users).
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    fn topic_of(&self, ns: &Namespace, id: &RecordId) -> Result<String, BackendError> {
        let c = ns.container_of(id)?;
        Ok(topic_name(ns.lab(), c as u8))
    }

    /// The Kafka key of a record: its record key, or in `compact-hash` the SHA-256 of its
    /// value (16 bytes).
    fn kafka_key(&self, r: &Record) -> Vec<u8> {
        match self.v.policy {
            Policy::CompactHash => {
                use sha2::Digest;
                sha2::Sha256::digest(&r.data)[..16].to_vec()
            }
            _ => r.id.key.as_bytes().to_vec(),
        }
    }

    fn partition_of(&self, key: &[u8]) -> i32 {
        // FNV-1a: stable across runs and machines.
        let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        (h % self.s.partitions as u64) as i32
    }

    /// The message of a record: its bytes (blob), or for a native record the JSON object of
    /// its row (one JSON message per record, as a producer of events sends them).
    fn to_krecord(
        &self,
        r: Record,
        schema: Option<&Schema>,
        offset: i64,
        now: i64,
    ) -> Result<(Vec<u8>, KRecord), BackendError> {
        let key = self.kafka_key(&r);
        let value = match (&r.row, schema) {
            (Some(row), Some(s)) => s.encode_json_object(row).map_err(|e| {
                BackendError::msg(format!("kafka: record {}: {}: {}", r.id.key, e.schema, e.why))
                    .classed(ErrorClass::BadRequest)
            })?,
            _ => r.data,
        };
        if value.len() > self.s.max_message_bytes {
            return Err(BackendError::msg(format!(
                "kafka: record {} has {} bytes, more than max_message_bytes ({}); raise `max_message_bytes` (and \
                 the broker's message.max.bytes) or use smaller records",
                r.id.key,
                value.len(),
                self.s.max_message_bytes
            ))
            .classed(ErrorClass::Config));
        }
        let mut headers = IndexMap::new();
        if self.v.policy == Policy::CompactHash {
            headers.insert(StrBytes::from_static_str("id"), Some(Bytes::from(r.id.key.clone().into_bytes())));
        }
        Ok((key.clone(), krecord(Some(key), Some(Bytes::from(value)), headers, offset, now)))
    }

    /// Sends the batch of `topic`/`partition` and queues its acknowledgement.
    fn send_batch(
        &mut self,
        topic: &str,
        partition: i32,
        recs: Vec<KRecord>,
        inflight: &mut VecDeque<Sent>,
    ) -> Result<u64, BackendError> {
        let mut acked = 0;
        if recs.is_empty() {
            return Ok(0);
        }
        let batch = cluster::encode_batch(&recs, self.v.codec)?;
        inflight.push_back(self.cluster.send_produce(topic, partition, batch, recs.len() as u64)?);
        while inflight.len() >= self.s.in_flight {
            acked += self.cluster.ack(inflight.pop_front().expect("non-empty"))?;
        }
        Ok(acked)
    }

    fn bulk(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let now = now_ms();
        let mut pending: HashMap<(String, i32), (Vec<KRecord>, usize)> = HashMap::new();
        let mut inflight = VecDeque::new();
        let mut acked = 0u64;
        let mut written: Vec<(String, Vec<u8>)> = Vec::new();
        let result = (|| -> Result<(), BackendError> {
            for r in records {
                let r = r?;
                let topic = self.topic_of(ns, &r.id)?;
                let size = r.data.len();
                let (key, rec) = self.to_krecord(r, ns.schema(), 0, now)?;
                let slot_key = (topic.clone(), self.partition_of(&key));
                let slot = pending.entry(slot_key.clone()).or_default();
                if !slot.0.is_empty() && slot.1 + size > self.s.batch_bytes {
                    let full = std::mem::take(&mut slot.0);
                    slot.1 = 0;
                    acked += self.send_batch(&slot_key.0, slot_key.1, full, &mut inflight)?;
                }
                let slot = pending.get_mut(&slot_key).expect("inserted above");
                let mut rec = rec;
                rec.offset = slot.0.len() as i64;
                rec.sequence = rec.offset as i32 - 1;
                slot.0.push(rec);
                slot.1 += size;
                written.push((topic, key));
            }
            let mut rest: Vec<_> = pending.drain().collect();
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            for ((t, p), (recs, _)) in rest {
                acked += self.send_batch(&t, p, recs, &mut inflight)?;
            }
            while let Some(s) = inflight.pop_front() {
                acked += self.cluster.ack(s)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                for (t, k) in written {
                    if let Some(set) = self.live.get_mut(&t) {
                        set.insert(k);
                    }
                }
                Ok(acked)
            }
            Err(e) => {
                // What was acknowledged is on the broker; the index no longer knows the topic.
                for (t, _) in written {
                    self.live.remove(&t);
                }
                self.cluster.disconnect();
                Err(e)
            }
        }
    }

    /// Produces one record (value `None`: a tombstone) and waits for the acknowledgement.
    fn produce_one(
        &mut self,
        topic: &str,
        key: Vec<u8>,
        value: Option<Bytes>,
        headers: IndexMap<StrBytes, Option<Bytes>>,
    ) -> Result<u64, BackendError> {
        let partition = self.partition_of(&key);
        let rec = krecord(Some(key), value, headers, 0, now_ms());
        let batch = cluster::encode_batch(std::slice::from_ref(&rec), self.v.codec)?;
        let sent = self.cluster.send_produce(topic, partition, batch, 1)?;
        self.cluster.ack(sent)
    }

    /// Reads every record of `topic` (control records left out) and calls `f` on each, in log
    /// order per partition; `false` when the topic does not exist.
    fn scan(&mut self, topic: &str, f: &mut dyn FnMut(&KRecord)) -> Result<bool, BackendError> {
        scan_topic(&mut self.cluster, topic, f)
    }

    /// The live keys of `topic` (latest record per key is not a tombstone).
    fn live_keys(&mut self, topic: &str) -> Result<HashSet<Vec<u8>>, BackendError> {
        let mut latest: HashMap<Vec<u8>, bool> = HashMap::new();
        self.scan(topic, &mut |r| {
            if let Some(k) = &r.key {
                latest.insert(k.to_vec(), r.value.is_some());
            }
        })?;
        Ok(latest.into_iter().filter(|(_, live)| *live).map(|(k, _)| k).collect())
    }

    fn lab_topics(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        Ok(self.cluster.topics()?.into_iter().filter(|t| is_lab_topic(lab, t)).collect())
    }

    fn topic_configs(&self) -> Vec<(&'static str, String)> {
        let mut c = vec![
            // The codec's name is also the topic's compression.type value.
            ("compression.type", self.v.codec_name().to_string()),
            ("cleanup.policy", if self.v.compacted() { "compact" } else { "delete" }.to_string()),
            ("max.message.bytes", self.s.max_message_bytes.to_string()),
        ];
        if self.v.compacted() {
            c.push(("segment.bytes", self.s.segment_bytes.to_string()));
            c.push(("min.cleanable.dirty.ratio", "0.01".to_string()));
        }
        c
    }

    /// Closes the active segment of every partition of the namespace's topics, so the cleaner
    /// (which never touches the active segment) sees every record and tombstone: lowers
    /// `segment.bytes` to 14 (Kafka's minimum before 4.0), appends one batch of a roll marker
    /// and its tombstone (a broker rolls before an append that finds the active segment full;
    /// the marker's latest record is a tombstone, so it is never counted), and restores
    /// `segment.bytes`. A broker that refuses the setting leaves the active segment as it is,
    /// and the report says so.
    fn roll_segments(&mut self, ns: &Namespace) -> Result<String, BackendError> {
        let topics = self.ns_topics(ns)?;
        let mut batches = 0;
        for (t, parts) in &topics {
            if let Err(e) = self.cluster.set_topic_config(t, "segment.bytes", "14") {
                return Ok(format!(
                    "the active segments stay open (the broker refused segment.bytes=14: {})",
                    e.chain()
                ));
            }
            let now = now_ms();
            let key = ROLL_MARKER.to_vec();
            let recs = [
                krecord(Some(key.clone()), Some(Bytes::new()), IndexMap::new(), 0, now),
                krecord(Some(key), None, IndexMap::new(), 1, now),
            ];
            let produced = (|| -> Result<(), BackendError> {
                for p in parts {
                    let batch = cluster::encode_batch(&recs, self.v.codec)?;
                    let sent = self.cluster.send_produce(t, *p, batch, 2)?;
                    self.cluster.ack(sent)?;
                    batches += 1;
                }
                Ok(())
            })();
            self.cluster.set_topic_config(t, "segment.bytes", &self.s.segment_bytes.to_string())?;
            produced?;
        }
        Ok(format!(
            "closed the active segments ({batches} partition(s): segment.bytes=14, one roll-marker batch of a record and \
             its tombstone, segment.bytes restored)"
        ))
    }

    fn ns_topics(&mut self, ns: &Namespace) -> Result<Vec<(String, Vec<i32>)>, BackendError> {
        let mut out = Vec::new();
        for (i, _) in ns.containers() {
            let t = topic_name(ns.lab(), i);
            if let Some(p) = self.cluster.partitions(&t)? {
                out.push((t, p));
            }
        }
        Ok(out)
    }

    /// Partition directories of the lab's topics that the broker's data directory (`data_dir`)
    /// still holds although no topic of that name exists. crabka-broker 0.3.0 leaves one
    /// behind when a deletion meets its compaction tick (the cleaner still holds the deleted
    /// partition and writes into its directory), and reopens it, old records and all, when a
    /// topic of that name is created again. Empty without `data_dir`.
    fn stranded_dirs(&mut self, lab: &LabName) -> Result<Vec<(String, i32)>, BackendError> {
        let Some(dir) = self.s.data_dir.clone() else { return Ok(Vec::new()) };
        let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let listed: HashSet<String> = self.cluster.topics()?.into_iter().collect();
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((t, p)) = name.rsplit_once('-') else { continue };
            let Ok(p) = p.parse::<i32>() else { continue };
            if is_lab_topic(lab, t) && !listed.contains(t) && e.path().is_dir() {
                out.push((t.to_string(), p));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Has the broker remove the directories [`stranded_dirs`](Self::stranded_dirs) finds:
    /// dedup-lab never deletes files on a broker's disk itself, so it creates each such topic
    /// again (the broker reopens the directory it finds; delete policy, so no compaction can
    /// race) and deletes it. A directory that survives that is an error naming it.
    fn sweep_stranded(&mut self, lab: &LabName) -> Result<(), BackendError> {
        let mut found = self.stranded_dirs(lab)?;
        if found.is_empty() && self.s.data_dir.is_some() {
            // A compaction already under way when the topic was deleted writes on for a
            // moment (and so makes the directory again): look once more.
            std::thread::sleep(Duration::from_millis(300));
            found = self.stranded_dirs(lab)?;
        }
        if found.is_empty() {
            return Ok(());
        }
        // The cleaner that held the deleted partition may still be writing; let it finish.
        std::thread::sleep(Duration::from_secs(1));
        let mut topics: std::collections::BTreeMap<String, i32> = std::collections::BTreeMap::new();
        for (t, p) in &found {
            let n = topics.entry(t.clone()).or_insert(0);
            *n = (*n).max(p + 1);
        }
        let configs = [("cleanup.policy", "delete".to_string())];
        for (t, n) in &topics {
            self.cluster.create_topic(t, *n, self.s.replication_factor, &configs)?;
            self.cluster.delete_topics(std::slice::from_ref(t))?;
        }
        let names = |v: &[(String, i32)]| v.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", ");
        let dir = self.s.data_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
        let left = self.stranded_dirs(lab)?;
        if !left.is_empty() {
            return Err(BackendError::msg(format!(
                "kafka: the broker at {} keeps the directories {} of deleted lab topics in {dir}, also after \
                 dedup-lab created and deleted those topics again; stop the broker, remove them, and start it again",
                self.s.endpoint(),
                names(&left)
            ))
            .classed(ErrorClass::Server));
        }
        self.repairs.push(format!(
            "the broker had left the directories {} of deleted topics in {dir}; dedup-lab created and deleted those \
             topics again, and the broker removed them",
            names(&found)
        ));
        Ok(())
    }

    /// Deletes `topics`; compacted ones are switched to the delete policy first, so the
    /// cleaner's next round skips them instead of compacting a partition that is going away
    /// (crabka-broker 0.3.0 then writes into, and so keeps, the deleted partition's directory).
    fn delete_quietly(&mut self, topics: &[String]) -> Result<(), BackendError> {
        if self.v.compacted() {
            for t in topics {
                // Best effort: a topic that is already gone, or a broker that refuses, is fine.
                let _ = self.cluster.set_topic_config(t, "cleanup.policy", "delete");
            }
        }
        self.cluster.delete_topics(topics)
    }

    /// A topic just created must be empty: a broker that reopened the files of an earlier topic
    /// of the same name (see [`stranded_dirs`](Self::stranded_dirs)) would add their bytes
    /// to every measurement of this one.
    fn check_created_empty(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let topics = self.ns_topics(ns)?;
        let (bytes, _) = self.cluster.log_dir_sizes(&topics)?;
        if bytes > 0 {
            let names = topics.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ");
            return Err(BackendError::msg(format!(
                "kafka: the topics {names} hold {bytes} bytes right after dedup-lab created them: the broker at {} \
                 reopened the files of earlier topics of those names (crabka-broker 0.3.0 leaves a deleted topic's \
                 directory behind when the deletion meets its compaction); set `data_dir` to the broker's log \
                 directory so dedup-lab can have them removed, or stop the broker and remove the lab's \
                 directories by hand",
                self.s.endpoint()
            ))
            .classed(ErrorClass::Server));
        }
        Ok(())
    }

    fn log_bytes(&mut self, ns: &Namespace) -> Result<(u64, Vec<String>), BackendError> {
        let topics = self.ns_topics(ns)?;
        if topics.is_empty() {
            return Ok((0, Vec::new()));
        }
        self.cluster.log_dir_sizes(&topics)
    }
}

fn krecord(
    key: Option<Vec<u8>>,
    value: Option<Bytes>,
    headers: IndexMap<StrBytes, Option<Bytes>>,
    offset: i64,
    now: i64,
) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // No idempotence: the batch's base sequence must be -1. The encoder keeps records in
        // one batch only while offset − sequence stays the same, so sequence follows offset.
        sequence: offset as i32 - 1,
        timestamp: now,
        key: key.map(Bytes::from),
        value,
        headers,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Backend for KafkaBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Kafka
    }

    fn variant(&self) -> &str {
        &self.v.name
    }

    fn endpoint(&self) -> String {
        self.s.endpoint()
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        self.cluster.admin()?;
        let name = self.broker_name.clone().unwrap_or_else(|| "Kafka-API broker (set `broker` to name it)".into());
        Ok(format!(
            "{name}; cluster {}; {}",
            self.cluster.cluster_id.clone().unwrap_or_else(|| "?".into()),
            self.cluster.api_summary
        ))
    }

    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        let mut checks = Vec::new();
        self.cluster.admin()?;
        checks.push(format!("connected to {} and authenticated", self.s.endpoint()));
        let missing = self.cluster.missing_apis()?;
        if !missing.is_empty() {
            return Err(BackendError::msg(format!(
                "kafka: the broker at {} lacks APIs dedup-lab uses: {} (in a version it speaks); use a newer broker",
                self.s.endpoint(),
                missing.join(", ")
            ))
            .classed(ErrorClass::BadRequest));
        }
        checks.push(format!("the broker speaks every API used: {}", self.cluster.api_summary));
        let n = self.cluster.topics()?.len();
        checks.push(format!("read the cluster metadata ({n} topics visible)"));
        let probe = format!("{}-preflight", topic_base(ns.lab()));
        self.cluster.delete_topics(std::slice::from_ref(&probe))?;
        self.cluster.create_topic(&probe, 1, self.s.replication_factor, &self.topic_configs())?;
        self.cluster.delete_topics(std::slice::from_ref(&probe))?;
        checks.push(format!("created and deleted topic {probe}"));
        Ok(PreflightReport { server_version: self.server_version().ok(), checks })
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        if self.version_line.is_none() {
            self.version_line = Some(self.server_version()?);
        }
        let old = self.lab_topics(ns.lab())?;
        self.delete_quietly(&old)?;
        self.live.clear();
        self.sweep_stranded(ns.lab())?;
        let configs = self.topic_configs();
        for (i, _) in ns.containers() {
            let t = topic_name(ns.lab(), i);
            self.cluster.create_topic(&t, self.s.partitions, self.s.replication_factor, &configs)?;
            self.live.insert(t, HashSet::new());
        }
        self.check_created_empty(ns)
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.bulk(ns, records)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let topic = self.topic_of(ns, &r.id)?;
        let (key, rec) = self.to_krecord(r.clone(), ns.schema(), 0, now_ms())?;
        let n = self.produce_one(&topic, key.clone(), rec.value, rec.headers)?;
        if let Some(set) = self.live.get_mut(&topic) {
            set.insert(key);
        }
        Ok(n)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let topic = self.topic_of(ns, id)?;
        if let Some(why) = self.unsupported(Operation::DeleteOne) {
            return Err(BackendError::msg(format!("kafka: {why}")).classed(ErrorClass::BadRequest));
        }
        let key = id.key.as_bytes().to_vec();
        if !self.live.contains_key(&topic) {
            let keys = self.live_keys(&topic)?;
            self.live.insert(topic.clone(), keys);
        }
        if !self.live.get(&topic).is_some_and(|s| s.contains(&key)) {
            return Ok(0);
        }
        self.produce_one(&topic, key.clone(), None, IndexMap::new())?;
        self.live.get_mut(&topic).expect("filled above").remove(&key);
        Ok(1)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let topic = self.topic_of(ns, id)?;
        let hash = self.v.policy == Policy::CompactHash;
        let want = id.key.as_bytes();
        let mut found: Option<Option<Vec<u8>>> = None;
        self.scan(&topic, &mut |r| {
            let is_it = if hash {
                r.headers.iter().any(|(k, v)| k.as_str() == "id" && v.as_deref() == Some(want))
            } else {
                r.key.as_deref() == Some(want)
            };
            if is_it {
                found = Some(r.value.as_ref().map(|v| v.to_vec()));
            }
        })?;
        let found = found.flatten();
        let Some(schema) = ns.schema() else { return Ok(found) };
        let Some(value) = found else { return Ok(None) };
        // A native record's message is the JSON object of its row: back to its canonical
        // encoding, what the record's data is.
        let row = schema.decode_json_object(&value).and_then(|row| schema.encode(&row)).map_err(|e| {
            BackendError::msg(format!(
                "kafka: the message of record {} in {topic} is not the JSON object of a {} row: {}",
                id.key, e.schema, e.why
            ))
            .classed(ErrorClass::BadRequest)
        })?;
        Ok(Some(row))
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        if let Some(why) = self.unsupported(Operation::Maintenance) {
            return Ok(MaintenanceReport { action: format!("none: {why}") });
        }
        let rolled = self.roll_segments(ns)?;
        let start = Instant::now();
        let (first, _) = self.log_bytes(ns)?;
        let (mut last, mut stable, mut shrank) = (first, 0, false);
        while start.elapsed() < self.s.cleaner_timeout {
            std::thread::sleep(Duration::from_secs(1));
            let (now, _) = self.log_bytes(ns)?;
            shrank |= now < first;
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
            if shrank && stable >= 3 {
                break;
            }
        }
        let secs = start.elapsed().as_secs();
        Ok(MaintenanceReport {
            action: if shrank {
                format!(
                    "{rolled}; waited {secs} s for the log cleaner: the lab's logs went from {first} to {last} bytes"
                )
            } else {
                format!(
                    "{rolled}; waited {secs} s (cleaner_timeout) for the log cleaner; the lab's logs stayed at {last} bytes \
                     (nothing to remove in closed segments, or the cleaner did not run in time)"
                )
            },
        })
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut n = 0;
        for (i, _) in ns.containers() {
            let t = topic_name(ns.lab(), i);
            n += self.live_keys(&t)?.len() as u64;
        }
        Ok(n)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let (bytes, dirs) = self.log_bytes(ns)?;
        let rf = u64::try_from(self.s.replication_factor).unwrap_or(1).max(1);
        let mut details = std::collections::BTreeMap::new();
        details.insert("log_bytes_all_replicas".into(), serde_json::json!(bytes));
        details.insert("replication_factor".into(), serde_json::json!(rf));
        details.insert("log_dirs".into(), serde_json::json!(dirs));
        details.insert("codec".into(), serde_json::json!(self.v.codec_name()));
        Ok(InternalSizes { total_bytes: Some(bytes / rf), details })
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let topics: Vec<String> = ns.containers().map(|(i, _)| topic_name(ns.lab(), i)).collect();
        self.delete_quietly(&topics)?;
        for t in &topics {
            self.live.remove(t);
        }
        self.sweep_stranded(ns.lab())
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let Some(dir) = self.s.data_dir.clone() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (t, parts) in self.ns_topics(ns)? {
            for p in parts {
                out.push(dir.join(format!("{t}-{p}")));
            }
        }
        Ok(out)
    }

    fn native_storage(&self, _schema: &Schema) -> String {
        format!(
            "one message per native record: the JSON object of its row (columns by name, NULLs left out), keyed by \
             {}, {} batches",
            if self.v.policy == Policy::CompactHash {
                "the SHA-256 of the value (record key in header `id`)"
            } else {
                "the record key"
            },
            self.v.codec_name()
        )
    }

    fn unsupported(&self, op: Operation) -> Option<String> {
        match (op, self.v.policy) {
            (Operation::DeleteOne, Policy::Delete) => Some(
                "a `delete` topic cannot remove one record: a tombstone only removes a key on compacted topics, and \
                 DeleteRecords truncates a partition's prefix"
                    .into(),
            ),
            (Operation::DeleteOne, Policy::CompactHash) => Some(
                "in compact-hash the Kafka key is the value's hash: a tombstone would remove every copy of the value, \
                 not one record"
                    .into(),
            ),
            (Operation::Maintenance, Policy::Delete) => Some(
                "a `delete` topic has no reclaim a client can trigger: retention removes whole segments by age or \
                 size, and DeleteRecords truncates a prefix"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Every stage's result line names the broker measured and how its batches were stored.
    fn take_notes(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(v) = &self.version_line {
            notes.push(format!("broker: {v}"));
        }
        notes.append(&mut self.repairs);
        notes.push(format!(
            "kafka topics: cleanup.policy {}, record batches {} (compression.type set to the producer's codec, so \
             a broker that keeps batches as produced stores them so)",
            match self.v.policy {
                Policy::Delete => "delete",
                Policy::CompactKey => "compact (keyed by record key)",
                Policy::CompactHash => "compact (keyed by content hash)",
            },
            self.v.codec_name()
        ));
        notes
    }

    fn deduplicates(&self) -> Option<String> {
        (self.v.policy == Policy::CompactHash)
            .then(|| "the topic is compacted by the value's hash: the cleaner keeps one copy of each value".into())
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let mut out: Vec<String> = self.lab_topics(lab)?.into_iter().map(|t| format!("topic {t}")).collect();
        for (t, p) in self.stranded_dirs(lab)? {
            out.push(format!("directory {t}-{p} of a deleted topic, left on the broker's disk"));
        }
        Ok(out)
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        let topics = self.lab_topics(lab)?;
        self.delete_quietly(&topics)?;
        self.live.clear();
        self.sweep_stranded(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.cluster.disconnect();
        Ok(Some("closed the connections to the brokers; the next request opens new ones".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_and_refuse_with_the_list() {
        let v = Variant::parse("compression=zstd,cleanup=compact-hash").unwrap();
        assert_eq!((v.codec, v.policy), (Compression::Zstd, Policy::CompactHash));
        assert_eq!(Variant::parse("default").unwrap().policy, Policy::Delete);
        let e = Variant::parse("compression=brotli").unwrap_err().to_string();
        assert!(e.contains("brotli") && e.contains("compression=zstd"), "{e}");
        for v in DEFAULT_VARIANTS {
            Variant::parse(v).unwrap();
        }
    }

    #[test]
    fn topics_live_under_the_prefix_and_belong_to_one_lab() {
        let lab: LabName = "dedup_lab".parse().unwrap();
        assert_eq!(topic_name(&lab, 1), "dedup-lab-c1");
        let other: LabName = "dedup_t_k1".parse().unwrap();
        assert_eq!(topic_name(&other, 0), "dedup-lab-dedup-t-k1-c0");
        assert!(is_lab_topic(&lab, "dedup-lab-c0"));
        assert!(!is_lab_topic(&lab, "dedup-lab-x-c0"), "another lab's topic");
        assert!(!is_lab_topic(&lab, "dedup-lab-c"), "no container number");
        assert!(!is_lab_topic(&lab, "orders"));
    }
}
