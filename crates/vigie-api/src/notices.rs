//! The `Notices` service: short notices a supervisor posts to their team's wallboard ("new
//! script for the spring offer", "outage on the mobile app: apologise and log it"), shown until
//! they expire or are withdrawn.
//!
//! [`NoticeBoard`] is the pure part: the notices in force at one site and every rule of the
//! contract (the text, the duration, at most [`MAX_PER_TEAM`] per team, ids, newest first,
//! expiry), with the time passed in. [`NoticesService`] is the shell around it:
//!
//! - who may do what, checked against the site as the engine knows it now (its teams, the team
//!   an advisor is in), the same `PERMISSION_DENIED` whether the target exists or not. The
//!   team of a notice is part of its id (`<serial>/team/<team>` or `<serial>/site`), so a
//!   withdrawal is judged on the id alone, as an alert's acknowledgement is;
//! - a post or a withdrawal is kept in the change store before it is acknowledged; if it
//!   cannot be kept, nothing changes (`UNAVAILABLE`). Saves compare the store's revision, so
//!   that two instances never overwrite each other's change. A site's notices are read from
//!   the store the first time the site is asked about, expired ones dropped, and then follow
//!   what other instances keep ([`NoticesService::kept_elsewhere`]);
//! - with several instances, posts and withdrawals at a site processed elsewhere go to its
//!   owner ([`crate::forward`]); lists and streams are answered everywhere;
//! - a task per site sleeps until the next expiry, takes the expired notices off and tells the
//!   watchers;
//! - `WatchNotices` streams read the latest list from a watch channel: a client that reads
//!   slowly only skips intermediate lists and never holds anyone up.
//!
//! Expiry follows a wall clock ([`WallClock`]): the system's in production, a [`ManualClock`]
//! in tests, so that expiry is tested without waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use vigie_core::{Timestamp, Window};
use vigie_engine::{EngineHandle, EngineState};
use vigie_proto::v1 as pb;
use vigie_proto::v1::notices_server::Notices;

use crate::admin::{ChangeStore, KeptNotices, StoreError, invalid};
use crate::auth::{Authenticator, Principal, Role, permission_denied};
use crate::convert;
use crate::forward::Forwarding;
use crate::history_store::{HistoryError, HistoryStore, NoticeRecord};
use crate::metrics::ApiMetrics;
use crate::read;
use crate::remote::RemoteViews;

/// Longest text of a notice, in characters, once trimmed.
pub const MAX_TEXT_CHARS: usize = 280;
/// Shortest time a notice is shown, in seconds: 1 minute.
pub const MIN_DURATION_SECONDS: f64 = 60.0;
/// Longest time a notice is shown, in seconds: 7 days.
pub const MAX_DURATION_SECONDS: f64 = 7.0 * 86_400.0;
/// How long a notice is shown when the request does not say: 4 hours.
pub const DEFAULT_DURATION_SECONDS: f64 = 4.0 * 3_600.0;
/// Most notices in force for one team, the site-wide ones included: a wallboard has room for
/// a few banners, not for a feed.
pub const MAX_PER_TEAM: usize = 20;
/// Longest sleep on the system clock before looking at it again, so that a wall clock set
/// forward or back (which a monotonic sleep does not see) is noticed within a minute.
const MAX_SYSTEM_SLEEP: Duration = Duration::from_secs(60);
/// Posts and withdrawals that may wait for the history store (each the records of one notice,
/// a record per day it is in force); beyond, they are dropped and counted
/// (`vigie_api_notices_total{event="history_dropped"}`).
pub const NOTICE_HISTORY_BACKLOG: usize = 256;
/// Longest pause between two attempts at an unavailable history store.
const MAX_HISTORY_BACKOFF: Duration = Duration::from_secs(30);
/// Most days one notice is recorded for: a notice lasts at most 7 days, so it touches 8
/// site-local days at most (9 around a change of the clocks).
const MAX_NOTICE_DAYS: usize = 9;

/// How a notice is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeLevel {
    /// A calm banner.
    Info,
    /// A banner that stands out (an outage, a regulatory instruction).
    Important,
}

/// One notice, as it is kept in the change store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique at the site: `<serial>/team/<team>` or `<serial>/site` (see [`audience_of`]).
    pub id: String,
    /// The team it is for; `None` for every team of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The text shown, trimmed.
    pub text: String,
    /// How it is shown.
    pub level: NoticeLevel,
    /// Who posted it (the subject of their token).
    pub posted_by: String,
    /// When it was posted.
    #[serde(with = "rfc3339")]
    pub posted_at: Timestamp,
    /// When it stops being shown.
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
}

impl Notice {
    /// Whether it is still shown at `now`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    /// Whether a wallboard of `team` shows it: the team's own and the site-wide ones.
    pub fn is_for(&self, team: &str) -> bool {
        self.team.as_deref().is_none_or(|own| own == team)
    }
}

/// Instants kept as RFC 3339 text in UTC, to the millisecond, so that the store reads well.
mod rfc3339 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use vigie_core::Timestamp;

    pub fn serialize<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(time)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not an RFC 3339 instant")))
    }
}

/// Whom a notice is for, as its id says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every team of the site.
    Site,
    /// One team.
    Team(&'a str),
}

/// Whom the notice with this id is for; `None` when the text is not a notice id
/// (`<millis>-<counter>/site` or `<millis>-<counter>/team/<team>`).
pub fn audience_of(id: &str) -> Option<Audience<'_>> {
    let (serial, audience) = id.split_once('/')?;
    serial_of(serial)?;
    match audience {
        "site" => Some(Audience::Site),
        _ => audience
            .strip_prefix("team/")
            .filter(|team| !team.is_empty())
            .map(Audience::Team),
    }
}

/// The serial `<millis>-<counter>` at the start of an id.
fn serial_of(serial: &str) -> Option<(i64, u32)> {
    let (millis, counter) = serial.split_once('-')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(millis) || !digits(counter) {
        return None;
    }
    Some((millis.parse().ok()?, counter.parse().ok()?))
}

/// Where a notice comes in a list: by the instant it was posted, and among notices of the same
/// instant by its serial (the order they were posted in).
fn order(notice: &Notice) -> (Timestamp, (i64, u32)) {
    let serial = notice
        .id
        .split_once('/')
        .and_then(|(serial, _)| serial_of(serial))
        .unwrap_or_default();
    (notice.posted_at, serial)
}

fn make_id(serial: (i64, u32), team: Option<&str>) -> String {
    let (millis, counter) = serial;
    match team {
        None => format!("{millis}-{counter}/site"),
        Some(team) => format!("{millis}-{counter}/team/{team}"),
    }
}

/// A notice to post, as asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The team; `None` for every team of the site.
    pub team: Option<String>,
    /// The text, trimmed when posted.
    pub text: String,
    /// How it is shown.
    pub level: NoticeLevel,
    /// How long it is shown, in seconds; 0 for [`DEFAULT_DURATION_SECONDS`].
    pub duration: f64,
    /// Who posts it.
    pub posted_by: String,
}

