//! The live staffing gap of queues and teams ("need 14, have 11"): the advisors Erlang C
//! requires now for the service-level target, from the arrival rate of the trailing 15 and 30
//! minutes and the current AHT, against the advisors staffed now.
//!
//! Computed from the core's own views over the trailing 15 and 30 minutes (and today, for the
//! AHT of quiet queues), with the mathematics of this crate: by the API when it builds a view
//! (`vigie-api` turns a [`Staffing`] into its wire form) and by the alert engine for the
//! `staffing_gap` metric (`vigie-alerts`, which feeds [`queue_inputs`] and [`team_inputs`] the
//! views it already read). The estimate does not depend on the window of the view that shows
//! it, so a queue or a team carries the same numbers in the site, team and queue views and in
//! its alerts. Model, choices, assumptions and limits: docs/staffing.md, "Live staffing gap".
//!
//! For a queue:
//! - arrival rates: contacts offered over the trailing 15 and 30 minutes, per hour; the
//!   estimate staffs for the higher (a surge shows in the 15 minutes first, a lull must not
//!   hide the last half hour's traffic); on a tie, the 30 minutes;
//! - AHT: of the contacts handled over the trailing 30 minutes when there are at least
//!   [`MIN_HANDLED_30M`], else of today's when at least [`MIN_HANDLED_TODAY`], else the
//!   queue's `aht_target`; undefined without any;
//! - target: the queue's `sl_target` within its `sl_threshold`, under Erlang C, with neither
//!   occupancy cap nor shrinkage (these are advisors on the phones now);
//! - staffed: the advisors of the teams serving the queue who are available, ringing,
//!   talking, on hold or in wrap-up.
//!
//! For a team, the pooled traffic of its campaign queues: the team's offered contacts (the sum
//! over its queues), the AHT of the contacts its members handled (which weighs each queue by
//! the volume the team handled for it; the fallback target is the mean of the queues'
//! `aht_target`s), the strictest target (the highest `sl_target`, the shortest
//! `sl_threshold`), and its members in those states.
//!
//! Pure like the rest of the crate: the views are read from a [`SiteProcessor`] the caller
//! advanced to its own instant.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use vigie_core::views::{AdvisorsByState, HandleIndicators};
use vigie_core::{QueueConfig, QueueView, SiteProcessor, SiteView, TeamView, Window};

use crate::{Model, Target, Traffic, evaluate, required_advisors};

/// Contacts handled over the trailing 30 minutes from which their AHT is used: below, a mean
/// of so few handle times (coefficient of variation about 1 each) is too noisy.
pub const MIN_HANDLED_30M: u64 = 30;

/// Contacts handled today from which today's AHT is used when the last 30 minutes have too
/// few; below, the configured `aht_target` is a better guess.
pub const MIN_HANDLED_TODAY: u64 = 10;

/// The shorter trailing window whose arrival rate is staffed for.
pub const LAST_15M: Duration = Duration::from_secs(15 * 60);
/// The longer trailing window, also that of the AHT.
pub const LAST_30M: Duration = Duration::from_secs(30 * 60);

/// Where the AHT of an estimate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AhtSource {
    /// The contacts handled over the trailing 30 minutes (at least [`MIN_HANDLED_30M`]).
    Last30m,
    /// The contacts handled today (at least [`MIN_HANDLED_TODAY`]).
    Today,
    /// The configured `aht_target` (for a team, the mean of its queues' targets).
    Target,
}

/// What an estimate is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// Contacts offered over the trailing 15 minutes.
    pub offered_15m: u64,
    /// Contacts offered over the trailing 30 minutes.
    pub offered_30m: u64,
    /// The AHT in seconds, and where it comes from.
    pub aht: Option<(f64, AhtSource)>,
    /// The service-level target, a fraction.
    pub sl_target: f64,
    /// Its answer time, in seconds.
    pub sl_threshold: f64,
    /// Advisors available, ringing, talking, on hold or in wrap-up.
    pub staffed: u32,
    /// The queues the traffic comes from: 1 for a queue, the campaign's for a team.
    pub queues: usize,
}

impl Inputs {
    /// Contacts offered per hour over the trailing 15 minutes.
    pub fn rate_15m(&self) -> f64 {
        self.offered_15m as f64 * 4.0
    }

    /// Contacts offered per hour over the trailing 30 minutes.
    pub fn rate_30m(&self) -> f64 {
        self.offered_30m as f64 * 2.0
    }

