//! Running `backup run` unattended: the cadence (`[schedule]`), and the job that runs it — a
//! systemd user timer, a tagged crontab line, or a launchd agent.
//!
//! A job belongs to one config file: its id is derived from the config's absolute path, so two
//! apps on one machine get two jobs, and installing again replaces only that config's job.

pub mod interval;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil;
pub use interval::Interval;

/// `[schedule]`: how often the job runs, and how late a run may be before `backup status` calls
/// the backups stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cadence {
    pub every: Interval,
    pub grace: Interval,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence {
            every: Interval::from_secs(3_600),
            // Room for the timer's randomized delay, a slow push and its retries.
            grace: Interval::from_secs(30 * 60),
        }
    }
}

impl Cadence {
    /// The age past which the last good snapshot is stale.
    pub fn window(&self) -> Interval {
        Interval::from_secs(self.every.as_secs() + self.grace.as_secs())
    }
}

/// What runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A systemd user timer (Persistent, so a run missed while the machine slept happens on wake).
    Systemd,
    /// A line in the user's crontab, tagged with the job id.
    Cron,
    /// A launchd agent in `~/Library/LaunchAgents` (macOS).
    Launchd,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Systemd => "systemd",
            Backend::Cron => "cron",
            Backend::Launchd => "launchd",
        }
    }
}

/// The scheduled job of one config file.
#[derive(Clone, Debug)]
pub struct Job {
    /// `backup-agent-<8 hex>`: the unit name, the crontab tag and the launchd label.
    pub id: String,
    /// The `backup` executable, absolute.
    pub program: PathBuf,
    /// The config file, absolute.
    pub config: PathBuf,
    pub every: Interval,
}

/// The config file as the job names it: absolute, without symlinks or `..`, so the same file
/// reached by two paths is one job.
pub fn canonical_config(config: &Path) -> PathBuf {
    std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf())
}

/// The id of the job that runs `config` (pass it through [`canonical_config`]).
pub fn job_id(config: &Path) -> String {
    let digest = Sha256::digest(config.as_os_str().as_encoded_bytes());
    format!("backup-agent-{}", &fsutil::hex(&digest)[..8])
}

