//! The final totals captured at interval boundaries, over simulated days delivered as real
//! feeds deliver them (duplicates, disorder within the allowed lateness), against what the
//! views say of the same day: taken as differences, the intervals add up to every `today`
//! figure, queue flows match the views' counts per interval, the totals do not depend on the
//! order events came in, and the totals read when an interval closes are already the final ones
//! unless an event before its end arrived afterwards.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigie_core::config::HumanDuration;
use vigie_core::totals::{DayTotals, FlowExtra, TimeTotals};
use vigie_core::views::{AdvisorCounts, IntervalServiceLevel, QueueCounts, QueueParts, WorkTimes};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, INTERVAL_LENGTH, Millis, Outcome, ProcessingConfig, SiteConfig,
    SiteProcessor, SiteView, SlVariant, Timestamp, Window, decode_json,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

/// What the views say at the last instant of the simulated day.
struct EndOfDay {
    view: SiteView,
    /// Each queue's service level by interval.
    intervals: BTreeMap<String, Vec<IntervalServiceLevel>>,
    /// Each queue's exact `today` counts.
    queue_counts: BTreeMap<String, QueueCounts>,
    /// Each advisor's exact `today` counts and times.
    advisor_counts: BTreeMap<String, (AdvisorCounts, WorkTimes)>,
    zone: chrono_tz::Tz,
}

/// One simulated day through a processor that captures its interval totals.
struct Run {
    /// The day's boundaries, from its first to its end.
    boundaries: Vec<Timestamp>,
    /// The totals captured at each boundary of the day.
    captured: Vec<DayTotals>,
    /// The totals read when the clock passed each boundary, and whether an event before the
    /// boundary was applied after that.
    at_close: Vec<(DayTotals, bool)>,
    end: EndOfDay,
}

/// The boundaries of the day of `time`: every 15 minutes from its start, and its end.
fn boundaries_of_day(site: &SiteConfig, time: Timestamp) -> Vec<Timestamp> {
    let day = site.calendar().day_of(time);
    let mut boundaries: Vec<Timestamp> = (1..)
        .map(|n| day.start + Millis(n * INTERVAL_LENGTH.0))
        .take_while(|b| *b < day.end)
        .collect();
    boundaries.push(day.end);
    boundaries
}

/// The new configuration of the afternoon: the first queue judged by other thresholds, the
/// first team reporting another variant and losing its first advisor to the second team.
fn afternoon(site: &SiteConfig) -> SiteConfig {
    let mut site = site.clone();
    if let Some(queue) = site.queues.first_mut() {
        queue.sl_threshold = HumanDuration::secs(12);
        queue.short_abandon = HumanDuration::secs(3);
    }
    if site.teams.len() >= 2 && !site.teams[0].advisors.is_empty() {
        let moved = site.teams[0].advisors.remove(0);
        site.teams[1].advisors.push(moved);
        site.teams[0].sl_variant = Some(SlVariant::Positive);
    }
    site
}

