//! Replays of recorded events: `trigd match --events` runs a file of JSON lines through the
//! rules on every core, with the output in input order and memory bounded whatever the size of
//! the input.
//!
//! The pipeline ([`run_batches`]), shared with [`diff`](crate::diff):
//! * a reader thread opens the input (a file or standard input, gzip detected by its magic
//!   bytes or a `.gz` suffix) and cuts it into [`Batch`]es of whole lines;
//! * worker threads turn batches into results, each with its own matcher scratch;
//! * the calling thread receives the results in input order and writes them out.
//!
//! Every batch gets a one-shot result channel whose receiving end goes, in input order, into a
//! bounded queue that the calling thread drains; the reader blocks when that queue is full, so
//! at most `2 × threads + 2` batches are in flight. Batch buffers are recycled.
//!
//! Matching reads the raw line with the compiled [`Matcher`](crate::pattern::Matcher): only a
//! line whose payloads are wanted is parsed into a `serde_json::Value`.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::dry_run::{self, DryRunError};
use crate::pattern::RuleId;
use crate::rules::{RuleSet, Trigger};

/// Where events are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file; gzip when it starts with the gzip magic bytes or its name ends in `.gz`.
    File(PathBuf),
}

impl Input {
    /// The input a command-line argument names: `-` is standard input.
    pub fn from_arg(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::File(arg.to_owned())
        }
    }

    /// How messages name the input.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_owned(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Opens the input, decompressing gzip transparently (concatenated members included).
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let (mut raw, gz_name): (Box<dyn Read + Send>, bool) = match self {
            Input::Stdin => (Box::new(io::stdin()), false),
            Input::File(p) => (
                Box::new(std::fs::File::open(p)?),
                p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")),
            ),
        };
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < head.len() {
            match raw.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let gzip = (got == 2 && head == GZIP_MAGIC) || (gz_name && got > 0);
        let rest = io::Cursor::new(head[..got].to_vec()).chain(raw);
        Ok(if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(rest))
        } else {
            Box::new(rest)
        })
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How the pipeline runs. The defaults suit the command line; tests use small batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// A batch ends after this many lines...
    pub batch_lines: usize,
    /// ...or once it holds this many bytes, whichever comes first (a batch holds at least one
    /// line).
    pub batch_bytes: usize,
    /// Longer lines are reported as errors and skipped without being held in memory.
    pub max_line: usize,
    /// Draw a progress line on the error stream (for terminals only).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_lines: 512,
            batch_bytes: 512 * 1024,
            max_line: 16 * 1024 * 1024,
            progress: false,
        }
    }
}

/// Bytes requested from the input per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a replay stopped. Bad lines do not stop it: they are counted and reported.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input could not be opened or read (or is not valid gzip).
    #[error("cannot read {name}")]
    Read {
        /// The input, as [`Input::name`] shows it.
        name: String,
        #[source]
        source: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the output")]
    Write(#[source] io::Error),
    /// A worker thread died (a bug).
    #[error("a worker thread failed")]
    Worker,
}

/// Why one line is not an event; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line's bytes are not UTF-8.
    #[error("not valid UTF-8 (byte {offset})")]
    NotUtf8 {
        /// Where in the line the first invalid byte is.
        offset: usize,
    },
    /// The line exceeds [`Options::max_line`]; it was skipped unread.
    #[error("longer than {limit} bytes; skipped")]
    TooLong {
        /// [`Options::max_line`].
        limit: usize,
    },
}

/// Consecutive whole lines of the input.
#[derive(Debug)]
pub struct Batch {
    /// The 1-based number of the first line.
    first_line: u64,
    data: Vec<u8>,
    /// Set when this batch stands for one over-long line, dropped unread.
    too_long: Option<usize>,
}

impl Batch {
    /// The non-blank lines, with their 1-based numbers (blank lines are skipped but counted).
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            rest: &self.data,
            next: self.first_line,
            too_long: self.too_long,
        }
    }
}

/// The lines of a [`Batch`].
#[derive(Debug)]
pub struct Lines<'a> {
    rest: &'a [u8],
    next: u64,
    too_long: Option<usize>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u64, Result<&'a str, LineError>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(limit) = self.too_long.take() {
            return Some((self.next, Err(LineError::TooLong { limit })));
        }
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = match memchr::memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let number = self.next;
            self.next += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Some((
                number,
                std::str::from_utf8(line).map_err(|e| LineError::NotUtf8 {
                    offset: e.valid_up_to(),
                }),
            ));
        }
    }
}

