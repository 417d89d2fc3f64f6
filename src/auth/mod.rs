//! GitHub tokens: where one is found (environment, token file, the OS keyring, `gh`), the type
//! that never shows it, and the keyring `backup auth login` keeps it in. The GitHub remote asks
//! this module for a token; this module knows nothing of remotes.

pub mod keyring;
pub mod token;

pub use keyring::{forget, store, stored_token};
pub use token::{Token, TokenSource, env_vars, gh_host};
