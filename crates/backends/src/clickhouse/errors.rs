//! The error classes and messages of this backend.
//!
//! ClickHouse answers an HTTP request that failed with a status and a body `Code: N,
//! e.displayText() = DB::Exception: …` (newer servers also send the code in the
//! `X-ClickHouse-Exception-Code` header). The status alone misleads: 18.16 answers "access
//! denied to database" with 500. So the class comes from the code ([`code_class`]), the
//! status class of the shared client is the fallback, and socket or TLS failures keep the
//! class the shared client gave them. Every message starts with the system and endpoint and
//! never holds the password: it travels only in the `X-ClickHouse-Key` header, which the
//! shared client keeps out of messages and blanks out of response excerpts.

use dedup_lab_core::{BackendError, ErrorClass};

/// The class of a ClickHouse error code.
pub fn code_class(code: u32) -> Option<ErrorClass> {
    Some(match code {
        // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED,
        // AUTHENTICATION_FAILED (newer servers fold the first three into it).
        192..=195 | 516 => ErrorClass::Authentication,
        // READONLY, DATABASE_ACCESS_DENIED, QUERY_IS_PROHIBITED (allow_ddl = 0), ACCESS_DENIED.
        164 | 291 | 392 | 497 => ErrorClass::Permission,
        // TIMEOUT_EXCEEDED, SOCKET_TIMEOUT.
        159 | 209 => ErrorClass::Timeout,
        // SYNTAX_ERROR, UNKNOWN_IDENTIFIER, UNKNOWN_TABLE, UNKNOWN_DATABASE, BAD_ARGUMENTS,
        // CANNOT_PARSE_*, CANNOT_READ_ALL_DATA, UNKNOWN_FUNCTION, ILLEGAL_TYPE_OF_ARGUMENT,
        // TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS, UNKNOWN_SETTING, UNKNOWN_TYPE,
        // ILLEGAL_COLUMN, NO_SUCH_COLUMN_IN_TABLE, TYPE_MISMATCH, FUNCTION_THROW_IF_VALUE_IS_NON_ZERO.
        62 | 47 | 60 | 81 | 36 | 6 | 26 | 27 | 32 | 33 | 38 | 41 | 46 | 43 | 44 | 50 | 53 | 57 | 82 | 115 | 16
        | 395 => ErrorClass::BadRequest,
        _ => return None,
    })
}

/// The error code in a message `… Code: 291, e.displayText() = …`.
pub fn code_in(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A server or transport error of `what` (`inserting into dedup_lab.c0`), reclassed by its
/// ClickHouse code, with a hint naming the fix. `sys` is `clickhouse <endpoint>`.
pub fn wrap(sys: &str, what: &str, e: BackendError, hint: impl Fn(ErrorClass) -> String) -> BackendError {
    let text = e.chain();
    let code = code_in(&text);
    let class = code.and_then(code_class).or(e.class()).unwrap_or(ErrorClass::Server);
    let code_note = code.map(|c| format!(", ClickHouse error code {c}")).unwrap_or_default();
    let h = hint(class);
    let h = if h.is_empty() { String::new() } else { format!("; {h}") };
    BackendError::with_source(format!("{sys}: {what} failed ({}{code_note}){h}", class.name()), e).classed(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_and_classed() {
        let body = "clickhouse POST http://h:1/: HTTP 500 Internal Server Error: Code: 291, e.displayText() = \
                    DB::Exception: Access denied to database foo for user dedup";
        assert_eq!(code_in(body), Some(291));
        assert_eq!(code_in("HTTP 502"), None);
        for (code, class) in [
            (516, ErrorClass::Authentication),
            (193, ErrorClass::Authentication),
            (497, ErrorClass::Permission),
            (291, ErrorClass::Permission),
            (392, ErrorClass::Permission),
            (62, ErrorClass::BadRequest),
            (159, ErrorClass::Timeout),
        ] {
            assert_eq!(code_class(code), Some(class), "{code}");
        }
        assert_eq!(code_class(241), None, "memory limit: the status class stays");
        let e = BackendError::msg(body).classed(ErrorClass::Server);
        let w =
            wrap("clickhouse h:1/default as dedup", "creating the lab database", e, |c| format!("class {}", c.name()));
        assert_eq!(w.class(), Some(ErrorClass::Permission));
        assert!(w.to_string().starts_with("clickhouse h:1/default as dedup: creating the lab database failed"), "{w}");
        assert!(w.to_string().contains("failed (permission, ClickHouse error code 291); class permission"), "{w}");
    }
}
