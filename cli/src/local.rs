//! `eventfork local up|status|dlq|replay`: the local bus of `router::local` on this machine.

use std::{
    io::{self, IsTerminal, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use router::{
    local::{BusConfig, Consumers, LocalBus, LocalEvent, RecordingSink},
    template::Template,
};
use tokio::sync::broadcast::error::RecvError;

use crate::{Outcome, handlers, sink::Sink};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the bus: the rules, queues and handlers of template.yaml, with PutEvents on --addr.
    ///
    /// Point any AWS SDK at it with AWS_ENDPOINT_URL=http://<addr>: it accepts any
    /// credentials and region (eventfork's own commands need none for an endpoint on this
    /// machine; other SDKs want some set, e.g. AWS_REGION=us-east-1 and dummy keys).
    ///
    /// Prints the address, the rules it loaded, and a line per delivery, retry and
    /// dead-letter move on stdout (and the events no rule takes). The handlers' logs go to
    /// stderr, as their Lambdas' go to CloudWatch: why a record failed is there
    /// (EVENTFORK_LOG filters them in RUST_LOG syntax, default warn). Targets without a
    /// configured endpoint post to the recording sink, which appends each API call to
    /// <data>/sink/<service>.jsonl. Ctrl-C or SIGTERM stops it after the batches in flight
    /// are settled; accepted events are on disk in --data and are delivered after a restart.
    /// Retention applies as on AWS, checked once a minute: a message leaves its queue after
    /// the queue's MessageRetentionPeriod, an archived event after the archive's
    /// RetentionDays.
    ///
    /// Example: eventfork local up --template template.yaml --addr 127.0.0.1:4010
    Up {
        #[command(flatten)]
        bus: BusArgs,
        /// The address to listen on: HOST:PORT, e.g. 127.0.0.1:4010 or localhost:4010.
        #[arg(
            long,
            env = "EVENTFORK_LOCAL_ADDR",
            default_value = "127.0.0.1:4010",
            value_parser = socket_addr
        )]
        addr: SocketAddr,
        /// Run no handler: each target records the SQS messages it receives, one JSON
        /// object per line, in <data>/records/<target>.jsonl (for testing routing and
        /// delivery; apart from <data>/sink, where the handlers' API calls go).
        #[arg(long)]
        record_only: bool,
        /// The PutEvents request size limit in bytes, as EventBridge counts it: 262144
        /// (256 KiB) as documented, or up to 1048576 (1 MiB), as `publish
        /// --max-request-size` allows.
        #[arg(
            long,
            value_name = "BYTES",
            default_value_t = router::local::DEFAULT_ENTRY_SIZE_LIMIT,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_048_576)
        )]
        max_request_size: usize,
    },
    /// Print the queue depths, messages in flight and dead-letter counts per target.
    ///
    /// Works while `local up` runs on the same --data (the store is shared).
    Status {
        #[command(flatten)]
        bus: BusArgs,
    },
    /// List or redrive a target's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Replay the local archive: re-send the events whose time lies in [--from, --to) onto
    /// their bus, as an EventBridge archive replay does (it selects by the time in the
    /// event, not by when the event arrived).
    ///
    /// Each event keeps its id and content and gets `replay-name` set; the template's
    /// current rules route it (rules whose pattern says `"replay-name": [{"exists": false}]`
    /// skip it), and the handlers' idempotency records keep what was delivered from being
    /// posted twice (but for a post whose process was killed before it recorded it: every
    /// delivery is at least once). Works while `local up` runs on the same --data, which
    /// delivers the replayed messages at once; otherwise they wait in their queues for the
    /// next `up`.
    /// Prints `replay <name>: <n> archived events re-sent as <m> messages`.
    ///
    /// Replay names are unique, as EventBridge keeps them, and the window must have ended.
    /// A replay cut short (a crash, a full disk) is finished by running it again with the
    /// same --name and window: it goes on after the last page it sent.
    ///
    /// Exit status: 0 when the events were re-sent (none in the window included), 2 on a
    /// bad time or window, a --name already taken, an unknown bus or no store in --data.
    ///
    /// Example: eventfork local replay --from 2026-11-27T09:00:00Z --to 2026-11-27T10:00:00Z
    Replay {
        #[command(flatten)]
        bus: BusArgs,
        /// Replay events whose time is this or later (RFC 3339).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Replay events whose time is before this (RFC 3339).
        #[arg(long, value_name = "TIME")]
        to: String,
        /// Replay only the events of this bus [default: every bus].
        #[arg(long, value_name = "NAME")]
        event_bus: Option<String>,
        /// The replay's name, set as `replay-name`: 1 to 64 of A-Z a-z 0-9 . _ -, as
        /// EventBridge allows [default: eventfork-local-<time>].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Run the whole fan-out on this machine: publish, deliver, retry, dead-letter, replay.
    ///
    /// Starts the local bus of template.yaml on a free port with the three real handlers
    /// posting to the recording sink (never to real services), publishes three sign-ups and
    /// two logins through the Publisher, injects one transient failure (a Slack batch) and
    /// one poison record (an address Mailchimp refuses: it lands in the dead-letter queue),
    /// redrives it, replays the archive, prints what each target received, and exits 0.
    ///
    /// Example: eventfork local demo
    Demo(crate::demo::Args),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Print the messages that came from TARGET's queue into its dead-letter queue, one
    /// JSON object per line (a dead-letter queue shared with other queues holds theirs too;
    /// they are listed under their own targets): `message_id`, `event_id`, `detail_type`,
    /// `receive_count`, `source_queue`, `failure` (why the handler moved it there; null
    /// after `maxReceiveCount` receives) and `body`.
    List {
        /// The target: its binary (analytics, mailing-list, slack), function or queue name.
        target: String,
        #[command(flatten)]
        bus: BusArgs,
        /// Print at most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Move every message that came from TARGET's queue into its dead-letter queue back to
    /// that queue.
    Redrive {
        /// The target: its binary (analytics, mailing-list, slack), function or queue name.
        target: String,
        #[command(flatten)]
        bus: BusArgs,
    },
}

/// `HOST:PORT`, a host name included: its first IPv4 address, else its first.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("expected HOST:PORT, e.g. 127.0.0.1:4010 ({error})"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

#[derive(Debug, Args)]
pub(crate) struct BusArgs {
    /// The SAM template whose rules, queues and functions the bus runs.
    #[arg(long, env = "EVENTFORK_TEMPLATE", default_value = "template.yaml")]
    template: PathBuf,
    /// The folder of the durable store (`local up` creates it if missing; the other
    /// commands need the store that `local up` made).
    #[arg(long, env = "EVENTFORK_DATA_DIR", default_value = ".eventfork")]
    data: PathBuf,
    /// The name of the custom event bus (rules with EventBusName live on it).
    #[arg(
        long,
        env = "EVENTFORK_BUS",
        default_value = "eventfork",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    bus_name: String,
}

impl BusArgs {
    /// The bus of a store that `local up` (or a kept `local demo`) made: reading commands
    /// refuse a data folder without one, instead of showing a new, empty store.
    fn open_existing(&self) -> Result<LocalBus> {
        check_data_folder(&self.data)?;
        let file = LocalBus::database_file(&self.data);
        if !file.exists() {
            bail!(
                "no local bus store in {} ({} is missing): give the --data folder of \
                 `eventfork local up`, or start one there",
                self.data.display(),
                file.display()
            );
        }
        // An empty file is no store: opening it would make it one, with no queues or
        // archive, and answer as if it were the bus's.
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            bail!(
                "{} is empty, not a store that `eventfork local up` made: give the --data folder of a bus that ran",
                file.display()
            );
        }
        self.open()
    }

    fn open(&self) -> Result<LocalBus> {
        let config = BusConfig::default().bus_name(&self.bus_name);
        self.open_template(&self.template()?, config)
    }

    /// The template, read and parsed.
    fn template(&self) -> Result<Template> {
        let text = crate::input::read_file_text(&self.template).map_err(|error| {
            let hint = if error.kind() == io::ErrorKind::NotFound {
                " (give --template FILE or set EVENTFORK_TEMPLATE, or run from the folder that holds it)"
            } else {
                ""
            };
            anyhow::Error::new(error).context(format!(
                "cannot read the template {}{hint}",
                self.template.display()
            ))
        })?;
        Template::parse(&text)
            .with_context(|| format!("invalid template {}", self.template.display()))
    }

    /// Opens the bus of `template` (this one's, already read) with `config`.
    fn open_template(&self, template: &Template, config: BusConfig) -> Result<LocalBus> {
        LocalBus::open(template, &self.data, config).with_context(|| self.open_error())
    }

    /// The context of an error that keeps the bus from opening.
    fn open_error(&self) -> String {
        format!(
            "cannot open the local bus of {} in {}",
            self.template.display(),
            self.data.display()
        )
    }
}

