//! The OS keyring, where `backup auth login` keeps the GitHub token: one entry per API host
//! (named after the `api_url`), so a GitHub Enterprise Server token and a github.com token live
//! side by side.
//!
//! Linux: the kernel's keyutils *user* keyring. It needs no D-Bus, so it works on headless
//! machines, and every process of the user finds it, including cron jobs, which run in a
//! session of their own. Its keys live in kernel memory: they do not survive a reboot, so an
//! unattended machine that reboots is better served by `token_file`. macOS: the login keychain.

use super::token::Token;
use crate::error::{Error, Result};

const SERVICE: &str = "backup-agent";

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Keyring(format!(
        "the OS keyring is not available ({e}); name a token_file (mode 0600) under [remote] instead"
    ))
}

#[cfg(target_os = "linux")]
mod store {
    use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

    use super::{Error, Result, SERVICE, unavailable};

    fn description(api_url: &str) -> String {
        format!("{SERVICE}:{api_url}")
    }

    fn user_keyring() -> Result<KeyRing> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(unavailable)
    }

    pub fn get(api_url: &str) -> Option<String> {
        let key = user_keyring().ok()?.search(&description(api_url)).ok()?;
        String::from_utf8(key.read_to_vec().ok()?).ok()
    }

    pub fn set(api_url: &str, secret: &str) -> Result<()> {
        let key = user_keyring()?
            .add_key(&description(api_url), secret.as_bytes())
            .map_err(unavailable)?;
        // The user's own processes (a cron job has another session, so it does not "possess"
        // the key) may read it; nobody else may.
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(Permission::ALL)
            .build();
        key.set_perms(perms).map_err(unavailable)
    }

    pub fn delete(api_url: &str) -> Result<bool> {
        match user_keyring()?.search(&description(api_url)) {
            Ok(key) => key.invalidate().map(|()| true).map_err(unavailable),
            Err(KeyError::KeyDoesNotExist) => Ok(false),
            Err(e) => Err(Error::Keyring(format!("cannot reach the OS keyring: {e}"))),
        }
    }
}

#[cfg(target_os = "macos")]
mod store {
    use keyring_core::api::CredentialStoreApi;

    use super::{Result, SERVICE, unavailable};

    fn entry(api_url: &str) -> Result<keyring_core::Entry> {
        let store = apple_native_keyring_store::keychain::Store::new().map_err(unavailable)?;
        store.build(SERVICE, api_url, None).map_err(unavailable)
    }

    pub fn get(api_url: &str) -> Option<String> {
        entry(api_url).ok()?.get_password().ok()
    }

    pub fn set(api_url: &str, secret: &str) -> Result<()> {
        entry(api_url)?.set_password(secret).map_err(unavailable)
    }

    pub fn delete(api_url: &str) -> Result<bool> {
        match entry(api_url)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod store {
    use super::{Result, SERVICE, unavailable};

    pub fn get(_api_url: &str) -> Option<String> {
        None
    }

    pub fn set(_api_url: &str, _secret: &str) -> Result<()> {
        Err(unavailable(format!(
            "{SERVICE} supports the keyring on Linux and macOS"
        )))
    }

    pub fn delete(_api_url: &str) -> Result<bool> {
        Ok(false)
    }
}

/// The token stored for `api_url`, if any. A keyring that cannot be reached counts as empty:
/// the lookup goes on to the next source.
pub fn stored_token(api_url: &str) -> Option<String> {
    store::get(api_url)
}

/// Stores `token` for `api_url`, replacing an earlier one.
///
/// # Errors
/// No OS keyring on this machine, or it refused.
pub fn store(api_url: &str, token: &Token) -> Result<()> {
    store::set(api_url, token.expose())
}

/// Removes the token stored for `api_url`; `false` when there was none.
///
/// # Errors
/// No OS keyring on this machine, or it refused.
pub fn forget(api_url: &str) -> Result<bool> {
    store::delete(api_url)
}
