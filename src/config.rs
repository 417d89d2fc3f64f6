//! `backup.toml`: lookup, parsing (unknown keys refused with their line), validation, and the
//! resolved [`Config`] every command receives. The `[remote]` table is read by the remote its
//! `type` names ([`RemoteConfig::parse_section`]); this module only embeds the result.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{Compression, Packing};
use crate::error::{Error, Result};
use crate::fsutil::{clean_path, comparable_path};
use crate::remote::{RemoteConfig, SettingsError};
use crate::retention::Policy;
use crate::schedule::Cadence;
use crate::schedule::Interval;

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
    /// Read by the remote it names ([`RemoteConfig::parse_section`]).
    remote: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    retention: Policy,
    #[serde(default)]
    schedule: Cadence,
    #[serde(default)]
    snapshot: SnapshotSettings,
    #[serde(default)]
    agent: AgentSettings,
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

/// The resolved configuration: absolute paths, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The config file this came from.
    pub file: PathBuf,
    /// That file where it really is (links resolved): a restore never sets it aside.
    #[serde(skip)]
    pub file_resolved: PathBuf,
    /// Folder relative paths were resolved against (the config file's folder).
    pub base_dir: PathBuf,
    pub databases: Vec<DatabaseConfig>,
    pub includes: Vec<PathBuf>,
    /// Local snapshot folder.
    pub local_dir: PathBuf,
    pub remote: Option<RemoteConfig>,
    /// `[retention]`, with its defaults filled in.
    pub retention: Policy,
    /// `[schedule]`: how often `backup run` is expected, and the grace before it is stale.
    pub schedule: Cadence,
    /// `[snapshot]`: how archives are compressed, and how often a scheduled run takes a full.
    pub snapshot: SnapshotSettings,
    /// `[agent]`: what an agent may do through `backup mcp`.
    pub agent: AgentSettings,
}

/// `[agent]`: what a program calling `backup mcp` may do beyond reading and snapshotting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// Whether `backup_restore` and `backup_rollback` may replace live data (each call must also
    /// say `confirm: true`). Off: an agent can look, dry-run and restore into a folder of its
    /// own, but the live data changes only by a person's hand.
    pub allow_restore: bool,
}

/// `[snapshot]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSettings {
    pub compression: Compression,
    /// The compressor's level; `None` for its default here.
    pub level: Option<i32>,
    /// A scheduled run stores only the pages that changed since the last full snapshot when that
    /// full is younger than this; `0s` makes every snapshot a full.
    pub full_every: Interval,
}

impl Default for SnapshotSettings {
    fn default() -> SnapshotSettings {
        let packing = Packing::default();
        SnapshotSettings {
            compression: packing.compression,
            level: packing.level,
            full_every: Interval::from_secs(86_400),
        }
    }
}

impl SnapshotSettings {
    /// How archives are compressed.
    pub fn packing(&self) -> Packing {
        Packing {
            compression: self.compression,
            level: self.level,
        }
    }

