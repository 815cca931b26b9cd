//! One connection to one Kafka broker over `net::stream` (TCP or TLS): size-framed requests
//! encoded with `kafka-protocol`, responses matched by correlation id, several requests in
//! flight, version negotiation from `ApiVersions`, and SASL (PLAIN, SCRAM-SHA-256/512).
//!
//! Why our own client: `rdkafka` (librdkafka) has no `DescribeLogDirs`, which is how the
//! tool reads a topic's size from the broker, and adds minutes of C build; `rskafka` cannot
//! set topic configs at creation. `kafka-protocol` gives every message, so the client is the
//! framing, the handshake and the leader routing (`cluster.rs`): a few hundred lines.

use super::errors::{code_error, io_error, protocol_error};
use super::scram;
use super::settings::Mechanism;
use crate::net::stream::{ConnectOptions, Stream};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use dedup_lab_core::{BackendError, ErrorClass};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Read, Write};

const SYS: &str = "kafka";

/// A request this client sends: its API key and response type. (`kafka-protocol`'s own
/// `Request` trait needs its `broker` feature as well, which compiles every message's
/// server side; this is the part a client needs.)
pub trait Request: Encodable {
    const KEY: ApiKey;
    type Response: Decodable;
}

macro_rules! requests {
    ($($req:ident => $resp:ident, $key:ident;)*) => {
        $(impl Request for kafka_protocol::messages::$req {
            const KEY: ApiKey = ApiKey::$key;
            type Response = kafka_protocol::messages::$resp;
        })*
    };
}

requests! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
    MetadataRequest => MetadataResponse, Metadata;
    ProduceRequest => ProduceResponse, Produce;
    FetchRequest => FetchResponse, Fetch;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics;
    DescribeLogDirsRequest => DescribeLogDirsResponse, DescribeLogDirs;
    IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, IncrementalAlterConfigs;
    AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse, AlterUserScramCredentials;
}

/// The highest version of each API this client speaks (and was tested with); the broker's
/// `ApiVersions` range lowers it. Produce and Fetch stop before topic ids replaced names.
pub fn our_max(key: ApiKey) -> i16 {
    match key {
        ApiKey::ApiVersions => 3,
        ApiKey::Metadata => 12,
        ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 5,
        ApiKey::DescribeLogDirs => 4,
        ApiKey::SaslHandshake => 1,
        ApiKey::SaslAuthenticate => 2,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::AlterUserScramCredentials => 0,
        _ => 0,
    }
}

/// Credentials of a connection.
#[derive(Clone)]
pub struct Auth {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: Option<crate::Secret>,
}

/// An open, authenticated connection.
pub struct Conn {
    stream: BufReader<Stream>,
    /// `host:port`, for messages.
    pub broker: String,
    next_corr: i32,
    /// The broker's supported range per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// Requests sent whose responses are not read yet: correlation id, key, version.
    pending: VecDeque<(i32, ApiKey, i16)>,
    user: String,
}

impl Conn {
    /// Connects, asks `ApiVersions` and authenticates.
    pub fn open(host: &str, port: u16, o: &ConnectOptions, auth: &Auth) -> Result<Conn, BackendError> {
        let broker = format!("{host}:{port}");
        let stream = Stream::connect(host, port, o).map_err(|e| io_error(SYS, &broker, "connect", e))?;
        let mut c = Conn {
            stream: BufReader::with_capacity(256 * 1024, stream),
            broker,
            next_corr: 1,
            versions: HashMap::new(),
            pending: VecDeque::new(),
            user: auth.user.clone(),
        };
        c.negotiate()?;
        if auth.mechanism != Mechanism::None {
            c.authenticate(auth)?;
        }
        Ok(c)
    }

