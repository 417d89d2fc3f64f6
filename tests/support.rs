use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rusqlite::Connection;
use serde_json::Value;

use crate::fake_github::{FakeGitHub, TOKEN};
use garage::{GARAGE_REGION, Garage};

pub mod fault_proxy;
pub mod garage;
mod inspect;
pub use inspect::{row_counts, sha256_hex, table_names};

/// The start of every config a test app writes: database `tasks`, local folder `backups`; a
/// macro, so that constants can be built on it.
macro_rules! tasks_config {
    () => {
        r#"
[[database]]
name = "tasks"
path = "data/tasks.db"
[local]
dir = "backups"
"#
    };
}

/// [`DIR_REMOTE_CONFIG`] without the remote, to add to: tables (`[remote]`, `[[include]]`) may
/// follow.
pub const TASKS_CONFIG: &str = tasks_config!();

/// The config [`App::new`] writes: database `tasks`, local folder `backups`, folder remote
/// `remote`.
pub const DIR_REMOTE_CONFIG: &str = concat!(
    tasks_config!(),
    r#"[remote]
type = "dir"
path = "remote"
"#
);

/// The private repository the GitHub tests push to.
pub const GITHUB_REPO: &str = "alice/app-backups";

/// An address where every connection is refused, for "the remote cannot be reached". Port 1 is
/// below the ephemeral range, so no server a test starts on port 0 can take it (a port freed by
/// dropping a listener could be handed to another test's fake in the same process).
pub const REFUSING_URL: &str = "http://127.0.0.1:1";

/// A fake GitHub holding the private repository `repo`, empty.
pub fn fake_with_private_repo(repo: &str) -> FakeGitHub {
    let fake = FakeGitHub::start();
    fake.add_repo(repo, true);
    fake
}

/// A config like [`DIR_REMOTE_CONFIG`] whose remote is `repo` on the GitHub at `api_url`, with
/// retry waits cut to milliseconds, then `extra` lines in `[remote]`.
pub fn github_config(api_url: &str, repo: &str, extra: &str) -> String {
    github_config_with_budget(api_url, repo, 5, extra)
}

/// [`github_config`] whose retries give up after `retry_budget_secs`.
pub fn github_config_with_budget(
    api_url: &str,
    repo: &str,
    retry_budget_secs: u64,
    extra: &str,
) -> String {
    format!(
        r#"{TASKS_CONFIG}[remote]
type = "github"
repo = "{repo}"
api_url = "{api_url}"
retry_budget_secs = {retry_budget_secs}
retry_max_delay_ms = 20
{extra}
"#
    )
}

/// A config like [`DIR_REMOTE_CONFIG`] whose remote is `bucket` on the S3 server at `endpoint`
/// (Garage's region, path-style), with retry waits cut to milliseconds and a stall called after
/// 2 s, then `extra` lines in `[remote]`.
pub fn s3_config(endpoint: &str, bucket: &str, extra: &str) -> String {
    format!(
        r#"{TASKS_CONFIG}[remote]
type = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "{GARAGE_REGION}"
path_style = true
retry_budget_secs = 10
retry_max_delay_ms = 50
stall_secs = 2
{extra}
"#
    )
}

/// Fails the test when the test Garage's secret shows in what a command printed.
pub fn no_secret_leak(garage: &Garage, out: Output) -> Output {
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(&garage.secret), "the secret leaked: {text}");
    }
    out
}

/// Fails the test when the fake's token shows in what a command printed.
pub fn no_token_leak(out: Output) -> Output {
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    out
}