impl Draft {
    /// Every problem of the text and the duration, named after the request's fields.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let text = self.text.trim();
        let chars = text.chars().count();
        if chars == 0 {
            problems.push(("text".to_owned(), "required".to_owned()));
        } else if chars > MAX_TEXT_CHARS {
            problems.push((
                "text".to_owned(),
                format!("at most {MAX_TEXT_CHARS} characters, found {chars}"),
            ));
        }
        if text.chars().any(is_line_break) {
            problems.push((
                "text".to_owned(),
                "one paragraph: no line breaks".to_owned(),
            ));
        } else if text.chars().any(char::is_control) {
            problems.push((
                "text".to_owned(),
                "no control characters (tabs included)".to_owned(),
            ));
        }
        let duration = self.duration;
        if !(duration == 0.0 || (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&duration)) {
            problems.push((
                "duration".to_owned(),
                format!(
                    "from {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS} seconds (1 minute to 7 days), or 0 for 4 hours; found {duration}"
                ),
            ));
        }
        problems
    }

    /// The duration in milliseconds (checked: 0 means the default).
    fn duration_millis(&self) -> i64 {
        let seconds = if self.duration == 0.0 {
            DEFAULT_DURATION_SECONDS
        } else {
            self.duration
        };
        (seconds * 1000.0).round() as i64
    }
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Why a notice was not posted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request's fields: each field and its problem.
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// A team would have more than [`MAX_PER_TEAM`] notices in force. `team` is the team that
    /// is full (for a site-wide notice, the busiest team; `None` when the site-wide notices
    /// alone fill every wallboard).
    #[error("{}", full_message(.team.as_deref()))]
    Full {
        /// The team that has no room left.
        team: Option<String>,
    },
}

fn full_message(team: Option<&str>) -> String {
    match team {
        Some(team) => format!(
            "team {team:?} already has {MAX_PER_TEAM} notices in force (site-wide ones included): withdraw one first"
        ),
        None => format!(
            "the site already has {MAX_PER_TEAM} site-wide notices in force: withdraw one first"
        ),
    }
}

/// The notices of one site, newest first. Pure: every call that depends on time takes `now`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoticeBoard {
    /// Newest first; may still hold notices that expired since the last [`NoticeBoard::expire`].
    notices: Vec<Notice>,
    /// The serial of the last id given (milliseconds, counter), so that ids never repeat, even
    /// with several posts in the same millisecond or a clock set back.
    last_serial: (i64, u32),
}

impl NoticeBoard {
    /// An empty board.
    pub fn new() -> NoticeBoard {
        NoticeBoard::default()
    }

    /// The board of notices kept earlier: those expired at `now` are dropped (how many is
    /// returned), as are repeats of an id; the rest is ordered newest first. New ids follow
    /// the kept ones.
    pub fn restore(kept: Vec<Notice>, now: Timestamp) -> (NoticeBoard, usize) {
        let mut board = NoticeBoard::new();
        let mut ids = BTreeSet::new();
        let mut expired = 0;
        for notice in kept {
            if let Some(serial) = notice.id.split_once('/').and_then(|(s, _)| serial_of(s)) {
                board.last_serial = board.last_serial.max(serial);
            }
            if !notice.in_force(now) {
                expired += 1;
            } else if ids.insert(notice.id.clone()) {
                board.notices.push(notice);
            }
        }
        board
            .notices
            .sort_by_key(|notice| std::cmp::Reverse(order(notice)));
        (board, expired)
    }

    /// Every notice held, newest first, as it is to be kept (expired ones not yet taken off
    /// included).
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The notices in force at `now`, newest first.
    pub fn in_force(&self, now: Timestamp) -> impl Iterator<Item = &Notice> {
        self.notices
            .iter()
            .filter(move |notice| notice.in_force(now))
    }

    /// What a wallboard of `team` shows at `now`: the team's notices and the site-wide ones,
    /// newest first.
    pub fn for_team<'a>(
        &'a self,
        team: &'a str,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a Notice> {
        self.in_force(now).filter(move |notice| notice.is_for(team))
    }

    /// Posts a notice at `now`, if its fields are valid and its team has room.
    pub fn post(&mut self, draft: Draft, now: Timestamp) -> Result<Notice, Refusal> {
        let problems = draft.problems();
        if !problems.is_empty() {
            return Err(Refusal::Invalid(problems));
        }
        self.check_room(draft.team.as_deref(), now)?;
        let serial = self.next_serial(now);
        let notice = Notice {
            id: make_id(serial, draft.team.as_deref()),
            text: draft.text.trim().to_owned(),
            level: draft.level,
            posted_at: now,
            expires_at: Timestamp(now.0.saturating_add(draft.duration_millis())),
            team: draft.team,
            posted_by: draft.posted_by,
        };
        // Before the first notice posted at or before it: newest first, and among notices of
        // the same instant the one posted last comes first.
        let at = self
            .notices
            .iter()
            .position(|held| held.posted_at <= now)
            .unwrap_or(self.notices.len());
        self.notices.insert(at, notice.clone());
        Ok(notice)
    }

    /// Withdraws the notice `id` at `now`: the notice as it was, ending now. `None` when no
    /// notice with this id is in force (unknown, expired or withdrawn already).
    pub fn withdraw(&mut self, id: &str, now: Timestamp) -> Option<Notice> {
        let index = self.notices.iter().position(|notice| notice.id == id)?;
        let notice = self.notices.remove(index);
        // An expired notice not taken off yet goes too, but it was not withdrawn.
        notice.in_force(now).then_some(Notice {
            expires_at: now,
            ..notice
        })
    }

    /// When the next notice held expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.notices.iter().map(|notice| notice.expires_at).min()
    }

    /// Takes the notices expired at `now` off the board, and returns them.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Notice> {
        let (kept, expired) = std::mem::take(&mut self.notices)
            .into_iter()
            .partition(|notice| notice.in_force(now));
        self.notices = kept;
        expired
    }

    /// Refuses a notice for `team` (every team when `None`) that would make a team's
    /// wallboard show more than [`MAX_PER_TEAM`] notices.
    fn check_room(&self, team: Option<&str>, now: Timestamp) -> Result<(), Refusal> {
        let mut site_wide = 0;
        let mut per_team: BTreeMap<&str, usize> = BTreeMap::new();
        for notice in self.in_force(now) {
            match &notice.team {
                None => site_wide += 1,
                Some(team) => *per_team.entry(team).or_default() += 1,
            }
        }
        let (fullest, count) = match team {
            Some(team) => (Some(team), per_team.get(team).copied().unwrap_or(0)),
            // Teams without notices of their own show the site-wide ones only.
            None => per_team
                .iter()
                .fold((None, 0), |(fullest, most), (&team, &count)| {
                    if count > most {
                        (Some(team), count)
                    } else {
                        (fullest, most)
                    }
                }),
        };
        if site_wide + count >= MAX_PER_TEAM {
            return Err(Refusal::Full {
                team: fullest.map(str::to_owned),
            });
        }
        Ok(())
    }

    fn next_serial(&mut self, now: Timestamp) -> (i64, u32) {
        let (last_millis, last_counter) = self.last_serial;
        self.last_serial = if now.0 > last_millis {
            (now.0, 1)
        } else {
            match last_counter.checked_add(1) {
                Some(counter) => (last_millis, counter),
                None => (last_millis + 1, 1),
            }
        };
        self.last_serial
    }
}

/// The wall clock notices are posted and expire by.
pub trait WallClock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
    /// Resolves once [`WallClock::now`] has reached `at`, or earlier: the caller looks at the
    /// clock again.
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let left = u64::try_from(at.0.saturating_sub(self.now().0)).unwrap_or(0);
        Box::pin(tokio::time::sleep(
            Duration::from_millis(left).min(MAX_SYSTEM_SLEEP),
        ))
    }
}

