//! The glue between a [`BatchDriver`] and the Lambda runtime, shared by the three
//! binaries.
//!
//! A binary's `main` calls [`init_tracing`], reads its handler's config from an [`Env`],
//! builds the driver with [`driver`] and hands it to [`serve`]. The HTTP client, the AWS
//! configuration and the idempotency store are built once per cold start.
//!
//! # Building for Lambda
//!
//! With [cargo-lambda](https://www.cargo-lambda.info) (`pip install cargo-lambda`, which
//! brings Zig through the `ziglang` package for its cross-linker):
//!
//! ```text
//! cargo lambda build --release --arm64 -p targets    # Graviton (arm64) functions
//! cargo lambda build --release --x86-64 -p targets   # x86_64, as the test script checks
//! ```
//!
//! Each binary lands in `target/lambda/<name>/bootstrap`, ready for the `provided.al2023`
//! runtime. The arm64 build needs `rustup target add aarch64-unknown-linux-gnu` first.

use std::{convert::Infallible, process::ExitCode, sync::Arc};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use tracing::{error, warn};

use crate::{
    BatchDriver, BatchOptions, ConfigError, Deadline, Env, Handler, HttpClient, RuntimeConfig,
    SqsVisibility, config::endpoint_url, error::error_chain, http::ClientError,
};

/// Why a target could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The configuration is missing or wrong.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built.
    #[error("could not start")]
    Client(#[from] ClientError),
}

/// Installs the Lambda runtime's tracing subscriber: level from `AWS_LAMBDA_LOG_LEVEL`,
/// then `RUST_LOG`, then INFO; JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Builds the HTTP client, reads the [`RuntimeConfig`] from `env`, and returns the driver
/// of the handler `make_handler` builds with the client.
pub async fn driver<H: Handler>(
    env: &Env,
    make_handler: impl FnOnce(HttpClient) -> H,
) -> Result<BatchDriver<H>, StartupError> {
    let runtime = RuntimeConfig::from_env(env)?;
    if let Some(warning) = runtime.ttl_warning() {
        warn!("{warning}");
    }
    let http = HttpClient::new()?;
    let store = runtime.idempotency_store(env).await;
    let defaults = BatchOptions::default();
    let options = BatchOptions {
        ttl: runtime.idempotency_ttl(),
        concurrency: runtime.record_concurrency().unwrap_or(defaults.concurrency),
        backoff: Some(runtime.backoff()),
        ..defaults
    };
    // Retries are delayed through SQS, at the endpoint the SDK would use for it.
    let endpoint = match env.optional("AWS_ENDPOINT_URL_SQS")? {
        Some(url) => Some(endpoint_url("AWS_ENDPOINT_URL_SQS", url)?),
        None => env
            .aws()
            .await
            .endpoint_url()
            .map(|url| endpoint_url("AWS_ENDPOINT_URL", url))
            .transpose()?,
    }
    .map(|url| url.as_str().to_owned());
    let visibility = SqsVisibility::new(env.aws().await, endpoint);
    Ok(BatchDriver::with_visibility(
        make_handler(http),
        store,
        options,
        Arc::new(visibility),
    ))
}

/// Serves invocations with `driver` until the runtime stops; a start-up error is logged
/// and ends the process with a failure.
pub async fn serve<H: Handler>(driver: Result<BatchDriver<H>, StartupError>) -> ExitCode {
    let driver = match driver {
        Ok(driver) => driver,
        Err(startup_error) => {
            error!(error = %error_chain(&startup_error), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    let service = service_fn(move |event: LambdaEvent<SqsEvent>| {
        let driver = driver.clone();
        async move {
            let deadline = Deadline::of_invocation(&event.context);
            Ok::<SqsBatchResponse, Infallible>(driver.run(event.payload, deadline).await)
        }
    });
    match lambda_runtime::run(service).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(runtime_error) => {
            error!(error = %runtime_error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}
