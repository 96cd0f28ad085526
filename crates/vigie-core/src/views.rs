//! The indicators a supervisor reads, per queue (and channel), team, advisor and site, over a
//! window. Field names are the public indicator names (docs/indicators.md): the JSON of
//! `vigie replay`, and later the API, use them as they are.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::advisor::{DayTimes, Display, Status};
use crate::config::{SlVariant, UNASSIGNED_TEAM};
use crate::contact::QueueChannel;
use crate::event::Channel;
use crate::processor::SiteProcessor;
use crate::tally::{AdvisorTally, QueueTally, Range};
use crate::time::{DayCache, Millis, Timestamp};

pub use crate::intervals::{INTERVAL_LENGTH, IntervalServiceLevel};

/// The period indicators are computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    /// Since the start of the site-local day.
    #[serde(rename = "today")]
    Today,
    /// The trailing 15 minutes.
    #[serde(rename = "15m")]
    Last15m,
    /// The trailing 30 minutes.
    #[serde(rename = "30m")]
    Last30m,
    /// The trailing 60 minutes.
    #[serde(rename = "60m")]
    Last60m,
}

impl Window {
    /// Every window.
    pub const ALL: [Window; 4] = [
        Window::Today,
        Window::Last15m,
        Window::Last30m,
        Window::Last60m,
    ];

    /// The name used in views and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Today => "today",
            Window::Last15m => "15m",
            Window::Last30m => "30m",
            Window::Last60m => "60m",
        }
    }

    /// The length of a trailing window.
    pub fn trailing(self) -> Option<Millis> {
        match self {
            Window::Today => None,
            Window::Last15m => Some(Millis::from_mins(15)),
            Window::Last30m => Some(Millis::from_mins(30)),
            Window::Last60m => Some(Millis::from_mins(60)),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(text: &str) -> Result<Window, String> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == text)
            .ok_or_else(|| format!("unknown window {text:?}; expected today, 15m, 30m or 60m"))
    }
}

/// How a queue's contacts flowed through it: counted when they left the queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowIndicators {
    /// Contacts that entered the queue (counted at entry; a transfer into the queue is a new offer).
    pub offered: u64,
    /// Contacts answered by an advisor.
    pub answered: u64,
    /// Contacts whose customer left before an answer.
    pub abandoned: u64,
    /// Abandons with a wait strictly below the queue's `short_abandon`.
    pub short_abandoned: u64,
    /// Contacts that left for voicemail, callback, timeout or closing.
    pub dequeued: u64,
    /// Contacts moved to another queue without an answer.
    pub flowed_out: u64,
    /// Answered with a wait of at most the queue's `sl_threshold`.
    pub answered_within_threshold: u64,
    /// Abandoned with a wait of at most the queue's `sl_threshold`.
    pub abandoned_within_threshold: u64,
    /// answered within T / (answered + abandoned - short abandoned).
    pub sl_offered: Option<f64>,
    /// answered within T / answered.
    pub sl_answered: Option<f64>,
    /// (answered within T + abandoned within T) / (answered + abandoned).
    pub sl_positive: Option<f64>,
    /// The variant named by `service_level_variant`.
    pub service_level: Option<f64>,
    /// Which formula `service_level` uses.
    pub service_level_variant: SlVariant,
    /// (abandoned - short) / (answered + abandoned - short).
    pub abandon_rate: Option<f64>,
    /// Average wait of answered contacts, in seconds.
    pub asa: Option<f64>,
    /// Longest wait of an answered contact, in seconds.
    pub max_wait_answered: Option<f64>,
    /// Median wait of answered contacts, in seconds (1% resolution).
    pub wait_p50: Option<f64>,
    /// 90th percentile wait of answered contacts, in seconds (1% resolution).
    pub wait_p90: Option<f64>,
}

/// How contacts were handled: counted when the advisor's after-contact work ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HandleIndicators {
    /// Contacts (advisor parts of contacts) completed.
    pub handled: u64,
    /// (talk + hold + after-contact work) / handled, in seconds.
    pub aht: Option<f64>,
    /// Talk time per handled contact, in seconds.
    pub avg_talk: Option<f64>,
    /// Hold time per handled contact, in seconds.
    pub avg_hold: Option<f64>,
    /// After-contact work per handled contact, in seconds.
    pub avg_acw: Option<f64>,
    /// Handled contacts that were put on hold at least once.
    pub held: u64,
    /// held / handled.
    pub hold_rate: Option<f64>,
}

/// Advisors counted by live state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AdvisorsByState {
    /// Ringing.
    pub offered: u32,
    /// In conversation.
    pub talking: u32,
    /// With a customer on hold.
    pub on_hold: u32,
    /// In after-contact work.
    pub acw: u32,
    /// In pause (any reason).
    pub pause: u32,
    /// Available and idle.
    pub available: u32,
    /// Logged out.
    pub logged_out: u32,
}

impl AdvisorsByState {
    fn count(&mut self, display: Display) {
        let slot = match display {
            Display::Offered => &mut self.offered,
            Display::Talking => &mut self.talking,
            Display::OnHold => &mut self.on_hold,
            Display::Acw => &mut self.acw,
            Display::Pause(_) => &mut self.pause,
            Display::Available => &mut self.available,
            Display::LoggedOut => &mut self.logged_out,
        };
        *slot += 1;
    }
}

/// What waits in a queue right now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveQueue {
    /// Contacts waiting now.
    pub in_queue: u64,
    /// Age of the oldest waiting contact, in seconds.
    pub longest_wait: Option<f64>,
}

