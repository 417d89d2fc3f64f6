//! `backup`: parse the command line, resolve the config, call the library, render the result,
//! and decide the exit code (`exit`, README "Exit codes").

/// `println!` that never panics: a reader that went away (`backup list | head`) ends the output
/// quietly and the command keeps its own exit code (see [`term::write_stdout`]).
macro_rules! outln {
    () => {
        $crate::term::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::term::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `errln!` that never panics: a closed stderr (`backup now 2>&1 | true`) drops the message
/// and the command keeps its own exit code.
macro_rules! errln {
    () => {
        $crate::term::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::term::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `err!` that never panics; see [`errln!`].
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::term::write_stderr(format_args!($($arg)*))
    };
}

/// `print!` that never panics; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::term::write_stdout(format_args!($($arg)*))
    };
}

mod commands;
mod exit;
mod help_examples;
mod interrupt;
mod json_error;
mod logging;
mod mcp;
mod term;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use backup_agent::error::Error;

/// Keeps the SQLite state of local-first apps safe off the machine.
#[derive(Debug, Parser)]
#[command(
    name = "backup",
    version,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 done; 1 failed (nothing new stored, live data untouched); 2 bad command \
line or config; 3 restore or rollback not confirmed (use --yes); 4 snapshot safe locally but the remote failed; \
5 another run holds the lock; `backup status`: 6 stale, 7 the last run failed; 130/143 `now`/`run` \
interrupted by Ctrl-C/SIGTERM (its temporary files removed)."
)]
struct Cli {
    /// Config file [default: $BACKUP_CONFIG, else ./backup.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Never draw progress, even on a terminal
    #[arg(long, global = true)]
    no_progress: bool,

    /// Log each step to stderr (-v), with detail (-vv), or everything (-vvv); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take a manual snapshot now (before a risky change) and push it
    Now(commands::snapshot::NowArgs),
    /// Take a scheduled snapshot and push every snapshot the remote lacks (for cron)
    Run(commands::snapshot::Args),
    /// List snapshots, local and remote, newest first
    List(commands::list::Args),
    /// A snapshot's manifest in words: databases, row counts, files, check findings, where it is
    Show(commands::show::Args),
    /// What changed between two snapshots (or one and the live data): rows per table, files
    Diff(commands::diff::Args),
    /// How many snapshots there are and their size, local and remote, per host and kind; growth
    Stats(commands::stats::Args),
    /// Print the resolved config
    Config(commands::show_config::Args),
    /// Apply tiered retention locally and remotely, saying why each kept snapshot is kept
    Prune(commands::prune::Args),
    /// Restore a snapshot: checked in staging first, live data set aside, never deleted
    Restore(commands::restore::RestoreArgs),
    /// Restore drill: every restore check in a temporary folder; live data untouched
    Verify(commands::verify::VerifyArgs),
    /// Undo the last restore: put the newest pre_restore_<time> folder back
    Rollback(commands::rollback::RollbackArgs),
    /// Try it out: snapshot a sample app database to a local folder remote
    Demo(commands::demo::Args),
    /// Check the remote can take snapshots and mark a folder remote as this machine's; --create makes a missing one
    Init(commands::init::Args),
    /// The GitHub token: store it in the OS keyring, show where it comes from, remove it
    #[command(subcommand)]
    Auth(commands::auth::Command),
    /// Is the last good snapshot inside the cadence window? Exit 0 fresh, 6 stale, 7 failed
    Status(commands::status::Args),
    /// Install, remove or show the job that runs `backup run` on a schedule
    #[command(subcommand)]
    Schedule(commands::schedule::Command),
    /// Check config, databases, folders, remote, token and schedule; say what to fix
    Doctor(commands::doctor::Args),
    /// Serve the tools to an AI agent: a Model Context Protocol server on stdin/stdout
    Mcp,
    /// Print a shell completion script (e.g. `backup completions bash > /etc/bash_completion.d/backup`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `backup man | man -l -`
    Man,
}

