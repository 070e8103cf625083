//! Reading the parts of a SAM / CloudFormation template that eventfork runs: the event
//! rules, the SQS queues they target, and the functions that consume those queues.
//!
//! The same `template.yaml` that deploys to AWS drives the local bus and `eventfork rules
//! match`, so what runs locally is what deploys. Intrinsic functions are understood where
//! eventfork needs to follow a reference (`!GetAtt Queue.Arn`, `!Ref Queue`, and their
//! long forms `Fn::GetAtt` / `Ref`); anything else is kept opaque.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde_json::{Value as Json, value::RawValue};
use serde_norway::Value as Yaml;

/// The name of an event bus given by its name or by its ARN
/// (`arn:aws:events:<region>:<account>:event-bus/<name>`), as PutEvents and rules take it.
///
/// ```
/// use router::template::bus_name;
///
/// assert_eq!(bus_name("arn:aws:events:us-east-1:111122223333:event-bus/orders"), "orders");
/// assert_eq!(bus_name("orders"), "orders");
/// ```
pub fn bus_name(bus: &str) -> &str {
    bus.strip_prefix("arn:")
        .and_then(|_| bus.rsplit_once(":event-bus/"))
        .map_or(bus, |(_, name)| name)
}

/// A template could not be read; the message names the resource and property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct TemplateError {
    location: String,
    message: String,
}

impl TemplateError {
    fn new(location: impl Into<String>, message: impl Into<String>) -> TemplateError {
        TemplateError {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Where in the template: `Resources.AnalyticsRule.Properties.EventPattern`, or
    /// `template` for YAML syntax errors (whose message gives the line and column).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the document has no `Resources` section: it may not be a template at all.
    pub fn lacks_resources(&self) -> bool {
        self.location == "template" && self.message == NO_RESOURCES
    }
}

const NO_RESOURCES: &str = "no Resources section";

/// The event rules, queues and queue consumers of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    rules: Vec<RuleResource>,
    queues: BTreeMap<String, QueueResource>,
    functions: Vec<FunctionResource>,
    archive_retention_days: Option<u32>,
    archives: Vec<ArchiveResource>,
    /// The queues some `AWS::SQS::QueuePolicy` names in its `Queues`.
    queues_with_policy: BTreeSet<String>,
}

/// An `AWS::Events::Archive`: which bus's events it keeps, and which of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveResource {
    logical_id: String,
    default_bus: bool,
    pattern: Option<Json>,
}

impl ArchiveResource {
    /// The logical id.
    pub fn logical_id(&self) -> &str {
        &self.logical_id
    }

    /// Whether its `SourceArn` is the account's default bus (an ARN ending in
    /// `event-bus/default`); otherwise it is the template's custom bus.
    pub fn on_default_bus(&self) -> bool {
        self.default_bus
    }

    /// Its `EventPattern`: the events it keeps; `None` for every event of its bus.
    pub fn pattern(&self) -> Option<&Json> {
        self.pattern.as_ref()
    }
}

/// An `AWS::Events::Rule` with an event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResource {
    logical_id: String,
    pattern_location: String,
    event_bus: Option<String>,
    enabled: bool,
    pattern: Json,
    pattern_text: String,
    condition: Option<String>,
    computed_state: Option<String>,
    targets: Vec<RuleTarget>,
    delivers_replays: bool,
}

/// One target of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTarget {
    id: String,
    queue: Option<String>,
    dead_letter_queue: Option<String>,
    maximum_retry_attempts: Option<u32>,
    maximum_event_age_seconds: Option<u32>,
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueResource {
    logical_id: String,
    visibility_timeout_seconds: u32,
    message_retention_seconds: u32,
    redrive: Option<Redrive>,
}

/// A queue's redrive policy: after `max_receive_count` receives a message moves to the
/// dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    dead_letter_queue: String,
    max_receive_count: u32,
}

/// An `AWS::Serverless::Function` that consumes SQS queues through its `SQS` events
/// (explicit `AWS::Lambda::EventSourceMapping` resources are not read).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionResource {
    logical_id: String,
    binary: String,
    timeout_seconds: u32,
    reserved_concurrency: Option<u32>,
    record_concurrency: Option<u32>,
    retry_backoff_seconds: (Option<u32>, Option<u32>),
    dead_letter_queue: Option<DeadLetterQueueUrl>,
    sources: Vec<SqsSource>,
}

/// A function's `DEAD_LETTER_QUEUE_URL`, where its handler moves records that cannot
/// succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterQueueUrl {
    /// The URL of a queue of the template: its logical id.
    Queue(String),
    /// Some other value (a literal URL, a `!Sub`, an import): not a queue this template
    /// reader can name.
    Unresolved,
}

/// An SQS event source of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    name: String,
    queue: String,
    batch_size: u32,
    batching_window_seconds: u32,
    report_batch_item_failures: bool,
    maximum_concurrency: Option<u32>,
}

