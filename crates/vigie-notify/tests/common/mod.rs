//! What the delivery tests share: a webhook receiver on 127.0.0.1 that records every request
//! and answers from a script, sample notifications, and a notifier on a test configuration.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigie_core::Timestamp;
use vigie_notify::{
    Comparator, Notification, NotificationKind, Notifier, NotifierHandle, NotifyConfig,
    NotifyMetrics, Severity, TargetKind, Unit,
};

/// Bounds every wait of the tests.
pub async fn within<F: Future>(what: &str, timeout: Duration, future: F) -> F::Output {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?}: {what}"))
}

/// Waits until `check` holds, polling, or panics naming `what`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    within(what, timeout, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path of the request (`/slack-fr`).
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// The body, parsed.
    pub body: serde_json::Value,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// An answer of the receiver: status and optional `Retry-After`.
pub type Answer = (u16, Option<&'static str>);

#[derive(Default)]
struct Script {
    /// Answers to give, per path, before the default (200, or 202 for paths under /teams).
    answers: HashMap<String, VecDeque<Answer>>,
    /// Paths that always get this answer.
    always: HashMap<String, Answer>,
}

struct Shared {
    script: Mutex<Script>,
    tx: mpsc::UnboundedSender<Received>,
}

/// A webhook receiver on 127.0.0.1, on a port of its own.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let (status, retry_after) = {
        let mut script = shared.script.lock().expect("script lock");
        if let Some(answer) = script.always.get(&path) {
            *answer
        } else if let Some(answer) = script.answers.get_mut(&path).and_then(VecDeque::pop_front) {
            answer
        } else if path.starts_with("/teams") {
            (202, None)
        } else {
            (200, None)
        }
    };
    let body = serde_json::from_slice(&body).unwrap_or_else(|e| {
        serde_json::Value::String(format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        ))
    });
    let _ = shared.tx.send(Received {
        path,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
        status,
        at: Instant::now(),
    });
    let status = StatusCode::from_u16(status).expect("a valid status in the script");
    let mut response = (status, if status.is_success() { "ok" } else { "nope" }).into_response();
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(
            "retry-after",
            retry_after.parse().expect("a valid header value"),
        );
    }
    response
}

impl Receiver {
    /// Starts a receiver answering 200 (202 under `/teams`) unless scripted otherwise.
    pub async fn start() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            tx,
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the listener's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            rx,
            task,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests to `path` with `answers`, in order.
    pub fn script(&self, path: &str, answers: &[Answer]) {
        let mut script = self.shared.script.lock().expect("script lock");
        script
            .answers
            .entry(path.to_owned())
            .or_default()
            .extend(answers.iter().copied());
    }

    /// Answers every request to `path` with `answer`.
    pub fn always(&self, path: &str, answer: Answer) {
        let mut script = self.shared.script.lock().expect("script lock");
        script.always.insert(path.to_owned(), answer);
    }

    /// The next request, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Received {
        within("a request to the webhook receiver", timeout, self.rx.recv())
            .await
            .expect("the receiver runs")
    }

    /// The next `count` requests, within `timeout` for all.
    pub async fn take(&mut self, count: usize, timeout: Duration) -> Vec<Received> {
        within(
            &format!("{count} requests to the webhook receiver"),
            timeout,
            async {
                let mut received = Vec::with_capacity(count);
                while received.len() < count {
                    received.push(self.rx.recv().await.expect("the receiver runs"));
                }
                received
            },
        )
        .await
    }

    /// Every request received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut received = Vec::new();
        while let Ok(request) = self.rx.try_recv() {
            received.push(request);
        }
        received
    }
}

/// 2024-03-05T09:12:00+01:00 (Paris).
pub const SINCE: Timestamp = Timestamp(1_709_626_320_000);

/// A critical service-level alert firing on queue "Ventes" of team "sales" in Paris, 5 min 10 s
/// after its condition started.
pub fn notification() -> Notification {
    Notification {
        site: "paris".to_owned(),
        site_name: Some("Paris La Défense".to_owned()),
        time_zone: "Europe/Paris".to_owned(),
        team: Some("sales".to_owned()),
        team_name: Some("Ventes".to_owned()),
        alert_id: "a-42".to_owned(),
        rule_id: "sl-sales".to_owned(),
        rule_name: "SL Ventes".to_owned(),
        target_kind: TargetKind::Queue,
        target_id: "q-sales".to_owned(),
        target_name: Some("Ventes".to_owned()),
        metric: "service_level".to_owned(),
        comparator: Comparator::Below,
        severity: Severity::Critical,
        kind: NotificationKind::Fired,
        value: Some(0.72),
        threshold: 0.8,
        unit: Unit::Fraction,
        since: SINCE,
        at: Timestamp(SINCE.0 + 310_000),
    }
}

/// The TOML of a notifier with quick retries, followed by `routes`.
pub fn config_toml(routes: &str) -> String {
    format!(
        r#"
        queue_capacity = 64
        route_queue_capacity = 16
        connect_timeout = "500ms"
        request_timeout = "2s"
        max_attempts = 4
        backoff_base = "20ms"
        backoff_max = "100ms"
        give_up_after = "20s"
        shutdown_grace = "5s"
        {routes}
        "#
    )
}

/// A `[[route]]` of `format` posting to `url`, with extra lines.
pub fn route(name: &str, format: &str, url: &str, extra: &str) -> String {
    format!("[[route]]\nname = \"{name}\"\nformat = \"{format}\"\nurl = \"{url}\"\n{extra}\n")
}

/// Parses a configuration.
pub fn config(text: &str) -> NotifyConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("invalid test configuration: {e}\n{text}"))
}

/// A running notifier (without NATS) and its handle and metrics.
pub struct Running {
    pub handle: NotifierHandle,
    pub metrics: NotifyMetrics,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Drops the handle and waits for the notifier to deliver what it holds and stop.
    pub async fn finish(self) -> NotifyMetrics {
        drop(self.handle);
        within("the notifier to stop", Duration::from_secs(15), self.task)
            .await
            .expect("the notifier task does not panic");
        self.metrics
    }
}

/// Builds and spawns a notifier.
pub fn start(config: &NotifyConfig, nats: Option<async_nats::Client>) -> Running {
    let metrics = NotifyMetrics::default();
    let (notifier, handle) =
        Notifier::new(config, nats, metrics.clone()).expect("a valid notifier configuration");
    Running {
        handle,
        metrics,
        task: tokio::spawn(notifier.run()),
    }
}
