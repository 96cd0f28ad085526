//! Each site's interval history as the engine sees it: the records of every 15-minute interval,
//! offered once when the interval closes (the figures as they stand) and once when no event can
//! change them any more (the processor's final totals at the interval's end). Which of them
//! reach the history stream, and with which revision, is the history task's business
//! (`vigie_history::publish`): the engine only offers.

use vigie_core::totals::DayTotals;
use vigie_core::{INTERVAL_LENGTH, SiteProcessor, Timestamp};
use vigie_history::abandoned::list_abandoned;
use vigie_history::records::{interval_records, name_records};
use vigie_history::{AbandonedLog, IntervalRecord};

/// The records of one interval of one site, every scope.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryBatch {
    pub site: String,
    /// The interval's start.
    pub start: Timestamp,
    pub records: Vec<IntervalRecord>,
    /// No event can change these figures any more (the allowed lateness has passed the
    /// interval's end); otherwise they are those at the interval's close.
    pub settled: bool,
}

/// What the engine keeps of a site's history between ticks (saved with the site's snapshot).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct SiteHistory {
    /// The last final totals: the start of the next interval.
    base: Option<DayTotals>,
    /// The end of the last interval offered at its close.
    offered_at_close: Option<Timestamp>,
}

/// The interval boundary at or before `now`, in the site's days.
fn boundary_at_or_before(site: &SiteProcessor, now: Timestamp) -> Timestamp {
    let day = site.day_of(now);
    let length = INTERVAL_LENGTH.0;
    Timestamp(day.start.0 + (now.0 - day.start.0).div_euclid(length) * length)
}

/// Whether `at` ends the first interval of its day.
fn first_of_day(totals: &DayTotals) -> bool {
    totals.at.0 - totals.day_start.0 == INTERVAL_LENGTH.0
}

/// The totals `totals` start from: `previous` when it ends where the interval starts (the day
/// before's last totals start the new day at zero), none at the start of a day, and unknown
/// otherwise (the first totals seen mid-day: what came before was not observed).
fn start_of<'a>(
    previous: Option<&'a DayTotals>,
    totals: &DayTotals,
) -> Option<Option<&'a DayTotals>> {
    match previous {
        Some(previous) if previous.at.0 == totals.at.0 - INTERVAL_LENGTH.0 => Some(Some(previous)),
        _ if first_of_day(totals) => Some(None),
        _ => None,
    }
}

impl SiteHistory {
    /// Until when the site's intervals were offered final: abandons before that instant, if
    /// it is not in the site's current day, are in the records and no longer needed (those of
    /// the current day stay for the day's list).
    pub(crate) fn recorded_until(&self, site: &SiteProcessor) -> Option<Timestamp> {
        let base = self.base.as_ref()?;
        Some(base.at.min(site.day_of(site.now()).start))
    }

    /// The records of the final totals the processor captured since the last call, interval
    /// by interval, named as `site` names them, queue records listing the abandons of
    /// `abandoned` in their interval. The first totals captured mid-day only start the next
    /// interval.
    pub(crate) fn settled(
        &mut self,
        captured: Vec<DayTotals>,
        site: &SiteProcessor,
        abandoned: &AbandonedLog,
    ) -> Vec<HistoryBatch> {
        let mut batches = Vec::new();
        for totals in captured {
            if let Some(start) = start_of(self.base.as_ref(), &totals) {
                let mut records = interval_records(start, &totals, 0, true);
                name_records(&mut records, site);
                list_abandoned(&mut records, abandoned);
                batches.push(HistoryBatch {
                    site: totals.site.clone(),
                    start: Timestamp(totals.at.0 - INTERVAL_LENGTH.0),
                    records,
                    settled: true,
                });
            }
            self.base = Some(totals);
        }
        batches
    }

