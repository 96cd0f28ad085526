//! `vigie connect asterisk-ami`: a live AMI session (TCP, `Action: Login`), its events
//! translated and published, kept alive with `Action: Ping`, and opened again with
//! exponential backoff when it is lost.
//!
//! The translator (in `vigie-connectors`) lives for the whole run: what it remembers of calls
//! and members (a call queued before a lost connection and answered after it) survives the
//! reconnection. AMI does not replay what was sent while the connection was down: those
//! events are lost, and said so; but after each login `Action: QueueStatus` asks for the
//! queues' members, so that memberships begun or ended meanwhile (or before the start) are
//! told. `contact.completed` events stamped ahead by a queue's
//! wrap-up time are held until the wall clock reaches their time, then published.
//!
//! The secret is read once from its file, sent only in `Action: Login`, and never printed or
//! logged; messages are reported by their number and event name, never their values (caller
//! ids are customer data).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;
use vigie_connectors::{
    AmiConfig, AmiFrame, AmiFramer, AmiMessage, AmiOutcome, AmiTranslator, QueueLogConfig,
};
use vigie_core::{ContactEventKind, Event, EventBody, Timestamp};

use super::{AsteriskArgs, CommonArgs, Sink, check_site, invalid_settings, parse_duration};
use crate::publish::{runtime, stop_on_signal};

pub(super) const EXAMPLES: &str = "Examples:
  # Follow an Asterisk server's queues live (manager.conf: a user with read = agent,call):
  vigie connect asterisk-ami --host pbx.example.net --user vigie \\
      --secret-file /etc/vigie/ami.secret --site paris --nats nats://127.0.0.1:4222

  # Another port, advisors named, a queue's wrap-up time:
  vigie connect asterisk-ami --host 10.0.0.5:5039 --user vigie --secret-file ami.secret \\
      --site paris --advisor PJSIP/1001=a-117 --wrapuptime billing=15s

The translation settings are those of the queue_log connector of the same server, in the
configuration file (site, advisors, queues' wrapuptime, transfer_targets):
  [connect.asterisk_queue_log]
  site = \"paris\"
  advisors = { \"PJSIP/1001\" = \"a-117\" }
  [connect.asterisk_queue_log.queues.billing]
  wrapuptime = \"15s\"

Set `timestampevents = yes` in manager.conf: without it, events carry no time and are
stamped when they arrive.";

/// The AMI port when `--host` names none.
const DEFAULT_PORT: u16 = 5038;

/// The first wait before connecting again; it doubles up to `--max-backoff`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Completions held back at most; beyond, the earliest is published before its time (and
/// counted), so that memory stays bounded.
const MAX_HELD: usize = 10_000;

/// Bytes read from the connection at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Arguments of `vigie connect asterisk-ami`.
#[derive(Args, Debug)]
pub struct AmiArgs {
    /// The AMI server: HOST or HOST:PORT (default port 5038).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub host: String,
    /// The AMI user (a section of manager.conf).
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The file holding the user's secret (read once, white space around it trimmed).
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    #[command(flatten)]
    pub asterisk: AsteriskArgs,
    /// How often `Action: Ping` checks that the connection is alive.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub keepalive: Duration,
    /// The longest wait for the server: connecting, its banner, the answer to Login and to
    /// Ping. Past it, the connection is taken for dead and opened again.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub answer_timeout: Duration,
    /// The longest wait between two connection attempts (the wait starts at 1 s and doubles;
    /// it starts again at 1 s after a successful login).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub max_backoff: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl AmiArgs {
    /// The translator's settings: the queue_log section of the same server, then the options.
    fn translator_config(&self, section: Option<QueueLogConfig>) -> anyhow::Result<AmiConfig> {
        Ok(AmiConfig::from_queue_log(&self.asterisk.apply(section)?))
    }
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn host_and_port(text: &str) -> anyhow::Result<(String, u16)> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            bail!("--host {text:?}: an IPv6 address in brackets lacks its ']'");
        };
        let port = match after.strip_prefix(':') {
            Some(port) => port
                .parse()
                .with_context(|| format!("--host {text:?}: {port:?} is not a port"))?,
            None if after.is_empty() => DEFAULT_PORT,
            None => bail!("--host {text:?}: expected [ADDRESS]:PORT"),
        };
        return Ok((host.to_owned(), port));
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => {
            let port = port
                .parse()
                .with_context(|| format!("--host {text:?}: {port:?} is not a port"))?;
            if host.is_empty() {
                bail!("--host {text:?}: no host before the port");
            }
            Ok((host.to_owned(), port))
        }
        // No port, or a bare IPv6 address.
        _ if !text.is_empty() => Ok((text.to_owned(), DEFAULT_PORT)),
        _ => bail!("--host is empty"),
    }
}

