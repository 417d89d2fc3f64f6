//! `backup mcp` spoken to as an agent's client does: the binary started as a child process, one
//! JSON-RPC message per line on its stdin and stdout. The handshake, the tool list and its
//! schemas, every tool on a real app folder (each structured result validated against the
//! output schema the server declared), the refusals that keep live data untouched, malformed
//! requests, the run lock, the resources, and the same calls over the GitHub and S3 remotes.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_github::TOKEN;
use crate::support::{
    App, DIR_REMOTE_CONFIG, GITHUB_REPO, execute_on, fake_with_private_repo, github_config,
    row_counts, s3_config, sha256_hex, skip,
};

/// The protocol revision the handshake asks for: the newest that has an `initialize`.
const PROTOCOL: &str = "2025-11-25";

/// How long an answer may take before the test calls the server hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// A `backup mcp` child and the messages it sent.
struct Session {
    child: Child,
    /// `None` once the test hung up.
    stdin: Option<ChildStdin>,
    messages: Receiver<Value>,
    /// Everything it wrote to stderr, for failure messages.
    stderr: Arc<Mutex<String>>,
    /// Notifications seen while waiting for answers.
    notifications: Vec<Value>,
    /// Each tool's output schema, from `tools/list`.
    output_schemas: HashMap<String, Value>,
    next_id: u64,
}

impl Session {
    /// Starts `command` (a `backup … mcp`) and runs the handshake.
    fn start(command: Command) -> Session {
        let mut session = Session::spawn(command);
        let init = session.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": { "name": "backup-agent tests", "version": "1" }
            }),
        );
        assert_eq!(init["result"]["protocolVersion"], PROTOCOL, "{init}");
        session.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        session.load_tools(json!({}));
        session
    }

    /// Starts `command` and says nothing yet.
    fn spawn(mut command: Command) -> Session {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("stdout carried a line that is not JSON ({e}): {line}")
                });
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        Session {
            child,
            stdin: Some(stdin),
            messages,
            stderr,
            notifications: Vec::new(),
            output_schemas: HashMap::new(),
            next_id: 1,
        }
    }

    /// Reads each tool's output schema from `tools/list` (sent with `params`).
    fn load_tools(&mut self, params: Value) {
        let tools = self.request("tools/list", params);
        for tool in tools["result"]["tools"].as_array().unwrap() {
            self.output_schemas.insert(
                tool["name"].as_str().unwrap().to_string(),
                tool["outputSchema"].clone(),
            );
        }
    }

    /// The app's own server: `backup --config <app>/backup.toml mcp`.
    fn of(app: &App) -> Session {
        Session::start(app.command(&["mcp"]))
    }

    fn send(&mut self, message: &Value) {
        self.send_line(&message.to_string());
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("not hung up");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the server's stdin, as a client that quits does.
    fn hang_up(&mut self) {
        self.stdin = None;
    }

    /// The next message the server sends, within [`ANSWER_WITHIN`].
    fn next_message(&mut self) -> Value {
        self.messages
            .recv_timeout(ANSWER_WITHIN)
            .unwrap_or_else(|e| {
                panic!(
                    "no message from the server ({e}); its stderr:\n{}",
                    self.stderr.lock().unwrap()
                )
            })
    }

    /// The answer to the request with `id`, keeping the notifications that come before it.
    fn answer_to(&mut self, id: &Value) -> Value {
        loop {
            let message = self.next_message();
            if message.get("id") == Some(id) && message.get("method").is_none() {
                return message;
            }
            assert!(
                message.get("method").is_some(),
                "an answer to another request: {message}"
            );
            self.notifications.push(message);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        self.answer_to(&id)
    }

    /// `tools/call`: the call's result (a protocol error fails the test).
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        answer
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: a protocol error: {answer}"))
    }

    /// A call that must succeed: its structured result, validated against the tool's declared
    /// output schema, and the same JSON in its first text block.
    fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone());
        assert_eq!(
            result["isError"],
            false,
            "{tool} {arguments}: {result}\nstderr:\n{}",
            self.stderr.lock().unwrap()
        );
        let structured = result["structuredContent"].clone();
        self.assert_valid(tool, &structured);
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text, structured,
            "{tool}: the text block is the structured result"
        );
        structured
    }

    /// Sends call `id` of `tool` asking for progress, and returns once its first progress
    /// notification has come: the call is under way, in the server's own thread.
    fn start_call(&mut self, id: u64, tool: &str, arguments: Value) {
        let token = format!("call-{id}");
        self.send(&json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": { "name": tool, "arguments": arguments, "_meta": { "progressToken": token } }
        }));
        loop {
            let message = self.next_message();
            let started = message["method"] == "notifications/progress"
                && message["params"]["progressToken"] == token.as_str();
            self.notifications.push(message);
            if started {
                return;
            }
        }
    }

    /// Waits until the server has said `text` on stderr, within [`ANSWER_WITHIN`].
    fn wait_for_stderr(&self, text: &str) {
        let deadline = std::time::Instant::now() + ANSWER_WITHIN;
        while !self.stderr.lock().unwrap().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "the server never said `{text}`: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A call that must fail as a tool error: its one line.
    fn call_err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone());
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        let text = result["content"][0]["text"].as_str().unwrap().to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    fn assert_valid(&self, tool: &str, value: &Value) {
        let schema = &self.output_schemas[tool];
        let validator = jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("{tool}: the output schema is not a schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{tool}: the result does not match its output schema:\n{}\n{value:#}",
            errors.join("\n")
        );
    }

    /// Closes stdin and waits for the server to end; its exit status.
    fn close(mut self) -> std::process::ExitStatus {
        self.hang_up();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not end when its stdin closed");
    }
}

