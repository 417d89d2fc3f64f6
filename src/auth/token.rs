//! The GitHub token: where it comes from, and a type that never shows it.
//!
//! First found wins: the token variables for the host (as gh documents them: `GH_TOKEN`, then
//! `GITHUB_TOKEN` for github.com and GHE.com; `GH_ENTERPRISE_TOKEN`, then
//! `GITHUB_ENTERPRISE_TOKEN` for a GitHub Enterprise Server), the config's `token_file`
//! (refused unless mode 0600), the OS keyring (`backup auth login`), then
//! `gh auth token --hostname <host>` when gh is installed (without `--hostname`, gh answers with
//! its default host's token, github.com's, whatever the server).

use crate::error::{Error, Result};
use std::fmt;

/// A token. `Debug` prints `***`; only [`Token::expose`] gives the value, for the Authorization
/// header.
#[derive(Clone)]
pub struct Token {
    value: String,
    /// Where it came from, for messages.
    pub source: TokenSource,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    EnvGithubToken,
    EnvGhToken,
    EnvGhEnterpriseToken,
    EnvGithubEnterpriseToken,
    File(String),
    Keyring,
    GhCli,
    /// Handed over directly (`backup auth login` checks a token before storing it).
    Given,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::EnvGithubToken => f.write_str("the GITHUB_TOKEN variable"),
            TokenSource::EnvGhToken => f.write_str("the GH_TOKEN variable"),
            TokenSource::EnvGhEnterpriseToken => f.write_str("the GH_ENTERPRISE_TOKEN variable"),
            TokenSource::EnvGithubEnterpriseToken => {
                f.write_str("the GITHUB_ENTERPRISE_TOKEN variable")
            }
            TokenSource::File(path) => write!(f, "the token file {path}"),
            TokenSource::Keyring => f.write_str("the OS keyring (`backup auth login`)"),
            TokenSource::GhCli => f.write_str("`gh auth token`"),
            TokenSource::Given => f.write_str("the token given"),
        }
    }
}

impl Token {
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A token handed over directly; `None` when it is blank.
    ///
    /// # Errors
    /// A token that is more than one line, or holds spaces or control characters.
    pub fn given(value: &str) -> Result<Option<Token>> {
        Token::new(value, TokenSource::Given)
    }

    /// The token in `value`, trimmed; `None` when blank. A token is one word of printable
    /// characters: anything else (a two-line token file, a pasted line break) would be refused
    /// by the HTTP layer deep down, so it is refused here, saying where it came from and never
    /// what it holds.
    fn new(value: &str, source: TokenSource) -> Result<Option<Token>> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if let Some(bad) = value.chars().find(|c| !c.is_ascii_graphic()) {
            let what = match bad {
                '\n' | '\r' => "more than one line",
                c if c.is_whitespace() => "a space inside it",
                _ => "a character a token never has",
            };
            return Err(Error::Config(format!(
                "the GitHub token from {source} has {what}; a token is a single word on one line: put only the token there (`backup auth login` reads it from stdin)"
            )));
        }
        Ok(Some(Token {
            value: value.to_string(),
            source,
        }))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(***, from {})", self.source)
    }
}

