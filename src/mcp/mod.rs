//! `backup mcp`: the tool as a Model Context Protocol server on stdin and stdout, so that an agent
//! about to change the app's data can take a snapshot, and find and restore one, with the same
//! checks and messages as the command line (README "Agents (MCP)").
//!
//! stdout carries the protocol alone: nothing here prints to it, and every message for people
//! goes to stderr. The config is read again on every call (an edit takes effect at once), and no
//! lock is held between calls: a call that meets another run's lock says so. `transport` says
//! how a line that is not a message is answered.

mod progress;
mod schema;
mod tools;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use backup_agent::error::Error;
use backup_agent::progress::Silent;

/// The resource holding the last run's record.
const LAST_RUN_URI: &str = "backup://last-run";
/// The resource holding the config as the tool understood it.
const CONFIG_URI: &str = "backup://config";

/// What the server tells a client about itself when it connects.
const INSTRUCTIONS: &str = "backup keeps this app's SQLite databases and files safe off the machine. \
Before any migration, bulk update, delete or cleanup of the app's data, call backup_now with a note \
saying what is about to happen. After a mistake, find the snapshot from before it (backup_list, \
backup_diff), check it (backup_show, backup_verify), and get the data back with backup_restore: \
with `to` into a folder of your own, or in place only when a person has allowed it.";

/// Serves on stdin and stdout until the client closes stdin.
pub fn run(config: Option<&Path>) -> Result<u8, Error> {
    // A config that cannot load is said now, once, rather than on every call.
    let path = backup_agent::config::Config::locate(config)?;
    let path = std::path::absolute(&path).unwrap_or(path);
    let config = crate::load_config_and_recover_restore(Some(&path))?;
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        errln!(
            "backup: note: serving MCP on stdin and stdout: an agent's client starts this (README \"Agents (MCP)\"); Ctrl-D ends it"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the MCP server: {e}")))?;
    let server = Server::new(path, config.agent.allow_restore);
    let calls = Arc::clone(&server.calls);
    let stopped_by = Arc::new(AtomicI32::new(0));
    let served = runtime.block_on(async {
        let running = server
            .serve(transport::Stdio::new())
            .await
            .map_err(|e| Error::System(format!("the MCP client did not connect: {e}")))?;
        stop_on_signal(running.cancellation_token(), Arc::clone(&stopped_by))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::System(format!("the MCP server stopped: {e}")))?;
        Ok(crate::exit::OK)
    });
    // Not waited for: its stdin reader sits in a blocking read that ends only with stdin, which a
    // signal leaves open.
    runtime.shutdown_background();
    // A client that closes stdin mid-call, or stops the server with SIGTERM as the protocol's
    // shutdown does, does not cut a call short: the calls under way end as they would, whoever
    // reads their answers, except that a restore or rollback not yet at its swap stops there
    // (nobody is left to hear it happened). A second signal ends the process at once.
    let under_way = std::mem::take(&mut *calls.lock().unwrap_or_else(|p| p.into_inner()));
    let finishing = under_way.iter().filter(|c| !c.is_finished()).count();
    for call in under_way {
        let _ = call.join();
    }
    match stopped_by.load(Ordering::SeqCst) {
        0 => served,
        signal => {
            errln!(
                "backup: note: the MCP server was stopped ({}){}",
                if signal == SIGINT {
                    "Ctrl-C"
                } else {
                    "SIGTERM"
                },
                if finishing > 0 {
                    format!(", after the {finishing} call(s) under way had ended")
                } else {
                    String::new()
                }
            );
            Ok(u8::try_from(128 + signal).unwrap_or(u8::MAX))
        }
    }
}

/// On the first SIGINT or SIGTERM, stops serving (the calls under way go on); on a second, exits.
fn stop_on_signal(
    serving: rmcp::service::RunningServiceCancellationToken,
    stopped_by: Arc<AtomicI32>,
) -> Result<(), Error> {
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::System(format!("cannot watch for SIGTERM: {e}")))?;
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if let Some(signal) = signals.next() {
            stopped_by.store(signal, Ordering::SeqCst);
            serving.cancel();
        }
        if let Some(signal) = signals.next() {
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

#[derive(Clone)]
struct Server {
    config: Arc<PathBuf>,
    tools: Arc<Vec<Tool>>,
    /// The threads of the calls under way (and some finished ones, dropped at the next call).
    calls: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// `[agent] allow_restore` when the server started (see [`tools::Call`]).
    allow_restore_at_start: bool,
}

impl Server {
    fn new(config: PathBuf, allow_restore_at_start: bool) -> Server {
        let tools = tools::specs()
            .into_iter()
            .map(|spec| {
                let object = |value: serde_json::Value| match value {
                    serde_json::Value::Object(map) => Arc::new(map),
                    _ => unreachable!("a schema is an object"),
                };
                Tool::new(spec.name, spec.description, object(spec.input))
                    .with_title(spec.title)
                    .with_raw_output_schema(object(spec.output))
                    .with_annotations(
                        ToolAnnotations::new()
                            .read_only(spec.read_only)
                            .destructive(spec.destructive)
                            .open_world(false),
                    )
            })
            .collect();
        Server {
            config: Arc::new(config),
            tools: Arc::new(tools),
            calls: Arc::default(),
            allow_restore_at_start,
        }
    }
}

/// A call's outcome as the protocol carries it: the command's JSON as structured content (and as
/// text, for clients that read only text), then each message line; a failure is a tool error
/// whose text is the command's one-line message.
fn tool_result(outcome: Result<tools::Outcome, Error>) -> CallToolResult {
    match outcome {
        Ok(outcome) => {
            let mut content = vec![ContentBlock::text(
                serde_json::to_string_pretty(&outcome.value).expect("serializes"),
            )];
            content.extend(
                outcome
                    .lines
                    .into_iter()
                    .map(|line| ContentBlock::text(for_agent(line))),
            );
            let mut result = CallToolResult::success(content);
            result.structured_content = Some(outcome.value);
            result.is_error = Some(outcome.code != crate::exit::OK);
            result
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(for_agent(e.to_string()))]),
    }
}

