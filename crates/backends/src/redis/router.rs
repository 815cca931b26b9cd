//! Where each command goes: the one server of a standalone deployment, or the master that
//! owns the key's slot in a cluster (from `CLUSTER SLOTS`), following `MOVED` (the map is
//! read again) and `ASK` (one `ASKING` + retry) redirections. One connection per node,
//! opened on first use; a connection that fails is dropped and reopened by the next call.
//!
//! Pipelines are grouped per master, not per slot: a pipeline is not a transaction, so a
//! node accepts any mix of its own slots in one, and keys need no shared hash tag.

use super::errors::{io_error, reply_error};
use super::resp::{Conn, ConnectOptions, Reply, slot};
use super::settings::{Mode, Settings};
use crate::Secret;
use dedup_lab_core::{BackendError, ErrorClass};
use secrecy::ExposeSecret;
use std::collections::HashMap;

const SLOTS: usize = 16384;
const NO_OWNER: u16 = u16::MAX;

/// A pipeline sent and not yet read: which commands went to which master.
#[derive(Debug)]
pub struct InFlight {
    by_node: Vec<(String, Vec<usize>)>,
    len: usize,
}

/// The slot map of a cluster: which master owns each slot.
#[derive(Debug, Clone, Default)]
pub struct SlotMap {
    owner: Vec<u16>,
    /// `host:port` of every master that owns at least one slot.
    pub masters: Vec<String>,
}

impl SlotMap {
    /// Slot ranges no master owns.
    pub fn uncovered(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (i, o) in self.owner.iter().enumerate() {
            if *o == NO_OWNER {
                match out.last_mut() {
                    Some((_, end)) if *end + 1 == i => *end = i,
                    _ => out.push((i, i)),
                }
            }
        }
        out
    }
}

pub struct Router {
    /// `redis 127.0.0.1:6379 as dedup`: the start of every message.
    pub sys: String,
    user: String,
    password: Option<Secret>,
    /// Where the password came from (`$DEDUP_REDIS_PASSWORD`), for hints.
    password_hint: String,
    seed: String,
    opts: ConnectOptions,
    /// What a TLS failure message names (the CA file, the name checked).
    tls_hints: crate::net::tls::TlsHints,
    conns: HashMap<String, Conn>,
    /// `Some` in cluster mode.
    pub cluster: Option<SlotMap>,
    /// The server version `HELLO` reported.
    pub version: String,
}

fn split_node(node: &str) -> (&str, u16) {
    match node.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p.parse().unwrap_or(0)),
        None => (node, 0),
    }
}

fn name_of(args: &[Vec<u8>]) -> String {
    args.first().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).unwrap_or_default()
}

impl Router {
    /// Connects to the configured address, authenticates, and reads the cluster's slot map
    /// when the server is (or `mode` says it is) a cluster node.
    pub fn open(
        s: &Settings,
        tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    ) -> Result<Router, BackendError> {
        let sv = &s.server;
        let mut r = Router {
            sys: format!("redis {}", s.endpoint()),
            user: sv.user.clone(),
            password: sv.password.clone(),
            password_hint: sv.password_source.to_string(),
            seed: format!("{}:{}", sv.host, sv.port),
            opts: ConnectOptions { connect_timeout: sv.connect_timeout, io_timeout: sv.statement_timeout, tls },
            tls_hints: crate::net::tls::TlsHints::of(sv),
            conns: HashMap::new(),
            cluster: None,
            version: String::new(),
        };
        let seed = r.seed.clone();
        let (conn, hello) = r.connect_node(&seed)?;
        r.conns.insert(seed.clone(), conn);
        r.version = hello_field(&hello, "version").unwrap_or_default();
        let server_mode = hello_field(&hello, "mode");
        let is_cluster = match s.mode {
            Mode::Cluster => true,
            Mode::Standalone => false,
            Mode::Auto => server_mode.as_deref() == Some("cluster"),
        };
        if s.mode == Mode::Cluster && server_mode.as_deref().is_some_and(|m| m != "cluster") {
            return Err(BackendError::msg(format!(
                "{}: mode = \"cluster\" is set, but the server runs in {} mode; set mode = \"standalone\" or \"auto\"",
                r.sys,
                server_mode.unwrap_or_default()
            ))
            .classed(ErrorClass::Config));
        }
        if is_cluster {
            r.refresh()?;
        }
        Ok(r)
    }