    /// The volume staffed for and its interval: the window with the higher rate, the 30
    /// minutes on a tie.
    pub fn staffed_for(&self) -> (u64, Duration) {
        if self.offered_15m.saturating_mul(2) > self.offered_30m {
            (self.offered_15m, LAST_15M)
        } else {
            (self.offered_30m, LAST_30M)
        }
    }

    /// The offered load in Erlangs, when the AHT is known.
    pub fn load(&self) -> Option<f64> {
        let (aht, _) = self.aht?;
        let (volume, interval) = self.staffed_for();
        Some(volume as f64 * aht / interval.as_secs_f64())
    }
}

/// Why there is no requirement.
#[derive(Clone, Debug, PartialEq)]
pub enum Undefined {
    /// A team whose campaign has no queue.
    NoQueue,
    /// Nothing offered over the last 30 minutes: no rate to staff for.
    NoTraffic,
    /// Too few contacts handled and no `aht_target`.
    NoAht,
    /// A service-level target of 0: anything meets it.
    NoTarget,
    /// A service-level target of 100%, which no number of advisors meets under Erlang C.
    FullTarget,
    /// The mathematics refused the inputs (a load beyond its range, for instance).
    Model(String),
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undefined::NoQueue => f.write_str("the team's campaign has no queue"),
            Undefined::NoTraffic => f.write_str("no contact offered in the last 30 minutes"),
            Undefined::NoAht => write!(
                f,
                "no AHT yet: fewer than {MIN_HANDLED_TODAY} contacts handled today and no \
                 aht_target configured"
            ),
            Undefined::NoTarget => {
                f.write_str("the service-level target is 0: nothing to staff for")
            }
            Undefined::FullTarget => f.write_str(
                "a 100% service-level target cannot be met by any number of advisors under \
                 Erlang C",
            ),
            Undefined::Model(error) => write!(f, "the staffing model cannot answer: {error}"),
        }
    }
}

/// A requirement and what it means for the advisors staffed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Offered load, in Erlangs.
    pub load: f64,
    /// The fewest advisors meeting the target.
    pub required: u32,
    /// The service level Erlang C expects with the advisors staffed now.
    pub expected_service_level: f64,
}

/// The live staffing of a queue or a team.
#[derive(Clone, Debug, PartialEq)]
pub struct Staffing {
    /// What it is computed from.
    pub inputs: Inputs,
    /// The requirement, or why there is none.
    pub estimate: Result<Estimate, Undefined>,
}

impl Staffing {
    /// Estimates the requirement for `inputs`.
    pub fn new(inputs: Inputs) -> Staffing {
        let estimate = estimate(&inputs);
        Staffing { inputs, estimate }
    }

    /// Staffed minus required: negative when understaffed.
    pub fn gap(&self) -> Option<i64> {
        let estimate = self.estimate.as_ref().ok()?;
        Some(i64::from(self.inputs.staffed) - i64::from(estimate.required))
    }
}

fn model_error(error: impl fmt::Display) -> Undefined {
    Undefined::Model(error.to_string())
}

fn estimate(inputs: &Inputs) -> Result<Estimate, Undefined> {
    if inputs.queues == 0 {
        return Err(Undefined::NoQueue);
    }
    if inputs.offered_15m == 0 && inputs.offered_30m == 0 {
        return Err(Undefined::NoTraffic);
    }
    let (aht, _) = inputs.aht.ok_or(Undefined::NoAht)?;
    if inputs.sl_target.is_nan() || inputs.sl_target <= 0.0 {
        return Err(Undefined::NoTarget);
    }
    if inputs.sl_target >= 1.0 {
        return Err(Undefined::FullTarget);
    }
    let aht = Duration::try_from_secs_f64(aht).map_err(model_error)?;
    let threshold = Duration::try_from_secs_f64(inputs.sl_threshold).map_err(model_error)?;
    let (volume, interval) = inputs.staffed_for();
    // From the volume, so that 100 contacts in 30 minutes at 180 s is exactly 10 Erlangs.
    let traffic = Traffic::from_volume(volume as f64, interval, aht).map_err(model_error)?;
    let target = Target::new(threshold, Some(inputs.sl_target), None, None).map_err(model_error)?;
    let requirement = required_advisors(&traffic, &Model::ErlangC, &target).map_err(model_error)?;
    let staffed =
        evaluate(&traffic, &Model::ErlangC, inputs.staffed, threshold).map_err(model_error)?;
    Ok(Estimate {
        load: traffic.load_erlangs(),
        required: requirement.advisors,
        expected_service_level: staffed.service_level,
    })
}

