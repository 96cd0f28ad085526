//! One scope's interval records summed into periods of 15 minutes, 30 minutes, an hour or a
//! site-local day, with every indicator recomputed from the summed counts (a period's service
//! level is never an average of its intervals' service levels).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, SecondsFormat};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use vigie_core::views::{AdvisorCounts, HandleIndicators, QueueCounts, WorkTimes};
use vigie_core::{DayCalendar, Millis, SlVariant, Timestamp};

use crate::record::{
    FlowRecord, HandlingRecord, IntervalRecord, PauseRecord, ScopeKind, TimeRecord,
};
use crate::records::latest_revisions;

/// The length of an interval record.
const INTERVAL_MS: i64 = 15 * 60_000;

/// How long the periods of an aggregation are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granularity {
    /// The records' own 15-minute intervals.
    #[serde(rename = "15m")]
    Minutes15,
    /// Half hours from the day start.
    #[serde(rename = "30m")]
    Minutes30,
    /// Hours from the day start.
    #[serde(rename = "1h")]
    Hour,
    /// Site-local days (23 or 25 hours on daylight-saving changes).
    #[serde(rename = "day")]
    Day,
}

impl Granularity {
    /// Every granularity, shortest first.
    pub const ALL: [Granularity; 4] = [
        Granularity::Minutes15,
        Granularity::Minutes30,
        Granularity::Hour,
        Granularity::Day,
    ];

    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minutes15 => "15m",
            Granularity::Minutes30 => "30m",
            Granularity::Hour => "1h",
            Granularity::Day => "day",
        }
    }

    /// The elapsed length of a period; `None` for days, whose length varies.
    pub fn length_ms(self) -> Option<i64> {
        match self {
            Granularity::Minutes15 => Some(INTERVAL_MS),
            Granularity::Minutes30 => Some(2 * INTERVAL_MS),
            Granularity::Hour => Some(4 * INTERVAL_MS),
            Granularity::Day => None,
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(text: &str) -> Result<Granularity, String> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str() == text)
            .ok_or_else(|| format!("unknown period {text:?}; expected 15m, 30m, 1h or day"))
    }
}

/// Where periods without any record are given as zero (a chart's continuous axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Every period of these site-local days, both included.
    Dates {
        /// The first day.
        first: NaiveDate,
        /// The last day.
        last: NaiveDate,
    },
    /// Every period that overlaps `[from_ms, to_ms)` (ms since the epoch).
    Span {
        /// Start of the span.
        from_ms: i64,
        /// End of the span (excluded).
        to_ms: i64,
    },
}

/// How to aggregate: the period length and the site's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateOptions {
    /// The period length.
    pub granularity: Granularity,
    /// The site's time zone: days, their 23 or 25 hours, and local times.
    pub zone: Tz,
    /// The local time the site's day starts (midnight unless a 24/7 centre says otherwise):
    /// half hours and hours are counted from it.
    pub day_start: NaiveTime,
    /// Periods to give as zero when no record falls in them; without it, such periods are
    /// absent.
    pub fill: Option<Fill>,
}

impl AggregateOptions {
    /// Periods of `granularity` in `zone`, days starting at midnight, no zero-filling.
    pub fn new(granularity: Granularity, zone: Tz) -> AggregateOptions {
        AggregateOptions {
            granularity,
            zone,
            day_start: NaiveTime::MIN,
            fill: None,
        }
    }

    /// The same with days starting at `day_start` local time.
    pub fn with_day_start(self, day_start: NaiveTime) -> AggregateOptions {
        AggregateOptions { day_start, ..self }
    }

    /// The same with the periods of `fill` given as zero when no record falls in them.
    pub fn zero_filled(self, fill: Fill) -> AggregateOptions {
        AggregateOptions {
            fill: Some(fill),
            ..self
        }
    }

    fn calendar(&self) -> DayCalendar {
        DayCalendar::new(self.zone, self.day_start)
    }
}

/// Why records could not be aggregated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// The records are not all of the scope asked for.
    #[error("records of {found} mixed with records of {expected}")]
    MixedScopes {
        /// The scope of the aggregation (`site/kind/id`).
        expected: String,
        /// A record of another scope.
        found: String,
    },
}

