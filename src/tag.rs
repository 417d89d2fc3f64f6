//! Snapshot tags: `bk-20261122T014200Z-manual-laptop-3f9a1c`.
//!
//! A tag is the snapshot's identity everywhere (archive name, git tag, release, asset), so it must
//! - sort by time as a plain string: a fixed prefix, then the UTC time to the second;
//! - say how it was made: `manual` (`backup now`) or `scheduled` (`backup run`);
//! - never collide between machines sharing a remote, nor between two runs in one second: the host
//!   name plus a random suffix;
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
const HOST_MAX: usize = 32;
/// Extension of a snapshot archive.
pub const ARCHIVE_EXT: &str = ".tar.gz";

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
}

impl Tag {
    /// A new tag for a snapshot taken at `time` on host `hostname`, with a fresh random suffix.
    pub fn new(time: DateTime<Utc>, kind: Kind, hostname: &str) -> Tag {
        let host = host_slug(hostname);
        let text = format!(
            "{PREFIX}{}-{}-{host}-{}",
            time.format(TIME_FORMAT),
            kind.as_str(),
            random_nonce()
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
        let valid_host = !host.is_empty() && host.len() <= HOST_MAX && host_slug(host) == host;
        let valid_nonce = nonce.len() == NONCE_LEN
            && nonce
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (valid_host && valid_nonce).then(|| Tag {
            text: text.to_string(),
            time,
            kind,
            host: host.to_string(),
        })
    }

    /// Parses the file name of a snapshot archive (`<tag>.tar.gz`).
    pub fn from_archive_name(name: &str) -> Option<Tag> {
        Tag::parse(name.strip_suffix(ARCHIVE_EXT)?)
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

    /// The host name as it appears in the tag (lowercase, `[a-z0-9-]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `<tag>.tar.gz`
    pub fn archive_name(&self) -> String {
        format!("{}{ARCHIVE_EXT}", self.text)
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

/// Tags order as their text does, which is time order.
impl Ord for Tag {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
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

/// Lowercase `[a-z0-9-]`, no leading, trailing or doubled `-`, at most 32 characters.
fn host_slug(hostname: &str) -> String {
    let mut slug = String::new();
    for c in hostname.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= HOST_MAX {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "host".to_string()
    } else {
        slug.to_string()
    }
}

/// Six hex digits from the OS-seeded hasher keys: enough to keep two same-second runs apart.
fn random_nonce() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

/// This machine's host name as its tags carry it: its snapshots are the ones with this host.
pub fn this_host() -> String {
    host_slug(&hostname())
}

/// This machine's host name, as the OS reports it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
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
        let tag = Tag::new(at(7), Kind::Manual, "Dev.Laptop (work)");
        assert!(
            tag.as_str()
                .starts_with("bk-20261122T014207Z-manual-dev-laptop-work-")
        );
        let parsed = Tag::parse(tag.as_str()).unwrap();
        assert_eq!(parsed, tag);
        assert_eq!(parsed.time(), at(7));
        assert_eq!(parsed.kind(), Kind::Manual);
        assert_eq!(parsed.host(), "dev-laptop-work");
        assert_eq!(Tag::from_archive_name(&tag.archive_name()).unwrap(), tag);
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
        let a = Tag::new(at(0), Kind::Manual, "box");
        let b = Tag::new(at(0), Kind::Manual, "box");
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
