//! Counts per 15-minute interval of the site-local day, per queue: the service level of each
//! interval, for trend lines, and the base that interval history (offered, handled, AHT per
//! queue, team and advisor) extends with more counts per interval.
//!
//! Intervals start at the day start and follow each other every 15 minutes of elapsed time, so
//! a day of 23 or 25 hours (daylight saving) has 92 or 100 of them. A contact counts in the
//! interval of the instant it left the queue.
//!
//! The counts follow the day's figures exactly: what a queue-channel settles into its day tally
//! is added, with the same thresholds, to the queue's interval counts at the same moment; what
//! is not settled yet (within the allowed lateness) is added when a view is read, with the
//! queue's current thresholds, as the day's figures count it. So the sum over the intervals is
//! the `today` flow, whatever the order of events, and a new threshold applies to the day from
//! where the day's figures take it.

use serde::{Deserialize, Serialize, Serializer};

use crate::config::SlVariant;
use crate::contact::Outcome;
use crate::processor::SiteProcessor;
use crate::tally::{FlowEntry, FlowKind, Thresholds};
use crate::time::{Day, Millis, Timestamp};

/// The length of an interval.
pub const INTERVAL_LENGTH: Millis = Millis::from_mins(15);

/// The position of the interval of `time` in the day starting at `day_start`.
pub(crate) fn interval_index(day_start: Timestamp, time: Timestamp) -> usize {
    usize::try_from((time - day_start).0.max(0) / INTERVAL_LENGTH.0).unwrap_or(0)
}

/// What the service level of an interval is computed from: a queue's exits by answer or
/// abandon, judged by its thresholds (or several queues' counts summed). 20 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceLevelCounts {
    pub answered: u32,
    pub answered_within_threshold: u32,
    pub abandoned: u32,
    pub short_abandoned: u32,
    pub abandoned_within_threshold: u32,
}

impl ServiceLevelCounts {
    /// Counts an exit as the queue's flow tally counts it (same boundaries).
    pub(crate) fn add_flow(&mut self, entry: &FlowEntry, thresholds: Thresholds) {
        let wait = Millis(i64::from(entry.wait));
        match entry.kind {
            FlowKind::Left(Outcome::Answered) => {
                self.answered += 1;
                if wait <= thresholds.sl_threshold {
                    self.answered_within_threshold += 1;
                }
            }
            FlowKind::Left(Outcome::Abandoned) => {
                self.abandoned += 1;
                if wait < thresholds.short_abandon {
                    self.short_abandoned += 1;
                }
                if wait <= thresholds.sl_threshold {
                    self.abandoned_within_threshold += 1;
                }
            }
            FlowKind::Offer | FlowKind::Left(_) => {}
        }
    }

    fn add(&mut self, other: &ServiceLevelCounts) {
        self.answered += other.answered;
        self.answered_within_threshold += other.answered_within_threshold;
        self.abandoned += other.abandoned;
        self.short_abandoned += other.short_abandoned;
        self.abandoned_within_threshold += other.abandoned_within_threshold;
    }

    /// The service level in `variant`, with the formulas of the flow indicators
    /// (`FlowIndicators::sl_offered`, `sl_answered`, `sl_positive`); `None` when the formula
    /// has nothing to count.
    fn service_level(&self, variant: SlVariant) -> Option<f64> {
        let ratio = |numerator: u32, denominator: u32| {
            (denominator > 0).then(|| f64::from(numerator) / f64::from(denominator))
        };
        match variant {
            SlVariant::Offered => ratio(
                self.answered_within_threshold,
                (self.answered + self.abandoned).saturating_sub(self.short_abandoned),
            ),
            SlVariant::Answered => ratio(self.answered_within_threshold, self.answered),
            SlVariant::Positive => ratio(
                self.answered_within_threshold + self.abandoned_within_threshold,
                self.answered + self.abandoned,
            ),
        }
    }
}

