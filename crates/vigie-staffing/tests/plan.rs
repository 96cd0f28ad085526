//! The logic and rendering behind `vigie staffing`.

use std::time::Duration;

use vigie_staffing::plan::{
    IntervalStart, PlanError, parse_duration_arg, parse_forecast, plan_forecast, plan_interval,
};
use vigie_staffing::render::{render_forecast, render_interval};
use vigie_staffing::{Constraint, OutputFormat, PlanOptions};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The Call Centre Helper example (see tests/published.rs) as the CLI would run it.
fn classic() -> PlanOptions {
    PlanOptions {
        interval: secs(1800),
        aht: Some(secs(180)),
        sl_target: Some(0.8),
        sl_threshold: secs(20),
        shrinkage: 0.3,
        max_occupancy: Some(0.85),
        ..PlanOptions::default()
    }
}

#[test]
fn single_interval_plan() {
    let plan = plan_interval(&classic(), 100.0).expect("valid");
    assert_eq!(plan.load_erlangs, 10.0);
    assert_eq!(plan.advisors, 14);
    assert_eq!(plan.scheduled, 20);
    assert_eq!(plan.binding, vec![Constraint::ServiceLevel]);
    assert!((plan.achieved.service_level - 0.8884).abs() < 5e-5);
    let ns: Vec<u32> = plan.table.iter().map(|r| r.metrics.advisors).collect();
    assert_eq!(ns, (9..=19).collect::<Vec<_>>());
    for r in &plan.table {
        assert_eq!(
            r.meets_target,
            r.metrics.advisors >= 14,
            "N={}",
            r.metrics.advisors
        );
    }
    // Unstable rows report an unbounded ASA.
    assert_eq!(plan.table[0].metrics.asa_seconds, None);
    assert_eq!(plan.table[1].metrics.asa_seconds, None);
}

#[test]
fn table_rendering_shows_the_answer() {
    let out = render_interval(
        &plan_interval(&classic(), 100.0).expect("valid"),
        OutputFormat::Table,
    )
    .expect("renders");
    for expected in [
        "Erlang C (callers never abandon): 100 contacts per 30m, AHT 3m, offered load 10 Erlangs",
        "Target: 80% answered within 20s, occupancy at most 85%; shrinkage 30%",
        "Advisors on the phones",
        "88.84%",
        "7.84 s",
        "71.43%",
        "17.41%",
        "yes  <- answer",
        "unbounded",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(!out.contains("P(abandon)"));
}

#[test]
fn erlang_a_rendering_adds_abandonment() {
    let options = PlanOptions {
        patience: Some(secs(60)),
        ..classic()
    };
    let plan = plan_interval(&options, 100.0).expect("valid");
    let ab = plan.achieved.abandon_probability.expect("Erlang A");
    // Callers who give up shorten the queue for the others: fewer advisors than Erlang C's
    // 14 meet the same 80/20 (abandons counting as misses), at the price of abandonment.
    assert!(plan.advisors < 14, "{}", plan.advisors);
    assert!(plan.achieved.service_level >= 0.8);
    assert!(ab > 0.0 && ab < 0.2, "{ab}");
    let row = |n: u32| {
        plan.table
            .iter()
            .find(|r| r.metrics.advisors == n)
            .expect("in table")
    };
    assert!(row(plan.advisors - 1).metrics.service_level < 0.8);
    let out = render_interval(&plan, OutputFormat::Table).expect("renders");
    assert!(out.contains("Erlang A (mean caller patience 1m)"), "{out}");
    assert!(out.contains("Abandon probability"));
    assert!(out.contains("P(abandon)"));
}

#[test]
fn json_rendering_is_complete() {
    let options = PlanOptions {
        patience: Some(secs(60)),
        asa_target: Some(secs(15)),
        ..classic()
    };
    let plan = plan_interval(&options, 100.0).expect("valid");
    let out = render_interval(&plan, OutputFormat::Json).expect("renders");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["model"], "erlang_a");
    assert_eq!(v["patience_seconds"], 60.0);
    assert_eq!(v["load_erlangs"], 10.0);
    assert_eq!(v["advisors"], plan.advisors);
    assert_eq!(v["scheduled"], plan.scheduled);
    assert_eq!(v["target"]["asa_target_seconds"], 15.0);
    assert!(v["achieved"]["abandon_probability"].is_number());
    assert_eq!(v["table"].as_array().map(Vec::len), Some(plan.table.len()));
    assert!(v["table"][0]["meets_target"].is_boolean());
}

