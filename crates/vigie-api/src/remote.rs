//! Views of the sites another instance processes.
//!
//! With several instances, each site is processed by one of them; the others answer its
//! `Get*`, `List*` and `Watch*` calls from the views that instance publishes on NATS (the
//! binary carries them: [`published_windows`] on the owner's side, [`RemoteViews::receive`] on
//! the others'), and the site's alerts likewise ([`crate::alerts::published_alerts`],
//! [`RemoteViews::receive_alerts`]). A published window holds the site view, every team view and every queue view
//! of one window, computed together, so that what an instance serves from it is one state of
//! the site, exactly as its owner would have served it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prost::Message;
use tokio::sync::broadcast;
use tokio::time::Instant;
use vigie_core::Window;
use vigie_engine::{EngineState, Update};
use vigie_proto::v1 as pb;

use crate::read::{self, Target, WireView};

/// The views of one window of a site, as its owner computed them.
#[derive(Debug)]
struct Published {
    window: pb::PublishedWindow,
    received: Instant,
}

/// The latest published views of every site processed elsewhere.
#[derive(Debug)]
pub struct RemoteViews {
    sites: RwLock<HashMap<(String, Window), Arc<Published>>>,
    updates: broadcast::Sender<Update>,
    alerts: RwLock<HashMap<String, pb::ListAlertsResponse>>,
    alert_updates: broadcast::Sender<Arc<str>>,
    stale_after: Duration,
}

/// A published window as an instance serves it: the owner's views, and whether they are
/// recent enough to be called complete.
#[derive(Clone, Debug)]
pub struct RemoteWindow {
    published: Arc<Published>,
    stale: bool,
}

/// Why a published window was refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Not a published window.
    #[error("not a published window: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Published for another site than its subject says.
    #[error("a view of site {found:?} published for site {expected:?}")]
    WrongSite {
        /// The subject's site.
        expected: String,
        /// The view's.
        found: String,
    },
}

impl RemoteViews {
    /// An empty store; views older than `stale_after` are served as incomplete (their owner
    /// publishes at least once a second while it processes the site).
    pub fn new(stale_after: Duration) -> Arc<RemoteViews> {
        let (updates, _) = broadcast::channel(1024);
        let (alert_updates, _) = broadcast::channel(1024);
        Arc::new(RemoteViews {
            sites: RwLock::new(HashMap::new()),
            updates,
            alerts: RwLock::new(HashMap::new()),
            alert_updates,
            stale_after,
        })
    }

    /// Keeps the alerts of a site published by the instance that processes it (every alert of
    /// the day), and tells the watchers of the site's alerts when they changed.
    pub fn receive_alerts(&self, site: &str, payload: &[u8]) -> Result<(), RemoteError> {
        let published = pb::ListAlertsResponse::decode(payload)?;
        if let Some(other) = published.alerts.iter().find(|alert| alert.site != site) {
            return Err(RemoteError::WrongSite {
                expected: site.to_owned(),
                found: other.site.clone(),
            });
        }
        let mut alerts = self
            .alerts
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let changed = alerts
            .get(site)
            .is_none_or(|known| known.alerts != published.alerts);
        alerts.insert(site.to_owned(), published);
        drop(alerts);
        if changed {
            // Nobody watching is fine.
            let _ = self.alert_updates.send(site.into());
        }
        Ok(())
    }

    /// The alerts of a site as the instance processing it last published them.
    pub fn alerts(&self, site: &str) -> Option<pb::ListAlertsResponse> {
        let alerts = self
            .alerts
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        alerts.get(site).cloned()
    }

    /// Subscribes to changes of the published alerts: the site whose alerts changed.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<Arc<str>> {
        self.alert_updates.subscribe()
    }

    /// Keeps a window of a site published by the instance that processes it, and tells the
    /// watchers of the site.
    pub fn receive(&self, site: &str, window: Window, payload: &[u8]) -> Result<(), RemoteError> {
        let published = pb::PublishedWindow::decode(payload)?;
        let header = published
            .site
            .as_ref()
            .and_then(|view| view.header.clone())
            .unwrap_or_default();
        if header.site != site {
            return Err(RemoteError::WrongSite {
                expected: site.to_owned(),
                found: header.site,
            });
        }
        let entry = Arc::new(Published {
            window: published,
            received: Instant::now(),
        });
        self.sites
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert((site.to_owned(), window), entry);
        // Nobody watching is fine.
        let _ = self.updates.send(Update {
            site: site.into(),
            seq: header.seq,
            as_of: header.as_of.map_or(vigie_core::Timestamp::MIN, |as_of| {
                // Saturating: what another process published must not overflow here.
                let millis = i64::from(as_of.nanos) / 1_000_000;
                vigie_core::Timestamp(as_of.seconds.saturating_mul(1000).saturating_add(millis))
            }),
        });
        Ok(())
    }

    /// Forgets a site's published views (this instance processes it now).
    pub fn forget(&self, site: &str) {
        self.sites
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|(id, _), _| id != site);
    }

    /// The latest published window of a site.
    pub fn window(&self, site: &str, window: Window) -> Option<RemoteWindow> {
        let sites = self
            .sites
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let published = sites.get(&(site.to_owned(), window))?.clone();
        let stale = published.received.elapsed() > self.stale_after;
        Some(RemoteWindow { published, stale })
    }

    /// Subscribes to the arrival of published views (as [`vigie_engine::EngineHandle::subscribe`]
    /// does to the engine's changes).
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }
}

