//! The baseline of the cold-start benchmark: a bare `lambda_runtime` SQS handler that
//! answers every batch with no failures, built with the same profile as the targets.
//!
//! It is not a usage example; `scripts/bench-cold-start` compares the targets' start-up
//! against it. Build it with
//! `cargo lambda build --release --x86-64 -p targets --example cold-start-baseline`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

async fn handler(_event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(SqsBatchResponse::default())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
