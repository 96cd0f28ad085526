//! Golden scenarios: small event files under `tests/golden/` with indicators computed by hand.
//! Each expectation says how it was computed, so a reader can check it.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::PathBuf;

use serde_json::Value;
use vigie::config::VigieConfig;
use vigie::replay::apply_lines;
use vigie_core::{Processor, RejectReason, Timestamp, Window};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Replays a golden file with the example configuration; returns the site view as JSON.
fn replay(file: &str, at: Option<&str>, window: Window) -> (Value, vigie::replay::ReplaySummary) {
    let config = VigieConfig::load(&root().join("deploy/config/vigie.toml")).unwrap();
    let mut processor = Processor::new(config.sites, config.processing);
    let input = std::fs::read(root().join("tests/golden").join(file)).unwrap();
    let at = at.map(|t| Timestamp::parse_rfc3339(t).unwrap());
    let summary = apply_lines(&input[..], &mut processor, at, None, std::io::sink()).unwrap();
    if let Some(at) = at {
        processor.advance_to(at);
    }
    let view = processor.site("paris").unwrap().site_view(window);
    (serde_json::to_value(view).unwrap(), summary)
}

fn find<'a>(view: &'a Value, list: &str, key: &str, id: &str) -> &'a Value {
    view[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == id)
        .unwrap_or_else(|| panic!("no {key} {id} in {list}"))
}

#[track_caller]
fn expect(item: &Value, field: &str, expected: Value) {
    let actual = &item[field];
    let same = match (actual.as_f64(), expected.as_f64()) {
        (Some(a), Some(e)) => (a - e).abs() < 1e-9,
        _ => *actual == expected,
    };
    assert!(
        same,
        "{field}: expected {expected}, found {actual} in {item:#}"
    );
}

#[test]
fn basic_day_short_abandon_hold_pause_duplicate_and_bad_line() {
    let (view, summary) = replay("basic.jsonl", None, Window::Today);
    // 20 lines: line 16 repeats event 15, line 19 has an unknown type.
    assert_eq!((summary.applied, summary.duplicates), (18, 1));
    assert_eq!(summary.rejected.get(&RejectReason::UnknownType), Some(&1));
    expect(&view, "as_of", "2026-03-02T09:45:00.000+01:00".into());

    let billing = find(&view, "queues", "queue", "billing");
    expect(billing, "offered", 5.into()); // c1..c5
    expect(billing, "answered", 2.into()); // c1 waited 10 s, c4 20 s
    expect(billing, "answered_within_threshold", 2.into()); // 20 s is within T = 20 s
    expect(billing, "abandoned", 2.into()); // c2 after 3 s, c3 after 40 s
    expect(billing, "short_abandoned", 1.into()); // 3 s < 5 s
    expect(billing, "abandoned_within_threshold", 1.into()); // c2 only
    expect(billing, "sl_offered", (2.0 / 3.0).into()); // 2 / (2 + 2 - 1)
    expect(billing, "sl_answered", 1.0.into()); // 2 / 2
    expect(billing, "sl_positive", 0.75.into()); // (2 + 1) / (2 + 2)
    expect(billing, "service_level", (2.0 / 3.0).into());
    expect(billing, "abandon_rate", (1.0 / 3.0).into()); // (2 - 1) / (2 + 2 - 1)
    expect(billing, "asa", 15.0.into()); // (10 + 20) / 2
    expect(billing, "max_wait_answered", 20.0.into());
    expect(billing, "handled", 1.into()); // c1; c4 still talking
    // c1: talk 09:10:10-09:12:00 (110 s) + 09:12:30-09:14:10 (100 s), hold 30 s, ACW 60 s.
    expect(billing, "avg_talk", 210.0.into());
    expect(billing, "avg_hold", 30.0.into());
    expect(billing, "avg_acw", 60.0.into());
    expect(billing, "aht", 300.0.into());
    expect(billing, "hold_rate", 1.0.into());
    expect(billing, "in_queue", 1.into()); // c5 since 09:45:00
    expect(billing, "longest_wait", 0.0.into());

    let ana = find(&view, "advisors", "advisor", "a001");
    expect(ana, "state", "talking".into()); // c4 since 09:40:20
    expect(ana, "time_in_state", 280.0.into());
    expect(ana, "current_contact_duration", 280.0.into());
    expect(ana, "team", "team-blue".into());
    // Logged in 09:00-09:45 (2700 s); handling c1 09:10:10-09:15:10 (300 s) and c4 since
    // 09:40:20 (280 s); the rest available (ringing 09:10:05-09:10:10 counts as available).
    expect(ana, "handling_time", 580.0.into());
    expect(ana, "available_time", 2120.0.into());
    expect(ana, "occupancy", (580.0 / 2700.0).into());
    expect(ana, "login_time", 2700.0.into());

    let bruno = find(&view, "advisors", "advisor", "a002");
    expect(bruno, "name", "Bruno".into());
    expect(bruno, "state", "available".into()); // back from break at 09:45:00
    expect(bruno, "pause_time", 900.0.into()); // break 09:30-09:45
    expect(
        bruno,
        "pauses",
        serde_json::json!([{"reason": "break", "time": 900.0, "count": 1}]),
    );
    expect(bruno, "occupancy", 0.0.into());

    let blue = find(&view, "teams", "team", "team-blue");
    // Handling 580 s (Ana) over 580 + 2120 (Ana) + 1800 (Bruno, 30 min available).
    expect(blue, "occupancy", (580.0 / 4500.0).into());
    expect(blue, "handled", 1.into());
    expect(&blue["advisors"], "talking", 1.into());
    expect(&blue["advisors"], "available", 1.into());
    expect(&blue["advisors"], "logged_out", 8.into());
}

