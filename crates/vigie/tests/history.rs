//! Issue 9: "a restart mid-day leaves the interval stream without gaps or duplicates".
//!
//! `vigie serve` runs twice over one simulated day (a real feed: duplicates, reordering within
//! the allowed lateness): first on the morning's events, stopped with SIGTERM once it has
//! stored their history, then again once the rest of the day is published (it recovers the
//! whole day from the event stream, then goes live). The history streams are then read raw,
//! message by message, and compared with records worked out offline by a processor fed the
//! same events: every interval is there with exactly its figures, no record is stored twice,
//! and the second run stored nothing of what the first one had.
//!
//! The day is shaped so that every path of publication is taken: each run stops just past an
//! interval boundary, so that it offers that interval at its close as it stands, and an event
//! before the first run's stop is delivered just after it, so that the second run corrects part
//! of what the first offered. Between the runs, the streams' duplicate window is shrunk: no
//! duplicate must rest on JetStream dropping a message id it stored less than two minutes
//! before (a restart after a longer stop would not have that help).
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::{self, Context};
use chrono::{Duration as Days, NaiveTime};
use futures::StreamExt;
use serde_json::Value;
use vigie::config::VigieConfig;
use vigie::history_store::{message_id, record_subject};
use vigie_core::totals::DayTotals;
use vigie_core::{Event, INTERVAL_LENGTH, Outcome, SiteProcessor, Timestamp};
use vigie_history::AbandonedLog;
use vigie_history::abandoned::list_abandoned;
use vigie_history::records::{interval_records, name_records};
use vigie_history::{IntervalRecord, RecordKey, ScopeKind};
use vigie_ingest::publish::PublisherConfig;
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::cli::{DEMO_TIME_ZONE, daytime_zone, free_port, http_get, metric};
use vigie_tests::nats::{NatsServer, Signal, publish_events, signal, wait_within, within};

/// Bounds every wait of the test.
const WAIT: Duration = Duration::from_secs(60);
/// How long the history must stay unchanged to count as caught up: many engine ticks (100 ms).
const STABLE: Duration = Duration::from_millis(1500);
/// How long the history may stay unchanged with fewer records than expected before the
/// checks run anyway (and say which records are missing).
const GIVE_UP: Duration = Duration::from_secs(5);
const INTERVAL_MS: i64 = INTERVAL_LENGTH.0;

