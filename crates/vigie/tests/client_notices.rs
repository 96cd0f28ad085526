//! `vigie notice` against a real `vigie serve` (the embedded demo) started as a child process
//! on random ports: a notice posted in the documented form, listed as a table and as JSON,
//! followed live while other commands post to every team and withdraw, requests refused with a
//! sentence that says why, and the notices still there after a restart over the same changes
//! directory.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigie_tests::cli::Served;

const WAIT: Duration = Duration::from_secs(60);

const DEMO: [&str; 6] = [
    "--config",
    "vigie.toml",
    "--demo-advisors",
    "20",
    "--demo-queues",
    "3",
];

/// The demo on random ports with the configuration of `dir`; returns once the gRPC API lists
/// the teams.
fn start(dir: &Path) -> Served {
    let mut served = Served::spawn(env!("CARGO_BIN_EXE_vigie"), &DEMO, dir);
    served.wait_until(&["teams"], dir, "the gRPC API never answered", |output| {
        output.status.success()
    });
    served
}

#[test]
fn posts_lists_follows_and_withdraws_notices_of_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let changes = dir.path().join("changes");
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!("[admin]\nchanges_dir = \"{}\"\n", changes.display()),
    )
    .unwrap();
    let served = start(dir.path());
    let teams: Value =
        serde_json::from_str(&served.ok_text(&["teams", "--format", "json"], dir.path())).unwrap();
    let team = teams["teams"][0]["team"].as_str().unwrap().to_owned();

    // The documented form.
    let posted = served.ok_text(
        &[
            "notice",
            &team,
            "New script for the spring offer",
            "--for",
            "2h",
            "--site",
            "demo",
        ],
        dir.path(),
    );
    assert!(
        posted.starts_with(&format!("Posted to team {team} until ")),
        "{posted}"
    );
    assert!(
        posted.contains("(2h 00m): New script for the spring offer\n"),
        "{posted}"
    );
    let id = posted
        .split("Id: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(id, format!("{}/team/{team}", id.split('/').next().unwrap()));

    let listed: Value = serde_json::from_str(
        &served.ok_text(&["notice", "--list", &team, "--format", "json"], dir.path()),
    )
    .unwrap();
    let notice = &listed["notices"][0];
    assert_eq!(notice["id"], id.as_str(), "{listed:#}");
    assert_eq!(notice["team"], team.as_str());
    assert_eq!(notice["site"], "demo");
    assert_eq!(notice["text"], "New script for the spring offer");
    assert_eq!(notice["level"], "NOTICE_LEVEL_INFO");
    assert_eq!(notice["postedBy"], "anonymous");
    let instant = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(notice[field].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        instant("expiresAt") - instant("postedAt"),
        chrono::TimeDelta::hours(2)
    );
    let table = served.ok_text(&["notice", "--list"], dir.path());
    assert!(
        table.starts_with("1 notice in force for site demo, newest first:\n"),
        "{table}"
    );
    for expected in [
        "New script for the spring offer",
        &team,
        "by anonymous",
        &id,
    ] {
        assert!(table.contains(expected), "{expected} not in\n{table}");
    }

    // A live watch, not on a terminal: a block per list, separated by `----`.
    let mut watch = served
        .command(&["notice", "--watch", &team], dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut read_until = |wanted: &dyn Fn(&str) -> bool| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|error| panic!("{error} after {seen:#?}"));
        seen.push(line.clone());
        if wanted(&line) {
            return line;
        }
    };
    read_until(&|line| line.starts_with("1 notice in force for team "));
    read_until(&|line| line.contains("New script for the spring offer"));

    // Another command posts to every team: the watch shows both, the important one in words.
    let everyone = served.ok_text(
        &[
            "notice",
            "--all-teams",
            "Fire drill at 15:00",
            "--for",
            "3h",
            "--important",
        ],
        dir.path(),
    );
    assert!(
        everyone.starts_with("Posted as important to every team until "),
        "{everyone}"
    );
    read_until(&|line| line.starts_with("2 notices in force for team "));
    let line = read_until(&|line| line.contains("Fire drill"));
    assert!(line.contains("IMPORTANT: Fire drill at 15:00"), "{line}");
    assert!(line.contains("every team"), "{line}");

    // Withdrawn: it leaves the watch too.
    let withdrawn = served.ok_text(&["notice", "--withdraw", &id], dir.path());
    assert_eq!(
        withdrawn,
        format!("Withdrawn from team {team}: New script for the spring offer\n")
    );
    read_until(&|line| line.starts_with("1 notice in force for team "));
    watch.kill().unwrap();
    watch.wait().unwrap();

    // Refusals say why.
    let error = served.refused(&["notice", "--withdraw", &id], dir.path());
    assert!(
        error.contains(&format!("not found: notice `{id}` of site `demo`")),
        "{error}"
    );
    let error = served.refused(&["notice", "no-such-team", "Hello"], dir.path());
    assert!(
        error.contains("(team: no team \"no-such-team\" at site \"demo\")"),
        "{error}"
    );
    let error = served.refused(&["notice", &team, &"x".repeat(281)], dir.path());
    assert!(
        error.contains("text: at most 280 characters, found 281"),
        "{error}"
    );
    let error = served.refused(&["notice", &team, "Hello", "--for", "30s"], dir.path());
    assert!(error.contains("a notice is shown from 1m to 7d"), "{error}");
    let error = served.refused(&["notice", &team], dir.path());
    assert!(error.contains("no text to post"), "{error}");

    // After a restart over the same changes directory, the drill is still on the wall.
    drop(served);
    let served = start(dir.path());
    let listed: Value = serde_json::from_str(
        &served.ok_text(&["notice", "--list", "--format", "json"], dir.path()),
    )
    .unwrap();
    let notices = listed["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{listed:#}");
    assert_eq!(notices[0]["text"], "Fire drill at 15:00");
    assert_eq!(notices[0]["level"], "NOTICE_LEVEL_IMPORTANT");
    assert!(changes.join("demo.notices.json").is_file());
}
