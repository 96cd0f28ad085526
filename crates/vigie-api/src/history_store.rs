//! Where interval history is kept: the [`HistoryStore`] the History API reads and the engine's
//! publisher writes, an in-process [`MemoryHistory`] for the embedded demo, and the pure rules
//! every store shares (which record a read returns, which records it selects).
//!
//! A record is identified by its [`RecordKey`] (site, scope kind, id, interval start); a
//! correction publishes the same key again with `revision + 1`, and every read returns only the
//! highest revision of each key. The binary implements the store over NATS JetStream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use vigie_alerts::{
    Acknowledgement, Alert, AlertState, Cause, Comparator, Metric, Severity, Silence, Target,
    TargetKind, Transition, TransitionKind, Unit,
};
use vigie_core::{Timestamp, Window};
use vigie_history::{IntervalRecord, RecordKey, ScopeKind};

use crate::notices::Notice;

/// A history store failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store cannot be reached, or did not answer in time: trying again later may work.
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
    /// A record cannot be stored as it is (nothing of the batch was stored).
    #[error("interval record {key} refused: {reason}")]
    BadRecord {
        /// The record's key, `site/kind/id/start_ms`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A read asked for something that cannot be answered (a date that is not a date).
    #[error("invalid history query: {0}")]
    InvalidQuery(String),
    /// The store is set up in a way Vigie cannot use (a stream of the same name capturing
    /// other subjects, settings the server refuses).
    #[error("the history store is misconfigured: {0}")]
    Misconfigured(String),
}

/// Where interval records are kept, and read back by day, by scope or by team.
///
/// Every read returns the highest revision of each key only, in key order (kind, id, interval
/// start); a record published twice is returned once.
pub trait HistoryStore: Send + Sync + std::fmt::Debug {
    /// Stores the records; resolves once every one of them is stored. Records are checked
    /// first ([`validate_record`]) and none is stored when one is refused. Publishing the same
    /// records again is harmless, so a failed call can simply be repeated.
    fn publish<'a>(
        &'a self,
        records: Vec<IntervalRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>>;

    /// Every record of a site-local day (`date` is `YYYY-MM-DD`, as in the records): the
    /// site's, its queues', teams' and advisors' intervals.
    fn day<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>>;

    /// The records of one scope whose interval starts in `[from_ms, to_ms)` (ms since the
    /// epoch), sorted by start.
    fn query<'a>(
        &'a self,
        site: &'a str,
        kind: ScopeKind,
        id: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>>;

    /// The records of the advisors of a team (records whose `team` is `team`) whose interval
    /// starts in `[from_ms, to_ms)`, by advisor then start.
    fn team_advisors<'a>(
        &'a self,
        site: &'a str,
        team: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>>;

    /// Stores the state of alerts of site-local days, one record per site, date and alert id:
    /// a record replaces the one stored before for its key. Records are checked first
    /// ([`AlertRecord::validate`]) and none is stored when one is refused.
    fn publish_alerts<'a>(
        &'a self,
        records: Vec<AlertRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>>;

    /// The alerts stored for a site-local day (`date` is `YYYY-MM-DD`), by id.
    fn day_alerts<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AlertRecord>, HistoryError>>;

    /// Stores notices of site-local days, one record per site, date and notice id (a notice
    /// in force over several days has one for each): a record replaces the one stored before
    /// for its key (a withdrawal rewrites the notice's days). Checked first
    /// ([`NoticeRecord::validate`]); none is stored when one is refused.
    fn publish_notices<'a>(
        &'a self,
        records: Vec<NoticeRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>>;

    /// The notices stored for a site-local day, newest first.
    fn day_notices<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NoticeRecord>, HistoryError>>;
}

/// A key as messages show it: `site/kind/id/start_ms`.
pub fn describe_key(key: &RecordKey) -> String {
    format!(
        "{}/{}/{}/{}",
        key.site,
        key.kind.as_str(),
        key.id,
        key.start_ms
    )
}

/// The widest time-zone offsets in use (UTC+14, Kiribati; UTC-12): a site-local date starts at
/// the earliest 14 hours before that date's midnight in UTC.
const MAX_EAST_OFFSET_MS: i64 = 14 * 3_600_000;

/// Parses a site-local date, `YYYY-MM-DD`.
pub fn parse_date(date: &str) -> Result<NaiveDate, HistoryError> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        // `%Y` takes signs and more digits; a record's date is always written the short way.
        .filter(|parsed| parsed.format("%Y-%m-%d").to_string() == date)
        .ok_or_else(|| HistoryError::InvalidQuery(format!("date {date:?} is not YYYY-MM-DD")))
}

/// The earliest instant (ms since the epoch) at which a site-local day named `date` can start,
/// whatever the site's time zone and day start: midnight at UTC+14 (a day never starts before
/// its date's midnight, since `day_start` is a time of that date).
pub fn earliest_day_start_ms(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis() - MAX_EAST_OFFSET_MS
}

/// Checks that a record can be stored and read back: a site and an id, an interval that ends
/// after it starts, a date `YYYY-MM-DD` whose day can contain the interval's start (reads by
/// day rely on it).
pub fn validate_record(record: &IntervalRecord) -> Result<(), HistoryError> {
    let refuse = |reason: String| HistoryError::BadRecord {
        key: describe_key(&record.key),
        reason,
    };
    if record.key.site.is_empty() {
        return Err(refuse("the site id is empty".to_owned()));
    }
    if record.key.id.is_empty() {
        return Err(refuse("the scope id is empty".to_owned()));
    }
    if record.end_ms <= record.key.start_ms {
        return Err(refuse(format!(
            "end_ms {} is not after start_ms {}",
            record.end_ms, record.key.start_ms
        )));
    }
    let date = parse_date(&record.date)
        .map_err(|_| refuse(format!("date {:?} is not YYYY-MM-DD", record.date)))?;
    if record.key.start_ms < earliest_day_start_ms(date) {
        return Err(refuse(format!(
            "the interval starts before any day named {} can start",
            record.date
        )));
    }
    Ok(())
}

/// Whether a record's interval starts in `[from_ms, to_ms)`.
pub fn starts_in(record: &IntervalRecord, from_ms: i64, to_ms: i64) -> bool {
    from_ms <= record.key.start_ms && record.key.start_ms < to_ms
}

/// What a read asks for, as data: each store decides where to look, and keeps the records
/// [`Selection::matches`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Every record of a site-local day.
    Day {
        /// The site.
        site: &'a str,
        /// The site-local date, `YYYY-MM-DD`.
        date: &'a str,
    },
    /// One scope's records starting in `[from_ms, to_ms)`.
    Scope {
        /// The site.
        site: &'a str,
        /// The scope's kind.
        kind: ScopeKind,
        /// The scope's id.
        id: &'a str,
        /// First start included, ms since the epoch.
        from_ms: i64,
        /// First start excluded, ms since the epoch.
        to_ms: i64,
    },
    /// A team's advisors' records starting in `[from_ms, to_ms)`.
    TeamAdvisors {
        /// The site.
        site: &'a str,
        /// The team.
        team: &'a str,
        /// First start included, ms since the epoch.
        from_ms: i64,
        /// First start excluded, ms since the epoch.
        to_ms: i64,
    },
}

