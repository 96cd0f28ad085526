//! Alerts (issue 5): what evaluating 10,000 rules costs while a large site takes 10,000 events
//! per second, and the time from an alert's condition holding for its `for` to the webhook
//! request.
//!
//! **Evaluation cost.** A simulated day of 4,000 advisors and 200 queues (seed 1, its feed with
//! 1% duplicates and events reordered within 5 s) is applied event by event to a
//! `SiteProcessor`, as if it came at 10,000 events per second: after every 1,000 events (100 ms
//! of that feed) the site's clock moves to the latest event and each rule set is evaluated, as
//! the engine does at its 100 ms tick; ten evaluations make one simulated second. The day is
//! applied without evaluation up to `open + 1h30` (alerts start from a busy site), then measured
//! for `SECONDS` simulated seconds (10,000 events each). Figures are CPU time of the measuring
//! thread (`CLOCK_THREAD_CPUTIME_ID`), so other work on the machine does not count; the
//! baseline of the same run is the CPU time to apply each simulated second's 10,000 events.
//! The rule sets: 10,000 rules ("centre"), the same plus one site-scoped windowed rule, and
//! plus site rules over the four windows, each measured in a pass of its own over the same
//! stretch of the day (one engine evaluates a site's rules; sets evaluated in turn would evict
//! each other's figures from the caches); then, in another pass, every tenth tick, each family
//! of the centre's rules evaluated alone, to see which dominate.
//!
//! **Latency to the webhook.** In this process, Vigie wired as `vigie serve` wires it: the
//! engine on the system clock with the alert engine of the site, the notifier of
//! `vigie-notify` with one `json` webhook route to a receiver (axum, 127.0.0.1, a port of its
//! own), and `vigie::alerting::deliver` handing notifications over. Ten probe teams of 20
//! advisors, each with the rule `pause_duration above 1s` with `for = "2s"`. Every 137 ms (so
//! that probes fall at every phase of the 100 ms tick) one probe advisor goes into pause at a
//! known event time T; the condition holds from T + 1 s, for 2 s at T + 3 s; latency = the
//! instant the receiver has read the POST of that alert's `fired` notification - (T + 3 s).
//! 200 probes per cell, each advisor once. Cells: an idle engine with the probe rules only,
//! then the engine taking 1,000 and 10,000 events/s (the simulated day, each event's time set
//! to the instant it is fed) with the 10,000 rules as well; Vigie is started afresh for each
//! cell and stopped after it. The latency is split in three: to the instant of the evaluation
//! that fired (the alert's `at`: the tick), from that instant to the engine handing the
//! notification over (the evaluation's own run; a relay between the engine and `deliver` notes
//! the instant), and from there to the POST read (`deliver`, the notifier, HTTP).
//!
//! `cargo run --release -p vigie-benches --bin alerts [SECONDS] [--no-latency] [--no-cost]`

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigie_alerts::{
    AlertEngine, Comparator, Metric, NotificationKind, RuleConfig, Scope, TargetKind, Threshold,
};
use vigie_core::config::HumanDuration;
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, ProcessingConfig, Processor, SiteConfig, SiteProcessor,
    TeamConfig, Timestamp, Window, decode_json,
};
use vigie_engine::{Engine, EngineConfig, EngineMetrics, system_clock};
use vigie_notify::{
    AlertPayload, Format, KindTag, Language, NatsNotifyConfig, Notifier, NotifyConfig,
    NotifyMetrics, RouteConfig, SecretUrl,
};
use vigie_sim::{SimConfig, Simulation};

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

/// The simulated site.
const ADVISORS: usize = 4_000;
const QUEUES: usize = 200;
/// The rate the feed is taken at, and the engine's tick: events between two evaluations.
const EVENTS_PER_SECOND: usize = 10_000;
const TICKS_PER_SECOND: usize = 10;
/// The rule count of the target.
const RULES: usize = 10_000;
/// Families of rules are also evaluated alone every this many ticks.
const FAMILY_EVERY: usize = 10;

/// Probe teams and advisors of the latency cells.
const PROBE_TEAMS: usize = 10;
const PROBES_PER_TEAM: usize = 20;
/// Between two probes: not a multiple of the tick, so probes fall at every phase of it.
const PROBE_EVERY: Duration = Duration::from_millis(137);
/// The probe rule: `pause_duration above PROBE_THRESHOLD` held for `PROBE_FOR`.
const PROBE_THRESHOLD_MS: i64 = 1_000;
const PROBE_FOR_MS: i64 = 2_000;
/// After a probe's pause starts, when its advisor becomes available again.
const PROBE_PAUSE: Duration = Duration::from_secs(6);
/// Load before the first probe of a cell.
const WARM_UP: Duration = Duration::from_secs(3);
/// After the last probe's expected instant, how long its POST is waited for.
const GRACE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(30);
    if !args.iter().any(|a| a == "--no-cost") {
        evaluation_cost(seconds);
    }
    if !args.iter().any(|a| a == "--no-latency") {
        latency();
    }
}

// ----------------------------------------------------------------------------------------
// Rules
// ----------------------------------------------------------------------------------------

fn secs(n: u64) -> Threshold {
    Threshold::Duration(HumanDuration::secs(n))
}

fn pct(p: f64) -> Threshold {
    Threshold::Percent(p)
}

fn num(n: f64) -> Threshold {
    Threshold::Number(n)
}

fn window_name(window: Window) -> &'static str {
    match window {
        Window::Today => "today",
        Window::Last15m => "15m",
        Window::Last30m => "30m",
        Window::Last60m => "60m",
    }
}