fn main() -> ExitCode {
    let parsed = help_examples::add(Cli::command())
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, json_error::requested(&m))));
    let (cli, json) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            json_error::print_usage_error(&e);
            return usage_error(&e);
        }
    };
    logging::init(cli.verbose);
    // Retries and waits are shown to someone at a terminal; logs say them already, cron never.
    if std::io::stderr().is_terminal() && !logging::enabled(cli.verbose) {
        backup_agent::progress::show_notices_with(term::show_notice);
    }
    // Log lines and a redrawn bar would garble each other: logging wins.
    let progress = term::progress(cli.no_progress || logging::enabled(cli.verbose));
    let config_path = cli.config.as_deref();
    let result = match cli.command {
        Command::Now(args) => {
            commands::snapshot::run(config_path, &args.common, true, args.diff, &*progress)
        }
        Command::Run(args) => commands::snapshot::run(config_path, &args, false, false, &*progress),
        Command::List(args) => commands::list::run(config_path, &args),
        Command::Show(args) => commands::show::run(config_path, &args, &*progress),
        Command::Diff(args) => commands::diff::run(config_path, &args, &*progress),
        Command::Stats(args) => commands::stats::run(config_path, &args),
        Command::Config(args) => commands::show_config::run(config_path, &args),
        Command::Prune(args) => commands::prune::run(config_path, &args),
        Command::Restore(args) => commands::restore::restore(config_path, &args, &*progress),
        Command::Verify(args) => commands::verify::verify(config_path, &args, &*progress),
        Command::Rollback(args) => commands::rollback::rollback(config_path, &args),
        Command::Demo(args) => commands::demo::run(&args, &*progress),
        Command::Init(args) => commands::init::run(config_path, &args),
        Command::Auth(command) => commands::auth::run(config_path, &command),
        Command::Status(args) => commands::status::run(config_path, &args),
        Command::Schedule(command) => commands::schedule::run(config_path, &command),
        Command::Doctor(args) => commands::doctor::run(config_path, &args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "backup", &mut script);
            term::write_stdout_bytes(&script);
            ok()
        }
        Command::Man => commands::man::run(help_examples::add(Cli::command())),
        Command::Mcp => mcp::run(config_path),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A bar left ticking would redraw over the error.
            progress.done();
            term::clear_progress_line();
            errln!("backup: error: {e}");
            if json {
                json_error::print_error(&e);
            }
            ExitCode::from(exit::of_error(&e))
        }
    }
}

/// Help, version and usage mistakes print as clap renders them: a mistake keeps what clap adds
/// below its first line (the missing argument's name, "a similar subcommand exists", the
/// possible values, the usage line), which is the help someone at the keyboard needs. Runtime
/// errors stay one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        });
    }
    // Prefixed like every other error, so cron mail says which program complained.
    err!("backup: {}", e.render());
    ExitCode::from(exit::USAGE)
}

/// Loads the config a command runs against, and first finishes or undoes a restore that was
/// interrupted (a crash mid-swap), so every command sees whole data.
fn load_config_and_recover_restore(
    path: Option<&std::path::Path>,
) -> Result<backup_agent::config::Config, Error> {
    let (config, notes) = load_config_recovering(path)?;
    for note in notes {
        errln!("backup: {note}");
    }
    Ok(config)
}

/// [`load_config_and_recover_restore`], with what the recovery did as lines (`note: …`) for the
/// caller to say.
fn load_config_recovering(
    path: Option<&std::path::Path>,
) -> Result<(backup_agent::config::Config, Vec<String>), Error> {
    let path = backup_agent::config::Config::locate(path)?;
    let config = backup_agent::config::Config::load(&path)?;
    let mut notes = Vec::new();
    if let Some(done) = backup_agent::restore::recover_interrupted(&config)? {
        notes.push(format!(
            "note: an interrupted {} was {}",
            done.operation,
            if done.undone {
                "undone: the live data is as it was before it"
            } else {
                "completed"
            }
        ));
        notes.extend(done.problems.iter().map(|p| format!("note: {p}")));
    }
    Ok((config, notes))
}

/// The exit code for a command that finished its own work.
fn ok() -> Result<u8, Error> {
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
