//! `[remote] type = "s3"`: the keys the S3 remote takes, their defaults, and how they are
//! checked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::remote::net;

/// `[remote] type = "s3"`: a bucket of any S3-compatible object store.
#[derive(Clone, Debug, Serialize)]
pub struct S3Config {
    pub bucket: String,
    /// Folder-like start of every key, without slashes at either end; empty for none.
    pub prefix: String,
    /// The service's root URL: AWS's regional endpoint unless the config names another.
    pub endpoint: String,
    pub region: String,
    /// Bucket in the path (`https://host/bucket/key`), as MinIO, Garage and most self-hosted
    /// servers need, rather than in the host name (`https://bucket.host/key`).
    pub path_style: bool,
    /// A credentials file in the shared `~/.aws/credentials` format (refused unless mode 0600),
    /// used when neither the environment nor the shared files give keys.
    pub credentials_file: Option<PathBuf>,
    /// The section of the shared files (and of `credentials_file`) to read; `AWS_PROFILE`, or
    /// `default`.
    pub profile: Option<String>,
    /// Real elapsed time one operation may keep trying (attempts and waits included).
    pub retry_budget_secs: u64,
    /// Longest single wait between retries, whatever the server asks for.
    pub retry_max_delay_ms: u64,
    /// An upload or download with no bytes moved for this long has stalled (and is retried).
    pub stall_secs: u64,
    /// Connecting and answering, for each request without a body to move.
    pub reply_timeout_secs: u64,
    /// The server's answer after the last byte of an upload (it stores the part first).
    pub answer_timeout_secs: u64,
    /// How long `backup now`/`run` may use the bucket in all; then what is left waits locally.
    pub push_deadline_secs: u64,
}

/// AWS's own region when the config names none (and the region every S3-compatible server
/// accepts unless configured otherwise).
pub const DEFAULT_REGION: &str = "us-east-1";
/// Retrying stops after this long, well inside the hourly cadence.
pub const DEFAULT_RETRY_BUDGET_SECS: u64 = 15 * 60;
/// At most this long between two tries.
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 60 * 1000;
/// No bytes moved for this long: the transfer has stalled.
pub const DEFAULT_STALL_SECS: u64 = 60;
/// A request's connect and answer time.
pub const DEFAULT_REPLY_TIMEOUT_SECS: u64 = 30;
/// The answer after a part's last byte: S3 stores a part in moments, and a link that went
/// silent once the part sat in the socket buffers must not wait long to be found out.
pub const DEFAULT_ANSWER_TIMEOUT_SECS: u64 = 60;
/// A run's time with the bucket: within the hourly cadence.
pub const DEFAULT_PUSH_DEADLINE_SECS: u64 = 45 * 60;

/// The `[remote]` table as written (besides `type`), before defaults and checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::remote) struct S3Settings {
    bucket: Option<String>,
    prefix: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    credentials_file: Option<PathBuf>,
    profile: Option<String>,
    retry_budget_secs: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    stall_secs: Option<u64>,
    reply_timeout_secs: Option<u64>,
    answer_timeout_secs: Option<u64>,
    push_deadline_secs: Option<u64>,
}