/// A clock that moves only when told, for tests and simulations.
#[derive(Clone, Debug)]
pub struct ManualClock {
    time: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            time: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Sets the time; sleepers whose instant has come wake up.
    pub fn set(&self, now: Timestamp) {
        self.time.send_replace(now);
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.time
            .send_modify(|now| *now = Timestamp(now.0.saturating_add(millis)));
    }
}

impl WallClock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.time.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let mut time = self.time.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which the sleeper's owner holds.
            let _ = time.wait_for(|now| *now >= at).await;
        })
    }
}

/// The `Notices` service over an engine.
#[derive(Clone, Debug)]
pub struct NoticesService {
    engine: EngineHandle,
    auth: Option<Arc<Authenticator>>,
    store: Arc<dyn ChangeStore>,
    clock: Arc<dyn WallClock>,
    sites: Arc<Sites>,
    streams: Arc<Semaphore>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
    /// Where posts and withdrawals are also recorded by day; shared by every clone, so that
    /// the store given to one (the `History` service's) records the API's posts.
    history: Arc<NoticeHistory>,
    /// Where posts and withdrawals at sites processed elsewhere go.
    forwarding: Forwarding,
    /// The views of the sites processed elsewhere: their teams, and their advisors' teams.
    remote: Arc<RemoteViews>,
}

/// The history store notices are recorded in, and the task that writes to it.
#[derive(Debug, Default)]
struct NoticeHistory {
    store: OnceLock<Arc<dyn HistoryStore>>,
    /// Started with the first record, on the runtime that serves the calls.
    writer: OnceLock<mpsc::Sender<Vec<NoticeRecord>>>,
}

/// The boards of the sites asked about so far.
#[derive(Debug, Default)]
struct Sites {
    loaded: std::sync::Mutex<BTreeMap<String, Arc<SiteNotices>>>,
    /// Loads go one at a time, so that a site is read from the store once.
    loading: Mutex<()>,
}

impl Sites {
    fn get(&self, site: &str) -> Option<Arc<SiteNotices>> {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(site)
            .cloned()
    }
}

/// One site's notices.
#[derive(Debug)]
struct SiteNotices {
    /// Changes (post, withdrawal, expiry) go one at a time, each kept before the next starts.
    board: Mutex<KeptBoard>,
    /// The notices as last changed, for lists and watchers.
    published: watch::Sender<Arc<Vec<Notice>>>,
}

/// A site's board and the store's revision of it.
#[derive(Debug)]
struct KeptBoard {
    board: NoticeBoard,
    /// The revision the board was last kept at, or read from the store at.
    revision: u64,
}

/// Times a change is tried again when another instance changed the same site's notices at the
/// same moment.
const CHANGE_ATTEMPTS: usize = 3;

impl SiteNotices {
    /// Tells lists and watchers what the board now holds.
    fn publish(&self, board: &NoticeBoard, metrics: &ApiMetrics) {
        let held = board.notices().to_vec();
        // Counted first, so that whoever hears of the change reads the gauge up to date.
        metrics.notices_held(self.published.borrow().len(), held.len());
        self.published.send_replace(Arc::new(held));
    }
}

/// The stream of a `WatchNotices` call.
pub type NoticesStream = Pin<Box<dyn Stream<Item = Result<pb::NoticesUpdate, Status>> + Send>>;

impl NoticesService {
    /// The service, keeping notices in `store`, on the system's clock. Without an
    /// authenticator every caller is an anonymous admin (the server allows that only on
    /// loopback). At most `max_streams` `WatchNotices` streams are open at once; they end, and
    /// the expiry tasks stop, when `shutdown` is cancelled.
    pub fn new(
        engine: EngineHandle,
        auth: Option<Arc<Authenticator>>,
        store: Arc<dyn ChangeStore>,
        max_streams: usize,
        metrics: ApiMetrics,
        shutdown: CancellationToken,
    ) -> NoticesService {
        NoticesService {
            engine,
            auth,
            store,
            clock: Arc::new(SystemClock),
            sites: Arc::default(),
            streams: Arc::new(Semaphore::new(max_streams)),
            metrics,
            shutdown,
            history: Arc::default(),
            forwarding: Forwarding::default(),
            remote: RemoteViews::new(Duration::from_secs(5)),
        }
    }

    /// Checks who may read the notices of sites other instances process against the views
    /// they publish.
    pub fn with_remote(mut self, remote: Arc<RemoteViews>) -> NoticesService {
        self.remote = remote;
        self
    }

    /// Sends posts and withdrawals at sites processed elsewhere to their owner.
    pub fn with_forwarding(mut self, forwarding: Forwarding) -> NoticesService {
        self.forwarding = forwarding;
        self
    }

    /// Also records each notice posted or withdrawn in `store`, for every site-local day it is
    /// in force (so that the reports of those days list it once it has left the board). Every
    /// clone of this service records there; the first store given is kept.
    pub fn keep_history_in(&self, store: Arc<dyn HistoryStore>) {
        // A second store is ignored: both would be the server's one store.
        let _ = self.history.store.set(store);
    }

    /// The notices in force now for `team` of `site` that `principal` may read: the team's
    /// own and the site-wide ones, newest first, as `ListNotices` answers them for the team,
    /// with the same checks (PERMISSION_DENIED out of scope, INVALID_ARGUMENT for a team the
    /// site does not have and that has no notice in force), without counting a call.
    pub async fn in_force_for_team(
        &self,
        principal: &Principal,
        site: &str,
        team: &str,
    ) -> Result<Vec<Notice>, Status> {
        required("team", team)?;
        let (selection, notices) = self.open_read(principal, site, team).await?;
        let now = self.clock.now();
        let in_force = notices
            .published
            .borrow()
            .iter()
            .filter(|notice| notice.in_force(now) && selection.shows(notice))
            .cloned()
            .collect();
        Ok(in_force)
    }

