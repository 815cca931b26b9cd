//! The cluster as the backend sees it: bootstrap, metadata (brokers and partition leaders),
//! one connection per broker, and the admin, produce, fetch and log-dir calls built on
//! [`wire::Conn`](super::wire::Conn).

use super::errors::{code_error, protocol_error};
use super::wire::{Auth, Conn};
use crate::net::stream::ConnectOptions;
use bytes::{Bytes, BytesMut};
use dedup_lab_core::{BackendError, ErrorClass};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeLogDirsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const SYS: &str = "kafka";

/// The APIs the backend uses, checked in preflight.
pub const USED_APIS: &[ApiKey] = &[
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DescribeLogDirs,
    ApiKey::IncrementalAlterConfigs,
];

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A produce request sent and not yet acknowledged.
pub struct Sent {
    pub node: i32,
    pub topic: String,
    pub partition: i32,
    pub records: u64,
}

pub struct Cluster {
    bootstrap: Vec<(String, u16)>,
    opts: ConnectOptions,
    auth: Auth,
    /// The connection used for metadata and admin requests.
    admin: Option<Conn>,
    conns: HashMap<i32, Conn>,
    brokers: BTreeMap<i32, (String, u16)>,
    leaders: HashMap<(String, i32), i32>,
    pub cluster_id: Option<String>,
    /// `ApiVersions` of the admin connection: `Produce v9, Fetch v12, …`.
    pub api_summary: String,
    /// Connect to the bootstrap address for every broker (setting `bootstrap_only`).
    pub bootstrap_only: bool,
    /// The bootstrap address that answered.
    reached: Option<(String, u16)>,
}

impl Cluster {
    pub fn new(bootstrap: Vec<(String, u16)>, opts: ConnectOptions, auth: Auth) -> Cluster {
        Cluster {
            bootstrap,
            opts,
            auth,
            admin: None,
            conns: HashMap::new(),
            brokers: BTreeMap::new(),
            leaders: HashMap::new(),
            cluster_id: None,
            api_summary: String::new(),
            bootstrap_only: false,
            reached: None,
        }
    }

    /// Drops every connection (the next call opens new ones).
    pub fn disconnect(&mut self) {
        self.admin = None;
        self.conns.clear();
    }

