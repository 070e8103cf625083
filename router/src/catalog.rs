//! The rule catalogue: which events reach which target, defined once, typed, and rendered
//! into the generated part of `template.yaml`.
//!
//! A [`Rule`] selects event types through their Rust types and adds conditions on detail
//! fields that are checked against the event's schema when the rule is built, so a
//! misspelt field is a build error, not a rule that silently never matches. Each rule
//! names its [`Target`]: one SQS queue (with its dead-letter queue) and the function that
//! consumes it.
//!
//! ```
//! use events_schema::{UserSignedUp, UserLoggedIn};
//! use router::catalog::{Condition, Rule, Target};
//!
//! let target = Target::new("analytics", "Counts sign-ups and logins");
//! let rule = Rule::builder("analytics", target)
//!     .event::<UserSignedUp>()
//!     .event::<UserLoggedIn>()
//!     .build()?;
//! assert_eq!(
//!     rule.pattern().to_string(),
//!     r#"{"source":["com.eventfork.users"],"detail-type":["UserSignedUp","UserLoggedIn"]}"#,
//! );
//!
//! let consent = Rule::builder("mailing-list", Target::new("mailing-list", "Mailchimp"))
//!     .event::<UserSignedUp>()
//!     .detail::<UserSignedUp>("marketing_consent", [Condition::exact(true)])
//!     .build()?;
//! assert_eq!(consent.pattern()["detail"]["marketing_consent"][0], true);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Write as _};

use events_schema::{Event, EventType, UserLoggedIn, UserSignedUp, registry};
use serde_json::{Map, Value, json};

/// A rule could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A name is not kebab-case ASCII.
    #[error("{what} name {name:?} must be lower-case kebab-case ASCII (a-z, 0-9, -)")]
    BadName {
        /// `rule` or `target`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The rule selects no event type.
    #[error("rule {rule}: select at least one event type with .event::<T>()")]
    NoEventType {
        /// The rule's name.
        rule: String,
    },
    /// A detail field does not exist in the event type's schema.
    #[error("rule {rule}: {detail_type} has no field detail.{field}")]
    UnknownField {
        /// The rule's name.
        rule: String,
        /// The event type named.
        detail_type: &'static str,
        /// The dotted field path.
        field: String,
    },
    /// A condition on a detail field was given for an event type the rule does not select.
    #[error("rule {rule}: a condition names {detail_type}, which the rule does not select")]
    EventNotSelected {
        /// The rule's name.
        rule: String,
        /// The event type named.
        detail_type: &'static str,
    },
    /// A field was given no condition.
    #[error("rule {rule}: the condition list for {field} is empty")]
    EmptyCondition {
        /// The rule's name.
        rule: String,
        /// The dotted field path.
        field: String,
    },
}

/// Where a rule delivers: one SQS queue with its dead-letter queue, consumed by one
/// function. The name is kebab-case (`mailing-list`); CloudFormation logical ids are
/// derived from it (`MailingListQueue`, `MailingListDeadLetterQueue`, `MailingListFunction`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    name: String,
    description: String,
}

impl Target {
    /// A target named `name` (kebab-case, also the name of the binary that consumes it).
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Target {
        Target {
            name: name.into(),
            description: description.into(),
        }
    }

    /// The kebab-case name, e.g. `mailing-list`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the target does, for humans.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The logical id prefix, e.g. `MailingList`.
    pub fn logical_prefix(&self) -> String {
        pascal_case(&self.name)
    }

    /// The logical id of the queue, e.g. `MailingListQueue`.
    pub fn queue_id(&self) -> String {
        format!("{}Queue", self.logical_prefix())
    }

    /// The logical id of the dead-letter queue, e.g. `MailingListDeadLetterQueue`.
    pub fn dead_letter_queue_id(&self) -> String {
        format!("{}DeadLetterQueue", self.logical_prefix())
    }

    /// The logical id of the consuming function, e.g. `MailingListFunction`.
    pub fn function_id(&self) -> String {
        format!("{}Function", self.logical_prefix())
    }
}

/// What a rule does with events re-sent by an archive replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replays {
    /// Replayed events are delivered like live ones; the target must be idempotent by event
    /// id (ours are).
    Deliver,
    /// The rule ignores replayed events (`"replay-name": [{"exists": false}]`).
    Ignore,
}

/// A routing rule: an event pattern and the target it delivers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    name: String,
    description: String,
    target: Target,
    pattern: Value,
    replays: Replays,
}

