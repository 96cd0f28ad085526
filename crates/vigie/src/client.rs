//! The command-line client of the gRPC API (`vigie.v1.Supervision`): `vigie sites`, `teams`,
//! `queues`, `advisors` list what the caller may read; `vigie site`, `team`, `queue`, `advisor`
//! read one view; `vigie watch team|queue|site` follows one live; `vigie alerts` lists, follows,
//! acknowledges and silences alerts ([`alerts`]); `vigie notice` posts, lists, follows and
//! withdraws wallboard notices ([`notices`]); `vigie history`, `vigie timesheet`,
//! `vigie report` and `vigie abandoned` read the interval history ([`history`]).
//!
//! A thin shell over the generated client: it connects, authenticates with a bearer token,
//! picks the site, calls, and prints the answer as a table ([`table`]) or as canonical proto3
//! JSON ([`json`]). Every failure of the server is turned into a sentence that says what to
//! do ([`status_error`]).

pub mod alerts;
pub mod history;
pub mod json;
pub mod notices;
pub mod table;

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use vigie_proto::v1 as pb;
use vigie_proto::v1::supervision_client::SupervisionClient;

use self::json::ProtoName;

/// The server when neither --server nor `VIGIE_SERVER` is given: `vigie serve`'s default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a one-shot call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings on an idle connection, so that a watch over a dead connection ends with an
/// error instead of waiting forever.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The client subcommands, flattened into `vigie`'s.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List the sites you may read, from the gRPC API of a running `vigie serve`.
    Sites(SitesArgs),
    /// List the teams of the site you may read.
    Teams(ListArgs),
    /// List the queues of the site you may read, with their targets.
    Queues(ListArgs),
    /// List the advisors of the site (or of one team) you may read, with their live state.
    Advisors(AdvisorsArgs),
    /// Show the whole site over a window: totals, every queue and every team (managers and
    /// admins).
    Site(SiteArgs),
    /// Show a team over a window: its indicators and its advisor grid.
    Team(TeamArgs),
    /// Show a queue over a window: its indicators against its targets, per channel.
    Queue(QueueArgs),
    /// Show one advisor over a window: live state, handling, time and pauses.
    Advisor(AdvisorArgs),
    /// Follow a team, a queue or the site live, redrawn in place at every update.
    ///
    /// Ends on Ctrl-C or when the server ends the stream; a lost connection ends with an error.
    #[command(subcommand)]
    Watch(WatchCommand),
    /// Threshold alerts of the site: list, follow live, acknowledge, silence.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Notices on team wallboards: post one to a team or to every team, list or follow those
    /// in force, withdraw one.
    ///
    /// `vigie notice TEAM "TEXT" [--for 2h] [--important]` posts a notice to TEAM's wallboard
    /// (shown 4h unless --for says otherwise, 1m to 7d); `--all-teams "TEXT"` to every team of
    /// the site. `--list [TEAM]` prints the notices in force, `--watch [TEAM]` follows them,
    /// `--withdraw ID` takes one off.
    #[command(after_help = notices::EXAMPLES)]
    Notice(notices::NoticeArgs),
    /// A queue's, team's, advisor's or the site's figures over past periods (15m, 30m, 1h or
    /// day), today's up to now.
    ///
    /// Ratios of each period are recomputed from its counts. As a table, CSV or JSON.
    #[command(after_help = history::HISTORY_EXAMPLES)]
    History(history::HistoryArgs),
    /// Advisors' timesheets (hours logged in, available, handling, pauses per reason), one row
    /// per advisor and day, as the CSV file HR imports, JSON or a table.
    #[command(after_help = history::TIMESHEET_EXAMPLES)]
    Timesheet(history::TimesheetArgs),
    /// A team's end-of-shift report of a day: key figures against targets, charts per
    /// interval, the advisors' day, the alerts and the notices; HTML, Markdown or CSV.
    #[command(after_help = history::REPORT_EXAMPLES)]
    Report(history::ReportArgs),
    /// The contacts that hung up while waiting in a queue, one by one: when, which queue and
    /// channel, how long they waited, and their opaque contact id, to call them back.
    ///
    /// As a table, CSV (the call-back list) or JSON; today's so far, or earlier days.
    #[command(after_help = history::abandoned::ABANDONED_EXAMPLES)]
    Abandoned(history::abandoned::AbandonedArgs),
}

