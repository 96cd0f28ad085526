//! The static side of a simulated day: queues, teams, advisors, their schedules, and the
//! traffic volume sized for them. Built once from the configuration with its own random stream,
//! so the site does not change when the traffic code does.

use chrono::Timelike;
use chrono_tz::Tz;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use vigie_core::config::HumanDuration;
use vigie_core::time::{DayCalendar, Millis, Timestamp};
use vigie_core::{Channel, DequeueReason, QueueConfig, SiteConfig, TeamConfig};

use crate::config::SimConfig;
use crate::math::unit;

const MINUTE: i64 = 60_000;
const SLOT_MINUTES: usize = 15;
const SLOT: i64 = SLOT_MINUTES as i64 * MINUTE;

/// Campaign names, combined with the channel to name queues.
const CAMPAIGNS: &[&str] = &[
    "billing",
    "sales",
    "support",
    "claims",
    "onboarding",
    "retention",
    "technical",
    "delivery",
    "accounts",
    "loyalty",
    "roaming",
    "fibre",
    "mobile",
    "energy",
    "insurance",
    "travel",
    "payments",
    "returns",
    "premium",
    "business",
];

const FIRST_NAMES: &[&str] = &[
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Emma",
    "Inès",
    "Sarah",
    "Julie",
    "Lucie",
    "Clara",
    "Laura",
    "Anaïs",
    "Mélanie",
    "Nadia",
    "Sofia",
    "Yasmine",
    "Fatou",
    "Aïcha",
    "Marie",
    "Pauline",
    "Thomas",
    "Lucas",
    "Hugo",
    "Nicolas",
    "Julien",
    "Maxime",
    "Antoine",
    "Karim",
    "Mehdi",
    "Yanis",
    "Kevin",
    "Romain",
    "Alexandre",
    "Mathieu",
    "Omar",
    "Samir",
    "Bastien",
    "Florian",
    "Théo",
    "Quentin",
    "Adrien",
    "Moussa",
    "Dylan",
    "Jordan",
    "Élodie",
    "Gaëlle",
    "Sandrine",
    "Nathalie",
];

/// Pause reason codes, as a site configures them in its ACD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PauseReason {
    Break,
    Lunch,
    Training,
    Meeting,
    Coaching,
    Admin,
}

impl PauseReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PauseReason::Break => "break",
            PauseReason::Lunch => "lunch",
            PauseReason::Training => "training",
            PauseReason::Meeting => "meeting",
            PauseReason::Coaching => "coaching",
            PauseReason::Admin => "admin",
        }
    }
}

/// What a queue does with a contact that has waited `after`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Overflow {
    pub after: Millis,
    pub action: OverflowAction,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum OverflowAction {
    /// Leave the queue (voicemail, timeout).
    Dequeue(DequeueReason),
    /// Move to another queue (queue-to-queue transfer, no advisor).
    Transfer(u32),
}