    /// The admin connection, opened to the first bootstrap broker that answers.
    pub fn admin(&mut self) -> Result<&mut Conn, BackendError> {
        if self.admin.is_none() {
            let mut last = None;
            for (h, p) in &self.bootstrap {
                match Conn::open(h, *p, &self.opts, &self.auth) {
                    Ok(c) => {
                        self.api_summary = USED_APIS
                            .iter()
                            .filter_map(|k| c.version_of(*k).map(|v| format!("{k:?} v{v}")))
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.admin = Some(c);
                        self.reached = Some((h.clone(), *p));
                        break;
                    }
                    // Authentication and configuration errors are the same on every broker.
                    Err(e) if !e.class().is_some_and(|c| c.is_transient()) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            if self.admin.is_none() {
                return Err(last.unwrap_or_else(|| BackendError::msg("kafka: no bootstrap broker configured")));
            }
        }
        Ok(self.admin.as_mut().expect("opened above"))
    }

    /// Runs `f` on the admin connection; on a broken connection drops it so the next call
    /// reconnects.
    fn on_admin<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T, BackendError>) -> Result<T, BackendError> {
        let r = f(self.admin()?);
        if r.as_ref().is_err_and(|e| e.class().is_some_and(|c| c.is_transient())) {
            self.admin = None;
        }
        r
    }

    /// The APIs the tool uses that the broker lacks (empty: all there).
    pub fn missing_apis(&mut self) -> Result<Vec<String>, BackendError> {
        Ok(self.admin()?.missing(USED_APIS))
    }

    fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, BackendError> {
        let req = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(
            topics.map(|t| t.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect()),
        );
        let resp = self.on_admin(|c| c.call(&req, "read the cluster metadata"))?;
        self.brokers = resp.brokers.iter().map(|b| (b.node_id.0, (b.host.to_string(), b.port as u16))).collect();
        self.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        for t in &resp.topics {
            let Some(name) = &t.name else { continue };
            for p in &t.partitions {
                self.leaders.insert((name.0.to_string(), p.partition_index), p.leader_id.0);
            }
        }
        Ok(resp)
    }

    /// Every topic name in the cluster (that this user may describe).
    pub fn topics(&mut self) -> Result<Vec<String>, BackendError> {
        let resp = self.metadata(None)?;
        Ok(resp.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect())
    }

    /// Partitions of `topic` (`None` when it does not exist).
    pub fn partitions(&mut self, topic: &str) -> Result<Option<Vec<i32>>, BackendError> {
        let resp = self.metadata(Some(&[topic.to_string()]))?;
        let t = resp.topics.into_iter().next();
        match t {
            Some(t) if t.error_code == 0 => Ok(Some(t.partitions.iter().map(|p| p.partition_index).collect())),
            Some(t) if t.error_code == 3 => Ok(None),
            Some(t) => Err(self.err(&format!("describe topic {topic}"), t.error_code, None)),
            None => Ok(None),
        }
    }

    fn err(&self, what: &str, code: i16, msg: Option<&StrBytes>) -> BackendError {
        let broker = self.admin.as_ref().map(|c| c.broker.clone()).unwrap_or_else(|| "?".into());
        code_error(SYS, &broker, &self.auth.user, what, code, msg.map(|m| m.as_str()))
    }

    /// Creates `name`, retrying while a deletion of the same name is still in progress, and
    /// waits until every partition has a leader.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i16,
        configs: &[(&str, String)],
    ) -> Result<(), BackendError> {
        let what = format!("create topic {name}");
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = self.on_admin(|c| c.call(&req, &what))?;
            let r = resp.topics.first().ok_or_else(|| protocol_error(SYS, "?", &what, "no topic in the answer"))?;
            match r.error_code {
                0 => break,
                // Still being deleted (or just created by us and the answer was lost).
                36 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                code => return Err(self.err(&what, code, r.error_message.as_ref())),
            }
        }
        self.wait_leaders(name, partitions)?;
        self.wait_hosted(name, partitions)
    }

    /// Waits until the brokers report every partition of `name` in their log directories:
    /// a broker that opens a partition's log after metadata names its leader (crabka-broker
    /// 0.3.0 does so in a background loop) would otherwise open it after a quick deletion,
    /// and keep its directory for good.
    fn wait_hosted(&mut self, name: &str, partitions: i32) -> Result<(), BackendError> {
        let all: Vec<i32> = (0..partitions).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let hosted = self.log_dirs(&[(name.to_string(), all.clone())])?;
            let parts: HashSet<i32> = hosted.iter().flat_map(|(_, _, ps)| ps.iter().map(|(p, _)| *p)).collect();
            if parts.len() >= all.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BackendError::msg(format!(
                    "kafka: topic {name}: the brokers host {} of its {partitions} partitions 30 s after it was created",
                    parts.len()
                ))
                .classed(ErrorClass::Timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_leaders(&mut self, name: &str, partitions: i32) -> Result<(), BackendError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = self.metadata(Some(&[name.to_string()]))?;
            let ready = resp.topics.iter().any(|t| {
                t.error_code == 0
                    && t.partitions.len() == partitions as usize
                    && t.partitions.iter().all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BackendError::msg(format!(
                    "kafka: topic {name} has no leader for every partition 30 s after it was created; is every \
                     broker up?"
                ))
                .classed(ErrorClass::Timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Deletes the topics `names` (missing ones are fine) and waits until metadata no longer
    /// lists them.
    pub fn delete_topics(&mut self, names: &[String]) -> Result<(), BackendError> {
        if names.is_empty() {
            return Ok(());
        }
        let what = format!("delete topics {}", names.join(", "));
        let req = DeleteTopicsRequest::default()
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
            .with_timeout_ms(30_000);
        let resp = self.on_admin(|c| c.call(&req, &what))?;
        for r in &resp.responses {
            if r.error_code != 0 && r.error_code != 3 {
                return Err(self.err(&what, r.error_code, r.error_message.as_ref()));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let existing = self.topics()?;
            if !names.iter().any(|n| existing.contains(n)) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(
                    BackendError::msg(format!("kafka: {what}: still listed 30 s later")).classed(ErrorClass::Timeout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for n in names {
            self.leaders.retain(|(t, _), _| t != n);
        }
        Ok(())
    }

    /// Sets topic config `key` to `value` (`IncrementalAlterConfigs`, operation SET).
    pub fn set_topic_config(&mut self, topic: &str, key: &str, value: &str) -> Result<(), BackendError> {
        let what = format!("set {key}={value} on topic {topic}");
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(key.to_string()))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(value.to_string()))),
                ]),
        ]);
        let resp = self.on_admin(|c| c.call(&req, &what))?;
        for r in &resp.responses {
            if r.error_code != 0 {
                return Err(self.err(&what, r.error_code, r.error_message.as_ref()));
            }
        }
        Ok(())
    }

    /// The leader of `topic`/`partition`, from cached metadata (refreshed when unknown).
    pub fn leader(&mut self, topic: &str, partition: i32) -> Result<i32, BackendError> {
        let key = (topic.to_string(), partition);
        if !self.leaders.contains_key(&key) {
            self.metadata(Some(&[topic.to_string()]))?;
        }
        match self.leaders.get(&key) {
            Some(l) if *l >= 0 => Ok(*l),
            _ => Err(BackendError::msg(format!("kafka: partition {partition} of topic {topic} has no leader"))
                .classed(ErrorClass::ConnectionLost)),
        }
    }

    /// The connection to broker `node`, opened on first use.
    pub fn conn(&mut self, node: i32) -> Result<&mut Conn, BackendError> {
        if !self.conns.contains_key(&node) {
            let advertised = if self.bootstrap_only { self.reached.clone() } else { self.brokers.get(&node).cloned() };
            let (h, p) = advertised.ok_or_else(|| {
                BackendError::msg(format!("kafka: the metadata names no broker {node}"))
                    .classed(ErrorClass::ConnectionLost)
            })?;
            let c = Conn::open(&h, p, &self.opts, &self.auth)?;
            self.conns.insert(node, c);
        }
        Ok(self.conns.get_mut(&node).expect("inserted above"))
    }

    /// Forgets the connection to `node` and the cached leaders (after a failure).
    pub fn forget(&mut self, node: i32) {
        self.conns.remove(&node);
        self.leaders.clear();
    }

    /// Sends one produce request of `batch` (a record batch) to the leader of
    /// `topic`/`partition` with `acks=all`; the response is read by [`ack`](Self::ack).
    pub fn send_produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        records: u64,
    ) -> Result<Sent, BackendError> {
        let node = self.leader(topic, partition)?;
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(60_000).with_topic_data(vec![
            TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
                PartitionProduceData::default().with_index(partition).with_records(Some(batch)),
            ]),
        ]);
        let what = format!("produce to {topic}/{partition}");
        let r = self.conn(node)?.send(&req, &what);
        if let Err(e) = r {
            self.forget(node);
            return Err(e);
        }
        Ok(Sent { node, topic: topic.to_string(), partition, records })
    }

    /// Waits for the acknowledgement of `sent`; the number of records acknowledged.
    pub fn ack(&mut self, sent: Sent) -> Result<u64, BackendError> {
        let what = format!("produce to {}/{}", sent.topic, sent.partition);
        let conn = self.conn(sent.node)?;
        let broker = conn.broker.clone();
        let resp: Result<ProduceResponse, _> = conn.recv::<ProduceRequest>(&what);
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.forget(sent.node);
                return Err(e);
            }
        };
        let p = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .next()
            .ok_or_else(|| protocol_error(SYS, &broker, &what, "no partition in the answer"))?;
        if p.error_code != 0 {
            if matches!(p.error_code, 6 | 5) {
                self.leaders.clear();
            }
            return Err(code_error(
                SYS,
                &broker,
                &self.auth.user,
                &what,
                p.error_code,
                p.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        if p.base_offset < 0 {
            return Err(protocol_error(SYS, &broker, &what, format!("base offset {}", p.base_offset)));
        }
        Ok(sent.records)
    }

    /// Reads every record batch of `topic`/`partition` from its start to its high watermark
    /// and hands each (raw, compressed as stored) to `f`.
    pub fn fetch_all(
        &mut self,
        topic: &str,
        partition: i32,
        f: &mut dyn FnMut(Bytes) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let node = self.leader(topic, partition)?;
        let what = format!("read {topic}/{partition}");
        let mut offset = 0i64;
        loop {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(64 << 20)
                .with_isolation_level(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(64 << 20),
                ])]);
            let conn = self.conn(node)?;
            let broker = conn.broker.clone();
            let resp = conn.call(&req, &what)?;
            let p = resp
                .responses
                .into_iter()
                .flat_map(|t| t.partitions.into_iter())
                .next()
                .ok_or_else(|| protocol_error(SYS, &broker, &what, "no partition in the answer"))?;
            match p.error_code {
                0 => {}
                // Compaction or retention moved the start past our offset.
                1 if p.log_start_offset > offset => {
                    offset = p.log_start_offset;
                    continue;
                }
                code => return Err(code_error(SYS, &broker, &self.auth.user, &what, code, None)),
            }
            if offset >= p.high_watermark {
                return Ok(());
            }
            let mut data = p.records.unwrap_or_default();
            let mut next = offset;
            // Whole batches only: a fetch may end inside one.
            while data.len() >= 61 {
                let base = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
                let len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
                if data.len() < 12 + len {
                    break;
                }
                let batch = data.split_to(12 + len);
                let last_delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes")) as i64;
                next = next.max(base + last_delta + 1);
                if base + last_delta >= offset {
                    f(batch)?;
                }
            }
            if next <= offset {
                if p.log_start_offset > offset {
                    offset = p.log_start_offset;
                    continue;
                }
                return Err(protocol_error(
                    SYS,
                    &broker,
                    &what,
                    format!("no whole record batch at offset {offset} below the high watermark {}", p.high_watermark),
                ));
            }
            offset = next;
        }
    }

    /// Bytes on disk per partition of `topics`, summed over every broker's replicas
    /// (`DescribeLogDirs`), with the log directories (`broker:dir`) they are in.
    pub fn log_dir_sizes(&mut self, topics: &[(String, Vec<i32>)]) -> Result<(u64, Vec<String>), BackendError> {
        let (mut total, mut dirs) = (0u64, Vec::new());
        for (broker, dir, parts) in self.log_dirs(topics)? {
            let here: u64 = parts.iter().map(|(_, size)| *size).sum();
            if here > 0 || !parts.is_empty() {
                dirs.push(format!("{broker}:{dir}"));
            }
            total += here;
        }
        Ok((total, dirs))
    }

    /// `DescribeLogDirs` for `topics` on every broker: per log directory (broker, path), the
    /// partitions of `topics` it holds and their sizes (future replicas left out).
    #[allow(clippy::type_complexity)]
    fn log_dirs(
        &mut self,
        topics: &[(String, Vec<i32>)],
    ) -> Result<Vec<(String, String, Vec<(i32, u64)>)>, BackendError> {
        let req = DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|(t, ps)| DescribableLogDirTopic::default().with_topic(topic_name(t)).with_partitions(ps.clone()))
                .collect(),
        ));
        if self.brokers.is_empty() {
            self.metadata(Some(&[]))?;
        }
        let nodes: Vec<i32> = self.brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in nodes {
            let conn = self.conn(node)?;
            let broker = conn.broker.clone();
            let resp = conn.call(&req, "describe its log directories")?;
            if resp.error_code != 0 {
                return Err(code_error(
                    SYS,
                    &broker,
                    &self.auth.user,
                    "describe its log directories",
                    resp.error_code,
                    None,
                ));
            }
            for d in &resp.results {
                if d.error_code != 0 {
                    continue;
                }
                let parts = d
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .filter(|p| !p.is_future_key)
                    .map(|p| (p.partition_index, p.partition_size.max(0) as u64))
                    .collect();
                out.push((broker.clone(), d.log_dir.as_str().to_string(), parts));
            }
        }
        Ok(out)
    }

    /// Creates or replaces the SCRAM credentials of `user` (`AlterUserScramCredentials`), for
    /// setting up a test broker. `sha512` picks SCRAM-SHA-512, else SHA-256.
    pub fn upsert_scram_user(&mut self, user: &str, password: &str, sha512: bool) -> Result<(), BackendError> {
        use kafka_protocol::messages::AlterUserScramCredentialsRequest;
        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
        let hash = if sha512 { super::scram::Hash::Sha512 } else { super::scram::Hash::Sha256 };
        let salt = crate::net::consistency::random_token().into_bytes();
        let iterations = 4096;
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations as u32);
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(if sha512 { 2 } else { 1 })
                .with_iterations(iterations)
                .with_salt(Bytes::from(salt))
                .with_salted_password(Bytes::from(salted)),
        ]);
        let what = format!("set the SCRAM credentials of {user}");
        let resp = self.on_admin(|c| c.call(&req, &what))?;
        for r in &resp.results {
            if r.error_code != 0 {
                return Err(self.err(&what, r.error_code, r.error_message.as_ref()));
            }
        }
        Ok(())
    }
}

/// A record batch of `records` (key, value, headers) with codec `codec`.
pub fn encode_batch(
    records: &[kafka_protocol::records::Record],
    codec: kafka_protocol::records::Compression,
) -> Result<Bytes, BackendError> {
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: codec })
        .map_err(|e| {
            BackendError::msg(format!("kafka: cannot encode a record batch: {e}")).classed(ErrorClass::BadRequest)
        })?;
    Ok(buf.freeze())
}