/// Indicators of a period, recomputed from its summed counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodIndicators {
    /// Service level in the scope's variant (the latest record's, if it changed).
    pub service_level: Option<f64>,
    /// (abandoned - short) / (answered + abandoned - short).
    pub abandon_rate: Option<f64>,
    /// Average wait of answered contacts, in seconds.
    pub asa: Option<f64>,
    /// AHT, average talk, hold and after-contact work, hold rate.
    #[serde(flatten)]
    pub handling: HandleIndicators,
    /// handling time / (handling + available time), as the core defines it.
    pub occupancy: Option<f64>,
    /// Time in pause, all reasons, in seconds (scopes with times).
    pub pause_time: Option<f64>,
}

/// One period of one scope: summed counts and times, and indicators recomputed from them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodFigures {
    /// Period start, ms since the epoch.
    pub start_ms: i64,
    /// Period end (excluded), ms since the epoch: the nominal end, even while the period is
    /// in progress (see `through_ms`).
    pub end_ms: i64,
    /// The period start in the site's time zone, RFC 3339 with offset.
    pub start: String,
    /// The site-local date of the period's day, `YYYY-MM-DD`.
    pub date: String,
    /// Interval records summed (0 for a zero-filled period).
    pub intervals: u32,
    /// The end of the latest interval summed: before `end_ms` while the period is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub through_ms: Option<i64>,
    /// Every record summed is settled (false for a zero-filled period).
    pub settled: bool,
    /// Flow (sites, queues and teams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowRecord>,
    /// Handling counts and times.
    pub handling: HandlingRecord,
    /// Where time went (sites, teams and advisors): pauses per reason, sorted; the earliest
    /// first login and the latest last logout of the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<TimeRecord>,
    /// The most advisors counted in any of its intervals (teams and the site).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    /// Service-level settings of the latest record that has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl_variant: Option<SlVariant>,
    /// Its answer time T, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl_threshold_s: Option<f64>,
    /// Its target, a fraction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl_target: Option<f64>,
    /// Indicators recomputed from the sums.
    pub indicators: PeriodIndicators,
}

/// Aggregates the records of one scope (kind `kind`, one site and one id) into periods, in
/// time order. Records may come in any order; of several revisions of a record, the highest
/// counts. A record counts in the period its start falls in; 30-minute and 1-hour periods
/// follow each other in elapsed time from the day start, as intervals do, so their local
/// clock times jump on a daylight-saving change, and a day's last period may be shorter.
/// 15-minute periods are the records' own intervals; the other periods, and zero-filled
/// 15-minute ones, follow `options.day_start`, which must be the site's.
pub fn aggregate(
    kind: ScopeKind,
    records: &[IntervalRecord],
    options: &AggregateOptions,
) -> Result<Vec<PeriodFigures>, AggregateError> {
    if let Some(first) = records.first() {
        let expected = (&first.key.site, kind, &first.key.id);
        if let Some(other) = records
            .iter()
            .find(|r| (&r.key.site, r.key.kind, &r.key.id) != expected)
        {
            return Err(AggregateError::MixedScopes {
                expected: format!("{}/{}/{}", first.key.site, kind.as_str(), first.key.id),
                found: format!(
                    "{}/{}/{}",
                    other.key.site,
                    other.key.kind.as_str(),
                    other.key.id
                ),
            });
        }
    }
    let calendar = options.calendar();
    let grid = Grid {
        calendar,
        granularity: options.granularity,
    };
    let mut periods: BTreeMap<i64, (Bounds, Sums)> = BTreeMap::new();
    for record in latest_revisions(records.iter().cloned()) {
        let bounds = grid.period_of(&record);
        periods
            .entry(bounds.start_ms)
            .or_insert_with(|| (bounds, Sums::new(kind)))
            .1
            .add(&record);
    }
    if let Some(fill) = options.fill {
        for bounds in grid.periods_in(fill) {
            periods
                .entry(bounds.start_ms)
                .or_insert_with(|| (bounds, Sums::new(kind)));
        }
    }
    Ok(periods
        .into_values()
        .map(|(bounds, sums)| sums.into_period(bounds, options.zone))
        .collect())
}

/// A period's place in time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bounds {
    start_ms: i64,
    end_ms: i64,
    date: String,
}

/// The periods of a granularity over a site's days.
struct Grid {
    calendar: DayCalendar,
    granularity: Granularity,
}

