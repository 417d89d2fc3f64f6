//! The soak: simulated hourly cycles of `backup run` against the fake GitHub, with random
//! transient faults, a writer that keeps committing to the live database, random `kill -9` of
//! `run` and `restore`, and restore drills; the invariants of docs/invariants.md are checked
//! after every step.
//!
//! `soak_short` runs in `cargo test` (a few dozen cycles). The long one is on demand:
//! `SOAK_CYCLES=500 SOAK_SEED=7 cargo test --test cli soak_long -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
}

/// Keeps committing rows to the live database, one short connection per batch; `gate` held
/// by the soak stops it (an app shut down for a restore).
struct Writer {
    gate: Arc<Mutex<()>>,
    stop: Arc<AtomicBool>,
    rows: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Commits to every database in `dbs` in turn, as an app with several stores does.
    fn start(dbs: Vec<PathBuf>) -> Writer {
        let gate = Arc::new(Mutex::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let rows = Arc::new(AtomicU64::new(0));
        let thread = {
            let (gate, stop, rows) = (gate.clone(), stop.clone(), rows.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
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
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        };
        Writer {
            gate,
            stop,
            rows,
            thread: Some(thread),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
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
    kills: u64,
    restores_verified: u64,
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
    summary: Summary,
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

    /// Starts, then kills with SIGKILL after a random delay under `within_ms`, or dies at
    /// `failpoint` (an abort, as abrupt as a kill). Returns whether it died, and its output.
    fn run_killed(
        &mut self,
        args: &[&str],
        within_ms: u64,
        failpoint: Option<&str>,
    ) -> (bool, Output) {
        let delay = Duration::from_millis(self.rng.below(within_ms.max(1)));
        let mut cmd = self.command(&self.app, args);
        if let Some(point) = failpoint {
            cmd.env("BACKUP_FAILPOINT", point);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let killed = if failpoint.is_some() {
            false
        } else {
            std::thread::sleep(delay);
            matches!(child.try_wait(), Ok(None)) && child.kill().is_ok()
        };
        let out = child.wait_with_output().unwrap();
        self.check_output(args, &out);
        // A failpoint abort ends by signal, with no exit code.
        let died = killed || out.status.code().is_none();
        if died {
            self.summary.kills += 1;
        }
        (died, out)
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
        let tag = on_remote[self.rng.below(on_remote.len() as u64) as usize].clone();
        let out = self.run(true, &["verify", &tag]);
        if out.status.success() {
            self.summary.restores_verified += 1;
        } else {
            self.violate(format!(
                "1: {tag} is listed on the remote but does not verify: {}",
                stderr(&out)
            ));
        }
    }

    /// A real restore of the newest snapshot, with the app stopped; killed at random. After
    /// the next command, the live data is the old state or the snapshot's, whole (invariant 2).
    fn restore(&mut self, writer: &Writer) {
        let _stopped = writer.gate.lock().unwrap();
        let before = self.live_counts();
        let Some(latest) = newest_local_archive(&self.app.path("backups")) else {
            return;
        };
        let snapshot = manifest_counts(&latest);
        // Half the restores die: at a random moment, or at a chosen step of the swap.
        let args = ["restore", "latest", "--yes"];
        let points = [
            "restore-checked",
            "swap-journaled",
            "swap-move-0",
            "swap-move-1",
            "swap-recorded",
            "swap-committed",
        ];
        let (died, out) = match self.rng.below(4) {
            0 => self.run_killed(&args, 150, None),
            1 => {
                let point = points[self.rng.below(points.len() as u64) as usize];
                self.run_killed(&args, 0, Some(point))
            }
            _ => (false, self.run(false, &args)),
        };
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
        if self.rng.chance(15) {
            let point = ["snapshot-copied", "push-started"][self.rng.below(2) as usize];
            let failpoint = self.rng.chance(30).then_some(point);
            self.run_killed(&["run"], 250, failpoint);
            // The next command cleans up after the killed one, and the live data is whole.
            let _ = self.list();
            self.check_no_leftovers("a killed run and the next command");
            let _open = writer.gate.lock().unwrap();
            self.check_integrity("a killed run");
        } else {
            let out = self.run(false, &["run"]);
            match out.status.code() {
                Some(0) => {
                    self.check_no_leftovers("run");
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
        if self.summary.cycles.is_multiple_of(12) {
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
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
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
        "soak (seed {seed}): {} cycles, {} faults injected ({} met by a request), {} kills, {} restores verified, {} restore swaps, {rows} writer commits, {} violations",
        s.cycles,
        s.faults_injected,
        s.faults_injected - s.faults_unused,
        s.kills,
        s.restores_verified,
        s.restores_swapped,
        s.violations.len()
    );
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
    assert!(summary.kills > 0, "{summary:?}");
    assert!(summary.restores_swapped > 0, "{summary:?}");
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
