//! `backup list`.

use std::path::Path;

use backup_agent::catalog;
use backup_agent::error::{Error, exit};
use backup_agent::fsutil::human_bytes;
use backup_agent::remote::Remote;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the listing as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config = crate::load_config(config)?;
    let remote = config.remote.as_ref().map(Remote::from_config);
    let (entries, remote_error) = catalog::list(&config.local_dir, remote.as_ref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).expect("serializes")
        );
    } else if entries.is_empty() {
        println!("no snapshots yet; take one with `backup now`");
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.tag.to_string(),
                    e.time.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                    e.kind.to_string(),
                    e.host.clone(),
                    human_bytes(e.size),
                    e.location.as_str().to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::term::table(
                &["TAG", "TIME (UTC)", "KIND", "HOST", "SIZE", "WHERE"],
                &rows
            )
        );
    }
    match remote_error {
        None => Ok(exit::OK),
        Some(e) => {
            eprintln!("backup: error: cannot list the remote, showing local snapshots only: {e}");
            Ok(exit::REMOTE)
        }
    }
}
