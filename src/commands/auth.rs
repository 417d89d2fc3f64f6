//! `backup auth login|status|logout`: the GitHub token in the OS keyring. The token is read
//! from stdin (hidden on a terminal) and never printed.

use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use serde::Serialize;

use backup_agent::auth::{Token, TokenSource};
use backup_agent::error::Error;
use backup_agent::remote::github::RepoState;
use backup_agent::remote::{GithubConfig, GithubRemote, RemoteConfig, S3Config, S3Remote};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Read a token from stdin, check it reaches the repository, store it in the OS keyring
    Login,
    /// Say which token source is in use and whether the repository is reachable and private
    Status(StatusArgs),
    /// Remove the token this tool stored in the OS keyring
    Logout,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Status {
    source: TokenSource,
    source_text: String,
    repo: String,
    repo_state: RepoState,
}

pub fn run(config_path: Option<&Path>, command: &Command) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config_path)?;
    let github = match &config.remote {
        Some(RemoteConfig::Github(github)) => github.clone(),
        Some(RemoteConfig::S3(s3)) => return s3_keys(s3, command),
        _ => {
            return Err(Error::Config(format!(
                "{} has no GitHub remote; `backup auth` keeps the token for `[remote] type = \"github\"`",
                config.file.display()
            )));
        }
    };
    match command {
        Command::Login => login(github),
        Command::Status(args) => status(github, args),
        Command::Logout => logout(&github),
    }
}

fn login(github: GithubConfig) -> Result<u8, Error> {
    let token = Token::given(&read_token()?)?.ok_or_else(|| {
        Error::Config(
            "no token on stdin; pipe it in (`gh auth token | backup auth login`) or paste it at the prompt".into(),
        )
    })?;
    let api_url = github.api_url.clone();
    let repo = github.repo.clone();
    // Checked before it is stored: a rejected token (401) fails here and is not kept.
    let state = GithubRemote::with_token(github, token.clone())?.repo_state()?;
    backup_agent::auth::store(&api_url, &token)?;
    outln!(
        "the token is stored in the OS keyring for {api_url}; repository {repo} {}",
        describe(state)
    );
    for (var, _) in backup_agent::auth::env_vars(&api_url) {
        if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            errln!("backup: note: {var} is set, and is used before the keyring");
        }
    }
    crate::ok()
}

fn status(github: GithubConfig, args: &StatusArgs) -> Result<u8, Error> {
    let repo = github.repo.clone();
    let remote = GithubRemote::new(github);
    // Someone waits on the answer: an unreachable GitHub is said within seconds.
    remote.answer_quickly();
    let source = remote.token()?.source.clone();
    let repo_state = remote.repo_state()?;
    let status = Status {
        source_text: source.to_string(),
        source,
        repo,
        repo_state,
    };
    if args.json {
        super::print_json(&status);
    } else {
        outln!("token: from {}", status.source_text);
        outln!("repository {} {}", status.repo, describe(repo_state));
    }
    Ok(match repo_state {
        RepoState::Private => crate::exit::OK,
        RepoState::Public | RepoState::Internal | RepoState::Missing => crate::exit::REMOTE,
    })
}

fn logout(github: &GithubConfig) -> Result<u8, Error> {
    if backup_agent::auth::forget(&github.api_url)? {
        outln!(
            "the token for {} is removed from the OS keyring",
            github.api_url
        );
    } else {
        outln!("the OS keyring held no token for {}", github.api_url);
    }
    crate::ok()
}

fn describe(state: RepoState) -> &'static str {
    match state {
        RepoState::Private => "is private and reachable",
        RepoState::Public => "is PUBLIC: nothing will be pushed to it; make it private",
        RepoState::Internal => {
            "is INTERNAL (its whole enterprise can read it): nothing will be pushed to it; make it private"
        }
        RepoState::Missing => {
            "was not found, or the token cannot see it; `backup init --create` makes it"
        }
    }
}

/// The token from stdin: hidden at a terminal prompt, or the first line of a pipe.
fn read_token() -> Result<String, Error> {
    let stdin = std::io::stdin();
    let read_error =
        |e: std::io::Error| Error::System(format!("cannot read the token from stdin: {e}"));
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    err!("GitHub token (input hidden): ");
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let result = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, saved);
    }
    errln!();
    result.map_err(read_error)?;
    Ok(line)
}

#[derive(Serialize)]
struct S3Status {
    source: backup_agent::remote::s3::CredentialSource,
    source_text: String,
    bucket: String,
    reachable: bool,
}

/// `auth` for an S3 remote: its keys live where the AWS tools keep them, so `status` names
/// their source and checks the bucket, and `login`/`logout` say where to put them.
fn s3_keys(s3: &S3Config, command: &Command) -> Result<u8, Error> {
    let Command::Status(args) = command else {
        return Err(Error::Config(
            "an S3 remote's keys are not kept by `backup auth`: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or credentials_file (mode 0600) under [remote]".into(),
        ));
    };
    let remote = S3Remote::new(s3.clone());
    remote.answer_quickly();
    let source = remote.credential_source()?;
    let reachable = remote.check_reachable();
    let status = S3Status {
        source_text: source.to_string(),
        source,
        bucket: s3.bucket.clone(),
        reachable: reachable.is_ok(),
    };
    if args.json {
        super::print_json(&status);
    } else {
        outln!("keys: from {}", status.source_text);
        match &reachable {
            Ok(()) => outln!("bucket {} is reachable", status.bucket),
            Err(e) => outln!("bucket {}: {e}", status.bucket),
        }
    }
    Ok(if status.reachable {
        crate::exit::OK
    } else {
        crate::exit::REMOTE
    })
}
