//! S3 and S3-compatible object stores (MinIO, SeaweedFS, …): one object per record.
//!
//! What is measured: how much disk an object store spends on objects with a known share of
//! exact duplicates, written one object per record — the unit the original study used for
//! MinIO. An object store cannot share bytes between objects through its API; whatever
//! it does below the API (compression, erasure coding, chunk dedup) shows in the physical
//! size only.
//!
//! - **Namespace**: one bucket per container, `<lab, dashed>-c<i>` (`dedup-lab-c0`, and
//!   `dedup-lab-c1` for placement `across`; see [`lab`]). The tool creates, empties and
//!   deletes only those buckets; `reset` drops the lab's buckets and creates the
//!   namespace's anew, so every stage starts from an empty store.
//! - **Requests**: path-style (`<endpoint>/<bucket>/<key>`), signed with AWS Signature V4
//!   ([`sign`], our own: why is said there), over the shared HTTP client with its timeouts
//!   and rustls; `region` is what requests are signed for.
//! - **Content type**: every object is sent with an explicit `Content-Type`, so what the
//!   store does with it is a documented choice: blobs get `content_type` (default
//!   `application/octet-stream`), native records the type of their encoding (JSON
//!   `application/json`, text `text/plain; charset=utf-8`, `<uuid>,<value>` lines
//!   `text/csv`, binary chunks the blob type). The variant `content-type=auto` sends none
//!   and measures what the store does when left to guess. SeaweedFS gzips `text/*`, and
//!   sniffs the first bytes of `application/octet-stream` (or untyped) objects, gzipping
//!   those that look like text; `application/json` and other explicit types are stored as
//!   sent. [`native_storage`](dedup_lab_core::Backend::native_storage) says so per flavour.
//! - **Bulk insert**: `concurrency` PUTs in flight; objects of `multipart_threshold` bytes or
//!   more go up as multipart uploads in `part_size` parts sent from the record's own buffer
//!   (a 1 GiB record is never copied). The count is the acknowledged PUTs, verified by a
//!   paginated `ListObjectsV2` ([`bulk`]).
//! - **Per record**: `insert_one` is one PUT (multipart when large); `delete_one` is a HEAD
//!   then a DELETE — S3 answers a DELETE of a missing key with success, so the HEAD is what
//!   tells the 1 or 0 the stage verifies; `read_one` a GET.
//! - **Maintenance**: unsupported on plain S3 and MinIO (with the reason); the SeaweedFS
//!   volume vacuum with flavour `seaweedfs`; or a configured `maintenance_command`
//!   ([`reclaim`]).
//! - **Sizes**: logical from listing; physical from the `fs` probe on the lab buckets' files
//!   when the store's `data_dir` is on this machine, otherwise the `internal` probe (which
//!   is the listing's logical size, so EDR is 1 by construction: configure a Prometheus or
//!   scrape probe for a remote store).
//! - **Credentials**: `DEDUP_S3_ACCESS_KEY` / `DEDUP_S3_SECRET_KEY` (the `DEDUP_MINIO_*`
//!   names work too), or `<key>_env` / `<key>_file`. They never appear in a message: an
//!   authentication failure is one sentence naming where the keys came from, without the
//!   server's signature dump ([`api`]).
//!
//! # Modules
//! [`settings`], [`sign`] (SigV4), [`api`] (the S3 calls and the error mapping), [`lab`]
//! (bucket names, reset, emptying, inventory), [`bulk`] (PUTs, multipart, the concurrent
//! bulk path) and [`reclaim`] (maintenance, sizes, data paths, preflight).

pub mod api;
mod bulk;
pub mod lab;
mod reclaim;
pub mod settings;
pub mod sign;

use crate::BackendConfig;
use crate::net::http::{HttpClient, HttpOptions};
use api::Api;
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, Operation,
    PreflightReport, Record, RecordId, RecordStream, RowEncoding, Schema, SystemKind,
};
use settings::{Flavour, Settings};
use std::path::PathBuf;

/// The variants: `default` (explicit content types) and `content-type=auto` (none sent).
pub const VARIANTS: [&str; 2] = ["default", "content-type=auto"];

/// The configured variants (default: both), validated offline.
pub fn variants(cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = cfg.string_list("variants")?.unwrap_or_else(|| VARIANTS.iter().map(|v| v.to_string()).collect());
    if list.is_empty() {
        return Err(BackendError::msg("s3: the `variants` list is empty").classed(ErrorClass::Config));
    }
    for v in &list {
        if !VARIANTS.contains(&v.as_str()) {
            return Err(BackendError::msg(format!(
                "s3 has no variant {v:?}; its variants are {}",
                VARIANTS.join(", ")
            ))
            .classed(ErrorClass::Config));
        }
    }
    Ok(list)
}