/// Advisors on the phones now: available, ringing, talking, on hold or in wrap-up (an advisor
/// finishing a contact after asking for a pause shows, and counts, as handling it).
pub fn staffed(advisors: &AdvisorsByState) -> u32 {
    advisors.available + advisors.offered + advisors.talking + advisors.on_hold + advisors.acw
}

/// The AHT to staff with: the trailing 30 minutes' when at least [`MIN_HANDLED_30M`] contacts
/// were handled, else today's (asked for only then) when at least [`MIN_HANDLED_TODAY`], else
/// the target.
pub fn choose_aht(
    last_30m: &HandleIndicators,
    today: impl FnOnce() -> Option<HandleIndicators>,
    target: Option<f64>,
) -> Option<(f64, AhtSource)> {
    if last_30m.handled >= MIN_HANDLED_30M
        && let Some(aht) = last_30m.aht
    {
        return Some((aht, AhtSource::Last30m));
    }
    if let Some(today) = today()
        && today.handled >= MIN_HANDLED_TODAY
        && let Some(aht) = today.aht
    {
        return Some((aht, AhtSource::Today));
    }
    target.map(|aht| (aht, AhtSource::Target))
}

/// A queue's service-level and AHT targets as configured (the defaults for a queue only seen
/// in events), in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueTargets {
    /// The service-level target, a fraction.
    pub sl_target: f64,
    /// Its answer time, in seconds.
    pub sl_threshold: f64,
    /// The configured AHT target, in seconds.
    pub aht_target: Option<f64>,
}

impl QueueTargets {
    /// The targets of `queue` in `site`'s configuration, or the defaults of a queue not
    /// configured (those its views report).
    pub fn of(site: &SiteProcessor, queue: &str) -> QueueTargets {
        match site.site().queues.iter().find(|q| q.id == queue) {
            Some(config) => QueueTargets::from(config),
            None => QueueTargets::from(&QueueConfig::with_defaults(queue)),
        }
    }
}

impl From<&QueueConfig> for QueueTargets {
    fn from(config: &QueueConfig) -> QueueTargets {
        QueueTargets {
            sl_target: config.sl_target,
            sl_threshold: config.sl_threshold.0.as_secs_f64(),
            aht_target: config.aht_target.map(|aht| aht.0.as_secs_f64()),
        }
    }
}

/// The targets a team staffs for: the strictest of its queues' (the highest service-level
/// target, the shortest threshold) and the mean of their configured AHT targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PooledTargets {
    /// The highest `sl_target`; 0 without queues.
    pub sl_target: f64,
    /// The shortest `sl_threshold`, in seconds; 0 without queues.
    pub sl_threshold: f64,
    /// The mean of the configured `aht_target`s, in seconds.
    pub aht_target: Option<f64>,
}

impl PooledTargets {
    /// Pools the targets of a team's queues.
    pub fn of(queues: &[QueueTargets]) -> PooledTargets {
        let sl_target = queues.iter().map(|q| q.sl_target).fold(0.0, f64::max);
        let sl_threshold = queues
            .iter()
            .map(|q| q.sl_threshold)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let aht: Vec<f64> = queues.iter().filter_map(|q| q.aht_target).collect();
        let aht_target = (!aht.is_empty()).then(|| aht.iter().sum::<f64>() / aht.len() as f64);
        PooledTargets {
            sl_target,
            sl_threshold,
            aht_target,
        }
    }
}

/// A queue's inputs from its views over the trailing 15 and 30 minutes, and its handling today
/// (asked for only when the 30 minutes handled too few contacts).
pub fn queue_inputs(
    last_15m: &QueueView,
    last_30m: &QueueView,
    today: impl FnOnce() -> Option<HandleIndicators>,
) -> Inputs {
    Inputs {
        offered_15m: last_15m.indicators.flow.offered,
        offered_30m: last_30m.indicators.flow.offered,
        aht: choose_aht(&last_30m.indicators.handling, today, last_30m.aht_target),
        sl_target: last_30m.sl_target,
        sl_threshold: last_30m.sl_threshold,
        staffed: staffed(&last_30m.advisors),
        queues: 1,
    }
}

/// A team's inputs from its views over the trailing 15 and 30 minutes, its members' handling
/// today (asked for only when needed) and the targets of its queues.
pub fn team_inputs(
    site: &SiteProcessor,
    last_15m: &TeamView,
    last_30m: &TeamView,
    today: impl FnOnce() -> Option<HandleIndicators>,
) -> Inputs {
    let targets: Vec<QueueTargets> = last_30m
        .queues
        .iter()
        .map(|queue| QueueTargets::of(site, queue))
        .collect();
    let pooled = PooledTargets::of(&targets);
    Inputs {
        offered_15m: last_15m.indicators.flow.offered,
        offered_30m: last_30m.indicators.flow.offered,
        aht: choose_aht(
            &last_30m.indicators.advisors_indicators.handling,
            today,
            pooled.aht_target,
        ),
        sl_target: pooled.sl_target,
        sl_threshold: pooled.sl_threshold,
        staffed: staffed(&last_30m.indicators.advisors),
        queues: targets.len(),
    }
}

