//! What snapshots exist, locally and on the remote: the data behind `backup list`, which
//! snapshot a command's `TAG` argument names ([`Selector`], [`choose`]), and the configured
//! remote opened for this machine ([`open_remote`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::last_run::LastRun;
use crate::layout;
use crate::remote::{Remote, RemoteSetup};
use crate::tag::{Kind, SUFFIX_LEN, Tag};

/// How many snapshots an ambiguous short form lists.
const CANDIDATES_SHOWN: usize = 10;

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
    /// Where a snapshot is, from the size of its local archive (`None`: not here), the size
    /// the remote lists for it (`None`: the remote does not hold it, or there is no remote), and
    /// whether the remote's listing is known (no remote, or it was read). `None` when it is
    /// nowhere. `backup list` decides its `WHERE` column so, and `backup show` its `where`.
    pub fn of(local: Option<u64>, remote: Option<u64>, remote_known: bool) -> Option<Location> {
        match (local, remote) {
            (Some(_), _) if !remote_known => Some(Location::LocalRemoteUnknown),
            (Some(_), None) => Some(Location::Local),
            (Some(here), Some(there)) if here == there => Some(Location::Both),
            (Some(_), Some(_)) => Some(Location::Differ),
            (None, Some(_)) => Some(Location::Remote),
            (None, None) => None,
        }
    }

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
    /// What the user said about the snapshot (`backup now --note`); `None` when nothing was said,
    /// or when only a remote holds it whose record does not say.
    pub note: Option<String>,
    /// Dated in the future: taken under a wrong clock (`latest` skips it). Only present when
    /// true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub future: bool,
    /// The local copy was found damaged by a run's check or a restore (`checked.json`).
    pub local_damaged: bool,
    /// The full snapshot this one is a differential of (a restore needs both); `None` for a
    /// full.
    pub base: Option<Tag>,
    /// A differential whose base is neither here nor on the remote: it cannot be restored. Only
    /// present when true, and never said when the remote could not be read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub base_missing: bool,
}

