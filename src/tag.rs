//! Snapshot tags: `bk-20261122T014200Z-manual-laptop-3f9a1c`.
//!
//! A tag is the snapshot's identity everywhere (archive name, git tag, release, asset), so it must
//! - sort by time as a plain string: a fixed prefix, then the UTC time to the second;
//! - say how it was made: `manual` (`backup now`) or `scheduled` (`backup run`);
//! - never collide between machines sharing a remote, nor between two runs in one second: the
//!   host's identity ([`host_id`]) plus a suffix whose first three hex digits are the millisecond
//!   (so tags of one second order as they were taken) and last three are random;
//! - be a valid git ref name and a GitHub asset name that GitHub keeps as is: only
//!   `[a-z0-9-]` besides the digits, `T` and `Z` of the time (GitHub rewrites other characters
//!   in asset names, and git refuses `:` and others).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "bk-";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const TIME_LEN: usize = 16;
const NONCE_LEN: usize = 6;
/// Length of a tag's random suffix ([`Tag::suffix`]).
pub const SUFFIX_LEN: usize = NONCE_LEN;
/// Hex digits of the suffix that carry the millisecond the snapshot was taken at.
const MILLIS_LEN: usize = 3;
const HOST_MAX: usize = 32;
/// Hex digits of the name's sha256 that follow a host name which had to be shortened or cleaned.
const HOST_HASH_LEN: usize = 6;
/// Extension of a gzip snapshot archive, the format every version reads.
pub const ARCHIVE_EXT: &str = ".tar.gz";
/// Extension of a zstd snapshot archive (`[snapshot] compression = "zstd"`, the default).
pub const ZSTD_ARCHIVE_EXT: &str = ".tar.zst";
/// Every archive extension, gzip's (the older format) first.
pub const ARCHIVE_EXTS: [&str; 2] = [ARCHIVE_EXT, ZSTD_ARCHIVE_EXT];

/// How a snapshot was made; decides which retention bucket it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `backup now`: taken by hand, typically before a risky change.
    Manual,
    /// `backup run`: taken by the schedule.
    Scheduled,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Scheduled => "scheduled",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed snapshot tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    text: String,
    time: DateTime<Utc>,
    kind: Kind,
    host: String,
    /// The millisecond within `time`, from the suffix (tags made before it carried one hold a
    /// random number there: their order within a second was never defined).
    millis: u32,
}

impl Tag {
    /// A new tag for a snapshot taken at `time` (to the millisecond) on host `hostname`.
    pub fn new(time: DateTime<Utc>, kind: Kind, hostname: &str) -> Tag {
        let host = host_id(hostname);
        let text = format!(
            "{PREFIX}{}-{}-{host}-{:03x}{:03x}",
            time.format(TIME_FORMAT),
            kind.as_str(),
            time.timestamp_subsec_millis().min(999),
            random_bits() & 0xfff
        );
        Tag::parse(&text).expect("a tag we format parses")
    }

    /// Parses a tag; `None` for anything this tool did not make.
    pub fn parse(text: &str) -> Option<Tag> {
        let rest = text.strip_prefix(PREFIX)?;
        let time_text = rest.get(..TIME_LEN)?;
        let time = NaiveDateTime::parse_from_str(time_text, TIME_FORMAT)
            .ok()?
            .and_utc();
        // chrono's parser forgives (`T 14200Z` reads as 01:42:00); a tag is exactly its format,
        // or it would not sort by time nor be a valid git ref.
        if time.format(TIME_FORMAT).to_string() != time_text {
            return None;
        }
        let rest = rest[TIME_LEN..].strip_prefix('-')?;
        let (kind, rest) = if let Some(r) = rest.strip_prefix("manual-") {
            (Kind::Manual, r)
        } else {
            (Kind::Scheduled, rest.strip_prefix("scheduled-")?)
        };
        let (host, nonce) = rest.rsplit_once('-')?;
        let valid_host = is_clean_host(host);
        let valid_nonce = nonce.len() == NONCE_LEN
            && nonce
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (valid_host && valid_nonce).then(|| Tag {
            text: text.to_string(),
            time,
            kind,
            host: host.to_string(),
            millis: u32::from_str_radix(&nonce[..MILLIS_LEN], 16).unwrap_or_default(),
        })
    }

