//! The HTTP ingest endpoint of `vigie serve` (`[ingest_http]`, off by default): connectors
//! that cannot speak NATS post events over HTTP, and Twilio TaskRouter posts its event
//! callbacks; every accepted event is published to the event stream with `Nats-Msg-Id` = its
//! id, and the answer is sent only once JetStream has acknowledged it.
//!
//! - `POST /ingest/v1/events`: canonical events, `application/json` (one event or an array)
//!   or `application/x-ndjson` (JSON Lines), with `Authorization: Bearer <token>`.
//! - `POST /ingest/v1/twilio/taskrouter?site=SITE`: one TaskRouter event callback
//!   (`application/x-www-form-urlencoded`), token as a bearer or as the `token` query
//!   parameter (TaskRouter cannot set headers); with `auth_token_file` set, Twilio's
//!   `X-Twilio-Signature` must be valid as well.
//!
//! Each token belongs to a connector of the tokens file, limited to its sites. The answer is
//! `200` with one result per event (`stored`, `duplicate`, `rejected` with the reason), or an
//! error for the whole request: `400` (body not JSON, not a form, no event), `401` (no token
//! or an unknown one), `403` (an event, or the callback's `site`, outside the token's sites,
//! or a callback without Twilio's valid signature: nothing of the request is published), `413` (body or event count over the limits), `415`
//! (content type), `503` with `Retry-After` (JetStream did not acknowledge in time: the
//! results say which events were stored, the others were not; send the request again, the
//! event ids make it safe).
//!
//! What it must not do: report an event stored that JetStream has not acknowledged, publish
//! anything of a request it refuses as a whole, or log event contents or tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigie_connectors::{CallbackOutcome, SignatureChecker, TaskRouterConfig, TaskRouterTranslator};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, Rejection, decode_json};
use vigie_ingest::publish::{Failure, PublishOutcome, Report};
use vigie_ingest::{NatsConfig, Publisher, PublisherConfig, RetryPolicy};

/// Largest `max_body_bytes` accepted in configuration.
const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Seconds a client is told to wait before sending again after a 503.
const RETRY_AFTER_SECS: u64 = 5;

/// The `[ingest_http]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestHttpConfig {
    /// Serve the endpoint (needs `[nats]`).
    #[serde(default)]
    pub enabled: bool,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The connectors' tokens: `[[connector]]` entries with `name`, `sha256` (of the token)
    /// and `sites`. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most events in one request.
    #[serde(default = "default_max_events")]
    pub max_events_per_request: usize,
    /// Time allowed for JetStream to acknowledge a request's events (retries included)
    /// before the answer is 503.
    #[serde(default = "default_publish_timeout")]
    pub publish_timeout: HumanDuration,
    /// How TaskRouter callbacks are translated.
    #[serde(default)]
    pub twilio_taskrouter: TaskRouterConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_events() -> usize {
    1000
}

fn default_publish_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

impl Default for IngestHttpConfig {
    fn default() -> Self {
        IngestHttpConfig {
            enabled: false,
            listen: default_listen(),
            tokens_file: None,
            max_body_bytes: default_max_body_bytes(),
            max_events_per_request: default_max_events(),
            publish_timeout: default_publish_timeout(),
            twilio_taskrouter: TaskRouterConfig::default(),
        }
    }
}

impl IngestHttpConfig {
    /// Checks the section (`nats`: whether `[nats]` is configured).
    pub fn validate(&self, path: &str, nats: bool) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        if let Err(problems) = self.twilio_taskrouter.build() {
            errors.0.extend(
                problems
                    .0
                    .iter()
                    .map(|problem| format!("{path}.twilio_taskrouter.{problem}")),
            );
        }
        if !(1024..=MAX_BODY_LIMIT).contains(&self.max_body_bytes) {
            errors.0.push(format!(
                "{path}.max_body_bytes: must be between 1024 and {MAX_BODY_LIMIT}, found {}",
                self.max_body_bytes
            ));
        }
        if !(1..=100_000).contains(&self.max_events_per_request) {
            errors.0.push(format!(
                "{path}.max_events_per_request: must be between 1 and 100000, found {}",
                self.max_events_per_request
            ));
        }
        let timeout = self.publish_timeout.0;
        if timeout < Duration::from_millis(500) || timeout > Duration::from_secs(120) {
            errors.0.push(format!(
                "{path}.publish_timeout: must be between 500ms and 2m, found {}",
                self.publish_timeout
            ));
        }
        if self.enabled {
            if self.tokens_file.is_none() {
                errors.0.push(format!(
                    "{path}.tokens_file: required when {path}.enabled is true (list each connector's token hash, from `vigie token hash`, under [[connector]])"
                ));
            }
            if !nats {
                errors.0.push(format!(
                    "{path}.enabled: the HTTP ingest endpoint publishes to NATS JetStream: configure [nats] (or --nats), or turn it off"
                ));
            }
        }
        errors.into_result()
    }
}

