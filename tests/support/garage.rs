//! A real S3 server for the S3 remote's tests: Garage (<https://garagehq.deuxfleurs.fr>)
//! 2.5.0, one node on loopback, started once per test process and shared by all its tests (a
//! start takes a few seconds; each test works in buckets of its own, see
//! [`Garage::unique_bucket`]).
//!
//! Its binary is `$BACKUP_TEST_GARAGE`, else `garage` on the PATH, else the one `.ci/run`
//! installs under `${XDG_CACHE_HOME:-$HOME/.cache}/backup-agent/garage-2.5.0/bin/`. Without
//! one the tests that need it are skipped, or fail where `BACKUP_TEST_REQUIRE` names `garage`
//! (see [`crate::support::skip`]).
//!
//! Statics are never dropped and a test process may be killed, so the server is not owned by
//! this process: a small `sh` wrapper starts it, waits for this process to end (it polls its
//! pid), then stops it and removes its folder.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::sha256_hex;

/// The Garage version the tests are written against (CLI output, config keys).
pub const GARAGE_VERSION: &str = "2.5.0";

/// Environment variable naming the `garage` binary to run, ahead of the PATH and the cache.
pub const GARAGE_ENV: &str = "BACKUP_TEST_GARAGE";

/// The region the server answers for, as S3 clients must sign it.
pub const GARAGE_REGION: &str = "garage";

/// The name of the access key the tests sign with.
const KEY_NAME: &str = "test-key";

/// How long a start may take before it is called failed: a healthy one takes a few seconds.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared server: `None` when no binary was found; an error when it would not start (kept, so
/// that every test says why instead of each trying again).
static GARAGE: OnceLock<Option<Result<Garage, String>>> = OnceLock::new();

/// Numbers the buckets [`Garage::unique_bucket`] names, so that no two tests meet.
static NEXT_BUCKET: AtomicU32 = AtomicU32::new(1);

/// A running Garage node: its S3 endpoint and a key that may create buckets.
#[derive(Debug)]
pub struct Garage {
    /// The S3 API, `http://127.0.0.1:PORT`; path-style requests (`/bucket/key`).
    pub endpoint: String,
    /// The region to sign requests for: [`GARAGE_REGION`].
    pub region: String,
    /// The access key id (`GK…`) of the key tests sign with.
    pub key_id: String,
    /// That key's secret.
    pub secret: String,
    binary: PathBuf,
    dir: PathBuf,
    config: PathBuf,
}

/// The shared server, started by the first test that asks. `None` (the test reported skipped, see
/// [`crate::support::skip`]) when no `garage` binary is found: the caller then returns. Panics
/// when the server would not start, with its log.
pub fn garage() -> Option<&'static Garage> {
    let started = GARAGE.get_or_init(|| find_binary().map(|binary| Garage::start(&binary)));
    match started {
        Some(Ok(garage)) => Some(garage),
        Some(Err(why)) => panic!("the Garage test server did not start: {why}"),
        None => {
            crate::support::skip(
                "garage",
                &format!(
                    "no Garage {GARAGE_VERSION} binary ({GARAGE_ENV}, then the PATH, then the \
                     cache): install it with `cargo install garage --locked --version \
                     {GARAGE_VERSION} --root {}` (it builds for about 10 minutes), or name one in \
                     {GARAGE_ENV}",
                    cache_root().map_or("<cache>".into(), |p| p.display().to_string())
                ),
            );
            None
        }
    }
}

/// Where `.ci/run` installs Garage: `${XDG_CACHE_HOME:-$HOME/.cache}/backup-agent/garage-2.5.0`.
fn cache_root() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(cache.join(format!("backup-agent/garage-{GARAGE_VERSION}")))
}

/// The `garage` binary: `$BACKUP_TEST_GARAGE`, else on the PATH, else in the cache.
fn find_binary() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os(GARAGE_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(named)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("garage"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| Some(cache_root()?.join("bin/garage")).filter(|p| p.is_file()))
}

/// Why one start failed, and whether another try on other ports may do better.
struct StartFailure {
    why: String,
    port_taken: bool,
}