/// What `vigie watch` follows.
#[derive(Subcommand, Debug)]
pub enum WatchCommand {
    /// Follow a team: its indicators and its advisor grid.
    Team(TeamArgs),
    /// Follow a queue: its indicators against its targets.
    Queue(QueueArgs),
    /// Follow the whole site: totals, queues and teams (managers and admins).
    Site(SiteArgs),
}

/// How the answer is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for a person.
    Table,
    /// The canonical proto3 JSON mapping, as grpcurl prints it (one line per update when
    /// watching).
    Json,
}

/// The period the indicators are computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WindowArg {
    /// Since the start of the site-local day.
    Today,
    /// The trailing 15 minutes.
    #[value(name = "15m")]
    Last15m,
    /// The trailing 30 minutes.
    #[value(name = "30m")]
    Last30m,
    /// The trailing 60 minutes.
    #[value(name = "60m")]
    Last60m,
}

impl From<WindowArg> for pb::Window {
    fn from(window: WindowArg) -> pb::Window {
        match window {
            WindowArg::Today => pb::Window::Today,
            WindowArg::Last15m => pb::Window::Window15m,
            WindowArg::Last30m => pb::Window::Window30m,
            WindowArg::Last60m => pb::Window::Window60m,
        }
    }
}

/// A bearer token: its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

fn parse_token(text: &str) -> Result<Token, String> {
    if text.trim().is_empty() {
        return Err("the token is empty".to_owned());
    }
    Ok(Token(text.trim().to_owned()))
}

/// Where the API is, who is calling, which site, and how to print: the flags of every client
/// subcommand.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// URL of the Vigie gRPC API (`vigie serve --grpc-listen`): http://HOST:PORT, or
    /// https://HOST:PORT for a server with TLS.
    #[arg(long, value_name = "URL", env = "VIGIE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token sent with every call (`authorization: Bearer <token>`). Not needed by the
    /// demo without authentication. Never printed.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "VIGIE_TOKEN",
        hide_env_values = true,
        value_parser = parse_token
    )]
    pub token: Option<Token>,
    /// Site id. Default: the only site the server lists for you; required when it lists
    /// several.
    #[arg(long, value_name = "ID", env = "VIGIE_SITE")]
    pub site: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// PEM file of the certificate authority that signed the server's certificate, for an
    /// https:// server with a private CA (default: the system's trusted roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// Arguments of `vigie sites`.
