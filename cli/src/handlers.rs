//! The glue between the local bus and the targets: each target's handler (the same
//! library function its Lambda runs) becomes a local consumer, fed real `SqsEvent`
//! batches, with idempotency records in the local database.

use std::{
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use router::{
    local::{self, BoxFuture, Consumer, Consumers, Idempotency, LocalBus, Topology},
    template::DeadLetterQueueUrl,
};
use targets::{
    Analytics, AnalyticsConfig, Backoff, BatchDriver, BatchOptions, Claim, Deadline, Env, Handler,
    HttpClient, IdempotencyKey, IdempotencyStore, MailingList, MailingListConfig, NotDelayed,
    NotParked, Park, ParkFuture, Retry, Slack, SlackConfig, StoreError, StoreFuture, Visibility,
    VisibilityFuture,
};

/// The targets' idempotency-store trait over the local database.
pub(crate) struct LocalIdempotency(pub(crate) Idempotency);

/// The time from now until `at` (zero when it has passed).
fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// `at` in milliseconds since the epoch, the local bus clock's unit (it runs on the
/// system clock outside tests).
fn epoch_ms(at: SystemTime) -> i64 {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn store_error(
    operation: &'static str,
    key: &IdempotencyKey,
    error: local::StoreError,
) -> StoreError {
    StoreError::new(operation, key, error)
}

impl IdempotencyStore for LocalIdempotency {
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
        _expires_at: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            let claim = self
                .0
                .claim_until(key.target(), key.occurrence(), epoch_ms(lease_until))
                .await
                .map_err(|e| store_error("claim", key, e))?;
            Ok(match claim {
                local::Claim::Claimed => Claim::Acquired,
                local::Claim::AlreadyCompleted => Claim::Completed,
                // In progress, or an answer this glue does not know yet: not ours to act
                // on, so the record comes back later rather than running twice.
                _ => Claim::InProgress,
            })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .complete(key.target(), key.occurrence(), until(expires_at))
                .await
                .map_err(|e| store_error("complete", key, e))
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .release_lease(key.target(), key.occurrence(), epoch_ms(lease_until))
                .await
                .map_err(|e| store_error("release", key, e))
        })
    }
}

/// The batch options of local mode. Idempotency records outlive the local archive by a
/// day, as the Lambdas' outlive theirs (`ARCHIVE_RETENTION_DAYS` + 1), so that replaying
/// its oldest event is still a duplicate. An archive that keeps events indefinitely gets
/// records kept indefinitely: the longest TTL, which the batch driver caps at the latest
/// time the clock represents and the local store at the last instant it can store.
/// Without an archive nothing can be replayed, and records keep the driver's default TTL.
fn batch_options(topology: &Topology) -> BatchOptions {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let defaults = BatchOptions::default();
    let ttl = if topology.has_archive() {
        topology
            .archive_retention()
            .map_or(Duration::MAX, |retention| retention.saturating_add(DAY))
    } else {
        defaults.ttl
    };
    BatchOptions { ttl, ..defaults }
}

/// The targets' [`Visibility`] over the local bus's queues: a failed record's retry is
/// delayed in the local queue as the Lambda delays it in SQS, and a record that cannot
/// succeed is moved to the dead-letter queue when the function's environment names it
/// (`DEAD_LETTER_QUEUE_URL`), as the Lambda moves it.
struct LocalVisibility {
    bus: LocalBus,
    moves_dead_letters: bool,
}

impl Visibility for LocalVisibility {
    fn park<'a>(&'a self, records: &'a [Park]) -> ParkFuture<'a> {
        Box::pin(async move {
            let mut not_parked = Vec::new();
            for record in records {
                let result = if self.moves_dead_letters {
                    self.bus
                        .move_to_dead_letter_queue(
                            record.queue_arn(),
                            record.receipt_handle(),
                            record.reason(),
                        )
                        .await
                        .map(drop)
                        .map_err(|error| error.to_string())
                } else {
                    Err("the function has no DEAD_LETTER_QUEUE_URL".to_owned())
                };
                if let Err(reason) = result {
                    not_parked.push(NotParked {
                        message_id: record.message_id().to_owned(),
                        reason,
                    });
                }
            }
            not_parked
        })
    }

