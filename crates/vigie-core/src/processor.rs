//! The processor of one site: applies events, deduplicates them, tolerates disorder within the
//! allowed lateness, and keeps what the views are computed from.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_128;

use crate::abandoned::{AbandonedChange, AbandonedJournal};
use crate::advisor::{Advisor, Status, StatusPoint};
use crate::config::{ConfigErrors, ProcessingConfig, QueueConfig, SiteConfig, SlVariant};
use crate::contact::{
    Derived, Fact, FactKind, FoldState, MAX_INDEXED_NAMES, QueueChannel, Record, Span, Waiting,
    comes_last, derive_into, diff, fact_position,
};
use crate::event::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind, Event,
    EventBody,
};
use crate::intervals::QueueIntervals;
use crate::reject::{RejectReason, Rejection};
use crate::snapshot::SnapshotError;
use crate::table::{HashTable, Vacancy};
use crate::tally::{
    Entry, EntryKind, FlowEntry, FlowLog, HandlingLog, Thresholds, reserve_tight, shrink_tight,
};
use crate::time::{Day, DayCache, DayCalendar, Millis, Timestamp};
use crate::totals::{DayTotals, IntervalCapture};

/// The longest trailing window; entries are kept this long behind the newest event.
pub(crate) const LONGEST_WINDOW: Millis = Millis::from_mins(60);

/// The most events one contact may have; a contact beyond is refused (a runaway producer).
pub const MAX_EVENTS_PER_CONTACT: usize = 512;

/// How many events ahead [`SiteProcessor::apply_all`] asks for memory.
const LOOKAHEAD: usize = 16;

/// What an event is looked up by: the hashes of its id and contact (0 for an advisor event),
/// and its advisor's index if the advisor is known already (indices never change, so it stays
/// right while the events before it are applied).
#[derive(Clone, Copy, Debug, Default)]
struct Keys {
    id: u128,
    contact: u128,
    advisor: Option<u32>,
    /// The queue a contact event names (its `to_queue` for a transfer), if known already.
    queue: Option<u32>,
    /// Where that queue's logs for the event's channel are kept, if it has them: the
    /// queue-channel the event's records usually go to.
    queue_channel: Option<u32>,
}

/// Contacts stay out of the expiry index this long (at most) after they appear.
const YOUNG_SPAN: Millis = Millis::from_mins(10);

/// Entities are settled when the horizon moved at least this much since their last settling,
/// so that a busy entity does not walk its timeline on every event.
const SETTLE_STEP: Millis = Millis(60_000);

/// An advisor whose unsettled timeline still fits in place (see
/// [`Advisor::can_wait_to_settle`]) is settled once the horizon moved this much instead of
/// [`SETTLE_STEP`]: settling walks the timeline, and most advisors have an event every minute or
/// two, so waiting saves walks without holding more memory.
const ADVISOR_SETTLE_LIMIT: Millis = Millis(300_000);

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Interval totals captured (see [`SiteProcessor::enable_interval_totals`]) and dropped
    /// because the caller had not taken them and the outbox was full, or skipped because the
    /// horizon jumped over more boundaries than the outbox holds.
    pub interval_totals_dropped: u64,
    /// Abandons found or withdrawn (see [`SiteProcessor::enable_abandoned_contacts`]) and
    /// dropped because the caller had not taken them and the journal was full.
    pub abandoned_changes_dropped: u64,
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

/// Number of channels (`Channel::ALL`).
pub(crate) const CHANNELS: usize = Channel::ALL.len();

/// Marks a channel a queue has not seen yet in `SiteProcessor::queue_channel_of`.
pub(crate) const NO_CHANNEL: u32 = u32::MAX;

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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct QueueChannelState {
    /// The queue it belongs to.
    pub queue: u32,
    /// Offers and exits.
    pub flow: FlowLog,
    /// Handled legs and transfers (settled with `flow`).
    pub handling: HandlingLog,
    /// Contacts waiting, sorted by time of entry (then contact key): a handful at a time, and
    /// a contact usually joins at the end.
    pub waiting: Vec<Waiter>,
}

/// A contact waiting in a queue-channel. Its id is kept here, for the view of the contact
/// waiting longest, rather than with every contact in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Waiter {
    pub since: Timestamp,
    pub key: u128,
    pub id: Box<str>,
}

impl QueueChannelState {
    /// Whether a decoded queue-channel (a snapshot) is as the processor keeps one: its logs
    /// consistent, its waiters in order.
    pub(crate) fn is_consistent(&self) -> bool {
        let waiters_in_order = self
            .waiting
            .iter()
            .zip(self.waiting.iter().skip(1))
            .all(|(first, next)| (first.since, first.key) < (next.since, next.key));
        self.flow.is_consistent() && self.handling.is_consistent() && waiters_in_order
    }

    /// Asks for what a contact event reads and changes: the heads of the logs and the
    /// waiters, not the settled tallies (see [`Advisor::prefetch_hot`]).
    fn prefetch_hot(&self) {
        self.flow.prefetch_header();
        self.handling.prefetch_header();
        crate::prefetch::line(&self.waiting);
    }

    fn waiter_position(&self, since: Timestamp, key: u128) -> Result<usize, usize> {
        self.waiting
            .binary_search_by(|waiter| (waiter.since, waiter.key).cmp(&(since, key)))
    }

    fn start_waiting(&mut self, since: Timestamp, key: u128, id: &str) {
        if let Err(position) = self.waiter_position(since, key) {
            let id = id.into();
            self.waiting.insert(position, Waiter { since, key, id });
        }
    }

    fn stop_waiting(&mut self, since: Timestamp, key: u128) {
        if let Ok(position) = self.waiter_position(since, key) {
            self.waiting.remove(position);
        }
    }
}

/// A contact in progress. Kept behind a pointer, so that the table of contacts stays small
/// (it keeps the size of the busiest moment) and a lookup touches little memory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ContactState {
    /// Where its life stands after all the facts (and whether it ended).
    pub(crate) fold: FoldState,
    last_time: Timestamp,
    /// Its deadline in the expiry index.
    deadline: Timestamp,
    /// In `expiries` (else still among the `young` contacts).
    indexed: bool,
    /// Sorted by time: the contact is re-derived from them when one comes out of order. Most
    /// contacts tracked at a time have at most 4 (they are forgotten soon after they end).
    pub(crate) facts: SmallVec<[Fact; 6]>,
}

/// What the processor knows of a contact: in progress, or released recently. One table for
/// both, so that an event of a contact looks it up once.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ContactEntry {
    Tracked(Box<ContactState>),
    /// Released at this instant, and remembered (for `completed_contact_memory`) to refuse
    /// stray events.
    Gone(Timestamp, Gone),
}

impl Default for ContactEntry {
    /// Fills the empty slots of the table (never read as an entry).
    fn default() -> ContactEntry {
        ContactEntry::Gone(Timestamp::MIN, Gone::Completed)
    }
}

/// Why a contact is remembered after it was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Gone {
    Completed,
    Expired,
}

/// Strings interned to dense indices, in order of first appearance.
///
/// Looked up by 96 bits of a hash of the string, so that a lookup touches the table only, not
/// the string's memory, in 16-byte slots (a collision among a site's names has a negligible
/// probability: ~n^2 / 2^97, below 10^-17 for a million names).
#[derive(Clone, Debug)]
pub(crate) struct Interner {
    index: HashMap<NameKey, u32, BuildHasherDefault<NameKeyHasher>>,
    names: Vec<Box<str>>,
    /// The most names: indices stay below it.
    limit: usize,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::with_limit(u32::MAX as usize)
    }
}

