//! Hand-written events on a small site, for the tests of this crate.

use vigie_core::config::HumanDuration;
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Outcome, ProcessingConfig, QueueConfig, SiteConfig, SiteProcessor,
    TeamConfig, Timestamp, decode_json,
};

/// Site `s`: queue `q` (T = 20 s, target 80%, AHT target 5 min), team `t` with advisors
/// `a1` to `a4` serving `q`; another queue `other` served by nobody.
pub(crate) fn site_config(time_zone: &str) -> SiteConfig {
    let mut site = SiteConfig::with_defaults("s");
    site.time_zone = time_zone.to_owned();
    let mut queue = QueueConfig::with_defaults("q");
    queue.aht_target = Some(HumanDuration::secs(300));
    site.queues = vec![queue, QueueConfig::with_defaults("other")];
    site.teams = vec![TeamConfig {
        id: "t".into(),
        name: None,
        advisors: ["a1", "a2", "a3", "a4"].map(String::from).to_vec(),
        queues: vec!["q".into()],
        sl_variant: None,
    }];
    site
}

/// A site fed event by event, on Monday 2 March 2026 (UTC times).
pub(crate) struct Feed {
    pub site: SiteProcessor,
    count: u32,
}

/// `HH:MM:SS` on the test day, UTC.
pub(crate) fn at(time: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).expect("a valid time")
}

impl Feed {
    pub fn new(config: SiteConfig) -> Feed {
        Feed {
            site: SiteProcessor::new(config, &ProcessingConfig::default()),
            count: 0,
        }
    }

    /// Applies one event: `rest` holds the fields after the envelope.
    pub fn event(&mut self, time: &str, rest: &str) -> &mut Feed {
        self.count += 1;
        let json = format!(
            r#"{{"id":"e{}","time":"2026-03-02T{time}Z","site":"s",{rest}}}"#,
            self.count
        );
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("a valid event");
        assert_eq!(self.site.apply(&event), Outcome::Applied, "{json}");
        self
    }

