//! Where configuration changes made through the Admin API are kept: a NATS KV bucket (one key
//! per site holding its changes in order, updated with compare-and-set, so every instance and
//! every restart see the same changes), or local files for the embedded demo; alert rules and
//! wallboard notices set through the API are kept the same way, under keys of their own. Also
//! follows the bucket, so that a configuration or rules change made through another instance
//! applies here too.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigie_alerts::RuleConfig;
use vigie_api::{ChangeStore, KeptNotices, Notice, NoticesService, StoreError};
use vigie_core::SiteConfig;
use vigie_core::config::SiteChange;
use vigie_engine::EngineHandle;

/// `[admin]` of `vigie.toml`: where Admin API changes are kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// NATS KV bucket of the changes (created when missing).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// Directory of the changes when Vigie runs without NATS (the embedded demo); the system's
    /// temporary directory when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_dir: Option<PathBuf>,
}

fn default_bucket() -> String {
    "vigie-config".to_owned()
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bucket: default_bucket(),
            changes_dir: None,
        }
    }
}

impl AdminConfig {
    /// The directory of the demo's changes.
    pub fn demo_dir(&self) -> PathBuf {
        self.changes_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("vigie-demo-changes"))
    }
}

/// The changes of every site in a NATS KV bucket, key `site.<id>`, value a JSON array; alert
/// rules under `rules.<id>` and wallboard notices under `notices.<id>`, each a JSON array.
#[derive(Debug)]
pub struct NatsChangeStore {
    kv: kv::Store,
}

fn key(site: &str) -> String {
    format!("site.{site}")
}

/// Opens the KV bucket `bucket` (its stream exists) and waits until it answers reads. Right
/// after the bucket or the cluster starts, the server may leave the request for the bucket's
/// details unanswered while the stream's replicas elect a leader: a request that fails is
/// tried again (10 attempts, 22.5 s of waits plus the requests' own timeouts) before the
/// start fails.
pub async fn open_key_value(
    context: &jetstream::Context,
    bucket: &str,
) -> anyhow::Result<kv::Store> {
    let kv = vigie_ingest::retry_while_starting(
        &format!("the details of the KV bucket {bucket:?} did not come"),
        10,
        std::time::Duration::from_millis(500),
        |error: &jetstream::context::KeyValueError| {
            error.kind() == jetstream::context::KeyValueErrorKind::GetBucket
        },
        || context.get_key_value(bucket),
    )
    .await
    .context("cannot open it")?;
    until_readable(&kv).await.context("cannot read it")?;
    Ok(kv)
}

/// Waits until a bucket answers reads. A bucket just created on a clustered JetStream may
/// leave reads unanswered for a few seconds, while its replicas start: tried 12 times (13 s of
/// waits plus the reads' own timeouts, about a minute in all).
async fn until_readable(kv: &kv::Store) -> anyhow::Result<()> {
    vigie_ingest::retry_while_starting(
        &format!("the KV bucket {:?} does not answer reads yet", kv.name),
        12,
        std::time::Duration::from_millis(200),
        |_: &kv::EntryError| true,
        || kv.get("vigie-probe"),
    )
    .await?;
    Ok(())
}

impl NatsChangeStore {
    /// Opens the bucket, creating it when missing with `replicas` (as the event stream's).
    pub async fn open(
        context: &jetstream::Context,
        bucket: &str,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        if context.get_stream(format!("KV_{bucket}")).await.is_err() {
            // The bucket's stream, made as the KV API makes it, directly: async-nats's own
            // bucket creation first reads account details that NATS 2.9 does not send.
            vigie_ingest::get_or_create_stream(
                context,
                jetstream::stream::Config {
                    name: format!("KV_{bucket}"),
                    description: Some(
                        "Vigie: configuration changes made through the Admin API".to_owned(),
                    ),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 16,
                    storage: jetstream::stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    num_replicas: replicas,
                    ..jetstream::stream::Config::default()
                },
            )
            .await
            .with_context(|| format!("cannot create the KV bucket {bucket:?} (admin.bucket)"))?;
        }
        let kv = open_key_value(context, bucket)
            .await
            .with_context(|| format!("the KV bucket {bucket:?} (admin.bucket)"))?;
        Ok(NatsChangeStore { kv })
    }

