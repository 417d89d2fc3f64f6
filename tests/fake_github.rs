//! The project's fake GitHub: the Releases API on loopback, with the separate upload and storage
//! hosts GitHub has, built from `fixtures/github-api/` (GitHub's OpenAPI description of these
//! endpoints, and the behaviour notes in BEHAVIOUR.md of the shared facts). Every JSON body it
//! answers is checked against that description as it goes out; `violations()` lists any misfit.
//!
//! Faults are queued per route and consumed one request at a time: a status with its body and
//! headers, a connection reset halfway through an upload, a reset after the upload was stored
//! (the retry then meets 422 `already_exists`), rate limits with their headers.
//!
//! Networks as they are (issue 14): a slow link paces upload and download bodies to a rate in
//! bytes per second, both ways (`set_link_rate`); a server can read a request and never answer
//! (`Hang`), stop reading an upload halfway (`StallMidUpload`) or stop sending a download
//! halfway (`StallMidDownload`), each holding the connection open and silent. Rate limits, as
//! checked against GitHub's docs:
//! - a 403 or 429 with `retry-after` means "wait that many seconds", whatever the message; a
//!   secondary limit without it means "wait at least a minute"
//!   (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit);
//! - the older wording of a secondary limit is 403 "You have triggered an abuse detection
//!   mechanism. Please wait a few minutes before you try again." with a `documentation_url` to
//!   `#abuse-rate-limits`, often with `Retry-After: 60`
//!   (https://github.com/ossf/scorecard/issues/206, https://github.com/hub4j/github-api/pull/289,
//!   https://github.com/jcabi/jcabi-github/issues/1325);
//! - `Retry-After` is either a number of seconds or an HTTP date (RFC 9110 §10.2.3,
//!   https://www.rfc-editor.org/rfc/rfc9110#field.retry-after; the same rule as RFC 2616
//!   §14.37, http://www.ieinspector.com/dominspector/manual/process156.htm). GitHub's own guide
//!   promised an integer (quoted in https://github.com/dotnet/docfx/issues/4139), so the date
//!   form (`RetryAfterDate`) plays what a proxy or front end in between may send.
//!
//! GitHub's recorded answers in `fixtures/octokit/` (from @octokit/fixtures) are replayed
//! against the fake by `tests/octokit_fixtures.rs`: same status, same body shape.
//!
//! Beyond BEHAVIOUR.md (`../shared/github-api/BEHAVIOUR.md`), checked against GitHub's docs:
//! - Internal repositories: every member of the enterprise can read them; the REST answer says
//!   `visibility: "internal"` next to `private: true`.
//!   <https://docs.github.com/en/repositories/creating-and-managing-repositories/about-repositories#about-internal-repositories>
//! - Immutable releases: once published, assets cannot be added, changed or deleted, and the
//!   tag cannot be deleted while the release exists; deleting the release frees the tag for
//!   deletion but never for reuse. Uploads meet 422 "Cannot upload assets to an immutable
//!   release" (BEHAVIOUR.md I49), asset deletions "Cannot delete asset from an immutable
//!   release", both as `ReleaseAsset` `custom` validation errors (body shape as reported in
//!   <https://github.com/uutils/coreutils/issues/13839>). A refused tag deletion answers 422
//!   "Repository rule violations found … Cannot delete this tag. The tag is permanently
//!   locked." (observed: <https://github.com/chainguard-dev/edu/pull/3158>); the same answer plays
//!   a tag ruleset (`set_immutable_releases(repo, true)`).
//!   <https://docs.github.com/en/code-security/concepts/supply-chain-security/immutable-releases>
//! - Drafts: several may share a tag, they make no tag until published (`PATCH draft: false`),
//!   and `releases/tags/{tag}` does not return them (BEHAVIOUR.md §4). `make_latest` defaults
//!   to "true" for a newly published release (SPEC `repos/update-release`); the fake records it.
//!   Publishing a draft whose tag already has a published release answers 422 `already_exists`
//!   as creating one does: an assumption, the docs state the rule for create only.
//! - The REST release list answers a page past the first 1,000 results with 422
//!   `{"message": "Only the first 1000 results are available.", "documentation_url": …}`
//!   (BEHAVIOUR.md §3, I13; the fake's cap is `result_cap`). It lists newest first, as
//!   observed; the tool does not rely on that order.
//! - GraphQL, for full listings: one endpoint, `https://api.github.com/graphql` and
//!   `http(s)://HOSTNAME/api/graphql` on GitHub Enterprise Server
//!   <https://docs.github.com/en/graphql/guides/forming-calls-with-graphql>; every connection
//!   takes `first` (1 to 100) and pages by cursor (`pageInfo { hasNextPage endCursor }`) until
//!   the whole set is read, with no result cap
//!   <https://docs.github.com/en/graphql/guides/using-pagination-in-the-graphql-api>;
//!   `Release` has `databaseId`, `tagName`, `isDraft`, `createdAt`, `description`
//!   and `releaseAssets` (`ReleaseAsset`: `name`, `size`; no state, no digest)
//!   <https://docs.github.com/en/graphql/reference/objects#release>. The fake answers only
//!   the tool's query; its answers are checked against that shape, not the OpenAPI file.
//! - A GraphQL rate limit answers 200 with the limit in `errors` (GitHub staff in
//!   <https://github.com/github/docs/issues/22607>), lately as
//!   `{"type": "RATE_LIMIT", "code": "graphql_rate_limit", "message": …}`
//!   (<https://github.com/yanyongyu/githubkit/issues/271>), earlier as type `RATE_LIMITED`.
//!   GitHub's own page says the status stays 200, `x-ratelimit-remaining` is 0, and a retry
//!   waits until `x-ratelimit-reset` (the same headers as REST)
//!   <https://docs.github.com/en/graphql/overview/rate-limits-and-node-limits-for-the-graphql-api>.
//! - Tokens per host, as the GitHub CLI documents them: `GH_TOKEN`, `GITHUB_TOKEN` for
//!   github.com and GHE.com, `GH_ENTERPRISE_TOKEN`, `GITHUB_ENTERPRISE_TOKEN` for an Enterprise
//!   Server <https://cli.github.com/manual/gh_help_environment>; `gh auth token` without
//!   `--hostname` answers for the default host <https://cli.github.com/manual/gh_auth_token>.
//!   The fake, on loopback, is such a server: tests give it GH_ENTERPRISE_TOKEN.
//! - A release may not be returned by its tag right after GitHub reported it exists: softprops
//!   retries while a new release is "not yet discoverable by tag" (BEHAVIOUR.md §4, S8); the
//!   fake plays it with queued 404s on `releases/tags/{tag}`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::openapi;

