//! The GitHub remote on real networks, against the fake playing each condition: a slow link
//! both ways, a server that stalls mid-transfer or never answers, a run's deadline, rate limits
//! that say when to come back, proxies, an untrusted certificate, and what a user sees offline.
//! Timeouts are configured in seconds so the tests stay short.

use std::fs;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_github::{FakeGitHub, Fault, Route, TOKEN};
use crate::support::{App, REFUSING_URL, TASKS_CONFIG, fake_with_private_repo, stderr, stdout};

const REPO: &str = "alice/app-backups";

/// An app whose snapshot holds `blob` incompressible bytes (so the archive is about that big),
/// pushing to `api_url`, with `remote_keys` added under `[remote]`.
fn app(api_url: &str, blob: usize, remote_keys: &str) -> App {
    let app = App::new(10);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..blob)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(app.path("data/blob.bin"), bytes).unwrap();
    app.write_config(&format!(
        r#"{TASKS_CONFIG}[[include]]
path = "data/blob.bin"
[remote]
type = "github"
repo = "{REPO}"
api_url = "{api_url}"
{remote_keys}
"#
    ));
    app
}

/// Runs `args` (see [`timed`]), which must exit with `code` within `limit_secs` seconds.
fn exits_within(app: &App, args: &[&str], code: i32, limit_secs: u64) -> Output {
    let (out, took) = timed(app, args);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    assert!(took < Duration::from_secs(limit_secs), "took {took:?}");
    out
}

/// Runs `args` (see [`timed`]), which must succeed and take 3 s or more: the link was slow.
fn succeeds_slowly(app: &App, args: &[&str]) {
    let (out, took) = timed(app, args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        took >= Duration::from_secs(3),
        "the link was not slow: {took:?}"
    );
}

/// The watchdog caught a stall (`-v` logs it) where the fake played one (`played` ends a line of
/// its log).
fn assert_stall_caught(fake: &FakeGitHub, out: &Output, played: &str) {
    assert!(
        stderr(out).contains("no bytes moved for 1s"),
        "{}",
        stderr(out)
    );
    assert!(
        fake.count_requests(|l| l.ends_with(played)) > 0,
        "{:?}",
        fake.log()
    );
}

/// A fake GitHub whose link moves `bytes_per_sec` both ways, and an app pushing to it as [`app`]
/// makes it.
fn on_slow_link(bytes_per_sec: u64, blob: usize, remote_keys: &str) -> (FakeGitHub, App) {
    let fake = fake_with_private_repo(REPO);
    fake.set_link_rate(bytes_per_sec);
    let app = app(&fake.api_url, blob, remote_keys);
    (fake, app)
}

