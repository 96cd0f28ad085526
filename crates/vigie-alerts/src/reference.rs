//! The straightforward way of reading metric values, kept for tests: from the views a
//! supervisor reads (each view built at most once per evaluation, live figures from a view over
//! any window). The engine reads single figures instead ([`crate::read::Figures`]); tests
//! check that both give the same values, so the same alerts.

use std::collections::HashMap;

use vigie_core::views::{AdvisorIndicators, FlowIndicators, GroupIndicators, HandleIndicators};
use vigie_core::{AdvisorState, AdvisorView, QueueView, SiteProcessor, SiteView, TeamView, Window};
use vigie_staffing::live::{Inputs, Staffing, queue_inputs, team_inputs};

use crate::read::{Read, gap, index};
use crate::rule::{Metric, RuleConfig};

/// The window live figures are read over: they are the same in a view over any window.
const LIVE: Window = Window::Last15m;

/// Views of one id, per window: not read yet, or read (and perhaps unknown).
type Slots<V> = [Option<Option<V>>; 4];

fn cached<'c, V>(
    map: &'c mut HashMap<String, Slots<V>>,
    id: &str,
    window: Window,
    make: impl FnOnce() -> Option<V>,
) -> Option<&'c V> {
    if !map.contains_key(id) {
        map.insert(id.to_owned(), Default::default());
    }
    let slot = &mut map.get_mut(id)?[index(window)];
    slot.get_or_insert_with(make).as_ref()
}

/// A view already read over any window (live figures are the same in all), else `window`.
fn live<'c, V>(
    map: &'c mut HashMap<String, Slots<V>>,
    id: &str,
    window: Window,
    make: impl FnOnce(Window) -> Option<V>,
) -> Option<&'c V> {
    let read = map
        .get(id)
        .and_then(|slots| slots.iter().position(|s| matches!(s, Some(Some(_)))));
    match read {
        Some(at) => cached(map, id, Window::ALL[at], || None),
        None => cached(map, id, window, || make(window)),
    }
}

/// The live staffing of one queue or team from its views in `map` over the trailing 15 and 30
/// minutes, and today's only when the AHT needs it, reading into `map` those not read yet.
fn staffing<V>(
    map: &mut HashMap<String, Slots<V>>,
    id: &str,
    read: impl Fn(Window) -> Option<V>,
    handling: impl Fn(&V) -> &HandleIndicators,
    inputs: impl FnOnce(&V, &V, &mut dyn FnMut() -> Option<HandleIndicators>) -> Inputs,
) -> Option<Staffing> {
    for window in [Window::Last15m, Window::Last30m] {
        cached(map, id, window, || read(window))?;
    }
    let slots = map.get(id)?;
    let last_15m = slots[index(Window::Last15m)].as_ref()?.as_ref()?;
    let last_30m = slots[index(Window::Last30m)].as_ref()?.as_ref()?;
    let mut read_today = None;
    let mut today = || match &slots[index(Window::Today)] {
        Some(view) => view.as_ref().map(|view| handling(view).clone()),
        None => {
            let view = read(Window::Today);
            let handled = view.as_ref().map(|view| handling(view).clone());
            read_today = Some(view);
            handled
        }
    };
    let staffing = Staffing::new(inputs(last_15m, last_30m, &mut today));
    if let Some(view) = read_today {
        map.get_mut(id)?[index(Window::Today)] = Some(view);
    }
    Some(staffing)
}

/// What one evaluation read from the site's views.
pub(crate) struct Views<'s> {
    site: &'s SiteProcessor,
    pub queues: HashMap<String, Slots<QueueView>>,
    teams: HashMap<String, Slots<TeamView>>,
    pub advisors: HashMap<String, Slots<AdvisorView>>,
    /// Live staffing estimates, by queue and by team (`None`: unknown target).
    queue_staffing: HashMap<String, Option<Staffing>>,
    team_staffing: HashMap<String, Option<Staffing>>,
    sites: Slots<SiteView>,
    queue_ids: Option<Vec<&'s str>>,
    team_ids: Option<Vec<&'s str>>,
    states: Option<Vec<AdvisorState>>,
    members: Option<HashMap<String, Vec<usize>>>,
}

