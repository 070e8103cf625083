//! Event bytes → `Matcher::matches`: never panics, whatever the bytes. The first line of the
//! input, when it is a valid pattern, joins a fixed set of rules, so that both the rules
//! and the event vary.
//!
//! cargo +nightly fuzz run match
#![no_main]

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

fuzz_target!(|data: &[u8]| {
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