/// The sha256 of every file under `dir`, by relative path: "nothing changed" made checkable.
/// SQLite's own bookkeeping is left out: the `-shm` index and an empty `-wal`, which SQLite
/// removes when the last connection to a database closes (a read counts) and which hold no data.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    crate::support::all_files(dir, &mut files);
    let mut out: Vec<(String, String)> = files
        .iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            let empty_wal = name.ends_with("-wal") && fs::metadata(f).unwrap().len() == 0;
            !(name.ends_with("-shm") || empty_wal)
        })
        .map(|f| {
            (
                f.strip_prefix(dir).unwrap().display().to_string(),
                sha256_hex(&fs::read(f).unwrap()),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_handshake_names_the_server_and_lists_every_tool_with_its_schemas() {
    let app = App::new(10);
    let mut session = Session::of(&app);
    let tools = session.request("tools/list", json!({}));
    let tools = tools["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "backup_now",
            "backup_list",
            "backup_status",
            "backup_show",
            "backup_diff",
            "backup_verify",
            "backup_restore",
            "backup_rollback"
        ]
    );
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        for key in ["inputSchema", "outputSchema"] {
            assert_eq!(tool[key]["type"], "object", "{name} {key}");
            jsonschema::validator_for(&tool[key])
                .unwrap_or_else(|e| panic!("{name} {key} is not a schema: {e}"));
        }
        assert!(
            tool["description"].as_str().unwrap().len() > 80,
            "{name}: the description tells an agent when to call it"
        );
    }
    let now = &tools[0];
    assert!(
        now["description"]
            .as_str()
            .unwrap()
            .contains("before any migration, bulk update, delete"),
        "{now}"
    );
    let restore = &tools[6];
    assert_eq!(restore["annotations"]["destructiveHint"], true);
    assert_eq!(tools[1]["annotations"]["readOnlyHint"], true);
    assert!(session.close().success());
}

#[test]
fn the_current_revision_needs_no_handshake_each_request_says_who_asks() {
    let app = App::with_snapshot(25);
    let mut session = Session::spawn(app.command(&["mcp"]));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "backup-agent tests", "version": "1" },
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let discovered = session.request("server/discover", json!({ "_meta": meta }));
    let versions = &discovered["result"]["supportedVersions"];
    assert!(
        versions.as_array().unwrap().contains(&json!("2026-07-28")),
        "{discovered}"
    );
    session.load_tools(json!({ "_meta": meta }));
    let answer = session.request(
        "tools/call",
        json!({ "name": "backup_list", "arguments": {}, "_meta": meta }),
    );
    let listed = &answer["result"]["structuredContent"];
    session.assert_valid("backup_list", listed);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1, "{answer}");
    assert!(session.close().success());
}

