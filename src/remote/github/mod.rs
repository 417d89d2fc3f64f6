//! The GitHub Releases remote: one published release per snapshot in a private repository, the
//! archive as its asset.
//!
//! The JSON API goes through octocrab (its auth and base URL, so GitHub Enterprise Server works);
//! uploads and downloads go through reqwest, streaming from and to disk with a Content-Length,
//! because octocrab's `upload_asset` holds the whole body in memory and its asset stream does not
//! check the status. Every call is retried on transient faults (network, 5xx, 429, rate limits)
//! within a time budget, honouring `retry-after` and `x-ratelimit-reset`; a retry that meets what
//! an earlier attempt already made converges on it instead of failing.

mod token;

pub use token::{Token, TokenSource};

use std::cell::OnceCell;
use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RemoteSnapshot, Upload};
use crate::config::GithubConfig;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::tag::Tag;

/// Marks the machine-readable block in a release body.
const BODY_MARKER: &str = "<!-- backup-agent ";

#[derive(Debug)]
pub struct GithubRemote {
    config: GithubConfig,
    client: OnceCell<Client>,
    repo_checked: std::cell::Cell<bool>,
}

/// What went wrong with one HTTP exchange.
#[derive(Debug)]
enum Fault {
    /// Worth another try, after the server's requested delay if it gave one.
    Transient {
        message: String,
        wait: Option<Duration>,
    },
    /// Retrying cannot help: the message says what to do.
    Fatal(String),
}

impl Fault {
    fn transient(&self) -> bool {
        matches!(self, Fault::Transient { .. })
    }

    fn into_error(self) -> Error {
        match self {
            Fault::Transient { message, .. } => Error::Remote(format!(
                "GitHub kept failing ({message}); the snapshot stays local and is pushed by the next run"
            )),
            Fault::Fatal(message) => Error::Remote(message),
        }
    }
}

/// A response the caller inspects (2xx, 3xx, 404, 409 and 422 come back as is).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, Fault> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Fault::Fatal(format!(
                "GitHub answered {} with a body this tool cannot read ({e})",
                self.status
            ))
        })
    }

    /// The `code` of the first validation error, if any (`already_exists`, `custom`, …).
    fn validation(&self) -> (Option<String>, String) {
        let value: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let first = value["errors"].get(0);
        let code = first.and_then(|e| e["code"].as_str()).map(str::to_string);
        let message = first
            .and_then(|e| e["message"].as_str())
            .or_else(|| value["message"].as_str())
            .unwrap_or("")
            .to_string();
        (code, message)
    }
}

#[derive(Debug, Deserialize)]
struct Release {
    id: u64,
    tag_name: String,
    upload_url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(Clone, Debug, Deserialize)]
struct Asset {
    id: u64,
    name: String,
    size: u64,
    state: String,
    #[serde(default)]
    digest: Option<String>,
}

impl Asset {
    fn sha256(&self) -> Option<&str> {
        self.digest.as_deref()?.strip_prefix("sha256:")
    }
}

#[derive(Debug)]
struct Client {
    runtime: tokio::runtime::Runtime,
    api: octocrab::Octocrab,
    http: reqwest::Client,
    token: Token,
    api_url: String,
    owner: String,
    name: String,
    retry_budget: Duration,
    max_delay: Duration,
}

impl GithubRemote {
    pub fn new(config: GithubConfig) -> GithubRemote {
        GithubRemote {
            config,
            client: OnceCell::new(),
            repo_checked: std::cell::Cell::new(false),
        }
    }

    pub fn describe(&self) -> String {
        format!("GitHub repository {}", self.config.repo)
    }

