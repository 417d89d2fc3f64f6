//! Sorting GitHub's answers: what is worth another try (and after how long), what is final, and
//! what goes back to the caller to look at.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// What went wrong with one HTTP exchange.
#[derive(Debug)]
pub(super) enum Fault {
    /// Worth another try, after the server's requested delay if it gave one.
    Transient {
        message: String,
        wait: Option<Duration>,
    },
    /// Retrying cannot help: the message says what to do.
    Fatal(String),
}

impl Fault {
    pub(super) fn transient(&self) -> bool {
        matches!(self, Fault::Transient { .. })
    }

    pub(super) fn into_error(self) -> Error {
        match self {
            Fault::Transient { message, .. } => Error::Remote(format!(
                "GitHub kept failing ({message}) until the retry budget ran out; check the network or https://www.githubstatus.com, then try again"
            )),
            Fault::Fatal(message) => Error::Remote(message),
        }
    }
}

/// A response the caller inspects (2xx, 3xx, 404, 409 and 422 come back as is).
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn json<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, Fault> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Fault::Fatal(format!(
                "GitHub answered {} with a body this tool cannot read ({e})",
                self.status
            ))
        })
    }

    /// The `code` of the first validation error, if any (`already_exists`, `custom`, …).
    pub(super) fn validation(&self) -> (Option<String>, String) {
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

/// Seconds until a Unix time, at least one.
pub(super) fn until(reset: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(reset.saturating_sub(now).max(1))
}

pub(super) fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Sorts a non-2xx answer into retry-worthy or fatal (404, 409 and 422 go back to the caller).
pub(super) fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Option<Fault> {
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

/// A transport failure, worth retrying. The URL is left out of the message: signed storage URLs
/// and query strings stay out of output.
pub(super) fn network_fault(doing: &str, e: &reqwest::Error) -> Fault {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "(url)");
    }
    // The root cause (connection refused, reset, timed out) says the most.
    let mut source = std::error::Error::source(e);
    let mut root = None;
    while let Some(cause) = source {
        root = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(root) = root {
        text = format!("{text}: {root}");
    }
    Fault::Transient {
        message: format!("{doing}: {text}"),
        wait: None,
    }
}

pub(super) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
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

/// The `Location` of a redirect (GitHub sends absolute URLs).
pub(super) fn location(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    Some(value.to_string())
}

/// Whether `url` is on the same scheme, host and port as `base` (the API host, which may have
/// the token; no other host may).
pub(super) fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_host_is_the_same_origin() {
        let api = "https://ghe.example.com/api/v3";
        assert!(same_origin("https://ghe.example.com/repositories/1", api));
        assert!(!same_origin("https://objects.example.com/x", api));
        assert!(!same_origin("http://ghe.example.com/repositories/1", api));
        assert!(!same_origin("https://ghe.example.com:8443/x", api));
        assert!(!same_origin("/relative", api));
    }
}
