//! What the two Asterisk translators (queue_log lines, AMI events) share: the memory of calls
//! and members, the events built from it, and the settings of a server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind, Event,
    EventBody, Millis, Timestamp,
};
use xxhash_rust::xxh3::Xxh3;

use crate::asterisk_queue_log::{MAX_REMEMBERED_CALLS, QueueLogQueueConfig};
use crate::common::{ConfigChecks, evict_oldest_tenth};

/// The longest wrap-up accepted in configuration: a longer one is a typo (`"15m"` for
/// `"15s"`), and would stamp completions far ahead of the events that follow them.
pub(crate) const MAX_WRAPUP: Duration = Duration::from_secs(3600);

/// What a translator remembers of a call; `more` is what only one source needs.
#[derive(Clone, Debug)]
pub(crate) struct CallMemory<T> {
    /// The queue it entered last and when.
    pub(crate) entered: Option<(String, Timestamp)>,
    /// The queue a member transferred it into, and when.
    pub(crate) transferred_into: Option<(String, Timestamp)>,
    pub(crate) last_seen: Timestamp,
    pub(crate) more: T,
}

impl<T> CallMemory<T> {
    /// Whether a transfer brought the call into `queue`: that transfer was its entry there
    /// (docs/events.md, Asterisk "Transfers"), and a second offer would count it twice.
    pub(crate) fn transferred_into_queue(&self, queue: &str) -> bool {
        self.transferred_into
            .as_ref()
            .is_some_and(|(into, _)| into == queue)
    }
}

/// The calls remembered, by call id (bounded by [`MAX_REMEMBERED_CALLS`]).
#[derive(Debug)]
pub(crate) struct Calls<T> {
    calls: BTreeMap<String, CallMemory<T>>,
}

impl<T> Default for Calls<T> {
    fn default() -> Self {
        Calls {
            calls: BTreeMap::new(),
        }
    }
}

impl<T: Default> Calls<T> {
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn contains(&self, callid: &str) -> bool {
        self.calls.contains_key(callid)
    }

    pub(crate) fn get(&self, callid: &str) -> Option<&CallMemory<T>> {
        self.calls.get(callid)
    }

    pub(crate) fn get_mut(&mut self, callid: &str) -> Option<&mut CallMemory<T>> {
        self.calls.get_mut(callid)
    }

    /// The memory of a call, created if needed; its last sighting moves to `time`. When full,
    /// the oldest tenth is forgotten first, counted in `evicted`.
    pub(crate) fn call_mut(
        &mut self,
        callid: &str,
        time: Timestamp,
        evicted: &mut u64,
    ) -> &mut CallMemory<T> {
        if !self.calls.contains_key(callid) && self.calls.len() >= MAX_REMEMBERED_CALLS {
            *evicted += evict_oldest_tenth(&mut self.calls, |call| call.last_seen);
        }
        let call = self
            .calls
            .entry(callid.to_owned())
            .or_insert_with(|| CallMemory {
                entered: None,
                transferred_into: None,
                last_seen: time,
                more: T::default(),
            });
        call.last_seen = call.last_seen.max(time);
        call
    }

    /// Forgets the calls last seen before `horizon`.
    pub(crate) fn forget_before(&mut self, horizon: Timestamp) {
        self.calls.retain(|_, call| call.last_seen >= horizon);
    }

    /// The events of a call in the queue it was transferred into, stamped the transfer's
    /// time, go 1 ms after it (docs/events.md, "Same millisecond"): otherwise the lifecycle
    /// order would apply an answer in the new queue before the transfer.
    pub(crate) fn after_transfer(&self, callid: &str, queue: &str, time: Timestamp) -> Timestamp {
        match self
            .calls
            .get(callid)
            .and_then(|call| call.transferred_into.as_ref())
        {
            Some((into, at)) if into == queue && *at == time => time + Millis(1),
            _ => time,
        }
    }

    /// The entry time of a call whose entry was not seen (read from the middle, or the
    /// connector started during its wait): `time - wait`, now remembered; none when the entry
    /// (or a transfer into a queue) is known, or the wait is not.
    pub(crate) fn entry_if_unseen(
        &mut self,
        callid: &str,
        queue: &str,
        time: Timestamp,
        wait: Option<Millis>,
        evicted: &mut u64,
    ) -> Option<Timestamp> {
        let call = self.call_mut(callid, time, evicted);
        if call.entered.is_some() || call.transferred_into.is_some() {
            return None;
        }
        let entered_at = time - wait?;
        call.entered = Some((queue.to_owned(), entered_at));
        Some(entered_at)
    }
}