    fn client(&self) -> Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = Client::new(&self.config)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Before the first upload of a run: the repository must exist and be private.
    fn check_repo(&self, client: &Client) -> Result<()> {
        if self.repo_checked.get() {
            return Ok(());
        }
        let path = client.repo_path("");
        let reply = client.block_on(|| client.api_call(reqwest::Method::GET, &path, None))?;
        match reply.status {
            200 => {
                let repo: Value = reply.json().map_err(Fault::into_error)?;
                if repo["private"].as_bool() != Some(true) {
                    return Err(Error::Remote(format!(
                        "repository {} is public; snapshots hold your private data, so nothing was uploaded: make it private (Settings > General > Danger Zone) or name a private repository",
                        self.config.repo
                    )));
                }
            }
            404 => {
                return Err(Error::Remote(format!(
                    "repository {} was not found, or the token cannot see it; create it as a private repository, or give the token access to it",
                    self.config.repo
                )));
            }
            other => {
                return Err(Error::Remote(format!(
                    "reading repository {} answered {other}",
                    self.config.repo
                )));
            }
        }
        self.repo_checked.set(true);
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        let client = self.client()?;
        let releases = client.releases()?;
        let mut found: Vec<RemoteSnapshot> = releases
            .into_iter()
            .filter_map(|release| {
                let tag = Tag::parse(&release.tag_name)?;
                let recorded = body_record(release.body.as_deref());
                let stored = stored_pieces(&tag, &release.assets, recorded.as_ref())?;
                let sha256 = recorded
                    .as_ref()
                    .and_then(|r| r["sha256"].as_str().map(str::to_string))
                    .or_else(|| match stored.as_slice() {
                        [single] => single.sha256().map(str::to_string),
                        _ => None,
                    });
                Some(RemoteSnapshot {
                    size: stored.iter().map(|a| a.size).sum(),
                    sha256,
                    tag,
                })
            })
            .collect();
        found.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(found)
    }

    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        let client = self.client()?;
        self.check_repo(client)?;
        let pieces = pieces(upload, self.config.max_asset_bytes)?;
        let release = client.create_release(upload, &pieces)?;
        for piece in &pieces {
            client.upload_converging(&release, upload, piece)?;
        }
        Ok(())
    }

    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        let client = self.client()?;
        let release = client
            .release_by_tag(tag)?
            .ok_or_else(|| Error::Remote(format!("{} has no release {tag}", self.config.repo)))?;
        let assets = client.assets(release.id)?;
        let recorded = body_record(release.body.as_deref());
        let stored = stored_pieces(tag, &assets, recorded.as_ref()).ok_or_else(|| {
            Error::Remote(format!(
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
            return Err(Error::Remote(format!(
                "the download of {tag} has {size} bytes, GitHub lists {total}"
            )));
        }
        Ok((size, sha256))
    }
}

/// One asset of a snapshot: the whole archive, or one part of an archive over the asset limit.
#[derive(Clone, Debug)]
struct Piece {
    name: String,
    offset: u64,
    len: u64,
    sha256: String,
}

/// The assets `upload` becomes: one, or numbered parts each within `max` bytes.
fn pieces(upload: &Upload<'_>, max: u64) -> Result<Vec<Piece>> {
    let name = upload.tag.archive_name();
    if upload.size <= max {
        return Ok(vec![Piece {
            name,
            offset: 0,
            len: upload.size,
            sha256: upload.sha256.to_string(),
        }]);
    }
    let count = upload.size.div_ceil(max);
    let mut file = std::fs::File::open(upload.path)
        .map_err(|e| Error::io("cannot read local archive", upload.path, e))?;
    let mut out = Vec::new();
    for i in 0..count {
        let offset = i * max;
        let len = max.min(upload.size - offset);
        let mut sink = fsutil::HashingWriter::new(std::io::sink());
        let copied = std::io::copy(&mut std::io::Read::take(&mut file, len), &mut sink)
            .map_err(|e| Error::io("cannot read local archive", upload.path, e))?;
        let (_, _, sha256) = sink.finish();
        if copied != len {
            return Err(Error::Other(format!(
                "local archive {} changed while it was being pushed",
                upload.path.display()
            )));
        }
        out.push(Piece {
            name: format!("{name}.part-{:03}-of-{count:03}", i + 1),
            offset,
            len,
            sha256,
        });
    }
    Ok(out)
}

/// The complete assets holding a snapshot, in order: the single archive, or every part the
/// release body lists. `None` when something is missing or incomplete.
fn stored_pieces(tag: &Tag, assets: &[Asset], recorded: Option<&Value>) -> Option<Vec<Asset>> {
    let complete = |name: &str| {
        assets
            .iter()
            .find(|a| a.name == name && a.state == "uploaded")
            .cloned()
    };
    if let Some(single) = complete(&tag.archive_name()) {
        return Some(vec![single]);
    }
    let parts = recorded?["parts"].as_array()?;
    parts
        .iter()
        .map(|part| {
            let asset = complete(part["name"].as_str()?)?;
            (Some(asset.size) == part["size"].as_u64()).then_some(asset)
        })
        .collect()
}

/// The JSON block of a release body.
fn body_record(body: Option<&str>) -> Option<Value> {
    let body = body?;
    let start = body.find(BODY_MARKER)? + BODY_MARKER.len();
    let end = body[start..].find("-->")? + start;
    serde_json::from_str(body[start..end].trim()).ok()
}

/// Seconds until a Unix time, at least one.
fn until(reset: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(reset.saturating_sub(now).max(1))
}

fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Sorts a non-2xx answer into retry-worthy or fatal (404, 409 and 422 go back to the caller).
fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Fault> {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect());
    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let remaining = header_u64(headers, "x-ratelimit-remaining");
    let reset = header_u64(headers, "x-ratelimit-reset").map(until);
    match status {
        200..=399 | 404 | 409 | 422 => None,
        401 => Some(Fault::Fatal(
            "GitHub rejected the token (401 Bad credentials); renew it and update where it comes from".into(),
        )),
        403 | 429 if message.to_lowercase().contains("secondary rate limit") => {
            // GitHub asks for at least a minute when it gives no retry-after.
            Some(Fault::Transient {
                message: format!("{status} secondary rate limit"),
                wait: retry_after.or(Some(Duration::from_secs(60))),
            })
        }
        403 | 429 if remaining == Some(0) => Some(Fault::Transient {
            message: format!("{status} rate limit used up"),
            wait: retry_after.or(reset),
        }),
        429 => Some(Fault::Transient {
            message: "429 too many requests".into(),
            wait: retry_after,
        }),
        403 => Some(Fault::Fatal(format!(
            "GitHub refused (403: {message}); the token needs the `repo` scope (or contents: write)"
        ))),
        500..=599 => Some(Fault::Transient {
            message: format!("{status} {message}"),
            wait: retry_after,
        }),
        other => Some(Fault::Fatal(format!("GitHub answered {other}: {message}"))),
    }
}

