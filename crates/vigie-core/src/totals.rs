//! A site's figures accumulated over its site-local day up to an instant: the ground of the
//! interval history. The figures of a 15-minute interval are the totals at its end less the
//! totals at its start (at the day start, all zero), so intervals always add up to the day.
//!
//! Totals are cumulative counts and times only, never ratios: a ratio over an interval, an
//! hour or a day is recomputed from the counts (`QueueCounts::service_level` and the like).
//! Everything a contact brings counts at the instant it is settled in the day's figures (a
//! flow exit when it leaves the queue, handling when its after-contact work ends), over the
//! half-open span `[day start, at)`, so an exit exactly at an interval's end belongs to the
//! next interval.

use std::collections::{BTreeMap, VecDeque};

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use crate::advisor::DayTimes;
use crate::config::SlVariant;
use crate::event::Channel;
use crate::intervals::INTERVAL_LENGTH;
use crate::processor::SiteProcessor;
use crate::tally::{AdvisorTally, QueueTally};
use crate::time::{Day, DayCache, Millis, Timestamp};
use crate::views::{AdvisorCounts, QueueCounts};

/// The site's figures over `[day_start, at)`, by queue, team and advisor, and for the site.
/// Lists are sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayTotals {
    /// The site.
    pub site: String,
    /// Start of the site-local day the totals belong to.
    pub day_start: Timestamp,
    /// The site-local date of that day, `YYYY-MM-DD`.
    pub date: String,
    /// The instant the totals run up to (excluded): an interval boundary, or any instant for
    /// the interval in progress.
    pub at: Timestamp,
    /// Every known queue (configured or seen in events), all channels.
    pub queues: Vec<QueueTotals>,
    /// Every team the site lists (configured, or with members), as its team view sums them.
    pub teams: Vec<GroupTotals>,
    /// Every known advisor.
    pub advisors: Vec<AdvisorTotals>,
    /// The whole site: every queue's flow, every advisor's handling and times.
    pub site_totals: GroupTotals,
}

/// Counts of a queue's flow beyond those of [`QueueCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowExtra {
    /// Contacts that left the queue without answer or abandon (voicemail, callback, timeout,
    /// closed).
    pub dequeued: u64,
    /// Total wait of the abandoned contacts.
    pub wait_abandoned: Millis,
    /// Contacts transferred out of the queue's conversations.
    pub transferred: u64,
}

impl FlowExtra {
    /// Adds another queue's counts.
    pub fn add(&mut self, other: &FlowExtra) {
        self.dequeued += other.dequeued;
        self.wait_abandoned += other.wait_abandoned;
        self.transferred += other.transferred;
    }
}

/// One queue's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueTotals {
    /// The queue id.
    pub id: String,
    /// Flow (offers and exits, judged by the thresholds in force when each exit settled) and
    /// handling of the contacts completed from the queue.
    pub counts: QueueCounts,
    /// Flow counts beyond those of `counts`.
    pub extra: FlowExtra,
    /// The queue's service-level formula, answer time T (seconds) and target (fraction) at
    /// `at`, for ratios recomputed from the counts.
    pub variant: SlVariant,
    /// The queue's answer time T, in seconds (see `variant`).
    pub sl_threshold: f64,
    /// The queue's service-level target, a fraction (see `variant`).
    pub sl_target: f64,
}

/// An advisor's time spent in one pause reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseTotals {
    /// The reason code, as events give it (`break`, `lunch`...).
    pub reason: String,
    /// Time in pause with this reason.
    pub time: Millis,
    /// Pauses with this reason started.
    pub count: u64,
}

/// Where an advisor's time went, or several advisors' added up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeTotals {
    /// Logged in (available, in pause or handling).
    pub logged_in: Millis,
    /// Available and handling nothing.
    pub available: Millis,
    /// Talking, on hold or in after-contact work on at least one contact.
    pub handling: Millis,
    /// Pause time and pauses started, per reason, sorted by reason.
    pub pauses: Vec<PauseTotals>,
}

impl TimeTotals {
    /// Adds another advisor's times (pauses merged by reason, kept sorted).
    pub fn add(&mut self, other: &TimeTotals) {
        self.logged_in += other.logged_in;
        self.available += other.available;
        self.handling += other.handling;
        for pause in &other.pauses {
            match self
                .pauses
                .binary_search_by(|p| p.reason.as_str().cmp(&pause.reason))
            {
                Ok(at) => {
                    self.pauses[at].time += pause.time;
                    self.pauses[at].count += pause.count;
                }
                Err(at) => self.pauses.insert(at, pause.clone()),
            }
        }
    }
}

/// One advisor's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdvisorTotals {
    /// The advisor id.
    pub id: String,
    /// The advisor's team at `at`.
    pub team: String,
    /// Contacts handled, their phases, transfers made and offers missed.
    pub counts: AdvisorCounts,
    /// Where the advisor's time went.
    pub times: TimeTotals,
    /// The first login of the day, if any before `at`.
    pub first_login: Option<Timestamp>,
    /// The last logout of the day, if any before `at`.
    pub last_logout: Option<Timestamp>,
}

