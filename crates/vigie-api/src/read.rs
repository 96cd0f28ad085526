//! Reading views on the engine's task: who may read what, and the wire views themselves.
//!
//! The scope check and the view are computed in the same engine query, so a view is never
//! built for a caller who may not see it, and the answer "out of scope" is the same whether
//! the target exists or not.

use tonic::Status;
use vigie_core::{QueueConfig, SiteProcessor, Window};
use vigie_engine::EngineState;
use vigie_proto::v1 as pb;

use crate::auth::{Principal, permission_denied};
use crate::convert;
use crate::remote::{RemoteViews, RemoteWindow};
use crate::staffing::{self, Staffing};

/// What a view is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The whole site.
    Site,
    /// One team.
    Team(String),
    /// One queue.
    Queue(String),
    /// One advisor.
    Advisor(String),
}

/// A view in its wire form.
#[derive(Clone, Debug, PartialEq)]
pub enum WireView {
    /// A site.
    Site(pb::SiteView),
    /// A team.
    Team(pb::TeamView),
    /// A queue.
    Queue(pb::QueueView),
    /// An advisor.
    Advisor(pb::AdvisorView),
}

impl WireView {
    /// The view's protobuf encoding.
    pub fn encode(&self) -> bytes::Bytes {
        use prost::Message;
        bytes::Bytes::from(match self {
            WireView::Site(view) => view.encode_to_vec(),
            WireView::Team(view) => view.encode_to_vec(),
            WireView::Queue(view) => view.encode_to_vec(),
            WireView::Advisor(view) => view.encode_to_vec(),
        })
    }

    /// The header of the view.
    pub fn header(&self) -> Option<&pb::ViewHeader> {
        match self {
            WireView::Site(view) => view.header.as_ref(),
            WireView::Team(view) => view.header.as_ref(),
            WireView::Queue(view) => view.header.as_ref(),
            WireView::Advisor(view) => view.header.as_ref(),
        }
    }
}

fn not_found(what: &str, id: &str) -> Status {
    Status::not_found(format!("no {what} {id:?} at this site"))
}

/// The site, if the caller's scope touches it and this instance processes it; out of scope
/// otherwise (existing or not). A site another instance processes has no state here: what
/// only its owner holds (alerts, today's history, abandoned contacts) is asked of it.
pub fn site<'a>(
    state: &'a EngineState,
    principal: &Principal,
    site: &str,
) -> Result<&'a SiteProcessor, Status> {
    let processor = in_scope(state, principal, site)?;
    match state.feed(site).elsewhere {
        None => Ok(processor),
        Some(owner) => Err(Status::unavailable(format!(
            "{}: this call is answered by that instance only",
            elsewhere(site, &owner)
        ))),
    }
}

/// The site's processor, if the caller's scope touches the site (existing or not).
fn in_scope<'a>(
    state: &'a EngineState,
    principal: &Principal,
    site: &str,
) -> Result<&'a SiteProcessor, Status> {
    if !principal.may_list_site(site) {
        return Err(permission_denied());
    }
    state
        .processor
        .site(site)
        .ok_or_else(|| Status::not_found(format!("no site {site:?}")))
}

/// Where a site is processed, for callers of what only its owner holds.
fn elsewhere(site: &str, owner: &str) -> String {
    if owner.is_empty() {
        format!("no instance processes site {site:?} at the moment (try again shortly)")
    } else {
        format!("site {site:?} is processed by instance {owner}")
    }
}

/// A site as a view reader sees it: processed here, or published by the instance that
/// processes it.
#[derive(Debug)]
pub enum Source<'a> {
    /// Processed by this instance.
    Local(&'a SiteProcessor),
    /// Processed by another instance (named; empty: by none at the moment): its last
    /// published window.
    Remote {
        /// The window read.
        window: RemoteWindow,
        /// The instance processing the site now.
        owner: String,
    },
}

