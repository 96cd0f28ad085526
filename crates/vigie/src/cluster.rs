//! Several instances on one NATS: which instance processes which site (`[cluster]`).
//!
//! Each site is processed by one instance at a time, the holder of its lease: the key
//! `site.<site>` of a JetStream KV bucket, written with compare-and-set on its revision and
//! renewed every third of the lease duration. The bucket's maximum age is the lease duration:
//! the server itself forgets the lease of an instance that stopped renewing it, and another
//! instance takes the site over, rebuilds its day from the event stream and goes live. An
//! instance that cannot renew a lease in time gives the site up on its own, before the server
//! lets anybody else take it, so that two instances never process a site together.
//!
//! Every instance also keeps a presence key `instance.<name>` (renewed the same way) naming
//! the sites it prefers: the instances share the sites fairly, a preferred site goes to the
//! instance that prefers it, and an instance holding more than its share hands one site a
//! round to one holding less. Who takes what is decided by [`plan`], a pure function of what
//! the bucket says.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_engine::{EngineHandle, SiteFeed};
use vigie_ingest::{Ingest, IngestError, SiteSource};

/// The `[cluster]` section: with it, `vigie serve` shares the configured sites with the other
/// instances on the same NATS (docs/operations.md, "Several instances").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's name, unique among the instances (letters, digits, `-`, `_`); the host
    /// name by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The JetStream KV bucket of the leases (created when missing).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// How long a lease lasts without renewal: the longest a dead instance's sites wait
    /// before another instance takes them over.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: HumanDuration,
    /// Sites this instance takes first when they are free (and gets back from an instance
    /// that does not prefer them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefer: Vec<String>,
    /// How often, at most, the views of a changing site are published for the other
    /// instances (and at least once a second).
    #[serde(default = "default_publish_interval")]
    pub publish_interval: HumanDuration,
}

fn default_publish_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}

fn default_bucket() -> String {
    "vigie_sites".to_owned()
}

fn default_lease_ttl() -> HumanDuration {
    HumanDuration::secs(6)
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            instance: None,
            bucket: default_bucket(),
            lease_ttl: default_lease_ttl(),
            prefer: Vec::new(),
            publish_interval: default_publish_interval(),
        }
    }
}

/// What a name (instance, bucket) may be made of: it becomes part of a NATS subject.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ClusterConfig {
    /// Checks the section against the configured sites, every problem with its path.
    pub fn validate(&self, path: &str, sites: &[String]) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if let Some(instance) = &self.instance
            && !valid_name(instance)
        {
            problems.push(format!(
                "{path}.instance: {instance:?} must be letters, digits, '-' or '_'"
            ));
        }
        if !valid_name(&self.bucket) {
            problems.push(format!(
                "{path}.bucket: {:?} must be letters, digits, '-' or '_'",
                self.bucket
            ));
        }
        let ttl = self.lease_ttl.0;
        if ttl < Duration::from_secs(2) || ttl > Duration::from_secs(300) {
            problems.push(format!(
                "{path}.lease_ttl: {} is outside 2s..5m",
                humantime::format_duration(ttl)
            ));
        }
        let publish = self.publish_interval.0;
        if publish < Duration::from_millis(10) || publish > Duration::from_secs(1) {
            problems.push(format!(
                "{path}.publish_interval: {} is outside 10ms..1s",
                humantime::format_duration(publish)
            ));
        }
        for site in &self.prefer {
            if !sites.contains(site) {
                problems.push(format!(
                    "{path}.prefer: site {site:?} is not configured ([[site]])"
                ));
            }
        }
        ConfigErrors(problems).into_result()
    }

    /// This instance's name: configured, else the host name (made a valid name).
    pub fn instance_name(&self) -> String {
        if let Some(name) = &self.instance {
            return name.clone();
        }
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let name: String = host
            .chars()
            .map(|c| if valid_name(&c.to_string()) { c } else { '-' })
            .collect();
        if name.is_empty() {
            "vigie".to_owned()
        } else {
            name
        }
    }
}

/// What the bucket says at the start of a round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Every configured site and the instance holding its lease (`None`: free).
    pub leases: BTreeMap<String, Option<String>>,
    /// The live instances (this one included) and the sites each prefers.
    pub instances: BTreeMap<String, Vec<String>>,
}

