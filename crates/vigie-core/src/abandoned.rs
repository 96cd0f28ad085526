//! The contacts abandoned in queues, one by one: the processor reports each abandon as it
//! derives it, and withdraws it when a later event (within the allowed lateness) changes the
//! contact's story, as a journal of changes that the caller drains and keeps.
//!
//! The processor does not keep the day's list itself: at a few abandons per advisor and day,
//! each with its contact id, the list would outgrow the state the processor keeps per advisor.
//! A caller that wants the list (the engine, for the history) keeps it.

use serde::{Deserialize, Serialize};

use crate::contact::{Outcome, Record};
use crate::event::Channel;
use crate::processor::SiteProcessor;
use crate::time::{Millis, Timestamp};

/// The most changes [`SiteProcessor::take_abandoned_changes`] keeps for its caller: a whole
/// day of abandons at a large site, replayed after a restart before the caller drained any.
/// Beyond, the newest are dropped and counted in
/// [`ProcessorStats::abandoned_changes_dropped`](crate::ProcessorStats).
pub const MAX_PENDING_ABANDONED_CHANGES: usize = 100_000;

/// A contact that left a queue by hanging up before an answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AbandonedContact {
    /// When it hung up.
    pub abandoned_at: Timestamp,
    /// The opaque contact id of the events (never a phone number).
    pub contact: String,
    /// The queue it waited in last.
    pub queue: String,
    /// Its channel (voice when its events did not say, as the queue figures count it).
    pub channel: Channel,
    /// How long it waited in that queue.
    pub wait: Millis,
    /// Shorter than the queue's `short_abandon` when the abandon was applied (often a wrong
    /// number: supervisors call these back last, if at all).
    pub short: bool,
}

/// An abandon found (`added`) or withdrawn (a late event changed the contact's story: the
/// same abandon comes back with its new wait, or not at all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonedChange {
    pub contact: AbandonedContact,
    pub added: bool,
}

/// What the processor keeps for its caller while abandoned contacts are reported.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct AbandonedJournal {
    changes: Vec<AbandonedChange>,
    pub(crate) dropped: u64,
}

impl SiteProcessor {
    /// Reports abandoned contacts from now on (see [`SiteProcessor::take_abandoned_changes`]).
    /// Disabled, the default, `apply` does nothing more than test one pointer per record it
    /// derives.
    pub fn enable_abandoned_contacts(&mut self) {
        if self.abandoned.is_none() {
            self.abandoned = Some(Box::default());
        }
    }

    /// The abandons found and withdrawn since the last call, in the order they were derived:
    /// applied in that order to a set, they leave exactly the contacts abandoned in the
    /// events applied since reporting was enabled. Empty when reporting is not enabled.
    pub fn take_abandoned_changes(&mut self) -> Vec<AbandonedChange> {
        self.abandoned
            .as_deref_mut()
            .map_or_else(Vec::new, |journal| std::mem::take(&mut journal.changes))
    }

