//! The `analytics` Lambda: counts every sign-up and login with a Segment `track` call.
//!
//! Environment: `ANALYTICS_WRITE_KEY` (or `ANALYTICS_WRITE_KEY_SECRET_ARN`),
//! `ANALYTICS_ENDPOINT` (optional), `IDEMPOTENCY_TABLE` (optional),
//! `IDEMPOTENCY_TTL_SECONDS` or `ARCHIVE_RETENTION_DAYS` (optional), `RECORD_CONCURRENCY`
//! (optional, 1–64, default 8).

use std::process::ExitCode;

use targets::{Analytics, AnalyticsConfig, Env, lambda};

#[tokio::main]
async fn main() -> ExitCode {
    lambda::init_tracing();
    lambda::serve(Env::from_process(), |env| async move {
        let config = AnalyticsConfig::from_env(&env).await?;
        lambda::driver(&env, |http| Analytics::new(config, http)).await
    })
    .await
}