impl Rule {
    /// Starts a rule named `name` (kebab-case) that delivers to `target`.
    pub fn builder(name: impl Into<String>, target: Target) -> RuleBuilder {
        RuleBuilder {
            name: name.into(),
            description: String::new(),
            target,
            event_types: Vec::new(),
            conditions: Vec::new(),
            replays: Replays::Deliver,
            errors: Vec::new(),
        }
    }

    /// The kebab-case name, e.g. `mailing-list`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CloudFormation logical id, e.g. `MailingListRule`.
    pub fn logical_id(&self) -> String {
        format!("{}Rule", pascal_case(&self.name))
    }

    /// What the rule is for.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The target it delivers to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The EventBridge event pattern.
    pub fn pattern(&self) -> &Value {
        &self.pattern
    }

    /// What it does with replayed events.
    pub fn replays(&self) -> Replays {
        self.replays
    }
}

/// A condition on one field: the values of its leaf array in the event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition(Value);

impl Condition {
    /// Matches exactly this string, number, boolean or null.
    pub fn exact(value: impl Into<Value>) -> Condition {
        Condition(value.into())
    }
    /// Matches strings starting with `prefix`.
    pub fn prefix(prefix: &str) -> Condition {
        Condition(json!({ "prefix": prefix }))
    }
    /// Matches strings ending with `suffix`.
    pub fn suffix(suffix: &str) -> Condition {
        Condition(json!({ "suffix": suffix }))
    }
    /// Matches strings equal to `value` ignoring case.
    pub fn equals_ignore_case(value: &str) -> Condition {
        Condition(json!({ "equals-ignore-case": value }))
    }
    /// Matches strings against a `*` wildcard.
    pub fn wildcard(pattern: &str) -> Condition {
        Condition(json!({ "wildcard": pattern }))
    }
    /// Matches any value except this one (or these, given an array).
    pub fn anything_but(value: impl Into<Value>) -> Condition {
        Condition(json!({ "anything-but": value.into() }))
    }
    /// Matches numbers in a range: `&[(">=", 10.0), ("<", 20.0)]`.
    pub fn numeric(bounds: &[(&str, f64)]) -> Condition {
        let mut items = Vec::new();
        for (op, bound) in bounds {
            items.push(Value::from(*op));
            items.push(json!(bound));
        }
        Condition(json!({ "numeric": items }))
    }
    /// Matches when the field is present (`true`) or absent (`false`).
    pub fn exists(exists: bool) -> Condition {
        Condition(json!({ "exists": exists }))
    }
    /// Matches IP addresses in a CIDR block.
    pub fn cidr(block: &str) -> Condition {
        Condition(json!({ "cidr": block }))
    }
    /// Any operator EventBridge supports, written as its JSON.
    pub fn raw(value: Value) -> Condition {
        Condition(value)
    }
}

/// Builds a [`Rule`]; see [`Rule::builder`].
#[derive(Debug, Clone)]
pub struct RuleBuilder {
    name: String,
    description: String,
    target: Target,
    event_types: Vec<EventType>,
    conditions: Vec<(Vec<String>, Vec<Value>)>,
    replays: Replays,
    errors: Vec<CatalogError>,
}

impl RuleBuilder {
    /// Describes the rule for humans; rendered into the template.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Selects events of type `T` (several calls select any of them).
    pub fn event<T: Event>(mut self) -> Self {
        self.event_types.push(EventType::of::<T>());
        self
    }

    /// Adds a condition on a field of `T`'s detail; `field` is dotted for nested fields.
    /// The field is checked against `T`'s schema when the rule is built.
    pub fn detail<T: Event>(
        mut self,
        field: &str,
        conditions: impl IntoIterator<Item = Condition>,
    ) -> Self {
        let event_type = EventType::of::<T>();
        if !self
            .event_types
            .iter()
            .any(|t| t.detail_type() == T::DETAIL_TYPE)
        {
            self.errors.push(CatalogError::EventNotSelected {
                rule: self.name.clone(),
                detail_type: T::DETAIL_TYPE,
            });
        }
        if field_schema(&event_type.detail_schema(), field.split('.')).is_none() {
            self.errors.push(CatalogError::UnknownField {
                rule: self.name.clone(),
                detail_type: T::DETAIL_TYPE,
                field: field.to_owned(),
            });
        }
        let mut path = vec!["detail".to_owned()];
        path.extend(field.split('.').map(str::to_owned));
        self.add(path, conditions)
    }