impl Template {
    /// Reads a template from YAML (or JSON, which is YAML).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::from_yaml(&read_yaml(text)?)
    }

    /// Only the event rules of a template, for matching events offline (`eventfork rules
    /// match`): each `AWS::Events::Rule` with an event pattern, and each `EventBridgeRule`
    /// (or `CloudWatchEvent`) event of a SAM function or state machine, named
    /// `<resource><event>` as SAM names the rule it makes (such a rule has no targets
    /// here). Other resources are not read, so parts of a
    /// template that eventfork does not run cannot stop it.
    pub fn parse_rules(text: &str) -> Result<Vec<RuleResource>, TemplateError> {
        let document = read_yaml(text)?;
        let mut rules = Vec::new();
        // Each rule's name and where it is defined.
        let mut named: BTreeMap<String, String> = BTreeMap::new();
        let resources = resources(&document)?;
        for (logical_id, resource) in &resources {
            if resource.get("Type").and_then(Yaml::as_str) == Some("AWS::Events::Rule") {
                named.insert(logical_id.clone(), format!("Resources.{logical_id}"));
            }
        }
        for (logical_id, resource) in resources {
            let at = format!("Resources.{logical_id}");
            match resource.get("Type").and_then(Yaml::as_str) {
                Some("AWS::Events::Rule") => {
                    rules.extend(read_rule(
                        &logical_id,
                        resource,
                        Numbers::of(&document),
                        &at,
                    )?);
                }
                // SAM makes a rule for each event of these types on a function or a state
                // machine (`CloudWatchEvent` is the older name of `EventBridgeRule`).
                Some("AWS::Serverless::Function" | "AWS::Serverless::StateMachine") => {
                    let properties = properties_of(resource, &at)?;
                    for (name, event) in events_of(properties, &at)? {
                        let event_at = format!("{at}.Properties.Events.{name}");
                        not_intrinsic(event, &event_at)?;
                        let kind = match event.get("Type").and_then(Yaml::as_str) {
                            Some(kind @ ("EventBridgeRule" | "CloudWatchEvent")) => kind,
                            _ => continue,
                        };
                        let properties = properties_of(event, &event_at)?;
                        let pattern = properties.get("Pattern").ok_or_else(|| {
                            TemplateError::new(
                                &event_at,
                                format!("the {kind} event needs a Pattern"),
                            )
                        })?;
                        let (pattern, pattern_text) =
                            read_pattern(pattern, &format!("{event_at}.Properties.Pattern"))?;
                        // SAM names the rule it makes after the function and the event.
                        let rule_id = format!("{logical_id}{name}");
                        if let Some(other) = named.insert(rule_id.clone(), event_at.clone()) {
                            return Err(TemplateError::new(
                                &event_at,
                                format!(
                                    "SAM names this event's rule {rule_id}, the name of the rule at {other} too"
                                ),
                            ));
                        }
                        rules.push(RuleResource {
                            logical_id: rule_id,
                            pattern_location: format!("{event_at}.Properties.Pattern"),
                            event_bus: properties.get("EventBusName").map(bus_of),
                            // SAM's older event types also take `Enabled: false`.
                            enabled: is_enabled(properties, &event_at)?
                                && properties.get("Enabled").and_then(Yaml::as_bool) != Some(false),
                            pattern,
                            pattern_text,
                            condition: condition_of(resource),
                            computed_state: computed_state(properties),
                            targets: Vec::new(),
                            // The function's (or state machine's) own Metadata says it.
                            delivers_replays: delivers_replays(resource, &at)?,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(rules)
    }

    fn from_yaml(document: &Yaml) -> Result<Template, TemplateError> {
        let numbers = Numbers::of(document);
        let global_timeout = document
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Timeout"))
            .map(|t| numbers.within(t, "Globals.Function.Timeout", LAMBDA_TIMEOUT))
            .transpose()?;
        let global_reserved = document
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("ReservedConcurrentExecutions"))
            .map(|n| {
                numbers.within(
                    n,
                    "Globals.Function.ReservedConcurrentExecutions",
                    RESERVED_CONCURRENCY,
                )
            })
            .transpose()?;
        // SAM merges these into every function's variables, the function's own winning.
        let global_variables = document
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"));
        let mut template = Template {
            rules: Vec::new(),
            queues: BTreeMap::new(),
            functions: Vec::new(),
            archive_retention_days: None,
            archives: Vec::new(),
            queues_with_policy: BTreeSet::new(),
        };
        // Each archive's RetentionDays, 0 for indefinitely.
        let mut archives = Vec::new();
        for (logical_id, resource) in resources(document)? {
            let logical_id = logical_id.as_str();
            let at = format!("Resources.{logical_id}");
            let kind = resource
                .get("Type")
                .and_then(Yaml::as_str)
                .unwrap_or_default();
            let properties = || properties_of(resource, &at);
            match kind {
                "AWS::Events::Rule" => {
                    template
                        .rules
                        .extend(read_rule(logical_id, resource, numbers, &at)?);
                }
                "AWS::SQS::Queue" => {
                    let queue = read_queue(logical_id, properties()?, numbers, &at)?;
                    template.queues.insert(logical_id.to_owned(), queue);
                }
                "AWS::Events::Archive" => {
                    let properties = properties()?;
                    let days = match properties.get("RetentionDays") {
                        None => 0,
                        Some(days) => {
                            numbers.within(days, &format!("{at}.Properties.RetentionDays"), DAYS)?
                        }
                    };
                    archives.push(days);
                    let pattern = match properties.get("EventPattern") {
                        None | Some(Yaml::Null) => None,
                        Some(pattern) => {
                            Some(read_pattern(pattern, &format!("{at}.Properties.EventPattern"))?.0)
                        }
                    };
                    template.archives.push(ArchiveResource {
                        logical_id: logical_id.to_owned(),
                        default_bus: properties.get("SourceArn").is_some_and(names_default_bus),
                        pattern,
                    });
                }
                "AWS::SQS::QueuePolicy" => {
                    let queues = properties()?.get("Queues").and_then(Yaml::as_sequence);
                    template
                        .queues_with_policy
                        .extend(queues.into_iter().flatten().filter_map(reference));
                }
                "AWS::Serverless::Function" => {
                    if let Some(function) = read_function(
                        logical_id,
                        resource,
                        properties()?,
                        (global_timeout, global_reserved, global_variables),
                        numbers,
                        &at,
                    )? {
                        template.functions.push(function);
                    }
                }
                _ => {}
            }
        }
        // The local bus keeps its archived events in one place: as long as the
        // longest-keeping archive of the template would.
        template.archive_retention_days = match archives.iter().max() {
            Some(&days) if !archives.contains(&0) => Some(days),
            _ => None,
        };
        Ok(template)
    }

    /// The template's `AWS::Events::Archive` resources, in template order.
    pub fn archives(&self) -> &[ArchiveResource] {
        &self.archives
    }

    /// How many days the template's archives keep events: the longest `RetentionDays` of
    /// its `AWS::Events::Archive` resources, `None` for indefinitely (no archive, or one
    /// with no or zero `RetentionDays`).
    pub fn archive_retention_days(&self) -> Option<u32> {
        self.archive_retention_days
    }

    /// The rules with an event pattern, in template order.
    pub fn rules(&self) -> &[RuleResource] {
        &self.rules
    }

    /// Whether an `AWS::SQS::QueuePolicy` names the queue of this logical id in its
    /// `Queues` (its statements are not read).
    pub fn has_queue_policy(&self, queue: &str) -> bool {
        self.queues_with_policy.contains(queue)
    }

    /// The queue of this logical id, if the template has one.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueResource> {
        self.queues.get(logical_id)
    }

    /// Every queue, by logical id.
    pub fn queues(&self) -> impl Iterator<Item = &QueueResource> {
        self.queues.values()
    }

    /// The functions with at least one SQS event source, in template order.
    pub fn functions(&self) -> &[FunctionResource] {
        &self.functions
    }

    /// The function consuming the queue with this logical id.
    pub fn consumer_of(&self, queue: &str) -> Option<(&FunctionResource, &SqsSource)> {
        self.functions.iter().find_map(|function| {
            function
                .sources
                .iter()
                .find(|source| source.queue == queue)
                .map(|source| (function, source))
        })
    }
}

impl RuleResource {
    /// The logical id, e.g. `AnalyticsRule`; it names the rule in `rules match` output.
    pub fn logical_id(&self) -> &str {
        &self.logical_id
    }
    /// Where the pattern is in the template, e.g. `Resources.AnalyticsRule.Properties.EventPattern`
    /// or, for a SAM function's event, `Resources.F.Properties.Events.E.Properties.Pattern`.
    pub fn pattern_location(&self) -> &str {
        &self.pattern_location
    }
    /// The logical id of the bus (`EventBusName: !Ref Bus`) or its literal name; `None`
    /// for the default bus.
    pub fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    /// False when `State` is `DISABLED`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// The event pattern as JSON.
    pub fn pattern(&self) -> &Json {
        &self.pattern
    }
    /// The event pattern as JSON text: as written when the template gives it as a string
    /// (numbers keep their exact spelling), else rendered from the YAML mapping.
    pub fn pattern_text(&self) -> &str {
        &self.pattern_text
    }
    /// The name of the template `Condition` the rule is created under, if any: offline it
    /// cannot be evaluated, and the rule is read as if it held.
    pub fn condition(&self) -> Option<&str> {
        self.condition.as_deref()
    }
    /// The intrinsic function (`!If`, `Fn::If`) that computes the rule's `State` at deploy
    /// time, if one does: offline it cannot be evaluated, and the rule is read as enabled.
    pub fn computed_state(&self) -> Option<&str> {
        self.computed_state.as_deref()
    }
    /// The rule's targets.
    pub fn targets(&self) -> &[RuleTarget] {
        &self.targets
    }
    /// True when the rule declares its targets idempotent, so that archive replays may
    /// reach them: `Metadata: {eventfork: {replays: deliver}}`.
    pub fn delivers_replays(&self) -> bool {
        self.delivers_replays
    }
}

impl RuleTarget {
    /// The target's `Id`.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The logical id of the SQS queue it sends to, when the target is a queue of this
    /// template.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }
    /// The logical id of the queue that receives events EventBridge failed to deliver.
    pub fn dead_letter_queue(&self) -> Option<&str> {
        self.dead_letter_queue.as_deref()
    }
    /// `RetryPolicy.MaximumRetryAttempts`.
    pub fn maximum_retry_attempts(&self) -> Option<u32> {
        self.maximum_retry_attempts
    }
    /// `RetryPolicy.MaximumEventAgeInSeconds`.
    pub fn maximum_event_age_seconds(&self) -> Option<u32> {
        self.maximum_event_age_seconds
    }
}

impl QueueResource {
    /// The logical id.
    pub fn logical_id(&self) -> &str {
        &self.logical_id
    }
    /// `VisibilityTimeout` (SQS default 30 s).
    pub fn visibility_timeout_seconds(&self) -> u32 {
        self.visibility_timeout_seconds
    }
    /// `MessageRetentionPeriod` (SQS default 4 days).
    pub fn message_retention_seconds(&self) -> u32 {
        self.message_retention_seconds
    }
    /// The redrive policy, if any.
    pub fn redrive(&self) -> Option<&Redrive> {
        self.redrive.as_ref()
    }
}

impl Redrive {
    /// The logical id of the dead-letter queue.
    pub fn dead_letter_queue(&self) -> &str {
        &self.dead_letter_queue
    }
    /// `maxReceiveCount`.
    pub fn max_receive_count(&self) -> u32 {
        self.max_receive_count
    }
}

impl FunctionResource {
    /// The logical id.
    pub fn logical_id(&self) -> &str {
        &self.logical_id
    }
    /// The binary it runs (`Metadata.BuildProperties.Binary` for `rust-cargolambda`, else
    /// the logical id).
    pub fn binary(&self) -> &str {
        &self.binary
    }
    /// `ReservedConcurrentExecutions` (or the `Globals` one), if set.
    pub fn reserved_concurrency(&self) -> Option<u32> {
        self.reserved_concurrency
    }

    /// `Environment.Variables.RECORD_CONCURRENCY` (or the `Globals` one), if set.
    pub fn record_concurrency(&self) -> Option<u32> {
        self.record_concurrency
    }
    /// `Environment.Variables.RETRY_BACKOFF_BASE_SECONDS` and `…_MAX_SECONDS` (or the
    /// `Globals` ones), each if set.
    pub fn retry_backoff_seconds(&self) -> (Option<u32>, Option<u32>) {
        self.retry_backoff_seconds
    }
    /// `Environment.Variables.DEAD_LETTER_QUEUE_URL` (or the `Globals` one), if set and
    /// not empty: where the handler moves records that cannot succeed.
    pub fn dead_letter_queue_url(&self) -> Option<&DeadLetterQueueUrl> {
        self.dead_letter_queue.as_ref()
    }

    /// `Timeout` (Lambda default 3 s).
    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds
    }
    /// The SQS event sources.
    pub fn sources(&self) -> &[SqsSource] {
        &self.sources
    }
}

impl SqsSource {
    /// The event's name under the function's `Events`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The logical id of the queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// `BatchSize` (default 10).
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub fn batching_window_seconds(&self) -> u32 {
        self.batching_window_seconds
    }
    /// Whether `FunctionResponseTypes` holds `ReportBatchItemFailures`.
    pub fn report_batch_item_failures(&self) -> bool {
        self.report_batch_item_failures
    }
    /// `ScalingConfig.MaximumConcurrency`.
    pub fn maximum_concurrency(&self) -> Option<u32> {
        self.maximum_concurrency
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rules, {} queues, {} consuming functions",
            self.rules.len(),
            self.queues.len(),
            self.functions.len()
        )
    }
}

/// The YAML document of a template (JSON is YAML), without a leading byte order mark,
/// with merge keys (`<<: *anchor`) applied as `sam deploy` and `aws cloudformation
/// package` apply them (aliases are resolved by the parser).
fn read_yaml(text: &str) -> Result<Yaml, TemplateError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{')
        && let Some(document) = read_json(text)?
    {
        return Ok(document);
    }
    let mut document: Yaml = serde_norway::from_str(text)
        .map_err(|error| TemplateError::new("template", format!("not valid YAML: {error}")))?;
    document
        .apply_merge()
        .map_err(|error| TemplateError::new("template", format!("invalid merge key: {error}")))?;
    Ok(document)
}

/// A JSON template, read as JSON rather than as the YAML it also is: JSON's escapes (an
/// emoji as a surrogate pair) are no YAML; a key given twice is an error in both; and each
/// rule's event pattern object is kept as its text, compacted, so that its numbers stay
/// as written (`0.30000000000000001` is not `0.3`), as they do in a pattern given as a
/// string. `None` when the text is no JSON: a YAML template in flow style, say.
fn read_json(text: &str) -> Result<Option<Yaml>, TemplateError> {
    /// An object's members, unread.
    fn members(raw: &RawValue) -> Option<BTreeMap<String, &RawValue>> {
        serde_json::from_str(raw.get()).ok()
    }
    let value = match events_schema::strict::from_str(text) {
        Ok(value) => value,
        // A key given twice (a resource, say): refused, as the YAML reader refuses it,
        // rather than the first one dropped.
        Err(error) if error.is_data() => {
            return Err(TemplateError::new(
                "template",
                format!("not valid JSON: {error}"),
            ));
        }
        Err(_) => return Ok(None),
    };
    let Ok(mut document) = serde_norway::to_value(&value) else {
        return Ok(None);
    };
    let Ok(top) = serde_json::from_str::<BTreeMap<String, &RawValue>>(text) else {
        return Ok(Some(document));
    };
    let Some(resources) = top.get("Resources").and_then(|r| members(r)) else {
        return Ok(Some(document));
    };
    // Each pattern object: its resource, its event (a SAM event's `Pattern`) and its text.
    let mut patterns: Vec<(&str, Option<String>, &RawValue)> = Vec::new();
    for (id, resource) in &resources {
        let Some(properties) = members(resource)
            .and_then(|r| r.get("Properties").copied())
            .and_then(members)
        else {
            continue;
        };
        if let Some(&pattern) = properties.get("EventPattern") {
            patterns.push((id, None, pattern));
        }
        let events = properties.get("Events").and_then(|e| members(e));
        for (name, event) in events.unwrap_or_default() {
            let pattern = members(event)
                .and_then(|e| e.get("Properties").copied())
                .and_then(members)
                .and_then(|p| p.get("Pattern").copied());
            if let Some(pattern) = pattern {
                patterns.push((id, Some(name), pattern));
            }
        }
    }
    for (id, event, pattern) in patterns {
        if !pattern.get().starts_with('{') {
            // A string is read as written already; anything else is refused later.
            continue;
        }
        let properties = document
            .get_mut("Resources")
            .and_then(|r| r.get_mut(id))
            .and_then(|r| r.get_mut("Properties"));
        let place = match &event {
            None => properties.and_then(|p| p.get_mut("EventPattern")),
            Some(name) => properties
                .and_then(|p| p.get_mut("Events"))
                .and_then(|e| e.get_mut(name.as_str()))
                .and_then(|e| e.get_mut("Properties"))
                .and_then(|p| p.get_mut("Pattern")),
        };
        // A pattern that holds an intrinsic function stays as it is, for the reader to
        // refuse with its path.
        if let Some(place) = place
            && yaml_to_json(place, "").is_ok()
        {
            *place = Yaml::String(crate::pattern::compact_json(pattern.get()));
        }
    }
    Ok(Some(document))
}

/// The resources of a template by logical id. A logical id is alphanumeric, so YAML may
/// read one as a number (`123:`); that number's text is the id.
fn resources(document: &Yaml) -> Result<Vec<(String, &Yaml)>, TemplateError> {
    let Some(resources) = document.get("Resources").and_then(Yaml::as_mapping) else {
        return Err(TemplateError::new("template", NO_RESOURCES));
    };
    resources
        .iter()
        .map(|(key, resource)| match key {
            Yaml::String(_) | Yaml::Number(_) => Ok((scalar_text(key), resource)),
            _ => Err(TemplateError::new(
                "Resources",
                format!("the resource name {} is not a string", scalar_text(key)),
            )),
        })
        .collect()
}

/// The `Properties` of a resource or event: none is an empty mapping; an intrinsic
/// function there (`!If`) cannot be read offline, and is an error rather than a rule
/// silently left out.
fn properties_of<'a>(resource: &'a Yaml, at: &str) -> Result<&'a Yaml, TemplateError> {
    static EMPTY: Yaml = Yaml::Null;
    match resource.get("Properties") {
        None => Ok(&EMPTY),
        Some(properties) => {
            not_intrinsic(properties, &format!("{at}.Properties"))?;
            Ok(properties)
        }
    }
}