/// `/metrics` of the service on `port`, without blocking the runtime.
async fn metrics(port: u16) -> Option<String> {
    tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
        .await
        .unwrap()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// `vigie serve` with `args`, without the wallboard.
fn serve(args: &[&str], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .arg("serve")
        .args(args)
        .arg("--no-web")
        // Tests run in parallel: each service on its own gRPC port.
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .env(DEMO_TIME_ZONE, daytime_zone())
        .env("VIGIE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A small day tomorrow as a real feed delivers it (duplicates, reordering within a few
/// seconds), and the configuration of its site. The site is in Honolulu (UTC-10), the
/// westernmost zone of its kind: the history reads a date's records from the earliest instant
/// a site anywhere can publish them (the date's start at UTC+14), which for tomorrow in
/// Honolulu is always past, whatever the hour the tests run.
fn day() -> (VigieConfig, Vec<Event>) {
    let zone: chrono_tz::Tz = "Pacific/Honolulu".parse().unwrap();
    let date = chrono::Utc::now().with_timezone(&zone).date_naive() + Days::days(1);
    let config = SimConfig {
        time_zone: zone.name().to_owned(),
        seed: 11,
        advisors: 24,
        queues: 4,
        date,
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let site = simulation.site_config();
    (
        VigieConfig {
            sites: vec![site],
            ..VigieConfig::default()
        },
        simulation.into_feed().collect(),
    )
}

/// A record's figures: everything but its revision and its `settled` mark.
fn content(record: &IntervalRecord) -> IntervalRecord {
    IntervalRecord {
        revision: 0,
        settled: false,
        ..record.clone()
    }
}

/// `queue sales-voice [2026-11-28 09:15Z, +15 min)`.
fn describe(key: &RecordKey) -> String {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%MZ").to_string(),
        )
    };
    format!(
        "{} {} [{}, +15 min)",
        key.kind.as_str(),
        key.id,
        time(key.start_ms)
    )
}

/// Where two JSON values differ: `path: stored X, expected Y`, one line per leaf.
fn differences(path: &str, stored: &Value, expected: &Value, out: &mut Vec<String>) {
    match (stored, expected) {
        (Value::Object(a), Value::Object(b)) => {
            let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let (x, y) = (
                    a.get(name).unwrap_or(&Value::Null),
                    b.get(name).unwrap_or(&Value::Null),
                );
                differences(&format!("{path}.{name}"), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{index}]"), x, y, out);
            }
        }
        _ if stored != expected => {
            out.push(format!("  {path}: stored {stored}, expected {expected}"))
        }
        _ => {}
    }
}

/// The field-by-field differences of two records' figures.
fn diff(stored: &IntervalRecord, expected: &IntervalRecord) -> String {
    let mut out = Vec::new();
    differences(
        "record",
        &serde_json::to_value(content(stored)).unwrap(),
        &serde_json::to_value(content(expected)).unwrap(),
        &mut out,
    );
    out.join("\n")
}

/// A processor with the service's configuration, capture enabled before the first event, fed
/// events one by one in the order they were published: what the service's engine holds after
/// the same events.
struct Replay {
    processor: SiteProcessor,
    /// Every final totals captured so far, in boundary order (contiguous from the day start).
    totals: Vec<DayTotals>,
    /// The abandoned contacts so far, listed in queue records.
    abandoned: AbandonedLog,
    applied: u64,
}

impl Replay {
    fn new(config: &VigieConfig) -> Replay {
        let mut processor = SiteProcessor::new(config.sites[0].clone(), &config.processing);
        processor.enable_interval_totals();
        processor.enable_abandoned_contacts();
        Replay {
            processor,
            totals: Vec::new(),
            abandoned: AbandonedLog::default(),
            applied: 0,
        }
    }

    fn apply(&mut self, event: &Event) {
        match self.processor.apply(event) {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate => {}
            Outcome::Rejected(rejection) => panic!(
                "the simulated feed stays within the allowed lateness, yet event {} was refused: \
                 {rejection:?}",
                event.id
            ),
        }
        self.totals.extend(self.processor.take_interval_totals());
        self.abandoned
            .apply(self.processor.take_abandoned_changes());
    }

    /// The records between two totals, queue records listing their abandons.
    fn records(&self, previous: Option<&DayTotals>, next: &DayTotals) -> Vec<IntervalRecord> {
        let mut records = interval_records(previous, next, 0, false);
        name_records(&mut records, &self.processor);
        list_abandoned(&mut records, &self.abandoned);
        records
    }

    /// The records of the interval that closed last by the newest event, when its final
    /// totals are not captured yet (the newest event is less than the allowed lateness past
    /// its end), as they stand: what a live service offers at the interval's close.
    fn at_close(&self) -> Option<Vec<IntervalRecord>> {
        let now = self.processor.now();
        let day_start = self.processor.day_of(now).start.0;
        let end = day_start + (now.0 - day_start) / INTERVAL_MS * INTERVAL_MS;
        let base = self.totals.last()?;
        if base.at.0 + INTERVAL_MS != end {
            return None;
        }
        let totals = self.processor.totals_at(Timestamp(end)).unwrap();
        Some(
            self.records(Some(base), &totals)
                .iter()
                .map(content)
                .collect(),
        )
    }
}

/// What a replay of a feed gives: the state after the first `split` events, and at the end.
struct Replayed {
    split: usize,
    applied_first: u64,
    /// Final totals captured after the first `split` events.
    captured_first: usize,
    /// What a live service offers at close after the first `split` events.
    first_at_close: Vec<IntervalRecord>,
    applied_all: u64,
    /// Every final totals.
    totals: Vec<DayTotals>,
    /// What a live service offers at close at the end.
    second_at_close: Vec<IntervalRecord>,
    /// The final records of every interval up to the last boundary, empty ones included, as
    /// `content` gives them.
    records: BTreeMap<RecordKey, IntervalRecord>,
}

impl Replayed {
    fn of(config: &VigieConfig, events: &[Event], split: usize) -> Replayed {
        let mut replay = Replay::new(config);
        for event in &events[..split] {
            replay.apply(event);
        }
        let (applied_first, captured_first) = (replay.applied, replay.totals.len());
        let first_at_close = replay
            .at_close()
            .expect("the first run stops just past a boundary");
        for event in &events[split..] {
            replay.apply(event);
        }
        let mut records = BTreeMap::new();
        let mut previous: Option<&DayTotals> = None;
        for next in &replay.totals {
            for record in replay.records(previous, next) {
                records.insert(record.key.clone(), content(&record));
            }
            previous = Some(next);
        }
        assert!(
            records.values().any(|r| !r.abandoned_contacts.is_empty()),
            "the day has abandons to list"
        );
        Replayed {
            split,
            applied_first,
            captured_first,
            first_at_close,
            applied_all: replay.applied,
            second_at_close: replay
                .at_close()
                .expect("the feed ends just past a boundary"),
            totals: replay.totals,
            records,
        }
    }

    /// Whether the first run's offer at close has records with activity that late events
    /// change, and others that they leave as they were.
    fn corrects(&self) -> bool {
        let mut offered = self.first_at_close.iter().filter(|r| !r.is_empty());
        let changed = |r: &IntervalRecord| self.records.get(&r.key) != Some(r);
        offered.clone().any(changed) && offered.any(|r| !changed(r))
    }
}

/// One message the streams must hold for a key, in order.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    revision: u32,
    settled: bool,
    /// Stored by the first run (else the second).
    first_run: bool,
    /// Its figures, as `content` gives them.
    content: IntervalRecord,
}