    /// Adds a condition on any field of the event, envelope fields included, e.g.
    /// `&["resources"]` or `&["detail", "plan"]`; nothing is checked until `rules lint`.
    pub fn field(mut self, path: &[&str], conditions: impl IntoIterator<Item = Condition>) -> Self {
        self = self.add(path.iter().map(|s| (*s).to_owned()).collect(), conditions);
        self
    }

    /// Sets what the rule does with replayed events (default: deliver them).
    pub fn replays(mut self, replays: Replays) -> Self {
        self.replays = replays;
        self
    }

    fn add(mut self, path: Vec<String>, conditions: impl IntoIterator<Item = Condition>) -> Self {
        let values: Vec<Value> = conditions.into_iter().map(|c| c.0).collect();
        if values.is_empty() {
            self.errors.push(CatalogError::EmptyCondition {
                rule: self.name.clone(),
                field: path.join("."),
            });
        }
        self.conditions.push((path, values));
        self
    }

    /// Checks the rule and renders its pattern.
    pub fn build(self) -> Result<Rule, CatalogError> {
        for (what, name) in [("rule", &self.name), ("target", &self.target.name)] {
            if !is_kebab_case(name) {
                return Err(CatalogError::BadName {
                    what,
                    name: name.clone(),
                });
            }
        }
        if let Some(error) = self.errors.into_iter().next() {
            return Err(error);
        }
        if self.event_types.is_empty() {
            return Err(CatalogError::NoEventType { rule: self.name });
        }
        let mut sources: Vec<&str> = Vec::new();
        let mut detail_types: Vec<&str> = Vec::new();
        for event_type in &self.event_types {
            if !sources.contains(&event_type.source()) {
                sources.push(event_type.source());
            }
            if !detail_types.contains(&event_type.detail_type()) {
                detail_types.push(event_type.detail_type());
            }
        }
        let mut pattern = Map::new();
        pattern.insert("source".to_owned(), json!(sources));
        pattern.insert("detail-type".to_owned(), json!(detail_types));
        if self.replays == Replays::Ignore {
            pattern.insert("replay-name".to_owned(), json!([{ "exists": false }]));
        }
        for (path, values) in self.conditions {
            insert_path(&mut pattern, &path, Value::Array(values));
        }
        Ok(Rule {
            name: self.name,
            description: self.description,
            target: self.target,
            pattern: Value::Object(pattern),
            replays: self.replays,
        })
    }
}

fn insert_path(object: &mut Map<String, Value>, path: &[String], leaf: Value) {
    match path {
        [] => {}
        [last] => {
            object.insert(last.clone(), leaf);
        }
        [first, rest @ ..] => {
            let child = object
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_path(child, rest, leaf);
            }
        }
    }
}

/// The schema of the property at `path` in the detail schema `root` (following `$ref`s),
/// resolved; `root` itself for an empty path.
pub(crate) fn field_schema<'a, 'p>(
    root: &'a Value,
    path: impl IntoIterator<Item = &'p str>,
) -> Option<&'a Value> {
    let mut schema = resolve_schema(root, root);
    for segment in path {
        let next = schema.get("properties")?.get(segment)?;
        schema = resolve_schema(root, next);
    }
    Some(schema)
}

/// Follows `$ref` (and a one-element `allOf`) to the schema it names.
pub(crate) fn resolve_schema<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => schema = target,
                None => return schema,
            }
        } else if let Some([only]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = only;
        } else {
            return schema;
        }
    }
    schema
}

fn is_kebab_case(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The three targets of eventfork.
pub fn targets() -> [Target; 3] {
    [
        Target::new(
            "analytics",
            "Counts sign-ups and logins in the analytics service (Segment track API)",
        ),
        Target::new(
            "mailing-list",
            "Adds consenting new users to the Mailchimp audience",
        ),
        Target::new("slack", "Announces sign-ups in a Slack channel"),
    ]
}

/// eventfork's rule catalogue: sign-ups reach analytics, the mailing list (with marketing
/// consent) and Slack; logins reach analytics only.
pub fn rules() -> Vec<Rule> {
    let [analytics, mailing_list, slack] = targets();
    let built = [
        Rule::builder("analytics", analytics)
            .description("Every sign-up and login is counted in analytics")
            .event::<UserSignedUp>()
            .event::<UserLoggedIn>()
            .build(),
        Rule::builder("mailing-list", mailing_list)
            .description("Sign-ups that consented to marketing join the mailing list")
            .event::<UserSignedUp>()
            .detail::<UserSignedUp>("marketing_consent", [Condition::exact(true)])
            .build(),
        Rule::builder("slack", slack)
            .description("Every sign-up is announced on Slack")
            .event::<UserSignedUp>()
            .build(),
    ];
    built
        .into_iter()
        .map(|rule| rule.expect("the built-in catalogue is valid: a unit test builds it"))
        .collect()
}

/// Settings of the generated stack part that are not rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSettings {
    /// The consuming functions' timeout; queues get six times it as visibility timeout, as
    /// the Lambda docs advise for SQS event sources.
    pub function_timeout_seconds: u32,
    /// Receives before a message moves to the dead-letter queue (default 30: a record is
    /// received again each visibility timeout, a minute, so a third-party outage of up to
    /// half an hour is ridden out; 5 dead-lettered most events of a 10-minute outage).
    pub max_receive_count: u32,
    /// EventBridge's own delivery retries to a queue before the rule's DLQ.
    pub maximum_retry_attempts: u32,
    /// The oldest event EventBridge still tries to deliver.
    pub maximum_event_age_seconds: u32,
}