/// A connector of the tokens file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorEntry {
    name: String,
    sha256: String,
    sites: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    connector: Vec<ConnectorEntry>,
}

/// A connector allowed to post: its name and sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connector {
    /// Its name (logs, answers).
    pub name: String,
    /// Sites it may post events for.
    pub sites: BTreeSet<String>,
}

/// The connectors by the SHA-256 of their token.
#[derive(Clone, Debug, Default)]
pub struct Connectors(BTreeMap<String, Connector>);

impl Connectors {
    /// Parses a tokens file; `known_sites` are the configured sites. Every problem is
    /// reported at once.
    pub fn parse(text: &str, known_sites: &BTreeSet<String>) -> anyhow::Result<Connectors> {
        let file: TokensFile = toml::from_str(text)?;
        let mut problems = Vec::new();
        let mut connectors = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (index, entry) in file.connector.iter().enumerate() {
            let at = format!("connector[{index}] ({:?})", entry.name);
            let hash = entry.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                problems.push(format!(
                    "{at}.sha256: must be 64 hexadecimal digits, the SHA-256 of the token (`vigie token hash`)"
                ));
            }
            if entry.name.trim().is_empty() {
                problems.push(format!("{at}.name: must not be empty"));
            } else if !names.insert(entry.name.clone()) {
                problems.push(format!("{at}.name: another connector has this name"));
            }
            if entry.sites.is_empty() {
                problems.push(format!("{at}.sites: must list at least one site"));
            }
            for site in &entry.sites {
                if !known_sites.contains(site) {
                    problems.push(format!(
                        "{at}.sites: {site:?} is not a [[site]] of the configuration (its events would not be consumed)"
                    ));
                }
            }
            let connector = Connector {
                name: entry.name.clone(),
                sites: entry.sites.iter().cloned().collect(),
            };
            if connectors.insert(hash, connector).is_some() {
                problems.push(format!(
                    "{at}.sha256: same token as another connector: each token must appear once"
                ));
            }
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "{} problem(s):\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            );
        }
        Ok(Connectors(connectors))
    }

    /// Reads and parses a tokens file.
    pub fn load(path: &Path, known_sites: &BTreeSet<String>) -> anyhow::Result<Connectors> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
        Connectors::parse(&text, known_sites)
            .with_context(|| format!("in the tokens file {}", path.display()))
    }

    fn find(&self, token: &str) -> Option<&Connector> {
        self.0.get(&vigie_api::auth::hash_token(token))
    }

    /// How many connectors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `vigie_ingest_http_requests_total{code}` and `vigie_ingest_http_events_total{result}`.
#[derive(Clone, Debug, Default)]
pub struct IngestHttpMetrics {
    requests: Family<CodeLabel, Counter>,
    events: Family<ResultLabel, Counter>,
}

impl IngestHttpMetrics {
    /// Registers the metrics.
    pub fn new(registry: &mut Registry) -> IngestHttpMetrics {
        let metrics = IngestHttpMetrics::default();
        registry.register(
            "vigie_ingest_http_requests",
            "Requests to the HTTP ingest endpoint, by status code",
            metrics.requests.clone(),
        );
        registry.register(
            "vigie_ingest_http_events",
            "Events posted to the HTTP ingest endpoint, by result (stored, duplicate, rejected, not_stored)",
            metrics.events.clone(),
        );
        metrics
    }
}

/// The endpoint, ready to serve.
pub struct IngestHttp {
    config: IngestHttpConfig,
    state: Arc<Shared>,
}

impl std::fmt::Debug for IngestHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestHttp")
            .field("config", &self.config)
            .field("connectors", &self.state.connectors.len())
            .finish()
    }
}