/// Counts of each interval of one day, from the first interval counted to the latest: a
/// compact buffer per queue, reset when a newer day begins. It keeps nothing for the hours
/// before a queue's first contact (a centre opening at 08:00 keeps no night), and grows an hour
/// at a time (a buffer per queue lives as long as the process).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DayIntervals<C> {
    /// Start of the day the counts belong to.
    day_start: Timestamp,
    /// Position in the day of the interval of `counts[0]`.
    first: usize,
    /// By interval, from `first`.
    counts: Vec<C>,
}

/// Intervals a buffer grows by: an hour.
const GROWTH: usize = 4;

/// More intervals than any site-local day has (100 on a 25-hour day): the bound a decoded
/// buffer is checked against, so that a snapshot cannot make it grow beyond reason.
const MAX_DAY_INTERVALS: usize = 48 * 4;

impl<C> Default for DayIntervals<C> {
    fn default() -> Self {
        DayIntervals {
            day_start: Timestamp::MIN,
            first: 0,
            counts: Vec::new(),
        }
    }
}

impl<C: Copy + Default> DayIntervals<C> {
    /// The counts of the interval of `time`, in its `day`. A newer day starts from zero; an
    /// older one is over and gives `None` (a queue-channel may settle yesterday's last entries
    /// after another channel of the queue settled today's first).
    pub(crate) fn slot(&mut self, day: Day, time: Timestamp) -> Option<&mut C> {
        let index = interval_index(day.start, time);
        if day.start != self.day_start {
            if day.start < self.day_start {
                return None;
            }
            self.day_start = day.start;
            self.counts.clear();
        }
        if self.counts.is_empty() {
            self.first = index;
        } else if index < self.first {
            // An earlier interval than any so far (another channel of the queue settled later
            // exits first): rare, and only at the start of the queue's day.
            let earlier = self.first - index;
            self.counts.reserve_exact(earlier);
            self.counts
                .splice(0..0, std::iter::repeat_n(C::default(), earlier));
            self.first = index;
        }
        let position = index - self.first;
        if position >= self.counts.len() {
            if position >= self.counts.capacity() {
                self.counts
                    .reserve_exact(position + GROWTH - self.counts.len());
            }
            self.counts.resize(position + 1, C::default());
        }
        Some(&mut self.counts[position])
    }

    /// The counts of the day starting at `day_start`: the position in the day of the first
    /// one, and the counts by interval from there (none for another day).
    pub(crate) fn of_day(&self, day_start: Timestamp) -> (usize, &[C]) {
        if self.day_start == day_start {
            (self.first, &self.counts)
        } else {
            (0, &[])
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<C>()
    }

    /// Whether a decoded buffer (a snapshot) stays within a day's intervals.
    pub(crate) fn is_consistent(&self) -> bool {
        self.first
            .checked_add(self.counts.len())
            .is_some_and(|end| end <= MAX_DAY_INTERVALS)
    }
}

/// The interval counts a queue keeps for its day.
pub(crate) type QueueIntervals = DayIntervals<ServiceLevelCounts>;

impl QueueIntervals {
    /// Counts an exit of the queue's flow, of `day`, in its interval.
    pub(crate) fn add_flow(&mut self, entry: &FlowEntry, day: Day, thresholds: Thresholds) {
        // Offers, dequeues and flow-outs do not touch the buffer.
        if let FlowKind::Left(Outcome::Answered | Outcome::Abandoned) = entry.kind
            && let Some(counts) = self.slot(day, entry.time)
        {
            counts.add_flow(entry, thresholds);
        }
    }
}

/// The service level of one 15-minute interval of the site-local day, for a queue or a team.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IntervalServiceLevel {
    /// Start of the interval (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub start: Timestamp,
    /// Contacts answered in the interval.
    pub answered: u32,
    /// Of those, answered within the queue's `sl_threshold`.
    pub answered_within_threshold: u32,
    /// Contacts abandoned in the interval.
    pub abandoned: u32,
    /// Of those, abandoned with a wait below the queue's `short_abandon`.
    pub short_abandoned: u32,
    /// Of those, abandoned with a wait of at most the queue's `sl_threshold`.
    pub abandoned_within_threshold: u32,
    /// The interval's service level with the view's formula; `None` when the formula has
    /// nothing to count.
    pub service_level: Option<f64>,
}

