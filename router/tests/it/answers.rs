//! What the Publisher makes of answers that are not EventBridge's usual ones, and of
//! configurations that stop a request before it is sent: through the real SDK, against a
//! local HTTP server (wiremock, or a raw socket for an answer cut short).

use std::time::{Duration, Instant};

use events_schema::UserLoggedIn;
use router::{PublishError, Publisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

fn login() -> UserLoggedIn {
    UserLoggedIn::builder("user-1", "192.0.2.1".parse().unwrap())
        .unwrap()
        .build()
}

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("testing", "testing", None, None, "tests")
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .load()
        .await
}

fn publisher(sdk_config: &aws_config::SdkConfig) -> Publisher {
    Publisher::builder("eventfork")
        .retry_deadline(Duration::from_secs(20))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(sdk_config)
}

/// A server that answers every request with this status, body and content type.
async fn answering(status: u16, body: &str, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, content_type))
        .mount(&server)
        .await;
    server
}

/// Publishes one event to `endpoint` and checks that it comes back unconfirmed after one
/// send.
async fn publish_unconfirmed(endpoint: &str) -> PublishError {
    let error = publisher(&sdk_config(endpoint).await)
        .publish(&login())
        .await
        .unwrap_err();
    assert!(
        matches!(error, PublishError::Unconfirmed { attempts: 1, .. }),
        "{error:?}"
    );
    error
}

/// A success whose JSON breaks off: EventBridge may have taken the event, so it is
/// unconfirmed, and not sent again.
#[tokio::test]
async fn a_success_cut_short_is_unconfirmed_and_not_resent() {
    let server = answering(
        200,
        r#"{"Entries":[{"EventId":"6a7e8feb-b4"#,
        "application/x-amz-json-1.1",
    )
    .await;
    let error = publish_unconfirmed(&server.uri()).await;
    assert_eq!(error.code(), "InvalidResponse");
    assert!(
        error
            .to_string()
            .contains("the answer, HTTP 200 (application/x-amz-json-1.1), could not be read"),
        "{error}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// A success whose connection closes before its announced length: the same.
#[tokio::test]
async fn a_success_whose_connection_breaks_is_unconfirmed_and_not_resent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut n_requests = 0;
        while let Ok(Ok((mut socket, _))) =
            tokio::time::timeout(Duration::from_secs(2), listener.accept()).await
        {
            n_requests += 1;
            // Read the request (headers and a small body), then answer 50 bytes short.
            let mut request = vec![0; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let body = r#"{"Entries":[{"EventId":"6a7e8feb"}],"FailedEntryCount":0}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n",
                body.len() + 50
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            drop(socket);
        }
        n_requests
    });
    publish_unconfirmed(&endpoint).await;
    assert_eq!(server.await.unwrap(), 1);
}

/// A request that reached the server and got no answer (the server died after storing
/// it), then retries refused: the event may have been published, so it is unconfirmed,
/// not "not published" (found by an audit: events reported failed were delivered, and a
/// user re-sending them would have published them twice).
#[tokio::test]
async fn a_request_without_an_answer_stays_unconfirmed_when_retries_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 64 * 1024];
        let _ = socket.read(&mut request).await;
        // Gone without a word: the socket closes, and so does the listener.
    });
    let publisher = Publisher::builder("eventfork")
        .retry_deadline(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(&sdk_config(&endpoint).await);
    let error = publisher.publish(&login()).await.unwrap_err();
    server.await.unwrap();
    let PublishError::Unconfirmed { attempts, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(*attempts > 1, "{error}");
    let text = error.to_string();
    assert!(text.contains("Connection refused"), "{text}");
    assert!(
        text.contains("an attempt got no answer (ConnectionError: "),
        "{text}"
    );
}

/// Refused from the start: nothing was sent, so nothing was published.
#[tokio::test]
async fn refused_connections_are_not_published() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let publisher = Publisher::builder("eventfork")
        .retry_deadline(Duration::from_millis(200))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(&sdk_config(&endpoint).await);
    let error = publisher.publish(&login()).await.unwrap_err();
    assert!(
        matches!(error, PublishError::RetriesExhausted { .. }),
        "{error:?}"
    );
}

/// A name that does not resolve: nothing was sent either (the first version of the
/// unanswered tracking called this unconfirmed: a review).
#[tokio::test]
async fn an_unresolved_name_is_not_published() {
    let publisher = Publisher::builder("eventfork")
        .retry_deadline(Duration::from_millis(200))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(&sdk_config("http://no-such-host.invalid:4010").await);
    let error = publisher.publish(&login()).await.unwrap_err();
    assert!(
        matches!(
            error,
            PublishError::RetriesExhausted { .. } | PublishError::Unreachable { .. }
        ),
        "{error:?}"
    );
}

