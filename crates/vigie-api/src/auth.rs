//! Who is calling (authentication by bearer token) and what they may read (authorization by
//! role and scope).
//!
//! Every call carries `authorization: Bearer <token>`. Two sources of tokens, configured in
//! `[api.auth]` ([`AuthConfig`]) and usable together:
//!
//! - a **tokens file**: opaque tokens made by `vigie token new`; the file holds only the
//!   SHA-256 of each token, so reading it does not let anyone call the API;
//! - **JWTs** from an identity provider, signed with HS256 (a shared secret read from a file)
//!   or RS256 (a PEM public key file). The issuer and the audience must match the
//!   configuration, `exp` is enforced with a small leeway for clock skew (30s by default) and
//!   `nbf` when present.
//!
//! A token with exactly two dots is treated as a JWT when JWTs are configured; any other token
//! is looked up by the hash of what was presented. Tokens of the tokens file (`vgt_` and 64
//! hexadecimal digits) never contain a dot.
//!
//! # Roles and scope
//!
//! | Role | Scope fields | May read |
//! |---|---|---|
//! | `advisor` | exactly one site, `advisor` set, no teams | their own advisor view |
//! | `supervisor` | at least one site and one team, no `advisor` | their teams, the advisors of those teams, the queues of their teams' campaigns |
//! | `manager` | at least one site, no teams, no `advisor` | everything of their sites |
//! | `admin` | none (everything) | everything, and the Admin service |
//!
//! A supervisor's `teams` are team ids within each of their `sites`: `sites = ["paris",
//! "lyon"]` with `teams = ["team-a"]` covers `team-a` at Paris and `team-a` at Lyon (give
//! two tokens if only one of them is meant). Site and team ids compare exactly (case
//! included). Contact ids are shown to supervisors, managers and admins, never to advisors.
//! Listing a site's existence is allowed to anyone whose scope touches it.
//!
//! A missing or invalid token is refused with `UNAUTHENTICATED` and a short reason; a request
//! outside the caller's scope with `PERMISSION_DENIED` ([`permission_denied`]), the same
//! whether the target exists or not.
//!
//! # Tokens file
//!
//! TOML, one `[[token]]` block per token, as printed by `vigie token new`:
//!
//! ```toml
//! [[token]]
//! sha256 = "<64 hex digits: the SHA-256 of the token, `vigie token hash`>"
//! subject = "alice"          # who, for logs and audit
//! role = "supervisor"        # advisor, supervisor, manager or admin
//! sites = ["paris"]
//! teams = ["team-a", "team-b"]
//! # advisor = "a042"         # role advisor: their advisor id
//! ```
//!
//! Every entry is checked at start-up (hash shape, duplicate hashes, role, scope rules above),
//! and every problem is reported at once with the entry's number and line.
//!
//! # JWT claims
//!
//! `sub` (the subject), `exp`, `iss`, `aud` (all four required), `nbf` (optional), and `role`
//! (required), `sites` (array of strings), `teams` (array of strings), `advisor` (string),
//! following the same scope rules as the tokens file.
//!
//! Secrets, tokens and hashes never appear in logs, errors or `Debug` output.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vigie_core::config::{ConfigErrors, HumanDuration};

/// Longest accepted token, in bytes: far above any real JWT, and it bounds the work spent on
/// garbage.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest accepted HS256 secret (RFC 7518 section 3.2: at least the size of the hash).
const MIN_HS256_SECRET_BYTES: usize = 32;
/// Largest accepted JWT leeway: a clock further off than this should be fixed, not tolerated.
const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
/// Prefix of the tokens made by [`generate_token`].
const TOKEN_PREFIX: &str = "vgt_";

/// `[api.auth]` of `vigie.toml`: where bearer tokens are checked. The default configures no
/// source, which leaves the API open (allowed only on a loopback address).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens file (TOML, `[[token]]` entries with the SHA-256 of each token, its subject,
    /// role and scope), written with the help of `vigie token new`. Read once at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// JWTs from an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
}

/// `[api.auth.jwt]`: how JWTs are verified. At least one of the two key files is required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// File holding the HS256 shared secret (at least 32 bytes; trailing whitespace and line
    /// ends are ignored). Keep it readable by the service only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM file holding the RSA public key of RS256 tokens (`-----BEGIN PUBLIC KEY-----` or
    /// `-----BEGIN RSA PUBLIC KEY-----`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rs256_public_key_file: Option<PathBuf>,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim (a token's `aud`, string or array, must contain it).
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, at most 5m.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
}

fn default_leeway() -> HumanDuration {
    HumanDuration::secs(30)
}

impl AuthConfig {
    /// Whether any source of tokens is configured.
    pub fn is_enabled(&self) -> bool {
        self.tokens_file.is_some() || self.jwt.is_some()
    }

    /// Checks the settings (not the files, read by [`Authenticator::from_config`]); `path`
    /// prefixes the field names in messages.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if let Some(file) = &self.tokens_file
            && file.as_os_str().is_empty()
        {
            problems.push(format!("{path}.tokens_file: must not be empty"));
        }
        if let Some(jwt) = &self.jwt {
            let path = format!("{path}.jwt");
            if jwt.hs256_secret_file.is_none() && jwt.rs256_public_key_file.is_none() {
                problems.push(format!(
                    "{path}: set hs256_secret_file, rs256_public_key_file or both"
                ));
            }
            for (field, file) in [
                ("hs256_secret_file", &jwt.hs256_secret_file),
                ("rs256_public_key_file", &jwt.rs256_public_key_file),
            ] {
                if file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
                    problems.push(format!("{path}.{field}: must not be empty"));
                }
            }
            if jwt.issuer.trim().is_empty() {
                problems.push(format!("{path}.issuer: must not be empty"));
            }
            if jwt.audience.trim().is_empty() {
                problems.push(format!("{path}.audience: must not be empty"));
            }
            if jwt.leeway.0 > MAX_LEEWAY {
                problems.push(format!(
                    "{path}.leeway: must be at most 5m, found {}",
                    jwt.leeway
                ));
            }
        }
        ConfigErrors(problems).into_result()
    }
}

/// What a caller may see, from the narrowest to the widest. Written in lowercase in tokens
/// files and claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Their own advisor view.
    Advisor,
    /// Their teams, the advisors of those teams and their teams' campaign queues.
    Supervisor,
    /// Whole sites.
    Manager,
    /// Everything, and the Admin service.
    Admin,
}

impl Role {
    /// Every role, from the narrowest.
    pub const ALL: [Role; 4] = [Role::Advisor, Role::Supervisor, Role::Manager, Role::Admin];

