//! Reading metric values from a site's views, each view computed at most once per evaluation.

use std::collections::HashMap;

use vigie_core::views::{AdvisorIndicators, FlowIndicators, GroupIndicators, HandleIndicators};
use vigie_core::{AdvisorState, AdvisorView, QueueView, SiteProcessor, SiteView, TeamView, Window};
use vigie_staffing::live::{Inputs, Staffing, queue_inputs, team_inputs};

use crate::rule::{Metric, RuleConfig, TargetKind};

/// The window each kind of target is read over for live metrics: the one windowed rules of
/// that kind use most, so that live and windowed rules share a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveWindows {
    pub queue: Window,
    pub team: Window,
    pub advisor: Window,
}

impl LiveWindows {
    pub fn choose<'a>(rules: impl Iterator<Item = &'a RuleConfig>) -> LiveWindows {
        let mut counts = [[0usize; 4]; 3];
        for rule in rules {
            let kind = match rule.scope.target_kind() {
                TargetKind::Queue => 0,
                TargetKind::Team => 1,
                TargetKind::Advisor => 2,
                TargetKind::Site => continue,
            };
            if let Some(window) = rule.window {
                counts[kind][index(window)] += 1;
            }
        }
        let pick = |counts: [usize; 4]| {
            let best = counts.into_iter().max().unwrap_or(0);
            if best == 0 {
                Window::Last15m
            } else {
                Window::ALL[counts.iter().position(|c| *c == best).unwrap_or(1)]
            }
        };
        LiveWindows {
            queue: pick(counts[0]),
            team: pick(counts[1]),
            advisor: pick(counts[2]),
        }
    }
}

fn index(window: Window) -> usize {
    match window {
        Window::Today => 0,
        Window::Last15m => 1,
        Window::Last30m => 2,
        Window::Last60m => 3,
    }
}

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

/// What one evaluation read from the site.
pub(crate) struct Reader<'s> {
    site: &'s SiteProcessor,
    windows: LiveWindows,
    queues: HashMap<String, Slots<QueueView>>,
    teams: HashMap<String, Slots<TeamView>>,
    advisors: HashMap<String, Slots<AdvisorView>>,
    /// Live staffing estimates, by queue and by team (`None`: unknown target).
    queue_staffing: HashMap<String, Option<Staffing>>,
    team_staffing: HashMap<String, Option<Staffing>>,
    sites: Slots<SiteView>,
    queue_ids: Option<Vec<&'s str>>,
    team_ids: Option<Vec<&'s str>>,
    states: Option<Vec<AdvisorState>>,
    /// Positions in `states` of each team's advisors, built once when a rule needs them.
    members: Option<HashMap<String, Vec<usize>>>,
}

