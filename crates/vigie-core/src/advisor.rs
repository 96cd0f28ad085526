//! An advisor's timeline: their status (logged out, available, pause with reason) and the
//! phases of the contacts they handle, integrated over time.
//!
//! Like contacts, advisors accept changes out of order within the allowed lateness: the part
//! of the timeline after the settled horizon is kept as points and spans and evaluated on
//! demand; the part before it is final and folded into the day's accumulated times and a
//! compact log of occupancy classes (for trailing windows).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::contact::{Phase, Span};
use crate::tally::{AdvisorLog, reserve_tight, shrink_tight};
use crate::time::{Day, DayCache, Millis, Timestamp};

/// Index of an interned pause reason.
pub(crate) type ReasonIdx = u32;

/// The status an advisor (or their supervisor) sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    LoggedOut,
    Available,
    Pause(ReasonIdx),
}

impl Status {
    const LOGGED_OUT: u32 = u32::MAX;
    const AVAILABLE: u32 = u32::MAX - 1;

    /// The status in 32 bits. Reason indices stay below `u32::MAX - 1`: each interned reason
    /// holds its name in memory, and 4 billion of them would not fit.
    fn pack(self) -> u32 {
        match self {
            Status::LoggedOut => Status::LOGGED_OUT,
            Status::Available => Status::AVAILABLE,
            Status::Pause(reason) => {
                debug_assert!(reason < Status::AVAILABLE, "reason index {reason}");
                reason
            }
        }
    }

    fn unpack(packed: u32) -> Status {
        match packed {
            Status::LOGGED_OUT => Status::LoggedOut,
            Status::AVAILABLE => Status::Available,
            reason => Status::Pause(reason),
        }
    }
}

/// A status change at an instant; `rank` and `tie` order changes of the same millisecond.
/// 24 bytes: the status is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatusPoint {
    pub time: Timestamp,
    pub tie: u64,
    status: u32,
    pub rank: u8,
}

impl StatusPoint {
    pub(crate) fn new(time: Timestamp, rank: u8, tie: u64, status: Status) -> StatusPoint {
        StatusPoint {
            time,
            tie,
            status: status.pack(),
            rank,
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status::unpack(self.status)
    }

    fn key(&self) -> (Timestamp, u8, u64) {
        (self.time, self.rank, self.tie)
    }
}

/// A span as its advisor keeps it (the advisor is implied): 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TimelineSpan {
    start: Timestamp,
    /// Meaningful once `closed` (zero while open, so that equal spans compare equal).
    end: Timestamp,
    leg_start: Timestamp,
    phase: Phase,
    closed: bool,
}

impl TimelineSpan {
    fn new(span: &Span) -> TimelineSpan {
        TimelineSpan {
            start: span.start,
            end: span.end.unwrap_or_default(),
            leg_start: span.leg_start,
            phase: span.phase,
            closed: span.end.is_some(),
        }
    }

    fn end(&self) -> Option<Timestamp> {
        self.closed.then_some(self.end)
    }

    /// In progress at `at`.
    fn active(&self, at: Timestamp) -> bool {
        self.start <= at && (!self.closed || self.end > at)
    }
}

/// The largest gap between two entries of a [`ClassLog`], in ms (30 bits).
const MAX_CLASS_GAP: i64 = (1 << 30) - 1;

/// Occupancy-class changes before the settled horizon, covering the longest trailing window:
/// 4 bytes an entry, the class in the low 2 bits and the time since the previous entry above.
///
/// Queries look no further back than the longest trailing window before the newest event, so
/// when an entry comes more than [`MAX_CLASS_GAP`] (12 days) after the previous one, the
/// previous class is kept as starting `MAX_CLASS_GAP` before it and older entries dropped:
/// nothing a query can see changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClassLog {
    /// Time of the first entry.
    first: Timestamp,
    /// Time of the last entry.
    last: Timestamp,
    /// The first entry's time field is not used (`first` holds it).
    entries: VecDeque<u32>,
}

impl ClassLog {
    fn pack(gap: i64, class: Class) -> u32 {
        debug_assert!((0..=MAX_CLASS_GAP).contains(&gap));
        ((gap as u32) << 2) | class as u32
    }

