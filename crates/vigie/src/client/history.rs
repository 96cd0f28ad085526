//! `vigie history`, `vigie timesheet` and `vigie report`: the `vigie.v1.History` service from a
//! terminal. `history` prints one scope's periods (a queue, a team, an advisor, or the site)
//! as a table, CSV or the proto3 JSON mapping; `timesheet` writes advisors' timesheets as the
//! server makes them (CSV or JSON, byte for byte) or as a table; `report` saves a team's
//! end-of-shift report (HTML, Markdown or CSV).
//!
//! The connection flags are those of the other client commands (`--server`, `--token`,
//! `--site`, `--ca-file` and their `VIGIE_*` variables); `--format` takes the formats of each
//! command. Rendering is in plain functions of the messages, tested without a server.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigie_proto::v1 as pb;
use vigie_proto::v1::history_client::HistoryClient;

pub mod abandoned;

use super::json::ProtoName;
use super::table::{duration, percent};
use super::{Api, ApiArgs, Format, Token};

/// The client of the `History` service.
pub type Client = HistoryClient<InterceptedService<Channel, super::Bearer>>;

/// The `History` client over a connection of the other client commands.
pub fn client(channel: Channel, bearer: super::Bearer) -> Client {
    HistoryClient::with_interceptor(channel, bearer)
}

impl ProtoName for pb::ListIntervalsResponse {
    const FULL_NAME: &'static str = "vigie.v1.ListIntervalsResponse";
}

/// Examples shown at the end of `vigie history --help`.
pub const HISTORY_EXAMPLES: &str = "\
Examples:
  vigie history --queue billing                     today by quarter of an hour, so far
  vigie history --team team-a --granularity 1h      today by hour
  vigie history --queue billing --from 2026-03-01 --to 2026-03-07 --granularity day
  vigie history --advisor a042 --from 2026-03-02T08:00:00+01:00 --to 2026-03-02T12:00:00+01:00
  vigie history --granularity day --from 2026-02-01 --to 2026-02-28 --format csv > february.csv
  vigie history --team team-a --format json         the proto3 JSON mapping

Without --queue, --team or --advisor: the whole site (managers and admins). A team's history
takes its supervisor, a manager or an admin; an advisor's, their supervisor or the advisor.
A range is at most 31 days at 15m, 62 at 30m, 93 at 1h and 400 by day.";

/// Examples shown at the end of `vigie timesheet --help`.
pub const TIMESHEET_EXAMPLES: &str = "\
Examples:
  vigie timesheet --team team-a                     today, as a table (CSV when piped)
  vigie timesheet --team team-a --from 2026-03-01 --to 2026-03-31 --output march.csv
  vigie timesheet --team team-a --from 2026-03-02 --format json
  vigie timesheet --advisor a042 --from 2026-03-02 --to 2026-03-06

The CSV is UTF-8 (no BOM), one row per advisor and day: first login, last logout, time
logged in, available, handling, talk, hold, wrap-up and pauses (each in seconds and as
hh:mm:ss), then each pause reason. At most 31 days; advisors' records are kept 31 days by
default. An advisor gets their own rows only.";

/// Examples shown at the end of `vigie report --help`.
pub const REPORT_EXAMPLES: &str = "\
Examples:
  vigie report --team team-a                  today so far, saved as report-team-a-<date>.html
  vigie report --team team-a --day 2026-03-02 --lang fr --output shift.html
  vigie report --team team-a --format md | less   Markdown, for a team chat
  vigie report --team team-a --format csv > intervals.csv

The HTML report is one self-contained page (no script, nothing fetched), printable. Today's
report includes the interval in progress, the day's alerts and the notices in force; an
earlier day's, the alerts and notices of that day kept in the history (31 days by default).";