#[derive(Args, Debug)]
pub struct SitesArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie teams` and `vigie queues`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie advisors`.
#[derive(Args, Debug)]
pub struct AdvisorsArgs {
    /// Only the advisors of this team (a team id, as `vigie teams` lists them).
    #[arg(long, value_name = "ID")]
    pub team: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie site` and `vigie watch site`.
#[derive(Args, Debug)]
pub struct SiteArgs {
    /// Window of the indicators.
    #[arg(long, value_enum, default_value = "today")]
    pub window: WindowArg,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie team` and `vigie watch team`.
#[derive(Args, Debug)]
pub struct TeamArgs {
    /// Team id, as `vigie teams` lists them.
    #[arg(value_name = "TEAM")]
    pub team: String,
    /// Window of the indicators.
    #[arg(long, value_enum, default_value = "today")]
    pub window: WindowArg,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie queue` and `vigie watch queue`.
#[derive(Args, Debug)]
pub struct QueueArgs {
    /// Queue id, as `vigie queues` lists them.
    #[arg(value_name = "QUEUE")]
    pub queue: String,
    /// Window of the indicators.
    #[arg(long, value_enum, default_value = "today")]
    pub window: WindowArg,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie advisor`.
#[derive(Args, Debug)]
pub struct AdvisorArgs {
    /// Advisor id, as `vigie advisors` lists them.
    #[arg(value_name = "ADVISOR")]
    pub advisor: String,
    /// Window of the indicators.
    #[arg(long, value_enum, default_value = "today")]
    pub window: WindowArg,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a client subcommand to its end.
pub fn run(command: &ClientCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(dispatch(command))
}

async fn dispatch(command: &ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Sites(args) => {
            let api = Api::connect(&args.api).await?;
            let sites = api.sites().await?;
            print(args.api.format, &sites, table::sites)
        }
        ClientCommand::Teams(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let request = pb::ListTeamsRequest { site: site.id };
            let what = format!("the teams of site `{}`", request.site);
            let mut client = api.client.clone();
            let teams = api.unary(&what, client.list_teams(request)).await?;
            print(args.api.format, &teams, table::teams)
        }
        ClientCommand::Queues(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let request = pb::ListQueuesRequest { site: site.id };
            let what = format!("the queues of site `{}`", request.site);
            let mut client = api.client.clone();
            let queues = api.unary(&what, client.list_queues(request)).await?;
            print(args.api.format, &queues, table::queues)
        }
        ClientCommand::Advisors(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = match &args.team {
                Some(team) => format!("the advisors of team `{team}` of site `{}`", site.id),
                None => format!("the advisors of site `{}`", site.id),
            };
            let request = pb::ListAdvisorsRequest {
                site: site.id,
                team: args.team.clone(),
            };
            let mut client = api.client.clone();
            let advisors = api.unary(&what, client.list_advisors(request)).await?;
            print(args.api.format, &advisors, table::advisors)
        }
        ClientCommand::Site(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("site `{}`", site.id);
            let request = pb::GetSiteViewRequest {
                site: site.id,
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let view = api.unary(&what, client.get_site_view(request)).await?;
            print(args.api.format, &view, |view| {
                table::site_view(view, site.time_zone)
            })
        }
        ClientCommand::Team(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("team `{}` of site `{}`", args.team, site.id);
            let request = pb::GetTeamViewRequest {
                site: site.id,
                team: args.team.clone(),
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let view = api.unary(&what, client.get_team_view(request)).await?;
            print(args.api.format, &view, |view| {
                table::team_view(view, site.time_zone)
            })
        }
        ClientCommand::Queue(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("queue `{}` of site `{}`", args.queue, site.id);
            let request = pb::GetQueueViewRequest {
                site: site.id,
                queue: args.queue.clone(),
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let view = api.unary(&what, client.get_queue_view(request)).await?;
            print(args.api.format, &view, |view| {
                table::queue_view(view, site.time_zone)
            })
        }
        ClientCommand::Advisor(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("advisor `{}` of site `{}`", args.advisor, site.id);
            let request = pb::GetAdvisorViewRequest {
                site: site.id,
                advisor: args.advisor.clone(),
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let view = api.unary(&what, client.get_advisor_view(request)).await?;
            print(args.api.format, &view, |view| {
                table::advisor_view(view, site.time_zone)
            })
        }
        ClientCommand::Watch(WatchCommand::Team(args)) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("team `{}` of site `{}`", args.team, site.id);
            let request = pb::WatchTeamRequest {
                site: site.id,
                team: args.team.clone(),
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let stream = api.open(&what, client.watch_team(request)).await?;
            let zone = site.time_zone;
            api.follow(stream, args.api.format, |update: &pb::TeamUpdate| {
                update
                    .view
                    .as_ref()
                    .map(|view| table::team_view(view, zone))
            })
            .await
        }
        ClientCommand::Watch(WatchCommand::Queue(args)) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("queue `{}` of site `{}`", args.queue, site.id);
            let request = pb::WatchQueueRequest {
                site: site.id,
                queue: args.queue.clone(),
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let stream = api.open(&what, client.watch_queue(request)).await?;
            let zone = site.time_zone;
            api.follow(stream, args.api.format, |update: &pb::QueueUpdate| {
                update
                    .view
                    .as_ref()
                    .map(|view| table::queue_view(view, zone))
            })
            .await
        }
        ClientCommand::Alerts(command) => alerts::run(command).await,
        ClientCommand::Notice(args) => notices::run(args).await,
        ClientCommand::History(args) => history::run_history(args).await,
        ClientCommand::Timesheet(args) => history::run_timesheet(args).await,
        ClientCommand::Report(args) => history::run_report(args).await,
        ClientCommand::Abandoned(args) => history::abandoned::run_abandoned(args).await,
        ClientCommand::Watch(WatchCommand::Site(args)) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("site `{}`", site.id);
            let request = pb::WatchSiteRequest {
                site: site.id,
                window: pb::Window::from(args.window) as i32,
            };
            let mut client = api.client.clone();
            let stream = api.open(&what, client.watch_site(request)).await?;
            let zone = site.time_zone;
            api.follow(stream, args.api.format, |update: &pb::SiteUpdate| {
                update
                    .view
                    .as_ref()
                    .map(|view| table::site_view(view, zone))
            })
            .await
        }
    }
}

/// Prints one answer as a table or as pretty JSON.
fn print<M: ProtoName>(
    format: Format,
    message: &M,
    render: impl FnOnce(&M) -> String,
) -> anyhow::Result<()> {
    let text = match format {
        Format::Table => render(message),
        Format::Json => json::to_json(message, true)? + "\n",
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    /// The header value for `token` (none without a token), marked sensitive so that it is
    /// never logged.
    pub fn new(token: Option<&Token>) -> anyhow::Result<Bearer> {
        let Some(Token(token)) = token else {
            return Ok(Bearer(None));
        };
        let mut value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            anyhow!("the token (--token or VIGIE_TOKEN) holds characters a header cannot carry")
        })?;
        value.set_sensitive(true);
        Ok(Bearer(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Client = SupervisionClient<InterceptedService<Channel, Bearer>>;

/// The site a command is about, with its time zone when the server told it.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteChoice {
    /// Site id.
    pub id: String,
    /// Its time zone, for showing instants in local time.
    pub time_zone: Option<Tz>,
}

/// The site to use: the one asked for, else the only one listed.
pub fn choose_site(asked: Option<&str>, sites: &[pb::SiteSummary]) -> anyhow::Result<SiteChoice> {
    let zone_of = |site: &pb::SiteSummary| site.time_zone.parse::<Tz>().ok();
    if let Some(asked) = asked {
        // A site missing from the list is left to the server to judge (NOT_FOUND or
        // PERMISSION_DENIED); only its time zone is unknown.
        let time_zone = sites.iter().find(|s| s.site == asked).and_then(zone_of);
        return Ok(SiteChoice {
            id: asked.to_owned(),
            time_zone,
        });
    }
    match sites {
        [site] => Ok(SiteChoice {
            id: site.site.clone(),
            time_zone: zone_of(site),
        }),
        [] => bail!("the server lists no site you may read"),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|site| match &site.name {
                    Some(name) => format!("{} ({name})", site.site),
                    None => site.site.clone(),
                })
                .collect();
            bail!(
                "the server lists {} sites: pass --site or set VIGIE_SITE to one of: {}",
                several.len(),
                names.join(", ")
            )
        }
    }
}

/// A sentence for a call that failed: what went wrong and what to do about it. `what` names
/// the target (`team \`t1\` of site \`paris\``).
pub fn status_error(status: &Status, server: &str, what: &str) -> anyhow::Error {
    let message = status.message();
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    };
    match status.code() {
        Code::Unauthenticated => {
            anyhow!("the server requires a valid token: pass --token or set VIGIE_TOKEN{detail}")
        }
        Code::PermissionDenied => {
            anyhow!("permission denied: your token does not give access to {what}{detail}")
        }
        Code::NotFound => anyhow!("not found: {what}{detail}"),
        Code::Unavailable => {
            anyhow!("cannot reach the Vigie API at {server}: is `vigie serve` running?{detail}")
        }
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            anyhow!("the server refused the request for {what}{detail}")
        }
        // Too many streams open, or a limit of what is asked (20 notices for a team).
        Code::ResourceExhausted => {
            anyhow!("the server at {server} refused {what}: a limit is reached{detail}")
        }
        Code::DeadlineExceeded => {
            anyhow!("the Vigie API at {server} did not answer in time{detail}")
        }
        Code::Unimplemented => anyhow!(
            "the server at {server} does not serve the Vigie supervision API (vigie.v1.Supervision){detail}"
        ),
        // What a plain-text client gets from a TLS server: the HTTP/2 exchange fails.
        Code::Unknown | Code::Internal
            if !server.starts_with("https://")
                && (message.contains("transport error") || message.contains("h2 protocol")) =>
        {
            anyhow!(
                "the Vigie API at {server} failed{detail}: if the server uses TLS, use an \
                 https:// URL"
            )
        }
        code => anyhow!("the Vigie API at {server} failed: {code:?}{detail}"),
    }
}

/// The endpoint for `--server`: a URL without a scheme is taken as http://.
pub fn endpoint(server: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Endpoint> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let endpoint = Endpoint::from_shared(url).with_context(|| {
        format!("--server {server}: not a URL (expected http://HOST:PORT or https://HOST:PORT)")
    })?;
    let endpoint = match endpoint.uri().scheme_str() {
        Some("http") => {
            if ca_file.is_some() {
                bail!("--ca-file is for an https:// server; --server is {server}");
            }
            endpoint
        }
        Some("https") => {
            let tls = match ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).with_context(|| {
                        format!("cannot read the CA certificate {}", path.display())
                    })?;
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                }
                None => ClientTlsConfig::new().with_native_roots(),
            };
            endpoint
                .tls_config(tls)
                .with_context(|| format!("cannot set up TLS for {server}"))?
        }
        _ => bail!("--server {server}: the URL must start with http:// or https://"),
    };
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true))
}