/// A queue, or one channel of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueIndicators {
    /// Flow through the queue.
    #[serde(flatten)]
    pub flow: FlowIndicators,
    /// Handling of its answered contacts.
    #[serde(flatten)]
    pub handling: HandleIndicators,
    /// Contacts transferred by an advisor after being answered from this queue.
    pub transferred: u64,
    /// transferred / answered.
    pub transfer_rate: Option<f64>,
    /// What waits now.
    #[serde(flatten)]
    pub live: LiveQueue,
}

/// One channel of a queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelView {
    /// The channel.
    pub channel: Channel,
    /// Its indicators.
    #[serde(flatten)]
    pub indicators: QueueIndicators,
}

/// A queue's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueView {
    /// Queue id.
    pub queue: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The window of the indicators.
    pub window: Window,
    /// Service-level answer time T, in seconds.
    pub sl_threshold: f64,
    /// Service-level target, a fraction.
    pub sl_target: f64,
    /// Short-abandon threshold, in seconds.
    pub short_abandon: f64,
    /// Target average handle time, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aht_target: Option<f64>,
    /// Indicators over all channels.
    #[serde(flatten)]
    pub indicators: QueueIndicators,
    /// Advisors of the teams serving the queue, by live state.
    pub advisors: AdvisorsByState,
    /// The same per channel, for channels the queue saw.
    pub channels: Vec<ChannelView>,
    /// The service level of each 15-minute interval of the site-local day, from the first
    /// interval to the current one, with the queue's variant: the same in every window. Empty
    /// in the queues of a [`SiteView`] (too large for a whole site).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_level_by_interval: Vec<IntervalServiceLevel>,
}

/// Time spent and contacts handled by advisors.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdvisorIndicators {
    /// Handling counts and averages.
    #[serde(flatten)]
    pub handling: HandleIndicators,
    /// Transfers made.
    pub transfers: u64,
    /// transfers / handled.
    pub transfer_rate: Option<f64>,
    /// Offers not answered (ring no answer, rejected).
    pub missed_offers: u64,
    /// handling time / (handling + available idle time).
    pub occupancy: Option<f64>,
    /// Time talking, on hold or in after-contact work, in seconds.
    pub handling_time: f64,
    /// Time available and handling nothing, in seconds.
    pub available_time: f64,
    /// Time logged in, in seconds (window `today` only).
    pub login_time: Option<f64>,
    /// Time in pause status, in seconds (window `today` only).
    pub pause_time: Option<f64>,
    /// Pause time and number of pauses per reason (window `today` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<PauseTime>,
}

/// Pause time for one reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PauseTime {
    /// Reason code.
    pub reason: String,
    /// Time in pause with this reason, in seconds.
    pub time: f64,
    /// Pauses started with this reason.
    pub count: u32,
}

/// One advisor's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdvisorView {
    /// Advisor id.
    pub advisor: String,
    /// Display name, from their login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Team id.
    pub team: String,
    /// The window of the indicators.
    pub window: Window,
    /// Live state: offered, talking, on_hold, acw, pause, available, logged_out.
    pub state: &'static str,
    /// Pause reason, when the status is pause (also while finishing a contact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the current state began.
    pub state_since: Option<String>,
    /// Seconds in the current state.
    pub time_in_state: Option<f64>,
    /// Seconds since the contact in progress was answered.
    pub current_contact_duration: Option<f64>,
    /// First login of the day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_login: Option<String>,
    /// Indicators over the window.
    #[serde(flatten)]
    pub indicators: AdvisorIndicators,
}

/// An advisor's live state, without indicators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdvisorState {
    /// Advisor id.
    pub advisor: String,
    /// Display name, from their login.
    pub name: Option<String>,
    /// Team id.
    pub team: String,
    /// Live state: offered, talking, on_hold, acw, pause, available, logged_out.
    pub state: &'static str,
    /// Pause reason, when the status is pause.
    pub reason: Option<String>,
}

/// A team's (or the whole site's) view: contact flow through its queues, handling by its
/// advisors.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupIndicators {
    /// Flow through the campaign queues (all queues for the site).
    #[serde(flatten)]
    pub flow: FlowIndicators,
    /// Handling by the members (all advisors for the site).
    #[serde(flatten)]
    pub advisors_indicators: AdvisorIndicators,
    /// What waits now in those queues.
    #[serde(flatten)]
    pub live: LiveQueue,
    /// Members by live state.
    pub advisors: AdvisorsByState,
}

/// A team's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TeamView {
    /// Team id.
    pub team: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The window of the indicators.
    pub window: Window,
    /// Queues of the team's campaign.
    pub queues: Vec<String>,
    /// Member advisor ids.
    pub members: Vec<String>,
    /// Indicators.
    #[serde(flatten)]
    pub indicators: GroupIndicators,
    /// The service level of each 15-minute interval of the site-local day over the campaign
    /// queues (each with its own thresholds), with the team's variant, from the first interval
    /// to the current one: the same in every window. Empty in the teams of a [`SiteView`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_level_by_interval: Vec<IntervalServiceLevel>,
}

/// Everything about a site over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteView {
    /// The instant the view describes, in the site's time zone.
    pub as_of: String,
    /// Site id.
    pub site: String,
    /// The window of the indicators.
    pub window: Window,
    /// The site as a whole.
    pub totals: GroupIndicators,
    /// Every queue, by id.
    pub queues: Vec<QueueView>,
    /// Every team, by id.
    pub teams: Vec<TeamView>,
    /// Every advisor, by id.
    pub advisors: Vec<AdvisorView>,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Average in seconds, rounded to the millisecond.
fn average(total: Millis, count: u64) -> Option<f64> {
    (count > 0).then(|| (total.0 as f64 / count as f64).round() / 1000.0)
}

fn secs(span: Millis) -> f64 {
    span.as_secs_f64()
}