/// The connection flags of the client commands, without `--format` (each history command has
/// its own formats).
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// URL of the Vigie gRPC API (`vigie serve --grpc-listen`): http://HOST:PORT, or
    /// https://HOST:PORT for a server with TLS.
    #[arg(long, value_name = "URL", env = "VIGIE_SERVER", default_value = super::DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token sent with every call (`authorization: Bearer <token>`). Not needed by the
    /// demo without authentication. Never printed.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "VIGIE_TOKEN",
        hide_env_values = true,
        value_parser = super::parse_token
    )]
    pub token: Option<Token>,
    /// Site id. Default: the only site the server lists for you; required when it lists
    /// several.
    #[arg(long, value_name = "ID", env = "VIGIE_SITE")]
    pub site: Option<String>,
    /// PEM file of the certificate authority that signed the server's certificate, for an
    /// https:// server with a private CA (default: the system's trusted roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl Connection {
    fn api_args(&self) -> ApiArgs {
        ApiArgs {
            server: self.server.clone(),
            token: self.token.clone(),
            site: self.site.clone(),
            format: Format::Table,
            ca_file: self.ca_file.clone(),
        }
    }
}

/// Period length of `vigie history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GranularityArg {
    /// Quarters of an hour, as recorded.
    #[value(name = "15m")]
    Minutes15,
    /// Half hours from the day start.
    #[value(name = "30m")]
    Minutes30,
    /// Hours from the day start.
    #[value(name = "1h")]
    Hour,
    /// Site-local days.
    Day,
}

impl From<GranularityArg> for pb::Granularity {
    fn from(granularity: GranularityArg) -> pb::Granularity {
        match granularity {
            GranularityArg::Minutes15 => pb::Granularity::Granularity15m,
            GranularityArg::Minutes30 => pb::Granularity::Granularity30m,
            GranularityArg::Hour => pb::Granularity::Granularity1h,
            GranularityArg::Day => pb::Granularity::Day,
        }
    }
}

/// Output of `vigie history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// A table for a person.
    Table,
    /// The proto3 JSON mapping of the answer, as grpcurl prints it.
    Json,
    /// One CSV row per period, instants site-local, durations in seconds, ratios as fractions.
    Csv,
}

/// Output of `vigie timesheet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimesheetFormatArg {
    /// The CSV file as the server makes it, for a spreadsheet.
    Csv,
    /// The same content as a JSON array.
    Json,
    /// A table for a person.
    Table,
}

/// Output of `vigie report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// One self-contained, printable page.
    Html,
    /// Markdown, for a team chat.
    Md,
    /// The per-interval figures as CSV.
    Csv,
}

/// Language of `vigie report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LanguageArg {
    /// English.
    En,
    /// French.
    Fr,
}

/// Arguments of `vigie history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// A queue's history (a queue id, as `vigie queues` lists them).
    #[arg(long, value_name = "QUEUE", group = "scope")]
    pub queue: Option<String>,
    /// A team's history: its campaign queues' flow, its advisors' handling and time.
    #[arg(long, value_name = "TEAM", group = "scope")]
    pub team: Option<String>,
    /// An advisor's history: handling and time.
    #[arg(long, value_name = "ADVISOR", group = "scope")]
    pub advisor: Option<String>,
    /// Start: a site-local day (YYYY-MM-DD, from its day start) or an instant (RFC 3339, such
    /// as 2026-03-02T08:00:00+01:00). Default: the start of today.
    #[arg(long, value_name = "WHEN", value_parser = parse_bound)]
    pub from: Option<Bound>,
    /// End: a site-local day (YYYY-MM-DD, included) or an instant (RFC 3339, excluded).
    /// Default: the end of today.
    #[arg(long, value_name = "WHEN", value_parser = parse_bound)]
    pub to: Option<Bound>,
    /// Period length.
    #[arg(long, value_enum, default_value = "15m")]
    pub granularity: GranularityArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: HistoryFormat,
    /// Leave out the interval in progress (by default today's figures run up to now, the
    /// period in progress marked `*`).
    #[arg(long)]
    pub closed_only: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// Arguments of `vigie timesheet`.
