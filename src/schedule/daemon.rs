//! Whether what runs an installed job is there to run it: a crontab line needs a cron daemon
//! running, and a systemd user timer on a machine nobody stays logged in to (a server) needs
//! lingering, else the user's manager, and the timer with it, stops at logout.
//!
//! The reading of `/proc` and of `loginctl`'s answer are pure functions over their text, so
//! tests feed them made-up inputs; the thin callers read the real ones.

use std::path::Path;
use std::process::{Command, Stdio};

/// Process names of cron daemons: Debian's and Vixie `cron`, cronie's, dcron's and BusyBox's
/// `crond`, `fcron`, and cronie's own name on some systems.
const CRON_DAEMONS: [&str; 4] = ["cron", "crond", "cronie", "fcron"];

/// A running cron daemon: its process name and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronDaemon {
    pub name: String,
    pub pid: u32,
}

/// Whether a process with this `comm` and NUL-separated `cmdline` is a cron daemon. BusyBox
/// runs as `busybox crond` (comm `busybox`) when not started through a `crond` link.
pub fn is_cron_daemon(comm: &str, cmdline: &[u8]) -> bool {
    let comm = comm.trim_end();
    if CRON_DAEMONS.contains(&comm) {
        return true;
    }
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned());
    let program = args.next().unwrap_or_default();
    let program = program.rsplit('/').next().unwrap_or_default();
    if CRON_DAEMONS.contains(&program) {
        return true;
    }
    program == "busybox" && args.next().is_some_and(|applet| applet == "crond")
}

/// The first cron daemon among the processes of a `/proc`-like folder (`<pid>/comm`,
/// `<pid>/cmdline`). `None` when none runs; processes that end while it reads are passed over.
pub fn find_cron_daemon(proc_root: &Path) -> Option<CronDaemon> {
    let mut pids: Vec<u32> = std::fs::read_dir(proc_root)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc_root.join(pid.to_string());
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        is_cron_daemon(&comm, &cmdline).then(|| CronDaemon {
            name: comm.trim_end().to_string(),
            pid,
        })
    })
}

/// Whether this system shows every process in `/proc`, so that no cron daemon found there
/// means none runs: not on macOS (no `/proc`), and not where `/proc` is mounted with `hidepid`,
/// which hides other users' processes (root's cron among them) and makes `1/comm`, the first
/// process's name, unreadable to anyone but its owner.
pub fn proc_available(proc_root: &Path) -> bool {
    proc_root.join("self/comm").is_file() && std::fs::read(proc_root.join("1/comm")).is_ok()
}

/// Lingering as `loginctl show-user <user> -p Linger` prints it (`Linger=yes`); `None` for any
/// other answer.
pub fn parse_linger(output: &str) -> Option<bool> {
    output.lines().find_map(|line| match line.trim() {
        "Linger=yes" => Some(true),
        "Linger=no" => Some(false),
        _ => None,
    })
}

/// Whether this user's systemd manager outlives their sessions (lingering); `None` when
/// `loginctl` cannot say (no logind, as in most containers).
pub fn linger_enabled() -> Option<bool> {
    let uid = rustix::process::getuid().as_raw().to_string();
    let out = Command::new("loginctl")
        .args(["show-user", &uid, "-p", "Linger"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| parse_linger(&String::from_utf8_lossy(&out.stdout)))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder laid out as `/proc` is: one folder per pid with `comm` and `cmdline`.
    fn fake_proc(processes: &[(u32, &str, &[u8])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("self")).unwrap();
        std::fs::write(root.path().join("self/comm"), "backup\n").unwrap();
        for (pid, comm, cmdline) in processes {
            let dir = root.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        }
        root
    }

    #[test]
    fn each_kind_of_cron_daemon_is_found_by_its_process() {
        for (comm, cmdline) in [
            ("cron", &b"/usr/sbin/cron\0-f\0"[..]),
            ("crond", b"/usr/sbin/crond\0-n\0"),
            ("fcron", b"/usr/sbin/fcron\0"),
            ("busybox", b"/bin/busybox\0crond\0-f\0-l\x002\0"),
            ("crond", b"crond\0-f\0"),
        ] {
            assert!(is_cron_daemon(comm, cmdline), "{comm} {cmdline:?}");
        }
        for (comm, cmdline) in [
            ("bash", &b"/bin/bash\0"[..]),
            ("busybox", b"/bin/busybox\0sh\0"),
            ("anacron", b"/usr/sbin/anacron\0-d\0"),
            ("crontab", b"crontab\0-l\0"),
            ("vim", b"vim\0/etc/cron\0"),
        ] {
            assert!(!is_cron_daemon(comm, cmdline), "{comm} {cmdline:?}");
        }
    }

    #[test]
    fn the_daemon_is_found_among_other_processes_or_reported_missing() {
        let running = fake_proc(&[
            (1, "systemd", b"/sbin/init\0"),
            (412, "busybox", b"/bin/busybox\0crond\0-f\0"),
            (77, "sshd", b"sshd: /usr/sbin/sshd\0"),
        ]);
        assert_eq!(
            find_cron_daemon(running.path()),
            Some(CronDaemon {
                name: "busybox".into(),
                pid: 412
            })
        );
        assert!(proc_available(running.path()));

        let stopped = fake_proc(&[(1, "init", b"/sbin/init\0"), (9, "bash", b"bash\0")]);
        assert_eq!(find_cron_daemon(stopped.path()), None);

        let no_proc = tempfile::tempdir().unwrap();
        assert!(!proc_available(no_proc.path()));

        // `hidepid`: only this user's own processes show, so a missing daemon proves nothing.
        let hidden = fake_proc(&[(9, "bash", b"bash\0")]);
        assert!(!proc_available(hidden.path()));
    }

    #[test]
    fn lingering_is_read_from_loginctl() {
        assert_eq!(parse_linger("Linger=yes\n"), Some(true));
        assert_eq!(parse_linger("Linger=no\n"), Some(false));
        assert_eq!(parse_linger(""), None);
        assert_eq!(parse_linger("Failed to get user: No such user\n"), None);
    }
}
