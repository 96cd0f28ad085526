//! The HTTP ingest endpoint of `vigie serve` (`[ingest_http]`), as connectors and Twilio
//! TaskRouter reach it: each test runs its own nats-server and `vigie serve --config`, posts
//! over plain HTTP/1.1, and reads back what the event stream holds.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vigie_tests::cli::{Served, eventually, free_port, http_get, metric};
use vigie_tests::nats::{NatsServer, StoredMessage, read_subject};

const READ: Duration = Duration::from_secs(20);
const CRM_TOKEN: &str = "vgt_crm-paris-0123456789";
const TWILIO_TOKEN: &str = "vgt_twilio-0123456789";

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    fn results(&self) -> Vec<(String, Option<String>)> {
        self.json()["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results: {self:?}"))
            .iter()
            .map(|r| {
                (
                    r["result"].as_str().unwrap().to_owned(),
                    r["reason"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

/// A plain HTTP/1.1 POST on 127.0.0.1; `None` when nothing answers.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413) and close before reading the whole body.
    let _ = stream.write_all(&bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

struct Setup {
    nats: NatsServer,
    served: Served,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(&[], "")
    }

    /// With `files` (name, content) written beside the configuration and `taskrouter` lines
    /// added to `[ingest_http.twilio_taskrouter]`.
    fn start_with(files: &[(&str, &str)], taskrouter: &str) -> Setup {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let port = free_port();
        let tokens = format!(
            "[[connector]]\nname = \"crm-paris\"\nsha256 = \"{}\"\nsites = [\"paris\"]\n\n\
             [[connector]]\nname = \"twilio\"\nsha256 = \"{}\"\nsites = [\"paris\", \"lyon\"]\n",
            vigie_api::auth::hash_token(CRM_TOKEN),
            vigie_api::auth::hash_token(TWILIO_TOKEN),
        );
        std::fs::write(dir.path().join("ingest-tokens.toml"), tokens).unwrap();
        let config = format!(
            "[[site]]\nid = \"paris\"\n[[site]]\nid = \"lyon\"\n\n\
             [nats]\nurl = \"{}\"\nconnect_timeout = \"5s\"\n\n\
             [ingest_http]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
             tokens_file = \"ingest-tokens.toml\"\nmax_body_bytes = 4096\n\
             max_events_per_request = 5\npublish_timeout = \"2s\"\n\n\
             [ingest_http.twilio_taskrouter]\nofflline_activities_typo_is_refused = false\n{taskrouter}",
            nats.url()
        );
        // The section refuses unknown keys: check it, then write the good one.
        std::fs::write(dir.path().join("bad.toml"), &config).unwrap();
        let config = config.replace("offlline_activities_typo_is_refused = false\n", "");
        std::fs::write(dir.path().join("vigie.toml"), &config).unwrap();
        let stderr = refused_at_start(dir.path(), "bad.toml");
        assert!(
            stderr.contains("offlline_activities_typo_is_refused"),
            "{stderr}"
        );
        let served = Served::spawn(
            env!("CARGO_BIN_EXE_vigie"),
            &["--config", "vigie.toml"],
            dir.path(),
        );
        let http = served.http;
        eventually("vigie serve ready", || {
            http_get(http, "/readyz").filter(|(status, _)| *status == 200)
        });
        Setup {
            nats,
            served,
            port,
            _dir: dir,
        }
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        post(self.port, path, headers, body).unwrap_or_else(|| panic!("no answer to POST {path}"))
    }

    fn events(&self, token: &str, content_type: &str, body: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.post(
            "/ingest/v1/events",
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body.as_bytes(),
        )
    }

    /// Every event message in the stream.
    fn stored(&self) -> Vec<StoredMessage> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (_client, context) = self.nats.connect().await;
            read_subject(&context, "vigie.events.>", READ).await
        })
    }

    fn metrics(&self) -> String {
        http_get(self.served.http, "/metrics").unwrap().1
    }
}

/// `vigie serve --config CONFIG` in `dir`, which must refuse to start: its standard error.
fn refused_at_start(dir: &std::path::Path, config: &str) -> String {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["serve", "--config", config])
        .current_dir(dir)
        .env_remove("VIGIE_CONFIG")
        .output()
        .unwrap();
    assert!(!run.status.success(), "{config} must be refused");
    String::from_utf8_lossy(&run.stderr).into_owned()
}

fn queued(id: &str, site: &str, contact: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"{site}","contact":"{contact}","queue":"billing","channel":"voice"}}"#
    )
}

