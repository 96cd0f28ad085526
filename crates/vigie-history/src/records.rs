//! The records of one interval, worked out from the core's day totals at its start and at its
//! end: every figure of an interval is the difference of two cumulative totals, so the
//! intervals of a day always add up to the day.

use std::collections::BTreeMap;

use vigie_core::Millis;
use vigie_core::totals::{
    AdvisorTotals, DayTotals, FlowExtra, GroupTotals, PauseTotals, QueueTotals, TimeTotals,
};
use vigie_core::views::{AdvisorCounts, QueueCounts};

use crate::record::{
    FlowRecord, HandlingRecord, IntervalRecord, PauseRecord, RecordKey, ScopeKind, TimeRecord,
};

/// The records of the interval `[previous.at, next.at)` for every queue, team and advisor of
/// `next`, and for the site, sorted by kind then id.
///
/// Without `previous`, or when `previous` belongs to another day, the interval starts at the
/// day start of `next` and every total before it counts as zero. The interval ends at
/// `next.at`: 15 minutes after its start for a closed interval, earlier for the interval in
/// progress. An empty or backward interval (`next.at` not after its start) has no records.
///
/// Teams' handling and times are the sums of their members' records (each advisor counted in
/// the team they belong to at `next.at`), rather than the difference of the team's totals: a
/// team's totals are those of its members at each instant, so an advisor moving between teams
/// would otherwise make one team's figures go backwards and the other's jump by a whole day.
/// Every other difference that would be negative (a team's campaign losing a queue) counts as
/// zero. `first_login_ms` and `last_logout_ms` are set on an advisor's record when the totals
/// at the end of the interval give a different instant than those at its start.
pub fn interval_records(
    previous: Option<&DayTotals>,
    next: &DayTotals,
    revision: u32,
    settled: bool,
) -> Vec<IntervalRecord> {
    let previous = previous.filter(|p| p.date == next.date && p.day_start == next.day_start);
    let start_ms = previous.map_or(next.day_start.0, |p| p.at.0);
    if next.at.0 <= start_ms {
        return Vec::new();
    }
    let header = Header {
        site: &next.site,
        start_ms,
        end_ms: next.at.0,
        date: &next.date,
        revision,
        settled,
    };

    let mut records =
        Vec::with_capacity(1 + next.queues.len() + next.teams.len() + next.advisors.len());
    let queues_before: BTreeMap<&str, &QueueTotals> = previous
        .map(|p| p.queues.iter().map(|q| (q.id.as_str(), q)).collect())
        .unwrap_or_default();
    for queue in &next.queues {
        records.push(queue_record(
            &header,
            queues_before.get(queue.id.as_str()).copied(),
            queue,
        ));
    }

    let advisors_before: BTreeMap<&str, &AdvisorTotals> = previous
        .map(|p| p.advisors.iter().map(|a| (a.id.as_str(), a)).collect())
        .unwrap_or_default();
    let advisor_records: Vec<IntervalRecord> = next
        .advisors
        .iter()
        .map(|advisor| {
            advisor_record(
                &header,
                advisors_before.get(advisor.id.as_str()).copied(),
                advisor,
            )
        })
        .collect();

    let teams_before: BTreeMap<&str, &GroupTotals> = previous
        .map(|p| p.teams.iter().map(|t| (t.id.as_str(), t)).collect())
        .unwrap_or_default();
    let mut by_team: BTreeMap<&str, (HandlingRecord, TimeRecord)> = BTreeMap::new();
    for advisor in &advisor_records {
        let team = advisor.team.as_deref().unwrap_or_default();
        let (handling, times) = by_team.entry(team).or_default();
        crate::aggregate::add_handling(handling, &advisor.handling);
        if let Some(own) = &advisor.times {
            crate::aggregate::add_times(times, own);
        }
    }
    for team in &next.teams {
        let mut record = group_record(
            &header,
            ScopeKind::Team,
            &team.id,
            teams_before.get(team.id.as_str()).copied(),
            team,
        );
        let (handling, mut times) = by_team.remove(team.id.as_str()).unwrap_or_default();
        // A team has no login of its own: those are its members'.
        times.first_login_ms = None;
        times.last_logout_ms = None;
        record.handling = handling;
        record.times = Some(times);
        records.push(record);
    }

    records.push(group_record(
        &header,
        ScopeKind::Site,
        &next.site,
        previous.map(|p| &p.site_totals),
        &next.site_totals,
    ));
    records.extend(advisor_records);
    records.sort_by(|a, b| (a.key.kind, &a.key.id).cmp(&(b.key.kind, &b.key.id)));
    records
}

