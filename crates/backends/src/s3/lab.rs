//! The lab's buckets: their names, creating them, emptying and deleting them, and listing
//! what exists of a lab for `cleanup`.
//!
//! Bucket names come from the lab name only: `<lab, dashed>-c<i>` (lab `dedup_lab` →
//! `dedup-lab-c0`, `dedup-lab-c1`). A bucket belongs to lab L exactly when its name is
//! `<L dashed>-c` followed by digits, so the buckets of lab `dedup_lab_c0`
//! (`dedup-lab-c0-c0`) are never taken for those of `dedup_lab`, and nothing outside the
//! lab's own buckets is ever emptied or deleted.

use super::S3Backend;
use dedup_lab_core::{BackendError, ErrorClass, LabName, Namespace};
use std::sync::Mutex;

/// The bucket of container `index` of lab `lab`.
pub fn bucket_name(lab: &LabName, index: u8) -> String {
    format!("{}-c{index}", lab.dashed())
}

/// Whether `bucket` is one of lab `lab`'s buckets.
pub fn is_lab_bucket(lab: &LabName, bucket: &str) -> bool {
    bucket
        .strip_prefix(&format!("{}-c", lab.dashed()))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl S3Backend {
    /// The buckets of `ns`, by container index.
    pub(super) fn buckets(&self, ns: &Namespace) -> Vec<String> {
        ns.containers().map(|(i, _)| bucket_name(ns.lab(), i)).collect()
    }

    /// The lab's buckets that exist on the server.
    pub(super) fn lab_buckets(&self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let mut b: Vec<String> = self.api.list_buckets()?.into_iter().filter(|b| is_lab_bucket(lab, b)).collect();
        b.sort();
        Ok(b)
    }

    /// Drops every bucket of the lab, then creates the namespace's buckets, empty.
    pub(super) fn reset_lab(&self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_lab_buckets(ns.lab())?;
        for b in self.buckets(ns) {
            self.api.create_bucket(&b, &self.s.region)?;
        }
        Ok(())
    }

    /// Empties (objects and unfinished multipart uploads) and deletes every bucket of the lab.
    pub(super) fn drop_lab_buckets(&self, lab: &LabName) -> Result<(), BackendError> {
        for b in self.lab_buckets(lab)? {
            self.empty_bucket(&b)?;
            self.api.delete_bucket(&b)?;
        }
        Ok(())
    }

    /// Deletes every object of `bucket` (`concurrency` DELETEs in flight) and aborts its
    /// unfinished multipart uploads.
    fn empty_bucket(&self, bucket: &str) -> Result<(), BackendError> {
        // A listing shows at most what existed when it ran; a second pass confirms.
        for _ in 0..3 {
            for (key, id) in self.api.list_multipart(bucket)? {
                self.api.abort_multipart(bucket, &key, &id)?;
            }
            let objects = self.api.list_objects(bucket)?.unwrap_or_default();
            if objects.is_empty() {
                return Ok(());
            }
            let next = Mutex::new(objects.iter());
            let error: Mutex<Option<BackendError>> = Mutex::new(None);
            std::thread::scope(|scope| {
                for _ in 0..self.s.concurrency.min(objects.len()) {
                    scope.spawn(|| {
                        loop {
                            let o = next.lock().expect("not poisoned").next();
                            let Some(o) = o else { return };
                            if let Err(e) = self.api.delete_object(bucket, &o.key) {
                                error.lock().expect("not poisoned").get_or_insert(e);
                                return;
                            }
                        }
                    });
                }
            });
            if let Some(e) = error.into_inner().expect("not poisoned") {
                return Err(e);
            }
        }
        Err(BackendError::msg(format!(
            "{}: bucket {bucket} still lists objects after three rounds of deleting (is something else writing \
             into it?)",
            self.api.sys()
        ))
        .classed(ErrorClass::Server))
    }

    /// One line per bucket of the lab: name, objects, bytes.
    pub(super) fn lab_inventory(&self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let mut out = Vec::new();
        for b in self.lab_buckets(lab)? {
            let objects = self.api.list_objects(&b)?.unwrap_or_default();
            let bytes: u64 = objects.iter().map(|o| o.size).sum();
            out.push(format!("bucket {b} ({} objects, {bytes} bytes)", objects.len()));
        }
        Ok(out)
    }

    /// Objects in the namespace's buckets (a missing bucket holds none).
    pub(super) fn count_objects(&self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut n = 0;
        for b in self.buckets(ns) {
            n += self.api.list_objects(&b)?.map_or(0, |o| o.len() as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_belong_to_exactly_one_lab() {
        let lab: LabName = "dedup_lab".parse().unwrap();
        assert_eq!(bucket_name(&lab, 1), "dedup-lab-c1");
        assert!(is_lab_bucket(&lab, "dedup-lab-c0") && is_lab_bucket(&lab, "dedup-lab-c12"));
        for other in ["dedup-lab-c0-c0", "dedup-lab-c", "dedup-lab-cx", "dedup-lab", "dedup-labx-c0", "photos"] {
            assert!(!is_lab_bucket(&lab, other), "{other}");
        }
        let nested: LabName = "dedup_lab_c0".parse().unwrap();
        assert!(is_lab_bucket(&nested, "dedup-lab-c0-c0") && !is_lab_bucket(&nested, "dedup-lab-c0"));
    }
}
