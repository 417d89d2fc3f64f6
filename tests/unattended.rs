use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{App, assert_exit_saying, output_with_stdin, skip, stderr, stdout};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// `status --json` at `clock`: its exit code and output.
fn status(app: &App, clock: &str) -> (i32, Value) {
    let out = app.run_at(clock, &["status", "--json"]);
    let code = out.status.code().unwrap();
    (code, json(&out))
}

const CONFIG: &str = crate::support::DIR_REMOTE_CONFIG;

/// `status --json` at `clock` ends with `code`, in `state`, its summary saying `why`.
fn assert_status(app: &App, clock: &str, code: i32, state: &str, why: &str) -> Value {
    let (got, s) = status(app, clock);
    assert_eq!((got, s["state"].as_str()), (code, Some(state)), "{s}");
    assert!(s["summary"].as_str().unwrap().contains(why), "{s}");
    s
}

/// `status` from real runs: stale before the first one, fresh after it, stale once the window
/// has passed, failed after a run whose push failed; exit codes 6, 0, 6, 7.
#[test]
fn status_exit_codes_follow_real_runs() {
    const START: &str = "2026-03-01T10:00:00Z";
    const TWO_MINUTES_LATER: &str = "2026-03-01T10:02:00Z";
    let app = App::new(20);
    let s = assert_status(&app, START, 6, "stale", "no successful run");
    assert!(s["last_ok"].is_null());

    let out = app.run_at(START, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = assert_status(&app, START, 0, "fresh", "inside the 1h30m window");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["pending"].as_array().map(Vec::len), Some(0), "{s}");
    assert_eq!(s["last_scheduled"]["ok"], true, "{s}");
    let human = app.run_at(START, &["status"]);
    assert!(stdout(&human).starts_with("FRESH: "), "{}", stdout(&human));

    // A one-minute cadence with no grace: two minutes later the snapshot is stale.
    app.write_config(&format!(
        "{CONFIG}[schedule]\nevery = \"1m\"\ngrace = \"0s\"\n"
    ));
    assert_status(&app, TWO_MINUTES_LATER, 6, "stale", "past the 1m window");
    // A snapshot by hand does not hide that the schedule stopped.
    let out = app.run_at(TWO_MINUTES_LATER, &["now"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_status(
        &app,
        TWO_MINUTES_LATER,
        6,
        "stale",
        "scheduled `backup run` last ran",
    );

    // The remote disappears (an unmounted drive): the push fails, the snapshot stays local.
    app.write_config(CONFIG);
    fs::remove_dir(app.path("remote")).unwrap_or_else(|_| {
        fs::remove_dir_all(app.path("remote")).unwrap();
    });
    let out = app.run_at(TWO_MINUTES_LATER, &["run"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let s = assert_status(&app, TWO_MINUTES_LATER, 7, "failed", "does not exist");
    // When things last worked is still known, and what waits for the remote.
    assert_eq!(s["last_ok"]["ok"], true, "{s}");
    // The whole remote is gone: all three snapshots wait for it.
    assert_eq!(s["pending"].as_array().map(Vec::len), Some(3), "{s}");
    let human = app.run_at(TWO_MINUTES_LATER, &["status"]);
    assert_eq!(human.status.code(), Some(7));
    assert!(
        stdout(&human).starts_with("FAILED: the last run"),
        "{}",
        stdout(&human)
    );
}

/// Under cron (no terminal) a successful run prints nothing at all; `-v` logs one line per step
/// to stderr and still nothing to stdout.
#[test]
fn a_successful_run_without_a_terminal_is_silent() {
    let app = App::new(20);
    let out = app.run(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");

    let out = app.run(&["run", "-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let log = stderr(&out);
    for step in ["snapshot", "pushed", "retention"] {
        assert!(
            log.lines().any(|l| l.contains(step)),
            "no {step} line: {log}"
        );
    }
    assert!(log.lines().all(|l| l.contains(" INFO ")), "{log}");
}

/// A folder with a space in its name, holding a config that points back at the app.
fn spaced_config(app: &App) -> PathBuf {
    let dir = app.path("my app");
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("backup.toml");
    fs::write(
        &config,
        CONFIG
            .replace("\"data/", "\"../data/")
            .replace("\"backups\"", "\"../backups\"")
            .replace("\"remote\"", "\"../remote\""),
    )
    .unwrap();
    config
}

/// The binary with HOME in `home`, so unit files and agents land there.
fn backup(home: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backup"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BACKUP_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_systemd_timer_is_printed_by_a_dry_run_and_nothing_is_written() {
    let app = App::new(5);
    let config = spaced_config(&app);
    let home = app.path("home");
    fs::create_dir_all(&home).unwrap();
    let out = backup(
        &home,
        &config,
        &["schedule", "install", "--systemd", "--dry-run"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let exe = env!("CARGO_BIN_EXE_backup");
    assert!(
        text.contains(&format!(
            "ExecStart=\"{exe}\" run --config \"{}\"",
            config.display()
        )),
        "{text}"
    );
    for line in [
        "OnCalendar=hourly",
        "Persistent=true",
        "RandomizedDelaySec=300",
        "Type=oneshot",
        "WantedBy=timers.target",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(
        text.contains(&format!(
            "--- {}",
            home.join(".config/systemd/user").display()
        )),
        "{text}"
    );
    assert!(!home.join(".config").exists(), "a dry run writes nothing");

    let out = backup(
        &home,
        &config,
        &[
            "schedule",
            "install",
            "--systemd",
            "--dry-run",
            "--every",
            "15m",
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(v["backend"], "systemd");
    assert_eq!(v["every"], "15m");
    assert!(
        v["files"][1]["text"]
            .as_str()
            .unwrap()
            .contains("OnCalendar=*-*-* *:00/15:00"),
        "{v}"
    );
}

#[test]
fn a_period_a_clock_cannot_keep_is_refused() {
    let app = App::new(5);
    let home = app.path("home");
    let out = backup(
        &home,
        &app.path("backup.toml"),
        &["schedule", "install", "--cron", "--every", "7m"],
    );
    assert_exit_saying(&out, 2, "must divide an hour or a day: use 6m or 10m");
    let out = backup(
        &home,
        &app.path("backup.toml"),
        &["schedule", "install", "--every", "hourly"],
    );
    assert_exit_saying(&out, 2, "`hourly` is not a duration");
    // In the config it is refused when the config loads, by any command.
    app.write_config(&format!("{CONFIG}[schedule]\nevery = \"45m\"\n"));
    let out = app.run(&["status"]);
    assert_exit_saying(
        &out,
        2,
        "[schedule] every = \"45m\" must divide an hour or a day: use 30m or 1h",
    );
}

#[test]
fn the_launchd_agent_is_written_once_and_removed() {
    let app = App::new(5);
    let config = spaced_config(&app);
    let home = app.path("home");
    for _ in 0..2 {
        let out = backup(&home, &config, &["schedule", "install", "--launchd"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let agents: Vec<_> = fs::read_dir(home.join("Library/LaunchAgents"))
        .unwrap()
        .collect();
    assert_eq!(agents.len(), 1);
    let plist = fs::read_to_string(agents[0].as_ref().unwrap().path()).unwrap();
    assert!(
        plist.contains(&format!("<string>{}</string>", config.display())),
        "{plist}"
    );
    assert!(
        plist.contains("<key>StartInterval</key>\n    <integer>3600</integer>"),
        "{plist}"
    );
    let status = json(&backup(&home, &config, &["schedule", "status", "--json"]));
    assert_eq!(status["installed"], true, "{status}");

    let out = backup(&home, &config, &["schedule", "remove"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_dir(home.join("Library/LaunchAgents"))
            .unwrap()
            .count(),
        0
    );
    let status = json(&backup(&home, &config, &["schedule", "status", "--json"]));
    assert_eq!(status["installed"], false, "{status}");
}

/// The user's crontab as it was, put back when the test ends however it ends.
struct CrontabGuard(String);

impl Drop for CrontabGuard {
    fn drop(&mut self) {
        write_crontab(&self.0);
    }
}

fn read_crontab() -> String {
    let out = Command::new("crontab").arg("-l").output().unwrap();
    if out.status.success() {
        stdout(&out)
    } else {
        String::new()
    }
}

fn write_crontab(text: &str) {
    if text.is_empty() {
        let _ = Command::new("crontab")
            .arg("-r")
            .stderr(Stdio::null())
            .status();
        return;
    }
    let out = output_with_stdin(Command::new("crontab").arg("-"), text);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The real `crontab` program: installing twice leaves one line, the line runs the job from a
/// folder with a space in its name, and removing leaves everyone else's lines alone.
///
/// It edits this user's real crontab, so it runs only where that is empty (CI) or when
/// BACKUP_TEST_CRONTAB=1 says so, and puts the old table back at the end.
#[test]
fn crontab_install_is_idempotent_runs_and_removes_only_its_own_line() {
    if Command::new("crontab").arg("-l").output().is_err() {
        skip("cron", "no crontab program (apt-get install cron)");
        return;
    }
    let original = read_crontab();
    if !original.trim().is_empty() && std::env::var_os("BACKUP_TEST_CRONTAB").is_none() {
        skip(
            "cron",
            "this user's crontab is not empty; set BACKUP_TEST_CRONTAB=1 to run it anyway",
        );
        return;
    }
    let _guard = CrontabGuard(original.clone());
    let others = format!("{original}# the user's own jobs\n17 3 * * * /usr/bin/true nightly\n");
    write_crontab(&others);

    let app = App::new(30);
    let config = spaced_config(&app);
    let other_app = App::new(5);
    let home = app.path("home");
    // Twice, the second time by another path to the same file: still one job.
    let detour = app.path("my app/../my app/backup.toml");
    for path in [&config, &detour] {
        let out = backup(&home, path, &["schedule", "install", "--cron"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = backup(
        &home,
        &other_app.path("backup.toml"),
        &["schedule", "install", "--cron", "--every", "30m"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let table = read_crontab();
    assert!(table.starts_with(&others), "{table}");
    let status = json(&backup(&home, &config, &["schedule", "status", "--json"]));
    let id = status["id"].as_str().unwrap().to_string();
    let ours: Vec<&str> = table
        .lines()
        .filter(|l| l.ends_with(&format!("# {id}")))
        .collect();
    assert_eq!(ours.len(), 1, "{table}");
    assert_eq!(status["cron"].as_str(), Some(ours[0]));
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("# backup-agent-"))
            .count(),
        2,
        "{table}"
    );

    // The line itself works: run its command the way cron does (sh -c), from another folder.
    let command = ours[0].splitn(6, ' ').nth(5).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    assert_eq!(stdout(&out), "", "cron mails any output");
    assert_eq!(app.archives("remote").len(), 1);
    let last = json(&backup(&home, &config, &["schedule", "status", "--json"]));
    assert_eq!(last["last_scheduled"]["ok"], true, "{last}");

    // `doctor` checks that a cron daemon runs the line; where none runs it fails, saying how to
    // start one (the detection itself is unit-tested over made-up /proc folders).
    let doctor = json(&backup(&home, &config, &["doctor", "--json"]));
    let daemon = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cron daemon")
        .unwrap_or_else(|| panic!("no cron daemon check: {doctor}"))
        .clone();
    match daemon["verdict"].as_str() {
        Some("ok") => assert!(
            daemon["detail"]
                .as_str()
                .unwrap()
                .contains("runs the crontab")
        ),
        Some("fail") => assert!(
            daemon["fix"]
                .as_str()
                .unwrap()
                .contains("sudo systemctl enable --now cron"),
            "{daemon}"
        ),
        _ => panic!("{daemon}"),
    }

    let out = backup(&home, &config, &["schedule", "remove"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = read_crontab();
    assert!(table.starts_with(&others), "{table}");
    assert!(!table.contains(&id), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("# backup-agent-"))
            .count(),
        1,
        "the other app's job stays: {table}"
    );
    let out = backup(
        &home,
        &other_app.path("backup.toml"),
        &["schedule", "remove", "--json"],
    );
    assert_eq!(json(&out)["removed"], serde_json::json!(["cron"]));
    assert_eq!(read_crontab(), others);
}

/// `doctor` on a healthy app: every check ok but the missing schedule (a warning), exit 0.
/// Then a moved database and an unmounted remote: each a FAIL line that says what to do, exit 1.
#[test]
fn doctor_names_each_check_and_what_to_fix() {
    let app = App::new(10);
    let home = app.path("home");
    let config = app.path("backup.toml");
    let out = backup(&home, &config, &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json(&out);
    let verdicts: Vec<(String, String)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    let names: Vec<&str> = verdicts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "config",
            "database tasks",
            "local folder",
            "clock",
            "remote",
            "schedule"
        ]
    );
    let schedule = &report["checks"][5];
    assert_eq!(schedule["verdict"], "warn");
    assert!(
        schedule["fix"]
            .as_str()
            .unwrap()
            .contains("backup schedule install")
    );
    assert!(verdicts[..5].iter().all(|(_, v)| v == "ok"), "{report}");

    fs::rename(app.path("data/tasks.db"), app.path("data/moved.db")).unwrap();
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = backup(&home, &config, &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 6, "one line per check: {text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert!(failed.iter().all(|l| l.contains(" -> ")), "{text}");
    assert!(
        failed[0].contains("database tasks") && failed[0].contains("[[database]]"),
        "{text}"
    );
    assert!(
        failed[1].contains("remote") && failed[1].contains("backup init --create"),
        "{text}"
    );

    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/moved.db\"\n[local]\ndri = \"x\"\n",
    );
    let out = backup(&home, &config, &["doctor"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("FAIL  config  "),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("dri"), "{}", stdout(&out));
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line_definition() {
    let app = App::new(1);
    let out = app.run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for word in ["restore", "schedule", "doctor", "--dry-run"] {
        assert!(stdout(&out).contains(word), "{word}");
    }
    let out = app.run(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(".ie"),
        "{}",
        &stdout(&out)[..80.min(stdout(&out).len())]
    );
    assert!(stdout(&out).contains("backup\\-status") || stdout(&out).contains("status"));
    let out = app.run(&["completions", "tcsh"]);
    assert_exit_saying(
        &out,
        2,
        "[possible values: bash, elvish, fish, powershell, zsh]",
    );
}

/// On a terminal (a pseudo-terminal from `script`), a snapshot draws its phases as bars with
/// bytes; `--no-progress` and `-v` draw none.
#[test]
fn a_terminal_sees_progress_bars_and_cron_does_not() {
    if Command::new("script").arg("--version").output().is_err() {
        skip(
            "script",
            "no `script` program (util-linux) to make a terminal",
        );
        return;
    }
    let app = App::new(20_000);
    let on_terminal = |extra: &str| {
        let line = format!(
            "'{}' --config '{}' now {extra}",
            env!("CARGO_BIN_EXE_backup"),
            app.path("backup.toml").display()
        );
        let out = Command::new("script")
            .args(["-qefc", &line, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stdout(&out));
        stdout(&out)
    };
    let drawn = on_terminal("");
    for phase in ["copying databases", "compressing", "pushing"] {
        assert!(drawn.contains(phase), "no {phase} bar: {drawn:?}");
    }
    assert!(drawn.contains("KiB") || drawn.contains("MiB"), "{drawn:?}");
    assert!(
        drawn.contains("snapshot bk-"),
        "the summary follows: {drawn:?}"
    );
    let quiet = on_terminal("--no-progress");
    assert!(!quiet.contains("compressing"), "{quiet:?}");
    let logged = on_terminal("-v");
    assert!(!logged.contains("compressing"), "{logged:?}");
    assert!(logged.contains(" INFO "), "{logged:?}");
}

/// Asking for systemd where no user manager answers fails before any file is written.
#[test]
fn systemd_without_a_user_manager_is_refused_before_writing() {
    if backup_agent::schedule::systemd_available() {
        skip("no-systemd", "this machine has a systemd user manager");
        return;
    }
    let app = App::new(5);
    let home = app.path("home");
    let out = backup(
        &home,
        &app.path("backup.toml"),
        &["schedule", "install", "--systemd"],
    );
    assert_exit_saying(&out, 1, "--cron");
    assert!(!home.join(".config").exists());
}

/// A job whose binary went away (moved, upgraded elsewhere, `cargo clean`) would never run
/// again without a word: `doctor` fails its schedule line.
#[test]
fn doctor_fails_a_job_whose_program_is_gone() {
    let app = App::new(5);
    let home = app.path("home");
    let config = app.path("backup.toml");
    let copy = app.path("old bin/backup");
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_backup"), &copy).unwrap();
    let out = Command::new(&copy)
        .arg("--config")
        .arg(&config)
        .args(["schedule", "install", "--launchd"])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let schedule = |out: &Output| {
        json(out)["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "schedule")
            .unwrap()
            .clone()
    };
    let before = backup(&home, &config, &["doctor", "--json"]);
    assert_eq!(schedule(&before)["verdict"], "ok", "{}", stdout(&before));

    fs::remove_file(&copy).unwrap();
    let after = backup(&home, &config, &["doctor", "--json"]);
    assert_eq!(after.status.code(), Some(1), "{}", stdout(&after));
    let check = schedule(&after);
    assert_eq!(check["verdict"], "fail", "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("does not exist"),
        "{check}"
    );
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("backup schedule install"),
        "{check}"
    );
}
