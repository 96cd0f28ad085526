//! The notifier: a bounded queue the engine drops notifications into without waiting, a
//! dispatcher that routes them, and one task per route (NATS included) that delivers them in
//! order, with retries, without holding up the other routes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigie_core::config::ConfigErrors;

use crate::config::{NATS_ROUTE, NO_TEAM, NotifyConfig, RouteConfig};
use crate::metrics::{NotifyMetrics, drop_reason, route_drop_reason};
use crate::notification::Notification;
use crate::payload::{self, Format};
use crate::retry::{Jitter, backoff, retry_after};
use crate::secret::WebhookUrl;
use crate::text::Language;

/// Why the notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The configuration is invalid, or a route's URL could not be read; every problem is
    /// listed with its path, never with a URL.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The HTTP client could not be set up (TLS).
    #[error("cannot set up the HTTP client of the webhooks: {0}")]
    Client(String),
}

/// Why [`NotifierHandle::try_send`] dropped a notification (counted in
/// `vigie_notify_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The notifier's queue is full: deliveries are far behind.
    #[error("the notifier's queue is full: notification dropped")]
    Full,
    /// The notifier has stopped.
    #[error("the notifier has stopped: notification dropped")]
    Closed,
}

/// A cheap clone that hands notifications to the notifier without ever waiting.
#[derive(Clone, Debug)]
pub struct NotifierHandle {
    tx: mpsc::Sender<Notification>,
    metrics: NotifyMetrics,
}

impl NotifierHandle {
    /// Queues `notification` for delivery and returns at once. When the queue is full or the
    /// notifier has stopped, the notification is dropped and counted.
    pub fn try_send(&self, notification: Notification) -> Result<(), SendError> {
        match self.tx.try_send(notification) {
            Ok(()) => {
                self.metrics.accepted();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped(drop_reason::QUEUE_FULL);
                Err(SendError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.dropped(drop_reason::CLOSED);
                Err(SendError::Closed)
            }
        }
    }
}

/// The delivery settings every route shares.
#[derive(Clone, Copy, Debug)]
struct Policy {
    request_timeout: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    give_up_after: Duration,
}

/// Where a route delivers.
#[derive(Clone, Debug)]
enum Sink {
    Webhook {
        client: reqwest::Client,
        url: WebhookUrl,
        format: Format,
    },
    Nats {
        client: async_nats::Client,
        prefix: String,
    },
}

/// One route, ready to run.
#[derive(Debug)]
struct Route {
    name: String,
    /// Which notifications it takes; `None` for all (NATS).
    filter: Option<RouteConfig>,
    language: Language,
    sink: Sink,
}

/// The notifier task: routes what [`NotifierHandle::try_send`] queued and delivers it.
/// Build it with [`Notifier::new`] (or [`NotifyConfig::build`]), then spawn [`Notifier::run`].
#[derive(Debug)]
pub struct Notifier {
    rx: mpsc::Receiver<Notification>,
    routes: Vec<Route>,
    policy: Policy,
    route_queue_capacity: usize,
    shutdown_grace: Duration,
    metrics: NotifyMetrics,
}

impl NotifyConfig {
    /// Builds the notifier and its handle: see [`Notifier::new`].
    pub fn build(
        &self,
        nats: Option<async_nats::Client>,
        metrics: NotifyMetrics,
    ) -> Result<(Notifier, NotifierHandle), NotifyError> {
        Notifier::new(self, nats, metrics)
    }
}

impl Notifier {
    /// Checks `config` (as the `notify` section), reads the routes' URLs (`url_file`,
    /// `url_env`) and sets up the HTTP client. NATS publication is on when `nats` is given
    /// and `config.nats.enabled`. Needs no runtime; [`Notifier::run`] does.
    pub fn new(
        config: &NotifyConfig,
        nats: Option<async_nats::Client>,
        metrics: NotifyMetrics,
    ) -> Result<(Notifier, NotifierHandle), NotifyError> {
        config.validate("notify")?;
        let mut problems = Vec::new();
        let mut urls = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            match resolve_url(route, index) {
                Ok(url) => urls.push(url),
                Err(problem) => problems.push(problem),
            }
        }
        ConfigErrors(problems).into_result()?;

