//! The soak: simulated hourly cycles of `backup run` against the fake GitHub, with random
//! transient faults, a writer that commits to the live databases as each run starts, `kill -9` of
//! `run` and `restore` at failpoints of every phase (and some at random moments), and restore
//! drills; the invariants of docs/invariants.md are checked after every step, and the summary
//! counts where each kill landed.
//!
//! `soak_short` runs in `cargo test` (a few dozen cycles). The long one is on demand:
//! `SOAK_CYCLES=500 SOAK_SEED=7 cargo test --test cli soak_long -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;
use serde_json::Value;

use crate::fake_github::{FakeGitHub, Fault, Route, TOKEN};
use crate::support::{App, all_files, read_archive, row_counts, stderr, stdout};

const REPO: &str = "soak/app-backups";
/// The app's databases, in `data/<name>.db`: restores must swap them all or none.
const DATABASES: [&str; 2] = ["tasks", "notes"];

/// A small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Plans drawn at random without putting them back, the pack refilled once empty: every kill
/// comes up once in each round, so a soak of a few rounds meets every one of them.
struct Deck {
    pack: Vec<Plan>,
    left: Vec<Plan>,
}

impl Deck {
    /// A pack of `kills` and `finishes` times [`Plan::Finish`].
    fn new(kills: &[Plan], finishes: usize) -> Deck {
        let mut pack = kills.to_vec();
        pack.extend(std::iter::repeat_n(Plan::Finish, finishes));
        Deck {
            pack,
            left: Vec::new(),
        }
    }

    fn draw(&mut self, rng: &mut Rng) -> Plan {
        if self.left.is_empty() {
            self.left = self.pack.clone();
        }
        self.left
            .swap_remove(rng.below(self.left.len() as u64) as usize)
    }
}

/// What becomes of one `run` or `restore`.
#[derive(Clone, Copy)]
enum Plan {
    /// It runs to its end.
    Finish,
    /// It stops at one of these failpoints, chosen at random, and is killed there (`kill -9`).
    KillAt(&'static [&'static str]),
    /// It is killed after a random delay under this many milliseconds: wherever that lands,
    /// the moments no failpoint names included (and sometimes before it starts or after it ends,
    /// which is counted apart, as no kill).
    KillAnywhere(u64),
}

// The steps a kill lands at, by failpoint (src/failpoint.rs), one list per phase.
const SNAPSHOT_STEPS: &[&str] = &["snapshot-copied", "archive-written", "archive-renamed"];
const PUSH_STEPS: &[&str] = &["push-started"];
/// Retention after the push, between the deletions of two snapshots (differentials go first).
const PRUNE_STEPS: &[&str] = &["prune-deleted"];
/// The end of a run: the write of `last_run.json`.
const RECORD_STEPS: &[&str] = &["temp-written-last_run.json"];
const RESTORE_CHECK_STEPS: &[&str] = &["restore-extracted", "restore-checked"];
const SWAP_STEPS: &[&str] = &[
    "swap-journaled",
    "swap-folders-created",
    "swap-move-0",
    "swap-move-1",
    "swap-moved",
    "swap-recorded",
    "swap-committed",
];

/// Close to a third of the runs die (with 12 finishing): one in each phase, and one at a random
/// moment, every 17 cycles.
const RUN_KILLS: &[Plan] = &[
    Plan::KillAt(SNAPSHOT_STEPS),
    Plan::KillAt(PUSH_STEPS),
    Plan::KillAt(PRUNE_STEPS),
    Plan::KillAt(RECORD_STEPS),
    Plan::KillAnywhere(250),
];

/// Half the restores die (with 4 finishing), mostly mid-swap.
const RESTORE_KILLS: &[Plan] = &[
    Plan::KillAt(SWAP_STEPS),
    Plan::KillAt(SWAP_STEPS),
    Plan::KillAt(RESTORE_CHECK_STEPS),
    Plan::KillAnywhere(150),
];

/// How a process killed by `kill -9` ended.
const SIGKILL: i32 = 9;

