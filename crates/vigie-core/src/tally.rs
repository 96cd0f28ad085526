//! Counters of queues and advisors over windows of time.
//!
//! Each queue (per channel) and each advisor keeps a log of timestamped [`Entry`]s covering the
//! longest trailing window plus the allowed lateness. Entries older than the settled horizon
//! can no longer change; they are folded into the day's settled tally once. A window's tally
//! is then the settled tally (for "today") or nothing (trailing windows), plus the logged
//! entries inside the window: exact at millisecond granularity, and memory bounded by the
//! traffic of the last hour.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::contact::Outcome;
use crate::event::DequeueReason;
use crate::time::{Day, DayCache, Millis, Timestamp};

/// Waits are histogrammed in units of this many milliseconds.
pub(crate) const WAIT_HISTOGRAM_UNIT_MS: i64 = 100;
/// Significant digits of the wait histograms (1% relative resolution).
pub(crate) const WAIT_HISTOGRAM_SIGFIG: u8 = 2;

/// Something logged at an instant.
pub(crate) trait Timed: Copy + PartialEq + std::fmt::Debug {
    fn time(&self) -> Timestamp;
}

/// What a logged flow entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FlowKind {
    Offer,
    Left(Outcome),
}

/// An offer to a queue or an exit from it: 16 bytes (most of a queue's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FlowEntry {
    pub time: Timestamp,
    /// Wait (exits), in ms.
    pub wait: u32,
    pub kind: FlowKind,
}

impl FlowEntry {
    pub(crate) fn offer(time: Timestamp) -> FlowEntry {
        FlowEntry {
            time,
            wait: 0,
            kind: FlowKind::Offer,
        }
    }

    pub(crate) fn left(time: Timestamp, wait: Millis, outcome: Outcome) -> FlowEntry {
        FlowEntry {
            time,
            wait: ms(wait),
            kind: FlowKind::Left(outcome),
        }
    }
}

impl Timed for FlowEntry {
    fn time(&self) -> Timestamp {
        self.time
    }
}

/// What a logged handling entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryKind {
    Handled { held: bool },
    Transfer,
    Missed,
}

/// A handled leg, a transfer or a missed offer: 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub time: Timestamp,
    pub kind: EntryKind,
    /// Talk time (handled), in ms.
    pub a: u32,
    /// Hold time (handled), in ms.
    pub b: u32,
    /// After-contact work (handled), in ms.
    pub c: u32,
}

impl Timed for Entry {
    fn time(&self) -> Timestamp {
        self.time
    }
}

fn ms(span: Millis) -> u32 {
    u32::try_from(span.0.max(0)).unwrap_or(u32::MAX)
}

impl Entry {
    pub(crate) fn new(time: Timestamp, kind: EntryKind) -> Entry {
        Entry {
            time,
            kind,
            a: 0,
            b: 0,
            c: 0,
        }
    }

    pub(crate) fn handled(
        time: Timestamp,
        talk: Millis,
        hold: Millis,
        acw: Millis,
        held: bool,
    ) -> Entry {
        Entry {
            time,
            kind: EntryKind::Handled { held },
            a: ms(talk),
            b: ms(hold),
            c: ms(acw),
        }
    }
}

/// Makes room for one more item in a buffer kept for a long time, growing it by an eighth
/// (at least 2 items) rather than doubling it: these buffers live as long as the process, and
/// at their peak they would otherwise be up to twice too large. Growing copies the buffer, but
/// only when it outgrows its largest size so far.
pub(crate) fn reserve_tight<T>(buffer: &mut VecDeque<T>) {
    if buffer.len() == buffer.capacity() {
        buffer.reserve_exact(margin(buffer.len()));
    }
}
/// Gives back the slack of a buffer whose content shrank well below its capacity (a busy hour
/// passed), keeping the margin [`reserve_tight`] grows by: a buffer that shrinks and grows
/// again by a few items is not reallocated each time.
pub(crate) fn shrink_tight<T>(buffer: &mut VecDeque<T>) {
    let len = buffer.len();
    if buffer.capacity() > len + 3 * margin(len) {
        buffer.shrink_to(len + margin(len));
    }
}