pub(crate) fn run(command: Command) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match command {
            Command::Up {
                bus,
                addr,
                record_only,
                max_request_size,
            } => up(&bus, addr, record_only, max_request_size).await,
            Command::Status { bus } => status(&bus).await,
            Command::Dlq(DlqCommand::List { target, bus, limit }) => {
                dlq_list(&bus, &target, limit).await
            }
            Command::Dlq(DlqCommand::Redrive { target, bus }) => dlq_redrive(&bus, &target).await,
            Command::Replay {
                bus,
                from,
                to,
                event_bus,
                name,
            } => replay(&bus, &from, &to, event_bus.as_deref(), name).await,
            Command::Demo(args) => crate::demo::demo(args).await,
        }
    })
}

/// A recording consumer per target, appending each SQS message it receives to
/// `<data>/records/<target>.jsonl` before acknowledging it.
fn recorders(bus: &LocalBus, data: &Path) -> Result<Consumers> {
    let mut consumers = Consumers::default();
    for target in bus.topology().targets() {
        let path = data
            .join("records")
            .join(format!("{}.jsonl", target.name()));
        let recorder = RecordingSink::with_log(&path)
            .with_context(|| format!("cannot open the recording log {}", path.display()))?;
        consumers = consumers.with(target.name(), recorder);
    }
    Ok(consumers)
}