        let mut routes = Vec::new();
        if let Some(client) = nats.filter(|_| config.nats.enabled) {
            routes.push(Route {
                name: NATS_ROUTE.to_owned(),
                filter: None,
                language: config.nats.language,
                sink: Sink::Nats {
                    client,
                    prefix: config.nats.subject_prefix.clone(),
                },
            });
        }
        if !config.routes.is_empty() {
            let client = http_client(config)?;
            for (route, url) in config.routes.iter().zip(urls) {
                routes.push(Route {
                    name: route.name.clone(),
                    filter: Some(route.clone()),
                    language: route.language,
                    sink: Sink::Webhook {
                        client: client.clone(),
                        url,
                        format: route.format,
                    },
                });
            }
        }

        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let notifier = Notifier {
            rx,
            routes,
            policy: Policy {
                request_timeout: config.request_timeout.0,
                max_attempts: config.max_attempts,
                backoff_base: config.backoff_base.0,
                backoff_max: config.backoff_max.0,
                give_up_after: config.give_up_after.0,
            },
            route_queue_capacity: config.route_queue_capacity,
            shutdown_grace: config.shutdown_grace.0,
            metrics: metrics.clone(),
        };
        Ok((notifier, NotifierHandle { tx, metrics }))
    }

    /// Routes and delivers until every [`NotifierHandle`] is dropped, then gives the routes
    /// `shutdown_grace` to deliver what they hold, drops (and counts) the rest and returns.
    pub async fn run(self) {
        let Notifier {
            mut rx,
            routes,
            policy,
            route_queue_capacity,
            shutdown_grace,
            metrics,
        } = self;
        let stop = CancellationToken::new();
        let mut workers = JoinSet::new();
        let mut queues = Vec::with_capacity(routes.len());
        for (index, route) in routes.into_iter().enumerate() {
            let (tx, route_rx) = mpsc::channel(route_queue_capacity);
            let queued = metrics.queued(&route.name);
            let worker = Worker {
                name: route.name.clone(),
                language: route.language,
                sink: route.sink,
                policy,
                metrics: metrics.clone(),
                jitter: Jitter::new(index as u64),
                queued: queued.clone(),
            };
            workers.spawn(worker.run(route_rx, stop.clone()));
            queues.push((route.name, route.filter, tx, queued));
        }
        info!(routes = queues.len(), "notifier started");

        while let Some(notification) = rx.recv().await {
            let notification = Arc::new(notification);
            let mut matched = 0;
            for (name, filter, tx, queued) in &queues {
                if filter.as_ref().is_some_and(|f| !f.matches(&notification)) {
                    continue;
                }
                matched += 1;
                queued.inc();
                let job = Job {
                    notification: Arc::clone(&notification),
                    enqueued: Instant::now(),
                };
                if tx.try_send(job).is_err() {
                    queued.dec();
                    metrics.route_dropped(name, route_drop_reason::QUEUE_FULL, 1);
                    warn!(route = %name, "route queue full (webhook slow or down): notification dropped");
                }
            }
            if matched == 0 {
                debug!(rule = %notification.rule_id, "no route takes this notification");
            }
        }

        // Every handle is gone: the routes finish what they hold, within the grace period.
        drop(queues);
        let drained = tokio::time::timeout(shutdown_grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(grace = ?shutdown_grace, "notifier: grace period over, dropping what is left");
            stop.cancel();
            while workers.join_next().await.is_some() {}
        }
        info!("notifier stopped");
    }
}