/// What a translator remembers of a member (by advisor id).
#[derive(Clone, Debug, Default)]
pub(crate) struct MemberMemory {
    /// Queues they were added to and not removed from.
    pub(crate) queues: BTreeSet<String>,
    /// Logged in through an agent login, which outlives queue membership.
    pub(crate) agent_session: bool,
    /// When their session started, while it lasts.
    pub(crate) logged_in_at: Option<Timestamp>,
    /// When their session ended, once it has.
    pub(crate) logged_out_at: Option<Timestamp>,
    /// The last state published, where the source tracks it (AMI: a login makes the advisor
    /// available).
    pub(crate) status: Option<AdvisorStatus>,
    pub(crate) last_seen: Timestamp,
}

/// The members remembered, and their sessions.
#[derive(Debug, Default)]
pub(crate) struct Members {
    members: BTreeMap<String, MemberMemory>,
    /// A join (leave) at the very time the session started (ended) gives the login (logout)
    /// again: queue_log repeats a membership in every queue in the same second, and the
    /// repeats are one event by id.
    repeat_at_same_time: bool,
}

impl Members {
    pub(crate) fn new(repeat_at_same_time: bool) -> Members {
        Members {
            members: BTreeMap::new(),
            repeat_at_same_time,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The memory of a member, created if needed; its last sighting moves to `time`.
    pub(crate) fn member_mut(&mut self, advisor: &str, time: Timestamp) -> &mut MemberMemory {
        let member = self.members.entry(advisor.to_owned()).or_default();
        member.last_seen = member.last_seen.max(time);
        member
    }

    /// Every (advisor, queue) membership remembered.
    pub(crate) fn memberships(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.members.iter().flat_map(|(advisor, member)| {
            member
                .queues
                .iter()
                .map(move |queue| (advisor.clone(), queue.clone()))
        })
    }

    /// Forgets members last seen before `horizon`, unless still in a queue or a session.
    pub(crate) fn forget_before(&mut self, horizon: Timestamp) {
        self.members.retain(|_, member| {
            member.last_seen >= horizon || !member.queues.is_empty() || member.agent_session
        });
    }

    /// A member joins `queue` (or logs in as an agent): whether that is a login. One login
    /// per session, at the first membership; joining more queues changes nothing.
    pub(crate) fn join(
        &mut self,
        advisor: &str,
        time: Timestamp,
        queue: Option<String>,
        agent: bool,
    ) -> bool {
        let repeat = self.repeat_at_same_time;
        let member = self.member_mut(advisor, time);
        if let Some(queue) = queue {
            member.queues.insert(queue);
        }
        member.agent_session |= agent;
        match member.logged_in_at {
            Some(at) => repeat && at == time,
            None => {
                member.logged_in_at = Some(time);
                member.logged_out_at = None;
                true
            }
        }
    }

    /// A member leaves `queue` (or logs off as an agent): whether that is a logout. One
    /// logout per session: when the member leaves their last queue (without an agent
    /// session), or at their agent logoff. A member never seen joining is logged out too:
    /// the connector may have started after their login.
    pub(crate) fn leave(
        &mut self,
        advisor: &str,
        time: Timestamp,
        queue: Option<&str>,
        agent: bool,
    ) -> bool {
        let repeat = self.repeat_at_same_time;
        let member = self.member_mut(advisor, time);
        if let Some(queue) = queue {
            member.queues.remove(queue);
        }
        if agent {
            member.agent_session = false;
        }
        let session_over = agent || (member.queues.is_empty() && !member.agent_session);
        if !session_over {
            return false;
        }
        match member.logged_out_at {
            Some(at) if member.logged_in_at.is_none() => repeat && at == time,
            _ => {
                member.logged_out_at = Some(time);
                member.logged_in_at = None;
                member.queues.clear();
                member.status = None;
                true
            }
        }
    }
}

/// An advisor event's id comes from the site, the advisor, `moment` (the time as the source
/// tells it apart) and the step (with the pause reason), not from the record: Asterisk
/// repeats a pause, and a membership, in every queue of the member, and those repeats must
/// be one event. `prefix` names the source (`aql`, `ami`).
pub(crate) fn advisor_event(
    prefix: &str,
    site: &str,
    advisor: &str,
    moment: i64,
    time: Timestamp,
    kind: AdvisorEventKind,
) -> Event {
    let mut hasher = Xxh3::new();
    hasher.update(site.as_bytes());
    hasher.update(b"\n");
    hasher.update(advisor.as_bytes());
    hasher.update(b"\n");
    hasher.update(&moment.to_le_bytes());
    let step = match &kind {
        AdvisorEventKind::Login { .. } => "login".to_owned(),
        AdvisorEventKind::Logout => "logout".to_owned(),
        AdvisorEventKind::State(AdvisorStatus::Available) => "available".to_owned(),
        AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => format!("pause\n{reason}"),
    };
    hasher.update(step.as_bytes());
    let suffix = step.split('\n').next().unwrap_or_default().to_owned();
    Event {
        id: format!("{prefix}-{:032x}-{suffix}", hasher.digest128()),
        time,
        site: site.to_owned(),
        body: EventBody::Advisor(AdvisorEvent {
            advisor: advisor.to_owned(),
            kind,
        }),
    }
}

/// A login from Asterisk, which knows neither team nor name.
pub(crate) const LOGIN: AdvisorEventKind = AdvisorEventKind::Login {
    team: None,
    name: None,
};

/// A completion from Asterisk, which knows neither disposition nor resolution.
pub(crate) const COMPLETED: ContactEventKind = ContactEventKind::Completed {
    disposition: None,
    resolved: None,
};

/// A contact event of a voice call (the channel is given on entry and answer).
pub(crate) fn contact_event(
    id: String,
    site: &str,
    contact: &str,
    time: Timestamp,
    kind: ContactEventKind,
    queue: Option<&str>,
    advisor: Option<&str>,
) -> Event {
    let channel = matches!(kind, ContactEventKind::Queued | ContactEventKind::Answered)
        .then_some(Channel::Voice);
    Event {
        id,
        time,
        site: site.to_owned(),
        body: EventBody::Contact(ContactEvent {
            contact: contact.to_owned(),
            kind,
            queue: queue.map(str::to_owned),
            channel,
            advisor: advisor.map(str::to_owned),
        }),
    }
}

/// The settings an Asterisk server's translators share, to check.
pub(crate) struct ServerSettings<'a> {
    pub(crate) site: &'a str,
    pub(crate) queues: &'a BTreeMap<String, QueueLogQueueConfig>,
    pub(crate) advisors: &'a BTreeMap<String, String>,
    pub(crate) transfer_targets: &'a BTreeMap<String, String>,
}

impl ServerSettings<'_> {
    /// The identifiers: site, advisors, transfer targets' queues, queues.
    pub(crate) fn check_identifiers(&self, checks: &mut ConfigChecks) {
        checks.identifier("site", self.site);
        for (member, advisor) in self.advisors {
            checks.identifier(format!("advisors.{member:?}"), advisor);
        }
        for (target, queue) in self.transfer_targets {
            checks.identifier(format!("transfer_targets.{target:?}"), queue);
        }
        for queue in self.queues.keys() {
            checks.identifier(format!("queues.{queue:?}"), queue);
        }
    }

    /// The wrap-ups, at most [`MAX_WRAPUP`].
    pub(crate) fn check_wrapups(&self, checks: &mut ConfigChecks) {
        for (queue, settings) in self.queues {
            if settings.wrapuptime > MAX_WRAPUP {
                checks.push(
                    format!("queues.{queue:?}.wrapuptime"),
                    format!(
                        "{} is longer than the maximum of 1h",
                        humantime_serde::re::humantime::format_duration(settings.wrapuptime)
                    ),
                );
            }
        }
    }

    /// Each queue's wrap-up.
    pub(crate) fn wrapups(&self) -> BTreeMap<String, Millis> {
        self.queues
            .iter()
            .map(|(queue, settings)| (queue.clone(), Millis::from_std(settings.wrapuptime)))
            .collect()
    }
}

/// A queue's wrap-up, zero when not configured.
pub(crate) fn wrapup_of(wrapups: &BTreeMap<String, Millis>, queue: &str) -> Millis {
    wrapups.get(queue).copied().unwrap_or(Millis::ZERO)
}