/// The room kept beyond a long-lived buffer's content: an eighth, at least 2.
fn margin(len: usize) -> usize {
    (len / 8).max(2)
}

/// How a queue judges waits: its service-level answer time and short-abandon threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Thresholds {
    pub sl_threshold: Millis,
    pub short_abandon: Millis,
}

/// A histogram of waits, in [`WAIT_HISTOGRAM_UNIT_MS`] units, growing only as far as needed.
///
/// Each queue-channel keeps the day's for as long as the process lives, so it starts with
/// 16-bit counters (half the memory) and moves to 32-bit ones when a counter would overflow:
/// the buckets are the same, so the counts and every quantile are those of a 32-bit histogram.
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitHistogram(Option<Box<Waits>>);

#[derive(Clone, Debug)]
enum Waits {
    Small(Histogram<u16>),
    Large(Histogram<u32>),
}

fn new_histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    let mut histogram = Histogram::new(WAIT_HISTOGRAM_SIGFIG)
        .expect("2 significant digits is a valid histogram precision");
    histogram.auto(true);
    histogram
}

fn record_units<T: hdrhistogram::Counter>(histogram: &mut Histogram<T>, units: u64) {
    // Auto-resizing: recording grows the histogram; saturating is only a last resort.
    if histogram.record(units).is_err() {
        histogram.saturating_record(units);
    }
}

/// Adds the counts of `from` to `into`, bucket by bucket.
fn add_counts<T: hdrhistogram::Counter>(into: &mut Histogram<u32>, from: &Histogram<T>) {
    for bucket in from.iter_recorded() {
        let count = u32::try_from(bucket.count_at_value().as_u64()).unwrap_or(u32::MAX);
        // The bucket's highest value lands in the same bucket.
        if into.record_n(bucket.value_iterated_to(), count).is_err() {
            into.saturating_record_n(bucket.value_iterated_to(), count);
        }
    }
}

fn quantile_of<T: hdrhistogram::Counter>(
    histogram: &Histogram<T>,
    quantile: f64,
) -> Option<Millis> {
    if histogram.is_empty() {
        return None;
    }
    let units = histogram.value_at_quantile(quantile);
    Some(Millis(
        histogram.highest_equivalent(units) as i64 * WAIT_HISTOGRAM_UNIT_MS,
    ))
}

impl WaitHistogram {
    /// The 32-bit histogram, moving the counts there first if needed.
    fn large(&mut self) -> &mut Histogram<u32> {
        let waits = self
            .0
            .get_or_insert_with(|| Box::new(Waits::Large(new_histogram())));
        if let Waits::Small(small) = &**waits {
            let mut large = new_histogram();
            add_counts(&mut large, small);
            **waits = Waits::Large(large);
        }
        match &mut **waits {
            Waits::Large(large) => large,
            Waits::Small(_) => unreachable!("moved to 32 bits just above"),
        }
    }

    /// Heap bytes held (estimated from the number of counters).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.as_deref().map_or(0, |waits| {
            std::mem::size_of::<Waits>()
                + match waits {
                    Waits::Small(small) => small.distinct_values() * std::mem::size_of::<u16>(),
                    Waits::Large(large) => large.distinct_values() * std::mem::size_of::<u32>(),
                }
        })
    }

    pub(crate) fn record(&mut self, wait_ms: u32) {
        let units = u64::from(wait_ms) / WAIT_HISTOGRAM_UNIT_MS as u64;
        let waits = self
            .0
            .get_or_insert_with(|| Box::new(Waits::Small(new_histogram())));
        match &mut **waits {
            Waits::Small(small) if small.count_at(units) < u16::MAX => record_units(small, units),
            Waits::Small(_) => record_units(self.large(), units),
            Waits::Large(large) => record_units(large, units),
        }
    }

    pub(crate) fn merge(&mut self, other: &WaitHistogram) {
        match other.0.as_deref() {
            None => {}
            // Both auto-resize with the same precision: adding cannot fail.
            Some(Waits::Large(other)) => {
                let _ = self.large().add(other);
            }
            Some(Waits::Small(other)) => add_counts(self.large(), other),
        }
    }

    /// The wait at `quantile`, in ms (the highest value equivalent to the bucket's).
    pub(crate) fn quantile(&self, quantile: f64) -> Option<Millis> {
        match self.0.as_deref()? {
            Waits::Small(small) => quantile_of(small, quantile),
            Waits::Large(large) => quantile_of(large, quantile),
        }
    }
}

