//! The `History` service: how the days went, from the interval records of the history store.
//! `ListIntervals` sums one scope's records into periods (ratios recomputed from the counts),
//! `GetTimesheet` makes advisors' timesheets, `GetReport` a team's end-of-shift report,
//! `ListAlertHistory` lists the day's alerts with their transitions, and
//! `ListAbandonedContacts` the contacts that hung up while waiting.
//!
//! Who may read what is the rule of the live views, checked on the engine's task against the
//! site's current teams (the advisor's current team for an advisor's history), before the
//! store is read: a request outside the caller's scope gets the same PERMISSION_DENIED whether
//! the target has a history or not.
//!
//! The interval in progress is not in the store yet: when asked for, it is worked out from the
//! live figures, as the engine works out the records it stores (the day's totals now less the
//! totals at the interval's start). Once the totals at the start can no longer be computed
//! (events folded past it), the records of the day so far less the records stored for the
//! day's earlier intervals give the same figures.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use futures::future::try_join_all;
use tonic::{Code, Request, Response, Status};
use vigie_alerts::{Alert, AlertState, Severity, TransitionKind, Unit};
use vigie_core::views::HandleIndicators;
use vigie_core::{DayCalendar, INTERVAL_LENGTH, SiteProcessor, SlVariant, Timestamp};
use vigie_engine::{EngineHandle, EngineState};
use vigie_history::aggregate::PeriodIndicators;
use vigie_history::record::{FlowRecord, HandlingRecord, PauseRecord, TimeRecord};
use vigie_history::records::{interval_records, name_records};
use vigie_history::report::{
    AlertSeverity, Language, ReportAlert, ReportInput, ReportNotice, ReportTargets,
};
use vigie_history::timesheet::{self, TimesheetRow};
use vigie_history::{
    AggregateOptions, Fill, Granularity, IntervalRecord, PeriodFigures, ScopeKind, aggregate,
};
use vigie_proto::v1 as pb;
use vigie_proto::v1::history_server::History;

use crate::admin::invalid;
use crate::alerts::{alert_to_wire, may_read};
use crate::auth::{Authenticator, Principal, Role, permission_denied};
use crate::convert;
use crate::forward::Forwarding;
use crate::history_store::{AlertRecord, HistoryError, HistoryStore, merge_alert};
use crate::metrics::ApiMetrics;
use crate::notices::{Notice, NoticeLevel, NoticesService};
use crate::read;

mod abandoned;

/// Longest range of a timesheet, in days.
pub const MAX_TIMESHEET_DAYS: i64 = 31;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Longest range of `ListIntervals` at each granularity, in days: about 3,000 periods at
/// most, whatever the granularity, and never more than the site's records are kept.
pub fn max_range_days(granularity: Granularity) -> i64 {
    match granularity {
        Granularity::Minutes15 => 31,
        Granularity::Minutes30 => 62,
        Granularity::Hour => 93,
        Granularity::Day => 400,
    }
}

/// The `History` service over an engine and a history store.
#[derive(Clone, Debug)]
pub struct HistoryService {
    engine: EngineHandle,
    auth: Option<Arc<Authenticator>>,
    /// Where the records are; without one, every call is UNAVAILABLE.
    store: Option<Arc<dyn HistoryStore>>,
    /// The notices in force, for today's reports.
    notices: NoticesService,
    metrics: ApiMetrics,
    /// Where the calls about sites processed elsewhere go.
    forwarding: Forwarding,
}

/// What the service needs of a site, read on the engine's task.
#[derive(Clone, Copy, Debug)]
struct SiteFacts {
    /// The site's days.
    calendar: DayCalendar,
    /// The local time its day starts.
    day_start: NaiveTime,
    /// The site's clock.
    now: Timestamp,
    /// The current site-local day.
    today: vigie_core::time::Day,
}

impl SiteFacts {
    fn of(site: &SiteProcessor) -> SiteFacts {
        let now = site.now();
        SiteFacts {
            calendar: site.site().calendar(),
            day_start: site.site().day_start_time().unwrap_or(NaiveTime::MIN),
            now,
            today: site.day_of(now),
        }
    }

    /// `[start, end)` of the site-local days `first` to `last`, in ms since the epoch.
    fn span(&self, first: NaiveDate, last: NaiveDate) -> (i64, i64) {
        let after = last.succ_opt().unwrap_or(last);
        (
            self.calendar.start_of(first).0,
            self.calendar.start_of(after).0,
        )
    }

    fn options(&self, granularity: Granularity) -> AggregateOptions {
        AggregateOptions::new(granularity, self.calendar.zone()).with_day_start(self.day_start)
    }
}

/// The records of the interval in progress, as the live figures give them.
#[derive(Clone, Debug)]
struct CurrentInterval {
    /// The interval's start, ms since the epoch.
    start_ms: i64,
    /// The site's clock: where the figures stop.
    end_ms: i64,
    /// The start of the current day.
    day_start_ms: i64,
    /// The records kept, of the interval, or of the whole day so far when `since_day_start`.
    records: Vec<IntervalRecord>,
    /// The records run from the day start: what is stored for the day's earlier intervals is
    /// to be taken off.
    since_day_start: bool,
    /// The day so far at `start_ms`, of the same scopes, when the live figures still tell it:
    /// they give the interval that just closed where the store does not hold its record yet
    /// (the engine records an interval closed during a recovery only once final, and the
    /// history task may be behind).
    closing: Vec<IntervalRecord>,
}

/// The interval in progress at the site's clock: the records of the scopes `keep` accepts.
/// `None` when the interval has only just started or the live totals cannot be computed.
fn current_interval(
    site: &SiteProcessor,
    keep: impl Fn(&IntervalRecord) -> bool,
) -> Option<CurrentInterval> {
    let now = site.now();
    let day = site.day_of(now);
    let length = INTERVAL_LENGTH.0;
    let start = Timestamp(day.start.0 + (now.0 - day.start.0).div_euclid(length) * length);
    if now <= start {
        return None;
    }
    let totals = site.totals_at(now).ok()?;
    let (records, since_day_start, closing) = if start == day.start {
        (interval_records(None, &totals, 0, false), false, Vec::new())
    } else {
        match site.totals_at(start) {
            Ok(before) => (
                interval_records(Some(&before), &totals, 0, false),
                false,
                interval_records(None, &before, 0, false),
            ),
            // Folded past the start: the day so far, less what the store holds before it.
            Err(_) => (interval_records(None, &totals, 0, false), true, Vec::new()),
        }
    };
    let kept = |records: Vec<IntervalRecord>| {
        let mut records: Vec<IntervalRecord> = records.into_iter().filter(|r| keep(r)).collect();
        name_records(&mut records, site);
        records
    };
    Some(CurrentInterval {
        start_ms: start.0,
        end_ms: now.0,
        day_start_ms: day.start.0,
        records: kept(records),
        since_day_start,
        closing: kept(closing),
    })
}

