//! The validity rules of a stage, as one pure function from what the stage did and found
//! ([`StageFacts`]) to the reasons it is invalid (empty when it is valid). The engine
//! gathers the facts; nothing here touches a backend, so every rule has a unit test.
//!
//! The rules: an insert or delete stage must send rows, and the system must report as many
//! rows as were sent; the rows counted afterwards must be what the stage should leave
//! behind; every record read back must match what was written; in native mode every
//! insert stage must send as many records as the first one did. A stage the system does
//! not support was not run: it is neither valid nor invalid, so no rule applies to it.
//!
//! A variant that deduplicates by design may leave fewer rows than were sent: its count
//! must lie in a range ([`Expected::Between`]) from the distinct records to the rows
//! sent, and a sampled record it collapsed (read back as nothing) is not a mismatch.

use dedup_lab_core::{Measurement, Stage};

/// The rows a stage must leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    Exactly(u64),
    /// A deduplicating variant: anything from `low` to `high`, both included.
    Between {
        low: u64,
        high: u64,
    },
}

impl Expected {
    /// `high` rows; for a deduplicating variant (`distinct` is `Some`) anything from the
    /// distinct records (at most `high`) to `high`.
    pub(crate) fn up_to(high: u64, distinct: Option<u64>) -> Expected {
        match distinct {
            Some(d) => Expected::Between { low: d.min(high), high },
            None => Expected::Exactly(high),
        }
    }

    fn admits(self, rows: u64) -> bool {
        match self {
            Expected::Exactly(n) => rows == n,
            Expected::Between { low, high } => (low..=high).contains(&rows),
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Exactly(n) => write!(f, "{n}"),
            Expected::Between { low, high } => {
                write!(f, "{low} to {high} (the variant deduplicates)")
            }
        }
    }
}

/// What a stage did and found, as far as its validity depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StageFacts {
    pub stage: Stage,
    /// The system has no meaningful form of the stage; it was not run.
    pub unsupported: bool,
    /// Records sent (or deleted).
    pub rows_sent: u64,
    /// Rows the system reported as affected.
    pub rows_reported: Option<u64>,
    /// A deduplicating variant's per-record delete: the fewest rows the system may report
    /// (the distinct records among those deleted; a delete of a record the variant collapsed
    /// finds nothing). `None`: exactly the rows sent.
    pub reported_low: Option<u64>,
    /// Rows counted in the namespace afterwards.
    pub rows_counted: Option<u64>,
    /// The rows the stage must leave behind.
    pub expected: Expected,
    /// Records read back, how many matched what was written, and how many a deduplicating
    /// variant collapsed (read back as nothing; always 0 for other variants).
    pub readback_sampled: u64,
    pub readback_matched: u64,
    pub readback_collapsed: u64,
    /// Native mode, an insert stage after the first: the records the first insert stage sent.
    pub first_native_rows: Option<u64>,
}

impl StageFacts {
    /// The facts a measurement records, with the count the stage must leave behind; the
    /// caller adds what only the engine knows (`readback_collapsed`, `first_native_rows`).
    pub(crate) fn of(m: &Measurement, expected: Expected) -> StageFacts {
        StageFacts {
            stage: m.stage,
            unsupported: m.unsupported.is_some(),
            rows_sent: m.rows_sent,
            rows_reported: m.rows_reported,
            reported_low: None,
            rows_counted: m.rows_counted,
            expected,
            readback_sampled: m.readback_sampled,
            readback_matched: m.readback_matched,
            readback_collapsed: 0,
            first_native_rows: None,
        }
    }
}

