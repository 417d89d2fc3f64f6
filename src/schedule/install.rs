//! Putting a job in place, finding it again and removing it: files under the user's home,
//! `systemctl --user`, `crontab`, `launchctl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::job::{Job, cron_program, launchd_program, systemd_program};
use super::{Backend, Interval};
use crate::error::{Error, Result};
use crate::fsutil;

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
                Error::Schedule(
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
        Err(Error::Schedule(
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
        return Err(Error::Schedule(
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
    // No `crontab` program, or a crontab that cannot be read (cron denied to this user): no
    // job of ours that we could manage; installing with cron reports the error itself.
    let cron = match read_crontab() {
        Ok(table) => table.lines().find(|l| is_ours(l, id)).map(str::to_string),
        Err(e) => {
            tracing::debug!("reading the crontab: {e}");
            None
        }
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

/// A crontab line is ours when it ends with our tag.
pub(super) fn is_ours(line: &str, id: &str) -> bool {
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
            Error::Schedule(
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
    Err(Error::Schedule(format!(
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
        .map_err(|e| Error::Schedule(format!("cannot hand the new table to `crontab`: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Schedule(format!("`crontab -` did not finish: {e}")))?;
    if !out.status.success() {
        return Err(Error::Schedule(format!(
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
        Err(Error::Schedule(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            first_line(&String::from_utf8_lossy(&out.stderr))
        )))
    }
}

fn tool_missing(program: &str, e: &std::io::Error) -> Error {
    Error::Schedule(format!(
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
