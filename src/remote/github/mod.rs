//! The GitHub Releases remote: one published release per snapshot in a private repository, the
//! archive as its asset.
//!
//! Every request, JSON calls and transfers alike, goes through the one reqwest client of
//! `remote::net` (the OS certificate store, `HTTPS_PROXY`/`NO_PROXY`, a connect timeout). JSON
//! calls get an answer timeout; uploads and downloads stream from and to disk with a
//! Content-Length under `net`'s stall watchdog instead, so a slow transfer that moves is never
//! cut off. Every call is retried on transient faults (network, 5xx, 429, rate limits) within
//! `net`'s time budget of real elapsed time, honouring `retry-after` and `x-ratelimit-reset`; a
//! retry that meets what an earlier attempt already made converges on it instead of failing.
//! GraphQL (full listings) goes through the same client.
//!
//! `config` is the `[remote]` table it takes; `http` sorts GitHub's answers (its rate limits,
//! its error bodies); `draft` makes a snapshot's release (draft, upload, check, publish);
//! `listing` reads what the repository holds; `transfer` moves archives up and down; `doctor`
//! is what `backup doctor` says of it.

pub mod config;
mod doctor;
mod draft;
mod http;
mod listing;
mod release;
mod transfer;

use crate::auth::token::{self, Token};

use std::cell::{Cell, OnceCell};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::net;
use super::{Readiness, RemoteSnapshot, Upload};
use crate::error::{Error, RemoteError, Result};
use crate::progress::Progress;
use crate::tag::Tag;
pub use config::{
    DEFAULT_ANSWER_TIMEOUT_SECS, DEFAULT_PUSH_DEADLINE_SECS, DEFAULT_REPLY_TIMEOUT_SECS,
    DEFAULT_RETRY_BUDGET_SECS, DEFAULT_RETRY_MAX_DELAY_MS, DEFAULT_STALL_SECS,
    GITHUB_MAX_ASSET_BYTES, GithubConfig,
};
use http::{GITHUB, GithubFault, GithubReply, classify, next_link};
use net::{ClientSettings, Fault, Reply, Retrier, RetrySettings, exchange, location, same_origin};

/// Redirects followed for one request (a renamed repository needs one).
const MAX_REDIRECTS: usize = 5;

use listing::snapshot_of;
use release::{Asset, Release, body_record, pieces, stored_pieces};

/// What the token sees of the configured repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoState {
    Private,
    Public,
    /// `visibility: internal`: GitHub reports it as private, yet every member of the enterprise
    /// can read it.
    Internal,
    /// Not there, or not visible to the token (GitHub answers 404 for both).
    Missing,
}

#[derive(Debug)]
pub struct GithubRemote {
    config: GithubConfig,
    client: OnceCell<Client>,
    repo_checked: std::cell::Cell<bool>,
    /// When this run must stop using GitHub (`backup now`/`run`).
    deadline: Cell<Option<Instant>>,
    /// Someone waits for the answer (`backup list`): give up within seconds.
    quick: Cell<bool>,
    /// The drafts the last full listing met, for [`GithubRemote::delete_abandoned_drafts`].
    drafts_listed: std::cell::RefCell<Option<Vec<ListedDraft>>>,
}

/// A draft release as a listing saw it.
#[derive(Debug, Clone)]
struct ListedDraft {
    id: u64,
    tag: Tag,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A published release of the same tag exists.
    published: bool,
}

/// A draft younger than this may belong to a push in progress on another run.
const DRAFT_ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(6);

#[derive(Debug)]
struct Client {
    retrier: Retrier,
    http: reqwest::Client,
    token: Token,
    api_url: String,
    owner: String,
    name: String,
    stall: Duration,
    answer_timeout: Duration,
}

impl GithubRemote {
    pub fn new(config: GithubConfig) -> GithubRemote {
        GithubRemote {
            config,
            client: OnceCell::new(),
            repo_checked: std::cell::Cell::new(false),
            deadline: Cell::new(None),
            quick: Cell::new(false),
            drafts_listed: std::cell::RefCell::new(None),
        }
    }