impl Interner {
    pub(crate) fn with_limit(limit: usize) -> Interner {
        Interner {
            index: HashMap::default(),
            names: Vec::new(),
            limit,
        }
    }

    fn key(name: &str) -> NameKey {
        let hash = hash_id(name);
        NameKey([hash as u32, (hash >> 32) as u32, (hash >> 64) as u32])
    }

    pub(crate) fn intern(&mut self, name: &str) -> (u32, bool) {
        let key = Interner::key(name);
        if let Some(index) = self.index.get(&key) {
            return (*index, false);
        }
        assert!(
            self.names.len() < self.limit,
            "more than {} distinct names: each is held in memory with its state, so memory runs out first",
            self.limit
        );
        let index = u32::try_from(self.names.len()).expect("the limit is below 2^32");
        self.names.push(name.into());
        self.index.insert(key, index);
        (index, true)
    }

    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.index.get(&Interner::key(name)).copied()
    }

    pub(crate) fn name(&self, index: u32) -> &str {
        &self.names[index as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The names, by index.
    pub(crate) fn names(&self) -> &[Box<str>] {
        &self.names
    }

    /// The interner of these names (indices in this order), if there are no more than `limit`
    /// and no two are the same (or share the 96 bits they are looked up by).
    pub(crate) fn from_names(names: Vec<Box<str>>, limit: usize) -> Option<Interner> {
        if names.len() > limit {
            return None;
        }
        let mut interner = Interner::with_limit(limit);
        interner.index.reserve(names.len());
        for (index, name) in names.iter().enumerate() {
            let index = u32::try_from(index).ok()?;
            if interner.index.insert(Interner::key(name), index).is_some() {
                return None;
            }
        }
        interner.names = names;
        Some(interner)
    }

    /// Room for `additional` more names without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.names.reserve_exact(additional);
    }
}

/// 96 bits of a name's hash (see [`Interner`]). The map hashes it as its first 64 bits, as
/// they are: they come from a hash already, and hashing them again is work for nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NameKey([u32; 3]);

impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[1]) << 32 | u64::from(self.0[0]));
    }
}

/// Passes on the one `u64` a [`NameKey`] writes.
#[derive(Default)]
struct NameKeyHasher(u64);

impl Hasher for NameKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Not used by [`NameKey`]; any other bytes are folded in, so the hasher stays a hasher.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The processor of one site. Single writer: `&mut self` to apply, `&self` to read views.
#[derive(Debug)]
pub struct SiteProcessor {
    pub(crate) site: SiteConfig,
    pub(crate) calendar: DayCalendar,
    pub(crate) lateness: Millis,
    pub(crate) dedupe_window: Millis,
    pub(crate) contact_expiry: Millis,
    pub(crate) completed_memory: Millis,
    /// The newest event time applied.
    pub(crate) watermark: Timestamp,
    /// The newest time the caller advanced to.
    pub(crate) clock: Timestamp,
    pub(crate) seen_ids: HashTable<()>,
    /// Ids by time applied, the 128-bit hash split in two words (24 bytes, not 32).
    pub(crate) seen_order: VecDeque<(Timestamp, u64, u64)>,
    /// Contacts in progress and contacts released recently (see [`ContactEntry`]).
    pub(crate) contacts: HashTable<ContactEntry>,
    /// How many of `contacts` are in progress.
    pub(crate) tracked: usize,
    /// Contacts released, by time released, the key split in two words (24 bytes, not 32).
    pub(crate) gone_order: VecDeque<(Timestamp, u64, u64)>,
    pub(crate) finishing: BinaryHeap<Reverse<(Timestamp, u128)>>,
    /// Contacts created within the last `young_span`, by the newest event time when they were
    /// (their key split in two words): most end before they would join `expiries`, which is
    /// costlier to add to and remove from. None can be due while young (see `young_span`).
    pub(crate) young: VecDeque<(Timestamp, u64, u64)>,
    /// How long a contact stays young: at most the contact expiry less the allowed lateness, so
    /// that a young contact's deadline (at least its first event, at least the newest event then
    /// less the lateness, plus the expiry) lies after the newest event.
    young_span: Millis,
    /// Contacts in progress by expiry deadline. A deadline is moved forward lazily, when it
    /// comes due while the contact had events since.
    pub(crate) expiries: BTreeSet<(Timestamp, u128)>,
    pub(crate) queues: Interner,
    pub(crate) queue_settings: Vec<QueueSettings>,
    /// Every queue-channel seen, in order of first appearance (see `queue_channel_of`).
    pub(crate) queue_channels: Vec<QueueChannelState>,
    /// Where each channel of each queue (by queue index) is kept in `queue_channels`, by
    /// position in `Channel::ALL` ([`NO_CHANNEL`] until the queue sees the channel): a direct
    /// index rather than an ordered map, since every counted event looks one up, and apart
    /// from the queues' settings, so that the lookup reads 24 bytes per queue, which stay in
    /// the nearest caches, rather than a line of the settings (`apply_all` on the
    /// 10,000-advisor day: 1.5-2% faster so).
    pub(crate) queue_channel_of: Vec<[u32; CHANNELS]>,
    /// Each queue's counts per interval of the day, as settled (all its channels), by queue
    /// index.
    pub(crate) queue_intervals: Vec<QueueIntervals>,
    pub(crate) advisors: Interner,
    pub(crate) advisor_state: Vec<Advisor>,
    /// Each advisor's settled horizon (as `Advisor::settled_until`), apart: checking whether a
    /// touched advisor is due for settling then reads this small array, not the advisor.
    pub(crate) advisor_settled: Vec<Timestamp>,
    pub(crate) teams: Interner,
    pub(crate) team_settings: Vec<TeamSettings>,
    roster: FxHashMap<u32, u32>,
    pub(crate) reasons: Interner,
    pub(crate) stats: ProcessorStats,
    /// Indices in `queue_channels`.
    touched_queues: Vec<u32>,
    touched_advisors: Vec<u32>,
    /// Reused derivation buffers (before and after a change), behind a pointer: they are taken
    /// out for every contact event, and moving a pointer costs less than moving both.
    scratch: Option<Box<(Derived, Derived)>>,
    days: DayCache,
    /// The totals captured at interval boundaries, when enabled: behind a pointer, one word
    /// when disabled (the default).
    pub(crate) interval_totals: Option<Box<IntervalCapture>>,
    /// The abandons reported to the caller, when enabled (one word when disabled).
    pub(crate) abandoned: Option<Box<AbandonedJournal>>,
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
            seen_ids: HashTable::default(),
            seen_order: VecDeque::new(),
            contacts: HashTable::default(),
            tracked: 0,
            gone_order: VecDeque::new(),
            finishing: BinaryHeap::new(),
            young: VecDeque::new(),
            young_span: Millis(
                (processing.contact_expiry.millis().0 - processing.allowed_lateness.millis().0)
                    .clamp(0, YOUNG_SPAN.0),
            ),
            expiries: BTreeSet::new(),
            queues: Interner::with_limit(MAX_INDEXED_NAMES),
            queue_settings: Vec::new(),
            queue_channels: Vec::new(),
            queue_channel_of: Vec::new(),
            queue_intervals: Vec::new(),
            advisors: Interner::with_limit(MAX_INDEXED_NAMES),
            advisor_state: Vec::new(),
            advisor_settled: Vec::new(),
            teams: Interner::default(),
            team_settings: Vec::new(),
            roster: FxHashMap::default(),
            reasons: Interner::default(),
            stats: ProcessorStats::default(),
            touched_queues: Vec::new(),
            touched_advisors: Vec::new(),
            scratch: Some(Box::default()),
            days: DayCache::new(calendar),
            interval_totals: None,
            abandoned: None,
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
        self.advisor_settled.reserve_exact(rostered);
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