    fn delay<'a>(&'a self, retries: &'a [Retry]) -> VisibilityFuture<'a> {
        Box::pin(async move {
            let mut not_delayed = Vec::new();
            for retry in retries {
                if let Err(error) = self
                    .bus
                    .change_message_visibility(
                        retry.queue_arn(),
                        retry.receipt_handle(),
                        retry.delay(),
                    )
                    .await
                {
                    not_delayed.push(NotDelayed {
                        message_id: retry.message_id().to_owned(),
                        reason: error.to_string(),
                    });
                }
            }
            not_delayed
        })
    }
}

/// What a target's function says of its runs: its timeout, its `RECORD_CONCURRENCY` and
/// its retry backoff.
type FunctionSettings = (Duration, Option<u32>, Backoff);

/// A target's batch driver as a local consumer; each batch gets the function's timeout.
struct TargetConsumer<H> {
    driver: BatchDriver<H>,
    timeout: Duration,
}

impl<H: Handler> TargetConsumer<H> {
    fn new(
        handler: H,
        store: Arc<dyn IdempotencyStore>,
        options: &BatchOptions,
        bus: &LocalBus,
        function_of: impl Fn(&str) -> Result<FunctionSettings>,
    ) -> Result<TargetConsumer<H>> {
        let (timeout, record_concurrency, backoff) = function_of(handler.target())?;
        let mut options = options.clone();
        if let Some(n) = record_concurrency.and_then(|n| NonZeroUsize::new(n as usize)) {
            options.concurrency = n;
        }
        options.backoff = Some(backoff);
        let spec = bus.topology().target(handler.target());
        if let Some(spec) = spec
            && spec.dead_letter_queue_url() == Some(&DeadLetterQueueUrl::Unresolved)
        {
            tracing::warn!(
                function = spec.function(),
                "DEAD_LETTER_QUEUE_URL is not !Ref (or !GetAtt .QueueUrl) of a queue of the template: locally, records that cannot succeed reach the dead-letter queue after maxReceiveCount receives"
            );
        }
        let visibility = Arc::new(LocalVisibility {
            bus: bus.clone(),
            moves_dead_letters: spec.is_some_and(|t| t.moves_dead_letters()),
        });
        Ok(TargetConsumer {
            driver: BatchDriver::with_visibility(handler, store, options, visibility),
            timeout,
        })
    }
}

impl<H: Handler> Consumer for TargetConsumer<H> {
    fn consume(&self, batch: SqsEvent) -> BoxFuture<'_, SqsBatchResponse> {
        Box::pin(self.driver.run(batch, Deadline::after(self.timeout)))
    }
}

/// Where each target posts: its real endpoint from the environment, or the recording sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) analytics: String,
    pub(crate) mailing_list: String,
    pub(crate) slack: String,
}

/// What the template says of `target`'s runs. Each batch gets its function's timeout, runs
/// as many records at a time as its `RECORD_CONCURRENCY` says, and delays its retries as its
/// `RETRY_BACKOFF_*` say, as on Lambda.
fn function_settings(topology: &Topology, target: &str) -> Result<FunctionSettings> {
    let defaults = Backoff::default();
    let Some(spec) = topology.targets().iter().find(|t| t.name() == target) else {
        return Ok((Duration::from_secs(3), None, defaults));
    };
    let (base, max) = spec.retry_backoff_seconds();
    let seconds =
        |s: Option<u32>, default: Duration| s.map_or(default, |s| Duration::from_secs(s.into()));
    let backoff = Backoff::new(seconds(base, defaults.base()), seconds(max, defaults.max()))
        .with_context(|| {
            format!("the template's function for target {target}: RETRY_BACKOFF_BASE_SECONDS and RETRY_BACKOFF_MAX_SECONDS")
        })?;
    Ok((
        Duration::from_secs(spec.timeout_seconds().into()),
        spec.record_concurrency(),
        backoff,
    ))
}

