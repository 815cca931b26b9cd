//! What every server backend needs, written once: connection settings ([`settings`]), the
//! rustls client configuration and its error explanations ([`tls`]), error classes for I/O and
//! TLS failures ([`class`]), the preflight consistency check ([`consistency`]), a record
//! batcher for bulk paths ([`batch`]), a plain-or-TLS socket for byte-stream protocols
//! ([`stream`]) and, with feature `http`, the one HTTP client
//! ([`http`]).
//!
//! A backend keeps only what is specific to its system: its wire protocol, its SQL or API
//! calls, and the mapping of its own error codes to [`ErrorClass`](dedup_lab_core::ErrorClass).

pub mod batch;
pub mod class;
pub mod consistency;
#[cfg(feature = "http")]
pub mod http;
pub mod settings;
pub mod stream;
pub mod tls;
