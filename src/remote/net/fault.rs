//! What went wrong with one HTTP exchange, and the sorting every HTTP remote shares: transport
//! errors, `Retry-After`, and the statuses whose meaning does not depend on the service. A
//! remote sorts its own statuses first (a rate limit in a 403, a 404 its caller looks at) and
//! hands the rest to [`status_fault`].

use std::time::Duration;

use super::Service;
use crate::error::RemoteError;

/// What went wrong with one HTTP exchange.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Worth another try, after the server's requested delay if it gave one.
    Transient {
        message: String,
        wait: Option<Duration>,
    },
    /// Retrying within this operation cannot help: the error's kind says what the caller may
    /// do (a run's deadline is `Transient`: the next run may get through), its message what the
    /// user may.
    Fatal(RemoteError),
}

/// `Retry-After`: a number of seconds, or an HTTP date (RFC 9110 §10.2.3) as the wait until it
/// (nothing for a date already past). Anything else is no wait asked.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let left = at.signed_duration_since(chrono::Utc::now());
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

/// Sorts a status by what it means for any service: `None` for 2xx and 3xx answers (the caller's),
/// a transient fault for 408, 429 and 5xx (after `retry_after` when the server gave one), and a
/// final fault quoting `message` for the rest: denied for 401 and 403, not found for 404 and
/// 410, failed otherwise.
pub(crate) fn status_fault(
    service: &Service,
    status: u16,
    retry_after: Option<Duration>,
    message: &str,
) -> Option<Fault> {
    match status {
        200..=399 => None,
        408 => Some(Fault::Transient {
            message: "408 request timeout".into(),
            wait: retry_after,
        }),
        429 => Some(Fault::Transient {
            message: "429 too many requests".into(),
            wait: retry_after,
        }),
        500..=599 => Some(Fault::Transient {
            message: format!("{status} {message}"),
            wait: retry_after,
        }),
        other => {
            let message = format!("{} answered {other}: {message}", service.name);
            Some(Fault::Fatal(match other {
                401 | 403 => RemoteError::denied(message),
                404 | 410 => RemoteError::not_found(message),
                _ => RemoteError::failed(message),
            }))
        }
    }
}