    /// Records `notice` in the history store for each site-local day of `[posted_at,
    /// shown_until)` (its display as first posted, so that a withdrawal rewrites every day
    /// recorded at the post), off the caller's path: a store that cannot take it now is retried
    /// by the writer task. Nothing to do without a store.
    async fn record_history(
        &self,
        site: &str,
        notice: &Notice,
        withdrawn: bool,
        shown_until: Timestamp,
    ) {
        let Some(store) = self.history.store.get() else {
            return;
        };
        let wanted = site.to_owned();
        let calendar = self
            .query(move |state| {
                Ok(state
                    .processor
                    .site(&wanted)
                    .map(|site| site.site().calendar()))
            })
            .await;
        let Ok(Some(calendar)) = calendar else {
            tracing::warn!(site, notice = %notice.id, "notice not recorded in the history: the site's days are unknown");
            self.metrics.notices("history_dropped", 1);
            return;
        };
        let first = calendar.day_of(notice.posted_at).date;
        let last_instant = Timestamp(shown_until.0.saturating_sub(1)).max(notice.posted_at);
        let last = calendar.day_of(last_instant).date;
        let records: Vec<NoticeRecord> = first
            .iter_days()
            .take_while(|date| *date <= last)
            .take(MAX_NOTICE_DAYS)
            .map(|date| NoticeRecord {
                site: site.to_owned(),
                date: date.format("%Y-%m-%d").to_string(),
                withdrawn,
                notice: notice.clone(),
            })
            .collect();
        let writer = self.history.writer.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(NOTICE_HISTORY_BACKLOG);
            tokio::spawn(write_notice_history(
                store.clone(),
                receiver,
                self.metrics.clone(),
                self.shutdown.clone(),
            ));
            sender
        });
        if writer.try_send(records).is_err() {
            tracing::warn!(site, notice = %notice.id, "notice not recorded in the history: too many waiting for the store");
            self.metrics.notices("history_dropped", 1);
        }
    }

    /// The service on another clock (tests, simulations). To be set before the first call:
    /// a site's expiry task runs on the clock the site was first asked about with.
    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> NoticesService {
        self.clock = clock;
        self
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        crate::service::authenticate(self.auth.as_deref(), request)
    }

    fn count<R>(&self, method: &'static str, result: Result<R, Status>) -> Result<R, Status> {
        self.metrics.counted(method, result)
    }

    /// Runs a read on the engine's task.
    async fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&EngineState) -> Result<R, Status> + Send + 'static,
    ) -> Result<R, Status> {
        crate::service::query_engine(&self.engine, read).await
    }

    /// What the caller may read of the site's notices (`team` alone with the site-wide ones,
    /// or the whole site as far as their scope goes), and whether `team` is one of the site's
    /// teams now.
    async fn read_scope(
        &self,
        principal: &Principal,
        site: &str,
        team: Option<&str>,
    ) -> Result<(Selection, bool), Status> {
        let (principal, site, team) = (principal.clone(), site.to_owned(), team.map(str::to_owned));
        let remote = self.remote.clone();
        self.query(move |state| {
            // Teams and advisors are read from the day as a whole, here or as the site's owner
            // publishes it.
            let processor = read::source(state, &remote, &principal, &site, Window::Today)?;
            let current_team = match (&principal.role, &principal.advisor) {
                (Role::Advisor, Some(advisor)) => processor.advisor_team(advisor),
                _ => None,
            };
            match team {
                Some(team) => {
                    let readable = principal.may_read_team(&site, &team)
                        || current_team == Some(team.as_str());
                    if !readable {
                        return Err(permission_denied());
                    }
                    let known = processor.has_team(&team);
                    Ok((Selection::team(team), known))
                }
                None if principal.may_read_site(&site) => Ok((Selection::every_team(), true)),
                None => {
                    let teams = match principal.role {
                        Role::Supervisor => principal.teams.iter().cloned().collect(),
                        _ => current_team.map(str::to_owned).into_iter().collect(),
                    };
                    Ok((Selection::teams(teams), true))
                }
            }
        })
        .await
    }

    /// Checks that the site exists (`NOT_FOUND` otherwise), and whether `team` is one of its
    /// teams now (true without a team).
    async fn known_team(&self, site: &str, team: Option<&str>) -> Result<bool, Status> {
        let (site, team) = (site.to_owned(), team.map(str::to_owned));
        self.query(move |state| {
            let processor = state
                .processor
                .site(&site)
                .ok_or_else(|| Status::not_found(format!("no site {site:?}")))?;
            Ok(team.is_none_or(|team| processor.team_ids().contains(&team.as_str())))
        })
        .await
    }

    /// The site's notices, read from the store the first time (its expiry task started then).
    async fn site(&self, site: &str) -> Result<Arc<SiteNotices>, Status> {
        if let Some(loaded) = self.sites.get(site) {
            return Ok(loaded);
        }
        let _one_at_a_time = self.sites.loading.lock().await;
        if let Some(loaded) = self.sites.get(site) {
            return Ok(loaded);
        }
        let kept = load_notices(self.store.as_ref(), site).await?;
        let revision = kept.revision;
        let (board, expired) = NoticeBoard::restore(kept.notices, self.clock.now());
        if expired > 0 {
            tracing::info!(
                site,
                notices = expired,
                "notices that expired while the service was stopped dropped"
            );
            self.metrics.notices("expired", expired);
        }
        let held = board.notices().to_vec();
        self.metrics.notices_held(0, held.len());
        let notices = Arc::new(SiteNotices {
            board: Mutex::new(KeptBoard { board, revision }),
            published: watch::Sender::new(Arc::new(held)),
        });
        self.sites
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(site.to_owned(), notices.clone());
        tokio::spawn(expire_notices(
            site.to_owned(),
            notices.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        Ok(notices)
    }

    /// The site's notices as another instance kept them at `revision` (the store's own
    /// notice of a change): they replace the board here, unless it is as new already. A site
    /// not asked about yet is read from the store when it is.
    pub async fn kept_elsewhere(&self, site: &str, kept: KeptNotices) {
        // Not while a site is being read from the store: what is read there either includes
        // this change, or the site is loaded when the change is looked at.
        let loading = self.sites.loading.lock().await;
        let Some(notices) = self.sites.get(site) else {
            return;
        };
        drop(loading);
        let mut current = notices.board.lock().await;
        if kept.revision <= current.revision {
            return;
        }
        let (board, _) = NoticeBoard::restore(kept.notices, self.clock.now());
        *current = KeptBoard {
            board,
            revision: kept.revision,
        };
        notices.publish(&current.board, &self.metrics);
    }

    /// Changes the site's board with `act`: on a copy, kept in the store, and only then in
    /// force and published, and counted as `event`. Notices expired meanwhile are taken off in
    /// the same change.
    async fn change<R: Send + 'static>(
        &self,
        site: &str,
        event: &'static str,
        mut act: impl FnMut(&mut NoticeBoard, Timestamp) -> Result<R, Status> + Send + 'static,
    ) -> Result<R, Status> {
        let notices = self.site(site).await?;
        let (site, store, clock, metrics) = (
            site.to_owned(),
            self.store.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        );
        // On a task of its own: a caller that goes away (its call's future is dropped) must
        // not stop a change between the store and the board, which would set them apart.
        let change = tokio::spawn(async move {
            let mut kept = notices.board.lock().await;
            for _ in 0..CHANGE_ATTEMPTS {
                let now = clock.now();
                let mut changed = kept.board.clone();
                let expired = changed.expire(now);
                let result = act(&mut changed, now)?;
                match store
                    .save_notices(&site, changed.notices(), kept.revision)
                    .await
                {
                    Ok(revision) => {
                        *kept = KeptBoard {
                            board: changed,
                            revision,
                        };
                        metrics.notices("expired", expired.len());
                        metrics.notices(event, 1);
                        notices.publish(&kept.board, &metrics);
                        return Ok(result);
                    }
                    // Changed by another instance since read here (a handover under way):
                    // read again, and make the change on what is kept now.
                    Err(StoreError::Conflict) => {
                        let stored = load_notices(store.as_ref(), &site).await?;
                        let (board, _) = NoticeBoard::restore(stored.notices, clock.now());
                        *kept = KeptBoard {
                            board,
                            revision: stored.revision,
                        };
                        notices.publish(&kept.board, &metrics);
                    }
                    Err(error) => {
                        return Err(Status::unavailable(format!(
                            "the notices could not be kept, nothing changed: {error}"
                        )));
                    }
                }
            }
            Err(Status::aborted(
                "the notices of this site kept changing elsewhere: nothing changed, try again",
            ))
        });
        change.await.unwrap_or_else(|_| {
            Err(Status::internal(
                "the change of the notices was interrupted",
            ))
        })
    }

    async fn post(&self, request: Request<pb::PostNoticeRequest>) -> Result<pb::Notice, Status> {
        let principal = self.principal(&request)?;
        let pb::PostNoticeRequest {
            site,
            team,
            text,
            level,
            duration,
        } = request.into_inner();
        required("site", &site)?;
        let team = (!team.is_empty()).then_some(team);
        if !may_post(&principal, &site, team.as_deref()) {
            return Err(permission_denied());
        }
        let mut problems = Vec::new();
        if !self.known_team(&site, team.as_deref()).await? {
            problems.push((
                "team".to_owned(),
                format!(
                    "no team {:?} at site {site:?}",
                    team.as_deref().unwrap_or_default()
                ),
            ));
        }
        let level = level_from_wire(level).unwrap_or_else(|problem| {
            problems.push(problem);
            NoticeLevel::Info
        });
        let draft = Draft {
            team,
            text,
            level,
            duration,
            posted_by: principal.subject,
        };
        problems.extend(draft.problems());
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let notice = self
            .change(&site, "posted", move |board, now| {
                board.post(draft.clone(), now).map_err(refusal_status)
            })
            .await?;
        tracing::info!(site, notice = %notice.id, "notice posted through the API");
        self.record_history(&site, &notice, false, notice.expires_at)
            .await;
        Ok(to_wire(&site, &notice))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawNoticeRequest>,
    ) -> Result<pb::Notice, Status> {
        let principal = self.principal(&request)?;
        let pb::WithdrawNoticeRequest { site, id } = request.into_inner();
        required("site", &site)?;
        required("id", &id)?;
        let audience = audience_of(&id).ok_or_else(|| {
            invalid(vec![(
                "id".to_owned(),
                format!(
                    "{id:?} is not a notice id (<serial>/site or <serial>/team/<team>, as ListNotices gives them)"
                ),
            )])
        })?;
        let team = match audience {
            Audience::Site => None,
            Audience::Team(team) => Some(team),
        };
        if !may_post(&principal, &site, team) {
            return Err(permission_denied());
        }
        // The notice may be for a team the site no longer has: it can be withdrawn all the same.
        self.known_team(&site, None).await?;
        let withdrawn_id = id.clone();
        let (notice, shown_until) = self
            .change(&site, "withdrawn", move |board, now| {
                let shown_until = board
                    .notices()
                    .iter()
                    .find(|notice| notice.id == withdrawn_id)
                    .map(|notice| notice.expires_at);
                let withdrawn = board.withdraw(&withdrawn_id, now).ok_or_else(|| {
                    Status::not_found(format!(
                        "no notice {withdrawn_id:?} in force at this site (unknown, expired or withdrawn already)"
                    ))
                })?;
                Ok((withdrawn, shown_until.unwrap_or(now)))
            })
            .await?;
        tracing::info!(site, notice = %id, "notice withdrawn through the API");
        self.record_history(&site, &notice, true, shown_until).await;
        Ok(to_wire(&site, &notice))
    }

    /// Checks what the caller may read, and whether the team they ask for is one to ask for:
    /// a team of the site now, or one with notices in force still.
    async fn open_read(
        &self,
        principal: &Principal,
        site: &str,
        team: &str,
    ) -> Result<(Selection, Arc<SiteNotices>), Status> {
        required("site", site)?;
        let team = (!team.is_empty()).then_some(team);
        let (selection, known) = self.read_scope(principal, site, team).await?;
        let notices = self.site(site).await?;
        if let Some(team) = team
            && !known
        {
            let now = self.clock.now();
            let has_notices = notices
                .published
                .borrow()
                .iter()
                .any(|notice| notice.in_force(now) && notice.team.as_deref() == Some(team));
            if !has_notices {
                return Err(invalid(vec![(
                    "team".to_owned(),
                    format!("no team {team:?} at site {site:?}"),
                )]));
            }
        }
        Ok((selection, notices))
    }

    async fn list(
        &self,
        request: Request<pb::ListNoticesRequest>,
    ) -> Result<pb::ListNoticesResponse, Status> {
        let principal = self.principal(&request)?;
        let pb::ListNoticesRequest { site, team } = request.into_inner();
        let (selection, notices) = self.open_read(&principal, &site, &team).await?;
        let now = self.clock.now();
        let notices = selection.wire(&site, &notices.published.borrow(), now);
        Ok(pb::ListNoticesResponse { notices })
    }

    async fn open_watch(
        &self,
        request: Request<pb::WatchNoticesRequest>,
    ) -> Result<NoticesStream, Status> {
        let principal = self.principal(&request)?;
        let pb::WatchNoticesRequest { site, team } = request.into_inner();
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many open streams on this server; retry later")
        })?;
        let (selection, notices) = self.open_read(&principal, &site, &team).await?;
        self.metrics.streams.inc();
        let watch = Watch {
            site,
            selection,
            updates: notices.published.subscribe(),
            clock: self.clock.clone(),
            sent: None,
            ended: false,
            shutdown: self.shutdown.clone(),
            guard: StreamGuard {
                _permit: permit,
                metrics: self.metrics.clone(),
            },
        };
        Ok(Box::pin(futures::stream::unfold(watch, Watch::next)))
    }
}