/// A connection to the API.
struct Api {
    client: Client,
    alerts: alerts::Client,
    notices: notices::Client,
    history: history::Client,
    server: String,
}

impl Api {
    async fn connect(args: &ApiArgs) -> anyhow::Result<Api> {
        let bearer = Bearer::new(args.token.as_ref())?;
        let endpoint = endpoint(&args.server, args.ca_file.as_deref())?;
        let channel = endpoint.connect().await.map_err(|error| {
            // The innermost cause says it best ("Connection refused", a TLS alert...); the
            // layers above it repeat "transport error" and "tcp connect error".
            let mut cause: &dyn std::error::Error = &error;
            while let Some(source) = cause.source() {
                cause = source;
            }
            if cause.to_string().contains("certificate") {
                anyhow!(
                    "cannot verify the certificate of {} ({cause}): pass --ca-file with the \
                     certificate authority that signed it",
                    args.server
                )
            } else {
                anyhow!(
                    "cannot reach the Vigie API at {}: is `vigie serve` running? ({cause})",
                    args.server
                )
            }
        })?;
        Ok(Api {
            alerts: alerts::client(channel.clone(), bearer.clone()),
            notices: notices::client(channel.clone(), bearer.clone()),
            history: history::client(channel.clone(), bearer.clone()),
            client: SupervisionClient::with_interceptor(channel, bearer),
            server: args.server.clone(),
        })
    }

