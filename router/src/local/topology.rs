//! What the bus runs, derived from `template.yaml`: each `AWS::Events::Rule` → its SQS
//! target queues → the function consuming each queue, with the template's visibility
//! timeouts, redrive policies, batch sizes, batching windows and concurrency.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::template::{DeadLetterQueueUrl, Template};

use super::{
    LocalError,
    queue::{QueuePolicy, Retention},
};

/// The name of the bus that rules without `EventBusName` belong to.
pub const DEFAULT_BUS: &str = "default";

/// A rule as the local bus runs it.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    name: String,
    bus: String,
    enabled: bool,
    pattern: Json,
    queues: Vec<String>,
}

impl RuleSpec {
    /// The rule's logical id.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The bus name it listens on.
    pub fn bus(&self) -> &str {
        &self.bus
    }
    /// False when the template disables it.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// The event pattern.
    pub fn pattern(&self) -> &Json {
        &self.pattern
    }
    /// The logical ids of the queues it sends to.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }
}

/// A queue consumer: the function that reads one queue.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    name: String,
    function: String,
    queue: String,
    dead_letter_queue: Option<String>,
    max_receive_count: Option<u32>,
    visibility_timeout_seconds: u32,
    batch_size: u32,
    batching_window_seconds: u32,
    maximum_concurrency: u32,
    report_batch_item_failures: bool,
    timeout_seconds: u32,
    record_concurrency: Option<u32>,
    retry_backoff_seconds: (Option<u32>, Option<u32>),
    dead_letter_queue_url: Option<DeadLetterQueueUrl>,
}

impl TargetSpec {
    /// The target's name: the function's binary (`analytics`, `mailing-list`, `slack`);
    /// consumers are registered under it.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The function's logical id.
    pub fn function(&self) -> &str {
        &self.function
    }
    /// The logical id of the queue it consumes.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// The logical id of that queue's dead-letter queue.
    pub fn dead_letter_queue(&self) -> Option<&str> {
        self.dead_letter_queue.as_deref()
    }
    /// The redrive policy's `maxReceiveCount`.
    pub fn max_receive_count(&self) -> Option<u32> {
        self.max_receive_count
    }
    /// The queue's visibility timeout.
    pub fn visibility_timeout_seconds(&self) -> u32 {
        self.visibility_timeout_seconds
    }
    /// The event source's batch size.
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }
    /// The event source's `MaximumBatchingWindowInSeconds`.
    pub fn batching_window_seconds(&self) -> u32 {
        self.batching_window_seconds
    }
    /// How many batches may run at once (`ScalingConfig.MaximumConcurrency`, else 2).
    pub fn maximum_concurrency(&self) -> u32 {
        self.maximum_concurrency
    }
    /// Whether the function reports partial batch failures.
    pub fn report_batch_item_failures(&self) -> bool {
        self.report_batch_item_failures
    }
    /// The function timeout.
    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds
    }
    /// The function's `RECORD_CONCURRENCY`, if its environment sets one.
    pub fn record_concurrency(&self) -> Option<u32> {
        self.record_concurrency
    }
    /// The function's `RETRY_BACKOFF_BASE_SECONDS` and `RETRY_BACKOFF_MAX_SECONDS`, each if
    /// its environment sets it.
    pub fn retry_backoff_seconds(&self) -> (Option<u32>, Option<u32>) {
        self.retry_backoff_seconds
    }
    /// The function's `DEAD_LETTER_QUEUE_URL`, if set: where its handler moves records
    /// that cannot succeed.
    pub fn dead_letter_queue_url(&self) -> Option<&DeadLetterQueueUrl> {
        self.dead_letter_queue_url.as_ref()
    }

    /// Whether the function's `DEAD_LETTER_QUEUE_URL` names its queue's own dead-letter
    /// queue: records that cannot succeed are then moved there at once, not after
    /// `maxReceiveCount` receives (any other queue could not redrive them to this one).
    pub fn moves_dead_letters(&self) -> bool {
        matches!(
            (&self.dead_letter_queue_url, &self.dead_letter_queue),
            (Some(DeadLetterQueueUrl::Queue(named)), Some(own)) if named == own
        )
    }

    pub(crate) fn policy(&self) -> QueuePolicy {
        QueuePolicy {
            queue: self.queue.clone(),
            visibility_timeout_ms: i64::from(self.visibility_timeout_seconds) * 1000,
            redrive: self.dead_letter_queue.clone().zip(self.max_receive_count),
        }
    }
}

