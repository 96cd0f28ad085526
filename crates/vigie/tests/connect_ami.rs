//! `vigie connect asterisk-ami` against a scripted AMI server of the test's own (a tokio
//! `TcpListener` on a random port) and a nats-server of its own: login, events, a connection
//! dropped in the middle of a message, the login again and the rest of the events; what
//! reaches the stream is exactly what the translator gives for the whole sequence, each event
//! once. A wrong secret stops the connector with status 1.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use vigie_connectors::{
    AmiConfig, AmiFrame, AmiFramer, AmiMessage, AmiOutcome, QueueLogQueueConfig,
};
use vigie_core::{Event, Timestamp};
use vigie_tests::nats::{
    NatsServer, Signal, assert_stored_exactly, signal, wait_for_stored, wait_within, within,
};

const RUN: Duration = Duration::from_secs(60);
const READ: Duration = Duration::from_secs(30);

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

const SECRET: &str = "s3cret-Ami";

/// The translator's settings, as the options given to the connector say.
fn config() -> AmiConfig {
    let mut config = AmiConfig::new("paris");
    config.queues.insert(
        "billing".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(30),
        },
    );
    config.queues.insert(
        "sales".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(2),
        },
    );
    config
        .advisors
        .insert("PJSIP/1001".to_owned(), "a-117".to_owned());
    config
}

fn spawn_connector(dir: &Path, port: u16, nats: &str, secret_file: &str) -> Child {
    let host = format!("127.0.0.1:{port}");
    Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args([
            "connect",
            "asterisk-ami",
            "--host",
            &host,
            "--user",
            "vigie",
            "--secret-file",
            secret_file,
            "--site",
            "paris",
            "--advisor",
            "PJSIP/1001=a-117",
            "--wrapuptime",
            "billing=30s",
            "--wrapuptime",
            "sales=2s",
            "--keepalive",
            "200ms",
            "--nats",
            nats,
        ])
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---- the scripted AMI server ------------------------------------------------------------

/// What the connector sent on one connection, as the server's reader saw it.
#[derive(Debug)]
enum Seen {
    Action(AmiMessage),
    Closed,
}

/// One accepted connection: the server writes through `writer`; a reader task answers
/// `Ping` and hands every other action over.
struct Peer {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    actions: mpsc::UnboundedReceiver<Seen>,
    pings: Arc<std::sync::atomic::AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Peer {
    async fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = within("the connector's connection", READ, listener.accept())
            .await
            .unwrap();
        Peer::start(stream)
    }

    fn start(stream: TcpStream) -> Peer {
        let (mut read, write) = stream.into_split();
        let writer = Arc::new(Mutex::new(write));
        let (sender, actions) = mpsc::unbounded_channel();
        let pings = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (ping_writer, ping_count) = (writer.clone(), pings.clone());
        let reader = tokio::spawn(async move {
            let mut framer = AmiFramer::new();
            let mut buffer = vec![0; 4096];
            loop {
                let n = read.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    let _ = sender.send(Seen::Closed);
                    return;
                }
                framer.push(&buffer[..n]);
                while let Some(frame) = framer.next_frame() {
                    let AmiFrame::Message(action) = frame.unwrap() else {
                        panic!("a client sends no banner")
                    };
                    if action.get("Action") == Some("Ping") {
                        ping_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let pong = AmiMessage::new([
                            ("Response", "Success"),
                            ("ActionID", action.get("ActionID").unwrap()),
                            ("Ping", "Pong"),
                            ("Timestamp", "1772442900.000000"),
                        ]);
                        let _ = ping_writer
                            .lock()
                            .await
                            .write_all(pong.to_wire().as_bytes())
                            .await;
                    } else {
                        let _ = sender.send(Seen::Action(action));
                    }
                }
            }
        });
        Peer {
            writer,
            actions,
            pings,
            reader,
        }
    }

    async fn write(&self, bytes: &[u8]) {
        self.writer.lock().await.write_all(bytes).await.unwrap();
    }

    async fn send(&self, messages: &[AmiMessage]) {
        let wire: String = messages.iter().map(AmiMessage::to_wire).collect();
        self.write(wire.as_bytes()).await;
    }

    async fn next_action(&mut self) -> Seen {
        within("an action from the connector", READ, self.actions.recv())
            .await
            .unwrap()
    }

    /// The banner, then the Login action checked and answered; once logged in, the
    /// QueueStatus action is answered with `members` (`QueueMember` events) and
    /// `QueueStatusComplete` (stamped `complete_at`).
    async fn log_in(&mut self, accept: bool, members: &[AmiMessage], complete_at: &str) {
        self.write(b"Asterisk Call Manager/9.0.0\r\n").await;
        let Seen::Action(login) = self.next_action().await else {
            panic!("the connection closed before Login")
        };
        assert_eq!(login.get("Action"), Some("Login"));
        assert_eq!(login.get("Username"), Some("vigie"));
        assert_eq!(
            login.get("Secret"),
            Some(SECRET),
            "the secret file's content, trimmed"
        );
        assert_eq!(login.get("Events"), Some("on"));
        let id = login.get("ActionID").expect("Login carries an ActionID");
        let answer = if accept {
            AmiMessage::new([
                ("Response", "Success"),
                ("ActionID", id),
                ("Message", "Authentication accepted"),
            ])
        } else {
            AmiMessage::new([
                ("Response", "Error"),
                ("ActionID", id),
                ("Message", "Authentication failed"),
            ])
        };
        self.send(&[answer]).await;
        if !accept {
            return;
        }
        let Seen::Action(status) = self.next_action().await else {
            panic!("the connection closed before QueueStatus")
        };
        assert_eq!(status.get("Action"), Some("QueueStatus"));
        let id = status
            .get("ActionID")
            .expect("QueueStatus carries an ActionID");
        self.send(&status_answer(id, members, complete_at)).await;
    }

    /// Closes the connection (both directions).
    async fn drop_connection(self) {
        self.reader.abort();
        let mut writer = self.writer.lock().await;
        let _ = writer.shutdown().await;
    }
}

