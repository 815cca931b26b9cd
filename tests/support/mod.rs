//! Shared helpers for tests that need a real server.

#![allow(dead_code)] // each test binary uses part of this module

/// Whether the test command requires every server (then a missing one is a failure).
pub fn servers_required() -> bool {
    std::env::var("DEDUP_LAB_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The value of every variable in `vars`, or `None` (after printing why) when one is
/// missing and servers are not required. Panics when they are required.
pub fn server_env(system: &str, vars: &[&str]) -> Option<Vec<String>> {
    let missing: Vec<&str> = vars.iter().copied().filter(|v| std::env::var(v).map_or(true, |x| x.is_empty())).collect();
    if missing.is_empty() {
        return Some(vars.iter().map(|v| std::env::var(v).unwrap()).collect());
    }
    let why = format!(
        "{system} server not configured ({} unset); start it with `eval \"$(scripts/services.sh env)\"` after `scripts/services.sh up`",
        missing.join(", ")
    );
    if servers_required() {
        panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but {why}");
    }
    eprintln!("skipping: {why}");
    None
}
