//! Differential property tests over a wide value space: the compiled matcher with many rules
//! agrees with the reference interpreter on each rule alone. The generators of `tests.rs`
//! draw from a few small values; these draw from pools built per case so that rules and
//! events share values, bounds, starts and ends:
//!
//! * numbers: six-decimal values across ±5e9, values next to them (one ulp, one millionth),
//!   other spellings of the same value (`3e2`, `1E-3`, `-0`), integers beyond 2^53, and
//!   numbers with no exact float64;
//! * strings: non-ASCII case pairs (Σσς, İı, ß, the Kelvin sign), stars and backslashes,
//!   lengths around 16 bytes, escaped in events (`\u00e9`, `\"`, surrogate pairs);
//! * IP addresses in every spelling, cidr ranges of every mask;
//! * structure: dotted and nested keys, arrays of objects, duplicate keys, `$or` nested,
//!   `exists` with nulls and empty arrays;
//! * many rules (10 to 200) sharing values, for composite anchors and guards.
//!
//! The number of cases follows `PROPTEST_CASES` (default 256); run them in release mode:
//! `PROPTEST_CASES=20000 cargo test --release -p router --no-default-features --lib wide_`.

use proptest::prelude::*;
use proptest::sample::Index;

use super::tests::{agree_with_reference, json_object, pattern_object};
use super::{Matcher, Pattern, RuleId, reference};

// --- harness ------------------------------------------------------------------------------

/// Parses the generated patterns, keeping those that are valid and build alone (bounds out
/// of order, inexact bounds or too complex wildcards are dropped).
fn valid_patterns(texts: &[String]) -> Vec<Pattern> {
    texts
        .iter()
        .filter_map(|text| {
            let pattern = Pattern::parse(text).ok()?;
            let mut builder = Matcher::builder();
            builder.add(RuleId::from("alone"), pattern.clone());
            builder.build().ok()?;
            Some(pattern)
        })
        .collect()
}

/// Builds all `patterns`, removes every other one, adds some back (a changed pattern under
/// an old id too), and checks the live rules against the reference on every event.
fn agree_after_churn(
    patterns: &[Pattern],
    events: &[String],
    seed: u64,
) -> Result<(), TestCaseError> {
    let id = |i: usize| RuleId::from(format!("r{i:03}"));
    let mut builder = Matcher::builder();
    for (i, pattern) in patterns.iter().enumerate() {
        builder.add(id(i), pattern.clone());
    }
    let mut matcher = builder.build().expect("each pattern builds alone");
    let mut live: Vec<Option<&Pattern>> = patterns.iter().map(Some).collect();
    for i in (0..patterns.len()).filter(|i| (seed >> (i % 64)) & 1 == 1) {
        prop_assert!(matcher.remove(&id(i)));
        live[i] = None;
    }
    // Answer once in between, so that the next change follows a match.
    let _ = matcher.matches(events[0].as_bytes());
    for i in (0..patterns.len()).filter(|i| (seed >> ((i + 7) % 64)) & 3 == 0) {
        let j = (i * 7 + 3) % patterns.len();
        matcher
            .add(id(i), patterns[j].clone())
            .expect("fits the limits");
        live[i] = Some(&patterns[j]);
    }
    for event in events {
        let Ok(hits) = matcher.matches(event.as_bytes()) else {
            continue;
        };
        let hits: Vec<String> = hits.iter().map(|id| id.to_string()).collect();
        let alone: Vec<String> = live
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.is_some_and(|p| reference::matches(p, event.as_bytes(), 128) == Ok(true))
            })
            .map(|(i, _)| format!("r{i:03}"))
            .collect();
        prop_assert_eq!(hits, alone, "event {}", event);
    }
    Ok(())
}

fn pick<T: Clone>(pool: &[T], i: &Index) -> T {
    pool[i.index(pool.len())].clone()
}

// --- numbers ------------------------------------------------------------------------------