impl<'s> Views<'s> {
    pub fn new(site: &'s SiteProcessor) -> Views<'s> {
        Views {
            site,
            queues: HashMap::new(),
            teams: HashMap::new(),
            advisors: HashMap::new(),
            queue_staffing: HashMap::new(),
            team_staffing: HashMap::new(),
            sites: Default::default(),
            queue_ids: None,
            team_ids: None,
            states: None,
            members: None,
        }
    }

    fn queue_ids(&mut self) -> &[&'s str] {
        let site = self.site;
        self.queue_ids.get_or_insert_with(|| site.queue_ids())
    }

    fn team_ids(&mut self) -> &[&'s str] {
        let site = self.site;
        self.team_ids.get_or_insert_with(|| site.team_ids())
    }

    fn states(&mut self) -> &[AdvisorState] {
        let site = self.site;
        self.states.get_or_insert_with(|| site.advisor_states())
    }

    pub fn queue_value_of(&mut self, rule: &RuleConfig, queue: &str) -> Option<f64> {
        if rule.metric == Metric::StaffingGap {
            return gap(self.queue_staffing(queue));
        }
        let site = self.site;
        let view = match rule.window {
            Some(window) => cached(&mut self.queues, queue, window, || {
                site.queue_view(queue, window)
            }),
            None => live(&mut self.queues, queue, LIVE, |w| site.queue_view(queue, w)),
        }?;
        queue_value(rule.metric, view, rule.min_volume)
    }

    pub fn team_value_of(&mut self, rule: &RuleConfig, team: &str) -> Option<f64> {
        if rule.metric == Metric::StaffingGap {
            return gap(self.team_staffing(team));
        }
        let site = self.site;
        let view = match rule.window {
            Some(window) => cached(&mut self.teams, team, window, || {
                site.team_view(team, window)
            }),
            None => live(&mut self.teams, team, LIVE, |w| site.team_view(team, w)),
        }?;
        group_value(rule.metric, &view.indicators, rule.min_volume)
    }

    fn queue_staffing(&mut self, queue: &str) -> Option<&Staffing> {
        let site = self.site;
        if !self.queue_staffing.contains_key(queue) {
            let staffing = staffing(
                &mut self.queues,
                queue,
                |window| site.queue_view(queue, window),
                |view| &view.indicators.handling,
                |last_15m, last_30m, today| queue_inputs(last_15m, last_30m, today),
            );
            self.queue_staffing.insert(queue.to_owned(), staffing);
        }
        self.queue_staffing.get(queue)?.as_ref()
    }

    fn team_staffing(&mut self, team: &str) -> Option<&Staffing> {
        let site = self.site;
        if !self.team_staffing.contains_key(team) {
            let staffing = staffing(
                &mut self.teams,
                team,
                |window| site.team_view(team, window),
                |view| &view.indicators.advisors_indicators.handling,
                |last_15m, last_30m, today| team_inputs(site, last_15m, last_30m, today),
            );
            self.team_staffing.insert(team.to_owned(), staffing);
        }
        self.team_staffing.get(team)?.as_ref()
    }
}

impl Read for Views<'_> {
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
        let queue = self.queue_ids()[at];
        self.queue_value_of(rule, queue)
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
        let team = self.team_ids()[at];
        self.team_value_of(rule, team)
    }

    fn advisor_count(&mut self) -> usize {
        self.states().len()
    }

    fn advisor_id(&mut self, at: usize) -> &str {
        &self.states()[at].advisor
    }

    fn advisor_position(&mut self, advisor: &str) -> Option<usize> {
        self.states()
            .binary_search_by(|s| s.advisor.as_str().cmp(advisor))
            .ok()
    }

    fn advisor_value(&mut self, rule: &RuleConfig, at: usize) -> Option<f64> {
        let site = self.site;
        let state = self.states().get(at)?;
        let in_state = match rule.metric {
            Metric::PauseDuration => {
                state.state == "pause"
                    && rule
                        .reason
                        .as_ref()
                        .is_none_or(|reason| state.reason.as_ref() == Some(reason))
            }
            Metric::AcwDuration => state.state == "acw",
            Metric::ContactDuration => matches!(state.state, "talking" | "on_hold"),
            _ => true,
        };
        if !in_state {
            return None;
        }
        let advisor = self.states.as_ref()?.get(at)?.advisor.as_str();
        let view = match rule.window {
            Some(window) => cached(&mut self.advisors, advisor, window, || {
                site.advisor_view(advisor, window)
            }),
            None => live(&mut self.advisors, advisor, LIVE, |w| {
                site.advisor_view(advisor, w)
            }),
        }?;
        advisor_value(rule, view)
    }

    fn members_of(&mut self, team: usize) -> &[usize] {
        let team = self.team_ids()[team];
        if self.members.is_none() {
            let mut members: HashMap<String, Vec<usize>> = HashMap::new();
            for (at, state) in self.states().iter().enumerate() {
                members.entry(state.team.clone()).or_default().push(at);
            }
            self.members = Some(members);
        }
        self.members
            .as_ref()
            .and_then(|members| members.get(team))
            .map_or(&[], Vec::as_slice)
    }

    fn site_value(&mut self, rule: &RuleConfig) -> Option<f64> {
        let site = self.site;
        match rule.metric {
            Metric::LongestWait | Metric::InQueue => {
                let mut in_queue = 0.0;
                let mut longest: f64 = 0.0;
                for at in 0..self.queue_ids().len() {
                    let id = self.queue_ids()[at];
                    if let Some(view) = live(&mut self.queues, id, LIVE, |w| site.queue_view(id, w))
                    {
                        in_queue += view.indicators.live.in_queue as f64;
                        longest = longest.max(view.indicators.live.longest_wait.unwrap_or(0.0));
                    }
                }
                Some(if rule.metric == Metric::InQueue {
                    in_queue
                } else {
                    longest
                })
            }
            Metric::AvailableAdvisors => Some(
                self.states()
                    .iter()
                    .filter(|s| s.state == "available")
                    .count() as f64,
            ),
            metric => {
                let window = rule.window?;
                let view = self.sites[index(window)]
                    .get_or_insert_with(|| Some(site.site_view(window)))
                    .as_ref()?;
                group_value(metric, &view.totals, rule.min_volume)
            }
        }
    }
}