impl Job {
    /// The job for `config`, run by `program` every `every`.
    ///
    /// # Errors
    /// [`Error::Config`] when `every` is not a whole number of minutes that divides an hour, or
    /// of hours that divides a day (schedulers count on the clock, so other periods drift).
    pub fn new(program: &Path, config: &Path, every: Interval) -> Result<Job> {
        for path in [program, config] {
            if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
                return Err(Error::Config(format!(
                    "cannot schedule with a line break in the path {}; rename the folder",
                    path.display()
                )));
            }
        }
        if Period::of(every).is_none() {
            return Err(Error::Config(format!(
                "cannot schedule every {every}: use a period that divides an hour or a day (1m, 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h or 1d)"
            )));
        }
        Ok(Job {
            id: job_id(config),
            program: program.to_path_buf(),
            config: config.to_path_buf(),
            every,
        })
    }

    /// A stable number from the id and the host name: spreads machines over the hour, since
    /// cron has no randomized delay and every laptop starting at :00 is a burst on the remote.
    fn spread(&self) -> u64 {
        let digest = Sha256::digest(format!("{}@{}", self.id, crate::tag::hostname()));
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn period(&self) -> Period {
        Period::of(self.every).expect("checked in Job::new")
    }

    /// The crontab line, ending with the tag that finds it again.
    pub fn crontab_line(&self) -> String {
        let spread = self.spread();
        let minute = spread % 60;
        let when = match self.period() {
            Period::Minutes(1) => "* * * * *".to_string(),
            Period::Minutes(m) => format!("{}-59/{m} * * * *", spread % m),
            Period::Hours(1) => format!("{minute} * * * *"),
            Period::Hours(h) => format!("{minute} {}-23/{h} * * *", (spread / 60) % h),
            Period::Day => format!("{minute} {} * * *", (spread / 60) % 24),
        };
        format!(
            "{when} {} run --config {} # {}",
            cron_quote(&self.program),
            cron_quote(&self.config),
            self.id
        )
    }

    /// The systemd user units: (file name, text) for the service and the timer.
    pub fn systemd_units(&self) -> [(String, String); 2] {
        let calendar = match self.period() {
            Period::Minutes(1) => "minutely".to_string(),
            Period::Minutes(m) => format!("*-*-* *:00/{m}:00"),
            Period::Hours(1) => "hourly".to_string(),
            Period::Hours(h) => format!("*-*-* 00/{h}:00:00"),
            Period::Day => "daily".to_string(),
        };
        let delay = (self.every.as_secs() / 10).min(300);
        // `%` starts a specifier anywhere in a unit file.
        let config = self.config.display().to_string().replace('%', "%%");
        let service = format!(
            "# Written by `backup schedule install`; `backup schedule remove` deletes it.\n\
             [Unit]\n\
             Description=backup-agent snapshot of {config}\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart={} run --config {}\n\
             Nice=10\n",
            systemd_quote(&self.program),
            systemd_quote(&self.config),
        );
        let timer = format!(
            "# Written by `backup schedule install`; `backup schedule remove` deletes it.\n\
             [Unit]\n\
             Description=backup-agent snapshot of {config}, every {}\n\
             \n\
             [Timer]\n\
             OnCalendar={calendar}\n\
             Persistent=true\n\
             RandomizedDelaySec={delay}\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            self.every
        );
        [
            (format!("{}.service", self.id), service),
            (format!("{}.timer", self.id), timer),
        ]
    }

    /// The launchd agent: (file name, text). `StartInterval` runs a missed interval on wake.
    pub fn launchd_plist(&self, home: &Path) -> (String, String) {
        let log = home.join("Library/Logs").join(format!("{}.log", self.id));
        let args = [
            xml_escape(&self.program.display().to_string()),
            "run".to_string(),
            "--config".to_string(),
            xml_escape(&self.config.display().to_string()),
        ]
        .iter()
        .map(|a| format!("        <string>{a}</string>\n"))
        .collect::<String>();
        let text = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `backup schedule install --launchd`; `backup schedule remove` deletes it. -->
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{id}</string>
    <key>ProgramArguments</key>
    <array>
{args}    </array>
    <key>StartInterval</key>
    <integer>{secs}</integer>
    <key>StandardErrorPath</key>
    <string>{log}</string>
    <key>ProcessType</key>
    <string>Background</string>
</dict>
</plist>
"#,
            id = self.id,
            secs = self.every.as_secs(),
            log = xml_escape(&log.display().to_string()),
        );
        (format!("{}.plist", self.id), text)
    }
}

/// The periods a clock-based scheduler can keep without drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Period {
    Minutes(u64),
    Hours(u64),
    Day,
}

impl Period {
    fn of(every: Interval) -> Option<Period> {
        let secs = every.as_secs();
        match secs {
            86_400 => Some(Period::Day),
            s if s % 3_600 == 0 && s > 0 && 24 % (s / 3_600) == 0 => Some(Period::Hours(s / 3_600)),
            s if s % 60 == 0 && s > 0 && 60 % (s / 60) == 0 => Some(Period::Minutes(s / 60)),
            _ => None,
        }
    }
}

/// A path as one word for `sh`, which cron runs the line with; `%` is escaped because cron
/// turns a bare one into a newline.
fn cron_quote(path: &Path) -> String {
    let text = path.display().to_string();
    format!("'{}'", text.replace('\'', r"'\''").replace('%', r"\%"))
}

/// A path as one word in a systemd `ExecStart=`: double quotes, C escapes, and `%`/`$` doubled
/// so systemd expands neither specifiers nor variables in it.
fn systemd_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let escaped = text
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where the job's files live for this user.
#[derive(Clone, Debug)]
pub struct Places {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
    pub systemd_dir: PathBuf,
    /// `~/Library/LaunchAgents`.
    pub launchd_dir: PathBuf,
}

impl Places {
    /// From `HOME` and `XDG_CONFIG_HOME`.
    ///
    /// # Errors
    /// When `HOME` is not set.
    pub fn from_env() -> Result<Places> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Other(
                    "HOME is not set; the schedule lives in your home folder: set it".into(),
                )
            })?;
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        Ok(Places {
            systemd_dir: config_home.join("systemd/user"),
            launchd_dir: home.join("Library/LaunchAgents"),
            home,
        })
    }
}

