//! The processor of one site: applies events, deduplicates them, tolerates disorder within the
//! allowed lateness, and keeps what the views are computed from.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::advisor::{Advisor, Status, StatusPoint};
use crate::config::{ProcessingConfig, QueueConfig, SiteConfig, SlVariant};
use crate::contact::{
    Derived, Fact, FactKind, FoldState, QueueChannel, Record, comes_last, derive_into, diff,
    insert_fact,
};
use crate::event::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, ContactEvent, ContactEventKind, Event, EventBody,
};
use crate::reject::{RejectReason, Rejection};
use crate::tally::{Entry, EntryKind, EntryLog, QueueTally, Thresholds};
use crate::time::{Day, DayCache, DayCalendar, Millis, Timestamp};

/// The longest trailing window; entries are kept this long behind the newest event.
pub(crate) const LONGEST_WINDOW: Millis = Millis::from_mins(60);

/// The most events one contact may have; a contact beyond is refused (a runaway producer).
pub const MAX_EVENTS_PER_CONTACT: usize = 512;

/// Entities are settled when the horizon moved at least this much since their last settling,
/// so that a busy entity does not walk its timeline on every event.
const SETTLE_STEP: Millis = Millis(60_000);

/// What became of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Taken into account.
    Applied,
    /// Already seen (same `id`): ignored.
    Duplicate,
    /// Refused, with the reason.
    Rejected(Rejection),
}

/// Running counts of what the processor did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessorStats {
    /// Events applied.
    pub applied: u64,
    /// Events dropped as duplicates.
    pub duplicates: u64,
    /// Events rejected, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Contacts given up after `contact_expiry` without an event.
    pub contacts_expired: u64,
    /// Contacts currently tracked.
    pub contacts_tracked: u64,
    /// Advisors known today.
    pub advisors: u64,
}

/// Memory the processor holds, by kind of item (for the memory benchmark and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryItems {
    /// Contacts in progress (or completed within the allowed lateness).
    pub contacts: usize,
    /// Events of those contacts.
    pub contact_events: usize,
    /// Completed contacts remembered to refuse stray events.
    pub completed_contacts: usize,
    /// Event ids remembered for deduplication.
    pub event_ids: usize,
    /// Queue log entries (trailing windows).
    pub queue_entries: usize,
    /// Advisor timeline items and log entries.
    pub advisor_items: usize,
    /// Estimated bytes (inline and heap, from capacities) by kind: contacts in progress and
    /// remembered ones, event ids, queues, advisors.
    pub estimated_bytes: BTreeMap<&'static str, usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct QueueSettings {
    pub config: QueueConfig,
    pub thresholds: Thresholds,
    pub variant: SlVariant,
}

#[derive(Clone, Debug)]
pub(crate) struct TeamSettings {
    pub id: String,
    pub name: Option<String>,
    pub queues: Vec<u32>,
    pub variant: SlVariant,
    /// Configured in the site (else only named by logins, and listed while it has members).
    pub configured: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct QueueChannelState {
    pub log: EntryLog<QueueTally>,
    /// Contacts waiting, by time of entry.
    pub waiting: BTreeSet<(Timestamp, u128)>,
}

#[derive(Clone, Debug)]
struct ContactState {
    id: Box<str>,
    /// Sorted by time: the contact is re-derived from them on every change.
    facts: Vec<Fact>,
    /// Where its life stands after all the facts.
    fold: FoldState,
    finished_at: Option<Timestamp>,
    last_time: Timestamp,
    /// Its deadline in the expiry index.
    deadline: Timestamp,
}

/// Why a contact is remembered after it was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gone {
    Completed,
    Expired,
}

/// Strings interned to dense indices, in order of first appearance.
///
/// Looked up by a 128-bit hash of the string, so that a lookup touches the table only, not
/// the string's memory (a collision among a site's names has a negligible probability, ~2^-100).
#[derive(Clone, Debug, Default)]
pub(crate) struct Interner {
    index: FxHashMap<u128, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub(crate) fn intern(&mut self, name: &str) -> (u32, bool) {
        let key = hash_id(name);
        if let Some(index) = self.index.get(&key) {
            return (*index, false);
        }
        let index = u32::try_from(self.names.len()).expect("fewer than 4 billion distinct names");
        self.names.push(name.into());
        self.index.insert(key, index);
        (index, true)
    }

    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.index.get(&hash_id(name)).copied()
    }

    pub(crate) fn name(&self, index: u32) -> &str {
        &self.names[index as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Room for `additional` more names without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.names.reserve_exact(additional);
    }
}

