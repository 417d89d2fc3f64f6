//! `backup config`: the config as the tool understood it, every section with its defaults filled
//! in and every path resolved. The remote's settings print as the remote parsed them
//! (`RemoteConfig`), which holds where a token comes from, never a token.

use std::path::{Path, PathBuf};

use serde::Serialize;

use backup_agent::config::Config;
use backup_agent::error::Error;
use backup_agent::remote::RemoteConfig;
use backup_agent::retention::Policy;
use backup_agent::schedule::Cadence;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print as JSON instead of TOML
    #[arg(long)]
    pub json: bool,
}

/// The file's own shape (so the output can be pasted back), with every default filled in.
#[derive(Serialize)]
struct Shown<'a> {
    database: Vec<ShownDatabase<'a>>,
    include: Vec<ShownInclude<'a>>,
    local: ShownLocal<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a RemoteConfig>,
    retention: &'a Policy,
    schedule: &'a Cadence,
    snapshot: ShownSnapshot,
    agent: backup_agent::config::AgentSettings,
}

/// `[snapshot]`, its level filled in.
#[derive(Serialize)]
struct ShownSnapshot {
    compression: backup_agent::archive::Compression,
    level: i32,
    full_every: backup_agent::schedule::Interval,
}

#[derive(Serialize)]
struct ShownDatabase<'a> {
    name: &'a str,
    path: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrations: Option<&'a PathBuf>,
}

#[derive(Serialize)]
struct ShownInclude<'a> {
    path: &'a Path,
}

#[derive(Serialize)]
struct ShownLocal<'a> {
    dir: &'a Path,
}

pub fn run(config_path: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config: Config = crate::load_config_and_recover_restore(config_path)?;
    let shown = shown(&config);
    if args.json {
        super::print_json(&shown);
    } else {
        outln!("# resolved from {}", config.file.display());
        out!("{}", toml::to_string(&shown).expect("serializes"));
    }
    crate::ok()
}

/// What `backup config --json` prints.
pub fn json_of(config: &Config) -> serde_json::Value {
    serde_json::to_value(shown(config)).expect("serializes")
}

fn shown(config: &Config) -> Shown<'_> {
    Shown {
        database: config
            .databases
            .iter()
            .map(|d| ShownDatabase {
                name: &d.name,
                path: &d.path,
                migrations: d.migrations.as_ref(),
            })
            .collect(),
        include: config
            .includes
            .iter()
            .map(|p| ShownInclude { path: p })
            .collect(),
        local: ShownLocal {
            dir: &config.local_dir,
        },
        remote: config.remote.as_ref(),
        retention: &config.retention,
        schedule: &config.schedule,
        snapshot: ShownSnapshot {
            compression: config.snapshot.compression,
            level: config.snapshot.level(),
            full_every: config.snapshot.full_every,
        },
        agent: config.agent,
    }
}
