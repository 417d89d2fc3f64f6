//! What snapshots exist, locally and on the remote: the data behind `backup list`, and the
//! configured remote opened for this machine ([`open_remote`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::last_run::LastRun;
use crate::layout;
use crate::remote::{Remote, RemoteSetup};
use crate::tag::{Kind, Tag};

/// A snapshot archive in the local folder.
#[derive(Clone, Debug)]
pub struct LocalSnapshot {
    pub tag: Tag,
    pub path: PathBuf,
    pub size: u64,
}

/// The configured remote, for this machine: told its local snapshot folder, and whether its last
/// run pushed (`last_run.json`), which stands in for the folder record an earlier version did
/// not keep. `None` when the config names no remote.
pub fn open_remote(config: &Config) -> Option<Remote> {
    let remote = config.remote.as_ref()?;
    let earlier_good_push =
        LastRun::read(&config.local_dir).is_some_and(|r| r.push_ok == Some(true));
    Some(Remote::from_config(
        remote,
        &RemoteSetup {
            local_dir: &config.local_dir,
            earlier_good_push,
        },
    ))
}

/// Snapshots in the local folder, oldest first. A missing folder holds none.
///
/// # Errors
/// When the folder exists but cannot be read.
pub fn local_snapshots(dir: &Path) -> Result<Vec<LocalSnapshot>> {
    Ok(layout::local_archives(dir)?
        .into_iter()
        .map(|(tag, path, size)| LocalSnapshot { tag, path, size })
        .collect())
}

/// Where a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Local,
    /// Here; whether the remote has it too is unknown (the remote could not be read).
    #[serde(rename = "local_remote_unknown")]
    LocalRemoteUnknown,
    Remote,
    Both,
    /// On both sides, with different sizes: one copy is damaged (`backup run` repairs either one
    /// from the other, whichever still matches its record).
    Differ,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Local => "local",
            Location::LocalRemoteUnknown => "local, remote unknown",
            Location::Remote => "remote",
            Location::Both => "both",
            Location::Differ => "differ",
        }
    }
}

/// One row of `backup list`.
#[derive(Clone, Debug, Serialize)]
pub struct ListEntry {
    pub tag: Tag,
    pub time: DateTime<Utc>,
    pub kind: Kind,
    pub host: String,
    /// Archive size in bytes.
    pub size: u64,
    #[serde(rename = "where")]
    pub location: Location,
    /// How many findings SQLite's integrity and foreign key checks made when the snapshot was
    /// taken (0: it passed); `None` when unknown (taken before snapshots ran those checks, or
    /// only on a remote whose record does not say).
    pub findings: Option<u64>,
    /// Dated in the future: taken under a wrong clock (`latest` skips it). Only present when
    /// true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub future: bool,
    /// The local copy was found damaged by a run's check or a restore (`checked.json`).
    pub local_damaged: bool,
}

/// What the listing knows of one snapshot while it is merged.
struct Row {
    size: u64,
    location: Location,
    findings: Option<u64>,
}

/// The merged listing, newest first, plus the remote's error if it could not be read (the local
/// rows are still worth showing then).
///
/// # Errors
/// When the local folder cannot be read.
pub fn list(local_dir: &Path, remote: Option<&Remote>) -> Result<(Vec<ListEntry>, Option<Error>)> {
    let mut rows: BTreeMap<Tag, Row> = BTreeMap::new();
    for snapshot in local_snapshots(local_dir)? {
        // Only the manifest is decompressed: the first entry of the archive.
        let findings = crate::archive::read::read_manifest(&snapshot.path)
            .ok()
            .and_then(|m| m.findings_count());
        rows.insert(
            snapshot.tag,
            Row {
                size: snapshot.size,
                location: Location::Local,
                findings,
            },
        );
    }
    let damaged: Vec<Tag> = crate::integrity::known_damaged(local_dir)
        .into_iter()
        .map(|d| d.tag)
        .collect();
    let mut remote_error = None;
    if let Some(remote) = remote {
        match remote.list() {
            Ok(found) => {
                for snapshot in found {
                    let row = rows.entry(snapshot.tag.clone()).or_insert_with(|| Row {
                        size: snapshot.size,
                        location: Location::Remote,
                        findings: snapshot.findings.or_else(|| {
                            remote
                                .peek_manifest(&snapshot.tag)
                                .and_then(|m| m.findings_count())
                        }),
                    });
                    if row.location == Location::Local {
                        row.location = if row.size == snapshot.size {
                            Location::Both
                        } else {
                            Location::Differ
                        };
                    }
                }
            }
            Err(e) => {
                // Not "local only": nobody knows what the remote holds.
                for row in rows.values_mut() {
                    row.location = Location::LocalRemoteUnknown;
                }
                remote_error = Some(e);
            }
        }
    }
    let now = crate::clock::now();
    let entries = rows
        .into_iter()
        .rev()
        .map(|(tag, row)| ListEntry {
            future: crate::retention::dated_in_future(&tag, now),
            time: tag.time(),
            kind: tag.kind(),
            host: tag.host().to_string(),
            local_damaged: damaged.contains(&tag),
            tag,
            size: row.size,
            location: row.location,
            findings: row.findings,
        })
        .collect();
    Ok((entries, remote_error))
}