    /// A connection, and the site the command is about.
    async fn for_site(args: &ApiArgs) -> anyhow::Result<(Api, SiteChoice)> {
        let api = Api::connect(args).await?;
        let site = api.site(args).await?;
        Ok((api, site))
    }

    /// Waits for a one-shot call, at most `CALL_TIMEOUT`.
    async fn unary<R>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<R>, Status>>,
    ) -> anyhow::Result<R> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => bail!(
                "the Vigie API at {} did not answer within {}s",
                self.server,
                CALL_TIMEOUT.as_secs()
            ),
            Ok(Err(status)) => Err(status_error(&status, &self.server, what)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Waits for a stream to open, at most `CALL_TIMEOUT`.
    async fn open<R>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<tonic::Streaming<R>>, Status>>,
    ) -> anyhow::Result<tonic::Streaming<R>> {
        self.unary(what, call).await
    }

    async fn sites(&self) -> anyhow::Result<pb::ListSitesResponse> {
        let mut client = self.client.clone();
        self.unary("the sites", client.list_sites(pb::ListSitesRequest {}))
            .await
    }

    /// The site of the command: `--site` (with its time zone when the server lists it), else
    /// the only site the server lists.
    async fn site(&self, args: &ApiArgs) -> anyhow::Result<SiteChoice> {
        match (&args.site, self.sites().await) {
            (_, Ok(listed)) => choose_site(args.site.as_deref(), &listed.sites),
            // The list serves only the time zone then; the call itself will tell what is wrong.
            (Some(site), Err(_)) => Ok(SiteChoice {
                id: site.clone(),
                time_zone: None,
            }),
            (None, Err(error)) => Err(error.context("cannot choose a site (or pass --site)")),
        }
    }

    /// Prints every update of `stream` until Ctrl-C or its end.
    async fn follow<U: ProtoName>(
        &self,
        mut stream: tonic::Streaming<U>,
        format: Format,
        render: impl Fn(&U) -> Option<String>,
    ) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        let mut screen = Screen::new(stdout.is_terminal());
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = tokio::signal::ctrl_c() => {
                    screen.finish(&mut stdout.lock())?;
                    return Ok(());
                }
            };
            match message {
                Ok(Some(update)) => {
                    let mut out = stdout.lock();
                    match format {
                        Format::Json => {
                            writeln!(out, "{}", json::to_json(&update, false)?)?;
                        }
                        Format::Table => {
                            let text = render(&update)
                                .unwrap_or_else(|| "INCOMPLETE: an update without a view\n".into());
                            screen.draw(&mut out, &text)?;
                        }
                    }
                    out.flush()?;
                }
                Ok(None) => {
                    screen.finish(&mut stdout.lock())?;
                    eprintln!("vigie: the server ended the stream");
                    return Ok(());
                }
                Err(status) => {
                    screen.finish(&mut stdout.lock())?;
                    return Err(stream_error(&status, &self.server));
                }
            }
        }
    }
}