impl Selection<'_> {
    /// The site read.
    pub fn site(&self) -> &str {
        match self {
            Selection::Day { site, .. }
            | Selection::Scope { site, .. }
            | Selection::TeamAdvisors { site, .. } => site,
        }
    }

    /// Checks the request (the date of a day); an empty range is valid and selects nothing.
    pub fn validate(&self) -> Result<(), HistoryError> {
        match self {
            Selection::Day { date, .. } => parse_date(date).map(|_| ()),
            Selection::Scope { .. } | Selection::TeamAdvisors { .. } => Ok(()),
        }
    }

    /// Whether nothing can match (an empty or reversed range): stores answer at once.
    pub fn is_empty(&self) -> bool {
        match *self {
            Selection::Day { .. } => false,
            Selection::Scope { from_ms, to_ms, .. }
            | Selection::TeamAdvisors { from_ms, to_ms, .. } => from_ms >= to_ms,
        }
    }

    /// Whether advisor records can match (they are kept apart, with a shorter retention).
    pub fn wants_advisors(&self) -> bool {
        match self {
            Selection::Day { .. } | Selection::TeamAdvisors { .. } => true,
            Selection::Scope { kind, .. } => *kind == ScopeKind::Advisor,
        }
    }

    /// Whether site, queue or team records can match.
    pub fn wants_scopes(&self) -> bool {
        match self {
            Selection::Day { .. } => true,
            Selection::TeamAdvisors { .. } => false,
            Selection::Scope { kind, .. } => *kind != ScopeKind::Advisor,
        }
    }

    /// The earliest instant (ms since the epoch) a matching record can have been published:
    /// records are published once their interval has ended, so never before the range's start
    /// (or, for a day, before the earliest start of any day of that date).
    pub fn earliest_publication_ms(&self) -> Result<i64, HistoryError> {
        match *self {
            Selection::Day { date, .. } => Ok(earliest_day_start_ms(parse_date(date)?)),
            Selection::Scope { from_ms, .. } | Selection::TeamAdvisors { from_ms, .. } => {
                Ok(from_ms)
            }
        }
    }

    /// Whether a record is one the read asks for.
    pub fn matches(&self, record: &IntervalRecord) -> bool {
        let key = &record.key;
        match *self {
            Selection::Day { site, date } => key.site == site && record.date == date,
            Selection::Scope {
                site,
                kind,
                id,
                from_ms,
                to_ms,
            } => {
                key.site == site
                    && key.kind == kind
                    && key.id == id
                    && starts_in(record, from_ms, to_ms)
            }
            Selection::TeamAdvisors {
                site,
                team,
                from_ms,
                to_ms,
            } => {
                key.site == site
                    && key.kind == ScopeKind::Advisor
                    && record.team.as_deref() == Some(team)
                    && starts_in(record, from_ms, to_ms)
            }
        }
    }
}

/// The highest revision of each key among the records offered, in key order. Of two records
/// with the same key and revision (a record published twice), the later one offered is kept,
/// so that reading a stream in order gives its last word.
#[derive(Clone, Debug, Default)]
pub struct Latest {
    records: BTreeMap<RecordKey, IntervalRecord>,
}

impl Latest {
    /// Nothing offered yet.
    pub fn new() -> Latest {
        Latest::default()
    }

    /// Offers a record: kept unless a higher revision of its key was offered before.
    pub fn offer(&mut self, record: IntervalRecord) {
        match self.records.get_mut(&record.key) {
            Some(kept) if kept.revision > record.revision => {}
            Some(kept) => *kept = record,
            None => {
                self.records.insert(record.key.clone(), record);
            }
        }
    }

    /// Keys kept so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records kept, in key order.
    pub fn into_records(self) -> Vec<IntervalRecord> {
        self.records.into_values().collect()
    }
}

/// The highest revision of each key, in key order (see [`Latest`]).
pub fn latest(records: impl IntoIterator<Item = IntervalRecord>) -> Vec<IntervalRecord> {
    let mut latest = Latest::new();
    for record in records {
        latest.offer(record);
    }
    latest.into_records()
}

// Alerts and notices of a day.
//
// The alert engine keeps the current day only and the notice board the notices in force only:
// what a day was made of is kept apart, one record per site, site-local date and alert (or
// notice), the latest replacing the earlier.

/// An alert's state in a record: as `vigie_alerts::AlertState`, which is not read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRecord {
    /// See [`AlertState::Inactive`].
    Inactive,
    /// See [`AlertState::Pending`].
    Pending,
    /// See [`AlertState::Firing`].
    Firing,
    /// See [`AlertState::Resolved`].
    Resolved,
}

impl From<AlertState> for StateRecord {
    fn from(state: AlertState) -> Self {
        match state {
            AlertState::Inactive => StateRecord::Inactive,
            AlertState::Pending => StateRecord::Pending,
            AlertState::Firing => StateRecord::Firing,
            AlertState::Resolved => StateRecord::Resolved,
        }
    }
}

impl From<StateRecord> for AlertState {
    fn from(state: StateRecord) -> Self {
        match state {
            StateRecord::Inactive => AlertState::Inactive,
            StateRecord::Pending => AlertState::Pending,
            StateRecord::Firing => AlertState::Firing,
            StateRecord::Resolved => AlertState::Resolved,
        }
    }
}

/// A severity in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityRecord {
    /// See [`Severity::Warning`].
    Warning,
    /// See [`Severity::Critical`].
    Critical,
}

impl From<Severity> for SeverityRecord {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Warning => SeverityRecord::Warning,
            Severity::Critical => SeverityRecord::Critical,
        }
    }
}

impl From<SeverityRecord> for Severity {
    fn from(severity: SeverityRecord) -> Self {
        match severity {
            SeverityRecord::Warning => Severity::Warning,
            SeverityRecord::Critical => Severity::Critical,
        }
    }
}

/// What a transition was, in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKindRecord {
    /// See [`TransitionKind::Pending`].
    Pending,
    /// See [`TransitionKind::Reset`].
    Reset,
    /// See [`TransitionKind::Fired`].
    Fired,
    /// See [`TransitionKind::Escalated`].
    Escalated,
    /// See [`TransitionKind::DeEscalated`].
    DeEscalated,
    /// See [`TransitionKind::Resolved`].
    Resolved,
    /// See [`TransitionKind::Acknowledged`].
    Acknowledged,
    /// See [`TransitionKind::Silenced`].
    Silenced,
}

impl TransitionKindRecord {
    /// Whether the transition comes from the figures (the engine makes it again when it
    /// replays the day), not from someone's command (which a replay does not repeat).
    pub fn follows_the_figures(self) -> bool {
        !matches!(
            self,
            TransitionKindRecord::Acknowledged | TransitionKindRecord::Silenced
        )
    }
}

impl From<TransitionKind> for TransitionKindRecord {
    fn from(kind: TransitionKind) -> Self {
        match kind {
            TransitionKind::Pending => TransitionKindRecord::Pending,
            TransitionKind::Reset => TransitionKindRecord::Reset,
            TransitionKind::Fired => TransitionKindRecord::Fired,
            TransitionKind::Escalated => TransitionKindRecord::Escalated,
            TransitionKind::DeEscalated => TransitionKindRecord::DeEscalated,
            TransitionKind::Resolved => TransitionKindRecord::Resolved,
            TransitionKind::Acknowledged => TransitionKindRecord::Acknowledged,
            TransitionKind::Silenced => TransitionKindRecord::Silenced,
        }
    }
}

impl From<TransitionKindRecord> for TransitionKind {
    fn from(kind: TransitionKindRecord) -> Self {
        match kind {
            TransitionKindRecord::Pending => TransitionKind::Pending,
            TransitionKindRecord::Reset => TransitionKind::Reset,
            TransitionKindRecord::Fired => TransitionKind::Fired,
            TransitionKindRecord::Escalated => TransitionKind::Escalated,
            TransitionKindRecord::DeEscalated => TransitionKind::DeEscalated,
            TransitionKindRecord::Resolved => TransitionKind::Resolved,
            TransitionKindRecord::Acknowledged => TransitionKind::Acknowledged,
            TransitionKindRecord::Silenced => TransitionKind::Silenced,
        }
    }
}

/// Why an alert reset or resolved, in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseRecord {
    /// See [`Cause::Value`].
    Value,
    /// See [`Cause::NoData`].
    NoData,
    /// See [`Cause::OutsideActiveHours`].
    OutsideActiveHours,
    /// See [`Cause::RuleChanged`].
    RuleChanged,
}

impl From<Cause> for CauseRecord {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::Value => CauseRecord::Value,
            Cause::NoData => CauseRecord::NoData,
            Cause::OutsideActiveHours => CauseRecord::OutsideActiveHours,
            Cause::RuleChanged => CauseRecord::RuleChanged,
        }
    }
}

impl From<CauseRecord> for Cause {
    fn from(cause: CauseRecord) -> Self {
        match cause {
            CauseRecord::Value => Cause::Value,
            CauseRecord::NoData => Cause::NoData,
            CauseRecord::OutsideActiveHours => Cause::OutsideActiveHours,
            CauseRecord::RuleChanged => Cause::RuleChanged,
        }
    }
}

