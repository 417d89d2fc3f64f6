//! `backup list`.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use backup_agent::catalog::{self, ListEntry, ListFilter, Location, RangeEnd};
use backup_agent::config::Config;
use backup_agent::error::Error;
use backup_agent::retention::{self, Candidate, Decision};
use backup_agent::tag::{Kind, Tag};
use backup_agent::units::{count, human_bytes};

use crate::exit;

#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Print the listing as JSON
    #[arg(long)]
    pub json: bool,

    /// Say why retention keeps each snapshot (or that the next prune deletes it)
    #[arg(long)]
    pub explain: bool,

    /// Only this host's snapshots: a host name, or a HOST as the listing shows it
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Only snapshots of this kind
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<KindArg>,

    /// Only snapshots taken at or after: a date (2026-11-30), an RFC 3339 time, or how long ago
    /// (3d, 12h)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Only snapshots taken at or before: a date (its whole day), an RFC 3339 time, or how long
    /// ago (3d, 12h)
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,

    /// Only snapshots whose note holds TEXT (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,

    /// Every column whole (the full tag, the host, the note) instead of fitting 80 columns
    #[arg(long)]
    pub wide: bool,
}

/// `--kind`: how a snapshot was made.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KindArg {
    /// `backup now`
    Manual,
    /// `backup run`
    Scheduled,
}

impl From<KindArg> for Kind {
    fn from(kind: KindArg) -> Kind {
        match kind {
            KindArg::Manual => Kind::Manual,
            KindArg::Scheduled => Kind::Scheduled,
        }
    }
}

/// The filters of `args`, their times read against this machine's clock.
pub fn filter_of(args: &Args) -> Result<ListFilter, Error> {
    let now = backup_agent::clock::now();
    let time = |text: &Option<String>, end| {
        text.as_deref()
            .map(|t| catalog::parse_time(t, end, now))
            .transpose()
    };
    let filter = ListFilter {
        host: args.host.clone(),
        kind: args.kind.map(Kind::from),
        since: time(&args.since, RangeEnd::Since)?,
        until: time(&args.until, RangeEnd::Until)?,
        note: args.note.clone(),
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        return Err(Error::Config(format!(
            "--since ({}) is after --until ({}): no snapshot could match; swap them",
            crate::term::time(since),
            crate::term::time(until)
        )));
    }
    Ok(filter)
}

/// A row with its retention verdict.
#[derive(Serialize)]
struct Explained<'a> {
    #[serde(flatten)]
    entry: &'a ListEntry,
    /// `None` for another host's snapshot, which this machine never deletes.
    keep: Option<bool>,
    reasons: Vec<String>,
}

/// The retention plan for the listed snapshots of `scope`'s host, by tag. A snapshot only held
/// locally counts as not pushed yet; so does every local one when the remote could not be read.
fn explain(
    entries: &[ListEntry],
    policy: &retention::Policy,
    remote_known: bool,
    scope: &retention::Scope,
) -> HashMap<Tag, Decision> {
    let candidates: Vec<Candidate> = entries
        .iter()
        .filter(|e| e.host == scope.host)
        .map(|e| Candidate {
            tag: e.tag.clone(),
            unpushed: remote_known && matches!(e.location, Location::Local | Location::Differ)
                || !remote_known && e.location != Location::Remote,
            base: e.base.clone(),
        })
        .collect();
    retention::plan_scoped(candidates, policy, scope)
        .into_iter()
        .map(|d| (d.tag.clone(), d))
        .collect()
}

pub fn run(config: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let filter = filter_of(args)?;
    let config = crate::load_config_and_recover_restore(config)?;
    let listing = listing(&config, args, &filter)?;
    let entries = &listing.entries;
    if args.json {
        super::print_json(&json_of(&listing));
    } else if entries.is_empty() && listing.before_filters > 0 {
        outln!(
            "none of the {} match the filters; `backup list` shows them all",
            count(listing.before_filters, "snapshot", "snapshots")
        );
    } else if entries.is_empty() {
        outln!("no snapshots yet; take one with `backup now`");
    } else {
        let explained: Vec<String> = if args.explain {
            entries.iter().map(|e| listing.verdict(e).2).collect()
        } else {
            Vec::new()
        };
        out!("{}", table(entries, &explained, args.wide));
    }
    let (lines, code) = listing.messages();
    for line in lines {
        errln!("backup: {line}");
    }
    Ok(code)
}

/// `backup list` without its rendering: the rows the filters keep, each with its retention
/// verdict when `--explain` asked for it.
pub struct Listing {
    pub entries: Vec<ListEntry>,
    /// The retention plan of the host's snapshots, by tag (`--explain`).
    plan: Option<HashMap<Tag, Decision>>,
    /// How many snapshots there were before the filters other than `--host`.
    pub before_filters: usize,
    remote_error: Option<Error>,
    /// Said before the rows (a host with no snapshots).
    notes: Vec<String>,
}

