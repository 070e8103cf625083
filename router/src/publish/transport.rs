//! The seam between the Publisher and EventBridge: the two calls it makes, as a small
//! trait, and its implementation over the AWS SDK.
//!
//! Tests, and services that want to test their own code, implement [`Transport`] with a
//! fake; nothing of the SDK crosses the seam.

use std::{fmt, future::Future, pin::Pin};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_eventbridge::{
    Client,
    config::retry::RetryConfig,
    error::{ProvideErrorMetadata, SdkError},
    primitives::{DateTime, DateTimeFormat},
    types::PutEventsRequestEntry,
};
use aws_smithy_types::retry::ErrorKind;

use super::Entry;

/// A boxed future, as [`Transport`] returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the Publisher reaches EventBridge: PutEvents and DescribeEventBus, one attempt each.
///
/// The Publisher does the batching, the retries, the timeouts and the rate limiting; an
/// implementation makes exactly one call per method call and reports what came back.
pub trait Transport: Send + Sync + 'static {
    /// Sends `entries` (1 to 10, within the size limit) to `bus` in one PutEvents request.
    ///
    /// On success the answer has one result per entry, in the same order.
    fn put_events<'a>(
        &'a self,
        bus: &'a str,
        entries: &'a [&'a Entry],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>>;

    /// Checks that `bus` (a name or an ARN) exists, with DescribeEventBus.
    fn describe_event_bus<'a>(&'a self, bus: &'a str) -> BoxFuture<'a, Result<(), RequestError>>;
}

/// What EventBridge answered for one entry of a PutEvents request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryResult {
    /// Accepted, under this event id.
    Published {
        /// The event id EventBridge assigned.
        event_id: String,
    },
    /// Refused, with EventBridge's error code (e.g. `ThrottlingException`) and message.
    Failed {
        /// The error code.
        code: String,
        /// The error message.
        message: String,
    },
}

/// A whole request that failed: nothing of it is known to have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    code: String,
    message: String,
    retryable: bool,
    unanswered: bool,
    /// Cut short by the call's deadline: says nothing of EventBridge.
    cut_by_call: bool,
}

impl RequestError {
    /// A request error with an AWS-style `code`, a message, and whether trying the same
    /// request again may succeed (throttling, 5xx, timeouts, connection errors).
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        RequestError {
            code: code.into(),
            message: message.into(),
            retryable,
            unanswered: false,
            cut_by_call: false,
        }
    }

    /// A request abandoned when the call's deadline passed `after` into it.
    pub(crate) fn cut_by_call_deadline(after: std::time::Duration) -> Self {
        RequestError {
            cut_by_call: true,
            ..RequestError::new(
                "CallDeadline",
                format!("the call's deadline passed {after:?} into the request, before an answer"),
                true,
            )
            .unanswered()
        }
    }

    /// Whether the call's deadline cut the request short, rather than EventBridge failing
    /// to answer in time.
    pub(crate) fn is_cut_by_call(&self) -> bool {
        self.cut_by_call
    }

    /// The same error, for a request that may have reached EventBridge and got no answer
    /// (a timeout, a connection lost after it was sent): its entries may have been
    /// published, whatever later attempts meet.
    pub fn unanswered(mut self) -> Self {
        self.unanswered = true;
        self
    }

    /// Whether the request may have reached EventBridge without an answer coming back.
    pub fn is_unanswered(&self) -> bool {
        self.unanswered
    }

    /// The error code, e.g. `ThrottlingException` or `ResourceNotFoundException`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the same request may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RequestError {}

/// The [`Transport`] over the AWS SDK for Rust.
pub(crate) struct SdkTransport {
    client: Client,
    /// The endpoint set by configuration (`AWS_ENDPOINT_URL`), named when its answers are
    /// not EventBridge's.
    endpoint: Option<String>,
    /// Whether the configuration names a region: without one the SDK cannot sign, and
    /// says so only as an unclassified dispatch failure.
    has_region: bool,
}

