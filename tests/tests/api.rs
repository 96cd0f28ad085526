//! The gRPC API in process, against a real engine fed with a simulated day: its views equal
//! what `vigie replay` computes, streams reconstruct what `Get*` returns, slow and idle
//! clients hurt nobody, health follows recovery and reflection lists the services.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::sync::atomic::Ordering;
use std::time::Duration;

use vigie::replay::apply_lines;
use vigie_api::ApiConfig;
use vigie_core::{Event, ProcessingConfig, Processor, SiteConfig, Timestamp, Window};
use vigie_proto::v1 as pb;
use vigie_tests::api::{Served, WAIT, day};

/// Advisors on the phones: available, ringing, talking, on hold or in wrap-up.
fn on_the_phones(advisors: &vigie_core::views::AdvisorsByState) -> u32 {
    advisors.available + advisors.offered + advisors.talking + advisors.on_hold + advisors.acw
}

/// Checks a queue's or a team's staffing against the core's offered counts over the trailing
/// 15 and 30 minutes, its advisors, and Erlang C computed here; true when it is defined.
fn check_staffing(
    staffing: &pb::StaffingGap,
    offered_15m: u64,
    offered_30m: u64,
    staffed: u32,
) -> bool {
    assert_eq!(staffing.arrival_rate_15m, offered_15m as f64 * 4.0);
    assert_eq!(staffing.arrival_rate_30m, offered_30m as f64 * 2.0);
    assert_eq!(staffing.staffed_advisors, staffed);
    assert_eq!(staffing.model, pb::StaffingModel::ErlangC as i32);
    let Some(required) = staffing.required_advisors else {
        assert!(!staffing.undefined_reason.is_empty(), "{staffing:?}");
        assert_eq!(staffing.staffing_gap, None);
        return false;
    };
    let (volume, minutes) = if offered_15m * 2 > offered_30m {
        (offered_15m, 15)
    } else {
        (offered_30m, 30)
    };
    let traffic = vigie_staffing::Traffic::from_volume(
        volume as f64,
        Duration::from_secs(minutes * 60),
        Duration::from_secs_f64(staffing.aht.unwrap()),
    )
    .unwrap();
    let target = vigie_staffing::Target::new(
        Duration::from_secs_f64(staffing.sl_threshold),
        Some(staffing.sl_target),
        None,
        None,
    )
    .unwrap();
    let erlang_c =
        vigie_staffing::required_advisors(&traffic, &vigie_staffing::Model::ErlangC, &target)
            .unwrap();
    assert_eq!(required, erlang_c.advisors, "{staffing:?}");
    assert_eq!(staffing.load, Some(traffic.load_erlangs()));
    assert_eq!(
        staffing.staffing_gap,
        Some(staffed as i32 - required as i32)
    );
    true
}

/// What `vigie replay` computes on the same events, at the same instant.
fn replay(site: &SiteConfig, events: &[Event], at: Timestamp) -> Processor {
    let mut processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
    let lines: String = events.iter().map(|e| e.to_json() + "\n").collect();
    apply_lines(
        lines.as_bytes(),
        &mut processor,
        Some(at),
        None,
        std::io::sink(),
    )
    .unwrap();
    processor.advance_to(at);
    processor
}

