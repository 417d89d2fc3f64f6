//! The S3 remote: a bucket of any S3-compatible object store (AWS S3, Cloudflare R2, Backblaze
//! B2, Wasabi, MinIO, Garage).
//!
//! Layout under the configured prefix:
//! - `<tag>.tar.gz`, the archive, with its sha256 in its metadata (`x-amz-meta-sha256`);
//! - `<tag>.json`, the snapshot's record (size, sha256, host, kind, note: what a GitHub release
//!   body carries), so `list` downloads no archive;
//! - the marker (`.backup-agent-remote.json`), written on first use, as for the folder remote;
//! - `.incoming/`, where a replacement is written and checked before it replaces anything.
//!
//! An archive is written under its final name only when nothing is there: with
//! `If-None-Match: *` where the server honours it (probed, never assumed: Garage 2.5.0 accepts
//! the header and overwrites anyway), and always after a HEAD that found nothing. A stored copy
//! is replaced only when it fails its own record and the local copy passes its own, and then
//! only by a copy written aside, read back and verified first.
//!
//! Transfers stream: an upload goes in parts whose size grows with the archive (S3 takes up to
//! 10,000), each with its `Content-MD5` signed, so memory stays flat at any archive size; an
//! upload that fails is aborted, and the next run aborts what a killed run left
//! (`ListMultipartUploads`). Every request goes through `remote::net`'s client, retry budget and
//! stall watchdog.
//!
//! `config` is the `[remote]` table; `credentials` finds the keys; `client` signs requests and
//! sorts S3's answers; `xml` reads them; `put` decides what a push writes; `transfer` moves
//! archives; `cleanup` removes what interrupted pushes left; `doctor` is what `backup doctor`
//! says.

mod cleanup;
mod client;
pub mod config;
pub mod credentials;
mod doctor;
mod put;
mod transfer;
mod xml;

use std::cell::{Cell, OnceCell};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::net::{self, ClientSettings, Fault, Retrier, RetrySettings};
use super::{Readiness, RemoteSnapshot, Upload};
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::layout::MARKER_FILE;
use crate::progress::Progress;
use crate::tag::Tag;
use client::{Call, Client, S3};
pub use config::S3Config;
pub use credentials::{CredentialSource, Credentials};

/// Snapshot records read at once by a listing.
const RECORDS_AT_ONCE: usize = 16;
/// Where replacements are written and checked before they replace anything.
const INCOMING: &str = ".incoming/";
/// Start of the conditional-write probe's name in `.incoming/`.
const PROBE: &str = "probe-";
#[derive(Debug)]
pub struct S3Remote {
    config: S3Config,
    given: Option<Credentials>,
    client: OnceCell<Client>,
    deadline: Cell<Option<Instant>>,
    quick: Cell<bool>,
    /// Whether the server refuses a write under a taken name (`If-None-Match: *`), once probed.
    conditional: Cell<Option<bool>>,
    marker_checked: Cell<bool>,
}

impl Stored {
    /// Whether this is the local archive as its record describes it.
    fn holds(&self, upload: &Upload<'_>) -> bool {
        self.size == upload.size && self.sha256.as_deref() == Some(upload.sha256)
    }
}

/// An object as a listing shows it, named relative to the prefix.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    size: u64,
    modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a HEAD of an archive found.
#[derive(Debug, Clone)]
struct Stored {
    size: u64,
    sha256: Option<String>,
}

impl S3Remote {
    pub fn new(config: S3Config) -> S3Remote {
        S3Remote {
            config,
            given: None,
            client: OnceCell::new(),
            deadline: Cell::new(None),
            quick: Cell::new(false),
            conditional: Cell::new(None),
            marker_checked: Cell::new(false),
        }
    }

    /// A remote that signs with `credentials` instead of looking for keys.
    pub fn with_credentials(config: S3Config, credentials: Credentials) -> S3Remote {
        S3Remote {
            given: Some(credentials),
            ..S3Remote::new(config)
        }
    }

