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
            let expected = vigie_api::convert::queue(
                queue,
                pb::ViewHeader::default(),
                expected_site.longest_waiting_contact(&queue.queue),
            );
            assert_eq!(
                without_header(&got, |v| v.header = None),
                without_header(&expected, |v| v.header = None)
            );
            let in_site = view.queues.iter().find(|q| q.queue == queue.queue).unwrap();
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
            assert_eq!(got.team.as_ref(), Some(&vigie_api::convert::team(team)));
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
