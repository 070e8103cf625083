//! The three binaries under a Lambda Runtime API emulator: each gets the fixture SQS
//! batch as an invocation and must post back the right `batchItemFailures`.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::Value;
use tokio::{
    io::AsyncReadExt,
    process::Command,
    sync::{Semaphore, mpsc},
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::support::*;

/// What a binary posted to the emulator.
#[derive(Debug)]
enum Posted {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: String },
    InitError { body: String },
}

#[derive(Clone)]
struct Emulator {
    invocations: Arc<Mutex<VecDeque<(String, String)>>>,
    /// One permit per invocation that may be handed out now.
    gate: Arc<Semaphore>,
    /// How many invocations were answered (a response or an error).
    answered: Arc<AtomicUsize>,
    posted: mpsc::UnboundedSender<Posted>,
}

const API: &str = "/2018-06-01/runtime";

/// Serves the Runtime API on 127.0.0.1: `/invocation/next` hands out `invocations` in
/// order, each once `gate` gives a permit, and then blocks, like Lambda between
/// invocations.
async fn start_emulator(
    invocations: Vec<(String, String)>,
    gate: Gate,
) -> (SocketAddr, mpsc::UnboundedReceiver<Posted>) {
    let (posted, received) = mpsc::unbounded_channel();
    let emulator = Emulator {
        invocations: Arc::new(Mutex::new(invocations.into())),
        gate: gate.permits,
        answered: gate.answered,
        posted,
    };
    let app = Router::new()
        .route(&format!("{API}/invocation/next"), get(next))
        .route(&format!("{API}/invocation/{{id}}/response"), post(response))
        .route(
            &format!("{API}/invocation/{{id}}/error"),
            post(invocation_error),
        )
        .route(&format!("{API}/init/error"), post(init_error))
        .with_state(emulator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

async fn next(State(emulator): State<Emulator>) -> Response {
    emulator.gate.acquire().await.unwrap().forget();
    let invocation = emulator.invocations.lock().unwrap().pop_front();
    let Some((request_id, payload)) = invocation else {
        return std::future::pending().await;
    };
    let deadline_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:111122223333:function:eventfork-test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into(),
    );
    set("content-type", "application/json".into());
    (headers, payload).into_response()
}

async fn response(
    State(emulator): State<Emulator>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    emulator.answered.fetch_add(1, Ordering::SeqCst);
    let _ = emulator.posted.send(Posted::Response { request_id, body });
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(emulator): State<Emulator>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    emulator.answered.fetch_add(1, Ordering::SeqCst);
    let _ = emulator.posted.send(Posted::Error { request_id, body });
    StatusCode::ACCEPTED
}

async fn init_error(State(emulator): State<Emulator>, body: Bytes) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    let _ = emulator.posted.send(Posted::InitError { body });
    StatusCode::ACCEPTED
}

/// A finished run of a binary: what it posted, and its stdout and stderr.
struct Run {
    posted: Vec<Posted>,
    output: String,
    exit_success: Option<bool>,
}

/// Runs `binary` with exactly `env` (plus the Lambda variables) until it has answered
/// `invocations` invocations, or exited.
async fn run_binary(
    binary: &str,
    env: &[(&str, String)],
    invocations: Vec<(String, String)>,
) -> Run {
    let gate = Gate::new(invocations.len());
    run_gated_binary(binary, env, invocations, gate).await
}

/// When the emulator hands out invocations: one per permit; and how many were answered.
#[derive(Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    answered: Arc<AtomicUsize>,
}

impl Gate {
    fn new(permits: usize) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(permits)),
            answered: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// [`run_binary`], handing out each invocation once `gate` gives a permit.