/// The consumer of each target: the `targets` handler its Lambda runs. A target whose
/// endpoint variable is unset posts to the recording sink, which appends each API call to
/// `<data>/sink/<service>.jsonl`.
async fn consumers(bus: &LocalBus, data: &Path, sink: &Sink) -> Result<Consumers> {
    let env = targets::Env::from_process();
    let (consumers, endpoints) = handlers::consumers(Some(&env), sink.url(), bus).await?;
    // As the banner after it: a reader that goes away does not stop the bus.
    let mut out = crate::output::Closable::new(crate::output::stdout());
    writeln!(out, "analytics posts to {}", endpoints.analytics)?;
    writeln!(out, "mailing-list posts to {}", endpoints.mailing_list)?;
    writeln!(out, "slack posts to {}", endpoints.slack)?;
    writeln!(out, "sink records: {}", data.join("sink").display())?;
    Ok(consumers)
}

/// Refuses a `--data` that names something other than a folder, such as a file: creating
/// the store folder would fail with "File exists", and looking for the store in it would
/// say that the store is missing, neither of which says what is wrong.
fn check_data_folder(data: &Path) -> Result<()> {
    if data.exists() && !data.is_dir() {
        bail!(
            "--data {} names a file, not a folder: give the folder of the local bus store",
            data.display()
        );
    }
    Ok(())
}

