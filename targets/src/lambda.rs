//! The glue between a [`BatchDriver`] and the Lambda runtime, shared by the three
//! binaries.
//!
//! A binary's `main` calls [`init_tracing`] and hands [`serve`] the process's [`Env`] and
//! a function that reads its handler's config from it and builds the driver with
//! [`driver`]. The AWS configuration is loaded once per cold start; the handler's config
//! (with its secrets), the HTTP client and the idempotency store too, and again after a
//! service refused the credentials or said the target is misconfigured.
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

use std::{
    future::Future,
    process::ExitCode,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use tracing::{error, info, warn};

use crate::{
    Backoff, BatchDriver, BatchOptions, ConfigError, Deadline, Env, Handler, HttpClient,
    RuntimeConfig, SqsVisibility, Visibility,
    batch::{delay, retries_of_all},
    config::endpoint_url,
    error::error_chain,
    http::ClientError,
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
    let mut visibility = sqs_visibility(env).await?;
    if let Some(url) = dead_letter_queue_url(env)? {
        visibility = visibility.with_dead_letter_queue(url);
    }
    Ok(BatchDriver::with_visibility(
        make_handler(http),
        store,
        options,
        Arc::new(visibility),
    ))
}

/// Retries are delayed through SQS, at the endpoint the SDK would use for it.
async fn sqs_visibility(env: &Env) -> Result<SqsVisibility, StartupError> {
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
    Ok(SqsVisibility::new(env.aws().await, endpoint))
}

/// `DEAD_LETTER_QUEUE_URL`, where records that cannot succeed go at once: an SQS queue
/// URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or the endpoint's), or
/// `None` when unset.
fn dead_letter_queue_url(env: &Env) -> Result<Option<String>, ConfigError> {
    const NAME: &str = "DEAD_LETTER_QUEUE_URL";
    let Some(value) = env.optional(NAME)? else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(value)
        .map_err(|e| ConfigError::malformed(NAME, format!("not a URL ({e})")))?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if !matches!(url.scheme(), "https" | "http")
        || url.host_str().is_none_or(str::is_empty)
        || segments.len() != 2
    {
        return Err(ConfigError::malformed(
            NAME,
            "expected a queue URL, https://sqs.<region>.amazonaws.com/<account>/<queue name>",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// What holds back the records of a batch that no driver could take: the retry backoff
/// (the configured one, or the default when that cannot be read either) and SQS.
#[derive(Clone)]
struct Holding {
    backoff: Backoff,
    visibility: Arc<dyn Visibility>,
    /// The function's name, for the logs: there is no handler to name the target.
    function: String,
}

impl Holding {
    async fn new(env: &Env) -> Result<Holding, StartupError> {
        let backoff = RuntimeConfig::from_env(env)
            .map(|runtime| runtime.backoff())
            .unwrap_or_default();
        Ok(Holding {
            backoff,
            visibility: Arc::new(sqs_visibility(env).await?),
            function: env
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .flatten()
                .unwrap_or("the function")
                .to_owned(),
        })
    }

    /// Holds back every record of `event` for its backoff delay and answers the
    /// invocation with `error`: Lambda counts it in the function's `Errors`.
    async fn fail(&self, event: &SqsEvent, error: &str, deadline: Deadline) -> Diagnostic {
        let retries = retries_of_all(event, &self.backoff, rand::random::<f64>);
        delay(self.visibility.as_ref(), &retries, deadline, &self.function).await;
        Diagnostic {
            error_type: "StartupError".to_owned(),
            error_message: error.to_owned(),
        }
    }
}

/// The driver of the batches, or what holds them back while there is none (and why).
enum Slot<H> {
    Running(BatchDriver<H>),
    Failed { holding: Holding, error: String },
}

impl<H> Clone for Slot<H> {
    fn clone(&self) -> Self {
        match self {
            Slot::Running(driver) => Slot::Running(driver.clone()),
            Slot::Failed { holding, error } => Slot::Failed {
                holding: holding.clone(),
                error: error.clone(),
            },
        }
    }
}

/// The least time between two rebuilds of the driver: each reads Secrets Manager (and
/// starts new connections), which a revoked key or a missing secret would else do on every
/// batch, many a second under load.
const REBUILD_EVERY: Duration = Duration::from_secs(1);

/// Builds the driver with `build` and serves invocations with it until the runtime stops.
///
/// When the driver cannot be built (a secret not set yet, a variable missing), each batch
/// tries again first; until it succeeds, the batch's records are held back with the retry
/// backoff, as failures that may pass are, and the invocation fails with the error (so that
/// Lambda counts it in the function's `Errors`). On a first deploy, events that arrive
/// before the secrets are set thus wait hours for them, not one queue visibility timeout
/// per receive. Only when even that cannot run (SQS's endpoint is malformed) is the error
/// reported to the Runtime API's `/init/error`, ending the process.
///
/// After a batch in which a service refused the handler's credentials (HTTP 401 or 403),
/// or Slack said its channel is lost, archived or closed to the webhook (whose fix is a
/// new webhook URL: [`crate::HandlerError::wants_fresh_config`]), the next batch first builds the
/// driver again, so that a rotated or fixed secret in
/// Secrets Manager takes effect without a cold start; if that fails, the old driver goes
/// on.
pub async fn serve<H, B, F>(env: Env, build: B) -> ExitCode
where
    H: Handler,
    B: Fn(Arc<Env>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<BatchDriver<H>, StartupError>> + Send + 'static,
{
    let env = Arc::new(env);
    let slot = match build(Arc::clone(&env)).await {
        Ok(driver) => Slot::Running(driver),
        Err(startup_error) => {
            let error = error_chain(&startup_error);
            match Holding::new(&env).await {
                Ok(holding) => {
                    error!(
                        error = %error,
                        "start-up failed: each batch tries again, and its records are held back with the retry backoff until then"
                    );
                    Slot::Failed { holding, error }
                }
                Err(holding_error) => {
                    let error = format!("{error} (and {})", error_chain(&holding_error));
                    error!(error = %error, "start-up failed");
                    report_init_error(&env, &error).await;
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let current = Arc::new((Mutex::new(slot), Mutex::new(None)));
    let build = Arc::new(build);
    let service = service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (current, build, env) = (Arc::clone(&current), Arc::clone(&build), Arc::clone(&env));
        async move {
            let deadline = Deadline::of_invocation(&event.context);
            match current_driver(&current, &*build, env, deadline).await {
                Ok(driver) => Ok(driver.run(event.payload, deadline).await),
                Err((error, holding)) => Err(holding.fail(&event.payload, &error, deadline).await),
            }
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

/// The driver for the next batch: the current one, or a new one when a service refused
/// the current one's credentials or configuration (see [`serve`]) or there is none yet. Without one, the error and what
/// holds the batch back.
async fn current_driver<H, B, F>(
    (current, rebuilt_at): &(Mutex<Slot<H>>, Mutex<Option<Instant>>),
    build: &B,
    env: Arc<Env>,
    deadline: Deadline,
) -> Result<BatchDriver<H>, (String, Holding)>
where
    H: Handler,
    B: Fn(Arc<Env>) -> F,
    F: Future<Output = Result<BatchDriver<H>, StartupError>>,
{
    // Building reads secrets (Secrets Manager may take seconds): within half the time
    // left, so that the batch can still be handled or held back.
    let build = |env| async move {
        let until = tokio::time::Instant::now() + deadline.remaining() / 2;
        match tokio::time::timeout_at(until, build(env)).await {
            Ok(built) => built.map_err(|error| error_chain(&error)),
            Err(_) => Err("reading the configuration took half the invocation's time".to_owned()),
        }
    };
    let slot = current
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let install = |fresh: Slot<H>| {
        *current.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
    };
    // Whether a rebuild may run now (the first may at once); if so, it is counted.
    let due = || {
        let mut at = rebuilt_at.lock().unwrap_or_else(PoisonError::into_inner);
        if at.is_some_and(|at| at.elapsed() < REBUILD_EVERY) {
            return false;
        }
        *at = Some(Instant::now());
        true
    };
    match slot {
        Slot::Running(driver) if !driver.credentials_refused() || !due() => Ok(driver),
        Slot::Running(old) => match build(env).await {
            Ok(fresh) => {
                info!(
                    "a service refused the credentials or the configuration: the configuration and secrets were read again"
                );
                install(Slot::Running(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => {
                warn!(
                    error = %error,
                    "a service refused the credentials or the configuration, and reading them again failed: the old ones stay"
                );
                old.take_credentials_refused();
                Ok(old)
            }
        },
        Slot::Failed { holding, error } if !due() => Err((error, holding)),
        Slot::Failed { holding, .. } => match build(env).await {
            Ok(fresh) => {
                info!("start-up succeeded: batches are handled again");
                install(Slot::Running(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => {
                error!(error = %error, "start-up failed again: the batch's records are held back");
                install(Slot::Failed {
                    holding: holding.clone(),
                    error: error.clone(),
                });
                Err((error, holding))
            }
        },
    }
}

/// Tells the Runtime API why start-up failed (`POST /runtime/init/error`); best effort,
/// since the process ends anyway and the log holds the message.
async fn report_init_error(env: &Env, message: &str) {
    let Ok(Some(api)) = env.optional("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return;
    };
    let body = serde_json::json!({
        "errorType": "Runtime.InitError",
        "errorMessage": message,
    });
    let sent = client
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .json(&body)
        .send()
        .await;
    if let Err(error) = sent {
        warn!(error = %error_chain(&error), "could not report the start-up error to the Runtime API");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_queue_url_is_a_queue_url() {
        let url = |value: &str| {
            dead_letter_queue_url(&Env::from_pairs([("DEAD_LETTER_QUEUE_URL", value)]))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            dead_letter_queue_url(&Env::from_pairs(Vec::<(String, String)>::new())).unwrap(),
            None
        );
        let good =
            "https://sqs.eu-west-1.amazonaws.com/123456789012/eventfork-SlackDeadLetterQueue-1A2B";
        assert_eq!(url(good), Ok(Some(good.to_owned())));
        assert_eq!(
            url("http://127.0.0.1:5000/123456789012/q"),
            Ok(Some("http://127.0.0.1:5000/123456789012/q".to_owned()))
        );
        for bad in [
            "eventfork-SlackDeadLetterQueue",
            "arn:aws:sqs:eu-west-1:123456789012:q",
            "https://sqs.eu-west-1.amazonaws.com/q",
            "ftp://sqs.eu-west-1.amazonaws.com/123456789012/q",
        ] {
            let error = url(bad).unwrap_err();
            assert!(
                error.starts_with("DEAD_LETTER_QUEUE_URL is malformed"),
                "{bad}: {error}"
            );
        }
    }
}