async fn run_gated_binary(
    binary: &str,
    env: &[(&str, String)],
    invocations: Vec<(String, String)>,
    gate: Gate,
) -> Run {
    let n_invocations = invocations.len();
    let (addr, mut received) = start_emulator(invocations, gate).await;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "eventfork-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/27/[$LATEST]0123456789abcdef",
        )
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/eventfork-test")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start the binary");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read_output = tokio::spawn(async move {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        out + &err
    });
    let mut posted = Vec::new();
    let mut exit_success = None;
    let collect = async {
        loop {
            tokio::select! {
                // What was posted before the exit is taken first.
                biased;
                message = received.recv() => {
                    let message = message.expect("the emulator runs");
                    // After an init error the binary exits: wait for that.
                    let init_error = matches!(message, Posted::InitError { .. });
                    posted.push(message);
                    if posted.len() == n_invocations && !init_error {
                        break;
                    }
                }
                status = child.wait() => {
                    exit_success = Some(status.unwrap().success());
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .expect("the binary answers within 60 s");
    if exit_success.is_none() {
        child.kill().await.unwrap();
    }
    let output = read_output.await.unwrap();
    Run {
        posted,
        output,
        exit_success,
    }
}

fn invocation(request_id: &str) -> (String, String) {
    (request_id.to_owned(), SQS_BATCH.to_owned())
}

/// The message ids of the `batchItemFailures` in a response.
fn failed_ids(posted: &Posted) -> Vec<String> {
    let body = match posted {
        Posted::Response { body, .. } => body,
        Posted::Error { request_id, body } => panic!("invocation {request_id} failed: {body}"),
        Posted::InitError { body } => panic!("initialisation failed: {body}"),
    };
    body["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {body}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// Every log line is JSON, and none holds an email address or a secret.
fn check_logs(output: &str, secrets: &[&str]) {
    assert!(
        output.contains("record failed"),
        "no failure logged:\n{output}"
    );
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        let lower = line.to_lowercase();
        assert!(!lower.contains("@example."), "email in the logs: {line}");
        for secret in secrets {
            assert!(!line.contains(secret), "secret in the logs: {line}");
        }
    }
}

async fn ok_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn n_requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn analytics_binary_answers_with_the_malformed_record() {
    let server = ok_server().await;
    let run = run_binary(
        env!("CARGO_BIN_EXE_analytics"),
        &[
            ("ANALYTICS_ENDPOINT", format!("{}/v1/track", server.uri())),
            ("ANALYTICS_WRITE_KEY", "wk-secret-analytics".into()),
        ],
        vec![invocation("req-1")],
    )
    .await;
    assert_eq!(run.posted.len(), 1, "{}", run.output);
    assert!(matches!(&run.posted[0], Posted::Response { request_id, .. } if request_id == "req-1"));
    assert_eq!(failed_ids(&run.posted[0]), [MALFORMED_MESSAGE]);
    assert_eq!(n_requests(&server).await, 3);
    check_logs(&run.output, &["wk-secret-analytics"]);
    assert!(
        run.output.contains("IDEMPOTENCY_TABLE is not set"),
        "{}",
        run.output
    );
}

/// With `DEAD_LETTER_QUEUE_URL` set, as template.yaml sets it, the binary sends the
/// record that can never succeed to that queue itself and reports the batch handled.
#[tokio::test]
async fn analytics_binary_sends_the_malformed_record_to_its_dead_letter_queue() {
    let Some(moto) =
        moto_url("analytics_binary_sends_the_malformed_record_to_its_dead_letter_queue")
    else {
        return;
    };
    let server = ok_server().await;
    let config = test_support::sdk_config(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (dead_letters, _) = test_support::queue(&sqs, &test_support::unique("analytics-dlq")).await;
    let mut env = test_support::aws_env(&moto);
    env.extend([
        ("ANALYTICS_ENDPOINT", format!("{}/v1/track", server.uri())),
        ("ANALYTICS_WRITE_KEY", "wk-secret-analytics".into()),
        ("DEAD_LETTER_QUEUE_URL", dead_letters.clone()),
    ]);
    let run = run_binary(
        env!("CARGO_BIN_EXE_analytics"),
        &env,
        vec![invocation("req-1")],
    )
    .await;
    assert_eq!(run.posted.len(), 1, "{}", run.output);
    assert_eq!(
        failed_ids(&run.posted[0]),
        Vec::<String>::new(),
        "{}",
        run.output
    );
    assert_eq!(n_requests(&server).await, 3);
    check_logs(&run.output, &["wk-secret-analytics"]);
    assert!(
        run.output.contains("record moved to the dead-letter queue"),
        "{}",
        run.output
    );
    let moved = sqs
        .receive_message()
        .queue_url(&dead_letters)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let malformed = fixture_batch()
        .records
        .into_iter()
        .find(|r| r.message_id.as_deref() == Some(MALFORMED_MESSAGE))
        .unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].body(), malformed.body.as_deref());
}

#[tokio::test]
async fn mailing_list_binary_fails_the_misrouted_login() {
    let server = ok_server().await;
    let run = run_binary(
        env!("CARGO_BIN_EXE_mailing-list"),
        &[
            ("MAILCHIMP_API_BASE", format!("{}/3.0", server.uri())),
            ("MAILCHIMP_API_KEY", "secretkey0123-us21".into()),
            ("MAILCHIMP_LIST_ID", "a1b2c3d4e5".into()),
        ],
        vec![invocation("req-1")],
    )
    .await;
    assert_eq!(run.posted.len(), 1, "{}", run.output);
    assert_eq!(
        failed_ids(&run.posted[0]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert_eq!(n_requests(&server).await, 1);
    check_logs(&run.output, &["secretkey0123"]);
}

#[tokio::test]
async fn slack_binary_suppresses_the_redelivered_batch() {
    let server = ok_server().await;
    let webhook = format!("{}/services/T0001/B0002/webhooksecret", server.uri());
    let run = run_binary(
        env!("CARGO_BIN_EXE_slack"),
        &[("SLACK_WEBHOOK_URL", webhook)],
        vec![invocation("req-1"), invocation("req-2")],
    )
    .await;
    assert_eq!(run.posted.len(), 2, "{}", run.output);
    assert_eq!(
        failed_ids(&run.posted[0]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    // The same batch again, in the same warm instance: the two sign-ups are duplicates.
    assert_eq!(
        failed_ids(&run.posted[1]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert_eq!(n_requests(&server).await, 2);
    assert!(
        run.output.contains("already processed, skipped"),
        "{}",
        run.output
    );
    check_logs(&run.output, &["webhooksecret"]);
}

/// A start-up error fails each batch (Lambda counts it in the function's `Errors`) and
/// holds its records back, instead of ending the process: the next batch tries again.
#[tokio::test]
async fn a_missing_variable_fails_each_batch_and_is_named() {
    let run = run_binary(
        env!("CARGO_BIN_EXE_mailing-list"),
        &[("MAILCHIMP_API_KEY", "secretkey0123-us21".into())],
        vec![invocation("req-1"), invocation("req-2")],
    )
    .await;
    assert_eq!(run.exit_success, None, "it keeps serving: {}", run.output);
    assert_eq!(run.posted.len(), 2, "{}", run.output);
    for (posted, id) in run.posted.iter().zip(["req-1", "req-2"]) {
        match posted {
            Posted::Error { request_id, body } => {
                assert_eq!(request_id, id);
                let body: Value = serde_json::from_str(body).unwrap();
                assert_eq!(body["errorType"], "StartupError");
                assert_eq!(
                    body["errorMessage"],
                    "invalid configuration: MAILCHIMP_LIST_ID is not set"
                );
            }
            other => panic!("expected an invocation error, got {other:?}"),
        }
    }
    // The first batch read the configuration again; the second, right after, did not
    // (at most one rebuild a second) and failed with the same error.
    assert_eq!(
        run.output.matches("start-up failed again").count(),
        1,
        "{}",
        run.output
    );
}

#[tokio::test]
async fn an_sqs_endpoint_without_a_host_stops_start_up() {
    let run = run_binary(
        env!("CARGO_BIN_EXE_slack"),
        &[
            ("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook".into()),
            ("AWS_ENDPOINT_URL_SQS", "/".into()),
        ],
        vec![invocation("req-1")],
    )
    .await;
    assert_eq!(run.exit_success, Some(false), "{}", run.output);
    assert!(
        run.output
            .contains("invalid configuration: AWS_ENDPOINT_URL_SQS is malformed"),
        "{}",
        run.output
    );
    assert!(
        matches!(&run.posted[..], [Posted::InitError { body }] if body.contains("AWS_ENDPOINT_URL_SQS is malformed")),
        "{:?}",
        run.posted
    );
}

#[tokio::test]
async fn slack_binary_reads_its_webhook_from_secrets_manager_and_uses_dynamodb() {
    let Some(moto) =
        moto_url("slack_binary_reads_its_webhook_from_secrets_manager_and_uses_dynamodb")
    else {
        return;
    };
    let server = ok_server().await;
    let dynamodb = crate::dynamodb::client(&moto);
    let table = crate::dynamodb::create_table(&dynamodb, "slack-binary").await;
    let secrets = secrets_manager(&moto).await;
    let secret = secrets
        .create_secret()
        .name(format!("{table}-webhook"))
        .secret_string(format!(
            "{}/services/T0001/B0002/webhooksecret",
            server.uri()
        ))
        .send()
        .await
        .unwrap();
    let mut env = test_support::aws_env(&moto);
    env.extend([
        (
            "SLACK_WEBHOOK_URL_SECRET_ARN",
            secret.arn().unwrap().to_owned(),
        ),
        ("IDEMPOTENCY_TABLE", table.clone()),
    ]);
    let run = run_binary(env!("CARGO_BIN_EXE_slack"), &env, vec![invocation("req-1")]).await;
    assert_eq!(run.posted.len(), 1, "{}", run.output);
    assert_eq!(
        failed_ids(&run.posted[0]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert_eq!(n_requests(&server).await, 2);
    check_logs(&run.output, &["webhooksecret"]);

    // A second cold start shares the table: the batch is a duplicate there too.
    let run = run_binary(env!("CARGO_BIN_EXE_slack"), &env, vec![invocation("req-2")]).await;
    assert_eq!(
        failed_ids(&run.posted[0]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert_eq!(n_requests(&server).await, 2);
    let items = dynamodb.scan().table_name(&table).send().await.unwrap();
    let mut ids: Vec<_> = items
        .items()
        .iter()
        .map(|item| item["id"].as_s().unwrap().clone())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["slack#UserSignedUp#user-42", "slack#UserSignedUp#user-43"]
    );
}

/// A webhook rotated in Secrets Manager while an instance is warm: the batch the old one
/// fails (HTTP 403) is retried, and the next batch reads the secret again and gets
/// through, without a cold start.
#[tokio::test]
async fn a_refused_secret_is_read_again_before_the_next_batch() {
    let Some(moto) = moto_url("a_refused_secret_is_read_again_before_the_next_batch") else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(path("/services/T0001/B0002/revoked"))
        .respond_with(ResponseTemplate::new(403).set_body_string("invalid_token"))
        .mount(&server)
        .await;
    Mock::given(path("/services/T0001/B0002/rotated"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let secrets = secrets_manager(&moto).await;
    let name = test_support::unique("rotated-webhook");
    let secret = secrets
        .create_secret()
        .name(&name)
        .secret_string(format!("{}/services/T0001/B0002/revoked", server.uri()))
        .send()
        .await
        .unwrap();
    let arn = secret.arn().unwrap().to_owned();
    let mut env = test_support::aws_env(&moto);
    env.push(("SLACK_WEBHOOK_URL_SECRET_ARN", arn.clone()));
    // The second invocation waits until the secret is rotated.
    let gate = Gate::new(1);
    let rotate = {
        let (gate, uri) = (Arc::clone(&gate.permits), server.uri());
        async move {
            secrets
                .put_secret_value()
                .secret_id(arn)
                .secret_string(format!("{uri}/services/T0001/B0002/rotated"))
                .send()
                .await
                .unwrap();
            gate.add_permits(1);
        }
    };
    let first_refused = async {
        while n_requests(&server).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rotate.await;
    };
    let (run, ()) = tokio::join!(
        run_gated_binary(
            env!("CARGO_BIN_EXE_slack"),
            &env,
            vec![invocation("req-1"), invocation("req-2")],
            gate,
        ),
        first_refused,
    );
    assert_eq!(run.posted.len(), 2, "{}", run.output);
    // Refused: the sign-ups fail too, retryably, and nothing went through.
    assert_eq!(
        failed_ids(&run.posted[0]),
        [
            SIGNUP_MESSAGE,
            LOGIN_MESSAGE,
            MALFORMED_MESSAGE,
            REPLAYED_SIGNUP_MESSAGE
        ]
    );
    assert!(
        run.output.contains("refused the credentials with HTTP 403"),
        "{}",
        run.output
    );
    // Read again: the same batch gets through with the rotated webhook.
    assert_eq!(
        failed_ids(&run.posted[1]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert!(
        run.output
            .contains("the configuration and secrets were read again"),
        "{}",
        run.output
    );
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths.iter().filter(|p| p.ends_with("/rotated")).count(),
        2,
        "{paths:?}"
    );
    check_logs(&run.output, &["revoked", "rotated"]);
}

/// On a first deploy the secret may be set after events arrive: until it is, batches fail
/// and wait; the batch after it is set is handled, without a cold start.
#[tokio::test]
async fn a_secret_set_after_start_up_is_read_by_the_next_batch() {
    let Some(moto) = moto_url("a_secret_set_after_start_up_is_read_by_the_next_batch") else {
        return;
    };
    let server = ok_server().await;
    let secrets = secrets_manager(&moto).await;
    let name = test_support::unique("late-webhook");
    let mut env = test_support::aws_env(&moto);
    env.push(("SLACK_WEBHOOK_URL_SECRET_ARN", name.clone()));
    // The second invocation waits until the secret exists.
    let gate = Gate::new(1);
    let set_secret = {
        let (gate, uri, name) = (Arc::clone(&gate.permits), server.uri(), name.clone());
        async move {
            secrets
                .create_secret()
                .name(name)
                .secret_string(format!("{uri}/services/T0001/B0002/latesecret"))
                .send()
                .await
                .unwrap();
            gate.add_permits(1);
        }
    };
    let (run, ()) = tokio::join!(
        run_gated_binary(
            env!("CARGO_BIN_EXE_slack"),
            &env,
            vec![invocation("req-1"), invocation("req-2")],
            gate.clone(),
        ),
        async {
            // Once the first batch has failed for want of the secret; the next one may
            // read it again a second after that.
            while gate.answered.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(1100)).await;
            set_secret.await;
        },
    );
    assert_eq!(run.posted.len(), 2, "{}", run.output);
    assert!(
        matches!(&run.posted[0], Posted::Error { body, .. } if body.contains("StartupError")),
        "{:?}",
        run.posted[0]
    );
    assert_eq!(
        failed_ids(&run.posted[1]),
        [LOGIN_MESSAGE, MALFORMED_MESSAGE]
    );
    assert!(
        run.output
            .contains("start-up succeeded: batches are handled again"),
        "{}",
        run.output
    );
    assert_eq!(n_requests(&server).await, 2);
    check_logs(&run.output, &["latesecret"]);
}

/// A Secrets Manager client on moto.
async fn secrets_manager(moto: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&test_support::sdk_config(moto).await)
}