/// Whether the caller may post or withdraw a notice for `team` of `site` (every team when
/// `None`): the team's supervisor, a manager of the site or an admin; for every team, a
/// manager of the site or an admin.
pub fn may_post(principal: &Principal, site: &str, team: Option<&str>) -> bool {
    match team {
        None => principal.may_read_site(site),
        Some(team) => principal.role != Role::Advisor && principal.may_read_team(site, team),
    }
}

/// The site's notices as kept in `store`, `UNAVAILABLE` when they cannot be read.
async fn load_notices(store: &dyn ChangeStore, site: &str) -> Result<KeptNotices, Status> {
    store.load_notices(site).await.map_err(|error| {
        Status::unavailable(format!(
            "the notices of site {site:?} cannot be read from the store: {error}"
        ))
    })
}

/// Writes the notices' day records to the history store, one notice at a time, retrying
/// (waiting longer after each failure) while the store is unavailable; ends at shutdown. A
/// refused record is logged and counted, not retried.
async fn write_notice_history(
    store: Arc<dyn HistoryStore>,
    mut records: mpsc::Receiver<Vec<NoticeRecord>>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return,
            batch = records.recv() => match batch {
                Some(batch) => batch,
                None => return,
            },
        };
        let mut backoff = Duration::from_millis(250);
        loop {
            match store.publish_notices(batch.clone()).await {
                Ok(()) => {
                    metrics.notices("history_recorded", 1);
                    break;
                }
                Err(HistoryError::BadRecord { key, reason }) => {
                    tracing::error!(%key, %reason, "notice refused by the history store: not recorded");
                    metrics.notices("history_refused", 1);
                    break;
                }
                Err(problem) => {
                    tracing::warn!(error = %problem, retry_in = ?backoff, "could not record a notice in the history store");
                    metrics.notices("history_retried", 1);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_HISTORY_BACKOFF);
        }
    }
}