// ---- the script -------------------------------------------------------------------------

fn field_list(pairs: &[(&str, String)]) -> AmiMessage {
    AmiMessage::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
}

fn at(secs: i64) -> String {
    format!("{}.{:06}", T + secs, 123_456)
}

/// The caller channel fields of a queue event.
fn caller(event: &str, uniqueid: &str, time: &str, queue: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Event", event.to_owned()),
        ("Privilege", "agent,all".to_owned()),
        ("Timestamp", time.to_owned()),
        ("Channel", format!("PJSIP/trunk-{uniqueid}")),
        ("CallerIDNum", "0600000000".to_owned()),
        ("Uniqueid", uniqueid.to_owned()),
        ("Linkedid", uniqueid.to_owned()),
        ("Queue", queue.to_owned()),
    ]
}

fn join(uniqueid: &str, time: &str, queue: &str) -> AmiMessage {
    let mut fields = caller("QueueCallerJoin", uniqueid, time, queue);
    fields.extend([("Position", "1".to_owned()), ("Count", "1".to_owned())]);
    field_list(&fields)
}

fn agent(
    event: &str,
    uniqueid: &str,
    time: &str,
    queue: &str,
    more: &[(&'static str, &str)],
) -> AmiMessage {
    let mut fields = caller(event, uniqueid, time, queue);
    fields.extend([
        ("DestChannel", "PJSIP/1001-00000009".to_owned()),
        ("DestUniqueid", format!("{uniqueid}9")),
        ("MemberName", "Alice".to_owned()),
        ("Interface", "PJSIP/1001".to_owned()),
    ]);
    fields.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    field_list(&fields)
}

fn member(event: &str, time: &str, queue: &str, more: &[(&'static str, &str)]) -> AmiMessage {
    let mut fields = vec![
        ("Event", event.to_owned()),
        ("Privilege", "agent,all".to_owned()),
        ("Timestamp", time.to_owned()),
        ("Queue", queue.to_owned()),
        ("MemberName", "Bob".to_owned()),
        ("Interface", "PJSIP/1002".to_owned()),
        ("Membership", "dynamic".to_owned()),
    ];
    fields.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    field_list(&fields)
}

/// The end of the answer to QueueStatus.
fn status_complete(action_id: &str, time: &str, items: usize) -> AmiMessage {
    field_list(&[
        ("Event", "QueueStatusComplete".to_owned()),
        ("Timestamp", time.to_owned()),
        ("ActionID", action_id.to_owned()),
        ("EventList", "Complete".to_owned()),
        ("ListItems", items.to_string()),
    ])
}

/// A static member listed by QueueStatus: Carol (`PJSIP/1003`).
fn listed_carol(time: &str, queue: &str, more: &[(&'static str, &str)]) -> AmiMessage {
    AmiMessage::parse(
        &member("QueueMember", time, queue, more)
            .to_wire()
            .replace("MemberName: Bob", "MemberName: Carol")
            .replace("PJSIP/1002", "PJSIP/1003")
            .replace("Membership: dynamic", "Membership: static"),
    )
    .unwrap()
}

/// The wall clock, as an AMI `Timestamp`.
fn now_stamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

/// The answer to the QueueStatus action `action_id`: the response that starts the list
/// (which `reference` takes as the connector's request), the members, the end.
fn status_answer(action_id: &str, members: &[AmiMessage], complete_at: &str) -> Vec<AmiMessage> {
    let mut answer = vec![AmiMessage::new([
        ("Response", "Success"),
        ("ActionID", action_id),
        ("EventList", "start"),
        ("Message", "Queue status will follow"),
    ])];
    answer.extend(members.iter().cloned());
    answer.push(status_complete(action_id, complete_at, members.len()));
    answer
}

/// The translator's events for `messages` in this order, each id once (the first); the
/// start of an answer to QueueStatus (see `status_answer`) is the connector's request.
fn reference(messages: &[AmiMessage]) -> Vec<Event> {
    let mut translator = config().build().unwrap();
    let mut events: Vec<Event> = Vec::new();
    for message in messages {
        if message.get("EventList") == Some("start") {
            translator.status_requested();
            continue;
        }
        // Every scripted event has its Timestamp: the arrival time is not used.
        if let Ok(AmiOutcome::Events(produced)) =
            translator.translate(message, Timestamp(i64::MAX / 4))
        {
            for event in produced {
                if !events.iter().any(|e| e.id == event.id) {
                    events.push(event);
                }
            }
        }
    }
    events
}

// ---- the stream -------------------------------------------------------------------------

async fn finish(mut child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || wait_within(&mut child, RUN))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_dropped_connection_and_are_published_once() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ami.secret"), format!("{SECRET}\n")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = spawn_connector(dir.path(), port, &nats.url(), "ami.secret");
    let (_client, context) = nats.connect().await;

    // First connection: the queues' members listed at login (Carol, a static member paused
    // for training before the connector started); a call queued, offered, answered and
    // completed; a member added and paused (the pause repeated in a second queue); a second
    // call queued.
    let mut peer = Peer::accept(&listener).await;
    let listing = [listed_carol(
        &at(-5),
        "billing",
        &[("Paused", "1"), ("PausedReason", "training")],
    )];
    peer.log_in(true, &listing, &at(-5)).await;
    let first_listing = status_answer("", &listing, &at(-5));
    let first = vec![
        join("100.1", &at(0), "billing"),
        agent("AgentCalled", "100.1", &at(1), "billing", &[]),
        agent(
            "AgentConnect",
            "100.1",
            &at(10),
            "billing",
            &[("HoldTime", "10"), ("RingTime", "9")],
        ),
        agent(
            "AgentComplete",
            "100.1",
            &at(100),
            "billing",
            &[("HoldTime", "10"), ("TalkTime", "90"), ("Reason", "caller")],
        ),
        member("QueueMemberAdded", &at(110), "billing", &[("Paused", "0")]),
        member("QueueMemberAdded", &at(110), "sales", &[("Paused", "0")]),
        member(
            "QueueMemberPause",
            &at(120),
            "billing",
            &[("Paused", "1"), ("PausedReason", "lunch")],
        ),
        member(
            "QueueMemberPause",
            &at(120),
            "sales",
            &[("Paused", "1"), ("PausedReason", "lunch")],
        ),
        join("200.1", &at(130), "billing"),
    ];
    peer.send(&first).await;
    let so_far = reference(&[first_listing.clone(), first.clone()].concat());
    assert_eq!(so_far.len(), 2 + 8, "{so_far:#?}");
    wait_for_stored(
        &context,
        so_far.len() as u64,
        "the events of the first connection",
        READ,
    )
    .await;
    within("a keepalive Ping answered", READ, async {
        while peer.pings.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The connection drops in the middle of a message.
    let cut = agent("AgentCalled", "200.1", &at(131), "billing", &[]).to_wire();
    peer.write(&cut.as_bytes()[..cut.len() / 2]).await;
    peer.drop_connection().await;

    // The connector comes back and logs in again. The members listed now: Bob, still paused
    // in both queues (nothing new), not Carol, who left while the connection was down (her
    // logout). Then the server sends the rest, starting with the event it had sent already
    // (a replay) and the one cut.
    let mut peer = Peer::accept(&listener).await;
    let lunch = [("Paused", "1"), ("PausedReason", "lunch")];
    let listing = [
        member("QueueMember", &at(125), "billing", &lunch),
        member("QueueMember", &at(125), "sales", &lunch),
    ];
    peer.log_in(true, &listing, &at(125)).await;
    let second_listing = status_answer("", &listing, &at(125));
    let live = now_stamp();
    let second = vec![
        join("200.1", &at(130), "billing"),
        agent("AgentCalled", "200.1", &at(131), "billing", &[]),
        agent(
            "AgentRingNoAnswer",
            "200.1",
            &at(146),
            "billing",
            &[("RingTime", "15000")],
        ),
        field_list(&{
            let mut fields = caller("QueueCallerAbandon", "200.1", &at(150), "billing");
            fields.extend([("HoldTime", "20".to_owned()), ("Position", "1".to_owned())]);
            fields
        }),
        field_list(&caller("QueueCallerLeave", "200.1", &at(150), "billing")),
        member("QueueMemberPause", &at(160), "billing", &[("Paused", "0")]),
        // A call answered and completed now in a queue with a 2 s wrap-up: its completion
        // is held until its time, then published.
        join("300.1", &live, "sales"),
        agent(
            "AgentConnect",
            "300.1",
            &live,
            "sales",
            &[("HoldTime", "0")],
        ),
        agent(
            "AgentComplete",
            "300.1",
            &live,
            "sales",
            &[("Reason", "agent")],
        ),
    ];
    peer.send(&second).await;
    let all = [first_listing, first, second_listing, second].concat();
    let expected = reference(&all);
    assert_eq!(expected.len(), 2 + 8 + 1 + 3 + 1 + 4, "{expected:#?}");
    wait_for_stored(&context, expected.len() as u64, "every event", READ).await;

    // SIGTERM: the connector logs off and exits cleanly.
    signal(child.id(), Signal::TERM);
    let Seen::Action(logoff) = peer.next_action().await else {
        panic!("the connection closed without Logoff")
    };
    assert_eq!(logoff.get("Action"), Some("Logoff"));
    peer.send(&[AmiMessage::new([
        ("Response", "Goodbye"),
        ("ActionID", logoff.get("ActionID").unwrap()),
        ("Message", "Thanks for all the fish."),
    ])])
    .await;
    let run = finish(child).await;
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "SIGTERM is a clean stop: {stderr}");
    assert!(
        stderr.contains("connection closed by the server"),
        "{stderr}"
    );
    assert!(stderr.contains("2 logins, 1 connections lost"), "{stderr}");
    assert!(
        stderr.contains("0 failed, 0 held for their time"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "the secret is never printed");
    assert!(!stderr.contains("0600000000"), "nor a caller id");
    assert_stored_exactly(&context, "paris", &expected, READ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_stops_with_status_1() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ami.secret"), format!("  {SECRET}  \n")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = spawn_connector(dir.path(), port, &nats.url(), "ami.secret");
    let mut peer = Peer::accept(&listener).await;
    peer.log_in(false, &[], "").await;
    let run = finish(child).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("login refused for user \"vigie\"")
            && stderr.contains("Authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "the secret is never printed");
    // No second attempt: the listener has no other connection waiting.
    let again = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(again.is_err(), "a refused login is not retried");
}