/// The rules, queues and consumers of a template, checked against each other.
#[derive(Debug, Clone)]
pub struct Topology {
    bus_name: String,
    rules: Vec<RuleSpec>,
    targets: Vec<TargetSpec>,
    queues: BTreeMap<String, QueuePolicy>,
    retention: Retention,
    archives: Vec<ArchiveSpec>,
}

/// An archive: the bus whose events it keeps, and which of them.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveSpec {
    pub(crate) name: String,
    pub(crate) bus: String,
    /// `None`: every event of the bus.
    pub(crate) pattern: Option<Json>,
}

/// The concurrency used when the event source sets no `MaximumConcurrency`. Lambda would
/// scale further; two keeps a laptop responsive and still shows concurrent batches.
const DEFAULT_CONCURRENCY: u32 = 2;

impl Topology {
    /// Derives the topology. Rules on a custom bus (`EventBusName` set) are served under
    /// `bus_name`; the others on `default`.
    pub fn from_template(template: &Template, bus_name: &str) -> Result<Topology, LocalError> {
        let mut queues = BTreeMap::new();
        let mut retention = Retention {
            queues: Vec::new(),
            archive_ms: template
                .archive_retention_days()
                .map(|days| i64::from(days) * 86_400_000),
        };
        for queue in template.queues() {
            retention.queues.push((
                queue.logical_id().to_owned(),
                i64::from(queue.message_retention_seconds()) * 1000,
            ));
            queues.insert(
                queue.logical_id().to_owned(),
                QueuePolicy {
                    queue: queue.logical_id().to_owned(),
                    visibility_timeout_ms: i64::from(queue.visibility_timeout_seconds()) * 1000,
                    redrive: queue
                        .redrive()
                        .map(|r| (r.dead_letter_queue().to_owned(), r.max_receive_count())),
                },
            );
        }
        for policy in queues.values() {
            if let Some((dead_letter_queue, _)) = &policy.redrive
                && !queues.contains_key(dead_letter_queue)
            {
                return Err(LocalError::Template(format!(
                    "Resources.{}: the redrive policy names {dead_letter_queue}, which is not a queue of this template",
                    policy.queue
                )));
            }
        }
        let mut rules = Vec::new();
        for rule in template.rules() {
            // What only a deploy can decide is run as if it went the rule's way.
            if let Some(condition) = rule.condition().filter(|_| rule.is_enabled()) {
                tracing::warn!(
                    rule = rule.logical_id(),
                    condition,
                    "the rule's Condition cannot be evaluated offline; the local bus runs the rule as if it held"
                );
            }
            if let Some(function) = rule.computed_state() {
                tracing::warn!(
                    rule = rule.logical_id(),
                    function,
                    "the rule's State is computed at deploy time; the local bus runs the rule as enabled"
                );
            }
            let mut rule_queues = Vec::new();
            for target in rule.targets() {
                match target.queue() {
                    Some(queue) if queues.contains_key(queue) => rule_queues.push(queue.to_owned()),
                    Some(other) => {
                        return Err(LocalError::Template(format!(
                            "Resources.{}: target {} sends to {other}, which is not a queue of this template",
                            rule.logical_id(),
                            target.id()
                        )));
                    }
                    None => tracing::warn!(
                        rule = rule.logical_id(),
                        target = target.id(),
                        "the local bus only delivers to SQS queues of the template; target skipped"
                    ),
                }
            }
            rules.push(RuleSpec {
                name: rule.logical_id().to_owned(),
                bus: match rule.event_bus() {
                    None => DEFAULT_BUS.to_owned(),
                    Some(_) => bus_name.to_owned(),
                },
                enabled: rule.is_enabled(),
                pattern: rule.pattern().clone(),
                queues: rule_queues,
            });
        }
        let mut targets = Vec::new();
        for function in template.functions() {
            for source in function.sources() {
                let Some(policy) = queues.get(source.queue()) else {
                    return Err(LocalError::Template(format!(
                        "Resources.{}: its SQS event source reads {}, which is not a queue of this template",
                        function.logical_id(),
                        source.queue()
                    )));
                };
                // Lambda checks this when it creates the event source mapping.
                let visibility_seconds = policy.visibility_timeout_ms / 1000;
                if i64::from(function.timeout_seconds()) > visibility_seconds {
                    return Err(LocalError::Template(format!(
                        "Resources.{}.Properties.Events.{}: the function's Timeout ({} s) is longer than the VisibilityTimeout of {} ({visibility_seconds} s), which Lambda refuses for an event source: a batch still running would be received again",
                        function.logical_id(),
                        source.name(),
                        function.timeout_seconds(),
                        source.queue()
                    )));
                }
                let (dead_letter_queue, max_receive_count) = match &policy.redrive {
                    Some((dlq, max)) => (Some(dlq.clone()), Some(*max)),
                    None => (None, None),
                };

                targets.push(TargetSpec {
                    name: function.binary().to_owned(),
                    function: function.logical_id().to_owned(),
                    queue: source.queue().to_owned(),
                    dead_letter_queue,
                    max_receive_count,
                    visibility_timeout_seconds: u32::try_from(policy.visibility_timeout_ms / 1000)
                        .unwrap_or(u32::MAX),
                    batch_size: source.batch_size().max(1),
                    batching_window_seconds: source.batching_window_seconds(),
                    maximum_concurrency: source
                        .maximum_concurrency()
                        .unwrap_or(DEFAULT_CONCURRENCY)
                        .max(1),
                    report_batch_item_failures: source.report_batch_item_failures(),
                    timeout_seconds: function.timeout_seconds(),
                    record_concurrency: function.record_concurrency(),
                    retry_backoff_seconds: function.retry_backoff_seconds(),
                    dead_letter_queue_url: function.dead_letter_queue_url().cloned(),
                });
            }
        }
        let archives = template
            .archives()
            .iter()
            .map(|archive| ArchiveSpec {
                name: archive.logical_id().to_owned(),
                bus: if archive.on_default_bus() {
                    DEFAULT_BUS.to_owned()
                } else {
                    bus_name.to_owned()
                },
                pattern: archive.pattern().cloned(),
            })
            .collect();
        Ok(Topology {
            bus_name: bus_name.to_owned(),
            rules,
            targets,
            queues,
            retention,
            archives,
        })
    }