/// A transport failure, worth retrying, unless the server's certificate is not trusted. The URL
/// is left out of the message: signed storage URLs and query strings stay out of output.
pub(crate) fn network_fault(service: &Service, doing: &str, e: &reqwest::Error) -> Fault {
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
    if let Some(root) = &root {
        text = format!("{text}: {root}");
    }
    // rustls says "invalid peer certificate: …": no retry makes a certificate trusted.
    if text.contains("invalid peer certificate") || text.contains("certificate verify failed") {
        let cause = root.unwrap_or(text);
        return Fault::Fatal(RemoteError::failed(format!(
            "the server's TLS certificate is not trusted ({cause}); if your company's network or {} uses its own certificate authority, add it to this machine's certificate store (or point SSL_CERT_FILE at it), then try again",
            service.self_hosted
        )));
    }
    Fault::Transient {
        message: format!("{doing}: {text}"),
        wait: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::net::testing::{SERVICE, fault_summary, headers};

    fn http_date(from_now: chrono::TimeDelta) -> String {
        (chrono::Utc::now() + from_now)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let s = Duration::from_secs;
        // Header value: the wait asked, as a range (an HTTP date is read against the clock).
        let cases: &[(String, Option<(Duration, Duration)>)] = &[
            ("42".into(), Some((s(42), s(42)))),
            (" 7 ".into(), Some((s(7), s(7)))),
            ("0".into(), Some((Duration::ZERO, Duration::ZERO))),
            // Huge values are read as they are; the retry loop caps every wait.
            (u64::MAX.to_string(), Some((s(u64::MAX), s(u64::MAX)))),
            // Past what a u64 holds, and not a date: no wait asked.
            ("99999999999999999999".into(), None),
            (
                http_date(chrono::TimeDelta::seconds(30)),
                Some((s(25), s(30))),
            ),
            (
                http_date(chrono::TimeDelta::days(400)),
                Some((s(399 * 86_400), s(400 * 86_400))),
            ),
            // A date already past: come back at once.
            (
                "Wed, 21 Oct 2015 07:28:00 GMT".into(),
                Some((Duration::ZERO, Duration::ZERO)),
            ),
            // Garbage, negative and fractional seconds, and the obsolete date forms.
            ("soon".into(), None),
            ("".into(), None),
            ("-5".into(), None),
            ("1.5".into(), None),
            ("Sunday, 06-Nov-94 08:49:37 GMT".into(), None),
            ("Sun Nov  6 08:49:37 1994".into(), None),
        ];
        for (value, range) in cases {
            let wait = retry_after(&headers(&[("retry-after", value)]));
            match (wait, range) {
                (None, None) => {}
                (Some(wait), Some((low, high))) => {
                    assert!(*low <= wait && wait <= *high, "{value:?}: {wait:?}")
                }
                (wait, range) => panic!("{value:?}: {wait:?}, expected {range:?}"),
            }
        }
        assert_eq!(retry_after(&headers(&[])), None);
    }

    #[test]
    fn every_status_is_sorted_into_caller_retry_or_fatal() {
        /// Status, Retry-After seconds: how it is sorted, and the wait.
        type Case = (u16, Option<u64>, (&'static str, Option<u64>));
        let cases: &[Case] = &[
            (100, None, ("fatal", None)),
            (200, None, ("caller", None)),
            (204, Some(3), ("caller", None)),
            (302, None, ("caller", None)),
            (304, None, ("caller", None)),
            (400, None, ("fatal", None)),
            (401, Some(5), ("fatal", None)),
            (403, None, ("fatal", None)),
            (404, None, ("fatal", None)),
            (408, None, ("retry", None)),
            (408, Some(2), ("retry", Some(2))),
            (418, None, ("fatal", None)),
            (429, None, ("retry", None)),
            (429, Some(9), ("retry", Some(9))),
            (500, None, ("retry", None)),
            (502, None, ("retry", None)),
            (503, Some(1), ("retry", Some(1))),
            (599, None, ("retry", None)),
            (600, None, ("fatal", None)),
        ];
        for (status, after, expected) in cases {
            let after = after.map(Duration::from_secs);
            assert_eq!(
                fault_summary(status_fault(&SERVICE, *status, after, "Something")),
                *expected,
                "{status} retry-after {after:?}"
            );
        }
    }

    #[test]
    fn status_messages_name_the_service_and_quote_the_server() {
        let messages: Vec<String> = [418, 429, 503]
            .into_iter()
            .map(
                |status| match status_fault(&SERVICE, status, None, "it said no") {
                    Some(Fault::Fatal(RemoteError { message: m, .. }))
                    | Some(Fault::Transient { message: m, .. }) => m,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(
            messages,
            [
                "Storage answered 418: it said no",
                "429 too many requests",
                "503 it said no"
            ]
        );
    }

    #[test]
    fn a_refused_connection_is_transient_and_its_message_holds_no_url() {
        // Port 1 is below the ephemeral range: nothing a test starts can listen there.
        let port = 1;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = super::super::build_client(&super::super::ClientSettings {
            reply_timeout: Duration::from_secs(5),
        })
        .unwrap();
        let url = format!("http://user:pw@127.0.0.1:{port}/bucket/key?X-Amz-Signature=secret");
        let error = runtime.block_on(client.get(&url).send()).unwrap_err();
        match network_fault(&SERVICE, "download", &error) {
            Fault::Transient {
                message,
                wait: None,
            } => {
                assert!(message.starts_with("download: "), "{message}");
                assert!(message.contains("(url)"), "{message}");
                for secret in ["secret", "pw@", "/bucket/key"] {
                    assert!(!message.contains(secret), "{message}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
}