/// A stream that broke off after it opened: the connection was lost or the server stopped.
fn stream_error(status: &Status, server: &str) -> anyhow::Error {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => status_error(status, server, "the view"),
        code => anyhow!(
            "lost the live view from the Vigie API at {server}: {} ({code:?})",
            if status.message().is_empty() {
                "the stream broke off"
            } else {
                status.message()
            }
        ),
    }
}

/// Where updates are drawn: redrawn in place on a terminal, appended block after block
/// elsewhere.
#[derive(Debug)]
pub struct Screen {
    terminal: bool,
    drawn: bool,
}

/// The line after every block of a non-terminal output.
pub const SEPARATOR: &str = "----";

impl Screen {
    /// A screen over a terminal (ANSI redraw) or not (blocks separated by [`SEPARATOR`]).
    pub fn new(terminal: bool) -> Screen {
        Screen {
            terminal,
            drawn: false,
        }
    }

    /// Draws one update.
    pub fn draw(&mut self, out: &mut impl Write, text: &str) -> std::io::Result<()> {
        if self.terminal {
            // Clear once, then overwrite in place: cursor home, every line cleared to its end,
            // and what is left below the new block cleared, so that the board does not flicker.
            if !self.drawn {
                out.write_all(b"\x1b[2J")?;
            }
            out.write_all(b"\x1b[H")?;
            for line in text.lines() {
                writeln!(out, "{line}\x1b[K")?;
            }
            out.write_all(b"\x1b[J")?;
        } else {
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            writeln!(out, "{SEPARATOR}")?;
        }
        self.drawn = true;
        Ok(())
    }

