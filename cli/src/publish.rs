//! `eventfork publish`: JSON Lines of events → PutEvents on one bus.

use std::{
    fs,
    io::{self, IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use clap::builder::RangedU64ValueParser;
use router::{
    Entry, PublishError, Publisher,
    publish::{BatchPlan, DEFAULT_MAX_REQUEST_SIZE, LARGE_MAX_REQUEST_SIZE},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Outcome;

/// Lines read and published together; a multiple of 10 so that small events fill every
/// request, and small enough to keep memory flat and the progress bar moving.
const CHUNK_LINES: usize = 1000;

/// Publish events from a JSON Lines file to an EventBridge bus.
///
/// Each line is one event: {"detail-type": "UserSignedUp", "detail": {...}}, optionally
/// with "source", "resources" (ARNs) and "time" (RFC 3339). Each line is checked against
/// the event catalogue first: an unknown detail-type or an invalid detail fails that line
/// only, and the other lines are still published. Blank lines (nothing, or ASCII
/// whitespace) are skipped; a line that is not UTF-8 fails on its own.
///
/// Prints one line per event on stdout, in input order: `published <line>: <event-id>`, or
/// `failed <line>: <code>: <message>`. With --json, one JSON object per event instead:
/// {"type":"published","line":N,"event_id":".."} or {"type":"failed","line":N,"code":"..",
/// "message":"..","attempts":N,"unconfirmed":B}, then {"type":"summary","format":1,
/// "dry_run":false,"events":N,"published":N,"failed":N,"unconfirmed":N,"requests":N}
/// ("unconfirmed": failed, but may have been published all the same: a request got no
/// answer, or one that could not be read); this format is stable (fields are
/// only ever added). With --dry-run, valid lines print `valid <line>: <detail-type>
/// (<size> bytes)` or {"type":"valid","line":N,"detail_type":"..","size":N,"detail":".."}
/// (`detail`: the text form). A summary goes to stderr, with a progress bar
/// when stderr is a terminal.
///
/// The AWS region, credentials and endpoint come from the standard AWS configuration
/// (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...). The bus is checked with
/// DescribeEventBus before anything is sent.
///
/// Exit status: 0 if every event was published (or, with --dry-run, is valid), 2 otherwise.
/// When stdout cannot be written (closed by `| head`), publishing stops and the command
/// fails, naming the last line read: the lines after it were not published.
///
/// Lines are sent in batches of up to 1,000; from standard input (-), which may be piped
/// from a running program, each batch goes out at most 100 ms after its first line came.
///
/// Ctrl-C while lines are read stops at once: every line before has its result printed,
/// and none after was sent. Ctrl-C while events are being sent lets those requests finish
/// and prints their results first, so that no event is left published without a result;
/// a second Ctrl-C stops at once, naming the lines whose fate is then unknown. Either way
/// no summary is printed, stderr names the last line with a result, and the exit status
/// is 130.
///
/// Example: eventfork publish --bus eventfork events.jsonl
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The event bus, by name or ARN. Always explicit: publish never guesses a bus (an
    /// empty name, which EventBridge takes for the default bus, is refused).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    bus: String,
    /// The JSON Lines file, or - for stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
    /// Print JSON Lines results on stdout.
    #[arg(long)]
    json: bool,
    /// Check every line and plan the requests, but send nothing (and need no AWS access).
    #[arg(long)]
    dry_run: bool,
    /// The PutEvents request size limit in bytes, as EventBridge counts it: 262144
    /// (256 KiB) as documented, or 1048576 (1 MiB) where the larger limit is available
    /// (at most 1048576; smaller values split requests more).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_REQUEST_SIZE,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=LARGE_MAX_REQUEST_SIZE as u64)
    )]
    max_request_size: usize,
    /// How many PutEvents requests may be in flight at once (at least 1).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_in_flight: usize,
    /// Send at most this many events per second, in bursts of at most a tenth of that or
    /// one request (0: no limit).
    #[arg(long, value_name = "EVENTS", default_value_t = 0)]
    rate_limit: u32,
    /// How long a request that fails with a retryable error (throttling, a 5xx, no
    /// connection, a timeout) is retried, from its first send, in seconds (at most 3600).
    /// Nothing is printed while retries go on.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = RangedU64ValueParser::<u64>::new().range(0..=3600)
    )]
    retry_deadline: u64,
}

/// One input line, as documented in `--help`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Value,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    time: Option<String>,
}