/// A team's totals (its campaign's queues' flow, its advisors' handling and times), or the
/// site's (every queue, every advisor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupTotals {
    /// The team id; the site id for the site.
    pub id: String,
    /// Flow summed over the queues: `handled`, `talk`, `hold`, `acw` and `held` of these
    /// counts are the queues' (contacts completed from them).
    pub flow: QueueCounts,
    /// Flow counts beyond those of `flow`, summed over the queues.
    pub extra: FlowExtra,
    /// Handling by the advisors, summed.
    pub advisors: AdvisorCounts,
    /// The advisors' times, summed.
    pub times: TimeTotals,
    /// The service-level formula the team's (site's) view reports.
    pub variant: SlVariant,
    /// Advisors counted (members at `at`).
    pub members: u64,
}

/// Why the totals at an instant cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TotalsError {
    /// Part of the day after `at` is already folded into a day tally that cannot be split.
    #[error(
        "the totals at {at} cannot be computed any more: {entity} has folded its figures up to {settled_until} into the day's tally, which cannot be split at {at}; final totals at interval boundaries are captured before that (enable_interval_totals)"
    )]
    Settled {
        /// The instant asked for.
        at: Timestamp,
        /// The queue-channel or advisor that settled past `at`.
        entity: String,
        /// Where it settled to.
        settled_until: Timestamp,
    },
    /// The day of `at` is over for the core: figures of a later day replaced it.
    #[error(
        "the totals at {at} cannot be computed any more: the core no longer holds the day of {date} ({entity} counts a later day)"
    )]
    DayGone {
        /// The instant asked for.
        at: Timestamp,
        /// The site-local date of the day of `at`.
        date: String,
        /// The queue-channel or advisor that moved on.
        entity: String,
    },
    /// The instant lies outside the calendar (before year 1 or after year 9998).
    #[error("the totals at {at} cannot be computed: the instant is outside the calendar")]
    OutOfRange {
        /// The instant asked for.
        at: Timestamp,
    },
}

/// The most totals [`SiteProcessor::take_interval_totals`] keeps for its caller: a day's
/// worth at the longest day (25 hours). Beyond, the oldest are dropped and counted in
/// [`ProcessorStats::interval_totals_dropped`](crate::ProcessorStats). Each totals holds about
/// 0.3 KB per advisor (ids, counts, pauses), so a caller drains after each batch of events.
pub const MAX_PENDING_INTERVAL_TOTALS: usize = 100;

/// The capture of final totals at interval boundaries (see
/// [`SiteProcessor::enable_interval_totals`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IntervalCapture {
    /// The next boundary to capture; `None` until the first event gives the day.
    next: Option<Timestamp>,
    /// Captured and not taken yet, oldest first.
    outbox: VecDeque<DayTotals>,
    /// Captured totals dropped, or boundaries skipped, for want of room.
    pub(crate) dropped: u64,
}

/// The greatest interval boundary at or before `time`. A day's start is a boundary: the end of
/// the day before.
fn boundary_at_or_before(days: &mut DayCache, time: Timestamp) -> Timestamp {
    let day = days.day_of(time);
    day.start + Millis((time - day.start).0 / INTERVAL_LENGTH.0 * INTERVAL_LENGTH.0)
}

/// The smallest interval boundary strictly after `time`: every 15 minutes of elapsed time from
/// the start of its day, and the day's end (which ends a shorter last interval on a day whose
/// length is not a whole number of intervals).
fn boundary_after(days: &mut DayCache, time: Timestamp) -> Timestamp {
    let day = days.day_of(time);
    let index = (time - day.start).0 / INTERVAL_LENGTH.0 + 1;
    Ord::min(day.start + Millis(index * INTERVAL_LENGTH.0), day.end)
}

fn advisor_counts(tally: &AdvisorTally) -> AdvisorCounts {
    AdvisorCounts {
        handled: tally.handled,
        talk: tally.talk,
        hold: tally.hold,
        acw: tally.acw,
        held: tally.held,
        transfers: tally.transfers,
        missed_offers: tally.missed_offers,
    }
}

fn flow_extra(tally: &QueueTally) -> FlowExtra {
    FlowExtra {
        dequeued: tally.dequeued,
        wait_abandoned: tally.wait_abandoned,
        transferred: tally.transferred,
    }
}

/// What a group (team, site) adds up while its totals are built.
#[derive(Default)]
struct GroupSum {
    flow: QueueCounts,
    extra: FlowExtra,
    advisors: AdvisorTally,
    times: DayTimes,
    members: u64,
}

impl GroupSum {
    fn add_queue(&mut self, queue: &QueueTotals) {
        self.flow.add(&queue.counts);
        self.extra.add(&queue.extra);
    }

