//! What a simulated day looks like: the site, its size, its traffic and its feed.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use vigie_core::Channel;
use vigie_core::config::ConfigErrors;
use vigie_core::time::Millis;

/// Behaviour of the contacts of one channel and of the advisors handling them.
///
/// Durations are means of lognormal laws (talk, hold, wrap-up, ringing) or of an exponential
/// law (patience), the shapes contact-centre planning tools assume.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelParams {
    /// Mean conversation time with the advisor, holds excluded.
    pub talk_mean: Millis,
    /// Coefficient of variation of the conversation time (standard deviation / mean).
    pub talk_cv: f64,
    /// Mean after-contact work (wrap-up) after the conversation.
    pub acw_mean: Millis,
    /// Mean customer patience in queue (exponential, Erlang-A); `None`: never abandons
    /// (e-mails, tasks, callback requests).
    pub patience_mean: Option<Millis>,
    /// Service-level answer time T of the queues of this channel.
    pub sl_threshold: Millis,
    /// Service-level target of the queues of this channel, a fraction.
    pub sl_target: f64,
    /// Short-abandon threshold of the queues of this channel; zero disables.
    pub short_abandon: Millis,
    /// Share of answered contacts put on hold (a quarter of them twice).
    pub hold_share: f64,
    /// Mean duration of one hold.
    pub hold_mean: Millis,
    /// Share of answered contacts the advisor transfers to another queue of the same media.
    pub transfer_share: f64,
    /// Share of offers that ring out unanswered (`contact.missed`).
    pub miss_share: f64,
    /// Mean time an offer rings before the advisor answers.
    pub ring_mean: Millis,
    /// How long an offer rings before it counts as missed.
    pub ring_timeout: Millis,
}

/// [`ChannelParams`] for each channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelTable {
    /// Telephone calls.
    pub voice: ChannelParams,
    /// Web chat, handled several at a time.
    pub chat: ChannelParams,
    /// E-mails.
    pub email: ChannelParams,
    /// Callbacks the customer asked for.
    pub callback: ChannelParams,
    /// Social network messages, handled several at a time by the chat teams.
    pub social: ChannelParams,
    /// Back-office tasks.
    pub task: ChannelParams,
}

impl ChannelTable {
    /// The parameters of `channel`.
    pub fn get(&self, channel: Channel) -> &ChannelParams {
        match channel {
            Channel::Voice => &self.voice,
            Channel::Chat => &self.chat,
            Channel::Email => &self.email,
            Channel::Callback => &self.callback,
            Channel::Social => &self.social,
            Channel::Task => &self.task,
        }
    }
}

impl Default for ChannelTable {
    fn default() -> Self {
        let secs = Millis::from_secs;
        let mins = Millis::from_mins;
        ChannelTable {
            // Voice AHT about 5 minutes: 4 min talk, a few holds, 45 s wrap-up.
            voice: ChannelParams {
                talk_mean: secs(240),
                talk_cv: 0.9,
                acw_mean: secs(45),
                patience_mean: Some(secs(90)),
                sl_threshold: secs(20),
                sl_target: 0.8,
                short_abandon: secs(5),
                hold_share: 0.2,
                hold_mean: secs(40),
                transfer_share: 0.03,
                miss_share: 0.03,
                ring_mean: secs(6),
                ring_timeout: secs(20),
            },
            // A chat lasts longer than a call because the advisor runs two or three at once.
            chat: ChannelParams {
                talk_mean: secs(540),
                talk_cv: 0.7,
                acw_mean: secs(30),
                patience_mean: Some(secs(180)),
                sl_threshold: secs(20),
                sl_target: 0.8,
                short_abandon: secs(10),
                hold_share: 0.0,
                hold_mean: secs(40),
                transfer_share: 0.02,
                miss_share: 0.02,
                ring_mean: secs(6),
                ring_timeout: secs(30),
            },
            email: ChannelParams {
                talk_mean: secs(360),
                talk_cv: 0.8,
                acw_mean: secs(60),
                patience_mean: None,
                sl_threshold: mins(60),
                sl_target: 0.8,
                short_abandon: Millis::ZERO,
                hold_share: 0.0,
                hold_mean: secs(40),
                transfer_share: 0.02,
                miss_share: 0.01,
                ring_mean: secs(3),
                ring_timeout: secs(60),
            },
            callback: ChannelParams {
                talk_mean: secs(300),
                talk_cv: 0.9,
                acw_mean: secs(60),
                patience_mean: None,
                sl_threshold: mins(10),
                sl_target: 0.8,
                short_abandon: Millis::ZERO,
                hold_share: 0.15,
                hold_mean: secs(40),
                transfer_share: 0.02,
                miss_share: 0.03,
                ring_mean: secs(8),
                ring_timeout: secs(20),
            },
            social: ChannelParams {
                talk_mean: secs(420),
                talk_cv: 0.8,
                acw_mean: secs(30),
                patience_mean: None,
                sl_threshold: mins(15),
                sl_target: 0.8,
                short_abandon: Millis::ZERO,
                hold_share: 0.0,
                hold_mean: secs(40),
                transfer_share: 0.01,
                miss_share: 0.02,
                ring_mean: secs(8),
                ring_timeout: secs(30),
            },
            task: ChannelParams {
                talk_mean: secs(480),
                talk_cv: 0.7,
                acw_mean: secs(30),
                patience_mean: None,
                sl_threshold: mins(120),
                sl_target: 0.8,
                short_abandon: Millis::ZERO,
                hold_share: 0.0,
                hold_mean: secs(40),
                transfer_share: 0.0,
                miss_share: 0.0,
                ring_mean: secs(3),
                ring_timeout: secs(60),
            },
        }
    }
}

