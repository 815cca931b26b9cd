//! Where telemetry lines go: an append-only file that always gets every line, and an
//! optional Kafka topic fed from a thread of its own, so a slow or dead broker never holds
//! up a stage. A failing topic backs off ([`Backoff`]) and says so in a few lines, never one
//! per sample (the original logged thousands of Kafka authorization errors a second).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Consecutive failures after which a sink stops trying for [`PAUSE`].
pub const FAILURES_BEFORE_PAUSE: u32 = 5;
/// How long a sink that keeps failing waits before it tries again.
pub const PAUSE: Duration = Duration::from_secs(30);
/// Lines waiting for the Kafka thread; beyond this they are counted as not sent.
const QUEUE: usize = 10_000;
/// Lines per Kafka batch at most.
const BATCH: usize = 500;

/// The log discipline of one sink, as a pure state machine (the clock is passed in): the
/// first failure is one message, later ones are counted, five in a row pause the sink for
/// [`PAUSE`], and the first success after failures is one message with the counts.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
    /// Failed sends since the last success (the first one was reported).
    failed_sends: u64,
    /// Lines not sent (failed or skipped while paused) since the last success.
    lost: u64,
    paused_until: Option<Instant>,
}

impl Backoff {
    /// Whether to try a send now (false while paused: the caller counts the lines as lost).
    pub fn should_try(&self, now: Instant) -> bool {
        self.paused_until.is_none_or(|t| now >= t)
    }

    /// Lines skipped while paused.
    pub fn skipped(&mut self, lines: u64) {
        self.lost += lines;
    }

    /// A failed send of `lines`: the message to log, if this failure is news.
    pub fn failed(&mut self, now: Instant, lines: u64, target: &str, error: &str) -> Option<String> {
        self.failures += 1;
        self.failed_sends += 1;
        self.lost += lines;
        if self.failures >= FAILURES_BEFORE_PAUSE {
            self.paused_until = Some(now + PAUSE);
        }
        (self.failed_sends == 1).then(|| {
            format!(
                "{target}: sending failed: {error}; the file copy stays complete; after {FAILURES_BEFORE_PAUSE} \
                 failures in a row it retries every {} s, and says when it works again",
                PAUSE.as_secs()
            )
        })
    }

    /// A successful send: the message to log when it ends a run of failures.
    pub fn succeeded(&mut self, target: &str) -> Option<String> {
        self.failures = 0;
        self.paused_until = None;
        if self.failed_sends == 0 {
            return None;
        }
        let msg = format!(
            "{target}: sending works again after {} failed send(s); {} line(s) were not sent (they are in the file copy)",
            self.failed_sends, self.lost
        );
        self.failed_sends = 0;
        self.lost = 0;
        Some(msg)
    }

    /// What is still unreported when the run ends (a sink still failing).
    pub fn at_end(&self, target: &str) -> Option<String> {
        (self.failed_sends > 0).then(|| {
            format!(
                "{target}: still failing at the end of the run: {} failed send(s), {} line(s) not sent (they are in the \
                 file copy)",
                self.failed_sends, self.lost
            )
        })
    }
}

/// A remote destination of telemetry lines, such as a Kafka topic (the binary provides it,
/// so this crate does not depend on any one client).
pub trait TopicSink: Send + 'static {
    /// What the messages call it, e.g. `topic dedup-lab-events at host:9092`.
    fn target(&self) -> String;
    /// Sends the lines (JSON values, no newline) as one batch.
    fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String>;
    /// For `preflight`: reach and authenticate without sending; what was found (e.g. `topic
    /// exists`), or why it cannot work.
    fn check(&mut self) -> Result<String, String>;
}

/// Messages for the user, collected from the sink threads and shown by the engine.
pub type Messages = Arc<Mutex<Vec<String>>>;

fn say(messages: &Messages, m: String) {
    if let Ok(mut v) = messages.lock() {
        v.push(m);
    }
}

/// A remote sink fed from a thread of its own.
pub(crate) struct Forwarder {
    tx: Option<SyncSender<Vec<u8>>>,
    /// Lines dropped because the queue was full (the thread was stuck on a dead broker).
    overflow: Arc<AtomicU64>,
    done: Receiver<()>,
    target: String,
}