    fn add_advisor(&mut self, tally: &AdvisorTally, times: &DayTimes) {
        self.advisors.merge(tally);
        self.times.merge(times);
        self.members += 1;
    }
}

impl SiteProcessor {
    /// The site's totals over `[day start, at)` of the site-local day that contains the instant
    /// just before `at` (so `totals_at(day end)` is the whole day): exactly what the views count
    /// for `today`, restricted to before `at`. A contact counts where the core settles it (a
    /// flow exit at the instant it left the queue, handling when its after-contact work
    /// ended); an exit exactly at `at` belongs to what follows, as does a status change at
    /// `at`. Queues are judged by their thresholds as the day's figures are. The lists, the
    /// teams of advisors and the settings reported are those known at the call: a queue or an
    /// advisor first seen after `at` is listed with zero totals.
    ///
    /// The result is final once no event can come before `at` any more (the settle horizon,
    /// newest event time less the allowed lateness, reached `at`); before that, a late event
    /// may still change it. It is an error once a queue-channel or an advisor has folded what
    /// lies after `at` of that day into its day tally (at the latest, once the horizon passed
    /// `at` and later events touched it): [`SiteProcessor::enable_interval_totals`] captures
    /// the final totals at every interval boundary before that.
    pub fn totals_at(&self, at: Timestamp) -> Result<DayTotals, TotalsError> {
        // Every count below takes entries up to `last` included, and time up to `at` excluded.
        let last = Timestamp(at.0.saturating_sub(1));
        let in_calendar = chrono::DateTime::from_timestamp_millis(last.0)
            .is_some_and(|time| (1..=9998).contains(&time.year()));
        if !in_calendar {
            return Err(TotalsError::OutOfRange { at });
        }
        let mut days = DayCache::new(self.calendar);
        let day = days.day_of(last);
        self.check_splittable(at, day)?;

        let mut queue_tallies = vec![QueueTally::without_waits(); self.queues.len()];
        for state in &self.queue_channels {
            let thresholds = self.queue_settings[state.queue as usize].thresholds;
            let tally = &mut queue_tallies[state.queue as usize];
            state.flow.tally_day(day.start, last, thresholds, tally);
            state.handling.tally_day(day.start, last, thresholds, tally);
        }
        let queue_totals: Vec<QueueTotals> = queue_tallies
            .iter()
            .enumerate()
            .map(|(queue, tally)| {
                let settings = &self.queue_settings[queue];
                QueueTotals {
                    id: self.queues.name(queue as u32).to_owned(),
                    counts: QueueCounts::from_tally(tally),
                    extra: flow_extra(tally),
                    variant: settings.variant,
                    sl_threshold: settings.thresholds.sl_threshold.as_secs_f64(),
                    sl_target: settings.config.sl_target,
                }
            })
            .collect();

        let mut site = GroupSum::default();
        for queue in &queue_totals {
            site.add_queue(queue);
        }
        let mut teams: BTreeMap<Option<u32>, GroupSum> = BTreeMap::new();
        let mut advisors = Vec::with_capacity(self.advisors.len());
        for (advisor, state) in self.advisor_state.iter().enumerate() {
            let mut tally = AdvisorTally::default();
            state.tally.tally_day(day.start, last, (), &mut tally);
            let times = state.day_times_before(day, at, &mut days);
            site.add_advisor(&tally, &times);
            let team = self.team_of(advisor as u32);
            teams.entry(team).or_default().add_advisor(&tally, &times);
            advisors.push(AdvisorTotals {
                id: self.advisors.name(advisor as u32).to_owned(),
                team: self.team_name(advisor as u32).to_owned(),
                counts: advisor_counts(&tally),
                times: self.time_totals(&times),
                first_login: times.first_login(),
                last_logout: times.last_logout(),
            });
        }
        advisors.sort_by(|a, b| a.id.cmp(&b.id));

        let listed = self.listed_teams(|team| teams.contains_key(&team));
        let mut team_totals = Vec::with_capacity(listed.len());
        for (id, team) in listed {
            let mut sum = teams.remove(&team).unwrap_or_default();
            let variant = match team {
                Some(team) => {
                    let settings = &self.team_settings[team as usize];
                    // As the team view: each campaign queue as listed.
                    for &queue in &settings.queues {
                        sum.add_queue(&queue_totals[queue as usize]);
                    }
                    settings.variant
                }
                None => self.site.sl_variant,
            };
            team_totals.push(self.group_totals(id, sum, variant));
        }

        let mut queues = queue_totals;
        queues.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(DayTotals {
            site: self.site.id.clone(),
            day_start: day.start,
            date: day.date.format("%Y-%m-%d").to_string(),
            at,
            queues,
            teams: team_totals,
            advisors,
            site_totals: self.group_totals(&self.site.id, site, self.site.sl_variant),
        })
    }