/// A rule without its site, id and scope.
#[derive(Clone, Debug)]
struct Template {
    id: String,
    metric: Metric,
    window: Option<Window>,
    comparator: Comparator,
    warning: Threshold,
    critical: Option<Threshold>,
    clear: Option<Threshold>,
    hold_for: u64,
    min_volume: u64,
    reason: Option<&'static str>,
}

fn template(
    metric: Metric,
    window: Option<Window>,
    comparator: Comparator,
    warning: Threshold,
    critical: Option<Threshold>,
) -> Template {
    let id = match window {
        Some(window) => format!("{}-{}", metric.as_str(), window_name(window)),
        None => metric.as_str().to_owned(),
    };
    Template {
        id: id.replace('_', "-"),
        metric,
        window,
        comparator,
        warning,
        critical,
        clear: None,
        hold_for: 0,
        min_volume: 0,
        reason: None,
    }
}

impl Template {
    fn hold(self, seconds: u64) -> Template {
        Template {
            hold_for: seconds,
            ..self
        }
    }

    fn volume(self, min_volume: u64) -> Template {
        Template { min_volume, ..self }
    }

    fn clear(self, clear: Threshold) -> Template {
        Template {
            clear: Some(clear),
            ..self
        }
    }

    fn reason(self, reason: &'static str) -> Template {
        Template {
            id: format!("{}-{reason}", self.id),
            reason: Some(reason),
            ..self
        }
    }

    fn rule(&self, site: &str, id: String, scope: Scope) -> RuleConfig {
        RuleConfig {
            site: site.to_owned(),
            name: format!("{} ({})", self.id, scope_name(&scope)),
            id,
            scope,
            metric: self.metric,
            window: self.window,
            reason: self.reason.map(str::to_owned),
            comparator: self.comparator,
            warning: Some(self.warning),
            critical: self.critical,
            clear: self.clear,
            hold_for: HumanDuration::secs(self.hold_for),
            renotify: None,
            min_interval: HumanDuration::secs(300),
            active_hours: None,
            active_days: None,
            min_volume: self.min_volume,
        }
    }
}

fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Site => "site".to_owned(),
        Scope::Queue(id) => format!("queue {id}"),
        Scope::Team(id) => format!("team {id}"),
        Scope::Advisor(id) => format!("advisor {id}"),
        Scope::AllAdvisorsOfTeam(id) => format!("advisors of {id}"),
        Scope::EveryQueue => "every queue".to_owned(),
        Scope::EveryTeam => "every team".to_owned(),
        Scope::EveryAdvisor => "every advisor".to_owned(),
    }
}

/// Queue rules: live figures, and service level, abandonment, ASA and AHT over windows.
fn queue_templates() -> Vec<Template> {
    use Comparator::{Above, Below};
    let mut templates = vec![
        template(Metric::LongestWait, None, Above, secs(60), Some(secs(180))),
        template(Metric::InQueue, None, Above, num(10.0), Some(num(25.0))),
        template(Metric::AvailableAdvisors, None, Below, num(1.0), None).hold(60),
        template(Metric::StaffingGap, None, Below, num(-1.0), Some(num(-3.0))).hold(120),
    ];
    for window in Window::ALL {
        let w = Some(window);
        templates.extend([
            template(Metric::ServiceLevel, w, Below, pct(80.0), Some(pct(60.0)))
                .hold(300)
                .volume(10),
            template(
                Metric::ServiceLevelGap,
                w,
                Below,
                num(0.0),
                Some(num(-0.10)),
            )
            .hold(300)
            .volume(10),
            template(Metric::AbandonRate, w, Above, pct(10.0), Some(pct(20.0)))
                .clear(pct(8.0))
                .hold(120)
                .volume(10),
            template(Metric::Asa, w, Above, secs(30), Some(secs(60))).volume(10),
        ]);
    }
    for window in [Window::Last30m, Window::Today] {
        let w = Some(window);
        templates.extend([
            template(Metric::Aht, w, Above, secs(600), Some(secs(900))).volume(10),
            template(Metric::AhtOverTarget, w, Above, num(1.2), Some(num(1.5))).volume(10),
        ]);
    }
    templates
}

/// Team rules.
fn team_templates() -> Vec<Template> {
    use Comparator::{Above, Below};
    let (w30, w60) = (Some(Window::Last30m), Some(Window::Last60m));
    vec![
        template(Metric::ServiceLevel, w30, Below, pct(80.0), Some(pct(60.0)))
            .hold(300)
            .volume(10),
        template(Metric::AbandonRate, w30, Above, pct(10.0), Some(pct(20.0)))
            .clear(pct(8.0))
            .hold(120)
            .volume(10),
        template(Metric::Occupancy, w60, Above, pct(95.0), Some(pct(98.0))).hold(600),
        template(Metric::MissedOffers, w60, Above, num(5.0), Some(num(10.0))),
        template(Metric::LongestWait, None, Above, secs(60), Some(secs(180))),
        template(Metric::AvailableAdvisors, None, Below, num(1.0), None).hold(60),
        template(Metric::StaffingGap, None, Below, num(-1.0), Some(num(-3.0))).hold(120),
        template(
            Metric::Aht,
            Some(Window::Today),
            Above,
            secs(600),
            Some(secs(900)),
        )
        .volume(10),
    ]
}