/// Reports line errors and progress on the error stream, in input order.
pub struct Reporter<'w> {
    err: &'w mut dyn Write,
    pending: String,
    progress: bool,
    drawn: bool,
    last_draw: Option<SystemTime>,
}

impl<'w> Reporter<'w> {
    fn new(err: &'w mut dyn Write, progress: bool) -> Self {
        Reporter {
            err,
            pending: String::new(),
            progress,
            drawn: false,
            last_draw: None,
        }
    }

    /// Reports `line N: <reason>`.
    pub fn line_error(&mut self, line: u64, reason: &str) {
        let _ = writeln!(self.pending, "line {line}: {reason}");
    }

    /// Writes what was reported, then redraws the progress line now and then. Failures to
    /// write to the error stream are ignored: they must not stop the run.
    fn flush(&mut self, lines: u64, bytes: u64) {
        if !self.pending.is_empty() {
            if self.drawn {
                let _ = self.err.write_all(b"\r\x1b[K");
                self.drawn = false;
            }
            let _ = self.err.write_all(self.pending.as_bytes());
            self.pending.clear();
        }
        if self.progress {
            let now = SystemTime::now();
            let due = self
                .last_draw
                .is_none_or(|t| now.duration_since(t).map_or(true, |d| d.as_millis() >= 200));
            if due || !self.drawn {
                self.last_draw = Some(now);
                let _ = write!(
                    self.err,
                    "\r\x1b[K{lines} lines, {:.1} MiB of events read",
                    bytes as f64 / (1024.0 * 1024.0)
                );
                self.drawn = true;
            }
        }
        let _ = self.err.flush();
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = self.err.write_all(b"\r\x1b[K");
            self.drawn = false;
        }
        let _ = self.err.flush();
    }
}

/// A batch handed to a worker, with where its result goes.
type Job<R> = (Batch, SyncSender<R>);

/// A batch in flight, in input order.
struct Pending<R> {
    result: Receiver<R>,
    /// Lines read so far, and bytes, for the progress line.
    lines: u64,
    bytes: u64,
}

/// Runs `work` over the input's batches on `options.threads` workers and hands each result to
/// `sink` on the calling thread, in input order. Each worker's state comes from `init` and is
/// returned at the end, so that workers can count without sharing.
///
/// The input is opened before anything else, so a missing file fails before any output.
pub fn run_batches<S, R>(
    input: &Input,
    options: &Options,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &Batch) -> R + Sync,
    mut sink: impl FnMut(R, &mut Reporter<'_>) -> io::Result<()>,
    err: &mut dyn Write,
) -> Result<Vec<S>, ReplayError>
where
    S: Send,
    R: Send,
{
    let read_error = |source| ReplayError::Read {
        name: input.name(),
        source,
    };
    let source = input.open().map_err(read_error)?;
    let threads = options.threads.max(1);
    let depth = 2 * threads;
    let mut reporter = Reporter::new(err, options.progress);
    let (order_tx, order_rx) = mpsc::sync_channel::<Pending<R>>(depth);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job<R>>(depth);
    let (recycle_tx, recycle_rx) = mpsc::sync_channel::<Vec<u8>>(depth + 2);
    let job_rx = Mutex::new(job_rx);
    let (states, outcome, read) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut lines = 0;
            let mut bytes = 0;
            read_batches(source, options, &recycle_rx, |batch, next_line| {
                lines = next_line - 1;
                bytes += batch.data.len() as u64;
                let (tx, rx) = mpsc::sync_channel(1);
                let pending = Pending {
                    result: rx,
                    lines,
                    bytes,
                };
                order_tx.send(pending).is_ok() && job_tx.send((batch, tx)).is_ok()
            })
        });
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (job_rx, recycle_tx, init, work) = (&job_rx, recycle_tx.clone(), &init, &work);
                scope.spawn(move || {
                    let mut state = init();
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok((batch, tx)) = job else { break };
                        // The receiver is gone only when the run is being abandoned.
                        let _ = tx.send(work(&mut state, &batch));
                        let _ = recycle_tx.try_send(batch.data);
                    }
                    state
                })
            })
            .collect();
        drop(recycle_tx);
        let mut outcome = Ok(());
        for pending in order_rx.iter() {
            let Ok(result) = pending.result.recv() else {
                outcome = Err(ReplayError::Worker);
                break;
            };
            if let Err(e) = sink(result, &mut reporter) {
                outcome = Err(ReplayError::Write(e));
                break;
            }
            reporter.flush(pending.lines, pending.bytes);
        }
        // Stops the reader if the loop ended early; the workers then run out of jobs.
        drop(order_rx);
        let read = reader.join();
        let states: Vec<Option<S>> = workers.into_iter().map(|w| w.join().ok()).collect();
        (states, outcome, read)
    });
    reporter.finish();
    outcome?;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(read_error(e)),
        Err(_) => return Err(ReplayError::Worker),
    }
    states
        .into_iter()
        .map(|s| s.ok_or(ReplayError::Worker))
        .collect()
}