    /// For a command someone waits on at once (`backup list`): each operation gives up within
    /// seconds, so an unreachable GitHub is said quickly instead of retried for the budget.
    pub fn answer_quickly(&self) {
        self.quick.set(true);
        if let Some(client) = self.client.get() {
            client.retrier.answer_quickly(true);
        }
    }

    /// From now on, this remote gives up at `push_deadline_secs` from now: for a run, which
    /// holds the run lock meanwhile.
    pub fn start_run_deadline(&self) {
        let deadline = Instant::now() + Duration::from_secs(self.config.push_deadline_secs);
        self.deadline.set(Some(deadline));
        if let Some(client) = self.client.get() {
            client.retrier.set_deadline(Some(deadline));
        }
    }

    /// A remote that uses `token` instead of looking for one.
    ///
    /// # Errors
    /// A malformed `api_url`, or no network runtime.
    pub fn with_token(config: GithubConfig, token: Token) -> Result<GithubRemote> {
        let client = Client::new(&config, token)?;
        Ok(GithubRemote {
            config,
            client: OnceCell::from(client),
            repo_checked: std::cell::Cell::new(false),
            deadline: Cell::new(None),
            quick: Cell::new(false),
            drafts_listed: std::cell::RefCell::new(None),
        })
    }

    pub fn describe(&self) -> String {
        format!("GitHub repository {}", self.config.repo)
    }

    /// The token in use and where it came from (looked up on first use).
    ///
    /// # Errors
    /// No token anywhere, or an unsafe token file.
    pub fn token(&self) -> Result<&Token> {
        Ok(&self.client()?.token)
    }