#[test]
fn csv_rendering_has_one_line_per_row() {
    let plan = plan_interval(&classic(), 100.0).expect("valid");
    let out = render_interval(&plan, OutputFormat::Csv).expect("renders");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + plan.table.len());
    assert!(lines[0].starts_with("advisors,scheduled,service_level,asa_seconds"));
    assert!(lines[6].starts_with("14,20,0.888"), "{}", lines[6]);
    // Unbounded ASA and absent abandonment are empty cells.
    assert!(lines[1].starts_with("9,13,0,,1,1,,false"), "{}", lines[1]);
}

#[test]
fn every_bad_option_is_reported_at_once() {
    let options = PlanOptions {
        sl_target: Some(80.0),
        shrinkage: 1.2,
        max_occupancy: Some(0.0),
        aht: None,
        ..PlanOptions::default()
    };
    let Err(PlanError::InvalidOptions(problems)) = plan_interval(&options, -3.0) else {
        panic!("expected invalid options");
    };
    let text = problems.join("\n");
    for expected in [
        "--sl-target",
        "0.8 for 80%",
        "--shrinkage",
        "--max-occupancy",
        "--aht",
        "--volume",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let options = PlanOptions {
        aht: Some(secs(180)),
        ..PlanOptions::default()
    };
    let err = plan_interval(&options, 100.0).expect_err("no target");
    assert!(err.to_string().contains("no target"), "{err}");
}

#[test]
fn zero_volume_needs_nobody() {
    let plan = plan_interval(&classic(), 0.0).expect("valid");
    assert_eq!((plan.advisors, plan.scheduled), (0, 0));
    assert_eq!(plan.table.first().map(|r| r.metrics.advisors), Some(0));
}

#[test]
fn duration_arguments_need_a_unit() {
    assert_eq!(parse_duration_arg("30m"), Ok(secs(1800)));
    assert_eq!(parse_duration_arg("3m 30s"), Ok(secs(210)));
    let err = parse_duration_arg("180").expect_err("no unit");
    assert!(err.contains("no unit") && err.contains("180s"), "{err}");
    assert!(parse_duration_arg("soon").is_err());
}

const DAY: &str = "\
start,volume,aht
08:00,40,
08:30,100,200
09:00,160,3m
09:30,0,
";

#[test]
fn forecast_parses_local_times_and_per_row_aht() {
    let rows = parse_forecast(DAY, secs(1800), Some(secs(180))).expect("valid");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].start, IntervalStart::LocalTime(8 * 3600));
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].aht, secs(180));
    assert_eq!(rows[1].aht, secs(200));
    assert_eq!(rows[2].aht, secs(180));
    assert_eq!(rows[3].volume, 0.0);
}

#[test]
fn forecast_plan_and_summary() {
    let rows = parse_forecast(DAY, secs(1800), Some(secs(180))).expect("valid");
    let plan = plan_forecast(&classic(), &rows).expect("valid");
    let advisors: Vec<u32> = plan.intervals.iter().map(|i| i.advisors).collect();
    // 40 contacts = 4 E; 100 at 200 s = 11.1 E; 160 = 16 E; nothing offered at 09:30.
    assert_eq!(advisors[3], 0);
    assert!(advisors[0] < advisors[1] && advisors[1] < advisors[2]);
    let single = plan_interval(&classic(), 160.0).expect("valid");
    assert_eq!(plan.intervals[2].advisors, single.advisors);
    assert_eq!(plan.intervals[2].scheduled, single.scheduled);
    let s = &plan.summary;
    assert_eq!(s.intervals, 4);
    assert_eq!(s.total_volume, 300.0);
    assert_eq!(s.peak_start, "09:00");
    assert_eq!(s.peak_scheduled, single.scheduled);
    let hours: f64 = plan
        .intervals
        .iter()
        .map(|i| f64::from(i.scheduled) * 0.5)
        .sum();
    assert_eq!(s.scheduled_advisor_hours, hours);
    assert!(s.service_level >= 0.8);

    let table = render_forecast(&plan, OutputFormat::Table).expect("renders");
    assert!(
        table.contains("staffing plan for 4 intervals of 30m"),
        "{table}"
    );
    assert!(table.contains("09:00"));
    assert!(table.contains("scheduled advisor-hours"));
    let csv = render_forecast(&plan, OutputFormat::Csv).expect("renders");
    assert_eq!(csv.lines().count(), 5);
    assert!(
        csv.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("08:00,40,180,4,"))
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_forecast(&plan, OutputFormat::Json).expect("renders"))
            .expect("valid JSON");
    assert_eq!(json["intervals"][1]["aht_seconds"], 200.0);
    assert_eq!(json["summary"]["peak_start"], "09:00");
}