    /// Applies a new configuration of the site while it runs: queue targets and thresholds,
    /// teams, their campaign queues and rosters. Targets, variants, names, teams and rosters
    /// are read with the figures, so they apply to the whole day (an advisor moved to another
    /// team brings their day's figures along). A new `sl_threshold` or `short_abandon`
    /// recounts the trailing windows at once (their contacts are still held), while the part
    /// of the day already settled keeps the thresholds it was counted with: the day's figures
    /// take the new threshold from the change on. The site's id, time zone and day start
    /// cannot change while it runs (the day's windows depend on them).
    pub fn reconfigure(&mut self, site: SiteConfig) -> Result<(), ConfigErrors> {
        site.validate("site")?;
        let mut errors = Vec::new();
        for (field, old, new) in [
            ("id", &self.site.id, &site.id),
            ("time_zone", &self.site.time_zone, &site.time_zone),
            ("day_start", &self.site.day_start, &site.day_start),
        ] {
            if old != new {
                errors.push(format!(
                    "site.{field}: cannot change while the site runs ({old:?} to {new:?}); change it in the configuration file and restart"
                ));
            }
        }
        ConfigErrors(errors).into_result()?;
        self.site = site;
        self.apply_configuration();
        Ok(())
    }

    /// Sets every queue's and team's settings, and the roster, from the site's configuration:
    /// queues and teams it does not configure get the defaults (queues keep their channels).
    /// The settings then depend on the configuration and the names interned only, whatever
    /// configurations came before (a snapshot relies on it: it keeps the names, not the
    /// settings).
    pub(crate) fn apply_configuration(&mut self) {
        for (index, settings) in self.queue_settings.iter_mut().enumerate() {
            let id = self.queues.name(index as u32);
            *settings = QueueSettings::from_config(QueueConfig::with_defaults(id), &self.site);
        }
        for team in &mut self.team_settings {
            *team = TeamSettings::unconfigured(&team.id, &self.site);
        }
        self.roster.clear();
        self.load_configuration();
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
        stats.contacts_tracked = self.tracked as u64;
        stats.advisors = self.advisors.len() as u64;
        stats.interval_totals_dropped = self
            .interval_totals
            .as_ref()
            .map_or(0, |capture| capture.dropped);
        stats.abandoned_changes_dropped =
            self.abandoned.as_ref().map_or(0, |journal| journal.dropped);
        stats
    }

    /// Items held in memory, by kind.
    pub fn memory_items(&self) -> MemoryItems {
        MemoryItems {
            contacts: self.tracked,
            contact_events: self.tracked_contacts().map(|c| c.facts.len()).sum(),
            completed_contacts: self.contacts.len() - self.tracked,
            event_ids: self.seen_ids.len(),
            queue_entries: self
                .queue_channels
                .iter()
                .map(|q| q.flow.len() + q.handling.len())
                .sum(),
            advisor_items: self.advisor_state.iter().map(Advisor::kept_items).sum(),
            estimated_bytes: self.estimated_bytes(),
        }
    }

