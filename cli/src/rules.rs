//! `eventfork rules match`: run a set of rules over a file of events.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt,
    io::{self, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use router::{
    pattern::{Matcher, Pattern, RuleId},
    template::{self, Template},
};
use serde::{
    Deserialize,
    de::{self, Deserializer, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};

use crate::{Outcome, input};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Match every event of a JSON Lines file against a set of rules.
    ///
    /// RULES is a JSON object {"rule-name": pattern, …} (a pattern may also be a string
    /// holding JSON text), or a SAM/CloudFormation template (YAML or JSON). From a template
    /// come its AWS::Events::Rule resources, named by logical id, with their EventPattern
    /// (an object, or a string holding JSON, which keeps numbers exactly as written), and
    /// the EventBridgeRule (or CloudWatchEvent) events of its SAM functions and state
    /// machines, named <Resource><Event> as SAM names the rules it makes. Rules with
    /// State: DISABLED are left out (stderr names them); rules under a Condition, or whose
    /// State an intrinsic function computes, are matched as if enabled (stderr names them
    /// too); a rule with neither EventPattern nor ScheduleExpression, a State that is
    /// neither, or two rules of one name, are errors. Rules on several
    /// buses are all matched, with a warning (on AWS an event reaches one bus's rules). Intrinsic functions such as !Ref
    /// elsewhere in the template are ignored; in an EventPattern, as a rule's or a
    /// function's Properties, as a function's Events or as one event, they are an error. A
    /// JSON file is a template when it has AWSTemplateFormatVersion, Transform, or
    /// Resources whose members each have a string Type; else it is a rules object.
    ///
    /// Output, one line per event line, in order: the sorted JSON array of the names of the
    /// matching rules, e.g. ["login-audit-log","signup-welcome-email"] or []. An event line
    /// that is not a JSON object (blank, malformed, truncated, nested deeper than 128
    /// levels, not an object) gives `error: <message>` on its line, line breaks in the
    /// message escaped, and the others continue.
    /// A summary (events, seconds, events/s, rules, compile time) goes to stderr; the
    /// seconds cover reading, matching and writing, not loading and compiling the rules.
    ///
    /// With --json, JSON Lines instead (a stable format, version 1):
    ///   {"type":"match","line":1,"rules":["a","b"]}
    ///   {"type":"error","line":2,"message":"…"}
    ///   {"type":"summary","version":1,"events":2,"errors":1,"rules":10,"seconds":0.01,
    ///    "events_per_second":200.0,"compile_seconds":0.001}
    ///
    /// Exit status: 0 when every event was matched, 2 when a rule is invalid, an input
    /// cannot be read, or any event line was invalid (after all lines are processed).
    ///
    /// Example: eventfork rules match --rules template.yaml --events events.jsonl
    #[command(verbatim_doc_comment)]
    Match {
        /// The rules: a JSON object of patterns by name, or a SAM/CloudFormation template.
        #[arg(long, value_name = "FILE")]
        rules: PathBuf,
        /// The events, one JSON object per line, or - for stdin.
        #[arg(long, value_name = "FILE.jsonl")]
        events: PathBuf,
        /// Print JSON Lines records with a "type" field instead of plain arrays.
        #[arg(long)]
        json: bool,
    },
    /// Print the generated parts of template.yaml (rules, queues, DLQs, queue policies, alarms, schemas;
    /// the queues' outputs), each between its GENERATED markers.
    ///
    /// They are rendered from the rule catalogue (router/src/catalog.rs). With --write FILE,
    /// replace the parts between the GENERATED markers of FILE instead of printing them.
    ///
    /// Example: eventfork rules render --write template.yaml
    Render {
        /// Rewrite the generated parts of this template in place.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// Fail, with a diff, when a generated part of a template drifts from the catalogue.
    ///
    /// Exit status: 0 when they match, 1 on drift (the diff on stdout), 2 on failure.
    ///
    /// Example: eventfork rules check template.yaml
    Check {
        /// The template [default: template.yaml].
        #[arg(value_name = "FILE")]
        template: Option<PathBuf>,
    },
    /// Check rules against the event schemas and EventBridge's limits.
    ///
    /// Without --template, lints the built-in rule catalogue. Findings, one per line:
    /// `error[code] rule: location: message` or `warning[code] …`. Checks: every field a
    /// pattern names exists in the events it selects; operators fit the field's type
    /// (numeric on numbers, prefix on strings, cidr on IP addresses) and its values (an
    /// enum's values, null, required fields); pattern length ≤ 2048, ≤ 5 targets per rule,
    /// ≤ 300 rules and ≤ 30 wildcard rules per bus; rules that can never match (an error;
    /// a dead `$or` alternative or list value beside a live one is a warning); rules sharing
    /// a target that overlap (found by a witness event; at most 20,000 pairs that may
    /// overlap are tried, and `warning[overlap-unchecked]` says how many were left); live
    /// rules that would also fire on replays. A template's
    /// rules are those `rules match` reads: its AWS::Events::Rule resources with an
    /// EventPattern, and the EventBridgeRule (or CloudWatchEvent) events of its SAM
    /// functions and state machines. With --template, also the queues' dead-letter queues
    /// (and that they keep messages longer than their source), the queue policies
    /// EventBridge needs to send, visibility timeouts, reserved concurrency against the
    /// event source's maximum, and partial batch responses.
    ///
    /// Exit status: 0 without errors (warnings allowed), 1 with errors, 2 on failure.
    ///
    /// Example: eventfork rules lint --template template.yaml
    Lint {
        /// Lint the rules and queues of this SAM/CloudFormation template.
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
    },
}

pub(crate) fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Match {
            rules,
            events,
            json,
        } => match_events(&rules, &events, json),
        Command::Render { write } => crate::catalog::render(write.as_deref()),
        Command::Check { template } => {
            crate::catalog::check(&template.unwrap_or_else(crate::catalog::default_template))
        }
        Command::Lint { template } => crate::catalog::lint(template.as_deref()),
    }
}