    pub fn describe(&self) -> String {
        let prefix = if self.config.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", self.config.prefix)
        };
        format!(
            "S3 bucket {}{prefix} at {}",
            self.config.bucket,
            net::redact(&self.config.endpoint)
        )
    }

    /// Where the keys in use come from (looked up on first use).
    ///
    /// # Errors
    /// No keys anywhere, or an unsafe credentials file.
    pub fn credential_source(&self) -> Result<CredentialSource> {
        Ok(self.client()?.credentials.source.clone())
    }

    pub fn answer_quickly(&self) {
        self.quick.set(true);
        if let Some(client) = self.client.get() {
            client.retrier.answer_quickly(true);
        }
    }

    pub fn start_run_deadline(&self) {
        let deadline = Instant::now() + Duration::from_secs(self.config.push_deadline_secs);
        self.deadline.set(Some(deadline));
        if let Some(client) = self.client.get() {
            client.retrier.set_deadline(Some(deadline));
        }
    }

    fn client(&self) -> Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let credentials = match &self.given {
            Some(given) => given.clone(),
            None => credentials::find(
                &credentials::from_process(),
                self.config.profile.as_deref(),
                self.config.credentials_file.as_deref(),
            )?,
        };
        let endpoint = url::Url::parse(&self.config.endpoint)
            .map_err(|e| Error::Config(format!("[remote] endpoint: {e}")))?;
        let style = if self.config.path_style {
            rusty_s3::UrlStyle::Path
        } else {
            rusty_s3::UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            style,
            self.config.bucket.clone(),
            self.config.region.clone(),
        )
        .map_err(|e| {
            Error::Config(format!(
                "[remote] bucket {} at {}: {e}; a server addressed by IP address or without wildcard DNS needs path_style = true",
                self.config.bucket,
                net::redact(&self.config.endpoint)
            ))
        })?;
        let reply_timeout = Duration::from_secs(self.config.reply_timeout_secs);
        let http = net::build_client(&ClientSettings { reply_timeout })?;
        let retrier = Retrier::new(
            S3,
            RetrySettings {
                budget: Duration::from_secs(self.config.retry_budget_secs),
                max_delay: Duration::from_millis(self.config.retry_max_delay_ms),
                reply_timeout,
                deadline_secs: self.config.push_deadline_secs,
            },
        )?;
        retrier.set_deadline(self.deadline.get());
        retrier.answer_quickly(self.quick.get());
        let client = Client::new(
            retrier,
            http,
            bucket,
            credentials,
            Duration::from_secs(self.config.stall_secs),
            Duration::from_secs(self.config.answer_timeout_secs),
        );
        Ok(self.client.get_or_init(|| client))
    }

    /// The key of `name` under the prefix.
    fn key(&self, name: &str) -> String {
        if self.config.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.config.prefix)
        }
    }

    /// The keys an archive of `tag` may have (`<tag>.tar.gz`, `<tag>.tar.zst`).
    fn archive_keys(&self, tag: &Tag) -> [String; 2] {
        tag.archive_names().map(|name| self.key(&name))
    }

    fn record_key(&self, tag: &Tag) -> String {
        self.key(&format!("{tag}.json"))
    }

    /// Runs `op` with retries on transient faults; a final fault becomes the error.
    fn retrying<T, Fut>(&self, op: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
    {
        let client = self.client()?;
        client
            .retrier
            .run_with_retries(op)
            .map_err(|fault| match fault {
                Fault::Fatal(e) => Error::Remote(e),
                Fault::Transient { message, .. } => Error::Remote(RemoteError::transient(message)),
            })
    }

    /// Every key under the prefix (not in deeper folders) with its size, following
    /// continuation tokens to the end.
    fn list_keys(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_objects("")?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect())
    }

    /// Every object whose name under the prefix starts with `start` (`""`, or a folder such as
    /// `.incoming/`), not in deeper folders, following continuation tokens to the end.
    fn list_objects(&self, start: &str) -> Result<Vec<Listed>> {
        let client = self.client()?;
        let base = self.key("");
        let prefix = self.key(start);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.retrying(|| {
                let mut call = Call::new(reqwest::Method::GET, None)
                    .query("list-type", "2")
                    .query("delimiter", "/")
                    .query("max-keys", "1000");
                if !prefix.is_empty() {
                    call = call.query("prefix", prefix.clone());
                }
                if let Some(token) = &token {
                    call = call.query("continuation-token", token.clone());
                }
                async move {
                    let reply = client.call(&call, None, "listing the bucket").await?;
                    match reply.status {
                        200 => Ok(reply.body),
                        status => Err(Fault::Fatal(
                            self.not_found_or_failed(status, "listing the bucket"),
                        )),
                    }
                }
            })?;
            for record in xml::records(&page, "Contents") {
                let (Some(key), Some(size)) = (record.get("Key"), record.get("Size")) else {
                    continue;
                };
                if let Some(name) = key.strip_prefix(&base) {
                    found.push(Listed {
                        name: name.to_string(),
                        size: size.parse().unwrap_or(0),
                        modified: record
                            .get("LastModified")
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&chrono::Utc)),
                    });
                }
            }
            let truncated = xml::text(&page, "IsTruncated").is_some_and(|t| t == "true");
            if !truncated {
                return Ok(found);
            }
            // A listing cut short without the way on would look complete: say so instead.
            token = Some(
                xml::text(&page, "NextContinuationToken")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        RemoteError::failed(
                            "the server cut the bucket listing short without a continuation token",
                        )
                    })?,
            );
        }
    }

    /// A 404 where a bucket-level answer was expected is the bucket missing; anything else the
    /// sorting let through is a failure.
    fn not_found_or_failed(&self, status: u16, doing: &str) -> RemoteError {
        if status == 404 {
            RemoteError::not_found(format!(
                "bucket {} was not found; `backup init --create` makes it",
                self.config.bucket
            ))
        } else {
            RemoteError::failed(format!("{doing}: S3 answered {status}"))
        }
    }

    /// The snapshot record of `tag`, if there is one that parses.
    fn record(&self, tag: &Tag) -> Result<Option<Value>> {
        let client = self.client()?;
        let key = self.record_key(tag);
        self.retrying(|| {
            let call = Call::new(reqwest::Method::GET, Some(&key));
            async move {
                let reply = client
                    .call(&call, None, "reading a snapshot record")
                    .await?;
                Ok(match reply.status {
                    200 => serde_json::from_slice(&reply.body).ok(),
                    _ => None,
                })
            }
        })
    }

    /// Snapshots in the bucket, oldest first: every archive with its record's sha256 and note.
    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        self.snapshots(None)
    }

    /// The snapshots among `tags` the bucket holds: one listing, and only their records read.
    pub fn holding(&self, tags: &[Tag]) -> Result<Vec<RemoteSnapshot>> {
        self.snapshots(Some(tags))
    }

    /// The archives in the bucket (those of `wanted`, when given) with their records, read
    /// [`RECORDS_AT_ONCE`] at a time: a bucket many machines share holds hundreds.
    fn snapshots(&self, wanted: Option<&[Tag]>) -> Result<Vec<RemoteSnapshot>> {
        let keys = self.list_keys()?;
        let recorded: HashSet<&str> = keys
            .iter()
            .filter_map(|(name, _)| name.strip_suffix(".json"))
            .collect();
        let archives: Vec<(Tag, u64)> = keys
            .iter()
            .filter_map(|(name, size)| Some((Tag::from_archive_name(name)?, *size)))
            .filter(|(tag, _)| wanted.is_none_or(|w| w.contains(tag)))
            .collect();
        let with_record: Vec<&Tag> = archives
            .iter()
            .map(|(tag, _)| tag)
            .filter(|tag| recorded.contains(tag.as_str()))
            .collect();
        let client = self.client()?;
        let mut records = std::collections::HashMap::new();
        for batch in with_record.chunks(RECORDS_AT_ONCE) {
            let keys: Vec<String> = batch.iter().map(|tag| self.record_key(tag)).collect();
            let read = self.retrying(|| {
                let calls = keys
                    .iter()
                    .map(|key| async move {
                        let call = Call::new(reqwest::Method::GET, Some(key));
                        let reply = client
                            .call(&call, None, "reading a snapshot record")
                            .await?;
                        Ok::<_, Fault>(match reply.status {
                            200 => serde_json::from_slice::<Value>(&reply.body).ok(),
                            _ => None,
                        })
                    })
                    .collect();
                async move {
                    net::join_all(calls)
                        .await
                        .into_iter()
                        .collect::<std::result::Result<Vec<_>, _>>()
                }
            })?;
            for (tag, record) in batch.iter().zip(read) {
                if let Some(record) = record {
                    records.insert((*tag).clone(), record);
                }
            }
        }
        let mut found: Vec<RemoteSnapshot> = archives
            .into_iter()
            .map(|(tag, size)| {
                let record = records.get(&tag);
                super::snapshot_from_record(tag, size, record)
            })
            .collect();
        found.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(found)
    }

    /// Checks the bucket is reachable and writable, and marks it; with `create`, makes a bucket
    /// that is missing first.
    pub fn init(&self, create: bool) -> Result<Readiness> {
        let client = self.client()?;
        let mut created = false;
        match self.list_page_of_one() {
            Ok(()) => {}
            Err(Error::Remote(e)) if e.kind == RemoteErrorKind::NotFound && create => {
                self.create_bucket(client)?;
                created = true;
            }
            Err(e) => return Err(e),
        }
        let marked = self.ensure_marker()?;
        // The probe writes and deletes a small object: the bucket takes writes (a marker that
        // was there already proves nothing about that).
        let conditional = if self.conditional_writes()? {
            "it refuses writes under a taken name"
        } else {
            "it ignores If-None-Match, so each push looks before it writes"
        };
        let detail = match (created, marked) {
            (true, _) => format!("created {} and marked it; {conditional}", self.describe()),
            (false, true) => format!(
                "{} is reachable and writable; marked it; {conditional}",
                self.describe()
            ),
            (false, false) => format!(
                "{} is reachable, writable and marked; {conditional}",
                self.describe()
            ),
        };
        Ok(Readiness { created, detail })
    }

    /// Whether the bucket answers a listing with these keys; writes nothing.
    ///
    /// # Errors
    /// The bucket is missing, the keys are refused, or the server cannot be reached.
    pub fn check_reachable(&self) -> Result<()> {
        self.list_page_of_one()
    }

    fn list_page_of_one(&self) -> Result<()> {
        let client = self.client()?;
        self.retrying(|| {
            // Under the prefix: a key whose policy allows listing only there is still let in.
            let mut call = Call::new(reqwest::Method::GET, None)
                .query("list-type", "2")
                .query("max-keys", "1");
            if !self.config.prefix.is_empty() {
                call = call.query("prefix", self.key(""));
            }
            async move {
                let reply = client.call(&call, None, "reading the bucket").await?;
                match reply.status {
                    200 => Ok(()),
                    status => Err(Fault::Fatal(
                        self.not_found_or_failed(status, "reading the bucket"),
                    )),
                }
            }
        })
    }

    fn create_bucket(&self, client: &Client) -> Result<()> {
        // us-east-1 is the one region that takes no location (and refuses its own name).
        let body = (self.config.region != "us-east-1").then(|| {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                xml::escape(&self.config.region)
            )
            .into_bytes()
        });
        self.retrying(|| {
            let call = Call::new(reqwest::Method::PUT, None);
            let body = body.clone();
            async move {
                let reply = client.call(&call, body, "creating the bucket").await?;
                match reply.status {
                    200 | 204 => Ok(()),
                    // An earlier attempt made it.
                    409 if xml::text(&reply.body, "Code").as_deref()
                        == Some("BucketAlreadyOwnedByYou") =>
                    {
                        Ok(())
                    }
                    status => Err(Fault::Fatal(RemoteError::failed(format!(
                        "creating bucket {} answered {status} {}",
                        self.config.bucket,
                        xml::text(&reply.body, "Code").unwrap_or_default()
                    )))),
                }
            }
        })
    }

    /// Writes the marker when the bucket has none; true when it wrote one.
    fn ensure_marker(&self) -> Result<bool> {
        let client = self.client()?;
        let key = self.key(MARKER_FILE);
        let present = self.retrying(|| {
            let call = Call::new(reqwest::Method::HEAD, Some(&key));
            async move {
                let reply = client.call(&call, None, "reading the marker").await?;
                Ok(reply.status == 200)
            }
        })?;
        self.marker_checked.set(true);
        if present {
            return Ok(false);
        }
        let marker = serde_json::json!({
            "format": "backup-agent remote bucket",
            "version": 1,
            "created_at": chrono::Utc::now().to_rfc3339(),
            "created_by": crate::tag::hostname(),
        })
        .to_string()
        .into_bytes();
        self.put_small(&key, &marker, "application/json", "writing the marker")?;
        Ok(true)
    }

    /// Before a run pushes: the bucket is reachable and carries the marker (written on first
    /// use).
    pub fn ready_for_push(&self) -> Result<()> {
        if self.marker_checked.get() {
            return Ok(());
        }
        self.ensure_marker().map(|_| ())
    }

    /// A small object written whole (a record, the marker), with its `Content-MD5` signed.
    fn put_small(&self, key: &str, bytes: &[u8], content_type: &str, doing: &str) -> Result<()> {
        let client = self.client()?;
        let md5 = transfer::content_md5(bytes);
        self.retrying(|| {
            let call = Call::new(reqwest::Method::PUT, Some(key))
                .header("content-md5", md5.clone())
                .header("content-type", content_type.to_string());
            let body = bytes.to_vec();
            async move {
                let reply = client.call(&call, Some(body), doing).await?;
                match reply.status {
                    200 | 204 => Ok(()),
                    status => Err(Fault::Fatal(RemoteError::failed(format!(
                        "{doing}: S3 answered {status}"
                    )))),
                }
            }
        })
    }

    /// HEAD of an archive: its size and the sha256 its metadata carries, or `None` when absent.
    fn stored(&self, key: &str) -> Result<Option<Stored>> {
        let client = self.client()?;
        self.retrying(|| head_once(client, key))
    }

    /// Deletes `key`; one already gone counts as deleted. `Ok(false)` when the bucket's Object
    /// Lock keeps it.
    fn delete_key(&self, key: &str) -> Result<bool> {
        let client = self.client()?;
        self.retrying(|| {
            let call = Call::new(reqwest::Method::DELETE, Some(key));
            async move {
                match client.call(&call, None, "deleting").await {
                    Ok(reply) if matches!(reply.status, 200 | 204 | 404) => Ok(true),
                    Ok(reply) => Err(Fault::Fatal(RemoteError::failed(format!(
                        "deleting {key} answered {}",
                        reply.status
                    )))),
                    Err(Fault::Fatal(e))
                        if e.kind == RemoteErrorKind::Denied
                            && e.message.to_ascii_lowercase().contains("object lock") =>
                    {
                        Ok(false)
                    }
                    Err(fault) => Err(fault),
                }
            }
        })
    }

    /// Deletes the snapshot of `tag`: its archive, then its record. A note when the bucket's
    /// Object Lock keeps it.
    pub fn delete(&self, tag: &Tag) -> Result<Option<String>> {
        // Only the names that are there: on a versioned bucket, deleting a missing key still
        // leaves a delete marker behind.
        let mut archive = true;
        for key in self.archive_keys(tag) {
            if self.stored(&key)?.is_some() {
                archive &= self.delete_key(&key)?;
            }
        }
        if !archive {
            return Ok(Some(format!(
                "{tag} stays in the bucket until its Object Lock retention ends; it is deleted by a later prune"
            )));
        }
        self.delete_key(&self.record_key(tag))?;
        Ok(None)
    }

    /// The manifest of `tag` without a download: S3 keeps none apart from the archive.
    pub fn peek_manifest(&self, _tag: &Tag) -> Option<crate::archive::Manifest> {
        None
    }

    /// Downloads the archive of `tag` into `dest`; returns its size and sha256.
    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        for key in self.archive_keys(tag) {
            match self.download(&key, Some(dest), progress) {
                Err(Error::Remote(e)) if e.kind == RemoteErrorKind::NotFound => {}
                other => return other,
            }
        }
        let _ = std::fs::remove_file(dest);
        Err(RemoteError::not_found(format!("{} holds no snapshot {tag}", self.describe())).into())
    }

    /// Versioning and Object Lock as the bucket reports them: (versioning status, lock on).
    fn protection(&self) -> Result<(Option<String>, bool)> {
        let client = self.client()?;
        let versioning = self.retrying(|| {
            let call = Call::new(reqwest::Method::GET, None).query("versioning", "");
            async move {
                let reply = client.call(&call, None, "reading versioning").await?;
                Ok((reply.status == 200)
                    .then(|| xml::text(&reply.body, "Status"))
                    .flatten()
                    .filter(|s| !s.is_empty()))
            }
        })?;
        let lock = self
            .retrying(|| {
                let call = Call::new(reqwest::Method::GET, None).query("object-lock", "");
                async move {
                    match client.call(&call, None, "reading Object Lock").await {
                        Ok(reply) => Ok(reply.status == 200
                            && xml::text(&reply.body, "ObjectLockEnabled").as_deref()
                                == Some("Enabled")),
                        // No configuration (404, 400) or not implemented: no lock.
                        Err(_) => Ok(false),
                    }
                }
            })
            .unwrap_or(false);
        Ok((versioning, lock))
    }
}

/// One HEAD of `key`: its size and the sha256 its metadata carries, or `None` when absent.
async fn head_once(client: &Client, key: &str) -> std::result::Result<Option<Stored>, Fault> {
    let call = Call::new(reqwest::Method::HEAD, Some(key));
    let reply = client.call(&call, None, "looking for the archive").await?;
    match reply.status {
        200 => Ok(Some(Stored {
            size: reply
                .headers
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            sha256: reply
                .headers
                .get("x-amz-meta-sha256")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })),
        404 => Ok(None),
        // Anything else is no answer about the object: never taken for "absent", which would
        // start a write.
        status => Err(Fault::Fatal(RemoteError::failed(format!(
            "looking for {key} answered {status}"
        )))),
    }
}
