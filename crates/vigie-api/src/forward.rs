//! Calls that only the instance processing a site can answer, sent on to it.
//!
//! With several instances (`[cluster]`), every instance serves every site's views, but what
//! lives only with a site's owner (its alerts' state, today's history, the notices it keeps)
//! is changed and read there. A caller does not have to know which instance that is: an
//! instance that does not process the site sends the call on to the one that does, through a
//! [`Forwarder`] (NATS request-reply in the binary), and answers with its reply.
//!
//! The call travels whole: its method, its encoded request and the caller's `authorization`
//! metadata. The owner authenticates and checks it as if it had been made there, so the
//! instances need the same authentication settings, and no instance vouches for a caller.
//! A forwarded call is answered where it arrives or refused there (the site moved meanwhile):
//! it is never sent on a second time.
//!
//! This module must not know how calls travel: that is the [`Forwarder`]'s business.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use prost::Message;
use tonic::{Request, Response, Status};
use vigie_engine::EngineHandle;
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_server::Alerts;
use vigie_proto::v1::history_server::History;
use vigie_proto::v1::notices_server::Notices;

use crate::alerts::AlertsService;
use crate::history::HistoryService;
use crate::notices::NoticesService;

/// A unary call on its way to the instance that processes its site.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardedCall {
    /// The gRPC method, `/vigie.v1.Alerts/AckAlert` for example.
    pub method: String,
    /// The caller's `authorization` metadata, as it came.
    pub authorization: Option<String>,
    /// The request, protobuf-encoded.
    pub body: Bytes,
}

impl fmt::Debug for ForwardedCall {
    // The caller's credentials are never written out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardedCall")
            .field("method", &self.method)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<hidden>"),
            )
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Sends a call to another instance and brings back its answer: the encoded response, or the
/// status the instance answered with (`UNAVAILABLE` when it cannot be reached).
pub trait Forwarder: Send + Sync + fmt::Debug {
    /// Sends `call` to the instance named `owner`.
    fn forward<'a>(
        &'a self,
        owner: &'a str,
        call: ForwardedCall,
    ) -> BoxFuture<'a, Result<Bytes, Status>>;
}

/// Marks a request that another instance forwarded here: it is answered here or refused,
/// never forwarded again.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded;

/// A request of a call that is answered by the site's owner.
pub trait SiteCall: Message + Default + Send + 'static {
    /// Its gRPC method.
    const METHOD: &'static str;
    /// The site it is about.
    fn site(&self) -> &str;
}

macro_rules! site_calls {
    ($($request:ident => $method:literal),* $(,)?) => {
        $(impl SiteCall for pb::$request {
            const METHOD: &'static str = $method;
            fn site(&self) -> &str {
                &self.site
            }
        })*
    };
}

site_calls! {
    AckAlertRequest => "/vigie.v1.Alerts/AckAlert",
    SilenceAlertRequest => "/vigie.v1.Alerts/SilenceAlert",
    PostNoticeRequest => "/vigie.v1.Notices/PostNotice",
    WithdrawNoticeRequest => "/vigie.v1.Notices/WithdrawNotice",
    ListIntervalsRequest => "/vigie.v1.History/ListIntervals",
    GetTimesheetRequest => "/vigie.v1.History/GetTimesheet",
    GetReportRequest => "/vigie.v1.History/GetReport",
    ListAlertHistoryRequest => "/vigie.v1.History/ListAlertHistory",
    ListAbandonedContactsRequest => "/vigie.v1.History/ListAbandonedContacts",
}

/// How a service reaches the owners of the sites it does not process: nowhere (one instance,
/// or tests), or through a [`Forwarder`].
#[derive(Clone, Debug, Default)]
pub struct Forwarding {
    forwarder: Option<Arc<dyn Forwarder>>,
}

impl Forwarding {
    /// Calls are sent on through `forwarder`.
    pub fn through(forwarder: Arc<dyn Forwarder>) -> Forwarding {
        Forwarding {
            forwarder: Some(forwarder),
        }
    }

