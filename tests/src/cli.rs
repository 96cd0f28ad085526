//! What the command-line tests of `vigie` share: free ports, plain HTTP probes of `/metrics`
//! and `/readyz`, polling with a deadline, and `vigie serve` run as a child process with client
//! commands against it. The binary's path is the caller's `env!("CARGO_BIN_EXE_vigie")`: only
//! the tests of the `vigie` crate know it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for a service or a command before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The environment variable of `vigie serve --demo-time-zone`.
pub const DEMO_TIME_ZONE: &str = "VIGIE_DEMO_TIME_ZONE";

/// A time zone where it is now about 14:00, for the demo centre: its simulated day then has
/// four hours behind it (closed intervals, abandons, timesheets) whatever the hour of the
/// machine running the tests (shortly after midnight, a demo in the machine's zone has almost
/// nothing to show).
pub fn daytime_zone() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let utc_hour = i64::try_from(now.as_secs() / 3600 % 24).unwrap_or_default();
    // Etc/GMT-N is N hours east of UTC (the sign is POSIX's); -9 to +14 all exist.
    match 14 - utc_hour {
        0 => "Etc/GMT".to_owned(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    }
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free port: {error}"))
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A plain HTTP GET on 127.0.0.1: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `check` every 50 ms until it returns a value, at most [`WAIT`].
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_or(what, String::new, check)
}

/// As [`eventually`], with `context` (logs, state) in the failure message.
pub fn eventually_or<T>(
    what: &str,
    context: impl FnOnce() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out: {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of a metric line (`name value`, or `name{labels} value`), if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits for `child` to end, at most `wait`, and returns its output (killed and failing the
/// test beyond).
pub fn output_within(mut child: Child, wait: Duration, what: &str) -> Output {
    let deadline = Instant::now() + wait;
    while child.try_wait().expect("the child can be polled").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

/// `vigie serve` on random gRPC and HTTP ports, without the wallboard, killed when dropped;
/// client commands run against it.
#[derive(Debug)]
pub struct Served {
    child: Child,
    binary: PathBuf,
    /// The gRPC address for `--server`.
    pub server: String,
    /// The port of metrics and health.
    pub http: u16,
    /// Where its log goes (warnings and errors).
    log: PathBuf,
}

impl Served {
    /// Starts `binary serve --no-web` with `args` in `dir` (no `VIGIE_CONFIG` from the
    /// environment, logs at `warn` in `dir`, see [`Served::log`]).
    pub fn spawn(binary: &str, args: &[&str], dir: &Path) -> Served {
        let (grpc, http) = (free_port(), free_port());
        let log = dir.join(format!("serve-{http}.log"));
        let log_file = std::fs::File::create(&log).expect("the service's log file");
        let child = Command::new(binary)
            .args(["serve", "--no-web"])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--grpc-listen", &format!("127.0.0.1:{grpc}")])
            .args(args)
            .current_dir(dir)
            .env_remove("VIGIE_CONFIG")
            .env("VIGIE_LOG", "warn")
            .env(DEMO_TIME_ZONE, daytime_zone())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        Served {
            child,
            binary: binary.into(),
            server: format!("http://127.0.0.1:{grpc}"),
            http,
            log,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `vigie <probe>` every 200 ms until `ready` accepts its output, at most [`WAIT`];
    /// fails the test with `what` and the last error when it never does, or when the service
    /// exits.
    pub fn wait_until(
        &mut self,
        probe: &[&str],
        dir: &Path,
        what: &str,
        ready: impl Fn(&Output) -> bool,
    ) {
        let deadline = Instant::now() + WAIT;
        loop {
            let output = self.vigie(probe, dir);
            if ready(&output) {
                return;
            }
            assert!(self.is_running(), "vigie serve exited");
            assert!(
                Instant::now() < deadline,
                "{what}: {}",
                text(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A client command against this server, with no `VIGIE_*` of the environment.
    pub fn command(&self, args: &[&str], dir: &Path) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .args(["--server", &self.server])
            .current_dir(dir)
            .env_remove("VIGIE_TOKEN")
            .env_remove("VIGIE_SITE")
            .env_remove("VIGIE_SERVER");
        command
    }

    /// Runs a client command to its end (at most [`WAIT`]).
    pub fn vigie(&self, args: &[&str], dir: &Path) -> Output {
        let child = self
            .command(args, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run vigie {args:?}: {error}"));
        output_within(child, WAIT, &format!("vigie {args:?}"))
    }

    /// Runs a command that must succeed; its standard output.
    pub fn ok(&self, args: &[&str], dir: &Path) -> Vec<u8> {
        let output = self.vigie(args, dir);
        assert!(
            output.status.success(),
            "vigie {args:?}: {}",
            text(&output.stderr)
        );
        output.stdout
    }

    /// Runs a command that must succeed; its standard output as text.
    pub fn ok_text(&self, args: &[&str], dir: &Path) -> String {
        text(&self.ok(args, dir))
    }

    /// Whether `vigie serve` still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("serve can be polled")
            .is_none()
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        // An error means it already exited, which is what is wanted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs a command that must fail; its standard error.
    pub fn refused(&self, args: &[&str], dir: &Path) -> String {
        let output = self.vigie(args, dir);
        assert!(!output.status.success(), "vigie {args:?} succeeded");
        text(&output.stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