fn ids_of(messages: &[StoredMessage]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn tokens_sites_and_bodies_are_checked_and_accepted_events_are_stored_once() {
    let setup = Setup::start();
    let path = "/ingest/v1/events";
    let one = queued("ev-1", "paris", "c-1");

    // Authentication: none, a wrong one, a wrong scheme.
    let none = setup.post(
        path,
        &[("Content-Type", "application/json")],
        one.as_bytes(),
    );
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.headers.contains_key("www-authenticate"));
    assert_eq!(
        setup.events("vgt_nobody", "application/json", &one).status,
        401
    );
    let basic = setup.post(
        path,
        &[
            ("Authorization", "Basic YTpi"),
            ("Content-Type", "application/json"),
        ],
        one.as_bytes(),
    );
    assert_eq!(basic.status, 401);

    // Content types and bodies.
    assert_eq!(setup.events(CRM_TOKEN, "text/plain", &one).status, 415);
    let no_type = setup.post(
        path,
        &[("Authorization", &format!("Bearer {CRM_TOKEN}"))],
        one.as_bytes(),
    );
    assert_eq!(no_type.status, 415);
    for body in ["hello", "[1,", "42", "[]", ""] {
        let answer = setup.events(CRM_TOKEN, "application/json", body);
        assert_eq!(answer.status, 400, "{body:?}: {answer:?}");
        assert_eq!(answer.json()["error"], "malformed_body");
    }
    assert_eq!(
        setup
            .events(CRM_TOKEN, "application/x-ndjson", "not json\nneither")
            .status,
        400
    );
    let padding = "x".repeat(5000);
    let oversized = format!(
        r#"{{"id":"ev-big","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c","queue":"q","channel":"voice","note":"{padding}"}}"#
    );
    let big = setup.events(CRM_TOKEN, "application/json", &oversized);
    assert_eq!(big.status, 413, "{big:?}");
    let six: Vec<String> = (0..6)
        .map(|i| queued(&format!("ev-many-{i}"), "paris", "c"))
        .collect();
    let many = setup.events(
        CRM_TOKEN,
        "application/json",
        &format!("[{}]", six.join(",")),
    );
    assert_eq!(many.status, 413);
    assert_eq!(many.json()["error"], "too_many_events");

    // Site scope: one event of another site refuses the whole request.
    let mixed = format!(
        "[{},{}]",
        queued("ev-scope-1", "paris", "c-9"),
        queued("ev-scope-2", "lyon", "c-9")
    );
    let forbidden = setup.events(CRM_TOKEN, "application/json", &mixed);
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(
        forbidden.json()["message"]
            .as_str()
            .unwrap()
            .contains("lyon")
    );

    // Accepted: one event, an array with a bad event, JSON Lines.
    let single = setup.events(CRM_TOKEN, "application/json", &one);
    assert_eq!(single.status, 200, "{single:?}");
    assert_eq!(single.results(), [("stored".to_owned(), None)]);
    assert_eq!(single.json()["connector"], "crm-paris");
    let array = format!(
        r#"[{},{{"id":"ev-bad","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c-2","channel":"voice"}},17]"#,
        queued("ev-2", "paris", "c-2")
    );
    let answer = setup.events(CRM_TOKEN, "application/json", &array);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.results(),
        [
            ("stored".to_owned(), None),
            ("rejected".to_owned(), Some("missing_field".to_owned())),
            ("rejected".to_owned(), Some("not_an_object".to_owned())),
        ]
    );
    assert_eq!(answer.json()["results"][1]["field"], "queue");
    assert_eq!(answer.json()["results"][1]["id"], "ev-bad");
    let lines = format!(
        "{}\n\n{}\n",
        queued("ev-3", "paris", "c-3"),
        queued("ev-4", "paris", "c-4")
    );
    let first = setup.events(CRM_TOKEN, "application/x-ndjson", &lines);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.results(), vec![("stored".to_owned(), None); 2]);
    // Sent again: duplicates, at the sequences first stored.
    let again = setup.events(CRM_TOKEN, "application/x-ndjson", &lines);
    assert_eq!(again.results(), vec![("duplicate".to_owned(), None); 2]);
    for index in 0..2 {
        assert_eq!(
            again.json()["results"][index]["sequence"],
            first.json()["results"][index]["sequence"]
        );
    }

    let stored = setup.stored();
    assert_eq!(ids_of(&stored), ["ev-1", "ev-2", "ev-3", "ev-4"]);
    let first_message = stored
        .iter()
        .find(|m| m.message_id() == Some("ev-1"))
        .unwrap();
    assert_eq!(first_message.subject, "vigie.events.paris.contact.queued");
    assert_eq!(first_message.payload.as_ref(), one.as_bytes());

    let metrics = setup.metrics();
    assert!(
        metric(&metrics, "vigie_ingest_http_requests_total{code=\"401\"}") >= Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "vigie_ingest_http_events_total{result=\"stored\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "vigie_ingest_http_events_total{result=\"duplicate\"}"
        ),
        Some(2.0)
    );
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace(' ', "+")
                    .replace('{', "%7B")
                    .replace('}', "%7D")
                    .replace('"', "%22")
                    .replace(':', "%3A")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// TaskRouter's callback of task `task` entering the billing queue (event `sid`), with a
