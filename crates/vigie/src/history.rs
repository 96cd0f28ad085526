//! The history task: takes the interval records the engine offers (at each interval's close
//! and when its figures are final), keeps those that change what the history store holds, and
//! stores them, retrying while the store is unavailable.
//!
//! What the store holds of a day is read once per site and day before the first records of
//! that day are admitted, so that after a restart, while the engine rebuilds the day from the
//! event stream, records already stored are not published again and those that differ are
//! published as corrections (`vigie_history::publish`).
//!
//! The alert recorder ([`record_alerts`]) does the same for the alerts of each day: it follows
//! the engine's alert changes and stores the whole state of each alert that changed, one record
//! per site, day and alert, merged with what was stored before (see
//! [`vigie_api::history_store::merge_alert`]) and only when its content changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigie_api::history_store::{
    AlertRecord, HistoryError, HistoryStore, TransitionRecord, merge_alert,
};
use vigie_engine::{AlertUpdate, EngineHandle, EngineState, HistoryBatch};
use vigie_history::publish::Publisher;

/// Records offered by the engine that may wait for the store (each is one interval of one
/// site, every scope); beyond, the engine drops and counts (a restart offers them again).
pub const HISTORY_BACKLOG: usize = 1024;

/// Longest pause between two attempts at an unavailable store.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long the previous day's keys are kept: its last interval becomes final after midnight.
const KEEP_KEYS: i64 = 24 * 3_600_000;

/// The history task's metrics, and the alert recorder's.
#[derive(Clone, Debug, Default)]
pub struct HistoryMetrics {
    published: Counter,
    unchanged: Counter,
    refused: Counter,
    store_errors: Counter,
    alerts_published: Counter,
    alerts_unchanged: Counter,
    alerts_refused: Counter,
    alerts_resyncs: Counter,
    alerts_lost: Counter,
}

impl HistoryMetrics {
    /// Registers the history task's metrics in `registry`.
    pub fn new(registry: &mut Registry) -> HistoryMetrics {
        let metrics = HistoryMetrics::default();
        registry.register(
            "vigie_history_records_published",
            "Interval records stored in the history (first versions and corrections)",
            metrics.published.clone(),
        );
        registry.register(
            "vigie_history_records_unchanged",
            "Interval records offered again with the content already stored, not published",
            metrics.unchanged.clone(),
        );
        registry.register(
            "vigie_history_records_refused",
            "Interval records the history store refused (logged with the reason)",
            metrics.refused.clone(),
        );
        registry.register(
            "vigie_history_store_errors",
            "Failed attempts to read or write the history store (retried)",
            metrics.store_errors.clone(),
        );
        registry.register(
            "vigie_history_alerts_published",
            "Alert records stored in the history (an alert's state of a day, each time it changed)",
            metrics.alerts_published.clone(),
        );
        registry.register(
            "vigie_history_alerts_unchanged",
            "Alert states read after a change that the history already held, not published",
            metrics.alerts_unchanged.clone(),
        );
        registry.register(
            "vigie_history_alerts_refused",
            "Alert records the history store refused (logged with the reason)",
            metrics.alerts_refused.clone(),
        );
        registry.register(
            "vigie_history_alerts_resyncs",
            "Times the alert recorder fell behind the engine's alert changes and read every alert again",
            metrics.alerts_resyncs.clone(),
        );
        registry.register(
            "vigie_history_alerts_lost",
            "Alert changes not recorded: the alert's day ended before its state could be read, and nothing of it was stored that day",
            metrics.alerts_lost.clone(),
        );
        metrics
    }
}