/// The targets that [`consumers`] has a handler for: the binaries of the three Lambdas.
pub(crate) const HANDLERS: [&str; 3] = ["analytics", "mailing-list", "slack"];

/// Refuses, before anything is created or started, what [`consumers`] would refuse of the
/// targets of `topology`: a function that is none of the handlers, or a retry backoff that
/// the handlers do not take.
pub(crate) fn check(topology: &Topology) -> Result<()> {
    for target in topology.targets() {
        if !HANDLERS.contains(&target.name()) {
            bail!(
                "function {} (binary {}) has no local handler: `local up` runs only {}; give \
                 --record-only to run no handler at all, every target then recording the SQS \
                 messages it receives in <data>/records/<target>.jsonl",
                target.function(),
                target.name(),
                HANDLERS.join(", ")
            );
        }
        function_settings(topology, target.name())?;
        // The Lambda would send its dead letters to that queue, from which no redrive
        // leads back to this one.
        if let Some(DeadLetterQueueUrl::Queue(named)) = target.dead_letter_queue_url()
            && !target.moves_dead_letters()
        {
            bail!(
                "Resources.{}.Properties.Environment.Variables.DEAD_LETTER_QUEUE_URL refers to {named}, but {}",
                target.function(),
                match target.dead_letter_queue() {
                    Some(own) => format!(
                        "the dead-letter queue of {} (its RedrivePolicy) is {own}",
                        target.queue()
                    ),
                    None => format!("{} has no RedrivePolicy", target.queue()),
                }
            );
        }
    }
    Ok(())
}

