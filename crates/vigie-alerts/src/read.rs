//! Reading metric values from a site's figures: each figure an evaluation needs is computed
//! once, shared by every rule that reads it, and only figures some rule reads are computed.
//!
//! A rule reads single figures (a queue's counts over a window, a team's advisors by state, an
//! advisor's time in state), never whole views: building a view computes every indicator of
//! its target (and a team's view rescans the site's advisors), which at thousands of rules and
//! ten evaluations a second cost most of a core. The values are those the views show: the
//! figures come from the core's accessors, which compute them as the views do, and a team's
//! or the site's figures are sums over their queues and advisors, as in their views.

use std::collections::{BTreeSet, HashMap};

use vigie_core::views::{
    AdvisorCounts, AdvisorLive, AdvisorsByState, FiguresNow, HandleIndicators, LiveQueue,
    QueueCounts, QueueFigures, QueueParts, WorkTimes,
};
use vigie_core::{SiteProcessor, SlVariant, Window};
use vigie_staffing::live::{Inputs, PooledTargets, QueueTargets, Staffing, choose_aht, staffed};

use crate::rule::{Metric, RuleConfig, TargetKind};

/// What an evaluation reads from a site: its targets, by position in lists that stay the same
/// during the evaluation, and the value of a rule's metric for one of them (none: no data).
pub(crate) trait Read {
    /// Known queues (configured or seen in events), sorted.
    fn queue_count(&mut self) -> usize;
    fn queue_id(&mut self, at: usize) -> &str;
    fn queue_position(&mut self, queue: &str) -> Option<usize>;
    fn queue_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64>;
    /// Teams the site lists (configured, or with members), sorted.
    fn team_count(&mut self) -> usize;
    fn team_id(&mut self, at: usize) -> &str;
    fn team_position(&mut self, team: &str) -> Option<usize>;
    fn team_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64>;
    /// Known advisors, in no particular order.
    fn advisor_count(&mut self) -> usize;
    fn advisor_id(&mut self, at: usize) -> &str;
    fn advisor_position(&mut self, advisor: &str) -> Option<usize>;
    /// The live state is checked first: state metrics read nothing more for advisors out of
    /// the watched state.
    fn advisor_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64>;
    /// The positions of the advisors of the team at `team`.
    fn members_of(&mut self, team: usize) -> &[usize];
    fn site_value(&mut self, rule: &RuleConfig) -> Option<f64>;
}

pub(crate) fn index(window: Window) -> usize {
    match window {
        Window::Today => 0,
        Window::Last15m => 1,
        Window::Last30m => 2,
        Window::Last60m => 3,
    }
}

/// A figure per window: not read yet, or read.
type PerWindow<T> = [Option<T>; 4];

/// The windows the rules read each kind of figure over. Reading a target's figure over one of
/// them reads it over the others at the same time: the target's data is then at hand, where
/// reading window after window over thousands of advisors would fetch it from memory again
/// for each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    queue_flow: [bool; 4],
    queue_handling: [bool; 4],
    advisor_counts: [bool; 4],
    advisor_times: [bool; 4],
}

impl Wanted {
    pub fn of<'a>(rules: impl Iterator<Item = &'a RuleConfig>) -> Wanted {
        let mut wanted = Wanted::default();
        for rule in rules {
            let kind = rule.scope.target_kind();
            if rule.metric == Metric::StaffingGap {
                // The estimate's windows; today's only when the last 30 minutes are too quiet.
                for window in [Window::Last15m, Window::Last30m] {
                    wanted.queue_flow[index(window)] = true;
                }
                let handling = match kind {
                    TargetKind::Team => &mut wanted.advisor_counts,
                    _ => &mut wanted.queue_handling,
                };
                handling[index(Window::Last30m)] = true;
            }
            let Some(window) = rule.window else {
                continue;
            };
            let at = index(window);
            match (kind, rule.metric) {
                (TargetKind::Queue, Metric::Aht | Metric::AhtOverTarget) => {
                    wanted.queue_handling[at] = true;
                }
                (TargetKind::Queue, _) => wanted.queue_flow[at] = true,
                (_, Metric::Occupancy) => wanted.advisor_times[at] = true,
                (_, Metric::Aht | Metric::MissedOffers) => wanted.advisor_counts[at] = true,
                (TargetKind::Site | TargetKind::Team, _) => wanted.queue_flow[at] = true,
                (TargetKind::Advisor, _) => {}
            }
        }
        wanted
    }
}

/// `window` and the other windows `wanted`.
fn windows_with(wanted: [bool; 4], window: Window) -> impl Iterator<Item = Window> {
    Window::ALL
        .into_iter()
        .filter(move |w| *w == window || wanted[index(*w)])
}

/// Reads the flow of queues.
const FLOW: QueueParts = QueueParts {
    flow: true,
    handling: false,
};

/// Reads the handling of queues.
const HANDLING: QueueParts = QueueParts {
    flow: false,
    handling: true,
};

#[derive(Debug, Default)]
struct QueueSlot {
    /// Per window, the parts of the counts read, and the figures (whose parts not read are 0).
    figures: [(QueueParts, Option<QueueFigures>); 4],
    live: Option<Option<LiveQueue>>,
    /// The advisors of the teams serving the queue.
    advisors: Option<AdvisorsByState>,
    staffing: Option<Option<Staffing>>,
}

/// A team's or the site's figures: flow through its queues, handling by its advisors.
#[derive(Debug, Default)]
struct GroupSlot {
    /// Positions of its queues (a team's campaign, as configured).
    queues: Option<Vec<usize>>,
    flow: PerWindow<QueueCounts>,
    counts: PerWindow<AdvisorCounts>,
    times: PerWindow<WorkTimes>,
    live: Option<LiveQueue>,
    advisors: Option<AdvisorsByState>,
    staffing: Option<Option<Staffing>>,
}

/// Figures of every advisor over one window, by position: not read yet, or read.
type PerAdvisor<T> = Vec<Option<Option<T>>>;

