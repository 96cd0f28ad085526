//! A real `nats-server` for the integration tests, and helpers to publish and read back.
//!
//! [`NatsServer::start`] runs a server of its own on a free port of 127.0.0.1, with its
//! JetStream storage in its own temporary directory, so tests never see each other's data and
//! can kill (`kill -9`), stop and restart it at will. The helpers bound every wait with a
//! timeout and panic with a message saying what did not happen.
//!
//! What it must not do: touch a server it did not start (never 127.0.0.1:4222), or leave a
//! process behind (dropping a [`NatsServer`] kills it).

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// For tests that set up streams of their own.
pub use async_nats;
use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures::StreamExt;
use rustix::process::Pid;
pub use rustix::process::Signal;
use tempfile::TempDir;
use vigie_core::Event;
use vigie_ingest::{NatsConfig, Publisher, PublisherConfig, Report};

/// How long a server may take to accept connections after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the server binary is looked for after `NATS_SERVER_BIN` and `PATH`.
const SYSTEM_BINARIES: &[&str] = &["/usr/sbin/nats-server", "/usr/local/sbin/nats-server"];

/// The `nats-server` binary: `NATS_SERVER_BIN`, else `PATH`, else the system sbin directories.
///
/// # Panics
///
/// When there is none, with a message saying how to install one.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN is {}, which is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"));
    on_path
        .chain(SYSTEM_BINARIES.iter().map(PathBuf::from))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found (looked at NATS_SERVER_BIN, PATH, {}). The NATS tests \
                 start their own server: install it (Debian and Ubuntu: `apt-get install \
                 nats-server`; otherwise a release from \
                 https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN to \
                 its path.",
                SYSTEM_BINARIES.join(", ")
            )
        })
}

use crate::cli::free_port;