/// Takes the lock that one `local up` holds on its store while it runs (released by the
/// system when the process ends, even by kill -9). Two would share the queues: one with
/// `--record-only` would acknowledge the other's messages, and its handlers would never
/// see them. The reading commands, a redrive and a replay take no lock.
pub(crate) fn lock_data(data: &Path) -> Result<std::fs::File> {
    check_data_folder(data)?;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the store folder {}", data.display()))?;
    let path = data.join("local-up.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's process id, for the error of the next one.
            file.set_len(0)
                .and_then(|()| writeln!(file, "{}", std::process::id()))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            bail!(
                "another `local up` or `local demo`{holder} runs on {}: two would share its queues; stop it, or give this one another --data",
                data.display()
            )
        }
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn up(
    args: &BusArgs,
    addr: SocketAddr,
    record_only: bool,
    max_request_size: usize,
) -> Result<Outcome> {
    log_to_stderr();
    // Listening first: a port in use leaves no store behind.
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        let hint = if error.kind() == io::ErrorKind::AddrInUse {
            " (another `local up`, or another server, listens there: give --addr HOST:PORT, or port 0 for a free one)"
        } else {
            ""
        };
        anyhow::Error::new(error).context(format!("cannot listen on {addr}{hint}"))
    })?;
    // The body carries each Detail as an escaped JSON string: room for escapes to
    // quadruple it, and for the envelope of ten entries.
    let config = BusConfig::default()
        .bus_name(&args.bus_name)
        .entry_size_limit(max_request_size)
        .max_body_bytes((4 * max_request_size).max(1 << 20) + (64 << 10));
    // The template is read and checked before the store folder is created and locked, so
    // that a missing or invalid template leaves no folder and no lock file behind.
    let template = args.template()?;
    let topology = LocalBus::check(&template, &config).with_context(|| args.open_error())?;
    if !record_only {
        handlers::check(&topology)?;
    }
    let _lock = lock_data(&args.data)?;
    let bus = args.open_template(&template, config)?;
    let stranded = bus
        .stranded_queues()
        .await
        .context("cannot read the store's queues")?;
    for (queue, n_messages) in stranded {
        stderr!(
            "eventfork: warning: {} holds {} in queue {queue}, which {} does not define: nothing will read them (a queue renamed or removed since an earlier run?)",
            args.data.display(),
            crate::count(n_messages as usize, "message", "messages"),
            args.template.display()
        );
    }
    if bus.topology().rules().is_empty() {
        stderr!(
            "eventfork: {} has no AWS::Events::Rule with an EventPattern: events are archived \
             and reach no target",
            args.template.display()
        );
    }
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let mut events = bus.subscribe();
    let sink = Sink::start(Some(args.data.join("sink")), false).await?;
    let consumers = if record_only {
        recorders(&bus, &args.data)?
    } else {
        consumers(&bus, &args.data, &sink).await?
    };
    let runner = bus.start(consumers).context("cannot start the consumers")?;
    {
        // A reader that goes away (`local up | head -1`) does not stop the bus, during
        // this banner or after it.
        let mut out = crate::output::Closable::new(crate::output::stdout());
        writeln!(out, "listening on http://{local_addr}")?;
        writeln!(out, "store: {}", bus.database_path().display())?;
        for rule in bus.topology().rules() {
            writeln!(
                out,
                "rule {} on {}{} → {}",
                rule.name(),
                rule.bus(),
                if rule.is_enabled() { "" } else { " (disabled)" },
                if rule.queues().is_empty() {
                    "no queue of this template".to_owned()
                } else {
                    rule.queues().join(", ")
                }
            )?;
        }
        for target in bus.topology().targets() {
            writeln!(
                out,
                "target {} reads {} (batch {}, window {} s, concurrency {}, dlq {})",
                target.name(),
                target.queue(),
                target.batch_size(),
                target.batching_window_seconds(),
                target.maximum_concurrency(),
                target.dead_letter_queue().unwrap_or("none")
            )?;
        }
        out.flush()?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bus.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    let printer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                // Deliveries show where an event went; one that no rule took shows here.
                Ok(LocalEvent::Accepted { rules, .. }) if !rules.is_empty() => {}
                Ok(event) => {
                    let mut out = crate::output::stdout();
                    if writeln!(out, "{event}").and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => stderr!(
                    "eventfork: {} not shown",
                    crate::count(n as usize, "bus event", "bus events")
                ),
                Err(RecvError::Closed) => break,
            }
        }
    });
    stop_signal().await?;
    stderr!("eventfork: stopping (settling the batches in flight; Ctrl-C again to stop at once)");
    let _ = stop.send(());
    let mut server = server;
    let settle = async {
        runner.shutdown().await;
        // A client that never finishes its request would hold the server open for good.
        match tokio::time::timeout(SERVER_GRACE, &mut server).await {
            Ok(served) => served
                .context("the HTTP server task failed")?
                .context("the HTTP server failed"),
            Err(_) => {
                stderr!(
                    "eventfork: closed the connections still open after {} s (requests never finished, so never accepted)",
                    SERVER_GRACE.as_secs()
                );
                Ok(())
            }
        }
    };
    tokio::select! {
        settled = settle => settled?,
        signal = stop_signal() => {
            signal?;
            // As after a crash: nothing accepted is lost, and messages in flight are
            // received again once their visibility timeout ends.
            stderr!(
                "eventfork: stopped at once; batches in flight will be received again after their visibility timeout"
            );
        }
    }
    server.abort();
    printer.abort();
    Ok(Outcome::Success)
}

/// How long `local up`, once stopping, waits for open connections to finish their request.
const SERVER_GRACE: Duration = Duration::from_secs(5);

/// Waits for Ctrl-C, or SIGTERM (what `kill` and process managers send).
async fn stop_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot wait for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")
    }
}

/// The handlers' logs on stderr, as their Lambdas write them to CloudWatch: why a record
/// failed (the SQS response carries only its id). `EVENTFORK_LOG` filters them, in
/// `RUST_LOG` syntax (default `warn`).
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EVENTFORK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        // Its default reports a failed write with eprintln!, which panics on a closed
        // stderr (`local up 2>&1 | head`) inside whatever task logged.
        .log_internal_errors(false)
        .try_init();
}

async fn status(args: &BusArgs) -> Result<Outcome> {
    let bus = args.open_existing()?;
    let status = bus.status().await.context("cannot read the queue depths")?;
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "{:<16} {:<28} {:>8} {:>9} {:>6}",
        "TARGET", "QUEUE", "VISIBLE", "IN-FLIGHT", "DLQ"
    )?;
    for target in status {
        writeln!(
            out,
            "{:<16} {:<28} {:>8} {:>9} {:>6}",
            target.target, target.queue, target.visible, target.in_flight, target.dead_letters
        )?;
    }
    Ok(Outcome::Success)
}