    pub fn contact(&mut self, time: &str, kind: &str, contact: &str, extra: &str) -> &mut Feed {
        let rest = format!(r#""type":"contact.{kind}","contact":"{contact}"{extra}"#);
        self.event(time, &rest)
    }

    pub fn queued(&mut self, time: &str, contact: &str) -> &mut Feed {
        self.contact(time, "queued", contact, r#","queue":"q","channel":"voice""#)
    }

    pub fn with_advisor(
        &mut self,
        time: &str,
        kind: &str,
        contact: &str,
        advisor: &str,
    ) -> &mut Feed {
        self.contact(time, kind, contact, &format!(r#","advisor":"{advisor}""#))
    }

    pub fn advisor(&mut self, time: &str, advisor: &str, rest: &str) -> &mut Feed {
        let rest = format!(r#""advisor":"{advisor}",{rest}"#);
        self.event(time, &rest)
    }

    pub fn advance(&mut self, time: &str) -> Timestamp {
        let now = at(time);
        self.site.advance_to(now);
        now
    }
}

/// The morning of the metric tests, at 09:05:00:
/// - `a1` handled c1 (answered after 10 s, talk 2 min, ACW 1 min: AHT 180 s), then answered
///   c4 (after 10 s) and is in ACW since 09:04:20;
/// - `a2` missed c2 (which abandoned after 40 s) and is in pause `break` since 09:02:00;
/// - `a3` talks with c5 since 09:03:05 (answered after 5 s);
/// - `a4` is available; c3 waits since 09:04:00.
///
/// Queue `q` over 15 min: offered 5, answered 3 (all within T), abandoned 1: service level
/// 3/4, abandon rate 1/4, ASA 25/3 s, AHT 180 s (1 handled), 1 waiting for 60 s.
pub(crate) fn morning(time_zone: &str) -> Feed {
    let mut feed = Feed::new(site_config(time_zone));
    for advisor in ["a1", "a2", "a3", "a4"] {
        feed.advisor("09:00:00", advisor, r#""type":"advisor.login""#);
    }
    feed.queued("09:00:00", "c1")
        .with_advisor("09:00:05", "offered", "c1", "a1")
        .with_advisor("09:00:10", "answered", "c1", "a1")
        .queued("09:01:00", "c2")
        .with_advisor("09:01:02", "offered", "c2", "a2")
        .with_advisor("09:01:12", "missed", "c2", "a2")
        .contact("09:01:40", "abandoned", "c2", "")
        .advisor(
            "09:02:00",
            "a2",
            r#""type":"advisor.state","state":"pause","reason":"break""#,
        )
        .with_advisor("09:02:10", "ended", "c1", "a1")
        .queued("09:03:00", "c5")
        .with_advisor("09:03:05", "answered", "c5", "a3")
        .with_advisor("09:03:10", "completed", "c1", "a1")
        .queued("09:03:30", "c4")
        .with_advisor("09:03:40", "answered", "c4", "a1")
        .queued("09:04:00", "c3")
        .with_advisor("09:04:20", "ended", "c4", "a1");
    feed.advance("09:05:00");
    feed
}

/// A queue short of advisors, for the `staffing_gap` tests: site `s` where `a1` and `a2` talk
/// since 07:29:10 on long calls (queued at 07:29, before any trailing 30 minutes read from
/// 07:59:10 on), `a3` and `a4` are on break since 07:05, and nothing was handled today. From
/// 08:00:30 a caller joins queue `q` every 150 s and abandons after 60 s: 12 callers in any
/// 30 minutes and 6 in any 15 once the arrivals started 30 minutes earlier.
///
/// The estimate staffs for the last 15 minutes (their rate is the higher until 08:30:00, then
/// the two tie), at `q`'s AHT target of 300 s (nothing handled: the fallback), for 80/20,
/// with 2 advisors staffed: no traffic before 08:00:30 (undefined); 1 or 2 callers (1/3 or
/// 2/3 E) need 2 advisors, gap 0; 3 or 4 from 08:05:30 (1 or 4/3 E) need 3, gap -1; 5 or 6
/// from 08:10:30 (5/3 or 2 E) need 4, gap -2, as long as the arrivals go on.
pub(crate) struct Understaffed {
    pub feed: Feed,
    /// Seconds after 08:00:00 of the next event to apply, and whether it is an arrival.
    next: (u32, bool),
    caller: u32,
}

impl Understaffed {
    /// The site at 08:00:00, before the first arrival.
    pub fn new() -> Understaffed {
        let mut feed = Feed::new(site_config("UTC"));
        for advisor in ["a1", "a2", "a3", "a4"] {
            feed.advisor("07:00:00", advisor, r#""type":"advisor.login""#);
        }
        for advisor in ["a3", "a4"] {
            feed.advisor(
                "07:05:00",
                advisor,
                r#""type":"advisor.state","state":"pause","reason":"break""#,
            );
        }
        feed.queued("07:29:00", "long-1")
            .queued("07:29:00", "long-2")
            .with_advisor("07:29:10", "answered", "long-1", "a1")
            .with_advisor("07:29:10", "answered", "long-2", "a2");
        feed.advance("08:00:00");
        Understaffed {
            feed,
            next: (30, true),
            caller: 0,
        }
    }

    /// Applies the arrivals and abandons up to `time` (`HH:MM:SS`, from 08:00:00) and
    /// advances the site to it.
    pub fn until(&mut self, time: &str) -> Timestamp {
        let now = at(time);
        loop {
            let (secs, arrival) = self.next;
            let hms = format!(
                "{:02}:{:02}:{:02}",
                8 + secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            if at(&hms) > now {
                break;
            }
            let contact = format!("caller-{}", self.caller);
            if arrival {
                self.feed.queued(&hms, &contact);
                self.next = (secs + 60, false);
            } else {
                self.feed.contact(&hms, "abandoned", &contact, "");
                self.caller += 1;
                self.next = (secs + 90, true);
            }
        }
        self.feed.advance(time)
    }
}