/// A nats-server of one test, with JetStream on file storage in its own directory.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When the binary is missing, or the server does not accept connections within
    /// [`START_TIMEOUT`] (the panic message carries its log).
    pub fn start() -> NatsServer {
        NatsServer::start_with("")
    }

    /// Starts a server with `extra` appended to its configuration (authorization, accounts).
    ///
    /// # Panics
    ///
    /// As [`NatsServer::start`].
    pub fn start_with(extra: &str) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("vigie-nats-")
            .tempdir()
            .expect("a temporary directory for the server");
        let port = free_port();
        assert_ne!(port, 4222, "tests never use the default NATS port");
        let store = dir.path().join("jetstream");
        // Quoted paths: a temporary directory may contain characters NATS config reads
        // otherwise.
        let config = format!(
            "# Written by the Vigie test harness.\n\
             listen: \"127.0.0.1:{port}\"\n\
             # Tests send 1 MiB messages.\n\
             max_payload: 8MB\n\
             jetstream {{\n  store_dir: {store:?}\n}}\n{extra}\n"
        );
        std::fs::write(dir.path().join("nats.conf"), config).expect("the server configuration");
        let mut server = NatsServer {
            binary: server_binary(),
            dir,
            port,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the server log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the server log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "nats-server exited ({status}) instead of listening on {address}:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "nats-server did not accept connections on {address} within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its JetStream storage directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// What the server wrote so far (every run since [`NatsServer::start`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The Vigie NATS settings pointing at this server (defaults otherwise; a short connect
    /// timeout).
    pub fn nats_config(&self) -> NatsConfig {
        NatsConfig {
            url: self.url(),
            name: "vigie-test".to_owned(),
            connect_timeout: vigie_core::config::HumanDuration::secs(5),
            ..NatsConfig::default()
        }
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it. Nothing happens if it is not
    /// running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already exited, which is what is wanted.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM (a clean shutdown) and waits for it to exit.
    ///
    /// # Panics
    ///
    /// When it is still running 10 s later (it is then killed).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nats-server did not stop within 10 s of SIGTERM:\n{}",
            self.log()
        );
    }

    /// Starts it again on the same port with the same storage (stopping it first with SIGTERM
    /// if it runs; [`NatsServer::kill`] first to test a crash), and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop();
        }
        self.child = None;
        self.spawn();
    }

    /// A client connected with Vigie's own `connect` (retrying until connected).
    pub async fn connect(&self) -> (async_nats::Client, Context) {
        within(
            "connecting to the test server",
            Duration::from_secs(10),
            vigie_ingest::connect(&self.nats_config()),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()))
    }

    /// A client with the event stream created (as Vigie's defaults describe it).
    pub async fn connect_with_stream(&self) -> (async_nats::Client, Context) {
        let (client, context) = self.connect().await;
        let config = self.nats_config();
        within(
            "creating the event stream",
            Duration::from_secs(10),
            vigie_ingest::ensure_stream(&context, &config.stream),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create the event stream: {e}"));
        (client, context)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal to a process started by the test.
///
/// # Panics
///
/// When the signal cannot be sent (the process is gone, for one).
pub fn signal(pid: u32, signal: Signal) {
    let raw = i32::try_from(pid).expect("a process id fits in an i32");
    let pid = Pid::from_raw(raw).expect("a process id is positive");
    rustix::process::kill_process(pid, signal)
        .unwrap_or_else(|e| panic!("cannot send {signal:?} to process {raw}: {e}"));
}

/// Awaits `future` for at most `timeout`.
///
/// # Panics
///
/// On timeout, naming `what` did not finish.
pub async fn within<F: Future>(what: &str, timeout: Duration, future: F) -> F::Output {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?}: {what}"))
}

/// Publishes `events` with a [`Publisher`] (message index = position in `events`) and returns
/// every report, in order, within `timeout`.
pub async fn publish_events(
    context: &Context,
    config: PublisherConfig,
    events: &[Event],
    timeout: Duration,
) -> Vec<Report> {
    within("publishing events", timeout, async {
        let mut publisher = Publisher::new(context.clone(), config);
        let mut reports = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let message = publisher
                .event_message(index as u64, event, None)
                .unwrap_or_else(|e| panic!("event {}: {e}", event.id));
            reports.extend(publisher.send(message).await);
        }
        reports.extend(publisher.flush().await);
        reports
    })
    .await
}

/// A message read back from a stream.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// Its stream sequence.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub payload: Bytes,
}

impl StoredMessage {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.as_str())
    }

    /// Its `Nats-Msg-Id`.
    pub fn message_id(&self) -> Option<&str> {
        self.headers
            .get(NATS_MESSAGE_ID)
            .map(|value| value.as_str())
    }
}

/// Every message stored under `subject` (wildcards allowed) in the stream capturing it, in
/// stream order: the events of a site, the dead letters...
///
/// # Panics
///
/// When no stream captures the subject or the messages cannot all be read within `timeout`.
pub async fn read_subject(
    context: &Context,
    subject: &str,
    timeout: Duration,
) -> Vec<StoredMessage> {
    within(&format!("reading {subject}"), timeout, async {
        let name = context
            .stream_by_subject(subject)
            .await
            .unwrap_or_else(|e| panic!("no stream captures {subject}: {e}"));
        read_stream(context, &name, subject).await
    })
    .await
}

async fn read_stream(context: &Context, name: &str, subject: &str) -> Vec<StoredMessage> {
    let stream = context
        .get_stream(name)
        .await
        .unwrap_or_else(|e| panic!("stream {name}: {e}"));
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..pull::Config::default()
        })
        .await
        .unwrap_or_else(|e| panic!("a consumer of {subject} on {name}: {e}"));
    let pending = consumer
        .info()
        .await
        .unwrap_or_else(|e| panic!("the consumer of {subject}: {e}"))
        .num_pending;
    let mut messages = Vec::new();
    while (messages.len() as u64) < pending {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap_or_else(|e| panic!("fetching {subject}: {e}"));
        while let Some(message) = batch.next().await {
            let message = message.unwrap_or_else(|e| panic!("fetching {subject}: {e}"));
            let sequence = message
                .info()
                .unwrap_or_else(|e| panic!("metadata of a message of {subject}: {e}"))
                .stream_sequence;
            messages.push(StoredMessage {
                sequence,
                subject: message.subject.to_string(),
                headers: message.headers.clone().unwrap_or_default(),
                payload: message.payload.clone(),
            });
        }
    }
    messages
}