/// Reads `source` to the end, cutting it into batches of whole lines for `emit`, which gets
/// each batch with the number of the line after it and returns false to stop.
fn read_batches(
    mut source: impl Read,
    options: &Options,
    pool: &Receiver<Vec<u8>>,
    mut emit: impl FnMut(Batch, u64) -> bool,
) -> io::Result<()> {
    let max_lines = options.batch_lines.max(1);
    let mut carry: Vec<u8> = Vec::new();
    let mut line: u64 = 1;
    let mut eof = false;
    loop {
        let mut buf = pool.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&carry);
        carry.clear();
        let mut newlines = memchr::memchr_iter(b'\n', &buf).count();
        let mut too_long = false;
        while !eof && (newlines == 0 || (buf.len() < options.batch_bytes && newlines < max_lines)) {
            if newlines == 0 && buf.len() > options.max_line {
                too_long = true;
                break;
            }
            let before = buf.len();
            let n = read_some(&mut source, &mut buf)?;
            if n == 0 {
                eof = true;
            } else {
                newlines += memchr::memchr_iter(b'\n', &buf[before..]).count();
            }
        }
        if too_long || (newlines == 0 && buf.len() > options.max_line) {
            // Drop the line: the rest of it is read and thrown away.
            buf.clear();
            if !eof {
                eof = skip_line(&mut source, &mut buf, &mut carry)?;
            }
            let batch = Batch {
                first_line: line,
                data: buf,
                too_long: Some(options.max_line),
            };
            line += 1;
            if !emit(batch, line) {
                return Ok(());
            }
            if eof && carry.is_empty() {
                return Ok(());
            }
            continue;
        }
        if buf.is_empty() {
            return Ok(());
        }
        let (cut, count) = if newlines > max_lines {
            let at = memchr::memchr_iter(b'\n', &buf)
                .nth(max_lines - 1)
                .map_or(buf.len(), |i| i + 1);
            (at, max_lines)
        } else if newlines > 0 {
            let at = memchr::memrchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
            (at, newlines)
        } else {
            // The last line, without a newline.
            (buf.len(), 1)
        };
        carry.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        line += count as u64;
        let batch = Batch {
            first_line: line - count as u64,
            data: buf,
            too_long: None,
        };
        if !emit(batch, line) {
            return Ok(());
        }
        if eof && carry.is_empty() {
            return Ok(());
        }
    }
}

/// Appends up to [`READ_CHUNK`] bytes with one read; 0 at the end of the input.
///
/// One `read` into a buffer of the whole chunk: `read_to_end` on a reader without a size hint
/// (ours is boxed) reads 8 KiB, then 16, then 32, so that each chunk took four system calls.
fn read_some(source: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let read = loop {
        match source.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// Reads and drops the rest of a line; what follows its newline goes to `carry`. Returns
/// whether the input ended first.
fn skip_line(
    source: &mut impl Read,
    scratch: &mut Vec<u8>,
    carry: &mut Vec<u8>,
) -> io::Result<bool> {
    loop {
        scratch.clear();
        if read_some(source, scratch)? == 0 {
            return Ok(true);
        }
        if let Some(i) = memchr::memchr(b'\n', scratch) {
            carry.extend_from_slice(&scratch[i + 1..]);
            scratch.clear();
            return Ok(false);
        }
    }
}

/// The output of `trigd match --events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchFormat {
    /// One JSON object per event, in input order.
    Jsonl,
    /// One JSON object at the end: counts only.
    Summary,
}

/// What `trigd match --events` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOptions {
    /// JSON lines or a summary.
    pub format: MatchFormat,
    /// Add each matched target's payload to the JSON lines.
    pub payloads: bool,
    /// Stands in for the ingestion time of events without a `time` field.
    pub now: DateTime<Utc>,
}

