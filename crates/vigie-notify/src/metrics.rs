//! The deliveries' Prometheus metrics. The `route` label is the route's name from the
//! configuration (`nats` for the NATS publication), never its URL.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteReasonLabel {
    route: String,
    reason: &'static str,
}

/// Why a notification was dropped before reaching a route.
pub(crate) mod drop_reason {
    /// The notifier's queue was full.
    pub const QUEUE_FULL: &str = "queue_full";
    /// The notifier had stopped.
    pub const CLOSED: &str = "closed";
}

/// Why a route dropped a notification without trying it.
pub(crate) mod route_drop_reason {
    /// The route's queue was full (its webhook is slow or down).
    pub const QUEUE_FULL: &str = "queue_full";
    /// The shutdown grace period ended first.
    pub const SHUTDOWN: &str = "shutdown";
}

/// Every notification the notifier took or dropped, and every delivery attempt's outcome.
#[derive(Clone, Debug)]
pub struct NotifyMetrics {
    accepted: Counter,
    dropped: Family<ReasonLabel, Counter>,
    route_dropped: Family<RouteReasonLabel, Counter>,
    delivered: Family<RouteLabel, Counter>,
    retries: Family<RouteReasonLabel, Counter>,
    failed: Family<RouteReasonLabel, Counter>,
    queued: Family<RouteLabel, Gauge>,
    latency: Family<RouteLabel, Histogram>,
}

impl Default for NotifyMetrics {
    /// Metrics registered nowhere (tests, tools).
    fn default() -> Self {
        NotifyMetrics {
            accepted: Counter::default(),
            dropped: Family::default(),
            route_dropped: Family::default(),
            delivered: Family::default(),
            retries: Family::default(),
            failed: Family::default(),
            queued: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ])
}

impl NotifyMetrics {
    /// Registers the deliveries' metrics in `registry`.
    pub fn new(registry: &mut Registry) -> NotifyMetrics {
        let metrics = NotifyMetrics::default();
        registry.register(
            "vigie_notify_accepted",
            "Alert notifications taken into the notifier's queue",
            metrics.accepted.clone(),
        );
        registry.register(
            "vigie_notify_dropped",
            "Alert notifications dropped before routing (queue full, notifier stopped), by reason",
            metrics.dropped.clone(),
        );
        registry.register(
            "vigie_notify_route_dropped",
            "Alert notifications a route dropped without trying (its queue full, shutdown), by route and reason",
            metrics.route_dropped.clone(),
        );
        registry.register(
            "vigie_notify_delivered",
            "Alert notifications delivered, by route",
            metrics.delivered.clone(),
        );
        registry.register(
            "vigie_notify_retries",
            "Delivery attempts that failed and were retried, by route and reason (connect, timeout, request, server_error, rate_limited, nats)",
            metrics.retries.clone(),
        );
        registry.register(
            "vigie_notify_failed",
            "Deliveries given up, by route and reason (rejected, attempts, deadline, shutdown)",
            metrics.failed.clone(),
        );
        registry.register(
            "vigie_notify_queued",
            "Alert notifications waiting in each route's queue",
            metrics.queued.clone(),
        );
        registry.register(
            "vigie_notify_delivery_seconds",
            "Time from a notification entering its route's queue to its delivery, retries included",
            metrics.latency.clone(),
        );
        metrics
    }

    pub(crate) fn accepted(&self) {
        self.accepted.inc();
    }

    pub(crate) fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn route_dropped(&self, route: &str, reason: &'static str, count: u64) {
        self.route_dropped
            .get_or_create(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .inc_by(count);
    }

    pub(crate) fn delivered(&self, route: &str, seconds: f64) {
        let label = RouteLabel {
            route: route.to_owned(),
        };
        self.delivered.get_or_create(&label).inc();
        self.latency.get_or_create(&label).observe(seconds);
    }

    pub(crate) fn retried(&self, route: &str, reason: &'static str) {
        self.retries
            .get_or_create(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .inc();
    }

    pub(crate) fn failed(&self, route: &str, reason: &'static str) {
        self.failed
            .get_or_create(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .inc();
    }

    pub(crate) fn queued(&self, route: &str) -> Gauge {
        self.queued
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .clone()
    }

    /// Notifications taken so far.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.get()
    }

    /// Notifications dropped before routing, for `reason` (`queue_full`, `closed`).
    pub fn dropped_total(&self, reason: &'static str) -> u64 {
        self.dropped
            .get(&ReasonLabel { reason })
            .map_or(0, |c| c.get())
    }

    /// Notifications `route` dropped without trying, for `reason` (`queue_full`,
    /// `shutdown`).
    pub fn route_dropped_total(&self, route: &str, reason: &'static str) -> u64 {
        self.route_dropped
            .get(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .map_or(0, |c| c.get())
    }

    /// Deliveries `route` made.
    pub fn delivered_total(&self, route: &str) -> u64 {
        self.delivered
            .get(&RouteLabel {
                route: route.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Retries `route` made for `reason` (`connect`, `timeout`, `request`, `server_error`,
    /// `rate_limited`, `nats`).
    pub fn retries_total(&self, route: &str, reason: &'static str) -> u64 {
        self.retries
            .get(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .map_or(0, |c| c.get())
    }

    /// Deliveries `route` gave up, for `reason` (`rejected`, `attempts`, `deadline`,
    /// `shutdown`).
    pub fn failed_total(&self, route: &str, reason: &'static str) -> u64 {
        self.failed
            .get(&RouteReasonLabel {
                route: route.to_owned(),
                reason,
            })
            .map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_under_their_documented_names() {
        let mut registry = Registry::default();
        let metrics = NotifyMetrics::new(&mut registry);
        metrics.accepted();
        metrics.dropped(drop_reason::QUEUE_FULL);
        metrics.route_dropped("sales", route_drop_reason::SHUTDOWN, 2);
        metrics.delivered("sales", 0.2);
        metrics.retried("sales", "rate_limited");
        metrics.failed("sales", "attempts");
        metrics.queued("sales").inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "vigie_notify_accepted_total 1",
            "vigie_notify_dropped_total{reason=\"queue_full\"} 1",
            "vigie_notify_route_dropped_total{route=\"sales\",reason=\"shutdown\"} 2",
            "vigie_notify_delivered_total{route=\"sales\"} 1",
            "vigie_notify_retries_total{route=\"sales\",reason=\"rate_limited\"} 1",
            "vigie_notify_failed_total{route=\"sales\",reason=\"attempts\"} 1",
            "vigie_notify_queued{route=\"sales\"} 1",
            "vigie_notify_delivery_seconds_count{route=\"sales\"} 1",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert_eq!(metrics.retries_total("sales", "rate_limited"), 1);
        assert_eq!(metrics.retries_total("other", "rate_limited"), 0);
    }
}
