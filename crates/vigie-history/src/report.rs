//! The end-of-shift report of one team and one site-local day: key figures against targets,
//! charts per interval, the advisors' day, the alerts and the notices. Rendered as one
//! self-contained HTML page (inline CSS and SVG, nothing fetched, no script, printable), as
//! Markdown for a team chat, and as CSV of the per-interval figures.
//!
//! Every text that comes from users or sources (names, ids, notices, alert messages) is
//! escaped for the format it goes into.

mod charts;
mod labels;

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use vigie_core::Timestamp;

use crate::aggregate::{AggregateOptions, Fill, Granularity, PeriodFigures, aggregate};
use crate::record::{IntervalRecord, ScopeKind};
use crate::timesheet::{TimesheetRow, hms};
use charts::{ChartInterval, Mark};
use labels::Labels;

/// The language of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// English.
    #[default]
    En,
    /// French.
    Fr,
}

impl Language {
    /// The language tag (`en`, `fr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(text: &str) -> Result<Language, String> {
        match text {
            "en" => Ok(Language::En),
            "fr" => Ok(Language::Fr),
            other => Err(format!("unknown language {other:?}; expected en or fr")),
        }
    }
}

/// The targets the day is judged by.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTargets {
    /// Service-level target, a fraction (0.8 for 80%).
    pub sl_target: f64,
    /// Service-level answer time T, in seconds.
    pub sl_threshold_s: f64,
    /// Target average handle time, in seconds.
    #[serde(default)]
    pub aht_target_s: Option<f64>,
    /// Abandon rate above which the day is marked as missed, a fraction.
    #[serde(default)]
    pub abandon_threshold: Option<f64>,
}

/// How serious an alert was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// The warning threshold was passed.
    Warning,
    /// The critical threshold was passed.
    Critical,
}

/// An alert of the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAlert {
    /// The rule's name.
    pub rule: String,
    /// What it watched (a queue, team or advisor id).
    pub target: String,
    /// The highest severity it reached.
    pub severity: AlertSeverity,
    /// When it fired, ms since the epoch.
    pub fired_at_ms: i64,
    /// When it resolved, if it did.
    #[serde(default)]
    pub resolved_at_ms: Option<i64>,
    /// Who acknowledged it, if anyone.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    /// What it said.
    pub message: String,
}

/// A notice posted to the team that day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportNotice {
    /// The text shown.
    pub text: String,
    /// Who posted it.
    pub author: String,
    /// When, ms since the epoch.
    pub posted_at_ms: i64,
    /// When it stopped being shown, if set.
    #[serde(default)]
    pub until_ms: Option<i64>,
    /// Shown as important.
    #[serde(default)]
    pub important: bool,
}

/// Everything a team's end-of-shift report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportInput {
    /// Site id.
    pub site_id: String,
    /// Site display name.
    pub site_name: Option<String>,
    /// Team id.
    pub team_id: String,
    /// Team display name.
    pub team_name: Option<String>,
    /// The site-local day reported.
    pub date: NaiveDate,
    /// The site's time zone: every time shown is local.
    pub zone: Tz,
    /// The local time the site's day starts (midnight unless configured otherwise): the
    /// intervals' grid.
    pub day_start: NaiveTime,
    /// The report's language.
    pub language: Language,
    /// The team's 15-minute records of the day (records of other scopes or days are ignored;
    /// of several revisions, the highest counts).
    pub records: Vec<IntervalRecord>,
    /// The team's advisors' timesheet rows of the day.
    pub advisors: Vec<TimesheetRow>,
    /// Targets.
    pub targets: ReportTargets,
    /// The day's alerts.
    pub alerts: Vec<ReportAlert>,
    /// The notices posted that day.
    pub notices: Vec<ReportNotice>,
}

/// What the report shows, worked out once for every format.
struct Report<'a> {
    input: &'a ReportInput,
    labels: &'static Labels,
    /// The day as a whole, when a record exists.
    day: Option<PeriodFigures>,
    /// Intervals from the first with activity to the last, gaps given as zero.
    intervals: Vec<PeriodFigures>,
    /// The day's advisors, by name then id.
    advisors: Vec<&'a TimesheetRow>,
    alerts: Vec<&'a ReportAlert>,
    notices: Vec<&'a ReportNotice>,
}

/// Whether anything happened in a period.
fn has_activity(period: &PeriodFigures) -> bool {
    let flow = period
        .flow
        .is_some_and(|f| f.offered + f.answered + f.abandoned + f.dequeued > 0);
    let times = period
        .times
        .as_ref()
        .is_some_and(|t| t.logged_in_ms > 0 || t.handling_ms > 0);
    flow || times || period.handling.handled > 0
}