/// The token the fake accepts.
pub const TOKEN: &str = "ghp_faketoken0000000000000000000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    GetRepo,
    ListReleases,
    CreateRelease,
    GetReleaseByTag,
    ListAssets,
    DeleteAsset,
    DeleteRelease,
    DeleteTag,
    CreateRepo,
    Upload,
    DownloadApi,
    Storage,
    UpdateRelease,
    GraphQl,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, body and headers instead.
    Status(u16, Value, Vec<(String, String)>),
    /// Read half the upload, then reset the connection (nothing stored).
    ResetMidUpload,
    /// Store the whole upload, then reset before answering: the retry meets `already_exists`.
    ResetAfterStore,
    /// Keep a `starter` asset with half the bytes, answer 502 (GitHub's documented upload failure).
    StarterLeftover,
    /// A 403 secondary limit whose `Retry-After` is an HTTP date this many seconds after the
    /// answer (RFC 9110 allows a date or a number of seconds).
    RetryAfterDate(u64),
    /// Read the request, then never answer: the connection stays open and silent.
    Hang,
    /// Read half the upload, then stop reading without answering (the link goes dead).
    StallMidUpload,
    /// Send the head and half the bytes of a download, then nothing more.
    StallMidDownload,
    /// Before this publish: another attempt publishes a copy of the draft (assets included) as
    /// its own release of the tag, so this publish meets 422 `already_exists`.
    PublishedMeanwhile,
}

/// How long a stalled or hanging connection is held open: longer than any test waits.
const HELD_OPEN: std::time::Duration = std::time::Duration::from_secs(600);

impl Fault {
    pub fn server_error() -> Fault {
        Fault::Status(502, json!({"message": "Server Error"}), vec![])
    }

    pub fn secondary_limit(retry_after: u64) -> Fault {
        Fault::Status(
            403,
            json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
            vec![("retry-after".into(), retry_after.to_string())],
        )
    }

