//! A contact's life, derived from the set of its events.
//!
//! Events may arrive in any order within the allowed lateness, so a contact keeps its events
//! ("facts") sorted by time and re-derives everything from them: the records it contributes
//! to queue and advisor tallies, the phases its advisors spend on it, and whether it waits in a
//! queue. The derivation is a left-to-right fold, so a fact at time `t` can only change what
//! is derived at or after `t`: what lies before the settled horizon never changes.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::event::{Channel, DequeueReason};
use crate::time::{Millis, Timestamp};

/// Index of an interned queue.
pub(crate) type QueueIdx = u32;
/// Index of an interned advisor.
pub(crate) type AdvisorIdx = u32;

/// A queue and a channel: the finest unit queue indicators are kept at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct QueueChannel {
    pub queue: QueueIdx,
    pub channel: Channel,
}

/// The kinds of contact facts, with the lifecycle rank that orders facts of equal time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FactKind {
    Queued,
    Offered,
    Missed,
    Answered,
    Held,
    Resumed,
    Transferred,
    Abandoned,
    Dequeued(DequeueReason),
    Ended,
    Completed,
}

impl FactKind {
    /// Order of facts that share a millisecond: the order of a contact's life.
    fn rank(self) -> u8 {
        match self {
            FactKind::Queued => 0,
            FactKind::Offered => 1,
            FactKind::Missed => 2,
            FactKind::Answered => 3,
            FactKind::Held => 4,
            FactKind::Resumed => 5,
            FactKind::Transferred => 6,
            FactKind::Abandoned => 7,
            FactKind::Dequeued(_) => 8,
            FactKind::Ended => 9,
            FactKind::Completed => 10,
        }
    }
}

impl FactKind {
    /// The kind in 4 bits.
    fn code(self) -> u32 {
        match self {
            FactKind::Dequeued(reason) => 11 + reason as u32,
            kind => u32::from(kind.rank()),
        }
    }

    fn from_code(code: u32) -> FactKind {
        match code {
            0 => FactKind::Queued,
            1 => FactKind::Offered,
            2 => FactKind::Missed,
            3 => FactKind::Answered,
            4 => FactKind::Held,
            5 => FactKind::Resumed,
            6 => FactKind::Transferred,
            7 => FactKind::Abandoned,
            9 => FactKind::Ended,
            10 => FactKind::Completed,
            code => FactKind::Dequeued(DequeueReason::ALL[(code.wrapping_sub(11) & 3) as usize]),
        }
    }
}

/// The most advisors (and queues) a site may have: facts keep their indices in 28 bits. Each
/// name is held in memory with the state behind it, so no site comes near.
pub(crate) const MAX_INDEXED_NAMES: usize = (1 << 28) - 1;

/// One event of a contact, reduced to what the derivation needs: 24 bytes, the kind, advisor,
/// queue and channel packed in two words (see the accessors).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fact {
    pub time: Timestamp,
    /// Tie-breaker among facts of equal time and rank: a hash of the event id.
    pub tie: u64,
    /// The kind's code (low 4 bits) and the advisor index plus one above (0: none).
    kind_advisor: u32,
    /// The channel plus one (low 4 bits, 0: none) and the queue index plus one above (0: none).
    channel_queue: u32,
}

impl Fact {
    /// `queue` is the queue entered (`queued`, `transferred` to a queue) or a hint
    /// (`answered`). Indices are below [`MAX_INDEXED_NAMES`].
    pub(crate) fn new(
        time: Timestamp,
        tie: u64,
        kind: FactKind,
        advisor: Option<AdvisorIdx>,
        queue: Option<QueueIdx>,
        channel: Option<Channel>,
    ) -> Fact {
        let index = |index: Option<u32>| {
            index.map_or(0, |index| {
                debug_assert!((index as usize) < MAX_INDEXED_NAMES);
                (index + 1) << 4
            })
        };
        Fact {
            time,
            tie,
            kind_advisor: index(advisor) | kind.code(),
            channel_queue: index(queue) | channel.map_or(0, |channel| channel as u32 + 1),
        }
    }

    pub(crate) fn kind(&self) -> FactKind {
        FactKind::from_code(self.kind_advisor & 15)
    }

    pub(crate) fn advisor(&self) -> Option<AdvisorIdx> {
        (self.kind_advisor >> 4).checked_sub(1)
    }

    pub(crate) fn queue(&self) -> Option<QueueIdx> {
        (self.channel_queue >> 4).checked_sub(1)
    }