/// Runs the binary with the fake's token; returns the output and how long it took.
fn timed(app: &App, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = app
        .command(args)
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn one_complete_release(fake: &FakeGitHub) -> bool {
    let releases = fake.releases(REPO);
    releases.len() == 1
        && releases[0].assets.len() == 1
        && releases[0].assets[0].state == "uploaded"
}

/// The new `[remote]` keys: their defaults show in `backup config`, and a zero, which would
/// fail every request at once, is refused with what to give instead.
#[test]
fn the_timeouts_have_safe_defaults_and_zero_is_refused() {
    let defaults = app("https://api.github.com", 0, "");
    let (out, _) = timed(&defaults, &["config", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let remote = &config["remote"];
    assert_eq!(
        [
            &remote["stall_secs"],
            &remote["reply_timeout_secs"],
            &remote["answer_timeout_secs"],
            &remote["push_deadline_secs"]
        ],
        [&json!(60), &json!(60), &json!(600), &json!(2700)],
        "{remote}"
    );

    let zero = app("https://api.github.com", 0, "stall_secs = 0");
    let (out, _) = timed(&zero, &["now"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("stall_secs = 0") && err.contains("at least 1"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Issue 14 item 3: a budget of 1 s is 1 s of real time, even when GitHub asks for a minute.
#[test]
fn the_retry_budget_bounds_real_time_and_a_wait_past_it_is_not_started() {
    let fake = fake_with_private_repo(REPO);
    for _ in 0..5 {
        fake.inject(Route::CreateRelease, Fault::secondary_limit(60));
    }
    let app = app(&fake.api_url, 0, "retry_budget_secs = 1");
    let out = exits_within(&app, &["now"], 4, 10);
    assert!(stderr(&out).contains("safe locally"), "{}", stderr(&out));
    let creates = fake.count_requests(|l| l.starts_with("POST /repos/alice/app-backups/releases "));
    assert_eq!(
        creates,
        1,
        "the 60 s wait was not started: {:?}",
        fake.log()
    );
    assert_eq!(app.archives("backups").len(), 1);
}

/// Issue 14 item 9: `Retry-After` as an HTTP date is waited for; a 403 in the older "abuse
/// detection" wording, or any 403 with `retry-after`, is a rate limit, not a scope problem.
#[test]
fn rate_limits_in_every_form_github_uses_are_waited_out_not_failed() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::CreateRelease, Fault::RetryAfterDate(2));
    fake.inject(Route::ListAssets, Fault::abuse_detection());
    fake.inject(
        Route::GetRepo,
        Fault::Status(
            403,
            json!({"message": "Forbidden", "documentation_url": "https://docs.github.com/rest"}),
            vec![("retry-after".into(), "1".into())],
        ),
    );
    // Waits up to 2 s are honoured as asked (the abuse one gets GitHub's minute, capped).
    let app = app(
        &fake.api_url,
        0,
        "retry_budget_secs = 30\nretry_max_delay_ms = 2500",
    );
    let (out, _) = timed(&app, &["now", "-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(one_complete_release(&fake), "{:?}", fake.releases(REPO));
    let err = stderr(&out);
    let waits: Vec<f64> = err
        .lines()
        .filter_map(|l| l.split("; attempt 2 in ").nth(1))
        .map(|w| w.trim_end_matches('s').parse().unwrap())
        .collect();
    assert_eq!(waits.len(), 3, "{err}");
    // The date is to the second: "2 s from now" is 1 to 2 s away; the abuse one asks for
    // GitHub's minute, capped at 2.5 s.
    assert!(
        waits.iter().any(|w| (1.0..=2.0).contains(w)),
        "{waits:?} {err}"
    );
    assert!(waits.contains(&2.5), "{waits:?} {err}");
    assert!(
        err.contains("403 rate limited (Forbidden); attempt 2 in 1.0s"),
        "{err}"
    );
    assert!(!err.contains("scope"), "{err}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Issue 14 item 1: a slow transfer that moves is never cut off, however long it takes (here
/// several times the stall time and the JSON answer timeout, both ways).
#[test]
fn a_slow_link_that_keeps_moving_pushes_and_restores_on_the_first_try() {
    let (fake, app) = on_slow_link(
        200 << 10,
        800 << 10,
        "stall_secs = 1\nreply_timeout_secs = 1\nanswer_timeout_secs = 30\nretry_budget_secs = 5",
    );
    succeeds_slowly(&app, &["now"]);
    assert!(one_complete_release(&fake), "{:?}", fake.log());
    let uploads = fake.count_requests(|l| l.starts_with("POST ") && l.contains("/assets"));
    assert_eq!(uploads, 1, "pushed on the first try: {:?}", fake.log());

    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_dir_all(app.path("data")).unwrap();
    succeeds_slowly(&app, &["restore", "latest", "--yes"]);
    let downloads = fake.count_requests(|l| l.starts_with("GET /objects/"));
    assert_eq!(downloads, 1, "{:?}", fake.log());
    assert_eq!(
        fs::metadata(app.path("data/blob.bin")).unwrap().len(),
        800 << 10
    );
}

/// Issue 14 item 1: a transfer where no bytes move is a fault after `stall_secs`, and the retry
/// completes it: an upload whose server stops reading, a download whose server stops sending.
#[test]
fn a_stalled_upload_or_download_is_caught_by_the_watchdog_and_retried() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::Upload, Fault::StallMidUpload);
    // Large enough that the half left unread does not fit in the sockets' buffers, which
    // loopback's autotuning grows to over 10 MiB on a busy machine: the client sees the bytes
    // stop rather than all of them sent.
    let app = app(
        &fake.api_url,
        48 << 20,
        "stall_secs = 1\nanswer_timeout_secs = 30\nretry_budget_secs = 20\nretry_max_delay_ms = 20",
    );
    let out = exits_within(&app, &["now", "-v"], 0, 30);
    assert_stall_caught(&fake, &out, "stalled mid-upload");
    assert!(one_complete_release(&fake), "{:?}", fake.releases(REPO));

    fake.inject(Route::Storage, Fault::StallMidDownload);
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = exits_within(&app, &["restore", "latest", "--yes", "-v"], 0, 30);
    assert_stall_caught(&fake, &out, "stalled mid-download");
}

/// Issue 14 item 2: a server that accepts and never answers costs a JSON call its answer
/// timeout, not forever: `auth status` ends, and `list` shows the local snapshots within
/// seconds even with the default (15 minute) budget.
#[test]
fn a_server_that_never_answers_is_given_up_on_and_list_answers_within_seconds() {
    let app_for = |api_url: &str| app(api_url, 0, "");
    let fake = fake_with_private_repo(REPO);
    let app = app(&fake.api_url, 0, "");
    let (out, _) = timed(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for _ in 0..20 {
        fake.inject(Route::GetRepo, Fault::Hang);
        fake.inject(Route::ListReleases, Fault::Hang);
    }

    let out = exits_within(&app, &["list"], 4, 20);
    assert!(
        stdout(&out).contains("local, remote unknown"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot list the remote") && err.contains("no answer"),
        "{err}"
    );

    let out = exits_within(&app, &["list", "--json"], 4, 20);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["where"], "local_remote_unknown", "{rows}");

    let (out, took) = timed(&app, &["auth", "status"]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(stderr(&out).contains("no answer"), "{}", stderr(&out));

    // The repository answers and the full listing (GraphQL) hangs: the same, within seconds.
    let fresh = fake_with_private_repo(REPO);
    let second = app_for(&fresh.api_url);
    let (out, _) = timed(&second, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for _ in 0..20 {
        fresh.inject(Route::GraphQl, Fault::Hang);
    }
    let out = exits_within(&second, &["list", "--json"], 4, 20);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["where"], "local_remote_unknown", "{rows}");
}

/// Issue 14 item 2: a run has a deadline; past it, the transfer in progress stops, the snapshot
/// waits locally (exit 4), and the run lock is free for the next run.
#[test]
fn a_run_past_its_deadline_stops_and_the_snapshot_waits_locally() {
    let (fake, app) = on_slow_link(
        64 << 10,
        1 << 20,
        "push_deadline_secs = 2\nstall_secs = 60\nretry_budget_secs = 600",
    );
    let out = exits_within(&app, &["run"], 4, 15);
    let err = stderr(&out);
    assert!(
        err.contains("push_deadline_secs = 2") && err.contains("safe locally"),
        "{err}"
    );
    assert_eq!(app.archives("backups").len(), 1);
    fake.set_link_rate(0);
    let (out, _) = timed(&app, &["now"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the lock was left free: {}",
        stderr(&out)
    );
    assert_eq!(fake.releases(REPO).len(), 2);
}

/// Issue 14 item 10: on a terminal, `now` says at once that the snapshot is safe locally, then
/// each retry (attempt, reason, wait); under cron (no terminal) the same run prints only the
/// final error line.
#[test]
fn offline_now_tells_a_terminal_each_retry_and_stays_quiet_under_cron() {
    let api_url = REFUSING_URL;
    let app = app(
        api_url,
        0,
        "retry_budget_secs = 2\nretry_max_delay_ms = 300",
    );

    let (out, _) = timed(&app, &["run"]);
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "quiet under cron: {err}");

    // util-linux `script`: BSD's takes other flags.
    let has_script = cfg!(target_os = "linux")
        && std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok();
    if !has_script {
        crate::support::skip(
            "script",
            "the terminal half: no `script` (util-linux) to give the binary a terminal",
        );
        return;
    }
    // `script` runs the command on a pseudo-terminal and copies what it shows to stdout.
    let command = format!(
        "{} --config {} now",
        env!("CARGO_BIN_EXE_backup"),
        app.path("backup.toml").display()
    );
    let started = Instant::now();
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env_remove("BACKUP_CONFIG")
        .current_dir(app.path(""))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(4), "{shown}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let first = shown
        .lines()
        .position(|l| l.contains("is safe locally; pushing it to GitHub repository"))
        .unwrap_or_else(|| panic!("{shown}"));
    let retries: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("GitHub: network") && l.contains("; attempt "))
        .collect();
    assert!(!retries.is_empty(), "{shown}");
    assert!(retries[0].contains("attempt 2 in "), "{shown}");
    let first_retry = shown.lines().position(|l| l == retries[0]).unwrap();
    assert!(first < first_retry, "{shown}");
}

/// Issue 14 item 4: one HTTP client for every request, and it honours the proxy variables:
/// through `HTTP_PROXY` both the API calls and the upload go via the proxy; `NO_PROXY` sends
/// them straight to GitHub.
#[test]
fn every_request_honours_the_proxy_variables() {
    let fake = fake_with_private_repo(REPO);
    let proxy = ForwardingProxy::start();
    let app = app(&fake.api_url, 0, "retry_budget_secs = 5");
    let mut command = app.command(&["now"]);
    command
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("HTTP_PROXY", &proxy.url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET ") && r.contains("/repos/alice/app-backups ")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("POST ") && r.contains("/assets?")),
        "the upload went via the proxy too: {seen:?}"
    );

    let before = proxy.requests().len();
    let mut command = app.command(&["now"]);
    command
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("HTTP_PROXY", &proxy.url)
        .env("NO_PROXY", "127.0.0.1");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        proxy.requests().len(),
        before,
        "NO_PROXY bypasses the proxy"
    );
    assert_eq!(fake.releases(REPO).len(), 2);
}

/// A plain HTTP forward proxy on loopback that records each request line it forwards.
struct ForwardingProxy {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ForwardingProxy {
    fn start() -> ForwardingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = ForwardingProxy {
            url: format!("http://{}", listener.local_addr().unwrap()),
            seen: Default::default(),
        };
        let seen = proxy.seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = forward(client, &seen);
                });
            }
        });
        proxy
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One request in absolute form (`GET http://host:port/path HTTP/1.1`), sent on in origin form;
/// or a `CONNECT host:port` tunnel, as HTTPS goes through a proxy.
fn forward(
    client: std::net::TcpStream,
    seen: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    seen.lock().unwrap().push(line.trim_end().to_string());
    let tunnel = method == "CONNECT";
    let mut upstream = std::net::TcpStream::connect(if tunnel { target } else { authority })?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        head.push_str(&header);
        if header.trim_end().is_empty() {
            break;
        }
    }
    if tunnel {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    } else {
        upstream.write_all(head.as_bytes())?;
    }
    let mut to_upstream = upstream.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut to_upstream);
    });
    let mut to_client = client;
    std::io::copy(&mut upstream, &mut to_client)?;
    to_client.shutdown(std::net::Shutdown::Both)
}

