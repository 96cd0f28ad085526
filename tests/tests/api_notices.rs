//! The `Notices` service against an in-process engine, with a manual wall clock for the
//! notices: notices posted reach the watchers of their team and of the site, expire and are
//! withdrawn under their eyes; each role posts, reads and withdraws only within its scope;
//! notices survive a restart through the change store (NATS KV included), and a store that
//! fails changes nothing; streams count against `max_streams` and end at shutdown.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt;
use vigie_alerts::RuleConfig;
use vigie_api::{
    ApiConfig, AuthConfig, ChangeStore, FileChangeStore, KeptNotices, ManualClock, Notice,
    StoreError,
};
use vigie_core::config::SiteChange;
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, QueueConfig, SiteConfig, TeamConfig, Timestamp, decode_json,
};
use vigie_proto::v1 as pb;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_tests::api::{Options, Served, WAIT};
use vigie_tests::nats::NatsServer;

const SITE: &str = "paris";

/// Team A (a1, a2) serves queue q-a; team B (b1, b2) serves q-b.
fn site() -> SiteConfig {
    let team = |id: &str, advisors: [&str; 2], queue: &str| TeamConfig {
        id: id.into(),
        name: None,
        advisors: advisors.map(str::to_owned).to_vec(),
        queues: vec![queue.into()],
        sl_variant: None,
    };
    SiteConfig {
        queues: vec![
            QueueConfig::with_defaults("q-a"),
            QueueConfig::with_defaults("q-b"),
        ],
        teams: vec![
            team("team-a", ["a1", "a2"], "q-a"),
            team("team-b", ["b1", "b2"], "q-b"),
        ],
        ..SiteConfig::with_defaults(SITE)
    }
}

/// 2026-03-02 at `time`, UTC.
fn at(time: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).unwrap()
}

fn event(line: &str) -> Event {
    decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
}

/// At 09:00 the advisors log in to their teams; a3, on no roster, to team A.
fn logins() -> Vec<Event> {
    [
        ("a1", "team-a"),
        ("a2", "team-a"),
        ("b1", "team-b"),
        ("a3", "team-a"),
    ]
        .iter()
        .map(|(advisor, team)| {
            event(&format!(
                r#"{{"id":"login-{advisor}","type":"advisor.login","time":"2026-03-02T09:00:00Z","site":"{SITE}","advisor":"{advisor}","team":"{team}"}}"#
            ))
        })
        .collect()
}

/// Adds the bearer token to each request.
type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

type Client = NoticesClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>,
>;

struct Token {
    name: &'static str,
    secret: String,
    entry: String,
}

fn token(name: &'static str, scope: &str) -> Token {
    let secret = vigie_api::auth::generate_token();
    let entry = format!(
        "[[token]]\nsha256 = \"{}\"\nsubject = \"{name}\"\n{scope}\n",
        vigie_api::auth::hash_token(&secret)
    );
    Token {
        name,
        secret,
        entry,
    }
}

/// A change store over local files whose notices can be made to fail.
#[derive(Debug)]
struct FlakyStore {
    inner: FileChangeStore,
    failing: AtomicBool,
}

impl FlakyStore {
    fn new(dir: &std::path::Path) -> Arc<FlakyStore> {
        Arc::new(FlakyStore {
            inner: FileChangeStore::new(dir.to_owned()),
            failing: AtomicBool::new(false),
        })
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("the store is down".to_owned()))
        } else {
            Ok(())
        }
    }
}

impl ChangeStore for FlakyStore {
    fn load<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<Vec<SiteChange>, StoreError>> {
        self.inner.load(site)
    }

    fn append<'a>(
        &'a self,
        site: &'a str,
        recorded: usize,
        change: &'a SiteChange,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.append(site, recorded, change)
    }

    fn load_rules<'a>(
        &'a self,
        site: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RuleConfig>>, StoreError>> {
        self.inner.load_rules(site)
    }

    fn save_rules<'a>(
        &'a self,
        site: &'a str,
        rules: &'a [RuleConfig],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.save_rules(site, rules)
    }

    fn load_notices<'a>(&'a self, site: &'a str) -> BoxFuture<'a, Result<KeptNotices, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.load_notices(site).await
        })
    }

    fn save_notices<'a>(
        &'a self,
        site: &'a str,
        notices: &'a [Notice],
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.inner.save_notices(site, notices, revision).await
        })
    }
}

