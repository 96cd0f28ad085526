//! The traffic of the day: a discrete-event simulation over a time-ordered heap of actions,
//! pulled lazily so that a day of millions of events streams in bounded memory.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigie_core::config::ConfigErrors;
use vigie_core::time::{Millis, Timestamp};
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, SiteConfig,
};

use crate::config::{ChannelParams, SimConfig};
use crate::disorder::Disorder;
use crate::math::{LogNormal, exponential, unit};
use crate::site::{OverflowAction, Site};

const MINUTE: i64 = 60_000;

/// After a missed offer the ACD waits this long before ringing the same advisor again
/// (Asterisk's `retry`).
const MISS_RETRY: i64 = 5_000;

/// Random streams of one seed: the site, the traffic and the feed draw independently, so that
/// changing one never reshuffles the others.
pub(crate) const SITE_STREAM: u64 = 0;
const TRAFFIC_STREAM: u64 = 1;

/// A seeded, deterministic contact-centre day: an iterator of contract events in time order.
///
/// Events come out in non-decreasing `time`; events at the same instant come out in the
/// order they happened in the simulation, which is itself fixed by the seed. The day is
/// generated as it is consumed: memory holds the contacts and advisors in progress, not the
/// day.
#[derive(Debug)]
pub struct Simulation {
    site: Site,
    site_config: SiteConfig,
    laws: [ChannelLaws; 6],
    rng: ChaCha8Rng,
    heap: BinaryHeap<Scheduled>,
    action_seq: u64,
    out: VecDeque<Event>,
    event_seq: u64,
    /// `<site>-<date>-<seed>-`: event ids of two simulated days (or seeds) never collide, so a
    /// second run is not taken for redeliveries of the first.
    id_prefix: String,
    contacts: Vec<Contact>,
    free_contacts: Vec<u32>,
    contact_count: u64,
    advisors: Vec<AdvisorState>,
    /// Per queue, the contacts waiting and not being offered, oldest first:
    /// (queue entry time, contact number, contact slot).
    waiting: Vec<BTreeSet<(i64, u64, u32)>>,
    closed_final: bool,
    whole_seconds: bool,
    resolved_share: f64,
    feed_seed: u64,
    duplicate_share: f64,
    max_delay: Millis,
}

/// The sampled laws of one channel.
#[derive(Clone, Copy, Debug)]
struct ChannelLaws {
    talk: LogNormal,
    acw: LogNormal,
    hold: LogNormal,
    ring: LogNormal,
    patience_mean: Option<f64>,
    hold_share: f64,
    transfer_share: f64,
    miss_share: f64,
    ring_timeout: i64,
}

impl ChannelLaws {
    fn new(params: &ChannelParams) -> ChannelLaws {
        ChannelLaws {
            talk: LogNormal::new(params.talk_mean.0 as f64, params.talk_cv),
            acw: LogNormal::new(params.acw_mean.0.max(1) as f64, 0.6),
            hold: LogNormal::new(params.hold_mean.0.max(1) as f64, 0.8),
            ring: LogNormal::new(params.ring_mean.0.max(1) as f64, 0.5),
            patience_mean: params.patience_mean.map(|mean| mean.0 as f64),
            hold_share: params.hold_share,
            transfer_share: params.transfer_share,
            miss_share: params.miss_share,
            ring_timeout: params.ring_timeout.0,
        }
    }
}

fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::Voice => 0,
        Channel::Chat => 1,
        Channel::Email => 2,
        Channel::Callback => 3,
        Channel::Social => 4,
        Channel::Task => 5,
    }
}

/// Where a contact is in its journey (its advisor legs in after-contact work are tracked by
/// the advisors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Journey {
    Waiting,
    Offering(u32),
    Talking(u32),
    Done,
}

/// What ends a wait other than an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Abandon,
    Callback,
    Overflow,
}

#[derive(Clone, Debug)]
struct Contact {
    id: String,
    number: u64,
    channel: Channel,
    queue: u32,
    journey: Journey,
    /// Entry time of the current wait.
    enter: i64,
    /// Changes at every new wait and at every answer: stale exits are recognised by it.
    token: u32,
    /// An exit that fell due while the contact was ringing at an advisor.
    exit_due: Option<Exit>,
    /// Already moved by a queue overflow (never twice, so overflows cannot loop).
    overflowed: bool,
    /// The wait or talk in progress plus the advisor legs still in after-contact work; the
    /// slot is reused when it drops to zero.
    refs: u8,
    /// Talk and hold phases of the current leg: talk, hold, talk, hold, talk.
    phases: [i64; 5],
    phase_count: u8,
    phase: u8,
    transfer_to: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Out,
    Available,
    Paused,
}

