//! The `Supervision` service: authentication of each call, then one engine query that checks
//! the scope and reads the view; `Watch*` streams read their topic in the hub.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use vigie_core::Window;
use vigie_engine::{EngineHandle, EngineState, EngineStopped};
use vigie_proto::v1 as pb;
use vigie_proto::v1::supervision_server::Supervision;

use crate::auth::{Authenticator, Principal};
use crate::convert;
use crate::hub::{Frame, Hub, TopicKey};
use crate::metrics::ApiMetrics;
use crate::read::{self, Target, WireView};

/// The `Supervision` service over an engine.
#[derive(Clone, Debug)]
pub struct SupervisionService {
    engine: EngineHandle,
    auth: Option<Arc<Authenticator>>,
    hub: Arc<Hub>,
    streams: Arc<Semaphore>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
}

impl SupervisionService {
    /// The service. Without an authenticator every caller is an anonymous admin (the server
    /// allows that only on loopback).
    pub fn new(
        engine: EngineHandle,
        auth: Option<Arc<Authenticator>>,
        hub: Arc<Hub>,
        max_streams: usize,
        metrics: ApiMetrics,
        shutdown: CancellationToken,
    ) -> SupervisionService {
        SupervisionService {
            engine,
            auth,
            hub,
            streams: Arc::new(Semaphore::new(max_streams)),
            metrics,
            shutdown,
        }
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        authenticate(self.auth.as_deref(), request)
    }

    /// Runs a read on the engine for an authenticated caller, and counts the call.
    async fn answer<T, R>(
        &self,
        method: &'static str,
        request: &Request<T>,
        read: impl FnOnce(&vigie_engine::EngineState, &Principal) -> Result<R, Status> + Send + 'static,
    ) -> Result<Response<R>, Status>
    where
        R: Send + 'static,
    {
        let result = match self.principal(request) {
            Ok(principal) => self
                .engine
                .query(move |state| read(state, &principal))
                .await
                .unwrap_or_else(|EngineStopped| Err(stopped())),
            Err(status) => Err(status),
        };
        self.metrics.call(
            method,
            result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        result.map(Response::new)
    }

    /// Opens a stream on a topic after checking access.
    pub(crate) async fn watch<U>(
        &self,
        method: &'static str,
        request: &Request<impl Sized>,
        site: String,
        target: Target,
        window: i32,
        wrap: fn(pb::UpdateKind, &Frame) -> Option<U>,
    ) -> Result<Response<UpdateStream<U>>, Status>
    where
        U: Send + 'static,
    {
        let result = self.open_stream(request, site, target, window, wrap).await;
        self.metrics.call(
            method,
            result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        result.map(Response::new)
    }

    async fn open_stream<U>(
        &self,
        request: &Request<impl Sized>,
        site: String,
        target: Target,
        window: i32,
        wrap: fn(pb::UpdateKind, &Frame) -> Option<U>,
    ) -> Result<UpdateStream<U>, Status>
    where
        U: Send + 'static,
    {
        let principal = self.principal(request)?;
        let window = window_of(window)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many open streams on this server; retry later")
        })?;
        let (check_site, check_target, check_principal) =
            (site.clone(), target.clone(), principal.clone());
        let remote = self.hub.remote();
        self.engine
            .query(move |state| {
                read::check_access(state, &remote, &check_principal, &check_site, &check_target)
            })
            .await
            .unwrap_or_else(|EngineStopped| Err(stopped()))?;
        let key = TopicKey {
            site,
            target,
            window,
            with_contacts: principal.may_see_contact_ids(),
        };
        let frames = self.hub.subscribe(key);
        Ok(Box::pin(updates(
            frames,
            permit,
            self.metrics.clone(),
            self.shutdown.clone(),
            wrap,
        )))
    }
}

/// Who calls: from the request's bearer token, or an anonymous admin when the server runs
/// without authentication (allowed only on loopback).
pub(crate) fn authenticate<T>(
    auth: Option<&Authenticator>,
    request: &Request<T>,
) -> Result<Principal, Status> {
    match auth {
        None => Ok(Principal::anonymous_admin()),
        Some(auth) => {
            let header = request
                .metadata()
                .get("authorization")
                .and_then(|value| value.to_str().ok());
            auth.authenticate(header).map_err(Status::from)
        }
    }
}

