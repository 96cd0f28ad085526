//! A real browser for the tests: Debian's Chromium, headless, driven through its ChromeDriver
//! (WebDriver) by `fantoccini`. Each [`Browser`] starts its own `chromedriver` on a random
//! port with a fresh profile, and stops it when dropped.
//!
//! Chromium and ChromeDriver come from `CHROMIUM_BIN` / `CHROMEDRIVER_BIN`, else the `PATH`,
//! else `/usr/bin`; `.ci/run` installs Debian's `chromium` and `chromium-driver` when missing.
//! Chromium runs without background networking: this machine's network is closed, and its
//! attempts to reach Google's services would otherwise fill the logs with refusals.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long the helpers wait for the page before failing.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session and the `chromedriver` behind it.
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn program(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    on_path.unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

pub use crate::cli::free_port;

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a `width` x `height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = program("CHROMIUM_BIN", "chromium");
        let chromedriver = program("CHROMEDRIVER_BIN", "chromedriver");
        for (path, package) in [(&chromium, "chromium"), (&chromedriver, "chromium-driver")] {
            assert!(
                path.is_file(),
                "{} not found: install Debian's {package} (apt-get install -y chromium chromium-driver; .ci/run does it)",
                path.display()
            );
        }
        let port = free_port();
        // In a process group of its own, so that dropping the browser stops ChromeDriver and
        // every Chromium process it started (killed alone, it leaves them running).
        let driver = Command::new(&chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", chromedriver.display()));
        let profile = tempfile::tempdir().unwrap_or_else(|error| panic!("profile: {error}"));
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PAGE_WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no WebDriver session on {url}: {error}"),
            }
        };
        // The window's size includes what surrounds the page, even headless: size it so that
        // the page itself gets width x height, as a wall display's full-screen browser does.
        client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|error| panic!("window size: {error}"));
        let inner = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap_or_else(|error| panic!("viewport: {error}"));
        let inner = |index: usize| inner[index].as_u64().unwrap_or_default() as u32;
        let (outer_width, outer_height) = (
            width + width.saturating_sub(inner(0)),
            height + height.saturating_sub(inner(1)),
        );
        client
            .set_window_size(outer_width, outer_height)
            .await
            .unwrap_or_else(|error| panic!("window size: {error}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url` (waiting for the document, not for the data).
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("cannot open {url}: {error}"));
    }

    /// Runs `script` in the page with `args` and returns its value.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// The attribute `name` of the first element matching `css`, if both exist.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let value = self
            .run(
                "const element = document.querySelector(arguments[0]);
                 return element === null ? null : element.getAttribute(arguments[1]);",
                vec![json!(css), json!(name)],
            )
            .await;
        value.as_str().map(str::to_owned)
    }

    /// Whether an element matches `css`.
    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Polls `check` every 50 ms until it returns a value, at most `PAGE_WAIT`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                panic!("timed out after {PAGE_WAIT:?}: {what} (page {url:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the attribute `name` of `css` to satisfy `accept`, and returns it.
    pub async fn wait_for_attribute(
        &self,
        css: &str,
        name: &str,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        self.eventually(&format!("{css} [{name}]"), || async {
            self.attribute(css, name)
                .await
                .filter(|value| accept(value))
        })
        .await
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("screenshot: {error}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }

    /// The console messages logged since the last call, as `(level, message)`; levels are
    /// ChromeDriver's (`SEVERE` for errors, `WARNING`, `INFO`...).
    pub async fn console(&self) -> Vec<(String, String)> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|error| panic!("browser log: {error}"));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
                (field("level"), field("message"))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = i32::try_from(self.driver.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where tests keep what a person may want to look at afterwards (screenshots):
/// `VIGIE_TEST_ARTIFACTS`, else `target/test-artifacts` of the workspace.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("VIGIE_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts"))
}

/// ChromeDriver's own command returning the browser's console log (`goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}