impl Default for StackSettings {
    fn default() -> StackSettings {
        StackSettings {
            function_timeout_seconds: 10,
            max_receive_count: 30,
            maximum_retry_attempts: 185,
            maximum_event_age_seconds: 86_400,
        }
    }
}

/// One generated part of `template.yaml`, between two marker lines: the rule, queues, queue
/// policy, alarms and outputs a target brings (its function, role and log group are
/// written by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    name: &'static str,
    begin: &'static str,
    end: &'static str,
}

/// The generated resources: per target a queue, its dead-letter queue, their policy, the
/// rules and the alarms; and the registry schemas. Under `Resources:`.
pub const RESOURCES: Section = Section {
    name: "resources",
    begin: "  # BEGIN GENERATED by `eventfork rules render --write template.yaml`: do not edit by hand.",
    end: "  # END GENERATED\n",
};

/// The generated outputs: per target the URLs and ARNs of its queue and dead-letter queue. Under
/// `Outputs:`.
pub const OUTPUTS: Section = Section {
    name: "outputs",
    begin: "  # BEGIN GENERATED OUTPUTS by `eventfork rules render --write template.yaml`: do not edit by hand.",
    end: "  # END GENERATED OUTPUTS\n",
};

impl Section {
    /// Every section, in the order they appear in the template.
    pub const ALL: [Section; 2] = [RESOURCES, OUTPUTS];

    /// `resources` or `outputs`.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Renders this section from the catalogue.
    pub fn render(self, rules: &[Rule], settings: &StackSettings) -> String {
        let mut out = String::new();
        for target in targets_of(rules) {
            if self == RESOURCES {
                let target_rules: Vec<&Rule> =
                    rules.iter().filter(|r| r.target() == target).collect();
                render_target(&mut out, target, &target_rules, settings);
            } else {
                render_outputs(&mut out, target);
            }
        }
        if self == RESOURCES {
            for event_type in events_schema::catalogue() {
                render_schema(&mut out, event_type);
            }
        }
        out
    }

    /// How many lines of `template` are the section's begin marker: more than one is a
    /// template that [`Section::find`] and [`Section::splice`] would read only in part.
    /// The marker quoted in a comment or a string is not counted.
    pub fn occurrences(self, template: &str) -> usize {
        template
            .lines()
            .filter(|line| line.strip_suffix('\r').unwrap_or(line) == self.begin)
            .count()
    }

    /// The section as it stands in `template`, if its markers are there.
    ///
    /// The template's lines may end in CRLF (a Windows checkout), and its last line, the
    /// end marker, may have no line end: the section is then as the file writes it.
    pub fn find(self, template: &str) -> Option<&str> {
        let (generated, _) = self.parts(template)?.1;
        Some(generated)
    }

    /// `template` with this section replaced by `generated` (written with the template's
    /// own line ends); `None` when the markers are missing.
    pub fn splice(self, template: &str, generated: &str) -> Option<String> {
        let (head, (_, tail)) = self.parts(template)?;
        let crlf = template.contains("\r\n");
        let newline = if crlf { "\r\n" } else { "\n" };
        let generated = if crlf {
            generated.replace('\n', "\r\n")
        } else {
            generated.to_owned()
        };
        Some(format!(
            "{head}{}{newline}{generated}{}{tail}",
            self.begin,
            self.end.trim_end_matches('\n'),
        ))
    }

