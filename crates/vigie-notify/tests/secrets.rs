//! Webhook URLs are secrets: they never appear in `Debug`, `Display`, errors or logs, where
//! only their scheme and host are shown.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Receiver, config, config_toml, eventually, notification, route, start};
use vigie_notify::{Notifier, NotifyMetrics, SecretUrl, WebhookUrl};

const SECRET: &str = "T0SECRET-B0SECRET-XXSECRETXX";

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

// Current-thread runtime: the subscriber set for this thread sees the notifier's tasks too.
#[tokio::test]
async fn urls_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let receiver = Receiver::start().await;
    receiver.always(&format!("/down/{SECRET}"), (500, None));
    receiver.always(&format!("/gone/{SECRET}"), (404, None));
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let routes = [
        route(
            "down",
            "slack",
            &receiver.url(&format!("/down/{SECRET}?token={SECRET}")),
            "",
        ),
        route(
            "gone",
            "teams",
            &receiver.url(&format!("/gone/{SECRET}")),
            "",
        ),
        route(
            "closed",
            "mattermost",
            &format!("http://127.0.0.1:{closed}/hooks/{SECRET}"),
            "",
        ),
    ]
    .concat();
    let running = start(&config(&config_toml(&routes)), None);
    running.handle.try_send(notification()).unwrap();
    let metrics = running.metrics.clone();
    eventually("every route to give up", Duration::from_secs(15), || {
        metrics.failed_total("down", "attempts") == 1
            && metrics.failed_total("gone", "rejected") == 1
            && metrics.failed_total("closed", "attempts") == 1
    })
    .await;
    running.finish().await;

    let logs = captured.text();
    // The logs did capture the failures (so the check below means something)...
    assert!(logs.contains("notification given up"), "{logs}");
    assert!(logs.contains("route=down"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(
        logs.contains(&format!("http://{}/…", receiver.addr)),
        "the host is shown: {logs}"
    );
    // ...and never the secret part of a URL.
    assert!(
        !logs.contains(SECRET),
        "a webhook URL leaked into the logs:\n{logs}"
    );
}

#[test]
fn urls_never_appear_in_debug_or_errors() {
    let url = format!("https://hooks.slack.com/services/{SECRET}");
    let text = config_toml(&route("slack", "slack", &url, ""));
    let parsed = config(&text);
    let debug = format!("{parsed:?} {:#?}", parsed.routes);
    assert!(debug.contains("https://hooks.slack.com/…"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");

    let webhook = WebhookUrl::parse(&url).unwrap();
    for shown in [
        webhook.to_string(),
        format!("{webhook:?}"),
        format!("{:?}", SecretUrl::new(url.clone())),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }

    let (notifier, handle) =
        Notifier::new(&parsed, None, NotifyMetrics::default()).expect("valid configuration");
    let debug = format!("{notifier:?} {handle:?}");
    assert!(debug.contains("hooks.slack.com"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");

    // A file whose content is not a URL: the error names the file, never its content.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "hooks.slack.com/services/{SECRET}").unwrap();
    let var = "VIGIE_NOTIFY_TEST_SECRET_NOT_A_URL";
    let text = config_toml(
        &[
            format!(
                "[[route]]\nname = \"file\"\nformat = \"slack\"\nurl_file = \"{}\"\n",
                file.path().display()
            ),
            format!("[[route]]\nname = \"env\"\nformat = \"slack\"\nurl_env = \"{var}\"\n"),
            format!("[[route]]\nname = \"bad\"\nformat = \"slack\"\nurl = \"ftp://x/{SECRET}\"\n"),
        ]
        .concat(),
    );
    let error = Notifier::new(&config(&text), None, NotifyMetrics::default())
        .expect_err("the URLs are not usable")
        .to_string();
    assert!(
        error.contains("notify.route[2].url: must be an http or https URL"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");

    let text = config_toml(
        &[
            format!(
                "[[route]]\nname = \"file\"\nformat = \"slack\"\nurl_file = \"{}\"\n",
                file.path().display()
            ),
            format!("[[route]]\nname = \"env\"\nformat = \"slack\"\nurl_env = \"{var}\"\n"),
        ]
        .concat(),
    );
    let error = Notifier::new(&config(&text), None, NotifyMetrics::default())
        .expect_err("the URLs are not usable")
        .to_string();
    assert!(
        error.contains("notify.route[0].url_file: the content of"),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "notify.route[1].url_env: the environment variable {var} is not set"
        )),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
}

#[test]
fn urls_are_read_from_files_and_trimmed() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "  https://chat.example.com/hooks/{SECRET}  ").unwrap();
    let text = config_toml(&format!(
        "[[route]]\nname = \"file\"\nformat = \"mattermost\"\nurl_file = \"{}\"\n",
        file.path().display()
    ));
    let (notifier, _handle) =
        Notifier::new(&config(&text), None, NotifyMetrics::default()).expect("a URL in a file");
    let debug = format!("{notifier:?}");
    assert!(debug.contains("https://chat.example.com/…"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
}