/// The webhook URL of route `index`, from the file, the variable or the configuration.
fn resolve_url(route: &RouteConfig, index: usize) -> Result<WebhookUrl, String> {
    let at = format!("notify.route[{index}]");
    if let Some(url) = &route.url {
        return url
            .parse()
            .map_err(|problem| format!("{at}.url: {problem}"));
    }
    if let Some(path) = &route.url_file {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{at}.url_file: cannot read {}: {error}", path.display()))?;
        return WebhookUrl::parse(&text).map_err(|problem| {
            format!("{at}.url_file: the content of {} {problem}", path.display())
        });
    }
    if let Some(var) = &route.url_env {
        let text = std::env::var(var)
            .map_err(|_| format!("{at}.url_env: the environment variable {var} is not set"))?;
        return WebhookUrl::parse(&text)
            .map_err(|problem| format!("{at}.url_env: the value of {var} {problem}"));
    }
    Err(format!(
        "{at}: needs the webhook URL: url, url_file or url_env"
    ))
}

/// The webhooks' HTTP client: rustls with ring and the system's certificates, no redirects
/// (a webhook that moves is misconfigured, and following it could send the alert elsewhere).
fn http_client(config: &NotifyConfig) -> Result<reqwest::Client, NotifyError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|error| NotifyError::Client(error.to_string()))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(config.connect_timeout.0)
        .timeout(config.request_timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigie/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| NotifyError::Client(error.without_url().to_string()))
}

/// A notification waiting in a route's queue.
#[derive(Debug)]
struct Job {
    notification: Arc<Notification>,
    enqueued: Instant,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Refused for good (4xx other than 408 and 429): trying again would not help.
    Rejected {
        status: u16,
        detail: String,
    },
    /// Worth another try, after `after` if the receiver said so.
    Retry {
        reason: &'static str,
        after: Option<Duration>,
        detail: String,
    },
}