/// A contact an advisor answered and has not completed yet.
#[derive(Clone, Copy, Debug)]
struct Leg {
    contact: u32,
    queue: u32,
    transferred: bool,
}

#[derive(Clone, Debug)]
struct AdvisorState {
    status: Status,
    shift_over: bool,
    next_pause: usize,
    offering: Option<u32>,
    legs: Vec<Leg>,
    idle_since: i64,
    blocked_until: i64,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Arrival {
        queue: u32,
    },
    Login {
        advisor: u32,
    },
    /// Re-examine an advisor: a pause fell due, or the retry delay after a miss is over.
    Wake {
        advisor: u32,
    },
    PauseEnd {
        advisor: u32,
    },
    ShiftEnd {
        advisor: u32,
    },
    WaitExit {
        contact: u32,
        token: u32,
        exit: Exit,
    },
    OfferEnd {
        contact: u32,
        answered: bool,
    },
    LegStep {
        contact: u32,
    },
    AcwEnd {
        advisor: u32,
        contact: u32,
    },
    CloseFinal,
}

/// An action in the heap, ordered by time then by scheduling order (a min-heap).
#[derive(Debug)]
struct Scheduled {
    time: i64,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Rounds a sampled duration to whole milliseconds, never negative.
fn ms(value: f64) -> i64 {
    value.max(0.0).round() as i64
}

/// Appends `n` in decimal, zero-padded to `width`, without going through `fmt`.
fn push_number(text: &mut String, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - start)..width {
        text.push('0');
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

impl Simulation {
    /// Builds the site of `config` and schedules its day; fails with every problem of an
    /// invalid configuration.
    pub fn new(config: &SimConfig) -> Result<Simulation, ConfigErrors> {
        config.validate("sim")?;
        let Some(zone) = config.zone() else {
            // `validate` has already reported an unknown zone; this keeps the types honest.
            return Err(ConfigErrors(vec![
                "sim.time_zone: not an IANA time zone".to_owned(),
            ]));
        };
        let mut site_rng = ChaCha8Rng::seed_from_u64(config.seed);
        site_rng.set_stream(SITE_STREAM);
        let site = Site::build(config, zone, &mut site_rng);
        let site_config = site.site_config(config);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(TRAFFIC_STREAM);
        let channels = &config.channels;
        let laws = [
            ChannelLaws::new(&channels.voice),
            ChannelLaws::new(&channels.chat),
            ChannelLaws::new(&channels.email),
            ChannelLaws::new(&channels.callback),
            ChannelLaws::new(&channels.social),
            ChannelLaws::new(&channels.task),
        ];
        let advisors = site
            .advisors
            .iter()
            .map(|spec| AdvisorState {
                status: Status::Out,
                shift_over: false,
                next_pause: 0,
                offering: None,
                legs: Vec::with_capacity(usize::from(spec.capacity)),
                idle_since: 0,
                blocked_until: i64::MIN,
            })
            .collect();
        let queue_count = site.queues.len();
        let mut simulation = Simulation {
            site,
            site_config,
            laws,
            rng,
            heap: BinaryHeap::new(),
            action_seq: 0,
            out: VecDeque::new(),
            event_seq: 0,
            id_prefix: format!(
                "{}-{}-{}-",
                config.site_id,
                config.date.format("%Y%m%d"),
                config.seed
            ),
            contacts: Vec::new(),
            free_contacts: Vec::new(),
            contact_count: 0,
            advisors,
            waiting: vec![BTreeSet::new(); queue_count],
            closed_final: false,
            whole_seconds: config.whole_seconds,
            resolved_share: config.resolved_share,
            feed_seed: config.seed,
            duplicate_share: config.duplicate_share,
            max_delay: config.max_delay,
        };
        let close_final = simulation.site.close.0 + config.closing_grace.0.max(0);
        simulation.schedule(close_final, Action::CloseFinal);
        for queue in 0..queue_count as u32 {
            let open = simulation.site.open.0;
            if let Some(at) = simulation.next_arrival(queue, open) {
                simulation.schedule(at, Action::Arrival { queue });
            }
        }
        for advisor in 0..simulation.site.advisors.len() {
            let spec = &simulation.site.advisors[advisor];
            if !spec.absent {
                let login = spec.login.0;
                simulation.schedule(
                    login,
                    Action::Login {
                        advisor: advisor as u32,
                    },
                );
            }
        }
        Ok(simulation)
    }

    /// The site configuration (queues with their targets, teams with rosters and queues) to
    /// give Vigie for this site.
    pub fn site_config(&self) -> SiteConfig {
        self.site_config.clone()
    }

    /// When the first contacts may arrive.
    pub fn open_time(&self) -> Timestamp {
        self.site.open
    }

    /// When arrivals stop.
    pub fn close_time(&self) -> Timestamp {
        self.site.close
    }

    /// The next event if it happened at or before `now`: for a live demo that releases events
    /// as the wall clock advances. `None` means nothing is due yet (or the day is over).
    pub fn next_until(&mut self, now: Timestamp) -> Option<Event> {
        loop {
            if let Some(front) = self.out.front() {
                return if front.time <= now {
                    self.out.pop_front()
                } else {
                    None
                };
            }
            if self.heap.peek()?.time > now.0 {
                return None;
            }
            self.step();
        }
    }

    /// This day as a real feed delivers it: with the configured share of duplicates and
    /// delays of up to `max_delay` (see [`Disorder`]).
    pub fn into_feed(self) -> Disorder<Simulation> {
        let (seed, share, max_delay) = (self.feed_seed, self.duplicate_share, self.max_delay);
        Disorder::new(self, seed, share, max_delay)
    }

    /// Runs the next action of the heap; false when the day is over.
    fn step(&mut self) -> bool {
        let Some(Scheduled { time, action, .. }) = self.heap.pop() else {
            return false;
        };
        match action {
            Action::Arrival { queue } => self.arrival(time, queue),
            Action::Login { advisor } => self.login(time, advisor),
            Action::Wake { advisor } => self.check_advisor(time, advisor),
            Action::PauseEnd { advisor } => self.pause_end(time, advisor),
            Action::ShiftEnd { advisor } => {
                self.advisors[advisor as usize].shift_over = true;
                self.check_advisor(time, advisor);
            }
            Action::WaitExit {
                contact,
                token,
                exit,
            } => self.wait_exit(time, contact, token, exit),
            Action::OfferEnd { contact, answered } => self.offer_end(time, contact, answered),
            Action::LegStep { contact } => self.leg_step(time, contact),
            Action::AcwEnd { advisor, contact } => self.acw_end(time, advisor, contact),
            Action::CloseFinal => self.close_final(time),
        }
        true
    }

    fn schedule(&mut self, time: i64, action: Action) {
        self.action_seq += 1;
        self.heap.push(Scheduled {
            time,
            seq: self.action_seq,
            action,
        });
    }

    fn emit(&mut self, time: i64, body: EventBody) {
        self.event_seq += 1;
        let mut id = String::with_capacity(self.id_prefix.len() + 8);
        id.push_str(&self.id_prefix);
        push_number(&mut id, self.event_seq, 1);
        let time = if self.whole_seconds {
            time - time.rem_euclid(1000)
        } else {
            time
        };
        self.out.push_back(Event {
            id,
            time: Timestamp(time),
            site: self.site.id.clone(),
            body,
        });
    }

    fn contact_event(
        &mut self,
        time: i64,
        contact: u32,
        queue: u32,
        advisor: Option<u32>,
        kind: ContactEventKind,
    ) {
        let record = &self.contacts[contact as usize];
        let body = EventBody::Contact(ContactEvent {
            contact: record.id.clone(),
            kind,
            queue: Some(self.site.queues[queue as usize].id.clone()),
            channel: Some(record.channel),
            advisor: advisor.map(|a| self.site.advisors[a as usize].id.clone()),
        });
        self.emit(time, body);
    }

    fn advisor_event(&mut self, time: i64, advisor: u32, kind: AdvisorEventKind) {
        let body = EventBody::Advisor(AdvisorEvent {
            advisor: self.site.advisors[advisor as usize].id.clone(),
            kind,
        });
        self.emit(time, body);
    }

    fn queue_id(&self, queue: u32) -> String {
        self.site.queues[queue as usize].id.clone()
    }

    /// The next arrival at `queue` after `from`, by thinning: candidates at the day's highest
    /// rate, each kept with probability rate(t) / highest rate. `None` once past closing.
    fn next_arrival(&mut self, queue: u32, from: i64) -> Option<i64> {
        let spec = &self.site.queues[queue as usize];
        if spec.rate_max <= 0.0 {
            return None;
        }
        let close = self.site.close.0;
        let open = self.site.open.0;
        let mut at = from as f64;
        loop {
            at += exponential(&mut self.rng, 1.0 / spec.rate_max);
            let candidate = at as i64;
            if candidate >= close {
                return None;
            }
            let minute = usize::try_from((candidate - open) / MINUTE).unwrap_or(0);
            let rate = spec.rate * self.site.shape(spec, minute);
            if unit(&mut self.rng) * spec.rate_max < rate {
                return Some(candidate);
            }
        }
    }

    fn new_contact(&mut self, channel: Channel) -> u32 {
        self.contact_count += 1;
        let number = self.contact_count;
        let slot = match self.free_contacts.pop() {
            Some(slot) => slot,
            None => {
                self.contacts.push(Contact {
                    id: String::with_capacity(10),
                    number: 0,
                    channel,
                    queue: 0,
                    journey: Journey::Done,
                    enter: 0,
                    token: 0,
                    exit_due: None,
                    overflowed: false,
                    refs: 0,
                    phases: [0; 5],
                    phase_count: 0,
                    phase: 0,
                    transfer_to: None,
                });
                (self.contacts.len() - 1) as u32
            }
        };
        let contact = &mut self.contacts[slot as usize];
        contact.id.clear();
        contact.id.push_str("c-");
        push_number(&mut contact.id, number, 6);
        contact.number = number;
        contact.channel = channel;
        contact.journey = Journey::Waiting;
        contact.exit_due = None;
        contact.overflowed = false;
        contact.refs = 1;
        contact.transfer_to = None;
        slot
    }

    /// One less thing holds the contact; its slot is reused when nothing does.
    fn release(&mut self, contact: u32) {
        let record = &mut self.contacts[contact as usize];
        record.refs = record.refs.saturating_sub(1);
        if record.refs == 0 {
            record.journey = Journey::Done;
            self.free_contacts.push(contact);
        }
    }

    fn arrival(&mut self, now: i64, queue: u32) {
        let channel = self.site.queues[queue as usize].channel;
        let contact = self.new_contact(channel);
        self.contact_event(now, contact, queue, None, ContactEventKind::Queued);
        self.enter_queue(now, contact, queue);
        if let Some(next) = self.next_arrival(queue, now) {
            self.schedule(next, Action::Arrival { queue });
        }
    }

    /// Starts a wait in `queue`: draws how it would end without an answer, then looks for an
    /// advisor.
    fn enter_queue(&mut self, now: i64, contact: u32, queue: u32) {
        let record = &mut self.contacts[contact as usize];
        record.queue = queue;
        record.journey = Journey::Waiting;
        record.enter = now;
        record.token = record.token.wrapping_add(1);
        record.exit_due = None;
        let (token, number, channel, overflowed) = (
            record.token,
            record.number,
            record.channel,
            record.overflowed,
        );
        self.waiting[queue as usize].insert((now, number, contact));

        let spec = &self.site.queues[queue as usize];
        let laws = &self.laws[channel_index(channel)];
        let mut exit: Option<(i64, Exit)> = None;
        let mut consider = |at: i64, kind: Exit| {
            if exit.is_none_or(|(first, _)| at < first) {
                exit = Some((at, kind));
            }
        };
        if let Some(mean) = laws.patience_mean {
            consider(now + ms(exponential(&mut self.rng, mean)), Exit::Abandon);
        }
        if let Some(offer) = spec.callback
            && unit(&mut self.rng) < offer.accept_share
        {
            consider(now + offer.after.0, Exit::Callback);
        }
        if let Some(overflow) = spec.overflow {
            let moves = matches!(overflow.action, OverflowAction::Transfer(_));
            if !(moves && overflowed) {
                consider(now + overflow.after.0, Exit::Overflow);
            }
        }
        if let Some((at, exit)) = exit {
            self.schedule(
                at,
                Action::WaitExit {
                    contact,
                    token,
                    exit,
                },
            );
        }
        self.offer_contact(now, contact);
    }

    fn wait_exit(&mut self, now: i64, contact: u32, token: u32, exit: Exit) {
        let record = &mut self.contacts[contact as usize];
        if record.token != token {
            return;
        }
        match record.journey {
            Journey::Waiting => self.leave_queue(now, contact, exit),
            // The caller is ringing at an advisor: the offer decides first.
            Journey::Offering(_) => record.exit_due = Some(exit),
            Journey::Talking(_) | Journey::Done => {}
        }
    }

    /// Ends a wait without an answer.
    fn leave_queue(&mut self, now: i64, contact: u32, exit: Exit) {
        let record = &self.contacts[contact as usize];
        let (queue, key) = (record.queue, (record.enter, record.number, contact));
        self.waiting[queue as usize].remove(&key);
        let action = self.site.queues[queue as usize]
            .overflow
            .map_or(OverflowAction::Dequeue(DequeueReason::Timeout), |o| {
                o.action
            });
        let kind = match exit {
            Exit::Abandon => ContactEventKind::Abandoned,
            Exit::Callback => ContactEventKind::Dequeued {
                reason: DequeueReason::Callback,
            },
            Exit::Overflow => match action {
                OverflowAction::Dequeue(reason) => ContactEventKind::Dequeued { reason },
                OverflowAction::Transfer(to) => {
                    let to_queue = Some(self.queue_id(to));
                    self.contact_event(
                        now,
                        contact,
                        queue,
                        None,
                        ContactEventKind::Transferred { to_queue },
                    );
                    self.contacts[contact as usize].overflowed = true;
                    self.enter_queue(now, contact, to);
                    return;
                }
            },
        };
        self.contact_event(now, contact, queue, None, kind);
        self.release(contact);
    }

    /// Whether the advisor may be offered a contact now.
    fn eligible(&self, now: i64, advisor: u32) -> bool {
        let state = &self.advisors[advisor as usize];
        let spec = &self.site.advisors[advisor as usize];
        if state.status != Status::Available
            || state.offering.is_some()
            || state.legs.len() >= usize::from(spec.capacity)
            || now < state.blocked_until
        {
            return false;
        }
        if state.shift_over {
            // Those who close the site serve what still waits, until the grace period ends.
            spec.shift_end >= self.site.close && !self.closed_final
        } else {
            // A pause that fell due stops new offers; it starts once the advisor is free.
            spec.pauses
                .get(state.next_pause)
                .is_none_or(|pause| pause.start.0 > now)
        }
    }

    fn has_leg(&self, advisor: u32, contact: u32) -> bool {
        self.advisors[advisor as usize]
            .legs
            .iter()
            .any(|leg| leg.contact == contact)
    }

    /// Offers a waiting contact to the best advisor of the teams serving its queue: the least
    /// loaded, then the longest idle.
    fn offer_contact(&mut self, now: i64, contact: u32) {
        let queue = self.contacts[contact as usize].queue;
        let mut best: Option<(usize, i64, u32)> = None;
        for &team in &self.site.queues[queue as usize].teams {
            for &advisor in &self.site.teams[team as usize].advisors {
                if !self.eligible(now, advisor) || self.has_leg(advisor, contact) {
                    continue;
                }
                let state = &self.advisors[advisor as usize];
                let key = (state.legs.len(), state.idle_since, advisor);
                if best.is_none_or(|best| key < best) {
                    best = Some(key);
                }
            }
        }
        if let Some((_, _, advisor)) = best {
            self.offer(now, contact, advisor);
        }
    }

    /// Offers the advisor the contact that has waited longest in the queues of their team.
    fn feed_advisor(&mut self, now: i64, advisor: u32) {
        if !self.eligible(now, advisor) {
            return;
        }
        let team = self.site.advisors[advisor as usize].team;
        let mut best: Option<(i64, u64, u32)> = None;
        for &queue in &self.site.teams[team as usize].queues {
            let first = self.waiting[queue as usize]
                .iter()
                .find(|&&(_, _, contact)| !self.has_leg(advisor, contact));
            if let Some(&key) = first
                && best.is_none_or(|best| key < best)
            {
                best = Some(key);
            }
        }
        if let Some((_, _, contact)) = best {
            self.offer(now, contact, advisor);
        }
    }

    fn offer(&mut self, now: i64, contact: u32, advisor: u32) {
        let record = &mut self.contacts[contact as usize];
        let (queue, key) = (record.queue, (record.enter, record.number, contact));
        record.journey = Journey::Offering(advisor);
        let laws = self.laws[channel_index(record.channel)];
        self.waiting[queue as usize].remove(&key);
        self.advisors[advisor as usize].offering = Some(contact);
        self.contact_event(
            now,
            contact,
            queue,
            Some(advisor),
            ContactEventKind::Offered,
        );
        let missed = unit(&mut self.rng) < laws.miss_share;
        let ring = if missed {
            laws.ring_timeout
        } else {
            let upper = (laws.ring_timeout - 500).max(1);
            ms(laws.ring.sample(&mut self.rng)).clamp(500.min(upper), upper)
        };
        self.schedule(
            now + ring,
            Action::OfferEnd {
                contact,
                answered: !missed,
            },
        );
    }

    fn offer_end(&mut self, now: i64, contact: u32, answered: bool) {
        let Journey::Offering(advisor) = self.contacts[contact as usize].journey else {
            return;
        };
        self.advisors[advisor as usize].offering = None;
        let queue = self.contacts[contact as usize].queue;
        if answered {
            self.contact_event(
                now,
                contact,
                queue,
                Some(advisor),
                ContactEventKind::Answered,
            );
            let record = &mut self.contacts[contact as usize];
            record.journey = Journey::Talking(advisor);
            record.token = record.token.wrapping_add(1);
            record.exit_due = None;
            self.advisors[advisor as usize].legs.push(Leg {
                contact,
                queue,
                transferred: false,
            });
            let first = self.plan_leg(contact);
            self.schedule(now + first, Action::LegStep { contact });
            // A chat advisor may take another one right away.
            self.check_advisor(now, advisor);
            return;
        }
        self.contact_event(now, contact, queue, Some(advisor), ContactEventKind::Missed);
        let state = &mut self.advisors[advisor as usize];
        state.idle_since = now;
        state.blocked_until = now + MISS_RETRY;
        self.schedule(now + MISS_RETRY, Action::Wake { advisor });
        let record = &mut self.contacts[contact as usize];
        record.journey = Journey::Waiting;
        if self.closed_final {
            let kind = ContactEventKind::Dequeued {
                reason: DequeueReason::Closed,
            };
            self.contact_event(now, contact, queue, None, kind);
            self.release(contact);
        } else if let Some(exit) = record.exit_due.take() {
            self.leave_queue(now, contact, exit);
        } else {
            let key = (record.enter, record.number, contact);
            self.waiting[queue as usize].insert(key);
            self.offer_contact(now, contact);
        }
        self.check_advisor(now, advisor);
    }

    /// Draws the talk, holds and transfer of the leg just answered; returns the first phase.
    fn plan_leg(&mut self, contact: u32) -> i64 {
        let record = &self.contacts[contact as usize];
        let laws = self.laws[channel_index(record.channel)];
        let rng = &mut self.rng;
        let talk = ms(laws.talk.sample(rng)).max(1000);
        let holds = if unit(rng) < laws.hold_share {
            if unit(rng) < 0.25 { 2 } else { 1 }
        } else {
            0
        };
        let mut phases = [0i64; 5];
        match holds {
            0 => phases[0] = talk,
            1 => {
                let first = ms(talk as f64 * (0.15 + 0.7 * unit(rng)));
                phases[0] = first;
                phases[1] = ms(laws.hold.sample(rng)).max(1000);
                phases[2] = talk - first;
            }
            _ => {
                let (a, b) = (0.15 + 0.7 * unit(rng), 0.15 + 0.7 * unit(rng));
                let first = ms(talk as f64 * a.min(b));
                let second = ms(talk as f64 * a.max(b)) - first;
                phases[0] = first;
                phases[1] = ms(laws.hold.sample(rng)).max(1000);
                phases[2] = second;
                phases[3] = ms(laws.hold.sample(rng)).max(1000);
                phases[4] = talk - first - second;
            }
        }
        let targets = &self.site.queues[record.queue as usize].transfer_targets;
        let transfer_to = if unit(rng) < laws.transfer_share && !targets.is_empty() {
            Some(targets[rng.random_range(0..targets.len())])
        } else {
            None
        };
        let record = &mut self.contacts[contact as usize];
        record.phases = phases;
        record.phase_count = 1 + 2 * holds;
        record.phase = 0;
        record.transfer_to = transfer_to;
        phases[0]
    }

    /// The end of a talk or hold phase of the current leg.
    fn leg_step(&mut self, now: i64, contact: u32) {
        let record = &mut self.contacts[contact as usize];
        let Journey::Talking(advisor) = record.journey else {
            return;
        };
        let queue = record.queue;
        let next = record.phase + 1;
        if next < record.phase_count {
            record.phase = next;
            let duration = record.phases[usize::from(next)];
            let kind = if next % 2 == 1 {
                ContactEventKind::Held
            } else {
                ContactEventKind::Resumed
            };
            self.contact_event(now, contact, queue, Some(advisor), kind);
            self.schedule(now + duration, Action::LegStep { contact });
            return;
        }
        let laws = self.laws[channel_index(record.channel)];
        // No transfer after closing: the target queue would be closing too.
        let transfer_to = record.transfer_to.filter(|_| now < self.site.close.0);
        let acw = ms(laws.acw.sample(&mut self.rng));
        match transfer_to {
            Some(to) => {
                let to_queue = Some(self.queue_id(to));
                let kind = ContactEventKind::Transferred { to_queue };
                self.contact_event(now, contact, queue, Some(advisor), kind);
                if let Some(leg) = self.advisors[advisor as usize]
                    .legs
                    .iter_mut()
                    .find(|leg| leg.contact == contact)
                {
                    leg.transferred = true;
                }
                // The new wait holds the contact besides this advisor's wrap-up.
                self.contacts[contact as usize].refs += 1;
                self.schedule(now + acw, Action::AcwEnd { advisor, contact });
                self.enter_queue(now, contact, to);
            }
            None => {
                self.contact_event(now, contact, queue, Some(advisor), ContactEventKind::Ended);
                self.contacts[contact as usize].journey = Journey::Done;
                self.schedule(now + acw, Action::AcwEnd { advisor, contact });
            }
        }
    }

    fn acw_end(&mut self, now: i64, advisor: u32, contact: u32) {
        let state = &mut self.advisors[advisor as usize];
        let Some(position) = state.legs.iter().position(|leg| leg.contact == contact) else {
            return;
        };
        let leg = state.legs.remove(position);
        state.idle_since = now;
        let resolved = if leg.transferred {
            None
        } else {
            Some(unit(&mut self.rng) < self.resolved_share)
        };
        let kind = ContactEventKind::Completed {
            disposition: None,
            resolved,
        };
        self.contact_event(now, contact, leg.queue, Some(advisor), kind);
        self.release(contact);
        self.check_advisor(now, advisor);
    }

    fn login(&mut self, now: i64, advisor: u32) {
        let spec = &self.site.advisors[advisor as usize];
        let kind = AdvisorEventKind::Login {
            team: Some(self.site.teams[spec.team as usize].id.clone()),
            name: Some(spec.name.clone()),
        };
        let shift_end = spec.shift_end.0.max(now);
        let pause_starts: Vec<i64> = spec
            .pauses
            .iter()
            .map(|pause| pause.start.0)
            .filter(|&start| start > now)
            .collect();
        self.advisor_event(now, advisor, kind);
        self.advisor_event(
            now,
            advisor,
            AdvisorEventKind::State(AdvisorStatus::Available),
        );
        let state = &mut self.advisors[advisor as usize];
        state.status = Status::Available;
        state.idle_since = now;
        self.schedule(shift_end, Action::ShiftEnd { advisor });
        for start in pause_starts {
            self.schedule(start, Action::Wake { advisor });
        }
        self.check_advisor(now, advisor);
    }

    /// The next planned pause that is due now and still fits before the end of the shift
    /// (those too late to fit are dropped).
    fn due_pause(&mut self, now: i64, advisor: u32) -> Option<usize> {
        let spec = &self.site.advisors[advisor as usize];
        let state = &mut self.advisors[advisor as usize];
        loop {
            let pause = spec.pauses.get(state.next_pause)?;
            if pause.start.0 > now {
                return None;
            }
            if now + pause.duration.0 > spec.shift_end.0 {
                state.next_pause += 1;
                continue;
            }
            return Some(state.next_pause);
        }
    }

    fn start_pause(&mut self, now: i64, advisor: u32, index: usize) {
        let pause = self.site.advisors[advisor as usize].pauses[index];
        let state = &mut self.advisors[advisor as usize];
        state.next_pause = index + 1;
        state.status = Status::Paused;
        let status = AdvisorStatus::Pause {
            reason: pause.reason.as_str().to_owned(),
        };
        self.advisor_event(now, advisor, AdvisorEventKind::State(status));
        self.schedule(now + pause.duration.0, Action::PauseEnd { advisor });
    }

    fn pause_end(&mut self, now: i64, advisor: u32) {
        let state = &self.advisors[advisor as usize];
        if state.status != Status::Paused {
            return;
        }
        if state.shift_over || now >= self.site.advisors[advisor as usize].shift_end.0 {
            self.logout(now, advisor);
            return;
        }
        if let Some(index) = self.due_pause(now, advisor) {
            self.start_pause(now, advisor, index);
            return;
        }
        let state = &mut self.advisors[advisor as usize];
        state.status = Status::Available;
        state.idle_since = now;
        self.advisor_event(
            now,
            advisor,
            AdvisorEventKind::State(AdvisorStatus::Available),
        );
        self.check_advisor(now, advisor);
    }

    fn logout(&mut self, now: i64, advisor: u32) {
        self.advisors[advisor as usize].status = Status::Out;
        self.advisor_event(now, advisor, AdvisorEventKind::Logout);
    }

    /// Decides what an available advisor does next: log out at the end of the shift, start a
    /// pause that fell due (only once free of contacts), or take a waiting contact.
    fn check_advisor(&mut self, now: i64, advisor: u32) {
        let state = &self.advisors[advisor as usize];
        if state.status != Status::Available || state.offering.is_some() {
            return;
        }
        if state.legs.is_empty() {
            if state.shift_over {
                let spec = &self.site.advisors[advisor as usize];
                let drain = spec.shift_end >= self.site.close
                    && !self.closed_final
                    && self.site.teams[spec.team as usize]
                        .queues
                        .iter()
                        .any(|&queue| !self.waiting[queue as usize].is_empty());
                if !drain {
                    self.logout(now, advisor);
                    return;
                }
            } else if let Some(index) = self.due_pause(now, advisor) {
                self.start_pause(now, advisor, index);
                return;
            }
        }
        self.feed_advisor(now, advisor);
    }

    /// The end of the closing grace: what still waits is dequeued as `closed`, and whoever is
    /// free logs out.
    fn close_final(&mut self, now: i64) {
        self.closed_final = true;
        for queue in 0..self.waiting.len() {
            let waiting = std::mem::take(&mut self.waiting[queue]);
            for (_, _, contact) in waiting {
                let kind = ContactEventKind::Dequeued {
                    reason: DequeueReason::Closed,
                };
                self.contact_event(now, contact, queue as u32, None, kind);
                self.release(contact);
            }
        }
        for advisor in 0..self.advisors.len() as u32 {
            self.check_advisor(now, advisor);
        }
    }
}

impl Iterator for Simulation {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(event);
            }
            if !self.step() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_padded_without_fmt() {
        let mut text = String::new();
        push_number(&mut text, 123, 6);
        text.push(' ');
        push_number(&mut text, 0, 1);
        text.push(' ');
        push_number(&mut text, u64::MAX, 6);
        assert_eq!(text, format!("000123 0 {}", u64::MAX));
    }

    #[test]
    fn the_heap_pops_by_time_then_scheduling_order() {
        let mut heap = BinaryHeap::new();
        for (time, seq) in [(5, 1), (3, 2), (5, 0), (3, 3)] {
            heap.push(Scheduled {
                time,
                seq,
                action: Action::CloseFinal,
            });
        }
        let order: Vec<(i64, u64)> =
            std::iter::from_fn(|| heap.pop().map(|s| (s.time, s.seq))).collect();
        assert_eq!(order, [(3, 2), (3, 3), (5, 0), (5, 1)]);
    }
}