/// What evaluations keep from one to the next: room for the figures of every queue, team and
/// advisor (for thousands of targets, hundreds of kilobytes, which the system would otherwise
/// map and clear at every evaluation), and the last staffing estimates.
#[derive(Debug, Default)]
pub(crate) struct Room {
    queues: Vec<QueueSlot>,
    teams: Vec<GroupSlot>,
    advisor_counts: [PerAdvisor<AdvisorCounts>; 4],
    advisor_times: [PerAdvisor<WorkTimes>; 4],
    /// Positions in the list of advisors, team after team (see [`Figures::members_of`]).
    members: Vec<usize>,
    /// Where each team's advisors start in `members`, and where the last one's end.
    member_starts: Vec<usize>,
    /// The last estimate of each queue's and team's staffing, by id, with what it was
    /// computed from: the estimate (Erlang C) is the same for the same inputs, which change
    /// much less often than evaluations come.
    queue_estimates: HashMap<String, (Inputs, Staffing)>,
    team_estimates: HashMap<String, (Inputs, Staffing)>,
}

/// The staffing estimated from `inputs`: the last one kept in `estimates` for `id` when it was
/// computed from the same inputs.
fn estimate(
    estimates: &mut HashMap<String, (Inputs, Staffing)>,
    id: &str,
    inputs: Inputs,
) -> Staffing {
    match estimates.get(id) {
        Some((known, staffing)) if *known == inputs => staffing.clone(),
        _ => {
            let staffing = Staffing::new(inputs.clone());
            estimates.insert(id.to_owned(), (inputs, staffing.clone()));
            staffing
        }
    }
}

/// A team's campaign: the queues it serves and the service-level variant it reports.
#[derive(Clone, Copy)]
struct Campaign<'s> {
    queues: &'s [String],
    variant: SlVariant,
}

/// The figures one evaluation read from the site, by position in the sorted lists of queues
/// and teams, and in the processor's list of advisors.
pub(crate) struct Figures<'s, 'r> {
    site: &'s SiteProcessor,
    wanted: Wanted,
    now: Option<FiguresNow<'s>>,
    queue_ids: Option<Vec<&'s str>>,
    team_ids: Option<Vec<&'s str>>,
    lives: Option<Vec<AdvisorLive<'s>>>,
    /// Positions in `lives`, by advisor id, built when a named advisor is not where expected.
    advisor_positions: Option<HashMap<&'s str, usize>>,
    /// Whether `room.members` lists this evaluation's teams.
    members: bool,
    /// The configured teams' campaigns (other teams serve no queue).
    campaigns: Option<HashMap<&'s str, Campaign<'s>>>,
    /// The teams serving each queue.
    serving: Option<HashMap<&'s str, Vec<&'s str>>>,
    room: &'r mut Room,
    /// Per window, whether the room's figures of advisors were emptied for this evaluation.
    advisor_counts_ready: [bool; 4],
    advisor_times_ready: [bool; 4],
    whole: GroupSlot,
}

impl<'s, 'r> Figures<'s, 'r> {
    pub fn new(site: &'s SiteProcessor, wanted: Wanted, room: &'r mut Room) -> Figures<'s, 'r> {
        Figures {
            site,
            wanted,
            now: None,
            queue_ids: None,
            team_ids: None,
            lives: None,
            advisor_positions: None,
            members: false,
            campaigns: None,
            serving: None,
            room,
            advisor_counts_ready: [false; 4],
            advisor_times_ready: [false; 4],
            whole: GroupSlot::default(),
        }
    }

