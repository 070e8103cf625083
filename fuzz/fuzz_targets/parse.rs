//! Pattern text → `Pattern`: never panics; a valid pattern renders to JSON that parses back
//! to an equal pattern, and compiles (or fails a limit) without panicking.
//!
//! cargo +nightly fuzz run parse
#![no_main]

use libfuzzer_sys::fuzz_target;
use router::pattern::{Matcher, Pattern, RuleId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pattern) = Pattern::parse(text) else {
        return;
    };
    let rendered = pattern.to_json();
    let again = Pattern::parse(&rendered).expect("a rendered pattern parses");
    assert_eq!(again, pattern, "round trip of {text:?} through {rendered:?}");
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("fuzz"), pattern);
    if let Ok(matcher) = builder.build() {
        let _ = matcher.matches(b"{\"a\":[1,\"x\",{\"b\":null}]}");
        let _ = matcher.explain();
    }
});