/// `record` (of the day so far) less the `before` records of the same scope: the figures of
/// `[start_ms, end_ms)`. A difference that would be negative (an advisor who changed team
/// today, counted in the team's day so far) counts as zero.
fn take_off(
    mut record: IntervalRecord,
    before: &[IntervalRecord],
    start_ms: i64,
    end_ms: i64,
) -> IntervalRecord {
    let sub = |total: &mut u64, part: u64| *total = total.saturating_sub(part);
    let sub_ms = |total: &mut i64, part: i64| *total = (*total - part).max(0);
    for earlier in before.iter().filter(|r| r.key.start_ms < start_ms) {
        if let (Some(flow), Some(part)) = (record.flow.as_mut(), earlier.flow.as_ref()) {
            sub(&mut flow.offered, part.offered);
            sub(&mut flow.answered, part.answered);
            sub(
                &mut flow.answered_within_threshold,
                part.answered_within_threshold,
            );
            sub(&mut flow.abandoned, part.abandoned);
            sub(&mut flow.short_abandoned, part.short_abandoned);
            sub(
                &mut flow.abandoned_within_threshold,
                part.abandoned_within_threshold,
            );
            sub(&mut flow.dequeued, part.dequeued);
            sub_ms(&mut flow.wait_answered_ms, part.wait_answered_ms);
            sub_ms(&mut flow.wait_abandoned_ms, part.wait_abandoned_ms);
        }
        let (handling, part) = (&mut record.handling, &earlier.handling);
        sub(&mut handling.handled, part.handled);
        sub_ms(&mut handling.talk_ms, part.talk_ms);
        sub_ms(&mut handling.hold_ms, part.hold_ms);
        sub_ms(&mut handling.acw_ms, part.acw_ms);
        sub(&mut handling.held, part.held);
        sub(&mut handling.transferred, part.transferred);
        sub(&mut handling.missed_offers, part.missed_offers);
        if let (Some(times), Some(part)) = (record.times.as_mut(), earlier.times.as_ref()) {
            sub_ms(&mut times.logged_in_ms, part.logged_in_ms);
            sub_ms(&mut times.available_ms, part.available_ms);
            sub_ms(&mut times.handling_ms, part.handling_ms);
            for pause in &part.pauses {
                if let Some(own) = times.pauses.iter_mut().find(|p| p.reason == pause.reason) {
                    sub_ms(&mut own.time_ms, pause.time_ms);
                    sub(&mut own.count, pause.count);
                }
            }
            if part.first_login_ms.is_some() {
                times.first_login_ms = None;
            }
        }
    }
    if let Some(times) = record.times.as_mut() {
        times.pauses.retain(|p| p.time_ms > 0 || p.count > 0);
        times.first_login_ms = times.first_login_ms.filter(|t| *t >= start_ms);
        times.last_logout_ms = times.last_logout_ms.filter(|t| *t >= start_ms);
    }
    record.key.start_ms = start_ms;
    record.end_ms = end_ms;
    record
}

/// The scope a `ListIntervals` call reads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Scope {
    kind: ScopeKind,
    id: String,
}

/// Whether the caller may read the history of a scope of `site`: the rule of its live view,
/// with the site's teams as they are now.
fn may_read_scope(principal: &Principal, site: &SiteProcessor, scope: &Scope) -> bool {
    let site_id = &site.site().id;
    match scope.kind {
        ScopeKind::Site => principal.may_read_site(site_id),
        ScopeKind::Queue => {
            principal.may_read_queue(site_id, &scope.id, &site.teams_serving(&scope.id))
        }
        ScopeKind::Team => principal.may_read_team(site_id, &scope.id),
        ScopeKind::Advisor => {
            principal.may_read_advisor(site_id, &scope.id, site.advisor_team(&scope.id))
        }
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(invalid(vec![(field.to_owned(), "required".to_owned())]))
    } else {
        Ok(())
    }
}

fn bad(field: &str, problem: impl Into<String>) -> Status {
    invalid(vec![(field.to_owned(), problem.into())])
}

/// A store's failure as the caller sees it.
pub fn store_error(error: HistoryError) -> Status {
    match error {
        HistoryError::Unavailable(_) | HistoryError::Misconfigured(_) => Status::unavailable(
            format!("{error}; the figures of the day in progress are still in the live views"),
        ),
        HistoryError::InvalidQuery(problem) => Status::invalid_argument(problem),
        HistoryError::BadRecord { .. } => Status::internal(error.to_string()),
    }
}

/// A site-local date, `YYYY-MM-DD`, of the request field `field`.
fn parse_date(field: &str, text: &str) -> Result<NaiveDate, Status> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|date| date.format("%Y-%m-%d").to_string() == text)
        .ok_or_else(|| bad(field, format!("{text:?} is not a date YYYY-MM-DD")))
}

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn millis(time: &prost_types::Timestamp) -> i64 {
    time.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(time.nanos) / 1_000_000)
}