async fn dlq_list(args: &BusArgs, target: &str, limit: usize) -> Result<Outcome> {
    let bus = args.open_existing()?;
    let messages = bus
        .dead_letters(target, limit)
        .await
        .with_context(|| format!("cannot list the dead-letter queue of {target}"))?;
    let mut out = crate::output::stdout();
    for message in messages {
        let body: serde_json::Value =
            serde_json::from_str(&message.body).unwrap_or(serde_json::Value::String(message.body));
        let line = serde_json::json!({
            "type": "dead-letter",
            "message_id": message.message_id,
            "event_id": message.event_id,
            "detail_type": message.detail_type,
            "receive_count": message.receive_count,
            "source_queue": message.source_queue,
            "failure": message.failure,
            "body": body,
        });
        writeln!(out, "{line}")?;
    }
    Ok(Outcome::Success)
}

async fn dlq_redrive(args: &BusArgs, target: &str) -> Result<Outcome> {
    let bus = args.open_existing()?;
    let n = bus
        .redrive(target)
        .await
        .with_context(|| format!("cannot redrive the dead-letter queue of {target}"))?;
    stderr!(
        "eventfork: moved {} back to the queue of {target}",
        crate::count(n, "message", "messages")
    );
    Ok(Outcome::Success)
}

async fn replay(
    args: &BusArgs,
    from: &str,
    to: &str,
    event_bus: Option<&str>,
    name: Option<String>,
) -> Result<Outcome> {
    let ms = |text: &str, flag: &str| -> Result<i64> {
        let time = router::replay::parse_time(text).with_context(|| format!("--{flag}"))?;
        Ok(match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        })
    };
    let (from_ms, to_ms) = (ms(from, "from")?, ms(to, "to")?);
    if from_ms >= to_ms {
        bail!("--from {from} is not before --to {to}");
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    // EventBridge refuses a window that has not ended yet (a minute of clock skew allowed).
    if to_ms > now_ms.saturating_add(60_000) {
        bail!("--to {to} is in the future: a replay's window must have ended");
    }
    let name = match name {
        Some(name) if name.is_empty() => bail!("--name is empty"),
        Some(name)
            if name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            bail!(
                "--name {name:?}: a replay name has 1 to 64 of the characters A-Z a-z 0-9 . _ - (as EventBridge allows)"
            )
        }
        Some(name) => name,
        // Milliseconds: two replays in one second get two names.
        None => format!("eventfork-local-{now_ms}"),
    };
    let bus = args.open_existing()?;
    if let Some(event_bus) = event_bus
        && !bus.topology().has_bus(event_bus)
    {
        bail!(
            "--event-bus {event_bus}: the local bus has the buses {} and default",
            bus.topology().bus_name()
        );
    }
    let summary = bus
        .replay(&name, event_bus, from_ms, to_ms)
        .await
        .map_err(|error| match error {
            router::local::LocalError::ReplayNameTaken(_) => {
                anyhow::anyhow!("{error}; give another --name")
            }
            // A store that failed may have failed part way; the pages already sent are
            // recorded, and the same window under the same name goes on after them.
            store @ router::local::LocalError::Store(_) => anyhow::Error::new(store).context(
                format!(
                    "the replay {name} may be cut short: run it again with --name {name} and the same window to finish it"
                ),
            ),
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("cannot replay the archive in {}", args.data.display()))?;
    if summary.resumed {
        stderr!(
            "eventfork: the replay {name} was cut short before: this run sent the rest of its window (the counts below are this run's)"
        );
    }
    let n_other: usize = summary.other_buses.iter().map(|(_, n)| n).sum();
    writeln!(
        crate::output::stdout(),
        "replay {name}: {} re-sent as {}",
        crate::count(
            summary.n_events - n_other,
            "archived event",
            "archived events"
        ),
        crate::count(summary.n_messages, "message", "messages")
    )?;
    if summary.n_messages == 0 && summary.n_events > n_other {
        // A replay's name is used once: say why it did nothing while it can be run again.
        stderr!(
            "eventfork: warning: no rule of {} routes any of those events, so none was re-sent; is it the template `local up` runs with this store? (--template)",
            args.template.display()
        );
    }
    for (other, n_events) in &summary.other_buses {
        stderr!(
            "eventfork: warning: {} in the window {} on bus {other}, which this bus does not run (it runs {} and default): not replayed; give --bus-name {other} if the store was written under that name",
            crate::count(*n_events, "archived event", "archived events"),
            if *n_events == 1 { "is" } else { "are" },
            bus.topology().bus_name()
        );
    }
    Ok(Outcome::Success)
}
