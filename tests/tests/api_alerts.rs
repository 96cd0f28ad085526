//! The `Alerts` service against an in-process engine on a test clock: alerts fire on a small
//! site, show in ListAlerts and WatchAlerts, are acknowledged and silenced with every watcher
//! seeing it; each caller sees only the alerts whose target they may read; rules are for
//! admins; a stream that falls behind gets a resync; streams end at shutdown.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeSet;
use std::time::Duration;

use tonic::Code;
use tonic::metadata::MetadataValue;
use vigie_alerts::RuleConfig;
use vigie_api::{ApiConfig, AuthConfig};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, QueueConfig, SiteConfig, TeamConfig, Timestamp, decode_json,
};
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_client::AlertsClient;
use vigie_tests::api::{Served, WAIT, alert_rules};

const SITE: &str = "paris";

/// Team A (a1, a2) serves queue q-a; team B (b1, b2) serves q-b.
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

fn at(time: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).unwrap()
}

/// At 09:00 everyone logs in, a1 and b1 go on a break, a caller waits in each queue.
fn events() -> Vec<Event> {
    let mut lines = Vec::new();
    for (advisor, team) in [
        ("a1", "team-a"),
        ("a2", "team-a"),
        ("b1", "team-b"),
        ("b2", "team-b"),
    ] {
        lines.push(format!(
            r#"{{"type":"advisor.login","advisor":"{advisor}","team":"{team}""#
        ));
    }
    for advisor in ["a1", "b1"] {
        lines.push(format!(
            r#"{{"type":"advisor.state","advisor":"{advisor}","state":"pause","reason":"break""#
        ));
    }
    for (contact, queue) in [("c1", "q-a"), ("c2", "q-b")] {
        lines.push(format!(
            r#"{{"type":"contact.queued","contact":"{contact}","queue":"{queue}","channel":"voice""#
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(n, start)| {
            let line =
                format!(r#"{start},"id":"e{n}","time":"2026-03-02T09:00:00Z","site":"{SITE}"}}"#);
            decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
        })
        .collect()
}

/// A caller waiting more than 30 s (critical beyond 2 min), a pause beyond 60 s, more than
/// one caller waiting in the site for a minute (pending from 09:00).
fn rules() -> Vec<RuleConfig> {
    alert_rules(&format!(
        r#"
        [[alert_rule]]
        site = "{SITE}"
        id = "wait"
        name = "Caller waiting too long"
        scope = "every_queue"
        metric = "longest_wait"
        comparator = "above"
        warning = "30s"
        critical = "2m"

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
        id = "busy"
        name = "Callers waiting"
        scope = "site"
        metric = "in_queue"
        comparator = "above"
        warning = 1
        for = "1m"
        "#
    ))
}

/// Adds the bearer token to each request.
type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

type Client = AlertsClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>,
>;

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

struct Fixture {
    served: Served,
    tokens: Vec<Token>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let tokens = vec![
            token("admin", "role = \"admin\""),
            token(
                "manager",
                &format!("role = \"manager\"\nsites = [\"{SITE}\"]"),
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
            token(
                "other-manager",
                "role = \"manager\"\nsites = [\"elsewhere\"]",
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
        let served = Served::start_with_rules(&site(), at("09:00:00"), config, rules()).await;
        served.feed(&events()).await;
        Fixture {
            served,
            tokens,
            _dir: dir,
        }
    }

    async fn client(&self, name: &str) -> Client {
        self.client_on(self.served.channel().await, name)
    }

    /// A client whose connection lets the server send only 16 KiB ahead of what it reads.
    async fn slow_client(&self, name: &str) -> Client {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.served.address))
                .unwrap()
                .initial_stream_window_size(Some(16 * 1024))
                .initial_connection_window_size(Some(16 * 1024))
                .connect()
                .await
                .unwrap();
        self.client_on(channel, name)
    }

    fn client_on(&self, channel: tonic::transport::Channel, name: &str) -> Client {
        let secret = &self.tokens.iter().find(|t| t.name == name).unwrap().secret;
        let header: MetadataValue<_> = format!("Bearer {secret}").parse().unwrap();
        let add: AddToken = Box::new(move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        });
        AlertsClient::with_interceptor(channel, add)
    }

    fn set_clock(&self, time: &str) {
        self.served
            .now
            .store(at(time).0, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn list(client: &mut Client, active_only: bool) -> Vec<pb::Alert> {
    client
        .list_alerts(pb::ListAlertsRequest {
            site: SITE.into(),
            active_only,
        })
        .await
        .unwrap()
        .into_inner()
        .alerts
}

fn ids(alerts: &[pb::Alert]) -> Vec<&str> {
    alerts.iter().map(|alert| alert.id.as_str()).collect()
}

async fn watch(client: &mut Client) -> tonic::Streaming<pb::AlertsUpdate> {
    client
        .watch_alerts(pb::WatchAlertsRequest { site: SITE.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut tonic::Streaming<pb::AlertsUpdate>) -> pb::AlertsUpdate {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("the stream goes on")
}

/// Reads changes until `done` holds for the alerts as the changes left them; returns every
/// alert id the changes named.
async fn changes_until(
    stream: &mut tonic::Streaming<pb::AlertsUpdate>,
    mut done: impl FnMut(&[pb::AlertChange]) -> bool,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    while !done(&all) {
        let update = next(stream).await;
        assert_eq!(update.kind, pb::UpdateKind::Change as i32, "{update:?}");
        assert!(update.alerts.is_empty());
        assert!(update.as_of.is_some());
        for change in update.changes {
            seen.insert(change.alert.clone());
            all.push(change);
        }
    }
    seen
}

fn firing(changes: &[pb::AlertChange], id: &str) -> bool {
    changes.iter().any(|change| {
        change.alert == id
            && change
                .current
                .as_ref()
                .is_some_and(|alert| alert.state == pb::AlertState::Firing as i32)
    })
}

async fn ack(client: &mut Client, alert: &str) -> Result<pb::AlertResponse, tonic::Status> {
    let request = pb::AckAlertRequest {
        site: SITE.into(),
        alert: alert.into(),
    };
    client
        .ack_alert(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn silence(
    client: &mut Client,
    alert: &str,
    duration: f64,
) -> Result<pb::AlertResponse, tonic::Status> {
    let request = pb::SilenceAlertRequest {
        site: SITE.into(),
        alert: alert.into(),
        duration,
    };
    client
        .silence_alert(request)
        .await
        .map(tonic::Response::into_inner)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_each_caller_sees_acknowledges_and_silences_only_its_scope() {
    let fixture = Fixture::start().await;
    let mut admin = fixture.client("admin").await;
    let mut supervisor_a = fixture.client("supervisor-a").await;
    let mut supervisor_b = fixture.client("supervisor-b").await;
    let mut advisor_a1 = fixture.client("advisor-a1").await;

    // At 09:00 only the site alert is pending, which only managers and admins see.
    tokio::time::timeout(WAIT, async {
        while list(&mut admin, false).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let pending = list(&mut admin, true).await;
    assert_eq!(ids(&pending), ["busy/site/paris"]);
    assert_eq!(pending[0].state, pb::AlertState::Pending as i32);
    assert_eq!(
        pending[0].history[0].kind,
        pb::AlertTransitionKind::Pending as i32
    );
    let mut admin_watch = watch(&mut admin).await;
    let mut a_watch = watch(&mut supervisor_a).await;
    let mut b_watch = watch(&mut supervisor_b).await;
    let mut a1_watch = watch(&mut advisor_a1).await;
    let snapshot = next(&mut admin_watch).await;
    assert_eq!(snapshot.kind, pb::UpdateKind::Snapshot as i32);
    assert_eq!(snapshot.alerts, pending);
    for stream in [&mut a_watch, &mut b_watch, &mut a1_watch] {
        let snapshot = next(stream).await;
        assert_eq!(snapshot.kind, pb::UpdateKind::Snapshot as i32);
        assert!(snapshot.alerts.is_empty() && snapshot.changes.is_empty());
    }

    // A minute and a second later both callers waited beyond 30 s, a1 and b1 paused beyond
    // a minute, and two callers wait in the site.
    fixture.set_clock("09:01:01");
    let every = [
        "busy/site/paris",
        "pause/advisor/a1",
        "pause/advisor/b1",
        "wait/queue/q-a",
        "wait/queue/q-b",
    ];
    let seen = changes_until(&mut admin_watch, |changes| {
        every.iter().all(|id| firing(changes, id))
    })
    .await;
    assert_eq!(seen, set(&every));
    // Each supervisor hears of their queue and their advisor, nothing else.
    let a_scope = ["pause/advisor/a1", "wait/queue/q-a"];
    let seen = changes_until(&mut a_watch, |changes| {
        a_scope.iter().all(|id| firing(changes, id))
    })
    .await;
    assert_eq!(seen, set(&a_scope));
    let b_scope = ["pause/advisor/b1", "wait/queue/q-b"];
    let seen = changes_until(&mut b_watch, |changes| {
        b_scope.iter().all(|id| firing(changes, id))
    })
    .await;
    assert_eq!(seen, set(&b_scope));
    // An advisor hears only of their own alerts.
    let seen = changes_until(&mut a1_watch, |changes| firing(changes, "pause/advisor/a1")).await;
    assert_eq!(seen, set(&["pause/advisor/a1"]));

    // The lists follow the same scopes.
    let alerts = list(&mut admin, false).await;
    assert_eq!(ids(&alerts), every);
    let wait = alerts.iter().find(|a| a.id == "wait/queue/q-a").unwrap();
    assert_eq!(wait.site, SITE);
    assert_eq!(wait.rule, "wait");
    assert_eq!(wait.rule_name, "Caller waiting too long");
    assert_eq!(
        wait.target,
        Some(pb::AlertTarget {
            kind: pb::AlertTargetKind::Queue as i32,
            id: "q-a".into()
        })
    );
    assert_eq!(wait.teams, ["team-a"]);
    assert_eq!(wait.metric, "longest_wait");
    assert_eq!(wait.window, None);
    assert_eq!(wait.comparator, "above");
    assert_eq!(wait.unit, pb::AlertUnit::Seconds as i32);
    assert_eq!(wait.state, pb::AlertState::Firing as i32);
    assert_eq!(wait.severity, pb::AlertSeverity::Warning as i32);
    assert_eq!(wait.threshold, 30.0);
    assert!(wait.value.unwrap() > 30.0, "{wait:?}");
    assert_eq!(wait.history.len(), 1);
    assert_eq!(wait.history[0].kind, pb::AlertTransitionKind::Fired as i32);
    let pause = alerts.iter().find(|a| a.id == "pause/advisor/a1").unwrap();
    assert_eq!(pause.reason, None);
    assert_eq!(pause.teams, ["team-a"]);
    for (name, expected) in [
        ("manager", &every[..]),
        ("supervisor-a", &a_scope[..]),
        ("supervisor-b", &b_scope[..]),
        ("advisor-a1", &["pause/advisor/a1"][..]),
        ("advisor-a2", &[][..]),
    ] {
        let mut client = fixture.client(name).await;
        assert_eq!(ids(&list(&mut client, false).await), expected, "{name}");
        assert_eq!(ids(&list(&mut client, true).await), expected, "{name}");
    }
    let mut other = fixture.client("other-manager").await;
    let status = other
        .list_alerts(pb::ListAlertsRequest {
            site: SITE.into(),
            active_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = other
        .watch_alerts(pb::WatchAlertsRequest { site: SITE.into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Supervisor A acknowledges their queue's alert; every watcher in scope sees who did.
    let acked = ack(&mut supervisor_a, "wait/queue/q-a")
        .await
        .unwrap()
        .alert
        .unwrap();
    let acknowledgement = acked.acknowledged.unwrap();
    assert_eq!(acknowledgement.by, "supervisor-a");
    assert_eq!(
        acknowledgement.at,
        Some(vigie_api::convert::timestamp(at("09:01:01")))
    );
    assert_eq!(
        acked.history.last().unwrap().kind,
        pb::AlertTransitionKind::Acknowledged as i32
    );
    for stream in [&mut admin_watch, &mut a_watch] {
        let update = next(stream).await;
        assert_eq!(update.changes.len(), 1, "{update:?}");
        let change = &update.changes[0];
        assert_eq!(change.alert, "wait/queue/q-a");
        let transition = change.transition.as_ref().unwrap();
        assert_eq!(
            transition.kind,
            pb::AlertTransitionKind::Acknowledged as i32
        );
        assert_eq!(transition.by.as_deref(), Some("supervisor-a"));
        let current = change.current.as_ref().unwrap();
        assert_eq!(current.acknowledged.as_ref().unwrap().by, "supervisor-a");
    }

    // Out of scope, the same answer whether the alert exists or not; advisors never act.
    for alert in [
        "wait/queue/q-b",
        "pause/advisor/b1",
        "busy/site/paris",
        "x/queue/q-b",
    ] {
        let status = ack(&mut supervisor_a, alert).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{alert}");
        assert_eq!(status.message(), "not allowed for this token");
    }
    let status = ack(&mut advisor_a1, "pause/advisor/a1").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // In scope: an unknown alert is not found, a malformed id refused.
    let status = ack(&mut supervisor_a, "nope/queue/q-a").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = ack(&mut supervisor_a, "garbage").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Supervisor B silences their queue's alert for half an hour.
    let silenced = silence(&mut supervisor_b, "wait/queue/q-b", 1800.0)
        .await
        .unwrap()
        .alert
        .unwrap()
        .silenced
        .unwrap();
    assert_eq!(silenced.by, "supervisor-b");
    assert_eq!(
        silenced.until,
        Some(vigie_api::convert::timestamp(at("09:31:01")))
    );
    for stream in [&mut admin_watch, &mut b_watch] {
        let update = next(stream).await;
        let change = &update.changes[0];
        assert_eq!(change.alert, "wait/queue/q-b");
        let transition = change.transition.as_ref().unwrap();
        assert_eq!(transition.kind, pb::AlertTransitionKind::Silenced as i32);
        assert_eq!(transition.until, silenced.until);
        assert_eq!(
            change
                .current
                .as_ref()
                .unwrap()
                .silenced
                .as_ref()
                .unwrap()
                .by,
            "supervisor-b"
        );
    }
    for duration in [0.0, -5.0, 86_401.0, f64::NAN] {
        let status = silence(&mut supervisor_b, "wait/queue/q-b", duration)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{duration}");
    }
    let status = silence(&mut supervisor_b, "wait/queue/q-a", 60.0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // A manager acts on any alert of the site.
    ack(&mut fixture.client("manager").await, "pause/advisor/b1")
        .await
        .unwrap();

    // Neither A's watcher nor the advisor's heard of B's silence or of b1: their next message
    // is about their own alerts. a2 goes on a break and passes a minute at 09:02:02.
    let pause_a2 = decode_json(
        br#"{"id":"e-a2","type":"advisor.state","time":"2026-03-02T09:01:01Z","site":"paris","advisor":"a2","state":"pause"}"#,
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap();
    fixture.served.feed(&[pause_a2]).await;
    fixture.set_clock("09:02:02");
    let seen = changes_until(&mut a_watch, |changes| firing(changes, "pause/advisor/a2")).await;
    assert!(
        seen.iter()
            .all(|id| a_scope.contains(&id.as_str()) || id == "pause/advisor/a2"),
        "{seen:?}"
    );
    // The advisor a1 heard nothing of a2: the next message comes only with a1's own alert.
    ack(&mut supervisor_a, "pause/advisor/a1").await.unwrap();
    let update = next(&mut a1_watch).await;
    let named: Vec<&str> = update.changes.iter().map(|c| c.alert.as_str()).collect();
    assert_eq!(named, ["pause/advisor/a1"], "{update:?}");

    // A new watcher's snapshot holds the same list as ListAlerts, acknowledgement and silence
    // included.
    let mut late = watch(&mut supervisor_b).await;
    let snapshot = next(&mut late).await;
    assert_eq!(snapshot.kind, pb::UpdateKind::Snapshot as i32);
    let listed = list(&mut supervisor_b, false).await;
    assert_eq!(ids(&snapshot.alerts), b_scope);
    assert_eq!(snapshot.alerts, listed);
    assert!(listed[1].silenced.is_some());
    assert_eq!(
        listed[0].acknowledged.as_ref().unwrap().by,
        "manager",
        "{listed:?}"
    );
}

fn queue_busy_rule() -> pb::AlertRule {
    pb::AlertRule {
        id: "queue-busy".into(),
        name: "Queue busy".into(),
        scope: pb::AlertScope::Queue.into(),
        scope_id: "q-a".into(),
        metric: "in_queue".into(),
        comparator: "above".into(),
        warning: Some(0.0),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_managed_by_admins_and_changes_reach_watchers() {
    let fixture = Fixture::start().await;
    fixture.set_clock("09:01:01");
    let mut admin = fixture.client("admin").await;
    // Wait until the alerts fired.
    tokio::time::timeout(WAIT, async {
        while list(&mut admin, true).await.len() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let mut watcher = watch(&mut admin).await;
    assert_eq!(next(&mut watcher).await.alerts.len(), 5);

    // Only admins.
    for name in ["manager", "supervisor-a", "advisor-a1"] {
        let mut client = fixture.client(name).await;
        let status = client
            .list_rules(pb::ListRulesRequest { site: SITE.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{name}");
        let status = client
            .upsert_rule(pb::UpsertRuleRequest {
                site: SITE.into(),
                rule: Some(queue_busy_rule()),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{name}");
        let status = client
            .delete_rule(pb::DeleteRuleRequest {
                site: SITE.into(),
                rule_id: "wait".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{name}");
    }

    let rules = admin
        .list_rules(pb::ListRulesRequest { site: SITE.into() })
        .await
        .unwrap()
        .into_inner()
        .rules;
    let names: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(names, ["busy", "pause", "wait"]);
    let wait = rules.iter().find(|r| r.id == "wait").unwrap().clone();
    assert_eq!(wait.scope, pb::AlertScope::EveryQueue as i32);
    assert_eq!((wait.warning, wait.critical), (Some(30.0), Some(120.0)));
    assert_eq!(wait.min_interval, Some(300.0));

    // A new rule fires at the next evaluation, and watchers hear of it.
    let rules = admin
        .upsert_rule(pb::UpsertRuleRequest {
            site: SITE.into(),
            rule: Some(queue_busy_rule()),
        })
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(rules.len(), 4);
    changes_until(&mut watcher, |changes| {
        firing(changes, "queue-busy/queue/q-a")
    })
    .await;

    // Writing a rule again with the same settings keeps its alerts (and their history).
    admin
        .ack_alert(pb::AckAlertRequest {
            site: SITE.into(),
            alert: "wait/queue/q-a".into(),
        })
        .await
        .unwrap();
    next(&mut watcher).await;
    admin
        .upsert_rule(pb::UpsertRuleRequest {
            site: SITE.into(),
            rule: Some(wait.clone()),
        })
        .await
        .unwrap();
    let alerts = list(&mut admin, false).await;
    let acked = alerts.iter().find(|a| a.id == "wait/queue/q-a").unwrap();
    assert!(acked.acknowledged.is_some(), "{acked:?}");

    // A refused rule names its fields and changes nothing.
    let status = admin
        .upsert_rule(pb::UpsertRuleRequest {
            site: SITE.into(),
            rule: Some(pb::AlertRule {
                warning: Some(200.0),
                ..wait.clone()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("rule.critical: must be above the warning threshold"),
        "{status:?}"
    );

    // Deleting a rule ends its alerts: watchers get the change, and the alert leaves the list.
    admin
        .delete_rule(pb::DeleteRuleRequest {
            site: SITE.into(),
            rule_id: "busy".into(),
        })
        .await
        .unwrap();
    // Alerts may change meanwhile (the busy rule's own alert may fire first): read until the
    // change that takes the deleted rule's alert off the list.
    let change = tokio::time::timeout(WAIT, async {
        loop {
            let update = next(&mut watcher).await;
            if let Some(change) = update
                .changes
                .into_iter()
                .find(|change| change.alert == "busy/site/paris" && change.current.is_none())
            {
                return change;
            }
        }
    })
    .await
    .unwrap();
    let transition = change.transition.as_ref().unwrap();
    // Resolved if it had fired, reset if it was still pending: both end it for the rule change.
    assert!(
        [
            pb::AlertTransitionKind::Resolved as i32,
            pb::AlertTransitionKind::Reset as i32
        ]
        .contains(&transition.kind),
        "{transition:?}"
    );
    assert_eq!(transition.cause, pb::AlertCause::RuleChanged as i32);
    assert!(change.current.is_none());
    assert!(!ids(&list(&mut admin, false).await).contains(&"busy/site/paris"));
    // The rules as changed are kept, for the next start.
    let store = vigie_api::FileChangeStore::new(fixture.served.changes.path().to_owned());
    let kept = vigie_api::ChangeStore::load_rules(&store, SITE)
        .await
        .unwrap()
        .expect("rules kept");
    let kept_ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    assert!(kept_ids.contains(&"queue-busy"), "{kept_ids:?}");
    assert!(!kept_ids.contains(&"busy"), "{kept_ids:?}");
    assert_eq!(kept.len(), 3);
    let status = admin
        .delete_rule(pb::DeleteRuleRequest {
            site: SITE.into(),
            rule_id: "busy".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = admin
        .list_rules(pb::ListRulesRequest {
            site: "nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_gets_a_resync_and_streams_end_at_shutdown() {
    let fixture = Fixture::start().await;
    fixture.set_clock("09:01:01");
    let mut admin = fixture.client("admin").await;
    tokio::time::timeout(WAIT, async {
        while list(&mut admin, true).await.len() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    // A watcher that reads its snapshot, then nothing while the alerts change many times
    // (each silence is one change): the transport's window fills, the engine's broadcast (16
    // updates here) goes round.
    let mut idle = watch(&mut fixture.slow_client("admin").await).await;
    assert_eq!(next(&mut idle).await.kind, pb::UpdateKind::Snapshot as i32);
    let silences: i32 = 200;
    for n in 0..silences {
        admin
            .silence_alert(pb::SilenceAlertRequest {
                site: SITE.into(),
                alert: "wait/queue/q-a".into(),
                duration: 60.0 + f64::from(n),
            })
            .await
            .unwrap();
    }
    let last = Some(vigie_api::convert::timestamp(Timestamp(
        at("09:01:01").0 + (60 + i64::from(silences) - 1) * 1000,
    )));
    // The watcher reads again: what the transport held, then a resync to the list as it
    // stands (and the changes after it, if any).
    let mut kinds = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let update = next(&mut idle).await;
            kinds.push(update.kind);
            let until = match update.changes.last() {
                Some(change) => change.transition.as_ref().unwrap().until,
                None => update
                    .alerts
                    .iter()
                    .find(|a| a.id == "wait/queue/q-a")
                    .and_then(|a| a.silenced.as_ref())
                    .and_then(|s| s.until),
            };
            if until == last {
                return;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        kinds.contains(&(pb::UpdateKind::Resync as i32)),
        "a watcher that fell behind gets a resync: {kinds:?}"
    );
    assert!(
        kinds.len() < usize::try_from(silences / 2).unwrap(),
        "{} messages for {silences} changes were queued for an idle watcher",
        kinds.len()
    );
    assert_eq!(fixture.served.metric("vigie_api_streams"), Some(1.0));

    // At shutdown the stream ends with UNAVAILABLE.
    let Fixture { served, .. } = fixture;
    drop(served);
    let status = tokio::time::timeout(WAIT, async {
        loop {
            match idle.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends in time");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
}