fn rfc3339<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(time)
}

impl SiteProcessor {
    /// The service level of each interval of the day of `now`, from the first to the current
    /// one, over `queues` (each judged by its own thresholds), in `variant`.
    pub(crate) fn service_level_by_interval(
        &self,
        queues: &[u32],
        variant: SlVariant,
        now: Timestamp,
    ) -> Vec<IntervalServiceLevel> {
        let day = self.day_of(now);
        let mut counts = vec![ServiceLevelCounts::default(); interval_index(day.start, now) + 1];
        for &queue in queues {
            let (first, settled) = self.queue_intervals[queue as usize].of_day(day.start);
            for (total, settled) in counts.iter_mut().skip(first).zip(settled) {
                total.add(settled);
            }
            let thresholds = self.queue_settings[queue as usize].thresholds;
            for qc in self.channels_of(queue) {
                let Some(state) = self.queue_channel(qc) else {
                    continue;
                };
                for entry in state.flow.unsettled(day.start, now) {
                    if let Some(total) = counts.get_mut(interval_index(day.start, entry.time)) {
                        total.add_flow(entry, thresholds);
                    }
                }
            }
        }
        counts
            .iter()
            .enumerate()
            .map(|(index, counts)| IntervalServiceLevel {
                start: day.start + Millis(INTERVAL_LENGTH.0 * index as i64),
                answered: counts.answered,
                answered_within_threshold: counts.answered_within_threshold,
                abandoned: counts.abandoned,
                short_abandoned: counts.short_abandoned,
                abandoned_within_threshold: counts.abandoned_within_threshold,
                service_level: counts.service_level(variant),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DayCalendar;

    const THRESHOLDS: Thresholds = Thresholds {
        sl_threshold: Millis(20_000),
        short_abandon: Millis(5_000),
    };

    fn utc_day(start: i64) -> Day {
        DayCalendar::new(chrono_tz::UTC, chrono::NaiveTime::MIN).day_of(Timestamp(start))
    }

    #[test]
    fn an_exit_counts_with_the_boundaries_of_the_flow_tally() {
        let mut counts = ServiceLevelCounts::default();
        let left = |wait, outcome| FlowEntry::left(Timestamp(0), Millis(wait), outcome);
        for entry in [
            left(20_000, Outcome::Answered), // exactly T: within
            left(20_001, Outcome::Answered),
            left(5_000, Outcome::Abandoned), // exactly S: not short
            left(4_999, Outcome::Abandoned),
            left(1_000, Outcome::FlowedOut),
            FlowEntry::offer(Timestamp(0)),
        ] {
            counts.add_flow(&entry, THRESHOLDS);
        }
        assert_eq!(
            counts,
            ServiceLevelCounts {
                answered: 2,
                answered_within_threshold: 1,
                abandoned: 2,
                short_abandoned: 1,
                abandoned_within_threshold: 2,
            }
        );
        // offered: 1 / (2 + 2 - 1); answered: 1 / 2; positive: (1 + 2) / (2 + 2).
        assert_eq!(counts.service_level(SlVariant::Offered), Some(1.0 / 3.0));
        assert_eq!(counts.service_level(SlVariant::Answered), Some(0.5));
        assert_eq!(counts.service_level(SlVariant::Positive), Some(0.75));
        let only_short = ServiceLevelCounts {
            abandoned: 1,
            short_abandoned: 1,
            ..ServiceLevelCounts::default()
        };
        assert_eq!(only_short.service_level(SlVariant::Offered), None);
        assert_eq!(only_short.service_level(SlVariant::Answered), None);
        assert_eq!(only_short.service_level(SlVariant::Positive), Some(0.0));
    }

    #[test]
    fn a_day_keeps_its_intervals_from_the_first_counted_and_a_newer_day_starts_anew() {
        const DAY: i64 = 86_400_000;
        const MINUTE: i64 = 60_000;
        let mut intervals = DayIntervals::<u32>::default();
        let today = utc_day(DAY);
        // From 08:00: nothing kept for the night.
        *intervals
            .slot(today, Timestamp(DAY + 480 * MINUTE))
            .unwrap() += 1;
        *intervals
            .slot(today, Timestamp(DAY + 510 * MINUTE))
            .unwrap() += 1;
        assert_eq!(intervals.of_day(Timestamp(DAY)), (32, &[1, 0, 1][..]));
        assert_eq!(
            intervals.heap_bytes(),
            4 * 4,
            "room for an hour of intervals"
        );
        // An earlier interval comes first.
        *intervals
            .slot(today, Timestamp(DAY + 479 * MINUTE))
            .unwrap() += 1;
        assert_eq!(intervals.of_day(Timestamp(DAY)), (31, &[1, 1, 0, 1][..]));
        let yesterday = utc_day(0);
        assert!(intervals.slot(yesterday, Timestamp(DAY - 1)).is_none());
        assert_eq!(intervals.of_day(Timestamp(0)), (0, &[][..]));
        let tomorrow = utc_day(2 * DAY);
        *intervals
            .slot(tomorrow, Timestamp(2 * DAY + 20 * MINUTE))
            .unwrap() += 1;
        assert_eq!(intervals.of_day(Timestamp(2 * DAY)), (1, &[1][..]));
        assert_eq!(intervals.of_day(Timestamp(DAY)), (0, &[][..]));
        assert_eq!(intervals.heap_bytes(), 4 * 4, "the buffer is reused");
    }

    /// A site with two queues judged differently and a team serving both.
    fn site(time_zone: &str) -> SiteProcessor {
        use crate::config::HumanDuration;
        let mut config = crate::SiteConfig::with_defaults("s");
        config.time_zone = time_zone.to_owned();
        config.queues.push(crate::QueueConfig::with_defaults("q1"));
        let mut q2 = crate::QueueConfig::with_defaults("q2");
        q2.sl_threshold = HumanDuration::secs(10);
        q2.short_abandon = HumanDuration::secs(3);
        config.queues.push(q2);
        config.teams.push(crate::TeamConfig {
            id: "t".into(),
            name: None,
            advisors: vec!["a".into()],
            queues: vec!["q1".into(), "q2".into()],
            sl_variant: Some(SlVariant::Positive),
        });
        SiteProcessor::new(config, &crate::ProcessingConfig::default())
    }

    fn apply(site: &mut SiteProcessor, time: &str, contact: &str, body: &str) {
        let kind = body.split('"').nth(3).unwrap_or_default();
        let json = format!(
            r#"{{"id":"{contact}-{kind}-{time}","time":"{time}","site":"s","contact":"{contact}",{body}}}"#
        );
        let event = crate::decode_json(json.as_bytes(), crate::DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(site.apply(&event), crate::Outcome::Applied, "{json}");
    }

    /// A contact queued in `queue` at `queued` that leaves it at `left`, answered or abandoned.
    fn contact(
        site: &mut SiteProcessor,
        id: &str,
        queue: &str,
        queued: &str,
        left: &str,
        answered: bool,
    ) {
        apply(
            site,
            queued,
            id,
            &format!(r#""type":"contact.queued","queue":"{queue}","channel":"voice""#),
        );
        if answered {
            apply(site, left, id, r#""type":"contact.answered","advisor":"a""#);
        } else {
            apply(site, left, id, r#""type":"contact.abandoned""#);
        }
    }

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn queue(site: &SiteProcessor, id: &str) -> Vec<IntervalServiceLevel> {
        let view = site.queue_view(id, crate::Window::Last15m).unwrap();
        assert_sums_are_the_day(&view.service_level_by_interval, site, id, false);
        view.service_level_by_interval
    }

    fn team(site: &SiteProcessor, id: &str) -> Vec<IntervalServiceLevel> {
        let view = site.team_view(id, crate::Window::Last60m).unwrap();
        assert_sums_are_the_day(&view.service_level_by_interval, site, id, true);
        view.service_level_by_interval
    }

    /// The intervals add up to the `today` flow of the queue or team, service level included.
    #[track_caller]
    fn assert_sums_are_the_day(
        intervals: &[IntervalServiceLevel],
        site: &SiteProcessor,
        id: &str,
        is_team: bool,
    ) {
        let today = if is_team {
            site.team_view(id, crate::Window::Today)
                .unwrap()
                .indicators
                .flow
        } else {
            site.queue_view(id, crate::Window::Today)
                .unwrap()
                .indicators
                .flow
        };
        let mut total = ServiceLevelCounts::default();
        for interval in intervals {
            total.add(&ServiceLevelCounts {
                answered: interval.answered,
                answered_within_threshold: interval.answered_within_threshold,
                abandoned: interval.abandoned,
                short_abandoned: interval.short_abandoned,
                abandoned_within_threshold: interval.abandoned_within_threshold,
            });
        }
        assert_eq!(
            [
                total.answered,
                total.answered_within_threshold,
                total.abandoned,
                total.short_abandoned,
                total.abandoned_within_threshold
            ]
            .map(u64::from),
            [
                today.answered,
                today.answered_within_threshold,
                today.abandoned,
                today.short_abandoned,
                today.abandoned_within_threshold
            ],
            "{id}"
        );
        assert_eq!(
            total.service_level(today.service_level_variant),
            today.service_level,
            "{id}"
        );
    }

    /// The intervals that counted something, by position.
    fn counted(intervals: &[IntervalServiceLevel]) -> Vec<(usize, [u32; 5])> {
        intervals
            .iter()
            .enumerate()
            .map(|(index, i)| {
                (
                    index,
                    [
                        i.answered,
                        i.answered_within_threshold,
                        i.abandoned,
                        i.short_abandoned,
                        i.abandoned_within_threshold,
                    ],
                )
            })
            .filter(|(_, counts)| counts[0] + counts[2] > 0)
            .collect()
    }

    #[test]
    fn a_contact_counts_in_the_interval_it_left_the_queue_settled_or_not() {
        let mut s = site("UTC");
        // Queued at 09:10, answered after 10 min 5 s, in the 09:15 interval.
        let queued = r#""type":"contact.queued","queue":"q1","channel":"voice""#;
        let answered = r#""type":"contact.answered","advisor":"a""#;
        apply(&mut s, "2026-03-02T09:10:00Z", "c1", queued);
        apply(&mut s, "2026-03-02T09:14:50Z", "c2", queued);
        apply(&mut s, "2026-03-02T09:15:05Z", "c2", answered);
        apply(&mut s, "2026-03-02T09:20:05Z", "c1", answered);
        // A short abandon at 09:40:02: nothing to count for the offered variant.
        contact(
            &mut s,
            "c3",
            "q1",
            "2026-03-02T09:40:00Z",
            "2026-03-02T09:40:02Z",
            false,
        );
        let expected = vec![(37, [2, 1, 0, 0, 0]), (38, [0, 0, 1, 1, 1])];
        let intervals = queue(&s, "q1");
        assert_eq!(intervals.len(), 39, "00:00 to 09:30, the current one");
        assert_eq!(counted(&intervals), expected);
        assert_eq!(intervals[0].start, ts("2026-03-02T00:00:00Z"));
        assert_eq!(intervals[37].start, ts("2026-03-02T09:15:00Z"));
        assert_eq!(intervals[37].service_level, Some(0.5));
        assert_eq!(intervals[38].service_level, None, "only a short abandon");
        assert_eq!(intervals[36].service_level, None);
        // Later traffic settles those exits: the same counts.
        contact(
            &mut s,
            "c4",
            "q1",
            "2026-03-02T11:00:00Z",
            "2026-03-02T11:00:01Z",
            false,
        );
        let intervals = queue(&s, "q1");
        assert_eq!(intervals.len(), 45);
        assert_eq!(counted(&intervals)[..2], expected);
        let (first, settled) = s.queue_intervals[0].of_day(ts("2026-03-02T00:00:00Z"));
        assert_eq!((first, settled.len()), (37, 2), "settled");
    }

    #[test]
    fn a_late_answer_lands_in_its_own_interval() {
        let mut s = site("UTC");
        apply(
            &mut s,
            "2026-03-02T09:29:00Z",
            "c1",
            r#""type":"contact.queued","queue":"q1","channel":"voice""#,
        );
        contact(
            &mut s,
            "c2",
            "q1",
            "2026-03-02T09:30:10Z",
            "2026-03-02T09:30:12Z",
            true,
        );
        // 22 s behind the newest event: within the allowed lateness.
        apply(
            &mut s,
            "2026-03-02T09:29:50Z",
            "c1",
            r#""type":"contact.answered","advisor":"a""#,
        );
        assert_eq!(
            counted(&queue(&s, "q1")),
            [(37, [1, 0, 0, 0, 0]), (38, [1, 1, 0, 0, 0])]
        );
        contact(
            &mut s,
            "c3",
            "q1",
            "2026-03-02T10:00:00Z",
            "2026-03-02T10:00:30Z",
            true,
        );
        assert_eq!(
            counted(&queue(&s, "q1")),
            [
                (37, [1, 0, 0, 0, 0]),
                (38, [1, 1, 0, 0, 0]),
                (40, [1, 0, 0, 0, 0])
            ]
        );
    }

    #[test]
    fn each_queue_judges_with_its_thresholds_and_a_team_sums_them_with_its_variant() {
        let mut s = site("UTC");
        contact(
            &mut s,
            "c1",
            "q1",
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:00:15Z",
            true,
        );
        contact(
            &mut s,
            "c2",
            "q2",
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:00:15Z",
            true,
        );
        contact(
            &mut s,
            "c3",
            "q2",
            "2026-03-02T09:01:00Z",
            "2026-03-02T09:01:02Z",
            false,
        );
        contact(
            &mut s,
            "c4",
            "q1",
            "2026-03-02T09:01:00Z",
            "2026-03-02T09:01:04Z",
            false,
        );
        // q1: T 20 s, S 5 s; q2: T 10 s, S 3 s.
        let q1 = queue(&s, "q1");
        assert_eq!(counted(&q1), [(36, [1, 1, 1, 1, 1])]);
        assert_eq!(q1[36].service_level, Some(1.0), "offered: 1 / (1 + 1 - 1)");
        let q2 = queue(&s, "q2");
        assert_eq!(counted(&q2), [(36, [1, 0, 1, 1, 1])]);
        assert_eq!(q2[36].service_level, Some(0.0), "offered: 0 / (1 + 1 - 1)");
        let t = team(&s, "t");
        assert_eq!(counted(&t), [(36, [2, 1, 2, 2, 2])]);
        assert_eq!(
            t[36].service_level,
            Some(0.75),
            "positive: (1 + 2) / (2 + 2)"
        );
        assert_eq!(t.len(), 37);
    }

    #[test]
    fn a_new_day_starts_from_its_first_interval() {
        let mut s = site("UTC");
        contact(
            &mut s,
            "c1",
            "q1",
            "2026-03-02T23:50:00Z",
            "2026-03-02T23:50:10Z",
            true,
        );
        contact(
            &mut s,
            "c2",
            "q2",
            "2026-03-02T23:59:00Z",
            "2026-03-02T23:59:05Z",
            true,
        );
        assert_eq!(queue(&s, "q1").len(), 96);
        contact(
            &mut s,
            "c3",
            "q1",
            "2026-03-03T00:05:00Z",
            "2026-03-03T00:05:10Z",
            true,
        );
        let intervals = queue(&s, "q1");
        assert_eq!(intervals.len(), 1);
        assert_eq!(intervals[0].start, ts("2026-03-03T00:00:00Z"));
        assert_eq!(counted(&intervals), [(0, [1, 1, 0, 0, 0])]);
        assert_eq!(counted(&team(&s, "t")), [(0, [1, 1, 0, 0, 0])]);
        // Once yesterday's exits and today's are settled, today still holds today's only.
        contact(
            &mut s,
            "c4",
            "q1",
            "2026-03-03T00:40:00Z",
            "2026-03-03T00:40:01Z",
            false,
        );
        contact(
            &mut s,
            "c5",
            "q2",
            "2026-03-03T00:40:00Z",
            "2026-03-03T00:40:01Z",
            false,
        );
        let intervals = team(&s, "t");
        assert_eq!(intervals.len(), 3);
        assert_eq!(
            counted(&intervals),
            [(0, [1, 1, 0, 0, 0]), (2, [0, 0, 2, 2, 2])]
        );
        let (first, settled) = s.queue_intervals[0].of_day(ts("2026-03-03T00:00:00Z"));
        assert_eq!((first, settled[0].answered), (0, 1), "settled");
    }

    #[test]
    fn intervals_follow_elapsed_time_from_the_start_of_a_daylight_saving_day() {
        let mut s = site("Europe/Paris");
        // Spring: the day starts at 00:00+01:00 and 02:00-03:00 does not exist; 03:05+02:00 is
        // 2 h 05 into the day, in its ninth interval, which starts at 03:00+02:00.
        contact(
            &mut s,
            "c1",
            "q1",
            "2026-03-29T03:04:50+02:00",
            "2026-03-29T03:05:00+02:00",
            true,
        );
        let intervals = queue(&s, "q1");
        assert_eq!(intervals.len(), 9);
        assert_eq!(intervals[0].start, ts("2026-03-29T00:00:00+01:00"));
        assert_eq!(intervals[8].start, ts("2026-03-29T03:00:00+02:00"));
        assert_eq!(counted(&intervals), [(8, [1, 1, 0, 0, 0])]);

        // Autumn: 02:20 happens twice, 2 h 20 and 3 h 20 into the day; the day has 100 intervals.
        let mut s = site("Europe/Paris");
        contact(
            &mut s,
            "c1",
            "q1",
            "2026-10-25T02:20:00+02:00",
            "2026-10-25T02:20:05+02:00",
            true,
        );
        contact(
            &mut s,
            "c2",
            "q1",
            "2026-10-25T02:20:00+01:00",
            "2026-10-25T02:20:05+01:00",
            true,
        );
        contact(
            &mut s,
            "c3",
            "q1",
            "2026-10-25T23:50:00+01:00",
            "2026-10-25T23:50:05+01:00",
            true,
        );
        let intervals = queue(&s, "q1");
        assert_eq!(intervals.len(), 100);
        assert_eq!(
            counted(&intervals),
            [
                (9, [1, 1, 0, 0, 0]),
                (13, [1, 1, 0, 0, 0]),
                (99, [1, 1, 0, 0, 0])
            ]
        );
        assert_eq!(intervals[99].start, ts("2026-10-25T23:45:00+01:00"));
    }

    #[test]
    fn a_new_threshold_applies_to_the_day_from_where_the_day_takes_it() {
        let mut s = site("UTC");
        contact(
            &mut s,
            "c1",
            "q1",
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:00:15Z",
            true,
        );
        // Five minutes later c1's answer is settled; c2's is not.
        contact(
            &mut s,
            "c2",
            "q1",
            "2026-03-02T09:05:00Z",
            "2026-03-02T09:05:15Z",
            true,
        );
        let mut config = s.site().clone();
        config.queues[0].sl_threshold = crate::config::HumanDuration::secs(10);
        s.reconfigure(config).unwrap();
        // c1 keeps the 20 s it was counted with; c2 is judged by 10 s, as in the day's figures.
        assert_eq!(counted(&queue(&s, "q1")), [(36, [2, 1, 0, 0, 0])]);
        team(&s, "t");
    }

    /// How many intervals a day has: the position of its last instant's, plus one.
    fn intervals_in(day: Day) -> usize {
        interval_index(day.start, day.end - Millis(1)) + 1
    }

    #[test]
    fn days_of_daylight_saving_changes_have_92_and_100_intervals() {
        let paris = DayCalendar::new(chrono_tz::Europe::Paris, chrono::NaiveTime::MIN);
        let at = |text| paris.day_of(Timestamp::parse_rfc3339(text).unwrap());
        assert_eq!(intervals_in(at("2026-03-29T12:00:00+02:00")), 92);
        assert_eq!(intervals_in(at("2026-06-01T12:00:00+02:00")), 96);
        assert_eq!(intervals_in(at("2026-10-25T12:00:00+01:00")), 100);
    }
}
