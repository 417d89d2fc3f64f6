//! Remotes: where snapshots go off the machine.
//!
//! The contract every remote keeps:
//! - `list` returns the snapshots it holds (only names this tool made), with their sizes;
//! - `put` stores an archive and converges: a retry that finds the snapshot already there, whole
//!   and identical, succeeds without storing it twice; a partial leftover is replaced;
//! - a remote never holds a half-written archive under its final name;
//! - a folder remote is used only while it holds the marker this machine knows (`marker`).
//!
//! Every failure is a [`crate::Error::Remote`] holding a [`RemoteError`], whose
//! [`RemoteErrorKind`] callers branch on (never its text):
//! - `list`, `holding`, `put`, `fetch` and `delete` return `NotFound` when the remote itself (its
//!   folder, its repository) is not there; `init(true)` creates it instead;
//! - `fetch` returns `NotFound` for a snapshot the remote does not hold (never pushed, or
//!   deleted); `delete` of such a snapshot succeeds;
//! - `put` returns `Refused` when the remote can never take that one snapshot (a different copy
//!   is stored under its tag and the local one is not proven good; an immutable GitHub release);
//!   a run pushes the others past it;
//! - every operation returns `Unsafe`, having written nothing, when using the remote would risk
//!   the user's data (a public repository, a folder that is not this machine's remote);
//! - `Corrupt` when what the remote holds or sent does not match its record, `Transient` when
//!   a later try may work, `Denied` when the user must fix credentials or permissions, and
//!   `Failed` for the rest.
//!
//! Each remote owns its settings: a config type, and the keys of its `[remote]` table, which
//! [`RemoteConfig::parse_section`] reads for the `type` the table names. `config` embeds
//! [`RemoteConfig`] and knows no remote's keys.

mod dir;
pub mod github;
mod marker;
mod net;
pub mod s3;

pub use dir::{DirConfig, DirRemote};
pub use github::{GithubConfig, GithubRemote};
pub use s3::{S3Config, S3Remote};

pub use crate::error::{RemoteError, RemoteErrorKind};

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::archive::Manifest;
use crate::error::Result;
use crate::progress::Progress;
use crate::tag::Tag;

/// Where snapshots go off the machine, as the config file says.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RemoteConfig {
    /// A folder, typically on a NAS or a cloud-synced drive.
    Dir(DirConfig),
    /// GitHub Releases in a private repository: one release per snapshot.
    Github(GithubConfig),
    /// A bucket of an S3-compatible object store.
    S3(S3Config),
}

/// Why a `[remote]` table was refused.
#[derive(Debug)]
pub enum SettingsError {
    /// The table does not fit its remote's keys (an unknown key, a value of the wrong type);
    /// the error's span points into the config text, for its line.
    Toml(toml::de::Error),
    /// The keys fit but say something wrong, in words.
    Invalid(String),
}

impl From<toml::de::Error> for SettingsError {
    fn from(e: toml::de::Error) -> SettingsError {
        SettingsError::Toml(e)
    }
}