/// Runs until the engine's side of `batches` closes or `shutdown` is cancelled.
pub async fn run(
    store: Arc<dyn HistoryStore>,
    mut batches: mpsc::Receiver<HistoryBatch>,
    metrics: HistoryMetrics,
    shutdown: CancellationToken,
) {
    let mut publisher = Publisher::new();
    let mut seeded: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => break,
            batch = batches.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        let Some(date) = batch.records.first().map(|r| r.date.clone()) else {
            continue;
        };
        if !seeded.contains(&(batch.site.clone(), date.clone())) {
            let stored = retry(
                &metrics,
                &metrics.refused,
                &shutdown,
                "read the day",
                || store.day(&batch.site, &date),
            )
            .await;
            let Some(stored) = stored else { break };
            info!(site = %batch.site, %date, records = stored.len(), "history of the day read from the store");
            publisher.forget_before(batch.start.0 - KEEP_KEYS);
            seeded.retain(|(site, _)| site != &batch.site);
            publisher.seed(stored);
            seeded.insert((batch.site.clone(), date));
        }
        let offered = batch.records.len();
        let records = publisher.admit(batch.records, batch.settled);
        metrics.unchanged.inc_by((offered - records.len()) as u64);
        if records.is_empty() {
            continue;
        }
        let count = records.len() as u64;
        let stored = retry(
            &metrics,
            &metrics.refused,
            &shutdown,
            "store records",
            || store.publish(records.clone()),
        )
        .await;
        match stored {
            Some(()) => {
                metrics.published.inc_by(count);
            }
            None if shutdown.is_cancelled() => break,
            None => {}
        }
    }
}

