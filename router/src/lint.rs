//! Schema-aware lint of event rules: the findings a deploy would only reveal in production.
//!
//! Every field a pattern names must exist in the schema of the event types the rule
//! selects; operators must fit the field's type (`numeric` on numbers, `prefix` on
//! strings, `cidr` on IP addresses); EventBridge's limits hold (pattern length, targets per
//! rule, rules and wildcard rules per bus); a rule that can never match is an error; a live
//! rule without a `replay-name` guard whose target is not declared replay-safe is a
//! warning. Template-level checks add the queue settings that SQS event sources need.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
};

use events_schema::EventType;
use serde_json::{Map, Value};

use crate::{
    catalog::{self, Replays, field_schema, resolve_schema},
    template::{RuleResource, Template, TemplateError},
};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth a look; does not fail `rules lint`.
    Warning,
    /// The rule is wrong or will be refused: `rules lint` exits 1.
    Error,
}

/// One finding, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    severity: Severity,
    code: &'static str,
    rule: String,
    location: String,
    message: String,
}

impl Finding {
    /// The severity.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// A short stable code, e.g. `unknown-field`.
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// The rule concerned.
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// Where: a JSON path inside the pattern (`detail.plan`) or a template property path.
    pub fn location(&self) -> &str {
        &self.location
    }
    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{severity}[{}] {}: {}: {}",
            self.code, self.rule, self.location, self.message
        )
    }
}

/// EventBridge's limits that lint checks, with their documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Characters in one event pattern (2,048; 4,096 with a quota increase).
    pub pattern_length: usize,
    /// Targets of one rule.
    pub targets_per_rule: usize,
    /// Rules on one event bus.
    pub rules_per_bus: usize,
    /// Rules using `wildcard` on one event bus.
    pub wildcard_rules_per_bus: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            pattern_length: 2048,
            targets_per_rule: 5,
            rules_per_bus: 300,
            wildcard_rules_per_bus: 30,
        }
    }
}

/// A rule as lint sees it, from the catalogue or from a template.
#[derive(Debug, Clone, PartialEq)]
pub struct LintRule {
    name: String,
    /// Prefix of locations: the template property path of the pattern, or empty.
    pattern_location: String,
    pattern: Value,
    bus: String,
    targets: Vec<String>,
    delivers_replays: bool,
    enabled: bool,
}

impl LintRule {
    /// A rule with one target, on the default bus.
    pub fn new(name: impl Into<String>, pattern: Value) -> LintRule {
        LintRule {
            name: name.into(),
            pattern_location: String::new(),
            pattern,
            bus: "default".to_owned(),
            targets: Vec::new(),
            delivers_replays: false,
            enabled: true,
        }
    }

    /// Sets the targets' identities (queues), for the limits and overlap checks.
    pub fn targets(mut self, targets: Vec<String>) -> LintRule {
        self.targets = targets;
        self
    }

    /// Declares that the targets are idempotent, so replays may reach them.
    pub fn delivers_replays(mut self, delivers: bool) -> LintRule {
        self.delivers_replays = delivers;
        self
    }

    /// Sets the bus the rule is on.
    pub fn bus(mut self, bus: impl Into<String>) -> LintRule {
        self.bus = bus.into();
        self
    }

    /// Sets whether the rule is enabled (a disabled one delivers nothing).
    pub fn enabled(mut self, enabled: bool) -> LintRule {
        self.enabled = enabled;
        self
    }
}

/// The rules of eventfork's catalogue, ready for lint.
pub fn catalogue_rules() -> Vec<LintRule> {
    catalog::rules()
        .into_iter()
        .map(|rule| {
            LintRule::new(rule.name(), rule.pattern().clone())
                .targets(vec![rule.target().queue_id()])
                .delivers_replays(rule.replays() == Replays::Deliver)
                .bus("EventBus")
        })
        .collect()
}

/// The rules of a template, ready for lint; a rule declares replays safe with
/// `Metadata: {eventfork: {replays: deliver}}`.
pub fn template_rules(template: &Template) -> Vec<LintRule> {
    template.rules().iter().map(lint_rule_of).collect()
}

/// The rules of a template's text as `rules match` reads them: its `AWS::Events::Rule`
/// resources with their targets, and the rules SAM makes for its functions' and state
/// machines' `EventBridgeRule` (or `CloudWatchEvent`) events (named `<resource><event>`,
/// without targets here).
pub fn template_text_rules(
    template: &Template,
    text: &str,
) -> Result<Vec<LintRule>, TemplateError> {
    let mut rules = template_rules(template);
    let mut names: HashSet<String> = rules.iter().map(|r| r.name.clone()).collect();
    for rule in Template::parse_rules(text)? {
        if names.insert(rule.logical_id().to_owned()) {
            rules.push(lint_rule_of(&rule));
        }
    }
    Ok(rules)
}

fn lint_rule_of(rule: &RuleResource) -> LintRule {
    LintRule {
        name: rule.logical_id().to_owned(),
        pattern_location: rule.pattern_location().to_owned(),
        pattern: rule.pattern().clone(),
        bus: rule.event_bus().unwrap_or("default").to_owned(),
        targets: rule
            .targets()
            .iter()
            .map(|t| t.queue().unwrap_or(t.id()).to_owned())
            .collect(),
        delivers_replays: rule.delivers_replays(),
        enabled: rule.is_enabled(),
    }
}

/// Lints `rules` against the event catalogue and `limits`. Findings come in rule order,
/// errors and warnings mixed, bus-wide findings last.
pub fn lint(rules: &[LintRule], limits: &Limits) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in rules {
        lint_rule(rule, limits, &mut findings);
    }
    overlaps(rules, &mut findings);
    let mut per_bus: BTreeMap<&str, Vec<&LintRule>> = BTreeMap::new();
    for rule in rules {
        per_bus.entry(&rule.bus).or_default().push(rule);
    }
    for (bus, bus_rules) in per_bus {
        if bus_rules.len() > limits.rules_per_bus {
            let rule = bus_rules[limits.rules_per_bus];
            findings.push(Finding {
                severity: Severity::Error,
                code: "too-many-rules",
                rule: rule.name.clone(),
                location: format!("bus {bus}"),
                message: format!(
                    "bus {bus} has {} rules; the limit is {} rules per bus",
                    bus_rules.len(),
                    limits.rules_per_bus
                ),
            });
        }
        let wildcard_rules: Vec<&&LintRule> = bus_rules
            .iter()
            .filter(|r| uses_operator(&r.pattern, "wildcard"))
            .collect();
        if wildcard_rules.len() > limits.wildcard_rules_per_bus {
            let rule = wildcard_rules[limits.wildcard_rules_per_bus];
            findings.push(Finding {
                severity: Severity::Error,
                code: "too-many-wildcard-rules",
                rule: rule.name.clone(),
                location: format!("bus {bus}"),
                message: format!(
                    "bus {bus} has {} rules using wildcard; the limit is {} per bus",
                    wildcard_rules.len(),
                    limits.wildcard_rules_per_bus
                ),
            });
        }
    }
    findings
}

/// Warns about two rules that share a target and can both match one event: that event
/// reaches the target twice. The check is by witness: it builds events from the catalogue's
/// schemas and the values the two patterns name, and reports a pair only when one such
/// event matches both (its values fit the fields' types and enums, though not always their
/// formats: an email without its local part; a contrived overlap may go unseen).
///
/// Only pairs that share a bus and a target are looked at, and only for the catalogue's
/// event types that both rules' `source` and `detail-type` admit; each target's rules
/// are compiled once. A template of hundreds of rules on one target still makes many pairs:
/// after [`MAX_OVERLAP_PAIRS`] the check stops, saying so.
fn overlaps(rules: &[LintRule], findings: &mut Vec<Finding>) {
    overlaps_up_to(rules, findings, MAX_OVERLAP_PAIRS);
}

fn overlaps_up_to(rules: &[LintRule], findings: &mut Vec<Finding>, max_pairs: usize) {
    let catalogue = events_schema::catalogue();
    // Per rule: its pattern, and the catalogue types its envelope fields admit (a bit each).
    let parsed: Vec<Option<(crate::pattern::Pattern, u64)>> = rules
        .iter()
        .map(|rule| {
            let types = admitted_types(&rule.pattern, catalogue);
            let live = rule.enabled && types != 0;
            let pattern = crate::pattern::Pattern::from_value(&rule.pattern).ok()?;
            live.then_some((pattern, types))
        })
        .collect();
    let exact: Vec<ExactFields<'_>> = rules.iter().map(|r| exact_fields(&r.pattern)).collect();
    // Rules on two buses never see one event, and a disabled rule delivers nothing.
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        if parsed[index].is_none() {
            continue;
        }
        let mut seen = HashSet::new();
        for target in rule.targets.iter().filter(|t| seen.insert(t.as_str())) {
            groups
                .entry((rule.bus.as_str(), target.as_str()))
                .or_default()
                .push(index);
        }
    }
    // One matcher per target that two rules share; each rule's groups, in order.
    let mut matchers = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut groups_of: Vec<Vec<usize>> = vec![Vec::new(); rules.len()];
    for group in groups.values().filter(|group| group.len() > 1) {
        // A rule the engine refuses (over its limits) leaves the group, as it left its
        // pairs when each pair was compiled apart; the others are still checked.
        let mut group = group.clone();
        let matcher = loop {
            if group.len() < 2 {
                break None;
            }
            let mut builder = crate::pattern::Matcher::builder();
            for &index in &group {
                if let Some((pattern, _)) = &parsed[index] {
                    builder.add(index.to_string().into(), pattern.clone());
                }
            }
            match builder.build() {
                Ok(matcher) => break Some(matcher),
                Err(error) => {
                    let before = group.len();
                    group.retain(|index| index.to_string() != error.rule());
                    if group.len() == before {
                        break None;
                    }
                }
            }
        };
        let Some(matcher) = matcher else {
            continue;
        };
        for &index in &group {
            groups_of[index].push(matchers.len());
        }
        matchers.push(matcher);
        members.push(group);
    }
    // The pairs in the rules' order, each once with a group it shares, that a witness
    // could fit: a witness gives each field one value, and no value of two disjoint lists
    // fits both.
    let candidates = (0..rules.len()).flat_map(|i| {
        let mut partners: BTreeMap<usize, usize> = BTreeMap::new();
        for &m in &groups_of[i] {
            for &j in members[m].iter().filter(|&&j| j > i) {
                partners.entry(j).or_insert(m);
            }
        }
        let (parsed, exact) = (&parsed, &exact);
        partners.into_iter().filter_map(move |(j, m)| {
            let types = parsed[i].as_ref()?.1 & parsed[j].as_ref()?.1;
            (types != 0 && !disjoint(&exact[i], &exact[j])).then_some((i, j, m, types))
        })
    });
    let mut candidates = candidates.enumerate();
    for (n_checked, (i, j, m, types)) in candidates.by_ref() {
        let (first, second) = (&rules[i], &rules[j]);
        if n_checked == max_pairs {
            findings.push(Finding {
                severity: Severity::Warning,
                code: "overlap-unchecked",
                rule: first.name.clone(),
                location: format!("bus {}", first.bus),
                message: format!(
                    "the overlap check stopped after {max_pairs} pairs of rules that share a target and may overlap; {} more such pairs, from this rule and rule {} on, were not checked",
                    1 + candidates.count(),
                    second.name
                ),
            });
            break;
        }
        let (first_id, second_id) = (i.to_string(), j.to_string());
        let witness = witnesses(&first.pattern, &second.pattern, types).find(|event| {
            matchers[m]
                .matches(event.to_string().as_bytes())
                .is_ok_and(|hits| {
                    hits.iter().any(|id| id.as_str() == first_id)
                        && hits.iter().any(|id| id.as_str() == second_id)
                })
        });
        let Some(event) = witness else {
            continue;
        };
        let shared = first
            .targets
            .iter()
            .find(|t| second.targets.contains(t))
            .map_or("", String::as_str);
        findings.push(Finding {
            severity: Severity::Warning,
            code: "overlap",
            rule: second.name.clone(),
            location: if second.pattern_location.is_empty() {
                "pattern".to_owned()
            } else {
                second.pattern_location.clone()
            },
            message: format!(
                "overlaps rule {} on target {shared}: an event such as {} is delivered to it twice",
                first.name,
                witness_summary(&event)
            ),
        });
    }
}