/// Which host's snapshot `latest` means among `tags` (local and remote): `host` when given
/// (`--host`, as a host name or the identity `backup list` shows), else this machine's; on a
/// machine with none of its own, the only host there is, with a note saying so. Refused when
/// several other hosts share the remote and none was named.
///
/// # Errors
/// Several hosts and none of them this machine, without `host`.
pub fn latest_host(tags: &[&Tag], host: Option<&str>) -> Result<(String, Option<String>)> {
    if let Some(name) = host {
        return Ok((crate::tag::host_id(name), None));
    }
    let this = crate::tag::this_host();
    let mut hosts: BTreeMap<&str, (usize, &Tag)> = BTreeMap::new();
    // A snapshot held locally and remotely is one snapshot.
    let unique: std::collections::BTreeSet<&Tag> = tags.iter().copied().collect();
    for tag in unique {
        let entry = hosts.entry(tag.host()).or_insert((0, tag));
        entry.0 += 1;
        if tag > entry.1 {
            entry.1 = tag;
        }
    }
    if hosts.is_empty() || hosts.contains_key(this.as_str()) {
        return Ok((this, None));
    }
    if hosts.len() == 1 {
        let only = hosts.keys().next().expect("one host").to_string();
        let note = format!(
            "this machine ({this}) has no snapshots of its own; `latest` is the newest of host {only}, the only one there is"
        );
        return Ok((only, Some(note)));
    }
    let listed: Vec<String> = hosts
        .iter()
        .map(|(host, (count, newest))| {
            format!(
                "{host} ({count}, newest {})",
                newest.time().format("%Y-%m-%d %H:%M:%SZ")
            )
        })
        .collect();
    Err(Error::Config(format!(
        "this machine ({this}) has no snapshots of its own, and several hosts share the remote: {}; pass --host NAME to say whose latest snapshot you mean",
        listed.join(", ")
    )))
}

/// The newest of `host`'s snapshots among `tags` that is not dated in the future, with a note
/// naming those skipped because they are (taken under a wrong clock: they would stay `latest`
/// for ever). `None` when `host` has none.
///
/// # Errors
/// Every one of `host`'s snapshots is dated in the future: this machine's clock is wrong now.
pub fn latest_of<'a>(
    tags: &[&'a Tag],
    host: &str,
    now: DateTime<Utc>,
) -> Result<Option<(&'a Tag, Option<String>)>> {
    let mut own: Vec<&Tag> = tags.iter().copied().filter(|t| t.host() == host).collect();
    own.sort();
    own.dedup();
    let (future, past): (Vec<&Tag>, Vec<&Tag>) = own
        .into_iter()
        .partition(|t| crate::retention::dated_in_future(t, now));
    match (past.last(), future.is_empty()) {
        (None, true) => Ok(None),
        (None, false) => Err(Error::NotFound(format!(
            "every snapshot of host {host} is dated after this machine's clock ({}), the newest {}; fix the clock (e.g. enable NTP), or name the snapshot to restore",
            now.format("%Y-%m-%d %H:%M:%SZ"),
            future.last().expect("not empty")
        ))),
        (Some(latest), true) => Ok(Some((latest, None))),
        (Some(latest), false) => Ok(Some((
            latest,
            Some(format!(
                "{} of host {host} {} dated in the future ({}), taken under a wrong clock: `latest` is {latest}, the newest before now; name one of them to restore it",
                crate::units::count(future.len(), "snapshot", "snapshots"),
                if future.len() == 1 { "is" } else { "are" },
                future
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ))),
    }
}