/// Rules in file order, each with its pattern text.
struct RuleTexts(Vec<(String, String)>);

struct RuleTextsVisitor;

impl<'de> Visitor<'de> for RuleTextsVisitor {
    type Value = RuleTexts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of event patterns by rule name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleTexts, A::Error> {
        let mut rules: Vec<(String, String)> = Vec::new();
        // A set beside the list: a scan of the list per rule took seconds at 50,000 rules.
        let mut names = HashSet::new();
        while let Some((name, pattern)) = map.next_entry::<String, Box<RawValue>>()? {
            if !names.insert(name.clone()) {
                return Err(de::Error::custom(format!("rule {name:?} is defined twice")));
            }
            let raw = pattern.get();
            let text = if raw.starts_with('"') {
                serde_json::from_str::<String>(raw).map_err(de::Error::custom)?
            } else {
                // Measured and kept without the file's layout, as a template's pattern is.
                router::pattern::compact_json(raw)
            };
            rules.push((name, text));
        }
        Ok(RuleTexts(rules))
    }
}

impl<'de> serde::Deserialize<'de> for RuleTexts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RuleTexts, D::Error> {
        deserializer.deserialize_map(RuleTextsVisitor)
    }
}

/// The rules of a rules file, and the names of those it leaves out.
pub(crate) struct Rules {
    /// Each rule's name and pattern text, in file order.
    pub(crate) enabled: Vec<(String, String)>,
    /// Template rules with `State: DISABLED`: EventBridge does not run them.
    pub(crate) disabled: Vec<String>,
    /// Enabled template rules under a `Condition`, read as if it held.
    pub(crate) conditional: Vec<String>,
    /// The event buses of the enabled template rules (`default` for none named).
    pub(crate) buses: BTreeSet<String>,
}

/// The outline of a JSON template. Other members, and the resources' properties, are
/// skipped unread, so no number is converted.
#[derive(Deserialize)]
struct TemplateShape {
    #[serde(rename = "AWSTemplateFormatVersion")]
    version: Option<IgnoredAny>,
    #[serde(rename = "Transform")]
    transform: Option<IgnoredAny>,
    #[serde(rename = "Resources")]
    resources: Option<Box<RawValue>>,
}

