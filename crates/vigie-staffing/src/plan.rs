//! Staffing plans: the logic behind `vigie staffing`, kept here so it is pure and tested.
//!
//! [`PlanOptions`] mirrors the command-line options; [`plan_interval`] answers for one
//! volume, [`parse_forecast`] and [`plan_forecast`] for a day of intervals read from CSV.
//! Problems are reported all at once, in the user's terms: the option (`--sl-target`) or the
//! line and column of the forecast file, and why.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::required::{
    Constraint, Metrics, Model, TableRow, Target, apply_shrinkage, required_advisors,
    staffing_table,
};
use crate::{StaffingError, Traffic};

/// The most rows printed on each side of the answer in the table of N.
pub const MAX_TABLE_RADIUS: u32 = 100;

/// The options of a staffing plan, as given on the command line (see the CLI `--help`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Length of the interval a volume is counted over.
    pub interval: Duration,
    /// Average handle time; required unless every forecast row has its own.
    pub aht: Option<Duration>,
    /// Fraction of contacts to answer within `sl_threshold`, in (0, 1).
    pub sl_target: Option<f64>,
    /// Service-level answer time.
    pub sl_threshold: Duration,
    /// Longest acceptable average speed of answer.
    pub asa_target: Option<Duration>,
    /// Fraction of scheduled time advisors are not on the phones, in [0, 1).
    pub shrinkage: f64,
    /// Highest acceptable occupancy, in (0, 1].
    pub max_occupancy: Option<f64>,
    /// Mean caller patience: switches from Erlang C to Erlang A.
    pub patience: Option<Duration>,
    /// Rows of the table of N printed on each side of the answer.
    pub table_radius: u32,
}

impl Default for PlanOptions {
    /// The command-line defaults: 30-minute intervals, a 20 s threshold, no shrinkage, no
    /// occupancy cap, Erlang C, five rows each side. No target: one must be given.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30 * 60),
            aht: None,
            sl_target: None,
            sl_threshold: Duration::from_secs(20),
            asa_target: None,
            shrinkage: 0.0,
            max_occupancy: None,
            patience: None,
            table_radius: 5,
        }
    }
}

/// The options once checked.
#[derive(Debug, Clone, Copy)]
struct Checked {
    target: Target,
    model: Model,
}

impl PlanOptions {
    /// Checks every option and reports every problem at once.
    fn check(&self) -> Result<Checked, PlanError> {
        let mut problems = Vec::new();
        if self.interval.is_zero() {
            problems.push("--interval must be longer than zero".to_owned());
        }
        if self.aht.is_some_and(|a| a.is_zero()) {
            problems.push("--aht must be longer than zero".to_owned());
        }
        if let Some(s) = self.sl_target
            && !(s > 0.0 && s < 1.0)
        {
            problems.push(format!(
                "--sl-target is a fraction strictly between 0 and 1 (0.8 for 80%), got {s}"
            ));
        }
        if self.asa_target.is_some_and(|a| a.is_zero()) {
            problems.push("--asa-target must be longer than zero".to_owned());
        }
        if self.sl_target.is_none() && self.asa_target.is_none() {
            problems.push(
                "no target: give --sl-target (with --sl-threshold), --asa-target, or both"
                    .to_owned(),
            );
        }
        if !(0.0..1.0).contains(&self.shrinkage) {
            problems.push(format!(
                "--shrinkage is a fraction >= 0 and < 1 (0.3 for 30%), got {}",
                self.shrinkage
            ));
        }
        if let Some(m) = self.max_occupancy
            && !(m > 0.0 && m <= 1.0)
        {
            problems.push(format!(
                "--max-occupancy is a fraction > 0 and <= 1 (0.85 for 85%), got {m}"
            ));
        }
        if self.patience.is_some_and(|p| p.is_zero()) {
            problems.push("--patience must be longer than zero".to_owned());
        }
        if self.table_radius > MAX_TABLE_RADIUS {
            problems.push(format!(
                "--rows is at most {MAX_TABLE_RADIUS}, got {}",
                self.table_radius
            ));
        }
        if !problems.is_empty() {
            return Err(PlanError::InvalidOptions(problems));
        }
        let target = Target::new(
            self.sl_threshold,
            self.sl_target,
            self.asa_target,
            self.max_occupancy,
        )
        .map_err(|e| PlanError::InvalidOptions(vec![e.to_string()]))?;
        let model = match self.patience {
            None => Model::ErlangC,
            Some(patience) => Model::ErlangA { patience },
        };
        Ok(Checked { target, model })
    }
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Options out of range or missing, one message per problem.
    #[error("invalid options:\n  {}", .0.join("\n  "))]
    InvalidOptions(Vec<String>),
    /// Problems in the forecast file, one per bad row or cell.
    #[error("{}", format_forecast_problems(.0))]
    Forecast(Vec<RowProblem>),
    /// The staffing mathematics refused the inputs (single-interval plan).
    #[error(transparent)]
    Staffing(#[from] StaffingError),
    /// Serialising the output failed.
    #[error("could not render the output: {0}")]
    Render(String),
}

/// At most this many forecast problems are listed; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

fn format_forecast_problems(problems: &[RowProblem]) -> String {
    let mut out = format!(
        "the forecast has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems.iter().take(MAX_LISTED_PROBLEMS) {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    if problems.len() > MAX_LISTED_PROBLEMS {
        out.push_str(&format!(
            "\n  ... and {} more",
            problems.len() - MAX_LISTED_PROBLEMS
        ));
    }
    out
}

/// One problem in a forecast file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Line in the file, from 1 (the header is line 1); 0 when the file as a whole is at fault.
    pub line: u64,
    /// Column, from 1, with its meaning; `None` for the whole row.
    pub column: Option<(usize, &'static str)>,
    /// What is wrong and, where useful, how to fix it.
    pub message: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.message),
            (line, None) => write!(f, "line {line}: {}", self.message),
            (line, Some((col, name))) => {
                write!(f, "line {line}, column {col} ({name}): {}", self.message)
            }
        }
    }
}

