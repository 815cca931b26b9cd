//! Maintenance, sizes, data paths and preflight.
//!
//! - **Maintenance.** The S3 API has no space-reclaim operation, so on plain S3 (and MinIO,
//!   which frees an object's parts when it is deleted) the stage is declared unsupported.
//!   The `seaweedfs` flavour vacuums: SeaweedFS only marks a deleted object's needle as
//!   deleted in its volume file, and gives the space back when the master compacts the
//!   volume (`GET /vol/vacuum?garbageThreshold=…&collection=<bucket>`, one collection per
//!   bucket). The call returns when the volumes are compacted; the stage then waits until
//!   the master reports no deleted bytes left in the lab's volumes. Other stores may
//!   configure a `maintenance_command` (run through `sh -c`, with the lab's buckets in
//!   `DEDUP_LAB_BUCKETS`).
//! - **Sizes.** Logical bytes from a paginated `ListObjectsV2` (the sum of `Size`); that is
//!   `internal`'s total. With SeaweedFS, the master's volume figures for the lab's
//!   collections (size, file count, deleted bytes) go into the details.
//! - **Data paths** (the `fs` probe, with `data_dir`): the lab buckets' own files in the
//!   store's data directory: `<data_dir>/<bucket>` (MinIO's per-bucket directory) and
//!   `<data_dir>/<bucket>_<n>.dat|.idx|.vif` (SeaweedFS's volumes of the bucket's
//!   collection). The filer's metadata store is not counted (it is shared, and small).

