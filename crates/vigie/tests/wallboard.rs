//! The web wallboard in a real browser (headless Chromium through ChromeDriver) against
//! `vigie serve` fed from its own NATS server with a known simulated day: the tiles say what
//! the gRPC API says, an advisor's pause shows within a second, a notice comes and goes, a
//! firing alert shows, the page turns stale when the server stops and recovers when it
//! returns, and nothing is logged to the console. Screenshots of the team wallboard and of the
//! site overview at 1920x1080 are kept under `target/test-artifacts/wallboard/`.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Timelike, Utc};
use serde_json::json;
use vigie::config::VigieConfig;
use vigie_alerts::RuleConfig;
use vigie_core::{Event, Timestamp};
use vigie_ingest::publish::PublisherConfig;
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_client::AlertsClient;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_proto::v1::supervision_client::SupervisionClient;
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::browser::{Browser, artifacts_dir, free_port};
use vigie_tests::nats::{NatsServer, Signal, publish_events, signal, wait_within};

const WAIT: Duration = Duration::from_secs(60);

/// A fixed-offset zone in which it is now early afternoon, so that a day running from two
/// hours ago to an hour from now fits in one site-local day whatever the hour of the test.
fn afternoon_zone() -> (String, chrono_tz::Tz) {
    let utc_hour = i64::from(Utc::now().hour());
    // Etc/GMT-N is N hours east of UTC (the POSIX sign is inverted).
    let offset = (14 - utc_hour + 24) % 24;
    let offset = if offset > 12 { offset - 24 } else { offset };
    let name = match offset {
        0 => "Etc/UTC".to_owned(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    };
    let zone = name.parse().unwrap();
    (name, zone)
}

/// A simulated day of the site around now, cut half a minute ago: a centre in full activity
/// whose events then stop, so that every figure but the ticking ones holds still.
fn day_so_far() -> (VigieConfig, Vec<Event>) {
    let (zone_name, zone) = afternoon_zone();
    let now = Utc::now().with_timezone(&zone);
    let config = SimConfig {
        seed: 5,
        site_id: "wallboard".to_owned(),
        time_zone: zone_name,
        advisors: 24,
        queues: 3,
        date: now.date_naive(),
        open: (now - chrono::Duration::hours(2)).time(),
        close: (now + chrono::Duration::hours(1)).time(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let site = simulation.site_config();
    let cut = Timestamp(Utc::now().timestamp_millis() - 30_000);
    let events = simulation.take_while(|event| event.time <= cut).collect();
    let rule: RuleConfig = toml::from_str(&format!(
        r#"
        site = "{}"
        id = "probe-pause"
        name = "Pause over 2 seconds"
        scope = "every_advisor"
        metric = "pause_duration"
        comparator = "above"
        warning = "2s"
        critical = "1h"
        "#,
        site.id
    ))
    .unwrap();
    (
        VigieConfig {
            sites: vec![site],
            alert_rules: vec![rule],
            ..VigieConfig::default()
        },
        events,
    )
}

/// `vigie serve` on fixed ports, so that it can be stopped and started again in place.
struct Vigie {
    child: Child,
    args: Vec<String>,
    dir: std::path::PathBuf,
    http: u16,
}

impl Vigie {
    fn start(dir: &Path, nats: &str) -> (Vigie, u16, u16) {
        let (http, grpc, web) = (free_port(), free_port(), free_port());
        let args: Vec<String> = [
            "serve",
            "--config",
            "vigie.toml",
            "--nats",
            nats,
            "--http",
            &format!("127.0.0.1:{http}"),
            "--grpc-listen",
            &format!("127.0.0.1:{grpc}"),
            "--web-listen",
            &format!("127.0.0.1:{web}"),
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        let mut vigie = Vigie {
            child: spawn(&args, dir),
            args,
            dir: dir.to_owned(),
            http,
        };
        vigie.wait_ready();
        (vigie, grpc, web)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        let url = format!("127.0.0.1:{}", self.http);
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(&url) {
                use std::io::{Read, Write};
                let _ = write!(
                    stream,
                    "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                if response.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vigie serve exited: {status}");
            }
            assert!(Instant::now() < deadline, "vigie serve never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        signal(self.child.id(), Signal::TERM);
        let output = wait_within(&mut self.child, WAIT);
        assert!(output.status.success(), "vigie serve: {:?}", output.status);
    }

    fn restart(&mut self) {
        self.child = spawn(&self.args, &self.dir);
        self.wait_ready();
    }
}

impl Drop for Vigie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(args)
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .env("VIGIE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An event of the contract, as a connector would publish it.
fn event(json: serde_json::Value) -> Event {
    vigie_core::decode_json(json.to_string().as_bytes(), 1 << 16).unwrap()
}

/// The tile's raw value as the page holds it (`None` when the API left it unset).
async fn tile(browser: &Browser, name: &str) -> Option<f64> {
    let value = browser
        .attribute(&format!("[data-testid=\"tile-{name}\"]"), "data-value")
        .await
        .unwrap_or_else(|| panic!("no tile {name}"));
    (!value.is_empty()).then(|| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_shows_the_live_centre_and_follows_it() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = day_so_far();
    let site = config.sites[0].clone();
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let (_client, context) = nats.connect_with_stream().await;
    let publisher = PublisherConfig::new(&nats.nats_config().stream);
    publish_events(&context, publisher.clone(), &events, WAIT).await;
    let (mut vigie, grpc, web) = {
        let (dir, url) = (dir.path().to_owned(), nats.url());
        tokio::task::spawn_blocking(move || Vigie::start(&dir, &url))
            .await
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{web}");
    let api = format!("http://127.0.0.1:{grpc}");
    let channel = tonic::transport::Endpoint::from_shared(api)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut supervision = SupervisionClient::new(channel.clone());
    let browser = Browser::start(1920, 1080).await;
    let shots = artifacts_dir().join("wallboard");

    // The site overview lists every team and every queue.
    browser.open(&format!("{base}/")).await;
    browser
        .wait_for_attribute("[data-testid=\"site-overview\"]", "data-seq", |seq| {
            !seq.is_empty()
        })
        .await;
    for team in &site.teams {
        browser
            .eventually(&format!("row of team {}", team.id), || async {
                browser
                    .exists(&format!("[data-testid=\"team-row-{}\"]", team.id))
                    .await
                    .then_some(())
            })
            .await;
    }
    for queue in &site.queues {
        assert!(
            browser
                .exists(&format!("[data-testid=\"queue-row-{}\"]", queue.id))
                .await,
            "row of queue {}",
            queue.id
        );
    }
    browser.screenshot(&shots.join("site-overview.png")).await;

    // A queue's board says what the API says of the queue.
    let queue = site.queues[0].id.clone();
    browser.open(&format!("{base}/queue/{queue}")).await;
    let queue_view = supervision
        .get_queue_view(pb::GetQueueViewRequest {
            site: site.id.clone(),
            queue: queue.clone(),
            window: pb::Window::Today as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let queue_indicators = queue_view.indicators.unwrap();
    let queue_handled = queue_indicators.handling.unwrap().handled;
    browser
        .wait_for_attribute("[data-testid=\"tile-handled\"]", "data-value", |value| {
            value == queue_handled.to_string()
        })
        .await;
    let queue_flow = queue_indicators.flow.unwrap();
    assert_eq!(
        tile(&browser, "service-level").await,
        queue_flow.service_level
    );
    assert_eq!(
        tile(&browser, "abandon-rate").await,
        queue_flow.abandon_rate
    );
    browser.screenshot(&shots.join("queue-board.png")).await;

    // A team's wallboard: its tiles say what the API says.
    let team = site.teams[0].id.clone();
    browser.open(&format!("{base}/team/{team}")).await;
    let view = supervision
        .get_team_view(pb::GetTeamViewRequest {
            site: site.id.clone(),
            team: team.clone(),
            window: pb::Window::Today as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let indicators = view
        .team
        .as_ref()
        .unwrap()
        .indicators
        .as_ref()
        .unwrap()
        .clone();
    let flow = indicators.flow.unwrap();
    let handling = indicators.advisors_indicators.unwrap().handling.unwrap();
    let live = indicators.live.unwrap();
    let by_state = indicators.advisors.unwrap();
    assert!(handling.handled > 0, "the day handled contacts: {view:?}");
    // Nothing arrives any more: once the page shows the day's handled count, every figure
    // that only events move must be the API's.
    browser
        .wait_for_attribute("[data-testid=\"tile-handled\"]", "data-value", |value| {
            value == handling.handled.to_string()
        })
        .await;
    assert_eq!(tile(&browser, "service-level").await, flow.service_level);
    assert_eq!(tile(&browser, "abandon-rate").await, flow.abandon_rate);
    assert_eq!(tile(&browser, "aht").await, handling.aht);
    assert_eq!(tile(&browser, "in-queue").await, Some(live.in_queue as f64));
    assert_eq!(
        tile(&browser, "available").await,
        Some(f64::from(by_state.available))
    );
    match live.longest_wait {
        None => assert_eq!(tile(&browser, "longest-wait").await, None),
        // It ticks: the page's value is the API's plus the time since.
        Some(wait) => {
            let shown = tile(&browser, "longest-wait").await.unwrap();
            assert!((shown - wait).abs() < 5.0, "{shown} against {wait}");
        }
    }
    // The trend line has a point for each 15-minute interval of the day with a service level.
    let intervals = &view.team.as_ref().unwrap().service_level_by_interval;
    let measured = intervals
        .iter()
        .filter(|interval| interval.service_level.is_some())
        .count();
    assert!(
        intervals.len() >= 8 && measured >= 6,
        "two hours of the day: {intervals:?}"
    );
    browser
        .wait_for_attribute("[data-testid=\"sl-sparkline\"]", "data-points", |points| {
            points == measured.to_string()
        })
        .await;
    for advisor in &view.advisors {
        let state = pb::LiveState::try_from(advisor.state).unwrap();
        let expected = state
            .as_str_name()
            .trim_start_matches("LIVE_STATE_")
            .to_lowercase();
        assert_eq!(
            browser
                .attribute(
                    &format!("[data-testid=\"advisor-{}\"]", advisor.advisor),
                    "data-state"
                )
                .await
                .as_deref(),
            Some(expected.as_str()),
            "advisor {}",
            advisor.advisor
        );
    }

    // An advisor's pause, published to the feed, shows within a second. The advisor is a new
    // one, logged in and available first, so that the pause changes their live state whatever
    // the simulated team was doing when the day was cut. The page notes when it saw the pause
    // (same machine, same clock as this test).
    let probe = "wallboard-probe".to_owned();
    let login_at = now_millis();
    let at = |millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .unwrap()
            .to_rfc3339()
    };
    let arrival = [
        event(json!({
            "id": "wallboard-probe-login",
            "type": "advisor.login",
            "time": at(login_at),
            "site": site.id,
            "advisor": probe,
            "team": team,
            "name": "Probe Advisor",
        })),
        event(json!({
            "id": "wallboard-probe-available",
            "type": "advisor.state",
            "time": at(login_at),
            "site": site.id,
            "advisor": probe,
            "state": "available",
        })),
    ];
    publish_events(&context, publisher.clone(), &arrival, WAIT).await;
    browser
        .wait_for_attribute(
            &format!("[data-testid=\"advisor-{probe}\"]"),
            "data-state",
            |state| state == "available",
        )
        .await;
    browser
        .run(
            "const advisor = arguments[0];
             window.pauseSeenAt = null;
             const look = () => {
               const row = document.querySelector(`[data-testid=\"advisor-${advisor}\"]`);
               if (window.pauseSeenAt === null && row !== null
                   && row.getAttribute('data-state') === 'pause'
                   && row.getAttribute('data-reason') === 'coaching') {
                 window.pauseSeenAt = Date.now();
               }
             };
             new MutationObserver(look).observe(document.body,
               { subtree: true, childList: true, attributes: true, characterData: true });",
            vec![json!(probe)],
        )
        .await;
    let published_at = now_millis();
    let pause = event(json!({
        "id": "wallboard-probe-pause",
        "type": "advisor.state",
        "time": at(published_at),
        "site": site.id,
        "advisor": probe,
        "state": "pause",
        "reason": "coaching",
    }));
    publish_events(&context, publisher.clone(), &[pause], WAIT).await;
    let seen_at = browser
        .eventually("the pause on the page", || async {
            browser
                .run("return window.pauseSeenAt;", vec![])
                .await
                .as_i64()
        })
        .await;
    let latency = seen_at - published_at;
    println!("advisor state change on the page {latency} ms after publishing");
    assert!(
        latency < 1000,
        "the pause showed {latency} ms after it was published"
    );

    // The pause fires the probe rule (the API says so), and the alert shows on the team's
    // wallboard.
    let alert_id = format!("probe-pause/advisor/{probe}");
    let mut alerts = AlertsClient::new(channel.clone());
    let mut fired = false;
    for _ in 0..200 {
        let list = alerts
            .list_alerts(pb::ListAlertsRequest {
                site: site.id.clone(),
                active_only: true,
            })
            .await
            .unwrap()
            .into_inner();
        fired = list
            .alerts
            .iter()
            .any(|alert| alert.id == alert_id && alert.state == pb::AlertState::Firing as i32);
        if fired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fired, "{alert_id} never fired");
    let alert = format!("[data-testid=\"alert-{alert_id}\"]");
    browser
        .wait_for_attribute(&alert, "data-severity", |severity| severity == "warning")
        .await;

    // A notice appears, and disappears when withdrawn.
    let mut notices = NoticesClient::new(channel.clone());
    let notice = notices
        .post_notice(pb::PostNoticeRequest {
            site: site.id.clone(),
            team: team.clone(),
            text: "Nouveau script pour l'offre de printemps : voir le wiki".to_owned(),
            level: pb::NoticeLevel::Important as i32,
            duration: 600.0,
        })
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let notice_css = format!("[data-testid=\"notice-{}\"]", notice.id);
    browser
        .wait_for_attribute(&notice_css, "data-level", |level| level == "important")
        .await;
    browser.screenshot(&shots.join("team-wallboard.png")).await;
    notices
        .withdraw_notice(pb::WithdrawNoticeRequest {
            site: site.id.clone(),
            id: notice.id.clone(),
        })
        .await
        .unwrap();
    browser
        .eventually("the withdrawn notice gone", || async {
            (!browser.exists(&notice_css).await).then_some(())
        })
        .await;

    // Nothing went wrong in the page so far.
    let errors: Vec<(String, String)> = browser
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console: {errors:#?}");

    // The server stops: the page says its figures are stale; it returns: they are live again.
    tokio::task::block_in_place(|| vigie.stop());
    browser
        .wait_for_attribute("[data-testid=\"freshness\"]", "data-stale", |stale| {
            stale == "true"
        })
        .await;
    tokio::task::block_in_place(|| vigie.restart());
    browser
        .wait_for_attribute("[data-testid=\"freshness\"]", "data-stale", |stale| {
            stale == "false"
        })
        .await;
    // The page may reconnect while the restarted server still replays the day: the pause,
    // kept in the stream, shows once the replay reaches it.
    browser
        .wait_for_attribute(
            &format!("[data-testid=\"advisor-{probe}\"]"),
            "data-state",
            |state| state == "pause",
        )
        .await;

    // The same wallboard in French, chosen by the address.
    browser.open(&format!("{base}/team/{team}?lang=fr")).await;
    browser
        .wait_for_attribute("[data-testid=\"team-wallboard\"]", "data-seq", |seq| {
            !seq.is_empty()
        })
        .await;
    let page = browser
        .run(
            "return [document.documentElement.lang, document.body.innerText];",
            vec![],
        )
        .await;
    assert_eq!(page[0], "fr");
    let text = page[1].as_str().unwrap();
    assert!(text.contains("Niveau de service"), "{text}");
    assert!(!text.contains("Service level"), "{text}");
}