impl Client {
    fn new(config: &GithubConfig) -> Result<Client> {
        let token = token::find(config.token_file.as_deref())?;
        let (owner, name) = config
            .repo
            .split_once('/')
            .map(|(o, n)| (o.to_string(), n.to_string()))
            .expect("validated by the config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot start the network runtime: {e}")))?;
        let api = runtime
            .block_on(async {
                octocrab::Octocrab::builder()
                    .base_uri(config.api_url.as_str())?
                    .personal_token(token.expose().to_string())
                    .build()
            })
            .map_err(|e| Error::Config(format!("[remote] api_url {}: {e}", config.api_url)))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("backup-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Other(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            runtime,
            api,
            http,
            token,
            api_url: config.api_url.clone(),
            owner,
            name,
            retry_budget: Duration::from_secs(config.retry_budget_secs),
            max_delay: Duration::from_millis(config.retry_max_delay_ms),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }

    /// Runs one operation with retries on transient faults.
    fn block_on<T, Fut>(&self, op: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
    {
        let max_delay = self.max_delay;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500).min(max_delay))
            .with_max_delay(max_delay)
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(self.retry_budget));
        self.runtime
            .block_on(
                op.retry(backoff)
                    .sleep(tokio::time::sleep)
                    .when(Fault::transient)
                    .adjust(move |fault, next| {
                        let asked = match fault {
                            Fault::Transient { wait, .. } => *wait,
                            Fault::Fatal(_) => None,
                        };
                        next.map(|d| asked.unwrap_or(d).min(max_delay))
                    }),
            )
            .map_err(Fault::into_error)
    }

    /// One JSON API call through octocrab.
    async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Reply, Fault> {
        let network = |e: octocrab::Error| Fault::Transient {
            message: format!("network: {e}"),
            wait: None,
        };
        let response = match method {
            reqwest::Method::GET => self.api._get(path).await,
            reqwest::Method::POST => self.api._post(path, body).await,
            reqwest::Method::DELETE => self.api._delete(path, body).await,
            other => unreachable!("no {other} calls"),
        }
        .map_err(network)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = self.api.body_to_string(response).await.map_err(network)?;
        let body = text.into_bytes();
        match classify(status, &headers, &body) {
            Some(fault) => Err(fault),
            None => Ok(Reply {
                status,
                headers,
                body,
            }),
        }
    }

    /// Every page of a list, following `Link: rel="next"`.
    fn all_pages<T: for<'de> Deserialize<'de>>(&self, first: &str) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            let reply = self.block_on(|| self.api_call(reqwest::Method::GET, &path, None))?;
            if reply.status == 404 {
                return Err(Error::Remote(format!(
                    "repository {}/{} was not found, or the token cannot see it",
                    self.owner, self.name
                )));
            }
            let page: Vec<T> = reply.json().map_err(Fault::into_error)?;
            items.extend(page);
            next = next_link(&reply.headers);
        }
        Ok(items)
    }

    fn releases(&self) -> Result<Vec<Release>> {
        self.all_pages(&self.repo_path("/releases?per_page=100"))
    }

    fn assets(&self, release_id: u64) -> Result<Vec<Asset>> {
        self.all_pages(&self.repo_path(&format!("/releases/{release_id}/assets?per_page=100")))
    }

    fn release_by_tag(&self, tag: &Tag) -> Result<Option<Release>> {
        let path = self.repo_path(&format!("/releases/tags/{tag}"));
        let reply = self.block_on(|| self.api_call(reqwest::Method::GET, &path, None))?;
        match reply.status {
            200 => Ok(Some(reply.json().map_err(Fault::into_error)?)),
            _ => Ok(None),
        }
    }

    /// Creates the published release of `upload`'s tag, or finds the one an earlier attempt made.
    fn create_release(&self, upload: &Upload<'_>, pieces: &[Piece]) -> Result<Release> {
        let body = json!({
            "tag_name": upload.tag.as_str(),
            "name": upload.tag.as_str(),
            "body": release_body(upload, pieces),
            "draft": false,
            "prerelease": false,
        });
        let path = self.repo_path("/releases");
        let reply = self.block_on(|| self.api_call(reqwest::Method::POST, &path, Some(&body)))?;
        match reply.status {
            201 | 200 => reply.json().map_err(Fault::into_error),
            422 => match reply.validation() {
                (Some(code), _) if code == "already_exists" => {
                    self.release_by_tag(upload.tag)?.ok_or_else(|| {
                        Error::Remote(format!(
                            "GitHub says release {} exists but does not return it; try again later",
                            upload.tag
                        ))
                    })
                }
                (_, message) if message.contains("Repository is empty") => {
                    Err(Error::Remote(format!(
                        "repository {}/{} is empty and GitHub cannot make a release in it; add a first commit (e.g. a README on github.com), then run again",
                        self.owner, self.name
                    )))
                }
                (_, message) => Err(Error::Remote(format!(
                    "GitHub refused the release {} (422 {message})",
                    upload.tag
                ))),
            },
            404 => Err(Error::Remote(format!(
                "repository {}/{} was not found, or the token cannot write to it",
                self.owner, self.name
            ))),
            other => Err(Error::Remote(format!(
                "creating release {} answered {other}",
                upload.tag
            ))),
        }
    }

    /// Uploads the archive as the release's asset, converging on what earlier attempts left:
    /// a complete identical asset is kept; a partial or wrong one is deleted (the local file
    /// rebuilds it) and uploaded again.
    fn upload_converging(
        &self,
        release: &Release,
        upload: &Upload<'_>,
        piece: &Piece,
    ) -> Result<()> {
        let name = piece.name.clone();
        let upload_base = release
            .upload_url
            .split('{')
            .next()
            .unwrap_or(&release.upload_url)
            .to_string();
        self.block_on(|| async {
            let assets = self
                .assets_once(release.id)
                .await?;
            if let Some(existing) = assets.iter().find(|a| a.name == name) {
                let complete = existing.state == "uploaded" && existing.size == piece.len;
                if complete && existing.sha256() == Some(piece.sha256.as_str()) {
                    return Ok(());
                }
                if complete && existing.sha256().is_some() && !upload.verified {
                    return Err(Fault::Fatal(format!(
                        "{name} on GitHub differs from the local archive, and the local archive has no .sha256 record to prove it is the good one; nothing was replaced"
                    )));
                }
                self.delete_asset(existing.id).await?;
            }
            let asset = self.upload_once(&upload_base, upload, piece).await?;
            if asset.size != piece.len
                || asset.sha256().is_some_and(|sha| sha != piece.sha256)
            {
                // Damaged on the way: the next attempt deletes and uploads again.
                return Err(Fault::Transient {
                    message: format!(
                        "GitHub stored {} bytes with digest {:?}, expected {} bytes with sha256 {}",
                        asset.size, asset.digest, piece.len, piece.sha256
                    ),
                    wait: None,
                });
            }
            Ok(())
        })
    }

    async fn assets_once(&self, release_id: u64) -> std::result::Result<Vec<Asset>, Fault> {
        let mut items = Vec::new();
        let mut next = Some(self.repo_path(&format!("/releases/{release_id}/assets?per_page=100")));
        while let Some(path) = next.take() {
            let reply = self.api_call(reqwest::Method::GET, &path, None).await?;
            let page: Vec<Asset> = reply.json()?;
            items.extend(page);
            next = next_link(&reply.headers);
        }
        Ok(items)
    }

    async fn delete_asset(&self, id: u64) -> std::result::Result<(), Fault> {
        let reply = self
            .api_call(
                reqwest::Method::DELETE,
                &self.repo_path(&format!("/releases/assets/{id}")),
                None,
            )
            .await?;
        match reply.status {
            204 | 404 => Ok(()),
            other => Err(Fault::Fatal(format!(
                "deleting a partial asset answered {other}"
            ))),
        }
    }

    /// One streamed upload: the raw file with its Content-Length, never held in memory.
    async fn upload_once(
        &self,
        upload_base: &str,
        upload: &Upload<'_>,
        piece: &Piece,
    ) -> std::result::Result<Asset, Fault> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let name = piece.name.as_str();
        let unreadable =
            |e: std::io::Error| Fault::Fatal(format!("cannot read {}: {e}", upload.path.display()));
        let mut file = tokio::fs::File::open(upload.path)
            .await
            .map_err(unreadable)?;
        file.seek(std::io::SeekFrom::Start(piece.offset))
            .await
            .map_err(unreadable)?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(piece.len),
            1 << 20,
        ));
        let response = self
            .http
            .post(upload_base)
            .query(&[("name", name), ("label", "")])
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .header(reqwest::header::CONTENT_LENGTH, piece.len)
            .body(body)
            .send()
            .await
            .map_err(|e| Fault::Transient {
                message: format!("upload interrupted: {}", without_url(&e)),
                wait: None,
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| Fault::Transient {
            message: format!("upload answer lost: {}", without_url(&e)),
            wait: None,
        })?;
        if let Some(fault) = classify(status, &headers, &body) {
            return Err(fault);
        }
        let reply = Reply {
            status,
            headers,
            body: body.to_vec(),
        };
        match status {
            201 | 200 => reply.json(),
            // A name taken meanwhile (a reset attempt that GitHub completed): the next attempt
            // looks at what is there.
            422 if reply.validation().0.as_deref() == Some("already_exists") => {
                Err(Fault::Transient {
                    message: "the asset name is taken by an earlier attempt".into(),
                    wait: Some(Duration::ZERO),
                })
            }
            422 => Err(Fault::Fatal(format!(
                "GitHub refused the upload of {name} (422 {})",
                reply.validation().1
            ))),
            other => Err(Fault::Fatal(format!("uploading {name} answered {other}"))),
        }
    }

    /// Downloads the parts of a split archive one by one, each checked against its digest,
    /// and joins them into `dest`; returns the whole file's size and sha256.
    fn download_parts(
        &self,
        parts: &[Asset],
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(u64, String)> {
        let part_path = crate::restore::live::with_suffix(dest, ".part");
        let joined = fsutil::create_private(dest)?;
        let mut writer =
            fsutil::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, joined));
        for part in parts {
            let (size, sha256) = self.download(part, &part_path, progress)?;
            if size != part.size || part.sha256().is_some_and(|want| want != sha256) {
                let _ = std::fs::remove_file(&part_path);
                return Err(Error::Remote(format!(
                    "part {} downloaded as {size} bytes with sha256 {sha256}, GitHub lists {} bytes with digest {:?}",
                    part.name, part.size, part.digest
                )));
            }
            let mut input = std::fs::File::open(&part_path)
                .map_err(|e| Error::io("cannot read", &part_path, e))?;
            fsutil::copy_large(&mut input, &mut writer)
                .map_err(|e| Error::io("cannot write", dest, e))?;
            let _ = std::fs::remove_file(&part_path);
        }
        let (buffered, size, sha256) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| Error::io("cannot write", dest, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", dest, e))?;
        Ok((size, sha256))
    }

    /// Streams an asset to `dest`: the API answers with a redirect to the storage host (fetched
    /// without the Authorization header) or with the bytes.
    fn download(
        &self,
        asset: &Asset,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(u64, String)> {
        let url = format!(
            "{}{}",
            self.api_url,
            self.repo_path(&format!("/releases/assets/{}", asset.id))
        );
        self.block_on(|| async {
            let _ = std::fs::remove_file(dest);
            let mut response = self
                .http
                .get(&url)
                .bearer_auth(self.token.expose())
                .header(reqwest::header::ACCEPT, "application/octet-stream")
                .send()
                .await
                .map_err(|e| Fault::Transient {
                    message: format!("download: {}", without_url(&e)),
                    wait: None,
                })?;
            if matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Fault::Fatal("a redirect without a Location".into()))?
                    .to_string();
                // The storage host rejects (and must never see) our token.
                response = self
                    .http
                    .get(&location)
                    .header(reqwest::header::ACCEPT, "application/octet-stream")
                    .send()
                    .await
                    .map_err(|e| Fault::Transient {
                        message: format!("download: {}", without_url(&e)),
                        wait: None,
                    })?;
            }
            let status = response.status().as_u16();
            if status != 200 {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                return Err(classify(status, &headers, &body).unwrap_or_else(|| {
                    Fault::Fatal(format!("downloading {} answered {status}", asset.name))
                }));
            }
            let file = fsutil::create_private(dest).map_err(|e| Fault::Fatal(e.to_string()))?;
            let mut writer =
                fsutil::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
            while let Some(chunk) = response.chunk().await.map_err(|e| Fault::Transient {
                message: format!("download interrupted: {}", without_url(&e)),
                wait: None,
            })? {
                std::io::Write::write_all(&mut writer, &chunk)
                    .map_err(|e| Fault::Fatal(format!("cannot write {}: {e}", dest.display())))?;
                progress.advance(chunk.len() as u64);
            }
            let (buffered, size, sha256) = writer.finish();
            let file = buffered.into_inner().map_err(|e| {
                Fault::Fatal(format!("cannot write {}: {}", dest.display(), e.error()))
            })?;
            file.sync_all()
                .map_err(|e| Fault::Fatal(format!("cannot sync {}: {e}", dest.display())))?;
            Ok((size, sha256))
        })
    }
}