struct Fixture {
    served: Served,
    clock: ManualClock,
    tokens: Vec<Token>,
    tokens_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// The site with its advisors logged in, every role's token, notices on a manual clock at
    /// 09:00 kept in `store` (local files of the fixture's folder when `None`).
    async fn start(max_streams: usize, store: Option<Arc<dyn ChangeStore>>) -> Fixture {
        let tokens = vec![
            token("admin", "role = \"admin\""),
            token(
                "manager",
                &format!("role = \"manager\"\nsites = [\"{SITE}\"]"),
            ),
            token(
                "supervisor-a",
                &format!("role = \"supervisor\"\nsites = [\"{SITE}\"]\nteams = [\"team-a\"]"),
            ),
            token(
                "supervisor-b",
                &format!("role = \"supervisor\"\nsites = [\"{SITE}\"]\nteams = [\"team-b\"]"),
            ),
            token(
                "advisor-a1",
                &format!("role = \"advisor\"\nsites = [\"{SITE}\"]\nadvisor = \"a1\""),
            ),
            token(
                "advisor-a3",
                &format!("role = \"advisor\"\nsites = [\"{SITE}\"]\nadvisor = \"a3\""),
            ),
            token(
                "advisor-b1",
                &format!("role = \"advisor\"\nsites = [\"{SITE}\"]\nadvisor = \"b1\""),
            ),
            token(
                "other-manager",
                "role = \"manager\"\nsites = [\"elsewhere\"]",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let tokens_file = dir.path().join("tokens.toml");
        std::fs::write(
            &tokens_file,
            tokens.iter().map(|t| t.entry.as_str()).collect::<String>(),
        )
        .unwrap();
        let store =
            store.unwrap_or_else(|| Arc::new(FileChangeStore::new(dir.path().join("changes"))));
        let clock = ManualClock::new(at("09:00:00"));
        let served = start(&tokens_file, max_streams, store, &clock).await;
        Fixture {
            served,
            clock,
            tokens,
            tokens_file,
            dir,
        }
    }

    async fn client(&self, name: &str) -> Client {
        client_of(&self.served, &self.tokens, name).await
    }
}

/// The service with the tokens of `tokens_file`, notices on `clock` and kept in `store`.
async fn start(
    tokens_file: &std::path::Path,
    max_streams: usize,
    store: Arc<dyn ChangeStore>,
    clock: &ManualClock,
) -> Served {
    let config = ApiConfig {
        max_streams,
        auth: AuthConfig {
            tokens_file: Some(tokens_file.to_owned()),
            ..AuthConfig::default()
        },
        ..ApiConfig::default()
    };
    let options = Options {
        store: Some(store),
        notices_clock: Some(Arc::new(clock.clone())),
        ..Options::default()
    };
    let served = Served::start_with(&site(), at("09:00:00"), config, options).await;
    served.feed(&logins()).await;
    served
}

async fn client_of(served: &Served, tokens: &[Token], name: &str) -> Client {
    let secret = &tokens.iter().find(|t| t.name == name).unwrap().secret;
    let header: MetadataValue<_> = format!("Bearer {secret}").parse().unwrap();
    let add: AddToken = Box::new(move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", header.clone());
        Ok(request)
    });
    NoticesClient::with_interceptor(served.channel().await, add)
}

async fn post(
    client: &mut Client,
    team: &str,
    text: &str,
    duration: f64,
    level: pb::NoticeLevel,
) -> Result<pb::Notice, tonic::Status> {
    let request = pb::PostNoticeRequest {
        site: SITE.into(),
        team: team.into(),
        text: text.into(),
        level: level.into(),
        duration,
    };
    let notice = client.post_notice(request).await?.into_inner().notice;
    Ok(notice.expect("the notice posted comes back"))
}

async fn withdraw(client: &mut Client, id: &str) -> Result<pb::Notice, tonic::Status> {
    let request = pb::WithdrawNoticeRequest {
        site: SITE.into(),
        id: id.into(),
    };
    let notice = client.withdraw_notice(request).await?.into_inner().notice;
    Ok(notice.expect("the notice withdrawn comes back"))
}

async fn list(client: &mut Client, team: &str) -> Result<Vec<pb::Notice>, tonic::Status> {
    let request = pb::ListNoticesRequest {
        site: SITE.into(),
        team: team.into(),
    };
    Ok(client.list_notices(request).await?.into_inner().notices)
}

async fn watch(
    client: &mut Client,
    team: &str,
) -> Result<tonic::Streaming<pb::NoticesUpdate>, tonic::Status> {
    let request = pb::WatchNoticesRequest {
        site: SITE.into(),
        team: team.into(),
    };
    Ok(client.watch_notices(request).await?.into_inner())
}

async fn next(stream: &mut tonic::Streaming<pb::NoticesUpdate>) -> pb::NoticesUpdate {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("the stream goes on")
}

fn texts(notices: &[pb::Notice]) -> Vec<&str> {
    notices.iter().map(|notice| notice.text.as_str()).collect()
}

fn wire_time(time: Timestamp) -> Option<prost_types::Timestamp> {
    Some(vigie_api::convert::timestamp(time))
}

fn field_violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest detail: {status:?}"))
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_the_watchers_of_their_team_expire_and_are_withdrawn() {
    let fixture = Fixture::start(100, None).await;
    let mut supervisor_a = fixture.client("supervisor-a").await;
    let mut supervisor_b = fixture.client("supervisor-b").await;
    let mut manager = fixture.client("manager").await;
    let mut advisor_a1 = fixture.client("advisor-a1").await;

    let mut a_watch = watch(&mut supervisor_a, "team-a").await.unwrap();
    let mut b_watch = watch(&mut supervisor_b, "team-b").await.unwrap();
    let mut site_watch = watch(&mut manager, "").await.unwrap();
    for stream in [&mut a_watch, &mut b_watch, &mut site_watch] {
        let first = next(stream).await;
        assert!(first.notices.is_empty(), "{first:?}");
        assert_eq!(first.as_of, wire_time(at("09:00:00")));
    }

    // Supervisor A posts to their team, for two hours.
    let script = post(
        &mut supervisor_a,
        "team-a",
        "  New script for the spring offer ",
        7200.0,
        pb::NoticeLevel::Unspecified,
    )
    .await
    .unwrap();
    assert!(script.id.ends_with("/team/team-a"), "{script:?}");
    assert_eq!(script.site, SITE);
    assert_eq!(script.team, "team-a");
    assert_eq!(script.text, "New script for the spring offer");
    assert_eq!(script.level, pb::NoticeLevel::Info as i32);
    assert_eq!(script.posted_by, "supervisor-a");
    assert_eq!(script.posted_at, wire_time(at("09:00:00")));
    assert_eq!(script.expires_at, wire_time(at("11:00:00")));
    assert_eq!(
        next(&mut a_watch).await.notices,
        std::slice::from_ref(&script)
    );
    assert_eq!(
        next(&mut site_watch).await.notices,
        std::slice::from_ref(&script)
    );

    // The manager posts to every team, for a minute, a minute later.
    fixture.clock.set(at("09:01:00"));
    let drill = post(
        &mut manager,
        "",
        "Fire drill at 15:00",
        60.0,
        pb::NoticeLevel::Important,
    )
    .await
    .unwrap();
    assert!(drill.id.ends_with("/site"), "{drill:?}");
    assert_eq!(drill.team, "");
    assert_eq!(drill.level, pb::NoticeLevel::Important as i32);
    assert_eq!(drill.expires_at, wire_time(at("09:02:00")));
    // Team B's watcher heard nothing of team A's notice: its next message is the drill alone.
    let update = next(&mut b_watch).await;
    assert_eq!(texts(&update.notices), ["Fire drill at 15:00"]);
    assert_eq!(update.as_of, wire_time(at("09:01:00")));
    let both = ["Fire drill at 15:00", "New script for the spring offer"];
    assert_eq!(texts(&next(&mut a_watch).await.notices), both);
    assert_eq!(texts(&next(&mut site_watch).await.notices), both);

    // The lists say the same, newest first, within each caller's scope.
    assert_eq!(
        texts(&list(&mut supervisor_a, "team-a").await.unwrap()),
        both
    );
    assert_eq!(texts(&list(&mut advisor_a1, "team-a").await.unwrap()), both);
    assert_eq!(texts(&list(&mut advisor_a1, "").await.unwrap()), both);
    assert_eq!(texts(&list(&mut manager, "").await.unwrap()), both);
    assert_eq!(
        texts(&list(&mut supervisor_b, "").await.unwrap()),
        ["Fire drill at 15:00"]
    );
    let mut admin = fixture.client("admin").await;
    assert_eq!(
        list(&mut admin, "team-a").await.unwrap(),
        [drill.clone(), script.clone()]
    );

    // A minute on, the drill expires: every watcher is told, without anyone calling.
    fixture.clock.set(at("09:02:00"));
    let update = next(&mut a_watch).await;
    assert_eq!(update.notices, std::slice::from_ref(&script));
    assert_eq!(update.as_of, wire_time(at("09:02:00")));
    assert!(next(&mut b_watch).await.notices.is_empty());
    assert_eq!(
        next(&mut site_watch).await.notices,
        std::slice::from_ref(&script)
    );
    assert!(list(&mut supervisor_b, "team-b").await.unwrap().is_empty());

    // Supervisor A withdraws theirs: it ends now, and goes from every wallboard.
    fixture.clock.set(at("09:10:00"));
    let withdrawn = withdraw(&mut supervisor_a, &script.id).await.unwrap();
    assert_eq!(
        withdrawn,
        pb::Notice {
            expires_at: wire_time(at("09:10:00")),
            ..script.clone()
        }
    );
    assert!(next(&mut a_watch).await.notices.is_empty());
    assert!(next(&mut site_watch).await.notices.is_empty());
    let status = withdraw(&mut supervisor_a, &script.id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = withdraw(&mut manager, &drill.id).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "an expired notice: {status:?}"
    );
    assert_eq!(fixture.served.metric("vigie_api_notices_held"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_posts_reads_and_withdraws_within_its_scope_only() {
    let fixture = Fixture::start(100, None).await;
    let info = pb::NoticeLevel::Info;

    // Posting for team A: its supervisor, a manager of the site, an admin.
    for (name, allowed) in [
        ("admin", true),
        ("manager", true),
        ("supervisor-a", true),
        ("supervisor-b", false),
        ("advisor-a1", false),
        ("other-manager", false),
    ] {
        let result = post(&mut fixture.client(name).await, "team-a", name, 600.0, info).await;
        match (allowed, result) {
            (true, Ok(notice)) => assert_eq!(notice.posted_by, name),
            (false, Err(status)) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
                assert_eq!(status.message(), "not allowed for this token");
            }
            (_, result) => panic!("{name}: {result:?}"),
        }
    }
    // Posting for every team: a manager of the site, an admin.
    for (name, allowed) in [
        ("admin", true),
        ("manager", true),
        ("supervisor-a", false),
        ("advisor-a1", false),
        ("other-manager", false),
    ] {
        let result = post(
            &mut fixture.client(name).await,
            "",
            "site-wide",
            600.0,
            info,
        )
        .await;
        match (allowed, result) {
            (true, Ok(notice)) => assert_eq!(notice.team, ""),
            (false, Err(status)) => assert_eq!(status.code(), Code::PermissionDenied, "{name}"),
            (_, result) => panic!("{name}: {result:?}"),
        }
    }
    let team_a = list(&mut fixture.client("admin").await, "team-a")
        .await
        .unwrap();
    assert_eq!(team_a.len(), 5, "{team_a:?}");
    let a_notice = team_a
        .iter()
        .find(|n| n.team == "team-a")
        .unwrap()
        .id
        .clone();
    let site_notice = team_a
        .iter()
        .find(|n| n.team.is_empty())
        .unwrap()
        .id
        .clone();

    // Reading team A: its supervisor, the advisors in it now, a manager, an admin.
    for (name, allowed) in [
        ("admin", true),
        ("manager", true),
        ("supervisor-a", true),
        ("advisor-a1", true),
        ("advisor-a3", true),
        ("supervisor-b", false),
        ("advisor-b1", false),
        ("other-manager", false),
    ] {
        let listed = list(&mut fixture.client(name).await, "team-a").await;
        let watched = watch(&mut fixture.client(name).await, "team-a").await;
        match (allowed, listed, watched) {
            (true, Ok(listed), Ok(mut stream)) => {
                assert_eq!(listed, team_a, "{name}");
                assert_eq!(next(&mut stream).await.notices, team_a, "{name}");
            }
            (false, Err(listed), Err(watched)) => {
                assert_eq!(listed.code(), Code::PermissionDenied, "{name}");
                assert_eq!(watched.code(), Code::PermissionDenied, "{name}");
            }
            (_, listed, watched) => panic!("{name}: {listed:?} {:?}", watched.map(|_| ())),
        }
    }
    // The whole site, as far as each scope goes: site-wide notices are for everyone at it.
    for (name, shown) in [
        ("manager", 5),
        ("supervisor-a", 5),
        ("advisor-a1", 5),
        ("advisor-a3", 5),
        ("supervisor-b", 2),
        ("advisor-b1", 2),
    ] {
        let listed = list(&mut fixture.client(name).await, "").await.unwrap();
        assert_eq!(listed.len(), shown, "{name}: {listed:?}");
    }
    let status = list(&mut fixture.client("other-manager").await, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // An advisor reads the notices of the team they are in now: a3, whose team comes from
    // their logins (on no roster), moves to team B.
    fixture
        .served
        .feed(&[
            event(&format!(
                r#"{{"id":"logout-a3","type":"advisor.logout","time":"2026-03-02T09:00:01Z","site":"{SITE}","advisor":"a3"}}"#
            )),
            event(&format!(
                r#"{{"id":"login-a3-b","type":"advisor.login","time":"2026-03-02T09:00:02Z","site":"{SITE}","advisor":"a3","team":"team-b"}}"#
            )),
        ])
        .await;
    let status = list(&mut fixture.client("advisor-a3").await, "team-a")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        list(&mut fixture.client("advisor-a3").await, "team-b")
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        list(&mut fixture.client("advisor-a3").await, "")
            .await
            .unwrap()
            .len(),
        2
    );

    // Withdrawing: the same scope as posting, judged on the id, whether it exists or not.
    let unknown_a = "1-1/team/team-a";
    for (name, id) in [
        ("supervisor-b", a_notice.as_str()),
        ("supervisor-b", unknown_a),
        ("advisor-a1", a_notice.as_str()),
        ("supervisor-a", site_notice.as_str()),
        ("supervisor-a", "1-1/site"),
        ("other-manager", a_notice.as_str()),
    ] {
        let status = withdraw(&mut fixture.client(name).await, id)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{name} {id}");
    }
    let status = withdraw(&mut fixture.client("supervisor-a").await, unknown_a)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = withdraw(&mut fixture.client("supervisor-a").await, "garbage")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status), ["id"]);
    withdraw(&mut fixture.client("supervisor-a").await, &a_notice)
        .await
        .unwrap();
    withdraw(&mut fixture.client("manager").await, &site_notice)
        .await
        .unwrap();

    // Unknown sites and teams.
    let mut admin = fixture.client("admin").await;
    let status = admin
        .list_notices(pb::ListNoticesRequest {
            site: "nowhere".into(),
            team: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = admin
        .post_notice(pb::PostNoticeRequest {
            site: "nowhere".into(),
            text: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = fixture
        .client("manager")
        .await
        .list_notices(pb::ListNoticesRequest {
            site: "nowhere".into(),
            team: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "not in its scope");
    let status = post(&mut admin, "team-z", "x", 600.0, info)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status), ["team"]);
    let status = list(&mut fixture.client("manager").await, "team-z")
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status), ["team"]);
    let status = post(
        &mut fixture.client("supervisor-a").await,
        "team-z",
        "x",
        600.0,
        info,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "not their team");

    // Invalid fields, all named at once.
    let status = admin
        .post_notice(pb::PostNoticeRequest {
            site: SITE.into(),
            team: "team-z".into(),
            text: "two\nlines".into(),
            level: 7,
            duration: 30.0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&status),
        ["team", "level", "text", "duration"]
    );
    let status = post(&mut admin, "team-a", &"x".repeat(281), 0.0, info)
        .await
        .unwrap_err();
    assert!(
        status
            .message()
            .contains("text: at most 280 characters, found 281"),
        "{status:?}"
    );
    let status = admin
        .withdraw_notice(pb::WithdrawNoticeRequest {
            site: SITE.into(),
            id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status), ["id"]);

    // Twenty notices per team, site-wide ones included.
    let in_force = list(&mut admin, "team-b").await.unwrap().len();
    for n in in_force..20 {
        post(&mut admin, "team-b", &format!("b {n}"), 600.0, info)
            .await
            .unwrap();
    }
    let status = post(&mut admin, "team-b", "one too many", 600.0, info)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = post(&mut admin, "", "one too many", 600.0, info)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("team \"team-b\""), "{status:?}");
    post(&mut admin, "team-a", "team A has room", 600.0, info)
        .await
        .unwrap();

    // Without a token, nothing.
    let mut anonymous = NoticesClient::new(fixture.served.channel().await);
    let status = anonymous
        .list_notices(pb::ListNoticesRequest {
            site: SITE.into(),
            team: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_survive_a_restart_and_a_store_failure_changes_nothing() {
    let changes = tempfile::tempdir().unwrap();
    let store = FlakyStore::new(changes.path());
    let fixture = Fixture::start(100, Some(store.clone())).await;
    let mut manager = fixture.client("manager").await;
    let info = pb::NoticeLevel::Info;
    let short = post(&mut manager, "team-a", "short", 60.0, info)
        .await
        .unwrap();
    let long = post(&mut manager, "team-a", "long", 14_400.0, info)
        .await
        .unwrap();
    let everyone = post(
        &mut manager,
        "",
        "everyone",
        0.0,
        pb::NoticeLevel::Important,
    )
    .await
    .unwrap();
    let mut watcher = watch(&mut manager, "").await.unwrap();
    let before = next(&mut watcher).await.notices;
    assert_eq!(texts(&before), ["everyone", "long", "short"]);

    // The store fails: nothing is posted or withdrawn, and watchers hear of nothing.
    store.fail(true);
    let status = post(&mut manager, "team-a", "lost", 600.0, info)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("nothing changed"), "{status:?}");
    let status = withdraw(&mut manager, &long.id).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(list(&mut manager, "").await.unwrap(), before);
    store.fail(false);
    let after = post(&mut manager, "team-b", "after", 600.0, info)
        .await
        .unwrap();
    // The next message has the later post, and the failed changes are not in it.
    assert_eq!(
        texts(&next(&mut watcher).await.notices),
        ["after", "everyone", "long", "short"]
    );

    // Vigie stops; it starts again two minutes later over the same store: the one-minute
    // notice expired meanwhile, the others are back with their ids.
    let Fixture {
        served,
        tokens,
        tokens_file,
        dir: _dir,
        ..
    } = fixture;
    served.stop();
    let status = tokio::time::timeout(WAIT, async {
        loop {
            match watcher.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends at shutdown");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    drop(served);
    let clock = ManualClock::new(at("09:02:00"));
    let store = FlakyStore::new(changes.path());
    let again = start(&tokens_file, 100, store, &clock).await;
    let mut manager = client_of(&again, &tokens, "manager").await;
    let listed = list(&mut manager, "").await.unwrap();
    assert_eq!(listed, [after.clone(), everyone.clone(), long.clone()]);
    assert!(!listed.contains(&short));
    // New ids do not repeat kept ones.
    let next_one = post(&mut manager, "team-a", "next", 600.0, info)
        .await
        .unwrap();
    assert!(
        ![&after.id, &everyone.id, &long.id, &short.id].contains(&&next_one.id),
        "{next_one:?}"
    );
    let kept = FileChangeStore::new(changes.path().to_owned())
        .load_notices(SITE)
        .await
        .unwrap();
    let kept: Vec<&str> = kept.notices.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(kept, ["next", "after", "everyone", "long"]);

    // A store that cannot be read at all: the site's notices are unavailable, not empty.
    let unreadable = FlakyStore::new(changes.path());
    unreadable.fail(true);
    let clock = ManualClock::new(at("09:03:00"));
    let broken = start(&tokens_file, 100, unreadable.clone(), &clock).await;
    let mut manager = client_of(&broken, &tokens, "manager").await;
    let status = list(&mut manager, "").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    unreadable.fail(false);
    assert_eq!(list(&mut manager, "").await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_count_against_max_streams_and_end_at_shutdown() {
    let fixture = Fixture::start(1, None).await;
    let mut supervisor = fixture.client("supervisor-a").await;
    let mut first = watch(&mut supervisor, "team-a").await.unwrap();
    next(&mut first).await;
    assert_eq!(fixture.served.metric("vigie_api_streams"), Some(1.0));
    let status = watch(&mut supervisor, "team-a").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // The slot comes back once the client goes away.
    drop(first);
    let mut second = tokio::time::timeout(WAIT, async {
        loop {
            match watch(&mut supervisor, "team-a").await {
                Ok(stream) => return stream,
                Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slot of a closed stream comes back");
    next(&mut second).await;

    fixture.served.stop();
    let status = tokio::time::timeout(WAIT, async {
        loop {
            match second.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends in time");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_bucket_keeps_notices_under_their_own_key_across_a_restart() {
    let nats = NatsServer::start();
    let (client, context) = vigie_ingest::connect(&nats.nats_config()).await.unwrap();
    let store = Arc::new(
        vigie::changes::NatsChangeStore::open(&context, "vigie-config", 1)
            .await
            .unwrap(),
    );
    assert!(store.load_notices(SITE).await.unwrap().notices.is_empty());
    let fixture = Fixture::start(100, Some(store.clone())).await;
    let mut manager = fixture.client("manager").await;
    let posted = post(
        &mut manager,
        "team-a",
        "Outage on the mobile app: apologise and log it",
        3600.0,
        pb::NoticeLevel::Important,
    )
    .await
    .unwrap();
    // Under `notices.<site>`, beside the configuration changes (untouched).
    let kv = context.get_key_value("vigie-config").await.unwrap();
    let entry = kv.entry(format!("notices.{SITE}")).await.unwrap().unwrap();
    let kept: Vec<Notice> = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, posted.id);
    assert!(store.load(SITE).await.unwrap().is_empty());
    assert!(store.load_rules(SITE).await.unwrap().is_none());

    // Another start reads them from the bucket.
    let Fixture {
        served,
        tokens,
        tokens_file,
        dir: _dir,
        ..
    } = fixture;
    drop(served);
    let reopened = Arc::new(
        vigie::changes::NatsChangeStore::open(&context, "vigie-config", 1)
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(at("09:30:00"));
    let again = start(&tokens_file, 100, reopened, &clock).await;
    let mut manager = client_of(&again, &tokens, "manager").await;
    assert_eq!(
        list(&mut manager, "team-a").await.unwrap(),
        std::slice::from_ref(&posted)
    );
    withdraw(&mut manager, &posted.id).await.unwrap();
    assert!(store.load_notices(SITE).await.unwrap().notices.is_empty());
    drop(client);
}
