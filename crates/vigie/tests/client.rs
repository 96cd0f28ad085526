//! The client subcommands against a real `vigie serve` (the embedded demo centre) started as a
//! child process on random ports: lists, one view as JSON, a live watch, and the errors a user
//! meets (no server, an unknown team, no token, a team outside the token's scope).
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigie_tests::cli::{DEMO_TIME_ZONE, daytime_zone, free_port, text};

const WAIT: Duration = Duration::from_secs(60);

/// `vigie serve` on random ports, killed when dropped.
struct Served {
    child: Child,
    server: String,
}

impl Served {
    /// The demo centre, with the extra arguments of `vigie serve`; returns once the gRPC API
    /// answers `vigie sites` (with `token` when authentication is on).
    fn start(args: &[&str], dir: &Path, token: Option<&str>) -> Served {
        let grpc = free_port();
        let http = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(["serve", "--no-web"])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--grpc-listen", &format!("127.0.0.1:{grpc}")])
            .args(args)
            .current_dir(dir)
            .env_remove("VIGIE_CONFIG")
            .env(DEMO_TIME_ZONE, daytime_zone())
            .env("VIGIE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            server: format!("http://127.0.0.1:{grpc}"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let mut sites = vec!["sites"];
            if let Some(token) = token {
                sites.extend(["--token", token]);
            }
            let output = served.vigie(&sites, dir);
            if output.status.success() {
                break;
            }
            assert!(
                served.child.try_wait().unwrap().is_none(),
                "vigie serve exited"
            );
            assert!(
                Instant::now() < deadline,
                "the gRPC API never answered: {}",
                text(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        served
    }

    /// A client command against this server, with no `VIGIE_*` of the environment.
    fn command(&self, args: &[&str], dir: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vigie"));
        command
            .args(args)
            .args(["--server", &self.server])
            .current_dir(dir)
            .env_remove("VIGIE_TOKEN")
            .env_remove("VIGIE_SITE")
            .env_remove("VIGIE_SERVER");
        command
    }

    fn vigie(&self, args: &[&str], dir: &Path) -> Output {
        let mut command = self.command(args, dir);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every call of the client has its own timeout; this one only keeps a hung test from
        // hanging the suite.
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("vigie {args:?} did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lists_a_team_as_json_and_watches_it_live() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        &["--demo-advisors", "20", "--demo-queues", "3"],
        dir.path(),
        None,
    );

    let sites = served.vigie(&["sites"], dir.path());
    assert!(sites.status.success(), "{}", text(&sites.stderr));
    let listed = text(&sites.stdout);
    assert!(listed.contains("demo"), "{listed}");

    // The only site is chosen without --site.
    let teams = served.vigie(&["teams", "--format", "json"], dir.path());
    assert!(teams.status.success(), "{}", text(&teams.stderr));
    let teams: Value = serde_json::from_slice(&teams.stdout).unwrap();
    let team = teams["teams"][0]["team"].as_str().unwrap().to_owned();

    let view = served.vigie(
        &["team", &team, "--format", "json", "--window", "15m"],
        dir.path(),
    );
    assert!(view.status.success(), "{}", text(&view.stderr));
    let view: Value = serde_json::from_slice(&view.stdout).unwrap();
    let header = &view["header"];
    assert_eq!(header["site"], "demo", "{view:#}");
    assert_eq!(header["window"], "WINDOW_15M", "{view:#}");
    assert!(header["complete"].is_boolean(), "{view:#}");
    // uint64 as a string, timestamps in RFC 3339: the canonical mapping.
    assert!(header["seq"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    chrono::DateTime::parse_from_rfc3339(header["asOf"].as_str().unwrap()).unwrap();
    assert_eq!(view["team"]["team"], team.as_str(), "{view:#}");
    let members = view["team"]["members"].as_array().unwrap();
    let advisors = view["advisors"].as_array().unwrap();
    assert!(!members.is_empty());
    assert_eq!(advisors.len(), members.len(), "{view:#}");
    assert!(
        advisors[0]["state"]
            .as_str()
            .unwrap()
            .starts_with("LIVE_STATE_"),
        "{view:#}"
    );

    // The table of the same team.
    let table = served.vigie(&["team", &team], dir.path());
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.contains("service level"), "{table}");
    assert!(table.contains(members[0].as_str().unwrap()), "{table}");

    // A live watch, not on a terminal: one block per update, each followed by a separator.
    let mut watch = served
        .command(&["watch", "team", &team], dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut blocks = vec![String::new()];
    while blocks.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|error| panic!("{error} after {blocks:?}"));
        if line == "----" {
            blocks.push(String::new());
        } else {
            let block = blocks.last_mut().unwrap();
            block.push_str(&line);
            block.push('\n');
        }
    }
    watch.kill().unwrap();
    watch.wait().unwrap();
    let seqs: Vec<u64> = blocks[..2]
        .iter()
        .map(|block| {
            assert!(block.starts_with(&format!("Team {team}")), "{block}");
            assert!(block.contains("site demo · window today"), "{block}");
            assert!(block.contains("available advisors"), "{block}");
            let seq = block.split(" · seq ").nth(1).unwrap();
            seq.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(seqs[0] < seqs[1], "{seqs:?}");

    let missing = served.vigie(&["team", "no-such-team"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
    let stderr = text(&missing.stderr);
    assert!(
        stderr.contains("not found: team `no-such-team` of site `demo`"),
        "{stderr}"
    );
}

#[test]
fn a_server_that_is_not_there_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["sites", "--server", &server])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the Vigie API at {server}: is `vigie serve` running?"
        )),
        "{stderr}"
    );
}

#[test]
fn tokens_are_required_sent_and_scoped() {
    let dir = tempfile::tempdir().unwrap();
    let new = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["token", "new", "--role", "supervisor", "--subject", "alice"])
        .args(["--site", "demo", "--team", "team-01"])
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new.stderr));
    let token = text(&new.stdout).trim().to_owned();
    let stderr = text(&new.stderr);
    let entry = &stderr[stderr.find("[[token]]").unwrap()..];
    std::fs::write(dir.path().join("tokens.toml"), entry).unwrap();
    std::fs::write(
        dir.path().join("vigie.toml"),
        "[api.auth]\ntokens_file = \"tokens.toml\"\n",
    )
    .unwrap();
    let served = Served::start(&["--config", "vigie.toml"], dir.path(), Some(&token));