/// A view over `window`: the one at hand when it is over that window, else `read` it.
fn at<'v, V: Clone>(
    view: &'v V,
    its_window: Window,
    window: Window,
    read: impl FnOnce() -> Option<V>,
) -> Option<Cow<'v, V>> {
    if its_window == window {
        Some(Cow::Borrowed(view))
    } else {
        read().map(Cow::Owned)
    }
}

/// The staffing of the queue of `view` (a view over any window, reused when it is one of
/// those the estimate reads).
pub fn queue(site: &SiteProcessor, view: &QueueView) -> Option<Staffing> {
    let id = view.queue.as_str();
    let over = |window| at(view, view.window, window, || site.queue_view(id, window));
    let last_15m = over(Window::Last15m)?;
    let last_30m = over(Window::Last30m)?;
    let today = || Some(over(Window::Today)?.indicators.handling.clone());
    Some(Staffing::new(queue_inputs(&last_15m, &last_30m, today)))
}

/// The staffing of the team of `view` (a view over any window, reused when it is one of those
/// the estimate reads).
pub fn team(site: &SiteProcessor, view: &TeamView) -> Option<Staffing> {
    let id = view.team.as_str();
    let over = |window| at(view, view.window, window, || site.team_view(id, window));
    let last_15m = over(Window::Last15m)?;
    let last_30m = over(Window::Last30m)?;
    let today = || {
        Some(
            over(Window::Today)?
                .indicators
                .advisors_indicators
                .handling
                .clone(),
        )
    };
    Some(Staffing::new(team_inputs(
        site, &last_15m, &last_30m, today,
    )))
}

/// The staffing of every queue and team of a site view, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SiteStaffing {
    /// Per queue.
    pub queues: BTreeMap<String, Staffing>,
    /// Per team.
    pub teams: BTreeMap<String, Staffing>,
}

