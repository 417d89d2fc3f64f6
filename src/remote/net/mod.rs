//! What every remote that speaks HTTP shares: the one reqwest client, the retry policy, the
//! sorting of faults, the stall watchdog for transfers, and keeping secrets in URLs out of
//! messages. A remote (`github/`, and the next one) keeps only its own service's rules: its
//! rate-limit headers, its error bodies, its paging. Nothing here knows which remote calls it.
//!
//! The policy, in one place:
//!
//! - **Client** (`client`): TLS is rustls with ring, trusting the OS certificate store
//!   (`SSL_CERT_FILE` and `SSL_CERT_DIR` included); `HTTPS_PROXY`/`NO_PROXY` as reqwest reads
//!   them; a connect timeout; redirects are never followed by the client, so a remote decides
//!   which host may see its credentials. No overall or read timeout: a JSON call gets an answer
//!   timeout per call, a transfer the stall watchdog, so a slow transfer that moves is never cut.
//! - **Faults** (`fault`): every exchange ends in an answer for the caller, a transient fault
//!   (network errors, 408, 429, 5xx) worth another try after the server's `Retry-After` when it
//!   gives one, or a final fault holding the `RemoteError` the caller gets (its kind for the
//!   program, its message for the user). An untrusted TLS certificate is final: no retry makes
//!   it trusted.
//! - **Retries** (`retry`): each operation is retried on transient faults within a budget of
//!   real elapsed time (attempts, backoff delays and the waits the server asks for all count; a
//!   wait that would end past the budget is not started), with exponential backoff and jitter
//!   capped at a maximum delay. A run may set a deadline, which cuts even a transfer in
//!   progress. A command someone waits on answers within seconds (`answer_quickly`).
//! - **Transfers** (`watchdog`): an upload or download that moves bytes is never cut off; one
//!   idle for the stall time is a transient fault, and after an upload's last byte the server
//!   gets a separate answer wait.
//! - **URLs in messages** (`url`): [`redact`] drops userinfo, query and fragment, where tokens
//!   and signatures travel, before a URL reaches an error or a log.

mod client;
mod fault;
mod retry;
mod url;
mod watchdog;

pub(crate) use client::{ClientSettings, Reply, build_client, exchange};
pub(crate) use fault::{Fault, network_fault, retry_after, status_fault};
pub(crate) use retry::{Retrier, RetrySettings, join_all, race};
pub(crate) use url::{location, redact, same_origin};
pub(crate) use watchdog::Watchdog;

/// The service a remote talks to, as messages name it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Service {
    /// Starts each retry notice and names the service in messages: "GitHub".
    pub(crate) name: &'static str,
    /// Its self-hosted edition, which may use its own certificate authority: "GitHub Enterprise
    /// Server".
    pub(crate) self_hosted: &'static str,
}

/// What the unit tests of `net` and of the remotes over it share.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Fault, Service};

    /// A service of no remote in particular.
    pub(crate) const SERVICE: Service = Service {
        name: "Storage",
        self_hosted: "a self-hosted store",
    };

    /// Response headers from name and value pairs.
    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    /// A fault as one short word and its wait, for the tables of tests that sort answers.
    pub(crate) fn fault_summary(fault: Option<Fault>) -> (&'static str, Option<u64>) {
        match fault {
            None => ("caller", None),
            Some(Fault::Transient { wait, .. }) => ("retry", wait.map(|w| w.as_secs())),
            Some(Fault::Fatal(_)) => ("fatal", None),
        }
    }
}