impl S3Config {
    /// The settings with their defaults, `credentials_file` resolved by `resolve`.
    ///
    /// # Errors
    /// What is wrong, in words: no `bucket` or one S3 would refuse, an `endpoint` that is not
    /// http(s), a prefix with `..` or empty segments, a timeout of 0.
    pub(in crate::remote) fn from_settings(
        settings: S3Settings,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<S3Config, String> {
        let at_least_one = crate::remote::seconds_at_least_one;
        let bucket = settings.bucket.ok_or_else(|| {
            "[remote] type = \"s3\" needs `bucket = \"name\"`, a bucket that is not public"
                .to_string()
        })?;
        check_bucket_name(&bucket)?;
        let prefix = settings
            .prefix
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        if prefix
            .split('/')
            .any(|part| part == ".." || part == "." || (part.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(char::is_control)
        {
            return Err(format!(
                "[remote] prefix `{prefix}` must be folder names joined by `/`, without `.`, `..` or empty names"
            ));
        }
        let region = settings
            .region
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let endpoint = settings
            .endpoint
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!(
                "[remote] endpoint `{}` must start with https://",
                net::redact(&endpoint)
            ));
        }
        match url::Url::parse(&endpoint) {
            Ok(url) if url.path() == "/" && url.query().is_none() && url.username().is_empty() => {}
            Ok(_) => {
                return Err(format!(
                    "[remote] endpoint `{}` must be the server's root (scheme, host and port only); the bucket goes in `bucket`, folders in `prefix`",
                    net::redact(&endpoint)
                ));
            }
            Err(e) => return Err(format!("[remote] endpoint {}: {e}", net::redact(&endpoint))),
        }
        Ok(S3Config {
            bucket,
            prefix,
            endpoint,
            region,
            path_style: settings.path_style.unwrap_or(false),
            credentials_file: settings.credentials_file.as_deref().map(resolve),
            profile: settings.profile.filter(|p| !p.trim().is_empty()),
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

    /// A config for `bucket` at `endpoint` with every other key at its default: for tests and
    /// for tools built on the library.
    pub fn new(endpoint: &str, region: &str, bucket: &str, path_style: bool) -> S3Config {
        S3Config {
            bucket: bucket.to_string(),
            prefix: String::new(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            path_style,
            credentials_file: None,
            profile: None,
            retry_budget_secs: DEFAULT_RETRY_BUDGET_SECS,
            retry_max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS,
            stall_secs: DEFAULT_STALL_SECS,
            reply_timeout_secs: DEFAULT_REPLY_TIMEOUT_SECS,
            answer_timeout_secs: DEFAULT_ANSWER_TIMEOUT_SECS,
            push_deadline_secs: DEFAULT_PUSH_DEADLINE_SECS,
        }
    }
}

/// S3's bucket naming rules (3 to 63 lowercase letters, digits, `-` and `.`, starting and
/// ending with a letter or digit), checked here so a typo is said before any request.
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let bytes = bucket.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "[remote] bucket `{bucket}` is not a valid bucket name: 3 to 63 lowercase letters, digits, `-` or `.`, starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<S3Config, String> {
        let settings: S3Settings = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        S3Config::from_settings(settings, &|p| Path::new("/cfg").join(p))
    }

    #[test]
    fn defaults_fill_in_aws_and_a_prefix_loses_its_slashes() {
        let c = parse("bucket = \"app-backups\"\nprefix = \"/laptop/\"").unwrap();
        assert_eq!(c.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.prefix, "laptop");
        assert!(!c.path_style);
        let c = parse("bucket = \"b-1\"\nregion = \"eu-west-3\"\nendpoint = \"http://127.0.0.1:3900/\"\npath_style = true\ncredentials_file = \"keys\"").unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:3900");
        assert_eq!(c.credentials_file.as_deref(), Some(Path::new("/cfg/keys")));
    }

    #[test]
    fn bad_settings_are_refused_in_words() {
        for (text, expected) in [
            ("prefix = \"x\"", "needs `bucket"),
            ("bucket = \"Upper\"", "not a valid bucket name"),
            ("bucket = \"ab\"", "not a valid bucket name"),
            ("bucket = \"b-1\"\nprefix = \"a//b\"", "without `.`"),
            ("bucket = \"b-1\"\nprefix = \"a/../b\"", "without `.`"),
            (
                "bucket = \"b-1\"\nendpoint = \"s3.example.com\"",
                "must start with https://",
            ),
            (
                "bucket = \"b-1\"\nendpoint = \"https://s3.example.com/b-1\"",
                "server's root",
            ),
            ("bucket = \"b-1\"\nstall_secs = 0", "stall_secs = 0"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