/// The target, echoed in plans.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetSummary {
    /// Fraction to answer within the threshold, if targeted.
    pub sl_target: Option<f64>,
    /// Service-level answer time, seconds.
    pub sl_threshold_seconds: f64,
    /// Longest acceptable ASA, seconds, if targeted.
    pub asa_target_seconds: Option<f64>,
    /// Occupancy ceiling, if any.
    pub max_occupancy: Option<f64>,
}

impl TargetSummary {
    fn of(t: &Target) -> Self {
        Self {
            sl_target: t.service_level(),
            sl_threshold_seconds: t.threshold().as_secs_f64(),
            asa_target_seconds: t.asa().map(|d| d.as_secs_f64()),
            max_occupancy: t.max_occupancy(),
        }
    }

    pub(crate) fn threshold(&self) -> Duration {
        Duration::from_secs_f64(self.sl_threshold_seconds)
    }
}

/// The staffing of one interval, with the table of N around the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalPlan {
    /// Erlang C, or Erlang A with its patience.
    #[serde(flatten)]
    pub model: Model,
    /// Contacts offered during the interval.
    pub volume: f64,
    /// Interval length, seconds.
    pub interval_seconds: f64,
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Offered load, Erlangs.
    pub load_erlangs: f64,
    /// What the staffing must achieve.
    pub target: TargetSummary,
    /// Shrinkage applied to get the scheduled headcount.
    pub shrinkage: f64,
    /// Advisors needed on the phones.
    pub advisors: u32,
    /// Advisors to schedule: `advisors / (1 - shrinkage)` rounded up.
    pub scheduled: u32,
    /// Parts of the target one advisor fewer would fail.
    pub binding: Vec<Constraint>,
    /// Performance with `advisors`.
    pub achieved: Metrics,
    /// Performance for N around `advisors`.
    pub table: Vec<TableRow>,
}

