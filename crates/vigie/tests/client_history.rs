//! `vigie history`, `vigie timesheet` and `vigie report` against a real `vigie serve` (the
//! embedded demo, whose morning is in its memory history) started as a child process on
//! random ports: the timesheet's CSV reads with a CSV reader and is the same file through
//! `--output`, its JSON has the same rows; the history as CSV adds up to its hours; the HTML
//! report is a page that headless Chromium renders without a console error (its screenshot is
//! kept under `target/test-artifacts/history/`); requests out of bounds are refused with a
//! sentence.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::Path;

use vigie_tests::browser::{Browser, artifacts_dir};
use vigie_tests::cli::{Served, http_get, metric, text};

/// The rows of a CSV file, by column name.
fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn column<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let at = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    &row[at]
}

const DEMO: [&str; 6] = [
    "--config",
    "vigie.toml",
    "--demo-advisors",
    "20",
    "--demo-queues",
    "3",
];

/// A team's timesheet of closed intervals as CSV (the same file from one call to the next).
const CLOSED_TIMESHEET: [&str; 6] = [
    "timesheet",
    "--team",
    "team-01",
    "--format",
    "csv",
    "--closed-only",
];

/// The demo on random ports with the configuration of `dir`; returns once a team's timesheet
/// of closed intervals has rows (the simulated morning's intervals are in the history: they
/// reach it a moment after the figures, through the history's writer).
fn start(dir: &Path) -> Served {
    std::fs::write(
        dir.join("vigie.toml"),
        format!(
            "[admin]\nchanges_dir = \"{}\"\n",
            dir.join("changes").display()
        ),
    )
    .unwrap();
    let mut served = Served::spawn(env!("CARGO_BIN_EXE_vigie"), &DEMO, dir);
    served.wait_until(
        &CLOSED_TIMESHEET,
        dir,
        "no timesheet row of closed intervals",
        |output| output.status.success() && text(&output.stdout).lines().count() > 1,
    );
    served
}

