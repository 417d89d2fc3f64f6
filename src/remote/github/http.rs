//! Sorting GitHub's answers: what is worth another try (and after how long), what is final, and
//! what goes back to the caller to look at. GitHub's own rules live here (its rate-limit headers,
//! secondary limits and "abuse detection" 403s, its JSON error bodies, `Link` paging); what any
//! HTTP service means by a status or a `Retry-After` is `net`'s.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, RemoteError};
use crate::remote::net::{Fault, Reply, Service, retry_after, status_fault};

/// GitHub, as messages name it.
pub(super) const GITHUB: Service = Service {
    name: "GitHub",
    self_hosted: "GitHub Enterprise Server",
};

/// A fault as the user hears of it from GitHub.
pub(super) trait GithubFault {
    fn into_error(self) -> Error;
}

impl GithubFault for Fault {
    fn into_error(self) -> Error {
        match self {
            Fault::Transient { message, .. } => RemoteError::transient(format!(
                "GitHub kept failing ({message}) until the retry budget ran out; check the network or https://www.githubstatus.com, then try again"
            ))
            .into(),
            Fault::Fatal(e) => Error::Remote(e),
        }
    }
}

/// Reading GitHub's JSON bodies (2xx, 3xx, 404, 409 and 422 come back to the caller as is).
pub(super) trait GithubReply {
    fn json<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, Fault>;
    /// The `code` and message of the first validation error, if any (`already_exists`,
    /// `custom`, …).
    fn validation(&self) -> (Option<String>, String);
}

impl GithubReply for Reply {
    fn json<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, Fault> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Fault::Fatal(RemoteError::failed(format!(
                "GitHub answered {} with a body this tool cannot read ({e})",
                self.status
            )))
        })
    }

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