/// Builds the three targets' consumers. A target whose endpoint variable
/// (`ANALYTICS_ENDPOINT`, `MAILCHIMP_API_BASE`, `SLACK_WEBHOOK_URL`) is unset posts to the
/// recording sink at `sink_url`; one that is set reads its whole config from the
/// environment, as its Lambda does (secrets and `*_SECRET_ARN` included).
pub(crate) async fn consumers(
    env: Option<&Env>,
    sink_url: &str,
    bus: &LocalBus,
) -> Result<(Consumers, Endpoints)> {
    let function_of = |target: &str| function_settings(bus.topology(), target);
    let idempotency = bus.idempotency();
    let http = HttpClient::new().context("cannot build the HTTP client")?;
    let store: Arc<dyn IdempotencyStore> = Arc::new(LocalIdempotency(idempotency));
    let options = batch_options(bus.topology());
    // Without an environment (the demo), every target posts to the sink.
    let empty = Env::from_pairs(Vec::<(String, String)>::new());
    let use_env = env.is_some();
    let env = env.unwrap_or(&empty);
    let set = |name: &str| use_env && std::env::var_os(name).is_some_and(|v| !v.is_empty());

    let analytics = if set("ANALYTICS_ENDPOINT") {
        AnalyticsConfig::from_env(env).await?
    } else {
        AnalyticsConfig::new(&format!("{sink_url}/analytics/v1/track"), "local-write-key")?
    };
    let mailing_list = if set("MAILCHIMP_API_BASE") {
        MailingListConfig::from_env(env).await?
    } else {
        MailingListConfig::with_api_base(
            &format!("{sink_url}/mailchimp/3.0"),
            "local-key-us1",
            "local-list",
        )?
    };
    let slack = if set("SLACK_WEBHOOK_URL") {
        SlackConfig::from_env(env).await?
    } else {
        SlackConfig::new(format!("{sink_url}/slack/services/T000/B000/LOCAL"))?
    };
    let endpoints = Endpoints {
        analytics: analytics.endpoint().to_owned(),
        mailing_list: mailing_list.api_base().to_owned(),
        // The webhook URL is a secret: only say where it comes from.
        slack: if set("SLACK_WEBHOOK_URL") {
            "$SLACK_WEBHOOK_URL".to_owned()
        } else {
            format!("{sink_url}/slack/…")
        },
    };
    let analytics = Analytics::new(analytics, http.clone());
    let mailing_list = MailingList::new(mailing_list, http.clone());
    let slack = Slack::new(slack, http);
    // The names of HANDLERS.
    let consumers = Consumers::default()
        .with(
            "analytics",
            TargetConsumer::new(analytics, store.clone(), &options, bus, function_of)?,
        )
        .with(
            "mailing-list",
            TargetConsumer::new(mailing_list, store.clone(), &options, bus, function_of)?,
        )
        .with(
            "slack",
            TargetConsumer::new(slack, store, &options, bus, function_of)?,
        );
    Ok((consumers, endpoints))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use router::{
        local::{BusConfig, Clock},
        template::Template,
    };
    use serde_json::json;
    use targets::UserEvent;

    use super::*;

    /// Counts the events it handles.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Handler for Counter {
        type Event = UserEvent;

        fn target(&self) -> &str {
            "counter"
        }

        async fn handle(&self, _: &UserEvent, _: Deadline) -> Result<(), targets::HandlerError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn sign_up() -> SqsEvent {
        let body = json!({
            "version": "0", "id": "e1", "detail-type": "UserSignedUp",
            "source": "com.eventfork.users", "account": "111122223333",
            "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "user_id": "u1", "email": "u1@example.com", "display_name": "Ada",
                "plan": "team", "signup_method": "github", "marketing_consent": true,
                "signed_up_at": "2026-11-27T09:00:00Z",
            },
        });
        serde_json::from_value(json!({ "Records": [
            { "messageId": "m1", "body": body.to_string(), "eventSource": "aws:sqs" },
        ] }))
        .unwrap()
    }

    /// Runs the same sign-up twice through the local bus of a template with `archives`,
    /// `later` apart on the bus clock, and checks how often it was handled.
    async fn check(archives: &str, later: Duration, expected_n_handled: usize) {
        let template = Template::parse(&format!(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n{archives}"
        ))
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let now_ms = i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let config = BusConfig::default().clock(Clock::manual(now_ms));
        let bus = LocalBus::open(&template, data.path(), config).unwrap();
        let store = Arc::new(LocalIdempotency(bus.idempotency()));
        let driver =
            BatchDriver::with_options(Counter::default(), store, batch_options(bus.topology()));
        for _ in 0..2 {
            let response = driver
                .run(sign_up(), Deadline::after(Duration::from_secs(10)))
                .await;
            assert!(response.batch_item_failures.is_empty());
            bus.clock().advance(later);
        }
        let n_handled = driver.handler().0.load(Ordering::SeqCst);
        assert_eq!(n_handled, expected_n_handled, "{archives} {later:?}");
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// A handler whose third party is down.
    struct Down;

    impl Handler for Down {
        type Event = UserEvent;

        fn target(&self) -> &str {
            "down"
        }

        async fn handle(&self, _: &UserEvent, _: Deadline) -> Result<(), targets::HandlerError> {
            Err(targets::HandlerError::Unavailable {
                service: "test",
                n_attempts: 1,
                last: "HTTP 503".into(),
                retry_after: None,
            })
        }
    }

    #[tokio::test]
    async fn local_retries_back_off_as_the_template_says() {
        let template = Template::parse(
            "Resources:\n  Rule:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: { source: [com.eventfork.users] }\n      Targets: [{ Id: q, Arn: !GetAtt Q.Arn }]\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: { VisibilityTimeout: 300 }\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: { BuildProperties: { Binary: down } }\n    Properties:\n      Timeout: 10\n      Environment: { Variables: { RETRY_BACKOFF_BASE_SECONDS: 40, RETRY_BACKOFF_MAX_SECONDS: 40 } }\n      Events: { S: { Type: SQS, Properties: { Queue: !GetAtt Q.Arn, FunctionResponseTypes: [ReportBatchItemFailures] } } }\n",
        )
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let now_ms = 1_795_770_000_000;
        let config = BusConfig::default().clock(Clock::manual(now_ms));
        let bus = LocalBus::open(&template, data.path(), config).unwrap();
        let store: Arc<dyn IdempotencyStore> = Arc::new(LocalIdempotency(bus.idempotency()));
        let function_of = |target: &str| function_settings(bus.topology(), target);
        let consumer =
            TargetConsumer::new(Down, store, &BatchOptions::default(), &bus, function_of).unwrap();
        let mut events = bus.subscribe();
        let runner = bus
            .start(Consumers::default().with("down", consumer))
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(sign_up().records[0].body.as_deref().unwrap()).unwrap();
        bus.put_events(vec![router::local::PutEventsEntry {
            source: Some("com.eventfork.users".into()),
            detail_type: Some("UserSignedUp".into()),
            detail: Some(body["detail"].to_string()),
            ..Default::default()
        }])
        .await
        .unwrap();
        let visible_at = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let router::local::LocalEvent::Retrying { visible_at_ms, .. } =
                    events.recv().await.unwrap()
                {
                    return visible_at_ms;
                }
            }
        })
        .await
        .unwrap();
        runner.shutdown().await;
        // 20 to 40 s (the backoff, its upper half jittered), not the queue's 300 s.
        let delay = visible_at - now_ms;
        assert!((20_000..=40_000).contains(&delay), "{delay} ms");
    }

    #[tokio::test]
    async fn idempotency_records_outlive_the_local_archive() {
        let archive = |days: &str| {
            format!(
                "  A:\n    Type: AWS::Events::Archive\n    \
                 Properties: {{ SourceArn: x, RetentionDays: {days} }}\n"
            )
        };
        // A day past the archive's retention, as on Lambda; the default TTL was 30 days.
        check(&archive("2"), 3 * DAY - DAY / 24, 1).await;
        check(&archive("2"), 3 * DAY + DAY / 24, 2).await;
        check(&archive("400"), 400 * DAY, 1).await;
        // An archive without RetentionDays keeps events forever.
        check(
            "  A:\n    Type: AWS::Events::Archive\n    Properties: { SourceArn: x }\n",
            100 * 365 * DAY,
            1,
        )
        .await;
        // Without an archive nothing is replayed: the driver's default TTL of 31 days (found
        // by an audit: records were kept forever, and the table only grew).
        check("", 31 * DAY - DAY / 24, 1).await;
        check("", 31 * DAY + DAY / 24, 2).await;
    }

    /// A handler's function must name its queue's own dead-letter queue, from which a
    /// redrive leads back: any other queue is refused before anything starts.
    #[test]
    fn a_function_may_move_dead_letters_only_to_its_queues_own_dead_letter_queue() {
        let check_with = |variable: &str| {
            let template = Template::parse(&format!(
                "Resources:
  D:
    Type: AWS::SQS::Queue
  E:
    Type: AWS::SQS::Queue
  Q:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: {{ deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 5 }}
  F:
    Type: AWS::Serverless::Function
    Metadata: {{ BuildProperties: {{ Binary: analytics }} }}
    Properties:
      Environment: {{ Variables: {{ DEAD_LETTER_QUEUE_URL: {variable} }} }}
      Events: {{ S: {{ Type: SQS, Properties: {{ Queue: !GetAtt Q.Arn }} }} }}
"
            ))
            .unwrap();
            let topology = Topology::from_template(&template, "bus").unwrap();
            super::check(&topology).map_err(|e| e.to_string())
        };
        assert_eq!(check_with("!Ref D"), Ok(()));
        assert_eq!(
            check_with("https://sqs.us-east-1.amazonaws.com/1/x"),
            Ok(())
        );
        assert_eq!(
            check_with("!Ref E"),
            Err("Resources.F.Properties.Environment.Variables.DEAD_LETTER_QUEUE_URL refers to E, but the dead-letter queue of Q (its RedrivePolicy) is D".to_owned())
        );
    }
}