/// The stream of a `Watch*` call.
pub type UpdateStream<U> = Pin<Box<dyn Stream<Item = Result<U, Status>> + Send>>;

pub(crate) fn stopped() -> Status {
    Status::unavailable("the service is stopping")
}

/// Runs a read on the engine's task; the service is stopping when the engine is gone.
pub(crate) async fn query_engine<R: Send + 'static>(
    engine: &EngineHandle,
    read: impl FnOnce(&EngineState) -> Result<R, Status> + Send + 'static,
) -> Result<R, Status> {
    engine
        .query(read)
        .await
        .unwrap_or_else(|EngineStopped| Err(stopped()))
}

fn window_of(window: i32) -> Result<Window, Status> {
    convert::window_from_wire(window)
        .ok_or_else(|| Status::invalid_argument(format!("window: unknown value {window}")))
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(())
    }
}

/// The messages of a stream: the latest frame of the topic each time the client can take one.
/// A client that reads slowly skips frames (told by `UPDATE_KIND_RESYNC`), and holds nothing
/// but the shared latest frame meanwhile.
fn updates<U: Send + 'static>(
    frames: tokio::sync::watch::Receiver<Option<Arc<Frame>>>,
    permit: OwnedSemaphorePermit,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
    wrap: fn(pb::UpdateKind, &Frame) -> Option<U>,
) -> impl Stream<Item = Result<U, Status>> + Send {
    metrics.streams.inc();
    let guard = StreamGuard {
        _permit: permit,
        metrics,
    };
    let start = StreamState {
        frames,
        last: None,
        ended: false,
        guard,
        shutdown,
    };
    futures::stream::unfold(start, move |mut state| async move {
        if state.ended {
            return None;
        }
        let last = state.last;
        let next = tokio::select! {
            _ = state.shutdown.cancelled() => None,
            next = state
                .frames
                .wait_for(|frame| frame.as_ref().is_some_and(|f| Some(f.number) != last)) =>
                next.ok().and_then(|frame| frame.clone()),
        };
        let Some(frame) = next else {
            state.ended = true;
            let status = Status::unavailable(
                "the view is no longer published: the target is gone or the service is stopping",
            );
            return Some((Err(status), state));
        };
        let (kind, name) = match last {
            None => (pb::UpdateKind::Snapshot, "snapshot"),
            Some(previous) if frame.number == previous + 1 => (pb::UpdateKind::Change, "change"),
            Some(_) => (pb::UpdateKind::Resync, "resync"),
        };
        state.guard.metrics.message(name);
        state.last = Some(frame.number);
        let message = wrap(kind, &frame)
            .ok_or_else(|| Status::internal("the topic published another kind of view"));
        Some((message, state))
    })
}

struct StreamState {
    frames: tokio::sync::watch::Receiver<Option<Arc<Frame>>>,
    last: Option<u64>,
    ended: bool,
    guard: StreamGuard,
    shutdown: CancellationToken,
}

/// Releases the stream's slot and gauge when the client goes away.
struct StreamGuard {
    _permit: OwnedSemaphorePermit,
    metrics: ApiMetrics,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics.streams.dec();
    }
}

