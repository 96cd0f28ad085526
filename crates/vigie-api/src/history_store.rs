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
use vigie_history::{IntervalRecord, RecordKey, ScopeKind};

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
}

impl Default for MemoryRetention {
    /// 400 days, 31 days for advisors, [`DEFAULT_MAX_RECORDS`].
    fn default() -> Self {
        MemoryRetention {
            max_age: Duration::from_secs(400 * 86_400),
            advisor_max_age: Duration::from_secs(31 * 86_400),
            max_records: DEFAULT_MAX_RECORDS,
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
}

/// Interval history in the process's memory, for the embedded demo (no broker): the same
/// answers as the JetStream store, retention measured against the newest record rather than
/// the clock (the demo's days may run faster than the wall clock), bounded in size. Lost when
/// the process stops.
#[derive(Debug)]
pub struct MemoryHistory {
    retention: MemoryRetention,
    state: Mutex<Shelves>,
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
        }
    }

    /// Its retention.
    pub fn retention(&self) -> MemoryRetention {
        self.retention
    }

    /// What it holds and has dropped.
    pub fn stats(&self) -> MemoryStats {
        let state = self.lock();
        MemoryStats {
            records: state.scopes.len() + state.advisors.len(),
            expired: state.expired,
            evicted: state.evicted,
        }
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
                evicted: 0
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
