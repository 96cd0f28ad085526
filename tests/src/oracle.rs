//! An independent batch recomputation of a site's view, written from `docs/indicators.md` and
//! `docs/events.md` only, for the tests to compare the processor against.
//!
//! It is deliberately naive: it takes every accepted event of the site up to `now`, sorts each
//! contact's and each advisor's events, replays them through the life of a contact as the docs
//! word it, records every counted thing with the instant it is attributed to and every
//! advisor activity as an interval, then filters and integrates for the window asked. Nothing is
//! incremental, nothing is bounded, nothing is shared with the processor's code.
//!
//! Readings chosen where the docs leave room (each is reported to the lead engineer):
//!
//! - Same-millisecond events of one contact (or advisor) of the same step are ordered by the
//!   low 64 bits of the XXH3-128 hash of their `id` (docs/events.md).
//! - `contact.offered` rings whatever the contact's state; `contact.missed` counts a missed
//!   offer even without a ringing offer (Asterisk's `queue_log` has no ring-start line).
//! - A contact that leaves its queue (answered, abandoned, dequeued, flowed out) ends every
//!   ringing offer, and nothing else does besides an answer or a miss (a transfer by the
//!   talking advisor leaves other advisors' rings alone); a `contact.queued` for the queue the contact already waits in, or a transfer
//!   to it, is the same single offer.
//! - A `contact.queued` while an advisor talks ends their conversation and counts as their
//!   transfer (once per leg, like `contact.transferred`).
//! - An offer has the channel of its `contact.queued`; a transfer into a queue keeps the
//!   contact's channel (the last queued one, else the first any event names).
//! - A transfer counts for the talking advisor; when nobody talks, for the named advisor if
//!   their leg of the contact is still in after-contact work and has not counted one yet.
//! - `advisor.state` sets the status even while logged out.
//! - An advisor's team comes from their latest login that names one, else `unassigned`; their
//!   name likewise from the latest login that gives one.
//! - `available_time` is time handling nothing while the status is available or a contact
//!   rings; ringing while handling another contact is handling time.
//! - The live state is a step function of time: zero-length states inside one millisecond are
//!   not states. `state_since` is the start of the last run of the same state (the pause reason
//!   is part of the state only when the state shown is `pause`); `null` when the advisor was
//!   never in another state.
//! - Waits go into the percentile histogram as whole units of 100 ms, rounded down.
//! - Pauses per reason list the reasons with pause time or pauses started in the window,
//!   sorted by reason; `first_login`, `login_time`, `pause_time`, `pauses` belong to `today`.
//! - A queue's `channels` are the channels it received offers on up to `now`, in the order of
//!   the contract's channel list.
//! - A team's `queues` are listed by id, like every other list of the view.
//! - Queues listed: configured ones, and those named by `contact.queued`, by a transfer's
//!   `to_queue`, or by the `queue` of an answer that gives a leg its queue. Advisors listed:
//!   rostered ones and those named by any event. Teams listed: configured ones, those named by
//!   a member's login, and `unassigned` when it has members.
//! - Contact expiry (`contact_expiry`, 12 h, "measured on the site's event times"): a contact
//!   whose last event is at `t` is given up at `t + 12 h` once the site has an event at or
//!   after that instant; from then it waits nowhere and its advisors are free, and nothing of
//!   it is counted (no exit, no handled leg).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use vigie_core::{
    AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind, Event, EventBody,
    SiteConfig, SlVariant, Timestamp, Window,
};

/// Milliseconds since the Unix epoch, the oracle's only notion of time.
type Ms = i64;

const UNASSIGNED: &str = "unassigned";
const DEFAULT_THRESHOLD: Ms = 20_000;
const DEFAULT_TARGET: f64 = 0.8;
const DEFAULT_SHORT_ABANDON: Ms = 5_000;
const CONTACT_EXPIRY: Ms = 12 * 3_600_000;

/// Keeps the first event of each `id`, in the order given.
pub fn dedupe(events: &[Event]) -> Vec<Event> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|event| seen.insert(event.id.clone()))
        .cloned()
        .collect()
}

/// How a contact left a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExitKind {
    Answered,
    Abandoned,
    Dequeued,
    FlowedOut,
}

/// A contact leaving a queue, attributed to the instant it left.
#[derive(Clone, Debug)]
struct Exit {
    time: Ms,
    queue: String,
    channel: Option<Channel>,
    kind: ExitKind,
    wait: Ms,
}

/// An offer to a queue, attributed to the instant the contact entered it.
#[derive(Clone, Debug)]
struct Offer {
    time: Ms,
    queue: String,
    channel: Option<Channel>,
}

/// A completed leg, attributed to the end of its after-contact work.
#[derive(Clone, Debug)]
struct Handled {
    time: Ms,
    advisor: String,
    queue: Option<String>,
    channel: Option<Channel>,
    talk: Ms,
    hold: Ms,
    acw: Ms,
    held: bool,
}

/// A transfer by an advisor, attributed to the instant of the transfer.
#[derive(Clone, Debug)]
struct Transfer {
    time: Ms,
    advisor: String,
    queue: Option<String>,
    channel: Option<Channel>,
}

/// What an advisor does on a contact during an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    Ring,
    Talk,
    Hold,
    Acw,
}

/// An activity of an advisor from `start` to `end` (`None`: still going at `now`).
#[derive(Clone, Copy, Debug)]
struct Interval {
    start: Ms,
    end: Option<Ms>,
    activity: Activity,
}

/// The advisor's own status, set by advisor events.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    LoggedOut,
    Available,
    Pause(String),
}

/// A contact waiting in a queue.
#[derive(Clone, Debug)]
struct Wait {
    queue: String,
    channel: Option<Channel>,
    entry: Ms,
}

/// One advisor's part of a contact.
#[derive(Clone, Debug)]
struct Leg {
    advisor: String,
    queue: Option<String>,
    channel: Option<Channel>,
    answered: Ms,
    on_hold: bool,
    /// Start of the current phase (talk or hold while in conversation; ACW after).
    phase_start: Ms,
    talk: Ms,
    hold: Ms,
    held: bool,
    transfer_counted: bool,
}

/// A leg still open at `now`, for the live figures.
#[derive(Clone, Debug)]
struct OpenLeg {
    advisor: String,
    answered: Ms,
    in_conversation: bool,
}

