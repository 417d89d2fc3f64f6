use std::fs;
use std::path::Path;

use backup_agent::config::Config;

use crate::support::{App, assert_exit_saying, stderr, stdout};

#[test]
fn unknown_key_is_refused_naming_key_and_line() {
    let app = App::new(1);
    app.write_config("[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\nretention = 3\n");
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("line 4") && err.contains("retention"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn missing_config_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .arg("now")
        .current_dir(dir.path())
        .env_remove("BACKUP_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("backup.toml") && err.contains("--config"),
        "{err}"
    );
}

#[test]
fn config_is_found_through_the_environment_and_printed_resolved() {
    let app = App::new(1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .args(["config", "--json"])
        .env("BACKUP_CONFIG", app.path("backup.toml"))
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = fs::canonicalize(app.dir.path()).unwrap();
    let db = Path::new(shown["database"][0]["path"].as_str().unwrap());
    assert_eq!(fs::canonicalize(db).unwrap(), root.join("data/tasks.db"));
    assert_eq!(shown["remote"]["type"], "dir");

    let toml_out = app.run(&["config"]);
    assert!(stdout(&toml_out).contains("[[database]]"));
}

#[test]
fn a_remote_in_the_database_folder_is_refused() {
    let app = App::new(1);
    app.write_config("[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[remote]\ntype = \"dir\"\npath = \"data/\"\n");
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 2, "[remote] path");
    assert!(!app.path("backups").exists(), "nothing was started");
}

#[test]
fn snapshot_folder_that_is_a_database_folder_is_refused() {
    let app = App::new(1);
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[local]\ndir = \"data\"\n",
    );
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 2, "folder of database `tasks`");
}

/// Every TOML example in the README and in fixtures/ parses (docs cannot drift from the code).
#[test]
fn every_example_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let mut examples: Vec<(String, String)> = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").unwrap();
        examples.push(("README.md".into(), body[..end].to_string()));
        rest = &body[end..];
    }
    for entry in fs::read_dir(root.join("fixtures/configs")).unwrap() {
        let path = entry.unwrap().path();
        examples.push((
            path.display().to_string(),
            fs::read_to_string(&path).unwrap(),
        ));
    }
    assert!(examples.len() >= 2);
    for (source, text) in examples {
        Config::parse(&text, Path::new("/srv/app/backup.toml"))
            .unwrap_or_else(|e| panic!("{source}: {e}\n{text}"));
    }
}

#[test]
fn command_line_mistakes_keep_clap_help_and_syntax_mistakes_name_the_line() {
    let app = App::new(1);
    // A usage mistake keeps what clap says below its first line: the suggestion, the missing
    // argument's name, the possible values, the usage line.
    for (args, help) in [
        (&["nowx"][..], "a similar subcommand exists: 'now'"),
        (&["now", "--bogus"][..], "Usage: backup now"),
        (&["restore"][..], "<SNAPSHOT>"),
        (&["completions", "tcsh"][..], "possible values: bash,"),
    ] {
        let out = app.run(args);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.starts_with("backup: error: ") && err.contains("--help") && err.contains(help),
            "{args:?}: {err}"
        );
    }
    app.write_config("[[database]]\nname = 3\npath = \"data/tasks.db\"\n");
    let err = stderr(&app.run(&["list"]));
    assert!(
        err.contains("line 2 (`name = 3`)") && err.contains("README"),
        "{err}"
    );
    let help = app.run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes"));
}

#[test]
fn config_prints_every_section_with_defaults_filled_in_and_never_a_token() {
    let app = App::new(1);
    app.write_config(&format!(
        "{}[retention]\nhourly = 6\nyearly = 0\n[schedule]\nevery = \"2h\"\n",
        crate::support::github_config(
            "https://github.example/api/v3",
            crate::support::GITHUB_REPO,
            ""
        )
    ));
    let out = app
        .command(&["config", "--json"])
        .env("GH_ENTERPRISE_TOKEN", crate::fake_github::TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = crate::support::no_token_leak(out);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // What the file set, and the defaults of what it left out.
    assert_eq!(shown["retention"]["hourly"], 6);
    assert_eq!(shown["retention"]["yearly"], 0);
    assert_eq!(shown["retention"]["daily"], 7);
    assert_eq!(shown["retention"]["manual"], 20);
    assert_eq!(shown["schedule"]["every"], "2h");
    assert_eq!(shown["schedule"]["grace"], "30m");
    assert_eq!(shown["remote"]["type"], "github");
    assert_eq!(shown["remote"]["repo"], crate::support::GITHUB_REPO);
    assert_eq!(shown["remote"]["retry_budget_secs"], 5);
    assert!(shown["remote"]["push_deadline_secs"].as_u64().unwrap() > 0);

    // The text form is the file's own shape: pasted back, it reads as the same config.
    let text = stdout(&app.run(&["config"]));
    for section in [
        "[[database]]",
        "[local]",
        "[remote]",
        "[retention]",
        "[schedule]",
    ] {
        assert!(text.contains(section), "{section}: {text}");
    }
    app.write_config(&text);
    let again = app.run(&["config", "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let reread: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(reread, shown);
}