/// What an instance does in a round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free sites this instance may take, in order: try them until `room` are taken (another
    /// instance may be quicker for some).
    pub take: Vec<String>,
    /// How many of them to take.
    pub room: usize,
    /// A site to hand over (at most one a round).
    pub release: Option<String>,
}

/// Rounds a free site waits for the instance that prefers it before anybody takes it.
const PREFERRED_WAIT_ROUNDS: u32 = 2;
/// Rounds after which a free site is taken by any instance, whatever its share.
const ABANDONED_ROUNDS: u32 = 5;

/// Decides what instance `me` takes and gives up, given the census and how many rounds each
/// free site has been seen free in a row. Fair share: the sites divided by the live
/// instances, rounded up.
pub fn plan(me: &str, census: &Census, free_rounds: &BTreeMap<String, u32>) -> Plan {
    let live = census.instances.len().max(1);
    let share = census.leases.len().div_ceil(live);
    let mine: &[String] = census.instances.get(me).map_or(&[], Vec::as_slice);
    let owned = |instance: &str| {
        census
            .leases
            .values()
            .filter(|owner| owner.as_deref() == Some(instance))
            .count()
    };
    let preferred_by_other = |site: &str| {
        census
            .instances
            .iter()
            .any(|(name, prefer)| name != me && prefer.iter().any(|p| p == site))
    };
    let free: Vec<&String> = census
        .leases
        .iter()
        .filter(|(_, owner)| owner.is_none())
        .map(|(site, _)| site)
        .collect();

    let mut plan = Plan::default();
    let holding = owned(me);
    // Sites it prefers, and sites nobody took for long, whatever its share; then the others
    // (but not those waiting for the instance that prefers them), up to its share.
    let mut must = Vec::new();
    let mut may = Vec::new();
    for site in &free {
        let rounds = free_rounds.get(site.as_str()).copied().unwrap_or(0);
        if mine.contains(site) || rounds >= ABANDONED_ROUNDS {
            must.push((*site).clone());
        } else if !preferred_by_other(site) || rounds >= PREFERRED_WAIT_ROUNDS {
            may.push((*site).clone());
        }
    }
    let room = share.saturating_sub(holding + must.len()).min(may.len());
    plan.room = must.len() + room;
    plan.take = must;
    if room > 0 {
        plan.take.extend(may);
    }
    if !free.is_empty() {
        return plan;
    }
    // Every site is held: hand over a site another live instance prefers, else one above
    // this instance's share to an instance below it. Never a preferred site of its own.
    let mut held = census
        .leases
        .iter()
        .filter(|(site, owner)| owner.as_deref() == Some(me) && !mine.contains(site))
        .map(|(site, _)| site);
    plan.release = held.clone().find(|site| preferred_by_other(site)).cloned();
    if plan.release.is_none() && holding > share {
        let below = census
            .instances
            .keys()
            .any(|name| name != me && owned(name) < share);
        if below {
            plan.release = held.next_back().cloned();
        }
    }
    plan
}

/// The value of a lease or presence key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
struct Record {
    instance: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    prefer: Vec<String>,
}

/// The cluster's metrics.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    owned: Family<SiteLabel, Gauge>,
    takeovers: Counter,
    lost: Counter,
    released: Counter,
    errors: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

impl ClusterMetrics {
    /// Registers the metrics.
    pub fn new(registry: &mut Registry) -> ClusterMetrics {
        let metrics = ClusterMetrics {
            owned: Family::default(),
            takeovers: Counter::default(),
            lost: Counter::default(),
            released: Counter::default(),
            errors: Counter::default(),
        };
        registry.register(
            "vigie_cluster_site_owned",
            "1 while this instance processes the site (holds its lease)",
            metrics.owned.clone(),
        );
        registry.register(
            "vigie_cluster_takeovers",
            "Sites this instance took (each rebuilds the site's day from the stream)",
            metrics.takeovers.clone(),
        );
        registry.register(
            "vigie_cluster_leases_lost",
            "Sites given up because their lease could not be renewed in time",
            metrics.lost.clone(),
        );
        registry.register(
            "vigie_cluster_sites_handed_over",
            "Sites handed over to another instance (sharing, preference, shutdown)",
            metrics.released.clone(),
        );
        registry.register(
            "vigie_cluster_bucket_errors",
            "Failed reads and writes of the lease bucket",
            metrics.errors.clone(),
        );
        metrics
    }

