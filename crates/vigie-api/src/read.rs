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

/// The site, if the caller's scope touches it; out of scope otherwise (existing or not).
pub fn site<'a>(
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

/// Checks that the caller may read `target` at `site` and that it exists.
pub fn check_access(
    state: &EngineState,
    principal: &Principal,
    site_id: &str,
    target: &Target,
) -> Result<(), Status> {
    let site = site(state, principal, site_id)?;
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
            if !site.team_ids().contains(&team.as_str()) {
                return Err(not_found("team", team));
            }
        }
        Target::Queue(queue) => {
            if !principal.may_read_queue(site_id, queue, &site.teams_serving(queue)) {
                return Err(permission_denied());
            }
            if !site.queue_ids().contains(&queue.as_str()) {
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

/// Builds a view whose access was checked; `None` when the target no longer exists.
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

/// Checks access, then builds the view.
pub fn read(
    state: &EngineState,
    principal: &Principal,
    site: &str,
    target: &Target,
    window: Window,
) -> Result<WireView, Status> {
    check_access(state, principal, site, target)?;
    build(state, site, target, window, principal.may_see_contact_ids())
        .ok_or_else(|| Status::not_found("the target is gone"))
}
