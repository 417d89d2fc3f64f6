//! How long one operation may keep trying, and how long a whole run may use the remote.
//!
//! The retry budget bounds real elapsed time from the operation's first attempt: the attempts
//! themselves, the backoff's delays and the waits the server asks for (`retry-after`, a
//! rate-limit reset) all count, and a wait that would end past the budget is not started. A JSON
//! call's attempt is also cut at the budget's end ([`Retrier::answered_in_time`]); a transfer
//! that is moving bytes is not (the stall watchdog judges it), so the budget decides only whether
//! another transfer attempt starts.
//!
//! A run's deadline (`backup now`/`run`) is harder: every attempt, transfers included, stops
//! there, so a run never holds the run lock for longer than its deadline.
//!
//! backon computes the delays (exponential, with jitter); the loop is ours, because the budget
//! counts real elapsed time and not only the computed delays.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use super::Service;
use super::fault::Fault;
use crate::error::{Error, RemoteError, Result};

/// With [`Retrier::answer_quickly`]: the longest retry budget and JSON answer wait.
const QUICK_BUDGET: Duration = Duration::from_secs(8);
const QUICK_REPLY: Duration = Duration::from_secs(5);

/// The limits one operation runs under.
#[derive(Clone, Copy, Debug)]
struct Limits {
    service: Service,
    budget: Duration,
    max_delay: Duration,
    /// When the whole run must stop using the remote, if a run set one.
    deadline: Option<Instant>,
    /// Told to the user when the deadline passes, e.g. "3000 s".
    deadline_secs: u64,
}

/// The wait before the next attempt, or `None` when it would end at or past `ends_at`: the
/// server's requested wait when it gave one, else the backoff's, never over `max_delay`.
fn next_wait(
    now: Instant,
    ends_at: Instant,
    asked: Option<Duration>,
    computed: Duration,
    max_delay: Duration,
) -> Option<Duration> {
    let wait = asked.unwrap_or(computed).min(max_delay);
    (now + wait < ends_at).then_some(wait)
}

/// One retry notice for people: service, reason, attempt number, wait.
fn retry_notice(service: &Service, next_attempt: u32, message: &str, wait: Duration) -> String {
    format!(
        "{}: {message}; attempt {next_attempt} in {:.1}s",
        service.name,
        wait.as_secs_f64()
    )
}

impl Limits {
    /// When retrying must stop for an operation started at `started`.
    fn ends_at(&self, started: Instant) -> Instant {
        let budget_end = started + self.budget;
        match self.deadline {
            Some(deadline) => budget_end.min(deadline),
            None => budget_end,
        }
    }

    fn deadline_fault(&self, last: Option<&str>) -> Fault {
        let last = last.map(|m| format!(", last: {m}")).unwrap_or_default();
        // Final for this run, transient for the caller: the next run may get through.
        Fault::Fatal(RemoteError::transient(format!(
            "this run's time with {} ran out (push_deadline_secs = {}{last}); what is not pushed waits locally and the next `backup run` pushes it",
            self.service.name, self.deadline_secs
        )))
    }

    /// Runs `op` until it succeeds, fails for good, or the budget or the deadline ends it.
    /// `notify` hears about each retry before its wait.
    async fn retry<T, Fut>(
        &self,
        mut op: impl FnMut() -> Fut,
        mut notify: impl FnMut(u32, &str, Duration),
    ) -> std::result::Result<T, Fault>
    where
        Fut: Future<Output = std::result::Result<T, Fault>>,
    {
        let started = Instant::now();
        let ends_at = self.ends_at(started);
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500).min(self.max_delay))
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 1;
        loop {
            let outcome = match self.deadline {
                Some(deadline) => {
                    race(op(), async {
                        tokio::time::sleep_until(deadline.into()).await;
                        Err(self.deadline_fault(None))
                    })
                    .await
                }
                None => op().await,
            };
            let fault = match outcome {
                Ok(value) => return Ok(value),
                Err(fault @ Fault::Fatal(_)) => return Err(fault),
                Err(fault) => fault,
            };
            let Fault::Transient { message, wait } = &fault else {
                unreachable!("final faults returned above")
            };
            let computed = delays.next().unwrap_or(self.max_delay);
            let now = Instant::now();
            let Some(wait) = next_wait(now, ends_at, *wait, computed, self.max_delay) else {
                if self.deadline.is_some_and(|d| d <= started + self.budget) {
                    return Err(self.deadline_fault(Some(message)));
                }
                return Err(fault);
            };
            attempt += 1;
            notify(attempt, message, wait);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Whichever of `a` and `b` finishes first (`a` is polled first).
pub(crate) async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        b.as_mut().poll(cx)
    })
    .await
}

