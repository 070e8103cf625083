//! Conformance and property tests. They live inside the crate because the reference
//! interpreter is test-only and private.
//!
//! * Every case of `router/tests/data/conformance/*.jsonl` runs against the compiled matcher
//!   and the reference interpreter. Every `"eventbridge": true` case must pass; where we
//!   deliberately differ from event-ruler on an `"eventbridge": false` case, the case is
//!   listed in [`DEVIATIONS`] with the reason (docs/PATTERNS.md lists the same choices).
//! * Proptest: the matcher with many rules agrees with the reference on each rule alone, and
//!   `Pattern` → JSON → `Pattern` round-trips.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Matcher, Pattern, RuleId, reference};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance")
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    pattern: Box<RawValue>,
    #[serde(default)]
    event: Option<Box<RawValue>>,
    #[serde(default)]
    matches: Option<bool>,
    eventbridge: bool,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    message: Option<String>,
}

impl Case {
    /// The text of a pattern or event: as written, or the string's content for raw cases.
    fn text(&self, value: &RawValue) -> String {
        if self.raw {
            serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_owned())
        } else {
            value.get().to_owned()
        }
    }
}

fn read_cases(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(data_dir().join(file)).expect("corpus file");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("corpus line"))
        .collect()
}

/// What we answer where we choose to differ from event-ruler 2.0.1 on a case that EventBridge
/// itself does not pin down (`"eventbridge": false`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ours {
    /// We reject the pattern (EventBridge's documented syntax does not allow it).
    Invalid,
    /// We answer this instead.
    Matches(bool),
}

const LEGACY_OR: &str = "\"$or\" followed by an object is a legacy field name in the library; \
                         EventBridge's JSON syntax requires an array";
const EXISTS_FALSE_ORDER: &str = "exists:false inside arrays of objects: the library's answer \
                                  depends on field-name order; ours is that the path has no \
                                  leaf value anywhere in the event";
const CROSS_FAMILY_CIDR: &str = "an IPv4 value never falls in an IPv6 range and vice versa";

const DEVIATIONS: &[(&str, Ours, &str)] = &[
    (
        "event-ruler-readme:or-legacy-field#1",
        Ours::Invalid,
        LEGACY_OR,
    ),
    (
        "event-ruler-readme:or-legacy-field#v1",
        Ours::Invalid,
        LEGACY_OR,
    ),
    (
        "event-ruler:JsonRuleCompilerTest.testCompile#v21",
        Ours::Invalid,
        "`exactly` is a library-only operator that EventBridge does not document",
    ),
    (
        "event-ruler:MachineComplexityEvaluatorTest.testEvaluateNestedMachinesViaNextNameStates#v1",
        Ours::Invalid,
        "wildcard complexity 12 is above EventBridge's limit (corpus §4.9)",
    ),
    (
        "event-ruler:ACMachineTest.testACWithExistFalseRule#1",
        Ours::Matches(false),
        EXISTS_FALSE_ORDER,
    ),
    (
        "event-ruler:RulerTest.WHEN_JSONContainsArrays_THEN_RulerNoCompileMatchesWork#3",
        Ours::Matches(false),
        EXISTS_FALSE_ORDER,
    ),
    (
        "probe:exists-false-array-order#1",
        Ours::Matches(false),
        EXISTS_FALSE_ORDER,
    ),
    (
        "probe:exists-false-array-order#2",
        Ours::Matches(false),
        EXISTS_FALSE_ORDER,
    ),
    (
        "probe:exists-false-array-order#4",
        Ours::Matches(false),
        EXISTS_FALSE_ORDER,
    ),
    ("probe:cidr#7", Ours::Matches(false), CROSS_FAMILY_CIDR),
    ("probe:cidr#10", Ours::Matches(false), CROSS_FAMILY_CIDR),
];

