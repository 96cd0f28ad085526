//! Reading metric values from a site's views, each view computed at most once per evaluation.

use std::collections::HashMap;

use vigie_core::views::{AdvisorIndicators, FlowIndicators, GroupIndicators, HandleIndicators};
use vigie_core::{AdvisorState, AdvisorView, QueueView, SiteProcessor, SiteView, TeamView, Window};

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

/// What one evaluation read from the site.
pub(crate) struct Reader<'s> {
    site: &'s SiteProcessor,
    windows: LiveWindows,
    queues: HashMap<String, Slots<QueueView>>,
    teams: HashMap<String, Slots<TeamView>>,
    advisors: HashMap<String, Slots<AdvisorView>>,
    sites: Slots<SiteView>,
    queue_ids: Option<Vec<&'s str>>,
    team_ids: Option<Vec<&'s str>>,
    states: Option<Vec<AdvisorState>>,
}

impl<'s> Reader<'s> {
    pub fn new(site: &'s SiteProcessor, windows: LiveWindows) -> Reader<'s> {
        Reader {
            site,
            windows,
            queues: HashMap::new(),
            teams: HashMap::new(),
            advisors: HashMap::new(),
            sites: Default::default(),
            queue_ids: None,
            team_ids: None,
            states: None,
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
    use crate::testkit::morning;
    use vigie_core::config::HumanDuration;

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
}
