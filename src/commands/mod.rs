//! One module per command: arguments, one library call, rendering.

pub mod auth;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod init;
pub mod list;
pub mod man;
pub mod prune;
pub mod restore;
pub mod rollback;
pub mod schedule;
pub mod show;
pub mod show_config;
pub mod snapshot;
pub mod stats;
pub mod status;
pub mod verify;

/// A command's `--json` report on stdout, as one pretty-printed document.
pub fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializes")
    );
}

/// A report as JSON or in words, after the notes it carries (on stderr, one line each).
pub fn print_report<T: serde::Serialize>(json: bool, notes: &[String], report: &T, render: fn(&T)) {
    for note in notes {
        errln!("backup: note: {note}");
    }
    if json {
        print_json(report);
    } else {
        render(report);
    }
}