struct Shared {
    connectors: Connectors,
    context: Context,
    subject_prefix: String,
    max_body_bytes: usize,
    max_events: usize,
    publish_timeout: Duration,
    twilio: Mutex<TaskRouterTranslator>,
    /// With the URL Twilio calls, up to the path, when TaskRouter's signatures are checked.
    twilio_signature: Option<(SignatureChecker, String)>,
    metrics: IngestHttpMetrics,
}

impl IngestHttp {
    /// Builds the endpoint: reads the tokens file (the connectors' sites must be among
    /// `sites`), publishes on `nats`'s event stream through `context`.
    pub fn new(
        config: &IngestHttpConfig,
        nats: &NatsConfig,
        context: Context,
        sites: &BTreeSet<String>,
        metrics: IngestHttpMetrics,
    ) -> anyhow::Result<IngestHttp> {
        let path = config
            .tokens_file
            .as_deref()
            .context("ingest_http.tokens_file is required")?;
        let connectors = Connectors::load(path, sites).context("ingest_http.tokens_file")?;
        if connectors.is_empty() {
            warn!(file = %path.display(), "the ingest tokens file lists no connector: every request will be refused");
        }
        let twilio = config
            .twilio_taskrouter
            .build()
            .context("ingest_http.twilio_taskrouter")?;
        let twilio_signature = twilio_signature(&config.twilio_taskrouter)?;
        Ok(IngestHttp {
            config: config.clone(),
            state: Arc::new(Shared {
                connectors,
                context,
                subject_prefix: nats.stream.subject_prefix.clone(),
                max_body_bytes: config.max_body_bytes,
                max_events: config.max_events_per_request,
                publish_timeout: config.publish_timeout.0,
                twilio: Mutex::new(twilio),
                twilio_signature,
                metrics,
            }),
        })
    }

    /// The routes (for tests in process, and [`IngestHttp::serve`]).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ingest/v1/events", post(post_events))
            .route("/ingest/v1/twilio/taskrouter", post(post_taskrouter))
            .with_state(self.state.clone())
    }

    /// Binds the configured address (so that a port in use stops `vigie serve` at start)
    /// and returns the server's future, which runs until `shutdown`.
    pub async fn bind(
        self,
        shutdown: CancellationToken,
    ) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (ingest_http.listen)",
                    self.config.listen
                )
            })?;
        info!(address = %self.config.listen, connectors = self.state.connectors.len(), "HTTP ingest endpoint on /ingest/v1/events and /ingest/v1/twilio/taskrouter");
        let app = self.router();
        Ok(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
            {
                warn!(%error, "HTTP ingest server error");
            }
        })
    }
}

// ---- answers --------------------------------------------------------------------------------

/// A whole-request error.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error,
            message: message.into(),
        }
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vigie-ingest\""),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&RETRY_AFTER_SECS.to_string())
                .expect("digits are a header value"),
        );
    }
    response
}

fn refusal_response(shared: &Shared, refusal: Refusal) -> Response {
    shared
        .metrics
        .requests
        .get_or_create(&CodeLabel {
            code: refusal.status.as_u16(),
        })
        .inc();
    json_response(
        refusal.status,
        &serde_json::json!({ "error": refusal.error, "message": refusal.message }),
    )
}

/// The fate of one event of a request.
#[derive(Clone, Debug, Serialize)]
struct EventResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl EventResult {
    fn rejected(index: usize, id: Option<String>, rejection: &Rejection) -> EventResult {
        EventResult {
            index,
            id,
            result: "rejected",
            sequence: None,
            reason: Some(rejection.reason.as_str().to_owned()),
            field: rejection.field,
            detail: Some(rejection.detail.clone()),
        }
    }
}

// ---- authentication -------------------------------------------------------------------------

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| {
            text.strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
        })
        .map(|token| Some(token.trim()))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the Authorization header must be `Bearer <token>`",
            )
        })
}

fn authenticate<'a>(shared: &'a Shared, token: Option<&str>) -> Result<&'a Connector, Refusal> {
    let token = token.ok_or_else(|| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a token is required: Authorization: Bearer <token>",
        )
    })?;
    shared
        .connectors
        .find(token)
        .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"))
}

