//! Vigie's gRPC API: the `Supervision` service (live views, read once or followed as server
//! streams) over the engine's handle, the `Admin`, `Alerts`, `Notices` and `History` services,
//! with authentication by bearer token, authorization by role and scope, gRPC health,
//! reflection and gRPC-Web for browsers.
//!
//! What it must not do: compute indicators (the core does, on the engine's task), know where
//! events come from (ingest), or let one client slow the engine or the other clients: every
//! stream reads shared, coalesced views and a client that does not read only loses its own
//! intermediate updates.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod convert;
pub mod forward;
pub mod history;
pub mod history_store;
pub mod hub;
pub mod metrics;
pub mod notices;
pub mod read;
pub mod remote;
pub mod server;
pub mod service;
pub mod shared_frames;
pub mod staffing;

pub use admin::{ChangeStore, FileChangeStore, KeptNotices, StoreError, replay_changes};
pub use alerts::published_alerts;
pub use auth::{AuthConfig, Authenticator, Principal, Role};
pub use forward::{ForwardedCall, ForwardedCalls, Forwarder, Forwarding};
pub use history::HistoryService;
pub use metrics::ApiMetrics;
pub use notices::{ManualClock, Notice, NoticeBoard, NoticesService, SystemClock, WallClock};
pub use remote::{RemoteViews, published_windows};
pub use server::{Api, ApiConfig, ApiError, TlsConfig};