fn six_decimal(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// A base number, as text.
fn base_number() -> BoxedStrategy<String> {
    prop_oneof![
        // Six decimals across EventBridge's ±5e9.
        4 => (-5_000_000_000_000_000i64..=5_000_000_000_000_000).prop_map(six_decimal),
        // Six decimals near 1e9 and 5e9, where an ulp is close to a millionth.
        2 => (prop::sample::select(vec![1_000_000_000i64, 4_999_999_999, -1_000_000_000, 2_147_483_648, 4_294_967_296]), -2_000_000i64..2_000_000)
            .prop_map(|(base, micros)| six_decimal(base * 1_000_000 + micros)),
        2 => (-30i64..30).prop_map(|n| n.to_string()),
        // Exponent spellings.
        2 => (1u32..2000, -9i32..12, any::<bool>(), any::<bool>()).prop_map(|(m, e, upper, point)| {
            let e_char = if upper { 'E' } else { 'e' };
            if point {
                format!("{}.{:02}{e_char}{e}", m / 100, m % 100)
            } else {
                format!("{m}{e_char}{e}")
            }
        }),
        2 => prop::sample::select(vec![
            "0", "-0", "0.0", "-0.0", "0e5", "-0E-3", "0.000000", "1", "1.0", "1.000000", "-1",
            "9007199254740992", "9007199254740993", "9007199254740994", "-9007199254740993",
            "18014398509481985", "12345678901234567890", "1e16", "1.0E16", "10000000000000001",
            "0.1", "0.10", "0.30000000000000001", "0.3", "5e-324", "4.9e-324", "1e-310",
            "1.7976931348623157e308", "-1.7976931348623157e308", "2.2250738585072014E-308",
            "5000000000", "-5000000000", "5e9", "4999999999.999999", "-4999999999.999999",
            "999999999.999999", "1000000000.000001", "123456789012345", "1234567890123456",
            "1E+2", "1e+0", "-0e+00", "3.018E+2", "100e-2", "0.000001e6",
        ]).prop_map(str::to_owned),
        // Any finite float64, in its shortest spelling or with an exponent.
        1 => (any::<f64>(), any::<bool>()).prop_filter_map("finite", |(x, exp)| {
            x.is_finite().then(|| if exp { format!("{x:e}") } else { format!("{x}") })
        }),
    ]
    .boxed()
}

/// Numbers next to `text`: one ulp either side, one millionth either side, and other
/// spellings of the same value.
fn neighbours(text: &str) -> Vec<String> {
    let Some(x) = super::number::exact_f64(text) else {
        return Vec::new();
    };
    let mut out = vec![
        format!("{}", x.next_up()),
        format!("{}", x.next_down()),
        format!("{:e}", x),
        format!("{:E}", x),
        format!("{}", -x),
    ];
    if x.abs() < 1e10 {
        out.push(format!("{:.6}", x + 1e-6));
        out.push(format!("{:.6}", x - 1e-6));
        out.push(format!("{:.6}", x));
        out.push(format!("{x:.6}0"));
    }
    out.retain(|t| !t.contains("inf") && !t.contains("NaN"));
    out
}

fn number_pool() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(base_number(), 2..8).prop_map(|bases| {
        let mut pool = bases.clone();
        for base in &bases {
            pool.extend(neighbours(base));
        }
        pool
    })
}

