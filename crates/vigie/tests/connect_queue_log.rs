//! `vigie connect asterisk-queue-log` against a nats-server of each test's own: what reaches
//! the stream is exactly what the translator gives for the lines of the file, once, through
//! reruns, appends, rotations and a restart.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use vigie_connectors::{LineOutcome, QueueLogConfig};
use vigie_core::{ContactEventKind, Event, EventBody};
use vigie_tests::cli::text;
use vigie_tests::nats::{
    NatsServer, Signal, assert_stored_exactly, run_within, signal, wait_for_stored, wait_within,
};

const RUN: Duration = Duration::from_secs(60);
const READ: Duration = Duration::from_secs(30);

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

fn vigie(args: &[&str], dir: &Path) -> Output {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(args)
            .current_dir(dir)
            .env_remove("VIGIE_CONFIG"),
        RUN,
    )
}

/// The options every run of these tests gives.
fn options(url: &str) -> Vec<String> {
    [
        "--site",
        "paris",
        "--wrapuptime",
        "billing=30s",
        "--advisor",
        "PJSIP/1001=a-117",
        "--nats",
        url,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The same settings for the translator run in the test.
fn config() -> QueueLogConfig {
    let mut config = QueueLogConfig::new("paris");
    config
        .queues
        .entry("billing".into())
        .or_default()
        .wrapuptime = Duration::from_secs(30);
    config.advisors.insert("PJSIP/1001".into(), "a-117".into());
    config
}

/// The lines of call `n`, entering `n` minutes after `T`: queued, answered after 10 s,
/// completed by the caller 90 s later (its completion is 30 s later still).
fn call(n: i64) -> Vec<String> {
    let at = T + 60 * n;
    vec![
        format!("{at}|{n}.1|billing|NONE|ENTERQUEUE||0600000000|1"),
        format!("{}|{n}.1|billing|PJSIP/1001|CONNECT|10|{n}.2|3", at + 10),
        format!(
            "{}|{n}.1|billing|PJSIP/1001|COMPLETECALLER|10|90|1",
            at + 100
        ),
    ]
}

fn calls(range: std::ops::Range<i64>) -> Vec<String> {
    range.flat_map(call).collect()
}

/// The translator's events for `lines`, read in this order.
fn reference(lines: &[String]) -> Vec<Event> {
    let mut translator = config().build().unwrap();
    let mut events = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if let Ok(LineOutcome::Events(produced)) = translator.translate_line(index as u64 + 1, line)
        {
            events.extend(produced);
        }
    }
    events
}

/// The events a follower may have published after `lines`: completions stamped after the
/// newest line are still held back.
fn released(lines: &[String]) -> Vec<Event> {
    let newest = lines
        .iter()
        .filter_map(|line| line.split('|').next()?.parse::<i64>().ok())
        .max()
        .unwrap();
    reference(lines)
        .into_iter()
        .filter(|event| {
            let completion = matches!(
                &event.body,
                EventBody::Contact(c) if matches!(c.kind, ContactEventKind::Completed { .. })
            );
            !completion || event.time.0 <= newest * 1000
        })
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

#[tokio::test]
async fn a_file_is_published_once_then_only_what_is_appended() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue_log");
    let mut lines = calls(0..4);
    // A malformed line in the middle: reported by number, skipped.
    lines.insert(4, "1772443000|x|billing".to_owned());
    append(&log, &lines);
    let mut args = vec!["connect", "asterisk-queue-log", "queue_log"];
    let options = options(&server.url());
    args.extend(options.iter().map(String::as_str));

    let first = vigie(&args, dir.path());
    let stderr = text(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "queue_log line 5: malformed: 3 field(s) separated by '|', expected at least 5"
        ),
        "{stderr}"
    );
    let expected = reference(&lines);
    assert_eq!(expected.len(), 4 * 4);
    assert!(
        stderr.contains(
            "13 lines read (1 malformed, 0 without events), 16 events: 16 published, 0 duplicates, 0 failed, 0 held"
        ),
        "{stderr}"
    );
    let (_client, context) = server.connect().await;
    assert_stored_exactly(&context, "paris", &expected, READ).await;
    let state = std::fs::read_to_string(dir.path().join("queue_log.vigie-state")).unwrap();
    assert!(state.contains("\"offset\""), "{state}");

    // Again: the state file says everything was read; nothing is sent.
    let again = vigie(&args, dir.path());
    let stderr = text(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "0 lines read (0 malformed, 0 without events), 0 events: 0 published, 0 duplicates"
        ),
        "{stderr}"
    );
    assert_stored_exactly(&context, "paris", &expected, READ).await;

    // New lines, the last one without its line end yet: only the complete new ones go.
    let new = calls(4..6);
    append(&log, &new);
    lines.extend(new);
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    write!(file, "{}|9.1|billing|NONE|ENTERQ", T + 3600).unwrap();
    drop(file);
    let third = vigie(&args, dir.path());
    let stderr = text(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "6 lines read (0 malformed, 0 without events), 8 events: 8 published, 0 duplicates"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("the last line has no line end yet"),
        "{stderr}"
    );
    assert_stored_exactly(&context, "paris", &reference(&lines), READ).await;

    // The line's end arrives: it is read whole at the next run.
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "UEUE||x|1").unwrap();
    drop(file);
    lines.push(format!("{}|9.1|billing|NONE|ENTERQUEUE||x|1", T + 3600));
    let fourth = vigie(&args, dir.path());
    let stderr = text(&fourth.stderr);
    assert!(fourth.status.success(), "{stderr}");
    assert!(stderr.contains("1 lines read"), "{stderr}");
    assert_stored_exactly(&context, "paris", &reference(&lines), READ).await;
}