impl FlowIndicators {
    fn from_tally(tally: &QueueTally, variant: SlVariant) -> FlowIndicators {
        let counted = (tally.answered + tally.abandoned).saturating_sub(tally.short_abandoned);
        let sl_offered = ratio(tally.answered_within_threshold, counted);
        let sl_answered = ratio(tally.answered_within_threshold, tally.answered);
        let sl_positive = ratio(
            tally.answered_within_threshold + tally.abandoned_within_threshold,
            tally.answered + tally.abandoned,
        );
        FlowIndicators {
            offered: tally.offered,
            answered: tally.answered,
            abandoned: tally.abandoned,
            short_abandoned: tally.short_abandoned,
            dequeued: tally.dequeued,
            flowed_out: tally.flowed_out,
            answered_within_threshold: tally.answered_within_threshold,
            abandoned_within_threshold: tally.abandoned_within_threshold,
            sl_offered,
            sl_answered,
            sl_positive,
            service_level: match variant {
                SlVariant::Offered => sl_offered,
                SlVariant::Answered => sl_answered,
                SlVariant::Positive => sl_positive,
            },
            service_level_variant: variant,
            abandon_rate: ratio(
                tally.abandoned.saturating_sub(tally.short_abandoned),
                counted,
            ),
            asa: average(tally.wait_answered, tally.answered),
            max_wait_answered: tally.max_wait_answered.map(secs),
            wait_p50: tally.waits.quantile(0.5).map(secs),
            wait_p90: tally.waits.quantile(0.9).map(secs),
        }
    }
}

impl HandleIndicators {
    fn new(handled: u64, talk: Millis, hold: Millis, acw: Millis, held: u64) -> HandleIndicators {
        HandleIndicators {
            handled,
            aht: average(talk + hold + acw, handled),
            avg_talk: average(talk, handled),
            avg_hold: average(hold, handled),
            avg_acw: average(acw, handled),
            held,
            hold_rate: ratio(held, handled),
        }
    }
}

/// Handling and idle time, plus the day's times for `today`.
#[derive(Default)]
struct AdvisorTimes {
    handling: Millis,
    idle: Millis,
    day: Option<DayTimes>,
}

impl SiteProcessor {
    fn range(&self, window: Window, now: Timestamp) -> Range {
        match window.trailing() {
            Some(length) => Range {
                after: now - length,
                until: now,
            },
            None => Range {
                after: Timestamp(self.day_of(now).start.0 - 1),
                until: now,
            },
        }
    }

    fn queue_channel_tally(
        &self,
        qc: &QueueChannel,
        window: Window,
        now: Timestamp,
        into: &mut QueueTally,
    ) {
        let Some(state) = self.queue_channel(*qc) else {
            return;
        };
        let thresholds = self.queue_settings[qc.queue as usize].thresholds;
        match window {
            Window::Today => {
                let day_start = self.day_of(now).start;
                state.flow.tally_day(day_start, now, thresholds, into);
                state.handling.tally_day(day_start, now, thresholds, into);
            }
            _ => {
                let range = self.range(window, now);
                state.flow.tally_range(range, thresholds, into);
                state.handling.tally_range(range, thresholds, into);
            }
        }
    }

    fn live_queue(
        &self,
        channels: impl Iterator<Item = QueueChannel>,
        now: Timestamp,
    ) -> LiveQueue {
        let mut in_queue = 0;
        let mut oldest: Option<Timestamp> = None;
        for qc in channels {
            if let Some(state) = self.queue_channel(qc) {
                in_queue += state.waiting.len() as u64;
                if let Some(since) = state.waiting.first().map(|waiter| waiter.since) {
                    oldest = Some(oldest.map_or(since, |o| o.min(since)));
                }
            }
        }
        LiveQueue {
            in_queue,
            longest_wait: oldest.map(|since| secs(now - since).max(0.0)),
        }
    }

    /// The contact waiting longest in a queue (all channels): its id and since when.
    pub fn longest_waiting_contact(&self, queue: &str) -> Option<(&str, Timestamp)> {
        let index = self.queues.get(queue)?;
        let waiter = self
            .channels_of(index)
            .filter_map(|qc| self.queue_channel(qc)?.waiting.first())
            .min_by_key(|waiter| (waiter.since, waiter.key))?;
        Some((&waiter.id, waiter.since))
    }

    fn queue_indicators(
        &self,
        tally: &QueueTally,
        variant: SlVariant,
        live: LiveQueue,
    ) -> QueueIndicators {
        QueueIndicators {
            flow: FlowIndicators::from_tally(tally, variant),
            handling: HandleIndicators::new(
                tally.handled,
                tally.talk,
                tally.hold,
                tally.acw,
                tally.held,
            ),
            transferred: tally.transferred,
            transfer_rate: ratio(tally.transferred, tally.answered),
            live,
        }
    }

    fn advisor_times(&self, advisor: u32, window: Window, now: Timestamp) -> AdvisorTimes {
        let state = &self.advisor_state[advisor as usize];
        let mut days = DayCache::new(self.calendar);
        match window {
            Window::Today => {
                let day = state.day_times(days.day_of(now), now, &mut days);
                AdvisorTimes {
                    handling: day.handling,
                    idle: day.idle,
                    day: Some(day),
                }
            }
            _ => {
                let range = self.range(window, now);
                let (handling, idle) = state.occupancy_times(range.after, range.until);
                AdvisorTimes {
                    handling,
                    idle,
                    day: None,
                }
            }
        }
    }