/// Everything the events say, before any window is chosen.
#[derive(Debug, Default)]
struct Facts {
    offers: Vec<Offer>,
    exits: Vec<Exit>,
    handled: Vec<Handled>,
    transfers: Vec<Transfer>,
    missed: Vec<(Ms, String)>,
    waiting: Vec<Wait>,
    open_legs: Vec<OpenLeg>,
    activity: BTreeMap<String, Vec<Interval>>,
    queues_seen: BTreeSet<String>,
    channels_seen: BTreeMap<String, BTreeSet<Channel>>,
    advisors_seen: BTreeSet<String>,
}

impl Facts {
    fn interval(&mut self, advisor: &str, start: Ms, end: Option<Ms>, activity: Activity) {
        self.activity
            .entry(advisor.to_owned())
            .or_default()
            .push(Interval {
                start,
                end,
                activity,
            });
    }

    fn offer(&mut self, time: Ms, queue: &str, channel: Option<Channel>) {
        self.queues_seen.insert(queue.to_owned());
        let seen = self.channels_seen.entry(queue.to_owned()).or_default();
        seen.extend(channel);
        self.offers.push(Offer {
            time,
            queue: queue.to_owned(),
            channel,
        });
    }
}

/// The replay of one contact's events.
#[derive(Debug, Default)]
struct Contact {
    channel: Option<Channel>,
    waiting: Option<Wait>,
    ringing: BTreeMap<String, Ms>,
    talking: Option<Leg>,
    acw: Vec<Leg>,
}

impl Contact {
    fn end_ringing(&mut self, facts: &mut Facts, advisor: Option<&str>, time: Ms) {
        let ending: Vec<String> = self
            .ringing
            .keys()
            .filter(|ringing| advisor.is_none_or(|a| a == ringing.as_str()))
            .cloned()
            .collect();
        for advisor in ending {
            let start = self.ringing.remove(&advisor).expect("listed just above");
            facts.interval(&advisor, start, Some(time), Activity::Ring);
        }
    }

    fn leave_queue(&mut self, facts: &mut Facts, kind: ExitKind, time: Ms) -> Option<Wait> {
        let wait = self.waiting.take()?;
        facts.exits.push(Exit {
            time,
            queue: wait.queue.clone(),
            channel: wait.channel,
            kind,
            wait: time - wait.entry,
        });
        self.end_ringing(facts, None, time);
        Some(wait)
    }

    fn enter_queue(&mut self, facts: &mut Facts, queue: &str, channel: Option<Channel>, time: Ms) {
        facts.offer(time, queue, channel);
        self.waiting = Some(Wait {
            queue: queue.to_owned(),
            channel,
            entry: time,
        });
    }

    /// Ends the talking advisor's conversation: their after-contact work starts.
    fn end_conversation(&mut self, facts: &mut Facts, time: Ms) {
        if let Some(mut leg) = self.talking.take() {
            let spent = time - leg.phase_start;
            if leg.on_hold {
                leg.hold += spent;
                facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Hold);
            } else {
                leg.talk += spent;
                facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Talk);
            }
            leg.on_hold = false;
            leg.phase_start = time;
            self.acw.push(leg);
        }
    }

    fn complete_acw_leg(facts: &mut Facts, leg: Leg, time: Ms) {
        facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Acw);
        facts.handled.push(Handled {
            time,
            advisor: leg.advisor,
            queue: leg.queue,
            channel: leg.channel,
            talk: leg.talk,
            hold: leg.hold,
            acw: time - leg.phase_start,
            held: leg.held,
        });
    }

    fn apply(&mut self, facts: &mut Facts, event: &ContactEvent, time: Ms) {
        // Until a queue says otherwise, the contact has the first channel an event names.
        self.channel = self.channel.or(event.channel);
        match &event.kind {
            ContactEventKind::Queued => {
                let queue = event
                    .queue
                    .as_deref()
                    .expect("contact.queued names its queue");
                if self.waiting.as_ref().is_some_and(|w| w.queue == queue) {
                    return;
                }
                self.leave_queue(facts, ExitKind::FlowedOut, time);
                // Back to a queue while an advisor talks: that advisor transferred it.
                if let Some(leg) = self.talking.as_mut().filter(|leg| !leg.transfer_counted) {
                    leg.transfer_counted = true;
                    facts.transfers.push(Transfer {
                        time,
                        advisor: leg.advisor.clone(),
                        queue: leg.queue.clone(),
                        channel: leg.channel,
                    });
                }
                self.end_conversation(facts, time);
                self.channel = event.channel.or(self.channel);
                self.enter_queue(facts, queue, self.channel, time);
            }
            ContactEventKind::Offered => {
                let advisor = event.advisor.as_deref().expect("offers name the advisor");
                self.ringing.entry(advisor.to_owned()).or_insert(time);
            }
            ContactEventKind::Missed => {
                let advisor = event.advisor.as_deref().expect("misses name the advisor");
                self.end_ringing(facts, Some(advisor), time);
                facts.missed.push((time, advisor.to_owned()));
            }
            ContactEventKind::Answered => {
                let advisor = event.advisor.as_deref().expect("answers name the advisor");
                if self.waiting.is_none()
                    && self
                        .talking
                        .as_ref()
                        .is_some_and(|leg| leg.advisor == advisor)
                {
                    return;
                }
                self.end_ringing(facts, None, time);
                let (queue, channel) = match self.leave_queue(facts, ExitKind::Answered, time) {
                    Some(wait) => (Some(wait.queue), wait.channel),
                    None => {
                        if let Some(queue) = &event.queue {
                            facts.queues_seen.insert(queue.clone());
                        }
                        (event.queue.clone(), event.channel.or(self.channel))
                    }
                };
                self.end_conversation(facts, time);
                self.talking = Some(Leg {
                    advisor: advisor.to_owned(),
                    queue,
                    channel,
                    answered: time,
                    on_hold: false,
                    phase_start: time,
                    talk: 0,
                    hold: 0,
                    held: false,
                    transfer_counted: false,
                });
            }
            ContactEventKind::Held => {
                if let Some(leg) = self.talking.as_mut().filter(|leg| !leg.on_hold) {
                    leg.talk += time - leg.phase_start;
                    facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Talk);
                    leg.phase_start = time;
                    leg.on_hold = true;
                    leg.held = true;
                }
            }
            ContactEventKind::Resumed => {
                if let Some(leg) = self.talking.as_mut().filter(|leg| leg.on_hold) {
                    leg.hold += time - leg.phase_start;
                    facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Hold);
                    leg.phase_start = time;
                    leg.on_hold = false;
                }
            }
            ContactEventKind::Transferred { to_queue } => {
                let was_talking = self.talking.is_some();
                if let Some(leg) = self.talking.as_mut() {
                    leg.transfer_counted = true;
                    facts.transfers.push(Transfer {
                        time,
                        advisor: leg.advisor.clone(),
                        queue: leg.queue.clone(),
                        channel: leg.channel,
                    });
                    self.end_conversation(facts, time);
                } else if let Some(advisor) = &event.advisor
                    && let Some(leg) = self
                        .acw
                        .iter_mut()
                        .find(|leg| &leg.advisor == advisor && !leg.transfer_counted)
                {
                    leg.transfer_counted = true;
                    facts.transfers.push(Transfer {
                        time,
                        advisor: leg.advisor.clone(),
                        queue: leg.queue.clone(),
                        channel: leg.channel,
                    });
                }
                let already_there = self
                    .waiting
                    .as_ref()
                    .is_some_and(|w| Some(&w.queue) == to_queue.as_ref());
                if !was_talking && !already_there {
                    self.leave_queue(facts, ExitKind::FlowedOut, time);
                }
                if let Some(queue) = to_queue
                    && !already_there
                {
                    self.channel = self.channel.or(event.channel);
                    self.enter_queue(facts, queue, self.channel, time);
                }
            }
            ContactEventKind::Abandoned => {
                self.leave_queue(facts, ExitKind::Abandoned, time);
            }
            ContactEventKind::Dequeued { .. } => {
                self.leave_queue(facts, ExitKind::Dequeued, time);
            }
            ContactEventKind::Ended => self.end_conversation(facts, time),
            ContactEventKind::Completed { .. } => {
                let advisor = event.advisor.as_deref();
                if self
                    .talking
                    .as_ref()
                    .is_some_and(|leg| advisor.is_none_or(|a| a == leg.advisor))
                {
                    self.end_conversation(facts, time);
                }
                let (done, open): (Vec<Leg>, Vec<Leg>) = std::mem::take(&mut self.acw)
                    .into_iter()
                    .partition(|leg| advisor.is_none_or(|a| a == leg.advisor));
                self.acw = open;
                for leg in done {
                    Self::complete_acw_leg(facts, leg, time);
                }
            }
        }
    }

    /// Gives the contact up at `time`: whatever was open ends there, uncounted.
    fn expire(&mut self, facts: &mut Facts, time: Ms) {
        self.waiting = None;
        self.end_ringing(facts, None, time);
        if let Some(leg) = self.talking.take() {
            let activity = if leg.on_hold {
                Activity::Hold
            } else {
                Activity::Talk
            };
            facts.interval(&leg.advisor, leg.phase_start, Some(time), activity);
        }
        for leg in std::mem::take(&mut self.acw) {
            facts.interval(&leg.advisor, leg.phase_start, Some(time), Activity::Acw);
        }
    }

    /// Records what is still open at the end of the replay.
    fn close(self, facts: &mut Facts) {
        for (advisor, start) in self.ringing {
            facts.interval(&advisor, start, None, Activity::Ring);
        }
        if let Some(leg) = self.talking {
            let activity = if leg.on_hold {
                Activity::Hold
            } else {
                Activity::Talk
            };
            facts.interval(&leg.advisor, leg.phase_start, None, activity);
            facts.open_legs.push(OpenLeg {
                advisor: leg.advisor,
                answered: leg.answered,
                in_conversation: true,
            });
        }
        for leg in self.acw {
            facts.interval(&leg.advisor, leg.phase_start, None, Activity::Acw);
            facts.open_legs.push(OpenLeg {
                advisor: leg.advisor,
                answered: leg.answered,
                in_conversation: false,
            });
        }
        if let Some(wait) = self.waiting {
            facts.waiting.push(wait);
        }
    }
}

