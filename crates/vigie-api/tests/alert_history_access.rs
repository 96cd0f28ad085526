//! `ListAlertHistory` and `GetReport` for an earlier day: the alerts and notices come from the
//! history store, and each caller sees what they would see of today (the access matrix of the
//! live views, with the site's teams as they are now).
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigie_alerts::{
    Alert, AlertState, Comparator, Metric, Severity, Target, TargetKind, Transition,
    TransitionKind, Unit,
};
use vigie_api::history_store::{AlertRecord, HistoryStore, MemoryHistory, NoticeRecord};
use vigie_api::notices::{Notice, NoticeLevel};
use vigie_api::{Api, ApiConfig, ApiMetrics, AuthConfig};
use vigie_core::{ProcessingConfig, Processor, QueueConfig, SiteConfig, TeamConfig, Timestamp};
use vigie_engine::{Clock, Engine, EngineConfig, EngineMetrics};
use vigie_proto::v1 as pb;
use vigie_proto::v1::history_client::HistoryClient;

const SITE: &str = "paris";
/// The earlier day the store holds, and the site's current day.
const EARLIER: &str = "2026-03-01";
const TODAY_NOON: &str = "2026-03-02T12:00:00Z";
const WAIT: Duration = Duration::from_secs(30);

fn ms(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).unwrap().0
}

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

/// An alert of the earlier day that fired at 10:00 and resolved at 10:20.
fn fired(rule: &str, name: &str, kind: TargetKind, target: &str, teams: &[&str]) -> AlertRecord {
    let transition = |kind, at: &str| Transition {
        kind,
        at: Timestamp(ms(&format!("{EARLIER}T{at}Z"))),
        severity: Some(Severity::Warning),
        value: Some(70.0),
        threshold: Some(60.0),
        cause: None,
        by: None,
        until: None,
    };
    let alert = Alert {
        id: format!("{rule}/{}/{target}", kind.as_str()),
        site: SITE.into(),
        teams: teams.iter().map(|t| (*t).to_owned()).collect(),
        rule: rule.into(),
        rule_name: name.into(),
        target: Target {
            kind,
            id: target.into(),
        },
        metric: Metric::LongestWait,
        window: None,
        comparator: Comparator::Above,
        unit: Unit::Seconds,
        state: AlertState::Resolved,
        severity: None,
        value: Some(10.0),
        threshold: 60.0,
        since: Some(Timestamp(ms(&format!("{EARLIER}T09:59:00Z")))),
        acknowledged: None,
        silenced: None,
        last_notified: None,
        history: vec![
            transition(TransitionKind::Fired, "10:00:00"),
            transition(TransitionKind::Resolved, "10:20:00"),
        ],
        history_dropped: 0,
    };
    AlertRecord::of(
        &alert,
        None,
        EARLIER,
        Timestamp(ms(&format!("{EARLIER}T10:20:00Z"))),
    )
}

fn planted_alerts() -> Vec<AlertRecord> {
    vec![
        fired("sl", "Site service level", TargetKind::Site, SITE, &[]),
        fired(
            "wait",
            "Queue A waiting",
            TargetKind::Queue,
            "q-a",
            &["team-a"],
        ),
        fired(
            "wait",
            "Queue B waiting",
            TargetKind::Queue,
            "q-b",
            &["team-b"],
        ),
        fired(
            "busy",
            "Team A busy",
            TargetKind::Team,
            "team-a",
            &["team-a"],
        ),
        fired(
            "pause",
            "Pause of a1",
            TargetKind::Advisor,
            "a1",
            &["team-a"],
        ),
        fired(
            "pause",
            "Pause of b1",
            TargetKind::Advisor,
            "b1",
            &["team-b"],
        ),
    ]
}

