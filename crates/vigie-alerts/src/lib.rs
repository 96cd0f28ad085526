//! Vigie's alerting, pure: threshold rules on the indicators of a site ([`RuleConfig`]), the
//! life of each alert ([`Lifecycle`]: pending, firing at warning or critical, resolved, with
//! acknowledgement, silence and a flap guard), and their evaluation against a site's views
//! ([`AlertEngine`]). `docs/alerts.md` documents the rules and the lifecycle.
//!
//! What it must not do: no async, no I/O, no clock, no global state, no logging. Every instant
//! comes from the caller; the same rules, views and instants give the same changes and
//! notifications, in the same order. Delivery (team chat, NATS) and the API live elsewhere and
//! consume what [`AlertEngine::evaluate`] returns.
//!
//! How the engine task uses it, after applying a batch of events or on its tick:
//!
//! ```
//! use vigie_alerts::{AlertEngine, NotificationKind, RuleConfig};
//! use vigie_core::{DEFAULT_MAX_EVENT_BYTES, ProcessingConfig, SiteConfig, SiteProcessor, Timestamp, decode_json};
//!
//! #[derive(serde::Deserialize)]
//! struct File {
//!     alert_rule: Vec<RuleConfig>,
//! }
//! let file: File = toml::from_str(r#"
//!     [[alert_rule]]
//!     site = "paris"
//!     id = "longest-wait"
//!     name = "Caller waiting too long"
//!     scope = "every_queue"
//!     metric = "longest_wait"
//!     comparator = "above"
//!     warning = "60s"
//!     critical = "3m"
//! "#).expect("a valid file");
//! let mut alerts = AlertEngine::new("paris", &file.alert_rule).expect("valid rules");
//!
//! let mut site = SiteProcessor::new(SiteConfig::with_defaults("paris"), &ProcessingConfig::default());
//! let queued = r#"{"id":"e1","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c1","queue":"billing","channel":"voice"}"#;
//! site.apply(&decode_json(queued.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("an event"));
//!
//! let now = Timestamp::parse_rfc3339("2026-03-02T09:01:01Z").expect("a time");
//! site.advance_to(now);
//! let evaluation = alerts.evaluate(&site, now);
//! // Hand `evaluation.notifications` to delivery and `evaluation.changes` to watchers.
//! let fired = &evaluation.notifications[0];
//! assert_eq!(fired.alert, "longest-wait/queue/billing");
//! assert_eq!(fired.notice.kind, NotificationKind::Fired);
//! assert_eq!(fired.notice.value, Some(61.0));
//!
//! // A supervisor acknowledges it through the API.
//! let ack = alerts.acknowledge("longest-wait/queue/billing", "camille", now).expect("firing");
//! assert_eq!(ack.notifications[0].notice.kind, NotificationKind::Acknowledged);
//! assert!(alerts.alerts()[0].acknowledged.is_some());
//! ```

mod engine;
mod error;
mod hours;
mod lifecycle;
mod read;
#[cfg(test)]
mod reference;
mod rule;
mod ser;
#[cfg(test)]
mod testkit;

pub use engine::{Alert, AlertEngine, Change, Evaluation, Notification, Target};
pub use error::AlertError;
pub use hours::DayOfWeek;
pub use lifecycle::{
    Acknowledgement, AlertState, Cause, Lifecycle, MAX_HISTORY, Notice, NotificationKind, Policy,
    Severity, Silence, Step, Transition, TransitionKind,
};
pub use rule::{
    Comparator, Metric, RuleConfig, Scope, TargetKind, Threshold, Unit, validate_rules,
};