impl RemoteWindow {
    fn site_view(&self) -> Option<&pb::SiteView> {
        self.published.window.site.as_ref()
    }

    /// Whether the site has this team.
    pub fn has_team(&self, team: &str) -> bool {
        self.team(team).is_some()
    }

    fn team(&self, team: &str) -> Option<&pb::TeamView> {
        self.published
            .window
            .teams
            .iter()
            .find(|view| view.team.as_ref().is_some_and(|t| t.team == team))
    }

    /// The site's teams, in the owner's order.
    pub fn teams(&self) -> impl Iterator<Item = &pb::TeamView> {
        self.published.window.teams.iter()
    }

    /// The site's queues, in the owner's order.
    pub fn queues(&self) -> impl Iterator<Item = &pb::QueueView> {
        self.site_view()
            .into_iter()
            .flat_map(|view| view.queues.iter())
    }

    /// The site's advisors, in the owner's order.
    pub fn advisors(&self) -> impl Iterator<Item = &pb::Advisor> {
        self.site_view()
            .into_iter()
            .flat_map(|view| view.advisors.iter())
    }

    /// The teams whose campaign includes `queue`.
    pub fn teams_serving(&self, queue: &str) -> Vec<&str> {
        self.teams()
            .filter_map(|view| view.team.as_ref())
            .filter(|team| team.queues.iter().any(|q| q == queue))
            .map(|team| team.team.as_str())
            .collect()
    }

    /// The team of an advisor.
    pub fn advisor_team(&self, advisor: &str) -> Option<&str> {
        self.advisors()
            .find(|a| a.advisor == advisor)
            .map(|a| a.team.as_str())
    }

    /// Whether the figures are complete: as their owner says, and recent.
    pub fn complete(&self) -> bool {
        !self.stale
            && self
                .site_view()
                .and_then(|view| view.header.as_ref())
                .is_some_and(|header| header.complete)
    }

    /// A view of the published window, with its header told how recent it is, and without
    /// contact ids unless `with_contacts`; `None` when the target is not in it.
    pub fn view(&self, target: &Target, with_contacts: bool, owner: &str) -> Option<WireView> {
        let window = &self.published.window;
        let mut view = match target {
            Target::Site => WireView::Site(window.site.clone()?),
            Target::Team(team) => WireView::Team(self.team(team)?.clone()),
            Target::Queue(queue) => WireView::Queue(
                window
                    .queues
                    .iter()
                    .find(|view| &view.queue == queue)?
                    .clone(),
            ),
            Target::Advisor(advisor) => WireView::Advisor(pb::AdvisorView {
                header: self.site_view()?.header.clone(),
                advisor: Some(self.advisors().find(|a| &a.advisor == advisor)?.clone()),
            }),
        };
        let stale = self.stale;
        let mark = |header: &mut Option<pb::ViewHeader>| {
            if let Some(header) = header
                && header.complete
            {
                if owner.is_empty() {
                    header.complete = false;
                    header.incomplete_reason = format!(
                        "no instance processes this site at the moment (instance {} stopped): figures as it last published them",
                        header.instance
                    );
                } else if stale {
                    header.complete = false;
                    header.incomplete_reason = format!(
                        "the views of instance {} are late: figures as it last published them",
                        header.instance
                    );
                }
            }
        };
        match &mut view {
            WireView::Site(site) => {
                mark(&mut site.header);
                for queue in &mut site.queues {
                    mark(&mut queue.header);
                    if !with_contacts {
                        queue.longest_waiting = None;
                    }
                }
            }
            WireView::Team(team) => mark(&mut team.header),
            WireView::Queue(queue) => {
                mark(&mut queue.header);
                if !with_contacts {
                    queue.longest_waiting = None;
                }
            }
            WireView::Advisor(advisor) => mark(&mut advisor.header),
        }
        Some(view)
    }
}

/// Every window of a site processed here, each encoded as the [`pb::PublishedWindow`] the
/// other instances serve it from (contact ids included: they strip them for callers who may
/// not see them). Empty when the site is not processed here.
pub fn published_windows(state: &EngineState, site_id: &str) -> Vec<(Window, bytes::Bytes)> {
    let Some(site) = state.processor.site(site_id) else {
        return Vec::new();
    };
    if !state.feed(site_id).processed_here() {
        return Vec::new();
    }
    let teams: Vec<String> = site.team_ids().into_iter().map(str::to_owned).collect();
    let queues: Vec<String> = site.queue_ids().into_iter().map(str::to_owned).collect();
    Window::ALL
        .iter()
        .map(|&window| {
            let mut published = pb::PublishedWindow::default();
            if let Some(WireView::Site(view)) =
                read::build(state, site_id, &Target::Site, window, true)
            {
                published.site = Some(view);
            }
            for team in &teams {
                if let Some(WireView::Team(view)) =
                    read::build(state, site_id, &Target::Team(team.clone()), window, true)
                {
                    published.teams.push(view);
                }
            }
            for queue in &queues {
                if let Some(WireView::Queue(view)) =
                    read::build(state, site_id, &Target::Queue(queue.clone()), window, true)
                {
                    published.queues.push(view);
                }
            }
            (window, bytes::Bytes::from(published.encode_to_vec()))
        })
        .collect()
}