fn notice(id: &str, team: Option<&str>, text: &str, from: &str, to: &str) -> NoticeRecord {
    NoticeRecord {
        site: SITE.into(),
        date: EARLIER.into(),
        withdrawn: false,
        notice: Notice {
            id: id.into(),
            team: team.map(str::to_owned),
            text: text.into(),
            level: NoticeLevel::Info,
            posted_by: "camille".into(),
            posted_at: Timestamp(ms(from)),
            expires_at: Timestamp(ms(to)),
        },
    }
}

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

/// The callers of the access matrix, with their token's scope.
const CALLERS: [(&str, &str); 7] = [
    ("admin", "role = \"admin\""),
    ("manager", "role = \"manager\"\nsites = [\"paris\"]"),
    (
        "other-manager",
        "role = \"manager\"\nsites = [\"elsewhere\"]",
    ),
    (
        "supervisor-a",
        "role = \"supervisor\"\nsites = [\"paris\"]\nteams = [\"team-a\"]",
    ),
    (
        "supervisor-b",
        "role = \"supervisor\"\nsites = [\"paris\"]\nteams = [\"team-b\"]",
    ),
    (
        "advisor-a1",
        "role = \"advisor\"\nsites = [\"paris\"]\nadvisor = \"a1\"",
    ),
    (
        "advisor-a2",
        "role = \"advisor\"\nsites = [\"paris\"]\nadvisor = \"a2\"",
    ),
];