/// A function's `Events` by name (none: no events). `Events`, or one event, given by an
/// intrinsic function is an error: the events it holds cannot be known offline.
fn events_of<'a>(properties: &'a Yaml, at: &str) -> Result<Vec<(String, &'a Yaml)>, TemplateError> {
    let Some(events) = properties.get("Events") else {
        return Ok(Vec::new());
    };
    let events_at = format!("{at}.Properties.Events");
    not_intrinsic(events, &events_at)?;
    match events {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Mapping(events) => Ok(events
            .iter()
            .map(|(name, event)| (scalar_text(name), event))
            .collect()),
        other => Err(TemplateError::new(
            events_at,
            format!("expected a mapping of events, found {}", scalar_text(other)),
        )),
    }
}

/// An error when `value` is an intrinsic function: `!If …` or its long form
/// `{"Fn::If": […]}` (also `Ref`), which only CloudFormation can resolve.
fn not_intrinsic(value: &Yaml, at: &str) -> Result<(), TemplateError> {
    match intrinsic_name(value) {
        Some(name) => Err(TemplateError::new(
            at,
            format!("intrinsic function {name} cannot be resolved offline"),
        )),
        None => Ok(()),
    }
}

/// The name of the intrinsic function `value` is, if it is one: a tag (`!If`), or a
/// one-key mapping in the long form (`{"Fn::If": […]}`, `{"Ref": "Name"}`; `Ref` takes a
/// name, so an event or a pattern field called Ref, holding a mapping or an array, is not
/// one).
fn intrinsic_name(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Tagged(tagged) => Some(tagged.tag.to_string()),
        Yaml::Mapping(mapping) if mapping.len() == 1 => mapping
            .keys()
            .next()
            .and_then(Yaml::as_str)
            .filter(|name| {
                name.starts_with("Fn::") || (*name == "Ref" && mapping[*name].is_string())
            })
            .map(str::to_owned),
        _ => None,
    }
}

/// An event pattern as JSON and as JSON text. CloudFormation takes it as a mapping or as
/// a string of JSON; a string is kept as written.
fn read_pattern(pattern: &Yaml, at: &str) -> Result<(Json, String), TemplateError> {
    match pattern {
        Yaml::String(text) => {
            let json = serde_json::from_str(text)
                .map_err(|e| TemplateError::new(at, format!("not valid JSON: {e}")))?;
            Ok((json, text.clone()))
        }
        other => {
            let json = yaml_to_json(other, at)?;
            let text = json.to_string();
            Ok((json, text))
        }
    }
}

/// The `Condition` a resource is created under, if any.
fn condition_of(resource: &Yaml) -> Option<String> {
    resource.get("Condition").map(scalar_text)
}

/// The logical id of a bus (`!Ref Bus`), or its literal name.
fn bus_of(bus: &Yaml) -> String {
    reference(bus).unwrap_or_else(|| scalar_text(bus))
}

/// Whether a rule is enabled: `State: DISABLED` turns it off. Another word is an error, as
/// CloudFormation makes it (`disabled` would else run the rule); a `State` given by an
/// intrinsic function reads as enabled, as a rule's `Condition` is read as holding.
fn is_enabled(properties: &Yaml, at: &str) -> Result<bool, TemplateError> {
    let state = properties.get("State");
    if state.and_then(intrinsic_name).is_some() {
        // Computed at deploy time (`!If [Prod, ENABLED, DISABLED]`): read as enabled, and
        // said so by `computed_state`.
        return Ok(true);
    }
    match state {
        Some(Yaml::String(state)) => match state.as_str() {
            "DISABLED" => Ok(false),
            "ENABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" => Ok(true),
            _ => Err(TemplateError::new(
                format!("{at}.Properties.State"),
                format!(
                    "{state:?} is no rule state (ENABLED, DISABLED or ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS)"
                ),
            )),
        },
        None | Some(Yaml::Null) => Ok(true),
        Some(other) => Err(TemplateError::new(
            format!("{at}.Properties.State"),
            format!(
                "{} is no rule state (ENABLED, DISABLED or ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS)",
                scalar_text(other)
            ),
        )),
    }
}

/// The intrinsic function that computes a rule's `State` at deploy time, if one does.
fn computed_state(properties: &Yaml) -> Option<String> {
    properties.get("State").and_then(intrinsic_name)
}

