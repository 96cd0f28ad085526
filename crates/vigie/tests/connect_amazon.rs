//! `vigie connect amazon-connect` against a nats-server of its own: agent event records and
//! contact records (shapes of crates/vigie-connectors/tests/amazon_connect_records.rs)
//! published once; a second run, from the file or from standard input, stores nothing new.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use vigie_connectors::AmazonConnectConfig;
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, decode_json};
use vigie_tests::cli::text;
use vigie_tests::nats::{NatsServer, read_subject, run_within, wait_within};

const RUN: Duration = Duration::from_secs(60);
const READ: Duration = Duration::from_secs(30);

const INSTANCE: &str = "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb";
const AGENT_ARN: &str =
    "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb/agent/0f1e2d3c-agent-camille";
const BILLING_ARN: &str =
    "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb/queue/q-billing";

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(T + secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn available(since: i64) -> Value {
    json!({
        "ARN": format!("{INSTANCE}/agent-state/Available"),
        "Name": "Available",
        "StartTimestamp": ts(since),
        "Type": "ROUTABLE",
    })
}

fn contact(id: &str, state: &str, state_start: i64, connected: Option<i64>) -> Value {
    json!({
        "ContactId": id,
        "InitialContactId": null,
        "Channel": "VOICE",
        "InitiationMethod": "INBOUND",
        "State": state,
        "StateStartTimestamp": ts(state_start),
        "ConnectedToAgentTimestamp": connected.map(ts),
        "QueueTimestamp": ts(-30),
        "Queue": {"ARN": BILLING_ARN, "Name": "billing"},
    })
}

fn snapshot(contacts: Vec<Value>) -> Value {
    json!({
        "AgentStatus": available(0),
        "Configuration": {
            "AgentHierarchyGroups": null,
            "FirstName": "Camille",
            "LastName": "D",
            "RoutingProfile": {
                "ARN": format!("{INSTANCE}/routing-profile/rp-1"),
                "DefaultOutboundQueue": {"ARN": BILLING_ARN, "Name": "billing"},
                "InboundQueues": [{"ARN": BILLING_ARN, "Name": "billing"}],
                "Name": "Billing agents",
            },
            "Username": "a-117",
        },
        "Contacts": contacts,
    })
}

fn record(
    event_id: &str,
    event_type: &str,
    secs: i64,
    previous: Option<Value>,
    current: Option<Value>,
) -> String {
    json!({
        "AWSAccountId": "123456789012",
        "AgentARN": AGENT_ARN,
        "CurrentAgentSnapshot": current,
        "EventId": event_id,
        "EventTimestamp": ts(secs),
        "EventType": event_type,
        "InstanceARN": INSTANCE,
        "PreviousAgentSnapshot": previous,
        "Version": "2017-10-01",
    })
    .to_string()
}

/// A contact record of a contact queued at `T` and left unanswered at `T+45`.
fn abandoned_record(id: &str, last_update: i64) -> String {
    json!({
        "AWSAccountId": "123456789012",
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "Agent": null,
        "Attributes": {},
        "Channel": "VOICE",
        "ContactId": id,
        "DisconnectTimestamp": ts(45),
        "InitiationMethod": "INBOUND",
        "InitiationTimestamp": ts(-5),
        "InstanceARN": INSTANCE,
        "LastUpdateTimestamp": ts(last_update),
        "Queue": {
            "ARN": BILLING_ARN,
            "DequeueTimestamp": ts(45),
            "Duration": 45,
            "EnqueueTimestamp": ts(0),
            "Name": "billing",
        },
    })
    .to_string()
}

/// A day in miniature: login, a contact offered, answered, ended and completed, a contact
/// record, the same record updated and delivered again, and a line that is not a record.
fn records() -> Vec<String> {
    let offered = contact("c-1", "CONNECTING", 10, None);
    let connected = contact("c-1", "CONNECTED", 20, Some(20));
    let ended = contact("c-1", "ENDED", 200, Some(20));
    vec![
        record("e-1", "LOGIN", 0, None, Some(snapshot(vec![]))),
        record(
            "e-2",
            "STATE_CHANGE",
            10,
            Some(snapshot(vec![])),
            Some(snapshot(vec![offered.clone()])),
        ),
        record(
            "e-3",
            "STATE_CHANGE",
            20,
            Some(snapshot(vec![offered])),
            Some(snapshot(vec![connected.clone()])),
        ),
        record(
            "e-4",
            "STATE_CHANGE",
            200,
            Some(snapshot(vec![connected])),
            Some(snapshot(vec![ended.clone()])),
        ),
        record(
            "e-5",
            "STATE_CHANGE",
            230,
            Some(snapshot(vec![ended])),
            Some(snapshot(vec![])),
        ),
        abandoned_record("c-2", 60),
        "{\"neither\": true}".to_owned(),
        abandoned_record("c-2", 600),
    ]
}

fn vigie(args: &[&str], dir: &Path) -> Output {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(args)
            .current_dir(dir)
            .env_remove("VIGIE_CONFIG"),
        RUN,
    )
}

