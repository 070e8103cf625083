//! The Publisher's batching and size accounting, without a network.
//!
//! ```text
//! cargo bench -p router --bench publish
//! ```
//!
//! Inputs are generated here, deterministically: small logins (one full request per 10
//! events) and logins whose user agents grow from 0 to 60 KiB (requests limited by size).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_schema::{Timestamp, UserLoggedIn};
use router::{
    Entry,
    publish::{BatchPlan, DEFAULT_MAX_REQUEST_SIZE},
};

const N_EVENTS: usize = 10_000;

fn logins(user_agent_len: impl Fn(usize) -> usize) -> Vec<UserLoggedIn> {
    let at = Timestamp::parse("2026-11-27T09:00:00Z").unwrap();
    (0..N_EVENTS)
        .map(|i| {
            UserLoggedIn::builder(format!("user-{i}"), [192, 0, 2, 1].into())
                .unwrap()
                .user_agent("x".repeat(user_agent_len(i)))
                .logged_in_at(at.clone())
                .build()
        })
        .collect()
}

fn entries(events: &[UserLoggedIn]) -> Vec<Entry> {
    events.iter().map(|e| Entry::new(e).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let small = logins(|_| 10);
    // Sizes spread deterministically over 0..60 KiB.
    let mixed = logins(|i| (i * 7919) % (60 * 1024));
    let small_entries = entries(&small);
    let mixed_entries = entries(&mixed);

    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(N_EVENTS as u64));
    group.bench_function("entry_new/small", |b| b.iter(|| entries(black_box(&small))));
    group.bench_function("entry_size/mixed", |b| {
        b.iter(|| {
            black_box(&mixed_entries)
                .iter()
                .map(Entry::size)
                .sum::<usize>()
        })
    });
    group.bench_function("batch_plan/small", |b| {
        b.iter(|| BatchPlan::new(black_box(&small_entries), DEFAULT_MAX_REQUEST_SIZE))
    });
    group.bench_function("batch_plan/mixed", |b| {
        b.iter(|| BatchPlan::new(black_box(&mixed_entries), DEFAULT_MAX_REQUEST_SIZE))
    });
    group.finish();

    // What the plans look like, so that the numbers above can be read.
    for (name, entries) in [("small", &small_entries), ("mixed", &mixed_entries)] {
        let plan = BatchPlan::new(entries, DEFAULT_MAX_REQUEST_SIZE);
        eprintln!(
            "publish/{name}: {N_EVENTS} events in {} requests, {:.2} entries per request",
            plan.batches().len(),
            N_EVENTS as f64 / plan.batches().len() as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