    /// `ApiVersions` v3, or v0 when the broker says it does not know v3 (it then answers in
    /// v0's format with its own ranges).
    fn negotiate(&mut self) -> Result<(), BackendError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("dedup-lab"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = match self.call_at(&req, 3, "ask which API versions it speaks") {
            Ok(r) if r.error_code == 35 => self.call_at(&ApiVersionsRequest::default(), 0, "ask API versions")?,
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        if resp.error_code != 0 {
            return Err(code_error(SYS, &self.broker, &self.user, "report its API versions", resp.error_code, None));
        }
        self.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The APIs among `keys` the broker does not offer in a version we speak.
    pub fn missing(&self, keys: &[ApiKey]) -> Vec<String> {
        missing_of(&self.versions, keys)
    }

    /// The version to use for `key`: the highest both sides speak.
    pub fn version_of(&self, key: ApiKey) -> Option<i16> {
        version_in(&self.versions, key)
    }

    fn authenticate(&mut self, auth: &Auth) -> Result<(), BackendError> {
        use secrecy::ExposeSecret;
        let mech = auth.mechanism.wire_name();
        let hs =
            self.call(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)), "start SASL")?;
        if hs.error_code != 0 {
            let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(BackendError::msg(format!(
                "kafka: broker {} does not accept SASL mechanism {mech} on this listener (it offers: {}); set \
                 `sasl_mechanism` to one of those, or connect to the listener that has {mech}",
                self.broker,
                if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
            ))
            .classed(if hs.error_code == 33 { ErrorClass::Config } else { ErrorClass::Authentication }));
        }
        let password = auth.password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default();
        match auth.mechanism {
            Mechanism::None => Ok(()),
            Mechanism::Plain => {
                let mut msg = Vec::with_capacity(auth.user.len() + password.len() + 2);
                msg.push(0);
                msg.extend_from_slice(auth.user.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.as_bytes());
                self.sasl_round(msg).map(|_| ())
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let hash =
                    if auth.mechanism == Mechanism::ScramSha256 { scram::Hash::Sha256 } else { scram::Hash::Sha512 };
                let nonce = crate::net::consistency::random_token();
                let mut client = scram::Client::new(hash, &auth.user, password.as_bytes(), &nonce);
                let server_first = self.sasl_round(client.first())?;
                let fin = client.respond(&server_first).map_err(|e| self.scram_error(e))?;
                let server_final = self.sasl_round(fin)?;
                client.verify(&server_final).map_err(|e| self.scram_error(e))
            }
        }
    }

    fn scram_error(&self, e: scram::ScramError) -> BackendError {
        BackendError::with_source(
            format!("kafka: SCRAM authentication as {} with broker {} failed", self.user, self.broker),
            e,
        )
        .classed(ErrorClass::Authentication)
    }

