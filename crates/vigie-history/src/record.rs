//! The record of one interval for one queue, team, advisor or the site: what is published to
//! the history stream, one JSON object per record, and what the History API and reports read.

use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Site,
    Queue,
    Team,
    Advisor,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Site => "site",
            ScopeKind::Queue => "queue",
            ScopeKind::Team => "team",
            ScopeKind::Advisor => "advisor",
        }
    }
}

/// Which record: a site, a scope and its id, and the interval's start. A later record with the
/// same key and a higher `revision` replaces an earlier one (a correction).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    pub site: String,
    pub kind: ScopeKind,
    /// The queue, team or advisor id; the site id for the site.
    pub id: String,
    /// Interval start, milliseconds since the Unix epoch.
    pub start_ms: i64,
}

/// Flow counts of an interval (exits counted in the interval where the contact left the
/// queue), summed over a team's campaign queues or the site's queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowRecord {
    pub offered: u64,
    pub answered: u64,
    pub answered_within_threshold: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub abandoned_within_threshold: u64,
    pub dequeued: u64,
    pub wait_answered_ms: i64,
    pub wait_abandoned_ms: i64,
}

/// Handling counts of an interval (contacts counted in the interval where their after-contact
/// work ended): a queue's contacts, or an advisor's (a team's and the site's advisors summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandlingRecord {
    pub handled: u64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub acw_ms: i64,
    pub held: u64,
    pub transferred: u64,
    /// Offers an advisor did not answer (advisors, teams and the site only).
    pub missed_offers: u64,
}

/// Time in one pause reason during an interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub reason: String,
    pub time_ms: i64,
    /// Pauses with this reason started in the interval.
    pub count: u64,
}

/// Where advisors' time went during an interval (advisors, teams and the site only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeRecord {
    pub logged_in_ms: i64,
    pub available_ms: i64,
    pub handling_ms: i64,
    /// Sorted by reason.
    pub pauses: Vec<PauseRecord>,
    /// An advisor's first login of the day, when it fell in this interval (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_login_ms: Option<i64>,
    /// An advisor's last logout in this interval (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_logout_ms: Option<i64>,
}

/// A contact abandoned in a queue, as the queue's record of the interval where it hung up
/// lists it: no customer data, the opaque contact id of the events only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AbandonedRecord {
    /// When it hung up, ms since the Unix epoch.
    pub abandoned_at_ms: i64,
    /// The opaque contact id of the events.
    pub contact: String,
    /// `voice`, `chat`, `email`, `callback`, `social` or `task`.
    pub channel: String,
    /// How long it waited in the queue, in ms.
    pub wait_ms: i64,
    /// Shorter than the queue's `short_abandon`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub short: bool,
}

/// One interval of one scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    #[serde(flatten)]
    pub key: RecordKey,
    /// Interval end (excluded), ms since the epoch: 15 minutes after the start.
    pub end_ms: i64,
    /// The site-local date of the interval's day, `YYYY-MM-DD`.
    pub date: String,
    /// 1 when the interval closed; each correction adds one.
    pub revision: u32,
    /// No event can change it any more (the allowed lateness has passed its end).
    pub settled: bool,
    /// An advisor's team (for access rules and team timesheets); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Display name of the queue, team or advisor, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sites, queues and teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowRecord>,
    pub handling: HandlingRecord,
    /// Sites, teams and advisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<TimeRecord>,
    /// Service-level formula (`offered`, `answered`, `positive`), answer time T in seconds and
    /// target, for ratios recomputed from the counts (sites, queues and teams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sl_variant: Option<vigie_core::SlVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sl_threshold_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sl_target: Option<f64>,
    /// Advisors counted (teams and the site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    /// Queues: the contacts that abandoned in the interval, by time, at most
    /// [`MAX_ABANDONED_PER_RECORD`](crate::abandoned::MAX_ABANDONED_PER_RECORD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned_contacts: Vec<AbandonedRecord>,
    /// Queues: abandons of the interval beyond that limit, counted in `flow` but not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub abandoned_contacts_omitted: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl IntervalRecord {
    /// The record of `key`'s interval, ending at `end_ms`, of the site-local `date`, with no
    /// figure, name or setting yet (revision 0, not settled).
    pub fn new(key: RecordKey, end_ms: i64, date: impl Into<String>) -> IntervalRecord {
        IntervalRecord {
            key,
            end_ms,
            date: date.into(),
            revision: 0,
            settled: false,
            team: None,
            name: None,
            flow: None,
            handling: HandlingRecord::default(),
            times: None,
            sl_variant: None,
            sl_threshold_s: None,
            sl_target: None,
            members: None,
            abandoned_contacts: Vec::new(),
            abandoned_contacts_omitted: 0,
        }
    }

    /// Nothing happened for this scope in the interval: no contact, no handling, no advisor
    /// logged in. Such records are not published (an interval without a record has no
    /// activity), unless they correct one that was.
    pub fn is_empty(&self) -> bool {
        self.flow.is_none_or(|flow| flow == FlowRecord::default())
            && self.handling == HandlingRecord::default()
            && self.times.as_ref().is_none_or(|times| {
                times.logged_in_ms == 0
                    && times.available_ms == 0
                    && times.handling_ms == 0
                    && times.pauses.is_empty()
                    && times.first_login_ms.is_none()
                    && times.last_logout_ms.is_none()
            })
    }
}
