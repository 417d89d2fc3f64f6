//! What `backup doctor` says of the GitHub remote: where the token comes from (and whether a
//! scheduled job sees it), whether GitHub answers, and whether the repository is private.

use super::{GithubRemote, RepoState};
use crate::auth::TokenSource;
use crate::remote::{DiagnosedCheck, DiagnosedVerdict};

/// The doctor's checks answer within this, even when the network is down (a run's own budget is
/// far longer, to ride out an outage).
const DOCTOR_RETRY_BUDGET_SECS: u64 = 10;

impl GithubRemote {
    /// `backup doctor`'s lines: the token, the remote, the repository's privacy. Asks GitHub
    /// with a short budget, so an unreachable server costs seconds.
    pub fn diagnose(&self) -> Vec<DiagnosedCheck> {
        use DiagnosedVerdict::{Fail, Warn};
        let mut config = self.config.clone();
        config.retry_budget_secs = config.retry_budget_secs.min(DOCTOR_RETRY_BUDGET_SECS);
        let repo = config.repo.clone();
        let token_var = crate::auth::env_vars(&config.api_url)[0].0;
        let remote = GithubRemote::new(config);
        // A hung server costs the doctor seconds, not the full answer timeout.
        remote.answer_quickly();
        let token = match remote.token() {
            Ok(token) => {
                let detail = format!("from {}", token.source);
                match token.source {
                    // The scheduled job starts without this shell's variables and login.
                    TokenSource::EnvGithubToken
                    | TokenSource::EnvGhToken
                    | TokenSource::EnvGhEnterpriseToken
                    | TokenSource::EnvGithubEnterpriseToken
                    | TokenSource::GhCli => DiagnosedCheck::not_ok(
                        Warn,
                        "token",
                        detail,
                        "a cron or systemd job does not see it; store it with `backup auth login` or set token_file",
                    ),
                    _ => DiagnosedCheck::ok("token", detail),
                }
            }
            Err(e) => {
                return vec![DiagnosedCheck::not_ok(
                    Fail,
                    "token",
                    e.to_string(),
                    format!("run `backup auth login` (or set {token_var} for this job)"),
                )];
            }
        };
        let answers = || DiagnosedCheck::ok("remote", format!("{} answers", remote.describe()));
        let not_private = |detail: String, fix: &str| {
            (
                answers(),
                DiagnosedCheck::not_ok(Fail, "repo private", detail, fix),
            )
        };
        let make_private = "make it private in its GitHub settings, or name a private repository";
        let (reachable, private) = match remote.repo_state() {
            Ok(RepoState::Private) => (
                answers(),
                DiagnosedCheck::ok("repo private", format!("{repo} is private")),
            ),
            Ok(RepoState::Public) => not_private(
                format!("{repo} is PUBLIC: nothing is pushed to it"),
                make_private,
            ),
            Ok(RepoState::Internal) => not_private(
                format!(
                    "{repo} is INTERNAL: its whole enterprise can read it, so nothing is pushed to it"
                ),
                make_private,
            ),
            Ok(RepoState::Missing) => not_private(
                format!("{repo} was not found, or the token cannot see it"),
                "run `backup init --create`, or give the token access to it",
            ),
            Err(e) => (
                DiagnosedCheck::not_ok(
                    Fail,
                    "remote",
                    e.to_string(),
                    "check the network, [remote] api_url and the token",
                ),
                DiagnosedCheck::not_ok(
                    Fail,
                    "repo private",
                    "unknown: the repository could not be read",
                    "fix the remote first",
                ),
            ),
        };
        vec![token, reachable, private]
    }
}