/// What the listing knows of one snapshot while it is merged.
struct Row {
    size: u64,
    location: Location,
    findings: Option<u64>,
    note: Option<String>,
    base: Option<Tag>,
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
        let manifest = crate::archive::read::read_manifest(&snapshot.path).ok();
        rows.insert(
            snapshot.tag,
            Row {
                size: snapshot.size,
                location: Location::Local,
                findings: manifest.as_ref().and_then(|m| m.findings_count()),
                base: manifest
                    .as_ref()
                    .and_then(|m| m.base.as_ref())
                    .map(|b| b.tag.clone()),
                note: manifest.and_then(|m| m.note),
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
                    let row = rows.entry(snapshot.tag.clone()).or_insert_with(|| {
                        // A remote whose record lacks them may read the manifest cheaply (a
                        // folder: the archive's first entry); GitHub's record carries both.
                        let peeked = (snapshot.findings.is_none() || snapshot.note.is_none())
                            .then(|| remote.peek_manifest(&snapshot.tag))
                            .flatten();
                        Row {
                            base: snapshot.base.clone().or_else(|| {
                                peeked
                                    .as_ref()
                                    .and_then(|m| m.base.as_ref())
                                    .map(|b| b.tag.clone())
                            }),
                            size: snapshot.size,
                            location: Location::Remote,
                            findings: snapshot
                                .findings
                                .or_else(|| peeked.as_ref().and_then(|m| m.findings_count())),
                            note: snapshot
                                .note
                                .clone()
                                .or_else(|| peeked.and_then(|m| m.note)),
                        }
                    });
                    if row.location == Location::Local {
                        row.location = Location::of(Some(row.size), Some(snapshot.size), true)
                            .expect("held on both sides");
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
    let held: std::collections::BTreeSet<Tag> = rows.keys().cloned().collect();
    let entries = rows
        .into_iter()
        .rev()
        .map(|(tag, row)| ListEntry {
            base_missing: remote_error.is_none()
                && row.base.as_ref().is_some_and(|b| !held.contains(b)),
            base: row.base,
            future: crate::retention::dated_in_future(&tag, now),
            time: tag.time(),
            kind: tag.kind(),
            host: tag.host().to_string(),
            local_damaged: damaged.contains(&tag),
            tag,
            size: row.size,
            location: row.location,
            findings: row.findings,
            note: row.note,
        })
        .collect();
    Ok((entries, remote_error))
}

/// Which snapshots `backup list` shows; every field left `None` keeps all.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// A host name, or the identity `backup list` shows.
    pub host: Option<String>,
    pub kind: Option<Kind>,
    /// Taken at or after (see [`parse_time`]).
    pub since: Option<DateTime<Utc>>,
    /// Taken at or before.
    pub until: Option<DateTime<Utc>>,
    /// Held in the snapshot's note, case-insensitively.
    pub note: Option<String>,
}

impl ListFilter {
    /// Whether `entry` passes every filter that is set. A snapshot whose time is its tag's
    /// (to the second, as the listing shows it) is compared by that time.
    pub fn keeps(&self, entry: &ListEntry) -> bool {
        self.host
            .as_deref()
            .is_none_or(|name| crate::tag::names_host(name, &entry.host))
            && self.kind.is_none_or(|kind| entry.kind == kind)
            && self.since.is_none_or(|since| entry.time >= since)
            && self.until.is_none_or(|until| entry.time <= until)
            && self.note.as_deref().is_none_or(|wanted| {
                entry
                    .note
                    .as_deref()
                    .is_some_and(|note| note.to_lowercase().contains(&wanted.to_lowercase()))
            })
    }
}

/// Which end of a time range a [`parse_time`] text gives: a date alone means the start of that
/// day for `--since` and its last second for `--until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    Since,
    Until,
}

/// A time as `--since` and `--until` take it: a date (`2026-11-30`, UTC), an RFC 3339 time
/// (`2026-11-30T12:00:00Z`), or a duration meaning that long before `now` (`3d`, `12h`,
/// `1h30m`).
///
/// # Errors
/// [`Error::Config`] (a usage error) for anything else.
pub fn parse_time(text: &str, end: RangeEnd, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
        return Ok(match end {
            RangeEnd::Since => start,
            RangeEnd::Until => start + chrono::Duration::days(1) - chrono::Duration::seconds(1),
        });
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(ago) = text.parse::<crate::schedule::interval::Interval>() {
        let secs = i64::try_from(ago.as_secs()).unwrap_or(i64::MAX);
        return Ok(chrono::Duration::try_seconds(secs)
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    Err(Error::Config(format!(
        "`{text}` is not a time: give a date (2026-11-30), an RFC 3339 time (2026-11-30T12:00:00Z) or how long ago (3d, 12h)"
    )))
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
                crate::units::human_time(newest.time())
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
            crate::units::human_time(now),
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

/// A snapshot as a command names it: a whole tag, the start of a tag's random suffix (`3f9a`
/// for `bk-…-3f9a1c`), `latest`, or `latest~N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The host's newest snapshot not dated in the future (`latest`, 0), or the N-th before it
    /// (`latest~N`).
    Latest(usize),
    Tag(Tag),
    /// The first characters of a tag's random suffix, lowercase.
    SuffixPrefix(String),
}

/// The snapshot a [`Selector`] named, and what the user should know about the choice (whose
/// `latest`; snapshots skipped because they are dated in the future).
#[derive(Clone, Debug)]
pub struct Chosen {
    pub tag: Tag,
    pub notes: Vec<String>,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Latest(0) => f.write_str("latest"),
            Selector::Latest(back) => write!(f, "latest~{back}"),
            Selector::Tag(tag) => write!(f, "{tag}"),
            Selector::SuffixPrefix(prefix) => f.write_str(prefix),
        }
    }
}

impl Selector {
    /// Reads what a command was given for its snapshot. An archive name (`<tag>.tar.gz`) counts
    /// as its tag.
    ///
    /// # Errors
    /// [`Error::Config`] (a usage error) for anything that cannot name a snapshot.
    pub fn parse(text: &str) -> Result<Selector> {
        let text = text.trim();
        if text == "latest" {
            return Ok(Selector::Latest(0));
        }
        if let Some(back) = text.strip_prefix("latest~") {
            // Digits only: `usize`'s parse would take `+1` too.
            let digits = Some(back).filter(|b| b.bytes().all(|c| c.is_ascii_digit()));
            return digits.and_then(|b| b.parse().ok()).map(Selector::Latest).ok_or_else(|| {
                Error::Config(format!(
                    "`{text}` is not a snapshot: after `latest~` give how many snapshots before the latest, e.g. latest~1"
                ))
            });
        }
        if let Some(tag) = Tag::from_archive_name(text).or_else(|| Tag::parse(text)) {
            return Ok(Selector::Tag(tag));
        }
        let lower = text.to_ascii_lowercase();
        if (1..=SUFFIX_LEN).contains(&lower.len()) && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Selector::SuffixPrefix(lower));
        }
        Err(Error::Config(format!(
            "`{text}` is not a snapshot: give a tag that `backup list` shows, the start of its last part (3f9a for bk-…-3f9a1c), `latest` or `latest~N`"
        )))
    }

    /// The snapshot this names among `tags` (the snapshots known locally and on the remote; one
    /// held on both sides may appear twice). `host` (`--host`: a host name or the identity
    /// `backup list` shows) chooses whose `latest` (see [`latest_host`]) and narrows a suffix
    /// to that host's snapshots; a whole tag needs no host.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing matches (`latest~N` past the host's oldest snapshot
    /// included); [`Error::Config`] for a suffix that several snapshots start with (they are
    /// listed) and for `latest` among several hosts and none of them this machine.
    pub fn resolve(&self, tags: &[&Tag], host: Option<&str>, now: DateTime<Utc>) -> Result<Chosen> {
        let mut known: Vec<&Tag> = tags.to_vec();
        known.sort();
        known.dedup();
        match self {
            Selector::Tag(tag) => {
                if !known.contains(&tag) {
                    return Err(Error::NotFound(format!(
                        "snapshot {tag} is neither here nor on the remote; `backup list` shows the snapshots there are"
                    )));
                }
                let notes = host
                    .map(|_| {
                        format!(
                            "--host only chooses whose `latest` or suffix; {tag} was named, so it is the one"
                        )
                    })
                    .into_iter()
                    .collect();
                Ok(Chosen {
                    tag: tag.clone(),
                    notes,
                })
            }
            Selector::SuffixPrefix(prefix) => {
                let matching: Vec<&Tag> = known
                    .iter()
                    .rev()
                    .copied()
                    .filter(|t| t.suffix().starts_with(prefix.as_str()))
                    .filter(|t| host.is_none_or(|name| crate::tag::names_host(name, t.host())))
                    .collect();
                let of_host = host.map_or(String::new(), |name| {
                    format!(" of host {}", crate::tag::host_id(name))
                });
                match matching.as_slice() {
                    [] => Err(Error::NotFound(format!(
                        "no snapshot{of_host} here or on the remote has a tag ending in {prefix}…; `backup list` shows the snapshots there are"
                    ))),
                    [one] => Ok(Chosen {
                        tag: (*one).clone(),
                        notes: Vec::new(),
                    }),
                    many => {
                        let mut listed: Vec<String> = many
                            .iter()
                            .take(CANDIDATES_SHOWN)
                            .map(ToString::to_string)
                            .collect();
                        if many.len() > CANDIDATES_SHOWN {
                            listed.push(format!("and {} more", many.len() - CANDIDATES_SHOWN));
                        }
                        Err(Error::Config(format!(
                            "`{prefix}` starts the tag suffix of {} snapshots{of_host}: {}; give more of the suffix, or the whole tag",
                            many.len(),
                            listed.join(", ")
                        )))
                    }
                }
            }
            Selector::Latest(back) => {
                let (host, whose) = latest_host(&known, host)?;
                let mut notes: Vec<String> = whose.into_iter().collect();
                let Some((latest, skipped)) = latest_of(&known, &host, now)? else {
                    return Err(Error::NotFound(format!(
                        "no snapshots of host {host} here or on the remote{}",
                        if known.is_empty() {
                            "; take one with `backup now`"
                        } else {
                            "; `backup list` shows the hosts there are (pass --host NAME)"
                        }
                    )));
                };
                notes.extend(skipped);
                // Older than `latest`, newest first: those dated in the future are skipped here
                // as `latest` skips them.
                let older: Vec<&Tag> = known
                    .iter()
                    .rev()
                    .copied()
                    .filter(|t| t.host() == host && *t < latest)
                    .collect();
                let tag = match back.checked_sub(1) {
                    None => latest,
                    Some(index) => older.get(index).copied().ok_or_else(|| {
                        Error::NotFound(format!(
                            "`latest~{back}` is {} before host {host}'s latest ({latest}), which has only {} older; `backup list --host {host}` shows them",
                            crate::units::count(*back, "snapshot", "snapshots"),
                            older.len()
                        ))
                    })?,
                };
                Ok(Chosen {
                    tag: tag.clone(),
                    notes,
                })
            }
        }
    }
}

