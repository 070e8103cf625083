//! `eventfork local demo`: the whole fan-out on this machine in one command.
//!
//! It starts the local bus of template.yaml on a free port with the three real handlers
//! posting to the recording sink, publishes sign-ups and logins through the real
//! `Publisher` (the AWS SDK over HTTP, as against AWS), injects one transient failure (a
//! Slack batch fails once and is retried) and one poison record (Mailchimp refuses an
//! address, so the record lands in the mailing list's dead-letter queue), redrives it once
//! the fault is fixed, replays the archive to show that idempotency keeps the handlers from
//! acting twice, and prints what each target received.

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aws_config::{BehaviorVersion, Region};
use events_schema::{LoginMethod, Plan, SignupMethod, UserLoggedIn, UserSignedUp};
use router::{
    Entry, Publisher,
    local::{BusConfig, LocalBus, LocalEvent, Topology},
    template::Template,
};
use tokio::sync::broadcast;

use crate::{Outcome, handlers, sink::Sink};

/// The template the demo runs when there is no template.yaml in the current folder: the
/// one this binary was built with.
const BUILT_IN_TEMPLATE: &str = include_str!("../../template.yaml");

/// Options of `local demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The SAM template to run [default: ./template.yaml, else the built-in one].
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Keep the store, the sink's records and a copy of the template (demo-template.yaml)
    /// in this folder, which
    /// must not hold a store yet: the demo counts on a fresh one; it ends with the `local
    /// status` command that reads them [default: a temporary folder].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

/// Prints one line to stdout. A reader that has gone (`local demo | head`) takes nothing
/// more, and the demo runs to its end: its exit status says whether the fan-out worked.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = crate::output::Closable::new(crate::output::stdout());
        writeln!(out, $($arg)*)?;
        out.flush()?;
    }};
}

