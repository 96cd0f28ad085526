//! The interval history store: over JetStream against a nats-server of each test's own (see
//! `vigie_tests::nats`), and the in-process store of the embedded demo, which must answer the
//! same way: the behaviours below run on both.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::time::{Duration, Instant};

use vigie::history_store::{HistoryConfig, JetStreamHistory};
use vigie_api::history_store::{HistoryError, HistoryStore};
use vigie_core::config::HumanDuration;
use vigie_history::{IntervalRecord, ScopeKind};
use vigie_tests::nats::async_nats::jetstream;
use vigie_tests::nats::{NatsServer, read_subject, within};

/// Bounds any single step; the store's own timeout is shorter.
const WAIT: Duration = Duration::from_secs(30);
/// 2026-03-02T00:00:00Z, a Monday; the sites of these tests live in UTC.
const MONDAY: i64 = 1_772_409_600_000;
const INTERVAL: i64 = 15 * 60_000;
const DAY: i64 = 86_400_000;

/// The `n`th interval of Monday.
fn at(n: i64) -> i64 {
    MONDAY + n * INTERVAL
}

/// A first revision, built from JSON as a reader would see it (so that fields records gain
/// later, with their defaults, do not break these tests); advisors are on team `blue`.
fn record_of(site: &str, kind: &str, id: &str, start_ms: i64) -> IntervalRecord {
    let date = chrono::DateTime::from_timestamp_millis(start_ms)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    serde_json::from_value(serde_json::json!({
        "site": site,
        "kind": kind,
        "id": id,
        "start_ms": start_ms,
        "end_ms": start_ms + INTERVAL,
        "date": date,
        "revision": 1,
        "settled": false,
        "team": if kind == "advisor" { Some("blue") } else { None },
        "name": format!("{id} ({kind})"),
        "handling": { "handled": 3, "talk_ms": 120_000 },
    }))
    .unwrap()
}

fn record(kind: &str, id: &str, start_ms: i64) -> IntervalRecord {
    record_of("paris", kind, id, start_ms)
}

/// A correction of `record`: the next revision, with other figures.
fn corrected(record: &IntervalRecord) -> IntervalRecord {
    let mut corrected = record.clone();
    corrected.revision += 1;
    corrected.settled = true;
    corrected.handling.handled += 1;
    corrected
}

fn on_team(mut record: IntervalRecord, team: &str) -> IntervalRecord {
    record.team = Some(team.to_owned());
    record
}

/// The settings of these tests: a short timeout so that an unreachable server shows quickly.
fn config() -> HistoryConfig {
    HistoryConfig {
        timeout: HumanDuration::secs(3),
        ..HistoryConfig::default()
    }
}

async fn open_with(
    server: &NatsServer,
    config: &HistoryConfig,
) -> (
    vigie_tests::nats::async_nats::Client,
    jetstream::Context,
    JetStreamHistory,
) {
    let (client, context) = server.connect().await;
    let store = within("opening the history store", WAIT, config.open(&context))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (client, context, store)
}

