//! A site's state saved whole: its processor, the abandoned contacts listed today and where its
//! interval history stands. A restart that restores it replays only the events after it, and
//! continues exactly as the instance that saved it would have.

use serde::{Deserialize, Serialize};
use vigie_core::{SnapshotError, Timestamp};
use vigie_history::AbandonedLog;

use crate::history::SiteHistory;

/// Version of the engine's part of the encoding (the processor's part has its own,
/// [`vigie_core::SNAPSHOT_FORMAT`]).
pub const ENGINE_SNAPSHOT_FORMAT: u32 = 1;

/// A site's state, encoded, as it stood after every batch queued before it was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSnapshot {
    /// The site.
    pub site: String,
    /// The site's clock when it was taken.
    pub as_of: Timestamp,
    /// The encoded state, for [`crate::EngineHandle::restore_site`].
    pub bytes: Vec<u8>,
}

/// What is encoded.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedSite {
    pub format: u32,
    /// [`vigie_core::SiteProcessor::snapshot`].
    pub processor: Vec<u8>,
    /// The abandoned contacts of the day, when the engine keeps a history.
    pub abandoned: Option<AbandonedLog>,
    /// Where the interval history stands, when the engine keeps a history.
    pub history: Option<SiteHistory>,
}

/// [`SavedSite`] as it is written, borrowing the engine's state (the same encoding).
#[derive(Serialize)]
pub(crate) struct SavedSiteRef<'a> {
    pub format: u32,
    pub processor: &'a [u8],
    pub abandoned: Option<&'a AbandonedLog>,
    pub history: Option<&'a SiteHistory>,
}

impl SavedSiteRef<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding to memory does not fail")
    }
}

impl SavedSite {
    pub(crate) fn decode(bytes: &[u8]) -> Result<SavedSite, SnapshotError> {
        // The format comes first: a snapshot of another version is told apart from garbage.
        let (format, _) = postcard::take_from_bytes::<u32>(bytes)
            .map_err(|e| SnapshotError::Format(e.to_string()))?;
        if format != ENGINE_SNAPSHOT_FORMAT {
            return Err(SnapshotError::Version {
                found: format,
                expected: ENGINE_SNAPSHOT_FORMAT,
            });
        }
        postcard::from_bytes(bytes).map_err(|e| SnapshotError::Format(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_format_is_told_apart_from_garbage() {
        let saved = SavedSiteRef {
            format: ENGINE_SNAPSHOT_FORMAT + 1,
            processor: &[1, 2, 3],
            abandoned: None,
            history: None,
        };
        assert_eq!(
            SavedSite::decode(&saved.encode()).err(),
            Some(SnapshotError::Version {
                found: ENGINE_SNAPSHOT_FORMAT + 1,
                expected: ENGINE_SNAPSHOT_FORMAT
            })
        );
        let garbage = SavedSite::decode(&[1, 0xff, 0xff]).err();
        assert!(
            matches!(garbage, Some(SnapshotError::Format(_))),
            "{garbage:?}"
        );
        assert!(matches!(
            SavedSite::decode(&[]),
            Err(SnapshotError::Format(_))
        ));
    }
}
