//! Vigie's NATS JetStream edge: it consumes the events of the configured sites from the event
//! stream (recovering the day first, from the site's snapshot when there is a usable one),
//! hands them to the engine in batches, acknowledges what the engine accepted, and
//! dead-letters what it refused; it saves each site's snapshot in an object store; and it
//! publishes events for tools.
//!
//! What it must not do: compute indicators, know the API or the notifiers, or acknowledge an
//! event before the engine has accepted it.

pub mod config;
mod connect;
mod consume;
mod metrics;
pub mod publish;
mod snapshot;

pub use config::{ConsumerConfig, NatsConfig, Secret, SnapshotConfig, Storage, StreamConfig};
pub use connect::{
    IngestError, connect, ensure_stream, get_or_create_stream, retry_while_starting,
};
pub use consume::{
    CONTENT_TYPE, Ingest, ORIGINAL_SEQUENCE, ORIGINAL_SUBJECT, PROTOBUF, REJECT_DETAIL,
    REJECT_FIELD, REJECT_REASON, SiteSource, decode_message,
};
pub use metrics::{IngestMetrics, RestoreOutcome};
pub use publish::{
    Outgoing, PublishOutcome, PublishStats, Publisher, PublisherConfig, Report, RetryPolicy,
    WireFormat,
};
pub use snapshot::{SnapshotStore, StoredSnapshot};
