//! Remotes: where snapshots go off the machine.
//!
//! The contract every remote keeps:
//! - `list` returns the snapshots it holds (only names this tool made), with their sizes;
//! - `put` stores an archive and converges: a retry that finds the snapshot already there, whole
//!   and identical, succeeds without storing it twice; a partial leftover is replaced;
//! - a remote never holds a half-written archive under its final name;
//! - a folder remote is used only while it holds the marker this machine knows (`marker`).

mod dir;
pub mod github;
mod marker;
mod net;

pub use dir::{Diagnosis, DirRemote};
pub use github::GithubRemote;

use std::path::Path;

use crate::config::RemoteConfig;
use crate::error::Result;
use crate::progress::Progress;
use crate::tag::Tag;

/// A snapshot held by a remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub tag: Tag,
    pub size: u64,
    /// The sha256 the remote recorded when the snapshot was pushed, if it keeps one.
    pub sha256: Option<String>,
    /// How many check findings the snapshot's manifest records, when the remote's own record
    /// says so (a GitHub release body) without reading the archive.
    pub findings: Option<u64>,
}

/// What `init` found or made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Readiness {
    pub created: bool,
    /// One line for people: what is ready, or what was made.
    pub detail: String,
}

/// A local archive on its way to the remote.
#[derive(Clone, Debug)]
pub struct Upload<'a> {
    pub tag: &'a Tag,
    pub path: &'a Path,
    pub size: u64,
    pub sha256: &'a str,
    /// The sha256 was checked against the record written when the archive was made (or the
    /// archive was made by this run).
    pub verified: bool,
}

/// The configured remote.
#[derive(Debug)]
pub enum Remote {
    Dir(DirRemote),
    Github(Box<GithubRemote>),
}

impl Remote {
    /// The configured remote, for the machine whose local snapshot folder is `local_dir` (the
    /// folder remote keeps its record of the folders this machine pushed to there).
    pub fn from_config(config: &RemoteConfig, local_dir: &Path) -> Remote {
        match config {
            RemoteConfig::Dir { path } => {
                Remote::Dir(DirRemote::new(path.clone(), local_dir.to_path_buf()))
            }
            RemoteConfig::Github(github) => {
                Remote::Github(Box::new(GithubRemote::new(github.clone())))
            }
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Remote::Dir(d) => d.describe(),
            Remote::Github(g) => g.describe(),
        }
    }

    /// Snapshots on the remote, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote cannot be read.
    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        match self {
            Remote::Dir(d) => d.list(),
            Remote::Github(g) => g.list(),
        }
    }

    /// The snapshots among `tags` the remote holds (a push needs no more), oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote cannot be read.
    pub fn holding(&self, tags: &[Tag]) -> Result<Vec<RemoteSnapshot>> {
        match self {
            Remote::Dir(d) => Ok(d
                .list()?
                .into_iter()
                .filter(|s| tags.contains(&s.tag))
                .collect()),
            Remote::Github(g) => g.holding(tags),
        }
    }

    /// Checks the remote can take snapshots; with `create`, makes it first when it is missing
    /// (a folder, or a private GitHub repository).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when it is missing (without `create`), unreadable or unsafe
    /// (a public repository).
    pub fn init(&self, create: bool) -> Result<Readiness> {
        match self {
            Remote::Dir(d) => d.init(create),
            Remote::Github(g) => g.init(create),
        }
    }

    /// Checks, before a run pushes anything, that this is the remote this machine pushes to: a
    /// folder remote that lacks its marker (an empty mount point) is refused here, and a new one
    /// is marked. GitHub needs nothing.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the folder is refused or cannot be marked.
    pub fn ready_for_push(&self) -> Result<()> {
        match self {
            Remote::Dir(d) => d.ready_for_push(),
            Remote::Github(_) => Ok(()),
        }
    }

    /// Starts the run's deadline: from now on the remote gives up at its configured deadline
    /// (GitHub's `push_deadline_secs`), so a run never holds the run lock for good. A folder
    /// remote has none.
    pub fn start_run_deadline(&self) {
        match self {
            Remote::Dir(_) => {}
            Remote::Github(g) => g.start_run_deadline(),
        }
    }

    /// For a command someone waits on at once (`backup list`): an unreachable remote is given
    /// up on within seconds rather than retried for the whole budget.
    pub fn answer_quickly(&self) {
        match self {
            Remote::Dir(_) => {}
            Remote::Github(g) => g.answer_quickly(),
        }
    }

    /// Removes what interrupted pushes of `host` left on the remote that no push will finish
    /// (GitHub: old draft releases of tags published already or with no local archive in
    /// `keep`), after a [`Remote::list`]. Returns how many went.
    ///
    /// # Errors
    /// A deletion the remote refused or did not answer.
    pub fn delete_abandoned(
        &self,
        host: &str,
        keep: &std::collections::HashSet<Tag>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        match self {
            // A folder remote's leftovers are temp files, which its own writes clean up.
            Remote::Dir(_) => Ok(0),
            Remote::Github(g) => g.delete_abandoned_drafts(host, keep, now),
        }
    }

    /// Deletes the snapshot of `tag`; a snapshot already gone counts as deleted, so an
    /// interrupted delete converges on the next try. Returns a note for the user when something
    /// the remote will not delete stays behind (the git tag of an immutable GitHub release).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable or refuses.
    pub fn delete(&self, tag: &Tag) -> Result<Option<String>> {
        match self {
            Remote::Dir(d) => d.delete(tag).map(|()| None),
            Remote::Github(g) => g.delete(tag),
        }
    }

    /// Stores `upload` and checks what the remote holds afterwards.
    ///
    /// An archive the remote already holds under that tag is replaced only when it is damaged
    /// (it does not match the remote's own record) and the local archive is proven good
    /// ([`Upload::verified`]): remote content is never replaced by something that cannot be shown
    /// to be better.
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable, full, refuses the replacement, or
    /// holds something else after the write.
    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        match self {
            Remote::Dir(d) => d.put(upload),
            Remote::Github(g) => g.put(upload),
        }
    }

    /// The manifest of the snapshot of `tag`, when the remote can read it without a download
    /// (a folder); `None` otherwise.
    pub fn peek_manifest(&self, tag: &Tag) -> Option<crate::archive::Manifest> {
        match self {
            Remote::Dir(d) => d.peek_manifest(tag),
            Remote::Github(_) => None,
        }
    }

    /// Downloads the archive of `tag` into the new file `dest`, streaming; returns its size and
    /// sha256 (the caller compares them with [`RemoteSnapshot::sha256`]).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] when the remote is unreachable or lacks the snapshot.
    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        match self {
            Remote::Dir(d) => d.fetch(tag, dest, progress),
            Remote::Github(g) => g.fetch(tag, dest, progress),
        }
    }
}
