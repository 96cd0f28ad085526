//! The `History` service served in process, over an engine on a test clock whose interval
//! records go to a memory store as `vigie serve` sends them, plus records of an earlier day
//! planted in the same store:
//! - `ListIntervals` sums periods of 15 minutes, 30 minutes, an hour and a day with ratios
//!   recomputed from the summed counts, keeps the highest revision, fills empty periods, limits
//!   ranges, and adds the interval in progress so that the day adds up to the live view;
//! - `GetTimesheet` answers rows, and CSV and JSON equal to `vigie_history::timesheet`'s;
//! - `GetReport` renders HTML, Markdown and CSV with their content types, the planted day
//!   exactly as `vigie_history::report` renders it, today's with the interval in progress, the
//!   team's alerts and its notices in force;
//! - `ListAlertHistory` lists today's alerts with their transitions, and refuses other days;
//! - the access matrix: admin, manager of the site and of another site, supervisor of the team
//!   and of another team, advisor self and other, for each RPC.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigie_alerts::{AlertEngine, RuleConfig};
use vigie_api::history_store::{
    AlertRecord, HistoryError, HistoryStore, MemoryHistory, NoticeRecord,
};
use vigie_api::{Api, ApiConfig, ApiMetrics, AuthConfig, HistoryService};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, ProcessingConfig, Processor, QueueConfig, SiteConfig,
    TeamConfig, Timestamp, decode_json,
};
use vigie_engine::{Clock, Engine, EngineConfig, EngineHandle, EngineMetrics};
use vigie_history::report::{Language, ReportInput, ReportTargets};
use vigie_history::timesheet::{timesheets, to_csv, to_json};
use vigie_history::{IntervalRecord, Publisher, ScopeKind};
use vigie_proto::v1 as pb;
use vigie_proto::v1::history_client::HistoryClient;
use vigie_proto::v1::history_server::History;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_proto::v1::supervision_client::SupervisionClient;

const SITE: &str = "paris";
const WAIT: Duration = Duration::from_secs(30);
const MINUTE: i64 = 60_000;
const INTERVAL: i64 = 15 * MINUTE;
/// The day of the planted records.
const PLANTED: &str = "2026-02-27";
/// The engine's day.
const TODAY: &str = "2026-03-02";

fn ms(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).unwrap().0
}

fn today(time: &str) -> i64 {
    ms(&format!("{TODAY}T{time}Z"))
}