/// A command's message as an agent gets it: where it offers `--force`, which no tool takes (an
/// agent cannot override a failed check), it says who can.
fn for_agent(message: String) -> String {
    if message.contains("--force") {
        format!(
            "{message} (`--force` is the command line's alone: ask the user, who can run the command with it)"
        )
    } else {
        message
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("backup", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !self.tools.iter().any(|t| t.name == name) {
            return Err(ErrorData::invalid_params(
                format!("there is no tool `{name}`; tools/list names them"),
                None,
            ));
        }
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let (notifier, notifications) = match context.meta.get_progress_token() {
            Some(token) => {
                let (notifier, sender) = progress::Notifier::start(token, context.peer.clone());
                (Some(notifier), Some(sender))
            }
            None => (None, None),
        };
        let config = Arc::clone(&self.config);
        let allow_restore_at_start = self.allow_restore_at_start;
        let cancelled = context.ct.clone();
        let (done, answer) = tokio::sync::oneshot::channel();
        // The library blocks (and runs its own runtime for the network), so each call gets a
        // thread of its own; the server keeps answering meanwhile.
        let thread = std::thread::Builder::new()
            .name(format!("mcp {name}"))
            .spawn(move || {
                let is_cancelled = || cancelled.is_cancelled();
                let call = tools::Call {
                    config: &config,
                    allow_restore_at_start,
                    cancelled: &is_cancelled,
                    progress: match &notifier {
                        Some(notifier) => notifier,
                        None => &Silent,
                    },
                };
                let outcome = tools::call(&name, arguments, &call);
                // Its last progress goes out before the answer.
                drop(notifier);
                let _ = done.send(outcome);
            })
            .map_err(|e| ErrorData::internal_error(format!("cannot start the call: {e}"), None))?;
        {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            calls.retain(|call| !call.is_finished());
            calls.push(thread);
        }
        let outcome = answer.await.map_err(|_| {
            ErrorData::internal_error("the call stopped without an answer".to_string(), None)
        })?;
        // Its progress goes out before its answer; but not at any price: once the client has
        // closed stdin the SDK sends answers and no notifications, and the answer must not wait.
        if let Some(sent) = notifications {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sent).await;
        }
        Ok(tool_result(outcome).into())
    }

    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, ErrorData> {
        Err(ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            format!(
                "there is no method `{}` here: this server answers tools/list, tools/call, resources/list and resources/read",
                request.method
            ),
            None,
        ))
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(LAST_RUN_URI, "last_run.json")
                .with_title("The last run's record")
                .with_description(
                    "What the last `backup now`/`run` did and when the last good snapshot was taken (last_run.json in the local snapshot folder)",
                )
                .with_mime_type("application/json"),
            Resource::new(CONFIG_URI, "config")
                .with_title("The config as the tool understood it")
                .with_description(
                    "What `backup config --json` prints: every section with its defaults filled in and its paths resolved; never a token",
                )
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let config = Arc::clone(&self.config);
        let uri = request.uri.clone();
        let text = tokio::task::spawn_blocking(move || read_resource(&uri, &config))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))??;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri).with_mime_type("application/json"),
        ])
        .into())
    }
}

/// The text of resource `uri`.
fn read_resource(uri: &str, config: &Path) -> Result<String, ErrorData> {
    let config = crate::load_config_and_recover_restore(Some(config))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    match uri {
        LAST_RUN_URI => {
            let path = config.local_dir.join(backup_agent::layout::LAST_RUN_FILE);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ErrorData::resource_not_found(
                        format!(
                            "no run recorded yet ({} is missing): backup_now takes the first snapshot",
                            path.display()
                        ),
                        None,
                    ))
                }
                Err(e) => Err(ErrorData::internal_error(
                    format!("cannot read {}: {e}", path.display()),
                    None,
                )),
            }
        }
        CONFIG_URI => Ok(
            serde_json::to_string_pretty(&crate::commands::show_config::json_of(&config))
                .expect("serializes"),
        ),
        _ => Err(ErrorData::resource_not_found(
            format!("there is no resource `{uri}`; resources/list names them"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_offering_force_says_an_agent_has_none() {
        let said =
            for_agent("its schema is newer; or pass --force to restore it unmigrated".into());
        assert!(
            said.ends_with("ask the user, who can run the command with it)"),
            "{said}"
        );
        assert_eq!(for_agent("no snapshot".into()), "no snapshot");
    }
}