/// Why a line was not published, in the shape of the output.
struct Failure {
    code: String,
    message: String,
    attempts: u32,
    /// The event may have been published all the same (an answer that never came or
    /// could not be read).
    unconfirmed: bool,
}

impl From<&PublishError> for Failure {
    fn from(error: &PublishError) -> Failure {
        Failure {
            code: error.code().to_owned(),
            message: router::publish::error_causes(error),
            attempts: error.attempts(),
            unconfirmed: error.may_have_been_published(),
        }
    }
}

pub(crate) fn run(args: Args) -> Result<Outcome> {
    // One worker besides the main thread: Ctrl-C is handled there even while the main
    // thread waits on a read from stdin.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(publish(args))
}

async fn publish(args: Args) -> Result<Outcome> {
    let reader = crate::input::open(&args.file)?;
    // A dry run sends nothing: Ctrl-C may stop it anywhere.
    let interrupt = (!args.dry_run).then(|| {
        let interrupt = Arc::new(Mutex::new(Phase::Reading { done: 0 }));
        tokio::spawn(on_ctrl_c(
            Arc::clone(&interrupt),
            args.file.display().to_string(),
            io::stderr().is_terminal(),
        ));
        interrupt
    });
    let publisher = if args.dry_run {
        None
    } else {
        let sdk_config = crate::aws::sdk_config().await?;
        let publisher = Publisher::builder(&args.bus)
            .max_request_size(args.max_request_size)
            .max_in_flight(args.max_in_flight)
            .rate_limit(args.rate_limit)
            .retry_deadline(Duration::from_secs(args.retry_deadline))
            .build(&sdk_config);
        publisher
            .verify_bus()
            .await
            .with_context(|| format!("cannot publish to the event bus {:?}", args.bus))?;
        Some(publisher)
    };

    let total_bytes = (args.file != Path::new("-"))
        .then(|| fs::metadata(&args.file).ok().map(|m| m.len()))
        .flatten();
    let mut progress = Progress::new(io::stderr().is_terminal(), total_bytes);
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut totals = Totals::default();
    let mut line_no = 0usize;
    let mut eof = false;
    // A line of many megabytes (a JSON array export, a binary file) is refused as it is
    // read, not held whole in memory: room for any layout of an event that fits a request.
    let max_line_bytes = args.max_request_size.saturating_mul(4);
    let mut lines = read_lines(reader, max_line_bytes);
    // Standard input may be a pipe from a running program: its lines go out as they come.
    let streamed = args.file == Path::new("-");
    while !eof {
        // Read one chunk: (line number, the entry or why not). From standard input, a
        // chunk goes out 100 ms after its first line at the latest, rather than when 1,000
        // lines have come.
        let mut chunk: Vec<(usize, Result<Entry, Failure>)> = Vec::with_capacity(CHUNK_LINES);
        let mut send_by = None;
        while chunk.len() < CHUNK_LINES {
            let next = match send_by {
                // A file's lines are all there: chunks are full, and the same every run.
                None if !streamed => lines.recv().await,
                None => {
                    let next = lines.recv().await;
                    send_by = Some(tokio::time::Instant::now() + SEND_WITHIN);
                    next
                }
                Some(at) => match tokio::time::timeout_at(at, lines.recv()).await {
                    Ok(next) => next,
                    Err(_due) => break,
                },
            };
            let (bytes, n_bytes) = match next {
                Some(Ok(line)) => line,
                Some(Err(error)) => {
                    return Err(error)
                        .with_context(|| format!("cannot read {}", args.file.display()));
                }
                None => {
                    eof = true;
                    break;
                }
            };
            progress.bytes_read += n_bytes as u64;
            line_no += 1;
            if line_no == 1 {
                crate::input::refuse_utf16(&bytes, &args.file)?;
            }
            let line = crate::input::line_text(&bytes, line_no as u64);
            // A line cut at the limit is reported, even when what was kept is blank.
            let overlong = n_bytes > bytes.len() || line.len() > max_line_bytes;
            if line.trim_ascii().is_empty() && !overlong {
                continue;
            }
            let entry = match std::str::from_utf8(line) {
                _ if overlong => Err(Failure {
                    code: "InvalidLine".to_owned(),
                    message: format!(
                        "the line is longer than {max_line_bytes} bytes (4 x --max-request-size), which no event that fits a request needs; it was skipped to its end"
                    ),
                    attempts: 0,
                    unconfirmed: false,
                }),
                Ok(text) => parse_line(text),
                Err(error) => Err(Failure {
                    code: "InvalidLine".to_owned(),
                    message: format!(
                        "the line is not UTF-8: invalid byte at offset {}",
                        error.valid_up_to()
                    ),
                    attempts: 0,
                    unconfirmed: false,
                }),
            };
            chunk.push((line_no, entry));
        }

        let (line_nos, entries): (Vec<usize>, Vec<Result<Entry, Failure>>) =
            chunk.into_iter().unzip();
        if let (Some(interrupt), Some(&first)) = (&interrupt, line_nos.first()) {
            *lock(interrupt) = Phase::Sending {
                first,
                last: line_no,
                stop: false,
            };
        }
        let results: Vec<Result<Done, Failure>> = match &publisher {
            Some(publisher) => {
                let (ok_entries, mut failures) = split(entries);
                let report = publisher
                    .publish_entries(ok_entries.into_iter().map(Ok))
                    .await;
                totals.n_requests += report.n_requests();
                let mut published = report.into_outcomes().into_iter();
                failures
                    .iter_mut()
                    .map(|slot| match slot.take() {
                        Some(failure) => Err(failure),
                        None => match published.next().expect("one outcome per entry") {
                            Ok(event_id) => Ok(Done::Published(event_id.to_string())),
                            Err(error) => Err(Failure::from(&error)),
                        },
                    })
                    .collect()
            }
            None => dry_run(entries, args.max_request_size, &mut totals),
        };
        // A closed stdout (`| head`) would lose the results of what follows: stop, and
        // say so, rather than end quietly as other commands do.
        let closed = |error: io::Error| {
            anyhow!(
                "cannot write the results to stdout ({error}): stopped after line {line_no} of {}; later lines were not read{}",
                args.file.display(),
                if args.dry_run { "" } else { " or published" }
            )
        };
        if let Some(interrupt) = &interrupt {
            let mut phase = lock(interrupt);
            if let Phase::Sending { stop, .. } = *phase {
                *phase = Phase::Writing { stop };
            }
        }
        for (line_no, result) in line_nos.into_iter().zip(results) {
            totals.record(&result);
            write_result(&mut stdout, args.json, line_no, &result).map_err(closed)?;
        }
        stdout.flush().map_err(closed)?;
        if let Some(interrupt) = &interrupt {
            let mut phase = lock(interrupt);
            let stop = matches!(*phase, Phase::Writing { stop: true });
            *phase = Phase::Reading { done: line_no };
            if stop {
                progress.finish();
                if eof {
                    stderr!(
                        "eventfork: interrupted at the end of {}: every line has its result printed",
                        args.file.display()
                    );
                } else {
                    stderr!(
                        "eventfork: interrupted: stopped after line {line_no} of {}, whose result is printed; later lines, if any, were not published",
                        args.file.display()
                    );
                }
                return Ok(Outcome::Interrupted);
            }
        }
        progress.show(&totals);
    }
    progress.finish();

    if args.json {
        let summary = json!({
            "type": "summary",
            "format": 1,
            "dry_run": args.dry_run,
            "events": totals.n_ok + totals.n_failed,
            "published": if args.dry_run { 0 } else { totals.n_ok },
            "failed": totals.n_failed,
            "unconfirmed": totals.n_unconfirmed,
            "requests": totals.n_requests,
        });
        writeln!(stdout, "{summary}")?;
    }
    stdout.flush()?;
    let n_events = totals.n_ok + totals.n_failed;
    if args.dry_run {
        stderr!(
            "eventfork: dry run: {} of {} valid, {} to {}",
            totals.n_ok,
            crate::count(n_events, "event", "events"),
            crate::count(totals.n_requests, "PutEvents request", "PutEvents requests"),
            args.bus
        );
    } else {
        stderr!(
            "eventfork: published {} of {} to {} in {}",
            totals.n_ok,
            crate::count(n_events, "event", "events"),
            args.bus,
            crate::count(totals.n_requests, "PutEvents request", "PutEvents requests")
        );
    }
    if totals.n_failed > 0 {
        let unconfirmed = match totals.n_unconfirmed {
            0 => String::new(),
            n => format!(
                " ({n} of them may have been: an answer never came, or could not be read; look for them before sending them again)"
            ),
        };
        return Err(anyhow!(
            "{} of {} {} not {}{unconfirmed}",
            totals.n_failed,
            crate::count(n_events, "event", "events"),
            if totals.n_failed == 1 { "was" } else { "were" },
            if args.dry_run { "valid" } else { "published" }
        ));
    }
    Ok(Outcome::Success)
}