/// Every remote type: the name `type = "…"` gives it, and the keys its table takes besides
/// `type` (read from its settings struct, so no list is kept by hand).
fn remote_types() -> [(&'static str, &'static [&'static str]); 3] {
    [
        ("dir", keys_of::<dir::DirSettings>()),
        ("github", keys_of::<github::config::GithubSettings>()),
        ("s3", keys_of::<s3::config::S3Settings>()),
    ]
}

impl RemoteConfig {
    /// Reads the `[remote]` table of the config text `text`, if there is one: its `type`, then
    /// the table as that remote's settings, with relative paths resolved by `resolve`.
    ///
    /// # Errors
    /// An unknown `type`, a key another type takes (naming it), a key no type takes (with its
    /// line), or settings the remote refuses.
    pub fn parse_section(
        text: &str,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> std::result::Result<Option<RemoteConfig>, SettingsError> {
        let mut document = toml::de::DeTable::parse(text)?.into_inner();
        let Some(mut table) = document.remove("remote") else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Kind {
            #[serde(rename = "type")]
            kind: String,
        }
        let Kind { kind } = Kind::deserialize(toml::de::ValueDeserializer::from(table.clone()))?;
        let keys: Vec<String> = match table.get_mut() {
            toml::de::DeValue::Table(entries) => {
                entries.remove("type");
                entries.keys().map(|k| k.get_ref().to_string()).collect()
            }
            _ => Vec::new(),
        };
        let types = remote_types();
        // A key of another type is refused as such, not as a typo, naming the type that takes it.
        if let Some((_, own)) = types.iter().find(|(name, _)| *name == kind) {
            for key in keys.iter().filter(|key| !own.contains(&key.as_str())) {
                if let Some((owner, _)) = types
                    .iter()
                    .find(|(_, theirs)| theirs.contains(&key.as_str()))
                {
                    return Err(SettingsError::Invalid(format!(
                        "[remote] key `{key}` does not apply to type = \"{kind}\" (it is a key of type = \"{owner}\"); remove it"
                    )));
                }
            }
        }
        let settings = toml::de::ValueDeserializer::from(table);
        let invalid = SettingsError::Invalid;
        Ok(Some(match kind.as_str() {
            "dir" => RemoteConfig::Dir(
                DirConfig::from_settings(Deserialize::deserialize(settings)?, resolve)
                    .map_err(invalid)?,
            ),
            "github" => RemoteConfig::Github(
                GithubConfig::from_settings(Deserialize::deserialize(settings)?, resolve)
                    .map_err(invalid)?,
            ),
            "s3" => RemoteConfig::S3(
                S3Config::from_settings(Deserialize::deserialize(settings)?, resolve)
                    .map_err(invalid)?,
            ),
            other => {
                let supported: Vec<String> = types
                    .iter()
                    .map(|(name, _)| format!("\"{name}\""))
                    .collect();
                return Err(invalid(format!(
                    "[remote] type `{other}` is unknown; supported: {}",
                    supported.join(", ")
                )));
            }
        }))
    }

    /// The remote's folder on this machine, for remotes that are one.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            RemoteConfig::Dir(dir) => Some(&dir.path),
            RemoteConfig::Github(_) | RemoteConfig::S3(_) => None,
        }
    }
}

/// A number of seconds from a `[remote]` key: `default` when absent, refused when 0 (it would
/// fail every request at once).
pub(crate) fn seconds_at_least_one(
    value: Option<u64>,
    default: u64,
    key: &str,
) -> std::result::Result<u64, String> {
    match value {
        Some(0) => Err(format!(
            "[remote] {key} = 0 would fail every request at once; give a number of seconds, at least 1"
        )),
        other => Ok(other.unwrap_or(default)),
    }
}

/// The field names a settings struct's derived `Deserialize` asks for: its keys.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct FieldNames<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom(
                "only the field names were asked for",
            ))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// What the operation that builds a remote tells it about this machine.
#[derive(Clone, Debug)]
pub struct RemoteSetup<'a> {
    /// The local snapshot folder (the folder remote keeps its record of the folders this
    /// machine pushed to there).
    pub local_dir: &'a Path,
    /// `last_run.json` says the last run pushed: for a machine that pushed with an earlier
    /// version, which kept no record of its folders, this stands in for the record.
    pub earlier_good_push: bool,
}

/// One line of `backup doctor` about the remote, in words the doctor shows as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagnosedCheck {
    pub name: String,
    pub verdict: DiagnosedVerdict,
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

/// How a remote's doctor check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosedVerdict {
    Ok,
    /// Works, but not as an unattended backup needs.
    Warn,
    Fail,
}

