//! `vigie staffing`: how many advisors a queue needs, for one interval or a day's forecast.
//!
//! A thin shell: options are parsed here, the file is read here and the output written here;
//! validation, the mathematics and the rendering live in `vigie-staffing`, where they are
//! tested.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use vigie_staffing::plan::{parse_duration_arg, parse_forecast, plan_forecast, plan_interval};
use vigie_staffing::render::{render_forecast, render_interval};
use vigie_staffing::{OutputFormat, PlanOptions};

/// Required advisors for a service-level or ASA target (Erlang C, or Erlang A with
/// --patience), for one interval (--volume) or every interval of a forecast (--forecast).
///
/// Assumes Poisson arrivals, exponential handle times and one queue served by one group of
/// interchangeable advisors; see docs/staffing.md for the models and their limits.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    vigie staffing --volume 100 --interval 30m --aht 180s --sl-target 0.8\n  \
    vigie staffing --volume 100 --aht 3m --sl-target 0.8 --shrinkage 0.3 --patience 60s\n  \
    vigie staffing --forecast monday.csv --aht 180s --asa-target 15s --format csv")]
pub struct StaffingArgs {
    /// Contacts offered during one interval (a count; decimals allowed for forecast
    /// averages). Required unless --forecast is given.
    #[arg(
        long,
        value_name = "CONTACTS",
        required_unless_present = "forecast",
        conflicts_with = "forecast"
    )]
    pub volume: Option<f64>,

    /// Length of the interval the volume is counted over, with its unit: 15m, 30m, 1h.
    /// With --forecast, the length of each forecast row.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration_arg)]
    pub interval: Duration,

    /// Average handle time: talk + hold + after-contact work, with its unit (180s, 3m, 4m30s).
    /// Required, except with a forecast whose rows all give their own AHT.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub aht: Option<Duration>,

    /// Service-level target: the fraction of contacts to answer within --sl-threshold, between
    /// 0 and 1 (0.8 for 80%). With Erlang A an abandon counts as a miss. Give this,
    /// --asa-target, or both.
    #[arg(long, value_name = "FRACTION")]
    pub sl_target: Option<f64>,

    /// Service-level answer time: a wait of at most this long counts as within target.
    /// Also used to report the service level when only --asa-target is given.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration_arg)]
    pub sl_threshold: Duration,

    /// ASA target: the longest acceptable average wait of answered contacts, with its unit
    /// (15s). Give this, --sl-target, or both.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub asa_target: Option<Duration>,

    /// Shrinkage: the fraction of scheduled time advisors are away from the phones (breaks,
    /// training, meetings, absence), at least 0 and below 1 (0.3 for 30%). Advisors to
    /// schedule = advisors needed / (1 - shrinkage), rounded up. Default: 0 (none).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub shrinkage: f64,

    /// Maximum occupancy: the highest acceptable fraction of advisor time spent handling
    /// contacts, above 0 and at most 1 (0.85 for 85%). Default: no cap.
    #[arg(long, value_name = "FRACTION")]
    pub max_occupancy: Option<f64>,

    /// Mean caller patience, with its unit (60s). Switches from Erlang C (callers never hang
    /// up) to Erlang A (callers abandon after an exponentially distributed patience of this
    /// mean) and adds the abandonment probability. Default: Erlang C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub patience: Option<Duration>,

    /// Forecast CSV: a header line, then one row per interval with the interval start (local
    /// time HH:MM, or RFC 3339), the volume, and optionally the AHT (seconds, or a duration
    /// like 3m; empty uses --aht). Comma, semicolon or tab separated.
    #[arg(long, value_name = "FILE.csv")]
    pub forecast: Option<PathBuf>,

    /// Output: a human-readable table, JSON with full precision, or CSV.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Rows of the table of advisors printed on each side of the answer (single interval).
    #[arg(long, value_name = "COUNT", default_value_t = 5)]
    pub rows: u32,
}

/// Output format of `vigie staffing`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// Pretty-printed JSON.
    Json,
    /// CSV (the table of advisors, or one line per forecast interval).
    Csv,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Json => OutputFormat::Json,
            Format::Csv => OutputFormat::Csv,
        }
    }
}

/// Runs `vigie staffing`, writing the plan to stdout.
pub fn run(args: &StaffingArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(args, &mut out)?;
    out.flush().context("writing to stdout")
}

/// Runs `vigie staffing`, writing the plan to `out`.
pub fn run_to(args: &StaffingArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let options = PlanOptions {
        interval: args.interval,
        aht: args.aht,
        sl_target: args.sl_target,
        sl_threshold: args.sl_threshold,
        asa_target: args.asa_target,
        shrinkage: args.shrinkage,
        max_occupancy: args.max_occupancy,
        patience: args.patience,
        table_radius: args.rows,
    };
    let format = OutputFormat::from(args.format);
    let text = match (&args.forecast, args.volume) {
        (Some(path), _) => {
            let csv = std::fs::read_to_string(path)
                .with_context(|| format!("reading the forecast {}", path.display()))?;
            let rows = parse_forecast(&csv, args.interval, args.aht)
                .with_context(|| format!("in the forecast {}", path.display()))?;
            render_forecast(&plan_forecast(&options, &rows)?, format)?
        }
        (None, Some(volume)) => render_interval(&plan_interval(&options, volume)?, format)?,
        (None, None) => anyhow::bail!("give --volume for one interval or --forecast FILE.csv"),
    };
    out.write_all(text.as_bytes()).context("writing the plan")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: StaffingArgs,
    }

    /// Runs the command with whitespace-separated arguments.
    fn run_args(argv: &str) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("staffing").chain(argv.split_whitespace()))?;
        let mut out = Vec::new();
        run_to(&cli.args, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn classic_example() {
        let out = run_args(
            "--volume 100 --interval 30m --aht 180s --sl-target 0.8 --sl-threshold 20s \
             --shrinkage 0.3",
        )
        .expect("runs");
        assert!(out.contains("88.84%"), "{out}");
    }

    #[test]
    fn volume_or_forecast_is_required() {
        assert!(run_args("--aht 180s --sl-target 0.8").is_err());
        assert!(run_args("--volume 1 --forecast f.csv --sl-target 0.8").is_err());
    }

    #[test]
    fn durations_need_units() {
        let err = run_args("--volume 100 --aht 180 --sl-target 0.8").expect_err("no unit");
        assert!(err.to_string().contains("no unit"), "{err}");
    }

    #[test]
    fn missing_forecast_file_is_named() {
        let err = run_args("--forecast /nonexistent/day.csv --aht 3m --sl-target 0.8")
            .expect_err("missing file");
        assert!(
            format!("{err:#}").contains("/nonexistent/day.csv"),
            "{err:#}"
        );
    }
}
