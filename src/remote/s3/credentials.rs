//! The S3 keys: where they come from, and a type that never shows them.
//!
//! First found wins, as the AWS tools look:
//! 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN` for temporary
//!    keys);
//! 2. the profile (`profile` in the config, else `AWS_PROFILE`, else `default`) in the shared
//!    files: `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`), then `~/.aws/config` (or
//!    `AWS_CONFIG_FILE`, sections `[profile NAME]`);
//! 3. the config's `credentials_file`, in the same format, refused unless mode 0600.
//!
//! Profiles that run a program or a sign-in (`credential_process`, `sso_*`, `role_arn`) are
//! said to be unsupported rather than silently skipped: their keys would come from elsewhere.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The keys that sign requests. `Debug` shows the key id's first characters only.
#[derive(Clone)]
pub struct Credentials {
    pub(super) key_id: String,
    pub(super) secret: String,
    pub(super) session_token: Option<String>,
    pub source: CredentialSource,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, from {})", self.key_hint(), self.source)
    }
}

impl Credentials {
    /// Keys handed over directly (tests, tools built on the library).
    pub fn given(key_id: &str, secret: &str, session_token: Option<&str>) -> Credentials {
        Credentials {
            key_id: key_id.trim().to_string(),
            secret: secret.trim().to_string(),
            session_token: session_token.map(|t| t.trim().to_string()),
            source: CredentialSource::Given,
        }
    }

    /// The key id's first four characters, which identify a key without giving it away.
    pub fn key_hint(&self) -> String {
        let shown: String = self.key_id.chars().take(4).collect();
        format!("{shown}…")
    }
}

/// Where the keys came from, for `doctor`, `auth status` and messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    Environment,
    /// A profile in a shared AWS file: the profile's name and the file.
    SharedFile {
        profile: String,
        file: String,
    },
    /// The config's `credentials_file`.
    File(String),
    Given,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => {
                f.write_str("the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables")
            }
            CredentialSource::SharedFile { profile, file } => {
                write!(f, "profile `{profile}` in {file}")
            }
            CredentialSource::File(path) => write!(f, "the credentials file {path}"),
            CredentialSource::Given => f.write_str("the keys given"),
        }
    }
}

/// What the lookup reads: the environment and the home folder, passed in so tests need not
/// change the process's.
pub(super) struct Lookup<'a> {
    pub(super) var: &'a dyn Fn(&str) -> Option<String>,
    pub(super) home: Option<PathBuf>,
}

impl Lookup<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.trim().is_empty())
    }
}

/// The process's environment and home folder.
pub(super) fn from_process() -> Lookup<'static> {
    Lookup {
        var: &|name| std::env::var(name).ok(),
        home: std::env::var_os("HOME").map(PathBuf::from),
    }
}