/// One transition of an alert, in a record. Instants in ms since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// What happened.
    pub kind: TransitionKindRecord,
    /// When.
    pub at_ms: i64,
    /// Severity after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityRecord>,
    /// The value that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Why, for a reset or a resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<CauseRecord>,
    /// Who, for an acknowledgement or a silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// End of the silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

impl From<&Transition> for TransitionRecord {
    fn from(transition: &Transition) -> Self {
        TransitionRecord {
            kind: transition.kind.into(),
            at_ms: transition.at.0,
            severity: transition.severity.map(Into::into),
            value: transition.value,
            threshold: transition.threshold,
            cause: transition.cause.map(Into::into),
            by: transition.by.clone(),
            until_ms: transition.until.map(|t| t.0),
        }
    }
}

impl From<&TransitionRecord> for Transition {
    fn from(record: &TransitionRecord) -> Self {
        Transition {
            kind: record.kind.into(),
            at: Timestamp(record.at_ms),
            severity: record.severity.map(Into::into),
            value: record.value,
            threshold: record.threshold,
            cause: record.cause.map(Into::into),
            by: record.by.clone(),
            until: record.until_ms.map(Timestamp),
        }
    }
}

/// Who acknowledged a firing alert, and when, in a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcknowledgementRecord {
    /// Who.
    pub by: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// A silence, in a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRecord {
    /// No notification before this instant, ms since the epoch.
    pub until_ms: i64,
    /// Who silenced it.
    pub by: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// An alert of one site-local day as the history keeps it: its whole state and its
/// transitions of that day, as the engine listed it (`vigie_alerts::Alert`), with the pause
/// reason of its rule and the site's clock when it was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Site id.
    pub site: String,
    /// The site-local day, `YYYY-MM-DD`.
    pub date: String,
    /// The site's clock when this state was read, ms since the epoch: every transition of the
    /// record is at or before it.
    pub as_of_ms: i64,
    /// Alert id: `<rule>/<target kind>/<target id>`.
    pub id: String,
    /// Teams it is routed to.
    pub teams: Vec<String>,
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub rule_name: String,
    /// What it is about: site, queue, team or advisor.
    pub target_kind: TargetKind,
    /// The target's id.
    pub target_id: String,
    /// The metric watched.
    pub metric: Metric,
    /// Its window, for windowed metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The pause reason watched, for `pause_duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule's comparator.
    pub comparator: Comparator,
    /// Unit of the values and thresholds.
    pub unit: Unit,
    /// Where it was in its life.
    pub state: StateRecord,
    /// Severity while firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityRecord>,
    /// The last value read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold passed while firing, else the onset threshold.
    pub threshold: f64,
    /// Since when the condition held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Acknowledgement of the firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<AcknowledgementRecord>,
    /// Silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced: Option<SilenceRecord>,
    /// The last notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified_ms: Option<i64>,
    /// The day's transitions, oldest first.
    pub history: Vec<TransitionRecord>,
    /// Transitions dropped that day to keep the history bounded.
    #[serde(default)]
    pub history_dropped: u32,
}

impl AlertRecord {
    /// The record of `alert` as the engine lists it on `date` at `as_of`; `reason` is its
    /// rule's pause reason.
    pub fn of(alert: &Alert, reason: Option<String>, date: &str, as_of: Timestamp) -> AlertRecord {
        AlertRecord {
            site: alert.site.clone(),
            date: date.to_owned(),
            as_of_ms: as_of.0,
            id: alert.id.clone(),
            teams: alert.teams.clone(),
            rule: alert.rule.clone(),
            rule_name: alert.rule_name.clone(),
            target_kind: alert.target.kind,
            target_id: alert.target.id.clone(),
            metric: alert.metric,
            window: alert.window,
            reason,
            comparator: alert.comparator,
            unit: alert.unit,
            state: alert.state.into(),
            severity: alert.severity.map(Into::into),
            value: alert.value,
            threshold: alert.threshold,
            since_ms: alert.since.map(|t| t.0),
            acknowledged: alert.acknowledged.as_ref().map(|a| AcknowledgementRecord {
                by: a.by.clone(),
                at_ms: a.at.0,
            }),
            silenced: alert.silenced.as_ref().map(|s| SilenceRecord {
                until_ms: s.until.0,
                by: s.by.clone(),
                at_ms: s.at.0,
            }),
            last_notified_ms: alert.last_notified.map(|t| t.0),
            history: alert.history.iter().map(Into::into).collect(),
            history_dropped: alert.history_dropped,
        }
    }

    /// The alert as the engine would list it (for the API's conversions), and its rule's
    /// pause reason.
    pub fn to_alert(&self) -> (Alert, Option<String>) {
        let alert = Alert {
            id: self.id.clone(),
            site: self.site.clone(),
            teams: self.teams.clone(),
            rule: self.rule.clone(),
            rule_name: self.rule_name.clone(),
            target: Target {
                kind: self.target_kind,
                id: self.target_id.clone(),
            },
            metric: self.metric,
            window: self.window,
            comparator: self.comparator,
            unit: self.unit,
            state: self.state.into(),
            severity: self.severity.map(Into::into),
            value: self.value,
            threshold: self.threshold,
            since: self.since_ms.map(Timestamp),
            acknowledged: self.acknowledged.as_ref().map(|a| Acknowledgement {
                by: a.by.clone(),
                at: Timestamp(a.at_ms),
            }),
            silenced: self.silenced.as_ref().map(|s| Silence {
                until: Timestamp(s.until_ms),
                by: s.by.clone(),
                at: Timestamp(s.at_ms),
            }),
            last_notified: self.last_notified_ms.map(Timestamp),
            history: self.history.iter().map(Into::into).collect(),
            history_dropped: self.history_dropped,
        };
        (alert, self.reason.clone())
    }

    /// `site/date/id`, as messages show it.
    pub fn describe(&self) -> String {
        format!("{}/{}/{}", self.site, self.date, self.id)
    }

    /// Checks that the record can be stored and read back: a site, a date `YYYY-MM-DD`, an id
    /// of the form `<rule>/<target kind>/<target id>` that matches the record's rule and
    /// target.
    pub fn validate(&self) -> Result<(), HistoryError> {
        let refuse = |reason: String| HistoryError::BadRecord {
            key: self.describe(),
            reason,
        };
        if self.site.is_empty() {
            return Err(refuse("the site id is empty".to_owned()));
        }
        parse_date(&self.date)
            .map_err(|_| refuse(format!("date {:?} is not YYYY-MM-DD", self.date)))?;
        let expected = format!(
            "{}/{}/{}",
            self.rule,
            self.target_kind.as_str(),
            self.target_id
        );
        if self.rule.is_empty() || self.target_id.is_empty() || self.id != expected {
            return Err(refuse(format!(
                "the id is not <rule>/<target kind>/<target id> ({expected:?})"
            )));
        }
        Ok(())
    }

    /// A digest of the content, `as_of_ms` aside: two records with the same digest say the
    /// same of the alert, and storing the second would change nothing.
    pub fn digest(&self) -> u64 {
        let mut content = self.clone();
        content.as_of_ms = 0;
        digest_json(&content)
    }

    /// Adds one transition the engine reported, when the alert's whole state can no longer be
    /// read for this day (the day changed or the rule went away meanwhile): appended unless
    /// already there, and the state it leads to taken on.
    pub fn apply(&mut self, transition: TransitionRecord) {
        if self.history.contains(&transition) {
            return;
        }
        let at = self
            .history
            .iter()
            .rposition(|t| t.at_ms <= transition.at_ms)
            .map_or(0, |found| found + 1);
        self.as_of_ms = self.as_of_ms.max(transition.at_ms);
        let latest = at == self.history.len();
        self.history.insert(at, transition.clone());
        if !latest {
            return;
        }
        match transition.kind {
            TransitionKindRecord::Pending => {
                self.state = StateRecord::Pending;
                self.since_ms = Some(transition.at_ms);
            }
            TransitionKindRecord::Reset => self.state = StateRecord::Inactive,
            TransitionKindRecord::Fired
            | TransitionKindRecord::Escalated
            | TransitionKindRecord::DeEscalated => {
                self.state = StateRecord::Firing;
                self.severity = transition.severity;
                if transition.kind != TransitionKindRecord::DeEscalated {
                    self.acknowledged = None;
                }
            }
            TransitionKindRecord::Resolved => {
                self.state = StateRecord::Resolved;
                self.severity = None;
                self.acknowledged = None;
            }
            TransitionKindRecord::Acknowledged => {
                self.acknowledged = transition.by.clone().map(|by| AcknowledgementRecord {
                    by,
                    at_ms: transition.at_ms,
                });
            }
            TransitionKindRecord::Silenced => {
                self.silenced = match (transition.by.clone(), transition.until_ms) {
                    (Some(by), Some(until_ms)) => Some(SilenceRecord {
                        until_ms,
                        by,
                        at_ms: transition.at_ms,
                    }),
                    _ => self.silenced.clone(),
                };
            }
        }
        if transition.value.is_some() {
            self.value = transition.value;
        }
        if let Some(threshold) = transition.threshold {
            self.threshold = threshold;
        }
    }
}

