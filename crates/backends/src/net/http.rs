//! The one HTTP client of dedup-lab: for the ClickHouse and S3 backends and the Prometheus,
//! scrape and Pushgateway clients. Blocking (the backends are synchronous), HTTP/1.1.
//!
//! Built on `ureq` 3 without any of its TLS, proxy or compression features: HTTPS runs
//! through [`TlsConnector`] here, on the same rustls [`ClientConfig`] every other driver uses
//! ([`super::tls::client_config`]), so `sslmode`, `sslrootcert` and `tls_server_name` mean the
//! same everywhere.
//!
//! No surprises: no proxy unless [`HttpOptions::proxy`] names one (environment variables
//! such as `HTTPS_PROXY` are ignored), no redirects (they could carry credentials elsewhere),
//! a connect timeout and a whole-request timeout (including reading the body). Request and
//! response bodies stream. Every error carries an [`ErrorClass`]: 401 authentication, 403
//! permission, 408 timeout, other 4xx bad request, 5xx server, and the socket and TLS classes
//! of [`super::class`]. A message names the system, method and URL (without user info or
//! query, which may hold credentials), the status and a bounded excerpt of the body — never a
//! header value.

use super::class::{classify_chain, find_rustls, tls_class};
use super::settings::{ServerSettings, SslMode};
use super::tls::{TlsHints, client_config, explain_with};
use crate::Secret;
use dedup_lab_core::{BackendError, ErrorClass};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use secrecy::ExposeSecret;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use ureq::http::{self, HeaderName, HeaderValue, Method};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};
use ureq::{Agent, AsSendBody, SendBody};

/// How many bytes of an error response's body go into the message.
pub const EXCERPT_BYTES: usize = 512;

/// What a client is built from.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The system's name, first word of every message (`clickhouse`).
    pub system: String,
    /// TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// The whole request, from connecting to reading the last byte of the body; `None`: no limit.
    pub timeout: Option<Duration>,
    /// The rustls configuration for `https://` URLs; `None`: such URLs are refused.
    pub tls: Option<Arc<ClientConfig>>,
    /// The name the server's certificate must be valid for, instead of the URL's host.
    pub server_name: Option<String>,
    /// Hints for TLS failures (the CA file and name settings), when built from settings.
    pub tls_hints: Option<TlsHints>,
    /// An HTTP CONNECT proxy (`http://proxy:3128`); `None`: connect directly.
    pub proxy: Option<String>,
}

impl HttpOptions {
    /// Direct connections, no TLS, no request timeout.
    pub fn new(system: &str, connect_timeout: Duration) -> HttpOptions {
        HttpOptions {
            system: system.to_string(),
            connect_timeout,
            timeout: None,
            tls: None,
            server_name: None,
            tls_hints: None,
            proxy: None,
        }
    }

    /// From the shared server settings: TLS unless `sslmode=disable`, `connect_timeout`, and
    /// `statement_timeout` as the whole-request timeout.
    pub fn from_settings(s: &ServerSettings) -> Result<HttpOptions, BackendError> {
        let tls = if s.tls.mode == SslMode::Disable { None } else { Some(client_config(s)?) };
        Ok(HttpOptions {
            system: s.system.to_string(),
            connect_timeout: s.connect_timeout,
            timeout: s.statement_timeout,
            tls,
            server_name: s.tls.server_name.clone(),
            tls_hints: Some(TlsHints::of(s)),
            proxy: None,
        })
    }
}

/// `https://host:port` (or `http://` with `sslmode=disable`) for the settings' server.
pub fn base_url(s: &ServerSettings) -> String {
    let scheme = if s.tls.mode == SslMode::Disable { "http" } else { "https" };
    let host = if s.host.contains(':') { format!("[{}]", s.host) } else { s.host.clone() };
    format!("{scheme}://{host}:{}", s.port)
}