/// A pattern's fields (outside `$or`) that list exact strings only, with those strings.
type ExactFields<'a> = BTreeMap<Vec<&'a str>, Vec<&'a str>>;

fn exact_fields(pattern: &Value) -> ExactFields<'_> {
    fn walk<'a>(
        object: &'a Map<String, Value>,
        path: &mut Vec<&'a str>,
        out: &mut ExactFields<'a>,
    ) {
        for (key, value) in object {
            if key == "$or" {
                continue;
            }
            path.push(key);
            match value {
                Value::Object(inner) => walk(inner, path, out),
                Value::Array(items) => {
                    if let Some(strings) =
                        items.iter().map(Value::as_str).collect::<Option<Vec<_>>>()
                    {
                        out.insert(path.clone(), strings);
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    let mut out = BTreeMap::new();
    if let Some(object) = pattern.as_object() {
        walk(object, &mut Vec::new(), &mut out);
    }
    out
}

/// Whether two patterns list exact strings for one field with none in common.
fn disjoint(first: &ExactFields<'_>, second: &ExactFields<'_>) -> bool {
    first.iter().any(|(path, values)| {
        second
            .get(path)
            .is_some_and(|others| !values.iter().any(|v| others.contains(v)))
    })
}

/// How many pairs of rules on one target the overlap check tries at most: each costs up
/// to 256 witness events, about half a millisecond in all.
const MAX_OVERLAP_PAIRS: usize = 20_000;

/// The catalogue's event types (bit `i` for the `i`th) whose source and detail type
/// `pattern` admits by its top-level exact `source` and `detail-type` lists; a field given
/// any other way (an operator, under `$or`) admits every type.
fn admitted_types(pattern: &Value, catalogue: &[EventType]) -> u64 {
    // A catalogue past 64 types is not filtered: every type is tried.
    if catalogue.len() > 64 {
        return u64::MAX;
    }
    let exact = |field: &str| -> Option<Vec<&str>> {
        pattern
            .get(field)?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    };
    let (sources, detail_types) = (exact("source"), exact("detail-type"));
    catalogue
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, t)| {
            sources.as_ref().is_none_or(|s| s.contains(&t.source()))
                && detail_types
                    .as_ref()
                    .is_none_or(|d| d.contains(&t.detail_type()))
        })
        .fold(0, |types, (i, _)| types | 1 << i)
}

/// A witness as the overlap warning shows it: its detail, and the envelope fields that
/// differ from the sample's.
fn witness_summary(event: &Value) -> String {
    let sample = ["123456789012", "2026-01-01T00:00:00Z", "us-east-1"];
    let envelope: Vec<String> = ["account", "time", "region", "resources"]
        .iter()
        .filter(|&&name| match &event[name] {
            Value::String(text) => !sample.contains(&text.as_str()),
            Value::Array(items) => !items.is_empty(),
            _ => false,
        })
        .map(|&name| format!("{name} {}", event[name]))
        .collect();
    if envelope.is_empty() {
        event["detail"].to_string()
    } else {
        format!("{} ({})", event["detail"], envelope.join(", "))
    }
}

/// Candidate events for the overlap check: for each catalogue type in `types` (bit `i` for
/// the `i`th; every type for `u64::MAX`), a sample event with
/// every combination (at most 256) of the values the two patterns name or imply for its
/// fields, envelope fields included (a prefix implies itself, a wildcard its text without
/// stars, a numeric bound the numbers around it, a CIDR block its first address), and the
/// concatenations of two strings named for one field; a field with an enum takes each of its
/// values, and a value of another type than the field's is dropped.
fn witnesses<'a>(
    first: &'a Value,
    second: &'a Value,
    types: u64,
) -> impl Iterator<Item = Value> + 'a {
    events_schema::catalogue()
        .iter()
        .enumerate()
        .filter(move |(i, _)| types == u64::MAX || (*i < 64 && types & 1 << i != 0))
        .flat_map(move |(_, event_type)| {
            let schema = event_type.detail_schema();
            let mut event = serde_json::json!({
                "version": "0", "id": "lint", "detail-type": event_type.detail_type(),
                "source": event_type.source(), "account": "123456789012",
                "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
                "detail": sample(&schema, &schema),
            });
            let mut choices: BTreeMap<Vec<String>, Vec<Value>> = BTreeMap::new();
            // What type a detail field holds: a witness no event can be is a false alarm.
            // (A field with an enum is given its values below, and only them.)
            let fits = |path: &[String], value: &Value| -> bool {
                let Some(("detail", field)) = path.split_first().map(|(f, r)| (f.as_str(), r))
                else {
                    return value.is_string();
                };
                match field_type(&schema, field) {
                    Some(FieldType::String { .. }) => value.is_string(),
                    Some(FieldType::Number) => value.is_number(),
                    Some(FieldType::Boolean) => value.is_boolean(),
                    Some(FieldType::Object) => false,
                    Some(FieldType::Array | FieldType::Unknown) | None => true,
                }
            };
            for pattern in [first, second] {
                if let Some(object) = pattern.as_object() {
                    for branch in or_branches(object) {
                        for (path, conditions) in branch {
                            // The event's type is this iteration's; witnesses are live
                            // events, which have no replay-name.
                            let fixed = ["source", "detail-type", "replay-name"];
                            if path.len() == 1 && fixed.contains(&path[0].as_str()) {
                                continue;
                            }
                            let values = choices.entry(path).or_default();
                            for value in conditions.iter().flat_map(implied_values) {
                                if !values.contains(&value) {
                                    values.push(value);
                                }
                            }
                        }
                    }
                }
            }
            // A string meeting two conditions at once (a prefix and a suffix, a prefix and
            // a wildcard's tail) is often one value followed by the other. A field with an
            // enum is tried with every value of it instead.
            for (path, values) in choices.iter_mut() {
                if let Some(FieldType::String {
                    allowed: Some(allowed),
                    ..
                }) = path
                    .split_first()
                    .filter(|(first, _)| *first == "detail")
                    .and_then(|(_, field)| field_type(&schema, field))
                {
                    *values = allowed.into_iter().map(Value::String).collect();
                    continue;
                }
                let strings: Vec<String> = values
                    .iter()
                    .filter_map(Value::as_str)
                    .take(8)
                    .map(str::to_owned)
                    .collect();
                for first in &strings {
                    for second in &strings {
                        let joined = Value::String(format!("{first}{second}"));
                        if first != second && !values.contains(&joined) {
                            values.push(joined);
                        }
                    }
                }
            }
            let choices: Vec<(Vec<String>, Vec<Value>)> = choices
                .into_iter()
                .map(|(path, values)| {
                    let values = values.into_iter().filter(|v| fits(&path, v)).collect();
                    (path, values)
                })
                .filter(|(_, v): &(Vec<String>, Vec<Value>)| !v.is_empty())
                .collect();
            let n_combinations = choices
                .iter()
                .map(|(_, v)| v.len())
                .try_fold(1usize, usize::checked_mul)
                .unwrap_or(usize::MAX)
                .min(256);
            (0..n_combinations).map(move |mut combination| {
                for (path, values) in &choices {
                    let value = values[combination % values.len()].clone();
                    // `resources` is an array of strings, matched element by element.
                    let value = if *path == ["resources"] {
                        Value::Array(vec![value])
                    } else {
                        value
                    };
                    set_path(&mut event, path, value);
                    combination /= values.len();
                }
                event.clone()
            })
        })
}

/// Values that meet a condition, for witnesses: none for `anything-but` and `exists`,
/// whose events the sample already covers.
fn implied_values(condition: &Value) -> Vec<Value> {
    let Value::Object(operator) = condition else {
        return vec![condition.clone()];
    };
    let Some((name, operand)) = operator.iter().next() else {
        return Vec::new();
    };
    let text = match operand {
        Value::String(text) => Some(text.as_str()),
        // prefix/suffix with equals-ignore-case
        Value::Object(inner) => inner.get("equals-ignore-case").and_then(Value::as_str),
        _ => None,
    };
    match (name.as_str(), text) {
        ("prefix" | "suffix" | "equals-ignore-case", Some(text)) => vec![text.into()],
        ("wildcard", Some(text)) => {
            let mut plain = String::new();
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => plain.extend(chars.next()),
                    '*' => {}
                    c => plain.push(c),
                }
            }
            vec![plain.into()]
        }
        ("cidr", Some(block)) => block
            .split_once('/')
            .map(|(address, _)| vec![address.into()])
            .unwrap_or_default(),
        ("numeric", _) => operand
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .flat_map(|n| [n - 1.0, n, n + 1.0])
            .filter_map(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .collect(),
        _ => Vec::new(),
    }
}

