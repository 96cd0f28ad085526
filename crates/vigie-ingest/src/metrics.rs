//! The ingestion's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vigie_core::RejectReason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// What became of a site's snapshot at a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// Restored: only the events after it were replayed.
    Restored,
    /// None kept for the site: the day was replayed.
    None,
    /// Not usable (an earlier day, another stream, another configuration, another format):
    /// the day was replayed.
    Unusable,
    /// Could not be read: the day was replayed.
    Failed,
}

impl RestoreOutcome {
    /// Every outcome, as labelled.
    pub const ALL: [RestoreOutcome; 4] = [
        RestoreOutcome::Restored,
        RestoreOutcome::None,
        RestoreOutcome::Unusable,
        RestoreOutcome::Failed,
    ];

    /// The metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreOutcome::Restored => "restored",
            RestoreOutcome::None => "none",
            RestoreOutcome::Unusable => "unusable",
            RestoreOutcome::Failed => "failed",
        }
    }
}

/// What the consumer received, redelivered, dead-lettered and failed to do.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    /// Messages received from the event stream (redeliveries included).
    pub received: Counter,
    /// Messages the server delivered more than once.
    pub redeliveries: Counter,
    /// Messages the server still holds for the consumer (from the last message's metadata).
    pub lag: Gauge,
    /// Gaps or resets of the event stream seen.
    pub gaps: Counter,
    /// Deliveries the server sent that never arrived (read again).
    pub lost_deliveries: Counter,
    /// Failed pulls from the stream.
    pub fetch_errors: Counter,
    /// Acknowledgements that could not be sent.
    pub ack_errors: Counter,
    /// Refused events that could not be stored as dead letters (they come again).
    pub dead_letter_errors: Counter,
    dead_lettered: Family<ReasonLabel, Counter>,
    dead_lettered_total: Counter,
    /// Site snapshots saved.
    pub snapshots_saved: Counter,
    /// Site snapshots that could not be saved.
    pub snapshot_save_errors: Counter,
    /// Size of the last snapshot saved, in bytes.
    pub snapshot_bytes: Gauge,
    snapshot_restores: Family<OutcomeLabel, Counter>,
}

impl IngestMetrics {
    /// Registers the ingestion's metrics in `registry`.
    pub fn new(registry: &mut Registry) -> IngestMetrics {
        let metrics = IngestMetrics {
            received: Counter::default(),
            redeliveries: Counter::default(),
            lag: Gauge::default(),
            gaps: Counter::default(),
            lost_deliveries: Counter::default(),
            fetch_errors: Counter::default(),
            ack_errors: Counter::default(),
            dead_letter_errors: Counter::default(),
            dead_lettered: Family::default(),
            dead_lettered_total: Counter::default(),
            snapshots_saved: Counter::default(),
            snapshot_save_errors: Counter::default(),
            snapshot_bytes: Gauge::default(),
            snapshot_restores: Family::default(),
        };
        registry.register(
            "vigie_events_received",
            "Messages received from the event stream",
            metrics.received.clone(),
        );
        registry.register(
            "vigie_ingest_redeliveries",
            "Messages delivered again by the server (not acknowledged in time, or after a restart)",
            metrics.redeliveries.clone(),
        );
        registry.register(
            "vigie_ingest_consumer_lag",
            "Messages the server still holds for Vigie's consumer",
            metrics.lag.clone(),
        );
        registry.register(
            "vigie_ingest_gaps",
            "Gaps or resets seen in the event stream",
            metrics.gaps.clone(),
        );
        registry.register(
            "vigie_ingest_lost_deliveries",
            "Deliveries the server sent that never arrived (a server or connection lost on the way): read again from the stream",
            metrics.lost_deliveries.clone(),
        );
        registry.register(
            "vigie_ingest_fetch_errors",
            "Failed pulls from the event stream",
            metrics.fetch_errors.clone(),
        );
        registry.register(
            "vigie_ingest_ack_errors",
            "Acknowledgements that could not be sent",
            metrics.ack_errors.clone(),
        );
        registry.register(
            "vigie_ingest_dead_letter_errors",
            "Refused events that could not be stored as dead letters",
            metrics.dead_letter_errors.clone(),
        );
        registry.register(
            "vigie_events_dead_lettered",
            "Refused events kept on the dead-letter subject",
            metrics.dead_lettered_total.clone(),
        );
        registry.register(
            "vigie_events_dead_lettered_by_reason",
            "Refused events kept on the dead-letter subject, by reason",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "vigie_snapshots_saved",
            "Site snapshots saved to the snapshot bucket",
            metrics.snapshots_saved.clone(),
        );
        registry.register(
            "vigie_snapshot_save_errors",
            "Site snapshots that could not be saved (the previous one stays)",
            metrics.snapshot_save_errors.clone(),
        );
        registry.register(
            "vigie_snapshot_bytes",
            "Size of the last site snapshot saved",
            metrics.snapshot_bytes.clone(),
        );
        registry.register(
            "vigie_snapshot_restores",
            "Site starts by what became of the site's snapshot: restored, none, unusable, failed",
            metrics.snapshot_restores.clone(),
        );
        for outcome in RestoreOutcome::ALL {
            // Every outcome shows, at zero until it happens.
            drop(metrics.snapshot_restores.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            }));
        }
        metrics
    }

    /// Counts what became of a site's snapshot at its start.
    pub fn snapshot_restore(&self, outcome: RestoreOutcome) {
        self.snapshot_restores
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts an event kept as a dead letter.
    pub fn dead_lettered(&self, reason: RejectReason) {
        self.dead_lettered_total.inc();
        self.dead_lettered
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
}