/// Where the views of a site come from, for a caller whose scope touches it.
pub fn source<'a>(
    state: &'a EngineState,
    remote: &RemoteViews,
    principal: &Principal,
    site_id: &str,
    window: Window,
) -> Result<Source<'a>, Status> {
    let processor = in_scope(state, principal, site_id)?;
    let Some(owner) = state.feed(site_id).elsewhere else {
        return Ok(Source::Local(processor));
    };
    match remote.window(site_id, window) {
        Some(window) => Ok(Source::Remote { window, owner }),
        None => Err(Status::unavailable(format!(
            "{}; its views have not reached this instance yet",
            elsewhere(site_id, &owner)
        ))),
    }
}

impl Source<'_> {
    /// Whether `team` is one of the site's teams.
    pub fn has_team(&self, team: &str) -> bool {
        match self {
            Source::Local(site) => site.team_ids().contains(&team),
            Source::Remote { window, .. } => window.has_team(team),
        }
    }

    fn has_queue(&self, queue: &str) -> bool {
        match self {
            Source::Local(site) => site.queue_ids().contains(&queue),
            Source::Remote { window, .. } => window.queues().any(|q| q.queue == queue),
        }
    }

    /// The teams whose campaign includes `queue`.
    pub fn teams_serving(&self, queue: &str) -> Vec<&str> {
        match self {
            Source::Local(site) => site.teams_serving(queue),
            Source::Remote { window, .. } => window.teams_serving(queue),
        }
    }

    /// The team of an advisor.
    pub fn advisor_team(&self, advisor: &str) -> Option<&str> {
        match self {
            Source::Local(site) => site.advisor_team(advisor),
            Source::Remote { window, .. } => window.advisor_team(advisor),
        }
    }
}

/// Checks that the caller may read `target` at `site` and that it exists.
pub fn check_access(
    state: &EngineState,
    remote: &RemoteViews,
    principal: &Principal,
    site_id: &str,
    target: &Target,
) -> Result<(), Status> {
    // Membership (teams, queues, advisors) is read from the day as a whole.
    let site = source(state, remote, principal, site_id, Window::Today)?;
    match target {
        Target::Site => {
            if !principal.may_read_site(site_id) {
                return Err(permission_denied());
            }
        }
        Target::Team(team) => {
            if !principal.may_read_team(site_id, team) {
                return Err(permission_denied());
            }
            if !site.has_team(team) {
                return Err(not_found("team", team));
            }
        }
        Target::Queue(queue) => {
            if !principal.may_read_queue(site_id, queue, &site.teams_serving(queue)) {
                return Err(permission_denied());
            }
            if !site.has_queue(queue) {
                return Err(not_found("queue", queue));
            }
        }
        Target::Advisor(advisor) => {
            let team = site.advisor_team(advisor);
            if !principal.may_read_advisor(site_id, advisor, team) {
                return Err(permission_denied());
            }
            if team.is_none() {
                return Err(not_found("advisor", advisor));
            }
        }
    }
    Ok(())
}

/// Where a site's figures stand.
pub fn header(state: &EngineState, site: &SiteProcessor, window: Window) -> pb::ViewHeader {
    let id = &site.site().id;
    let feed = state.feed(id);
    let incomplete_reason = match (&feed.elsewhere, &feed.gap, feed.recovering) {
        (Some(owner), _, _) if owner.is_empty() => {
            "no instance processes this site at the moment".to_owned()
        }
        (Some(owner), _, _) => format!("the site is processed by instance {owner}"),
        (None, Some(gap), _) => format!("ingestion saw a gap: {gap}"),
        (None, None, true) => "recovering the day after a start".to_owned(),
        (None, None, false) => String::new(),
    };
    pb::ViewHeader {
        site: id.clone(),
        window: convert::window_to_wire(window).into(),
        as_of: Some(convert::timestamp(site.now())),
        seq: state.sequences.get(id).copied().unwrap_or_default(),
        complete: feed.complete(),
        incomplete_reason,
        instance: state.instance.clone(),
    }
}