/// Whether `systemctl --user` can talk to a user manager here (not in most containers, nor
/// over ssh without lingering).
pub fn systemd_available() -> bool {
    Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a `crontab` program is installed.
pub fn cron_available() -> bool {
    Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The backend `install` uses when none is asked for: launchd on macOS, a systemd user timer
/// where the user manager answers, else cron.
///
/// # Errors
/// When none of them is available, with what to install.
pub fn default_backend() -> Result<Backend> {
    if cfg!(target_os = "macos") {
        Ok(Backend::Launchd)
    } else if systemd_available() {
        Ok(Backend::Systemd)
    } else if cron_available() {
        Ok(Backend::Cron)
    } else {
        Err(Error::Other(
            "no scheduler found: `systemctl --user` does not answer and there is no `crontab`; install cron (e.g. `apt-get install cron`) or enable a systemd user session".into(),
        ))
    }
}

/// What `install` did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Serialize)]
pub struct Installed {
    pub id: String,
    pub backend: Backend,
    pub every: Interval,
    /// Files written, with their text.
    pub files: Vec<WrittenFile>,
    /// The crontab line, for cron.
    pub crontab_line: Option<String>,
    /// The job was there already and has been replaced.
    pub replaced: bool,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Something left for the user to do (loading a launchd agent on another OS).
    pub next_step: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub text: String,
}

/// Installs `job` with `backend`, replacing this config's job wherever it was installed before,
/// so there is exactly one.
///
/// # Errors
/// When a file cannot be written or the scheduler refuses the job (its own message quoted).
pub fn install(job: &Job, backend: Backend, places: &Places, dry_run: bool) -> Result<Installed> {
    let before = state(&job.id, places)?;
    let mut installed = Installed {
        id: job.id.clone(),
        backend,
        every: job.every,
        files: Vec::new(),
        crontab_line: None,
        replaced: before.is_installed(),
        dry_run,
        next_step: None,
    };
    match backend {
        Backend::Systemd => {
            for (name, text) in job.systemd_units() {
                installed.files.push(WrittenFile {
                    path: places.systemd_dir.join(name),
                    text,
                });
            }
        }
        Backend::Launchd => {
            let (name, text) = job.launchd_plist(&places.home);
            installed.files.push(WrittenFile {
                path: places.launchd_dir.join(name),
                text,
            });
        }
        Backend::Cron => installed.crontab_line = Some(job.crontab_line()),
    }
    if dry_run {
        return Ok(installed);
    }
    if backend == Backend::Systemd && !systemd_available() {
        return Err(Error::Other(
            "`systemctl --user` does not answer here (no user session); use --cron, or let the user manager run without a login (`loginctl enable-linger`)".into(),
        ));
    }
    // Elsewhere first: a job moved from cron to systemd must not run twice. A launchd agent
    // written on another OS runs nothing here, so the working job stays.
    if backend != Backend::Launchd || cfg!(target_os = "macos") {
        remove_except(&job.id, places, &before, Some(backend))?;
    }
    for file in &installed.files {
        let dir = file.path.parent().expect("a file in a folder");
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("cannot create scheduler folder", dir, e))?;
        fsutil::write_atomic(&file.path, file.text.as_bytes())?;
    }
    match backend {
        Backend::Systemd => {
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", &format!("{}.timer", job.id)])?;
        }
        Backend::Cron => {
            let table = read_crontab()?;
            let mut lines: Vec<&str> = table.lines().filter(|l| !is_ours(l, &job.id)).collect();
            let line = job.crontab_line();
            lines.push(&line);
            write_crontab(&lines)?;
        }
        Backend::Launchd => {
            let path = &installed.files[0].path;
            if cfg!(target_os = "macos") {
                let path = path.display().to_string();
                // A loaded agent keeps its old interval until it is unloaded.
                let _ = run_tool("launchctl", &["unload", &path]);
                run_tool("launchctl", &["load", "-w", &path])?;
            } else {
                installed.next_step = Some(format!(
                    "on the Mac this home belongs to, load it with `launchctl load -w {}`",
                    path.display()
                ));
            }
        }
    }
    Ok(installed)
}

/// Where this config's job is installed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobState {
    pub id: String,
    /// The tagged crontab line.
    pub cron: Option<String>,
    /// The timer unit file.
    pub systemd: Option<PathBuf>,
    /// The launchd agent file.
    pub launchd: Option<PathBuf>,
}