/// Advisor rules over the whole site: pauses (any, breaks, lunch), wrap-up, long contacts,
/// missed offers.
fn advisor_templates() -> Vec<Template> {
    use Comparator::Above;
    vec![
        template(
            Metric::PauseDuration,
            None,
            Above,
            secs(900),
            Some(secs(1800)),
        ),
        template(
            Metric::PauseDuration,
            None,
            Above,
            secs(900),
            Some(secs(1200)),
        )
        .reason("break"),
        template(
            Metric::PauseDuration,
            None,
            Above,
            secs(3600),
            Some(secs(4500)),
        )
        .reason("lunch"),
        template(Metric::AcwDuration, None, Above, secs(180), Some(secs(300))),
        template(
            Metric::ContactDuration,
            None,
            Above,
            secs(1200),
            Some(secs(2400)),
        ),
        template(
            Metric::MissedOffers,
            Some(Window::Last60m),
            Above,
            num(2.0),
            Some(num(4.0)),
        ),
    ]
}

/// Advisor rules a team sets for its own advisors (tighter than the site's).
fn team_advisor_templates() -> Vec<Template> {
    use Comparator::Above;
    vec![
        template(
            Metric::PauseDuration,
            None,
            Above,
            secs(720),
            Some(secs(1500)),
        ),
        template(
            Metric::PauseDuration,
            None,
            Above,
            secs(720),
            Some(secs(1080)),
        )
        .reason("break"),
        template(Metric::AcwDuration, None, Above, secs(150), Some(secs(240))),
        template(
            Metric::ContactDuration,
            None,
            Above,
            secs(900),
            Some(secs(1800)),
        ),
        template(
            Metric::MissedOffers,
            Some(Window::Last60m),
            Above,
            num(1.0),
            Some(num(3.0)),
        ),
    ]
}

/// The 10,000 rules of the centre: a pack over every queue, team and advisor, the same queue
/// and team rules set per queue and per team, each team's rules for its advisors, and
/// individual watches of advisors (AHT today) up to 10,000.
fn centre_rules(site: &SiteConfig) -> Vec<RuleConfig> {
    let id = site.id.as_str();
    let mut rules = Vec::new();
    for t in queue_templates() {
        rules.push(t.rule(id, format!("all-q-{}", t.id), Scope::EveryQueue));
    }
    for t in team_templates() {
        rules.push(t.rule(id, format!("all-t-{}", t.id), Scope::EveryTeam));
    }
    for t in advisor_templates() {
        rules.push(t.rule(id, format!("all-a-{}", t.id), Scope::EveryAdvisor));
    }
    for queue in &site.queues {
        for t in queue_templates() {
            let scope = Scope::Queue(queue.id.clone());
            rules.push(t.rule(id, format!("q-{}-{}", queue.id, t.id), scope));
        }
    }
    for team in &site.teams {
        for t in team_templates() {
            let scope = Scope::Team(team.id.clone());
            rules.push(t.rule(id, format!("t-{}-{}", team.id, t.id), scope));
        }
    }
    for team in &site.teams {
        for t in team_advisor_templates() {
            let scope = Scope::AllAdvisorsOfTeam(team.id.clone());
            rules.push(t.rule(id, format!("ta-{}-{}", team.id, t.id), scope));
        }
    }
    let watch = template(
        Metric::Aht,
        Some(Window::Today),
        Comparator::Above,
        secs(720),
        Some(secs(1080)),
    )
    .volume(5);
    let advisors = site.teams.iter().flat_map(|team| &team.advisors);
    for advisor in advisors {
        if rules.len() >= RULES {
            break;
        }
        let scope = Scope::Advisor(advisor.clone());
        rules.push(watch.rule(id, format!("a-{advisor}-{}", watch.id), scope));
    }
    rules.truncate(RULES);
    rules
}

/// Site rules: service level below 80% over `windows`.
fn site_rules(site: &SiteConfig, windows: &[Window]) -> Vec<RuleConfig> {
    windows
        .iter()
        .map(|&window| {
            let t = template(
                Metric::ServiceLevel,
                Some(window),
                Comparator::Below,
                pct(80.0),
                Some(pct(60.0)),
            )
            .hold(300)
            .volume(10);
            t.rule(&site.id, format!("site-{}", t.id), Scope::Site)
        })
        .collect()
}

/// What a rule costs to evaluate, roughly: which views it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    QueueLive,
    QueueWindowed,
    Team,
    AdvisorState,
    AdvisorWindowed,
    TeamAdvisors,
    Site,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::QueueLive,
        Family::QueueWindowed,
        Family::Team,
        Family::AdvisorState,
        Family::AdvisorWindowed,
        Family::TeamAdvisors,
        Family::Site,
    ];

    fn of(rule: &RuleConfig) -> Family {
        if matches!(rule.scope, Scope::AllAdvisorsOfTeam(_)) {
            return Family::TeamAdvisors;
        }
        match (rule.scope.target_kind(), rule.metric.windowed()) {
            (TargetKind::Site, _) => Family::Site,
            (TargetKind::Queue, false) => Family::QueueLive,
            (TargetKind::Queue, true) => Family::QueueWindowed,
            (TargetKind::Team, _) => Family::Team,
            (TargetKind::Advisor, false) => Family::AdvisorState,
            (TargetKind::Advisor, true) => Family::AdvisorWindowed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Family::QueueLive => {
                "queue, live (longest wait, in queue, available, staffing gap: reads 15m/30m/today)"
            }
            Family::QueueWindowed => {
                "queue, windowed (service level, gap, abandonment, ASA, AHT over 4 windows)"
            }
            Family::Team => "team (live and windowed)",
            Family::AdvisorState => {
                "advisor, every advisor: state durations (pause, break, lunch, ACW, contact duration)"
            }
            Family::AdvisorWindowed => {
                "advisor, every advisor and named: windowed (missed offers 60m, AHT today)"
            }
            Family::TeamAdvisors => {
                "advisors of a team, per team (pause, break, ACW, contact duration, missed offers 60m)"
            }
            Family::Site => "site, service level over the 4 windows",
        }
    }
}