/// Every future of `futures`, polled together on this task, their outputs in order: a few
/// small requests at once (records of a listing) without spawning.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A remote's retry settings, from its config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetrySettings {
    /// How long one operation may keep trying (`retry_budget_secs`).
    pub(crate) budget: Duration,
    /// The longest wait between two attempts (`retry_max_delay_ms`).
    pub(crate) max_delay: Duration,
    /// How long one JSON answer may take (`reply_timeout_secs`).
    pub(crate) reply_timeout: Duration,
    /// How long a run may use the remote (`push_deadline_secs`), told when the deadline passes.
    pub(crate) deadline_secs: u64,
}

/// Runs a synchronous remote's operations on its own current-thread runtime, each retried on
/// transient faults within the retry budget and the run's deadline.
#[derive(Debug)]
pub(crate) struct Retrier {
    runtime: tokio::runtime::Runtime,
    service: Service,
    settings: RetrySettings,
    deadline: Cell<Option<Instant>>,
    quick: Cell<bool>,
    /// When the operation in progress stops retrying: a JSON call's attempt ends there too.
    op_ends: Cell<Option<Instant>>,
}

impl Retrier {
    /// # Errors
    /// No network runtime.
    pub(crate) fn new(service: Service, settings: RetrySettings) -> Result<Retrier> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::System(format!("cannot start the network runtime: {e}")))?;
        Ok(Retrier {
            runtime,
            service,
            settings,
            deadline: Cell::new(None),
            quick: Cell::new(false),
            op_ends: Cell::new(None),
        })
    }

    /// From now on, every operation stops at `deadline` (a run's), attempts in progress too.
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        self.deadline.set(deadline);
    }

    /// With `quick`, each operation gives up within seconds ([`QUICK_BUDGET`], and
    /// [`QUICK_REPLY`] per answer): someone waits on the answer.
    pub(crate) fn answer_quickly(&self, quick: bool) {
        self.quick.set(quick);
    }

    /// Runs one operation with retries on transient faults, within the retry budget and the
    /// run's deadline; each retry is logged and shown on a terminal.
    pub(crate) fn run_with_retries<T, Fut>(
        &self,
        op: impl FnMut() -> Fut,
    ) -> std::result::Result<T, Fault>
    where
        Fut: Future<Output = std::result::Result<T, Fault>>,
    {
        let limits = Limits {
            service: self.service,
            budget: if self.quick.get() {
                self.settings.budget.min(QUICK_BUDGET)
            } else {
                self.settings.budget
            },
            max_delay: self.settings.max_delay,
            deadline: self.deadline.get(),
            deadline_secs: self.settings.deadline_secs,
        };
        let outer = self.op_ends.replace(Some(limits.ends_at(Instant::now())));
        let result = self
            .runtime
            .block_on(limits.retry(op, |attempt, message, wait| {
                let line = retry_notice(&self.service, attempt, message, wait);
                tracing::info!("{line}");
                crate::progress::notice(&line);
            }));
        self.op_ends.set(outer);
        result
    }

    /// `call`, cut off when no answer came within the reply timeout (or what is left of the
    /// operation's budget, if less): a server that accepts and never answers is a fault.
    pub(crate) async fn answered_in_time<T>(
        &self,
        call: impl Future<Output = std::result::Result<T, Fault>>,
    ) -> std::result::Result<T, Fault> {
        let left = self
            .op_ends
            .get()
            .map(|end| end.saturating_duration_since(Instant::now()));
        let reply_timeout = if self.quick.get() {
            self.settings.reply_timeout.min(QUICK_REPLY)
        } else {
            self.settings.reply_timeout
        };
        let limit = left.map_or(reply_timeout, |left| left.min(reply_timeout));
        match tokio::time::timeout(limit, call).await {
            Ok(reply) => reply,
            Err(_) => Err(Fault::Transient {
                message: format!(
                    "network: no answer within {:.0}s (reply_timeout_secs)",
                    limit.as_secs_f64()
                ),
                wait: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::net::testing::SERVICE;

    #[test]
    fn a_wait_that_would_overrun_the_budget_is_not_started() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // (time left, asked by the server, backoff's own, max delay) -> wait
        let table = [
            (s(10), None, ms(500), s(300), Some(ms(500))),
            (s(10), Some(s(3)), ms(500), s(300), Some(s(3))),
            // The server asks for a minute; the budget has 1 s left: stop now, not in 60 s.
            (s(1), Some(s(60)), ms(500), s(300), None),
            // The backoff's delay counts against the budget the same way.
            (ms(400), None, ms(500), s(300), None),
            // A far reset is capped by max_delay, and then fits.
            (s(10), Some(s(3600)), ms(500), ms(20), Some(ms(20))),
            // Exactly at the end is over: nothing would be left for the attempt.
            (s(3), Some(s(3)), ms(500), s(300), None),
            (Duration::ZERO, Some(Duration::ZERO), ms(500), s(300), None),
        ];
        for (left, asked, computed, max, want) in table {
            assert_eq!(
                next_wait(now, now + left, asked, computed, max),
                want,
                "{left:?} left, asked {asked:?}, computed {computed:?}, max {max:?}"
            );
        }
    }

    fn limits(budget: Duration, deadline: Option<Instant>) -> Limits {
        Limits {
            service: SERVICE,
            budget,
            max_delay: Duration::from_secs(300),
            deadline,
            deadline_secs: 1,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn slow_attempts_and_asked_waits_count_against_the_budget() {
        // Each attempt takes 300 ms and asks for 400 ms: with a 1 s budget, the second wait
        // would end past it, so two attempts are made and the whole takes well under 2 s.
        let started = Instant::now();
        let mut attempts = 0;
        let result: std::result::Result<(), Fault> =
            runtime().block_on(limits(Duration::from_secs(1), None).retry(
                || {
                    attempts += 1;
                    async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Err(Fault::Transient {
                            message: "502".into(),
                            wait: Some(Duration::from_millis(400)),
                        })
                    }
                },
                |_, _, _| {},
            ));
        assert!(matches!(result, Err(Fault::Transient { .. })));
        assert_eq!(attempts, 2);
        assert!(started.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn the_run_deadline_cuts_an_attempt_in_progress() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let result: std::result::Result<(), Fault> =
            runtime().block_on(limits(Duration::from_secs(60), Some(deadline)).retry(
                || async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                },
                |_, _, _| {},
            ));
        match result {
            Err(Fault::Fatal(RemoteError { kind, message })) => assert!(
                kind == crate::error::RemoteErrorKind::Transient
                    && message.starts_with(
                        "this run's time with Storage ran out (push_deadline_secs = 1"
                    ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn each_retry_is_told_with_its_attempt_number_and_wait() {
        let mut told = Vec::new();
        let mut attempts = 0;
        let result = runtime().block_on(limits(Duration::from_secs(5), None).retry(
            || {
                attempts += 1;
                let fail = attempts < 3;
                async move {
                    if fail {
                        Err(Fault::Transient {
                            message: "network: connection refused".into(),
                            wait: Some(Duration::from_millis(10)),
                        })
                    } else {
                        Ok(7)
                    }
                }
            },
            |attempt, message, wait| told.push(retry_notice(&SERVICE, attempt, message, wait)),
        ));
        assert_eq!(result.unwrap(), 7);
        assert_eq!(
            told,
            [
                "Storage: network: connection refused; attempt 2 in 0.0s",
                "Storage: network: connection refused; attempt 3 in 0.0s"
            ]
        );
    }
}