/// Everything that defines a simulated day. The same configuration gives the same events,
/// byte for byte, on every platform.
///
/// The default is a mid-size centre: 60 advisors in 5 teams, 7 queues (4 voice, 1 callback,
/// 1 chat, 1 e-mail), open 08:00-20:00 in Paris on Monday 2 March 2026.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Site id, carried by every event and used as the prefix of event ids.
    pub site_id: String,
    /// Site display name.
    pub site_name: Option<String>,
    /// IANA time zone of the site.
    pub time_zone: String,
    /// Local date of the simulated day.
    pub date: NaiveDate,
    /// Local opening time: the first contacts arrive then.
    pub open: NaiveTime,
    /// Local closing time, after `open` on the same date: arrivals stop then.
    pub close: NaiveTime,
    /// After closing, advisors whose shift ends at closing keep serving the contacts still
    /// waiting for this long; then what still waits is dequeued as `closed`.
    pub closing_grace: Millis,
    /// Number of rostered advisors. They form teams of 10 to 12, each serving 1 to 3 queues
    /// of one media (voice and callback; chat and social; e-mail and task); teams are smaller
    /// or serve more queues only when there are too few advisors for that.
    pub advisors: usize,
    /// Number of queues.
    pub queues: usize,
    /// Share of queues that are chat; voice takes what the other shares leave.
    pub chat_share: f64,
    /// Share of queues that are e-mail.
    pub email_share: f64,
    /// Share of queues that are callback requests.
    pub callback_share: f64,
    /// Share of queues that are social network messages.
    pub social_share: f64,
    /// Share of queues that are back-office tasks.
    pub task_share: f64,
    /// Chat-team advisors each handle 2 to this many chats at once (1 makes them one at a
    /// time).
    pub max_chats: u8,
    /// Occupancy the traffic is sized for: the offered workload at each moment is this share of
    /// the capacity the schedule plans to have available. 0.85 gives busy peaks where the
    /// service level sometimes misses its target.
    pub target_occupancy: f64,
    /// Share of rostered advisors who do not come in that day. The traffic is sized for the
    /// full roster, so raising it cuts the staff at equal volume.
    pub absent_share: f64,
    /// Share of advisors who have one extra activity (training, meeting, coaching, admin)
    /// besides their two breaks and lunch.
    pub extra_pause_share: f64,
    /// Share of completed contacts marked `resolved` (first-contact resolution); the others
    /// are marked unresolved.
    pub resolved_share: f64,
    /// Per-channel behaviour.
    pub channels: ChannelTable,
    /// Truncate event times to whole seconds, like second-resolution feeds (Asterisk
    /// `queue_log`).
    pub whole_seconds: bool,
    /// Share of events the feed delivers twice ([`crate::Disorder`], applied by
    /// [`crate::Simulation::into_feed`]).
    pub duplicate_share: f64,
    /// Largest delivery delay of the feed: events arrive out of order within this bound.
    pub max_delay: Millis,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            site_id: "paris".to_owned(),
            site_name: Some("Paris contact centre (simulated)".to_owned()),
            time_zone: "Europe/Paris".to_owned(),
            date: NaiveDate::from_ymd_opt(2026, 3, 2).expect("2026-03-02 is a valid date"),
            open: NaiveTime::from_hms_opt(8, 0, 0).expect("08:00 is a valid time"),
            close: NaiveTime::from_hms_opt(20, 0, 0).expect("20:00 is a valid time"),
            closing_grace: Millis::from_mins(15),
            advisors: 60,
            queues: 7,
            chat_share: 0.15,
            email_share: 0.1,
            callback_share: 0.1,
            social_share: 0.03,
            task_share: 0.03,
            max_chats: 3,
            target_occupancy: 0.8,
            absent_share: 0.0,
            extra_pause_share: 0.3,
            resolved_share: 0.78,
            channels: ChannelTable::default(),
            whole_seconds: false,
            duplicate_share: 0.01,
            max_delay: Millis::from_secs(5),
        }
    }
}

/// The largest site the simulator accepts, far above any real one.
const MAX_ADVISORS: usize = 1_000_000;
const MAX_QUEUES: usize = 100_000;

impl SimConfig {
    /// The time zone, if `time_zone` is a valid IANA name.
    pub fn zone(&self) -> Option<Tz> {
        Tz::from_str(&self.time_zone).ok()
    }