    fn estimated_bytes(&self) -> BTreeMap<&'static str, usize> {
        use std::mem::size_of;
        // A hash table slot costs its entry plus one control byte.
        let table = |capacity: usize, entry: usize| capacity * (entry + 1);
        // The table of contacts is shared with the remembered ones, by share of entries.
        let table_bytes = self.contacts.slots() * size_of::<(u128, ContactEntry)>();
        let tracked_share = |bytes: usize| {
            (bytes as u128 * self.tracked as u128 / self.contacts.len().max(1) as u128) as usize
        };
        let contacts = tracked_share(table_bytes)
            + self
                .tracked_contacts()
                .map(|c| {
                    size_of::<ContactState>()
                        + if c.facts.spilled() {
                            c.facts.capacity() * size_of::<Fact>()
                        } else {
                            0
                        }
                })
                .sum::<usize>();
        let remembered = table_bytes - tracked_share(table_bytes)
            + self.gone_order.capacity() * size_of::<(Timestamp, u64, u64)>()
            + self.young.capacity() * size_of::<(Timestamp, u64, u64)>()
            + self.expiries.len() * size_of::<(Timestamp, u128)>()
            + self.finishing.capacity() * size_of::<Reverse<(Timestamp, u128)>>();
        let ids = self.seen_ids.slots() * size_of::<u128>()
            + self.seen_order.capacity() * size_of::<(Timestamp, u64, u64)>();
        let queues = self
            .queue_channels
            .iter()
            .map(|q| {
                size_of::<QueueChannelState>()
                    + q.flow.heap_bytes()
                    + q.handling.heap_bytes()
                    + q.flow.settled().waits.heap_bytes()
                    + q.waiting.capacity() * size_of::<Waiter>()
                    + q.waiting
                        .iter()
                        .map(|waiter| waiter.id.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .queue_intervals
                .iter()
                .map(|intervals| size_of::<QueueIntervals>() + intervals.heap_bytes())
                .sum::<usize>();
        let advisors = self.advisor_state.capacity() * size_of::<Advisor>()
            + self.advisor_settled.capacity() * size_of::<Timestamp>()
            + self
                .advisor_state
                .iter()
                .map(Advisor::heap_bytes)
                .sum::<usize>()
            + table(self.advisors.len(), size_of::<([u32; 3], u32)>());
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

    /// Events before this instant are too late, and queues and advisors may fold what lies
    /// before it into their day's figures.
    pub(crate) fn settle_horizon(&self) -> Timestamp {
        self.watermark - self.lateness
    }

    pub(crate) fn queue_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.queues.intern(id);
        if new {
            let config = QueueConfig::with_defaults(id);
            self.queue_settings
                .push(QueueSettings::from_config(config, &self.site));
            self.queue_intervals.push(QueueIntervals::default());
            self.queue_channel_of.push([NO_CHANNEL; CHANNELS]);
        }
        index
    }

    pub(crate) fn team_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.teams.intern(id);
        if new {
            self.team_settings
                .push(TeamSettings::unconfigured(id, &self.site));
        }
        index
    }

    pub(crate) fn advisor_index(&mut self, id: &str) -> u32 {
        let (index, new) = self.advisors.intern(id);
        if new {
            self.advisor_state.push(Advisor::new(self.settle_horizon()));
            self.advisor_settled.push(self.settle_horizon());
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
        let keys = self.keys_of(event);
        self.apply_keyed(event, keys)
    }

    /// Applies events in order, exactly as [`SiteProcessor::apply`] one after the other, and
    /// hands each outcome to `each`. Faster on a large site: while an event is applied, the
    /// memory the next few need (their dedupe and contact slots, their contact, their
    /// advisor, their queue's logs) is asked for, so that it arrives meanwhile rather than one
    /// miss after another.
    pub fn apply_all<'e>(&mut self, events: &'e [Event], mut each: impl FnMut(&'e Event, Outcome)) {
        // The keys of the events ahead, by position modulo the lookahead.
        let mut ahead = [Keys::default(); LOOKAHEAD];
        for (index, event) in events.iter().take(LOOKAHEAD).enumerate() {
            ahead[index] = self.keys_of(event);
            self.prefetch_slots(&ahead[index]);
        }
        for (index, event) in events.iter().enumerate() {
            if let Some(far) = events.get(index + 2 * LOOKAHEAD) {
                // The event itself, before its strings are read one step later.
                crate::prefetch::value(far);
            }
            let keys = ahead[index % LOOKAHEAD];
            if let Some(next) = events.get(index + LOOKAHEAD) {
                let keys = self.keys_of(next);
                self.prefetch_slots(&keys);
                ahead[index % LOOKAHEAD] = keys;
            }
            if index + LOOKAHEAD / 2 < events.len() {
                self.prefetch_state(&ahead[(index + LOOKAHEAD / 2) % LOOKAHEAD]);
            }
            let outcome = self.apply_keyed(event, keys);
            each(event, outcome);
        }
    }

    /// What an event is looked up by, computed once for it.
    fn keys_of(&self, event: &Event) -> Keys {
        let (contact, advisor, queue) = match &event.body {
            EventBody::Contact(contact) => {
                let queue = match &contact.kind {
                    ContactEventKind::Transferred { to_queue } => to_queue.as_deref(),
                    _ => contact.queue.as_deref(),
                }
                .and_then(|name| self.queues.get(name));
                let queue_channel = queue.zip(contact.channel).and_then(|(queue, channel)| {
                    self.queue_channel_index(QueueChannel { queue, channel })
                });
                (
                    hash_id(&contact.contact),
                    contact.advisor.as_deref(),
                    (queue, queue_channel),
                )
            }
            EventBody::Advisor(advisor) => (0, Some(advisor.advisor.as_str()), (None, None)),
        };
        Keys {
            id: hash_id(&event.id),
            contact,
            advisor: advisor.and_then(|name| self.advisors.get(name)),
            queue: queue.0,
            queue_channel: queue.1,
        }
    }

    /// First step ahead: the slots of the event's id and contact, its advisor, and the
    /// queue-channel its records usually go to.
    fn prefetch_slots(&self, keys: &Keys) {
        self.seen_ids.prefetch(keys.id);
        if keys.contact != 0 {
            self.contacts.prefetch(keys.contact);
        }
        if let Some(advisor) = keys.advisor {
            self.advisor_state[advisor as usize].prefetch_hot();
            crate::prefetch::line(&self.advisor_settled[advisor as usize]);
        }
        if let Some(index) = keys.queue_channel {
            self.queue_channels[index as usize].prefetch_hot();
        }
    }

    /// Second step ahead, once the slots have arrived: what they point to.
    fn prefetch_state(&self, keys: &Keys) {
        if keys.contact != 0
            && let Some(ContactEntry::Tracked(state)) = self.contacts.get(keys.contact)
        {
            crate::prefetch::value(&**state);
        }
        if let Some(advisor) = keys.advisor {
            self.advisor_state[advisor as usize].tally.prefetch_newest();
        }
        if let Some(index) = keys.queue_channel {
            let queue_channel = &self.queue_channels[index as usize];
            queue_channel.flow.prefetch_newest();
            queue_channel.handling.prefetch_newest();
        }
    }

    fn apply_keyed(&mut self, event: &Event, keys: Keys) -> Outcome {
        let outcome = self.apply_inner(event, keys);
        match &outcome {
            Outcome::Applied => self.stats.applied += 1,
            Outcome::Duplicate => self.stats.duplicates += 1,
            Outcome::Rejected(rejection) => {
                *self.stats.rejected.entry(rejection.reason).or_default() += 1
            }
        }
        outcome
    }

    fn apply_inner(&mut self, event: &Event, keys: Keys) -> Outcome {
        let id = keys.id;
        // The contact is looked up first, and its state read: the memory is then on its way
        // while the event id is checked (those are the two slowest reads of an event).
        let contact = match &event.body {
            EventBody::Contact(contact) => {
                let key = keys.contact;
                let found = self.contacts.find_or_vacancy(key);
                if let Ok(index) = found
                    && let ContactEntry::Tracked(state) = self.contacts.slot(index)
                {
                    std::hint::black_box((state.fold.finished_at(), state.facts.len()));
                }
                Some((contact, key, found))
            }
            EventBody::Advisor(_) => None,
        };
        // Where the id goes once the event is applied: nothing else changes the set before.
        let Err(id_vacancy) = self.seen_ids.find_or_vacancy(id) else {
            return Outcome::Duplicate;
        };
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
        let result = match (&event.body, contact) {
            (_, Some((contact, key, found))) => {
                self.apply_contact(event, contact, key, found, id, keys)
            }
            (EventBody::Advisor(advisor), None) => {
                self.apply_advisor(event, advisor, id, keys.advisor);
                Ok(())
            }
            (EventBody::Contact(_), None) => unreachable!("contact events are looked up above"),
        };
        if let Err(rejection) = result {
            return Outcome::Rejected(rejection);
        }
        self.seen_ids.insert_at(id_vacancy, id, ());
        reserve_tight(&mut self.seen_order);
        self.seen_order
            .push_back((event.time, id as u64, (id >> 64) as u64));
        if event.time > self.watermark {
            self.watermark = event.time;
            self.housekeeping();
            // After housekeeping (contacts expired before a boundary count before it), before
            // any queue or advisor settles past a boundary.
            if self.interval_totals.is_some() {
                self.capture_interval_totals();
            }
        }
        self.settle_touched();
        Outcome::Applied
    }

    /// Applies a contact event, `found` at that slot of `contacts` (under `key`) or missing
    /// there (the place it would go); `keys` give its advisor and queue when they were known as
    /// the keys were computed.
    fn apply_contact(
        &mut self,
        event: &Event,
        contact: &ContactEvent,
        key: u128,
        found: Result<usize, Vacancy>,
        id: u128,
        keys: Keys,
    ) -> Result<(), Rejection> {
        match found.ok().map(|index| self.contacts.slot(index)) {
            Some(ContactEntry::Gone(at, gone)) => {
                return Err(gone_rejection(*gone, &contact.contact, *at));
            }
            Some(ContactEntry::Tracked(state)) => {
                if let Some(finished) = state.fold.finished_at()
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
            None => {}
        }
        let advisor = keys
            .advisor
            .or_else(|| contact.advisor.as_deref().map(|a| self.advisor_index(a)));
        if let Some(advisor) = advisor {
            // Read now what the change will need, so that it arrives meanwhile.
            self.advisor_state[advisor as usize].touch();
            std::hint::black_box(self.advisor_settled[advisor as usize]);
        }
        let queue = match &contact.kind {
            ContactEventKind::Transferred { to_queue } => to_queue.as_deref(),
            ContactEventKind::Queued | ContactEventKind::Answered => contact.queue.as_deref(),
            _ => None,
        }
        // The keys looked up the same name (a queue's index never changes once given).
        .map(|q| keys.queue.unwrap_or_else(|| self.queue_index(q)));
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
        let fact = Fact::new(event.time, id as u64, kind, advisor, queue, contact.channel);
        // Interning the advisor and queue left the table alone: `found` still holds.
        let index = found.unwrap_or_else(|vacancy| {
            self.contacts.insert_at(
                vacancy,
                key,
                ContactEntry::Tracked(Box::new(ContactState {
                    fold: FoldState::default(),
                    last_time: event.time,
                    deadline: event.time + self.contact_expiry,
                    indexed: false,
                    facts: SmallVec::new(),
                })),
            )
        });
        let ContactEntry::Tracked(state) = self.contacts.slot_mut(index) else {
            unreachable!("a contact remembered as gone was refused above")
        };
        if state.facts.is_empty() {
            self.tracked += 1;
            if self.young_span > Millis::ZERO {
                reserve_tight(&mut self.young);
                self.young
                    .push_back((self.watermark, key as u64, (key >> 64) as u64));
            } else {
                state.indexed = true;
                self.expiries.insert((state.deadline, key));
            }
        }
        let mut scratch = self.scratch.take().unwrap_or_default();
        let (old, new) = &mut *scratch;
        let in_order = comes_last(&state.facts, &fact);
        if in_order {
            // In order, the usual case: go on from where the contact stood. Only what was
            // open can change; what was already derived stays as it is, and the step reports
            // what it changes (every record of this step is new).
            old.waiting = state.fold.waiting();
            old.finished_at = state.fold.finished_at();
            new.records.clear();
            new.spans.clear();
            new.ended.clear();
            state.fold.step(&fact, new);
            // A fact that changes nothing (a repeat) leaves the buffer's end as the last
            // contact derived with it left it.
            new.finished_at = state.fold.finished_at();
            new.waiting = state.fold.waiting();
            state.facts.push(fact);
        } else {
            // Out of order: derive the whole contact again, before and after.
            derive_into(&state.facts, None, old);
            let position = fact_position(&state.facts, &fact);
            state.facts.insert(position, fact);
            state.fold = derive_into(&state.facts, None, new);
        }
        state.last_time = state.last_time.max(event.time);
        debug_assert_eq!(state.fold.finished_at(), new.finished_at);
        if let Some(finished) = new.finished_at
            && old.finished_at != Some(finished)
        {
            self.finishing.push(Reverse((finished, key)));
        }
        if in_order {
            self.apply_step(key, &contact.contact, old.waiting, new);
        } else {
            self.apply_change(key, &contact.contact, old, new);
        }
        self.scratch = Some(scratch);
        Ok(())
    }

    /// Marks `advisor` to be settled after the event (see [`SiteProcessor::settle_touched`]);
    /// an event usually touches the same advisor several times in a row.
    fn touch_advisor(&mut self, advisor: u32) {
        mark_once(&mut self.touched_advisors, advisor);
    }

    /// Applies what one step of a contact changed (see [`Derived`]) to queues and advisors;
    /// `waiting` is where the contact waited before.
    fn apply_step(&mut self, key: u128, id: &str, waiting: Option<Waiting>, step: &Derived) {
        for record in &step.records {
            self.contact_record(id, record, true);
        }
        for span in &step.ended {
            self.advisor_span(span, false);
        }
        for span in &step.spans {
            self.advisor_span(span, true);
        }
        self.change_waiting(key, id, waiting, step.waiting);
    }

    /// Applies the difference between two derivations of a contact to queues and advisors.
    /// `id` is the contact's (needed when it starts waiting in a queue).
    fn apply_change(&mut self, key: u128, id: &str, old: &Derived, new: &Derived) {
        diff(&old.records, &new.records, |record, add| {
            self.contact_record(id, &record, add)
        });
        diff(&old.spans, &new.spans, |span, add| {
            self.advisor_span(&span, add)
        });
        self.change_waiting(key, id, old.waiting, new.waiting);
    }

    /// Adds (or withdraws) a record of the contact `id` to its queue and advisor tallies, and
    /// to the abandons reported when enabled. Inlined (as is [`SiteProcessor::advisor_span`])
    /// where each step and each difference applies it: left to the compiler, both calls cost
    /// 1% more instructions per event (callgrind, 1,000-advisor day).
    #[inline(always)]
    fn contact_record(&mut self, id: &str, record: &Record, add: bool) {
        if self.abandoned.is_some() {
            self.note_abandoned(id, record, add);
        }
        self.record(record, add);
    }

    /// Gives a span to its advisor's timeline (or takes it back).
    #[inline(always)]
    fn advisor_span(&mut self, span: &Span, add: bool) {
        self.touch_advisor(span.advisor);
        let advisor = &mut self.advisor_state[span.advisor as usize];
        if add {
            advisor.add_span(span);
        } else {
            advisor.remove_span(span);
        }
    }

    /// The contact `key` (`id`) waited as `old` and now waits as `new`.
    fn change_waiting(&mut self, key: u128, id: &str, old: Option<Waiting>, new: Option<Waiting>) {
        if old != new {
            if let Some(waiting) = old
                && let Some(index) = self.queue_channel_index(waiting.qc)
            {
                self.queue_channels[index as usize].stop_waiting(waiting.since, key);
            }
            if let Some(waiting) = new {
                let index = self.queue_channel_entry(waiting.qc);
                self.queue_channels[index as usize].start_waiting(waiting.since, key, id);
            }
        }
    }

    fn record(&mut self, record: &Record, add: bool) {
        let advisor_entry = |processor: &mut SiteProcessor, advisor: u32, entry: Entry| {
            processor.touch_advisor(advisor);
            processor.advisor_state[advisor as usize]
                .tally
                .update(entry, add);
        };
        match *record {
            Record::Offer { qc, time } => self
                .touch_queue(qc)
                .flow
                .update(FlowEntry::offer(time), add),
            Record::Left {
                qc,
                time,
                wait,
                outcome,
            } => self
                .touch_queue(qc)
                .flow
                .update(FlowEntry::left(time, wait, outcome), add),
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
                    self.touch_queue(qc).handling.update(entry, add);
                }
            }
            Record::Transfer { advisor, qc, time } => {
                let entry = Entry::new(time, EntryKind::Transfer);
                advisor_entry(self, advisor, entry);
                if let Some(qc) = qc {
                    self.touch_queue(qc).handling.update(entry, add);
                }
            }
            Record::Missed { advisor, time } => {
                advisor_entry(self, advisor, Entry::new(time, EntryKind::Missed))
            }
        }
    }

    fn apply_advisor(
        &mut self,
        event: &Event,
        advisor_event: &AdvisorEvent,
        id: u128,
        advisor: Option<u32>,
    ) {
        let advisor = advisor.unwrap_or_else(|| self.advisor_index(&advisor_event.advisor));
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
        self.advisor_state[advisor as usize]
            .add_status(StatusPoint::new(event.time, rank, id as u64, status));
        self.touch_advisor(advisor);
    }

    /// Forgets what the allowed lateness no longer protects: old ids, completed and expired
    /// contacts.
    fn housekeeping(&mut self) {
        let horizon = self.settle_horizon();
        let dedupe_from = self.watermark - self.dedupe_window;
        while let Some(&(time, low, high)) = self.seen_order.front() {
            if time >= dedupe_from {
                break;
            }
            self.seen_order.pop_front();
            self.seen_ids
                .remove(u128::from(high) << 64 | u128::from(low));
        }
        shrink_tight(&mut self.seen_order);
        let gone_from = self.watermark - self.completed_memory;
        while let Some(&(time, low, high)) = self.gone_order.front() {
            if time >= gone_from {
                break;
            }
            self.gone_order.pop_front();
            let key = u128::from(high) << 64 | u128::from(low);
            if let Some(ContactEntry::Gone(..)) = self.contacts.get(key) {
                self.contacts.remove(key);
            }
        }
        shrink_tight(&mut self.gone_order);
        // Completed contacts: once the horizon passed their end, nothing can change them.
        while let Some(&Reverse((finished, key))) = self.finishing.peek() {
            if finished >= horizon {
                break;
            }
            self.finishing.pop();
            if let Some(entry) = self.contacts.get_mut(key)
                && let ContactEntry::Tracked(state) = entry
                && state.fold.finished_at() == Some(finished)
            {
                let (deadline, indexed) = (state.deadline, state.indexed);
                *entry = ContactEntry::Gone(finished, Gone::Completed);
                self.tracked -= 1;
                if indexed {
                    self.expiries.remove(&(deadline, key));
                }
                self.remember_gone(key);
            }
        }
        // Contacts no longer young join the expiry index (those already gone are dropped).
        while let Some(&(created, low, high)) = self.young.front() {
            if created + self.young_span > self.watermark {
                break;
            }
            self.young.pop_front();
            let key = u128::from(high) << 64 | u128::from(low);
            if let Some(ContactEntry::Tracked(state)) = self.contacts.get_mut(key)
                && !state.indexed
            {
                state.indexed = true;
                self.expiries.insert((state.deadline, key));
            }
        }
        shrink_tight(&mut self.young);
        // Contacts silent for `contact_expiry`: given up exactly at their last event plus the
        // expiry. Checked on every advance of the newest event time, so that instant is never
        // behind what queues and advisors have settled.
        while let Some(&(deadline, key)) = self.expiries.first() {
            if deadline > self.watermark {
                break;
            }
            self.expiries.pop_first();
            let Some(ContactEntry::Tracked(state)) = self.contacts.get_mut(key) else {
                continue;
            };
            let due = state.last_time + self.contact_expiry;
            if due > self.watermark {
                state.deadline = due;
                self.expiries.insert((due, key));
            } else {
                state.indexed = false;
                if state.fold.finished_at().is_none() {
                    self.expire(key, due);
                }
            }
        }
    }

    /// Gives up a contact at `expired_at`, freeing its queue and advisors.
    fn expire(&mut self, key: u128, expired_at: Timestamp) {
        let Some(entry) = self.contacts.get_mut(key) else {
            return;
        };
        let ContactEntry::Tracked(state) =
            std::mem::replace(entry, ContactEntry::Gone(expired_at, Gone::Expired))
        else {
            return;
        };
        self.tracked -= 1;
        let mut scratch = self.scratch.take().unwrap_or_default();
        let (old, new) = &mut *scratch;
        derive_into(&state.facts, None, old);
        derive_into(&state.facts, Some(expired_at), new);
        // Given up, it waits nowhere: its id is not needed.
        self.apply_change(key, "", old, new);
        self.scratch = Some(scratch);
        self.remember_gone(key);
        self.stats.contacts_expired += 1;
    }

    /// Remembers a released contact (now a `ContactEntry::Gone`) until the completed contact
    /// memory passes.
    fn remember_gone(&mut self, key: u128) {
        reserve_tight(&mut self.gone_order);
        self.gone_order
            .push_back((self.watermark, key as u64, (key >> 64) as u64));
    }

    /// Settles the queues and advisors this event touched.
    fn settle_touched(&mut self) {
        let horizon = self.settle_horizon();
        let keep_from = self.watermark - LONGEST_WINDOW;
        let mut days = self.days;
        let mut queues = std::mem::take(&mut self.touched_queues);
        queues.sort_unstable();
        queues.dedup();
        for index in queues.drain(..) {
            if self.queue_channels[index as usize].flow.settled_until() + SETTLE_STEP <= horizon {
                self.settle_queue_channel(index, horizon, keep_from, &mut days);
            }
        }
        self.touched_queues = queues;
        let mut advisors = std::mem::take(&mut self.touched_advisors);
        advisors.sort_unstable();
        advisors.dedup();
        for advisor in advisors.drain(..) {
            let settled = &mut self.advisor_settled[advisor as usize];
            if *settled + SETTLE_STEP <= horizon {
                let state = &mut self.advisor_state[advisor as usize];
                if *settled + ADVISOR_SETTLE_LIMIT > horizon && state.can_wait_to_settle() {
                    continue;
                }
                state.settle(horizon, keep_from, &mut days);
                *settled = state.settled_until();
            }
        }
        self.touched_advisors = advisors;
        self.days = days;
    }

    /// Folds a queue-channel's entries before `until` into its day's figures and its queue's
    /// interval counts, judged by the queue's thresholds now.
    fn settle_queue_channel(
        &mut self,
        index: u32,
        until: Timestamp,
        keep_from: Timestamp,
        days: &mut DayCache,
    ) {
        let state = &mut self.queue_channels[index as usize];
        let thresholds = self.queue_settings[state.queue as usize].thresholds;
        let intervals = &mut self.queue_intervals[state.queue as usize];
        state
            .flow
            .settle_each(until, keep_from, thresholds, days, |entry, day| {
                intervals.add_flow(entry, day, thresholds)
            });
        state.handling.settle(until, keep_from, thresholds, days);
    }

    /// Settles every queue-channel up to `until` (at most the settle horizon): what lies before
    /// is then judged by the thresholds in force now, whatever configuration comes later.
    pub(crate) fn settle_queues_until(&mut self, until: Timestamp) {
        debug_assert!(until <= self.settle_horizon());
        let keep_from = self.watermark - LONGEST_WINDOW;
        let mut days = self.days;
        for index in 0..self.queue_channels.len() as u32 {
            self.settle_queue_channel(index, until, keep_from, &mut days);
        }
        self.days = days;
    }

    /// The contacts in progress.
    fn tracked_contacts(&self) -> impl Iterator<Item = &ContactState> {
        self.contacts.values().filter_map(|entry| match entry {
            ContactEntry::Tracked(state) => Some(&**state),
            ContactEntry::Gone(..) => None,
        })
    }

    /// Where a queue-channel is kept, if it was seen.
    pub(crate) fn queue_channel_index(&self, qc: QueueChannel) -> Option<u32> {
        let index = self.queue_channel_of[qc.queue as usize][qc.channel as usize];
        (index != NO_CHANNEL).then_some(index)
    }

    /// A queue-channel's state, if it was seen.
    pub(crate) fn queue_channel(&self, qc: QueueChannel) -> Option<&QueueChannelState> {
        self.queue_channel_index(qc)
            .map(|index| &self.queue_channels[index as usize])
    }

    /// The queue-channel a record changes, marked for settling (once for records in a row).
    fn touch_queue(&mut self, qc: QueueChannel) -> &mut QueueChannelState {
        let index = self.queue_channel_entry(qc);
        mark_once(&mut self.touched_queues, index);
        &mut self.queue_channels[index as usize]
    }

    /// Where a queue-channel is kept, creating it on first sight.
    fn queue_channel_entry(&mut self, qc: QueueChannel) -> u32 {
        if let Some(index) = self.queue_channel_index(qc) {
            return index;
        }
        let index = u32::try_from(self.queue_channels.len())
            .expect("fewer than 4 billion queue-channels: 6 per queue");
        self.queue_channels.push(QueueChannelState {
            queue: qc.queue,
            flow: FlowLog::new(self.settle_horizon()),
            handling: HandlingLog::new(self.settle_horizon()),
            waiting: Vec::new(),
        });
        self.queue_channel_of[qc.queue as usize][qc.channel as usize] = index;
        index
    }

    /// The channels a queue saw, in `Channel::ALL` order.
    pub(crate) fn channels_of(&self, queue: u32) -> impl Iterator<Item = QueueChannel> + '_ {
        let channels = &self.queue_channel_of[queue as usize];
        Channel::ALL
            .iter()
            .zip(channels)
            .filter(|(_, index)| **index != NO_CHANNEL)
            .map(move |(channel, _)| QueueChannel {
                queue,
                channel: *channel,
            })
    }
}