impl<'a> Report<'a> {
    fn new(input: &'a ReportInput) -> Report<'a> {
        let date = input.date.format("%Y-%m-%d").to_string();
        let records: Vec<IntervalRecord> = input
            .records
            .iter()
            .filter(|r| {
                r.key.kind == ScopeKind::Team
                    && r.key.id == input.team_id
                    && r.key.site == input.site_id
                    && r.date == date
            })
            .cloned()
            .collect();
        let options = |granularity| {
            AggregateOptions::new(granularity, input.zone).with_day_start(input.day_start)
        };
        // One scope by construction: aggregation cannot meet mixed scopes.
        let day = aggregate(ScopeKind::Team, &records, &options(Granularity::Day))
            .ok()
            .and_then(|days| days.into_iter().next());
        let filled = options(Granularity::Minutes15).zero_filled(Fill::Dates {
            first: input.date,
            last: input.date,
        });
        let mut intervals = if records.is_empty() {
            Vec::new()
        } else {
            aggregate(ScopeKind::Team, &records, &filled).unwrap_or_default()
        };
        match intervals.iter().rposition(has_activity) {
            Some(last) => intervals.truncate(last + 1),
            None => intervals.clear(),
        }
        let first = intervals.iter().position(has_activity).unwrap_or(0);
        intervals.drain(..first);

        let mut advisors: Vec<&TimesheetRow> = input
            .advisors
            .iter()
            .filter(|row| row.date == date)
            .collect();
        advisors.sort_by(|a, b| {
            (a.name.as_deref().unwrap_or(&a.advisor), &a.advisor)
                .cmp(&(b.name.as_deref().unwrap_or(&b.advisor), &b.advisor))
        });
        let mut alerts: Vec<&ReportAlert> = input.alerts.iter().collect();
        alerts.sort_by(|a, b| (a.fired_at_ms, &a.rule).cmp(&(b.fired_at_ms, &b.rule)));
        let mut notices: Vec<&ReportNotice> = input.notices.iter().collect();
        notices.sort_by_key(|n| n.posted_at_ms);
        Report {
            input,
            labels: Labels::of(input.language),
            day,
            intervals,
            advisors,
            alerts,
            notices,
        }
    }

    fn active(&self) -> bool {
        self.day.as_ref().is_some_and(has_activity) || !self.advisors.is_empty()
    }

    fn team_title(&self) -> String {
        self.input
            .team_name
            .clone()
            .unwrap_or_else(|| self.input.team_id.clone())
    }

    fn site_title(&self) -> String {
        self.input
            .site_name
            .clone()
            .unwrap_or_else(|| self.input.site_id.clone())
    }

    /// Local `HH:MM`.
    fn time(&self, ms: i64) -> String {
        Timestamp(ms)
            .to_utc()
            .with_timezone(&self.input.zone)
            .format("%H:%M")
            .to_string()
    }

    /// The key figures: label, value, target, met.
    fn key_figures(&self) -> Vec<KeyFigure> {
        let l = self.labels;
        let targets = &self.input.targets;
        let Some(day) = &self.day else {
            return Vec::new();
        };
        let flow = day.flow.unwrap_or_default();
        let ind = &day.indicators;
        let none = || "-".to_owned();
        let variant = day.sl_variant.unwrap_or_default();
        vec![
            KeyFigure::plain(l.offered, flow.offered.to_string()),
            KeyFigure::plain(l.answered, flow.answered.to_string()),
            KeyFigure::plain(l.abandoned, flow.abandoned.to_string()),
            KeyFigure {
                label: l.abandon_rate,
                value: ind.abandon_rate.map_or_else(none, |r| l.percent(r)),
                target: targets
                    .abandon_threshold
                    .map(|t| format!("≤ {}", l.percent_target(t))),
                met: targets
                    .abandon_threshold
                    .zip(ind.abandon_rate)
                    .map(|(threshold, rate)| rate <= threshold),
            },
            KeyFigure {
                label: l.service_level,
                value: ind.service_level.map_or_else(none, |sl| l.percent(sl)),
                target: Some(format!(
                    "≥ {} {} {} ({} {})",
                    l.percent_target(targets.sl_target),
                    l.within,
                    l.seconds(targets.sl_threshold_s),
                    l.sl_variant,
                    variant.as_str(),
                )),
                met: ind.service_level.map(|sl| sl >= targets.sl_target),
            },
            KeyFigure::plain(l.asa, ind.asa.map_or_else(none, clock)),
            KeyFigure::plain(l.handled, day.handling.handled.to_string()),
            KeyFigure {
                label: l.aht,
                value: ind.handling.aht.map_or_else(none, clock),
                target: targets.aht_target_s.map(|t| format!("≤ {}", clock(t))),
                met: targets
                    .aht_target_s
                    .zip(ind.handling.aht)
                    .map(|(target, aht)| aht <= target),
            },
            KeyFigure::plain(
                l.occupancy,
                ind.occupancy.map_or_else(none, |o| l.percent(o)),
            ),
        ]
    }

    fn chart_intervals(&self) -> Vec<ChartInterval> {
        self.intervals
            .iter()
            .map(|period| {
                let flow = period.flow.unwrap_or_default();
                let local = Timestamp(period.start_ms)
                    .to_utc()
                    .with_timezone(&self.input.zone);
                ChartInterval {
                    label: local.format("%H:%M").to_string(),
                    on_the_hour: local.minute() == 0,
                    offered: flow.offered,
                    answered: flow.answered,
                    abandoned: flow.abandoned,
                    service_level: period.indicators.service_level,
                    aht: period.indicators.handling.aht,
                }
            })
            .collect()
    }

    fn severity(&self, severity: AlertSeverity) -> &'static str {
        match severity {
            AlertSeverity::Warning => self.labels.warning,
            AlertSeverity::Critical => self.labels.critical,
        }
    }

    /// An advisor's pauses, one reason after another: `break 00:15:00 (1)`.
    fn pauses_text(row: &TimesheetRow) -> Vec<(String, String)> {
        row.pauses
            .iter()
            .map(|p| {
                (
                    p.reason.clone(),
                    format!("{} ({})", hms(p.time_ms), p.count),
                )
            })
            .collect()
    }
}

/// A key figure of the day.
struct KeyFigure {
    label: &'static str,
    value: String,
    target: Option<String>,
    /// Met or missed, where there is a target and a value.
    met: Option<bool>,
}