#[test]
fn timesheets_and_history_of_the_demo_read_as_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = start(dir.path());
    let path = dir.path();

    // The CSV, closed intervals only so that two calls give the same file.
    let args = CLOSED_TIMESHEET;
    let csv = served.ok(&args, path);
    let (header, rows) = read_csv(&csv);
    assert_eq!(&header[..4], ["date", "advisor", "name", "team"]);
    assert!(header.contains(&"logged_in_hms".to_owned()), "{header:?}");
    assert!(!rows.is_empty(), "the demo's morning has timesheet rows");
    for row in &rows {
        assert_eq!(row.len(), header.len());
        assert_eq!(column(&header, row, "team"), "team-01");
        let logged_in: f64 = column(&header, row, "logged_in_s").parse().unwrap();
        let pause: f64 = column(&header, row, "pause_s").parse().unwrap();
        assert!(logged_in >= pause, "{row:?}");
        assert!(column(&header, row, "logged_in_hms").len() >= 8, "hh:mm:ss");
    }
    let output = path.join("team-01.csv");
    let written = served.ok(
        &[&args[..], &["--output", output.to_str().unwrap()]].concat(),
        path,
    );
    assert!(
        written.is_empty(),
        "nothing on standard output with --output"
    );
    let file = std::fs::read(&output).unwrap();
    // The same file, unless an interval closed between the two calls.
    if file != csv {
        assert_eq!(read_csv(&file).0[..4], header[..4]);
    }

    // JSON: the same advisors.
    let json = served.ok(
        &["timesheet", "--team", "team-01", "--format", "json"],
        path,
    );
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let advisors = json.as_array().unwrap();
    assert!(advisors.len() >= rows.len(), "today's rows so far");
    assert!(advisors[0]["logged_in"].is_number());

    // Piped without --format: CSV.
    let piped = served.ok(&["timesheet", "--team", "team-01", "--closed-only"], path);
    assert!(text(&piped).starts_with("date,advisor,"));

    // The team's history by hour as CSV adds up to its quarters (read before and after, as a
    // quarter of an hour may close meanwhile).
    let history = |served: &mut Served, granularity: &str| {
        served.ok(
            &[
                "history",
                "--team",
                "team-01",
                "--granularity",
                granularity,
                "--format",
                "csv",
                "--closed-only",
            ],
            path,
        )
    };
    let total = |bytes: &[u8], name: &str| -> u64 {
        let (header, rows) = read_csv(bytes);
        rows.iter()
            .map(|row| column(&header, row, name).parse::<u64>().unwrap_or(0))
            .sum()
    };
    let before = history(&mut served, "15m");
    let hours = history(&mut served, "1h");
    let after = history(&mut served, "15m");
    for name in ["offered", "answered", "abandoned"] {
        let (low, high) = (total(&before, name), total(&after, name));
        assert!(low > 0, "the demo's morning has calls");
        let by_hour = total(&hours, name);
        assert!(
            low <= by_hour && by_hour <= high,
            "{name}: {low} <= {by_hour} <= {high}"
        );
    }
    let (header, rows) = read_csv(&hours);
    for row in &rows {
        let (answered, within): (u64, u64) = (
            column(&header, row, "answered").parse().unwrap(),
            column(&header, row, "answered_within_threshold")
                .parse()
                .unwrap(),
        );
        assert!(within <= answered, "{row:?}");
    }
    let json = served.ok(&["history", "--team", "team-01", "--format", "json"], path);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["scope"]["kind"], "HISTORY_SCOPE_KIND_TEAM");
    let periods = json["periods"].as_array().unwrap();
    assert_eq!(periods.last().unwrap()["partial"], true, "today up to now");
    let table = text(&served.ok(&["history", "--queue", "billing-voice"], path));
    assert!(
        table.starts_with("History of queue billing-voice"),
        "{table}"
    );
    assert!(table.contains("* in progress"), "{table}");

    // Out of bounds: said in a sentence.
    let refused = served.refused(
        &["history", "--team", "team-01", "--from", "2020-01-01"],
        path,
    );
    assert!(
        refused.contains("at most 31 days at granularity 15m"),
        "{refused}"
    );
    let refused = served.refused(&["timesheet"], path);
    assert!(refused.contains("--team"), "{refused}");
    let refused = served.refused(
        &["timesheet", "--team", "team-01", "--from", "2026-13-01"],
        path,
    );
    assert!(refused.contains("is not a day YYYY-MM-DD"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_of_the_demo_renders_in_a_browser_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let report = path.join("report.html");
    let (served, markdown) = {
        let (path, report) = (path.clone(), report.clone());
        tokio::task::spawn_blocking(move || {
            let served = start(&path);
            let written = served.ok(
                &[
                    "report",
                    "--team",
                    "team-01",
                    "--format",
                    "html",
                    "--output",
                    report.to_str().unwrap(),
                ],
                &path,
            );
            assert!(
                written.is_empty(),
                "nothing on standard output with --output"
            );
            let markdown = served.ok(
                &[
                    "report", "--team", "team-01", "--format", "md", "--lang", "fr",
                ],
                &path,
            );
            (served, text(&markdown))
        })
        .await
        .unwrap()
    };
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    assert!(html.contains("<svg "), "charts");
    assert!(markdown.starts_with("# "), "{markdown}");

    let browser = Browser::start(1280, 900).await;
    browser.open(&format!("file://{}", report.display())).await;
    let title = browser.run("return document.title;", Vec::new()).await;
    assert!(
        title.as_str().unwrap().contains("team-01") || title.as_str().unwrap().contains("Billing"),
        "{title}"
    );
    let charts = browser
        .run(
            "return document.querySelectorAll('svg').length;",
            Vec::new(),
        )
        .await;
    assert!(charts.as_u64().unwrap() >= 1, "{charts}");
    let height = browser
        .run("return document.body.scrollHeight;", Vec::new())
        .await;
    assert!(
        height.as_u64().unwrap() > 300,
        "a page with content: {height}"
    );
    browser
        .screenshot(&artifacts_dir().join("history").join("report.png"))
        .await;
    let errors: Vec<(String, String)> = browser
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console: {errors:#?}");
    drop(served);
}

#[test]
fn the_abandoned_contacts_of_the_demo_are_those_its_figures_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = start(dir.path());
    let path = dir.path();
    let abandoned_today = |served: &mut Served| -> u64 {
        let csv = served.ok(
            &["history", "--granularity", "day", "--format", "csv"],
            path,
        );
        let (header, rows) = read_csv(&csv);
        rows.iter()
            .map(|row| column(&header, row, "abandoned").parse::<u64>().unwrap())
            .sum()
    };

    // The site's list, between two readings of the day's count (the demo goes on meanwhile).
    let before = abandoned_today(&mut served);
    let csv = served.ok(&["abandoned", "--format", "csv"], path);
    let after = abandoned_today(&mut served);
    let (header, rows) = read_csv(&csv);
    assert_eq!(
        header,
        [
            "abandoned_at",
            "date",
            "queue",
            "channel",
            "contact_id",
            "wait_seconds",
            "wait",
            "short"
        ]
    );
    assert!(before > 0, "the demo's morning has abandons");
    let listed = rows.len() as u64;
    assert!(
        before <= listed && listed <= after,
        "{before} <= {listed} <= {after}"
    );
    let mut times: Vec<&str> = Vec::new();
    for row in &rows {
        assert!(!column(&header, row, "contact_id").is_empty(), "{row:?}");
        let wait: f64 = column(&header, row, "wait_seconds").parse().unwrap();
        assert!(wait >= 0.0, "{row:?}");
        assert_eq!(column(&header, row, "wait").len(), 8, "hh:mm:ss");
        times.push(column(&header, row, "abandoned_at"));
    }
    assert!(times.is_sorted(), "oldest first");

    // A team's campaign queues, long waits only; the same through JSON and as a table.
    let team = served.ok(
        &[
            "abandoned",
            "--team",
            "team-01",
            "--exclude-short",
            "--format",
            "csv",
        ],
        path,
    );
    let (header, team_rows) = read_csv(&team);
    assert!(team_rows.len() <= rows.len());
    assert!(
        team_rows
            .iter()
            .all(|row| column(&header, row, "short") == "false")
    );
    let json = served.ok(&["abandoned", "--format", "json"], path);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let contacts = json["contacts"].as_array().unwrap();
    assert!(contacts.len() >= rows.len(), "the list only grows");
    assert!(contacts[0]["contactId"].is_string(), "{}", contacts[0]);
    let table = text(&served.ok(&["abandoned", "--format", "table"], path));
    assert!(table.starts_with("Abandoned contacts, "), "{table}");

    // The engine's list, in the metrics: as long as the list, nothing dropped.
    let (_, metrics) = http_get(served.http, "/metrics").expect("the metrics answer");
    let held = metric(&metrics, "vigie_history_abandoned_listed").expect("listed metric");
    assert!(held >= listed as f64, "{held} >= {listed}");
    for dropped in [
        "vigie_history_abandoned_dropped_total",
        "vigie_history_interval_totals_dropped_total",
    ] {
        assert_eq!(metric(&metrics, dropped), Some(0.0), "{dropped}");
    }

    let refused = served.refused(
        &["abandoned", "--from", "2020-01-01", "--to", "2020-03-01"],
        path,
    );
    assert!(refused.contains("at most 31 days"), "{refused}");
}
