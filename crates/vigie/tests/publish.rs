//! `vigie publish` and `vigie sim --nats` as an operator runs them, against a nats-server of
//! each test's own (see `vigie_tests::nats`).
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use vigie::config::VigieConfig;
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, decode_json};
use vigie_tests::cli::text;
use vigie_tests::nats::async_nats::jetstream;
use vigie_tests::nats::{
    NatsServer, Signal, StoredMessage, read_subject, run_within, signal, wait_within, within,
};

/// A run of the command takes seconds; this bounds a hang.
const RUN: Duration = Duration::from_secs(60);
const READ: Duration = Duration::from_secs(20);

fn vigie(args: &[&str], dir: &Path) -> Output {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(args)
            .current_dir(dir)
            .env_remove("VIGIE_CONFIG"),
        RUN,
    )
}

const QUEUED: &str = r#"{"id":"1","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"s","contact":"c1","queue":"q","channel":"voice"}"#;
const ANSWERED: &str = r#"{"id":"2","type":"contact.answered","time":"2026-03-02T09:00:05Z","site":"s","contact":"c1","advisor":"a1"}"#;
const LOGIN: &str =
    r#"{"id":"3","type":"advisor.login","time":"2026-03-02T08:58:00Z","site":"s","advisor":"a1"}"#;

/// Good lines, a duplicate, lines that do not decode, a site that cannot be a subject.
fn feed() -> String {
    [
        QUEUED,
        ANSWERED,
        "not json at all",
        "",
        QUEUED,
        r#"{"id":"4","type":"contact.queued","time":"2026-03-02T09:00:01Z","site":"s","contact":"c2","queue":"q"}"#,
        LOGIN,
        r#"{"id":"5","type":"advisor.logout","time":"2026-03-02T09:10:00Z","site":"paris.nord","advisor":"a1"}"#,
    ]
    .join("\n")
}

async fn events(server: &NatsServer, subject: &str) -> Vec<StoredMessage> {
    let (_client, context) = server.connect().await;
    read_subject(&context, subject, READ).await
}