    fn client(&self) -> Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let token = token::find(&self.config.api_url, self.config.token_file.as_deref())?;
        let client = Client::new(&self.config, token)?;
        client.retrier.set_deadline(self.deadline.get());
        client.retrier.answer_quickly(self.quick.get());
        Ok(self.client.get_or_init(|| client))
    }

    /// Whether the repository exists and is private, as the token sees it.
    ///
    /// # Errors
    /// The token is refused (401), or GitHub cannot be reached.
    pub fn repo_state(&self) -> Result<RepoState> {
        let client = self.client()?;
        let path = client.repo_path("");
        let reply = client.retrying(|| client.api_call(reqwest::Method::GET, &path, None))?;
        match reply.status {
            200 => {
                let repo: Value = reply.json().map_err(Fault::into_error)?;
                // `visibility` first: an internal repository also says `private: true`.
                Ok(
                    match (repo["visibility"].as_str(), repo["private"].as_bool()) {
                        (Some("internal"), _) => RepoState::Internal,
                        (Some("public"), _) | (None, Some(false) | None) => RepoState::Public,
                        _ => RepoState::Private,
                    },
                )
            }
            404 => Ok(RepoState::Missing),
            other => Err(RemoteError::failed(format!(
                "reading repository {} answered {other}",
                self.config.repo
            ))
            .into()),
        }
    }

    /// Before the first upload of a run: the repository must exist and be private.
    fn check_repo(&self) -> Result<()> {
        if self.repo_checked.get() {
            return Ok(());
        }
        match self.repo_state()? {
            RepoState::Private => {}
            RepoState::Public => {
                return Err(RemoteError::unsafe_to_use(format!(
                    "repository {} is public; snapshots hold your private data, so nothing was uploaded: make it private (Settings > General > Danger Zone) or name a private repository",
                    self.config.repo
                ))
                .into());
            }
            RepoState::Internal => {
                return Err(RemoteError::unsafe_to_use(format!(
                    "repository {} is internal: everyone in its enterprise can read it, and snapshots hold your private data, so nothing was uploaded; make it private (Settings > General > Danger Zone) or name a private repository",
                    self.config.repo
                ))
                .into());
            }
            RepoState::Missing => {
                return Err(RemoteError::not_found(format!(
                    "repository {} was not found, or the token cannot see it; run `backup init --create` to create it as a private repository, or give the token access to it",
                    self.config.repo
                ))
                .into());
            }
        }
        self.repo_checked.set(true);
        Ok(())
    }

    /// Checks the repository is ready for snapshots; with `create`, makes a missing one as a
    /// private repository with a first commit (GitHub cannot make releases in an empty one).
    pub fn init(&self, create: bool) -> Result<Readiness> {
        if !create || self.repo_state()? != RepoState::Missing {
            self.check_repo()?;
            return Ok(Readiness {
                created: false,
                detail: format!("{} is private", self.describe()),
            });
        }
        let created = self.client()?.create_repo()?;
        let full_name = created["full_name"].as_str().unwrap_or("");
        if full_name != self.config.repo {
            return Err(RemoteError::failed(format!(
                "GitHub created {full_name} (repositories are made under the token's own account), but the config names {}; set `repo = \"{full_name}\"`, or create {} on github.com for an organisation",
                self.config.repo, self.config.repo
            ))
            .into());
        }
        self.check_repo()?;
        Ok(Readiness {
            created: true,
            detail: format!("{} was created as a private repository", self.describe()),
        })
    }

    /// Deletes the release of `tag`, then its git tag, so tags do not pile up in the
    /// repository. Deleting what is already gone succeeds, so an interrupted delete converges.
    /// A tag GitHub refuses to delete (an immutable release's, or one a tag ruleset locks) is
    /// left, and the note returned says so: the snapshot itself is gone.
    pub fn delete(&self, tag: &Tag) -> Result<Option<String>> {
        let client = self.client()?;
        let mut immutable = false;
        if let Some(release) = client.release_by_tag(tag)? {
            immutable = release.immutable;
            client.delete_release(release.id)?;
        }
        // After the release: deleting a release's tag first turns it back into a draft.
        let path = client.repo_path(&format!("/git/refs/tags/{tag}"));
        let reply = client.retrying(|| client.api_call(reqwest::Method::DELETE, &path, None))?;
        let message = reply.validation().1;
        match reply.status {
            204 => Ok(None),
            422 if message.contains("Reference does not exist") => Ok(None),
            422 if immutable
                || message.contains("immutable")
                || message.contains("Repository rule violations") =>
            {
                Ok(Some(format!(
                    "release {tag} is deleted but GitHub keeps its git tag ({}); an immutable release's tag can never be used again, so it is left as is",
                    message
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("refused")
                        .trim()
                )))
            }
            // No repository (or none the token sees): tags of one that exists answer 422.
            404 => Err(RemoteError::not_found(format!(
                "deleting tag {tag} answered 404 ({message})"
            ))
            .into()),
            other => Err(RemoteError::failed(format!(
                "deleting tag {tag} answered {other} ({message})"
            ))
            .into()),
        }
    }

    /// Every snapshot in the repository, through GraphQL's cursor pagination: the REST list of
    /// releases stops at 1,000 results, and a host's old snapshots sit behind the newer ones of
    /// every other host sharing the repository.
    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        let client = self.client()?;
        let releases = client.all_releases()?;
        let published: std::collections::HashSet<&str> = releases
            .iter()
            .filter(|r| !r.draft)
            .map(|r| r.tag_name.as_str())
            .collect();
        let drafts = releases
            .iter()
            .filter(|r| r.draft)
            .filter_map(|r| {
                Some(ListedDraft {
                    id: r.id,
                    tag: Tag::parse(&r.tag_name)?,
                    created_at: r
                        .created_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                    published: published.contains(r.tag_name.as_str()),
                })
            })
            .collect();
        *self.drafts_listed.borrow_mut() = Some(drafts);
        let mut found: Vec<RemoteSnapshot> = releases.iter().filter_map(snapshot_of).collect();
        found.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(found)
    }

    /// Deletes `host`'s drafts the last [`GithubRemote::list`] met that no push will finish:
    /// older than a few hours, and their tag published already (a second draft of a retried
    /// create) or without a local archive (`keep` lacks it: deleted, or never made here).
    /// Each may hold a whole archive. Returns how many went.
    ///
    /// # Errors
    /// A deletion GitHub refused or did not answer.
    pub fn delete_abandoned_drafts(
        &self,
        host: &str,
        keep: &std::collections::HashSet<Tag>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        let drafts = self.drafts_listed.borrow().clone().unwrap_or_default();
        let client = self.client()?;
        let mut deleted = 0;
        for draft in drafts {
            let old = draft
                .created_at
                .is_some_and(|at| now - at > DRAFT_ABANDONED_AFTER);
            if draft.tag.host() == host && old && (draft.published || !keep.contains(&draft.tag)) {
                client.delete_release(draft.id)?;
                tracing::info!("deleted an abandoned draft release of {}", draft.tag);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// The snapshots among `tags` the repository holds, without listing it all: releases are
    /// listed newest first, and a release of a tag is made after its snapshot, so the walk stops
    /// at the first page older than the oldest tag (or at the 1,000-result cap); tags it did not
    /// meet are looked up one by one, so the answer never depends on the list's order.
    pub fn holding(&self, tags: &[Tag]) -> Result<Vec<RemoteSnapshot>> {
        let client = self.client()?;
        let Some(oldest) = tags.iter().map(Tag::time).min() else {
            return Ok(Vec::new());
        };
        let wanted: std::collections::HashSet<&str> = tags.iter().map(Tag::as_str).collect();
        let mut found = Vec::new();
        let mut met = std::collections::HashSet::new();
        client.recent_releases(oldest - chrono::Duration::days(1), |release| {
            if !release.draft && wanted.contains(release.tag_name.as_str()) {
                met.insert(release.tag_name.clone());
                found.extend(snapshot_of(&release));
            }
        })?;
        for tag in tags.iter().filter(|t| !met.contains(t.as_str())) {
            if let Some(release) = client.release_by_tag(tag)? {
                found.extend(snapshot_of(&release));
            }
        }
        found.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(found)
    }

    /// Stores a snapshot so that immutable releases (a repository or organisation setting) work:
    /// the release is made as a draft, the archive uploaded into it and checked, and only then
    /// published, since a published immutable release takes no more assets. A published release
    /// of the tag (an earlier attempt's) is completed or kept; a draft an earlier attempt left is
    /// reused, and extra drafts of the tag are deleted.
    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        let client = self.client()?;
        self.check_repo()?;
        let pieces = pieces(upload, self.config.max_asset_bytes)?;
        if let Some(published) = client.release_by_tag(upload.tag)? {
            return client.complete_published(&published, upload, &pieces);
        }
        let (draft, retried_create) = client.draft_for(upload, &pieces)?;
        for piece in &pieces {
            client.upload_converging(&draft, upload, piece)?;
        }
        client.check_uploaded(&draft, upload.tag, &pieces)?;
        client.publish(&draft, upload, &pieces, retried_create)
    }

    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        let client = self.client()?;
        let release = client.release_by_tag(tag)?.ok_or_else(|| {
            RemoteError::not_found(format!("{} has no release {tag}", self.config.repo))
        })?;
        let assets = client.assets(release.id)?;
        let recorded = body_record(release.body.as_deref());
        let stored = stored_pieces(tag, &assets, recorded.as_ref()).ok_or_else(|| {
            RemoteError::corrupt(format!(
                "release {tag} has no complete archive (an upload may have been cut off); `backup run` on the machine that made it uploads it again"
            ))
        })?;
        let total: u64 = stored.iter().map(|a| a.size).sum();
        progress.phase("downloading", total);
        let result = if let [single] = stored.as_slice() {
            client.download(single, dest, progress)
        } else {
            client.download_parts(&stored, dest, progress)
        };
        progress.done();
        let (size, sha256) = result?;
        if size != total {
            return Err(RemoteError::corrupt(format!(
                "the download of {tag} has {size} bytes, GitHub lists {total}"
            ))
            .into());
        }
        Ok((size, sha256))
    }
}