/// Runs a command to completion within `timeout`, capturing its output.
///
/// # Panics
///
/// When it cannot start, or is still running after `timeout` (it is then killed).
pub fn run_within(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    wait_within(&mut child, timeout)
}

/// Waits for a child started with piped stdout and stderr, within `timeout`, and returns its
/// output.
///
/// # Panics
///
/// When it is still running after `timeout` (it is then killed).
pub fn wait_within(child: &mut Child, timeout: Duration) -> Output {
    // Read both pipes while waiting, or a chatty child blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "still running after {timeout:?}, killed; its standard error:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Every event stored on the site's event subjects (`vigie.events.<site>.>`), by id, with how
/// many times, read within `timeout`. Each must carry its id as `Nats-Msg-Id` and be on the
/// subject of its type.
///
/// # Panics
///
/// When a message is not an event, or is not where and as its event says.
async fn stored_events(
    context: &Context,
    site: &str,
    timeout: Duration,
) -> BTreeMap<String, (usize, Event)> {
    let mut by_id: BTreeMap<String, (usize, Event)> = BTreeMap::new();
    for message in read_subject(context, &format!("vigie.events.{site}.>"), timeout).await {
        let event = vigie_core::decode_json(&message.payload, vigie_core::DEFAULT_MAX_EVENT_BYTES)
            .unwrap_or_else(|rejection| panic!("not an event: {rejection:?}"));
        assert_eq!(message.message_id(), Some(event.id.as_str()));
        assert_eq!(
            message.subject,
            format!("vigie.events.{site}.{}", event.type_name())
        );
        by_id.entry(event.id.clone()).or_insert((0, event)).0 += 1;
    }
    by_id
}

/// Checks that the site's event subjects hold exactly `expected`, each event once.
///
/// # Panics
///
/// When an event is stored twice, missing, not expected, or different.
pub async fn assert_stored_exactly(
    context: &Context,
    site: &str,
    expected: &[Event],
    timeout: Duration,
) {
    let found = stored_events(context, site, timeout).await;
    let doubled: Vec<_> = found.iter().filter(|(_, (n, _))| *n > 1).collect();
    assert!(
        doubled.is_empty(),
        "events stored more than once: {doubled:?}"
    );
    let expected: BTreeMap<&str, &Event> = expected.iter().map(|e| (e.id.as_str(), e)).collect();
    let missing: Vec<_> = expected
        .values()
        .filter(|e| !found.contains_key(&e.id))
        .map(|e| e.to_json())
        .collect();
    assert!(missing.is_empty(), "events missing: {missing:#?}");
    let extra: Vec<_> = found
        .values()
        .filter(|(_, e)| !expected.contains_key(e.id.as_str()))
        .map(|(_, e)| e.to_json())
        .collect();
    assert!(extra.is_empty(), "events not expected: {extra:#?}");
    for (_, event) in found.values() {
        assert_eq!(Some(&event), expected.get(event.id.as_str()));
    }
}

/// Waits until the event stream `VIGIE_EVENTS` holds at least `count` messages, at most
/// `timeout`.
///
/// # Panics
///
/// When it does not in time.
pub async fn wait_for_stored(context: &Context, count: u64, what: &str, timeout: Duration) {
    within(what, timeout, async {
        loop {
            if let Ok(mut stream) = context.get_stream("VIGIE_EVENTS").await
                && stream
                    .info()
                    .await
                    .is_ok_and(|info| info.state.messages >= count)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
