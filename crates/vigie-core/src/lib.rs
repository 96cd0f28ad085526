//! Vigie's pure core: the canonical event contract, site configuration, and the deterministic
//! processor that turns events into the indicators a supervisor reads.
//!
//! What it must not do: no async, no I/O, no clock, no global state, no logging. Every instant
//! comes from an event or from the caller, iteration is in a deterministic order, and expected
//! failures are returned as data ([`Rejection`]) for the shell to count and report.

pub mod abandoned;
mod advisor;
pub mod config;
mod contact;
pub mod decode;
mod encode;
pub mod event;
mod intervals;
mod prefetch;
mod processor;
pub mod reject;
mod snapshot;
mod table;
mod tally;
pub mod time;
pub mod totals;
pub mod views;

pub use abandoned::{AbandonedChange, AbandonedContact};
pub use config::{ProcessingConfig, QueueConfig, SiteConfig, SlVariant, TeamConfig};
pub use decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};
pub use event::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody,
};
pub use intervals::INTERVAL_LENGTH;
pub use processor::{
    MAX_EVENTS_PER_CONTACT, MemoryItems, Outcome, Processor, ProcessorStats, SiteProcessor,
};
pub use reject::{RejectReason, Rejection};
pub use snapshot::{SNAPSHOT_FORMAT, SnapshotError};
pub use time::{DayCalendar, Millis, Timestamp};
pub use views::{AdvisorState, AdvisorView, QueueView, SiteView, TeamView, Window};