/// Whether a resource declares its targets idempotent, so that archive replays may reach
/// them: `Metadata: {eventfork: {replays: deliver}}` (or `ignore`, the default).
fn delivers_replays(resource: &Yaml, at: &str) -> Result<bool, TemplateError> {
    match resource
        .get("Metadata")
        .and_then(|m| m.get("eventfork"))
        .and_then(|e| e.get("replays"))
    {
        None => Ok(false),
        Some(Yaml::String(value)) if value == "deliver" => Ok(true),
        Some(Yaml::String(value)) if value == "ignore" => Ok(false),
        Some(other) => Err(TemplateError::new(
            format!("{at}.Metadata.eventfork.replays"),
            format!("expected deliver or ignore, found {}", scalar_text(other)),
        )),
    }
}

fn read_rule(
    logical_id: &str,
    resource: &Yaml,
    numbers: Numbers<'_>,
    at: &str,
) -> Result<Option<RuleResource>, TemplateError> {
    let properties = properties_of(resource, at)?;
    let Some(pattern) = properties.get("EventPattern") else {
        if properties.get("ScheduleExpression").is_some() {
            // A scheduled rule: nothing for an event pattern engine to do.
            return Ok(None);
        }
        // CloudFormation refuses it too; a misspelt `EventPattern` would else vanish.
        return Err(TemplateError::new(
            format!("{at}.Properties"),
            "an AWS::Events::Rule needs an EventPattern or a ScheduleExpression",
        ));
    };
    let (pattern, pattern_text) = read_pattern(pattern, &format!("{at}.Properties.EventPattern"))?;
    let event_bus = properties.get("EventBusName").map(bus_of);
    let enabled = is_enabled(properties, at)?;
    let mut targets = Vec::new();
    if let Some(list) = properties.get("Targets").and_then(Yaml::as_sequence) {
        for (target_idx, target) in list.iter().enumerate() {
            let target_at = format!("{at}.Properties.Targets[{target_idx}]");
            let id = target.get("Id").map(scalar_text).unwrap_or_default();
            let queue = target.get("Arn").and_then(reference);
            let dead_letter_queue = target
                .get("DeadLetterConfig")
                .and_then(|d| d.get("Arn"))
                .and_then(reference);
            let retry = target.get("RetryPolicy");
            let maximum_retry_attempts = retry
                .and_then(|r| r.get("MaximumRetryAttempts"))
                .map(|v| {
                    numbers.within(
                        v,
                        &format!("{target_at}.RetryPolicy.MaximumRetryAttempts"),
                        RETRY_ATTEMPTS,
                    )
                })
                .transpose()?;
            let maximum_event_age_seconds = retry
                .and_then(|r| r.get("MaximumEventAgeInSeconds"))
                .map(|v| {
                    numbers.within(
                        v,
                        &format!("{target_at}.RetryPolicy.MaximumEventAgeInSeconds"),
                        EVENT_AGE,
                    )
                })
                .transpose()?;
            targets.push(RuleTarget {
                id,
                queue,
                dead_letter_queue,
                maximum_retry_attempts,
                maximum_event_age_seconds,
            });
        }
    }
    let delivers_replays = delivers_replays(resource, at)?;
    Ok(Some(RuleResource {
        logical_id: logical_id.to_owned(),
        pattern_location: format!("{at}.Properties.EventPattern"),
        event_bus,
        enabled,
        pattern,
        pattern_text,
        condition: condition_of(resource),
        computed_state: computed_state(properties),
        targets,
        delivers_replays,
    }))
}

fn read_queue(
    logical_id: &str,
    properties: &Yaml,
    numbers: Numbers<'_>,
    at: &str,
) -> Result<QueueResource, TemplateError> {
    let number = |name: &str, bounds: Bounds, default: u32| -> Result<u32, TemplateError> {
        properties
            .get(name)
            .map(|v| numbers.within(v, &format!("{at}.Properties.{name}"), bounds))
            .unwrap_or(Ok(default))
    };
    let redrive = match properties.get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let policy_at = format!("{at}.Properties.RedrivePolicy");
            let policy = match policy {
                Yaml::String(text) => serde_norway::from_str(text)
                    .map_err(|e| TemplateError::new(&policy_at, format!("not valid JSON: {e}")))?,
                other => other.clone(),
            };
            let dead_letter_queue = policy
                .get("deadLetterTargetArn")
                .and_then(reference)
                .ok_or_else(|| {
                    TemplateError::new(
                        &policy_at,
                        "deadLetterTargetArn must be !GetAtt <Queue>.Arn of a queue in this template",
                    )
                })?;
            let max_receive_count = policy
                .get("maxReceiveCount")
                .ok_or_else(|| TemplateError::new(&policy_at, "maxReceiveCount is missing"))
                .and_then(|v| {
                    numbers.within(
                        v,
                        &format!("{policy_at}.maxReceiveCount"),
                        MAX_RECEIVE_COUNT,
                    )
                })?;
            Some(Redrive {
                dead_letter_queue,
                max_receive_count,
            })
        }
    };
    Ok(QueueResource {
        logical_id: logical_id.to_owned(),
        visibility_timeout_seconds: number("VisibilityTimeout", VISIBILITY_TIMEOUT, 30)?,
        message_retention_seconds: number("MessageRetentionPeriod", RETENTION_PERIOD, 345_600)?,
        redrive,
    })
}

fn read_function(
    logical_id: &str,
    resource: &Yaml,
    properties: &Yaml,
    (global_timeout, global_reserved, global_variables): (Option<u32>, Option<u32>, Option<&Yaml>),
    numbers: Numbers<'_>,
    at: &str,
) -> Result<Option<FunctionResource>, TemplateError> {
    let mut sources = Vec::new();
    for (name, event) in events_of(properties, at)? {
        let event_at = format!("{at}.Properties.Events.{name}");
        not_intrinsic(event, &event_at)?;
        if event.get("Type").and_then(Yaml::as_str) != Some("SQS") {
            continue;
        }
        let source = properties_of(event, &event_at)?;
        let queue = source.get("Queue").and_then(reference).ok_or_else(|| {
            TemplateError::new(
                format!("{event_at}.Properties.Queue"),
                "must be !GetAtt <Queue>.Arn of a queue in this template",
            )
        })?;
        let number = |name: &str, bounds: Bounds| {
            source
                .get(name)
                .map(|v| numbers.within(v, &format!("{event_at}.Properties.{name}"), bounds))
                .transpose()
        };
        let report_batch_item_failures = source
            .get("FunctionResponseTypes")
            .and_then(Yaml::as_sequence)
            .is_some_and(|types| {
                types
                    .iter()
                    .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
            });
        let maximum_concurrency = source
            .get("ScalingConfig")
            .and_then(|s| s.get("MaximumConcurrency"))
            .map(|v| {
                numbers.within(
                    v,
                    &format!("{event_at}.Properties.ScalingConfig.MaximumConcurrency"),
                    MAXIMUM_CONCURRENCY,
                )
            })
            .transpose()?;
        let batch_size = number("BatchSize", BATCH_SIZE)?.unwrap_or(10);
        let batching_window_seconds =
            number("MaximumBatchingWindowInSeconds", BATCHING_WINDOW)?.unwrap_or(0);
        if batch_size > 10 && batching_window_seconds == 0 {
            return Err(TemplateError::new(
                format!("{event_at}.Properties.BatchSize"),
                format!(
                    "a BatchSize of {batch_size} needs MaximumBatchingWindowInSeconds of at least 1: Lambda takes batches of more than 10 messages only with a batching window"
                ),
            ));
        }
        sources.push(SqsSource {
            name,
            queue,
            batch_size,
            batching_window_seconds,
            report_batch_item_failures,
            maximum_concurrency,
        });
    }
    if sources.is_empty() {
        return Ok(None);
    }
    let binary = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Yaml::as_str)
        .unwrap_or(logical_id)
        .to_owned();
    let timeout_seconds = match properties.get("Timeout") {
        Some(value) => {
            numbers.within(value, &format!("{at}.Properties.Timeout"), LAMBDA_TIMEOUT)?
        }
        None => global_timeout.unwrap_or(3),
    };
    let reserved_concurrency = match properties.get("ReservedConcurrentExecutions") {
        Some(value) => Some(numbers.within(
            value,
            &format!("{at}.Properties.ReservedConcurrentExecutions"),
            RESERVED_CONCURRENCY,
        )?),
        None => global_reserved,
    };
    // The handlers' own settings (targets' RECORD_CONCURRENCY and retry backoff), read so
    // that local mode runs records and retries as the Lambda does.
    // Each variable with where it is set: the function's own, or else `Globals`.
    let own_variables = properties
        .get("Environment")
        .and_then(|e| e.get("Variables"));
    let lookup = |name: &str| -> Option<(&Yaml, String)> {
        match own_variables.and_then(|v| v.get(name)) {
            Some(value) => Some((
                value,
                format!("{at}.Properties.Environment.Variables.{name}"),
            )),
            None => global_variables.and_then(|v| v.get(name)).map(|value| {
                (
                    value,
                    format!("Globals.Function.Environment.Variables.{name}"),
                )
            }),
        }
    };
    let variable = |name: &str, bounds: Bounds| -> Result<Option<u32>, TemplateError> {
        match lookup(name) {
            Some((value, location)) => Ok(Some(numbers.within(value, &location, bounds)?)),
            None => Ok(None),
        }
    };
    let record_concurrency = variable("RECORD_CONCURRENCY", RECORD_CONCURRENCY)?;
    let retry_backoff_seconds = (
        variable("RETRY_BACKOFF_BASE_SECONDS", RETRY_DELAY)?,
        variable("RETRY_BACKOFF_MAX_SECONDS", RETRY_DELAY)?,
    );
    // Where the handlers move records that cannot succeed: a queue of the template by its
    // URL (`!Ref`, `!GetAtt Q.QueueUrl`), so that local mode moves them to the same queue.
    // Any other value is the function's own business (empty is unset, as on Lambda).
    let dead_letter_queue = match lookup("DEAD_LETTER_QUEUE_URL").map(|(value, _)| value) {
        None => None,
        Some(Yaml::String(text)) if text.is_empty() => None,
        Some(value) => Some(match queue_url_reference(value) {
            Some(queue) => DeadLetterQueueUrl::Queue(queue),
            None => DeadLetterQueueUrl::Unresolved,
        }),
    };
    Ok(Some(FunctionResource {
        logical_id: logical_id.to_owned(),
        binary,
        timeout_seconds,
        reserved_concurrency,
        record_concurrency,
        retry_backoff_seconds,
        dead_letter_queue,
        sources,
    }))
}