    fn advisor_tally(&self, advisor: u32, window: Window, now: Timestamp, into: &mut AdvisorTally) {
        let log = &self.advisor_state[advisor as usize].tally;
        match window {
            Window::Today => log.tally_day(self.day_of(now).start, now, (), into),
            _ => log.tally_range(self.range(window, now), (), into),
        }
    }

    fn advisor_indicators(&self, tally: &AdvisorTally, times: &AdvisorTimes) -> AdvisorIndicators {
        let (login_time, pause_time, pauses) = match &times.day {
            Some(day) => {
                let mut pauses: Vec<PauseTime> = day
                    .pauses
                    .iter()
                    .map(|(reason, time, count)| PauseTime {
                        reason: self.reasons.name(*reason).to_owned(),
                        time: secs(*time),
                        count: *count,
                    })
                    .collect();
                pauses.sort_by(|a, b| a.reason.cmp(&b.reason));
                let total = day
                    .pauses
                    .iter()
                    .fold(Millis::ZERO, |sum, (_, time, _)| sum + *time);
                (Some(secs(day.logged_in)), Some(secs(total)), pauses)
            }
            None => (None, None, Vec::new()),
        };
        AdvisorIndicators {
            handling: HandleIndicators::new(
                tally.handled,
                tally.talk,
                tally.hold,
                tally.acw,
                tally.held,
            ),
            transfers: tally.transfers,
            transfer_rate: ratio(tally.transfers, tally.handled),
            missed_offers: tally.missed_offers,
            occupancy: ratio(
                times.handling.0.max(0) as u64,
                (times.handling.0 + times.idle.0).max(0) as u64,
            ),
            handling_time: secs(times.handling),
            available_time: secs(times.idle),
            login_time,
            pause_time,
            pauses,
        }
    }

    pub(crate) fn team_name(&self, advisor: u32) -> &str {
        self.team_of(advisor)
            .map_or(UNASSIGNED_TEAM, |team| self.teams.name(team))
    }

    /// One advisor's view, by index.
    fn advisor_view_at(&self, advisor: u32, window: Window, now: Timestamp) -> AdvisorView {
        let state = &self.advisor_state[advisor as usize];
        let live = state.live(now);
        let mut tally = AdvisorTally::default();
        self.advisor_tally(advisor, window, now, &mut tally);
        let times = self.advisor_times(advisor, window, now);
        let zone = self.calendar.zone();
        let first_login = times
            .day
            .as_ref()
            .and_then(DayTimes::first_login)
            .map(|t| t.to_rfc3339_in(zone));
        AdvisorView {
            advisor: self.advisors.name(advisor).to_owned(),
            name: state.name.as_ref().map(|(_, name)| name.to_string()),
            team: self.team_name(advisor).to_owned(),
            window,
            state: display_name(live.display),
            reason: match live.status {
                Status::Pause(reason) => Some(self.reasons.name(reason).to_owned()),
                _ => None,
            },
            state_since: live.since.map(|t| t.to_rfc3339_in(zone)),
            time_in_state: live.since.map(|t| secs(now - t).max(0.0)),
            current_contact_duration: live.contact_start.map(|t| secs(now - t).max(0.0)),
            first_login,
            indicators: self.advisor_indicators(&tally, &times),
        }
    }

    /// Aggregates queues and advisors into a team or site view.
    fn group_indicators(
        &self,
        queues: &[u32],
        advisors: &[u32],
        variant: SlVariant,
        window: Window,
        now: Timestamp,
    ) -> GroupIndicators {
        let mut queue_tally = QueueTally::default();
        let channels: Vec<QueueChannel> =
            queues.iter().flat_map(|&q| self.channels_of(q)).collect();
        for qc in &channels {
            self.queue_channel_tally(qc, window, now, &mut queue_tally);
        }
        let mut tally = AdvisorTally::default();
        let mut times = AdvisorTimes {
            day: (window == Window::Today).then(DayTimes::default),
            ..AdvisorTimes::default()
        };
        let mut by_state = AdvisorsByState::default();
        for &advisor in advisors {
            self.advisor_tally(advisor, window, now, &mut tally);
            let own = self.advisor_times(advisor, window, now);
            times.handling += own.handling;
            times.idle += own.idle;
            if let (Some(total), Some(own)) = (times.day.as_mut(), own.day.as_ref()) {
                total.merge(own);
            }
            by_state.count(self.advisor_state[advisor as usize].live(now).display);
        }
        GroupIndicators {
            flow: FlowIndicators::from_tally(&queue_tally, variant),
            advisors_indicators: self.advisor_indicators(&tally, &times),
            live: self.live_queue(channels.into_iter(), now),
            advisors: by_state,
        }
    }

    /// Advisors per team index (`None` for unassigned), in id order.
    fn members(&self) -> BTreeMap<Option<u32>, Vec<u32>> {
        self.members_of(|_| true)
    }

    /// Advisors of the teams `keep` accepts, per team, in id order: one pass over the
    /// advisors, and only the kept ones sorted (a team's or a queue's view does not pay for
    /// sorting the whole site).
    fn members_of(&self, keep: impl Fn(Option<u32>) -> bool) -> BTreeMap<Option<u32>, Vec<u32>> {
        let mut members: BTreeMap<Option<u32>, Vec<u32>> = BTreeMap::new();
        for advisor in 0..self.advisors.len() as u32 {
            let team = self.team_of(advisor);
            if keep(team) {
                members.entry(team).or_default().push(advisor);
            }
        }
        for advisors in members.values_mut() {
            advisors.sort_by(|a, b| self.advisors.name(*a).cmp(self.advisors.name(*b)));
        }
        members
    }

    /// The teams that have members (`None`: unassigned advisors), without listing them.
    fn teams_with_members(&self) -> std::collections::BTreeSet<Option<u32>> {
        (0..self.advisors.len() as u32)
            .map(|advisor| self.team_of(advisor))
            .collect()
    }

