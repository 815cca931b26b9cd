//! Everything PostgreSQL and CockroachDB do differently at run time, in one place: where the
//! lab lives (a schema or a database) and how its relations are named, how DDL runs, the
//! version query, what `settle` and `maintenance` can do, where sizes and relation files come
//! from, and how the lab is listed and dropped. The rest of the backend asks the dialect
//! instead of branching on the system. (Which settings a system accepts is in `settings.rs`.)
//!
//! The two halves of a dialect are separate because the test hook
//! [`PgBackend::open_cockroach_path_on_postgres`](super::PgBackend::open_cockroach_path_on_postgres)
//! runs CockroachDB's statements with the lab in a schema, on PostgreSQL.

use dedup_lab_core::{LabName, SystemKind};

/// Whose SQL the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Cockroach,
}

/// Where the lab lives on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabKind {
    /// PostgreSQL: schema `<lab>` in the configured database.
    Schema,
    /// CockroachDB: database `<lab>`.
    Database,
}

/// How the lab is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabDrop {
    /// The schema's own tables (listed from the catalog), then the empty schema; never
    /// `CASCADE`, so an object outside the lab that depends on a lab table stops the drop.
    TablesThenSchema,
    /// `DROP DATABASE … CASCADE`: everything in the lab database is the lab's.
    DatabaseCascade,
}

/// What `settle` can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// `CHECKPOINT`, when the role may.
    Checkpoint,
    /// Nothing; the reason goes into the sizes' details.
    Nothing(&'static str),
}

/// Where `sizes` reads the physical size of a lab table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSource {
    /// PostgreSQL's size functions: one row of [`RELATION_SIZE_KEYS`] for the table named
    /// by `$1` (text), none when it does not exist.
    Relation(&'static str),
    /// CockroachDB's ranges of the table (`SHOW RANGES … WITH DETAILS`).
    Ranges,
}

/// The columns of [`SizeSource::Relation`], as detail keys.
pub const RELATION_SIZE_KEYS: [&str; 6] =
    ["heap_bytes", "heap_maps_bytes", "toast_bytes", "toast_index_bytes", "index_bytes", "total_bytes"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub server: Server,
    pub lab_kind: LabKind,
}

impl Dialect {
    /// The dialect of `kind` (PostgreSQL or CockroachDB).
    pub fn of(kind: SystemKind) -> Dialect {
        if kind == SystemKind::Cockroachdb {
            Dialect { server: Server::Cockroach, lab_kind: LabKind::Database }
        } else {
            Dialect { server: Server::Postgres, lab_kind: LabKind::Schema }
        }
    }

    /// CockroachDB's statements with the lab in a schema (the test hook).
    pub fn cockroach_on_postgres() -> Dialect {
        Dialect { server: Server::Cockroach, lab_kind: LabKind::Schema }
    }