    /// Checks that no queue-channel or advisor folded anything of the day of `at`, or of a
    /// later day, past `at`: what a day tally holds cannot be split.
    fn check_splittable(&self, at: Timestamp, day: Day) -> Result<(), TotalsError> {
        // (name, settled until, start of the latest day folded) of every entity in the way.
        let mut blocking: Vec<(String, Timestamp, Timestamp)> = Vec::new();
        for (index, state) in self.queue_channels.iter().enumerate() {
            let settled_until = state
                .flow
                .settled_until()
                .max(state.handling.settled_until());
            let folded = state.flow.settled_day().max(state.handling.settled_day());
            if settled_until > at && folded >= day.start {
                blocking.push((self.queue_channel_name(index), settled_until, folded));
            }
        }
        for (advisor, state) in self.advisor_state.iter().enumerate() {
            if state.settled_until() > at && state.folded_from(day.start) {
                let name = format!("advisor {:?}", self.advisors.name(advisor as u32));
                blocking.push((name, state.settled_until(), state.folded_day()));
            }
        }
        // The same entity whatever the order events came in: the first by name.
        let Some((entity, settled_until, folded)) = blocking.into_iter().min() else {
            return Ok(());
        };
        if folded > day.start {
            return Err(TotalsError::DayGone {
                at,
                date: day.date.format("%Y-%m-%d").to_string(),
                entity,
            });
        }
        Err(TotalsError::Settled {
            at,
            entity,
            settled_until,
        })
    }

    /// `queue "q1" (voice)`, for the queue-channel kept at `index`.
    fn queue_channel_name(&self, index: usize) -> String {
        let queue = self.queue_channels[index].queue;
        let channel = Channel::ALL
            .iter()
            .zip(self.queue_channel_of[queue as usize])
            .find(|(_, at)| *at as usize == index)
            .map_or("?", |(channel, _)| channel.as_str());
        format!("queue {:?} ({channel})", self.queues.name(queue))
    }

    fn time_totals(&self, times: &DayTimes) -> TimeTotals {
        let mut pauses: Vec<PauseTotals> = times
            .pauses
            .iter()
            .map(|(reason, time, count)| PauseTotals {
                reason: self.reasons.name(*reason).to_owned(),
                time: *time,
                count: u64::from(*count),
            })
            .collect();
        pauses.sort_by(|a, b| a.reason.cmp(&b.reason));
        TimeTotals {
            logged_in: times.logged_in,
            available: times.idle,
            handling: times.handling,
            pauses,
        }
    }

    fn group_totals(&self, id: &str, sum: GroupSum, variant: SlVariant) -> GroupTotals {
        GroupTotals {
            id: id.to_owned(),
            flow: sum.flow,
            extra: sum.extra,
            advisors: advisor_counts(&sum.advisors),
            times: self.time_totals(&sum.times),
            variant,
            members: sum.members,
        }
    }

    /// Captures the final totals at every interval boundary from now on: whenever an applied
    /// event moves the settle horizon (newest event time less the allowed lateness) to or past
    /// one or more boundaries, the totals at each (see [`SiteProcessor::totals_at`]) are
    /// computed in order, before any queue or advisor settles past it, and kept for
    /// [`SiteProcessor::take_interval_totals`]. They are final: an event before the horizon is
    /// refused as too late. Boundaries fall every 15 minutes of elapsed time from each
    /// site-local day start (92 or 100 intervals on daylight-saving days), the day's end
    /// included.
    ///
    /// Only events move the horizon: [`SiteProcessor::advance_to`] does not, so the last
    /// boundaries before a quiet spell are captured with the next event (a site quiet for a
    /// night has its evening boundaries captured by the morning's first event). Enabled on a
    /// processor that has seen no event, capturing starts with the day of its first event
    /// (from that day's first boundary); enabled later, at the first boundary after the
    /// current horizon.
    ///
    /// At each captured boundary every queue-channel is settled up to it, so that its
    /// figures stay as captured: a later change of `sl_threshold` or `short_abandon` applies
    /// from the boundary on (without capture, from wherever each queue happens to be
    /// settled). Disabled, the default, `apply` does nothing more than test one pointer.
    pub fn enable_interval_totals(&mut self) {
        if self.interval_totals.is_some() {
            return;
        }
        let next = (self.watermark > Timestamp::MIN)
            .then(|| boundary_after(&mut DayCache::new(self.calendar), self.settle_horizon()));
        self.interval_totals = Some(Box::new(IntervalCapture {
            next,
            ..IntervalCapture::default()
        }));
    }

    /// The totals captured at interval boundaries since the last call, in boundary order.
    /// Undrained, at most [`MAX_PENDING_INTERVAL_TOTALS`] are kept (the oldest are dropped and
    /// counted). Empty when capture is not enabled.
    pub fn take_interval_totals(&mut self) -> Vec<DayTotals> {
        self.interval_totals
            .as_deref_mut()
            .map_or_else(Vec::new, |capture| capture.outbox.drain(..).collect())
    }

