//! Calls sent between instances over NATS (`[cluster]`): an instance asked something only a
//! site's owner can answer (acknowledging an alert, posting a notice, the site's history)
//! sends the call to that instance on `vigie.calls.<instance>` (request-reply) and answers
//! with its reply; each instance answers the calls addressed to it.
//!
//! A call carries the caller's `authorization` metadata: the `vigie.calls.>` subjects must be
//! open to Vigie's instances only (see `deploy/nats/accounts.conf`). Statuses travel as gRPC
//! puts them in trailers (`grpc-status`, `grpc-message`, `grpc-status-details-bin`), so an
//! error's details (which fields are wrong) reach the caller as the owner wrote them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codegen::http::{HeaderMap, HeaderName, HeaderValue};
use tracing::{debug, warn};
use vigie_api::{ForwardedCall, ForwardedCalls, Forwarder};

/// The subject prefix of forwarded calls: `vigie.calls.<instance>`.
pub const CALLS_PREFIX: &str = "vigie.calls";
/// The header carrying the gRPC method of a call.
const METHOD_HEADER: &str = "Vigie-Method";
/// The header carrying the caller's credentials.
const AUTHORIZATION_HEADER: &str = "Authorization";
/// The headers of a status, as gRPC writes them.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
/// Calls answered at once for other instances; beyond, they are refused (RESOURCE_EXHAUSTED)
/// and counted.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// The metrics of calls between instances.
#[derive(Clone, Debug, Default)]
pub struct CallMetrics {
    forwarded: Counter,
    unreachable: Counter,
    answered: Counter,
    refused: Counter,
}

impl CallMetrics {
    /// Registers the metrics.
    pub fn new(registry: &mut Registry) -> CallMetrics {
        let metrics = CallMetrics::default();
        registry.register(
            "vigie_calls_forwarded",
            "Calls sent to the instance processing their site",
            metrics.forwarded.clone(),
        );
        registry.register(
            "vigie_calls_unreachable",
            "Calls that could not be sent on: the owner did not answer (UNAVAILABLE)",
            metrics.unreachable.clone(),
        );
        registry.register(
            "vigie_calls_answered",
            "Calls answered here for other instances",
            metrics.answered.clone(),
        );
        registry.register(
            "vigie_calls_refused",
            "Calls from other instances refused: unreadable, or too many at once",
            metrics.refused.clone(),
        );
        metrics
    }
}

/// Sends calls to other instances over NATS.
#[derive(Debug)]
pub struct NatsForwarder {
    client: async_nats::Client,
    timeout: Duration,
    metrics: CallMetrics,
}

impl NatsForwarder {
    /// Sends calls through `client`, waiting at most `timeout` for each answer.
    pub fn new(client: async_nats::Client, timeout: Duration, metrics: CallMetrics) -> Self {
        NatsForwarder {
            client,
            timeout,
            metrics,
        }
    }
}

impl Forwarder for NatsForwarder {
    fn forward<'a>(
        &'a self,
        owner: &'a str,
        call: ForwardedCall,
    ) -> BoxFuture<'a, Result<Bytes, Status>> {
        Box::pin(async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(METHOD_HEADER, call.method.as_str());
            if let Some(authorization) = &call.authorization {
                headers.insert(AUTHORIZATION_HEADER, authorization.as_str());
            }
            let request = async_nats::Request::new()
                .payload(call.body)
                .headers(headers)
                .timeout(Some(self.timeout));
            self.metrics.forwarded.inc();
            let reply = self
                .client
                .send_request(format!("{CALLS_PREFIX}.{owner}"), request)
                .await
                .map_err(|error| {
                    self.metrics.unreachable.inc();
                    let why = match error.kind() {
                        async_nats::RequestErrorKind::NoResponders => "is not running".to_owned(),
                        async_nats::RequestErrorKind::TimedOut => {
                            format!("did not answer within {:?}", self.timeout)
                        }
                        _ => format!("cannot be reached ({error})"),
                    };
                    Status::unavailable(format!(
                        "instance {owner}, which processes this site, {why}: try again shortly"
                    ))
                })?;
            match reply.headers.as_ref().and_then(status_of) {
                Some(status) => Err(status),
                None => Ok(reply.payload),
            }
        })
    }
}

