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

/// Byte strings of each length from 0 to `max_len`, `per_len` of each, over an alphabet
/// that holds NUL, a control byte, letters and a byte that is never UTF-8: for the tests of
/// code that packs short keys into words.
pub(crate) fn byte_strings(max_len: usize, per_len: usize) -> Vec<Vec<u8>> {
    let alphabet = [0u8, 1, b'a', b'b', 0xff];
    let mut strings = vec![Vec::new()];
    for len in 1..=max_len {
        for n in 0..per_len {
            strings.push(
                (0..len)
                    .map(|i| alphabet[(n * 7 + i * n + i) % alphabet.len()])
                    .collect(),
            );
        }
    }
    strings
}

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
    pattern_object(KEYS, leaf().boxed(), 1..3, (0.2, 2..3), depth)
}

/// A JSON object's text from its members, each a key and a value's JSON text.
pub(crate) fn json_object<K: std::fmt::Display, V: std::fmt::Display>(
    members: impl IntoIterator<Item = (K, V)>,
) -> String {
    let parts: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Pattern objects over `keys`: `members` members whose values are `leaf` lists or, below
/// `depth`, nested objects, and with probability `or.0` an `$or` of `or.1` nested objects.
pub(crate) fn pattern_object(
    keys: &'static [&'static str],
    leaf: BoxedStrategy<String>,
    members: std::ops::Range<usize>,
    or: (f64, std::ops::Range<usize>),
    depth: u32,
) -> BoxedStrategy<String> {
    let nested = |leaf: &BoxedStrategy<String>| {
        pattern_object(keys, leaf.clone(), members.clone(), or.clone(), depth - 1)
    };
    let value = if depth == 0 {
        leaf.clone()
    } else {
        prop_oneof![3 => leaf.clone(), 1 => nested(&leaf)].boxed()
    };
    let alternatives = if depth == 0 {
        Just(None).boxed()
    } else {
        prop::option::weighted(or.0, prop::collection::vec(nested(&leaf), or.1.clone())).boxed()
    };
    (
        prop::collection::vec((prop::sample::select(keys), value), members.clone()),
        alternatives,
    )
        .prop_map(|(mut members, alternatives)| {
            if let Some(alternatives) = alternatives {
                members.push(("$or", format!("[{}]", alternatives.join(","))));
            }
            json_object(members)
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
        .prop_map(json_object)
        .boxed()
}

/// The names of the rules that match `event`, in order.
fn hit_names(matcher: &Matcher, event: &str) -> Vec<String> {
    matcher
        .matches(event.as_bytes())
        .expect("the event is a JSON object")
        .iter()
        .map(|id| id.to_string())
        .collect()
}

/// Compiles `patterns` together (as `r000`, `r001`, …) and checks that on every event the
/// matcher returns exactly the rules the reference interpreter matches one by one; the
/// failure message shows the rules that disagree.
pub(crate) fn agree_with_reference(
    patterns: &[Pattern],
    events: &[String],
) -> Result<(), TestCaseError> {
    let mut builder = Matcher::builder();
    for (i, pattern) in patterns.iter().enumerate() {
        builder.add(RuleId::from(format!("r{i:03}")), pattern.clone());
    }
    let matcher = builder.build().expect("each pattern builds alone");
    for event in events {
        let hits = match matcher.matches(event.as_bytes()) {
            Ok(hits) => hits,
            // Only an event past the consistency budget may be refused: not a wrong answer.
            Err(e) if e.to_string().contains("ran past the budget") => continue,
            Err(e) => return Err(TestCaseError::fail(format!("event {event}: {e}"))),
        };
        let hits: Vec<String> = hits.iter().map(|id| id.to_string()).collect();
        let alone: Vec<String> = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| reference::matches(p, event.as_bytes(), 128) == Ok(true))
            .map(|(i, _)| format!("r{i:03}"))
            .collect();
        if hits != alone {
            let differing: Vec<String> = patterns
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let id = format!("r{i:03}");
                    hits.contains(&id) != alone.contains(&id)
                })
                .map(|(i, p)| format!("r{i:03} = {p}"))
                .collect();
            return Err(TestCaseError::fail(format!(
                "event {event}\nmatcher: {hits:?}\nreference: {alone:?}\ndiffering rules:\n{}",
                differing.join("\n")
            )));
        }
    }
    Ok(())
}

/// Values built to test array consistency: objects over few keys (repeated now and then),
/// arrays of them, nested arrays, and two numbers.
fn nested_value(depth: u32) -> BoxedStrategy<String> {
    let scalar = prop::sample::select(vec!["1", "2"]).prop_map(str::to_owned);
    if depth == 0 {
        return scalar.boxed();
    }
    prop_oneof![
        2 => scalar,
        3 => prop::collection::vec(nested_value(depth - 1), 0..4)
            .prop_map(|v| format!("[{}]", v.join(","))),
        3 => nested_object(depth - 1),
    ]
    .boxed()
}