    fn class(entry: u32) -> Class {
        match entry & 3 {
            0 => Class::Handling,
            1 => Class::Idle,
            2 => Class::Paused,
            _ => Class::Out,
        }
    }

    fn gap(entry: u32) -> Millis {
        Millis(i64::from(entry >> 2))
    }

    fn last_class(&self) -> Option<Class> {
        self.entries.back().map(|entry| ClassLog::class(*entry))
    }

    /// Appends a change at `time`, at or after the last one.
    fn push(&mut self, time: Timestamp, class: Class) {
        let Some(&last) = self.entries.back() else {
            self.first = time;
            self.last = time;
            self.entries.push_back(ClassLog::pack(0, class));
            return;
        };
        if (time - self.last).0 > MAX_CLASS_GAP {
            self.entries.clear();
            self.first = time - Millis(MAX_CLASS_GAP);
            self.last = self.first;
            self.entries
                .push_back(ClassLog::pack(0, ClassLog::class(last)));
        }
        reserve_tight(&mut self.entries);
        self.entries
            .push_back(ClassLog::pack((time - self.last).0, class));
        self.last = time;
    }

    /// Entries with their times, oldest first.
    fn iter(&self) -> impl Iterator<Item = (Timestamp, Class)> + '_ {
        let mut time = self.first;
        self.entries.iter().enumerate().map(move |(index, entry)| {
            if index > 0 {
                time = time + ClassLog::gap(*entry);
            }
            (time, ClassLog::class(*entry))
        })
    }

    /// Keeps the class in force at `keep_from`, then the changes after it.
    fn prune(&mut self, keep_from: Timestamp) {
        while let Some(&second) = self.entries.get(1) {
            let second_time = self.first + ClassLog::gap(second);
            if second_time > keep_from {
                break;
            }
            self.entries.pop_front();
            self.first = second_time;
        }
        shrink_tight(&mut self.entries);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u32>()
    }
}

/// What a supervisor sees: contact activity first, then the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Display {
    Offered,
    Talking,
    OnHold,
    Acw,
    Pause(ReasonIdx),
    Available,
    LoggedOut,
}

/// How time counts for occupancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Class {
    /// Talking, on hold or in after-contact work on at least one contact.
    Handling,
    /// Available (or ringing) and handling nothing.
    Idle,
    /// In pause, handling nothing.
    Paused,
    /// Logged out, handling nothing.
    Out,
}

/// Time accumulated over one site-local day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayTimes {
    pub day_start: Timestamp,
    pub logged_in: Millis,
    pub idle: Millis,
    pub handling: Millis,
    /// Per reason: time in pause status and number of pauses started.
    pub pauses: SmallVec<[(ReasonIdx, Millis, u32); 3]>,
    /// The first change from logged out to logged in.
    first_login: MaybeTime,
    /// The last change to logged out from logged in (for timesheets).
    last_logout: MaybeTime,
}

/// An instant or none in 8 bytes, where `Option<Timestamp>` takes 16: every advisor holds a
/// `DayTimes`, and the core's memory target leaves no room for padding. `i64::MIN` stands for
/// none: no event has that time (times come from RFC 3339 text, years 0 to 9999).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct MaybeTime(i64);

impl Default for MaybeTime {
    fn default() -> MaybeTime {
        MaybeTime::NONE
    }
}

impl MaybeTime {
    const NONE: MaybeTime = MaybeTime(i64::MIN);

    fn get(self) -> Option<Timestamp> {
        (self != MaybeTime::NONE).then_some(Timestamp(self.0))
    }

    fn from(time: Option<Timestamp>) -> MaybeTime {
        time.map_or(MaybeTime::NONE, |time| MaybeTime(time.0))
    }
}

impl DayTimes {
    fn for_day(day_start: Timestamp) -> DayTimes {
        DayTimes {
            day_start,
            ..DayTimes::default()
        }
    }

    /// The first login of the day (from logged out to any other status).
    pub(crate) fn first_login(&self) -> Option<Timestamp> {
        self.first_login.get()
    }

    /// The last logout of the day (to logged out from any other status).
    pub(crate) fn last_logout(&self) -> Option<Timestamp> {
        self.last_logout.get()
    }

