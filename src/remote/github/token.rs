//! The GitHub token: where it comes from, and a type that never shows it.
//!
//! First found wins: `GITHUB_TOKEN`, `GH_TOKEN`, the config's `token_file` (refused unless
//! mode 0600), the OS keyring (`backup auth login`), then `gh auth token` when gh is installed.

use crate::config::GithubConfig;
use crate::error::{Error, Result};
use std::fmt;
use std::os::unix::fs::PermissionsExt;

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

/// Finds the token.
///
/// # Errors
/// A token file that other users can read, or that cannot be read; no token anywhere (saying
/// where to put one).
pub fn find(config: &GithubConfig) -> Result<Token> {
    let token_file = config.token_file.as_deref();
    for (var, source) in [
        ("GITHUB_TOKEN", TokenSource::EnvGithubToken),
        ("GH_TOKEN", TokenSource::EnvGhToken),
    ] {
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
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::Config(format!(
                "token_file {}: cannot read it ({e}); put the token in it and run `chmod 600` on it",
                path.display()
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Config(format!(
                "token_file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "token_file {}: cannot read it ({e})",
                path.display()
            ))
        })?;
        if let Some(token) = Token::new(&text, TokenSource::File(path.display().to_string()))? {
            return Ok(token);
        }
    }
    if let Some(value) = crate::auth::stored_token(&config.api_url)
        && let Some(token) = Token::new(&value, TokenSource::Keyring)?
    {
        return Ok(token);
    }
    if let Ok(out) = std::process::Command::new("gh")
        .args(["auth", "token"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
        && let Some(token) = Token::new(&String::from_utf8_lossy(&out.stdout), TokenSource::GhCli)?
    {
        return Ok(token);
    }
    Err(Error::Config(
        "no GitHub token found: run `backup auth login` (it reads the token from stdin), set GITHUB_TOKEN, or name a token_file (mode 0600) under [remote]".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
