//! Pruning: carrying out a retention plan on the local folder and the remote, with one plan for
//! both. The plan itself is [`crate::retention`]'s, pure; this module lists, deletes and reports,
//! as the other operations do, so the policy needs neither the config nor a remote.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::catalog::{self, LocalSnapshot};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout;
use crate::remote::{Remote, RemoteSnapshot};
use crate::retention::{Candidate, Scope, plan_scoped};
use crate::tag::Tag;

/// One snapshot of this machine in a prune.
#[derive(Clone, Debug, Serialize)]
pub struct Pruned {
    pub tag: Tag,
    pub keep: bool,
    pub reasons: Vec<String>,
    /// Held in the local folder (before the prune).
    pub local: bool,
    /// Held by the remote (before the prune).
    pub remote: bool,
    /// Deleted everywhere it was held (false in a dry run).
    pub deleted: bool,
    /// What the remote kept although the snapshot is deleted (an immutable release's git tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a prune decided and did.
#[derive(Debug)]
pub struct PruneReport {
    /// This machine's snapshots, newest first.
    pub snapshots: Vec<Pruned>,
    /// Snapshots of other hosts, left alone.
    pub other_hosts: usize,
    pub dry_run: bool,
    /// Leftovers of interrupted pushes deleted from the remote (GitHub: abandoned drafts).
    pub abandoned_deleted: usize,
    /// The first deletion that failed; the rest of the plan was still carried out where safe.
    pub error: Option<Error>,
}

/// Plans and (unless `dry_run`) carries out retention for `scope`'s snapshots, locally and on
/// the remote, with one plan for both. The caller holds the run lock.
///
/// Each snapshot to delete goes first from the local folder, then from the remote: a crash in
/// between leaves a remote copy that the next prune deletes, never a local one that the next
/// run would push again.
///
/// # Errors
/// The local folder or the remote cannot be listed: then nothing is deleted anywhere (which
/// snapshots the remote lacks is unknown).
pub fn prune(
    config: &Config,
    remote: Option<&Remote>,
    dry_run: bool,
    scope: &Scope,
) -> Result<PruneReport> {
    let local = catalog::local_snapshots(&config.local_dir)?;
    let listed = remote.map(Remote::list).transpose()?;
    let host = scope.host.as_str();
    let on_remote: HashMap<&Tag, &RemoteSnapshot> =
        listed.iter().flatten().map(|s| (&s.tag, s)).collect();
    let on_local: HashMap<&Tag, &LocalSnapshot> = local.iter().map(|s| (&s.tag, s)).collect();
    let mut other_hosts = BTreeSet::new();
    let mut candidates = Vec::new();
    for tag in on_local.keys().chain(on_remote.keys()) {
        if tag.host() != host {
            other_hosts.insert(*tag);
            continue;
        }
        // As `run` sees it: missing remotely, another size, or no record there means it still
        // has to go up.
        let unpushed = remote.is_some()
            && on_local.get(tag).is_some_and(|l| {
                on_remote
                    .get(tag)
                    .is_none_or(|r| r.size != l.size || r.sha256.is_none())
            });
        // What the local manifest says, else the remote's record: a differential keeps its base.
        let base = match on_local.get(tag) {
            Some(local) => crate::archive::read::read_base(&local.path)
                .ok()
                .flatten()
                .map(|b| b.tag),
            None => None,
        }
        .or_else(|| on_remote.get(tag).and_then(|r| r.base.clone()));
        candidates.push(Candidate {
            tag: (*tag).clone(),
            unpushed,
            base,
        });
    }
    let base_of: HashMap<Tag, Tag> = candidates
        .iter()
        .filter_map(|c| Some((c.tag.clone(), c.base.clone()?)))
        .collect();
    let policy = config.retention;
    let mut report = PruneReport {
        snapshots: Vec::new(),
        other_hosts: other_hosts.len(),
        dry_run,
        abandoned_deleted: 0,
        error: None,
    };
    let mut remote_failed = false;
    report.snapshots = plan_scoped(candidates, &policy, scope)
        .into_iter()
        .map(|decision| Pruned {
            local: on_local.contains_key(&decision.tag),
            remote: on_remote.contains_key(&decision.tag),
            tag: decision.tag,
            keep: decision.keep,
            reasons: decision.reasons,
            deleted: false,
            note: None,
        })
        .collect();
    // Differentials go first, each newest first: a prune killed half way never leaves one
    // without its base.
    let mut order: Vec<usize> = (0..report.snapshots.len()).collect();
    order.sort_by_key(|&i| !base_of.contains_key(&report.snapshots[i].tag));
    for i in order {
        // A differential that is still there (its deletion failed) keeps its base.
        let needed = report
            .snapshots
            .iter()
            .find(|s| !s.deleted && base_of.get(&s.tag) == Some(&report.snapshots[i].tag))
            .map(|s| s.tag.clone());
        let entry = &mut report.snapshots[i];
        let local_copy = on_local.get(&entry.tag);
        if !entry.keep && !dry_run {
            if let Some(differential) = needed {
                entry.note = Some(format!(
                    "kept: the base of {differential}, which could not be deleted"
                ));
                continue;
            }
            let mut ok = true;
            if let Some(local) = local_copy
                && let Err(e) = delete_local(&local.path)
            {
                report.error.get_or_insert(e);
                ok = false;
            }
            if ok && entry.remote {
                if remote_failed {
                    ok = false;
                } else {
                    match remote.expect("listed").delete(&entry.tag) {
                        Ok(note) => entry.note = note,
                        Err(e) => {
                            // A dead remote costs one error, not one per snapshot.
                            report.error.get_or_insert(e);
                            remote_failed = true;
                            ok = false;
                        }
                    }
                }
            }
            entry.deleted = ok;
            if ok {
                crate::failpoint::hit("prune-deleted");
            }
        }
    }
    if !dry_run
        && !remote_failed
        && let Some(remote) = remote
    {
        let gone: HashSet<&Tag> = report
            .snapshots
            .iter()
            .filter(|s| s.deleted)
            .map(|s| &s.tag)
            .collect();
        let keep: HashSet<Tag> = local
            .iter()
            .map(|s| s.tag.clone())
            .filter(|t| !gone.contains(t))
            .collect();
        match remote.delete_abandoned(host, &keep, scope.now) {
            Ok(n) => report.abandoned_deleted = n,
            Err(e) => {
                report.error.get_or_insert(e);
            }
        }
    }
    if !dry_run && report.snapshots.iter().any(|s| s.deleted && s.local) {
        fsutil::sync_dir(&config.local_dir)?;
    }
    Ok(report)
}

/// The archive, then its record: a record left alone lists as nothing.
fn delete_local(archive: &Path) -> Result<()> {
    for path in [archive.to_path_buf(), layout::checksum_path(archive)] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot delete", &path, e)),
        }
    }
    Ok(())
}
