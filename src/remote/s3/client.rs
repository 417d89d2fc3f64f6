//! One signed S3 request, and the sorting of S3's answers.
//!
//! Requests are signed with AWS Signature Version 4 by rusty-s3's signer as presigned URLs,
//! fresh for every attempt, with the headers that matter signed along (`content-md5`,
//! `if-none-match`, metadata): a request altered on the way fails its signature. Everything
//! else (the client, retries, the stall watchdog) is `remote::net`'s.
//!
//! S3 names its errors in an XML body (`<Code>`): the sorting here reads it, so that a SlowDown
//! is waited out, an expired session token is said as such and not retried, and a clock that is
//! off is corrected from the server's `Date` (as the AWS SDKs do) instead of failing every
//! request.

use std::cell::Cell;
use std::time::Duration;

use super::credentials::Credentials;
use super::xml;
use crate::error::RemoteError;
use crate::remote::net::{self, Fault, Reply, Retrier, Service, exchange, retry_after};

pub(super) const S3: Service = Service {
    name: "S3",
    self_hosted: "a self-hosted S3 server",
};

/// How long a signed URL stays valid: S3 checks it when the request starts, so this only has to
/// cover the wait for a connection.
const SIGNED_FOR_SECS: u64 = 15 * 60;

/// A request before it is signed: the object (or the bucket itself), the query and the headers
/// to sign.
pub(super) struct Call<'a> {
    pub(super) method: reqwest::Method,
    /// `None`: the bucket.
    pub(super) key: Option<&'a str>,
    pub(super) query: Vec<(&'static str, String)>,
    /// Lowercase names; signed, and sent as they are.
    pub(super) headers: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    pub(super) fn new(method: reqwest::Method, key: Option<&'a str>) -> Call<'a> {
        Call {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(super) fn query(mut self, name: &'static str, value: impl Into<String>) -> Call<'a> {
        self.query.push((name, value.into()));
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Call<'a> {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) retrier: Retrier,
    pub(super) http: reqwest::Client,
    pub(super) bucket: rusty_s3::Bucket,
    pub(super) credentials: Credentials,
    pub(super) stall: Duration,
    pub(super) answer_timeout: Duration,
    /// Seconds to add to this machine's clock when signing, learnt from a server that said the
    /// clock is off.
    clock_offset: Cell<i64>,
}

impl Client {
    pub(super) fn new(
        retrier: Retrier,
        http: reqwest::Client,
        bucket: rusty_s3::Bucket,
        credentials: Credentials,
        stall: Duration,
        answer_timeout: Duration,
    ) -> Client {
        Client {
            retrier,
            http,
            bucket,
            credentials,
            stall,
            answer_timeout,
            clock_offset: Cell::new(0),
        }
    }

    /// The presigned URL for `call`, signed now (as the server's clock has it, when known).
    pub(super) fn signed_url(&self, call: &Call<'_>) -> url::Url {
        let url = match call.key {
            Some(key) => self.bucket.object_url(key),
            None => self.bucket.base_url().clone(),
        };
        let method = match call.method.as_str() {
            "HEAD" => rusty_s3::Method::Head,
            "POST" => rusty_s3::Method::Post,
            "PUT" => rusty_s3::Method::Put,
            "DELETE" => rusty_s3::Method::Delete,
            _ => rusty_s3::Method::Get,
        };
        let mut query: Vec<(&str, &str)> =
            call.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query.sort_unstable();
        let mut headers: Vec<(&str, &str)> =
            call.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.sort_unstable();
        // The tool's one clock (settable in tests), corrected by what a server said of it.
        let seconds = crate::clock::now().timestamp() + self.clock_offset.get();
        let now = jiff::Timestamp::from_second(seconds).unwrap_or_else(|_| jiff::Timestamp::now());
        rusty_s3::signing::sign(
            &now,
            method,
            url,
            &self.credentials.key_id,
            &self.credentials.secret,
            self.credentials.session_token.as_deref(),
            self.bucket.region(),
            SIGNED_FOR_SECS,
            query.into_iter(),
            headers.into_iter(),
        )
    }

    /// The request for `call`, signed, with its headers; the caller adds a body.
    pub(super) fn request(&self, call: &Call<'_>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(call.method.clone(), self.signed_url(call).as_str());
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        request
    }

    /// One request with a small body or none, its whole answer read within the reply timeout;
    /// S3's error answers are sorted (`doing` names it in messages). The caller gets 2xx, 304,
    /// 404 (when `not_found_is_answer`) and 412 answers.
    pub(super) async fn call(
        &self,
        call: &Call<'_>,
        body: Option<Vec<u8>>,
        doing: &str,
    ) -> std::result::Result<Reply, Fault> {
        let mut request = self.request(call);
        if let Some(body) = body {
            request = request.body(body);
        } else if matches!(call.method.as_str(), "PUT" | "POST") {
            request = request.header(reqwest::header::CONTENT_LENGTH, 0);
        }
        let mut reply = self
            .retrier
            .answered_in_time(exchange(&S3, request, doing))
            .await?;
        if call.method == reqwest::Method::HEAD && matches!(reply.status, 400 | 403) {
            reply = self.why_refused(call, reply, doing).await?;
        }
        match self.sort(reply.status, &reply.headers, &reply.body, doing) {
            Some(fault) => Err(fault),
            None => Ok(reply),
        }
    }

    /// The answer to a HEAD has no body, so its 400 or 403 does not say why (an expired session
    /// token, a wrong secret, a clock that is off, a permission): the same request as a GET of
    /// the first byte says it in its error body, which then stands for the HEAD's answer. A GET
    /// that is not refused leaves the HEAD's answer as it was.
    async fn why_refused(
        &self,
        call: &Call<'_>,
        head: Reply,
        doing: &str,
    ) -> std::result::Result<Reply, Fault> {
        let get = Call {
            method: reqwest::Method::GET,
            key: call.key,
            query: call.query.clone(),
            headers: call.headers.clone(),
        };
        let request = self
            .request(&get)
            .header(reqwest::header::RANGE, "bytes=0-0");
        let again = self
            .retrier
            .answered_in_time(exchange(&S3, request, doing))
            .await?;
        Ok(
            if again.status >= 400 && xml::text(&again.body, "Code").is_some() {
                again
            } else {
                head
            },
        )
    }

    /// What an answer means when it is not the caller's: `None` for 2xx, 3xx, 404 and 412
    /// (callers decide what a missing object or a failed condition means), else a fault.
    pub(super) fn sort(
        &self,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        doing: &str,
    ) -> Option<Fault> {
        if status < 300 || status == 304 || status == 412 {
            return None;
        }
        // A signature dated far from the server's clock is refused, with a code only a body
        // carries (a HEAD has none): the server's `Date` tells.
        if matches!(status, 400 | 403) && self.clock_is_off(headers) {
            return Some(self.clock_fault(headers, &format!("{status}")));
        }
        if matches!(status, 301 | 302 | 307 | 308) {
            let region = headers
                .get("x-amz-bucket-region")
                .and_then(|v| v.to_str().ok())
                .map(|r| format!(" (the server says region `{r}`)"))
                .unwrap_or_default();
            return Some(Fault::Fatal(RemoteError::failed(format!(
                "{doing}: the server sends this bucket's requests elsewhere ({status}){region}; set [remote] region and endpoint to the bucket's own"
            ))));
        }
        let code = xml::text(body, "Code").unwrap_or_default();
        let message = xml::text(body, "Message").unwrap_or_default();
        let said = if code.is_empty() {
            format!("{status}")
        } else if message.is_empty() {
            format!("{status} {code}")
        } else {
            format!("{status} {code}: {message}")
        };
        let bucket = self.bucket.name();
        match code.as_str() {
            "NoSuchBucket" => {
                return Some(Fault::Fatal(RemoteError::not_found(format!(
                    "bucket {bucket} does not exist at {}; `backup init --create` makes it",
                    net::redact(self.bucket.base_url().as_str())
                ))));
            }
            "NoSuchKey" | "NoSuchUpload" => return None,
            "RequestTimeTooSkewed" => return Some(self.clock_fault(headers, &said)),
            "AccessDenied" if message.contains("expired") => {
                return Some(self.clock_fault(headers, &said));
            }
            "ExpiredToken" | "TokenRefreshRequired" => {
                return Some(Fault::Fatal(RemoteError::denied(format!(
                    "{doing}: the session token from {} has expired ({said}); get new temporary keys (AWS_SESSION_TOKEN) or use long-lived ones, then run again",
                    self.credentials.source
                ))));
            }
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" => {
                return Some(self.keys_refused(doing, &said));
            }
            // Garage says a wrong secret this way.
            "AccessDenied" if message.to_ascii_lowercase().contains("signature") => {
                return Some(self.keys_refused(doing, &said));
            }
            "AccessDenied" | "AllAccessDisabled" => {
                return Some(Fault::Fatal(RemoteError::denied(format!(
                    "{doing}: the key {} from {} may not do this in bucket {bucket} ({said}); the README lists the permissions the key needs",
                    self.credentials.key_hint(),
                    self.credentials.source
                ))));
            }
            // Retrying cannot make the server implement it.
            "NotImplemented" => {
                return Some(Fault::Fatal(RemoteError::failed(format!(
                    "{doing}: this server does not implement it ({said})"
                ))));
            }
            "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" => {
                return Some(Fault::Transient {
                    message: format!("{doing}: {said}"),
                    wait: retry_after(headers),
                });
            }
            _ => {}
        }
        if status == 404 {
            return None;
        }
        net::status_fault(
            &S3,
            status,
            retry_after(headers),
            &format!("{doing}: {said}"),
        )
    }

    fn keys_refused(&self, doing: &str, said: &str) -> Fault {
        Fault::Fatal(RemoteError::denied(format!(
            "{doing}: the key {} from {} was refused ({said}); check the key id and secret",
            self.credentials.key_hint(),
            self.credentials.source
        )))
    }

    /// The server's `Date` is more than five minutes off the time requests are signed with (S3
    /// refuses signatures over fifteen minutes off).
    fn clock_is_off(&self, headers: &reqwest::header::HeaderMap) -> bool {
        server_date(headers).is_some_and(|server| {
            let signing = crate::clock::now().timestamp() + self.clock_offset.get();
            (server.timestamp() - signing).abs() > 5 * 60
        })
    }

    /// The server says this machine's clock is off: learn by how much from its `Date` and try
    /// again at once, or, when that was learnt already (or it gave no date), say so.
    fn clock_fault(&self, headers: &reqwest::header::HeaderMap, said: &str) -> Fault {
        if let Some(server_time) = server_date(headers) {
            let offset = server_time.timestamp() - crate::clock::now().timestamp();
            if (offset - self.clock_offset.get()).abs() > 60 {
                let off = clock_difference(offset);
                tracing::warn!(
                    "this machine's clock is {off} the server's; signing with the server's time (set the clock right: timedatectl set-ntp true)"
                );
                self.clock_offset.set(offset);
                return Fault::Transient {
                    message: format!("this machine's clock is {off} the server's ({said})"),
                    wait: Some(Duration::ZERO),
                };
            }
        }
        Fault::Fatal(RemoteError::denied(format!(
            "the server refused the request's time ({said}); set this machine's clock right (timedatectl set-ntp true)"
        )))
    }
}

/// The server's clock, from its `Date` header.
fn server_date(
    headers: &reqwest::header::HeaderMap,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
}

/// How far this machine's clock is from a server's that is `offset` seconds ahead, in words:
/// "3 h 20 min behind".
fn clock_difference(offset: i64) -> String {
    let secs = offset.unsigned_abs();
    let amount = match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86_400),
    };
    let side = if offset > 0 { "behind" } else { "ahead of" };
    format!("{amount} {side}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clock_difference_is_said_in_words() {
        assert_eq!(super::clock_difference(90), "90 s behind");
        assert_eq!(
            super::clock_difference(-3 * 3600 - 1200),
            "3 h 20 min ahead of"
        );
        assert_eq!(super::clock_difference(24_019_170), "277 days behind");
    }
}