#[test]
fn every_tool_answers_on_a_real_app_with_what_its_schema_declares() {
    let app = App::new(200);
    let live = app.path("data/tasks.db");
    let mut session = Session::of(&app);

    // A snapshot before a risky change, with progress asked for.
    let answer = session.request(
        "tools/call",
        json!({
            "name": "backup_now",
            "arguments": { "note": "before migration 0007" },
            "_meta": { "progressToken": "snap-1" }
        }),
    );
    let now = answer["result"]["structuredContent"].clone();
    session.assert_valid("backup_now", &now);
    assert_eq!(now["ok"], true, "{now}");
    let tag = now["tag"].as_str().unwrap().to_string();
    assert_eq!(now["note"], "before migration 0007");
    assert_eq!(now["pushed"], json!([tag]));
    assert_eq!(app.archive_tags("remote"), std::slice::from_ref(&tag));
    let progress: Vec<&Value> = session
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress: {:?}",
        session.notifications
    );
    let mut last = -1.0;
    for note in &progress {
        assert_eq!(note["params"]["progressToken"], "snap-1");
        let at = note["params"]["progress"].as_f64().unwrap();
        assert!(at > last, "progress only grows: {progress:?}");
        last = at;
    }

    // The mistake.
    let before = row_counts(&live);
    execute_on(&live, "DELETE FROM tasks WHERE id > 50");

    let listed = session.call_ok("backup_list", json!({ "note": "migration" }));
    assert_eq!(listed["snapshots"][0]["tag"], tag.as_str(), "{listed}");
    assert_eq!(listed["snapshots"][0]["where"], "both");
    let explained = session.call_ok("backup_list", json!({ "explain": true, "kind": "manual" }));
    assert_eq!(explained["snapshots"][0]["keep"], true, "{explained}");
    let none = session.call_ok("backup_list", json!({ "kind": "scheduled" }));
    assert_eq!(none["snapshots"], json!([]));

    let status = session.call_ok("backup_status", json!({}));
    assert_eq!(status["state"], "fresh", "{status}");

    let shown = session.call_ok(
        "backup_show",
        json!({ "snapshot": "latest", "files": true }),
    );
    assert_eq!(shown["tag"], tag.as_str());
    assert_eq!(shown["databases"][0]["tables"]["tasks"], 200, "{shown}");

    let diff = session.call_ok("backup_diff", json!({ "from": tag, "live": true }));
    let tasks = diff["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "tasks")
        .unwrap()
        .clone();
    assert_eq!(
        (tasks["old"].clone(), tasks["new"].clone()),
        (json!(200), json!(50))
    );

    let verified = session.call_ok("backup_verify", json!({ "snapshot": "latest" }));
    assert_eq!(verified["ok"], true);
    let all = session.call_ok("backup_verify", json!({ "all": true }));
    assert_eq!(
        (
            all["ok"].clone(),
            all["snapshots"].as_array().unwrap().len()
        ),
        (json!(true), 1)
    );

    // Getting the rows back without touching the live data: into a folder of the agent's own.
    let untouched = tree(&app.path("data"));
    let dry = session.call_ok("backup_restore", json!({ "snapshot": tag }));
    assert_eq!(
        (dry["dry_run"].clone(), dry["swap"].clone()),
        (json!(true), Value::Null)
    );
    assert!(
        dry["table_differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["table"] == "tasks"),
        "{dry}"
    );
    let to = app.path("recovered");
    let extracted = session.call_ok("backup_restore", json!({ "snapshot": "latest", "to": to }));
    let placed = extracted["placed"]["databases"][0]["path"]
        .as_str()
        .unwrap();
    assert_eq!(row_counts(Path::new(placed)), before);
    assert_eq!(tree(&app.path("data")), untouched, "live data untouched");

    let nothing = session.call_err("backup_rollback", json!({}));
    assert!(
        nothing.contains("no restore") || nothing.contains("nothing"),
        "{nothing}"
    );

    // The resources.
    let resources = session.request("resources/list", json!({}));
    let uris: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["backup://last-run", "backup://config"]);
    let last_run = session.request("resources/read", json!({ "uri": "backup://last-run" }));
    let record: Value =
        serde_json::from_str(last_run["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        record,
        serde_json::from_slice::<Value>(&fs::read(app.path("backups/last_run.json")).unwrap())
            .unwrap()
    );
    let config = session.request("resources/read", json!({ "uri": "backup://config" }));
    let config: Value =
        serde_json::from_str(config["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(config["agent"]["allow_restore"], false, "{config}");
    assert_eq!(config["database"][0]["name"], "tasks");
    let missing = session.request("resources/read", json!({ "uri": "backup://nothing" }));
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resources/list"),
        "{missing}"
    );

    assert!(session.close().success());
}

#[test]
fn a_restore_or_rollback_an_agent_was_not_allowed_changes_nothing_live() {
    let app = App::with_snapshot(120);
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 10");
    let live = tree(&app.path("data"));
    let folders = app.names_in("");
    let mut session = Session::of(&app);

    let refused = session.call_err(
        "backup_restore",
        json!({ "snapshot": "latest", "confirm": true }),
    );
    assert!(
        refused.contains("[agent] allow_restore = true"),
        "{refused}"
    );
    assert!(refused.contains("nothing was changed"), "{refused}");
    let refused = session.call_err(
        "backup_restore",
        json!({ "snapshot": "latest", "confirm": true, "only": ["tasks"] }),
    );
    assert!(refused.contains("allow_restore"), "{refused}");
    // Without `confirm` it is a dry run, whatever the config says.
    let dry = session.call_ok("backup_restore", json!({ "snapshot": "latest" }));
    assert_eq!(dry["dry_run"], true);
    let refused = session.call_err("backup_rollback", json!({ "confirm": true }));
    assert!(refused.contains("allow_restore"), "{refused}");
    // Not the forced paths of the command line: an agent has no `force`.
    let unknown = session.call_err(
        "backup_restore",
        json!({ "snapshot": "latest", "force": true }),
    );
    assert!(unknown.contains("unknown field `force`"), "{unknown}");

    // Allowed in the config while the server runs: it counts only once a person restarts it.
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[agent]\nallow_restore = true\n"
    ));
    let refused = session.call_err(
        "backup_restore",
        json!({ "snapshot": "latest", "confirm": true }),
    );
    assert!(
        refused.contains("once the MCP server restarts"),
        "{refused}"
    );

    assert_eq!(tree(&app.path("data")), live, "live data untouched");
    assert_eq!(app.names_in(""), folders, "no pre_restore_ folder");
    assert_eq!(row_counts(&app.path("data/tasks.db"))["tasks"], 10);
    assert!(session.close().success());
}