/// The secret, kept out of every `Debug` and `Display`.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!("the secret file {} is empty", path.display());
    }
    if secret.contains(['\r', '\n']) {
        bail!(
            "the secret file {} holds more than one line",
            path.display()
        );
    }
    Ok(Secret(secret.to_owned()))
}

/// The wall clock as an event time.
fn wall_clock() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn is_completion(event: &Event) -> bool {
    matches!(
        &event.body,
        EventBody::Contact(contact) if matches!(contact.kind, ContactEventKind::Completed { .. })
    )
}

/// Why a session ended, other than by a signal.
#[derive(Debug)]
enum SessionEnd {
    /// Login answered with an error: the credentials are wrong; trying again will not help.
    Refused(String),
    /// The connection failed or died; `logged_in` if it got as far as a successful login.
    Lost { why: String, logged_in: bool },
}

fn lost(why: impl Into<String>, logged_in: bool) -> SessionEnd {
    SessionEnd::Lost {
        why: why.into(),
        logged_in,
    }
}

/// What a run did.
#[derive(Debug, Default)]
struct Counts {
    /// Messages read (events, responses), malformed ones included.
    messages: u64,
    malformed: u64,
    /// AMI events with nothing for Vigie.
    without_events: u64,
    /// Canonical events translated.
    events: u64,
    /// Completions published before their time because the holding queue was full.
    released_early: u64,
    /// Successful logins.
    logins: u64,
    /// Connections lost or failed.
    losses: u64,
}

struct Connector<'a> {
    args: &'a AmiArgs,
    host: String,
    port: u16,
    secret: Secret,
    translator: AmiTranslator,
    sink: Sink,
    /// Held completions by (time, arrival), each with its message number.
    held: BTreeMap<(Timestamp, u64), (u64, Event)>,
    arrivals: u64,
    counts: Counts,
    actions: u64,
}