fn queue_view(
    site: &SiteProcessor,
    view: &vigie_core::QueueView,
    header: pb::ViewHeader,
    with_contacts: bool,
    staffing: Option<&Staffing>,
) -> pb::QueueView {
    let longest = with_contacts
        .then(|| site.longest_waiting_contact(&view.queue))
        .flatten();
    let mut wire = convert::queue(view, header, longest);
    wire.staffing = staffing.map(convert::staffing);
    wire
}

/// The targets of a queue: configured, or the defaults of a queue seen only in events.
pub fn targets(site: &SiteProcessor, queue: &str) -> pb::QueueTargets {
    let configured = site.site().queues.iter().find(|q| q.id == queue);
    let defaults;
    let config = match configured {
        Some(config) => config,
        None => {
            defaults = QueueConfig::with_defaults(queue);
            &defaults
        }
    };
    pb::QueueTargets {
        queue: queue.to_owned(),
        sl_threshold: config.sl_threshold.0.as_secs_f64(),
        sl_target: config.sl_target,
        aht_target: config.aht_target.map(|aht| aht.0.as_secs_f64()),
    }
}

/// A view whose access was checked, computed here or served from what the site's owner
/// published; `None` when the target no longer exists (or nothing was published yet).
pub fn view(
    state: &EngineState,
    remote: &RemoteViews,
    site_id: &str,
    target: &Target,
    window: Window,
    with_contacts: bool,
) -> Option<WireView> {
    match state.feed(site_id).elsewhere {
        None => build(state, site_id, target, window, with_contacts),
        Some(owner) => remote
            .window(site_id, window)?
            .view(target, with_contacts, &owner),
    }
}

/// Builds a view of a site processed here whose access was checked; `None` when the target
/// no longer exists.
pub fn build(
    state: &EngineState,
    site_id: &str,
    target: &Target,
    window: Window,
    with_contacts: bool,
) -> Option<WireView> {
    let site = state.processor.site(site_id)?;
    let header = header(state, site, window);
    Some(match target {
        Target::Site => {
            let view = site.site_view(window);
            let staffing = staffing::site(site, &view);
            let queues = view
                .queues
                .iter()
                .map(|queue| {
                    let staffing = staffing.queues.get(&queue.queue);
                    queue_view(site, queue, header.clone(), with_contacts, staffing)
                })
                .collect();
            let mut wire = convert::site(&view, header, site.site().name.clone(), queues);
            for team in &mut wire.teams {
                team.staffing = staffing.teams.get(&team.team).map(convert::staffing);
            }
            WireView::Site(wire)
        }
        Target::Team(team) => {
            let view = site.team_view(team, window)?;
            let queue_targets = view.queues.iter().map(|q| targets(site, q)).collect();
            let advisors = view
                .members
                .iter()
                .filter_map(|advisor| site.advisor_view(advisor, window))
                .map(|advisor| convert::advisor(&advisor))
                .collect();
            let mut team = convert::team(&view);
            team.staffing = staffing::team(site, &view).as_ref().map(convert::staffing);
            WireView::Team(pb::TeamView {
                header: Some(header),
                team: Some(team),
                queue_targets,
                advisors,
            })
        }
        Target::Queue(queue) => {
            let view = site.queue_view(queue, window)?;
            let staffing = staffing::queue(site, &view);
            WireView::Queue(queue_view(
                site,
                &view,
                header,
                with_contacts,
                staffing.as_ref(),
            ))
        }
        Target::Advisor(advisor) => {
            let view = site.advisor_view(advisor, window)?;
            WireView::Advisor(pb::AdvisorView {
                header: Some(header),
                advisor: Some(convert::advisor(&view)),
            })
        }
    })
}

/// Checks access, then reads the view (see [`view`]).
pub fn read(
    state: &EngineState,
    remote: &RemoteViews,
    principal: &Principal,
    site: &str,
    target: &Target,
    window: Window,
) -> Result<WireView, Status> {
    check_access(state, remote, principal, site, target)?;
    view(
        state,
        remote,
        site,
        target,
        window,
        principal.may_see_contact_ids(),
    )
    .ok_or_else(|| Status::not_found("the target is gone"))
}
