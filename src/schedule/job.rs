//! The job of one config file, as text for each scheduler (and read back from it): the crontab
//! line, the systemd service and timer, the launchd plist.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Interval;
use crate::error::{Error, Result};
use crate::units;

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
    format!("backup-agent-{}", &units::hex(&digest)[..8])
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
        check_period(every).map_err(|msg| {
            Error::Config(format!("cannot schedule every {every}: the period {msg}"))
        })?;
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

/// Refuses a period a clock-based scheduler cannot keep (one that divides neither an hour nor a
/// day), naming the nearest periods that work. The config checks it on load, so a cadence that
/// `schedule install` would refuse never reaches `status` either.
///
/// # Errors
/// One line saying which periods to use instead.
pub fn check_period(every: Interval) -> std::result::Result<(), String> {
    if Period::of(every).is_some() {
        return Ok(());
    }
    let secs = every.as_secs();
    let workable = || {
        (1..=86_400 / 60)
            .map(|minutes| Interval::from_secs(minutes * 60))
            .filter(|p| Period::of(*p).is_some())
    };
    let below = workable().rfind(|p| p.as_secs() < secs);
    let above = workable().find(|p| p.as_secs() > secs);
    let nearest = match (below, above) {
        (Some(b), Some(a)) => format!("{b} or {a}"),
        (Some(only), None) | (None, Some(only)) => only.to_string(),
        (None, None) => unreachable!("1m and 1d both work"),
    };
    Err(format!("must divide an hour or a day: use {nearest}"))
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

/// The program of a crontab line as [`Job::crontab_line`] writes it: the sixth field, one
/// single-quoted sh word.
pub(super) fn cron_program(line: &str) -> Option<PathBuf> {
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
pub(super) fn systemd_program(service: &str) -> Option<PathBuf> {
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
pub(super) fn launchd_program(plist: &str) -> Option<PathBuf> {
    let after = plist.split_once("<key>ProgramArguments</key>")?.1;
    let start = after.find("<string>")? + "<string>".len();
    let end = start + after[start..].find("</string>")?;
    let text = after[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::install::is_ours;

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
            assert!(err.contains("divide an hour or a day"), "{bad}: {err}");
        }
        for (bad, nearest) in [
            ("45m", "use 30m or 1h"),
            ("7m", "use 6m or 10m"),
            ("30s", "use 1m"),
            ("5h", "use 4h or 6h"),
            ("2d", "use 1d"),
        ] {
            let err = check_period(bad.parse().unwrap()).unwrap_err();
            assert!(err.ends_with(nearest), "{bad}: {err}");
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