/// Gives each record the display name of its site, queue, team or advisor, as `site` knows
/// it now: the configuration's names, and the name of an advisor's last login that gave one.
pub fn name_records(records: &mut [IntervalRecord], site: &vigie_core::SiteProcessor) {
    for record in records {
        let id = record.key.id.as_str();
        let name = match record.key.kind {
            ScopeKind::Site => site.site().name.as_deref(),
            ScopeKind::Queue => site.queue_name(id),
            ScopeKind::Team => site.team_display_name(id),
            ScopeKind::Advisor => site.advisor_name(id),
        };
        record.name = name.map(str::to_owned);
    }
}

/// The latest revision of each record: for every [`RecordKey`], the record with the highest
/// `revision` (of equal revisions, the one that comes last), sorted by key.
pub fn latest_revisions(records: impl IntoIterator<Item = IntervalRecord>) -> Vec<IntervalRecord> {
    let mut latest: BTreeMap<RecordKey, IntervalRecord> = BTreeMap::new();
    for record in records {
        match latest.get(&record.key) {
            Some(kept) if kept.revision > record.revision => {}
            _ => {
                latest.insert(record.key.clone(), record);
            }
        }
    }
    latest.into_values().collect()
}

/// What every record of one interval shares.
struct Header<'a> {
    site: &'a str,
    start_ms: i64,
    end_ms: i64,
    date: &'a str,
    revision: u32,
    settled: bool,
}

impl Header<'_> {
    fn record(&self, kind: ScopeKind, id: &str) -> IntervalRecord {
        let key = RecordKey {
            site: self.site.to_owned(),
            kind,
            id: id.to_owned(),
            start_ms: self.start_ms,
        };
        IntervalRecord {
            revision: self.revision,
            settled: self.settled,
            ..IntervalRecord::new(key, self.end_ms, self.date)
        }
    }
}

fn queue_record(
    header: &Header,
    before: Option<&QueueTotals>,
    now: &QueueTotals,
) -> IntervalRecord {
    let zero = QueueTotals::default();
    let before = before.unwrap_or(&zero);
    let counts = counts_difference(&now.counts, &before.counts);
    let extra = extra_difference(&now.extra, &before.extra);
    let mut record = header.record(ScopeKind::Queue, &now.id);
    record.flow = Some(flow_record(&counts, &extra));
    record.handling = HandlingRecord {
        handled: counts.handled,
        talk_ms: counts.talk.0,
        hold_ms: counts.hold.0,
        acw_ms: counts.acw.0,
        held: counts.held,
        transferred: extra.transferred,
        missed_offers: 0,
    };
    record.sl_variant = Some(now.variant);
    record.sl_threshold_s = Some(now.sl_threshold);
    record.sl_target = Some(now.sl_target);
    record
}

/// A team's or the site's record: flow of its queues, handling and times of its advisors.
fn group_record(
    header: &Header,
    kind: ScopeKind,
    id: &str,
    before: Option<&GroupTotals>,
    now: &GroupTotals,
) -> IntervalRecord {
    let zero = GroupTotals::default();
    let before = before.unwrap_or(&zero);
    let flow = counts_difference(&now.flow, &before.flow);
    let extra = extra_difference(&now.extra, &before.extra);
    let mut record = header.record(kind, id);
    record.flow = Some(flow_record(&flow, &extra));
    record.handling = handling_record(&advisor_difference(&now.advisors, &before.advisors));
    record.times = Some(time_record(&now.times, &before.times));
    record.sl_variant = Some(now.variant);
    record.members = Some(now.members);
    record
}