#[tokio::test]
async fn records_are_published_once_from_a_file_or_standard_input() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = records();
    std::fs::write(dir.path().join("records.jsonl"), lines.join("\n") + "\n").unwrap();
    let (expected, malformed) = AmazonConnectConfig::new("paris")
        .build()
        .unwrap()
        .translate_text(&lines.join("\n"));
    assert_eq!(malformed.len(), 1);
    // login, offered, answered, ended, completed; queued and abandoned once.
    assert_eq!(expected.len(), 7, "{expected:#?}");
    let url = server.url();
    let args = [
        "connect",
        "amazon-connect",
        "records.jsonl",
        "--site",
        "paris",
        "--nats",
        &url,
    ];

    let first = vigie(&args, dir.path());
    let stderr = text(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 7: malformed: neither an agent event"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "8 records (1 malformed, 0 skipped), 7 events (2 given before by the same contact's records, dropped): 7 published, 0 duplicates, 0 failed"
        ),
        "{stderr}"
    );
    let (_client, context) = server.connect().await;
    let stored = |messages: Vec<vigie_tests::nats::StoredMessage>| {
        let mut by_id: BTreeMap<String, (usize, Event)> = BTreeMap::new();
        for message in messages {
            let event = decode_json(&message.payload, DEFAULT_MAX_EVENT_BYTES).unwrap();
            assert_eq!(message.message_id(), Some(event.id.as_str()));
            by_id.entry(event.id.clone()).or_insert((0, event)).0 += 1;
        }
        by_id
    };
    let want: BTreeMap<String, (usize, Event)> = expected
        .iter()
        .map(|event| (event.id.clone(), (1, event.clone())))
        .collect();
    assert_eq!(
        stored(read_subject(&context, "vigie.events.>", READ).await),
        want
    );

    // The same records again: every id is already there.
    let again = vigie(&args, dir.path());
    let stderr = text(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains("dropped): 0 published, 7 duplicates, 0 failed"),
        "{stderr}"
    );

    // From standard input, quietly.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["connect", "amazon-connect", "-", "--site", "paris"])
        .args(["--nats", &url, "--quiet"])
        .current_dir(dir.path())
        .env_remove("VIGIE_CONFIG")
        .stdin(std::fs::File::open(dir.path().join("records.jsonl")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let piped = wait_within(&mut child, RUN);
    let stderr = text(&piped.stderr);
    assert!(piped.status.success(), "{stderr}");
    assert!(
        stderr.contains("8 records (1 malformed, 0 skipped), 7 events (2 given before by the same contact's records, dropped): 0 published, 7 duplicates"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 7"), "--quiet: {stderr}");
    assert_eq!(
        stored(read_subject(&context, "vigie.events.>", READ).await),
        want
    );
}