/// A TLS server on loopback with a self-signed certificate for 127.0.0.1: it records each
/// request line it reads and answers 404 (GitHub's answer for a repository the token cannot
/// see); a client that refuses the certificate never gets that far.
struct TlsServer {
    url: String,
    cert_pem: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TlsServer {
    fn start() -> TlsServer {
        use std::sync::Arc;
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = TlsServer {
            url: format!("https://{}", listener.local_addr().unwrap()),
            cert_pem: made.cert.pem(),
            connections: Arc::default(),
            requests: Arc::default(),
        };
        let (connections, requests) = (server.connections.clone(), server.requests.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (config, requests) = (config.clone(), requests.clone());
                std::thread::spawn(move || {
                    let _ = answer_tls(tcp, config, &requests);
                });
            }
        });
        server
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn answer_tls(
    tcp: std::net::TcpStream,
    config: std::sync::Arc<rustls::ServerConfig>,
    requests: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let tls = rustls::StreamOwned::new(
        rustls::ServerConnection::new(config).map_err(std::io::Error::other)?,
        tcp,
    );
    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    requests.lock().unwrap().push(line.trim_end().to_string());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let body = r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#;
    let mut tls = reader.into_inner();
    write!(
        tls,
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Issue 14 item 4: a certificate the machine does not trust (a company CA it lacks) fails at
/// once, saying what to do, instead of being retried as a network fault for the whole budget;
/// once the CA is in the trust store the client uses (here through `SSL_CERT_FILE`), the same
/// server is reached, directly and through `HTTPS_PROXY`.
#[test]
fn an_untrusted_certificate_fails_at_once_and_a_trusted_ca_works_direct_and_via_https_proxy() {
    let server = TlsServer::start();
    let app = app(
        &server.url,
        0,
        "retry_budget_secs = 60\nretry_max_delay_ms = 1000",
    );
    let mut command = app.command(&["now"]);
    command
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    let started = Instant::now();
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retried: {:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("certificate is not trusted")
            && err.contains("certificate store")
            && err.contains("safe locally"),
        "{err}"
    );
    assert_eq!(server.connections(), 1, "no retry of a certificate error");
    assert!(server.requests.lock().unwrap().is_empty());

    let ca = app.path("company-ca.pem");
    fs::write(&ca, &server.cert_pem).unwrap();
    let mut command = app.command(&["auth", "status"]);
    command
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR");
    let out = command.output().unwrap();
    assert!(!stderr(&out).contains("certificate"), "{}", stderr(&out));
    assert!(stdout(&out).contains("not found"), "{}", stdout(&out));
    assert_eq!(
        server.requests.lock().unwrap().as_slice(),
        ["GET /repos/alice/app-backups HTTP/1.1"]
    );

    // Behind a proxy (a company network), HTTPS goes through it as a CONNECT tunnel, and the
    // certificate is checked end to end all the same.
    let proxy = ForwardingProxy::start();
    let mut command = app.command(&["auth", "status"]);
    command
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("SSL_CERT_FILE", &ca)
        .env("HTTPS_PROXY", &proxy.url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = command.output().unwrap();
    assert!(stdout(&out).contains("not found"), "{}", stderr(&out));
    let authority = server.url.trim_start_matches("https://");
    assert_eq!(
        proxy.requests(),
        [format!("CONNECT {authority} HTTP/1.1")],
        "through HTTPS_PROXY"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}
