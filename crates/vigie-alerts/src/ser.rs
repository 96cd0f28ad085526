//! Instants in serialized alerts: RFC 3339, UTC, to the millisecond.

use serde::Serializer;
use vigie_core::Timestamp;

pub(crate) fn timestamp<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(at)
}

pub(crate) fn opt_timestamp<S: Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.collect_str(at),
        None => serializer.serialize_none(),
    }
}
