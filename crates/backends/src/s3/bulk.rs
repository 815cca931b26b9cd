//! Writing objects: one PUT per record, or a multipart upload for a record of at least
//! `multipart_threshold` bytes, and the bulk path: `concurrency` worker threads taking
//! records from a bounded channel, so at most `2 × concurrency` records wait in memory.
//!
//! A multipart upload sends slices of the record's own buffer as parts (`part_size` each):
//! nothing is copied, so a 1 GiB record costs its own 1 GiB and no more. A failed upload
//! is aborted, so no half object or orphaned parts stay behind.
//!
//! The count `bulk_insert` reports is the number of PUTs (or completed multipart uploads)
//! the server acknowledged. It is then checked against a paginated `ListObjectsV2` of the
//! lab buckets: a listing that shows another number is an error, never a silent success.

use super::S3Backend;
use super::api::Api;
use dedup_lab_core::{BackendError, Namespace, Record, RecordStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};

impl S3Backend {
    /// Writes one record as one object (multipart when large); `bucket` is the record's.
    pub(super) fn put_record(&self, bucket: &str, r: &Record, content_type: Option<&str>) -> Result<(), BackendError> {
        put(&self.api, bucket, r, content_type, self.s.multipart_threshold, self.s.part_size)
    }

    pub(super) fn bulk_put(&self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let buckets = self.buckets(ns);
        let before = self.count_objects(ns)?;
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
        let done = AtomicU64::new(0);
        let workers = self.s.concurrency;
        let content_type = |r: &Record| self.content_type(ns, r).map(str::to_string);
        let (api, threshold, part) = (&self.api, self.s.multipart_threshold, self.s.part_size);
        let fail = |e: BackendError| {
            failed.store(true, Ordering::SeqCst);
            first_error.lock().expect("not poisoned").get_or_insert(e);
        };
        let (tx, rx) = mpsc::sync_channel::<(usize, Record, Option<String>)>(workers * 2);
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let job = rx.lock().expect("not poisoned").recv();
                        let Ok((c, r, ct)) = job else { return };
                        if failed.load(Ordering::SeqCst) {
                            continue; // drain: the stage has failed already
                        }
                        match put(api, &buckets[c], &r, ct.as_deref(), threshold, part) {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => fail(e),
                        }
                    }
                });
            }
            for item in records {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let sent = item.and_then(|r| {
                    let c = ns.container_of(&r.id)?;
                    let ct = content_type(&r);
                    Ok((c, r, ct))
                });
                match sent {
                    Ok(job) => {
                        if tx.send(job).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        fail(e);
                        break;
                    }
                }
            }
            drop(tx);
        });
        if let Some(e) = first_error.into_inner().expect("not poisoned") {
            return Err(e);
        }
        let put = done.into_inner();
        let after = self.count_objects(ns)?;
        if after != before + put {
            return Err(BackendError::msg(format!(
                "{}: {put} PUTs were acknowledged, but ListObjectsV2 of the lab buckets shows {after} objects \
                 (before: {before})",
                self.api.sys()
            ))
            .classed(dedup_lab_core::ErrorClass::Server));
        }
        Ok(put)
    }
}

fn put(
    api: &Api,
    bucket: &str,
    r: &Record,
    content_type: Option<&str>,
    threshold: u64,
    part: u64,
) -> Result<(), BackendError> {
    if (r.data.len() as u64) < threshold {
        return api.put_object(bucket, &r.id.key, &r.data, content_type);
    }
    let key = &r.id.key;
    let id = api.create_multipart(bucket, key, content_type)?;
    let upload = || -> Result<(), BackendError> {
        let mut etags = Vec::new();
        for (i, chunk) in r.data.chunks(part as usize).enumerate() {
            etags.push(api.upload_part(bucket, key, &id, i as u32 + 1, chunk)?);
        }
        api.complete_multipart(bucket, key, &id, &etags)
    };
    upload().inspect_err(|_| {
        // Best effort: the upload failed already; an abort that fails too leaves parts that
        // emptying the bucket aborts later.
        let _ = api.abort_multipart(bucket, key, &id);
    })
}