/// Sleeps until the site's next expiry, takes the expired notices off and publishes the rest;
/// wakes earlier when the notices change (a new one may expire sooner). Ends at shutdown.
async fn expire_notices(
    site: String,
    notices: Arc<SiteNotices>,
    clock: Arc<dyn WallClock>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
) {
    let mut changes = notices.published.subscribe();
    loop {
        let next = changes
            .borrow_and_update()
            .iter()
            .map(|notice| notice.expires_at)
            .min();
        let due = async {
            match next {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => {
                // The sender lives in `notices`, held here: it never closes first.
                if changed.is_err() {
                    return;
                }
            }
            () = due => {
                let mut kept = notices.board.lock().await;
                let expired = kept.board.expire(clock.now());
                if !expired.is_empty() {
                    tracing::debug!(site, notices = expired.len(), "notices expired");
                    metrics.notices("expired", expired.len());
                    notices.publish(&kept.board, &metrics);
                }
            }
        }
    }
}

/// Which notices of a site a list or a stream shows: the site-wide ones, and those of `teams`
/// (every team's when `None`).
#[derive(Clone, Debug)]
struct Selection {
    teams: Option<BTreeSet<String>>,
}

impl Selection {
    fn team(team: String) -> Selection {
        Selection::teams(BTreeSet::from([team]))
    }

    fn teams(teams: BTreeSet<String>) -> Selection {
        Selection { teams: Some(teams) }
    }

    fn every_team() -> Selection {
        Selection { teams: None }
    }

    fn shows(&self, notice: &Notice) -> bool {
        match (&notice.team, &self.teams) {
            (None, _) | (Some(_), None) => true,
            (Some(team), Some(teams)) => teams.contains(team),
        }
    }

    /// The notices in force at `now` it shows, newest first, in their wire form.
    fn wire(&self, site: &str, notices: &[Notice], now: Timestamp) -> Vec<pb::Notice> {
        notices
            .iter()
            .filter(|notice| notice.in_force(now) && self.shows(notice))
            .map(|notice| to_wire(site, notice))
            .collect()
    }
}

/// A `WatchNotices` stream between two messages.
struct Watch {
    site: String,
    selection: Selection,
    updates: watch::Receiver<Arc<Vec<Notice>>>,
    clock: Arc<dyn WallClock>,
    /// The list last sent; `None` before the first message.
    sent: Option<Vec<pb::Notice>>,
    ended: bool,
    shutdown: CancellationToken,
    guard: StreamGuard,
}

impl Watch {
    /// The next message: the list now, then the list again each time it changes for this
    /// stream (a change elsewhere at the site sends nothing).
    async fn next(mut self) -> Option<(Result<pb::NoticesUpdate, Status>, Watch)> {
        if self.ended {
            return None;
        }
        loop {
            if self.sent.is_some() {
                let shutdown = self.shutdown.clone();
                let stopped = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => true,
                    changed = self.updates.changed() => changed.is_err(),
                };
                if stopped {
                    self.ended = true;
                    return Some((
                        Err(Status::unavailable(
                            "the notices are no longer published: the service is stopping",
                        )),
                        self,
                    ));
                }
            }
            let now = self.clock.now();
            let notices = {
                let held = self.updates.borrow_and_update();
                self.selection.wire(&self.site, &held, now)
            };
            if self.sent.as_ref() == Some(&notices) {
                continue;
            }
            let kind = if self.sent.is_none() {
                "snapshot"
            } else {
                "change"
            };
            self.guard.metrics.message(kind);
            self.sent = Some(notices.clone());
            let update = pb::NoticesUpdate {
                notices,
                as_of: Some(convert::timestamp(now)),
            };
            return Some((Ok(update), self));
        }
    }
}

/// Releases the stream's slot and gauge when the client goes away.
struct StreamGuard {
    _permit: OwnedSemaphorePermit,
    metrics: ApiMetrics,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics.streams.dec();
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(invalid(vec![(field.to_owned(), "required".to_owned())]))
    } else {
        Ok(())
    }
}

fn level_from_wire(value: i32) -> Result<NoticeLevel, (String, String)> {
    match pb::NoticeLevel::try_from(value) {
        Ok(pb::NoticeLevel::Unspecified | pb::NoticeLevel::Info) => Ok(NoticeLevel::Info),
        Ok(pb::NoticeLevel::Important) => Ok(NoticeLevel::Important),
        Err(_) => Err(("level".to_owned(), format!("unknown value {value}"))),
    }
}

fn level_to_wire(level: NoticeLevel) -> i32 {
    match level {
        NoticeLevel::Info => pb::NoticeLevel::Info,
        NoticeLevel::Important => pb::NoticeLevel::Important,
    }
    .into()
}

fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Invalid(problems) => invalid(problems),
        full @ Refusal::Full { .. } => Status::resource_exhausted(full.to_string()),
    }
}

/// A notice of `site` in its wire form.
pub fn to_wire(site: &str, notice: &Notice) -> pb::Notice {
    pb::Notice {
        id: notice.id.clone(),
        site: site.to_owned(),
        team: notice.team.clone().unwrap_or_default(),
        text: notice.text.clone(),
        level: level_to_wire(notice.level),
        posted_by: notice.posted_by.clone(),
        posted_at: Some(convert::timestamp(notice.posted_at)),
        expires_at: Some(convert::timestamp(notice.expires_at)),
    }
}

#[tonic::async_trait]
impl Notices for NoticesService {
    async fn post_notice(
        &self,
        request: Request<pb::PostNoticeRequest>,
    ) -> Result<Response<pb::NoticeResponse>, Status> {
        let here = |request| async move {
            let notice = self.post(request).await?;
            Ok(pb::NoticeResponse {
                notice: Some(notice),
            })
        };
        let result = self.forwarding.or_here(&self.engine, request, here).await;
        self.count("PostNotice", result).map(Response::new)
    }

    async fn withdraw_notice(
        &self,
        request: Request<pb::WithdrawNoticeRequest>,
    ) -> Result<Response<pb::NoticeResponse>, Status> {
        let here = |request| async move {
            let notice = self.withdraw(request).await?;
            Ok(pb::NoticeResponse {
                notice: Some(notice),
            })
        };
        let result = self.forwarding.or_here(&self.engine, request, here).await;
        self.count("WithdrawNotice", result).map(Response::new)
    }

    async fn list_notices(
        &self,
        request: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        let result = self.list(request).await;
        self.count("ListNotices", result).map(Response::new)
    }

    type WatchNoticesStream = NoticesStream;