    let anonymous = served.vigie(&["team", "team-01", "--site", "demo"], dir.path());
    assert_eq!(anonymous.status.code(), Some(1));
    let stderr = text(&anonymous.stderr);
    assert!(
        stderr.contains("the server requires a valid token: pass --token or set VIGIE_TOKEN"),
        "{stderr}"
    );

    let own = served.vigie(&["team", "team-01", "--token", &token], dir.path());
    assert!(own.status.success(), "{}", text(&own.stderr));
    assert!(!text(&own.stdout).contains(&token));

    let other = served.vigie(&["team", "team-02", "--token", &token], dir.path());
    assert_eq!(other.status.code(), Some(1));
    let stderr = text(&other.stderr);
    assert!(
        stderr.contains("permission denied: your token does not give access to team `team-02`"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token), "{stderr}");
}

/// The demo's queue `queue` as JSON, through `vigie queue`.
fn queue_json(served: &Served, queue: &str, dir: &Path) -> Value {
    let output = served.vigie(&["queue", queue, "--format", "json"], dir);
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn an_admin_change_applies_at_once_and_survives_a_restart() {
    use vigie_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let changes = dir.path().join("changes");
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!(
            "[admin]\nchanges_dir = {:?}\n",
            changes.display().to_string()
        ),
    )
    .unwrap();
    let args = ["--config", "vigie.toml"];
    let served = Served::start(&args, dir.path(), None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (queue, changed) = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(served.server.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut admin = pb::admin_client::AdminClient::new(channel);
        let config = admin
            .get_site_config(pb::GetSiteConfigRequest {
                site: "demo".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut queue = config.config.unwrap().queues[0].clone();
        queue.sl_target = 0.95;
        queue.aht_target = Some(240.0);
        let changed = admin
            .upsert_queue(pb::UpsertQueueRequest {
                site: "demo".into(),
                queue: Some(queue.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        (queue.queue, changed)
    });
    assert_eq!(changed.changes, 1);
    let view = queue_json(&served, &queue, dir.path());
    assert_eq!(view["slTarget"], 0.95, "{view}");
    assert_eq!(view["ahtTarget"], 240.0, "{view}");
    assert!(
        std::fs::read_dir(&changes).unwrap().count() > 0,
        "the change is kept"
    );
    drop(served);

    // Restarted on the same configuration: the change is replayed over the file.
    let served = Served::start(&args, dir.path(), None);
    let view = queue_json(&served, &queue, dir.path());
    assert_eq!(view["slTarget"], 0.95, "{view}");
    assert_eq!(view["ahtTarget"], 240.0, "{view}");
}