impl JobState {
    /// The program each installed entry runs, read back from the entry itself: a binary moved,
    /// upgraded elsewhere or removed by `cargo clean` leaves a job that silently never runs.
    pub fn programs(&self, places: &Places) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Some(line) = &self.cron {
            found.extend(cron_program(line));
        }
        if self.systemd.is_some() {
            let service = places.systemd_dir.join(format!("{}.service", self.id));
            found.extend(
                std::fs::read_to_string(service)
                    .ok()
                    .and_then(|text| systemd_program(&text)),
            );
        }
        if let Some(plist) = &self.launchd {
            found.extend(
                std::fs::read_to_string(plist)
                    .ok()
                    .and_then(|text| launchd_program(&text)),
            );
        }
        found
    }

    pub fn is_installed(&self) -> bool {
        self.cron.is_some() || self.systemd.is_some() || self.launchd.is_some()
    }

    pub fn backends(&self) -> Vec<Backend> {
        let mut found = Vec::new();
        if self.systemd.is_some() {
            found.push(Backend::Systemd);
        }
        if self.cron.is_some() {
            found.push(Backend::Cron);
        }
        if self.launchd.is_some() {
            found.push(Backend::Launchd);
        }
        found
    }
}

/// Finds this config's job in every backend. A machine without `crontab` simply has no line.
///
/// # Errors
/// When `crontab -l` fails for another reason than an empty table.
pub fn state(id: &str, places: &Places) -> Result<JobState> {
    let timer = places.systemd_dir.join(format!("{id}.timer"));
    let plist = places.launchd_dir.join(format!("{id}.plist"));
    // A crontab that cannot be read (cron denied to this user) holds no job of ours that we
    // could manage; installing with cron reports the error itself.
    let cron = match cron_available().then(read_crontab) {
        Some(Ok(table)) => table.lines().find(|l| is_ours(l, id)).map(str::to_string),
        Some(Err(e)) => {
            tracing::debug!("reading the crontab: {e}");
            None
        }
        None => None,
    };
    Ok(JobState {
        id: id.to_string(),
        cron,
        systemd: timer.exists().then_some(timer),
        launchd: plist.exists().then_some(plist),
    })
}

/// Removes this config's job from every backend; other crontab lines and units stay.
///
/// # Errors
/// When a file cannot be removed or the crontab cannot be rewritten.
pub fn remove(id: &str, places: &Places) -> Result<JobState> {
    let before = state(id, places)?;
    remove_except(id, places, &before, None)?;
    Ok(before)
}

fn remove_except(id: &str, places: &Places, found: &JobState, keep: Option<Backend>) -> Result<()> {
    if found.systemd.is_some() && keep != Some(Backend::Systemd) {
        if systemd_available() {
            systemctl(&["disable", "--now", &format!("{id}.timer")])?;
        }
        for ext in ["timer", "service"] {
            remove_file(&places.systemd_dir.join(format!("{id}.{ext}")))?;
        }
        if systemd_available() {
            systemctl(&["daemon-reload"])?;
        }
    }
    if found.cron.is_some() && keep != Some(Backend::Cron) {
        let table = read_crontab()?;
        let lines: Vec<&str> = table.lines().filter(|l| !is_ours(l, id)).collect();
        write_crontab(&lines)?;
    }
    if let Some(plist) = found
        .launchd
        .as_ref()
        .filter(|_| keep != Some(Backend::Launchd))
    {
        if cfg!(target_os = "macos") {
            // Unloading a job that is not loaded fails; the file goes either way.
            let _ = run_tool("launchctl", &["unload", "-w", &plist.display().to_string()]);
        }
        remove_file(plist)?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("cannot remove scheduler file", path, e))
        }
        _ => Ok(()),
    }
}