    /// The compressor's level in use.
    pub fn level(&self) -> i32 {
        self.packing().level()
    }
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
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
        raw.snapshot.packing().check().map_err(bad)?;
        crate::schedule::check_period(raw.schedule.every).map_err(|msg| {
            bad(format!(
                "[schedule] every = \"{}\" {msg}",
                raw.schedule.every
            ))
        })?;
        let includes = raw.include.iter().map(|i| resolve(&i.path)).collect();
        let local_dir = resolve(
            raw.local
                .and_then(|l| l.dir)
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_LOCAL_DIR)),
        );
        let remote = match raw.remote {
            None => None,
            Some(_) => RemoteConfig::parse_section(text, &resolve).map_err(|e| match e {
                SettingsError::Toml(e) => toml_error(text, file, &e),
                SettingsError::Invalid(msg) => bad(msg),
            })?,
        };
        let config = Config {
            file: file.to_path_buf(),
            file_resolved: crate::fsutil::comparable_path(file),
            base_dir,
            databases,
            includes,
            local_dir,
            remote,
            retention: raw.retention,
            schedule: raw.schedule,
            snapshot: raw.snapshot,
            agent: raw.agent,
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

/// A TOML error in `text` (read from `file`), with the line it points at.
fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> Error {
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
            matches!(&c.remote, Some(RemoteConfig::Dir(dir)) if dir.path == Path::new("/mnt/nas/app-backups"))
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
    fn a_bad_api_url_is_refused_without_its_secrets() {
        for url in [
            "ftp://user:s3cret@ghe.example.com/api?token=s3cret",
            "https://user:s3cret@[bad/api?token=s3cret",
        ] {
            let err = parse(&format!(
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"github\"\nrepo = \"o/r\"\napi_url = \"{url}\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains("api_url"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn each_remote_reads_its_own_table_with_paths_resolved() {
        let c = parse(
            "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"github\"\nrepo = \"o/r\"\ntoken_file = \"secrets/token\"\napi_url = \"https://ghe.example.com/api/v3/\"\n",
        )
        .unwrap();
        let Some(RemoteConfig::Github(github)) = &c.remote else {
            panic!("{:?}", c.remote);
        };
        assert_eq!(github.repo, "o/r");
        assert_eq!(github.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(
            github.token_file.as_deref(),
            Some(Path::new("/srv/app/secrets/token"))
        );
        let c = parse("[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\npath = \"../nas\"\ntype = \"dir\"\n")
            .unwrap();
        assert_eq!(
            c.remote.as_ref().and_then(RemoteConfig::folder),
            Some(Path::new("/srv/nas"))
        );
    }

    #[test]
    fn a_remote_key_no_type_takes_is_named_with_its_line() {
        for kind in ["dir", "github"] {
            let err = parse(&format!(
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"{kind}\"\nrepo = \"o/r\"\npath = \"r\"\npth = \"x\"\n"
            ))
            .unwrap_err()
            .to_string();
            // `repo` or `path` belongs to the other type; that is said first.
            assert!(err.contains("does not apply"), "{err}");
            let only_own = if kind == "dir" {
                "path = \"r\""
            } else {
                "repo = \"o/r\""
            };
            let err = parse(&format!(
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"{kind}\"\n{only_own}\npth = \"x\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("line 7 (`pth = \"x\"`): unknown field `pth`"),
                "{err}"
            );
        }
        let err = parse("[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"github\"\nrepo = \"o/r\"\nstall_secs = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7 (`stall_secs = \"soon\"`)"), "{err}");
        for (text, expected) in [
            ("[remote]\npath = \"r\"\n", "missing field `type`"),
            ("[remote]\ntype = \"dir\"\n", "needs `path`"),
            (
                "[remote]\ntype = \"github\"\nrepo = \"o/r\"\nstall_secs = 0\n",
                "stall_secs = 0",
            ),
            (
                "[remote]\ntype = \"ftp\"\n",
                "supported: \"dir\", \"github\", \"s3\"",
            ),
            (
                "[remote]\ntype = \"github\"\npath = \"r\"\n",
                "key `path` does not apply to type = \"github\" (it is a key of type = \"dir\")",
            ),
        ] {
            let err = parse(&format!(
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n{text}"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
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
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"ftp\"\n",
                "unknown",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"dir\"\npath = \"r\"\nrepo = \"a/b\"\n",
                "`repo` does not apply",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[remote]\ntype = \"github\"\nrepo = \"nope\"\n",
                "owner/name",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[retention]\nhourly = -1\n",
                "line 5 (`hourly = -1`): -1 is not a count",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[retention]\nyearly = \"forever\"\n",
                "`forever` is not a count",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[retention]\nminutely = 5\n",
                "unknown field `minutely`",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[schedule]\nevery = \"hourly\"\n",
                "line 5 (`every = \"hourly\"`): `hourly` is not a duration",
            ),
            (
                "[[database]]\nname = \"a\"\npath = \"a.db\"\n[schedule]\nevery = \"45m\"\n",
                "[schedule] every = \"45m\" must divide an hour or a day: use 30m or 1h",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }
}
