//! `vigie serve` as a process: the embedded demo, and a NATS feed interrupted by SIGTERM with
//! no acknowledged event lost.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{Duration as Days, NaiveTime};
use vigie::config::VigieConfig;
use vigie_core::Event;
use vigie_ingest::publish::PublisherConfig;
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::cli::{DEMO_TIME_ZONE, daytime_zone, eventually, free_port, http_get, metric};
use vigie_tests::nats::{NatsServer, Signal, publish_events, signal, wait_within, within};

const WAIT: Duration = Duration::from_secs(60);

/// `vigie serve` with `args`; without the wallboard unless `args` gives its address.
fn serve(args: &[&str], dir: &Path) -> Child {
    let wallboard: &[&str] = if args.contains(&"--web-listen") {
        &[]
    } else {
        &["--no-web"]
    };
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .arg("serve")
        .args(args)
        .args(wallboard)
        // Tests run in parallel: each service on its own gRPC port.
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .env(DEMO_TIME_ZONE, daytime_zone())
        .env("VIGIE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn with_no_argument_it_serves_the_demo_centre_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (port, web) = (free_port(), free_port());
    let mut child = serve(
        &[
            "--http",
            &format!("127.0.0.1:{port}"),
            "--web-listen",
            &format!("127.0.0.1:{web}"),
        ],
        dir.path(),
    );
    let ready = eventually("the demo ready", || {
        http_get(port, "/readyz").filter(|(status, _)| *status == 200)
    });
    // The wallboard's pages are served on their own address.
    for page in ["/", "/team/team-01", "/queue/queue-01"] {
        let (status, body) = http_get(web, page).unwrap();
        assert_eq!(status, 200, "{page}: {body}");
        assert!(body.contains("<html"), "{page}: {body}");
    }
    assert_eq!(http_get(web, "/no-such-page").unwrap().0, 404);
    assert!(ready.1.contains(r#""ready":true"#), "{}", ready.1);
    assert_eq!(
        http_get(port, "/healthz").unwrap(),
        (200, "ok\n".to_owned())
    );
    let metrics = http_get(port, "/metrics").unwrap().1;
    assert!(
        metric(&metrics, "vigie_events_applied_total").unwrap() > 0.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "vigie_ready"), Some(1.0), "{metrics}");
    signal(child.id(), Signal::TERM);
    let output = wait_within(&mut child, WAIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("serving the embedded demo centre"), "{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
}

/// A small day tomorrow, and the configuration of its site.
fn day() -> (VigieConfig, Vec<Event>) {
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let date = chrono::Utc::now().with_timezone(&zone).date_naive() + Days::days(1);
    let config = SimConfig {
        seed: 11,
        advisors: 24,
        queues: 4,
        date,
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let site = simulation.site_config();
    (
        VigieConfig {
            sites: vec![site],
            ..VigieConfig::default()
        },
        simulation.collect(),
    )
}

/// The `applied` and `duplicates` of the final log line of a site.
fn stopped_counts(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains(" stopped "))
        .unwrap_or_else(|| panic!("{log}"));
    let field = |name: &str| -> u64 {
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("applied"), field("duplicates"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_feed_loses_no_acknowledged_event() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = day();
    let site = config.sites[0].id.clone();
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let (_client, context) = server.connect_with_stream().await;
    let publisher = PublisherConfig::new(&server.nats_config().stream);
    let port = free_port();
    let args = [
        "--config",
        "vigie.toml",
        "--nats",
        &server.url(),
        "--http",
        &format!("127.0.0.1:{port}"),
    ];
    let mut child = serve(&args, dir.path());
    tokio::task::spawn_blocking(move || {
        eventually("ready", || {
            http_get(port, "/readyz").filter(|(s, _)| *s == 200)
        })
    })
    .await
    .unwrap();

    // The feed runs while Vigie is told to stop, once it has applied a third of the day.
    let feed = {
        let (context, publisher, events) = (context.clone(), publisher.clone(), events.clone());
        tokio::spawn(async move {
            for chunk in events.chunks(200) {
                publish_events(&context, publisher.clone(), chunk, WAIT).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let third = events.len() as f64 / 3.0;
    tokio::task::spawn_blocking(move || {
        eventually("a third of the day applied", || {
            let metrics = http_get(port, "/metrics")?.1;
            (metric(&metrics, "vigie_events_applied_total")? >= third).then_some(())
        })
    })
    .await
    .unwrap();
    signal(child.id(), Signal::TERM);
    let output = tokio::task::spawn_blocking(move || wait_within(&mut child, WAIT))
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    let (applied, duplicates) = stopped_counts(&log);
    within("the feed", WAIT, feed).await.unwrap();

    // Everything the consumer acknowledged was applied before the process ended.
    let stream = context.get_stream("VIGIE_EVENTS").await.unwrap();
    let consumer = stream.consumer_info(format!("vigie-{site}")).await.unwrap();
    let acknowledged = consumer.ack_floor.consumer_sequence;
    assert!(acknowledged > 0, "{consumer:?}");
    assert!(
        acknowledged <= applied + duplicates,
        "acknowledged {acknowledged}, applied {applied} + {duplicates}"
    );
    assert!(
        (applied as usize) < events.len(),
        "the stop came during the feed"
    );

    // Started again, it restores the snapshot saved at the stop and applies only the rest of
    // the day: the whole day in the end.
    let mut child = serve(&args, dir.path());
    let rest = (events.len() as u64 - applied) as f64;
    tokio::task::spawn_blocking(move || {
        eventually("the rest of the day applied after the restart", || {
            let metrics = http_get(port, "/metrics")?.1;
            (metric(&metrics, "vigie_events_applied_total")? >= rest).then_some(())
        })
    })
    .await
    .unwrap();
    let metrics = tokio::task::spawn_blocking(move || http_get(port, "/metrics").unwrap().1)
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "vigie_events_applied_total"),
        Some(rest),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "vigie_snapshot_restores_total{outcome=\"restored\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    signal(child.id(), Signal::TERM);
    let output = tokio::task::spawn_blocking(move || wait_within(&mut child, WAIT))
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    assert_eq!(
        stopped_counts(&log).0,
        events.len() as u64,
        "the whole day: {log}"
    );
}

#[test]
fn credentials_connect_and_are_never_logged() {
    const PASSWORD: &str = "pa55-w0rd-never-logged";
    let server = NatsServer::start_with(&format!(
        "authorization {{ user: vigie, password: \"{PASSWORD}\" }}"
    ));
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = day();
    let mut nats = server.nats_config();
    nats.user = Some("vigie".to_owned());
    nats.password = Some(vigie_ingest::Secret(PASSWORD.to_owned()));
    config.nats = Some(nats);
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let port = free_port();
    let mut child = serve(
        &[
            "--config",
            "vigie.toml",
            "--http",
            &format!("127.0.0.1:{port}"),
        ],
        dir.path(),
    );
    eventually("ready with user and password", || {
        http_get(port, "/readyz").filter(|(s, _)| *s == 200)
    });
    signal(child.id(), Signal::TERM);
    let output = wait_within(&mut child, WAIT);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("connected to NATS"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password leaked into the log:\n{log}"
    );

    // A wrong password, given through the environment (overriding the file): a clear error.
    let output = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args([
            "serve",
            "--no-web",
            "--config",
            "vigie.toml",
            "--http",
            &format!("127.0.0.1:{}", free_port()),
            "--grpc-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(dir.path())
        .env("VIGIE_NATS__PASSWORD", "wrong-password-also-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = output;
    let output = wait_within(&mut child, WAIT);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("cannot connect to NATS at"), "{log}");
    assert!(
        !log.contains("wrong-password-also-secret") && !log.contains(PASSWORD),
        "{log}"
    );
}

#[test]
fn a_token_from_the_environment_connects() {
    const TOKEN: &str = "t0ken-never-logged";
    let server = NatsServer::start_with(&format!("authorization {{ token: \"{TOKEN}\" }}"));
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = day();
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args([
            "serve",
            "--no-web",
            "--config",
            "vigie.toml",
            "--nats",
            &server.url(),
            "--http",
            &format!("127.0.0.1:{port}"),
            "--grpc-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(dir.path())
        .env("VIGIE_NATS__TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("ready with a token", || {
        http_get(port, "/readyz").filter(|(s, _)| *s == 200)
    });
    signal(child.id(), Signal::TERM);
    let output = wait_within(&mut child, WAIT);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn an_unknown_demo_time_zone_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["serve", "--no-web", "--demo-time-zone", "Mars/Olympus_Mons"])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(dir.path())
        .env_remove("VIGIE_CONFIG")
        .env_remove(DEMO_TIME_ZONE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_within(&mut child, WAIT);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("--demo-time-zone: \"Mars/Olympus_Mons\" is not an IANA time zone"),
        "{log}"
    );
}