#[test]
fn forecast_accepts_rfc3339_and_french_spreadsheets() {
    let text = "\u{feff}début;volume;dmt\n\
                2026-03-02T08:00:00+01:00;12,5;185,5\n\
                2026-03-02T08:30:00+01:00;20;\n";
    let rows = parse_forecast(text, secs(1800), Some(secs(180))).expect("valid");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].volume, 12.5);
    assert_eq!(rows[0].aht, Duration::from_secs_f64(185.5));
    assert!(matches!(rows[1].start, IntervalStart::Instant(_)));
}

fn forecast_errors(text: &str, interval: u64, aht: Option<u64>) -> String {
    match parse_forecast(text, secs(interval), aht.map(secs)) {
        Err(e @ PlanError::Forecast(_)) => e.to_string(),
        other => panic!("expected forecast problems, got {other:?}"),
    }
}

#[test]
fn forecast_errors_name_line_column_and_reason() {
    let text = "start,volume,aht\n\
                08:00,40,\n\
                08:30,lots,\n\
                25:00,10,\n\
                09:30,10,-4\n\
                10:00,10,180,extra\n";
    let err = forecast_errors(text, 1800, None);
    for expected in [
        "the forecast has 7 problems",
        // Rows 3 and 4 also lack an AHT: every problem is listed, not only the first.
        "line 3, column 3 (AHT)",
        "line 4, column 3 (AHT)",
        "line 2, column 3 (AHT): no AHT on this row and no --aht to fall back on",
        "line 3, column 2 (volume): \"lots\" is not a number of contacts >= 0",
        "line 4, column 1 (interval start): \"25:00\" is not a time of day",
        "line 5, column 3 (AHT): \"-4\" is not a handle time > 0",
        "line 6: 4 columns; expected 2 or 3",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
}

#[test]
fn forecast_rows_must_not_overlap() {
    // A 15-minute forecast read with the default 30-minute interval would double the load.
    let text = "start,volume\n08:00,10\n08:15,10\n";
    let err = forecast_errors(text, 1800, Some(180));
    assert!(
        err.contains("line 3, column 1 (interval start): 08:15 starts 15m after the previous row (08:00), less than the interval of 30m"),
        "{err}"
    );
    let err = forecast_errors("start,volume\n08:00,10\n08:00,10\n", 1800, Some(180));
    assert!(err.contains("same start as line 2"), "{err}");
    let err = forecast_errors(
        "start,volume\n09:00,10\n08:30,10\n10:00,10\n",
        1800,
        Some(180),
    );
    assert!(err.contains("span more than 24 hours"), "{err}");
    // Wrapping past midnight once is a 24/7 day, not an error.
    assert!(
        parse_forecast(
            "start,volume\n23:30,5\n00:00,5\n",
            secs(1800),
            Some(secs(180))
        )
        .is_ok()
    );
    let err = forecast_errors(
        "start,volume\n2026-03-02T08:30:00Z,1\n2026-03-02T08:00:00Z,1\n",
        1800,
        Some(180),
    );
    assert!(err.contains("rows must be in time order"), "{err}");
    let err = forecast_errors(
        "start,volume\n08:00,1\n2026-03-02T08:30:00Z,1\n",
        1800,
        Some(180),
    );
    assert!(
        err.contains("mixes a local time of day and an RFC 3339 instant"),
        "{err}"
    );
}

#[test]
fn forecast_file_level_errors() {
    assert!(forecast_errors("", 1800, Some(180)).contains("the forecast is empty"));
    assert!(forecast_errors("start,volume\n", 1800, Some(180)).contains("no interval rows"));
    let err = forecast_errors("08:00,10\n08:30,12\n", 1800, Some(180));
    assert!(
        err.contains("line 1: this looks like data, not a header"),
        "{err}"
    );
    let err = forecast_errors("a,b,c,d\n08:00,1\n", 1800, Some(180));
    assert!(err.contains("the header has 4 columns"), "{err}");
}

#[test]
fn forecast_planning_errors_name_the_interval() {
    let rows =
        parse_forecast("start,volume\n08:00,10\n", secs(1800), Some(secs(180))).expect("valid");
    let options = PlanOptions {
        patience: Some(secs(1_000_000_000)),
        ..classic()
    };
    let err = plan_forecast(&options, &rows).expect_err("patience too long");
    assert!(
        err.to_string()
            .contains("line 2: interval starting 08:00: patience"),
        "{err}"
    );
}