/// The counts of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lines that are events (blank and bad lines excluded).
    pub events: u64,
    /// Lines that are not events.
    pub errors: u64,
    /// Every pattern rule, in rule order, with how many events it matched.
    pub matches: Vec<(String, u64)>,
}

impl Summary {
    /// `{"events":N,"errors":N,"matches":{"RULE":COUNT,...}}`, rules in rule order.
    pub fn to_json(&self) -> Value {
        let matches: serde_json::Map<String, Value> = self
            .matches
            .iter()
            .map(|(name, n)| (name.clone(), Value::from(*n)))
            .collect();
        serde_json::json!({"events": self.events, "errors": self.errors, "matches": matches})
    }
}

/// The pattern rules of a set, by matcher id: what replays need to know about each.
#[derive(Debug)]
pub(crate) struct PatternRules {
    /// Index in `RuleSet::rules`.
    pub(crate) index: Vec<usize>,
    pub(crate) enabled: Vec<bool>,
}

impl PatternRules {
    pub(crate) fn of(set: &RuleSet) -> PatternRules {
        let index: Vec<usize> = set
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.trigger, Trigger::Pattern(_)))
            .map(|(i, _)| i)
            .collect();
        let enabled = index.iter().map(|&i| set.rules[i].enabled).collect();
        PatternRules { index, enabled }
    }
}

/// Appends `s` as a JSON string.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Parses a line for rendering: the value, and its compact text (what targets receive as the
/// whole event, as `trigd match --event` renders it).
pub(crate) fn parse_event(line: &str) -> Result<(Value, String), DryRunError> {
    let event: Value = serde_json::from_str(line)?;
    let compact = event.to_string();
    Ok((event, compact))
}

/// Replays `input` against the pattern rules of `set`: JSON lines or a summary on `out`, bad
/// lines on `err` as `line N: <reason>`. Disabled rules never match; schedule rules are ignored.
///
/// JSON lines: `{"line":N,"matched":["rule",...]}` per event, in input order; with
/// [`MatchOptions::payloads`], also `"payloads":{"rule/target":"text",...}` and, when a target
/// cannot be rendered, `"errors":{"rule/target":"reason",...}`. The summary is
/// [`Summary::to_json`] on one line.
pub fn match_events(
    set: &RuleSet,
    input: &Input,
    options: &Options,
    opts: &MatchOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    let rules = PatternRules::of(set);
    let names_json: Vec<Vec<u8>> = rules
        .index
        .iter()
        .map(|&i| {
            let mut v = Vec::new();
            push_json_str(&mut v, &set.rules[i].name);
            v
        })
        .collect();
    let ctx = MatchContext {
        set,
        rules: &rules,
        names_json: &names_json,
        opts,
    };
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    let states = run_batches(
        input,
        options,
        || MatchWorker {
            scratch: set.matcher().scratch(),
            ids: Vec::new(),
            events: 0,
            errors: 0,
            counts: vec![0; rules.index.len()],
        },
        |w, batch| ctx.batch(w, batch),
        |result: BatchOutput, reporter| {
            out.write_all(&result.text)?;
            for (line, reason) in &result.errors {
                reporter.line_error(*line, reason);
            }
            Ok(())
        },
        err,
    )?;
    let mut summary = Summary {
        events: 0,
        errors: 0,
        matches: rules
            .index
            .iter()
            .map(|&i| (set.rules[i].name.clone(), 0))
            .collect(),
    };
    for w in states {
        summary.events += w.events;
        summary.errors += w.errors;
        for (m, n) in summary.matches.iter_mut().zip(&w.counts) {
            m.1 += n;
        }
    }
    if opts.format == MatchFormat::Summary {
        writeln!(out, "{}", summary.to_json()).map_err(ReplayError::Write)?;
    }
    out.flush().map_err(ReplayError::Write)?;
    Ok(summary)
}

