//! The log of one plugin call: lines the plugin writes through `log`, its
//! own stdout and stderr, and the output of programs it runs — one capped
//! buffer, so a plugin that floods it is stopped instead of filling memory.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The plugin, through the `log` capability.
    Plugin,
    /// The plugin's standard output.
    Stdout,
    /// The plugin's standard error (panics land here).
    Stderr,
    /// A program run through the `process` capability.
    Program,
}

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Details.
    Debug,
    /// Normal progress.
    Info,
    /// Worth a look.
    Warn,
    /// A failure.
    Error,
}

/// One line of a stage log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// Where it came from.
    pub source: Source,
    /// How important it is.
    pub level: Level,
    /// The text, without the newline.
    pub text: String,
}

#[derive(Debug)]
struct Inner {
    lines: Vec<Line>,
    bytes: usize,
    cap: usize,
    overflowed: bool,
    /// Secret values the call read: replaced in every line written after.
    hidden: Vec<String>,
}

/// Receives every line of a stage log as it is written (the run's event stream).
pub type LineTap = Arc<dyn Fn(&Line) + Send + Sync>;

/// A shared, capped stage log. Cloning shares the same log.
#[derive(Clone)]
pub struct StageLog {
    inner: Arc<Mutex<Inner>>,
    label: Arc<str>,
    tap: Option<LineTap>,
}

impl std::fmt::Debug for StageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageLog").field("label", &self.label).finish_non_exhaustive()
    }
}

impl StageLog {
    /// A log that accepts at most `cap` bytes of text; `label` names the plugin in tracing output.
    pub fn new(cap: usize, label: &str) -> StageLog {
        let inner = Inner { lines: Vec::new(), bytes: 0, cap, overflowed: false, hidden: Vec::new() };
        StageLog { inner: Arc::new(Mutex::new(inner)), label: label.into(), tap: None }
    }

    /// The same log, also handing every new line to `tap`.
    pub fn with_tap(mut self, tap: Option<LineTap>) -> StageLog {
        self.tap = tap;
        self
    }

    /// Appends a line; returns `false` (and drops it) once the cap is reached.
    pub fn push(&self, source: Source, level: Level, text: &str) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.overflowed || inner.bytes + text.len() > inner.cap {
            inner.overflowed = true;
            return false;
        }
        inner.bytes += text.len();
        let line = Line { source, level, text: redact(&inner.hidden, text) };
        match &self.tap {
            Some(tap) => tap(&line),
            // Without a run to report to, the lines are tracing output.
            None => match level {
                Level::Debug => tracing::debug!(plugin = %self.label, "{text}"),
                Level::Info => tracing::info!(plugin = %self.label, "{text}"),
                Level::Warn => tracing::warn!(plugin = %self.label, "{text}"),
                Level::Error => tracing::error!(plugin = %self.label, "{text}"),
            },
        }
        inner.lines.push(line);
        true
    }

    /// Keeps `secret` out of every line written from now on, and out of
    /// [`StageLog::redact`]ed text.
    pub fn hide(&self, secret: &str) {
        // Very short values would blank out ordinary words.
        if secret.len() < 4 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.hidden.iter().any(|known| known == secret) {
            inner.hidden.push(secret.to_string());
        }
    }

    /// `text` with every hidden secret replaced by `[secret]`.
    pub fn redact(&self, text: &str) -> String {
        redact(&self.inner.lock().unwrap_or_else(PoisonError::into_inner).hidden, text)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).lines.clone()
    }

    /// Whether something was dropped because the cap was reached.
    pub fn overflowed(&self) -> bool {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).overflowed
    }

    /// The last `count` lines from `source`, for error messages.
    pub fn tail(&self, source: Source, count: usize) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let matching: Vec<&Line> = inner.lines.iter().filter(|l| l.source == source).collect();
        matching[matching.len().saturating_sub(count)..].iter().map(|l| l.text.clone()).collect()
    }

    /// A writer that splits bytes into lines of this log.
    pub fn writer(&self, source: Source, level: Level) -> LineWriter {
        LineWriter { log: self.clone(), source, level, partial: Vec::new() }
    }
}

fn redact(hidden: &[String], text: &str) -> String {
    hidden.iter().fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "[secret]"))
}

/// Splits written bytes into log lines; fails writes once the log is full.
#[derive(Debug)]
pub struct LineWriter {
    log: StageLog,
    source: Source,
    level: Level,
    partial: Vec<u8>,
}

impl LineWriter {
    /// Takes bytes, emitting every complete line; `false` when the log is full.
    pub fn accept(&mut self, bytes: &[u8]) -> bool {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            if !self.log.push(self.source, self.level, text.trim_end_matches('\r')) {
                return false;
            }
        }
        // A single unterminated line cannot grow past the cap either.
        if self.partial.len() > self.log.inner.lock().unwrap_or_else(PoisonError::into_inner).cap {
            return self.flush_partial();
        }
        true
    }

    /// Emits what is left of an unterminated last line.
    pub fn flush_partial(&mut self) -> bool {
        if self.partial.is_empty() {
            return true;
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        self.log.push(self.source, self.level, &text)
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.accept(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other("the stage log is full")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

/// The plugin's stdout or stderr, as WASI wants it.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    log: StageLog,
    source: Source,
}

impl PluginOutput {
    /// The plugin's `source` stream, written into `log`.
    pub fn new(log: &StageLog, source: Source) -> Self {
        PluginOutput { log: log.clone(), source }
    }
}

impl wasmtime_wasi::cli::IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for PluginOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        let level = if self.source == Source::Stderr { Level::Warn } else { Level::Info };
        Box::new(self.log.writer(self.source, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_stops_at_the_cap() {
        let log = StageLog::new(12, "test");
        let mut writer = log.writer(Source::Stdout, Level::Info);
        assert!(writer.accept(b"one\ntw"));
        assert!(writer.accept(b"o\r\nthree"));
        assert!(writer.flush_partial());
        let texts: Vec<String> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert!(!writer.accept(b"four\n"));
        assert!(log.overflowed());
        assert_eq!(log.tail(Source::Stdout, 2), ["two", "three"]);
    }
}