/// The reasons the stage is invalid, in a fixed order; empty when it is valid (and when it
/// is unsupported: it counts as neither).
pub(crate) fn invalid_reasons(f: &StageFacts) -> Vec<String> {
    let stage = f.stage;
    let mut reasons = Vec::new();
    if f.unsupported {
        return reasons;
    }
    if let Some(first) = f.first_native_rows
        && first != f.rows_sent
    {
        reasons.push(format!("{stage}: {} native records sent, the first insert stage sent {first}", f.rows_sent));
    }
    // Verification: what the system reports and what is there must match what was sent.
    if stage != Stage::Maintenance {
        if f.rows_sent == 0 {
            reasons.push(format!("{stage}: no rows were sent"));
        }
        let reported = f.rows_reported.map_or("no".into(), |r| r.to_string());
        match f.reported_low {
            None if f.rows_reported != Some(f.rows_sent) => {
                reasons.push(format!("{stage}: system reported {reported} rows, {} were sent", f.rows_sent));
            }
            Some(low) if !f.rows_reported.is_some_and(|r| (low.min(f.rows_sent)..=f.rows_sent).contains(&r)) => {
                reasons.push(format!(
                    "{stage}: system reported {reported} rows, expected {} to {} (the variant deduplicates)",
                    low.min(f.rows_sent),
                    f.rows_sent
                ));
            }
            _ => {}
        }
    }
    if !f.rows_counted.is_some_and(|c| f.expected.admits(c)) {
        reasons.push(format!(
            "{stage}: {} rows counted afterwards, expected {}",
            f.rows_counted.map_or("no".into(), |r| r.to_string()),
            f.expected
        ));
    }
    let differ = f.readback_sampled.saturating_sub(f.readback_matched + f.readback_collapsed);
    if differ > 0 {
        reasons.push(format!(
            "{stage}: {differ} of {} records read back differ from what was written",
            f.readback_sampled
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::Expected::{Between, Exactly};
    use super::*;

    /// A valid per-record insert of 10 records, 4 of them read back.
    fn insert() -> StageFacts {
        StageFacts {
            stage: Stage::PerfileInsert,
            unsupported: false,
            rows_sent: 10,
            rows_reported: Some(10),
            reported_low: None,
            rows_counted: Some(10),
            expected: Exactly(10),
            readback_sampled: 4,
            readback_matched: 4,
            readback_collapsed: 0,
            first_native_rows: None,
        }
    }

    #[test]
    fn an_honest_stage_is_valid() {
        assert_eq!(invalid_reasons(&insert()), Vec::<String>::new());
        let delete = StageFacts {
            stage: Stage::PerfileDelete,
            rows_counted: Some(0),
            expected: Exactly(0),
            readback_sampled: 0,
            readback_matched: 0,
            ..insert()
        };
        assert_eq!(invalid_reasons(&delete), Vec::<String>::new());
    }

    #[test]
    fn sending_nothing_is_invalid() {
        let f = StageFacts {
            rows_sent: 0,
            rows_reported: Some(0),
            rows_counted: Some(0),
            expected: Exactly(0),
            ..insert()
        };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: no rows were sent"]);
    }

    #[test]
    fn reported_rows_must_equal_rows_sent() {
        let f = StageFacts { stage: Stage::BulkInsert, rows_reported: Some(0), ..insert() };
        assert_eq!(invalid_reasons(&f), ["bulk_insert: system reported 0 rows, 10 were sent"]);
        let f = StageFacts { rows_reported: None, ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: system reported no rows, 10 were sent"]);
    }

    #[test]
    fn maintenance_sends_nothing_and_reports_nothing() {
        let f = StageFacts {
            stage: Stage::Maintenance,
            unsupported: false,
            rows_sent: 0,
            rows_reported: None,
            reported_low: None,
            rows_counted: Some(7),
            expected: Exactly(7),
            readback_sampled: 0,
            readback_matched: 0,
            readback_collapsed: 0,
            first_native_rows: None,
        };
        assert_eq!(invalid_reasons(&f), Vec::<String>::new());
        let lost = StageFacts { rows_counted: Some(6), ..f };
        assert_eq!(invalid_reasons(&lost), ["maintenance: 6 rows counted afterwards, expected 7"]);
    }

    #[test]
    fn the_count_afterwards_must_be_the_expected_one() {
        let f = StageFacts { rows_counted: Some(9), ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: 9 rows counted afterwards, expected 10"]);
        let f = StageFacts { rows_counted: None, ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: no rows counted afterwards, expected 10"]);
        let f = StageFacts { stage: Stage::PerfileDelete, rows_counted: Some(1), expected: Exactly(0), ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_delete: 1 rows counted afterwards, expected 0"]);
    }

    #[test]
    fn every_record_read_back_must_match() {
        let f = StageFacts { readback_matched: 1, ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: 3 of 4 records read back differ from what was written"]);
    }

    #[test]
    fn native_insert_stages_send_as_many_records_as_the_first() {
        let same = StageFacts { stage: Stage::Refill, first_native_rows: Some(10), ..insert() };
        assert_eq!(invalid_reasons(&same), Vec::<String>::new());
        let fewer =
            StageFacts { rows_reported: Some(9), rows_counted: Some(9), expected: Exactly(9), rows_sent: 9, ..same };
        assert_eq!(invalid_reasons(&fewer), ["refill: 9 native records sent, the first insert stage sent 10"]);
    }

    #[test]
    fn reasons_come_in_a_fixed_order() {
        let f = StageFacts {
            rows_sent: 8,
            rows_reported: Some(7),
            rows_counted: Some(6),
            readback_matched: 3,
            first_native_rows: Some(10),
            ..insert()
        };
        let r = invalid_reasons(&f);
        assert_eq!(r.len(), 4, "{r:?}");
        for (reason, want) in r.iter().zip(["native records sent", "system reported", "rows counted", "read back"]) {
            assert!(reason.contains(want), "{reason} should say {want}");
        }
    }

    #[test]
    fn an_unsupported_stage_is_never_invalid() {
        // Not run: nothing sent, reported, counted or read back, and still no reason.
        let f = StageFacts {
            stage: Stage::PerfileDelete,
            unsupported: true,
            rows_sent: 0,
            rows_reported: None,
            reported_low: None,
            rows_counted: None,
            expected: Exactly(0),
            readback_sampled: 0,
            readback_matched: 0,
            readback_collapsed: 0,
            first_native_rows: None,
        };
        assert_eq!(invalid_reasons(&f), Vec::<String>::new());
        // The same facts for a stage that ran break three rules.
        assert_eq!(invalid_reasons(&StageFacts { unsupported: false, ..f }).len(), 3);
    }

    #[test]
    fn a_deduplicating_variant_may_count_down_to_the_distinct_records() {
        // 10 sent, 4 distinct: 4 to 10 rows are fine, 3 or 11 are not.
        let expected = Expected::up_to(10, Some(4));
        assert_eq!(expected, Between { low: 4, high: 10 });
        for counted in [4, 7, 10] {
            let f = StageFacts { rows_counted: Some(counted), expected, ..insert() };
            assert_eq!(invalid_reasons(&f), Vec::<String>::new(), "{counted} rows");
        }
        for counted in [3, 11] {
            let f = StageFacts { rows_counted: Some(counted), expected, ..insert() };
            assert_eq!(
                invalid_reasons(&f),
                [format!(
                    "perfile_insert: {counted} rows counted afterwards, expected 4 to 10 (the variant deduplicates)"
                )]
            );
        }
        // The system must still acknowledge every row it was sent.
        let f = StageFacts { rows_reported: Some(4), rows_counted: Some(4), expected, ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: system reported 4 rows, 10 were sent"]);
        // Without a deduplicating declaration the count is exact.
        assert_eq!(Expected::up_to(10, None), Exactly(10));
    }

    #[test]
    fn after_maintenance_a_deduplicating_variant_keeps_at_most_what_was_there() {
        // 7 rows before maintenance, 4 distinct: 4 to 7; with 2 rows before: 2 exactly.
        assert_eq!(Expected::up_to(7, Some(4)), Between { low: 4, high: 7 });
        assert_eq!(Expected::up_to(2, Some(4)), Between { low: 2, high: 2 });
        let f = StageFacts {
            stage: Stage::Maintenance,
            rows_sent: 0,
            rows_reported: None,
            rows_counted: Some(5),
            expected: Expected::up_to(7, Some(4)),
            readback_sampled: 0,
            readback_matched: 0,
            ..insert()
        };
        assert_eq!(invalid_reasons(&f), Vec::<String>::new());
        let grew = StageFacts { rows_counted: Some(8), ..f };
        assert_eq!(invalid_reasons(&grew).len(), 1);
    }

    #[test]
    fn a_collapsed_record_is_not_a_mismatch_but_a_wrong_one_is() {
        let f = StageFacts { readback_matched: 3, readback_collapsed: 1, ..insert() };
        assert_eq!(invalid_reasons(&f), Vec::<String>::new());
        let f = StageFacts { readback_matched: 2, readback_collapsed: 1, ..insert() };
        assert_eq!(invalid_reasons(&f), ["perfile_insert: 1 of 4 records read back differ from what was written"]);
    }

    #[test]
    fn a_deduplicating_delete_may_find_collapsed_records_gone() {
        // 10 records deleted one by one, 4 distinct: a delete of a record the variant merged
        // away reports 0, so 4 to 10 reported rows are fine; fewer than 4, or more than 10,
        // are not; every record must still be gone afterwards.
        let f = StageFacts {
            stage: Stage::PerfileDelete,
            rows_reported: Some(4),
            reported_low: Some(4),
            rows_counted: Some(0),
            expected: Exactly(0),
            readback_sampled: 0,
            readback_matched: 0,
            ..insert()
        };
        assert_eq!(invalid_reasons(&f), Vec::<String>::new());
        assert_eq!(invalid_reasons(&StageFacts { rows_reported: Some(10), ..f.clone() }), Vec::<String>::new());
        assert_eq!(
            invalid_reasons(&StageFacts { rows_reported: Some(3), ..f.clone() }),
            ["perfile_delete: system reported 3 rows, expected 4 to 10 (the variant deduplicates)"]
        );
        assert_eq!(invalid_reasons(&StageFacts { rows_reported: Some(11), ..f.clone() }).len(), 1);
        assert_eq!(invalid_reasons(&StageFacts { rows_counted: Some(1), ..f }).len(), 1);
    }
}