    fn pause_entry(&mut self, reason: ReasonIdx) -> &mut (ReasonIdx, Millis, u32) {
        let position = match self.pauses.iter().position(|(r, _, _)| *r == reason) {
            Some(position) => position,
            None => {
                self.pauses.push((reason, Millis::ZERO, 0));
                self.pauses.len() - 1
            }
        };
        &mut self.pauses[position]
    }

    /// Adds another advisor's (or another part of the day's) times.
    pub(crate) fn merge(&mut self, other: &DayTimes) {
        self.logged_in += other.logged_in;
        self.idle += other.idle;
        self.handling += other.handling;
        for (reason, time, count) in &other.pauses {
            let entry = self.pause_entry(*reason);
            entry.1 += *time;
            entry.2 += *count;
        }
        self.first_login = MaybeTime::from(match (self.first_login(), other.first_login()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        self.last_logout = MaybeTime::from(self.last_logout().max(other.last_logout()));
    }
}

/// The state over a stretch of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub status: Status,
    pub display: Display,
    pub class: Class,
}

impl State {
    const INITIAL: State = State {
        status: Status::LoggedOut,
        display: Display::LoggedOut,
        class: Class::Out,
    };

    /// The state of an advisor in `status` with `counts` spans in progress, by phase.
    fn from_counts(status: Status, counts: [u32; 4]) -> State {
        let [offered, talking, on_hold, acw] = counts;
        let display = if offered > 0 {
            Display::Offered
        } else if talking > 0 {
            Display::Talking
        } else if on_hold > 0 {
            Display::OnHold
        } else if acw > 0 {
            Display::Acw
        } else {
            match status {
                Status::LoggedOut => Display::LoggedOut,
                Status::Available => Display::Available,
                Status::Pause(reason) => Display::Pause(reason),
            }
        };
        let class = if talking + on_hold + acw > 0 {
            Class::Handling
        } else if offered > 0 || status == Status::Available {
            Class::Idle
        } else if status == Status::LoggedOut {
            Class::Out
        } else {
            Class::Paused
        };
        State {
            status,
            display,
            class,
        }
    }
}

/// The state at the end of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    state: State,
    display_since: Option<Timestamp>,
}

impl Display {
    /// The display in 32 bits, as [`Status::pack`].
    fn pack(self) -> u32 {
        match self {
            Display::Offered => u32::MAX,
            Display::Talking => u32::MAX - 1,
            Display::OnHold => u32::MAX - 2,
            Display::Acw => u32::MAX - 3,
            Display::Available => u32::MAX - 4,
            Display::LoggedOut => u32::MAX - 5,
            Display::Pause(reason) => {
                debug_assert!(reason < u32::MAX - 5, "reason index {reason}");
                reason
            }
        }
    }

    fn unpack(packed: u32) -> Display {
        match packed {
            u32::MAX => Display::Offered,
            0xFFFF_FFFE => Display::Talking,
            0xFFFF_FFFD => Display::OnHold,
            0xFFFF_FFFC => Display::Acw,
            0xFFFF_FFFB => Display::Available,
            0xFFFF_FFFA => Display::LoggedOut,
            reason => Display::Pause(reason),
        }
    }
}

/// The state at the settled horizon, packed in 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SettledSnapshot {
    status: u32,
    display: u32,
    class: Class,
    has_display_since: bool,
    display_since: Timestamp,
}

impl SettledSnapshot {
    fn pack(snapshot: Snapshot) -> SettledSnapshot {
        SettledSnapshot {
            status: snapshot.state.status.pack(),
            display: snapshot.state.display.pack(),
            class: snapshot.state.class,
            has_display_since: snapshot.display_since.is_some(),
            display_since: snapshot.display_since.unwrap_or_default(),
        }
    }

    fn unpack(self) -> Snapshot {
        Snapshot {
            state: State {
                status: Status::unpack(self.status),
                display: Display::unpack(self.display),
                class: self.class,
            },
            display_since: self.has_display_since.then_some(self.display_since),
        }
    }
}

/// What happens at an instant of a walk over the timeline.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// A status change.
    Status,
    /// A span of this phase begins.
    Starts(Phase),
    /// A span of this phase ends.
    Ends(Phase),
}

/// What a walk over the timeline reports.
trait WalkSink {
    /// Constant `state` over `[start, end)`.
    fn segment(&mut self, start: Timestamp, end: Timestamp, state: State);
    /// The status changed at `time` from `old` to `new`.
    fn status_change(&mut self, time: Timestamp, old: Status, new: Status);
}

