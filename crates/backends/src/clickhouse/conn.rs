//! The connection: ClickHouse's HTTP interface through the shared HTTP client
//! ([`crate::net::http`]).
//!
//! Statements go in the POST body; an INSERT's statement goes in the `query` URL parameter
//! (18.16 cannot take both the statement and the rows in the body) and its rows, in
//! `FORMAT RowBinary`, in the body. The user and password travel in the `X-ClickHouse-User`
//! and `X-ClickHouse-Key` headers, never in a URL. Results are read as `TabSeparated` (small
//! answers: numbers, names) or `RowBinary` (payloads).

use super::errors;
use super::settings::Settings;
use crate::Secret;
use crate::net::http::{HttpClient, HttpOptions, base_url};
use dedup_lab_core::{BackendError, ErrorClass};

/// The largest answer read into memory (a record read back, a listing).
pub const MAX_ANSWER: u64 = 1 << 30;

/// One client (its connections are pooled by the shared HTTP client).
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient,
    base: String,
    user: String,
    password: Option<Secret>,
    /// `clickhouse 127.0.0.1:8123/default as dedup`.
    pub sys: String,
    /// Where the password came from, for the authentication hint.
    password_hint: String,
}

impl Client {
    pub fn new(s: &Settings) -> Result<Client, BackendError> {
        let http = HttpClient::new(HttpOptions::from_settings(&s.server)?)?;
        Ok(Client {
            http,
            base: base_url(&s.server),
            user: s.server.user.clone(),
            password: s.server.password.clone(),
            sys: format!("clickhouse {}", s.endpoint()),
            password_hint: match &s.server.password {
                Some(_) => format!("check the password in {} for user {}", s.server.password_source, s.server.user),
                None => format!(
                    "no password is configured for user {}: set {} (or `password_env` / `password_file`)",
                    s.server.user, s.server.password_source
                ),
            },
        })
    }

    fn hint(&self, class: ErrorClass) -> String {
        match class {
            ErrorClass::Authentication => self.password_hint.clone(),
            ErrorClass::Permission => format!(
                "user {} lacks a right here: it needs the lab database in its `allow_databases` and DDL allowed \
                 (`allow_ddl = 1`, not `readonly`) in users.xml",
                self.user
            ),
            ErrorClass::Unreachable => "is the server running, and is `port` its HTTP port (8123)?".into(),
            _ => String::new(),
        }
    }

    fn request(&self, url: &str) -> crate::net::http::Request<'_> {
        let r = self.http.post(url).header("X-ClickHouse-User", &self.user);
        match &self.password {
            Some(p) => r.secret_header("X-ClickHouse-Key", p),
            None => r,
        }
    }

    /// Runs `sql`; returns the raw answer. `what` names the step in errors.
    pub fn query_bytes(&self, what: &str, sql: &str) -> Result<Vec<u8>, BackendError> {
        let wrap = |e| errors::wrap(&self.sys, what, e, |c| self.hint(c));
        let resp = self.request(&format!("{}/", self.base)).send_bytes(sql.as_bytes()).map_err(wrap)?;
        resp.bytes(MAX_ANSWER).map_err(wrap)
    }

    /// Runs a statement without an answer (DDL, ALTER, OPTIMIZE, SYSTEM).
    pub fn execute(&self, what: &str, sql: &str) -> Result<(), BackendError> {
        self.query_bytes(what, sql).map(|_| ())
    }

    /// Runs `sql` (without a FORMAT clause) and returns its rows as `TabSeparated` fields.
    pub fn rows(&self, what: &str, sql: &str) -> Result<Vec<Vec<String>>, BackendError> {
        let out = self.query_bytes(what, &format!("{sql} FORMAT TabSeparated"))?;
        Ok(String::from_utf8_lossy(&out).lines().map(|l| l.split('\t').map(unescape_tsv).collect()).collect())
    }

    /// Runs a query answering one number.
    pub fn number(&self, what: &str, sql: &str) -> Result<u64, BackendError> {
        let rows = self.rows(what, sql)?;
        let cell = rows.first().and_then(|r| r.first()).map(String::as_str).unwrap_or("");
        cell.parse().map_err(|_| {
            BackendError::msg(format!("{}: {what}: expected a number, the server answered {cell:?}", self.sys))
                .classed(ErrorClass::Server)
        })
    }

    /// `INSERT INTO <table> FORMAT RowBinary` with `body` as the rows.
    pub fn insert_rowbinary(&self, what: &str, table: &str, body: &[u8]) -> Result<(), BackendError> {
        let sql = format!("INSERT INTO {table} FORMAT RowBinary");
        let url = format!("{}/?query={}", self.base, percent_encode(&sql));
        self.request(&url).send_bytes(body).map_err(|e| errors::wrap(&self.sys, what, e, |c| self.hint(c)))?;
        Ok(())
    }
}

/// A string literal: `'…'` with `\` and `'` escaped.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Undoes TabSeparated escaping (`\t`, `\n`, `\\`, …).
fn unescape_tsv(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Percent-encodes a URL query value (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(percent_encode("INSERT INTO a.c0 FORMAT RowBinary"), "INSERT%20INTO%20a.c0%20FORMAT%20RowBinary");
        assert_eq!(quote("it's a\\b"), "'it\\'s a\\\\b'");
        assert_eq!(unescape_tsv("a\\tb\\\\c\\n"), "a\tb\\c\n");
    }
}