/// How long the first line of a chunk read from standard input waits for more lines
/// before the chunk is sent.
const SEND_WITHIN: Duration = Duration::from_millis(100);

/// Reads `reader`'s lines on a thread of their own (a read from a pipe blocks), each with
/// the number of bytes it took, at most `max_line_bytes` of it kept (room for the line end
/// too: a line of exactly the limit is not cut); the channel ends after the last line, or
/// after a read error.
fn read_lines(
    mut reader: Box<dyn io::BufRead + Send>,
    max_line_bytes: usize,
) -> tokio::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>> {
    let (lines, received) = tokio::sync::mpsc::channel(CHUNK_LINES);
    std::thread::spawn(move || {
        loop {
            let mut bytes = Vec::new();
            let read = crate::input::read_line_within(&mut reader, &mut bytes, max_line_bytes + 2);
            let last = !matches!(read, Ok(n) if n > 0);
            let line = read.map(|n_bytes| (bytes, n_bytes));
            if matches!(line, Ok((_, 0))) || lines.blocking_send(line).is_err() || last {
                break;
            }
        }
    });
    received
}

/// Where publishing is, for Ctrl-C.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading lines: every line up to `done` has its result printed, none after was sent.
    Reading { done: usize },
    /// The events of lines `first` to `last` are being sent; `stop` once Ctrl-C came.
    Sending {
        first: usize,
        last: usize,
        stop: bool,
    },
    /// Their results are being printed, which Ctrl-C does not cut short; `stop` once it
    /// came.
    Writing { stop: bool },
}