    /// What comes before the begin marker, and between the marker lines (without the
    /// begin line's end) and after the end marker's text (its line end included).
    fn parts(self, template: &str) -> Option<(&str, (&str, &str))> {
        let (head, rest) = template.split_once(self.begin)?;
        let end = self.end.trim_end_matches('\n');
        let (generated, tail) = rest.split_once(end)?;
        if !(tail.is_empty() || tail.starts_with('\n') || tail.starts_with("\r\n")) {
            return None;
        }
        let generated = generated
            .strip_prefix("\r\n")
            .or_else(|| generated.strip_prefix('\n'))
            .unwrap_or(generated);
        Some((head, (generated, tail)))
    }

    /// The section with its marker lines, as it goes into a template.
    pub fn with_markers(self, generated: &str) -> String {
        format!("{}\n{generated}{}", self.begin, self.end)
    }
}

/// What makes a catalogue render a template CloudFormation refuses, or that does
/// something else than the catalogue says: a logical id or output rendered twice (two
/// rules of one name; `slack-2` and `slack2`, both `Slack2`; a target `analytics-dead-letter`
/// beside `analytics`, both rendering `AnalyticsDeadLetterQueue`), or one target name given
/// two descriptions. Empty when the catalogue renders cleanly.
pub fn conflicts(rules: &[Rule]) -> Vec<String> {
    let mut conflicts = Vec::new();
    let mut targets: Vec<&Target> = Vec::new();
    for rule in rules {
        let target = rule.target();
        match targets.iter().find(|seen| seen.name() == target.name()) {
            Some(seen) if seen.description() != target.description() => conflicts.push(format!(
                "target {:?} is given two descriptions",
                target.name()
            )),
            Some(_) => {}
            None => targets.push(target),
        }
    }
    // Every key the sections give at the top level, read back from what they render, so
    // that no way of making one twice is missed.
    for (section, what) in [(RESOURCES, "Resources"), (OUTPUTS, "Outputs")] {
        let rendered = section.render(rules, &StackSettings::default());
        let mut seen = std::collections::BTreeSet::new();
        let mut reported = std::collections::BTreeSet::new();
        for line in rendered.lines() {
            let Some(key) = line
                .strip_prefix("  ")
                .and_then(|rest| rest.strip_suffix(':'))
                .filter(|key| key.bytes().all(|b| b.is_ascii_alphanumeric()))
            else {
                continue;
            };
            if !seen.insert(key) && reported.insert(key) {
                conflicts.push(format!("{what}.{key} would be rendered twice"));
            }
        }
    }
    conflicts
}

/// The targets of `rules`, each once, in the order they first appear.
fn targets_of(rules: &[Rule]) -> Vec<&Target> {
    let mut seen_targets: Vec<&Target> = Vec::new();
    for rule in rules {
        if !seen_targets.contains(&rule.target()) {
            seen_targets.push(rule.target());
        }
    }
    seen_targets
}

fn render_outputs(out: &mut String, target: &Target) {
    let prefix = target.logical_prefix();
    let queue = target.queue_id();
    let dlq = target.dead_letter_queue_id();
    let name = target.name();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "  {queue}Url:
    Description: The queue of the {name} target.
    Value: !Ref {queue}
  {queue}Arn:
    Description: The queue of the {name} target, as a redrive's --destination-arn.
    Value: !GetAtt {queue}.Arn
  {prefix}DeadLetterQueueUrl:
    Description: Where the {name} target's failed events wait (redrive from here).
    Value: !Ref {dlq}
  {prefix}DeadLetterQueueArn:
    Description: The {name} target's dead-letter queue, as a redrive's --source-arn.
    Value: !GetAtt {dlq}.Arn"
    );
}

/// Queues are encrypted with SQS-managed keys, which checkov's CKV_AWS_27 does not
/// recognise; a skip needs its reason next to it.
const SSE_SQS_CHECKOV_SKIP: &str = "    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_27
            comment: Encrypted with SQS-managed keys (SqsManagedSseEnabled); checkov only sees KMS.
";