// ---- bodies ---------------------------------------------------------------------------------

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|text| {
            text.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// The body, at most `max_body_bytes` (413 beyond, told by `Content-Length` or found while
/// reading).
async fn read_body(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", shared.max_body_bytes),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > shared.max_body_bytes as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, shared.max_body_bytes)
        .await
        .map_err(|_| too_large())
}

/// One posted event: its position, its original bytes.
struct Posted<'a> {
    index: usize,
    bytes: &'a [u8],
}

/// Splits a body into its events (400 when it is not JSON at all or holds none).
fn split_events<'a>(
    kind: BodyKind,
    body: &'a [u8],
    max_events: usize,
) -> Result<Vec<Posted<'a>>, Refusal> {
    let malformed =
        |message: String| Refusal::new(StatusCode::BAD_REQUEST, "malformed_body", message);
    let text =
        std::str::from_utf8(body).map_err(|error| malformed(format!("not UTF-8 text: {error}")))?;
    let posted: Vec<Posted<'a>> = match kind {
        BodyKind::Json => {
            let trimmed = text.trim_start();
            if trimmed.starts_with('[') {
                let items: Vec<&RawValue> = serde_json::from_str(text)
                    .map_err(|error| malformed(format!("not a JSON array: {error}")))?;
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| Posted {
                        index,
                        bytes: raw.get().as_bytes(),
                    })
                    .collect()
            } else if trimmed.starts_with('{') {
                let raw: &RawValue = serde_json::from_str(text)
                    .map_err(|error| malformed(format!("not a JSON object: {error}")))?;
                vec![Posted {
                    index: 0,
                    bytes: raw.get().as_bytes(),
                }]
            } else {
                return Err(malformed(
                    "application/json: the body must be one event (a JSON object) or an array of events"
                        .to_owned(),
                ));
            }
        }
        BodyKind::JsonLines => {
            // Each line stands alone: a bad line is that event's rejection, not the request's.
            let posted: Vec<Posted<'a>> = text
                .split('\n')
                .map(|line| line.trim_end_matches('\r'))
                .filter(|line| !line.trim().is_empty())
                .enumerate()
                .map(|(index, line)| Posted {
                    index,
                    bytes: line.as_bytes(),
                })
                .collect();
            if !posted.is_empty()
                && posted
                    .iter()
                    .all(|p| serde_json::from_slice::<serde::de::IgnoredAny>(p.bytes).is_err())
            {
                return Err(malformed(
                    "application/x-ndjson: no line is JSON; one event (a JSON object) per line"
                        .to_owned(),
                ));
            }
            posted
        }
    };
    if posted.is_empty() {
        return Err(malformed("the body holds no event".to_owned()));
    }
    if posted.len() > max_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "{} events in one request, the maximum is {max_events}",
                posted.len()
            ),
        ));
    }
    Ok(posted)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    Json,
    JsonLines,
}

// ---- publishing -----------------------------------------------------------------------------