fn wire_time(ms: i64) -> prost_types::Timestamp {
    convert::timestamp(Timestamp(ms))
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn granularity_from_wire(value: i32) -> Result<Granularity, Status> {
    match pb::Granularity::try_from(value) {
        Ok(pb::Granularity::Unspecified | pb::Granularity::Granularity15m) => {
            Ok(Granularity::Minutes15)
        }
        Ok(pb::Granularity::Granularity30m) => Ok(Granularity::Minutes30),
        Ok(pb::Granularity::Granularity1h) => Ok(Granularity::Hour),
        Ok(pb::Granularity::Day) => Ok(Granularity::Day),
        Err(_) => Err(bad("granularity", format!("unknown value {value}"))),
    }
}

fn granularity_to_wire(granularity: Granularity) -> pb::Granularity {
    match granularity {
        Granularity::Minutes15 => pb::Granularity::Granularity15m,
        Granularity::Minutes30 => pb::Granularity::Granularity30m,
        Granularity::Hour => pb::Granularity::Granularity1h,
        Granularity::Day => pb::Granularity::Day,
    }
}

fn scope_from_wire(site: &str, scope: Option<pb::HistoryScope>) -> Result<Scope, Status> {
    let scope = scope.ok_or_else(|| bad("scope", "required"))?;
    let kind = match pb::HistoryScopeKind::try_from(scope.kind) {
        Ok(pb::HistoryScopeKind::Site) => ScopeKind::Site,
        Ok(pb::HistoryScopeKind::Queue) => ScopeKind::Queue,
        Ok(pb::HistoryScopeKind::Team) => ScopeKind::Team,
        Ok(pb::HistoryScopeKind::Advisor) => ScopeKind::Advisor,
        Ok(pb::HistoryScopeKind::Unspecified) | Err(_) => {
            return Err(bad(
                "scope.kind",
                "required: HISTORY_SCOPE_KIND_SITE, _QUEUE, _TEAM or _ADVISOR",
            ));
        }
    };
    let id = if kind == ScopeKind::Site {
        if !scope.id.is_empty() && scope.id != site {
            return Err(bad(
                "scope.id",
                format!("the site's scope is the site itself: leave it empty or give {site:?}"),
            ));
        }
        site.to_owned()
    } else {
        required("scope.id", &scope.id)?;
        scope.id
    };
    Ok(Scope { kind, id })
}

fn scope_kind_to_wire(kind: ScopeKind) -> pb::HistoryScopeKind {
    match kind {
        ScopeKind::Site => pb::HistoryScopeKind::Site,
        ScopeKind::Queue => pb::HistoryScopeKind::Queue,
        ScopeKind::Team => pb::HistoryScopeKind::Team,
        ScopeKind::Advisor => pb::HistoryScopeKind::Advisor,
    }
}

fn sl_variant_to_wire(variant: Option<SlVariant>) -> i32 {
    match variant {
        None => pb::SlVariant::Unspecified,
        Some(SlVariant::Offered) => pb::SlVariant::Offered,
        Some(SlVariant::Answered) => pb::SlVariant::Answered,
        Some(SlVariant::Positive) => pb::SlVariant::Positive,
    }
    .into()
}

fn handle_to_wire(handling: &HandleIndicators) -> pb::HandleIndicators {
    pb::HandleIndicators {
        handled: handling.handled,
        aht: handling.aht,
        avg_talk: handling.avg_talk,
        avg_hold: handling.avg_hold,
        avg_acw: handling.avg_acw,
        held: handling.held,
        hold_rate: handling.hold_rate,
    }
}

fn flow_to_wire(flow: &FlowRecord) -> pb::PeriodFlow {
    pb::PeriodFlow {
        offered: flow.offered,
        answered: flow.answered,
        answered_within_threshold: flow.answered_within_threshold,
        abandoned: flow.abandoned,
        short_abandoned: flow.short_abandoned,
        abandoned_within_threshold: flow.abandoned_within_threshold,
        dequeued: flow.dequeued,
        wait_answered: seconds(flow.wait_answered_ms),
        wait_abandoned: seconds(flow.wait_abandoned_ms),
    }
}

fn handling_to_wire(handling: &HandlingRecord) -> pb::PeriodHandling {
    pb::PeriodHandling {
        handled: handling.handled,
        talk: seconds(handling.talk_ms),
        hold: seconds(handling.hold_ms),
        acw: seconds(handling.acw_ms),
        held: handling.held,
        transferred: handling.transferred,
        missed_offers: handling.missed_offers,
    }
}

fn pauses_to_wire(pauses: &[PauseRecord]) -> Vec<pb::PauseTime> {
    pauses
        .iter()
        .map(|pause| pb::PauseTime {
            reason: pause.reason.clone(),
            time: seconds(pause.time_ms),
            count: u32::try_from(pause.count).unwrap_or(u32::MAX),
        })
        .collect()
}

fn times_to_wire(times: &TimeRecord) -> pb::PeriodTimes {
    pb::PeriodTimes {
        logged_in: seconds(times.logged_in_ms),
        available: seconds(times.available_ms),
        handling: seconds(times.handling_ms),
        pause: seconds(times.pauses.iter().map(|p| p.time_ms).sum()),
        pauses: pauses_to_wire(&times.pauses),
        first_login: times.first_login_ms.map(wire_time),
        last_logout: times.last_logout_ms.map(wire_time),
    }
}

fn indicators_to_wire(indicators: &PeriodIndicators) -> pb::PeriodIndicators {
    pb::PeriodIndicators {
        service_level: indicators.service_level,
        abandon_rate: indicators.abandon_rate,
        asa: indicators.asa,
        handling: Some(handle_to_wire(&indicators.handling)),
        occupancy: indicators.occupancy,
        pause_time: indicators.pause_time,
    }
}

/// A period in its wire form. `current_start`: the start of the interval in progress counted
/// in the periods, if any; `revisions`: the revision of each record summed, by start.
fn period_to_wire(
    period: &PeriodFigures,
    granularity: Granularity,
    current_start: Option<i64>,
    revisions: &BTreeMap<i64, u32>,
) -> pb::Period {
    let partial =
        current_start.is_some_and(|start| period.start_ms <= start && start < period.end_ms);
    let revision = if granularity == Granularity::Minutes15 && !partial {
        revisions.get(&period.start_ms).copied().unwrap_or(0)
    } else {
        0
    };
    pb::Period {
        start: Some(wire_time(period.start_ms)),
        end: Some(wire_time(period.end_ms)),
        local_start: period.start.clone(),
        date: period.date.clone(),
        intervals: period.intervals,
        through: period.through_ms.map(wire_time),
        settled: period.settled,
        partial,
        revision,
        flow: period.flow.as_ref().map(flow_to_wire),
        handling: Some(handling_to_wire(&period.handling)),
        times: period.times.as_ref().map(times_to_wire),
        members: period.members,
        sl_variant: sl_variant_to_wire(period.sl_variant),
        sl_threshold: period.sl_threshold_s,
        sl_target: period.sl_target,
        indicators: Some(indicators_to_wire(&period.indicators)),
    }
}

fn row_to_wire(row: &TimesheetRow) -> pb::TimesheetRow {
    pb::TimesheetRow {
        date: row.date.clone(),
        advisor: row.advisor.clone(),
        name: row.name.clone(),
        team: row.team.clone(),
        first_login: row.first_login_ms.map(wire_time),
        last_logout: row.last_logout_ms.map(wire_time),
        logged_in: seconds(row.logged_in_ms),
        available: seconds(row.available_ms),
        handling: seconds(row.handling_ms),
        talk: seconds(row.talk_ms),
        hold: seconds(row.hold_ms),
        acw: seconds(row.acw_ms),
        pause: seconds(row.pause_ms),
        pause_count: row.pause_count,
        pauses: pauses_to_wire(&row.pauses),
    }
}

/// The range of a `ListIntervals` call, `[from, to)` in ms since the epoch, from its instants
/// or dates (the current day by default), within the limit of its granularity.
fn interval_range(
    request: &pb::ListIntervalsRequest,
    facts: &SiteFacts,
    granularity: Granularity,
) -> Result<(i64, i64), Status> {
    let from = match (&request.from, request.from_date.as_str()) {
        (Some(_), date) if !date.is_empty() => {
            return Err(bad("from_date", "give either from or from_date, not both"));
        }
        (Some(from), _) => millis(from),
        (None, "") => facts.today.start.0,
        (None, date) => {
            let date = parse_date("from_date", date)?;
            facts.span(date, date).0
        }
    };
    let to = match (&request.to, request.to_date.as_str()) {
        (Some(_), date) if !date.is_empty() => {
            return Err(bad("to_date", "give either to or to_date, not both"));
        }
        (Some(to), _) => millis(to),
        (None, "") => facts.today.end.0,
        (None, date) => {
            let date = parse_date("to_date", date)?;
            facts.span(date, date).1
        }
    };
    if to <= from {
        return Err(bad("to", "the range is empty: `to` must come after `from`"));
    }
    let days = max_range_days(granularity);
    // An hour more for the 25-hour days of daylight-saving changes.
    if to - from > days * DAY_MS + HOUR_MS {
        return Err(bad(
            "to",
            format!(
                "the range is {:.1} days long; at most {days} days at granularity {}: \
                 shorten it or choose a longer period",
                (to - from) as f64 / DAY_MS as f64,
                granularity.as_str()
            ),
        ));
    }
    Ok((from, to))
}

/// The days of a timesheet, `[first, last]`, within [`MAX_TIMESHEET_DAYS`].
/// The site-local days `[from, to]` of a request (from: today when empty; to: from when
/// empty), at most [`MAX_TIMESHEET_DAYS`].
fn day_range(from: &str, to: &str, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), Status> {
    let first = if from.is_empty() {
        today
    } else {
        parse_date("from_date", from)?
    };
    let last = if to.is_empty() {
        first
    } else {
        parse_date("to_date", to)?
    };
    if last < first {
        return Err(bad(
            "to_date",
            format!("{last} is before from_date {first}"),
        ));
    }
    let days = (last - first).num_days() + 1;
    if days > MAX_TIMESHEET_DAYS {
        return Err(bad(
            "to_date",
            format!("at most {MAX_TIMESHEET_DAYS} days at once, asked for {days}"),
        ));
    }
    Ok((first, last))
}

/// The targets a team's day is judged by: its campaign queues' (the defaults without any);
/// when the queues differ, the strictest of each.
fn team_targets(site: &SiteProcessor, team: &str) -> ReportTargets {
    let queues: Vec<String> = site
        .site()
        .teams
        .iter()
        .find(|t| t.id == team)
        .map(|t| t.queues.clone())
        .unwrap_or_default();
    let targets: Vec<pb::QueueTargets> = if queues.is_empty() {
        vec![read::targets(site, "")]
    } else {
        queues.iter().map(|q| read::targets(site, q)).collect()
    };
    ReportTargets {
        sl_target: targets.iter().map(|t| t.sl_target).fold(0.0, f64::max),
        sl_threshold_s: targets
            .iter()
            .map(|t| t.sl_threshold)
            .fold(f64::INFINITY, f64::min),
        aht_target_s: targets.iter().filter_map(|t| t.aht_target).reduce(f64::min),
        abandon_threshold: None,
    }
}

/// A value in its unit, for a sentence.
fn with_unit(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => format!("{value:.0} s"),
        Unit::Fraction => format!("{:.0}%", value * 100.0),
        Unit::Count => format!("{value:.0}"),
    }
}

