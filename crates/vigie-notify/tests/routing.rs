//! Each team's alerts go to its channel, filtered by site, severity and kind; every alert is
//! published as JSON on `vigie.alerts.<site>.<team>`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Receiver, config, config_toml, notification, route, start, within};
use futures::StreamExt;
use vigie_notify::{AlertPayload, NotificationKind, Severity};
use vigie_tests::nats::NatsServer;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn alerts_are_routed_by_site_team_severity_and_kind() {
    let mut receiver = Receiver::start().await;
    let routes = [
        route(
            "sales",
            "json",
            &receiver.url("/sales"),
            "teams = [\"sales\"]",
        ),
        route(
            "support",
            "json",
            &receiver.url("/support"),
            "teams = [\"support\"]",
        ),
        route(
            "site-default",
            "json",
            &receiver.url("/site-default"),
            "teams = [\"_\"]",
        ),
        route(
            "paris-critical",
            "json",
            &receiver.url("/paris-critical"),
            "sites = [\"paris\"]\nseverities = [\"critical\"]",
        ),
        route("lyon", "json", &receiver.url("/lyon"), "sites = [\"lyon\"]"),
        route(
            "resolutions",
            "json",
            &receiver.url("/resolutions"),
            "kinds = [\"resolved\"]",
        ),
    ]
    .concat();
    let running = start(&config(&config_toml(&routes)), None);

    let sample = |id: &str, site: &str, team: Option<&str>, severity: Severity| {
        let mut n = notification();
        n.alert_id = id.to_owned();
        n.site = site.to_owned();
        n.team = team.map(str::to_owned);
        n.severity = severity;
        n
    };
    let mut n5 = sample("n5", "paris", Some("sales"), Severity::Warning);
    n5.kind = NotificationKind::Resolved;
    for n in [
        sample("n1", "paris", Some("sales"), Severity::Warning),
        sample("n2", "paris", Some("support"), Severity::Critical),
        sample("n3", "paris", None, Severity::Warning),
        sample("n4", "lyon", Some("sales"), Severity::Critical),
        n5,
    ] {
        running.handle.try_send(n).unwrap();
    }
    // Stopping delivers everything queued first: what arrived is all that will.
    let metrics = running.finish().await;

    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in receiver.drain() {
        got.entry(request.path[1..].to_owned())
            .or_default()
            .push(request.body["alert_id"].as_str().unwrap_or("?").to_owned());
    }
    let expected: BTreeMap<String, Vec<String>> = [
        ("sales", vec!["n1", "n4", "n5"]),
        ("support", vec!["n2"]),
        ("site-default", vec!["n3"]),
        ("paris-critical", vec!["n2"]),
        ("lyon", vec!["n4"]),
        ("resolutions", vec!["n5"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(metrics.delivered_total("sales"), 3);
    assert_eq!(metrics.accepted_total(), 5);
}

#[tokio::test]
async fn alerts_are_published_as_json_on_their_site_and_team_subject() {
    let server = NatsServer::start();
    let (client, _) = server.connect().await;
    let mut subscriber = within(
        "subscribing",
        SECOND * 10,
        client.subscribe("vigie.alerts.>"),
    )
    .await
    .expect("subscribing to the alerts");
    // Make sure the subscription is in place on the server before anything is published.
    within("flushing", SECOND * 10, client.flush())
        .await
        .expect("flush");

    let running = start(
        &config(&config_toml("[nats]\nlanguage = \"fr\"\n")),
        Some(client.clone()),
    );
    let mut site_wide = notification();
    site_wide.alert_id = "a-site".to_owned();
    site_wide.team = None;
    site_wide.team_name = None;
    let mut odd = notification();
    odd.alert_id = "a-odd".to_owned();
    odd.site = "lyon.2".to_owned();
    odd.team = Some("back office".to_owned());
    for n in [notification(), site_wide, odd] {
        running.handle.try_send(n).unwrap();
    }

    let mut messages = Vec::new();
    for _ in 0..3 {
        let message = within(
            "an alert on NATS",
            Duration::from_secs(10),
            subscriber.next(),
        )
        .await
        .expect("the subscription stays open");
        messages.push(message);
    }
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "vigie.alerts.paris.sales",
            "vigie.alerts.paris._",
            "vigie.alerts.lyon_2.back_office"
        ]
    );
    let first: AlertPayload =
        serde_json::from_slice(&messages[0].payload).expect("the payload is an AlertPayload");
    assert_eq!(first.version, 1);
    assert_eq!(first.site, "paris");
    assert_eq!(first.team.as_deref(), Some("sales"));
    assert_eq!(first.alert_id, "a-42");
    assert_eq!(first.rule_name, "SL Ventes");
    assert_eq!(first.metric_label, "Niveau de service");
    assert_eq!(first.value, Some(0.72));
    assert_eq!(first.since, "2024-03-05T09:12:00.000+01:00");
    assert_eq!(first.message.title, "🔴 Alerte critique : SL Ventes");
    let headers = messages[0].headers.as_ref().expect("headers");
    assert_eq!(
        headers.get("Content-Type").map(|v| v.as_str()),
        Some("application/json")
    );
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some(format!("a-42.fired.{}", first.at_ms).as_str())
    );
    let second: serde_json::Value = serde_json::from_slice(&messages[1].payload).expect("JSON");
    assert_eq!(second["team"], serde_json::Value::Null);
    assert_eq!(second["alert_id"], "a-site");
    let third: AlertPayload = serde_json::from_slice(&messages[2].payload).expect("JSON");
    assert_eq!(
        third.site, "lyon.2",
        "the payload keeps the real identifiers"
    );

    let metrics = running.finish().await;
    assert_eq!(metrics.delivered_total("nats"), 3);
}

#[tokio::test]
async fn nats_publication_can_be_turned_off() {
    let server = NatsServer::start();
    let (client, _) = server.connect().await;
    let mut subscriber = within(
        "subscribing",
        SECOND * 10,
        client.subscribe("vigie.alerts.>"),
    )
    .await
    .expect("subscribe");
    within("flushing", SECOND * 10, client.flush())
        .await
        .expect("flush");
    let running = start(
        &config(&config_toml("[nats]\nenabled = false\n")),
        Some(client.clone()),
    );
    running.handle.try_send(notification()).unwrap();
    let metrics = running.finish().await;
    assert_eq!(metrics.delivered_total("nats"), 0);
    let nothing = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
    assert!(nothing.is_err(), "nothing is published");
}