/// Publishes `events` (index in the request, event, original JSON) and fills their results;
/// `Err` (503) when JetStream did not acknowledge them all in time.
async fn publish(
    shared: &Shared,
    events: Vec<(usize, Event, Option<Bytes>)>,
    results: &mut BTreeMap<usize, EventResult>,
) -> Result<(), ()> {
    let mut config = PublisherConfig {
        subject_prefix: shared.subject_prefix.clone(),
        ..PublisherConfig::new(&vigie_ingest::StreamConfig::default())
    };
    config.ack_timeout = shared.publish_timeout.min(Duration::from_secs(5));
    config.retry = RetryPolicy {
        attempts: 10,
        give_up_after: shared.publish_timeout,
        ..RetryPolicy::default()
    };
    let mut publisher = Publisher::new(shared.context.clone(), config);
    let mut ids: BTreeMap<u64, String> = BTreeMap::new();
    let mut reports: Vec<Report> = Vec::new();
    let mut sent = BTreeSet::new();
    // The bound on the whole request: the publisher's own retries give up within
    // `publish_timeout`; this one also covers a connection that cannot even take the message.
    let outer = shared.publish_timeout + Duration::from_secs(2);
    let finished = tokio::time::timeout(outer, async {
        for (index, event, original) in &events {
            match publisher.event_message(*index as u64, event, original.clone()) {
                Ok(message) => {
                    ids.insert(*index as u64, event.id.clone());
                    sent.insert(*index);
                    reports.extend(publisher.send(message).await);
                }
                Err(error) => {
                    results.insert(
                        *index,
                        EventResult {
                            index: *index,
                            id: Some(event.id.clone()),
                            result: "rejected",
                            sequence: None,
                            reason: Some("invalid_field".to_owned()),
                            field: Some("site"),
                            detail: Some(error.to_string()),
                        },
                    );
                }
            }
        }
        reports.extend(publisher.flush().await);
    })
    .await
    .is_ok();
    let mut unavailable = !finished;
    for report in reports {
        let index = report.index as usize;
        sent.remove(&index);
        let id = ids.get(&report.index).cloned();
        let result = match report.outcome {
            PublishOutcome::Stored { sequence } => EventResult {
                index,
                id,
                result: "stored",
                sequence: Some(sequence),
                reason: None,
                field: None,
                detail: None,
            },
            PublishOutcome::Duplicate { sequence } => EventResult {
                index,
                id,
                result: "duplicate",
                sequence: Some(sequence),
                reason: None,
                field: None,
                detail: None,
            },
            PublishOutcome::Failed(Failure::GaveUp { attempts, last }) => {
                unavailable = true;
                not_stored(
                    index,
                    id,
                    format!("no acknowledgement after {attempts} attempt(s): {last}"),
                )
            }
            PublishOutcome::Failed(failure) => EventResult {
                index,
                id,
                result: "rejected",
                sequence: None,
                reason: Some("refused_by_nats".to_owned()),
                field: None,
                detail: Some(failure.to_string()),
            },
        };
        results.insert(index, result);
    }
    // Sent, but no report before the bound: not known to be stored.
    for index in sent {
        let id = ids.get(&(index as u64)).cloned();
        results.insert(
            index,
            not_stored(
                index,
                id,
                "no acknowledgement within the publish timeout".to_owned(),
            ),
        );
    }
    if unavailable { Err(()) } else { Ok(()) }
}

fn not_stored(index: usize, id: Option<String>, detail: String) -> EventResult {
    EventResult {
        index,
        id,
        result: "not_stored",
        sequence: None,
        reason: Some("nats_unavailable".to_owned()),
        field: None,
        detail: Some(detail),
    }
}

/// Publishes the accepted events and answers: 200 with the results, or 503 with them.
async fn publish_and_answer(
    shared: &Shared,
    connector: &Connector,
    accepted: Vec<(usize, Event, Option<Bytes>)>,
    mut results: BTreeMap<usize, EventResult>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let outcome = if accepted.is_empty() {
        Ok(())
    } else {
        publish(shared, accepted, &mut results).await
    };
    let results: Vec<EventResult> = results.into_values().collect();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for result in &results {
        *counts.entry(result.result).or_default() += 1;
        shared
            .metrics
            .events
            .get_or_create(&ResultLabel {
                result: result.result,
            })
            .inc();
    }
    let status = match outcome {
        Ok(()) => StatusCode::OK,
        Err(()) => {
            warn!(connector = %connector.name, "JetStream did not acknowledge in time: 503");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    shared
        .metrics
        .requests
        .get_or_create(&CodeLabel {
            code: status.as_u16(),
        })
        .inc();
    let mut body = serde_json::Map::new();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        body.insert("error".into(), "nats_unavailable".into());
        body.insert(
            "message".into(),
            "the event stream did not acknowledge every event in time: send the request again (event ids make it safe)".into(),
        );
    }
    body.insert("connector".into(), connector.name.clone().into());
    for result in ["stored", "duplicate", "rejected", "not_stored"] {
        body.insert(
            result.into(),
            counts.get(result).copied().unwrap_or(0).into(),
        );
    }
    body.extend(extra);
    body.insert(
        "results".into(),
        serde_json::to_value(&results).expect("results serialize"),
    );
    json_response(status, &serde_json::Value::Object(body))
}

// ---- handlers -------------------------------------------------------------------------------

async fn post_events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match events_request(&shared, &headers, body).await {
        Ok(response) => response,
        Err(refusal) => refusal_response(&shared, refusal),
    }
}

