//! A small RESP2 client over `std::net` (plain TCP or rustls): commands out, replies in,
//! pipelines by writing many commands before reading their replies.
//!
//! Why not the `redis` crate: dedup-lab needs pipelines, `HELLO`/`AUTH` with a user,
//! `CLUSTER SLOTS` routing with `MOVED`/`ASK`, and our one rustls configuration. That is a
//! few hundred lines here (this file and `router.rs`), with no async runtime and no second
//! TLS stack, against a crate whose cluster client pulls in both and hides which node a
//! command went to — which this tool must know to measure memory per master.

pub use crate::net::stream::ConnectOptions;
use crate::net::stream::Stream;
use std::io::{self, BufRead, BufReader, Write};
use std::time::Duration;

/// One reply. RESP2 only (`HELLO 2`): no maps, sets or doubles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    /// An error reply, e.g. `NOPERM this user has no permissions …`.
    Error(String),
    Int(i64),
    /// A bulk string; `None` is the nil reply.
    Bulk(Option<Vec<u8>>),
    /// An array; `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The text of a status or bulk reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => self.text().and_then(|t| t.trim().parse().ok()),
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(v)) => v,
            _ => &[],
        }
    }
}

/// One connection to one server.
pub struct Conn {
    stream: BufReader<Stream>,
    out: Vec<u8>,
    /// Commands written but whose replies are not read yet.
    pending: usize,
}

impl Conn {
    /// Connects to `host:port` (TCP, then TLS when configured) within the connect timeout.
    pub fn connect(host: &str, port: u16, o: &ConnectOptions) -> io::Result<Conn> {
        let stream = Stream::connect(host, port, o)?;
        Ok(Conn { stream: BufReader::with_capacity(64 * 1024, stream), out: Vec::new(), pending: 0 })
    }

    /// Sets the read limit (for a command that may take long, e.g. `SAVE`).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.get_ref().tcp().set_read_timeout(t)
    }

    /// Queues a command; nothing is sent before [`flush`](Self::flush) (or a buffer of
    /// several MiB).
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        write!(self.out, "*{}\r\n", args.len())?;
        for a in args {
            let a = a.as_ref();
            write!(self.out, "${}\r\n", a.len())?;
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.pending += 1;
        if self.out.len() >= 4 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.get_mut().write_all(&self.out)?;
            self.stream.get_mut().flush()?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads the reply of the oldest queued command.
    pub fn read(&mut self) -> io::Result<Reply> {
        self.flush()?;
        let r = read_reply(&mut self.stream)?;
        self.pending = self.pending.saturating_sub(1);
        Ok(r)
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        if self.pending > 0 {
            return Err(io::Error::other("a command was sent before the replies of a pipeline were read"));
        }
        self.queue(args)?;
        self.read()
    }
}

fn protocol(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RESP protocol error: {}", what.into()))
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended inside a reply"));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| protocol("bad integer"))
}

/// Reads one RESP2 reply.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_first().ok_or_else(|| protocol("empty line"))?;
    Ok(match kind {
        b'+' => Reply::Status(String::from_utf8_lossy(rest).into_owned()),
        b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
        b':' => Reply::Int(parse_int(rest)?),
        b'$' => {
            let n = parse_int(rest)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(protocol("bulk string without CRLF"));
                }
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
        }
        b'*' => {
            let n = parse_int(rest)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut v = Vec::with_capacity((n as usize).min(4096));
                for _ in 0..n {
                    v.push(read_reply(r)?);
                }
                Reply::Array(Some(v))
            }
        }
        other => return Err(protocol(format!("unexpected reply type {:?}", *other as char))),
    })
}

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The cluster slot of `key`: CRC16 of the hash tag (`{…}`, when non-empty) or of the key,
/// modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Values from `CLUSTER KEYSLOT` on a real server.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % 16384);
    }

    #[test]
    fn replies_parse() {
        let mut r: &[u8] = b"+OK\r\n-NOPERM no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n";
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Status("OK".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("NOPERM no".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Int(42));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(Some(b"abc".to_vec())));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(None));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(Vec::new()))])));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Array(None));
        let e = read_reply(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut cut: &[u8] = b"$5\r\nab";
        assert!(read_reply(&mut cut).is_err());
    }
}