/// An alert of the day as the report shows it; `None` for an alert that never fired.
fn report_alert(alert: &Alert) -> Option<ReportAlert> {
    let fired_at = alert
        .history
        .iter()
        .find(|t| t.kind == TransitionKind::Fired)
        .map(|t| t.at)
        // Its firing may be among the transitions dropped to keep the history bounded.
        .or_else(|| {
            matches!(alert.state, AlertState::Firing | AlertState::Resolved)
                .then_some(alert.since)
                .flatten()
        })?;
    let critical = alert
        .history
        .iter()
        .map(|t| t.severity)
        .chain([alert.severity])
        .any(|s| s == Some(Severity::Critical));
    let resolved_at = (alert.state == AlertState::Resolved)
        .then(|| {
            alert
                .history
                .iter()
                .rev()
                .find(|t| t.kind == TransitionKind::Resolved)
                .map(|t| t.at.0)
        })
        .flatten();
    let acknowledged_by = alert
        .acknowledged
        .as_ref()
        .map(|a| a.by.clone())
        .or_else(|| {
            alert
                .history
                .iter()
                .rev()
                .find(|t| t.kind == TransitionKind::Acknowledged)
                .and_then(|t| t.by.clone())
        });
    let mut message = format!(
        "{} {} {}",
        alert.metric.as_str(),
        alert.comparator.as_str(),
        with_unit(alert.threshold, alert.unit)
    );
    if let Some(value) = alert.value {
        message.push_str(&format!(" ({})", with_unit(value, alert.unit)));
    }
    Some(ReportAlert {
        rule: alert.rule_name.clone(),
        target: alert.target.id.clone(),
        severity: if critical {
            AlertSeverity::Critical
        } else {
            AlertSeverity::Warning
        },
        fired_at_ms: fired_at.0,
        resolved_at_ms: resolved_at,
        acknowledged_by,
        message,
    })
}

/// The alerts of a day (`records`) routed to `team` that the caller may read and that fired,
/// as the report shows them.
fn team_alerts(
    principal: &Principal,
    site: &SiteProcessor,
    records: &[AlertRecord],
    team: &str,
) -> Vec<ReportAlert> {
    records
        .iter()
        .filter(|record| record.teams.iter().any(|t| t == team))
        .filter(|record| may_read(principal, site, record.target_kind, &record.target_id))
        .filter_map(|record| report_alert(&record.to_alert().0))
        .collect()
}

/// Whether an alert of a day is one to list in its history: it had a transition that day.
fn has_transitions(record: &AlertRecord) -> bool {
    !record.history.is_empty() || record.history_dropped > 0
}

/// The alerts of the site's current day as the engine lists them now, as records of `date`
/// (none when the site's day is no longer `date`).
fn live_alerts(state: &EngineState, site: &str, date: NaiveDate) -> Vec<AlertRecord> {
    let (Some(processor), Some(engine)) = (state.processor.site(site), state.alerts.get(site))
    else {
        return Vec::new();
    };
    let now = processor.now();
    if processor.day_of(now).date != date {
        return Vec::new();
    }
    let reasons: BTreeMap<&str, Option<String>> = engine
        .rules()
        .map(|rule| (rule.id.as_str(), rule.reason.clone()))
        .collect();
    let date = date_text(date);
    engine
        .alerts()
        .iter()
        .map(|alert| {
            let reason = reasons.get(alert.rule.as_str()).cloned().flatten();
            AlertRecord::of(alert, reason, &date, now)
        })
        .collect()
}

/// A notice as the report shows it.
fn report_notice(notice: &Notice) -> ReportNotice {
    ReportNotice {
        text: notice.text.clone(),
        author: notice.posted_by.clone(),
        posted_at_ms: notice.posted_at.0,
        until_ms: Some(notice.expires_at.0),
        important: notice.level == NoticeLevel::Important,
    }
}

/// A file name made of ids: letters, digits, `-`, `_` and `.` kept, anything else `_`.
pub fn file_name_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a report needs of the engine, read in one query.
struct ReportFacts {
    facts: SiteFacts,
    site_name: Option<String>,
    team_name: Option<String>,
    targets: ReportTargets,
    current: Option<CurrentInterval>,
}