/// What a worker hands back for one batch: output text, and bad lines.
#[derive(Debug, Default)]
pub(crate) struct BatchOutput {
    pub(crate) text: Vec<u8>,
    pub(crate) errors: Vec<(u64, String)>,
}

struct MatchContext<'a> {
    set: &'a RuleSet,
    rules: &'a PatternRules,
    names_json: &'a [Vec<u8>],
    opts: &'a MatchOptions,
}

struct MatchWorker {
    scratch: crate::pattern::Scratch,
    ids: Vec<RuleId>,
    events: u64,
    errors: u64,
    counts: Vec<u64>,
}

impl MatchContext<'_> {
    fn batch(&self, w: &mut MatchWorker, batch: &Batch) -> BatchOutput {
        let mut out = BatchOutput::default();
        let jsonl = self.opts.format == MatchFormat::Jsonl;
        for (number, line) in batch.lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    w.errors += 1;
                    out.errors.push((number, e.to_string()));
                    continue;
                }
            };
            if let Err(e) = self.set.matcher().matches(line, &mut w.scratch, &mut w.ids) {
                w.errors += 1;
                out.errors.push((number, e.to_string()));
                continue;
            }
            w.events += 1;
            w.ids.retain(|&id| self.rules.enabled[id as usize]);
            for &id in &w.ids {
                w.counts[id as usize] += 1;
            }
            if !jsonl {
                continue;
            }
            let t = &mut out.text;
            // Writing into a Vec cannot fail.
            let _ = write!(t, "{{\"line\":{number},\"matched\":[");
            for (k, &id) in w.ids.iter().enumerate() {
                if k > 0 {
                    t.push(b',');
                }
                t.extend_from_slice(&self.names_json[id as usize]);
            }
            t.push(b']');
            if self.opts.payloads {
                self.payloads(line, &w.ids, t);
            }
            t.extend_from_slice(b"}\n");
        }
        out
    }

    /// `,"payloads":{...}` and, when some target cannot be rendered, `,"errors":{...}`.
    fn payloads(&self, line: &str, ids: &[RuleId], t: &mut Vec<u8>) {
        let mut payloads: Vec<(String, String)> = Vec::new();
        let mut errors: Vec<(String, String)> = Vec::new();
        if !ids.is_empty() {
            match parse_event(line) {
                Ok((event, compact)) => {
                    let ingestion = dry_run::ingestion_time(&event, self.opts.now);
                    for &id in ids {
                        let rule = &self.set.rules[self.rules.index[id as usize]];
                        let m =
                            crate::route::render_rule(self.set, rule, &compact, &event, &ingestion);
                        for p in m.targets {
                            let key = format!("{}/{}", m.rule, p.id);
                            match p.payload {
                                Ok(text) => payloads.push((key, text)),
                                Err(e) => errors.push((key, e)),
                            }
                        }
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    for &id in ids {
                        let rule = &self.set.rules[self.rules.index[id as usize]];
                        for target in &rule.targets {
                            errors.push((format!("{}/{}", rule.name, target.id), reason.clone()));
                        }
                    }
                }
            }
        }
        push_map(t, "payloads", &payloads);
        if !errors.is_empty() {
            push_map(t, "errors", &errors);
        }
    }
}

