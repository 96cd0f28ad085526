//! The API's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// Calls, streams and what they carried.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    calls: Family<CallLabels, Counter>,
    /// Open `Watch*` streams.
    pub streams: Gauge,
    /// Views being published to streams (distinct site, target, window).
    pub topics: Gauge,
    /// Views published by the topics (each may reach many streams).
    pub frames_published: Counter,
    messages: Family<KindLabel, Counter>,
    notices: Family<EventLabel, Counter>,
    notices_held: Gauge,
}

impl ApiMetrics {
    /// Registers the API's metrics in `registry`.
    pub fn new(registry: &mut Registry) -> ApiMetrics {
        let metrics = ApiMetrics {
            calls: Family::default(),
            streams: Gauge::default(),
            topics: Gauge::default(),
            frames_published: Counter::default(),
            messages: Family::default(),
            notices: Family::default(),
            notices_held: Gauge::default(),
        };
        registry.register(
            "vigie_api_calls",
            "gRPC calls answered, by method and status code (streams counted when they start)",
            metrics.calls.clone(),
        );
        registry.register(
            "vigie_api_streams",
            "Watch streams open",
            metrics.streams.clone(),
        );
        registry.register(
            "vigie_api_topics",
            "Distinct views being published to Watch streams",
            metrics.topics.clone(),
        );
        registry.register(
            "vigie_api_frames_published",
            "Views read from the engine and published to Watch streams",
            metrics.frames_published.clone(),
        );
        registry.register(
            "vigie_api_stream_messages",
            "Messages sent on Watch streams, by kind (snapshot, change, resync: the client skipped views)",
            metrics.messages.clone(),
        );
        registry.register(
            "vigie_api_notices",
            "Wallboard notices by event: posted, withdrawn, expired (those found expired when a site's notices are read back after a restart included)",
            metrics.notices.clone(),
        );
        registry.register(
            "vigie_api_notices_held",
            "Wallboard notices held in memory, over the sites asked about since the start (expired ones wait for the next expiry pass)",
            metrics.notices_held.clone(),
        );
        metrics
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> ApiMetrics {
        ApiMetrics::new(&mut Registry::default())
    }

    /// Counts a call and its outcome.
    /// Counts a call by the outcome of `result`, and passes it on.
    pub(crate) fn counted<R>(
        &self,
        method: &'static str,
        result: Result<R, tonic::Status>,
    ) -> Result<R, tonic::Status> {
        self.call(
            method,
            result
                .as_ref()
                .map_or_else(tonic::Status::code, |_| tonic::Code::Ok),
        );
        result
    }

    pub fn call(&self, method: &'static str, code: tonic::Code) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
    }

    /// Counts a message sent on a stream.
    pub fn message(&self, kind: &'static str) {
        self.messages.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts `count` notices that were `event` (posted, withdrawn, expired).
    pub fn notices(&self, event: &'static str, count: usize) {
        self.notices
            .get_or_create(&EventLabel { event })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// One site's board went from `before` to `after` notices held.
    pub fn notices_held(&self, before: usize, after: usize) {
        let (before, after) = (
            i64::try_from(before).unwrap_or(i64::MAX),
            i64::try_from(after).unwrap_or(i64::MAX),
        );
        self.notices_held.inc_by(after - before);
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}