/// A queue that offers waiting callers to be called back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallbackOffer {
    pub after: Millis,
    pub accept_share: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct QueueSpec {
    pub id: String,
    pub name: String,
    pub channel: Channel,
    /// Arrival shape: `base + morning * hump(10:30) + afternoon * hump(14:30)`.
    pub base: f64,
    pub morning: f64,
    pub afternoon: f64,
    /// Arrivals per millisecond when the shape is 1.
    pub rate: f64,
    /// Highest arrival rate of the day, per millisecond (the thinning bound).
    pub rate_max: f64,
    /// Per 15-minute slot, the share of the demand shape that arrives (below 1 where the
    /// schedule cannot staff the demand).
    pub staffing_factor: Vec<f64>,
    pub teams: Vec<u32>,
    pub overflow: Option<Overflow>,
    pub callback: Option<CallbackOffer>,
    /// Queues the advisors may transfer this queue's contacts to.
    pub transfer_targets: Vec<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct TeamSpec {
    pub id: String,
    pub name: String,
    pub queues: Vec<u32>,
    pub advisors: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PlannedPause {
    pub start: Timestamp,
    pub duration: Millis,
    pub reason: PauseReason,
}

#[derive(Clone, Debug)]
pub(crate) struct AdvisorSpec {
    pub id: String,
    pub name: String,
    pub team: u32,
    /// Contacts handled at once.
    pub capacity: u8,
    pub login: Timestamp,
    pub shift_end: Timestamp,
    /// In time order, not overlapping, inside the shift.
    pub pauses: Vec<PlannedPause>,
    pub absent: bool,
}

/// The static site of a simulated day.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub id: String,
    pub name: Option<String>,
    pub time_zone: String,
    pub open: Timestamp,
    pub close: Timestamp,
    /// The two humps of the intraday profile, per minute since opening.
    pub morning_hump: Vec<f64>,
    pub afternoon_hump: Vec<f64>,
    pub queues: Vec<QueueSpec>,
    pub teams: Vec<TeamSpec>,
    pub advisors: Vec<AdvisorSpec>,
}

/// The media groups a team specialises in: teams only serve queues of one group.
fn group_of(channel: Channel) -> usize {
    match channel {
        Channel::Voice | Channel::Callback => 0,
        Channel::Chat | Channel::Social => 1,
        Channel::Email | Channel::Task => 2,
    }
}

const GROUPS: usize = 3;

/// A smooth bump of half-width `width` hours (biweight kernel): polynomial, so exact everywhere.
fn hump(hours: f64, centre: f64, width: f64) -> f64 {
    let x = (hours - centre) / width;
    if x.abs() >= 1.0 {
        0.0
    } else {
        let y = 1.0 - x * x;
        y * y
    }
}

/// Base level of arrivals outside the peaks: deferred media arrive more evenly than calls.
fn base_level(channel: Channel) -> f64 {
    match channel {
        Channel::Voice => 0.2,
        Channel::Callback | Channel::Chat => 0.3,
        Channel::Social => 0.4,
        Channel::Email => 0.5,
        Channel::Task => 0.6,
    }
}

fn title(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn digits(n: usize) -> usize {
    n.max(1).ilog10() as usize + 1
}

/// Rounds a duration in milliseconds (never negative) to an integer.
fn ms(value: f64) -> i64 {
    value.max(0.0).round() as i64
}

/// Queue counts per channel: shares of `queues` rounded, voice taking the rest.
fn channel_counts(config: &SimConfig) -> Vec<(Channel, usize)> {
    let queues = config.queues;
    let mut counts: Vec<(Channel, usize)> = [
        (Channel::Callback, config.callback_share),
        (Channel::Chat, config.chat_share),
        (Channel::Social, config.social_share),
        (Channel::Email, config.email_share),
        (Channel::Task, config.task_share),
    ]
    .into_iter()
    .map(|(channel, share)| (channel, (share * queues as f64).round() as usize))
    .collect();
    // Rounding may overshoot: take the excess from the largest counts.
    while counts.iter().map(|(_, n)| n).sum::<usize>() > queues {
        if let Some(largest) = counts.iter_mut().max_by_key(|(_, n)| *n) {
            largest.1 -= 1;
        }
    }
    let others: usize = counts.iter().map(|(_, n)| n).sum();
    let mut all = vec![(Channel::Voice, queues - others)];
    all.extend(counts);
    all
}

impl Site {
    /// Builds the site. The configuration must be valid.
    pub(crate) fn build(config: &SimConfig, zone: Tz, rng: &mut ChaCha8Rng) -> Site {
        let open = DayCalendar::new(zone, config.open).start_of(config.date);
        let close = DayCalendar::new(zone, config.close)
            .start_of(config.date)
            .max(open + Millis(MINUTE));
        let minutes = ((close - open).0 + MINUTE - 1) / MINUTE;
        let minutes = usize::try_from(minutes).unwrap_or(0);
        // The two peaks of a typical day, by local time: mid-morning and mid-afternoon.
        let mut morning_hump = Vec::with_capacity(minutes);
        let mut afternoon_hump = Vec::with_capacity(minutes);
        for minute in 0..minutes {
            let at = (open + Millis(minute as i64 * MINUTE))
                .to_utc()
                .with_timezone(&zone);
            let hours = f64::from(at.hour()) + f64::from(at.minute()) / 60.0;
            morning_hump.push(hump(hours, 10.5, 2.75));
            afternoon_hump.push(hump(hours, 14.5, 2.75));
        }

        let queues = build_queues(config, rng);
        let mut site = Site {
            id: config.site_id.clone(),
            name: config.site_name.clone(),
            time_zone: config.time_zone.clone(),
            open,
            close,
            morning_hump,
            afternoon_hump,
            queues,
            teams: Vec::new(),
            advisors: Vec::new(),
        };
        site.build_teams(config, rng);
        site.build_advisors(config, rng);
        site.size_traffic(config);
        // Drawn last so that the absent share changes nothing else about the site.
        let absent = (config.absent_share * config.advisors as f64).round() as usize;
        let mut order: Vec<usize> = (0..site.advisors.len()).collect();
        for i in 0..absent.min(order.len()) {
            let j = rng.random_range(i..order.len());
            order.swap(i, j);
            site.advisors[order[i]].absent = true;
        }
        site
    }

    /// The demand shape of `queue` at `minute` since opening: the double hump.
    pub(crate) fn demand_shape(&self, queue: &QueueSpec, minute: usize) -> f64 {
        let minute = minute.min(self.morning_hump.len().saturating_sub(1));
        queue.base
            + queue.morning * self.morning_hump.get(minute).copied().unwrap_or(0.0)
            + queue.afternoon * self.afternoon_hump.get(minute).copied().unwrap_or(0.0)
    }

    /// The arrival shape of `queue` at `minute` since opening: the demand shape, capped where
    /// the staff is short (see [`Site::size_traffic`]).
    pub(crate) fn shape(&self, queue: &QueueSpec, minute: usize) -> f64 {
        let factor = queue
            .staffing_factor
            .get(minute / SLOT_MINUTES)
            .or(queue.staffing_factor.last())
            .copied()
            .unwrap_or(1.0);
        self.demand_shape(queue, minute) * factor
    }

    fn build_teams(&mut self, config: &SimConfig, rng: &mut ChaCha8Rng) {
        let mut group_queues: [Vec<u32>; GROUPS] = Default::default();
        for (index, queue) in self.queues.iter().enumerate() {
            group_queues[group_of(queue.channel)].push(index as u32);
        }
        // Teams of 10 to 12, enough for each to serve at most 3 queues when the roster allows.
        let needed: Vec<usize> = group_queues
            .iter()
            .map(|queues| queues.len().div_ceil(3))
            .collect();
        let wanted = ((config.advisors as f64 / 11.0).round() as usize)
            .max(needed.iter().sum())
            .clamp(1, config.advisors);
        let mut per_group = [0usize; GROUPS];
        for group in 0..GROUPS {
            if !group_queues[group].is_empty() {
                per_group[group] = 1;
            }
        }
        let mut total: usize = per_group.iter().sum();
        // Cover each group's minimum first, then hand out the rest by queues per team.
        while total < wanted {
            let short = (0..GROUPS).find(|&g| per_group[g] < needed[g]);
            let group = short.unwrap_or_else(|| {
                (0..GROUPS)
                    .filter(|&g| !group_queues[g].is_empty())
                    .max_by(|&a, &b| {
                        let ratio = |g: usize| group_queues[g].len() as f64 / per_group[g] as f64;
                        ratio(a).total_cmp(&ratio(b)).then(b.cmp(&a))
                    })
                    .unwrap_or(0)
            });
            per_group[group] += 1;
            total += 1;
        }
        let width = digits(total).max(2);
        let mut number = 0;
        for group in 0..GROUPS {
            let queues = &group_queues[group];
            let teams = per_group[group];
            for j in 0..teams {
                let mut served: Vec<u32> = if teams >= queues.len() {
                    let mut served = vec![queues[j % queues.len()]];
                    // Each team serves 1 to 3 of its group's queues.
                    let extra = rng.random_range(0..3usize).min(queues.len() - 1);
                    while served.len() < extra + 1 {
                        let pick = queues[rng.random_range(0..queues.len())];
                        if !served.contains(&pick) {
                            served.push(pick);
                        }
                    }
                    served
                } else {
                    queues.iter().skip(j).step_by(teams).copied().collect()
                };
                served.sort_unstable();
                number += 1;
                let campaign = self.queues[served[0] as usize]
                    .id
                    .split('-')
                    .next()
                    .unwrap_or("team")
                    .to_owned();
                for &queue in &served {
                    self.queues[queue as usize]
                        .teams
                        .push(self.teams.len() as u32);
                }
                self.teams.push(TeamSpec {
                    id: format!("team-{number:0width$}"),
                    name: format!("{} {number}", title(&campaign)),
                    queues: served,
                    advisors: Vec::new(),
                });
            }
        }
    }

    fn build_advisors(&mut self, config: &SimConfig, rng: &mut ChaCha8Rng) {
        let teams = self.teams.len();
        let width = digits(config.advisors).max(4);
        let slots = usize::try_from(((self.close - self.open).0 + SLOT - 1) / SLOT).unwrap_or(1);
        let mut number = 0;
        for team in 0..teams {
            let size = config.advisors / teams + usize::from(team < config.advisors % teams);
            let multi = self.teams[team]
                .queues
                .iter()
                .any(|&q| group_of(self.queues[q as usize].channel) == 1);
            // The team's demand per 15-minute slot, to staff against.
            let demand = self.team_demand(team, slots);
            let lengths: Vec<usize> = (0..size)
                .map(|_| [28, 30, 32][rng.random_range(0..3usize)].min(slots))
                .collect();
            let starts = staff_greedily(&demand, &lengths);
            for (&start, &length) in starts.iter().zip(&lengths) {
                number += 1;
                let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
                let initial = char::from(b'A' + rng.random_range(0..26u8));
                let capacity = if multi && config.max_chats > 1 {
                    rng.random_range(2..=config.max_chats)
                } else {
                    1
                };
                let shift_start = self.open + Millis(start as i64 * SLOT);
                let shift_end = (shift_start + Millis(length as i64 * SLOT)).min(self.close);
                // Advisors log in up to 3 minutes early or 1 minute late.
                let login = shift_start + Millis(rng.random_range(-180_000..=60_000i64));
                let pauses = plan_pauses(config, login, shift_end, rng);
                self.teams[team].advisors.push(self.advisors.len() as u32);
                self.advisors.push(AdvisorSpec {
                    id: format!("adv-{number:0width$}"),
                    name: format!("{first} {initial}."),
                    team: team as u32,
                    capacity,
                    login,
                    shift_end,
                    pauses,
                    absent: false,
                });
            }
        }
    }

    /// Mean arrival shape of the team's queues, per slot.
    fn team_demand(&self, team: usize, slots: usize) -> Vec<f64> {
        let queues = &self.teams[team].queues;
        let minutes = self.morning_hump.len();
        (0..slots)
            .map(|slot| {
                let from = slot * SLOT_MINUTES;
                let to = ((slot + 1) * SLOT_MINUTES).min(minutes);
                if from >= to || queues.is_empty() {
                    return 0.0;
                }
                let mut sum = 0.0;
                for &queue in queues {
                    let queue = &self.queues[queue as usize];
                    for minute in from..to {
                        sum += self.demand_shape(queue, minute);
                    }
                }
                sum / ((to - from) * queues.len()) as f64
            })
            .collect()
    }

    /// Sizes each queue's arrivals for the staff the schedules plan to have available.
    ///
    /// At the team's busiest time the offered load is `target_occupancy` of its capacity. At
    /// other times the load is what the available staff carries with the same mean wait
    /// (Erlang C): a small evening crew carries proportionally less than a full floor. The
    /// team's demand shape is fitted (least squares) to that load; where the schedule cannot
    /// follow the shape (the last hours, lunches), arrivals are capped at 10% above what the
    /// staff carries, which leaves those periods busy but not hopeless.
    fn size_traffic(&mut self, config: &SimConfig) {
        /// How far above the carried load the arrivals may go where staff is short.
        const SHORT_STAFF_SLACK: f64 = 1.1;
        let slots = usize::try_from(((self.close - self.open).0 + SLOT - 1) / SLOT).unwrap_or(1);
        let mut rates = vec![0.0; self.queues.len()];
        let mut weighted = vec![vec![0.0; slots]; self.queues.len()];
        for team in 0..self.teams.len() {
            let demand = self.team_demand(team, slots);
            let mut available = vec![0.0; slots];
            for &advisor in &self.teams[team].advisors {
                let advisor = &self.advisors[advisor as usize];
                let mut from = advisor.login;
                let mut add = |start: Timestamp, end: Timestamp| {
                    for (slot, value) in available.iter_mut().enumerate() {
                        let slot_start = self.open + Millis(slot as i64 * SLOT);
                        let slot_end = slot_start + Millis(SLOT);
                        let overlap = (end.min(slot_end).0 - start.max(slot_start).0).max(0);
                        *value += f64::from(advisor.capacity) * overlap as f64 / SLOT as f64;
                    }
                };
                for pause in &advisor.pauses {
                    add(from, pause.start);
                    from = pause.start + pause.duration;
                }
                add(from, advisor.shift_end);
            }
            let peak = available.iter().copied().fold(0.0, f64::max);
            let carry = Carry::new(peak, config.target_occupancy);
            let carried: Vec<f64> = available.iter().map(|&n| carry.load(n)).collect();
            let dot: f64 = carried.iter().zip(&demand).map(|(c, d)| c * d).sum();
            let norm: f64 = demand.iter().map(|d| d * d).sum();
            if norm <= 0.0 || dot <= 0.0 {
                continue;
            }
            let scale = dot / norm;
            let queues = &self.teams[team].queues;
            for &queue in queues {
                let params = config.channels.get(self.queues[queue as usize].channel);
                let rate = scale / queues.len() as f64 / expected_handle(params);
                rates[queue as usize] += rate;
                for slot in 0..slots {
                    let fitted = scale * demand[slot];
                    let cap = SHORT_STAFF_SLACK * carried[slot];
                    let factor = if fitted > cap { cap / fitted } else { 1.0 };
                    weighted[queue as usize][slot] += rate * factor;
                }
            }
        }
        for (index, queue) in self.queues.iter_mut().enumerate() {
            queue.rate = rates[index];
            queue.staffing_factor = weighted[index]
                .iter()
                .map(|w| {
                    if rates[index] > 0.0 {
                        w / rates[index]
                    } else {
                        0.0
                    }
                })
                .collect();
        }
        for index in 0..self.queues.len() {
            let peak = (0..self.morning_hump.len())
                .map(|minute| self.shape(&self.queues[index], minute))
                .fold(0.0, f64::max);
            self.queues[index].rate_max = self.queues[index].rate * peak;
        }
    }

    /// The site configuration Vigie needs to supervise this site.
    pub(crate) fn site_config(&self, config: &SimConfig) -> SiteConfig {
        let mut site = SiteConfig::with_defaults(self.id.clone());
        site.name = self.name.clone();
        site.time_zone = self.time_zone.clone();
        site.queues = self
            .queues
            .iter()
            .map(|queue| {
                let params = config.channels.get(queue.channel);
                let mut queue_config = QueueConfig::with_defaults(queue.id.clone());
                queue_config.name = Some(queue.name.clone());
                queue_config.sl_threshold = human(params.sl_threshold);
                queue_config.sl_target = params.sl_target;
                queue_config.short_abandon = human(params.short_abandon);
                // Round the expected AHT to 30 seconds, as a site would write its target.
                let aht = params.talk_mean.0 + params.acw_mean.0;
                queue_config.aht_target = Some(human(Millis((aht + 15_000) / 30_000 * 30_000)));
                queue_config
            })
            .collect();
        site.teams = self
            .teams
            .iter()
            .map(|team| TeamConfig {
                id: team.id.clone(),
                name: Some(team.name.clone()),
                advisors: team
                    .advisors
                    .iter()
                    .map(|&a| self.advisors[a as usize].id.clone())
                    .collect(),
                queues: team
                    .queues
                    .iter()
                    .map(|&q| self.queues[q as usize].id.clone())
                    .collect(),
                sl_variant: None,
            })
            .collect();
        site
    }
}

/// The load a group of advisors carries with the mean wait of the busiest time (Erlang C).
struct Carry {
    /// Load carried by n = 0, 1, 2... advisors (contact capacity, for chat).
    by_size: Vec<f64>,
    occupancy: f64,
}

impl Carry {
    /// For a team whose busiest time has `peak` advisors available, loaded at `occupancy`.
    fn new(peak: f64, occupancy: f64) -> Carry {
        let largest = peak.ceil().max(1.0) as usize;
        let mut by_size = vec![0.0; largest + 2];
        if occupancy < 0.99 {
            let size = (peak.floor() as usize).max(1);
            let wait = erlang_c_wait(size, occupancy * size as f64);
            for (n, load) in by_size.iter_mut().enumerate().skip(1) {
                // The mean wait grows with the load: bisect for the load that matches.
                let (mut low, mut high) = (0.0, n as f64);
                for _ in 0..50 {
                    let middle = (low + high) / 2.0;
                    if erlang_c_wait(n, middle) <= wait {
                        low = middle;
                    } else {
                        high = middle;
                    }
                }
                *load = low;
            }
        }
        Carry { by_size, occupancy }
    }

    /// The load carried by `n` (fractional) available advisors.
    fn load(&self, n: f64) -> f64 {
        if self.occupancy >= 0.99 {
            // Overload on purpose: no steady state to aim for.
            return self.occupancy * n;
        }
        let whole = n.floor().max(0.0) as usize;
        let fraction = n - whole as f64;
        let at = |k: usize| {
            self.by_size
                .get(k)
                .or(self.by_size.last())
                .copied()
                .unwrap_or(0.0)
        };
        at(whole) * (1.0 - fraction) + at(whole + 1) * fraction
    }
}

/// Mean wait of all contacts, in units of the handle time, for `n` advisors offered `load`
/// erlangs (Erlang C; infinite at or above saturation).
fn erlang_c_wait(n: usize, load: f64) -> f64 {
    let servers = n as f64;
    if load >= servers {
        return f64::INFINITY;
    }
    let mut blocking = 1.0;
    for k in 1..=n {
        blocking = load * blocking / (k as f64 + load * blocking);
    }
    let waiting = servers * blocking / (servers - load * (1.0 - blocking));
    waiting / (servers - load)
}

fn human(millis: Millis) -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(
        u64::try_from(millis.0).unwrap_or(0),
    ))
}