/// Runs `cmd` with `input` on its stdin, to its end.
pub fn output_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Cuts the file at `path` to its first half (a copy cut short); returns what it held.
pub fn truncate_to_half(path: &Path) -> Vec<u8> {
    let whole = fs::read(path).unwrap();
    fs::write(path, &whole[..whole.len() / 2]).unwrap();
    whole
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// A temporary app: a folder with a config, databases and a remote folder.
pub struct App {
    pub dir: tempfile::TempDir,
}

impl App {
    /// An app with one WAL database `tasks` holding `rows` rows, a local folder and a dir remote.
    pub fn new(rows: usize) -> App {
        let app = App {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(app.path("data")).unwrap();
        fs::create_dir_all(app.path("remote")).unwrap();
        make_db(&app.path("data/tasks.db"), rows);
        app.write_config(DIR_REMOTE_CONFIG);
        app
    }

    /// [`App::new`] after one `backup now`: a snapshot local and on the remote.
    pub fn with_snapshot(rows: usize) -> App {
        let app = App::new(rows);
        let out = app.run(&["now"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        app
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_config(&self, text: &str) {
        fs::write(self.path("backup.toml"), text).unwrap();
    }

    /// Runs `backup --config <app>/backup.toml ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `backup --config <app>/backup.toml ARGS` with the fake GitHub's token in
    /// GH_ENTERPRISE_TOKEN (the fake is a server other than github.com, so gh's convention names
    /// that variable); the token must not show.
    pub fn run_github(&self, args: &[&str]) -> Output {
        no_token_leak(
            self.command(args)
                .env("GH_ENTERPRISE_TOKEN", TOKEN)
                .output()
                .unwrap(),
        )
    }

    /// `backup --config <app>/backup.toml ARGS` with the test Garage's keys in
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, for the caller to add to.
    pub fn s3_command(&self, garage: &Garage, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.env("AWS_ACCESS_KEY_ID", &garage.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &garage.secret);
        cmd
    }

    /// Runs `backup --config <app>/backup.toml ARGS` with the test Garage's keys (see
    /// [`App::s3_command`]); the secret must not show.
    pub fn run_s3(&self, garage: &Garage, args: &[&str]) -> Output {
        no_secret_leak(garage, self.s3_command(garage, args).output().unwrap())
    }

    /// Runs `backup --config <app>/backup.toml ARGS` with its clock set to `clock` (RFC 3339).
    pub fn run_at(&self, clock: &str, args: &[&str]) -> Output {
        self.command(args)
            .env(backup_agent::clock::CLOCK_ENV, clock)
            .output()
            .unwrap()
    }

    /// Runs `backup ARGS` with `BACKUP_FAILPOINT=<point>`: it aborts there, as abruptly as a
    /// `kill -9`, if it gets there.
    pub fn run_dying_at(&self, point: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.command(args)
            .env(backup_agent::failpoint::FAILPOINT_ENV, point)
            .output()
            .unwrap()
    }

    /// `backup ARGS` killed at the swap step `point`, then `backup list`, whose start recovers
    /// the swap; its output. `None` when the run finished instead, which only a point past the
    /// last rename (`swap-move-N` beyond the plan) may do.
    pub fn swap_killed_at(&self, point: &str, args: &[&str]) -> Option<Output> {
        let out = self.run_dying_at(point, args);
        if out.status.success() {
            assert!(point.starts_with("swap-move-"), "{point} was never reached");
            return None;
        }
        assert_eq!(out.status.code(), None, "{point}: killed by a signal");
        let out = self.run(&["list"]);
        assert_eq!(out.status.code(), Some(0), "{point}: {}", stderr(&out));
        Some(out)
    }

    /// `backup ARGS` started with `BACKUP_FAILPOINT=<point>:pause`, once it has said that it
    /// waits at `point` (holding the run lock). A line on its stdin lets it go on.
    pub fn paused_at(&self, args: &[&str], point: &str) -> Child {
        let (child, rest) = self.paused_at_with_stderr(args, point);
        // The rest of its stderr is read and dropped, so that it never blocks on a full pipe.
        std::thread::spawn(move || rest.for_each(drop));
        child
    }

    /// [`App::paused_at`], with the lines of its stderr that follow the pause, for a test that
    /// reads what it says next (the caller must read them, or the child may block).
    pub fn paused_at_with_stderr(
        &self,
        args: &[&str],
        point: &str,
    ) -> (Child, std::io::Lines<BufReader<std::process::ChildStderr>>) {
        let mut child = self
            .command(args)
            .env("BACKUP_FAILPOINT", format!("{point}:pause"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let expected = format!("FAILPOINT {point} paused");
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line == expected => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("`backup {}` ended before {point}: {seen:?}", args.join(" ")),
            }
        }
        (child, lines)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup"));
        cmd.arg("--config")
            .arg(self.path("backup.toml"))
            .args(args)
            .env_remove("BACKUP_CONFIG")
            // A developer's own token never reaches the fake GitHub; tests set the one they mean.
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("GH_ENTERPRISE_TOKEN")
            .env_remove("GITHUB_ENTERPRISE_TOKEN")
            // Nor a developer's own S3 keys: tests name the keys, profile or file they mean.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_CONFIG_FILE")
            .current_dir(self.dir.path());
        cmd
    }

    /// Every name in a folder of this app (`""` for the app's own), sorted.
    pub fn names_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Archive file names (`.tar.gz` or `.tar.zst`) in a folder of this app.
    pub fn archives(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| is_archive_name(n) && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The tags of the archives in a folder of this app (see [`App::archives`]), oldest first.
    pub fn archive_tags(&self, rel: &str) -> Vec<String> {
        self.archives(rel)
            .iter()
            .map(|name| tag_of(name).to_string())
            .collect()
    }

    /// Names starting with `.backup-tmp-` anywhere under the app: never any after a run.
    pub fn temp_leftovers(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(self.dir.path(), &mut found);
        found
    }

    /// No name starting with `.backup-tmp-` anywhere under the app (see [`App::temp_leftovers`]).
    pub fn assert_no_leftovers(&self) {
        let leftovers = self.temp_leftovers();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// After the command that follows a killed restore: its swap was finished or undone, so no
    /// journal is left, nor any temp file; `point` names where it was killed.
    pub fn assert_swap_settled(&self, point: &str) {
        assert!(
            !self.path("backups/restore-journal.json").exists(),
            "{point}"
        );
        let leftovers = self.temp_leftovers();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
    }

    pub fn list_json(&self) -> Vec<Value> {
        json_array(&self.run(&["list", "--json"]))
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".backup-tmp-")
        {
            found.push(entry.path());
        }
        if entry.file_type().unwrap().is_dir() {
            walk(&entry.path(), found);
        }
    }
}

/// Runs `sql` (one statement) on the database file at `db`, as the app would.
pub fn execute_on(db: impl AsRef<Path>, sql: &str) {
    Connection::open(db).unwrap().execute(sql, []).unwrap();
}

/// A WAL-mode database with a `tasks` table of `rows` rows and an empty `notes` table.
pub fn make_db(path: &Path, rows: usize) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
         PRAGMA user_version = 3;",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO tasks (title, body) VALUES (?1, ?2)",
            (format!("task {i}"), "lorem ipsum dolor sit amet ".repeat(8)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The JSON array a command that succeeded printed (`list --json`).
pub fn json_array(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The extensions a snapshot archive may have: gzip's, zstd's.
pub const ARCHIVE_EXTS: [&str; 2] = [".tar.gz", ".tar.zst"];

/// zstd's magic number, the first four bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether `name` is an archive's name: `<tag>.tar.gz` or `<tag>.tar.zst`.
pub fn is_archive_name(name: &str) -> bool {
    ARCHIVE_EXTS.iter().any(|ext| name.ends_with(ext))
}

/// The tag of the archive `name` (`<tag>.tar.gz` or `<tag>.tar.zst`); panics on any other name.
pub fn tag_of(name: &str) -> &str {
    ARCHIVE_EXTS
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or_else(|| panic!("{name} is not an archive name"))
}

/// The archive of `tag` in `dir`, whichever compression made it; panics when there is none.
pub fn archive_path(dir: &Path, tag: &str) -> PathBuf {
    ARCHIVE_EXTS
        .iter()
        .map(|ext| dir.join(format!("{tag}{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no archive of {tag} in {}", dir.display()))
}

/// The archive name of `tag` in `dir` (see [`archive_path`]).
pub fn archive_name(dir: &Path, tag: &str) -> String {
    archive_path(dir, tag)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every entry of a `.tar.gz` or `.tar.zst` (told by its first bytes, as the tool does), in
/// order, with its bytes and mode.
pub fn read_archive(path: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut file = fs::File::open(path).unwrap();
    let mut magic = [0u8; 4];
    let zstd = file.read_exact(&mut magic).is_ok() && magic == ZSTD_MAGIC;
    let file = fs::File::open(path).unwrap();
    let decoder: Box<dyn Read> = if zstd {
        Box::new(zstd::stream::read::Decoder::new(file).unwrap())
    } else {
        // A single-member decoder: a gzip archive must be one plain gzip stream.
        Box::new(flate2::read::GzDecoder::new(file))
    };
    let mut archive = tar::Archive::new(decoder);
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((name, bytes, mode));
    }
    entries
}

/// Environment variable naming, comma-separated, what the tests may not skip for lack of:
/// `cron`, `script`, `groff` (reads the manual page), `userns` (a private mount namespace for a
/// small tmpfs), `no-systemd` (a machine without a systemd user manager), `garage` (the S3
/// server, see [`garage`]), `python-mcp` (a Python with the `mcp` package, for
/// `tests/mcp_python.rs`). `.ci/run` names what it installs.
pub const REQUIRE_ENV: &str = "BACKUP_TEST_REQUIRE";

/// A test that cannot run here for lack of `what`: says so on the real stderr (past the test
/// harness's capture) as `SKIPPED: <test>: <why>`, or fails the test when `BACKUP_TEST_REQUIRE`
/// names `what`. The caller then returns.
pub fn skip(what: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let required = std::env::var(REQUIRE_ENV).unwrap_or_default();
    if required.split(',').any(|r| r.trim() == what) {
        panic!("{test}: {why}; {REQUIRE_ENV}={required} requires {what}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

/// Runs the shell `script` as root of a private user and mount namespace, where it may mount a
/// small tmpfs (no real root needed), with `$BIN` the binary and `vars` in its environment.
/// `None` where this machine allows no such namespace: the test is then reported skipped (see
/// [`skip`]) and returns.
pub fn in_mount_namespace(script: &str, vars: &[(&str, &std::ffi::OsStr)]) -> Option<Output> {
    if !can_mount_tmpfs() {
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_backup"))
        .env_remove("BACKUP_CONFIG");
    for (name, value) in vars {
        cmd.env(name, value);
    }
    Some(cmd.output().unwrap())
}

/// Whether this machine lets a test mount a small tmpfs in a private namespace (no root needed);
/// when it does not, the test is reported skipped (see [`skip`]).
fn can_mount_tmpfs() -> bool {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return true;
    }
    skip(
        "userns",
        "this machine does not allow unprivileged mount namespaces (`unshare --user --mount`)",
    );
    false
}

/// Asserts that a command exited with `code` and said `text` on stderr.
pub fn assert_exit_saying(out: &Output, code: i32, text: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(text), "{err}");
}

/// Refused up front for lack of room (exit 1), saying how much it needs.
pub fn assert_refused_for_space(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let err = stderr(out);
    assert!(err.contains("not enough free space"), "{err}");
    assert!(err.contains("needs") && err.contains("MiB"), "{err}");
}

/// Writes `entries` (name, bytes, mode) as an archive at `path`, compressed as its name says
/// (zstd for `.tar.zst`, else gzip), and records its sha256 beside it, as a snapshot's record:
/// an archive repacked by a test to play one made by hand.
pub fn write_archive(path: &Path, entries: &[(String, Vec<u8>, u32)]) {
    let out = fs::File::create(path).unwrap();
    if path.to_string_lossy().ends_with(".tar.zst") {
        let encoder = zstd::stream::write::Encoder::new(out, 3).unwrap();
        tar_into(encoder, entries).finish().unwrap();
    } else {
        let encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        tar_into(encoder, entries).finish().unwrap();
    }
    let name = path.file_name().unwrap().to_string_lossy();
    let sha = sha256_hex(&fs::read(path).unwrap());
    fs::write(
        format!("{}.sha256", path.display()),
        format!("{sha}  {name}\n"),
    )
    .unwrap();
}

/// Writes `entries` (name, bytes, mode) as a tar into `out`; gives `out` back to be finished.
fn tar_into<W: Write>(out: W, entries: &[(String, Vec<u8>, u32)]) -> W {
    let mut builder = tar::Builder::new(out);
    for (name, bytes, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}