impl HistoryService {
    /// The service. Without an authenticator every caller is an anonymous admin (the server
    /// allows that only on loopback). Without a store ([`HistoryService::with_store`]), every
    /// call answers UNAVAILABLE.
    pub fn new(
        engine: EngineHandle,
        auth: Option<Arc<Authenticator>>,
        notices: NoticesService,
        metrics: ApiMetrics,
    ) -> HistoryService {
        HistoryService {
            engine,
            auth,
            store: None,
            notices,
            metrics,
            forwarding: Forwarding::default(),
        }
    }

    /// Sends the calls about sites processed elsewhere to their owner.
    pub fn with_forwarding(mut self, forwarding: Forwarding) -> HistoryService {
        self.forwarding = forwarding;
        self
    }

    /// The service reading `store`. The notices service it reads (and every clone of it, the
    /// one the API serves included) records notices there too, for the reports of later days.
    pub fn with_store(mut self, store: Arc<dyn HistoryStore>) -> HistoryService {
        self.notices.keep_history_in(store.clone());
        self.store = Some(store);
        self
    }

    /// The service reading today's notices from `notices` (the same service the API serves,
    /// so that both run on the same clock).
    pub fn with_notices(mut self, notices: NoticesService) -> HistoryService {
        self.notices = notices;
        self
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        crate::service::authenticate(self.auth.as_deref(), request)
    }

    fn store(&self) -> Result<&dyn HistoryStore, Status> {
        self.store
            .as_deref()
            .ok_or_else(|| Status::unavailable("this server keeps no interval history"))
    }

    fn count<R>(&self, method: &'static str, result: Result<R, Status>) -> Result<R, Status> {
        self.metrics.counted(method, result)
    }