/// Whether a JSON document is a template: it names a template format version or a
/// transform, or it has a `Resources` object whose members each have a string `Type`. A
/// rule named `Resources` has a pattern, whose fields hold arrays or objects, never a
/// string.
fn is_template(json: &str) -> bool {
    let Ok(shape) = serde_json::from_str::<TemplateShape>(json) else {
        return false;
    };
    shape.version.is_some()
        || shape.transform.is_some()
        || shape.resources.is_some_and(|resources| {
            // Objects, each with a string `Type` (serde would also take `["x"]` for the
            // struct, its fields in order).
            serde_json::from_str::<BTreeMap<String, Map<String, Value>>>(resources.get()).is_ok_and(
                |resources| {
                    resources
                        .values()
                        .all(|resource| resource.get("Type").is_some_and(Value::is_string))
                },
            )
        })
}

/// Reads a rules file: `{"name": pattern}` JSON, or a CloudFormation/SAM template.
pub(crate) fn load_rules(path: &Path) -> Result<Rules> {
    let text = input::read_text(path).context("cannot read the rules file")?;
    let text = text.as_str();
    if text.trim().is_empty() {
        bail!("the rules file {} is empty", path.display());
    }
    let json = text.trim_start().starts_with('{');
    if json && !is_template(text) {
        match serde_json::from_str::<RuleTexts>(text) {
            Ok(rules) => {
                return Ok(Rules {
                    enabled: rules.0,
                    disabled: Vec::new(),
                    conditional: Vec::new(),
                    buses: BTreeSet::new(),
                });
            }
            // Not JSON at all: it may be a YAML template in flow style, `{Resources: …}`.
            Err(error) if error.is_syntax() && Template::parse_rules(text).is_ok() => {}
            Err(error) => {
                return Err(anyhow::Error::new(error))
                    .with_context(|| format!("cannot read the rules in {}", path.display()));
            }
        }
    }
    let rules = Template::parse_rules(text).map_err(|error| {
        if !json && error.lacks_resources() {
            anyhow!(
                "{} is neither a JSON object of rules nor a template: {error}",
                path.display()
            )
        } else {
            anyhow!("cannot read the template {}: {error}", path.display())
        }
    })?;
    let (enabled, disabled): (Vec<_>, Vec<_>) = rules.iter().partition(|r| r.is_enabled());
    let conditional = enabled
        .iter()
        .filter_map(|r| match (r.condition(), r.computed_state()) {
            (None, None) => None,
            (Some(condition), None) => Some(format!("{} ({condition})", r.logical_id())),
            (None, Some(state)) => Some(format!("{} (State: {state})", r.logical_id())),
            (Some(condition), Some(state)) => {
                Some(format!("{} ({condition}; State: {state})", r.logical_id()))
            }
        })
        .collect();
    // A bus named by its ARN is the bus of that name.
    let buses = enabled
        .iter()
        .map(|r| template::bus_name(r.event_bus().unwrap_or("default")).to_owned())
        .collect();
    Ok(Rules {
        conditional,
        buses,
        enabled: enabled
            .into_iter()
            .map(|r| (r.logical_id().to_owned(), r.pattern_text().to_owned()))
            .collect(),
        disabled: disabled
            .into_iter()
            .map(|r| r.logical_id().to_owned())
            .collect(),
    })
}

fn build_matcher(rules: &[(String, String)]) -> Result<Matcher> {
    let mut builder = Matcher::builder();
    for (name, text) in rules {
        let pattern = Pattern::parse(text)
            .map_err(|error| anyhow!("rule {name}: invalid pattern at {error}"))?;
        builder.add(RuleId::from(name.as_str()), pattern);
    }
    Ok(builder.build()?)
}

/// Whether a rule name is written in JSON as it is, between quotes.
fn is_plain(name: &str) -> bool {
    name.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
}

/// Writes the names as a JSON array; `plain` says that every rule name is plain, so that
/// none is looked at again.
fn write_names(out: &mut Vec<u8>, names: &[&RuleId], plain: bool) {
    out.push(b'[');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let name = name.as_str();
        if plain || is_plain(name) {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(
                serde_json::to_string(name)
                    .expect("a string serializes")
                    .as_bytes(),
            );
        }
    }
    out.push(b']');
}

