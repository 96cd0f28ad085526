//! The embedded demo evaluates alert rules and posts them to a configured webhook: a receiver
//! started by the test gets the JSON of an alert of the demo site.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use vigie_tests::cli::{DEMO_TIME_ZONE, daytime_zone, free_port};

#[test]
fn the_demo_posts_its_alerts_to_a_webhook() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let hook = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let app = Router::new().route(
            "/hook",
            post(move |body: String| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    "ok"
                }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });

    // A rule that holds at once (callers waiting: never below zero), routed to the receiver.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vigie.toml"),
        format!(
            r#"
[admin]
changes_dir = "{changes}"

[[alert_rule]]
site = "demo"
id = "probe"
name = "Probe: callers in queue"
scope = "site"
metric = "in_queue"
comparator = "above"
warning = -1

[[notify.route]]
name = "test-hook"
format = "json"
url = "http://{hook}/hook"
language = "en"
"#,
            changes = dir.path().join("changes").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie"))
        .args(["serve", "--config", "vigie.toml", "--no-web"])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(dir.path())
        .env_remove("VIGIE_CONFIG")
        .env(DEMO_TIME_ZONE, daytime_zone())
        .env("VIGIE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert = loop {
        if let Some(alert) = received.lock().unwrap().first().cloned() {
            break alert;
        }
        assert!(child.try_wait().unwrap().is_none(), "vigie serve exited");
        assert!(Instant::now() < deadline, "no alert reached the webhook");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(alert["site"], "demo", "{alert}");
    assert_eq!(alert["rule_id"], "probe", "{alert}");
    assert_eq!(alert["alert_id"], "probe/site/demo", "{alert}");
    assert_eq!(alert["kind"], "fired", "{alert}");
    assert_eq!(alert["threshold"], -1.0, "{alert}");
}