/// A digest of a value's JSON: stable within a build, for telling whether content changed.
fn digest_json(value: &impl Serialize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // Serialising plain data cannot fail; were it to, the digest of nothing still compares.
    serde_json::to_vec(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The alert `live` (as the engine lists it now) merged with `stored` (the record of the same
/// site, day and alert stored before): what the history keeps.
///
/// `carried_until_ms` is how far, in the site's time, the runs of Vigie that stored `stored`
/// had got (the newest `as_of_ms` of that day's records when this run first read them; `None`
/// when nothing was stored before this run). The transitions of `stored` at or before it stand;
/// the engine's transitions at or before it are its replay of that time after a restart (the
/// same changes at slightly other instants, without the acknowledgements and silences, which
/// come from people) and are left out; the engine's later transitions follow. The first of them
/// is also left out when it repeats the kind of the last transition kept (a replay's copy that
/// fell just past the cut: an alert never fires or resolves twice in a row). The state (severity,
/// value, acknowledgement...) is the engine's once it has a transition of its own after the cut,
/// else the stored one.
pub fn merge_alert(
    stored: Option<&AlertRecord>,
    live: AlertRecord,
    carried_until_ms: Option<i64>,
) -> AlertRecord {
    let (Some(stored), Some(cut)) = (stored, carried_until_ms) else {
        return live;
    };
    let mut history: Vec<TransitionRecord> = stored
        .history
        .iter()
        .filter(|t| t.at_ms <= cut)
        .cloned()
        .collect();
    let last_kind = history
        .iter()
        .rev()
        .find(|t| t.kind.follows_the_figures())
        .map(|t| t.kind);
    let mut later = live.history.iter().filter(|t| t.at_ms > cut).peekable();
    if let Some(first) = later.peek()
        && first.kind.follows_the_figures()
        && Some(first.kind) == last_kind
    {
        later.next();
    }
    let later: Vec<TransitionRecord> = later.cloned().collect();
    let engine_moved_on = !later.is_empty();
    history.extend(later);
    let mut merged = if engine_moved_on {
        live.clone()
    } else {
        AlertRecord {
            // The rule's settings as they are now.
            teams: live.teams.clone(),
            rule_name: live.rule_name.clone(),
            ..stored.clone()
        }
    };
    merged.history = history;
    merged.as_of_ms = stored.as_of_ms.max(live.as_of_ms);
    merged.history_dropped = stored.history_dropped.max(live.history_dropped);
    merged
}

/// A notice of one site-local day as the history keeps it: the notice as posted, with
/// `expires_at` the end of its display (the withdrawal's instant once withdrawn).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// Site id.
    pub site: String,
    /// The site-local day it was in force (one record per day it was), `YYYY-MM-DD`.
    pub date: String,
    /// Whether it was withdrawn (else it expired, or is still in force).
    #[serde(default)]
    pub withdrawn: bool,
    /// The notice.
    #[serde(flatten)]
    pub notice: Notice,
}

impl NoticeRecord {
    /// `site/date/id`, as messages show it.
    pub fn describe(&self) -> String {
        format!("{}/{}/{}", self.site, self.date, self.notice.id)
    }

    /// Checks that the record can be stored and read back: a site, a date `YYYY-MM-DD`, a
    /// notice id, a display that ends after it starts.
    pub fn validate(&self) -> Result<(), HistoryError> {
        let refuse = |reason: String| HistoryError::BadRecord {
            key: self.describe(),
            reason,
        };
        if self.site.is_empty() {
            return Err(refuse("the site id is empty".to_owned()));
        }
        if self.notice.id.is_empty() {
            return Err(refuse("the notice id is empty".to_owned()));
        }
        parse_date(&self.date)
            .map_err(|_| refuse(format!("date {:?} is not YYYY-MM-DD", self.date)))?;
        if self.notice.expires_at < self.notice.posted_at {
            return Err(refuse("it ends before it was posted".to_owned()));
        }
        Ok(())
    }

    /// Whether the notice was shown at some instant of `[from_ms, to_ms)`.
    pub fn shown_during(&self, from_ms: i64, to_ms: i64) -> bool {
        self.notice.posted_at.0 < to_ms && self.notice.expires_at.0 > from_ms
    }
}

/// Newest first, as lists of notices go; among notices posted at the same instant, by id.
pub fn sort_notices(records: &mut [NoticeRecord]) {
    records.sort_by(|a, b| {
        b.notice
            .posted_at
            .cmp(&a.notice.posted_at)
            .then_with(|| b.notice.id.cmp(&a.notice.id))
    });
}

/// Records kept at most by default by a [`MemoryHistory`]: about three weeks of a demo site's
/// scopes, a few tens of megabytes.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// How long a [`MemoryHistory`] keeps records, and how many at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRetention {
    /// Site, queue and team records whose interval ended longer than this before the newest
    /// record's end are dropped.
    pub max_age: Duration,
    /// The same for advisor records, shorter: per-advisor history is employee monitoring.
    pub advisor_max_age: Duration,
    /// Records kept at most; beyond, those whose interval ended first are dropped.
    pub max_records: usize,
    /// Alerts and notices of days older than this before the newest day held are dropped
    /// (whole days: a max age of 31 days keeps the newest day and the 31 before it).
    pub alert_max_age: Duration,
}

impl Default for MemoryRetention {
    /// 400 days, 31 days for advisors, [`DEFAULT_MAX_RECORDS`], 31 days for alerts and notices.
    fn default() -> Self {
        MemoryRetention {
            max_age: Duration::from_secs(400 * 86_400),
            advisor_max_age: Duration::from_secs(31 * 86_400),
            max_records: DEFAULT_MAX_RECORDS,
            alert_max_age: Duration::from_secs(31 * 86_400),
        }
    }
}

/// What a [`MemoryHistory`] holds and has dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Records held (one per key).
    pub records: usize,
    /// Records dropped because they grew older than their max age.
    pub expired: u64,
    /// Records dropped to stay within `max_records`.
    pub evicted: u64,
    /// Alert and notice records held (one per site, day and alert or notice).
    pub day_records: usize,
    /// Alert and notice records dropped with their day, older than `alert_max_age`.
    pub days_expired: u64,
}

/// Interval history in the process's memory, for the embedded demo (no broker): the same
/// answers as the JetStream store, retention measured against the newest record rather than
/// the clock (the demo's days may run faster than the wall clock), bounded in size. Lost when
/// the process stops.
#[derive(Debug)]
pub struct MemoryHistory {
    retention: MemoryRetention,
    state: Mutex<Shelves>,
    days: Mutex<DayShelf>,
}

/// The alerts and notices of one site's day, by id.
#[derive(Debug, Default)]
struct DayRecords {
    alerts: BTreeMap<String, AlertRecord>,
    notices: BTreeMap<String, NoticeRecord>,
}

impl DayRecords {
    fn len(&self) -> usize {
        self.alerts.len() + self.notices.len()
    }
}

/// Alerts and notices by date, then site: the oldest days come first, for expiry.
#[derive(Debug, Default)]
struct DayShelf {
    days: BTreeMap<(NaiveDate, String), DayRecords>,
    expired: u64,
}