    /// A new connection to `node`, authenticated (`HELLO 2 AUTH user password`); returns the
    /// `HELLO` reply.
    pub fn connect_node(&self, node: &str) -> Result<(Conn, Reply), BackendError> {
        let (host, port) = split_node(node);
        let mut c = Conn::connect(host, port, &self.opts).map_err(|e| {
            let what = crate::net::tls::explain_with(&e, &self.tls_hints).unwrap_or_else(|| "cannot connect".into());
            io_error(&self.sys, node, &what, e)
        })?;
        let mut args: Vec<Vec<u8>> = vec![b"HELLO".to_vec(), b"2".to_vec()];
        if let Some(pw) = &self.password {
            args.extend([b"AUTH".to_vec(), self.user.as_bytes().to_vec(), pw.expose_secret().as_bytes().to_vec()]);
        }
        let reply = c.call(&args).map_err(|e| io_error(&self.sys, node, "lost the connection while logging in", e))?;
        if let Reply::Error(msg) = &reply {
            // The password is never part of a message: the command is named, not shown.
            return Err(reply_error(&self.sys, &self.user, &self.password_hint, node, "HELLO (login)", msg, ""));
        }
        Ok((c, reply))
    }

    /// Every master (the one server when standalone), as `host:port`.
    pub fn masters(&self) -> Vec<String> {
        match &self.cluster {
            Some(m) => m.masters.clone(),
            None => vec![self.seed.clone()],
        }
    }

    /// The node that owns `key`.
    pub fn node_for(&self, key: &[u8]) -> Result<String, BackendError> {
        let Some(map) = &self.cluster else { return Ok(self.seed.clone()) };
        let s = slot(key);
        match map.owner.get(usize::from(s)) {
            Some(&o) if o != NO_OWNER => Ok(map.masters[usize::from(o)].clone()),
            _ => Err(BackendError::msg(format!(
                "{}: no master serves slot {s} (of key {}); the cluster does not cover all 16384 slots",
                self.sys,
                String::from_utf8_lossy(key)
            ))
            .classed(ErrorClass::ConnectionLost)),
        }
    }

