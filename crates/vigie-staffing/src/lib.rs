//! Vigie's staffing mathematics: Erlang B, Erlang C and Erlang A (M/M/N+M, callers who
//! abandon), the advisors required for a service-level or ASA target under a maximum
//! occupancy and a shrinkage, the staffing plans printed by `vigie staffing`, and the live
//! staffing gap of queues and teams ([`live`]) that the API shows and alert rules watch.
//!
//! Models, formulas, references and limits are in `docs/staffing.md` and on each module.
//! Everything is computed with stable recurrences and log-scaled series: no factorial, no
//! power that could overflow, from 1 advisor to a million and loads up to
//! [`MAX_LOAD_ERLANGS`].
//!
//! What it must not do: no async, no I/O (files are read and output written by the binary,
//! which hands text in and gets text back; the live gap reads views of a `vigie-core`
//! processor the caller advanced), no clock, no global state, no logging. The same
//! inputs give the same outputs, byte for byte; expected failures are returned as
//! [`StaffingError`] or [`PlanError`], never panics.

mod erlang;
mod erlang_a;
mod error;
pub mod live;
pub mod plan;
pub mod render;
mod required;
mod traffic;

pub use erlang::{ErlangC, erlang_b, erlang_c};
pub use erlang_a::{ErlangA, MAX_PATIENCE_RATIO, MAX_SERVERS, ServiceLevels};
pub use error::StaffingError;
pub use plan::{PlanError, PlanOptions};
pub use render::OutputFormat;
pub use required::{
    Constraint, Metrics, Model, Requirement, TableRow, Target, apply_shrinkage, evaluate,
    required_advisors, staffing_table,
};
pub use traffic::{MAX_LOAD_ERLANGS, Traffic};