/// caller's number among its attributes.
fn entered_billing(sid: &str, task: &str) -> String {
    form(&[
        ("EventType", "task-queue.entered"),
        ("Sid", sid),
        ("TimestampMs", "1772442000000"),
        ("TaskSid", task),
        ("TaskQueueName", "billing"),
        ("TaskChannelUniqueName", "voice"),
        ("TaskAttributes", "{\"from\":\"+33100000000\"}"),
    ])
}

#[test]
fn taskrouter_callbacks_are_translated_and_stored() {
    let setup = Setup::start();
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let entered = entered_billing("EV0001", "WT0001");
    let url = format!("/ingest/v1/twilio/taskrouter?site=paris&token={TWILIO_TOKEN}");
    let answer = setup.post(&url, &[form_type], entered.as_bytes());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.results(), [("stored".to_owned(), None)]);
    // Redelivered: the same id, a duplicate.
    let again = setup.post(&url, &[form_type], entered.as_bytes());
    assert_eq!(again.results(), [("duplicate".to_owned(), None)]);
    // The token as a bearer works as well.
    let offered = form(&[
        ("EventType", "reservation.created"),
        ("Sid", "EV0002"),
        ("TimestampMs", "1772442003000"),
        ("TaskSid", "WT0001"),
        ("WorkerSid", "WK0001"),
    ]);
    let bearer = format!("Bearer {TWILIO_TOKEN}");
    let answer = setup.post(
        "/ingest/v1/twilio/taskrouter?site=paris",
        &[form_type, ("Authorization", &bearer)],
        offered.as_bytes(),
    );
    assert_eq!(answer.results(), [("stored".to_owned(), None)]);

    // Refusals: no token, a site outside the token, no site, a malformed callback, a JSON
    // body; an unknown event type is answered (Twilio need not retry) and skipped.
    let no_token = setup.post(
        "/ingest/v1/twilio/taskrouter?site=paris",
        &[form_type],
        offered.as_bytes(),
    );
    assert_eq!(no_token.status, 401);
    let crm = format!("/ingest/v1/twilio/taskrouter?site=lyon&token={CRM_TOKEN}");
    assert_eq!(
        setup.post(&crm, &[form_type], offered.as_bytes()).status,
        403
    );
    let no_site = format!("/ingest/v1/twilio/taskrouter?token={TWILIO_TOKEN}");
    assert_eq!(
        setup
            .post(&no_site, &[form_type], offered.as_bytes())
            .status,
        400
    );
    let malformed = form(&[
        ("EventType", "reservation.accepted"),
        ("Sid", "EV0003"),
        ("TimestampMs", "1772442005000"),
        ("TaskSid", "WT0001"),
    ]);
    let answer = setup.post(&url, &[form_type], malformed.as_bytes());
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("WorkerSid")
    );
    assert_eq!(
        setup
            .post(&url, &[("Content-Type", "application/json")], b"{}")
            .status,
        415
    );
    let unknown = form(&[("EventType", "task.teleported"), ("Sid", "EV0004")]);
    let answer = setup.post(&url, &[form_type], unknown.as_bytes());
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["skipped"], "task.teleported");

    let stored = setup.stored();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let subjects: Vec<&str> = stored.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "vigie.events.paris.contact.queued",
            "vigie.events.paris.contact.offered"
        ]
    );
    let queued: serde_json::Value = serde_json::from_slice(&stored[0].payload).unwrap();
    assert_eq!(queued["contact"], "WT0001");
    assert_eq!(queued["time"], "2026-03-02T09:00:00.000Z");
    assert!(!String::from_utf8_lossy(&stored[0].payload).contains("+33100000000"));
}

