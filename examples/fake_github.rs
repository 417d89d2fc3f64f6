//! The project's fake GitHub (`tests/fake_github.rs`) as a server for `benches/github.sh`: one
//! private repository, served on loopback until stdin closes.
//!
//! ```sh
//! cargo run --release --example fake_github -- [--link-rate BYTES_PER_SEC] [--log]
//! ```
//!
//! It prints `FAKE_GITHUB <api_url> <owner/repo> <token>` once it listens. `--link-rate` plays a
//! slow link both ways; `--log` prints each request as it is answered, `LOG <unix ms> <METHOD
//! path -> status>`. A line `stall-upload` on stdin makes the next upload stall halfway.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[allow(dead_code)]
#[path = "../tests/openapi.rs"]
mod openapi;

#[allow(dead_code)]
#[path = "../tests/fake_github.rs"]
mod fake_github;

use fake_github::{FakeGitHub, Fault, Route, TOKEN};

const REPO: &str = "alice/app-backups";
const USAGE: &str = "usage: fake_github [--link-rate BYTES_PER_SEC] [--log]";

fn main() {
    let mut rate = 0;
    let mut log = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--link-rate" => {
                rate = args
                    .next()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or_else(|| panic!("{USAGE}"));
            }
            "--log" => log = true,
            _ => panic!("{USAGE}"),
        }
    }
    let fake = Arc::new(FakeGitHub::start());
    fake.add_repo(REPO, true);
    fake.set_link_rate(rate);
    println!("FAKE_GITHUB {} {REPO} {TOKEN}", fake.api_url);
    if log {
        let printer = Arc::clone(&fake);
        std::thread::spawn(move || {
            let mut shown = 0;
            loop {
                let log = printer.log();
                for line in &log[shown..] {
                    let ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis());
                    println!("LOG {ms} {line}");
                }
                shown = log.len();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("stall-upload") => fake.inject(Route::Upload, Fault::StallMidUpload),
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