impl SdkTransport {
    pub(crate) fn new(sdk_config: &aws_config::SdkConfig) -> SdkTransport {
        // The SDK's own retries are off: the Publisher retries entries and requests itself,
        // under one deadline, and two layers of retries would multiply the attempts.
        let config = aws_sdk_eventbridge::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::disabled())
            .build();
        SdkTransport {
            client: Client::from_conf(config),
            endpoint: sdk_config.endpoint_url().map(str::to_owned),
            has_region: sdk_config.region().is_some(),
        }
    }

    /// Over a client configuration of the caller's own (interceptors, HTTP client,
    /// timeouts), with the SDK's retries turned off as in [`SdkTransport::new`].
    pub(crate) fn from_conf(config: &aws_sdk_eventbridge::Config) -> SdkTransport {
        let config = config
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        SdkTransport {
            has_region: config.region().is_some(),
            client: Client::from_conf(config),
            endpoint: None,
        }
    }

    async fn put_events_once(
        &self,
        bus: &str,
        entries: &[&Entry],
    ) -> Result<Vec<EntryResult>, RequestError> {
        // An entry whose time the SDK cannot represent fails alone; the others are sent.
        let mut results: Vec<Option<EntryResult>> = vec![None; entries.len()];
        let mut request_entries = Vec::with_capacity(entries.len());
        let mut sent_indices = Vec::with_capacity(entries.len());
        for (entry_idx, entry) in entries.iter().enumerate() {
            match request_entry(bus, entry) {
                Ok(request_entry) => {
                    request_entries.push(request_entry);
                    sent_indices.push(entry_idx);
                }
                Err(message) => {
                    results[entry_idx] = Some(EntryResult::Failed {
                        code: "InvalidArgument".to_owned(),
                        message,
                    });
                }
            }
        }
        if !request_entries.is_empty() {
            let output = self
                .client
                .put_events()
                .set_entries(Some(request_entries))
                .send()
                .await
                .map_err(|error| request_error(error, self.endpoint.as_deref(), self.has_region))?;
            let answers = output.entries();
            if answers.len() != sent_indices.len() {
                return Err(RequestError::new(
                    "InvalidResponse",
                    format!(
                        "PutEvents answered {} results for {} entries",
                        answers.len(),
                        sent_indices.len()
                    ),
                    false,
                ));
            }
            for (answer, entry_idx) in answers.iter().zip(sent_indices) {
                let result = match (answer.event_id(), answer.error_code()) {
                    (Some(event_id), None) => EntryResult::Published {
                        event_id: event_id.to_owned(),
                    },
                    (_, code) => EntryResult::Failed {
                        code: code.unwrap_or("Unknown").to_owned(),
                        message: answer.error_message().unwrap_or_default().to_owned(),
                    },
                };
                results[entry_idx] = Some(result);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every entry was either refused locally or answered"))
            .collect())
    }
}

impl Transport for SdkTransport {
    fn put_events<'a>(
        &'a self,
        bus: &'a str,
        entries: &'a [&'a Entry],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
        Box::pin(self.put_events_once(bus, entries))
    }

    fn describe_event_bus<'a>(&'a self, bus: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
        Box::pin(async move {
            self.client
                .describe_event_bus()
                .name(bus)
                .send()
                .await
                .map(drop)
                .map_err(|error| request_error(error, self.endpoint.as_deref(), self.has_region))
        })
    }
}

fn request_entry(bus: &str, entry: &Entry) -> Result<PutEventsRequestEntry, String> {
    let time = match entry.time() {
        None => None,
        Some(time) => Some(
            DateTime::from_str(time.as_str(), DateTimeFormat::DateTimeWithOffset)
                .map_err(|e| format!("time {:?} cannot be sent: {e}", time.as_str()))?,
        ),
    };
    let resources = (!entry.resources().is_empty()).then(|| entry.resources().to_vec());
    Ok(PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(entry.source())
        .detail_type(entry.detail_type())
        .detail(entry.detail())
        .set_resources(resources)
        .set_time(time)
        .set_trace_header(entry.trace_header().map(str::to_owned))
        .build())
}

/// An error and its causes, each once (an SDK error repeats its source's text), without
/// the debug dumps that `DisplayErrorContext` appends: "dispatch failure: io error: …
/// Connection refused".
pub fn error_causes(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Whether an error's causes say that no connection was made, so that nothing was sent:
/// the client's connector failed (the name did not resolve, the connection was refused,
/// timed out or had no route, the TLS handshake failed). Any other network failure (a
/// reset, a connection closed before the answer, a timeout of the exchange) may have come
/// after the request was written.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as Io;
    causes(error).any(|cause| {
        cause.is::<aws_smithy_runtime_api::client::dns::ResolveDnsError>()
            // The SDK's HTTP client reports every failure of its connector as a connect
            // error.
            || cause
                .downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(hyper_util::client::legacy::Error::is_connect)
            || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    Io::ConnectionRefused
                        | Io::HostUnreachable
                        | Io::NetworkUnreachable
                        | Io::AddrNotAvailable
                )
            })
    })
}

/// Whether an error's causes say that no endpoint could be resolved: the request was
/// never sent.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|cause| {
        cause.is::<aws_smithy_http::endpoint::ResolveEndpointError>()
            || cause.is::<aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError>()
    })
}

/// The credentials error among an error's causes, if any.
fn credentials_error<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e CredentialsError> {
    causes(error).find_map(|cause| cause.downcast_ref::<CredentialsError>())
}

/// An error and its causes, outermost first.
fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |cause| cause.source())
}