/// Adds `index` to the marks unless it is the last one already: settling sorts and
/// deduplicates the marks anyway, and the same index usually comes several times in a row.
fn mark_once(marks: &mut Vec<u32>, index: u32) {
    if marks.last() != Some(&index) {
        marks.push(index);
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

impl TeamSettings {
    /// A team the site does not configure (named by logins only).
    pub(crate) fn unconfigured(id: &str, site: &SiteConfig) -> TeamSettings {
        TeamSettings {
            id: id.to_owned(),
            name: None,
            queues: Vec::new(),
            variant: site.sl_variant,
            configured: false,
        }
    }
}

impl QueueSettings {
    pub(crate) fn from_config(config: QueueConfig, site: &SiteConfig) -> QueueSettings {
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
    /// Every site captures its interval totals, those created later too.
    interval_totals: bool,
    /// Every site reports its abandoned contacts, those created later too.
    abandoned_contacts: bool,
}

impl Processor {
    /// A processor for these sites (validated); events of other sites get a site with defaults.
    pub fn new(sites: Vec<SiteConfig>, processing: ProcessingConfig) -> Processor {
        let mut processor = Processor {
            configured: sites.iter().map(|s| (s.id.clone(), s.clone())).collect(),
            sites: BTreeMap::new(),
            processing,
            interval_totals: false,
            abandoned_contacts: false,
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
            let mut site = SiteProcessor::new(config, &self.processing);
            if self.interval_totals {
                site.enable_interval_totals();
            }
            if self.abandoned_contacts {
                site.enable_abandoned_contacts();
            }
            self.sites.insert(id.to_owned(), site);
        }
        self.sites.get_mut(id).expect("inserted just above")
    }

    /// Applies an event to its site.
    pub fn apply(&mut self, event: &Event) -> Outcome {
        self.site_mut(&event.site).apply(event)
    }

    /// Applies events in order, exactly as [`Processor::apply`] one after the other, and hands
    /// each outcome to `each`; each run of events of one site goes through
    /// [`SiteProcessor::apply_all`].
    pub fn apply_all<'e>(&mut self, events: &'e [Event], mut each: impl FnMut(&'e Event, Outcome)) {
        for run in events.chunk_by(|first, next| first.site == next.site) {
            self.site_mut(&run[0].site).apply_all(run, &mut each);
        }
    }

    /// Advances every site's clock.
    pub fn advance_to(&mut self, now: Timestamp) {
        for site in self.sites.values_mut() {
            site.advance_to(now);
        }
    }

    /// Applies a new configuration of a site while it runs (see [`SiteProcessor::reconfigure`]);
    /// a site not seen yet starts with it.
    pub fn reconfigure(&mut self, site: SiteConfig) -> Result<(), ConfigErrors> {
        match self.sites.get_mut(&site.id) {
            Some(running) => running.reconfigure(site.clone())?,
            None => site.validate("site")?,
        }
        let id = site.id.clone();
        self.configured.insert(id.clone(), site);
        self.site_mut(&id);
        Ok(())
    }

    /// Forgets everything a site's events built (figures, contacts, advisors, dedupe memory)
    /// and starts it afresh with its current configuration, before its day is rebuilt from
    /// the stream (an instance taking a site over). Other sites are untouched.
    pub fn restart_site(&mut self, id: &str) {
        // The site's clock goes on: views of the fresh site are dated now, not at the epoch.
        let now = self.sites.remove(id).map(|site| site.now());
        let site = self.site_mut(id);
        if let Some(now) = now {
            site.advance_to(now);
        }
    }

    /// The encoded state of a site ([`SiteProcessor::snapshot`]), if the site is known.
    pub fn snapshot_site(&self, id: &str) -> Option<Vec<u8>> {
        self.sites.get(id).map(SiteProcessor::snapshot)
    }

    /// Replaces a site's processor by the one restored from `bytes` ([`SiteProcessor::restore`]),
    /// checked against the site's current configuration and the processing settings. Capture of
    /// interval totals and reporting of abandoned contacts follow this processor's settings
    /// whatever the snapshot's: kept with what they had pending when both have them, started
    /// empty when only this processor has them, dropped when it does not. On error the site is
    /// left as it was.
    pub fn restore_site(&mut self, id: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let config = match self.sites.get(id) {
            Some(running) => running.site.clone(),
            None => self
                .configured
                .get(id)
                .cloned()
                .unwrap_or_else(|| SiteConfig::with_defaults(id)),
        };
        let mut site = SiteProcessor::restore(bytes, config, &self.processing)?;
        if self.interval_totals {
            site.enable_interval_totals();
        } else {
            site.interval_totals = None;
        }
        if self.abandoned_contacts {
            site.enable_abandoned_contacts();
        } else {
            site.abandoned = None;
        }
        self.sites.insert(id.to_owned(), site);
        Ok(())
    }

    /// Captures the final totals at every interval boundary of every site, those seen later
    /// too (see [`SiteProcessor::enable_interval_totals`]).
    pub fn enable_interval_totals(&mut self) {
        self.interval_totals = true;
        for site in self.sites.values_mut() {
            site.enable_interval_totals();
        }
    }

    /// The interval totals every site captured since the last call: by site id, then in
    /// boundary order (see [`SiteProcessor::take_interval_totals`]).
    pub fn take_interval_totals(&mut self) -> Vec<DayTotals> {
        let mut taken = Vec::new();
        for site in self.sites.values_mut() {
            taken.extend(site.take_interval_totals());
        }
        taken
    }

    /// Reports the abandoned contacts of every site, those seen later too (see
    /// [`SiteProcessor::enable_abandoned_contacts`]).
    pub fn enable_abandoned_contacts(&mut self) {
        self.abandoned_contacts = true;
        for site in self.sites.values_mut() {
            site.enable_abandoned_contacts();
        }
    }

    /// The abandons every site found or withdrawn since the last call, by site id (sites
    /// with none left out; see [`SiteProcessor::take_abandoned_changes`]).
    pub fn take_abandoned_changes(&mut self) -> Vec<(String, Vec<AbandonedChange>)> {
        self.sites
            .iter_mut()
            .map(|(id, site)| (id, site.take_abandoned_changes()))
            .filter(|(_, changes)| !changes.is_empty())
            .map(|(id, changes)| (id.clone(), changes))
            .collect()
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

    #[test]
    fn a_restarted_site_forgets_its_events_and_keeps_its_configuration() {
        let mut config = SiteConfig::with_defaults("s");
        config.name = Some("Paris".into());
        let mut processor = Processor::new(vec![config], ProcessingConfig::default());
        processor.enable_abandoned_contacts();
        let mut other = queued("1", "10:00:00", "c1");
        other.site = "lyon".into();
        processor.apply(&other);
        processor.apply(&queued("1", "10:00:00", "c1"));
        processor.apply(&abandoned("2", "10:00:30", "c1"));
        let now = processor.site("s").unwrap().now();
        processor.restart_site("s");
        let site = processor.site("s").unwrap();
        assert_eq!(site.stats().applied, 0);
        assert_eq!(site.now(), now, "the clock goes on");
        assert_eq!(site.site().name.as_deref(), Some("Paris"));
        assert_eq!(processor.site("lyon").unwrap().stats().applied, 1);
        // The same events count again: the dedupe memory went with the rest.
        assert_eq!(
            processor.apply(&queued("1", "10:00:00", "c1")),
            Outcome::Applied
        );
        assert_eq!(
            processor.apply(&abandoned("2", "10:00:30", "c1")),
            Outcome::Applied
        );
        let abandons: usize = processor
            .take_abandoned_changes()
            .iter()
            .map(|(_, changes)| changes.len())
            .sum();
        assert_eq!(abandons, 1, "the restarted site still reports its abandons");
    }

    #[test]
    fn a_new_configuration_applies_to_the_running_day() {
        let mut site = processor();
        let login = |id: &str, advisor: &str, team: &str| {
            event(
                id,
                "08:00:00",
                &format!(r#""type":"advisor.login","advisor":"{advisor}","team":"{team}""#),
            )
        };
        for e in [
            login("l1", "a1", "red"),
            login("l2", "a2", "red"),
            queued("1", "09:00:00", "c1"),
            abandoned("2", "09:00:12", "c1"),
        ] {
            assert_eq!(site.apply(&e), Outcome::Applied);
        }
        let queue = site.queue_view("q", crate::Window::Today).unwrap();
        assert_eq!(queue.indicators.flow.abandoned_within_threshold, 1);
        assert_eq!(queue.channels.len(), 1);

        // T down to 10 s: the abandon after 12 s is no longer within threshold; a1 moves to
        // a configured team "blue" that serves q.
        let mut config = site.site().clone();
        let mut q = QueueConfig::with_defaults("q");
        q.sl_threshold = crate::config::HumanDuration::secs(10);
        config.queues.push(q);
        config.teams.push(crate::TeamConfig {
            id: "blue".into(),
            name: Some("Blue".into()),
            advisors: vec!["a1".into()],
            queues: vec!["q".into()],
            sl_variant: None,
        });
        site.reconfigure(config.clone()).unwrap();
        let queue = site.queue_view("q", crate::Window::Today).unwrap();
        assert_eq!(queue.sl_threshold, 10.0);
        assert_eq!(queue.indicators.flow.abandoned_within_threshold, 0);
        assert_eq!(queue.indicators.flow.abandoned, 1, "the day's counts stay");
        assert_eq!(queue.channels.len(), 1, "the queue keeps its channels");
        assert_eq!(site.advisor_team("a1"), Some("blue"));
        assert_eq!(
            site.advisor_team("a2"),
            Some("red"),
            "login teams still count"
        );
        assert_eq!(site.teams_serving("q"), ["blue"]);
        let blue = site.team_view("blue", crate::Window::Today).unwrap();
        assert_eq!(blue.members, ["a1"]);

        // Back to the defaults: the queue is no longer configured, blue is gone.
        let mut plain = config.clone();
        plain.queues.clear();
        plain.teams.clear();
        site.reconfigure(plain).unwrap();
        let queue = site.queue_view("q", crate::Window::Today).unwrap();
        assert_eq!(queue.sl_threshold, 20.0);
        assert_eq!(site.advisor_team("a1"), Some("red"));
        assert!(site.team_view("blue", crate::Window::Today).is_none());
        // Events still count after the changes.
        assert_eq!(site.apply(&queued("3", "09:01:00", "c2")), Outcome::Applied);

        // What the running day depends on cannot change.
        let mut moved = config;
        moved.time_zone = "Europe/Paris".into();
        let problems = site.reconfigure(moved).unwrap_err().to_string();
        assert!(
            problems.contains("site.time_zone: cannot change"),
            "{problems}"
        );
    }

    #[test]
    fn an_advisor_whose_timeline_fits_in_place_settles_later_with_the_same_figures() {
        let mut p = processor();
        let mut next_id = 0;
        let mut apply = |p: &mut SiteProcessor, time: &str, rest: String| {
            next_id += 1;
            assert_eq!(
                p.apply(&event(&next_id.to_string(), time, &rest)),
                Outcome::Applied
            );
        };
        let contact = |contact: &str, advisor: &str, kind: &str| {
            format!(
                r#""type":"contact.{kind}","contact":"{contact}","queue":"q","channel":"voice","advisor":"{advisor}""#
            )
        };
        let settled = |p: &SiteProcessor, advisor: usize| p.advisor_settled[advisor].to_string();
        for advisor in ["a", "b"] {
            let login = format!(r#""type":"advisor.login","advisor":"{advisor}""#);
            apply(&mut p, "09:00:00", login);
        }
        for id in ["c1", "c2"] {
            let queued = format!(
                r#""type":"contact.queued","contact":"{id}","queue":"q","channel":"voice""#
            );
            apply(&mut p, "09:01:00", queued);
        }
        apply(&mut p, "09:01:40", contact("c1", "a", "offered"));
        apply(&mut p, "09:01:40", contact("c2", "b", "offered"));
        // The logins are status changes, kept apart: settled as soon as the step allows.
        assert_eq!(settled(&p, 0), "2026-03-02T09:01:10.000Z");
        assert_eq!(settled(&p, 1), "2026-03-02T09:01:10.000Z");
        apply(&mut p, "09:02:30", contact("c1", "a", "answered"));
        apply(&mut p, "09:02:30", contact("c2", "b", "answered"));
        // Due by the step, but three spans (ringing, talking, on hold) still fit in place.
        apply(&mut p, "09:04:00", contact("c1", "a", "held"));
        assert_eq!(settled(&p, 0), "2026-03-02T09:01:10.000Z");
        // A fourth fills the room in place: settled.
        apply(&mut p, "09:05:00", contact("c1", "a", "resumed"));
        assert_eq!(settled(&p, 0), "2026-03-02T09:04:30.000Z");
        // Three spans again, but five minutes on: settled.
        apply(&mut p, "09:06:40", contact("c2", "b", "ended"));
        assert_eq!(settled(&p, 1), "2026-03-02T09:06:10.000Z");
        assert_eq!(settled(&p, 0), "2026-03-02T09:04:30.000Z");
        for advisor in ["a", "b"] {
            let view = p
                .advisor_view(advisor, crate::Window::Today)
                .expect("a known advisor");
            assert_eq!(view.indicators.login_time, Some(400.0), "{advisor}");
            // Ringing counts as available; handling from the answer on.
            assert_eq!(view.indicators.available_time, 150.0, "{advisor}");
            assert_eq!(view.indicators.handling_time, 250.0, "{advisor}");
        }
    }
}

#[cfg(test)]
mod sizes {
    use std::mem::size_of;

    /// The structures most events read, and that every advisor, contact or queue holds: the
    /// memory target (2 KiB of state per advisor, `core-memory`) has little margin, and each
    /// cache line they span is a line an event may wait for. Growing one fails here first;
    /// shrinking one is welcome (lower its bound).
    #[test]
    fn the_hot_structures_do_not_grow() {
        let bounds = [
            ("ContactState", size_of::<super::ContactState>(), 288),
            ("FoldState", size_of::<crate::contact::FoldState>(), 112),
            ("Fact", size_of::<crate::contact::Fact>(), 24),
            ("Advisor", size_of::<crate::advisor::Advisor>(), 480),
            ("DayTimes", size_of::<crate::advisor::DayTimes>(), 104),
            ("AdvisorLog", size_of::<crate::tally::AdvisorLog>(), 112),
            (
                "QueueChannelState",
                size_of::<super::QueueChannelState>(),
                528,
            ),
            ("StatusPoint", size_of::<crate::advisor::StatusPoint>(), 24),
            ("QueueSettings", size_of::<super::QueueSettings>(), 136),
        ];
        for (name, size, bound) in bounds {
            assert!(
                size <= bound,
                "{name} takes {size} bytes, more than its {bound}"
            );
        }
    }
}
