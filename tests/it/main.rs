//! The binary's end-to-end tests, one test binary (link time): each file of this folder is
//! a module. `support` has the shared helpers (servers from the environment, running the
//! binary, reading journals, kill and resume); the `#[path]` modules are shared with the
//! library crates' own tests.

#[path = "../../crates/report/tests/support/chromium.rs"]
mod chromium;
#[path = "../../crates/datagen/tests/support/corpus.rs"]
mod corpus;
#[path = "../../crates/backends/tests/it/support/mariadb.rs"]
#[allow(dead_code)] // shared with the backend tests, which use all of it
mod mariadb_server;
#[path = "../../crates/backends/tests/it/support/pgcluster.rs"]
#[allow(dead_code)] // shared with the backend tests, which use all of it
mod pgcluster;
mod support;

mod axes;
mod cleanup;
mod clickhouse;
mod conformance_mariadb;
mod conformance_postgresql;
mod generate_cli;
mod golden_matrix;
mod kafka;
mod mariadb;
mod native;
mod postgresql;
mod postgresql_cold;
mod prometheus;
mod realworld_cli;
mod redis;
mod report_cli;
mod run_cli;
mod s3;
mod secrets;
mod storage_sim;
mod telemetry;
