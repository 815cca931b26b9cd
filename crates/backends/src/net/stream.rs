//! One socket to one server: plain TCP or rustls over TCP, opened within the connect timeout,
//! with read and write limits. The byte-stream drivers (Redis's RESP, Kafka's protocol) sit
//! on it; the HTTP client has its own transport (net/http.rs).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How to open a connection.
#[derive(Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    /// Read and write limit of every request; `None`: wait as long as the server takes.
    pub io_timeout: Option<Duration>,
    /// TLS configuration and the name the certificate must be valid for.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// An open connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `host:port` (every address the name resolves to, in turn), then runs the
    /// TLS handshake when configured, all within the connect timeout.
    pub fn connect(host: &str, port: u16, o: &ConnectOptions) -> io::Result<Stream> {
        let mut last = None;
        let mut tcp = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, o.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| last.unwrap_or_else(|| io::Error::other("the host name resolves to nothing")))?;
        tcp.set_nodelay(true)?;
        let stream = match &o.tls {
            None => Stream::Plain(tcp),
            Some((cfg, name)) => {
                let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let conn = rustls::ClientConnection::new(cfg.clone(), server_name).map_err(io::Error::other)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                s.sock.set_read_timeout(Some(o.connect_timeout))?;
                s.sock.set_write_timeout(Some(o.connect_timeout))?;
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Stream::Tls(Box::new(s))
            }
        };
        stream.tcp().set_read_timeout(o.io_timeout)?;
        stream.tcp().set_write_timeout(o.io_timeout)?;
        Ok(stream)
    }

    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}