async fn events_request(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let connector = authenticate(shared, bearer(headers)?)?;
    let kind = match media_type(headers).as_deref() {
        Some("application/json") => BodyKind::Json,
        Some("application/x-ndjson" | "application/jsonl" | "application/jsonlines") => {
            BodyKind::JsonLines
        }
        other => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {}: send application/json (an event or an array) or application/x-ndjson (JSON Lines)",
                    other.unwrap_or("missing")
                ),
            ));
        }
    };
    let bytes = read_body(shared, headers, body).await?;
    let posted = split_events(kind, &bytes, shared.max_events)?;
    let mut results = BTreeMap::new();
    let mut accepted = Vec::new();
    let mut outside = BTreeSet::new();
    for Posted { index, bytes } in posted {
        match decode_json(bytes, DEFAULT_MAX_EVENT_BYTES) {
            Ok(event) => {
                if !connector.sites.contains(&event.site) {
                    outside.insert(event.site.clone());
                }
                accepted.push((index, event, Some(Bytes::copy_from_slice(bytes))));
            }
            Err(rejection) => {
                let id = serde_json::from_slice::<serde_json::Value>(bytes)
                    .ok()
                    .and_then(|value| value.get("id")?.as_str().map(str::to_owned));
                results.insert(index, EventResult::rejected(index, id, &rejection));
            }
        }
    }
    if !outside.is_empty() {
        // The whole request: a connector posting for a site it does not own is misconfigured,
        // and half a batch stored would be harder to put right than none.
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden_site",
            format!(
                "connector {:?} may not post events of site(s) {}: nothing of this request was published",
                connector.name,
                outside
                    .iter()
                    .map(|site| format!("{site:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(publish_and_answer(shared, connector, accepted, results, serde_json::Map::new()).await)
}

/// The query of the TaskRouter callback URL.
#[derive(Debug, Deserialize)]
struct TaskRouterQuery {
    site: Option<String>,
    token: Option<String>,
}

/// The checker of TaskRouter's signatures, when `auth_token_file` is set (its first line is
/// the token).
fn twilio_signature(
    config: &TaskRouterConfig,
) -> anyhow::Result<Option<(SignatureChecker, String)>> {
    let (Some(path), Some(url)) = (&config.auth_token_file, &config.public_url) else {
        info!(
            "TaskRouter callbacks are taken on their token alone: set ingest_http.twilio_taskrouter.auth_token_file and public_url to check Twilio's signatures as well"
        );
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "ingest_http.twilio_taskrouter.auth_token_file: cannot read {}",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    anyhow::ensure!(
        !token.is_empty(),
        "ingest_http.twilio_taskrouter.auth_token_file: {} is empty; it must hold the Twilio account's auth token",
        path.display()
    );
    info!(public_url = %url, "TaskRouter callbacks must carry Twilio's valid X-Twilio-Signature");
    Ok(Some((SignatureChecker::new(token), url.clone())))
}

/// Refuses a TaskRouter callback without Twilio's valid signature, when they are checked:
/// the URL signed is the configured public one with the request's query string.
fn check_twilio_signature(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    let Some((checker, public_url)) = &shared.twilio_signature else {
        return Ok(());
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "X-Twilio-Signature is required: TaskRouter callbacks must come from Twilio",
            )
        })?;
    let url = match uri.query() {
        Some(query) => format!("{public_url}?{query}"),
        None => public_url.clone(),
    };
    match checker.verify(&url, body, signature) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Twilio-Signature does not match the callback: ingest_http.twilio_taskrouter.public_url must be the Event Callback URL set in TaskRouter (without its query string) and auth_token_file must hold the account's auth token",
        )),
        Err(problem) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed_callback",
            problem.to_string(),
        )),
    }
}

async fn post_taskrouter(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<TaskRouterQuery>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match taskrouter_request(&shared, query, &uri, &headers, body).await {
        Ok(response) => response,
        Err(refusal) => refusal_response(&shared, refusal),
    }
}