impl DiagnosedCheck {
    pub(crate) fn ok(name: &str, detail: impl Into<String>) -> DiagnosedCheck {
        DiagnosedCheck {
            name: name.to_string(),
            verdict: DiagnosedVerdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn not_ok(
        verdict: DiagnosedVerdict,
        name: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> DiagnosedCheck {
        DiagnosedCheck {
            name: name.to_string(),
            verdict,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// A snapshot held by a remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub tag: Tag,
    pub size: u64,
    /// The sha256 the remote recorded when the snapshot was pushed, if it keeps one.
    pub sha256: Option<String>,
    /// How many check findings the snapshot's manifest records, when the remote's own record
    /// says so (a GitHub release body) without reading the archive.
    pub findings: Option<u64>,
    /// The snapshot's note (`backup now --note`), when the remote's own record carries it (a
    /// GitHub release body) without reading the archive.
    pub note: Option<String>,
    /// The full snapshot this one is a differential of, as the remote's record (or, for a
    /// folder, the archive's manifest) says; `None` for a full, or when nothing says.
    pub base: Option<Tag>,
}

impl RemoteSnapshot {
    /// Whether this is a good copy of a local archive whose recorded sha256 is `recorded`: only
    /// a remote record equal to the local one counts, so a remote that keeps no record never
    /// stands in for a local archive.
    pub fn matches_record(&self, recorded: Option<&str>) -> bool {
        matches!((self.sha256.as_deref(), recorded), (Some(a), Some(b)) if a == b)
    }
}

/// What a remote keeps beside a snapshot so that `list` needs no download (a GitHub release
/// body, an S3 record object): the archive's size and sha256, and what its manifest says in
/// short.
pub(crate) fn snapshot_record(upload: &Upload<'_>) -> serde_json::Value {
    use serde_json::json;
    let manifest = upload.manifest;
    json!({
        "tag": upload.tag.as_str(),
        "size": upload.size,
        "sha256": upload.sha256,
        "host": manifest.map(|m| m.host.clone()),
        "kind": upload.tag.kind().as_str(),
        "created_at": upload.tag.time().to_rfc3339(),
        "manifest_version": manifest.map(|m| m.manifest_version),
        "databases": manifest.map(|m| m.databases.iter().map(|d| json!({
            "name": d.name, "user_version": d.user_version, "size": d.size,
            "rows": d.tables.values().sum::<u64>(),
        })).collect::<Vec<_>>()),
        "files": manifest.map(|m| m.files.len()),
        "findings": manifest.and_then(|m| m.findings_count()),
        "note": manifest.and_then(|m| m.note.as_deref()),
        "base": manifest.and_then(|m| m.base.as_ref()).map(|b| b.tag.as_str()),
    })
}

/// The snapshot a remote's record (see [`snapshot_record`]) describes, stored as `size` bytes:
/// its sha256 only when the record is of that size, and a note only as `now --note` would take
/// it (a record can be edited by hand).
pub(crate) fn snapshot_from_record(
    tag: Tag,
    size: u64,
    record: Option<&serde_json::Value>,
) -> RemoteSnapshot {
    let sha256 = record
        .filter(|r| r["size"].as_u64().is_none_or(|s| s == size))
        .and_then(|r| r["sha256"].as_str().map(str::to_string));
    RemoteSnapshot {
        size,
        sha256,
        findings: record.and_then(|r| r["findings"].as_u64()),
        note: record
            .and_then(|r| r["note"].as_str())
            .and_then(|n| crate::archive::manifest::clean_note(n).ok()),
        base: record.and_then(base_of_record),
        tag,
    }
}

/// The base a remote's record names (see [`snapshot_record`]).
pub(crate) fn base_of_record(record: &serde_json::Value) -> Option<Tag> {
    record["base"].as_str().and_then(Tag::parse)
}

/// What `init` found or made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Readiness {
    pub created: bool,
    /// One line for people: what is ready, or what was made.
    pub detail: String,
}

/// A local archive on its way to the remote.
#[derive(Clone, Debug)]
pub struct Upload<'a> {
    pub tag: &'a Tag,
    pub path: &'a Path,
    pub size: u64,
    pub sha256: &'a str,
    /// The archive's manifest, for a remote's own record of the snapshot; `None` when it cannot
    /// be read (the caller has said why).
    pub manifest: Option<&'a Manifest>,
    /// The sha256 was checked against the record written when the archive was made (or the
    /// archive was made by this run).
    pub verified: bool,
}

impl Upload<'_> {
    /// The archive's name on the remote: the local file's (`<tag>.tar.gz` or `<tag>.tar.zst`).
    pub fn archive_name(&self) -> String {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| Tag::from_archive_name(n).as_ref() == Some(self.tag))
            .map_or_else(|| self.tag.archive_name(), str::to_string)
    }

    /// The archive's media type, for remotes that store one.
    pub fn content_type(&self) -> &'static str {
        if self.archive_name().ends_with(crate::tag::ZSTD_ARCHIVE_EXT) {
            "application/zstd"
        } else {
            "application/gzip"
        }
    }
}