fn set_path(target: &mut Value, path: &[String], value: Value) {
    match path {
        [] => *target = value,
        [first, rest @ ..] => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(object) = target {
                set_path(
                    object.entry(first.clone()).or_insert(Value::Null),
                    rest,
                    value,
                );
            }
        }
    }
}

/// A value that fits `schema`: the first enum value, `true`, 1, a well-formed string.
fn sample(root: &Value, schema: &Value) -> Value {
    let schema = resolve_schema(root, schema);
    match classify(root, schema) {
        FieldType::String {
            allowed: Some(allowed),
            ..
        } => allowed.first().cloned().map_or(Value::Null, Value::String),
        FieldType::String { ip: true, .. } => "192.0.2.1".into(),
        FieldType::String { .. } => match schema.get("format").and_then(Value::as_str) {
            Some("email") => "user@example.com".into(),
            Some("date-time") => "2026-01-01T00:00:00Z".into(),
            _ => "sample".into(),
        },
        FieldType::Number => 1.into(),
        FieldType::Boolean => true.into(),
        FieldType::Array => Value::Array(Vec::new()),
        FieldType::Object | FieldType::Unknown => {
            let mut object = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    object.insert(name.clone(), sample(root, property));
                }
            }
            Value::Object(object)
        }
    }
}

/// Template-level checks of the queues the rules deliver to: a dead-letter queue that keeps
/// messages longer than its source, a queue policy naming each queue the rule sends to, a
/// visibility timeout of at least six times the consuming function's timeout (and of at
/// least the timeout plus the batching window), reserved concurrency no lower than the
/// event source's maximum, partial batch responses, and a retention long enough for a
/// record that fails every receive to reach the dead-letter queue.
pub fn lint_template(template: &Template) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in template.rules() {
        for target in rule.targets() {
            let Some(queue_id) = target.queue() else {
                continue;
            };
            let location = format!("Resources.{queue_id}");
            let mut push = |severity, code, message: String| {
                findings.push(Finding {
                    severity,
                    code,
                    rule: rule.logical_id().to_owned(),
                    location: location.clone(),
                    message,
                });
            };
            let Some(queue) = template.queue(queue_id) else {
                push(
                    Severity::Error,
                    "unknown-queue",
                    format!(
                        "target {} names {queue_id}, which is not a queue of this template",
                        target.id()
                    ),
                );
                continue;
            };
            match queue.redrive() {
                None => push(
                    Severity::Error,
                    "no-dead-letter-queue",
                    format!(
                        "{queue_id} has no RedrivePolicy: a poison message is retried until it expires"
                    ),
                ),
                Some(redrive) => {
                    let dlq_id = redrive.dead_letter_queue();
                    // SQS keeps a dead letter's first enqueue time: a dead-letter queue that
                    // keeps messages no longer than its source drops them on arrival.
                    if let Some(dlq) = template.queue(dlq_id)
                        && dlq.message_retention_seconds() <= queue.message_retention_seconds()
                    {
                        push(
                            Severity::Warning,
                            "dead-letter-retention",
                            format!(
                                "{dlq_id} keeps messages {} s, no longer than {queue_id} ({} s): a message's age counts from its first send, so dead letters expire as they arrive or soon after",
                                dlq.message_retention_seconds(),
                                queue.message_retention_seconds()
                            ),
                        );
                    }
                }
            }
            // EventBridge sends to a queue (and to the rule's dead-letter queue) only as a
            // queue policy allows; without one, every delivery fails.
            let mut policy_queues = vec![queue_id];
            policy_queues.extend(target.dead_letter_queue());
            for needs_policy in policy_queues {
                if template.queue(needs_policy).is_some()
                    && !template.has_queue_policy(needs_policy)
                {
                    push(
                        Severity::Error,
                        "no-queue-policy",
                        format!(
                            "no AWS::SQS::QueuePolicy names {needs_policy}: EventBridge may not send to it, and every delivery fails"
                        ),
                    );
                }
            }
            if target.dead_letter_queue().is_none() {
                push(
                    Severity::Warning,
                    "no-rule-dead-letter-queue",
                    format!(
                        "target {} has no DeadLetterConfig: events EventBridge cannot deliver are dropped",
                        target.id()
                    ),
                );
            }
            match template.consumer_of(queue_id) {
                None => push(
                    Severity::Warning,
                    "no-consumer",
                    format!("no function in this template consumes {queue_id}"),
                ),
                Some((function, source)) => {
                    let (visibility, timeout) = (
                        queue.visibility_timeout_seconds(),
                        function.timeout_seconds(),
                    );
                    let window = source.batching_window_seconds();
                    // The Lambda docs' six times the timeout; and a message received as a
                    // batching window opens waits out the window before the function starts.
                    let (six, held) = (timeout * 6, timeout + window);
                    if visibility < six.max(held) {
                        let needed = if held > six {
                            format!(
                                "at least the timeout of {} ({timeout} s) + its MaximumBatchingWindowInSeconds ({window} s) = {held} s is needed so that a message held through the window is not received again",
                                function.logical_id()
                            )
                        } else {
                            format!(
                                "at least 6 x the timeout of {} ({timeout} s) = {six} s is needed so that a batch still running is not received again",
                                function.logical_id()
                            )
                        };
                        push(
                            Severity::Error,
                            "visibility-timeout",
                            format!("VisibilityTimeout is {visibility} s; {needed}"),
                        );
                    }
                    if let (Some(reserved), Some(maximum)) = (
                        function.reserved_concurrency(),
                        source.maximum_concurrency(),
                    ) && reserved < maximum
                    {
                        push(
                            Severity::Warning,
                            "reserved-below-maximum-concurrency",
                            format!(
                                "{} reserves {reserved} concurrent executions, fewer than its event source's MaximumConcurrency ({maximum}): invocations are throttled, and throttled batches count receives toward the dead-letter queue",
                                function.logical_id()
                            ),
                        );
                    }
                    if let Some(redrive) = queue.redrive()
                        && let Some(message) = retries_outlive_retention(
                            queue_id,
                            queue.message_retention_seconds(),
                            queue.visibility_timeout_seconds(),
                            redrive,
                            function,
                            window,
                        )
                    {
                        push(Severity::Error, "retries-outlive-retention", message);
                    }
                    if !source.report_batch_item_failures() {
                        push(
                            Severity::Error,
                            "no-partial-batch-response",
                            format!(
                                "the SQS event source of {} lacks FunctionResponseTypes: [ReportBatchItemFailures]: one bad record retries its whole batch",
                                function.logical_id()
                            ),
                        );
                    }
                }
            }
        }
    }
    findings
}

/// eventfork's handlers' retry backoff when their environment does not set it
/// (`targets::Backoff::default()`): 30 s doubling to 15 min.
pub(crate) const DEFAULT_RETRY_BACKOFF_SECONDS: (u32, u32) = (30, 900);

/// Why a record that fails every receive could expire in `queue_id` before it reaches its
/// dead-letter queue, if it could: the longest it can take to be received
/// `maxReceiveCount` times exceeds the queue's retention, so it would vanish with no dead
/// letter and no dead-letter alarm. Each receive costs the batching window and the
/// function's timeout at most, then the wait before the next: eventfork's handlers hold a
/// failed record back for their backoff (its jittered half taken at its longest), and at
/// least until the visibility timeout (a record that failed without a delay); any other
/// function's record comes back after the visibility timeout. (A service's `Retry-After`
/// of up to an hour can lengthen a delay further; it is left out, as an outage that long
/// at every receive is not the common case the backoff is tuned for.)
fn retries_outlive_retention(
    queue_id: &str,
    retention: u32,
    visibility: u32,
    redrive: &crate::template::Redrive,
    function: &crate::template::FunctionResource,
    window: u32,
) -> Option<String> {
    let receives = u64::from(redrive.max_receive_count());
    let (base, max) = function.retry_backoff_seconds();
    let handler = base.is_some()
        || max.is_some()
        || catalog::targets()
            .iter()
            .any(|target| target.name() == function.binary());
    let (total, how, lower) = if handler {
        let base = u64::from(base.unwrap_or(DEFAULT_RETRY_BACKOFF_SECONDS.0));
        let max = u64::from(max.unwrap_or(DEFAULT_RETRY_BACKOFF_SECONDS.1)).max(base);
        let per_receive = u64::from(window) + u64::from(function.timeout_seconds());
        // A record that fails without a delay (a panic, a misrouted event) comes back
        // after the visibility timeout, counted from its receive.
        let total: u64 = (0..receives)
            .map(|n| {
                let delay = base.saturating_mul(1 << n.min(40)).min(max);
                (per_receive + delay).max(u64::from(visibility))
            })
            .sum();
        (
            total,
            format!(
                "its backoff of {base} s doubling to {max} s after each, plus up to {per_receive} s of batching window and timeout per receive, and at least the visibility timeout ({visibility} s)"
            ),
            format!(
                "maxReceiveCount or {}'s RETRY_BACKOFF_MAX_SECONDS",
                function.logical_id()
            ),
        )
    } else {
        (
            receives * u64::from(visibility),
            format!("a visibility timeout of {visibility} s each"),
            "maxReceiveCount".to_owned(),
        )
    };
    (total >= u64::from(retention)).then(|| {
        format!(
            "{queue_id} keeps messages {retention} s, but a record that fails every receive can take {total} s ({}) to be received {receives} times and reach {}, with {how}: it would expire on the way, with no dead letter and no alarm; raise MessageRetentionPeriod, or lower {lower}",
            hours(total),
            redrive.dead_letter_queue(),
        )
    })
}