    /// Runs a read on the engine's task.
    async fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&EngineState) -> Result<R, Status> + Send + 'static,
    ) -> Result<R, Status> {
        crate::service::query_engine(&self.engine, read).await
    }

    /// The records of the interval in progress: those of `current` as they are, or, when they
    /// run from the day start, less what the store holds of each scope's earlier intervals.
    async fn finish_current(
        &self,
        site: &str,
        current: CurrentInterval,
    ) -> Result<Vec<IntervalRecord>, Status> {
        let CurrentInterval {
            start_ms,
            end_ms,
            day_start_ms,
            records,
            since_day_start,
            closing,
        } = current;
        let store = self.store()?;
        // What the store holds of each record's scope, from the day start to the interval's.
        let stored_before = async |records: &[IntervalRecord]| {
            try_join_all(records.iter().map(|record| {
                store.query(
                    site,
                    record.key.kind,
                    &record.key.id,
                    day_start_ms,
                    start_ms,
                )
            }))
            .await
            .map_err(store_error)
        };
        let mut finished = if since_day_start {
            let earlier = stored_before(&records).await?;
            records
                .into_iter()
                .zip(earlier)
                .map(|(record, before)| take_off(record, &before, start_ms, end_ms))
                .collect()
        } else {
            records
        };
        // The interval that just closed, for the scopes whose record is not stored yet: the
        // day so far at its end, less what the store holds before it.
        let closed_start = start_ms - INTERVAL_LENGTH.0;
        let earlier = stored_before(&closing).await?;
        finished.extend(
            closing
                .into_iter()
                .zip(earlier)
                .filter(|(_, before)| before.iter().all(|r| r.key.start_ms != closed_start))
                .map(|(record, before)| take_off(record, &before, closed_start, start_ms))
                // As the engine publishes them: a scope idle over the interval has no record.
                .filter(|record| !record.is_empty()),
        );
        Ok(finished)
    }

    async fn list_intervals_in(
        &self,
        request: Request<pb::ListIntervalsRequest>,
    ) -> Result<pb::ListIntervalsResponse, Status> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        required("site", &request.site)?;
        let scope = scope_from_wire(&request.site, request.scope.clone())?;
        let granularity = granularity_from_wire(request.granularity)?;
        let store = self.store()?;
        let (site, wanted, include_current) =
            (request.site.clone(), scope.clone(), request.include_current);
        let (facts, time_zone, current) = self
            .query(move |state| {
                let processor = read::site(state, &principal, &site)?;
                if !may_read_scope(&principal, processor, &wanted) {
                    return Err(permission_denied());
                }
                let current = include_current
                    .then(|| {
                        current_interval(processor, |r| {
                            r.key.kind == wanted.kind && r.key.id == wanted.id
                        })
                    })
                    .flatten();
                Ok((
                    SiteFacts::of(processor),
                    processor.site().time_zone.clone(),
                    current,
                ))
            })
            .await?;
        let (from, to) = interval_range(&request, &facts, granularity)?;
        let mut records = store
            .query(&request.site, scope.kind, &scope.id, from, to)
            .await
            .map_err(store_error)?;
        let current = current.filter(|c| from <= c.start_ms && c.start_ms < to);
        let current_start = current.as_ref().map(|c| c.start_ms);
        if let Some(current) = current {
            let start = current.start_ms;
            records.retain(|r| r.key.start_ms != start);
            let finished = self.finish_current(&request.site, current).await?;
            records.extend(finished.into_iter().filter(|r| r.key.start_ms >= from));
        }
        let revisions: BTreeMap<i64, u32> = records
            .iter()
            .map(|r| (r.key.start_ms, r.revision))
            .collect();
        let mut options = facts.options(granularity);
        if request.fill_empty {
            options = options.zero_filled(Fill::Span {
                from_ms: from,
                to_ms: to,
            });
        }
        let periods = aggregate(scope.kind, &records, &options)
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(pb::ListIntervalsResponse {
            site: request.site,
            scope: Some(pb::HistoryScope {
                kind: scope_kind_to_wire(scope.kind).into(),
                id: scope.id,
            }),
            granularity: granularity_to_wire(granularity).into(),
            time_zone,
            from: Some(wire_time(from)),
            to: Some(wire_time(to)),
            periods: periods
                .iter()
                .map(|p| period_to_wire(p, granularity, current_start, &revisions))
                .collect(),
            as_of: current_start.map(|_| convert::timestamp(facts.now)),
        })
    }

    async fn get_timesheet_in(
        &self,
        request: Request<pb::GetTimesheetRequest>,
    ) -> Result<pb::GetTimesheetResponse, Status> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        required("site", &request.site)?;
        let format = pb::TimesheetFormat::try_from(request.format)
            .map_err(|_| bad("format", format!("unknown value {}", request.format)))?;
        let team = request.team.clone();
        // An advisor reads their own rows only, whatever they ask for.
        let advisor = match (&principal.role, &principal.advisor, &request.advisor) {
            (Role::Advisor, Some(own), None) => Some(own.clone()),
            (_, _, asked) => asked.clone(),
        };
        if team.is_empty() && advisor.is_none() {
            return Err(bad("team", "required unless advisor is given"));
        }
        if let Some(advisor) = &advisor {
            required("advisor", advisor)?;
        }
        let store = self.store()?;
        let (site, wanted_team, wanted_advisor, include_current) = (
            request.site.clone(),
            team.clone(),
            advisor.clone(),
            request.include_current,
        );
        let (facts, time_zone, current) = self
            .query(move |state| {
                let processor = read::site(state, &principal, &site)?;
                let allowed = match &wanted_advisor {
                    Some(advisor) => {
                        principal.may_read_advisor(&site, advisor, processor.advisor_team(advisor))
                    }
                    None => principal.may_read_team(&site, &wanted_team),
                };
                if !allowed {
                    return Err(permission_denied());
                }
                let current = include_current
                    .then(|| {
                        current_interval(processor, |r| {
                            r.key.kind == ScopeKind::Advisor
                                && wanted_advisor.as_ref().is_none_or(|a| *a == r.key.id)
                                && (wanted_team.is_empty()
                                    || r.team.as_deref() == Some(wanted_team.as_str()))
                        })
                    })
                    .flatten();
                Ok((
                    SiteFacts::of(processor),
                    processor.site().time_zone.clone(),
                    current,
                ))
            })
            .await?;
        let (first, last) = day_range(&request.from_date, &request.to_date, facts.today.date)?;
        let (from, to) = facts.span(first, last);
        let mut records = match &advisor {
            Some(advisor) => {
                let mut own = store
                    .query(&request.site, ScopeKind::Advisor, advisor, from, to)
                    .await
                    .map_err(store_error)?;
                if !team.is_empty() {
                    own.retain(|r| r.team.as_deref() == Some(team.as_str()));
                }
                own
            }
            None => store
                .team_advisors(&request.site, &team, from, to)
                .await
                .map_err(store_error)?,
        };
        let current = current.filter(|c| from <= c.start_ms && c.start_ms < to);
        let partial = current.is_some();
        if let Some(current) = current {
            let start = current.start_ms;
            records.retain(|r| r.key.start_ms < start);
            records.extend(self.finish_current(&request.site, current).await?);
        }
        let rows = timesheet::timesheets(&records, first, last);
        let zone = facts.calendar.zone();
        let (rows, content, content_type) = match format {
            pb::TimesheetFormat::Unspecified | pb::TimesheetFormat::Rows => {
                (rows.iter().map(row_to_wire).collect(), String::new(), "")
            }
            pb::TimesheetFormat::Csv => (
                Vec::new(),
                timesheet::to_csv(&rows, zone),
                "text/csv; charset=utf-8",
            ),
            pb::TimesheetFormat::Json => (
                Vec::new(),
                timesheet::to_json(&rows, zone),
                "application/json",
            ),
        };
        Ok(pb::GetTimesheetResponse {
            site: request.site,
            team,
            from_date: date_text(first),
            to_date: date_text(last),
            time_zone,
            rows,
            content,
            content_type: content_type.to_owned(),
            partial,
        })
    }

    /// The notices in force for `team`, read as the caller would with `ListNotices` (the same
    /// scope, the same clock). A team the site no longer lists has none.
    async fn notices_in_force(
        &self,
        principal: &Principal,
        site: &str,
        team: &str,
    ) -> Result<Vec<ReportNotice>, Status> {
        match self.notices.in_force_for_team(principal, site, team).await {
            Ok(notices) => Ok(notices.iter().map(report_notice).collect()),
            Err(status) if status.code() == Code::InvalidArgument => Ok(Vec::new()),
            Err(status) => Err(status),
        }
    }

    /// The notices recorded for `team` on an earlier day: the team's and the site-wide ones
    /// shown at some instant of the day's span `[from_ms, to_ms)`, newest first.
    async fn notices_of_day(
        &self,
        site: &str,
        team: &str,
        date: NaiveDate,
        (from_ms, to_ms): (i64, i64),
    ) -> Result<Vec<ReportNotice>, Status> {
        let records = self
            .store()?
            .day_notices(site, &date_text(date))
            .await
            .map_err(store_error)?;
        Ok(records
            .iter()
            .filter(|record| record.notice.is_for(team) && record.shown_during(from_ms, to_ms))
            .map(|record| report_notice(&record.notice))
            .collect())
    }

    /// The alerts of `date` at `site`, every one (the caller's scope is applied after), by id:
    /// for an earlier day what the store keeps; for the current day, the store's records
    /// merged with the engine's alerts ([`merge_alert`], each stored record standing up to its
    /// `as_of_ms`), so that what was stored before a restart is still listed. Without a store,
    /// the current day is the engine's alone and an earlier day is UNAVAILABLE.
    async fn alerts_of_day(
        &self,
        site: &str,
        date: NaiveDate,
        today: NaiveDate,
    ) -> Result<Vec<AlertRecord>, Status> {
        let stored = match (&self.store, date == today) {
            (Some(store), _) => store
                .day_alerts(site, &date_text(date))
                .await
                .map_err(store_error)?,
            (None, true) => Vec::new(),
            (None, false) => {
                return Err(Status::unavailable(
                    "this server keeps no history: only the current day's alerts are known",
                ));
            }
        };
        let mut alerts: BTreeMap<String, AlertRecord> = stored
            .into_iter()
            .map(|record| (record.id.clone(), record))
            .collect();
        if date == today {
            let wanted = site.to_owned();
            let live = self
                .query(move |state| Ok(live_alerts(state, &wanted, date)))
                .await?;
            for record in live {
                let stored = alerts.remove(&record.id);
                let carried = stored.as_ref().map(|s| s.as_of_ms);
                let merged = merge_alert(stored.as_ref(), record, carried);
                alerts.insert(merged.id.clone(), merged);
            }
        }
        Ok(alerts.into_values().filter(has_transitions).collect())
    }

    async fn get_report_in(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<pb::GetReportResponse, Status> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        required("site", &request.site)?;
        required("team", &request.team)?;
        let format = pb::ReportFormat::try_from(request.format)
            .map_err(|_| bad("format", format!("unknown value {}", request.format)))?;
        let language = if request.language.is_empty() {
            Language::En
        } else {
            Language::from_str(&request.language).map_err(|problem| bad("language", problem))?
        };
        let asked = (!request.date.is_empty())
            .then(|| parse_date("date", &request.date))
            .transpose()?;
        let store = self.store()?;
        let (site, team, caller) = (
            request.site.clone(),
            request.team.clone(),
            principal.clone(),
        );
        let report = self
            .query(move |state| {
                let processor = read::site(state, &principal, &site)?;
                if !principal.may_read_team(&site, &team) {
                    return Err(permission_denied());
                }
                let facts = SiteFacts::of(processor);
                let today = asked.is_none_or(|date| date == facts.today.date);
                let current = if today {
                    current_interval(processor, |r| match r.key.kind {
                        ScopeKind::Team => r.key.id == team,
                        ScopeKind::Advisor => r.team.as_deref() == Some(team.as_str()),
                        ScopeKind::Site | ScopeKind::Queue => false,
                    })
                } else {
                    None
                };
                Ok(ReportFacts {
                    facts,
                    site_name: processor.site().name.clone(),
                    team_name: processor
                        .site()
                        .teams
                        .iter()
                        .find(|t| t.id == team)
                        .and_then(|t| t.name.clone()),
                    targets: team_targets(processor, &team),
                    current,
                })
            })
            .await?;
        let facts = report.facts;
        let date = asked.unwrap_or(facts.today.date);
        let today = date == facts.today.date;
        let (from, to) = facts.span(date, date);
        let (team_records, advisor_records) = futures::try_join!(
            store.query(&request.site, ScopeKind::Team, &request.team, from, to),
            store.team_advisors(&request.site, &request.team, from, to),
        )
        .map_err(store_error)?;
        let mut records: Vec<IntervalRecord> =
            team_records.into_iter().chain(advisor_records).collect();
        let partial = report.current.is_some();
        if let Some(current) = report.current {
            let start = current.start_ms;
            records.retain(|r| r.key.start_ms < start);
            records.extend(self.finish_current(&request.site, current).await?);
        }
        // The day's alerts as the history keeps them, in the caller's scope, with the site's
        // teams as they are now.
        let day_alerts = self
            .alerts_of_day(&request.site, date, facts.today.date)
            .await?;
        let (site, team, reader) = (request.site.clone(), request.team.clone(), caller.clone());
        let alerts = self
            .query(move |state| {
                let processor = read::site(state, &reader, &site)?;
                Ok(team_alerts(&reader, processor, &day_alerts, &team))
            })
            .await?;
        let notices = if today {
            self.notices_in_force(&caller, &request.site, &request.team)
                .await?
        } else {
            self.notices_of_day(&request.site, &request.team, date, (from, to))
                .await?
        };
        let advisors = timesheet::timesheets(&records, date, date);
        let input = ReportInput {
            site_id: request.site.clone(),
            site_name: report.site_name,
            team_id: request.team.clone(),
            team_name: report.team_name,
            date,
            zone: facts.calendar.zone(),
            day_start: facts.day_start,
            language,
            records,
            advisors,
            targets: report.targets,
            alerts,
            notices,
        };
        let (extension, content_type) = match format {
            pb::ReportFormat::Unspecified | pb::ReportFormat::Html => {
                ("html", "text/html; charset=utf-8")
            }
            pb::ReportFormat::Markdown => ("md", "text/markdown; charset=utf-8"),
            pb::ReportFormat::Csv => ("csv", "text/csv; charset=utf-8"),
        };
        // Charts and tables take a few milliseconds: off the runtime's threads.
        let content = tokio::task::spawn_blocking(move || match extension {
            "md" => vigie_history::render_markdown(&input),
            "csv" => vigie_history::render_csv(&input),
            _ => vigie_history::render_html(&input),
        })
        .await
        .map_err(|error| Status::internal(format!("the report could not be rendered: {error}")))?;
        let date = date_text(date);
        Ok(pb::GetReportResponse {
            content: content.into_bytes(),
            content_type: content_type.to_owned(),
            file_name: format!(
                "report-{}-{date}.{extension}",
                file_name_part(&request.team)
            ),
            date,
            partial,
        })
    }

    async fn list_alert_history_in(
        &self,
        request: Request<pb::ListAlertHistoryRequest>,
    ) -> Result<pb::ListAlertHistoryResponse, Status> {
        let principal = self.principal(&request)?;
        let pb::ListAlertHistoryRequest { site, date } = request.into_inner();
        required("site", &site)?;
        let asked = (!date.is_empty())
            .then(|| parse_date("date", &date))
            .transpose()?;
        // The site's existence and the caller's reach first: the same answer whether the day
        // has alerts or not.
        let (wanted, caller) = (site.clone(), principal.clone());
        let today = self
            .query(move |state| {
                let processor = read::site(state, &caller, &wanted)?;
                Ok(processor.day_of(processor.now()).date)
            })
            .await?;
        let date = asked.unwrap_or(today);
        let records = self.alerts_of_day(&site, date, today).await?;
        self.query(move |state| {
            let processor = read::site(state, &principal, &site)?;
            let alerts = records
                .iter()
                .filter(|record| {
                    may_read(&principal, processor, record.target_kind, &record.target_id)
                })
                .map(|record| {
                    let (alert, reason) = record.to_alert();
                    alert_to_wire(&alert, reason)
                })
                .collect();
            Ok(pb::ListAlertHistoryResponse {
                date: date_text(date),
                alerts,
                as_of: Some(convert::timestamp(processor.now())),
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl History for HistoryService {
    async fn list_intervals(
        &self,
        request: Request<pb::ListIntervalsRequest>,
    ) -> Result<Response<pb::ListIntervalsResponse>, Status> {
        let result = self
            .forwarding
            .or_here(&self.engine, request, |request| {
                self.list_intervals_in(request)
            })
            .await;
        self.count("ListIntervals", result).map(Response::new)
    }

    async fn get_timesheet(
        &self,
        request: Request<pb::GetTimesheetRequest>,
    ) -> Result<Response<pb::GetTimesheetResponse>, Status> {
        let result = self
            .forwarding
            .or_here(&self.engine, request, |request| {
                self.get_timesheet_in(request)
            })
            .await;
        self.count("GetTimesheet", result).map(Response::new)
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let result = self
            .forwarding
            .or_here(&self.engine, request, |request| self.get_report_in(request))
            .await;
        self.count("GetReport", result).map(Response::new)
    }

    async fn list_alert_history(
        &self,
        request: Request<pb::ListAlertHistoryRequest>,
    ) -> Result<Response<pb::ListAlertHistoryResponse>, Status> {
        let result = self
            .forwarding
            .or_here(&self.engine, request, |request| {
                self.list_alert_history_in(request)
            })
            .await;
        self.count("ListAlertHistory", result).map(Response::new)
    }

    async fn list_abandoned_contacts(
        &self,
        request: Request<pb::ListAbandonedContactsRequest>,
    ) -> Result<Response<pb::ListAbandonedContactsResponse>, Status> {
        let result = self
            .forwarding
            .or_here(&self.engine, request, |request| {
                self.list_abandoned_contacts_in(request)
            })
            .await;
        self.count("ListAbandonedContacts", result)
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vigie_core::{
        DEFAULT_MAX_EVENT_BYTES, Outcome, ProcessingConfig, SiteConfig, TeamConfig, decode_json,
    };

    use super::*;
    use vigie_history::RecordKey;

    fn at(time: &str) -> Timestamp {
        Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).unwrap()
    }

    fn apply(site: &mut SiteProcessor, n: usize, time: &str, body: &str) {
        let json = format!(r#"{{"id":"e{n}","time":"2026-03-02T{time}Z","site":"s",{body}}}"#);
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(site.apply(&event), Outcome::Applied, "{json}");
    }

    fn contact(kind: &str, contact: &str, advisor: &str) -> String {
        format!(
            r#""type":"contact.{kind}","contact":"{contact}","queue":"q","channel":"voice","advisor":"{advisor}""#
        )
    }

    /// A morning up to 09:15:10: two advisors of team t, a break, contacts in every quarter.
    fn morning() -> SiteProcessor {
        let config = SiteConfig {
            teams: vec![TeamConfig {
                id: "t".into(),
                name: None,
                advisors: vec!["a".into(), "b".into()],
                queues: vec!["q".into()],
                sl_variant: None,
            }],
            ..SiteConfig::with_defaults("s")
        };
        let mut site = SiteProcessor::new(config, &ProcessingConfig::default());
        site.enable_interval_totals();
        let events = [
            (
                "08:30:00",
                r#""type":"advisor.login","advisor":"a","team":"t""#.to_owned(),
            ),
            (
                "08:31:00",
                r#""type":"advisor.login","advisor":"b","team":"t""#.to_owned(),
            ),
            ("08:40:00", contact("queued", "c1", "a")),
            ("08:40:10", contact("answered", "c1", "a")),
            ("08:47:00", contact("ended", "c1", "a")),
            ("08:48:00", contact("completed", "c1", "a")),
            (
                "08:50:00",
                r#""type":"advisor.state","advisor":"b","state":"pause","reason":"break""#
                    .to_owned(),
            ),
            ("09:02:00", contact("queued", "c2", "a")),
            ("09:02:40", contact("answered", "c2", "a")),
            (
                "09:05:00",
                r#""type":"advisor.state","advisor":"b","state":"available""#.to_owned(),
            ),
            ("09:09:00", contact("ended", "c2", "a")),
            ("09:11:00", contact("completed", "c2", "a")),
            ("09:12:00", contact("queued", "c3", "b")),
            ("09:15:02", contact("answered", "c3", "b")),
            ("09:15:10", contact("queued", "c4", "b")),
        ];
        for (n, (time, body)) in events.iter().enumerate() {
            apply(&mut site, n, time, body);
        }
        site.advance_to(at("09:15:20"));
        site
    }

    /// What the store holds at 09:15:20: the final records up to 09:00, and the interval
    /// 09:00-09:15 as it stood at its close.
    fn stored(site: &mut SiteProcessor) -> Vec<IntervalRecord> {
        let mut records = Vec::new();
        let mut previous = None;
        for totals in site.take_interval_totals() {
            records.extend(interval_records(previous.as_ref(), &totals, 1, true));
            previous = Some(totals);
        }
        let base = previous.unwrap();
        assert_eq!(base.at, at("09:00:00"), "final up to 09:00");
        let close = site.totals_at(at("09:15:00")).unwrap();
        records.extend(interval_records(Some(&base), &close, 1, false));
        records
    }

    #[test]
    fn the_day_so_far_less_the_stored_intervals_is_the_interval_in_progress() {
        let mut site = morning();
        let stored = stored(&mut site);
        let exact = current_interval(&site, |_| true).unwrap();
        assert!(
            !exact.since_day_start,
            "the totals at 09:15 can still be computed"
        );
        assert_eq!(
            (exact.start_ms, exact.end_ms),
            (at("09:15:00").0, at("09:15:20").0)
        );
        let totals = site.totals_at(at("09:15:20")).unwrap();
        let day_so_far = interval_records(None, &totals, 0, false);
        assert_eq!(day_so_far.len(), exact.records.len());
        let mut compared = 0;
        for (whole, expected) in day_so_far.into_iter().zip(&exact.records) {
            assert_eq!(
                whole.key,
                RecordKey {
                    start_ms: whole.key.start_ms,
                    ..expected.key.clone()
                }
            );
            let before: Vec<IntervalRecord> = stored
                .iter()
                .filter(|r| r.key.kind == whole.key.kind && r.key.id == whole.key.id)
                .cloned()
                .collect();
            let derived = take_off(whole, &before, exact.start_ms, exact.end_ms);
            assert_eq!(derived.flow, expected.flow, "{:?}", expected.key);
            assert_eq!(derived.handling, expected.handling, "{:?}", expected.key);
            assert_eq!(derived.times, expected.times, "{:?}", expected.key);
            assert_eq!(derived.key, expected.key);
            compared += 1;
        }
        assert!(
            compared >= 5,
            "site, queue, team and two advisors: {compared}"
        );
        let queue = exact
            .records
            .iter()
            .find(|r| r.key.kind == ScopeKind::Queue)
            .unwrap();
        assert_eq!(queue.flow.unwrap().answered, 1, "c3, answered at 09:15:02");
    }

    #[test]
    fn once_the_start_is_folded_the_day_so_far_is_given_to_take_off() {
        let mut site = morning();
        apply(&mut site, 100, "09:20:00", &contact("answered", "c4", "b"));
        apply(&mut site, 101, "09:21:00", &contact("queued", "c5", "a"));
        site.advance_to(at("09:21:30"));
        let current = current_interval(&site, |r| r.key.kind == ScopeKind::Queue).unwrap();
        assert!(current.since_day_start, "the queue settled past 09:15");
        assert_eq!(current.day_start_ms, at("00:00:00").0);
        let record = &current.records[0];
        assert_eq!(record.key.start_ms, at("00:00:00").0, "the day so far");
        assert_eq!(
            record.flow.unwrap().answered,
            4,
            "c1 to c4 since the day start"
        );
    }

    #[test]
    fn negative_differences_count_as_zero_and_logins_before_the_interval_are_dropped() {
        let record = |answered: u64, talk_ms: i64, first_login: Option<i64>| IntervalRecord {
            revision: 1,
            settled: true,
            team: Some("t".into()),
            flow: Some(FlowRecord {
                answered,
                ..FlowRecord::default()
            }),
            handling: HandlingRecord {
                talk_ms,
                ..HandlingRecord::default()
            },
            times: Some(TimeRecord {
                logged_in_ms: talk_ms,
                pauses: vec![PauseRecord {
                    reason: "break".into(),
                    time_ms: 1000,
                    count: 1,
                }],
                first_login_ms: first_login,
                ..TimeRecord::default()
            }),
            ..IntervalRecord::new(
                vigie_history::RecordKey {
                    site: "s".into(),
                    kind: ScopeKind::Advisor,
                    id: "a".into(),
                    start_ms: 0,
                },
                INTERVAL_LENGTH.0,
                "1970-01-01",
            )
        };
        let whole = record(2, 5000, Some(10));
        let before = [record(3, 2000, Some(10))];
        let start = INTERVAL_LENGTH.0;
        let current = take_off(whole, &before, start, start + 60_000);
        assert_eq!(current.flow.unwrap().answered, 0);
        assert_eq!(current.handling.talk_ms, 3000);
        let times = current.times.unwrap();
        assert_eq!(times.logged_in_ms, 3000);
        assert!(times.pauses.is_empty(), "no pause left in the interval");
        assert_eq!(times.first_login_ms, None, "logged in before the interval");
        assert_eq!(
            (current.key.start_ms, current.end_ms),
            (start, start + 60_000)
        );
    }

    #[test]
    fn report_files_are_named_after_safe_ids() {
        assert_eq!(file_name_part("team-a"), "team-a");
        assert_eq!(file_name_part("../équipe bleue"), ".._équipe_bleue");
    }
}