impl DayShelf {
    fn day(&mut self, site: &str, date: &str) -> Result<&mut DayRecords, HistoryError> {
        let date = parse_date(date)?;
        Ok(self.days.entry((date, site.to_owned())).or_default())
    }

    /// Drops the days older than `max_age` before the newest day held.
    fn expire(&mut self, max_age: Duration) {
        let Some(newest) = self.days.keys().next_back().map(|(date, _)| *date) else {
            return;
        };
        let days = max_age.as_secs().div_ceil(86_400);
        let Some(oldest_kept) = newest.checked_sub_days(chrono::Days::new(days)) else {
            return;
        };
        while let Some(entry) = self.days.first_entry() {
            if entry.key().0 >= oldest_kept {
                break;
            }
            self.expired += entry.remove().len() as u64;
        }
    }

    fn len(&self) -> usize {
        self.days.values().map(DayRecords::len).sum()
    }
}

/// Advisor records on a shelf of their own: their max age differs.
#[derive(Debug, Default)]
struct Shelves {
    scopes: Shelf,
    advisors: Shelf,
    newest_end_ms: Option<i64>,
    expired: u64,
    evicted: u64,
}

/// The records of one retention class, by site then key, with an index by interval end for
/// expiry and eviction.
#[derive(Debug, Default)]
struct Shelf {
    by_site: BTreeMap<String, BTreeMap<RecordKey, IntervalRecord>>,
    by_end: BTreeSet<(i64, RecordKey)>,
}

impl Shelf {
    fn len(&self) -> usize {
        self.by_end.len()
    }

    /// Keeps a record unless a higher revision of its key is kept already.
    fn insert(&mut self, record: IntervalRecord) {
        let site = self.by_site.entry(record.key.site.clone()).or_default();
        if let Some(kept) = site.get(&record.key) {
            if kept.revision > record.revision {
                return;
            }
            self.by_end.remove(&(kept.end_ms, kept.key.clone()));
        }
        self.by_end.insert((record.end_ms, record.key.clone()));
        site.insert(record.key.clone(), record);
    }

    fn remove(&mut self, end_ms: i64, key: &RecordKey) {
        self.by_end.remove(&(end_ms, key.clone()));
        if let Some(site) = self.by_site.get_mut(&key.site) {
            site.remove(key);
            if site.is_empty() {
                self.by_site.remove(&key.site);
            }
        }
    }

    fn oldest(&self) -> Option<(i64, RecordKey)> {
        self.by_end.first().cloned()
    }

    /// Drops the records whose interval ended before `cutoff_ms`; returns how many.
    fn expire(&mut self, cutoff_ms: i64) -> u64 {
        let mut dropped = 0;
        while let Some((end_ms, key)) = self.oldest() {
            if end_ms >= cutoff_ms {
                break;
            }
            self.remove(end_ms, &key);
            dropped += 1;
        }
        dropped
    }

    fn site(&self, site: &str) -> impl Iterator<Item = &IntervalRecord> {
        self.by_site
            .get(site)
            .into_iter()
            .flat_map(|records| records.values())
    }
}

