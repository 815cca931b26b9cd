//! Kafka error codes and socket errors, each turned into one sentence that names the system,
//! the broker, what was being done and the fix, with its [`ErrorClass`].

use crate::net::class::{classify_chain, io_class};
use dedup_lab_core::{BackendError, ErrorClass};
use kafka_protocol::ResponseError;

/// The class of Kafka error code `code` (never 0).
pub fn code_class(code: i16) -> ErrorClass {
    match code {
        58 => ErrorClass::Authentication,
        29..=31 | 53 => ErrorClass::Permission,
        33 | 40 | 37 | 38 | 39 | 44 => ErrorClass::Config,
        10 | 18 | 35 | 42 | 43 | 87 | 2 | 4 => ErrorClass::BadRequest,
        5 | 6 | 9 | 15 | 41 | 13 | 14 | 74 | 75 => ErrorClass::ConnectionLost,
        7 => ErrorClass::Timeout,
        _ => ErrorClass::Server,
    }
}

/// The name of error code `code` (`TopicAuthorizationFailed`).
pub fn code_name(code: i16) -> String {
    ResponseError::try_from_code(code).map(|e| e.to_string()).unwrap_or_else(|| "no error".into())
}

/// The fix for an error of code `code`, as the end of a sentence.
fn hint(code: i16, user: &str, what: &str) -> String {
    match code_class(code) {
        ErrorClass::Authentication => {
            "check the user, the password and `sasl_mechanism` (the broker must have SCRAM credentials for \
             this user and mechanism)"
                .to_string()
        }
        ErrorClass::Permission => format!(
            "the broker's authorizer denies {}; grant it ACLs on topics with the prefix `dedup-lab-` (Create, \
             Delete, Describe, Write, Read, DescribeConfigs, AlterConfigs) and Describe on the cluster",
            if user.is_empty() { "this client".to_string() } else { format!("User:{user}") }
        ),
        _ if code == 10 || code == 18 => {
            "a record is larger than the topic or broker allows: raise `max_message_bytes` and the broker's \
             `message.max.bytes`"
                .to_string()
        }
        _ if code == 35 => format!("the broker does not support the version of the request used to {what}"),
        ErrorClass::ConnectionLost => "the partition's leader moved or is not available; try again".into(),
        _ => "see the broker's log".into(),
    }
}

/// The error for Kafka error code `code` returned by broker `broker` while doing `what`.
/// `message` is the broker's own text, when it sent one.
pub fn code_error(sys: &str, broker: &str, user: &str, what: &str, code: i16, message: Option<&str>) -> BackendError {
    let said = message.filter(|m| !m.trim().is_empty()).map(|m| format!(" ({m})")).unwrap_or_default();
    BackendError::msg(format!(
        "{sys}: broker {broker} answered {} (code {code}){said} when asked to {what}; {}",
        code_name(code),
        hint(code, user, what)
    ))
    .classed(code_class(code))
}

/// The error for a socket failure talking to `broker` while doing `what`.
pub fn io_error(sys: &str, broker: &str, what: &str, e: std::io::Error) -> BackendError {
    let class = io_class(&e).or_else(|| classify_chain(&e)).unwrap_or(ErrorClass::ConnectionLost);
    let fix = match class {
        ErrorClass::Unreachable => "; is the broker running, and are `host`/`port` (or `bootstrap`) right?",
        ErrorClass::Timeout => "; the broker did not answer in time (see `statement_timeout`)",
        ErrorClass::Config => "; check `sslmode`, `sslrootcert` and `tls_server_name`",
        _ => "",
    };
    BackendError::with_source(format!("{sys}: cannot {what} on broker {broker}{fix}"), e).classed(class)
}

/// The error for an answer the client cannot use (a protocol bug or a broker we do not
/// understand).
pub fn protocol_error(sys: &str, broker: &str, what: &str, detail: impl std::fmt::Display) -> BackendError {
    BackendError::msg(format!("{sys}: broker {broker} sent an answer we cannot read when asked to {what}: {detail}"))
        .classed(ErrorClass::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_and_authentication_codes_get_their_own_class_and_fix() {
        let e = code_error("kafka", "b:9092", "dedup", "create topic dedup-lab-c0", 29, None);
        assert_eq!(e.class(), Some(ErrorClass::Permission));
        let text = e.to_string();
        assert!(text.contains("TopicAuthorizationFailed") && text.contains("User:dedup"), "{text}");
        assert!(text.contains("dedup-lab-"), "{text}");
        let e = code_error("kafka", "b:9092", "dedup", "authenticate", 58, Some("bad password"));
        assert_eq!(e.class(), Some(ErrorClass::Authentication));
        assert!(e.to_string().contains("(bad password)"));
        assert_eq!(code_class(6), ErrorClass::ConnectionLost);
        assert_eq!(code_class(10), ErrorClass::BadRequest);
        assert!(code_error("kafka", "b", "", "produce", 10, None).to_string().contains("max_message_bytes"));
    }
}