    /// The name used in files and claims.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Advisor => "advisor",
            Role::Supervisor => "supervisor",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `advisor`, `supervisor`, `manager`, `admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role: expected advisor, supervisor, manager or admin")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or(UnknownRole)
    }
}

/// Who is calling and what they may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Who: the `subject` of a tokens-file entry or the `sub` claim. For logs and audit.
    pub subject: String,
    /// What kind of scope.
    pub role: Role,
    /// Sites of the scope (exactly one for an advisor, none for an admin).
    pub sites: Vec<String>,
    /// Team ids within each of `sites` (supervisors only).
    pub teams: Vec<String>,
    /// Their advisor id (advisors only).
    pub advisor: Option<String>,
}

/// A principal whose scope breaks the rules of its role (see the [module](self) doc).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ScopeError {
    /// Every problem found.
    pub problems: Vec<String>,
}

impl Principal {
    /// The caller when authentication is off (the demo on a loopback address): an admin.
    pub fn anonymous_admin() -> Principal {
        Principal {
            subject: "anonymous".to_owned(),
            role: Role::Admin,
            sites: Vec::new(),
            teams: Vec::new(),
            advisor: None,
        }
    }

    /// Checks the scope rules of the role: an advisor has exactly one site and `advisor`; a
    /// supervisor at least one site and one team; a manager at least one site; an admin no
    /// scope at all; no role carries fields it does not use; ids are not empty.
    pub fn validate(&self) -> Result<(), ScopeError> {
        let mut problems = Vec::new();
        if self.subject.trim().is_empty() {
            problems.push("the subject must not be empty".to_owned());
        }
        if self.subject.chars().any(char::is_control) {
            problems.push("the subject must not contain control characters".to_owned());
        }
        for (field, ids) in [("sites", &self.sites), ("teams", &self.teams)] {
            if ids.iter().any(|id| id.trim().is_empty()) {
                problems.push(format!("`{field}` must not contain an empty id"));
            }
        }
        if self.advisor.as_ref().is_some_and(|a| a.trim().is_empty()) {
            problems.push("`advisor` must not be empty".to_owned());
        }
        let (has_sites, has_teams, has_advisor) = (
            !self.sites.is_empty(),
            !self.teams.is_empty(),
            self.advisor.is_some(),
        );
        match self.role {
            Role::Advisor => {
                if self.sites.len() != 1 {
                    problems.push(format!(
                        "an advisor needs exactly one site in `sites`, found {}",
                        self.sites.len()
                    ));
                }
                if !has_advisor {
                    problems.push("an advisor needs `advisor` (their advisor id)".to_owned());
                }
                if has_teams {
                    problems.push("an advisor sees only their own view: remove `teams`".to_owned());
                }
            }
            Role::Supervisor => {
                if !has_sites {
                    problems.push("a supervisor needs at least one site in `sites`".to_owned());
                }
                if !has_teams {
                    problems.push("a supervisor needs at least one team in `teams`".to_owned());
                }
                if has_advisor {
                    problems.push("`advisor` is for the advisor role: remove it".to_owned());
                }
            }
            Role::Manager => {
                if !has_sites {
                    problems.push("a manager needs at least one site in `sites`".to_owned());
                }
                if has_teams {
                    problems.push("a manager sees whole sites: remove `teams`".to_owned());
                }
                if has_advisor {
                    problems.push("`advisor` is for the advisor role: remove it".to_owned());
                }
            }
            Role::Admin => {
                if has_sites || has_teams || has_advisor {
                    problems.push(
                        "an admin sees everything: remove `sites`, `teams` and `advisor`"
                            .to_owned(),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScopeError { problems })
        }
    }

    fn has_site(&self, site: &str) -> bool {
        self.sites.iter().any(|s| s == site)
    }

    fn has_team(&self, team: &str) -> bool {
        self.teams.iter().any(|t| t == team)
    }

    /// Whether the site may appear in a list of sites: any role whose scope touches it.
    pub fn may_list_site(&self, site: &str) -> bool {
        self.role == Role::Admin || self.has_site(site)
    }

    /// Whole-site views: a manager of that site, or an admin.
    pub fn may_read_site(&self, site: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.has_site(site),
            Role::Supervisor | Role::Advisor => false,
        }
    }

    /// A team's view: its supervisor (that team at that site), a manager of the site, or an
    /// admin.
    pub fn may_read_team(&self, site: &str, team: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.has_site(site),
            Role::Supervisor => self.has_site(site) && self.has_team(team),
            Role::Advisor => false,
        }
    }

    /// A queue's view. `serving_teams`: the teams whose campaign includes the queue; a
    /// supervisor of one of them at that site may read it.
    pub fn may_read_queue(&self, site: &str, _queue: &str, serving_teams: &[&str]) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.has_site(site),
            Role::Supervisor => {
                self.has_site(site) && serving_teams.iter().any(|team| self.has_team(team))
            }
            Role::Advisor => false,
        }
    }

    /// An advisor's view. `advisor_team`: the advisor's current team, if known. The advisor
    /// themself, the supervisor of their team at that site, a manager of the site, or an
    /// admin.
    pub fn may_read_advisor(&self, site: &str, advisor: &str, advisor_team: Option<&str>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => self.has_site(site),
            Role::Supervisor => {
                self.has_site(site) && advisor_team.is_some_and(|team| self.has_team(team))
            }
            Role::Advisor => self.has_site(site) && self.advisor.as_deref() == Some(advisor),
        }
    }

    /// Whether views may carry contact ids: supervisors, managers and admins.
    pub fn may_see_contact_ids(&self) -> bool {
        self.role != Role::Advisor
    }

    /// The Admin service: admins only.
    pub fn may_administer(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The answer to a request outside the caller's scope: the same whether the target exists
/// or not.
pub fn permission_denied() -> tonic::Status {
    tonic::Status::permission_denied("not allowed for this token")
}

/// Authentication failed, or its sources cannot be read. Messages never carry a token, a
/// hash or a secret; those of the failures of a call are safe to return to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata, or an empty one.
    #[error("missing bearer token")]
    MissingToken,
    /// `authorization` is not `Bearer <token>`.
    #[error("malformed authorization: expected \"Bearer <token>\"")]
    MalformedHeader,
    /// A token that no source knows.
    #[error("unknown token")]
    UnknownToken,
    /// A JWT past its `exp` (and the leeway).
    #[error("token expired")]
    Expired,
    /// A JWT that fails verification; the reason is one of a fixed set of short phrases or a
    /// scope problem of its claims.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The configuration is not valid.
    #[error("{0}")]
    Config(ConfigErrors),
    /// No source of tokens is configured.
    #[error("no source of tokens configured: set tokens_file or jwt")]
    NoSource,
    /// A file cannot be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// Which file: "tokens file", "HS256 secret file", "RS256 public key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens file has problems, each naming its entry.
    #[error("tokens file {}: {} problem(s): {}", .path.display(), .problems.len(), .problems.join("; "))]
    TokensFile {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A key file does not hold a usable key.
    #[error("{what} {}: {reason}", .path.display())]
    Key {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl AuthError {
    /// Whether this is the failure of a call (as opposed to a set-up problem).
    pub fn is_call_failure(&self) -> bool {
        matches!(
            self,
            AuthError::MissingToken
                | AuthError::MalformedHeader
                | AuthError::UnknownToken
                | AuthError::Expired
                | AuthError::InvalidToken(_)
        )
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> tonic::Status {
        if error.is_call_failure() {
            tonic::Status::unauthenticated(error.to_string())
        } else {
            // Set-up problems are reported at start, never to a client.
            tonic::Status::internal("authentication is not available")
        }
    }
}

/// The SHA-256 of a token, in lowercase hexadecimal: what the tokens file stores.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new random token: `vgt_` and 64 hexadecimal digits (32 bytes from the operating
/// system's random source).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .expect("the operating system provides random bytes (getrandom(2) or /dev/urandom)");
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// The `[[token]]` entry of the tokens file for a token of hash `sha256` (from
/// [`hash_token`]) and `principal`'s scope.
pub fn tokens_file_entry(sha256: &str, principal: &Principal) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        token: [Entry<'a>; 1],
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        sha256: &'a str,
        subject: &'a str,
        role: Role,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        sites: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        teams: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        advisor: Option<&'a str>,
    }
    let file = File {
        token: [Entry {
            sha256,
            subject: &principal.subject,
            role: principal.role,
            sites: &principal.sites,
            teams: &principal.teams,
            advisor: principal.advisor.as_deref(),
        }],
    };
    toml::to_string(&file).expect("a tokens-file entry is plain strings and arrays")
}

/// One `[[token]]` of the tokens file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    sha256: String,
    subject: String,
    role: String,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    advisor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<toml::Spanned<TokenEntry>>,
}

/// Reads a tokens file: hash to principal.
fn load_tokens_file(path: &Path) -> Result<HashMap<String, Principal>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        what: "tokens file",
        path: path.to_owned(),
        source,
    })?;
    let file_error = |problems| AuthError::TokensFile {
        path: path.to_owned(),
        problems,
    };
    let file: TokensFile = toml::from_str(&text).map_err(|error| {
        // The message only, without the excerpt of the file that `Display` adds.
        let problem = match error.span() {
            Some(span) => format!("line {}: {}", line_of(&text, span.start), error.message()),
            None => error.message().to_owned(),
        };
        file_error(vec![problem])
    })?;
    let mut problems = Vec::new();
    let mut tokens = HashMap::with_capacity(file.token.len());
    let mut first_seen: HashMap<String, String> = HashMap::new();
    for (index, spanned) in file.token.iter().enumerate() {
        let line = line_of(&text, spanned.span().start);
        let entry = spanned.get_ref();
        let name = format!(
            "token entry {} (line {line}, subject {:?})",
            index + 1,
            entry.subject
        );
        let hash = entry.sha256.to_ascii_lowercase();
        let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !hash_ok {
            // Never echo the value: it may be a token pasted by mistake.
            problems.push(format!(
                "{name}: sha256 must be 64 hexadecimal digits, the hash of the token \
                 (`vigie token hash`), found {} characters",
                entry.sha256.chars().count()
            ));
        }
        let role = match entry.role.parse::<Role>() {
            Ok(role) => Some(role),
            Err(_) => {
                problems.push(format!(
                    "{name}: unknown role {:?}: expected advisor, supervisor, manager or admin",
                    entry.role
                ));
                None
            }
        };
        let Some(role) = role else { continue };
        let principal = Principal {
            subject: entry.subject.clone(),
            role,
            sites: entry.sites.clone(),
            teams: entry.teams.clone(),
            advisor: entry.advisor.clone(),
        };
        if let Err(scope) = principal.validate() {
            for problem in scope.problems {
                problems.push(format!("{name}: {problem}"));
            }
            continue;
        }
        if !hash_ok {
            continue;
        }
        match first_seen.entry(hash.clone()) {
            Entry::Occupied(first) => problems.push(format!(
                "{name}: same sha256 as {}: each token must appear once",
                first.get()
            )),
            Entry::Vacant(vacant) => {
                vacant.insert(name);
                tokens.insert(hash, principal);
            }
        }
    }
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(file_error(problems))
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The claims Vigie reads from a JWT; `exp`, `iss` and `aud` are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    advisor: Option<String>,
}

/// The configured JWT keys, each with a validation accepting its algorithm only (a token
/// cannot choose to be checked as HS256 with the RSA public key as secret).
struct JwtVerifier {
    issuer: String,
    audience: String,
    leeway: HumanDuration,
    hs256: Option<(DecodingKey, Validation)>,
    rs256: Option<(DecodingKey, Validation)>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .finish()
    }
}

impl JwtVerifier {
    fn from_config(config: &JwtConfig) -> Result<JwtVerifier, AuthError> {
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[&config.audience]);
            validation.leeway = config.leeway.0.as_secs();
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.validate_aud = true;
            validation
        };
        let hs256 = match &config.hs256_secret_file {
            None => None,
            Some(path) => Some((read_hs256_secret(path)?, validation(Algorithm::HS256))),
        };
        let rs256 = match &config.rs256_public_key_file {
            None => None,
            Some(path) => Some((read_rs256_key(path)?, validation(Algorithm::RS256))),
        };
        Ok(JwtVerifier {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway,
            hs256,
            rs256,
        })
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::InvalidToken("malformed".to_owned()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        };
        let Some((key, validation)) = key else {
            return Err(AuthError::InvalidToken("unsupported algorithm".to_owned()));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|error| jwt_error(error.kind()))?
            .claims;
        let invalid = |reason: &str| AuthError::InvalidToken(reason.to_owned());
        let subject = claims.sub.ok_or_else(|| invalid("missing claim `sub`"))?;
        let role = claims
            .role
            .ok_or_else(|| invalid("missing claim `role`"))?
            .parse::<Role>()
            .map_err(|_| invalid("unknown role"))?;
        let principal = Principal {
            subject,
            role,
            sites: claims.sites,
            teams: claims.teams,
            advisor: claims.advisor,
        };
        principal
            .validate()
            .map_err(|scope| AuthError::InvalidToken(format!("claims: {scope}")))?;
        Ok(principal)
    }
}

/// A short reason for a client; never the token or the library's detailed message.
fn jwt_error(kind: &JwtErrorKind) -> AuthError {
    let reason = match kind {
        JwtErrorKind::ExpiredSignature => return AuthError::Expired,
        JwtErrorKind::InvalidSignature => "bad signature",
        JwtErrorKind::InvalidIssuer => "wrong issuer",
        JwtErrorKind::InvalidAudience => "wrong audience",
        JwtErrorKind::ImmatureSignature => "not yet valid",
        JwtErrorKind::MissingRequiredClaim(claim) => {
            return AuthError::InvalidToken(
                match claim.as_str() {
                    "exp" => "missing claim `exp`",
                    "iss" => "missing claim `iss`",
                    "aud" => "missing claim `aud`",
                    "sub" => "missing claim `sub`",
                    _ => "missing claim",
                }
                .to_owned(),
            );
        }
        JwtErrorKind::InvalidClaimFormat(_) | JwtErrorKind::Json(_) => "malformed claims",
        JwtErrorKind::InvalidAlgorithm
        | JwtErrorKind::UnsupportedAlgorithm
        | JwtErrorKind::MissingAlgorithm => "unsupported algorithm",
        JwtErrorKind::InvalidToken | JwtErrorKind::Base64(_) | JwtErrorKind::Utf8(_) => "malformed",
        _ => "cannot be verified",
    };
    AuthError::InvalidToken(reason.to_owned())
}

fn read_hs256_secret(path: &Path) -> Result<DecodingKey, AuthError> {
    const WHAT: &str = "HS256 secret file";
    let mut bytes = std::fs::read(path).map_err(|source| AuthError::Read {
        what: WHAT,
        path: path.to_owned(),
        source,
    })?;
    warn_if_world_readable(path, WHAT);
    let len = bytes.trim_ascii_end().len();
    bytes.truncate(len);
    if bytes.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthError::Key {
            what: WHAT,
            path: path.to_owned(),
            reason: format!(
                "the secret is too short: at least {MIN_HS256_SECRET_BYTES} bytes are needed"
            ),
        });
    }
    let key = DecodingKey::from_secret(&bytes);
    // Best effort: the key keeps its own copy (zeroized on drop).
    bytes.fill(0);
    Ok(key)
}

fn read_rs256_key(path: &Path) -> Result<DecodingKey, AuthError> {
    const WHAT: &str = "RS256 public key file";
    let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
        what: WHAT,
        path: path.to_owned(),
        source,
    })?;
    let key_error = |reason: &str| AuthError::Key {
        what: WHAT,
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if bytes
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
    {
        return Err(key_error(
            "holds a private key: give the public key only (openssl rsa -in key.pem -pubout)",
        ));
    }
    DecodingKey::from_rsa_pem(&bytes)
        .map_err(|_| key_error("does not hold an RSA public key in PEM"))
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the {what} is readable by every user of the machine; restrict it (chmod 600)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_path: &Path, _what: &str) {}

/// Checks bearer tokens against the configured sources. Built once at start; share it in an
/// `Arc`.
pub struct Authenticator {
    tokens_file: Option<PathBuf>,
    /// Hash of a token to its principal.
    tokens: HashMap<String, Principal>,
    jwt: Option<JwtVerifier>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens_file", &self.tokens_file)
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt)
            .finish()
    }
}

impl Authenticator {
    /// Reads the tokens file and the keys. Errors name the file and, for the tokens file,
    /// every entry with a problem.
    pub fn from_config(config: &AuthConfig) -> Result<Authenticator, AuthError> {
        config.validate("api.auth").map_err(AuthError::Config)?;
        if !config.is_enabled() {
            return Err(AuthError::NoSource);
        }
        let tokens = match &config.tokens_file {
            Some(path) => {
                let tokens = load_tokens_file(path)?;
                if tokens.is_empty() {
                    tracing::warn!(file = %path.display(), "the tokens file has no token");
                } else {
                    tracing::info!(file = %path.display(), tokens = tokens.len(), "tokens file read");
                }
                tokens
            }
            None => HashMap::new(),
        };
        let jwt = config
            .jwt
            .as_ref()
            .map(JwtVerifier::from_config)
            .transpose()?;
        Ok(Authenticator {
            tokens_file: config.tokens_file.clone(),
            tokens,
            jwt,
        })
    }

    /// Who is calling. `authorization`: the raw value of the `authorization` metadata, if
    /// any (`Bearer <token>`, the scheme in any case).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("too long".to_owned()));
        }
        if let Some(jwt) = &self.jwt
            && token.bytes().filter(|&b| b == b'.').count() == 2
        {
            return jwt.verify(token);
        }
        self.tokens
            .get(&hash_token(token))
            .cloned()
            .ok_or(AuthError::UnknownToken)
    }
}

/// The token of `Bearer <token>`.
fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, token) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or(AuthError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(|c: char| c.is_ascii_whitespace())
    {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.
mod tests {
    use super::*;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const HS_SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
    const ISSUER: &str = "https://idp.example";
    const AUDIENCE: &str = "vigie";

    /// Generated for these tests only (`openssl genrsa -traditional 2048`).
    const RSA_PRIVATE_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEA4Wt4cbc891CnjKhrVTV8IjZtFgPLVGAnR71/j4dGBnJnKfK5
/Ai3Wexfj/q9lgICMqyX8+yGOSnWil8qB7dxuRptS0nUz1lz4654UhidKqSVbDOj
tFDcUwKycvluuw0pChxBt0Cq50hKTtz2CZ7+e1AKFGzQ8LJdcbOkm5AhXJTfiRWx
xmA1mSS0SFHY39nMAtjZLvO5S7yRyjKpVR9jT0q2PQp3Z0pdZCU8XCO5VoTVsFU8
Cod218mc/JsXlZnnU65o62ZccWjMDN46cZZhRk2erY8hxX0Bu4OKWqGlPRjKqJt6
4IP8PT1ffGuzacDAZxdqBCvErpJhZAJZ58YOMQIDAQABAoIBAFceIb5RAs7R7O7/
Z/vWX9MZFa+cZ8iEIKopIlNmBDoZnKUpmZc+Bx5Jq+UJEpwWyqKq8U7j6jvNX4y6
mpPA4cKX5AVk00oPWCp2EyonORZx5Q2cJ3hYh83NDQpCO/kubN3rbbpU07fuyEkS
PEQbnl4p4LtkEpvzUwnOU5+LZFlStiLbZ/nkXJz6IZpn7h4XHZ9gJMRjILQJTddP
RFlprVRIJMeOKnF9xvoaLc2O4YK6UA5fk5Ctp6p8O/fqs5lQnWlyajPR3PWs8ziM
Xve862m8pHl8aHl/lIRpY9DVDPGJiIvRor3oPH/NBOdNkZzeUT/1HIE5fFCEFY9h
y1jZJcECgYEA8OfIzAaC9J+xfKUgi3oFPGTSFPPp6Y/R4fcFqlK1PhTdyc0ECA2q
R82z9mmxKSfQOUkcBNQMbBukvJOEcrLxOu5Tu/PO5uj6tQMyHL6S9m3VArHQVHmK
8byq6eL2CCAF1hF/0hFyFmEb5gMml6hNErjv2I1JwXyXlIoIkqp8So8CgYEA74tK
hh7UdIyLprEqbIxtlv2f3zEX/cBX/UgglnOjKfBNntDdVpxU9iJ6kq9eMjU3abKW
geyQJIcPoFP/ZugdXbL7EDL7ZKNWOjyeIdzHOfB8WM7wwMjfUr6qStCwAKpZr6Tp
s/jYDy2zyC/TKyzVYBKt1INvs9opoxfW5oFTez8CgYEApMKBbDiP2+pUIyF0TrAX
YKS7oaToN9sq+lZNw51pY5o1zcyvkyp1aUJgcIj8p18ZY/SCezLjhBSr6GUj0qZb
oahaEFPBD+ALhz02Sr50GKIpavxdtUijJI2afvfAuPHdy/iP6QYRdwjXYcqJ3HM4
szNUplCLPw+NRAPbtSNwejUCgYEA2f5gBqhd3ebdXAhUvE4bmVIcQKhT1fhJ2tTd
2y1HKm5mpQYct6ozY39DHuR7C6QEVqtQbtJS5vsGjHiEsCjCOLgd5MMQpqhCW2M4
4UYjBCZHcyZ4UGk9Wvbq0IUT9rcQQVkJ2V+3eDC2MJLdUKhPUkwNZ51pdTovtB2I
02KUD08CgYEAj2Tzqd3A94oxrmU6m+e1cYT1s/2iB/m33NLbln+CljrQh9e2v6bF
LbWfTGKmHEXQrrp9gamGRejjGB1jr7cly0dE1JPPF4Uu4l/zZNXUKpEYuEopYPeV
6W+We3jKtk8/0upBvOvGO3lchoVnZQu4nM7nswE4XxAK8vOpbnfCEDY=
-----END RSA PRIVATE KEY-----
";
    /// Its public half (`openssl rsa -pubout`).
    const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4Wt4cbc891CnjKhrVTV8
IjZtFgPLVGAnR71/j4dGBnJnKfK5/Ai3Wexfj/q9lgICMqyX8+yGOSnWil8qB7dx
uRptS0nUz1lz4654UhidKqSVbDOjtFDcUwKycvluuw0pChxBt0Cq50hKTtz2CZ7+
e1AKFGzQ8LJdcbOkm5AhXJTfiRWxxmA1mSS0SFHY39nMAtjZLvO5S7yRyjKpVR9j
T0q2PQp3Z0pdZCU8XCO5VoTVsFU8Cod218mc/JsXlZnnU65o62ZccWjMDN46cZZh
Rk2erY8hxX0Bu4OKWqGlPRjKqJt64IP8PT1ffGuzacDAZxdqBCvErpJhZAJZ58YO
MQIDAQAB
-----END PUBLIC KEY-----
";

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn principal(role: Role, sites: &[&str], teams: &[&str], advisor: Option<&str>) -> Principal {
        Principal {
            subject: "someone".to_owned(),
            role,
            sites: sites.iter().map(|s| s.to_string()).collect(),
            teams: teams.iter().map(|s| s.to_string()).collect(),
            advisor: advisor.map(str::to_owned),
        }
    }

    fn tokens_authenticator(dir: &tempfile::TempDir, file: &str) -> Authenticator {
        let path = write(dir, "tokens.toml", file);
        Authenticator::from_config(&AuthConfig {
            tokens_file: Some(path),
            jwt: None,
        })
        .unwrap()
    }

    fn tokens_file_error(file: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "tokens.toml", file);
        match Authenticator::from_config(&AuthConfig {
            tokens_file: Some(path.clone()),
            jwt: None,
        }) {
            Err(AuthError::TokensFile {
                path: reported,
                problems,
            }) => {
                assert_eq!(reported, path);
                problems
            }
            other => panic!("expected a tokens file error, got {other:?}"),
        }
    }

    fn entry(hash: &str, rest: &str) -> String {
        format!("[[token]]\nsha256 = \"{hash}\"\nsubject = \"alice\"\n{rest}\n")
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    // --- tokens file ---

    #[test]
    fn a_token_of_the_tokens_file_authenticates_as_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let token = generate_token();
        let other = generate_token();
        let file = format!(
            "{}{}",
            entry(
                &hash_token(&token),
                "role = \"supervisor\"\nsites = [\"paris\"]\nteams = [\"team-a\", \"team-b\"]"
            ),
            entry(
                &hash_token(&other).to_ascii_uppercase(),
                "role = \"advisor\"\nsites = [\"lyon\"]\nadvisor = \"a042\""
            ),
        );
        let auth = tokens_authenticator(&dir, &file);
        let expected = Principal {
            subject: "alice".to_owned(),
            role: Role::Supervisor,
            sites: vec!["paris".to_owned()],
            teams: vec!["team-a".to_owned(), "team-b".to_owned()],
            advisor: None,
        };
        assert_eq!(auth.authenticate(Some(&bearer(&token))).unwrap(), expected);
        // The scheme in any case, surrounding spaces.
        let lower = format!("  bearer   {token} ");
        assert_eq!(auth.authenticate(Some(&lower)).unwrap(), expected);
        let upper = format!("BEARER {token}");
        assert_eq!(auth.authenticate(Some(&upper)).unwrap(), expected);
        // An uppercase hash in the file is accepted.
        let advisor = auth.authenticate(Some(&bearer(&other))).unwrap();
        assert_eq!(advisor.role, Role::Advisor);
        assert_eq!(advisor.advisor.as_deref(), Some("a042"));
    }

    #[test]
    fn unknown_missing_and_malformed_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = generate_token();
        let auth = tokens_authenticator(&dir, &entry(&hash_token(&token), "role = \"admin\""));
        let unknown = generate_token();
        assert!(matches!(
            auth.authenticate(Some(&bearer(&unknown))),
            Err(AuthError::UnknownToken)
        ));
        // The hash itself is not a token.
        assert!(matches!(
            auth.authenticate(Some(&bearer(&hash_token(&token)))),
            Err(AuthError::UnknownToken)
        ));
        // A JWT-shaped token without JWT configured is looked up, and unknown.
        assert!(matches!(
            auth.authenticate(Some("Bearer a.b.c")),
            Err(AuthError::UnknownToken)
        ));
        for missing in [None, Some(""), Some("   ")] {
            assert!(
                matches!(auth.authenticate(missing), Err(AuthError::MissingToken)),
                "{missing:?}"
            );
        }
        let basic = format!("Basic {token}");
        let two_words = format!("Bearer {token} more");
        for malformed in [
            token.as_str(),
            "Bearer",
            "Bearer   ",
            basic.as_str(),
            two_words.as_str(),
        ] {
            let error = auth.authenticate(Some(malformed)).unwrap_err();
            assert!(
                matches!(error, AuthError::MalformedHeader),
                "{malformed}: {error:?}"
            );
        }
        let long = bearer(&"x".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(
            auth.authenticate(Some(&long)),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn call_failures_are_unauthenticated_with_a_short_reason() {
        let cases = [
            (AuthError::MissingToken, "missing bearer token"),
            (AuthError::UnknownToken, "unknown token"),
            (AuthError::Expired, "token expired"),
            (
                AuthError::InvalidToken("bad signature".to_owned()),
                "invalid token: bad signature",
            ),
        ];
        for (error, message) in cases {
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert_eq!(status.message(), message);
        }
        let status = tonic::Status::from(AuthError::NoSource);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(permission_denied().code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn every_problem_of_a_tokens_file_is_reported_with_its_entry() {
        let good = hash_token("good");
        let problems = tokens_file_error(&format!(
            "{}{}",
            entry("abc", "role = \"admin\""),
            entry(&good, "role = \"boss\""),
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("token entry 1 (line 1, subject \"alice\"): sha256 must be"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .starts_with("token entry 2 (line 5, subject \"alice\"): unknown role \"boss\""),
            "{problems:?}"
        );
    }

    #[test]
    fn each_invalid_entry_is_refused() {
        let hash = hash_token("t");
        let cases: &[(&str, &str)] = &[
            (
                "role = \"supervisor\"\nsites = [\"paris\"]",
                "at least one team",
            ),
            (
                "role = \"supervisor\"\nteams = [\"team-a\"]",
                "at least one site",
            ),
            (
                "role = \"supervisor\"\nsites = [\"paris\"]\nteams = [\"a\"]\nadvisor = \"a1\"",
                "`advisor` is for the advisor role",
            ),
            ("role = \"advisor\"\nsites = [\"paris\"]", "needs `advisor`"),
            (
                "role = \"advisor\"\nsites = [\"paris\", \"lyon\"]\nadvisor = \"a1\"",
                "exactly one site in `sites`, found 2",
            ),
            (
                "role = \"advisor\"\nsites = [\"paris\"]\nteams = [\"a\"]\nadvisor = \"a1\"",
                "remove `teams`",
            ),
            ("role = \"manager\"", "a manager needs at least one site"),
            (
                "role = \"manager\"\nsites = [\"paris\"]\nteams = [\"a\"]",
                "remove `teams`",
            ),
            (
                "role = \"admin\"\nsites = [\"paris\"]",
                "an admin sees everything",
            ),
            ("role = \"manager\"\nsites = [\"\"]", "empty id"),
            ("role = \"Admin\"", "unknown role \"Admin\""),
        ];
        for (rest, expected) in cases {
            let problems = tokens_file_error(&entry(&hash, rest));
            assert_eq!(problems.len(), 1, "{rest}: {problems:?}");
            assert!(
                problems[0].starts_with("token entry 1 (line 1, subject \"alice\"): ")
                    && problems[0].contains(expected),
                "{rest}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_bad_hash_is_reported_without_echoing_it() {
        let token = generate_token();
        // The token itself pasted instead of its hash; then 64 characters that are not hex.
        for bad in [token.clone(), "g".repeat(64), "a".repeat(63)] {
            let problems = tokens_file_error(&entry(&bad, "role = \"admin\""));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains("sha256 must be 64 hexadecimal digits"));
            assert!(!problems[0].contains(&bad), "{problems:?}");
        }
    }

    #[test]
    fn a_hash_may_appear_only_once() {
        let hash = hash_token("shared");
        let problems = tokens_file_error(&format!(
            "{}\n{}",
            entry(&hash, "role = \"admin\""),
            entry(&hash.to_ascii_uppercase(), "role = \"admin\""),
        ));
        assert_eq!(
            problems,
            vec![
                "token entry 2 (line 6, subject \"alice\"): same sha256 as token entry 1 \
                 (line 1, subject \"alice\"): each token must appear once"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_name_their_line() {
        let hash = hash_token("t");
        let problems = tokens_file_error(&entry(&hash, "role = \"admin\"\nrank = 3"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("unknown field `rank`"), "{problems:?}");
        assert!(problems[0].starts_with("line "), "{problems:?}");
        let problems = tokens_file_error("[[token]]\nsha256 = \"abc\nsubject = 1\n");
        assert!(problems[0].starts_with("line 2: "), "{problems:?}");
        let problems = tokens_file_error(&format!(
            "[[token]]\nsha256 = \"{hash}\"\nrole = \"admin\"\n"
        ));
        assert!(
            problems[0].contains("missing field `subject`"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unreadable_tokens_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let error = Authenticator::from_config(&AuthConfig {
            tokens_file: Some(path.clone()),
            jwt: None,
        })
        .unwrap_err();
        assert!(matches!(error, AuthError::Read { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("tokens file"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn an_empty_tokens_file_knows_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let auth = tokens_authenticator(&dir, "# no token yet\n");
        assert!(matches!(
            auth.authenticate(Some(&bearer(&generate_token()))),
            Err(AuthError::UnknownToken)
        ));
    }

    // --- configuration ---

    #[test]
    fn the_configuration_parses_with_defaults_and_is_validated() {
        let config: AuthConfig = toml::from_str("").unwrap();
        assert_eq!(config, AuthConfig::default());
        assert!(!config.is_enabled());
        assert_eq!(config.validate("api.auth"), Ok(()));
        assert!(matches!(
            Authenticator::from_config(&config),
            Err(AuthError::NoSource)
        ));

        let config: AuthConfig = toml::from_str(
            "tokens_file = \"tokens.toml\"\n[jwt]\nhs256_secret_file = \"s\"\nissuer = \"i\"\naudience = \"a\"\n",
        )
        .unwrap();
        assert!(config.is_enabled());
        let jwt = config.jwt.as_ref().unwrap();
        assert_eq!(jwt.leeway, HumanDuration::secs(30));
        assert_eq!(config.validate("api.auth"), Ok(()));

        assert!(toml::from_str::<AuthConfig>("token_file = \"x\"").is_err());
        assert!(
            toml::from_str::<AuthConfig>("[jwt]\nissuer = \"i\"\naudience = \"a\"\nsecret = \"x\"")
                .is_err()
        );

        let config: AuthConfig = toml::from_str(
            "tokens_file = \"\"\n[jwt]\nissuer = \" \"\naudience = \"\"\nleeway = \"10m\"\n",
        )
        .unwrap();
        let errors = config.validate("api.auth").unwrap_err();
        assert_eq!(
            errors.0,
            vec![
                "api.auth.tokens_file: must not be empty",
                "api.auth.jwt: set hs256_secret_file, rs256_public_key_file or both",
                "api.auth.jwt.issuer: must not be empty",
                "api.auth.jwt.audience: must not be empty",
                "api.auth.jwt.leeway: must be at most 5m, found 10m",
            ]
        );
        assert!(matches!(
            Authenticator::from_config(&config),
            Err(AuthError::Config(_))
        ));
    }

    // --- JWT ---

    struct Jwt {
        _dir: tempfile::TempDir,
        auth: Authenticator,
    }

    fn jwt_config(dir: &tempfile::TempDir, hs256: bool, rs256: bool) -> AuthConfig {
        AuthConfig {
            tokens_file: None,
            jwt: Some(JwtConfig {
                hs256_secret_file: hs256.then(|| write(dir, "secret", &format!("{HS_SECRET}\n"))),
                rs256_public_key_file: rs256.then(|| write(dir, "public.pem", RSA_PUBLIC_PEM)),
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                leeway: HumanDuration::secs(30),
            }),
        }
    }

    fn jwt_authenticator(hs256: bool, rs256: bool) -> Jwt {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authenticator::from_config(&jwt_config(&dir, hs256, rs256)).unwrap();
        Jwt { _dir: dir, auth }
    }

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({
            "sub": "bob",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": now() + 3600,
            "role": "supervisor",
            "sites": ["paris"],
            "teams": ["team-a"],
        })
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn rs256(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn with(
        mut claims: serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn invalid_reason(result: Result<Principal, AuthError>) -> String {
        match result {
            Err(AuthError::InvalidToken(reason)) => reason,
            other => panic!("expected an invalid token, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_hs256_jwt_gives_the_principal_of_its_claims() {
        let jwt = jwt_authenticator(true, false);
        let token = hs256(&claims(), HS_SECRET);
        let principal = jwt.auth.authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "bob".to_owned(),
                role: Role::Supervisor,
                sites: vec!["paris".to_owned()],
                teams: vec!["team-a".to_owned()],
                advisor: None,
            }
        );
        // `aud` as an array containing the audience.
        let token = hs256(
            &with(claims(), "aud", json!(["other", AUDIENCE])),
            HS_SECRET,
        );
        assert!(jwt.auth.authenticate(Some(&bearer(&token))).is_ok());
    }

    #[test]
    fn an_expired_jwt_is_refused_beyond_the_leeway_only() {
        let jwt = jwt_authenticator(true, false);
        let token = hs256(&with(claims(), "exp", json!(now() - 3600)), HS_SECRET);
        let error = jwt.auth.authenticate(Some(&bearer(&token))).unwrap_err();
        assert!(matches!(error, AuthError::Expired), "{error:?}");
        assert_eq!(tonic::Status::from(error).message(), "token expired");

        // Within a wide leeway, the same kind of token passes; with none it does not.
        let dir = tempfile::tempdir().unwrap();
        let mut config = jwt_config(&dir, true, false);
        let token = hs256(&with(claims(), "exp", json!(now() - 60)), HS_SECRET);
        config.jwt.as_mut().unwrap().leeway = HumanDuration::secs(240);
        let lenient = Authenticator::from_config(&config).unwrap();
        assert!(lenient.authenticate(Some(&bearer(&token))).is_ok());
        config.jwt.as_mut().unwrap().leeway = HumanDuration::secs(0);
        let strict = Authenticator::from_config(&config).unwrap();
        assert!(matches!(
            strict.authenticate(Some(&bearer(&token))),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn a_jwt_not_yet_valid_is_refused() {
        let jwt = jwt_authenticator(true, false);
        let token = hs256(&with(claims(), "nbf", json!(now() + 3600)), HS_SECRET);
        assert_eq!(
            invalid_reason(jwt.auth.authenticate(Some(&bearer(&token)))),
            "not yet valid"
        );
    }

    #[test]
    fn a_jwt_with_the_wrong_issuer_audience_or_signature_is_refused() {
        let jwt = jwt_authenticator(true, false);
        let cases = [
            (
                hs256(
                    &with(claims(), "iss", json!("https://evil.example")),
                    HS_SECRET,
                ),
                "wrong issuer",
            ),
            (
                hs256(&with(claims(), "aud", json!("other")), HS_SECRET),
                "wrong audience",
            ),
            (
                hs256(&claims(), "another-secret-that-is-long-enough-987654"),
                "bad signature",
            ),
            (
                hs256(&without(claims(), "iss"), HS_SECRET),
                "missing claim `iss`",
            ),
            (
                hs256(&without(claims(), "aud"), HS_SECRET),
                "missing claim `aud`",
            ),
            (
                hs256(&without(claims(), "exp"), HS_SECRET),
                "missing claim `exp`",
            ),
            (
                hs256(&without(claims(), "sub"), HS_SECRET),
                "missing claim `sub`",
            ),
            (
                hs256(&without(claims(), "role"), HS_SECRET),
                "missing claim `role`",
            ),
            (
                hs256(&with(claims(), "role", json!("boss")), HS_SECRET),
                "unknown role",
            ),
            (
                hs256(&with(claims(), "sites", json!("paris")), HS_SECRET),
                "malformed claims",
            ),
            ("not.a.jwt".to_owned(), "malformed"),
        ];
        for (token, reason) in cases {
            let result = jwt.auth.authenticate(Some(&bearer(&token)));
            let error = result.as_ref().map(|_| ()).unwrap_err().to_string();
            assert!(!error.contains(&token), "{error}");
            assert_eq!(invalid_reason(result), reason, "{token}");
        }
    }

    #[test]
    fn a_jwt_whose_claims_break_the_scope_rules_is_refused() {
        let jwt = jwt_authenticator(true, false);
        let token = hs256(&without(claims(), "teams"), HS_SECRET);
        let reason = invalid_reason(jwt.auth.authenticate(Some(&bearer(&token))));
        assert!(reason.contains("at least one team"), "{reason}");
        let advisor = with(
            with(
                with(claims(), "role", json!("advisor")),
                "advisor",
                json!("a042"),
            ),
            "teams",
            json!([]),
        );
        let token = hs256(&advisor, HS_SECRET);
        let principal = jwt.auth.authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(principal.role, Role::Advisor);
        assert_eq!(principal.advisor.as_deref(), Some("a042"));
    }

    #[test]
    fn an_algorithm_without_a_configured_key_is_refused() {
        let jwt = jwt_authenticator(true, false);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(),
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            invalid_reason(jwt.auth.authenticate(Some(&bearer(&token)))),
            "unsupported algorithm"
        );
    }

    #[test]
    fn a_valid_rs256_jwt_authenticates_and_a_tampered_one_does_not() {
        let jwt = jwt_authenticator(false, true);
        let claims = with(
            with(without(claims(), "teams"), "role", json!("manager")),
            "sites",
            json!(["paris", "lyon"]),
        );
        let token = rs256(&claims);
        let principal = jwt.auth.authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(principal.role, Role::Manager);
        assert_eq!(principal.sites, ["paris", "lyon"]);

        // The claims of an admin, under the manager's signature.
        let forged = hs256(
            &with(without(claims.clone(), "sites"), "role", json!("admin")),
            "x".repeat(40).as_str(),
        );
        let forged_claims = forged.split('.').nth(1).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = forged_claims;
        let tampered = parts.join(".");
        assert_eq!(
            invalid_reason(jwt.auth.authenticate(Some(&bearer(&tampered)))),
            "bad signature"
        );

        // HS256 signed with the public key as secret: the confusion attack.
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            invalid_reason(jwt.auth.authenticate(Some(&bearer(&confused)))),
            "unsupported algorithm"
        );
    }

    #[test]
    fn all_sources_work_together() {
        let dir = tempfile::tempdir().unwrap();
        let opaque = generate_token();
        let mut config = jwt_config(&dir, true, true);
        config.tokens_file = Some(write(
            &dir,
            "tokens.toml",
            &entry(&hash_token(&opaque), "role = \"admin\""),
        ));
        let auth = Authenticator::from_config(&config).unwrap();
        let by_file = auth.authenticate(Some(&bearer(&opaque))).unwrap();
        assert_eq!(
            (by_file.subject.as_str(), by_file.role),
            ("alice", Role::Admin)
        );
        let by_hs = auth
            .authenticate(Some(&bearer(&hs256(&claims(), HS_SECRET))))
            .unwrap();
        assert_eq!(by_hs.subject, "bob");
        let by_rs = auth.authenticate(Some(&bearer(&rs256(&claims())))).unwrap();
        assert_eq!(by_rs.role, Role::Supervisor);
    }

    #[test]
    fn unusable_key_files_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = jwt_config(&dir, true, false);
        let jwt = config.jwt.as_mut().unwrap();
        jwt.hs256_secret_file = Some(write(&dir, "short", "too-short\n"));
        let error = Authenticator::from_config(&config).unwrap_err();
        assert!(error.to_string().contains("too short"), "{error}");
        assert!(!error.to_string().contains("too-short"), "{error}");

        let mut config = jwt_config(&dir, false, true);
        let jwt = config.jwt.as_mut().unwrap();
        jwt.rs256_public_key_file = Some(write(&dir, "private.pem", RSA_PRIVATE_PEM));
        let error = Authenticator::from_config(&config).unwrap_err().to_string();
        assert!(error.contains("holds a private key"), "{error}");
        assert!(error.contains("private.pem"), "{error}");

        let jwt = config.jwt.as_mut().unwrap();
        jwt.rs256_public_key_file = Some(write(&dir, "garbage.pem", "not a key\n"));
        let error = Authenticator::from_config(&config).unwrap_err().to_string();
        assert!(error.contains("does not hold an RSA public key"), "{error}");

        let jwt = config.jwt.as_mut().unwrap();
        jwt.rs256_public_key_file = Some(dir.path().join("absent.pem"));
        let error = Authenticator::from_config(&config).unwrap_err().to_string();
        assert!(
            error.contains("cannot read the RS256 public key file"),
            "{error}"
        );
    }

    // --- no secret in Debug or errors ---

    #[test]
    fn debug_output_holds_no_secret_token_or_hash() {
        let dir = tempfile::tempdir().unwrap();
        let opaque = generate_token();
        let mut config = jwt_config(&dir, true, true);
        config.tokens_file = Some(write(
            &dir,
            "tokens.toml",
            &entry(
                &hash_token(&opaque),
                "role = \"supervisor\"\nsites = [\"paris\"]\nteams = [\"team-a\"]",
            ),
        ));
        let auth = Authenticator::from_config(&config).unwrap();
        let principal = auth.authenticate(Some(&bearer(&opaque))).unwrap();
        let jwt = hs256(&claims(), HS_SECRET);
        let failures = [
            auth.authenticate(Some(&format!("Basic {opaque}")))
                .unwrap_err(),
            auth.authenticate(Some(&bearer(&format!("{opaque}x"))))
                .unwrap_err(),
            auth.authenticate(Some(&bearer(&format!("{jwt}x"))))
                .unwrap_err(),
        ];
        let mut outputs = vec![format!("{auth:?}"), format!("{principal:?}")];
        for failure in failures {
            outputs.push(format!("{failure:?}"));
            outputs.push(failure.to_string());
            outputs.push(format!("{:?}", tonic::Status::from(failure)));
        }
        let public_key_body = RSA_PUBLIC_PEM.lines().nth(1).unwrap();
        for output in &outputs {
            for secret in [
                HS_SECRET,
                opaque.as_str(),
                &hash_token(&opaque),
                &jwt,
                public_key_body,
            ] {
                assert!(!output.contains(secret), "{output}");
            }
        }
        // The Debug output is still useful.
        assert!(outputs[0].contains("tokens: 1"), "{}", outputs[0]);
        assert!(outputs[0].contains("hs256: true"), "{}", outputs[0]);
        assert!(outputs[0].contains(ISSUER), "{}", outputs[0]);
    }

    // --- tokens and hashes ---

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_tokens_are_prefixed_random_and_dotless() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        for token in [&a, &b] {
            let digits = token.strip_prefix("vgt_").unwrap();
            assert_eq!(digits.len(), 64);
            assert!(
                digits
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn a_printed_entry_reads_back_and_authenticates_its_token() {
        for principal in [
            principal(
                Role::Supervisor,
                &["paris"],
                &["team-a", "team \"b\""],
                None,
            ),
            principal(Role::Advisor, &["lyon"], &[], Some("a042")),
            principal(Role::Admin, &[], &[], None),
        ] {
            let token = generate_token();
            let entry = tokens_file_entry(&hash_token(&token), &principal);
            assert!(entry.starts_with("[[token]]\nsha256 = "), "{entry}");
            let dir = tempfile::tempdir().unwrap();
            let auth = tokens_authenticator(&dir, &entry);
            assert_eq!(auth.authenticate(Some(&bearer(&token))).unwrap(), principal);
        }
    }

    // --- authorization ---

    #[test]
    fn roles_read_in_lowercase_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        assert_eq!("Supervisor".parse::<Role>(), Err(UnknownRole));
    }

    #[test]
    fn the_anonymous_admin_may_do_everything() {
        let anonymous = Principal::anonymous_admin();
        assert_eq!(anonymous.subject, "anonymous");
        assert_eq!(anonymous.validate(), Ok(()));
        assert!(anonymous.may_administer());
        assert!(anonymous.may_read_site("anywhere"));
    }

    /// What each role may do, at its own site ("paris", team "team-a", advisor "a1" of
    /// team-a) and elsewhere. Columns: list paris, list lyon, read site paris, read site
    /// lyon, team-a@paris, team-b@paris, team-a@lyon (same id, other site), queue served by
    /// team-a@paris, queue served by team-b@paris, queue served by team-a@lyon, advisor a1
    /// (team-a)@paris, advisor a2 (team-a)@paris, advisor a3 (team-b)@paris, advisor a1 at
    /// lyon, advisor of unknown team@paris, contact ids, administer.
    #[test]
    fn the_decision_table_of_every_role() {
        let advisor = principal(Role::Advisor, &["paris"], &[], Some("a1"));
        let supervisor = principal(Role::Supervisor, &["paris"], &["team-a"], None);
        let manager = principal(Role::Manager, &["paris"], &[], None);
        let admin = principal(Role::Admin, &[], &[], None);
        let table: [(&Principal, [bool; 17]); 4] = [
            (
                &advisor,
                [
                    true, false, false, false, false, false, false, false, false, false, true,
                    false, false, false, false, false, false,
                ],
            ),
            (
                &supervisor,
                [
                    true, false, false, false, true, false, false, true, false, false, true, true,
                    false, false, false, true, false,
                ],
            ),
            (
                &manager,
                [
                    true, false, true, false, true, true, false, true, true, false, true, true,
                    true, false, true, true, false,
                ],
            ),
            (&admin, [true; 17]),
        ];
        for (who, expected) in table {
            let actual = [
                who.may_list_site("paris"),
                who.may_list_site("lyon"),
                who.may_read_site("paris"),
                who.may_read_site("lyon"),
                who.may_read_team("paris", "team-a"),
                who.may_read_team("paris", "team-b"),
                who.may_read_team("lyon", "team-a"),
                who.may_read_queue("paris", "q1", &["team-c", "team-a"]),
                who.may_read_queue("paris", "q2", &["team-b"]),
                who.may_read_queue("lyon", "q1", &["team-a"]),
                who.may_read_advisor("paris", "a1", Some("team-a")),
                who.may_read_advisor("paris", "a2", Some("team-a")),
                who.may_read_advisor("paris", "a3", Some("team-b")),
                who.may_read_advisor("lyon", "a1", Some("team-a")),
                who.may_read_advisor("paris", "a4", None),
                who.may_see_contact_ids(),
                who.may_administer(),
            ];
            assert_eq!(actual, expected, "{:?}", who.role);
        }
    }

    #[test]
    fn scope_edge_cases() {
        // A queue no team serves is for managers and admins only.
        let supervisor = principal(Role::Supervisor, &["paris", "lyon"], &["team-a"], None);
        assert!(!supervisor.may_read_queue("paris", "q", &[]));
        // Teams apply within each site of the supervisor.
        assert!(supervisor.may_read_team("lyon", "team-a"));
        assert!(supervisor.may_list_site("lyon"));
        assert!(!supervisor.may_read_team("nice", "team-a"));
        // Sites compare exactly.
        assert!(!supervisor.may_read_team("Paris", "team-a"));
        assert!(!supervisor.may_read_team("paris", "Team-A"));
        // An advisor unknown to the site is still only themself.
        let advisor = principal(Role::Advisor, &["paris"], &[], Some("a1"));
        assert!(advisor.may_read_advisor("paris", "a1", None));
        assert!(!advisor.may_read_advisor("paris", "a10", None));
        // A manager of two sites.
        let manager = principal(Role::Manager, &["paris", "lyon"], &[], None);
        assert!(manager.may_read_site("lyon"));
        assert!(!manager.may_read_site("nice"));
        assert!(!manager.may_list_site("nice"));
    }
}
