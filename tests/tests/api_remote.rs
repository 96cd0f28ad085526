//! A site processed by another instance: this instance serves its views from what the owner
//! published, call for call as the owner serves them, and its wallboards hear when the owner
//! stops.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use tonic_types::StatusExt;
use vigie_api::ApiConfig;
use vigie_core::Window;
use vigie_engine::SiteFeed;
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_client::AlertsClient;
use vigie_proto::v1::history_client::HistoryClient;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_tests::api::{Options, Served, WAIT, alert_rules, day};

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

/// Carries forwarded calls straight to another in-process instance, as NATS does between
/// processes; calls to any other instance find no one.
#[derive(Debug, Default)]
struct Loopback {
    to: std::sync::OnceLock<(String, vigie_api::ForwardedCalls)>,
}

impl vigie_api::Forwarder for Loopback {
    fn forward<'a>(
        &'a self,
        owner: &'a str,
        call: vigie_api::ForwardedCall,
    ) -> futures::future::BoxFuture<'a, Result<bytes::Bytes, tonic::Status>> {
        Box::pin(async move {
            match self.to.get() {
                Some((name, calls)) if name == owner => calls.answer(call).await,
                _ => Err(tonic::Status::unavailable(format!("no instance {owner}"))),
            }
        })
    }
}