#[derive(Args, Debug)]
pub struct TimesheetArgs {
    /// The team whose advisors' days are wanted (a team id, as `vigie teams` lists them).
    #[arg(long, value_name = "TEAM", required_unless_present = "advisor")]
    pub team: Option<String>,
    /// One advisor's days only (with --team, those spent in that team).
    #[arg(long, value_name = "ADVISOR")]
    pub advisor: Option<String>,
    /// First site-local day, YYYY-MM-DD. Default: today.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// Last site-local day, included. Default: the first.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Output format. Default: csv with --output or when standard output is not a terminal,
    /// else table.
    #[arg(long, value_enum)]
    pub format: Option<TimesheetFormatArg>,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the interval in progress (today's rows then stop at the last closed quarter
    /// of an hour).
    #[arg(long)]
    pub closed_only: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// Arguments of `vigie report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The team reported (a team id, as `vigie teams` lists them).
    #[arg(long, value_name = "TEAM")]
    pub team: String,
    /// The site-local day, YYYY-MM-DD. Default: today (figures so far).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub day: Option<NaiveDate>,
    /// Document format.
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormatArg,
    /// Language of the report.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: LanguageArg,
    /// Write to this file. Default: standard output, except an HTML report asked from a
    /// terminal, saved as report-<team>-<date>.html in the current directory.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}

/// A bound of a range: a site-local day or an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// A site-local day.
    Day(NaiveDate),
    /// An instant.
    Instant(DateTime<Utc>),
}

fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a day YYYY-MM-DD (such as 2026-03-02)"))
}

fn parse_bound(text: &str) -> Result<Bound, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(Bound::Day(day));
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| Bound::Instant(time.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "{text:?} is neither a day YYYY-MM-DD nor an instant such as \
                 2026-03-02T08:00:00+01:00"
            )
        })
}

fn wire_instant(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Writes `bytes` to `output`, or to standard output.
fn write_out(output: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
    }
}

/// The request of `vigie history` for `site`.
pub fn intervals_request(args: &HistoryArgs, site: &str) -> pb::ListIntervalsRequest {
    let (kind, id) = match (&args.queue, &args.team, &args.advisor) {
        (Some(queue), _, _) => (pb::HistoryScopeKind::Queue, queue.clone()),
        (_, Some(team), _) => (pb::HistoryScopeKind::Team, team.clone()),
        (_, _, Some(advisor)) => (pb::HistoryScopeKind::Advisor, advisor.clone()),
        _ => (pb::HistoryScopeKind::Site, String::new()),
    };
    let mut request = pb::ListIntervalsRequest {
        site: site.to_owned(),
        scope: Some(pb::HistoryScope {
            kind: kind.into(),
            id,
        }),
        granularity: pb::Granularity::from(args.granularity).into(),
        include_current: !args.closed_only,
        ..pb::ListIntervalsRequest::default()
    };
    match args.from {
        Some(Bound::Day(day)) => request.from_date = day_text(day),
        Some(Bound::Instant(time)) => request.from = Some(wire_instant(time)),
        None => {}
    }
    match args.to {
        Some(Bound::Day(day)) => request.to_date = day_text(day),
        Some(Bound::Instant(time)) => request.to = Some(wire_instant(time)),
        None => {}
    }
    request
}

/// What `vigie history` is about, in words: `queue \`billing\``.
fn scope_words(request: &pb::ListIntervalsRequest) -> String {
    let scope = request.scope.clone().unwrap_or_default();
    match scope.kind() {
        pb::HistoryScopeKind::Queue => format!("queue `{}`", scope.id),
        pb::HistoryScopeKind::Team => format!("team `{}`", scope.id),
        pb::HistoryScopeKind::Advisor => format!("advisor `{}`", scope.id),
        pb::HistoryScopeKind::Site | pb::HistoryScopeKind::Unspecified => "the site".to_owned(),
    }
}

/// Runs `vigie history ...`.
pub async fn run_history(args: &HistoryArgs) -> anyhow::Result<()> {
    let (api, site) = Api::for_site(&args.connection.api_args()).await?;
    let request = intervals_request(args, &site.id);
    let what = format!(
        "the history of {} of site `{}`",
        scope_words(&request),
        site.id
    );
    let mut client = api.history.clone();
    let answer = api.unary(&what, client.list_intervals(request)).await?;
    let text = match args.format {
        HistoryFormat::Table => intervals_table(&answer),
        HistoryFormat::Json => super::json::to_json(&answer, true)? + "\n",
        HistoryFormat::Csv => intervals_csv(&answer),
    };
    write_out(None, text.as_bytes())
}

