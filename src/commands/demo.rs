//! `backup demo`: the embedded default. Builds a sample app under `.demo/` and runs the scheduled
//! job on it, so the whole pipeline can be seen without any setup.

use std::path::PathBuf;

use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::tag::Kind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the sample app, its snapshots and its remote
    #[arg(long, default_value = ".demo", value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: &Args, progress: &dyn Progress) -> Result<u8, Error> {
    let config = backup_agent::demo::prepare(&args.dir)?;
    println!("sample app ready: {}", config.display());
    let code = super::snapshot::execute(Some(&config), false, Kind::Scheduled, true, progress)?;
    println!();
    super::list::run(Some(&config), &super::list::Args { json: false })?;
    println!(
        "\nnext: `backup --config {} list --json`, or run `backup demo` again for another snapshot",
        config.display()
    );
    Ok(code)
}