/// A request carrying `token` (none: anonymous).
fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// The code and message of an answer, or the answer.
fn outcome<T: PartialEq + std::fmt::Debug>(
    answer: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, (tonic::Code, String)> {
    answer
        .map(tonic::Response::into_inner)
        .map_err(|status| (status.code(), status.message().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_the_owner_answers_is_sent_to_it_with_the_callers_credentials() {
    let (site, events) = day(21, 24);
    let now = events.last().unwrap().time;
    // Both instances share their authentication settings, as a cluster's instances must.
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.toml");
    let manager = vigie_api::auth::generate_token();
    let advisor = vigie_api::auth::generate_token();
    std::fs::write(
        &tokens_file,
        format!(
            "[[token]]\nsha256 = \"{}\"\nsubject = \"camille\"\nrole = \"manager\"\nsites = [\"{site}\"]\n\
             [[token]]\nsha256 = \"{}\"\nsubject = \"a1\"\nrole = \"advisor\"\nsites = [\"{site}\"]\nadvisor = \"a1\"\n",
            vigie_api::auth::hash_token(&manager),
            vigie_api::auth::hash_token(&advisor),
            site = site.id,
        ),
    )
    .unwrap();
    let config = ApiConfig {
        auth: vigie_api::AuthConfig {
            tokens_file: Some(tokens_file),
            ..vigie_api::AuthConfig::default()
        },
        ..ApiConfig::default()
    };
    let (to_owner, to_other) = (
        std::sync::Arc::new(Loopback::default()),
        std::sync::Arc::new(Loopback::default()),
    );
    let history = || {
        let store: std::sync::Arc<dyn vigie_api::history_store::HistoryStore> =
            std::sync::Arc::new(vigie::history_store::HistoryConfig::default().memory());
        Some(store)
    };
    let owner = Served::start_with(
        &site,
        now,
        config.clone(),
        Options {
            rules: Some(rules(&site.id)),
            forwarder: Some(to_other.clone()),
            history: history(),
            ..Options::default()
        },
    )
    .await;
    owner.feed(&events).await;
    let other = Served::start_with(
        &site,
        now,
        config,
        Options {
            forwarder: Some(to_owner.clone()),
            history: history(),
            ..Options::default()
        },
    )
    .await;
    other
        .handle
        .set_feed(&site.id, SiteFeed::elsewhere("owner-1"))
        .await
        .unwrap();
    to_owner
        .to
        .set(("owner-1".to_owned(), owner.calls.clone()))
        .unwrap();
    to_other
        .to
        .set(("other-1".to_owned(), other.calls.clone()))
        .unwrap();
    // Teams and advisors of the site as the owner publishes them.
    let id = site.id.clone();
    for (window, payload) in owner
        .handle
        .query(move |state| vigie_api::published_windows(state, &id))
        .await
        .unwrap()
    {
        other.remote.receive(&site.id, window, &payload).unwrap();
    }

    let mut owner_alerts = AlertsClient::new(owner.channel().await);
    let mut other_alerts = AlertsClient::new(other.channel().await);
    let list = pb::ListAlertsRequest {
        site: site.id.clone(),
        active_only: false,
    };
    let fired = tokio::time::timeout(WAIT, async {
        loop {
            let listed = owner_alerts
                .list_alerts(with_token(list.clone(), Some(&manager)))
                .await
                .unwrap()
                .into_inner();
            if let Some(alert) = listed.alerts.first() {
                return alert.id.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let ack = pb::AckAlertRequest {
        site: site.id.clone(),
        alert: fired.clone(),
    };
    // Credentials travel with the call, and the owner checks them.
    let anonymous = other_alerts
        .ack_alert(with_token(ack.clone(), None))
        .await
        .unwrap_err();
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
    let denied = other_alerts
        .ack_alert(with_token(ack.clone(), Some(&advisor)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let acknowledged = other_alerts
        .ack_alert(with_token(ack, Some(&manager)))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(acknowledged.acknowledged.unwrap().by, "camille");
    let silenced = other_alerts
        .silence_alert(with_token(
            pb::SilenceAlertRequest {
                site: site.id.clone(),
                alert: fired.clone(),
                duration: 600.0,
            },
            Some(&manager),
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert!(silenced.silenced.is_some(), "{silenced:?}");
    // The owner's alert is the one that changed.
    let at_owner = owner_alerts
        .list_alerts(with_token(list, Some(&manager)))
        .await
        .unwrap()
        .into_inner();
    let alert = at_owner.alerts.iter().find(|a| a.id == fired).unwrap();
    assert_eq!(alert.acknowledged.as_ref().unwrap().by, "camille");
    assert_eq!(alert.silenced, silenced.silenced);

    // A notice posted through the other instance is on the owner's board, errors and their
    // details come back as the owner wrote them.
    let mut owner_notices = NoticesClient::new(owner.channel().await);
    let mut other_notices = NoticesClient::new(other.channel().await);
    let post = pb::PostNoticeRequest {
        site: site.id.clone(),
        team: String::new(),
        text: "Outage on the mobile app: apologise and log it".into(),
        level: pb::NoticeLevel::Important as i32,
        duration: 3_600.0,
    };
    let posted = other_notices
        .post_notice(with_token(post.clone(), Some(&manager)))
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let listed = owner_notices
        .list_notices(with_token(
            pb::ListNoticesRequest {
                site: site.id.clone(),
                team: String::new(),
            },
            Some(&manager),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.notices, vec![posted.clone()]);
    let empty = pb::PostNoticeRequest {
        text: "  ".into(),
        ..post
    };
    let refused = other_notices
        .post_notice(with_token(empty, Some(&manager)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let violations = refused.get_error_details().bad_request().unwrap().clone();
    assert_eq!(violations.field_violations[0].field, "text", "{refused:?}");
    let withdrawn = other_notices
        .withdraw_notice(with_token(
            pb::WithdrawNoticeRequest {
                site: site.id.clone(),
                id: posted.id.clone(),
            },
            Some(&manager),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.notice.unwrap().id, posted.id);
    // Notices are read on every instance (each follows the kept notices), the site's teams
    // known from what its owner publishes.
    let team_notices = |team: &str| {
        with_token(
            pb::ListNoticesRequest {
                site: site.id.clone(),
                team: team.to_owned(),
            },
            Some(&manager),
        )
    };
    other_notices
        .list_notices(team_notices(&site.teams[0].id))
        .await
        .unwrap();
    let unknown = other_notices
        .list_notices(team_notices("no-such-team"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument, "{unknown:?}");

    // The site's history is the owner's.
    let mut owner_history = HistoryClient::new(owner.channel().await);
    let mut other_history = HistoryClient::new(other.channel().await);
    let report = pb::GetReportRequest {
        site: site.id.clone(),
        team: site.teams[0].id.clone(),
        ..Default::default()
    };
    let expected = outcome(
        owner_history
            .get_report(with_token(report.clone(), Some(&manager)))
            .await,
    );
    assert!(expected.is_ok(), "{expected:?}");
    assert_eq!(
        outcome(
            other_history
                .get_report(with_token(report, Some(&manager)))
                .await
        ),
        expected
    );
    let abandoned = pb::ListAbandonedContactsRequest {
        site: site.id.clone(),
        ..Default::default()
    };
    let expected = outcome(
        owner_history
            .list_abandoned_contacts(with_token(abandoned.clone(), Some(&manager)))
            .await,
    );
    // Answered here, it would be UNAVAILABLE: only the owner holds today's abandoned list.
    assert!(expected.is_ok(), "{expected:?}");
    assert_eq!(
        outcome(
            other_history
                .list_abandoned_contacts(with_token(abandoned, Some(&manager)))
                .await
        ),
        expected
    );

    // Each instance believes the other holds the site (a handover under way): a forwarded
    // call is answered where it arrives, never sent back.
    owner
        .handle
        .set_feed(&site.id, SiteFeed::elsewhere("other-1"))
        .await
        .unwrap();
    let unavailable = tokio::time::timeout(
        WAIT,
        other_alerts.ack_alert(with_token(
            pb::AckAlertRequest {
                site: site.id.clone(),
                alert: fired,
            },
            Some(&manager),
        )),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(
        unavailable.code(),
        tonic::Code::Unavailable,
        "{unavailable:?}"
    );
    assert!(unavailable.message().contains("other-1"), "{unavailable:?}");
}
