//! Rendering of plans as a terminal table, JSON or CSV. Returns strings; writing them is the
//! caller's business.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use comfy_table::{CellAlignment, Table, presets};

use crate::plan::{ForecastPlan, IntervalPlan, PlanError, TargetSummary};
use crate::required::{Constraint, Metrics, Model};

/// Output format of `vigie staffing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Human-readable tables.
    #[default]
    Table,
    /// Pretty-printed JSON with every figure at full precision.
    Json,
    /// CSV: the table of N, or one row per forecast interval.
    Csv,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            other => Err(format!(
                "unknown format {other:?}; expected table, json or csv"
            )),
        }
    }
}

/// Renders a single-interval plan.
///
/// # Errors
/// [`PlanError::Render`] if serialisation fails (it does not for these types).
pub fn render_interval(plan: &IntervalPlan, format: OutputFormat) -> Result<String, PlanError> {
    match format {
        OutputFormat::Table => Ok(interval_table(plan)),
        OutputFormat::Json => json(plan),
        OutputFormat::Csv => interval_csv(plan),
    }
}

/// Renders a forecast plan.
///
/// # Errors
/// [`PlanError::Render`] if serialisation fails (it does not for these types).
pub fn render_forecast(plan: &ForecastPlan, format: OutputFormat) -> Result<String, PlanError> {
    match format {
        OutputFormat::Table => Ok(forecast_table(plan)),
        OutputFormat::Json => json(plan),
        OutputFormat::Csv => forecast_csv(plan),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, PlanError> {
    let mut s =
        serde_json::to_string_pretty(value).map_err(|e| PlanError::Render(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

fn duration(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs_f64(seconds)).to_string()
}

/// A percentage with two decimals that never rounds a miss into a hit: 99.996% prints as
/// ">99.99%", not "100.00%", and 0.004% as "<0.01%".
fn pct(v: f64) -> String {
    let p = v * 100.0;
    if p > 99.995 && p < 100.0 {
        ">99.99%".to_owned()
    } else if p > 0.0 && p < 0.005 {
        "<0.01%".to_owned()
    } else {
        format!("{p:.2}%")
    }
}

fn asa(v: Option<f64>) -> String {
    v.map_or_else(|| "unbounded".to_owned(), |s| format!("{s:.2} s"))
}

/// A number with at most two decimals and no trailing zeros (volumes, loads).
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn model_line(model: &Model) -> String {
    match model {
        Model::ErlangC => "Erlang C (callers never abandon)".to_owned(),
        Model::ErlangA { patience } => format!(
            "Erlang A (mean caller patience {})",
            humantime::format_duration(*patience)
        ),
    }
}

fn target_line(t: &TargetSummary, shrinkage: f64) -> String {
    let mut parts = Vec::new();
    if let Some(s) = t.sl_target {
        parts.push(format!(
            "{} answered within {}",
            num(s * 100.0) + "%",
            humantime::format_duration(t.threshold())
        ));
    }
    if let Some(a) = t.asa_target_seconds {
        parts.push(format!("ASA at most {}", duration(a)));
    }
    if let Some(m) = t.max_occupancy {
        parts.push(format!("occupancy at most {}%", num(m * 100.0)));
    }
    format!(
        "Target: {}; shrinkage {}%",
        parts.join(", "),
        num(shrinkage * 100.0)
    )
}

fn binding_label(binding: &[Constraint]) -> String {
    if binding.is_empty() {
        "-".to_owned()
    } else {
        binding
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t
}

fn align_right_from(table: &mut Table, first: usize) {
    let n = table.column_count();
    for i in first..n {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn metrics_cells(m: &Metrics, scheduled: Option<u32>, abandon: bool) -> Vec<String> {
    let mut cells = vec![m.advisors.to_string()];
    if let Some(s) = scheduled {
        cells.push(s.to_string());
    }
    cells.extend([
        pct(m.service_level),
        asa(m.asa_seconds),
        pct(m.occupancy),
        pct(m.wait_probability),
    ]);
    if abandon {
        cells.push(m.abandon_probability.map_or_else(String::new, pct));
    }
    cells
}

fn interval_table(plan: &IntervalPlan) -> String {
    let abandon = matches!(plan.model, Model::ErlangA { .. });
    let threshold = humantime::format_duration(plan.target.threshold());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} contacts per {}, AHT {}, offered load {} Erlangs",
        model_line(&plan.model),
        num(plan.volume),
        duration(plan.interval_seconds),
        duration(plan.aht_seconds),
        num(plan.load_erlangs)
    );
    let _ = writeln!(out, "{}", target_line(&plan.target, plan.shrinkage));
    out.push('\n');

    let mut summary = new_table();
    let a = &plan.achieved;
    summary.add_row(vec![
        "Advisors on the phones".to_owned(),
        plan.advisors.to_string(),
    ]);
    summary.add_row(vec![
        format!(
            "Advisors to schedule ({}% shrinkage)",
            num(plan.shrinkage * 100.0)
        ),
        plan.scheduled.to_string(),
    ]);
    summary.add_row(vec!["Driven by".to_owned(), binding_label(&plan.binding)]);
    summary.add_row(vec![
        format!("Service level (answered within {threshold})"),
        pct(a.service_level),
    ]);
    summary.add_row(vec![
        "ASA (mean wait of answered)".to_owned(),
        asa(a.asa_seconds),
    ]);
    summary.add_row(vec!["Occupancy".to_owned(), pct(a.occupancy)]);
    summary.add_row(vec!["Wait probability".to_owned(), pct(a.wait_probability)]);
    if let Some(ab) = a.abandon_probability {
        summary.add_row(vec!["Abandon probability".to_owned(), pct(ab)]);
    }
    align_right_from(&mut summary, 1);
    let _ = writeln!(out, "{summary}");
    out.push('\n');

    let mut table = new_table();
    let mut header = vec![
        "Advisors".to_owned(),
        "Scheduled".to_owned(),
        format!("SL ({threshold})"),
        "ASA".to_owned(),
        "Occupancy".to_owned(),
        "P(wait)".to_owned(),
    ];
    if abandon {
        header.push("P(abandon)".to_owned());
    }
    header.push("Meets target".to_owned());
    table.set_header(header);
    for row in &plan.table {
        // Shrinkage was validated when the plan was made, so this cannot fail; a row
        // without its scheduled figure is still worth printing.
        let scheduled = crate::required::apply_shrinkage(row.metrics.advisors, plan.shrinkage).ok();
        let mut cells = metrics_cells(&row.metrics, scheduled, abandon);
        if scheduled.is_none() {
            cells.insert(1, "-".to_owned());
        }
        let mark = if row.metrics.advisors == plan.advisors {
            "yes  <- answer"
        } else if row.meets_target {
            "yes"
        } else {
            "no"
        };
        cells.push(mark.to_owned());
        table.add_row(cells);
    }
    align_right_from(&mut table, 0);
    let last = table.column_count().saturating_sub(1);
    if let Some(c) = table.column_mut(last) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    let _ = writeln!(out, "{table}");
    out
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| x.to_string())
}

fn csv_string(rows: Vec<Vec<String>>) -> Result<String, PlanError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r)
            .map_err(|e| PlanError::Render(e.to_string()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| PlanError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| PlanError::Render(e.to_string()))
}

fn interval_csv(plan: &IntervalPlan) -> Result<String, PlanError> {
    let mut rows = vec![
        [
            "advisors",
            "scheduled",
            "service_level",
            "asa_seconds",
            "occupancy",
            "wait_probability",
            "abandon_probability",
            "meets_target",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in &plan.table {
        let m = &r.metrics;
        let scheduled = crate::required::apply_shrinkage(m.advisors, plan.shrinkage)?;
        rows.push(vec![
            m.advisors.to_string(),
            scheduled.to_string(),
            m.service_level.to_string(),
            opt(m.asa_seconds),
            m.occupancy.to_string(),
            m.wait_probability.to_string(),
            opt(m.abandon_probability),
            r.meets_target.to_string(),
        ]);
    }
    csv_string(rows)
}

fn forecast_table(plan: &ForecastPlan) -> String {
    let abandon = matches!(plan.model, Model::ErlangA { .. });
    let threshold = humantime::format_duration(plan.target.threshold());
    let s = &plan.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: staffing plan for {} intervals of {}",
        model_line(&plan.model),
        s.intervals,
        duration(plan.interval_seconds)
    );
    let _ = writeln!(out, "{}", target_line(&plan.target, plan.shrinkage));
    out.push('\n');

    let mut table = new_table();
    let mut header = vec![
        "Start".to_owned(),
        "Volume".to_owned(),
        "AHT".to_owned(),
        "Load (E)".to_owned(),
        "Advisors".to_owned(),
        "Scheduled".to_owned(),
        format!("SL ({threshold})"),
        "ASA".to_owned(),
        "Occupancy".to_owned(),
        "P(wait)".to_owned(),
    ];
    if abandon {
        header.push("P(abandon)".to_owned());
    }
    table.set_header(header);
    for i in &plan.intervals {
        let mut cells = vec![
            i.start.clone(),
            num(i.volume),
            duration(i.aht_seconds),
            num(i.load_erlangs),
        ];
        let mut m = metrics_cells(&i.achieved, Some(i.scheduled), abandon);
        cells.append(&mut m);
        table.add_row(cells);
    }
    align_right_from(&mut table, 1);
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "Total volume {}; peak {} advisors on the phones, {} scheduled (at {}); \
         {} scheduled advisor-hours; day service level {}",
        num(s.total_volume),
        s.peak_advisors,
        s.peak_scheduled,
        if s.peak_start.is_empty() {
            "-"
        } else {
            &s.peak_start
        },
        num(s.scheduled_advisor_hours),
        pct(s.service_level)
    );
    out
}

fn forecast_csv(plan: &ForecastPlan) -> Result<String, PlanError> {
    let mut rows = vec![
        [
            "start",
            "volume",
            "aht_seconds",
            "load_erlangs",
            "advisors",
            "scheduled",
            "service_level",
            "asa_seconds",
            "occupancy",
            "wait_probability",
            "abandon_probability",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for i in &plan.intervals {
        let m = &i.achieved;
        rows.push(vec![
            i.start.clone(),
            i.volume.to_string(),
            i.aht_seconds.to_string(),
            i.load_erlangs.to_string(),
            i.advisors.to_string(),
            i.scheduled.to_string(),
            m.service_level.to_string(),
            opt(m.asa_seconds),
            m.occupancy.to_string(),
            m.wait_probability.to_string(),
            opt(m.abandon_probability),
        ]);
    }
    csv_string(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_round_into_a_hit() {
        assert_eq!(pct(0.8884), "88.84%");
        assert_eq!(pct(0.999_999), ">99.99%");
        assert_eq!(pct(1.0), "100.00%");
        assert_eq!(pct(1e-9), "<0.01%");
        assert_eq!(pct(0.0), "0.00%");
    }

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(num(10.0), "10");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(1.0 / 3.0), "0.33");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<OutputFormat>(), Ok(OutputFormat::Json));
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