/// The program of a crontab line as [`Job::crontab_line`] writes it: the sixth field, one
/// single-quoted sh word.
fn cron_program(line: &str) -> Option<PathBuf> {
    let mut rest = line.trim_start();
    for _ in 0..5 {
        let end = rest.find(char::is_whitespace)?;
        rest = rest[end..].trim_start();
    }
    let mut word = String::new();
    let mut chars = rest.chars().peekable();
    loop {
        match chars.next()? {
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    c => word.push(c),
                }
            },
            // `'\''` inside the word: an escaped quote between two quoted parts.
            '\\' => word.push(chars.next()?),
            c if c.is_whitespace() => break,
            _ => return None,
        }
        if chars.peek().is_none_or(|c| c.is_whitespace()) {
            break;
        }
    }
    // Cron turns `\%` back into `%` before sh sees the line.
    Some(PathBuf::from(word.replace("\\%", "%")))
}

/// The program of a service as [`Job::systemd_units`] writes it: `ExecStart="…"`.
fn systemd_program(service: &str) -> Option<PathBuf> {
    let quoted = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))?
        .strip_prefix('"')?;
    let mut word = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next()? {
            '"' => break,
            '\\' => word.push(chars.next()?),
            c @ ('%' | '$') => {
                chars.next().filter(|&next| next == c)?;
                word.push(c);
            }
            c => word.push(c),
        }
    }
    Some(PathBuf::from(word))
}