impl Grid {
    /// The day a record belongs to, by its own date (by its start if the date is unreadable).
    fn day_of(&self, record: &IntervalRecord) -> NaiveDate {
        NaiveDate::parse_from_str(&record.date, "%Y-%m-%d")
            .unwrap_or_else(|_| self.calendar.day_of(Timestamp(record.key.start_ms)).date)
    }

    fn day_bounds(&self, date: NaiveDate) -> (i64, i64) {
        let next = date.succ_opt().unwrap_or(date);
        (
            self.calendar.start_of(date).0,
            self.calendar.start_of(next).0,
        )
    }

    fn period_of(&self, record: &IntervalRecord) -> Bounds {
        let start = record.key.start_ms;
        let date = self.day_of(record);
        let text = record.date.clone();
        match self.granularity {
            // The records are the intervals: keep their own starts, whatever the day start.
            Granularity::Minutes15 => {
                let (_, day_end) = self.day_bounds(date);
                // A day that does not last a whole number of intervals (its start moved out of
                // a skipped hour) ends with a shorter one.
                let end_ms = if start < day_end && day_end < start + INTERVAL_MS {
                    day_end
                } else {
                    start + INTERVAL_MS
                };
                Bounds {
                    start_ms: start,
                    end_ms,
                    date: text,
                }
            }
            Granularity::Day => {
                let (day_start, day_end) = self.day_bounds(date);
                Bounds {
                    start_ms: day_start,
                    end_ms: day_end,
                    date: text,
                }
            }
            Granularity::Minutes30 | Granularity::Hour => {
                let length = self.granularity.length_ms().unwrap_or(INTERVAL_MS);
                let (day_start, day_end) = self.day_bounds(date);
                let period_start = day_start + (start - day_start).div_euclid(length) * length;
                // A day's last period ends with the day: days of 23 or 25 hours still end on
                // a whole hour, but a day start moved out of a skipped hour does not.
                let end_ms = if day_end > period_start {
                    (period_start + length).min(day_end)
                } else {
                    period_start + length
                };
                Bounds {
                    start_ms: period_start,
                    end_ms,
                    date: text,
                }
            }
        }
    }

    /// Every period of `fill`.
    fn periods_in(&self, fill: Fill) -> Vec<Bounds> {
        let (first, last, span) = match fill {
            Fill::Dates { first, last } => (first, last, None),
            Fill::Span { from_ms, to_ms } => {
                if to_ms <= from_ms {
                    return Vec::new();
                }
                (
                    self.calendar.day_of(Timestamp(from_ms)).date,
                    self.calendar.day_of(Timestamp(to_ms - 1)).date,
                    Some((from_ms, to_ms)),
                )
            }
        };
        let mut periods = Vec::new();
        for date in first.iter_days().take_while(|d| *d <= last) {
            let (day_start, day_end) = self.day_bounds(date);
            let text = date.format("%Y-%m-%d").to_string();
            let length = self.granularity.length_ms().unwrap_or(day_end - day_start);
            let mut start = day_start;
            while start < day_end {
                let end = (start + length).min(day_end);
                let inside = span.is_none_or(|(from, to)| start < to && end > from);
                if inside {
                    periods.push(Bounds {
                        start_ms: start,
                        end_ms: end,
                        date: text.clone(),
                    });
                }
                start = end;
            }
        }
        periods
    }
}

/// Counts and times summed over records, and what the latest of them says about settings.
#[derive(Clone, Debug)]
pub(crate) struct Sums {
    pub(crate) intervals: u32,
    pub(crate) through_ms: Option<i64>,
    pub(crate) settled: bool,
    pub(crate) flow: Option<FlowRecord>,
    pub(crate) handling: HandlingRecord,
    pub(crate) times: Option<TimeRecord>,
    pub(crate) members: Option<u64>,
    /// Start of the latest record with service-level settings, and those settings.
    settings: Option<(i64, Settings)>,
    /// Start of the latest record with a team or a name, and those.
    pub(crate) team: Option<(i64, String)>,
    pub(crate) name: Option<(i64, String)>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    variant: Option<SlVariant>,
    threshold: Option<f64>,
    target: Option<f64>,
}

impl Sums {
    /// Nothing summed yet, shaped for `kind`: flow for sites, queues and teams, times for
    /// sites, teams and advisors.
    pub(crate) fn new(kind: ScopeKind) -> Sums {
        Sums {
            intervals: 0,
            through_ms: None,
            settled: false,
            flow: (kind != ScopeKind::Advisor).then(FlowRecord::default),
            handling: HandlingRecord::default(),
            times: (kind != ScopeKind::Queue).then(TimeRecord::default),
            members: None,
            settings: None,
            team: None,
            name: None,
        }
    }