/// The configured remote.
#[derive(Debug)]
pub enum Remote {
    Dir(DirRemote),
    Github(Box<GithubRemote>),
    S3(Box<S3Remote>),
}

impl Remote {
    /// The configured remote, for the machine `setup` describes.
    pub fn from_config(config: &RemoteConfig, setup: &RemoteSetup<'_>) -> Remote {
        match config {
            RemoteConfig::Dir(dir) => Remote::Dir(DirRemote::new(dir, setup)),
            RemoteConfig::Github(github) => {
                Remote::Github(Box::new(GithubRemote::new(github.clone())))
            }
            RemoteConfig::S3(s3) => Remote::S3(Box::new(S3Remote::new(s3.clone()))),
        }
    }

    /// `backup doctor`'s lines about the remote: whether it can take snapshots, and what to do
    /// when not. Writes nothing on the remote but a probe file it removes (the folder remote);
    /// gives up within seconds when it cannot be reached.
    pub fn diagnose(&self) -> Vec<DiagnosedCheck> {
        match self {
            Remote::Dir(d) => d.diagnose(),
            Remote::Github(g) => g.diagnose(),
            Remote::S3(s) => s.diagnose(),
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Remote::Dir(d) => d.describe(),
            Remote::Github(g) => g.describe(),
            Remote::S3(s) => s.describe(),
        }
    }