/// A numeric condition on pool values (`a`, `b`, `c`).
fn numeric_condition(pool: &[String], shape: u8, a: &Index, b: &Index, c: &Index) -> String {
    let (x, y, z) = (pick(pool, a), pick(pool, b), pick(pool, c));
    let ops = [">", ">=", "<", "<="];
    match shape % 12 {
        0..=3 => format!(r#"{{"numeric":["{}",{x}]}}"#, ops[shape as usize % 4]),
        4 => format!(r#"{{"numeric":["=",{x}]}}"#),
        5..=8 => {
            let lo = if shape.is_multiple_of(2) { ">" } else { ">=" };
            let hi = if shape.is_multiple_of(3) { "<" } else { "<=" };
            // Put the bounds in order when they are exact; an invalid pattern is dropped.
            let (fx, fy) = (
                super::number::exact_f64(&x).unwrap_or(0.0),
                super::number::exact_f64(&y).unwrap_or(0.0),
            );
            let (lo_v, hi_v) = if fx <= fy { (x, y) } else { (y, x) };
            format!(r#"{{"numeric":["{lo}",{lo_v},"{hi}",{hi_v}]}}"#)
        }
        9 => x,
        10 => format!(r#"{{"anything-but":{x}}}"#),
        _ => format!(r#"{{"anything-but":[{x},{y},{z}]}}"#),
    }
}

type NumericRule = (
    u8,
    Index,
    Index,
    Index,
    Option<(u8, Index, Index, Index)>,
    u8,
);

fn numeric_rules(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<NumericRule>> {
    prop::collection::vec(
        (
            any::<u8>(),
            any::<Index>(),
            any::<Index>(),
            any::<Index>(),
            prop::option::weighted(
                0.3,
                (any::<u8>(), any::<Index>(), any::<Index>(), any::<Index>()),
            ),
            0u8..4,
        ),
        n,
    )
}

fn numeric_patterns(pool: &[String], rules: &[NumericRule]) -> Vec<String> {
    rules
        .iter()
        .map(|(shape, a, b, c, second, extra)| {
            let mut conditions = vec![numeric_condition(pool, *shape, a, b, c)];
            if let Some((shape, a, b, c)) = second {
                conditions.push(numeric_condition(pool, *shape, a, b, c));
            }
            let extra = match extra {
                0 => r#","k":["x"]"#,
                1 => r#","k":[{"exists":true}]"#,
                _ => "",
            };
            format!(r#"{{"n":[{}]{extra}}}"#, conditions.join(","))
        })
        .collect()
}

fn numeric_events(pool: &[String], events: &[(Vec<Index>, bool, bool)]) -> Vec<String> {
    events
        .iter()
        .map(|(values, array, k)| {
            let values: Vec<String> = values.iter().map(|i| pick(pool, i)).collect();
            let n = if *array || values.len() != 1 {
                format!("[{}]", values.join(","))
            } else {
                values[0].clone()
            };
            let k = if *k { r#","k":"x""# } else { "" };
            format!(r#"{{"n":{n}{k}}}"#)
        })
        .collect()
}

// --- strings ------------------------------------------------------------------------------

/// Pieces of strings: case pairs that only Unicode folding joins (or does not), stars,
/// backslashes, quotes, a NUL, a four-byte character.
const PIECES: &[&str] = &[
    "a", "b", "A", "B", "ab", "x", "Σ", "σ", "ς", "İ", "i", "ı", "I", "ß", "SS", "ss", "ẞ",
    "\u{212A}", "k", "K", "é", "É", "e\u{301}", "*", "\\", "\"", "/", "\u{0}", "ǅ", "ǆ", "Ǆ", "ﬁ",
    "\u{2126}", "Ω", "ω", "😀", "Ⓐ", "ⓐ", ".", "-",
];

fn base_string() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(PIECES), 0..7),
        prop::option::weighted(0.3, prop::sample::select(vec![15usize, 16, 17, 8, 9, 24])),
    )
        .prop_map(|(pieces, pad)| {
            let mut s: String = pieces.concat();
            if let Some(len) = pad {
                while s.len() < len {
                    s.push('q');
                }
            }
            s
        })
}

/// Base strings with their starts, ends, case variants and concatenations.
fn string_pool() -> impl Strategy<Value = Vec<String>> {
    (prop::collection::vec(base_string(), 2..6), any::<u64>()).prop_map(|(bases, seed)| {
        let mut pool = bases.clone();
        for (n, base) in bases.iter().enumerate() {
            let chars: Vec<char> = base.chars().collect();
            let k = (seed as usize >> (n * 3)) % (chars.len() + 1);
            pool.push(chars[..k].iter().collect());
            pool.push(chars[k..].iter().collect());
            pool.push(base.to_uppercase());
            pool.push(base.to_lowercase());
            pool.push(format!("{base}{}", bases[(n + 1) % bases.len()]));
        }
        pool.sort();
        pool.dedup();
        pool
    })
}

/// A wildcard that `s` matches (or nearly): literal stars and backslashes escaped, stars
/// put in or put in place of characters as the seed says, never two in a row.
fn wildcard_of(s: &str, seed: u64) -> String {
    let mut out = String::new();
    let mut last_star = false;
    let mut n_stars = 0;
    for (i, c) in s.chars().enumerate() {
        let bits = (seed >> ((i * 2) % 60)) & 3;
        if bits == 1 && !last_star && n_stars < 3 {
            out.push('*');
            n_stars += 1;
            last_star = true;
            if seed >> 62 & 1 == 1 {
                // The star stands for this character.
                continue;
            }
        }
        match c {
            '*' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        last_star = false;
    }
    if seed >> 63 == 1 && !last_star {
        out.push('*');
    }
    out
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}

/// `s` as a JSON string, each character written raw or escaped as the seed says.
fn json_escaped(s: &str, seed: u64) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let escape = (seed >> (i % 64)) & 1 == 1;
        match c {
            '"' if !escape => out.push_str("\\\""),
            '\\' if !escape => out.push_str("\\\\"),
            '/' if escape => out.push_str("\\/"),
            c if (c as u32) < 0x20 || escape => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if seed >> 32 & 1 == 1 {
                        out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn string_condition(pool: &[String], shape: u8, a: &Index, b: &Index, seed: u64) -> String {
    let (x, y) = (pick(pool, a), pick(pool, b));
    match shape % 17 {
        0 | 1 => json(&x),
        2 => format!(r#"{{"prefix":{}}}"#, json(&x)),
        3 => format!(r#"{{"suffix":{}}}"#, json(&x)),
        4 => format!(r#"{{"prefix":{{"equals-ignore-case":{}}}}}"#, json(&x)),
        5 => format!(r#"{{"suffix":{{"equals-ignore-case":{}}}}}"#, json(&x)),
        6 | 7 => format!(r#"{{"equals-ignore-case":{}}}"#, json(&x)),
        8 | 9 => format!(r#"{{"wildcard":{}}}"#, json(&wildcard_of(&x, seed))),
        10 => format!(r#"{{"anything-but":{}}}"#, json(&x)),
        11 => format!(r#"{{"anything-but":[{},{}]}}"#, json(&x), json(&y)),
        12 => format!(
            r#"{{"anything-but":{{"prefix":[{},{}]}}}}"#,
            json(&x),
            json(&y)
        ),
        13 => format!(r#"{{"anything-but":{{"suffix":{}}}}}"#, json(&x)),
        14 => format!(
            r#"{{"anything-but":{{"equals-ignore-case":[{},{}]}}}}"#,
            json(&x),
            json(&y)
        ),
        15 => format!(
            r#"{{"anything-but":{{"wildcard":[{},{}]}}}}"#,
            json(&wildcard_of(&x, seed)),
            json(&wildcard_of(&y, seed.rotate_left(17)))
        ),
        _ => {
            [r#"{"exists":true}"#, r#"{"exists":false}"#, "null", "1"][seed as usize % 4].to_owned()
        }
    }
}

type StringRule = (Vec<(u8, Index, Index, u64)>, u8);

fn string_rules(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<StringRule>> {
    prop::collection::vec(
        (
            prop::collection::vec(
                (any::<u8>(), any::<Index>(), any::<Index>(), any::<u64>()),
                1..3,
            ),
            0u8..4,
        ),
        n,
    )
}

fn string_patterns(pool: &[String], rules: &[StringRule]) -> Vec<String> {
    rules
        .iter()
        .map(|(conditions, extra)| {
            let conditions: Vec<String> = conditions
                .iter()
                .map(|(shape, a, b, seed)| string_condition(pool, *shape, a, b, *seed))
                .collect();
            let extra = match extra {
                0 => r#","k":["x"]"#,
                _ => "",
            };
            format!(r#"{{"s":[{}]{extra}}}"#, conditions.join(","))
        })
        .collect()
}

/// A generated string event: values picked from the pool with their spelling seeds, whether
/// they sit in an array, whether the event carries the field `k`.
type StringEvent = (Vec<(Index, u64)>, bool, bool);

fn string_events(pool: &[String], events: &[StringEvent]) -> Vec<String> {
    events
        .iter()
        .map(|(values, array, k)| {
            let values: Vec<String> = values
                .iter()
                .map(|(i, seed)| json_escaped(&pick(pool, i), *seed))
                .collect();
            let s = if *array || values.len() != 1 {
                format!("[{}]", values.join(","))
            } else {
                values[0].clone()
            };
            let k = if *k { r#","k":"x""# } else { "" };
            format!(r#"{{"s":{s}{k}}}"#)
        })
        .collect()
}

// --- IP addresses -------------------------------------------------------------------------

/// An address (IPv4 or IPv6 as bits) near a few networks.
fn ip_address() -> impl Strategy<Value = (bool, u128)> {
    prop_oneof![
        (
            prop::sample::select(vec![
                0x0a00_0000u32,
                0xc0a8_0000,
                0x0a00_0100,
                0,
                0xffff_ff00
            ]),
            0u32..512
        )
            .prop_map(|(net, host)| (false, u128::from(net.wrapping_add(host)))),
        (
            prop::sample::select(vec![
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128,
                0,
                0x0000_0000_0000_0000_0000_ffff_0a00_0000,
                0xfe80_0000_0000_0000_0000_0000_0000_0000,
            ]),
            0u128..1024,
            0u128..4,
        )
            .prop_map(|(net, host, high)| (true, net + host + (high << 80))),
    ]
}

/// One spelling of an address, as the seed says.
fn spell_ip(v6: bool, bits: u128, seed: u8) -> String {
    if !v6 {
        let ip = std::net::Ipv4Addr::from(bits as u32);
        return match seed % 6 {
            // Leading zeros and a mask are not IP literals.
            4 => {
                let o = ip.octets();
                format!("{:03}.{}.{}.{}", o[0], o[1], o[2], o[3])
            }
            5 => format!("{ip}/24"),
            _ => ip.to_string(),
        };
    }
    let ip = std::net::Ipv6Addr::from(bits);
    let groups = ip.segments();
    match seed % 6 {
        0 | 1 => ip.to_string(),
        2 => groups
            .iter()
            .map(|g| format!("{g:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
        3 => groups
            .iter()
            .map(|g| format!("{g:X}"))
            .collect::<Vec<_>>()
            .join(":"),
        4 => {
            let v4 = std::net::Ipv4Addr::from(bits as u32);
            let head: Vec<String> = groups[..6].iter().map(|g| format!("{g:x}")).collect();
            format!("{}:{v4}", head.join(":"))
        }
        _ => ip.to_string().to_uppercase(),
    }
}

fn ip_condition(address: (bool, u128), shape: u8, mask: u8) -> String {
    let (v6, bits) = address;
    match shape % 6 {
        0..=2 => {
            let mask = if v6 { mask % 128 } else { mask % 32 };
            format!(
                r#"{{"cidr":"{}/{mask}"}}"#,
                spell_ip(v6, bits, shape / 6 % 4)
            )
        }
        3 => format!("\"{}\"", spell_ip(v6, bits, mask)),
        4 => format!(r#"{{"anything-but":"{}"}}"#, spell_ip(v6, bits, mask)),
        _ => {
            let start: String = spell_ip(v6, bits, mask).chars().take(3).collect();
            format!(r#"{{"prefix":"{start}"}}"#)
        }
    }
}

// --- structure ----------------------------------------------------------------------------

const S_KEYS: &[&str] = &["a", "b", "c", "a.b", "b.c", "a.b.c"];

fn s_condition() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""x""#,
        r#""""#,
        "1",
        "1.0",
        "-0",
        "null",
        "true",
        r#"{"exists":true}"#,
        r#"{"exists":false}"#,
        r#"{"anything-but":"x"}"#,
        r#"{"anything-but":[1,2]}"#,
        r#"{"numeric":[">=",0]}"#,
        r#"{"numeric":["<",1.5]}"#,
        r#"{"prefix":""}"#,
        r#"{"wildcard":"*"}"#,
        r#"{"suffix":"x"}"#,
        r#"{"anything-but":{"prefix":"x"}}"#,
        r#"{"equals-ignore-case":"X"}"#,
    ])
    .prop_map(str::to_owned)
}

fn s_object(depth: u32) -> BoxedStrategy<String> {
    let leaf =
        prop::collection::vec(s_condition(), 1..4).prop_map(|c| format!("[{}]", c.join(",")));
    pattern_object(S_KEYS, leaf.boxed(), 1..4, (0.3, 2..4), depth)
}

fn s_value(depth: u32) -> BoxedStrategy<String> {
    let scalar = prop::sample::select(vec![
        r#""x""#, r#""X""#, r#""xx""#, r#""""#, "1", "1.0", "1e0", "2", "-0", "0", "1.5", "null",
        "true", "false",
    ])
    .prop_map(str::to_owned);
    if depth == 0 {
        return scalar.boxed();
    }
    prop_oneof![
        4 => scalar,
        2 => prop::collection::vec(s_value(depth - 1), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        2 => s_event(depth - 1),
    ]
    .boxed()
}

/// A key as JSON text: raw, or with its characters escaped (`\u0061`), and its colon
/// with or without white space, as the seed says.
fn spell_key(key: &str, seed: u8) -> String {
    let body: String = if seed & 1 == 1 {
        key.chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect()
    } else {
        key.to_owned()
    };
    let colon = if seed & 2 == 2 { " :\n " } else { ":" };
    format!("\"{body}\"{colon}")
}

fn s_event(depth: u32) -> BoxedStrategy<String> {
    prop::collection::vec(
        (prop::sample::select(S_KEYS), s_value(depth), any::<u8>()),
        0..5,
    )
    .prop_map(|members| {
        let parts: Vec<String> = members
            .iter()
            .map(|(k, v, seed)| format!("{}{v}", spell_key(k, *seed)))
            .collect();
        format!("{{{}}}", parts.join(" ,\t"))
    })
    .boxed()
}

// --- many rules sharing values ------------------------------------------------------------

fn shared_condition() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            r#""v0""#, r#""v1""#, r#""v2""#, r#""v3""#, r#""vvvvvvvvvvvvvvv0""#,
            r#""vvvvvvvvvvvvvvvv0""#, "0", "1", "2", "true", "null", r#""v0","v1""#,
        ]),
        1 => prop::sample::select(vec![
            r#"{"prefix":"v"}"#, r#"{"prefix":"vv"}"#, r#"{"suffix":"0"}"#,
            r#"{"anything-but":"v0"}"#, r#"{"numeric":[">",0,"<=",2]}"#,
            r#"{"exists":false}"#, r#"{"exists":true}"#, r#"{"equals-ignore-case":"V1"}"#,
            r#"{"wildcard":"v*0"}"#, r#""v0",{"exists":false}"#,
        ]),
    ]
    .prop_map(str::to_owned)
}

const SHARED_PATHS: &[&str] = &["p", "q", "r", "s.t", "s.u"];

fn shared_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""v0""#,
        r#""v1""#,
        r#""v2""#,
        r#""v3""#,
        r#""vvvvvvvvvvvvvvv0""#,
        r#""vvvvvvvvvvvvvvvv0""#,
        "0",
        "1",
        "2",
        "1.0",
        "true",
        "null",
        r#""V1""#,
        r#"["v0","v1"]"#,
        "[]",
        r#"[{"t":"v0"},{"u":"v1"}]"#,
    ])
    .prop_map(str::to_owned)
}

fn shared_event() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["p", "q", "r", "s.t", "s.u", "s"]),
            shared_value(),
        ),
        0..7,
    )
    .prop_map(|members| {
        json_object(
            members
                .into_iter()
                .filter(|(k, v)| *k == "s" || !v.contains('{')),
        )
    })
}

fn array_object_scalar() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "1", "2", "2.0", "1.5", "0", r#""a1""#, r#""a2""#, r#""A2""#, r#""b2""#, "null", "true",
        "[]", "[1,2]",
    ])
    .prop_map(str::to_owned)
}

fn array_object_inner() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["i", "j", "i"]),
            array_object_scalar(),
        ),
        0..4,
    )
    .prop_map(json_object)
}

fn array_object_element() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["f", "g", "h", "h.i", "f"]),
            prop_oneof![
                3 => array_object_scalar(),
                2 => prop::collection::vec(array_object_inner(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                1 => array_object_inner(),
            ],
        ),
        0..5,
    )
    .prop_map(json_object)
}

fn array_object_event() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(array_object_element(), 0..5),
        prop::option::of(array_object_scalar()),
        prop::option::weighted(0.2, array_object_element()),
    )
        .prop_map(|(elements, k, repeated)| {
            let mut parts = vec![format!("\"e\":[{}]", elements.join(","))];
            if let Some(k) = k {
                parts.push(format!("\"k\":{k}"));
            }
            if let Some(element) = repeated {
                // The key again, with one object: every occurrence is a value.
                parts.push(format!("\"e\":{element}"));
            }
            format!("{{{}}}", parts.join(","))
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Many numeric rules on one path (every width class, `=`, exact numbers, anything-but
    /// lists) against events at, next to and between their bounds.
    #[test]
    fn wide_numbers_agree_with_reference(
        pool in number_pool(),
        rules in numeric_rules(1..120),
        events in prop::collection::vec(
            (prop::collection::vec(any::<Index>(), 1..3), any::<bool>(), any::<bool>()),
            1..12,
        ),
    ) {
        let patterns = valid_patterns(&numeric_patterns(&pool, &rules));
        prop_assume!(!patterns.is_empty());
        agree_with_reference(&patterns, &numeric_events(&pool, &events))?;
    }

    /// Many string rules on one path sharing starts and ends, with case pairs that only
    /// Unicode folding joins, stars and backslashes, against escaped event strings.
    #[test]
    fn wide_strings_agree_with_reference(
        pool in string_pool(),
        rules in string_rules(1..120),
        events in prop::collection::vec(
            (prop::collection::vec((any::<Index>(), any::<u64>()), 1..3), any::<bool>(), any::<bool>()),
            1..12,
        ),
    ) {
        let patterns = valid_patterns(&string_patterns(&pool, &rules));
        prop_assume!(!patterns.is_empty());
        agree_with_reference(&patterns, &string_events(&pool, &events))?;
    }

    /// cidr ranges of every mask and exact addresses, against addresses in every spelling.
    #[test]
    fn wide_ips_agree_with_reference(
        addresses in prop::collection::vec(ip_address(), 1..6),
        rules in prop::collection::vec(
            prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..3),
            1..60,
        ),
        events in prop::collection::vec(
            prop::collection::vec((any::<Index>(), any::<u8>()), 1..3),
            1..10,
        ),
    ) {
        let texts: Vec<String> = rules
            .iter()
            .map(|conditions| {
                let conditions: Vec<String> = conditions
                    .iter()
                    .map(|(a, shape, mask)| ip_condition(pick(&addresses, a), *shape, *mask))
                    .collect();
                format!(r#"{{"ip":[{}]}}"#, conditions.join(","))
            })
            .collect();
        let patterns = valid_patterns(&texts);
        prop_assume!(!patterns.is_empty());
        let events: Vec<String> = events
            .iter()
            .map(|values| {
                let values: Vec<String> = values
                    .iter()
                    .map(|(a, seed)| {
                        let (v6, bits) = pick(&addresses, a);
                        format!("\"{}\"", spell_ip(v6, bits, *seed))
                    })
                    .collect();
                format!(r#"{{"ip":[{}]}}"#, values.join(","))
            })
            .collect();
        agree_with_reference(&patterns, &events)?;
    }

    /// Dotted and nested keys, `$or` nested two deep, `exists` next to nulls and empty
    /// arrays, arrays of objects, duplicate keys.
    #[test]
    fn wide_structure_agrees_with_reference(
        patterns in prop::collection::vec(s_object(2), 1..20),
        events in prop::collection::vec(s_event(4), 1..8),
    ) {
        let patterns = valid_patterns(&patterns);
        prop_assume!(!patterns.is_empty());
        agree_with_reference(&patterns, &events)?;
    }

    /// 10 to 200 rules over a few paths sharing a few values: composite anchors, guards and
    /// the leading exact checks are all used.
    #[test]
    fn wide_shared_rules_agree_with_reference(
        rules in prop::collection::vec(
            prop::collection::btree_map(prop::sample::select(SHARED_PATHS), shared_condition(), 1..5),
            10..200,
        ),
        events in prop::collection::vec(shared_event(), 1..12),
    ) {
        let texts: Vec<String> = rules
            .iter()
            .map(|fields| {
                let members: Vec<String> =
                    fields.iter().map(|(k, v)| format!("\"{k}\":[{v}]")).collect();
                format!("{{{}}}", members.join(","))
            })
            .collect();
        let patterns = valid_patterns(&texts);
        prop_assume!(!patterns.is_empty());
        agree_with_reference(&patterns, &events)?;
    }

    /// Everything at once: numbers, strings and addresses on a few paths in one matcher.
    #[test]
    fn wide_mixed_agree_with_reference(
        numbers in number_pool(),
        strings in string_pool(),
        number_rules in numeric_rules(0..40),
        string_rules in string_rules(0..40),
        shared in prop::collection::vec(
            prop::collection::btree_map(prop::sample::select(SHARED_PATHS), shared_condition(), 1..4),
            0..40,
        ),
        number_events in prop::collection::vec(
            (prop::collection::vec(any::<Index>(), 1..3), any::<bool>(), any::<bool>()),
            1..4,
        ),
        string_events_ in prop::collection::vec(
            (prop::collection::vec((any::<Index>(), any::<u64>()), 1..3), any::<bool>(), any::<bool>()),
            1..4,
        ),
        shared_events in prop::collection::vec(shared_event(), 1..4),
    ) {
        let mut texts = numeric_patterns(&numbers, &number_rules);
        texts.extend(string_patterns(&strings, &string_rules));
        texts.extend(shared.iter().map(|fields| {
            let members: Vec<String> =
                fields.iter().map(|(k, v)| format!("\"{k}\":[{v}]")).collect();
            format!("{{{}}}", members.join(","))
        }));
        let patterns = valid_patterns(&texts);
        prop_assume!(!patterns.is_empty());
        // Each event carries numbers, strings and shared fields together.
        let mut events = Vec::new();
        for n in numeric_events(&numbers, &number_events) {
            for s in string_events(&strings, &string_events_) {
                for e in &shared_events {
                    let body = |t: &str| t[1..t.len() - 1].to_owned();
                    let parts: Vec<String> = [body(&n), body(&s), body(e)]
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect();
                    events.push(format!("{{{}}}", parts.join(",")));
                }
            }
        }
        agree_with_reference(&patterns, &events)?;
    }

    /// Rules removed and added after the build, over the wide numbers and strings.
    #[test]
    fn wide_churn_agrees_with_reference(
        numbers in number_pool(),
        strings in string_pool(),
        number_rules in numeric_rules(1..40),
        string_rules in string_rules(1..40),
        number_events in prop::collection::vec(
            (prop::collection::vec(any::<Index>(), 1..3), any::<bool>(), any::<bool>()),
            1..5,
        ),
        string_events_ in prop::collection::vec(
            (prop::collection::vec((any::<Index>(), any::<u64>()), 1..3), any::<bool>(), any::<bool>()),
            1..5,
        ),
        seed in any::<u64>(),
    ) {
        let mut texts = numeric_patterns(&numbers, &number_rules);
        texts.extend(string_patterns(&strings, &string_rules));
        let patterns = valid_patterns(&texts);
        prop_assume!(!patterns.is_empty());
        let mut events = numeric_events(&numbers, &number_events);
        events.extend(string_events(&strings, &string_events_));
        agree_after_churn(&patterns, &events, seed)?;
    }

    /// Several fields met inside arrays of objects (two levels), with ranges, prefixes,
    /// anything-but and exists, some keys repeated: array consistency with every kind of
    /// test, not only exact values.
    #[test]
    fn wide_array_objects_agree_with_reference(
        rules in prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(vec!["e.f", "e.g", "e.h.i", "e.h.j", "e.h", "k"]),
                prop::collection::vec(prop::sample::select(vec![
                    "1", "2.0", r#""a1""#, "null", r#"{"numeric":[">",1]}"#,
                    r#"{"numeric":[">=",0,"<",2]}"#, r#"{"prefix":"a"}"#,
                    r#"{"suffix":"2"}"#, r#"{"anything-but":"a1"}"#, r#"{"anything-but":[1]}"#,
                    r#"{"exists":true}"#, r#"{"exists":false}"#, r#"{"wildcard":"a*"}"#,
                    r#"{"equals-ignore-case":"A2"}"#,
                ]), 1..3),
                1..5,
            ),
            1..30,
        ),
        events in prop::collection::vec(array_object_event(), 1..8),
    ) {
        let texts: Vec<String> = rules
            .iter()
            .map(|fields| {
                let members: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":[{}]", v.join(",")))
                    .collect();
                format!("{{{}}}", members.join(","))
            })
            .collect();
        let patterns = valid_patterns(&texts);
        prop_assume!(!patterns.is_empty());
        agree_with_reference(&patterns, &events)?;
    }
}