/// The expected advisor time one contact of this channel takes, in milliseconds.
pub(crate) fn expected_handle(params: &crate::config::ChannelParams) -> f64 {
    let holds = params.hold_share * 1.25 * params.hold_mean.0 as f64;
    let ringing = (1.0 - params.miss_share) * params.ring_mean.0 as f64
        + params.miss_share * params.ring_timeout.0 as f64;
    (params.talk_mean.0 as f64 + holds + params.acw_mean.0 as f64 + ringing).max(1.0)
}

fn build_queues(config: &SimConfig, rng: &mut ChaCha8Rng) -> Vec<QueueSpec> {
    let mut queues = Vec::with_capacity(config.queues);
    for (channel, count) in channel_counts(config) {
        for _ in 0..count {
            let index = queues.len();
            let campaign = CAMPAIGNS[index % CAMPAIGNS.len()];
            let round = index / CAMPAIGNS.len();
            let (id, name) = if round == 0 {
                (
                    format!("{campaign}-{channel}"),
                    format!("{} ({channel})", title(campaign)),
                )
            } else {
                (
                    format!("{campaign}-{channel}-{}", round + 1),
                    format!("{} {} ({channel})", title(campaign), round + 1),
                )
            };
            queues.push(QueueSpec {
                id,
                name,
                channel,
                base: base_level(channel),
                morning: 0.85 + 0.3 * unit(rng),
                afternoon: 0.65 + 0.3 * unit(rng),
                rate: 0.0,
                rate_max: 0.0,
                staffing_factor: Vec::new(),
                teams: Vec::new(),
                overflow: None,
                callback: None,
                transfer_targets: Vec::new(),
            });
        }
    }
    // Advisors transfer to another queue of the same channel (of the same media group when
    // the channel has a single queue).
    for index in 0..queues.len() {
        let (channel, group) = (queues[index].channel, group_of(queues[index].channel));
        let others = |same: &dyn Fn(&QueueSpec) -> bool| -> Vec<u32> {
            (0..queues.len() as u32)
                .filter(|&other| other as usize != index && same(&queues[other as usize]))
                .collect()
        };
        let mut targets = others(&|queue| queue.channel == channel);
        if targets.is_empty() {
            targets = others(&|queue| group_of(queue.channel) == group);
        }
        queues[index].transfer_targets = targets;
    }
    // Voice queues take turns at the ways out of a queue (voicemail, callback offer, overflow
    // to another queue, timeout), so that a site with four voice queues has each.
    let voice: Vec<usize> = (0..queues.len())
        .filter(|&q| queues[q].channel == Channel::Voice)
        .collect();
    for (turn, &queue) in voice.iter().enumerate() {
        let spec = &mut queues[queue];
        match turn % 4 {
            0 => {
                spec.overflow = Some(Overflow {
                    after: Millis::from_secs(rng.random_range(90..=150)),
                    action: OverflowAction::Dequeue(DequeueReason::Voicemail),
                });
            }
            1 => {
                spec.callback = Some(CallbackOffer {
                    after: Millis::from_secs(rng.random_range(30..=60)),
                    accept_share: 0.3,
                });
            }
            2 => {
                let after = Millis::from_secs(rng.random_range(45..=90));
                let action = if voice.len() > 1 {
                    OverflowAction::Transfer(voice[(turn + 1) % voice.len()] as u32)
                } else {
                    OverflowAction::Dequeue(DequeueReason::Timeout)
                };
                spec.overflow = Some(Overflow { after, action });
            }
            _ => {
                spec.overflow = Some(Overflow {
                    after: Millis::from_secs(rng.random_range(90..=150)),
                    action: OverflowAction::Dequeue(DequeueReason::Timeout),
                });
            }
        }
    }
    queues
}

