//! A site's abandoned contacts, kept from the processor's journal of abandons found and
//! withdrawn (`vigie_core::abandoned`), and listed in the queue records of the interval where
//! each contact hung up: the live list of the day for the History API, and what the history
//! stream keeps of earlier days.

use std::collections::BTreeMap;

use vigie_core::{AbandonedChange, AbandonedContact, Timestamp};

use crate::record::{AbandonedRecord, IntervalRecord, ScopeKind};

/// The most abandons a site's log keeps: days of a very large site, far beyond a normal day.
/// Beyond, new abandons are dropped and counted ([`AbandonedLog::dropped`]); they stay counted
/// in the figures.
pub const MAX_ABANDONED_PER_SITE: usize = 200_000;

/// The most abandons a queue's interval record lists (about 110 bytes each in JSON, so that a
/// record stays well within a NATS message). Beyond, they are counted in
/// `abandoned_contacts_omitted`.
pub const MAX_ABANDONED_PER_RECORD: usize = 5_000;

/// A site's abandoned contacts by time, then contact. Saved with the site's snapshot
/// (`vigie-engine`), so that a restart from it still lists the day's abandons.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AbandonedLog {
    list: BTreeMap<(Timestamp, String), AbandonedContact>,
    dropped: u64,
}

impl AbandonedLog {
    /// Applies the processor's changes, in their order.
    pub fn apply(&mut self, changes: Vec<AbandonedChange>) {
        for change in changes {
            let key = (change.contact.abandoned_at, change.contact.contact.clone());
            if !change.added {
                self.list.remove(&key);
            } else if self.list.len() < MAX_ABANDONED_PER_SITE || self.list.contains_key(&key) {
                self.list.insert(key, change.contact);
            } else {
                self.dropped += 1;
            }
        }
    }

    /// The abandons in `[from, to)`, by time.
    pub fn between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = &AbandonedContact> {
        let range = (from < to).then(|| (from, String::new())..(to, String::new()));
        range
            .into_iter()
            .flat_map(|range| self.list.range(range).map(|(_, contact)| contact))
    }

    /// Forgets the abandons before `time` (of intervals already recorded).
    pub fn forget_before(&mut self, time: Timestamp) {
        self.list = self.list.split_off(&(time, String::new()));
    }

    /// Abandons dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// An abandon as records list it.
pub fn abandoned_record(contact: &AbandonedContact) -> AbandonedRecord {
    AbandonedRecord {
        abandoned_at_ms: contact.abandoned_at.0,
        contact: contact.contact.clone(),
        channel: contact.channel.as_str().to_owned(),
        wait_ms: contact.wait.0,
        short: contact.short,
    }
}

/// Lists in each queue record the abandons of its queue and interval.
pub fn list_abandoned(records: &mut [IntervalRecord], log: &AbandonedLog) {
    for record in records.iter_mut() {
        if record.key.kind != ScopeKind::Queue {
            continue;
        }
        let start = Timestamp(record.key.start_ms);
        let end = Timestamp(record.end_ms);
        let mut listed = Vec::new();
        let mut omitted = 0;
        for contact in log.between(start, end) {
            if contact.queue != record.key.id {
                continue;
            }
            if listed.len() < MAX_ABANDONED_PER_RECORD {
                listed.push(abandoned_record(contact));
            } else {
                omitted += 1;
            }
        }
        record.abandoned_contacts = listed;
        record.abandoned_contacts_omitted = omitted;
    }
}

#[cfg(test)]
mod tests {
    use vigie_core::{Channel, Millis};

    use super::*;
    use crate::record::RecordKey;

    fn abandon(minute: i64, contact: &str, queue: &str) -> AbandonedContact {
        AbandonedContact {
            abandoned_at: Timestamp(minute * 60_000),
            contact: contact.into(),
            queue: queue.into(),
            channel: Channel::Voice,
            wait: Millis::from_secs(40),
            short: false,
        }
    }