    fn set_owned(&self, site: &str, owned: bool) {
        let label = SiteLabel {
            site: site.to_owned(),
        };
        self.owned.get_or_create(&label).set(i64::from(owned));
    }
}

/// Attempts at opening the lease bucket before giving up.
const BUCKET_ATTEMPTS: u32 = 10;

/// Opens the lease bucket, creating it when missing: its stream is made as the KV API makes
/// it, directly (async-nats's own bucket creation first reads account details that NATS 2.9
/// does not send). Its maximum age is the lease duration: brought in line when the
/// configuration changed it.
async fn open_bucket(
    config: &ClusterConfig,
    context: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<kv::Store> {
    let ttl = config.lease_ttl.0;
    let bucket = &config.bucket;
    let stream = format!("KV_{bucket}");
    match context.get_stream(&stream).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .context("lease bucket")?
                .config
                .clone();
            if current.max_age != ttl {
                info!(%bucket, "lease duration changed: updating the bucket");
                context
                    .update_stream(jetstream::stream::Config {
                        max_age: ttl,
                        ..current
                    })
                    .await
                    .with_context(|| {
                        format!("cannot update the KV bucket {bucket:?} (cluster.bucket)")
                    })?;
            }
        }
        Err(_) => {
            let settings = jetstream::stream::Config {
                name: stream.clone(),
                description: Some("Vigie: which instance processes which site".to_owned()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                ..jetstream::stream::Config::default()
            };
            vigie_ingest::get_or_create_stream(context, settings)
                .await
                .with_context(|| {
                    format!("cannot create the KV bucket {bucket:?} (cluster.bucket)")
                })?;
        }
    }
    crate::changes::open_key_value(context, bucket)
        .await
        .with_context(|| format!("the KV bucket {bucket:?} (cluster.bucket)"))
}

/// A site this instance processes.
struct Held {
    revision: u64,
    /// Past this instant the server may have let the lease expire: the site must be given
    /// up. Counted from before the last renewal was sent, so always before the expiry.
    valid_until: Instant,
    stop: CancellationToken,
    ingest: JoinHandle<Result<(), IngestError>>,
}