/// Accumulates day times, splitting at day boundaries and keeping only `keep` days (or all).
struct DayAccumulator<'a> {
    days: &'a mut DayCache,
    times: DayTimes,
    /// Only the day starting at this instant counts, when set.
    only_day: Option<Timestamp>,
    /// Class changes, for the trailing-window log.
    classes: Option<&'a mut ClassLog>,
}

impl DayAccumulator<'_> {
    /// Adds `[start, end)`, which lies within the day starting at `day`.
    fn add(&mut self, day: Timestamp, start: Timestamp, end: Timestamp, state: State) {
        let span = end - start;
        let Some(times) = self.times_of(day) else {
            return;
        };
        if state.status != Status::LoggedOut {
            times.logged_in += span;
        }
        match state.class {
            Class::Handling => times.handling += span,
            Class::Idle => times.idle += span,
            Class::Paused | Class::Out => {}
        }
        if let Status::Pause(reason) = state.status {
            times.pause_entry(reason).1 += span;
        }
    }

    fn day_for(&mut self, time: Timestamp) -> Option<&mut DayTimes> {
        let day = self.days.day_of(time).start;
        self.times_of(day)
    }

    /// The times of the day starting at `day`, if that day counts.
    fn times_of(&mut self, day: Timestamp) -> Option<&mut DayTimes> {
        if self.only_day.is_some_and(|only| only != day) {
            return None;
        }
        if self.times.day_start != day {
            self.times = DayTimes::for_day(day);
        }
        Some(&mut self.times)
    }
}

impl WalkSink for DayAccumulator<'_> {
    fn segment(&mut self, mut start: Timestamp, end: Timestamp, state: State) {
        if let Some(log) = self.classes.as_deref_mut()
            && log.last_class() != Some(state.class)
        {
            log.push(start, state.class);
        }
        if state.status == Status::LoggedOut && state.class == Class::Out {
            return; // Nothing accumulates while logged out and idle.
        }
        if let Some(only) = self.only_day {
            // Only one day counts: clamp instead of walking day by day from far away.
            let day = self.days.day_of(only);
            start = start.max(day.start);
            let end = end.min(day.end);
            if start < end {
                self.add(day.start, start, end, state);
            }
            return;
        }
        while start < end {
            let day = self.days.day_of(start);
            let stop = end.min(day.end);
            self.add(day.start, start, stop, state);
            start = stop;
        }
    }

    fn status_change(&mut self, time: Timestamp, old: Status, new: Status) {
        let Some(times) = self.day_for(time) else {
            return;
        };
        if let Status::Pause(reason) = new
            && old != new
        {
            times.pause_entry(reason).2 += 1;
        }
        if old == Status::LoggedOut && new != Status::LoggedOut {
            let first = times.first_login().map_or(time, |first| first.min(time));
            times.first_login = MaybeTime::from(Some(first));
        }
        if old != Status::LoggedOut && new == Status::LoggedOut {
            // Changes come in time order: the latest one is the last.
            times.last_logout = MaybeTime::from(Some(time));
        }
    }
}

/// The live state of an advisor at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveState {
    pub display: Display,
    pub status: Status,
    pub since: Option<Timestamp>,
    /// When the advisor's longest contact in progress began, if any.
    pub contact_start: Option<Timestamp>,
}

/// An advisor: identity, timeline and tallies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Advisor {
    /// Team from the latest login that named one, by event time.
    pub login_team: Option<(Timestamp, u32)>,
    /// Display name from the latest login that gave one.
    pub name: Option<(Timestamp, Box<str>)>,
    pub tally: AdvisorLog,
    /// Status changes after the horizon, in order: rare, so kept behind a pointer (8 bytes
    /// here) and given back once empty.
    #[allow(clippy::box_collection, reason = "8 bytes per advisor rather than 24")]
    statuses: Option<Box<Vec<StatusPoint>>>,
    /// Spans after the horizon or still open: usually one or two.
    spans: SmallVec<[TimelineSpan; 4]>,
    /// The state at the horizon (`tally.settled_until()`, which the timeline shares).
    snapshot: SettledSnapshot,
    settled_day: DayTimes,
    /// Class changes before the horizon, covering the longest trailing window.
    class_log: ClassLog,
}

