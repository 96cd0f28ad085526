//! Which interval records to publish, and with which revision.
//!
//! The engine offers the records of an interval twice: when the interval closes (the figures
//! as they stand, since events may still arrive within the allowed lateness) and when no event
//! can change them any more. After a restart it offers them again while it rebuilds the day
//! from the event stream. A record is published only when its content differs from what the
//! stream already holds for its key: the first time with revision 1, each change with the next
//! revision (a correction). So the stream has no gap (every closed interval is offered, after a
//! restart too) and no duplicate (the same content is never published twice).
//!
//! A record with no activity (no contact, nobody logged in) is not published at all, unless
//! it corrects one that was: most advisors are logged in for a third of the day's intervals.
//!
//! What is known of a key is its content's digest and revision, not the record: a site of
//! 4,000 advisors has 400,000 records a day. Keys are forgotten once their final figures were
//! offered; keys seeded from the stream at start-up and never offered again (intervals before
//! the rebuilt stretch) are forgotten with their day ([`Publisher::forget_before`]).

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::record::{IntervalRecord, RecordKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    digest: u64,
    revision: u32,
}

/// Remembers what was published (or found in the stream) for the keys that may still change.
#[derive(Debug, Default)]
pub struct Publisher {
    known: HashMap<RecordKey, Known>,
}

/// The digest of a record's content: every field but the revision and the `settled` mark, so
/// that the same figures offered again (final after provisional, or rebuilt after a restart)
/// are recognised.
fn digest(record: &IntervalRecord) -> u64 {
    let mut content = record.clone();
    content.revision = 0;
    content.settled = false;
    // Serialising a record cannot fail: every field is a plain value, map keys are strings.
    let json = serde_json::to_vec(&content).unwrap_or_default();
    xxh3_64(&json)
}

impl Publisher {
    pub fn new() -> Publisher {
        Publisher::default()
    }

    /// Records the stream already holds (read at start-up): offered again with the same
    /// content, they are not published again; with other content, they get the next revision.
    /// Of several revisions of a key, the highest counts.
    pub fn seed(&mut self, stored: impl IntoIterator<Item = IntervalRecord>) {
        for record in stored {
            let known = Known {
                digest: digest(&record),
                revision: record.revision,
            };
            self.known
                .entry(record.key.clone())
                .and_modify(|k| {
                    if known.revision > k.revision {
                        *k = known;
                    }
                })
                .or_insert(known);
        }
    }

    /// The records to publish among `offered`, with their revision set. `settled`: no event
    /// can change these figures any more; their keys are then forgotten, and a record that
    /// was published unsettled with the same figures is not published again.
    pub fn admit(&mut self, offered: Vec<IntervalRecord>, settled: bool) -> Vec<IntervalRecord> {
        let mut publish = Vec::new();
        for mut record in offered {
            let digest = digest(&record);
            let previous = if settled {
                self.known.remove(&record.key)
            } else {
                self.known.get(&record.key).copied()
            };
            if previous.is_some_and(|p| p.digest == digest) {
                continue;
            }
            if previous.is_none() && record.is_empty() {
                // An interval without activity needs no record, unless it corrects one.
                continue;
            }
            record.revision = previous.map_or(1, |p| p.revision + 1);
            record.settled = settled;
            if !settled {
                self.known.insert(
                    record.key.clone(),
                    Known {
                        digest,
                        revision: record.revision,
                    },
                );
            }
            publish.push(record);
        }
        publish
    }

    /// Forgets the keys of intervals starting before `start_ms` (a day that is over).
    pub fn forget_before(&mut self, start_ms: i64) {
        self.known.retain(|key, _| key.start_ms >= start_ms);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{HandlingRecord, ScopeKind};

    fn record(id: &str, start_min: i64, handled: u64) -> IntervalRecord {
        IntervalRecord {
            handling: HandlingRecord {
                handled,
                ..HandlingRecord::default()
            },
            ..IntervalRecord::new(
                RecordKey {
                    site: "paris".into(),
                    kind: ScopeKind::Queue,
                    id: id.into(),
                    start_ms: start_min * 60_000,
                },
                (start_min + 15) * 60_000,
                "2026-11-27",
            )
        }
    }

    fn revisions(records: &[IntervalRecord]) -> Vec<(String, u32, bool)> {
        records
            .iter()
            .map(|r| (r.key.id.clone(), r.revision, r.settled))
            .collect()
    }

    #[test]
    fn unchanged_final_figures_are_not_published_again() {
        let mut publisher = Publisher::new();
        let at_close = publisher.admit(vec![record("a", 0, 3), record("b", 0, 1)], false);
        assert_eq!(
            revisions(&at_close),
            [("a".into(), 1, false), ("b".into(), 1, false)]
        );
        // A late event changed `b` only.
        let settled = publisher.admit(vec![record("a", 0, 3), record("b", 0, 2)], true);
        assert_eq!(revisions(&settled), [("b".into(), 2, true)]);
        assert!(publisher.is_empty(), "settled keys are forgotten");
    }

    #[test]
    fn an_interval_first_offered_settled_is_published_once() {
        let mut publisher = Publisher::new();
        let published = publisher.admit(vec![record("a", 0, 3)], true);
        assert_eq!(revisions(&published), [("a".into(), 1, true)]);
    }

    #[test]
    fn after_a_restart_only_what_differs_from_the_stream_is_published() {
        let mut publisher = Publisher::new();
        let mut stored_a = record("a", 0, 3);
        stored_a.revision = 1;
        let mut stored_b1 = record("b", 0, 1);
        stored_b1.revision = 1;
        let mut stored_b2 = record("b", 0, 2);
        stored_b2.revision = 2;
        publisher.seed([stored_a, stored_b2, stored_b1]);
        let rebuilt = publisher.admit(
            vec![record("a", 0, 3), record("b", 0, 4), record("c", 0, 1)],
            true,
        );
        assert_eq!(
            revisions(&rebuilt),
            [("b".into(), 3, true), ("c".into(), 1, true)],
            "a unchanged; b corrected after its highest stored revision; c missing"
        );
    }

    #[test]
    fn provisional_figures_offered_twice_are_published_once() {
        let mut publisher = Publisher::new();
        assert_eq!(publisher.admit(vec![record("a", 0, 3)], false).len(), 1);
        assert!(publisher.admit(vec![record("a", 0, 3)], false).is_empty());
        let changed = publisher.admit(vec![record("a", 0, 5)], false);
        assert_eq!(revisions(&changed), [("a".into(), 2, false)]);
    }

    #[test]
    fn intervals_without_activity_are_published_only_as_corrections() {
        let mut publisher = Publisher::new();
        assert!(publisher.admit(vec![record("a", 0, 0)], false).is_empty());
        assert!(publisher.admit(vec![record("a", 0, 0)], true).is_empty());
        publisher.admit(vec![record("b", 0, 1)], false);
        let corrected = publisher.admit(vec![record("b", 0, 0)], true);
        assert_eq!(revisions(&corrected), [("b".into(), 2, true)]);
    }

    #[test]
    fn forgetting_a_day_drops_its_keys_only() {
        let mut publisher = Publisher::new();
        publisher.admit(vec![record("a", 0, 1), record("a", 24 * 60, 1)], false);
        publisher.forget_before(24 * 60 * 60_000);
        assert_eq!(publisher.len(), 1);
        // The forgotten key starts over (it would be a day no longer rebuilt).
        assert_eq!(
            publisher.admit(vec![record("a", 0, 1)], false)[0].revision,
            1
        );
    }
}