/// Runs `vigie timesheet ...`.
pub async fn run_timesheet(args: &TimesheetArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(
        if args.output.is_some() || !std::io::stdout().is_terminal() {
            TimesheetFormatArg::Csv
        } else {
            TimesheetFormatArg::Table
        },
    );
    let (api, site) = Api::for_site(&args.connection.api_args()).await?;
    let wire_format = match format {
        TimesheetFormatArg::Csv => pb::TimesheetFormat::Csv,
        TimesheetFormatArg::Json => pb::TimesheetFormat::Json,
        TimesheetFormatArg::Table => pb::TimesheetFormat::Rows,
    };
    let request = pb::GetTimesheetRequest {
        site: site.id.clone(),
        team: args.team.clone().unwrap_or_default(),
        advisor: args.advisor.clone(),
        from_date: args.from.map(day_text).unwrap_or_default(),
        to_date: args.to.map(day_text).unwrap_or_default(),
        format: wire_format.into(),
        include_current: !args.closed_only,
    };
    let who = match (&args.team, &args.advisor) {
        (_, Some(advisor)) => format!("advisor `{advisor}`"),
        (Some(team), None) => format!("team `{team}`"),
        (None, None) => "you".to_owned(),
    };
    let what = format!("the timesheet of {who} of site `{}`", site.id);
    let mut client = api.history.clone();
    let answer = api.unary(&what, client.get_timesheet(request)).await?;
    let text = match format {
        TimesheetFormatArg::Csv | TimesheetFormatArg::Json => answer.content.clone(),
        TimesheetFormatArg::Table => timesheet_table(&answer),
    };
    write_out(args.output.as_deref(), text.as_bytes())
}

/// Where `vigie report` writes: `--output`, else the server's file name for an HTML report
/// asked from a terminal, else standard output (`None`).
pub fn report_destination(
    output: Option<&Path>,
    format: ReportFormatArg,
    terminal: bool,
    file_name: &str,
) -> Option<PathBuf> {
    match output {
        Some(path) => Some(path.to_owned()),
        None if terminal && format == ReportFormatArg::Html && !file_name.is_empty() => {
            Some(PathBuf::from(file_name))
        }
        None => None,
    }
}

/// Runs `vigie report ...`.
pub async fn run_report(args: &ReportArgs) -> anyhow::Result<()> {
    let (api, site) = Api::for_site(&args.connection.api_args()).await?;
    let request = pb::GetReportRequest {
        site: site.id.clone(),
        team: args.team.clone(),
        date: args.day.map(day_text).unwrap_or_default(),
        format: match args.format {
            ReportFormatArg::Html => pb::ReportFormat::Html,
            ReportFormatArg::Md => pb::ReportFormat::Markdown,
            ReportFormatArg::Csv => pb::ReportFormat::Csv,
        }
        .into(),
        language: match args.lang {
            LanguageArg::En => "en",
            LanguageArg::Fr => "fr",
        }
        .to_owned(),
    };
    let what = format!("the report of team `{}` of site `{}`", args.team, site.id);
    let mut client = api.history.clone();
    let answer = api.unary(&what, client.get_report(request)).await?;
    // The server names the file; only its last component is used, in the current directory.
    let file_name = Path::new(&answer.file_name)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let destination = report_destination(
        args.output.as_deref(),
        args.format,
        std::io::stdout().is_terminal(),
        &file_name,
    );
    write_out(destination.as_deref(), &answer.content)?;
    if let Some(path) = destination {
        let note = if answer.partial {
            " (today so far: the figures grow until the day ends)"
        } else {
            ""
        };
        eprintln!(
            "Report of team {} for {} written to {}{note}",
            args.team,
            answer.date,
            path.display()
        );
    }
    Ok(())
}

/// A table whose first `text_columns` columns are text, the rest figures.
fn grid(headers: &[&str], text_columns: usize) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(headers.iter().map(Cell::new));
    // A pseudo-terminal without a size says 0 columns: keep the natural width then.
    if table.width().is_some_and(|width| width < 40) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    for index in text_columns..headers.len() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn zone_of(name: &str) -> Option<Tz> {
    name.parse().ok()
}

fn utc(time: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
}