/// The logical id a value refers to: `!GetAtt X.Arn`, `!GetAtt [X, Arn]`, `!Ref X`,
/// `{"Fn::GetAtt": [X, Arn]}` or `{"Ref": X}`.
/// Whether an archive's `SourceArn` names the default bus: some string in it (a literal
/// ARN, or the text of a `!Sub`) ends in `event-bus/default`.
fn names_default_bus(value: &Yaml) -> bool {
    match value {
        Yaml::String(text) => text.ends_with("event-bus/default"),
        Yaml::Sequence(items) => items.iter().any(names_default_bus),
        Yaml::Mapping(mapping) => mapping.values().any(names_default_bus),
        Yaml::Tagged(tagged) => names_default_bus(&tagged.value),
        _ => false,
    }
}

/// The logical id whose queue URL `value` is: `!Ref Q`, `{"Ref": Q}`, `!GetAtt
/// Q.QueueUrl` or `{"Fn::GetAtt": [Q, QueueUrl]}`.
fn queue_url_reference(value: &Yaml) -> Option<String> {
    let attribute = match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => return reference(value),
        Yaml::Mapping(mapping) if mapping.len() == 1 && mapping.contains_key("Ref") => {
            return reference(value);
        }
        Yaml::Tagged(tagged) if tagged.tag == "GetAtt" => &tagged.value,
        Yaml::Mapping(mapping) if mapping.len() == 1 => mapping.get("Fn::GetAtt")?,
        _ => return None,
    };
    let names_url = match attribute {
        Yaml::String(text) => text.split_once('.').is_some_and(|(_, a)| a == "QueueUrl"),
        Yaml::Sequence(parts) => parts.get(1).and_then(Yaml::as_str) == Some("QueueUrl"),
        _ => false,
    };
    names_url.then(|| reference(value)).flatten()
}

fn reference(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "GetAtt" => match &tagged.value {
            Yaml::String(text) => text.split('.').next().map(str::to_owned),
            Yaml::Sequence(parts) => parts.first().and_then(Yaml::as_str).map(str::to_owned),
            _ => None,
        },
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        Yaml::Mapping(mapping) if mapping.len() == 1 => {
            if let Some(parts) = mapping.get("Fn::GetAtt") {
                match parts {
                    Yaml::String(text) => text.split('.').next().map(str::to_owned),
                    Yaml::Sequence(parts) => {
                        parts.first().and_then(Yaml::as_str).map(str::to_owned)
                    }
                    _ => None,
                }
            } else {
                mapping.get("Ref").and_then(Yaml::as_str).map(str::to_owned)
            }
        }
        _ => None,
    }
}

/// Reads the numeric settings of one template: a number, a string holding one, or `!Ref`
/// to a parameter with a `Default` (the value a deploy without overrides takes).
#[derive(Clone, Copy)]
struct Numbers<'a> {
    parameters: Option<&'a Yaml>,
}

impl<'a> Numbers<'a> {
    fn of(document: &'a Yaml) -> Numbers<'a> {
        Numbers {
            parameters: document.get("Parameters"),
        }
    }

    /// The whole number `value` stands for, within the bounds AWS accepts.
    fn within(self, value: &Yaml, at: &str, bounds: Bounds) -> Result<u32, TemplateError> {
        let Some(parameter) = reference(value) else {
            return u32_within(value, at, bounds);
        };
        let default = self
            .parameters
            .and_then(|p| p.get(parameter.as_str()))
            .and_then(|p| p.get("Default"))
            .ok_or_else(|| {
                TemplateError::new(
                    at,
                    format!("refers to {parameter}, which is not a parameter with a Default"),
                )
            })?;
        u32_within(default, &format!("Parameters.{parameter}.Default"), bounds)
            .map_err(|e| TemplateError::new(at, format!("refers to {parameter}: {e}")))
    }
}

fn scalar_text(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => text.clone(),
        Yaml::Number(number) => number.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// The values AWS (or, for their own settings, eventfork's handlers) accepts for a numeric
/// property, and what it counts.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    unit: &'static str,
    /// Who accepts them, as the error says it: `AWS accepts`.
    accepts: &'static str,
}

impl Bounds {
    /// Bounds that AWS checks.
    const fn new(min: u32, max: u32, unit: &'static str) -> Bounds {
        Bounds {
            min,
            max,
            unit,
            accepts: "AWS accepts",
        }
    }

    /// Bounds of a function's `Environment` variable that AWS does not read and eventfork's
    /// handlers check at start-up.
    const fn handlers(min: u32, max: u32, unit: &'static str) -> Bounds {
        Bounds {
            min,
            max,
            unit,
            accepts: "eventfork's handlers accept",
        }
    }
}

/// `AWS::Serverless::Function` `Timeout`.
const LAMBDA_TIMEOUT: Bounds = Bounds::new(1, 900, "seconds");
/// `AWS::SQS::Queue` `VisibilityTimeout` (up to 12 hours).
const VISIBILITY_TIMEOUT: Bounds = Bounds::new(0, 43_200, "seconds");
/// `AWS::SQS::Queue` `MessageRetentionPeriod` (one minute to 14 days).
const RETENTION_PERIOD: Bounds = Bounds::new(60, 1_209_600, "seconds");
/// A redrive policy's `maxReceiveCount`.
const MAX_RECEIVE_COUNT: Bounds = Bounds::new(1, 1_000, "receives");
/// An SQS event source's `BatchSize` (standard queues).
const BATCH_SIZE: Bounds = Bounds::new(1, 10_000, "messages");
/// An SQS event source's `MaximumBatchingWindowInSeconds`.
const BATCHING_WINDOW: Bounds = Bounds::new(0, 300, "seconds");
/// A rule target's `RetryPolicy.MaximumRetryAttempts`.
const RETRY_ATTEMPTS: Bounds = Bounds::new(0, 185, "retries");
/// A rule target's `RetryPolicy.MaximumEventAgeInSeconds` (one minute to a day).
const EVENT_AGE: Bounds = Bounds::new(60, 86_400, "seconds");
/// Any number of days an archive keeps events (0: indefinitely).
const DAYS: Bounds = Bounds::new(0, u32::MAX, "days");
/// A function's `ReservedConcurrentExecutions` (the account's limit bounds it; 0 stops the
/// function).
const RESERVED_CONCURRENCY: Bounds = Bounds::new(0, 1_000_000, "concurrent executions");
/// The targets' `RECORD_CONCURRENCY` (records one invocation handles at a time).
const RECORD_CONCURRENCY: Bounds = Bounds::handlers(1, 64, "records");

/// The targets' retry delays (`targets::Backoff::MAX_DELAY`): SQS hides a message at most
/// 12 hours from its receive, less the batching window and the invocation before it.
const RETRY_DELAY: Bounds = Bounds::handlers(1, 42_000, "seconds");
/// An SQS event source's `ScalingConfig.MaximumConcurrency`.
const MAXIMUM_CONCURRENCY: Bounds = Bounds::new(2, 1_000, "concurrent invocations");

/// A whole number within the bounds AWS accepts, which the error names: a setting that
/// CloudFormation would refuse is refused here too, rather than run locally (and one that
/// eventfork's handlers would refuse at start-up, rather than later).
fn u32_within(value: &Yaml, at: &str, bounds: Bounds) -> Result<u32, TemplateError> {
    let whole = whole_number(value).ok_or_else(|| {
        TemplateError::new(
            at,
            format!("expected a whole number, found {}", scalar_text(value)),
        )
    })?;
    let Bounds {
        min,
        max,
        unit,
        accepts,
    } = bounds;
    match u32::try_from(whole) {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        _ => Err(TemplateError::new(
            at,
            format!("{whole} is out of range: {accepts} {min} to {max} {unit}"),
        )),
    }
}

/// A YAML number, or a string holding one (CloudFormation takes both), when it is whole.
fn whole_number(value: &Yaml) -> Option<i128> {
    match value {
        Yaml::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from)),
        Yaml::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Converts YAML to JSON for event patterns; tags have no meaning inside a pattern.
fn yaml_to_json(value: &Yaml, at: &str) -> Result<Json, TemplateError> {
    let refuse = |name: String| {
        TemplateError::new(
            at,
            format!("intrinsic function {name} is not allowed in an event pattern"),
        )
    };
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            let text = n.to_string();
            serde_json::from_str(&text).map_err(|_| {
                TemplateError::new(at, format!("{text} is not a number JSON can carry"))
            })?
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(mapping) => {
            if let Some(name) = intrinsic_name(value) {
                return Err(refuse(name));
            }
            let mut object = serde_json::Map::new();
            for (key, item) in mapping {
                let key = match key {
                    Yaml::String(_) | Yaml::Number(_) | Yaml::Bool(_) => scalar_text(key),
                    _ => return Err(TemplateError::new(at, "a pattern key is not a string")),
                };
                let child = format!("{at}.{key}");
                object.insert(key, yaml_to_json(item, &child)?);
            }
            Json::Object(object)
        }
        Yaml::Tagged(tagged) => return Err(refuse(tagged.tag.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Globals:
  Function:
    Timeout: 10
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: { Name: eventfork }
  SignupRule:
    Type: AWS::Events::Rule
    Metadata: { eventfork: { replays: deliver } }
    Properties:
      EventBusName: !Ref Bus
      EventPattern:
        source: [com.eventfork.users]
        detail-type: [UserSignedUp]
        detail: { marketing_consent: [true] }
      Targets:
        - Id: mailing-list
          Arn: !GetAtt MailQueue.Arn
          DeadLetterConfig: { Arn: !GetAtt MailDlq.Arn }
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 }
  JsonRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: '{"detail-type": ["UserLoggedIn"]}'
      State: DISABLED
      Targets:
        - { Id: a, Arn: { "Fn::GetAtt": [MailQueue, Arn] } }
  Nightly:
    Type: AWS::Events::Rule
    Properties: { ScheduleExpression: rate(1 day) }
  MailQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt MailDlq.Arn
        maxReceiveCount: 5
  MailDlq:
    Type: AWS::SQS::Queue
  MailFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildMethod: rust-cargolambda, BuildProperties: { Binary: mailing-list } }
    Properties:
      ReservedConcurrentExecutions: 2
      Environment: { Variables: { RECORD_CONCURRENCY: '4' } }
      Events:
        Mail:
          Type: SQS
          Properties:
            Queue: !GetAtt MailQueue.Arn
            BatchSize: 5
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: 2 }
"#;