async fn publish(store: &dyn HistoryStore, records: Vec<IntervalRecord>) {
    within("publishing records", WAIT, store.publish(records))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn day(store: &dyn HistoryStore, site: &str, date: &str) -> Vec<IntervalRecord> {
    within("reading a day", WAIT, store.day(site, date))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn query(
    store: &dyn HistoryStore,
    site: &str,
    kind: ScopeKind,
    id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Vec<IntervalRecord> {
    within(
        "reading a scope",
        WAIT,
        store.query(site, kind, id, from_ms, to_ms),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn team(
    store: &dyn HistoryStore,
    team: &str,
    from_ms: i64,
    to_ms: i64,
) -> Vec<IntervalRecord> {
    within(
        "reading a team's advisors",
        WAIT,
        store.team_advisors("paris", team, from_ms, to_ms),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `(id, interval index, revision)` of each record, in the order given.
fn seen(records: &[IntervalRecord]) -> Vec<(String, i64, u32)> {
    records
        .iter()
        .map(|r| {
            (
                r.key.id.clone(),
                (r.key.start_ms - MONDAY) / INTERVAL,
                r.revision,
            )
        })
        .collect()
}

fn expect(rows: &[(&str, i64, u32)]) -> Vec<(String, i64, u32)> {
    rows.iter()
        .map(|(id, n, revision)| ((*id).to_owned(), *n, *revision))
        .collect()
}

// The behaviours every store has.

async fn a_published_day_reads_back_whole_and_alone(store: &dyn HistoryStore) {
    let monday = vec![
        record("site", "paris", at(0)),
        record("queue", "q1", at(0)),
        record("queue", "q1", at(1)),
        record("team", "blue", at(0)),
        record("advisor", "a1", at(0)),
        record("advisor", "a2", at(1)),
    ];
    let mut published = monday.clone();
    // The next day, and another site the same day: not Monday's at Paris.
    published.push(record("queue", "q1", MONDAY + DAY));
    published.push(record("advisor", "a1", MONDAY + DAY));
    published.push(record_of("lyon", "queue", "q1", at(0)));
    published.push(record_of("lyon", "advisor", "a1", at(0)));
    publish(store, published).await;

    let read = day(store, "paris", "2026-03-02").await;
    // Whole records, in key order: the site, queues, teams, then advisors.
    let mut expected = monday;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(read, expected);
    assert_eq!(
        seen(&day(store, "paris", "2026-03-03").await),
        expect(&[("q1", 96, 1), ("a1", 96, 1)])
    );
    assert_eq!(
        seen(&day(store, "lyon", "2026-03-02").await),
        expect(&[("q1", 0, 1), ("a1", 0, 1)])
    );
    assert!(day(store, "paris", "2026-03-04").await.is_empty());
    assert!(day(store, "marseille", "2026-03-02").await.is_empty());

    let error = within("reading a day", WAIT, store.day("paris", "2 March"))
        .await
        .unwrap_err();
    assert!(matches!(error, HistoryError::InvalidQuery(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "invalid history query: date \"2 March\" is not YYYY-MM-DD"
    );
}

async fn queries_take_the_intervals_starting_in_a_half_open_range(store: &dyn HistoryStore) {
    let mut records: Vec<IntervalRecord> = (0..8).map(|n| record("queue", "q1", at(n))).collect();
    // Same id, other kinds or sites: never in a queue's answer.
    records.push(record("team", "q1", at(3)));
    records.push(record("advisor", "q1", at(3)));
    records.push(record_of("lyon", "queue", "q1", at(3)));
    records.push(record("queue", "q10", at(3)));
    // Published out of order: answers are sorted by start all the same.
    records.reverse();
    publish(store, records).await;

    let queue = |from, to| query(store, "paris", ScopeKind::Queue, "q1", from, to);
    assert_eq!(
        seen(&queue(at(2), at(5)).await),
        expect(&[("q1", 2, 1), ("q1", 3, 1), ("q1", 4, 1)]),
        "the start included, the end excluded"
    );
    assert_eq!(
        seen(&queue(at(2) + 1, at(5) + 1).await),
        expect(&[("q1", 3, 1), ("q1", 4, 1), ("q1", 5, 1)])
    );
    assert!(queue(at(2), at(2)).await.is_empty(), "an empty range");
    assert!(queue(at(5), at(2)).await.is_empty(), "a reversed range");
    assert!(queue(at(8), at(96)).await.is_empty());
    assert_eq!(queue(MONDAY - DAY, MONDAY + DAY).await.len(), 8);
    assert_eq!(
        seen(
            &query(
                store,
                "paris",
                ScopeKind::Advisor,
                "q1",
                MONDAY,
                MONDAY + DAY
            )
            .await
        ),
        expect(&[("q1", 3, 1)])
    );
    assert_eq!(
        seen(&query(store, "paris", ScopeKind::Team, "q1", MONDAY, MONDAY + DAY).await),
        expect(&[("q1", 3, 1)])
    );
    assert!(
        query(
            store,
            "paris",
            ScopeKind::Site,
            "paris",
            MONDAY,
            MONDAY + DAY
        )
        .await
        .is_empty()
    );
}

async fn team_reads_take_the_advisors_of_that_team_only(store: &dyn HistoryStore) {
    publish(
        store,
        vec![
            record("advisor", "a2", at(1)),
            record("advisor", "a1", at(1)),
            record("advisor", "a1", at(0)),
            record("advisor", "a1", at(4)),
            on_team(record("advisor", "a3", at(1)), "red"),
            record("team", "blue", at(1)),
            record("queue", "blue", at(1)),
            on_team(record_of("lyon", "advisor", "a9", at(1)), "blue"),
        ],
    )
    .await;
    assert_eq!(
        seen(&team(store, "blue", at(0), at(4)).await),
        expect(&[("a1", 0, 1), ("a1", 1, 1), ("a2", 1, 1)]),
        "by advisor then start, the range's end excluded"
    );
    assert_eq!(
        seen(&team(store, "red", MONDAY, MONDAY + DAY).await),
        expect(&[("a3", 1, 1)])
    );
    assert!(team(store, "green", MONDAY, MONDAY + DAY).await.is_empty());
}

async fn a_correction_replaces_the_first_revision_in_every_read(store: &dyn HistoryStore) {
    let queue = record("queue", "q1", at(0));
    let advisor = record("advisor", "a1", at(0));
    let other = record("queue", "q1", at(1));
    let untouched = record("queue", "q1", at(2));
    publish(
        store,
        vec![queue.clone(), advisor.clone(), untouched.clone()],
    )
    .await;
    publish(store, vec![corrected(&queue), corrected(&advisor)]).await;
    // The first revision again: it changes nothing.
    publish(store, vec![queue.clone(), advisor.clone()]).await;
    // A correction stored before the record it corrects (a store reads in the order stored):
    // the highest revision wins all the same.
    publish(store, vec![corrected(&other)]).await;
    publish(store, vec![other.clone()]).await;

    let read = day(store, "paris", "2026-03-02").await;
    assert_eq!(
        read,
        vec![
            corrected(&queue),
            corrected(&other),
            untouched.clone(),
            corrected(&advisor)
        ]
    );
    assert_eq!(
        query(store, "paris", ScopeKind::Queue, "q1", MONDAY, MONDAY + DAY).await,
        vec![corrected(&queue), corrected(&other), untouched]
    );
    assert_eq!(
        query(
            store,
            "paris",
            ScopeKind::Advisor,
            "a1",
            MONDAY,
            MONDAY + DAY
        )
        .await,
        vec![corrected(&advisor)]
    );
    assert_eq!(
        team(store, "blue", MONDAY, MONDAY + DAY).await,
        vec![corrected(&advisor)]
    );
}

/// Ids that are no subject tokens as they are, and ids that look like one another's encoding.
const AWKWARD_IDS: &[&str] = &[
    "sales.fr",
    "a b",
    "*",
    ">",
    "sales.>",
    "Hélène Müller",
    "x/y",
    "%2A",
    "100%",
    "客服",
    "tab\there",
];

async fn ids_with_dots_spaces_wildcards_and_accents_round_trip(store: &dyn HistoryStore) {
    let site = "Saint-Étienne.nord";
    let mut records = Vec::new();
    for (n, id) in (0_i64..).zip(AWKWARD_IDS) {
        records.push(record_of(site, "queue", id, at(n)));
        records.push(record_of(site, "advisor", id, at(n)));
    }
    publish(store, records.clone()).await;

    for (n, id) in (0_i64..).zip(AWKWARD_IDS) {
        for (kind, name) in [(ScopeKind::Queue, "queue"), (ScopeKind::Advisor, "advisor")] {
            let found = query(store, site, kind, id, MONDAY, MONDAY + DAY).await;
            assert_eq!(
                found,
                vec![record_of(site, name, id, at(n))],
                "{name} {id:?}: its own record, and no other (wildcards are not wildcards)"
            );
        }
    }
    let mut expected = records;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(day(store, site, "2026-03-02").await, expected);
    assert!(
        day(store, "Saint-Étienne", "2026-03-02").await.is_empty(),
        "a site whose id starts another's is another site"
    );
}

async fn a_refused_record_stores_nothing_of_its_batch(store: &dyn HistoryStore) {
    let mut bad = record("queue", "q1", at(1));
    bad.end_ms = bad.key.start_ms;
    let error = within(
        "publishing a bad record",
        WAIT,
        store.publish(vec![record("queue", "q1", at(0)), bad]),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, HistoryError::BadRecord { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "interval record paris/queue/q1/{} refused: end_ms {} is not after start_ms {}",
            at(1),
            at(1),
            at(1)
        )
    );
    assert!(day(store, "paris", "2026-03-02").await.is_empty());
}

/// Each behaviour as a test on a JetStream store (a server of its own) and on the memory store.
macro_rules! on_both_stores {
    ($($behaviour:ident),* $(,)?) => {
        mod on_jetstream {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let server = super::NatsServer::start();
                    let (_client, _context, store) = super::open_with(&server, &super::config()).await;
                    super::$behaviour(&store).await;
                }
            )*
        }
        mod in_memory {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(&super::config().memory()).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_published_day_reads_back_whole_and_alone,
    queries_take_the_intervals_starting_in_a_half_open_range,
    team_reads_take_the_advisors_of_that_team_only,
    a_correction_replaces_the_first_revision_in_every_read,
    ids_with_dots_spaces_wildcards_and_accents_round_trip,
    a_refused_record_stores_nothing_of_its_batch,
);

// What only JetStream does.

async fn stream_info(context: &jetstream::Context, name: &str) -> jetstream::stream::Info {
    within("reading a stream's information", WAIT, async {
        context
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone()
    })
    .await
}

#[tokio::test]
async fn publishing_the_same_record_twice_stores_one_message() {
    let server = NatsServer::start();
    let (_client, context, store) = open_with(&server, &config()).await;
    let queue = record("queue", "q1", at(0));
    // Twice in a batch (published concurrently), then once more.
    publish(&store, vec![queue.clone(), queue.clone()]).await;
    publish(&store, vec![queue.clone()]).await;
    assert_eq!(
        stream_info(&context, "VIGIE_INTERVALS")
            .await
            .state
            .messages,
        1
    );
    // A correction is another message.
    publish(&store, vec![corrected(&queue)]).await;
    assert_eq!(
        stream_info(&context, "VIGIE_INTERVALS")
            .await
            .state
            .messages,
        2
    );
    assert_eq!(
        query(
            &store,
            "paris",
            ScopeKind::Queue,
            "q1",
            MONDAY,
            MONDAY + DAY
        )
        .await,
        vec![corrected(&queue)]
    );
}

#[tokio::test]
async fn advisor_records_land_in_their_own_stream_with_its_own_max_age() {
    let server = NatsServer::start();
    let config = HistoryConfig {
        max_age: HumanDuration::secs(90 * 86_400),
        advisor_max_age: HumanDuration::secs(7 * 86_400),
        ..config()
    };
    let (_client, context, store) = open_with(&server, &config).await;
    publish(
        &store,
        vec![
            record("advisor", "a.1", at(0)),
            record("queue", "q1", at(0)),
            record("team", "blue", at(0)),
        ],
    )
    .await;

    let advisors = stream_info(&context, "VIGIE_ADVISOR_INTERVALS").await;
    assert_eq!(advisors.config.subjects, ["vigie.advisor_intervals.>"]);
    assert_eq!(advisors.config.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(advisors.config.num_replicas, 1);
    assert_eq!(advisors.state.messages, 1);
    let scopes = stream_info(&context, "VIGIE_INTERVALS").await;
    assert_eq!(scopes.config.subjects, ["vigie.intervals.>"]);
    assert_eq!(scopes.config.max_age, Duration::from_secs(90 * 86_400));
    assert_eq!(scopes.state.messages, 2);

    let stored = read_subject(&context, "vigie.advisor_intervals.>", WAIT).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subject, "vigie.advisor_intervals.paris.a%2E1");
    assert_eq!(
        stored[0].message_id(),
        Some(format!("paris/advisor/a%2E1/{MONDAY}/1").as_str())
    );
    let payload: IntervalRecord = serde_json::from_slice(&stored[0].payload).unwrap();
    assert_eq!(payload, record("advisor", "a.1", at(0)));
    let stored = read_subject(&context, "vigie.intervals.>", WAIT).await;
    let subjects: Vec<&str> = stored.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "vigie.intervals.paris.queue.q1",
            "vigie.intervals.paris.team.blue"
        ]
    );
}

#[tokio::test]
async fn changed_settings_update_the_existing_streams() {
    let server = NatsServer::start();
    let (_client, context, store) = open_with(&server, &config()).await;
    publish(&store, vec![record("advisor", "a1", at(0))]).await;
    assert_eq!(
        stream_info(&context, "VIGIE_ADVISOR_INTERVALS")
            .await
            .config
            .max_age,
        Duration::from_secs(31 * 86_400)
    );

    let shorter = HistoryConfig {
        advisor_max_age: HumanDuration::secs(14 * 86_400),
        max_bytes: Some(50_000_000),
        ..config()
    };
    let (_client, context, store) = open_with(&server, &shorter).await;
    let advisors = stream_info(&context, "VIGIE_ADVISOR_INTERVALS").await;
    assert_eq!(advisors.config.max_age, Duration::from_secs(14 * 86_400));
    assert_eq!(advisors.config.max_bytes, 50_000_000);
    assert_eq!(advisors.state.messages, 1, "updating keeps the records");
    let scopes = stream_info(&context, "VIGIE_INTERVALS").await;
    assert_eq!(scopes.config.max_age, Duration::from_secs(400 * 86_400));
    assert_eq!(scopes.config.max_bytes, 50_000_000);
    assert_eq!(
        query(
            &store,
            "paris",
            ScopeKind::Advisor,
            "a1",
            MONDAY,
            MONDAY + DAY
        )
        .await,
        vec![record("advisor", "a1", at(0))]
    );
}

#[tokio::test]
async fn a_stream_of_the_same_name_on_other_subjects_is_refused() {
    let server = NatsServer::start();
    let (_client, context) = server.connect().await;
    within(
        "creating an operator's stream",
        WAIT,
        context.create_stream(jetstream::stream::Config {
            name: "VIGIE_INTERVALS".into(),
            subjects: vec!["reports.>".into()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let error = within("opening the history store", WAIT, config().open(&context))
        .await
        .unwrap_err();
    assert!(matches!(error, HistoryError::Misconfigured(_)), "{error}");
    let message = error.to_string();
    for expected in [
        "stream VIGIE_INTERVALS (history.stream) exists and captures [\"reports.>\"], not [\"vigie.intervals.>\"]",
        "name another stream in history.stream",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing in {message}"
        );
    }
    // Its subjects were left alone.
    assert_eq!(
        stream_info(&context, "VIGIE_INTERVALS")
            .await
            .config
            .subjects,
        ["reports.>"]
    );
}

#[tokio::test]
async fn records_survive_a_server_restart() {
    let mut server = NatsServer::start();
    let records = vec![
        record("site", "paris", at(0)),
        record("queue", "q1", at(0)),
        record("advisor", "a1", at(0)),
    ];
    {
        let (client, _context, store) = open_with(&server, &config()).await;
        publish(&store, records.clone()).await;
        drop(store);
        drop(client);
    }
    server.restart();
    let (_client, _context, store) = open_with(&server, &config()).await;
    assert_eq!(day(&store, "paris", "2026-03-02").await, records);
}

#[tokio::test]
async fn an_unreachable_store_fails_clearly_within_its_timeout() {
    let mut server = NatsServer::start();
    let config = HistoryConfig {
        timeout: HumanDuration::secs(1),
        ..config()
    };
    let (_client, context, store) = open_with(&server, &config).await;
    publish(&store, vec![record("queue", "q1", at(0))]).await;
    server.kill();

    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let error = within(
        "publishing with the server down",
        WAIT,
        store.publish(vec![record("queue", "q1", at(1))]),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    assert!(matches!(error, HistoryError::Unavailable(_)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("the history store is unavailable: "),
        "{error}"
    );

    for (what, read) in [
        ("a day", store.day("paris", "2026-03-02")),
        (
            "a scope",
            store.query("paris", ScopeKind::Queue, "q1", MONDAY, MONDAY + DAY),
        ),
        (
            "a team",
            store.team_advisors("paris", "blue", MONDAY, MONDAY + DAY),
        ),
    ] {
        let started = Instant::now();
        let error = within(what, WAIT, read).await.unwrap_err();
        assert!(started.elapsed() < bound, "{what}: {:?}", started.elapsed());
        assert!(
            matches!(error, HistoryError::Unavailable(_)),
            "{what}: {error}"
        );
    }

    let started = Instant::now();
    let error = within("opening with the server down", WAIT, config.open(&context))
        .await
        .unwrap_err();
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    assert!(matches!(error, HistoryError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("VIGIE_INTERVALS"), "{error}");
}