/// Lists the snapshots as `args` asks (its `filter`, read by [`filter_of`]).
pub fn listing(config: &Config, args: &Args, filter: &ListFilter) -> Result<Listing, Error> {
    let remote = backup_agent::catalog::open_remote(config);
    if let Some(remote) = &remote {
        remote.answer_quickly();
    }
    let (mut entries, remote_error) = catalog::list(&config.local_dir, remote.as_ref())?;
    let mut notes = Vec::new();
    if let Some(name) = &args.host {
        let host = backup_agent::tag::host_id(name);
        let before: std::collections::BTreeSet<String> =
            entries.iter().map(|e| e.host.clone()).collect();
        entries.retain(|e| e.host == host);
        if entries.is_empty() && !before.is_empty() {
            notes.push(format!(
                "note: no snapshots of host {host}; the hosts with snapshots are {}",
                before.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let remote_known = remote.is_some() && remote_error.is_none();
    let mut scope = retention::Scope::this_host();
    if let Some(name) = &args.host {
        scope.host = backup_agent::tag::host_id(name);
    }
    // Retention weighs every snapshot of the host, so the plan is made before the other filters.
    let plan = args
        .explain
        .then(|| explain(&entries, &config.retention, remote_known, &scope));
    let before_filters = entries.len();
    entries.retain(|e| filter.keeps(e));
    Ok(Listing {
        entries,
        plan,
        before_filters,
        remote_error,
        notes,
    })
}

impl Listing {
    /// Whether retention keeps `e` (`None`: another host's), why, and that in words.
    fn verdict(&self, e: &ListEntry) -> (Option<bool>, Vec<String>, String) {
        match self.plan.as_ref().and_then(|p| p.get(&e.tag)) {
            Some(d) if d.keep => (Some(true), d.reasons.clone(), d.reasons.join(", ")),
            Some(_) => (Some(false), Vec::new(), "deleted by the next prune".into()),
            None => (None, Vec::new(), "another host's: never pruned here".into()),
        }
    }

    /// What the listing says besides its rows (`note: …`, `warning: …`), and its exit code.
    pub fn messages(&self) -> (Vec<String>, u8) {
        let mut lines = self.notes.clone();
        let future: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.future)
            .map(|e| e.tag.to_string())
            .collect();
        if !future.is_empty() {
            lines.push(format!(
                "warning: {} dated in the future, taken under a wrong clock: {}; `latest` skips them, and retention keeps them apart: delete them by hand once you have what you need",
                count(future.len(), "snapshot", "snapshots"),
                future.join(", ")
            ));
        }
        match &self.remote_error {
            None => (lines, exit::OK),
            Some(e) => {
                lines.push(format!(
                    "note: cannot list the remote, so only the local snapshots are shown and whether the remote holds them too is unknown: {e}"
                ));
                (lines, exit::REMOTE)
            }
        }
    }
}

/// What `backup list --json` prints (with `--explain`, each row with its verdict).
pub fn json_of(listing: &Listing) -> serde_json::Value {
    let value = if listing.plan.is_some() {
        let rows: Vec<Explained> = listing
            .entries
            .iter()
            .map(|entry| {
                let (keep, reasons, _) = listing.verdict(entry);
                Explained {
                    entry,
                    keep,
                    reasons,
                }
            })
            .collect();
        serde_json::to_value(rows)
    } else {
        serde_json::to_value(&listing.entries)
    };
    value.expect("serializes")
}

/// The listing for people. By default it fits [`crate::term::TABLE_WIDTH`] columns: a snapshot
/// is named by its ID (the tag's suffix, which `restore` and `verify` take), HOST shows only when
/// the listing holds another machine's snapshots, CHECKS only when a snapshot has findings (or
/// none recorded), and the host, retention and note columns are cut with `…` to fit. `wide` shows the full tag, the host and every cell whole.
fn table(entries: &[ListEntry], explained: &[String], wide: bool) -> String {
    let this_host = backup_agent::tag::this_host();
    let hosts = wide || entries.iter().any(|e| e.host != this_host);
    let notes = entries.iter().any(|e| e.note.is_some());
    let checks = wide || entries.iter().any(|e| e.findings != Some(0));
    let mut header = vec![
        if wide { "TAG" } else { "ID" },
        "TIME",
        "KIND",
        "SIZE",
        "WHERE",
    ];
    let forms = wide || entries.iter().any(|e| e.base.is_some());
    if forms {
        header.push("FORM");
    }
    if checks {
        header.push("CHECKS");
    }
    let mut shrinkable = Vec::new();
    for (shown, name) in [
        (hosts, "HOST"),
        (!explained.is_empty(), "RETENTION"),
        (notes, "NOTE"),
    ] {
        if shown {
            shrinkable.push(header.len());
            header.push(name);
        }
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut row = vec![
                if wide {
                    e.tag.to_string()
                } else {
                    e.tag.suffix().to_string()
                },
                format!(
                    "{}{}",
                    crate::term::time(e.time),
                    if e.future { " (future!)" } else { "" }
                ),
                e.kind.to_string(),
                human_bytes(e.size),
                if e.local_damaged {
                    format!("{} (local damaged)", e.location.as_str())
                } else {
                    e.location.as_str().to_string()
                },
            ];
            if forms {
                let short = |tag: &Tag| {
                    if wide {
                        tag.to_string()
                    } else {
                        tag.suffix().to_string()
                    }
                };
                row.push(match &e.base {
                    None => "full".to_string(),
                    Some(base) if e.base_missing => {
                        format!("diff of {} (base missing!)", short(base))
                    }
                    Some(base) => format!("diff of {}", short(base)),
                });
            }
            if checks {
                row.push(match e.findings {
                    Some(0) => "ok".to_string(),
                    Some(n) => count(n, "finding", "findings"),
                    None => "-".to_string(),
                });
            }
            if hosts {
                row.push(e.host.clone());
            }
            if let Some(verdict) = explained.get(i) {
                row.push(verdict.clone());
            }
            if notes {
                row.push(e.note.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    if wide {
        crate::term::table(&header, &rows)
    } else {
        crate::term::fitted_table(&header, &rows, crate::term::TABLE_WIDTH, &shrinkable)
    }
}