async fn taskrouter_request(
    shared: &Shared,
    query: TaskRouterQuery,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let token = match bearer(headers)? {
        Some(token) => Some(token),
        None => query.token.as_deref(),
    };
    let connector = authenticate(shared, token)?;
    let site = query.site.as_deref().ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing_site",
            "the callback URL must name the site: /ingest/v1/twilio/taskrouter?site=SITE",
        )
    })?;
    if !connector.sites.contains(site) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden_site",
            format!(
                "connector {:?} may not post events of site {site:?}",
                connector.name
            ),
        ));
    }
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "TaskRouter callbacks are application/x-www-form-urlencoded",
        ));
    }
    let bytes = read_body(shared, headers, body).await?;
    check_twilio_signature(shared, uri, headers, &bytes)?;
    let outcome = {
        let mut translator = shared
            .twilio
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        translator.translate_form(site, &bytes)
    };
    let mut extra = serde_json::Map::new();
    let events = match outcome {
        Ok(CallbackOutcome::Events(events)) => events,
        Ok(CallbackOutcome::Ignored { event_type }) => {
            extra.insert("ignored".into(), event_type.into());
            Vec::new()
        }
        Ok(CallbackOutcome::Skipped { event_type }) => {
            extra.insert("skipped".into(), event_type.into());
            Vec::new()
        }
        Err(problem) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "malformed_callback",
                problem.to_string(),
            ));
        }
    };
    let accepted = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| (index, event, None))
        .collect();
    Ok(publish_and_answer(shared, connector, accepted, BTreeMap::new(), extra).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> BTreeSet<String> {
        ["paris".to_owned(), "lyon".to_owned()].into()
    }

    #[test]
    fn the_tokens_file_reports_every_problem() {
        let hash = vigie_api::auth::hash_token("secret");
        let text = format!(
            "[[connector]]\nname = \"a\"\nsha256 = \"{hash}\"\nsites = [\"paris\"]\n\
             [[connector]]\nname = \"a\"\nsha256 = \"{hash}\"\nsites = [\"nantes\"]\n\
             [[connector]]\nname = \"c\"\nsha256 = \"xyz\"\nsites = []\n"
        );
        let message = format!("{:#}", Connectors::parse(&text, &sites()).unwrap_err());
        for expected in [
            "connector[1] (\"a\").name: another connector has this name",
            "connector[1] (\"a\").sites: \"nantes\" is not a [[site]]",
            "connector[1] (\"a\").sha256: same token as another connector",
            "connector[2] (\"c\").sha256: must be 64 hexadecimal digits",
            "connector[2] (\"c\").sites: must list at least one site",
        ] {
            assert!(message.contains(expected), "{expected}\n{message}");
        }
        let good = format!(
            "[[connector]]\nname = \"a\"\nsha256 = \"{}\"\nsites = [\"paris\", \"lyon\"]\n",
            hash.to_uppercase()
        );
        let connectors = Connectors::parse(&good, &sites()).unwrap();
        let found = connectors.find("secret").unwrap();
        assert_eq!(found.name, "a");
        assert!(connectors.find("Secret").is_none());
    }

    #[test]
    fn bodies_split_into_events_or_are_refused() {
        let one = br#"{"id":"e1"}"#;
        assert_eq!(
            split_events(BodyKind::Json, one, 10).map(|p| p.len()).ok(),
            Some(1)
        );
        let array = br#" [ {"id":"e1"}, 3, {"id":"e2"} ] "#;
        let posted = split_events(BodyKind::Json, array, 10).ok().unwrap();
        assert_eq!(posted[1].bytes, b"3");
        assert_eq!(posted[2].bytes, br#"{"id":"e2"}"#);
        for bad in [&b"hello"[..], b"[1,", b"{\"a\":", b"42", b"[]", b"\xff"] {
            let refusal = split_events(BodyKind::Json, bad, 10).err().unwrap();
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let lines = b"{\"id\":\"e1\"}\r\n\nnot json\n{\"id\":\"e2\"}\n";
        let posted = split_events(BodyKind::JsonLines, lines, 10).ok().unwrap();
        assert_eq!(posted.len(), 3);
        assert_eq!(posted[1].bytes, b"not json");
        let refusal = split_events(BodyKind::JsonLines, b"garbage\nmore garbage", 10)
            .err()
            .unwrap();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        let refusal = split_events(BodyKind::JsonLines, lines, 2).err().unwrap();
        assert_eq!(refusal.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn enabled_needs_tokens_and_nats() {
        let config = IngestHttpConfig {
            enabled: true,
            max_body_bytes: 10,
            ..IngestHttpConfig::default()
        };
        let errors = config.validate("ingest_http", false).unwrap_err().0;
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("ingest_http.max_body_bytes"));
        assert!(errors[1].starts_with("ingest_http.tokens_file: required"));
        assert!(
            errors[2]
                .starts_with("ingest_http.enabled: the HTTP ingest endpoint publishes to NATS")
        );
        assert!(
            IngestHttpConfig::default()
                .validate("ingest_http", false)
                .is_ok()
        );
    }
}