/// `seconds` as hours and minutes, e.g. `6 h 31 min`.
fn hours(seconds: u64) -> String {
    let minutes = seconds.div_ceil(60);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn lint_rule(rule: &LintRule, limits: &Limits, findings: &mut Vec<Finding>) {
    let at = |path: &str| -> String {
        match (rule.pattern_location.is_empty(), path.is_empty()) {
            (true, true) => "pattern".to_owned(),
            (true, false) => path.to_owned(),
            (false, true) => rule.pattern_location.clone(),
            (false, false) => format!("{}.{path}", rule.pattern_location),
        }
    };
    let mut push = |severity, code, path: &str, message: String| {
        findings.push(Finding {
            severity,
            code,
            rule: rule.name.clone(),
            location: at(path),
            message,
        });
    };

    let text = rule.pattern.to_string();
    let length = text.chars().count();
    if length > limits.pattern_length {
        push(
            Severity::Error,
            "pattern-too-long",
            "",
            format!(
                "the pattern is {length} characters long; the limit is {}",
                limits.pattern_length
            ),
        );
    }
    if rule.targets.len() > limits.targets_per_rule {
        push(
            Severity::Error,
            "too-many-targets",
            "",
            format!(
                "the rule has {} targets; the limit is {} per rule",
                rule.targets.len(),
                limits.targets_per_rule
            ),
        );
    }
    let parsed = match crate::pattern::Pattern::from_value(&rule.pattern) {
        Ok(parsed) => parsed,
        Err(error) => {
            push(Severity::Error, "invalid-pattern", "", error.to_string());
            return;
        }
    };
    // The engine's limits, as EventBridge applies them when the rule is created: `$or`
    // combinations, wildcard complexity, nesting (the length was checked above).
    let mut builder = crate::pattern::Matcher::builder();
    builder.max_pattern_chars(usize::MAX);
    builder.add(crate::pattern::RuleId::from(rule.name.as_str()), parsed);
    if let Err(error) = builder.build() {
        push(Severity::Error, "pattern-limit", "", error.to_string());
        return;
    }
    let Some(pattern) = rule.pattern.as_object() else {
        return;
    };
    if or_branches(pattern).iter().all(|branch| {
        branch.iter().any(|(path, conditions)| {
            *path == ["replay-name"] && conditions.iter().all(is_scalar_not_string)
        })
    }) {
        push(
            Severity::Error,
            "never-matches",
            "replay-name",
            "replay-name is absent on live events and a string on replayed ones: null, numbers and booleans match neither; to skip replays, write [{\"exists\": false}]".to_owned(),
        );
        return;
    }
    if !rule.delivers_replays && !excludes_replays(pattern) {
        push(
            Severity::Warning,
            "replay-unguarded",
            "",
            "the rule also fires on archive replays; add \"replay-name\": [{\"exists\": false}], or declare its targets idempotent (Metadata: eventfork: replays: deliver)".to_owned(),
        );
    }

    // Each `$or` alternative is checked on its own. What makes one alternative never match
    // is an error only when every alternative is dead; beside a live one it is a warning.
    let branches = or_branches(pattern);
    let several = branches.len() > 1;
    let reports: Vec<Vec<Report>> = branches
        .iter()
        .map(|branch| {
            let mut found = Vec::new();
            check_branch(branch, several, &mut |severity, code, path, message| {
                found.push(Report {
                    severity,
                    code,
                    path: path.to_owned(),
                    message,
                })
            });
            found
        })
        .collect();
    let is_dead = |found: &[Report]| found.iter().any(Report::kills_branch);
    let any_alive = reports.iter().any(|found| !is_dead(found));
    let mut seen = HashSet::new();
    for found in reports {
        let dead = is_dead(&found);
        for mut report in found {
            if dead && any_alive && report.kills_branch() {
                report.severity = Severity::Warning;
                report
                    .message
                    .push_str("; this $or alternative never matches");
            }
            if seen.insert((
                report.severity,
                report.code,
                report.path.clone(),
                report.message.clone(),
            )) {
                push(report.severity, report.code, &report.path, report.message);
            }
        }
    }
}

/// A finding of one `$or` alternative, before the alternatives are weighed together.
struct Report {
    severity: Severity,
    code: &'static str,
    path: String,
    message: String,
}

impl Report {
    /// Whether the finding means that its alternative matches no event (an
    /// `operator-type` error is one only when no condition of its field can match).
    fn kills_branch(&self) -> bool {
        self.severity == Severity::Error
            && matches!(
                self.code,
                "never-matches" | "unknown-field" | "object-field" | "operator-type"
            )
    }
}

type Push<'a> = dyn FnMut(Severity, &'static str, &str, String) + 'a;

/// One `$or`-free alternative of a pattern: its leaves by path.
type Branch = Vec<(Vec<String>, Vec<Value>)>;

/// Expands `$or` into alternatives (each a list of leaves).
fn or_branches(pattern: &Map<String, Value>) -> Vec<Branch> {
    let mut branches: Vec<Branch> = vec![Vec::new()];
    expand(pattern, &[], &mut branches);
    branches
}

fn expand(object: &Map<String, Value>, prefix: &[String], branches: &mut Vec<Branch>) {
    for (key, value) in object {
        if key == "$or" {
            let Some(alternatives) = value.as_array() else {
                continue;
            };
            let mut next = Vec::new();
            for branch in branches.iter() {
                for alternative in alternatives.iter().filter_map(Value::as_object) {
                    let mut expanded = vec![branch.clone()];
                    expand(alternative, prefix, &mut expanded);
                    next.extend(expanded);
                }
            }
            // The catalogue caps $or at 1000 combinations; lint never needs more.
            next.truncate(1000);
            *branches = next;
            continue;
        }
        let mut path = prefix.to_vec();
        path.extend(key.split('.').map(str::to_owned));
        match value {
            Value::Object(child) => expand(child, &path, branches),
            Value::Array(conditions) => {
                for branch in branches.iter_mut() {
                    branch.push((path.clone(), conditions.clone()));
                }
            }
            _ => {}
        }
    }
}

/// Whether no replayed event can match: in every `$or` alternative, `replay-name` (a
/// string on every replay) has only conditions no string meets: `{"exists": false}`, or a
/// literal null, number or boolean. `[{"exists": true}]` or a prefix selects replays.
fn is_scalar_not_string(condition: &Value) -> bool {
    matches!(condition, Value::Null | Value::Bool(_) | Value::Number(_))
}

fn excludes_replays(pattern: &Map<String, Value>) -> bool {
    // What no replayed event (its replay-name a string) matches.
    let no_string_matches = |condition: &Value| match condition {
        Value::Object(operator) => {
            operator.len() == 1 && operator.get("exists") == Some(&Value::Bool(false))
        }
        other => is_scalar_not_string(other),
    };
    or_branches(pattern).iter().all(|branch| {
        branch.iter().any(|(path, conditions)| {
            *path == ["replay-name"] && conditions.iter().all(no_string_matches)
        })
    })
}

fn uses_operator(value: &Value, operator: &str) -> bool {
    match value {
        Value::Object(object) => object
            .iter()
            .any(|(key, item)| key == operator || uses_operator(item, operator)),
        Value::Array(items) => items.iter().any(|item| uses_operator(item, operator)),
        _ => false,
    }
}

/// The type of a field, as far as lint needs it.
#[derive(Debug, Clone, PartialEq)]
enum FieldType {
    String {
        ip: bool,
        allowed: Option<Vec<String>>,
    },
    Number,
    Boolean,
    Object,
    Array,
    Unknown,
}

impl FieldType {
    fn name(&self) -> &'static str {
        match self {
            FieldType::String { ip: true, .. } => "an IP address string",
            FieldType::String { .. } => "a string",
            FieldType::Number => "a number",
            FieldType::Boolean => "a boolean",
            FieldType::Object => "an object",
            FieldType::Array => "an array",
            FieldType::Unknown => "of unknown type",
        }
    }
}

const ENVELOPE_FIELDS: [&str; 9] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "replay-name",
];