/// Rule x target pairs: one per rule and target its scope covers.
fn pairs(rules: &[RuleConfig], site: &SiteConfig, advisors: usize) -> usize {
    let team_size = |id: &str| {
        site.teams
            .iter()
            .find(|t| t.id == id)
            .map_or(0, |t| t.advisors.len())
    };
    rules
        .iter()
        .map(|rule| match &rule.scope {
            Scope::Site | Scope::Queue(_) | Scope::Team(_) | Scope::Advisor(_) => 1,
            Scope::AllAdvisorsOfTeam(team) => team_size(team),
            Scope::EveryQueue => site.queues.len(),
            Scope::EveryTeam => site.teams.len(),
            Scope::EveryAdvisor => advisors,
        })
        .sum()
}

// ----------------------------------------------------------------------------------------
// Evaluation cost
// ----------------------------------------------------------------------------------------

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Microseconds, from 1 µs to 10 minutes, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("a histogram")
}

/// Evaluations of one rule set.
struct Meter {
    name: String,
    rules: usize,
    pairs: usize,
    engine: AlertEngine,
    /// CPU per evaluation, µs.
    per_evaluation: Histogram<u64>,
    /// CPU per simulated second (its evaluations), µs.
    per_second: Histogram<u64>,
    this_second: Duration,
    total: Duration,
    notifications: usize,
}

impl Meter {
    fn new(name: String, rules: &[RuleConfig], site: &SiteConfig, advisors: usize) -> Meter {
        Meter {
            name,
            rules: rules.len(),
            pairs: pairs(rules, site, advisors),
            engine: AlertEngine::new(&site.id, rules).expect("valid rules"),
            per_evaluation: histogram(),
            per_second: histogram(),
            this_second: Duration::ZERO,
            total: Duration::ZERO,
            notifications: 0,
        }
    }

    fn evaluate(&mut self, site: &SiteProcessor) {
        let now = site.now();
        let started = thread_cpu();
        let evaluation = self.engine.evaluate(site, now);
        let notifications = evaluation.notifications.len();
        drop(evaluation);
        let spent = thread_cpu().saturating_sub(started);
        self.notifications += notifications;
        self.per_evaluation
            .saturating_record(spent.as_micros() as u64);
        self.this_second += spent;
        self.total += spent;
    }

    fn end_second(&mut self) {
        self.per_second
            .saturating_record(self.this_second.as_micros() as u64);
        self.this_second = Duration::ZERO;
    }
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

fn local(at: Timestamp, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(at.0)
        .map(|t| t.with_timezone(&zone).format("%H:%M").to_string())
        .unwrap_or_default()
}

/// One measured stretch of the day: what applying its events cost, and where it lay.
struct Pass {
    apply_per_second: Histogram<u64>,
    apply_total: Duration,
    applied: usize,
    measured_seconds: usize,
    first: Timestamp,
    last: Timestamp,
    wall: Duration,
    /// Where the measured stretch starts and ends in the day's events.
    measured: std::ops::Range<usize>,
    stats: vigie_core::ProcessorStats,
}

/// Applies the day to a fresh processor up to `warm_until`, then `seconds` simulated seconds
/// of it, evaluating `meters` at every tick and `families` every [`FAMILY_EVERY`]th, as one
/// engine evaluates its rule set between the batches it applies.
fn pass(
    events: &[Event],
    site: &SiteConfig,
    warm_until: Timestamp,
    seconds: usize,
    meters: &mut [Meter],
    families: &mut [Meter],
) -> Pass {
    let mut processor = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    let mut at = 0;
    while at < events.len() && events[at].time < warm_until {
        processor.apply(&events[at]);
        at += 1;
    }
    processor.advance_to(warm_until);
    let measured_from = at;
    let first = processor.now();
    let per_tick = EVENTS_PER_SECOND / TICKS_PER_SECOND;
    let mut apply_per_second = histogram();
    let mut apply_total = Duration::ZERO;
    let mut applied = 0;
    let mut measured_seconds = 0;
    let wall = Instant::now();
    'seconds: for _ in 0..seconds {
        let mut apply = Duration::ZERO;
        for tick in 0..TICKS_PER_SECOND {
            let end = (at + per_tick).min(events.len());
            if end == at {
                break 'seconds;
            }
            let started = thread_cpu();
            let mut latest = processor.now();
            for event in &events[at..end] {
                processor.apply(event);
                latest = latest.max(event.time);
            }
            apply += thread_cpu().saturating_sub(started);
            applied += end - at;
            at = end;
            processor.advance_to(latest);
            for meter in meters.iter_mut() {
                meter.evaluate(&processor);
            }
            if (measured_seconds * TICKS_PER_SECOND + tick).is_multiple_of(FAMILY_EVERY) {
                for meter in families.iter_mut() {
                    meter.evaluate(&processor);
                }
            }
        }
        apply_per_second.saturating_record(apply.as_micros() as u64);
        apply_total += apply;
        for meter in meters.iter_mut() {
            meter.end_second();
        }
        measured_seconds += 1;
    }
    Pass {
        apply_per_second,
        apply_total,
        applied,
        measured_seconds,
        first,
        last: processor.now(),
        wall: wall.elapsed(),
        measured: measured_from..at,
        stats: processor.stats(),
    }
}

