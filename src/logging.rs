//! Logs through `tracing` to stderr: nothing by default (cron mails any output), one line per
//! step with `-v`, detail with `-vv`, everything of ours with `-vvv`; `RUST_LOG` overrides.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

/// Whether log lines will be written (so progress bars stay off).
pub fn enabled(verbose: u8) -> bool {
    verbose > 0 || std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    // Other crates' debug and trace output is HTTP internals (header maps among them), which
    // could carry the token: only our own code logs below INFO.
    let ours_only_below_info = filter_fn(|meta| {
        *meta.level() <= tracing::Level::INFO
            || meta.target().starts_with("backup_agent")
            || meta.target().starts_with("backup")
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter)
                .with_filter(ours_only_below_info),
        )
        .init();
}
