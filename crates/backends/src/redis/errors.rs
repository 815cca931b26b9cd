//! Error classes and messages: Redis error replies (`WRONGPASS`, `NOPERM`, `CLUSTERDOWN`, …)
//! and socket errors, each turned into a sentence that names the system, the node and the fix.

use crate::net::class::{classify_chain, io_class};
use dedup_lab_core::{BackendError, ErrorClass};

/// The class of an error reply, from its first word (Redis's error code).
pub fn reply_class(msg: &str) -> ErrorClass {
    let code = msg.split_whitespace().next().unwrap_or("");
    match code {
        "WRONGPASS" | "NOAUTH" => ErrorClass::Authentication,
        "NOPERM" => ErrorClass::Permission,
        "CLUSTERDOWN" | "TRYAGAIN" | "LOADING" | "MASTERDOWN" => ErrorClass::ConnectionLost,
        "BUSY" => ErrorClass::Timeout,
        "READONLY" => ErrorClass::Config,
        "OOM" | "MISCONF" | "EXECABORT" => ErrorClass::Server,
        "WRONGTYPE" | "NOPROTO" => ErrorClass::BadRequest,
        "ERR" if msg.contains("invalid password") || msg.contains("AUTH <password> called without") => {
            ErrorClass::Authentication
        }
        "ERR"
            if msg.contains("unknown command")
                || msg.contains("wrong number of arguments")
                || msg.contains("syntax error")
                || msg.contains("unknown subcommand") =>
        {
            ErrorClass::BadRequest
        }
        _ => ErrorClass::Server,
    }
}

/// The ACL rule that allows what a `NOPERM` reply refused.
pub fn acl_rule(msg: &str) -> String {
    if msg.contains("keys") {
        return "~dedup:*".into();
    }
    if msg.contains("channel") {
        return "&dedup:*".into();
    }
    match msg.split('\'').nth(1) {
        Some(cmd) => format!("+{}", cmd.to_ascii_lowercase()),
        None => "+<command>".into(),
    }
}

/// The error for reply `msg` to command `cmd` (its name, e.g. `SET`) from node `node`.
/// `why` says what the tool needed the command for (used in ACL hints).
pub fn reply_error(
    sys: &str,
    user: &str,
    password_hint: &str,
    node: &str,
    cmd: &str,
    msg: &str,
    why: &str,
) -> BackendError {
    let class = reply_class(msg);
    let hint = match class {
        ErrorClass::Authentication => format!(
            "; check the user `{user}` and its password ({password_hint}), and that the user is `on` in the server's ACL"
        ),
        ErrorClass::Permission => {
            let rule = acl_rule(msg);
            format!(
                "; the ACL of user `{user}` denies this{}; allow it with `ACL SETUSER {user} {rule}` (or add `{rule}` \
                 to the user's line in the ACL file)",
                if why.is_empty() { String::new() } else { format!(" (dedup-lab runs {cmd} to {why})") }
            )
        }
        ErrorClass::ConnectionLost => {
            "; a master is down or the cluster is changing; wait for `cluster_state:ok`".into()
        }
        ErrorClass::Config => "; this address is a replica: point dedup-lab at a master".into(),
        _ => String::new(),
    };
    BackendError::msg(format!("{sys} (node {node}): {cmd} failed: {msg}{hint}")).classed(class)
}

/// The error for a socket or TLS failure while talking to `node`.
pub fn io_error(sys: &str, node: &str, what: &str, e: std::io::Error) -> BackendError {
    let class = classify_chain(&e).or_else(|| io_class(&e)).unwrap_or(ErrorClass::ConnectionLost);
    let hint = match class {
        ErrorClass::Unreachable => "; is the server running, and are host and port right?",
        ErrorClass::Timeout => "; the server did not answer in time (connect_timeout / statement_timeout)",
        ErrorClass::ConnectionLost => "; the node stopped or restarted, or the network broke",
        _ => "",
    };
    BackendError::with_source(format!("{sys} (node {node}): {what}{hint}"), e).classed(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        assert_eq!(
            reply_class("WRONGPASS invalid username-password pair or user is disabled."),
            ErrorClass::Authentication
        );
        assert_eq!(reply_class("NOAUTH Authentication required."), ErrorClass::Authentication);
        assert_eq!(
            reply_class("NOPERM this user has no permissions to run the 'save' command"),
            ErrorClass::Permission
        );
        assert_eq!(reply_class("CLUSTERDOWN The cluster is down"), ErrorClass::ConnectionLost);
        assert_eq!(reply_class("ERR unknown command 'FOO'"), ErrorClass::BadRequest);
        assert_eq!(reply_class("OOM command not allowed when used memory > 'maxmemory'."), ErrorClass::Server);
    }

    #[test]
    fn acl_hints_name_the_rule() {
        assert_eq!(acl_rule("NOPERM this user has no permissions to run the 'save' command"), "+save");
        assert_eq!(acl_rule("NOPERM this user has no permissions to run the 'config|get' command"), "+config|get");
        assert_eq!(
            acl_rule("NOPERM this user has no permissions to access one of the keys used as arguments"),
            "~dedup:*"
        );
        let e = reply_error(
            "redis 127.0.0.1:1 as u",
            "u",
            "$P",
            "127.0.0.1:1",
            "SAVE",
            "NOPERM this user has no permissions to run the 'save' command",
            "write the RDB file before it is measured",
        );
        assert_eq!(e.class(), Some(ErrorClass::Permission));
        assert!(e.to_string().contains("ACL SETUSER u +save"), "{e}");
    }
}