/// Delivers one route's notifications, in order.
struct Worker {
    name: String,
    language: Language,
    sink: Sink,
    policy: Policy,
    metrics: NotifyMetrics,
    jitter: Jitter,
    queued: Gauge,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
        loop {
            let job = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            };
            self.queued.dec();
            tokio::select! {
                biased;
                () = stop.cancelled() => {
                    self.metrics.failed(&self.name, "shutdown");
                    break;
                }
                () = self.deliver(&job) => {}
            }
        }
        rx.close();
        let mut left = 0;
        while rx.try_recv().is_ok() {
            self.queued.dec();
            left += 1;
        }
        if left > 0 {
            self.metrics
                .route_dropped(&self.name, route_drop_reason::SHUTDOWN, left);
        }
    }

    /// Tries until delivered, refused, out of attempts or past the deadline.
    async fn deliver(&mut self, job: &Job) {
        let notification = &job.notification;
        let body = self.sink.body(notification, self.language);
        let deadline = job.enqueued + self.policy.give_up_after;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = Instant::now();
            if now >= deadline {
                self.give_up("deadline", attempt - 1, "deadline passed before an attempt");
                return;
            }
            let budget = (deadline - now).min(self.policy.request_timeout);
            let outcome = tokio::time::timeout(budget, self.sink.send(notification, body.clone()))
                .await
                .unwrap_or_else(|_| Attempt::Retry {
                    reason: "timeout",
                    after: None,
                    detail: "no answer in time".to_owned(),
                });
            match outcome {
                Attempt::Delivered => {
                    let seconds = job.enqueued.elapsed().as_secs_f64();
                    self.metrics.delivered(&self.name, seconds);
                    debug!(route = %self.name, attempt, seconds, "notification delivered");
                    return;
                }
                Attempt::Rejected { status, detail } => {
                    self.metrics.failed(&self.name, "rejected");
                    warn!(
                        route = %self.name,
                        target = %self.sink.redacted(),
                        status,
                        response = %detail,
                        "the webhook refused the notification: not retried"
                    );
                    return;
                }
                Attempt::Retry {
                    reason,
                    after,
                    detail,
                } => {
                    if attempt >= self.policy.max_attempts {
                        self.give_up("attempts", attempt, &detail);
                        return;
                    }
                    let wait = after.unwrap_or_else(|| {
                        backoff(
                            attempt,
                            self.policy.backoff_base,
                            self.policy.backoff_max,
                            self.jitter.unit(),
                        )
                    });
                    if Instant::now() + wait >= deadline {
                        self.give_up("deadline", attempt, &detail);
                        return;
                    }
                    self.metrics.retried(&self.name, reason);
                    debug!(
                        route = %self.name,
                        target = %self.sink.redacted(),
                        attempt,
                        reason,
                        error = %detail,
                        wait = ?wait,
                        "delivery failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn give_up(&self, reason: &'static str, attempts: u32, detail: &str) {
        self.metrics.failed(&self.name, reason);
        warn!(
            route = %self.name,
            target = %self.sink.redacted(),
            attempts,
            reason,
            error = %detail,
            "notification given up"
        );
    }
}

impl Sink {
    /// Where it delivers, safe to log.
    fn redacted(&self) -> String {
        match self {
            Sink::Webhook { url, .. } => url.to_string(),
            Sink::Nats { prefix, .. } => format!("nats:{prefix}.>"),
        }
    }

    /// The body of `n`, encoded once for all attempts.
    fn body(&self, n: &Notification, language: Language) -> Bytes {
        let format = match self {
            Sink::Webhook { format, .. } => *format,
            Sink::Nats { .. } => Format::Json,
        };
        Bytes::from(payload::encode(format, n, language))
    }

    async fn send(&self, n: &Notification, body: Bytes) -> Attempt {
        match self {
            Sink::Webhook { client, url, .. } => post(client, url, body).await,
            Sink::Nats { client, prefix } => {
                let subject = subject(prefix, n);
                let mut headers = HeaderMap::new();
                headers.insert("Content-Type", "application/json");
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{}.{}.{}", n.alert_id, n.kind.tag().as_str(), n.at.0).as_str(),
                );
                match client.publish_with_headers(subject, headers, body).await {
                    Ok(()) => Attempt::Delivered,
                    Err(error) => Attempt::Retry {
                        reason: "nats",
                        after: None,
                        detail: error.to_string(),
                    },
                }
            }
        }
    }
}

/// Longest part of a refusal's body kept for the log.
const DETAIL_MAX: usize = 200;

async fn post(client: &reqwest::Client, url: &WebhookUrl, body: Bytes) -> Attempt {
    let response = client
        .post(url.expose().clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let reason = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else {
                "request"
            };
            return Attempt::Retry {
                reason,
                after: None,
                detail: url.scrub(&describe(error)),
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered;
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry_after(value, SystemTime::now()));
    let code = status.as_u16();
    let detail = response
        .text()
        .await
        .map(|text| {
            let text: String = text.chars().take(DETAIL_MAX).collect();
            url.scrub(text.trim())
        })
        .unwrap_or_default();
    let detail = format!("HTTP {code} {detail}").trim_end().to_owned();
    match code {
        429 => Attempt::Retry {
            reason: "rate_limited",
            after,
            detail,
        },
        408 => Attempt::Retry {
            reason: "timeout",
            after,
            detail,
        },
        500..=599 => Attempt::Retry {
            reason: "server_error",
            after,
            detail,
        },
        _ => Attempt::Rejected {
            status: code,
            detail,
        },
    }
}

/// An HTTP error and its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `<prefix>.<site>.<team>`, `_` for no team; characters that would change the subject's
/// shape (`.`, `*`, `>`, spaces) become `_`.
pub fn subject(prefix: &str, n: &Notification) -> String {
    format!(
        "{prefix}.{}.{}",
        subject_token(&n.site),
        subject_token(n.team.as_deref().unwrap_or(NO_TEAM))
    )
}

fn subject_token(text: &str) -> String {
    if text.is_empty() {
        return NO_TEAM.to_owned();
    }
    text.chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}