/// The program of an agent as [`Job::launchd_plist`] writes it: the first string of
/// `ProgramArguments`.
fn launchd_program(plist: &str) -> Option<PathBuf> {
    let after = plist.split_once("<key>ProgramArguments</key>")?.1;
    let start = after.find("<string>")? + "<string>".len();
    let end = start + after[start..].find("</string>")?;
    let text = after[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(PathBuf::from(text))
}

/// A crontab line is ours when it ends with our tag.
fn is_ours(line: &str, id: &str) -> bool {
    // A line the user commented out is theirs now.
    !line.trim_start().starts_with('#')
        && line
            .trim_end()
            .strip_suffix(id)
            .is_some_and(|rest| rest.trim_end().ends_with('#'))
}

fn read_crontab() -> Result<String> {
    let out = Command::new("crontab")
        .arg("-l")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_missing("crontab", &e))?;
    if out.status.success() {
        // Rewritten from this text later: a lossy decode would change the user's other lines.
        return String::from_utf8(out.stdout).map_err(|_| {
            Error::Other(
                "your crontab holds bytes that are not UTF-8, and rewriting it could change them; fix it with `crontab -e`, or use --systemd".into(),
            )
        });
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "no crontab for <user>" (cronie, Debian), "can't open '<user>'" (BusyBox): an empty
    // table, not a failure.
    if stderr.contains("no crontab") || stderr.contains("can't open") {
        return Ok(String::new());
    }
    Err(Error::Other(format!(
        "`crontab -l` failed: {}",
        first_line(&stderr)
    )))
}

fn write_crontab(lines: &[&str]) -> Result<()> {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_missing("crontab", &e))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|e| Error::Other(format!("cannot hand the new table to `crontab`: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Other(format!("`crontab -` did not finish: {e}")))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "`crontab -` refused the new table: {}",
            first_line(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result<()> {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    run_tool("systemctl", &all)
}

fn run_tool(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_missing(program, &e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            first_line(&String::from_utf8_lossy(&out.stderr))
        )))
    }
}

fn tool_missing(program: &str, e: &std::io::Error) -> Error {
    Error::Other(format!(
        "cannot run `{program}` ({e}); install it, or pick another scheduler (--systemd, --cron, --launchd)"
    ))
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(config: &str, every: &str) -> Job {
        Job::new(
            Path::new("/opt/backup agent/bin/backup"),
            Path::new(config),
            every.parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn only_periods_a_clock_can_keep_are_accepted() {
        for ok in ["1m", "5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d"] {
            assert!(Period::of(ok.parse().unwrap()).is_some(), "{ok}");
        }
        for bad in ["0s", "30s", "7m", "45m", "5h", "2d", "1h30m"] {
            let err = Job::new(Path::new("/b"), Path::new("/c"), bad.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains("divides an hour or a day"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_crontab_line_quotes_paths_and_carries_the_tag() {
        let j = job("/home/ann/My Apps/it's 100%/backup.toml", "1h");
        let line = j.crontab_line();
        assert!(
            line.starts_with(&format!("{} * * * * ", j.spread() % 60)),
            "{line}"
        );
        assert!(
            line.contains(r"'/opt/backup agent/bin/backup' run --config "),
            "{line}"
        );
        assert!(
            line.contains(r"'/home/ann/My Apps/it'\''s 100\%/backup.toml'"),
            "{line}"
        );
        assert!(is_ours(&line, &j.id));
        assert!(!is_ours(&line, "backup-agent-00000000"));
        assert!(!is_ours("0 * * * * other-job", &j.id));
        assert!(
            !is_ours(&format!("# {line}"), &j.id),
            "commented out by the user"
        );
        let every_15 = job("/c.toml", "15m").crontab_line();
        assert!(
            every_15.split(' ').next().unwrap().ends_with("-59/15"),
            "{every_15}"
        );
        let every_6h = job("/c.toml", "6h").crontab_line();
        assert!(
            every_6h.split(' ').nth(1).unwrap().ends_with("-23/6"),
            "{every_6h}"
        );
    }

    #[test]
    fn systemd_units_quote_paths_and_catch_up_after_sleep() {
        let j = job("/home/ann/My Apps/100%/$HOME.toml", "1h");
        let [(service_name, service), (timer_name, timer)] = j.systemd_units();
        assert_eq!(service_name, format!("{}.service", j.id));
        assert_eq!(timer_name, format!("{}.timer", j.id));
        assert!(
            service.contains(
                "ExecStart=\"/opt/backup agent/bin/backup\" run --config \"/home/ann/My Apps/100%%/$$HOME.toml\""
            ),
            "{service}"
        );
        assert!(timer.contains("OnCalendar=hourly\n"), "{timer}");
        assert!(timer.contains("Persistent=true\n"), "{timer}");
        assert!(timer.contains("RandomizedDelaySec=300\n"), "{timer}");
        assert!(
            job("/c.toml", "15m").systemd_units()[1]
                .1
                .contains("OnCalendar=*-*-* *:00/15:00\n")
        );
    }

    #[test]
    fn the_program_reads_back_from_every_kind_of_entry() {
        for program in [
            "/opt/backup agent/bin/backup",
            "/home/ann/it's 100% $real/\\odd\"name/backup",
            "/usr/local/bin/backup",
        ] {
            let j = Job::new(
                Path::new(program),
                Path::new("/c.toml"),
                "1h".parse().unwrap(),
            )
            .unwrap();
            let expected = Some(PathBuf::from(program));
            assert_eq!(
                cron_program(&j.crontab_line()),
                expected,
                "cron: {}",
                j.crontab_line()
            );
            assert_eq!(
                systemd_program(&j.systemd_units()[0].1),
                expected,
                "systemd"
            );
            assert_eq!(
                launchd_program(&j.launchd_plist(Path::new("/h")).1),
                expected,
                "launchd"
            );
        }
        assert_eq!(cron_program("0 * * * * backup run"), None);
    }

    #[test]
    fn each_config_has_its_own_job() {
        assert_ne!(
            job_id(Path::new("/a/backup.toml")),
            job_id(Path::new("/b/backup.toml"))
        );
        assert_eq!(
            job_id(Path::new("/a/backup.toml")),
            job_id(Path::new("/a/backup.toml"))
        );
    }

    #[test]
    fn the_launchd_plist_escapes_paths() {
        let (name, text) =
            job("/Users/ann/R&D <x>/backup.toml", "1h").launchd_plist(Path::new("/Users/ann"));
        assert!(name.ends_with(".plist"));
        assert!(
            text.contains("<string>/Users/ann/R&amp;D &lt;x&gt;/backup.toml</string>"),
            "{text}"
        );
        assert!(text.contains("<integer>3600</integer>"), "{text}");
    }
}
