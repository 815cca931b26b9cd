//! The generator's integration tests that need no allocator of their own: golden datasets
//! and real-world sources, one test binary (link time). The memory tests (`streaming`,
//! `realworld_memory`) stay binaries of their own: each installs a counting global
//! allocator and must not share the process with other tests.

#[path = "../support/corpus.rs"]
mod corpus;

mod golden;
mod realworld;