fn run_day(config: &SimConfig, feed_seed: u64, reconfigure: bool) -> Run {
    let simulation = Simulation::new(config).expect("valid simulation settings");
    let site = simulation.site_config();
    let boundaries = boundaries_of_day(&site, simulation.open_time());
    let day_start = site.calendar().day_of(simulation.open_time()).start;
    let day_end = *boundaries.last().expect("a day has an end");
    let feed = Disorder::new(
        simulation,
        feed_seed,
        config.duplicate_share,
        config.max_delay,
    );
    let mut p = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    p.enable_interval_totals();
    // In the middle of an interval, far from any capture (and from the end of lateness).
    let reconfigure_at = day_start + Millis::from_mins(13 * 60 + 7) + Millis::from_secs(30);
    let mut reconfigured = !reconfigure;
    let mut at_close: Vec<(DayTotals, bool)> = Vec::new();
    for event in feed {
        // The clock passes the boundaries before the first event after them.
        while let Some(&boundary) = boundaries.get(at_close.len())
            && event.time >= boundary
        {
            p.advance_to(boundary);
            let totals = p
                .totals_at(boundary)
                .expect("the horizon is before the boundary");
            at_close.push((totals, false));
        }
        if !reconfigured && event.time >= reconfigure_at {
            p.reconfigure(afternoon(&site))
                .expect("a valid configuration");
            reconfigured = true;
        }
        match p.apply(&event) {
            Outcome::Applied => {
                for (index, (_, late)) in at_close.iter_mut().enumerate().rev() {
                    if event.time >= boundaries[index] {
                        break;
                    }
                    *late = true;
                }
            }
            Outcome::Duplicate => {}
            Outcome::Rejected(rejection) => panic!("the simulated day is valid: {rejection}"),
        }
    }
    for &boundary in &boundaries[at_close.len()..boundaries.len() - 1] {
        p.advance_to(boundary);
        at_close.push((p.totals_at(boundary).expect("before the horizon"), false));
    }
    // The last instant of the day: the views' `today` is the whole day.
    p.advance_to(day_end - Millis(1));
    let end = end_of_day(&p);
    at_close.push((p.totals_at(day_end).expect("before the horizon"), false));

    // The next day's first contact moves the horizon past the day's end.
    let queue = &site.queues[0].id;
    let time = day_end + Millis::from_secs(60);
    let json = format!(
        r#"{{"id":"next-day","time":"{time}","site":"{}","type":"contact.queued","contact":"next-day","queue":"{queue}","channel":"voice"}}"#,
        site.id
    );
    let next_day = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("valid event");
    assert_eq!(p.apply(&next_day), Outcome::Applied);
    let captured: Vec<DayTotals> = p
        .take_interval_totals()
        .into_iter()
        .filter(|totals| totals.day_start == day_start)
        .collect();
    assert_eq!(p.stats().interval_totals_dropped, 0);
    Run {
        boundaries,
        captured,
        at_close,
        end,
    }
}

fn end_of_day(p: &SiteProcessor) -> EndOfDay {
    let view = p.site_view(Window::Today);
    let figures = p.figures_now();
    let both = QueueParts {
        flow: true,
        handling: true,
    };
    let mut intervals = BTreeMap::new();
    let mut queue_counts = BTreeMap::new();
    for queue in &view.queues {
        let id = &queue.queue;
        let today = p.queue_view(id, Window::Today).expect("a known queue");
        intervals.insert(id.clone(), today.service_level_by_interval);
        let parts = [
            both,
            QueueParts::default(),
            QueueParts::default(),
            QueueParts::default(),
        ];
        let [Some(figures), ..] = figures.queue(id, parts).expect("a known queue") else {
            panic!("today's counts were asked for");
        };
        queue_counts.insert(id.clone(), figures.counts);
    }
    let mut advisor_counts = BTreeMap::new();
    for (position, live) in p.advisor_lives().iter().enumerate() {
        let counts = figures
            .advisor_counts(position, Window::Today)
            .expect("a known advisor");
        let times = figures
            .advisor_work_times(position, Window::Today)
            .expect("a known advisor");
        advisor_counts.insert(live.advisor.to_owned(), (counts, times));
    }
    EndOfDay {
        view,
        intervals,
        queue_counts,
        advisor_counts,
        zone: p.site().calendar().zone(),
    }
}

fn minus(a: Millis, b: Millis) -> Millis {
    Millis(a.0 - b.0)
}

fn queue_counts_minus(a: &QueueCounts, b: &QueueCounts) -> QueueCounts {
    QueueCounts {
        offered: a.offered - b.offered,
        answered: a.answered - b.answered,
        abandoned: a.abandoned - b.abandoned,
        short_abandoned: a.short_abandoned - b.short_abandoned,
        answered_within_threshold: a.answered_within_threshold - b.answered_within_threshold,
        abandoned_within_threshold: a.abandoned_within_threshold - b.abandoned_within_threshold,
        wait_answered: minus(a.wait_answered, b.wait_answered),
        handled: a.handled - b.handled,
        talk: minus(a.talk, b.talk),
        hold: minus(a.hold, b.hold),
        acw: minus(a.acw, b.acw),
        held: a.held - b.held,
    }
}