/// Plans one interval with `volume` contacts.
///
/// # Errors
/// [`PlanError::InvalidOptions`] listing every bad or missing option (including a missing
/// `aht`), or [`PlanError::Staffing`] when the mathematics refuses the inputs.
pub fn plan_interval(options: &PlanOptions, volume: f64) -> Result<IntervalPlan, PlanError> {
    let checked = match (
        options.check(),
        options.aht,
        volume.is_finite() && volume >= 0.0,
    ) {
        (Ok(c), Some(_), true) => c,
        (result, aht, volume_ok) => {
            let mut problems = match result {
                Err(PlanError::InvalidOptions(p)) => p,
                Err(other) => return Err(other),
                Ok(_) => Vec::new(),
            };
            if aht.is_none() {
                problems.push("--aht is required (the average handle time, e.g. 180s)".to_owned());
            }
            if !volume_ok {
                problems.push(format!(
                    "--volume is a number of contacts >= 0, got {volume}"
                ));
            }
            return Err(PlanError::InvalidOptions(problems));
        }
    };
    let aht = options.aht.unwrap_or_default();
    let traffic = Traffic::from_volume(volume, options.interval, aht)?;
    let req = required_advisors(&traffic, &checked.model, &checked.target)?;
    let scheduled = apply_shrinkage(req.advisors, options.shrinkage)?;
    let floor = if traffic.load_erlangs() > 0.0 { 1 } else { 0 };
    let from = req.advisors.saturating_sub(options.table_radius).max(floor);
    let to = req.advisors.saturating_add(options.table_radius);
    let table = staffing_table(&traffic, &checked.model, &checked.target, from, to)?;
    Ok(IntervalPlan {
        model: checked.model,
        volume,
        interval_seconds: options.interval.as_secs_f64(),
        aht_seconds: traffic.aht_seconds(),
        load_erlangs: traffic.load_erlangs(),
        target: TargetSummary::of(&checked.target),
        shrinkage: options.shrinkage,
        advisors: req.advisors,
        scheduled,
        binding: req.binding,
        achieved: req.metrics,
        table,
    })
}

/// When an interval starts: a local time of day, or an instant with its UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalStart {
    /// Seconds since local midnight (from `HH:MM` or `HH:MM:SS`).
    LocalTime(u32),
    /// An RFC 3339 instant.
    Instant(DateTime<FixedOffset>),
}

impl fmt::Display for IntervalStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntervalStart::LocalTime(s) => {
                let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
                if sec == 0 {
                    write!(f, "{h:02}:{m:02}")
                } else {
                    write!(f, "{h:02}:{m:02}:{sec:02}")
                }
            }
            IntervalStart::Instant(t) => write!(f, "{}", t.to_rfc3339()),
        }
    }
}

/// One interval of a forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// When the interval starts.
    pub start: IntervalStart,
    /// Contacts offered during the interval.
    pub volume: f64,
    /// Average handle time for the interval (the row's, or the default).
    pub aht: Duration,
}

const COL_START: (usize, &str) = (1, "interval start");
const COL_VOLUME: (usize, &str) = (2, "volume");
const COL_AHT: (usize, &str) = (3, "AHT");

