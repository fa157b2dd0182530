//! The log of one plugin call: lines the plugin writes through `log`, its
//! own stdout and stderr, and the output of programs it runs — one capped
//! buffer, so a plugin that floods it is stopped instead of filling memory.
//!
//! The cap counts bytes (line ends included) and lines (blank ones too).
//! Output past it is read and dropped at constant memory: the writer keeps
//! accepting bytes, so a program's pipe is drained and the program never
//! blocks, but nothing more is kept. Lines are split in one pass over each
//! write, never by rescanning a growing partial line.
//!
//! Every line and message goes through [`redact`]: secret values known to
//! this process ([`hide_everywhere`]) are replaced by `[secret]`, each line
//! of a multi-line value (a PEM key) as well as the whole value.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll};

use memchr::memmem::Finder;
use tokio::io::AsyncWrite;

use loktar_settings::Settings;

/// A log holds at most one line per this many bytes of its byte cap, blank
/// lines included: 65 536 lines under the default 4096 KiB (an average line
/// of 64 bytes). A line costs memory beyond its text — in the log and in the
/// run's event stream — so a flood of empty lines must be capped too.
pub const BYTES_PER_LINE: usize = 64;

/// The fewest lines a log holds, however small its byte cap.
const MIN_LINES: usize = 64;

/// Lines a log may add past its cap to say what it dropped.
const MAX_NOTES: usize = 8;

/// Secret values shorter than this are not hidden: they would blank out ordinary words.
const MIN_SECRET: usize = 4;

/// Lines of a multi-line secret shorter than this are not hidden on their own (`}`, `true`).
const MIN_SECRET_LINE: usize = 8;

/// What a hidden secret becomes.
const HIDDEN: &str = "[secret]";

pub use loktar_protocol::{Level, Line, Source};

#[derive(Debug)]
struct Inner {
    lines: Vec<Line>,
    /// Bytes kept, one per line end included.
    bytes: usize,
    cap: usize,
    max_lines: usize,
    overflowed: bool,
    /// Notes added past the cap so far.
    notes: usize,
}

impl Inner {
    /// Whether a line of `len` bytes still fits.
    fn fits(&self, len: usize) -> bool {
        !self.overflowed && self.lines.len() < self.max_lines && self.bytes.saturating_add(len) < self.cap
    }

    /// The longest line that still fits, in bytes.
    fn room(&self) -> usize {
        if self.overflowed || self.lines.len() >= self.max_lines { 0 } else { self.cap.saturating_sub(self.bytes + 1) }
    }

    /// The cap in words, for notes.
    fn describe_cap(&self) -> String {
        let bytes = if self.cap.is_multiple_of(1024) {
            format!("`{}` KiB", self.cap / 1024)
        } else {
            format!("`{}` bytes", self.cap)
        };
        format!("{bytes} or `{}` lines", self.max_lines)
    }
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
    /// A log that accepts at most `cap` bytes of text (each line end counts
    /// as one) in at most `cap / BYTES_PER_LINE` lines; `label` names the
    /// plugin in tracing output.
    pub fn new(cap: usize, label: &str) -> StageLog {
        let max_lines = (cap / BYTES_PER_LINE).max(MIN_LINES);
        let inner = Inner { lines: Vec::new(), bytes: 0, cap, max_lines, overflowed: false, notes: 0 };
        StageLog { inner: Arc::new(Mutex::new(inner)), label: label.into(), tap: None }
    }