    /// Captures the totals at the boundaries the horizon reached (called when it moved). Out
    /// of line: `apply` stays as lean as without capture.
    #[inline(never)]
    pub(crate) fn capture_interval_totals(&mut self) {
        let Some(mut capture) = self.interval_totals.take() else {
            return;
        };
        let horizon = self.settle_horizon();
        let mut days = DayCache::new(self.calendar);
        let next = match capture.next {
            Some(next) => next,
            // The first event: its day's first boundary.
            None => {
                let day_start = days.day_of(self.watermark).start;
                boundary_after(&mut days, day_start)
            }
        };
        capture.next = Some(next);
        if next <= horizon {
            let last = boundary_at_or_before(&mut days, horizon);
            // A jump over more boundaries than the outbox holds computes only the last ones.
            let mut crossed = 0;
            let mut boundary = next;
            while boundary <= last {
                crossed += 1;
                boundary = boundary_after(&mut days, boundary);
            }
            let mut boundary = next;
            for _ in MAX_PENDING_INTERVAL_TOTALS..crossed {
                boundary = boundary_after(&mut days, boundary);
                capture.dropped += 1;
            }
            while boundary <= last {
                let totals = self.totals_at(boundary);
                debug_assert!(
                    totals.is_ok(),
                    "no queue or advisor settles past a boundary before it is captured: {totals:?}"
                );
                match totals {
                    Ok(totals) => {
                        if capture.outbox.len() >= MAX_PENDING_INTERVAL_TOTALS {
                            capture.outbox.pop_front();
                            capture.dropped += 1;
                        }
                        capture.outbox.push_back(totals);
                    }
                    Err(_) => capture.dropped += 1,
                }
                boundary = boundary_after(&mut days, boundary);
            }
            self.settle_queues_until(last);
            capture.next = Some(boundary);
        }
        self.interval_totals = Some(capture);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};
    use crate::{Outcome, ProcessingConfig, Processor, SiteConfig};

