//! The NATS harness itself: a server of the test's own, publishing through it, and what a
//! crash (`kill -9`) and a restart do to the stored messages and to a publisher in the middle
//! of its work.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::sync::mpsc;
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, decode_json};
use vigie_ingest::{PublishOutcome, Publisher, PublisherConfig, Report, RetryPolicy, StreamConfig};
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::nats::{NatsServer, publish_events, read_subject, within};

const READ: Duration = Duration::from_secs(20);

/// The first `count` events of a small simulated day, each once, in time order.
fn events(count: usize) -> Vec<Event> {
    let config = SimConfig {
        advisors: 40,
        queues: 4,
        duplicate_share: 0.0,
        ..SimConfig::default()
    };
    let events: Vec<Event> = Simulation::new(&config).unwrap().take(count).collect();
    assert_eq!(events.len(), count, "the day is long enough");
    events
}

fn publisher_config() -> PublisherConfig {
    PublisherConfig::new(&StreamConfig::default())
}

fn stored(reports: &[Report]) -> usize {
    reports
        .iter()
        .filter(|r| matches!(r.outcome, PublishOutcome::Stored { .. }))
        .count()
}

fn duplicates(reports: &[Report]) -> usize {
    reports
        .iter()
        .filter(|r| matches!(r.outcome, PublishOutcome::Duplicate { .. }))
        .count()
}

#[tokio::test]
async fn a_server_of_its_own_stores_events_on_their_site_subjects_with_their_ids() {
    let server = NatsServer::start();
    assert_ne!(server.port(), 4222);
    assert!(server.url().starts_with("nats://127.0.0.1:"));
    let (_client, context) = server.connect_with_stream().await;
    let events = events(300);
    let reports = publish_events(&context, publisher_config(), &events, READ).await;
    assert_eq!(stored(&reports), events.len(), "{reports:?}");
    let indexes: Vec<u64> = reports.iter().map(|r| r.index).collect();
    assert_eq!(
        indexes,
        (0..300).collect::<Vec<u64>>(),
        "reports come in order"
    );

    let messages = read_subject(&context, "vigie.events.>", READ).await;
    assert_eq!(messages.len(), events.len());
    for (message, event) in messages.iter().zip(&events) {
        assert_eq!(message.message_id(), Some(event.id.as_str()));
        assert_eq!(
            message.subject,
            format!("vigie.events.paris.{}", event.type_name())
        );
        assert_eq!(
            &decode_json(&message.payload, DEFAULT_MAX_EVENT_BYTES).unwrap(),
            event
        );
    }
    let sequences: Vec<u64> = messages.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, (1..=300).collect::<Vec<u64>>());
    assert!(
        server.store_dir().is_dir(),
        "JetStream stores in the test's directory"
    );
}

#[tokio::test]
async fn stored_messages_survive_kill_9_and_their_ids_are_still_deduplicated() {
    let mut server = NatsServer::start();
    let events = events(200);
    {
        let (_client, context) = server.connect_with_stream().await;
        let reports = publish_events(&context, publisher_config(), &events, READ).await;
        assert_eq!(stored(&reports), 200);
    }
    let port = server.port();
    server.kill();
    assert!(!server.is_running());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the killed server no longer listens"
    );
    server.restart();
    assert_eq!(server.port(), port, "same port after a restart");

    let (_client, context) = server.connect_with_stream().await;
    let messages = read_subject(&context, "vigie.events.paris.>", READ).await;
    let ids: Vec<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
    let expected: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids, expected,
        "file storage kept every acknowledged message"
    );

    let again = publish_events(&context, publisher_config(), &events, READ).await;
    assert_eq!(duplicates(&again), 200, "{again:?}");
    assert_eq!(
        read_subject(&context, "vigie.events.>", READ).await.len(),
        200
    );
}

