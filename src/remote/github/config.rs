//! `[remote] type = "github"`: the keys the GitHub remote takes, their defaults, and how they are
//! checked.

use std::path::{Path, PathBuf};

use crate::remote::net;
use serde::{Deserialize, Serialize};

/// `[remote] type = "github"`.
#[derive(Clone, Debug, Serialize)]
pub struct GithubConfig {
    /// `owner/name`.
    pub repo: String,
    /// REST API root: `https://api.github.com`, or a GitHub Enterprise Server's `/api/v3`.
    pub api_url: String,
    /// A file holding the token (refused unless mode 0600).
    pub token_file: Option<PathBuf>,
    /// Largest asset GitHub accepts; bigger archives are split into parts.
    pub max_asset_bytes: u64,
    /// Real elapsed time one operation may keep trying (attempts and waits included).
    pub retry_budget_secs: u64,
    /// Longest single wait between retries, whatever the server asks for.
    pub retry_max_delay_ms: u64,
    /// An upload or download with no bytes moved for this long has stalled (and is retried);
    /// one that moves is never cut off.
    pub stall_secs: u64,
    /// Connecting and answering, for each JSON API call.
    pub reply_timeout_secs: u64,
    /// GitHub's answer after the last byte of an upload (it stores the asset first).
    pub answer_timeout_secs: u64,
    /// How long `backup now`/`run` may use GitHub in all; then what is left waits locally.
    pub push_deadline_secs: u64,
}

/// GitHub's per-asset limit: each file must be under 2 GiB.
pub const GITHUB_MAX_ASSET_BYTES: u64 = (2 << 30) - 1;
/// Retrying stops after this long, well inside the hourly cadence.
pub const DEFAULT_RETRY_BUDGET_SECS: u64 = 15 * 60;
/// At most this long between two tries (a reset far away is not waited for blindly).
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 5 * 60 * 1000;
/// No bytes moved for this long: the transfer has stalled.
pub const DEFAULT_STALL_SECS: u64 = 60;
/// A JSON API call's connect and answer time.
pub const DEFAULT_REPLY_TIMEOUT_SECS: u64 = 60;
/// GitHub's answer after an upload's last byte.
pub const DEFAULT_ANSWER_TIMEOUT_SECS: u64 = 10 * 60;
/// A run's time with GitHub: within the hourly cadence, so the next run never finds it locked.
pub const DEFAULT_PUSH_DEADLINE_SECS: u64 = 45 * 60;

/// The `[remote]` table as written (besides `type`), before defaults and checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::remote) struct GithubSettings {
    repo: Option<String>,
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    max_asset_bytes: Option<u64>,
    retry_budget_secs: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    stall_secs: Option<u64>,
    reply_timeout_secs: Option<u64>,
    answer_timeout_secs: Option<u64>,
    push_deadline_secs: Option<u64>,
}

impl GithubConfig {
    /// The settings with their defaults, `token_file` resolved by `resolve`.
    ///
    /// # Errors
    /// What is wrong, in words: no `repo`, a `repo` not of the form owner/name, an `api_url`
    /// that is not http(s), a timeout of 0.
    pub(in crate::remote) fn from_settings(
        settings: GithubSettings,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<GithubConfig, String> {
        let at_least_one = crate::remote::seconds_at_least_one;
        let repo = settings.repo.ok_or_else(|| {
            "[remote] type = \"github\" needs `repo = \"owner/name\"`, a private repository"
                .to_string()
        })?;
        let valid = repo.split_once('/').is_some_and(|(o, n)| {
            !o.is_empty()
                && !n.is_empty()
                && !n.contains('/')
                && repo
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        });
        if !valid {
            return Err(format!(
                "[remote] repo `{repo}` is not of the form owner/name"
            ));
        }
        let api_url = settings
            .api_url
            .unwrap_or_else(|| "https://api.github.com".into())
            .trim_end_matches('/')
            .to_string();
        // Checked here, before a token is looked up for its host; a URL is shown without its
        // userinfo or query, which can hold secrets.
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "[remote] api_url `{}` must start with https://",
                net::redact(&api_url)
            ));
        }
        if let Err(e) = reqwest::Url::parse(&api_url) {
            return Err(format!("[remote] api_url {}: {e}", net::redact(&api_url)));
        }
        Ok(GithubConfig {
            repo,
            api_url,
            token_file: settings.token_file.as_deref().map(resolve),
            max_asset_bytes: settings
                .max_asset_bytes
                .unwrap_or(GITHUB_MAX_ASSET_BYTES)
                .clamp(1, GITHUB_MAX_ASSET_BYTES),
            retry_budget_secs: settings
                .retry_budget_secs
                .unwrap_or(DEFAULT_RETRY_BUDGET_SECS),
            retry_max_delay_ms: settings
                .retry_max_delay_ms
                .unwrap_or(DEFAULT_RETRY_MAX_DELAY_MS),
            stall_secs: at_least_one(settings.stall_secs, DEFAULT_STALL_SECS, "stall_secs")?,
            reply_timeout_secs: at_least_one(
                settings.reply_timeout_secs,
                DEFAULT_REPLY_TIMEOUT_SECS,
                "reply_timeout_secs",
            )?,
            answer_timeout_secs: at_least_one(
                settings.answer_timeout_secs,
                DEFAULT_ANSWER_TIMEOUT_SECS,
                "answer_timeout_secs",
            )?,
            push_deadline_secs: at_least_one(
                settings.push_deadline_secs,
                DEFAULT_PUSH_DEADLINE_SECS,
                "push_deadline_secs",
            )?,
        })
    }
}