#[tonic::async_trait]
impl Supervision for SupervisionService {
    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let remote = self.hub.remote();
        self.answer("ListSites", &request, move |state, principal| {
            let sites = state
                .processor
                .sites()
                .filter(|site| principal.may_list_site(&site.site().id))
                .map(|site| {
                    let config = site.site();
                    let complete =
                        match read::source(state, &remote, principal, &config.id, Window::Today) {
                            Ok(read::Source::Local(_)) => state.feed(&config.id).complete(),
                            Ok(read::Source::Remote { window, owner }) => {
                                !owner.is_empty() && window.complete()
                            }
                            Err(_) => false,
                        };
                    pb::SiteSummary {
                        site: config.id.clone(),
                        name: config.name.clone(),
                        time_zone: config.time_zone.clone(),
                        complete,
                    }
                })
                .collect();
            Ok(pb::ListSitesResponse { sites })
        })
        .await
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let site_id = request.get_ref().site.clone();
        required("site", &site_id)?;
        let remote = self.hub.remote();
        self.answer("ListTeams", &request, move |state, principal| {
            let readable = |team: &str| principal.may_read_team(&site_id, team);
            let teams = match read::source(state, &remote, principal, &site_id, Window::Today)? {
                read::Source::Local(site) => site
                    .team_ids()
                    .into_iter()
                    .filter(|team| readable(team))
                    .filter_map(|team| site.team_view(team, Window::Today))
                    .map(|view| pb::TeamSummary {
                        team: view.team,
                        name: view.name,
                        queues: view.queues,
                        members: view.members.len() as u32,
                    })
                    .collect(),
                read::Source::Remote { window, .. } => window
                    .teams()
                    .filter_map(|view| view.team.as_ref())
                    .filter(|team| readable(&team.team))
                    .map(|team| pb::TeamSummary {
                        team: team.team.clone(),
                        name: team.name.clone(),
                        queues: team.queues.clone(),
                        members: team.members.len() as u32,
                    })
                    .collect(),
            };
            Ok(pb::ListTeamsResponse { teams })
        })
        .await
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let site_id = request.get_ref().site.clone();
        required("site", &site_id)?;
        let remote = self.hub.remote();
        self.answer("ListQueues", &request, move |state, principal| {
            let queues = match read::source(state, &remote, principal, &site_id, Window::Today)? {
                read::Source::Local(site) => site
                    .queue_ids()
                    .into_iter()
                    .filter(|queue| {
                        principal.may_read_queue(&site_id, queue, &site.teams_serving(queue))
                    })
                    .map(|queue| read::targets(site, queue))
                    .collect(),
                read::Source::Remote { window, .. } => window
                    .queues()
                    .filter(|queue| {
                        principal.may_read_queue(
                            &site_id,
                            &queue.queue,
                            &window.teams_serving(&queue.queue),
                        )
                    })
                    .map(|queue| pb::QueueTargets {
                        queue: queue.queue.clone(),
                        sl_threshold: queue.sl_threshold,
                        sl_target: queue.sl_target,
                        aht_target: queue.aht_target,
                    })
                    .collect(),
            };
            Ok(pb::ListQueuesResponse { queues })
        })
        .await
    }

    async fn list_advisors(
        &self,
        request: Request<pb::ListAdvisorsRequest>,
    ) -> Result<Response<pb::ListAdvisorsResponse>, Status> {
        let pb::ListAdvisorsRequest {
            site: site_id,
            team,
        } = request.get_ref().clone();
        required("site", &site_id)?;
        let remote = self.hub.remote();
        self.answer("ListAdvisors", &request, move |state, principal| {
            let listed = |advisor: &str, in_team: &str| {
                team.as_ref().is_none_or(|team| in_team == team)
                    && principal.may_read_advisor(&site_id, advisor, Some(in_team))
            };
            let advisors = match read::source(state, &remote, principal, &site_id, Window::Today)? {
                read::Source::Local(site) => site
                    .advisor_states()
                    .into_iter()
                    .filter(|advisor| listed(&advisor.advisor, &advisor.team))
                    .map(|advisor| pb::AdvisorSummary {
                        advisor: advisor.advisor,
                        name: advisor.name,
                        team: advisor.team,
                        state: convert::live_state(advisor.state),
                        reason: advisor.reason,
                    })
                    .collect(),
                read::Source::Remote { window, .. } => window
                    .advisors()
                    .filter(|advisor| listed(&advisor.advisor, &advisor.team))
                    .map(|advisor| pb::AdvisorSummary {
                        advisor: advisor.advisor.clone(),
                        name: advisor.name.clone(),
                        team: advisor.team.clone(),
                        state: advisor.state,
                        reason: advisor.reason.clone(),
                    })
                    .collect(),
            };
            Ok(pb::ListAdvisorsResponse { advisors })
        })
        .await
    }

    async fn get_site_view(
        &self,
        request: Request<pb::GetSiteViewRequest>,
    ) -> Result<Response<pb::SiteView>, Status> {
        let pb::GetSiteViewRequest { site, window } = request.get_ref().clone();
        required("site", &site)?;
        let window = window_of(window)?;
        let remote = self.hub.remote();
        self.answer(
            "GetSiteView",
            &request,
            move |state, principal| match read::read(
                state,
                &remote,
                principal,
                &site,
                &Target::Site,
                window,
            )? {
                WireView::Site(view) => Ok(view),
                _ => Err(Status::internal("unexpected view")),
            },
        )
        .await
    }

    async fn get_team_view(
        &self,
        request: Request<pb::GetTeamViewRequest>,
    ) -> Result<Response<pb::TeamView>, Status> {
        let pb::GetTeamViewRequest { site, team, window } = request.get_ref().clone();
        required("site", &site)?;
        required("team", &team)?;
        let window = window_of(window)?;
        let remote = self.hub.remote();
        self.answer(
            "GetTeamView",
            &request,
            move |state, principal| match read::read(
                state,
                &remote,
                principal,
                &site,
                &Target::Team(team),
                window,
            )? {
                WireView::Team(view) => Ok(view),
                _ => Err(Status::internal("unexpected view")),
            },
        )
        .await
    }

    async fn get_queue_view(
        &self,
        request: Request<pb::GetQueueViewRequest>,
    ) -> Result<Response<pb::QueueView>, Status> {
        let pb::GetQueueViewRequest {
            site,
            queue,
            window,
        } = request.get_ref().clone();
        required("site", &site)?;
        required("queue", &queue)?;
        let window = window_of(window)?;
        let remote = self.hub.remote();
        self.answer(
            "GetQueueView",
            &request,
            move |state, principal| match read::read(
                state,
                &remote,
                principal,
                &site,
                &Target::Queue(queue),
                window,
            )? {
                WireView::Queue(view) => Ok(view),
                _ => Err(Status::internal("unexpected view")),
            },
        )
        .await
    }

    async fn get_advisor_view(
        &self,
        request: Request<pb::GetAdvisorViewRequest>,
    ) -> Result<Response<pb::AdvisorView>, Status> {
        let pb::GetAdvisorViewRequest {
            site,
            advisor,
            window,
        } = request.get_ref().clone();
        required("site", &site)?;
        required("advisor", &advisor)?;
        let window = window_of(window)?;
        let remote = self.hub.remote();
        self.answer(
            "GetAdvisorView",
            &request,
            move |state, principal| match read::read(
                state,
                &remote,
                principal,
                &site,
                &Target::Advisor(advisor),
                window,
            )? {
                WireView::Advisor(view) => Ok(view),
                _ => Err(Status::internal("unexpected view")),
            },
        )
        .await
    }

    type WatchSiteStream = UpdateStream<pb::SiteUpdate>;

    async fn watch_site(
        &self,
        request: Request<pb::WatchSiteRequest>,
    ) -> Result<Response<Self::WatchSiteStream>, Status> {
        let pb::WatchSiteRequest { site, window } = request.get_ref().clone();
        required("site", &site)?;
        self.watch(
            "WatchSite",
            &request,
            site,
            Target::Site,
            window,
            |kind, frame| match &frame.view {
                WireView::Site(view) => Some(pb::SiteUpdate {
                    kind: kind.into(),
                    view: Some(view.clone()),
                }),
                _ => None,
            },
        )
        .await
    }

    type WatchTeamStream = UpdateStream<pb::TeamUpdate>;

    async fn watch_team(
        &self,
        request: Request<pb::WatchTeamRequest>,
    ) -> Result<Response<Self::WatchTeamStream>, Status> {
        let pb::WatchTeamRequest { site, team, window } = request.get_ref().clone();
        required("site", &site)?;
        required("team", &team)?;
        self.watch(
            "WatchTeam",
            &request,
            site,
            Target::Team(team),
            window,
            |kind, frame| match &frame.view {
                WireView::Team(view) => Some(pb::TeamUpdate {
                    kind: kind.into(),
                    view: Some(view.clone()),
                }),
                _ => None,
            },
        )
        .await
    }

    type WatchQueueStream = UpdateStream<pb::QueueUpdate>;

    async fn watch_queue(
        &self,
        request: Request<pb::WatchQueueRequest>,
    ) -> Result<Response<Self::WatchQueueStream>, Status> {
        let pb::WatchQueueRequest {
            site,
            queue,
            window,
        } = request.get_ref().clone();
        required("site", &site)?;
        required("queue", &queue)?;
        self.watch(
            "WatchQueue",
            &request,
            site,
            Target::Queue(queue),
            window,
            |kind, frame| match &frame.view {
                WireView::Queue(view) => Some(pb::QueueUpdate {
                    kind: kind.into(),
                    view: Some(view.clone()),
                }),
                _ => None,
            },
        )
        .await
    }
}