/// Chooses shift starts (in slots) so that the team's staffing follows its demand.
///
/// The target follows square-root staffing: a load of R advisors needs about R + sqrt(R) of
/// them for a steady service level, so quiet hours need relatively more staff than busy ones.
/// Each advisor in turn takes the start that most reduces the squared shortfall. The first
/// advisor opens and the second closes, so that no queue is left unattended at the ends of the
/// day.
fn staff_greedily(demand: &[f64], lengths: &[usize]) -> Vec<usize> {
    let slots = demand.len();
    let total_slots = lengths.iter().sum::<usize>() as f64;
    let total_demand: f64 = demand.iter().sum();
    let target_for = |scale: f64| -> Vec<f64> {
        demand
            .iter()
            .map(|d| scale * d + (scale * d).sqrt())
            .collect()
    };
    // Scale the target so that it adds up to the shifts to place (bisection: the sum grows
    // with the scale, and reaches the total at total / demand at the latest).
    let (mut low, mut high) = (
        0.0,
        if total_demand > 0.0 {
            total_slots / total_demand
        } else {
            0.0
        },
    );
    for _ in 0..60 {
        let middle = (low + high) / 2.0;
        if target_for(middle).iter().sum::<f64>() < total_slots {
            low = middle;
        } else {
            high = middle;
        }
    }
    let target = target_for(low);
    let mut coverage = vec![0.0; slots];
    let mut starts = Vec::with_capacity(lengths.len());
    for (index, &length) in lengths.iter().enumerate() {
        let latest = slots.saturating_sub(length);
        let start = match index {
            0 => 0,
            1 => latest,
            _ => {
                (0..=latest)
                    .map(|start| {
                        // Reduction of the squared shortfall (target - coverage)^2, halved.
                        let gain: f64 = (start..start + length)
                            .map(|slot| target[slot] - coverage[slot] - 0.5)
                            .sum();
                        (start, gain)
                    })
                    .fold((0, f64::NEG_INFINITY), |best, candidate| {
                        if candidate.1 > best.1 {
                            candidate
                        } else {
                            best
                        }
                    })
                    .0
            }
        };
        for slot in coverage.iter_mut().skip(start).take(length) {
            *slot += 1.0;
        }
        starts.push(start);
    }
    // Then move one shift at a time to its best start given the others, while that helps
    // (the first two keep opening and closing).
    for _ in 0..8 {
        let mut moved = false;
        for index in 2..lengths.len() {
            let (length, current) = (lengths[index], starts[index]);
            for slot in coverage.iter_mut().skip(current).take(length) {
                *slot -= 1.0;
            }
            let latest = slots.saturating_sub(length);
            let gain = |start: usize| -> f64 {
                (start..start + length)
                    .map(|slot| target[slot] - coverage[slot] - 0.5)
                    .sum()
            };
            let mut best = (current, gain(current));
            for start in 0..=latest {
                let candidate = gain(start);
                if candidate > best.1 + 1e-9 {
                    best = (start, candidate);
                }
            }
            if best.0 != current {
                moved = true;
            }
            starts[index] = best.0;
            for slot in coverage.iter_mut().skip(best.0).take(length) {
                *slot += 1.0;
            }
        }
        if !moved {
            break;
        }
    }
    starts
}