    /// Writes `value` as JSON under `key` if the key is still at `revision` (0: never
    /// written), else [`StoreError::Conflict`]; the key's new revision.
    async fn compare_and_set(
        &self,
        key: String,
        value: &(impl Serialize + ?Sized),
        revision: u64,
    ) -> Result<u64, StoreError> {
        let value = Bytes::from(
            serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        if revision == 0 {
            self.kv
                .create(key, value)
                .await
                .map_err(|error| match error.kind() {
                    kv::CreateErrorKind::AlreadyExists => StoreError::Conflict,
                    _ => StoreError::Unavailable(error.to_string()),
                })
        } else {
            self.kv
                .update(key, value, revision)
                .await
                .map_err(|error| match error.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => StoreError::Conflict,
                    _ => StoreError::Unavailable(error.to_string()),
                })
        }
    }

    async fn read(&self, site: &str) -> Result<(u64, Vec<SiteChange>), StoreError> {
        let entry = self
            .kv
            .entry(key(site))
            .await
            .map_err(|error| StoreError::Unavailable(error.to_string()))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let changes = serde_json::from_slice(&entry.value).map_err(|error| {
                    StoreError::Unavailable(format!(
                        "the changes of site {site} do not parse: {error}"
                    ))
                })?;
                Ok((entry.revision, changes))
            }
            Some(entry) => Ok((entry.revision, Vec::new())),
            None => Ok((0, Vec::new())),
        }
    }

    /// Follows the bucket: when another instance records a change of a site, the site's
    /// configuration from the file with every recorded change is applied here; alert rules
    /// likewise, and wallboard notices are handed to `notices`.
    pub async fn follow(
        self: Arc<Self>,
        file_sites: Vec<SiteConfig>,
        engine: EngineHandle,
        notices: NoticesService,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut watch = self
            .kv
            .watch(">")
            .await
            .context("cannot watch the configuration changes")?;
        loop {
            let entry = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => entry,
                    Some(Err(error)) => {
                        warn!(%error, "configuration changes: watch error");
                        continue;
                    }
                    None => return Ok(()),
                },
            };
            if let Some(site) = entry.key.strip_prefix("rules.") {
                apply_rules(site, &entry.value, &engine).await;
                continue;
            }
            if let Some(site) = entry.key.strip_prefix("notices.") {
                let notices_kept = match entry.operation {
                    kv::Operation::Put => notices_of(site, &entry.value),
                    kv::Operation::Delete | kv::Operation::Purge => Ok(Vec::new()),
                };
                match notices_kept {
                    Ok(kept) => {
                        let kept = KeptNotices {
                            revision: entry.revision,
                            notices: kept,
                        };
                        notices.kept_elsewhere(site, kept).await;
                    }
                    Err(error) => warn!(site, %error, "wallboard notices ignored"),
                }
                continue;
            }
            let Some(site) = entry.key.strip_prefix("site.") else {
                continue;
            };
            let Some(file_site) = file_sites.iter().find(|s| s.id == site) else {
                continue;
            };
            let changes: Vec<SiteChange> = match serde_json::from_slice(&entry.value) {
                Ok(changes) => changes,
                Err(error) => {
                    warn!(site, %error, "configuration changes do not parse: ignored");
                    continue;
                }
            };
            let config = with_changes(file_site.clone(), &changes);
            match engine.reconfigure(config).await {
                Ok(Ok(())) => {}
                Ok(Err(errors)) => warn!(site, %errors, "configuration changes refused"),
                Err(_) => return Ok(()),
            }
        }
    }
}

fn rules_key(site: &str) -> String {
    format!("rules.{site}")
}

fn notices_key(site: &str) -> String {
    format!("notices.{site}")
}

/// The notices kept under a site's key.
fn notices_of(site: &str, value: &[u8]) -> Result<Vec<Notice>, StoreError> {
    serde_json::from_slice(value).map_err(|error| {
        StoreError::Unavailable(format!(
            "the notices of site {site} (key {}) do not parse: {error}",
            notices_key(site)
        ))
    })
}

