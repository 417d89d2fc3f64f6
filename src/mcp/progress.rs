//! Progress of a long tool call as MCP progress notifications, when the call asked for them (it
//! carries a `progressToken`).
//!
//! The library reports steps and bytes from the worker thread; each becomes a notification whose
//! `progress` only grows (bytes done over the whole call, plus one per step, as the protocol
//! asks), at most every [`EVERY`] within a step, and always when a step starts. They go out in
//! order through one channel, which the call drains before it answers: no progress after the
//! answer.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;

use backup_agent::progress::Progress;

/// The least time between two notifications within one step.
const EVERY: Duration = Duration::from_millis(250);

/// Sends a call's progress to the client that made it.
pub struct Notifier {
    token: ProgressToken,
    out: UnboundedSender<ProgressNotificationParam>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What the library calls the step under way (`copy`, `pack`, `upload` …).
    step: String,
    /// That step's size, in its own unit (usually bytes); 0 when unknown.
    step_total: u64,
    step_done: u64,
    /// Grows with every step and byte: the notification's `progress`.
    progress: u64,
    sent_at: Option<Instant>,
}

impl Notifier {
    /// A notifier for the call with `token`, and the task that sends what it reports to `peer`,
    /// in order; the task ends once the notifier is dropped and everything is sent.
    pub fn start(
        token: ProgressToken,
        peer: Peer<RoleServer>,
    ) -> (Notifier, tokio::task::JoinHandle<()>) {
        let (out, mut queued) = unbounded_channel::<ProgressNotificationParam>();
        let sender = tokio::spawn(async move {
            while let Some(notification) = queued.recv().await {
                // A client that went away loses its progress, not the work.
                let _ = peer.notify_progress(notification).await;
            }
        });
        let notifier = Notifier {
            token,
            out,
            state: Mutex::new(State::default()),
        };
        (notifier, sender)
    }

    fn send(&self, state: &mut State) {
        state.sent_at = Some(Instant::now());
        let message = if state.step_total > 0 {
            format!(
                "{}: {} of {}",
                state.step,
                backup_agent::units::human_bytes(state.step_done.min(state.step_total)),
                backup_agent::units::human_bytes(state.step_total)
            )
        } else {
            state.step.clone()
        };
        let _ = self.out.send(
            ProgressNotificationParam::new(self.token.clone(), state.progress as f64)
                .with_message(message),
        );
    }
}

impl Progress for Notifier {
    fn phase(&self, name: &str, total: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.step = name.to_string();
        state.step_total = total;
        state.step_done = 0;
        state.progress += 1;
        self.send(&mut state);
    }

    fn advance(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.step_done += bytes;
        state.progress += bytes;
        if state.sent_at.is_none_or(|at| at.elapsed() >= EVERY) {
            self.send(&mut state);
        }
    }
}