fn check_branch(branch: &Branch, several: bool, push: &mut Push<'_>) {
    // A field may be named more than once in one alternative (at the top and inside `$or`,
    // or as a dotted key beside the nested one): every mention must hold.
    let leaves = |name: &str| -> Vec<&Vec<Value>> {
        branch
            .iter()
            .filter(|(path, _)| path.len() == 1 && path[0] == name)
            .map(|(_, conditions)| conditions)
            .collect()
    };
    let sources = leaves("source");
    let detail_types = leaves("detail-type");
    let selected = selected_types(&sources, &detail_types);
    let ours = events_schema::catalogue();
    let names_our_source = sources.iter().any(|conditions| {
        conditions
            .iter()
            .any(|c| ours.iter().any(|t| c.as_str() == Some(t.source())))
    });
    // A source condition that admits our source without naming it (a prefix, a wildcard)
    // may be meant for neighbours of ours as well.
    let admits_our_source = !sources.is_empty()
        && ours
            .iter()
            .any(|t| sources.iter().all(|c| string_may_match(c, t.source())));
    if selected.is_empty() {
        if (names_our_source || admits_our_source || sources.is_empty()) && !detail_types.is_empty()
        {
            let known: Vec<&str> = ours.iter().map(EventType::detail_type).collect();
            let conditions: Vec<String> = detail_types
                .iter()
                .map(|c| Value::Array(c.to_vec()).to_string())
                .collect();
            // Without a source condition the rule also sees other producers' events, which
            // may have such a detail-type (`Scheduled Event`, CloudTrail's): only a typo is
            // likely, not certain.
            push(
                if names_our_source {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                "never-matches",
                "detail-type",
                format!(
                    "no event type of the catalogue has a detail-type matching {}; known: {}{}",
                    conditions.join(" and "),
                    known.join(", "),
                    if names_our_source {
                        ""
                    } else if admits_our_source {
                        " (other sources the source condition admits may have it)"
                    } else {
                        " (other sources' events may match: name the source to check it)"
                    }
                ),
            );
        }
        // Events of other sources (aws.*, partners) have no schema here.
        return;
    }
    for (path, conditions) in branch {
        let dotted = path.join(".");
        if path.len() == 1 && ENVELOPE_FIELDS.contains(&path[0].as_str()) {
            // Every envelope field is a string; `resources` is an array of strings, which
            // patterns match element by element.
            let field_type = FieldType::String {
                ip: false,
                allowed: None,
            };
            // Every event has each of them but replay-name (only replays have it) and
            // resources (an empty array may count as absent); none is ever null.
            let facts = FieldFacts {
                required: !matches!(path[0].as_str(), "replay-name" | "resources"),
                nullable: false,
                min_length: 0,
            };
            let verdict = judge_conditions(&dotted, &field_type, &facts, conditions, "");
            let severity = if verdict.iter().all(Option::is_some) {
                Severity::Error
            } else {
                Severity::Warning
            };
            for message in verdict.into_iter().flatten() {
                push(severity, "operator-type", &dotted, message);
            }
            continue;
        }
        if path[0] != "detail" {
            push(
                Severity::Error,
                "unknown-field",
                &dotted,
                format!(
                    "events have no top-level field {}; the envelope has {} and detail",
                    path[0],
                    ENVELOPE_FIELDS.join(", ")
                ),
            );
            continue;
        }
        let field = &path[1..];
        let absent_ok = conditions
            .iter()
            .any(|c| c.get("exists") == Some(&Value::Bool(false)));
        let mut found_in = Vec::new();
        let mut missing_in = Vec::new();
        for event_type in &selected {
            let schema = event_type.detail_schema();
            match field_type(&schema, field) {
                Some(field_type) => found_in.push((
                    event_type.detail_type(),
                    field_type,
                    field_facts(&schema, field),
                )),
                None => missing_in.push(*event_type),
            }
        }
        if found_in.is_empty() {
            let suggestion = selected
                .iter()
                .flat_map(|t| field_names(&t.detail_schema(), &field[..field.len() - 1]))
                .min_by_key(|name| edit_distance(name, field.last().map_or("", String::as_str)))
                .filter(|name| edit_distance(name, field.last().map_or("", String::as_str)) <= 3)
                .map(|name| format!(" (did you mean {name}?)"))
                .unwrap_or_default();
            let types: Vec<&str> = selected.iter().map(|t| t.detail_type()).collect();
            push(
                if absent_ok {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                "unknown-field",
                &dotted,
                format!("{} has no field {dotted}{suggestion}", types.join(" or ")),
            );
            continue;
        }
        if !missing_in.is_empty() && !absent_ok {
            let types: Vec<&str> = missing_in.iter().map(|t| t.detail_type()).collect();
            push(
                Severity::Warning,
                "never-matches-type",
                &dotted,
                format!(
                    "{} has no field {dotted}, so {} never matches {} events",
                    types.join(" and "),
                    if several {
                        "this $or alternative"
                    } else {
                        "the rule"
                    },
                    types.join(" or ")
                ),
            );
        }
        // Conditions that can never match are errors when nothing of the field can match
        // in any selected type; beside conditions or types that may, warnings.
        let verdicts: Vec<Vec<Option<String>>> = found_in
            .iter()
            .map(|(detail_type, field_type, facts)| {
                judge_conditions(&dotted, field_type, facts, conditions, detail_type)
            })
            .collect();
        let dead = |verdict: &Vec<Option<String>>| verdict.iter().all(Option::is_some);
        let field_dead = verdicts.iter().all(dead) && (missing_in.is_empty() || !absent_ok);
        for ((_, field_type, _), verdict) in found_in.iter().zip(verdicts) {
            if matches!(field_type, FieldType::Object) {
                push(
                    Severity::Error,
                    "object-field",
                    &dotted,
                    verdict.into_iter().flatten().next().unwrap_or_default(),
                );
                continue;
            }
            for message in verdict.into_iter().flatten() {
                let severity = if field_dead {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                push(severity, "operator-type", &dotted, message);
            }
        }
    }
}

/// What the schema says of a field besides its type.
#[derive(Debug, Clone, Copy, Default)]
struct FieldFacts {
    /// Present in every event of the type: it and each of its parents are required.
    required: bool,
    /// May be null.
    nullable: bool,
    /// The shortest string it may hold.
    min_length: u64,
}

fn field_facts(root: &Value, path: &[String]) -> FieldFacts {
    let mut required = true;
    let mut parent = resolve_schema(root, root);
    for segment in path {
        required &= parent
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(segment)));
        match parent.get("properties").and_then(|p| p.get(segment)) {
            Some(next) => parent = resolve_schema(root, next),
            None => return FieldFacts::default(),
        }
    }
    let schema = parent;
    let is_null = |s: &Value| match s.get("type") {
        Some(Value::String(name)) => name == "null",
        Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some("null")),
        _ => s.get("const") == Some(&Value::Null),
    };
    let nullable = is_null(schema)
        || ["anyOf", "oneOf"].iter().any(|key| {
            schema
                .get(*key)
                .and_then(Value::as_array)
                .is_some_and(|branches| branches.iter().any(|b| is_null(resolve_schema(root, b))))
        })
        || schema
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|values| values.contains(&Value::Null));
    FieldFacts {
        required,
        nullable,
        min_length: schema.get("minLength").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// The catalogue types whose source and detail-type meet every `source` and `detail-type`
/// leaf of an alternative.
fn selected_types(
    sources: &[&Vec<Value>],
    detail_types: &[&Vec<Value>],
) -> Vec<&'static EventType> {
    events_schema::catalogue()
        .iter()
        .filter(|t| sources.iter().all(|c| string_may_match(c, t.source())))
        .filter(|t| {
            detail_types
                .iter()
                .all(|c| string_may_match(c, t.detail_type()))
        })
        .collect()
}

/// Whether a leaf's conditions match the string `value`.
fn string_may_match(conditions: &[Value], value: &str) -> bool {
    may_match(conditions, value.into())
}

/// Whether a leaf's conditions match `value`, decided by the engine itself, so that every
/// operator (wildcard, anything-but with prefix, equals-ignore-case) counts as EventBridge
/// counts it. Conditions the engine cannot compile are taken to match.
fn may_match(conditions: &[Value], value: Value) -> bool {
    let pattern = serde_json::json!({ "field": conditions });
    let Ok(pattern) = crate::pattern::Pattern::from_value(&pattern) else {
        return true;
    };
    let mut builder = crate::pattern::Matcher::builder();
    builder.max_pattern_chars(usize::MAX);
    builder.add("field".into(), pattern);
    let Ok(matcher) = builder.build() else {
        return true;
    };
    let event = serde_json::json!({ "field": value }).to_string();
    matcher
        .matches(event.as_bytes())
        .map_or(true, |hits| !hits.is_empty())
}

fn field_type(root: &Value, path: &[String]) -> Option<FieldType> {
    field_schema(root, path.iter().map(String::as_str)).map(|schema| classify(root, schema))
}

fn field_names(root: &Value, parent: &[String]) -> Vec<String> {
    field_schema(root, parent.iter().map(String::as_str))
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn classify(root: &Value, schema: &Value) -> FieldType {
    let type_name = match schema.get("type") {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .find(|n| *n != "null"),
        _ => None,
    };
    let constants = |branches: &Value| -> Option<Vec<String>> {
        branches
            .as_array()?
            .iter()
            .map(|b| {
                let b = resolve_schema(root, b);
                b.get("const").and_then(Value::as_str).map(str::to_owned)
            })
            .collect()
    };
    let allowed = schema
        .get("enum")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .or_else(|| schema.get("oneOf").and_then(constants));
    let ip = schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f == "ipv4" || f == "ipv6")
        || schema
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|branches| {
                branches.iter().all(|b| {
                    matches!(
                        b.get("format").and_then(Value::as_str),
                        Some("ipv4" | "ipv6")
                    )
                })
            });
    match type_name {
        Some("string") => FieldType::String { ip, allowed },
        None if allowed.is_some() => FieldType::String { ip, allowed },
        Some("number" | "integer") => FieldType::Number,
        Some("boolean") => FieldType::Boolean,
        Some("object") => FieldType::Object,
        Some("array") => FieldType::Array,
        _ => FieldType::Unknown,
    }
}

