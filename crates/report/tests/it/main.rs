//! The report crate's integration tests: statistics, merging, exporters and their snapshots, loading, the browser check.
//! One test binary for the whole crate: each file of this folder is a module (link time).

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod aggregate;
mod analysis_cache;
mod browser;
mod compat;
mod exporters;
mod load;
mod storage;
mod unsupported;
