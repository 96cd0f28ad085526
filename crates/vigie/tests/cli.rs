//! The `vigie` command as a user runs it: simulate a day, replay it, read the output.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use vigie_tests::cli::text;

fn vigie(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn a_simulated_day_replays_with_its_configuration_into_indicators() {
    let dir = tempfile::tempdir().unwrap();
    let sim = vigie(
        &[
            "sim",
            "--out",
            "day.jsonl",
            "--date",
            "2026-03-02",
            "--seed",
            "7",
        ],
        dir.path(),
    );
    assert!(sim.status.success(), "{}", text(&sim.stderr));
    assert!(text(&sim.stderr).contains("site configuration in day.toml"));
    let replay = vigie(&["replay", "day.jsonl", "--format", "json"], dir.path());
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let stderr = text(&replay.stderr);
    assert!(
        stderr.contains("using the configuration day.toml"),
        "{stderr}"
    );
    assert!(stderr.contains(" 0 rejected"), "{stderr}");
    let view: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(view["site"], "paris");
    assert_eq!(view["window"], "today");
    assert!(view["as_of"].as_str().unwrap().starts_with("2026-03-02T"));
    let queues = view["queues"].as_array().unwrap();
    assert!(queues.len() >= 5, "the simulated centre has several queues");
    let offered: u64 = queues.iter().map(|q| q["offered"].as_u64().unwrap()).sum();
    assert_eq!(view["totals"]["offered"].as_u64(), Some(offered));
    assert!(view["totals"]["handled"].as_u64().unwrap() > 1000);
    let sl = view["totals"]["service_level"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&sl), "service level {sl}");
    // Teams come from the configuration written by `vigie sim`, with their campaign queues.
    let team = &view["teams"][0];
    assert!(!team["queues"].as_array().unwrap().is_empty(), "{team}");
    assert!(view["advisors"].as_array().unwrap().len() >= 50);

    // The same seed gives the same day, byte for byte.
    let again = vigie(
        &[
            "sim",
            "--out",
            "again.jsonl",
            "--date",
            "2026-03-02",
            "--seed",
            "7",
        ],
        dir.path(),
    );
    assert!(again.status.success());
    let first = std::fs::read(dir.path().join("day.jsonl")).unwrap();
    assert_eq!(
        first,
        std::fs::read(dir.path().join("again.jsonl")).unwrap()
    );

    // A trailing window at a chosen instant, as a table.
    let table = vigie(
        &[
            "replay",
            "day.jsonl",
            "--at",
            "2026-03-02T11:00:00+01:00",
            "--window",
            "15m",
        ],
        dir.path(),
    );
    assert!(table.status.success(), "{}", text(&table.stderr));
    let out = text(&table.stdout);
    assert!(
        out.contains("window 15m - as of 2026-03-02T11:00:00.000+01:00"),
        "{out}"
    );
    assert!(text(&table.stderr).contains("after --at not applied"));
}

#[test]
fn bad_lines_are_reported_with_their_number_and_reason_and_the_rest_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id":"1","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"s","contact":"c1","queue":"q","channel":"voice"}"#,
        r#"{"id":"2","type":"contact.queued","time":"2026-03-02T09:00:01Z","site":"s","contact":"c2","queue":"q"}"#,
        "not json at all",
        "",
        r#"{"id":"3","type":"contact.answered","time":"2026-03-02T09:00:05Z","site":"s","contact":"c1","advisor":"a1"}"#,
        r#"{"id":"3","type":"contact.answered","time":"2026-03-02T09:00:05Z","site":"s","contact":"c1","advisor":"a1"}"#,
    ];
    std::fs::write(dir.path().join("feed.jsonl"), lines.join("\n")).unwrap();
    let replay = vigie(&["replay", "feed.jsonl", "--format", "json"], dir.path());
    assert!(replay.status.success(), "a bad line never stops the replay");
    let stderr = text(&replay.stderr);
    assert!(
        stderr.contains(
            r#"line 2: rejected: missing_field: field "channel" is required for contact.queued"#
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: rejected: malformed_json"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "read 5 events: 2 applied, 1 duplicates, 2 rejected (malformed_json 1, missing_field 1)"
        ),
        "{stderr}"
    );
    let view: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(view["queues"][0]["answered"], 1);
    assert_eq!(view["advisors"][0]["state"], "talking");
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = vigie(&["replay", "nowhere.jsonl"], dir.path());
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("cannot open nowhere.jsonl"),
        "{}",
        text(&missing.stderr)
    );
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[site]]\nid = \"s\"\ntime_zone = \"Europe/Pariss\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("e.jsonl"), "").unwrap();
    let config = vigie(&["replay", "e.jsonl", "--config", "bad.toml"], dir.path());
    assert!(!config.status.success());
    assert!(
        text(&config.stderr).contains("site[0].time_zone"),
        "{}",
        text(&config.stderr)
    );
    let at = vigie(&["replay", "e.jsonl", "--at", "11:00"], dir.path());
    assert!(
        text(&at.stderr).contains("not an RFC 3339 time"),
        "{}",
        text(&at.stderr)
    );
    let empty = vigie(&["replay", "e.jsonl"], dir.path());
    assert!(
        text(&empty.stderr).contains("no event was applied"),
        "{}",
        text(&empty.stderr)
    );
}