/// Two 15-minute breaks, a lunch of 30 to 60 minutes in the middle, and sometimes one more
/// activity, for a shift `[login, end)`. Short shifts get a single break.
fn plan_pauses(
    config: &SimConfig,
    login: Timestamp,
    end: Timestamp,
    rng: &mut ChaCha8Rng,
) -> Vec<PlannedPause> {
    let length = (end - login).0;
    let hours = |h: f64| (h * 3_600_000.0) as i64;
    let jitter = |rng: &mut ChaCha8Rng, minutes: i64| rng.random_range(-minutes..=minutes) * MINUTE;
    let mut pauses = Vec::new();
    let at = |fraction: f64| login + Millis(ms(length as f64 * fraction));
    if length >= hours(5.0) {
        let first = at(0.25) + Millis(jitter(rng, 15));
        pauses.push(PlannedPause {
            start: first,
            duration: Millis::from_mins(15),
            reason: PauseReason::Break,
        });
        let lunch = Millis::from_mins(5 * rng.random_range(6..=12i64));
        pauses.push(PlannedPause {
            start: at(0.5) - Millis(lunch.0 / 2) + Millis(jitter(rng, 20)),
            duration: lunch,
            reason: PauseReason::Lunch,
        });
        pauses.push(PlannedPause {
            start: at(0.78) + Millis(jitter(rng, 15)),
            duration: Millis::from_mins(15),
            reason: PauseReason::Break,
        });
    } else if length >= hours(3.0) {
        pauses.push(PlannedPause {
            start: at(0.5) + Millis(jitter(rng, 15)),
            duration: Millis::from_mins(15),
            reason: PauseReason::Break,
        });
    }
    if unit(rng) < config.extra_pause_share {
        let (reason, duration) = match rng.random_range(0..4) {
            0 => (
                PauseReason::Training,
                Millis::from_mins(rng.random_range(30..=60)),
            ),
            1 => (PauseReason::Meeting, Millis::from_mins(30)),
            2 => (
                PauseReason::Coaching,
                Millis::from_mins(rng.random_range(15..=30)),
            ),
            _ => (
                PauseReason::Admin,
                Millis::from_mins(rng.random_range(10..=20)),
            ),
        };
        // Into a random gap between the planned pauses that leaves 20 minutes on each side.
        let margin = Millis::from_mins(20);
        let mut gaps = Vec::new();
        let mut from = login;
        for pause in &pauses {
            gaps.push((from, pause.start));
            from = pause.start + pause.duration;
        }
        gaps.push((from, end));
        let fitting: Vec<(Timestamp, Timestamp)> = gaps
            .into_iter()
            .filter(|(start, stop)| (*stop - *start).0 >= (duration.0 + 2 * margin.0))
            .collect();
        if !fitting.is_empty() {
            let (start, stop) = fitting[rng.random_range(0..fitting.len())];
            let earliest = start + margin;
            let latest = stop - margin - duration;
            let offset = rng.random_range(0..=(latest - earliest).0 / MINUTE) * MINUTE;
            pauses.push(PlannedPause {
                start: earliest + Millis(offset),
                duration,
                reason,
            });
            pauses.sort_by_key(|pause| pause.start);
        }
    }
    pauses
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn site(config: &SimConfig) -> Site {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        Site::build(config, config.zone().unwrap(), &mut rng)
    }

    #[test]
    fn teams_have_10_to_12_advisors_and_serve_1_to_3_queues_of_one_media() {
        for (advisors, queues) in [(60, 7), (1000, 50), (333, 20)] {
            let config = SimConfig {
                advisors,
                queues,
                ..SimConfig::default()
            };
            let site = site(&config);
            assert_eq!(site.queues.len(), queues);
            assert_eq!(site.advisors.len(), advisors);
            for team in &site.teams {
                assert!((10..=12).contains(&team.advisors.len()), "{team:?}");
                assert!((1..=3).contains(&team.queues.len()), "{team:?}");
                let group = group_of(site.queues[team.queues[0] as usize].channel);
                assert!(
                    team.queues
                        .iter()
                        .all(|&q| group_of(site.queues[q as usize].channel) == group)
                );
            }
            for queue in &site.queues {
                assert!(!queue.teams.is_empty(), "{} has no team", queue.id);
                assert!(queue.rate > 0.0);
            }
            let voice = site
                .queues
                .iter()
                .filter(|q| q.channel == Channel::Voice)
                .count();
            assert!(voice * 2 > queues, "most queues are voice");
            site.site_config(&config).validate("site").unwrap();
        }
    }

    #[test]
    fn shifts_follow_demand_and_cover_the_whole_day() {
        let config = SimConfig::default();
        let site = site(&config);
        for team in &site.teams {
            let advisors: Vec<&AdvisorSpec> = team
                .advisors
                .iter()
                .map(|&a| &site.advisors[a as usize])
                .collect();
            let on_at = |at: Timestamp| {
                advisors
                    .iter()
                    .filter(|a| a.login <= at && at < a.shift_end)
                    .count()
            };
            assert!(on_at(site.open + Millis::from_mins(5)) >= 1);
            assert!(on_at(site.close - Millis::from_mins(5)) >= 1);
            // Mid-morning peak better staffed than the opening.
            assert!(
                on_at(site.open + Millis::from_mins(150)) > on_at(site.open + Millis::from_mins(5))
            );
            for advisor in advisors {
                assert!(advisor.shift_end <= site.close);
                let hours = (advisor.shift_end - advisor.login).0 as f64 / 3_600_000.0;
                assert!((6.9..=8.1).contains(&hours), "{hours}");
                assert_eq!(
                    advisor
                        .pauses
                        .iter()
                        .filter(|p| p.reason == PauseReason::Lunch)
                        .count(),
                    1
                );
                for pair in advisor.pauses.windows(2) {
                    assert!(
                        pair[0].start + pair[0].duration <= pair[1].start,
                        "{pair:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_absent_share_changes_nothing_but_who_comes_in() {
        let base = site(&SimConfig::default());
        let cut = site(&SimConfig {
            absent_share: 1.0 / 3.0,
            ..SimConfig::default()
        });
        assert_eq!(cut.advisors.iter().filter(|a| a.absent).count(), 20);
        for (a, b) in base.queues.iter().zip(&cut.queues) {
            assert_eq!(a.rate, b.rate);
        }
        for (a, b) in base.advisors.iter().zip(&cut.advisors) {
            assert_eq!((a.login, &a.id), (b.login, &b.id));
        }
    }

    #[test]
    fn erlang_c_matches_a_textbook_value() {
        // 10 agents, 8 erlangs: probability of waiting 40.9%, mean wait 0.204 handle times.
        let wait = erlang_c_wait(10, 8.0);
        assert!((wait - 0.409 / 2.0).abs() < 0.001, "{wait}");
        let carry = Carry::new(12.0, 0.85);
        assert!((carry.load(12.0) - 10.2).abs() < 1e-6);
        // Two advisors carry far less than 85% at the same mean wait.
        assert!(carry.load(2.0) < 0.6 * 2.0, "{}", carry.load(2.0));
        assert!(carry.load(2.5) > carry.load(2.0) && carry.load(2.5) < carry.load(3.0));
    }

    #[test]
    fn the_arrival_profile_has_two_humps() {
        let site = site(&SimConfig::default());
        let queue = &site.queues[0];
        let at = |hours: f64| site.demand_shape(queue, ((hours - 8.0) * 60.0) as usize);
        assert!(at(10.5) > 2.0 * at(8.0));
        assert!(at(14.5) > 2.0 * at(19.9));
        assert!(at(12.5) < at(10.5) && at(12.5) < at(14.5));
    }
}
