//! `vigie connect asterisk-queue-log`: reading (or following) a queue_log file, keeping the
//! position in a state file, holding back the completions stamped ahead of the log, and
//! publishing.
//!
//! The state file (JSON, written to a temporary file then renamed) names the file read (its
//! device and inode, and the XXH3-128 of its first line), the byte offset after the last line
//! whose events were all acknowledged by JetStream or are held, and the held events
//! themselves. On start:
//!
//! - the path still names that file, its first line unchanged and its size at least the
//!   offset: the lines before the offset are translated again without publishing (so that
//!   the translator remembers the calls and members they opened), then reading goes on from
//!   the offset;
//! - the path names another file (rotated while stopped): the old file is looked for by its
//!   inode in the same directory (`queue_log.1`) and finished from the offset, then the new
//!   file is read from its start; if it is gone, its unread end is lost and said so;
//! - the file is shorter than the offset or its first line changed (truncated, replaced):
//!   it is read from its start.
//!
//! While following, a rotation (the path names another file, or the file shrank) is handled
//! as `tail -F` does, with one care for `logrotate`'s `create`: Asterisk writes to the renamed
//! file until it reopens its log, so the old file is read until the new one has its first
//! bytes, then to its end, and only then the new one from offset 0.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;
use vigie_connectors::{LineOutcome, QueueLogConfig, QueueLogTranslator};
use vigie_core::{
    ContactEventKind, DEFAULT_MAX_EVENT_BYTES, Event, EventBody, Timestamp, decode_json,
};
use xxhash_rust::xxh3::xxh3_128;

use super::{AsteriskArgs, CommonArgs, Sink, check_site, invalid_settings, parse_duration};
use crate::publish::{runtime, stop_on_signal};

pub(super) const EXAMPLES: &str = "Examples:
  # Publish a whole file once, then stop (the next run resumes after what this one read):
  vigie connect asterisk-queue-log /var/log/asterisk/queue_log --site paris \\
      --time-zone Europe/Paris --nats nats://127.0.0.1:4222

  # Follow it as Asterisk writes, across logrotate rotations (a systemd service):
  vigie connect asterisk-queue-log /var/log/asterisk/queue_log --follow \\
      --config /etc/vigie/vigie.toml --state /var/lib/vigie/queue_log.state

  # Name advisors and give queues their wrap-up time on the command line:
  vigie connect asterisk-queue-log queue_log --site paris \\
      --advisor PJSIP/1001=a-117 --advisor PJSIP/1002=a-118 --wrapuptime billing=15s

The same settings in the configuration file:
  [connect.asterisk_queue_log]
  site = \"paris\"
  time_zone = \"Europe/Paris\"
  advisors = { \"PJSIP/1001\" = \"a-117\", \"PJSIP/1002\" = \"a-118\" }
  [connect.asterisk_queue_log.queues.billing]
  wrapuptime = \"15s\"";

/// Completions held back at most; beyond, the earliest is published before its time (and
/// counted), so that memory stays bounded whatever the wrap-up times.
const MAX_HELD: usize = 10_000;

/// The longest line kept; a longer one is reported as malformed and skipped.
const MAX_LINE: usize = 1 << 20;

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// While catching up on a long file, the state is saved at least this often (in lines).
const SAVE_EVERY_LINES: u64 = 20_000;

/// Version of the state file's format.
const STATE_VERSION: u32 = 1;

/// Arguments of `vigie connect asterisk-queue-log`.
#[derive(Args, Debug)]
pub struct QueueLogArgs {
    /// The queue_log file (`/var/log/asterisk/queue_log`).
    pub file: PathBuf,
    /// Keep reading as the file grows, across rotations, until SIGINT or SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// State file: where reading stopped. Default: `<FILE>.vigie-state`.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// How often a followed file is checked for new lines and rotation.
    #[arg(long, default_value = "250ms", value_parser = parse_duration, value_name = "DURATION")]
    pub poll: Duration,
    /// IANA time zone of the Asterisk server, for the database form of the log's local times
    /// (overrides `connect.asterisk_queue_log.time_zone`; default UTC).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    #[command(flatten)]
    pub asterisk: AsteriskArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl QueueLogArgs {
    /// The translator's settings: the configuration's section, then the options.
    fn translator_config(&self, section: Option<QueueLogConfig>) -> anyhow::Result<QueueLogConfig> {
        let mut config = self.asterisk.apply(section)?;
        if let Some(zone) = &self.time_zone {
            config.time_zone = zone.clone();
        }
        Ok(config)
    }

    fn state_path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| {
            let mut name = self.file.as_os_str().to_owned();
            name.push(".vigie-state");
            PathBuf::from(name)
        })
    }
}