    pub(crate) fn channel(&self) -> Option<Channel> {
        match self.channel_queue & 15 {
            0 => None,
            code => Channel::ALL.get(code as usize - 1).copied(),
        }
    }

    /// Whether the queue and advisor it names are among `queues` and `advisors` (the first
    /// ones interned): a decoded snapshot is checked before anything indexes with them.
    pub(crate) fn indices_below(&self, queues: usize, advisors: usize) -> bool {
        self.queue().is_none_or(|queue| (queue as usize) < queues)
            && self
                .advisor()
                .is_none_or(|advisor| (advisor as usize) < advisors)
    }

    fn sort_key(&self) -> (Timestamp, u8, u64) {
        // The rank, straight from the code: dequeued kinds (11 to 14) rank 8, others their code.
        let code = (self.kind_advisor & 15) as u8;
        (self.time, if code > 10 { 8 } else { code }, self.tie)
    }
}

impl std::fmt::Debug for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fact")
            .field("time", &self.time)
            .field("tie", &self.tie)
            .field("kind", &self.kind())
            .field("advisor", &self.advisor())
            .field("queue", &self.queue())
            .field("channel", &self.channel())
            .finish()
    }
}

/// Inserts a fact at its place in time order (usually the end).
#[cfg(test)]
pub(crate) fn insert_fact(facts: &mut Vec<Fact>, fact: Fact) {
    let position = fact_position(facts, &fact);
    facts.insert(position, fact);
}

/// Where a fact goes among facts in time order (usually at the end).
pub(crate) fn fact_position(facts: &[Fact], fact: &Fact) -> usize {
    let key = fact.sort_key();
    facts
        .iter()
        .rposition(|f| f.sort_key() <= key)
        .map_or(0, |p| p + 1)
}

/// How a wait in a queue ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Answered,
    Abandoned,
    Dequeued(DequeueReason),
    /// Moved to another queue without being answered.
    FlowedOut,
}

/// What a contact contributes to tallies, each at the instant it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Entered a queue.
    Offer { qc: QueueChannel, time: Timestamp },
    /// Left a queue after waiting `wait`.
    Left {
        qc: QueueChannel,
        time: Timestamp,
        wait: Millis,
        outcome: Outcome,
    },
    /// An advisor completed their part of the contact (after-contact work done).
    Handled {
        advisor: AdvisorIdx,
        qc: Option<QueueChannel>,
        time: Timestamp,
        talk: Millis,
        hold: Millis,
        acw: Millis,
        held: bool,
    },
    /// An advisor transferred the contact.
    Transfer {
        advisor: AdvisorIdx,
        qc: Option<QueueChannel>,
        time: Timestamp,
    },
    /// An offer to an advisor went unanswered.
    Missed {
        advisor: AdvisorIdx,
        time: Timestamp,
    },
}

/// What an advisor is doing with a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Phase {
    Offered,
    Talking,
    OnHold,
    Acw,
}

/// A period an advisor spends in one phase of one contact; `end` is `None` while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub advisor: AdvisorIdx,
    pub phase: Phase,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// When the advisor's part of the contact began (answer, or offer for ringing).
    pub leg_start: Timestamp,
}

/// A contact waiting in a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiting {
    pub qc: QueueChannel,
    pub since: Timestamp,
}

/// Everything derived from a contact's facts. Transient: the processor re-derives it into
/// reused buffers rather than storing it per contact.
///
/// Derived from all the facts ([`derive_into`]), `spans` are all the contact's spans and
/// `ended` is empty. From one step ([`FoldState::step`]), they are what the step changed:
/// `spans` the spans it closed and those it opened, `ended` the open spans it closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Derived {
    pub records: Vec<Record>,
    pub spans: Vec<Span>,
    pub ended: Vec<Span>,
    pub waiting: Option<Waiting>,
    /// When the contact's life ended (nothing left open), if it has.
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum LegPhase {
    Talking,
    OnHold,
    Acw,
}

/// An advisor's part of a contact in progress: 40 bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Leg {
    advisor: AdvisorIdx,
    qc: Option<QueueChannel>,
    answered_at: Timestamp,
    /// Since when the leg is in its phase.
    since: Timestamp,
    /// Talk and hold so far, in ms, saturating as the tallies keep them (at 49 days).
    talk: u32,
    hold: u32,
    held: bool,
    /// Whether this leg's transfer was already counted.
    transferred: bool,
    phase: LegPhase,
}

/// A span's length in ms, saturating at `u32::MAX` as tallies keep it.
fn ms(span: Millis) -> u32 {
    u32::try_from(span.0.max(0)).unwrap_or(u32::MAX)
}

