//! `backup.toml`: lookup, parsing (unknown keys refused with their line), validation, and the
//! resolved [`Config`] every command receives.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{clean_path, comparable_path};
use crate::retention::Policy;
use crate::schedule::Cadence;

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
    #[serde(default)]
    retention: Policy,
    #[serde(default)]
    schedule: Cadence,
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
    repo: Option<String>,
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    max_asset_bytes: Option<u64>,
    retry_budget_secs: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    stall_secs: Option<u64>,
    reply_timeout_secs: Option<u64>,
    answer_timeout_secs: Option<u64>,
    push_deadline_secs: Option<u64>,
}

impl RawRemote {
    /// A key that belongs to another remote type than `kind`.
    fn foreign_key(&self, kind: &str) -> Option<&'static str> {
        let github = [
            ("repo", self.repo.is_some()),
            ("api_url", self.api_url.is_some()),
            ("token_file", self.token_file.is_some()),
            ("max_asset_bytes", self.max_asset_bytes.is_some()),
            ("retry_budget_secs", self.retry_budget_secs.is_some()),
            ("retry_max_delay_ms", self.retry_max_delay_ms.is_some()),
            ("stall_secs", self.stall_secs.is_some()),
            ("reply_timeout_secs", self.reply_timeout_secs.is_some()),
            ("answer_timeout_secs", self.answer_timeout_secs.is_some()),
            ("push_deadline_secs", self.push_deadline_secs.is_some()),
        ];
        match kind {
            "dir" => github.into_iter().find(|(_, set)| *set).map(|(k, _)| k),
            _ => self.path.is_some().then_some("path"),
        }
    }
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
    /// GitHub Releases in a private repository: one release per snapshot.
    Github(GithubConfig),
}

/// `[remote] type = "github"`.
#[derive(Clone, Debug, Serialize)]
pub struct GithubConfig {
    /// `owner/name`.
    pub repo: String,
    /// REST API root: `https://api.github.com`, or a GitHub Enterprise Server's `/api/v3`.
    pub api_url: String,
    /// A file holding the token (refused unless mode 0600).
    pub token_file: Option<PathBuf>,
    /// Largest asset GitHub accepts; bigger archives are split into parts.
    pub max_asset_bytes: u64,
    /// Real elapsed time one operation may keep trying (attempts and waits included).
    pub retry_budget_secs: u64,
    /// Longest single wait between retries, whatever the server asks for.
    pub retry_max_delay_ms: u64,
    /// An upload or download with no bytes moved for this long has stalled (and is retried);
    /// one that moves is never cut off.
    pub stall_secs: u64,
    /// Connecting and answering, for each JSON API call.
    pub reply_timeout_secs: u64,
    /// GitHub's answer after the last byte of an upload (it stores the asset first).
    pub answer_timeout_secs: u64,
    /// How long `backup now`/`run` may use GitHub in all; then what is left waits locally.
    pub push_deadline_secs: u64,
}

/// GitHub's per-asset limit: each file must be under 2 GiB.
pub const GITHUB_MAX_ASSET_BYTES: u64 = (2 << 30) - 1;
/// Retrying stops after this long, well inside the hourly cadence.
pub const DEFAULT_RETRY_BUDGET_SECS: u64 = 15 * 60;
/// At most this long between two tries (a reset far away is not waited for blindly).
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 5 * 60 * 1000;
/// No bytes moved for this long: the transfer has stalled.
pub const DEFAULT_STALL_SECS: u64 = 60;
/// A JSON API call's connect and answer time.
pub const DEFAULT_REPLY_TIMEOUT_SECS: u64 = 60;
/// GitHub's answer after an upload's last byte.
pub const DEFAULT_ANSWER_TIMEOUT_SECS: u64 = 10 * 60;
/// A run's time with GitHub: within the hourly cadence, so the next run never finds it locked.
pub const DEFAULT_PUSH_DEADLINE_SECS: u64 = 45 * 60;

impl RemoteConfig {
    /// The remote's folder on this machine, for remotes that are one.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            RemoteConfig::Dir { path } => Some(path),
            RemoteConfig::Github(_) => None,
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
        // A zero timeout would fail every transfer at once.
        let at_least_one = |value: Option<u64>, default: u64, key: &str| match value {
            Some(0) => Err(bad(format!(
                "[remote] {key} = 0 would fail every request at once; give a number of seconds, at least 1"
            ))),
            other => Ok(other.unwrap_or(default)),
        };

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
                kind @ ("dir" | "github") if r.foreign_key(kind).is_some() => {
                    return Err(bad(format!(
                        "[remote] key `{}` does not apply to type = \"{kind}\"; remove it",
                        r.foreign_key(kind).unwrap_or_default()
                    )));
                }
                "dir" => RemoteConfig::Dir {
                    path: resolve(&r.path.ok_or_else(|| {
                        bad("[remote] type = \"dir\" needs `path`, the folder that receives snapshots".into())
                    })?),
                },
                "github" => {
                    let repo = r.repo.clone().ok_or_else(|| {
                        bad("[remote] type = \"github\" needs `repo = \"owner/name\"`, a private repository".into())
                    })?;
                    let valid = repo.split_once('/').is_some_and(|(o, n)| {
                        !o.is_empty()
                            && !n.is_empty()
                            && !n.contains('/')
                            && repo.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
                    });
                    if !valid {
                        return Err(bad(format!(
                            "[remote] repo `{repo}` is not of the form owner/name"
                        )));
                    }
                    let api_url = r
                        .api_url
                        .clone()
                        .unwrap_or_else(|| "https://api.github.com".into())
                        .trim_end_matches('/')
                        .to_string();
                    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
                        return Err(bad(format!(
                            "[remote] api_url `{api_url}` must start with https://"
                        )));
                    }
                    RemoteConfig::Github(GithubConfig {
                        repo,
                        api_url,
                        token_file: r.token_file.as_deref().map(resolve),
                        max_asset_bytes: r
                            .max_asset_bytes
                            .unwrap_or(GITHUB_MAX_ASSET_BYTES)
                            .clamp(1, GITHUB_MAX_ASSET_BYTES),
                        retry_budget_secs: r.retry_budget_secs.unwrap_or(DEFAULT_RETRY_BUDGET_SECS),
                        retry_max_delay_ms: r
                            .retry_max_delay_ms
                            .unwrap_or(DEFAULT_RETRY_MAX_DELAY_MS),
                        stall_secs: at_least_one(r.stall_secs, DEFAULT_STALL_SECS, "stall_secs")?,
                        reply_timeout_secs: at_least_one(
                            r.reply_timeout_secs,
                            DEFAULT_REPLY_TIMEOUT_SECS,
                            "reply_timeout_secs",
                        )?,
                        answer_timeout_secs: at_least_one(
                            r.answer_timeout_secs,
                            DEFAULT_ANSWER_TIMEOUT_SECS,
                            "answer_timeout_secs",
                        )?,
                        push_deadline_secs: at_least_one(
                            r.push_deadline_secs,
                            DEFAULT_PUSH_DEADLINE_SECS,
                            "push_deadline_secs",
                        )?,
                    })
                }
                other => {
                    return Err(bad(format!(
                        "[remote] type `{other}` is unknown; supported: \"dir\", \"github\""
                    )));
                }
            }),
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
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }
}
