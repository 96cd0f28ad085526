//! The canonical event contract, version 1 (documented in `docs/events.md`).
//!
//! Producers (telephony platforms, CRM connectors) publish these events; everything Vigie
//! computes is derived from them. The JSON form is decoded by [`crate::decode`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One event of the contract, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique id chosen by the producer; the deduplication key.
    pub id: String,
    /// When it happened (event time, not arrival time).
    pub time: Timestamp,
    /// Contact-centre site the event belongs to.
    pub site: String,
    /// What happened.
    pub body: EventBody,
}

/// What an event says: about a contact or about an advisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// A `contact.*` event.
    Contact(ContactEvent),
    /// An `advisor.*` event.
    Advisor(AdvisorEvent),
}

/// A `contact.*` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactEvent {
    /// Opaque contact id (never a phone number).
    pub contact: String,
    /// Which step of the contact's life.
    pub kind: ContactEventKind,
    /// Queue the event relates to (required for `contact.queued`).
    pub queue: Option<String>,
    /// Channel of the contact (required for `contact.queued`).
    pub channel: Option<Channel>,
    /// Advisor the event relates to (required for offered, missed, answered).
    pub advisor: Option<String>,
}

/// The steps of a contact's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactEventKind {
    /// `contact.queued`: entered a queue.
    Queued,
    /// `contact.offered`: presented (ringing) to an advisor.
    Offered,
    /// `contact.missed`: an offer to an advisor ended unanswered (timeout, rejected).
    Missed,
    /// `contact.answered`: connected to an advisor; leaves the queue.
    Answered,
    /// `contact.held`: put on hold by the advisor.
    Held,
    /// `contact.resumed`: taken off hold.
    Resumed,
    /// `contact.transferred`: the advisor (or the routing, while queued) passed the contact on.
    Transferred {
        /// Queue the contact enters next, when it is transferred to a queue.
        to_queue: Option<String>,
    },
    /// `contact.abandoned`: the customer left before being answered.
    Abandoned,
    /// `contact.dequeued`: left the queue without being answered and without abandoning.
    Dequeued {
        /// Why it left the queue.
        reason: DequeueReason,
    },
    /// `contact.ended`: the conversation is over; after-contact work starts.
    Ended,
    /// `contact.completed`: after-contact work is done.
    Completed {
        /// Outcome code from the CRM, if any.
        disposition: Option<String>,
        /// Whether the customer's need was resolved (first-contact resolution).
        resolved: Option<bool>,
    },
}

impl ContactEventKind {
    /// The event `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ContactEventKind::Queued => "contact.queued",
            ContactEventKind::Offered => "contact.offered",
            ContactEventKind::Missed => "contact.missed",
            ContactEventKind::Answered => "contact.answered",
            ContactEventKind::Held => "contact.held",
            ContactEventKind::Resumed => "contact.resumed",
            ContactEventKind::Transferred { .. } => "contact.transferred",
            ContactEventKind::Abandoned => "contact.abandoned",
            ContactEventKind::Dequeued { .. } => "contact.dequeued",
            ContactEventKind::Ended => "contact.ended",
            ContactEventKind::Completed { .. } => "contact.completed",
        }
    }
}

/// An `advisor.*` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvisorEvent {
    /// Advisor id, as the site knows it.
    pub advisor: String,
    /// What changed.
    pub kind: AdvisorEventKind,
}

/// The advisor events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvisorEventKind {
    /// `advisor.login`: the advisor starts their session (status becomes available).
    Login {
        /// Team the advisor joins when the roster does not name one.
        team: Option<String>,
        /// Display name.
        name: Option<String>,
    },
    /// `advisor.logout`: the session ends.
    Logout,
    /// `advisor.state`: the advisor's status changes.
    State(AdvisorStatus),
}

impl AdvisorEventKind {
    /// The event `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            AdvisorEventKind::Login { .. } => "advisor.login",
            AdvisorEventKind::Logout => "advisor.logout",
            AdvisorEventKind::State(_) => "advisor.state",
        }
    }
}

impl Event {
    /// The event `type` string.
    pub fn type_name(&self) -> &'static str {
        match &self.body {
            EventBody::Contact(contact) => contact.kind.type_name(),
            EventBody::Advisor(advisor) => advisor.kind.type_name(),
        }
    }
}

/// A status an advisor sets (or a supervisor sets for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvisorStatus {
    /// Ready to take contacts.
    Available,
    /// Not taking contacts, with the site's reason code (break, lunch, training...).
    Pause {
        /// Reason code; `unspecified` when the producer gave none.
        reason: String,
    },
}

/// The pause reason used when a producer sends a pause without one.
pub const UNSPECIFIED_PAUSE_REASON: &str = "unspecified";

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the contract's spelling.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The media of a contact.
    Channel {
        /// Telephone call.
        Voice => "voice",
        /// Web or in-app chat.
        Chat => "chat",
        /// E-mail.
        Email => "email",
        /// A call back the customer asked for.
        Callback => "callback",
        /// Social network message.
        Social => "social",
        /// Back-office task.
        Task => "task",
    }
}

string_enum! {
    /// Why a contact left a queue without being answered or abandoning.
    DequeueReason {
        /// Sent to voicemail.
        Voicemail => "voicemail",
        /// Converted to a callback request.
        Callback => "callback",
        /// The queue's maximum wait was reached.
        Timeout => "timeout",
        /// The queue closed (outside opening hours, no advisor logged in).
        Closed => "closed",
    }
}