impl Advisor {
    pub(crate) fn new(settled_until: Timestamp) -> Advisor {
        Advisor {
            login_team: None,
            name: None,
            tally: AdvisorLog::new(settled_until),
            statuses: None,
            spans: SmallVec::new(),
            snapshot: SettledSnapshot::pack(Snapshot {
                state: State::INITIAL,
                display_since: None,
            }),
            settled_day: DayTimes::default(),
            class_log: ClassLog::default(),
        }
    }

    pub(crate) fn add_status(&mut self, point: StatusPoint) {
        let key = point.key();
        let statuses = self.statuses.get_or_insert_with(Box::default);
        let position = statuses
            .iter()
            .rposition(|p| p.key() <= key)
            .map_or(0, |p| p + 1);
        statuses.insert(position, point);
    }

    fn statuses(&self) -> &[StatusPoint] {
        self.statuses.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether settling can wait without holding more memory: no status change pending (those
    /// are kept apart), and room in place for another span (an event in order opens at most
    /// one per advisor, and the processor checks again after each event).
    pub(crate) fn can_wait_to_settle(&self) -> bool {
        self.statuses.is_none() && self.spans.len() < self.spans.inline_size()
    }

    /// Asks for what an event of one of the advisor's contacts reads and changes: the head of
    /// their log and their spans. Not the rest (what settling reads): asking for every line of
    /// every advisor ahead keeps more lines in flight than the processor fetches at once, and
    /// the look-ahead then waits (`apply_all` on the 10,000-advisor day: 5% faster so).
    pub(crate) fn prefetch_hot(&self) {
        self.tally.prefetch_header();
        crate::prefetch::value(&self.spans);
    }

    /// Reads what an event of one of the advisor's contacts changes (see `apply_inner`).
    pub(crate) fn touch(&self) {
        std::hint::black_box((self.spans.len(), self.tally.len()));
    }

    pub(crate) fn add_span(&mut self, span: &Span) {
        self.spans.push(TimelineSpan::new(span));
    }

    pub(crate) fn remove_span(&mut self, span: &Span) {
        // A span that ended before the horizon was already dropped; it cannot have changed.
        let span = TimelineSpan::new(span);
        if let Some(position) = self.spans.iter().position(|s| *s == span) {
            self.spans.swap_remove(position);
        }
    }

    /// Walks `[self.settled_until, to)` (or to `to` included for `inclusive`), reporting
    /// segments and status changes, and returns the state and display-since at the end.
    fn walk(&self, to: Timestamp, inclusive: bool, sink: &mut impl WalkSink) -> Snapshot {
        let from = self.settled_until();
        let in_range = |t: Timestamp| t >= from && (t < to || (inclusive && t == to));
        // One sweep over the instants something changes, in time order, keeping the count of
        // spans in progress by phase: a span is in progress over `[start, end)`, so it counts
        // from the start and stops counting at its end.
        let mut counts = [0u32; 4];
        let mut changes: SmallVec<[(Timestamp, Change); 16]> = SmallVec::new();
        let statuses = self.statuses();
        for point in statuses {
            if in_range(point.time) {
                changes.push((point.time, Change::Status));
            }
        }
        for span in &self.spans {
            let end = span.end();
            if end.is_some_and(|end| end <= span.start) {
                continue; // Never in progress.
            }
            if span.start < from {
                // Begun before the walk: counts from the outset unless it ended before.
                if end.is_none_or(|end| end >= from) {
                    counts[span.phase as usize] += 1;
                }
            } else if in_range(span.start) {
                changes.push((span.start, Change::Starts(span.phase)));
            }
            if let Some(end) = end
                && in_range(end)
            {
                changes.push((end, Change::Ends(span.phase)));
            }
        }
        changes.sort_unstable_by_key(|(time, _)| *time);

        let mut snapshot = self.snapshot.unpack();
        // Segments of the same state are reported as one, from `run_start`; a status change
        // is reported after the segment before it (day times are kept one day at a time).
        let mut run_start = from;
        let mut next_status = 0;
        let mut next_change = 0;
        while let Some(&(change, _)) = changes.get(next_change) {
            while let Some((_, what)) = changes.get(next_change).filter(|(t, _)| *t == change) {
                match *what {
                    Change::Starts(phase) => counts[phase as usize] += 1,
                    Change::Ends(phase) => counts[phase as usize] -= 1,
                    Change::Status => {}
                }
                next_change += 1;
            }
            let mut status = snapshot.state.status;
            if statuses.get(next_status).is_some_and(|p| p.time <= change) {
                if run_start < change {
                    sink.segment(run_start, change, snapshot.state);
                    run_start = change;
                }
                while let Some(point) = statuses.get(next_status).filter(|p| p.time <= change) {
                    if point.time >= from {
                        sink.status_change(point.time, status, point.status());
                    }
                    status = point.status();
                    next_status += 1;
                }
            }
            let state = State::from_counts(status, counts);
            if state != snapshot.state {
                if run_start < change {
                    sink.segment(run_start, change, snapshot.state);
                }
                run_start = change;
                if state.display != snapshot.state.display {
                    snapshot.display_since = Some(change);
                }
                snapshot.state = state;
            }
        }
        if run_start < to {
            sink.segment(run_start, to, snapshot.state);
        }
        snapshot
    }

    /// Makes everything before `until` final, keeping the class log from `keep_from`.
    pub(crate) fn settle(&mut self, until: Timestamp, keep_from: Timestamp, days: &mut DayCache) {
        if until > self.settled_until() {
            self.settle_timeline(until, keep_from, days);
        }
        // Last: the tally's horizon is the timeline's.
        self.tally.settle(until, keep_from, (), days);
    }

    fn settle_timeline(&mut self, until: Timestamp, keep_from: Timestamp, days: &mut DayCache) {
        let mut class_log = std::mem::take(&mut self.class_log);
        let mut accumulator = DayAccumulator {
            days,
            times: std::mem::take(&mut self.settled_day),
            only_day: None,
            classes: Some(&mut class_log),
        };
        let snapshot = self.walk(until, false, &mut accumulator);
        self.settled_day = accumulator.times;
        self.class_log = class_log;
        self.snapshot = SettledSnapshot::pack(snapshot);
        if let Some(statuses) = &mut self.statuses {
            statuses.retain(|p| p.time >= until);
            if statuses.is_empty() {
                self.statuses = None;
            }
        }
        // A span ending exactly at `until` still has its end to apply.
        self.spans
            .retain(|s| s.end().is_none_or(|end| end >= until));
        if self.spans.spilled() && self.spans.len() <= self.spans.inline_size() {
            self.spans.shrink_to_fit();
        }
        self.class_log.prune(keep_from);
    }

    /// The state at `now` (all changes up to `now` included).
    pub(crate) fn live(&self, now: Timestamp) -> LiveState {
        struct Nothing;
        impl WalkSink for Nothing {
            fn segment(&mut self, _: Timestamp, _: Timestamp, _: State) {}
            fn status_change(&mut self, _: Timestamp, _: Status, _: Status) {}
        }
        let snapshot = self.walk(now, true, &mut Nothing);
        let active = |span: &&TimelineSpan| span.active(now);
        let in_conversation = self
            .spans
            .iter()
            .filter(active)
            .filter(|s| matches!(s.phase, Phase::Talking | Phase::OnHold))
            .map(|s| s.leg_start)
            .min();
        let contact_start = in_conversation.or_else(|| {
            self.spans
                .iter()
                .filter(active)
                .filter(|s| s.phase == Phase::Acw)
                .map(|s| s.leg_start)
                .min()
        });
        LiveState {
            display: snapshot.state.display,
            status: snapshot.state.status,
            since: snapshot.display_since,
            contact_start,
        }
    }

    /// Times accumulated over `day` up to `now`.
    pub(crate) fn day_times(&self, day: Day, now: Timestamp, days: &mut DayCache) -> DayTimes {
        let settled = if self.settled_day.day_start == day.start {
            self.settled_day.clone()
        } else {
            DayTimes::for_day(day.start)
        };
        let mut accumulator = DayAccumulator {
            days,
            times: settled,
            only_day: Some(day.start),
            classes: None,
        };
        if now >= self.settled_until() {
            self.walk(now, true, &mut accumulator);
        }
        accumulator.times
    }

    /// Times accumulated over `day` before `at` (excluded): time from `at` on, and a status
    /// change at `at`, belong to what follows (the half-open span `[day.start, at)`). Exact
    /// when `at` is at or after the settled horizon, or when [`Advisor::folded_from`] says the
    /// settled part holds nothing of `day`.
    pub(crate) fn day_times_before(
        &self,
        day: Day,
        at: Timestamp,
        days: &mut DayCache,
    ) -> DayTimes {
        let settled = if self.settled_day.day_start == day.start {
            self.settled_day.clone()
        } else {
            DayTimes::for_day(day.start)
        };
        let mut accumulator = DayAccumulator {
            days,
            times: settled,
            only_day: Some(day.start),
            classes: None,
        };
        if at >= self.settled_until() {
            self.walk(at, false, &mut accumulator);
        }
        accumulator.times
    }

    /// Whether the settled part of the timeline or of the tally holds something of the day
    /// starting at `day_start` or of a later day: if not, that day has nothing before the
    /// settled horizon (the timeline accumulates into a day, status changes included, as soon
    /// as anything of it counts), and its figures up to any instant are still exact.
    pub(crate) fn folded_from(&self, day_start: Timestamp) -> bool {
        let timeline = &self.settled_day;
        let timeline_folded = timeline.day_start > day_start
            || (timeline.day_start == day_start && *timeline != DayTimes::for_day(day_start));
        timeline_folded || self.tally.settled_day() >= day_start
    }

    /// Start of the latest day the settled timeline or tally holds (for error messages).
    pub(crate) fn folded_day(&self) -> Timestamp {
        self.settled_day.day_start.max(self.tally.settled_day())
    }

    /// Handling and idle time within `(after, now]`, for occupancy over a trailing window.
    pub(crate) fn occupancy_times(&self, after: Timestamp, now: Timestamp) -> (Millis, Millis) {
        struct Classes(SmallVec<[(Timestamp, Timestamp, Class); 16]>);
        impl WalkSink for Classes {
            fn segment(&mut self, start: Timestamp, end: Timestamp, state: State) {
                self.0.push((start, end, state.class));
            }
            fn status_change(&mut self, _: Timestamp, _: Status, _: Status) {}
        }
        let mut handling = Millis::ZERO;
        let mut idle = Millis::ZERO;
        let mut add = |start: Timestamp, end: Timestamp, class: Class| {
            let (start, end) = (start.max(after), end.min(now));
            if start < end {
                match class {
                    Class::Handling => handling += end - start,
                    Class::Idle => idle += end - start,
                    Class::Paused | Class::Out => {}
                }
            }
        };
        let mut previous: Option<(Timestamp, Class)> = None;
        for (time, class) in self.class_log.iter() {
            if let Some((start, class)) = previous {
                add(start, time, class);
            }
            previous = Some((time, class));
        }
        if let Some((start, class)) = previous {
            add(start, self.settled_until(), class);
        }
        if now >= self.settled_until() {
            let mut classes = Classes(SmallVec::new());
            self.walk(now, false, &mut classes);
            for (start, end, class) in classes.0 {
                add(start, end, class);
            }
        }
        (handling, idle)
    }

    /// Whether a decoded advisor (a snapshot) is one the processor could have built: the team
    /// and pause reasons it names are among the first `teams` and `reasons` interned (views
    /// look their names up), its tally is consistent, and its class log ends before its
    /// horizon (settling appends after it).
    pub(crate) fn is_consistent(&self, teams: usize, reasons: usize) -> bool {
        let reason_known = |reason: ReasonIdx| (reason as usize) < reasons;
        let status_known = |status: Status| match status {
            Status::Pause(reason) => reason_known(reason),
            Status::LoggedOut | Status::Available => true,
        };
        let settled = self.snapshot.unpack();
        let display_known = match settled.state.display {
            Display::Pause(reason) => reason_known(reason),
            _ => true,
        };
        self.login_team
            .is_none_or(|(_, team)| (team as usize) < teams)
            && self
                .statuses()
                .iter()
                .all(|point| status_known(point.status()))
            && status_known(settled.state.status)
            && display_known
            && self
                .settled_day
                .pauses
                .iter()
                .all(|(reason, _, _)| reason_known(*reason))
            && self.tally.is_consistent()
            && (self.class_log.entries.is_empty()
                || (self.class_log.first <= self.class_log.last
                    && self.class_log.last <= self.settled_until()))
    }

    /// The timeline before this instant is final.
    pub(crate) fn settled_until(&self) -> Timestamp {
        self.tally.settled_until()
    }

    /// Items kept in memory (for memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.tally.heap_bytes()
            + self.statuses.as_ref().map_or(0, |statuses| {
                size_of::<Vec<StatusPoint>>() + statuses.capacity() * size_of::<StatusPoint>()
            })
            + if self.spans.spilled() {
                self.spans.capacity() * size_of::<TimelineSpan>()
            } else {
                0
            }
            + self.class_log.heap_bytes()
            + self.name.as_ref().map_or(0, |(_, name)| name.len())
            + if self.settled_day.pauses.spilled() {
                self.settled_day.pauses.capacity() * 24
            } else {
                0
            }
    }

    pub(crate) fn kept_items(&self) -> usize {
        self.statuses().len() + self.spans.len() + self.class_log.len() + self.tally.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp(secs * 1000)
    }

    fn day_of(t: Timestamp) -> Day {
        days().day_of(t)
    }

    fn days() -> DayCache {
        DayCache::new(crate::time::DayCalendar::new(
            chrono_tz::UTC,
            chrono::NaiveTime::MIN,
        ))
    }

    fn status(secs: i64, status: Status) -> StatusPoint {
        StatusPoint::new(at(secs), 1, secs as u64, status)
    }

    fn span(phase: Phase, start: i64, end: Option<i64>) -> Span {
        Span {
            advisor: 0,
            phase,
            start: at(start),
            end: end.map(at),
            leg_start: at(start),
        }
    }

    fn advisor() -> Advisor {
        let mut advisor = Advisor::new(at(0));
        advisor.add_status(status(10, Status::Available));
        advisor.add_span(&span(Phase::Talking, 100, Some(200)));
        advisor.add_span(&span(Phase::Acw, 200, Some(230)));
        advisor.add_status(status(300, Status::Pause(4)));
        advisor.add_status(status(400, Status::Available));
        advisor
    }

    #[test]
    fn integrates_the_day_and_reports_live_state() {
        let advisor = advisor();
        let day = day_of(at(500));
        let times = advisor.day_times(day, at(500), &mut days());
        assert_eq!(times.logged_in, Millis::from_secs(490));
        assert_eq!(times.handling, Millis::from_secs(130));
        assert_eq!(times.idle, Millis::from_secs(90 + 70 + 100));
        assert_eq!(times.pauses.as_slice(), &[(4, Millis::from_secs(100), 1)]);
        assert_eq!(times.first_login(), Some(at(10)));
        let live = advisor.live(at(150));
        assert_eq!(live.display, Display::Talking);
        assert_eq!(live.since, Some(at(100)));
        assert_eq!(live.contact_start, Some(at(100)));
        let live = advisor.live(at(350));
        assert_eq!(live.display, Display::Pause(4));
        assert_eq!(live.since, Some(at(300)));
        assert_eq!(live.contact_start, None);
    }

    #[test]
    fn settling_in_steps_changes_nothing() {
        let whole = advisor();
        let mut stepped = advisor();
        for until in [5, 100, 150, 230, 231, 399, 450] {
            stepped.settle(at(until), at(0), &mut days());
            let day = day_of(at(500));
            assert_eq!(
                stepped.day_times(day, at(500), &mut days()),
                whole.day_times(day, at(500), &mut days())
            );
            assert_eq!(stepped.live(at(500)), whole.live(at(500)));
            for after in [0, 120, 210, 420] {
                assert_eq!(
                    stepped.occupancy_times(at(after), at(500)),
                    whole.occupancy_times(at(after), at(500)),
                    "settled to {until}, window after {after}"
                );
            }
        }
        assert_eq!(
            whole.occupancy_times(at(0), at(500)),
            (Millis::from_secs(130), Millis::from_secs(260))
        );
    }

    #[test]
    fn a_day_boundary_restarts_the_times() {
        let mut advisor = Advisor::new(at(0));
        advisor.add_status(status(86_000, Status::Available));
        advisor.settle(at(86_500), at(0), &mut days());
        let today = day_of(at(86_500));
        let times = advisor.day_times(today, at(87_000), &mut days());
        assert_eq!(times.logged_in, Millis::from_secs(600));
        assert_eq!(times.first_login(), None, "the login was yesterday");
    }
}