#[tokio::test]
async fn publish_stores_each_good_line_once_and_reports_the_others_by_line() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.jsonl"), feed()).unwrap();
    let url = server.url();

    let first = vigie(&["publish", "feed.jsonl", "--nats", &url], dir.path());
    let stderr = text(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    for expected in [
        "line 3: not sent: malformed_json",
        r#"line 5: duplicate: id "1" is already stored at sequence 1"#,
        r#"line 6: not sent: missing_field: field "channel" is required for contact.queued"#,
        r#"line 8: not sent: publishing to vigie.events.paris.nord.advisor.logout: site id "paris.nord" cannot be a NATS subject token"#,
        "7 lines: 3 published, 1 duplicates, 3 not sent, 0 failed in ",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in:\n{stderr}"
        );
    }

    let stored = events(&server, "vigie.events.>").await;
    let found: Vec<(&str, &str, &[u8])> = stored
        .iter()
        .map(|m| (m.message_id().unwrap(), m.subject.as_str(), &m.payload[..]))
        .collect();
    assert_eq!(
        found,
        [
            ("1", "vigie.events.s.contact.queued", QUEUED.as_bytes()),
            ("2", "vigie.events.s.contact.answered", ANSWERED.as_bytes()),
            ("3", "vigie.events.s.advisor.login", LOGIN.as_bytes()),
        ],
        "each event once, on its site and type subject, byte for byte as read"
    );

    // The same file again: the server has every id already.
    let again = vigie(
        &["publish", "feed.jsonl", "--nats", &url, "--quiet"],
        dir.path(),
    );
    let stderr = text(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains("7 lines: 0 published, 4 duplicates, 3 not sent, 0 failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("line "),
        "--quiet prints only the summary: {stderr}"
    );
    assert_eq!(events(&server, "vigie.events.>").await.len(), 3);

    // --strict fails on lines not sent; standard input works as a file does.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["publish", "-", "--nats", &url, "--strict", "--window", "1"])
        .env_remove("VIGIE_CONFIG")
        .stdin(std::fs::File::open(dir.path().join("feed.jsonl")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let strict = wait_within(&mut child, RUN);
    let stderr = text(&strict.stderr);
    assert_eq!(strict.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("0 published, 4 duplicates, 3 not sent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("vigie: 3 lines were not sent (--strict)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_event_the_server_refuses_fails_the_run_and_the_others_are_stored() {
    let server = NatsServer::start();
    // An operator's stream, stricter than Vigie's default: messages of 300 bytes at most.
    let (_client, context) = server.connect().await;
    within(
        "creating the stream",
        READ,
        context.create_stream(jetstream::stream::Config {
            name: "VIGIE_EVENTS".into(),
            subjects: vec!["vigie.events.>".into()],
            max_message_size: 300,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let padded = QUEUED.replace(r#","type""#, &format!(",{}\"type\"", " ".repeat(400)));
    assert!(decode_json(padded.as_bytes(), DEFAULT_MAX_EVENT_BYTES).is_ok());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feed.jsonl"),
        format!("{padded}\n{LOGIN}\n"),
    )
    .unwrap();

    let run = vigie(
        &["publish", "feed.jsonl", "--nats", &server.url()],
        dir.path(),
    );
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "line 1: failed: refused by the server: message size exceeds maximum allowed"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 lines: 1 published, 0 duplicates, 0 not sent, 1 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("vigie: 1 events could not be published"),
        "{stderr}"
    );
    let stored = read_subject(&context, "vigie.events.>", READ).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message_id(), Some("3"));
}

#[tokio::test]
async fn protobuf_and_the_configuration_file_choose_the_encoding_stream_and_subjects() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feed.jsonl"),
        format!("{QUEUED}\n{LOGIN}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!(
            "[nats]\nurl = \"{}\"\n[nats.stream]\nname = \"ACME\"\nsubject_prefix = \"acme.events\"\n",
            server.url()
        ),
    )
    .unwrap();
    let run = vigie(
        &[
            "publish",
            "feed.jsonl",
            "--config",
            "vigie.toml",
            "--format",
            "protobuf",
        ],
        dir.path(),
    );
    assert!(run.status.success(), "{}", text(&run.stderr));

    let (_client, context) = server.connect().await;
    let stored = read_subject(&context, "acme.events.>", READ).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].subject, "acme.events.s.contact.queued");
    for (message, line) in stored.iter().zip([QUEUED, LOGIN]) {
        assert_eq!(message.header("Content-Type"), Some("application/protobuf"));
        let event =
            vigie_proto::decode_protobuf(&message.payload, DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(
            event,
            decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
        );
    }
    assert_eq!(
        within(
            "stream lookup",
            READ,
            context.stream_by_subject("acme.events.s.>")
        )
        .await
        .unwrap(),
        "ACME"
    );

    // No server there: a clear error, within the configured connect timeout.
    std::fs::write(
        dir.path().join("nowhere.toml"),
        "[nats]\nurl = \"nats://127.0.0.1:1\"\nconnect_timeout = \"1s\"\n",
    )
    .unwrap();
    let run = vigie(
        &["publish", "feed.jsonl", "--config", "nowhere.toml"],
        dir.path(),
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("cannot connect to NATS at nats://127.0.0.1:1"),
        "{}",
        text(&run.stderr)
    );
}

const DAY: &[&str] = &[
    "--date",
    "2026-03-02",
    "--seed",
    "3",
    "--advisors",
    "12",
    "--queues",
    "2",
];

/// The day as `vigie sim --out` writes it: each id with its line, and the number of lines.
fn day_file(dir: &Path) -> (BTreeMap<String, String>, usize) {
    let mut args = vec!["sim", "--out", "day.jsonl"];
    args.extend(DAY);
    let sim = vigie(&args, dir);
    assert!(sim.status.success(), "{}", text(&sim.stderr));
    let file = std::fs::read_to_string(dir.join("day.jsonl")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    let by_id: BTreeMap<String, String> = lines
        .iter()
        .map(|line| {
            let event = decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
            (event.id, (*line).to_owned())
        })
        .collect();
    assert!(
        by_id.len() < lines.len(),
        "the simulated feed repeats some events"
    );
    (by_id, lines.len())
}

fn sim_live(url: &str, extra: &[&str], dir: &Path) -> String {
    let mut args = vec!["sim", "--nats", url];
    args.extend(DAY);
    args.extend(extra);
    let run = vigie(&args, dir);
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    stderr
}

#[tokio::test]
async fn sim_publishes_the_day_of_the_file_and_a_rerun_only_duplicates() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (by_id, lines) = day_file(dir.path());
    let url = server.url();

    let stderr = sim_live(
        &url,
        &["--speed", "max", "--config-out", "site.toml"],
        dir.path(),
    );
    let expected = format!(
        "{} events stored, {} duplicates, 0 failed",
        by_id.len(),
        lines - by_id.len()
    );
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing in:\n{stderr}"
    );
    assert!(
        stderr.contains("site configuration in site.toml"),
        "{stderr}"
    );
    let site = VigieConfig::load(&dir.path().join("site.toml")).unwrap();
    assert_eq!(site.sites[0].id, "paris");

    let stored = events(&server, "vigie.events.paris.>").await;
    assert_eq!(stored.len(), by_id.len());
    for message in &stored {
        let id = message.message_id().unwrap();
        assert_eq!(
            &message.payload[..],
            by_id[id].as_bytes(),
            "event {id} is published as the file has it"
        );
        let event = decode_json(&message.payload, DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(
            message.subject,
            format!("vigie.events.paris.{}", event.type_name())
        );
    }

    let stderr = sim_live(&url, &["--speed", "max", "--window", "16"], dir.path());
    let expected = format!("0 events stored, {lines} duplicates, 0 failed");
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing in:\n{stderr}"
    );
    assert_eq!(
        events(&server, "vigie.events.paris.>").await.len(),
        by_id.len()
    );
}

#[tokio::test]
async fn sim_paced_by_the_clock_catches_up_then_follows_it_to_the_end_of_the_day() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (by_id, lines) = day_file(dir.path());
    // The day so far at once, then its last five minutes (to 20:00) at 300 times real time.
    let stderr = sim_live(
        &server.url(),
        &["--start", "19:55", "--speed", "300"],
        dir.path(),
    );
    let expected = format!(
        "{} events stored, {} duplicates, 0 failed",
        by_id.len(),
        lines - by_id.len()
    );
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing in:\n{stderr}"
    );
    let newest = by_id
        .values()
        .map(|line| {
            decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES)
                .unwrap()
                .time
        })
        .max()
        .unwrap();
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let reached = format!("simulated time reached {}", newest.to_rfc3339_in(zone));
    assert!(
        stderr.contains(&reached),
        "{reached:?} missing in:\n{stderr}"
    );
    let ids: BTreeSet<String> = events(&server, "vigie.events.paris.>")
        .await
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids, by_id.keys().cloned().collect());
}