/// A wait histogram as a snapshot keeps it (`hdrhistogram` has no serde support of its own):
/// its counter width and its buckets, each as the highest value it holds and its count, in
/// value order. Re-recorded in a histogram of the same precision, each value lands in its
/// bucket again: the counts, and so every quantile, are the same.
#[derive(Serialize, Deserialize)]
struct SavedWaits {
    large: bool,
    buckets: Vec<(u64, u64)>,
}

/// The largest value a saved bucket may hold: waits are `u32` milliseconds in units of
/// [`WAIT_HISTOGRAM_UNIT_MS`], so no bucket comes near (a bound for decoded snapshots, which
/// must not grow a histogram beyond reason).
const MAX_SAVED_WAIT_UNITS: u64 = u32::MAX as u64;

impl SavedWaits {
    fn of<T: hdrhistogram::Counter>(large: bool, histogram: &Histogram<T>) -> SavedWaits {
        SavedWaits {
            large,
            buckets: histogram
                .iter_recorded()
                .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value().as_u64()))
                .collect(),
        }
    }

    /// The histogram again, or why the buckets cannot be those of a wait histogram.
    fn rebuild<T: hdrhistogram::Counter + TryFrom<u64>>(&self) -> Result<Histogram<T>, String> {
        let mut histogram = new_histogram::<T>();
        let mut previous = None;
        for &(value, count) in &self.buckets {
            if previous.is_some_and(|previous| previous >= value) || value > MAX_SAVED_WAIT_UNITS {
                return Err(format!(
                    "wait histogram bucket {value} out of order or range"
                ));
            }
            previous = Some(value);
            let counter = T::try_from(count)
                .ok()
                .filter(|_| count > 0)
                .ok_or_else(|| format!("wait histogram count {count} out of range"))?;
            histogram
                .record_n(value, counter)
                .map_err(|error| format!("wait histogram bucket {value}: {error:?}"))?;
            // Two values of one bucket would add up: not a histogram this one wrote.
            if histogram.count_at(value).as_u64() != count {
                return Err(format!("wait histogram bucket {value} given twice"));
            }
        }
        Ok(histogram)
    }
}

impl Serialize for WaitHistogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let saved = self.0.as_deref().map(|waits| match waits {
            Waits::Small(small) => SavedWaits::of(false, small),
            Waits::Large(large) => SavedWaits::of(true, large),
        });
        saved.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WaitHistogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WaitHistogram, D::Error> {
        let Some(saved) = Option::<SavedWaits>::deserialize(deserializer)? else {
            return Ok(WaitHistogram(None));
        };
        let waits = if saved.large {
            saved.rebuild().map(Waits::Large)
        } else {
            saved.rebuild().map(Waits::Small)
        };
        waits
            .map(|waits| WaitHistogram(Some(Box::new(waits))))
            .map_err(serde::de::Error::custom)
    }
}

/// Counts of a queue (or of several queues summed).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct QueueTally {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub dequeued: u64,
    pub dequeued_by_reason: [u64; 4],
    pub flowed_out: u64,
    pub answered_within_threshold: u64,
    pub abandoned_within_threshold: u64,
    pub wait_answered: Millis,
    pub max_wait_answered: Option<Millis>,
    pub wait_abandoned: Millis,
    pub waits: WaitHistogram,
    pub handled: u64,
    pub talk: Millis,
    pub hold: Millis,
    pub acw: Millis,
    pub held: u64,
    pub transferred: u64,
    /// Counts only: waits are neither recorded in `waits` nor merged there. Reads that show
    /// no percentile of waits (alert rules read thousands of counts at every evaluation) skip
    /// the histogram work, most of the cost of a day's tally.
    pub without_waits: bool,
}

fn dequeue_index(reason: DequeueReason) -> usize {
    match reason {
        DequeueReason::Voicemail => 0,
        DequeueReason::Callback => 1,
        DequeueReason::Timeout => 2,
        DequeueReason::Closed => 3,
    }
}