    /// Leaves the screen ready for the shell.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn site(id: &str, name: Option<&str>, zone: &str) -> pb::SiteSummary {
        pb::SiteSummary {
            site: id.to_owned(),
            name: name.map(str::to_owned),
            time_zone: zone.to_owned(),
            complete: true,
        }
    }

    #[test]
    fn the_only_site_is_chosen_with_its_time_zone() {
        let choice = choose_site(None, &[site("paris", None, "Europe/Paris")]).unwrap();
        assert_eq!(choice.id, "paris");
        assert_eq!(choice.time_zone, Some(chrono_tz::Europe::Paris));
    }

    #[test]
    fn several_sites_need_a_choice_and_are_listed() {
        let sites = [
            site("lyon", Some("Lyon"), "Europe/Paris"),
            site("quebec", None, "America/Toronto"),
        ];
        let error = choose_site(None, &sites).unwrap_err().to_string();
        assert_eq!(
            error,
            "the server lists 2 sites: pass --site or set VIGIE_SITE to one of: lyon (Lyon), quebec"
        );
        let choice = choose_site(Some("quebec"), &sites).unwrap();
        assert_eq!(choice.time_zone, Some(chrono_tz::America::Toronto));
        // A site the list does not hold is the server's to refuse; its time is shown in UTC.
        let choice = choose_site(Some("nowhere"), &sites).unwrap();
        assert_eq!((choice.id.as_str(), choice.time_zone), ("nowhere", None));
        assert!(
            choose_site(None, &[])
                .unwrap_err()
                .to_string()
                .contains("no site")
        );
        // A time zone the client does not know falls back to UTC.
        let choice = choose_site(None, &[site("x", None, "Mars/Olympus")]).unwrap();
        assert_eq!(choice.time_zone, None);
    }

    #[test]
    fn statuses_become_sentences_that_say_what_to_do() {
        let server = "http://127.0.0.1:50051";
        let what = "team `t9` of site `paris`";
        let error = |status: Status| status_error(&status, server, what).to_string();
        assert_eq!(
            error(Status::unauthenticated("")),
            "the server requires a valid token: pass --token or set VIGIE_TOKEN"
        );
        assert_eq!(
            error(Status::unauthenticated("expired token")),
            "the server requires a valid token: pass --token or set VIGIE_TOKEN (expired token)"
        );
        assert_eq!(
            error(Status::permission_denied("")),
            "permission denied: your token does not give access to team `t9` of site `paris`"
        );
        assert_eq!(
            error(Status::not_found("no team t9")),
            "not found: team `t9` of site `paris` (no team t9)"
        );
        assert_eq!(
            error(Status::unavailable("tcp connect error")),
            "cannot reach the Vigie API at http://127.0.0.1:50051: is `vigie serve` running? (tcp connect error)"
        );
        assert!(error(Status::unimplemented("")).contains("does not serve the Vigie"));
        assert_eq!(
            error(Status::resource_exhausted("too many open streams")),
            "the server at http://127.0.0.1:50051 refused team `t9` of site `paris`: a limit is \
             reached (too many open streams)"
        );
        assert_eq!(
            error(Status::internal("boom")),
            "the Vigie API at http://127.0.0.1:50051 failed: Internal (boom)"
        );
        assert!(error(Status::unknown("transport error")).ends_with("use an https:// URL"));
        assert!(
            stream_error(&Status::unknown("h2 protocol error"), server)
                .to_string()
                .starts_with("lost the live view from the Vigie API at http://127.0.0.1:50051")
        );
    }

    #[test]
    fn the_token_is_sent_as_a_bearer_and_never_shown() {
        let token = parse_token(" s3cr3t\n").unwrap();
        assert!(!format!("{token:?}").contains("s3cr3t"));
        let mut bearer = Bearer::new(Some(&token)).unwrap();
        assert!(!format!("{bearer:?}").contains("s3cr3t"));
        let request = bearer.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cr3t"
        );
        let request = Bearer::new(None)
            .unwrap()
            .call(tonic::Request::new(()))
            .unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(parse_token("  ").is_err());
        assert!(Bearer::new(Some(&Token("a\nb".to_owned()))).is_err());
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            endpoint("127.0.0.1:50051", None).unwrap().uri().to_string(),
            "http://127.0.0.1:50051/"
        );
        assert!(endpoint("https://vigie.example:443", None).is_ok());
        let error = endpoint("http://127.0.0.1:1", Some(std::path::Path::new("ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--ca-file is for an https:// server"),
            "{error}"
        );
        let error = endpoint("ftp://x", None).unwrap_err().to_string();
        assert!(error.contains("http:// or https://"), "{error}");
    }

    #[test]
    fn blocks_are_separated_off_a_terminal_and_redrawn_in_place_on_one() {
        let mut out = Vec::new();
        let mut screen = Screen::new(false);
        screen.draw(&mut out, "one\n").unwrap();
        screen.draw(&mut out, "two").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "one\n----\ntwo\n----\n");

        let mut out = Vec::new();
        let mut screen = Screen::new(true);
        screen.draw(&mut out, "one\n").unwrap();
        screen.draw(&mut out, "two\n").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\x1b[2J\x1b[Hone\x1b[K\n\x1b[J\x1b[Htwo\x1b[K\n\x1b[J"
        );
    }
}