    /// Checks the configuration and reports every problem at once, each with its field path
    /// prefixed by `path` (such as `sim`).
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        let mut push =
            |field: &str, problem: String| problems.push(format!("{path}.{field}: {problem}"));
        if self.site_id.trim().is_empty() || self.site_id.chars().any(char::is_control) {
            push(
                "site_id",
                format!("{:?} is not a usable site id", self.site_id),
            );
        }
        if self.zone().is_none() {
            push(
                "time_zone",
                format!(
                    "{:?} is not an IANA time zone name such as \"Europe/Paris\"",
                    self.time_zone
                ),
            );
        }
        if self.close <= self.open {
            push(
                "close",
                format!(
                    "must be after the opening time {} on the same day",
                    self.open
                ),
            );
        }
        if self.closing_grace < Millis::ZERO {
            push("closing_grace", "must not be negative".to_owned());
        }
        if !(1..=MAX_ADVISORS).contains(&self.advisors) {
            push("advisors", format!("must be between 1 and {MAX_ADVISORS}"));
        }
        if !(1..=MAX_QUEUES).contains(&self.queues) {
            push("queues", format!("must be between 1 and {MAX_QUEUES}"));
        }
        let shares = [
            ("chat_share", self.chat_share),
            ("email_share", self.email_share),
            ("callback_share", self.callback_share),
            ("social_share", self.social_share),
            ("task_share", self.task_share),
        ];
        for (field, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                push(
                    field,
                    format!("must be a fraction between 0 and 1, found {share}"),
                );
            }
        }
        let total: f64 = shares.iter().map(|(_, share)| share).sum();
        if total > 1.0 + 1e-9 {
            push(
                "chat_share",
                format!("the channel shares add up to {total}, more than 1"),
            );
        }
        if self.max_chats == 0 || self.max_chats > 10 {
            push(
                "max_chats",
                format!("must be between 1 and 10, found {}", self.max_chats),
            );
        }
        if !(self.target_occupancy > 0.0 && self.target_occupancy <= 2.0) {
            push(
                "target_occupancy",
                format!(
                    "must be above 0 and at most 2, found {}",
                    self.target_occupancy
                ),
            );
        }
        for (field, share) in [
            ("absent_share", self.absent_share),
            ("extra_pause_share", self.extra_pause_share),
            ("resolved_share", self.resolved_share),
            ("duplicate_share", self.duplicate_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                push(
                    field,
                    format!("must be a fraction between 0 and 1, found {share}"),
                );
            }
        }
        if self.absent_share >= 1.0 {
            push("absent_share", "must leave someone to come in".to_owned());
        }
        if self.max_delay < Millis::ZERO {
            push("max_delay", "must not be negative".to_owned());
        }
        for &channel in Channel::ALL {
            let params = self.channels.get(channel);
            let field = |name: &str| format!("channels.{}.{name}", channel.as_str());
            if params.talk_mean <= Millis::ZERO {
                push(&field("talk_mean"), "must be more than 0s".to_owned());
            }
            for (name, value) in [
                ("acw_mean", params.acw_mean),
                ("hold_mean", params.hold_mean),
                ("ring_mean", params.ring_mean),
                ("short_abandon", params.short_abandon),
            ] {
                if value < Millis::ZERO {
                    push(&field(name), "must not be negative".to_owned());
                }
            }
            if params.ring_timeout <= Millis::ZERO {
                push(&field("ring_timeout"), "must be more than 0s".to_owned());
            }
            if params.sl_threshold <= Millis::ZERO {
                push(&field("sl_threshold"), "must be more than 0s".to_owned());
            }
            if params
                .patience_mean
                .is_some_and(|mean| mean <= Millis::ZERO)
            {
                push(&field("patience_mean"), "must be more than 0s".to_owned());
            }
            if !(0.0..=10.0).contains(&params.talk_cv) {
                push(
                    &field("talk_cv"),
                    format!("must be between 0 and 10, found {}", params.talk_cv),
                );
            }
            for (name, share) in [
                ("sl_target", params.sl_target),
                ("hold_share", params.hold_share),
                ("transfer_share", params.transfer_share),
                ("miss_share", params.miss_share),
            ] {
                if !(0.0..=1.0).contains(&share) {
                    push(
                        &field(name),
                        format!("must be a fraction between 0 and 1, found {share}"),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        SimConfig::default().validate("sim").unwrap();
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let mut config = SimConfig {
            time_zone: "Europe/Pariss".to_owned(),
            close: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            advisors: 0,
            chat_share: 0.8,
            email_share: 0.5,
            absent_share: 1.0,
            ..SimConfig::default()
        };
        config.channels.voice.miss_share = 2.0;
        let errors = config.validate("sim").unwrap_err();
        let all = errors.to_string();
        for expected in [
            "sim.time_zone",
            "sim.close",
            "sim.advisors",
            "sim.chat_share: the channel shares add up",
            "sim.absent_share",
            "sim.channels.voice.miss_share",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
    }
}