pub struct S3Backend {
    s: Settings,
    api: Api,
    /// For the SeaweedFS master (vacuum, volume figures).
    master: HttpClient,
    variant: &'static str,
}

impl S3Backend {
    /// Opens the backend; nothing is sent until the first operation.
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<S3Backend, BackendError> {
        let variant = *VARIANTS.iter().find(|v| **v == variant).ok_or_else(|| {
            BackendError::msg(format!("s3 has no variant {variant:?}; its variants are {}", VARIANTS.join(", ")))
                .classed(ErrorClass::Config)
        })?;
        let s = Settings::from_config(cfg)?;
        let api = Api::new(&s)?;
        let mut opts = HttpOptions::new("s3 master", s.net.connect_timeout);
        opts.timeout = Some(std::time::Duration::from_secs(600));
        let master = HttpClient::new(opts)?;
        Ok(S3Backend { s, api, master, variant })
    }

    /// The content type record `r` is sent with; `None` in variant `content-type=auto`.
    fn content_type<'a>(&'a self, ns: &'a Namespace, _r: &Record) -> Option<&'a str> {
        if self.variant != "default" {
            return None;
        }
        Some(match ns.schema() {
            None => &self.s.content_type,
            Some(schema) => native_content_type(schema).unwrap_or(&self.s.content_type),
        })
    }

    fn bucket_of(&self, ns: &Namespace, id: &RecordId) -> Result<String, BackendError> {
        let c = ns.container_of(id)?;
        Ok(lab::bucket_name(ns.lab(), c as u8))
    }
}

/// The content type of a native record's encoding; `None`: binary (the blob type).
fn native_content_type(schema: &Schema) -> Option<&'static str> {
    use dedup_lab_core::ColumnType;
    match schema.encoding {
        RowEncoding::JsonObject => Some("application/json"),
        RowEncoding::Csv => Some("text/csv"),
        RowEncoding::Raw => match schema.columns.first().map(|c| c.ty) {
            Some(ColumnType::Json) => Some("application/json"),
            Some(ColumnType::Text) => Some("text/plain; charset=utf-8"),
            _ => None,
        },
    }
}

impl Backend for S3Backend {
    fn kind(&self) -> SystemKind {
        SystemKind::S3
    }

    fn variant(&self) -> &str {
        self.variant
    }

    fn endpoint(&self) -> String {
        format!("{} ({})", self.s.endpoint, self.s.flavour.name())
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok(self.api.server_and_buckets()?.0.unwrap_or_else(|| "unknown (no Server header)".into()))
    }

    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.run_preflight(ns)
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.reset_lab(ns)
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.bulk_put(ns, records)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let bucket = self.bucket_of(ns, &r.id)?;
        self.put_record(&bucket, r, self.content_type(ns, r))?;
        Ok(1)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let bucket = self.bucket_of(ns, id)?;
        if self.api.head_object(&bucket, &id.key)?.is_none() {
            return Ok(0);
        }
        self.api.delete_object(&bucket, &id.key)?;
        Ok(1)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let bucket = self.bucket_of(ns, id)?;
        self.api.get_object(&bucket, &id.key, u64::MAX / 2)
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        self.reclaim(ns)
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        self.count_objects(ns)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        self.read_sizes(ns)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_lab_buckets(ns.lab())
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        self.lab_paths(ns)
    }

    fn native_storage(&self, schema: &Schema) -> String {
        let ct = if self.variant == "default" {
            format!("Content-Type {}", native_content_type(schema).unwrap_or(&self.s.content_type))
        } else {
            "no Content-Type (variant content-type=auto: the store guesses)".to_string()
        };
        let store = match (self.s.flavour, native_content_type(schema)) {
            (Flavour::Seaweedfs, _) if self.variant != "default" => {
                "; SeaweedFS sniffs untyped objects and gzips those that look like text"
            }
            (Flavour::Seaweedfs, Some(t)) if t.starts_with("text/") => "; SeaweedFS gzips text/* objects",
            (Flavour::Seaweedfs, Some(_)) => "; SeaweedFS stores this type as sent (no compression)",
            (Flavour::Seaweedfs, None) => {
                "; SeaweedFS sniffs application/octet-stream and gzips objects that look like text"
            }
            _ => "",
        };
        format!("one object per record (its canonical encoding), {ct}{store}")
    }

    fn unsupported(&self, op: Operation) -> Option<String> {
        match op {
            Operation::Maintenance => self.maintenance_unsupported(),
            _ => None,
        }
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        self.lab_inventory(lab)
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.drop_lab_buckets(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.api = Api::new(&self.s)?;
        Ok(Some(format!("dropped the HTTP connections to {}; the next request opens new ones", self.s.endpoint)))
    }
}