#[test]
fn taskrouter_signatures_are_checked_against_the_public_url_when_an_auth_token_is_set() {
    const PUBLIC_URL: &str = "https://proxy.example.com/vigie/ingest/v1/twilio/taskrouter";
    const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let setup = Setup::start_with(
        &[("twilio-auth-token", &format!("{AUTH_TOKEN}\n"))],
        &format!("auth_token_file = \"twilio-auth-token\"\npublic_url = \"{PUBLIC_URL}\"\n"),
    );
    let checker = vigie_connectors::SignatureChecker::new(AUTH_TOKEN);
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let entered = entered_billing("EV0101", "WT0101");
    let query = format!("site=paris&token={TWILIO_TOKEN}");
    let path = format!("/ingest/v1/twilio/taskrouter?{query}");
    // Twilio signs the URL it calls (the proxy's, with the query string) and the fields.
    let signed = checker
        .sign(&format!("{PUBLIC_URL}?{query}"), entered.as_bytes())
        .unwrap();

    let unsigned = setup.post(&path, &[form_type], entered.as_bytes());
    assert_eq!(unsigned.status, 403, "{unsigned:?}");
    assert_eq!(unsigned.json()["error"], "invalid_signature");
    assert!(
        unsigned.json()["message"]
            .as_str()
            .unwrap()
            .contains("X-Twilio-Signature is required")
    );
    // Signed over the address Vigie itself listens on, not the one Twilio calls: refused.
    let local_url = format!("http://127.0.0.1:{}{path}", setup.port);
    let wrong_url = checker.sign(&local_url, entered.as_bytes()).unwrap();
    let answer = setup.post(
        &path,
        &[form_type, ("X-Twilio-Signature", &wrong_url)],
        entered.as_bytes(),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("public_url")
    );
    // The signature of another body: refused.
    let tampered = entered.replace("billing", "sales");
    let answer = setup.post(
        &path,
        &[form_type, ("X-Twilio-Signature", &signed)],
        tampered.as_bytes(),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    // The token is still required, signature or not.
    let no_token = setup.post(
        "/ingest/v1/twilio/taskrouter?site=paris",
        &[form_type, ("X-Twilio-Signature", &signed)],
        entered.as_bytes(),
    );
    assert_eq!(no_token.status, 401);
    assert!(setup.stored().is_empty(), "nothing refused is published");

    let answer = setup.post(
        &path,
        &[form_type, ("X-Twilio-Signature", &signed)],
        entered.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.results(), [("stored".to_owned(), None)]);
    let stored = setup.stored();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].subject, "vigie.events.paris.contact.queued");
    assert_eq!(
        metric(
            &setup.metrics(),
            "vigie_ingest_http_requests_total{code=\"403\"}"
        ),
        Some(3.0)
    );

    // A half-configured check is refused at start, naming what is missing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-tokens.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("vigie.toml"),
        "[[site]]\nid = \"paris\"\n\n[nats]\nurl = \"nats://127.0.0.1:1\"\n\n\
         [ingest_http]\nenabled = true\ntokens_file = \"ingest-tokens.toml\"\n\n\
         [ingest_http.twilio_taskrouter]\nauth_token_file = \"twilio-auth-token\"\n",
    )
    .unwrap();
    let stderr = refused_at_start(dir.path(), "vigie.toml");
    assert!(
        stderr.contains("ingest_http.twilio_taskrouter.public_url: required with auth_token_file"),
        "{stderr}"
    );
}

#[test]
fn a_nats_outage_is_a_503_with_nothing_reported_stored_and_a_resend_stores_everything() {
    let mut setup = Setup::start();
    let before = setup.events(
        CRM_TOKEN,
        "application/json",
        &queued("ev-0", "paris", "c-0"),
    );
    assert_eq!(before.results(), [("stored".to_owned(), None)]);

    setup.nats.kill();
    let batch = format!(
        "[{},{}]",
        queued("ev-1", "paris", "c-1"),
        queued("ev-2", "paris", "c-2")
    );
    let during = setup.events(CRM_TOKEN, "application/json", &batch);
    assert_eq!(during.status, 503, "{during:?}");
    assert_eq!(
        during.headers.get("retry-after").map(String::as_str),
        Some("5")
    );
    assert_eq!(during.json()["error"], "nats_unavailable");
    assert_eq!(during.json()["stored"], 0);
    assert_eq!(
        during.results(),
        vec![("not_stored".to_owned(), Some("nats_unavailable".to_owned())); 2]
    );

    setup.nats.restart();
    // Sent again until the service has reconnected: every event stored (or found already
    // stored, when the client's buffer delivered it after the restart).
    let after = eventually("a resend after the restart is acknowledged", || {
        let answer = setup.events(CRM_TOKEN, "application/json", &batch);
        (answer.status == 200).then_some(answer)
    });
    for (result, _) in after.results() {
        assert!(result == "stored" || result == "duplicate", "{after:?}");
    }
    assert_eq!(ids_of(&setup.stored()), ["ev-0", "ev-1", "ev-2"]);
    assert!(setup.served.is_running());
    let metrics = setup.metrics();
    assert!(
        metric(&metrics, "vigie_ingest_http_requests_total{code=\"503\"}") >= Some(1.0),
        "{metrics}"
    );
}