/// The tie-break between events of the same step and millisecond (docs/events.md): the low 64
/// bits of the XXH3-128 hash of the event id.
fn tie(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes()) as u64
}

fn contact_rank(kind: &ContactEventKind) -> u8 {
    match kind {
        ContactEventKind::Queued => 0,
        ContactEventKind::Offered => 1,
        ContactEventKind::Missed => 2,
        ContactEventKind::Answered => 3,
        ContactEventKind::Held => 4,
        ContactEventKind::Resumed => 5,
        ContactEventKind::Transferred { .. } => 6,
        ContactEventKind::Abandoned => 7,
        ContactEventKind::Dequeued { .. } => 8,
        ContactEventKind::Ended => 9,
        ContactEventKind::Completed { .. } => 10,
    }
}

fn advisor_rank(kind: &AdvisorEventKind) -> u8 {
    match kind {
        AdvisorEventKind::Login { .. } => 0,
        AdvisorEventKind::State(_) => 1,
        AdvisorEventKind::Logout => 2,
    }
}

/// An advisor's status changes and logins, in the order they apply.
#[derive(Debug, Default)]
struct AdvisorLog {
    /// (time, status after the event).
    statuses: Vec<(Ms, Status)>,
    /// (time, team, name) of each login.
    logins: Vec<(Ms, Option<String>, Option<String>)>,
    /// (time, reason) of each pause started.
    pauses_started: Vec<(Ms, String)>,
}

/// The targets of a queue.
#[derive(Clone, Debug)]
struct QueueTargets {
    name: Option<String>,
    threshold: Ms,
    target: f64,
    short_abandon: Ms,
    variant: SlVariant,
    aht_target: Option<Ms>,
}

/// Counts of a queue's flow (or several queues' summed) over a window.
#[derive(Debug, Default)]
struct Flow {
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    dequeued: u64,
    flowed_out: u64,
    answered_within: u64,
    abandoned_within: u64,
    wait_answered: Ms,
    max_wait: Option<Ms>,
    waits: Vec<Ms>,
}

/// Handling counts over a window.
#[derive(Debug, Default)]
struct Handling {
    handled: u64,
    talk: Ms,
    hold: Ms,
    acw: Ms,
    held: u64,
}

impl Handling {
    fn add(&mut self, handled: &Handled) {
        self.handled += 1;
        self.talk += handled.talk;
        self.hold += handled.hold;
        self.acw += handled.acw;
        self.held += u64::from(handled.held);
    }
}

/// Time of an advisor over a window, by class.
#[derive(Debug, Default)]
struct Times {
    handling: Ms,
    available: Ms,
    login: Ms,
    pause: BTreeMap<String, Ms>,
    pauses_started: BTreeMap<String, u64>,
}