/// Where a contact's life stands after its facts so far: enough to go on with one more fact
/// that comes after all the others (the usual case) without re-reading them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct FoldState {
    channel: Option<Channel>,
    waiting: Option<Waiting>,
    offers: SmallVec<[(AdvisorIdx, Timestamp); 1]>,
    legs: SmallVec<[Leg; 1]>,
    /// When the last thing open closed, while nothing is open.
    finished_at: Option<Timestamp>,
}

impl FoldState {
    /// When the contact's life ended (nothing left open), if it has.
    pub(crate) fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }

    /// The spans still open (offers ringing, legs in progress), cut at `end` if given.
    pub(crate) fn open_spans(&self, end: Option<Timestamp>, out: &mut Vec<Span>) {
        for (advisor, since) in &self.offers {
            out.push(Span {
                advisor: *advisor,
                phase: Phase::Offered,
                start: *since,
                end,
                leg_start: *since,
            });
        }
        for leg in &self.legs {
            let phase = match leg.phase {
                LegPhase::Talking => Phase::Talking,
                LegPhase::OnHold => Phase::OnHold,
                LegPhase::Acw => Phase::Acw,
            };
            out.push(Span {
                advisor: leg.advisor,
                phase,
                start: leg.since,
                end,
                leg_start: leg.answered_at,
            });
        }
    }

    /// Whether the queues and advisors it names are among `queues` and `advisors` (see
    /// [`Fact::indices_below`]).
    pub(crate) fn indices_below(&self, queues: usize, advisors: usize) -> bool {
        let queue_known = |qc: QueueChannel| (qc.queue as usize) < queues;
        let advisor_known = |advisor: AdvisorIdx| (advisor as usize) < advisors;
        self.waiting.is_none_or(|waiting| queue_known(waiting.qc))
            && self
                .offers
                .iter()
                .all(|(advisor, _)| advisor_known(*advisor))
            && self
                .legs
                .iter()
                .all(|leg| advisor_known(leg.advisor) && leg.qc.is_none_or(queue_known))
    }

    /// The queue the contact waits in, if any.
    pub(crate) fn waiting(&self) -> Option<Waiting> {
        self.waiting
    }

    /// Applies one fact that comes after every fact already applied: the records, the spans
    /// it closes and opens, and the open spans it closes are appended to `out` (see
    /// [`Derived`]), and `out.finished_at` tells whether the contact's life is over.
    pub(crate) fn step(&mut self, fact: &Fact, out: &mut Derived) {
        Fold {
            state: self,
            out,
            stepping: true,
        }
        .apply(fact);
    }
}

struct Fold<'a> {
    state: &'a mut FoldState,
    out: &'a mut Derived,
    /// One step after the others: the open spans that change are reported too (see
    /// [`Derived`]), so that nothing needs comparing the open spans before and after.
    stepping: bool,
}

/// An offer ringing since `since`.
fn ringing(advisor: AdvisorIdx, since: Timestamp) -> Span {
    Span {
        advisor,
        phase: Phase::Offered,
        start: since,
        end: None,
        leg_start: since,
    }
}

