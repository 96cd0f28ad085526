//! The engine's Prometheus metrics: what was applied, dropped and refused, and how long it took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vigie_core::{Outcome, ProcessorStats, RejectReason};

use crate::SiteFeed;

/// Label of rejections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Label of per-site gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

/// A counter following a running total kept elsewhere (the processor's statistics): each
/// observation adds what the total gained since the last.
#[derive(Clone, Debug, Default)]
struct FollowedCounter {
    counter: Counter,
    seen: std::sync::Arc<AtomicU64>,
}

impl FollowedCounter {
    fn observe(&self, total: u64) {
        let seen = self.seen.swap(total, Ordering::Relaxed);
        if total > seen {
            self.counter.inc_by(total - seen);
        }
    }
}

/// The engine's metrics, registered once in the process's registry.
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    applied: Counter,
    duplicates: Counter,
    rejected: Family<ReasonLabel, Counter>,
    apply_seconds: Histogram,
    batch_events: Histogram,
    contacts_tracked: Gauge,
    contacts_expired: FollowedCounter,
    site_complete: Family<SiteLabel, Gauge>,
    site_recovering: Family<SiteLabel, Gauge>,
    alert_evaluation_seconds: Histogram,
    alert_notifications: Counter,
    alert_notifications_dropped: Counter,
    history_batches: Counter,
    history_batches_dropped: Counter,
    interval_totals_dropped: FollowedCounter,
    abandoned_dropped: FollowedCounter,
    abandoned_listed: Gauge,
    snapshot_seconds: Histogram,
}