/// The processor of one site. Single writer: `&mut self` to apply, `&self` to read views.
#[derive(Debug)]
pub struct SiteProcessor {
    pub(crate) site: SiteConfig,
    pub(crate) calendar: DayCalendar,
    lateness: Millis,
    dedupe_window: Millis,
    contact_expiry: Millis,
    completed_memory: Millis,
    /// The newest event time applied.
    pub(crate) watermark: Timestamp,
    /// The newest time the caller advanced to.
    pub(crate) clock: Timestamp,
    seen_ids: FxHashSet<u128>,
    seen_order: VecDeque<(Timestamp, u128)>,
    contacts: FxHashMap<u128, ContactState>,
    gone: FxHashMap<u128, (Timestamp, Gone)>,
    gone_order: VecDeque<(Timestamp, u128)>,
    finishing: BinaryHeap<Reverse<(Timestamp, u128)>>,
    /// Contacts in progress by expiry deadline. A deadline is moved forward lazily, when it
    /// comes due while the contact had events since.
    expiries: BTreeSet<(Timestamp, u128)>,
    pub(crate) queues: Interner,
    pub(crate) queue_settings: Vec<QueueSettings>,
    pub(crate) queue_channels: BTreeMap<QueueChannel, QueueChannelState>,
    pub(crate) advisors: Interner,
    pub(crate) advisor_state: Vec<Advisor>,
    pub(crate) teams: Interner,
    pub(crate) team_settings: Vec<TeamSettings>,
    roster: FxHashMap<u32, u32>,
    pub(crate) reasons: Interner,
    stats: ProcessorStats,
    touched_queues: Vec<QueueChannel>,
    touched_advisors: Vec<u32>,
    /// Reused derivation buffers (before and after a change).
    scratch: (Derived, Derived),
    days: DayCache,
}

fn hash_id(id: &str) -> u128 {
    xxh3_128(id.as_bytes())
}

impl SiteProcessor {
    /// A processor for a validated site configuration.
    pub fn new(site: SiteConfig, processing: &ProcessingConfig) -> SiteProcessor {
        let calendar = site.calendar();
        let mut processor = SiteProcessor {
            calendar,
            lateness: processing.allowed_lateness.millis(),
            dedupe_window: processing
                .dedupe_window
                .millis()
                .max(processing.allowed_lateness.millis()),
            contact_expiry: processing.contact_expiry.millis(),
            completed_memory: processing.completed_contact_memory.millis(),
            watermark: Timestamp::MIN,
            clock: Timestamp::MIN,
            seen_ids: FxHashSet::default(),
            seen_order: VecDeque::new(),
            contacts: FxHashMap::default(),
            gone: FxHashMap::default(),
            gone_order: VecDeque::new(),
            finishing: BinaryHeap::new(),
            expiries: BTreeSet::new(),
            queues: Interner::default(),
            queue_settings: Vec::new(),
            queue_channels: BTreeMap::new(),
            advisors: Interner::default(),
            advisor_state: Vec::new(),
            teams: Interner::default(),
            team_settings: Vec::new(),
            roster: FxHashMap::default(),
            reasons: Interner::default(),
            stats: ProcessorStats::default(),
            touched_queues: Vec::new(),
            touched_advisors: Vec::new(),
            scratch: (Derived::default(), Derived::default()),
            days: DayCache::new(calendar),
            site,
        };
        processor.load_configuration();
        processor
    }

    fn load_configuration(&mut self) {
        let site = self.site.clone();
        for queue in &site.queues {
            let index = self.queue_index(&queue.id);
            self.queue_settings[index as usize] = QueueSettings::from_config(queue.clone(), &site);
        }
        let rostered: usize = site.teams.iter().map(|t| t.advisors.len()).sum();
        self.advisors.reserve(rostered);
        self.advisor_state.reserve_exact(rostered);
        for team in &site.teams {
            let index = self.team_index(&team.id);
            let queues = team.queues.iter().map(|q| self.queue_index(q)).collect();
            let settings = &mut self.team_settings[index as usize];
            settings.name = team.name.clone();
            settings.queues = queues;
            settings.variant = team.sl_variant.unwrap_or(site.sl_variant);
            settings.configured = true;
            for advisor in &team.advisors {
                let advisor = self.advisor_index(advisor);
                self.roster.insert(advisor, index);
            }
        }
    }

