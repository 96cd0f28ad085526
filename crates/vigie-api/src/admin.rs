//! The `Admin` service: a site's configuration read and changed while Vigie runs.
//!
//! A change is checked (the request's fields, then the whole site as the configuration file
//! is checked), kept in the change store, then applied by the engine; if it cannot be kept,
//! nothing is applied. Changes of all sites go one at a time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::Mutex;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use vigie_alerts::RuleConfig;
use vigie_core::config::{ConfigErrors, HumanDuration, SiteChange};
use vigie_core::{QueueConfig, SiteConfig, SlVariant, TeamConfig};
use vigie_engine::{EngineHandle, EngineStopped};
use vigie_proto::v1 as pb;
use vigie_proto::v1::admin_server::Admin;

use crate::auth::{Authenticator, Principal, permission_denied};
use crate::metrics::ApiMetrics;
use crate::notices::Notice;

/// A change store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another instance recorded a change of the site meanwhile.
    #[error("another change of the site was recorded at the same time")]
    Conflict,
    /// The store cannot be read or written.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the changes made through the Admin API are kept, per site, in order.
pub trait ChangeStore: Send + Sync + std::fmt::Debug {
    /// The changes of a site, oldest first.
    fn load<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<Vec<SiteChange>, StoreError>>;
    /// Records a change after exactly `recorded` earlier ones (else [`StoreError::Conflict`]).
    fn append<'a>(
        &'a self,
        site: &'a str,
        recorded: usize,
        change: &'a SiteChange,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The site's alert rules as last set through the API; `None` when never set (the
    /// configuration file's rules apply).
    fn load_rules<'a>(
        &'a self,
        site: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RuleConfig>>, StoreError>>;
    /// Keeps the site's alert rules, replacing what was kept.
    fn save_rules<'a>(
        &'a self,
        site: &'a str,
        rules: &'a [RuleConfig],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The site's wallboard notices as last kept, newest first (empty, revision 0, when none
    /// ever were). Notices that expired since are among them: the reader drops them.
    fn load_notices<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<KeptNotices, StoreError>>;
    /// Keeps the site's wallboard notices, replacing what was kept at `revision` (else
    /// [`StoreError::Conflict`]: another instance changed them since); the new revision.
    fn save_notices<'a>(
        &'a self,
        site: &'a str,
        notices: &'a [Notice],
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// A site's wallboard notices as kept, and the revision they were kept at (0: never kept).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeptNotices {
    /// Increases with every save.
    pub revision: u64,
    /// Newest first.
    pub notices: Vec<Notice>,
}

/// Changes kept in local files, one JSON Lines file per site (the embedded demo's store); alert
/// rules and wallboard notices in one JSON file per site each.
#[derive(Debug)]
pub struct FileChangeStore {
    dir: PathBuf,
    /// The revision of each site's notices: the saves made by this process (the files are
    /// not shared between processes).
    notice_revisions: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl FileChangeStore {
    /// A store in `dir` (created when missing).
    pub fn new(dir: PathBuf) -> FileChangeStore {
        FileChangeStore {
            dir,
            notice_revisions: std::sync::Mutex::default(),
        }
    }

    fn path(&self, site: &str) -> PathBuf {
        self.dir.join(format!("{site}.changes.jsonl"))
    }

    fn rules_path(&self, site: &str) -> PathBuf {
        self.dir.join(format!("{site}.alert-rules.json"))
    }

    fn notices_path(&self, site: &str) -> PathBuf {
        self.dir.join(format!("{site}.notices.json"))
    }

    /// Writes `value` as JSON to `path`, replacing the file whole.
    async fn write_json(
        &self,
        path: PathBuf,
        value: &(impl Serialize + ?Sized),
    ) -> Result<(), StoreError> {
        let unavailable = |error: std::io::Error| {
            StoreError::Unavailable(format!("cannot write {}: {error}", self.dir.display()))
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(unavailable)?;
        let json = serde_json::to_vec_pretty(value)
            .map_err(|error| StoreError::Unavailable(error.to_string()))?;
        // Written aside then renamed: a crash never leaves half a file.
        let partial = path.with_extension("json.partial");
        tokio::fs::write(&partial, json)
            .await
            .map_err(unavailable)?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(unavailable)
    }

    fn notice_revision(&self, site: &str) -> u64 {
        self.notice_revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(site)
            .copied()
            .unwrap_or_default()
    }

    async fn read(&self, site: &str) -> Result<Vec<SiteChange>, StoreError> {
        let path = self.path(site);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot read {}: {error}",
                    path.display()
                )));
            }
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| {
                serde_json::from_str(line).map_err(|error| {
                    StoreError::Unavailable(format!(
                        "{} line {}: {error}",
                        path.display(),
                        number + 1
                    ))
                })
            })
            .collect()
    }
}

