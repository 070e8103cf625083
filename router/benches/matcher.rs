//! Events per second through `Matcher::matches`, per operator family, at 10 / 1,000 rules.
//!
//! Inputs are generated here, deterministically. Run with
//! `cargo bench -p router --no-default-features --bench matcher`.
//!
//! With `EVENTFORK_WORKLOAD=DIR` (made by `python3 ../shared/bench/gen_workload.py --out DIR`)
//! it also measures the issue's workload: the first 10,000 events against the `full` and
//! `common` rule sets of 10 to 10,000 rules, and serde_json reading the same events (the
//! floors the issue's aims are stated against).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use router::pattern::{Matcher, Pattern, RuleId};

/// A small deterministic generator (xorshift64*), so that runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PLANS: &[&str] = &["free", "pro", "team", "enterprise", "trial"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA"];

/// An event shaped like the workload's: an envelope with a nested `detail`.
fn event(rng: &mut Rng) -> String {
    let user = rng.below(5000);
    format!(
        r#"{{"version":"0","id":"{id:08x}","detail-type":"{dt}","source":"com.acme.{src}","account":"123456789012","time":"2025-01-0{day}T12:00:00Z","region":"us-east-1","resources":[],"detail":{{"user":{{"id":"u{user}","email":"user{user}@{domain}","plan":"{plan}","country":"{country}","age":{age}}},"ip":"10.{a}.{b}.{c}","score":{score}.{frac},"tags":["t{t1}","t{t2}"],"order":{{"items":[{{"sku":"s{s1}","price":{p1}}},{{"sku":"s{s2}","price":{p2}}}]}}}}}}"#,
        id = rng.next() as u32,
        dt = [
            "UserSignedUp",
            "UserLoggedIn",
            "OrderPlaced",
            "PaymentFailed"
        ][rng.below(4) as usize],
        src = ["auth", "web", "orders", "billing"][rng.below(4) as usize],
        day = 1 + rng.below(9),
        domain = ["example.com", "gmail.com", "acme.io"][rng.below(3) as usize],
        plan = PLANS[rng.below(5) as usize],
        country = COUNTRIES[rng.below(8) as usize],
        age = 16 + rng.below(70),
        a = rng.below(256),
        b = rng.below(256),
        c = rng.below(256),
        score = rng.below(100),
        frac = rng.below(100),
        t1 = rng.below(50),
        t2 = rng.below(50),
        s1 = rng.below(200),
        s2 = rng.below(200),
        p1 = rng.below(500),
        p2 = rng.below(500),
    )
}

/// One rule of an operator family.
fn rule(family: &str, rng: &mut Rng) -> String {
    let user = rng.below(5000);
    let plan = PLANS[rng.below(5) as usize];
    let detail = match family {
        "exact" => format!(r#"{{"user":{{"id":["u{user}"],"plan":["{plan}"]}}}}"#),
        "prefix" => format!(r#"{{"user":{{"email":[{{"prefix":"user{user}"}}]}}}}"#),
        "suffix" => format!(r#"{{"user":{{"email":[{{"suffix":"{user}@gmail.com"}}]}}}}"#),
        "anything-but" => format!(
            r#"{{"user":{{"plan":[{{"anything-but":["{plan}","free"]}}],"id":["u{user}"]}}}}"#
        ),
        "numeric" => {
            let lo = 16 + rng.below(60);
            format!(
                r#"{{"user":{{"age":[{{"numeric":[">=",{lo},"<",{}]}}]}},"score":[{{"numeric":[">",{}]}}]}}"#,
                lo + 1 + rng.below(5),
                rng.below(100)
            )
        }
        "exists" => format!(
            r#"{{"user":{{"id":["u{user}"],"email":[{{"exists":true}}]}},"coupon":[{{"exists":false}}]}}"#
        ),
        "wildcard" => format!(r#"{{"user":{{"email":[{{"wildcard":"user{user}*@*.com"}}]}}}}"#),
        "or" => format!(
            r#"{{"$or":[{{"user":{{"id":["u{user}"]}}}},{{"order":{{"items":{{"sku":["s{}"],"price":[{{"numeric":[">",400]}}]}}}}}}]}}"#,
            rng.below(200)
        ),
        _ => unreachable!("unknown family"),
    };
    format!(r#"{{"source":[{{"prefix":"com.acme"}}],"detail":{detail}}}"#)
}

fn compile(rules: &[(String, String)]) -> Matcher {
    let mut builder = Matcher::builder();
    for (name, text) in rules {
        builder.add(
            RuleId::from(name.as_str()),
            Pattern::parse(text).expect("valid bench rule"),
        );
    }
    builder.build().expect("bench rules fit the limits")
}

fn bench_matches(c: &mut Criterion, group_name: &str, matcher: &Matcher, events: &[Vec<u8>]) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("matches", |b| {
        b.iter(|| {
            let mut n_hits = 0;
            for event in events {
                n_hits += matcher
                    .matches(black_box(event))
                    .expect("valid event")
                    .len();
            }
            n_hits
        })
    });
    group.finish();
}

fn families(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let events: Vec<Vec<u8>> = (0..2000).map(|_| event(&mut rng).into_bytes()).collect();
    for family in [
        "exact",
        "prefix",
        "suffix",
        "anything-but",
        "numeric",
        "exists",
        "wildcard",
        "or",
    ] {
        for n_rules in [10, 1000] {
            let rules: Vec<(String, String)> = (0..n_rules)
                .map(|i| (format!("{family}-{i:05}"), rule(family, &mut rng)))
                .collect();
            let matcher = compile(&rules);
            bench_matches(c, &format!("{family}/{n_rules}"), &matcher, &events);
        }
    }
}

fn workload(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("EVENTFORK_WORKLOAD") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let text = std::fs::read_to_string(dir.join("events.jsonl")).expect("workload events");
    let events: Vec<Vec<u8>> = text
        .lines()
        .take(10_000)
        .map(|l| l.as_bytes().to_vec())
        .collect();
    // The floors the engine issue's aims are stated against, on the same events in the
    // same run: serde_json validating each event (`IgnoredAny`), and building its `Value`.
    let mut group = c.benchmark_group("workload-floor");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("ignored-any", |b| {
        b.iter(|| {
            for event in &events {
                let _: serde::de::IgnoredAny =
                    serde_json::from_slice(black_box(event)).expect("valid event");
            }
        })
    });
    group.bench_function("value", |b| {
        b.iter(|| {
            let mut n_fields = 0;
            for event in &events {
                let value: serde_json::Value =
                    serde_json::from_slice(black_box(event)).expect("valid event");
                n_fields += value.as_object().map_or(0, serde_json::Map::len);
            }
            n_fields
        })
    });
    group.finish();
    for flavour in ["full", "common"] {
        for n_rules in [10, 100, 1000, 10_000] {
            let path = dir.join(format!("{flavour}/rules-{n_rules}.json"));
            let rules: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(path).expect("rules file"))
                    .expect("rules JSON");
            let rules: Vec<(String, String)> =
                rules.into_iter().map(|(k, v)| (k, v.to_string())).collect();
            let matcher = compile(&rules);
            bench_matches(
                c,
                &format!("workload-{flavour}/{n_rules}"),
                &matcher,
                &events,
            );
        }
    }
}

criterion_group!(benches, families, workload);
criterion_main!(benches);