fn enough(count: u64, min_volume: u64) -> Option<()> {
    (count >= min_volume).then_some(())
}

fn flow_value(metric: Metric, flow: &FlowIndicators, min_volume: u64) -> Option<f64> {
    enough(flow.offered, min_volume)?;
    match metric {
        Metric::ServiceLevel => flow.service_level,
        Metric::AbandonRate => flow.abandon_rate,
        Metric::Asa => flow.asa,
        _ => None,
    }
}

fn aht(handling: &HandleIndicators, min_volume: u64) -> Option<f64> {
    enough(handling.handled, min_volume)?;
    handling.aht
}

fn queue_value(metric: Metric, view: &QueueView, min_volume: u64) -> Option<f64> {
    let indicators = &view.indicators;
    match metric {
        Metric::LongestWait => Some(indicators.live.longest_wait.unwrap_or(0.0)),
        Metric::InQueue => Some(indicators.live.in_queue as f64),
        Metric::AvailableAdvisors => Some(view.advisors.available as f64),
        Metric::ServiceLevelGap => flow_value(Metric::ServiceLevel, &indicators.flow, min_volume)
            .map(|sl| sl - view.sl_target),
        Metric::Aht => aht(&indicators.handling, min_volume),
        Metric::AhtOverTarget => {
            let target = view.aht_target.filter(|t| *t > 0.0)?;
            aht(&indicators.handling, min_volume).map(|aht| aht / target)
        }
        metric => flow_value(metric, &indicators.flow, min_volume),
    }
}