fn nested_object(depth: u32) -> BoxedStrategy<String> {
    // Few keys, so that objects often repeat one.
    let key = prop::sample::select(vec!["a", "b", "x", "y"]);
    prop::collection::vec((key, nested_value(depth)), 0..5)
        .prop_map(json_object)
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
        agree_with_reference(&patterns, &events)?;
    }

    /// Rules of several fields met inside nested arrays of objects, some of whose keys
    /// repeat: the matcher's consistency decision (counting up the tree of elements, or the
    /// bounded search when keys repeat) agrees with the reference's plain search.
    #[test]
    fn array_consistency_agrees_with_reference(
        rules in prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(vec!["a.x", "a.y", "a.a.x", "a.a.y", "a.b", "b", "b.x"]),
                prop::sample::select(vec!["[1]", "[2]", "[1,2]", r#"[{"exists":true}]"#]),
                2..5,
            ),
            1..6,
        ),
        events in prop::collection::vec(nested_object(4), 1..8),
    ) {
        let patterns: Vec<Pattern> = rules
            .iter()
            .map(|fields| {
                Pattern::parse(&json_object(fields)).expect("generated patterns are valid")
            })
            .collect();
        agree_with_reference(&patterns, &events)?;
    }

    /// Many rules sharing exact values, so that composite anchors (several constraints
    /// combined) are used too.
    #[test]
    fn many_exact_rules_agree_with_reference(
        rules in prop::collection::vec(
            (
                prop::sample::select(vec![r#""x""#, r#""y""#, "1", "true", r#""x","y""#]),
                prop::sample::select(vec![r#""x""#, r#""y""#, "null", "2"]),
                prop::option::of(prop::sample::select(vec![r#""x""#, r#"{"prefix":"x"}"#, r#"{"anything-but":"y"}"#])),
            ),
            20..60,
        ),
        events in prop::collection::vec(event_object(3), 1..8),
    ) {
        let patterns: Vec<Pattern> = rules
            .iter()
            .map(|(a, b, c)| {
                let c = c.map(|c| format!(r#","c":[{c}]"#)).unwrap_or_default();
                Pattern::parse(&format!(r#"{{"a":[{a}],"b":[{b}]{c}}}"#)).expect("valid")
            })
            .collect();
        agree_with_reference(&patterns, &events)?;
    }

    /// Many numeric rules, so that numeric anchors are looked up by value.
    #[test]
    fn many_numeric_rules_agree_with_reference(
        ranges in prop::collection::vec((0u8..5, -20i32..20, 1i32..15), 20..80),
        values in prop::collection::vec(prop::collection::vec(-25i32..25, 0..3), 1..10),
    ) {
        let patterns: Vec<Pattern> = ranges
            .iter()
            .map(|&(shape, lo, width)| {
                let numeric = match shape {
                    0 => format!(r#"[">",{lo}]"#),
                    1 => format!(r#"["<=",{lo}]"#),
                    2 => format!(r#"["=",{lo}]"#),
                    3 => format!(r#"[">",{lo},"<=",{}]"#, lo + width),
                    _ => format!(r#"[">=",{}.5,"<",{}]"#, lo, lo + width),
                };
                Pattern::parse(&format!(r#"{{"n":[{{"numeric":{numeric}}}],"k":["x"]}}"#)).expect("valid")
            })
            .collect();
        let events: Vec<String> = values
            .iter()
            .map(|numbers| {
                let list: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
                format!(r#"{{"n":[{}],"k":"x"}}"#, list.join(","))
            })
            .collect();
        agree_with_reference(&patterns, &events)?;
    }

    /// Removing rules and adding them back after the build gives the same answers as
    /// building from scratch.
    #[test]
    fn add_and_remove_after_build(
        patterns in prop::collection::vec(object(2), 2..30),
        events in prop::collection::vec(event_object(3), 1..6),
    ) {
        let patterns: Vec<(RuleId, Pattern)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (RuleId::from(format!("r{i:02}")), Pattern::parse(p).expect("valid")))
            .collect();
        let build = |rules: &[&(RuleId, Pattern)]| {
            let mut builder = Matcher::builder();
            for (id, pattern) in rules {
                builder.add(id.clone(), pattern.clone());
            }
            builder.build().expect("fits the limits")
        };
        let all: Vec<&(RuleId, Pattern)> = patterns.iter().collect();
        let kept: Vec<&(RuleId, Pattern)> = patterns.iter().step_by(2).collect();
        let mut matcher = build(&all);
        for (id, _) in patterns.iter().skip(1).step_by(2) {
            prop_assert!(matcher.remove(id));
        }
        let fresh = build(&kept);
        for event in &events {
            prop_assert_eq!(matcher.matches(event.as_bytes()), fresh.matches(event.as_bytes()));
        }
        for (id, pattern) in patterns.iter().skip(1).step_by(2) {
            matcher.add(id.clone(), pattern.clone()).expect("fits the limits");
        }
        let fresh = build(&all);
        for event in &events {
            prop_assert_eq!(matcher.matches(event.as_bytes()), fresh.matches(event.as_bytes()));
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

/// The compiled matcher and the reference interpreter print byte-identical output (the
/// bench README §2 format) on the shared workload. Set `EVENTFORK_WORKLOAD` to a folder made
/// by `python3 ../shared/bench/gen_workload.py --out DIR`, and optionally
/// `EVENTFORK_WORKLOAD_EVENTS` (default 10,000); run it in release mode:
/// `EVENTFORK_WORKLOAD=DIR cargo test --release -p router --no-default-features --lib workload`.
#[test]
#[allow(
    clippy::print_stderr,
    reason = "progress and the skip notice go to stderr"
)]
fn workload_output_equals_reference() {
    let Some(dir) = std::env::var_os("EVENTFORK_WORKLOAD") else {
        eprintln!("SKIPPED: workload_output_equals_reference; set EVENTFORK_WORKLOAD=DIR");
        return;
    };
    let dir = PathBuf::from(dir);
    let n_events: usize = std::env::var("EVENTFORK_WORKLOAD_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let events_text = std::fs::read_to_string(dir.join("events.jsonl")).expect("events.jsonl");
    let events: Vec<&str> = events_text.lines().take(n_events).collect();
    let parsed: Vec<reference::Event> = events
        .iter()
        .map(|e| reference::Event::parse(e.as_bytes(), 128).expect("workload events are objects"))
        .collect();
    for flavour in ["full", "common"] {
        for n_rules in [1, 10, 100, 1000, 10_000] {
            let path = dir.join(format!("{flavour}/rules-{n_rules}.json"));
            let text = std::fs::read_to_string(&path).expect("rules file");
            let raw: std::collections::BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(&text).expect("rules JSON");
            let rules: Vec<(String, Pattern)> = raw
                .iter()
                .map(|(name, pattern)| {
                    (
                        name.clone(),
                        Pattern::parse(pattern.get()).expect("valid rule"),
                    )
                })
                .collect();
            let mut builder = Matcher::builder();
            for (name, pattern) in &rules {
                builder.add(RuleId::from(name.as_str()), pattern.clone());
            }
            let matcher = builder.build().expect("workload rules build");
            let naive: Vec<(&str, reference::Rule<'_>)> = rules
                .iter()
                .map(|(name, pattern)| (name.as_str(), reference::Rule::new(pattern)))
                .collect();
            let mut n_differences = 0;
            for (line, (event, tree)) in events.iter().zip(&parsed).enumerate() {
                let compiled: Vec<&str> = matcher
                    .matches(event.as_bytes())
                    .expect("workload events are valid")
                    .iter()
                    .map(|id| id.as_str())
                    .collect();
                let leaves = tree.leaves();
                let mut expected: Vec<&str> = naive
                    .iter()
                    .filter(|(_, rule)| rule.matches_leaves(&leaves))
                    .map(|(name, _)| *name)
                    .collect();
                expected.sort_unstable();
                if compiled != expected {
                    n_differences += 1;
                    eprintln!(
                        "{flavour}/{n_rules} line {}: {compiled:?} != {expected:?}",
                        line + 1
                    );
                }
            }
            eprintln!(
                "{flavour}/rules-{n_rules}: {} events compared",
                events.len()
            );
            assert_eq!(n_differences, 0, "{flavour}/rules-{n_rules}");
        }
    }
}

/// The examples of docs/PATTERNS.md hold: in each example table, the `pattern` row matches
/// every event of its `matches` row and none of its `does not match` row.
#[test]
fn reference_doc_examples_hold() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PATTERNS.md"))
            .expect("docs/PATTERNS.md");
    let code_spans = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut pattern: Option<Pattern> = None;
    let mut n_checked = 0;
    for line in doc.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() != 2 {
            continue;
        }
        let (label, cell) = (cells[0].trim_start_matches("| ").trim(), cells[1]);
        match label {
            "pattern" => {
                // A header row (`| pattern | error |`) has no code span.
                pattern = code_spans(cell)
                    .pop()
                    .map(|text| Pattern::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}")));
            }
            "matches" | "does not match" => {
                let Some(pattern) = pattern.as_ref() else {
                    continue;
                };
                let mut builder = Matcher::builder();
                builder.add(RuleId::from("doc"), pattern.clone());
                let matcher = builder.build().expect("doc patterns build");
                for event in code_spans(cell) {
                    let hit = !matcher
                        .matches(event.as_bytes())
                        .expect("doc events are valid")
                        .is_empty();
                    assert_eq!(hit, label == "matches", "{pattern} {label} {event}");
                    let naive = reference::matches(pattern, event.as_bytes(), 128);
                    assert_eq!(
                        naive,
                        Ok(label == "matches"),
                        "reference: {pattern} {label} {event}"
                    );
                    n_checked += 1;
                }
            }
            _ => {}
        }
    }
    assert!(n_checked >= 30, "only {n_checked} examples found");
}

/// IP literals as event-ruler reads them, in the compiled matcher and the reference alike:
/// an IPv6 form with a dotted tail is no IP, an IPv4-mapped address in hex is its IPv4
/// address, in events and in exact pattern values (found by an audit).
#[test]
fn ip_literals_are_read_as_event_ruler_reads_them() {
    for (pattern, event, expected) in [
        (
            r#"{"a":[{"cidr":"10.0.0.0/8"}]}"#,
            r#"{"a":"::ffff:a00:1"}"#,
            true,
        ),
        (
            r#"{"a":[{"cidr":"10.0.0.0/8"}]}"#,
            r#"{"a":"::ffff:10.0.0.1"}"#,
            false,
        ),
        (
            r#"{"a":[{"cidr":"::/0"}]}"#,
            r#"{"a":"::ffff:10.0.0.1"}"#,
            false,
        ),
        (r#"{"a":[{"cidr":"::/0"}]}"#, r#"{"a":"::10.0.0.1"}"#, false),
        (r#"{"a":[{"cidr":"::/0"}]}"#, r#"{"a":"::a00:1"}"#, true),
        (r#"{"a":["10.0.0.1"]}"#, r#"{"a":"::ffff:a00:1"}"#, true),
        (r#"{"a":["::ffff:a00:1"]}"#, r#"{"a":"10.0.0.1"}"#, true),
        (r#"{"a":["::10.0.0.1"]}"#, r#"{"a":"::a00:1"}"#, false),
    ] {
        let pattern = Pattern::parse(pattern).unwrap();
        let mut builder = Matcher::builder();
        builder.add(RuleId::from("r"), pattern.clone());
        let matcher = builder.build().unwrap();
        assert_eq!(
            !hit_names(&matcher, event).is_empty(),
            expected,
            "matcher: {pattern} {event}"
        );
        assert_eq!(
            reference::matches(&pattern, event.as_bytes(), 128),
            Ok(expected),
            "reference: {pattern} {event}"
        );
    }
}

/// When each value is shared by many rules but pairs of values are not, the pair becomes the
/// anchor, and matching stays exact.
#[test]
fn composite_anchors_are_used_and_exact() {
    let mut builder = Matcher::builder();
    for i in 0..100 {
        let text = format!(
            r#"{{"a":["a{}"],"b":["b{}"],"c":[{{"exists":true}}]}}"#,
            i % 10,
            i / 10
        );
        builder.add(
            RuleId::from(format!("r{i:03}")),
            Pattern::parse(&text).unwrap(),
        );
    }
    let matcher = builder.build().unwrap();
    assert!(
        matcher
            .explain()
            .contains("a + b (combined): 100 value combinations")
    );
    let hits = |event: &str| hit_names(&matcher, event);
    assert_eq!(hits(r#"{"a":"a3","b":"b7","c":null}"#), ["r073"]);
    assert_eq!(
        hits(r#"{"a":["a3","a4"],"b":"b7","c":1}"#),
        ["r073", "r074"]
    );
    assert!(hits(r#"{"a":"a3","b":"b7"}"#).is_empty());
    assert!(hits(r#"{"x":[{"a":"a3"}],"b":"b7","c":1}"#).is_empty());
}

/// Composite anchors on paths that only ever hold `true`, `false` or `null` in the rules:
/// the leaves of those paths need their interned values too.
#[test]
fn composite_anchors_over_literals_are_exact() {
    let literals = ["true", "false", "null"];
    let mut builder = Matcher::builder();
    for i in 0..90 {
        let text = format!(
            r#"{{"kind":["k{}"],"flag":[{}],"mark":[{}]}}"#,
            i % 10,
            literals[i % 3],
            literals[(i / 3) % 3]
        );
        builder.add(
            RuleId::from(format!("r{i:02}")),
            Pattern::parse(&text).unwrap(),
        );
    }
    let matcher = builder.build().unwrap();
    assert!(
        matcher.explain().contains("(combined)"),
        "{}",
        matcher.explain()
    );
    for kind in 0..10 {
        for flag in literals {
            for mark in literals {
                let event = format!(r#"{{"kind":"k{kind}","flag":{flag},"mark":{mark}}}"#);
                let hits = hit_names(&matcher, &event);
                let expected: Vec<String> = (0..90)
                    .filter(|i| {
                        i % 10 == kind && literals[i % 3] == flag && literals[(i / 3) % 3] == mark
                    })
                    .map(|i| format!("r{i:02}"))
                    .collect();
                assert_eq!(hits, expected, "{event}");
            }
        }
    }
}

/// Removing rules frees the values and tests they interned, and a matcher that lived
/// through many changes answers like one built afresh.
#[test]
fn churn_leaves_no_trace() {
    let pattern = |i: usize| {
        Pattern::parse(&format!(
            r#"{{"a":["v{}", {}],"b":[{{"prefix":"p{}"}}],"c":[{{"equals-ignore-case":"X{}"}}]}}"#,
            i % 7,
            i % 5,
            i % 3,
            i % 4
        ))
        .unwrap()
    };
    let events: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"a":["v{}",{}],"b":"p{}q","c":"x{}"}}"#,
                i % 7,
                i % 5,
                i % 3,
                i % 4
            )
        })
        .collect();
    let mut churned = Matcher::builder().build().unwrap();
    for round in 0..3 {
        for i in 0..600 {
            churned
                .add(RuleId::from(format!("r{i:03}")), pattern(i + round))
                .unwrap();
        }
        for i in 0..600 {
            assert!(churned.remove(&RuleId::from(format!("r{i:03}"))));
        }
        assert!(churned.is_empty());
        assert_eq!(churned.interned(), 0, "round {round}");
    }
    let mut fresh = Matcher::builder();
    for i in 0..50 {
        churned
            .add(RuleId::from(format!("r{i:03}")), pattern(i))
            .unwrap();
        fresh.add(RuleId::from(format!("r{i:03}")), pattern(i));
    }
    let fresh = fresh.build().unwrap();
    for event in &events {
        assert_eq!(
            churned.matches(event.as_bytes()).unwrap(),
            fresh.matches(event.as_bytes()).unwrap(),
            "{event}"
        );
        assert!(
            !fresh.matches(event.as_bytes()).unwrap().is_empty(),
            "{event}"
        );
    }
}

/// The check shortcuts (the branch-free prefix of one-value exact constraints and the
/// guard tried before a program) must give way to the full check when a path has several
/// leaves, one leaf inside an array, or none.
#[test]
fn exact_shortcuts_hold_for_arrays_and_absent_paths() {
    let patterns: Vec<Pattern> = (0..60)
        .map(|i| {
            Pattern::parse(&format!(
                r#"{{"source":["s{}"],"detail-type":["t{}"],"detail":{{"id":["u{}"],"tier":["gold"]}}}}"#,
                i % 3,
                i % 4,
                i
            ))
            .unwrap()
        })
        .collect();
    let mut builder = Matcher::builder();
    for (i, pattern) in patterns.iter().enumerate() {
        builder.add(RuleId::from(format!("r{i:02}")), pattern.clone());
    }
    let matcher = builder.build().unwrap();
    let hits = |event: &str| hit_names(&matcher, event);
    // Rule 7: source s1, detail-type t3, id u7.
    let cases = [
        (
            r#"{"source":"s1","detail-type":"t3","detail":{"id":"u7","tier":"gold"}}"#,
            true,
        ),
        (
            r#"{"source":["x","s1"],"detail-type":["t3"],"detail":{"id":["u7"],"tier":["a","gold"]}}"#,
            true,
        ),
        (
            r#"{"source":"s1","detail-type":"t3","detail":[{"id":"u8"},{"id":"u7","tier":"gold"}]}"#,
            true,
        ),
        // The two fields come from different elements of one array.
        (
            r#"{"source":"s1","detail-type":"t3","detail":[{"id":"u7"},{"tier":"gold"}]}"#,
            false,
        ),
        (
            r#"{"source":"s1","detail-type":"t2","detail":{"id":"u7","tier":"gold"}}"#,
            false,
        ),
        (
            r#"{"detail-type":"t3","detail":{"id":"u7","tier":"gold"}}"#,
            false,
        ),
        (
            r#"{"source":["s0","s2"],"detail-type":"t3","detail":{"id":"u7","tier":"gold"}}"#,
            false,
        ),
    ];
    for (event, matches) in cases {
        let expected: &[&str] = if matches { &["r07"] } else { &[] };
        assert_eq!(hits(event), expected, "{event}");
    }
    let events: Vec<String> = cases.iter().map(|(e, _)| e.to_string()).collect();
    agree_with_reference(&patterns, &events).unwrap();
}

/// Rules added and removed one by one after the build (guards, exact prefixes and
/// composite anchors chosen as they come, sub-rule and predicate ids reused) answer like
/// each rule alone, and two matchers used in turn on one thread (sharing its scratch
/// space) do not disturb each other.
#[test]
fn incremental_changes_and_alternating_matchers_agree_with_the_reference() {
    let pattern = |i: usize| {
        Pattern::parse(&format!(
            r#"{{"source":["s{}"],"detail-type":["t{}"],"detail":{{"tenant":["n{}"],"plan":["p{}"],"score":[{{"numeric":[">",{}]}}],"$or":[{{"mail":[{{"suffix":".d{}"}}]}},{{"flag":[true]}}]}}}}"#,
            i % 3,
            i % 5,
            i % 40,
            i % 4,
            i % 10,
            i % 6
        ))
        .unwrap()
    };
    let events: Vec<String> = (0..120)
        .map(|i| {
            format!(
                r#"{{"source":"s{}","detail-type":["t{}"],"detail":{{"tenant":"n{}","plan":"p{}","score":{},"mail":"x@y.d{}","flag":{}}}}}"#,
                i % 3,
                i % 5,
                i % 40,
                (i / 3) % 4,
                i % 13,
                i % 6,
                i % 2 == 0
            )
        })
        .collect();
    let mut live: Vec<Option<Pattern>> = vec![None; 400];
    let mut matcher = Matcher::builder().build().unwrap();
    let small = {
        let mut builder = Matcher::builder();
        builder.add(RuleId::from("only"), pattern(7));
        builder.build().unwrap()
    };
    for step in 0..1200usize {
        let slot = (step * 7919) % 400;
        if live[slot].is_some() && step % 3 == 0 {
            assert!(matcher.remove(&RuleId::from(format!("r{slot:03}"))));
            live[slot] = None;
        } else {
            let p = pattern(slot + step % 2);
            matcher
                .add(RuleId::from(format!("r{slot:03}")), p.clone())
                .unwrap();
            live[slot] = Some(p);
        }
        if step % 200 == 199 {
            for event in &events {
                let expected: Vec<String> = live
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        p.as_ref().is_some_and(|p| {
                            reference::matches(p, event.as_bytes(), 128) == Ok(true)
                        })
                    })
                    .map(|(i, _)| format!("r{i:03}"))
                    .collect();
                assert_eq!(hit_names(&matcher, event), expected, "step {step}: {event}");
                let alone = reference::matches(&pattern(7), event.as_bytes(), 128) == Ok(true);
                assert_eq!(
                    hit_names(&small, event).len(),
                    usize::from(alone),
                    "{event}"
                );
            }
        }
    }
    // The rules above are meant to reach composite anchors too.
    assert!(
        matcher.explain().contains("(combined)"),
        "{}",
        matcher.explain()
    );
}

/// A builder given one id twice keeps the last pattern, indexed once: removing the rule
/// leaves nothing behind.
#[test]
fn a_repeated_id_in_the_builder_is_indexed_once() {
    let first = Pattern::parse(r#"{"source": [{"prefix": "com."}], "a": ["x"]}"#).unwrap();
    let second =
        Pattern::parse(r#"{"source": [{"prefix": "org."}], "b": [{"numeric": [">", 1]}]}"#)
            .unwrap();
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("r"), first);
    builder.add(RuleId::from("r"), second.clone());
    let mut matcher = builder.build().unwrap();
    let mut alone = Matcher::builder();
    alone.add(RuleId::from("r"), second);
    let alone = alone.build().unwrap();
    assert_eq!(matcher.len(), 1);
    assert_eq!(matcher.indexed(), alone.indexed());
    assert_eq!(hit_names(&matcher, r#"{"source": "org.x", "b": 2}"#), ["r"]);
    assert!(hit_names(&matcher, r#"{"source": "com.x", "a": "x"}"#).is_empty());
    assert!(matcher.remove(&RuleId::from("r")));
    assert_eq!((matcher.indexed(), matcher.interned()), (0, 0));
}

/// The counts that choose composite anchors follow the rules: removing every rule that
/// could combine two paths leaves none behind, whichever order they go in.
#[test]
fn removed_rules_leave_no_composite_counts() {
    let mut matcher = Matcher::builder().build().unwrap();
    for i in 0..40 {
        let pattern = Pattern::parse(&format!(
            r#"{{"source":["s{}"],"detail-type":["t{}"],"detail":{{"n":[{{"numeric":[">",{i}]}}]}}}}"#,
            i % 3,
            i % 5
        ))
        .unwrap();
        matcher
            .add(RuleId::from(format!("r{i:02}")), pattern)
            .unwrap();
    }
    assert!(matcher.composite_counted() > 0);
    for i in (1..40).step_by(2).chain((0..40).step_by(2).rev()) {
        assert!(matcher.remove(&RuleId::from(format!("r{i:02}"))), "r{i:02}");
    }
    assert!(matcher.is_empty());
    assert_eq!(matcher.composite_counted(), 0);
}

/// `true` named on many paths: each path finds its own rules among the value's many homes.
#[test]
fn a_value_named_on_many_paths_leads_to_each_path_s_rules() {
    let mut builder = Matcher::builder();
    for i in 0..40 {
        let pattern = format!(r#"{{"p{i:02}": [true], "q": [{}]}}"#, i % 2 == 0);
        builder.add(
            RuleId::from(format!("r{i:02}")),
            Pattern::parse(&pattern).unwrap(),
        );
    }
    let matcher = builder.build().unwrap();
    for i in 0..40 {
        let event = format!(r#"{{"p{i:02}": true, "q": true, "p99": [true, true]}}"#);
        let expected: Vec<String> = if i % 2 == 0 {
            vec![format!("r{i:02}")]
        } else {
            Vec::new()
        };
        assert_eq!(hit_names(&matcher, &event), expected, "{event}");
    }
}

/// An event that is no object says what it is instead, and where.
#[test]
fn an_event_that_is_no_object_says_what_it_is() {
    let matcher = Matcher::builder().build().unwrap();
    for (event, expected) in [
        (&b""[..], "the event is empty"),
        (b" \n", "the event is only white space"),
        (
            b"  [1]",
            "the event is not a JSON object: it starts as a JSON array at byte 2",
        ),
        (
            b"\"x\"",
            "the event is not a JSON object: it starts as a JSON string at byte 0",
        ),
        (
            b"-1",
            "the event is not a JSON object: it starts as a JSON number at byte 0",
        ),
        (
            b"true",
            "the event is not a JSON object: it starts as a JSON boolean at byte 0",
        ),
        (
            b"null",
            "the event is not a JSON object: it starts as JSON null at byte 0",
        ),
        (
            b"\xc3\xa9",
            "the event is not a JSON object: it starts with byte 0xc3 at byte 0",
        ),
    ] {
        assert_eq!(matcher.matches(event).unwrap_err().to_string(), expected);
    }
}

/// An event cut inside a multi-byte character is truncated, not malformed.
#[test]
fn an_event_cut_inside_a_character_is_truncated() {
    let matcher = Matcher::builder().build().unwrap();
    let error = matcher.matches(b"{\"a\": \"caf\xc3").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the event is truncated (it ends after byte 11): unexpected end of input in a string"
    );
    let error = matcher.matches(b"{\"a\": \"caf\xc3(\"}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the event is not valid JSON at byte 10: invalid UTF-8 in a string"
    );
}

/// Thousands of constraints met only inside arrays: consistency is decided without
/// recursion, so no stack runs out (each constraint used to be a stack frame of the
/// search), and without comparing each hit with the ones taken before it.
#[test]
fn many_constraints_inside_arrays() {
    let n = 20_000;
    let fields: Vec<String> = (0..n).map(|i| format!(r#""f{i}":[1]"#)).collect();
    let mut builder = Matcher::builder();
    builder.max_pattern_chars(usize::MAX);
    builder.add(
        RuleId::from("wide"),
        Pattern::parse(&format!("{{{}}}", fields.join(","))).expect("valid pattern"),
    );
    let matcher = builder.build().expect("within the raised limits");
    let event = |last: &str| {
        let mut fields: Vec<String> = (0..n - 1).map(|i| format!(r#""f{i}":[1,2]"#)).collect();
        fields.push(format!(r#""f{}":{last}"#, n - 1));
        format!("{{{}}}", fields.join(","))
    };
    assert_eq!(
        matcher
            .matches(event("[2,1]").as_bytes())
            .expect("valid event")
            .len(),
        1
    );
    assert!(
        matcher
            .matches(event("[2,3]").as_bytes())
            .expect("valid event")
            .is_empty()
    );
}

/// The wildcard complexity limit names the measure it found; a long pattern with hundreds
/// of stars is refused at once (the search stops past the limit), and a raised limit lets a
/// pattern AWS refuses through.
#[test]
fn wildcard_complexity_limit() {
    let build = |glob: &str, limit: Option<usize>| {
        let mut builder = Matcher::builder();
        if let Some(limit) = limit {
            builder.max_wildcard_complexity(limit);
        }
        let pattern = serde_json::json!({ "arn": [{ "wildcard": glob }] }).to_string();
        builder.add(
            RuleId::from("r"),
            Pattern::parse(&pattern).expect("valid pattern"),
        );
        builder.build().map(|_| ()).map_err(|e| e.to_string())
    };
    let too_complex = "rule r at $.arn[0].wildcard: Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";
    assert_eq!(
        build("*:*:*:*:*:event-bus/*", None),
        Err(format!(
            "{too_complex} (complexity at least 10, more than max_wildcard_complexity = 8)"
        ))
    );
    assert_eq!(build("*:*:*:*:*:event-bus/*", Some(13)), Ok(()));
    assert_eq!(
        build("*:*:*:*:*:event-bus/*", Some(12)),
        Err(format!(
            "{too_complex} (complexity at least 13, more than max_wildcard_complexity = 12)"
        ))
    );
    assert_eq!(build("/Users/*/dir/dir/dir/dir/dir/doc.txt", None), Ok(()));
    // 1,022 characters, 511 stars: within the default length limit.
    let error = build(&"a*".repeat(511), None).unwrap_err();
    assert!(error.starts_with(too_complex), "{error}");
    assert!(
        error.ends_with("more than max_wildcard_complexity = 8)"),
        "{error}"
    );
    // Every string of seven `a`s and `b`s, one after a star each (1,024 characters): the
    // sets of live positions combine a count of stars reached with the last seven letters
    // read, more than the search visits. Such a pattern is refused under any limit short of
    // `usize::MAX`, which turns the check off.
    let glob: String = (0..128)
        .map(|i: u32| {
            let letters: String = (0..7)
                .map(|bit| if i >> bit & 1 == 0 { 'a' } else { 'b' })
                .collect();
            format!("*{letters}")
        })
        .collect();
    let gave_up = build(&glob, Some(1_000_000)).err();
    let error = gave_up.expect("too many sets of positions");
    assert!(
        error.ends_with("(the complexity search gave up after 4096 sets of positions; max_wildcard_complexity = 1000000)"),
        "{error}"
    );
}

/// Five fields inside elements of one array: four are met many times in one element, the
/// fifth only in another. A search that tries combinations takes 50^4 steps before it gives
/// up; counting up the tree of elements answers at once.
#[test]
fn array_consistency_is_decided_without_trying_combinations() {
    let fields: Vec<String> = (1..=5).map(|i| format!(r#""b{i}":{{"x":[1]}}"#)).collect();
    let mut builder = Matcher::builder();
    builder.add(
        RuleId::from("five"),
        Pattern::parse(&format!(r#"{{"a":{{{}}}}}"#, fields.join(","))).expect("valid pattern"),
    );
    let matcher = builder.build().expect("within the limits");
    let many = vec![r#"{"x":1}"#; 50].join(",");
    let four: Vec<String> = (1..=4).map(|i| format!(r#""b{i}":[{many}]"#)).collect();
    let apart = format!(r#"{{"a":[{{{}}},{{"b5":[{{"x":1}}]}}]}}"#, four.join(","));
    assert!(matcher.matches(apart.as_bytes()).unwrap().is_empty());
    let together = format!(r#"{{"a":[{{{},"b5":[{{"x":1}}]}}]}}"#, four.join(","));
    assert_eq!(matcher.matches(together.as_bytes()).unwrap().len(), 1);
    // A repeated key sends the same event to the bounded search, which runs out of steps:
    // the event is refused, not answered.
    let repeated = format!(
        r#"{{"a":[{{{}}},{{"b5":[{{"x":1}}]}}],"a":[{{"b1":[{{"x":1}}]}}]}}"#,
        four.join(",")
    );
    let refused = matcher.matches(repeated.as_bytes()).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "rule five: the event names a field twice around arrays (a repeated key, or a dotted key beside the nested one), and finding the rule's fields in one element of each array ran past the budget of 1000000 steps for one event"
    );
    // With few elements the search decides it, the same as the reference.
    let few = repeated.replace(&many, r#"{"x":1}"#);
    assert!(matcher.matches(few.as_bytes()).unwrap().is_empty());
    let pattern = Pattern::parse(&format!(r#"{{"a":{{{}}}}}"#, fields.join(","))).unwrap();
    assert_eq!(reference::matches(&pattern, few.as_bytes(), 128), Ok(false));
    // The budget is one per event: a search that one rule can afford, forty copies of the
    // rule cannot.
    let some = repeated.replace(&many, &[r#"{"x":1}"#; 10].join(","));
    assert!(matcher.matches(some.as_bytes()).unwrap().is_empty());
    let mut copies = Matcher::builder();
    for i in 0..40 {
        copies.add(RuleId::from(format!("copy{i:02}")), pattern.clone());
    }
    let copies = copies.build().expect("within the limits");
    let refused = copies.matches(some.as_bytes()).unwrap_err();
    assert!(
        refused.to_string().contains("ran past the budget"),
        "{refused}"
    );
}

/// Ranges with six decimals within EventBridge's ±5e9, alone and together, against events
/// at their bounds and between: the numeric index finds every range that holds the value.
/// (The index once skipped a range whose width, computed in float64, rounded down: the
/// event at its upper bound went unmatched.)
#[test]
fn numeric_ranges_hold_their_bounds() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decimal = || {
        let micros = (next() % 10_000_000_000_000_000) as i64 - 5_000_000_000_000_000;
        let sign = if micros < 0 { "-" } else { "" };
        let micros = micros.unsigned_abs();
        format!("{sign}{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    };
    let ranges: Vec<(String, String)> = (0..300)
        .map(|_| {
            let (a, b) = (decimal(), decimal());
            let (fa, fb) = (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
            if fa <= fb { (a, b) } else { (b, a) }
        })
        .collect();
    let rule = |(lo, hi): &(String, String)| {
        Pattern::parse(&format!(r#"{{"n":[{{"numeric":[">=",{lo},"<=",{hi}]}}]}}"#))
            .expect("valid range")
    };
    let holds = |(lo, hi): &(String, String), x: &str| {
        let x: f64 = x.parse().unwrap();
        lo.parse::<f64>().unwrap() <= x && x <= hi.parse::<f64>().unwrap()
    };
    let mut together = Matcher::builder();
    for (i, range) in ranges.iter().enumerate() {
        together.add(RuleId::from(format!("r{i:03}")), rule(range));
        let mut alone = Matcher::builder();
        alone.add(RuleId::from("alone"), rule(range));
        let alone = alone.build().unwrap();
        for x in [&range.0, &range.1] {
            let event = format!(r#"{{"n":{x}}}"#);
            assert_eq!(
                alone.matches(event.as_bytes()).unwrap().len(),
                1,
                "{range:?} at {x}"
            );
        }
    }
    let together = together.build().unwrap();
    let values: Vec<&String> = ranges.iter().flat_map(|(lo, hi)| [lo, hi]).collect();
    for x in values {
        let event = format!(r#"{{"n":{x}}}"#);
        let found: Vec<String> = together
            .matches(event.as_bytes())
            .unwrap()
            .iter()
            .map(|id| id.to_string())
            .collect();
        let expected: Vec<String> = (0..ranges.len())
            .filter(|&i| holds(&ranges[i], x))
            .map(|i| format!("r{i:03}"))
            .collect();
        assert_eq!(found, expected, "at {x}");
    }
}

/// After an outsized event the thread's scratch memory is given back; after ordinary
/// events it is kept for the next one.
#[test]
fn outsized_events_leave_no_scratch_behind() {
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("r"), Pattern::parse(r#"{"a":[1]}"#).unwrap());
    let matcher = builder.build().unwrap();
    let small = r#"{"a":[0,0,0,1]}"#;
    assert_eq!(matcher.matches(small.as_bytes()).unwrap().len(), 1);
    let kept = Matcher::scratch_leaves();
    assert!(kept >= 4, "{kept}");
    let big = format!(r#"{{"a":[{}1]}}"#, "0,".repeat(200_000));
    assert_eq!(matcher.matches(big.as_bytes()).unwrap().len(), 1);
    assert!(
        Matcher::scratch_leaves() < 1 << 16,
        "{}",
        Matcher::scratch_leaves()
    );
    assert_eq!(matcher.matches(small.as_bytes()).unwrap().len(), 1);
    // Fewer leaves than that, but twenty predicates on each: the predicate results are
    // what is outsized, and the scratch goes too.
    let mut builder = Matcher::builder();
    for i in 0..20 {
        let pattern = format!(r#"{{"a":[{{"wildcard":"*{i}*x"}}]}}"#);
        builder.add(
            RuleId::from(format!("w{i:02}")),
            Pattern::parse(&pattern).unwrap(),
        );
    }
    let wildcards = builder.build().unwrap();
    let many = format!(r#"{{"a":[{}"1x"]}}"#, "\"0\",".repeat(60_000));
    assert_eq!(wildcards.matches(many.as_bytes()).unwrap().len(), 1);
    assert_eq!(Matcher::scratch_leaves(), 0);
}

/// `explain` writes tests as a pattern's author would: addresses in CIDR notation, numbers
/// as numbers, counts with their plurals.
#[test]
fn explain_is_readable() {
    let mut builder = Matcher::builder();
    builder.add(
        RuleId::from("r"),
        Pattern::parse(
            r#"{"a":[{"cidr":"10.0.0.0/24"}],"b":[{"cidr":"2001:db8::/32"}],"c":["10.1.2.3"],
                "e":[{"anything-but":[404,500.5]}],"s":["x","y"],"n":[3e2,1e400]}"#,
        )
        .unwrap(),
    );
    let explained = builder.build().unwrap().explain();
    for line in [
        "  c: 1 IP address\n",
        "anchor c: ip 10.1.2.3\n",
        "check  s: \"x\" | \"y\"\n",
        "check  a: cidr 10.0.0.0/24\n",
        "check  b: cidr 2001:db8::/32\n",
        "check  e: anything but 404, 500.5\n",
        "check  n: 300 | 1e400 (text)\n",
    ] {
        assert!(explained.contains(line), "{line:?} in:\n{explained}");
    }
}

/// The explanation of a matcher holding one rule `r`.
fn explain(pattern: &str) -> String {
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("r"), Pattern::parse(pattern).unwrap());
    builder.build().unwrap().explain()
}

/// Wildcards are written in their pattern form, escapes kept: two wildcards that match
/// differently never read the same.
#[test]
fn explain_keeps_wildcard_escapes() {
    for (pattern, line) in [
        (r#"{"a":[{"wildcard":"a*"}]}"#, r#"anchor a: wildcard "a*""#),
        (
            r#"{"a":[{"wildcard":"a\\*"}]}"#,
            r#"anchor a: wildcard "a\\*""#,
        ),
        (
            r#"{"a":[{"wildcard":"a\\**"}]}"#,
            r#"anchor a: wildcard "a\\**""#,
        ),
        (
            r#"{"a":[{"wildcard":"a\\\\*"}]}"#,
            r#"anchor a: wildcard "a\\\\*""#,
        ),
        (
            r#"{"a":[{"anything-but":{"wildcard":"*x*"}}]}"#,
            r#"anything but wildcard "*x*""#,
        ),
        (
            r#"{"a":[{"anything-but":{"wildcard":["*x\\*","\\\\*"]}}]}"#,
            r#"anything but wildcard "*x\\*", "\\\\*""#,
        ),
    ] {
        let explained = explain(pattern);
        assert!(
            explained.contains(&format!("{line}\n")),
            "{line} in:\n{explained}"
        );
    }
}

/// Keys and values from a pattern cannot break a line, forge one or send terminal codes:
/// keys that are not plain names are quoted as in error paths, and control, bidirectional
/// and line-separator characters are escaped.
#[test]
fn explain_escapes_paths_and_hidden_characters() {
    let explained = explain(
        r#"{"a\nb\u001b[2Jc":["x"],"d":{"k: 1 exact value\n  z":["\u202ey\u2028"]},
            "e\u2029":{"f":[{"prefix":"\u0085"}]},"$or":[{"g":["1"],"h":["2"]},{"g":["3"]}]}"#,
    );
    assert_eq!(
        explained,
        r#"matcher: 1 rule, 2 sub-rules after $or expansion, 5 field paths

field index (anchors by path):
  ["a\nb\u001b[2Jc"]: (checked only)
  d["k: 1 exact value\n  z"]: (checked only)
  ["e\u2029"].f: (checked only)
  g: 2 exact values
  h: (checked only)

rule r: {"a\nb\u001b[2Jc":["x"],"d":{"k: 1 exact value\n  z":["\u202ey\u2028"]},"e\u2029":{"f":[{"prefix":"\u0085"}]},"$or":[{"g":["1"],"h":["2"]},{"g":["3"]}]}
  sub-rule 0:
    check  ["a\nb\u001b[2Jc"]: "x"
    check  d["k: 1 exact value\n  z"]: "\u202ey\u2028"
    anchor g: "1"
    check  h: "2"
    check  ["e\u2029"].f: prefix "\u0085"
  sub-rule 1:
    check  ["a\nb\u001b[2Jc"]: "x"
    check  d["k: 1 exact value\n  z"]: "\u202ey\u2028"
    anchor g: "3"
    check  ["e\u2029"].f: prefix "\u0085"
"#
    );
    // A rule id with hidden characters is quoted; a plain one is written as it is.
    let mut builder = Matcher::builder();
    builder.add(
        RuleId::from("x\n\u{202e}y"),
        Pattern::parse(r#"{"a":["1"]}"#).unwrap(),
    );
    let explained = builder.build().unwrap().explain();
    assert!(
        explained.contains("\nrule \"x\\n\\u202ey\": {"),
        "{explained}"
    );
}

/// Exact numbers are written in their shortest form, with an exponent when they are very
/// large or very small; `numeric` keeps the number as written.
#[test]
fn explain_writes_numbers_short() {
    let explained = explain(
        r#"{"a":[1e300,1.5e-10,-1e-300,0.000001,2e21,1e20],
            "b":[{"anything-but":[1e300,2.5e-7]}],"c":[{"numeric":[">",1e300,"<",1E301]}]}"#,
    );
    for line in [
        " a: 1e300 | 1.5e-10 | -1e-300 | 0.000001 | 2e21 | 100000000000000000000\n",
        " b: anything but 1e300, 2.5e-7\n",
        " c: numeric > 1e300 and < 1E301\n",
    ] {
        assert!(explained.contains(line), "{line:?} in:\n{explained}");
    }
}

/// A broken limit names the part of the pattern over it: the wildcard, the object nested
/// too deep, or the whole pattern (`$`) for its length and its `$or` combinations.
#[test]
fn limit_errors_name_the_path() {
    let error = |pattern: &str| {
        let mut builder = Matcher::builder();
        builder.max_nesting(3).max_or_combinations(3);
        builder.add(RuleId::from("r"), Pattern::parse(pattern).unwrap());
        let error = builder.build().map(|_| ()).unwrap_err();
        (error.path().to_owned(), error.limit(), error.to_string())
    };
    let (path, limit, _) = error(
        r#"{"a":["x"],"$or":[{"b":["y"]},{"c":{"d":[{"anything-but":{"wildcard":["ok","*:*:*:*:*:e/*"]}}]}}]}"#,
    );
    assert_eq!(
        (path.as_str(), limit),
        (
            "$.$or[1].c.d[0].anything-but.wildcard[1]",
            "max_wildcard_complexity"
        )
    );
    let (path, limit, text) =
        error(r#"{"a":{"b":["x"]},"$or":[{"c":["x"]},{"c":{"d":{"e":{"f":["x"]}}}}]}"#);
    assert_eq!((path.as_str(), limit), ("$.$or[1].c.d.e", "max_nesting"));
    assert_eq!(
        text,
        "rule r at $.$or[1].c.d.e: the pattern nests 4 objects deep, more than max_nesting = 3"
    );
    let (path, limit, _) =
        error(r#"{"$or":[{"a":["1"]},{"a":["2"]}],"b":{"$or":[{"c":["1"]},{"c":["2"]}]}}"#);
    assert_eq!((path.as_str(), limit), ("$", "max_or_combinations"));
    // Past the depth that parsing reads at all, the parse error names that depth.
    let deep = format!("{}[\"x\"]{}", r#"{"a":"#.repeat(300), "}".repeat(300));
    let error = Pattern::parse(&deep).unwrap_err().to_string();
    assert!(
        error.contains("nesting is deeper than 256 levels"),
        "{error}"
    );
}
