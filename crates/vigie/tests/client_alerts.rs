//! `vigie alerts` against a real `vigie serve` (the embedded demo with a rule that holds at
//! once) started as a child process on random ports: list as a table and as JSON, a live
//! watch that shows an acknowledgement made by another command, a silence, and an unknown
//! alert.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigie_tests::cli::{Served, text};

const WAIT: Duration = Duration::from_secs(60);

const DEMO: [&str; 6] = [
    "--config",
    "vigie.toml",
    "--demo-advisors",
    "20",
    "--demo-queues",
    "3",
];

#[test]
fn lists_watches_acknowledges_and_silences_alerts_of_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    // A rule that holds at once: callers waiting are never below zero.
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!(
            r#"
[admin]
changes_dir = "{changes}"

[[alert_rule]]
site = "demo"
id = "probe"
name = "Probe: callers in queue"
scope = "site"
metric = "in_queue"
comparator = "above"
warning = -1
"#,
            changes = dir.path().join("changes").display(),
        ),
    )
    .unwrap();
    let mut served = Served::spawn(env!("CARGO_BIN_EXE_vigie"), &DEMO, dir.path());

    // Once the API answers, the probe fires.
    let deadline = Instant::now() + WAIT;
    let listed = loop {
        let output = served.vigie(&["alerts", "list", "--format", "json"], dir.path());
        if output.status.success() {
            let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
            if listed["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|alert| alert["id"] == "probe/site/demo")
            {
                break listed;
            }
        }
        assert!(served.is_running(), "vigie serve exited");
        assert!(
            Instant::now() < deadline,
            "no probe alert: {}",
            text(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let probe = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["id"] == "probe/site/demo")
        .unwrap();
    assert_eq!(probe["state"], "ALERT_STATE_FIRING", "{probe:#}");
    assert_eq!(
        probe["target"]["kind"], "ALERT_TARGET_KIND_SITE",
        "{probe:#}"
    );
    assert_eq!(probe["threshold"], -1.0, "{probe:#}");
    chrono::DateTime::parse_from_rfc3339(listed["asOf"].as_str().unwrap()).unwrap();

    let table = served.vigie(&["alerts", "list", "--active"], dir.path());
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.starts_with("Alerts as of "), "{table}");
    for expected in ["probe/site/demo", "firing", "warning", "site demo", "> -1"] {
        assert!(table.contains(expected), "{expected} not in\n{table}");
    }

    // A live watch, not on a terminal: the list, then a line per change.
    let mut watch = served
        .command(&["alerts", "watch"], dir.path())
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
    read_until(&|line| line.contains("probe/site/demo"));

    // Another command acknowledges it (the demo without authentication: `anonymous`); the
    // watch shows it.
    let ack = served.vigie(&["alerts", "ack", "probe/site/demo"], dir.path());
    assert!(ack.status.success(), "{}", text(&ack.stderr));
    let ack = text(&ack.stdout);
    assert!(ack.contains("acknowledged"), "{ack}");
    assert!(ack.contains("by anonymous"), "{ack}");
    let line = read_until(&|line| line.contains("acknowledged"));
    assert!(line.contains("Probe: callers in queue (probe)"), "{line}");
    assert!(line.contains("site demo by anonymous"), "{line}");

    let silence = served.vigie(
        &[
            "alerts",
            "silence",
            "probe/site/demo",
            "--for",
            "30m",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert!(silence.status.success(), "{}", text(&silence.stderr));
    let silence: Value = serde_json::from_slice(&silence.stdout).unwrap();
    assert_eq!(
        silence["alert"]["silenced"]["by"], "anonymous",
        "{silence:#}"
    );
    let line = read_until(&|line| line.contains("silenced"));
    assert!(line.contains(" until "), "{line}");
    watch.kill().unwrap();
    watch.wait().unwrap();

    // An alert that does not exist, and a silence without a duration.
    let unknown = served.vigie(&["alerts", "ack", "nope/site/demo"], dir.path());
    assert!(!unknown.status.success());
    let error = text(&unknown.stderr);
    assert!(
        error.contains("not found: alert `nope/site/demo` of site `demo`"),
        "{error}"
    );
    let bad = served.vigie(
        &["alerts", "silence", "probe/site/demo", "--for", "forever"],
        dir.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("is not a duration"),
        "{}",
        text(&bad.stderr)
    );
}