    /// Adds one record.
    pub(crate) fn add(&mut self, record: &IntervalRecord) {
        let start = record.key.start_ms;
        self.settled = record.settled && (self.intervals == 0 || self.settled);
        self.intervals += 1;
        self.through_ms = Some(
            self.through_ms
                .map_or(record.end_ms, |t| t.max(record.end_ms)),
        );
        if let Some(flow) = &record.flow {
            add_flow(self.flow.get_or_insert_with(FlowRecord::default), flow);
        }
        add_handling(&mut self.handling, &record.handling);
        if let Some(times) = &record.times {
            add_times(self.times.get_or_insert_with(TimeRecord::default), times);
        }
        if let Some(members) = record.members {
            self.members = Some(self.members.map_or(members, |m| m.max(members)));
        }
        if record.sl_variant.is_some() || record.sl_threshold_s.is_some() {
            let settings = Settings {
                variant: record.sl_variant,
                threshold: record.sl_threshold_s,
                target: record.sl_target,
            };
            keep_latest(&mut self.settings, start, settings);
        }
        if let Some(team) = &record.team {
            keep_latest(&mut self.team, start, team.clone());
        }
        if let Some(name) = &record.name {
            keep_latest(&mut self.name, start, name.clone());
        }
    }

    /// The indicators of the sums, by the core's formulas.
    pub(crate) fn indicators(&self) -> PeriodIndicators {
        let variant = self
            .settings
            .and_then(|(_, s)| s.variant)
            .unwrap_or_default();
        let flow = self.flow.map(|flow| QueueCounts {
            offered: flow.offered,
            answered: flow.answered,
            abandoned: flow.abandoned,
            short_abandoned: flow.short_abandoned,
            answered_within_threshold: flow.answered_within_threshold,
            abandoned_within_threshold: flow.abandoned_within_threshold,
            wait_answered: Millis(flow.wait_answered_ms),
            ..QueueCounts::default()
        });
        let handling = AdvisorCounts {
            handled: self.handling.handled,
            talk: Millis(self.handling.talk_ms),
            hold: Millis(self.handling.hold_ms),
            acw: Millis(self.handling.acw_ms),
            held: self.handling.held,
            transfers: self.handling.transferred,
            missed_offers: self.handling.missed_offers,
        };
        PeriodIndicators {
            service_level: flow.and_then(|c| c.service_level(variant)),
            abandon_rate: flow.and_then(|c| c.abandon_rate()),
            asa: flow.and_then(|c| c.asa()),
            handling: handling.handling(),
            occupancy: self.times.as_ref().and_then(|times| {
                WorkTimes {
                    handling: Millis(times.handling_ms),
                    available: Millis(times.available_ms),
                }
                .occupancy()
            }),
            pause_time: self
                .times
                .as_ref()
                .map(|times| Millis(pause_total(times).0).as_secs_f64()),
        }
    }

    fn into_period(self, bounds: Bounds, zone: Tz) -> PeriodFigures {
        let indicators = self.indicators();
        let settings = self.settings.map(|(_, s)| s);
        PeriodFigures {
            start: local_rfc3339(bounds.start_ms, zone),
            start_ms: bounds.start_ms,
            end_ms: bounds.end_ms,
            date: bounds.date,
            intervals: self.intervals,
            through_ms: self.through_ms,
            settled: self.settled,
            flow: self.flow,
            handling: self.handling,
            times: self.times,
            members: self.members,
            sl_variant: settings.and_then(|s| s.variant),
            sl_threshold_s: settings.and_then(|s| s.threshold),
            sl_target: settings.and_then(|s| s.target),
            indicators,
        }
    }
}

/// Keeps `value` if it comes from a record at least as late as the one kept.
fn keep_latest<T>(slot: &mut Option<(i64, T)>, start: i64, value: T) {
    if slot.as_ref().is_none_or(|(kept, _)| *kept <= start) {
        *slot = Some((start, value));
    }
}

/// Total pause time and pauses started, all reasons.
pub(crate) fn pause_total(times: &TimeRecord) -> (i64, u64) {
    times.pauses.iter().fold((0, 0), |(time, count), pause| {
        (time + pause.time_ms, count + pause.count)
    })
}

