//! The stall watchdog for uploads and downloads: a transfer that moves bytes is never cut off,
//! however long it takes; one where no bytes moved for `stall` is a fault (retried). After the
//! last byte of an upload, the server gets a separate, generous `answer` wait to store it and
//! say so.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

use super::fault::Fault;

#[derive(Clone, Debug)]
pub(crate) struct Watchdog {
    seen: Arc<Mutex<Seen>>,
    stall: Duration,
    answer: Duration,
}

#[derive(Debug)]
struct Seen {
    last_moved: Instant,
    sent_all_at: Option<Instant>,
}

impl Watchdog {
    pub(crate) fn new(stall: Duration, answer: Duration) -> Watchdog {
        Watchdog {
            seen: Arc::new(Mutex::new(Seen {
                last_moved: Instant::now(),
                sent_all_at: None,
            })),
            stall,
            answer,
        }
    }

    /// Bytes moved just now.
    pub(crate) fn moved(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.last_moved = Instant::now();
        }
    }

    fn sent_all(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.sent_all_at.get_or_insert_with(Instant::now);
        }
    }

    /// `inner`'s `len` bytes as an upload body: every read counts as movement (the HTTP stack
    /// reads only as fast as the link takes them), the last one starts the answer wait.
    pub(crate) fn reader<R>(&self, inner: R, len: u64) -> WatchedReader<R> {
        if len == 0 {
            self.sent_all();
        }
        WatchedReader {
            inner,
            left: len,
            watchdog: self.clone(),
        }
    }

    /// Finishes when the transfer has stalled, or the server has not answered in time after the
    /// last byte: race it against the transfer.
    pub(crate) async fn tripped<T>(&self) -> std::result::Result<T, Fault> {
        loop {
            let (last_moved, sent_all_at) = match self.seen.lock() {
                Ok(seen) => (seen.last_moved, seen.sent_all_at),
                Err(_) => (Instant::now(), None),
            };
            let (trips_at, message) = match sent_all_at {
                None => (
                    last_moved + self.stall,
                    format!(
                        "the transfer stalled: no bytes moved for {}s (stall_secs)",
                        self.stall.as_secs()
                    ),
                ),
                Some(at) => (
                    at + self.answer,
                    format!(
                        "no answer {}s after the last byte was sent (answer_timeout_secs)",
                        self.answer.as_secs()
                    ),
                ),
            };
            if Instant::now() >= trips_at {
                return Err(Fault::Transient {
                    message,
                    wait: None,
                });
            }
            tokio::time::sleep_until(trips_at.into()).await;
        }
    }
}

/// An upload body that tells its [`Watchdog`] about every byte read.
pub(crate) struct WatchedReader<R> {
    inner: R,
    left: u64,
    watchdog: Watchdog,
}

impl<R: AsyncRead + Unpin> AsyncRead for WatchedReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.left = self.left.saturating_sub(read);
            self.watchdog.moved();
            if self.left == 0 {
                self.watchdog.sent_all();
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movement_keeps_the_watchdog_quiet_and_silence_trips_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let watchdog = Watchdog::new(Duration::from_millis(200), Duration::from_millis(300));
        let started = Instant::now();
        let mover = watchdog.clone();
        // Bytes move every 50 ms for 600 ms (three stall periods), then stop.
        let moving = async move {
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                mover.moved();
            }
            std::future::pending::<std::result::Result<(), Fault>>().await
        };
        let outcome = runtime.block_on(super::super::retry::race(moving, watchdog.tripped()));
        let elapsed = started.elapsed();
        match outcome {
            Err(Fault::Transient { message, .. }) => {
                assert!(message.contains("stalled"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");

        // After the last byte, the answer wait applies instead.
        let watchdog = Watchdog::new(Duration::from_millis(100), Duration::from_millis(400));
        watchdog.sent_all();
        let started = Instant::now();
        let outcome: std::result::Result<(), Fault> = runtime.block_on(watchdog.tripped());
        match outcome {
            Err(Fault::Transient { message, .. }) => {
                assert!(message.contains("no answer"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(400));
    }
}
