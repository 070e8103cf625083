//! `eventfork replay`: replay archived events on AWS.

use std::{
    io::{self, Write},
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use router::replay::{ReplayRequest, Replayer, parse_time};

use crate::Outcome;

/// Replay archived events from an EventBridge archive back onto its bus
///
/// Events whose time lies in [--from, --to) are re-sent to the archive's own bus (EventBridge
/// replays to no other), to every rule or only to the --rule ones. Replayed events carry
/// `replay-name`; eventfork's targets process them like live events and their idempotency
/// records keep them from posting twice.
///
/// Prints the plan (archive, window, bus, rules) on stdout, starts the replay and waits for
/// it to end, showing on stderr how far it has come (EventBridge replays a minute of event
/// time after the other), then prints `replay <name>: <STATE>`. With --dry-run, resolves and checks the
/// plan (the archive and rules must exist) and starts nothing.
///
/// Uses the standard AWS configuration: credentials chain, AWS_REGION, AWS_ENDPOINT_URL.
///
/// A window that ends less than 10 minutes ago gets a warning: events take a few minutes
/// to reach the archive. Ctrl-C or --timeout stops the waiting, not the replay, which goes
/// on in EventBridge (the message says how to cancel it); so do three failed status checks
/// in a row (one is tried again).
///
/// Exit status: 0 when the replay completed (or, with --no-wait, started; with --dry-run,
/// is valid), 130 when Ctrl-C stopped the waiting, 2 otherwise.
///
/// Example, with the archive ARN from the stack's EventArchiveArn output:
///   eventfork replay --archive "$ARCHIVE_ARN" --from 2026-11-27T09:00:00Z \
///          --to 2026-11-27T10:00:00Z --rule eventfork-slack
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// The archive, by name or ARN.
    #[arg(long, value_name = "NAME|ARN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    archive: String,
    /// Replay events from this time on (RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// Replay events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: String,
    /// Replay only to this rule (name or ARN); repeat for several [default: every rule].
    #[arg(long = "rule", value_name = "NAME|ARN")]
    rules: Vec<String>,
    /// The replay's name [default: eventfork-<time>].
    #[arg(long)]
    name: Option<String>,
    /// Check the plan and start nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start the replay and return without waiting for it to end.
    #[arg(long, conflicts_with = "dry_run")]
    no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    timeout: u64,
}

pub(crate) fn run(args: Args) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(replay(args))
}

async fn replay(args: Args) -> Result<Outcome> {
    let mut request = ReplayRequest::new(
        &args.archive,
        parse_time(&args.from).context("--from")?,
        parse_time(&args.to).context("--to")?,
    );
    for rule in &args.rules {
        request = request.rule(rule);
    }
    if let Some(name) = &args.name {
        request = request.name(name);
    }
    let sdk_config = crate::aws::sdk_config().await?;
    let replayer = Replayer::new(&sdk_config);
    let plan = replayer
        .plan(&request)
        .await
        .map_err(|error| match error {
            router::replay::ReplayError::NameTaken { .. } => {
                anyhow::anyhow!("{error}; give another --name")
            }
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("cannot plan a replay of archive {}", args.archive))?;
    let mut stdout = io::stdout().lock();
    report(&mut stdout, &plan, "no replay was started")?;
    if plan.ends_too_recently() {
        stderr!(
            "eventfork: the window ends less than {} minutes ago: events take a few minutes to \
             reach the archive, and the replay may miss its latest ones",
            router::replay::ARCHIVE_DELAY.as_secs() / 60
        );
    }
    if args.dry_run {
        return Ok(Outcome::Success);
    }
    let started = replayer
        .start(&plan)
        .await
        .with_context(|| format!("cannot start replay {}", plan.name()))?;
    if args.no_wait {
        // The state StartReplay answered (STARTING, as a rule): one of EventBridge's own.
        report(
            &mut stdout,
            format_args!("replay {}: {}", plan.name(), started.state()),
            &format!("replay {} was started", plan.name()),
        )?;
        return Ok(Outcome::Success);
    }
    stderr!("eventfork: waiting for replay {} to end", plan.name());
    // Progress on stderr, when it changes: EventBridge replays a minute of event time after
    // the other, and says which it has reached.
    let mut shown = None;
    let wait = replayer.wait_with(
        plan.name(),
        Duration::from_secs(5),
        Duration::from_secs(args.timeout),
        |status| {
            let now = (status.state().to_owned(), status.last_replayed());
            if shown.as_ref() == Some(&now) {
                return;
            }
            match status.last_replayed() {
                Some(at) => stderr!(
                    "eventfork: replay {} {}: events up to {} replayed ({} % of the window)",
                    plan.name(),
                    status.state(),
                    router::replay::format_time(at),
                    plan.percent_done(at)
                ),
                None => stderr!("eventfork: replay {} {}", plan.name(), status.state()),
            }
            shown = Some(now);
        },
    );
    let region = sdk_config
        .region()
        .map(|region| format!(" --region {region}"))
        .unwrap_or_default();
    let status = tokio::select! {
        status = wait => match status {
            Ok(status) => status,
            // It says so itself.
            Err(error @ router::replay::ReplayError::StillRunning { .. }) => return Err(error.into()),
            Err(error) => return Err(anyhow::Error::new(error).context(format!(
                "stopped waiting; replay {name} goes on in EventBridge (stop it with \
                 `aws events cancel-replay --replay-name {name}{region}`)",
                name = plan.name()
            ))),
        },
        _ = tokio::signal::ctrl_c() => {
            stderr!(
                "eventfork: stopped waiting; replay {name} goes on in EventBridge (stop it with \
                 `aws events cancel-replay --replay-name {name}{region}`)",
                name = plan.name()
            );
            return Ok(Outcome::Interrupted);
        }
    };
    let ended = format!("replay {} ended {}", plan.name(), status.state());
    match status.reason() {
        Some(reason) => report(
            &mut stdout,
            format_args!("replay {}: {} ({reason})", plan.name(), status.state()),
            &ended,
        )?,
        None => report(
            &mut stdout,
            format_args!("replay {}: {}", plan.name(), status.state()),
            &ended,
        )?,
    }
    if status.is_completed() {
        Ok(Outcome::Success)
    } else {
        anyhow::bail!("replay {} ended {}", plan.name(), status.state())
    }
}

/// Prints one line of the report. A closed stdout (`| head -1`) fails the command (exit 2),
/// saying where the replay stands (`then`), even when it completed: a closed pipe must not
/// pass for success here, as it does for commands that only print.
fn report(stdout: &mut impl Write, line: impl std::fmt::Display, then: &str) -> Result<()> {
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| anyhow!("cannot write to stdout ({error}): {then}"))
}
