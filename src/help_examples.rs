//! One or two examples for every command, kept in one table: `--help` ends with them and the
//! manual page's EXAMPLES section prints them, so the two never disagree.

/// Each command by its path under `backup`, with its examples: a line of shell, then what it
/// does after `#`.
pub const EXAMPLES: &[(&[&str], &[&str])] = &[
    (
        &["now"],
        &[
            "backup now --note \"before the v2 migration\"   # a manual snapshot, pushed",
            "backup now --json | jq -r .tag                 # the new snapshot's tag",
            "backup now --diff                              # only what changed since the last full",
        ],
    ),
    (
        &["run"],
        &[
            "backup run --config ~/notes/backup.toml   # what the scheduled job runs",
            "backup run --json                         # the run's outcome, for a monitor",
        ],
    ),
    (
        &["list"],
        &[
            "backup list --since 3d --kind manual   # taken by hand in the last 3 days",
            "backup list --wide --explain           # full tags, and why each is kept",
        ],
    ),
    (
        &["show"],
        &[
            "backup show latest          # when, which host, the note, rows per table",
            "backup show 3f9a --files    # and every included file",
        ],
    ),
    (
        &["diff"],
        &[
            "backup diff latest~1 latest   # rows per table and files, old -> new",
            "backup diff latest --live     # what changed since the last snapshot",
        ],
    ),
    (
        &["stats"],
        &["backup stats   # counts and bytes, local and remote, and growth per day"],
    ),
    (
        &["config"],
        &[
            "backup config          # the config as understood, defaults filled in",
            "backup config --json   # the same, for scripts",
        ],
    ),
    (
        &["prune"],
        &[
            "backup prune --dry-run        # what retention would delete, and why the rest stays",
            "backup prune --host old-box   # apply retention to a retired machine's snapshots",
        ],
    ),
    (
        &["restore"],
        &[
            "backup restore latest --dry-run      # every check, then stop",
            "backup restore 3f9a --to recovered   # into a folder; nothing live touched",
        ],
    ),
    (
        &["verify"],
        &[
            "backup verify latest             # a restore drill, live data untouched",
            "backup verify --all --sample 3   # three snapshots at random",
        ],
    ),
    (
        &["rollback"],
        &[
            "backup rollback --dry-run   # what it would put back and set aside",
            "backup rollback             # put back what the last restore set aside",
        ],
    ),
    (
        &["demo"],
        &["backup demo --dir /tmp/backup-demo   # a sample app, a snapshot, a listing"],
    ),
    (
        &["init"],
        &[
            "backup init            # check the remote and mark a folder remote as this machine's",
            "backup init --create   # make a missing folder or repository first",
        ],
    ),
    (
        &["auth"],
        &[
            "gh auth token | backup auth login   # store gh's token in the OS keyring",
            "backup auth status                  # where the token comes from",
        ],
    ),
    (
        &["auth", "login"],
        &["gh auth token | backup auth login   # store gh's token in the OS keyring"],
    ),
    (
        &["auth", "status"],
        &["backup auth status --json   # the token's source and the repository's state"],
    ),
    (
        &["auth", "logout"],
        &["backup auth logout   # remove the token this tool stored"],
    ),
    (
        &["status"],
        &[
            "backup status || notify-send \"backups need attention\"   # for a monitor",
            "backup status --json | jq .state",
        ],
    ),
    (
        &["schedule"],
        &[
            "backup schedule install --every 30m   # run `backup run` every 30 minutes",
            "backup schedule status                # where the job is and when it last ran",
        ],
    ),
    (
        &["schedule", "install"],
        &[
            "backup schedule install --dry-run   # show the timer or crontab line, write nothing",
            "backup schedule install --cron      # a crontab line instead of a systemd timer",
        ],
    ),
    (
        &["schedule", "remove"],
        &["backup schedule remove   # remove this config's job, nothing else"],
    ),
    (&["schedule", "status"], &["backup schedule status --json"]),
    (
        &["doctor"],
        &[
            "backup doctor          # every check, with what to fix",
            "backup doctor --json   # the same, for scripts",
        ],
    ),
    (
        &["completions"],
        &["backup completions bash > ~/.local/share/bash-completion/completions/backup"],
    ),
    (&["man"], &["backup man | man -l -"]),
    (
        &["mcp"],
        &[
            "backup mcp --config /home/alice/notes/backup.toml   # as an MCP client starts it (README \"Agents (MCP)\")",
        ],
    ),
];

/// `cmd` with each command's examples at the end of its `--help`.
pub fn add(cmd: clap::Command) -> clap::Command {
    EXAMPLES
        .iter()
        .fold(cmd, |cmd, (path, lines)| with_examples(cmd, path, lines))
}

fn with_examples(cmd: clap::Command, path: &[&str], lines: &[&str]) -> clap::Command {
    match path {
        [] => {
            let text: Vec<String> = lines.iter().map(|l| format!("  {l}")).collect();
            cmd.after_help(format!("Examples:\n{}", text.join("\n")))
        }
        [first, rest @ ..] => {
            let first = (*first).to_string();
            cmd.mut_subcommand(first, |sub| with_examples(sub, rest, lines))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command a user can run (but `help`) has examples, and every example names one.
    #[test]
    fn every_command_ends_its_help_with_examples() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                path.push(sub.get_name().to_string());
                let has = sub
                    .get_after_help()
                    .is_some_and(|h| h.to_string().starts_with("Examples:\n"));
                if !has {
                    missing.push(path.join(" "));
                }
                walk(sub, path, missing);
                path.pop();
            }
        }
        let cmd = add(crate::Cli::command());
        let mut missing = Vec::new();
        walk(&cmd, &mut Vec::new(), &mut missing);
        assert!(
            missing.is_empty(),
            "add a row to help_examples::EXAMPLES for: {}",
            missing.join(", ")
        );
        for (path, _) in EXAMPLES {
            let found = path
                .iter()
                .try_fold(&cmd, |c, name| c.find_subcommand(name));
            assert!(found.is_some(), "no command `backup {}`", path.join(" "));
        }
    }
}