    /// Reads the slot map again (`CLUSTER SLOTS`), from the seed or any known master.
    pub fn refresh(&mut self) -> Result<(), BackendError> {
        let mut candidates = vec![self.seed.clone()];
        if let Some(m) = &self.cluster {
            candidates.extend(m.masters.iter().filter(|n| **n != self.seed).cloned());
        }
        let mut last = None;
        for node in candidates {
            match self.raw(&node, &[b"CLUSTER".to_vec(), b"SLOTS".to_vec()]) {
                Ok(Reply::Error(msg)) => {
                    return Err(reply_error(
                        &self.sys,
                        &self.user,
                        &self.password_hint,
                        &node,
                        "CLUSTER SLOTS",
                        &msg,
                        "learn which master owns which keys",
                    ));
                }
                Ok(reply) => {
                    self.cluster = Some(self.parse_slots(&node, &reply)?);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| BackendError::msg(format!("{}: no cluster node to ask", self.sys))))
    }

    fn parse_slots(&self, asked: &str, reply: &Reply) -> Result<SlotMap, BackendError> {
        let (asked_host, _) = split_node(asked);
        let mut map = SlotMap { owner: vec![NO_OWNER; SLOTS], masters: Vec::new() };
        for range in reply.items() {
            let it = range.items();
            let (Some(start), Some(end)) = (it.first().and_then(Reply::int), it.get(1).and_then(Reply::int)) else {
                continue;
            };
            let master = it.get(2).map(Reply::items).unwrap_or(&[]);
            let host = master.first().and_then(Reply::text).filter(|h| !h.is_empty() && h != "?");
            let host = host.unwrap_or_else(|| asked_host.to_string());
            let Some(port) = master.get(1).and_then(Reply::int) else { continue };
            let node = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            let idx = match map.masters.iter().position(|m| *m == node) {
                Some(i) => i,
                None => {
                    map.masters.push(node);
                    map.masters.len() - 1
                }
            };
            for s in start.max(0) as usize..=(end.max(0) as usize).min(SLOTS - 1) {
                map.owner[s] = idx as u16;
            }
        }
        if map.masters.is_empty() {
            return Err(BackendError::msg(format!("{}: CLUSTER SLOTS on {asked} lists no master", self.sys))
                .classed(ErrorClass::ConnectionLost));
        }
        Ok(map)
    }

    fn conn(&mut self, node: &str) -> Result<&mut Conn, BackendError> {
        if !self.conns.contains_key(node) {
            let (c, _) = self.connect_node(node)?;
            self.conns.insert(node.to_string(), c);
        }
        Ok(self.conns.get_mut(node).expect("inserted above"))
    }

    /// Sends one command to `node`; returns its reply, error replies included.
    pub fn raw(&mut self, node: &str, args: &[Vec<u8>]) -> Result<Reply, BackendError> {
        let sys = self.sys.clone();
        let r = self.conn(node)?.call(args);
        r.map_err(|e| {
            self.conns.remove(node);
            io_error(&sys, node, &format!("{} failed", name_of(args)), e)
        })
    }

    /// The error for an error reply to `args` from `node`.
    pub fn fail(&self, node: &str, args: &[Vec<u8>], msg: &str, why: &str) -> BackendError {
        reply_error(&self.sys, &self.user, &self.password_hint, node, &name_of(args), msg, why)
    }

    /// Sends one command to `node`; an error reply is an error.
    pub fn on(&mut self, node: &str, args: &[Vec<u8>], why: &str) -> Result<Reply, BackendError> {
        match self.raw(node, args)? {
            Reply::Error(msg) => Err(self.fail(node, args, &msg, why)),
            r => Ok(r),
        }
    }

    /// Sends a command whose key is `args[1]` to the node that owns it, following
    /// redirections; an error reply is an error.
    pub fn keyed(&mut self, args: &[Vec<u8>], why: &str) -> Result<Reply, BackendError> {
        let node = self.node_for(&args[1])?;
        let reply = self.raw(&node, args)?;
        self.redirected(node, args, reply, why)
    }

    /// Follows `MOVED` / `ASK` for the reply `reply` that `node` gave to `args`.
    fn redirected(
        &mut self,
        mut node: String,
        args: &[Vec<u8>],
        mut reply: Reply,
        why: &str,
    ) -> Result<Reply, BackendError> {
        for _ in 0..5 {
            let Reply::Error(msg) = &reply else { return Ok(reply) };
            let mut words = msg.split_whitespace();
            match (words.next(), words.nth(1)) {
                (Some("MOVED"), Some(to)) => {
                    self.refresh()?;
                    node = to.to_string();
                    reply = self.raw(&node, args)?;
                }
                (Some("ASK"), Some(to)) => {
                    node = to.to_string();
                    let sys = self.sys.clone();
                    let c = self.conn(&node)?;
                    let r = c
                        .queue(&[b"ASKING".to_vec()])
                        .and_then(|_| c.queue(args))
                        .and_then(|_| c.read())
                        .and_then(|_| c.read());
                    reply = r.map_err(|e| {
                        self.conns.remove(&node);
                        io_error(&sys, &node, &format!("{} failed", name_of(args)), e)
                    })?;
                }
                _ => return Err(self.fail(&node, args, msg, why)),
            }
        }
        Err(self.fail(&node, args, "too many redirections (the cluster is resharding)", why))
    }

    /// Runs commands (keys in `args[1]`) as one pipeline per master; returns the replies
    /// in order. Redirected commands are sent again one by one; other error replies are
    /// returned as they are, for the caller to judge.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>], why: &str) -> Result<Vec<Reply>, BackendError> {
        let sent = self.send(cmds)?;
        let replies = self.receive(sent)?;
        let mut out = Vec::with_capacity(cmds.len());
        for (c, r) in cmds.iter().zip(replies) {
            out.push(self.follow(c, r, why)?);
        }
        Ok(out)
    }