    async fn watch_notices(
        &self,
        request: Request<pb::WatchNoticesRequest>,
    ) -> Result<Response<Self::WatchNoticesStream>, Status> {
        let result = self.open_watch(request).await;
        self.count("WatchNotices", result).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::admin::FileChangeStore;

    /// 2026-03-02T09:00:00Z.
    const T0: Timestamp = Timestamp(1_772_442_000_000);

    fn at(seconds: i64) -> Timestamp {
        Timestamp(T0.0 + seconds * 1000)
    }

    fn draft(team: Option<&str>, text: &str) -> Draft {
        Draft {
            team: team.map(str::to_owned),
            text: text.to_owned(),
            level: NoticeLevel::Info,
            duration: 3600.0,
            posted_by: "camille".to_owned(),
        }
    }

    fn fields(refusal: Refusal) -> Vec<String> {
        match refusal {
            Refusal::Invalid(problems) => problems.into_iter().map(|(field, _)| field).collect(),
            full => panic!("not a validation refusal: {full}"),
        }
    }

    fn texts(notices: impl Iterator<Item = impl std::ops::Deref<Target = Notice>>) -> Vec<String> {
        notices.map(|notice| notice.text.clone()).collect()
    }

    #[test]
    fn a_notice_is_trimmed_and_shown_for_its_duration() {
        let mut board = NoticeBoard::new();
        let notice = board
            .post(
                Draft {
                    level: NoticeLevel::Important,
                    ..draft(Some("team-a"), "  Outage on the mobile app  ")
                },
                T0,
            )
            .unwrap();
        assert_eq!(notice.text, "Outage on the mobile app");
        assert_eq!(notice.team.as_deref(), Some("team-a"));
        assert_eq!(notice.level, NoticeLevel::Important);
        assert_eq!(notice.posted_by, "camille");
        assert_eq!(notice.posted_at, T0);
        assert_eq!(notice.expires_at, at(3600));
        assert_eq!(notice.id, format!("{}-1/team/team-a", T0.0));
        assert_eq!(audience_of(&notice.id), Some(Audience::Team("team-a")));
        assert_eq!(board.notices(), [notice]);
    }

    #[test]
    fn text_and_duration_are_checked_and_every_problem_is_named() {
        let mut board = NoticeBoard::new();
        for (text, problem) in [
            ("   ", "required"),
            ("line one\nline two", "one paragraph: no line breaks"),
            ("a\r\nb", "one paragraph: no line breaks"),
            ("a\u{2028}b", "one paragraph: no line breaks"),
            ("tab\there", "no control characters (tabs included)"),
        ] {
            let refusal = board.post(draft(None, text), T0).unwrap_err();
            assert_eq!(
                refusal,
                Refusal::Invalid(vec![("text".to_owned(), problem.to_owned())]),
                "{text:?}"
            );
        }
        // Characters, not bytes, once trimmed.
        let longest = "é".repeat(MAX_TEXT_CHARS);
        board
            .post(draft(None, &format!(" {longest}\n")), T0)
            .unwrap();
        let refusal = board
            .post(draft(None, &format!("{longest}e")), T0)
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "text: at most 280 characters, found 281"
        );
        for duration in [59.999, -60.0, 604_800.5, f64::NAN, f64::INFINITY] {
            let refusal = board
                .post(
                    Draft {
                        duration,
                        ..draft(None, "ok")
                    },
                    T0,
                )
                .unwrap_err();
            assert_eq!(fields(refusal), ["duration"], "{duration}");
        }
        // Both problems at once.
        let refusal = board
            .post(
                Draft {
                    duration: 1.0,
                    ..draft(None, "")
                },
                T0,
            )
            .unwrap_err();
        assert_eq!(fields(refusal), ["text", "duration"]);
        assert_eq!(board.notices().len(), 1, "nothing refused was posted");
    }

    #[test]
    fn durations_run_from_a_minute_to_a_week_with_four_hours_by_default() {
        let mut board = NoticeBoard::new();
        for (duration, millis) in [
            (0.0, 4 * 3_600_000),
            (60.0, 60_000),
            (604_800.0, 604_800_000),
            (90.5, 90_500),
        ] {
            let notice = board
                .post(
                    Draft {
                        duration,
                        ..draft(None, "ok")
                    },
                    T0,
                )
                .unwrap();
            assert_eq!(notice.expires_at.0 - T0.0, millis, "{duration}");
        }
    }