    /// The site's configuration.
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    /// The newest event time applied, if any.
    pub fn watermark(&self) -> Option<Timestamp> {
        (self.watermark > Timestamp::MIN).then_some(self.watermark)
    }

    /// The instant views are computed at: the latest of the clock and the newest event.
    pub fn now(&self) -> Timestamp {
        self.clock.max(self.watermark)
    }

    /// Counts of what was applied, dropped and refused.
    pub fn stats(&self) -> ProcessorStats {
        let mut stats = self.stats.clone();
        stats.contacts_tracked = self.contacts.len() as u64;
        stats.advisors = self.advisors.len() as u64;
        stats
    }

    /// Items held in memory, by kind.
    pub fn memory_items(&self) -> MemoryItems {
        MemoryItems {
            contacts: self.contacts.len(),
            contact_events: self.contacts.values().map(|c| c.facts.len()).sum(),
            completed_contacts: self.gone.len(),
            event_ids: self.seen_ids.len(),
            queue_entries: self.queue_channels.values().map(|q| q.log.len()).sum(),
            advisor_items: self.advisor_state.iter().map(Advisor::kept_items).sum(),
            estimated_bytes: self.estimated_bytes(),
        }
    }

    fn estimated_bytes(&self) -> BTreeMap<&'static str, usize> {
        use std::mem::size_of;
        // A hash table slot costs its entry plus one control byte.
        let table = |capacity: usize, entry: usize| capacity * (entry + 1);
        let contacts = table(self.contacts.capacity(), size_of::<(u128, ContactState)>())
            + self
                .contacts
                .values()
                .map(|c| c.facts.capacity() * size_of::<Fact>() + c.id.len())
                .sum::<usize>();
        let remembered = table(self.gone.capacity(), size_of::<(u128, (Timestamp, Gone))>())
            + self.gone_order.capacity() * size_of::<(Timestamp, u128)>()
            + self.expiries.len() * size_of::<(Timestamp, u128)>()
            + self.finishing.capacity() * size_of::<Reverse<(Timestamp, u128)>>();
        let ids = table(self.seen_ids.capacity(), size_of::<u128>())
            + self.seen_order.capacity() * size_of::<(Timestamp, u128)>();
        let queues = self
            .queue_channels
            .values()
            .map(|q| size_of::<QueueChannelState>() + q.log.heap_bytes() + q.waiting.len() * 32)
            .sum();
        let advisors = self.advisor_state.capacity() * size_of::<Advisor>()
            + self
                .advisor_state
                .iter()
                .map(Advisor::heap_bytes)
                .sum::<usize>()
            + table(self.advisors.len(), size_of::<(u128, u32)>());
        BTreeMap::from([
            ("contacts", contacts),
            ("remembered_contacts", remembered),
            ("event_ids", ids),
            ("queues", queues),
            ("advisors", advisors),
        ])
    }

    /// Advances the clock used for live figures (time in state, longest wait, trailing
    /// windows). It never moves backwards and does not judge lateness: only events do.
    pub fn advance_to(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
    }

    /// The site-local day containing `time`.
    pub fn day_of(&self, time: Timestamp) -> Day {
        self.calendar.day_of(time)
    }

    fn settle_horizon(&self) -> Timestamp {
        self.watermark - self.lateness
    }

    pub(crate) fn queue_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.queues.intern(id);
        if new {
            let config = QueueConfig::with_defaults(id);
            self.queue_settings
                .push(QueueSettings::from_config(config, &self.site));
        }
        index
    }

    pub(crate) fn team_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.teams.intern(id);
        if new {
            self.team_settings.push(TeamSettings {
                id: id.to_owned(),
                name: None,
                queues: Vec::new(),
                variant: self.site.sl_variant,
                configured: false,
            });
        }
        index
    }

    pub(crate) fn advisor_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.advisors.intern(id);
        if new {
            self.advisor_state.push(Advisor::new(self.settle_horizon()));
        }
        index
    }

    /// The team an advisor belongs to: the roster's, else their latest login's, else
    /// `unassigned`.
    pub(crate) fn team_of(&self, advisor: u32) -> Option<u32> {
        self.roster.get(&advisor).copied().or_else(|| {
            self.advisor_state[advisor as usize]
                .login_team
                .map(|(_, team)| team)
        })
    }

    /// Applies one event of this site.
    pub fn apply(&mut self, event: &Event) -> Outcome {
        let outcome = self.apply_inner(event);
        match &outcome {
            Outcome::Applied => self.stats.applied += 1,
            Outcome::Duplicate => self.stats.duplicates += 1,
            Outcome::Rejected(rejection) => {
                *self.stats.rejected.entry(rejection.reason).or_default() += 1
            }
        }
        outcome
    }

    fn apply_inner(&mut self, event: &Event) -> Outcome {
        let id = hash_id(&event.id);
        if self.seen_ids.contains(&id) {
            return Outcome::Duplicate;
        }
        let horizon = self.settle_horizon();
        if event.time < horizon {
            return Outcome::Rejected(Rejection::field(
                RejectReason::TooLate,
                "time",
                format!(
                    "event time {} is {:.3} s behind the newest event of site {:?} ({}); the allowed lateness is {:.0} s",
                    event.time,
                    (self.watermark - event.time).as_secs_f64(),
                    self.site.id,
                    self.watermark,
                    self.lateness.as_secs_f64(),
                ),
            ));
        }
        let result = match &event.body {
            EventBody::Contact(contact) => self.apply_contact(event, contact, id),
            EventBody::Advisor(advisor) => {
                self.apply_advisor(event, advisor, id);
                Ok(())
            }
        };
        if let Err(rejection) = result {
            return Outcome::Rejected(rejection);
        }
        self.seen_ids.insert(id);
        self.seen_order.push_back((event.time, id));
        if event.time > self.watermark {
            self.watermark = event.time;
            self.housekeeping();
        }
        self.settle_touched();
        Outcome::Applied
    }

    fn apply_contact(
        &mut self,
        event: &Event,
        contact: &ContactEvent,
        id: u128,
    ) -> Result<(), Rejection> {
        let key = hash_id(&contact.contact);
        if let Some((finished, gone)) = self.gone.get(&key) {
            return Err(gone_rejection(*gone, &contact.contact, *finished));
        }
        if let Some(state) = self.contacts.get(&key) {
            if let Some(finished) = state.finished_at
                && event.time > finished + self.lateness
            {
                return Err(gone_rejection(Gone::Completed, &contact.contact, finished));
            }
            if state.facts.len() >= MAX_EVENTS_PER_CONTACT {
                return Err(Rejection::field(
                    RejectReason::TooManyEvents,
                    "contact",
                    format!(
                        "contact {:?} already has {MAX_EVENTS_PER_CONTACT} events, the most one contact may have",
                        contact.contact
                    ),
                ));
            }
        }
        let advisor = contact.advisor.as_deref().map(|a| self.advisor_index(a));
        let queue = match &contact.kind {
            ContactEventKind::Transferred { to_queue } => to_queue.as_deref(),
            ContactEventKind::Queued | ContactEventKind::Answered => contact.queue.as_deref(),
            _ => None,
        }
        .map(|q| self.queue_index(q));
        let kind = match &contact.kind {
            ContactEventKind::Queued => FactKind::Queued,
            ContactEventKind::Offered => FactKind::Offered,
            ContactEventKind::Missed => FactKind::Missed,
            ContactEventKind::Answered => FactKind::Answered,
            ContactEventKind::Held => FactKind::Held,
            ContactEventKind::Resumed => FactKind::Resumed,
            ContactEventKind::Transferred { .. } => FactKind::Transferred,
            ContactEventKind::Abandoned => FactKind::Abandoned,
            ContactEventKind::Dequeued { reason } => FactKind::Dequeued(*reason),
            ContactEventKind::Ended => FactKind::Ended,
            ContactEventKind::Completed { .. } => FactKind::Completed,
        };
        let fact = Fact {
            time: event.time,
            tie: id as u64,
            kind,
            advisor,
            queue,
            channel: contact.channel,
        };
        let state = self.contacts.entry(key).or_insert_with(|| ContactState {
            id: contact.contact.as_str().into(),
            facts: Vec::with_capacity(8),
            fold: FoldState::default(),
            finished_at: None,
            last_time: event.time,
            deadline: event.time + self.contact_expiry,
        });
        if state.facts.is_empty() {
            self.expiries.insert((state.deadline, key));
        }
        let (mut old, mut new) = std::mem::take(&mut self.scratch);
        let in_order = comes_last(&state.facts, &fact);
        if in_order {
            // In order, the usual case: go on from where the contact stood. Only what was
            // open can change; what was already derived stays as it is, and every record of
            // this step is new.
            old.records.clear();
            old.spans.clear();
            state.fold.open_spans(None, &mut old.spans);
            old.waiting = state.fold.waiting();
            old.finished_at = state.finished_at;
            new.records.clear();
            new.spans.clear();
            state.fold.step(&fact, &mut new);
            state.fold.open_spans(None, &mut new.spans);
            new.waiting = state.fold.waiting();
            state.facts.push(fact);
        } else {
            // Out of order: derive the whole contact again, before and after.
            derive_into(&state.facts, None, &mut old);
            insert_fact(&mut state.facts, fact);
            state.fold = derive_into(&state.facts, None, &mut new);
        }
        state.last_time = state.last_time.max(event.time);
        state.finished_at = new.finished_at;
        if let Some(finished) = new.finished_at
            && old.finished_at != Some(finished)
        {
            self.finishing.push(Reverse((finished, key)));
        }
        self.apply_change(key, &old, &new);
        self.scratch = (old, new);
        Ok(())
    }

    /// Applies the difference between two derivations of a contact to queues and advisors.
    fn apply_change(&mut self, key: u128, old: &Derived, new: &Derived) {
        diff(&old.records, &new.records, |record, add| {
            self.record(&record, add)
        });
        diff(&old.spans, &new.spans, |span, add| {
            self.touched_advisors.push(span.advisor);
            let advisor = &mut self.advisor_state[span.advisor as usize];
            if add {
                advisor.add_span(span)
            } else {
                advisor.remove_span(&span)
            }
        });
        if old.waiting != new.waiting {
            if let Some(waiting) = old.waiting
                && let Some(state) = self.queue_channels.get_mut(&waiting.qc)
            {
                state.waiting.remove(&(waiting.since, key));
            }
            if let Some(waiting) = new.waiting {
                self.queue_channels
                    .entry(waiting.qc)
                    .or_default()
                    .waiting
                    .insert((waiting.since, key));
            }
        }
    }

    fn record(&mut self, record: &Record, add: bool) {
        let horizon = self.settle_horizon();
        let queue_entry = |processor: &mut SiteProcessor, qc: QueueChannel, entry: Entry| {
            processor.touched_queues.push(qc);
            let state = processor
                .queue_channels
                .entry(qc)
                .or_insert_with(|| QueueChannelState {
                    log: EntryLog::new(horizon),
                    waiting: BTreeSet::new(),
                });
            if add {
                state.log.insert(entry)
            } else {
                state.log.remove(&entry)
            }
        };
        let advisor_entry = |processor: &mut SiteProcessor, advisor: u32, entry: Entry| {
            processor.touched_advisors.push(advisor);
            let log = &mut processor.advisor_state[advisor as usize].tally;
            if add {
                log.insert(entry)
            } else {
                log.remove(&entry)
            }
        };
        match *record {
            Record::Offer { qc, time } => queue_entry(self, qc, Entry::new(time, EntryKind::Offer)),
            Record::Left {
                qc,
                time,
                wait,
                outcome,
            } => queue_entry(self, qc, Entry::left(time, wait, outcome)),
            Record::Handled {
                advisor,
                qc,
                time,
                talk,
                hold,
                acw,
                held,
            } => {
                let entry = Entry::handled(time, talk, hold, acw, held);
                advisor_entry(self, advisor, entry);
                if let Some(qc) = qc {
                    queue_entry(self, qc, entry);
                }
            }
            Record::Transfer { advisor, qc, time } => {
                let entry = Entry::new(time, EntryKind::Transfer);
                advisor_entry(self, advisor, entry);
                if let Some(qc) = qc {
                    queue_entry(self, qc, entry);
                }
            }
            Record::Missed { advisor, time } => {
                advisor_entry(self, advisor, Entry::new(time, EntryKind::Missed))
            }
        }
    }

    fn apply_advisor(&mut self, event: &Event, advisor_event: &AdvisorEvent, id: u128) {
        let advisor = self.advisor_index(&advisor_event.advisor);
        let (status, rank) = match &advisor_event.kind {
            AdvisorEventKind::Login { team, name } => {
                let team = team.as_deref().map(|t| self.team_index(t));
                let state = &mut self.advisor_state[advisor as usize];
                if let Some(team) = team
                    && state.login_team.is_none_or(|(time, _)| time <= event.time)
                {
                    state.login_team = Some((event.time, team));
                }
                if let Some(name) = name
                    && state
                        .name
                        .as_ref()
                        .is_none_or(|(time, _)| *time <= event.time)
                {
                    state.name = Some((event.time, name.as_str().into()));
                }
                (Status::Available, 0)
            }
            AdvisorEventKind::State(AdvisorStatus::Available) => (Status::Available, 1),
            AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => {
                (Status::Pause(self.reasons.intern(reason).0), 1)
            }
            AdvisorEventKind::Logout => (Status::LoggedOut, 2),
        };
        self.advisor_state[advisor as usize].add_status(StatusPoint {
            time: event.time,
            rank,
            tie: id as u64,
            status,
        });
        self.touched_advisors.push(advisor);
    }

    /// Forgets what the allowed lateness no longer protects: old ids, completed and expired
    /// contacts.
    fn housekeeping(&mut self) {
        let horizon = self.settle_horizon();
        let dedupe_from = self.watermark - self.dedupe_window;
        while let Some(&(time, id)) = self.seen_order.front() {
            if time >= dedupe_from {
                break;
            }
            self.seen_order.pop_front();
            self.seen_ids.remove(&id);
        }
        let gone_from = self.watermark - self.completed_memory;
        while let Some(&(time, key)) = self.gone_order.front() {
            if time >= gone_from {
                break;
            }
            self.gone_order.pop_front();
            self.gone.remove(&key);
        }
        // Completed contacts: once the horizon passed their end, nothing can change them.
        while let Some(&Reverse((finished, key))) = self.finishing.peek() {
            if finished >= horizon {
                break;
            }
            self.finishing.pop();
            let still_finished = self
                .contacts
                .get(&key)
                .is_some_and(|c| c.finished_at == Some(finished));
            if still_finished && let Some(state) = self.contacts.remove(&key) {
                self.expiries.remove(&(state.deadline, key));
                self.remember_gone(key, finished, Gone::Completed);
            }
        }
        // Contacts silent for `contact_expiry`: given up exactly at their last event plus the
        // expiry. Checked on every advance of the newest event time, so that instant is never
        // behind what queues and advisors have settled.
        while let Some(&(deadline, key)) = self.expiries.first() {
            if deadline > self.watermark {
                break;
            }
            self.expiries.pop_first();
            let Some(state) = self.contacts.get_mut(&key) else {
                continue;
            };
            let due = state.last_time + self.contact_expiry;
            if due > self.watermark {
                state.deadline = due;
                self.expiries.insert((due, key));
            } else if state.finished_at.is_none() {
                self.expire(key, due);
            }
        }
    }

    /// Gives up a contact at `expired_at`, freeing its queue and advisors.
    fn expire(&mut self, key: u128, expired_at: Timestamp) {
        let Some(state) = self.contacts.remove(&key) else {
            return;
        };
        let (mut old, mut new) = std::mem::take(&mut self.scratch);
        derive_into(&state.facts, None, &mut old);
        derive_into(&state.facts, Some(expired_at), &mut new);
        self.apply_change(key, &old, &new);
        self.scratch = (old, new);
        self.remember_gone(key, expired_at, Gone::Expired);
        self.stats.contacts_expired += 1;
    }

    fn remember_gone(&mut self, key: u128, at: Timestamp, gone: Gone) {
        self.gone.insert(key, (at, gone));
        self.gone_order.push_back((self.watermark, key));
    }

    /// Settles the queues and advisors this event touched.
    fn settle_touched(&mut self) {
        let horizon = self.settle_horizon();
        let keep_from = self.watermark - LONGEST_WINDOW;
        let mut days = self.days;
        let mut queues = std::mem::take(&mut self.touched_queues);
        queues.sort_unstable();
        queues.dedup();
        for qc in queues.drain(..) {
            let thresholds = self.queue_settings[qc.queue as usize].thresholds;
            if let Some(state) = self.queue_channels.get_mut(&qc)
                && state.log.settled_until() + SETTLE_STEP <= horizon
            {
                state.log.settle(horizon, keep_from, thresholds, &mut days);
            }
        }
        self.touched_queues = queues;
        let mut advisors = std::mem::take(&mut self.touched_advisors);
        advisors.sort_unstable();
        advisors.dedup();
        for advisor in advisors.drain(..) {
            let state = &mut self.advisor_state[advisor as usize];
            if state.settled_until() + SETTLE_STEP <= horizon {
                state.settle(horizon, keep_from, &mut days);
            }
        }
        self.touched_advisors = advisors;
        self.days = days;
    }

    /// The id of the contact waiting longest in a queue-channel.
    pub(crate) fn contact_id(&self, key: u128) -> Option<&str> {
        self.contacts.get(&key).map(|c| &*c.id)
    }
}

