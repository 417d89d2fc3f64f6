//! `backup.toml`: lookup, parsing (unknown keys refused with their line), validation, and the
//! resolved [`Config`] every command receives.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{clean_path, comparable_path};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "BACKUP_CONFIG";
/// Config file looked for in the current folder when neither `--config` nor the variable is set.
pub const DEFAULT_CONFIG_FILE: &str = "backup.toml";
/// Default local snapshot folder, relative to the config file's folder.
pub const DEFAULT_LOCAL_DIR: &str = ".data/backups";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: Vec<RawDatabase>,
    #[serde(default)]
    include: Vec<RawInclude>,
    local: Option<RawLocal>,
    remote: Option<RawRemote>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    name: String,
    path: PathBuf,
    migrations: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInclude {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    dir: Option<PathBuf>,
}

// A flat struct rather than a tagged enum: serde loses the line of an unknown key inside an
// internally tagged enum, and the line is what the user needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

/// The resolved configuration: absolute paths, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The config file this came from.
    pub file: PathBuf,
    /// Folder relative paths were resolved against (the config file's folder).
    pub base_dir: PathBuf,
    pub databases: Vec<DatabaseConfig>,
    pub includes: Vec<PathBuf>,
    /// Local snapshot folder.
    pub local_dir: PathBuf,
    pub remote: Option<RemoteConfig>,
}

/// One `[[database]]`.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseConfig {
    /// Logical name, `[a-z0-9_-]+`, unique.
    pub name: String,
    /// Absolute path of the live database.
    pub path: PathBuf,
    /// Folder of `NNNN_description.sql` migrations, used by restore.
    pub migrations: Option<PathBuf>,
}

/// Where snapshots go off the machine.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RemoteConfig {
    /// A folder, typically on a NAS or a cloud-synced drive.
    Dir { path: PathBuf },
}

impl RemoteConfig {
    /// The remote's folder on this machine, for remotes that are one.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            RemoteConfig::Dir { path } => Some(path),
        }
    }
}