    #[test]
    fn reads_rules_queues_and_consumers() {
        let template = Template::parse(TEMPLATE).unwrap();
        assert_eq!(
            template.to_string(),
            "2 rules, 2 queues, 1 consuming functions"
        );
        let rule = &template.rules()[0];
        assert_eq!(rule.logical_id(), "SignupRule");
        assert_eq!(rule.event_bus(), Some("Bus"));
        assert!(rule.is_enabled());
        assert!(rule.delivers_replays());
        assert_eq!(
            rule.pattern(),
            &serde_json::json!({
                "source": ["com.eventfork.users"],
                "detail-type": ["UserSignedUp"],
                "detail": { "marketing_consent": [true] },
            })
        );
        let target = &rule.targets()[0];
        assert_eq!(
            (target.id(), target.queue(), target.dead_letter_queue()),
            ("mailing-list", Some("MailQueue"), Some("MailDlq"))
        );
        assert_eq!(target.maximum_retry_attempts(), Some(185));
        let json_rule = &template.rules()[1];
        assert!(!json_rule.is_enabled());
        assert!(!json_rule.delivers_replays());
        assert_eq!(json_rule.pattern()["detail-type"][0], "UserLoggedIn");
        assert_eq!(json_rule.targets()[0].queue(), Some("MailQueue"));

        let queue = template.queue("MailQueue").unwrap();
        assert_eq!(queue.visibility_timeout_seconds(), 60);
        let redrive = queue.redrive().unwrap();
        assert_eq!(
            (redrive.dead_letter_queue(), redrive.max_receive_count()),
            ("MailDlq", 5)
        );
        assert_eq!(
            template
                .queue("MailDlq")
                .unwrap()
                .visibility_timeout_seconds(),
            30
        );

        let (function, source) = template.consumer_of("MailQueue").unwrap();
        assert_eq!(
            (function.binary(), function.timeout_seconds()),
            ("mailing-list", 10)
        );
        assert_eq!(
            (source.batch_size(), source.batching_window_seconds()),
            (5, 1)
        );
        assert!(source.report_batch_item_failures());
        assert_eq!(source.maximum_concurrency(), Some(2));
        assert_eq!(
            (
                function.reserved_concurrency(),
                function.record_concurrency()
            ),
            (Some(2), Some(4))
        );
    }