fn gone_rejection(gone: Gone, contact: &str, at: Timestamp) -> Rejection {
    match gone {
        Gone::Completed => Rejection::field(
            RejectReason::ContactCompleted,
            "contact",
            format!(
                "contact {contact:?} was completed at {at}; no event may follow its completion"
            ),
        ),
        Gone::Expired => Rejection::field(
            RejectReason::ContactExpired,
            "contact",
            format!(
                "contact {contact:?} had no event for the contact expiry and was given up at {at}"
            ),
        ),
    }
}

impl QueueSettings {
    fn from_config(config: QueueConfig, site: &SiteConfig) -> QueueSettings {
        QueueSettings {
            thresholds: Thresholds {
                sl_threshold: config.sl_threshold.millis(),
                short_abandon: config.short_abandon.millis(),
            },
            variant: config.sl_variant.unwrap_or(site.sl_variant),
            config,
        }
    }
}

/// The processor of every site, creating one per site on its first event.
#[derive(Debug)]
pub struct Processor {
    processing: ProcessingConfig,
    configured: BTreeMap<String, SiteConfig>,
    sites: BTreeMap<String, SiteProcessor>,
}

impl Processor {
    /// A processor for these sites (validated); events of other sites get a site with defaults.
    pub fn new(sites: Vec<SiteConfig>, processing: ProcessingConfig) -> Processor {
        let mut processor = Processor {
            configured: sites.iter().map(|s| (s.id.clone(), s.clone())).collect(),
            sites: BTreeMap::new(),
            processing,
        };
        for site in sites {
            processor.site_mut(&site.id);
        }
        processor
    }