impl Forwarder {
    pub(crate) fn start(mut writer: Box<dyn TopicSink>, messages: Messages) -> Forwarder {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel();
        let target = format!("telemetry sink {}", writer.target());
        let overflow = Arc::new(AtomicU64::new(0));
        let (t, o) = (target.clone(), overflow.clone());
        std::thread::spawn(move || {
            let mut backoff = Backoff::default();
            let mut batch = Vec::new();
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => batch.push(line),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
                let n = batch.len() as u64 + o.swap(0, Ordering::Relaxed);
                if !backoff.should_try(Instant::now()) {
                    backoff.skipped(n);
                } else {
                    match writer.send(&batch) {
                        Ok(()) => {
                            if let Some(m) = backoff.succeeded(&t) {
                                say(&messages, m);
                            }
                        }
                        Err(e) => {
                            if let Some(m) = backoff.failed(Instant::now(), n, &t, &e) {
                                say(&messages, m);
                            }
                        }
                    }
                }
                batch.clear();
            }
            if let Some(m) = backoff.at_end(&t) {
                say(&messages, m);
            }
            let _ = done_tx.send(());
        });
        Forwarder { tx: Some(tx), overflow, done, target }
    }

    pub(crate) fn push(&self, line: &[u8]) {
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line.to_vec())
        {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the queue and waits up to `bound` for the thread to send what is queued.
    pub(crate) fn finish(&mut self, bound: Duration, messages: &Messages) {
        self.tx = None;
        if self.done.recv_timeout(bound).is_err() {
            say(
                messages,
                format!(
                    "{}: did not finish sending within {} s of the run's end; the rest is in the file copy",
                    self.target,
                    bound.as_secs()
                ),
            );
        }
    }
}

/// One telemetry stream: a JSONL file in the run directory and, optionally, a Kafka topic.
pub struct Output {
    path: PathBuf,
    file: File,
    forward: Option<Forwarder>,
    /// The first write error of the file (reported once).
    file_failed: bool,
    messages: Messages,
}

impl Output {
    pub fn open(path: &Path, kafka: Option<Box<dyn TopicSink>>, messages: Messages) -> std::io::Result<Output> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let forward = kafka.map(|w| Forwarder::start(w, messages.clone()));
        Ok(Output { path: path.to_path_buf(), file, forward, file_failed: false, messages })
    }

    /// Appends one JSON value as a line (unbuffered: a killed process loses no line) and
    /// queues it for the topic.
    pub fn write(&mut self, value: &serde_json::Value) {
        let mut line = serde_json::to_vec(value).expect("telemetry lines serialise");
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line)
            && !self.file_failed
        {
            self.file_failed = true;
            say(&self.messages, format!("cannot write {}: {e}; telemetry lines are being lost", self.path.display()));
        }
        if let Some(f) = &self.forward {
            f.push(&line[..line.len() - 1]);
        }
    }

    pub fn finish(&mut self, bound: Duration) {
        if let Some(f) = self.forward.as_mut() {
            f.finish(bound, &self.messages);
        }
        self.forward = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_says_one_line_pauses_after_five_and_one_line_on_recovery() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        let mut said = Vec::new();
        for i in 0..5 {
            assert!(b.should_try(t0));
            said.extend(b.failed(t0 + Duration::from_millis(i), 10, "sink", "refused"));
        }
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("sink: sending failed: refused"), "{}", said[0]);
        assert!(!b.should_try(t0 + Duration::from_secs(29)), "paused after five failures");
        b.skipped(7);
        assert!(b.should_try(t0 + Duration::from_secs(31)), "retries after the pause");
        said.extend(b.failed(t0 + Duration::from_secs(31), 1, "sink", "refused"));
        assert_eq!(said.len(), 1, "still failing: nothing new to say");
        assert!(!b.should_try(t0 + Duration::from_secs(32)), "paused again");
        let m = b.succeeded("sink").unwrap();
        assert!(m.contains("after 6 failed send(s)") && m.contains("58 line(s) were not sent"), "{m}");
        assert!(b.succeeded("sink").is_none());
        assert!(b.at_end("sink").is_none());
        b.failed(t0, 3, "sink", "x");
        assert!(b.at_end("sink").unwrap().contains("3 line(s) not sent"));
    }
}