// Two workers: the test blocks one while it kills and restarts the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_rides_out_a_server_killed_and_restarted_in_the_middle() {
    let mut server = NatsServer::start();
    let (_client, context) = server.connect_with_stream().await;
    let events = events(3000);
    let config = PublisherConfig {
        window: 64,
        ack_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            attempts: 20,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            give_up_after: Duration::from_secs(30),
        },
        ..publisher_config()
    };
    // Unbounded, so that the publisher is busy sending, not waiting for the test, when the
    // server is killed; and it pauses a little every 100 events, so that it is still at work
    // then (3000 events take at least 300 ms; the kill comes after 1000).
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Report>();
    let task = {
        let context = context.clone();
        let events = events.clone();
        tokio::spawn(async move {
            let mut publisher = Publisher::new(context, config);
            for (index, event) in events.iter().enumerate() {
                let message = publisher.event_message(index as u64, event, None).unwrap();
                for report in publisher.send(message).await {
                    report_tx.send(report).unwrap();
                }
                if index % 100 == 99 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            for report in publisher.flush().await {
                report_tx.send(report).unwrap();
            }
            publisher.stats()
        })
    };
    let mut reports = Vec::new();
    while reports.len() < 1000 {
        let report = within("the first 1000 reports", READ, report_rx.recv())
            .await
            .unwrap();
        reports.push(report);
    }
    server.kill();
    // Longer than the acknowledgement timeout: what is sent meanwhile times out and is retried.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.restart();
    while let Some(report) = within(
        "the remaining reports",
        Duration::from_secs(60),
        report_rx.recv(),
    )
    .await
    {
        reports.push(report);
    }
    let stats = within("the publisher", READ, task).await.unwrap();

    let failed: Vec<&Report> = reports
        .iter()
        .filter(|r| matches!(r.outcome, PublishOutcome::Failed(_)))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(reports.len(), 3000);
    assert_eq!(stored(&reports) + duplicates(&reports), 3000);
    assert!(stats.retries > 0, "the outage made some attempts fail");

    // Each event is in the stream exactly once: retries kept their Nats-Msg-Id.
    let messages = read_subject(&context, "vigie.events.>", READ).await;
    let ids: BTreeSet<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
    assert_eq!(messages.len(), 3000);
    assert_eq!(ids, events.iter().map(|e| e.id.as_str()).collect());
}

#[tokio::test]
async fn stop_is_clean_and_a_restart_keeps_the_port_and_the_storage() {
    let mut server = NatsServer::start();
    let events = events(10);
    {
        let (_client, context) = server.connect_with_stream().await;
        publish_events(&context, publisher_config(), &events, READ).await;
    }
    let pid = server.pid().unwrap();
    server.stop();
    assert!(!server.is_running());
    assert!(server.pid().is_none());
    server.restart();
    assert_ne!(server.pid(), Some(pid), "a new process");
    let (_client, context) = server.connect().await;
    assert_eq!(
        read_subject(&context, "vigie.events.>", READ).await.len(),
        10
    );
}

#[tokio::test]
async fn garbage_binary_and_1_mib_messages_can_be_injected_on_a_site_subject() {
    let server = NatsServer::start();
    let (_client, context) = server.connect_with_stream().await;
    let mut publisher = Publisher::new(context.clone(), publisher_config());
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "big-1");
    headers.insert("Content-Type", "application/protobuf");
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let messages = [
        publisher
            .raw_message(
                0,
                "paris",
                "contact.queued",
                HeaderMap::new(),
                Bytes::from_static(b"not json"),
            )
            .unwrap(),
        publisher
            .raw_message(1, "paris", "garbage", headers, Bytes::from(big.clone()))
            .unwrap(),
    ];
    let mut reports = Vec::new();
    for message in messages {
        reports.extend(within("sending", READ, publisher.send(message)).await);
    }
    reports.extend(within("acknowledgements", READ, publisher.flush()).await);
    assert_eq!(stored(&reports), 2, "{reports:?}");
    assert_eq!(reports[1].id.as_deref(), Some("big-1"));

    let stored = read_subject(&context, "vigie.events.paris.>", READ).await;
    assert_eq!(stored[0].subject, "vigie.events.paris.contact.queued");
    assert_eq!(&stored[0].payload[..], b"not json");
    assert_eq!(stored[1].subject, "vigie.events.paris.garbage");
    assert_eq!(
        stored[1].header("Content-Type"),
        Some("application/protobuf")
    );
    assert_eq!(stored[1].payload.len(), 1024 * 1024);
    assert_eq!(&stored[1].payload[..], &big[..]);
}