impl<'s> Reader<'s> {
    pub fn new(site: &'s SiteProcessor, windows: LiveWindows) -> Reader<'s> {
        Reader {
            site,
            windows,
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

    pub fn queue_ids(&mut self) -> &[&'s str] {
        let site = self.site;
        self.queue_ids.get_or_insert_with(|| site.queue_ids())
    }

    pub fn team_ids(&mut self) -> &[&'s str] {
        let site = self.site;
        self.team_ids.get_or_insert_with(|| site.team_ids())
    }

    /// The positions in [`Reader::states`] of a team's advisors: one pass over the advisors
    /// for every team of the evaluation, rather than one per rule.
    pub fn members_of(&mut self, team: &str) -> &[usize] {
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

    /// Every advisor's live state, by id.
    pub fn states(&mut self) -> &[AdvisorState] {
        let site = self.site;
        self.states.get_or_insert_with(|| site.advisor_states())
    }

    pub fn site_value(&mut self, rule: &RuleConfig) -> Option<f64> {
        let site = self.site;
        match rule.metric {
            Metric::LongestWait | Metric::InQueue => {
                let mut in_queue = 0.0;
                let mut longest: f64 = 0.0;
                for at in 0..self.queue_ids().len() {
                    let id = self.queue_ids()[at];
                    if let Some(view) = live(&mut self.queues, id, self.windows.queue, |w| {
                        site.queue_view(id, w)
                    }) {
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

    pub fn queue_value(&mut self, rule: &RuleConfig, queue: &str) -> Option<f64> {
        if rule.metric == Metric::StaffingGap {
            return gap(self.queue_staffing(queue));
        }
        let site = self.site;
        let view = match rule.window {
            Some(window) => cached(&mut self.queues, queue, window, || {
                site.queue_view(queue, window)
            }),
            None => live(&mut self.queues, queue, self.windows.queue, |w| {
                site.queue_view(queue, w)
            }),
        }?;
        queue_value(rule.metric, view, rule.min_volume)
    }

    pub fn team_value(&mut self, rule: &RuleConfig, team: &str) -> Option<f64> {
        if rule.metric == Metric::StaffingGap {
            return gap(self.team_staffing(team));
        }
        let site = self.site;
        let view = match rule.window {
            Some(window) => cached(&mut self.teams, team, window, || {
                site.team_view(team, window)
            }),
            None => live(&mut self.teams, team, self.windows.team, |w| {
                site.team_view(team, w)
            }),
        }?;
        group_value(rule.metric, &view.indicators, rule.min_volume)
    }

    /// A queue's live staffing, estimated once per evaluation from the views the other rules
    /// share.
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

    /// A team's live staffing, estimated once per evaluation from the views the other rules
    /// share.
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

    /// The value for the advisor at `at` in [`Reader::states`]: the live state is checked
    /// first, so that state metrics read a view only for advisors in the watched state.
    pub fn advisor_value_at(&mut self, rule: &RuleConfig, at: usize) -> Option<f64> {
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
            None => live(&mut self.advisors, advisor, self.windows.advisor, |w| {
                site.advisor_view(advisor, w)
            }),
        }?;
        advisor_value(rule, view)
    }

    /// Where an advisor is in [`Reader::states`].
    pub fn advisor_position(&mut self, advisor: &str) -> Option<usize> {
        self.states()
            .binary_search_by(|s| s.advisor.as_str().cmp(advisor))
            .ok()
    }
}

/// Staffed minus required, when the estimate is defined.
fn gap(staffing: Option<&Staffing>) -> Option<f64> {
    staffing?.gap().map(|gap| gap as f64)
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

    #[test]
    fn queue_metrics_read_the_queue_view() {
        let feed = morning("UTC");
        let windows = LiveWindows::choose(std::iter::empty());
        let mut reader = Reader::new(&feed.site, windows);
        let queue = |metric, window| rule(Scope::Queue("q".into()), metric, window);
        let mut read = |metric, window| reader.queue_value(&queue(metric, window), "q");
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
        assert_eq!(
            reader.queue_value(
                &rule(Scope::Queue("other".into()), Metric::LongestWait, None),
                "other"
            ),
            Some(0.0)
        );
        let no_target = rule(Scope::Queue("other".into()), Metric::AhtOverTarget, W);
        assert_eq!(reader.queue_value(&no_target, "other"), None);
        assert_eq!(reader.queue_value(&no_target, "unknown"), None);
    }

    #[test]
    fn min_volume_needs_enough_contacts_in_the_window() {
        let feed = morning("UTC");
        let mut reader = Reader::new(&feed.site, LiveWindows::choose(std::iter::empty()));
        let mut sl = rule(Scope::Queue("q".into()), Metric::ServiceLevel, W);
        sl.min_volume = 5;
        assert_eq!(reader.queue_value(&sl, "q"), Some(0.75), "5 offered");
        sl.min_volume = 6;
        assert_eq!(reader.queue_value(&sl, "q"), None);
        let mut aht = rule(Scope::Queue("q".into()), Metric::Aht, W);
        aht.min_volume = 1;
        assert_eq!(reader.queue_value(&aht, "q"), Some(180.0));
        aht.min_volume = 2;
        assert_eq!(reader.queue_value(&aht, "q"), None, "1 handled");
        // Over the trailing 15 minutes at 09:20, only c3 (offered 09:04) is left: 1 offered.
        let mut feed = morning("UTC");
        feed.advance("09:19:00");
        let mut reader = Reader::new(&feed.site, LiveWindows::choose(std::iter::empty()));
        sl.min_volume = 2;
        assert_eq!(reader.queue_value(&sl, "q"), None);
    }

    #[test]
    fn team_and_site_metrics_read_their_views() {
        let feed = morning("UTC");
        let mut reader = Reader::new(&feed.site, LiveWindows::choose(std::iter::empty()));
        let view = feed.site.team_view("t", Window::Last15m).unwrap();
        let team = |metric, window| rule(Scope::Team("t".into()), metric, window);
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
                reader.team_value(&team(metric, window), "t"),
                expected,
                "{metric}"
            );
        }
        assert!(view.indicators.advisors_indicators.occupancy.is_some());
        assert_eq!(reader.team_value(&team(Metric::Asa, W), "t"), Some(8.333));
        assert_eq!(
            reader.team_value(&team(Metric::InQueue, None), "nobody"),
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
                reader.site_value(&rule(Scope::Site, metric, window)),
                expected,
                "{metric}"
            );
        }
    }

    #[test]
    fn advisor_metrics_read_the_state_first() {
        let feed = morning("UTC");
        let mut reader = Reader::new(&feed.site, LiveWindows::choose(std::iter::empty()));
        let mut value = |metric, window, advisor: &str, reason: Option<&str>| {
            let mut rule = rule(Scope::Advisor(advisor.into()), metric, window);
            rule.reason = reason.map(String::from);
            let at = reader.advisor_position(advisor)?;
            reader.advisor_value_at(&rule, at)
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
        // Only the views of advisors in a watched state (or a windowed metric) were read.
        assert_eq!(reader.advisors.len(), 3, "a1, a2 and a3; never a4");
    }

    #[test]
    fn live_metrics_share_the_view_windowed_rules_read() {
        let feed = morning("UTC");
        let rules = [
            rule(
                Scope::EveryQueue,
                Metric::ServiceLevel,
                Some(Window::Last30m),
            ),
            rule(
                Scope::EveryQueue,
                Metric::AbandonRate,
                Some(Window::Last30m),
            ),
            rule(Scope::EveryQueue, Metric::Asa, Some(Window::Today)),
        ];
        let windows = LiveWindows::choose(rules.iter());
        assert_eq!(windows.queue, Window::Last30m);
        assert_eq!(windows.advisor, Window::Last15m);
        let mut reader = Reader::new(&feed.site, windows);
        reader.queue_value(&rule(Scope::EveryQueue, Metric::InQueue, None), "q");
        reader.queue_value(&rules[0], "q");
        reader.queue_value(&rules[1], "q");
        let read: Vec<usize> = reader.queues["q"]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(at, _)| at)
            .collect();
        assert_eq!(
            read,
            [index(Window::Last30m)],
            "one view for the three rules"
        );
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
        let mut reader = Reader::new(site, LiveWindows::choose(std::iter::empty()));
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
            reader.queue_value(&gap(Scope::Queue("q".into())), "q"),
            Some(expected)
        );

        // The estimate the API's views carry, computed alone.
        let view = site.queue_view("q", Window::Last60m).unwrap();
        let queue = live::queue(site, &view).unwrap();
        assert_eq!(
            (
                queue.inputs.offered_15m,
                queue.inputs.offered_30m,
                queue.inputs.aht,
                queue.inputs.staffed
            ),
            (6, 6, Some((300.0, AhtSource::Target)), 2)
        );
        assert_eq!(queue.inputs.load(), Some(2.0));
        assert_eq!(queue.estimate.as_ref().unwrap().required, required);
        assert_eq!(queue.gap(), Some(-2));

        // Team t pools its campaign's only queue: the same traffic, target and advisors.
        let view = site.team_view("t", Window::Today).unwrap();
        let team = live::team(site, &view).unwrap();
        assert_eq!(team.gap(), Some(-2));
        assert_eq!(
            reader.team_value(&gap(Scope::EveryTeam), "t"),
            Some(expected)
        );

        // No traffic on `other`: the model is undefined, so no value; nor for unknown targets.
        let other = live::queue(site, &site.queue_view("other", Window::Last15m).unwrap());
        assert!(other.unwrap().estimate.is_err());
        assert_eq!(reader.queue_value(&gap(Scope::EveryQueue), "other"), None);
        assert_eq!(reader.queue_value(&gap(Scope::EveryQueue), "nowhere"), None);
        assert_eq!(reader.team_value(&gap(Scope::EveryTeam), "nobody"), None);

        // Read once: another staffing rule on `q`, and a live rule, read nothing more. The
        // estimate read the views over 15 and 30 minutes, and today's (nothing handled in the
        // last 30 minutes: the AHT falls back to today's, then to the target).
        let slots = |reader: &Reader| -> Vec<usize> {
            reader.queues["q"]
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_some())
                .map(|(at, _)| at)
                .collect()
        };
        let windows = [Window::Today, Window::Last15m, Window::Last30m].map(index);
        assert_eq!(slots(&reader), windows);
        let mut warning = gap(Scope::EveryQueue);
        warning.warning = Some(Threshold::Number(-1.0));
        assert_eq!(reader.queue_value(&warning, "q"), Some(expected));
        assert_eq!(
            reader.queue_value(&rule(Scope::EveryQueue, Metric::InQueue, None), "q"),
            Some(0.0)
        );
        assert_eq!(slots(&reader), windows);
        assert_eq!(reader.queue_staffing.len(), 3, "q, other, nowhere");
        assert_eq!(reader.team_staffing.len(), 2, "t, nobody");
    }
}
