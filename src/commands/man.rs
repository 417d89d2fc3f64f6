//! `backup man`: the manual page. clap_mangen renders the title, synopsis, description, global
//! options and version; the rest is ours: COMMANDS (named in place, since no `backup-<command>`
//! pages are installed), CONFIGURATION, ENVIRONMENT, EXIT STATUS and EXAMPLES (the `--help`
//! examples, from `help_examples`).

use std::io::Write;

use backup_agent::error::Error;

use crate::exit;

pub fn run(cmd: clap::Command) -> Result<u8, Error> {
    let page =
        render(cmd).map_err(|e| Error::System(format!("cannot print the manual page: {e}")))?;
    crate::term::write_stdout_bytes(&page);
    crate::ok()
}

/// The whole page, in roff.
pub fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    commands(&mut page, &cmd)?;
    configuration(&mut page)?;
    environment(&mut page)?;
    exit_status(&mut page)?;
    examples(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// `text` safe as roff running text: backslashes and hyphens escaped, and a leading `.` or `'`
/// kept from reading as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A `.TP` item: `term` in bold, then its description.
fn item(page: &mut Vec<u8>, term: &str, description: &str) -> std::io::Result<()> {
    writeln!(page, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(description))
}

fn paragraph(page: &mut Vec<u8>, text: &str) -> std::io::Result<()> {
    writeln!(page, ".PP\n{}", roff(text))
}

fn commands(page: &mut Vec<u8>, cmd: &clap::Command) -> std::io::Result<()> {
    writeln!(page, ".SH COMMANDS")?;
    fn each(page: &mut Vec<u8>, cmd: &clap::Command, path: &str) -> std::io::Result<()> {
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let name = format!("{path} {}", sub.get_name());
            let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
            item(page, &name, &about)?;
            each(page, sub, &name)?;
        }
        Ok(())
    }
    each(page, cmd, "backup")?;
    paragraph(
        page,
        "`backup COMMAND --help` shows a command's options and ends with examples.",
    )
}

fn configuration(page: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(page, ".SH CONFIGURATION")?;
    paragraph(
        page,
        "The config file is --config FILE, else $BACKUP_CONFIG, else ./backup.toml. Relative paths \
         resolve against the config file's folder, and ~/ against your home folder. Unknown keys \
         are refused with their line. `backup config` prints the config as the tool understood \
         it, every default filled in.",
    )?;
    for (term, description) in [
        (
            "[[database]] name, path, migrations",
            "One table per SQLite database: its name ([a-z0-9_-]+, unique), its path, and \
             optionally a folder of NNNN_description.sql migrations a restore applies.",
        ),
        (
            "[[include]] path",
            "A file or folder taken into every snapshot as it is.",
        ),
        (
            "[local] dir",
            "The local snapshot folder (default .data/backups).",
        ),
        (
            "[remote] type = \"dir\", path",
            "A folder remote: a NAS, a mounted or cloud-synced drive.",
        ),
        (
            "[remote] type = \"github\", repo",
            "Releases in a private GitHub repository (owner/name); api_url for GitHub Enterprise \
             Server, token_file (mode 0600), and the timeouts `backup config` shows.",
        ),
        (
            "[retention] hourly, daily, weekly, monthly, yearly, manual",
            "How many of each to keep: a number, 0 for none, or \"all\"; by default 24, 7, 4, 12, \
             all and 20.",
        ),
        (
            "[schedule] every, grace",
            "How often `backup run` is expected, and how late it may be before `backup status` \
             calls the backups stale; by default 1h and 30m.",
        ),
        (
            "[agent] allow_restore",
            "Whether an agent using `backup mcp` may restore or roll back in place (each call must \
             also say confirm); false by default, so an agent can only dry-run or restore into a \
             folder of its own.",
        ),
    ] {
        item(page, term, description)?;
    }
    paragraph(
        page,
        "The README's Configuration section describes every key.",
    )
}

fn environment(page: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(page, ".SH ENVIRONMENT")?;
    for (name, description) in [
        (
            backup_agent::config::CONFIG_ENV,
            "The config file, when --config is not given.",
        ),
        (
            "GH_TOKEN, GITHUB_TOKEN",
            "The GitHub token for github.com, looked for before token_file, the OS keyring and \
             `gh auth token`. Never printed.",
        ),
        (
            "GH_ENTERPRISE_TOKEN, GITHUB_ENTERPRISE_TOKEN",
            "The same, for a GitHub Enterprise Server.",
        ),
        (
            "HTTPS_PROXY, HTTP_PROXY, NO_PROXY",
            "The proxy for every request to GitHub.",
        ),
        (
            "SSL_CERT_FILE, SSL_CERT_DIR",
            "Another certificate bundle to trust instead of the OS store.",
        ),
        ("RUST_LOG", "Which log lines go to stderr; overrides -v."),
        (
            "HOME, XDG_CONFIG_HOME",
            "Where `backup schedule install` puts a systemd user timer or a launchd agent.",
        ),
    ] {
        item(page, name, description)?;
    }
    Ok(())
}

fn exit_status(page: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(page, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in [
        (exit::OK, "Done."),
        (
            exit::FAILED,
            "Failed: nothing new was stored, and a refused restore or failed verify changed \
             nothing live; the message says what and why.",
        ),
        (exit::USAGE, "Bad command line or config file."),
        (
            exit::UNCONFIRMED,
            "A restore would set aside live data the snapshot lacks, and nobody confirmed it (no \
             terminal to ask, no --yes); nothing was changed.",
        ),
        (
            exit::REMOTE,
            "The snapshot is safe locally, but the remote could not be reached or refused it; the \
             next run pushes it. list, show, stats and verify --all end with it when they could \
             show or check only the local snapshots.",
        ),
        (exit::LOCKED, "Another backup now or run holds the lock."),
        (
            exit::STALE,
            "backup status: no good snapshot inside the window (every + grace).",
        ),
        (exit::LAST_RUN_FAILED, "backup status: the last run failed."),
    ] {
        item(page, &code.to_string(), meaning)?;
    }
    paragraph(
        page,
        "Errors are one line on stderr. With --json, every outcome is JSON on stdout, a failure \
         as {\"error\": {\"message\", \"kind\", \"exit_code\"}} (docs/json.md).",
    )
}

fn examples(page: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(page, ".SH EXAMPLES")?;
    // Each command's first example: the line of shell in bold, what it does beneath.
    for (path, lines) in crate::help_examples::EXAMPLES {
        if path.len() == 1 {
            let (shell, what) = lines[0].split_once("  # ").unwrap_or((lines[0], ""));
            item(page, shell.trim_end(), what.trim())?;
        }
    }
    Ok(())
}