fn render_target(out: &mut String, target: &Target, rules: &[&Rule], settings: &StackSettings) {
    let prefix = target.logical_prefix();
    let queue = target.queue_id();
    let dlq = target.dead_letter_queue_id();
    let visibility = settings.function_timeout_seconds * 6;
    let w = &mut *out;
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "\n  # Target {}: {}.",
        target.name(),
        target.description()
    );
    let _ = write!(
        w,
        "  {dlq}:
    Type: AWS::SQS::Queue
    # Kept when the stack or the target goes, with the events that wait in it.
    DeletionPolicy: Retain
    UpdateReplacePolicy: Retain
{sse_skip}    Properties:
      SqsManagedSseEnabled: true
      MessageRetentionPeriod: 1209600
  {queue}:
    Type: AWS::SQS::Queue
{sse_skip}    Properties:
      SqsManagedSseEnabled: true
      # SQS's default of 4 days, said: the age alarm names it, and the dead-letter queue
      # keeps its messages longer (a dead letter keeps its first send's age).
      MessageRetentionPeriod: 345600
      # Six times the function timeout, so a slow batch is not received twice.
      VisibilityTimeout: {visibility}
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt {dlq}.Arn
        maxReceiveCount: {max_receive}
  {prefix}QueuePolicy:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Queues:
        - !Ref {queue}
        - !Ref {dlq}
      PolicyDocument:
        Version: '2012-10-17'
        Statement:
          - Sid: AllowRulesOf{prefix}
            Effect: Allow
            Principal:
              Service: events.amazonaws.com
            Action: sqs:SendMessage
            Resource:
              - !GetAtt {queue}.Arn
              - !GetAtt {dlq}.Arn
            Condition:
              ArnEquals:
                aws:SourceArn:
",
        max_receive = settings.max_receive_count,
        sse_skip = SSE_SQS_CHECKOV_SKIP,
    );
    for rule in rules {
        let _ = writeln!(w, "                  - !GetAtt {}.Arn", rule.logical_id());
    }
    for rule in rules {
        let logical_id = rule.logical_id();
        let replays = match rule.replays() {
            Replays::Deliver => "deliver",
            Replays::Ignore => "ignore",
        };
        let _ = write!(
            w,
            "  {logical_id}:
    Type: AWS::Events::Rule
    Metadata:
      eventfork:
        replays: {replays}
    Properties:
      Name: !Sub '${{AWS::StackName}}-{name}'
      Description: {description}
      EventBusName: !Ref EventBus
      State: ENABLED
      EventPattern: {pattern}
      Targets:
        - Id: {target}
          Arn: !GetAtt {queue}.Arn
          DeadLetterConfig:
            Arn: !GetAtt {dlq}.Arn
          RetryPolicy:
            MaximumRetryAttempts: {retries}
            MaximumEventAgeInSeconds: {age}
",
            name = rule.name(),
            description = yaml_quote(rule.description()),
            pattern = rule.pattern(),
            target = target.name(),
            retries = settings.maximum_retry_attempts,
            age = settings.maximum_event_age_seconds,
        );
        let alarms = [
            (
                "FailedInvocations",
                "FailedInvocations",
                format!(
                    "EventBridge failed to deliver events of rule {} to its queue.",
                    rule.name()
                ),
            ),
            (
                "LostEvents",
                "InvocationsFailedToBeSentToDlq",
                format!(
                    "EventBridge could deliver events of rule {} neither to its queue nor to its dead-letter queue; they are lost (replay them from the archive).",
                    rule.name()
                ),
            ),
        ];
        for (suffix, metric, description) in alarms {
            let _ = write!(
                w,
                "  {logical_id}{suffix}Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: {description}
      Namespace: AWS/Events
      MetricName: {metric}
      Dimensions:
        - Name: EventBusName
          Value: !Ref EventBus
        - Name: RuleName
          Value: !Sub '${{AWS::StackName}}-{name}'
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions:
        - !Ref AlarmTopic
",
                name = rule.name(),
            );
        }
    }
    let _ = write!(
        w,
        "  {dlq}Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: Events for {name} failed every retry, or cannot succeed, and wait in its dead-letter queue.
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      Dimensions:
        - Name: QueueName
          Value: !GetAtt {dlq}.QueueName
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions:
        - !Ref AlarmTopic
  # The alarm above stays raised while the queue holds anything, so a second incident
  # before the first is drained would go unannounced: this one rises with each increase.
  # Visible and in flight together: reading the queue (to look at its messages) moves them
  # from one to the other, which is no arrival.
  {dlq}GrowthAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: More events for {name} reached its dead-letter queue in the last minute.
      Metrics:
        - Id: visible
          MetricStat:
            Metric:
              Namespace: AWS/SQS
              MetricName: ApproximateNumberOfMessagesVisible
              Dimensions:
                - Name: QueueName
                  Value: !GetAtt {dlq}.QueueName
            Period: 60
            Stat: Maximum
          ReturnData: false
        - Id: inflight
          MetricStat:
            Metric:
              Namespace: AWS/SQS
              MetricName: ApproximateNumberOfMessagesNotVisible
              Dimensions:
                - Name: QueueName
                  Value: !GetAtt {dlq}.QueueName
            Period: 60
            Stat: Maximum
          ReturnData: false
        - Id: held
          Expression: visible + inflight
          ReturnData: false
        - Id: added
          Expression: DIFF(held)
          Label: Messages added to the dead-letter queue
          ReturnData: true
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions:
        - !Ref AlarmTopic
  {queue}AgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: Events for {name} have waited over {age_minutes} minutes in its queue, which its function drains in minutes when it runs; is its event source disabled, or the function failing to start? Events expire after the queue's retention (4 days) without reaching the dead-letter queue.
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      Dimensions:
        - Name: QueueName
          Value: !GetAtt {queue}.QueueName
      Statistic: Maximum
      Period: 300
      EvaluationPeriods: 1
      Threshold: {age_seconds}
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions:
        - !Ref AlarmTopic
",
        name = target.name(),
        age_minutes = QUEUE_AGE_ALARM_SECONDS / 60,
        age_seconds = QUEUE_AGE_ALARM_SECONDS,
    );
}