struct Fixture {
    channel: Channel,
    secrets: BTreeMap<&'static str, String>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut secrets = BTreeMap::new();
        let mut entries = String::new();
        for (name, scope) in CALLERS {
            let secret = vigie_api::auth::generate_token();
            entries.push_str(&format!(
                "[[token]]\nsha256 = \"{}\"\nsubject = \"{name}\"\n{scope}\n",
                vigie_api::auth::hash_token(&secret)
            ));
            secrets.insert(name, secret);
        }
        let file = dir.path().join("tokens.toml");
        std::fs::write(&file, entries).unwrap();
        let config = ApiConfig {
            auth: AuthConfig {
                tokens_file: Some(file),
                ..AuthConfig::default()
            },
            ..ApiConfig::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let now = Timestamp(ms(TODAY_NOON));
        let clock: Clock = Arc::new(move || now);
        let processor = Processor::new(vec![site()], ProcessingConfig::default());
        let (engine, handle) = Engine::new(
            EngineConfig::default(),
            processor,
            EngineMetrics::new(&mut registry),
            clock,
        );
        tokio::spawn(engine.run());
        let store = Arc::new(MemoryHistory::default());
        store.publish_alerts(planted_alerts()).await.unwrap();
        store
            .publish_notices(vec![
                notice(
                    "1-1/team/team-a",
                    Some("team-a"),
                    "Spring offer script",
                    "2026-03-01T08:00:00Z",
                    "2026-03-01T12:00:00Z",
                ),
                notice(
                    "2-1/team/team-b",
                    Some("team-b"),
                    "Team B only",
                    "2026-03-01T08:00:00Z",
                    "2026-03-01T12:00:00Z",
                ),
                notice(
                    "3-1/site",
                    None,
                    "Fire drill at 15:00",
                    "2026-03-01T09:00:00Z",
                    "2026-03-01T16:00:00Z",
                ),
            ])
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let changes = Arc::new(vigie_api::FileChangeStore::new(dir.path().to_owned()));
        let api = Api::new(
            config,
            handle,
            changes,
            ApiMetrics::new(&mut registry),
            shutdown.clone(),
        )
        .unwrap()
        .with_history(store);
        let (_ready, ready_rx) = tokio::sync::watch::channel(true);
        tokio::spawn(api.serve(listener, ready_rx));
        let channel = tokio::time::timeout(WAIT, async {
            loop {
                let endpoint = Channel::from_shared(format!("http://{address}")).unwrap();
                if let Ok(channel) = endpoint.connect().await {
                    break channel;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        Fixture {
            channel,
            secrets,
            shutdown,
            _dir: dir,
        }
    }

    fn client(&self, name: &str) -> Client {
        let bearer = format!("Bearer {}", self.secrets[name]).parse().unwrap();
        HistoryClient::with_interceptor(self.channel.clone(), AddToken(bearer))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_days_alerts_follow_the_access_matrix_of_todays() {
    let fixture = Fixture::start().await;
    let every = [
        "busy/team/team-a",
        "pause/advisor/a1",
        "pause/advisor/b1",
        "sl/site/paris",
        "wait/queue/q-a",
        "wait/queue/q-b",
    ];
    // As for today (crates/vigie-api/tests/history.rs): every caller but the manager of
    // another site may call, and sees the alerts about what they may read now.
    let expected: [(&str, Option<Vec<&str>>); 7] = [
        ("admin", Some(every.to_vec())),
        ("manager", Some(every.to_vec())),
        ("other-manager", None),
        (
            "supervisor-a",
            Some(vec![
                "busy/team/team-a",
                "pause/advisor/a1",
                "wait/queue/q-a",
            ]),
        ),
        (
            "supervisor-b",
            Some(vec!["pause/advisor/b1", "wait/queue/q-b"]),
        ),
        ("advisor-a1", Some(vec!["pause/advisor/a1"])),
        ("advisor-a2", Some(vec![])),
    ];
    for (name, visible) in expected {
        let answer = fixture
            .client(name)
            .list_alert_history(pb::ListAlertHistoryRequest {
                site: SITE.into(),
                date: EARLIER.into(),
            })
            .await;
        match (visible, answer) {
            (Some(ids), Ok(answer)) => {
                let answer = answer.into_inner();
                assert_eq!(answer.date, EARLIER, "{name}");
                let got: Vec<&str> = answer.alerts.iter().map(|a| a.id.as_str()).collect();
                assert_eq!(got, ids, "{name}");
                for alert in &answer.alerts {
                    let kinds: Vec<i32> = alert.history.iter().map(|t| t.kind).collect();
                    assert_eq!(
                        kinds,
                        [
                            i32::from(pb::AlertTransitionKind::Fired),
                            i32::from(pb::AlertTransitionKind::Resolved)
                        ],
                        "{name}: {}",
                        alert.id
                    );
                }
            }
            (None, Err(status)) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{name}");
            }
            (visible, answer) => panic!("{name}: expected {visible:?}, got {answer:?}"),
        }
    }
    // Today has nothing yet; a day with nothing kept is an empty answer.
    let today = fixture
        .client("admin")
        .list_alert_history(pb::ListAlertHistoryRequest {
            site: SITE.into(),
            date: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((today.date.as_str(), today.alerts.len()), ("2026-03-02", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_days_report_lists_that_days_alerts_and_notices_of_the_team() {
    let fixture = Fixture::start().await;
    let report = |name: &'static str, team: &'static str| {
        let mut client = fixture.client(name);
        async move {
            client
                .get_report(pb::GetReportRequest {
                    site: SITE.into(),
                    team: team.into(),
                    date: EARLIER.into(),
                    format: pb::ReportFormat::Markdown.into(),
                    language: String::new(),
                })
                .await
                .map(|answer| String::from_utf8(answer.into_inner().content).unwrap())
        }
    };
    let team_a = report("supervisor-a", "team-a").await.unwrap();
    for present in [
        "Queue A waiting",
        "Team A busy",
        "Pause of a1",
        "Spring offer script",
        "Fire drill at 15:00",
    ] {
        assert!(team_a.contains(present), "{present:?} in {team_a}");
    }
    for absent in [
        "Queue B waiting",
        "Pause of b1",
        "Site service level",
        "Team B only",
    ] {
        assert!(!team_a.contains(absent), "{absent:?} in {team_a}");
    }
    assert_eq!(
        report("supervisor-b", "team-a").await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