impl ChangeStore for FileChangeStore {
    fn load_rules<'a>(
        &'a self,
        site: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RuleConfig>>, StoreError>> {
        Box::pin(async move {
            let path = self.rules_path(site);
            match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                    StoreError::Unavailable(format!("{}: {error}", path.display()))
                }),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(StoreError::Unavailable(format!(
                    "cannot read {}: {error}",
                    path.display()
                ))),
            }
        })
    }

    fn save_rules<'a>(
        &'a self,
        site: &'a str,
        rules: &'a [RuleConfig],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write_json(self.rules_path(site), rules))
    }

    fn load_notices<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<KeptNotices, StoreError>> {
        Box::pin(async move {
            let revision = self.notice_revision(site);
            let path = self.notices_path(site);
            let notices = match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                    StoreError::Unavailable(format!("{}: {error}", path.display()))
                })?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(error) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot read {}: {error}",
                        path.display()
                    )));
                }
            };
            Ok(KeptNotices { revision, notices })
        })
    }

    fn save_notices<'a>(
        &'a self,
        site: &'a str,
        notices: &'a [Notice],
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            if self.notice_revision(site) != revision {
                return Err(StoreError::Conflict);
            }
            self.write_json(self.notices_path(site), notices).await?;
            let mut revisions = self
                .notice_revisions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let kept = revisions.entry(site.to_owned()).or_default();
            *kept += 1;
            Ok(*kept)
        })
    }

    fn load<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<Vec<SiteChange>, StoreError>> {
        Box::pin(self.read(site))
    }

    fn append<'a>(
        &'a self,
        site: &'a str,
        recorded: usize,
        change: &'a SiteChange,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            if self.read(site).await?.len() != recorded {
                return Err(StoreError::Conflict);
            }
            let unavailable = |error: std::io::Error| {
                StoreError::Unavailable(format!("cannot write {}: {error}", self.dir.display()))
            };
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(unavailable)?;
            let mut line = serde_json::to_string(change)
                .map_err(|error| StoreError::Unavailable(error.to_string()))?;
            line.push('\n');
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(site))
                .await
                .map_err(unavailable)?;
            file.write_all(line.as_bytes()).await.map_err(unavailable)?;
            file.sync_all().await.map_err(unavailable)
        })
    }
}

/// Replays stored changes over a site's configuration from the file. A change that no longer
/// fits (the file changed under it) is skipped and reported, never fatal.
pub fn replay_changes(site: &mut SiteConfig, changes: &[SiteChange]) -> Vec<String> {
    let mut skipped = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let mut changed = site.clone();
        let result = change
            .apply(&mut changed)
            .map_err(|problem| problem.to_string())
            .and_then(|()| {
                changed
                    .validate("site")
                    .map_err(|errors| errors.0.join("; "))
            });
        match result {
            Ok(()) => *site = changed,
            Err(problem) => skipped.push(format!("change {} skipped: {problem}", index + 1)),
        }
    }
    skipped
}

/// The `Admin` service.
#[derive(Clone, Debug)]
pub struct AdminService {
    engine: EngineHandle,
    auth: Option<Arc<Authenticator>>,
    store: Arc<dyn ChangeStore>,
    /// Serializes changes, so each is checked against the one before.
    changing: Arc<Mutex<()>>,
    metrics: ApiMetrics,
}

impl AdminService {
    /// The service over `engine`, keeping changes in `store`.
    pub fn new(
        engine: EngineHandle,
        auth: Option<Arc<Authenticator>>,
        store: Arc<dyn ChangeStore>,
        metrics: ApiMetrics,
    ) -> AdminService {
        AdminService {
            engine,
            auth,
            store,
            changing: Arc::new(Mutex::new(())),
            metrics,
        }
    }