/// The status a reply carries, if it is one.
fn status_of(headers: &async_nats::HeaderMap) -> Option<Status> {
    let mut map = HeaderMap::new();
    for name in STATUS_HEADERS {
        if let Some(value) = headers.get(name)
            && let Ok(value) = HeaderValue::from_str(value.as_str())
        {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    Status::from_header_map(&map)
}

/// The headers of a reply refusing a call with `status`.
fn status_headers(status: &Status) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    let mut map = HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        // Only a message that cannot be written makes it fail: the code goes alone.
        map.clear();
        let _ = Status::new(status.code(), "").add_header(&mut map);
    }
    for name in STATUS_HEADERS {
        if let Some(value) = map.get(name).and_then(|value| value.to_str().ok()) {
            headers.insert(name, value);
        }
    }
    headers
}

/// Answers the calls other instances send to `instance`, until `shutdown`.
pub async fn answer(
    client: async_nats::Client,
    calls: ForwardedCalls,
    instance: String,
    metrics: CallMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subject = format!("{CALLS_PREFIX}.{instance}");
    let mut messages = client
        .subscribe(subject.clone())
        .await
        .map_err(|error| anyhow::anyhow!("cannot subscribe to {subject}: {error}"))?;
    let in_flight = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        let Some(reply) = message.reply.clone() else {
            metrics.refused.inc();
            debug!(subject = %message.subject, "a call without a reply subject: ignored");
            continue;
        };
        let method = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(METHOD_HEADER))
            .map(|value| value.as_str().to_owned());
        let refusal = match (&method, in_flight.clone().try_acquire_owned()) {
            (None, _) => Some(Status::invalid_argument("a forwarded call names no method")),
            (Some(_), Err(_)) => Some(Status::resource_exhausted(
                "too many calls from other instances at once; retry later",
            )),
            (Some(method), Ok(permit)) => {
                let call = ForwardedCall {
                    method: method.clone(),
                    authorization: message
                        .headers
                        .as_ref()
                        .and_then(|headers| headers.get(AUTHORIZATION_HEADER))
                        .map(|value| value.as_str().to_owned()),
                    body: message.payload.clone(),
                };
                let (client, calls, metrics, reply) = (
                    client.clone(),
                    calls.clone(),
                    metrics.clone(),
                    reply.clone(),
                );
                tokio::spawn(async move {
                    let _permit = permit;
                    let sent = match calls.answer(call).await {
                        Ok(response) => client.publish(reply, response).await,
                        Err(status) => {
                            client
                                .publish_with_headers(reply, status_headers(&status), Bytes::new())
                                .await
                        }
                    };
                    match sent {
                        Ok(()) => {
                            metrics.answered.inc();
                        }
                        Err(error) => {
                            warn!(%error, "the answer to a call of another instance was not sent");
                        }
                    }
                });
                None
            }
        };
        if let Some(status) = refusal {
            metrics.refused.inc();
            warn!(method = ?method, %status, "call from another instance refused");
            if let Err(error) = client
                .publish_with_headers(reply, status_headers(&status), Bytes::new())
                .await
            {
                warn!(%error, "the refusal of a call of another instance was not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn a_status_and_its_details_survive_the_trip_between_instances() {
        let details = ErrorDetails::with_bad_request_violation("text", "must not be empty");
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "la note est vide\nsecond line: 100% wrong",
            details,
        );
        let back = status_of(&status_headers(&status)).unwrap();
        assert_eq!(back.code(), Code::InvalidArgument);
        assert_eq!(back.message(), status.message());
        let violations = back.get_error_details().bad_request().unwrap().clone();
        assert_eq!(violations.field_violations[0].field, "text");
    }

    #[test]
    fn an_answer_is_not_taken_for_a_status() {
        assert!(status_of(&async_nats::HeaderMap::new()).is_none());
    }
}
