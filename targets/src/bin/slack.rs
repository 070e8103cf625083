//! The `slack` Lambda: announces each sign-up in a Slack channel.
//!
//! Environment: `SLACK_WEBHOOK_URL` (or `SLACK_WEBHOOK_URL_SECRET_ARN`),
//! `IDEMPOTENCY_TABLE` (optional), `IDEMPOTENCY_TTL_SECONDS` or `ARCHIVE_RETENTION_DAYS`
//! (optional), `RECORD_CONCURRENCY` (optional, 1–64, default 8).

use std::process::ExitCode;

use targets::{Env, Slack, SlackConfig, lambda};

#[tokio::main]
async fn main() -> ExitCode {
    lambda::init_tracing();
    lambda::serve(Env::from_process(), |env| async move {
        let config = SlackConfig::from_env(&env).await?;
        lambda::driver(&env, |http| Slack::new(config, http)).await
    })
    .await
}
