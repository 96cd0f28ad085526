//! The history task: takes the interval records the engine offers (at each interval's close
//! and when its figures are final), keeps those that change what the history store holds, and
//! stores them, retrying while the store is unavailable.
//!
//! What the store holds of a day is read once per site and day before the first records of
//! that day are admitted, so that after a restart, while the engine rebuilds the day from the
//! event stream, records already stored are not published again and those that differ are
//! published as corrections (`vigie_history::publish`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigie_api::history_store::{HistoryError, HistoryStore};
use vigie_engine::HistoryBatch;
use vigie_history::publish::Publisher;

/// Records offered by the engine that may wait for the store (each is one interval of one
/// site, every scope); beyond, the engine drops and counts (a restart offers them again).
pub const HISTORY_BACKLOG: usize = 1024;

/// Longest pause between two attempts at an unavailable store.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long the previous day's keys are kept: its last interval becomes final after midnight.
const KEEP_KEYS: i64 = 24 * 3_600_000;

/// The history task's metrics.
#[derive(Clone, Debug, Default)]
pub struct HistoryMetrics {
    published: Counter,
    unchanged: Counter,
    refused: Counter,
    store_errors: Counter,
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
            let stored = retry(&metrics, &shutdown, "read the day", || {
                store.day(&batch.site, &date)
            })
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
        let stored = retry(&metrics, &shutdown, "store records", || {
            store.publish(records.clone())
        })
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
/// until `shutdown`; `None` then. A refused record is not retried: logged, counted, `None`.
async fn retry<T, F, Fut>(
    metrics: &HistoryMetrics,
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
                metrics.refused.inc();
                error!(%key, %reason, "interval records refused by the history store: not stored");
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