/// What the service must make of the day, worked out offline with a [`Replay`].
struct Expected {
    /// Events published before the first run (the rest before the second).
    split: usize,
    /// Events applied (duplicates aside) by the end of each run.
    applied_first: u64,
    applied_all: u64,
    /// The last boundary with final totals at the end of each run.
    first_boundary: i64,
    last_boundary: i64,
    /// The final records of every interval up to `last_boundary`, empty ones included, and
    /// those of the interval offered at its close by the second run, by key, as `content`
    /// gives them.
    records: BTreeMap<RecordKey, IntervalRecord>,
    /// The messages the streams must hold, per key.
    messages: BTreeMap<RecordKey, Vec<Message>>,
}

impl Expected {
    /// Shapes the day so that both runs offer an interval at its close, and works out what
    /// the streams must hold. The feed is cut less than the allowed lateness after a boundary
    /// (from three quarters of the day on, where the interval that closed has activity): the
    /// second run ends live with that interval offered as it stands. The first run stops the
    /// same way after the first boundary past the middle of the day, and one event from before
    /// that boundary is held back until just after the stop, as a late delivery would be: the
    /// first run's offer at close lacks it, and the second run corrects it.
    fn new(config: &VigieConfig, events: &mut Vec<Event>) -> Expected {
        let mut replay = Replay::new(config);
        let mut cut = None;
        for (index, event) in events.iter().enumerate() {
            replay.apply(event);
            if index + 1 >= events.len() * 3 / 4
                && replay
                    .at_close()
                    .is_some_and(|records| records.iter().any(|r| !r.is_empty()))
            {
                cut = Some(index + 1);
                break;
            }
        }
        let cut = cut.expect("a place to cut the feed just past a boundary");
        events.truncate(cut);

        // The first run's stop: the first event at or past a boundary after the middle of the
        // day. The event held back: one before that boundary, within the allowed lateness of
        // the stop (the latest such first), delivered once, that changes the figures offered at
        // close (many do not: an event counts where the contact or the status it settles
        // ends).
        let middle = events[events.len() / 2].time.0;
        let day_start = replay.processor.day_of(Timestamp(middle)).start.0;
        let once = |id: &str| events.iter().filter(|e| e.id == id).count() == 1;
        let late = (1..=8).find_map(|n| {
            let boundary = day_start + ((middle - day_start) / INTERVAL_MS + n) * INTERVAL_MS;
            let split = 1 + events.iter().position(|e| e.time.0 >= boundary)?;
            let newest = events[split - 1].time.0;
            (0..split - 1)
                .rev()
                .filter(|&j| {
                    let time = events[j].time.0;
                    newest - time <= 29_000 && once(&events[j].id)
                })
                .find_map(|j| {
                    let mut feed = events.clone();
                    let held = feed.remove(j);
                    feed.insert(split - 1, held);
                    let outcome = Replayed::of(config, &feed, split - 1);
                    outcome.corrects().then_some((feed, outcome))
                })
        });
        let (feed, outcome) =
            late.expect("an event before the boundary whose late delivery changes its interval");
        *events = feed;
        let Replayed {
            split,
            applied_first,
            captured_first,
            first_at_close,
            applied_all,
            totals,
            second_at_close,
            mut records,
        } = outcome;
        let first_boundary = totals[captured_first - 1].at.0;
        let last_boundary = totals[totals.len() - 1].at.0;

        let mut messages: BTreeMap<RecordKey, Vec<Message>> = BTreeMap::new();
        let message = |revision, settled, first_run, content: &IntervalRecord| Message {
            revision,
            settled,
            first_run,
            content: content.clone(),
        };
        let provisional: BTreeMap<&RecordKey, &IntervalRecord> =
            first_at_close.iter().map(|r| (&r.key, r)).collect();
        for last in records.values() {
            let key = &last.key;
            let list = match provisional.get(key) {
                // Offered at its close by the first run, final in the second.
                Some(offered) if !offered.is_empty() => {
                    let mut list = vec![message(1, false, true, offered)];
                    if *offered != last {
                        list.push(message(2, true, false, last));
                    }
                    list
                }
                _ if last.is_empty() => continue,
                // Final in the first run, or in the second.
                _ => vec![message(1, true, key.start_ms < first_boundary, last)],
            };
            messages.insert(key.clone(), list);
        }
        for offered in second_at_close {
            if !offered.is_empty() {
                messages.insert(
                    offered.key.clone(),
                    vec![message(1, false, false, &offered)],
                );
            }
            records.insert(offered.key.clone(), offered);
        }
        Expected {
            split,
            applied_first,
            applied_all,
            first_boundary,
            last_boundary,
            records,
            messages,
        }
    }