/// For each condition on a field, why it can never match the field (`None` when it may):
/// a value or operator of the wrong type, a value outside the field's enum, null on a field
/// that is never null, an empty string where the schema needs characters, `exists: false`
/// on a required field. Conditions on a field with an enum are tried by the engine against
/// each of its values, so a prefix, wildcard or anything-but that no value meets is found.
fn judge_conditions(
    path: &str,
    field_type: &FieldType,
    facts: &FieldFacts,
    conditions: &[Value],
    detail_type: &str,
) -> Vec<Option<String>> {
    let of = if detail_type.is_empty() {
        String::new()
    } else {
        format!(" in {detail_type}")
    };
    let what = format!("{path}{of} is {}", field_type.name());
    if matches!(field_type, FieldType::Object) {
        return vec![Some(format!(
            "{what}; conditions match leaf values only, nest the pattern instead"
        ))];
    }
    conditions
        .iter()
        .map(|condition| {
            if condition.get("exists") == Some(&Value::Bool(false)) && facts.required {
                return Some(format!(
                    "{path}{of} is always present; exists false never matches it"
                ));
            }
            if condition.is_null() {
                return (!facts.nullable)
                    .then(|| format!("{path}{of} is never null; null never matches it"));
            }
            if matches!(field_type, FieldType::Unknown | FieldType::Array) {
                return None;
            }
            match condition {
                Value::String(text) => match field_type {
                    FieldType::String {
                        allowed: Some(allowed),
                        ..
                    } if !allowed.contains(text) => Some(format!(
                        "{path}{of} is one of {}; {condition} never matches",
                        allowed.join(", ")
                    )),
                    FieldType::String { .. }
                        if (text.chars().count() as u64) < facts.min_length =>
                    {
                        Some(format!(
                            "{path}{of} has at least {} characters; {condition} never matches it",
                            facts.min_length
                        ))
                    }
                    FieldType::String { .. } => None,
                    _ => Some(format!("{what}; the string {condition} never matches it")),
                },
                Value::Number(_) if *field_type != FieldType::Number => {
                    Some(format!("{what}; the number {condition} never matches it"))
                }
                Value::Bool(_) if *field_type != FieldType::Boolean => {
                    Some(format!("{what}; {condition} never matches it"))
                }
                Value::Object(operator) => operator.iter().next().and_then(|(name, _)| {
                    let fits = match name.as_str() {
                        "numeric" => *field_type == FieldType::Number,
                        "prefix" | "suffix" | "wildcard" | "equals-ignore-case" => {
                            matches!(field_type, FieldType::String { .. })
                        }
                        "cidr" => matches!(field_type, FieldType::String { ip: true, .. }),
                        _ => true,
                    };
                    if !fits {
                        return Some(format!("{what}; {name} never matches it"));
                    }
                    match field_type {
                        FieldType::String {
                            allowed: Some(allowed),
                            ..
                        } if name != "exists"
                            && !allowed.iter().any(|value| {
                                may_match(std::slice::from_ref(condition), value.as_str().into())
                            }) =>
                        {
                            Some(format!(
                                "{path}{of} is one of {}; {condition} matches none of them",
                                allowed.join(", ")
                            ))
                        }
                        _ => None,
                    }
                }),
                _ => None,
            }
        })
        .collect()
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Lints `rules` and renders the findings one per line.
    fn check(rules: &[LintRule]) -> String {
        lint(rules, &Limits::default())
            .iter()
            .map(|f| format!("{f}\n"))
            .collect()
    }

    fn signup_rule(name: &str, detail: Value) -> LintRule {
        LintRule::new(
            name,
            json!({
                "source": ["com.eventfork.users"],
                "detail-type": ["UserSignedUp"],
                "detail": detail,
            }),
        )
        .delivers_replays(true)
    }

    #[test]
    fn the_catalogue_is_clean() {
        assert_eq!(check(&catalogue_rules()), "");
    }

    #[test]
    fn misspelt_field() {
        insta::assert_snapshot!(
            check(&[signup_rule("mail", json!({"marketing_concent": [true]}))]),
            @"error[unknown-field] mail: detail.marketing_concent: UserSignedUp has no field detail.marketing_concent (did you mean marketing_consent?)"
        );
    }

    #[test]
    fn numeric_on_a_string() {
        insta::assert_snapshot!(
            check(&[signup_rule("paid", json!({"plan": [{"numeric": [">", 0]}]}))]),
            @"error[operator-type] paid: detail.plan: detail.plan in UserSignedUp is a string; numeric never matches it"
        );
    }

    #[test]
    fn operators_that_do_not_fit() {
        insta::assert_snapshot!(
            check(&[
                signup_rule("a", json!({"marketing_consent": ["true"], "plan": ["platinum"]})),
                LintRule::new(
                    "b",
                    json!({"detail-type": ["UserLoggedIn"], "detail": {"user_agent": [{"cidr": "10.0.0.0/8"}], "ip_address": [{"cidr": "10.0.0.0/8"}]}}),
                )
                .delivers_replays(true),
            ]),
            @r#"
        error[operator-type] a: detail.marketing_consent: detail.marketing_consent in UserSignedUp is a boolean; the string "true" never matches it
        error[operator-type] a: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; "platinum" never matches
        error[operator-type] b: detail.user_agent: detail.user_agent in UserLoggedIn is a string; cidr never matches it
        "#
        );
    }

    #[test]
    fn too_long() {
        let names: Vec<String> = (0..200).map(|i| format!("user-{i:05}")).collect();
        insta::assert_snapshot!(
            check(&[signup_rule("long", json!({"user_id": names}))]),
            @"error[pattern-too-long] long: pattern: the pattern is 2688 characters long; the limit is 2048"
        );
    }

    #[test]
    fn thirty_first_wildcard_rule() {
        let rules: Vec<LintRule> = (0..31)
            .map(|i| {
                signup_rule(
                    &format!("w{i:02}"),
                    json!({"email": [{"wildcard": format!("*@tenant{i}.example")}]}),
                )
                .bus("EventBus")
            })
            .collect();
        insta::assert_snapshot!(
            check(&rules),
            @"error[too-many-wildcard-rules] w30: bus EventBus: bus EventBus has 31 rules using wildcard; the limit is 30 per bus"
        );
    }

    #[test]
    fn never_matching_and_partial_rules() {
        insta::assert_snapshot!(
            check(&[
                LintRule::new("gone", json!({"source": ["com.eventfork.users"], "detail-type": ["UserDeleted"]})).delivers_replays(true),
                LintRule::new("both", json!({"detail-type": ["UserSignedUp", "UserLoggedIn"], "detail": {"plan": ["pro"]}})).delivers_replays(true),
                LintRule::new("ec2", json!({"source": ["aws.ec2"], "detail": {"state": ["stopped"]}})).delivers_replays(true),
            ]),
            @r#"
        error[never-matches] gone: detail-type: no event type of the catalogue has a detail-type matching ["UserDeleted"]; known: UserSignedUp, UserLoggedIn
        warning[never-matches-type] both: detail.plan: UserLoggedIn has no field detail.plan, so the rule never matches UserLoggedIn events
        "#
        );
    }

    #[test]
    fn or_alternatives_are_weighed_together() {
        insta::assert_snapshot!(
            check(&[
                // One alternative names a type of another producer: the rule still matches
                // sign-ups, so the dead alternative is a warning.
                LintRule::new("either", json!({"source": ["com.eventfork.users"], "$or": [{"detail-type": ["UserSignedUp"]}, {"detail-type": ["UserDeleted"]}]})).delivers_replays(true),
                // Each alternative selects a type that has the field it names.
                LintRule::new("per-type", json!({"$or": [
                    {"detail-type": ["UserSignedUp"], "detail": {"plan": ["pro"]}},
                    {"detail-type": ["UserLoggedIn"], "detail": {"mfa_used": [true]}},
                ]})).delivers_replays(true),
                // A field that no alternative's type has: every alternative is dead.
                LintRule::new("misspelt", json!({"detail": {"emial": ["a@b.c"]}, "$or": [{"detail-type": ["UserSignedUp"]}, {"detail-type": ["UserLoggedIn"]}]})).delivers_replays(true),
                // detail-type named at the top and inside `$or`: both must hold, in either
                // key order. The other alternative selects logins, which have no plan.
                LintRule::new("top-first", json!({"source": ["com.eventfork.users"], "detail-type": ["UserLoggedIn"], "$or": [{"detail-type": ["UserSignedUp"]}, {"source": ["com.eventfork.users"]}], "detail": {"plan": ["pro"]}})).delivers_replays(true),
                LintRule::new("or-first", json!({"$or": [{"detail-type": ["UserSignedUp"]}, {"source": ["com.eventfork.users"]}], "source": ["com.eventfork.users"], "detail-type": ["UserLoggedIn"], "detail": {"plan": ["pro"]}})).delivers_replays(true),
                // Beside another producer's alternative, the dead one is a warning.
                LintRule::new("mixed", json!({"detail-type": ["UserSignedUp"], "$or": [{"source": ["com.eventfork.users"], "detail": {"plan": ["gold"]}}, {"source": ["com.example.other"]}]})).delivers_replays(true),
                // Without a source, other producers' detail-types may match.
                LintRule::new("scheduled", json!({"detail-type": ["Scheduled Event"]})).delivers_replays(true),
            ]),
            @r#"
        warning[never-matches] either: detail-type: no event type of the catalogue has a detail-type matching ["UserDeleted"]; known: UserSignedUp, UserLoggedIn; this $or alternative never matches
        error[unknown-field] misspelt: detail.emial: UserSignedUp has no field detail.emial (did you mean email?)
        error[unknown-field] misspelt: detail.emial: UserLoggedIn has no field detail.emial
        error[never-matches] top-first: detail-type: no event type of the catalogue has a detail-type matching ["UserLoggedIn"] and ["UserSignedUp"]; known: UserSignedUp, UserLoggedIn
        error[unknown-field] top-first: detail.plan: UserLoggedIn has no field detail.plan
        error[never-matches] or-first: detail-type: no event type of the catalogue has a detail-type matching ["UserSignedUp"] and ["UserLoggedIn"]; known: UserSignedUp, UserLoggedIn
        error[unknown-field] or-first: detail.plan: UserLoggedIn has no field detail.plan
        warning[operator-type] mixed: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; "gold" never matches; this $or alternative never matches
        warning[never-matches] scheduled: detail-type: no event type of the catalogue has a detail-type matching ["Scheduled Event"]; known: UserSignedUp, UserLoggedIn (other sources' events may match: name the source to check it)
        "#
        );
    }

    #[test]
    fn sources_are_evaluated_as_the_engine_does() {
        insta::assert_snapshot!(
            check(&[
                // Rules for other producers' events: their fields are not ours to check.
                LintRule::new("ec2", json!({"source": [{"wildcard": "aws.*"}], "detail": {"state": ["stopped"]}})).delivers_replays(true),
                LintRule::new("not-ours", json!({"source": [{"anything-but": {"prefix": "com.eventfork."}}], "detail": {"state": ["stopped"]}})).delivers_replays(true),
                LintRule::new("folded", json!({"source": [{"equals-ignore-case": "aws.EC2"}], "detail": {"state": ["stopped"]}})).delivers_replays(true),
                // A wildcard that does select our source is checked against our schema.
                LintRule::new("ours", json!({"source": [{"wildcard": "com.eventfork.*"}], "detail-type": ["UserSignedUp"], "detail": {"state": ["stopped"]}})).delivers_replays(true),
                // A source condition that admits ours, with a detail-type of none of ours.
                LintRule::new("prefixed", json!({"source": [{"prefix": "com.eventfork."}], "detail-type": ["UserDeleted"]})).delivers_replays(true),
            ]),
            @r#"
        error[unknown-field] ours: detail.state: UserSignedUp has no field detail.state
        warning[never-matches] prefixed: detail-type: no event type of the catalogue has a detail-type matching ["UserDeleted"]; known: UserSignedUp, UserLoggedIn (other sources the source condition admits may have it)
        "#
        );
    }

    #[test]
    fn replays_and_invalid_patterns() {
        insta::assert_snapshot!(
            check(&[
                LintRule::new("live", json!({"detail-type": ["UserSignedUp"]})),
                LintRule::new("guarded", json!({"detail-type": ["UserSignedUp"], "replay-name": [{"exists": false}]})),
                LintRule::new("replays-only", json!({"detail-type": ["UserSignedUp"], "replay-name": [{"exists": true}]})),
                LintRule::new("half-guarded", json!({"$or": [{"replay-name": [{"exists": false}]}, {"source": ["x"]}]})),
                LintRule::new("broken", json!({"detail-type": []})),
                LintRule::new("object", json!({"detail-type": ["UserSignedUp"], "detail": {"email": [{"prefix": 3}]}})).delivers_replays(true),
            ]),
            @r#"
        warning[replay-unguarded] live: pattern: the rule also fires on archive replays; add "replay-name": [{"exists": false}], or declare its targets idempotent (Metadata: eventfork: replays: deliver)
        warning[replay-unguarded] replays-only: pattern: the rule also fires on archive replays; add "replay-name": [{"exists": false}], or declare its targets idempotent (Metadata: eventfork: replays: deliver)
        warning[replay-unguarded] half-guarded: pattern: the rule also fires on archive replays; add "replay-name": [{"exists": false}], or declare its targets idempotent (Metadata: eventfork: replays: deliver)
        error[invalid-pattern] broken: pattern: $.detail-type: Empty arrays are not allowed
        error[invalid-pattern] object: pattern: $.detail.email[0].prefix: prefix match pattern must be a string
        "#
        );
    }

    #[test]
    fn overlapping_rules_on_one_target() {
        let queue = || vec!["MailQueue".to_owned()];
        insta::assert_snapshot!(
            check(&[
                signup_rule("consent", json!({"marketing_consent": [true]})).targets(queue()),
                signup_rule("pro", json!({"plan": ["pro", "team"]})).targets(queue()),
                signup_rule("free", json!({"plan": ["free"], "marketing_consent": [false]})).targets(queue()),
                signup_rule("elsewhere", json!({"plan": ["pro"]})).targets(vec!["Other".to_owned()]),
            ]),
            @r#"
        warning[overlap] pro: pattern: overlaps rule consent on target MailQueue: an event such as {"user_id":"sample","email":"user@example.com","display_name":"sample","plan":"pro","signup_method":"email_password","marketing_consent":true,"signed_up_at":"2026-01-01T00:00:00Z"} is delivered to it twice
        "#
        );
    }

    #[test]
    fn overlaps_found_through_operators_and_envelope_fields() {
        let queue = || vec!["MailQueue".to_owned()];
        insta::assert_snapshot!(
            check(&[
                signup_rule("org", json!({"email": [{"suffix": "@example.org"}]})).targets(queue()),
                signup_rule("pro", json!({"plan": ["pro"]})).targets(queue()),
                LintRule::new("eu", json!({"detail-type": ["UserLoggedIn"], "region": ["eu-west-1"]})).delivers_replays(true).targets(vec!["Q".to_owned()]),
                LintRule::new("europe", json!({"detail-type": ["UserLoggedIn"], "region": [{"wildcard": "eu-*"}]})).delivers_replays(true).targets(vec!["Q".to_owned()]),
                LintRule::new("us", json!({"detail-type": ["UserLoggedIn"], "region": [{"prefix": "us-"}], "detail": {"ip_address": [{"cidr": "10.0.0.0/8"}]}})).delivers_replays(true).targets(vec!["Q".to_owned()]),
            ]),
            @r#"
        warning[overlap] pro: pattern: overlaps rule org on target MailQueue: an event such as {"user_id":"sample","email":"@example.org","display_name":"sample","plan":"pro","signup_method":"email_password","marketing_consent":true,"signed_up_at":"2026-01-01T00:00:00Z"} is delivered to it twice
        warning[overlap] europe: pattern: overlaps rule eu on target Q: an event such as {"user_id":"sample","login_id":"sample","login_method":"password","mfa_used":true,"ip_address":"192.0.2.1","user_agent":"sample","logged_in_at":"2026-01-01T00:00:00Z"} (region "eu-west-1") is delivered to it twice
        "#
        );
    }

    #[test]
    fn sam_function_events_are_linted_where_they_are_written() {
        let text = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        OnSignup:\n          Type: EventBridgeRule\n          Properties:\n            Pattern: {source: [com.eventfork.users], detail-type: [UserSignedUp], detail: {plan: [gold]}, replay-name: [{exists: false}]}\n  Replayed:\n    Type: AWS::Serverless::Function\n    Metadata: {eventfork: {replays: deliver}}\n    Properties:\n      Events:\n        All: {Type: EventBridgeRule, Properties: {Pattern: {source: [com.eventfork.users]}}}\n";
        let template = Template::parse(text).unwrap();
        let rules = template_text_rules(&template, text).unwrap();
        insta::assert_snapshot!(
            lint(&rules, &Limits::default()).iter().map(|f| format!("{f}\n")).collect::<String>(),
            @"error[operator-type] FnOnSignup: Resources.Fn.Properties.Events.OnSignup.Properties.Pattern.detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; \"gold\" never matches"
        );
    }

    #[test]
    fn overlaps_of_two_string_operators_on_one_field() {
        let queue = || vec!["Q".to_owned()];
        let found = check(&[
            signup_rule("a", json!({"user_id": [{"prefix": "a"}]})).targets(queue()),
            signup_rule("z", json!({"user_id": [{"suffix": "z"}]})).targets(queue()),
            signup_rule("domain", json!({"email": [{"wildcard": "*@example.com"}]}))
                .targets(queue()),
            signup_rule("ceo", json!({"email": [{"prefix": "ceo@"}]})).targets(queue()),
        ]);
        assert!(
            found.contains("warning[overlap] z: pattern: overlaps rule a on target Q"),
            "{found}"
        );
        assert!(found.contains(r#""user_id":"az""#), "{found}");
        assert!(
            found.contains("warning[overlap] ceo: pattern: overlaps rule domain on target Q"),
            "{found}"
        );
        assert!(found.contains(r#""email":"ceo@@example.com""#), "{found}");
        // A field with an enum is tried with its values, and only with them: "pe" is no
        // plan, and no plan starts with p and ends with e.
        let found = check(&[
            signup_rule("p", json!({"plan": [{"prefix": "p"}]})).targets(queue()),
            signup_rule("e", json!({"plan": [{"suffix": "e"}]})).targets(queue()),
            signup_rule("ent", json!({"plan": [{"prefix": "ent"}]})).targets(queue()),
            signup_rule("prise", json!({"plan": [{"suffix": "prise"}]})).targets(queue()),
        ]);
        assert!(!found.contains("overlaps rule p "), "{found}");
        assert!(
            found.contains("warning[overlap] ent: pattern: overlaps rule e on target Q"),
            "{found}"
        );
        assert!(
            found.contains("warning[overlap] prise: pattern: overlaps rule ent on target Q"),
            "{found}"
        );
        assert!(found.contains(r#""plan":"enterprise""#), "{found}");
    }

    #[test]
    fn conditions_that_no_event_of_the_schema_meets() {
        insta::assert_snapshot!(
            check(&[
                signup_rule("null-id", json!({"user_id": [null]})),
                signup_rule("empty-id", json!({"user_id": [""]})),
                signup_rule("no-plan", json!({"plan": [{"exists": false}]})),
                signup_rule("x-plan", json!({"plan": [{"prefix": "x"}]})),
                signup_rule("wild-plan", json!({"plan": [{"wildcard": "*x*"}]})),
                signup_rule("no-plan-at-all", json!({"plan": [{"anything-but": ["free", "pro", "team", "enterprise"]}]})),
                // One value of the list can never match, the other can: a warning.
                signup_rule("gold", json!({"plan": ["pro", "gold"]})),
                // These may match.
                signup_rule("fine", json!({"plan": [{"prefix": "ent"}, {"anything-but": "free"}], "display_name": [{"exists": true}]})),
                LintRule::new("no-region", json!({"region": [{"exists": false}], "detail-type": ["UserSignedUp"]})).delivers_replays(true),
            ]),
            @r#"
        error[operator-type] null-id: detail.user_id: detail.user_id in UserSignedUp is never null; null never matches it
        error[operator-type] empty-id: detail.user_id: detail.user_id in UserSignedUp has at least 1 characters; "" never matches it
        error[operator-type] no-plan: detail.plan: detail.plan in UserSignedUp is always present; exists false never matches it
        error[operator-type] x-plan: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; {"prefix":"x"} matches none of them
        error[operator-type] wild-plan: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; {"wildcard":"*x*"} matches none of them
        error[operator-type] no-plan-at-all: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; {"anything-but":["free","pro","team","enterprise"]} matches none of them
        warning[operator-type] gold: detail.plan: detail.plan in UserSignedUp is one of free, pro, team, enterprise; "gold" never matches
        error[operator-type] no-region: region: region is always present; exists false never matches it
        "#
        );
    }

    #[test]
    fn too_many_targets() {
        let rule = signup_rule("fan", json!({"plan": ["pro"]}))
            .targets((0..6).map(|i| format!("Queue{i}")).collect());
        insta::assert_snapshot!(
            check(&[rule]),
            @"error[too-many-targets] fan: pattern: the rule has 6 targets; the limit is 5 per rule"
        );
    }

    #[test]
    fn template_queue_settings() {
        let template = Template::parse(
            r#"
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: { detail-type: [UserSignedUp] }
      Targets: [{ Id: q, Arn: !GetAtt Q.Arn }]
  Q:
    Type: AWS::SQS::Queue
    Properties: { VisibilityTimeout: 30 }
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 10
      Events: { E: { Type: SQS, Properties: { Queue: !GetAtt Q.Arn } } }
"#,
        )
        .unwrap();
        insta::assert_snapshot!(
            lint_template(&template).iter().map(|f| format!("{f}\n")).collect::<String>(),
            @r#"
        error[no-dead-letter-queue] R: Resources.Q: Q has no RedrivePolicy: a poison message is retried until it expires
        error[no-queue-policy] R: Resources.Q: no AWS::SQS::QueuePolicy names Q: EventBridge may not send to it, and every delivery fails
        warning[no-rule-dead-letter-queue] R: Resources.Q: target q has no DeadLetterConfig: events EventBridge cannot deliver are dropped
        error[visibility-timeout] R: Resources.Q: VisibilityTimeout is 30 s; at least 6 x the timeout of F (10 s) = 60 s is needed so that a batch still running is not received again
        error[no-partial-batch-response] R: Resources.Q: the SQS event source of F lacks FunctionResponseTypes: [ReportBatchItemFailures]: one bad record retries its whole batch
        "#
        );
    }

    #[test]
    fn a_batching_window_longer_than_the_visibility_timeout_allows_is_an_error() {
        let lint = |window: u32| {
            let template = Template::parse(&format!(
                "
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {{ detail-type: [UserSignedUp] }}
      Targets: [{{ Id: q, Arn: !GetAtt Q.Arn, DeadLetterConfig: {{ Arn: !GetAtt D.Arn }} }}]
  D:
    Type: AWS::SQS::Queue
    Properties: {{ MessageRetentionPeriod: 1209600 }}
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy: {{ deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 5 }}
  P:
    Type: AWS::SQS::QueuePolicy
    Properties: {{ Queues: [!Ref Q, !Ref D], PolicyDocument: {{}} }}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 10
      Events:
        E:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            MaximumBatchingWindowInSeconds: {window}
            FunctionResponseTypes: [ReportBatchItemFailures]
"
            ))
            .unwrap();
            lint_template(&template)
                .iter()
                .map(|f| format!("{f}\n"))
                .collect::<String>()
        };
        assert_eq!(lint(50), "", "10 s + 50 s fits in 60 s");
        insta::assert_snapshot!(
            lint(51),
            @"error[visibility-timeout] R: Resources.Q: VisibilityTimeout is 60 s; at least the timeout of F (10 s) + its MaximumBatchingWindowInSeconds (51 s) = 61 s is needed so that a message held through the window is not received again"
        );
    }

    /// A record that fails every receive must reach the dead-letter queue before it
    /// expires in its queue: eventfork's handlers (by binary name, or by their backoff
    /// variables) wait out their backoff between receives, other functions the visibility
    /// timeout (found by an audit: a backoff of up to 11 h 40 min is accepted).
    #[test]
    fn retries_that_outlive_the_queue_retention_are_an_error() {
        let lint_with =
            |function: &str, environment: &str, retention: u32, timeout: u32, visibility: u32| {
                let template = Template::parse(&format!(
                    "
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {{ detail-type: [UserSignedUp] }}
      Targets: [{{ Id: q, Arn: !GetAtt Q.Arn, DeadLetterConfig: {{ Arn: !GetAtt D.Arn }} }}]
  D:
    Type: AWS::SQS::Queue
    Properties: {{ MessageRetentionPeriod: 1209600 }}
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: {visibility}
      MessageRetentionPeriod: {retention}
      RedrivePolicy: {{ deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 30 }}
  P:
    Type: AWS::SQS::QueuePolicy
    Properties: {{ Queues: [!Ref Q, !Ref D], PolicyDocument: {{}} }}
  {function}:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: {timeout}
      Environment: {{ Variables: {{ {environment} }} }}
      Events:
        E:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
"
                ))
                .unwrap();
                lint_template(&template)
                    .iter()
                    .map(|f| format!("{f}\n"))
                    .collect::<String>()
            };
        let lint = |function: &str, environment: &str, retention: u32| {
            lint_with(function, environment, retention, 10, 60)
        };
        // The default backoff: 30 receives take at most the visibility timeout (60 s, more
        // than 11 s + 30 s), then 29 x 11 s + 60 + 120 + ... + 480 + 25 x 900 s: 23,779 s.
        assert_eq!(lint("slack", "TENANT: a", 23_780), "");
        insta::assert_snapshot!(
            lint("slack", "TENANT: a", 23_779),
            @"error[retries-outlive-retention] R: Resources.Q: Q keeps messages 23779 s, but a record that fails every receive can take 23779 s (6 h 37 min) to be received 30 times and reach D, with its backoff of 30 s doubling to 900 s after each, plus up to 11 s of batching window and timeout per receive, and at least the visibility timeout (60 s): it would expire on the way, with no dead letter and no alarm; raise MessageRetentionPeriod, or lower maxReceiveCount or slack's RETRY_BACKOFF_MAX_SECONDS"
        );
        // The longest backoff the handlers take outlives SQS's default four days.
        let longest = lint("Worker", "RETRY_BACKOFF_MAX_SECONDS: 42000", 345_600);
        assert!(
            longest.contains("can take 859759 s (238 h 50 min)"),
            "{longest}"
        );
        // A long timeout makes a long visibility timeout, which a record that fails
        // without a delay waits out at every receive (found by a review): 30 x 5,400 s.
        let long = |retention: u32| lint_with("slack", "TENANT: a", retention, 900, 5_400);
        assert_eq!(long(162_001), "");
        let error = long(162_000);
        assert!(
            error.contains("can take 162000 s (45 h) to be received 30 times"),
            "{error}"
        );
        // Any other function: 30 visibility timeouts of 60 s.
        assert_eq!(lint("Worker", "TENANT: a", 1801), "");
        insta::assert_snapshot!(
            lint("Worker", "TENANT: a", 1800),
            @"error[retries-outlive-retention] R: Resources.Q: Q keeps messages 1800 s, but a record that fails every receive can take 1800 s (30 min) to be received 30 times and reach D, with a visibility timeout of 60 s each: it would expire on the way, with no dead letter and no alarm; raise MessageRetentionPeriod, or lower maxReceiveCount"
        );
    }

    /// Settings that deploy cleanly and lose events on AWS (found by an audit): no queue
    /// policy for EventBridge, a dead-letter queue that keeps messages no longer than its
    /// source, reserved concurrency below what the event source runs.
    #[test]
    fn template_settings_that_lose_events() {
        let template = Template::parse(
            r#"
Globals:
  Function: { ReservedConcurrentExecutions: 1 }
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: { detail-type: [UserSignedUp] }
      Targets: [{ Id: q, Arn: !GetAtt Q.Arn, DeadLetterConfig: { Arn: !GetAtt D.Arn } }]
  D:
    Type: AWS::SQS::Queue
    Properties: { MessageRetentionPeriod: 60 }
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy: { deadLetterTargetArn: !GetAtt D.Arn, maxReceiveCount: 5 }
  P:
    Type: AWS::SQS::QueuePolicy
    Properties: { Queues: [!Ref Q], PolicyDocument: {} }
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 10
      Events:
        E:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: 2 }
"#,
        )
        .unwrap();
        insta::assert_snapshot!(
            lint_template(&template).iter().map(|f| format!("{f}\n")).collect::<String>(),
            @r#"
        warning[dead-letter-retention] R: Resources.Q: D keeps messages 60 s, no longer than Q (345600 s): a message's age counts from its first send, so dead letters expire as they arrive or soon after
        error[no-queue-policy] R: Resources.Q: no AWS::SQS::QueuePolicy names D: EventBridge may not send to it, and every delivery fails
        warning[reserved-below-maximum-concurrency] R: Resources.Q: F reserves 1 concurrent executions, fewer than its event source's MaximumConcurrency (2): invocations are throttled, and throttled batches count receives toward the dead-letter queue
        "#
        );
    }

    /// Found by an audit: lint parsed patterns but never compiled them, so the engine's
    /// limits (wildcard complexity, `$or` combinations, nesting), which EventBridge
    /// applies when a rule is created, passed lint.
    #[test]
    fn the_engine_limits_are_lint_errors() {
        let rule = LintRule::new(
            "arn-glob",
            json!({"detail-type": ["UserSignedUp"],
                   "detail": {"email": [{"wildcard": "*:*:*:*:*:event-bus/*"}]}}),
        )
        .delivers_replays(true);
        let found = check(&[rule]);
        assert!(
            found.starts_with("error[pattern-limit] arn-glob: pattern: rule arn-glob at $.detail.email[0].wildcard: Rule is too complex"),
            "{found}"
        );
    }

    /// A live event has no replay-name and a replayed one a string: `[null]` matches
    /// neither, and counted as a replay guard, the rule matched nothing without a word.
    #[test]
    fn a_replay_name_of_null_never_matches() {
        let rule = LintRule::new(
            "nothing",
            json!({"detail-type": ["UserSignedUp"], "replay-name": [null]}),
        );
        insta::assert_snapshot!(
            check(&[rule]),
            @r#"error[never-matches] nothing: replay-name: replay-name is absent on live events and a string on replayed ones: null, numbers and booleans match neither; to skip replays, write [{"exists": false}]"#
        );
    }

    /// Rules on two buses never see one event, and a disabled rule delivers nothing: no
    /// overlap between them (an audit saw both reported).
    #[test]
    fn overlaps_need_one_bus_and_two_enabled_rules() {
        let rule = |name: &str| {
            signup_rule(name, json!({"plan": ["pro"]}))
                .targets(vec!["Q".into()])
                .delivers_replays(true)
        };
        assert!(check(&[rule("a"), rule("b")]).contains("warning[overlap]"));
        assert_eq!(check(&[rule("a"), rule("b").bus("other")]), "");
        assert_eq!(check(&[rule("a"), rule("b").enabled(false)]), "");
    }

    /// Pairs that no witness could fit are not tried (exact lists with nothing in common,
    /// or no catalogue type both admit); past its budget the check says how many it left.
    #[test]
    fn overlaps_try_only_pairs_that_may_overlap_within_a_budget() {
        let rule = |name: &str, plan: &str| {
            signup_rule(name, json!({"plan": [plan]})).targets(vec!["Q".into()])
        };
        let login = LintRule::new(
            "login",
            json!({"source": ["com.eventfork.users"], "detail-type": ["UserLoggedIn"]}),
        )
        .delivers_replays(true)
        .targets(vec!["Q".into()]);
        // Over the engine's pattern length: left out, the others still checked.
        let long: Vec<String> = (0..300).map(|i| format!("plan-{i:04}")).collect();
        let too_long = signup_rule("long", json!({ "plan": long })).targets(vec!["Q".into()]);
        let rules = [
            rule("a", "pro"),
            rule("b", "free"),
            login,
            too_long,
            rule("c", "pro"),
            rule("d", "pro"),
        ];
        let run = |max_pairs| {
            let mut findings = Vec::new();
            overlaps_up_to(&rules, &mut findings, max_pairs);
            findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {} {}",
                        f.code,
                        f.rule,
                        f.message.split(':').next().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        // Only a, c and d can share an event: three pairs, each an overlap.
        assert_eq!(
            run(100),
            [
                "overlap c overlaps rule a on target Q",
                "overlap d overlaps rule a on target Q",
                "overlap d overlaps rule c on target Q",
            ]
        );
        assert_eq!(
            run(1),
            [
                "overlap c overlaps rule a on target Q",
                "overlap-unchecked a the overlap check stopped after 1 pairs of rules that share a target and may overlap; 2 more such pairs, from this rule and rule d on, were not checked",
            ]
        );
    }
}
