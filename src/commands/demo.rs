//! `backup demo`: the embedded default. Builds a sample app under `.demo/` and takes a snapshot
//! of it as `backup now` does, so the whole pipeline can be seen without any setup. Manual, not
//! scheduled: retention keeps the newest scheduled snapshot of each hour, so a second demo run
//! would delete the first one's, and the README promises a second snapshot beside the first.

use std::path::PathBuf;

use backup_agent::catalog;
use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::run;
use backup_agent::tag::Kind;

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the sample app, its snapshots and its remote
    #[arg(long, default_value = ".demo", value_name = "DIR")]
    pub dir: PathBuf,

    /// Print the outcome and the listing as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args, progress: &dyn Progress) -> Result<u8, Error> {
    let config_path = backup_agent::demo::prepare(&args.dir)?;
    if !args.json {
        outln!("sample app ready: {}", config_path.display());
        let code = super::snapshot::execute(
            Some(&config_path),
            false,
            Kind::Manual,
            None,
            false,
            true,
            progress,
        )?;
        outln!();
        super::list::run(Some(&config_path), &super::list::Args::default())?;
        outln!(
            "\nnext: `backup --config {} list --json`, or run `backup demo` again for another snapshot",
            config_path.display()
        );
        return Ok(code);
    }
    let config = crate::load_config_and_recover_restore(Some(&config_path))?;
    crate::interrupt::clean_up_on_signal(&config.local_dir, "now")?;
    let report = run::snapshot_and_push(&config, Kind::Manual, None, false, progress)?;
    let remote = catalog::open_remote(&config);
    let (snapshots, _) = catalog::list(&config.local_dir, remote.as_ref())?;
    let out = serde_json::json!({
        "config": config_path,
        "tag": report.snapshot.tag,
        "pushed": report.pushed,
        "push_error": report.push_error.as_ref().map(ToString::to_string),
        "damaged": report.damaged,
        "snapshots": snapshots,
    });
    super::print_json(&out);
    Ok(if report.push_error.is_some() {
        exit::REMOTE
    } else {
        exit::OK
    })
}