/// An instant in the site's time zone, RFC 3339 with its offset, to the second (milliseconds
/// only when there are some).
pub(crate) fn local_rfc3339(ms: i64, zone: Tz) -> String {
    Timestamp(ms)
        .to_utc()
        .with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub(crate) fn add_flow(sum: &mut FlowRecord, flow: &FlowRecord) {
    sum.offered += flow.offered;
    sum.answered += flow.answered;
    sum.answered_within_threshold += flow.answered_within_threshold;
    sum.abandoned += flow.abandoned;
    sum.short_abandoned += flow.short_abandoned;
    sum.abandoned_within_threshold += flow.abandoned_within_threshold;
    sum.dequeued += flow.dequeued;
    sum.wait_answered_ms += flow.wait_answered_ms;
    sum.wait_abandoned_ms += flow.wait_abandoned_ms;
}

pub(crate) fn add_handling(sum: &mut HandlingRecord, handling: &HandlingRecord) {
    sum.handled += handling.handled;
    sum.talk_ms += handling.talk_ms;
    sum.hold_ms += handling.hold_ms;
    sum.acw_ms += handling.acw_ms;
    sum.held += handling.held;
    sum.transferred += handling.transferred;
    sum.missed_offers += handling.missed_offers;
}

/// Adds times: pauses merged by reason (kept sorted), the earliest first login and the latest
/// last logout.
pub(crate) fn add_times(sum: &mut TimeRecord, times: &TimeRecord) {
    sum.logged_in_ms += times.logged_in_ms;
    sum.available_ms += times.available_ms;
    sum.handling_ms += times.handling_ms;
    for pause in &times.pauses {
        match sum
            .pauses
            .binary_search_by(|p| p.reason.as_str().cmp(&pause.reason))
        {
            Ok(at) => {
                sum.pauses[at].time_ms += pause.time_ms;
                sum.pauses[at].count += pause.count;
            }
            Err(at) => sum.pauses.insert(
                at,
                PauseRecord {
                    reason: pause.reason.clone(),
                    time_ms: pause.time_ms,
                    count: pause.count,
                },
            ),
        }
    }
    if let Some(login) = times.first_login_ms {
        sum.first_login_ms = Some(sum.first_login_ms.map_or(login, |t| t.min(login)));
    }
    if let Some(logout) = times.last_logout_ms {
        sum.last_logout_ms = Some(sum.last_logout_ms.map_or(logout, |t| t.max(logout)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKey;
    use chrono_tz::Europe::Paris;

    fn ms(text: &str) -> i64 {
        Timestamp::parse_rfc3339(text).unwrap().0
    }

    /// A queue's record of the interval starting at `start`.
    fn queue_record(start: &str, date: &str) -> IntervalRecord {
        let start_ms = ms(start);
        IntervalRecord {
            revision: 1,
            settled: true,
            flow: Some(FlowRecord::default()),
            sl_variant: Some(SlVariant::Offered),
            sl_threshold_s: Some(20.0),
            sl_target: Some(0.8),
            ..IntervalRecord::new(
                RecordKey {
                    site: "paris".into(),
                    kind: ScopeKind::Queue,
                    id: "q1".into(),
                    start_ms,
                },
                start_ms + INTERVAL_MS,
                date,
            )
        }
    }

    fn answered(mut record: IntervalRecord, answered: u64, within: u64) -> IntervalRecord {
        let flow = record.flow.as_mut().unwrap();
        flow.answered = answered;
        flow.offered = answered;
        flow.answered_within_threshold = within;
        flow.wait_answered_ms = answered as i64 * 10_000;
        record
    }

    #[test]
    fn ratios_are_recomputed_from_summed_counts_never_averaged() {
        // 08:00: 1 answered within T (100%); 08:15: 9 answered, none within T (0%). The hour's
        // service level is 1/10, not the 50% an average of the two would give.
        let records = [
            answered(
                queue_record("2026-11-27T08:00:00+01:00", "2026-11-27"),
                1,
                1,
            ),
            answered(
                queue_record("2026-11-27T08:15:00+01:00", "2026-11-27"),
                9,
                0,
            ),
        ];
        let options = AggregateOptions::new(Granularity::Hour, Paris);
        let hours = aggregate(ScopeKind::Queue, &records, &options).unwrap();
        assert_eq!(hours.len(), 1);
        let hour = &hours[0];
        assert_eq!(hour.start, "2026-11-27T08:00:00+01:00");
        assert_eq!(hour.end_ms - hour.start_ms, 3_600_000);
        assert_eq!(hour.intervals, 2);
        assert_eq!(hour.through_ms, Some(ms("2026-11-27T08:30:00+01:00")));
        assert_eq!(hour.flow.unwrap().answered, 10);
        assert_eq!(hour.indicators.service_level, Some(0.1));
        assert_eq!(hour.indicators.asa, Some(10.0));
        assert_eq!(hour.indicators.abandon_rate, Some(0.0));
        assert_eq!(hour.indicators.occupancy, None, "queues have no times");
        assert!(hour.settled);
    }

    #[test]
    fn periods_follow_the_day_start_and_absent_ones_stay_absent() {
        let records: Vec<IntervalRecord> = ["06:30", "06:45", "07:15", "09:30"]
            .iter()
            .map(|hm| {
                let start = format!("2026-11-27T{hm}:00+01:00");
                answered(queue_record(&start, "2026-11-27"), 2, 1)
            })
            .collect();
        let options = AggregateOptions::new(Granularity::Hour, Paris)
            .with_day_start(NaiveTime::from_hms_opt(6, 30, 0).unwrap());
        let hours = aggregate(ScopeKind::Queue, &records, &options).unwrap();
        let starts: Vec<(&str, u32)> = hours
            .iter()
            .map(|p| (p.start.as_str(), p.intervals))
            .collect();
        assert_eq!(
            starts,
            [
                ("2026-11-27T06:30:00+01:00", 3),
                ("2026-11-27T09:30:00+01:00", 1)
            ]
        );
        let half_hours = aggregate(
            ScopeKind::Queue,
            &records,
            &AggregateOptions::new(Granularity::Minutes30, Paris)
                .with_day_start(NaiveTime::from_hms_opt(6, 30, 0).unwrap()),
        )
        .unwrap();
        assert_eq!(
            half_hours.iter().map(|p| p.intervals).collect::<Vec<_>>(),
            [2, 1, 1]
        );
    }

    /// Every 15-minute record of a site-local day, as the publisher writes them.
    fn whole_day(date: NaiveDate) -> Vec<IntervalRecord> {
        let calendar = DayCalendar::new(Paris, NaiveTime::MIN);
        let (start, end) = (
            calendar.start_of(date).0,
            calendar.start_of(date.succ_opt().unwrap()).0,
        );
        let text = date.format("%Y-%m-%d").to_string();
        (0..)
            .map(|i| start + i * INTERVAL_MS)
            .take_while(|t| *t < end)
            .map(|t| {
                let mut record = queue_record("2026-01-01T00:00:00Z", &text);
                record.key.start_ms = t;
                record.end_ms = t + INTERVAL_MS;
                answered(record, 1, 1)
            })
            .collect()
    }

    #[test]
    fn daylight_saving_days_have_23_and_25_hours() {
        for (date, hours) in [("2026-03-29", 23), ("2026-10-25", 25), ("2026-11-27", 24)] {
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
            let records = whole_day(date);
            assert_eq!(records.len(), hours * 4);
            let days = aggregate(
                ScopeKind::Queue,
                &records,
                &AggregateOptions::new(Granularity::Day, Paris),
            )
            .unwrap();
            assert_eq!(days.len(), 1);
            assert_eq!(days[0].end_ms - days[0].start_ms, hours as i64 * 3_600_000);
            assert_eq!(days[0].intervals as usize, hours * 4);
            assert_eq!(days[0].flow.unwrap().answered, hours as u64 * 4);
            let by_hour = aggregate(
                ScopeKind::Queue,
                &records,
                &AggregateOptions::new(Granularity::Hour, Paris),
            )
            .unwrap();
            assert_eq!(by_hour.len(), hours);
            assert!(by_hour.iter().all(|h| h.intervals == 4));
        }
        // On the autumn change, 02:00 local comes twice: once at +02:00, once at +01:00.
        let autumn = aggregate(
            ScopeKind::Queue,
            &whole_day(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()),
            &AggregateOptions::new(Granularity::Hour, Paris),
        )
        .unwrap();
        let starts: Vec<&str> = autumn[1..4].iter().map(|h| h.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00"
            ]
        );
    }

    #[test]
    fn a_day_start_in_the_spring_gap_ends_the_day_with_a_shorter_interval() {
        // Days start at 02:10; on 29 March 02:10 does not exist, so that day starts at 03:00
        // and the day before lasts 23 h 50: its last interval, 5 minutes.
        let day_start = NaiveTime::from_hms_opt(2, 10, 0).unwrap();
        let calendar = DayCalendar::new(Paris, day_start);
        let date = NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
        let (start, end) = (
            calendar.start_of(date).0,
            calendar.start_of(date.succ_opt().unwrap()).0,
        );
        let records: Vec<IntervalRecord> = (0..)
            .map(|i| start + i * INTERVAL_MS)
            .take_while(|t| *t < end)
            .map(|t| {
                let mut record = queue_record("2026-01-01T00:00:00Z", "2026-03-28");
                record.key.start_ms = t;
                record.end_ms = (t + INTERVAL_MS).min(end);
                record
            })
            .collect();
        let options =
            AggregateOptions::new(Granularity::Minutes15, Paris).with_day_start(day_start);
        let intervals = aggregate(ScopeKind::Queue, &records, &options).unwrap();
        assert_eq!(intervals.len(), 96);
        let last = intervals.last().unwrap();
        assert_eq!(
            (last.end_ms, last.end_ms - last.start_ms),
            (end, 5 * 60_000)
        );
        let hours = aggregate(
            ScopeKind::Queue,
            &records,
            &AggregateOptions {
                granularity: Granularity::Hour,
                ..options
            },
        )
        .unwrap();
        assert_eq!(hours.last().unwrap().end_ms, end);
        let days = aggregate(
            ScopeKind::Queue,
            &records,
            &AggregateOptions {
                granularity: Granularity::Day,
                ..options
            },
        )
        .unwrap();
        assert_eq!(days[0].end_ms - days[0].start_ms, (24 * 60 - 10) * 60_000);
    }

    #[test]
    fn the_highest_revision_counts_whatever_the_order() {
        let first = answered(
            queue_record("2026-11-27T08:00:00+01:00", "2026-11-27"),
            4,
            4,
        );
        let mut corrected = answered(first.clone(), 5, 1);
        corrected.revision = 3;
        let mut middle = answered(first.clone(), 7, 7);
        middle.revision = 2;
        let options = AggregateOptions::new(Granularity::Minutes15, Paris);
        for records in [
            [first.clone(), middle.clone(), corrected.clone()],
            [corrected.clone(), first.clone(), middle.clone()],
        ] {
            let periods = aggregate(ScopeKind::Queue, &records, &options).unwrap();
            assert_eq!(periods.len(), 1);
            assert_eq!(periods[0].intervals, 1);
            assert_eq!(periods[0].flow.unwrap().answered, 5);
            assert_eq!(periods[0].indicators.service_level, Some(0.2));
        }
    }

    #[test]
    fn the_latest_variant_judges_the_period() {
        let early = answered(
            queue_record("2026-11-27T08:00:00+01:00", "2026-11-27"),
            2,
            2,
        );
        let mut late = queue_record("2026-11-27T08:15:00+01:00", "2026-11-27");
        let flow = late.flow.as_mut().unwrap();
        flow.abandoned = 2;
        late.sl_variant = Some(SlVariant::Answered);
        late.sl_threshold_s = Some(30.0);
        let hours = aggregate(
            ScopeKind::Queue,
            &[late, early],
            &AggregateOptions::new(Granularity::Hour, Paris),
        )
        .unwrap();
        // Offered variant: 2 / 4; answered variant: 2 / 2.
        assert_eq!(hours[0].sl_variant, Some(SlVariant::Answered));
        assert_eq!(hours[0].sl_threshold_s, Some(30.0));
        assert_eq!(hours[0].indicators.service_level, Some(1.0));
    }

    fn advisor_record(start: &str, handling_s: i64, available_s: i64) -> IntervalRecord {
        let mut record = queue_record(start, "2026-11-27");
        record.key.kind = ScopeKind::Advisor;
        record.key.id = "a1".into();
        record.flow = None;
        record.sl_variant = None;
        record.sl_threshold_s = None;
        record.sl_target = None;
        record.team = Some("t1".into());
        record.handling = HandlingRecord {
            handled: 2,
            talk_ms: 200_000,
            hold_ms: 30_000,
            acw_ms: 40_000,
            held: 1,
            transferred: 0,
            missed_offers: 1,
        };
        record.times = Some(TimeRecord {
            logged_in_ms: 900_000,
            available_ms: available_s * 1000,
            handling_ms: handling_s * 1000,
            pauses: vec![PauseRecord {
                reason: "break".into(),
                time_ms: 900_000 - (handling_s + available_s) * 1000,
                count: 1,
            }],
            first_login_ms: None,
            last_logout_ms: None,
        });
        record
    }

    #[test]
    fn advisors_get_occupancy_aht_and_pauses_from_the_sums() {
        let records = [
            advisor_record("2026-11-27T10:00:00+01:00", 600, 300),
            advisor_record("2026-11-27T10:15:00+01:00", 0, 300),
        ];
        let periods = aggregate(
            ScopeKind::Advisor,
            &records,
            &AggregateOptions::new(Granularity::Minutes30, Paris),
        )
        .unwrap();
        let period = &periods[0];
        assert_eq!(period.flow, None);
        // Handling 600 s of 600 + 600 s handling and available: 50%, whatever the intervals'
        // own occupancies (67% and 0%).
        assert_eq!(period.indicators.occupancy, Some(0.5));
        // (2 × 200 + 2 × 30 + 2 × 40) s over 4 contacts.
        assert_eq!(period.indicators.handling.aht, Some(135.0));
        assert_eq!(period.indicators.service_level, None);
        let times = period.times.as_ref().unwrap();
        assert_eq!(
            times.pauses,
            [PauseRecord {
                reason: "break".into(),
                time_ms: 600_000,
                count: 2
            }]
        );
        assert_eq!(period.indicators.pause_time, Some(600.0));
        assert_eq!(period.handling.missed_offers, 2);
    }

    #[test]
    fn zero_filling_gives_a_continuous_axis() {
        let records = [answered(
            queue_record("2026-11-27T08:15:00+01:00", "2026-11-27"),
            3,
            3,
        )];
        let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let options = AggregateOptions::new(Granularity::Minutes15, Paris);
        let sparse = aggregate(ScopeKind::Queue, &records, &options).unwrap();
        assert_eq!(sparse.len(), 1, "without filling, empty periods are absent");

        let filled = aggregate(
            ScopeKind::Queue,
            &records,
            &options.zero_filled(Fill::Dates {
                first: date,
                last: date,
            }),
        )
        .unwrap();
        assert_eq!(filled.len(), 96);
        assert!(filled.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
        let empty = &filled[0];
        assert_eq!(
            (empty.intervals, empty.flow, empty.indicators.service_level),
            (0, Some(FlowRecord::default()), None)
        );
        assert!(!empty.settled);
        let busy = filled.iter().find(|p| p.intervals == 1).unwrap();
        assert_eq!(busy.start, "2026-11-27T08:15:00+01:00");

        let span = aggregate(
            ScopeKind::Queue,
            &[],
            &AggregateOptions::new(Granularity::Hour, Paris).zero_filled(Fill::Span {
                from_ms: ms("2026-11-27T07:30:00+01:00"),
                to_ms: ms("2026-11-27T10:00:00+01:00"),
            }),
        )
        .unwrap();
        let starts: Vec<&str> = span.iter().map(|p| p.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-11-27T07:00:00+01:00",
                "2026-11-27T08:00:00+01:00",
                "2026-11-27T09:00:00+01:00"
            ]
        );
    }

    #[test]
    fn records_of_another_scope_are_refused() {
        let queue = queue_record("2026-11-27T08:00:00+01:00", "2026-11-27");
        let mut other = queue.clone();
        other.key.id = "q2".into();
        let options = AggregateOptions::new(Granularity::Hour, Paris);
        assert_eq!(
            aggregate(ScopeKind::Queue, &[queue.clone(), other], &options),
            Err(AggregateError::MixedScopes {
                expected: "paris/queue/q1".into(),
                found: "paris/queue/q2".into()
            })
        );
        assert!(aggregate(ScopeKind::Team, &[queue], &options).is_err());
    }

    #[test]
    fn granularities_have_names() {
        for granularity in Granularity::ALL {
            assert_eq!(granularity.as_str().parse(), Ok(granularity));
            let json = serde_json::to_string(&granularity).unwrap();
            assert_eq!(json, format!("\"{granularity}\""));
        }
        assert!("2h".parse::<Granularity>().is_err());
    }
}
