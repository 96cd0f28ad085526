//! The Admin service: changes apply live and give the figures a replay with the changed
//! configuration gives; invalid changes say which field and why and change nothing; only
//! admins may call it; changes are kept, replayed at start, and followed across instances
//! through the NATS KV bucket.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use vigie_api::notices::{Draft, NoticeLevel};
use vigie_api::{ApiConfig, ChangeStore, KeptNotices, NoticeBoard, StoreError};
use vigie_core::config::{HumanDuration, SiteChange};
use vigie_core::{
    Event, ProcessingConfig, Processor, QueueConfig, SiteConfig, TeamConfig, Timestamp, Window,
};
use vigie_proto::v1 as pb;
use vigie_proto::v1::admin_client::AdminClient;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_tests::api::{Options, Served, WAIT, day};
use vigie_tests::nats::NatsServer;

fn replay(site: &SiteConfig, events: &[Event], at: Timestamp) -> Processor {
    let mut processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
    for event in events {
        processor.apply(event);
    }
    processor.advance_to(at);
    processor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_applies_live_and_gives_the_figures_of_a_replay_with_that_configuration() {
    let (site, events) = day(31, 36);
    let at = events.iter().map(|e| e.time).max().unwrap();
    let served = Served::start(&site, at, ApiConfig::default()).await;
    served.feed(&events).await;
    let mut admin = AdminClient::new(served.channel().await);
    let mut client = served.client().await;

    let config = admin
        .get_site_config(pb::GetSiteConfigRequest {
            site: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.changes, 0);
    assert_eq!(
        config.config.as_ref().unwrap().queues.len(),
        site.queues.len()
    );

    // A stricter threshold on the first queue, and its first team's first advisor moved to the
    // second team.
    let queue_id = site.queues[0].id.clone();
    let mut queue = config.config.as_ref().unwrap().queues[0].clone();
    queue.sl_threshold = 7.0;
    queue.sl_target = 0.9;
    let changed = admin
        .upsert_queue(pb::UpsertQueueRequest {
            site: site.id.clone(),
            queue: Some(queue),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.changes, 1);
    let (from, to) = (site.teams[0].clone(), site.teams[1].clone());
    let mover = from.advisors[0].clone();
    let watched = client
        .watch_team(pb::WatchTeamRequest {
            site: site.id.clone(),
            team: to.id.clone(),
            window: 0,
        })
        .await
        .unwrap();
    let mut watched = watched.into_inner();
    let moved = admin
        .move_advisor(pb::MoveAdvisorRequest {
            site: site.id.clone(),
            advisor: mover.clone(),
            team: to.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.changes, 2);

    // The same day replayed with the changed configuration.
    let mut expected_site = site.clone();
    let expected_queue = expected_site
        .queues
        .iter_mut()
        .find(|q| q.id == queue_id)
        .unwrap();
    expected_queue.sl_threshold = HumanDuration(Duration::from_secs(7));
    expected_queue.sl_target = 0.9;
    expected_site.teams[0].advisors.retain(|a| a != &mover);
    expected_site.teams[1].advisors.push(mover.clone());
    let replayed = replay(&expected_site, &events, at);
    let expected = replayed.site(&site.id).unwrap();
    for window in Window::ALL {
        let wire: i32 = vigie_api::convert::window_to_wire(window).into();
        let got = client
            .get_queue_view(pb::GetQueueViewRequest {
                site: site.id.clone(),
                queue: queue_id.clone(),
                window: wire,
            })
            .await
            .unwrap()
            .into_inner();
        let core = expected.queue_view(&queue_id, window).unwrap();
        assert_eq!((got.sl_threshold, got.sl_target), (7.0, 0.9));
        // A new threshold recounts the trailing windows at once; the day's figures already
        // counted keep the threshold they were counted with (docs/api.md, Admin).
        if window != Window::Today {
            let flow = got.indicators.as_ref().unwrap().flow.as_ref().unwrap();
            assert_eq!(
                flow.answered_within_threshold, core.indicators.flow.answered_within_threshold,
                "{window}"
            );
            assert_eq!(
                flow.service_level, core.indicators.flow.service_level,
                "{window}"
            );
        }
        for team in [&from.id, &to.id] {
            let got = client
                .get_team_view(pb::GetTeamViewRequest {
                    site: site.id.clone(),
                    team: team.clone(),
                    window: wire,
                })
                .await
                .unwrap()
                .into_inner();
            let core = expected.team_view(team, window).unwrap();
            let mut expected_team = vigie_api::convert::team(&core);
            expected_team.staffing = vigie_api::staffing::team_gap(expected, team);
            let mut got_team = got.team.unwrap();
            if window == Window::Today {
                // Only the threshold counts of the day keep the old threshold (see above).
                let threshold_counts = |team: &mut pb::Team| {
                    let flow = team.indicators.as_mut().unwrap().flow.as_mut().unwrap();
                    (
                        flow.answered_within_threshold,
                        flow.abandoned_within_threshold,
                    ) = (0, 0);
                    (
                        flow.sl_offered,
                        flow.sl_answered,
                        flow.sl_positive,
                        flow.service_level,
                    ) = (None, None, None, None);
                };
                threshold_counts(&mut expected_team);
                threshold_counts(&mut got_team);
            }
            // The service level by interval is the day's in every window: its threshold counts
            // keep the old threshold in the same way.
            for team in [&mut expected_team, &mut got_team] {
                for interval in &mut team.service_level_by_interval {
                    interval.answered_within_threshold = 0;
                    interval.abandoned_within_threshold = 0;
                    interval.service_level = None;
                }
            }
            assert_eq!(got_team, expected_team, "{team} {window}");
        }
    }
    let advisor = client
        .get_advisor_view(pb::GetAdvisorViewRequest {
            site: site.id.clone(),
            advisor: mover.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(advisor.advisor.unwrap().team, to.id);
    // Wallboards of the team see the newcomer without reconnecting.
    tokio::time::timeout(WAIT, async {
        loop {
            let update = watched.message().await.unwrap().unwrap();
            if update
                .view
                .unwrap()
                .advisors
                .iter()
                .any(|a| a.advisor == mover)
            {
                return;
            }
        }
    })
    .await
    .unwrap();

    // The changes are kept, in order.
    let store = vigie_api::FileChangeStore::new(served.changes.path().to_owned());
    let kept = store.load(&site.id).await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(
        matches!(&kept[1], SiteChange::MoveAdvisor { advisor, team } if advisor == &mover && team == &to.id)
    );
    let mut restarted = site.clone();
    assert!(vigie_api::replay_changes(&mut restarted, &kept).is_empty());
    assert_eq!(
        restarted, expected_site,
        "replayed at start, the changes give the same site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_changes_name_each_field_and_change_nothing() {
    let (site, _) = day(32, 6);
    let served = Served::start(&site, Timestamp(1_700_000_000_000), ApiConfig::default()).await;
    let mut admin = AdminClient::new(served.channel().await);

    let error = admin
        .upsert_queue(pb::UpsertQueueRequest {
            site: site.id.clone(),
            queue: Some(pb::QueueSettings {
                queue: "new".into(),
                sl_threshold: -1.0,
                sl_target: 1.5,
                short_abandon: 5.0,
                ..pb::QueueSettings::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let fields: Vec<String> = error
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        ["queue.sl_threshold", "queue.sl_target"],
        "{}",
        error.message()
    );

    let error = admin
        .upsert_team(pb::UpsertTeamRequest {
            site: site.id.clone(),
            team: Some(pb::TeamSettings {
                team: "night".into(),
                queues: vec!["no-such-queue".into()],
                ..pb::TeamSettings::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let violation = &error.get_details_bad_request().unwrap().field_violations[0];
    assert!(violation.field.ends_with(".queues[0]"), "{violation:?}");
    assert!(
        violation.description.contains("not defined"),
        "{violation:?}"
    );

    let error = admin
        .move_advisor(pb::MoveAdvisorRequest {
            site: site.id.clone(),
            advisor: "a1".into(),
            team: "no-such-team".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = admin
        .get_site_config(pb::GetSiteConfigRequest {
            site: "elsewhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    let config = admin
        .get_site_config(pb::GetSiteConfigRequest {
            site: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.changes, 0, "nothing was kept");
    let config = config.config.unwrap();
    assert_eq!(config.queues.len(), site.queues.len());
    assert_eq!(config.teams.len(), site.teams.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_may_change_the_configuration() {
    let (site, _) = day(33, 6);
    let entry = |role: &str, scope: &str| {
        let token = vigie_api::auth::generate_token();
        let line = format!(
            "[[token]]\nsha256 = \"{}\"\nsubject = \"{role}\"\nrole = \"{role}\"\n{scope}\n",
            vigie_api::auth::hash_token(&token)
        );
        (token, line)
    };
    let (admin_token, admin_entry) = entry("admin", "");
    let (manager_token, manager_entry) = entry("manager", &format!("sites = [\"{}\"]", site.id));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, admin_entry + &manager_entry).unwrap();
    let config = ApiConfig {
        auth: vigie_api::AuthConfig {
            tokens_file: Some(file),
            ..vigie_api::AuthConfig::default()
        },
        ..ApiConfig::default()
    };
    let served = Served::start(&site, Timestamp(1_700_000_000_000), config).await;
    let channel = served.channel().await;
    let call = |token: Option<String>| {
        let mut admin = AdminClient::new(channel.clone());
        let site = site.id.clone();
        async move {
            let mut request = tonic::Request::new(pb::GetSiteConfigRequest { site });
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            admin
                .get_site_config(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    assert_eq!(call(Some(admin_token)).await, Ok(()));
    assert_eq!(call(Some(manager_token)).await, Err(Code::PermissionDenied));
    assert_eq!(call(None).await, Err(Code::Unauthenticated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_bucket_keeps_changes_in_order_and_other_instances_follow_them() {
    let nats = NatsServer::start();
    let (client, context) = vigie_ingest::connect(&nats.nats_config()).await.unwrap();
    let store = Arc::new(
        vigie::changes::NatsChangeStore::open(&context, "vigie-config", 1)
            .await
            .unwrap(),
    );
    let (site, events) = day(34, 6);
    assert!(store.load(&site.id).await.unwrap().is_empty());
    let mut queue = QueueConfig::with_defaults(site.queues[0].id.clone());
    queue.sl_target = 0.95;
    let first = SiteChange::UpsertQueue { queue };
    store.append(&site.id, 0, &first).await.unwrap();
    // A second writer that did not see the first change is refused.
    assert!(matches!(
        store.append(&site.id, 0, &first).await,
        Err(StoreError::Conflict)
    ));

    // Another instance: its engine follows the bucket.
    let at = events.iter().map(|e| e.time).max().unwrap();
    let options = Options {
        store: Some(store.clone()),
        rules: Some(Vec::new()),
        ..Options::default()
    };
    let other = Served::start_with(&site, at, ApiConfig::default(), options).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(store.clone().follow(
        vec![site.clone()],
        other.handle.clone(),
        other.notices.clone(),
        shutdown.clone(),
    ));
    let team = TeamConfig {
        id: "night".into(),
        name: Some("Night shift".into()),
        advisors: Vec::new(),
        queues: vec![site.queues[0].id.clone()],
        sl_variant: None,
    };
    store
        .append(&site.id, 1, &SiteChange::UpsertTeam { team })
        .await
        .unwrap();
    assert_eq!(store.load(&site.id).await.unwrap().len(), 2);
    let mut admin = AdminClient::new(other.channel().await);
    tokio::time::timeout(WAIT, async {
        loop {
            let config = admin
                .get_site_config(pb::GetSiteConfigRequest {
                    site: site.id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .config
                .unwrap();
            let target = config
                .queues
                .iter()
                .find(|q| q.queue == site.queues[0].id)
                .unwrap()
                .sl_target;
            if config.teams.iter().any(|t| t.team == "night") && target == 0.95 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();

    // Alert rules are kept under their own key, and followed too.
    assert!(store.load_rules(&site.id).await.unwrap().is_none());
    let rules = vigie::alerting::default_rules(&site.id).unwrap();
    store.save_rules(&site.id, &rules[..2]).await.unwrap();
    assert_eq!(
        store.load_rules(&site.id).await.unwrap().unwrap(),
        rules[..2].to_vec()
    );
    tokio::time::timeout(WAIT, async {
        loop {
            let id = site.id.clone();
            let count = other
                .handle
                .query(move |state| state.alerts.get(&id).map(|a| a.rules().count()))
                .await
                .unwrap();
            if count == Some(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();

    // Wallboard notices are kept with compare-and-set on their key's revision, and the
    // boards of the other instances follow what is kept.
    let mut notices = NoticesClient::new(other.channel().await);
    let list = pb::ListNoticesRequest {
        site: site.id.clone(),
        team: String::new(),
    };
    let texts = |response: pb::ListNoticesResponse| -> Vec<String> {
        response.notices.into_iter().map(|n| n.text).collect()
    };
    // Read once: the board is loaded, then follows the bucket.
    assert!(
        texts(
            notices
                .list_notices(list.clone())
                .await
                .unwrap()
                .into_inner()
        )
        .is_empty()
    );
    assert_eq!(
        store.load_notices(&site.id).await.unwrap(),
        KeptNotices::default()
    );
    let mut board = NoticeBoard::new();
    let draft = Draft {
        team: None,
        text: "Outage on the mobile app: apologise and log it".to_owned(),
        level: NoticeLevel::Important,
        duration: 3_600.0,
        posted_by: "manager".to_owned(),
    };
    let now = Timestamp(chrono::Utc::now().timestamp_millis());
    board.post(draft, now).unwrap();
    let revision = store
        .save_notices(&site.id, board.notices(), 0)
        .await
        .unwrap();
    // A writer that did not see that save is refused.
    assert!(matches!(
        store.save_notices(&site.id, &[], 0).await,
        Err(StoreError::Conflict)
    ));
    let followed = |expected: Vec<String>| {
        let (mut notices, list) = (notices.clone(), list.clone());
        async move {
            tokio::time::timeout(WAIT, async {
                while texts(
                    notices
                        .list_notices(list.clone())
                        .await
                        .unwrap()
                        .into_inner(),
                ) != expected
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .unwrap();
        }
    };
    followed(vec![board.notices()[0].text.clone()]).await;
    store.save_notices(&site.id, &[], revision).await.unwrap();
    followed(Vec::new()).await;
    shutdown.cancel();
    drop(client);
}