fn match_events(rules_path: &Path, events_path: &Path, json: bool) -> Result<Outcome> {
    if rules_path == Path::new("-") && events_path == Path::new("-") {
        bail!("--rules and --events cannot both read stdin");
    }
    let Rules {
        enabled: rules,
        disabled,
        conditional,
        buses,
    } = load_rules(rules_path)?;
    if rules.is_empty() {
        stderr!(
            "eventfork: warning: {} holds no enabled rule with an event pattern: no event will match",
            rules_path.display()
        );
    }
    if buses.len() > 1 {
        stderr!(
            "eventfork: warning: the rules are on {} event buses ({}): each event is matched against all of them, while on AWS it reaches only its own bus's rules",
            buses.len(),
            buses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !disabled.is_empty() {
        stderr!(
            "eventfork: {} left out (State: DISABLED): {}",
            crate::count(disabled.len(), "disabled rule", "disabled rules"),
            disabled.join(", ")
        );
    }
    if !conditional.is_empty() {
        stderr!(
            "eventfork: {} under a Condition or with a State an intrinsic function computes, matched as if enabled: {}",
            crate::count(conditional.len(), "rule", "rules"),
            conditional.join(", ")
        );
    }
    let compile_started = Instant::now();
    let matcher = build_matcher(&rules).with_context(|| format!("in {}", rules_path.display()))?;
    let compile_seconds = compile_started.elapsed().as_secs_f64();
    let plain = rules.iter().all(|(name, _)| is_plain(name));
    let mut reader = input::open(events_path)?;
    // A reader that stops early (`| head`) still gets an exit status for the whole input.
    let mut stdout = crate::output::Closable::new(io::BufWriter::with_capacity(
        1 << 16,
        crate::output::stdout(),
    ));
    let mut out = Vec::with_capacity(256);
    let (mut n_events, mut n_errors) = (0u64, 0u64);
    let mut publish_lines = input::PublishLines::default();
    let started = Instant::now();
    input::each_line(&mut reader, events_path, |line_number, event| {
        n_events = line_number;
        out.clear();
        let matched = match event {
            Ok(event) => {
                let matched = matcher.matches(event).map_err(|error| error.to_string());
                // Only a line that is a JSON object is an event that may lack its source.
                if matched.is_ok() {
                    publish_lines.check(line_number, event);
                }
                matched
            }
            Err(too_long) => Err(too_long.to_string()),
        };
        match matched {
            Ok(names) if json => {
                out.extend_from_slice(br#"{"type":"match","line":"#);
                out.extend_from_slice(n_events.to_string().as_bytes());
                out.extend_from_slice(br#","rules":"#);
                write_names(&mut out, &names, plain);
                out.push(b'}');
            }
            Ok(names) => write_names(&mut out, &names, plain),
            Err(message) => {
                n_errors += 1;
                if json {
                    let record = serde_json::json!({
                        "type": "error", "line": n_events, "message": message,
                    });
                    out.extend_from_slice(record.to_string().as_bytes());
                } else {
                    out.extend_from_slice(b"error: ");
                    out.extend_from_slice(input::one_line(&message).as_bytes());
                }
            }
        }
        out.push(b'\n');
        stdout.write_all(&out)?;
        Ok(())
    })?;
    stdout.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        n_events as f64 / seconds
    } else {
        0.0
    };
    if json {
        let record = serde_json::json!({
            "type": "summary", "version": 1, "events": n_events, "errors": n_errors,
            "rules": matcher.len(), "seconds": seconds, "events_per_second": rate,
            "compile_seconds": compile_seconds,
        });
        writeln!(stdout, "{record}")?;
        stdout.flush()?;
    } else {
        stderr!(
            "eventfork: {}, {seconds:.3} s, {rate:.0} events/s, {} (compiled in \
             {compile_seconds:.3} s){}",
            crate::count(n_events as usize, "event", "events"),
            crate::count(matcher.len(), "rule", "rules"),
            if n_errors > 0 {
                format!(
                    ", {}",
                    crate::count(n_errors as usize, "invalid event", "invalid events")
                )
            } else {
                String::new()
            }
        );
    }
    publish_lines.warn("rules match");
    // The process ends with this command, and freeing a matcher piece by piece is slow:
    // at 10,000 rules it took 0.3–0.4 s, as long as matching 20,000 events.
    std::mem::forget(matcher);
    if n_errors > 0 {
        bail!(
            "{n_errors} of {} {} invalid",
            crate::count(n_events as usize, "event line", "event lines"),
            if n_errors == 1 { "was" } else { "were" }
        );
    }
    Ok(Outcome::Success)
}
