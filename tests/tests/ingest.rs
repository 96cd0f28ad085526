//! Ingestion from a real nats-server (started by each test on its own port and storage): the
//! figures Vigie computes from the stream equal those of a replay of the same events, through
//! duplicates, reordering, a NATS crash, a Vigie crash, and bad input.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{Duration as Days, NaiveTime};
use serde_json::Value;
use vigie_core::config::HumanDuration;
use vigie_core::{Event, ProcessingConfig, Processor, SiteConfig, Window};
use vigie_ingest::publish::{PublishOutcome, Publisher, PublisherConfig};
use vigie_sim::{Disorder, SimConfig, Simulation};
use vigie_tests::cli::metric;
use vigie_tests::in_process::Vigie;
use vigie_tests::nats::{NatsServer, publish_events, read_subject, within};

const WAIT: Duration = Duration::from_secs(60);

/// A small simulated day tomorrow (so that every event is later than the test's clock and
/// views are taken at the newest event, as a replay takes them).
fn day(seed: u64) -> (SiteConfig, Vec<Event>) {
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let tomorrow = chrono::Utc::now().with_timezone(&zone).date_naive() + Days::days(1);
    let config = SimConfig {
        seed,
        advisors: 24,
        queues: 4,
        date: tomorrow,
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(11, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    (simulation.site_config(), simulation.collect())
}

/// The views a replay of `events` (in this order) gives, every window.
fn replay(site: &SiteConfig, events: &[Event]) -> Vec<Value> {
    let mut processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
    for event in events {
        processor.apply(event);
    }
    let site = processor.site(&site.id).unwrap();
    Window::ALL
        .iter()
        .map(|w| serde_json::to_value(site.site_view(*w)).unwrap())
        .collect()
}

fn stored(outcome: &PublishOutcome) -> bool {
    matches!(outcome, PublishOutcome::Stored { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_through_nats_gives_the_figures_of_a_replay() {
    let server = NatsServer::start();
    let (site, events) = day(1);
    let (_client, context) = server.connect_with_stream().await;
    let reports = publish_events(
        &context,
        PublisherConfig::new(&server.nats_config().stream),
        &events,
        WAIT,
    )
    .await;
    assert!(
        reports.iter().all(|r| stored(&r.outcome)),
        "every event stored"
    );
    let mut vigie = Vigie::start(server.nats_config(), &site).await;
    vigie.wait_ready(WAIT).await;
    vigie.wait_applied(events.len() as u64).await;
    assert_eq!(vigie.views().await, replay(&site, &events));
    let metrics = vigie.metrics();
    assert!(
        metrics.contains(&format!("vigie_events_applied_total {}", events.len())),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("vigie_events_received_total {}", events.len())),
        "{metrics}"
    );
    vigie.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_reordering_in_the_feed_change_nothing() {
    let server = NatsServer::start();
    let (site, events) = day(2);
    // 5% duplicates and reordering within 20 s, as an at-least-once feed delivers.
    let feed: Vec<Event> = Disorder::new(
        events.clone().into_iter(),
        9,
        0.05,
        vigie_core::Millis::from_secs(20),
    )
    .collect();
    assert!(feed.len() > events.len());
    let (_client, context) = server.connect_with_stream().await;
    // The server drops copies with the same Nats-Msg-Id; some copies are sent without one, as
    // a careless producer would, so that Vigie's own deduplication is exercised too.
    let mut publisher = Publisher::new(
        context.clone(),
        PublisherConfig::new(&server.nats_config().stream),
    );
    let mut seen = std::collections::HashSet::new();
    let mut reports = Vec::new();
    for (index, event) in feed.iter().enumerate() {
        let mut message = publisher.event_message(index as u64, event, None).unwrap();
        if !seen.insert(event.id.clone()) && index % 2 == 0 {
            message.headers = HeaderMap::new();
        }
        reports.extend(within("publishing", WAIT, publisher.send(message)).await);
    }
    reports.extend(within("publishing", WAIT, publisher.flush()).await);
    assert!(
        reports
            .iter()
            .any(|r| matches!(r.outcome, PublishOutcome::Duplicate { .. }))
    );
    let mut vigie = Vigie::start(server.nats_config(), &site).await;
    vigie.wait_ready(WAIT).await;
    vigie.wait_applied(events.len() as u64).await;
    // The same figures as a replay of the clean day.
    assert_eq!(vigie.views().await, replay(&site, &events));
    let metrics = vigie.metrics();
    assert!(
        !metrics.contains("vigie_events_duplicate_total 0\n"),
        "Vigie dropped duplicates itself: {metrics}"
    );
    vigie.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_crash_mid_feed_loses_nothing_and_counts_nothing_twice() {
    let mut server = NatsServer::start();
    let (site, events) = day(3);
    let (_client, context) = server.connect_with_stream().await;
    let mut vigie = Vigie::start(server.nats_config(), &site).await;
    vigie.wait_ready(WAIT).await;
    let half = events.len() / 2;
    let config = PublisherConfig::new(&server.nats_config().stream);
    publish_events(&context, config.clone(), &events[..half], WAIT).await;
    vigie.wait_applied(half as u64).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // The publisher retries until the server is back; the consumer resumes by itself.
    let reports = publish_events(&context, config, &events[half..], WAIT).await;
    assert!(
        reports
            .iter()
            .all(|r| !matches!(r.outcome, PublishOutcome::Failed(_))),
        "{reports:?}"
    );
    vigie.wait_applied(events.len() as u64).await;
    assert_eq!(vigie.views().await, replay(&site, &events));
    vigie.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigie_restarted_mid_day_recovers_the_state_of_a_run_that_never_stopped() {
    let server = NatsServer::start();
    let (site, events) = day(4);
    let (_client, context) = server.connect_with_stream().await;
    let config = PublisherConfig::new(&server.nats_config().stream);
    let mut first = Vigie::start(server.nats_config(), &site).await;
    first.wait_ready(WAIT).await;
    let third = events.len() / 3;
    publish_events(&context, config.clone(), &events[..third], WAIT).await;
    first.wait_applied(third as u64).await;
    first.kill();
    publish_events(&context, config.clone(), &events[third..2 * third], WAIT).await;
    let mut second = Vigie::start(server.nats_config(), &site).await;
    second.wait_ready(WAIT).await;
    second.wait_applied((2 * third) as u64).await;
    assert_eq!(
        second.views().await,
        replay(&site, &events[..2 * third]),
        "recovered from the stream"
    );
    // Live again after recovery.
    publish_events(&context, config, &events[2 * third..], WAIT).await;
    second.wait_applied(events.len() as u64).await;
    assert_eq!(second.views().await, replay(&site, &events));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_with_its_reason_and_the_good_events_are_all_applied() {
    let server = NatsServer::start();
    let (site, events) = day(5);
    let (_client, context) = server.connect_with_stream().await;
    let mut vigie = Vigie::start(server.nats_config(), &site).await;
    vigie.wait_ready(WAIT).await;
    let stream = server.nats_config().stream;
    let mut publisher = Publisher::new(context.clone(), PublisherConfig::new(&stream));
    let protobuf = {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "application/protobuf");
        headers
    };
    let bad: Vec<(&str, HeaderMap, Bytes)> = vec![
        ("malformed_json", HeaderMap::new(), Bytes::from_static(br#"{"id":"x","type":"contact.queued","#)),
        (
            "unknown_type",
            HeaderMap::new(),
            Bytes::from_static(br#"{"id":"u1","type":"contact.teleported","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c"}"#),
        ),
        (
            "missing_field",
            HeaderMap::new(),
            Bytes::from_static(br#"{"id":"m1","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c","queue":"q"}"#),
        ),
        ("malformed_json", HeaderMap::new(), Bytes::from_static(&[0xff, 0x00, 0x13, 0x37, 0xfe])),
        ("too_large", HeaderMap::new(), Bytes::from(vec![b' '; 1024 * 1024])),
        ("malformed_protobuf", protobuf, Bytes::from_static(&[0xff, 0xff, 0xff, 0xff])),
    ];
    // Interleaved with the good events: the bad ones every few hundred.
    let spacing = events.len() / (bad.len() + 1);
    let mut index = 0u64;
    let mut bad_iter = bad.iter();
    for (position, event) in events.iter().enumerate() {
        if position > 0
            && position % spacing == 0
            && let Some((_, headers, payload)) = bad_iter.next()
        {
            let message = publisher
                .raw_message(index, &site.id, "garbage", headers.clone(), payload.clone())
                .unwrap();
            within("publishing", WAIT, publisher.send(message)).await;
            index += 1;
        }
        let message = publisher.event_message(index, event, None).unwrap();
        within("publishing", WAIT, publisher.send(message)).await;
        index += 1;
    }
    within("publishing", WAIT, publisher.flush()).await;
    vigie.wait_applied(events.len() as u64).await;
    assert_eq!(vigie.views().await, replay(&site, &events));
    let letters = within("dead letters", WAIT, async {
        loop {
            let letters = read_subject(&context, &format!("vigie.dlq.{}", site.id), WAIT).await;
            if letters.len() >= bad.len() {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l.header("Vigie-Reject-Reason").unwrap())
        .collect();
    let expected: Vec<&str> = bad.iter().map(|(reason, _, _)| *reason).collect();
    assert_eq!(
        reasons, expected,
        "each bad message kept once, with its reason, in order"
    );
    for (letter, (_, _, payload)) in letters.iter().zip(&bad) {
        assert_eq!(
            &letter.payload, payload,
            "the dead letter keeps the message as it was"
        );
        assert!(
            letter
                .header("Vigie-Reject-Detail")
                .is_some_and(|d| !d.is_empty())
        );
        assert!(
            letter
                .header("Vigie-Original-Subject")
                .unwrap()
                .starts_with("vigie.events.")
        );
    }
    let metrics = vigie.metrics();
    for (reason, count) in [
        ("malformed_json", 2),
        ("unknown_type", 1),
        ("missing_field", 1),
        ("too_large", 1),
        ("malformed_protobuf", 1),
    ] {
        let line = format!("vigie_events_rejected_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} missing in {metrics}");
    }
    assert!(
        metrics.contains(&format!("vigie_events_dead_lettered_total {}", bad.len())),
        "{metrics}"
    );
    vigie.stop().await;
}

/// Restores at the start of a Vigie, by outcome.
fn restores(vigie: &Vigie, outcome: &str) -> f64 {
    let name = format!("vigie_snapshot_restores_total{{outcome=\"{outcome}\"}}");
    metric(&vigie.metrics(), &name).unwrap_or_default()
}

/// Publishes `events` in small parts, giving snapshots (every 100 ms) the time to be taken
/// between them.
async fn publish_slowly(
    context: &async_nats::jetstream::Context,
    config: &PublisherConfig,
    events: &[Event],
) {
    for part in events.chunks(events.len().div_ceil(6).max(1)) {
        publish_events(context, config.clone(), part, WAIT).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_a_snapshot_replays_only_the_events_after_it_and_equals_a_run_that_never_stopped()
 {
    let server = NatsServer::start();
    let (site, events) = day(5);
    let (_client, context) = server.connect_with_stream().await;
    let config = PublisherConfig::new(&server.nats_config().stream);
    let mut nats = server.nats_config();
    nats.snapshots.every = HumanDuration(Duration::from_millis(100));
    let (half, three_quarters) = (events.len() / 2, events.len() * 3 / 4);

    let mut first = Vigie::start(nats.clone(), &site).await;
    first.wait_ready(WAIT).await;
    assert_eq!(restores(&first, "none"), 1.0, "{}", first.metrics());
    publish_slowly(&context, &config, &events[..half]).await;
    first.wait_applied(half as u64).await;
    within("a snapshot saved", WAIT, async {
        while metric(&first.metrics(), "vigie_snapshots_saved_total").unwrap_or_default() < 2.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // A crash: the last snapshot saved holds some of the events, the stream has them all.
    first.kill();
    publish_events(
        &context,
        config.clone(),
        &events[half..three_quarters],
        WAIT,
    )
    .await;

    let mut second = Vigie::start(nats.clone(), &site).await;
    second.wait_ready(WAIT).await;
    second.wait_applied(three_quarters as u64).await;
    let metrics = second.metrics();
    assert_eq!(restores(&second, "restored"), 1.0, "{metrics}");
    let received = metric(&metrics, "vigie_events_received_total").unwrap();
    assert!(
        received < (three_quarters - half / 2) as f64,
        "only the events after the snapshot are read again: {received} of {three_quarters}"
    );
    assert_eq!(
        second.views().await,
        replay(&site, &events[..three_quarters]),
        "restored and caught up"
    );
    // Live after the start, then a graceful stop saves the state once more.
    publish_events(&context, config.clone(), &events[three_quarters..], WAIT).await;
    second.wait_applied(events.len() as u64).await;
    assert_eq!(second.views().await, replay(&site, &events));
    second.stop().await;

    let mut third = Vigie::start(nats.clone(), &site).await;
    third.wait_ready(WAIT).await;
    let metrics = third.metrics();
    assert_eq!(restores(&third, "restored"), 1.0, "{metrics}");
    assert_eq!(
        metric(&metrics, "vigie_events_received_total"),
        Some(0.0),
        "the snapshot saved at the stop holds every event"
    );
    assert_eq!(third.views().await, replay(&site, &events));
    third.stop().await;

    // Another configuration of the site: the snapshot is not used, the day is replayed.
    let mut changed = site.clone();
    changed.queues[0].sl_threshold = HumanDuration::secs(7);
    let mut fourth = Vigie::start(nats, &changed).await;
    fourth.wait_ready(WAIT).await;
    fourth.wait_applied(events.len() as u64).await;
    assert_eq!(restores(&fourth, "unusable"), 1.0, "{}", fourth.metrics());
    assert_eq!(fourth.views().await, replay(&changed, &events));
    fourth.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_stream_is_not_used() {
    let server = NatsServer::start();
    let (site, events) = day(6);
    let (_client, context) = server.connect_with_stream().await;
    let config = PublisherConfig::new(&server.nats_config().stream);
    let nats = server.nats_config();
    let mut first = Vigie::start(nats.clone(), &site).await;
    first.wait_ready(WAIT).await;
    publish_events(&context, config.clone(), &events, WAIT).await;
    first.wait_applied(events.len() as u64).await;
    first.stop().await;
    // The stream is deleted and created again: its sequences start over.
    context.delete_stream(&nats.stream.name).await.unwrap();
    let (_client, context) = server.connect_with_stream().await;
    let half = events.len() / 2;
    publish_events(&context, config, &events[..half], WAIT).await;
    let mut second = Vigie::start(nats, &site).await;
    second.wait_ready(WAIT).await;
    second.wait_applied(half as u64).await;
    assert_eq!(restores(&second, "unusable"), 1.0, "{}", second.metrics());
    assert_eq!(second.views().await, replay(&site, &events[..half]));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_and_created_again_while_live_is_reported_as_a_gap() {
    let server = NatsServer::start();
    let (site, events) = day(7);
    let (_client, context) = server.connect_with_stream().await;
    let config = PublisherConfig::new(&server.nats_config().stream);
    let nats = server.nats_config();
    let half = events.len() / 2;
    let mut vigie = Vigie::start(nats.clone(), &site).await;
    vigie.wait_ready(WAIT).await;
    publish_events(&context, config.clone(), &events[..half], WAIT).await;
    vigie.wait_applied(half as u64).await;
    let gaps = |vigie: &Vigie| metric(&vigie.metrics(), "vigie_ingest_gaps_total");
    assert_eq!(gaps(&vigie), Some(0.0), "nothing missing yet");

    // Its sequences start over, the events before are gone: the figures cannot be complete.
    context.delete_stream(&nats.stream.name).await.unwrap();
    let (_client, context) = server.connect_with_stream().await;
    publish_events(&context, config, &events[half..], WAIT).await;
    within("the reset reported", WAIT, async {
        while gaps(&vigie).unwrap_or_default() < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The new stream is read from its start, in its own numbering: every event of it counts,
    // none is taken for one read already, and the reset is reported once.
    vigie.wait_applied(events.len() as u64).await;
    assert_eq!(gaps(&vigie), Some(1.0), "{}", vigie.metrics());
    assert_eq!(
        metric(&vigie.metrics(), "vigie_ingest_redeliveries_total"),
        Some(0.0),
        "{}",
        vigie.metrics()
    );
    vigie.stop().await;
}