    /// Messages each run must store.
    fn stored_by(&self, first_run: bool) -> u64 {
        self.messages
            .values()
            .flatten()
            .filter(|m| m.first_run == first_run)
            .count() as u64
    }
}

/// The messages in both history streams: per stream, its last sequence.
async fn stream_state(context: &Context, streams: &[String; 2]) -> Option<[u64; 2]> {
    let mut state = [0; 2];
    for (last, name) in state.iter_mut().zip(streams) {
        let mut stream = context.get_stream(name).await.ok()?;
        *last = stream.info().await.ok()?.state.last_sequence;
    }
    Some(state)
}

/// What a run stored, seen once its history stopped growing.
#[derive(Debug)]
struct Run {
    /// `vigie_history_records_published_total`.
    published: u64,
    /// The last sequence of each history stream.
    stored: [u64; 2],
}

/// Starts `vigie serve`, waits until it applied `applied` events, counts at least
/// `at_least` records published and its history has not changed for [`STABLE`] (or, short of
/// `at_least`, for [`GIVE_UP`]: the checks then say what is missing), then stops it with
/// SIGTERM and checks that it exited cleanly.
async fn run_until_settled(
    args: &[&str],
    dir: &Path,
    port: u16,
    context: &Context,
    streams: &[String; 2],
    applied: u64,
    at_least: u64,
) -> Run {
    let mut child = serve(args, dir);
    let deadline = Instant::now() + WAIT;
    let mut last: Option<(u64, u64, [u64; 2])> = None;
    let mut unchanged_since = Instant::now();
    let run = loop {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {applied} events applied and at least {at_least} records \
             published, then {STABLE:?} without change; last seen (applied, published, stream \
             sequences): {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(text) = metrics(port).await else {
            continue;
        };
        let (Some(now_applied), Some(published), Some(stored)) = (
            metric(&text, "vigie_events_applied_total"),
            metric(&text, "vigie_history_records_published_total"),
            stream_state(context, streams).await,
        ) else {
            continue;
        };
        let seen = (now_applied as u64, published as u64, stored);
        if last != Some(seen) {
            last = Some(seen);
            unchanged_since = Instant::now();
            continue;
        }
        let still = unchanged_since.elapsed();
        if seen.0 >= applied && (still >= GIVE_UP || seen.1 >= at_least && still >= STABLE) {
            assert_eq!(
                seen.0, applied,
                "events applied by the service, against the offline processor"
            );
            break Run {
                published: seen.1,
                stored,
            };
        }
    };
    signal(child.id(), Signal::TERM);
    let output = tokio::task::spawn_blocking(move || wait_within(&mut child, WAIT))
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "vigie serve did not stop cleanly:\n{log}"
    );
    run
}