/// Reads a forecast: a header line, then one row per interval with the interval start
/// (`HH:MM` local time, or RFC 3339), the volume of contacts, and optionally the AHT (a
/// number of seconds, or a duration such as `3m30s`; empty means `default_aht`).
///
/// The delimiter is a comma, or a semicolon or tab when the header uses one (spreadsheets
/// set to French export `;` with decimal commas, which are then accepted). Rows must be in
/// time order, at least `interval` apart (local times may wrap past midnight once, the whole
/// file spanning at most 24 hours).
///
/// # Errors
/// [`PlanError::Forecast`] listing every problem found, each with its line and column.
pub fn parse_forecast(
    text: &str,
    interval: Duration,
    default_aht: Option<Duration>,
) -> Result<Vec<ForecastRow>, PlanError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = if first_line.contains(',') {
        b','
    } else if first_line.contains(';') {
        b';'
    } else if first_line.contains('\t') {
        b'\t'
    } else {
        b','
    };
    let decimal_comma = delimiter != b',';
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());

    let mut problems = Vec::new();
    let problem = |line: u64, column: Option<(usize, &'static str)>, message: String| RowProblem {
        line,
        column,
        message,
    };

    match reader.headers() {
        Ok(h) => {
            if h.is_empty() || (h.len() == 1 && h.get(0).is_some_and(str::is_empty)) {
                return Err(PlanError::Forecast(vec![problem(
                    0,
                    None,
                    "the forecast is empty: expected a header line then one row per interval"
                        .to_owned(),
                )]));
            }
            if h.get(0).is_some_and(|f| parse_start(f).is_ok()) {
                problems.push(problem(
                    1,
                    None,
                    "this looks like data, not a header: the first line must name the columns \
                     (for example `start,volume,aht`)"
                        .to_owned(),
                ));
            }
            if !(2..=3).contains(&h.len()) {
                problems.push(problem(
                    1,
                    None,
                    format!(
                        "the header has {} columns; expected 2 or 3: interval start, volume, \
                         and optionally AHT",
                        h.len()
                    ),
                ));
            }
        }
        Err(e) => {
            return Err(PlanError::Forecast(vec![problem(1, None, e.to_string())]));
        }
    }

    let mut rows: Vec<ForecastRow> = Vec::new();
    // Every parsed start, even on rows with other problems, so overlaps are reported in the
    // same pass as bad cells.
    let mut starts: Vec<(u64, IntervalStart)> = Vec::new();
    for result in reader.records() {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(problem(line, None, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if !(2..=3).contains(&record.len()) {
            problems.push(problem(
                line,
                None,
                format!(
                    "{} columns; expected 2 or 3: interval start, volume, and optionally AHT",
                    record.len()
                ),
            ));
            continue;
        }
        let mut row_ok = true;
        let start = match parse_start(record.get(0).unwrap_or("")) {
            Ok(s) => {
                starts.push((line, s));
                Some(s)
            }
            Err(m) => {
                problems.push(problem(line, Some(COL_START), m));
                row_ok = false;
                None
            }
        };
        let volume = match parse_number(record.get(1).unwrap_or(""), decimal_comma) {
            Some(v) if v >= 0.0 => Some(v),
            _ => {
                problems.push(problem(
                    line,
                    Some(COL_VOLUME),
                    format!(
                        "{:?} is not a number of contacts >= 0",
                        record.get(1).unwrap_or("")
                    ),
                ));
                row_ok = false;
                None
            }
        };
        let aht_cell = record.get(2).unwrap_or("");
        let aht = if aht_cell.is_empty() {
            match default_aht {
                Some(a) if !a.is_zero() => Some(a),
                _ => {
                    problems.push(problem(
                        line,
                        Some(COL_AHT),
                        "no AHT on this row and no --aht to fall back on".to_owned(),
                    ));
                    row_ok = false;
                    None
                }
            }
        } else {
            match parse_aht(aht_cell, decimal_comma) {
                Ok(a) => Some(a),
                Err(m) => {
                    problems.push(problem(line, Some(COL_AHT), m));
                    row_ok = false;
                    None
                }
            }
        };
        if let (true, Some(start), Some(volume), Some(aht)) = (row_ok, start, volume, aht) {
            rows.push(ForecastRow {
                line,
                start,
                volume,
                aht,
            });
        }
    }

    check_order(&starts, interval, &mut problems);
    if rows.is_empty() && problems.is_empty() {
        problems.push(problem(
            0,
            None,
            "the forecast has a header but no interval rows".to_owned(),
        ));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        // Stable: within a line, cells stay in column order.
        problems.sort_by_key(|p| (p.line, p.column.map_or(0, |c| c.0)));
        Err(PlanError::Forecast(problems))
    }
}

/// Rows must not overlap: each starts at least one interval after the previous one.
fn check_order(
    starts: &[(u64, IntervalStart)],
    interval: Duration,
    problems: &mut Vec<RowProblem>,
) {
    struct Start {
        line: u64,
        start: IntervalStart,
    }
    let rows: Vec<Start> = starts
        .iter()
        .map(|&(line, start)| Start { line, start })
        .collect();
    let interval_s = interval.as_secs_f64();
    let mut span = 0.0;
    for pair in rows.windows(2) {
        let (prev, cur) = (&pair[0], &pair[1]);
        let gap = match (prev.start, cur.start) {
            (IntervalStart::LocalTime(p), IntervalStart::LocalTime(c)) => {
                f64::from((i64::from(c) - i64::from(p)).rem_euclid(86_400) as u32)
            }
            (IntervalStart::Instant(p), IntervalStart::Instant(c)) => {
                (c - p).num_milliseconds() as f64 / 1000.0
            }
            _ => {
                problems.push(RowProblem {
                    line: cur.line,
                    column: Some(COL_START),
                    message: format!(
                        "mixes a local time of day and an RFC 3339 instant (line {} has {}); \
                         use one form for the whole file",
                        prev.line, prev.start
                    ),
                });
                continue;
            }
        };
        span += gap;
        if gap == 0.0 {
            problems.push(RowProblem {
                line: cur.line,
                column: Some(COL_START),
                message: format!("same start as line {} ({})", prev.line, prev.start),
            });
        } else if gap < 0.0 {
            problems.push(RowProblem {
                line: cur.line,
                column: Some(COL_START),
                message: format!(
                    "{} is before the previous row's {} (line {}): rows must be in time order",
                    cur.start, prev.start, prev.line
                ),
            });
        } else if gap < interval_s {
            problems.push(RowProblem {
                line: cur.line,
                column: Some(COL_START),
                message: format!(
                    "{} starts {} after the previous row ({}), less than the interval of {}: \
                     set --interval to the forecast's interval length",
                    cur.start,
                    humantime::format_duration(Duration::from_secs_f64(gap)),
                    prev.start,
                    humantime::format_duration(interval)
                ),
            });
        }
    }
    if let Some(IntervalStart::LocalTime(_)) = rows.first().map(|r| r.start)
        && span + interval_s > 86_400.0
        && let Some(last) = rows.last()
    {
        problems.push(RowProblem {
            line: last.line,
            column: Some(COL_START),
            message: "local times of day span more than 24 hours: rows must be in time order \
                      within one day (use RFC 3339 instants for longer forecasts)"
                .to_owned(),
        });
    }
}

/// `HH:MM`, `HH:MM:SS`, or an RFC 3339 instant.
fn parse_start(cell: &str) -> Result<IntervalStart, String> {
    if cell.is_empty() {
        return Err("empty; expected a local time HH:MM or an RFC 3339 instant".to_owned());
    }
    if cell.len() <= 8 && cell.contains(':') && !cell.contains('T') {
        let parts: Vec<&str> = cell.split(':').collect();
        let num = |s: &str| -> Option<u32> {
            if (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        };
        let parsed = match parts.as_slice() {
            [h, m] => num(h).zip(num(m)).map(|(h, m)| (h, m, 0)),
            [h, m, s] => num(h).zip(num(m)).zip(num(s)).map(|((h, m), s)| (h, m, s)),
            _ => None,
        };
        return match parsed {
            Some((h, m, s)) if h < 24 && m < 60 && s < 60 => {
                Ok(IntervalStart::LocalTime(h * 3600 + m * 60 + s))
            }
            _ => Err(format!(
                "{cell:?} is not a time of day HH:MM between 00:00 and 23:59"
            )),
        };
    }
    DateTime::parse_from_rfc3339(cell)
        .map(IntervalStart::Instant)
        .map_err(|e| {
            format!(
                "{cell:?} is neither a local time HH:MM nor an RFC 3339 instant \
                 (like 2026-03-02T08:30:00+01:00): {e}"
            )
        })
}

fn parse_number(cell: &str, decimal_comma: bool) -> Option<f64> {
    let v: f64 = if decimal_comma && cell.contains(',') {
        cell.replacen(',', ".", 1).parse().ok()?
    } else {
        cell.parse().ok()?
    };
    v.is_finite().then_some(v)
}

/// A number of seconds, or a humantime duration (`180s`, `3m`, `3m 30s`).
fn parse_aht(cell: &str, decimal_comma: bool) -> Result<Duration, String> {
    let d = match parse_number(cell, decimal_comma) {
        Some(secs) if secs > 0.0 => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{cell:?} seconds is out of range"))?,
        Some(_) => return Err(format!("{cell:?} is not a handle time > 0")),
        None => humantime::parse_duration(cell).map_err(|e| {
            format!("{cell:?} is neither a number of seconds nor a duration like 3m30s: {e}")
        })?,
    };
    if d.is_zero() {
        return Err(format!("{cell:?} is not a handle time > 0"));
    }
    Ok(d)
}

/// Parses a duration option as given on the command line: a humantime duration with its
/// unit (`30m`, `180s`, `1h 30m`). A bare number is refused: "30" could mean seconds or
/// minutes, and guessing wrong would silently staff for the wrong load.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_duration_arg(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value.parse::<f64>().is_ok() {
        return Err(format!(
            "{value:?} has no unit; write for example {value}s or {value}m"
        ));
    }
    humantime::parse_duration(value)
        .map_err(|e| format!("{value:?} is not a duration like 180s, 3m or 1h30m: {e}"))
}