impl Fold<'_> {
    fn channel(&self) -> Channel {
        self.state.channel.unwrap_or(Channel::Voice)
    }

    /// The open span `open` closes at `end`.
    fn close(&mut self, open: Span, end: Timestamp) {
        if self.stepping {
            // Opened by this same step, it was never reported open.
            match self.out.spans.iter().position(|span| *span == open) {
                Some(position) => {
                    self.out.spans.remove(position);
                }
                None => self.out.ended.push(open),
            }
        }
        self.out.spans.push(Span {
            end: Some(end),
            ..open
        });
    }

    /// The open span `open` begins.
    fn open(&mut self, open: Span) {
        if self.stepping {
            self.out.spans.push(open);
        }
    }

    fn end_offers(&mut self, time: Timestamp) {
        for (advisor, since) in std::mem::take(&mut self.state.offers) {
            self.close(ringing(advisor, since), time);
        }
    }

    fn end_offer(&mut self, advisor: AdvisorIdx, time: Timestamp) {
        if let Some(position) = self.state.offers.iter().position(|(a, _)| *a == advisor) {
            let (_, since) = self.state.offers.remove(position);
            self.close(ringing(advisor, since), time);
        }
    }

    /// The contact leaves the queue it waits in (if any); its rings end with the wait.
    fn leave_queue(&mut self, time: Timestamp, outcome: Outcome) -> Option<QueueChannel> {
        let waiting = self.state.waiting.take()?;
        self.out.records.push(Record::Left {
            qc: waiting.qc,
            time,
            wait: time - waiting.since,
            outcome,
        });
        self.end_offers(time);
        Some(waiting.qc)
    }

    fn enter_queue(&mut self, queue: QueueIdx, time: Timestamp) {
        let qc = QueueChannel {
            queue,
            channel: self.channel(),
        };
        self.state.waiting = Some(Waiting { qc, since: time });
        self.out.records.push(Record::Offer { qc, time });
    }

    /// The leg currently in conversation (talking or on hold).
    fn active_leg(&self) -> Option<usize> {
        self.state
            .legs
            .iter()
            .position(|leg| leg.phase != LegPhase::Acw)
    }

    /// Ends the conversation of leg `index` at `time`: the advisor starts after-contact work.
    fn end_conversation(&mut self, index: usize, time: Timestamp) {
        let leg = &mut self.state.legs[index];
        let since = leg.since;
        let span = match leg.phase {
            LegPhase::Talking => {
                leg.talk = leg.talk.saturating_add(ms(time - since));
                (Phase::Talking, since)
            }
            LegPhase::OnHold => {
                leg.hold = leg.hold.saturating_add(ms(time - since));
                (Phase::OnHold, since)
            }
            LegPhase::Acw => return,
        };
        leg.phase = LegPhase::Acw;
        leg.since = time;
        let (advisor, leg_start) = (leg.advisor, leg.answered_at);
        let (phase, since) = span;
        self.close(
            Span {
                advisor,
                phase,
                start: since,
                end: None,
                leg_start,
            },
            time,
        );
        self.open(Span {
            advisor,
            phase: Phase::Acw,
            start: time,
            end: None,
            leg_start,
        });
    }

    /// The advisor of leg `index` transfers the contact at `time`: their conversation ends.
    fn transfer(&mut self, index: usize, time: Timestamp) {
        let leg = &mut self.state.legs[index];
        if !leg.transferred {
            leg.transferred = true;
            let (advisor, qc) = (leg.advisor, leg.qc);
            self.out
                .records
                .push(Record::Transfer { advisor, qc, time });
        }
        self.end_conversation(index, time);
    }

    /// Completes leg `index` at `time` (ending its conversation first if needed).
    fn complete(&mut self, index: usize, time: Timestamp) {
        self.end_conversation(index, time);
        let leg = self.state.legs.remove(index);
        debug_assert_eq!(
            leg.phase,
            LegPhase::Acw,
            "end_conversation always leaves the leg in after-contact work"
        );
        let acw_since = leg.since;
        self.close(
            Span {
                advisor: leg.advisor,
                phase: Phase::Acw,
                start: acw_since,
                end: None,
                leg_start: leg.answered_at,
            },
            time,
        );
        self.out.records.push(Record::Handled {
            advisor: leg.advisor,
            qc: leg.qc,
            time,
            talk: Millis(i64::from(leg.talk)),
            hold: Millis(i64::from(leg.hold)),
            acw: time - acw_since,
            held: leg.held,
        });
    }

    fn apply(&mut self, fact: &Fact) {
        let time = fact.time;
        if self.state.channel.is_none() {
            self.state.channel = fact.channel();
        }
        match fact.kind() {
            FactKind::Queued => {
                let Some(queue) = fact.queue() else { return };
                if self.state.waiting.is_some_and(|w| w.qc.queue == queue) {
                    return; // Entering the queue it already waits in: a repeat, not a new offer.
                }
                self.leave_queue(time, Outcome::FlowedOut);
                if let Some(active) = self.active_leg() {
                    // Back to a queue while talking: the advisor transferred it.
                    self.transfer(active, time);
                }
                // Each wait has the channel its `contact.queued` names.
                self.state.channel = fact.channel().or(self.state.channel);
                self.enter_queue(queue, time);
            }
            FactKind::Offered => {
                if let Some(advisor) = fact.advisor()
                    && !self.state.offers.iter().any(|(a, _)| *a == advisor)
                {
                    self.state.offers.push((advisor, time));
                    self.open(ringing(advisor, time));
                }
            }
            FactKind::Missed => {
                if let Some(advisor) = fact.advisor() {
                    self.end_offer(advisor, time);
                    self.out.records.push(Record::Missed { advisor, time });
                }
            }
            FactKind::Answered => {
                let Some(advisor) = fact.advisor() else {
                    return;
                };
                self.end_offers(time);
                if let Some(active) = self.active_leg() {
                    if self.state.legs[active].advisor == advisor && self.state.waiting.is_none() {
                        return; // Answered again by the advisor already talking: a repeat.
                    }
                    // Someone else picks up: the previous advisor's conversation is over.
                    self.end_conversation(active, time);
                }
                let channel = fact.channel().unwrap_or(self.channel());
                let qc = self
                    .leave_queue(time, Outcome::Answered)
                    .or_else(|| fact.queue().map(|queue| QueueChannel { queue, channel }));
                self.state.legs.push(Leg {
                    advisor,
                    qc,
                    answered_at: time,
                    since: time,
                    talk: 0,
                    hold: 0,
                    held: false,
                    transferred: false,
                    phase: LegPhase::Talking,
                });
                self.open(Span {
                    advisor,
                    phase: Phase::Talking,
                    start: time,
                    end: None,
                    leg_start: time,
                });
            }
            FactKind::Held => {
                if let Some(active) = self.active_leg() {
                    let leg = &mut self.state.legs[active];
                    if leg.phase == LegPhase::Talking {
                        let since = leg.since;
                        leg.talk = leg.talk.saturating_add(ms(time - since));
                        leg.phase = LegPhase::OnHold;
                        leg.since = time;
                        leg.held = true;
                        let (advisor, leg_start) = (leg.advisor, leg.answered_at);
                        let talking = Span {
                            advisor,
                            phase: Phase::Talking,
                            start: since,
                            end: None,
                            leg_start,
                        };
                        self.close(talking, time);
                        self.open(Span {
                            phase: Phase::OnHold,
                            start: time,
                            ..talking
                        });
                    }
                }
            }
            FactKind::Resumed => {
                if let Some(active) = self.active_leg() {
                    let leg = &mut self.state.legs[active];
                    if leg.phase == LegPhase::OnHold {
                        let since = leg.since;
                        leg.hold = leg.hold.saturating_add(ms(time - since));
                        leg.phase = LegPhase::Talking;
                        leg.since = time;
                        let (advisor, leg_start) = (leg.advisor, leg.answered_at);
                        let on_hold = Span {
                            advisor,
                            phase: Phase::OnHold,
                            start: since,
                            end: None,
                            leg_start,
                        };
                        self.close(on_hold, time);
                        self.open(Span {
                            phase: Phase::Talking,
                            start: time,
                            ..on_hold
                        });
                    }
                }
            }
            FactKind::Transferred => {
                // Rings end only if the contact leaves a queue: a transfer by the talking
                // advisor leaves other advisors' rings alone.
                let already_there = |fold: &Fold<'_>| {
                    fact.queue()
                        .is_some_and(|q| fold.state.waiting.is_some_and(|w| w.qc.queue == q))
                };
                if let Some(active) = self.active_leg() {
                    self.transfer(active, time);
                } else if let Some(index) = fact.advisor().and_then(|advisor| {
                    self.state
                        .legs
                        .iter()
                        .position(|leg| leg.advisor == advisor && !leg.transferred)
                }) {
                    // The source ended the advisor's conversation just before the transfer
                    // (or queued the contact in the new queue first): count the transfer.
                    let leg = &mut self.state.legs[index];
                    leg.transferred = true;
                    let (advisor, qc) = (leg.advisor, leg.qc);
                    self.out
                        .records
                        .push(Record::Transfer { advisor, qc, time });
                } else if !already_there(self) {
                    self.leave_queue(time, Outcome::FlowedOut);
                }
                if let Some(queue) = fact.queue()
                    && !already_there(self)
                {
                    self.leave_queue(time, Outcome::FlowedOut);
                    self.enter_queue(queue, time);
                }
            }
            FactKind::Abandoned => {
                self.leave_queue(time, Outcome::Abandoned);
            }
            FactKind::Dequeued(reason) => {
                self.leave_queue(time, Outcome::Dequeued(reason));
            }
            FactKind::Ended => {
                if let Some(active) = self.active_leg()
                    && fact
                        .advisor()
                        .is_none_or(|advisor| advisor == self.state.legs[active].advisor)
                {
                    self.end_conversation(active, time);
                }
            }
            FactKind::Completed => match fact.advisor() {
                Some(advisor) => {
                    // That advisor's leg in after-contact work first, else their conversation.
                    let index = self
                        .state
                        .legs
                        .iter()
                        .position(|leg| leg.advisor == advisor && leg.phase == LegPhase::Acw)
                        .or_else(|| {
                            self.state
                                .legs
                                .iter()
                                .position(|leg| leg.advisor == advisor)
                        });
                    if let Some(index) = index {
                        self.complete(index, time);
                    }
                }
                None => {
                    while !self.state.legs.is_empty() {
                        self.complete(0, time);
                    }
                }
            },
        }
        let open = self.state.waiting.is_some()
            || !self.state.offers.is_empty()
            || !self.state.legs.is_empty();
        // The life ends when its last open part closes; a later fact that changes nothing
        // (an `ended` with nobody talking) does not move the end.
        self.state.finished_at = if open {
            None
        } else {
            self.state.finished_at.or(Some(time))
        };
        self.out.finished_at = self.state.finished_at;
    }
}