    #[test]
    fn a_team_holds_twenty_notices_site_wide_ones_included() {
        let mut board = NoticeBoard::new();
        for n in 0..5 {
            board.post(draft(None, &format!("site {n}")), T0).unwrap();
        }
        for n in 0..15 {
            board
                .post(draft(Some("team-a"), &format!("a {n}")), T0)
                .unwrap();
        }
        assert_eq!(board.for_team("team-a", T0).count(), MAX_PER_TEAM);
        let refusal = board
            .post(draft(Some("team-a"), "one more"), T0)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Full {
                team: Some("team-a".to_owned())
            }
        );
        assert!(
            refusal
                .to_string()
                .contains("team \"team-a\" already has 20"),
            "{refusal}"
        );
        // Another team shows the five site-wide notices only: room left.
        board.post(draft(Some("team-b"), "b"), T0).unwrap();
        // A site-wide notice would give team A a 21st.
        let refusal = board.post(draft(None, "everyone"), T0).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Full {
                team: Some("team-a".to_owned())
            }
        );
        // Room again once one expires or is withdrawn.
        let first_a = board
            .for_team("team-a", T0)
            .find(|notice| notice.team.is_some())
            .unwrap()
            .id
            .clone();
        board.withdraw(&first_a, at(1)).unwrap();
        board.post(draft(None, "everyone"), at(1)).unwrap();
        // Expired notices do not count.
        let mut board = NoticeBoard::new();
        for n in 0..MAX_PER_TEAM {
            board.post(draft(None, &format!("site {n}")), T0).unwrap();
        }
        assert_eq!(
            board.post(draft(None, "x"), T0).unwrap_err(),
            Refusal::Full { team: None }
        );
        assert_eq!(
            board.post(draft(Some("team-c"), "x"), T0).unwrap_err(),
            Refusal::Full {
                team: Some("team-c".to_owned())
            }
        );
        board.post(draft(None, "x"), at(3600)).unwrap();
    }

    #[test]
    fn notices_come_newest_first_with_ids_that_never_repeat() {
        let mut board = NoticeBoard::new();
        let first = board.post(draft(Some("team-a"), "first"), T0).unwrap();
        let second = board.post(draft(None, "second"), T0).unwrap();
        let third = board.post(draft(Some("team-b"), "third"), at(5)).unwrap();
        // The clock set back: the notice is posted at that instant, its id still new.
        let fourth = board.post(draft(Some("team-a"), "fourth"), at(2)).unwrap();
        assert_eq!(second.id, format!("{}-2/site", T0.0));
        assert_eq!(third.id, format!("{}-1/team/team-b", at(5).0));
        assert_eq!(fourth.id, format!("{}-2/team/team-a", at(5).0));
        assert_eq!(fourth.posted_at, at(2));
        assert_eq!(
            texts(board.in_force(at(6))),
            ["third", "fourth", "second", "first"]
        );
        assert_eq!(
            texts(board.for_team("team-a", at(6))),
            ["fourth", "second", "first"]
        );
        assert_eq!(texts(board.for_team("team-z", at(6))), ["second"]);
        let ids: BTreeSet<&str> = board.notices().iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(first.id, format!("{}-1/team/team-a", T0.0));
    }

    #[test]
    fn a_withdrawn_notice_ends_now_and_goes_once() {
        let mut board = NoticeBoard::new();
        let notice = board.post(draft(Some("team-a"), "script"), T0).unwrap();
        let short = board
            .post(
                Draft {
                    duration: 60.0,
                    ..draft(None, "short")
                },
                T0,
            )
            .unwrap();
        let withdrawn = board.withdraw(&notice.id, at(10)).unwrap();
        assert_eq!(
            withdrawn,
            Notice {
                expires_at: at(10),
                ..notice.clone()
            }
        );
        assert_eq!(board.withdraw(&notice.id, at(11)), None);
        assert_eq!(board.withdraw("1-1/site", at(11)), None);
        // Expired, even if not taken off yet: not in force, so not withdrawn.
        assert_eq!(board.withdraw(&short.id, at(60)), None);
        assert!(board.notices().is_empty());
    }

    #[test]
    fn expiry_takes_off_what_is_due_and_says_when_the_next_is() {
        let mut board = NoticeBoard::new();
        assert_eq!(board.next_expiry(), None);
        let minute = Draft {
            duration: 60.0,
            ..draft(Some("team-a"), "a minute")
        };
        board.post(minute, T0).unwrap();
        board.post(draft(None, "an hour"), T0).unwrap();
        assert_eq!(board.next_expiry(), Some(at(60)));
        assert!(board.expire(Timestamp(at(60).0 - 1)).is_empty());
        assert_eq!(board.in_force(Timestamp(at(60).0 - 1)).count(), 2);
        // Shown until its expiry instant, excluded.
        assert_eq!(texts(board.in_force(at(60))), ["an hour"]);
        assert_eq!(texts(board.expire(at(60)).iter()), ["a minute"]);
        assert_eq!(board.next_expiry(), Some(at(3600)));
        assert_eq!(texts(board.expire(at(7200)).iter()), ["an hour"]);
        assert_eq!(board.next_expiry(), None);
    }

    #[test]
    fn ids_say_whom_the_notice_is_for() {
        assert_eq!(audience_of("1772442000000-1/site"), Some(Audience::Site));
        assert_eq!(
            audience_of("1772442000000-12/team/team-a"),
            Some(Audience::Team("team-a"))
        );
        // Team ids may hold slashes: the team is the rest of the id.
        assert_eq!(audience_of("1-1/team/a/b"), Some(Audience::Team("a/b")));
        for id in [
            "",
            "garbage",
            "1-1",
            "1-1/team/",
            "1-1/teams/a",
            "1/site",
            "x-1/site",
            "1-/site",
            "-1-1/site",
            "1-1/site/x",
        ] {
            assert_eq!(audience_of(id), None, "{id:?}");
        }
    }

    #[test]
    fn who_may_post_for_a_team_and_for_the_site() {
        let principal = |role: Role, sites: &[&str], teams: &[&str]| Principal {
            subject: "x".to_owned(),
            role,
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            teams: teams.iter().map(|t| (*t).to_owned()).collect(),
            advisor: (role == Role::Advisor).then(|| "a1".to_owned()),
        };
        let supervisor = principal(Role::Supervisor, &["paris"], &["team-a"]);
        let manager = principal(Role::Manager, &["paris"], &[]);
        let advisor = principal(Role::Advisor, &["paris"], &[]);
        let admin = Principal::anonymous_admin();
        let cases = [
            (&supervisor, Some("team-a"), true),
            (&supervisor, Some("team-b"), false),
            (&supervisor, None, false),
            (&manager, Some("team-b"), true),
            (&manager, None, true),
            (&advisor, Some("team-a"), false),
            (&advisor, None, false),
            (&admin, None, true),
        ];
        for (who, team, allowed) in cases {
            assert_eq!(
                may_post(who, "paris", team),
                allowed,
                "{:?} {team:?}",
                who.role
            );
        }
        assert!(!may_post(&supervisor, "lyon", Some("team-a")));
        assert!(!may_post(&manager, "lyon", None));
    }

    #[test]
    fn kept_notices_read_back_without_the_expired_ones_and_ids_go_on() {
        let mut board = NoticeBoard::new();
        board
            .post(
                Draft {
                    duration: 60.0,
                    ..draft(Some("team-a"), "short")
                },
                T0,
            )
            .unwrap();
        board.post(draft(None, "long"), at(1)).unwrap();
        let last = board
            .post(
                Draft {
                    level: NoticeLevel::Important,
                    ..draft(Some("team-a"), "important")
                },
                at(1),
            )
            .unwrap();
        let json = serde_json::to_string(board.notices()).unwrap();
        let kept: Vec<Notice> = serde_json::from_str(&json).unwrap();
        assert_eq!(kept, board.notices());

        // After a restart two minutes later, the one-minute notice is gone.
        let (mut restored, expired) = NoticeBoard::restore(kept.clone(), at(120));
        assert_eq!(expired, 1);
        assert_eq!(texts(restored.in_force(at(120))), ["important", "long"]);
        // New ids come after the kept ones, even on a clock set back.
        let next = restored.post(draft(None, "next"), at(1)).unwrap();
        assert_eq!(next.id, format!("{}-3/site", at(1).0));
        assert!(next.id != last.id);
        // Repeats of an id and any order are put right.
        let mut shuffled = kept.clone();
        shuffled.reverse();
        shuffled.push(kept[0].clone());
        let (restored, expired) = NoticeBoard::restore(shuffled, T0);
        assert_eq!(expired, 0);
        assert_eq!(restored.notices(), kept);
    }

    #[test]
    fn the_kept_form_is_plain_json() {
        let notice = Notice {
            id: format!("{}-1/team/team-a", T0.0),
            team: Some("team-a".to_owned()),
            text: "New script".to_owned(),
            level: NoticeLevel::Important,
            posted_by: "camille".to_owned(),
            posted_at: T0,
            expires_at: at(7200),
        };
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "1772442000000-1/team/team-a",
                "team": "team-a",
                "text": "New script",
                "level": "important",
                "posted_by": "camille",
                "posted_at": "2026-03-02T09:00:00.000Z",
                "expires_at": "2026-03-02T11:00:00.000Z",
            })
        );
        let site_wide = Notice {
            team: None,
            level: NoticeLevel::Info,
            ..notice
        };
        let json = serde_json::to_value(&site_wide).unwrap();
        assert!(json.get("team").is_none(), "{json}");
        assert_eq!(json["level"], "info");
        assert_eq!(serde_json::from_value::<Notice>(json).unwrap(), site_wide);
        let bad = r#"{"id":"1-1/site","text":"x","level":"info","posted_by":"x","posted_at":"yesterday","expires_at":"2026-03-02T11:00:00Z"}"#;
        let error = serde_json::from_str::<Notice>(bad).unwrap_err().to_string();
        assert!(
            error.contains("\"yesterday\" is not an RFC 3339 instant"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_file_store_keeps_notices_per_site_at_increasing_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileChangeStore::new(dir.path().join("changes"));
        assert_eq!(
            store.load_notices("paris").await.unwrap(),
            KeptNotices::default()
        );
        let mut board = NoticeBoard::new();
        board.post(draft(Some("team-a"), "script"), T0).unwrap();
        board.post(draft(None, "drill"), at(1)).unwrap();
        assert_eq!(
            store
                .save_notices("paris", board.notices(), 0)
                .await
                .unwrap(),
            1
        );
        let kept = store.load_notices("paris").await.unwrap();
        assert_eq!(
            (kept.revision, kept.notices.as_slice()),
            (1, board.notices())
        );
        assert_eq!(
            store.load_notices("lyon").await.unwrap(),
            KeptNotices::default()
        );
        // A save on a revision that is not the last one's changes nothing.
        assert!(matches!(
            store.save_notices("paris", &[], 0).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.load_notices("paris").await.unwrap().notices.len(), 2);
        assert_eq!(store.save_notices("paris", &[], 1).await.unwrap(), 2);
        assert!(
            store
                .load_notices("paris")
                .await
                .unwrap()
                .notices
                .is_empty()
        );
        // A file that does not parse is an error, never an empty board.
        std::fs::write(dir.path().join("changes/paris.notices.json"), "[{").unwrap();
        let error = store.load_notices("paris").await.unwrap_err().to_string();
        assert!(error.contains("paris.notices.json"), "{error}");
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_it_reaches_their_instant() {
        let clock = ManualClock::new(T0);
        let sleeper = tokio::spawn(clock.sleep_until(at(60)));
        clock.advance(Duration::from_secs(59));
        assert_eq!(clock.now(), at(59));
        assert!(!sleeper.is_finished() || clock.now() >= at(60));
        clock.set(at(60));
        tokio::time::timeout(Duration::from_secs(30), sleeper)
            .await
            .expect("the sleeper wakes")
            .unwrap();
        // An instant already passed does not wait.
        tokio::time::timeout(Duration::from_secs(30), clock.sleep_until(T0))
            .await
            .expect("no wait for the past");
    }
}
