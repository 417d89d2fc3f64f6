//! The stdio transport: one JSON-RPC message per line on stdin and stdout.
//!
//! Ours rather than the SDK's because of what it does with a line that is not a message. The SDK
//! drops a line that is not JSON without a word (it guards against peers that echo errors back),
//! and answers a JSON message of the wrong shape with `id: null`. JSON-RPC 2.0 (section 5) asks
//! for a Parse error (-32700) to the first and an Invalid Request (-32600) to the second, with the
//! request's `id` when it has one, and a client on the other end of a pipe echoes nothing; so a
//! client that sent garbage is told, and the server goes on serving.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Stdin, Stdout};
use tokio::sync::Mutex;

/// The longest message taken; a longer line is refused and skipped (an agent's arguments are a
/// few hundred bytes).
const MAX_LINE: usize = 4 << 20;

pub struct Stdio {
    input: BufReader<Stdin>,
    /// The line read so far: kept across a cancelled `receive`, which the service loop does.
    line: Vec<u8>,
    /// Skipping the rest of a line longer than [`MAX_LINE`].
    skipping: bool,
    output: Arc<Mutex<Stdout>>,
}

impl Stdio {
    pub fn new() -> Stdio {
        Stdio {
            input: BufReader::new(tokio::io::stdin()),
            line: Vec::new(),
            skipping: false,
            output: Arc::new(Mutex::new(tokio::io::stdout())),
        }
    }

    /// The next whole line without its end, or `None` at the end of stdin.
    async fn next_line(&mut self) -> std::io::Result<Option<LineRead>> {
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let (chunk, ends) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if !self.skipping {
                if self.line.len() + chunk.len() > MAX_LINE {
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = ends.unwrap_or(available.len());
            self.input.consume(used);
            if ends.is_some() {
                let too_long = std::mem::take(&mut self.skipping);
                return Ok(Some(if too_long {
                    LineRead::TooLong
                } else {
                    LineRead::Line
                }));
            }
        }
    }

    /// Answers a line that is not a message. The write is a task of its own: the service loop
    /// drops a `receive` under way when another of its branches is ready first, and an answer
    /// awaited in it would be lost with it.
    fn answer(&self, error: Value) {
        let output = Arc::clone(&self.output);
        tokio::spawn(async move {
            let _ = write_line(&output, &error).await;
        });
    }
}

enum LineRead {
    /// A whole line is in `line`.
    Line,
    TooLong,
}

/// Writes `message` as one line, under the lock, so that two answers never interleave.
async fn write_line(
    output: &Mutex<Stdout>,
    message: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut output = output.lock().await;
    output.write_all(&bytes).await?;
    output.flush().await
}

/// What is wrong with the params of a request for a method this server serves, if anything.
fn params_problem(request: &Value) -> Option<String> {
    let params = request.get("params");
    let method = request["method"].as_str().unwrap_or_default();
    let object = match params {
        None | Some(Value::Null) => None,
        Some(Value::Object(object)) => Some(object),
        Some(_) => return Some(format!("{method}: params must be an object")),
    };
    let string = |key: &str| {
        object
            .and_then(|o| o.get(key))
            .is_some_and(Value::is_string)
    };
    match method {
        "tools/call" if !string("name") => {
            Some("tools/call: params.name (a string) names the tool".into())
        }
        "tools/call"
            if object
                .and_then(|o| o.get("arguments"))
                .is_some_and(|a| !a.is_object() && !a.is_null()) =>
        {
            Some("tools/call: params.arguments must be an object".into())
        }
        "resources/read" if !string("uri") => {
            Some("resources/read: params.uri (a string) names the resource".into())
        }
        _ => None,
    }
}

fn error_answer(id: Value, code: i64, message: String) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

impl Transport<RoleServer> for Stdio {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let output = Arc::clone(&self.output);
        async move { write_line(&output, &item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let read = match self.next_line().await {
                Ok(Some(read)) => read,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!("cannot read stdin: {e}");
                    return None;
                }
            };
            let line = std::mem::take(&mut self.line);
            if let LineRead::TooLong = read {
                self.answer(error_answer(
                    Value::Null,
                    -32600,
                    format!("Invalid Request: a message longer than {MAX_LINE} bytes"),
                ));
                continue;
            }
            let text = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = match serde_json::from_slice(text) {
                Ok(value) => value,
                Err(e) => {
                    self.answer(error_answer(
                        Value::Null,
                        -32700,
                        format!("Parse error: {e}"),
                    ));
                    continue;
                }
            };
            let id = value.get("id").cloned().unwrap_or(Value::Null);
            let notification = value.get("method").is_some() && value.get("id").is_none();
            // A request whose envelope is right failed on its params.
            let envelope = value.get("jsonrpc") == Some(&json!("2.0"))
                && value.get("method").is_some_and(Value::is_string)
                && (id.is_string() || id.is_i64() || id.is_u64());
            // The SDK takes a known method with params of the wrong shape for a method of its
            // own, and answers "Method not found"; they are Invalid params.
            if envelope && let Some(problem) = params_problem(&value) {
                self.answer(error_answer(
                    id,
                    -32602,
                    format!("Invalid params: {problem}"),
                ));
                continue;
            }
            match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
                Ok(message) => return Some(message),
                // A notification is never answered, even when malformed.
                Err(e) if notification => {
                    tracing::debug!("ignored a malformed notification: {e}");
                }
                Err(e) if envelope => {
                    self.answer(error_answer(id, -32602, format!("Invalid params: {e}")));
                }
                Err(e) => {
                    let id = if id.is_string() || id.is_i64() || id.is_u64() {
                        id
                    } else {
                        Value::Null
                    };
                    self.answer(error_answer(id, -32600, format!("Invalid Request: {e}")));
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.output.lock().await.flush().await
    }
}