/// Derives a contact from its facts (sorted by [`fact_position`]) into `out`, reusing its
/// buffers, and returns where its life stands. With `expired_at`, whatever is still open is
/// cut at that instant.
pub(crate) fn derive_into(
    facts: &[Fact],
    expired_at: Option<Timestamp>,
    out: &mut Derived,
) -> FoldState {
    out.records.clear();
    out.spans.clear();
    out.ended.clear();
    out.finished_at = None;
    let mut state = FoldState::default();
    let mut fold = Fold {
        state: &mut state,
        out,
        stepping: false,
    };
    for fact in facts {
        fold.apply(fact);
    }
    state.open_spans(expired_at, &mut out.spans);
    // Given up, it no longer waits anywhere.
    out.waiting = if expired_at.is_some() {
        None
    } else {
        state.waiting
    };
    state
}

/// Derives a contact from its facts (see [`derive_into`]).
#[cfg(test)]
pub(crate) fn derive(facts: &[Fact], expired_at: Option<Timestamp>) -> Derived {
    let mut out = Derived::default();
    derive_into(facts, expired_at, &mut out);
    out
}

/// Whether `fact` sorts after every fact of `facts` (it can then be applied with
/// [`FoldState::step`]).
pub(crate) fn comes_last(facts: &[Fact], fact: &Fact) -> bool {
    facts
        .last()
        .is_none_or(|last| last.sort_key() <= fact.sort_key())
}