/// Whether a 403/429 message is one of GitHub's secondary rate limits, in today's wording or
/// the older "abuse detection" one.
fn secondary_limit(message: &str) -> bool {
    let message = message.to_lowercase();
    message.contains("secondary rate limit") || message.contains("abuse detection")
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
    let retry_after = retry_after(headers);
    let remaining = header_u64(headers, "x-ratelimit-remaining");
    let reset = header_u64(headers, "x-ratelimit-reset").map(until);
    match status {
        404 | 409 | 422 => None,
        401 => Some(Fault::Fatal(RemoteError::denied(
            "GitHub rejected the token (401 Bad credentials); renew it and update where it comes from",
        ))),
        403 | 429 if secondary_limit(&message) => {
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
        // GitHub's rate limits say when to come back; a scope problem never does.
        403 if retry_after.is_some() => Some(Fault::Transient {
            message: format!("403 rate limited ({message})"),
            wait: retry_after,
        }),
        403 => Some(Fault::Fatal(RemoteError::denied(format!(
            "GitHub refused (403: {message}); the token needs the `repo` scope (or contents: write)"
        )))),
        _ => status_fault(&GITHUB, status, retry_after, &message),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::net::testing::{fault_summary, headers};

    const PLAIN: &[u8] = br#"{"message":"Something"}"#;
    const SECONDARY: &[u8] = br#"{"message":"You have exceeded a secondary rate limit."}"#;

    /// Status, headers, body: what it comes to.
    type Case<'a, T> = (u16, &'a [(&'static str, &'a str)], &'a [u8], T);

    #[test]
    fn a_403_that_says_when_to_come_back_or_names_abuse_detection_is_a_rate_limit() {
        let body = br#"{"message":"Resource not accessible by integration"}"#;
        let waited = classify(403, &headers(&[("retry-after", "7")]), body);
        assert!(
            matches!(waited, Some(Fault::Transient { wait: Some(w), .. }) if w == Duration::from_secs(7)),
            "{waited:?}"
        );
        let abuse = br#"{"message":"You have triggered an abuse detection mechanism. Please wait a few minutes before you try again."}"#;
        let limited = classify(403, &headers(&[]), abuse);
        assert!(
            matches!(limited, Some(Fault::Transient { wait: Some(w), .. }) if w == Duration::from_secs(60)),
            "{limited:?}"
        );
        let scope = classify(403, &headers(&[]), body);
        assert!(matches!(scope, Some(Fault::Fatal(_))), "{scope:?}");
    }

    #[test]
    fn every_status_is_sorted_into_caller_retry_or_fatal() {
        let (plain, secondary) = (PLAIN, SECONDARY);
        let cases: &[Case<(&str, Option<u64>)>] = &[
            (200, &[], b"", ("caller", None)),
            (302, &[], b"", ("caller", None)),
            (404, &[], plain, ("caller", None)),
            (409, &[], plain, ("caller", None)),
            (422, &[], plain, ("caller", None)),
            (401, &[], plain, ("fatal", None)),
            (401, &[("retry-after", "5")], plain, ("fatal", None)),
            (403, &[], plain, ("fatal", None)),
            (403, &[], secondary, ("retry", Some(60))),
            (429, &[], secondary, ("retry", Some(60))),
            (403, &[("retry-after", "9")], secondary, ("retry", Some(9))),
            (403, &[("retry-after", "3")], plain, ("retry", Some(3))),
            (429, &[], plain, ("retry", None)),
            (429, &[("retry-after", "2")], plain, ("retry", Some(2))),
            (
                403,
                &[("x-ratelimit-remaining", "0"), ("retry-after", "4")],
                plain,
                ("retry", Some(4)),
            ),
            (500, &[], plain, ("retry", None)),
            (502, &[], b"<html>bad gateway</html>", ("retry", None)),
            (503, &[("retry-after", "1")], b"", ("retry", Some(1))),
            (400, &[], plain, ("fatal", None)),
            (408, &[], b"", ("retry", None)),
            (418, &[], b"", ("fatal", None)),
        ];
        for (status, pairs, body, expected) in cases {
            assert_eq!(
                fault_summary(classify(*status, &headers(pairs), body)),
                *expected,
                "{status} {pairs:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_used_up_primary_limit_waits_until_its_reset() {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 120;
        let pairs = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset.to_string()),
        ];
        let body = br#"{"message":"API rate limit exceeded"}"#;
        for status in [403, 429] {
            let (word, wait) = fault_summary(classify(status, &headers(&pairs), body));
            assert_eq!(word, "retry");
            let wait = wait.unwrap();
            assert!((115..=120).contains(&wait), "{status}: {wait}");
        }
        // A reset already past: a second, not nothing and not forever.
        assert_eq!(until(0), Duration::from_secs(1));
    }

    #[test]
    fn the_fatal_messages_say_what_to_do_and_quote_githubs() {
        let Some(Fault::Fatal(RemoteError { message: scope, .. })) =
            classify(403, &headers(&[]), br#"{"message":"Nope"}"#)
        else {
            panic!("a 403 without a limit is fatal");
        };
        assert!(
            scope.contains("Nope") && scope.contains("`repo` scope"),
            "{scope}"
        );
        let Some(Fault::Fatal(RemoteError { message: token, .. })) =
            classify(401, &headers(&[]), b"")
        else {
            panic!("a 401 is fatal");
        };
        assert!(token.contains("renew"), "{token}");
        // A body that is not JSON is quoted, cut short.
        let long = "x".repeat(1000);
        let Some(Fault::Fatal(RemoteError { message: other, .. })) =
            classify(400, &headers(&[]), long.as_bytes())
        else {
            panic!("a 400 is fatal");
        };
        assert!(other.len() < 300, "{other}");
    }

    /// What a caller is told of each answer that ends an operation: the kind it branches on.
    #[test]
    fn every_final_answer_reaches_the_caller_as_a_remote_error_of_its_kind() {
        use crate::error::RemoteErrorKind::{self, Denied, Failed, NotFound, Transient};
        let (plain, secondary) = (PLAIN, SECONDARY);
        let cases: &[Case<RemoteErrorKind>] = &[
            (401, &[], plain, Denied),
            (403, &[], plain, Denied),
            (403, &[], secondary, Transient),
            (403, &[("retry-after", "5")], plain, Transient),
            (403, &[("x-ratelimit-remaining", "0")], plain, Transient),
            (429, &[], plain, Transient),
            (408, &[], plain, Transient),
            (500, &[], plain, Transient),
            (503, &[("retry-after", "1")], plain, Transient),
            (400, &[], plain, Failed),
            (410, &[], plain, NotFound),
            (418, &[], plain, Failed),
        ];
        for (status, pairs, body, expected) in cases {
            let fault = classify(*status, &headers(pairs), body).expect("a final answer");
            match fault.into_error() {
                Error::Remote(e) => assert_eq!(e.kind, *expected, "{status}: {e}"),
                other => panic!("{status}: {other}"),
            }
        }
        // A body GitHub sent that cannot be read, and a refusal for good, keep their kinds.
        let unreadable = Reply {
            status: 200,
            headers: headers(&[]),
            body: b"not json".to_vec(),
        };
        let fault = unreadable.json::<Value>().unwrap_err();
        assert_eq!(fault.into_error().remote_kind(), Some(Failed));
        let refused = Fault::Fatal(RemoteError::refused("never"));
        assert_eq!(
            refused.into_error().remote_kind(),
            Some(RemoteErrorKind::Refused)
        );
    }

    #[test]
    fn the_next_page_is_found_in_any_link_header_githubs_way() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"<https://api.github.com/repositories/1/releases?page=2>; rel="next", <https://api.github.com/repositories/1/releases?page=5>; rel="last""#,
                Some("https://api.github.com/repositories/1/releases?page=2"),
            ),
            // Order does not matter, nor spacing.
            (
                r#"<https://h/x?page=1>; rel="prev",<https://h/x?page=3>;rel="next""#,
                Some("https://h/x?page=3"),
            ),
            // The last page has no next.
            (
                r#"<https://h/x?page=1>; rel="first", <https://h/x?page=4>; rel="prev""#,
                None,
            ),
            ("", None),
            ("garbage", None),
        ];
        for (link, expected) in cases {
            assert_eq!(
                next_link(&headers(&[("link", link)])).as_deref(),
                *expected,
                "{link}"
            );
        }
        assert_eq!(next_link(&headers(&[])), None);
    }
}