fn evaluation_cost(seconds: usize) {
    let config = SimConfig {
        advisors: ADVISORS,
        queues: QUEUES,
        seed: 1,
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).expect("valid simulation settings");
    let site = simulation.site_config();
    let zone = site.zone().unwrap_or(chrono_tz::UTC);
    let warm_until = Timestamp(simulation.open_time().0 + 90 * 60 * 1000);
    let generated: Vec<Event> = simulation.into_feed().collect();
    // Each event's strings next to it in memory, as a decoded batch lays them out.
    let events = generated.to_vec();
    drop(generated);
    let advisors: usize = site.teams.iter().map(|t| t.advisors.len()).sum();

    let centre = centre_rules(&site);
    let mut with_site = centre.clone();
    with_site.extend(site_rules(&site, &[Window::Last30m]));
    let mut with_sites = centre.clone();
    with_sites.extend(site_rules(&site, &Window::ALL));
    let mut meters = vec![
        Meter::new("centre: 10,000 rules".to_owned(), &centre, &site, advisors),
        Meter::new(
            "centre + 1 site rule (service level 30m)".to_owned(),
            &with_site,
            &site,
            advisors,
        ),
        Meter::new(
            "centre + 4 site rules (service level, each window)".to_owned(),
            &with_sites,
            &site,
            advisors,
        ),
    ];
    let mut families: Vec<Meter> = Family::ALL
        .iter()
        .map(|&family| {
            let rules: Vec<RuleConfig> = with_sites
                .iter()
                .filter(|r| Family::of(r) == family)
                .cloned()
                .collect();
            Meter::new(family.label().to_owned(), &rules, &site, advisors)
        })
        .collect();

    println!(
        "site {}: {} advisors on {} teams, {} queues; {} events in the day",
        site.id,
        advisors,
        site.teams.len(),
        site.queues.len(),
        events.len()
    );
    for meter in &meters {
        println!(
            "  {}: {} rules, {} rule x target pairs",
            meter.name, meter.rules, meter.pairs
        );
    }

    // Each rule set in a pass of its own over the same stretch of the day, as in service,
    // where one engine evaluates the site's rules: evaluating several sets in turn would leave
    // each one's figures and alerts out of the processor's caches for the next.
    let mut passes = Vec::new();
    for meter in &mut meters {
        passes.push(pass(
            &events,
            &site,
            warm_until,
            seconds,
            std::slice::from_mut(meter),
            &mut [],
        ));
    }
    // The families, each every tenth tick, in a pass of their own.
    pass(&events, &site, warm_until, seconds, &mut [], &mut families);
    let run = &passes[0];
    println!(
        "processor: {} applied, {} duplicates, {} rejected",
        run.stats.applied,
        run.stats.duplicates,
        run.stats.rejected.values().sum::<u64>()
    );

    // The same events applied again by a fresh processor, without evaluations in between
    // (caches and allocator left to the processor alone).
    let mut alone = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    for event in &events[..run.measured.start] {
        alone.apply(event);
    }
    let mut alone_per_second = histogram();
    let mut alone_total = Duration::ZERO;
    for second in events[run.measured.clone()].chunks(EVENTS_PER_SECOND) {
        let started = thread_cpu();
        for event in second {
            alone.apply(event);
        }
        let spent = thread_cpu().saturating_sub(started);
        alone_per_second.saturating_record(spent.as_micros() as u64);
        alone_total += spent;
    }
    drop(alone);

    let measured_seconds = run.measured_seconds;
    println!(
        "measured {measured_seconds} simulated seconds ({} events, {} to {} local time of the day) per pass, {:.1} s of wall time for the first",
        run.applied,
        local(run.first, zone),
        local(run.last, zone),
        run.wall.as_secs_f64()
    );

    println!();
    println!(
        "| Work per simulated second (10,000 events, 10 ticks) | Rules | Rule x target pairs | CPU per evaluation p50 / p99 / max | CPU per simulated second p50 / p99 / max | Share of one core (mean) | ≤ 10% |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| baseline: applying the second's 10,000 events (between the evaluations of the first pass) | | | | {} / {} / {} | {:.1}% | |",
        ms(run.apply_per_second.value_at_quantile(0.5)),
        ms(run.apply_per_second.value_at_quantile(0.99)),
        ms(run.apply_per_second.max()),
        share(run.apply_total, measured_seconds),
    );
    println!(
        "| baseline: the same events applied again without evaluations in between | | | | {} / {} / {} | {:.1}% | |",
        ms(alone_per_second.value_at_quantile(0.5)),
        ms(alone_per_second.value_at_quantile(0.99)),
        ms(alone_per_second.max()),
        share(alone_total, measured_seconds),
    );
    for meter in &meters {
        let share = share(meter.total, measured_seconds);
        println!(
            "| evaluating {} | {} | {} | {} / {} / {} | {} / {} / {} | {:.1}% | {} |",
            meter.name,
            meter.rules,
            meter.pairs,
            ms(meter.per_evaluation.value_at_quantile(0.5)),
            ms(meter.per_evaluation.value_at_quantile(0.99)),
            ms(meter.per_evaluation.max()),
            ms(meter.per_second.value_at_quantile(0.5)),
            ms(meter.per_second.value_at_quantile(0.99)),
            ms(meter.per_second.max()),
            share,
            if share <= 10.0 { "met" } else { "not met" },
        );
    }
    println!();
    println!(
        "Families of the rules evaluated alone (every {FAMILY_EVERY}th tick of a pass of their own, {} evaluations each):",
        families.first().map_or(0, |m| m.per_evaluation.len())
    );
    println!();
    println!(
        "| Family | Rules | Rule x target pairs | CPU per evaluation p50 / p99 / max | Share of one core at 10 evaluations/s (mean) |"
    );
    println!("|---|---|---|---|---|");
    for meter in &families {
        let mean = meter.total.as_secs_f64() / meter.per_evaluation.len().max(1) as f64;
        println!(
            "| {} | {} | {} | {} / {} / {} | {:.1}% |",
            meter.name,
            meter.rules,
            meter.pairs,
            ms(meter.per_evaluation.value_at_quantile(0.5)),
            ms(meter.per_evaluation.value_at_quantile(0.99)),
            ms(meter.per_evaluation.max()),
            mean * TICKS_PER_SECOND as f64 * 100.0,
        );
    }
    println!();
    for meter in &meters {
        println!(
            "{}: {} notifications over the run, {} alerts of the day at the end",
            meter.name,
            meter.notifications,
            meter.engine.alerts().len()
        );
    }
    println!();
}