/// Commits rows to the live databases, one short connection per batch, as many batches as the
/// soak has allowed: each cycle allows [`COMMITS_PER_CYCLE`] just as its run starts, so the data
/// changes while the run copies it, and the writer never outpaces the soak whatever the machine's
/// speed. `gate` held by the soak stops it (an app shut down for a restore).
struct Writer {
    gate: Arc<Mutex<()>>,
    allowed: Arc<(Mutex<u64>, Condvar)>,
    stop: Arc<AtomicBool>,
    rows: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Batches the writer may commit per cycle (about what a busy app does over one run).
const COMMITS_PER_CYCLE: u64 = 10;

impl Writer {
    /// Commits to every database in `dbs` in turn, as an app with several stores does.
    fn start(dbs: Vec<PathBuf>) -> Writer {
        let gate = Arc::new(Mutex::new(()));
        let allowed = Arc::new((Mutex::new(0), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rows = Arc::new(AtomicU64::new(0));
        let thread = {
            let (gate, allowed, stop, rows) =
                (gate.clone(), allowed.clone(), stop.clone(), rows.clone());
            std::thread::spawn(move || {
                while Writer::take_one(&allowed, &stop) {
                    for db in &dbs {
                        let _open = gate.lock().unwrap();
                        if let Ok(conn) = Connection::open(db) {
                            let _ = conn.busy_timeout(Duration::from_secs(5));
                            let ok = conn
                                .execute_batch(
                                    "BEGIN; INSERT INTO tasks (title, body) VALUES ('soak', 'x'); \
                                     INSERT INTO notes (text) VALUES ('n'); COMMIT;",
                                )
                                .is_ok();
                            if ok {
                                rows.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        };
        Writer {
            gate,
            allowed,
            stop,
            rows,
            thread: Some(thread),
        }
    }

    /// Lets the writer commit `batches` more batches, at once.
    fn allow(&self, batches: u64) {
        let (count, wake) = &*self.allowed;
        *count.lock().unwrap() += batches;
        wake.notify_one();
    }

    /// Waits for an allowed batch and takes it; false once the writer is stopped.
    fn take_one(allowed: &(Mutex<u64>, Condvar), stop: &AtomicBool) -> bool {
        let (count, wake) = allowed;
        let mut count = wake
            .wait_while(count.lock().unwrap(), |n| {
                *n == 0 && !stop.load(Ordering::Relaxed)
            })
            .unwrap();
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        *count -= 1;
        true
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        {
            // Under the lock, so the writer cannot miss the wake-up between its check and wait.
            let _count = self.allowed.0.lock().unwrap();
            self.allowed.1.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default, Debug)]
struct Summary {
    cycles: u64,
    faults_injected: u64,
    /// Injected faults no request met (cleared at the end of their cycle).
    faults_unused: u64,
    /// Kills that landed in a run or restore, by where: a failpoint's name, or `anywhere: …`.
    kills_at: BTreeMap<String, u64>,
    /// Kills meant that did not land in a command (it had ended, or ended before the step).
    kills_missed: BTreeMap<String, u64>,
    restores_verified: u64,
    /// Drills of a differential: rebuilt from its base on a machine without local copies.
    differentials_verified: u64,
    restores_swapped: u64,
    writer_commits: u64,
    violations: Vec<String>,
}

struct Soak {
    app: App,
    /// A second machine with the same config and no local snapshots: restores from the remote.
    fresh: App,
    fake: FakeGitHub,
    rng: Rng,
    clock: DateTime<Utc>,
    run_plans: Deck,
    restore_plans: Deck,
    summary: Summary,
}

impl Summary {
    fn kills(&self) -> u64 {
        self.kills_at.values().sum()
    }

    /// Kills that landed at any of `steps`.
    fn kills_in(&self, steps: &[&str]) -> u64 {
        steps.iter().filter_map(|s| self.kills_at.get(*s)).sum()
    }
}

fn config(fake: &FakeGitHub) -> String {
    format!(
        r#"
[[database]]
name = "tasks"
path = "data/tasks.db"
[[database]]
name = "notes"
path = "data/notes.db"
[local]
dir = "backups"
[retention]
hourly = 6
[remote]
type = "github"
repo = "{REPO}"
api_url = "{}"
retry_budget_secs = 20
retry_max_delay_ms = 20
"#,
        fake.api_url
    )
}

impl Soak {
    fn new(seed: u64) -> Soak {
        let fake = crate::support::fake_with_private_repo(REPO);
        let app = App::new(200);
        crate::support::make_db(&app.path("data/notes.db"), 80);
        // As real app data often is: a row whose parent is gone (foreign keys are off unless the
        // app turns them on). Every snapshot records it, and every drill and restore accepts it.
        let notes = rusqlite::Connection::open(app.path("data/notes.db")).unwrap();
        notes
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 CREATE TABLE links (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id));
                 INSERT INTO links (note_id) VALUES (1), (999999);",
            )
            .unwrap();
        drop(notes);
        app.write_config(&config(&fake));
        let fresh = App::new(0);
        fs::remove_file(fresh.path("data/tasks.db")).unwrap();
        fresh.write_config(&config(&fake));
        Soak {
            app,
            fresh,
            fake,
            rng: Rng(seed.max(1)),
            clock: Utc.with_ymd_and_hms(2026, 1, 1, 0, 17, 0).unwrap(),
            run_plans: Deck::new(RUN_KILLS, 12),
            restore_plans: Deck::new(RESTORE_KILLS, 4),
            summary: Summary::default(),
        }
    }

    fn command(&self, app: &App, args: &[&str]) -> Command {
        let mut cmd = app.command(args);
        cmd.env("GH_ENTERPRISE_TOKEN", TOKEN)
            .env("BACKUP_TEST_CLOCK", self.clock.to_rfc3339())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to the end; output checked for the token (invariant 5).
    fn run(&mut self, app_is_fresh: bool, args: &[&str]) -> Output {
        let app = if app_is_fresh { &self.fresh } else { &self.app };
        let out = self.command(app, args).output().unwrap();
        self.check_output(args, &out);
        out
    }

    /// Runs `args` as `plan` says; a kill is counted where it landed. Returns whether the
    /// command died, and its output.
    fn run_planned(&mut self, args: &[&str], plan: Plan) -> (bool, Output) {
        let (landed, out) = match plan {
            Plan::Finish => return (false, self.run(false, args)),
            Plan::KillAt(steps) => {
                let step = self.rng.pick(steps);
                self.kill_at(args, step)
            }
            Plan::KillAnywhere(within_ms) => self.kill_anywhere(args, within_ms),
        };
        self.check_output(args, &out);
        let died = out.status.signal() == Some(SIGKILL);
        let count = if died {
            &mut self.summary.kills_at
        } else {
            &mut self.summary.kills_missed
        };
        *count.entry(landed).or_default() += 1;
        (died, out)
    }

    /// Starts `args` with `BACKUP_FAILPOINT=<step>:pause` and kills it once it says it waits
    /// there, so the kill is known to land at `step`. Returns `step`, or why the kill missed.
    fn kill_at(&mut self, args: &[&str], step: &str) -> (String, Output) {
        let mut child = self
            .command(&self.app, args)
            .env(
                backup_agent::failpoint::FAILPOINT_ENV,
                format!("{step}:pause"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let paused = format!("FAILPOINT {step} paused");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stderr = Vec::new();
        let mut landed = format!("ended before {step}");
        for line in lines.by_ref() {
            let line = line.unwrap();
            let at_step = line == paused;
            stderr.push(line);
            if at_step {
                child.kill().unwrap();
                landed = step.to_string();
                break;
            }
        }
        stderr.extend(lines.map_while(Result::ok));
        let mut out = child.wait_with_output().unwrap();
        out.stderr = stderr.join("\n").into_bytes();
        (landed, out)
    }

    /// Starts `args` and kills it after a random delay under `within_ms`. A run logs its steps
    /// (`-v`), so the kill is counted by the last step it had finished.
    fn kill_anywhere(&mut self, args: &[&str], within_ms: u64) -> (String, Output) {
        let delay = Duration::from_millis(self.rng.below(within_ms.max(1)));
        let is_run = args[0] == "run";
        let mut cmd = self.command(&self.app, args);
        if is_run {
            cmd.arg("-v");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let landed = if out.status.signal() != Some(SIGKILL) {
            format!("anywhere: {} had ended", args[0])
        } else if !is_run {
            format!("anywhere: mid-{}", args[0])
        } else {
            let log = stderr(&out);
            if !log.contains(" taken: ") {
                "anywhere: run before its snapshot was taken".into()
            } else if !log.contains("pushed ") && !log.contains("push to ") {
                "anywhere: run while pushing".into()
            } else {
                "anywhere: run after its push".into()
            }
        };
        (landed, out)
    }

    fn check_output(&mut self, args: &[&str], out: &Output) {
        for text in [stdout(out), stderr(out)] {
            if text.contains(TOKEN) {
                self.violate(format!("5: the token in the output of {args:?}"));
            }
        }
    }

    fn violate(&mut self, what: String) {
        eprintln!("VIOLATION at cycle {}: {what}", self.summary.cycles);
        self.summary.violations.push(what);
    }

    fn inject_faults(&mut self) {
        let count = self.rng.below(4);
        for _ in 0..count {
            let (route, fault) = match self.rng.below(7) {
                0 => (Route::CreateRelease, Fault::server_error()),
                1 => (Route::ListReleases, Fault::server_error()),
                2 => (Route::Upload, Fault::ResetMidUpload),
                3 => (Route::Upload, Fault::ResetAfterStore),
                4 => (Route::Upload, Fault::StarterLeftover),
                5 => (Route::GetRepo, Fault::secondary_limit(1)),
                _ => (Route::ListAssets, Fault::primary_limit(1)),
            };
            self.fake.inject(route, fault);
            self.summary.faults_injected += 1;
        }
    }

    /// Invariant 3: no temp or staging leftovers after a command that ran to its end.
    fn check_no_leftovers(&mut self, after: &str) {
        let leftovers = self.app.temp_leftovers();
        if !leftovers.is_empty() {
            self.violate(format!("3: leftovers after {after}: {leftovers:?}"));
        }
    }

    fn list(&mut self) -> Vec<Value> {
        let out = self.run(false, &["list", "--json"]);
        if !out.status.success() {
            self.violate(format!("list failed: {}", stderr(&out)));
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array().cloned().unwrap_or_default()
    }

    /// Invariant 13: every differential has its base beside it, locally and on the remote, after
    /// every command (a killed prune included).
    fn check_bases(&mut self, after: &str) {
        let entries = self.list();
        let place = |tag: &Value| {
            entries
                .iter()
                .find(|e| &e["tag"] == tag)
                .map(|e| e["where"].as_str().unwrap_or("").to_string())
        };
        let mut broken = Vec::new();
        for entry in entries.iter().filter(|e| !e["base"].is_null()) {
            let here = entry["where"].as_str().unwrap_or("");
            let base = place(&entry["base"]).unwrap_or_default();
            let on_remote = |w: &str| matches!(w, "both" | "remote" | "differ");
            let local = |w: &str| matches!(w, "both" | "local" | "differ");
            if (on_remote(here) && !on_remote(&base)) || (local(here) && !local(&base)) {
                broken.push(format!(
                    "{} ({here}) base {} ({base})",
                    entry["tag"], entry["base"]
                ));
            }
        }
        if !broken.is_empty() {
            self.violate(format!(
                "13: a differential without its base after {after}: {broken:?}"
            ));
        }
    }

    /// Invariant 4: after a clean run, local and remote hold the same snapshots.
    fn check_converged(&mut self) {
        let entries = self.list();
        let apart: Vec<String> = entries
            .iter()
            .filter(|e| e["where"] != "both")
            .map(|e| format!("{} {}", e["tag"], e["where"]))
            .collect();
        if !apart.is_empty() {
            self.violate(format!(
                "4: local and remote differ after a clean run: {apart:?}"
            ));
        }
    }

    /// Invariant 1: a snapshot the remote lists restores on a machine without local copies.
    fn drill(&mut self) {
        let entries = self.list();
        let on_remote: Vec<String> = entries
            .iter()
            .filter(|e| e["where"] == "both" || e["where"] == "remote")
            .filter_map(|e| e["tag"].as_str().map(str::to_string))
            .collect();
        if on_remote.is_empty() {
            return;
        }
        let differentials: Vec<String> = entries
            .iter()
            .filter(|e| !e["base"].is_null() && on_remote.iter().any(|t| e["tag"] == t.as_str()))
            .filter_map(|e| e["tag"].as_str().map(str::to_string))
            .collect();
        // Every other drill takes a differential when there is one: the rebuild from a base
        // downloaded from the remote.
        let tag = if !differentials.is_empty() && self.rng.chance(50) {
            differentials[self.rng.below(differentials.len() as u64) as usize].clone()
        } else {
            on_remote[self.rng.below(on_remote.len() as u64) as usize].clone()
        };
        let out = self.run(true, &["verify", &tag]);
        if out.status.success() {
            self.summary.restores_verified += 1;
            if differentials.contains(&tag) {
                self.summary.differentials_verified += 1;
            }
        } else {
            self.violate(format!(
                "1: {tag} is listed on the remote but does not verify: {}",
                stderr(&out)
            ));
        }
    }

    /// A real restore of the newest snapshot, with the app stopped; killed as planned. After
    /// the next command, the live data is the old state or the snapshot's, whole (invariant 2).
    fn restore(&mut self, writer: &Writer) {
        let _stopped = writer.gate.lock().unwrap();
        let before = self.live_counts();
        let Some(latest) = newest_local_archive(&self.app.path("backups")) else {
            return;
        };
        let snapshot = manifest_counts(&latest);
        let plan = self.restore_plans.draw(&mut self.rng);
        let (died, out) = self.run_planned(&["restore", "latest", "--yes"], plan);
        let finished = !died;
        if finished && !out.status.success() {
            self.violate(format!("restore latest failed: {}", stderr(&out)));
        }
        // The next command finishes or undoes an interrupted swap.
        let _ = self.list();
        // All databases old, or all restored: a mix breaks all-or-nothing.
        let after = self.live_counts();
        if after != before && after != snapshot {
            self.violate(format!(
                "2: live data is neither all old nor all restored after restore (killed: {}): before {before:?}, snapshot {snapshot:?}, now {after:?}",
                !finished
            ));
        }
        if finished && after != snapshot {
            self.violate(format!(
                "2: a finished restore left {after:?}, not {snapshot:?}"
            ));
        }
        if after == snapshot {
            self.summary.restores_swapped += 1;
        }
        self.check_integrity("a restore");
        self.check_no_leftovers("a restore and the next command");
        // Old live sets pile up as pre_restore_<time>/; a user deletes them by hand.
        for entry in fs::read_dir(self.app.dir.path()).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("pre_restore_")
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Row counts of every table of every live database, by database name.
    fn live_counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        DATABASES
            .iter()
            .map(|name| {
                let path = self.app.path(&format!("data/{name}.db"));
                (name.to_string(), row_counts(&path))
            })
            .collect()
    }

    fn check_integrity(&mut self, after: &str) {
        for name in DATABASES {
            let path = self.app.path(&format!("data/{name}.db"));
            let integrity: String = Connection::open(&path)
                .unwrap()
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            if integrity != "ok" {
                self.violate(format!(
                    "2: live database {name} damaged after {after}: {integrity}"
                ));
            }
        }
    }

    /// Invariant 5 beyond the output: not in any file of the app, nor in any release body.
    fn check_token_at_rest(&mut self) {
        let mut files = Vec::new();
        all_files(self.app.dir.path(), &mut files);
        all_files(self.fresh.dir.path(), &mut files);
        for file in files {
            if fs::read(&file).is_ok_and(|b| b.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()))
            {
                self.violate(format!("5: the token is in {}", file.display()));
            }
        }
        if self
            .fake
            .releases(REPO)
            .iter()
            .any(|r| r.body.contains(TOKEN))
        {
            self.violate("5: the token is in a release body".into());
        }
    }

    fn cycle(&mut self, writer: &Writer) {
        self.summary.cycles += 1;
        self.clock += chrono::Duration::hours(1);
        let faulty = self.rng.chance(40);
        if faulty {
            self.inject_faults();
        }
        // The database changes while the run starts and copies it.
        writer.allow(COMMITS_PER_CYCLE);
        let plan = self.run_plans.draw(&mut self.rng);
        if !matches!(plan, Plan::Finish) {
            self.run_planned(&["run"], plan);
            // The next command cleans up after the killed one, and the live data is whole.
            let _ = self.list();
            self.check_no_leftovers("a killed run and the next command");
            self.check_bases("a killed run");
            let _open = writer.gate.lock().unwrap();
            self.check_integrity("a killed run");
        } else {
            let out = self.run(false, &["run"]);
            match out.status.code() {
                Some(0) => {
                    self.check_no_leftovers("run");
                    self.check_bases("a run");
                    let unused = self.fake.clear_faults() as u64;
                    self.summary.faults_unused += unused;
                    if unused == 0 {
                        self.check_converged();
                    }
                }
                // The remote failed for good (a fault outlasted the budget): safe locally.
                Some(4) => self.check_no_leftovers("a run whose push failed"),
                other => self.violate(format!("run exited {other:?}: {}", stderr(&out))),
            }
        }
        self.summary.faults_unused += self.fake.clear_faults() as u64;
        if self.summary.cycles.is_multiple_of(6) {
            self.check_token_at_rest();
        }
        if self.summary.cycles.is_multiple_of(5) {
            self.drill();
        }
        if self.summary.cycles.is_multiple_of(9) {
            self.restore(writer);
        }
    }

    fn finish(&mut self) {
        // A last clean run: everything converges, and every remote snapshot restores.
        self.clock += chrono::Duration::hours(1);
        self.fake.clear_faults();
        let out = self.run(false, &["run"]);
        if !out.status.success() {
            self.violate(format!("final run failed: {}", stderr(&out)));
        }
        self.check_converged();
        self.check_bases("the final run");
        self.check_no_leftovers("the final run");
        self.check_token_at_rest();
        for v in self.fake.violations() {
            self.violate(format!("fake GitHub: {v}"));
        }
    }
}

fn newest_local_archive(dir: &Path) -> Option<PathBuf> {
    let mut archives: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".tar.gz") || name.ends_with(".tar.zst")
        })
        .collect();
    archives.sort();
    archives.pop()
}

/// Row counts of every table of every database the snapshot holds, by database name.
fn manifest_counts(archive: &Path) -> BTreeMap<String, BTreeMap<String, u64>> {
    let entries = read_archive(archive);
    let manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    manifest["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| {
            (
                db["name"].as_str().unwrap().to_string(),
                serde_json::from_value(db["tables"].clone()).unwrap(),
            )
        })
        .collect()
}

fn soak(cycles: u64, seed: u64) -> Summary {
    // First, so a panic mid-soak still tells how to replay it.
    println!("soak: {cycles} cycles, seed {seed} (replay with SOAK_SEED={seed})");
    let mut soak = Soak::new(seed);
    let writer = Writer::start(
        DATABASES
            .iter()
            .map(|name| soak.app.path(&format!("data/{name}.db")))
            .collect(),
    );
    for _ in 0..cycles {
        soak.cycle(&writer);
    }
    soak.finish();
    let rows = writer.rows.load(Ordering::Relaxed);
    drop(writer);
    let mut s = std::mem::take(&mut soak.summary);
    s.writer_commits = rows;
    println!(
        "soak (seed {seed}): {} cycles, {} faults injected ({} met by a request), {} kills, {} restores verified ({} differentials), {} restore swaps, {rows} writer commits, {} violations",
        s.cycles,
        s.faults_injected,
        s.faults_injected - s.faults_unused,
        s.kills(),
        s.restores_verified,
        s.differentials_verified,
        s.restores_swapped,
        s.violations.len()
    );
    for (step, count) in &s.kills_at {
        println!("  killed at {step}: {count}");
    }
    for (why, count) in &s.kills_missed {
        println!("  no kill ({why}): {count}");
    }
    s
}

/// `SOAK_SEED`, else `default` (a fixed seed keeps CI repeatable), else the clock.
fn seed(default: Option<u64>) -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .or(default)
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn soak_short() {
    let summary = soak(36, seed(Some(20261202)));
    assert_eq!(summary.violations, Vec::<String>::new());
    // The soak soaked: drills ran, commands died, restores swapped, faults were met.
    assert!(summary.restores_verified > 0, "{summary:?}");
    // Crashes were tested in every phase, each kill known to land where it is counted.
    for (phase, steps) in [
        ("snapshot", SNAPSHOT_STEPS),
        ("push", PUSH_STEPS),
        ("prune", PRUNE_STEPS),
        ("record", RECORD_STEPS),
        ("swap", SWAP_STEPS),
    ] {
        assert!(
            summary.kills_in(steps) > 0,
            "no kill in the {phase} phase: {summary:?}"
        );
    }
    assert!(summary.restores_swapped > 0, "{summary:?}");
    assert!(summary.differentials_verified > 0, "{summary:?}");
    assert!(
        summary.faults_injected > summary.faults_unused,
        "{summary:?}"
    );
    assert!(summary.writer_commits > summary.cycles, "{summary:?}");
}

#[test]
#[ignore = "long: run on demand (README \"Soak\")"]
fn soak_long() {
    let cycles = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let summary = soak(cycles, seed(None));
    assert_eq!(summary.violations, Vec::<String>::new());
}