    /// The template's archives.
    pub(crate) fn archives(&self) -> &[ArchiveSpec] {
        &self.archives
    }

    /// The custom bus's name.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The buses events may be put on: `default` and the custom bus.
    pub fn has_bus(&self, name: &str) -> bool {
        name == DEFAULT_BUS || name == self.bus_name
    }

    /// The rules, in template order.
    pub fn rules(&self) -> &[RuleSpec] {
        &self.rules
    }

    /// The queue consumers, in template order.
    pub fn targets(&self) -> &[TargetSpec] {
        &self.targets
    }

    /// Finds a target by its name (binary), function logical id or queue logical id.
    pub fn target(&self, name: &str) -> Option<&TargetSpec> {
        self.targets.iter().find(|t| t.name == name).or_else(|| {
            self.targets
                .iter()
                .find(|t| t.function == name || t.queue == name)
        })
    }

    /// The logical ids of every queue.
    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    /// How long the local archive keeps an event (the longest `RetentionDays` of the
    /// template's archives, see [`Template::archive_retention_days`]); `None` for
    /// indefinitely. Consumers keep their idempotency records at least this long, so that
    /// a replay of the oldest archived event is still recognised.
    pub fn archive_retention(&self) -> Option<std::time::Duration> {
        self.retention
            .archive_ms
            .map(|ms| std::time::Duration::from_millis(ms.unsigned_abs()))
    }

    /// Whether the template has an archive: without one, no event is kept to be
    /// replayed.
    pub fn has_archive(&self) -> bool {
        !self.archives.is_empty()
    }

