//! Who may read what through the gRPC API: every role against every RPC and scope, with
//! tokens from a tokens file. Out of scope is PERMISSION_DENIED whether the target exists or
//! not; no valid token is UNAUTHENTICATED.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use tonic::Code;
use tonic::metadata::MetadataValue;
use vigie_api::{ApiConfig, AuthConfig};
use vigie_core::{SiteConfig, TeamConfig};
use vigie_proto::v1 as pb;
use vigie_proto::v1::supervision_client::SupervisionClient;
use vigie_tests::api::{Served, day};

/// The site: team A serves queue `q-a` only, team B the others; each has half the advisors.
struct Layout {
    site: SiteConfig,
    queue_a: String,
    queue_b: String,
    advisor_a: String,
    colleague_a: String,
    advisor_b: String,
}

fn layout(site: &SiteConfig, advisors: &[String]) -> Layout {
    let queues: Vec<String> = site.queues.iter().map(|q| q.id.clone()).collect();
    assert!(queues.len() >= 2 && advisors.len() >= 4);
    let half = advisors.len() / 2;
    let mut site = site.clone();
    site.teams = vec![
        TeamConfig {
            id: "team-a".into(),
            name: None,
            advisors: advisors[..half].to_vec(),
            queues: vec![queues[0].clone()],
            sl_variant: None,
        },
        TeamConfig {
            id: "team-b".into(),
            name: None,
            advisors: advisors[half..].to_vec(),
            queues: queues[1..].to_vec(),
            sl_variant: None,
        },
    ];
    Layout {
        site,
        queue_a: queues[0].clone(),
        queue_b: queues[1].clone(),
        advisor_a: advisors[0].clone(),
        colleague_a: advisors[1].clone(),
        advisor_b: advisors[half].clone(),
    }
}

/// One RPC of the matrix.
#[derive(Clone, Debug)]
enum Call {
    SiteView,
    TeamView(String),
    QueueView(String),
    AdvisorView(String),
    WatchSite,
    WatchTeam(String),
    WatchQueue(String),
}

/// Adds the bearer token to each request.
type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

type Client = SupervisionClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>,
>;

async fn client(served: &Served, token: Option<&str>) -> Client {
    let header: Option<MetadataValue<_>> = token.map(|t| format!("Bearer {t}").parse().unwrap());
    let add: AddToken = Box::new(move |mut request: tonic::Request<()>| {
        if let Some(header) = &header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    });
    SupervisionClient::with_interceptor(served.channel().await, add)
}

/// The status code of a call (OK, or the error's code).
async fn code(client: &mut Client, site: &str, call: &Call) -> Code {
    let site = site.to_owned();
    let result = match call.clone() {
        Call::SiteView => client
            .get_site_view(pb::GetSiteViewRequest { site, window: 0 })
            .await
            .map(|_| ()),
        Call::TeamView(team) => client
            .get_team_view(pb::GetTeamViewRequest {
                site,
                team,
                window: 0,
            })
            .await
            .map(|_| ()),
        Call::QueueView(queue) => client
            .get_queue_view(pb::GetQueueViewRequest {
                site,
                queue,
                window: 0,
            })
            .await
            .map(|_| ()),
        Call::AdvisorView(advisor) => client
            .get_advisor_view(pb::GetAdvisorViewRequest {
                site,
                advisor,
                window: 0,
            })
            .await
            .map(|_| ()),
        Call::WatchSite => client
            .watch_site(pb::WatchSiteRequest { site, window: 0 })
            .await
            .map(|_| ()),
        Call::WatchTeam(team) => client
            .watch_team(pb::WatchTeamRequest {
                site,
                team,
                window: 0,
            })
            .await
            .map(|_| ()),
        Call::WatchQueue(queue) => client
            .watch_queue(pb::WatchQueueRequest {
                site,
                queue,
                window: 0,
            })
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => {
            if status.code() == Code::PermissionDenied {
                // No hint of whether the target exists.
                assert_eq!(status.message(), "not allowed for this token", "{call:?}");
            }
            status.code()
        }
    }
}

struct Token {
    name: &'static str,
    secret: String,
    entry: String,
}