/// Deliveries, retries and dead letters seen so far, per target.
#[derive(Debug, Default)]
struct Tally {
    delivered: BTreeMap<String, usize>,
    retried: BTreeMap<String, usize>,
    dead_lettered: BTreeMap<String, usize>,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |map: &BTreeMap<String, usize>| {
            DEMO_TARGETS
                .iter()
                .map(|t| format!("{t} {}", Tally::count(map, t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "delivered: {}; retried: {}; dead-lettered: {}",
            list(&self.delivered),
            list(&self.retried),
            list(&self.dead_lettered)
        )
    }
}

impl Tally {
    fn count(map: &BTreeMap<String, usize>, target: &str) -> usize {
        map.get(target).copied().unwrap_or(0)
    }
}

/// The bus the demo publishes to (the local bus's default).
const DEMO_BUS: &str = "eventfork";

/// The targets the demo drives, each needing a rule on its bus (the mailing list's poison
/// record needs a dead-letter queue too): every handler of `local up`.
const DEMO_TARGETS: [&str; 3] = handlers::HANDLERS;

/// What `template` lacks to run the demo, if anything: the three targets on the
/// `eventfork` bus, each reached by an enabled rule, and the mailing list's dead-letter
/// queue. Without them the demo would publish into nothing and wait for deliveries that
/// never come.
fn lacks_the_demo(template: &Template) -> Option<String> {
    let topology = match Topology::from_template(template, DEMO_BUS) {
        Ok(topology) => topology,
        Err(error) => return Some(error.to_string()),
    };
    let mut missing = Vec::new();
    for name in DEMO_TARGETS {
        let Some(target) = topology.target(name) else {
            missing.push(format!("no function runs the {name} handler"));
            continue;
        };
        let routed = topology
            .rules()
            .iter()
            .any(|rule| rule.is_enabled() && rule.queues().iter().any(|q| q == target.queue()));
        if !routed {
            missing.push(format!(
                "no enabled rule sends events to {}",
                target.queue()
            ));
        }
        if name == "mailing-list" && target.dead_letter_queue().is_none() {
            missing.push(format!("{} has no dead-letter queue", target.queue()));
        }
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// Prints bus events as they come and counts them, until `done` holds (or 30 s pass).
async fn follow(
    events: &mut broadcast::Receiver<LocalEvent>,
    tally: &mut Tally,
    done: impl Fn(&Tally) -> bool,
) -> Result<()> {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !done(tally) {
        let remaining = give_up.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(remaining, events.recv()).await {
            Err(_) => bail!("the demo's deliveries did not settle within 30 s ({tally})"),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("the bus stopped"),
            Ok(Ok(event)) => event,
        };
        match &event {
            LocalEvent::Delivered { target, .. } => {
                *tally.delivered.entry(target.clone()).or_default() += 1;
            }
            LocalEvent::Retrying {
                target,
                event_id,
                receive_count,
                ..
            } => {
                *tally.retried.entry(target.clone()).or_default() += 1;
                // A record that keeps failing is retried up to maxReceiveCount times: the
                // first two show it, the rest would bury the other lines.
                if *receive_count == 3 {
                    say!(
                        "  retrying  {target}: {event_id} again on every receive until its dead-letter queue (not shown)"
                    );
                }
                if *receive_count >= 3 {
                    continue;
                }
            }
            LocalEvent::DeadLettered { target, .. } => {
                *tally.dead_lettered.entry(target.clone()).or_default() += 1;
            }
            _ => {}
        }
        say!("  {event}");
    }
    Ok(())
}

pub(crate) async fn demo(args: Args) -> Result<Outcome> {
    let (mut template_text, mut template_name) = match &args.template {
        Some(path) => (
            crate::input::read_file_text(path)
                .with_context(|| format!("cannot read the template {}", path.display()))?,
            path.display().to_string(),
        ),
        None => match std::fs::read_to_string("template.yaml") {
            Ok(text) => (text, "template.yaml".to_owned()),
            Err(_) => (
                BUILT_IN_TEMPLATE.to_owned(),
                "the built-in template.yaml".to_owned(),
            ),
        },
    };
    let parsed = Template::parse(&template_text)
        .with_context(|| format!("invalid template {template_name}"));
    let why_not = match &parsed {
        Err(error) => Some(format!("{error:#}")),
        Ok(template) => lacks_the_demo(template)
            .map(|missing| format!("{template_name} cannot run the demo: {missing}")),
    };
    let template = match why_not {
        None => parsed?,
        Some(why) if args.template.is_some() => bail!("{why}"),
        Some(why) => {
            // Another project's template.yaml in the current folder: the demo is about
            // this one's targets.
            say!("eventfork local demo: {why}; running the built-in template instead");
            template_text = BUILT_IN_TEMPLATE.to_owned();
            template_name = "the built-in template.yaml".to_owned();
            Template::parse(BUILT_IN_TEMPLATE).context("invalid built-in template")?
        }
    };
    let temp_dir;
    let data = match &args.data {
        Some(dir) if LocalBus::database_file(dir).exists() => bail!(
            "{} already holds a local bus store ({}): the demo needs a fresh one; give a new \
             folder, or leave out --data for a temporary one",
            dir.display(),
            LocalBus::database_file(dir).display()
        ),
        Some(dir) => dir.clone(),
        None => {
            temp_dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            temp_dir.path().to_path_buf()
        }
    };

    // A failed record comes back after 100 ms instead of the queue's visibility timeout,
    // and batches do not wait a second to fill up, so that the demo shows its retries (30
    // before a dead letter) in seconds.
    let config = BusConfig::default()
        .retry_delay(Duration::from_millis(100))
        .batching_window(Duration::ZERO);
    // The layout of `local up`, so that `local status --data` reads a kept demo's store;
    // and its lock, so that no `local up` shares the demo's queues.
    let _lock = crate::local::lock_data(&data)?;
    let bus = LocalBus::open(&template, &data, config)
        .with_context(|| format!("cannot open the local bus in {}", data.display()))?;
    let sink = Sink::start(Some(data.join("sink")), true).await?;
    let (consumers, _) = handlers::consumers(None, sink.url(), &bus).await?;
    let runner = bus.start(consumers).context("cannot start the consumers")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bus.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut events = bus.subscribe();

    say!(
        "eventfork local demo: {template_name} on http://{addr}, store in {}",
        data.display()
    );
    for rule in bus.topology().rules() {
        let queues = if rule.queues().is_empty() {
            "no queue of this template".to_owned()
        } else {
            rule.queues().join(", ")
        };
        say!("  rule {} → {queues}", rule.name());
    }
    say!("  third-party APIs: the recording sink at {}", sink.url());

    // The producer's side: the real Publisher, through the AWS SDK, as against AWS.
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_credentials())
        .load()
        .await;
    let publisher = Publisher::new(&sdk_config, DEMO_BUS);
    publisher
        .verify_bus()
        .await
        .context("the local bus does not answer DescribeEventBus")?;

    // Faults: Slack's first batch fails once; Mailchimp refuses one address until the
    // fault is fixed (then a redrive delivers it).
    bus.faults().fail_batches("slack", 1);
    sink.refuse_domain("bounce.example", true);

    let signups = [
        ("u-ada", "ada@example.com", "Ada Lovelace", Plan::Pro, true),
        (
            "u-grace",
            "grace@example.com",
            "Grace Hopper",
            Plan::Team,
            false,
        ),
        (
            "u-mallory",
            "mallory@bounce.example",
            "Mallory",
            Plan::Free,
            true,
        ),
    ];
    let mut entries = Vec::new();
    let mut first_signup = None;
    for (user_id, email, name, plan, consent) in signups {
        let event = UserSignedUp::builder(user_id, email)?
            .display_name(name)
            .plan(plan)
            .signup_method(SignupMethod::Google)
            .marketing_consent(consent)
            .build();
        entries.push(Entry::new(&event));
        first_signup.get_or_insert(event);
    }
    for (user_id, ip) in [("u-ada", "192.0.2.10"), ("u-grace", "2001:db8::7")] {
        let event = UserLoggedIn::builder(user_id, ip.parse()?)?
            .login_method(LoginMethod::Passkey)
            .mfa_used(true)
            .user_agent("eventfork-demo/1")
            .build();
        entries.push(Entry::new(&event));
    }
    say!("\npublishing 3 UserSignedUp and 2 UserLoggedIn through the Publisher");
    let report = publisher.publish_entries(entries).await;
    ensure!(
        report.is_all_published(),
        "publishing failed: {:?}",
        report.outcomes()
    );
    say!(
        "  published {} in {}; the sign-up requests are already answered",
        crate::count(report.n_published(), "event", "events"),
        crate::count(
            report.n_requests(),
            "PutEvents request",
            "PutEvents requests"
        )
    );

    let mut tally = Tally::default();
    // analytics: 5 events; slack: 3 sign-ups; mailing-list: ada (mallory dead-letters,
    // grace has no consent and no rule sends her).
    follow(&mut events, &mut tally, |t| {
        Tally::count(&t.delivered, "analytics") >= 5
            && Tally::count(&t.delivered, "slack") >= 3
            && Tally::count(&t.delivered, "mailing-list") >= 1
            && Tally::count(&t.dead_lettered, "mailing-list") >= 1
    })
    .await?;

    say!("\nwhat each target's third-party API received:");
    print_received(&sink)?;
    let dead_letters = bus.dead_letters("mailing-list", 10).await?;
    say!(
        "\nmailing-list dead-letter queue ({} message):",
        dead_letters.len()
    );
    for message in &dead_letters {
        say!(
            "  {} {} after {}{}",
            message.detail_type,
            message.event_id,
            crate::count(message.receive_count as usize, "receive", "receives"),
            message
                .failure
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        );
    }

    say!("\nMailchimp accepts the address now; redriving the dead-letter queue");
    sink.refuse_domain("bounce.example", false);
    let n_moved = bus.redrive("mailing-list").await?;
    say!("  moved {n_moved} message(s) back to the mailing-list queue");
    follow(&mut events, &mut tally, |t| {
        Tally::count(&t.delivered, "mailing-list") >= 2
    })
    .await?;
    if let Some(request) = sink.requests().last() {
        say!(
            "  {} {} {} member {}",
            request.service,
            request.method,
            request.path,
            request.body["email_address"].as_str().unwrap_or_default()
        );
    }

    let n_calls_before = sink.requests().len();
    say!("\nreplaying the archive (every event, with replay-name set)");
    let summary = bus.replay("demo-replay", None, 0, i64::MAX).await?;
    say!(
        "  {} re-sent as {}",
        crate::count(summary.n_events, "archived event", "archived events"),
        crate::count(summary.n_messages, "message", "messages")
    );
    let expected = tally.delivered.values().sum::<usize>() + summary.n_messages;
    follow(&mut events, &mut tally, |t| {
        t.delivered.values().sum::<usize>() >= expected
    })
    .await?;
    let n_duplicate_calls = sink.requests().len() - n_calls_before;
    say!(
        "  the handlers received all {} replayed messages and made {n_duplicate_calls} new API calls: each occurrence is handled once",
        summary.n_messages
    );

    // A producer whose PutEvents answer was lost sends the event again, and EventBridge
    // takes the copy as a new event; the consumers key on the sign-up, not on the id.
    let again = first_signup.context("the demo publishes sign-ups")?;
    say!(
        "\npublishing {}'s sign-up again, as a producer does when a PutEvents answer is lost",
        again.user_id
    );
    let n_calls_before_again = sink.requests().len();
    let event_id = publisher.publish(&again).await?;
    say!("  EventBridge took the copy as a new event: {event_id}");
    let expected = tally.delivered.values().sum::<usize>() + 3;
    follow(&mut events, &mut tally, |t| {
        t.delivered.values().sum::<usize>() >= expected
    })
    .await?;
    let n_copy_calls = sink.requests().len() - n_calls_before_again;
    say!(
        "  its 3 messages made {n_copy_calls} new API calls: the idempotency key is the user id, not the event id"
    );

    let _ = stop.send(());
    runner.shutdown().await;
    server.await.context("the HTTP server task failed")??;

    let status = bus.status().await?;
    say!("\nfinal queue status:");
    for target in &status {
        say!(
            "  {:<13} visible {} in flight {} dead letters {}",
            target.target,
            target.visible,
            target.in_flight,
            target.dead_letters
        );
    }
    ensure!(
        n_duplicate_calls == 0,
        "the replay caused {n_duplicate_calls} duplicate API calls"
    );
    ensure!(
        n_copy_calls == 0,
        "the second publish caused {n_copy_calls} duplicate API calls"
    );
    ensure!(
        Tally::count(&tally.retried, "slack") >= 1,
        "the injected Slack failure was not retried"
    );
    say!(
        "\ndemo complete: every sign-up reached analytics, Slack and (with consent) the mailing list; every login reached analytics only"
    );
    if let Some(kept) = &args.data {
        // The store's commands read the template as well: a copy of the one the demo ran
        // sits beside the store, so that they work from any folder.
        let copy = kept.join("demo-template.yaml");
        std::fs::write(&copy, &template_text)
            .with_context(|| format!("cannot write {}", copy.display()))?;
        say!(
            "the store is kept in {dir}: eventfork local status --data {dir} --template {copy}",
            dir = kept.display(),
            copy = copy.display()
        );
    }
    Ok(Outcome::Success)
}

/// Static credentials for the local bus, which accepts any.
fn aws_sdk_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("local", "local", None, None, "eventfork-demo")
}

/// One line per API call the sink recorded.
fn print_received(sink: &Sink) -> Result<()> {
    for request in sink.requests() {
        let body = &request.body;
        let summary = match request.service.as_str() {
            "analytics" => format!(
                "track {:?} userId={} messageId={}",
                body["event"].as_str().unwrap_or_default(),
                body["userId"].as_str().unwrap_or_default(),
                body["messageId"].as_str().unwrap_or_default()
            ),
            "mailchimp" => format!(
                "member {} status_if_new={}",
                body["email_address"].as_str().unwrap_or_default(),
                body["status_if_new"].as_str().unwrap_or_default()
            ),
            "slack" => format!("message {:?}", body["text"].as_str().unwrap_or_default()),
            _ => body.to_string(),
        };
        say!(
            "  {:<10} {} {} {summary}",
            request.service,
            request.method,
            request.path
        );
    }
    Ok(())
}