fn lock(interrupt: &Mutex<Phase>) -> std::sync::MutexGuard<'_, Phase> {
    // The phase is a plain value, whole after any panic.
    interrupt
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Handles Ctrl-C as `--help` says. Holding the lock while exiting keeps the main thread
/// from sending anything more.
async fn on_ctrl_c(interrupt: Arc<Mutex<Phase>>, file: String, terminal: bool) {
    // Erase the progress bar's line first.
    let erase = if terminal { "\r\x1b[K" } else { "" };
    while tokio::signal::ctrl_c().await.is_ok() {
        let mut phase = lock(&interrupt);
        match *phase {
            Phase::Reading { done: 0 } => {
                stderr!("{erase}eventfork: interrupted before any line of {file} was published");
                std::process::exit(130);
            }
            Phase::Reading { done } => {
                stderr!(
                    "{erase}eventfork: interrupted: stopped after line {done} of {file}; later lines were not published"
                );
                std::process::exit(130);
            }
            Phase::Sending {
                first,
                last,
                stop: false,
            } => {
                stderr!(
                    "{erase}eventfork: interrupted: waiting for the events of lines {first} to {last}, which are being sent, to print their results (Ctrl-C again to stop at once)"
                );
                *phase = Phase::Sending {
                    first,
                    last,
                    stop: true,
                };
            }
            Phase::Sending {
                first,
                last,
                stop: true,
            } => {
                stderr!(
                    "{erase}eventfork: stopped at once: the events of lines {first} to {last} of {file} may or may not have been published"
                );
                std::process::exit(130);
            }
            // Printing takes moments: it finishes, then publish stops.
            Phase::Writing { .. } => *phase = Phase::Writing { stop: true },
        }
    }
}

/// Splits entries into the valid ones, in order, and one slot per input holding the
/// failure of the invalid ones.
fn split(entries: Vec<Result<Entry, Failure>>) -> (Vec<Entry>, Vec<Option<Failure>>) {
    let mut ok_entries = Vec::with_capacity(entries.len());
    let mut slots = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Ok(entry) => {
                ok_entries.push(entry);
                slots.push(None);
            }
            Err(failure) => slots.push(Some(failure)),
        }
    }
    (ok_entries, slots)
}

/// The dry run of one chunk: the valid entries are planned into requests, as publishing
/// would, and the oversize ones fail.
fn dry_run(
    entries: Vec<Result<Entry, Failure>>,
    max_request_size: usize,
    totals: &mut Totals,
) -> Vec<Result<Done, Failure>> {
    let (ok_entries, slots) = split(entries);
    let plan = BatchPlan::new(&ok_entries, max_request_size);
    totals.n_requests += plan.batches().len();
    let mut oversize = plan.oversize().iter().peekable();
    let mut ok_entries = ok_entries.iter().enumerate();
    slots
        .into_iter()
        .map(|slot| {
            if let Some(failure) = slot {
                return Err(failure);
            }
            let (entry_idx, entry) = ok_entries.next().expect("one entry per empty slot");
            match oversize.next_if(|o| o.entry_idx == entry_idx) {
                Some(o) => Err(Failure::from(&PublishError::EntryTooLarge {
                    size: o.size,
                    limit: max_request_size,
                })),
                None => Ok(Done::Valid {
                    detail_type: entry.detail_type().to_owned(),
                    size: entry.size(),
                }),
            }
        })
        .collect()
}