fn group_value(metric: Metric, group: &GroupIndicators, min_volume: u64) -> Option<f64> {
    let advisors: &AdvisorIndicators = &group.advisors_indicators;
    match metric {
        Metric::LongestWait => Some(group.live.longest_wait.unwrap_or(0.0)),
        Metric::InQueue => Some(group.live.in_queue as f64),
        Metric::AvailableAdvisors => Some(group.advisors.available as f64),
        Metric::Aht => aht(&advisors.handling, min_volume),
        Metric::Occupancy => advisors.occupancy,
        Metric::MissedOffers => Some(advisors.missed_offers as f64),
        metric => flow_value(metric, &group.flow, min_volume),
    }
}

fn advisor_value(rule: &RuleConfig, view: &AdvisorView) -> Option<f64> {
    let indicators = &view.indicators;
    match rule.metric {
        Metric::Aht => aht(&indicators.handling, rule.min_volume),
        Metric::Occupancy => indicators.occupancy,
        Metric::MissedOffers => Some(indicators.missed_offers as f64),
        Metric::PauseDuration => (view.state == "pause"
            && rule
                .reason
                .as_ref()
                .is_none_or(|reason| view.reason.as_ref() == Some(reason)))
        .then_some(view.time_in_state)
        .flatten(),
        Metric::AcwDuration => (view.state == "acw")
            .then_some(view.time_in_state)
            .flatten(),
        Metric::ContactDuration => matches!(view.state, "talking" | "on_hold")
            .then_some(view.current_contact_duration)
            .flatten(),
        _ => None,
    }
}

