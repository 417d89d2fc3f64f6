//! `backup mcp` with a standard client: the official Python SDK (PyPI `mcp`, which `.ci/run`
//! installs in a venv) runs `tests/mcp_client.py`, which connects over stdio, lists the tools and
//! resources, reads one, and calls `backup_status` and `backup_list`; the client itself checks
//! each result against the tool's outputSchema.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{App, stderr, stdout};

/// Environment variable naming a Python interpreter that can `import mcp`.
const PYTHON_ENV: &str = "BACKUP_TEST_PYTHON_MCP";

/// The tools the client must see listed (the script checks them too, and says which is missing).
const TOOLS: [&str; 8] = [
    "backup_diff",
    "backup_list",
    "backup_now",
    "backup_restore",
    "backup_rollback",
    "backup_show",
    "backup_status",
    "backup_verify",
];

/// The interpreter `$BACKUP_TEST_PYTHON_MCP`, when it can import `mcp`; else `None`, the test
/// reported skipped (see [`crate::support::skip`]).
fn python_with_mcp() -> Option<PathBuf> {
    let setup = "python3 -m venv DIR && DIR/bin/pip install mcp==2.3.0, then set \
                 BACKUP_TEST_PYTHON_MCP=DIR/bin/python (.ci/run does this)";
    let Some(python) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) else {
        crate::support::skip("python-mcp", &format!("{PYTHON_ENV} is not set: {setup}"));
        return None;
    };
    let python = PathBuf::from(python);
    let probe = Command::new(&python).args(["-c", "import mcp"]).output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => {
            let why = format!(
                "{} ({PYTHON_ENV}) cannot import mcp: {}; {setup}",
                python.display(),
                stderr(&out).trim().lines().last().unwrap_or("")
            );
            crate::support::skip("python-mcp", &why);
            None
        }
        Err(e) => {
            let why = format!(
                "{} ({PYTHON_ENV}) cannot run: {e}; {setup}",
                python.display()
            );
            crate::support::skip("python-mcp", &why);
            None
        }
    }
}

/// The Python SDK's client connects to `backup mcp`, negotiates a protocol version, sees all
/// eight tools and both resources, and gets from `backup_status` and `backup_list` structured
/// content that conforms to their outputSchemas: the app is fresh, with its one snapshot.
#[test]
fn a_standard_python_client_connects_and_calls_backup_status() {
    let Some(python) = python_with_mcp() else {
        return;
    };
    let app = App::with_snapshot(50);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_backup"))
        .arg(app.path("backup.toml"))
        // As `App::command`: no config nor token of the developer's reaches the server (the SDK
        // passes the server only HOME, PATH and a few more anyway, but a later one may not).
        .env_remove("BACKUP_CONFIG")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .current_dir(app.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {text}");
    let seen: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        seen["protocol_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{seen}"
    );
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tool in TOOLS {
        assert!(tools.contains(&tool), "{tool} not listed: {seen}");
    }
    assert_eq!(
        seen["resources"],
        serde_json::json!(["backup://config", "backup://last-run"]),
        "{seen}"
    );
    assert_eq!(seen["state"], "fresh", "{seen}");
    assert_eq!(seen["snapshots"], 1, "{seen}");
}