    fn processor() -> SiteProcessor {
        SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default())
    }

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    /// `time` is `hh:mm:ss` on 2 March 2026 (UTC), or a full RFC 3339 time.
    fn at(time: &str) -> Timestamp {
        if !time.contains('T') {
            ts(&format!("2026-03-02T{time}Z"))
        } else {
            ts(time)
        }
    }

    fn apply(p: &mut SiteProcessor, time: &str, body: &str) {
        let time = at(time).to_string();
        let id = body.replace('"', "");
        let json = format!(r#"{{"id":"{time}-{id}","time":"{time}","site":"s",{body}}}"#);
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(p.apply(&event), Outcome::Applied, "{json}");
    }

    fn queued(contact: &str) -> String {
        format!(r#""type":"contact.queued","contact":"{contact}","queue":"q","channel":"voice""#)
    }

    fn contact(contact: &str, kind: &str) -> String {
        format!(r#""type":"contact.{kind}","contact":"{contact}","advisor":"a""#)
    }

    fn state(state: &str) -> String {
        match state {
            "available" => r#""type":"advisor.state","advisor":"a","state":"available""#.into(),
            "login" => r#""type":"advisor.login","advisor":"a","team":"red""#.into(),
            "logout" => r#""type":"advisor.logout","advisor":"a""#.into(),
            reason => format!(
                r#""type":"advisor.state","advisor":"a","state":"pause","reason":"{reason}""#
            ),
        }
    }

    fn secs(secs: i64) -> Millis {
        Millis::from_secs(secs)
    }

    fn pause(reason: &str, time: i64, count: u64) -> PauseTotals {
        PauseTotals {
            reason: reason.into(),
            time: secs(time),
            count,
        }
    }

    fn queue_at<'a>(totals: &'a DayTotals, id: &str) -> &'a QueueTotals {
        totals.queues.iter().find(|q| q.id == id).unwrap()
    }

    /// The morning of one advisor and three contacts, by hand:
    ///
    /// - a logs in at 09:00 (team red), pauses for a break 09:05-09:10, goes to lunch at 09:15
    ///   sharp and logs out at 09:20;
    /// - c1 queues at 09:01, is answered by a after 10 s, talks 2 min, 30 s of wrap-up: handled
    ///   at 09:03:40;
    /// - c2 queues at 09:14:50 and abandons at 09:15 sharp, after 10 s: it belongs to 09:15-09:30;
    /// - c3 queues at 09:14:40 and abandons after 4 s (a short abandon), reported late (after
    ///   09:15, within the allowed lateness of 30 s).
    fn golden_morning(p: &mut SiteProcessor) -> DayTotals {
        apply(p, "09:00:00", &state("login"));
        apply(p, "09:01:00", &queued("c1"));
        apply(p, "09:01:10", &contact("c1", "answered"));
        apply(p, "09:03:10", &contact("c1", "ended"));
        apply(p, "09:03:40", &contact("c1", "completed"));
        apply(p, "09:05:00", &state("break"));
        apply(p, "09:10:00", &state("available"));
        apply(p, "09:14:50", &queued("c2"));
        // The interval closes: the figures as they stand.
        p.advance_to(at("09:15:00"));
        let at_close = p.totals_at(at("09:15:00")).unwrap();
        apply(p, "09:15:00", &state("lunch"));
        apply(
            p,
            "09:15:00",
            r#""type":"contact.abandoned","contact":"c2""#,
        );
        apply(p, "09:14:40", &queued("c3"));
        apply(
            p,
            "09:14:44",
            r#""type":"contact.abandoned","contact":"c3""#,
        );
        apply(p, "09:20:00", &state("logout"));
        at_close
    }

    #[test]
    fn a_golden_morning_by_hand() {
        let mut p = processor();
        p.enable_interval_totals();
        let at_close = golden_morning(&mut p);
        // 09:31 moves the horizon to 09:30:30: 09:30 is final.
        apply(&mut p, "09:31:00", &queued("c4"));
        let captured = p.take_interval_totals();
        let boundaries: Vec<Timestamp> = captured.iter().map(|t| t.at).collect();
        let expected: Vec<Timestamp> = (1..=38)
            .map(|n| at("00:00:00") + Millis(n * INTERVAL_LENGTH.0))
            .collect();
        assert_eq!(boundaries, expected, "every boundary from 00:15 to 09:30");
        assert!(p.take_interval_totals().is_empty(), "taken");
        let [nine, quarter_past, half_past] = &captured[35..] else {
            unreachable!()
        };

        // At 09:00, the login at 09:00 sharp belongs to what follows.
        let advisor = &nine.advisors[0];
        assert_eq!(
            (advisor.first_login, advisor.times.logged_in),
            (None, Millis::ZERO)
        );
        assert_eq!(nine.queues[0].counts, QueueCounts::default());

        // 09:15: c1 handled, c3's short abandon (late but within the lateness); c2 offered but
        // its abandon at 09:15 sharp is not counted yet.
        assert_eq!(quarter_past.date, "2026-03-02");
        assert_eq!(quarter_past.day_start, at("00:00:00"));
        let q = queue_at(quarter_past, "q");
        let c1_handled = QueueCounts {
            handled: 1,
            talk: secs(120),
            acw: secs(30),
            ..QueueCounts::default()
        };
        let flow = QueueCounts {
            offered: 3,
            answered: 1,
            answered_within_threshold: 1,
            wait_answered: secs(10),
            abandoned: 1,
            short_abandoned: 1,
            abandoned_within_threshold: 1,
            ..c1_handled
        };
        assert_eq!(q.counts, flow);
        let extra = FlowExtra {
            dequeued: 0,
            wait_abandoned: secs(4),
            transferred: 0,
        };
        assert_eq!(q.extra, extra);
        assert_eq!(
            (q.variant, q.sl_threshold, q.sl_target),
            (SlVariant::Offered, 20.0, 0.8)
        );
        // a: 70 s available, 150 s handling c1, 80 s available, 300 s break, 300 s available.
        let times = TimeTotals {
            logged_in: secs(900),
            available: secs(450),
            handling: secs(150),
            pauses: vec![pause("break", 300, 1)],
        };
        let a = AdvisorTotals {
            id: "a".into(),
            team: "red".into(),
            counts: AdvisorCounts {
                handled: 1,
                talk: secs(120),
                acw: secs(30),
                ..AdvisorCounts::default()
            },
            times: times.clone(),
            first_login: Some(at("09:00:00")),
            last_logout: None,
        };
        assert_eq!(quarter_past.advisors, std::slice::from_ref(&a));
        // Red (named by the login) serves no queue; the site has every queue and advisor.
        let red = GroupTotals {
            id: "red".into(),
            flow: QueueCounts::default(),
            extra: FlowExtra::default(),
            advisors: a.counts,
            times,
            variant: SlVariant::Offered,
            members: 1,
        };
        assert_eq!(quarter_past.teams, std::slice::from_ref(&red));
        let site = GroupTotals {
            id: "s".into(),
            flow,
            extra,
            ..red
        };
        assert_eq!(quarter_past.site_totals, site);

        // The figures at the close lacked c3, reported late: the final ones have it.
        assert_eq!(queue_at(&at_close, "q").counts.offered, 2);
        assert_eq!(queue_at(&at_close, "q").counts.abandoned, 0);
        assert_eq!(at_close.advisors, quarter_past.advisors);
        assert_ne!(&at_close, quarter_past);

        // 09:30: c2's abandon (10 s: within T, not short); lunch from 09:15 to the logout, then
        // logged out.
        let q = queue_at(half_past, "q");
        assert_eq!((q.counts.offered, q.counts.abandoned), (3, 2));
        assert_eq!(
            (
                q.counts.short_abandoned,
                q.counts.abandoned_within_threshold
            ),
            (1, 2)
        );
        assert_eq!(q.extra.wait_abandoned, secs(14));
        let a = &half_past.advisors[0];
        assert_eq!(
            a.times,
            TimeTotals {
                logged_in: secs(1200),
                available: secs(450),
                handling: secs(150),
                pauses: vec![pause("break", 300, 1), pause("lunch", 300, 1)],
            }
        );
        assert_eq!(a.last_logout, Some(at("09:20:00")));
        assert_eq!(a.first_login, Some(at("09:00:00")));

        // Everything before 09:30:30 is settled now: 09:15 cannot be split any more.
        let error = p.totals_at(at("09:15:00")).unwrap_err();
        assert!(
            matches!(error, TotalsError::Settled { settled_until, .. } if settled_until > at("09:15:00")),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(r#"advisor "a" has folded"#), "{message}");
        // From where the day is settled on (the queue up to 09:30, where it was captured),
        // totals can be computed again.
        assert_eq!(p.totals_at(at("09:30:00")).as_ref(), Ok(half_past));
    }

    #[test]
    fn totals_now_are_the_final_ones_when_nothing_comes_late() {
        let mut p = processor();
        p.enable_interval_totals();
        apply(&mut p, "09:00:00", &state("login"));
        apply(&mut p, "09:14:50", &queued("c1"));
        apply(&mut p, "09:14:59.999", &state("break"));
        p.advance_to(at("09:15:00"));
        let at_close = p.totals_at(at("09:15:00")).unwrap();
        // Exactly at the boundary: after it.
        apply(
            &mut p,
            "09:15:00",
            r#""type":"contact.abandoned","contact":"c1""#,
        );
        apply(&mut p, "09:15:00", &state("available"));
        apply(&mut p, "09:16:00", &queued("c2"));
        let captured = p.take_interval_totals();
        assert_eq!(captured.last().map(|t| t.at), Some(at("09:15:00")));
        assert_eq!(captured.last(), Some(&at_close));
        let a = &at_close.advisors[0];
        // The last millisecond before the boundary counts, the change at the boundary not.
        let one_ms = PauseTotals {
            reason: "break".into(),
            time: Millis(1),
            count: 1,
        };
        assert_eq!(a.times.pauses, [one_ms]);
        assert_eq!(queue_at(&at_close, "q").counts.abandoned, 0);
    }

    #[test]
    fn a_later_day_folded_makes_the_day_gone() {
        let mut p = processor();
        golden_morning(&mut p);
        apply(&mut p, "2026-03-03T00:10:00Z", &queued("c5"));
        apply(
            &mut p,
            "2026-03-03T00:10:05Z",
            r#""type":"contact.abandoned","contact":"c5""#,
        );
        apply(&mut p, "2026-03-03T00:20:00Z", &queued("c6"));
        let error = p.totals_at(ts("2026-03-03T00:00:00Z")).unwrap_err();
        assert!(
            matches!(&error, TotalsError::DayGone { date, .. } if date == "2026-03-02"),
            "{error:?}"
        );
        let error = p.totals_at(ts("2026-03-03T00:15:00Z")).unwrap_err();
        assert!(matches!(error, TotalsError::Settled { .. }), "{error:?}");
        let now = p.totals_at(ts("2026-03-03T00:30:00Z")).unwrap();
        assert_eq!(now.date, "2026-03-03");
        assert_eq!(queue_at(&now, "q").counts.abandoned, 1);
        assert_eq!(now.advisors[0].times, TimeTotals::default(), "logged out");
        for instant in [Timestamp::MIN, Timestamp(i64::MAX), Timestamp(i64::MIN)] {
            assert_eq!(
                p.totals_at(instant),
                Err(TotalsError::OutOfRange { at: instant })
            );
        }
    }

    #[test]
    fn only_what_folded_part_of_the_day_blocks_it() {
        let mut p = processor();
        let b_logout = r#""type":"advisor.logout","advisor":"b""#;
        apply(&mut p, "09:00:00", &state("login"));
        apply(&mut p, "09:00:01", b_logout);
        apply(&mut p, "09:05:00", &state("break"));
        // a settles up to 09:19:30 (time only: a handled nothing).
        apply(&mut p, "09:20:00", &state("logout"));
        // b settles up to 09:39:30, having been logged out all along: nothing to fold.
        apply(&mut p, "09:40:00", b_logout);
        let error = p.totals_at(at("09:15:00")).unwrap_err();
        assert_eq!(
            error,
            TotalsError::Settled {
                at: at("09:15:00"),
                entity: r#"advisor "a""#.into(),
                settled_until: at("09:19:30"),
            }
        );
        let totals = p.totals_at(at("09:19:30")).unwrap();
        assert_eq!(totals.advisors[1].times, TimeTotals::default(), "b");
        let totals = p.totals_at(at("09:25:00")).unwrap();
        let a = &totals.advisors[0];
        assert_eq!(a.times.logged_in, secs(1200));
        assert_eq!(a.times.pauses, [pause("break", 900, 1)]);
        assert_eq!(a.last_logout, Some(at("09:20:00")));
    }

    #[test]
    fn a_processor_that_saw_nothing_has_zero_totals() {
        let p = processor();
        let totals = p.totals_at(at("10:00:00")).unwrap();
        assert_eq!(totals.date, "2026-03-02");
        assert!(totals.queues.is_empty() && totals.advisors.is_empty());
        assert_eq!(totals.site_totals.id, "s");
    }

    #[test]
    fn capture_enabled_mid_day_starts_after_the_horizon_and_only_events_move_it() {
        let mut p = processor();
        apply(&mut p, "09:00:00", &queued("c1"));
        apply(&mut p, "09:20:00", &queued("c2"));
        p.enable_interval_totals();
        p.advance_to(at("12:00:00"));
        assert!(
            p.take_interval_totals().is_empty(),
            "the clock moves no horizon"
        );
        apply(&mut p, "09:31:00", &queued("c3"));
        let captured: Vec<Timestamp> = p.take_interval_totals().iter().map(|t| t.at).collect();
        assert_eq!(captured, [at("09:30:00")]);
        assert_eq!(p.stats().interval_totals_dropped, 0);
    }

    #[test]
    fn without_capture_nothing_is_kept() {
        let mut p = processor();
        apply(&mut p, "09:00:00", &queued("c1"));
        apply(&mut p, "11:00:00", &queued("c2"));
        assert!(p.take_interval_totals().is_empty());
        assert!(p.interval_totals.is_none());
    }

    #[test]
    fn an_undrained_outbox_keeps_the_newest_day_and_counts_the_rest() {
        let mut p = processor();
        p.enable_interval_totals();
        apply(&mut p, "2026-03-02T09:00:00Z", &queued("c1"));
        assert_eq!(p.interval_totals.as_ref().map(|c| c.outbox.len()), Some(35));
        // Two days later: 192 boundaries crossed at once, only the last 100 are computed.
        apply(&mut p, "2026-03-04T09:00:00Z", &queued("c2"));
        let captured = p.take_interval_totals();
        assert_eq!(captured.len(), MAX_PENDING_INTERVAL_TOTALS);
        assert_eq!(captured[99].at, ts("2026-03-04T08:45:00Z"));
        assert_eq!(captured[0].at, ts("2026-03-03T08:00:00Z"));
        assert!(
            captured
                .windows(2)
                .all(|w| w[1].at - w[0].at == INTERVAL_LENGTH)
        );
        assert_eq!(p.stats().interval_totals_dropped, 92 + 35);
    }

    #[test]
    fn boundaries_follow_elapsed_time_and_end_each_day() {
        let calendar = crate::DayCalendar::new(chrono_tz::Europe::Paris, chrono::NaiveTime::MIN);
        let mut days = DayCache::new(calendar);
        for (date, count) in [("2026-03-29", 92), ("2026-06-01", 96), ("2026-10-25", 100)] {
            let day = days.day_of(ts(&format!("{date}T12:00:00Z")));
            let mut boundaries = Vec::new();
            let mut boundary = boundary_after(&mut days, day.start);
            while boundary <= day.end {
                assert_eq!(boundary_at_or_before(&mut days, boundary), boundary);
                boundaries.push(boundary);
                boundary = boundary_after(&mut days, boundary);
            }
            assert_eq!(boundaries.len(), count, "{date}");
            assert_eq!(boundaries.last(), Some(&day.end));
            assert_eq!(boundaries[0], day.start + INTERVAL_LENGTH);
            assert_eq!(boundary, day.end + INTERVAL_LENGTH, "the next day's first");
        }
        // A day of 23 h 50 (a day start inside the spring gap) ends with a shorter interval.
        let calendar = crate::DayCalendar::new(
            chrono_tz::Europe::Paris,
            chrono::NaiveTime::from_hms_opt(2, 10, 0).unwrap(),
        );
        let mut days = DayCache::new(calendar);
        let day = days.day_of(ts("2026-03-28T12:00:00Z"));
        assert_eq!(day.end - day.start, Millis::from_mins(24 * 60 - 10));
        let last = boundary_at_or_before(&mut days, day.end - Millis(1));
        assert_eq!(boundary_after(&mut days, last), day.end);
        assert_eq!(day.end - last, Millis::from_mins(5));
    }

    #[test]
    fn every_site_captures_once_enabled_those_seen_later_too() {
        let mut processor = Processor::new(Vec::new(), ProcessingConfig::default());
        processor.enable_interval_totals();
        for (site, time) in [("lyon", "09:00:00"), ("s", "09:00:00"), ("s", "09:31:00")] {
            let time = at(time);
            let json = format!(
                r#"{{"id":"{time}","time":"{time}","site":"{site}","type":"contact.queued","contact":"c{time}","queue":"q","channel":"voice"}}"#
            );
            let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
            assert_eq!(processor.apply(&event), Outcome::Applied);
        }
        let captured = processor.take_interval_totals();
        let lyon = captured.iter().filter(|t| t.site == "lyon").count();
        assert_eq!((lyon, captured.len() - lyon), (35, 38));
        assert_eq!(captured[0].site, "lyon", "by site, then in order");
    }
}