    /// The records of the interval that closed last at the site's clock, if it was not
    /// offered yet and its final totals are not known yet. `None` as well when the figures
    /// before the interval can no longer be split at its bounds (its final totals are then
    /// on their way).
    pub(crate) fn at_close(
        &mut self,
        site: &SiteProcessor,
        abandoned: &AbandonedLog,
    ) -> Option<HistoryBatch> {
        let end = boundary_at_or_before(site, site.now());
        if self.offered_at_close >= Some(end) || self.base.as_ref().is_some_and(|b| b.at >= end) {
            return None;
        }
        self.offered_at_close = Some(end);
        let totals = site.totals_at(end).ok()?;
        let start = Timestamp(end.0 - INTERVAL_LENGTH.0);
        let earlier;
        let previous = match &self.base {
            Some(base) if base.at == start => Some(base),
            _ if first_of_day(&totals) => None,
            _ => {
                earlier = site.totals_at(start).ok()?;
                Some(&earlier)
            }
        };
        let mut records = interval_records(previous, &totals, 0, false);
        name_records(&mut records, site);
        list_abandoned(&mut records, abandoned);
        Some(HistoryBatch {
            site: totals.site.clone(),
            start,
            records,
            settled: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Outcome, ProcessingConfig, SiteConfig, decode_json};
    use vigie_history::{Publisher, ScopeKind};

    use super::*;

    fn at(time: &str) -> Timestamp {
        Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).expect("valid instant")
    }

    fn apply(site: &mut SiteProcessor, id: &str, time: &str, body: &str) {
        let json = format!(r#"{{"id":"{id}","time":"2026-03-02T{time}Z","site":"s",{body}}}"#);
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("valid event");
        assert_eq!(site.apply(&event), Outcome::Applied, "{json}");
    }

    fn contact(kind: &str, contact: &str) -> String {
        format!(
            r#""type":"contact.{kind}","contact":"{contact}","queue":"q","channel":"voice","advisor":"a""#
        )
    }

    /// The final intervals the site captured since the last call.
    fn settle(
        history: &mut SiteHistory,
        site: &mut SiteProcessor,
        abandoned: &AbandonedLog,
    ) -> Vec<HistoryBatch> {
        let totals = site.take_interval_totals();
        history.settled(totals, site, abandoned)
    }

    fn offered(batch: &HistoryBatch) -> u64 {
        let queue = batch
            .records
            .iter()
            .find(|r| r.key.kind == ScopeKind::Queue && r.key.id == "q")
            .expect("the queue's record");
        queue.flow.expect("a queue's flow").offered
    }

    /// The first interval of a day (the site's days start at midnight UTC by default), with one
    /// answered contact and one abandoned.
    fn first_interval() -> SiteProcessor {
        let mut site =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        site.enable_interval_totals();
        site.enable_abandoned_contacts();
        apply(
            &mut site,
            "l",
            "00:00:30",
            r#""type":"advisor.login","advisor":"a","team":"t""#,
        );
        apply(&mut site, "1", "00:01:00", &contact("queued", "c1"));
        apply(&mut site, "2", "00:01:20", &contact("answered", "c1"));
        apply(&mut site, "3", "00:05:00", &contact("ended", "c1"));
        apply(&mut site, "4", "00:06:00", &contact("completed", "c1"));
        apply(&mut site, "5", "00:10:00", &contact("queued", "c2"));
        apply(
            &mut site,
            "6",
            "00:14:50",
            r#""type":"contact.abandoned","contact":"c2","queue":"q","channel":"voice""#,
        );
        site
    }

    #[test]
    fn an_interval_is_offered_at_its_close_then_final_with_a_late_event() {
        let mut site = first_interval();
        let mut history = SiteHistory::default();
        site.advance_to(at("00:14:59"));
        assert_eq!(
            history.at_close(&site, &AbandonedLog::default()),
            None,
            "the interval is not over"
        );

        site.advance_to(at("00:15:00.100"));
        let closed = history
            .at_close(&site, &AbandonedLog::default())
            .expect("offered at its close");
        assert!(!closed.settled);
        assert_eq!(closed.start, at("00:00:00"));
        assert_eq!(offered(&closed), 2);
        assert_eq!(
            history.at_close(&site, &AbandonedLog::default()),
            None,
            "offered once"
        );

        // A contact queued before the end arrives late, within the allowed lateness.
        apply(&mut site, "7", "00:14:40", &contact("queued", "c3"));
        assert!(
            settle(&mut history, &mut site, &AbandonedLog::default()).is_empty(),
            "not final yet"
        );
        // Events 30 s past the end make the interval final.
        apply(&mut site, "8", "00:15:40", &contact("queued", "c4"));
        let settled = settle(&mut history, &mut site, &AbandonedLog::default());
        assert_eq!(settled.len(), 1, "{settled:?}");
        assert!(settled[0].settled);
        assert_eq!(settled[0].start, at("00:00:00"));
        assert_eq!(offered(&settled[0]), 3, "the late contact counts");
        assert_eq!(
            history.at_close(&site, &AbandonedLog::default()),
            None,
            "final: nothing more to offer"
        );

        // The publisher stores the queue's record twice (a correction), the rest once.
        let mut publisher = Publisher::new();
        let first = publisher.admit(closed.records.clone(), false);
        assert_eq!(first.len(), closed.records.len());
        let corrections = publisher.admit(settled[0].records.clone(), true);
        let corrected: Vec<(ScopeKind, &str, u32)> = corrections
            .iter()
            .map(|r| (r.key.kind, r.key.id.as_str(), r.revision))
            .collect();
        assert!(
            corrected.contains(&(ScopeKind::Queue, "q", 2)),
            "{corrected:?}"
        );
        assert!(
            !corrected
                .iter()
                .any(|(kind, _, _)| *kind == ScopeKind::Advisor),
            "the advisor's figures did not change: {corrected:?}"
        );
    }

    fn listed(batch: &HistoryBatch) -> Vec<(String, i64)> {
        let queue = batch
            .records
            .iter()
            .find(|r| r.key.kind == ScopeKind::Queue && r.key.id == "q")
            .expect("the queue's record");
        queue
            .abandoned_contacts
            .iter()
            .map(|a| (a.contact.clone(), a.wait_ms))
            .collect()
    }

    #[test]
    fn a_queue_record_lists_its_abandons_at_close_and_final_with_a_late_one() {
        let mut site = first_interval();
        let mut log = AbandonedLog::default();
        let mut history = SiteHistory::default();
        site.advance_to(at("00:15:00.100"));
        log.apply(site.take_abandoned_changes());
        let closed = history.at_close(&site, &log).expect("offered at its close");
        assert_eq!(listed(&closed), [("c2".to_owned(), 290_000)]);

        // c6 queued at 00:14:30 and abandoned at 00:14:59, reported late.
        apply(&mut site, "9", "00:14:30", &contact("queued", "c6"));
        apply(
            &mut site,
            "10",
            "00:14:59",
            r#""type":"contact.abandoned","contact":"c6""#,
        );
        apply(&mut site, "11", "00:15:40", &contact("queued", "c7"));
        log.apply(site.take_abandoned_changes());
        let settled = settle(&mut history, &mut site, &log);
        assert_eq!(
            listed(&settled[0]),
            [("c2".to_owned(), 290_000), ("c6".to_owned(), 29_000)]
        );
        let mut publisher = Publisher::new();
        publisher.admit(closed.records, false);
        let corrections = publisher.admit(settled[0].records.clone(), true);
        assert!(
            corrections
                .iter()
                .any(|r| r.key.kind == ScopeKind::Queue && r.revision == 2),
            "the queue's record is corrected"
        );

        // Recorded: the abandons before the interval's end stay while the day goes on.
        assert_eq!(history.recorded_until(&site), Some(at("00:00:00")));
    }

    #[test]
    fn records_carry_the_names_the_site_knows() {
        let mut config = SiteConfig::with_defaults("s");
        config.name = Some("Paris".into());
        let mut queue = vigie_core::QueueConfig::with_defaults("q");
        queue.name = Some("Billing".into());
        config.queues.push(queue);
        let mut site = SiteProcessor::new(config, &ProcessingConfig::default());
        site.enable_interval_totals();
        apply(
            &mut site,
            "l",
            "00:00:30",
            r#""type":"advisor.login","advisor":"a","team":"t","name":"Zoé Martin""#,
        );
        apply(&mut site, "1", "00:01:00", &contact("queued", "c1"));
        apply(&mut site, "2", "00:16:00", &contact("queued", "c2"));
        let totals = site.take_interval_totals();
        let settled = SiteHistory::default().settled(totals, &site, &AbandonedLog::default());
        let name = |kind: ScopeKind, id: &str| {
            settled[0]
                .records
                .iter()
                .find(|r| r.key.kind == kind && r.key.id == id)
                .and_then(|r| r.name.clone())
        };
        assert_eq!(name(ScopeKind::Site, "s").as_deref(), Some("Paris"));
        assert_eq!(name(ScopeKind::Queue, "q").as_deref(), Some("Billing"));
        assert_eq!(name(ScopeKind::Advisor, "a").as_deref(), Some("Zoé Martin"));
        assert_eq!(
            name(ScopeKind::Team, "t"),
            None,
            "a team named by logins only"
        );
    }

    #[test]
    fn the_next_interval_starts_where_the_final_one_ended() {
        let mut site = first_interval();
        let mut history = SiteHistory::default();
        apply(&mut site, "7", "00:16:00", &contact("queued", "c3"));
        apply(&mut site, "8", "00:29:00", &contact("answered", "c3"));
        apply(&mut site, "9", "00:31:00", &contact("ended", "c3"));
        let settled = settle(&mut history, &mut site, &AbandonedLog::default());
        let starts: Vec<Timestamp> = settled.iter().map(|b| b.start).collect();
        assert_eq!(starts, [at("00:00:00"), at("00:15:00")]);
        assert_eq!(offered(&settled[0]), 2);
        assert_eq!(offered(&settled[1]), 1);
    }

    #[test]
    fn a_day_observed_from_its_first_event_has_every_interval_from_its_start() {
        let mut site =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        site.enable_interval_totals();
        let mut history = SiteHistory::default();
        apply(&mut site, "1", "10:05:00", &contact("queued", "c1"));
        apply(&mut site, "2", "10:16:00", &contact("queued", "c2"));
        let settled = settle(&mut history, &mut site, &AbandonedLog::default());
        assert_eq!(settled.len(), 41, "00:00 to 10:15");
        assert_eq!(settled[0].start, at("00:00:00"));
        assert!(settled[..40].iter().all(|batch| offered(batch) == 0));
        assert_eq!(settled[40].start, at("10:00:00"));
        assert_eq!(offered(&settled[40]), 1);
    }

    #[test]
    fn totals_first_seen_mid_day_only_start_the_next_interval() {
        let mut site =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        apply(&mut site, "1", "10:05:00", &contact("queued", "c1"));
        // Capture enabled once events were applied: what came before is not captured.
        site.enable_interval_totals();
        let mut history = SiteHistory::default();
        apply(&mut site, "2", "10:16:00", &contact("queued", "c2"));
        assert!(
            settle(&mut history, &mut site, &AbandonedLog::default()).is_empty(),
            "the totals at 10:15 only start the next interval"
        );
        apply(&mut site, "3", "10:31:00", &contact("queued", "c3"));
        let settled = settle(&mut history, &mut site, &AbandonedLog::default());
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].start, at("10:15:00"));
        assert_eq!(offered(&settled[0]), 1);
    }
}