impl QueueTally {
    /// An empty tally that keeps no histogram of waits.
    pub(crate) fn without_waits() -> QueueTally {
        QueueTally {
            without_waits: true,
            ..QueueTally::default()
        }
    }

    pub(crate) fn add_flow(&mut self, entry: &FlowEntry, thresholds: Thresholds) {
        match entry.kind {
            FlowKind::Offer => self.offered += 1,
            FlowKind::Left(outcome) => {
                let wait = Millis(i64::from(entry.wait));
                match outcome {
                    Outcome::Answered => {
                        self.answered += 1;
                        self.wait_answered += wait;
                        self.max_wait_answered =
                            Some(self.max_wait_answered.map_or(wait, |m| m.max(wait)));
                        if !self.without_waits {
                            self.waits.record(entry.wait);
                        }
                        if wait <= thresholds.sl_threshold {
                            self.answered_within_threshold += 1;
                        }
                    }
                    Outcome::Abandoned => {
                        self.abandoned += 1;
                        self.wait_abandoned += wait;
                        if wait < thresholds.short_abandon {
                            self.short_abandoned += 1;
                        }
                        if wait <= thresholds.sl_threshold {
                            self.abandoned_within_threshold += 1;
                        }
                    }
                    Outcome::Dequeued(reason) => {
                        self.dequeued += 1;
                        self.dequeued_by_reason[dequeue_index(reason)] += 1;
                    }
                    Outcome::FlowedOut => self.flowed_out += 1,
                }
            }
        }
    }

    pub(crate) fn add_handling(&mut self, entry: &Entry) {
        match entry.kind {
            EntryKind::Handled { held } => {
                self.handled += 1;
                self.talk += Millis(i64::from(entry.a));
                self.hold += Millis(i64::from(entry.b));
                self.acw += Millis(i64::from(entry.c));
                if held {
                    self.held += 1;
                }
            }
            EntryKind::Transfer => self.transferred += 1,
            EntryKind::Missed => {}
        }
    }

    pub(crate) fn merge(&mut self, other: &QueueTally) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.abandoned += other.abandoned;
        self.short_abandoned += other.short_abandoned;
        self.dequeued += other.dequeued;
        for (mine, theirs) in self
            .dequeued_by_reason
            .iter_mut()
            .zip(other.dequeued_by_reason)
        {
            *mine += theirs;
        }
        self.flowed_out += other.flowed_out;
        self.answered_within_threshold += other.answered_within_threshold;
        self.abandoned_within_threshold += other.abandoned_within_threshold;
        self.wait_answered += other.wait_answered;
        self.max_wait_answered = match (self.max_wait_answered, other.max_wait_answered) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.wait_abandoned += other.wait_abandoned;
        if !self.without_waits {
            self.waits.merge(&other.waits);
        }
        self.handled += other.handled;
        self.talk += other.talk;
        self.hold += other.hold;
        self.acw += other.acw;
        self.held += other.held;
        self.transferred += other.transferred;
    }
}

/// Counts of an advisor (or of several advisors summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdvisorTally {
    pub handled: u64,
    pub talk: Millis,
    pub hold: Millis,
    pub acw: Millis,
    pub held: u64,
    pub transfers: u64,
    pub missed_offers: u64,
}

impl AdvisorTally {
    pub(crate) fn add(&mut self, entry: &Entry) {
        match entry.kind {
            EntryKind::Handled { held } => {
                self.handled += 1;
                self.talk += Millis(i64::from(entry.a));
                self.hold += Millis(i64::from(entry.b));
                self.acw += Millis(i64::from(entry.c));
                if held {
                    self.held += 1;
                }
            }
            EntryKind::Transfer => self.transfers += 1,
            EntryKind::Missed => self.missed_offers += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &AdvisorTally) {
        self.handled += other.handled;
        self.talk += other.talk;
        self.hold += other.hold;
        self.acw += other.acw;
        self.held += other.held;
        self.transfers += other.transfers;
        self.missed_offers += other.missed_offers;
    }
}

/// A time range `(start, end]` of entries to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    /// Entries strictly after this instant...
    pub after: Timestamp,
    /// ...and at or before this one.
    pub until: Timestamp,
}