    /// Sends commands (keys in `args[1]`) as one pipeline per master, without reading the
    /// replies: every master gets its part before any reply is read, so the masters work
    /// at the same time, and the caller may prepare (and send) the next batch meanwhile.
    /// The replies must be read with [`receive`](Self::receive), in the order sent.
    pub fn send(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<InFlight, BackendError> {
        let mut by_node: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            let node = self.node_for(&c[1])?;
            match by_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, v)) => v.push(i),
                None => by_node.push((node, vec![i])),
            }
        }
        for (node, idx) in &by_node {
            let sys = self.sys.clone();
            let c = self.conn(node)?;
            let sent = idx.iter().try_for_each(|&i| c.queue(&cmds[i])).and_then(|_| c.flush());
            if let Err(e) = sent {
                // Other connections may hold unread replies: they all go.
                self.disconnect();
                return Err(io_error(&sys, node, &format!("sending a pipeline of {} commands failed", idx.len()), e));
            }
        }
        Ok(InFlight { by_node, len: cmds.len() })
    }

    /// The replies of a pipeline [`send`](Self::send) sent, in the order of its commands;
    /// redirections are not followed (see [`follow`](Self::follow)).
    pub fn receive(&mut self, sent: InFlight) -> Result<Vec<Reply>, BackendError> {
        let mut replies: Vec<Option<Reply>> = vec![None; sent.len];
        for (node, idx) in &sent.by_node {
            let sys = self.sys.clone();
            let Some(c) = self.conns.get_mut(node) else {
                return Err(BackendError::msg(format!("{sys} (node {node}): the connection of a pipeline was closed"))
                    .classed(ErrorClass::ConnectionLost));
            };
            let got: std::io::Result<Vec<Reply>> = idx.iter().map(|_| c.read()).collect();
            let got = match got {
                Ok(g) => g,
                Err(e) => {
                    self.disconnect();
                    let what = format!("reading the replies of a pipeline of {} commands failed", idx.len());
                    return Err(io_error(&sys, node, &what, e));
                }
            };
            for (&i, r) in idx.iter().zip(got) {
                replies[i] = Some(r);
            }
        }
        Ok(replies.into_iter().map(|r| r.expect("every command was sent")).collect())
    }

    /// `reply` to `cmd`, with a `MOVED` / `ASK` redirection followed (nothing may be in
    /// flight then).
    pub fn follow(&mut self, cmd: &[Vec<u8>], reply: Reply, why: &str) -> Result<Reply, BackendError> {
        if matches!(&reply, Reply::Error(m) if m.starts_with("MOVED ") || m.starts_with("ASK ")) {
            let node = self.node_for(&cmd[1])?;
            self.redirected(node, cmd, reply, why)
        } else {
            Ok(reply)
        }
    }

    /// Whether a reply is a redirection that [`follow`](Self::follow) resolves.
    pub fn is_redirect(reply: &Reply) -> bool {
        matches!(reply, Reply::Error(m) if m.starts_with("MOVED ") || m.starts_with("ASK "))
    }

    /// Every key matching `pattern` on `node` (`SCAN … MATCH … COUNT 1000`).
    pub fn scan(&mut self, node: &str, pattern: &str) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let args = vec![
                b"SCAN".to_vec(),
                cursor,
                b"MATCH".to_vec(),
                pattern.as_bytes().to_vec(),
                b"COUNT".to_vec(),
                b"1000".to_vec(),
            ];
            let r = self.on(node, &args, "find the lab's keys")?;
            let it = r.items();
            let next = it.first().and_then(Reply::text).unwrap_or_else(|| "0".into());
            for k in it.get(1).map(Reply::items).unwrap_or(&[]) {
                if let Reply::Bulk(Some(k)) = k {
                    keys.push(k.clone());
                }
            }
            if next == "0" {
                return Ok(keys);
            }
            cursor = next.into_bytes();
        }
    }

    /// Drops every connection (the next command opens new ones).
    pub fn disconnect(&mut self) {
        self.conns.clear();
    }
}

/// A field of a `HELLO` reply (a flat list of names and values in RESP2).
pub fn hello_field(reply: &Reply, name: &str) -> Option<String> {
    let it = reply.items();
    it.chunks(2).find(|p| p[0].text().as_deref() == Some(name)).and_then(|p| p.get(1)).and_then(Reply::text)
}