    fn queue_view_at(
        &self,
        queue: u32,
        window: Window,
        now: Timestamp,
        members: &BTreeMap<Option<u32>, Vec<u32>>,
    ) -> QueueView {
        let settings = &self.queue_settings[queue as usize];
        let mut total = QueueTally::default();
        let mut channels = Vec::new();
        for qc in self.channels_of(queue) {
            let mut tally = QueueTally::default();
            self.queue_channel_tally(&qc, window, now, &mut tally);
            total.merge(&tally);
            channels.push(ChannelView {
                channel: qc.channel,
                indicators: self.queue_indicators(
                    &tally,
                    settings.variant,
                    self.live_queue(std::iter::once(qc), now),
                ),
            });
        }
        let mut by_state = AdvisorsByState::default();
        for (team, advisors) in members {
            let serves =
                team.is_some_and(|t| self.team_settings[t as usize].queues.contains(&queue));
            if serves {
                for &advisor in advisors {
                    by_state.count(self.advisor_state[advisor as usize].live(now).display);
                }
            }
        }
        QueueView {
            queue: self.queues.name(queue).to_owned(),
            name: settings.config.name.clone(),
            window,
            sl_threshold: secs(settings.thresholds.sl_threshold),
            sl_target: settings.config.sl_target,
            short_abandon: secs(settings.thresholds.short_abandon),
            aht_target: settings.config.aht_target.map(|d| secs(d.millis())),
            indicators: self.queue_indicators(
                &total,
                settings.variant,
                self.live_queue(self.channels_of(queue), now),
            ),
            advisors: by_state,
            channels,
            service_level_by_interval: Vec::new(),
        }
    }

    fn team_view_at(
        &self,
        team: Option<u32>,
        window: Window,
        now: Timestamp,
        members: &[u32],
    ) -> TeamView {
        let (id, name, queues, variant) = match team {
            Some(team) => {
                let settings = &self.team_settings[team as usize];
                (
                    settings.id.clone(),
                    settings.name.clone(),
                    settings.queues.clone(),
                    settings.variant,
                )
            }
            None => (
                UNASSIGNED_TEAM.to_owned(),
                None,
                Vec::new(),
                self.site.sl_variant,
            ),
        };
        let mut queue_ids: Vec<String> = queues
            .iter()
            .map(|q| self.queues.name(*q).to_owned())
            .collect();
        queue_ids.sort();
        TeamView {
            team: id,
            name,
            window,
            queues: queue_ids,
            members: members
                .iter()
                .map(|a| self.advisors.name(*a).to_owned())
                .collect(),
            indicators: self.group_indicators(&queues, members, variant, window, now),
            service_level_by_interval: Vec::new(),
        }
    }

    /// The whole site over `window`, at the processor's current instant.
    pub fn site_view(&self, window: Window) -> SiteView {
        let now = self.now();
        let members = self.members();
        let mut queue_order: Vec<u32> = (0..self.queues.len() as u32).collect();
        queue_order.sort_by(|a, b| self.queues.name(*a).cmp(self.queues.name(*b)));
        let queues = queue_order
            .iter()
            .map(|&q| self.queue_view_at(q, window, now, &members))
            .collect();

        let team_ids = self.listed_teams(|team| members.contains_key(&team));
        let empty = Vec::new();
        let teams = team_ids
            .values()
            .map(|&team| self.team_view_at(team, window, now, members.get(&team).unwrap_or(&empty)))
            .collect();

        let all_advisors: Vec<u32> = members.values().flatten().copied().collect();
        let mut advisor_order = all_advisors.clone();
        advisor_order.sort_by(|a, b| self.advisors.name(*a).cmp(self.advisors.name(*b)));
        let advisors = advisor_order
            .iter()
            .map(|&a| self.advisor_view_at(a, window, now))
            .collect();
        SiteView {
            as_of: now.to_rfc3339_in(self.calendar.zone()),
            site: self.site.id.clone(),
            window,
            totals: self.group_indicators(
                &queue_order,
                &all_advisors,
                self.site.sl_variant,
                window,
                now,
            ),
            queues,
            teams,
            advisors,
        }
    }

    /// The teams a site lists, by id: configured ones, and those named only by logins while
    /// they have members (`unassigned` too).
    pub(crate) fn listed_teams(
        &self,
        has_members: impl Fn(Option<u32>) -> bool,
    ) -> BTreeMap<&str, Option<u32>> {
        let mut team_ids: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        for team in 0..self.teams.len() as u32 {
            if self.team_settings[team as usize].configured || has_members(Some(team)) {
                team_ids.insert(self.teams.name(team), Some(team));
            }
        }
        if has_members(None) {
            team_ids.insert(UNASSIGNED_TEAM, None);
        }
        team_ids
    }

    /// The ids of the teams the site view lists, sorted.
    pub fn team_ids(&self) -> Vec<&str> {
        let with_members = self.teams_with_members();
        self.listed_teams(|team| with_members.contains(&team))
            .into_keys()
            .collect()
    }

    /// The ids of the known queues (configured or seen in events), sorted.
    pub fn queue_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = (0..self.queues.len() as u32)
            .map(|q| self.queues.name(q))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// An advisor's display name, from their last login that gave one.
    pub fn advisor_name(&self, advisor: &str) -> Option<&str> {
        let index = self.advisors.get(advisor)?;
        let (_, name) = self.advisor_state[index as usize].name.as_ref()?;
        Some(name)
    }

    /// A queue's display name, from the configuration.
    pub fn queue_name(&self, queue: &str) -> Option<&str> {
        let index = self.queues.get(queue)?;
        self.queue_settings[index as usize].config.name.as_deref()
    }