/// Appends `,"key":{"k":"v",...}`.
fn push_map(t: &mut Vec<u8>, key: &str, entries: &[(String, String)]) {
    t.push(b',');
    push_json_str(t, key);
    t.extend_from_slice(b":{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            t.push(b',');
        }
        push_json_str(t, k);
        t.push(b':');
        push_json_str(t, v);
    }
    t.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &[u8], options: &Options) -> Vec<(u64, Vec<u8>, Option<usize>)> {
        let (_tx, pool) = mpsc::sync_channel(1);
        let mut out = Vec::new();
        read_batches(input, options, &pool, |b, next| {
            let count = if b.too_long.is_some() {
                1
            } else {
                let n = memchr::memchr_iter(b'\n', &b.data).count() as u64;
                n + u64::from(!b.data.is_empty() && !b.data.ends_with(b"\n"))
            };
            assert_eq!(b.first_line + count, next, "line numbering");
            out.push((b.first_line, b.data, b.too_long));
            true
        })
        .unwrap();
        out
    }

    fn small(lines: usize, bytes: usize, max_line: usize) -> Options {
        Options {
            threads: 2,
            batch_lines: lines,
            batch_bytes: bytes,
            max_line,
            progress: false,
        }
    }

    fn all_lines(bs: &[(u64, Vec<u8>, Option<usize>)]) -> Vec<(u64, Result<String, LineError>)> {
        bs.iter()
            .flat_map(|(first, data, too_long)| {
                let b = Batch {
                    first_line: *first,
                    data: data.clone(),
                    too_long: *too_long,
                };
                b.lines()
                    .map(|(n, l)| (n, l.map(str::to_owned)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn batches_cut_at_line_counts_and_keep_numbers() {
        let text: String = (1..=10).map(|i| format!("l{i}\n")).collect();
        let bs = batches(text.as_bytes(), &small(3, 1 << 20, 1 << 20));
        assert_eq!(
            bs.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![1, 4, 7, 10]
        );
        let lines = all_lines(&bs);
        assert_eq!(lines.len(), 10);
        for (i, (n, l)) in lines.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1);
            assert_eq!(l.as_deref(), Ok(format!("l{}", i + 1).as_str()));
        }
    }

    #[test]
    fn blank_lines_count_and_the_last_line_needs_no_newline() {
        let bs = batches(b"a\n\n  \r\nb\r\nc", &small(2, 1 << 20, 1 << 20));
        assert_eq!(
            all_lines(&bs),
            vec![
                (1, Ok("a".to_owned())),
                (4, Ok("b".to_owned())),
                (5, Ok("c".to_owned()))
            ]
        );
        assert!(batches(b"", &small(2, 10, 10)).is_empty());
        assert_eq!(all_lines(&batches(b"\n\n", &small(1, 10, 10))), vec![]);
    }

    #[test]
    fn byte_limits_cut_batches_and_long_lines_are_skipped() {
        let long = "x".repeat(200_000);
        let text = format!("a\n{long}\nb\n{long}");
        let bs = batches(text.as_bytes(), &small(100, 4, 1000));
        let lines = all_lines(&bs);
        assert_eq!(
            lines,
            vec![
                (1, Ok("a".to_owned())),
                (2, Err(LineError::TooLong { limit: 1000 })),
                (3, Ok("b".to_owned())),
                (4, Err(LineError::TooLong { limit: 1000 })),
            ]
        );
        assert!(
            bs.iter().all(|b| b.1.len() < 70_000),
            "long lines are not held"
        );
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let bs = batches(b"{}\n\xff\xfe\n", &small(10, 100, 100));
        assert_eq!(
            all_lines(&bs),
            vec![
                (1, Ok("{}".to_owned())),
                (2, Err(LineError::NotUtf8 { offset: 0 }))
            ]
        );
    }

    #[test]
    fn the_pipeline_keeps_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        let text: String = (1..=5000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut seen = Vec::new();
        let mut err = Vec::new();
        let states = run_batches(
            &Input::File(path),
            &small(7, 1 << 20, 1 << 20),
            || 0u64,
            |count, b| {
                let v: Vec<u64> = b
                    .lines()
                    .map(|(n, l)| {
                        assert_eq!(l.unwrap().parse::<u64>().unwrap(), n);
                        n
                    })
                    .collect();
                *count += v.len() as u64;
                v
            },
            |v, _| {
                seen.extend(v);
                Ok(())
            },
            &mut err,
        )
        .unwrap();
        assert_eq!(seen, (1..=5000).collect::<Vec<u64>>());
        assert_eq!(states.iter().sum::<u64>(), 5000);
        assert!(err.is_empty());
    }

    #[test]
    fn a_failing_sink_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        let text: String = (1..=5000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut calls = 0;
        let r = run_batches(
            &Input::File(path),
            &small(3, 1 << 20, 1 << 20),
            || (),
            |_, _| (),
            |_, _| {
                calls += 1;
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            },
            &mut Vec::new(),
        );
        assert!(matches!(r, Err(ReplayError::Write(_))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes() {
        use flate2::{Compression, write::GzEncoder};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(b"a\nb\n").unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let mut text = String::new();
        Input::File(path)
            .open()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a\nb\n");
        let empty = dir.path().join("empty.gz");
        std::fs::write(&empty, b"").unwrap();
        let mut text = String::new();
        Input::File(empty)
            .open()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "");
    }
}
