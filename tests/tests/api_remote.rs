//! A site processed by another instance: this instance serves its views from what the owner
//! published, call for call as the owner serves them, and its wallboards hear when the owner
//! stops.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use vigie_api::ApiConfig;
use vigie_core::Window;
use vigie_engine::SiteFeed;
use vigie_proto::v1 as pb;
use vigie_tests::api::{Served, WAIT, alert_rules, day};

fn wire(window: Window) -> i32 {
    vigie_api::convert::window_to_wire(window).into()
}

/// A rule that fires on every queue of a simulated day: a service level below 100%.
fn rules(site: &str) -> Vec<vigie_alerts::RuleConfig> {
    alert_rules(&format!(
        r#"
        [[alert_rule]]
        site = "{site}"
        id = "sl"
        name = "Service level below 100%"
        scope = "every_queue"
        metric = "service_level"
        window = "today"
        comparator = "below"
        warning = "100%"
        "#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_processed_elsewhere_is_served_as_its_owner_serves_it() {
    let (site, events) = day(21, 24);
    let now = events.last().unwrap().time;
    let owner = Served::start_with_rules(&site, now, ApiConfig::default(), rules(&site.id)).await;
    owner.feed(&events).await;
    let other = Served::start(&site, now, ApiConfig::default()).await;
    other
        .handle
        .set_feed(&site.id, SiteFeed::elsewhere("owner-1"))
        .await
        .unwrap();
    let id = site.id.clone();
    let windows = owner
        .handle
        .query(move |state| vigie_api::published_windows(state, &id))
        .await
        .unwrap();
    assert_eq!(windows.len(), Window::ALL.len());
    for (window, payload) in &windows {
        other.remote.receive(&site.id, *window, payload).unwrap();
    }
    // The owner's alerts fire, and are published with the views.
    let mut owner_alerts = vigie_proto::v1::alerts_client::AlertsClient::new(owner.channel().await);
    let mut other_alerts = vigie_proto::v1::alerts_client::AlertsClient::new(other.channel().await);
    let list = pb::ListAlertsRequest {
        site: site.id.clone(),
        active_only: false,
    };
    let fired = tokio::time::timeout(WAIT, async {
        loop {
            let listed = owner_alerts
                .list_alerts(list.clone())
                .await
                .unwrap()
                .into_inner();
            if !listed.alerts.is_empty() {
                return listed;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let unavailable = other_alerts.list_alerts(list.clone()).await.unwrap_err();
    assert_eq!(
        unavailable.code(),
        tonic::Code::Unavailable,
        "{unavailable:?}"
    );
    let id = site.id.clone();
    let alerts = owner
        .handle
        .query(move |state| vigie_api::published_alerts(state, &id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alerts.alerts, fired.alerts);
    other
        .remote
        .receive_alerts(&site.id, &prost::Message::encode_to_vec(&alerts))
        .unwrap();
    assert_eq!(
        other_alerts
            .list_alerts(list.clone())
            .await
            .unwrap()
            .into_inner(),
        fired
    );
    let mut watching = other_alerts
        .watch_alerts(pb::WatchAlertsRequest {
            site: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let snapshot = watching.message().await.unwrap().unwrap();
    assert_eq!(snapshot.alerts, fired.alerts);
    // The owner publishes a change (here: an acknowledgement): the watchers here get the new
    // list.
    let mut changed = alerts.clone();
    changed.alerts[0].acknowledged = Some(pb::AlertAcknowledgement {
        by: "camille".into(),
        at: None,
    });
    other
        .remote
        .receive_alerts(&site.id, &prost::Message::encode_to_vec(&changed))
        .unwrap();
    let resync = tokio::time::timeout(WAIT, watching.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resync.kind, pb::UpdateKind::Resync as i32);
    assert_eq!(resync.alerts, changed.alerts);

    let (mut from_owner, mut from_other) = (owner.client().await, other.client().await);
    let site_id = site.id.clone();

    let teams = pb::ListTeamsRequest {
        site: site_id.clone(),
    };
    let listed = from_owner
        .list_teams(teams.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.teams.is_empty());
    assert_eq!(
        listed,
        from_other.list_teams(teams).await.unwrap().into_inner()
    );
    let queues = pb::ListQueuesRequest {
        site: site_id.clone(),
    };
    let listed_queues = from_owner
        .list_queues(queues.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed_queues,
        from_other.list_queues(queues).await.unwrap().into_inner()
    );
    let advisors = pb::ListAdvisorsRequest {
        site: site_id.clone(),
        team: None,
    };
    let listed_advisors = from_owner
        .list_advisors(advisors.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!listed_advisors.advisors.is_empty());
    assert_eq!(
        listed_advisors,
        from_other
            .list_advisors(advisors)
            .await
            .unwrap()
            .into_inner()
    );

    for window in Window::ALL.map(wire) {
        let request = pb::GetSiteViewRequest {
            site: site_id.clone(),
            window,
        };
        let expected = from_owner
            .get_site_view(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(expected.header.as_ref().unwrap().complete);
        assert_eq!(
            expected,
            from_other
                .get_site_view(request)
                .await
                .unwrap()
                .into_inner()
        );
        for team in &listed.teams {
            let request = pb::GetTeamViewRequest {
                site: site_id.clone(),
                team: team.team.clone(),
                window,
            };
            assert_eq!(
                from_owner
                    .get_team_view(request.clone())
                    .await
                    .unwrap()
                    .into_inner(),
                from_other
                    .get_team_view(request)
                    .await
                    .unwrap()
                    .into_inner()
            );
        }
        for queue in &listed_queues.queues {
            let request = pb::GetQueueViewRequest {
                site: site_id.clone(),
                queue: queue.queue.clone(),
                window,
            };
            assert_eq!(
                from_owner
                    .get_queue_view(request.clone())
                    .await
                    .unwrap()
                    .into_inner(),
                from_other
                    .get_queue_view(request)
                    .await
                    .unwrap()
                    .into_inner()
            );
        }
        for advisor in &listed_advisors.advisors {
            let request = pb::GetAdvisorViewRequest {
                site: site_id.clone(),
                advisor: advisor.advisor.clone(),
                window,
            };
            assert_eq!(
                from_owner
                    .get_advisor_view(request.clone())
                    .await
                    .unwrap()
                    .into_inner(),
                from_other
                    .get_advisor_view(request)
                    .await
                    .unwrap()
                    .into_inner()
            );
        }
    }
    // A target the owner does not know is not found here either.
    let unknown = from_other
        .get_team_view(pb::GetTeamViewRequest {
            site: site_id.clone(),
            team: "no-such-team".into(),
            window: wire(Window::Today),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");

    // A wallboard on this instance hears when the owner stops: same figures, incomplete.
    let mut stream = from_other
        .watch_site(pb::WatchSiteRequest {
            site: site_id.clone(),
            window: wire(Window::Today),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first_view = first.view.unwrap();
    assert!(first_view.header.as_ref().unwrap().complete);
    other
        .handle
        .set_feed(&site.id, SiteFeed::elsewhere(""))
        .await
        .unwrap();
    let got = from_other
        .get_site_view(pb::GetSiteViewRequest {
            site: site_id.clone(),
            window: wire(Window::Today),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!got.header.unwrap().complete, "a read says so too");
    let next = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let view = next.view.unwrap();
    let header = view.header.clone().unwrap();
    assert!(!header.complete);
    assert!(
        header
            .incomplete_reason
            .contains("no instance processes this site"),
        "{header:?}"
    );
    assert_eq!(view.totals, first_view.totals);
}
