//! Failures and rate limits are retried with backoff, `Retry-After` is honoured, and a
//! receiver that never accepts is given up after the last attempt, counted.

mod common;

use std::time::Duration;

use common::{Receiver, config, config_toml, eventually, notification, route, start};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn server_errors_are_retried_then_delivered() {
    let mut receiver = Receiver::start().await;
    receiver.script("/hook", &[(500, None), (503, None)]);
    let running = start(
        &config(&config_toml(&route(
            "flaky",
            "slack",
            &receiver.url("/hook"),
            "",
        ))),
        None,
    );
    running.handle.try_send(notification()).unwrap();

    let requests = receiver.take(3, WAIT).await;
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 503, 200]);
    // The same message each time.
    assert_eq!(requests[0].body, requests[2].body);
    // Exponential backoff with equal jitter: at least half of 20 ms, then of 40 ms.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(10));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(20));

    let metrics = running.finish().await;
    assert_eq!(metrics.retries_total("flaky", "server_error"), 2);
    assert_eq!(metrics.delivered_total("flaky"), 1);
    assert_eq!(metrics.failed_total("flaky", "attempts"), 0);
    assert!(receiver.drain().is_empty(), "nothing after the delivery");
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_time_asked() {
    let mut receiver = Receiver::start().await;
    receiver.script("/hook", &[(429, Some("1"))]);
    let running = start(
        &config(&config_toml(&route(
            "limited",
            "mattermost",
            &receiver.url("/hook"),
            "",
        ))),
        None,
    );
    running.handle.try_send(notification()).unwrap();

    let requests = receiver.take(2, WAIT).await;
    assert_eq!(requests[0].status, 429);
    assert_eq!(requests[1].status, 200);
    // The backoff alone would have waited at most 20 ms: the one second is Retry-After's.
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );

    let metrics = running.finish().await;
    assert_eq!(metrics.retries_total("limited", "rate_limited"), 1);
    assert_eq!(metrics.delivered_total("limited"), 1);
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_given_up_after_the_last_attempt() {
    let mut receiver = Receiver::start().await;
    receiver.always("/down", (500, None));
    let routes = [
        route("down", "teams", &receiver.url("/down"), ""),
        route("up", "json", &receiver.url("/up"), ""),
    ]
    .concat();
    let running = start(&config(&config_toml(&routes)), None);
    running.handle.try_send(notification()).unwrap();

    let metrics = running.metrics.clone();
    eventually("the failing route to give up", WAIT, || {
        metrics.failed_total("down", "attempts") == 1
    })
    .await;
    let metrics = running.finish().await;
    let requests = receiver.drain();
    let down = requests.iter().filter(|r| r.path == "/down").count();
    // max_attempts = 4 in the test configuration: the first try and three retries.
    assert_eq!(down, 4);
    assert_eq!(metrics.retries_total("down", "server_error"), 3);
    assert_eq!(metrics.delivered_total("down"), 0);
    assert_eq!(metrics.delivered_total("up"), 1);
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let mut receiver = Receiver::start().await;
    receiver.always("/gone", (404, None));
    let running = start(
        &config(&config_toml(&route(
            "gone",
            "slack",
            &receiver.url("/gone"),
            "",
        ))),
        None,
    );
    running.handle.try_send(notification()).unwrap();
    let first = receiver.next(WAIT).await;
    assert_eq!(first.status, 404);
    let metrics = running.finish().await;
    assert!(receiver.drain().is_empty(), "a 404 is not tried again");
    assert_eq!(metrics.failed_total("gone", "rejected"), 1);
    assert_eq!(metrics.retries_total("gone", "server_error"), 0);
}

#[tokio::test]
async fn a_delivery_past_its_deadline_is_given_up() {
    let mut receiver = Receiver::start().await;
    // Asked to come back in an hour: past give_up_after (20 s), so given up at once.
    receiver.always("/later", (429, Some("3600")));
    let running = start(
        &config(&config_toml(&route(
            "later",
            "json",
            &receiver.url("/later"),
            "",
        ))),
        None,
    );
    running.handle.try_send(notification()).unwrap();
    let metrics = running.metrics.clone();
    eventually("the delivery to be given up", WAIT, || {
        metrics.failed_total("later", "deadline") == 1
    })
    .await;
    let metrics = running.finish().await;
    assert_eq!(receiver.drain().len(), 1);
    assert_eq!(metrics.retries_total("later", "rate_limited"), 0);
}
