//! `backup doctor [--json]`: one line per check, with what to do when it fails. Exit 0 when
//! nothing failed (warnings allowed), 1 when something did, 2 when the config itself is bad.

use std::path::Path;

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::health::{self, Check, Verdict};
use backup_agent::schedule::Places;

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the checks as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

pub fn run(config_path: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let (checks, code) = match crate::load_config_and_recover_restore(config_path) {
        Ok(config) => {
            let places = Places::from_env().ok();
            let checks = health::doctor(&config, places.as_ref());
            let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
            (checks, if failed { exit::FAILED } else { exit::OK })
        }
        // A config that does not load is the one thing to fix first.
        Err(e) => (
            vec![Check {
                name: "config".into(),
                verdict: Verdict::Fail,
                detail: e.to_string(),
                fix: None,
            }],
            exit::of_error(&e),
        ),
    };
    if args.json {
        let report = Report {
            ok: code == exit::OK,
            checks: &checks,
        };
        super::print_json(&report);
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &checks {
            let verdict = match check.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            let fix = check
                .fix
                .as_ref()
                .map(|f| format!(" -> {f}"))
                .unwrap_or_default();
            outln!("{verdict}  {:<width$}  {}{fix}", check.name, check.detail);
        }
    }
    Ok(code)
}