    /// Parses the file name of a snapshot archive (`<tag>.tar.gz` or `<tag>.tar.zst`).
    pub fn from_archive_name(name: &str) -> Option<Tag> {
        ARCHIVE_EXTS
            .iter()
            .find_map(|ext| Tag::parse(name.strip_suffix(ext)?))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// UTC time the snapshot was taken, to the second.
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The host's identity as it appears in the tag ([`host_id`]).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// When the snapshot was taken, to the millisecond its tag carries.
    pub fn taken_at(&self) -> DateTime<Utc> {
        self.time + chrono::Duration::milliseconds(i64::from(self.millis.min(999)))
    }

    /// The random suffix at the end (`3f9a1c`): what a short form of the tag starts with.
    pub fn suffix(&self) -> &str {
        self.text.rsplit_once('-').map_or("", |(_, suffix)| suffix)
    }

    /// `<tag>.tar.gz`
    pub fn archive_name(&self) -> String {
        format!("{}{ARCHIVE_EXT}", self.text)
    }

    /// Every name an archive of this snapshot may have: `<tag>.tar.gz`, `<tag>.tar.zst`.
    pub fn archive_names(&self) -> [String; 2] {
        ARCHIVE_EXTS.map(|ext| format!("{}{ext}", self.text))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialOrd for Tag {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Tags order by the time they were taken, to the millisecond (across seconds that is also
/// their text order), then by their text.
impl Ord for Tag {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.millis, &self.text).cmp(&(other.time, other.millis, &other.text))
    }
}

impl Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        let text = String::deserialize(d)?;
        Tag::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a snapshot tag: {text}")))
    }
}

/// Whether `host` can stand in a tag as it is: `[a-z0-9-]`, 1 to 32 characters, no leading,
/// trailing or doubled `-`.
fn is_clean_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= HOST_MAX
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !host.starts_with('-')
        && !host.ends_with('-')
        && !host.contains("--")
}

/// A host's identity in tags. Host names are case-insensitive, so the name is lowercased; a name
/// that is then clean (`[a-z0-9-]`, at most 32 characters) is its own identity. Any other name
/// is cleaned (other characters become `-`), cut to leave room, and followed by `-` and 6 hex
/// digits of the sha256 of the lowercased name: two names that clean or cut to the same text
/// (`build-agent-production-cluster-01` and `-02`) keep apart.
pub fn host_id(hostname: &str) -> String {
    use sha2::{Digest, Sha256};
    let lower = hostname.to_lowercase();
    if is_clean_host(&lower) {
        return lower;
    }
    let mut cleaned = String::new();
    for c in lower.chars() {
        if c.is_ascii_alphanumeric() {
            cleaned.push(c);
        } else if !cleaned.is_empty() && !cleaned.ends_with('-') {
            cleaned.push('-');
        }
    }
    cleaned.truncate(HOST_MAX - HOST_HASH_LEN - 1);
    let cleaned = cleaned.trim_end_matches('-');
    let digest = crate::units::hex(&Sha256::digest(lower.as_bytes()));
    let hash = &digest[..HOST_HASH_LEN];
    if cleaned.is_empty() {
        format!("host-{hash}")
    } else {
        format!("{cleaned}-{hash}")
    }
}

/// Whether `name` (as `--host` takes it: the identity `backup list` shows, or the host name
/// itself) names the host whose identity is `id`.
pub fn names_host(name: &str, id: &str) -> bool {
    name == id || host_id(name) == id
}

/// Random bits from the OS-seeded hasher keys.
fn random_bits() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// This machine's identity as its tags carry it: its snapshots are the ones with this host.
pub fn this_host() -> String {
    host_id(&hostname())
}