    pub fn primary_limit(reset_in: u64) -> Fault {
        let reset = now() + reset_in;
        Fault::Status(
            403,
            json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset.to_string()),
            ],
        )
    }

    /// The older wording of a secondary limit, without any rate-limit header to go by.
    pub fn abuse_detection() -> Fault {
        Fault::Status(
            403,
            json!({"message": "You have triggered an abuse detection mechanism. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
            vec![],
        )
    }

    pub fn bad_credentials() -> Fault {
        Fault::Status(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            vec![],
        )
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP date form.
fn http_date(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let (hour, min, sec) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][month as usize - 1];
    format!("{weekday}, {day:02} {month_name} {year} {hour:02}:{min:02}:{sec:02} GMT")
}

fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The media type an archive goes up with, by its name: `application/zstd` for `.tar.zst`,
/// else `application/gzip` (`.tar.gz`, and any other name a test gives a release's asset).
pub fn archive_media_type(name: &str) -> &'static str {
    if name.ends_with(".tar.zst") {
        "application/zstd"
    } else {
        "application/gzip"
    }
}

#[derive(Clone, Debug)]
pub struct StoredAsset {
    pub id: u64,
    pub name: String,
    pub state: &'static str,
    /// Shared, so answering a download copies nothing (archives in benchmarks are large).
    pub data: Arc<Vec<u8>>,
    /// `sha256:<hex>`, computed once when the asset is stored, as GitHub does.
    pub digest: String,
    pub content_type: String,
}

#[derive(Clone, Debug)]
pub struct StoredRelease {
    pub id: u64,
    pub tag: String,
    pub body: String,
    /// A release whose tag was deleted turns back into a draft (BEHAVIOUR.md §4).
    pub draft: bool,
    /// Published in a repository with immutable releases on: assets and tag locked.
    pub immutable: bool,
    /// The `make_latest` the publishing request asked for (GitHub's default is "true").
    pub make_latest: Option<String>,
    /// RFC 3339, when the release (or draft) was made.
    pub created_at: String,
    pub assets: Vec<StoredAsset>,
}

#[derive(Default)]
struct Repo {
    id: u64,
    private: bool,
    /// `visibility: internal`, which GitHub also reports as `private: true`.
    internal: bool,
    empty: bool,
    /// The repository's "immutable releases" setting.
    immutable_releases: bool,
    /// A tag ruleset that forbids deleting tags.
    tags_locked: bool,
    /// Tags of immutable releases that were deleted: never usable again.
    burnt_tags: std::collections::BTreeSet<String>,
    releases: Vec<StoredRelease>,
    /// Git tags: made with a release, left behind when the release is deleted.
    tags: std::collections::BTreeSet<String>,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    faults: Vec<(Route, VecDeque<Fault>)>,
    max_asset: u64,
    /// Old full name -> current full name, for repositories renamed on GitHub.
    renamed: BTreeMap<String, String>,
    /// Answer asset downloads with the bytes (200) instead of a redirect to storage.
    direct_downloads: bool,
    /// The account that owns the token; `POST /user/repos` creates repositories under it.
    user: String,
    log: Vec<String>,
    violations: Vec<String>,
    /// Authorization headers the storage host received (must stay empty).
    storage_auth: Vec<String>,
    /// Bytes per second each way for upload and download bodies (a slow link); 0 = unlimited.
    link_rate: u64,
    /// List endpoints answer 422 past this many results (GitHub: 1,000).
    result_cap: usize,
}

/// A running fake. Its threads live as long as the test process.
pub struct FakeGitHub {
    pub api_url: String,
    upload_origin: String,
    storage_origin: String,
    state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    pub fn start() -> FakeGitHub {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let uploads = TcpListener::bind("127.0.0.1:0").unwrap();
        let storage = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = FakeGitHub {
            api_url: format!("http://{}", api.local_addr().unwrap()),
            upload_origin: format!("http://{}", uploads.local_addr().unwrap()),
            storage_origin: format!("http://{}", storage.local_addr().unwrap()),
            state: Arc::new(Mutex::new(State {
                next_id: 1,
                max_asset: (2 << 30) - 1,
                user: "octo-user".into(),
                result_cap: 1000,
                ..State::default()
            })),
        };
        for (listener, host) in [
            (api, Host::Api),
            (uploads, Host::Uploads),
            (storage, Host::Storage),
        ] {
            let shared = fake.shared();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let _ = serve(&shared, host, stream);
                    });
                }
            });
        }
        fake
    }

    fn shared(&self) -> Shared {
        Shared {
            state: self.state.clone(),
            api_url: self.api_url.clone(),
            upload_origin: self.upload_origin.clone(),
            storage_origin: self.storage_origin.clone(),
        }
    }

    pub fn add_repo(&self, full_name: &str, private: bool) {
        self.insert_repo(full_name, private, false);
    }

    pub fn add_empty_repo(&self, full_name: &str) {
        self.insert_repo(full_name, true, true);
    }

    /// A repository of an enterprise's organisation that every member of the enterprise can read.
    pub fn add_internal_repo(&self, full_name: &str) {
        self.insert_repo(full_name, true, false);
        self.state
            .lock()
            .unwrap()
            .repos
            .get_mut(full_name)
            .unwrap()
            .internal = true;
    }

    fn insert_repo(&self, full_name: &str, private: bool, empty: bool) {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        state.repos.insert(
            full_name.to_string(),
            Repo {
                id,
                private,
                empty,
                ..Repo::default()
            },
        );
    }

    /// Turns on the repository's immutable releases setting; with `lock_tags`, a tag ruleset
    /// also forbids deleting tags.
    pub fn set_immutable_releases(&self, full_name: &str, lock_tags: bool) {
        let mut state = self.state.lock().unwrap();
        let repo = state.repos.get_mut(full_name).unwrap();
        repo.immutable_releases = true;
        repo.tags_locked = lock_tags;
    }

    /// A published release of `tag` with no assets yet (someone else's, made on github.com).
    pub fn add_release_without_assets(&self, repo: &str, tag: &str) {
        self.add_draft(repo, tag);
        let mut state = self.state.lock().unwrap();
        let repo = state.repos.get_mut(repo).unwrap();
        repo.tags.insert(tag.to_string());
        let immutable = repo.immutable_releases;
        let release = repo.releases.last_mut().unwrap();
        release.draft = false;
        release.immutable = immutable;
    }

    /// The id GitHub gave a repository (its `/repositories/{id}` address).
    pub fn repo_id(&self, full_name: &str) -> u64 {
        self.state.lock().unwrap().repos[full_name].id
    }

    /// A draft of `tag` with no assets, as a retried "create draft" leaves behind.
    pub fn add_draft(&self, repo: &str, tag: &str) {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        state
            .repos
            .get_mut(repo)
            .unwrap()
            .releases
            .push(StoredRelease {
                id,
                tag: tag.to_string(),
                body: String::new(),
                draft: true,
                immutable: false,
                make_latest: None,
                created_at: rfc3339_now(),
                assets: Vec::new(),
            });
    }

    /// Whether a repository exists, and whether it is private.
    pub fn repo_private(&self, full_name: &str) -> Option<bool> {
        self.state
            .lock()
            .unwrap()
            .repos
            .get(full_name)
            .map(|r| r.private)
    }

    /// Renames a repository: its old name answers with redirects, as GitHub does.
    pub fn rename_repo(&self, old: &str, new: &str) {
        let mut state = self.state.lock().unwrap();
        let repo = state.repos.remove(old).unwrap();
        state.repos.insert(new.to_string(), repo);
        state.renamed.insert(old.to_string(), new.to_string());
    }

    /// The git tags of a repository.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        self.state.lock().unwrap().repos[repo]
            .tags
            .iter()
            .cloned()
            .collect()
    }

    /// Serve asset downloads directly (200) rather than through the storage host.
    pub fn set_direct_downloads(&self, direct: bool) {
        self.state.lock().unwrap().direct_downloads = direct;
    }

    /// A slow link: upload bodies are read, and answers written, at `bytes_per_sec` each.
    pub fn set_link_rate(&self, bytes_per_sec: u64) {
        self.state.lock().unwrap().link_rate = bytes_per_sec;
    }

    /// GitHub's per-asset limit (2 GiB), smaller for tests.
    pub fn set_max_asset(&self, bytes: u64) {
        self.state.lock().unwrap().max_asset = bytes;
    }

    /// A snapshot another host pushed (one running a version before zstd, or set to gzip):
    /// release `tag` whose one asset, `<tag>.tar.gz`, holds `data`.
    pub fn add_snapshot_release(&self, repo: &str, tag: &str, data: &[u8]) {
        self.add_release(repo, tag, &format!("{tag}.tar.gz"), data);
    }

    /// A release made by someone else (another host), with one complete asset, whose media type
    /// follows its name.
    pub fn add_release(&self, repo: &str, tag: &str, asset: &str, data: &[u8]) {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 2;
        let repo = state.repos.get_mut(repo).unwrap();
        repo.tags.insert(tag.to_string());
        repo.releases.push(StoredRelease {
            id,
            tag: tag.to_string(),
            body: String::new(),
            draft: false,
            immutable: false,
            make_latest: None,
            created_at: rfc3339_now(),
            assets: vec![StoredAsset {
                id: id + 1,
                name: asset.to_string(),
                state: "uploaded",
                data: Arc::new(data.to_vec()),
                digest: digest(data),
                content_type: archive_media_type(asset).into(),
            }],
        });
    }

    pub fn inject(&self, route: Route, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        match state.faults.iter_mut().find(|(r, _)| *r == route) {
            Some((_, queue)) => queue.push_back(fault),
            None => state.faults.push((route, VecDeque::from([fault]))),
        }
    }

    /// Drops injected faults no request has met yet; returns how many there were.
    pub fn clear_faults(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        let left = state.faults.iter().map(|(_, q)| q.len()).sum();
        state.faults.clear();
        left
    }

    pub fn releases(&self, repo: &str) -> Vec<StoredRelease> {
        self.state.lock().unwrap().repos[repo].releases.clone()
    }

    /// `METHOD path -> status`, one line per request.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many lines of [`FakeGitHub::log`] `matching` accepts.
    pub fn count_requests(&self, matching: impl Fn(&str) -> bool) -> usize {
        self.log().iter().filter(|l| matching(l)).count()
    }

    /// JSON answers that did not match GitHub's description, and tokens sent to storage.
    pub fn violations(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let mut all = state.violations.clone();
        all.extend(
            state
                .storage_auth
                .iter()
                .map(|a| format!("the storage host received an Authorization header: {a}")),
        );
        all
    }

    /// Corrupts the stored bytes of an asset (a damaged remote copy).
    pub fn corrupt_asset(&self, repo: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        for release in &mut state.repos.get_mut(repo).unwrap().releases {
            for asset in &mut release.assets {
                if asset.name == name {
                    // The bytes change, GitHub's digest of them stays.
                    Arc::make_mut(&mut asset.data)[0] ^= 0xff;
                }
            }
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    api_url: String,
    upload_origin: String,
    storage_origin: String,
}

#[derive(Clone, Copy)]
enum Host {
    Api,
    Uploads,
    Storage,
}

struct Request {
    method: String,
    path: String,
    /// The path as the spec names it (`/repositories/{id}/…` is served as `/repos/{o}/{r}/…`).
    spec_path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    reader: BufReader<TcpStream>,
}

impl Request {
    fn body_json(&mut self) -> Value {
        let len: usize = self
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if self.reader.read_exact(&mut body).is_err() {
            return Value::Null;
        }
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    fn authorized(&self) -> bool {
        self.headers
            .get("authorization")
            .is_some_and(|a| a == &format!("Bearer {TOKEN}") || a == &format!("token {TOKEN}"))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(stream: TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let query = query_text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(Some(Request {
        method,
        spec_path: percent_decode(path),
        path: percent_decode(path),
        query,
        headers,
        reader,
    }))
}

struct Answer {
    status: u16,
    body: Arc<Vec<u8>>,
    content_type: &'static str,
    headers: Vec<(String, String)>,
}

fn answer_json(status: u16, body: &Value) -> Answer {
    Answer {
        status,
        body: Arc::new(serde_json::to_vec(body).unwrap()),
        content_type: "application/json; charset=utf-8",
        headers: Vec::new(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

fn write_answer(stream: &mut TcpStream, answer: &Answer, link_rate: u64) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status),
        answer.body.len()
    );
    if !answer.body.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", answer.content_type));
    }
    // Every API answer carries the rate-limit headers (BEHAVIOUR.md §7).
    let mut extra = answer.headers.clone();
    for (name, value) in [
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", "4999".to_string()),
        ("x-ratelimit-used", "1".to_string()),
        ("x-ratelimit-reset", (now() + 3600).to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ] {
        if !extra.iter().any(|(k, _)| k == name) {
            extra.push((name.to_string(), value));
        }
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut link = Link::new(link_rate);
    for chunk in answer.body.chunks(link.chunk()) {
        stream.write_all(chunk)?;
        link.pace(chunk.len());
    }
    stream.flush()
}

/// Paces a transfer to a link's rate in bytes per second (0: as fast as loopback goes).
struct Link {
    rate: u64,
    started: std::time::Instant,
    moved: u64,
}

impl Link {
    fn new(rate: u64) -> Link {
        Link {
            rate,
            started: std::time::Instant::now(),
            moved: 0,
        }
    }

    /// Bytes per step: a twentieth of a second's worth on a slow link.
    fn chunk(&self) -> usize {
        if self.rate == 0 {
            1 << 20
        } else {
            (self.rate as usize / 20).max(1)
        }
    }

    /// Sleeps until `bytes` more fit the rate.
    fn pace(&mut self, bytes: usize) {
        self.moved += bytes as u64;
        if self.rate == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(self.moved as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }

    /// Reads exactly `buf.len()` bytes at the link's rate.
    fn read_exact(&mut self, reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
        let step = self.chunk();
        for chunk in buf.chunks_mut(step) {
            reader.read_exact(chunk)?;
            self.pace(chunk.len());
        }
        Ok(())
    }
}

fn reset(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve(shared: &Shared, host: Host, stream: TcpStream) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let Some(mut request) = read_request(stream)? else {
        return Ok(());
    };
    let answer = match host {
        Host::Api => api(shared, &mut request, &out),
        Host::Uploads => upload(shared, &mut request, &out),
        Host::Storage => storage(shared, &request, &out),
    };
    let Some(answer) = answer else {
        reset(&out);
        return Ok(());
    };
    {
        let mut state = shared.state.lock().unwrap();
        state.log.push(format!(
            "{} {} -> {}",
            request.method, request.path, answer.status
        ));
        if request.path == "/graphql" {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            if let Err(e) = check_graphql_releases(&body) {
                state.violations.push(e);
            }
        } else if answer.content_type.starts_with("application/json") {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            if let Err(e) =
                openapi::check_response(&request.method, &request.spec_path, answer.status, &body)
            {
                state.violations.push(e);
            }
        }
    }
    let link_rate = shared.state.lock().unwrap().link_rate;
    write_answer(&mut out, &answer, link_rate)
}

/// Holds a connection open and silent, as a dead link or a hung server does.
fn hold_open(shared: &Shared, request: &Request, what: &str) -> Option<Answer> {
    shared
        .state
        .lock()
        .unwrap()
        .log
        .push(format!("{} {} -> {what}", request.method, request.path));
    std::thread::sleep(HELD_OPEN);
    None
}

/// A queued fault for `route`, if any.
fn take_fault(shared: &Shared, route: Route) -> Option<Fault> {
    let mut state = shared.state.lock().unwrap();
    state
        .faults
        .iter_mut()
        .find(|(r, _)| *r == route)
        .and_then(|(_, q)| q.pop_front())
}

fn status_fault(fault: Fault) -> Option<Answer> {
    match fault {
        Fault::RetryAfterDate(secs) => {
            let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
            let mut answer = answer_json(
                403,
                &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
            );
            answer.headers = vec![("retry-after".into(), http_date(at))];
            Some(answer)
        }
        Fault::Status(status, body, headers) => {
            let mut answer = answer_json(status, &body);
            answer.headers = headers;
            Some(answer)
        }
        _ => None,
    }
}

fn not_found() -> Answer {
    answer_json(
        404,
        &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

fn validation_failed(resource: &str, code: &str, field: &str, message: Option<&str>) -> Answer {
    let mut error = json!({"resource": resource, "code": code, "field": field});
    if let Some(message) = message {
        error["message"] = json!(message);
    }
    answer_json(
        422,
        &json!({"message": "Validation Failed", "errors": [error], "documentation_url": "https://docs.github.com/rest/releases/releases#create-a-release", "status": "422"}),
    )
}

fn example(name: &str) -> Value {
    openapi::spec()["components"]["examples"][name]["value"].clone()
}

impl Shared {
    fn repo_json(&self, full: &str, repo: &Repo) -> Value {
        let mut value = example("full-repository");
        let (owner, name) = full.split_once('/').unwrap();
        value["name"] = json!(name);
        value["full_name"] = json!(full);
        value["owner"]["login"] = json!(owner);
        value["id"] = json!(repo.id);
        value["private"] = json!(repo.private);
        // GitHub's own example lacks this required property.
        value["has_discussions"] = json!(false);
        // What GitHub answers an admin's token besides the example (@octokit/fixtures'
        // rename-repository recording).
        value["allow_update_branch"] = json!(false);
        value["use_squash_pr_title_as_default"] = json!(false);
        value["permissions"] =
            json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true});
        value["visibility"] = json!(match (repo.internal, repo.private) {
            (true, _) => "internal",
            (false, true) => "private",
            (false, false) => "public",
        });
        value["url"] = json!(format!("{}/repos/{full}", self.api_url));
        value
    }

    fn asset_json(&self, full: &str, tag: &str, asset: &StoredAsset) -> Value {
        let mut value = example("release-asset");
        value["id"] = json!(asset.id);
        value["name"] = json!(asset.name);
        value["label"] = json!("");
        value["state"] = json!(asset.state);
        value["size"] = json!(asset.data.len());
        value["content_type"] = json!(asset.content_type);
        value["digest"] = json!(asset.digest);
        value["download_count"] = json!(0);
        value["url"] = json!(format!(
            "{}/repos/{full}/releases/assets/{}",
            self.api_url, asset.id
        ));
        value["browser_download_url"] = json!(format!(
            "https://github.com/{full}/releases/download/{tag}/{}",
            asset.name
        ));
        value
    }

    fn release_json(&self, full: &str, release: &StoredRelease) -> Value {
        let mut value = example("release");
        let id = release.id;
        value["id"] = json!(id);
        value["tag_name"] = json!(release.tag);
        value["name"] = json!(release.tag);
        value["body"] = json!(release.body);
        value["draft"] = json!(release.draft);
        value["immutable"] = json!(release.immutable);
        value["created_at"] = json!(release.created_at);
        value["published_at"] = if release.draft {
            Value::Null
        } else {
            json!(release.created_at)
        };
        value["url"] = json!(format!("{}/repos/{full}/releases/{id}", self.api_url));
        value["assets_url"] = json!(format!(
            "{}/repos/{full}/releases/{id}/assets",
            self.api_url
        ));
        value["upload_url"] = json!(format!(
            "{}/repos/{full}/releases/{id}/assets{{?name,label}}",
            self.upload_origin
        ));
        value["assets"] = Value::Array(
            release
                .assets
                .iter()
                .map(|a| self.asset_json(full, &release.tag, a))
                .collect(),
        );
        value
    }
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page a list request asks for and its size, with GitHub's defaults and bounds (30, 1-100).
fn page_asked(request: &Request) -> (usize, usize) {
    let number = |name: &str| {
        request
            .query
            .get(name)
            .and_then(|p| p.parse::<usize>().ok())
    };
    (
        number("page").unwrap_or(1).max(1),
        number("per_page").unwrap_or(30).clamp(1, 100),
    )
}

/// A page of `items` with GitHub's `Link` header.
fn paginate(items: Vec<Value>, request: &Request, base: &str) -> Answer {
    let (page, per_page) = page_asked(request);
    let pages = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut answer = answer_json(200, &Value::Array(slice));
    if pages > 1 {
        let link =
            |p: usize, rel: &str| format!("<{base}?per_page={per_page}&page={p}>; rel=\"{rel}\"");
        let mut links = Vec::new();
        if page < pages {
            links.push(link(page + 1, "next"));
            links.push(link(pages, "last"));
        }
        if page > 1 {
            links.push(link(1, "first"));
            links.push(link(page - 1, "prev"));
        }
        answer.headers.push(("link".into(), links.join(", ")));
    }
    answer
}

/// A renamed repository's old name answers 301 (GET) or 307 to `/repositories/{id}/…`
/// (BEHAVIOUR.md §6, §9); that path is served as the repository's own.
fn resolve_renamed(shared: &Shared, request: &mut Request) -> Result<Vec<String>, Answer> {
    let mut segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let state = shared.state.lock().unwrap();
    if segments.len() >= 2 && segments[0] == "repositories" {
        let id: u64 = segments[1].parse().unwrap_or(0);
        if let Some(full) = state
            .repos
            .iter()
            .find_map(|(full, r)| (r.id == id).then_some(full))
        {
            let (owner, name) = full.split_once('/').unwrap();
            segments.splice(0..2, ["repos".into(), owner.into(), name.into()]);
            request.spec_path = format!("/{}", segments.join("/"));
        }
        return Ok(segments);
    }
    if segments.len() >= 3 && segments[0] == "repos" {
        let full = format!("{}/{}", segments[1], segments[2]);
        if let Some(current) = state.renamed.get(&full) {
            let id = state.repos[current].id;
            let rest: String = segments[3..].iter().map(|s| format!("/{s}")).collect();
            let query: Vec<String> = request
                .query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            let location = format!("{}/repositories/{id}{rest}{query}", shared.api_url);
            let status = if request.method == "GET" { 301 } else { 307 };
            let mut answer = answer_json(
                status,
                &json!({"message": "Moved Permanently", "url": location, "documentation_url": "https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects"}),
            );
            answer.headers.push(("location".into(), location));
            return Err(answer);
        }
    }
    Ok(segments)
}

fn api(shared: &Shared, request: &mut Request, out: &TcpStream) -> Option<Answer> {
    let segments = match resolve_renamed(shared, request) {
        Ok(segments) => segments,
        Err(redirect) => return Some(redirect),
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.clone();
    let route = match (method.as_str(), segs.as_slice()) {
        ("GET", ["repos", _, _]) => Route::GetRepo,
        ("GET", ["repos", _, _, "releases"]) => Route::ListReleases,
        ("POST", ["repos", _, _, "releases"]) => Route::CreateRelease,
        ("GET", ["repos", _, _, "releases", "tags", _]) => Route::GetReleaseByTag,
        ("GET", ["repos", _, _, "releases", _, "assets"]) => Route::ListAssets,
        ("DELETE", ["repos", _, _, "releases", "assets", _]) => Route::DeleteAsset,
        ("GET", ["repos", _, _, "releases", "assets", _]) => Route::DownloadApi,
        ("DELETE", ["repos", _, _, "releases", _]) => Route::DeleteRelease,
        ("PATCH", ["repos", _, _, "releases", _]) => Route::UpdateRelease,
        ("DELETE", ["repos", _, _, "git", "refs", ..]) => Route::DeleteTag,
        ("POST", ["user", "repos"]) => Route::CreateRepo,
        ("POST", ["graphql"]) => Route::GraphQl,
        _ => Route::GetRepo,
    };
    let mut published_meanwhile = false;
    if let Some(fault) = take_fault(shared, route) {
        if let Fault::Hang = fault {
            return hold_open(shared, request, "hung");
        }
        if matches!(fault, Fault::PublishedMeanwhile) {
            published_meanwhile = true;
        } else {
            return status_fault(fault).or_else(|| {
                reset(out);
                None
            });
        }
    }
    if !request.authorized() {
        return status_fault(Fault::bad_credentials());
    }
    let full = segs.get(1..3).map(|s| s.join("/")).unwrap_or_default();
    let body = if method == "POST" || method == "PATCH" {
        request.body_json()
    } else {
        Value::Null
    };
    if route == Route::CreateRepo {
        return Some(create_repo(shared, &body));
    }
    if route == Route::GraphQl {
        return Some(graphql(shared, &body));
    }
    let mut state = shared.state.lock().unwrap();
    if published_meanwhile {
        publish_a_copy(
            &mut state,
            &full,
            segs.get(4).and_then(|id| id.parse().ok()),
        );
    }
    let next_id = state.next_id;
    let direct_downloads = state.direct_downloads;
    let result_cap = state.result_cap;
    let Some(repo) = state.repos.get_mut(&full) else {
        return Some(not_found());
    };
    let answer = match (method.as_str(), segs.as_slice()) {
        ("GET", ["repos", _, _]) => answer_json(200, &shared.repo_json(&full, repo)),
        ("GET", ["repos", _, _, "releases"]) => {
            let items = repo
                .releases
                .iter()
                .rev()
                .map(|r| shared.release_json(&full, r))
                .collect();
            match past_cap(request, result_cap) {
                Some(capped) => capped,
                None => paginate(
                    items,
                    request,
                    &format!("{}/repos/{full}/releases", shared.api_url),
                ),
            }
        }
        ("POST", ["repos", _, _, "releases"]) => {
            let Some(tag) = body["tag_name"].as_str().map(str::to_string) else {
                return Some(validation_failed(
                    "Release",
                    "missing_field",
                    "tag_name",
                    None,
                ));
            };
            if repo.empty {
                return Some(validation_failed(
                    "Release",
                    "custom",
                    "",
                    Some("Repository is empty."),
                ));
            }
            if repo.burnt_tags.contains(&tag) {
                return Some(validation_failed(
                    "Release",
                    "custom",
                    "tag_name",
                    Some("tag_name was used by an immutable release"),
                ));
            }
            let draft = body["draft"].as_bool().unwrap_or(false);
            // Several drafts may share a tag, also with a published release (BEHAVIOUR.md §4).
            if !draft && repo.releases.iter().any(|r| r.tag == tag && !r.draft) {
                return Some(validation_failed(
                    "Release",
                    "already_exists",
                    "tag_name",
                    None,
                ));
            }
            let release = StoredRelease {
                id: next_id,
                tag: tag.clone(),
                body: body["body"].as_str().unwrap_or("").to_string(),
                draft,
                immutable: !draft && repo.immutable_releases,
                make_latest: body["make_latest"].as_str().map(str::to_string),
                created_at: rfc3339_now(),
                assets: Vec::new(),
            };
            // A draft makes no tag until it is published; an existing tag without a release is
            // reused (BEHAVIOUR.md §4).
            if !draft {
                repo.tags.insert(tag);
            }
            let json = shared.release_json(&full, &release);
            repo.releases.push(release);
            state.next_id += 1;
            let mut answer = answer_json(201, &json);
            answer
                .headers
                .push(("location".into(), json["url"].as_str().unwrap().to_string()));
            answer
        }
        ("GET", ["repos", _, _, "releases", "tags", tag]) => {
            match repo.releases.iter().find(|r| r.tag == *tag && !r.draft) {
                Some(r) => answer_json(200, &shared.release_json(&full, r)),
                None => not_found(),
            }
        }
        ("GET", ["repos", _, _, "releases", id, "assets"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match repo.releases.iter().find(|r| r.id == id) {
                Some(r) => {
                    let items = r
                        .assets
                        .iter()
                        .map(|a| shared.asset_json(&full, &r.tag, a))
                        .collect();
                    paginate(
                        items,
                        request,
                        &format!("{}/repos/{full}/releases/{id}/assets", shared.api_url),
                    )
                }
                None => not_found(),
            }
        }
        ("DELETE", ["repos", _, _, "releases", "assets", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            if repo
                .releases
                .iter()
                .any(|r| r.immutable && r.assets.iter().any(|a| a.id == id))
            {
                return Some(immutable_refusal(
                    "Cannot delete asset from an immutable release",
                ));
            }
            let mut found = false;
            for r in &mut repo.releases {
                let before = r.assets.len();
                r.assets.retain(|a| a.id != id);
                found |= r.assets.len() != before;
            }
            if found {
                Answer {
                    status: 204,
                    body: Arc::default(),
                    content_type: "",
                    headers: Vec::new(),
                }
            } else {
                not_found()
            }
        }
        ("GET", ["repos", _, _, "releases", "assets", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let found = repo.releases.iter().find_map(|r| {
                r.assets
                    .iter()
                    .find(|a| a.id == id)
                    .map(|a| (r.tag.clone(), a.clone()))
            });
            match found {
                None => not_found(),
                Some((tag, asset)) => {
                    let wants_bytes = request
                        .headers
                        .get("accept")
                        .is_some_and(|a| a.contains("application/octet-stream"));
                    if wants_bytes && direct_downloads {
                        Answer {
                            status: 200,
                            body: asset.data.clone(),
                            content_type: "application/octet-stream",
                            headers: Vec::new(),
                        }
                    } else if wants_bytes {
                        let mut answer = Answer {
                            status: 302,
                            body: Arc::default(),
                            content_type: "",
                            headers: Vec::new(),
                        };
                        answer.headers.push((
                            "location".into(),
                            format!(
                                "{}/objects/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&response-content-disposition=attachment%3Bfilename%3D{}",
                                shared.storage_origin, asset.id, asset.name
                            ),
                        ));
                        answer
                    } else {
                        answer_json(200, &shared.asset_json(&full, &tag, &asset))
                    }
                }
            }
        }
        ("PATCH", ["repos", _, _, "releases", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(index) = repo.releases.iter().position(|r| r.id == id) else {
                return Some(not_found());
            };
            let tag = repo.releases[index].tag.clone();
            if body["draft"] == json!(false) && repo.releases[index].draft {
                // Publishing: one published release per tag, as on create (an assumption: the
                // docs describe the rule for create only).
                if repo.releases.iter().any(|r| r.tag == tag && !r.draft) {
                    return Some(validation_failed(
                        "Release",
                        "already_exists",
                        "tag_name",
                        None,
                    ));
                }
                let immutable = repo.immutable_releases;
                let release = &mut repo.releases[index];
                release.draft = false;
                release.immutable = immutable;
                release.make_latest =
                    Some(body["make_latest"].as_str().unwrap_or("true").to_string());
                repo.tags.insert(tag);
            }
            answer_json(200, &shared.release_json(&full, &repo.releases[index]))
        }
        ("DELETE", ["repos", _, _, "releases", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let before = repo.releases.len();
            // An immutable release's tag can never be used again (D10).
            for release in repo.releases.iter().filter(|r| r.id == id && r.immutable) {
                repo.burnt_tags.insert(release.tag.clone());
            }
            // The tag stays behind (BEHAVIOUR.md §4).
            repo.releases.retain(|r| r.id != id);
            if repo.releases.len() == before {
                not_found()
            } else {
                no_content()
            }
        }
        ("DELETE", ["repos", _, _, "git", "refs", "tags", tag]) => {
            if repo.empty {
                answer_json(
                    409,
                    &json!({"message": "Git Repository is empty.", "documentation_url": "https://docs.github.com/rest/git/refs#delete-a-reference"}),
                )
            } else if repo.tags.contains(*tag)
                && (repo.tags_locked || repo.releases.iter().any(|r| r.tag == *tag && r.immutable))
            {
                // Locked while its immutable release exists (D10), or by a tag ruleset.
                answer_json(
                    422,
                    &json!({"message": "Repository rule violations found\n\nCannot delete this tag. The tag is permanently locked.\n\n", "documentation_url": "https://docs.github.com/rest/git/refs#delete-a-reference", "status": "422"}),
                )
            } else if repo.tags.remove(*tag) {
                // Deleting the tag of a release turns the release back into a draft.
                for release in repo.releases.iter_mut().filter(|r| r.tag == *tag) {
                    release.draft = true;
                }
                no_content()
            } else {
                answer_json(
                    422,
                    &json!({"message": "Reference does not exist", "documentation_url": "https://docs.github.com/rest/git/refs#delete-a-reference", "status": "422"}),
                )
            }
        }
        _ => not_found(),
    };
    Some(answer)
}

/// The one GraphQL query the tool sends: a repository's releases, 100 a page, newest first,
/// with cursor pagination (no result cap), in the shape GitHub's schema gives them.
fn graphql(shared: &Shared, body: &Value) -> Answer {
    let query = body["query"].as_str().unwrap_or_default();
    let variables = &body["variables"];
    if !query.contains("releases(first: 100, after: $after") {
        return answer_json(
            200,
            &json!({"errors": [{"message": "the fake answers only backup-agent's release listing"}]}),
        );
    }
    let owner = variables["owner"].as_str().unwrap_or_default();
    let name = variables["name"].as_str().unwrap_or_default();
    let full = format!("{owner}/{name}");
    let state = shared.state.lock().unwrap();
    let Some(repo) = state.repos.get(&full) else {
        return answer_json(
            200,
            &json!({"data": {"repository": null}, "errors": [{"type": "NOT_FOUND", "path": ["repository"], "locations": [{"line": 2, "column": 3}], "message": format!("Could not resolve to a Repository with the name '{full}'.")}]}),
        );
    };
    let offset: usize = variables["after"]
        .as_str()
        .and_then(|c| c.strip_prefix("cursor:v2:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let nodes: Vec<Value> = repo
        .releases
        .iter()
        .rev()
        .skip(offset)
        .take(100)
        .map(|r| {
            json!({
                "databaseId": r.id,
                "tagName": r.tag,
                "isDraft": r.draft,
                "createdAt": r.created_at,
                "description": r.body,
                "releaseAssets": {
                    "pageInfo": {"hasNextPage": r.assets.len() > 100},
                    "nodes": r.assets.iter().take(100).map(|a| json!({"name": a.name, "size": a.data.len()})).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    let end = offset + nodes.len();
    answer_json(
        200,
        &json!({"data": {"repository": {"releases": {
            "pageInfo": {"hasNextPage": end < repo.releases.len(), "endCursor": (!nodes.is_empty()).then(|| format!("cursor:v2:{end}"))},
            "nodes": nodes,
        }}}}),
    )
}

/// The shape of a GraphQL release listing, as GitHub's schema types it (`Release`,
/// `ReleaseAssetConnection`, `PageInfo`); errors need a `message`.
fn check_graphql_releases(body: &Value) -> Result<(), String> {
    if let Some(errors) = body["errors"].as_array() {
        return match errors.iter().all(|e| e["message"].is_string()) {
            true => Ok(()),
            false => Err(format!("POST /graphql: an error without `message`: {body}")),
        };
    }
    let releases = &body["data"]["repository"]["releases"];
    let page_ok = releases["pageInfo"]["hasNextPage"].is_boolean()
        && (releases["pageInfo"]["endCursor"].is_string()
            || releases["pageInfo"]["endCursor"].is_null());
    let nodes_ok = releases["nodes"].as_array().is_some_and(|nodes| {
        nodes.iter().all(|n| {
            n["databaseId"].is_u64()
                && n["tagName"].is_string()
                && n["isDraft"].is_boolean()
                && n["createdAt"].is_string()
                && (n["description"].is_string() || n["description"].is_null())
                && n["releaseAssets"]["pageInfo"]["hasNextPage"].is_boolean()
                && n["releaseAssets"]["nodes"]
                    .as_array()
                    .is_some_and(|assets| {
                        assets
                            .iter()
                            .all(|a| a["name"].is_string() && a["size"].is_u64())
                    })
        })
    });
    if page_ok && nodes_ok {
        Ok(())
    } else {
        Err("POST /graphql: the releases do not have the schema's shape".into())
    }
}

/// Another attempt publishes a copy of draft `id` (assets included) as its own release.
fn publish_a_copy(state: &mut State, full: &str, id: Option<u64>) {
    let next_id = state.next_id;
    let Some(repo) = state.repos.get_mut(full) else {
        return;
    };
    let Some(mut copy) = repo.releases.iter().find(|r| Some(r.id) == id).cloned() else {
        return;
    };
    copy.id = next_id;
    copy.draft = false;
    copy.immutable = repo.immutable_releases;
    for (n, asset) in copy.assets.iter_mut().enumerate() {
        asset.id = next_id + 1 + n as u64;
    }
    let used = 1 + copy.assets.len() as u64;
    repo.tags.insert(copy.tag.clone());
    repo.releases.push(copy);
    state.next_id += used;
}

/// GitHub's refusal to change an immutable release's assets.
fn immutable_refusal(message: &str) -> Answer {
    answer_json(
        422,
        &json!({"message": "Validation Failed", "errors": [{"resource": "ReleaseAsset", "code": "custom", "message": message}], "documentation_url": "https://docs.github.com/rest/releases/assets", "status": "422"}),
    )
}

/// GitHub's answer to a page past the first `cap` results of a list (I13).
fn past_cap(request: &Request, cap: usize) -> Option<Answer> {
    let (page, per_page) = page_asked(request);
    ((page - 1) * per_page >= cap).then(|| {
        answer_json(
            422,
            &json!({"message": "Only the first 1000 results are available.", "documentation_url": "https://docs.github.com/rest/releases/releases#list-releases"}),
        )
    })
}

fn no_content() -> Answer {
    Answer {
        status: 204,
        body: Arc::default(),
        content_type: "",
        headers: Vec::new(),
    }
}

/// `POST /user/repos`: a repository under the token's account; `auto_init` gives it a first
/// commit, without it the repository is empty.
fn create_repo(shared: &Shared, body: &Value) -> Answer {
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return validation_failed("Repository", "missing_field", "name", None);
    };
    let mut state = shared.state.lock().unwrap();
    let full = format!("{}/{name}", state.user);
    if state.repos.contains_key(&full) {
        return answer_json(
            422,
            &json!({"message": "Repository creation failed.", "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}], "documentation_url": "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user", "status": "422"}),
        );
    }
    let id = state.next_id;
    state.next_id += 1;
    let repo = Repo {
        id,
        private: body["private"].as_bool().unwrap_or(false),
        empty: !body["auto_init"].as_bool().unwrap_or(false),
        ..Repo::default()
    };
    let mut answer = answer_json(201, &shared.repo_json(&full, &repo));
    answer.headers.push((
        "location".into(),
        format!("{}/repos/{full}", shared.api_url),
    ));
    state.repos.insert(full, repo);
    answer
}

fn upload(shared: &Shared, request: &mut Request, out: &TcpStream) -> Option<Answer> {
    let segs: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let fault = take_fault(shared, Route::Upload);
    if let Some(Fault::Status(..)) = &fault {
        return status_fault(fault.unwrap());
    }
    if let Some(Fault::Hang) = &fault {
        return hold_open(shared, request, "hung");
    }
    if !request.authorized() {
        return status_fault(Fault::bad_credentials());
    }
    let length: Option<u64> = request
        .headers
        .get("content-length")
        .and_then(|l| l.parse().ok());
    let Some(length) = length.filter(|_| !request.headers.contains_key("transfer-encoding")) else {
        return Some(answer_json(
            400,
            &json!({"message": "Bad Content-Length: ", "request_id": "FAKE:0001"}),
        ));
    };
    let (full, release_id) = match segs.as_slice() {
        [r, owner, name, rel, id, assets]
            if r == "repos" && rel == "releases" && assets == "assets" =>
        {
            (format!("{owner}/{name}"), id.parse::<u64>().unwrap_or(0))
        }
        _ => return Some(not_found()),
    };
    let name = request.query.get("name").cloned().unwrap_or_default();
    let max_asset = shared.state.lock().unwrap().max_asset;
    if length > max_asset {
        return Some(answer_json(
            422,
            &json!({"message": "Validation Failed", "errors": [{"resource": "ReleaseAsset", "code": "custom", "field": "size", "message": format!("size must be less than or equal to {max_asset}")}], "documentation_url": "https://docs.github.com/rest/releases/assets#upload-a-release-asset"}),
        ));
    }
    {
        let state = shared.state.lock().unwrap();
        let taken = state
            .repos
            .get(&full)
            .and_then(|r| r.releases.iter().find(|rel| rel.id == release_id))
            .map(|rel| rel.assets.iter().any(|a| a.name == name));
        let immutable = state
            .repos
            .get(&full)
            .and_then(|r| r.releases.iter().find(|rel| rel.id == release_id))
            .is_some_and(|rel| rel.immutable);
        if immutable {
            return Some(immutable_refusal(
                "Cannot upload assets to an immutable release",
            ));
        }
        match taken {
            None => return Some(not_found()),
            Some(true) => {
                // The uploads host adds a request id (as recorded in @octokit/fixtures).
                return Some(answer_json(
                    422,
                    &json!({"message": "Validation Failed", "request_id": "FAKE:0002", "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}], "documentation_url": "https://docs.github.com/rest/releases/assets#upload-a-release-asset"}),
                ));
            }
            Some(false) => {}
        }
    }
    let want = match fault {
        Some(Fault::ResetMidUpload)
        | Some(Fault::StarterLeftover)
        | Some(Fault::StallMidUpload) => length / 2,
        _ => length,
    };
    let mut data = vec![0u8; want as usize];
    let mut link = Link::new(shared.state.lock().unwrap().link_rate);
    if link.read_exact(&mut request.reader, &mut data).is_err() {
        return None;
    }
    if let Some(Fault::StallMidUpload) = fault {
        return hold_open(shared, request, "stalled mid-upload");
    }
    let data_digest = digest(&data);
    let mut state = shared.state.lock().unwrap();
    let id = state.next_id;
    state.next_id += 1;
    let release = state
        .repos
        .get_mut(&full)
        .and_then(|r| r.releases.iter_mut().find(|rel| rel.id == release_id))
        .unwrap();
    let stored = StoredAsset {
        id,
        name: name.clone(),
        state: if want == length {
            "uploaded"
        } else {
            "starter"
        },
        digest: data_digest,
        data: Arc::new(data),
        content_type: request
            .headers
            .get("content-type")
            .cloned()
            .unwrap_or_else(|| "application/octet-stream".into()),
    };
    let tag = release.tag.clone();
    match fault {
        Some(Fault::ResetMidUpload) => {
            drop(state);
            reset(out);
            None
        }
        Some(Fault::ResetAfterStore) => {
            release.assets.push(stored);
            drop(state);
            reset(out);
            None
        }
        Some(Fault::StarterLeftover) => {
            release.assets.push(stored);
            Some(answer_json(502, &json!({"message": "Error saving asset"})))
        }
        _ => {
            let json = shared.asset_json(&full, &tag, &stored);
            release.assets.push(stored);
            Some(answer_json(201, &json))
        }
    }
}

fn storage(shared: &Shared, request: &Request, out: &TcpStream) -> Option<Answer> {
    if let Some(auth) = request.headers.get("authorization") {
        shared.state.lock().unwrap().storage_auth.push(auth.clone());
        return Some(Answer {
            status: 400,
            body: b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>".to_vec().into(),
            content_type: "application/xml",
            headers: Vec::new(),
        });
    }
    let fault = take_fault(shared, Route::Storage);
    if let Some(Fault::Status(..)) = &fault {
        return status_fault(fault.unwrap());
    }
    let id: u64 = request
        .path
        .trim_start_matches("/objects/")
        .parse()
        .unwrap_or(0);
    let state = shared.state.lock().unwrap();
    let data = state
        .repos
        .values()
        .flat_map(|r| &r.releases)
        .flat_map(|r| &r.assets)
        .find(|a| a.id == id)
        .map(|a| a.data.clone());
    let link_rate = state.link_rate;
    drop(state);
    if let (Some(Fault::StallMidDownload), Some(data)) = (&fault, &data) {
        let mut out = out.try_clone().ok()?;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            data.len()
        );
        out.write_all(head.as_bytes()).ok()?;
        let mut link = Link::new(link_rate);
        for chunk in data[..data.len() / 2].chunks(link.chunk()) {
            out.write_all(chunk).ok()?;
            link.pace(chunk.len());
        }
        out.flush().ok()?;
        return hold_open(shared, request, "stalled mid-download");
    }
    Some(match data {
        Some(data) => Answer {
            status: 200,
            body: data,
            content_type: "application/octet-stream",
            headers: Vec::new(),
        },
        None => Answer {
            status: 404,
            body: b"<Error><Code>NoSuchKey</Code></Error>".to_vec().into(),
            content_type: "application/xml",
            headers: Vec::new(),
        },
    })
}
