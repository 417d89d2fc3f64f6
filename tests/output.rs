//! What the user sees when the reader or the input is not what we expect: a closed pipe, a
//! malformed token.

use std::io::Read;
use std::process::Stdio;

use crate::fake_github::FakeGitHub;
use crate::support::{App, stderr};

/// Runs `backup ARGS` with stdout closed by its reader before anything is written, as
/// `backup list | head -0` or `backup now | true` do; returns the exit code and stderr.
fn with_closed_stdout(app: &App, args: &[&str]) -> (Option<i32>, String) {
    let mut child = app
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_commands_own_exit_code() {
    let app = App::new(20);
    let (code, err) = with_closed_stdout(&app, &["now"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The snapshot `now` reported into the closed pipe is stored and pushed.
    assert_eq!(app.archives("backups").len(), 1);
    assert_eq!(app.archives("remote").len(), 1);
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status"],
        &["config"],
        &["completions", "bash"],
        &["man"],
    ] {
        let (code, err) = with_closed_stdout(&app, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    // A status that is not fresh keeps its own code into a closed pipe as well.
    let (code, err) = with_closed_stdout(&app, &["verify", "bk-20990101T000000Z-manual-x-000000"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_token_of_two_lines_is_refused_in_one_line_that_never_shows_it() {
    let fake = FakeGitHub::start();
    let app = App::new(5);
    app.write_config(&format!(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"github\"\nrepo = \"alice/app-backups\"\napi_url = \"{}\"\nretry_budget_secs = 2\ntoken_file = \"token\"\n",
        fake.api_url
    ));
    let secret = "ghp_firstline0123456789";
    for (env, file) in [
        (Some(format!("{secret}\nghp_secondline")), None),
        (None, Some(format!("{secret}\nghp_secondline\n"))),
    ] {
        let mut cmd = app.command(&["list"]);
        if let Some(value) = &env {
            cmd.env("GH_ENTERPRISE_TOKEN", value);
        }
        if let Some(text) = &file {
            std::fs::write(app.path("token"), text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(app.path("token"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        // `list` still shows the local snapshots, and says why the remote could not be read.
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("ghp_"), "the token leaked: {err}");
        assert!(err.contains("more than one line"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn a_closed_stderr_ends_quietly_with_the_commands_own_exit_code() {
    let app = App::new(20);
    // No remote folder: `now` stores the snapshot and says on stderr that the push failed.
    std::fs::remove_dir(app.path("remote")).unwrap();
    let mut child = app
        .command(&["now"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(4));
    assert_eq!(app.archives("backups").len(), 1);
}

/// `backup man`: the sections a manual page is expected to have, no reference to a page that is
/// not installed, and roff that groff reads without a warning (where groff is installed).
#[test]
fn the_manual_page_has_its_sections_and_names_no_missing_page() {
    let app = App::new(1);
    let out = app.run(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH COMMANDS",
        ".SH CONFIGURATION",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(section), "{section}");
    }
    // clap_mangen names `backup-now(1)` and the like, which no one installs.
    assert!(!page.contains("(1)"), "{page}");
    for code in 0..=7 {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit {code}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.1");
    std::fs::write(&file, &page).unwrap();
    match std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
    {
        Ok(groff) => {
            assert!(groff.status.success(), "{}", stderr(&groff));
            assert_eq!(stderr(&groff), "", "groff's warnings");
        }
        Err(_) => crate::support::skip("groff", "groff is not installed"),
    }
}