/// Differences of counts that may go down (a team losing a member loses their figures), as
/// signed numbers, then added up: the sum over the day telescopes to the last totals.
#[derive(Clone, Debug, Default, PartialEq)]
struct Signed {
    counts: BTreeMap<&'static str, i64>,
    pauses: BTreeMap<String, (i64, i64)>,
}

impl Signed {
    fn add(&mut self, name: &'static str, value: i64) {
        *self.counts.entry(name).or_default() += value;
    }

    fn add_queue(&mut self, counts: &QueueCounts, sign: i64) {
        let fields: [(&'static str, i64); 12] = [
            ("offered", counts.offered as i64),
            ("answered", counts.answered as i64),
            ("abandoned", counts.abandoned as i64),
            ("short_abandoned", counts.short_abandoned as i64),
            ("answered_within", counts.answered_within_threshold as i64),
            ("abandoned_within", counts.abandoned_within_threshold as i64),
            ("wait_answered", counts.wait_answered.0),
            ("handled", counts.handled as i64),
            ("talk", counts.talk.0),
            ("hold", counts.hold.0),
            ("acw", counts.acw.0),
            ("held", counts.held as i64),
        ];
        for (name, value) in fields {
            self.add(name, sign * value);
        }
    }

    fn add_extra(&mut self, extra: &FlowExtra, sign: i64) {
        self.add("dequeued", sign * extra.dequeued as i64);
        self.add("wait_abandoned", sign * extra.wait_abandoned.0);
        self.add("transferred", sign * extra.transferred as i64);
    }

    fn add_advisor(&mut self, counts: &AdvisorCounts, sign: i64) {
        for (name, value) in [
            ("a.handled", counts.handled as i64),
            ("a.talk", counts.talk.0),
            ("a.hold", counts.hold.0),
            ("a.acw", counts.acw.0),
            ("a.held", counts.held as i64),
            ("a.transfers", counts.transfers as i64),
            ("a.missed_offers", counts.missed_offers as i64),
        ] {
            self.add(name, sign * value);
        }
    }

    fn add_times(&mut self, times: &TimeTotals, sign: i64) {
        self.add("logged_in", sign * times.logged_in.0);
        self.add("available", sign * times.available.0);
        self.add("handling", sign * times.handling.0);
        for pause in &times.pauses {
            let entry = self.pauses.entry(pause.reason.clone()).or_default();
            entry.0 += sign * pause.time.0;
            entry.1 += sign * pause.count as i64;
        }
    }

    fn queue_counts(&self) -> QueueCounts {
        let get = |name| self.get(name);
        let count = |name| u64::try_from(get(name)).expect("a day's count is not negative");
        QueueCounts {
            offered: count("offered"),
            answered: count("answered"),
            abandoned: count("abandoned"),
            short_abandoned: count("short_abandoned"),
            answered_within_threshold: count("answered_within"),
            abandoned_within_threshold: count("abandoned_within"),
            wait_answered: Millis(get("wait_answered")),
            handled: count("handled"),
            talk: Millis(get("talk")),
            hold: Millis(get("hold")),
            acw: Millis(get("acw")),
            held: count("held"),
        }
    }

    fn advisor_counts(&self) -> AdvisorCounts {
        let get = |name| self.get(name);
        let count = |name| u64::try_from(get(name)).expect("a day's count is not negative");
        AdvisorCounts {
            handled: count("a.handled"),
            talk: Millis(get("a.talk")),
            hold: Millis(get("a.hold")),
            acw: Millis(get("a.acw")),
            held: count("a.held"),
            transfers: count("a.transfers"),
            missed_offers: count("a.missed_offers"),
        }
    }

    fn get(&self, name: &str) -> i64 {
        self.counts.get(name).copied().unwrap_or_default()
    }

    /// Pauses as views list them: reason, seconds, count. A reason that adds up to nothing
    /// (a team's, whose only member with that reason moved to another team) is not listed.
    fn pauses(&self) -> Vec<(String, f64, u32)> {
        self.pauses
            .iter()
            .filter(|(_, sums)| **sums != (0, 0))
            .map(|(reason, (time, count))| {
                let count = u32::try_from(*count).expect("a day's count is not negative");
                (reason.clone(), Millis(*time).as_secs_f64(), count)
            })
            .collect()
    }
}

/// What every interval of the day adds, by scope (`queue:q1`, `team:t`, `advisor:a`, `site`),
/// summed over the day: each interval is its totals less the previous boundary's.
fn sum_of_differences(captured: &[DayTotals]) -> BTreeMap<String, Signed> {
    let mut sums: BTreeMap<String, Signed> = BTreeMap::new();
    let mut previous: Option<&DayTotals> = None;
    for totals in captured {
        for (sign, totals) in [(1, Some(totals)), (-1, previous)] {
            let Some(totals) = totals else { continue };
            for queue in &totals.queues {
                let sum = sums.entry(format!("queue:{}", queue.id)).or_default();
                sum.add_queue(&queue.counts, sign);
                sum.add_extra(&queue.extra, sign);
            }
            for advisor in &totals.advisors {
                let sum = sums.entry(format!("advisor:{}", advisor.id)).or_default();
                sum.add_advisor(&advisor.counts, sign);
                sum.add_times(&advisor.times, sign);
            }
            let groups = totals.teams.iter().map(|t| (format!("team:{}", t.id), t));
            for (key, group) in groups.chain([("site".to_owned(), &totals.site_totals)]) {
                let sum = sums.entry(key).or_default();
                sum.add_queue(&group.flow, sign);
                sum.add_extra(&group.extra, sign);
                sum.add_advisor(&group.advisors, sign);
                sum.add_times(&group.times, sign);
            }
        }
        previous = Some(totals);
    }
    sums
}

fn secs(millis: i64) -> f64 {
    Millis(millis).as_secs_f64()
}

/// Checks the run against the views of the end of the day.
fn check_day(run: &Run) {
    let Run {
        boundaries,
        captured,
        at_close,
        end,
    } = run;
    let ats: Vec<Timestamp> = captured.iter().map(|t| t.at).collect();
    assert_eq!(&ats, boundaries, "every boundary of the day, in order");
    let last = captured.last().expect("a day has boundaries");
    let view = &end.view;
    for advisor in &view.advisors {
        assert_eq!(
            advisor.state, "logged_out",
            "{}: the day's figures are read at its last millisecond, the totals at its end: they agree when nobody is logged in then",
            advisor.advisor
        );
    }
    let sums = sum_of_differences(captured);

    for (queue, last) in view.queues.iter().zip(&last.queues) {
        assert_eq!(queue.queue, last.id);
        let sum = &sums[&format!("queue:{}", queue.queue)];
        let counts = sum.queue_counts();
        assert_eq!(counts, end.queue_counts[&queue.queue], "{}", queue.queue);
        let flow = &queue.indicators.flow;
        assert_eq!(sum.get("dequeued"), flow.dequeued as i64);
        assert_eq!(sum.get("transferred"), queue.indicators.transferred as i64);
        let variant = last.variant;
        assert_eq!(variant, flow.service_level_variant);
        assert_eq!(last.sl_threshold, queue.sl_threshold);
        assert_eq!(last.sl_target, queue.sl_target);
        assert_eq!(counts.service_level(variant), flow.service_level);
        assert_eq!(counts.abandon_rate(), flow.abandon_rate);
        assert_eq!(counts.asa(), flow.asa);
        assert_eq!(counts.handling(), queue.indicators.handling);
    }
    assert_eq!(view.queues.len(), last.queues.len());

    for (advisor, last) in view.advisors.iter().zip(&last.advisors) {
        assert_eq!(advisor.advisor, last.id);
        assert_eq!(advisor.team, last.team);
        let sum = &sums[&format!("advisor:{}", advisor.advisor)];
        let (counts, work) = end.advisor_counts[&advisor.advisor];
        assert_eq!(sum.advisor_counts(), counts, "{}", advisor.advisor);
        assert_eq!(sum.get("available"), work.available.0);
        assert_eq!(sum.get("handling"), work.handling.0);
        let indicators = &advisor.indicators;
        assert_eq!(Some(secs(sum.get("logged_in"))), indicators.login_time);
        assert_eq!(secs(sum.get("available")), indicators.available_time);
        assert_eq!(secs(sum.get("handling")), indicators.handling_time);
        let pauses: Vec<(String, f64, u32)> = indicators
            .pauses
            .iter()
            .map(|p| (p.reason.clone(), p.time, p.count))
            .collect();
        assert_eq!(sum.pauses(), pauses, "{}", advisor.advisor);
        assert_eq!(sum.advisor_counts().handling(), indicators.handling);
        let first_login = last.first_login.map(|t| t.to_rfc3339_in(end.zone));
        assert_eq!(first_login, advisor.first_login);
    }
    assert_eq!(view.advisors.len(), last.advisors.len());

    let groups = view
        .teams
        .iter()
        .map(|team| {
            (
                format!("team:{}", team.team),
                team.members.clone(),
                team.queues.clone(),
                &team.indicators,
            )
        })
        .chain([(
            "site".to_owned(),
            view.advisors.iter().map(|a| a.advisor.clone()).collect(),
            view.queues.iter().map(|q| q.queue.clone()).collect(),
            &view.totals,
        )]);
    let last_groups: Vec<_> = last.teams.iter().chain([&last.site_totals]).collect();
    assert_eq!(view.teams.len() + 1, last_groups.len());
    for ((key, members, queues, indicators), last) in groups.zip(last_groups) {
        let sum = &sums[&key];
        // Flow over the campaign queues, each as its own counts.
        let mut flow = QueueCounts::default();
        for queue in &queues {
            flow.add(&end.queue_counts[queue]);
        }
        assert_eq!(sum.queue_counts(), flow, "{key}");
        let view_flow = &indicators.flow;
        assert_eq!(last.variant, view_flow.service_level_variant, "{key}");
        assert_eq!(flow.service_level(last.variant), view_flow.service_level);
        assert_eq!(flow.abandon_rate(), view_flow.abandon_rate);
        assert_eq!(flow.asa(), view_flow.asa);
        assert_eq!(sum.get("dequeued"), view_flow.dequeued as i64);
        // Handling and times over the members.
        let mut counts = AdvisorCounts::default();
        for member in &members {
            counts.add(&end.advisor_counts[member].0);
        }
        assert_eq!(sum.advisor_counts(), counts, "{key}");
        let advisors = &indicators.advisors_indicators;
        assert_eq!(counts.handling(), advisors.handling);
        assert_eq!(counts.transfers, advisors.transfers);
        assert_eq!(counts.missed_offers, advisors.missed_offers);
        assert_eq!(
            Some(secs(sum.get("logged_in"))),
            advisors.login_time,
            "{key}"
        );
        assert_eq!(secs(sum.get("available")), advisors.available_time, "{key}");
        assert_eq!(secs(sum.get("handling")), advisors.handling_time, "{key}");
        let pauses: Vec<(String, f64, u32)> = advisors
            .pauses
            .iter()
            .map(|p| (p.reason.clone(), p.time, p.count))
            .collect();
        assert_eq!(sum.pauses(), pauses, "{key}");
        let pause_time: i64 = sum.pauses.values().map(|(time, _)| time).sum();
        assert_eq!(Some(secs(pause_time)), advisors.pause_time, "{key}");
        assert_eq!(last.members, members.len() as u64, "{key}");
    }

    // Each interval's flow is what the queue's view counts in it.
    for queue in &view.queues {
        let intervals = &end.intervals[&queue.queue];
        assert_eq!(intervals.len(), captured.len(), "{}", queue.queue);
        let mut previous = QueueCounts::default();
        for (interval, totals) in intervals.iter().zip(captured) {
            let queue_totals = totals
                .queues
                .iter()
                .find(|q| q.id == queue.queue)
                .expect("configured queues are known all day");
            let delta = queue_counts_minus(&queue_totals.counts, &previous);
            previous = queue_totals.counts;
            assert_eq!(
                [
                    delta.answered,
                    delta.answered_within_threshold,
                    delta.abandoned,
                    delta.short_abandoned,
                    delta.abandoned_within_threshold,
                ],
                [
                    interval.answered,
                    interval.answered_within_threshold,
                    interval.abandoned,
                    interval.short_abandoned,
                    interval.abandoned_within_threshold,
                ]
                .map(u64::from),
                "{} from {}",
                queue.queue,
                interval.start
            );
            let variant = queue.indicators.flow.service_level_variant;
            assert_eq!(delta.service_level(variant), interval.service_level);
        }
    }

    // The totals read at each close are the final ones unless an event before the boundary
    // was applied after.
    assert_eq!(at_close.len(), captured.len());
    let mut compared = 0;
    for ((at_close, late), last) in at_close.iter().zip(captured) {
        if !late {
            assert_eq!(at_close, last, "at {}", last.at);
            compared += 1;
        }
    }
    assert!(
        compared * 2 > captured.len(),
        "{compared} of {} compared",
        captured.len()
    );
}

fn sim_config(
    seed: u64,
    advisors: usize,
    queues: usize,
    date: &str,
    whole_seconds: bool,
    max_delay_secs: i64,
) -> SimConfig {
    SimConfig {
        seed,
        advisors,
        queues,
        date: date.parse().expect("a valid date"),
        whole_seconds,
        duplicate_share: 0.03,
        max_delay: Millis::from_secs(max_delay_secs),
        ..SimConfig::default()
    }
}

/// The days: an ordinary one and both daylight-saving changes in Paris (92 and 100
/// intervals).
const DATES: [&str; 3] = ["2026-03-02", "2026-03-29", "2026-10-25"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn interval_totals_add_up_to_the_day_of_every_view(
        seed in 0u64..1_000,
        advisors in 12usize..30,
        queues in 2usize..6,
        date in 0usize..3,
        whole_seconds: bool,
        max_delay_secs in 1i64..=30,
        reconfigure: bool,
    ) {
        let config = sim_config(seed, advisors, queues, DATES[date], whole_seconds, max_delay_secs);
        check_day(&run_day(&config, seed + 1, reconfigure));
    }

    #[test]
    fn interval_totals_do_not_depend_on_the_order_within_the_lateness(
        seed in 0u64..1_000,
        date in 0usize..3,
        whole_seconds: bool,
        feed_seeds in (0u64..1_000, 0u64..1_000),
    ) {
        let config = sim_config(seed, 14, 3, DATES[date], whole_seconds, 30);
        let first = run_day(&config, feed_seeds.0, false);
        let second = run_day(&config, feed_seeds.1, false);
        prop_assert_eq!(first.captured, second.captured);
    }
}

#[test]
fn days_with_a_reconfiguration() {
    // At one-second resolution (exits exactly at boundaries are common).
    let config = sim_config(7, 24, 4, DATES[0], true, 30);
    check_day(&run_day(&config, 8, true));
    // A team loses the only member who took a pause reason.
    let config = sim_config(248, 28, 2, DATES[0], false, 1);
    check_day(&run_day(&config, 249, true));
}
