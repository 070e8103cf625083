//! Event bytes → `Matcher::matches`: never panics, whatever the bytes. The first line of the
//! input, when it is a valid pattern, joins a fixed set of rules, so that both the rules
//! and the event vary. The event also goes through one larger matcher, built once, whose
//! many similar rules bring in composite anchors, guards and exact prefixes.
//!
//! cargo +nightly fuzz run match
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use router::pattern::{Matcher, Pattern, RuleId};

const RULES: &[&str] = &[
    r#"{"a":["x",1,null,true,{"prefix":"p"},{"suffix":"s"},{"equals-ignore-case":"X"}]}"#,
    r#"{"a":{"b":[{"wildcard":"*x*y"}],"c":[{"numeric":[">",0,"<=",5]}]}}"#,
    r#"{"a":[{"anything-but":{"prefix":"q"}}],"b":[{"exists":false}]}"#,
    r#"{"ip":[{"cidr":"10.0.0.0/8"},{"cidr":"2001:db8::/32"},"::1"]}"#,
    r#"{"$or":[{"a":{"b":[{"exists":true}]}},{"a.c":[{"anything-but":[1,2]}]}]}"#,
    r#"{"b":[{"exists":false}]}"#,
];

/// 400 rules over a few paths with one-value exact conditions, shared in pairs and
/// triples: enough for composite anchors to be opened.
fn large() -> &'static Matcher {
    static LARGE: OnceLock<Matcher> = OnceLock::new();
    LARGE.get_or_init(|| {
        let mut builder = Matcher::builder();
        for i in 0..400 {
            let text = format!(
                r#"{{"s":["s{}"],"t":["t{}"],"d":{{"n":["n{}"],"p":[{}],"x":[{{"numeric":[">",{}]}}],"$or":[{{"m":[{{"suffix":".d{}"}}]}},{{"f":[true]}}]}}}}"#,
                i % 3,
                i % 5,
                i % 40,
                i % 4,
                i % 10,
                i % 6
            );
            builder.add(
                RuleId::from(format!("l{i:03}")),
                Pattern::parse(&text).expect("valid rule"),
            );
        }
        builder.build().expect("the rules fit the limits")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = large().matches(data);
    let (first, event) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let mut builder = Matcher::builder();
    for (i, rule) in RULES.iter().enumerate() {
        builder.add(RuleId::from(format!("r{i}")), Pattern::parse(rule).expect("valid rule"));
    }
    if let Some(pattern) = std::str::from_utf8(first).ok().and_then(|t| Pattern::parse(t).ok()) {
        builder.add(RuleId::from("fuzzed"), pattern);
    }
    if let Ok(matcher) = builder.build() {
        let _ = matcher.matches(event);
    }
});
