//! Integration tests: the real `backup` binary on real SQLite databases and real folders.
//! One test binary (see Cargo.toml `autotests = false`); one module per area.

/// Temp app folders, the binary, archive readers.
mod support;

/// `backup now` / `run`: consistency under a writer, manifest, archive contents, failures.
mod snapshot;

/// The run lock: concurrent runs refused, killed runs leave nothing stale.
mod lock;

/// The directory remote: push, pending pushes, repair of a truncated remote copy, the marker
/// that tells the remote from an empty mount point.
mod remote_dir;

/// Config lookup, unknown keys, `backup config`, every example config parses.
mod config;

/// `backup list` output, and the embedded demo.
mod list;

/// The restore fixture archives by name (`examples/regenerate_fixtures.rs` writes them).
mod fixtures;

/// `backup restore`, `verify`, `rollback`: every refusal, migrations, crashes mid-swap.
mod restore;

/// Taking back only what you need: `restore --to` and `--only`, `verify --remote` and `--all`.
mod take_back;

/// Where a restore may write: never through a link nor over the config; swap leftovers; modes.
mod restore_bounds;
/// Restore's guards: an app holding a database open, what live data would be lost, restored modes.
mod restore_guards;

/// GitHub's OpenAPI description as validators.
mod openapi;

/// The fake GitHub Releases API (api, uploads and storage hosts) with fault injection.
mod fake_github;

/// The GitHub remote against the fake: push, list, restore, faults, privacy.
mod remote_github;

/// The GitHub remote on real networks: slow links, stalls, hung servers, deadlines, rate limits,
/// proxies, untrusted certificates, offline output.
mod remote_github_net;

/// The fake against GitHub's recorded answers (`fixtures/octokit/`): same status, same shape.
mod octokit_fixtures;

/// The S3 test infrastructure itself: a real Garage server, and the fault proxy before it.
mod s3_server;

/// The S3 remote from the command line against a real server, through the faults a real link
/// meets: slow-downs, resets and stalls mid-upload, expired or wrong keys, killed uploads,
/// a damaged copy in the bucket.
mod remote_s3;

/// One remote contract run against both remotes: the folder and the fake GitHub.
mod conformance;

/// Tiered retention: prune, run's prune, list --explain, long timelines, a model check.
mod retention;

/// Running unattended: `backup status` exit codes, quiet cron runs, the schedule installers.
mod unattended;

/// The soak: hourly cycles with faults, kills, a busy writer and restore drills; invariants.
mod soak;

/// The invariants of docs/invariants.md, one ordinary test each.
mod invariants;

/// docs/json.md against every command's real `--json` output, errors included.
mod json_docs;

/// A closed stdout, a malformed token: one line and the command's own exit code, never a panic.
mod output;

/// Check findings: flawed app data is snapshotted with its findings recorded and restores.
mod findings;

/// Which snapshot `latest` is: a wrong clock, one second, shared remotes, long host names.
mod latest;

/// Choosing a snapshot: short forms of a tag, `latest~N`, list filters, notes.
mod choose;

/// Looking into snapshots: `show`, `diff` (also against the live data), `stats`.
mod inspect;

/// The library's module graph points down: no cycle beyond a shrinking allow-list (#15).
mod architecture;

/// Properties over generated input: tags for any host and time, manifest round-trips.
mod properties;

// `[snapshot] compression`: zstd archives.
mod compression;

/// Differential snapshots: changed pages against the last full, rebuilt on restore, bases kept.
mod differential;

/// `backup mcp`: the Model Context Protocol server spoken to over a pipe, JSON-RPC line by line:
/// the handshake, every tool on a real app folder, schemas, refusals, malformed requests.
mod mcp;

/// `backup mcp` with a standard client: the Python `mcp` package connects and calls a tool.
mod mcp_python;