/// A blocking HTTP client; cheap to share (connections are pooled).
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: Agent,
    system: String,
    tls_hints: Option<TlsHints>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl HttpClient {
    pub fn new(opts: HttpOptions) -> Result<HttpClient, BackendError> {
        let proxy = match &opts.proxy {
            None => None,
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| {
                BackendError::with_source(format!("{}: proxy {p:?} is not a proxy URL", opts.system), e)
                    .classed(ErrorClass::Config)
            })?),
        };
        let config = Agent::config_builder()
            // Set explicitly: the default reads proxies from the environment.
            .proxy(proxy)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_global(opts.timeout)
            .user_agent(concat!("dedup-lab/", env!("CARGO_PKG_VERSION")))
            .build();
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(TlsConnector { config: opts.tls.clone(), server_name: opts.server_name.clone() });
        Ok(HttpClient {
            agent: Agent::with_parts(config, connector, DefaultResolver::default()),
            system: opts.system,
            tls_hints: opts.tls_hints,
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
        })
    }

    /// A request; `method` is `GET`, `PUT`, … (case-sensitive, as HTTP has it).
    pub fn request(&self, method: &str, url: &str) -> Request<'_> {
        Request {
            client: self,
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            secrets: Vec::new(),
            accepted: Vec::new(),
        }
    }

    pub fn get(&self, url: &str) -> Request<'_> {
        self.request("GET", url)
    }

    pub fn put(&self, url: &str) -> Request<'_> {
        self.request("PUT", url)
    }

    pub fn post(&self, url: &str) -> Request<'_> {
        self.request("POST", url)
    }

    pub fn delete(&self, url: &str) -> Request<'_> {
        self.request("DELETE", url)
    }

    pub fn head(&self, url: &str) -> Request<'_> {
        self.request("HEAD", url)
    }
}

/// One request being built. Header values are kept out of every message; values marked
/// secret are also blanked out of response excerpts (a server may echo them).
pub struct Request<'a> {
    client: &'a HttpClient,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    secrets: Vec<String>,
    accepted: Vec<u16>,
}

