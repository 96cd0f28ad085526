//! Why an event was refused. Rejections are data: the shell counts them by
//! [`RejectReason`] and dead-letters the event with the message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable reason codes of rejected events (metric label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The bytes are not a JSON document (or not UTF-8).
    MalformedJson,
    /// The bytes (sent as `application/protobuf`) are not a protobuf `vigie.v1.Event`.
    MalformedProtobuf,
    /// The JSON document is not an object.
    NotAnObject,
    /// The event is larger than the accepted maximum.
    TooLarge,
    /// A field the event type requires is absent (or null).
    MissingField,
    /// A field is present but not of the expected form.
    InvalidField,
    /// The `type` is not one of the contract's event types.
    UnknownType,
    /// The event is older than the allowed lateness behind the newest event of its site.
    TooLate,
    /// The event concerns a contact whose life had already ended (completed, abandoned or
    /// dequeued) more than the allowed lateness before, or that is remembered as ended.
    ContactCompleted,
    /// The event concerns a contact that Vigie stopped tracking after its expiry.
    ContactExpired,
    /// The contact already has the most events one contact may have (a reused contact id or
    /// a producer repeating itself).
    TooManyEvents,
}

impl RejectReason {
    /// Every reason, for metrics that must show zero counts.
    pub const ALL: &'static [RejectReason] = &[
        RejectReason::MalformedJson,
        RejectReason::MalformedProtobuf,
        RejectReason::NotAnObject,
        RejectReason::TooLarge,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::UnknownType,
        RejectReason::TooLate,
        RejectReason::ContactCompleted,
        RejectReason::ContactExpired,
        RejectReason::TooManyEvents,
    ];

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::MalformedProtobuf => "malformed_protobuf",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::TooLarge => "too_large",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::TooLate => "too_late",
            RejectReason::ContactCompleted => "contact_completed",
            RejectReason::ContactExpired => "contact_expired",
            RejectReason::TooManyEvents => "too_many_events",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: the reason code, the field at fault if any, and a sentence for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Stable code.
    pub reason: RejectReason,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// What was wrong and what was expected.
    pub detail: String,
}

impl Rejection {
    /// A rejection with no particular field.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            field: None,
            detail: detail.into(),
        }
    }

    /// A rejection naming the field at fault.
    pub fn field(
        reason: RejectReason,
        field: &'static str,
        detail: impl Into<String>,
    ) -> Rejection {
        Rejection {
            reason,
            field: Some(field),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejection {}