impl Config {
    /// Finds the config file: `explicit` (from `--config`), else `$BACKUP_CONFIG`, else
    /// `./backup.toml`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = explicit {
            return Ok(path.to_path_buf());
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        Ok(PathBuf::from(DEFAULT_CONFIG_FILE))
    }

    /// Reads and resolves the config file at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] when the file is missing, not TOML, has an unknown key (named with its
    /// line), or fails validation.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "; create it (see README \"Configuration\"), pass --config FILE or set {CONFIG_ENV}, or try `backup demo`"
                )
            } else {
                String::new()
            };
            Error::Config(format!(
                "cannot read config file {}: {e}{hint}",
                path.display()
            ))
        })?;
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::Config(format!("cannot resolve {}: {e}", path.display())))?;
        Config::parse(&text, &absolute)
    }

    /// Parses config text as if it were read from `file` (an absolute path).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            let hint = "see README \"Configuration\" for the keys";
            match e.span() {
                Some(span) => {
                    let start = span.start.min(text.len());
                    let line = 1 + text[..start].matches('\n').count();
                    let source = text.lines().nth(line - 1).unwrap_or("").trim();
                    Error::Config(format!(
                        "{} line {line} (`{source}`): {message}; {hint}",
                        file.display()
                    ))
                }
                None => Error::Config(format!("{}: {message}; {hint}", file.display())),
            }
        })?;
        let base_dir = clean_path(file.parent().unwrap_or(Path::new("/")));
        let resolve = |p: &Path| resolve_path(&base_dir, p);
        let bad = |msg: String| Error::Config(format!("{}: {msg}", file.display()));

        if raw.database.is_empty() {
            return Err(bad(
                "no [[database]] entry; add one with `name` and `path`".to_string()
            ));
        }
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        let mut databases = Vec::new();
        for db in raw.database {
            let valid_name = !db.name.is_empty()
                && db.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid_name {
                return Err(bad(format!(
                    "database name `{}` must be non-empty and use only a-z, 0-9, `_` and `-`",
                    db.name
                )));
            }
            if !names.insert(db.name.clone()) {
                return Err(bad(format!(
                    "database name `{}` is used twice; names must be unique",
                    db.name
                )));
            }
            let path = resolve(&db.path);
            if !paths.insert(path.clone()) {
                return Err(bad(format!(
                    "database path {} is listed twice",
                    path.display()
                )));
            }
            databases.push(DatabaseConfig {
                name: db.name,
                path,
                migrations: db.migrations.as_deref().map(resolve),
            });
        }
        let includes = raw.include.iter().map(|i| resolve(&i.path)).collect();
        let local_dir = resolve(
            raw.local
                .and_then(|l| l.dir)
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_LOCAL_DIR)),
        );
        let remote = match raw.remote {
            None => None,
            Some(r) => Some(match r.kind.as_str() {
                "dir" => RemoteConfig::Dir {
                    path: resolve(&r.path.ok_or_else(|| {
                        bad("[remote] type = \"dir\" needs `path`, the folder that receives snapshots".into())
                    })?),
                },
                "github" => {
                    return Err(bad(
                        "[remote] type = \"github\" is not available in this version yet; use type = \"dir\"".into(),
                    ));
                }
                other => {
                    return Err(bad(format!(
                        "[remote] type `{other}` is unknown; supported: \"dir\""
                    )));
                }
            }),
        };
        let config = Config {
            file: file.to_path_buf(),
            base_dir,
            databases,
            includes,
            local_dir,
            remote,
        };
        config.check_folders()?;
        Ok(config)
    }

    /// Refuses a snapshot folder that is a source database's folder (a restore or clean-up
    /// there would touch live data), and a remote that is the local folder (nothing would leave
    /// the machine).
    fn check_folders(&self) -> Result<()> {
        let local = comparable_path(&self.local_dir);
        let remote = self
            .remote
            .as_ref()
            .and_then(RemoteConfig::folder)
            .map(comparable_path);
        for db in &self.databases {
            let db_dir = comparable_path(db.path.parent().unwrap_or(Path::new("/")));
            for (label, dir) in [
                ("[local] dir", Some(&local)),
                ("[remote] path", remote.as_ref()),
            ] {
                if dir == Some(&db_dir) {
                    return Err(Error::Config(format!(
                        "{}: {label} {} is the folder of database `{}`; choose a folder of its own",
                        self.file.display(),
                        db_dir.display(),
                        db.name
                    )));
                }
            }
        }
        for include in &self.includes {
            let include = comparable_path(include);
            for (label, dir) in [
                ("[local] dir", Some(&local)),
                ("[remote] path", remote.as_ref()),
            ] {
                if dir.is_some_and(|dir| include.starts_with(dir)) {
                    return Err(Error::Config(format!(
                        "{}: include {} is inside {label}; snapshots cannot include themselves, list the app's own folders",
                        self.file.display(),
                        include.display()
                    )));
                }
            }
        }
        if remote.as_ref() == Some(&local) {
            return Err(Error::Config(format!(
                "{}: [remote] path is the same folder as [local] dir ({}); the remote must be another place, ideally another disk",
                self.file.display(),
                local.display()
            )));
        }
        Ok(())
    }

    /// `path` as the user would write it in this config: relative to the config's folder when
    /// inside it, else absolute.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.base_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    let expanded = match path.strip_prefix("~") {
        Ok(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => path.to_path_buf(),
        },
        Err(_) => path.to_path_buf(),
    };
    clean_path(&base.join(expanded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/srv/app/backup.toml"))
    }

    #[test]
    fn resolves_relative_paths_against_the_config_folder() {
        let c = parse(
            r#"
[[database]]
name = "tasks"
path = ".data/db/tasks.db"
migrations = "migrations/tasks"
[[include]]
path = ".data/queue"
[remote]
type = "dir"
path = "/mnt/nas/app-backups"
"#,
        )
        .unwrap();
        assert_eq!(c.databases[0].path, Path::new("/srv/app/.data/db/tasks.db"));
        assert_eq!(
            c.databases[0].migrations.as_deref(),
            Some(Path::new("/srv/app/migrations/tasks"))
        );
        assert_eq!(c.includes[0], Path::new("/srv/app/.data/queue"));
        assert_eq!(c.local_dir, Path::new("/srv/app/.data/backups"));
        assert!(
            matches!(&c.remote, Some(RemoteConfig::Dir { path }) if path == Path::new("/mnt/nas/app-backups"))
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[[database]]\nname = \"a\"\npath = \"a.db\"\n\n[local]\ndri = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("dri"), "{err}");
    }

    #[test]
    fn refuses_bad_names_duplicates_and_shared_folders() {
        let cases = [
            ("[[database]]\nname = \"Tasks\"\npath = \"a.db\"\n", "a-z"),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[[database]]\nname = \"a\"\npath = \"b.db\"\n",
                "twice",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"db/a.db\"\n[local]\ndir = \"db\"\n",
                "folder of database",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[local]\ndir = \"x\"\n[remote]\ntype = \"dir\"\npath = \"x/\"\n",
                "same folder",
            ),
            ("", "no [[database]]"),
            (
                "[[database]]\nname = \"a\"\npath = \"db/a.db\"\n[local]\ndir = \"b\"\n[[include]]\npath = \"b/old\"\n",
                "cannot include themselves",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"s3\"\n",
                "unknown",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }
}