    /// The same log, also handing every new line to `tap`.
    pub fn with_tap(mut self, tap: Option<LineTap>) -> StageLog {
        self.tap = tap;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a line; returns `false` (and drops it) once the cap is reached.
    pub fn push(&self, source: Source, level: Level, text: &str) -> bool {
        let mut inner = self.lock();
        if !inner.fits(text.len()) {
            self.overflow(&mut inner, source);
            return false;
        }
        inner.bytes += text.len() + 1;
        self.append(&mut inner, source, level, text);
        true
    }

    /// Marks the log full, saying so in a last line the first time.
    fn overflow(&self, inner: &mut Inner, source: Source) {
        if !inner.overflowed {
            inner.overflowed = true;
            let note =
                format!("-- loktar: the log is full ({}); output past this line is dropped", inner.describe_cap());
            self.note(inner, source, &note);
        }
    }

    /// Appends a line past the cap, at most [`MAX_NOTES`] times.
    fn note(&self, inner: &mut Inner, source: Source, text: &str) {
        if inner.notes < MAX_NOTES {
            inner.notes += 1;
            self.append(inner, source, Level::Warn, text);
        }
    }

    fn append(&self, inner: &mut Inner, source: Source, level: Level, text: &str) {
        let line = Line { source, level, text: redact(text).into_owned() };
        match &self.tap {
            Some(tap) => tap(&line),
            // Without a run to report to, the lines are tracing output.
            None => {
                let text = &line.text;
                match level {
                    Level::Debug => tracing::debug!(plugin = %self.label, "{text}"),
                    Level::Info => tracing::info!(plugin = %self.label, "{text}"),
                    Level::Warn => tracing::warn!(plugin = %self.label, "{text}"),
                    Level::Error => tracing::error!(plugin = %self.label, "{text}"),
                }
            }
        }
        inner.lines.push(line);
    }

    /// Keeps `secret` out of every line and message written from now on, in
    /// every log of this process (see [`hide_everywhere`]).
    pub fn hide(&self, secret: &str) {
        hide_everywhere(secret);
    }

    /// `text` with every hidden secret replaced by `[secret]`.
    pub fn redact(&self, text: &str) -> String {
        redact(text).into_owned()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lock().lines.clone()
    }

    /// Whether something was dropped because the cap was reached.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// The last `count` lines from `source`, for error messages.
    pub fn tail(&self, source: Source, count: usize) -> Vec<String> {
        let inner = self.lock();
        let mut tail: Vec<String> =
            inner.lines.iter().rev().filter(|l| l.source == source).take(count).map(|l| l.text.clone()).collect();
        tail.reverse();
        tail
    }

    /// A writer that splits bytes into lines of this log.
    pub fn writer(&self, source: Source, level: Level) -> LineWriter {
        LineWriter {
            log: self.clone(),
            source,
            level,
            partial: Vec::new(),
            full: false,
            dropped_lines: 0,
            dropped_bytes: 0,
            open: false,
        }
    }
}

/// Splits written bytes into log lines. Once the log is full it keeps
/// taking bytes, only counting them, and says `false`.
#[derive(Debug)]
pub struct LineWriter {
    log: StageLog,
    source: Source,
    level: Level,
    /// The unterminated line so far; never longer than the log has room for.
    partial: Vec<u8>,
    /// The log is full: bytes are counted, not kept.
    full: bool,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// The last dropped byte did not end a line.
    open: bool,
}

impl LineWriter {
    /// Takes bytes, emitting every complete line; `false` when the log is full.
    pub fn accept(&mut self, bytes: &[u8]) -> bool {
        if self.full {
            self.discard(bytes);
            return false;
        }
        let mut start = 0;
        // Only the new bytes are searched: the partial line has no newline.
        for end in memchr::memchr_iter(b'\n', bytes) {
            let piece = &bytes[start..end];
            start = end + 1;
            let kept = if self.partial.is_empty() {
                self.emit(piece)
            } else {
                self.partial.extend_from_slice(piece);
                let line = std::mem::take(&mut self.partial);
                let kept = self.emit(&line);
                self.partial = line;
                self.partial.clear();
                kept
            };
            if !kept {
                self.full = true;
                self.partial = Vec::new();
                self.discard(&bytes[start..]);
                return false;
            }
        }
        let rest = &bytes[start..];
        let room = self.log.lock().room();
        if self.partial.len() + rest.len() > room {
            // An unterminated line that can no longer fit: the log is full.
            self.dropped_bytes += (self.partial.len() + rest.len()) as u64;
            self.open = true;
            self.partial = Vec::new();
            self.full = true;
            self.log.overflow(&mut self.log.lock(), self.source);
            return false;
        }
        self.partial.extend_from_slice(rest);
        true
    }

    /// Hands one line (without its `\n`) to the log; counts it when dropped.
    fn emit(&mut self, line: &[u8]) -> bool {
        let text = String::from_utf8_lossy(line);
        if self.log.push(self.source, self.level, text.trim_end_matches('\r')) {
            return true;
        }
        self.dropped_lines += 1;
        self.dropped_bytes += line.len() as u64 + 1;
        false
    }

    /// Counts bytes past the cap.
    fn discard(&mut self, bytes: &[u8]) {
        if let Some(last) = bytes.last() {
            self.dropped_lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
            self.dropped_bytes += bytes.len() as u64;
            self.open = *last != b'\n';
        }
    }

