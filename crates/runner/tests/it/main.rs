//! The runner's integration tests: the engine's validity rules and stage capabilities on real backends.
//! One test binary for the whole crate: each file of this folder is a module (link time).

mod capabilities;
mod validity;