    /// How long the queues keep messages and the archive keeps events.
    pub(crate) fn retention(&self) -> &Retention {
        &self.retention
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(visibility: u32, timeout: u32) -> Result<Topology, String> {
        let text = format!(
            "Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties: {{ VisibilityTimeout: {visibility} }}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: {timeout}
      Events:
        Work:
          Type: SQS
          Properties: {{ Queue: !GetAtt Q.Arn }}
"
        );
        let template = Template::parse(&text).map_err(|e| e.to_string())?;
        Topology::from_template(&template, "bus").map_err(|e| e.to_string())
    }

    #[test]
    fn archive_retention_is_the_longest_or_indefinite() {
        let check = |archives: &str, expected: Option<u64>| {
            let text = format!("Resources:\n{archives}");
            let template = Template::parse(&text).unwrap();
            let topology = Topology::from_template(&template, "bus").unwrap();
            assert_eq!(
                topology.archive_retention(),
                expected.map(|days| std::time::Duration::from_secs(days * 86_400)),
                "{archives}"
            );
        };
        let archive = |id: &str, properties: &str| {
            format!(
                "  {id}:\n    Type: AWS::Events::Archive\n    Properties: {{ SourceArn: x{properties} }}\n"
            )
        };
        check(&archive("A", ", RetentionDays: 2"), Some(2));
        check(
            &(archive("A", ", RetentionDays: 2") + &archive("B", ", RetentionDays: 400")),
            Some(400),
        );
        check(&archive("A", ""), None);
        check("  Q:\n    Type: AWS::SQS::Queue\n", None);
    }

    #[test]
    fn a_function_that_outlives_its_queues_visibility_timeout_is_refused() {
        assert_eq!(
            topology(30, 31).err().as_deref(),
            Some(
                "template: Resources.F.Properties.Events.Work: the function's Timeout (31 s) is longer than the VisibilityTimeout of Q (30 s), which Lambda refuses for an event source: a batch still running would be received again"
            )
        );
        let accepted = topology(30, 30).unwrap();
        assert_eq!(accepted.targets()[0].timeout_seconds(), 30);
    }
}

#[cfg(test)]
mod dead_letter_tests {
    use super::*;

    /// A queue Q with the dead-letter queue D, and a function consuming Q whose
    /// `DEAD_LETTER_QUEUE_URL` is `variable` (none when empty).
    fn topology(variable: &str) -> Result<Topology, String> {
        let environment = if variable.is_empty() {
            String::new()
        } else {
            format!("      Environment: {{ Variables: {{ DEAD_LETTER_QUEUE_URL: {variable} }} }}\n")
        };
        let text = format!(
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
    Properties:
{environment}      Events:
        Work:
          Type: SQS
          Properties: {{ Queue: !GetAtt Q.Arn }}
"
        );
        let template = Template::parse(&text).map_err(|e| e.to_string())?;
        Topology::from_template(&template, "bus").map_err(|e| e.to_string())
    }

    #[test]
    fn a_function_moves_dead_letters_only_to_its_queues_dead_letter_queue() {
        let target = |variable: &str| topology(variable).unwrap().targets()[0].clone();
        for own in [
            "!Ref D",
            "{ Ref: D }",
            "!GetAtt D.QueueUrl",
            "{ 'Fn::GetAtt': [D, QueueUrl] }",
        ] {
            let target = target(own);
            assert!(target.moves_dead_letters(), "{own}");
            assert_eq!(
                target.dead_letter_queue_url(),
                Some(&DeadLetterQueueUrl::Queue("D".into())),
                "{own}"
            );
        }
        assert!(!target("").moves_dead_letters());
        assert_eq!(target("''").dead_letter_queue_url(), None);
        let elsewhere = target("!Ref E");
        assert!(!elsewhere.moves_dead_letters());
        assert_eq!(
            elsewhere.dead_letter_queue_url(),
            Some(&DeadLetterQueueUrl::Queue("E".into()))
        );
        for other in [
            "!GetAtt D.Arn",
            "https://sqs.us-east-1.amazonaws.com/1/D",
            "!Sub '${D}'",
        ] {
            let target = target(other);
            assert!(!target.moves_dead_letters(), "{other}");
            assert_eq!(
                target.dead_letter_queue_url(),
                Some(&DeadLetterQueueUrl::Unresolved),
                "{other}"
            );
        }
    }
}