/// Entries of one queue-channel or advisor, with the day's settled tally.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct EntryLog<E, T> {
    /// Sorted by time.
    entries: VecDeque<E>,
    /// Entries before this instant are final and counted in `settled`.
    settled_until: Timestamp,
    /// How many of `entries` lie before `settled_until` (changes only ever come after).
    settled_count: usize,
    /// Start of the day `settled` belongs to.
    settled_day: Timestamp,
    settled: T,
}

/// The log of a queue-channel's offers and exits.
pub(crate) type FlowLog = EntryLog<FlowEntry, QueueTally>;
/// The log of a queue-channel's handled legs and transfers.
pub(crate) type HandlingLog = EntryLog<Entry, QueueTally>;
/// The log of an advisor's handled legs, transfers and missed offers.
pub(crate) type AdvisorLog = EntryLog<Entry, AdvisorTally>;

/// Tallies that entries of type `E` can be added to, and that merge.
pub(crate) trait Tally<E>: Default + Clone {
    type Context: Copy;
    fn add_entry(&mut self, entry: &E, context: Self::Context);
    fn merge_tally(&mut self, other: &Self);
}

impl Tally<FlowEntry> for QueueTally {
    type Context = Thresholds;
    fn add_entry(&mut self, entry: &FlowEntry, context: Thresholds) {
        self.add_flow(entry, context);
    }
    fn merge_tally(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Tally<Entry> for QueueTally {
    type Context = Thresholds;
    fn add_entry(&mut self, entry: &Entry, _: Thresholds) {
        self.add_handling(entry);
    }
    fn merge_tally(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Tally<Entry> for AdvisorTally {
    type Context = ();
    fn add_entry(&mut self, entry: &Entry, _: ()) {
        self.add(entry);
    }
    fn merge_tally(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl<E: Timed, T: Tally<E>> EntryLog<E, T> {
    pub(crate) fn new(settled_until: Timestamp) -> Self {
        EntryLog {
            entries: VecDeque::new(),
            settled_until,
            settled_count: 0,
            settled_day: Timestamp::MIN,
            settled: T::default(),
        }
    }

    /// Adds an entry (at or after the settled horizon).
    pub(crate) fn insert(&mut self, entry: E) {
        let time = entry.time();
        debug_assert!(
            time >= self.settled_until,
            "entries before the horizon never change"
        );
        reserve_tight(&mut self.entries);
        match self.entries.back() {
            Some(last) if last.time() > time => {
                let position = self.entries.partition_point(|e| e.time() <= time);
                self.entries.insert(position, entry);
            }
            _ => self.entries.push_back(entry),
        }
    }

    /// Adds the entry, or removes it (previously inserted) when `add` is false: a record is
    /// counted and un-counted by the same path.
    pub(crate) fn update(&mut self, entry: E, add: bool) {
        if add {
            self.insert(entry)
        } else {
            self.remove(&entry)
        }
    }

    /// Removes an entry previously inserted (at or after the settled horizon).
    pub(crate) fn remove(&mut self, entry: &E) {
        let time = entry.time();
        let start = self.entries.partition_point(|e| e.time() < time);
        let found = (start..self.entries.len())
            .take_while(|&i| self.entries[i].time() == time)
            .find(|&i| self.entries[i] == *entry);
        debug_assert!(
            found.is_some(),
            "removing an entry that was never inserted: {entry:?}"
        );
        if let Some(index) = found {
            self.entries.remove(index);
        }
    }

    /// Folds the entries before `until` into the settled tally (resetting it at each new day),
    /// and forgets entries before `keep_from`.
    pub(crate) fn settle(
        &mut self,
        until: Timestamp,
        keep_from: Timestamp,
        context: T::Context,
        days: &mut DayCache,
    ) {
        self.settle_each(until, keep_from, context, days, |_, _| {});
    }

    /// [`EntryLog::settle`], handing each entry folded, with its day, to `settled` as well:
    /// counts kept beside the day's tally (per interval) are then settled at the same moment
    /// and with the same context.
    pub(crate) fn settle_each(
        &mut self,
        until: Timestamp,
        keep_from: Timestamp,
        context: T::Context,
        days: &mut DayCache,
        mut settled: impl FnMut(&E, Day),
    ) {
        if until > self.settled_until {
            while let Some(entry) = self
                .entries
                .get(self.settled_count)
                .filter(|e| e.time() < until)
            {
                let day = days.day_of(entry.time());
                if day.start != self.settled_day {
                    self.settled = T::default();
                    self.settled_day = day.start;
                }
                self.settled.add_entry(entry, context);
                settled(entry, day);
                self.settled_count += 1;
            }
            self.settled_until = until;
        }
        let keep_from = keep_from.min(self.settled_until);
        while self.entries.front().is_some_and(|e| e.time() < keep_from) {
            self.entries.pop_front();
            self.settled_count -= 1;
        }
        shrink_tight(&mut self.entries);
    }

    /// Adds to `into` the entries of the trailing `range`.
    pub(crate) fn tally_range(&self, range: Range, context: T::Context, into: &mut T) {
        let from = self.entries.partition_point(|e| e.time() <= range.after);
        for entry in self
            .entries
            .range(from..)
            .take_while(|e| e.time() <= range.until)
        {
            into.add_entry(entry, context);
        }
    }

    /// Adds to `into` the day starting at `day_start`, up to `until` included.
    pub(crate) fn tally_day(
        &self,
        day_start: Timestamp,
        until: Timestamp,
        context: T::Context,
        into: &mut T,
    ) {
        let mut after = Timestamp(day_start.0 - 1);
        if self.settled_day == day_start {
            into.merge_tally(&self.settled);
            after = after.max(Timestamp(self.settled_until.0 - 1));
        }
        self.tally_range(Range { after, until }, context, into);
    }

    /// The entries of the day starting at `day_start`, up to `until` included, that are not
    /// folded into a settled tally yet.
    pub(crate) fn unsettled(
        &self,
        day_start: Timestamp,
        until: Timestamp,
    ) -> impl Iterator<Item = &E> {
        let after = Timestamp(day_start.max(self.settled_until).0 - 1);
        let from = self.entries.partition_point(|e| e.time() <= after);
        self.entries
            .range(from..)
            .take_while(move |e| e.time() <= until)
    }

    /// Whether the log is as inserting and settling leave it: entries in time order, and
    /// `settled_count` of them before `settled_until`. Checked on a decoded snapshot before
    /// settling counts on it.
    pub(crate) fn is_consistent(&self) -> bool {
        let in_order = self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .all(|(earlier, later)| earlier.time() <= later.time());
        in_order
            && self.settled_count
                == self
                    .entries
                    .partition_point(|entry| entry.time() < self.settled_until)
    }

    /// Entries before this instant are final.
    pub(crate) fn settled_until(&self) -> Timestamp {
        self.settled_until
    }

    /// Start of the day of the last entry folded into the settled tally ([`Timestamp::MIN`]
    /// before the first): no entry of a later day was folded, so a later day can still be
    /// counted up to any instant (its entries all lie at or after `settled_until`).
    pub(crate) fn settled_day(&self) -> Timestamp {
        self.settled_day
    }

    /// Asks for the memory an entry's addition reads first: the log's fields other than its
    /// settled tally (read only when settling). They lie together, 56 bytes with the buffer's
    /// fields at one end and `settled_day` at the other (`tests::a_log_head_is_asked_for_whole`
    /// fails if the compiler lays them out otherwise), so two lines hold them all. Asking for
    /// each field's line instead measured 2% slower on the 10,000-advisor day.
    pub(crate) fn prefetch_header(&self) {
        crate::prefetch::line(&self.entries);
        crate::prefetch::line(&self.settled_day);
    }

    /// Asks for the memory where an entry is usually added: after the newest one.
    pub(crate) fn prefetch_newest(&self) {
        if let Some(newest) = self.entries.back() {
            crate::prefetch::line(newest);
        }
    }

    /// Entries currently kept (for memory accounting).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The settled tally.
    pub(crate) fn settled(&self) -> &T {
        &self.settled
    }

    /// Heap bytes held by the log (capacity of its buffer).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<E>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a log (what [`EntryLog::prefetch_header`] asks for by its two ends) is one
    /// block of 56 bytes from the entries' buffer to `settled_day`, in either order.
    #[test]
    fn a_log_head_is_asked_for_whole() {
        use std::mem::{offset_of, size_of};
        macro_rules! check {
            ($log:ty, $entry:ty) => {{
                let buffer = (offset_of!($log, entries), size_of::<VecDeque<$entry>>());
                let day = (offset_of!($log, settled_day), size_of::<Timestamp>());
                let fields = [
                    buffer,
                    (offset_of!($log, settled_until), size_of::<Timestamp>()),
                    (offset_of!($log, settled_count), size_of::<usize>()),
                    day,
                ];
                let start = fields.iter().map(|f| f.0).min().unwrap();
                let end = fields.iter().map(|f| f.0 + f.1).max().unwrap();
                let name = stringify!($log);
                assert_eq!(end - start, 56, "{name}: its head is not one block");
                let ends = |f: (usize, usize)| f.0 == start || f.0 + f.1 == end;
                assert!(
                    ends(buffer) && ends(day),
                    "{name}: its head does not run from the buffer to settled_day"
                );
            }};
        }
        check!(FlowLog, FlowEntry);
        check!(HandlingLog, Entry);
        check!(AdvisorLog, Entry);
    }

    const THRESHOLDS: Thresholds = Thresholds {
        sl_threshold: Millis(20_000),
        short_abandon: Millis(5_000),
    };

    fn left(secs: i64, wait_secs: i64, outcome: Outcome) -> FlowEntry {
        FlowEntry::left(
            Timestamp(secs * 1000),
            Millis::from_secs(wait_secs),
            outcome,
        )
    }

    fn days() -> DayCache {
        DayCache::new(crate::time::DayCalendar::new(
            chrono_tz::UTC,
            chrono::NaiveTime::MIN,
        ))
    }

    #[test]
    fn boundaries_follow_the_trade_definitions() {
        let mut tally = QueueTally::default();
        tally.add_flow(&left(1, 20, Outcome::Answered), THRESHOLDS); // exactly T: within
        tally.add_flow(&left(2, 21, Outcome::Answered), THRESHOLDS);
        tally.add_flow(&left(3, 5, Outcome::Abandoned), THRESHOLDS); // exactly 5 s: not short
        tally.add_flow(
            &FlowEntry::left(Timestamp(4000), Millis(4_999), Outcome::Abandoned),
            THRESHOLDS,
        );
        assert_eq!(tally.answered_within_threshold, 1);
        assert_eq!(tally.short_abandoned, 1);
        assert_eq!(tally.abandoned_within_threshold, 2);
        assert_eq!(tally.max_wait_answered, Some(Millis::from_secs(21)));
    }

    #[test]
    fn settled_and_pending_entries_add_up_to_the_day() {
        let mut log = FlowLog::new(Timestamp(0));
        for secs in [10, 20, 30, 40] {
            log.insert(left(secs, 1, Outcome::Answered));
        }
        log.insert(left(25, 1, Outcome::Answered)); // out of order
        log.settle(Timestamp(26_000), Timestamp(0), THRESHOLDS, &mut days());
        let mut today = QueueTally::default();
        log.tally_day(Timestamp(0), Timestamp(100_000), THRESHOLDS, &mut today);
        assert_eq!(today.answered, 5);
        let mut trailing = QueueTally::default();
        log.tally_range(
            Range {
                after: Timestamp(20_000),
                until: Timestamp(40_000),
            },
            THRESHOLDS,
            &mut trailing,
        );
        assert_eq!(trailing.answered, 3, "(20, 40] holds 25, 30 and 40");
        log.remove(&left(30, 1, Outcome::Answered));
        let mut today = QueueTally::default();
        log.tally_day(Timestamp(0), Timestamp(100_000), THRESHOLDS, &mut today);
        assert_eq!(today.answered, 4);
    }

    #[test]
    fn a_new_day_starts_from_zero() {
        let mut log = FlowLog::new(Timestamp(0));
        log.insert(left(86_000, 1, Outcome::Answered));
        log.insert(left(86_500, 1, Outcome::Answered));
        log.settle(Timestamp(86_450_000), Timestamp(0), THRESHOLDS, &mut days());
        let mut tomorrow = QueueTally::default();
        log.tally_day(
            Timestamp(86_400_000),
            Timestamp(90_000_000),
            THRESHOLDS,
            &mut tomorrow,
        );
        assert_eq!(tomorrow.answered, 1);
        let mut yesterday = QueueTally::default();
        log.tally_day(
            Timestamp(0),
            Timestamp(86_399_999),
            THRESHOLDS,
            &mut yesterday,
        );
        assert_eq!(
            yesterday.answered, 1,
            "yesterday's settled tally was replaced; its pending log still counts"
        );
    }

    proptest::proptest! {
        /// The 16-bit start, its move to 32 bits and merges give the quantiles of a plain
        /// 32-bit histogram.
        #[test]
        fn wait_histograms_match_a_32_bit_one(
            waits in proptest::collection::vec((0u32..2_000_000, 1u32..40), 1..60),
            split in 0usize..60,
            crowd in proptest::bool::ANY,
        ) {
            let mut reference = new_histogram::<u32>();
            let (mut first, mut second) = (WaitHistogram::default(), WaitHistogram::default());
            for (index, (wait, times)) in waits.iter().enumerate() {
                // Now and then, enough waits in one bucket to overflow 16 bits.
                let times = if crowd && index == 0 { 70_000 } else { *times };
                for _ in 0..times {
                    record_units(&mut reference, u64::from(*wait) / 100);
                    if index < split { first.record(*wait) } else { second.record(*wait) }
                }
            }
            let mut merged = WaitHistogram::default();
            merged.merge(&first);
            merged.merge(&second);
            for quantile in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                let expected = quantile_of(&reference, quantile);
                proptest::prop_assert_eq!(merged.quantile(quantile), expected);
                if split >= waits.len() {
                    proptest::prop_assert_eq!(first.quantile(quantile), expected);
                }
            }
        }
    }

    #[test]
    fn a_decoded_wait_histogram_has_the_same_quantiles() {
        let mut small = WaitHistogram::default();
        let mut large = WaitHistogram::default();
        for wait_ms in (0..2_000u32).map(|i| i * 997 % 600_000) {
            small.record(wait_ms);
            large.record(wait_ms);
        }
        for _ in 0..70_000 {
            large.record(12_345);
        }
        assert!(matches!(small.0.as_deref(), Some(Waits::Small(_))));
        assert!(matches!(large.0.as_deref(), Some(Waits::Large(_))));
        for histogram in [small, large, WaitHistogram::default()] {
            let bytes = postcard::to_allocvec(&histogram).unwrap();
            let decoded: WaitHistogram = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(postcard::to_allocvec(&decoded).unwrap(), bytes);
            for quantile in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                assert_eq!(decoded.quantile(quantile), histogram.quantile(quantile));
            }
        }
        // Buckets out of order, repeated or beyond any wait, and counts a 16-bit histogram
        // cannot hold, do not decode.
        for buckets in [
            vec![(5, 1), (3, 1)],
            vec![(5, 1), (5, 1)],
            vec![(u64::MAX, 1)],
            vec![(5, 0)],
            vec![(5, 70_000)],
        ] {
            let bytes = postcard::to_allocvec(&Some(SavedWaits {
                large: false,
                buckets,
            }))
            .unwrap();
            assert!(postcard::from_bytes::<WaitHistogram>(&bytes).is_err());
        }
    }

    #[test]
    fn wait_quantiles_have_one_percent_resolution() {
        let mut histogram = WaitHistogram::default();
        for wait_ms in (1..=100).map(|i| i * 1000) {
            histogram.record(wait_ms);
        }
        let p50 = histogram.quantile(0.5).unwrap();
        assert!((50_000..=50_500).contains(&p50.0), "{p50:?}");
        let p90 = histogram.quantile(0.9).unwrap();
        assert!((90_000..=90_900).contains(&p90.0), "{p90:?}");
        assert_eq!(WaitHistogram::default().quantile(0.5), None);
    }
}