fn spawn_follower(dir: &Path, url: &str, log_name: &str) -> Child {
    let mut args = vec![
        "connect".to_owned(),
        "asterisk-queue-log".to_owned(),
        "queue_log".to_owned(),
        "--follow".to_owned(),
        "--poll".to_owned(),
        "20ms".to_owned(),
    ];
    args.extend(options(url));
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(&args)
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log_name)).unwrap())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child, dir: &Path, log_name: &str) -> String {
    signal(child.id(), Signal::TERM);
    let run = wait_within(&mut child, RUN);
    let stderr = std::fs::read_to_string(dir.join(log_name)).unwrap();
    assert!(run.status.success(), "SIGTERM is a clean stop: {stderr}");
    assert!(
        stderr.contains("stopped by a signal: state saved"),
        "{stderr}"
    );
    stderr
}

#[tokio::test]
async fn following_survives_rotations_and_a_restart_without_losing_or_repeating_a_line() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (_client, context) = server.connect().await;
    let mut written: Vec<String> = Vec::new();
    let mut write = |file: &str, lines: Vec<String>| {
        append(&path(file), &lines);
        written.extend(lines);
        written.clone()
    };

    write("queue_log", calls(0..3));
    let follower = spawn_follower(dir.path(), &server.url(), "run1.log");
    let now = write("queue_log", calls(3..4));
    wait_for_stored(
        &context,
        released(&now).len() as u64,
        "the first lines",
        READ,
    )
    .await;

    // logrotate with `create`: rename, create the new file; Asterisk goes on writing to the
    // renamed one until it reopens its log, then writes to the new one.
    write("queue_log", vec![call(4)[0].clone()]);
    std::fs::rename(path("queue_log"), path("queue_log.1")).unwrap();
    std::fs::File::create(path("queue_log")).unwrap();
    write("queue_log.1", call(4)[1..].to_vec());
    let now = write("queue_log", calls(5..6));
    wait_for_stored(
        &context,
        released(&now).len() as u64,
        "the lines around the rotation",
        READ,
    )
    .await;
    // A call whose entry is read before the stop and its answer after the restart.
    let now = write("queue_log", vec![call(6)[0].clone()]);
    wait_for_stored(
        &context,
        released(&now).len() as u64,
        "the entry of call 6",
        READ,
    )
    .await;
    let stderr = stop(follower, dir.path(), "run1.log");
    assert!(stderr.contains("0 duplicates"), "{stderr}");
    assert!(stderr.contains("across 2 files"), "{stderr}");
    assert_stored_exactly(&context, "paris", &released(&now), READ).await;

    // While stopped: more lines, then another rotation.
    write("queue_log", call(6)[1..].to_vec());
    write("queue_log", calls(7..8));
    std::fs::rename(path("queue_log.1"), path("queue_log.2")).unwrap();
    std::fs::rename(path("queue_log"), path("queue_log.1")).unwrap();
    write("queue_log", calls(8..10));
    // A line far later releases every completion still held.
    let all = write(
        "queue_log",
        vec![format!("{}|NONE|NONE|NONE|CONFIGRELOAD", T + 7200)],
    );
    let follower = spawn_follower(dir.path(), &server.url(), "run2.log");
    let expected = reference(&all);
    assert_eq!(expected.len(), 10 * 4);
    wait_for_stored(&context, expected.len() as u64, "every event", READ).await;
    let stderr = stop(follower, dir.path(), "run2.log");
    assert!(
        stderr.contains("0 duplicates"),
        "a restart sends nothing twice: {stderr}"
    );
    assert_stored_exactly(&context, "paris", &expected, READ).await;
}

#[test]
fn settings_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("queue_log"), "").unwrap();
    std::fs::write(
        dir.path().join("vigie.toml"),
        "[connect.asterisk_queue_log]\nsite = \"paris\"\ntime_zone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let run = vigie(
        &[
            "connect",
            "asterisk-queue-log",
            "queue_log",
            "--config",
            "vigie.toml",
            "--wrapuptime",
            "billing=2h",
        ],
        dir.path(),
    );
    let stderr = text(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("connect.asterisk_queue_log.time_zone: \"Mars/Olympus\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("connect.asterisk_queue_log.queues.\"billing\".wrapuptime"),
        "{stderr}"
    );
    let run = vigie(&["connect", "asterisk-queue-log", "queue_log"], dir.path());
    assert!(
        text(&run.stderr).contains("no site: give --site"),
        "{}",
        text(&run.stderr)
    );
}