    /// SAM merges `Globals.Function.Environment.Variables` into each function's own, the
    /// function's winning: local mode reads the handlers' settings from both, and names
    /// the place of a bad value in either.
    #[test]
    fn global_variables_apply_where_a_function_sets_none() {
        let template = |own: &str, global: &str| {
            format!(
                "
Globals:
  Function:
    Environment:
      Variables: {{ {global} }}
Resources:
  Q:
    Type: AWS::SQS::Queue
  D:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {{ Variables: {{ {own} }} }}
      Events: {{ E: {{ Type: SQS, Properties: {{ Queue: !GetAtt Q.Arn }} }} }}
"
            )
        };
        let read = |own: &str, global: &str| {
            let template = Template::parse(&template(own, global)).unwrap();
            let function = &template.functions()[0];
            (
                function.record_concurrency(),
                function.retry_backoff_seconds(),
                function.dead_letter_queue_url().cloned(),
            )
        };
        assert_eq!(
            read(
                "RECORD_CONCURRENCY: 3",
                "RECORD_CONCURRENCY: 7, RETRY_BACKOFF_MAX_SECONDS: 60, DEAD_LETTER_QUEUE_URL: !Ref D"
            ),
            (
                Some(3),
                (None, Some(60)),
                Some(DeadLetterQueueUrl::Queue("D".to_owned()))
            )
        );
        assert_eq!(read("TENANT: a", "TENANT: b"), (None, (None, None), None));
        let error = Template::parse(&template("TENANT: a", "RETRY_BACKOFF_BASE_SECONDS: 0"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("Globals.Function.Environment.Variables.RETRY_BACKOFF_BASE_SECONDS: 0 is out of range"),
            "{error}"
        );
    }

    #[test]
    fn rules_alone_come_from_rules_and_sam_events() {
        let rules = Template::parse_rules(
            r#"
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties: { VisibilityTimeout: !Ref Unresolvable }
  Mapped:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: { detail: { age: [{ numeric: [">", 17] }] } }
  Text:
    Type: AWS::Events::Rule
    Properties:
      State: DISABLED
      EventPattern: '{"n": [9007199254740993.0, 3e2]}'
  Nightly:
    Type: AWS::Events::Rule
    Properties: { ScheduleExpression: rate(1 day) }
  123:
    Type: AWS::Events::Rule
    Properties: { EventPattern: { a: [x] } }
  Merged:
    Type: AWS::Events::Rule
    Condition: IsProd
    Properties:
      EventPattern:
        <<: { source: [com.acme] }
        detail-type: [UserSignedUp]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Queue: { Type: SQS, Properties: { Queue: !GetAtt Queue.Arn } }
        Signups:
          Type: EventBridgeRule
          Properties: { Pattern: { detail-type: [UserSignedUp] }, State: DISABLED }
        Old:
          Type: CloudWatchEvent
          Properties: { Pattern: { source: [aws.ec2] } }
        Off:
          Type: CloudWatchEvent
          Properties: { Pattern: { source: [aws.ec2] }, Enabled: false }
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      Events:
        Orders: { Type: EventBridgeRule, Properties: { Pattern: { detail-type: [OrderPlaced] } } }
        Hourly: { Type: Schedule, Properties: { Schedule: rate(1 hour) } }
"#,
        )
        .unwrap();
        let summary: Vec<(&str, bool, &str)> = rules
            .iter()
            .map(|r| (r.logical_id(), r.is_enabled(), r.pattern_text()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "Mapped",
                    true,
                    r#"{"detail":{"age":[{"numeric":[">",17]}]}}"#
                ),
                ("Text", false, r#"{"n": [9007199254740993.0, 3e2]}"#),
                ("123", true, r#"{"a":["x"]}"#),
                (
                    "Merged",
                    true,
                    r#"{"detail-type":["UserSignedUp"],"source":["com.acme"]}"#
                ),
                ("FnSignups", false, r#"{"detail-type":["UserSignedUp"]}"#),
                ("FnOld", true, r#"{"source":["aws.ec2"]}"#),
                ("FnOff", false, r#"{"source":["aws.ec2"]}"#),
                ("FlowOrders", true, r#"{"detail-type":["OrderPlaced"]}"#),
            ]
        );
        assert_eq!(rules[0].event_bus(), Some("Bus"));
        assert_eq!(rules[0].condition(), None);
        assert_eq!(rules[3].condition(), Some("IsProd"));
    }

    #[test]
    fn queues_functions_and_archives_that_cannot_be_read_offline_are_errors() {
        let check = |template: &str, expect: &str| {
            assert_eq!(Template::parse(template).unwrap_err().to_string(), expect);
        };
        check(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: !If [Prod, {VisibilityTimeout: 60}, {}]\n",
            "Resources.Q.Properties: intrinsic function !If cannot be resolved offline",
        );
        check(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: { \"Fn::If\": [Prod, {VisibilityTimeout: 60}, {}] }\n",
            "Resources.Q.Properties: intrinsic function Fn::If cannot be resolved offline",
        );
        check(
            "Resources:\n  A:\n    Type: AWS::Events::Archive\n    Properties: !If [Prod, {RetentionDays: 7}, {}]\n",
            "Resources.A.Properties: intrinsic function !If cannot be resolved offline",
        );
        check(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E: { Type: SQS, Properties: !If [Prod, {Queue: !GetAtt Q.Arn}, {}] }\n",
            "Resources.F.Properties.Events.E.Properties: intrinsic function !If cannot be resolved offline",
        );
        // Resources that eventfork does not run may use them.
        assert!(
            Template::parse(
                "Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties: !If [Prod, {}, {}]\n"
            )
            .is_ok()
        );
    }

    /// A JSON template is read as JSON: its escapes and duplicate keys are JSON's, and its
    /// pattern objects keep their numbers as written, compacted.
    #[test]
    fn json_templates_are_read_as_json() {
        let template = r#"{
          "Description": "fan-out \ud83d\ude00",
          "Resources": {
            "Exact": {
              "Type": "AWS::Events::Rule",
              "Properties": {
                "EventPattern": {
                  "detail": { "n": [ 0.1000000000000000055511151231257827 ] },
                  "source": [ "b" ]
                }
              }
            },
            "Fn": {
              "Type": "AWS::Serverless::Function",
              "Properties": { "Events": { "E": { "Type": "EventBridgeRule",
                "Properties": { "Pattern": { "n": [ 3e2 ] } } } } }
            },
            "Text": {
              "Type": "AWS::Events::Rule",
              "Properties": { "EventPattern": "{\"n\": [1.50]}" }
            }
          }
        }"#;
        let rules = Template::parse_rules(template).unwrap();
        let texts: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.logical_id(), r.pattern_text()))
            .collect();
        assert_eq!(
            texts,
            [
                (
                    "Exact",
                    r#"{"detail":{"n":[0.1000000000000000055511151231257827]},"source":["b"]}"#
                ),
                ("FnE", r#"{"n":[3e2]}"#),
                ("Text", r#"{"n": [1.50]}"#),
            ]
        );
        // The whole template reads too, for the local bus.
        assert_eq!(Template::parse(template).unwrap().rules().len(), 2);
        // A key given twice is refused, as in YAML, not resolved by dropping the first.
        let error = Template::parse_rules(
            r#"{"Resources": {"R": {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"a": ["x"]}}}, "R": {"Type": "AWS::SQS::Queue"}}}"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("template: not valid JSON: $.Resources: duplicate key \"R\""),
            "{error}"
        );
        // An intrinsic function in a JSON pattern is still refused where it is.
        let error = Template::parse_rules(
            r#"{"Resources": {"R": {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"a": [{"Fn::Sub": "x"}]}}}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Resources.R.Properties.EventPattern.a[0]: intrinsic function Fn::Sub is not allowed in an event pattern"
        );
    }

    #[test]
    fn rules_that_cannot_be_read_offline_are_errors() {
        let check = |template: &str, expect: &str| {
            assert_eq!(
                Template::parse_rules(template).unwrap_err().to_string(),
                expect
            );
        };
        check(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties: !If [Prod, {EventPattern: {a: [x]}}, !Ref AWS::NoValue]\n",
            "Resources.R.Properties: intrinsic function !If cannot be resolved offline",
        );
        check(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: { a: [x, { Ref: Value }] }\n",
            "Resources.R.Properties.EventPattern.a[1]: intrinsic function Ref is not allowed in an event pattern",
        );
        check(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E: { Type: EventBridgeRule, Properties: {} }\n",
            "Resources.F.Properties.Events.E: the EventBridgeRule event needs a Pattern",
        );
        check(
            "Resources:\n  F:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      Events:\n        E: { Type: CloudWatchEvent, Properties: {} }\n",
            "Resources.F.Properties.Events.E: the CloudWatchEvent event needs a Pattern",
        );
        // A rule with neither a pattern nor a schedule, as a misspelt key leaves it: CloudFormation
        // refuses it, and it must not vanish from the rules.
        check(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPatern: { a: [x] }\n",
            "Resources.R.Properties: an AWS::Events::Rule needs an EventPattern or a ScheduleExpression",
        );
        check(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n",
            "Resources.R.Properties: an AWS::Events::Rule needs an EventPattern or a ScheduleExpression",
        );
        check(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties: { State: disabled, EventPattern: { a: [x] } }\n",
            "Resources.R.Properties.State: \"disabled\" is no rule state (ENABLED, DISABLED or ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS)",
        );
        // A function's rules hidden behind an intrinsic function are errors, not left out.
        let function = |properties: &str| {
            format!(
                "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {properties}\n"
            )
        };
        let event = "{ Type: EventBridgeRule, Properties: { Pattern: { a: [x] } } }";
        check(
            &function(&format!("!If [Prod, {{ Events: {{ E: {event} }} }}, {{}}]")),
            "Resources.F.Properties: intrinsic function !If cannot be resolved offline",
        );
        check(
            &function(&format!("{{ Events: !If [Prod, {{ E: {event} }}, {{}}] }}")),
            "Resources.F.Properties.Events: intrinsic function !If cannot be resolved offline",
        );
        check(
            &function(&format!(
                "{{ Events: {{ \"Fn::If\": [Prod, {{ E: {event} }}, {{}}] }} }}"
            )),
            "Resources.F.Properties.Events: intrinsic function Fn::If cannot be resolved offline",
        );
        check(
            &function(&format!(
                "{{ Events: {{ E: !If [Prod, {event}, !Ref AWS::NoValue] }} }}"
            )),
            "Resources.F.Properties.Events.E: intrinsic function !If cannot be resolved offline",
        );
        check(
            &function("{ Events: [a, b] }"),
            "Resources.F.Properties.Events: expected a mapping of events, found - a\n- b",
        );
        // A pattern field may be called Ref: it holds an array, not a name.
        let rules = Template::parse_rules(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties: { EventPattern: { Ref: [x] } }\n",
        )
        .unwrap();
        assert_eq!(rules[0].pattern_text(), r#"{"Ref":["x"]}"#);
        // An event may be called Ref: it holds a mapping, not a name.
        let rules =
            Template::parse_rules(&function(&format!("{{ Events: {{ Ref: {event} }} }}"))).unwrap();
        assert_eq!(rules[0].logical_id(), "FRef");
    }

    /// SAM names a function's rule after the function and the event; two rules of one name
    /// would be one rule where CloudFormation refuses the stack.
    #[test]
    fn two_rules_of_one_name_are_an_error() {
        let function = |id: &str, event: &str| {
            format!(
                "  {id}:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        {event}: {{ Type: EventBridgeRule, Properties: {{ Pattern: {{ a: [x] }} }} }}\n"
            )
        };
        let rule = "  FnMyRule:\n    Type: AWS::Events::Rule\n    Properties: { EventPattern: { a: [y] } }\n";
        for resources in [
            function("FnMy", "Rule") + rule,
            rule.to_owned() + &function("FnMy", "Rule"),
        ] {
            assert_eq!(
                Template::parse_rules(&format!("Resources:\n{resources}"))
                    .unwrap_err()
                    .to_string(),
                "Resources.FnMy.Properties.Events.Rule: SAM names this event's rule FnMyRule, the name of the rule at Resources.FnMyRule too"
            );
        }
        let two = format!(
            "Resources:\n{}{}",
            function("Fn", "AbRule"),
            function("FnAb", "Rule")
        );
        assert_eq!(
            Template::parse_rules(&two).unwrap_err().to_string(),
            "Resources.FnAb.Properties.Events.Rule: SAM names this event's rule FnAbRule, the name of the rule at Resources.Fn.Properties.Events.AbRule too"
        );
    }

    #[track_caller]
    fn check_error(template: &str, expect: &str) {
        let error = Template::parse(template).unwrap_err();
        assert_eq!(error.to_string(), expect);
    }

    #[test]
    fn errors_name_the_place() {
        check_error(
            "Resources: [",
            "template: not valid YAML: did not find expected node content at line 2 column 1, while parsing a flow node",
        );
        check_error("Foo: 1", "template: no Resources section");
        check_error(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: '{nope'\n",
            "Resources.R.Properties.EventPattern: not valid JSON: key must be a string at line 1 column 2",
        );
        check_error(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Metadata: { eventfork: { replays: skip } }\n    Properties: { EventPattern: { a: [x] } }\n",
            "Resources.R.Metadata.eventfork.replays: expected deliver or ignore, found skip",
        );
        check_error(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: soon\n",
            "Resources.Q.Properties.VisibilityTimeout: expected a whole number, found soon",
        );
        check_error(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy: { deadLetterTargetArn: !GetAtt D.Arn }\n",
            "Resources.Q.Properties.RedrivePolicy: maxReceiveCount is missing",
        );
        check_error(
            "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: { source: !Ref X }\n",
            "Resources.R.Properties.EventPattern.source: intrinsic function !Ref is not allowed in an event pattern",
        );
    }

    #[test]
    fn numbers_outside_what_aws_accepts_are_refused() {
        let queue = |properties: String| {
            format!(
                "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {{ {properties} }}\n"
            )
        };
        let function = |function: String, source: String| {
            format!(
                "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      {function}\n      Events:\n        Work:\n          Type: SQS\n          Properties: {{ Queue: !GetAtt Q.Arn, {source} }}\n"
            )
        };
        let rule = |retry: String| {
            format!(
                "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: {{ a: [x] }}\n      Targets: [{{ Id: q, Arn: !GetAtt Q.Arn, RetryPolicy: {{ {retry} }} }}]\n"
            )
        };
        let source = "Resources.F.Properties.Events.Work.Properties";
        type Make = Box<dyn Fn(i64) -> String>;
        let cases: Vec<(String, Make, Bounds)> = vec![
            (
                "Resources.Q.Properties.VisibilityTimeout".into(),
                Box::new(move |n| queue(format!("VisibilityTimeout: {n}"))),
                VISIBILITY_TIMEOUT,
            ),
            (
                "Resources.Q.Properties.MessageRetentionPeriod".into(),
                // CloudFormation takes numbers written as strings too.
                Box::new(move |n| queue(format!("MessageRetentionPeriod: '{n}'"))),
                RETENTION_PERIOD,
            ),
            (
                "Resources.Q.Properties.RedrivePolicy.maxReceiveCount".into(),
                Box::new(move |n| {
                    queue(format!(
                        "RedrivePolicy: {{ deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: {n} }}"
                    ))
                }),
                MAX_RECEIVE_COUNT,
            ),
            (
                "Resources.F.Properties.Timeout".into(),
                Box::new(move |n| function(format!("Timeout: {n}"), String::new())),
                LAMBDA_TIMEOUT,
            ),
            (
                "Globals.Function.Timeout".into(),
                Box::new(move |n| {
                    format!("Globals:\n  Function:\n    Timeout: {n}\n")
                        + &function("Runtime: provided.al2023".into(), String::new())
                }),
                LAMBDA_TIMEOUT,
            ),
            (
                "Resources.F.Properties.ReservedConcurrentExecutions".into(),
                Box::new(move |n| {
                    function(format!("ReservedConcurrentExecutions: {n}"), String::new())
                }),
                RESERVED_CONCURRENCY,
            ),
            (
                "Resources.F.Properties.Environment.Variables.RECORD_CONCURRENCY".into(),
                Box::new(move |n| {
                    function(
                        format!("Environment: {{ Variables: {{ RECORD_CONCURRENCY: '{n}' }} }}"),
                        String::new(),
                    )
                }),
                RECORD_CONCURRENCY,
            ),
            (
                "Resources.F.Properties.Environment.Variables.RETRY_BACKOFF_MAX_SECONDS".into(),
                Box::new(move |n| {
                    function(
                        format!(
                            "Environment: {{ Variables: {{ RETRY_BACKOFF_MAX_SECONDS: {n} }} }}"
                        ),
                        String::new(),
                    )
                }),
                RETRY_DELAY,
            ),
            (
                format!("{source}.BatchSize"),
                Box::new(move |n| {
                    function(
                        "Timeout: 10".into(),
                        format!("BatchSize: {n}, MaximumBatchingWindowInSeconds: 1"),
                    )
                }),
                BATCH_SIZE,
            ),
            (
                format!("{source}.MaximumBatchingWindowInSeconds"),
                Box::new(move |n| {
                    function(
                        "Timeout: 10".into(),
                        format!("MaximumBatchingWindowInSeconds: {n}"),
                    )
                }),
                BATCHING_WINDOW,
            ),
            (
                format!("{source}.ScalingConfig.MaximumConcurrency"),
                Box::new(move |n| {
                    function(
                        "Timeout: 10".into(),
                        format!("ScalingConfig: {{ MaximumConcurrency: {n} }}"),
                    )
                }),
                MAXIMUM_CONCURRENCY,
            ),
            (
                "Resources.R.Properties.Targets[0].RetryPolicy.MaximumRetryAttempts".into(),
                Box::new(move |n| rule(format!("MaximumRetryAttempts: {n}"))),
                RETRY_ATTEMPTS,
            ),
            (
                "Resources.R.Properties.Targets[0].RetryPolicy.MaximumEventAgeInSeconds".into(),
                Box::new(move |n| rule(format!("MaximumEventAgeInSeconds: {n}"))),
                EVENT_AGE,
            ),
        ];
        for (
            at,
            make,
            Bounds {
                min,
                max,
                unit,
                accepts,
            },
        ) in &cases
        {
            for n in [min, max] {
                if let Err(e) = Template::parse(&make(i64::from(*n))) {
                    panic!("{at} = {n} is within the range, yet: {e}");
                }
            }
            for n in [i64::from(*min) - 1, i64::from(*max) + 1] {
                check_error(
                    &make(n),
                    &format!("{at}: {n} is out of range: {accepts} {min} to {max} {unit}"),
                );
            }
        }
        // AWS does not read the handlers' own variables: the handlers refuse them.
        check_error(
            &function(
                "Environment: { Variables: { RETRY_BACKOFF_BASE_SECONDS: 0 } }".into(),
                String::new(),
            ),
            "Resources.F.Properties.Environment.Variables.RETRY_BACKOFF_BASE_SECONDS: 0 is out of range: eventfork's handlers accept 1 to 42000 seconds",
        );
        // Whole numbers beyond u32 are out of range too, not "not a number".
        check_error(
            &function("Timeout: 10".into(), "BatchSize: 5000000000".into()),
            &format!(
                "{source}.BatchSize: 5000000000 is out of range: AWS accepts 1 to 10000 messages"
            ),
        );
        check_error(
            &function("Timeout: 10".into(), "BatchSize: 11".into()),
            &format!(
                "{source}.BatchSize: a BatchSize of 11 needs MaximumBatchingWindowInSeconds of at least 1: Lambda takes batches of more than 10 messages only with a batching window"
            ),
        );
        let template = Template::parse(&function(
            "Timeout: 900".into(),
            "BatchSize: 10000, MaximumBatchingWindowInSeconds: 1, ScalingConfig: { MaximumConcurrency: 1000 }".into(),
        ))
        .unwrap();
        let source = &template.functions()[0].sources()[0];
        assert_eq!(
            (
                source.name(),
                source.batch_size(),
                source.maximum_concurrency()
            ),
            ("Work", 10_000, Some(1_000))
        );
    }

    #[test]
    fn numeric_settings_follow_parameter_defaults() {
        let template = |defaults: (&str, &str)| {
            format!(
                "Parameters:\n  Wait: {{ Type: Number, Default: {} }}\n  Run: {{ Type: Number, Default: {} }}\n  Open: {{ Type: Number }}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {{ VisibilityTimeout: !Ref Wait }}\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Timeout: {{ Ref: Run }}\n      Events:\n        Work:\n          Type: SQS\n          Properties: {{ Queue: !GetAtt Q.Arn }}\n",
                defaults.0, defaults.1
            )
        };
        let parsed = Template::parse(&template(("120", "'20'"))).unwrap();
        assert_eq!(
            (
                parsed.queue("Q").unwrap().visibility_timeout_seconds(),
                parsed.functions()[0].timeout_seconds()
            ),
            (120, 20)
        );
        check_error(
            &template(("120", "901")),
            "Resources.F.Properties.Timeout: refers to Run: Parameters.Run.Default: 901 is out of range: AWS accepts 1 to 900 seconds",
        );
        check_error(
            &template(("120", "20")).replace("!Ref Wait", "!Ref Open"),
            "Resources.Q.Properties.VisibilityTimeout: refers to Open, which is not a parameter with a Default",
        );
        check_error(
            &template(("120", "20")).replace("!Ref Wait", "!Ref AWS::NoValue"),
            "Resources.Q.Properties.VisibilityTimeout: refers to AWS::NoValue, which is not a parameter with a Default",
        );
    }

    #[test]
    fn archive_retention_is_the_longest_and_follows_parameter_defaults() {
        let days = |archives: &str| {
            let text = format!(
                "Parameters:\n  Days: {{ Type: Number, Default: 30 }}\n  Open: {{ Type: Number }}\nResources:\n{archives}"
            );
            Template::parse(&text).map(|t| t.archive_retention_days())
        };
        let archive = |name: &str, properties: &str| {
            format!(
                "  {name}:\n    Type: AWS::Events::Archive\n    Properties: {{ SourceArn: arn, {properties} }}\n"
            )
        };
        assert_eq!(
            days("  Q:\n    Type: AWS::SQS::Queue\n"),
            Ok(None),
            "no archive"
        );
        assert_eq!(days(&archive("A", "RetentionDays: 7")), Ok(Some(7)));
        assert_eq!(
            days(&archive("A", "RetentionDays: !Ref Days")),
            Ok(Some(30))
        );
        assert_eq!(
            days(
                &(archive("A", "RetentionDays: 7") + &archive("B", "RetentionDays: { Ref: Days }"))
            ),
            Ok(Some(30))
        );
        // No RetentionDays, or 0: indefinitely, whatever the other archives say.
        assert_eq!(
            days(&(archive("A", "RetentionDays: 7") + &archive("B", "Description: all"))),
            Ok(None)
        );
        assert_eq!(days(&archive("A", "RetentionDays: 0")), Ok(None));
        assert_eq!(
            days(&archive("A", "RetentionDays: !Ref Open"))
                .unwrap_err()
                .to_string(),
            "Resources.A.Properties.RetentionDays: refers to Open, which is not a parameter with a Default"
        );
        assert_eq!(
            days(&archive("A", "RetentionDays: soon"))
                .unwrap_err()
                .to_string(),
            "Resources.A.Properties.RetentionDays: expected a whole number, found soon"
        );
    }
}
