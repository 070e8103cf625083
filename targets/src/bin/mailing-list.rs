//! The `mailing-list` Lambda: adds each new user who consented to marketing to a
//! Mailchimp audience.
//!
//! Environment: `MAILCHIMP_API_KEY` (or `MAILCHIMP_API_KEY_SECRET_ARN`),
//! `MAILCHIMP_LIST_ID`, `MAILCHIMP_API_BASE` (optional), `MAILCHIMP_STATUS_IF_NEW`
//! (optional), `IDEMPOTENCY_TABLE` (optional), `IDEMPOTENCY_TTL_SECONDS` or
//! `ARCHIVE_RETENTION_DAYS` (optional), `RECORD_CONCURRENCY` (optional, 1–64, default 8).

use std::process::ExitCode;

use targets::{Env, MailingList, MailingListConfig, lambda};

#[tokio::main]
async fn main() -> ExitCode {
    lambda::init_tracing();
    lambda::serve(Env::from_process(), |env| async move {
        let config = MailingListConfig::from_env(&env).await?;
        lambda::driver(&env, |http| MailingList::new(config, http)).await
    })
    .await
}