/// A duration in milliseconds, saturating (a max age of centuries means "keep everything").
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl MemoryHistory {
    /// An empty store.
    pub fn new(retention: MemoryRetention) -> MemoryHistory {
        MemoryHistory {
            retention,
            state: Mutex::new(Shelves::default()),
            days: Mutex::new(DayShelf::default()),
        }
    }

    /// Its retention.
    pub fn retention(&self) -> MemoryRetention {
        self.retention
    }

    /// What it holds and has dropped.
    pub fn stats(&self) -> MemoryStats {
        let state = self.lock();
        let days = self.lock_days();
        MemoryStats {
            records: state.scopes.len() + state.advisors.len(),
            expired: state.expired,
            evicted: state.evicted,
            day_records: days.len(),
            days_expired: days.expired,
        }
    }

    fn lock_days(&self) -> std::sync::MutexGuard<'_, DayShelf> {
        // As for the shelves: consistent between two whole operations.
        self.days.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores checked day records with `put`, then drops the days beyond the retention.
    fn store_days<R>(
        &self,
        records: Vec<R>,
        put: impl Fn(&mut DayShelf, R) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        let mut days = self.lock_days();
        for record in records {
            put(&mut days, record)?;
        }
        days.expire(self.retention.alert_max_age);
        Ok(())
    }

    /// What `read` takes of a site's day (nothing when none is held).
    fn read_day<T>(
        &self,
        site: &str,
        date: &str,
        read: impl Fn(&DayRecords) -> Vec<T>,
    ) -> Result<Vec<T>, HistoryError> {
        let date = parse_date(date)?;
        let days = self.lock_days();
        Ok(days
            .days
            .get(&(date, site.to_owned()))
            .map(read)
            .unwrap_or_default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shelves> {
        // Nothing panics while the lock is held; were it poisoned, the shelves are still
        // consistent between two whole operations.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores checked records, then applies the retention.
    fn store(&self, records: Vec<IntervalRecord>) {
        let mut state = self.lock();
        for record in records {
            state.newest_end_ms = Some(
                state
                    .newest_end_ms
                    .map_or(record.end_ms, |newest| newest.max(record.end_ms)),
            );
            if record.key.kind == ScopeKind::Advisor {
                state.advisors.insert(record);
            } else {
                state.scopes.insert(record);
            }
        }
        let Some(newest) = state.newest_end_ms else {
            return;
        };
        let expired = state
            .scopes
            .expire(newest.saturating_sub(millis(self.retention.max_age)))
            + state
                .advisors
                .expire(newest.saturating_sub(millis(self.retention.advisor_max_age)));
        state.expired += expired;
        while state.scopes.len() + state.advisors.len() > self.retention.max_records {
            // The record whose interval ended first goes, whichever shelf it is on.
            let shelves = &mut *state;
            let shelf = match (shelves.scopes.oldest(), shelves.advisors.oldest()) {
                (Some(scope), Some(advisor)) if advisor < scope => &mut shelves.advisors,
                (Some(_), _) => &mut shelves.scopes,
                (None, Some(_)) => &mut shelves.advisors,
                (None, None) => break,
            };
            if let Some((end_ms, key)) = shelf.oldest() {
                shelf.remove(end_ms, &key);
                shelves.evicted += 1;
            }
        }
    }

    /// The records a read selects, in key order.
    fn select(&self, selection: Selection<'_>) -> Result<Vec<IntervalRecord>, HistoryError> {
        selection.validate()?;
        if selection.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.lock();
        let mut found = Latest::new();
        let site = selection.site();
        let shelves = [
            (selection.wants_scopes(), &state.scopes),
            (selection.wants_advisors(), &state.advisors),
        ];
        for (wanted, shelf) in shelves {
            if !wanted {
                continue;
            }
            if let Selection::Scope {
                kind,
                id,
                from_ms,
                to_ms,
                ..
            } = selection
            {
                // One scope's records are contiguous in key order: read only them.
                let bound = |start_ms| RecordKey {
                    site: site.to_owned(),
                    kind,
                    id: id.to_owned(),
                    start_ms,
                };
                if let Some(records) = shelf.by_site.get(site) {
                    for record in records.range(bound(from_ms)..bound(to_ms)).map(|(_, r)| r) {
                        found.offer(record.clone());
                    }
                }
                continue;
            }
            for record in shelf.site(site).filter(|r| selection.matches(r)) {
                found.offer(record.clone());
            }
        }
        Ok(found.into_records())
    }
}

impl Default for MemoryHistory {
    /// An empty store with the default retention.
    fn default() -> Self {
        MemoryHistory::new(MemoryRetention::default())
    }
}

impl HistoryStore for MemoryHistory {
    fn publish<'a>(
        &'a self,
        records: Vec<IntervalRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(validate_record)?;
            self.store(records);
            Ok(())
        })
    }

    fn day<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async move { self.select(Selection::Day { site, date }) })
    }

    fn query<'a>(
        &'a self,
        site: &'a str,
        kind: ScopeKind,
        id: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async move {
            self.select(Selection::Scope {
                site,
                kind,
                id,
                from_ms,
                to_ms,
            })
        })
    }

    fn team_advisors<'a>(
        &'a self,
        site: &'a str,
        team: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async move {
            self.select(Selection::TeamAdvisors {
                site,
                team,
                from_ms,
                to_ms,
            })
        })
    }

    fn publish_alerts<'a>(
        &'a self,
        records: Vec<AlertRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(AlertRecord::validate)?;
            self.store_days(records, |days, record| {
                let day = days.day(&record.site, &record.date)?;
                day.alerts.insert(record.id.clone(), record);
                Ok(())
            })
        })
    }

    fn day_alerts<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AlertRecord>, HistoryError>> {
        Box::pin(
            async move { self.read_day(site, date, |day| day.alerts.values().cloned().collect()) },
        )
    }

    fn publish_notices<'a>(
        &'a self,
        records: Vec<NoticeRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(NoticeRecord::validate)?;
            self.store_days(records, |days, record| {
                let day = days.day(&record.site, &record.date)?;
                day.notices.insert(record.notice.id.clone(), record);
                Ok(())
            })
        })
    }

    fn day_notices<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NoticeRecord>, HistoryError>> {
        Box::pin(async move {
            let mut notices =
                self.read_day(site, date, |day| day.notices.values().cloned().collect())?;
            sort_notices(&mut notices);
            Ok(notices)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const INTERVAL: i64 = 15 * MINUTE;
    /// 2026-03-02T00:00:00Z.
    const MONDAY: i64 = 1_772_409_600_000;
    const DAY: i64 = 86_400_000;

    /// A record built from JSON, as the store reads it, so that fields the record gains later
    /// (with their defaults) do not break these tests.
    fn record(kind: &str, id: &str, start_ms: i64, revision: u32) -> IntervalRecord {
        let days = (start_ms - MONDAY).div_euclid(DAY);
        let date = NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .checked_add_days(chrono::Days::new(days.try_into().unwrap()))
            .unwrap();
        serde_json::from_value(serde_json::json!({
            "site": "paris",
            "kind": kind,
            "id": id,
            "start_ms": start_ms,
            "end_ms": start_ms + INTERVAL,
            "date": date.format("%Y-%m-%d").to_string(),
            "revision": revision,
            "settled": true,
            "team": if kind == "advisor" { Some("blue") } else { None },
            "handling": { "handled": revision },
        }))
        .unwrap()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    fn starts(records: &[IntervalRecord]) -> Vec<(String, i64, u32)> {
        records
            .iter()
            .map(|r| (r.key.id.clone(), r.key.start_ms, r.revision))
            .collect()
    }

    #[test]
    fn the_highest_revision_of_each_key_is_kept_whatever_the_order() {
        let a1 = record("queue", "q", MONDAY, 1);
        let a2 = record("queue", "q", MONDAY, 2);
        let b1 = record("queue", "q", MONDAY + INTERVAL, 1);
        for order in [
            vec![a1.clone(), a2.clone(), b1.clone()],
            vec![a2.clone(), b1.clone(), a1.clone()],
            vec![b1.clone(), a1.clone(), a2.clone(), a1.clone()],
        ] {
            assert_eq!(latest(order), vec![a2.clone(), b1.clone()]);
        }
    }

    #[test]
    fn of_two_copies_of_a_revision_the_later_one_is_kept() {
        let first = record("queue", "q", MONDAY, 1);
        let mut second = first.clone();
        second.settled = false;
        assert_eq!(latest([first, second.clone()]), vec![second]);
    }

    #[test]
    fn ranges_include_their_start_and_exclude_their_end() {
        let r = record("queue", "q", MONDAY + INTERVAL, 1);
        assert!(starts_in(&r, MONDAY + INTERVAL, MONDAY + 2 * INTERVAL));
        assert!(!starts_in(&r, MONDAY, MONDAY + INTERVAL));
        assert!(!starts_in(&r, MONDAY + INTERVAL + 1, MONDAY + DAY));
        assert!(!starts_in(&r, MONDAY + INTERVAL, MONDAY + INTERVAL));
    }

    #[test]
    fn selections_match_their_site_scope_team_and_day() {
        let queue = record("queue", "q", MONDAY, 1);
        let advisor = record("advisor", "a1", MONDAY, 1);
        let day = Selection::Day {
            site: "paris",
            date: "2026-03-02",
        };
        assert!(day.matches(&queue) && day.matches(&advisor));
        assert!(
            !Selection::Day {
                site: "lyon",
                date: "2026-03-02"
            }
            .matches(&queue)
        );
        assert!(
            !Selection::Day {
                site: "paris",
                date: "2026-03-03"
            }
            .matches(&queue)
        );
        let scope = Selection::Scope {
            site: "paris",
            kind: ScopeKind::Queue,
            id: "q",
            from_ms: MONDAY,
            to_ms: MONDAY + DAY,
        };
        assert!(scope.matches(&queue) && !scope.matches(&advisor));
        assert!(scope.wants_scopes() && !scope.wants_advisors());
        let team = Selection::TeamAdvisors {
            site: "paris",
            team: "blue",
            from_ms: MONDAY,
            to_ms: MONDAY + DAY,
        };
        assert!(team.matches(&advisor) && !team.matches(&queue));
        assert!(
            !Selection::TeamAdvisors {
                site: "paris",
                team: "red",
                from_ms: MONDAY,
                to_ms: MONDAY + DAY,
            }
            .matches(&advisor)
        );
    }

    #[test]
    fn a_day_read_starts_early_enough_for_any_time_zone() {
        let day = Selection::Day {
            site: "paris",
            date: "2026-03-02",
        };
        // Midnight in Kiribati (UTC+14) is the earliest start of 2 March anywhere.
        assert_eq!(
            day.earliest_publication_ms().unwrap(),
            MONDAY - 14 * 60 * MINUTE
        );
        for bad in ["2026-3-2", "02/03/2026", "2026-02-30", "+2026-03-02", ""] {
            let error = Selection::Day {
                site: "paris",
                date: bad,
            }
            .validate()
            .unwrap_err();
            assert!(
                error.to_string().contains("is not YYYY-MM-DD"),
                "{bad:?}: {error}"
            );
        }
    }

    /// Spoils a record in one way.
    type Spoil = fn(&mut IntervalRecord);

    #[test]
    fn records_that_could_not_be_read_back_are_refused_with_their_key() {
        let good = record("queue", "q", MONDAY, 1);
        validate_record(&good).unwrap();
        let cases: [(Spoil, &str); 5] = [
            (|r| r.key.site.clear(), "site id is empty"),
            (|r| r.key.id.clear(), "scope id is empty"),
            (|r| r.end_ms = r.key.start_ms, "is not after start_ms"),
            (|r| r.date = "yesterday".into(), "is not YYYY-MM-DD"),
            (
                |r| r.date = "2026-03-05".into(),
                "before any day named 2026-03-05",
            ),
        ];
        for (spoil, expected) in cases {
            let mut bad = good.clone();
            spoil(&mut bad);
            let message = validate_record(&bad).unwrap_err().to_string();
            assert!(message.contains(expected), "{expected:?} in {message}");
            assert!(message.starts_with("interval record "), "{message}");
        }
    }

    #[test]
    fn a_refused_record_stores_nothing_of_its_batch() {
        let store = MemoryHistory::default();
        let mut bad = record("queue", "q", MONDAY + INTERVAL, 1);
        bad.key.id.clear();
        let error =
            block_on(store.publish(vec![record("queue", "q", MONDAY, 1), bad])).unwrap_err();
        assert!(matches!(error, HistoryError::BadRecord { .. }), "{error}");
        assert_eq!(store.stats().records, 0);
    }

    #[test]
    fn memory_reads_return_the_latest_revision_in_key_order() {
        let store = MemoryHistory::default();
        block_on(store.publish(vec![
            record("queue", "q", MONDAY + INTERVAL, 1),
            record("queue", "q", MONDAY, 2),
            record("advisor", "a1", MONDAY, 1),
            record("site", "paris", MONDAY, 1),
        ]))
        .unwrap();
        // An older revision arriving late changes nothing.
        block_on(store.publish(vec![record("queue", "q", MONDAY, 1)])).unwrap();
        let day = block_on(store.day("paris", "2026-03-02")).unwrap();
        assert_eq!(
            starts(&day),
            [
                ("paris".into(), MONDAY, 1),
                ("q".into(), MONDAY, 2),
                ("q".into(), MONDAY + INTERVAL, 1),
                ("a1".into(), MONDAY, 1),
            ]
        );
        let queue =
            block_on(store.query("paris", ScopeKind::Queue, "q", MONDAY, MONDAY + INTERVAL))
                .unwrap();
        assert_eq!(starts(&queue), [("q".into(), MONDAY, 2)]);
        assert_eq!(store.stats().records, 4);
    }

    #[test]
    fn memory_retention_is_measured_against_the_newest_record_and_shorter_for_advisors() {
        let store = MemoryHistory::new(MemoryRetention {
            max_age: Duration::from_secs(10 * 86_400),
            advisor_max_age: Duration::from_secs(2 * 86_400),
            max_records: 1000,
            ..MemoryRetention::default()
        });
        let at = |day: i64| MONDAY + day * DAY;
        block_on(store.publish(vec![
            record("queue", "q", at(0), 1),
            record("advisor", "a1", at(0), 1),
            record("advisor", "a1", at(1), 1),
        ]))
        .unwrap();
        assert_eq!(store.stats().records, 3, "nothing is old yet");
        // Two days and a quarter of an hour after the first intervals ended.
        block_on(store.publish(vec![record("queue", "q", at(2) + INTERVAL, 1)])).unwrap();
        let advisor =
            block_on(store.query("paris", ScopeKind::Advisor, "a1", at(0), at(30))).unwrap();
        assert_eq!(starts(&advisor), [("a1".into(), at(1), 1)]);
        let queue = block_on(store.query("paris", ScopeKind::Queue, "q", at(0), at(30))).unwrap();
        assert_eq!(queue.len(), 2, "queue records keep for ten days");
        // Exactly the max age old: kept; a millisecond more: dropped.
        block_on(store.publish(vec![record("queue", "q", at(10), 1)])).unwrap();
        let queue = block_on(store.query("paris", ScopeKind::Queue, "q", at(0), at(30))).unwrap();
        assert_eq!(queue.len(), 3);
        let advisor =
            block_on(store.query("paris", ScopeKind::Advisor, "a1", at(0), at(30))).unwrap();
        assert!(advisor.is_empty(), "advisor records keep for two days");
        let mut later = record("queue", "q", at(10) + INTERVAL, 1);
        later.end_ms += 1;
        block_on(store.publish(vec![later])).unwrap();
        let queue = block_on(store.query("paris", ScopeKind::Queue, "q", at(0), at(30))).unwrap();
        assert_eq!(queue[0].key.start_ms, at(2) + INTERVAL);
        assert_eq!(
            store.stats(),
            MemoryStats {
                records: 3,
                expired: 3,
                evicted: 0,
                day_records: 0,
                days_expired: 0,
            }
        );
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_intervals_that_ended_first() {
        let store = MemoryHistory::new(MemoryRetention {
            max_records: 3,
            ..MemoryRetention::default()
        });
        block_on(store.publish(vec![
            record("advisor", "a1", MONDAY + INTERVAL, 1),
            record("queue", "q", MONDAY, 1),
            record("queue", "q", MONDAY + 2 * INTERVAL, 1),
            record("advisor", "a1", MONDAY + 3 * INTERVAL, 1),
            record("queue", "q", MONDAY + 4 * INTERVAL, 1),
        ]))
        .unwrap();
        let day = block_on(store.day("paris", "2026-03-02")).unwrap();
        let mut kept: Vec<i64> = day.iter().map(|r| r.key.start_ms - MONDAY).collect();
        kept.sort_unstable();
        assert_eq!(kept, [2 * INTERVAL, 3 * INTERVAL, 4 * INTERVAL]);
        assert_eq!(store.stats().evicted, 2);
    }

    /// An alert of 2 March as the engine lists it, with `history` as (kind, minute) pairs.
    fn alert(id_target: &str, history: &[(TransitionKind, i64)]) -> Alert {
        let transitions: Vec<Transition> = history
            .iter()
            .map(|&(kind, minute)| Transition {
                kind,
                at: Timestamp(MONDAY + minute * MINUTE),
                severity: matches!(kind, TransitionKind::Fired).then_some(Severity::Warning),
                value: Some(61.0),
                threshold: Some(60.0),
                cause: matches!(kind, TransitionKind::Resolved).then_some(Cause::Value),
                by: matches!(kind, TransitionKind::Acknowledged).then(|| "camille".to_owned()),
                until: None,
            })
            .collect();
        Alert {
            id: format!("wait/queue/{id_target}"),
            site: "paris".into(),
            teams: vec!["blue".into()],
            rule: "wait".into(),
            rule_name: "Caller waiting too long".into(),
            target: Target {
                kind: TargetKind::Queue,
                id: id_target.into(),
            },
            metric: Metric::LongestWait,
            window: None,
            comparator: Comparator::Above,
            unit: Unit::Seconds,
            state: AlertState::Firing,
            severity: Some(Severity::Warning),
            value: Some(61.0),
            threshold: 60.0,
            since: Some(Timestamp(MONDAY)),
            acknowledged: None,
            silenced: None,
            last_notified: Some(Timestamp(MONDAY + MINUTE)),
            history: transitions,
            history_dropped: 0,
        }
    }

    fn alert_record(history: &[(TransitionKind, i64)], as_of_minute: i64) -> AlertRecord {
        AlertRecord::of(
            &alert("q", history),
            None,
            "2026-03-02",
            Timestamp(MONDAY + as_of_minute * MINUTE),
        )
    }

    fn kinds(record: &AlertRecord) -> Vec<(TransitionKindRecord, i64)> {
        record
            .history
            .iter()
            .map(|t| (t.kind, (t.at_ms - MONDAY) / MINUTE))
            .collect()
    }

    #[test]
    fn an_alert_record_reads_back_as_the_alert_it_was_made_of() {
        let mut original = alert(
            "sales.fr",
            &[
                (TransitionKind::Pending, 1),
                (TransitionKind::Fired, 2),
                (TransitionKind::Acknowledged, 3),
            ],
        );
        original.acknowledged = Some(Acknowledgement {
            by: "camille".into(),
            at: Timestamp(MONDAY + 3 * MINUTE),
        });
        original.silenced = Some(Silence {
            until: Timestamp(MONDAY + 60 * MINUTE),
            by: "camille".into(),
            at: Timestamp(MONDAY + 4 * MINUTE),
        });
        original.window = Some(Window::Last30m);
        let record = AlertRecord::of(
            &original,
            Some("break".into()),
            "2026-03-02",
            Timestamp(MONDAY),
        );
        record.validate().unwrap();
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"kind\":\"acknowledged\""), "{json}");
        let back: AlertRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.to_alert(), (original, Some("break".to_owned())));
        assert_eq!(back.digest(), record.digest());
        let mut later = record.clone();
        later.as_of_ms += 1;
        assert_eq!(
            later.digest(),
            record.digest(),
            "the instant read is not content"
        );
        later.state = StateRecord::Resolved;
        assert_ne!(later.digest(), record.digest());
    }

    /// Spoils an alert record in one way.
    type SpoilAlert = fn(&mut AlertRecord);

    #[test]
    fn alert_records_that_could_not_be_read_back_are_refused() {
        let good = alert_record(&[(TransitionKind::Fired, 2)], 2);
        let cases: [(SpoilAlert, &str); 3] = [
            (|r| r.site.clear(), "site id is empty"),
            (|r| r.date = "2 March".into(), "is not YYYY-MM-DD"),
            (
                |r| r.id = "wait/queue/other".into(),
                "is not <rule>/<target kind>/<target id>",
            ),
        ];
        for (spoil, expected) in cases {
            let mut bad = good.clone();
            spoil(&mut bad);
            let message = bad.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{expected:?} in {message}");
        }
        let store = MemoryHistory::default();
        let mut bad = good.clone();
        bad.site.clear();
        assert!(block_on(store.publish_alerts(vec![good, bad])).is_err());
        assert_eq!(store.stats().day_records, 0, "nothing of a refused batch");
    }

    #[test]
    fn merging_keeps_what_earlier_runs_stored_and_the_engines_later_transitions() {
        use TransitionKind::{Acknowledged, Fired, Pending, Resolved};
        // The earlier run: pending at 1, fired at 2, acknowledged at 3; it had got to 5.
        let mut stored = alert_record(&[(Pending, 1), (Fired, 2), (Acknowledged, 3)], 5);
        stored.acknowledged = Some(AcknowledgementRecord {
            by: "camille".into(),
            at_ms: MONDAY + 3 * MINUTE,
        });
        // The replay: the same changes a little later, no acknowledgement, then a resolution.
        let replay = alert_record(&[(Pending, 1), (Fired, 4)], 6);
        let merged = merge_alert(Some(&stored), replay, Some(stored.as_of_ms));
        assert_eq!(
            kinds(&merged),
            kinds(&stored),
            "nothing past the cut yet: the stored record stands"
        );
        assert_eq!(merged.acknowledged, stored.acknowledged);
        let mut resolved = alert_record(&[(Pending, 1), (Fired, 4), (Resolved, 9)], 9);
        resolved.state = StateRecord::Resolved;
        let merged = merge_alert(Some(&stored), resolved, Some(stored.as_of_ms));
        assert_eq!(
            kinds(&merged),
            [
                (TransitionKindRecord::Pending, 1),
                (TransitionKindRecord::Fired, 2),
                (TransitionKindRecord::Acknowledged, 3),
                (TransitionKindRecord::Resolved, 9),
            ]
        );
        assert_eq!(merged.state, StateRecord::Resolved, "the engine moved on");
        assert_eq!(merged.as_of_ms, MONDAY + 9 * MINUTE);
    }

    #[test]
    fn a_replayed_copy_just_past_the_cut_is_not_stored_twice() {
        use TransitionKind::{Fired, Pending, Resolved};
        let stored = alert_record(&[(Pending, 1), (Fired, 2)], 2);
        // The replay fired at 3, past the earlier run's reach (2): the same firing.
        let replay = alert_record(&[(Pending, 1), (Fired, 3), (Resolved, 8)], 8);
        let merged = merge_alert(Some(&stored), replay, Some(stored.as_of_ms));
        assert_eq!(
            kinds(&merged),
            [
                (TransitionKindRecord::Pending, 1),
                (TransitionKindRecord::Fired, 2),
                (TransitionKindRecord::Resolved, 8),
            ]
        );
        // Nothing stored before, or no earlier run: the engine's record as it is.
        let live = alert_record(&[(Pending, 1), (Fired, 3)], 3);
        assert_eq!(merge_alert(None, live.clone(), Some(10)), live);
        assert_eq!(merge_alert(Some(&stored), live.clone(), None), live);
    }

    #[test]
    fn a_lone_transition_is_added_once_and_moves_the_state() {
        use TransitionKind::{Fired, Pending};
        let mut record = alert_record(&[(Pending, 1), (Fired, 2)], 2);
        let resolved = TransitionRecord {
            kind: TransitionKindRecord::Resolved,
            at_ms: MONDAY + 10 * MINUTE,
            severity: Some(SeverityRecord::Warning),
            value: Some(10.0),
            threshold: Some(50.0),
            cause: Some(CauseRecord::Value),
            by: None,
            until_ms: None,
        };
        record.apply(resolved.clone());
        record.apply(resolved);
        assert_eq!(record.history.len(), 3);
        assert_eq!(record.state, StateRecord::Resolved);
        assert_eq!(record.severity, None);
        assert_eq!(record.as_of_ms, MONDAY + 10 * MINUTE);
    }

    fn notice_record(date: &str, id: &str, posted_minute: i64, minutes: i64) -> NoticeRecord {
        NoticeRecord {
            site: "paris".into(),
            date: date.into(),
            withdrawn: false,
            notice: Notice {
                id: id.into(),
                team: Some("blue".into()),
                text: "New script".into(),
                level: crate::notices::NoticeLevel::Info,
                posted_by: "camille".into(),
                posted_at: Timestamp(MONDAY + posted_minute * MINUTE),
                expires_at: Timestamp(MONDAY + (posted_minute + minutes) * MINUTE),
            },
        }
    }

    #[test]
    fn memory_keeps_the_latest_record_of_each_alert_and_notice_per_day() {
        use TransitionKind::{Fired, Pending, Resolved};
        let store = MemoryHistory::default();
        let mut yesterday = alert_record(&[(Pending, 1)], 1);
        yesterday.date = "2026-03-01".into();
        block_on(store.publish_alerts(vec![
            alert_record(&[(Pending, 1)], 1),
            alert_record(&[(Pending, 1), (Fired, 2)], 2),
            yesterday,
        ]))
        .unwrap();
        block_on(store.publish_alerts(vec![alert_record(
            &[(Pending, 1), (Fired, 2), (Resolved, 5)],
            5,
        )]))
        .unwrap();
        let day = block_on(store.day_alerts("paris", "2026-03-02")).unwrap();
        assert_eq!(day.len(), 1, "one record per alert and day");
        assert_eq!(day[0].history.len(), 3, "the latest");
        assert_eq!(
            block_on(store.day_alerts("paris", "2026-03-01"))
                .unwrap()
                .len(),
            1
        );
        assert!(
            block_on(store.day_alerts("lyon", "2026-03-02"))
                .unwrap()
                .is_empty()
        );
        assert!(block_on(store.day_alerts("paris", "yesterday")).is_err());

        let first = notice_record("2026-03-02", "1-1/team/blue", 10, 60);
        let second = notice_record("2026-03-02", "2-1/site", 20, 60);
        block_on(store.publish_notices(vec![first.clone(), second.clone()])).unwrap();
        let mut withdrawn = first.clone();
        withdrawn.withdrawn = true;
        withdrawn.notice.expires_at = Timestamp(MONDAY + 15 * MINUTE);
        block_on(store.publish_notices(vec![withdrawn.clone()])).unwrap();
        let notices = block_on(store.day_notices("paris", "2026-03-02")).unwrap();
        assert_eq!(
            notices,
            [second, withdrawn.clone()],
            "newest first, withdrawal kept"
        );
        assert!(withdrawn.shown_during(MONDAY, MONDAY + 11 * MINUTE));
        assert!(!withdrawn.shown_during(MONDAY + 15 * MINUTE, MONDAY + DAY));
        assert_eq!(store.stats().day_records, 4);
    }

    #[test]
    fn memory_drops_whole_days_older_than_the_alert_max_age() {
        let store = MemoryHistory::new(MemoryRetention {
            alert_max_age: Duration::from_secs(2 * 86_400),
            ..MemoryRetention::default()
        });
        let on = |date: &str| {
            let mut record = alert_record(&[(TransitionKind::Pending, 1)], 1);
            record.date = date.into();
            record
        };
        block_on(store.publish_alerts(vec![on("2026-02-27"), on("2026-02-28")])).unwrap();
        block_on(store.publish_notices(vec![notice_record("2026-02-28", "1-1/site", 0, 60)]))
            .unwrap();
        assert_eq!(store.stats().day_records, 3, "nothing is old yet");
        block_on(store.publish_alerts(vec![on("2026-03-02")])).unwrap();
        // 2 March and the two days before are kept; 27 February goes.
        assert!(
            block_on(store.day_alerts("paris", "2026-02-27"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            block_on(store.day_notices("paris", "2026-02-28"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            (store.stats().day_records, store.stats().days_expired),
            (3, 1)
        );
    }

    #[test]
    fn memory_team_reads_take_the_team_advisors_in_range() {
        let store = MemoryHistory::default();
        let mut red = record("advisor", "a2", MONDAY, 1);
        red.team = Some("red".into());
        block_on(store.publish(vec![
            record("advisor", "a1", MONDAY, 1),
            record("advisor", "a1", MONDAY + INTERVAL, 1),
            record("advisor", "a3", MONDAY, 1),
            red,
            record("team", "blue", MONDAY, 1),
        ]))
        .unwrap();
        let blue =
            block_on(store.team_advisors("paris", "blue", MONDAY, MONDAY + INTERVAL)).unwrap();
        assert_eq!(
            starts(&blue),
            [("a1".into(), MONDAY, 1), ("a3".into(), MONDAY, 1)]
        );
        assert!(
            block_on(store.team_advisors("paris", "blue", MONDAY, MONDAY))
                .unwrap()
                .is_empty()
        );
    }
}