    /// A team's display name, from the configuration.
    pub fn team_display_name(&self, team: &str) -> Option<&str> {
        let index = self.teams.get(team)?;
        self.team_settings.get(index as usize)?.name.as_deref()
    }

    /// The team an advisor belongs to now, if the advisor is known.
    pub fn advisor_team(&self, advisor: &str) -> Option<&str> {
        let index = self.advisors.get(advisor)?;
        Some(self.team_name(index))
    }

    /// The ids of the teams whose campaign includes the queue, sorted.
    pub fn teams_serving(&self, queue: &str) -> Vec<&str> {
        let Some(index) = self.queues.get(queue) else {
            return Vec::new();
        };
        let mut teams: Vec<&str> = self
            .team_settings
            .iter()
            .filter(|team| team.queues.contains(&index))
            .map(|team| team.id.as_str())
            .collect();
        teams.sort_unstable();
        teams
    }

    /// Every known advisor's live state, by id (cheaper than their views: no indicators).
    pub fn advisor_states(&self) -> Vec<AdvisorState> {
        let now = self.now();
        let mut advisors: Vec<AdvisorState> = (0..self.advisors.len() as u32)
            .map(|advisor| {
                let state = &self.advisor_state[advisor as usize];
                let live = state.live(now);
                AdvisorState {
                    advisor: self.advisors.name(advisor).to_owned(),
                    name: state.name.as_ref().map(|(_, name)| name.to_string()),
                    team: self.team_name(advisor).to_owned(),
                    state: display_name(live.display),
                    reason: match live.status {
                        Status::Pause(reason) => Some(self.reasons.name(reason).to_owned()),
                        _ => None,
                    },
                }
            })
            .collect();
        advisors.sort_by(|a, b| a.advisor.cmp(&b.advisor));
        advisors
    }

    /// One queue's view, if the queue is known.
    pub fn queue_view(&self, queue: &str, window: Window) -> Option<QueueView> {
        let index = self.queues.get(queue)?;
        let serving = |team: Option<u32>| {
            team.is_some_and(|t| self.team_settings[t as usize].queues.contains(&index))
        };
        let now = self.now();
        let mut view = self.queue_view_at(index, window, now, &self.members_of(serving));
        let variant = self.queue_settings[index as usize].variant;
        view.service_level_by_interval = self.service_level_by_interval(&[index], variant, now);
        Some(view)
    }

    /// One team's view, if the team is known (`unassigned` when it has members).
    pub fn team_view(&self, team: &str, window: Window) -> Option<TeamView> {
        let wanted = self.teams.get(team);
        if wanted.is_none() && team != UNASSIGNED_TEAM {
            return None;
        }
        let members = self.members_of(|t| t == wanted);
        let index = match wanted {
            Some(index)
                if self.team_settings[index as usize].configured
                    || members.contains_key(&Some(index)) =>
            {
                Some(index)
            }
            None if members.contains_key(&None) => None,
            _ => return None,
        };
        let empty = Vec::new();
        let now = self.now();
        let mut view = self.team_view_at(index, window, now, members.get(&index).unwrap_or(&empty));
        let (queues, variant) = match index {
            Some(team) => {
                let settings = &self.team_settings[team as usize];
                (settings.queues.as_slice(), settings.variant)
            }
            None => (&[][..], self.site.sl_variant),
        };
        view.service_level_by_interval = self.service_level_by_interval(queues, variant, now);
        Some(view)
    }

    /// One advisor's view, if the advisor is known.
    pub fn advisor_view(&self, advisor: &str, window: Window) -> Option<AdvisorView> {
        let index = self.advisors.get(advisor)?;
        Some(self.advisor_view_at(index, window, self.now()))
    }
}

/// The public name of a live state.
fn display_name(display: Display) -> &'static str {
    match display {
        Display::Offered => "offered",
        Display::Talking => "talking",
        Display::OnHold => "on_hold",
        Display::Acw => "acw",
        Display::Pause(_) => "pause",
        Display::Available => "available",
        Display::LoggedOut => "logged_out",
    }
}

/// The counts behind a queue's flow and handling indicators over a window (summed over its
/// channels), or those of several queues added up: what alert rules compare at every
/// evaluation, without building a view (no channel breakdown, no distribution of waits, no
/// advisors). The indicators it gives are computed as the views compute them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// Contacts that entered the queue.
    pub offered: u64,
    /// Contacts answered by an advisor.
    pub answered: u64,
    /// Contacts whose customer left before an answer.
    pub abandoned: u64,
    /// Abandons with a wait strictly below the queue's `short_abandon`.
    pub short_abandoned: u64,
    /// Answered with a wait of at most the queue's `sl_threshold`.
    pub answered_within_threshold: u64,
    /// Abandoned with a wait of at most the queue's `sl_threshold`.
    pub abandoned_within_threshold: u64,
    /// Total wait of the answered contacts.
    pub wait_answered: Millis,
    /// Contacts handled.
    pub handled: u64,
    /// Their talk time.
    pub talk: Millis,
    /// Their hold time.
    pub hold: Millis,
    /// Their after-contact work.
    pub acw: Millis,
    /// Handled contacts put on hold at least once.
    pub held: u64,
}

impl QueueCounts {
    pub(crate) fn from_tally(tally: &QueueTally) -> QueueCounts {
        QueueCounts {
            offered: tally.offered,
            answered: tally.answered,
            abandoned: tally.abandoned,
            short_abandoned: tally.short_abandoned,
            answered_within_threshold: tally.answered_within_threshold,
            abandoned_within_threshold: tally.abandoned_within_threshold,
            wait_answered: tally.wait_answered,
            handled: tally.handled,
            talk: tally.talk,
            hold: tally.hold,
            acw: tally.acw,
            held: tally.held,
        }
    }