/// The host gh names for `api_url`: `github.com` for `https://api.github.com`, `NAME.ghe.com`
/// for GHE.com's `https://api.NAME.ghe.com`, else the server's own host (and port).
pub fn gh_host(api_url: &str) -> String {
    // The config refuses a URL that does not parse; this answer only keeps any userinfo or
    // query the text may hold out of messages.
    let Ok(url) = reqwest::Url::parse(api_url) else {
        return "the configured api_url".to_string();
    };
    let host = url.host_str().unwrap_or_default();
    let host = match host.strip_prefix("api.") {
        Some(rest) if rest == "github.com" || rest.ends_with(".ghe.com") => rest,
        _ => host,
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The token variables for `api_url`'s host, in gh's order of precedence.
pub fn env_vars(api_url: &str) -> [(&'static str, TokenSource); 2] {
    let host = gh_host(api_url);
    if host == "github.com" || host.ends_with(".ghe.com") {
        [
            ("GH_TOKEN", TokenSource::EnvGhToken),
            ("GITHUB_TOKEN", TokenSource::EnvGithubToken),
        ]
    } else {
        [
            ("GH_ENTERPRISE_TOKEN", TokenSource::EnvGhEnterpriseToken),
            (
                "GITHUB_ENTERPRISE_TOKEN",
                TokenSource::EnvGithubEnterpriseToken,
            ),
        ]
    }
}

/// Finds the token for the server at `api_url`, looking in `token_file` (the config's) after
/// the environment.
///
/// # Errors
/// A token file that other users can read, or that cannot be read; no token anywhere (saying
/// where to put one).
pub fn find(api_url: &str, token_file: Option<&std::path::Path>) -> Result<Token> {
    let host = gh_host(api_url);
    let vars = env_vars(api_url);
    for (var, source) in vars.clone() {
        if let Some(token) = std::env::var(var)
            .ok()
            .map(|v| Token::new(&v, source))
            .transpose()?
            .flatten()
        {
            return Ok(token);
        }
    }
    if let Some(path) = token_file {
        let text = crate::fsutil::read_private_file(
            path,
            "token_file",
            "; put the token in it and run `chmod 600` on it",
        )?;
        if let Some(token) = Token::new(&text, TokenSource::File(path.display().to_string()))? {
            return Ok(token);
        }
    }
    if let Some(value) = super::keyring::stored_token(api_url)
        && let Some(token) = Token::new(&value, TokenSource::Keyring)?
    {
        return Ok(token);
    }
    if let Ok(out) = std::process::Command::new("gh")
        .args(["auth", "token", "--hostname", &host])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
        && let Some(token) = Token::new(&String::from_utf8_lossy(&out.stdout), TokenSource::GhCli)?
    {
        return Ok(token);
    }
    // A github.com token set for this shell is never sent to another server.
    let ignored: Vec<&str> = ["GH_TOKEN", "GITHUB_TOKEN"]
        .into_iter()
        .filter(|var| vars.iter().all(|(v, _)| v != var))
        .filter(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
        .collect();
    let ignored = match ignored.as_slice() {
        [] => String::new(),
        [one] => format!(" ({one} is for github.com only, as in gh)"),
        names => format!(
            " ({} are for github.com only, as in gh)",
            names.join(" and ")
        ),
    };
    Err(Error::Config(format!(
        "no GitHub token found for {host}: run `backup auth login` (it reads the token from stdin), set {}{ignored}, or name a token_file (mode 0600) under [remote]",
        vars[0].0
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_their_token_variables_follow_gh() {
        assert_eq!(gh_host("https://api.github.com"), "github.com");
        assert_eq!(gh_host("https://api.acme.ghe.com/"), "acme.ghe.com");
        assert_eq!(gh_host("https://ghe.example.com/api/v3"), "ghe.example.com");
        assert_eq!(gh_host("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(env_vars("https://api.github.com")[0].0, "GH_TOKEN");
        assert_eq!(env_vars("https://api.acme.ghe.com")[1].0, "GITHUB_TOKEN");
        assert_eq!(
            env_vars("https://ghe.example.com/api/v3").map(|(v, _)| v),
            ["GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"]
        );
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token::new("ghp_secret_value\n", TokenSource::EnvGithubToken)
            .unwrap()
            .unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(token.expose(), "ghp_secret_value");
    }

    #[test]
    fn a_token_of_two_lines_is_refused_without_showing_it() {
        for bad in ["ghp_first\nghp_second", "ghp a", "ghp\u{7f}x"] {
            let err = Token::new(bad, TokenSource::EnvGhToken)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("ghp"), "{err}");
            assert!(err.contains("GH_TOKEN"), "{err}");
        }
        assert!(Token::new("  \n", TokenSource::Given).unwrap().is_none());
    }
}
