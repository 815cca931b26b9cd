//! Key names: everything dedup-lab writes lives under `dedup:<lab>:`, one key per record:
//! `dedup:<lab>:c<container>:<record key>`, e.g. `dedup:dedup_lab:c1:r00000042`. Placement
//! `across` uses the two sub-prefixes `c0` and `c1`. There is no hash tag, so a lab's keys
//! spread over every master of a cluster (as production keys do) and the memory of every
//! master is measured; bulk pipelines are grouped per master instead (see `router`).

use dedup_lab_core::{BackendError, LabName, Namespace, RecordId};

/// The prefix of every key dedup-lab may touch (the ACL pattern `~dedup:*`).
pub const PREFIX: &str = "dedup:";

/// `dedup:<lab>:` — every key of one lab; labs never share one (the trailing colon).
pub fn lab_prefix(lab: &LabName) -> String {
    format!("{PREFIX}{}:", lab.as_str())
}

/// The SCAN pattern of every key of a lab. Lab names are `[a-z0-9_]`, so nothing in them is
/// a glob character.
pub fn lab_pattern(lab: &LabName) -> String {
    format!("{}*", lab_prefix(lab))
}

/// The SCAN pattern of one container's keys.
pub fn container_pattern(lab: &LabName, container: u8) -> String {
    format!("{}c{container}:*", lab_prefix(lab))
}

/// The key of record `id`; an error (BadRequest) when its container is outside `ns`.
pub fn record_key(ns: &Namespace, id: &RecordId) -> Result<Vec<u8>, BackendError> {
    let c = ns.container_of(id)?;
    Ok(format!("{}c{c}:{}", lab_prefix(ns.lab()), id.key).into_bytes())
}

/// The preflight's marker key.
pub fn marker_key(lab: &LabName) -> Vec<u8> {
    format!("{}preflight", lab_prefix(lab)).into_bytes()
}

/// Keys of the warm-up writes.
pub fn warmup_key(lab: &LabName, i: u64) -> Vec<u8> {
    format!("{}warmup:{i}", lab_prefix(lab)).into_bytes()
}

/// The container part of a lab key (`c0`), or the whole rest for other keys of the lab.
pub fn group_of(lab: &LabName, key: &[u8]) -> String {
    let k = String::from_utf8_lossy(key);
    let rest = k.strip_prefix(&lab_prefix(lab)).unwrap_or(&k);
    rest.split(':').next().unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dedup_lab_core::Namespace;

    #[test]
    fn keys_stay_under_the_lab_prefix() {
        let lab: LabName = "dedup_lab".parse().unwrap();
        let ns = Namespace::new(&lab, 2);
        let id = RecordId { key: "r00000042".into(), container: 1 };
        assert_eq!(record_key(&ns, &id).unwrap(), b"dedup:dedup_lab:c1:r00000042");
        let outside = RecordId { key: "r1".into(), container: 2 };
        assert!(record_key(&ns, &outside).unwrap_err().to_string().contains("container 2"));
        assert_eq!(lab_pattern(&lab), "dedup:dedup_lab:*");
        assert_eq!(group_of(&lab, b"dedup:dedup_lab:c1:r1"), "c1");
        let other: LabName = "dedup_lab2".parse().unwrap();
        assert!(
            !record_key(&Namespace::new(&other, 1), &RecordId { key: "r1".into(), container: 0 })
                .unwrap()
                .starts_with(lab_prefix(&lab).as_bytes())
        );
    }
}