    /// Adds another queue's counts (a team's or the site's flow is the sum of its queues').
    pub fn add(&mut self, other: &QueueCounts) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.abandoned += other.abandoned;
        self.short_abandoned += other.short_abandoned;
        self.answered_within_threshold += other.answered_within_threshold;
        self.abandoned_within_threshold += other.abandoned_within_threshold;
        self.wait_answered += other.wait_answered;
        self.handled += other.handled;
        self.talk += other.talk;
        self.hold += other.hold;
        self.acw += other.acw;
        self.held += other.held;
    }

    /// The flow indicators of these counts, by the views' own formulas; the fields that need
    /// the distribution of waits (`max_wait_answered`, `wait_p50`, `wait_p90`) are left out.
    fn flow(&self, variant: SlVariant) -> FlowIndicators {
        let tally = QueueTally {
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            short_abandoned: self.short_abandoned,
            answered_within_threshold: self.answered_within_threshold,
            abandoned_within_threshold: self.abandoned_within_threshold,
            wait_answered: self.wait_answered,
            ..QueueTally::default()
        };
        FlowIndicators::from_tally(&tally, variant)
    }

    /// `service_level` in `variant`, as [`FlowIndicators::service_level`].
    pub fn service_level(&self, variant: SlVariant) -> Option<f64> {
        self.flow(variant).service_level
    }

    /// As [`FlowIndicators::abandon_rate`].
    pub fn abandon_rate(&self) -> Option<f64> {
        self.flow(SlVariant::Offered).abandon_rate
    }

    /// As [`FlowIndicators::asa`].
    pub fn asa(&self) -> Option<f64> {
        self.flow(SlVariant::Offered).asa
    }

    /// The handling indicators of these counts, as a queue's view shows them.
    pub fn handling(&self) -> HandleIndicators {
        HandleIndicators::new(self.handled, self.talk, self.hold, self.acw, self.held)
    }
}

/// A queue's counts over a window and the settings its indicators are judged by, as its view
/// shows them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueFigures {
    /// Counts over the window, all channels.
    pub counts: QueueCounts,
    /// Which formula `service_level` uses.
    pub variant: SlVariant,
    /// Service-level answer time T, in seconds.
    pub sl_threshold: f64,
    /// Service-level target, a fraction.
    pub sl_target: f64,
    /// Target average handle time, in seconds.
    pub aht_target: Option<f64>,
}

/// The counts behind an advisor's handling indicators over a window, or those of several
/// advisors added up (a team's, the site's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisorCounts {
    /// Contacts handled.
    pub handled: u64,
    /// Their talk time.
    pub talk: Millis,
    /// Their hold time.
    pub hold: Millis,
    /// Their after-contact work.
    pub acw: Millis,
    /// Handled contacts put on hold at least once.
    pub held: u64,
    /// Transfers made.
    pub transfers: u64,
    /// Offers not answered.
    pub missed_offers: u64,
}

impl AdvisorCounts {
    /// Adds another advisor's counts.
    pub fn add(&mut self, other: &AdvisorCounts) {
        self.handled += other.handled;
        self.talk += other.talk;
        self.hold += other.hold;
        self.acw += other.acw;
        self.held += other.held;
        self.transfers += other.transfers;
        self.missed_offers += other.missed_offers;
    }

    /// The handling indicators of these counts, as an advisor's (or a group's) view shows them.
    pub fn handling(&self) -> HandleIndicators {
        HandleIndicators::new(self.handled, self.talk, self.hold, self.acw, self.held)
    }
}

/// Time an advisor (or several, added up) spent handling contacts and available over a window:
/// what occupancy is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkTimes {
    /// Talking, on hold or in after-contact work.
    pub handling: Millis,
    /// Available and handling nothing.
    pub available: Millis,
}

impl WorkTimes {
    /// Adds another advisor's times.
    pub fn add(&mut self, other: &WorkTimes) {
        self.handling += other.handling;
        self.available += other.available;
    }

    /// As [`AdvisorIndicators::occupancy`].
    pub fn occupancy(&self) -> Option<f64> {
        ratio(
            self.handling.0.max(0) as u64,
            (self.handling.0 + self.available.0).max(0) as u64,
        )
    }
}

/// An advisor's live state as alert rules read it at every evaluation: the live fields of an
/// [`AdvisorView`], borrowed from the processor rather than copied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdvisorLive<'a> {
    /// Advisor id.
    pub advisor: &'a str,
    /// Team id (`unassigned` without a team).
    pub team: &'a str,
    /// Live state: offered, talking, on_hold, acw, pause, available, logged_out.
    pub state: &'static str,
    /// Pause reason, when the status is pause.
    pub reason: Option<&'a str>,
    /// Seconds in the current state.
    pub time_in_state: Option<f64>,
    /// Seconds since the contact in progress was answered.
    pub current_contact_duration: Option<f64>,
}

/// A site's figures at the processor's current instant, read one target at a time: each is
/// what the matching view shows, at a fraction of the cost of building the view (alert rules
/// read thousands at every evaluation). The instant and the day are worked out once.
#[derive(Clone, Copy, Debug)]
pub struct FiguresNow<'a> {
    site: &'a SiteProcessor,
    now: Timestamp,
    /// Start of the site-local day, for `today`.
    day_start: Timestamp,
}