impl KeyFigure {
    fn plain(label: &'static str, value: String) -> KeyFigure {
        KeyFigure {
            label,
            value,
            target: None,
            met: None,
        }
    }
}

/// Seconds as a clock duration, rounded to the second: `4:05`, `1:02:03`.
pub(crate) fn clock(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Text safe in HTML content and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Text shown literally in Markdown, on one line and inside a table cell: the characters
/// that would make emphasis, code, links, HTML, headings or cell breaks are backslash-escaped.
pub(crate) fn markdown_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' | '\n' => escaped.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '&' | '!' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

const CSS: &str = "\
:root{color-scheme:light}\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
color:#1d2733;background:#fff;margin:0 auto;padding:24px;max-width:980px;line-height:1.4}\
h1{font-size:1.5rem;margin:0 0 4px}\
h2{font-size:1.15rem;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}\
.meta{color:#526070;margin:0}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#f3f5f7;font-weight:600}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.met{color:#1e7b45;font-weight:600}\
.missed{color:#b3261e;font-weight:600}\
.critical{color:#b3261e;font-weight:600}\
.warning{color:#8a5a00;font-weight:600}\
.chart svg{width:100%;height:auto;max-width:860px;display:block}\
.empty{padding:24px;border:1px dashed #b8c0c8;border-radius:6px;text-align:center;color:#526070}\
ul.notices{padding-left:20px}\
ul.notices li{margin:4px 0}\
.id{color:#526070;font-size:.85em}\
section,figure{break-inside:avoid;page-break-inside:avoid}\
figure{margin:0 0 12px}\
figcaption{font-weight:600;margin:8px 0 4px}\
ul.legend{list-style:none;margin:2px 0 0;padding:0 0 0 64px;font-size:.85rem;color:#526070}\
ul.legend li{display:inline-block;margin-right:16px}\
.swatch{display:inline-block;width:14px;height:10px;margin-right:6px;vertical-align:middle}\
@page{size:A4;margin:12mm}\
@media print{body{padding:0;max-width:none;font-size:10pt}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}h2{margin-top:16px}}";

/// The report as one self-contained HTML page: inline CSS and SVG, no script, no external
/// reference, printable. A day without any activity gives a page that says so.
pub fn render_html(input: &ReportInput) -> String {
    let report = Report::new(input);
    let l = report.labels;
    let e = html_escape;
    let mut html = String::with_capacity(96 * 1024);
    let team = report.team_title();
    let date = l.long_date(input.date);
    html.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}: {team}, {date}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        lang = input.language.as_str(),
        title = e(l.title),
        team = e(&team),
        date = e(&date),
    ));
    html.push_str(&format!(
        "<header>\n<h1>{title}: {team}</h1>\n<p class=\"meta\">{team_label} {team} \
         <span class=\"id\">({team_id})</span> · {site_label} {site} \
         <span class=\"id\">({site_id})</span></p>\n\
         <p class=\"meta\">{date} · {times_in} {zone}</p>\n</header>\n",
        title = e(l.title),
        team = e(&team),
        team_label = e(l.team),
        team_id = e(&input.team_id),
        site_label = e(l.site),
        site = e(&report.site_title()),
        site_id = e(&input.site_id),
        date = e(&date),
        times_in = e(l.times_in),
        zone = e(input.zone.name()),
    ));

    if report.active() {
        if report.day.is_some() {
            html_key_figures(&report, &mut html);
        }
        html_charts(&report, &mut html);
        html_advisors(&report, &mut html);
    } else {
        html.push_str(&format!(
            "<section class=\"empty\" id=\"no-activity\">\n<p>{}</p>\n</section>\n",
            e(l.no_activity)
        ));
    }
    html_alerts(&report, &mut html);
    html_notices(&report, &mut html);
    html.push_str("</body>\n</html>\n");
    html
}

fn html_key_figures(report: &Report, html: &mut String) {
    let l = report.labels;
    let e = html_escape;
    html.push_str(&format!(
        "<section id=\"key-figures\">\n<h2>{}</h2>\n<table>\n<thead><tr><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        e(l.key_figures),
        e(l.figure),
        e(l.value),
        e(l.target),
        e(l.result)
    ));
    for figure in report.key_figures() {
        let result = match figure.met {
            Some(true) => format!("<span class=\"met\">✓ {}</span>", e(l.met)),
            Some(false) => format!("<span class=\"missed\">✗ {}</span>", e(l.missed)),
            None => String::new(),
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>\n",
            e(figure.label),
            e(&figure.value),
            e(figure.target.as_deref().unwrap_or("")),
            result
        ));
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn html_charts(report: &Report, html: &mut String) {
    let l = report.labels;
    let intervals = report.chart_intervals();
    if intervals.is_empty() {
        return;
    }
    let targets = &report.input.targets;
    let charts = [
        (
            "chart-volume",
            l.volume_chart,
            charts::volume(&intervals, l),
        ),
        (
            "chart-service-level",
            l.sl_chart,
            charts::service_level(&intervals, targets.sl_target, l),
        ),
        (
            "chart-aht",
            l.aht_chart,
            charts::aht(&intervals, targets.aht_target_s, l),
        ),
    ];
    html.push_str("<section id=\"charts\">\n");
    for (id, title, chart) in charts {
        html.push_str(&format!(
            "<figure class=\"chart\" id=\"{id}\">\n<figcaption>{}</figcaption>\n",
            html_escape(title)
        ));
        match chart {
            Ok(chart) => {
                html.push_str(&chart.svg);
                html.push_str("<ul class=\"legend\">");
                for item in &chart.legend {
                    let swatch = match item.mark {
                        Mark::Bar => format!("background:{}", item.color),
                        Mark::Line => format!("height:0;border-top:3px solid {}", item.color),
                        Mark::DashedLine => {
                            format!("height:0;border-top:3px dashed {}", item.color)
                        }
                    };
                    html.push_str(&format!(
                        "<li><span class=\"swatch\" style=\"{swatch}\"></span>{}</li>",
                        html_escape(item.label)
                    ));
                }
                html.push_str("</ul>\n");
            }
            // A chart that could not be drawn is named as missing; the rest of the report
            // stands.
            Err(_) => html.push_str(&format!("<p>{}</p>\n", html_escape(l.chart_unavailable))),
        }
        html.push_str("</figure>\n");
    }
    html.push_str("</section>\n");
}

fn html_advisors(report: &Report, html: &mut String) {
    let l = report.labels;
    let e = html_escape;
    html.push_str(&format!(
        "<section id=\"advisors\">\n<h2>{}</h2>\n",
        e(l.advisors)
    ));
    if report.advisors.is_empty() {
        html.push_str(&format!("<p>{}</p>\n</section>\n", e(l.no_advisors)));
        return;
    }
    html.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        e(l.advisor),
        e(l.first_login),
        e(l.last_logout),
        e(l.logged_in),
        e(l.available),
        e(l.handling),
        e(l.pause),
        e(l.pauses_by_reason),
    ));
    for row in &report.advisors {
        let name = match &row.name {
            Some(name) => format!(
                "{} <span class=\"id\">({})</span>",
                e(name),
                e(&row.advisor)
            ),
            None => e(&row.advisor),
        };
        let pauses: Vec<String> = Report::pauses_text(row)
            .into_iter()
            .map(|(reason, text)| format!("{} {}", e(&reason), e(&text)))
            .collect();
        html.push_str(&format!(
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} ({})</td><td>{}</td></tr>\n",
            row.first_login_ms
                .map_or("-".to_owned(), |t| report.time(t)),
            row.last_logout_ms
                .map_or("-".to_owned(), |t| report.time(t)),
            hms(row.logged_in_ms),
            hms(row.available_ms),
            hms(row.handling_ms),
            hms(row.pause_ms),
            row.pause_count,
            pauses.join("<br>"),
        ));
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn html_alerts(report: &Report, html: &mut String) {
    let l = report.labels;
    let e = html_escape;
    html.push_str(&format!(
        "<section id=\"alerts\">\n<h2>{}</h2>\n",
        e(l.alerts)
    ));
    if report.alerts.is_empty() {
        html.push_str(&format!("<p>{}</p>\n</section>\n", e(l.no_alerts)));
        return;
    }
    html.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        e(l.severity),
        e(l.rule),
        e(l.on_target),
        e(l.fired),
        e(l.resolved),
        e(l.acknowledged_by),
        e(l.message),
    ));
    for alert in &report.alerts {
        let class = match alert.severity {
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        };
        html.push_str(&format!(
            "<tr><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>\n",
            e(report.severity(alert.severity)),
            e(&alert.rule),
            e(&alert.target),
            report.time(alert.fired_at_ms),
            alert
                .resolved_at_ms
                .map_or_else(|| e(l.not_resolved), |t| report.time(t)),
            e(alert.acknowledged_by.as_deref().unwrap_or("-")),
            e(&alert.message),
        ));
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn html_notices(report: &Report, html: &mut String) {
    let l = report.labels;
    let e = html_escape;
    html.push_str(&format!(
        "<section id=\"notices\">\n<h2>{}</h2>\n",
        e(l.notices)
    ));
    if report.notices.is_empty() {
        html.push_str(&format!("<p>{}</p>\n</section>\n", e(l.no_notices)));
        return;
    }
    html.push_str("<ul class=\"notices\">\n");
    for notice in &report.notices {
        let until = notice
            .until_ms
            .map(|t| format!(", {} {}", e(l.until), report.time(t)))
            .unwrap_or_default();
        let (open, close, flag) = if notice.important {
            (
                "<li class=\"important\">",
                "</li>",
                format!("<strong>{}</strong> · ", e(l.important)),
            )
        } else {
            ("<li>", "</li>", String::new())
        };
        html.push_str(&format!(
            "{open}{flag}{} {} {}{until}: {}{close}\n",
            report.time(notice.posted_at_ms),
            e(l.by),
            e(&notice.author),
            e(&notice.text),
        ));
    }
    html.push_str("</ul>\n</section>\n");
}

/// The report as Markdown for a team chat: key figures and advisors as tables, alerts and
/// notices as lists; no images.
pub fn render_markdown(input: &ReportInput) -> String {
    let report = Report::new(input);
    let l = report.labels;
    let m = markdown_escape;
    let mut md = String::with_capacity(8 * 1024);
    md.push_str(&format!(
        "# {}: {}\n\n{} {} ({}) · {} · {} {}\n\n",
        m(l.title),
        m(&report.team_title()),
        m(l.site),
        m(&report.site_title()),
        m(&input.site_id),
        m(&l.long_date(input.date)),
        m(l.times_in),
        m(input.zone.name()),
    ));
    if report.active() {
        md.push_str(&format!(
            "## {}\n\n| {} | {} | {} | {} |\n|---|---:|---|---|\n",
            m(l.key_figures),
            m(l.figure),
            m(l.value),
            m(l.target),
            m(l.result)
        ));
        for figure in report.key_figures() {
            let result = match figure.met {
                Some(true) => format!("✓ {}", l.met),
                Some(false) => format!("✗ **{}**", l.missed),
                None => String::new(),
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                m(figure.label),
                m(&figure.value),
                m(figure.target.as_deref().unwrap_or("")),
                result
            ));
        }
        md.push_str(&format!("\n## {}\n\n", m(l.advisors)));
        if report.advisors.is_empty() {
            md.push_str(&format!("{}\n", m(l.no_advisors)));
        } else {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n|---|---|---|---:|---:|---:|---|\n",
                m(l.advisor),
                m(l.first_login),
                m(l.last_logout),
                m(l.logged_in),
                m(l.handling),
                m(l.pause),
                m(l.pauses_by_reason),
            ));
            for row in &report.advisors {
                let name = match &row.name {
                    Some(name) => format!("{} ({})", m(name), m(&row.advisor)),
                    None => m(&row.advisor),
                };
                let pauses: Vec<String> = Report::pauses_text(row)
                    .into_iter()
                    .map(|(reason, text)| format!("{} {}", m(&reason), m(&text)))
                    .collect();
                md.push_str(&format!(
                    "| {name} | {} | {} | {} | {} | {} ({}) | {} |\n",
                    row.first_login_ms
                        .map_or("-".to_owned(), |t| report.time(t)),
                    row.last_logout_ms
                        .map_or("-".to_owned(), |t| report.time(t)),
                    hms(row.logged_in_ms),
                    hms(row.handling_ms),
                    hms(row.pause_ms),
                    row.pause_count,
                    pauses.join(", "),
                ));
            }
        }
    } else {
        md.push_str(&format!("**{}**\n", m(l.no_activity)));
    }

    md.push_str(&format!("\n## {}\n\n", m(l.alerts)));
    if report.alerts.is_empty() {
        md.push_str(&format!("{}\n", m(l.no_alerts)));
    }
    for alert in &report.alerts {
        let span = match alert.resolved_at_ms {
            Some(resolved) => format!(
                "{}–{}",
                report.time(alert.fired_at_ms),
                report.time(resolved)
            ),
            None => format!("{} ({})", report.time(alert.fired_at_ms), m(l.not_resolved)),
        };
        let acknowledged = alert
            .acknowledged_by
            .as_deref()
            .map(|by| format!(" ({} {})", m(l.acknowledged_by), m(by)))
            .unwrap_or_default();
        md.push_str(&format!(
            "- **{}** {span} {} ({} {}): {}{acknowledged}\n",
            m(report.severity(alert.severity)),
            m(&alert.rule),
            m(l.on_target),
            m(&alert.target),
            m(&alert.message),
        ));
    }

    md.push_str(&format!("\n## {}\n\n", m(l.notices)));
    if report.notices.is_empty() {
        md.push_str(&format!("{}\n", m(l.no_notices)));
    }
    for notice in &report.notices {
        let until = notice
            .until_ms
            .map(|t| format!(", {} {}", m(l.until), report.time(t)))
            .unwrap_or_default();
        let flag = if notice.important {
            format!("**{}** · ", m(l.important))
        } else {
            String::new()
        };
        md.push_str(&format!(
            "- {flag}{} {} {}{until}: {}\n",
            report.time(notice.posted_at_ms),
            m(l.by),
            m(&notice.author),
            m(&notice.text),
        ));
    }
    md
}

/// The per-interval figures as CSV (UTF-8, no BOM, a header row): one row per 15-minute
/// interval from the first with activity to the last, including quiet ones between; local
/// RFC 3339 bounds (the interval in progress ends at the data's end), counts, ratios as
/// fractions and durations in seconds, empty where the formula has nothing to count.
pub fn render_csv(input: &ReportInput) -> String {
    let report = Report::new(input);
    let zone = input.zone;
    let ratio = |value: Option<f64>| value.map(|v| format!("{v:.4}")).unwrap_or_default();
    let secs = |value: Option<f64>| value.map(|v| format!("{v:.3}")).unwrap_or_default();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "interval_start",
        "interval_end",
        "offered",
        "answered",
        "answered_within_threshold",
        "abandoned",
        "short_abandoned",
        "dequeued",
        "service_level",
        "abandon_rate",
        "asa_s",
        "handled",
        "aht_s",
        "avg_talk_s",
        "avg_hold_s",
        "avg_acw_s",
        "transfers",
        "missed_offers",
        "occupancy",
        "logged_in_s",
        "available_s",
        "handling_s",
        "pause_s",
        "members",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for period in &report.intervals {
        let flow = period.flow.unwrap_or_default();
        let times = period.times.clone().unwrap_or_default();
        let ind = &period.indicators;
        let end = period
            .through_ms
            .map_or(period.end_ms, |t| t.min(period.end_ms));
        let ms_secs = |ms: i64| crate::timesheet::seconds(ms);
        lines.push(vec![
            crate::aggregate::local_rfc3339(period.start_ms, zone),
            crate::aggregate::local_rfc3339(end, zone),
            flow.offered.to_string(),
            flow.answered.to_string(),
            flow.answered_within_threshold.to_string(),
            flow.abandoned.to_string(),
            flow.short_abandoned.to_string(),
            flow.dequeued.to_string(),
            ratio(ind.service_level),
            ratio(ind.abandon_rate),
            secs(ind.asa),
            period.handling.handled.to_string(),
            secs(ind.handling.aht),
            secs(ind.handling.avg_talk),
            secs(ind.handling.avg_hold),
            secs(ind.handling.avg_acw),
            period.handling.transferred.to_string(),
            period.handling.missed_offers.to_string(),
            ratio(ind.occupancy),
            ms_secs(times.logged_in_ms),
            ms_secs(times.available_ms),
            ms_secs(times.handling_ms),
            ms_secs(crate::aggregate::pause_total(&times).0),
            period.members.map(|m| m.to_string()).unwrap_or_default(),
        ]);
    }
    for line in &lines {
        writer
            .write_record(line)
            .expect("writing CSV to memory cannot fail: every line has the header's length");
    }
    let bytes = writer
        .into_inner()
        .expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 text is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FlowRecord, HandlingRecord, PauseRecord, RecordKey, TimeRecord};
    use chrono_tz::Europe::Paris;

    const MIN: i64 = 60_000;

    fn at(hm: &str) -> i64 {
        Timestamp::parse_rfc3339(&format!("2026-11-27T{hm}:00+01:00"))
            .unwrap()
            .0
    }

    /// A team interval: 10 offered, 9 answered (8 within T, 15 s wait each), 1 abandoned;
    /// 8 handled (200 s talk, 20 s hold, 30 s after-contact work each: AHT 4:10); two
    /// advisors logged in, handling 20 min, available 400 s, break 200 s.
    fn busy(start: &str) -> IntervalRecord {
        let start_ms = at(start);
        IntervalRecord {
            revision: 1,
            settled: true,
            flow: Some(FlowRecord {
                offered: 10,
                answered: 9,
                answered_within_threshold: 8,
                abandoned: 1,
                short_abandoned: 0,
                abandoned_within_threshold: 1,
                dequeued: 0,
                wait_answered_ms: 9 * 15_000,
                wait_abandoned_ms: 30_000,
            }),
            handling: HandlingRecord {
                handled: 8,
                talk_ms: 8 * 200_000,
                hold_ms: 8 * 20_000,
                acw_ms: 8 * 30_000,
                held: 8,
                transferred: 0,
                missed_offers: 0,
            },
            times: Some(TimeRecord {
                logged_in_ms: 30 * MIN,
                available_ms: 400_000,
                handling_ms: 20 * MIN,
                pauses: vec![PauseRecord {
                    reason: "break".into(),
                    time_ms: 200_000,
                    count: 1,
                }],
                first_login_ms: None,
                last_logout_ms: None,
            }),
            sl_variant: Some(vigie_core::SlVariant::Offered),
            members: Some(2),
            ..IntervalRecord::new(
                RecordKey {
                    site: "paris".into(),
                    kind: ScopeKind::Team,
                    id: "t1".into(),
                    start_ms,
                },
                start_ms + 15 * MIN,
                "2026-11-27",
            )
        }
    }

    fn quiet(start: &str) -> IntervalRecord {
        IntervalRecord {
            flow: Some(FlowRecord::default()),
            handling: HandlingRecord::default(),
            times: Some(TimeRecord::default()),
            ..busy(start)
        }
    }

    fn advisor_row(advisor: &str, name: &str) -> TimesheetRow {
        TimesheetRow {
            date: "2026-11-27".into(),
            advisor: advisor.into(),
            name: Some(name.into()),
            team: Some("t1".into()),
            first_login_ms: Some(at("07:58") + 11_000),
            last_logout_ms: Some(at("16:02")),
            logged_in_ms: 8 * 60 * MIN,
            available_ms: 5 * 60 * MIN,
            handling_ms: 2 * 60 * MIN,
            talk_ms: 90 * MIN,
            hold_ms: 10 * MIN,
            acw_ms: 20 * MIN,
            pauses: vec![
                PauseRecord {
                    reason: "break".into(),
                    time_ms: 15 * MIN,
                    count: 1,
                },
                PauseRecord {
                    reason: "lunch".into(),
                    time_ms: 45 * MIN,
                    count: 1,
                },
            ],
            pause_ms: 60 * MIN,
            pause_count: 2,
        }
    }

    /// 07:00-07:45 quiet, 08:00-09:45 busy but for 09:00 (no record), 10:00 onwards quiet.
    /// Over the day: 70 offered, 63 answered, 54 within T (08:30 has 6 instead of 8), 7
    /// abandoned: service level 54 / 70 = 77.1%, abandon rate 7 / 70 = 10%, ASA 15 s;
    /// 56 handled, AHT 4:10; occupancy 140 min / (140 min + 2,800 s) = 75%.
    fn input(language: Language) -> ReportInput {
        let mut records: Vec<IntervalRecord> =
            ["07:00", "07:15", "07:30", "07:45", "10:00", "10:15"]
                .iter()
                .map(|hm| quiet(hm))
                .collect();
        for hm in [
            "08:00", "08:15", "08:30", "08:45", "09:15", "09:30", "09:45",
        ] {
            let mut record = busy(hm);
            if hm == "08:30" {
                record.flow.as_mut().unwrap().answered_within_threshold = 6;
            }
            records.push(record);
        }
        let mut other_team = busy("08:00");
        other_team.key.id = "t2".into();
        records.push(other_team);
        ReportInput {
            site_id: "paris".into(),
            site_name: Some("Paris Nord".into()),
            team_id: "t1".into(),
            team_name: Some("Équipe Soleil".into()),
            date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            zone: Paris,
            day_start: NaiveTime::MIN,
            language,
            records,
            advisors: vec![
                advisor_row("a2", "Zoé Martin"),
                advisor_row("a1", "Bruno Petit"),
            ],
            targets: ReportTargets {
                sl_target: 0.8,
                sl_threshold_s: 20.0,
                aht_target_s: Some(270.0),
                abandon_threshold: Some(0.05),
            },
            alerts: vec![
                ReportAlert {
                    rule: "sl-low".into(),
                    target: "q1".into(),
                    severity: AlertSeverity::Critical,
                    fired_at_ms: at("08:35"),
                    resolved_at_ms: Some(at("08:50")),
                    acknowledged_by: Some("lead".into()),
                    message: "Service level 62% below 70%".into(),
                },
                ReportAlert {
                    rule: "long-pause".into(),
                    target: "a1".into(),
                    severity: AlertSeverity::Warning,
                    fired_at_ms: at("12:40"),
                    resolved_at_ms: None,
                    acknowledged_by: None,
                    message: "Pause over 20 min".into(),
                },
            ],
            notices: vec![ReportNotice {
                text: "Team meeting at 14:00, room B".into(),
                author: "lead".into(),
                posted_at_ms: at("08:05"),
                until_ms: Some(at("14:00")),
                important: true,
            }],
        }
    }

    const HOSTILE: &str =
        "<script>alert(\"x\")</script> **bold** | [link](javascript:x) & <img onerror=x>";

    #[test]
    fn the_page_has_every_section_chart_and_figure() {
        let html = render_html(&input(Language::En));
        for id in [
            "key-figures",
            "charts",
            "chart-volume",
            "chart-service-level",
            "chart-aht",
            "advisors",
            "alerts",
            "notices",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        assert!(!html.contains("no-activity"));
        assert_eq!(html.matches("<svg ").count(), 3);
        assert_eq!(html.matches("</svg>").count(), 3);
        for element in ["<rect", "<polyline", "<circle", "<text", "<line"] {
            assert!(html.contains(element), "{element}");
        }
        // Hour marks on the x axis, from the first busy interval to the last.
        assert!(html.contains("\n08:00\n</text>") && html.contains("\n09:00\n</text>"));
        assert!(
            !html.contains("\n07:00\n</text>"),
            "quiet intervals before the shift are left out"
        );

        let row = |label: &str, value: &str, target: &str, result: &str| {
            format!(
                "<tr><td>{label}</td><td class=\"num\">{value}</td><td>{target}</td>\
                 <td>{result}</td></tr>"
            )
        };
        let met = "<span class=\"met\">✓ met</span>";
        let missed = "<span class=\"missed\">✗ missed</span>";
        for expected in [
            row("Offered", "70", "", ""),
            row("Answered", "63", "", ""),
            row("Abandoned", "7", "", ""),
            row("Abandon rate", "10.0%", "≤ 5%", missed),
            row(
                "Service level",
                "77.1%",
                "≥ 80% within 20\u{a0}s (formula offered)",
                missed,
            ),
            row("Average speed of answer", "0:15", "", ""),
            row("Handled", "56", "", ""),
            row("Average handle time", "4:10", "≤ 4:30", met),
            row("Occupancy", "75.0%", "", ""),
        ] {
            assert!(html.contains(&expected), "{expected}");
        }
        // Advisors by name; times local.
        let bruno = html.find("Bruno Petit").unwrap();
        let zoe = html.find("Zoé Martin").unwrap();
        assert!(bruno < zoe);
        assert!(html.contains(
            "<td class=\"num\">07:58</td><td class=\"num\">16:02</td>\
             <td class=\"num\">08:00:00</td>"
        ));
        assert!(html.contains("break 00:15:00 (1)<br>lunch 00:45:00 (1)"));
        assert!(html.contains(
            "<td class=\"critical\">critical</td><td>sl-low</td><td>q1</td>\
             <td class=\"num\">08:35</td><td class=\"num\">08:50</td><td>lead</td>"
        ));
        assert!(html.contains("<td class=\"num\">not resolved</td>"));
        assert!(html.contains(
            "<strong>important</strong> · 08:05 by lead, until 14:00: Team meeting at 14:00, room B"
        ));
        assert!(html.contains("@media print"));
    }

    #[test]
    fn the_page_references_nothing_outside_itself() {
        let html = render_html(&input(Language::En));
        for forbidden in [
            "http://", "https://", "<script", "<link", "<img", "<iframe", "@import", "url(",
            "xmlns=",
        ] {
            assert!(!html.contains(forbidden), "{forbidden}");
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<style>"));
    }

    #[test]
    fn user_text_is_escaped() {
        let mut input = input(Language::En);
        input.notices[0].text = HOSTILE.into();
        input.notices[0].author = "<b>x</b>".into();
        input.alerts[0].message = HOSTILE.into();
        input.advisors[0].name = Some("<i>Zoé</i> | *Z*".into());
        input.team_name = Some("<t1>".into());
        input.advisors[0].pauses[0].reason = "<br>".into();

        let html = render_html(&input);
        for raw in ["<script", "<img", "<b>x", "<i>Zoé", "<t1>", "<br> 00:15"] {
            assert!(!html.contains(raw), "{raw}");
        }
        assert!(html.contains(
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; **bold** | [link](javascript:x) \
             &amp; &lt;img onerror=x&gt;"
        ));
        assert!(html.contains("&lt;i&gt;Zoé&lt;/i&gt;"));

        let md = render_markdown(&input);
        assert!(md.contains(
            "\\<script\\>alert(\"x\")\\</script\\> \\*\\*bold\\*\\* \\| \\[link\\](javascript:x) \
             \\& \\<img onerror=x\\>"
        ));
        assert!(md.contains("\\<i\\>Zoé\\</i\\> \\| \\*Z\\*"));
        assert!(!md.replace("\\<", "").contains('<'), "every < escaped");
        input.notices[0].text = "line one\nline two | three".into();
        let md = render_markdown(&input);
        assert!(
            md.contains("line one line two \\| three"),
            "one line per item"
        );
    }

    #[test]
    fn labels_follow_the_language() {
        let fr = render_html(&input(Language::Fr));
        assert!(fr.contains("<html lang=\"fr\">"));
        for text in [
            "Rapport de fin de service",
            "vendredi 27 novembre 2026",
            "Niveau de service",
            "77,1\u{a0}%",
            "≥ 80\u{a0}% en 20\u{a0}s",
            "✗ manqué",
            "✓ atteint",
            "Conseillers",
            "Alertes",
            "critique",
            "non résolue",
            "Contacts par intervalle",
        ] {
            assert!(fr.contains(text), "{text}");
        }
        assert!(!fr.contains("Key figures") && !fr.contains("Service level per interval"));
        let en = render_html(&input(Language::En));
        for text in [
            "End-of-shift report",
            "Friday 27 November 2026",
            "Service level",
            "Advisors",
        ] {
            assert!(en.contains(text), "{text}");
        }
        let md = render_markdown(&input(Language::Fr));
        assert!(md.contains("## Chiffres clés de la journée"));
        assert_eq!("fr".parse(), Ok(Language::Fr));
        assert!("de".parse::<Language>().is_err());
    }

    #[test]
    fn a_day_without_activity_says_so() {
        let mut input = input(Language::En);
        input
            .records
            .retain(|r| r.flow.is_some_and(|f| f.offered == 0));
        input.advisors.clear();
        let html = render_html(&input);
        assert!(html.contains("id=\"no-activity\""));
        assert!(html.contains("No activity recorded for this team on this day."));
        assert!(!html.contains("<svg"));
        assert!(!html.contains("id=\"key-figures\""));
        assert!(html.contains("id=\"alerts\"") && html.contains("id=\"notices\""));

        input.records.clear();
        input.alerts.clear();
        input.notices.clear();
        let html = render_html(&input);
        assert!(html.contains("No activity recorded"));
        assert!(html.contains("No alert on this day.") && html.contains("No notice posted"));
        let md = render_markdown(&input);
        assert!(md.contains("**No activity recorded for this team on this day.**"));
        assert_eq!(render_csv(&input).lines().count(), 1, "the header only");
    }

    #[test]
    fn markdown_for_chat_has_tables_and_lists() {
        let md = render_markdown(&input(Language::En));
        assert!(md.starts_with(
            "# End-of-shift report: Équipe Soleil\n\nSite Paris Nord (paris) · \
             Friday 27 November 2026 · Times in Europe/Paris\n"
        ));
        assert!(md.contains("| Figure | Value | Target | Result |\n|---|---:|---|---|\n"));
        assert!(md.contains(
            "| Service level | 77.1% | ≥ 80% within 20\u{a0}s (formula offered) | ✗ **missed** |"
        ));
        assert!(md.contains("| Average handle time | 4:10 | ≤ 4:30 | ✓ met |"));
        assert!(md.contains(
            "| Bruno Petit (a1) | 07:58 | 16:02 | 08:00:00 | 02:00:00 | 01:00:00 (2) | \
             break 00:15:00 (1), lunch 00:45:00 (1) |"
        ));
        assert!(md.contains(
            "- **critical** 08:35–08:50 sl-low (On q1): Service level 62% below 70% \
             (Acknowledged by lead)\n- **warning** 12:40 (not resolved) long-pause (On a1): \
             Pause over 20 min\n"
        ));
        assert!(md.contains(
            "- **important** · 08:05 by lead, until 14:00: Team meeting at 14:00, room B"
        ));
        assert!(!md.contains("<svg") && !md.contains("!["));
    }

    #[test]
    fn csv_has_one_row_per_interval_of_the_shift() {
        let text = render_csv(&input(Language::En));
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        // 08:00 to 09:45: the 09:00 interval without a record is there, as zero.
        assert_eq!(rows.len(), 8);
        let cell = |row: &csv::StringRecord, name: &str| {
            row[header.iter().position(|h| h == name).unwrap()].to_owned()
        };
        assert_eq!(
            cell(&rows[0], "interval_start"),
            "2026-11-27T08:00:00+01:00"
        );
        assert_eq!(cell(&rows[0], "interval_end"), "2026-11-27T08:15:00+01:00");
        assert_eq!(cell(&rows[0], "offered"), "10");
        assert_eq!(cell(&rows[0], "service_level"), "0.8000");
        assert_eq!(cell(&rows[2], "service_level"), "0.6000");
        assert_eq!(cell(&rows[0], "aht_s"), "250.000");
        assert_eq!(cell(&rows[0], "occupancy"), "0.7500");
        assert_eq!(cell(&rows[0], "pause_s"), "200");
        assert_eq!(
            cell(&rows[4], "interval_start"),
            "2026-11-27T09:00:00+01:00"
        );
        assert_eq!(cell(&rows[4], "offered"), "0");
        assert_eq!(cell(&rows[4], "service_level"), "", "nothing to count");
        assert_eq!(
            cell(&rows[7], "interval_start"),
            "2026-11-27T09:45:00+01:00"
        );
    }
}