/// The staffing of one interval of a forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastInterval {
    /// When the interval starts, as `HH:MM` or RFC 3339.
    pub start: String,
    /// Line of the forecast file it comes from.
    pub line: u64,
    /// Contacts offered.
    pub volume: f64,
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Offered load, Erlangs.
    pub load_erlangs: f64,
    /// Advisors needed on the phones.
    pub advisors: u32,
    /// Advisors to schedule after shrinkage.
    pub scheduled: u32,
    /// Parts of the target one advisor fewer would fail.
    pub binding: Vec<Constraint>,
    /// Performance with `advisors`.
    pub achieved: Metrics,
}

/// Totals over a forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastSummary {
    /// Number of intervals.
    pub intervals: usize,
    /// Contacts offered over all intervals.
    pub total_volume: f64,
    /// Most advisors needed on the phones in one interval.
    pub peak_advisors: u32,
    /// Most advisors scheduled in one interval.
    pub peak_scheduled: u32,
    /// Start of the first interval with `peak_scheduled`.
    pub peak_start: String,
    /// Scheduled advisors times interval length, summed, in hours.
    pub scheduled_advisor_hours: f64,
    /// Contact-weighted service level over the day (answered within the threshold / offered).
    pub service_level: f64,
}

/// The staffing plan of a forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastPlan {
    /// Erlang C, or Erlang A with its patience.
    #[serde(flatten)]
    pub model: Model,
    /// Interval length, seconds.
    pub interval_seconds: f64,
    /// What the staffing must achieve in every interval.
    pub target: TargetSummary,
    /// Shrinkage applied to get the scheduled headcount.
    pub shrinkage: f64,
    /// One entry per forecast row, in file order.
    pub intervals: Vec<ForecastInterval>,
    /// Totals.
    pub summary: ForecastSummary,
}