    /// One `SaslAuthenticate` round; the broker's bytes back.
    fn sasl_round(&mut self, bytes: Vec<u8>) -> Result<Bytes, BackendError> {
        let resp =
            self.call(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)), "authenticate")?;
        if resp.error_code != 0 {
            return Err(code_error(
                SYS,
                &self.broker,
                &self.user,
                &format!("authenticate as {}", self.user),
                resp.error_code,
                resp.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        Ok(resp.auth_bytes)
    }

    /// Sends `req` at the negotiated version without waiting for the response.
    pub fn send<R: Request>(&mut self, req: &R, what: &str) -> Result<(), BackendError> {
        let key = api_key::<R>();
        let version = self.version_of(key).ok_or_else(|| {
            BackendError::msg(format!(
                "kafka: broker {} does not offer {key:?} in a version dedup-lab speaks (up to v{}), needed to {what}",
                self.broker,
                our_max(key)
            ))
            .classed(ErrorClass::BadRequest)
        })?;
        self.send_at(req, version, what)
    }

    fn send_at<R: Request>(&mut self, req: &R, version: i16, what: &str) -> Result<(), BackendError> {
        let key = api_key::<R>();
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1).max(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("dedup-lab")));
        let hv = key.request_header_version(version);
        let size = header.compute_size(hv).and_then(|h| Ok(h + req.compute_size(version)?));
        let size = size.map_err(|e| protocol_error(SYS, &self.broker, what, e))?;
        let mut buf = BytesMut::with_capacity(size + 4);
        buf.put_i32(size as i32);
        header.encode(&mut buf, hv).map_err(|e| protocol_error(SYS, &self.broker, what, e))?;
        req.encode(&mut buf, version).map_err(|e| protocol_error(SYS, &self.broker, what, e))?;
        let s = self.stream.get_mut();
        s.write_all(&buf).and_then(|_| s.flush()).map_err(|e| io_error(SYS, &self.broker, what, e))?;
        self.pending.push_back((corr, key, version));
        Ok(())
    }

    /// Reads the response to the oldest request in flight, which must be of type `R`.
    pub fn recv<R: Request>(&mut self, what: &str) -> Result<R::Response, BackendError> {
        let (corr, key, version) =
            self.pending.pop_front().ok_or_else(|| protocol_error(SYS, &self.broker, what, "no request in flight"))?;
        if key != api_key::<R>() {
            return Err(protocol_error(SYS, &self.broker, what, format!("expected a {key:?} response")));
        }
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(|e| io_error(SYS, &self.broker, what, e))?;
        let len = i32::from_be_bytes(len);
        if !(4..=(1 << 30)).contains(&len) {
            return Err(protocol_error(SYS, &self.broker, what, format!("frame of {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).map_err(|e| io_error(SYS, &self.broker, what, e))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| protocol_error(SYS, &self.broker, what, e))?;
        if header.correlation_id != corr {
            return Err(protocol_error(
                SYS,
                &self.broker,
                what,
                format!("correlation id {} where {corr} was expected", header.correlation_id),
            ));
        }
        let resp = R::Response::decode(&mut body, version).map_err(|e| protocol_error(SYS, &self.broker, what, e))?;
        if body.has_remaining() && key != ApiKey::ApiVersions {
            return Err(protocol_error(SYS, &self.broker, what, format!("{} bytes left over", body.remaining())));
        }
        Ok(resp)
    }

    /// Sends `req` and waits for its response.
    pub fn call<R: Request>(&mut self, req: &R, what: &str) -> Result<R::Response, BackendError> {
        self.send(req, what)?;
        self.recv::<R>(what)
    }

    fn call_at<R: Request>(&mut self, req: &R, version: i16, what: &str) -> Result<R::Response, BackendError> {
        self.send_at(req, version, what)?;
        self.recv::<R>(what)
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

fn api_key<R: Request>() -> ApiKey {
    R::KEY
}

/// The version to use for `key` given the broker's ApiVersions ranges (`api key → (min,
/// max)`): the highest both sides speak, or `None`.
fn version_in(versions: &HashMap<i16, (i16, i16)>, key: ApiKey) -> Option<i16> {
    let (bmin, bmax) = *versions.get(&(key as i16))?;
    let v = bmax.min(our_max(key));
    (v >= bmin).then_some(v)
}

/// The APIs among `keys` that the ranges do not offer in a version we speak.
fn missing_of(versions: &HashMap<i16, (i16, i16)>, keys: &[ApiKey]) -> Vec<String> {
    keys.iter().filter(|k| version_in(versions, **k).is_none()).map(|k| format!("{k:?}")).collect()
}

#[cfg(test)]
mod missing_tests {
    use super::*;

    /// A broker without DescribeLogDirs (as tansu 0.6.0) and one whose Produce starts above
    /// the versions we speak: both named, nothing else.
    #[test]
    fn apis_a_broker_lacks_or_offers_only_in_versions_we_do_not_speak_are_named() {
        let used = crate::kafka::cluster::USED_APIS;
        let mut all: HashMap<i16, (i16, i16)> = used.iter().map(|k| (*k as i16, (0, our_max(*k)))).collect();
        assert!(missing_of(&all, used).is_empty());
        all.remove(&(ApiKey::DescribeLogDirs as i16));
        all.insert(ApiKey::Produce as i16, (our_max(ApiKey::Produce) + 1, our_max(ApiKey::Produce) + 3));
        assert_eq!(missing_of(&all, used), ["Produce", "DescribeLogDirs"]);
        all.insert(ApiKey::Fetch as i16, (4, 20));
        assert_eq!(version_in(&all, ApiKey::Fetch), Some(our_max(ApiKey::Fetch)), "the highest both speak");
    }
}