/// A reqwest error without its URL: signed storage URLs and query strings stay out of messages.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "(url)");
    }
    text
}

fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The release text: the snapshot in words, then a block `backup list` reads without a download.
fn release_body(upload: &Upload<'_>, pieces: &[Piece]) -> String {
    let manifest = crate::restore::extract::read_manifest(upload.path).ok();
    let parts: Option<Vec<Value>> = (pieces.len() > 1).then(|| {
        pieces
            .iter()
            .map(|p| json!({"name": p.name, "size": p.len, "sha256": p.sha256}))
            .collect()
    });
    let record = json!({
        "parts": parts,
        "tag": upload.tag.as_str(),
        "size": upload.size,
        "sha256": upload.sha256,
        "host": manifest.as_ref().map(|m| m.host.clone()),
        "kind": upload.tag.kind().as_str(),
        "created_at": upload.tag.time().to_rfc3339(),
        "manifest_version": manifest.as_ref().map(|m| m.manifest_version),
        "databases": manifest.as_ref().map(|m| m.databases.iter().map(|d| json!({
            "name": d.name, "user_version": d.user_version, "size": d.size,
            "rows": d.tables.values().sum::<u64>(),
        })).collect::<Vec<_>>()),
        "files": manifest.as_ref().map(|m| m.files.len()),
    });
    let words = match &manifest {
        Some(m) => format!(
            "Snapshot taken {} UTC on {} ({}): {} database(s) ({}), {} file(s); archive {}, sha256 {}.",
            upload.tag.time().format("%Y-%m-%d %H:%M:%S"),
            m.host,
            upload.tag.kind().as_str(),
            m.databases.len(),
            m.databases
                .iter()
                .map(|d| format!("{} at schema {}", d.name, d.user_version))
                .collect::<Vec<_>>()
                .join(", "),
            m.files.len(),
            fsutil::human_bytes(upload.size),
            upload.sha256
        ),
        None => format!(
            "Snapshot taken {} UTC; archive {}, sha256 {}.",
            upload.tag.time().format("%Y-%m-%d %H:%M:%S"),
            fsutil::human_bytes(upload.size),
            upload.sha256
        ),
    };
    format!(
        "{words}\n\nRestore with `backup restore {}`.\n\n{BODY_MARKER}{record} -->\n",
        upload.tag
    )
}