#[test]
fn transfer_to_another_queue_with_disorder_and_an_answer_after_completion() {
    let (view, summary) = replay("transfer.jsonl", None, Window::Today);
    // The answer at 10:20 comes 6 min after the contact completed (10:13:35).
    assert_eq!(
        summary.rejected.get(&RejectReason::ContactCompleted),
        Some(&1)
    );
    assert_eq!(summary.applied, 9);
    expect(&view, "as_of", "2026-03-02T10:13:35.000+01:00".into());

    let billing = find(&view, "queues", "queue", "billing");
    expect(billing, "answered", 1.into());
    expect(billing, "answered_within_threshold", 0.into()); // waited 25 s > 20 s
    expect(billing, "sl_offered", 0.0.into());
    expect(billing, "transferred", 1.into());
    expect(billing, "transfer_rate", 1.0.into());
    expect(billing, "handled", 1.into()); // a001's leg: talk 120 s, ACW 30 s
    expect(billing, "aht", 150.0.into());

    let chat = find(&view, "queues", "queue", "support-chat");
    expect(chat, "offered", 1.into()); // entered by transfer at 10:07:25
    expect(chat, "answered", 1.into()); // waited 10 s, within its 30 s
    expect(chat, "service_level_variant", "answered".into());
    expect(chat, "service_level", 1.0.into());
    expect(chat, "aht", 360.0.into()); // a011: talk 300 s, ACW 60 s
    expect(chat, "transferred", 0.into());

    let a001 = find(&view, "advisors", "advisor", "a001");
    expect(a001, "transfers", 1.into());
    expect(a001, "transfer_rate", 1.0.into());
    expect(a001, "state", "available".into());
    expect(a001, "state_since", "2026-03-02T10:07:55.000+01:00".into());
    let a011 = find(&view, "advisors", "advisor", "a011");
    expect(a011, "handled", 1.into());
    expect(a011, "team", "team-green".into());
}