// ---- the state file ---------------------------------------------------------------------

/// A file's identity: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    fn of(metadata: &std::fs::Metadata) -> FileId {
        FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// An event held until the log reaches its time, with the line that gave it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HeldRecord {
    line: u64,
    /// The event as its JSON.
    event: Box<serde_json::value::RawValue>,
}

/// What the state file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    version: u32,
    /// The path the file was read as, for people.
    path: PathBuf,
    file: FileId,
    /// XXH3-128 of the first line (without its line end), hex; none before it is complete.
    first_line: Option<String>,
    /// Bytes of the file done with: every event of the lines before is acknowledged or held.
    offset: u64,
    /// Lines before `offset`.
    line: u64,
    /// Events held back, earliest first.
    held: Vec<HeldRecord>,
}

fn load_state(path: &Path) -> anyhow::Result<Option<SavedState>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the state file {}", path.display()));
        }
    };
    let state: SavedState = serde_json::from_str(&text).with_context(|| {
        format!(
            "the state file {} is not one this version wrote (delete it to read the log from its start)",
            path.display()
        )
    })?;
    if state.version != STATE_VERSION {
        bail!(
            "the state file {} has version {}, this version reads {STATE_VERSION}",
            path.display(),
            state.version
        );
    }
    Ok(Some(state))
}

/// Writes the state to a temporary file beside it, then renames it over the old one: a crash
/// leaves the old state or the new one, never half of one.
fn save_state(path: &Path, state: &SavedState) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let text = serde_json::to_vec_pretty(state).context("cannot encode the state")?;
    let write = || -> io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().with_context(|| format!("cannot write the state file {}", path.display()))
}

fn hash_hex(line: &[u8]) -> String {
    format!("{:032x}", xxh3_128(line))
}

// ---- reading a file ---------------------------------------------------------------------

/// A line read: its number, the offset just after it, its text (none: longer than
/// [`MAX_LINE`]).
#[derive(Debug)]
struct ReadLine {
    number: u64,
    end: u64,
    text: Option<String>,
}