impl ChangeStore for NatsChangeStore {
    fn load_rules<'a>(
        &'a self,
        site: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RuleConfig>>, StoreError>> {
        Box::pin(async move {
            let entry = self
                .kv
                .entry(rules_key(site))
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))?;
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    serde_json::from_slice(&entry.value)
                        .map(Some)
                        .map_err(|error| {
                            StoreError::Unavailable(format!(
                                "the alert rules of site {site} do not parse: {error}"
                            ))
                        })
                }
                _ => Ok(None),
            }
        })
    }

    fn save_rules<'a>(
        &'a self,
        site: &'a str,
        rules: &'a [RuleConfig],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let value = Bytes::from(
                serde_json::to_vec(rules).map_err(|e| StoreError::Unavailable(e.to_string()))?,
            );
            self.kv
                .put(rules_key(site), value)
                .await
                .map(|_| ())
                .map_err(|error| StoreError::Unavailable(error.to_string()))
        })
    }

    fn load_notices<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<KeptNotices, StoreError>> {
        Box::pin(async move {
            let entry = self
                .kv
                .entry(notices_key(site))
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))?;
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => Ok(KeptNotices {
                    revision: entry.revision,
                    notices: notices_of(site, &entry.value)?,
                }),
                Some(entry) => Ok(KeptNotices {
                    revision: entry.revision,
                    notices: Vec::new(),
                }),
                None => Ok(KeptNotices::default()),
            }
        })
    }

    fn save_notices<'a>(
        &'a self,
        site: &'a str,
        notices: &'a [Notice],
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.compare_and_set(notices_key(site), notices, revision)
                .await
        })
    }

    fn load<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<Vec<SiteChange>, StoreError>> {
        Box::pin(async move { Ok(self.read(site).await?.1) })
    }

    fn append<'a>(
        &'a self,
        site: &'a str,
        recorded: usize,
        change: &'a SiteChange,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (revision, mut changes) = self.read(site).await?;
            if changes.len() != recorded {
                return Err(StoreError::Conflict);
            }
            changes.push(change.clone());
            self.compare_and_set(key(site), &changes, revision)
                .await
                .map(|_| ())
        })
    }
}

/// Applies alert rules another instance set for a site.
async fn apply_rules(site: &str, value: &[u8], engine: &EngineHandle) {
    let rules: Vec<RuleConfig> = match serde_json::from_slice(value) {
        Ok(rules) => rules,
        Err(error) => {
            warn!(site, %error, "alert rules do not parse: ignored");
            return;
        }
    };
    let applied = engine
        .with_alerts(site, move |alerts, now| {
            match alerts.replace_rules(&rules, now) {
                Ok(evaluation) => (evaluation, Ok(())),
                Err(errors) => (vigie_alerts::Evaluation::default(), Err(errors)),
            }
        })
        .await;
    if let Ok(Some(Err(errors))) = applied {
        warn!(site, %errors, "alert rules of another instance refused");
    }
}

/// A site's configuration from the file with the recorded changes; changes that no longer fit
/// are skipped with a warning.
pub fn with_changes(mut site: SiteConfig, changes: &[SiteChange]) -> SiteConfig {
    for problem in vigie_api::replay_changes(&mut site, changes) {
        warn!(site = %site.id, "{problem}");
    }
    site
}

/// Replaces each site's alert rules from the file with those last set through the API, if any.
pub async fn load_rules(
    store: &dyn ChangeStore,
    sites: &[SiteConfig],
    rules: &mut Vec<RuleConfig>,
) -> anyhow::Result<()> {
    for site in sites {
        let kept = store
            .load_rules(&site.id)
            .await
            .with_context(|| format!("cannot read the alert rules of site {}", site.id))?;
        if let Some(kept) = kept {
            info!(site = %site.id, rules = kept.len(), "alert rules set through the API replace the file's");
            rules.retain(|rule| rule.site != site.id);
            rules.extend(kept);
        }
    }
    Ok(())
}

/// Applies the recorded changes of every site to the configuration from the file, at start.
pub async fn load_changes(store: &dyn ChangeStore, sites: &mut [SiteConfig]) -> anyhow::Result<()> {
    for site in sites.iter_mut() {
        let changes = store.load(&site.id).await.with_context(|| {
            format!("cannot read the configuration changes of site {}", site.id)
        })?;
        if !changes.is_empty() {
            info!(site = %site.id, changes = changes.len(), "configuration changes made through the Admin API applied over the file");
            *site = with_changes(site.clone(), &changes);
        }
    }
    Ok(())
}
