//! Vigie's interval history, pure: the records of each 15-minute interval of a site's day (per
//! queue, team, site and advisor) worked out from the core's day totals, their aggregation to
//! longer periods, advisors' timesheets, the day's abandoned contacts, and the end-of-shift
//! report.
//!
//! What it must not do: no async, no I/O, no clock. Records come from the caller (the engine
//! or a store); ratios are always recomputed from counts, never averaged.

pub mod abandoned;
pub mod aggregate;
pub mod publish;
pub mod record;
pub mod records;
pub mod report;
pub mod timesheet;

pub use abandoned::AbandonedLog;
pub use aggregate::{AggregateOptions, Fill, Granularity, PeriodFigures, aggregate};
pub use publish::Publisher;
pub use record::{AbandonedRecord, IntervalRecord, RecordKey, ScopeKind};
pub use records::{interval_records, latest_revisions};
pub use report::{ReportInput, render_csv, render_html, render_markdown};
pub use timesheet::{TimesheetRow, timesheets};