fn advisor_record(
    header: &Header,
    before: Option<&AdvisorTotals>,
    now: &AdvisorTotals,
) -> IntervalRecord {
    let zero = AdvisorTotals::default();
    let before = before.unwrap_or(&zero);
    let mut record = header.record(ScopeKind::Advisor, &now.id);
    record.team = Some(now.team.clone());
    record.handling = handling_record(&advisor_difference(&now.counts, &before.counts));
    let mut times = time_record(&now.times, &before.times);
    times.first_login_ms = changed(now.first_login, before.first_login).map(|t| t.0);
    times.last_logout_ms = changed(now.last_logout, before.last_logout).map(|t| t.0);
    record.times = Some(times);
    record
}

/// The instant at the end, when it differs from the one at the start.
fn changed<T: PartialEq>(now: Option<T>, before: Option<T>) -> Option<T> {
    if now == before { None } else { now }
}

fn flow_record(counts: &QueueCounts, extra: &FlowExtra) -> FlowRecord {
    FlowRecord {
        offered: counts.offered,
        answered: counts.answered,
        answered_within_threshold: counts.answered_within_threshold,
        abandoned: counts.abandoned,
        short_abandoned: counts.short_abandoned,
        abandoned_within_threshold: counts.abandoned_within_threshold,
        dequeued: extra.dequeued,
        wait_answered_ms: counts.wait_answered.0,
        wait_abandoned_ms: extra.wait_abandoned.0,
    }
}

fn handling_record(counts: &AdvisorCounts) -> HandlingRecord {
    HandlingRecord {
        handled: counts.handled,
        talk_ms: counts.talk.0,
        hold_ms: counts.hold.0,
        acw_ms: counts.acw.0,
        held: counts.held,
        transferred: counts.transfers,
        missed_offers: counts.missed_offers,
    }
}

fn time_record(now: &TimeTotals, before: &TimeTotals) -> TimeRecord {
    TimeRecord {
        logged_in_ms: span(now.logged_in, before.logged_in).0,
        available_ms: span(now.available, before.available).0,
        handling_ms: span(now.handling, before.handling).0,
        pauses: pause_difference(&now.pauses, &before.pauses),
        first_login_ms: None,
        last_logout_ms: None,
    }
}

/// Pause time and count per reason; a reason absent before counts from zero, a reason with
/// neither time nor pauses in the interval is left out.
fn pause_difference(now: &[PauseTotals], before: &[PauseTotals]) -> Vec<PauseRecord> {
    let before: BTreeMap<&str, &PauseTotals> =
        before.iter().map(|p| (p.reason.as_str(), p)).collect();
    let mut pauses: Vec<PauseRecord> = now
        .iter()
        .filter_map(|pause| {
            let (time, count) = match before.get(pause.reason.as_str()) {
                Some(old) => (
                    span(pause.time, old.time),
                    pause.count.saturating_sub(old.count),
                ),
                None => (span(pause.time, Millis::ZERO), pause.count),
            };
            (time.0 > 0 || count > 0).then(|| PauseRecord {
                reason: pause.reason.clone(),
                time_ms: time.0,
                count,
            })
        })
        .collect();
    pauses.sort_by(|a, b| a.reason.cmp(&b.reason));
    pauses
}

/// A difference of cumulative times, never negative.
fn span(now: Millis, before: Millis) -> Millis {
    Millis((now.0 - before.0).max(0))
}

fn counts_difference(now: &QueueCounts, before: &QueueCounts) -> QueueCounts {
    QueueCounts {
        offered: now.offered.saturating_sub(before.offered),
        answered: now.answered.saturating_sub(before.answered),
        abandoned: now.abandoned.saturating_sub(before.abandoned),
        short_abandoned: now.short_abandoned.saturating_sub(before.short_abandoned),
        answered_within_threshold: now
            .answered_within_threshold
            .saturating_sub(before.answered_within_threshold),
        abandoned_within_threshold: now
            .abandoned_within_threshold
            .saturating_sub(before.abandoned_within_threshold),
        wait_answered: span(now.wait_answered, before.wait_answered),
        handled: now.handled.saturating_sub(before.handled),
        talk: span(now.talk, before.talk),
        hold: span(now.hold, before.hold),
        acw: span(now.acw, before.acw),
        held: now.held.saturating_sub(before.held),
    }
}