impl Connector<'_> {
    fn report(&self, text: &str) {
        self.args.common.report(text);
    }

    fn action_id(&mut self, what: &str) -> String {
        self.actions += 1;
        format!("vigie-{what}-{}", self.actions)
    }

    /// Connects, logs in and reads events until `stop` (`Ok`) or the end of the session.
    async fn session(&mut self, stop: &CancellationToken) -> Result<(), SessionEnd> {
        let timeout = self.args.answer_timeout;
        let address = (self.host.clone(), self.port);
        let stream = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            connected = tokio::time::timeout(timeout, TcpStream::connect(address)) => match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(lost(format!("cannot connect: {error}"), false)),
                Err(_) => return Err(lost(format!("cannot connect within {timeout:?}"), false)),
            },
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut framer = AmiFramer::new();

        let deadline = Instant::now() + timeout;
        let banner = match self
            .next_frame(&mut reader, &mut framer, deadline, stop)
            .await?
        {
            None => return Ok(()),
            Some(AmiFrame::Banner(banner)) => banner,
            Some(AmiFrame::Message(_)) => {
                return Err(lost(
                    "not an AMI server: its first line is not \"Asterisk Call Manager/...\"",
                    false,
                ));
            }
        };

        let login_id = self.action_id("login");
        let login = AmiMessage::new([
            ("Action", "Login"),
            ("ActionID", login_id.as_str()),
            ("Username", self.args.user.as_str()),
            ("Secret", self.secret.0.as_str()),
            ("Events", "on"),
        ]);
        self.write(&mut writer, &login, false).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(frame) = self
                .next_frame(&mut reader, &mut framer, deadline, stop)
                .await?
            else {
                return Ok(());
            };
            let AmiFrame::Message(message) = frame else {
                continue;
            };
            let Some(status) = message.response() else {
                continue;
            };
            if message
                .get("ActionID")
                .is_some_and(|id| id != login_id.as_str())
            {
                continue;
            }
            if status.eq_ignore_ascii_case("Success") {
                break;
            }
            let why = message.get("Message").unwrap_or("no reason given");
            return Err(SessionEnd::Refused(format!(
                "Response: {status}, Message: {why}"
            )));
        }
        self.counts.logins += 1;
        eprintln!(
            "{}:{}: logged in as {} ({banner})",
            self.host, self.port, self.args.user
        );
        // The queues' members now: those who logged in before this session (before the
        // connector started, or while the connection was down) get their login, those who
        // left meanwhile their logout. The answer comes as events, read by `follow`.
        let status = AmiMessage::new([
            ("Action", "QueueStatus"),
            ("ActionID", self.action_id("status").as_str()),
        ]);
        self.translator.status_requested();
        self.write(&mut writer, &status, true).await?;
        self.follow(reader, writer, framer, stop).await
    }

    /// The next frame within `deadline`; none when stopped first.
    async fn next_frame(
        &mut self,
        reader: &mut OwnedReadHalf,
        framer: &mut AmiFramer,
        deadline: Instant,
        stop: &CancellationToken,
    ) -> Result<Option<AmiFrame>, SessionEnd> {
        let mut buffer = vec![0; READ_CHUNK];
        loop {
            match framer.next_frame() {
                Some(Ok(frame)) => return Ok(Some(frame)),
                Some(Err(problem)) => {
                    return Err(lost(format!("unreadable answer: {problem}"), false));
                }
                None => {}
            }
            let read = tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Err(lost(
                        format!("no answer within {:?}", self.args.answer_timeout),
                        false,
                    ));
                }
                read = reader.read(&mut buffer) => read,
            };
            match read {
                Ok(0) => return Err(lost("connection closed by the server", false)),
                Ok(n) => framer.push(&buffer[..n]),
                Err(error) => return Err(lost(format!("read error: {error}"), false)),
            }
        }
    }

    async fn write(
        &self,
        writer: &mut OwnedWriteHalf,
        message: &AmiMessage,
        logged_in: bool,
    ) -> Result<(), SessionEnd> {
        let wire = message.to_wire();
        match tokio::time::timeout(self.args.answer_timeout, writer.write_all(wire.as_bytes()))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(lost(format!("write error: {error}"), logged_in)),
            Err(_) => Err(lost("the server does not read what is sent", logged_in)),
        }
    }

    /// Reads events until `stop` or the connection's end; pings every `--keepalive`.
    async fn follow(
        &mut self,
        mut reader: OwnedReadHalf,
        mut writer: OwnedWriteHalf,
        mut framer: AmiFramer,
        stop: &CancellationToken,
    ) -> Result<(), SessionEnd> {
        let mut buffer = vec![0; READ_CHUNK];
        let mut ping = tokio::time::interval(self.args.keepalive);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        // The Ping in flight: its ActionID and when an answer is due.
        let mut waiting: Option<(String, Instant)> = None;
        loop {
            while let Some(frame) = framer.next_frame() {
                match frame {
                    Ok(AmiFrame::Banner(_)) => {}
                    Ok(AmiFrame::Message(message)) => {
                        if message.response().is_some() {
                            if waiting
                                .as_ref()
                                .is_some_and(|(id, _)| message.get("ActionID") == Some(id))
                            {
                                waiting = None;
                            }
                            continue;
                        }
                        self.message(&message).await;
                    }
                    Err(problem) => {
                        self.counts.messages += 1;
                        self.counts.malformed += 1;
                        self.report(&format!(
                            "message {}: malformed: {problem}, skipped",
                            self.counts.messages
                        ));
                    }
                }
            }
            self.release(wall_clock()).await;
            let held_due = self.held.first_key_value().map(|((time, _), _)| {
                let wait = u64::try_from(time.0 - wall_clock().0).unwrap_or(0);
                Instant::now() + Duration::from_millis(wait)
            });
            let ping_due = waiting.as_ref().map(|(_, due)| *due);
            tokio::select! {
                _ = stop.cancelled() => {
                    self.log_off(&mut reader, &mut writer, &mut framer).await;
                    return Ok(());
                }
                read = reader.read(&mut buffer) => match read {
                    Ok(0) => {
                        let cut = framer.pending_bytes();
                        let what = if cut > 0 {
                            format!("connection closed by the server ({cut} bytes of a message cut)")
                        } else {
                            "connection closed by the server".to_owned()
                        };
                        return Err(lost(what, true));
                    }
                    Ok(n) => framer.push(&buffer[..n]),
                    Err(error) => return Err(lost(format!("read error: {error}"), true)),
                },
                _ = ping.tick() => {
                    if waiting.is_none() {
                        let id = self.action_id("ping");
                        let message = AmiMessage::new([("Action", "Ping"), ("ActionID", id.as_str())]);
                        self.write(&mut writer, &message, true).await?;
                        waiting = Some((id, Instant::now() + self.args.answer_timeout));
                    }
                }
                _ = sleep_or_never(ping_due) => {
                    return Err(lost(
                        format!("no answer to Ping within {:?}", self.args.answer_timeout),
                        true,
                    ));
                }
                // A held completion's time has come: released at the top of the loop.
                _ = sleep_or_never(held_due) => {}
            }
        }
    }

    /// Translates and publishes (or holds) one message.
    async fn message(&mut self, message: &AmiMessage) {
        self.counts.messages += 1;
        let number = self.counts.messages;
        let now = wall_clock();
        let events = match self.translator.translate(message, now) {
            Ok(AmiOutcome::Events(events)) => events,
            Ok(AmiOutcome::Skipped { .. } | AmiOutcome::NotAnEvent) => {
                self.counts.without_events += 1;
                return;
            }
            Err(problem) => {
                self.counts.malformed += 1;
                self.report(&format!(
                    "message {number} ({}): malformed: {problem}, skipped",
                    message.event().unwrap_or("no event")
                ));
                return;
            }
        };
        self.counts.events += events.len() as u64;
        for event in events {
            if is_completion(&event) && event.time > now {
                self.hold(number, event);
            } else {
                self.sink.send(number, &event).await;
            }
        }
    }

    fn hold(&mut self, number: u64, event: Event) {
        if self.held.len() >= MAX_HELD
            && let Some((_, (number, event))) = self.held.pop_first()
        {
            self.counts.released_early += 1;
            self.arrivals += 1;
            // Published at the next release, whatever its time.
            self.held
                .insert((Timestamp::MIN, self.arrivals), (number, event));
        }
        self.arrivals += 1;
        self.held
            .insert((event.time, self.arrivals), (number, event));
    }

    /// Publishes the held events whose time has come.
    async fn release(&mut self, now: Timestamp) {
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (number, event) = entry.remove();
            self.sink.send(number, &event).await;
        }
    }

    /// `Action: Logoff`, and its answer (`Response: Goodbye`) awaited briefly.
    async fn log_off(
        &mut self,
        reader: &mut OwnedReadHalf,
        writer: &mut OwnedWriteHalf,
        framer: &mut AmiFramer,
    ) {
        let id = self.action_id("logoff");
        let logoff = AmiMessage::new([("Action", "Logoff"), ("ActionID", id.as_str())]);
        if self.write(writer, &logoff, true).await.is_err() {
            return;
        }
        let deadline = Instant::now() + self.args.answer_timeout.min(Duration::from_secs(2));
        let mut buffer = vec![0; READ_CHUNK];
        loop {
            while let Some(frame) = framer.next_frame() {
                let Ok(AmiFrame::Message(message)) = frame else {
                    continue;
                };
                if message.response().is_none() {
                    // Events still in flight are read as any other.
                    self.message(&message).await;
                } else if message.get("ActionID").is_none_or(|got| got == id) {
                    return;
                }
            }
            let read = tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => return,
                read = reader.read(&mut buffer) => read,
            };
            match read {
                Ok(n) if n > 0 => framer.push(&buffer[..n]),
                _ => return,
            }
        }
    }
}