impl Client {
    fn new(config: &GithubConfig, token: Token) -> Result<Client> {
        let (owner, name) = config
            .repo
            .split_once('/')
            .map(|(o, n)| (o.to_string(), n.to_string()))
            .expect("validated by the config");
        let reply_timeout = Duration::from_secs(config.reply_timeout_secs);
        let retrier = Retrier::new(
            GITHUB,
            RetrySettings {
                budget: Duration::from_secs(config.retry_budget_secs),
                max_delay: Duration::from_millis(config.retry_max_delay_ms),
                reply_timeout,
                deadline_secs: config.push_deadline_secs,
            },
        )?;
        reqwest::Url::parse(&config.api_url).map_err(|e| {
            Error::Config(format!(
                "[remote] api_url {}: {e}",
                net::redact(&config.api_url)
            ))
        })?;
        let http = net::build_client(&ClientSettings { reply_timeout })?;
        Ok(Client {
            retrier,
            http,
            token,
            api_url: config.api_url.clone(),
            owner,
            name,
            stall: Duration::from_secs(config.stall_secs),
            answer_timeout: Duration::from_secs(config.answer_timeout_secs),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }

    /// Runs one operation with retries on transient faults, within the retry budget and the
    /// run's deadline ([`Retrier::run_with_retries`]); what is left of a fault is GitHub's error.
    fn retrying<T, Fut>(&self, op: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
    {
        self.retrier.run_with_retries(op).map_err(Fault::into_error)
    }

    /// One JSON API call, with its answer timeout (never past the operation's budget).
    async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Reply, Fault> {
        self.retrier
            .answered_in_time(self.api_call_untimed(method, path, body))
            .await
    }

    async fn api_call_untimed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Reply, Fault> {
        // Paths are relative to the API root; `Link` and `Location` give absolute URLs.
        let mut target = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.api_url)
        };
        for _ in 0..MAX_REDIRECTS {
            let mut request = self
                .http
                .request(method.clone(), &target)
                .bearer_auth(self.token.expose())
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            if let Some(body) = body {
                request = request.json(body);
            }
            let Reply {
                status,
                headers,
                body,
            } = exchange(&GITHUB, request, "network").await?;
            // A renamed repository answers 301 (GET) or 307 to its new address on the API
            // host: follow it with the same method, body and token.
            if matches!(status, 301 | 307 | 308)
                && let Some(location) = location(&headers)
                && same_origin(&location, &self.api_url)
            {
                target = location;
                continue;
            }
            return match classify(status, &headers, &body) {
                Some(fault) => Err(fault),
                None => Ok(Reply {
                    status,
                    headers,
                    body,
                }),
            };
        }
        Err(Fault::Fatal(RemoteError::failed(format!(
            "GitHub redirected {} more than {MAX_REDIRECTS} times",
            net::redact(path)
        ))))
    }

    /// Every page of a list, following `Link: rel="next"`.
    fn all_pages<T: for<'de> Deserialize<'de>>(&self, first: &str) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            let reply = self.retrying(|| self.api_call(reqwest::Method::GET, &path, None))?;
            if reply.status == 404 {
                return Err(self.not_found());
            }
            let page: Vec<T> = reply.json().map_err(Fault::into_error)?;
            items.extend(page);
            next = next_link(&reply.headers);
        }
        Ok(items)
    }

    fn not_found(&self) -> Error {
        RemoteError::not_found(format!(
            "repository {}/{} was not found, or the token cannot see it; run `backup init --create` to create it as a private repository, or give the token access to it",
            self.owner, self.name
        ))
        .into()
    }

    /// `POST /user/repos`: private, with a README commit, without issues, projects or wiki.
    fn create_repo(&self) -> Result<Value> {
        let body = json!({
            "name": self.name,
            "description": "Snapshots made by backup-agent",
            "private": true,
            "auto_init": true,
            "has_issues": false,
            "has_projects": false,
            "has_wiki": false,
        });
        let reply =
            self.retrying(|| self.api_call(reqwest::Method::POST, "/user/repos", Some(&body)))?;
        match reply.status {
            201 => reply.json().map_err(Fault::into_error),
            422 => Err(RemoteError::denied(format!(
                "GitHub could not create {}/{} ({}); if it exists, give the token access to it",
                self.owner,
                self.name,
                reply.validation().1
            ))
            .into()),
            other => Err(RemoteError::failed(format!(
                "creating repository {}/{} answered {other}",
                self.owner, self.name
            ))
            .into()),
        }
    }

    fn assets(&self, release_id: u64) -> Result<Vec<Asset>> {
        self.all_pages(&self.repo_path(&format!("/releases/{release_id}/assets?per_page=100")))
    }

    fn release_by_tag(&self, tag: &Tag) -> Result<Option<Release>> {
        let path = self.repo_path(&format!("/releases/tags/{tag}"));
        let reply = self.retrying(|| self.api_call(reqwest::Method::GET, &path, None))?;
        match reply.status {
            200 => Ok(Some(reply.json().map_err(Fault::into_error)?)),
            _ => Ok(None),
        }
    }
}
