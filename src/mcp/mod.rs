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
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use backup_agent::error::Error;
use backup_agent::progress::{Progress, Silent};

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
    crate::load_config_and_recover_restore(Some(&path))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the MCP server: {e}")))?;
    let server = Server::new(path);
    let calls = Arc::clone(&server.calls);
    let served = runtime.block_on(async {
        let running = server
            .serve(transport::Stdio::new())
            .await
            .map_err(|e| Error::System(format!("the MCP client did not connect: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::System(format!("the MCP server stopped: {e}")))?;
        Ok(crate::exit::OK)
    });
    // A client that closes stdin mid-call (or quits) does not cut a snapshot or a restore short:
    // the calls under way finish, whoever reads their answers.
    let under_way = std::mem::take(&mut *calls.lock().unwrap_or_else(|p| p.into_inner()));
    for call in under_way {
        let _ = call.join();
    }
    served
}

#[derive(Clone)]
struct Server {
    config: Arc<PathBuf>,
    tools: Arc<Vec<Tool>>,
    /// The threads of the calls under way (and some finished ones, dropped at the next call).
    calls: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl Server {
    fn new(config: PathBuf) -> Server {
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
            content.extend(outcome.lines.into_iter().map(ContentBlock::text));
            let mut result = CallToolResult::success(content);
            result.structured_content = Some(outcome.value);
            result.is_error = Some(outcome.code != crate::exit::OK);
            result
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
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
        let notifier = context.meta.get_progress_token().map(|token| {
            progress::Notifier::new(
                token,
                context.peer.clone(),
                tokio::runtime::Handle::current(),
            )
        });
        let config = Arc::clone(&self.config);
        let (done, answer) = tokio::sync::oneshot::channel();
        // The library blocks (and runs its own runtime for the network), so each call gets a
        // thread of its own; the server keeps answering meanwhile.
        let thread = std::thread::Builder::new()
            .name(format!("mcp {name}"))
            .spawn(move || {
                let progress: &dyn Progress = match &notifier {
                    Some(notifier) => notifier,
                    None => &Silent,
                };
                let outcome = tools::call(&name, arguments, &config, progress);
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
        Ok(tool_result(outcome).into())
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
