//! Each site's snapshot in a JetStream object store (`[nats.snapshots]`): the engine's encoded
//! state of the site, named after the site, with the stream sequence of the last event it
//! holds, the stream it was read from and the site's clock, in the object's metadata.

use std::collections::HashMap;

use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use async_nats::jetstream::{self, Context};
use tokio::io::AsyncReadExt;
use vigie_core::Timestamp;

use crate::config::NatsConfig;
use crate::connect::IngestError;

const SEQUENCE: &str = "vigie-stream-sequence";
const STREAM: &str = "vigie-stream";
const STREAM_CREATED: &str = "vigie-stream-created";
const AS_OF: &str = "vigie-as-of";

/// A site's state as saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The stream sequence of the last event of the site it holds.
    pub sequence: u64,
    /// The event stream's name.
    pub stream: String,
    /// When the event stream was created (RFC 3339): a stream deleted and created again
    /// numbers its messages afresh.
    pub stream_created: String,
    /// The site's clock when it was taken.
    pub as_of: Timestamp,
    /// The engine's encoded state ([`vigie_engine::SiteSnapshot::bytes`]).
    pub bytes: Vec<u8>,
}

/// The bucket of snapshots.
#[derive(Clone)]
pub struct SnapshotStore {
    bucket: ObjectStore,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore").finish_non_exhaustive()
    }
}

impl SnapshotStore {
    /// Opens the bucket of `config.snapshots`, creating it when missing.
    pub async fn open(
        context: &Context,
        config: &NatsConfig,
    ) -> Result<SnapshotStore, IngestError> {
        let name = &config.snapshots.bucket;
        let error = |message: String| IngestError::Stream {
            stream: format!("object store {name}"),
            message,
        };
        let bucket = match context.get_object_store(name).await {
            Ok(bucket) => bucket,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: name.clone(),
                    description: Some(
                        "Vigie: each site's state, so that a start replays only the events after it"
                            .to_owned(),
                    ),
                    storage: StorageType::File,
                    num_replicas: config.stream.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| error(e.to_string()))?,
        };
        Ok(SnapshotStore { bucket })
    }

    /// Saves a site's snapshot in place of the previous one.
    pub async fn save(&self, site: &str, snapshot: &StoredSnapshot) -> Result<usize, String> {
        let metadata = HashMap::from([
            (SEQUENCE.to_owned(), snapshot.sequence.to_string()),
            (STREAM.to_owned(), snapshot.stream.clone()),
            (STREAM_CREATED.to_owned(), snapshot.stream_created.clone()),
            (AS_OF.to_owned(), snapshot.as_of.0.to_string()),
        ]);
        let meta = ObjectMetadata {
            name: site.to_owned(),
            description: Some(format!("Vigie, state of site {site}")),
            // Fewer, larger chunks: a snapshot is megabytes.
            chunk_size: Some(1024 * 1024),
            metadata,
            headers: None,
        };
        let info = self
            .bucket
            .put(meta, &mut snapshot.bytes.as_slice())
            .await
            .map_err(|e| e.to_string())?;
        Ok(info.size)
    }

    /// The site's snapshot, if one was saved. Its digest is checked as it is read.
    pub async fn load(&self, site: &str) -> Result<Option<StoredSnapshot>, String> {
        let mut object = match self.bucket.get(site).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let info = object.info().clone();
        let field = |key: &str| {
            info.metadata
                .get(key)
                .cloned()
                .ok_or_else(|| format!("the snapshot's metadata has no {key}"))
        };
        let number = |key: &str| -> Result<i64, String> {
            field(key)?
                .parse()
                .map_err(|e| format!("the snapshot's {key} is not a number: {e}"))
        };
        let sequence = u64::try_from(number(SEQUENCE)?).map_err(|e| e.to_string())?;
        let stream = field(STREAM)?;
        let stream_created = field(STREAM_CREATED)?;
        let as_of = Timestamp(number(AS_OF)?);
        let mut bytes = Vec::with_capacity(info.size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("reading the snapshot: {e}"))?;
        Ok(Some(StoredSnapshot {
            sequence,
            stream,
            stream_created,
            as_of,
            bytes,
        }))
    }
}

/// When a stream was created, as kept with a snapshot.
pub(crate) fn stream_created(info: &jetstream::stream::Info) -> String {
    info.created.to_rfc3339()
}