/// Deviations are only allowed where EventBridge's answer is not pinned down.
#[test]
fn deviations_are_only_on_eventbridge_false_cases() {
    let cases: Vec<Case> = ["matches.jsonl", "valid.jsonl", "invalid.jsonl"]
        .iter()
        .flat_map(|file| read_cases(file))
        .collect();
    for (name, _, reason) in DEVIATIONS {
        let case = cases
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("{name} is not in the corpus"));
        assert!(
            !case.eventbridge,
            "{name} is an EventBridge case; we may not deviate ({reason})"
        );
    }
}

fn deviation(name: &str) -> Option<Ours> {
    DEVIATIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ours, _)| *ours)
}

/// Parses and builds with the default limits; returns the pattern or the error message.
fn compile_one(text: &str) -> Result<(Pattern, Matcher), (bool, String)> {
    let pattern = Pattern::parse(text).map_err(|e| (e.is_syntax(), e.message().to_owned()))?;
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("case"), pattern.clone());
    let matcher = builder.build().map_err(|e| (false, e.to_string()))?;
    Ok((pattern, matcher))
}

#[test]
fn conformance_matches() {
    let mut failures = Vec::new();
    for case in read_cases("matches.jsonl") {
        let pattern_text = case.text(&case.pattern);
        let event_text = case.text(case.event.as_ref().expect("match cases have events"));
        let expected = case.matches.expect("match cases have a verdict");
        let expected = match deviation(&case.name) {
            None => Some(expected),
            Some(Ours::Matches(ours)) => Some(ours),
            Some(Ours::Invalid) => None,
        };
        let (pattern, matcher) = match (compile_one(&pattern_text), expected) {
            (Ok(compiled), Some(_)) => compiled,
            (Err(_), None) => continue,
            (Ok(_), None) => {
                failures.push(format!("{}: accepted, we chose to reject it", case.name));
                continue;
            }
            (Err((_, message)), Some(_)) => {
                failures.push(format!("{}: rejected: {message}", case.name));
                continue;
            }
        };
        let expected = expected.expect("checked above");
        let compiled = matcher
            .matches(event_text.as_bytes())
            .map(|hits| !hits.is_empty());
        let naive = reference::matches(&pattern, event_text.as_bytes(), 128);
        if compiled != Ok(expected) {
            failures.push(format!(
                "{}: matcher said {compiled:?}, expected {expected}",
                case.name
            ));
        }
        if naive != Ok(expected) {
            failures.push(format!(
                "{}: reference said {naive:?}, expected {expected}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn conformance_valid() {
    let mut failures = Vec::new();
    for case in read_cases("valid.jsonl") {
        let text = case.text(&case.pattern);
        let ours = deviation(&case.name);
        match (compile_one(&text), ours) {
            (Ok((pattern, _)), None) => {
                let again = Pattern::parse(&pattern.to_json()).expect("rendered pattern parses");
                if again != pattern {
                    failures.push(format!("{}: does not round-trip", case.name));
                }
            }
            (Err(_), Some(Ours::Invalid)) => {}
            (Ok(_), Some(_)) => {
                failures.push(format!("{}: accepted, we chose to reject", case.name))
            }
            (Err((_, message)), _) => failures.push(format!("{}: {message}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn conformance_invalid() {
    let mut failures = Vec::new();
    for case in read_cases("invalid.jsonl") {
        let text = case.text(&case.pattern);
        match compile_one(&text) {
            Ok(_) if case.eventbridge => failures.push(format!("{}: accepted", case.name)),
            Ok(_) => {}
            // Malformed JSON only needs *an* error (corpus §5).
            Err((true, _)) => {}
            Err((false, message)) => {
                if case.eventbridge
                    && let Some(expected) = &case.message
                    && message != *expected
                {
                    failures.push(format!(
                        "{}: said {message:?}, expected {expected:?}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every rule's verdict in a shared matcher equals its verdict alone: all match cases are
/// compiled together in chunks and every event is matched against every chunk.
#[test]
fn conformance_rules_together_agree_with_each_alone() {
    let cases: Vec<(String, Pattern, String)> = read_cases("matches.jsonl")
        .into_iter()
        .filter_map(|case| {
            let pattern = compile_one(&case.text(&case.pattern)).ok()?.0;
            let event = case.text(case.event.as_ref()?);
            Some((case.name, pattern, event))
        })
        .collect();
    for chunk in cases.chunks(150) {
        let mut builder = Matcher::builder();
        for (name, pattern, _) in chunk {
            builder.add(RuleId::from(name.as_str()), pattern.clone());
        }
        let matcher = builder.build().expect("chunk builds");
        for (_, _, event) in chunk {
            let Ok(hits) = matcher.matches(event.as_bytes()) else {
                continue;
            };
            let hits: Vec<&str> = hits.iter().map(|id| id.as_str()).collect();
            let mut alone: Vec<&str> = chunk
                .iter()
                .filter(|(_, pattern, _)| {
                    reference::matches(pattern, event.as_bytes(), 128) == Ok(true)
                })
                .map(|(name, _, _)| name.as_str())
                .collect();
            alone.sort_unstable();
            alone.dedup();
            assert_eq!(hits, alone, "event {event}");
        }
    }
}

/// The copies in router/tests/data/conformance equal the shared corpus when it is there
/// (`../shared/conformance` from the workspace root).
#[test]
#[allow(clippy::print_stderr, reason = "a skipped comparison says so loudly")]
fn conformance_copies_are_current() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    if !shared.is_dir() {
        eprintln!(
            "SKIPPED: {} is not there; cannot compare the corpus copies",
            shared.display()
        );
        return;
    }
    for file in ["matches.jsonl", "valid.jsonl", "invalid.jsonl"] {
        let ours = std::fs::read(data_dir().join(file)).expect("our copy");
        let theirs = std::fs::read(shared.join(file)).expect("shared file");
        assert!(
            ours == theirs,
            "router/tests/data/conformance/{file} differs from {}; refresh it with \
             cp ../shared/conformance/*.jsonl router/tests/data/conformance/",
            shared.join(file).display()
        );
    }
}

// --- property tests ----------------------------------------------------------------------

const KEYS: &[&str] = &["a", "b", "c", "a.b"];

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            r#""x""#,
            r#""y""#,
            r#""xy""#,
            r#""""#,
            r#""X""#,
            r#""10.0.0.1""#,
            "1",
            "1.0",
            "2",
            "-1",
            "1e1",
            "true",
            "false",
            "null",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            r#"{"prefix":"x"}"#,
            r#"{"prefix":""}"#,
            r#"{"suffix":"y"}"#,
            r#"{"prefix":{"equals-ignore-case":"X"}}"#,
            r#"{"suffix":{"equals-ignore-case":"Y"}}"#,
            r#"{"equals-ignore-case":"xY"}"#,
            r#"{"wildcard":"x*"}"#,
            r#"{"wildcard":"*y"}"#,
            r#"{"wildcard":"*"}"#,
            r#"{"wildcard":"x*y"}"#,
            r#"{"anything-but":"x"}"#,
            r#"{"anything-but":["x","y"]}"#,
            r#"{"anything-but":[1,2]}"#,
            r#"{"anything-but":{"prefix":"x"}}"#,
            r#"{"anything-but":{"suffix":"y"}}"#,
            r#"{"anything-but":{"equals-ignore-case":"X"}}"#,
            r#"{"anything-but":{"wildcard":"*y"}}"#,
            r#"{"numeric":[">",0]}"#,
            r#"{"numeric":[">=",1,"<",2]}"#,
            r#"{"numeric":["=",10]}"#,
            r#"{"exists":true}"#,
            r#"{"exists":false}"#,
            r#"{"cidr":"10.0.0.0/24"}"#,
        ])
        .prop_map(str::to_owned),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop::collection::vec(condition(), 1..3).prop_map(|c| format!("[{}]", c.join(",")))
}

fn object(depth: u32) -> BoxedStrategy<String> {
    let value = if depth == 0 {
        leaf().boxed()
    } else {
        prop_oneof![3 => leaf(), 1 => object(depth - 1)].boxed()
    };
    let member = (prop::sample::select(KEYS), value).prop_map(|(k, v)| format!("\"{k}\":{v}"));
    let or = if depth == 0 {
        Just(None).boxed()
    } else {
        prop::option::weighted(0.2, prop::collection::vec(object(depth - 1), 2..3)).boxed()
    };
    (prop::collection::vec(member, 1..3), or)
        .prop_map(|(members, or)| {
            let mut parts = members;
            if let Some(alternatives) = or {
                parts.push(format!("\"$or\":[{}]", alternatives.join(",")));
            }
            format!("{{{}}}", parts.join(","))
        })
        .boxed()
}

fn event_value(depth: u32) -> BoxedStrategy<String> {
    let scalar = prop::sample::select(vec![
        r#""x""#,
        r#""y""#,
        r#""xy""#,
        r#""xay""#,
        r#""""#,
        r#""X""#,
        r#""Xy""#,
        r#""10.0.0.1""#,
        r#""10.0.0.01""#,
        r#""10.0.0.200""#,
        "1",
        "1.0",
        "10",
        "2",
        "1.5",
        "-1",
        "true",
        "false",
        "null",
        "9007199254740993",
    ])
    .prop_map(str::to_owned);
    if depth == 0 {
        return scalar.boxed();
    }
    prop_oneof![
        4 => scalar,
        1 => prop::collection::vec(event_value(depth - 1), 0..3)
            .prop_map(|v| format!("[{}]", v.join(","))),
        2 => event_object(depth - 1),
    ]
    .boxed()
}

fn event_object(depth: u32) -> BoxedStrategy<String> {
    prop::collection::vec((prop::sample::select(KEYS), event_value(depth)), 0..4)
        .prop_map(|members| {
            let parts: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", parts.join(","))
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matcher_agrees_with_reference(
        patterns in prop::collection::vec(object(2), 1..12),
        events in prop::collection::vec(event_object(3), 1..6),
    ) {
        let patterns: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::parse(p).expect("generated patterns are valid"))
            .collect();
        let mut builder = Matcher::builder();
        for (i, pattern) in patterns.iter().enumerate() {
            builder.add(RuleId::from(format!("r{i:02}")), pattern.clone());
        }
        let matcher = builder.build().expect("generated patterns fit the limits");
        for event in &events {
            let hits: Vec<String> = matcher
                .matches(event.as_bytes())
                .expect("generated events are objects")
                .iter()
                .map(|id| id.to_string())
                .collect();
            let alone: Vec<String> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| reference::matches(p, event.as_bytes(), 128) == Ok(true))
                .map(|(i, _)| format!("r{i:02}"))
                .collect();
            prop_assert_eq!(hits, alone, "event {}", event);
        }
    }

    #[test]
    fn pattern_round_trips_through_json(pattern in object(3)) {
        let parsed = Pattern::parse(&pattern).expect("generated patterns are valid");
        let rendered = parsed.to_json();
        let again = Pattern::parse(&rendered).expect("rendered patterns parse");
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(again.to_json(), rendered);
    }

    #[test]
    fn parser_never_panics(text in "\\PC{0,64}") {
        let _ = Pattern::parse(&text);
    }

    #[test]
    fn matcher_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let mut builder = Matcher::builder();
        builder.add(RuleId::from("r"), Pattern::parse(r#"{"a":[{"exists":true}],"b":{"c":["x"]}}"#).unwrap());
        let matcher = builder.build().unwrap();
        let _ = matcher.matches(&bytes);
    }
}