/// The staffing of every queue and team of `view` (a site view over any window, reused when
/// it is one of those the estimates read): one to three more site views in all, rather than up
/// to three core views per queue and per team.
pub fn site(site: &SiteProcessor, view: &SiteView) -> SiteStaffing {
    let over = |window| {
        if view.window == window {
            Cow::Borrowed(view)
        } else {
            Cow::Owned(site.site_view(window))
        }
    };
    let last_15m = over(Window::Last15m);
    let last_30m = over(Window::Last30m);
    // Today's handling, per queue and per team, read only if some estimate needs it.
    let today = OnceCell::new();
    let today = || {
        today.get_or_init(|| {
            let today = over(Window::Today);
            let queues: HashMap<String, HandleIndicators> = today
                .queues
                .iter()
                .map(|q| (q.queue.clone(), q.indicators.handling.clone()))
                .collect();
            let teams: HashMap<String, HandleIndicators> = today
                .teams
                .iter()
                .map(|t| {
                    (
                        t.team.clone(),
                        t.indicators.advisors_indicators.handling.clone(),
                    )
                })
                .collect();
            (queues, teams)
        })
    };
    let queues_15m: HashMap<&str, &QueueView> = last_15m
        .queues
        .iter()
        .map(|q| (q.queue.as_str(), q))
        .collect();
    let teams_15m: HashMap<&str, &TeamView> = last_15m
        .teams
        .iter()
        .map(|t| (t.team.as_str(), t))
        .collect();
    let mut staffing = SiteStaffing::default();
    for queue in &last_30m.queues {
        if let Some(last_15m) = queues_15m.get(queue.queue.as_str()) {
            let today = || today().0.get(&queue.queue).cloned();
            staffing.queues.insert(
                queue.queue.clone(),
                Staffing::new(queue_inputs(last_15m, queue, today)),
            );
        }
    }
    for team in &last_30m.teams {
        if let Some(last_15m) = teams_15m.get(team.team.as_str()) {
            let today = || today().1.get(&team.team).cloned();
            staffing.teams.insert(
                team.team.clone(),
                Staffing::new(team_inputs(site, last_15m, team, today)),
            );
        }
    }
    staffing
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

    use vigie_core::config::HumanDuration;
    use vigie_core::{
        AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
        Event, EventBody, ProcessingConfig, Processor, QueueConfig, SiteConfig, TeamConfig,
        Timestamp,
    };

    use super::*;

    fn inputs(offered_15m: u64, offered_30m: u64, staffed: u32) -> Inputs {
        Inputs {
            offered_15m,
            offered_30m,
            aht: Some((180.0, AhtSource::Last30m)),
            sl_target: 0.8,
            sl_threshold: 20.0,
            staffed,
            queues: 1,
        }
    }

    /// The Call Centre Helper worked example ("Erlang C Formula - Made Simple"): 100 calls in
    /// 30 minutes at 180 s are 10 Erlangs; 80% within 20 s needs 14 advisors (SL 88.84%; 13
    /// give 79.56%). `vigie staffing --volume 100 --interval 30m --aht 180s --sl-target 0.8
    /// --sl-threshold 20s` prints the same. With 11 advisors Erlang C waits with probability
    /// C(11, 10) = 0.6821 and answers within 20 s 1 - 0.6821 e^(-(11 - 10) 20/180) = 38.96%.
    #[test]
    fn the_textbook_case_needs_14_advisors() {
        // 50 in the last 15 minutes, 100 in the last 30: the same 200 an hour.
        let staffing = Staffing::new(inputs(50, 100, 11));
        assert_eq!(staffing.inputs.rate_15m(), 200.0);
        assert_eq!(staffing.inputs.rate_30m(), 200.0);
        assert_eq!(staffing.inputs.staffed_for(), (100, LAST_30M));
        let estimate = staffing.estimate.clone().unwrap();
        assert_eq!(estimate.load, 10.0);
        assert_eq!(estimate.required, 14);
        assert!((estimate.expected_service_level - 0.3896).abs() < 5e-5);
        assert_eq!(staffing.gap(), Some(-3));

        // Exactly staffed, and overstaffed.
        assert_eq!(Staffing::new(inputs(50, 100, 14)).gap(), Some(0));
        assert_eq!(Staffing::new(inputs(50, 100, 16)).gap(), Some(2));
        let thirteen = Staffing::new(inputs(50, 100, 13)).estimate.unwrap();
        assert!((thirteen.expected_service_level - 0.7956).abs() < 5e-5);
    }

    /// 60 contacts in the last 15 minutes (240 an hour) against 100 in 30 (200 an hour): the
    /// surge is staffed for, 12 Erlangs, which needs 16 advisors for 80/20 (86.88%; 15 give
    /// 77.13%; `vigie staffing --volume 60 --interval 15m --aht 180s --sl-target 0.8`).
    #[test]
    fn the_higher_of_the_two_rates_is_staffed_for() {
        let staffing = Staffing::new(inputs(60, 100, 12));
        assert_eq!(staffing.inputs.staffed_for(), (60, LAST_15M));
        assert_eq!(staffing.inputs.load(), Some(12.0));
        let estimate = staffing.estimate.clone().unwrap();
        assert_eq!((estimate.load, estimate.required), (12.0, 16));
        assert_eq!(staffing.gap(), Some(-4));
        // A lull: the last 30 minutes still count.
        let lull = Staffing::new(inputs(10, 100, 12));
        assert_eq!(lull.inputs.staffed_for(), (100, LAST_30M));
        assert_eq!(lull.estimate.unwrap().required, 14);
        // Traffic only in the older half of the 30 minutes is still traffic.
        assert_eq!(Staffing::new(inputs(0, 100, 12)).gap(), Some(-2));
    }

    #[test]
    fn undefined_estimates_say_why_and_keep_the_staffed_count() {
        let no_aht = Inputs {
            aht: None,
            ..inputs(5, 8, 3)
        };
        let cases = [
            (inputs(0, 0, 3), Undefined::NoTraffic, "no contact offered"),
            (no_aht, Undefined::NoAht, "no AHT yet"),
            (
                Inputs {
                    sl_target: 0.0,
                    ..inputs(5, 8, 3)
                },
                Undefined::NoTarget,
                "target is 0",
            ),
            (
                Inputs {
                    sl_target: 1.0,
                    ..inputs(5, 8, 3)
                },
                Undefined::FullTarget,
                "100%",
            ),
            (
                Inputs {
                    sl_target: f64::NAN,
                    ..inputs(5, 8, 3)
                },
                Undefined::NoTarget,
                "target is 0",
            ),
            (
                Inputs {
                    queues: 0,
                    ..inputs(0, 0, 3)
                },
                Undefined::NoQueue,
                "no queue",
            ),
        ];
        for (inputs, why, text) in cases {
            let staffing = Staffing::new(inputs.clone());
            assert_eq!(staffing.estimate, Err(why.clone()), "{inputs:?}");
            assert_eq!(staffing.gap(), None);
            assert_eq!(staffing.inputs.staffed, 3);
            assert!(why.to_string().contains(text), "{why}");
            assert_eq!(staffing.inputs.load().is_some(), inputs.aht.is_some());
        }
        // A billion contacts in 30 minutes: beyond the model's range, said so.
        let huge = Staffing::new(inputs(0, 1_000_000_000, 3));
        match &huge.estimate {
            Err(why @ Undefined::Model(_)) => {
                assert!(why.to_string().contains("load_erlangs"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Nobody staffed: Erlang C expects nothing answered in time.
        let empty = Staffing::new(inputs(50, 100, 0)).estimate.unwrap();
        assert_eq!(empty.expected_service_level, 0.0);
    }

    fn handling(handled: u64, aht: f64) -> HandleIndicators {
        HandleIndicators {
            handled,
            aht: (handled > 0).then_some(aht),
            avg_talk: None,
            avg_hold: None,
            avg_acw: None,
            held: 0,
            hold_rate: None,
        }
    }

    #[test]
    fn the_aht_comes_from_the_last_30_minutes_then_today_then_the_target() {
        let never = || -> Option<HandleIndicators> { panic!("today is not needed") };
        assert_eq!(
            choose_aht(&handling(30, 200.0), never, Some(300.0)),
            Some((200.0, AhtSource::Last30m))
        );
        assert_eq!(
            choose_aht(
                &handling(29, 200.0),
                || Some(handling(10, 250.0)),
                Some(300.0)
            ),
            Some((250.0, AhtSource::Today))
        );
        assert_eq!(
            choose_aht(
                &handling(2, 200.0),
                || Some(handling(9, 250.0)),
                Some(300.0)
            ),
            Some((300.0, AhtSource::Target))
        );
        assert_eq!(
            choose_aht(&handling(0, 0.0), || None, Some(300.0)),
            Some((300.0, AhtSource::Target))
        );
        assert_eq!(
            choose_aht(&handling(2, 200.0), || Some(handling(9, 250.0)), None),
            None
        );
    }

    fn targets(sl_target: f64, sl_threshold: f64, aht: Option<f64>) -> QueueTargets {
        QueueTargets {
            sl_threshold,
            sl_target,
            aht_target: aht,
        }
    }

    #[test]
    fn a_team_staffs_for_the_strictest_target_of_its_queues() {
        let pooled = PooledTargets::of(&[
            targets(0.8, 20.0, Some(300.0)),
            targets(0.9, 30.0, None),
            targets(0.7, 15.0, Some(240.0)),
        ]);
        assert_eq!(
            pooled,
            PooledTargets {
                sl_target: 0.9,
                sl_threshold: 15.0,
                aht_target: Some(270.0),
            }
        );
        let none = PooledTargets::of(&[]);
        assert_eq!(
            (none.sl_target, none.sl_threshold, none.aht_target),
            (0.0, 0.0, None)
        );
    }

    /// 2026-03-02 09:00 UTC.
    const T0: i64 = 1_772_442_000_000;
    /// The instant of the views: 40 minutes later. The trailing 15 minutes start at
    /// T0 + 1,500 s, the trailing 30 at T0 + 600 s.
    const NOW: i64 = T0 + 2_400_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp(T0 + secs * 1000)
    }

    struct Feed {
        events: Vec<Event>,
    }

    impl Feed {
        fn push(&mut self, secs: i64, body: EventBody) {
            self.events.push(Event {
                id: format!("e{}", self.events.len()),
                time: at(secs),
                site: "s".to_owned(),
                body,
            });
        }

        fn contact(
            &mut self,
            secs: i64,
            id: &str,
            kind: ContactEventKind,
            queue: &str,
            advisor: Option<&str>,
        ) {
            self.push(
                secs,
                EventBody::Contact(ContactEvent {
                    contact: id.to_owned(),
                    kind,
                    queue: Some(queue.to_owned()),
                    channel: Some(Channel::Voice),
                    advisor: advisor.map(str::to_owned),
                }),
            );
        }

        fn advisor(&mut self, secs: i64, id: &str, kind: AdvisorEventKind) {
            self.push(
                secs,
                EventBody::Advisor(AdvisorEvent {
                    advisor: id.to_owned(),
                    kind,
                }),
            );
        }
    }

    /// Queue q1 (80/20, AHT target 240 s) is served by teams t (a1, a2, a3) and u (b1); q2
    /// (90/30, no AHT target) by t alone. At NOW: a1 talks with a q1 contact, a2 is available
    /// after handling one q2 contact in 300 s, a3 is in pause, b1 is available.
    fn small_site() -> Processor {
        let mut site = SiteConfig::with_defaults("s");
        let mut q1 = QueueConfig::with_defaults("q1");
        q1.aht_target = Some(HumanDuration::secs(240));
        let mut q2 = QueueConfig::with_defaults("q2");
        q2.sl_target = 0.9;
        q2.sl_threshold = HumanDuration::secs(30);
        site.queues = vec![q1, q2];
        let team = |id: &str, advisors: &[&str], queues: &[&str]| TeamConfig {
            id: id.to_owned(),
            name: None,
            advisors: advisors.iter().map(|a| a.to_string()).collect(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            sl_variant: None,
        };
        site.teams = vec![
            team("t", &["a1", "a2", "a3"], &["q1", "q2"]),
            team("u", &["b1"], &["q1"]),
        ];
        let mut feed = Feed { events: Vec::new() };
        for advisor in ["a1", "a2", "a3", "b1"] {
            let login = AdvisorEventKind::Login {
                team: None,
                name: None,
            };
            feed.advisor(0, advisor, login);
        }
        let pause = AdvisorStatus::Pause {
            reason: "break".to_owned(),
        };
        feed.advisor(1_000, "a3", AdvisorEventKind::State(pause));
        // q1: 6 contacts in the older half of the 30 minutes, 4 in the last 15 (they wait).
        for (i, secs) in [700, 800, 900, 1_000, 1_100, 1_200].into_iter().enumerate() {
            let id = format!("q1-old-{i}");
            feed.contact(secs, &id, ContactEventKind::Queued, "q1", None);
            feed.contact(secs + 5, &id, ContactEventKind::Abandoned, "q1", None);
        }
        for (i, secs) in [1_600, 1_800, 2_000, 2_200].into_iter().enumerate() {
            feed.contact(
                secs,
                &format!("q1-new-{i}"),
                ContactEventKind::Queued,
                "q1",
                None,
            );
        }
        feed.contact(
            2_100,
            "q1-new-0",
            ContactEventKind::Answered,
            "q1",
            Some("a1"),
        );
        // q2: 2 in the older half, 6 in the last 15; a2 handles the first in 300 s.
        for (i, secs) in [650, 1_400, 1_550, 1_600, 1_700, 1_900, 2_000, 2_300]
            .into_iter()
            .enumerate()
        {
            feed.contact(
                secs,
                &format!("q2-{i}"),
                ContactEventKind::Queued,
                "q2",
                None,
            );
        }
        feed.contact(700, "q2-0", ContactEventKind::Answered, "q2", Some("a2"));
        feed.contact(900, "q2-0", ContactEventKind::Ended, "q2", Some("a2"));
        feed.contact(
            1_000,
            "q2-0",
            ContactEventKind::Completed {
                disposition: None,
                resolved: None,
            },
            "q2",
            Some("a2"),
        );
        feed.events.sort_by_key(|e| e.time);
        let mut processor = Processor::new(vec![site], ProcessingConfig::default());
        for event in &feed.events {
            processor.apply(event);
        }
        processor.advance_to(Timestamp(NOW));
        processor
    }

    fn erlang_c_required(
        volume: f64,
        interval: Duration,
        aht: f64,
        target: f64,
        threshold: u64,
    ) -> u32 {
        let traffic = Traffic::from_volume(volume, interval, Duration::from_secs_f64(aht)).unwrap();
        let target = Target::new(Duration::from_secs(threshold), Some(target), None, None).unwrap();
        required_advisors(&traffic, &Model::ErlangC, &target)
            .unwrap()
            .advisors
    }

    #[test]
    fn queues_and_teams_of_a_small_site() {
        let processor = small_site();
        let site = processor.site("s").unwrap();
        let q1 = queue(site, &site.queue_view("q1", Window::Today).unwrap()).unwrap();
        assert_eq!(
            q1.inputs,
            Inputs {
                offered_15m: 4,
                offered_30m: 10,
                aht: Some((240.0, AhtSource::Target)),
                sl_target: 0.8,
                sl_threshold: 20.0,
                // a1 talking, a2 available (team t), b1 available (team u); a3 in pause.
                staffed: 3,
                queues: 1,
            }
        );
        // 20 an hour over 30 minutes beats 16 over 15: 10 x 240 / 1800 = 4/3 E. By hand, with
        // 3 advisors: B(3) = 0.1092, C = 3 B / (3 - a (1 - B)) = 0.1808, and 80/20 is met:
        // 1 - 0.1808 e^(-(3 - 4/3) 20/240) = 84.3%; with 2, C = 0.5333 and 1 - 0.5333
        // e^(-(2 - 4/3) 20/240) = 49.5%.
        let estimate = q1.estimate.clone().unwrap();
        assert_eq!(
            estimate.required,
            erlang_c_required(10.0, LAST_30M, 240.0, 0.8, 20)
        );
        assert_eq!(estimate.required, 3);
        assert!((estimate.expected_service_level - 0.843).abs() < 5e-4);
        assert_eq!(q1.gap(), Some(0));

        // q2 handled one contact today and has no AHT target: no estimate.
        let q2 = queue(site, &site.queue_view("q2", Window::Last15m).unwrap()).unwrap();
        assert_eq!((q2.inputs.offered_15m, q2.inputs.offered_30m), (6, 8));
        assert_eq!(q2.inputs.staffed, 2);
        assert_eq!(q2.estimate, Err(Undefined::NoAht));

        // Team t pools q1 and q2: 10 offered in the last 15 minutes (40 an hour) against 18 in
        // 30 (36 an hour); the strictest target, 90% within 20 s; its members handled one
        // contact, so the AHT is its queues' mean target (q1's 240 s, q2 has none).
        let t = team(site, &site.team_view("t", Window::Last60m).unwrap()).unwrap();
        assert_eq!(
            t.inputs,
            Inputs {
                offered_15m: 10,
                offered_30m: 18,
                aht: Some((240.0, AhtSource::Target)),
                sl_target: 0.9,
                sl_threshold: 20.0,
                staffed: 2,
                queues: 2,
            }
        );
        assert_eq!(t.inputs.rate_15m(), 40.0);
        let required = erlang_c_required(10.0, LAST_15M, 240.0, 0.9, 20);
        assert_eq!(t.estimate.clone().unwrap().required, required);
        assert_eq!(t.gap(), Some(2 - i64::from(required)));
        let u = team(site, &site.team_view("u", Window::Today).unwrap()).unwrap();
        assert_eq!(
            (u.inputs.offered_30m, u.inputs.staffed, u.inputs.sl_target),
            (10, 1, 0.8)
        );
        assert_eq!(u.estimate.clone().unwrap().required, 3);
        assert_eq!(u.gap(), Some(-2));

        // A queue's targets are those its views report: configured, else the defaults.
        for id in ["q1", "q2"] {
            let view = site.queue_view(id, Window::Last30m).unwrap();
            assert_eq!(
                QueueTargets::of(site, id),
                QueueTargets {
                    sl_target: view.sl_target,
                    sl_threshold: view.sl_threshold,
                    aht_target: view.aht_target,
                }
            );
        }
        assert_eq!(
            QueueTargets::of(site, "q2"),
            QueueTargets {
                sl_target: 0.9,
                sl_threshold: 30.0,
                aht_target: None
            }
        );
        assert_eq!(
            QueueTargets::of(site, "elsewhere"),
            QueueTargets::from(&QueueConfig::with_defaults("elsewhere"))
        );
    }

    /// Whatever the window of the view that shows it, and whether it comes with the site view
    /// or alone, a queue's or a team's staffing is the same.
    #[test]
    fn every_view_carries_the_same_numbers() {
        let processor = small_site();
        let site = processor.site("s").unwrap();
        let reference = site.site_view(Window::Today);
        assert!(!reference.teams.is_empty());
        for window in Window::ALL {
            let whole = super::site(site, &site.site_view(window));
            assert_eq!(whole.queues.keys().collect::<Vec<_>>(), site.queue_ids());
            assert_eq!(whole.teams.keys().collect::<Vec<_>>(), site.team_ids());
            for (id, staffing) in &whole.queues {
                let alone = queue(site, &site.queue_view(id, window).unwrap()).unwrap();
                assert_eq!(&alone, staffing, "queue {id} over {window}");
            }
            for (id, staffing) in &whole.teams {
                let alone = team(site, &site.team_view(id, window).unwrap()).unwrap();
                assert_eq!(&alone, staffing, "team {id} over {window}");
            }
        }
        let view = site.queue_view("q1", Window::Today).unwrap();
        assert_eq!(
            queue(
                site,
                &QueueView {
                    queue: "nowhere".into(),
                    ..view
                }
            ),
            None
        );
        let view = site.team_view("t", Window::Today).unwrap();
        assert_eq!(
            team(
                site,
                &TeamView {
                    team: "nobody".into(),
                    ..view
                }
            ),
            None
        );
    }
}