/// CPU time per simulated second, as a percentage of one core.
fn share(total: Duration, seconds: usize) -> f64 {
    total.as_secs_f64() / seconds.max(1) as f64 * 100.0
}

// ----------------------------------------------------------------------------------------
// Latency to the webhook
// ----------------------------------------------------------------------------------------

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A POST the receiver read.
#[derive(Debug)]
struct Received {
    payload: AlertPayload,
    /// When its body was read, µs since the epoch.
    at_us: i64,
}

async fn hook(State(tx): State<mpsc::UnboundedSender<Received>>, body: Bytes) -> StatusCode {
    let at_us = now_micros();
    match serde_json::from_slice::<AlertPayload>(&body) {
        Ok(payload) => {
            let _ = tx.send(Received { payload, at_us });
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// The webhook receiver on 127.0.0.1; what it reads comes out of the receiver.
async fn receiver() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Received>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a free port on 127.0.0.1");
    let address = listener.local_addr().expect("a bound address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, rx, server)
}

fn probe_team(t: usize) -> String {
    format!("probe-{t}")
}

fn probe_advisor(k: usize) -> String {
    format!("probe-{}-{:02}", k % PROBE_TEAMS, k / PROBE_TEAMS)
}

fn probe_rules(site: &str) -> Vec<RuleConfig> {
    (0..PROBE_TEAMS)
        .map(|t| {
            template(
                Metric::PauseDuration,
                None,
                Comparator::Above,
                Threshold::Duration(HumanDuration(Duration::from_millis(
                    PROBE_THRESHOLD_MS as u64,
                ))),
                None,
            )
            .rule(
                site,
                format!("probe-pause-{t}"),
                Scope::AllAdvisorsOfTeam(probe_team(t)),
            )
        })
        .map(|rule| RuleConfig {
            hold_for: HumanDuration(Duration::from_millis(PROBE_FOR_MS as u64)),
            ..rule
        })
        .collect()
}

fn state_event(site: &str, id: &str, advisor: &str, time: i64, pause: bool) -> Event {
    let state = if pause {
        r#""state":"pause","reason":"probe""#
    } else {
        r#""state":"available""#
    };
    let time = chrono::DateTime::from_timestamp_millis(time)
        .expect("a time in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let json = format!(
        r#"{{"id":"{id}","type":"advisor.state","time":"{time}","site":"{site}","advisor":"{advisor}",{state}}}"#
    );
    decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("a valid event")
}

/// One latency cell's outcome.
struct Cell {
    name: String,
    rules: usize,
    probes: usize,
    /// µs, from condition start + `for` to the POST read.
    latency: Histogram<u64>,
    /// µs, from condition start + `for` to the instant of the evaluation that fired (its `at`).
    evaluation: Histogram<u64>,
    /// µs, from that instant to the engine handing the notification over.
    run: Histogram<u64>,
    /// µs, from the hand-over to the POST read.
    delivery: Histogram<u64>,
    load_sent: u64,
    load_seconds: f64,
    /// The engine's evaluations over the cell: count and mean time.
    evaluations: f64,
    evaluation_mean: f64,
    batches: f64,
    apply_mean: f64,
    delivered: u64,
}

fn latency() {
    let zone: chrono_tz::Tz = "Europe/Paris".parse().expect("a time zone");
    let config = SimConfig {
        advisors: ADVISORS,
        queues: QUEUES,
        date: chrono::Utc::now().with_timezone(&zone).date_naive(),
        duplicate_share: 0.0,
        ..SimConfig::default()
    };
    let mut site = Simulation::new(&config)
        .expect("valid simulation settings")
        .site_config();
    let centre = centre_rules(&site);
    for t in 0..PROBE_TEAMS {
        site.teams.push(TeamConfig {
            id: probe_team(t),
            name: Some(format!("Probe team {t}")),
            advisors: (0..PROBES_PER_TEAM)
                .map(|i| probe_advisor(i * PROBE_TEAMS + t))
                .collect(),
            queues: Vec::new(),
            sl_variant: None,
        });
    }
    let probes = probe_rules(&site.id);
    let mut loaded = centre.clone();
    loaded.extend(probes.iter().cloned());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigie")
        .enable_all()
        .build()
        .expect("a runtime");
    let harness = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("harness")
        .enable_all()
        .build()
        .expect("a runtime");

    let day = || Simulation::new(&config).expect("valid simulation settings");
    let cells = vec![
        harness.block_on(cell(
            runtime.handle(),
            "no load, the probe rules only".to_owned(),
            &site,
            &probes,
            None,
        )),
        harness.block_on(cell(
            runtime.handle(),
            "1,000 events/s, 10,000 rules + the probe rules".to_owned(),
            &site,
            &loaded,
            Some((day(), 1_000)),
        )),
        harness.block_on(cell(
            runtime.handle(),
            "10,000 events/s, 10,000 rules + the probe rules".to_owned(),
            &site,
            &loaded,
            Some((day(), EVENTS_PER_SECOND as u64)),
        )),
    ];

    println!(
        "| Cell | Rules | Alerts posted / probes | Latency p50 / p99 / max | Condition + for to the firing tick's instant p50 / p99 / max | Tick's instant to the engine's hand-over (the evaluation run) p50 / p99 / max | Hand-over to the POST read (deliver, notifier, HTTP) p50 / p99 / max | p99 < 1 s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cells {
        let met =
            c.latency.len() as usize == c.probes && c.latency.value_at_quantile(0.99) < 1_000_000;
        println!(
            "| {} | {} | {} / {} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {} |",
            c.name,
            c.rules,
            c.latency.len(),
            c.probes,
            ms(c.latency.value_at_quantile(0.5)),
            ms(c.latency.value_at_quantile(0.99)),
            ms(c.latency.max()),
            ms(c.evaluation.value_at_quantile(0.5)),
            ms(c.evaluation.value_at_quantile(0.99)),
            ms(c.evaluation.max()),
            ms(c.run.value_at_quantile(0.5)),
            ms(c.run.value_at_quantile(0.99)),
            ms(c.run.max()),
            ms(c.delivery.value_at_quantile(0.5)),
            ms(c.delivery.value_at_quantile(0.99)),
            ms(c.delivery.max()),
            if met { "met" } else { "not met" },
        );
    }
    println!();
    for c in &cells {
        println!(
            "{}: load {} events in {:.1} s ({:.0}/s); engine: {:.0} evaluations ({:.1}/s, {:.2} ms each on average), {:.0} batches ({:.0} µs each); notifier delivered {}",
            c.name,
            c.load_sent,
            c.load_seconds,
            c.load_sent as f64 / c.load_seconds.max(1e-9),
            c.evaluations,
            c.evaluations / c.load_seconds.max(1e-9),
            c.evaluation_mean * 1000.0,
            c.batches,
            c.apply_mean * 1e6,
            c.delivered,
        );
    }
    harness.shutdown_timeout(Duration::from_secs(5));
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// One latency cell: Vigie started afresh on `runtime`, the receiver, the load (when given) and
/// the probes on the caller's runtime.
async fn cell(
    runtime: &tokio::runtime::Handle,
    name: String,
    site: &SiteConfig,
    rules: &[RuleConfig],
    load: Option<(Simulation, u64)>,
) -> Cell {
    let (address, mut posts, server) = receiver().await;
    let mut registry = Registry::default();
    let engine_metrics = EngineMetrics::new(&mut registry);
    let notify_metrics = NotifyMetrics::new(&mut registry);
    let route = RouteConfig {
        name: "bench".to_owned(),
        format: Format::Json,
        url: Some(SecretUrl::new(format!("http://{address}/hook"))),
        url_file: None,
        url_env: None,
        language: Language::En,
        sites: Vec::new(),
        teams: (0..PROBE_TEAMS).map(probe_team).collect(),
        severities: Vec::new(),
        kinds: vec![KindTag::Fired],
    };
    let notify = NotifyConfig {
        nats: NatsNotifyConfig {
            enabled: false,
            ..NatsNotifyConfig::default()
        },
        routes: vec![route],
        ..NotifyConfig::default()
    };
    let alerts = BTreeMap::from([(
        site.id.clone(),
        AlertEngine::new(&site.id, rules).expect("valid rules"),
    )]);
    let processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
    let sites = vec![site.clone()];
    let metrics = engine_metrics.clone();
    let notifier_metrics = notify_metrics.clone();
    // Needs no runtime to build; its tasks run on Vigie's runtime.
    let (notifier, notifier_handle) =
        Notifier::new(&notify, None, notifier_metrics).expect("the notifier");
    runtime.spawn(notifier.run());
    // As `vigie serve` does, but through a relay that notes when the engine handed each probe's
    // `fired` notification over.
    let (notifications_tx, mut from_engine) = mpsc::channel::<vigie_alerts::Notification>(1024);
    let (to_deliver, notifications_rx) = mpsc::channel(1024);
    let handed: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let relay_handed = handed.clone();
    runtime.spawn(async move {
        while let Some(notification) = from_engine.recv().await {
            if notification.notice.kind == NotificationKind::Fired
                && notification.rule.starts_with("probe-")
            {
                lock(&relay_handed).insert(notification.target.id.clone(), now_micros());
            }
            if to_deliver.send(notification).await.is_err() {
                break;
            }
        }
    });
    let (engine, handle) = Engine::new(EngineConfig::default(), processor, metrics, system_clock());
    let engine = runtime.spawn(engine.with_alerts(alerts, Some(notifications_tx)).run());
    runtime.spawn(vigie::alerting::deliver(
        notifications_rx,
        notifier_handle,
        sites,
    ));
    let site_id = site.id.clone();
    // Every probe advisor available before the cell.
    let start = now_millis();
    let available: Vec<Event> = (0..PROBE_TEAMS * PROBES_PER_TEAM)
        .map(|k| {
            state_event(
                &site_id,
                &format!("ready-{k}"),
                &probe_advisor(k),
                start,
                false,
            )
        })
        .collect();
    handle
        .apply(available)
        .await
        .expect("the engine takes events");

    let stop = CancellationToken::new();
    let sent = Arc::new(AtomicU64::new(0));
    let load_task = load.map(|(simulation, rate)| {
        tokio::spawn(feed_load(
            handle.clone(),
            simulation,
            rate,
            sent.clone(),
            stop.clone(),
        ))
    });
    let load_started = Instant::now();
    let before = counters(&registry);
    tokio::time::sleep(WARM_UP).await;

    // The probes: one advisor into pause every PROBE_EVERY, available again PROBE_PAUSE later.
    let count = PROBE_TEAMS * PROBES_PER_TEAM;
    let mut starts: BTreeMap<String, i64> = BTreeMap::new();
    let mut returns = Vec::with_capacity(count);
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..count {
        every.tick().await;
        let advisor = probe_advisor(k);
        let time = now_millis();
        let pause = state_event(&site_id, &format!("pause-{k}"), &advisor, time, true);
        handle.feed(vec![pause]).await.expect("the engine runs");
        starts.insert(advisor.clone(), time);
        let handle = handle.clone();
        let site_id = site_id.clone();
        returns.push(tokio::spawn(async move {
            tokio::time::sleep(PROBE_PAUSE).await;
            let back = state_event(
                &site_id,
                &format!("back-{k}"),
                &advisor,
                now_millis(),
                false,
            );
            let _ = handle.feed(vec![back]).await;
        }));
    }
    let last_expected = starts.values().max().copied().unwrap_or(start) + 3_000;

    let mut latency = histogram();
    let mut evaluation = histogram();
    let mut run = histogram();
    let mut delivery = histogram();
    let mut seen = 0;
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(last_expected - now_millis()).unwrap_or(0))
        + GRACE;
    while seen < count {
        let Ok(Some(post)) = tokio::time::timeout_at(deadline, posts.recv()).await else {
            break;
        };
        let Some(&time) = starts.get(&post.payload.target.id) else {
            continue;
        };
        seen += 1;
        let expected_us = (time + PROBE_THRESHOLD_MS + PROBE_FOR_MS) * 1000;
        let fired_us = post.payload.at_ms * 1000;
        let handed_us = lock(&handed)
            .get(&post.payload.target.id)
            .copied()
            .unwrap_or(fired_us);
        latency.saturating_record(u64::try_from(post.at_us - expected_us).unwrap_or(0));
        evaluation.saturating_record(u64::try_from(fired_us - expected_us).unwrap_or(0));
        run.saturating_record(u64::try_from(handed_us - fired_us).unwrap_or(0));
        delivery.saturating_record(u64::try_from(post.at_us - handed_us).unwrap_or(0));
    }
    let after = counters(&registry);
    let load_seconds = load_started.elapsed().as_secs_f64();
    stop.cancel();
    if let Some(task) = load_task {
        let _ = task.await;
    }
    // Every probe advisor back, then Vigie stops (the next cell runs alone).
    for task in returns {
        let _ = task.await;
    }
    let delivered = notify_metrics.delivered_total("bench");
    drop(handle);
    if tokio::time::timeout(Duration::from_secs(60), engine)
        .await
        .is_err()
    {
        eprintln!("the engine did not stop within 60 s");
    }
    server.abort();
    let c = Counters::diff(&after, &before);
    Cell {
        name,
        rules: rules.len(),
        probes: count,
        latency,
        evaluation,
        run,
        delivery,
        load_sent: sent.load(Ordering::Relaxed),
        load_seconds,
        evaluations: c.evaluations,
        evaluation_mean: c.evaluation_seconds / c.evaluations.max(1.0),
        batches: c.batches,
        apply_mean: c.apply_seconds / c.batches.max(1.0),
        delivered,
    }
}

/// The simulated day at `rate` events/s, each event's time set to the instant it is fed.
async fn feed_load(
    handle: vigie_engine::EngineHandle,
    mut events: Simulation,
    rate: u64,
    sent: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let mut index: u64 = 0;
    while !stop.is_cancelled() {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let mut batch = Vec::new();
        while index < due {
            let Some(mut event) = events.next() else {
                eprintln!("the simulated day is over: no more load");
                return;
            };
            event.time = Timestamp(now_millis());
            batch.push(event);
            index += 1;
        }
        if !batch.is_empty() && handle.feed(batch).await.is_err() {
            return;
        }
        sent.store(index, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Counters of the engine's metrics.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    evaluations: f64,
    evaluation_seconds: f64,
    batches: f64,
    apply_seconds: f64,
}

impl Counters {
    fn diff(after: &Counters, before: &Counters) -> Counters {
        Counters {
            evaluations: after.evaluations - before.evaluations,
            evaluation_seconds: after.evaluation_seconds - before.evaluation_seconds,
            batches: after.batches - before.batches,
            apply_seconds: after.apply_seconds - before.apply_seconds,
        }
    }
}

fn counters(registry: &Registry) -> Counters {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("metrics encode");
    Counters {
        evaluations: metric(&text, "vigie_alert_evaluation_seconds_count"),
        evaluation_seconds: metric(&text, "vigie_alert_evaluation_seconds_sum"),
        batches: metric(&text, "vigie_engine_apply_seconds_count"),
        apply_seconds: metric(&text, "vigie_engine_apply_seconds_sum"),
    }
}

/// The sum of the samples of `name` (every label set) in metrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?.1,
                None => rest,
            };
            rest.strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}