impl Garage {
    /// Starts a node, trying other ports when one it picked was taken meanwhile (ports are
    /// picked by binding port 0 and letting go, so another test may grab one first).
    fn start(binary: &Path) -> Result<Garage, String> {
        let mut why = String::new();
        for _ in 0..3 {
            match Garage::try_start(binary) {
                Ok(garage) => return Ok(garage),
                Err(failure) if failure.port_taken => why = failure.why,
                Err(failure) => return Err(failure.why),
            }
        }
        Err(why)
    }

    fn try_start(binary: &Path) -> Result<Garage, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("backup-test-garage-")
            .tempdir()
            .map_err(|e| failure(format!("no temp folder: {e}")))?
            // The wrapper removes it, after this process is gone.
            .keep();
        let [rpc_port, s3_port] = free_ports();
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = random_hex(32),
        );
        fs::write(&config, text).map_err(|e| failure(format!("cannot write the config: {e}")))?;
        let mut garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: GARAGE_REGION.into(),
            key_id: String::new(),
            secret: String::new(),
            binary: binary.to_path_buf(),
            dir,
            config,
        };
        garage.spawn_server()?;
        match garage.set_up(s3_port) {
            Ok(()) => Ok(garage),
            Err(why) => {
                let log = garage.log_tail();
                // Without its config the wrapper stops the server and removes the folder.
                let _ = fs::remove_file(&garage.config);
                Err(StartFailure {
                    port_taken: log.contains("Address already in use") || log.contains("AddrInUse"),
                    why: format!(
                        "{why}\n{} ({}); its log ends:\n{log}",
                        binary.display(),
                        version_of(binary)
                    ),
                })
            }
        }
    }

    /// Starts `garage server` under the wrapper that outlives this process only as long as it
    /// takes to stop the server and remove its folder.
    fn spawn_server(&self) -> Result<(), StartFailure> {
        // `garage.exited` marks an early end, for `set_up` to give up at once.
        const WRAPPER: &str = r#""$GARAGE" -c "$CONF" server >>"$DIR/garage.log" 2>&1 &
garage=$!
(
    while kill -0 "$TEST_PID" 2>/dev/null && [ -e "$CONF" ]; do sleep 1; done
    [ -e "$DIR/garage.exited" ] || kill "$garage" 2>/dev/null
) &
wait "$garage"
echo "garage server exited with status $?" >>"$DIR/garage.log"
: >"$DIR/garage.exited"
wait
rm -rf "$DIR"
"#;
        let log = fs::File::create(self.dir.join("wrapper.log"))
            .map_err(|e| failure(format!("cannot create the log: {e}")))?;
        Command::new("sh")
            .args(["-c", WRAPPER])
            .env("GARAGE", &self.binary)
            .env("CONF", &self.config)
            .env("DIR", &self.dir)
            .env("TEST_PID", std::process::id().to_string())
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| failure(e.to_string()))?)
            .stderr(log)
            // A group of its own: Ctrl-C, or a kill of this process's group, leaves the wrapper
            // to stop the server and clean up once this process is gone.
            .process_group(0)
            .spawn()
            .map_err(|e| failure(format!("cannot run sh: {e}")))?;
        Ok(())
    }

    /// Once the node answers: a one-node layout, the key, and an S3 endpoint that listens.
    fn set_up(&mut self, s3_port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.try_cli(&["status"]) {
                Ok(_) => break,
                Err(why) if self.dir.join("garage.exited").exists() => {
                    return Err(format!("the server stopped: {why}"));
                }
                Err(why) if Instant::now() > deadline => {
                    return Err(format!("no answer after {START_TIMEOUT:?}: {why}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let node = self.try_cli(&["node", "id", "-q"])?;
        // `<hex id>@<rpc_public_addr>`
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        self.try_cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        self.try_cli(&["layout", "apply", "--version", "1"])?;
        self.try_cli(&["key", "create", KEY_NAME])?;
        self.key_id = self.try_cli(&["key", "info", KEY_NAME, "--key-id"])?;
        self.secret = self.try_cli(&["key", "info", KEY_NAME, "--secret-key"])?;
        if !self.key_id.starts_with("GK") || self.secret.len() != 64 {
            return Err(format!(
                "unexpected key id {:?} or secret of {} chars",
                self.key_id,
                self.secret.len()
            ));
        }
        // The tool creates its buckets itself (`init --create`), through S3 `CreateBucket`.
        self.try_cli(&["key", "allow", "--create-bucket", KEY_NAME])?;
        while TcpStream::connect(("127.0.0.1", s3_port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the S3 API never listened on port {s3_port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Creates the bucket `name` and lets the test key read, write and own it, as an
    /// administrator would before handing the key to the tool.
    pub fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_NAME,
        ]);
    }

    /// A valid bucket name (lowercase letters, digits and hyphens, 3 to 63 characters) that no
    /// test has used in this server, starting with `prefix` as far as it is valid: for the tool
    /// to create itself.
    pub fn unique_bucket(&self, prefix: &str) -> String {
        let mut head: String = prefix
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        head = head.trim_matches('-').to_owned();
        if head.is_empty() {
            head = "test".into();
        }
        let n = NEXT_BUCKET.fetch_add(1, Ordering::Relaxed);
        format!("{head}-{}-{n}", std::process::id())
    }

    /// Runs the `garage` CLI on this node (`garage -c CONFIG ARGS`); its stdout. Panics when it
    /// fails, with what it said.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|why| panic!("{why}\nthe server's log ends:\n{}", self.log_tail()))
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "`garage {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A raw S3 request signed with the test key, as an outside observer of the bucket sends
    /// it: `method` on `path` (`/bucket`, `/bucket/key`, with a query: `/bucket?uploads`,
    /// `/bucket?list-type=2`), with `body`; the status and the answer's body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request_with(method, path, &[], body)
    }

    /// [`Garage::request`] with `headers` (lowercase names, e.g. `x-amz-meta-sha256`) signed
    /// along.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let host = self.endpoint.trim_start_matches("http://");
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let uri = path
            .split('/')
            .map(uri_encode)
            .collect::<Vec<_>>()
            .join("/");
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (uri_encode(name), uri_encode(value))
            })
            .collect();
        pairs.sort();
        let query = pairs
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let day = &amz_date[..8];
        let payload = sha256_hex(body);
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("x-amz-content-sha256".into(), payload.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        signed.extend(
            headers
                .iter()
                .map(|(name, value)| (name.to_lowercase(), value.trim().to_string())),
        );
        signed.sort();
        let canonical_headers: String = signed
            .iter()
            .map(|(name, value)| format!("{name}:{value}\n"))
            .collect();
        let names = signed
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical =
            format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{names}\n{payload}");
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature: String = hmac(&key, to_sign.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let target = if query.is_empty() {
            uri
        } else {
            format!("{uri}?{query}")
        };
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in signed.iter().filter(|(name, _)| name != "host") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Host: {host}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.key_id,
            body.len()
        ));
        let mut stream = TcpStream::connect(host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        parse_answer(&answer, method == "HEAD")
    }

    /// The last lines the server and its wrapper wrote, for a failure message.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["garage.log", "wrapper.log"] {
            let mut file = String::new();
            if let Ok(mut f) = fs::File::open(self.dir.join(name)) {
                let _ = f.read_to_string(&mut file);
            }
            let lines: Vec<&str> = file.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            if !tail.is_empty() {
                text.push_str(&format!("--- {name}\n{}\n", tail.join("\n")));
            }
        }
        text
    }
}

fn failure(why: String) -> StartFailure {
    StartFailure {
        why,
        port_taken: false,
    }
}

/// Two loopback ports free at this instant: both bound at once, so that they differ.
fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
}

/// `bytes` random bytes in hex, for the node's RPC secret.
fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `garage --version` says, for a failure message (another version may answer otherwise).
fn version_of(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().next().unwrap_or_default().to_owned()
        })
        .unwrap_or_else(|e| format!("--version failed: {e}"))
}

/// S3's URI encoding: every byte but the unreserved ones as `%XX`.
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104), for request signatures.
fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key)[..]);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(data.to_vec())
        .collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.to_vec())
        .collect();
    Sha256::digest(&outer).to_vec()
}

/// The status and body of a whole HTTP/1.1 answer (`Content-Length`, chunked, or to the end);
/// the answer to a HEAD has no body.
fn parse_answer(answer: &[u8], head_only: bool) -> (u16, Vec<u8>) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in: {head}"));
    let mut rest = &answer[split + 4..];
    if head_only {
        return (status, Vec::new());
    }
    if !head.contains("transfer-encoding: chunked") {
        return (status, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (status, body);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