    fn now(&mut self) -> FiguresNow<'s> {
        let site = self.site;
        *self.now.get_or_insert_with(|| site.figures_now())
    }

    fn queue_ids(&mut self) -> &[&'s str] {
        if self.queue_ids.is_none() {
            let ids = self.site.queue_ids();
            self.room.queues.clear();
            self.room.queues.resize_with(ids.len(), QueueSlot::default);
            self.queue_ids = Some(ids);
        }
        self.queue_ids.as_deref().unwrap_or_default()
    }

    fn team_ids(&mut self) -> &[&'s str] {
        if self.team_ids.is_none() {
            let ids = self.site.team_ids();
            self.room.teams.clear();
            self.room.teams.resize_with(ids.len(), GroupSlot::default);
            self.team_ids = Some(ids);
        }
        self.team_ids.as_deref().unwrap_or_default()
    }

    fn lives(&mut self) -> &[AdvisorLive<'s>] {
        if self.lives.is_none() {
            self.lives = Some(self.site.advisor_lives());
        }
        self.lives.as_deref().unwrap_or_default()
    }

    fn campaign(&mut self, team: &str) -> Campaign<'s> {
        let site = self.site;
        let campaigns = self.campaigns.get_or_insert_with(|| {
            site.site()
                .teams
                .iter()
                .map(|team| {
                    let variant = team.sl_variant.unwrap_or(site.site().sl_variant);
                    let campaign = Campaign {
                        queues: &team.queues,
                        variant,
                    };
                    (team.id.as_str(), campaign)
                })
                .collect()
        });
        campaigns.get(team).copied().unwrap_or(Campaign {
            queues: &[],
            variant: site.site().sl_variant,
        })
    }

    /// The teams whose campaign includes `queue`, each once.
    fn serving(&mut self, queue: &str) -> &[&'s str] {
        let site = self.site;
        let serving = self.serving.get_or_insert_with(|| {
            let mut serving: HashMap<&'s str, Vec<&'s str>> = HashMap::new();
            for team in &site.site().teams {
                let queues: BTreeSet<&str> = team.queues.iter().map(String::as_str).collect();
                for queue in queues {
                    serving.entry(queue).or_default().push(&team.id);
                }
            }
            serving
        });
        serving.get(queue).map_or(&[], Vec::as_slice)
    }

    fn queue_figures(
        &mut self,
        at: usize,
        window: Window,
        parts: QueueParts,
    ) -> Option<QueueFigures> {
        let id = *self.queue_ids().get(at)?;
        let (read, figures) = self.room.queues[at].figures[index(window)];
        if (read.flow || !parts.flow) && (read.handling || !parts.handling) {
            return figures;
        }
        // What is missing of what the rules read of queues over each window, and of `parts`
        // over `window`, read at once.
        let wanted = self.wanted;
        let missing: [QueueParts; 4] = std::array::from_fn(|other| {
            let (read, _) = self.room.queues[at].figures[other];
            let asked = if other == index(window) {
                parts
            } else {
                QueueParts::default()
            };
            QueueParts {
                flow: !read.flow && (wanted.queue_flow[other] || asked.flow),
                handling: !read.handling && (wanted.queue_handling[other] || asked.handling),
            }
        });
        let more = self.now().queue(id, missing).unwrap_or_default();
        for (other, more) in more.into_iter().enumerate() {
            let Some(more) = more else {
                continue;
            };
            let (read, figures) = &mut self.room.queues[at].figures[other];
            match figures {
                Some(figures) => figures.counts.add(&more.counts),
                None => *figures = Some(more),
            }
            read.flow |= missing[other].flow;
            read.handling |= missing[other].handling;
        }
        self.room.queues[at].figures[index(window)].1
    }

    fn queue_live(&mut self, at: usize) -> Option<LiveQueue> {
        let site = self.site;
        let id = *self.queue_ids().get(at)?;
        let slot = &mut self.room.queues[at].live;
        slot.get_or_insert_with(|| site.queue_live(id)).clone()
    }

    fn queue_advisors(&mut self, at: usize) -> Option<AdvisorsByState> {
        let id = *self.queue_ids().get(at)?;
        if let Some(advisors) = self.room.queues[at].advisors {
            return Some(advisors);
        }
        let mut advisors = AdvisorsByState::default();
        let teams = self.serving(id).to_vec();
        for team in teams {
            if let Some(team) = self.team_position(team)
                && let Some(own) = self.team_advisors(team)
            {
                add_states(&mut advisors, &own);
            }
        }
        self.room.queues[at].advisors = Some(advisors);
        Some(advisors)
    }

    /// A queue's live staffing, as `vigie_staffing::live::queue_inputs` estimates it from the
    /// queue's views over the trailing 15 and 30 minutes (and today's when the AHT needs it).
    fn queue_staffing(&mut self, at: usize) -> Option<&Staffing> {
        if self.room.queues.get(at)?.staffing.is_none() {
            let staffing = self.estimate_queue_staffing(at);
            self.room.queues[at].staffing = Some(staffing);
        }
        self.room.queues[at].staffing.as_ref()?.as_ref()
    }

    fn estimate_queue_staffing(&mut self, at: usize) -> Option<Staffing> {
        let both = QueueParts {
            flow: true,
            handling: true,
        };
        let last_15m = self.queue_figures(at, Window::Last15m, FLOW)?;
        let last_30m = self.queue_figures(at, Window::Last30m, both)?;
        let advisors = self.queue_advisors(at)?;
        let today = || {
            let today = self.queue_figures(at, Window::Today, HANDLING)?;
            Some(today.counts.handling())
        };
        let inputs = Inputs {
            offered_15m: last_15m.counts.offered,
            offered_30m: last_30m.counts.offered,
            aht: choose_aht(&last_30m.counts.handling(), today, last_30m.aht_target),
            sl_target: last_30m.sl_target,
            sl_threshold: last_30m.sl_threshold,
            staffed: staffed(&advisors),
            queues: 1,
        };
        let id = *self.queue_ids().get(at)?;
        Some(estimate(&mut self.room.queue_estimates, id, inputs))
    }

    /// Runs `read` over the positions of the advisors of the team at `team`.
    fn with_members<T>(&mut self, team: usize, read: impl FnOnce(&mut Self, &[usize]) -> T) -> T {
        self.members_of(team);
        let members = std::mem::take(&mut self.room.members);
        let range = self.member_range(team);
        let result = read(self, &members[range]);
        self.room.members = members;
        result
    }

    /// Where the advisors of the team at `team` are in `room.members`.
    fn member_range(&self, team: usize) -> std::ops::Range<usize> {
        let starts = &self.room.member_starts;
        match (starts.get(team), starts.get(team + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        }
    }

    /// The advisors of the team at `team`, by live state.
    fn team_states(&mut self, team: usize) -> AdvisorsByState {
        self.with_members(team, |figures, members| {
            let mut advisors = AdvisorsByState::default();
            let lives = figures.lives();
            for &at in members {
                count_state(&mut advisors, lives[at].state);
            }
            advisors
        })
    }

    /// Runs `read` over the positions of the queues of the team at `at` (its campaign's, as
    /// configured).
    fn with_team_queues<T>(
        &mut self,
        at: usize,
        read: impl FnOnce(&mut Self, &[usize]) -> T,
    ) -> Option<T> {
        let team = *self.team_ids().get(at)?;
        let queues = match self.room.teams[at].queues.take() {
            Some(queues) => queues,
            None => {
                let campaign = self.campaign(team);
                let ids = self.queue_ids();
                campaign
                    .queues
                    .iter()
                    .filter_map(|queue| ids.binary_search(&queue.as_str()).ok())
                    .collect()
            }
        };
        let result = read(self, &queues);
        self.room.teams[at].queues = Some(queues);
        Some(result)
    }

    fn team_flow(&mut self, at: usize, window: Window) -> Option<(QueueCounts, SlVariant)> {
        let team = *self.team_ids().get(at)?;
        let variant = self.campaign(team).variant;
        if let Some(flow) = self.room.teams[at].flow[index(window)] {
            return Some((flow, variant));
        }
        let flow = self.with_team_queues(at, |figures, queues| {
            let mut flow = QueueCounts::default();
            for &queue in queues {
                if let Some(own) = figures.queue_figures(queue, window, FLOW) {
                    flow.add(&own.counts);
                }
            }
            flow
        })?;
        self.room.teams[at].flow[index(window)] = Some(flow);
        Some((flow, variant))
    }

    fn team_counts(&mut self, at: usize, window: Window) -> Option<AdvisorCounts> {
        self.team_ids().get(at)?;
        if let Some(counts) = self.room.teams[at].counts[index(window)] {
            return Some(counts);
        }
        let counts = self.with_members(at, |figures, members| {
            let mut counts = AdvisorCounts::default();
            for &advisor in members {
                if let Some(own) = figures.advisor_counts(advisor, window) {
                    counts.add(&own);
                }
            }
            counts
        });
        self.room.teams[at].counts[index(window)] = Some(counts);
        Some(counts)
    }

    fn team_times(&mut self, at: usize, window: Window) -> Option<WorkTimes> {
        self.team_ids().get(at)?;
        if let Some(times) = self.room.teams[at].times[index(window)] {
            return Some(times);
        }
        let times = self.with_members(at, |figures, members| {
            let mut times = WorkTimes::default();
            for &advisor in members {
                if let Some(own) = figures.advisor_times(advisor, window) {
                    times.add(&own);
                }
            }
            times
        });
        self.room.teams[at].times[index(window)] = Some(times);
        Some(times)
    }

    /// What waits now in a team's queues: the sum of the waiting contacts, the oldest wait.
    fn team_live(&mut self, at: usize) -> Option<LiveQueue> {
        if let Some(live) = &self.room.teams.get(at)?.live {
            return Some(live.clone());
        }
        let live = self.with_team_queues(at, |figures, queues| figures.live_of(queues))?;
        self.room.teams[at].live = Some(live.clone());
        Some(live)
    }

    fn team_advisors(&mut self, at: usize) -> Option<AdvisorsByState> {
        self.team_ids().get(at)?;
        if let Some(advisors) = self.room.teams[at].advisors {
            return Some(advisors);
        }
        let advisors = self.team_states(at);
        self.room.teams[at].advisors = Some(advisors);
        Some(advisors)
    }

    /// A team's live staffing, as `vigie_staffing::live::team_inputs` estimates it from the
    /// team's views: its campaign's pooled traffic and targets, its members' AHT.
    fn team_staffing(&mut self, at: usize) -> Option<&Staffing> {
        if self.room.teams.get(at)?.staffing.is_none() {
            let staffing = self.estimate_team_staffing(at);
            self.room.teams[at].staffing = Some(staffing);
        }
        self.room.teams[at].staffing.as_ref()?.as_ref()
    }

    fn estimate_team_staffing(&mut self, at: usize) -> Option<Staffing> {
        let team = *self.team_ids().get(at)?;
        let (last_15m, _) = self.team_flow(at, Window::Last15m)?;
        let (last_30m, _) = self.team_flow(at, Window::Last30m)?;
        let handled_30m = self.team_counts(at, Window::Last30m)?.handling();
        let advisors = self.team_advisors(at)?;
        // In the order of the team view's queues (sorted), which the pooled AHT target sums in.
        let mut queues: Vec<&str> = self
            .campaign(team)
            .queues
            .iter()
            .map(String::as_str)
            .collect();
        queues.sort_unstable();
        let targets: Vec<QueueTargets> = queues
            .iter()
            .map(|queue| QueueTargets::of(self.site, queue))
            .collect();
        let pooled = PooledTargets::of(&targets);
        let today = || Some(self.team_counts(at, Window::Today)?.handling());
        let inputs = Inputs {
            offered_15m: last_15m.offered,
            offered_30m: last_30m.offered,
            aht: choose_aht(&handled_30m, today, pooled.aht_target),
            sl_target: pooled.sl_target,
            sl_threshold: pooled.sl_threshold,
            staffed: staffed(&advisors),
            queues: targets.len(),
        };
        Some(estimate(&mut self.room.team_estimates, team, inputs))
    }

    fn advisor_counts(&mut self, at: usize, window: Window) -> Option<AdvisorCounts> {
        let advisors = self.lives().len();
        if at >= advisors {
            return None;
        }
        let figures = &mut self.room.advisor_counts;
        if self.advisor_counts_ready[index(window)]
            && let Some(counts) = figures[index(window)][at]
        {
            return counts;
        }
        for window in windows_with(self.wanted.advisor_counts, window) {
            let read = &mut self.room.advisor_counts[index(window)];
            if !self.advisor_counts_ready[index(window)] {
                self.advisor_counts_ready[index(window)] = true;
                read.clear();
                read.resize(advisors, None);
            }
            if read[at].is_none() {
                let counts = self.now().advisor_counts(at, window);
                self.room.advisor_counts[index(window)][at] = Some(counts);
            }
        }
        self.room.advisor_counts[index(window)][at].flatten()
    }

    fn advisor_times(&mut self, at: usize, window: Window) -> Option<WorkTimes> {
        let advisors = self.lives().len();
        if at >= advisors {
            return None;
        }
        let figures = &mut self.room.advisor_times;
        if self.advisor_times_ready[index(window)]
            && let Some(times) = figures[index(window)][at]
        {
            return times;
        }
        for window in windows_with(self.wanted.advisor_times, window) {
            let read = &mut self.room.advisor_times[index(window)];
            if !self.advisor_times_ready[index(window)] {
                self.advisor_times_ready[index(window)] = true;
                read.clear();
                read.resize(advisors, None);
            }
            if read[at].is_none() {
                let times = self.now().advisor_work_times(at, window);
                self.room.advisor_times[index(window)][at] = Some(times);
            }
        }
        self.room.advisor_times[index(window)][at].flatten()
    }

    /// What waits now in these queues (by position).
    fn live_of(&mut self, queues: &[usize]) -> LiveQueue {
        let mut live = LiveQueue {
            in_queue: 0,
            longest_wait: None,
        };
        for &at in queues {
            if let Some(own) = self.queue_live(at) {
                live.in_queue += own.in_queue;
                live.longest_wait = match (live.longest_wait, own.longest_wait) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        live
    }

    fn site_flow(&mut self, window: Window) -> QueueCounts {
        if let Some(flow) = self.whole.flow[index(window)] {
            return flow;
        }
        let mut flow = QueueCounts::default();
        for at in 0..self.queue_count() {
            if let Some(figures) = self.queue_figures(at, window, FLOW) {
                flow.add(&figures.counts);
            }
        }
        self.whole.flow[index(window)] = Some(flow);
        flow
    }

    fn site_counts(&mut self, window: Window) -> AdvisorCounts {
        if let Some(counts) = self.whole.counts[index(window)] {
            return counts;
        }
        let mut counts = AdvisorCounts::default();
        for at in 0..self.advisor_count() {
            if let Some(own) = self.advisor_counts(at, window) {
                counts.add(&own);
            }
        }
        self.whole.counts[index(window)] = Some(counts);
        counts
    }

    fn site_times(&mut self, window: Window) -> WorkTimes {
        if let Some(times) = self.whole.times[index(window)] {
            return times;
        }
        let mut times = WorkTimes::default();
        for at in 0..self.advisor_count() {
            if let Some(own) = self.advisor_times(at, window) {
                times.add(&own);
            }
        }
        self.whole.times[index(window)] = Some(times);
        times
    }
}

impl<'s> Read for Figures<'s, '_> {
    fn queue_count(&mut self) -> usize {
        self.queue_ids().len()
    }

    fn queue_id(&mut self, at: usize) -> &str {
        self.queue_ids()[at]
    }

    fn queue_position(&mut self, queue: &str) -> Option<usize> {
        self.queue_ids().binary_search(&queue).ok()
    }
    fn queue_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64> {
        match rule.metric {
            Metric::StaffingGap => gap(self.queue_staffing(at)),
            Metric::LongestWait => Some(self.queue_live(at)?.longest_wait.unwrap_or(0.0)),
            Metric::InQueue => Some(self.queue_live(at)?.in_queue as f64),
            Metric::AvailableAdvisors => Some(f64::from(self.queue_advisors(at)?.available)),
            metric => {
                let parts = match metric {
                    Metric::Aht | Metric::AhtOverTarget => HANDLING,
                    _ => FLOW,
                };
                let figures = self.queue_figures(at, rule.window?, parts)?;
                let counts = &figures.counts;
                match metric {
                    Metric::ServiceLevelGap => flow_value(
                        Metric::ServiceLevel,
                        counts,
                        figures.variant,
                        rule.min_volume,
                    )
                    .map(|sl| sl - figures.sl_target),
                    Metric::Aht => aht(&counts.handling(), rule.min_volume),
                    Metric::AhtOverTarget => {
                        let target = figures.aht_target.filter(|t| *t > 0.0)?;
                        aht(&counts.handling(), rule.min_volume).map(|aht| aht / target)
                    }
                    metric => flow_value(metric, counts, figures.variant, rule.min_volume),
                }
            }
        }
    }

    fn team_count(&mut self) -> usize {
        self.team_ids().len()
    }

    fn team_id(&mut self, at: usize) -> &str {
        self.team_ids()[at]
    }

    fn team_position(&mut self, team: &str) -> Option<usize> {
        self.team_ids().binary_search(&team).ok()
    }

    fn team_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64> {
        match rule.metric {
            Metric::StaffingGap => gap(self.team_staffing(at)),
            Metric::LongestWait => Some(self.team_live(at)?.longest_wait.unwrap_or(0.0)),
            Metric::InQueue => Some(self.team_live(at)?.in_queue as f64),
            Metric::AvailableAdvisors => Some(f64::from(self.team_advisors(at)?.available)),
            Metric::Aht => aht(
                &self.team_counts(at, rule.window?)?.handling(),
                rule.min_volume,
            ),
            Metric::Occupancy => self.team_times(at, rule.window?)?.occupancy(),
            Metric::MissedOffers => Some(self.team_counts(at, rule.window?)?.missed_offers as f64),
            metric => {
                let (flow, variant) = self.team_flow(at, rule.window?)?;
                flow_value(metric, &flow, variant, rule.min_volume)
            }
        }
    }

    fn advisor_count(&mut self) -> usize {
        self.lives().len()
    }

    fn advisor_id(&mut self, at: usize) -> &str {
        self.lives()[at].advisor
    }

    fn advisor_position(&mut self, advisor: &str) -> Option<usize> {
        if self.advisor_positions.is_none() {
            let positions = self.lives().iter().enumerate();
            let positions = positions.map(|(at, live)| (live.advisor, at)).collect();
            self.advisor_positions = Some(positions);
        }
        self.advisor_positions.as_ref()?.get(advisor).copied()
    }

    fn advisor_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64> {
        let live = *self.lives().get(at)?;
        match rule.metric {
            Metric::PauseDuration => (live.state == "pause"
                && rule
                    .reason
                    .as_deref()
                    .is_none_or(|reason| live.reason == Some(reason)))
            .then_some(live.time_in_state)
            .flatten(),
            Metric::AcwDuration => (live.state == "acw")
                .then_some(live.time_in_state)
                .flatten(),
            Metric::ContactDuration => matches!(live.state, "talking" | "on_hold")
                .then_some(live.current_contact_duration)
                .flatten(),
            Metric::Aht => aht(
                &self.advisor_counts(at, rule.window?)?.handling(),
                rule.min_volume,
            ),
            Metric::Occupancy => self.advisor_times(at, rule.window?)?.occupancy(),
            Metric::MissedOffers => {
                Some(self.advisor_counts(at, rule.window?)?.missed_offers as f64)
            }
            _ => None,
        }
    }

    fn members_of(&mut self, team: usize) -> &[usize] {
        if !self.members {
            self.members = true;
            self.lives();
            self.team_ids();
            let teams = self.team_ids.as_deref().unwrap_or_default();
            let lives = self.lives.as_deref().unwrap_or_default();
            // Each advisor's team, then the advisors team after team (a counting sort).
            // Advisors of a team mostly follow one another in the list, with the very same
            // team name: the team found for the previous advisor is the first guess.
            let mut last: Option<(&str, usize)> = None;
            let team_of: Vec<Option<usize>> = lives
                .iter()
                .map(|live| {
                    let team = match last {
                        Some((name, team)) if std::ptr::eq(name, live.team) => Some(team),
                        _ => teams.binary_search(&live.team).ok(),
                    };
                    last = team.map(|team| (live.team, team));
                    team
                })
                .collect();
            let starts = &mut self.room.member_starts;
            starts.clear();
            starts.resize(teams.len() + 1, 0);
            for team in team_of.iter().flatten() {
                starts[team + 1] += 1;
            }
            for team in 0..teams.len() {
                starts[team + 1] += starts[team];
            }
            let members = &mut self.room.members;
            members.clear();
            members.resize(starts[teams.len()], 0);
            let mut next = starts.clone();
            for (at, team) in team_of.iter().enumerate() {
                if let Some(team) = *team {
                    members[next[team]] = at;
                    next[team] += 1;
                }
            }
        }
        let range = self.member_range(team);
        &self.room.members[range]
    }

    fn site_value(&mut self, rule: &RuleConfig) -> Option<f64> {
        match rule.metric {
            Metric::LongestWait | Metric::InQueue => {
                let queues: Vec<usize> = (0..self.queue_count()).collect();
                let live = self.live_of(&queues);
                Some(if rule.metric == Metric::InQueue {
                    live.in_queue as f64
                } else {
                    live.longest_wait.unwrap_or(0.0).max(0.0)
                })
            }
            Metric::AvailableAdvisors => Some(
                self.lives()
                    .iter()
                    .filter(|live| live.state == "available")
                    .count() as f64,
            ),
            Metric::Aht => aht(&self.site_counts(rule.window?).handling(), rule.min_volume),
            Metric::Occupancy => self.site_times(rule.window?).occupancy(),
            Metric::MissedOffers => Some(self.site_counts(rule.window?).missed_offers as f64),
            metric => {
                let flow = self.site_flow(rule.window?);
                let variant = self.site.site().sl_variant;
                flow_value(metric, &flow, variant, rule.min_volume)
            }
        }
    }
}

/// Counts an advisor in the live state `state` (a public state name).
fn count_state(advisors: &mut AdvisorsByState, state: &str) {
    let slot = match state {
        "offered" => &mut advisors.offered,
        "talking" => &mut advisors.talking,
        "on_hold" => &mut advisors.on_hold,
        "acw" => &mut advisors.acw,
        "pause" => &mut advisors.pause,
        "available" => &mut advisors.available,
        _ => &mut advisors.logged_out,
    };
    *slot += 1;
}

fn add_states(into: &mut AdvisorsByState, from: &AdvisorsByState) {
    into.offered += from.offered;
    into.talking += from.talking;
    into.on_hold += from.on_hold;
    into.acw += from.acw;
    into.pause += from.pause;
    into.available += from.available;
    into.logged_out += from.logged_out;
}

/// Staffed minus required, when the estimate is defined.
pub(crate) fn gap(staffing: Option<&Staffing>) -> Option<f64> {
    staffing?.gap().map(|gap| gap as f64)
}

fn enough(count: u64, min_volume: u64) -> Option<()> {
    (count >= min_volume).then_some(())
}

fn flow_value(
    metric: Metric,
    counts: &QueueCounts,
    variant: SlVariant,
    min_volume: u64,
) -> Option<f64> {
    enough(counts.offered, min_volume)?;
    match metric {
        Metric::ServiceLevel => counts.service_level(variant),
        Metric::AbandonRate => counts.abandon_rate(),
        Metric::Asa => counts.asa(),
        _ => None,
    }
}

fn aht(handling: &HandleIndicators, min_volume: u64) -> Option<f64> {
    enough(handling.handled, min_volume)?;
    handling.aht
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Comparator, Scope, Threshold};
    use crate::testkit::{Understaffed, morning};
    use vigie_core::config::HumanDuration;
    use vigie_staffing::live::{self, AhtSource};

    pub(crate) fn rule(scope: Scope, metric: Metric, window: Option<Window>) -> RuleConfig {
        RuleConfig {
            site: "s".into(),
            id: "r".into(),
            name: "R".into(),
            scope,
            metric,
            window,
            reason: None,
            comparator: Comparator::Above,
            warning: Some(Threshold::Number(0.0)),
            critical: None,
            clear: None,
            hold_for: HumanDuration::secs(0),
            renotify: None,
            min_interval: HumanDuration::secs(300),
            active_hours: None,
            active_days: None,
            min_volume: 0,
        }
    }

    const W: Option<Window> = Some(Window::Last15m);

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < 1e-9)
    }

    /// The value of `rule` for the queue `queue`, as the engine reads it.
    fn queue(figures: &mut Figures, rule: &RuleConfig, queue: &str) -> Option<f64> {
        let at = figures.queue_position(queue)?;
        figures.queue_value(rule, at)
    }

    fn team(figures: &mut Figures, rule: &RuleConfig, team: &str) -> Option<f64> {
        let at = figures.team_position(team)?;
        figures.team_value(rule, at)
    }

    /// The windows of the figures read for a queue.
    fn windows_read(figures: &Figures, queue: &str) -> Vec<Window> {
        let at = figures
            .queue_ids
            .as_ref()
            .and_then(|ids| ids.binary_search(&queue).ok())
            .expect("a queue listed");
        Window::ALL
            .into_iter()
            .filter(|w| figures.room.queues[at].figures[index(*w)].1.is_some())
            .collect()
    }

    #[test]
    fn queue_metrics_are_those_of_the_queue_view() {
        let feed = morning("UTC");
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        let q = |metric, window| rule(Scope::Queue("q".into()), metric, window);
        let mut read = |metric, window| queue(&mut figures, &q(metric, window), "q");
        assert_eq!(read(Metric::LongestWait, None), Some(60.0));
        assert_eq!(read(Metric::InQueue, None), Some(1.0));
        assert_eq!(read(Metric::AvailableAdvisors, None), Some(1.0));
        assert_eq!(read(Metric::ServiceLevel, W), Some(0.75));
        assert!(close(read(Metric::ServiceLevelGap, W), 0.75 - 0.8));
        assert_eq!(read(Metric::AbandonRate, W), Some(0.25));
        assert_eq!(
            read(Metric::Asa, W),
            Some(8.333),
            "rounded to the millisecond"
        );
        assert_eq!(read(Metric::Aht, W), Some(180.0));
        assert_eq!(read(Metric::AhtOverTarget, W), Some(0.6));
        // A queue nobody waits in has a longest wait of 0, and no AHT target: no ratio.
        let other = |metric, window| rule(Scope::Queue("other".into()), metric, window);
        assert_eq!(
            queue(&mut figures, &other(Metric::LongestWait, None), "other"),
            Some(0.0)
        );
        let no_target = other(Metric::AhtOverTarget, W);
        assert_eq!(queue(&mut figures, &no_target, "other"), None);
        assert_eq!(queue(&mut figures, &no_target, "unknown"), None);
        // Live metrics read no counts; the windowed ones read the window's only.
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        queue(&mut figures, &q(Metric::LongestWait, None), "q");
        queue(&mut figures, &q(Metric::AvailableAdvisors, None), "q");
        assert!(windows_read(&figures, "q").is_empty());
        queue(&mut figures, &q(Metric::ServiceLevel, W), "q");
        queue(&mut figures, &q(Metric::AbandonRate, W), "q");
        assert_eq!(windows_read(&figures, "q"), [Window::Last15m]);
    }

    #[test]
    fn min_volume_needs_enough_contacts_in_the_window() {
        let feed = morning("UTC");
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        let mut sl = rule(Scope::Queue("q".into()), Metric::ServiceLevel, W);
        sl.min_volume = 5;
        assert_eq!(queue(&mut figures, &sl, "q"), Some(0.75), "5 offered");
        sl.min_volume = 6;
        assert_eq!(queue(&mut figures, &sl, "q"), None);
        let mut aht = rule(Scope::Queue("q".into()), Metric::Aht, W);
        aht.min_volume = 1;
        assert_eq!(queue(&mut figures, &aht, "q"), Some(180.0));
        aht.min_volume = 2;
        assert_eq!(queue(&mut figures, &aht, "q"), None, "1 handled");
        // Over the trailing 15 minutes at 09:20, only c3 (offered 09:04) is left: 1 offered.
        let mut feed = morning("UTC");
        feed.advance("09:19:00");
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        sl.min_volume = 2;
        assert_eq!(queue(&mut figures, &sl, "q"), None);
    }

    #[test]
    fn team_and_site_metrics_are_those_of_their_views() {
        let feed = morning("UTC");
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        let view = feed.site.team_view("t", Window::Last15m).unwrap();
        let t = |metric, window| rule(Scope::Team("t".into()), metric, window);
        for (metric, window, expected) in [
            (Metric::LongestWait, None, Some(60.0)),
            (Metric::InQueue, None, Some(1.0)),
            (Metric::AvailableAdvisors, None, Some(1.0)),
            (Metric::ServiceLevel, W, Some(0.75)),
            (Metric::AbandonRate, W, Some(0.25)),
            (Metric::Aht, W, Some(180.0)),
            (Metric::MissedOffers, W, Some(1.0)),
            (
                Metric::Occupancy,
                W,
                view.indicators.advisors_indicators.occupancy,
            ),
        ] {
            assert_eq!(
                team(&mut figures, &t(metric, window), "t"),
                expected,
                "{metric}"
            );
        }
        assert!(view.indicators.advisors_indicators.occupancy.is_some());
        assert_eq!(team(&mut figures, &t(Metric::Asa, W), "t"), Some(8.333));
        assert_eq!(
            team(&mut figures, &t(Metric::InQueue, None), "nobody"),
            None
        );

        let totals = feed.site.site_view(Window::Last15m).totals;
        for (metric, window, expected) in [
            (Metric::LongestWait, None, Some(60.0)),
            (Metric::InQueue, None, Some(1.0)),
            (Metric::AvailableAdvisors, None, Some(1.0)),
            (Metric::ServiceLevel, W, Some(0.75)),
            (Metric::AbandonRate, W, Some(0.25)),
            (Metric::Aht, W, Some(180.0)),
            (Metric::MissedOffers, W, Some(1.0)),
            (Metric::Occupancy, W, totals.advisors_indicators.occupancy),
        ] {
            assert_eq!(
                figures.site_value(&rule(Scope::Site, metric, window)),
                expected,
                "{metric}"
            );
        }
    }

    #[test]
    fn advisor_metrics_read_the_state_first() {
        let feed = morning("UTC");
        let mut room = Room::default();
        let mut figures = Figures::new(&feed.site, Wanted::default(), &mut room);
        let mut value = |metric, window, advisor: &str, reason: Option<&str>| {
            let mut rule = rule(Scope::Advisor(advisor.into()), metric, window);
            rule.reason = reason.map(String::from);
            let at = figures.advisor_position(advisor)?;
            figures.advisor_value(&rule, at)
        };
        assert_eq!(value(Metric::PauseDuration, None, "a2", None), Some(180.0));
        assert_eq!(
            value(Metric::PauseDuration, None, "a2", Some("break")),
            Some(180.0)
        );
        assert_eq!(
            value(Metric::PauseDuration, None, "a2", Some("lunch")),
            None
        );
        assert_eq!(
            value(Metric::PauseDuration, None, "a1", None),
            None,
            "in ACW"
        );
        assert_eq!(value(Metric::AcwDuration, None, "a1", None), Some(40.0));
        assert_eq!(value(Metric::AcwDuration, None, "a3", None), None);
        assert_eq!(
            value(Metric::ContactDuration, None, "a3", None),
            Some(115.0)
        );
        assert_eq!(
            value(Metric::ContactDuration, None, "a1", None),
            None,
            "ACW is not talk"
        );
        assert_eq!(value(Metric::MissedOffers, W, "a2", None), Some(1.0));
        assert_eq!(value(Metric::MissedOffers, W, "a1", None), Some(0.0));
        assert_eq!(value(Metric::Aht, W, "a1", None), Some(180.0));
        assert_eq!(value(Metric::Aht, W, "a3", None), None, "nothing handled");
        let occupancy = feed
            .site
            .advisor_view("a1", Window::Last15m)
            .unwrap()
            .indicators
            .occupancy;
        // Handling 260 s (talk 120 + ACW 60, talk 40 + ACW 40) of 300 s logged in, 40 s idle.
        assert!(close(occupancy, 260.0 / 300.0), "{occupancy:?}");
        assert_eq!(value(Metric::Occupancy, W, "a1", None), occupancy);
        assert_eq!(value(Metric::AcwDuration, None, "nobody", None), None);
        // State metrics read no counts: only a1, a2 and a3 had windowed metrics read.
        let lives = figures.lives().to_vec();
        let read: Vec<&str> = lives
            .iter()
            .enumerate()
            .filter(|(at, _)| {
                let read = &figures.room;
                let mut counts = read.advisor_counts.iter();
                let mut times = read.advisor_times.iter();
                counts.any(|read| read.get(*at).is_some_and(Option::is_some))
                    || times.any(|read| read.get(*at).is_some_and(Option::is_some))
            })
            .map(|(_, live)| live.advisor)
            .collect();
        assert_eq!(read, ["a1", "a2", "a3"]);
    }

    /// Erlang C's probability of waiting with `n` advisors and `a` Erlangs, by direct
    /// summation of the Poisson terms (`vigie-staffing` uses the Erlang B recurrence):
    /// `C = (a^n / n!) (n / (n - a)) / (sum_{k<n} a^k / k! + (a^n / n!) (n / (n - a)))`.
    fn erlang_c_by_hand(n: u32, a: f64) -> f64 {
        let (mut term, mut below) = (1.0, 0.0);
        for k in 0..n {
            below += term;
            term *= a / f64::from(k + 1);
        }
        let waiting = term * f64::from(n) / (f64::from(n) - a);
        waiting / (below + waiting)
    }

    /// The fewest advisors for which `1 - C e^(-(n - a) threshold / aht)` reaches `target`.
    fn required_by_hand(a: f64, aht: f64, target: f64, threshold: f64) -> u32 {
        (1..)
            .filter(|n| f64::from(*n) > a)
            .find(|n| {
                let n = f64::from(*n);
                let c = erlang_c_by_hand(n as u32, a);
                1.0 - c * (-(n - a) * threshold / aht).exp() >= target
            })
            .unwrap()
    }

    #[test]
    fn staffing_gap_is_the_live_estimate_read_once_per_target() {
        let mut understaffed = Understaffed::new();
        understaffed.until("08:15:00");
        let site = &understaffed.feed.site;
        let mut room = Room::default();
        let mut figures = Figures::new(site, Wanted::default(), &mut room);
        let gap = |scope| rule(scope, Metric::StaffingGap, None);

        // 6 callers in the last 15 minutes (24 an hour, against 12 over 30 minutes) at the AHT
        // target of 300 s: 6 x 300 / 900 = 2 E. By hand: C(3, 2) = 4/9 and
        // 1 - 4/9 e^(-(3 - 2) 20/300) = 58.4%; C(4, 2) = 4/23 and 1 - 4/23 e^(-(4 - 2) 20/300)
        // = 84.8%: 4 advisors for 80/20, and 2 staffed (a1 and a2 talking, a3 and a4 on break).
        assert!((erlang_c_by_hand(4, 2.0) - 4.0 / 23.0).abs() < 1e-12);
        let required = required_by_hand(2.0, 300.0, 0.8, 20.0);
        assert_eq!(required, 4);
        let expected = 2.0 - f64::from(required);
        assert_eq!(
            queue(&mut figures, &gap(Scope::Queue("q".into())), "q"),
            Some(expected)
        );

        // The estimate the API's views carry, computed alone.
        let view = site.queue_view("q", Window::Last60m).unwrap();
        let estimate = live::queue(site, &view).unwrap();
        assert_eq!(
            (
                estimate.inputs.offered_15m,
                estimate.inputs.offered_30m,
                estimate.inputs.aht,
                estimate.inputs.staffed
            ),
            (6, 6, Some((300.0, AhtSource::Target)), 2)
        );
        assert_eq!(estimate.inputs.load(), Some(2.0));
        assert_eq!(estimate.estimate.as_ref().unwrap().required, required);
        assert_eq!(estimate.gap(), Some(-2));

        // Team t pools its campaign's only queue: the same traffic, target and advisors.
        let view = site.team_view("t", Window::Today).unwrap();
        let estimate = live::team(site, &view).unwrap();
        assert_eq!(estimate.gap(), Some(-2));
        assert_eq!(
            team(&mut figures, &gap(Scope::EveryTeam), "t"),
            Some(expected)
        );

        // No traffic on `other`: the model is undefined, so no value; nor for unknown targets.
        let other = live::queue(site, &site.queue_view("other", Window::Last15m).unwrap());
        assert!(other.unwrap().estimate.is_err());
        assert_eq!(queue(&mut figures, &gap(Scope::EveryQueue), "other"), None);
        assert_eq!(
            queue(&mut figures, &gap(Scope::EveryQueue), "nowhere"),
            None
        );
        assert_eq!(team(&mut figures, &gap(Scope::EveryTeam), "nobody"), None);

        // Read once: another staffing rule on `q`, and a live rule, read nothing more. The
        // estimate read the counts over 15 and 30 minutes, and today's (nothing handled in the
        // last 30 minutes: the AHT falls back to today's, then to the target).
        let windows = [Window::Today, Window::Last15m, Window::Last30m];
        assert_eq!(windows_read(&figures, "q"), windows);
        let mut warning = gap(Scope::EveryQueue);
        warning.warning = Some(Threshold::Number(-1.0));
        assert_eq!(queue(&mut figures, &warning, "q"), Some(expected));
        assert_eq!(
            queue(
                &mut figures,
                &rule(Scope::EveryQueue, Metric::InQueue, None),
                "q"
            ),
            Some(0.0)
        );
        assert_eq!(windows_read(&figures, "q"), windows);
        let estimated = figures.room.queues.iter().filter(|q| q.staffing.is_some());
        assert_eq!(estimated.count(), 2, "q and other");
        let estimated = figures.room.teams.iter().filter(|t| t.staffing.is_some());
        assert_eq!(estimated.count(), 1, "t");
    }
}