/// Figures read one by one, for alert rules.
impl SiteProcessor {
    /// Every known advisor's live state, in the processor's order: an advisor keeps its
    /// position in the list, and advisors first seen later come after. Positions in this list
    /// name advisors in [`FiguresNow`].
    pub fn advisor_lives(&self) -> Vec<AdvisorLive<'_>> {
        let now = self.now();
        (0..self.advisors.len() as u32)
            .map(|advisor| {
                let live = self.advisor_state[advisor as usize].live(now);
                AdvisorLive {
                    advisor: self.advisors.name(advisor),
                    team: self.team_name(advisor),
                    state: display_name(live.display),
                    reason: match live.status {
                        Status::Pause(reason) => Some(self.reasons.name(reason)),
                        _ => None,
                    },
                    time_in_state: live.since.map(|t| secs(now - t).max(0.0)),
                    current_contact_duration: live.contact_start.map(|t| secs(now - t).max(0.0)),
                }
            })
            .collect()
    }

    /// What waits in a queue now (all channels), if the queue is known.
    pub fn queue_live(&self, queue: &str) -> Option<LiveQueue> {
        let index = self.queues.get(queue)?;
        Some(self.live_queue(self.channels_of(index), self.now()))
    }

    /// The figures at the processor's current instant.
    pub fn figures_now(&self) -> FiguresNow<'_> {
        let now = self.now();
        FiguresNow {
            site: self,
            now,
            day_start: self.day_of(now).start,
        }
    }
}

/// Which of a queue's counts to read: a rule on service level needs the flow only, a rule on
/// AHT the handling only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueParts {
    /// Offers and exits: the counts behind service level, abandonment and ASA.
    pub flow: bool,
    /// Handled contacts: the counts behind AHT.
    pub handling: bool,
}

impl QueueParts {
    fn any(self) -> bool {
        self.flow || self.handling
    }
}

impl FiguresNow<'_> {
    /// A queue's counts (all channels) and its settings over several windows at once:
    /// `parts[i]` says what to read over `Window::ALL[i]` (nothing: `None` for that window; the
    /// counts of a part not read are 0). The trailing windows nest (15 minutes in 30 in 60):
    /// each stretch of time is counted once, a longer window adding the stretch before the
    /// shorter one, rather than the last 15 minutes being counted three times. `None` if the
    /// queue is unknown.
    pub fn queue(&self, queue: &str, parts: [QueueParts; 4]) -> Option<[Option<QueueFigures>; 4]> {
        let site = self.site;
        let index = site.queues.get(queue)?;
        let settings = &site.queue_settings[index as usize];
        let thresholds = settings.thresholds;
        let (day_start, now) = (self.day_start, self.now);
        let mut counts = [QueueCounts::default(); 4];
        let today = parts[0];
        if today.any() {
            // As `queue_channel_tally`, with the day worked out once and the parts asked for.
            let mut tally = QueueTally::without_waits();
            for qc in site.channels_of(index) {
                let Some(state) = site.queue_channel(qc) else {
                    continue;
                };
                if today.flow {
                    state.flow.tally_day(day_start, now, thresholds, &mut tally);
                }
                if today.handling {
                    state
                        .handling
                        .tally_day(day_start, now, thresholds, &mut tally);
                }
            }
            counts[0] = QueueCounts::from_tally(&tally);
        }
        for flow in [true, false] {
            // The counts from `until` to now; the next window adds the stretch before `until`.
            let mut until = now;
            let mut sum = QueueCounts::default();
            for (at, window) in Window::ALL.into_iter().enumerate() {
                let Some(length) = window.trailing() else {
                    continue;
                };
                let read = if flow {
                    parts[at].flow
                } else {
                    parts[at].handling
                };
                if !read {
                    continue;
                }
                let range = Range {
                    after: now - length,
                    until,
                };
                let mut tally = QueueTally::without_waits();
                for qc in site.channels_of(index) {
                    let Some(state) = site.queue_channel(qc) else {
                        continue;
                    };
                    if flow {
                        state.flow.tally_range(range, thresholds, &mut tally);
                    } else {
                        state.handling.tally_range(range, thresholds, &mut tally);
                    }
                }
                sum.add(&QueueCounts::from_tally(&tally));
                counts[at].add(&sum);
                until = range.after;
            }
        }
        Some(std::array::from_fn(|at| {
            parts[at].any().then_some(QueueFigures {
                counts: counts[at],
                variant: settings.variant,
                sl_threshold: secs(settings.thresholds.sl_threshold),
                sl_target: settings.config.sl_target,
                aht_target: settings.config.aht_target.map(|d| secs(d.millis())),
            })
        }))
    }

    /// The counts over `window` of the advisor at `position` in
    /// [`SiteProcessor::advisor_lives`].
    pub fn advisor_counts(&self, position: usize, window: Window) -> Option<AdvisorCounts> {
        let log = &self.site.advisor_state.get(position)?.tally;
        let mut tally = AdvisorTally::default();
        match window {
            Window::Today => log.tally_day(self.day_start, self.now, (), &mut tally),
            window => log.tally_range(self.site.range(window, self.now), (), &mut tally),
        }
        Some(AdvisorCounts {
            handled: tally.handled,
            talk: tally.talk,
            hold: tally.hold,
            acw: tally.acw,
            held: tally.held,
            transfers: tally.transfers,
            missed_offers: tally.missed_offers,
        })
    }

    /// The handling and available time over `window` of the advisor at `position` in
    /// [`SiteProcessor::advisor_lives`].
    pub fn advisor_work_times(&self, position: usize, window: Window) -> Option<WorkTimes> {
        let advisor = u32::try_from(position).ok()?;
        self.site.advisor_state.get(position)?;
        let times = self.site.advisor_times(advisor, window, self.now);
        Some(WorkTimes {
            handling: times.handling,
            available: times.idle,
        })
    }
}