#[test]
fn a_contact_spanning_the_start_of_a_trailing_window() {
    // now = 10:26:10; the 15-minute window is (10:11:10, 10:26:10].
    let (view, _) = replay("window_edge.jsonl", None, Window::Last15m);
    let billing = find(&view, "queues", "queue", "billing");
    expect(billing, "offered", 1.into()); // e2 at 10:24; e1 entered at 10:10
    expect(billing, "answered", 1.into()); // e2; e1 was answered at 10:10:30
    expect(billing, "asa", 10.0.into());
    expect(billing, "handled", 2.into()); // e1 completed 10:21:30, e2 at 10:26:10 (included)
    expect(billing, "aht", 390.0.into()); // (600 + 60 + 120) / 2
    let ana = find(&view, "advisors", "advisor", "a001");
    // Handling 10:11:10-10:21:30 (620 s) and 10:24:10-10:26:10 (120 s); idle 160 s.
    expect(ana, "handling_time", 740.0.into());
    expect(ana, "available_time", 160.0.into());
    expect(ana, "occupancy", (740.0 / 900.0).into());
    expect(ana, "login_time", Value::Null); // trailing windows have no login time

    // The 30-minute window (09:56:10, 10:26:10] starts before the login at 10:00.
    let (view, _) = replay("window_edge.jsonl", None, Window::Last30m);
    let ana = find(&view, "advisors", "advisor", "a001");
    expect(ana, "handling_time", 780.0.into());
    expect(ana, "available_time", 790.0.into()); // 10:00-10:10:30 and 10:21:30-10:24:10
    let (view, _) = replay("window_edge.jsonl", None, Window::Today);
    let billing = find(&view, "queues", "queue", "billing");
    expect(billing, "asa", 20.0.into()); // (30 + 10) / 2
}

#[test]
fn spring_forward_day_has_23_hours_and_yesterday_does_not_count() {
    // Day of 2026-03-29 in Paris: from 00:00+01:00 to 24:00+02:00 (23 h).
    let (view, _) = replay("dst_spring.jsonl", None, Window::Today);
    expect(&view, "as_of", "2026-03-29T06:00:00.000+02:00".into());
    let billing = find(&view, "queues", "queue", "billing");
    expect(billing, "offered", 1.into()); // n2 only: n1 entered yesterday
    expect(billing, "answered", 0.into()); // n1 was answered yesterday at 23:59
    expect(billing, "handled", 1.into()); // n1 completed at 00:02 today
    expect(billing, "aht", 180.0.into()); // talk 23:59-00:01, ACW 60 s
    expect(billing, "abandoned", 1.into()); // 8 s: not short
    expect(billing, "abandon_rate", 1.0.into());
    let ana = find(&view, "advisors", "advisor", "a001");
    // 00:00+01:00 to 06:00+02:00 is 5 hours.
    expect(ana, "login_time", 18_000.0.into());
    expect(ana, "pause_time", 3_600.0.into()); // 01:30+01:00 to 03:30+02:00
    expect(ana, "handling_time", 120.0.into()); // 00:00-00:02 today
    expect(ana, "available_time", 14_280.0.into());
    expect(ana, "first_login", Value::Null); // logged in yesterday
    expect(ana, "state", "logged_out".into());
}

#[test]
fn fall_back_day_has_25_hours() {
    // Day of 2026-10-25: from 00:00+02:00 to 24:00+01:00 (25 h). At 23:00+01:00, 24 h elapsed.
    let (view, _) = replay(
        "dst_autumn.jsonl",
        Some("2026-10-25T23:00:00+01:00"),
        Window::Today,
    );
    let bruno = find(&view, "advisors", "advisor", "a002");
    expect(bruno, "login_time", 86_400.0.into());
    // Training from 02:30+02:00 to 02:30+01:00: one hour although the clock shows 02:30 twice;
    // the break started at the very instant of the view.
    expect(
        bruno,
        "pauses",
        serde_json::json!([
            {"reason": "break", "time": 0.0, "count": 1},
            {"reason": "training", "time": 3600.0, "count": 1}
        ]),
    );
    expect(bruno, "state", "pause".into());
    expect(bruno, "reason", "break".into());
    expect(bruno, "time_in_state", 0.0.into());
    // The next day starts at 00:00+01:00: 30 minutes later, today holds 30 minutes of break.
    let (view, _) = replay(
        "dst_autumn.jsonl",
        Some("2026-10-26T00:30:00+01:00"),
        Window::Today,
    );
    let bruno = find(&view, "advisors", "advisor", "a002");
    expect(bruno, "login_time", 1_800.0.into());
    expect(
        bruno,
        "pauses",
        serde_json::json!([{"reason": "break", "time": 1800.0, "count": 0}]),
    );
}