impl Times {
    fn merge(&mut self, other: &Times) {
        self.handling += other.handling;
        self.available += other.available;
        self.login += other.login;
        for (reason, time) in &other.pause {
            *self.pause.entry(reason.clone()).or_default() += time;
        }
        for (reason, count) in &other.pauses_started {
            *self.pauses_started.entry(reason.clone()).or_default() += count;
        }
    }
}

/// Everything known about an advisor at `now`.
#[derive(Debug)]
struct AdvisorNow {
    team: String,
    name: Option<String>,
    state: &'static str,
    reason: Option<String>,
    state_since: Option<Ms>,
    current_contact_since: Option<Ms>,
    first_login_today: Option<Ms>,
    /// Segments `[start, end)` with constant flags, `end = None` for the last one.
    segments: Vec<Segment>,
}

/// A stretch of an advisor's time during which nothing changes.
#[derive(Clone, Debug)]
struct Segment {
    start: Ms,
    end: Option<Ms>,
    ringing: bool,
    talking: bool,
    on_hold: bool,
    acw: bool,
    status: Status,
}

impl Segment {
    fn handling(&self) -> bool {
        self.talking || self.on_hold || self.acw
    }

    fn state(&self) -> (&'static str, Option<&str>) {
        if self.ringing {
            ("offered", None)
        } else if self.talking {
            ("talking", None)
        } else if self.on_hold {
            ("on_hold", None)
        } else if self.acw {
            ("acw", None)
        } else {
            match &self.status {
                Status::Pause(reason) => ("pause", Some(reason.as_str())),
                Status::Available => ("available", None),
                Status::LoggedOut => ("logged_out", None),
            }
        }
    }
}

/// The oracle's knowledge of a site at one instant.
#[derive(Debug)]
pub struct Oracle {
    site: SiteConfig,
    zone: Tz,
    now: Ms,
    day_start: Ms,
    facts: Facts,
    advisors: BTreeMap<String, AdvisorNow>,
    logs: BTreeMap<String, AdvisorLog>,
}

/// The start of the site-local day containing `now`.
fn day_start_of(zone: Tz, day_start: NaiveTime, now: Ms) -> Ms {
    let start_of = |date: chrono::NaiveDate| -> Ms {
        let mut local = date.and_time(day_start);
        loop {
            match zone.from_local_datetime(&local) {
                LocalResult::Single(at) => return at.timestamp_millis(),
                LocalResult::Ambiguous(first, _) => return first.timestamp_millis(),
                // In the hour skipped in spring: the day starts when the gap ends.
                LocalResult::None => local += Duration::minutes(1),
            }
        }
    };
    let utc = DateTime::<Utc>::from_timestamp_millis(now).expect("a representable instant");
    let date = utc.with_timezone(&zone).date_naive();
    let start = start_of(date);
    if start <= now {
        start
    } else {
        start_of(date.pred_opt().expect("not the first day of the calendar"))
    }
}

fn ratio(numerator: u64, denominator: u64) -> Value {
    if denominator == 0 {
        Value::Null
    } else {
        json!(numerator as f64 / denominator as f64)
    }
}

/// An average in seconds, rounded to the millisecond (halves away from zero).
fn average(total: Ms, count: u64) -> Value {
    if count == 0 {
        return Value::Null;
    }
    let count = i64::try_from(count).expect("a small count");
    let millis = (2 * total + count).div_euclid(2 * count);
    json!(millis as f64 / 1000.0)
}

fn secs(ms: Ms) -> f64 {
    ms as f64 / 1000.0
}

/// A percentile of waits as the docs define it: an HDR histogram of waits in units of 100 ms
/// with 2 significant digits, the highest value equivalent to the percentile's bucket.
fn wait_percentile(waits: &[Ms], quantile: f64) -> Value {
    if waits.is_empty() {
        return Value::Null;
    }
    let mut histogram = Histogram::<u64>::new(2).expect("2 significant digits are allowed");
    for &wait in waits {
        let units = u64::try_from(wait / 100).expect("a wait is not negative");
        histogram
            .record(units)
            .expect("the histogram resizes itself");
    }
    let value = histogram.highest_equivalent(histogram.value_at_quantile(quantile));
    json!(secs(i64::try_from(value).expect("a wait fits") * 100))
}

fn variant_name(variant: SlVariant) -> &'static str {
    match variant {
        SlVariant::Offered => "offered",
        SlVariant::Answered => "answered",
        SlVariant::Positive => "positive",
    }
}

fn flow_json(flow: &Flow, variant: SlVariant) -> Map<String, Value> {
    let counted = flow.answered + flow.abandoned - flow.short_abandoned;
    let sl_offered = ratio(flow.answered_within, counted);
    let sl_answered = ratio(flow.answered_within, flow.answered);
    let sl_positive = ratio(
        flow.answered_within + flow.abandoned_within,
        flow.answered + flow.abandoned,
    );
    let service_level = match variant {
        SlVariant::Offered => sl_offered.clone(),
        SlVariant::Answered => sl_answered.clone(),
        SlVariant::Positive => sl_positive.clone(),
    };
    let value = json!({
        "offered": flow.offered,
        "answered": flow.answered,
        "abandoned": flow.abandoned,
        "short_abandoned": flow.short_abandoned,
        "dequeued": flow.dequeued,
        "flowed_out": flow.flowed_out,
        "answered_within_threshold": flow.answered_within,
        "abandoned_within_threshold": flow.abandoned_within,
        "sl_offered": sl_offered,
        "sl_answered": sl_answered,
        "sl_positive": sl_positive,
        "service_level": service_level,
        "service_level_variant": variant_name(variant),
        "abandon_rate": ratio(flow.abandoned - flow.short_abandoned, counted),
        "asa": average(flow.wait_answered, flow.answered),
        "max_wait_answered": flow.max_wait.map(secs),
        "wait_p50": wait_percentile(&flow.waits, 0.5),
        "wait_p90": wait_percentile(&flow.waits, 0.9),
    });
    object(value)
}

fn handling_json(handling: &Handling) -> Map<String, Value> {
    object(json!({
        "handled": handling.handled,
        "aht": average(handling.talk + handling.hold + handling.acw, handling.handled),
        "avg_talk": average(handling.talk, handling.handled),
        "avg_hold": average(handling.hold, handling.handled),
        "avg_acw": average(handling.acw, handling.handled),
        "held": handling.held,
        "hold_rate": ratio(handling.held, handling.handled),
    }))
}