#[test]
fn an_allowed_restore_brings_the_rows_back_and_rollback_undoes_it() {
    let app = App::new(80);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[agent]\nallow_restore = true\n"
    ));
    let mut session = Session::of(&app);
    let tag = session.call_ok("backup_now", json!({ "note": "before cleanup" }))["tag"].clone();
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks");

    let restored = session.call_ok(
        "backup_restore",
        json!({ "snapshot": tag, "confirm": true }),
    );
    assert_eq!(restored["dry_run"], false, "{restored}");
    let aside = restored["swap"]["aside_dir"].as_str().unwrap().to_string();
    assert!(Path::new(&aside).is_dir());
    assert_eq!(row_counts(&app.path("data/tasks.db"))["tasks"], 80);

    let preview = session.call_ok("backup_rollback", json!({}));
    assert_eq!(
        (preview["dry_run"].clone(), preview["folder"].clone()),
        (json!(true), json!(aside))
    );
    assert_eq!(
        row_counts(&app.path("data/tasks.db"))["tasks"],
        80,
        "a preview changes nothing"
    );
    let rolled = session.call_ok("backup_rollback", json!({ "confirm": true }));
    assert_eq!(rolled["ok"], true, "{rolled}");
    assert_eq!(
        row_counts(&app.path("data/tasks.db"))["tasks"],
        0,
        "back to the state before the restore"
    );
    assert!(session.close().success());
}