    /// `schema` or `database`, for messages.
    pub fn lab_word(self) -> &'static str {
        match self.lab_kind {
            LabKind::Schema => "schema",
            LabKind::Database => "database",
        }
    }

    /// The lab's name as an identifier: `"dedup_lab"`.
    pub fn lab(lab: &LabName) -> String {
        // LabName allows only [a-z0-9_], so quoting cannot be escaped.
        format!("\"{lab}\"")
    }

    /// A relation of the lab: `"dedup_lab"."c0"` or, in a CockroachDB database,
    /// `"dedup_lab".public."c0"`. `name` is one of ours (`[a-z0-9_]`).
    pub fn rel(self, lab: &LabName, name: &str) -> String {
        debug_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        match self.lab_kind {
            LabKind::Schema => format!("{}.\"{name}\"", Self::lab(lab)),
            LabKind::Database => format!("{}.public.\"{name}\"", Self::lab(lab)),
        }
    }

    /// The same relation in messages and inventories, unquoted: `dedup_lab.c0`.
    pub fn rel_display(self, lab: &LabName, name: &str) -> String {
        match self.lab_kind {
            LabKind::Schema => format!("{lab}.{name}"),
            LabKind::Database => format!("{lab}.public.{name}"),
        }
    }

    pub fn create_lab(self, lab: &LabName) -> String {
        match self.lab_kind {
            LabKind::Schema => format!("CREATE SCHEMA {}", Self::lab(lab)),
            LabKind::Database => format!("CREATE DATABASE {}", Self::lab(lab)),
        }
    }

    pub fn lab_drop(self) -> LabDrop {
        match self.lab_kind {
            LabKind::Schema => LabDrop::TablesThenSchema,
            LabKind::Database => LabDrop::DatabaseCascade,
        }
    }

    /// Whether a list of DDL statements runs as one transaction (PostgreSQL) or one by one
    /// (CockroachDB restricts schema changes inside transactions; with the lab in a database
    /// it runs them singly).
    pub fn ddl_in_one_transaction(self) -> bool {
        self.lab_kind == LabKind::Schema
    }

    /// Whether the lab exists: one row of `count(*)`, lab name as `$1`.
    pub fn lab_exists_sql(self) -> &'static str {
        match self.lab_kind {
            LabKind::Schema => "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = $1",
            LabKind::Database => "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1",
        }
    }

    /// The lab's tables, quoted (`quote_ident`) and sorted; lab name as `$1`.
    pub fn lab_tables_sql(self, lab: &LabName) -> String {
        match self.lab_kind {
            LabKind::Schema => {
                "SELECT quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1"
                    .to_string()
            }
            LabKind::Database => format!(
                "SELECT quote_ident(table_name) FROM {}.information_schema.tables \
                 WHERE table_catalog = $1 AND table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
                Self::lab(lab)
            ),
        }
    }

    /// Server version, `server_version_num` and whether lz4 TOAST compression exists.
    pub fn version_sql(self) -> &'static str {
        match self.server {
            Server::Postgres => {
                "SELECT version(), current_setting('server_version_num')::int4, \
                 COALESCE((SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'), false)"
            }
            Server::Cockroach => "SELECT version(), 0::INT4, false",
        }
    }

    /// Whether this connection is encrypted, and with which TLS version.
    pub fn tls_status_sql(self) -> Option<&'static str> {
        match self.server {
            Server::Postgres => Some("SELECT ssl, COALESCE(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
            Server::Cockroach => None,
        }
    }

    /// The identity of the server a connection reached (`pg_control_system()`), for the
    /// consistency check.
    pub fn identity_sql(self) -> Option<&'static str> {
        match self.server {
            Server::Postgres => Some("SELECT system_identifier::text FROM pg_control_system()"),
            Server::Cockroach => None,
        }
    }

    /// The reclaim statement for `tables`, or why there is none.
    pub fn maintenance(self, tables: &[String]) -> Result<String, &'static str> {
        match self.server {
            Server::Postgres => Ok(format!("VACUUM (FULL, ANALYZE) {}", tables.join(", "))),
            Server::Cockroach => {
                Err("none: CockroachDB reclaims space by MVCC garbage collection after the zone's gc.ttlseconds \
                 and by Pebble compactions; neither can be triggered without admin privileges")
            }
        }
    }

    pub fn settle(self) -> Settle {
        match self.server {
            Server::Postgres => Settle::Checkpoint,
            Server::Cockroach => {
                Settle::Nothing("none: CockroachDB has no CHECKPOINT; writes are durable in the Raft log on commit")
            }
        }
    }

    pub fn size_source(self) -> SizeSource {
        match self.server {
            Server::Postgres => SizeSource::Relation(
                "SELECT pg_relation_size(c.oid, 'main'), \
                 pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm'), \
                 COALESCE(pg_table_size(NULLIF(c.reltoastrelid, 0)), 0), \
                 COALESCE(pg_indexes_size(NULLIF(c.reltoastrelid, 0)), 0), \
                 pg_indexes_size(c.oid), pg_total_relation_size(c.oid) \
                 FROM pg_class c WHERE c.oid = to_regclass($1)",
            ),
            Server::Cockroach => SizeSource::Ranges,
        }
    }

    /// CockroachDB: bytes and count of the ranges holding `table`. range_size is MVCC bytes
    /// (keys + values, live and not yet garbage-collected) of a whole range, per replica;
    /// since v23.1 small tables may share a range, which then counts for each of them.
    pub fn ranges_sql(table: &str) -> String {
        format!(
            "SELECT COALESCE(sum(range_size), 0)::INT8, count(*)::INT8 FROM [SHOW RANGES FROM TABLE {table} WITH DETAILS]"
        )
    }

    /// The files of the table named by `$1` (text), its indexes, TOAST table and TOAST index,
    /// relative to the data directory; `None` where relations are not files (CockroachDB).
    pub fn relation_files_sql(self) -> Option<&'static str> {
        match self.server {
            Server::Postgres => Some(
                "WITH t AS (SELECT to_regclass($1) AS oid) \
                 SELECT pg_relation_filepath(t.oid) FROM t WHERE t.oid IS NOT NULL \
                 UNION ALL SELECT pg_relation_filepath(i.indexrelid) FROM t JOIN pg_index i ON i.indrelid = t.oid \
                 UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) FROM t JOIN pg_class c ON c.oid = t.oid \
                     WHERE c.reltoastrelid <> 0 \
                 UNION ALL SELECT pg_relation_filepath(i.indexrelid) FROM t JOIN pg_class c ON c.oid = t.oid \
                     JOIN pg_index i ON i.indrelid = c.reltoastrelid",
            ),
            Server::Cockroach => None,
        }
    }

    /// The hint for a role that may not create or drop the lab.
    pub fn ddl_permission_hint(self, user: &str, database: &str, database_env: &str) -> String {
        match self.server {
            Server::Cockroach => format!(
                ": permission denied for user {user}; it needs the CREATEDB role option (ALTER USER {user} CREATEDB) \
                 to create and drop the lab database"
            ),
            Server::Postgres => format!(
                ": permission denied for user {user}; grant it the right to create schemas in database {database} \
                 (as a superuser or the database owner: GRANT CREATE ON DATABASE {database} TO {user}), or point \
                 dedup-lab at a database where it has it ({database_env}); if the lab schema already exists and \
                 belongs to another role, drop it as that role"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_where_the_lab_lives() {
        let lab = LabName::default();
        let pg = Dialect::of(SystemKind::Postgresql);
        let crdb = Dialect::of(SystemKind::Cockroachdb);
        assert_eq!(pg.rel(&lab, "c0"), "\"dedup_lab\".\"c0\"");
        assert_eq!(crdb.rel(&lab, "c0"), "\"dedup_lab\".public.\"c0\"");
        assert_eq!(Dialect::cockroach_on_postgres().rel(&lab, "c0"), pg.rel(&lab, "c0"));
        assert_eq!((pg.lab_word(), crdb.lab_word()), ("schema", "database"));
        assert_eq!(crdb.rel_display(&lab, "c1"), "dedup_lab.public.c1");
        assert_eq!((pg.lab_drop(), crdb.lab_drop()), (LabDrop::TablesThenSchema, LabDrop::DatabaseCascade));
        assert!(pg.ddl_in_one_transaction() && !crdb.ddl_in_one_transaction());
        assert!(Dialect::cockroach_on_postgres().ddl_in_one_transaction());
    }

    #[test]
    fn cockroach_has_no_checkpoint_vacuum_or_files() {
        let crdb = Dialect::cockroach_on_postgres();
        assert!(matches!(crdb.settle(), Settle::Nothing(_)));
        assert!(crdb.maintenance(&["t".into()]).unwrap_err().starts_with("none:"));
        assert_eq!((crdb.relation_files_sql(), crdb.identity_sql()), (None, None));
        let pg = Dialect::of(SystemKind::Postgresql);
        assert_eq!(pg.maintenance(&["a".into(), "b".into()]).unwrap(), "VACUUM (FULL, ANALYZE) a, b");
        assert_eq!(pg.settle(), Settle::Checkpoint);
    }
}
