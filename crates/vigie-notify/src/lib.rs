//! Delivery of alert notifications: JSON on NATS (`vigie.alerts.<site>.<team>`) and team-chat
//! incoming webhooks in their native formats (Slack, Mattermost, Microsoft Teams workflows,
//! generic JSON), routed by site, team, severity and kind, worded in French or English, with
//! retries (exponential backoff with jitter, `Retry-After`), counted in Prometheus metrics.
//!
//! The engine hands a [`Notification`] to a [`NotifierHandle`] with
//! [`NotifierHandle::try_send`], which never waits: a full queue drops and counts. The
//! [`Notifier`] task routes each notification to one queue per route, and a task per route
//! delivers in order, so a slow or unreachable webhook only delays itself.
//!
//! What it must not do: depend on the other edges or on the alerts engine (the binary fills
//! [`Notification`] from the alerts' transitions); block or slow the caller; show a webhook URL
//! (a secret) anywhere, in logs, errors or `Debug`: only its scheme and host.
//!
//! Documented in docs/notifications.md.

mod config;
mod metrics;
mod notification;
mod notifier;
mod payload;
mod retry;
mod secret;
mod text;

pub use config::{NATS_ROUTE, NO_TEAM, NatsNotifyConfig, NotifyConfig, RouteConfig};
pub use metrics::NotifyMetrics;
pub use notification::{
    Comparator, KindTag, Notification, NotificationKind, Severity, TargetKind, Unit,
};
pub use notifier::{Notifier, NotifierHandle, NotifyError, SendError, subject};
pub use payload::{
    AlertPayload, Format, MessagePayload, PAYLOAD_VERSION, TargetPayload, body, encode, mattermost,
    slack, teams,
};
pub use retry::{backoff, retry_after};
pub use secret::{SecretUrl, UrlProblem, WebhookUrl};
pub use text::{
    Language, Message, Tone, compact_duration, format_value, human_duration, metric_label, render,
};