    fn admin<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = crate::service::authenticate(self.auth.as_deref(), request)?;
        if principal.may_administer() {
            Ok(principal)
        } else {
            Err(permission_denied())
        }
    }

    async fn current(&self, site: &str) -> Result<SiteConfig, Status> {
        let id = site.to_owned();
        self.engine
            .query(move |state| state.processor.site(&id).map(|s| s.site().clone()))
            .await
            .map_err(|EngineStopped| Status::unavailable("the service is stopping"))?
            .ok_or_else(|| Status::not_found(format!("no site {site:?}")))
    }

    async fn response(&self, config: SiteConfig) -> Result<pb::SiteConfigResponse, Status> {
        let changes = self
            .store
            .load(&config.id)
            .await
            .map_err(|error| Status::unavailable(format!("change store: {error}")))?;
        Ok(pb::SiteConfigResponse {
            config: Some(site_to_wire(&config)),
            changes: changes.len() as u64,
        })
    }

    /// Checks, records and applies a change.
    async fn change(
        &self,
        site: &str,
        change: SiteChange,
    ) -> Result<pb::SiteConfigResponse, Status> {
        let _one_at_a_time = self.changing.lock().await;
        let mut config = self.current(site).await?;
        change
            .apply(&mut config)
            .map_err(|problem| invalid(vec![("team".to_owned(), problem)]))?;
        config
            .validate("site")
            .map_err(|errors| invalid(violations(&errors)))?;
        let recorded = self
            .store
            .load(site)
            .await
            .map_err(|error| Status::unavailable(format!("change store: {error}")))?
            .len();
        self.store
            .append(site, recorded, &change)
            .await
            .map_err(|error| match error {
                StoreError::Conflict => Status::aborted(
                    "another change of the site was recorded at the same time: read the configuration again and retry",
                ),
                StoreError::Unavailable(reason) => {
                    Status::unavailable(format!("the change could not be kept, nothing changed: {reason}"))
                }
            })?;
        tracing::info!(site, change = ?change, "configuration changed through the Admin API");
        self.engine
            .reconfigure(config.clone())
            .await
            .map_err(|EngineStopped| Status::unavailable("the service is stopping"))?
            .map_err(|errors| invalid(violations(&errors)))?;
        let changes = recorded as u64 + 1;
        Ok(pb::SiteConfigResponse {
            config: Some(site_to_wire(&config)),
            changes,
        })
    }

    fn count<R>(
        &self,
        method: &'static str,
        result: Result<R, Status>,
    ) -> Result<Response<R>, Status> {
        self.metrics.call(
            method,
            result.as_ref().map_or_else(Status::code, |_| Code::Ok),
        );
        result.map(Response::new)
    }
}

