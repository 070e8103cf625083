//! Publishes many small events through the Publisher and reports events per second and the
//! mean number of entries per PutEvents request (10 for small events: every request full).
//!
//! The benchmark of issue #4, against a moto server (or any endpoint):
//!
//! ```text
//! moto_server -H 127.0.0.1 -p 5000 &
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
//!     AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!     cargo run --release -p example-publish-throughput -- 10000 8
//! ```
//!
//! The arguments are the number of events (10000) and of requests in flight (8). It
//! creates a fresh bus for the run; point it only at moto or a test account.

use std::time::Instant;

use events_schema::{LoginMethod, Timestamp, UserLoggedIn};
use router::Publisher;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n_events: usize = args.next().as_deref().unwrap_or("10000").parse()?;
    let max_in_flight: usize = args.next().as_deref().unwrap_or("8").parse()?;
    if n_events == 0 || max_in_flight == 0 {
        return Err("usage: publish-throughput [N_EVENTS > 0] [MAX_IN_FLIGHT > 0]".into());
    }

    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let bus = format!("eventfork-throughput-{}", std::process::id());
    aws_sdk_eventbridge::Client::new(&sdk_config)
        .create_event_bus()
        .name(&bus)
        .send()
        .await?;

    let at = Timestamp::parse("2026-11-27T09:00:00Z")?;
    let events: Vec<UserLoggedIn> = (0..n_events)
        .map(|i| {
            UserLoggedIn::builder(format!("user-{i}"), [192, 0, 2, 1].into()).map(|b| {
                b.login_method(LoginMethod::Passkey)
                    .logged_in_at(at.clone())
                    .build()
            })
        })
        .collect::<Result<_, _>>()?;

    let publisher = Publisher::builder(&bus)
        .max_in_flight(max_in_flight)
        .build(&sdk_config);
    publisher.verify_bus().await?;
    let started = Instant::now();
    let report = publisher.publish_all(&events).await;
    let elapsed = started.elapsed();

    let size = router::Entry::new(&events[0])?.size();
    println!("events:               {n_events} ({size} bytes each by the entry-size formula)");
    println!("published:            {}", report.n_published());
    println!(
        "failed:               {} (of them unconfirmed, perhaps published: {})",
        report.n_failed(),
        report.n_unconfirmed()
    );
    println!("requests in flight:   {max_in_flight}");
    println!("PutEvents requests:   {}", report.n_requests());
    println!(
        "entries per request:  {:.2}",
        report.n_published() as f64 / report.n_requests().max(1) as f64
    );
    println!("elapsed:              {:.2} s", elapsed.as_secs_f64());
    println!(
        "throughput:           {:.0} events/s",
        n_events as f64 / elapsed.as_secs_f64()
    );
    // The bus was made for this run only.
    aws_sdk_eventbridge::Client::new(&sdk_config)
        .delete_event_bus()
        .name(&bus)
        .send()
        .await?;
    if !report.is_all_published() {
        return Err(format!("{} events were not published", report.n_failed()).into());
    }
    Ok(())
}