    /// Answers `request` with its site's owner's answer when another instance processes the
    /// site, else with `here`.
    pub(crate) async fn or_here<Req, Resp, Here, Answer>(
        &self,
        engine: &EngineHandle,
        request: Request<Req>,
        here: Here,
    ) -> Result<Resp, Status>
    where
        Req: SiteCall,
        Resp: Message + Default,
        Here: FnOnce(Request<Req>) -> Answer,
        Answer: Future<Output = Result<Resp, Status>>,
    {
        match self.owner_elsewhere(engine, &request).await {
            Some((forwarder, owner)) => {
                let call = ForwardedCall {
                    method: Req::METHOD.to_owned(),
                    authorization: request
                        .metadata()
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned),
                    body: Bytes::from(request.get_ref().encode_to_vec()),
                };
                let answer = forwarder.forward(&owner, call).await?;
                Resp::decode(answer).map_err(|error| {
                    Status::internal(format!(
                        "the answer of instance {owner} cannot be read: {error}"
                    ))
                })
            }
            None => here(request).await,
        }
    }

    /// The forwarder and the instance to send `request` to, if it is to be sent on.
    async fn owner_elsewhere<Req: SiteCall>(
        &self,
        engine: &EngineHandle,
        request: &Request<Req>,
    ) -> Option<(&Arc<dyn Forwarder>, String)> {
        let forwarder = self.forwarder.as_ref()?;
        if request.extensions().get::<Forwarded>().is_some() {
            return None;
        }
        let site = request.get_ref().site().to_owned();
        // An unknown site, or one no instance holds now, is answered here (NOT_FOUND,
        // UNAVAILABLE with its reason).
        let owner = engine
            .query(move |state| state.feed(&site).elsewhere)
            .await
            .ok()??;
        (!owner.is_empty()).then_some((forwarder, owner))
    }
}

/// Answers the calls other instances forward here, as the services answer them.
#[derive(Clone, Debug)]
pub struct ForwardedCalls {
    pub(crate) alerts: AlertsService,
    pub(crate) notices: NoticesService,
    pub(crate) history: HistoryService,
}

impl ForwardedCalls {
    /// The encoded response to `call`, or the status it is refused with.
    pub async fn answer(&self, call: ForwardedCall) -> Result<Bytes, Status> {
        let (alerts, notices, history) = (&self.alerts, &self.notices, &self.history);
        match call.method.as_str() {
            pb::AckAlertRequest::METHOD => answer(call, |r| alerts.ack_alert(r)).await,
            pb::SilenceAlertRequest::METHOD => answer(call, |r| alerts.silence_alert(r)).await,
            pb::PostNoticeRequest::METHOD => answer(call, |r| notices.post_notice(r)).await,
            pb::WithdrawNoticeRequest::METHOD => answer(call, |r| notices.withdraw_notice(r)).await,
            pb::ListIntervalsRequest::METHOD => answer(call, |r| history.list_intervals(r)).await,
            pb::GetTimesheetRequest::METHOD => answer(call, |r| history.get_timesheet(r)).await,
            pb::GetReportRequest::METHOD => answer(call, |r| history.get_report(r)).await,
            pb::ListAlertHistoryRequest::METHOD => {
                answer(call, |r| history.list_alert_history(r)).await
            }
            pb::ListAbandonedContactsRequest::METHOD => {
                answer(call, |r| history.list_abandoned_contacts(r)).await
            }
            other => Err(Status::unimplemented(format!(
                "{other} is not a call instances forward to each other"
            ))),
        }
    }
}

/// Decodes `call`, runs it through `handler` as a forwarded request with the caller's
/// credentials, and encodes the response.
async fn answer<Req, Resp, Handler, Answer>(
    call: ForwardedCall,
    handler: Handler,
) -> Result<Bytes, Status>
where
    Req: SiteCall,
    Resp: Message,
    Handler: FnOnce(Request<Req>) -> Answer,
    Answer: Future<Output = Result<Response<Resp>, Status>>,
{
    let body = Req::decode(call.body).map_err(|error| {
        Status::invalid_argument(format!(
            "forwarded {} does not decode: {error}",
            call.method
        ))
    })?;
    let mut request = Request::new(body);
    if let Some(authorization) = call.authorization {
        let value = authorization.parse().map_err(|_| {
            Status::unauthenticated("the forwarded authorization is not a valid metadata value")
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    request.extensions_mut().insert(Forwarded);
    let response = handler(request).await?;
    Ok(Bytes::from(response.into_inner().encode_to_vec()))
}