/// A file being read line by line from `offset`.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    file: tokio::fs::File,
    id: FileId,
    /// Offset just after the last complete line handed out.
    offset: u64,
    /// Lines handed out (numbering from 1).
    line: u64,
    /// Bytes read after `offset`, not yet a complete line.
    pending: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`]: its bytes are dropped until its end.
    overlong: bool,
    first_line: Option<String>,
}

impl Source {
    async fn open(path: &Path) -> io::Result<Source> {
        let file = tokio::fs::File::open(path).await?;
        let id = FileId::of(&file.metadata().await?);
        Ok(Source {
            path: path.to_owned(),
            file,
            id,
            offset: 0,
            line: 0,
            pending: Vec::new(),
            overlong: false,
            first_line: None,
        })
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata().await?.len())
    }

    /// Goes back to the start of the file (truncated, or resumed from nothing).
    async fn rewind(&mut self) -> io::Result<()> {
        self.seek(0, 0).await?;
        self.first_line = None;
        Ok(())
    }

    async fn seek(&mut self, offset: u64, line: u64) -> io::Result<()> {
        self.file.seek(io::SeekFrom::Start(offset)).await?;
        self.offset = offset;
        self.line = line;
        self.pending.clear();
        self.overlong = false;
        Ok(())
    }

    /// The hash of the first line, read from the file without moving the position; none
    /// while it is incomplete.
    async fn read_first_line(&self) -> io::Result<Option<String>> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        if FileId::of(&file.metadata().await?) != self.id {
            // The path names another file now: read ours through its open handle instead.
            file = self.file.try_clone().await?;
        }
        let mut first = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        let mut at = 0u64;
        loop {
            let read = read_at(&mut file, at, &mut buffer).await?;
            if read == 0 {
                return Ok(None);
            }
            if let Some(end) = buffer[..read].iter().position(|b| *b == b'\n') {
                first.extend_from_slice(&buffer[..end]);
                return Ok(Some(hash_hex(trim_cr(&first))));
            }
            first.extend_from_slice(&buffer[..read]);
            at += read as u64;
            if first.len() > MAX_LINE {
                return Ok(Some(hash_hex(&first[..MAX_LINE])));
            }
        }
    }

    /// The complete lines written since the last call (at most about [`READ_CHUNK`] bytes);
    /// none at the end of the file. A last line without its line end waits for it.
    async fn next_lines(&mut self) -> io::Result<Vec<ReadLine>> {
        let mut buffer = vec![0; READ_CHUNK];
        let read = self.file.read(&mut buffer).await?;
        let mut lines = Vec::new();
        if read == 0 {
            return Ok(lines);
        }
        let mut start = 0;
        for (index, byte) in buffer[..read].iter().enumerate() {
            if *byte != b'\n' {
                continue;
            }
            let end = self.offset + (self.pending.len() + index + 1 - start) as u64;
            let text = if self.overlong {
                self.overlong = false;
                None
            } else {
                self.pending.extend_from_slice(&buffer[start..index]);
                let bytes = trim_cr(&self.pending);
                if self.line == 0 {
                    self.first_line = Some(hash_hex(bytes));
                }
                Some(String::from_utf8_lossy(bytes).into_owned())
            };
            self.line += 1;
            lines.push(ReadLine {
                number: self.line,
                end,
                text,
            });
            self.offset = end;
            self.pending.clear();
            start = index + 1;
        }
        if !self.overlong {
            self.pending.extend_from_slice(&buffer[start..read]);
            if self.pending.len() > MAX_LINE {
                if self.line == 0 {
                    self.first_line = Some(hash_hex(&self.pending[..MAX_LINE]));
                }
                self.overlong = true;
            }
        }
        if self.overlong {
            // The dropped bytes still count towards the line's end offset.
            let dropped = if self.pending.is_empty() {
                read - start
            } else {
                self.pending.len()
            };
            self.offset += dropped as u64;
            self.pending.clear();
        }
        Ok(lines)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

async fn read_at(file: &mut tokio::fs::File, at: u64, buffer: &mut [u8]) -> io::Result<usize> {
    file.seek(io::SeekFrom::Start(at)).await?;
    file.read(buffer).await
}

/// What the followed path names now, compared with the file being read.
enum PathNow {
    /// The same file, at least as long as what was read.
    Same,
    /// The same file, shorter than what was read: truncated (`copytruncate`).
    Truncated,
    /// Another file.
    Other,
    /// Nothing (renamed, not yet created again).
    Missing,
}

async fn path_now(source: &Source, path: &Path) -> io::Result<PathNow> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if FileId::of(&metadata) == source.id => {
            if source.size().await? < source.offset {
                Ok(PathNow::Truncated)
            } else {
                Ok(PathNow::Same)
            }
        }
        Ok(_) => Ok(PathNow::Other),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(PathNow::Missing),
        Err(error) => Err(error),
    }
}

/// The file with identity `id` in `dir`, if any: where a rotation moved the file read last.
fn find_by_id(dir: &Path, id: FileId) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.flatten().map(|entry| entry.path()).find(|path| {
        std::fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && FileId::of(&metadata) == id)
    })
}

// ---- the follower -----------------------------------------------------------------------

/// What a run did.
#[derive(Debug, Default)]
struct Counts {
    /// Lines read and translated (not those read again to rebuild the translator's memory).
    lines: u64,
    malformed: u64,
    /// Lines of events the contract has no counterpart for, and blank lines.
    without_events: u64,
    events: u64,
    /// Completions published before their time because the holding queue was full.
    released_early: u64,
    files: u64,
}

/// The log's own clock: the newest line time read, to release held completions.
fn line_time(text: &str, zone: Tz) -> Option<Timestamp> {
    let field = text.split('|').next()?.trim();
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        let secs = field.parse::<i64>().ok()?;
        return Some(Timestamp(secs.checked_mul(1000)?));
    }
    let local = NaiveDateTime::parse_from_str(field, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let instant = zone.from_local_datetime(&local).earliest()?;
    Some(Timestamp(instant.timestamp() * 1000))
}

fn is_completion(event: &Event) -> bool {
    matches!(
        &event.body,
        EventBody::Contact(contact) if matches!(contact.kind, ContactEventKind::Completed { .. })
    )
}

struct Follower<'a> {
    args: &'a QueueLogArgs,
    state_path: PathBuf,
    translator: QueueLogTranslator,
    zone: Tz,
    sink: Sink,
    /// Held completions by (time, arrival), each with its line.
    held: BTreeMap<(Timestamp, u64), (u64, Event)>,
    /// Pushed out of a full `held`, to publish at once.
    held_early: Vec<(u64, Event)>,
    arrivals: u64,
    clock: Option<Timestamp>,
    counts: Counts,
    /// Lines or releases since the state was last saved.
    dirty: bool,
    lines_since_save: u64,
    /// Something could not be published: the state must not move any more.
    failed: bool,
}

impl Follower<'_> {
    fn report(&self, text: &str) {
        self.args.common.report(text);
    }

    /// Translates `text` without publishing, to rebuild the translator's memory.
    fn replay(&mut self, number: u64, text: &str) {
        let outcome = self.translator.translate_line(number, text);
        if outcome.is_ok() {
            self.advance_clock(text, &[]);
        }
    }

    fn advance_clock(&mut self, text: &str, events: &[Event]) {
        let newest = line_time(text, self.zone)
            .into_iter()
            .chain(events.iter().filter(|e| !is_completion(e)).map(|e| e.time))
            .max();
        if let Some(newest) = newest {
            self.clock = Some(self.clock.map_or(newest, |clock| clock.max(newest)));
        }
    }

    fn hold(&mut self, line: u64, event: Event) {
        if self.held.len() >= MAX_HELD
            && let Some((_, (line, event))) = self.held.pop_first()
        {
            self.counts.released_early += 1;
            self.held_early.push((line, event));
        }
        self.arrivals += 1;
        self.held.insert((event.time, self.arrivals), (line, event));
    }

    /// Translates and publishes one line read.
    async fn line(&mut self, source_path: &Path, line: ReadLine) {
        self.counts.lines += 1;
        self.dirty = true;
        self.lines_since_save += 1;
        let Some(text) = line.text else {
            self.counts.malformed += 1;
            self.report(&format!(
                "{} line {}: malformed: longer than {MAX_LINE} bytes, skipped",
                source_path.display(),
                line.number
            ));
            return;
        };
        let events = match self.translator.translate_line(line.number, &text) {
            Ok(LineOutcome::Events(events)) => events,
            Ok(LineOutcome::Skipped { .. } | LineOutcome::Blank) => {
                self.counts.without_events += 1;
                // Its time still moves the log's clock on.
                self.advance_clock(&text, &[]);
                self.release(false).await;
                return;
            }
            Err(malformed) => {
                self.counts.malformed += 1;
                self.report(&format!(
                    "{} line {}: malformed: {}, skipped",
                    source_path.display(),
                    malformed.line,
                    malformed.problem
                ));
                return;
            }
        };
        self.counts.events += events.len() as u64;
        self.advance_clock(&text, &events);
        for event in events {
            if is_completion(&event) && self.clock.is_none_or(|clock| event.time > clock) {
                self.hold(line.number, event);
            } else {
                self.sink.send(line.number, &event).await;
            }
        }
        self.release(false).await;
    }

    /// Publishes the held events whose time the log has reached (all with `all`), and those
    /// pushed out of a full queue.
    async fn release(&mut self, all: bool) {
        for (line, event) in std::mem::take(&mut self.held_early) {
            self.sink.send(line, &event).await;
        }
        while let Some(entry) = self.held.first_entry() {
            let (time, _) = *entry.key();
            if !all && self.clock.is_none_or(|clock| time > clock) {
                break;
            }
            let (line, event) = entry.remove();
            self.dirty = true;
            self.sink.send(line, &event).await;
        }
        if self.sink.tally.failed > 0 {
            self.failed = true;
        }
    }

    /// Waits for the acknowledgements in flight, then saves the position after `source`'s
    /// last line (unless something failed: the state then stays where all was published).
    async fn checkpoint(&mut self, source: &Source) -> anyhow::Result<()> {
        self.sink.flush().await;
        if self.sink.tally.failed > 0 {
            self.failed = true;
        }
        if self.failed {
            return Ok(());
        }
        let held = self
            .held
            .values()
            .map(|(line, event)| {
                Ok(HeldRecord {
                    line: *line,
                    event: serde_json::value::RawValue::from_string(event.to_json())?,
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .context("cannot encode a held event")?;
        save_state(
            &self.state_path,
            &SavedState {
                version: STATE_VERSION,
                path: source.path.clone(),
                file: source.id,
                first_line: source.first_line.clone(),
                offset: source.offset,
                line: source.line,
                held,
            },
        )?;
        self.dirty = false;
        self.lines_since_save = 0;
        Ok(())
    }

    /// Puts back the events a previous run held.
    fn restore(&mut self, held: Vec<HeldRecord>) -> anyhow::Result<()> {
        for record in held {
            let event = decode_json(record.event.get().as_bytes(), DEFAULT_MAX_EVENT_BYTES)
                .map_err(|rejection| {
                    anyhow::anyhow!("a held event of the state file: {rejection}")
                })?;
            self.arrivals += 1;
            self.held
                .insert((event.time, self.arrivals), (record.line, event));
        }
        Ok(())
    }

    /// Re-reads `source` from its start to `offset` without publishing.
    async fn rebuild_memory(&mut self, source: &mut Source, offset: u64) -> io::Result<()> {
        source.seek(0, 0).await?;
        let mut lines_before = 0;
        'read: while source.offset < offset {
            let lines = source.next_lines().await?;
            if lines.is_empty() {
                break;
            }
            for line in lines {
                if line.end > offset {
                    // Only for a file rewritten in place with the same first line and at
                    // least the same length: go on from the offset all the same.
                    break 'read;
                }
                lines_before = line.number;
                if let Some(text) = &line.text {
                    self.replay(line.number, text);
                }
            }
        }
        let first_line = source.first_line.clone();
        source.seek(offset, lines_before).await?;
        source.first_line = first_line;
        Ok(())
    }
}

/// Where to start, from the state file and what the path names now.
async fn resume(
    follower: &mut Follower<'_>,
    state: Option<SavedState>,
    current: Source,
) -> anyhow::Result<(Source, Option<Source>)> {
    let Some(state) = state else {
        return Ok((current, None));
    };
    follower.restore(state.held)?;
    let path = follower.args.file.clone();
    let (mut old, next) = if current.id == state.file {
        (current, None)
    } else {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut found = None;
        if let Some(old_path) = find_by_id(dir, state.file) {
            let old = Source::open(&old_path).await?;
            // The inode may have been reused by another file since: the first line tells.
            if state.first_line.is_none() || old.read_first_line().await? == state.first_line {
                found = Some(old);
            }
        }
        match found {
            Some(old) => (old, Some(current)),
            None => {
                follower.report(&format!(
                    "{}: the file read last ({}, inode {}) was rotated away and is not in {}: \
                     its lines after byte {} were not published; reading the new file from its start",
                    path.display(),
                    state.path.display(),
                    state.file.inode,
                    dir.display(),
                    state.offset
                ));
                return Ok((current, None));
            }
        }
    };
    let size = old.size().await?;
    let first_line = old.read_first_line().await?;
    let same_start = match &state.first_line {
        None => true,
        Some(saved) => first_line.as_deref() == Some(saved.as_str()),
    };
    if size < state.offset || !same_start {
        follower.report(&format!(
            "{}: truncated or replaced since the last run (state at byte {}, file of {size} bytes): \
             reading it from its start",
            old.path.display(),
            state.offset
        ));
        old.rewind().await?;
        return Ok((old, next));
    }
    follower.rebuild_memory(&mut old, state.offset).await?;
    Ok((old, next))
}

/// Runs `vigie connect asterisk-queue-log`.
pub fn run(args: &QueueLogArgs) -> anyhow::Result<()> {
    let (config, nats) = args.common.settings()?;
    let settings = args.translator_config(config.connect.asterisk_queue_log)?;
    let translator = settings
        .build()
        .map_err(|errors| invalid_settings("queue_log", "connect.asterisk_queue_log", &errors.0))?;
    check_site(&settings.site, "connect.asterisk_queue_log.site")?;
    let zone = Tz::from_str(&settings.time_zone)
        .map_err(|_| anyhow::anyhow!("connect.asterisk_queue_log.time_zone: not a time zone"))?;
    let state_path = args.state_path();
    let state = load_state(&state_path)?;
    let started = Instant::now();
    runtime()?.block_on(async {
        let stop = stop_on_signal();
        let current = open_when_there(args, &stop).await?;
        let Some(current) = current else {
            eprintln!("stopped by a signal before {} existed", args.file.display());
            return Ok(());
        };
        let sink = super::Sink::connect(&nats, &args.common).await?;
        let mut follower = Follower {
            args,
            state_path,
            translator,
            zone,
            sink,
            held: BTreeMap::new(),
            held_early: Vec::new(),
            arrivals: 0,
            clock: None,
            counts: Counts::default(),
            dirty: false,
            lines_since_save: 0,
            failed: false,
        };
        let (source, next) = resume(&mut follower, state, current).await?;
        let outcome = follow(&mut follower, source, next, &stop).await;
        finish(follower, outcome, started).await
    })
}

/// Opens the file; with `--follow`, waits for it to exist (none: stopped first).
async fn open_when_there(
    args: &QueueLogArgs,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Source>> {
    let mut said = false;
    loop {
        match Source::open(&args.file).await {
            Ok(source) => return Ok(Some(source)),
            Err(error) if error.kind() == io::ErrorKind::NotFound && args.follow => {
                if !said {
                    eprintln!("{}: not there yet, waiting for it", args.file.display());
                    said = true;
                }
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot open {}", args.file.display()));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(args.poll) => {}
        }
    }
}

/// How a run ended.
#[derive(Debug)]
struct Ended {
    source: Source,
    interrupted: bool,
    /// A last line without its line end, left for later.
    incomplete: bool,
}

async fn follow(
    follower: &mut Follower<'_>,
    mut source: Source,
    mut next: Option<Source>,
    stop: &CancellationToken,
) -> anyhow::Result<Ended> {
    let path = follower.args.file.clone();
    let follow = follower.args.follow;
    follower.counts.files = 1;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if follower.failed {
            break;
        }
        let lines = source
            .next_lines()
            .await
            .with_context(|| format!("cannot read {}", source.path.display()))?;
        if !lines.is_empty() {
            for line in lines {
                if follower.failed {
                    break;
                }
                follower.line(&source.path.clone(), line).await;
            }
            if follower.lines_since_save >= SAVE_EVERY_LINES {
                follower.checkpoint(&source).await?;
            }
            continue;
        }
        // At the end of the file: has the path moved on?
        if next.is_none() {
            match path_now(&source, &path).await? {
                PathNow::Same | PathNow::Missing => {}
                PathNow::Truncated => {
                    follower.report(&format!(
                        "{}: truncated (copytruncate?): reading it again from its start",
                        path.display()
                    ));
                    source.rewind().await?;
                    follower.dirty = true;
                    continue;
                }
                PathNow::Other => match Source::open(&path).await {
                    Ok(new) => next = Some(new),
                    // Renamed again in between: seen at the next look.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(error)
                            .with_context(|| format!("cannot open {}", path.display()));
                    }
                },
            }
        }
        if let Some(new) = next.take() {
            // The writer moves to the new file once and for all: once it has bytes, the old
            // file gets no more, and one more read finishes it.
            if new.size().await? > 0 {
                let lines = source
                    .next_lines()
                    .await
                    .with_context(|| format!("cannot read {}", source.path.display()))?;
                if lines.is_empty() {
                    follower.release(false).await;
                    source = new;
                    follower.counts.files += 1;
                    follower.dirty = true;
                    // The position moves to the new file: save it before reading it.
                    follower.checkpoint(&source).await?;
                    continue;
                }
                for line in lines {
                    follower.line(&source.path.clone(), line).await;
                }
            }
            // Without --follow, the run stops here and the state stays on the old file.
            next = Some(new);
        }
        if !follow {
            break;
        }
        if follower.dirty {
            follower.checkpoint(&source).await?;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(follower.args.poll) => {}
        }
    }
    let incomplete = !source.pending.is_empty() || source.overlong;
    Ok(Ended {
        source,
        interrupted: stop.is_cancelled(),
        incomplete,
    })
}

/// Publishes what may be, saves the state, prints the summary.
async fn finish(
    mut follower: Follower<'_>,
    outcome: anyhow::Result<Ended>,
    started: Instant,
) -> anyhow::Result<()> {
    let ended = match outcome {
        Ok(ended) => ended,
        Err(error) => {
            // The state stays where it was last saved, which is safe to resume from.
            follower.sink.flush().await;
            return Err(error);
        }
    };
    if !follower.args.follow && !ended.interrupted && !follower.failed {
        // The end of the input: no later line will release them.
        follower.release(true).await;
    }
    follower.checkpoint(&ended.source).await?;
    let counts = &follower.counts;
    let tally = follower.sink.tally;
    let mut summary = format!(
        "{}: {} lines read ({} malformed, {} without events), {} events: {} published, {} \
         duplicates, {} failed, {} held for their time",
        follower.args.file.display(),
        counts.lines,
        counts.malformed,
        counts.without_events,
        counts.events,
        tally.stored,
        tally.duplicates,
        tally.failed,
        follower.held.len(),
    );
    if counts.released_early > 0 {
        summary += &format!(
            ", {} published before their time (more than {MAX_HELD} held)",
            counts.released_early
        );
    }
    if counts.files > 1 {
        summary += &format!(", across {} files", counts.files);
    }
    if !follower.failed {
        summary += &format!(
            "; state: byte {} of {} in {}",
            ended.source.offset,
            ended.source.path.display(),
            follower.state_path.display()
        );
    }
    summary += &format!(" ({:.1} s)", started.elapsed().as_secs_f64());
    eprintln!("{summary}");
    if ended.incomplete && !follower.args.follow {
        eprintln!("the last line has no line end yet: left for the next run");
    }
    if follower.failed {
        bail!(
            "{} events could not be published: the state file stays at the last position whose \
             events were all stored; running again is safe (the server drops duplicates)",
            tally.failed
        );
    }
    if ended.interrupted {
        eprintln!("stopped by a signal: state saved");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_handed_out_whole_with_the_offset_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue_log");
        std::fs::write(&path, "a\nbb\r\nccc").unwrap();
        let mut source = Source::open(&path).await.unwrap();
        let lines = source.next_lines().await.unwrap();
        let found: Vec<_> = lines
            .iter()
            .map(|l| (l.number, l.end, l.text.clone().unwrap()))
            .collect();
        assert_eq!(found, [(1, 2, "a".to_owned()), (2, 6, "bb".to_owned())]);
        assert_eq!(
            source.offset, 6,
            "the incomplete last line is not done with"
        );
        assert!(source.next_lines().await.unwrap().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        let lines = source.next_lines().await.unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].number, lines[0].end), (3, 11));
        assert_eq!(lines[0].text.as_deref(), Some("cccc"));
        assert_eq!(source.first_line, Some(hash_hex(b"a")));
        assert_eq!(
            source.read_first_line().await.unwrap(),
            source.first_line,
            "the state's first-line hash is the one read back on start"
        );
    }

    #[test]
    fn the_log_clock_reads_both_time_forms() {
        let paris = Tz::from_str("Europe/Paris").unwrap();
        assert_eq!(
            line_time("1772442900|1.1|q|NONE|ENTERQUEUE", paris),
            Some(Timestamp(1_772_442_900_000))
        );
        // 10:15 in Paris in March is 09:15 UTC.
        assert_eq!(
            line_time("2026-03-02 10:15:00.123456|1.1|q|NONE|ENTERQUEUE", paris),
            Some(Timestamp(1_772_442_900_000))
        );
        assert_eq!(line_time("yesterday|1.1", paris), None);
    }
}
