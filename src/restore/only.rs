//! `restore --only NAME…`: which databases and includes a partial restore swaps, by the names
//! the config gives them (a `[[database]]`'s `name`, an `[[include]]`'s `path`). The rest of
//! the live data is neither compared, set aside nor replaced.

use std::path::{Path, PathBuf};

use super::{Prepared, db_refused};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;

/// What `--only` names.
#[derive(Clone, Debug)]
pub(super) struct Only {
    /// Database names.
    pub(super) databases: Vec<String>,
    /// Include roots, as the config resolved them.
    pub(super) includes: Vec<PathBuf>,
    /// The names as given, for messages.
    pub(super) names: Vec<String>,
}

impl Only {
    /// Whether the live file `path` lies in an include this selection names.
    pub(super) fn covers_file(&self, path: &Path) -> bool {
        under_any(path, &self.includes)
    }
}

/// Resolves `names` against the config; `None` for a whole restore (no names).
///
/// # Errors
/// [`Error::Config`] for a name that is neither a database nor an include, listing the valid ones.
pub(super) fn select(config: &Config, names: &[String]) -> Result<Option<Only>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut only = Only {
        databases: Vec::new(),
        includes: Vec::new(),
        names: Vec::new(),
    };
    for name in names {
        let database = config.databases.iter().find(|d| &d.name == name);
        let include = include_named(config, name);
        if database.is_none() && include.is_none() {
            return Err(Error::Config(format!(
                "--only `{name}` is neither a database nor an include of the config; give one of: {}",
                valid_names(config)
            )));
        }
        if let Some(db) = database
            && !only.databases.contains(&db.name)
        {
            only.databases.push(db.name.clone());
        }
        if let Some(root) = include
            && !only.includes.contains(root)
        {
            only.includes.push(root.clone());
        }
        if !only.names.contains(name) {
            only.names.push(name.clone());
        }
    }
    Ok(Some(only))
}

/// The include `name` means: its path as written in the config (relative to the config's
/// folder), or absolute.
fn include_named<'a>(config: &'a Config, name: &str) -> Option<&'a PathBuf> {
    let wanted = fsutil::clean_path(&config.base_dir.join(name));
    let wanted = wanted.as_path();
    config
        .includes
        .iter()
        .find(|root| root.as_path() == wanted || config.display_path(root) == name)
}

/// Every name `--only` takes, for the refusal of one it does not.
fn valid_names(config: &Config) -> String {
    let databases = config.databases.iter().map(|d| d.name.clone());
    let includes = config.includes.iter().map(|root| config.display_path(root));
    let mut text: Vec<String> = databases
        .map(|n| format!("{n} (database)"))
        .chain(includes.map(|p| format!("{p} (include)")))
        .collect();
    if text.is_empty() {
        text.push("none: the config names no database or include".into());
    }
    text.join(", ")
}

/// Narrows `prepared` to what `only` names: the other databases and included files stay staged
/// and are removed with the staging folder, never put in place.
///
/// # Errors
/// When the snapshot holds no database of a name `only` gives.
pub(super) fn narrow(prepared: &mut Prepared, only: &Only) -> Result<()> {
    for name in &only.databases {
        if !prepared.databases.iter().any(|db| &db.name == name) {
            return Err(db_refused(format!(
                "snapshot {} holds no database `{name}`; `backup list` shows other snapshots",
                prepared.tag
            )));
        }
    }
    let (databases, db_targets) = std::mem::take(&mut prepared.databases)
        .into_iter()
        .zip(std::mem::take(&mut prepared.db_targets))
        .filter(|(db, _)| only.databases.contains(&db.name))
        .unzip();
    (prepared.databases, prepared.db_targets) = (databases, db_targets);
    prepared
        .files
        .retain(|file| under_any(&file.live, &only.includes));
    Ok(())
}

fn under_any(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}