/// An instant in `zone` with `format`; `-` when absent.
fn local(time: Option<&prost_types::Timestamp>, zone: Option<Tz>, format: &str) -> String {
    match time.and_then(utc) {
        Some(time) => time
            .with_timezone(&zone.unwrap_or(Tz::UTC))
            .format(format)
            .to_string(),
        None => "-".to_owned(),
    }
}

/// How a period's start is shown: its local date and time, or the date alone for days.
fn period_label(period: &pb::Period, granularity: pb::Granularity) -> String {
    let mut label = if granularity == pb::Granularity::Day {
        period.date.clone()
    } else {
        // `local_start` is RFC 3339 with the site's offset: its first 16 characters are the
        // local date and time to the minute.
        period
            .local_start
            .get(..16)
            .map_or_else(|| period.local_start.clone(), |text| text.replace('T', " "))
    };
    if period.partial {
        label.push('*');
    }
    label
}

/// `vigie history` as a table: one row per period.
pub fn intervals_table(answer: &pb::ListIntervalsResponse) -> String {
    let zone = zone_of(&answer.time_zone);
    let granularity = answer.granularity();
    let scope = answer.scope.clone().unwrap_or_default();
    let scope_text = match scope.kind() {
        pb::HistoryScopeKind::Queue => format!("queue {}", scope.id),
        pb::HistoryScopeKind::Team => format!("team {}", scope.id),
        pb::HistoryScopeKind::Advisor => format!("advisor {}", scope.id),
        pb::HistoryScopeKind::Site | pb::HistoryScopeKind::Unspecified => {
            format!("site {}", answer.site)
        }
    };
    let granularity_text = match granularity {
        pb::Granularity::Unspecified | pb::Granularity::Granularity15m => "15m",
        pb::Granularity::Granularity30m => "30m",
        pb::Granularity::Granularity1h => "1h",
        pb::Granularity::Day => "day",
    };
    let mut text = format!(
        "History of {scope_text} from {} to {}, by {granularity_text} ({})\n",
        local(answer.from.as_ref(), zone, "%Y-%m-%d %H:%M"),
        local(answer.to.as_ref(), zone, "%Y-%m-%d %H:%M"),
        answer.time_zone,
    );
    if answer.periods.is_empty() {
        text.push_str("No activity recorded in this range.\n");
        return text;
    }
    let mut table = grid(
        &[
            "Start",
            "Offered",
            "Answered",
            "Abandoned",
            "Service level",
            "Abandon rate",
            "ASA",
            "Handled",
            "AHT",
            "Occupancy",
            "Pause",
        ],
        1,
    );
    for period in &answer.periods {
        let flow = period.flow;
        let count = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let indicators = period.indicators.unwrap_or_default();
        let handling = indicators.handling.unwrap_or_default();
        table.add_row(vec![
            period_label(period, granularity),
            count(flow.map(|f| f.offered)),
            count(flow.map(|f| f.answered)),
            count(flow.map(|f| f.abandoned)),
            percent(indicators.service_level),
            percent(indicators.abandon_rate),
            duration(indicators.asa),
            period
                .handling
                .as_ref()
                .map_or(0, |h| h.handled)
                .to_string(),
            duration(handling.aht),
            percent(indicators.occupancy),
            duration(indicators.pause_time),
        ]);
    }
    text.push_str(&format!("{table}\n"));
    if answer.periods.iter().any(|p| p.partial) {
        text.push_str("* in progress: the figures grow until the period ends\n");
    }
    text
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// `vigie history --format csv`: a header, then one row per period; instants site-local RFC
/// 3339, durations in seconds, ratios as fractions, undefined values empty.
pub fn intervals_csv(answer: &pb::ListIntervalsResponse) -> String {
    let zone = zone_of(&answer.time_zone);
    let mut out = String::from(
        "start,end,date,intervals,settled,partial,revision,offered,answered,\
         answered_within_threshold,abandoned,short_abandoned,dequeued,service_level,\
         abandon_rate,asa,handled,aht,logged_in,available,handling,pause,occupancy\n",
    );
    for period in &answer.periods {
        let flow = period.flow.unwrap_or_default();
        let has_flow = period.flow.is_some();
        let count = |value: u64| {
            if has_flow {
                value.to_string()
            } else {
                String::new()
            }
        };
        let indicators = period.indicators.unwrap_or_default();
        let handling = indicators.handling.unwrap_or_default();
        let times = period.times.clone();
        let time = |value: fn(&pb::PeriodTimes) -> f64| {
            times
                .as_ref()
                .map_or_else(String::new, |t| value(t).to_string())
        };
        let fields = [
            period.local_start.clone(),
            local(period.end.as_ref(), zone, "%Y-%m-%dT%H:%M:%S%:z"),
            period.date.clone(),
            period.intervals.to_string(),
            period.settled.to_string(),
            period.partial.to_string(),
            period.revision.to_string(),
            count(flow.offered),
            count(flow.answered),
            count(flow.answered_within_threshold),
            count(flow.abandoned),
            count(flow.short_abandoned),
            count(flow.dequeued),
            optional(indicators.service_level),
            optional(indicators.abandon_rate),
            optional(indicators.asa),
            period
                .handling
                .as_ref()
                .map_or(0, |h| h.handled)
                .to_string(),
            optional(handling.aht),
            time(|t| t.logged_in),
            time(|t| t.available),
            time(|t| t.handling),
            time(|t| t.pause),
            optional(indicators.occupancy),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// `vigie timesheet --format table`.
pub fn timesheet_table(answer: &pb::GetTimesheetResponse) -> String {
    let zone = zone_of(&answer.time_zone);
    let who = if answer.team.is_empty() {
        String::new()
    } else {
        format!(" of team {}", answer.team)
    };
    let days = if answer.from_date == answer.to_date {
        answer.from_date.clone()
    } else {
        format!("{} to {}", answer.from_date, answer.to_date)
    };
    let mut text = format!("Timesheet{who}, {days} ({})\n", answer.time_zone);
    if answer.rows.is_empty() {
        text.push_str("No advisor worked on these days.\n");
        return text;
    }
    let mut table = grid(
        &[
            "Date",
            "Advisor",
            "First login",
            "Last logout",
            "Logged in",
            "Available",
            "Handling",
            "Pause",
            "Pauses",
        ],
        4,
    );
    for row in &answer.rows {
        let advisor = match &row.name {
            Some(name) if !name.is_empty() && *name != row.advisor => {
                format!("{} ({name})", row.advisor)
            }
            _ => row.advisor.clone(),
        };
        table.add_row(vec![
            row.date.clone(),
            advisor,
            local(row.first_login.as_ref(), zone, "%H:%M:%S"),
            local(row.last_logout.as_ref(), zone, "%H:%M:%S"),
            duration(Some(row.logged_in)),
            duration(Some(row.available)),
            duration(Some(row.handling)),
            duration(Some(row.pause)),
            row.pause_count.to_string(),
        ]);
    }
    text.push_str(&format!("{table}\n"));
    if answer.partial {
        text.push_str("Today's rows run up to now.\n");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn period(local_start: &str, partial: bool) -> pb::Period {
        pb::Period {
            local_start: local_start.to_owned(),
            date: local_start[..10].to_owned(),
            partial,
            intervals: 1,
            flow: Some(pb::PeriodFlow {
                offered: 12,
                answered: 10,
                answered_within_threshold: 8,
                abandoned: 2,
                ..pb::PeriodFlow::default()
            }),
            indicators: Some(pb::PeriodIndicators {
                service_level: Some(2.0 / 3.0),
                ..pb::PeriodIndicators::default()
            }),
            ..pb::Period::default()
        }
    }

    fn answer() -> pb::ListIntervalsResponse {
        pb::ListIntervalsResponse {
            site: "paris".into(),
            scope: Some(pb::HistoryScope {
                kind: pb::HistoryScopeKind::Queue.into(),
                id: "billing".into(),
            }),
            granularity: pb::Granularity::Granularity1h.into(),
            time_zone: "Europe/Paris".into(),
            periods: vec![
                period("2026-03-02T09:00:00+01:00", false),
                period("2026-03-02T10:00:00+01:00", true),
            ],
            ..pb::ListIntervalsResponse::default()
        }
    }

    #[test]
    fn bounds_are_days_or_instants() {
        assert_eq!(
            parse_bound("2026-03-02").unwrap(),
            Bound::Day(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap())
        );
        let Bound::Instant(time) = parse_bound("2026-03-02T08:00:00+01:00").unwrap() else {
            panic!("an instant");
        };
        assert_eq!(time.to_rfc3339(), "2026-03-02T07:00:00+00:00");
        let error = parse_bound("yesterday").unwrap_err();
        assert!(error.contains("neither a day"), "{error}");
        assert!(parse_day("2026-3-32").is_err());
    }

    #[test]
    fn the_request_names_the_scope_and_the_range() {
        let args = HistoryArgs {
            queue: None,
            team: Some("team-a".into()),
            advisor: None,
            from: Some(Bound::Day(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())),
            to: parse_bound("2026-03-02T12:00:00Z").ok(),
            granularity: GranularityArg::Hour,
            format: HistoryFormat::Table,
            closed_only: false,
            connection: Connection {
                server: String::new(),
                token: None,
                site: None,
                ca_file: None,
            },
        };
        let request = intervals_request(&args, "paris");
        assert_eq!(
            request.scope.clone().unwrap().kind(),
            pb::HistoryScopeKind::Team
        );
        assert_eq!(request.from_date, "2026-03-01");
        assert_eq!(request.to.unwrap().seconds, 1_772_452_800);
        assert!(request.include_current);
        assert_eq!(request.granularity(), pb::Granularity::Granularity1h);
    }

    #[test]
    fn periods_show_as_a_table_with_the_one_in_progress_marked() {
        let text = intervals_table(&answer());
        assert!(text.starts_with("History of queue billing"), "{text}");
        assert!(text.contains("2026-03-02 09:00 "), "{text}");
        assert!(text.contains("2026-03-02 10:00*"), "{text}");
        assert!(text.contains("66.7%"), "{text}");
        assert!(text.contains("* in progress"), "{text}");
    }

    #[test]
    fn periods_as_csv_have_one_row_each_and_empty_undefined_values() {
        let csv = intervals_csv(&answer());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(header.len(), row.len());
        let field = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(field("start"), "2026-03-02T10:00:00+01:00");
        assert_eq!(field("partial"), "true");
        assert_eq!(field("answered"), "10");
        assert_eq!(field("abandon_rate"), "", "undefined, not 0");
        assert_eq!(field("logged_in"), "", "a queue has no times");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    #[test]
    fn an_html_report_goes_to_its_file_only_from_a_terminal() {
        let name = "report-team-a-2026-03-02.html";
        assert_eq!(
            report_destination(None, ReportFormatArg::Html, true, name),
            Some(PathBuf::from(name))
        );
        assert_eq!(
            report_destination(None, ReportFormatArg::Html, false, name),
            None
        );
        assert_eq!(
            report_destination(None, ReportFormatArg::Md, true, name),
            None
        );
        assert_eq!(
            report_destination(
                Some(Path::new("x.html")),
                ReportFormatArg::Html,
                false,
                name
            ),
            Some(PathBuf::from("x.html"))
        );
    }

    #[test]
    fn a_timesheet_shows_local_times_and_durations() {
        let answer = pb::GetTimesheetResponse {
            team: "team-a".into(),
            from_date: "2026-03-02".into(),
            to_date: "2026-03-02".into(),
            time_zone: "Europe/Paris".into(),
            rows: vec![pb::TimesheetRow {
                date: "2026-03-02".into(),
                advisor: "a1".into(),
                name: Some("Ana".into()),
                first_login: Some(prost_types::Timestamp {
                    seconds: 1_772_438_400,
                    nanos: 0,
                }),
                logged_in: 4020.0,
                pause: 1200.0,
                pause_count: 1,
                ..pb::TimesheetRow::default()
            }],
            partial: true,
            ..pb::GetTimesheetResponse::default()
        };
        let text = timesheet_table(&answer);
        assert!(
            text.starts_with("Timesheet of team team-a, 2026-03-02"),
            "{text}"
        );
        assert!(text.contains("a1 (Ana)"), "{text}");
        assert!(
            text.contains("09:00:00"),
            "08:00 UTC is 09:00 in Paris: {text}"
        );
        assert!(text.contains("1h07m00s"), "{text}");
        assert!(text.contains("Today's rows run up to now."), "{text}");
    }
}