async fn sleep_or_never(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs `vigie connect asterisk-ami`.
pub fn run(args: &AmiArgs) -> anyhow::Result<()> {
    let (config, nats) = args.common.settings()?;
    let settings = args.translator_config(config.connect.asterisk_queue_log)?;
    let translator = settings
        .build()
        .map_err(|errors| invalid_settings("AMI", "connect.asterisk_queue_log", &errors.0))?;
    check_site(&settings.site, "connect.asterisk_queue_log.site")?;
    let (host, port) = host_and_port(&args.host)?;
    let secret = read_secret(&args.secret_file)?;
    let started = Instant::now();
    runtime()?.block_on(async {
        let stop = stop_on_signal();
        let sink = Sink::connect(&nats, &args.common).await?;
        let mut connector = Connector {
            args,
            host,
            port,
            secret,
            translator,
            sink,
            held: BTreeMap::new(),
            arrivals: 0,
            counts: Counts::default(),
            actions: 0,
        };
        let mut backoff = FIRST_BACKOFF;
        let mut refused = None;
        loop {
            match connector.session(&stop).await {
                Ok(()) => break,
                Err(SessionEnd::Refused(why)) => {
                    refused = Some(why);
                    break;
                }
                Err(SessionEnd::Lost { why, logged_in }) => {
                    connector.counts.losses += 1;
                    if logged_in {
                        backoff = FIRST_BACKOFF;
                    }
                    eprintln!(
                        "{}:{}: {why}; connecting again in {backoff:?} (events sent meanwhile are lost)",
                        connector.host, connector.port
                    );
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(args.max_backoff.max(FIRST_BACKOFF));
                }
            }
        }
        connector.release(wall_clock()).await;
        connector.sink.flush().await;
        finish(&connector, refused, started)
    })
}

fn finish(
    connector: &Connector<'_>,
    refused: Option<String>,
    started: Instant,
) -> anyhow::Result<()> {
    let counts = &connector.counts;
    let tally = connector.sink.tally;
    let mut summary = format!(
        "asterisk AMI {}:{}: {} AMI events read ({} malformed, {} with nothing for Vigie), \
         {} events: {} published, {} duplicates, {} failed, {} held for their time and not \
         published; {} logins, {} connections lost",
        connector.host,
        connector.port,
        counts.messages,
        counts.malformed,
        counts.without_events,
        counts.events,
        tally.stored,
        tally.duplicates,
        tally.failed,
        connector.held.len(),
        counts.logins,
        counts.losses,
    );
    if counts.released_early > 0 {
        summary += &format!(
            ", {} published before their time (more than {MAX_HELD} held)",
            counts.released_early
        );
    }
    summary += &format!(" ({:.1} s)", started.elapsed().as_secs_f64());
    eprintln!("{summary}");
    if let Some(why) = refused {
        bail!(
            "{}:{}: login refused for user {:?} ({why}): check --user and the secret file {}",
            connector.host,
            connector.port,
            connector.args.user,
            connector.args.secret_file.display()
        );
    }
    if tally.failed > 0 {
        bail!("{} events could not be published", tally.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_take_an_optional_port() {
        assert_eq!(
            host_and_port("pbx").unwrap(),
            ("pbx".to_owned(), DEFAULT_PORT)
        );
        assert_eq!(
            host_and_port("10.0.0.5:5039").unwrap(),
            ("10.0.0.5".to_owned(), 5039)
        );
        assert_eq!(
            host_and_port("[::1]:5039").unwrap(),
            ("::1".to_owned(), 5039)
        );
        assert_eq!(
            host_and_port("::1").unwrap(),
            ("::1".to_owned(), DEFAULT_PORT)
        );
        assert!(host_and_port("pbx:port").is_err());
        assert!(host_and_port(":5038").is_err());
    }

    #[test]
    fn the_secret_is_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  s3cret\n").unwrap();
        let secret = read_secret(&path).unwrap();
        assert_eq!(secret.0, "s3cret");
        assert!(!format!("{secret:?}").contains("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret(&path).is_err());
    }
}