/// The engine reads single figures; these tests check, over simulated days, that it reads the
/// values the views show and so gives exactly the alerts of an evaluation through the views.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use vigie_core::config::HumanDuration;
    use vigie_core::{
        DEFAULT_MAX_EVENT_BYTES, Event, ProcessingConfig, SiteConfig, SlVariant, TeamConfig,
        Timestamp, decode_json,
    };
    use vigie_sim::{SimConfig, Simulation};

    use super::*;
    use crate::engine::AlertEngine;
    use crate::read::{Figures, Room, Wanted};
    use crate::rule::{Comparator, Scope, TargetKind, Threshold};

    const VARIANTS: [SlVariant; 3] = [SlVariant::Offered, SlVariant::Answered, SlVariant::Positive];

    /// A simulated site, made less regular than the simulator makes it: service-level variants
    /// of the site and its teams, a configured team with neither queue nor advisor, a team
    /// left out of the configuration (its advisors join it by their logins, and it serves no
    /// queue), and an advisor without any team.
    #[derive(Clone, Debug)]
    struct Day {
        seed: u64,
        advisors: usize,
        queues: usize,
        occupancy: f64,
        variants: (usize, usize),
        drop_team: bool,
    }

    fn days() -> impl Strategy<Value = Day> {
        (
            any::<u64>(),
            8usize..40,
            1usize..6,
            0.7..1.0f64,
            (0usize..3, 0usize..3),
            any::<bool>(),
        )
            .prop_map(
                |(seed, advisors, queues, occupancy, variants, drop_team)| Day {
                    seed,
                    advisors,
                    queues,
                    occupancy,
                    variants,
                    drop_team,
                },
            )
    }

    fn event(json: &str) -> Event {
        decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("a valid event")
    }

    impl Day {
        /// The site's configuration, its events in delivery order, and the opening time.
        fn build(&self) -> (SiteConfig, Vec<Event>, Timestamp) {
            let config = SimConfig {
                seed: self.seed,
                advisors: self.advisors,
                queues: self.queues,
                target_occupancy: self.occupancy,
                ..SimConfig::default()
            };
            let simulation = Simulation::new(&config).expect("a valid simulation");
            let open = simulation.open_time();
            let mut site = simulation.site_config();
            site.sl_variant = VARIANTS[self.variants.0];
            if let Some(team) = site.teams.first_mut() {
                team.sl_variant = Some(VARIANTS[self.variants.1]);
            }
            if self.drop_team && site.teams.len() > 1 {
                site.teams.pop();
            }
            site.teams.push(TeamConfig {
                id: "empty".into(),
                name: None,
                advisors: Vec::new(),
                queues: Vec::new(),
                sl_variant: None,
            });
            let mut events: Vec<Event> = simulation.into_feed().collect();
            let stray = |id: &str, advisor: &str, minutes: i64, rest: &str| {
                let time = Timestamp(open.0 + minutes * 60_000).to_rfc3339_in(chrono_tz::UTC);
                event(&format!(
                    r#"{{"id":"{id}","time":"{time}","site":"paris","advisor":"{advisor}",{rest}}}"#
                ))
            };
            let pause = r#""type":"advisor.state","state":"pause","reason":"break""#;
            let available = r#""type":"advisor.state","state":"available""#;
            // One without team from the start; one in a team of their own from the afternoon,
            // when the lists of advisors and teams change under the alerts of the morning.
            events.extend([
                stray("stray-1", "stray", 5, r#""type":"advisor.login""#),
                stray("stray-2", "stray", 60, pause),
                stray("stray-3", "stray", 80, available),
                stray(
                    "late-1",
                    "late",
                    300,
                    r#""type":"advisor.login","team":"late""#,
                ),
                stray("late-2", "late", 310, pause),
                stray("late-3", "late", 340, available),
            ]);
            events.sort_by_key(|e| e.time);
            (site, events, open)
        }
    }

    /// Every metric over every kind of target it applies to, each window, with and without a
    /// minimum volume, and for pauses each reason: one rule each, scoped to one target later.
    fn every_reading() -> Vec<RuleConfig> {
        let mut rules = Vec::new();
        for metric in Metric::ALL {
            for kind in [
                TargetKind::Site,
                TargetKind::Queue,
                TargetKind::Team,
                TargetKind::Advisor,
            ] {
                if !metric.applies_to(kind) {
                    continue;
                }
                let windows: Vec<Option<Window>> = if metric.windowed() {
                    Window::ALL.into_iter().map(Some).collect()
                } else {
                    vec![None]
                };
                let volumes: &[u64] = if metric.has_volume() { &[0, 5] } else { &[0] };
                let reasons: &[Option<&str>] = if metric == Metric::PauseDuration {
                    &[None, Some("break"), Some("lunch")]
                } else {
                    &[None]
                };
                let scope = match kind {
                    TargetKind::Site => Scope::Site,
                    TargetKind::Queue => Scope::EveryQueue,
                    TargetKind::Team => Scope::EveryTeam,
                    TargetKind::Advisor => Scope::EveryAdvisor,
                };
                for window in &windows {
                    for &min_volume in volumes {
                        for reason in reasons {
                            rules.push(RuleConfig {
                                site: "paris".into(),
                                id: format!("r{}", rules.len()),
                                name: "R".into(),
                                scope: scope.clone(),
                                metric,
                                window: *window,
                                reason: reason.map(String::from),
                                comparator: Comparator::Above,
                                warning: Some(Threshold::Number(0.0)),
                                critical: None,
                                clear: None,
                                hold_for: HumanDuration::secs(0),
                                renotify: None,
                                min_interval: HumanDuration::secs(300),
                                active_hours: None,
                                active_days: None,
                                min_volume,
                            });
                        }
                    }
                }
            }
        }
        rules
    }

    /// The value read for each target, as bits (two readings are the same to the last bit).
    type Readings = Vec<(String, Option<u64>)>;

    fn bits(value: Option<f64>) -> Option<u64> {
        value.map(f64::to_bits)
    }

    /// Compares every reading of every target (and of unknown ones) through both readers.
    /// Returns how many readings had a value.
    fn compare_readings(
        site: &SiteProcessor,
        rules: &[RuleConfig],
    ) -> Result<usize, TestCaseError> {
        let mut room = Room::default();
        let mut figures = Figures::new(site, Wanted::of(rules.iter()), &mut room);
        let mut views = Views::new(site);
        let queues: Vec<&str> = site.queue_ids();
        let teams: Vec<&str> = site.team_ids();
        let advisors: Vec<String> = site
            .advisor_states()
            .into_iter()
            .map(|state| state.advisor)
            .collect();
        prop_assert_eq!(figures.queue_count(), queues.len());
        prop_assert_eq!(figures.team_count(), teams.len());
        prop_assert_eq!(figures.advisor_count(), advisors.len());
        let mut read = 0;
        for rule in rules {
            let (fast, slow): (Readings, Readings) = match rule.scope.target_kind() {
                TargetKind::Site => (
                    vec![(String::new(), bits(figures.site_value(rule)))],
                    vec![(String::new(), bits(views.site_value(rule)))],
                ),
                TargetKind::Queue => {
                    let ids = queues.iter().copied().chain(["nowhere"]);
                    ids.map(|queue| {
                        let fast = figures
                            .queue_position(queue)
                            .and_then(|at| figures.queue_value(rule, at));
                        let slow = views
                            .queue_position(queue)
                            .and_then(|at| views.queue_value(rule, at));
                        (
                            (queue.to_owned(), bits(fast)),
                            (queue.to_owned(), bits(slow)),
                        )
                    })
                    .unzip()
                }
                TargetKind::Team => {
                    let ids = teams.iter().copied().chain(["nobody", "unassigned"]);
                    ids.map(|team| {
                        let fast = figures
                            .team_position(team)
                            .and_then(|at| figures.team_value(rule, at));
                        let slow = views
                            .team_position(team)
                            .and_then(|at| views.team_value(rule, at));
                        ((team.to_owned(), bits(fast)), (team.to_owned(), bits(slow)))
                    })
                    .unzip()
                }
                TargetKind::Advisor => {
                    let ids = advisors.iter().map(String::as_str).chain(["nobody"]);
                    ids.map(|advisor| {
                        let fast = figures
                            .advisor_position(advisor)
                            .and_then(|at| figures.advisor_value(rule, at));
                        let slow = views
                            .advisor_position(advisor)
                            .and_then(|at| views.advisor_value(rule, at));
                        (
                            (advisor.to_owned(), bits(fast)),
                            (advisor.to_owned(), bits(slow)),
                        )
                    })
                    .unzip()
                }
            };
            read += fast.iter().filter(|(_, value)| value.is_some()).count();
            prop_assert_eq!(
                fast,
                slow,
                "{:?} {:?} {:?}",
                rule.metric,
                rule.window,
                rule.scope
            );
        }
        for (at, team) in teams.iter().enumerate() {
            let fast: BTreeSet<String> = figures
                .members_of(at)
                .to_vec()
                .into_iter()
                .map(|at| figures.advisor_id(at).to_owned())
                .collect();
            let slow: BTreeSet<String> = views
                .members_of(at)
                .to_vec()
                .into_iter()
                .map(|at| views.advisor_id(at).to_owned())
                .collect();
            prop_assert_eq!(fast, slow, "members of {}", team);
        }
        Ok(read)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        /// At instants spread over a simulated day (the first ones a few seconds apart, then
        /// minutes), every metric of every target reads the same through single figures as
        /// through the views, bit for bit.
        #[test]
        fn figures_read_what_the_views_show(day in days(), steps in prop::collection::vec(1i64..1200, 40)) {
            let (config, events, open) = day.build();
            let mut site = SiteProcessor::new(config, &ProcessingConfig::default());
            let rules = every_reading();
            let mut events = events.into_iter().peekable();
            let mut now = open;
            let mut read = 0;
            for (n, step) in steps.into_iter().enumerate() {
                now = Timestamp(now.0 + if n < 10 { step * 10 } else { step * 1000 });
                while let Some(event) = events.next_if(|e| e.time <= now) {
                    site.apply(&event);
                }
                site.advance_to(now);
                read += compare_readings(&site, &rules)?;
            }
            // Not a vacuous run: the stretch of day covered (random steps) had traffic. The
            // smallest days drawn apply several hundred events over it.
            let stats = site.stats();
            prop_assert!(stats.applied > 300, "{:?}", stats);
            prop_assert!(read > 500, "{} readings with a value", read);
        }
    }

    /// A rule drawn at random: its metric, scope, window and settings, thresholds in the range
    /// of the metric's usual values.
    #[derive(Clone, Debug)]
    struct Draw {
        metric: usize,
        scope: usize,
        target: usize,
        window: usize,
        below: bool,
        warning: f64,
        critical: Option<f64>,
        clear: Option<f64>,
        hold_for: u64,
        min_volume: u64,
        reason: usize,
        renotify: Option<u64>,
        hours: Option<(u8, u8)>,
    }

    fn draws() -> impl Strategy<Value = Draw> {
        (
            (
                0usize..Metric::ALL.len(),
                0usize..8,
                any::<usize>(),
                0usize..4,
            ),
            (any::<bool>(), 0.0..1.0f64, prop::option::of(0.05..0.5f64)),
            prop::option::of(0.0..0.2f64),
            prop_oneof![Just(0u64), Just(10), 30u64..400],
            prop_oneof![Just(0u64), 1u64..15],
            0usize..3,
            prop::option::of(300u64..1800),
            prop::option::of((8u8..14, 1u8..8)),
        )
            .prop_map(
                |(
                    (metric, scope, target, window),
                    (below, warning, critical),
                    clear,
                    hold_for,
                    min_volume,
                    reason,
                    renotify,
                    hours,
                )| Draw {
                    metric,
                    scope,
                    target,
                    window,
                    below,
                    warning,
                    critical,
                    clear,
                    hold_for,
                    min_volume,
                    reason,
                    renotify,
                    hours,
                },
            )
    }

    /// A value of `metric` around its usual range, from `at` in [0, 1).
    fn around(metric: Metric, at: f64) -> f64 {
        match metric {
            Metric::ServiceLevel | Metric::AbandonRate | Metric::Occupancy => at,
            Metric::ServiceLevelGap => at * 0.6 - 0.3,
            Metric::AhtOverTarget => 0.5 + at,
            Metric::LongestWait | Metric::Asa => at * 120.0,
            Metric::Aht => 60.0 + at * 600.0,
            Metric::PauseDuration | Metric::AcwDuration | Metric::ContactDuration => at * 900.0,
            Metric::InQueue | Metric::AvailableAdvisors | Metric::MissedOffers => {
                (at * 6.0).floor()
            }
            Metric::StaffingGap => (at * 6.0).floor() - 4.0,
        }
    }

    impl Draw {
        /// The rule, if the draw makes a valid one for `site`.
        fn rule(&self, n: usize, site: &SiteProcessor) -> Option<RuleConfig> {
            let metric = Metric::ALL[self.metric];
            let pick = |ids: Vec<&str>| -> String {
                let known = ids.len();
                if self.target % (known + 1) == known {
                    "elsewhere".to_owned()
                } else {
                    ids[self.target % (known + 1)].to_owned()
                }
            };
            let advisors: Vec<String> = site
                .advisor_states()
                .into_iter()
                .map(|a| a.advisor)
                .collect();
            let scope = match self.scope {
                0 => Scope::Site,
                1 => Scope::Queue(pick(site.queue_ids())),
                2 => Scope::Team(pick(site.team_ids())),
                3 => Scope::Advisor(pick(advisors.iter().map(String::as_str).collect())),
                4 => Scope::AllAdvisorsOfTeam(pick(site.team_ids())),
                5 => Scope::EveryQueue,
                6 => Scope::EveryTeam,
                _ => Scope::EveryAdvisor,
            };
            if !metric.applies_to(scope.target_kind()) {
                return None;
            }
            let comparator = if self.below {
                Comparator::Below
            } else {
                Comparator::Above
            };
            let worse = |gap: f64| match comparator {
                Comparator::Above => gap,
                Comparator::Below => -gap,
            };
            let warning = around(metric, self.warning);
            let spread = (around(metric, 1.0) - around(metric, 0.0)).abs();
            let rule = RuleConfig {
                site: "paris".into(),
                id: format!("rule-{n}"),
                name: format!("Rule {n}"),
                scope,
                metric,
                window: metric.windowed().then_some(Window::ALL[self.window]),
                reason: (metric == Metric::PauseDuration && self.reason > 0)
                    .then(|| ["break", "lunch"][self.reason - 1].to_owned()),
                comparator,
                warning: Some(Threshold::Number(warning)),
                critical: self
                    .critical
                    .map(|gap| Threshold::Number(warning + worse(gap * spread))),
                clear: self
                    .clear
                    .map(|gap| Threshold::Number(warning - worse(gap * spread))),
                hold_for: HumanDuration::secs(self.hold_for),
                renotify: self.renotify.map(HumanDuration::secs),
                min_interval: HumanDuration::secs(300),
                active_hours: self
                    .hours
                    .map(|(start, length)| format!("{start:02}:00-{:02}:30", start + length)),
                active_days: None,
                min_volume: if metric.has_volume() {
                    self.min_volume
                } else {
                    0
                },
            };
            rule.validate("rule").is_ok().then_some(rule)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

        /// Two engines with the same rules over a simulated day, one reading single figures
        /// (as it does in service), the other the views: at every evaluation, the same state
        /// changes and the same notifications, and the same alerts at the end.
        #[test]
        fn the_engine_gives_the_alerts_of_an_evaluation_through_the_views(
            day in days(),
            draws in prop::collection::vec(draws(), 4..30),
            step in 5i64..60,
        ) {
            let (config, events, open) = day.build();
            let mut site = SiteProcessor::new(config, &ProcessingConfig::default());
            let mut events = events.into_iter().peekable();
            // Rules naming targets need them known: the first hour applied, without rules.
            let warm = Timestamp(open.0 + 3_600_000);
            while let Some(event) = events.next_if(|e| e.time <= warm) {
                site.apply(&event);
            }
            site.advance_to(warm);
            let rules: Vec<RuleConfig> = draws
                .iter()
                .enumerate()
                .filter_map(|(n, draw)| draw.rule(n, &site))
                .collect();
            let mut fast = AlertEngine::new("paris", &rules).expect("valid rules");
            let mut slow = AlertEngine::new("paris", &rules).expect("valid rules");
            let mut now = warm;
            while events.peek().is_some() {
                now = Timestamp(now.0 + step * 1000);
                while let Some(event) = events.next_if(|e| e.time <= now) {
                    site.apply(&event);
                }
                site.advance_to(now);
                let expected = slow.evaluate_with(&site, now, Views::new(&site));
                let actual = fast.evaluate(&site, now);
                prop_assert_eq!(actual, expected, "at {}", now);
            }
            // Into the next day, whose start drops the alerts with nothing left to do.
            for _ in 0..24 {
                now = Timestamp(now.0 + 15 * 60_000);
                site.advance_to(now);
                let expected = slow.evaluate_with(&site, now, Views::new(&site));
                let actual = fast.evaluate(&site, now);
                prop_assert_eq!(actual, expected, "at {}", now);
            }
            prop_assert_eq!(fast.alerts(), slow.alerts());
        }
    }
}