/// A stored record and where it was stored.
#[derive(Debug)]
struct Stored {
    stream: usize,
    sequence: u64,
    record: IntervalRecord,
}

/// Every message of `stream` (index `index` of the streams), read raw with an ordered
/// consumer; each must be a record on its own subject with its own message id.
async fn read_all(context: &Context, name: &str, index: usize) -> Vec<Stored> {
    within(&format!("reading stream {name}"), WAIT, async {
        let consumer = context
            .create_consumer_on_stream(
                OrderedConfig {
                    deliver_policy: DeliverPolicy::All,
                    ..OrderedConfig::default()
                },
                name,
            )
            .await
            .unwrap_or_else(|e| panic!("an ordered consumer on {name}: {e}"));
        let mut stored = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return stored;
        }
        let mut messages = consumer.messages().await.unwrap();
        while let Some(message) = messages.next().await {
            let message = message.unwrap_or_else(|e| panic!("reading {name}: {e}"));
            let info = message.info().unwrap();
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let record: IntervalRecord =
                serde_json::from_slice(&message.payload).unwrap_or_else(|e| {
                    panic!(
                        "message {sequence} of {name} is not a record ({e}): {}",
                        String::from_utf8_lossy(&message.payload)
                    )
                });
            assert_eq!(
                message.subject.as_str(),
                record_subject(&record.key),
                "the subject of message {sequence} of {name}"
            );
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned());
            assert_eq!(
                id.as_deref(),
                Some(message_id(&record.key, record.revision).as_str()),
                "the message id of message {sequence} of {name}"
            );
            stored.push(Stored {
                stream: index,
                sequence,
                record,
            });
            if pending == 0 {
                break;
            }
        }
        stored
    })
    .await
}

/// Shrinks the duplicate window of `name` to one second: a record published again by the
/// second run is then stored again, as it would be after a stop longer than the two minutes
/// of the window. No duplicate must rest on JetStream dropping it.
async fn shrink_duplicate_window(context: &Context, name: &str) {
    within(&format!("updating stream {name}"), WAIT, async {
        let mut stream = context.get_stream(name).await.unwrap();
        let mut config: jetstream::stream::Config = stream.info().await.unwrap().config.clone();
        config.duplicate_window = Duration::from_secs(1);
        let updated = context
            .update_stream(config)
            .await
            .unwrap_or_else(|e| panic!("shrinking the duplicate window of {name}: {e}"));
        assert_eq!(
            updated.config.duplicate_window,
            Duration::from_secs(1),
            "the duplicate window of {name}"
        );
    })
    .await;
}