/// Reports the items of `old` missing from `new` (`false`: removed) then those of `new`
/// missing from `old` (`true`: added), as multisets.
pub(crate) fn diff<T: PartialEq + Copy>(old: &[T], new: &[T], mut change: impl FnMut(T, bool)) {
    // Contacts have a handful of items and the common case is a pure append, so a quadratic
    // matching beats sorting; the matches fit a 64-bit mask but for pathological contacts.
    if new.len() > 64 {
        let mut matched = vec![false; new.len()];
        for item in old {
            match new
                .iter()
                .enumerate()
                .position(|(i, n)| !matched[i] && n == item)
            {
                Some(i) => matched[i] = true,
                None => change(*item, false),
            }
        }
        for (item, matched) in new.iter().zip(matched) {
            if !matched {
                change(*item, true);
            }
        }
        return;
    }
    let mut matched: u64 = 0;
    for item in old {
        match new
            .iter()
            .enumerate()
            .position(|(i, n)| matched & (1 << i) == 0 && n == item)
        {
            Some(i) => matched |= 1 << i,
            None => change(*item, false),
        }
    }
    for (i, item) in new.iter().enumerate() {
        if matched & (1 << i) == 0 {
            change(*item, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp(secs * 1000)
    }

    fn fact(secs: i64, kind: FactKind, advisor: Option<u32>, queue: Option<u32>) -> Fact {
        Fact::new(
            at(secs),
            secs as u64,
            kind,
            advisor,
            queue,
            Some(Channel::Voice),
        )
    }

    const QC: QueueChannel = QueueChannel {
        queue: 0,
        channel: Channel::Voice,
    };

    fn sorted(mut facts: Vec<Fact>) -> Vec<Fact> {
        let mut out = Vec::new();
        facts.reverse();
        for f in facts {
            insert_fact(&mut out, f);
        }
        out
    }

    #[test]
    fn a_simple_call_gives_offer_left_and_handled() {
        let facts = sorted(vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(5, FactKind::Offered, Some(7), None),
            fact(8, FactKind::Answered, Some(7), None),
            fact(20, FactKind::Held, None, None),
            fact(50, FactKind::Resumed, None, None),
            fact(100, FactKind::Ended, Some(7), None),
            fact(130, FactKind::Completed, Some(7), None),
        ]);
        let derived = derive(&facts, None);
        assert_eq!(
            derived.records.as_slice(),
            &[
                Record::Offer {
                    qc: QC,
                    time: at(0)
                },
                Record::Left {
                    qc: QC,
                    time: at(8),
                    wait: Millis::from_secs(8),
                    outcome: Outcome::Answered
                },
                Record::Handled {
                    advisor: 7,
                    qc: Some(QC),
                    time: at(130),
                    talk: Millis::from_secs(62),
                    hold: Millis::from_secs(30),
                    acw: Millis::from_secs(30),
                    held: true
                },
            ]
        );
        assert_eq!(derived.finished_at, Some(at(130)));
        assert_eq!(derived.waiting, None);
        let phases: Vec<_> = derived
            .spans
            .iter()
            .map(|s| (s.phase, s.start, s.end))
            .collect();
        assert_eq!(
            phases,
            vec![
                (Phase::Offered, at(5), Some(at(8))),
                (Phase::Talking, at(8), Some(at(20))),
                (Phase::OnHold, at(20), Some(at(50))),
                (Phase::Talking, at(50), Some(at(100))),
                (Phase::Acw, at(100), Some(at(130))),
            ]
        );
    }

    #[test]
    fn a_transfer_to_another_queue_opens_a_second_wait_and_leg() {
        let facts = sorted(vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(10, FactKind::Answered, Some(1), None),
            fact(40, FactKind::Transferred, Some(1), Some(3)),
            fact(55, FactKind::Completed, Some(1), None),
            fact(70, FactKind::Answered, Some(2), None),
            fact(100, FactKind::Ended, Some(2), None),
            fact(101, FactKind::Completed, Some(2), None),
        ]);
        let derived = derive(&facts, None);
        let q3 = QueueChannel {
            queue: 3,
            channel: Channel::Voice,
        };
        assert!(derived.records.contains(&Record::Transfer {
            advisor: 1,
            qc: Some(QC),
            time: at(40)
        }));
        assert!(derived.records.contains(&Record::Offer {
            qc: q3,
            time: at(40)
        }));
        assert!(derived.records.contains(&Record::Left {
            qc: q3,
            time: at(70),
            wait: Millis::from_secs(30),
            outcome: Outcome::Answered
        }));
        assert!(derived.records.contains(&Record::Handled {
            advisor: 1,
            qc: Some(QC),
            time: at(55),
            talk: Millis::from_secs(30),
            hold: Millis::ZERO,
            acw: Millis::from_secs(15),
            held: false
        }));
        assert_eq!(derived.finished_at, Some(at(101)));
    }

    #[test]
    fn a_transfer_stamped_with_the_new_queue_entry_or_after_the_end_counts_once() {
        let q3 = QueueChannel {
            queue: 3,
            channel: Channel::Voice,
        };
        let expected_transfer = Record::Transfer {
            advisor: 1,
            qc: Some(QC),
            time: at(40),
        };
        // Same second: queued(3) sorts before transferred(to 3).
        let same_second = sorted(vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(10, FactKind::Answered, Some(1), None),
            fact(40, FactKind::Transferred, Some(1), Some(3)),
            Fact {
                tie: 99,
                ..fact(40, FactKind::Queued, None, Some(3))
            },
        ]);
        let derived = derive(&same_second, None);
        let transfers = derived
            .records
            .iter()
            .filter(|r| matches!(r, Record::Transfer { .. }))
            .count();
        let offers = derived
            .records
            .iter()
            .filter(|r| matches!(r, Record::Offer { qc, .. } if *qc == q3))
            .count();
        assert_eq!((transfers, offers), (1, 1), "{:?}", derived.records);
        assert!(derived.records.contains(&expected_transfer));
        assert_eq!(derived.waiting.map(|w| w.qc), Some(q3));
        // The source ends the conversation, then reports the transfer.
        let ended_first = sorted(vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(10, FactKind::Answered, Some(1), None),
            fact(39, FactKind::Ended, Some(1), None),
            fact(40, FactKind::Transferred, Some(1), Some(3)),
        ]);
        let derived = derive(&ended_first, None);
        assert!(
            derived.records.contains(&expected_transfer),
            "{:?}",
            derived.records
        );
        assert!(!derived.records.iter().any(|r| matches!(
            r,
            Record::Left {
                outcome: Outcome::FlowedOut,
                ..
            }
        )));
    }

    #[test]
    fn any_arrival_order_gives_the_same_derivation() {
        let facts = vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(2, FactKind::Offered, Some(1), None),
            fact(4, FactKind::Missed, Some(1), None),
            fact(5, FactKind::Offered, Some(2), None),
            fact(7, FactKind::Answered, Some(2), None),
            fact(9, FactKind::Held, Some(2), None),
            fact(12, FactKind::Resumed, Some(2), None),
            fact(30, FactKind::Ended, Some(2), None),
            fact(31, FactKind::Completed, Some(2), None),
        ];
        let expected = derive(&sorted(facts.clone()), None);
        let mut permuted = facts.clone();
        for rotation in 0..facts.len() {
            permuted.rotate_left(1);
            permuted.swap(0, rotation % facts.len());
            let mut out = Vec::new();
            for f in &permuted {
                insert_fact(&mut out, *f);
            }
            assert_eq!(derive(&out, None), expected);
        }
    }

    #[test]
    fn expiry_cuts_open_phases_and_stops_waiting() {
        let facts = sorted(vec![
            fact(0, FactKind::Queued, None, Some(0)),
            fact(3, FactKind::Answered, Some(1), None),
        ]);
        let derived = derive(&facts, Some(at(1000)));
        assert_eq!(derived.spans.last().map(|s| s.end), Some(Some(at(1000))));
        assert_eq!(derived.finished_at, None);
        let waiting = derive(&facts[..1], Some(at(1000)));
        assert_eq!(waiting.waiting, None);
    }

    /// `spans` as a multiset, in a canonical order.
    fn canonical(spans: &[Span]) -> Vec<(u32, Phase, Timestamp, Option<Timestamp>, Timestamp)> {
        let mut keys: Vec<_> = spans
            .iter()
            .map(|s| (s.advisor, s.phase, s.start, s.end, s.leg_start))
            .collect();
        keys.sort_unstable();
        keys
    }

    proptest::proptest! {
        /// Applied one step after the other, facts report exactly what changes between the
        /// derivations of the facts before and after each: the records the step adds, and the
        /// spans it takes away (`ended`, each open before) and adds (`spans`).
        #[test]
        fn a_step_reports_what_changes_between_derivations(
            steps in proptest::collection::vec((0u8..14, 0i64..3, 0u32..3, 0u32..2), 0..40),
        ) {
            let mut facts = Vec::new();
            let mut time = 0;
            for (code, gap, advisor, queue) in steps {
                time += gap;
                let kind = match code {
                    0 | 11 => FactKind::Queued,
                    1 | 12 => FactKind::Offered,
                    2 => FactKind::Missed,
                    3 | 13 => FactKind::Answered,
                    4 => FactKind::Held,
                    5 => FactKind::Resumed,
                    6 => FactKind::Transferred,
                    7 => FactKind::Abandoned,
                    8 => FactKind::Dequeued(DequeueReason::ALL[advisor as usize % DequeueReason::ALL.len()]),
                    9 => FactKind::Ended,
                    _ => FactKind::Completed,
                };
                let advisor = (code % 4 != 0).then_some(advisor);
                facts.push(Fact::new(at(time), facts.len() as u64, kind, advisor, Some(queue), Some(Channel::Chat)));
            }
            let facts = sorted(facts);
            let mut state = FoldState::default();
            let mut spans: Vec<Span> = Vec::new();
            let mut records: Vec<Record> = Vec::new();
            let mut step = Derived::default();
            for (index, fact) in facts.iter().enumerate() {
                step.records.clear();
                step.spans.clear();
                step.ended.clear();
                state.step(fact, &mut step);
                for ended in &step.ended {
                    proptest::prop_assert_eq!(ended.end, None, "only open spans end");
                    let position = spans.iter().position(|span| span == ended);
                    proptest::prop_assert!(position.is_some(), "{:?} ended but was not open", ended);
                    spans.swap_remove(position.unwrap());
                }
                spans.extend_from_slice(&step.spans);
                records.extend_from_slice(&step.records);
                let expected = derive(&facts[..=index], None);
                proptest::prop_assert_eq!(canonical(&spans), canonical(&expected.spans));
                proptest::prop_assert_eq!(&records, &expected.records);
                proptest::prop_assert_eq!(state.waiting(), expected.waiting);
                proptest::prop_assert_eq!(state.finished_at(), expected.finished_at);
            }
        }
    }

    #[test]
    fn diff_reports_multiset_differences() {
        let mut removed = Vec::new();
        let mut added = Vec::new();
        diff(&[1, 2, 2, 3], &[2, 3, 4], |x, add| {
            if add { added.push(x) } else { removed.push(x) }
        });
        assert_eq!(removed, vec![1, 2]);
        assert_eq!(added, vec![4]);
    }
}
