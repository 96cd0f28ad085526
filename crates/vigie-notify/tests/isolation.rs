//! An unreachable webhook delays neither the caller nor the other routes, and full queues drop
//! and count instead of waiting.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use common::{Receiver, config, config_toml, eventually, notification, route, start, within};
use tokio::time::Instant;
use vigie_notify::{Notifier, NotifyMetrics, SendError};

/// A port on 127.0.0.1 where nothing listens (connections are refused).
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A server on 127.0.0.1 that accepts connections and never answers, until dropped.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_webhooks_delay_neither_the_caller_nor_the_other_routes() {
    let mut good = Receiver::start().await;
    let (silent_port, silent) = silent_server().await;
    let routes = [
        route(
            "closed",
            "slack",
            &format!("http://127.0.0.1:{}/hook", closed_port()),
            "",
        ),
        route(
            "silent",
            "teams",
            &format!("http://127.0.0.1:{silent_port}/hook"),
            "",
        ),
        route("good", "mattermost", &good.url("/good"), ""),
    ]
    .concat();
    // Each attempt on the silent server waits for the whole request timeout.
    let text = config_toml(&routes)
        .replace("request_timeout = \"2s\"", "request_timeout = \"5s\"")
        .replace("max_attempts = 4", "max_attempts = 10")
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"1s\"");
    let running = start(&config(&text), None);

    let started = Instant::now();
    for index in 0..5 {
        let mut n = notification();
        n.alert_id = format!("a-{index}");
        let call = Instant::now();
        running.handle.try_send(n).unwrap();
        // Queuing, never waiting for a delivery (the bound is generous for a slow machine).
        assert!(call.elapsed() < Duration::from_millis(200));
    }

    // The good route gets all five well before the silent one's first attempt times out.
    let received = good.take(5, Duration::from_secs(4)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let ids: Vec<String> = received
        .iter()
        .map(|r| {
            r.body["attachments"][0]["footer"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for (index, footer) in ids.iter().enumerate() {
        assert!(footer.contains(&format!("a-{index}")), "in order: {ids:?}");
    }

    let metrics = running.metrics.clone();
    eventually(
        "the good route to count its deliveries",
        Duration::from_secs(5),
        || metrics.delivered_total("good") == 5,
    )
    .await;
    assert_eq!(metrics.delivered_total("closed"), 0);
    assert_eq!(metrics.delivered_total("silent"), 0);
    eventually(
        "the closed port to be retried",
        Duration::from_secs(5),
        || metrics.retries_total("closed", "connect") >= 1,
    )
    .await;
    eventually(
        "the silent server to time out",
        Duration::from_secs(10),
        || metrics.retries_total("silent", "timeout") >= 1,
    )
    .await;

    // Shutdown gives up what the bad routes still hold after the grace period, counted.
    let metrics = running.finish().await;
    let given_up = |route: &str| {
        metrics.failed_total(route, "attempts")
            + metrics.failed_total(route, "deadline")
            + metrics.failed_total(route, "shutdown")
            + metrics.route_dropped_total(route, "shutdown")
    };
    assert_eq!(metrics.delivered_total("silent") + given_up("silent"), 5);
    assert_eq!(metrics.delivered_total("closed") + given_up("closed"), 5);
    silent.abort();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let text = config_toml("").replace("queue_capacity = 64", "queue_capacity = 2");
    let metrics = NotifyMetrics::default();
    // Not running: nothing takes from the queue.
    let (notifier, handle) =
        Notifier::new(&config(&text), None, metrics.clone()).expect("valid configuration");
    assert_eq!(handle.try_send(notification()), Ok(()));
    assert_eq!(handle.try_send(notification()), Ok(()));
    assert_eq!(handle.try_send(notification()), Err(SendError::Full));
    assert_eq!(metrics.accepted_total(), 2);
    assert_eq!(metrics.dropped_total("queue_full"), 1);
    drop(notifier);
    assert_eq!(handle.try_send(notification()), Err(SendError::Closed));
    assert_eq!(metrics.dropped_total("closed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_route_fills_its_own_queue_only() {
    let mut good = Receiver::start().await;
    let (silent_port, silent) = silent_server().await;
    let routes = [
        route(
            "silent",
            "json",
            &format!("http://127.0.0.1:{silent_port}/hook"),
            "",
        ),
        route("good", "json", &good.url("/good"), ""),
    ]
    .concat();
    let text = config_toml(&routes)
        .replace("route_queue_capacity = 16", "route_queue_capacity = 1")
        .replace("request_timeout = \"2s\"", "request_timeout = \"10s\"")
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"100ms\"");
    let running = start(&config(&text), None);
    for _ in 0..5 {
        running.handle.try_send(notification()).unwrap();
        // One at a time, so the good route's queue of one never overflows.
        within(
            "the good route",
            Duration::from_secs(5),
            good.next(Duration::from_secs(5)),
        )
        .await;
    }
    let metrics = running.metrics.clone();
    // The silent route holds one in flight and one queued: the other three are dropped.
    eventually("the slow route to drop", Duration::from_secs(5), || {
        metrics.route_dropped_total("silent", "queue_full") == 3
    })
    .await;
    eventually(
        "the good route to count its deliveries",
        Duration::from_secs(5),
        || metrics.delivered_total("good") == 5,
    )
    .await;
    assert_eq!(metrics.route_dropped_total("good", "queue_full"), 0);

    // The grace period is short: the one in flight and the one queued are counted as dropped.
    let metrics = running.finish().await;
    assert_eq!(metrics.failed_total("silent", "shutdown"), 1);
    assert_eq!(metrics.route_dropped_total("silent", "shutdown"), 1);
    silent.abort();
}