impl Request<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A header whose value is a credential (a token, a signature).
    pub fn secret_header(mut self, name: &str, value: &Secret) -> Self {
        let v = value.expose_secret().to_string();
        self.secrets.push(v.clone());
        self.headers.push((name.to_string(), v));
        self
    }

    /// `Authorization: Basic …` for `user` and `password` (none: an empty password).
    pub fn basic_auth(mut self, user: &str, password: Option<&Secret>) -> Self {
        let pw = password.map(|p| p.expose_secret()).unwrap_or_default();
        let encoded = base64(format!("{user}:{pw}").as_bytes());
        if !pw.is_empty() {
            self.secrets.push(pw.to_string());
        }
        self.secrets.push(encoded.clone());
        self.headers.push(("authorization".into(), format!("Basic {encoded}")));
        self
    }

    /// Treats `status` as an answer rather than an error (a 404 that means "absent").
    pub fn accept(mut self, status: u16) -> Self {
        self.accepted.push(status);
        self
    }

    /// Sends without a body.
    pub fn call(self) -> Result<Response, BackendError> {
        self.send(())
    }

    pub fn send_bytes(self, body: &[u8]) -> Result<Response, BackendError> {
        self.send(body)
    }

    /// Streams `body` without holding it in memory: with `Content-Length: len` when the
    /// length is known (object stores need it), chunked otherwise.
    pub fn send_reader(mut self, body: &mut dyn Read, len: Option<u64>) -> Result<Response, BackendError> {
        if let Some(n) = len {
            self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
            self.headers.push(("content-length".into(), n.to_string()));
        }
        self.send(SendBody::from_reader(body))
    }

    /// `GET https://host:8123/path` for messages: no user info, no query.
    fn what(&self) -> String {
        format!("{} {} {}", self.client.system, self.method, redacted_url(&self.url))
    }

    fn send(self, body: impl AsSendBody) -> Result<Response, BackendError> {
        let what = self.what();
        let config_error = |why: String| BackendError::msg(format!("{what}: {why}")).classed(ErrorClass::Config);
        let method =
            Method::from_bytes(self.method.as_bytes()).map_err(|_| config_error("not an HTTP method".into()))?;
        let mut req = http::Request::builder().method(method).uri(&self.url);
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| config_error(format!("{k:?} is not a header name")))?;
            // The value is not shown: it may be a credential.
            let value =
                HeaderValue::from_str(v).map_err(|_| config_error(format!("the value of header {k} is not valid")))?;
            req = req.header(name, value);
        }
        let req = req.body(body).map_err(|_| config_error("not a valid URL".into()))?;
        let resp = self.client.agent.run(req).map_err(|e| self.transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let response = Response { status, headers: parts.headers, body, what };
        if (200..300).contains(&status) || self.accepted.contains(&status) {
            return Ok(response);
        }
        Err(response.into_error(&self.secrets))
    }

    fn transport_error(&self, what: &str, e: ureq::Error) -> BackendError {
        let c = self.client;
        let secs = |d: Duration| format!("{} s", d.as_secs_f64());
        // ureq's error does not expose its cause through `source()`; look inside by hand.
        let inner: Option<&(dyn std::error::Error + 'static)> = match &e {
            ureq::Error::Io(io) => Some(io),
            ureq::Error::Other(b) => Some(b.as_ref()),
            _ => None,
        };
        let tls = inner.and_then(find_rustls);
        let (hint, class) = match &e {
            ureq::Error::Timeout(t) => {
                let limit = match t {
                    ureq::Timeout::Connect | ureq::Timeout::Resolve => {
                        format!("{} (connect timeout)", secs(c.connect_timeout))
                    }
                    _ => c.timeout.map(|d| format!("{} (request timeout)", secs(d))).unwrap_or_else(|| "time".into()),
                };
                (format!("no complete answer within {limit}"), ErrorClass::Timeout)
            }
            ureq::Error::HostNotFound => ("cannot resolve the host name".to_string(), ErrorClass::Unreachable),
            ureq::Error::ConnectionFailed => ("cannot connect".to_string(), ErrorClass::Unreachable),
            ureq::Error::ConnectProxyFailed(_) | ureq::Error::InvalidProxyUrl => {
                ("the proxy failed".to_string(), ErrorClass::Unreachable)
            }
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => ("not a valid request".to_string(), ErrorClass::Config),
            ureq::Error::Other(b) if b.is::<NoTls>() => (b.to_string(), ErrorClass::Config),
            _ if tls.is_some() => {
                let t = tls.expect("checked");
                let hint = match (&c.tls_hints, inner) {
                    (Some(h), Some(inner)) => explain_with(inner, h),
                    _ => None,
                };
                (hint.unwrap_or_else(|| format!("TLS handshake failed ({t})")), tls_class(t))
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                ("nothing accepts connections there; is the server running?".to_string(), ErrorClass::Unreachable)
            }
            _ => match inner.and_then(classify_chain) {
                Some(ErrorClass::ConnectionLost) => ("the connection was lost".to_string(), ErrorClass::ConnectionLost),
                Some(class) => ("failed".to_string(), class),
                // A response that is not HTTP, or other protocol trouble on the server's side.
                None => ("failed".to_string(), ErrorClass::Server),
            },
        };
        BackendError::with_source(format!("{what}: {hint}"), e).classed(class)
    }
}