/// INVALID_ARGUMENT with a BadRequest detail naming each field.
pub(crate) fn invalid(problems: Vec<(String, String)>) -> Status {
    let message = problems
        .iter()
        .map(|(field, problem)| format!("{field}: {problem}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = ErrorDetails::new();
    for (field, problem) in problems {
        details.add_bad_request_violation(field, problem);
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The problems of a site's validation (`path: problem`) as field violations.
fn violations(errors: &ConfigErrors) -> Vec<(String, String)> {
    errors
        .0
        .iter()
        .map(|line| match line.split_once(": ") {
            Some((field, problem)) => (field.to_owned(), problem.to_owned()),
            None => (String::new(), line.clone()),
        })
        .collect()
}

fn variant_from_wire(value: i32, field: &str) -> Result<Option<SlVariant>, (String, String)> {
    match pb::SlVariant::try_from(value) {
        Ok(pb::SlVariant::Unspecified) => Ok(None),
        Ok(pb::SlVariant::Offered) => Ok(Some(SlVariant::Offered)),
        Ok(pb::SlVariant::Answered) => Ok(Some(SlVariant::Answered)),
        Ok(pb::SlVariant::Positive) => Ok(Some(SlVariant::Positive)),
        Err(_) => Err((field.to_owned(), format!("unknown value {value}"))),
    }
}

fn variant_to_wire(variant: Option<SlVariant>) -> i32 {
    match variant {
        None => pb::SlVariant::Unspecified,
        Some(SlVariant::Offered) => pb::SlVariant::Offered,
        Some(SlVariant::Answered) => pb::SlVariant::Answered,
        Some(SlVariant::Positive) => pb::SlVariant::Positive,
    }
    .into()
}

/// Seconds as a duration, if finite and within `range` (problems named after `field`).
fn seconds(
    value: f64,
    field: &str,
    minimum: f64,
    problems: &mut Vec<(String, String)>,
) -> HumanDuration {
    if !value.is_finite() || value < minimum || value > 86_400.0 {
        let floor = if minimum > 0.0 {
            "more than 0"
        } else {
            "at least 0"
        };
        problems.push((
            field.to_owned(),
            format!("must be {floor} and at most 86400 seconds, found {value}"),
        ));
        return HumanDuration(Duration::ZERO);
    }
    HumanDuration(Duration::from_millis((value * 1000.0).round() as u64))
}

fn queue_from_wire(queue: Option<pb::QueueSettings>) -> Result<QueueConfig, Status> {
    let queue = queue.ok_or_else(|| invalid(vec![("queue".into(), "required".into())]))?;
    let mut problems = Vec::new();
    if queue.queue.trim().is_empty() {
        problems.push(("queue.queue".to_owned(), "required".to_owned()));
    }
    let sl_threshold = seconds(
        queue.sl_threshold,
        "queue.sl_threshold",
        f64::MIN_POSITIVE,
        &mut problems,
    );
    let short_abandon = seconds(
        queue.short_abandon,
        "queue.short_abandon",
        0.0,
        &mut problems,
    );
    let aht_target = queue
        .aht_target
        .map(|aht| seconds(aht, "queue.aht_target", f64::MIN_POSITIVE, &mut problems));
    if !(queue.sl_target > 0.0 && queue.sl_target <= 1.0) {
        problems.push((
            "queue.sl_target".to_owned(),
            format!(
                "must be a fraction above 0 and at most 1 (0.8 for 80%), found {}",
                queue.sl_target
            ),
        ));
    }
    let sl_variant = variant_from_wire(queue.sl_variant, "queue.sl_variant")
        .map_err(|problem| problems.push(problem))
        .unwrap_or(None);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(QueueConfig {
        id: queue.queue,
        name: queue.name,
        sl_threshold,
        sl_target: queue.sl_target,
        short_abandon,
        sl_variant,
        aht_target,
    })
}

fn team_from_wire(team: Option<pb::TeamSettings>) -> Result<TeamConfig, Status> {
    let team = team.ok_or_else(|| invalid(vec![("team".into(), "required".into())]))?;
    let mut problems = Vec::new();
    if team.team.trim().is_empty() {
        problems.push(("team.team".to_owned(), "required".to_owned()));
    }
    let sl_variant = variant_from_wire(team.sl_variant, "team.sl_variant")
        .map_err(|problem| problems.push(problem))
        .unwrap_or(None);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(TeamConfig {
        id: team.team,
        name: team.name,
        advisors: team.advisors,
        queues: team.queues,
        sl_variant,
    })
}

/// A site's configuration in its wire form.
pub fn site_to_wire(site: &SiteConfig) -> pb::SiteSettings {
    pb::SiteSettings {
        site: site.id.clone(),
        name: site.name.clone(),
        time_zone: site.time_zone.clone(),
        day_start: site.day_start.clone(),
        sl_variant: variant_to_wire(Some(site.sl_variant)),
        queues: site
            .queues
            .iter()
            .map(|queue| pb::QueueSettings {
                queue: queue.id.clone(),
                name: queue.name.clone(),
                sl_threshold: queue.sl_threshold.0.as_secs_f64(),
                sl_target: queue.sl_target,
                short_abandon: queue.short_abandon.0.as_secs_f64(),
                sl_variant: variant_to_wire(queue.sl_variant),
                aht_target: queue.aht_target.map(|aht| aht.0.as_secs_f64()),
            })
            .collect(),
        teams: site
            .teams
            .iter()
            .map(|team| pb::TeamSettings {
                team: team.id.clone(),
                name: team.name.clone(),
                advisors: team.advisors.clone(),
                queues: team.queues.clone(),
                sl_variant: variant_to_wire(team.sl_variant),
            })
            .collect(),
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(invalid(vec![(field.to_owned(), "required".to_owned())]))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn get_site_config(
        &self,
        request: Request<pb::GetSiteConfigRequest>,
    ) -> Result<Response<pb::SiteConfigResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let site = &request.get_ref().site;
            required("site", site)?;
            let config = self.current(site).await?;
            self.response(config).await
        }
        .await;
        self.count("GetSiteConfig", result)
    }

    async fn upsert_queue(
        &self,
        request: Request<pb::UpsertQueueRequest>,
    ) -> Result<Response<pb::SiteConfigResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let pb::UpsertQueueRequest { site, queue } = request.into_inner();
            required("site", &site)?;
            let queue = queue_from_wire(queue)?;
            self.change(&site, SiteChange::UpsertQueue { queue }).await
        }
        .await;
        self.count("UpsertQueue", result)
    }

    async fn upsert_team(
        &self,
        request: Request<pb::UpsertTeamRequest>,
    ) -> Result<Response<pb::SiteConfigResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let pb::UpsertTeamRequest { site, team } = request.into_inner();
            required("site", &site)?;
            let team = team_from_wire(team)?;
            self.change(&site, SiteChange::UpsertTeam { team }).await
        }
        .await;
        self.count("UpsertTeam", result)
    }

    async fn move_advisor(
        &self,
        request: Request<pb::MoveAdvisorRequest>,
    ) -> Result<Response<pb::SiteConfigResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let pb::MoveAdvisorRequest {
                site,
                advisor,
                team,
            } = request.into_inner();
            required("site", &site)?;
            required("advisor", &advisor)?;
            required("team", &team)?;
            self.change(&site, SiteChange::MoveAdvisor { advisor, team })
                .await
        }
        .await;
        self.count("MoveAdvisor", result)
    }
}