fn token(name: &'static str, entry: &str) -> Token {
    let secret = vigie_api::auth::generate_token();
    let entry = format!(
        "[[token]]\nsha256 = \"{}\"\nsubject = \"{name}\"\n{entry}\n",
        vigie_api::auth::hash_token(&secret)
    );
    Token {
        name,
        secret,
        entry,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_rpc_and_scope() {
    let (sim_site, events) = day(21, 12);
    let mut advisors: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.body {
            vigie_core::EventBody::Advisor(a) => Some(a.advisor.clone()),
            _ => None,
        })
        .collect();
    advisors.sort();
    advisors.dedup();
    let l = layout(&sim_site, &advisors);
    let site = l.site.id.clone();

    let tokens = [
        token("admin", "role = \"admin\""),
        token(
            "manager",
            &format!("role = \"manager\"\nsites = [\"{site}\"]"),
        ),
        token(
            "other-manager",
            "role = \"manager\"\nsites = [\"elsewhere\"]",
        ),
        token(
            "supervisor-a",
            &format!("role = \"supervisor\"\nsites = [\"{site}\"]\nteams = [\"team-a\"]"),
        ),
        token(
            "supervisor-a-elsewhere",
            "role = \"supervisor\"\nsites = [\"elsewhere\"]\nteams = [\"team-a\"]",
        ),
        token(
            "advisor-a",
            &format!(
                "role = \"advisor\"\nsites = [\"{site}\"]\nadvisor = \"{}\"",
                l.advisor_a
            ),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        tokens.iter().map(|t| t.entry.as_str()).collect::<String>(),
    )
    .unwrap();
    let config = ApiConfig {
        auth: AuthConfig {
            tokens_file: Some(file),
            ..AuthConfig::default()
        },
        ..ApiConfig::default()
    };
    let at = events.iter().map(|e| e.time).max().unwrap();
    let served = Served::start(&l.site, at, config).await;
    served.feed(&events).await;

    use Call::*;
    let calls = [
        SiteView,
        TeamView("team-a".into()),
        TeamView("team-b".into()),
        TeamView("no-such-team".into()),
        QueueView(l.queue_a.clone()),
        QueueView(l.queue_b.clone()),
        QueueView("no-such-queue".into()),
        AdvisorView(l.advisor_a.clone()),
        AdvisorView(l.colleague_a.clone()),
        AdvisorView(l.advisor_b.clone()),
        AdvisorView("no-such-advisor".into()),
        WatchSite,
        WatchTeam("team-a".into()),
        WatchTeam("team-b".into()),
        WatchQueue(l.queue_a.clone()),
        WatchQueue(l.queue_b.clone()),
    ];
    const OK: Code = Code::Ok;
    const NO: Code = Code::PermissionDenied;
    const NF: Code = Code::NotFound;
    // Expected codes, in the order of `calls`.
    let expected: [(&str, [Code; 16]); 6] = [
        (
            "admin",
            [
                OK, OK, OK, NF, OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, OK, OK,
            ],
        ),
        (
            "manager",
            [
                OK, OK, OK, NF, OK, OK, NF, OK, OK, OK, NF, OK, OK, OK, OK, OK,
            ],
        ),
        ("other-manager", [NO; 16]),
        (
            "supervisor-a",
            [
                NO, OK, NO, NO, OK, NO, NO, OK, OK, NO, NO, NO, OK, NO, OK, NO,
            ],
        ),
        ("supervisor-a-elsewhere", [NO; 16]),
        (
            "advisor-a",
            [
                NO, NO, NO, NO, NO, NO, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO,
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, codes) in expected {
        let token = tokens.iter().find(|t| t.name == name).unwrap();
        let mut client = client(&served, Some(&token.secret)).await;
        for (call, want) in calls.iter().zip(codes) {
            let got = code(&mut client, &site, call).await;
            if got != want {
                failures.push(format!("{name} {call:?}: expected {want:?}, got {got:?}"));
            }
        }
        // A site that does not exist is out of scope too, except for an admin.
        let got = code(&mut client, "no-such-site", &TeamView("team-a".into())).await;
        let want = if name == "admin" { NF } else { NO };
        if got != want {
            failures.push(format!(
                "{name} at an unknown site: expected {want:?}, got {got:?}"
            ));
        }
    }
    // Without a valid token, nothing.
    let forged = vigie_api::auth::generate_token();
    for token in [None, Some("not-a-token"), Some(forged.as_str())] {
        let mut client = client(&served, token).await;
        for call in &calls {
            let got = code(&mut client, &site, call).await;
            if got != Code::Unauthenticated {
                failures.push(format!("token {token:?} {call:?}: got {got:?}"));
            }
        }
        let listed = client
            .list_sites(pb::ListSitesRequest {})
            .await
            .unwrap_err();
        assert_eq!(listed.code(), Code::Unauthenticated);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Lists show only what is in scope.
    let secret = |name: &str| {
        tokens
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .secret
            .clone()
    };
    let mut supervisor = client(&served, Some(&secret("supervisor-a"))).await;
    let teams = supervisor
        .list_teams(pb::ListTeamsRequest { site: site.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        teams
            .teams
            .iter()
            .map(|t| t.team.as_str())
            .collect::<Vec<_>>(),
        ["team-a"]
    );
    let queues = supervisor
        .list_queues(pb::ListQueuesRequest { site: site.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        queues
            .queues
            .iter()
            .map(|q| q.queue.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&l.queue_a)
    );
    let listed = supervisor
        .list_advisors(pb::ListAdvisorsRequest {
            site: site.clone(),
            team: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.advisors.iter().all(|a| a.team == "team-a"),
        "{listed:?}"
    );
    assert!(listed.advisors.iter().any(|a| a.advisor == l.advisor_a));
    let queue = supervisor
        .get_queue_view(pb::GetQueueViewRequest {
            site: site.clone(),
            queue: l.queue_a.clone(),
            window: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.queue, l.queue_a);

    let mut advisor = client(&served, Some(&secret("advisor-a"))).await;
    let listed = advisor
        .list_advisors(pb::ListAdvisorsRequest {
            site: site.clone(),
            team: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .advisors
            .iter()
            .map(|a| a.advisor.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&l.advisor_a)
    );
    let teams = advisor
        .list_teams(pb::ListTeamsRequest { site: site.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(teams.teams.is_empty());
    let sites = advisor
        .list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sites.sites.len(), 1);

    let mut other = client(&served, Some(&secret("other-manager"))).await;
    let sites = other
        .list_sites(pb::ListSitesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        sites.sites.is_empty(),
        "a manager of another site sees no site here"
    );
}