    /// Snapshots on the remote, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote cannot be read.
    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        match self {
            Remote::Dir(d) => d.list(),
            Remote::Github(g) => g.list(),
            Remote::S3(s) => s.list(),
        }
    }

    /// The snapshots among `tags` the remote holds (a push needs no more), oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote cannot be read.
    pub fn holding(&self, tags: &[Tag]) -> Result<Vec<RemoteSnapshot>> {
        match self {
            Remote::Dir(d) => Ok(d
                .list()?
                .into_iter()
                .filter(|s| tags.contains(&s.tag))
                .collect()),
            Remote::Github(g) => g.holding(tags),
            Remote::S3(s) => s.holding(tags),
        }
    }

    /// Checks the remote can take snapshots; with `create`, makes it first when it is missing
    /// (a folder, or a private GitHub repository).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when it is missing (without `create`), unreadable or unsafe
    /// (a public repository).
    pub fn init(&self, create: bool) -> Result<Readiness> {
        match self {
            Remote::Dir(d) => d.init(create),
            Remote::Github(g) => g.init(create),
            Remote::S3(s) => s.init(create),
        }
    }

    /// Checks, before a run pushes anything, that this is the remote this machine pushes to: a
    /// folder remote that lacks its marker (an empty mount point) is refused here, and a new one
    /// is marked. GitHub needs nothing.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the folder is refused or cannot be marked.
    pub fn ready_for_push(&self) -> Result<()> {
        match self {
            Remote::Dir(d) => d.ready_for_push(),
            Remote::Github(_) => Ok(()),
            Remote::S3(s) => s.ready_for_push(),
        }
    }

    /// Starts the run's deadline: from now on the remote gives up at its configured deadline
    /// (GitHub's `push_deadline_secs`), so a run never holds the run lock for good. A folder
    /// remote has none.
    pub fn start_run_deadline(&self) {
        match self {
            Remote::Dir(_) => {}
            Remote::Github(g) => g.start_run_deadline(),
            Remote::S3(s) => s.start_run_deadline(),
        }
    }

    /// For a command someone waits on at once (`backup list`): an unreachable remote is given
    /// up on within seconds rather than retried for the whole budget.
    pub fn answer_quickly(&self) {
        match self {
            Remote::Dir(_) => {}
            Remote::Github(g) => g.answer_quickly(),
            Remote::S3(s) => s.answer_quickly(),
        }
    }

    /// Removes what interrupted pushes of `host` left on the remote that no push will finish
    /// (GitHub: old draft releases of tags published already or with no local archive in
    /// `keep`), after a [`Remote::list`]. Returns how many went.
    ///
    /// # Errors
    /// A deletion the remote refused or did not answer.
    pub fn delete_abandoned(
        &self,
        host: &str,
        keep: &std::collections::HashSet<Tag>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        match self {
            // A folder remote's leftovers are temp files, which its own writes clean up.
            Remote::Dir(_) => Ok(0),
            Remote::Github(g) => g.delete_abandoned_drafts(host, keep, now),
            Remote::S3(s) => s.delete_abandoned(host, keep, now),
        }
    }

    /// Deletes the snapshot of `tag`; a snapshot already gone counts as deleted, so an
    /// interrupted delete converges on the next try. Returns a note for the user when something
    /// the remote will not delete stays behind (the git tag of an immutable GitHub release).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable or refuses.
    pub fn delete(&self, tag: &Tag) -> Result<Option<String>> {
        match self {
            Remote::Dir(d) => d.delete(tag).map(|()| None),
            Remote::Github(g) => g.delete(tag),
            Remote::S3(s) => s.delete(tag),
        }
    }

    /// Stores `upload` and checks what the remote holds afterwards.
    ///
    /// An archive the remote already holds under that tag is replaced only when it is damaged
    /// (it does not match the remote's own record) and the local archive is proven good
    /// ([`Upload::verified`]): remote content is never replaced by something that cannot be shown
    /// to be better.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable, full, or holds something else
    /// after the write; of kind [`RemoteErrorKind::Refused`] when it refuses the replacement.
    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        match self {
            Remote::Dir(d) => d.put(upload),
            Remote::Github(g) => g.put(upload),
            Remote::S3(s) => s.put(upload),
        }
    }

    /// The manifest of the snapshot of `tag`, when the remote can read it without a download
    /// (a folder); `None` otherwise.
    pub fn peek_manifest(&self, tag: &Tag) -> Option<crate::archive::Manifest> {
        match self {
            Remote::Dir(d) => d.peek_manifest(tag),
            Remote::Github(_) | Remote::S3(_) => None,
        }
    }

    /// Downloads the archive of `tag` into the new file `dest`, streaming; returns its size and
    /// sha256 (the caller compares them with [`RemoteSnapshot::sha256`]).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable, or of kind
    /// [`RemoteErrorKind::NotFound`] when it lacks the snapshot.
    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        match self {
            Remote::Dir(d) => d.fetch(tag, dest, progress),
            Remote::Github(g) => g.fetch(tag, dest, progress),
            Remote::S3(s) => s.fetch(tag, dest, progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_copy_is_good_only_with_the_local_record() {
        let found = RemoteSnapshot {
            tag: Tag::parse("bk-20261122T014207Z-manual-laptop-3f9a1c").unwrap(),
            size: 1,
            sha256: Some("ab".into()),
            findings: None,
            note: None,
            base: None,
        };
        assert!(found.matches_record(Some("ab")));
        assert!(!found.matches_record(Some("cd")));
        assert!(!found.matches_record(None));
        let unrecorded = RemoteSnapshot {
            sha256: None,
            ..found
        };
        assert!(!unrecorded.matches_record(Some("ab")));
    }

    #[test]
    fn each_remote_types_keys_are_read_from_its_settings_struct() {
        let types = remote_types();
        assert_eq!(types[0], ("dir", &["path"][..]));
        let (name, github) = types[1];
        assert_eq!(name, "github");
        for key in ["repo", "api_url", "token_file", "push_deadline_secs"] {
            assert!(github.contains(&key), "{github:?}");
        }
        assert!(!github.contains(&"path") && !github.contains(&"type"));
    }
}