    /// Notes `record` of contact `contact` added or removed, if it is an abandon.
    pub(crate) fn note_abandoned(&mut self, contact: &str, record: &Record, added: bool) {
        let Record::Left {
            qc,
            time,
            wait,
            outcome: Outcome::Abandoned,
        } = *record
        else {
            return;
        };
        let short = wait
            < self.queue_settings[qc.queue as usize]
                .thresholds
                .short_abandon;
        let queue = self.queues.name(qc.queue).to_owned();
        let Some(journal) = self.abandoned.as_deref_mut() else {
            return;
        };
        if journal.changes.len() >= MAX_PENDING_ABANDONED_CHANGES {
            journal.dropped += 1;
            return;
        }
        journal.changes.push(AbandonedChange {
            contact: AbandonedContact {
                abandoned_at: time,
                contact: contact.to_owned(),
                queue,
                channel: qc.channel,
                wait,
                short,
            },
            added,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};
    use crate::{Outcome, ProcessingConfig, SiteConfig};

    fn at(time: &str) -> Timestamp {
        Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).unwrap()
    }

    fn apply(p: &mut SiteProcessor, time: &str, body: &str) {
        let json = format!(
            r#"{{"id":"{}","time":"2026-03-02T{time}Z","site":"s",{body}}}"#,
            p.stats().applied
        );
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(p.apply(&event), Outcome::Applied, "{json}");
    }

    /// `contact` queued in `queue` (a chat) at `queued`, abandoned at `abandoned`.
    fn wait_then_abandon(
        p: &mut SiteProcessor,
        contact: &str,
        queue: &str,
        queued: &str,
        abandoned: &str,
    ) {
        let queued_body = format!(
            r#""type":"contact.queued","contact":"{contact}","queue":"{queue}","channel":"chat""#
        );
        apply(p, queued, &queued_body);
        let abandoned_body = format!(r#""type":"contact.abandoned","contact":"{contact}""#);
        apply(p, abandoned, &abandoned_body);
    }

    /// The changes taken, as (abandon, added).
    fn taken(p: &mut SiteProcessor) -> Vec<(AbandonedContact, bool)> {
        p.take_abandoned_changes()
            .into_iter()
            .map(|change| (change.contact, change.added))
            .collect()
    }

    fn processor() -> SiteProcessor {
        let mut p =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        p.enable_abandoned_contacts();
        p
    }

    fn abandon(contact: &str, time: &str, queue: &str, wait_secs: i64) -> AbandonedContact {
        AbandonedContact {
            abandoned_at: at(time),
            contact: contact.into(),
            queue: queue.into(),
            channel: Channel::Chat,
            wait: Millis::from_secs(wait_secs),
            short: wait_secs < 5,
        }
    }

    #[test]
    fn an_abandon_is_reported_with_its_queue_channel_and_wait() {
        let mut p = processor();
        wait_then_abandon(&mut p, "c1", "q1", "10:00:00", "10:01:00");
        wait_then_abandon(&mut p, "c2", "q1", "10:02:00", "10:02:03");
        let added = taken(&mut p);
        assert_eq!(
            added,
            [
                (abandon("c1", "10:01:00", "q1", 60), true),
                (abandon("c2", "10:02:03", "q1", 3), true),
            ],
            "c2 waited less than the default short_abandon of 5 s"
        );
        assert!(p.take_abandoned_changes().is_empty(), "taken");
    }

    #[test]
    fn a_late_event_withdraws_an_abandon_and_reports_it_again_as_it_now_stands() {
        let mut p = processor();
        wait_then_abandon(&mut p, "c1", "q1", "10:00:00", "10:01:00");
        // Reported late: the contact had moved to q2 at 10:00:30 and abandoned there.
        apply(
            &mut p,
            "10:00:30",
            r#""type":"contact.transferred","contact":"c1","to_queue":"q2""#,
        );
        assert_eq!(
            taken(&mut p),
            [
                (abandon("c1", "10:01:00", "q1", 60), true),
                (abandon("c1", "10:01:00", "q1", 60), false),
                (abandon("c1", "10:01:00", "q2", 30), true),
            ]
        );
    }

    #[test]
    fn nothing_is_kept_unless_enabled_and_a_full_journal_counts_what_it_drops() {
        let mut p =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        wait_then_abandon(&mut p, "c1", "q1", "10:00:00", "10:01:00");
        assert!(p.take_abandoned_changes().is_empty());
        assert!(p.abandoned.is_none());

        p.enable_abandoned_contacts();
        if let Some(journal) = p.abandoned.as_deref_mut() {
            journal.changes = vec![
                AbandonedChange {
                    contact: abandon("c0", "09:00:00", "q1", 1),
                    added: true,
                };
                MAX_PENDING_ABANDONED_CHANGES
            ];
        }
        wait_then_abandon(&mut p, "c2", "q1", "10:02:00", "10:02:30");
        assert_eq!(p.stats().abandoned_changes_dropped, 1);
        assert_eq!(
            p.take_abandoned_changes().len(),
            MAX_PENDING_ABANDONED_CHANGES
        );
    }
}