fn planted(time: &str) -> i64 {
    ms(&format!("{PLANTED}T{time}Z"))
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn wire_time(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn millis(time: &prost_types::Timestamp) -> i64 {
    time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
}

/// Team A (a1, a2) serves queue q-a; team B (b1, b2) serves q-b. UTC, days from midnight.
fn site() -> SiteConfig {
    let team = |id: &str, advisors: [&str; 2], queue: &str| TeamConfig {
        id: id.into(),
        name: None,
        advisors: advisors.map(str::to_owned).to_vec(),
        queues: vec![queue.into()],
        sl_variant: None,
    };
    SiteConfig {
        queues: vec![
            QueueConfig::with_defaults("q-a"),
            QueueConfig::with_defaults("q-b"),
        ],
        teams: vec![
            team("team-a", ["a1", "a2"], "q-a"),
            team("team-b", ["b1", "b2"], "q-b"),
        ],
        ..SiteConfig::with_defaults(SITE)
    }
}

/// A pause longer than a minute, a caller waiting more than 30 s.
fn rules() -> Vec<RuleConfig> {
    #[derive(serde::Deserialize)]
    struct File {
        alert_rule: Vec<RuleConfig>,
    }
    let file: File = toml::from_str(&format!(
        r#"
        [[alert_rule]]
        site = "{SITE}"
        id = "pause"
        name = "Pause too long"
        scope = "every_advisor"
        metric = "pause_duration"
        comparator = "above"
        warning = "1m"

        [[alert_rule]]
        site = "{SITE}"
        id = "wait"
        name = "Caller waiting too long"
        scope = "every_queue"
        metric = "longest_wait"
        comparator = "above"
        warning = "30s"
        "#
    ))
    .unwrap();
    file.alert_rule
}

fn event(n: usize, time: &str, body: &str) -> Event {
    let line = format!(r#"{{{body},"id":"e{n}","time":"{TODAY}T{time}Z","site":"{SITE}"}}"#);
    decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
}

fn contact(kind: &str, contact: &str, queue: &str, advisor: Option<&str>) -> String {
    let advisor = advisor.map_or(String::new(), |a| format!(r#","advisor":"{a}""#));
    format!(
        r#""type":"contact.{kind}","contact":"{contact}","queue":"{queue}","channel":"voice"{advisor}"#
    )
}

/// 09:00: everyone logs in, a1 takes a break (until 09:20), c1 waits in q-b (until 09:05).
fn opening() -> Vec<Event> {
    let mut bodies = Vec::new();
    for (advisor, team) in [
        ("a1", "team-a"),
        ("a2", "team-a"),
        ("b1", "team-b"),
        ("b2", "team-b"),
    ] {
        bodies.push((
            "09:00:00",
            format!(r#""type":"advisor.login","advisor":"{advisor}","team":"{team}""#),
        ));
    }
    bodies.push((
        "09:00:00",
        r#""type":"advisor.state","advisor":"a1","state":"pause","reason":"break""#.to_owned(),
    ));
    bodies.push(("09:00:00", contact("queued", "c1", "q-b", None)));
    bodies
        .iter()
        .enumerate()
        .map(|(n, (time, body))| event(n, time, body))
        .collect()
}

/// The rest of the morning. In q-a: c2 answered in 10 s (09:10), c3 in 60 s (09:26), c4
/// abandoned after 30 s (09:40), c5 answered in 5 s (10:01), c6 waiting since 10:06:50 (not
/// long enough for an alert at 10:07).
fn morning() -> Vec<Event> {
    let bodies = [
        ("09:05:00", contact("answered", "c1", "q-b", Some("b1"))),
        ("09:08:00", contact("ended", "c1", "q-b", Some("b1"))),
        ("09:09:00", contact("completed", "c1", "q-b", Some("b1"))),
        ("09:10:00", contact("queued", "c2", "q-a", None)),
        ("09:10:10", contact("answered", "c2", "q-a", Some("a2"))),
        ("09:14:00", contact("ended", "c2", "q-a", Some("a2"))),
        ("09:15:00", contact("completed", "c2", "q-a", Some("a2"))),
        (
            "09:20:00",
            r#""type":"advisor.state","advisor":"a1","state":"available""#.to_owned(),
        ),
        ("09:25:00", contact("queued", "c3", "q-a", None)),
        ("09:26:00", contact("answered", "c3", "q-a", Some("a1"))),
        ("09:30:00", contact("ended", "c3", "q-a", Some("a1"))),
        ("09:31:00", contact("completed", "c3", "q-a", Some("a1"))),
        ("09:40:00", contact("queued", "c4", "q-a", None)),
        ("09:40:30", contact("abandoned", "c4", "q-a", None)),
        ("10:01:00", contact("queued", "c5", "q-a", None)),
        ("10:01:05", contact("answered", "c5", "q-a", Some("a2"))),
        ("10:03:00", contact("ended", "c5", "q-a", Some("a2"))),
        ("10:04:00", contact("completed", "c5", "q-a", Some("a2"))),
        ("10:06:50", contact("queued", "c6", "q-a", None)),
    ];
    bodies
        .iter()
        .enumerate()
        .map(|(n, (time, body))| event(100 + n, time, body))
        .collect()
}

/// A record of the planted day, built from JSON as a store reads it.
fn record(
    kind: &str,
    id: &str,
    time: &str,
    revision: u32,
    body: serde_json::Value,
) -> IntervalRecord {
    let start = planted(time);
    let mut value = serde_json::json!({
        "site": SITE,
        "kind": kind,
        "id": id,
        "start_ms": start,
        "end_ms": start + INTERVAL,
        "date": PLANTED,
        "revision": revision,
        "settled": true,
        "handling": {},
    });
    let object = value.as_object_mut().unwrap();
    for (key, field) in body.as_object().unwrap() {
        object.insert(key.clone(), field.clone());
    }
    serde_json::from_value(value).unwrap()
}

fn queue_flow(answered: u64, within: u64, abandoned: u64) -> serde_json::Value {
    serde_json::json!({
        "flow": {
            "offered": answered + abandoned,
            "answered": answered,
            "answered_within_threshold": within,
            "abandoned": abandoned,
            "wait_answered_ms": answered as i64 * 12_000,
        },
        "handling": { "handled": answered, "talk_ms": answered as i64 * 180_000 },
        "sl_variant": "offered",
        "sl_threshold_s": 20.0,
        "sl_target": 0.8,
    })
}

fn advisor_times(
    team: &str,
    logged_in_min: i64,
    pause_min: i64,
    first_login: Option<i64>,
) -> serde_json::Value {
    let mut times = serde_json::json!({
        "logged_in_ms": logged_in_min * MINUTE,
        "available_ms": (logged_in_min - pause_min) * MINUTE / 2,
        "handling_ms": (logged_in_min - pause_min) * MINUTE / 2,
        "pauses": if pause_min > 0 {
            serde_json::json!([{ "reason": "break", "time_ms": pause_min * MINUTE, "count": 1 }])
        } else {
            serde_json::json!([])
        },
    });
    if let Some(login) = first_login {
        times["first_login_ms"] = serde_json::json!(login);
    }
    serde_json::json!({
        "team": team,
        "handling": { "handled": 2, "talk_ms": 300_000, "acw_ms": 60_000 },
        "times": times,
    })
}

/// `record` listing abandons `(contact, time, wait ms, short)`.
fn with_abandons(
    mut record: IntervalRecord,
    abandons: &[(&str, &str, i64, bool)],
) -> IntervalRecord {
    record.abandoned_contacts = abandons
        .iter()
        .map(
            |&(contact, time, wait_ms, short)| vigie_history::AbandonedRecord {
                abandoned_at_ms: planted(time),
                contact: contact.into(),
                channel: "voice".into(),
                wait_ms,
                short,
            },
        )
        .collect();
    record
}

/// q-a: 14:00 9 of 10 within T; 14:15 corrected to 0 of 2 (revision 2, which also withdraws
/// an abandon listed at close); 14:30 8 of 8 with two abandons, x1 and x2 (short). team-a has the same flow; its advisors a1 (two intervals) and a2, and b1 of
/// team-b, have time records.
fn planted_records() -> Vec<IntervalRecord> {
    vec![
        record("queue", "q-a", "14:00:00", 1, queue_flow(10, 9, 0)),
        // Listed at close, withdrawn by the correction.
        with_abandons(
            record("queue", "q-a", "14:15:00", 1, queue_flow(2, 2, 0)),
            &[("withdrawn", "14:20:00", 10_000, false)],
        ),
        record("queue", "q-a", "14:15:00", 2, queue_flow(2, 0, 0)),
        with_abandons(
            record("queue", "q-a", "14:30:00", 1, queue_flow(8, 8, 2)),
            &[
                ("x1", "14:31:00", 42_000, false),
                ("x2", "14:44:59", 3_000, true),
            ],
        ),
        record("team", "team-a", "14:00:00", 1, queue_flow(10, 9, 0)),
        record("team", "team-a", "14:15:00", 1, queue_flow(2, 0, 0)),
        record(
            "advisor",
            "a1",
            "14:00:00",
            1,
            advisor_times("team-a", 15, 5, Some(planted("14:02:00"))),
        ),
        record(
            "advisor",
            "a1",
            "14:15:00",
            1,
            advisor_times("team-a", 15, 0, None),
        ),
        record(
            "advisor",
            "a2",
            "14:00:00",
            1,
            advisor_times("team-a", 10, 0, Some(planted("14:05:00"))),
        ),
        record(
            "advisor",
            "b1",
            "14:00:00",
            1,
            advisor_times("team-b", 15, 0, Some(planted("14:00:00"))),
        ),
    ]
}

/// Adds the bearer token to each request.
#[derive(Clone)]
struct AddToken(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for AddToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = HistoryClient<InterceptedService<Channel, AddToken>>;

struct Token {
    name: &'static str,
    secret: String,
    entry: String,
}

fn token(name: &'static str, scope: &str) -> Token {
    let secret = vigie_api::auth::generate_token();
    let entry = format!(
        "[[token]]\nsha256 = \"{}\"\nsubject = \"{name}\"\n{scope}\n",
        vigie_api::auth::hash_token(&secret)
    );
    Token {
        name,
        secret,
        entry,
    }
}

/// The callers of the access matrix.
const CALLERS: [&str; 7] = [
    "admin",
    "manager",
    "other-manager",
    "supervisor-a",
    "supervisor-b",
    "advisor-a1",
    "advisor-a2",
];

struct Fixture {
    address: SocketAddr,
    handle: EngineHandle,
    now: Arc<AtomicI64>,
    store: Arc<MemoryHistory>,
    tokens: Vec<Token>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Fixture {
    /// The engine at 09:00 with the alert rules, its records stored in a memory store as the
    /// history task does, the API with authentication, and the planted day in the store.
    async fn start() -> Fixture {
        Fixture::start_holding_back(|_| false).await
    }

    /// [`Fixture::start`], with the records `held_back` accepts never reaching the store, as
    /// when the history task has not stored them yet.
    async fn start_holding_back(held_back: fn(&IntervalRecord) -> bool) -> Fixture {
        let tokens = vec![
            token("admin", "role = \"admin\""),
            token(
                "manager",
                &format!("role = \"manager\"\nsites = [\"{SITE}\"]"),
            ),
            token(
                "other-manager",
                "role = \"manager\"\nsites = [\"elsewhere\"]",
            ),
            token(
                "supervisor-a",
                &format!("role = \"supervisor\"\nsites = [\"{SITE}\"]\nteams = [\"team-a\"]"),
            ),
            token(
                "supervisor-b",
                &format!("role = \"supervisor\"\nsites = [\"{SITE}\"]\nteams = [\"team-b\"]"),
            ),
            token(
                "advisor-a1",
                &format!("role = \"advisor\"\nsites = [\"{SITE}\"]\nadvisor = \"a1\""),
            ),
            token(
                "advisor-a2",
                &format!("role = \"advisor\"\nsites = [\"{SITE}\"]\nadvisor = \"a2\""),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        std::fs::write(
            &file,
            tokens.iter().map(|t| t.entry.as_str()).collect::<String>(),
        )
        .unwrap();
        let config = ApiConfig {
            auth: AuthConfig {
                tokens_file: Some(file),
                ..AuthConfig::default()
            },
            ..ApiConfig::default()
        };

        let mut registry = prometheus_client::registry::Registry::default();
        let now = Arc::new(AtomicI64::new(today("09:00:00")));
        let clock_time = now.clone();
        let clock: Clock = Arc::new(move || Timestamp(clock_time.load(Ordering::SeqCst)));
        let site = site();
        let processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
        let (engine, handle) = Engine::new(
            EngineConfig {
                tick: vigie_core::config::HumanDuration(Duration::from_millis(20)),
                refresh: vigie_core::config::HumanDuration(Duration::from_millis(200)),
                ..EngineConfig::default()
            },
            processor,
            EngineMetrics::new(&mut registry),
            clock,
        );
        let alerts = AlertEngine::new(SITE, &rules()).unwrap();
        let (history_tx, mut history_rx) = tokio::sync::mpsc::channel(1024);
        let engine = engine
            .with_alerts(BTreeMap::from([(SITE.to_owned(), alerts)]), None)
            .with_history(history_tx);
        tokio::spawn(engine.run());

        // What the binary's history task does: keep what changes, store it.
        let store = Arc::new(MemoryHistory::default());
        let writer = store.clone();
        tokio::spawn(async move {
            let mut publisher = Publisher::new();
            while let Some(batch) = history_rx.recv().await {
                let mut records = publisher.admit(batch.records, batch.settled);
                records.retain(|record| !held_back(record));
                writer.publish(records).await.unwrap();
            }
        });
        store.publish(planted_records()).await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let changes = Arc::new(vigie_api::FileChangeStore::new(dir.path().to_owned()));
        let api = Api::new(
            config,
            handle.clone(),
            changes,
            ApiMetrics::new(&mut registry),
            shutdown.clone(),
        )
        .unwrap()
        .with_history(store.clone());
        let (_ready, ready_rx) = tokio::sync::watch::channel(true);
        tokio::spawn(api.serve(listener, ready_rx));
        let fixture = Fixture {
            address,
            handle,
            now,
            store,
            tokens,
            shutdown,
            _dir: dir,
        };
        fixture.morning().await;
        fixture
    }

    /// Feeds the morning: the opening, alerts firing at 09:02, the rest up to 10:06:50, the
    /// clock at 10:07; returns once the engine is at 10:07 and the store holds the day's
    /// intervals up to 10:00.
    async fn morning(&self) {
        self.handle.apply(opening()).await.unwrap();
        self.now.store(today("09:02:00"), Ordering::SeqCst);
        let admin = self.client("admin").await;
        let alerts = |admin: &Client| {
            let mut admin: Client = admin.clone();
            async move {
                admin
                    .list_alert_history(pb::ListAlertHistoryRequest {
                        site: SITE.into(),
                        date: String::new(),
                    })
                    .await
                    .ok()
                    .map(tonic::Response::into_inner)
            }
        };
        self.until("the alerts fire at 09:02", || async {
            alerts(&admin)
                .await
                .filter(|a| a.alerts.len() == 2)
                .map(|_| ())
        })
        .await;
        self.handle.apply(morning()).await.unwrap();
        self.now.store(today("10:07:00"), Ordering::SeqCst);
        self.until("the engine's clock is at 10:07", || async {
            alerts(&admin)
                .await
                .filter(|a| {
                    a.as_of
                        .as_ref()
                        .is_some_and(|t| millis(t) == today("10:07:00"))
                })
                .map(|_| ())
        })
        .await;
        let store = self.store.clone();
        self.until("the records of 09:45 are stored", || {
            let store = store.clone();
            async move {
                let site = store
                    .query(
                        SITE,
                        ScopeKind::Site,
                        SITE,
                        today("09:45:00"),
                        today("10:00:00"),
                    )
                    .await
                    .unwrap();
                (!site.is_empty()).then_some(())
            }
        })
        .await;
    }

    /// The flow counts of a queue's live view of today, as the admin reads them.
    async fn live_flow_today(&self, queue: &str) -> pb::FlowIndicators {
        let view =
            SupervisionClient::with_interceptor(self.channel().await, self.add_token("admin"))
                .get_queue_view(pb::GetQueueViewRequest {
                    site: SITE.into(),
                    queue: queue.into(),
                    window: pb::Window::Today.into(),
                })
                .await
                .unwrap()
                .into_inner();
        view.indicators.unwrap().flow.unwrap()
    }

    async fn until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<()>>,
    {
        let deadline = Instant::now() + WAIT;
        while check().await.is_none() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn header(&self, name: &str) -> MetadataValue<tonic::metadata::Ascii> {
        let secret = &self.tokens.iter().find(|t| t.name == name).unwrap().secret;
        format!("Bearer {secret}").parse().unwrap()
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn add_token(&self, name: &str) -> AddToken {
        AddToken(self.header(name))
    }

    async fn client(&self, name: &str) -> Client {
        HistoryClient::with_interceptor(self.channel().await, self.add_token(name))
    }
}

fn scope(kind: pb::HistoryScopeKind, id: &str) -> Option<pb::HistoryScope> {
    Some(pb::HistoryScope {
        kind: kind.into(),
        id: id.to_owned(),
    })
}

fn planted_range(
    kind: pb::HistoryScopeKind,
    id: &str,
    granularity: pb::Granularity,
) -> pb::ListIntervalsRequest {
    pb::ListIntervalsRequest {
        site: SITE.into(),
        scope: scope(kind, id),
        from_date: PLANTED.into(),
        to_date: PLANTED.into(),
        granularity: granularity.into(),
        ..pb::ListIntervalsRequest::default()
    }
}

async fn periods(client: &mut Client, request: pb::ListIntervalsRequest) -> Vec<pb::Period> {
    client
        .list_intervals(request)
        .await
        .unwrap()
        .into_inner()
        .periods
}

fn service_levels(periods: &[pb::Period]) -> Vec<Option<f64>> {
    periods
        .iter()
        .map(|p| p.indicators.as_ref().unwrap().service_level)
        .collect()
}

fn starts(periods: &[pb::Period]) -> Vec<i64> {
    periods
        .iter()
        .map(|p| millis(p.start.as_ref().unwrap()))
        .collect()
}

fn flow(period: &pb::Period) -> pb::PeriodFlow {
    period.flow.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periods_sum_counts_and_recompute_ratios_at_every_granularity() {
    let fixture = Fixture::start().await;
    let mut manager = fixture.client("manager").await;
    let queue = pb::HistoryScopeKind::Queue;

    let quarters = periods(
        &mut manager,
        planted_range(queue, "q-a", pb::Granularity::Granularity15m),
    )
    .await;
    assert_eq!(
        starts(&quarters),
        [
            planted("14:00:00"),
            planted("14:15:00"),
            planted("14:30:00")
        ]
    );
    // The correction (revision 2: none within T) replaces the first version.
    assert_eq!(service_levels(&quarters), [Some(0.9), Some(0.0), Some(0.8)]);
    let revisions: Vec<u32> = quarters.iter().map(|p| p.revision).collect();
    assert_eq!(revisions, [1, 2, 1]);
    assert!(
        quarters
            .iter()
            .all(|p| p.settled && !p.partial && p.intervals == 1)
    );
    assert_eq!(quarters[0].local_start, "2026-02-27T14:00:00+00:00");
    assert_eq!(quarters[0].date, PLANTED);
    let first = &quarters[0];
    assert_eq!(flow(first).answered, 10);
    assert_eq!(flow(first).wait_answered, 120.0);
    let indicators = first.indicators.as_ref().unwrap();
    assert_eq!(indicators.asa, Some(12.0));
    assert_eq!(indicators.handling.as_ref().unwrap().aht, Some(180.0));
    assert_eq!(first.sl_variant, i32::from(pb::SlVariant::Offered));
    assert_eq!(
        (first.sl_threshold, first.sl_target),
        (Some(20.0), Some(0.8))
    );

    // Half hours: (9 + 0) / (10 + 2); then 8 / (8 + 2).
    let halves = periods(
        &mut manager,
        planted_range(queue, "q-a", pb::Granularity::Granularity30m),
    )
    .await;
    assert_eq!(starts(&halves), [planted("14:00:00"), planted("14:30:00")]);
    assert_eq!(service_levels(&halves), [Some(0.75), Some(0.8)]);
    assert_eq!(halves[0].intervals, 2);
    assert_eq!(halves[0].revision, 0, "revisions are for 15-minute periods");

    // The hour and the day: 17 within T of 22, not the mean of the quarters (0.567).
    for granularity in [pb::Granularity::Granularity1h, pb::Granularity::Day] {
        let whole = periods(&mut manager, planted_range(queue, "q-a", granularity)).await;
        assert_eq!(whole.len(), 1, "{granularity:?}");
        assert_eq!(
            service_levels(&whole),
            [Some(17.0 / 22.0)],
            "{granularity:?}"
        );
        let flow = flow(&whole[0]);
        assert_eq!((flow.answered, flow.abandoned), (20, 2));
        let abandon_rate = whole[0].indicators.as_ref().unwrap().abandon_rate;
        assert_eq!(abandon_rate, Some(2.0 / 22.0));
    }
    let day = periods(
        &mut manager,
        planted_range(queue, "q-a", pb::Granularity::Day),
    )
    .await;
    assert_eq!(starts(&day), [planted("00:00:00")]);
    assert_eq!(
        millis(day[0].end.as_ref().unwrap()),
        planted("00:00:00") + 86_400_000
    );

    // Empty periods on request: every hour of the day, zeros where nothing was recorded.
    let mut filled = planted_range(queue, "q-a", pb::Granularity::Granularity1h);
    filled.fill_empty = true;
    let hours = periods(&mut manager, filled).await;
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[13].intervals, 0);
    assert_eq!(flow(&hours[13]).offered, 0);
    assert_eq!(
        hours[13].indicators.as_ref().unwrap().service_level,
        None,
        "undefined, not 0"
    );
    assert_eq!(hours[14].intervals, 3);

    // A range by instants: only the records starting in it.
    let between = periods(
        &mut manager,
        pb::ListIntervalsRequest {
            site: SITE.into(),
            scope: scope(queue, "q-a"),
            from: Some(wire_time(planted("14:15:00"))),
            to: Some(wire_time(planted("14:30:00"))),
            ..pb::ListIntervalsRequest::default()
        },
    )
    .await;
    assert_eq!(starts(&between), [planted("14:15:00")]);

    // An advisor's periods carry times, no flow.
    let a1 = periods(
        &mut manager,
        planted_range(
            pb::HistoryScopeKind::Advisor,
            "a1",
            pb::Granularity::Granularity1h,
        ),
    )
    .await;
    let times = a1[0].times.as_ref().unwrap();
    assert_eq!((times.logged_in, times.pause), (1800.0, 300.0));
    assert_eq!(times.pauses[0].reason, "break");
    assert_eq!(
        millis(times.first_login.as_ref().unwrap()),
        planted("14:02:00")
    );
    assert!(a1[0].flow.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_checked_and_limited_by_granularity() {
    let fixture = Fixture::start().await;
    let mut admin = fixture.client("admin").await;
    let queue = pb::HistoryScopeKind::Queue;
    let code = |result: Result<tonic::Response<pb::ListIntervalsResponse>, tonic::Status>| {
        result
            .map(|_| ())
            .map_err(|status| (status.code(), status.message().to_owned()))
    };
    let long = |granularity: pb::Granularity, days: u64| pb::ListIntervalsRequest {
        site: SITE.into(),
        scope: scope(queue, "q-a"),
        from_date: (date(PLANTED) - chrono::Days::new(days - 1))
            .format("%Y-%m-%d")
            .to_string(),
        to_date: PLANTED.into(),
        granularity: granularity.into(),
        ..pb::ListIntervalsRequest::default()
    };
    code(
        admin
            .list_intervals(long(pb::Granularity::Granularity15m, 31))
            .await,
    )
    .unwrap();
    let (refused, message) = code(
        admin
            .list_intervals(long(pb::Granularity::Granularity15m, 32))
            .await,
    )
    .unwrap_err();
    assert_eq!(refused, Code::InvalidArgument);
    assert!(
        message.contains("at most 31 days at granularity 15m"),
        "{message}"
    );
    code(
        admin
            .list_intervals(long(pb::Granularity::Granularity1h, 90))
            .await,
    )
    .unwrap();
    code(admin.list_intervals(long(pb::Granularity::Day, 400)).await).unwrap();
    let (refused, _) =
        code(admin.list_intervals(long(pb::Granularity::Day, 401)).await).unwrap_err();
    assert_eq!(refused, Code::InvalidArgument);

    let bad = [
        (
            pb::ListIntervalsRequest {
                site: SITE.into(),
                ..pb::ListIntervalsRequest::default()
            },
            "scope",
        ),
        (
            pb::ListIntervalsRequest {
                site: SITE.into(),
                scope: scope(queue, ""),
                ..pb::ListIntervalsRequest::default()
            },
            "scope.id",
        ),
        (
            pb::ListIntervalsRequest {
                site: SITE.into(),
                scope: scope(queue, "q-a"),
                from_date: "27/02/2026".into(),
                ..pb::ListIntervalsRequest::default()
            },
            "from_date",
        ),
        (
            pb::ListIntervalsRequest {
                site: SITE.into(),
                scope: scope(queue, "q-a"),
                from_date: PLANTED.into(),
                to_date: "2026-02-26".into(),
                ..pb::ListIntervalsRequest::default()
            },
            "to",
        ),
        (
            pb::ListIntervalsRequest {
                site: SITE.into(),
                scope: scope(queue, "q-a"),
                from: Some(wire_time(planted("14:00:00"))),
                from_date: PLANTED.into(),
                ..pb::ListIntervalsRequest::default()
            },
            "from_date",
        ),
    ];
    for (request, field) in bad {
        let (refused, message) = code(admin.list_intervals(request).await).unwrap_err();
        assert_eq!(refused, Code::InvalidArgument, "{message}");
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{field}: {message}"
        );
    }

    // Nothing recorded: no period, not an error.
    let none = periods(
        &mut admin,
        planted_range(queue, "nowhere", pb::Granularity::Granularity15m),
    )
    .await;
    assert!(none.is_empty());
}

/// The sum of `field` over the periods.
fn total(periods: &[pb::Period], field: fn(&pb::PeriodFlow) -> u64) -> u64 {
    periods
        .iter()
        .filter_map(|p| p.flow.as_ref())
        .map(field)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_in_progress_completes_the_day_as_the_live_view_counts_it() {
    let fixture = Fixture::start().await;
    let mut admin = fixture.client("admin").await;
    let request = |include_current: bool, granularity: pb::Granularity| pb::ListIntervalsRequest {
        site: SITE.into(),
        scope: scope(pb::HistoryScopeKind::Queue, "q-a"),
        include_current,
        granularity: granularity.into(),
        ..pb::ListIntervalsRequest::default()
    };
    let answer = admin
        .list_intervals(request(true, pb::Granularity::Granularity15m))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(millis(answer.as_of.as_ref().unwrap()), today("10:07:00"));
    assert_eq!(millis(answer.from.as_ref().unwrap()), today("00:00:00"));
    assert_eq!(answer.time_zone, "UTC");
    let quarters = answer.periods;
    let current = quarters.last().unwrap();
    assert_eq!(millis(current.start.as_ref().unwrap()), today("10:00:00"));
    assert!(current.partial && !current.settled);
    assert_eq!(current.revision, 0);
    assert_eq!(millis(current.through.as_ref().unwrap()), today("10:07:00"));
    // c5, answered in 5 s at 10:01.
    assert_eq!(
        (
            flow(current).answered,
            flow(current).answered_within_threshold
        ),
        (1, 1)
    );
    assert!(
        quarters[..quarters.len() - 1]
            .iter()
            .all(|p| !p.partial && p.revision >= 1)
    );

    // Closed intervals by hand: c2 within T (09:00), c3 not (09:15), c4 abandoned (09:30).
    let closed: BTreeMap<i64, (u64, u64, u64)> = quarters
        .iter()
        .filter(|p| !p.partial)
        .filter_map(|p| {
            let f = p.flow?;
            (f.answered + f.abandoned > 0).then(|| {
                (
                    millis(p.start.as_ref().unwrap()),
                    (f.answered, f.answered_within_threshold, f.abandoned),
                )
            })
        })
        .collect();
    assert_eq!(
        closed,
        BTreeMap::from([
            (today("09:00:00"), (1, 1, 0)),
            (today("09:15:00"), (1, 0, 0)),
            (today("09:30:00"), (0, 0, 1)),
        ])
    );

    // The day's periods add up to the live view of today.
    let live = fixture.live_flow_today("q-a").await;
    assert_eq!(total(&quarters, |f| f.answered), live.answered);
    assert_eq!(total(&quarters, |f| f.abandoned), live.abandoned);
    assert_eq!(
        total(&quarters, |f| f.answered_within_threshold),
        live.answered_within_threshold
    );

    // The hour in progress is partial; its service level is recomputed from its counts.
    let hours = periods(&mut admin, request(true, pb::Granularity::Granularity1h)).await;
    let (nine, ten) = (&hours[hours.len() - 2], &hours[hours.len() - 1]);
    assert!(!nine.partial && ten.partial);
    assert_eq!(
        service_levels(std::slice::from_ref(nine)),
        [Some(1.0 / 3.0)]
    );

    // Without the interval in progress, the day stops at 10:00.
    let closed_only = periods(&mut admin, request(false, pb::Granularity::Granularity15m)).await;
    assert!(
        closed_only
            .iter()
            .all(|p| millis(p.start.as_ref().unwrap()) < today("10:00:00"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_just_closed_counts_in_the_day_before_its_record_is_stored() {
    // The 10:00 records never reach the store: as after a start, when the interval that
    // closed while the day was being recovered is recorded only once final, or while the
    // history task is behind.
    let fixture =
        Fixture::start_holding_back(|record| record.key.start_ms == today("10:00:00")).await;
    let admin = fixture.client("admin").await;
    // c6, waiting since 10:06:50, hangs up at 10:14:00; c7 comes at 10:15:05, in the next
    // interval. At 10:15:10 the 10:00 interval is closed, and the live figures can still
    // tell its start from its end (the allowed lateness runs to 10:15:30).
    let bodies = [
        ("10:14:00", contact("abandoned", "c6", "q-a", None)),
        ("10:15:05", contact("queued", "c7", "q-a", None)),
    ];
    fixture
        .handle
        .apply(
            bodies
                .iter()
                .enumerate()
                .map(|(n, (time, body))| event(200 + n, time, body))
                .collect(),
        )
        .await
        .unwrap();
    fixture.now.store(today("10:15:10"), Ordering::SeqCst);
    let request = pb::ListIntervalsRequest {
        site: SITE.into(),
        scope: scope(pb::HistoryScopeKind::Queue, "q-a"),
        include_current: true,
        granularity: pb::Granularity::Granularity15m.into(),
        ..pb::ListIntervalsRequest::default()
    };
    let answer = |admin: &Client| {
        let (mut admin, request) = (admin.clone(), request.clone());
        async move { admin.list_intervals(request).await.unwrap().into_inner() }
    };
    fixture
        .until("the engine's clock is at 10:15:10", || async {
            let answer = answer(&admin).await;
            answer
                .as_of
                .is_some_and(|t| millis(&t) == today("10:15:10"))
                .then_some(())
        })
        .await;
    let stored = fixture
        .store
        .query(
            SITE,
            ScopeKind::Queue,
            "q-a",
            today("10:00:00"),
            today("10:15:00"),
        )
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "the 10:00 record is stored already: {stored:?}"
    );

    let quarters = answer(&admin).await.periods;
    let at = |time: &str| {
        quarters
            .iter()
            .find(|p| millis(p.start.as_ref().unwrap()) == today(time))
            .unwrap_or_else(|| panic!("no period at {time}: {quarters:?}"))
    };
    // c5 answered at 10:01, c6 abandoned at 10:14; c7 waits in the interval in progress.
    let ten = at("10:00:00");
    assert_eq!((flow(ten).answered, flow(ten).abandoned), (1, 1));
    assert!(!ten.partial);
    assert!(at("10:15:00").partial);
    let live = fixture.live_flow_today("q-a").await;
    assert_eq!(total(&quarters, |f| f.answered), live.answered);
    assert_eq!(total(&quarters, |f| f.abandoned), live.abandoned);
    assert_eq!(total(&quarters, |f| f.offered), live.offered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timesheets_answer_rows_and_the_exact_csv_and_json_files() {
    let fixture = Fixture::start().await;
    let mut supervisor = fixture.client("supervisor-a").await;
    let request = |format: pb::TimesheetFormat| pb::GetTimesheetRequest {
        site: SITE.into(),
        team: "team-a".into(),
        from_date: PLANTED.into(),
        to_date: PLANTED.into(),
        format: format.into(),
        ..pb::GetTimesheetRequest::default()
    };
    let team_a: Vec<IntervalRecord> = planted_records()
        .into_iter()
        .filter(|r| r.key.kind == ScopeKind::Advisor && r.team.as_deref() == Some("team-a"))
        .collect();
    let expected = timesheets(&team_a, date(PLANTED), date(PLANTED));
    assert_eq!(expected.len(), 2);

    let csv = supervisor
        .get_timesheet(request(pb::TimesheetFormat::Csv))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(csv.content, to_csv(&expected, site().calendar().zone()));
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert!(csv.rows.is_empty());
    assert_eq!(
        (csv.from_date.as_str(), csv.to_date.as_str()),
        (PLANTED, PLANTED)
    );

    let json = supervisor
        .get_timesheet(request(pb::TimesheetFormat::Json))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(json.content, to_json(&expected, site().calendar().zone()));
    assert_eq!(json.content_type, "application/json");

    let rows = supervisor
        .get_timesheet(request(pb::TimesheetFormat::Rows))
        .await
        .unwrap()
        .into_inner()
        .rows;
    let advisors: Vec<&str> = rows.iter().map(|r| r.advisor.as_str()).collect();
    assert_eq!(advisors, ["a1", "a2"]);
    assert_eq!(
        (rows[0].logged_in, rows[0].pause, rows[0].pause_count),
        (1800.0, 300.0, 1)
    );
    assert_eq!(
        millis(rows[0].first_login.as_ref().unwrap()),
        planted("14:02:00")
    );
    assert_eq!(rows[0].team.as_deref(), Some("team-a"));

    // An advisor gets their own rows, even when asking for the team.
    let mut a1 = fixture.client("advisor-a1").await;
    let own = a1
        .get_timesheet(request(pb::TimesheetFormat::Rows))
        .await
        .unwrap()
        .into_inner()
        .rows;
    let advisors: Vec<&str> = own.iter().map(|r| r.advisor.as_str()).collect();
    assert_eq!(advisors, ["a1"]);

    // Limits.
    let mut long = request(pb::TimesheetFormat::Csv);
    long.from_date = "2026-01-01".into();
    let status = supervisor.get_timesheet(long).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 31 days"),
        "{}",
        status.message()
    );
    let mut nobody = request(pb::TimesheetFormat::Csv);
    nobody.team.clear();
    let status = supervisor.get_timesheet(nobody).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Today's, with the interval in progress: a1 logged in from 09:00 to 10:07, on a break
    // from 09:00 to 09:20.
    let mut current = request(pb::TimesheetFormat::Rows);
    current.from_date.clear();
    current.to_date.clear();
    current.include_current = true;
    let answer = supervisor
        .get_timesheet(current)
        .await
        .unwrap()
        .into_inner();
    assert!(answer.partial);
    assert_eq!(answer.from_date, TODAY);
    let a1 = answer.rows.iter().find(|r| r.advisor == "a1").unwrap();
    assert_eq!(a1.logged_in, 67.0 * 60.0);
    assert_eq!((a1.pause, a1.pause_count), (20.0 * 60.0, 1));
    assert_eq!(millis(a1.first_login.as_ref().unwrap()), today("09:00:00"));
}

/// The report of the planted day as `vigie_history` renders it.
fn planted_report(language: Language) -> ReportInput {
    let records: Vec<IntervalRecord> = planted_records()
        .into_iter()
        .filter(|r| match r.key.kind {
            ScopeKind::Team => r.key.id == "team-a",
            ScopeKind::Advisor => r.team.as_deref() == Some("team-a"),
            _ => false,
        })
        .collect();
    let advisors = timesheets(&records, date(PLANTED), date(PLANTED));
    ReportInput {
        site_id: SITE.into(),
        site_name: None,
        team_id: "team-a".into(),
        team_name: None,
        date: date(PLANTED),
        zone: site().calendar().zone(),
        day_start: chrono::NaiveTime::MIN,
        language,
        records,
        advisors,
        targets: ReportTargets {
            sl_target: 0.8,
            sl_threshold_s: 20.0,
            aht_target_s: None,
            abandon_threshold: None,
        },
        alerts: Vec::new(),
        notices: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_come_in_three_formats_and_today_with_alerts_and_notices() {
    let fixture = Fixture::start().await;
    let mut supervisor = fixture.client("supervisor-a").await;
    let report = |format: pb::ReportFormat, date: &str, language: &str| pb::GetReportRequest {
        site: SITE.into(),
        team: "team-a".into(),
        date: date.into(),
        format: format.into(),
        language: language.into(),
    };
    let input = planted_report(Language::En);
    let cases = [
        (
            pb::ReportFormat::Html,
            "text/html; charset=utf-8",
            "html",
            vigie_history::render_html(&input),
        ),
        (
            pb::ReportFormat::Markdown,
            "text/markdown; charset=utf-8",
            "md",
            vigie_history::render_markdown(&input),
        ),
        (
            pb::ReportFormat::Csv,
            "text/csv; charset=utf-8",
            "csv",
            vigie_history::render_csv(&input),
        ),
    ];
    for (format, content_type, extension, expected) in cases {
        let answer = supervisor
            .get_report(report(format, PLANTED, ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.content_type, content_type);
        assert_eq!(
            answer.file_name,
            format!("report-team-a-{PLANTED}.{extension}")
        );
        assert_eq!((answer.date.as_str(), answer.partial), (PLANTED, false));
        assert_eq!(
            String::from_utf8(answer.content).unwrap(),
            expected,
            "{format:?}"
        );
    }
    let french = supervisor
        .get_report(report(pb::ReportFormat::Html, PLANTED, "fr"))
        .await
        .unwrap()
        .into_inner();
    let french = String::from_utf8(french.content).unwrap();
    assert_eq!(
        french,
        vigie_history::render_html(&planted_report(Language::Fr))
    );
    assert!(french.contains("lang=\"fr\""));
    let status = supervisor
        .get_report(report(pb::ReportFormat::Html, PLANTED, "de"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("language: "),
        "{}",
        status.message()
    );

    // Today: the interval in progress, the team's alerts (not team-b's), its notices.
    let mut notices =
        NoticesClient::with_interceptor(fixture.channel().await, fixture.add_token("supervisor-a"));
    notices
        .post_notice(pb::PostNoticeRequest {
            site: SITE.into(),
            team: "team-a".into(),
            text: "Spring offer script from now on".into(),
            level: pb::NoticeLevel::Important.into(),
            duration: 0.0,
        })
        .await
        .unwrap();
    let answer = supervisor
        .get_report(report(pb::ReportFormat::Html, "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.date.as_str(), answer.partial), (TODAY, true));
    assert_eq!(answer.file_name, format!("report-team-a-{TODAY}.html"));
    let html = String::from_utf8(answer.content).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Pause too long"), "team-a's alert");
    assert!(!html.contains("Caller waiting too long"), "team-b's alert");
    assert!(
        html.contains("Spring offer script from now on"),
        "the notice"
    );
    let markdown = supervisor
        .get_report(report(pb::ReportFormat::Markdown, TODAY, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(markdown.partial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_history_is_today_in_scope_with_transitions() {
    let fixture = Fixture::start().await;
    let list = |name: &'static str, date: &'static str| {
        let fixture = &fixture;
        async move {
            let mut client = fixture.client(name).await;
            client
                .list_alert_history(pb::ListAlertHistoryRequest {
                    site: SITE.into(),
                    date: date.into(),
                })
                .await
                .map(|answer| answer.into_inner())
        }
    };
    let all = list("admin", TODAY).await.unwrap();
    assert_eq!(all.date, TODAY);
    let ids: Vec<&str> = all.alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["pause/advisor/a1", "wait/queue/q-b"]);
    for alert in &all.alerts {
        let kinds: Vec<i32> = alert.history.iter().map(|t| t.kind).collect();
        assert!(
            kinds.contains(&i32::from(pb::AlertTransitionKind::Fired)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&i32::from(pb::AlertTransitionKind::Resolved)),
            "{kinds:?}"
        );
    }
    let scoped = [
        ("manager", vec!["pause/advisor/a1", "wait/queue/q-b"]),
        ("supervisor-a", vec!["pause/advisor/a1"]),
        ("supervisor-b", vec!["wait/queue/q-b"]),
        ("advisor-a1", vec!["pause/advisor/a1"]),
        ("advisor-a2", vec![]),
    ];
    for (name, expected) in scoped {
        let answer = list(name, "").await.unwrap();
        let ids: Vec<&str> = answer.alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, expected, "{name}");
    }
    assert_eq!(
        list("other-manager", "").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // An earlier day is read from the history store: nothing was kept of 1 March.
    let earlier = list("admin", "2026-03-01").await.unwrap();
    assert_eq!(earlier.date, "2026-03-01");
    assert!(earlier.alerts.is_empty(), "{:?}", earlier.alerts);
    assert_eq!(
        list("admin", "yesterday").await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

/// Whether each caller may make a call: `true` allowed, `false` PERMISSION_DENIED.
async fn matrix<F, Fut>(fixture: &Fixture, what: &str, expected: [bool; 7], call: F)
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    for (name, allowed) in CALLERS.iter().zip(expected) {
        let result = call(fixture.client(name).await).await;
        match (allowed, result) {
            (true, Ok(())) => {}
            (false, Err(status)) if status.code() == Code::PermissionDenied => {
                assert_eq!(status.message(), "not allowed for this token");
            }
            (_, outcome) => panic!("{what} by {name}: expected allowed={allowed}, got {outcome:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_follows_the_access_matrix_of_the_live_views() {
    let fixture = Fixture::start().await;
    //           admin  manager other  sup-a  sup-b  adv-a1 adv-a2
    let intervals = [
        (
            (pb::HistoryScopeKind::Site, ""),
            [true, true, false, false, false, false, false],
        ),
        (
            (pb::HistoryScopeKind::Queue, "q-a"),
            [true, true, false, true, false, false, false],
        ),
        (
            (pb::HistoryScopeKind::Queue, "q-b"),
            [true, true, false, false, true, false, false],
        ),
        // A queue nobody serves: out of every supervisor's scope, existing or not.
        (
            (pb::HistoryScopeKind::Queue, "q-unknown"),
            [true, true, false, false, false, false, false],
        ),
        (
            (pb::HistoryScopeKind::Team, "team-a"),
            [true, true, false, true, false, false, false],
        ),
        (
            (pb::HistoryScopeKind::Team, "team-b"),
            [true, true, false, false, true, false, false],
        ),
        (
            (pb::HistoryScopeKind::Advisor, "a1"),
            [true, true, false, true, false, true, false],
        ),
        (
            (pb::HistoryScopeKind::Advisor, "b1"),
            [true, true, false, false, true, false, false],
        ),
        (
            (pb::HistoryScopeKind::Advisor, "ghost"),
            [true, true, false, false, false, false, false],
        ),
    ];
    for ((kind, id), expected) in intervals {
        matrix(
            &fixture,
            &format!("ListIntervals {kind:?} {id}"),
            expected,
            |mut client| async move {
                client
                    .list_intervals(planted_range(kind, id, pb::Granularity::Granularity1h))
                    .await
                    .map(|_| ())
            },
        )
        .await;
    }

    let timesheet = |team: &'static str, advisor: Option<&'static str>| pb::GetTimesheetRequest {
        site: SITE.into(),
        team: team.into(),
        advisor: advisor.map(str::to_owned),
        from_date: PLANTED.into(),
        ..pb::GetTimesheetRequest::default()
    };
    let timesheets = [
        (
            ("team-a", None),
            [true, true, false, true, false, true, true],
        ),
        (
            ("team-b", None),
            [true, true, false, false, true, true, true],
        ),
        (
            ("", Some("a1")),
            [true, true, false, true, false, true, false],
        ),
        (
            ("team-a", Some("a2")),
            [true, true, false, true, false, false, true],
        ),
        (
            ("", Some("b1")),
            [true, true, false, false, true, false, false],
        ),
    ];
    for ((team, advisor), expected) in timesheets {
        matrix(
            &fixture,
            &format!("GetTimesheet {team} {advisor:?}"),
            expected,
            |mut client| async move {
                client
                    .get_timesheet(timesheet(team, advisor))
                    .await
                    .map(|_| ())
            },
        )
        .await;
    }
    // Advisors asking for a team get their own rows only.
    for (name, own) in [("advisor-a1", "a1"), ("advisor-a2", "a2")] {
        let rows = fixture
            .client(name)
            .await
            .get_timesheet(timesheet("team-a", None))
            .await
            .unwrap()
            .into_inner()
            .rows;
        assert!(
            rows.iter().all(|row| row.advisor == own),
            "{name}: {rows:?}"
        );
    }

    for (team, expected) in [
        ("team-a", [true, true, false, true, false, false, false]),
        ("team-b", [true, true, false, false, true, false, false]),
        (
            "team-unknown",
            [true, true, false, false, false, false, false],
        ),
    ] {
        matrix(
            &fixture,
            &format!("GetReport {team}"),
            expected,
            |mut client| async move {
                client
                    .get_report(pb::GetReportRequest {
                        site: SITE.into(),
                        team: team.into(),
                        date: PLANTED.into(),
                        format: pb::ReportFormat::Csv.into(),
                        language: String::new(),
                    })
                    .await
                    .map(|_| ())
            },
        )
        .await;
    }

    matrix(
        &fixture,
        "ListAlertHistory",
        [true, true, false, true, true, true, true],
        |mut client| async move {
            client
                .list_alert_history(pb::ListAlertHistoryRequest {
                    site: SITE.into(),
                    date: String::new(),
                })
                .await
                .map(|_| ())
        },
    )
    .await;

    // Contact ids: supervisors, managers and admins, within the scope they read.
    //           admin  manager other  sup-a  sup-b  adv-a1 adv-a2
    let abandoned = [
        (("", ""), [true, true, false, false, false, false, false]),
        (
            ("team-a", ""),
            [true, true, false, true, false, false, false],
        ),
        (("", "q-b"), [true, true, false, false, true, false, false]),
        (
            ("team-a", "q-b"),
            [true, true, false, false, false, false, false],
        ),
    ];
    for ((team, queue), expected) in abandoned {
        matrix(
            &fixture,
            &format!("ListAbandonedContacts team {team:?} queue {queue:?}"),
            expected,
            |mut client| async move {
                client
                    .list_abandoned_contacts(pb::ListAbandonedContactsRequest {
                        site: SITE.into(),
                        team: team.into(),
                        queue: queue.into(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            },
        )
        .await;
    }

    // Without a token: UNAUTHENTICATED; a site that does not exist, asked by an admin:
    // NOT_FOUND.
    let mut anonymous = HistoryClient::new(fixture.channel().await);
    let status = anonymous
        .list_intervals(planted_range(
            pb::HistoryScopeKind::Site,
            "",
            pb::Granularity::Day,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut admin = fixture.client("admin").await;
    let mut elsewhere = planted_range(pb::HistoryScopeKind::Site, "", pb::Granularity::Day);
    elsewhere.site = "elsewhere".into();
    assert_eq!(
        admin.list_intervals(elsewhere).await.unwrap_err().code(),
        Code::NotFound
    );
}

/// A store that cannot be reached.
#[derive(Debug)]
struct Unreachable;

impl HistoryStore for Unreachable {
    fn publish<'a>(&'a self, _: Vec<IntervalRecord>) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn day<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn query<'a>(
        &'a self,
        _: &'a str,
        _: ScopeKind,
        _: &'a str,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn team_advisors<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn publish_alerts<'a>(
        &'a self,
        _: Vec<AlertRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn day_alerts<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AlertRecord>, HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn publish_notices<'a>(
        &'a self,
        _: Vec<NoticeRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }

    fn day_notices<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NoticeRecord>, HistoryError>> {
        Box::pin(async { Err(HistoryError::Unavailable("no route to the broker".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_read_or_none_at_all_is_unavailable() {
    let fixture = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notices = vigie_api::NoticesService::new(
        fixture.handle.clone(),
        None,
        Arc::new(vigie_api::FileChangeStore::new(dir.path().to_owned())),
        10,
        ApiMetrics::unregistered(),
        CancellationToken::new(),
    );
    let service = HistoryService::new(
        fixture.handle.clone(),
        None,
        notices,
        ApiMetrics::unregistered(),
    );
    let request = || {
        tonic::Request::new(planted_range(
            pb::HistoryScopeKind::Queue,
            "q-a",
            pb::Granularity::Day,
        ))
    };
    let status = service.list_intervals(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("keeps no interval history"),
        "{}",
        status.message()
    );
    let status = service
        .with_store(Arc::new(Unreachable))
        .list_intervals(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("history store is unavailable"),
        "{}",
        status.message()
    );
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_listed_by_reflection_and_answers_grpc_web() {
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let fixture = Fixture::start().await;
    let mut reflection = ServerReflectionClient::new(fixture.channel().await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == "vigie.v1.History"),
        "{list:?}"
    );

    // A browser's call: a length-prefixed message in, a message frame and trailers out.
    let message = pb::ListAlertHistoryRequest {
        site: SITE.into(),
        date: String::new(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let token = fixture.header("supervisor-a");
    let mut request = format!(
        "POST /vigie.v1.History/ListAlertHistory HTTP/1.1\r\nHost: vigie\r\nOrigin: http://wallboard.example\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token.to_str().unwrap(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut socket = tokio::net::TcpStream::connect(fixture.address)
        .await
        .unwrap();
    socket.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    assert_eq!(body[0], 0, "a message frame first");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let answer = pb::ListAlertHistoryResponse::decode(&body[5..5 + length]).unwrap();
    let ids: Vec<&str> = answer.alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["pause/advisor/a1"]);
    let trailer = &body[5 + length..];
    assert_eq!(trailer[0], 0x80, "then the trailers");
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
}

fn listed(answer: &pb::ListAbandonedContactsResponse) -> Vec<(String, String, i64, f64, bool)> {
    answer
        .contacts
        .iter()
        .map(|c| {
            (
                c.contact_id.clone(),
                c.queue.clone(),
                millis(c.abandoned_at.as_ref().unwrap()),
                c.wait_seconds,
                c.short,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_contacts_come_from_the_store_for_earlier_days_and_live_for_today() {
    let fixture = Fixture::start().await;
    let mut admin = fixture.client("admin").await;
    let request = |from: &str, to: &str| pb::ListAbandonedContactsRequest {
        site: SITE.into(),
        from_date: from.into(),
        to_date: to.into(),
        ..Default::default()
    };
    let c4 = (
        "c4".to_owned(),
        "q-a".to_owned(),
        today("09:40:30"),
        30.0,
        false,
    );
    let x1 = (
        "x1".to_owned(),
        "q-a".to_owned(),
        planted("14:31:00"),
        42.0,
        false,
    );
    let x2 = (
        "x2".to_owned(),
        "q-a".to_owned(),
        planted("14:44:59"),
        3.0,
        true,
    );

    // From the planted day to today: the stored lists (latest revisions), then today's live.
    let answer = admin
        .list_abandoned_contacts(request(PLANTED, TODAY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), [x1.clone(), x2.clone(), c4.clone()]);
    assert_eq!(
        (answer.from_date.as_str(), answer.to_date.as_str()),
        (PLANTED, TODAY)
    );
    assert_eq!(answer.time_zone, "UTC");
    assert_eq!(answer.omitted, 0);
    assert_eq!(answer.as_of.as_ref().map(millis), Some(today("10:07:00")));

    // The planted day alone: no as_of; short abandons left out on request.
    let answer = admin
        .list_abandoned_contacts(request(PLANTED, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), [x1.clone(), x2]);
    assert!(answer.as_of.is_none());
    let mut long_only = request(PLANTED, "");
    long_only.exclude_short = true;
    let answer = admin
        .list_abandoned_contacts(long_only)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), [x1]);

    // Today by default; a team's campaign queues; a queue.
    let mut supervisor_a = fixture.client("supervisor-a").await;
    let mut team_a = request("", "");
    team_a.team = "team-a".into();
    let answer = supervisor_a
        .list_abandoned_contacts(team_a)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed(&answer), [c4]);
    assert_eq!(answer.from_date, TODAY);
    let mut supervisor_b = fixture.client("supervisor-b").await;
    let mut q_b = request("", "");
    q_b.queue = "q-b".into();
    let answer = supervisor_b
        .list_abandoned_contacts(q_b)
        .await
        .unwrap()
        .into_inner();
    assert!(answer.contacts.is_empty(), "nobody hung up in q-b");

    // Ranges: at most 31 days, in order, real dates.
    for (from, to, field) in [
        ("2026-01-01", "2026-03-02", "to_date"),
        (TODAY, PLANTED, "to_date"),
        ("2026-02-30", "", "from_date"),
    ] {
        let status = admin
            .list_abandoned_contacts(request(from, to))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{from}..{to}");
        assert!(status.message().contains(field), "{}", status.message());
    }
}