/// The ownership of the sites, for one instance.
pub struct Cluster {
    name: String,
    ttl: Duration,
    prefer: Vec<String>,
    kv: kv::Store,
    sites: Vec<SiteSource>,
    ingest: Ingest,
    engine: EngineHandle,
    metrics: ClusterMetrics,
    held: BTreeMap<String, Held>,
    /// The owner each site not held here was last reported with (`""`: none).
    elsewhere: BTreeMap<String, String>,
    free_rounds: BTreeMap<String, u32>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("held", &self.held.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const SITE_KEY: &str = "site.";
const INSTANCE_KEY: &str = "instance.";

impl Cluster {
    /// Opens (creating when missing) the lease bucket. `replicas`: as the event stream's.
    pub async fn open(
        config: &ClusterConfig,
        context: &jetstream::Context,
        replicas: usize,
        sites: Vec<SiteSource>,
        ingest: Ingest,
        engine: EngineHandle,
        metrics: ClusterMetrics,
    ) -> anyhow::Result<Cluster> {
        // A clustered JetStream that has just started, or is busy with other instances
        // starting, may time out: tried again for about a minute before giving up.
        let mut attempt = 1;
        let kv = loop {
            match open_bucket(config, context, replicas).await {
                Ok(kv) => break kv,
                Err(error) if attempt < BUCKET_ATTEMPTS => {
                    warn!(error = %format!("{error:#}"), attempt, "cannot open the lease bucket yet; trying again");
                    tokio::time::sleep(Duration::from_secs(attempt.into())).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        };
        let ttl = config.lease_ttl.0;
        let mut cluster = Cluster {
            name: config.instance_name(),
            ttl,
            prefer: config.prefer.clone(),
            kv,
            sites,
            ingest,
            engine,
            metrics,
            held: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
            free_rounds: BTreeMap::new(),
        };
        // Until a round says otherwise, no site is processed here: readers are told so.
        for site in cluster.sites.clone() {
            cluster.report_elsewhere(&site.site, "").await;
        }
        Ok(cluster)
    }

    fn record(&self) -> bytes::Bytes {
        let record = Record {
            instance: self.name.clone(),
            prefer: self.prefer.clone(),
        };
        serde_json::to_vec(&record).unwrap_or_default().into()
    }

    /// Takes, renews and hands over leases until `shutdown`; then stops its sites (what is
    /// in flight is applied and acknowledged) and releases their leases, so that other
    /// instances take them over at once.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!(instance = %self.name, sites = self.sites.len(), lease = %humantime::format_duration(self.ttl), "sharing the sites with the other instances");
        let round = self.ttl / 3;
        loop {
            self.round().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(round) => {}
            }
        }
        let sites: Vec<String> = self.held.keys().cloned().collect();
        for site in sites {
            self.hand_over(&site).await;
        }
        let _ = self.kv.delete(format!("{INSTANCE_KEY}{}", self.name)).await;
        Ok(())
    }

    async fn round(&mut self) {
        if let Err(error) = self
            .kv
            .put(format!("{INSTANCE_KEY}{}", self.name), self.record())
            .await
        {
            self.metrics.errors.inc();
            warn!(%error, "cannot renew this instance's presence");
        }
        self.renew().await;
        let census = match self.census().await {
            Ok(census) => census,
            Err(error) => {
                self.metrics.errors.inc();
                warn!(error = %format!("{error:#}"), "cannot read the lease bucket");
                return;
            }
        };
        for (site, owner) in &census.leases {
            match owner {
                None => *self.free_rounds.entry(site.clone()).or_default() += 1,
                Some(_) => {
                    self.free_rounds.remove(site);
                }
            }
        }
        let plan = plan(&self.name, &census, &self.free_rounds);
        let mut taken = 0;
        for site in &plan.take {
            if taken == plan.room {
                break;
            }
            if self.take(site).await {
                taken += 1;
            }
        }
        if let Some(site) = &plan.release {
            self.hand_over(site).await;
        }
        for (site, owner) in census.leases {
            if !self.held.contains_key(&site) {
                let owner = owner.unwrap_or_default();
                if self.elsewhere.get(&site) != Some(&owner) {
                    self.report_elsewhere(&site, &owner).await;
                }
            }
        }
    }

    /// Renews every lease held; gives up those that another instance took or that could not
    /// be renewed in time.
    async fn renew(&mut self) {
        let mut lost = Vec::new();
        let value = self.record();
        for (site, held) in &mut self.held {
            if held.ingest.is_finished() {
                warn!(site = %site, "the site's consumption stopped: handing the site over");
                lost.push((site.clone(), false));
                continue;
            }
            let sent = Instant::now();
            match self
                .kv
                .update(format!("{SITE_KEY}{site}"), value.clone(), held.revision)
                .await
            {
                Ok(revision) => {
                    held.revision = revision;
                    held.valid_until = sent + self.ttl.mul_f64(0.9);
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    warn!(site = %site, "the site's lease was taken by another instance");
                    lost.push((site.clone(), true));
                }
                Err(error) => {
                    self.metrics.errors.inc();
                    warn!(site = %site, %error, "cannot renew the site's lease");
                    if Instant::now() >= held.valid_until {
                        lost.push((site.clone(), true));
                    }
                }
            }
        }
        for (site, lease_lost) in lost {
            if lease_lost {
                self.metrics.lost.inc();
                warn!(site = %site, "lease lost: this instance stops processing the site");
                self.stop(&site, "").await;
            } else {
                self.hand_over(&site).await;
            }
        }
    }

    async fn census(&self) -> anyhow::Result<Census> {
        let mut census = Census::default();
        for site in &self.sites {
            let entry = self.kv.entry(format!("{SITE_KEY}{}", site.site)).await?;
            let owner = entry
                .filter(|entry| entry.operation == kv::Operation::Put)
                .and_then(|entry| serde_json::from_slice::<Record>(&entry.value).ok())
                .map(|record| record.instance);
            census.leases.insert(site.site.clone(), owner);
        }
        // The presence keys, listed by the stream's subjects (one request; listing the
        // bucket's keys would need a consumer).
        let prefix = format!("$KV.{}.{INSTANCE_KEY}", self.kv.name);
        let subjects: Vec<(String, usize)> = self
            .kv
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await?
            .try_collect()
            .await?;
        for (subject, _) in subjects {
            let Some(name) = subject.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(value) = self.kv.get(format!("{INSTANCE_KEY}{name}")).await?
                && let Ok(record) = serde_json::from_slice::<Record>(&value)
            {
                census.instances.insert(name.to_owned(), record.prefer);
            }
        }
        census
            .instances
            .entry(self.name.clone())
            .or_insert_with(|| self.prefer.clone());
        Ok(census)
    }

    /// Tries to take a free site; on success rebuilds its day and goes live. False when
    /// another instance was quicker.
    async fn take(&mut self, site: &str) -> bool {
        let Some(source) = self.sites.iter().find(|s| s.site == site).cloned() else {
            return false;
        };
        let sent = Instant::now();
        let key = format!("{SITE_KEY}{site}");
        let Ok(revision) = self.kv.create(key, self.record()).await else {
            // The next census says which instance holds it.
            return false;
        };
        info!(site, instance = %self.name, "took the site: rebuilding its day from the stream");
        self.metrics.takeovers.inc();
        self.metrics.set_owned(site, true);
        self.elsewhere.remove(site);
        let recovering = self.engine.restart_site(site, SiteFeed::recovering()).await;
        if recovering.is_err() {
            // Shutting down: the lease expires by itself.
            return false;
        }
        let stop = CancellationToken::new();
        let ingest = tokio::spawn(self.ingest.site(source, stop.clone()));
        self.held.insert(
            site.to_owned(),
            Held {
                revision,
                valid_until: sent + self.ttl.mul_f64(0.9),
                stop,
                ingest,
            },
        );
        true
    }

    /// Stops processing a site and releases its lease so that another instance takes it now.
    async fn hand_over(&mut self, site: &str) {
        let Some(revision) = self.held.get(site).map(|held| held.revision) else {
            return;
        };
        self.stop(site, "").await;
        self.metrics.released.inc();
        info!(site, "handing the site over");
        if let Err(error) = self
            .kv
            .delete_expect_revision(format!("{SITE_KEY}{site}"), Some(revision))
            .await
        {
            // It expires by itself within the lease duration.
            warn!(site, %error, "cannot release the site's lease");
        }
    }

    /// Stops the site's consumption (what is in flight is applied and acknowledged) and
    /// clears its figures here.
    async fn stop(&mut self, site: &str, owner: &str) {
        let Some(held) = self.held.remove(site) else {
            return;
        };
        held.stop.cancel();
        match held.ingest.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(site, %error, "the site's consumption failed"),
            Err(error) => warn!(site, %error, "the site's consumption stopped abnormally"),
        }
        self.ingest.forget_site(site);
        self.metrics.set_owned(site, false);
        self.elsewhere.insert(site.to_owned(), owner.to_owned());
        // Nothing of the site is kept here: figures, alerts and history are the new owner's.
        let _ = self
            .engine
            .restart_site(site, SiteFeed::elsewhere(owner))
            .await;
    }

    /// Tells readers which instance processes a site not processed here.
    async fn report_elsewhere(&mut self, site: &str, owner: &str) {
        self.elsewhere.insert(site.to_owned(), owner.to_owned());
        // The engine stops only after the cluster: a failure here is the shutdown.
        let _ = self.engine.set_feed(site, SiteFeed::elsewhere(owner)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(leases: &[(&str, Option<&str>)], instances: &[(&str, &[&str])]) -> Census {
        Census {
            leases: leases
                .iter()
                .map(|(site, owner)| (site.to_string(), owner.map(str::to_owned)))
                .collect(),
            instances: instances
                .iter()
                .map(|(name, prefer)| {
                    (
                        name.to_string(),
                        prefer.iter().map(|p| p.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Try `sites` in order, take `room` of them.
    fn take(sites: &[&str], room: usize) -> Plan {
        Plan {
            take: sites.iter().map(|s| s.to_string()).collect(),
            room,
            release: None,
        }
    }

    #[test]
    fn a_lone_instance_takes_every_site() {
        let census = census(&[("a", None), ("b", None), ("c", None)], &[("v1", &[])]);
        assert_eq!(
            plan("v1", &census, &BTreeMap::new()),
            take(&["a", "b", "c"], 3)
        );
    }

    #[test]
    fn instances_take_no_more_than_their_share_of_free_sites() {
        let sites: Vec<(&str, Option<&str>)> = ["a", "b", "c", "d", "e", "f"]
            .into_iter()
            .map(|s| (s, None))
            .collect();
        let census = census(&sites, &[("v1", &[]), ("v2", &[]), ("v3", &[])]);
        assert_eq!(
            plan("v2", &census, &BTreeMap::new()),
            take(&["a", "b", "c", "d", "e", "f"], 2)
        );
        let half = census_with_owner(&census, &[("a", "v1"), ("b", "v2"), ("c", "v3")]);
        assert_eq!(
            plan("v2", &half, &BTreeMap::new()),
            take(&["d", "e", "f"], 1)
        );
    }

    #[test]
    fn a_site_preferred_by_a_live_instance_waits_for_it_then_goes_to_anyone() {
        let census = census(&[("a", None), ("b", None)], &[("v1", &["a"]), ("v2", &[])]);
        assert_eq!(plan("v2", &census, &BTreeMap::new()), take(&["b"], 1));
        assert_eq!(plan("v1", &census, &BTreeMap::new()), take(&["a"], 1));
        // The instance that prefers it does not come: the site is taken like any other.
        let waited = BTreeMap::from([("a".to_owned(), PREFERRED_WAIT_ROUNDS)]);
        assert_eq!(plan("v2", &census, &waited), take(&["a", "b"], 1));
    }

    #[test]
    fn preferred_sites_are_taken_beyond_the_share() {
        let census = census(
            &[("a", None), ("b", None)],
            &[("v1", &["a", "b"]), ("v2", &[])],
        );
        assert_eq!(plan("v1", &census, &BTreeMap::new()), take(&["a", "b"], 2));
    }

    #[test]
    fn a_site_left_free_is_taken_whatever_the_share() {
        let census = census(
            &[("a", Some("v1")), ("b", None)],
            &[("v1", &[]), ("v2", &[])],
        );
        assert_eq!(plan("v1", &census, &BTreeMap::new()), Plan::default());
        let abandoned = BTreeMap::from([("b".to_owned(), ABANDONED_ROUNDS)]);
        assert_eq!(plan("v1", &census, &abandoned), take(&["b"], 1));
    }

    #[test]
    fn an_instance_above_its_share_hands_one_site_a_round_to_one_below() {
        let sites: Vec<(&str, Option<&str>)> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|s| (s, Some("v1")))
            .collect();
        let census = census(&sites, &[("v1", &["a"]), ("v2", &[])]);
        assert_eq!(
            plan("v1", &census, &BTreeMap::new()).release.as_deref(),
            Some("d")
        );
        assert_eq!(plan("v2", &census, &BTreeMap::new()), Plan::default());
        // At its share: nothing moves.
        let shared = census_with_owner(&census, &[("c", "v2"), ("d", "v2")]);
        assert_eq!(plan("v1", &shared, &BTreeMap::new()), Plan::default());
    }

    #[test]
    fn a_site_goes_back_to_the_live_instance_that_prefers_it() {
        let census = census(
            &[("a", Some("v1")), ("b", Some("v2"))],
            &[("v1", &[]), ("v2", &["a"])],
        );
        assert_eq!(
            plan("v1", &census, &BTreeMap::new()).release.as_deref(),
            Some("a")
        );
        // Never while some site is free (an instance may be dying).
        let free = census_with_free(&census, "c");
        assert_eq!(plan("v1", &free, &BTreeMap::new()).release, None);
    }

    fn census_with_owner(census: &Census, owners: &[(&str, &str)]) -> Census {
        let mut census = census.clone();
        for (site, owner) in owners {
            census
                .leases
                .insert(site.to_string(), Some(owner.to_string()));
        }
        census
    }

    fn census_with_free(census: &Census, site: &str) -> Census {
        let mut census = census.clone();
        census.leases.insert(site.to_owned(), None);
        census
    }

    #[test]
    fn settings_are_checked_against_the_sites() {
        let config = ClusterConfig {
            instance: Some("vigie 1".into()),
            bucket: "sites.leases".into(),
            lease_ttl: HumanDuration::secs(1),
            prefer: vec!["paris".into(), "nowhere".into()],
            publish_interval: HumanDuration::secs(2),
        };
        let message = config
            .validate("cluster", &["paris".to_owned()])
            .unwrap_err()
            .to_string();
        for expected in [
            "cluster.instance: \"vigie 1\"",
            "cluster.bucket: \"sites.leases\"",
            "cluster.lease_ttl: 1s is outside",
            "cluster.prefer: site \"nowhere\" is not configured",
            "cluster.publish_interval: 2s is outside",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing in {message}"
            );
        }
        assert!(ClusterConfig::default().validate("cluster", &[]).is_ok());
        assert!(valid_name(&ClusterConfig::default().instance_name()));
    }
}