fn extra_difference(now: &FlowExtra, before: &FlowExtra) -> FlowExtra {
    FlowExtra {
        dequeued: now.dequeued.saturating_sub(before.dequeued),
        wait_abandoned: span(now.wait_abandoned, before.wait_abandoned),
        transferred: now.transferred.saturating_sub(before.transferred),
    }
}

fn advisor_difference(now: &AdvisorCounts, before: &AdvisorCounts) -> AdvisorCounts {
    AdvisorCounts {
        handled: now.handled.saturating_sub(before.handled),
        talk: span(now.talk, before.talk),
        hold: span(now.hold, before.hold),
        acw: span(now.acw, before.acw),
        held: now.held.saturating_sub(before.held),
        transfers: now.transfers.saturating_sub(before.transfers),
        missed_offers: now.missed_offers.saturating_sub(before.missed_offers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigie_core::totals::{AdvisorTotals, GroupTotals, PauseTotals, QueueTotals, TimeTotals};
    use vigie_core::{SlVariant, Timestamp};

    use crate::aggregate::{AggregateOptions, Granularity, aggregate};

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn secs(s: i64) -> Millis {
        Millis::from_secs(s)
    }

    fn day(at: &str) -> DayTotals {
        DayTotals {
            site: "paris".into(),
            day_start: ts("2026-11-27T00:00:00+01:00"),
            date: "2026-11-27".into(),
            at: ts(at),
            ..DayTotals::default()
        }
    }

    fn pause(reason: &str, time_s: i64, count: u64) -> PauseTotals {
        PauseTotals {
            reason: reason.into(),
            time: secs(time_s),
            count,
        }
    }

    fn times(
        logged_in: i64,
        available: i64,
        handling: i64,
        pauses: Vec<PauseTotals>,
    ) -> TimeTotals {
        TimeTotals {
            logged_in: secs(logged_in),
            available: secs(available),
            handling: secs(handling),
            pauses,
        }
    }

    fn handling(handled: u64, talk: i64, hold: i64, acw: i64, transfers: u64) -> AdvisorCounts {
        AdvisorCounts {
            handled,
            talk: secs(talk),
            hold: secs(hold),
            acw: secs(acw),
            held: u64::from(hold > 0),
            transfers,
            missed_offers: 0,
        }
    }

    /// One queue, one team of two advisors, at 08:00 and at 08:15.
    fn morning() -> (DayTotals, DayTotals) {
        let flow_8h00 = QueueCounts {
            offered: 10,
            answered: 8,
            abandoned: 2,
            short_abandoned: 1,
            answered_within_threshold: 6,
            abandoned_within_threshold: 1,
            wait_answered: secs(80),
            handled: 7,
            talk: secs(700),
            hold: secs(70),
            acw: secs(140),
            held: 2,
        };
        let flow_8h15 = QueueCounts {
            offered: 14,
            answered: 11,
            abandoned: 3,
            short_abandoned: 1,
            answered_within_threshold: 8,
            abandoned_within_threshold: 1,
            wait_answered: secs(110),
            handled: 10,
            talk: secs(1000),
            hold: secs(70),
            acw: secs(200),
            held: 2,
        };
        let extra = |transferred| FlowExtra {
            dequeued: 0,
            wait_abandoned: secs(30),
            transferred,
        };
        let queue = |counts, transferred| QueueTotals {
            id: "q1".into(),
            counts,
            extra: extra(transferred),
            variant: SlVariant::Offered,
            sl_threshold: 20.0,
            sl_target: 0.8,
        };
        let a1_before = AdvisorTotals {
            id: "a1".into(),
            team: "t1".into(),
            counts: handling(7, 700, 70, 140, 1),
            times: times(3000, 1800, 600, vec![pause("break", 600, 1)]),
            first_login: Some(ts("2026-11-27T07:10:00+01:00")),
            last_logout: None,
        };
        let a1_after = AdvisorTotals {
            counts: handling(9, 900, 70, 180, 1),
            times: times(
                3900,
                2100,
                1200,
                vec![pause("break", 600, 1), pause("lunch", 300, 1)],
            ),
            ..a1_before.clone()
        };
        let a2_after = AdvisorTotals {
            id: "a2".into(),
            team: "t1".into(),
            counts: handling(1, 100, 0, 20, 0),
            times: times(600, 480, 120, vec![]),
            first_login: Some(ts("2026-11-27T08:05:00+01:00")),
            last_logout: None,
        };
        let group = |id: &str, counts, transferred, advisors: &[&AdvisorTotals]| {
            let mut group = GroupTotals {
                id: id.into(),
                flow: counts,
                extra: extra(transferred),
                variant: SlVariant::Positive,
                members: advisors.len() as u64,
                ..GroupTotals::default()
            };
            for advisor in advisors {
                group.advisors.add(&advisor.counts);
                group.times.add(&advisor.times);
            }
            group
        };
        let mut before = day("2026-11-27T08:00:00+01:00");
        before.queues = vec![queue(flow_8h00, 1)];
        before.teams = vec![group("t1", flow_8h00, 1, &[&a1_before])];
        before.site_totals = group("paris", flow_8h00, 1, &[&a1_before]);
        before.advisors = vec![a1_before];
        let mut after = day("2026-11-27T08:15:00+01:00");
        after.queues = vec![queue(flow_8h15, 1)];
        after.teams = vec![group("t1", flow_8h15, 1, &[&a1_after, &a2_after])];
        after.site_totals = group("paris", flow_8h15, 1, &[&a1_after, &a2_after]);
        after.advisors = vec![a1_after, a2_after];
        (before, after)
    }

    fn find<'a>(records: &'a [IntervalRecord], kind: ScopeKind, id: &str) -> &'a IntervalRecord {
        records
            .iter()
            .find(|r| r.key.kind == kind && r.key.id == id)
            .unwrap()
    }

    #[test]
    fn an_interval_is_the_difference_of_the_totals_at_its_bounds() {
        let (before, after) = morning();
        let records = interval_records(Some(&before), &after, 1, true);

        let keys: Vec<(ScopeKind, &str)> = records
            .iter()
            .map(|r| (r.key.kind, r.key.id.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (ScopeKind::Site, "paris"),
                (ScopeKind::Queue, "q1"),
                (ScopeKind::Team, "t1"),
                (ScopeKind::Advisor, "a1"),
                (ScopeKind::Advisor, "a2"),
            ],
            "by kind, then id"
        );
        for record in &records {
            assert_eq!(record.key.site, "paris");
            assert_eq!(record.key.start_ms, ts("2026-11-27T08:00:00+01:00").0);
            assert_eq!(record.end_ms, ts("2026-11-27T08:15:00+01:00").0);
            assert_eq!(record.date, "2026-11-27");
            assert_eq!((record.revision, record.settled), (1, true));
        }

        let queue = find(&records, ScopeKind::Queue, "q1");
        assert_eq!(
            queue.flow,
            Some(FlowRecord {
                offered: 4,
                answered: 3,
                answered_within_threshold: 2,
                abandoned: 1,
                short_abandoned: 0,
                abandoned_within_threshold: 0,
                dequeued: 0,
                wait_answered_ms: 30_000,
                wait_abandoned_ms: 0,
            })
        );
        assert_eq!(
            queue.handling,
            HandlingRecord {
                handled: 3,
                talk_ms: 300_000,
                hold_ms: 0,
                acw_ms: 60_000,
                held: 0,
                transferred: 0,
                missed_offers: 0,
            }
        );
        assert_eq!(queue.sl_variant, Some(SlVariant::Offered));
        assert_eq!(
            (queue.sl_threshold_s, queue.sl_target),
            (Some(20.0), Some(0.8))
        );
        assert_eq!((queue.times.as_ref(), queue.team.as_ref()), (None, None));

        let a1 = find(&records, ScopeKind::Advisor, "a1");
        assert_eq!(a1.team.as_deref(), Some("t1"));
        assert_eq!(a1.flow, None);
        assert_eq!(
            (a1.handling.handled, a1.handling.talk_ms, a1.handling.acw_ms),
            (2, 200_000, 40_000)
        );
        let a1_times = a1.times.as_ref().unwrap();
        assert_eq!(
            (
                a1_times.logged_in_ms,
                a1_times.available_ms,
                a1_times.handling_ms
            ),
            (900_000, 300_000, 600_000)
        );
        assert_eq!(
            a1_times.pauses,
            [PauseRecord {
                reason: "lunch".into(),
                time_ms: 300_000,
                count: 1
            }],
            "a reason absent before counts from zero; an unchanged reason is left out"
        );
        assert_eq!(
            (a1_times.first_login_ms, a1_times.last_logout_ms),
            (None, None),
            "a1 logged in before the interval"
        );
        let a2_times = find(&records, ScopeKind::Advisor, "a2")
            .times
            .clone()
            .unwrap();
        assert_eq!(
            a2_times.first_login_ms,
            Some(ts("2026-11-27T08:05:00+01:00").0),
            "a2's first login appeared in the interval"
        );

        let team = find(&records, ScopeKind::Team, "t1");
        assert_eq!(team.flow, queue.flow, "the team's campaign is q1");
        assert_eq!(
            (
                team.handling.handled,
                team.handling.talk_ms,
                team.handling.acw_ms
            ),
            (3, 300_000, 60_000),
            "a1's and a2's handling"
        );
        let team_times = team.times.as_ref().unwrap();
        assert_eq!(team_times.logged_in_ms, 900_000 + 600_000);
        assert_eq!(
            (team_times.first_login_ms, team_times.last_logout_ms),
            (None, None)
        );
        assert_eq!(team.members, Some(2));
        assert_eq!(team.sl_variant, Some(SlVariant::Positive));
        assert_eq!(team.team, None);

        let site = find(&records, ScopeKind::Site, "paris");
        assert_eq!(site.flow, queue.flow);
        assert_eq!(site.handling, team.handling);
        assert_eq!(site.times, team.times);
    }

    #[test]
    fn the_first_interval_of_a_day_counts_from_zero() {
        let (before, after) = morning();
        let day_start = ts("2026-11-27T00:00:00+01:00").0;
        for previous in [
            None,
            Some(DayTotals {
                date: "2026-11-26".into(),
                day_start: ts("2026-11-26T00:00:00+01:00"),
                ..before.clone()
            }),
        ] {
            let records = interval_records(previous.as_ref(), &after, 2, false);
            let queue = find(&records, ScopeKind::Queue, "q1");
            assert_eq!(queue.key.start_ms, day_start);
            assert_eq!(queue.flow.unwrap().offered, 14);
            assert_eq!(queue.handling.handled, 10);
            let a1 = find(&records, ScopeKind::Advisor, "a1");
            let a1_times = a1.times.as_ref().unwrap();
            assert_eq!(a1_times.pauses.len(), 2);
            assert_eq!(
                a1_times.first_login_ms,
                Some(ts("2026-11-27T07:10:00+01:00").0)
            );
            assert!(
                records
                    .iter()
                    .all(|r| (r.revision, r.settled) == (2, false))
            );
        }
    }

    #[test]
    fn the_interval_in_progress_ends_at_the_totals_instant() {
        let (before, mut after) = morning();
        after.at = ts("2026-11-27T08:07:30+01:00");
        let records = interval_records(Some(&before), &after, 1, false);
        assert!(
            records
                .iter()
                .all(|r| r.end_ms == ts("2026-11-27T08:07:30+01:00").0)
        );
        after.at = before.at;
        assert!(interval_records(Some(&before), &after, 1, false).is_empty());
    }

    #[test]
    fn a_logout_is_recorded_in_the_interval_it_happened() {
        let (before, mut after) = morning();
        after.advisors[0].last_logout = Some(ts("2026-11-27T08:12:00+01:00"));
        let mut later = after.clone();
        later.at = ts("2026-11-27T08:30:00+01:00");
        let first = interval_records(Some(&before), &after, 1, true);
        let second = interval_records(Some(&after), &later, 1, true);
        let logout = |records: &[IntervalRecord]| {
            find(records, ScopeKind::Advisor, "a1")
                .times
                .as_ref()
                .unwrap()
                .last_logout_ms
        };
        assert_eq!(logout(&first), Some(ts("2026-11-27T08:12:00+01:00").0));
        assert_eq!(logout(&second), None, "unchanged since");
    }

    #[test]
    fn an_advisor_moving_team_takes_the_interval_to_the_new_team_without_negative_figures() {
        let (_, before) = morning();
        let mut after = before.clone();
        after.at = ts("2026-11-27T08:30:00+01:00");
        // a2 moved to t2 and handled one more contact (60 s talk) there.
        let a2 = &mut after.advisors[1];
        a2.team = "t2".into();
        a2.counts.handled += 1;
        a2.counts.talk += secs(60);
        // The core's team totals sum current members: t1 loses a2's whole day.
        after.teams[0].advisors = after.advisors[0].counts;
        after.teams[0].times = after.advisors[0].times.clone();
        after.teams[0].members = 1;
        after.teams.push(GroupTotals {
            id: "t2".into(),
            advisors: after.advisors[1].counts,
            times: after.advisors[1].times.clone(),
            members: 1,
            ..GroupTotals::default()
        });
        let records = interval_records(Some(&before), &after, 1, true);
        let t1 = find(&records, ScopeKind::Team, "t1");
        let t2 = find(&records, ScopeKind::Team, "t2");
        assert_eq!(t1.handling.handled, 0);
        assert_eq!(t1.times.as_ref().unwrap().logged_in_ms, 0);
        assert_eq!((t2.handling.handled, t2.handling.talk_ms), (1, 60_000));
        assert_eq!(t2.members, Some(1));
    }

    #[test]
    fn latest_revisions_keep_the_highest_revision_of_each_key() {
        let (before, after) = morning();
        let first = interval_records(Some(&before), &after, 1, false);
        let mut corrected = interval_records(Some(&before), &after, 2, true);
        corrected.retain(|r| r.key.kind == ScopeKind::Queue);
        corrected[0].flow.as_mut().unwrap().offered = 5;
        let mut all = corrected.clone();
        all.extend(first.clone());
        let latest = latest_revisions(all);
        assert_eq!(latest.len(), first.len());
        let queue = find(&latest, ScopeKind::Queue, "q1");
        assert_eq!((queue.revision, queue.flow.unwrap().offered), (2, 5));
        assert!(
            latest.windows(2).all(|w| w[0].key < w[1].key),
            "sorted by key"
        );
        let mut same = first[0].clone();
        same.settled = true;
        let kept = latest_revisions([first[0].clone(), same.clone()]);
        assert_eq!(kept, [same], "of equal revisions, the later one");
    }

    /// One step of a simulated day: what happened during a 15-minute interval.
    #[derive(Clone, Debug)]
    struct Step {
        offered: u64,
        answered: u64,
        within: u64,
        abandoned: u64,
        wait_s: i64,
        handled: [u64; 2],
        talk_s: [i64; 2],
        pause: [(usize, i64, u64); 2],
        logout: [bool; 2],
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            (0u64..20, 0u64..20, 0u64..20, 0u64..5, 0i64..600),
            ([0u64..4, 0u64..4], [0i64..900, 0i64..900]),
            [
                (0usize..3, 0i64..900, 0u64..2),
                (0usize..3, 0i64..900, 0u64..2),
            ],
            [any::<bool>(), any::<bool>()],
        )
            .prop_map(
                |(
                    (offered, answered, within, abandoned, wait_s),
                    (handled, talk_s),
                    pause,
                    logout,
                )| Step {
                    offered,
                    answered,
                    within: within.min(answered),
                    abandoned,
                    wait_s,
                    handled,
                    talk_s,
                    pause,
                    logout,
                },
            )
    }

    /// The cumulative totals after each step.
    fn cumulative(steps: &[Step]) -> Vec<DayTotals> {
        let reasons = ["break", "lunch", "training"];
        let start = ts("2026-11-27T00:00:00+01:00");
        let mut flow = QueueCounts::default();
        let mut advisors: Vec<AdvisorTotals> = ["a1", "a2"]
            .iter()
            .map(|id| AdvisorTotals {
                id: (*id).into(),
                team: "t1".into(),
                ..AdvisorTotals::default()
            })
            .collect();
        let mut totals = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let at = start + Millis::from_mins(15 * (index as i64 + 1));
            flow.add(&QueueCounts {
                offered: step.offered,
                answered: step.answered,
                answered_within_threshold: step.within,
                abandoned: step.abandoned,
                wait_answered: secs(step.wait_s),
                ..QueueCounts::default()
            });
            for (a, advisor) in advisors.iter_mut().enumerate() {
                advisor
                    .counts
                    .add(&handling(step.handled[a], step.talk_s[a], 0, 10, 0));
                let (reason, time, count) = step.pause[a];
                advisor.times.add(&times(
                    900,
                    900 - step.talk_s[a].min(900),
                    step.talk_s[a],
                    vec![pause(reasons[reason], time, count)],
                ));
                advisor
                    .first_login
                    .get_or_insert(at - Millis::from_mins(15));
                if step.logout[a] {
                    advisor.last_logout = Some(at - Millis::from_secs(1));
                }
            }
            let mut group = GroupTotals {
                flow,
                members: 2,
                ..GroupTotals::default()
            };
            for advisor in &advisors {
                group.advisors.add(&advisor.counts);
                group.times.add(&advisor.times);
            }
            let mut day = day("2026-11-27T00:00:00+01:00");
            day.at = at;
            day.queues = vec![QueueTotals {
                id: "q1".into(),
                counts: flow,
                sl_threshold: 20.0,
                sl_target: 0.8,
                ..QueueTotals::default()
            }];
            day.teams = vec![GroupTotals {
                id: "t1".into(),
                ..group.clone()
            }];
            day.site_totals = GroupTotals {
                id: "paris".into(),
                ..group
            };
            day.advisors = advisors.clone();
            totals.push(day);
        }
        totals
    }

    proptest! {
        /// The intervals of a day add up to the day: every count, time and pause, the first
        /// login and the last logout, and the indicators recomputed from the sums.
        #[test]
        fn intervals_add_up_to_the_day(steps in prop::collection::vec(step(), 1..12)) {
            let totals = cumulative(&steps);
            let mut intervals = Vec::new();
            let mut previous: Option<&DayTotals> = None;
            for next in &totals {
                intervals.extend(interval_records(previous, next, 1, true));
                previous = Some(next);
            }
            let whole_day = interval_records(None, totals.last().unwrap(), 1, true);
            let options = AggregateOptions::new(Granularity::Day, chrono_tz::Europe::Paris);
            for day_record in &whole_day {
                let scope: Vec<IntervalRecord> = intervals
                    .iter()
                    .filter(|r| r.key.kind == day_record.key.kind && r.key.id == day_record.key.id)
                    .cloned()
                    .collect();
                prop_assert_eq!(scope.len(), steps.len());
                let summed = aggregate(day_record.key.kind, &scope, &options).unwrap();
                let expected =
                    aggregate(day_record.key.kind, std::slice::from_ref(day_record), &options)
                        .unwrap();
                prop_assert_eq!(summed.len(), 1);
                let (summed, expected) = (&summed[0], &expected[0]);
                prop_assert_eq!(summed.flow, expected.flow);
                prop_assert_eq!(summed.handling, expected.handling);
                prop_assert_eq!(&summed.times, &expected.times);
                prop_assert_eq!(&summed.indicators, &expected.indicators);
            }
        }
    }
}