/// A failure's answer cut short is still a failure: retried, and reported as such.
#[tokio::test]
async fn a_failure_cut_short_is_retried() {
    let server = answering(
        500,
        r#"{"__type":"InternalExcep"#,
        "application/x-amz-json-1.1",
    )
    .await;
    let publisher = Publisher::builder("eventfork")
        .retry_deadline(Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(&sdk_config(&server.uri()).await);
    let error = publisher.publish(&login()).await.unwrap_err();
    assert!(
        matches!(error, PublishError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert!(server.received_requests().await.unwrap().len() > 1);
}

/// No region: the SDK cannot build a request, and says so at once, without retrying for
/// the whole deadline as if the network were down.
#[tokio::test]
async fn a_missing_region_fails_at_once() {
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(credentials())
        .load()
        .await;
    // Whatever region the environment names, none.
    let sdk_config = sdk_config.into_builder().region(None).build();
    let started = Instant::now();
    let error = publisher(&sdk_config).publish(&login()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, PublishError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "InvalidConfiguration", "{error}");
    assert!(
        error.to_string().to_lowercase().contains("region"),
        "{error}"
    );
    // Holding the event for a later resend would not help: the configuration must change.
    assert!(!error.is_retryable());
}

/// A region the SDK cannot build an endpoint for: nothing is sent, and the error does
/// not claim that EventBridge refused anything.
#[tokio::test]
async fn an_unusable_region_is_a_configuration_error() {
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("not a region!"))
        .credentials_provider(credentials())
        .load()
        .await;
    let started = Instant::now();
    let error = publisher(&sdk_config).publish(&login()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.code(), "InvalidConfiguration", "{error:?}");
    assert!(
        error.to_string().starts_with("cannot reach EventBridge: "),
        "{error}"
    );
}

/// An endpoint URL that is not one: nothing can be sent.
#[tokio::test]
async fn an_endpoint_that_is_no_url_is_a_configuration_error() {
    let sdk_config = sdk_config("notaurl").await;
    let started = Instant::now();
    let error = publisher(&sdk_config).publish(&login()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{error:?}");
    assert_eq!(error.code(), "InvalidConfiguration", "{error:?}");
}

/// A success that is an HTML page is no EventBridge answer: the endpoint is named, the
/// events were not published, and the bus check does not call anything unconfirmed.
#[tokio::test]
async fn an_html_success_names_the_endpoint() {
    let server = answering(200, "<html>Welcome to nginx!</html>", "text/html").await;
    let to_html = publisher(&sdk_config(&server.uri()).await);
    let error = to_html.publish(&login()).await.unwrap_err();
    assert!(
        matches!(error, PublishError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("is AWS_ENDPOINT_URL"), "{error}");
    assert!(!error.is_retryable(), "{error:?}");
    let error = to_html.verify_bus().await.unwrap_err();
    assert!(
        matches!(error, PublishError::Unreachable { .. }),
        "{error:?}"
    );
    // And a JSON success the check cannot read is unreachable, not "unconfirmed".
    let server = answering(200, r#"{"Name": "eventf"#, "application/x-amz-json-1.1").await;
    let error = publisher(&sdk_config(&server.uri()).await)
        .verify_bus()
        .await
        .unwrap_err();
    assert!(
        matches!(error, PublishError::Unreachable { .. }),
        "{error:?}"
    );
}

/// A Publisher over the caller's own client configuration turns that configuration's SDK
/// retries off: each of its attempts is one request, as with an SdkConfig, and its own
/// retries are the only ones.
#[tokio::test]
async fn a_publisher_over_a_client_configuration_retries_on_its_own() {
    let server = answering(
        500,
        r#"{"__type":"InternalException","message":"try again"}"#,
        "application/x-amz-json-1.1",
    )
    .await;
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk_config(&server.uri()).await)
        .retry_config(
            aws_sdk_eventbridge::config::retry::RetryConfig::standard().with_max_attempts(5),
        )
        .build();
    // One attempt: the deadline has passed by the time a retry would start.
    let error = Publisher::builder("eventfork")
        .retry_deadline(Duration::ZERO)
        .build_from_conf(&config)
        .publish(&login())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PublishError::RetriesExhausted { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "InternalException");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "the SDK retried under the Publisher");
}