/// Runs `attempt` until it succeeds, waiting longer after each failure (with jitter), or
/// until `shutdown`; `None` then. A refused record is not retried: logged, counted in
/// `refused`, `None`.
async fn retry<T, F, Fut>(
    metrics: &HistoryMetrics,
    refused: &Counter,
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, HistoryError>>,
{
    let mut backoff = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(HistoryError::BadRecord { key, reason }) => {
                refused.inc();
                error!(%key, %reason, "records refused by the history store: not stored ({what})");
                return None;
            }
            Err(problem) => {
                metrics.store_errors.inc();
                warn!(error = %problem, retry_in = ?backoff, "could not {what} in the history store");
            }
        }
        // Jitter from the clock's sub-second digits: enough to spread instances retrying
        // against the same store.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        let jitter = Duration::from_millis(u64::from(nanos % 250));
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What the alert recorder knows of one site's day: how far the earlier runs had got, and the
/// record it last stored of each alert.
#[derive(Clone, Debug, Default)]
struct RecordedDay {
    /// The newest `as_of_ms` of the day's records stored before this run, when it first read
    /// them: transitions up to it were seen by an earlier run (see [`merge_alert`]).
    carried_until_ms: Option<i64>,
    /// The records as stored, by alert id.
    stored: BTreeMap<String, AlertRecord>,
}

/// The pure part of the alert recorder: the records it stored of each site's recent days, and
/// what to store next. A day is seeded from the store before its first record is admitted.
#[derive(Clone, Debug, Default)]
pub struct AlertRecorder {
    days: BTreeMap<(String, NaiveDate), RecordedDay>,
}

/// A change the engine reported whose alert could not be read for the change's day any more
/// (the site's day changed meanwhile, or the rule went away): its transition alone.
#[derive(Clone, Debug, PartialEq)]
pub struct LoneTransition {
    /// The alert id.
    pub alert: String,
    /// The site-local day of the transition.
    pub date: NaiveDate,
    /// The transition.
    pub transition: TransitionRecord,
}

impl AlertRecorder {
    /// Nothing recorded yet.
    pub fn new() -> AlertRecorder {
        AlertRecorder::default()
    }

    /// Whether what the store holds of the site's day was read.
    pub fn is_seeded(&self, site: &str, date: NaiveDate) -> bool {
        self.days.contains_key(&(site.to_owned(), date))
    }

    /// Takes what the store holds of a site's day, before this run stored anything of it. The
    /// site's days older than the day before are forgotten (their alerts no longer change).
    pub fn seed(&mut self, site: &str, date: NaiveDate, stored: Vec<AlertRecord>) {
        let yesterday = date.pred_opt().unwrap_or(date);
        self.days
            .retain(|(kept, day), _| kept != site || *day >= yesterday);
        let carried_until_ms = stored.iter().map(|r| r.as_of_ms).max();
        self.days.insert(
            (site.to_owned(), date),
            RecordedDay {
                carried_until_ms,
                stored: stored.into_iter().map(|r| (r.id.clone(), r)).collect(),
            },
        );
    }

    /// The record to store for an alert as the engine lists it now (`live`, of a seeded day):
    /// merged with what was stored ([`merge_alert`]); `None` when that is what the store holds
    /// already.
    pub fn admit(&self, live: AlertRecord) -> Option<AlertRecord> {
        let date = NaiveDate::parse_from_str(&live.date, "%Y-%m-%d").ok()?;
        let day = self.days.get(&(live.site.clone(), date));
        let stored = day.and_then(|day| day.stored.get(&live.id));
        let carried = day.and_then(|day| day.carried_until_ms);
        let merged = merge_alert(stored, live, carried);
        match stored {
            Some(stored) if stored.digest() == merged.digest() => None,
            _ => Some(merged),
        }
    }

    /// The record to store for a lone transition: the alert's record of that day with the
    /// transition added. `Err(())` when nothing of the alert was stored that day (the change
    /// cannot be recorded); `Ok(None)` when the record holds it already.
    #[allow(clippy::result_unit_err)] // The caller counts the loss; there is nothing to say.
    pub fn admit_lone(&self, site: &str, lone: LoneTransition) -> Result<Option<AlertRecord>, ()> {
        let stored = self
            .days
            .get(&(site.to_owned(), lone.date))
            .and_then(|day| day.stored.get(&lone.alert))
            .ok_or(())?;
        let mut changed = stored.clone();
        changed.apply(lone.transition);
        Ok((changed.digest() != stored.digest()).then_some(changed))
    }

    /// Notes that a record was stored.
    pub fn stored(&mut self, record: AlertRecord) {
        let Ok(date) = NaiveDate::parse_from_str(&record.date, "%Y-%m-%d") else {
            return;
        };
        self.days
            .entry((record.site.clone(), date))
            .or_default()
            .stored
            .insert(record.id.clone(), record);
    }
}

/// What the engine says of some alerts of a site: their state now (records of the site's
/// current day) and the changes whose alert could not be read for their day.
#[derive(Debug, Default)]
struct AlertReading {
    today: Option<NaiveDate>,
    live: Vec<AlertRecord>,
    lone: Vec<LoneTransition>,
}

/// The alerts of `site` the engine lists now, those named in `ids` (every one when `None`), as
/// records of the site's current day; `changes`' transitions that belong to another day, or
/// whose alert is gone, apart.
fn read_alerts(
    state: &EngineState,
    site: &str,
    changes: &[vigie_alerts::Change],
    every_alert: bool,
) -> AlertReading {
    let (Some(processor), Some(engine)) = (state.processor.site(site), state.alerts.get(site))
    else {
        return AlertReading::default();
    };
    let now = processor.now();
    let today = processor.day_of(now).date;
    let date = today.format("%Y-%m-%d").to_string();
    let reasons: BTreeMap<&str, Option<String>> = engine
        .rules()
        .map(|rule| (rule.id.as_str(), rule.reason.clone()))
        .collect();
    let record = |alert: &vigie_alerts::Alert| {
        let reason = reasons.get(alert.rule.as_str()).cloned().flatten();
        AlertRecord::of(alert, reason, &date, now)
    };
    let mut reading = AlertReading {
        today: Some(today),
        ..AlertReading::default()
    };
    if every_alert {
        reading.live = engine.alerts().iter().map(record).collect();
    }
    let mut read: BTreeSet<&str> = BTreeSet::new();
    for change in changes {
        let day = processor.day_of(change.transition.at).date;
        let alert = (day == today)
            .then(|| engine.alert(&change.alert))
            .flatten();
        match alert {
            Some(alert) => {
                if !every_alert && read.insert(&change.alert) {
                    reading.live.push(record(&alert));
                }
            }
            None => reading.lone.push(LoneTransition {
                alert: change.alert.clone(),
                date: day,
                transition: (&change.transition).into(),
            }),
        }
    }
    reading
}

/// The alert recorder: follows the engine's alert changes and stores each alert whose state
/// changed, for its site-local day, retrying while the store is unavailable. When it falls
/// behind the engine's broadcast it reads every alert again rather than miss a change. Runs
/// until `shutdown` or the engine stops. `updates` is the engine's
/// [`EngineHandle::subscribe_alerts`], taken before the engine runs so that no change is missed.
pub async fn record_alerts(
    store: Arc<dyn HistoryStore>,
    engine: EngineHandle,
    mut updates: broadcast::Receiver<AlertUpdate>,
    metrics: HistoryMetrics,
    shutdown: CancellationToken,
) {
    let mut recorder = AlertRecorder::new();
    loop {
        let update = tokio::select! {
            () = shutdown.cancelled() => return,
            update = updates.recv() => update,
        };
        let readings: Vec<(String, AlertReading)> = match update {
            Ok(AlertUpdate { site, changes }) => {
                let site = site.to_string();
                let wanted = site.clone();
                let Ok(reading) = engine
                    .query(move |state| read_alerts(state, &wanted, &changes, false))
                    .await
                else {
                    return;
                };
                vec![(site, reading)]
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                metrics.alerts_resyncs.inc();
                warn!(
                    missed,
                    "the alert recorder fell behind the engine: every alert read again"
                );
                let Ok(readings) = engine
                    .query(|state| {
                        state
                            .alerts
                            .keys()
                            .map(|site| (site.clone(), read_alerts(state, site, &[], true)))
                            .collect()
                    })
                    .await
                else {
                    return;
                };
                readings
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for (site, reading) in readings {
            let days: BTreeSet<NaiveDate> = reading
                .today
                .into_iter()
                .chain(reading.lone.iter().map(|lone| lone.date))
                .collect();
            for date in days {
                if recorder.is_seeded(&site, date) {
                    continue;
                }
                let text = date.format("%Y-%m-%d").to_string();
                let refused = metrics.alerts_refused.clone();
                let Some(stored) =
                    retry(&metrics, &refused, &shutdown, "read a day's alerts", || {
                        store.day_alerts(&site, &text)
                    })
                    .await
                else {
                    return;
                };
                info!(%site, date = %text, alerts = stored.len(), "alerts of the day read from the history store");
                recorder.seed(&site, date, stored);
            }
            let mut records = Vec::new();
            for live in reading.live {
                match recorder.admit(live) {
                    Some(record) => records.push(record),
                    None => {
                        metrics.alerts_unchanged.inc();
                    }
                }
            }
            for lone in reading.lone {
                match recorder.admit_lone(&site, lone) {
                    Ok(Some(record)) => records.push(record),
                    Ok(None) => {
                        metrics.alerts_unchanged.inc();
                    }
                    Err(()) => {
                        warn!(%site, "an alert change of an earlier day could not be recorded");
                        metrics.alerts_lost.inc();
                    }
                }
            }
            if records.is_empty() {
                continue;
            }
            let refused = metrics.alerts_refused.clone();
            let stored = retry(&metrics, &refused, &shutdown, "store alerts", || {
                store.publish_alerts(records.clone())
            })
            .await;
            match stored {
                Some(()) => {
                    metrics.alerts_published.inc_by(records.len() as u64);
                    for record in records {
                        recorder.stored(record);
                    }
                }
                None if shutdown.is_cancelled() => return,
                None => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.
mod tests {
    use vigie_api::history_store::{StateRecord, TransitionKindRecord};

    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2026-03-02T00:00:00Z.
    const MONDAY: i64 = 1_772_409_600_000;

    fn transition(kind: TransitionKindRecord, minute: i64) -> TransitionRecord {
        TransitionRecord {
            kind,
            at_ms: MONDAY + minute * MINUTE,
            severity: None,
            value: Some(61.0),
            threshold: Some(60.0),
            cause: None,
            by: None,
            until_ms: None,
        }
    }

    /// A record of 2 March as the engine would list it at `as_of_minute`.
    fn record(history: &[(TransitionKindRecord, i64)], as_of_minute: i64) -> AlertRecord {
        serde_json::from_value(serde_json::json!({
            "site": "paris",
            "date": "2026-03-02",
            "as_of_ms": MONDAY + as_of_minute * MINUTE,
            "id": "wait/queue/q",
            "teams": ["blue"],
            "rule": "wait",
            "rule_name": "Caller waiting too long",
            "target_kind": "queue",
            "target_id": "q",
            "metric": "longest_wait",
            "comparator": "above",
            "unit": "seconds",
            "state": "firing",
            "threshold": 60.0,
            "history": history
                .iter()
                .map(|&(kind, minute)| transition(kind, minute))
                .collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn monday() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    #[test]
    fn an_alert_is_stored_again_only_when_its_content_changed() {
        use TransitionKindRecord::{Fired, Pending};
        let mut recorder = AlertRecorder::new();
        recorder.seed("paris", monday(), Vec::new());
        let first = recorder.admit(record(&[(Pending, 1)], 1)).unwrap();
        recorder.stored(first);
        // Read again later without a change: the same content, nothing to store.
        assert_eq!(recorder.admit(record(&[(Pending, 1)], 5)), None);
        let fired = recorder
            .admit(record(&[(Pending, 1), (Fired, 6)], 6))
            .unwrap();
        assert_eq!(fired.history.len(), 2);
    }

    #[test]
    fn after_a_restart_the_replay_does_not_repeat_what_was_stored() {
        use TransitionKindRecord::{Acknowledged, Fired, Pending, Resolved};
        let mut stored = record(&[(Pending, 1), (Fired, 2), (Acknowledged, 3)], 4);
        stored.acknowledged = Some(vigie_api::history_store::AcknowledgementRecord {
            by: "camille".into(),
            at_ms: MONDAY + 3 * MINUTE,
        });
        let mut recorder = AlertRecorder::new();
        recorder.seed("paris", monday(), vec![stored.clone()]);
        // The replay fires again, at 5 (past the earlier run's reach, 4): nothing new.
        assert_eq!(recorder.admit(record(&[(Pending, 1), (Fired, 5)], 5)), None);
        let mut resolved = record(&[(Pending, 1), (Fired, 5), (Resolved, 9)], 9);
        resolved.state = StateRecord::Resolved;
        let merged = recorder.admit(resolved).unwrap();
        let kinds: Vec<TransitionKindRecord> = merged.history.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [Pending, Fired, Acknowledged, Resolved]);
        assert_eq!(
            merged.history[1].at_ms,
            MONDAY + 2 * MINUTE,
            "the stored firing"
        );
    }

    #[test]
    fn a_change_of_a_day_over_is_added_to_its_record_or_counted_lost() {
        use TransitionKindRecord::{Fired, Resolved};
        let mut recorder = AlertRecorder::new();
        recorder.seed("paris", monday(), vec![record(&[(Fired, 2)], 2)]);
        let lone = |alert: &str| LoneTransition {
            alert: alert.into(),
            date: monday(),
            transition: transition(Resolved, 23 * 60 + 59),
        };
        let record = recorder
            .admit_lone("paris", lone("wait/queue/q"))
            .unwrap()
            .unwrap();
        assert_eq!(record.state, StateRecord::Resolved);
        recorder.stored(record);
        assert_eq!(
            recorder.admit_lone("paris", lone("wait/queue/q")),
            Ok(None),
            "already there"
        );
        assert_eq!(
            recorder.admit_lone("paris", lone("wait/queue/other")),
            Err(())
        );
    }
}
