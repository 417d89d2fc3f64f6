//! Remotes: where snapshots go off the machine.
//!
//! The contract every remote keeps:
//! - `list` returns the snapshots it holds (only names this tool made), with their sizes;
//! - `put` stores an archive and converges: a retry that finds the snapshot already there, whole
//!   and identical, succeeds without storing it twice; a partial leftover is replaced;
//! - a remote never holds a half-written archive under its final name.

mod dir;

pub use dir::DirRemote;

use std::path::Path;

use crate::config::RemoteConfig;
use crate::error::Result;
use crate::tag::Tag;

/// A snapshot held by a remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub tag: Tag,
    pub size: u64,
    /// The sha256 the remote recorded when the snapshot was pushed, if it keeps one.
    pub sha256: Option<String>,
}

/// The configured remote.
#[derive(Debug)]
pub enum Remote {
    Dir(DirRemote),
}

impl Remote {
    pub fn from_config(config: &RemoteConfig) -> Remote {
        match config {
            RemoteConfig::Dir { path } => Remote::Dir(DirRemote::new(path.clone())),
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Remote::Dir(d) => d.describe(),
        }
    }

    /// Snapshots on the remote, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote cannot be read.
    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        match self {
            Remote::Dir(d) => d.list(),
        }
    }

    /// Stores the archive at `archive` (of `size` bytes and hex `sha256`) as snapshot `tag`, and
    /// checks what the remote holds afterwards against both.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable, full, or holds something else
    /// after the write.
    pub fn put(&self, tag: &Tag, archive: &Path, size: u64, sha256: &str) -> Result<()> {
        match self {
            Remote::Dir(d) => d.put(tag, archive, size, sha256),
        }
    }
}