impl EngineMetrics {
    /// Registers the engine's metrics in `registry`.
    pub fn new(registry: &mut Registry) -> EngineMetrics {
        let metrics = EngineMetrics {
            applied: Counter::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 10)),
            batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            contacts_tracked: Gauge::default(),
            contacts_expired: FollowedCounter::default(),
            site_complete: Family::default(),
            site_recovering: Family::default(),
            alert_evaluation_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 10)),
            alert_notifications: Counter::default(),
            alert_notifications_dropped: Counter::default(),
            history_batches: Counter::default(),
            history_batches_dropped: Counter::default(),
            interval_totals_dropped: FollowedCounter::default(),
            abandoned_dropped: FollowedCounter::default(),
            abandoned_listed: Gauge::default(),
            snapshot_seconds: Histogram::new(exponential_buckets(0.000_1, 4.0, 10)),
        };
        registry.register(
            "vigie_events_applied",
            "Events applied to the indicators",
            metrics.applied.clone(),
        );
        registry.register(
            "vigie_events_duplicate",
            "Events dropped because their id was already applied",
            metrics.duplicates.clone(),
        );
        registry.register(
            "vigie_events_rejected",
            "Events refused by the processor or the decoder, by reason",
            metrics.rejected.clone(),
        );
        for reason in RejectReason::ALL {
            // Every reason shows, at zero until it happens.
            drop(metrics.rejected.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            }));
        }
        registry.register(
            "vigie_engine_apply_seconds",
            "Time the engine took to apply one batch of events",
            metrics.apply_seconds.clone(),
        );
        registry.register(
            "vigie_engine_snapshot_seconds",
            "Time the engine took to encode a site's whole state for its snapshot (it applies nothing meanwhile)",
            metrics.snapshot_seconds.clone(),
        );
        registry.register(
            "vigie_engine_batch_events",
            "Events per batch applied",
            metrics.batch_events.clone(),
        );
        registry.register(
            "vigie_contacts_tracked",
            "Contacts in progress (or just completed) held by the processor",
            metrics.contacts_tracked.clone(),
        );
        registry.register(
            "vigie_contacts_expired",
            "Contacts given up after contact_expiry without an event",
            metrics.contacts_expired.counter.clone(),
        );
        registry.register(
            "vigie_site_complete",
            "1 when a site's figures are complete (not recovering, no gap seen in its feed)",
            metrics.site_complete.clone(),
        );
        registry.register(
            "vigie_site_recovering",
            "1 while a site replays its day after a start",
            metrics.site_recovering.clone(),
        );
        registry.register(
            "vigie_alert_evaluation_seconds",
            "Time to evaluate a site's alert rules once",
            metrics.alert_evaluation_seconds.clone(),
        );
        registry.register(
            "vigie_alert_notifications",
            "Alert notifications handed to delivery",
            metrics.alert_notifications.clone(),
        );
        registry.register(
            "vigie_alert_notifications_dropped",
            "Alert notifications dropped because delivery was full or gone",
            metrics.alert_notifications_dropped.clone(),
        );
        registry.register(
            "vigie_history_batches",
            "Interval records (one interval of one site, every scope) handed to the history task",
            metrics.history_batches.clone(),
        );
        registry.register(
            "vigie_history_batches_dropped",
            "Interval records dropped because the history task was full or gone (a restart offers them again)",
            metrics.history_batches_dropped.clone(),
        );
        registry.register(
            "vigie_history_interval_totals_dropped",
            "Interval totals the processor captured and dropped before the engine took them (their intervals are offered again after a restart)",
            metrics.interval_totals_dropped.counter.clone(),
        );
        registry.register(
            "vigie_history_abandoned_dropped",
            "Abandoned contacts left out of the list (the processor's journal or a site's list was full); still counted in the figures",
            metrics.abandoned_dropped.counter.clone(),
        );
        registry.register(
            "vigie_history_abandoned_listed",
            "Abandoned contacts the engine keeps for the day's list (every site)",
            metrics.abandoned_listed.clone(),
        );
        metrics
    }

    /// Counts one interval's records handed to the history task, or dropped.
    pub fn count_history_batch(&self, handed_over: bool) {
        if handed_over {
            self.history_batches.inc();
        } else {
            self.history_batches_dropped.inc();
        }
    }

    /// Times one evaluation of a site's alert rules.
    pub fn observe_alert_evaluation(&self, took: std::time::Duration) {
        self.alert_evaluation_seconds.observe(took.as_secs_f64());
    }

    /// Counts a notification handed to delivery, or dropped.
    pub fn count_notification(&self, delivered: bool) {
        if delivered {
            self.alert_notifications.inc();
        } else {
            self.alert_notifications_dropped.inc();
        }
    }

    /// Counts one event's outcome. Decoding rejections are counted by the source with
    /// [`EngineMetrics::count_rejection`].
    pub fn count(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Applied => {
                self.applied.inc();
            }
            Outcome::Duplicate => {
                self.duplicates.inc();
            }
            Outcome::Rejected(rejection) => self.count_rejection(rejection.reason),
        }
    }

    /// Counts an event refused before it reached the processor (it could not be decoded).
    pub fn count_rejection(&self, reason: RejectReason) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub(crate) fn observe_batch(&self, events: usize, took: Duration) {
        self.apply_seconds.observe(took.as_secs_f64());
        self.batch_events.observe(events as f64);
    }

    pub(crate) fn observe_snapshot(&self, took: Duration) {
        self.snapshot_seconds.observe(took.as_secs_f64());
    }

    /// Observes the processor's statistics of every site, with what the engine's lists of
    /// abandoned contacts dropped and hold.
    pub(crate) fn observe_processor(
        &self,
        sites: impl Iterator<Item = ProcessorStats>,
        abandoned_lists: (u64, usize),
    ) {
        let (mut tracked, mut expired, mut totals_dropped, mut abandoned_dropped) = (0, 0, 0, 0);
        for stats in sites {
            tracked += stats.contacts_tracked;
            expired += stats.contacts_expired;
            totals_dropped += stats.interval_totals_dropped;
            abandoned_dropped += stats.abandoned_changes_dropped;
        }
        self.contacts_tracked
            .set(i64::try_from(tracked).unwrap_or(i64::MAX));
        self.contacts_expired.observe(expired);
        self.interval_totals_dropped.observe(totals_dropped);
        let (list_dropped, listed) = abandoned_lists;
        self.abandoned_dropped
            .observe(abandoned_dropped + list_dropped);
        self.abandoned_listed
            .set(i64::try_from(listed).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_feed(&self, site: &str, feed: &SiteFeed) {
        let label = SiteLabel {
            site: site.to_owned(),
        };
        self.site_complete
            .get_or_create(&label)
            .set(i64::from(feed.complete()));
        self.site_recovering
            .get_or_create(&label)
            .set(i64::from(feed.recovering));
    }
}