/// Checks the service level by interval of a queue or team view: every interval of the day up
/// to `now`, 15 minutes apart, adding up to the `today` flow, each with its service level.
fn check_intervals(
    intervals: &[pb::IntervalServiceLevel],
    today: &vigie_core::views::FlowIndicators,
    now: Timestamp,
) {
    let first = intervals.first().unwrap().start.unwrap();
    assert_eq!(
        first.seconds % 900,
        0,
        "a day in Paris starts on a quarter hour"
    );
    let last = intervals.last().unwrap().start.unwrap();
    assert!(last.seconds <= now.0 / 1000 && now.0 / 1000 < last.seconds + 900);
    let mut sums = [0; 5];
    for (index, interval) in intervals.iter().enumerate() {
        assert_eq!(
            interval.start.unwrap().seconds,
            first.seconds + 900 * index as i64
        );
        let counts = [
            interval.answered,
            interval.answered_within_threshold,
            interval.abandoned,
            interval.short_abandoned,
            interval.abandoned_within_threshold,
        ];
        for (sum, count) in sums.iter_mut().zip(counts) {
            *sum += u64::from(count);
        }
        let ratio = |numerator: u32, denominator: u32| {
            (denominator > 0).then(|| f64::from(numerator) / f64::from(denominator))
        };
        let (answered, abandoned) = (interval.answered, interval.abandoned);
        let expected = match today.service_level_variant {
            vigie_core::SlVariant::Offered => ratio(
                interval.answered_within_threshold,
                answered + abandoned - interval.short_abandoned,
            ),
            vigie_core::SlVariant::Answered => ratio(interval.answered_within_threshold, answered),
            vigie_core::SlVariant::Positive => ratio(
                interval.answered_within_threshold + interval.abandoned_within_threshold,
                answered + abandoned,
            ),
        };
        assert_eq!(interval.service_level, expected, "{interval:?}");
    }
    assert_eq!(
        sums,
        [
            today.answered,
            today.answered_within_threshold,
            today.abandoned,
            today.short_abandoned,
            today.abandoned_within_threshold
        ]
    );
}

fn wire(window: Window) -> i32 {
    vigie_api::convert::window_to_wire(window).into()
}