/// The first keys the chain finds, for the config's `profile` and `credentials_file`.
///
/// # Errors
/// None anywhere (saying where it looked), half a key pair in the environment, a named profile
/// that is nowhere, a profile of an unsupported kind, or an unsafe `credentials_file`.
pub(super) fn find(
    lookup: &Lookup<'_>,
    profile: Option<&str>,
    credentials_file: Option<&Path>,
) -> Result<Credentials> {
    match (
        lookup.get("AWS_ACCESS_KEY_ID"),
        lookup.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(key_id), Some(secret)) => {
            return Ok(Credentials {
                key_id: key_id.trim().to_string(),
                secret: secret.trim().to_string(),
                session_token: lookup
                    .get("AWS_SESSION_TOKEN")
                    .map(|t| t.trim().to_string()),
                source: CredentialSource::Environment,
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Config(
                "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both, or neither to use a profile".into(),
            ));
        }
        (None, None) => {}
    }
    let named = profile
        .map(str::to_string)
        .or_else(|| lookup.get("AWS_PROFILE"));
    let profile_name = named.clone().unwrap_or_else(|| "default".to_string());
    let home_file = |var: &str, rel: &str| {
        lookup
            .get(var)
            .map(PathBuf::from)
            .or_else(|| lookup.home.as_ref().map(|h| h.join(rel)))
    };
    let shared = [
        (
            home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            false,
        ),
        (home_file("AWS_CONFIG_FILE", ".aws/config"), true),
    ];
    for (file, is_config) in shared {
        let Some(file) = file else { continue };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let source = CredentialSource::SharedFile {
            profile: profile_name.clone(),
            file: file.display().to_string(),
        };
        if let Some(found) = from_profile(&text, &profile_name, is_config, source)? {
            return Ok(found);
        }
    }
    if let Some(path) = credentials_file {
        let text = crate::fsutil::read_private_file(path, "credentials_file", "")?;
        let source = CredentialSource::File(path.display().to_string());
        // A file of its own may hold its keys without any section.
        for section in [profile_name.as_str(), ""] {
            if let Some(found) = from_profile(&text, section, false, source.clone())? {
                return Ok(found);
            }
        }
        return Err(Error::Config(format!(
            "credentials_file {} holds no aws_access_key_id and aws_secret_access_key for profile `{profile_name}`",
            path.display()
        )));
    }
    if let Some(name) = named {
        return Err(Error::Config(format!(
            "AWS profile `{name}` was not found in ~/.aws/credentials or ~/.aws/config; check its name, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )));
    }
    Err(Error::Config(
        "no S3 keys found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add a profile to ~/.aws/credentials, or name a credentials_file (mode 0600) under [remote]".into(),
    ))
}

/// The keys of `profile` in an INI text of the AWS shared-file format; in a config file
/// (`is_config`) profiles other than `default` are headed `[profile NAME]`. The section `""`
/// means the lines before any header.
fn from_profile(
    text: &str,
    profile: &str,
    is_config: bool,
    source: CredentialSource,
) -> Result<Option<Credentials>> {
    let wanted: Vec<String> = if profile.is_empty() {
        vec![String::new()]
    } else if is_config && profile != "default" {
        vec![format!("profile {profile}")]
    } else {
        vec![profile.to_string(), format!("profile {profile}")]
    };
    let mut section = String::new();
    let mut seen = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    let mut unsupported = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // A heading may carry a comment after it: `[default]   # note`.
        if let Some(header) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once(']'))
            .map(|(h, _)| h)
        {
            section = header.split_whitespace().collect::<Vec<_>>().join(" ");
            continue;
        }
        if !wanted.contains(&section) {
            continue;
        }
        seen = true;
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => key_id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            other @ ("credential_process"
            | "role_arn"
            | "sso_session"
            | "sso_start_url"
            | "web_identity_token_file") => unsupported = Some(other.to_string()),
            _ => {}
        }
    }
    match (key_id, secret) {
        (Some(key_id), Some(secret)) if !key_id.is_empty() && !secret.is_empty() => {
            Ok(Some(Credentials {
                key_id,
                secret,
                session_token: token.filter(|t| !t.is_empty()),
                source,
            }))
        }
        _ if seen && unsupported.is_some() => Err(Error::Config(format!(
            "{source} uses {}, which backup-agent does not run; give the profile aws_access_key_id and aws_secret_access_key, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            unsupported.unwrap_or_default()
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn lookup<'a>(vars: &'a HashMap<&str, &str>, home: &Path) -> Lookup<'a> {
        let var: &'a dyn Fn(&str) -> Option<String> = Box::leak(Box::new(move |name: &str| {
            vars.get(name).map(|v| (*v).to_string())
        }));
        Lookup {
            var,
            home: Some(home.to_path_buf()),
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_environment_comes_before_the_shared_files_and_they_before_the_config_file() {
        let home = tempfile::TempDir::new().unwrap();
        write(
            &home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDSHARED\naws_secret_access_key = s1\n[work]  # the office\r\naws_access_key_id=AKIDWORK\naws_secret_access_key=s2\naws_session_token=t2\n",
            0o644,
        );
        let own = home.path().join("keys");
        write(
            &own,
            "aws_access_key_id = AKIDOWN\naws_secret_access_key = s3\n",
            0o600,
        );
        let env = HashMap::from([
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s0"),
        ]);
        let found = find(&lookup(&env, home.path()), None, Some(&own)).unwrap();
        assert_eq!(
            (found.key_id.as_str(), &found.source),
            ("AKIDENV", &CredentialSource::Environment)
        );

        let env = HashMap::from([("AWS_PROFILE", "work")]);
        let found = find(&lookup(&env, home.path()), None, Some(&own)).unwrap();
        assert_eq!(found.key_id, "AKIDWORK");
        assert_eq!(found.session_token.as_deref(), Some("t2"));
        assert!(
            found.source.to_string().contains("profile `work`"),
            "{}",
            found.source
        );

        std::fs::remove_file(home.path().join(".aws/credentials")).unwrap();
        let none = HashMap::new();
        let found = find(&lookup(&none, home.path()), None, Some(&own)).unwrap();
        assert_eq!(found.key_id, "AKIDOWN");
        assert!(format!("{found:?}").contains("AKID…") && !format!("{found:?}").contains("s3"));
    }

    #[test]
    fn a_config_file_profile_is_read_under_its_own_heading() {
        let home = tempfile::TempDir::new().unwrap();
        write(
            &home.path().join(".aws/config"),
            "[profile nas]\nregion = garage\naws_access_key_id = GKNAS\naws_secret_access_key = x\n",
            0o644,
        );
        let none = HashMap::new();
        let found = find(&lookup(&none, home.path()), Some("nas"), None).unwrap();
        assert_eq!(found.key_id, "GKNAS");
    }

    #[test]
    fn missing_half_unsafe_and_unsupported_keys_are_refused_in_words() {
        let home = tempfile::TempDir::new().unwrap();
        let none = HashMap::new();
        let e = find(&lookup(&none, home.path()), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no S3 keys found"), "{e}");
        let half = HashMap::from([("AWS_ACCESS_KEY_ID", "AKID")]);
        let e = find(&lookup(&half, home.path()), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only one of"), "{e}");
        let e = find(&lookup(&none, home.path()), Some("gone"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("profile `gone` was not found"), "{e}");
        let own = home.path().join("keys");
        write(
            &own,
            "aws_access_key_id = A\naws_secret_access_key = B\n",
            0o644,
        );
        let e = find(&lookup(&none, home.path()), None, Some(&own))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
        write(
            &home.path().join(".aws/config"),
            "[default]\ncredential_process = /bin/keys\n",
            0o644,
        );
        let e = find(&lookup(&none, home.path()), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("credential_process"), "{e}");
    }
}