/// The snapshot `text` names (a tag, the start of its suffix, `latest`, `latest~N`) among
/// `tags`, the snapshots known locally and on the remote, by this machine's clock: the one
/// place every command that takes a snapshot resolves it. See [`Selector::resolve`].
///
/// # Errors
/// A one-line error saying what to give instead.
pub fn choose(text: &str, host: Option<&str>, tags: &[&Tag]) -> Result<Chosen> {
    Selector::parse(text)?.resolve(tags, host, crate::clock::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(text: &str) -> Tag {
        Tag::parse(text).unwrap()
    }

    const NOW: &str = "2026-12-01T00:00:00Z";

    fn resolve(text: &str, tags: &[Tag], host: Option<&str>) -> Result<Chosen> {
        let refs: Vec<&Tag> = tags.iter().collect();
        Selector::parse(text)?.resolve(&refs, host, NOW.parse().unwrap())
    }

    fn three() -> Vec<Tag> {
        vec![
            tag("bk-20261101T000000Z-scheduled-box-3f9a1c"),
            tag("bk-20261102T000000Z-manual-box-3f0b22"),
            tag("bk-20261103T000000Z-scheduled-box-a00001"),
            tag("bk-20261104T000000Z-scheduled-other-3f9a99"),
        ]
    }

    #[test]
    fn a_time_is_a_date_an_rfc_3339_time_or_how_long_ago() {
        let now: DateTime<Utc> = NOW.parse().unwrap();
        let at = |text: &str, end| parse_time(text, end, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-30", RangeEnd::Since).unwrap(),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            at("2026-11-30", RangeEnd::Until).unwrap(),
            "2026-11-30T23:59:59+00:00"
        );
        assert_eq!(
            at("2026-11-30T12:00:00+02:00", RangeEnd::Since).unwrap(),
            "2026-11-30T10:00:00+00:00"
        );
        assert_eq!(
            at("3d", RangeEnd::Until).unwrap(),
            "2026-11-28T00:00:00+00:00"
        );
        assert_eq!(
            at("1h30m", RangeEnd::Since).unwrap(),
            "2026-11-30T22:30:00+00:00"
        );
        for bad in ["", "yesterday", "2026-13-01", "30/11/2026", "3 weeks"] {
            assert!(
                matches!(at(bad, RangeEnd::Since), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_every_short_form_and_refuses_the_rest() {
        assert_eq!(Selector::parse("latest").unwrap(), Selector::Latest(0));
        assert_eq!(Selector::parse("latest~3").unwrap(), Selector::Latest(3));
        assert_eq!(
            Selector::parse("3F9A").unwrap(),
            Selector::SuffixPrefix("3f9a".into())
        );
        let whole = "bk-20261101T000000Z-scheduled-box-3f9a1c";
        for ext in [".tar.gz", ".tar.zst"] {
            assert_eq!(
                Selector::parse(&format!("{whole}{ext}")).unwrap(),
                Selector::Tag(tag(whole))
            );
        }
        assert_eq!(Selector::parse("latest~0").unwrap(), Selector::Latest(0));
        assert_eq!(Selector::parse("latest~012").unwrap(), Selector::Latest(12));
        for bad in [
            "",
            "latest~",
            "latest~-1",
            "latest~+1",
            "latest~ 1",
            "latest~1.0",
            "latest~99999999999999999999999",
            "3f9a1c0",
            "xyz",
            "Latest",
        ] {
            assert!(
                matches!(Selector::parse(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_suffix_prefix_must_be_unique() {
        let tags = three();
        assert_eq!(resolve("a0", &tags, None).unwrap().tag.suffix(), "a00001");
        let Err(Error::Config(message)) = resolve("3f", &tags, None) else {
            panic!("ambiguous")
        };
        for t in [&tags[0], &tags[1], &tags[3]] {
            assert!(message.contains(t.as_str()), "{message}");
        }
        // Narrowed to a host, `3f9a` is this host's only one.
        assert_eq!(resolve("3f9a", &tags, Some("box")).unwrap().tag, tags[0]);
        assert!(matches!(
            resolve("ff", &tags, None),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn latest_counts_back_among_this_hosts_snapshots() {
        let tags = three();
        assert_eq!(resolve("latest", &tags, Some("box")).unwrap().tag, tags[2]);
        assert_eq!(
            resolve("latest~1", &tags, Some("box")).unwrap().tag,
            tags[1]
        );
        assert_eq!(
            resolve("latest~2", &tags, Some("box")).unwrap().tag,
            tags[0]
        );
        let Err(Error::NotFound(message)) = resolve("latest~3", &tags, Some("box")) else {
            panic!("past the oldest")
        };
        assert!(message.contains("only 2 older"), "{message}");
        // A snapshot held on both sides counts once.
        let twice: Vec<Tag> = tags.iter().chain(&tags).cloned().collect();
        assert_eq!(
            resolve("latest~1", &twice, Some("box")).unwrap().tag,
            tags[1]
        );
    }
}
