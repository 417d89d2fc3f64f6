//! The reqwest client every HTTP remote uses, and one exchange through it.

use std::time::Duration;

use super::Service;
use super::fault::{Fault, network_fault};
use crate::error::{Error, Result};

/// A connection opens within this or the network is taken to be down, however long a remote
/// waits for answers.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a remote's config says about its client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientSettings {
    /// How long a JSON answer may take; connecting takes at most this, and at most
    /// [`MAX_CONNECT_TIMEOUT`].
    pub(crate) reply_timeout: Duration,
}

/// The client: rustls with ring trusting the OS certificate store, the proxy variables,
/// a connect timeout, and no redirect followed on its own.
///
/// # Errors
/// reqwest cannot set up HTTP.
pub(crate) fn build_client(settings: &ClientSettings) -> Result<reqwest::Client> {
    // TLS is rustls with ring, trusting the OS certificate store as rustls-native-certs
    // reads it (SSL_CERT_FILE and SSL_CERT_DIR included); the proxy variables come with
    // reqwest's defaults. No overall or read timeout: JSON calls get one per call,
    // transfers the stall watchdog, so a slow transfer that moves is never cut off.
    // Redirects are the remote's to follow: it decides which host may see its credentials.
    reqwest::Client::builder()
        .tls_certs_only(os_roots())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.reply_timeout.min(MAX_CONNECT_TIMEOUT))
        .user_agent(concat!("backup-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::System(format!("cannot set up HTTP: {e}")))
}

/// The OS's trusted root certificates, with ring as the process's rustls crypto provider.
/// Certificates the store holds but that do not parse are skipped; with none at all, every
/// connection fails with "invalid peer certificate", which [`network_fault`] explains.
fn os_roots() -> Vec<reqwest::Certificate> {
    // Err only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!("OS certificate store: {e}");
    }
    // reqwest refuses the whole list over one certificate rustls cannot use: test each here.
    found
        .certs
        .into_iter()
        .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok())
        .filter_map(|der| reqwest::Certificate::from_der(&der).ok())
        .collect()
}

/// A whole answer, as it came; the remote sorts it.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Sends `request` and reads the whole answer, as it came (`doing` names the exchange in a
/// network fault).
pub(crate) async fn exchange(
    service: &Service,
    request: reqwest::RequestBuilder,
    doing: &str,
) -> std::result::Result<Reply, Fault> {
    let response = request
        .send()
        .await
        .map_err(|e| network_fault(service, doing, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| network_fault(service, doing, &e))?
        .to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}