/// Checks one line and makes its entry.
fn parse_line(text: &str) -> Result<Entry, Failure> {
    let invalid = |e: serde_json::Error| Failure {
        code: "InvalidLine".to_owned(),
        message: format!(
            "expected {{\"detail-type\": .., \"detail\": {{..}}}} as JSON: {}",
            crate::input::line_json_error(text, &e)
        ),
        attempts: 0,
        unconfirmed: false,
    };
    // Read strictly first: a key given twice is refused, not resolved by keeping the last.
    let value = events_schema::strict::from_str(text).map_err(invalid)?;
    if !value.is_object() {
        // serde would take an array as the struct's fields in order.
        return Err(invalid(serde::de::Error::custom(
            "the line is not a JSON object",
        )));
    }
    let line: Line = serde_json::from_value(value)
        // The same error again, read from the text so that it says where.
        .or_else(|_| serde_json::from_str(text))
        .map_err(invalid)?;
    let mut entry =
        Entry::from_json(&line.detail_type, &line.detail).map_err(|error| Failure::from(&error))?;
    if let Some(source) = line.source
        && source != entry.source()
    {
        return Err(Failure {
            code: "InvalidSource".to_owned(),
            message: format!(
                "{} events come from {:?}, found {source:?}",
                entry.detail_type(),
                entry.source()
            ),
            attempts: 0,
            unconfirmed: false,
        });
    }
    if let Some(time) = line.time {
        let time = events_schema::Timestamp::parse(time).map_err(|e| Failure {
            code: "InvalidTime".to_owned(),
            message: e.to_string(),
            attempts: 0,
            unconfirmed: false,
        })?;
        entry = entry.with_time(time);
    }
    if !line.resources.is_empty() {
        entry = entry.with_resources(line.resources);
    }
    Ok(entry)
}

/// What became of a line that did not fail.
enum Done {
    /// Published, with its event id.
    Published(String),
    /// Valid (a dry run): its detail type and its size as PutEvents counts it.
    Valid { detail_type: String, size: usize },
}