/// This machine's host name, as the OS reports it (a debug build may be told another with
/// `BACKUP_TEST_HOST`).
pub fn hostname() -> String {
    crate::failpoint::hostname().unwrap_or_else(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 1, 42, s).unwrap()
    }

    #[test]
    fn round_trips_and_carries_time_kind_host() {
        let tag = Tag::new(at(7), Kind::Manual, "Laptop-2");
        assert!(
            tag.as_str()
                .starts_with("bk-20261122T014207Z-manual-laptop-2-")
        );
        let parsed = Tag::parse(tag.as_str()).unwrap();
        assert_eq!(parsed, tag);
        assert_eq!(parsed.time(), at(7));
        assert_eq!(parsed.kind(), Kind::Manual);
        assert_eq!(parsed.host(), "laptop-2");
        assert_eq!(parsed.suffix().len(), NONCE_LEN);
        assert!(tag.as_str().ends_with(parsed.suffix()));
        assert_eq!(Tag::from_archive_name(&tag.archive_name()).unwrap(), tag);
        for name in tag.archive_names() {
            assert_eq!(Tag::from_archive_name(&name).unwrap(), tag);
        }
        assert!(Tag::from_archive_name(&format!("{tag}.tar.xz")).is_none());
    }

    #[test]
    fn a_host_name_that_must_be_cut_or_cleaned_keeps_a_hash_of_itself() {
        let one = host_id("build-agent-production-cluster-01");
        let two = host_id("build-agent-production-cluster-02");
        assert_ne!(one, two);
        assert!(
            one.len() <= HOST_MAX && two.len() <= HOST_MAX,
            "{one} {two}"
        );
        assert!(one.starts_with("build-agent-production-"), "{one}");
        assert_ne!(host_id("dev.laptop"), host_id("dev-laptop"));
        assert!(host_id("Dev.Laptop (work)").starts_with("dev-laptop-work-"));
        // Host names are case-insensitive; a clean one is its own identity.
        assert_eq!(host_id("MacBook-Pro"), "macbook-pro");
        assert_eq!(host_id("MACBOOK-PRO"), host_id("macbook-pro"));
        assert!(names_host("build-agent-production-cluster-01", &one));
        assert!(names_host(&one, &one));
        assert!(!names_host("build-agent-production-cluster-02", &one));
        for name in ["", "...", "ÄÖÜ", &"x".repeat(200)] {
            let id = host_id(name);
            assert!(is_clean_host(&id), "{name:?} -> {id}");
        }
    }

    #[test]
    fn tags_of_one_second_order_by_the_millisecond_they_were_taken() {
        let second = at(0);
        let early = Tag::new(
            second + chrono::Duration::milliseconds(900),
            Kind::Scheduled,
            "box",
        );
        let late = Tag::new(
            second + chrono::Duration::milliseconds(901),
            Kind::Manual,
            "box",
        );
        // As text, "manual" sorts before "scheduled"; by time the scheduled one came first.
        assert!(late.as_str() < early.as_str());
        assert!(early < late);
        assert_eq!(
            late.taken_at(),
            second + chrono::Duration::milliseconds(901)
        );
        assert!(Tag::new(at(1), Kind::Manual, "box") > late);
    }

    #[test]
    fn sorts_by_time_as_plain_strings() {
        let mut tags = [
            Tag::new(at(9), Kind::Scheduled, "zz"),
            Tag::new(at(1), Kind::Manual, "aa"),
            Tag::new(at(5), Kind::Scheduled, "mm"),
        ];
        tags.sort();
        let secs: Vec<u32> = tags
            .iter()
            .map(|t| t.time().timestamp() as u32 % 60)
            .collect();
        assert_eq!(secs, vec![1, 5, 9]);
    }

    #[test]
    fn same_second_same_host_do_not_collide() {
        // One run at a time per local folder (the run lock): two snapshots of one host are at
        // least a millisecond apart.
        let a = Tag::new(at(0), Kind::Manual, "box");
        let b = Tag::new(
            at(0) + chrono::Duration::milliseconds(1),
            Kind::Manual,
            "box",
        );
        assert_ne!(a, b);
    }

    #[test]
    fn characters_are_safe_for_git_refs_and_github_assets() {
        for host in ["", "...", "ÄÖÜ-host", "a b(c)", &"x".repeat(200), "-lead-"] {
            let tag = Tag::new(at(0), Kind::Scheduled, host);
            let name = tag.archive_name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
                "{name}"
            );
            assert!(!tag.as_str().contains("--") && !tag.as_str().contains(".."));
            assert!(Tag::parse(tag.as_str()).is_some(), "{tag}");
        }
    }

    #[test]
    fn rejects_foreign_names() {
        for text in [
            "v1.0.0",
            "bk-2026-11-22-manual-a-abcdef",
            "bk-20261122T014207Z-weekly-a-abcdef",
            "bk-20261122T014207Z-manual-a-ABCDEF",
            "bk-20261122T014207Z-manual--abcdef",
            // Found by the tag fuzzer: chrono reads ` 14200` as 01:42:00.
            "bk-20261122T 14200Z-manual-laptop-3f9a1c",
            "bk-2026112 T014200Z-manual-laptop-3f9a1c",
        ] {
            assert!(Tag::parse(text).is_none(), "{text}");
        }
    }
}