    fn change(contact: AbandonedContact, added: bool) -> AbandonedChange {
        AbandonedChange { contact, added }
    }

    fn queue_record(id: &str, start_minute: i64) -> IntervalRecord {
        let key = RecordKey {
            site: "s".into(),
            kind: ScopeKind::Queue,
            id: id.into(),
            start_ms: start_minute * 60_000,
        };
        IntervalRecord::new(key, (start_minute + 15) * 60_000, "1970-01-01")
    }

    #[test]
    fn changes_leave_the_list_and_ranges_read_it_by_time() {
        let mut log = AbandonedLog::default();
        log.apply(vec![
            change(abandon(20, "c2", "q1"), true),
            change(abandon(5, "c1", "q1"), true),
            change(abandon(14, "c3", "q2"), true),
            change(abandon(14, "c3", "q2"), false),
            change(abandon(14, "c3", "q1"), true),
        ]);
        let listed = |log: &AbandonedLog, from: i64, to: i64| -> Vec<String> {
            log.between(Timestamp(from * 60_000), Timestamp(to * 60_000))
                .map(|c| format!("{}@{}", c.contact, c.queue))
                .collect()
        };
        assert_eq!(listed(&log, 0, 15), ["c1@q1", "c3@q1"]);
        assert_eq!(listed(&log, 14, 21), ["c3@q1", "c2@q1"]);
        assert_eq!(
            listed(&log, 15, 20),
            Vec::<String>::new(),
            "the end is excluded"
        );
        assert_eq!(listed(&log, 21, 0), Vec::<String>::new(), "an empty range");

        log.forget_before(Timestamp(14 * 60_000));
        assert_eq!(listed(&log, 0, 60), ["c3@q1", "c2@q1"]);
    }

    #[test]
    fn a_queue_record_lists_its_abandons_of_its_interval_and_counts_beyond_the_limit() {
        let mut log = AbandonedLog::default();
        log.apply(vec![
            change(abandon(3, "c1", "q1"), true),
            change(abandon(4, "c2", "q2"), true),
            change(abandon(15, "c3", "q1"), true),
        ]);
        let mut records = vec![queue_record("q1", 0), queue_record("q1", 15)];
        list_abandoned(&mut records, &log);
        let contacts = |record: &IntervalRecord| -> Vec<String> {
            record
                .abandoned_contacts
                .iter()
                .map(|a| a.contact.clone())
                .collect()
        };
        assert_eq!(contacts(&records[0]), ["c1"]);
        assert_eq!(contacts(&records[1]), ["c3"]);
        assert_eq!(records[0].abandoned_contacts[0].wait_ms, 40_000);
        assert_eq!(records[0].abandoned_contacts[0].channel, "voice");

        let crowd: Vec<AbandonedChange> = (0..MAX_ABANDONED_PER_RECORD + 2)
            .map(|n| change(abandon(30, &format!("x{n:05}"), "q1"), true))
            .collect();
        log.apply(crowd);
        let mut records = vec![queue_record("q1", 30)];
        list_abandoned(&mut records, &log);
        assert_eq!(
            records[0].abandoned_contacts.len(),
            MAX_ABANDONED_PER_RECORD
        );
        assert_eq!(records[0].abandoned_contacts_omitted, 2);
    }

    #[test]
    fn a_full_log_drops_new_abandons_and_counts_them() {
        let mut log = AbandonedLog::default();
        let many: Vec<AbandonedChange> = (0..MAX_ABANDONED_PER_SITE + 3)
            .map(|n| change(abandon(1, &format!("c{n:06}"), "q"), true))
            .collect();
        log.apply(many);
        assert_eq!((log.len(), log.dropped()), (MAX_ABANDONED_PER_SITE, 3));
        // A withdrawal still applies, and makes room.
        log.apply(vec![
            change(abandon(1, "c000000", "q"), false),
            change(abandon(2, "late", "q"), true),
        ]);
        assert_eq!((log.len(), log.dropped()), (MAX_ABANDONED_PER_SITE, 3));
    }
}