#[tokio::test]
async fn sim_at_a_fixed_rate_stops_cleanly_on_sigint_with_what_it_sent_stored() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (by_id, _) = day_file(dir.path());
    let url = server.url();
    let mut args = vec!["sim", "--nats", &url, "--rate", "500"];
    args.extend(DAY);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(&args)
        .current_dir(dir.path())
        .env_remove("VIGIE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Interrupt once some events are in the stream.
    let (_client, context) = server.connect().await;
    within("the first events", READ, async {
        loop {
            if let Ok(mut stream) = context.get_stream("VIGIE_EVENTS").await
                && stream
                    .info()
                    .await
                    .is_ok_and(|info| info.state.messages >= 100)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    signal(child.id(), Signal::INT);
    let run = wait_within(&mut child, RUN);
    let stderr = text(&run.stderr);
    assert!(
        run.status.success(),
        "Ctrl-C is the way to stop a live run: {stderr}"
    );
    assert!(stderr.contains("stopped by a signal"), "{stderr}");

    let stored = read_subject(&context, "vigie.events.paris.>", READ).await;
    assert!(
        stored.len() >= 100 && stored.len() < by_id.len(),
        "{}",
        stored.len()
    );
    assert!(
        stderr.contains(&format!("{} events stored", stored.len())),
        "every acknowledged event is counted and nothing else: {} in the stream, {stderr}",
        stored.len()
    );
}