use super::S3Backend;
use super::settings::Flavour;
use dedup_lab_core::{
    BackendError, ErrorClass, InternalSizes, MaintenanceReport, Namespace, PreflightReport, Record, RecordId,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long maintenance waits for the master to show the vacuum's result.
const VACUUM_WAIT: Duration = Duration::from_secs(120);

impl S3Backend {
    pub(super) fn maintenance_unsupported(&self) -> Option<String> {
        (self.s.flavour != Flavour::Seaweedfs && self.s.maintenance_command.is_none()).then(|| {
            "the S3 API has no space-reclaim operation (MinIO frees a deleted object's parts at once); set \
             `maintenance_command` for a store that has one, or flavour = \"seaweedfs\" to vacuum SeaweedFS"
                .to_string()
        })
    }

    pub(super) fn reclaim(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        if let Some(cmd) = self.s.maintenance_command.clone() {
            return self.run_hook(ns, &cmd);
        }
        if self.s.flavour != Flavour::Seaweedfs {
            return Ok(MaintenanceReport {
                action: format!("none: {}", self.maintenance_unsupported().unwrap_or_default()),
            });
        }
        let master = self.s.master_url.clone().expect("checked by the settings");
        let start = Instant::now();
        let timeout = || {
            (start.elapsed() > VACUUM_WAIT).then(|| {
                BackendError::msg(format!(
                    "{}: maintenance did not finish in {} s",
                    self.api.sys(),
                    VACUUM_WAIT.as_secs()
                ))
                .classed(ErrorClass::Timeout)
            })
        };
        // The filer hands deletes to the volume servers asynchronously: when the buckets are
        // empty, wait until the volumes hold no live needle either, so the vacuum sees them.
        if self.count_objects(ns)? == 0 {
            while self.volumes(ns)?.iter().any(|v| v.files > v.deletes) {
                if let Some(e) = timeout() {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The vacuum call returns when the volumes are compacted; confirm it from the volume
        // servers' own figures, and vacuum again while deleted bytes remain.
        let mut rounds = 0;
        loop {
            for b in self.buckets(ns) {
                let url = format!("{master}/vol/vacuum?garbageThreshold=0.000001&collection={b}");
                self.master.get(&url).call()?.text(16 << 20)?;
            }
            rounds += 1;
            let garbage: u64 = self.volumes(ns)?.iter().map(|v| v.deleted_bytes).sum();
            if garbage == 0 {
                break;
            }
            if let Some(e) = timeout() {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(MaintenanceReport {
            action: format!(
                "SeaweedFS volume vacuum of collections {} via {master}/vol/vacuum ({rounds} round(s)), waited until \
                 the volume servers showed no deleted bytes",
                self.buckets(ns).join(", ")
            ),
        })
    }

    fn run_hook(&self, ns: &Namespace, cmd: &str) -> Result<MaintenanceReport, BackendError> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("DEDUP_LAB_BUCKETS", self.buckets(ns).join(","))
            .env("DEDUP_LAB_LAB", ns.lab().as_str())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| BackendError::with_source(format!("{}: running maintenance_command", self.api.sys()), e))?;
        if !out.status.success() {
            let tail: String = String::from_utf8_lossy(&out.stderr)
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(BackendError::msg(format!(
                "{}: maintenance_command failed ({}): {}",
                self.api.sys(),
                out.status,
                tail.trim()
            ))
            .classed(ErrorClass::Config));
        }
        Ok(MaintenanceReport { action: format!("maintenance_command `{cmd}`") })
    }

    /// The SeaweedFS volumes of the lab's collections, as the volume servers see them now
    /// (`/status` of each data node the master lists; the master's own view lags by a
    /// heartbeat).
    fn volumes(&self, ns: &Namespace) -> Result<Vec<Volume>, BackendError> {
        let Some(master) = &self.s.master_url else { return Ok(Vec::new()) };
        let nodes = self.json(&format!("{master}/dir/status"))?;
        let mut urls = Vec::new();
        walk(&nodes, &mut |o| {
            if let Some(u) = o.get("Url").and_then(|u| u.as_str())
                && o.contains_key("VolumeIds")
            {
                urls.push(u.to_string());
            }
        });
        let buckets = self.buckets(ns);
        let mut out = Vec::new();
        for url in urls {
            let base = if url.contains("://") { url } else { format!("http://{url}") };
            let status = self.json(&format!("{base}/status"))?;
            for v in status.get("Volumes").and_then(|v| v.as_array()).into_iter().flatten() {
                let c = v.get("Collection").and_then(|c| c.as_str()).unwrap_or_default();
                if buckets.iter().any(|b| b == c) {
                    let n = |k: &str| v.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                    out.push(Volume {
                        size: n("Size"),
                        files: n("FileCount"),
                        deletes: n("DeleteCount"),
                        deleted_bytes: n("DeletedByteCount"),
                    });
                }
            }
        }
        Ok(out)
    }

    fn json(&self, url: &str) -> Result<serde_json::Value, BackendError> {
        let text = self.master.get(url).call()?.text(64 << 20)?;
        serde_json::from_str(&text).map_err(|e| {
            BackendError::with_source(format!("{}: {url} did not answer JSON", self.api.sys()), e)
                .classed(ErrorClass::Server)
        })
    }

    pub(super) fn read_sizes(&self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let mut sizes = InternalSizes::default();
        let mut total = 0;
        for b in self.buckets(ns) {
            let objects = self.api.list_objects(&b)?.unwrap_or_default();
            let bytes: u64 = objects.iter().map(|o| o.size).sum();
            total += bytes;
            sizes.details.insert(format!("{b}.objects"), objects.len().into());
            sizes.details.insert(format!("{b}.bytes"), bytes.into());
        }
        sizes.total_bytes = Some(total);
        sizes.details.insert("total_bytes".into(), "logical: the sum of the objects' sizes (ListObjectsV2)".into());
        if self.s.flavour == Flavour::Seaweedfs {
            let vols = self.volumes(ns)?;
            let sum = |f: fn(&Volume) -> u64| vols.iter().map(f).sum::<u64>();
            sizes.details.insert("seaweedfs.volumes".into(), vols.len().into());
            sizes.details.insert("seaweedfs.volume_bytes".into(), sum(|v| v.size).into());
            sizes.details.insert("seaweedfs.live_needles".into(), sum(|v| v.files.saturating_sub(v.deletes)).into());
            sizes.details.insert("seaweedfs.deleted_bytes".into(), sum(|v| v.deleted_bytes).into());
        }
        Ok(sizes)
    }

    pub(super) fn lab_paths(&self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let Some(dir) = &self.s.data_dir else { return Ok(Vec::new()) };
        let buckets = self.buckets(ns);
        let mut paths: Vec<PathBuf> = buckets.iter().map(|b| dir.join(b)).collect();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            BackendError::with_source(format!("s3: data_dir {} cannot be listed", dir.display()), e)
                .classed(ErrorClass::Config)
        })?;
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if buckets.iter().any(|b| name.strip_prefix(b.as_str()).is_some_and(|rest| rest.starts_with('_'))) {
                paths.push(e.path());
            }
        }
        Ok(paths)
    }

    pub(super) fn run_preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        let mut checks = Vec::new();
        let (version, buckets) = self.api.server_and_buckets()?;
        checks.push(format!(
            "{}: credentials accepted (ListBuckets: {} buckets, {} of them this lab's)",
            self.api.sys(),
            buckets.len(),
            buckets.iter().filter(|b| super::lab::is_lab_bucket(ns.lab(), b)).count()
        ));
        self.reset_lab(ns)?;
        let probe =
            Record::blob(RecordId { key: "preflight".into(), container: 0 }, 0, b"dedup-lab preflight".to_vec());
        let bucket = &self.buckets(ns)[0];
        let result = (|| {
            self.put_record(bucket, &probe, Some("application/octet-stream"))?;
            let back = self.api.get_object(bucket, &probe.id.key, 1 << 20)?;
            if back.as_deref() != Some(&probe.data[..]) {
                return Err(BackendError::msg(format!(
                    "{}: an object written to {bucket} reads back differently",
                    self.api.sys()
                ))
                .classed(ErrorClass::Server));
            }
            self.api.delete_object(bucket, &probe.id.key)
        })();
        let dropped = self.drop_lab_buckets(ns.lab());
        result?;
        dropped?;
        checks.push(format!(
            "created bucket(s) {}, put, got and deleted an object, deleted the bucket(s)",
            self.buckets(ns).join(", ")
        ));
        if self.s.flavour == Flavour::Seaweedfs {
            let master = self.s.master_url.as_deref().unwrap_or_default();
            self.master.get(&format!("{master}/dir/status")).call()?.text(4 << 20)?;
            checks.push(format!("SeaweedFS master {master} answers (maintenance vacuums through it)"));
        }
        Ok(PreflightReport { server_version: version, checks })
    }
}

/// One SeaweedFS volume of a lab collection.
#[derive(Debug)]
struct Volume {
    size: u64,
    /// Needles written (an object is one or more needles: chunks, parts).
    files: u64,
    /// Needles deleted, not yet vacuumed away.
    deletes: u64,
    deleted_bytes: u64,
}

/// Calls `f` on every JSON object inside `v`.
fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&serde_json::Map<String, serde_json::Value>)) {
    match v {
        serde_json::Value::Object(o) => {
            f(o);
            o.values().for_each(|x| walk(x, f));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}