    fn site_mut(&mut self, id: &str) -> &mut SiteProcessor {
        if !self.sites.contains_key(id) {
            let config = self
                .configured
                .get(id)
                .cloned()
                .unwrap_or_else(|| SiteConfig::with_defaults(id));
            self.sites
                .insert(id.to_owned(), SiteProcessor::new(config, &self.processing));
        }
        self.sites.get_mut(id).expect("inserted just above")
    }

    /// Applies an event to its site.
    pub fn apply(&mut self, event: &Event) -> Outcome {
        self.site_mut(&event.site).apply(event)
    }

    /// Advances every site's clock.
    pub fn advance_to(&mut self, now: Timestamp) {
        for site in self.sites.values_mut() {
            site.advance_to(now);
        }
    }

    /// The processor of a site, if it exists.
    pub fn site(&self, id: &str) -> Option<&SiteProcessor> {
        self.sites.get(id)
    }

    /// Every site, by id.
    pub fn sites(&self) -> impl Iterator<Item = &SiteProcessor> {
        self.sites.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};

    fn processor() -> SiteProcessor {
        SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default())
    }

    fn event(id: &str, time: &str, rest: &str) -> Event {
        let json = format!(r#"{{"id":"{id}","time":"2026-03-02T{time}Z","site":"s",{rest}}}"#);
        decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
    }

    fn queued(id: &str, time: &str, contact: &str) -> Event {
        event(
            id,
            time,
            &format!(
                r#""type":"contact.queued","contact":"{contact}","queue":"q","channel":"voice""#
            ),
        )
    }

    fn abandoned(id: &str, time: &str, contact: &str) -> Event {
        event(
            id,
            time,
            &format!(r#""type":"contact.abandoned","contact":"{contact}""#),
        )
    }

    fn reason(outcome: Outcome) -> Option<RejectReason> {
        match outcome {
            Outcome::Rejected(rejection) => Some(rejection.reason),
            _ => None,
        }
    }

    #[test]
    fn an_event_older_than_the_allowed_lateness_is_too_late_unless_it_is_a_duplicate() {
        let mut p = processor();
        assert_eq!(p.apply(&queued("1", "10:00:00", "c1")), Outcome::Applied);
        assert_eq!(p.apply(&queued("2", "10:01:00", "c2")), Outcome::Applied);
        // 30 s behind the newest event is still in time; 30.001 s is not.
        assert_eq!(p.apply(&queued("3", "10:00:30", "c3")), Outcome::Applied);
        let late = p.apply(&queued("4", "10:00:29.999", "c4"));
        assert_eq!(reason(late), Some(RejectReason::TooLate));
        // A redelivery of an event already applied is a duplicate, however late.
        assert_eq!(p.apply(&queued("1", "10:00:00", "c1")), Outcome::Duplicate);
        assert_eq!(p.stats().rejected.get(&RejectReason::TooLate), Some(&1));
        assert_eq!(p.stats().duplicates, 1);
    }

    #[test]
    fn an_event_long_after_a_contact_ended_is_refused_as_completed() {
        let mut p = processor();
        p.apply(&queued("1", "10:00:00", "c1"));
        p.apply(&abandoned("2", "10:00:10", "c1"));
        // Within the allowed lateness of the end, events are still accepted (reordering).
        assert_eq!(
            p.apply(&event(
                "3",
                "10:00:40",
                r#""type":"contact.ended","contact":"c1""#
            )),
            Outcome::Applied
        );
        let answer = event(
            "4",
            "10:00:41",
            r#""type":"contact.answered","contact":"c1","advisor":"a""#,
        );
        assert_eq!(
            reason(p.apply(&answer)),
            Some(RejectReason::ContactCompleted)
        );
        // Once the horizon passes its end the contact is released, and still refused.
        p.apply(&queued("5", "10:05:00", "c2"));
        assert_eq!(p.memory_items().contacts, 1);
        let held = event("6", "10:04:59", r#""type":"contact.held","contact":"c1""#);
        assert_eq!(reason(p.apply(&held)), Some(RejectReason::ContactCompleted));
    }

    #[test]
    fn a_contact_silent_beyond_its_expiry_is_given_up_and_refused_afterwards() {
        let mut p = processor();
        p.apply(&queued("1", "00:00:00", "c1"));
        assert_eq!(p.site_view(crate::Window::Today).totals.live.in_queue, 1);
        // Twelve hours and a minute later, another contact moves time on.
        p.apply(&queued("2", "12:01:00", "c2"));
        assert_eq!(p.stats().contacts_expired, 1);
        assert_eq!(
            p.site_view(crate::Window::Today).totals.live.in_queue,
            1,
            "only c2 waits"
        );
        let late = abandoned("3", "12:01:01", "c1");
        assert_eq!(reason(p.apply(&late)), Some(RejectReason::ContactExpired));
    }

    #[test]
    fn a_runaway_contact_is_capped() {
        let mut p = processor();
        p.apply(&queued("q", "10:00:00", "c1"));
        for n in 1..MAX_EVENTS_PER_CONTACT {
            let held = event(
                &format!("h{n}"),
                "10:00:01",
                r#""type":"contact.held","contact":"c1""#,
            );
            assert_eq!(p.apply(&held), Outcome::Applied);
        }
        let one_more = event(
            "last",
            "10:00:02",
            r#""type":"contact.held","contact":"c1""#,
        );
        assert_eq!(
            reason(p.apply(&one_more)),
            Some(RejectReason::TooManyEvents)
        );
    }

    #[test]
    fn events_are_routed_to_their_site() {
        let mut processor = Processor::new(Vec::new(), ProcessingConfig::default());
        let mut other = queued("1", "10:00:00", "c1");
        other.site = "lyon".into();
        processor.apply(&queued("1", "10:00:00", "c1"));
        assert_eq!(
            processor.apply(&other),
            Outcome::Applied,
            "ids are per site"
        );
        let sites: Vec<&str> = processor.sites().map(|s| s.site().id.as_str()).collect();
        assert_eq!(sites, vec!["lyon", "s"]);
    }
}