/// A response with a 2xx (or accepted) status; the body is not read yet.
pub struct Response {
    status: u16,
    headers: http::HeaderMap,
    body: ureq::Body,
    what: String,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response").field("status", &self.status).field("what", &self.what).finish()
    }
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A response header, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a stream; read errors are `io::Error`s (classify them with
    /// [`super::class::io_class`]).
    pub fn into_reader(self) -> impl Read + Send + 'static {
        self.body.into_reader()
    }

    /// The whole body, refusing one larger than `limit` bytes.
    pub fn bytes(self, limit: u64) -> Result<Vec<u8>, BackendError> {
        let what = self.what.clone();
        let mut out = Vec::new();
        let read = self.into_reader().take(limit.saturating_add(1)).read_to_end(&mut out);
        match read {
            Err(e) => {
                let class = classify_chain(&e).unwrap_or(ErrorClass::ConnectionLost);
                Err(BackendError::with_source(format!("{what}: reading the response"), e).classed(class))
            }
            Ok(n) if n as u64 > limit => Err(BackendError::msg(format!(
                "{what}: the response is larger than {limit} bytes, more than this answer may be"
            ))
            .classed(ErrorClass::Server)),
            Ok(_) => Ok(out),
        }
    }

    /// The whole body as text (invalid UTF-8 replaced), refusing one larger than `limit` bytes.
    pub fn text(self, limit: u64) -> Result<String, BackendError> {
        self.bytes(limit).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The error for a status that is not a success: the class from the status, the status
    /// line and the first [`EXCERPT_BYTES`] of the body on one line, `secrets` blanked out.
    fn into_error(self, secrets: &[String]) -> BackendError {
        let status = self.status;
        let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let what = self.what.clone();
        let mut raw = Vec::new();
        // The excerpt is best effort: a body that cannot be read leaves it empty.
        let _ = self.into_reader().take(EXCERPT_BYTES as u64 + 1).read_to_end(&mut raw);
        let cut = raw.len() > EXCERPT_BYTES;
        raw.truncate(EXCERPT_BYTES);
        let mut excerpt = String::from_utf8_lossy(&raw).split_whitespace().collect::<Vec<_>>().join(" ");
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            excerpt = excerpt.replace(s.as_str(), "***");
        }
        if cut {
            excerpt.push_str(" …");
        }
        let body = if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") };
        let line = if reason.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status} {reason}") };
        BackendError::msg(format!("{what}: {line}{body}")).classed(status_class(status))
    }
}

/// The class of an HTTP error status.
pub fn status_class(status: u16) -> ErrorClass {
    match status {
        401 | 407 => ErrorClass::Authentication,
        403 => ErrorClass::Permission,
        408 => ErrorClass::Timeout,
        400..=499 => ErrorClass::BadRequest,
        _ => ErrorClass::Server,
    }
}

/// `scheme://host:port/path` of a URL: user info and query left out (either may hold a
/// credential: `user:password@`, `?password=`, a presigned signature).
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() { format!("{host}{path}") } else { format!("{scheme}://{host}{path}") }
}

/// Standard base64 with padding (for basic authentication).
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `https://` URL on a client without TLS settings.
#[derive(Debug)]
struct NoTls;

impl std::fmt::Display for NoTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an https:// URL, but this client has no TLS configuration (sslmode=disable?)")
    }
}

impl std::error::Error for NoTls {}

/// Wraps the TCP transport of `https://` URLs in rustls with our [`ClientConfig`].
#[derive(Debug)]
struct TlsConnector {
    config: Option<Arc<ClientConfig>>,
    server_name: Option<String>,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else { return Ok(None) };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let Some(config) = &self.config else {
            return Err(ureq::Error::Other(Box::new(NoTls)));
        };
        let host = match &self.server_name {
            Some(n) => n.clone(),
            None => details.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string(),
        };
        let name = ServerName::try_from(host).map_err(|e| ureq::Error::Other(Box::new(e)))?;
        let mut conn = ClientConnection::new(config.clone(), name)
            .map_err(|e| ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // A certificate rustls refuses comes back as an io::Error holding the rustls::Error.
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_in_messages() {
        assert_eq!(redacted_url("https://u:pw@db:8443/x/y?password=pw#f"), "https://db:8443/x/y");
        assert_eq!(redacted_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(redacted_url("http://[::1]:80/?X-Amz-Signature=abc"), "http://[::1]:80/");
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain}");
        }
    }

    #[test]
    fn statuses_map_to_classes() {
        use ErrorClass::*;
        for (status, class) in [
            (400, BadRequest),
            (401, Authentication),
            (403, Permission),
            (404, BadRequest),
            (408, Timeout),
            (413, BadRequest),
            (500, Server),
            (503, Server),
        ] {
            assert_eq!(status_class(status), class, "{status}");
        }
    }
}
