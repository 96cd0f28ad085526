//! `vigie token`: make API tokens for the tokens file, and hash existing ones.
//!
//! A thin shell over `vigie_api::auth`, where the tokens file format, the scope rules and the
//! hashing live (and are tested).

use std::io::{BufRead, Write};

use anyhow::Context as _;
use vigie_api::auth::{Principal, Role, generate_token, hash_token, tokens_file_entry};

/// Make a bearer token for the gRPC API (`new`), or print the hash of one (`hash`).
///
/// The service stores only the SHA-256 of each token, in the tokens file named by
/// `api.auth.tokens_file`; see docs/api.md.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    vigie token new --role supervisor --subject alice --site paris --team team-a --team team-b\n  \
    vigie token new --role advisor --subject a042 --site paris --advisor a042\n  \
    vigie token new --role admin --subject ops > admin.token\n  \
    vigie token hash < admin.token")]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The `vigie token` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a new random token: the token alone on standard output (shown this once, give it
    /// to its holder), and on standard error the `[[token]]` entry, with the token's hash
    /// only, to add to the tokens file.
    New(NewTokenArgs),
    /// Read a token on standard input and print its SHA-256 hash, as the tokens file stores
    /// it.
    Hash,
}

/// Who the new token is for and what it may read.
#[derive(clap::Args, Debug)]
pub struct NewTokenArgs {
    /// Role: advisor (their own view), supervisor (their teams, those teams' advisors and
    /// campaign queues), manager (whole sites), admin (everything and the Admin service).
    #[arg(long, value_enum)]
    pub role: RoleArg,

    /// Who holds the token, as it appears in logs and audit (a login, a wallboard's name).
    #[arg(long)]
    pub subject: String,

    /// A site of the scope; repeat for several. Exactly one for an advisor, at least one for
    /// a supervisor or a manager, none for an admin.
    #[arg(long = "site", value_name = "SITE")]
    pub sites: Vec<String>,

    /// A team of a supervisor, within each of their sites; repeat for several.
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,

    /// The advisor id of an advisor.
    #[arg(long, value_name = "ADVISOR")]
    pub advisor: Option<String>,
}

/// A role on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// Their own advisor view.
    Advisor,
    /// Their teams, the advisors of those teams and their teams' campaign queues.
    Supervisor,
    /// Whole sites.
    Manager,
    /// Everything, and the Admin service.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Advisor => Role::Advisor,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Manager => Role::Manager,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Runs `vigie token`.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    match &args.command {
        TokenCommand::New(new) => new_token(
            new,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
        TokenCommand::Hash => {
            let hash = hash_from(&mut std::io::stdin().lock())?;
            writeln!(std::io::stdout().lock(), "{hash}")?;
            Ok(())
        }
    }
}

/// Writes a new token on `out` and its tokens-file entry, with instructions, on `err`.
fn new_token(args: &NewTokenArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let principal = Principal {
        subject: args.subject.clone(),
        role: args.role.into(),
        sites: args.sites.clone(),
        teams: args.teams.clone(),
        advisor: args.advisor.clone(),
    };
    principal.validate().map_err(|scope| {
        anyhow::anyhow!(
            "this {} token is not valid: {scope} (the flags are --site, --team and --advisor)",
            principal.role
        )
    })?;
    let token = generate_token();
    let entry = tokens_file_entry(&hash_token(&token), &principal);
    writeln!(out, "{token}")?;
    out.flush()?;
    write!(
        err,
        "The token above is shown only this once: give it to {subject:?}, who sends it as \
         `authorization: Bearer <token>`.\n\
         Add this entry to the tokens file (api.auth.tokens_file; it holds only the token's \
         hash) and restart the service:\n\n{entry}",
        subject = principal.subject
    )?;
    Ok(())
}

/// The hash of the token read from `input`: its first line, surrounding spaces removed.
fn hash_from(input: &mut dyn BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the token on standard input")?;
    let token = line.trim();
    if token.is_empty() {
        anyhow::bail!("no token on standard input");
    }
    if token.contains(char::is_whitespace) {
        anyhow::bail!("a token has no spaces: give the token alone, without `Bearer`");
    }
    Ok(hash_token(token))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.
mod tests {
    use super::*;

    use clap::Parser;
    use vigie_api::auth::{AuthConfig, Authenticator};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    fn parse(args: &[&str]) -> Result<TokenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("token").chain(args.iter().copied()))
            .map(|cli| cli.token)
    }

    fn new(args: &[&str]) -> anyhow::Result<(String, String)> {
        let TokenCommand::New(new) = parse(args).unwrap().command else {
            panic!("not `new`");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        new_token(&new, &mut out, &mut err)?;
        Ok((
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        ))
    }

    #[test]
    fn a_new_token_authenticates_with_the_printed_entry() {
        let (out, err) = new(&[
            "new",
            "--role",
            "supervisor",
            "--subject",
            "alice",
            "--site",
            "paris",
            "--team",
            "team-a",
            "--team",
            "team-b",
        ])
        .unwrap();
        let token = out.strip_suffix('\n').unwrap();
        assert!(token.starts_with("vgt_"), "{out}");
        assert!(!err.contains(token), "the token is printed once: {err}");
        // The entry, pasted as is, makes a valid tokens file that knows the token.
        let entry = &err[err.find("[[token]]").unwrap()..];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, entry).unwrap();
        let auth = Authenticator::from_config(&AuthConfig {
            tokens_file: Some(path),
            jwt: None,
        })
        .unwrap();
        let principal = auth.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "alice".to_owned(),
                role: Role::Supervisor,
                sites: vec!["paris".to_owned()],
                teams: vec!["team-a".to_owned(), "team-b".to_owned()],
                advisor: None,
            }
        );
        // `vigie token hash` gives the hash of the entry.
        let hash = hash_from(&mut format!("{token}\n").as_bytes()).unwrap();
        assert!(entry.contains(&format!("sha256 = \"{hash}\"")), "{entry}");
    }

    #[test]
    fn each_new_token_is_different() {
        let args = ["new", "--role", "admin", "--subject", "ops"];
        let (first, _) = new(&args).unwrap();
        let (second, _) = new(&args).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn the_scope_rules_are_checked() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "new",
                    "--role",
                    "supervisor",
                    "--subject",
                    "a",
                    "--site",
                    "paris",
                ],
                "at least one team",
            ),
            (
                &[
                    "new",
                    "--role",
                    "advisor",
                    "--subject",
                    "a",
                    "--site",
                    "paris",
                ],
                "needs `advisor`",
            ),
            (
                &["new", "--role", "manager", "--subject", "a"],
                "at least one site",
            ),
            (
                &[
                    "new",
                    "--role",
                    "admin",
                    "--subject",
                    "a",
                    "--site",
                    "paris",
                ],
                "an admin sees everything",
            ),
            (&["new", "--role", "admin", "--subject", " "], "subject"),
        ];
        for (args, expected) in cases {
            let error = new(args).unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
        let error = parse(&["new", "--role", "boss", "--subject", "a"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn hash_reads_one_token() {
        assert_eq!(
            hash_from(&mut "  abc \n".as_bytes()).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hash_from(&mut "\n".as_bytes()).is_err());
        assert!(hash_from(&mut "Bearer abc\n".as_bytes()).is_err());
        assert!(matches!(
            parse(&["hash"]).unwrap().command,
            TokenCommand::Hash
        ));
    }
}