/// Drops the header (its sequence number and feed status are the engine's, not replay's).
fn without_header<T: Clone>(view: &T, clear: impl Fn(&mut T)) -> T {
    let mut view = view.clone();
    clear(&mut view);
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_through_the_api_gives_the_figures_of_replay_for_every_view_and_window() {
    let (site, events) = day(11, 30);
    let at = events.iter().map(|e| e.time).max().unwrap() + vigie_core::Millis::from_mins(5);
    let served = Served::start(&site, at, ApiConfig::default()).await;
    served.feed(&events).await;
    let replayed = replay(&site, &events, at);
    let expected_site = replayed.site(&site.id).unwrap();
    let mut client = served.client().await;
    // The first staffing seen per queue and team: it does not depend on the window. (The day
    // is over, so nothing was offered in the last 30 minutes and no estimate is defined here;
    // the_views_carry_the_live_staffing_gap_of_replay checks defined ones, mid-morning.)
    let mut staffing_seen = std::collections::HashMap::new();

    for window in Window::ALL {
        let view = client
            .get_site_view(pb::GetSiteViewRequest {
                site: site.id.clone(),
                window: wire(window),
            })
            .await
            .unwrap()
            .into_inner();
        let header = view.header.clone().unwrap();
        assert_eq!(header.site, site.id);
        assert_eq!(header.window, wire(window));
        assert!(header.complete, "{header:?}");
        assert_eq!(
            header.as_of,
            Some(vigie_api::convert::timestamp(at)),
            "views are taken at the engine's clock"
        );
        let core = expected_site.site_view(window);
        assert!(!core.advisors.is_empty() && !core.queues.is_empty());
        // The figures, independently of the wire conversion.
        let totals = view.totals.as_ref().unwrap();
        let flow = totals.flow.as_ref().unwrap();
        assert_eq!(flow.offered, core.totals.flow.offered);
        assert_eq!(flow.answered, core.totals.flow.answered);
        assert_eq!(flow.service_level, core.totals.flow.service_level);
        assert_eq!(flow.abandon_rate, core.totals.flow.abandon_rate);
        assert_eq!(
            totals
                .advisors_indicators
                .as_ref()
                .unwrap()
                .handling
                .as_ref()
                .unwrap()
                .aht,
            core.totals.advisors_indicators.handling.aht
        );
        assert_eq!(view.advisors.len(), core.advisors.len());
        assert_eq!(view.queues.len(), core.queues.len());

        // Every queue, team and advisor, field for field, through its own RPC too.
        for queue in &core.queues {
            let got = client
                .get_queue_view(pb::GetQueueViewRequest {
                    site: site.id.clone(),
                    queue: queue.queue.clone(),
                    window: wire(window),
                })
                .await
                .unwrap()
                .into_inner();
            let mut expected = vigie_api::convert::queue(
                queue,
                pb::ViewHeader::default(),
                expected_site.longest_waiting_contact(&queue.queue),
            );
            expected.staffing = vigie_api::staffing::queue_gap(expected_site, &queue.queue);
            // Alone, the queue also carries its service level by interval (not in the site).
            let alone = expected_site.queue_view(&queue.queue, window).unwrap();
            let mut expected_alone = vigie_api::convert::queue(
                &alone,
                pb::ViewHeader::default(),
                expected_site.longest_waiting_contact(&queue.queue),
            );
            expected_alone.staffing = expected.staffing.clone();
            let today = expected_site
                .queue_view(&queue.queue, Window::Today)
                .unwrap();
            check_intervals(&got.service_level_by_interval, &today.indicators.flow, at);
            let staffing = got.staffing.as_ref().unwrap();
            let offered = |window| {
                let view = expected_site.queue_view(&queue.queue, window).unwrap();
                view.indicators.flow.offered
            };
            check_staffing(
                staffing,
                offered(Window::Last15m),
                offered(Window::Last30m),
                on_the_phones(&queue.advisors),
            );
            let first = staffing_seen
                .entry(format!("queue {}", queue.queue))
                .or_insert_with(|| staffing.clone());
            assert_eq!(first, staffing, "{window}");
            assert_eq!(
                without_header(&got, |v| v.header = None),
                without_header(&expected_alone, |v| v.header = None)
            );
            let in_site = view.queues.iter().find(|q| q.queue == queue.queue).unwrap();
            assert!(in_site.service_level_by_interval.is_empty());
            assert_eq!(
                without_header(in_site, |v| v.header = None),
                without_header(&expected, |v| v.header = None)
            );
            assert_eq!(
                got.indicators
                    .as_ref()
                    .unwrap()
                    .flow
                    .as_ref()
                    .unwrap()
                    .offered,
                queue.indicators.flow.offered
            );
        }
        for team in &core.teams {
            let got = client
                .get_team_view(pb::GetTeamViewRequest {
                    site: site.id.clone(),
                    team: team.team.clone(),
                    window: wire(window),
                })
                .await
                .unwrap()
                .into_inner();
            let mut expected = vigie_api::convert::team(team);
            expected.staffing = vigie_api::staffing::team_gap(expected_site, &team.team);
            let alone = expected_site.team_view(&team.team, window).unwrap();
            let mut expected_alone = vigie_api::convert::team(&alone);
            expected_alone.staffing = expected.staffing.clone();
            assert_eq!(got.team.as_ref(), Some(&expected_alone));
            let today = expected_site.team_view(&team.team, Window::Today).unwrap();
            let intervals = &got.team.as_ref().unwrap().service_level_by_interval;
            check_intervals(intervals, &today.indicators.flow, at);
            let in_site = view.teams.iter().find(|t| t.team == team.team).unwrap();
            assert!(in_site.service_level_by_interval.is_empty());
            assert_eq!(in_site, &expected);
            let staffing = expected.staffing.as_ref().unwrap();
            let offered = |window| {
                let view = expected_site.team_view(&team.team, window).unwrap();
                view.indicators.flow.offered
            };
            check_staffing(
                staffing,
                offered(Window::Last15m),
                offered(Window::Last30m),
                on_the_phones(&team.indicators.advisors),
            );
            let first = staffing_seen
                .entry(format!("team {}", team.team))
                .or_insert_with(|| staffing.clone());
            assert_eq!(first, staffing, "{window}");
            let members: Vec<&str> = got.advisors.iter().map(|a| a.advisor.as_str()).collect();
            assert_eq!(
                members,
                team.members.iter().map(String::as_str).collect::<Vec<_>>()
            );
            assert_eq!(
                got.team
                    .as_ref()
                    .unwrap()
                    .indicators
                    .as_ref()
                    .unwrap()
                    .flow
                    .as_ref()
                    .unwrap()
                    .service_level,
                team.indicators.flow.service_level
            );
        }
        for advisor in &core.advisors {
            let got = client
                .get_advisor_view(pb::GetAdvisorViewRequest {
                    site: site.id.clone(),
                    advisor: advisor.advisor.clone(),
                    window: wire(window),
                })
                .await
                .unwrap()
                .into_inner();
            let got = got.advisor.unwrap();
            assert_eq!(got, vigie_api::convert::advisor(advisor));
            assert_eq!(
                got.indicators
                    .as_ref()
                    .unwrap()
                    .handling
                    .as_ref()
                    .unwrap()
                    .handled,
                advisor.indicators.handling.handled
            );
            assert_eq!(got.time_in_state, advisor.time_in_state);
        }
    }

    // The lists agree with the views.
    let sites = client
        .list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sites.sites.len(), 1);
    assert_eq!(sites.sites[0].site, site.id);
    let core = expected_site.site_view(Window::Today);
    let teams = client
        .list_teams(pb::ListTeamsRequest {
            site: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        teams
            .teams
            .iter()
            .map(|t| t.team.clone())
            .collect::<Vec<_>>(),
        core.teams
            .iter()
            .map(|t| t.team.clone())
            .collect::<Vec<_>>()
    );
    let queues = client
        .list_queues(pb::ListQueuesRequest {
            site: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        queues
            .queues
            .iter()
            .map(|q| (q.queue.clone(), q.sl_target))
            .collect::<Vec<_>>(),
        core.queues
            .iter()
            .map(|q| (q.queue.clone(), q.sl_target))
            .collect::<Vec<_>>()
    );
    let advisors = client
        .list_advisors(pb::ListAdvisorsRequest {
            site: site.id.clone(),
            team: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        advisors
            .advisors
            .iter()
            .map(|a| (a.advisor.clone(), a.team.clone(), a.state))
            .collect::<Vec<_>>(),
        core.advisors
            .iter()
            .map(|a| (
                a.advisor.clone(),
                a.team.clone(),
                vigie_api::convert::live_state(a.state)
            ))
            .collect::<Vec<_>>()
    );

    // Unknown targets and bad requests.
    let missing = client
        .get_team_view(pb::GetTeamViewRequest {
            site: site.id.clone(),
            team: "no-such-team".into(),
            window: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let no_site = client
        .get_site_view(pb::GetSiteViewRequest {
            site: "elsewhere".into(),
            window: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(no_site.code(), tonic::Code::NotFound);
    let bad_window = client
        .get_site_view(pb::GetSiteViewRequest {
            site: site.id.clone(),
            window: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_window.code(), tonic::Code::InvalidArgument);
    assert!(
        bad_window.message().contains("window"),
        "{}",
        bad_window.message()
    );
    let empty = client
        .get_queue_view(pb::GetQueueViewRequest {
            site: site.id.clone(),
            queue: String::new(),
            window: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
}

/// Mid-morning, with traffic in the last 30 minutes, every queue and team carries in the site,
/// team and queue views the live staffing gap computed on a replay of the same events, it is
/// defined, and it agrees with Erlang C computed here from the core's counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_carry_the_live_staffing_gap_of_replay() {
    let (site, events) = day(11, 30);
    // 08:00 opening (advisors log in a few minutes before) plus about two and a half hours.
    let at = events.iter().map(|e| e.time).min().unwrap() + vigie_core::Millis::from_mins(155);
    let events: Vec<Event> = events.into_iter().filter(|e| e.time <= at).collect();
    let served = Served::start(&site, at, ApiConfig::default()).await;
    served.feed(&events).await;
    let replayed = replay(&site, &events, at);
    let expected_site = replayed.site(&site.id).unwrap();
    let mut client = served.client().await;
    let core = expected_site.site_view(Window::Today);
    let mut defined = 0;
    for window in [Window::Today, Window::Last15m] {
        let view = client
            .get_site_view(pb::GetSiteViewRequest {
                site: site.id.clone(),
                window: wire(window),
            })
            .await
            .unwrap()
            .into_inner();
        for queue in &core.queues {
            let expected = vigie_api::staffing::queue_gap(expected_site, &queue.queue);
            let got = client
                .get_queue_view(pb::GetQueueViewRequest {
                    site: site.id.clone(),
                    queue: queue.queue.clone(),
                    window: wire(window),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.staffing, expected, "queue {}", queue.queue);
            let in_site = view.queues.iter().find(|q| q.queue == queue.queue).unwrap();
            assert_eq!(
                in_site.staffing, expected,
                "queue {} in the site",
                queue.queue
            );
            let offered = |window| {
                let view = expected_site.queue_view(&queue.queue, window).unwrap();
                view.indicators.flow.offered
            };
            assert!(
                check_staffing(
                    &expected.unwrap(),
                    offered(Window::Last15m),
                    offered(Window::Last30m),
                    on_the_phones(&queue.advisors),
                ),
                "queue {}",
                queue.queue
            );
            defined += 1;
        }
        for team in core.teams.iter().filter(|t| !t.queues.is_empty()) {
            let expected = vigie_api::staffing::team_gap(expected_site, &team.team);
            let got = client
                .get_team_view(pb::GetTeamViewRequest {
                    site: site.id.clone(),
                    team: team.team.clone(),
                    window: wire(window),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.team.unwrap().staffing, expected, "team {}", team.team);
            let in_site = view.teams.iter().find(|t| t.team == team.team).unwrap();
            assert_eq!(in_site.staffing, expected, "team {} in the site", team.team);
            let offered = |window| {
                let view = expected_site.team_view(&team.team, window).unwrap();
                view.indicators.flow.offered
            };
            assert!(
                check_staffing(
                    &expected.unwrap(),
                    offered(Window::Last15m),
                    offered(Window::Last30m),
                    on_the_phones(&team.indicators.advisors),
                ),
                "team {}",
                team.team
            );
            defined += 1;
        }
    }
    assert!(defined >= 2 * 4, "{defined}");
}

/// Reads a stream until a message whose view has sequence number `seq`.
async fn team_update_at(stream: &mut tonic::Streaming<pb::TeamUpdate>, seq: u64) -> pb::TeamUpdate {
    tokio::time::timeout(WAIT, async {
        loop {
            let update = stream.message().await.unwrap().expect("the stream ended");
            let found = update.view.as_ref().unwrap().header.as_ref().unwrap().seq;
            assert!(found <= seq, "the stream went past seq {seq} ({found})");
            if found == seq {
                return update;
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_reconstructs_what_get_returns_at_the_same_sequence_number() {
    let (site, events) = day(12, 24);
    let end = events.iter().map(|e| e.time).max().unwrap();
    let served = Served::start(&site, end, ApiConfig::default()).await;
    let mut client = served.client().await;
    // The first part of the day, then the team is followed while the rest comes in batches.
    let (first, rest) = events.split_at(events.len() / 2);
    served.feed(first).await;
    let team = site.teams[0].id.clone();
    let mut stream = client
        .watch_team(pb::WatchTeamRequest {
            site: site.id.clone(),
            team: team.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let snapshot = stream.message().await.unwrap().unwrap();
    assert_eq!(snapshot.kind, pb::UpdateKind::Snapshot as i32);

    let mut checked = 0;
    for batch in rest.chunks(rest.len() / 8 + 1) {
        served.feed(batch).await;
        let get = client
            .get_team_view(pb::GetTeamViewRequest {
                site: site.id.clone(),
                team: team.clone(),
                window: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let seq = get.header.as_ref().unwrap().seq;
        let update = team_update_at(&mut stream, seq).await;
        assert_ne!(update.kind, pb::UpdateKind::Snapshot as i32);
        assert_eq!(
            update.view.as_ref(),
            Some(&get),
            "stream and Get differ at seq {seq}"
        );
        checked += 1;
    }
    assert!(checked >= 8);

    // Time moving on (no event) changes the figures: a new sequence number, on the stream too.
    let before = client
        .get_team_view(pb::GetTeamViewRequest {
            site: site.id.clone(),
            team: team.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    served.now.store(end.0 + 60_000, Ordering::SeqCst);
    let later = tokio::time::timeout(WAIT, async {
        loop {
            let update = stream.message().await.unwrap().unwrap();
            let view = update.view.unwrap();
            if view.header.as_ref().unwrap().as_of
                == Some(vigie_api::convert::timestamp(Timestamp(end.0 + 60_000)))
            {
                return view;
            }
        }
    })
    .await
    .unwrap();
    assert!(later.header.as_ref().unwrap().seq > before.header.as_ref().unwrap().seq);
    let get = client
        .get_team_view(pb::GetTeamViewRequest {
            site: site.id.clone(),
            team: team.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(get, later);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_are_served_and_a_client_that_never_reads_holds_nobody_back() {
    let (site, events) = day(13, 60);
    let end = events.iter().map(|e| e.time).max().unwrap();
    let config = ApiConfig {
        max_updates_per_second: 100,
        ..ApiConfig::default()
    };
    let served = Served::start(&site, end, config).await;
    let (first, rest) = events.split_at(events.len() / 3);
    served.feed(first).await;
    let team = site.teams[0].id.clone();
    let request = || pb::WatchTeamRequest {
        site: site.id.clone(),
        team: team.clone(),
        window: 0,
    };

    // A thousand streams over ten connections, each receiving its snapshot.
    let mut streams = Vec::new();
    for connection in 0..10 {
        let mut client = served.client().await;
        for _ in 0..100 {
            let stream = client.watch_team(request()).await.unwrap().into_inner();
            streams.push((connection, stream));
        }
    }
    for (_, stream) in &mut streams {
        let first = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.kind, pb::UpdateKind::Snapshot as i32);
    }

    // A client opens a stream on the whole site and never reads it while the day goes on and
    // others read.
    let mut idle_client = served.client().await;
    let mut idle = idle_client
        .watch_site(pb::WatchSiteRequest {
            site: site.id.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut reader_client = served.client().await;
    let mut reader = reader_client
        .watch_team(request())
        .await
        .unwrap()
        .into_inner();
    let batches: Vec<&[Event]> = rest.chunks(rest.len() / 300 + 1).collect();
    for batch in &batches {
        served.feed(batch).await;
        let get = reader_client
            .get_team_view(pb::GetTeamViewRequest {
                site: site.id.clone(),
                team: team.clone(),
                window: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let update = team_update_at(&mut reader, get.header.unwrap().seq).await;
        assert!(update.view.is_some());
        // Let the topics publish (at most a hundred frames a second here).
        tokio::time::sleep(Duration::from_millis(12)).await;
    }
    // The idle stream was not queued frame after frame: what the transport buffered comes
    // first, then a resync to the latest view.
    let latest = reader_client
        .get_site_view(pb::GetSiteViewRequest {
            site: site.id.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let update = idle.message().await.unwrap().unwrap();
            kinds.push(update.kind);
            if update.view.as_ref().unwrap().header.as_ref().unwrap().seq
                >= latest.header.as_ref().unwrap().seq
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        kinds.contains(&(pb::UpdateKind::Resync as i32)),
        "an idle stream skips views instead of queueing them: {kinds:?}"
    );
    assert!(
        kinds.len() < batches.len() / 2,
        "{} messages of {} views were queued for an idle client",
        kinds.len(),
        batches.len()
    );

    // The thousand streams still have their latest view.
    for (_, stream) in streams.iter_mut().step_by(97) {
        let update = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(update.view.is_some());
    }
    assert_eq!(served.metric("vigie_api_streams"), Some(1002.0));

    // Clients that go away free their streams, and views nobody follows stop being published.
    drop(streams);
    drop((idle, reader, idle_client, reader_client));
    tokio::time::timeout(WAIT, async {
        while served.metric("vigie_api_streams") != Some(0.0)
            || served.metric("vigie_api_topics") != Some(0.0)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "streams {:?}, topics {:?} after every client left",
            served.metric("vigie_api_streams"),
            served.metric("vigie_api_topics")
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_serves_only_after_recovery_and_reflection_lists_the_services() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let (site, _) = day(14, 6);
    let served = Served::start(&site, Timestamp(1_700_000_000_000), ApiConfig::default()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", served.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "vigie.v1.Supervision"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::NotServing as i32,
            "{service:?} before recovery"
        );
    }
    served.ready.send_replace(true);
    tokio::time::timeout(WAIT, async {
        loop {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "vigie.v1.Supervision".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            if status == ServingStatus::Serving as i32 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["vigie.v1.Supervision", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
}

/// Sends one HTTP/1.1 request and returns the whole response (the server closes after it).
async fn http1(address: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_call_over_grpc_web_with_cors() {
    use prost::Message;
    let (site, events) = day(15, 6);
    let at = events.iter().map(|e| e.time).max().unwrap();
    let served = Served::start(&site, at, ApiConfig::default()).await;
    served.feed(&events).await;

    // The preflight a browser sends before a cross-origin call.
    let preflight = http1(
        served.address,
        b"OPTIONS /vigie.v1.Supervision/ListSites HTTP/1.1\r\nHost: vigie\r\nOrigin: http://wallboard.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-grpc-web\r\nConnection: close\r\n\r\n",
    )
    .await;
    let preflight = String::from_utf8_lossy(&preflight).to_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(preflight.contains("authorization"), "{preflight}");

    // A gRPC-Web call: a length-prefixed message in, a message frame and a trailer frame out.
    let message = pb::ListSitesRequest {}.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut request = format!(
        "POST /vigie.v1.Supervision/ListSites HTTP/1.1\r\nHost: vigie\r\nOrigin: http://wallboard.example\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let response = http1(served.address, &request).await;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/grpc-web+proto"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("access-control-expose-headers"), "{head}");
    let mut body = &response[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(body).leak();
    }
    assert_eq!(body[0], 0, "a message frame first");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let sites = pb::ListSitesResponse::decode(&body[5..5 + length]).unwrap();
    assert_eq!(sites.sites.len(), 1);
    assert_eq!(sites.sites[0].site, site.id);
    let trailer = &body[5 + length..];
    assert_eq!(trailer[0], 0x80, "then the trailers");
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));
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
async fn the_api_speaks_tls_with_the_configured_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let (site, _) = day(16, 6);
    let config = ApiConfig {
        tls: Some(vigie_api::TlsConfig {
            cert_file,
            key_file,
        }),
        ..ApiConfig::default()
    };
    let served = Served::start(&site, Timestamp(1_700_000_000_000), config).await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            certified.cert.pem(),
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", served.address))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = vigie_proto::v1::supervision_client::SupervisionClient::new(channel);
    let sites = client
        .list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sites.sites[0].site, site.id);
    // A plain-text client gets nowhere.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", served.address))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = vigie_proto::v1::supervision_client::SupervisionClient::new(channel);
        assert!(client.list_sites(pb::ListSitesRequest {}).await.is_err());
    }
}