    /// Emits what is left of an unterminated last line, and says how much
    /// output was dropped, if any; `false` when the log is full.
    pub fn flush_partial(&mut self) -> bool {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if !self.emit(&line) {
                self.full = true;
            }
        }
        if std::mem::take(&mut self.open) {
            self.dropped_lines += 1;
        }
        if self.dropped_bytes > 0 {
            let (lines, bytes) = (std::mem::take(&mut self.dropped_lines), std::mem::take(&mut self.dropped_bytes));
            let what = if lines == 1 { "1 line".to_string() } else { format!("{lines} lines") };
            let note = format!("-- loktar: the log was cut: {what} ({bytes} bytes) of this output were dropped");
            self.log.note(&mut self.log.lock(), self.source, &note);
        }
        !self.full
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

/// Secret values hidden in every output of this process: one run, or the
/// runs of one server, under one host configuration.
static SECRETS: LazyLock<RwLock<Arc<Redactor>>> = LazyLock::new(RwLock::default);

/// Keeps `secret` out of every log line and message from now on: the whole
/// value, and each line of a multi-line value (a PEM key is echoed line by
/// line, and log lines are split at newlines).
pub fn hide_everywhere(secret: &str) {
    let mut wanted: Vec<&str> = [secret, secret.trim()].into_iter().filter(|s| s.len() >= MIN_SECRET).collect();
    if secret.trim().contains('\n') {
        wanted.extend(secret.lines().map(str::trim).filter(|line| line.len() >= MIN_SECRET_LINE));
    }
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    wanted.retain(|value| !secrets.finders.iter().any(|known| known.needle() == value.as_bytes()));
    if wanted.is_empty() {
        return;
    }
    // Copied on write: readers keep the set they took, without holding the lock.
    let mut finders = secrets.finders.clone();
    finders.extend(wanted.into_iter().map(|value| Finder::new(value).into_owned()));
    finders.sort_by(|a, b| a.needle().cmp(b.needle()));
    finders.dedup_by(|a, b| a.needle() == b.needle());
    *secrets = Arc::new(Redactor::new(finders));
}

/// Hides the value of every secret the host configuration names (under
/// `[secrets]`) that is set, whether or not a plugin reads it: a program
/// may be handed one through `env` and print it.
pub fn hide_configured_secrets(settings: &Settings) {
    for secret in settings.secrets.values() {
        if let Some(value) = loktar_settings::vault::value(&secret.env) {
            hide_everywhere(&value);
        }
    }
}

/// `text` with every hidden secret replaced by `[secret]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner).clone();
    secrets.redact(text)
}

/// Finds secret values in text. One `memmem` search per value (a
/// configuration names a handful), merged leftmost-first: linear in the text
/// for a fixed set, and the `memchr` crate is already a dependency.
#[derive(Debug, Default)]
struct Redactor {
    finders: Vec<Finder<'static>>,
    shortest: usize,
}

impl Redactor {
    fn new(finders: Vec<Finder<'static>>) -> Redactor {
        let shortest = finders.iter().map(|f| f.needle().len()).min().unwrap_or(0);
        Redactor { finders, shortest }
    }

    fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.finders.is_empty() || text.len() < self.shortest {
            return Cow::Borrowed(text);
        }
        let haystack = text.as_bytes();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for finder in &self.finders {
            let len = finder.needle().len();
            spans.extend(finder.find_iter(haystack).map(|start| (start, start + len)));
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        // Overlapping or touching matches are hidden as one: no piece of a secret shows.
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in merged {
            // Matches of whole UTF-8 values start and end on character boundaries.
            let Some(before) = text.get(copied..start) else {
                return Cow::Borrowed(HIDDEN);
            };
            out.push_str(before);
            out.push_str(HIDDEN);
            copied = end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(log: &StageLog) -> Vec<String> {
        log.lines().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn splits_lines_and_stops_at_the_cap() {
        let log = StageLog::new(16, "test");
        let mut writer = log.writer(Source::Stdout, Level::Info);
        assert!(writer.accept(b"one\ntw"));
        assert!(writer.accept(b"o\r\nthree"));
        assert!(writer.flush_partial());
        assert_eq!(texts(&log), ["one", "two", "three"]);
        assert!(!writer.accept(b"four\n"));
        assert!(log.overflowed());
        assert_eq!(log.tail(Source::Stdout, 2)[0], "three");
        assert!(log.tail(Source::Stdout, 1)[0].starts_with("-- loktar: the log is full (`16` bytes or `64` lines)"));
    }

    #[test]
    fn blank_lines_count_against_the_cap() {
        let log = StageLog::new(64 * BYTES_PER_LINE * 100, "test");
        let mut writer = log.writer(Source::Program, Level::Info);
        let blank = vec![b'\n'; 1 << 20];
        assert!(!writer.accept(&blank), "a megabyte of empty lines fills a log of 6 400 lines");
        assert!(!writer.accept(&blank), "and the writer keeps taking bytes once full");
        assert!(!writer.flush_partial());
        let lines = log.lines();
        // The lines that fit, the note saying the log is full, the note saying how much was dropped.
        assert_eq!(lines.len(), 6400 + 2);
        assert_eq!(
            lines[6400].text,
            "-- loktar: the log is full (`400` KiB or `6400` lines); output past this line is dropped"
        );
        let dropped = 2 * (1 << 20) - 6400;
        assert_eq!(
            lines[6401].text,
            format!("-- loktar: the log was cut: {dropped} lines ({dropped} bytes) of this output were dropped")
        );
    }

    #[test]
    fn a_giant_line_is_dropped_without_being_kept() {
        let log = StageLog::new(1024, "test");
        let mut writer = log.writer(Source::Program, Level::Info);
        assert!(writer.accept(b"before\n"));
        assert!(writer.accept(&[b'x'; 1000]));
        assert!(!writer.accept(&[b'x'; 1000]), "the line no longer fits");
        assert_eq!(writer.partial.capacity(), 0, "nothing of it is kept");
        for _ in 0..1000 {
            assert!(!writer.accept(&[b'x'; 8192]));
        }
        assert_eq!(writer.partial.capacity(), 0, "nor of what follows");
        assert!(!writer.accept(b"x\nafter\n"));
        writer.flush_partial();
        let texts = texts(&log);
        assert_eq!(texts[0], "before");
        assert!(texts[1].starts_with("-- loktar: the log is full"), "{texts:?}");
        let dropped = 2000 + 1000 * 8192 + 8;
        assert_eq!(
            texts[2],
            format!("-- loktar: the log was cut: 2 lines ({dropped} bytes) of this output were dropped")
        );
        assert_eq!(texts.len(), 3);
    }

    #[test]
    fn a_line_split_over_many_writes_is_joined_once() {
        let log = StageLog::new(1 << 20, "test");
        let mut writer = log.writer(Source::Program, Level::Info);
        // One byte at a time: a rescanning splitter would do 10⁵ × 10⁵ / 2 steps here.
        for _ in 0..100_000 {
            assert!(writer.accept(b"y"));
        }
        assert!(writer.accept(b"\nshort\n"));
        let texts = texts(&log);
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[0].len(), 100_000);
        assert_eq!(texts[1], "short");
    }

    #[test]
    fn plugin_lines_past_the_cap_are_refused() {
        let log = StageLog::new(16 * 64, "test");
        let accepted = (0..1000).take_while(|_| log.push(Source::Plugin, Level::Info, "")).count();
        assert_eq!(accepted, 64);
        assert!(log.overflowed());
        assert!(!log.push(Source::Plugin, Level::Info, "x"));
        assert_eq!(log.lines().len(), 65);
    }

    #[test]
    fn secrets_are_hidden_whole_and_line_by_line() {
        let pem = "-----BEGIN TEST KEY-----\nc2VjcmV0LWxpbmUtb25lLXN0YWdlLWxvZw==\nc2VjcmV0LWxpbmUtdHdv\nAb==\n-----END TEST KEY-----\n";
        hide_everywhere(pem);
        hide_everywhere("tok-3f1c9e77");
        hide_everywhere("abc");
        let log = StageLog::new(4096, "test");
        let mut writer = log.writer(Source::Program, Level::Info);
        writer.accept(pem.as_bytes());
        writer.accept(b"token=tok-3f1c9e77tok-3f1c9e77 and abc\n");
        writer.flush_partial();
        let texts = texts(&log);
        assert_eq!(texts, ["[secret]", "[secret]", "[secret]", "Ab==", "[secret]", "token=[secret] and abc"]);
        assert_eq!(log.redact(&format!("cannot sign with {pem}")), "cannot sign with [secret]");
        assert_eq!(redact("tok-3f1c9e7"), "tok-3f1c9e7", "a prefix of a secret is no secret");
    }

    #[test]
    fn every_configured_secret_that_is_set_is_hidden() {
        // Cargo sets it for test runs; no other test logs it.
        let description = std::env::var("CARGO_PKG_DESCRIPTION").expect("cargo sets it for tests");
        let mut settings = Settings::builtin();
        let secret = |env: &str| loktar_settings::Secret { env: env.to_string() };
        settings.secrets.insert("description".into(), secret("CARGO_PKG_DESCRIPTION"));
        settings.secrets.insert("unset".into(), secret("LOKTAR_TEST_UNSET_VARIABLE"));
        hide_configured_secrets(&settings);
        assert_eq!(redact(&format!("about: {description}.")), "about: [secret].");
    }

    #[test]
    fn overlapping_secrets_are_hidden_as_one() {
        let redactor = Redactor::new(vec![Finder::new("abcdef").into_owned(), Finder::new("defghi").into_owned()]);
        assert_eq!(redactor.redact("xxabcdefghiyy"), "xx[secret]yy");
        assert_eq!(redactor.redact("é abcdef é"), "é [secret] é");
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
    }
}