/// Error codes that mean "slow down", whatever the HTTP status.
const THROTTLING_CODES: [&str; 5] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Turns an SDK error into ours, deciding whether the request may be retried: throttling,
/// 5xx answers, timeouts and connection errors may; anything the caller got wrong may not.
fn request_error<E>(
    error: SdkError<E, aws_sdk_eventbridge::config::http::HttpResponse>,
    endpoint: Option<&str>,
    has_region: bool,
) -> RequestError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = error_causes(&error);
    // An answer that is not EventBridge's, from a configured endpoint, usually means the
    // endpoint is something else (a web server, another service): say so.
    let foreign = |response: &aws_sdk_eventbridge::config::http::HttpResponse| {
        let content_type = response
            .headers()
            .get("content-type")
            .unwrap_or("no content type");
        let status = response.status().as_u16();
        match endpoint {
            Some(endpoint) => format!(
                "{endpoint} answered HTTP {status} ({content_type}), not as EventBridge does: is AWS_ENDPOINT_URL (or the profile's endpoint_url) an EventBridge endpoint? ({message})"
            ),
            None => format!(
                "the answer, HTTP {status} ({content_type}), is not EventBridge's ({message})"
            ),
        }
    };
    match &error {
        SdkError::TimeoutError(_) => RequestError::new("Timeout", message, true).unanswered(),
        SdkError::DispatchFailure(failure) => match credentials_error(&error) {
            // The SDK reports credentials it could not load as a dispatch failure: only a
            // provider that timed out or failed on its way (an STS 503) may do better on
            // the next try; none configured, a broken configuration or an expired
            // session will not.
            Some(credentials) => {
                let retryable = matches!(
                    credentials,
                    CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_)
                );
                RequestError::new("CredentialsError", message, retryable)
            }
            // The network failed (a refused or dropped connection, a timeout, an answer
            // cut short): retried.
            None if failure.is_io()
                || failure.is_timeout()
                || failure.as_other() == Some(ErrorKind::TransientError) =>
            {
                let connection_error = RequestError::new("ConnectionError", message, true);
                if never_connected(&error) {
                    connection_error
                } else {
                    connection_error.unanswered()
                }
            }
            // No endpoint could be worked out (no region, an endpoint URL the SDK cannot
            // use): nothing was sent, and no retry will change that.
            None if !has_region || never_sent(&error) => {
                RequestError::new("InvalidConfiguration", message, false)
            }
            // Anything else may have failed after the request was written (an answer
            // hyper could not parse): retried as before, and then Unconfirmed, since the
            // events may have been published.
            None => RequestError::new("ConnectionError", message, failure.is_other()).unanswered(),
        },
        // A JSON success that could not be read (a body cut short or garbled): the events
        // may have been published, so they are reported as unconfirmed, never sent again.
        // (A success of another kind, an HTML page, is no EventBridge answer: below.)
        SdkError::ResponseError(response)
            if response.raw().status().is_success() && is_json(response.raw()) =>
        {
            RequestError::new(
                "InvalidResponse",
                unreadable(response.raw(), &message),
                false,
            )
        }
        SdkError::ServiceError(service)
            if error.code().is_none()
                && service.raw().status().is_success()
                && is_json(service.raw()) =>
        {
            RequestError::new(
                "InvalidResponse",
                unreadable(service.raw(), &message),
                false,
            )
        }
        SdkError::ResponseError(response) => {
            // A failure's JSON answer cut short is EventBridge's all the same (a network
            // blip), and retried; only another kind of body points at the endpoint.
            let message = if is_json(response.raw()) {
                message.clone()
            } else {
                foreign(response.raw())
            };
            RequestError::new("UnreadableResponse", message, true)
        }
        SdkError::ServiceError(service) if error.code().is_none() => {
            // No AWS error code: a proxy's 502 page may pass, a 404 or 501 will not.
            let status = service.raw().status().as_u16();
            let retryable = matches!(status, 429 | 500 | 502 | 503 | 504);
            RequestError::new("UnexpectedResponse", foreign(service.raw()), retryable)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error.code().unwrap_or("Unknown").to_owned();
            let retryable =
                status >= 500 || status == 429 || THROTTLING_CODES.contains(&code.as_str());
            let message = error.message().map(str::to_owned).unwrap_or(message);
            RequestError::new(code, message, retryable)
        }
        // The request could not be built (an invalid region, say): nothing was sent.
        _ => RequestError::new("InvalidConfiguration", message, false),
    }
}

/// Whether an answer says it is JSON, as EventBridge's answers are.
fn is_json(response: &aws_sdk_eventbridge::config::http::HttpResponse) -> bool {
    response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.contains("json"))
}

/// What an unreadable success says: its status and content type, and the reader's error.
fn unreadable(response: &aws_sdk_eventbridge::config::http::HttpResponse, message: &str) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap_or("no content type");
    format!(
        "the answer, HTTP {} ({content_type}), could not be read ({message})",
        response.status().as_u16()
    )
}