/// Plans every interval of a forecast read by [`parse_forecast`].
///
/// # Errors
/// [`PlanError::InvalidOptions`] for bad options, or [`PlanError::Forecast`] listing every
/// interval the mathematics refused (for example a load above the supported maximum).
pub fn plan_forecast(
    options: &PlanOptions,
    rows: &[ForecastRow],
) -> Result<ForecastPlan, PlanError> {
    let checked = options.check()?;
    let mut problems = Vec::new();
    let mut intervals = Vec::with_capacity(rows.len());
    for row in rows {
        let planned = Traffic::from_volume(row.volume, options.interval, row.aht).and_then(|t| {
            let req = required_advisors(&t, &checked.model, &checked.target)?;
            let scheduled = apply_shrinkage(req.advisors, options.shrinkage)?;
            Ok((t, req, scheduled))
        });
        match planned {
            Ok((t, req, scheduled)) => intervals.push(ForecastInterval {
                start: row.start.to_string(),
                line: row.line,
                volume: row.volume,
                aht_seconds: t.aht_seconds(),
                load_erlangs: t.load_erlangs(),
                advisors: req.advisors,
                scheduled,
                binding: req.binding,
                achieved: req.metrics,
            }),
            Err(e) => problems.push(RowProblem {
                line: row.line,
                column: None,
                message: format!("interval starting {}: {e}", row.start),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Forecast(problems));
    }
    let total_volume: f64 = intervals.iter().map(|i| i.volume).sum();
    let peak = intervals
        .iter()
        .fold(None::<&ForecastInterval>, |best, i| match best {
            Some(b) if b.scheduled >= i.scheduled => Some(b),
            _ => Some(i),
        });
    let interval_hours = options.interval.as_secs_f64() / 3600.0;
    let answered_within: f64 = intervals
        .iter()
        .map(|i| i.volume * i.achieved.service_level)
        .sum();
    let summary = ForecastSummary {
        intervals: intervals.len(),
        total_volume,
        peak_advisors: intervals.iter().map(|i| i.advisors).max().unwrap_or(0),
        peak_scheduled: peak.map_or(0, |p| p.scheduled),
        peak_start: peak.map_or_else(String::new, |p| p.start.clone()),
        scheduled_advisor_hours: intervals
            .iter()
            .map(|i| f64::from(i.scheduled) * interval_hours)
            .sum(),
        service_level: if total_volume > 0.0 {
            answered_within / total_volume
        } else {
            1.0
        },
    };
    Ok(ForecastPlan {
        model: checked.model,
        interval_seconds: options.interval.as_secs_f64(),
        target: TargetSummary::of(&checked.target),
        shrinkage: options.shrinkage,
        intervals,
        summary,
    })
}