fn write_result(
    out: &mut impl Write,
    json: bool,
    line_no: usize,
    result: &Result<Done, Failure>,
) -> io::Result<()> {
    match (json, result) {
        (false, Ok(Done::Valid { detail_type, size })) => writeln!(
            out,
            "valid {line_no}: {} ({size} bytes)",
            crate::input::one_line(detail_type)
        ),
        (false, Ok(Done::Published(event_id))) => {
            writeln!(out, "published {line_no}: {event_id}")
        }
        (false, Err(f)) => writeln!(
            out,
            "failed {line_no}: {}: {}",
            crate::input::one_line(&f.code),
            crate::input::one_line(&f.message)
        ),
        (true, Ok(Done::Valid { detail_type, size })) => {
            // `detail` is the text line's wording, kept for readers of the first format.
            let record = json!({
                "type": "valid",
                "line": line_no,
                "detail_type": detail_type,
                "size": size,
                "detail": format!("{detail_type} ({size} bytes)"),
            });
            writeln!(out, "{record}")
        }
        (true, Ok(Done::Published(event_id))) => {
            let record = json!({ "type": "published", "line": line_no, "event_id": event_id });
            writeln!(out, "{record}")
        }
        (true, Err(f)) => {
            let record = json!({
                "type": "failed",
                "line": line_no,
                "code": f.code,
                "message": f.message,
                "attempts": f.attempts,
                "unconfirmed": f.unconfirmed,
            });
            writeln!(out, "{record}")
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    n_ok: usize,
    n_failed: usize,
    /// Of the failed, those that may have been published all the same.
    n_unconfirmed: usize,
    n_requests: usize,
}

impl Totals {
    fn record(&mut self, result: &Result<Done, Failure>) {
        match result {
            Ok(_) => self.n_ok += 1,
            Err(failure) => {
                self.n_failed += 1;
                self.n_unconfirmed += usize::from(failure.unconfirmed);
            }
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal: a bar over
/// the bytes read when the input is a file, counts only for stdin.
struct Progress {
    enabled: bool,
    total_bytes: Option<u64>,
    bytes_read: u64,
}

impl Progress {
    const WIDTH: usize = 30;

    fn new(enabled: bool, total_bytes: Option<u64>) -> Progress {
        Progress {
            enabled,
            total_bytes,
            bytes_read: 0,
        }
    }

    fn show(&self, totals: &Totals) {
        if !self.enabled {
            return;
        }
        let counts = format!("{} ok, {} failed", totals.n_ok, totals.n_failed);
        let line = match self.total_bytes {
            Some(total) if total > 0 => {
                let ratio = (self.bytes_read as f64 / total as f64).min(1.0);
                let filled = (ratio * Self::WIDTH as f64).round() as usize;
                format!(
                    "[{}{}] {:>3}% {counts}",
                    "#".repeat(filled),
                    " ".repeat(Self::WIDTH - filled),
                    (ratio * 100.0).round() as u32
                )
            }
            _ => counts,
        };
        // Carriage return and erase-line: the bar redraws itself in place.
        stderr_part!("\r\x1b[K{line}");
    }

    fn finish(&self) {
        if self.enabled {
            stderr_part!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expect: &str) {
        let found = match parse_line(line) {
            Ok(entry) => format!("ok {} {}", entry.detail_type(), entry.size()),
            Err(f) => format!("{}: {}", f.code, f.message),
        };
        assert_eq!(found, expect);
    }

    const SIGNUP: &str = r#"{"user_id":"u1","email":"a@example.com","plan":"free","signup_method":"google","marketing_consent":false,"signed_up_at":"2026-11-27T09:00:00Z"}"#;

    #[test]
    fn lines_are_checked_against_the_catalogue() {
        // 19 bytes of source, 12 of detail-type, 143 of detail; then 14 for the time and
        // 5 for the resource.
        check(
            &format!(r#"{{"detail-type":"UserSignedUp","detail":{SIGNUP}}}"#),
            "ok UserSignedUp 174",
        );
        check(
            &format!(
                r#"{{"detail-type":"UserSignedUp","detail":{SIGNUP},"time":"2026-11-27T09:00:00Z","resources":["arn:x"]}}"#
            ),
            "ok UserSignedUp 193",
        );
        check(
            r#"{"detail-type":"UserDeleted","detail":{}}"#,
            "UnknownDetailType: unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)",
        );
        check(
            r#"{"detail-type":"UserLoggedIn","detail":{"user_id":"u1"}}"#,
            "InvalidDetail: invalid UserLoggedIn detail: $.detail.login_id: missing required field",
        );
        check(
            &format!(r#"{{"detail-type":"UserSignedUp","detail":{SIGNUP},"source":"acme"}}"#),
            "InvalidSource: UserSignedUp events come from \"com.eventfork.users\", found \"acme\"",
        );
        check(
            &format!(r#"{{"detail-type":"UserSignedUp","detail":{SIGNUP},"time":"yesterday"}}"#),
            "InvalidTime: invalid RFC 3339 timestamp \"yesterday\": expected YYYY-MM-DDTHH:MM:SS then Z or an offset",
        );
        check(
            "not json",
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: expected ident at column 2",
        );
        // A key given twice is refused, not resolved by keeping the last value.
        check(
            r#"{"detail-type":"UserLoggedIn","detail":{"user_id":"u1","user_id":"u2"}}"#,
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: $.detail: duplicate key \"user_id\" (JSON readers disagree on which value counts) at column 64",
        );
        check(
            r#"{"detail-type":"UserLoggedIn","detail-type":"UserSignedUp","detail":{}}"#,
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: $: duplicate key \"detail-type\" (JSON readers disagree on which value counts) at column 43",
        );
        check(
            r#"["UserLoggedIn",{"user_id":"u1"}]"#,
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: the line is not a JSON object",
        );
        // A line of the wrong shape still says where.
        check(
            r#"{"detail-type":7,"detail":{}}"#,
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: invalid type: integer `7`, expected a string at column 16",
        );
        // A byte order mark inside the file (two files joined with cat) is named.
        check(
            "\u{feff}{\"detail-type\":\"UserLoggedIn\",\"detail\":{}}",
            "InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: the line starts with a byte order mark (U+FEFF; files joined with cat keep the second file's): remove it",
        );
    }
}