/// The age of a queue's oldest message that raises its alarm: an hour means nothing is
/// consuming the queue, and nothing else would say so. A record held back by the retry
/// backoff through a third party's long outage (up to about five hours) can grow older
/// than that too: the alarm then reports the outage as well.
const QUEUE_AGE_ALARM_SECONDS: u32 = 3_600;

fn render_schema(out: &mut String, event_type: &EventType) {
    let format = registry::Format::OpenApi3;
    let content = registry::to_pretty_string(&registry::export(event_type, format));
    let _ = write!(
        out,
        "\n  # Registry schema of {detail_type} (eventfork schemas export).
  {detail_type}Schema:
    Type: AWS::EventSchemas::Schema
    Properties:
      RegistryName: !GetAtt SchemaRegistry.RegistryName
      SchemaName: {source}@{detail_type}
      Description: {description}
      Type: {registry_type}
      Content: |
",
        detail_type = event_type.detail_type(),
        source = event_type.source(),
        description = yaml_quote(&format!(
            "eventfork {} event, schema version {}",
            event_type.detail_type(),
            event_type.schema_version()
        )),
        registry_type = format.registry_type(),
    );
    for line in content.lines() {
        let _ = writeln!(out, "        {line}");
    }
}

/// A YAML scalar for arbitrary text: single-quoted, quotes doubled.
fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}: {}", self.name, self.target.name, self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalogue_builds() {
        let rules: Vec<String> = rules().iter().map(Rule::to_string).collect();
        assert_eq!(
            rules,
            [
                r#"analytics -> analytics: {"source":["com.eventfork.users"],"detail-type":["UserSignedUp","UserLoggedIn"]}"#,
                r#"mailing-list -> mailing-list: {"source":["com.eventfork.users"],"detail-type":["UserSignedUp"],"detail":{"marketing_consent":[true]}}"#,
                r#"slack -> slack: {"source":["com.eventfork.users"],"detail-type":["UserSignedUp"]}"#,
            ]
        );
    }

    #[test]
    fn conflicts_that_would_render_a_broken_template() {
        assert_eq!(conflicts(&rules()), Vec::<String>::new());
        let rule = |name: &str, target: &Target| {
            Rule::builder(name, target.clone())
                .event::<UserSignedUp>()
                .build()
                .unwrap()
        };
        let slack = Target::new("slack-2", "posts");
        let other_slack = Target::new("slack2", "posts");
        let described_again = Target::new("slack-2", "posts again");
        let analytics = Target::new("analytics", "counts");
        let its_dead_letters = Target::new("analytics-dead-letter", "counts again");
        let found = conflicts(&[
            rule("a", &slack),
            rule("a", &slack),
            rule("b-2", &other_slack),
            rule("d", &described_again),
            rule("e", &analytics),
            rule("f", &its_dead_letters),
        ]);
        for expected in [
            "target \"slack-2\" is given two descriptions",
            "Resources.ARule would be rendered twice",
            "Resources.Slack2Queue would be rendered twice",
            "Resources.AnalyticsDeadLetterQueue would be rendered twice",
            "Outputs.Slack2QueueUrl would be rendered twice",
            "Outputs.AnalyticsDeadLetterQueueUrl would be rendered twice",
        ] {
            assert!(
                found.iter().any(|c| c == expected),
                "{expected}: {found:#?}"
            );
        }
        // Nothing but duplicates and the description.
        assert!(
            found
                .iter()
                .skip(1)
                .all(|c| c.ends_with(" would be rendered twice")),
            "{found:#?}"
        );
    }

    #[track_caller]
    fn check_error(builder: RuleBuilder, expect: &str) {
        assert_eq!(builder.build().unwrap_err().to_string(), expect);
    }

    #[test]
    fn builder_errors() {
        let target = || Target::new("t", "");
        check_error(
            Rule::builder("r", target())
                .event::<UserSignedUp>()
                .detail::<UserSignedUp>("marketing_concent", [Condition::exact(true)]),
            "rule r: UserSignedUp has no field detail.marketing_concent",
        );
        check_error(
            Rule::builder("r", target())
                .event::<UserLoggedIn>()
                .detail::<UserSignedUp>("plan", [Condition::exact("pro")]),
            "rule r: a condition names UserSignedUp, which the rule does not select",
        );
        check_error(
            Rule::builder("r", target()),
            "rule r: select at least one event type with .event::<T>()",
        );
        check_error(
            Rule::builder("Bad Name", target()).event::<UserSignedUp>(),
            "rule name \"Bad Name\" must be lower-case kebab-case ASCII (a-z, 0-9, -)",
        );
        check_error(
            Rule::builder("r", target())
                .event::<UserSignedUp>()
                .detail::<UserSignedUp>("plan", []),
            "rule r: the condition list for detail.plan is empty",
        );
    }

    #[test]
    fn conditions_render_every_operator() {
        let rule = Rule::builder("every-operator", Target::new("t", ""))
            .event::<UserLoggedIn>()
            .replays(Replays::Ignore)
            .detail::<UserLoggedIn>("ip_address", [Condition::cidr("10.0.0.0/8")])
            .detail::<UserLoggedIn>(
                "user_agent",
                [
                    Condition::prefix("Mozilla"),
                    Condition::suffix("Safari"),
                    Condition::equals_ignore_case("curl"),
                    Condition::wildcard("*bot*"),
                    Condition::anything_but(json!(["a", "b"])),
                ],
            )
            .field(
                &["detail", "attempt"],
                [Condition::numeric(&[(">=", 1.0), ("<", 5.0)])],
            )
            .field(&["resources"], [Condition::exists(false)])
            .field(&["region"], [Condition::raw(json!({"prefix": "eu-"}))])
            .build()
            .unwrap();
        assert_eq!(
            rule.pattern().to_string(),
            r#"{"source":["com.eventfork.users"],"detail-type":["UserLoggedIn"],"replay-name":[{"exists":false}],"detail":{"ip_address":[{"cidr":"10.0.0.0/8"}],"user_agent":[{"prefix":"Mozilla"},{"suffix":"Safari"},{"equals-ignore-case":"curl"},{"wildcard":"*bot*"},{"anything-but":["a","b"]}],"attempt":[{"numeric":[">=",1.0,"<",5.0]}]},"resources":[{"exists":false}],"region":[{"prefix":"eu-"}]}"#
        );
    }

    #[test]
    fn splice_replaces_only_its_own_section() {
        let template = format!(
            "a\n{}b\n{}c\n",
            RESOURCES.with_markers("old\n"),
            OUTPUTS.with_markers("old outputs\n")
        );
        let spliced = RESOURCES.splice(&template, "new\n").unwrap();
        let spliced = OUTPUTS.splice(&spliced, "new outputs\n").unwrap();
        assert_eq!(
            spliced,
            format!(
                "a\n{}b\n{}c\n",
                RESOURCES.with_markers("new\n"),
                OUTPUTS.with_markers("new outputs\n")
            )
        );
        assert_eq!(RESOURCES.find(&spliced), Some("new\n"));
        assert_eq!(OUTPUTS.find(&spliced), Some("new outputs\n"));
        assert_eq!(RESOURCES.splice("no markers", "x"), None);
        assert_eq!(OUTPUTS.find(&RESOURCES.with_markers("x\n")), None);
        let twice = format!("{spliced}{}", RESOURCES.with_markers("again\n"));
        assert_eq!(
            (RESOURCES.occurrences(&twice), OUTPUTS.occurrences(&twice)),
            (2, 1)
        );
        // Quoted in a comment, the marker is no section.
        let quoted = format!("{spliced}  # the section starts at:{}\n", RESOURCES.begin);
        assert_eq!(RESOURCES.occurrences(&quoted), 1);
        assert_eq!(RESOURCES.occurrences(&spliced.replace('\n', "\r\n")), 1);
    }

    #[test]
    fn logical_ids_derive_from_names() {
        let target = Target::new("mailing-list", "");
        assert_eq!(
            [
                target.queue_id(),
                target.dead_letter_queue_id(),
                target.function_id()
            ],
            [
                "MailingListQueue",
                "MailingListDeadLetterQueue",
                "MailingListFunction"
            ]
        );
    }
}