fn live_json(waiting: &[&Wait], now: Ms) -> Map<String, Value> {
    let oldest = waiting.iter().map(|wait| wait.entry).min();
    object(json!({
        "in_queue": waiting.len(),
        "longest_wait": oldest.map(|entry| secs(now - entry)),
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built with json!({{...}})"),
    }
}

fn by_state_json<'a>(states: impl Iterator<Item = &'a str>) -> Value {
    let mut counts: BTreeMap<&str, u64> = [
        "offered",
        "talking",
        "on_hold",
        "acw",
        "pause",
        "available",
        "logged_out",
    ]
    .into_iter()
    .map(|state| (state, 0))
    .collect();
    for state in states {
        *counts.get_mut(state).expect("a known state") += 1;
    }
    json!(counts)
}

impl Oracle {
    /// Replays `events` (the accepted events of the site, duplicates allowed: the first of each
    /// `id` is kept) up to `now`.
    pub fn new(events: &[Event], site: &SiteConfig, now: Timestamp) -> Oracle {
        let now = now.0;
        let zone = Tz::from_str(&site.time_zone).expect("a valid time zone");
        let day_start_time =
            NaiveTime::parse_from_str(&site.day_start, "%H:%M").expect("a valid day start");
        let day_start = day_start_of(zone, day_start_time, now);
        let events: Vec<Event> = dedupe(events)
            .into_iter()
            .filter(|event| event.site == site.id && event.time.0 <= now)
            .collect();

        let newest = events
            .iter()
            .map(|event| event.time.0)
            .max()
            .unwrap_or(Ms::MIN);
        let mut facts = Facts::default();
        let mut contacts: BTreeMap<&str, Vec<(&Event, &ContactEvent)>> = BTreeMap::new();
        let mut advisor_events: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for event in &events {
            match &event.body {
                EventBody::Contact(contact) => {
                    if let Some(advisor) = &contact.advisor {
                        facts.advisors_seen.insert(advisor.clone());
                    }
                    contacts
                        .entry(contact.contact.as_str())
                        .or_default()
                        .push((event, contact));
                }
                EventBody::Advisor(advisor) => {
                    facts.advisors_seen.insert(advisor.advisor.clone());
                    advisor_events
                        .entry(advisor.advisor.as_str())
                        .or_default()
                        .push(event);
                }
            }
        }
        for (_, mut list) in contacts {
            list.sort_by(|(a, ca), (b, cb)| {
                (a.time, contact_rank(&ca.kind), tie(&a.id)).cmp(&(
                    b.time,
                    contact_rank(&cb.kind),
                    tie(&b.id),
                ))
            });
            let mut contact = Contact::default();
            let last = list.last().map(|(event, _)| event.time.0);
            for (event, body) in list {
                contact.apply(&mut facts, body, event.time.0);
            }
            if let Some(last) = last
                && newest - last >= CONTACT_EXPIRY
            {
                contact.expire(&mut facts, last + CONTACT_EXPIRY);
            }
            contact.close(&mut facts);
        }

        let mut logs: BTreeMap<String, AdvisorLog> = BTreeMap::new();
        for (advisor, mut list) in advisor_events {
            let rank = |event: &Event| match &event.body {
                EventBody::Advisor(body) => advisor_rank(&body.kind),
                EventBody::Contact(_) => unreachable!("advisor events only"),
            };
            list.sort_by_key(|a| (a.time, rank(a), tie(&a.id)));
            let log = logs.entry(advisor.to_owned()).or_default();
            let mut status = Status::LoggedOut;
            for event in list {
                let EventBody::Advisor(body) = &event.body else {
                    unreachable!("advisor events only")
                };
                let time = event.time.0;
                let next = match &body.kind {
                    AdvisorEventKind::Login { team, name } => {
                        log.logins.push((time, team.clone(), name.clone()));
                        Status::Available
                    }
                    AdvisorEventKind::Logout => Status::LoggedOut,
                    AdvisorEventKind::State(AdvisorStatus::Available) => Status::Available,
                    AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => {
                        Status::Pause(reason.clone())
                    }
                };
                if let Status::Pause(reason) = &next
                    && status != next
                {
                    log.pauses_started.push((time, reason.clone()));
                }
                status = next.clone();
                log.statuses.push((time, next));
            }
        }

        let mut oracle = Oracle {
            site: site.clone(),
            zone,
            now,
            day_start,
            facts,
            advisors: BTreeMap::new(),
            logs,
        };
        oracle.advisors = oracle.build_advisors();
        oracle
    }

    fn roster_team(&self, advisor: &str) -> Option<&str> {
        self.site
            .teams
            .iter()
            .find(|team| team.advisors.iter().any(|a| a == advisor))
            .map(|team| team.id.as_str())
    }

    fn build_advisors(&self) -> BTreeMap<String, AdvisorNow> {
        let mut ids: BTreeSet<String> = self.facts.advisors_seen.clone();
        for team in &self.site.teams {
            ids.extend(team.advisors.iter().cloned());
        }
        let empty_log = AdvisorLog::default();
        ids.into_iter()
            .map(|id| {
                let log = self.logs.get(&id).unwrap_or(&empty_log);
                // The latest login that names a team (a name), in the order logins apply.
                let latest_team = log
                    .logins
                    .iter()
                    .rev()
                    .find_map(|(_, team, _)| team.clone());
                let team = self
                    .roster_team(&id)
                    .map(str::to_owned)
                    .or(latest_team)
                    .unwrap_or_else(|| UNASSIGNED.to_owned());
                let name = log
                    .logins
                    .iter()
                    .rev()
                    .find_map(|(_, _, name)| name.clone());
                let segments = self.segments(&id, log);
                let last = segments.last().cloned().unwrap_or(Segment {
                    start: Ms::MIN,
                    end: None,
                    ringing: false,
                    talking: false,
                    on_hold: false,
                    acw: false,
                    status: Status::LoggedOut,
                });
                let (state, _) = last.state();
                let mut since = if segments.is_empty() {
                    None
                } else {
                    Some(last.start)
                };
                for segment in segments.iter().rev().skip(1) {
                    if segment.state() == last.state() {
                        since = (segment.start != Ms::MIN).then_some(segment.start);
                    } else {
                        break;
                    }
                }
                let reason = match &last.status {
                    Status::Pause(reason) => Some(reason.clone()),
                    _ => None,
                };
                let legs: Vec<&OpenLeg> = self
                    .facts
                    .open_legs
                    .iter()
                    .filter(|leg| leg.advisor == id)
                    .collect();
                let in_conversation = legs
                    .iter()
                    .filter(|leg| leg.in_conversation)
                    .map(|leg| leg.answered)
                    .min();
                let in_acw = legs
                    .iter()
                    .filter(|leg| !leg.in_conversation)
                    .map(|leg| leg.answered)
                    .min();
                let first_login_today = log
                    .logins
                    .iter()
                    .map(|(time, _, _)| *time)
                    .filter(|time| *time >= self.day_start)
                    .min();
                let advisor = AdvisorNow {
                    team,
                    name,
                    state,
                    reason,
                    state_since: since,
                    current_contact_since: in_conversation.or(in_acw),
                    first_login_today,
                    segments,
                };
                (id, advisor)
            })
            .collect()
    }

    /// Cuts an advisor's time into stretches where nothing changes, by a sweep over every
    /// instant where an activity starts or ends or the status changes.
    fn segments(&self, advisor: &str, log: &AdvisorLog) -> Vec<Segment> {
        let intervals: &[Interval] = self
            .facts
            .activity
            .get(advisor)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // (time, activity, +1 or -1)
        let mut deltas: Vec<(Ms, Activity, i64)> = Vec::new();
        for interval in intervals {
            deltas.push((interval.start, interval.activity, 1));
            if let Some(end) = interval.end {
                deltas.push((end, interval.activity, -1));
            }
        }
        deltas.sort_by_key(|(time, _, _)| *time);
        let mut instants: BTreeSet<Ms> = deltas.iter().map(|(time, _, _)| *time).collect();
        instants.extend(log.statuses.iter().map(|(time, _)| *time));
        let instants: Vec<Ms> = instants.into_iter().collect();
        let mut counts = [0i64; 4];
        let slot = |activity: Activity| match activity {
            Activity::Ring => 0,
            Activity::Talk => 1,
            Activity::Hold => 2,
            Activity::Acw => 3,
        };
        let mut status = Status::LoggedOut;
        let mut segments = Vec::new();
        if let Some(&first) = instants.first() {
            segments.push(Segment {
                start: Ms::MIN,
                end: Some(first),
                ringing: false,
                talking: false,
                on_hold: false,
                acw: false,
                status: Status::LoggedOut,
            });
        }
        let (mut next_delta, mut next_status) = (0, 0);
        for (index, &instant) in instants.iter().enumerate() {
            while let Some((time, activity, delta)) = deltas.get(next_delta)
                && *time == instant
            {
                counts[slot(*activity)] += delta;
                next_delta += 1;
            }
            // Statuses are in the order they apply: the last one of the instant stays.
            while let Some((time, next)) = log.statuses.get(next_status)
                && *time == instant
            {
                status = next.clone();
                next_status += 1;
            }
            assert!(
                counts.iter().all(|count| *count >= 0),
                "an activity of {advisor} ended before it started"
            );
            segments.push(Segment {
                start: instant,
                end: instants.get(index + 1).copied(),
                ringing: counts[0] > 0,
                talking: counts[1] > 0,
                on_hold: counts[2] > 0,
                acw: counts[3] > 0,
                status: status.clone(),
            });
        }
        segments
    }

    /// The start of the window: the day start for `today`, `now - length` (excluded) otherwise.
    fn window_start(&self, window: Window) -> Ms {
        match window {
            Window::Today => self.day_start,
            Window::Last15m => self.now - 15 * 60_000,
            Window::Last30m => self.now - 30 * 60_000,
            Window::Last60m => self.now - 60 * 60_000,
        }
    }

    /// Whether an instant counts in the window.
    fn counts_in(&self, window: Window, time: Ms) -> bool {
        let start = self.window_start(window);
        let after_start = match window {
            Window::Today => time >= start,
            _ => time > start,
        };
        after_start && time <= self.now
    }

    fn targets(&self, queue: &str) -> QueueTargets {
        match self.site.queues.iter().find(|q| q.id == queue) {
            Some(config) => QueueTargets {
                name: config.name.clone(),
                threshold: config.sl_threshold.millis().0,
                target: config.sl_target,
                short_abandon: config.short_abandon.millis().0,
                variant: config.sl_variant.unwrap_or(self.site.sl_variant),
                aht_target: config.aht_target.map(|aht| aht.millis().0),
            },
            None => QueueTargets {
                name: None,
                threshold: DEFAULT_THRESHOLD,
                target: DEFAULT_TARGET,
                short_abandon: DEFAULT_SHORT_ABANDON,
                variant: self.site.sl_variant,
                aht_target: None,
            },
        }
    }

    /// The flow of the contacts of `queues` (and `channel`, when given) over the window.
    fn flow(&self, window: Window, queues: &[String], channel: Option<Channel>) -> Flow {
        let selected = |queue: &String, of: Option<Channel>| {
            queues.contains(queue) && channel.is_none_or(|c| of == Some(c))
        };
        let mut flow = Flow::default();
        for offer in &self.facts.offers {
            if selected(&offer.queue, offer.channel) && self.counts_in(window, offer.time) {
                flow.offered += 1;
            }
        }
        for exit in &self.facts.exits {
            if !selected(&exit.queue, exit.channel) || !self.counts_in(window, exit.time) {
                continue;
            }
            let targets = self.targets(&exit.queue);
            let within = exit.wait <= targets.threshold;
            match exit.kind {
                ExitKind::Answered => {
                    flow.answered += 1;
                    flow.answered_within += u64::from(within);
                    flow.wait_answered += exit.wait;
                    flow.max_wait = flow.max_wait.max(Some(exit.wait));
                    flow.waits.push(exit.wait);
                }
                ExitKind::Abandoned => {
                    flow.abandoned += 1;
                    flow.abandoned_within += u64::from(within);
                    flow.short_abandoned += u64::from(exit.wait < targets.short_abandon);
                }
                ExitKind::Dequeued => flow.dequeued += 1,
                ExitKind::FlowedOut => flow.flowed_out += 1,
            }
        }
        flow
    }

    fn waiting(&self, queues: &[String], channel: Option<Channel>) -> Vec<&Wait> {
        self.facts
            .waiting
            .iter()
            .filter(|wait| {
                queues.contains(&wait.queue) && channel.is_none_or(|c| wait.channel == Some(c))
            })
            .collect()
    }

    fn advisor_times(&self, window: Window, advisor: &str) -> Times {
        let mut times = Times::default();
        let Some(now_state) = self.advisors.get(advisor) else {
            return times;
        };
        let start = self.window_start(window);
        for segment in &now_state.segments {
            let from = segment.start.max(start);
            let to = segment.end.unwrap_or(self.now).min(self.now);
            let span = (to - from).max(0);
            if span == 0 {
                continue;
            }
            if segment.handling() {
                times.handling += span;
            } else if segment.ringing || segment.status == Status::Available {
                times.available += span;
            }
            if segment.status != Status::LoggedOut {
                times.login += span;
            }
            if let Status::Pause(reason) = &segment.status {
                *times.pause.entry(reason.clone()).or_default() += span;
            }
        }
        if let Some(log) = self.logs.get(advisor) {
            for (time, reason) in &log.pauses_started {
                if self.counts_in(window, *time) {
                    *times.pauses_started.entry(reason.clone()).or_default() += 1;
                }
            }
        }
        times
    }

    /// Handling, transfers and missed offers of advisors, over the window.
    fn advisor_indicators(&self, window: Window, advisors: &[&str]) -> Map<String, Value> {
        let mut handling = Handling::default();
        for handled in &self.facts.handled {
            if advisors.contains(&handled.advisor.as_str()) && self.counts_in(window, handled.time)
            {
                handling.add(handled);
            }
        }
        let transfers = self
            .facts
            .transfers
            .iter()
            .filter(|t| advisors.contains(&t.advisor.as_str()) && self.counts_in(window, t.time))
            .count() as u64;
        let missed = self
            .facts
            .missed
            .iter()
            .filter(|(time, a)| advisors.contains(&a.as_str()) && self.counts_in(window, *time))
            .count() as u64;
        let mut times = Times::default();
        for advisor in advisors {
            times.merge(&self.advisor_times(window, advisor));
        }
        let today = window == Window::Today;
        let mut map = handling_json(&handling);
        map.insert("transfers".into(), json!(transfers));
        map.insert("transfer_rate".into(), ratio(transfers, handling.handled));
        map.insert("missed_offers".into(), json!(missed));
        let occupancy = if times.handling + times.available == 0 {
            Value::Null
        } else {
            json!(times.handling as f64 / (times.handling + times.available) as f64)
        };
        map.insert("occupancy".into(), occupancy);
        map.insert("handling_time".into(), json!(secs(times.handling)));
        map.insert("available_time".into(), json!(secs(times.available)));
        map.insert(
            "login_time".into(),
            if today {
                json!(secs(times.login))
            } else {
                Value::Null
            },
        );
        map.insert(
            "pause_time".into(),
            if today {
                json!(secs(times.pause.values().sum()))
            } else {
                Value::Null
            },
        );
        if today {
            let reasons: BTreeSet<&String> = times
                .pause
                .iter()
                .filter(|(_, time)| **time > 0)
                .map(|(reason, _)| reason)
                .chain(times.pauses_started.keys())
                .collect();
            let pauses: Vec<Value> = reasons
                .into_iter()
                .map(|reason| {
                    json!({
                        "reason": reason,
                        "time": secs(times.pause.get(reason).copied().unwrap_or(0)),
                        "count": times.pauses_started.get(reason).copied().unwrap_or(0),
                    })
                })
                .collect();
            if !pauses.is_empty() {
                map.insert("pauses".into(), Value::Array(pauses));
            }
        }
        map
    }

    fn format(&self, time: Ms) -> String {
        DateTime::<Utc>::from_timestamp_millis(time)
            .expect("a representable instant")
            .with_timezone(&self.zone)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn queue_ids(&self) -> BTreeSet<String> {
        let mut ids = self.facts.queues_seen.clone();
        ids.extend(self.site.queues.iter().map(|q| q.id.clone()));
        ids
    }

    /// Queue indicators over `queues` (one queue, with or without a channel).
    fn queue_indicators(
        &self,
        window: Window,
        queue: &str,
        channel: Option<Channel>,
    ) -> Map<String, Value> {
        let queues = [queue.to_owned()];
        let targets = self.targets(queue);
        let flow = self.flow(window, &queues, channel);
        let mut map = flow_json(&flow, targets.variant);
        let selected = |q: &Option<String>, c: Option<Channel>| {
            q.as_deref() == Some(queue) && channel.is_none_or(|ch| c == Some(ch))
        };
        let mut handling = Handling::default();
        for handled in &self.facts.handled {
            if selected(&handled.queue, handled.channel) && self.counts_in(window, handled.time) {
                handling.add(handled);
            }
        }
        map.extend(handling_json(&handling));
        let transferred = self
            .facts
            .transfers
            .iter()
            .filter(|t| selected(&t.queue, t.channel) && self.counts_in(window, t.time))
            .count() as u64;
        map.insert("transferred".into(), json!(transferred));
        map.insert("transfer_rate".into(), ratio(transferred, flow.answered));
        map.extend(live_json(&self.waiting(&queues, channel), self.now));
        map
    }

    fn members(&self, team: &str) -> Vec<&str> {
        self.advisors
            .iter()
            .filter(|(_, advisor)| advisor.team == team)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn states_of<'a>(&'a self, advisors: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        advisors.iter().map(|id| self.advisors[*id].state)
    }

    fn queue_view(&self, window: Window, queue: &str) -> Value {
        let targets = self.targets(queue);
        let mut map = Map::new();
        map.insert("queue".into(), json!(queue));
        if let Some(name) = &targets.name {
            map.insert("name".into(), json!(name));
        }
        map.insert("window".into(), json!(window.as_str()));
        map.insert("sl_threshold".into(), json!(secs(targets.threshold)));
        map.insert("sl_target".into(), json!(targets.target));
        map.insert("short_abandon".into(), json!(secs(targets.short_abandon)));
        if let Some(aht) = targets.aht_target {
            map.insert("aht_target".into(), json!(secs(aht)));
        }
        map.extend(self.queue_indicators(window, queue, None));
        let serving: Vec<&str> = self
            .site
            .teams
            .iter()
            .filter(|team| team.queues.iter().any(|q| q == queue))
            .flat_map(|team| self.members(&team.id))
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .collect();
        map.insert("advisors".into(), by_state_json(self.states_of(&serving)));
        let channels: Vec<Value> = self
            .facts
            .channels_seen
            .get(queue)
            .into_iter()
            .flatten()
            .map(|&channel| {
                let mut entry = Map::new();
                entry.insert("channel".into(), json!(channel.as_str()));
                entry.extend(self.queue_indicators(window, queue, Some(channel)));
                Value::Object(entry)
            })
            .collect();
        map.insert("channels".into(), Value::Array(channels));
        Value::Object(map)
    }

    fn group(
        &self,
        window: Window,
        queues: &[String],
        advisors: &[&str],
        variant: SlVariant,
    ) -> Map<String, Value> {
        let mut map = flow_json(&self.flow(window, queues, None), variant);
        map.extend(self.advisor_indicators(window, advisors));
        map.extend(live_json(&self.waiting(queues, None), self.now));
        map.insert("advisors".into(), by_state_json(self.states_of(advisors)));
        map
    }

    fn team_ids(&self) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = self.site.teams.iter().map(|t| t.id.clone()).collect();
        ids.extend(self.advisors.values().map(|advisor| advisor.team.clone()));
        ids
    }

    fn team_view(&self, window: Window, team: &str) -> Value {
        let config = self.site.teams.iter().find(|t| t.id == team);
        let queues: Vec<String> = config
            .map(|t| t.queues.iter().cloned().collect::<BTreeSet<String>>())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let members = self.members(team);
        let variant = config
            .and_then(|t| t.sl_variant)
            .unwrap_or(self.site.sl_variant);
        let mut map = Map::new();
        map.insert("team".into(), json!(team));
        if let Some(name) = config.and_then(|t| t.name.as_ref()) {
            map.insert("name".into(), json!(name));
        }
        map.insert("window".into(), json!(window.as_str()));
        map.insert("queues".into(), json!(queues));
        map.insert("members".into(), json!(members));
        map.extend(self.group(window, &queues, &members, variant));
        Value::Object(map)
    }

    fn advisor_view(&self, window: Window, id: &str) -> Value {
        let advisor = &self.advisors[id];
        let mut map = Map::new();
        map.insert("advisor".into(), json!(id));
        if let Some(name) = &advisor.name {
            map.insert("name".into(), json!(name));
        }
        map.insert("team".into(), json!(advisor.team));
        map.insert("window".into(), json!(window.as_str()));
        map.insert("state".into(), json!(advisor.state));
        if let Some(reason) = &advisor.reason {
            map.insert("reason".into(), json!(reason));
        }
        map.insert(
            "state_since".into(),
            json!(advisor.state_since.map(|t| self.format(t))),
        );
        map.insert(
            "time_in_state".into(),
            json!(advisor.state_since.map(|t| secs(self.now - t))),
        );
        map.insert(
            "current_contact_duration".into(),
            json!(advisor.current_contact_since.map(|t| secs(self.now - t))),
        );
        if window == Window::Today
            && let Some(first) = advisor.first_login_today
        {
            map.insert("first_login".into(), json!(self.format(first)));
        }
        map.extend(self.advisor_indicators(window, &[id]));
        Value::Object(map)
    }

    /// The site view over `window`, with the JSON shape of `vigie_core::SiteView`.
    pub fn site_view(&self, window: Window) -> Value {
        let queues: Vec<String> = self.queue_ids().into_iter().collect();
        let advisors: Vec<&str> = self.advisors.keys().map(String::as_str).collect();
        json!({
            "as_of": self.format(self.now),
            "site": self.site.id,
            "window": window.as_str(),
            "totals": self.group(window, &queues, &advisors, self.site.sl_variant),
            "queues": queues.iter().map(|q| self.queue_view(window, q)).collect::<Vec<_>>(),
            "teams": self
                .team_ids()
                .iter()
                .map(|t| self.team_view(window, t))
                .collect::<Vec<_>>(),
            "advisors": advisors
                .iter()
                .map(|a| self.advisor_view(window, a))
                .collect::<Vec<_>>(),
        })
    }
}

/// Differences between an expected and a found JSON value, as `path: expected X, found Y`
/// lines. Numbers are equal when within 1e-9 relative (or exactly equal); objects must have the
/// same keys; arrays the same length and order.
pub fn differences(expected: &Value, found: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(expected, found, "", &mut out);
    out
}

/// A readable name for an element of a list: its id when it has one.
fn element_name(value: &Value, index: usize) -> String {
    for key in ["queue", "advisor", "team", "channel", "reason"] {
        if let Some(id) = value.get(key).and_then(Value::as_str) {
            return format!("[{key}={id}]");
        }
    }
    format!("[{index}]")
}

fn numbers_equal(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn diff(expected: &Value, found: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, found) {
        (Value::Object(e), Value::Object(f)) => {
            for key in e.keys().chain(f.keys()).collect::<BTreeSet<_>>() {
                let sub = format!("{path}.{key}");
                match (e.get(key), f.get(key)) {
                    (Some(ev), Some(fv)) => diff(ev, fv, &sub, out),
                    (Some(ev), None) => out.push(format!("{sub}: expected {ev}, field absent")),
                    (None, Some(fv)) => out.push(format!("{sub}: unexpected field, found {fv}")),
                    (None, None) => unreachable!("a key of one of them"),
                }
            }
        }
        (Value::Array(e), Value::Array(f)) => {
            let names = |list: &[Value]| -> Vec<String> {
                list.iter()
                    .enumerate()
                    .map(|(index, v)| element_name(v, index))
                    .collect()
            };
            let (expected_names, found_names) = (names(e), names(f));
            if expected_names == found_names {
                for (index, (ev, fv)) in e.iter().zip(f).enumerate() {
                    diff(ev, fv, &format!("{path}{}", element_name(ev, index)), out);
                }
                return;
            }
            out.push(format!(
                "{path}: expected elements {expected_names:?}, found {found_names:?}"
            ));
            // Compare the elements both have, by name.
            for (ev, name) in e.iter().zip(&expected_names) {
                if let Some(position) = found_names.iter().position(|n| n == name) {
                    diff(ev, &f[position], &format!("{path}{name}"), out);
                }
            }
        }
        (Value::Number(e), Value::Number(f)) => {
            let same = match (e.as_u64(), f.as_u64()) {
                (Some(a), Some(b)) => a == b,
                _ => numbers_equal(
                    e.as_f64().expect("a JSON number"),
                    f.as_f64().expect("a JSON number"),
                ),
            };
            if !same {
                out.push(format!("{path}: expected {e}, found {f}"));
            }
        }
        _ => {
            if expected != found {
                out.push(format!("{path}: expected {expected}, found {found}"));
            }
        }
    }
}
