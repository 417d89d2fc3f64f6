//! `backup init [--create]`: checks the remote can take snapshots, and makes it when asked. A
//! folder remote is marked as this machine's here, and run on purpose, `init` adopts a folder
//! whose marker is missing (a new, empty disk) or another remote's.

use std::path::Path;

use backup_agent::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Make a missing remote: the folder, or a private GitHub repository with a first commit
    #[arg(long)]
    pub create: bool,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config_path: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config_path)?;
    let remote = backup_agent::catalog::open_remote(&config).ok_or_else(|| {
        Error::Config(format!(
            "{} has no [remote]; add one (see README \"Configuration\") and run `backup init` again",
            config.file.display()
        ))
    })?;
    let readiness = remote.init(args.create)?;
    if args.json {
        super::print_json(&readiness);
    } else {
        outln!("{}", readiness.detail);
    }
    crate::ok()
}
