//! The backends crate's integration tests, one test binary (link time): each file of this
//! folder is a module, gated on the backend feature it needs. `support` has the shared
//! helpers and the throwaway PostgreSQL clusters and MariaDB servers; the root crate's
//! `tests/it` includes two of its files by path.

#[cfg(any(feature = "postgresql", feature = "mariadb"))]
mod support;

mod embedded;
#[cfg(feature = "mariadb")]
mod mariadb;
#[cfg(feature = "mariadb")]
mod mariadb_servers;
#[cfg(feature = "http")]
mod net_http;
#[cfg(feature = "postgresql")]
mod pg_clusters;
#[cfg(feature = "postgresql")]
mod postgresql;