#[test]
fn malformed_requests_get_json_rpc_errors_and_the_server_keeps_serving() {
    let app = App::with_snapshot(10);
    let mut session = Session::of(&app);

    session.send_line("this is not json {");
    let answer = session.next_message();
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (Value::Null, json!(-32700)),
        "{answer}"
    );

    session.send_line(r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":"backup_now"}"#);
    let answer = session.answer_to(&json!(41));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    session.send_line(r#"{"id":42,"params":{}}"#);
    let answer = session.answer_to(&json!(42));
    assert_eq!(answer["error"]["code"], -32600, "{answer}");

    for (id, line) in [
        (43, r#"{"jsonrpc":"2.0","id":43,"method":"tools/call"}"#),
        (
            44,
            r#"{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":1}}"#,
        ),
        (
            45,
            r#"{"jsonrpc":"2.0","id":45,"method":"tools/call","params":{"name":"backup_status","arguments":[]}}"#,
        ),
        (
            46,
            r#"{"jsonrpc":"2.0","id":46,"method":"resources/read","params":{"uri":5}}"#,
        ),
    ] {
        session.send_line(line);
        let answer = session.answer_to(&json!(id));
        assert_eq!(answer["error"]["code"], -32602, "{line}: {answer}");
    }

    let answer = session.request("backup/nothing", json!({}));
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools/call"),
        "{answer}"
    );
    session.send_line(r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#);
    let answer = session.next_message();
    assert_eq!(answer["error"]["code"], -32600, "a fractional id: {answer}");

    let answer = session.request(
        "tools/call",
        json!({ "name": "backup_everything", "arguments": {} }),
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no tool"),
        "{answer}"
    );

    // Arguments the schema refuses are a tool error that says what is wrong.
    let bad = session.call_err("backup_show", json!({}));
    assert!(bad.contains("missing field `snapshot`"), "{bad}");
    let bad = session.call_err("backup_diff", json!({ "from": "latest" }));
    assert!(bad.contains("`live: true`"), "{bad}");
    let bad = session.call_err(
        "backup_restore",
        json!({ "snapshot": "latest", "to": "relative/dir" }),
    );
    assert!(bad.contains("absolute"), "{bad}");
    // A command's own refusal is the same one line the command line prints.
    let unknown = session.call_err("backup_show", json!({ "snapshot": "nosuch" }));
    let cli = app.run(&["show", "nosuch"]);
    assert_eq!(
        format!("backup: error: {unknown}\n"),
        crate::support::stderr(&cli),
        "the same message as `backup show nosuch`"
    );

    // Still serving.
    let status = session.call_ok("backup_status", json!({}));
    assert_eq!(status["state"], "fresh");
    assert!(session.close().success());
}

#[test]
fn a_call_that_meets_the_run_lock_says_so_and_no_lock_is_held_between_calls() {
    let app = App::new(30);
    let mut session = Session::of(&app);
    session.call_ok("backup_now", json!({}));
    // The server is still up, between calls: the command line takes the lock freely.
    let out = app.run(&["now"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );

    let mut paused = app.paused_at(&["now"], "snapshot-copied");
    let locked = session.call_err("backup_now", json!({ "note": "while another runs" }));
    assert!(
        locked.contains("another backup is already running"),
        "{locked}"
    );
    writeln!(paused.stdin.as_mut().unwrap()).unwrap();
    assert!(paused.wait().unwrap().success());

    let after = session.call_ok("backup_now", json!({ "note": "after" }));
    assert_eq!(after["ok"], true);
    assert_eq!(app.archive_tags("backups").len(), 4);
    assert!(session.close().success());
}

#[test]
fn a_config_that_cannot_load_stops_the_server_with_one_line() {
    let app = App::new(1);
    app.write_config("[[database]]\nname = 1\n");
    let out = app.command(&["mcp"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on the protocol's channel");
    let err = crate::support::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("backup: error: "), "{err}");
}

/// The agent's round trip on a remote: a snapshot pushed, then, with the local snapshot folder
/// gone, found on the remote and restored into a folder and in place.
fn round_trip(app: &App, start: &dyn Fn(&App) -> Session) {
    let mut session = start(app);
    let now = session.call_ok("backup_now", json!({ "note": "before bulk edit" }));
    let tag = now["tag"].as_str().unwrap().to_string();
    assert_eq!(now["pushed"], json!([tag]), "{now}");
    let want = row_counts(&app.path("data/tasks.db"));
    execute_on(
        app.path("data/tasks.db"),
        "DELETE FROM tasks WHERE id % 2 = 0",
    );
    fs::remove_dir_all(app.path("backups")).unwrap();

    let listed = session.call_ok("backup_list", json!({ "note": "bulk" }));
    assert_eq!(
        (
            listed["snapshots"][0]["tag"].clone(),
            listed["snapshots"][0]["where"].clone()
        ),
        (json!(tag), json!("remote"))
    );
    let shown = session.call_ok("backup_show", json!({ "snapshot": tag }));
    assert_eq!(shown["databases"][0]["tables"]["tasks"], want["tasks"]);
    session.call_ok("backup_verify", json!({ "snapshot": tag, "remote": true }));
    let to = app.path("recovered");
    let extracted = session.call_ok("backup_restore", json!({ "snapshot": tag, "to": to }));
    let placed = extracted["placed"]["databases"][0]["path"]
        .as_str()
        .unwrap();
    assert_eq!(row_counts(Path::new(placed)), want);
    let restored = session.call_ok(
        "backup_restore",
        json!({ "snapshot": tag, "confirm": true }),
    );
    assert_eq!(restored["source"], "remote", "{restored}");
    assert_eq!(row_counts(&app.path("data/tasks.db")), want);
    assert!(session.close().success());
}

#[test]
fn the_agents_round_trip_works_on_the_folder_remote() {
    let app = App::new(60);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[agent]\nallow_restore = true\n"
    ));
    round_trip(&app, &Session::of);
}

#[test]
fn the_agents_round_trip_works_on_github() {
    let fake = fake_with_private_repo(GITHUB_REPO);
    let app = App::new(60);
    app.write_config(&format!(
        "{}[agent]\nallow_restore = true\n",
        github_config(&fake.api_url, GITHUB_REPO, "")
    ));
    round_trip(&app, &|app| {
        let mut command = app.command(&["mcp"]);
        command.env("GH_ENTERPRISE_TOKEN", TOKEN);
        Session::start(command)
    });
    assert_eq!(fake.tags(GITHUB_REPO).len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn the_agents_round_trip_works_on_s3() {
    let Some(garage) = crate::support::garage::garage() else {
        skip(
            "garage",
            "no Garage server for the S3 remote (tests/support/garage.rs)",
        );
        return;
    };
    let bucket = garage.unique_bucket("mcp");
    garage.create_bucket(&bucket);
    let app = App::new(60);
    app.write_config(&format!(
        "{}[agent]\nallow_restore = true\n",
        s3_config(&garage.endpoint, &bucket, "")
    ));
    round_trip(&app, &|app| {
        Session::start(app.s3_command(garage, &["mcp"]))
    });
}

#[test]
fn a_client_that_closes_stdin_mid_call_does_not_cut_the_snapshot_short() {
    let app = App::new(2_000);
    // The call is still copying when the client goes, and for longer than the SDK waits for
    // answers under way (5 s).
    let mut command = app.command(&["mcp"]);
    command.env(
        backup_agent::failpoint::FAILPOINT_ENV,
        "snapshot-copied:sleep-7000",
    );
    let mut session = Session::start(command);
    session.start_call(99, "backup_now", json!({ "note": "then the client quit" }));
    let status = session.close();
    assert!(status.success(), "{status}");
    // The snapshot was finished, pushed and recorded, and nothing of it was left half-written.
    let tags = app.archive_tags("backups");
    assert_eq!(tags.len(), 1, "{tags:?}");
    assert_eq!(app.archive_tags("remote"), tags);
    app.assert_no_leftovers();
    let out = app.run(&["verify", "latest"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
}

#[test]
fn a_snapshot_with_orphan_rows_answers_every_tool_within_its_schema() {
    // SQLite leaves foreign keys off, so an app can hold rows whose parent is gone: their
    // findings ride along in every answer, and a client that checks the schema must take them.
    let app = App::new(40);
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn.execute_batch(
        "CREATE TABLE task_tags (task_id INTEGER REFERENCES tasks(id), tag TEXT);
         INSERT INTO task_tags VALUES (9999, 'orphan'), (1, 'kept');",
    )
    .unwrap();
    drop(conn);
    let mut session = Session::of(&app);
    let now = session.call_ok("backup_now", json!({}));
    assert_eq!(
        now["findings"]["tasks"]["foreign_keys"][0]["table"], "task_tags",
        "{now}"
    );
    let shown = session.call_ok("backup_show", json!({ "snapshot": "latest" }));
    assert!(!shown["databases"][0]["findings"].is_null(), "{shown}");
    let verified = session.call_ok("backup_verify", json!({ "snapshot": "latest" }));
    let findings = &verified["databases"][0]["findings"]["foreign_keys"][0];
    assert_eq!(findings["examples"], json!([1]), "{verified}");
    session.call_ok("backup_verify", json!({ "all": true }));
    let dry = session.call_ok("backup_restore", json!({ "snapshot": "latest" }));
    assert_eq!(
        dry["databases"][0]["findings"]["foreign_keys"][0]["rows"],
        1
    );
    let to = app.path("recovered");
    session.call_ok("backup_restore", json!({ "snapshot": "latest", "to": to }));
    assert!(session.close().success());
}

#[test]
fn a_confirmed_restore_the_client_cancels_before_the_swap_changes_nothing() {
    let app = App::with_snapshot(30);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[agent]\nallow_restore = true\n"
    ));
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 5");
    let live = tree(&app.path("data"));
    let folders = app.names_in("");
    // The checks take 3 s longer than the client is willing to wait.
    let mut command = app.command(&["mcp"]);
    command.env(
        backup_agent::failpoint::FAILPOINT_ENV,
        "restore-checked:sleep-3000",
    );
    let mut session = Session::start(command);
    session.start_call(
        70,
        "backup_restore",
        json!({ "snapshot": "latest", "confirm": true }),
    );
    session.send(&json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": { "requestId": 70, "reason": "the user pressed stop" }
    }));
    // Past the checks the call ends, unanswered (it was cancelled), saying so on stderr.
    session.wait_for_stderr("the restore was stopped before its swap");
    let status = session.call_ok("backup_status", json!({}));
    assert_eq!(status["state"], "fresh");
    assert_eq!(tree(&app.path("data")), live, "live data untouched");
    assert_eq!(app.names_in(""), folders, "no pre_restore_ folder");
    assert!(session.close().success());
}

#[test]
fn sigterm_mid_call_lets_the_snapshot_finish_then_ends_the_server() {
    let app = App::new(30);
    let mut command = app.command(&["mcp"]);
    command.env(
        backup_agent::failpoint::FAILPOINT_ENV,
        "snapshot-copied:sleep-3000",
    );
    let mut session = Session::start(command);
    session.start_call(80, "backup_now", json!({}));
    let killed = Command::new("kill")
        .args(["-TERM", &session.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = session.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "{}",
        session.stderr.lock().unwrap()
    );
    assert_eq!(
        app.archive_tags("backups").len(),
        1,
        "the snapshot was finished"
    );
    assert_eq!(app.archive_tags("remote"), app.archive_tags("backups"));
    app.assert_no_leftovers();
    let said = session.stderr.lock().unwrap().clone();
    assert!(
        said.contains("stopped (SIGTERM), after the 1 call(s) under way had ended"),
        "{said}"
    );
}

#[test]
fn a_call_under_way_when_the_client_hangs_up_still_answers_after_its_progress() {
    let app = App::new(30);
    let mut command = app.command(&["mcp"]);
    command.env(
        backup_agent::failpoint::FAILPOINT_ENV,
        "snapshot-copied:sleep-1500",
    );
    let mut session = Session::start(command);
    session.start_call(90, "backup_now", json!({}));
    session.hang_up();
    let answer = session.answer_to(&json!(90));
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(app.archive_tags("backups").len(), 1);
    assert!(session.close().success());
}