/// Fails with every problem found (the first ones in full), if any.
fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s); the first:\n{}",
        problems.len(),
        problems
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_day_leaves_the_interval_streams_without_gaps_or_duplicates() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, mut events) = day();
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let expected = Expected::new(&config, &mut events);
    let (b1, b2) = (expected.first_boundary, expected.last_boundary);
    let streams = [
        config.history.stream.clone(),
        config.history.advisor_stream.clone(),
    ];

    let (_client, context) = server.connect_with_stream().await;
    let publisher = PublisherConfig::new(&server.nats_config().stream);
    let port = free_port();
    let args = [
        "--config",
        "vigie.toml",
        "--nats",
        &server.url(),
        "--http",
        &format!("127.0.0.1:{port}"),
    ];

    // The morning, up to just past a boundary: the first run stores every interval it
    // finalised, and the one that closed last as it stands.
    publish_events(&context, publisher.clone(), &events[..expected.split], WAIT).await;
    let first = run_until_settled(
        &args,
        dir.path(),
        port,
        &context,
        &streams,
        expected.applied_first,
        expected.stored_by(true),
    )
    .await;
    for name in &streams {
        shrink_duplicate_window(&context, name).await;
    }

    // The rest of the day: the second run restores the snapshot the first saved at its stop
    // (the whole morning), applies the rest of the day, then goes live.
    publish_events(&context, publisher, &events[expected.split..], WAIT).await;
    let second = run_until_settled(
        &args,
        dir.path(),
        port,
        &context,
        &streams,
        expected.applied_all - expected.applied_first,
        expected.stored_by(false),
    )
    .await;

    let mut stored = read_all(&context, &streams[0], 0).await;
    stored.extend(read_all(&context, &streams[1], 1).await);
    let in_stream = |index: usize| stored.iter().filter(|s| s.stream == index).count() as u64;
    assert_eq!(
        [in_stream(0), in_stream(1)],
        second.stored,
        "messages read from {streams:?}, against the streams' last sequences (nothing was \
         stored after the second run's history settled, not even while it stopped)"
    );
    let mut by_key: BTreeMap<&RecordKey, Vec<&Stored>> = BTreeMap::new();
    for message in &stored {
        let advisor = message.record.key.kind == ScopeKind::Advisor;
        assert_eq!(
            message.stream,
            usize::from(advisor),
            "{} stored in {}",
            describe(&message.record.key),
            streams[message.stream]
        );
        by_key.entry(&message.record.key).or_default().push(message);
    }
    let by_first_run = |m: &Stored| m.sequence <= first.stored[m.stream];

    // No duplicate: each key's messages are revisions 1, 2... in order, each with other figures
    // than the one before, and the first has activity.
    let mut duplicates = Vec::new();
    for (key, messages) in &by_key {
        let revisions: Vec<u32> = messages.iter().map(|m| m.record.revision).collect();
        if revisions != (1..=messages.len() as u32).collect::<Vec<_>>() {
            let runs: Vec<&str> = messages
                .iter()
                .map(|m| if by_first_run(m) { "first" } else { "second" })
                .collect();
            duplicates.push(format!(
                "{}: revisions {revisions:?} in stream order, stored by the {runs:?} run",
                describe(key),
            ));
        }
        for pair in messages.windows(2) {
            if content(&pair[0].record) == content(&pair[1].record) {
                duplicates.push(format!(
                    "{}: revision {} repeats the figures of revision {}",
                    describe(key),
                    pair[1].record.revision,
                    pair[0].record.revision
                ));
            }
        }
        if messages[0].record.is_empty() {
            duplicates.push(format!(
                "{}: its first revision has no activity (published for nothing)",
                describe(key)
            ));
        }
    }
    report("duplicates in the history streams", &duplicates);

    // No gap, exact figures: the highest revision of each key is the offline record of its
    // interval, every offline record with activity is stored, and nothing else is.
    let mut wrong = Vec::new();
    for (key, messages) in &by_key {
        let latest = &messages[messages.len() - 1].record;
        match expected.records.get(*key) {
            None => wrong.push(format!(
                "{}: stored, but the offline processor has no such record: {latest:?}",
                describe(key)
            )),
            Some(want) if content(latest) != *want => wrong.push(format!(
                "{} (revision {}): the figures differ from the offline ones:\n{}",
                describe(key),
                latest.revision,
                diff(latest, want)
            )),
            Some(_) => {}
        }
    }
    for want in expected.records.values() {
        if !want.is_empty() && !by_key.contains_key(&want.key) {
            wrong.push(format!(
                "{}: missing from the streams (a gap); expected {want:?}",
                describe(&want.key)
            ));
        }
    }
    report("the history streams against the offline records", &wrong);

    // Every record a run counted as published is a message of its own: none was dropped by
    // JetStream as a copy of a message id already stored.
    assert_eq!(
        first.published,
        first.stored[0] + first.stored[1],
        "records the first run published, against messages it added to {streams:?}"
    );
    assert_eq!(
        second.published,
        second.stored[0] + second.stored[1] - first.stored[0] - first.stored[1],
        "records the second run published, against messages it added to {streams:?}"
    );

    // The second run stored nothing of what the first had. The intervals the first run
    // finalised have one message, revision 1, final, stored by the first run: it was
    // recovering, not live, when they closed. The interval that closed last in the first run
    // was offered at its close; the second run stores a correction only where late events
    // changed it. The second run stores the later intervals once, final, and the one that
    // closed last as it stands.
    let mut misplaced = Vec::new();
    for (key, want) in &expected.messages {
        let got: Vec<Message> = by_key
            .get(key)
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| Message {
                        revision: m.record.revision,
                        settled: m.record.settled,
                        first_run: by_first_run(m),
                        content: content(&m.record),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if got != *want {
            let shape = |list: &[Message]| -> Vec<(u32, bool, &str)> {
                list.iter()
                    .map(|m| {
                        (
                            m.revision,
                            m.settled,
                            if m.first_run { "first" } else { "second" },
                        )
                    })
                    .collect()
            };
            let figures = got
                .iter()
                .zip(want)
                .find(|(g, w)| g.content != w.content)
                .map(|(g, w)| {
                    format!(
                        "\nrevision {}:\n{}",
                        g.revision,
                        diff(&g.content, &w.content)
                    )
                })
                .unwrap_or_default();
            misplaced.push(format!(
                "{}: stored (revision, settled, run) {:?}, expected {:?}{figures}",
                describe(key),
                shape(&got),
                shape(want),
            ));
        }
    }
    for key in by_key.keys() {
        if !expected.messages.contains_key(*key) {
            misplaced.push(format!("{}: stored, none expected", describe(key)));
        }
    }
    report(
        "messages against the run that should have stored them",
        &misplaced,
    );
    assert_eq!(
        (first.published, second.published),
        (expected.stored_by(true), expected.stored_by(false)),
        "records published by the first run and the second"
    );

    // The scenario did what it says: the first run stopped mid-day, both runs offered an
    // interval at its close, and late events corrected the first run's.
    let revisions = |start_ms: i64| {
        expected
            .messages
            .iter()
            .filter(|(key, _)| key.start_ms == start_ms)
            .map(|(_, list)| list.len())
            .collect::<Vec<_>>()
    };
    assert!(b1 < b2, "the first run stopped before the day's end");
    assert!(
        revisions(b1).contains(&2) && revisions(b1).contains(&1),
        "the first run's last interval is partly corrected: {:?}",
        revisions(b1)
    );
    assert!(
        !revisions(b2).is_empty(),
        "the second run offered an interval at its close"
    );
}
