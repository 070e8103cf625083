//! The HTTP client shared by the handlers, the retry loop every call goes through, and the
//! TLS configuration of every HTTPS connection a target makes.
//!
//! 429 (honouring `Retry-After`), 5xx, timeouts and connection errors are retried with
//! exponential backoff and jitter, as long as the next attempt can start and finish before
//! the invocation's [`Deadline`]. A `Retry-After` holds back every request of the process
//! to that service, not only the retry of the record that got it: the records running
//! beside it would otherwise keep the service answering 429 (Slack takes about one
//! webhook message a second). 401 and 403 refuse the credentials; redirects, 404, 405 and
//! 410 say the target is misconfigured; other 4xx are permanent. Their errors hold the service's message from the first 4 KiB of the body. Errors never carry the request's URL, nor a
//! redirect's path, since a Slack webhook URL is a secret.
//!
//! # Root certificates
//!
//! Servers are verified against Mozilla's root certificates compiled into the binary
//! (webpki-roots), in one rustls configuration per process that the handlers' client and
//! the AWS SDK's client ([`crate::aws_http`]) share. They cover the AWS endpoints (Amazon
//! Root CA 1–4, Starfield) as well as Segment, Mailchimp and Slack, and they cost nothing at
//! start-up: no certificate file is read or parsed. Before, reqwest and the SDK each read
//! and parsed the system's certificates during every cold start, which cost a few
//! milliseconds with a hashed `/etc/ssl/certs` (issue #5). The consequence: the image's
//! trust store no longer matters, so a private CA added to it is not trusted, and the
//! roots change with `cargo update -p webpki-roots`, not with the image.

use std::{
    cell::Cell,
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant, SystemTime},
};

use rand::Rng;
use reqwest::{Client, RequestBuilder, StatusCode, header::RETRY_AFTER};
use tracing::warn;

use crate::{Deadline, HandlerError, deadline::MIN_ATTEMPT_TIME, error::error_chain};

/// When and how often a failed request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The backoff before the first retry; it doubles on each further retry.
    pub initial_backoff: Duration,
    /// The longest backoff between two attempts.
    pub max_backoff: Duration,
    /// The most requests sent for one side effect, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: half the exponential backoff plus a random
    /// part up to the other half, so that many failing records do not retry in lockstep.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        let half = exponential / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// The error building an [`HttpClient`].
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client")]
pub struct ClientError(#[source] reqwest::Error);

/// One HTTP client (rustls, connection pool, timeouts) and a [`RetryPolicy`]; build it
/// once per process and clone it into each handler.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client,
    retry: RetryPolicy,
    /// Per service, the time before which no request is sent (the latest `Retry-After`
    /// any clone of this client was given), and how long the request that was given it
    /// took. Shared by the clones.
    held: Arc<Mutex<HashMap<&'static str, Hold>>>,
}

/// A `Retry-After` that holds back every request to one service.
#[derive(Debug, Clone, Copy)]
struct Hold {
    until: tokio::time::Instant,
    /// How long the request answered with it took: what a request after the hold is
    /// given at the least.
    took: Duration,
}

impl HttpClient {
    /// A client with a 3 s connect timeout, a 10 s request timeout and the default retry
    /// policy.
    pub fn new() -> Result<HttpClient, ClientError> {
        HttpClient::with_timeouts(
            Duration::from_secs(3),
            Duration::from_secs(10),
            RetryPolicy::default(),
        )
    }

    /// A client with the given timeouts and retry policy.
    pub fn with_timeouts(
        connect_timeout: Duration,
        request_timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<HttpClient, ClientError> {
        let client = Client::builder()
            .tls_backend_preconfigured(tls_config())
            .user_agent(concat!("eventfork-targets/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            // A redirected POST comes back as a GET without its body: a 2xx to that would
            // pass for a delivery that never happened. A redirect is a wrong endpoint.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError)?;
        Ok(HttpClient {
            client,
            retry,
            held: Arc::default(),
        })
    }

    /// How long requests to `service` are still held back by a `Retry-After`, if they
    /// are, and how long the request answered with it took.
    fn held_for(&self, service: &'static str) -> Option<(Duration, Duration)> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let hold = *held.get(service)?;
        let left = hold
            .until
            .saturating_duration_since(tokio::time::Instant::now());
        (!left.is_zero()).then_some((left, hold.took))
    }

    /// Holds back every request to `service` for `wait`, or longer if it already is;
    /// `took` is how long the request answered with it took.
    fn hold(&self, service: &'static str, wait: Duration, took: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let hold = held.entry(service).or_insert(Hold { until, took });
        hold.until = hold.until.max(until);
        hold.took = hold.took.max(took);
    }

    /// Sends the request `build` makes until it succeeds, fails permanently, or the
    /// retries or the time run out. Returns the successful response, its body unread.
    pub(crate) async fn send(
        &self,
        service: &'static str,
        deadline: Deadline,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<reqwest::Response, HandlerError> {
        let mut n_attempts = 0;
        // What the attempt before this one met, kept for the error when the deadline cuts
        // this one short: "HTTP 503" says more than the deadline alone.
        let mut previous: Option<String> = None;
        // The service's last `Retry-After`, kept for the record's redelivery.
        let mut asked_to_wait: Option<Duration> = None;
        // How long this record's last attempt took: the least a next one is given.
        let mut last_attempt = Duration::ZERO;
        loop {
            // Another record was asked to leave the service alone for a while: this one
            // waits too, or gives up at once when it cannot wait that long and still send
            // a request with time to finish (one cut off may have reached the service).
            if let Some((wait, took)) = self.held_for(service) {
                // As long as this record's last attempt took, or the one that was told to
                // wait, whichever was longer.
                let attempt = last_attempt.max(took).max(MIN_ATTEMPT_TIME);
                if !deadline.allows(wait + attempt) {
                    let held = format!(
                        "held back: {service} asked for no request in the next {} s (Retry-After)",
                        wait.as_secs_f64().ceil()
                    );
                    return Err(HandlerError::Unavailable {
                        service,
                        n_attempts,
                        last: match previous {
                            Some(previous) => format!("{previous}; {held}"),
                            None => held,
                        },
                        retry_after: Some(asked_to_wait.map_or(wait, |asked| asked.max(wait))),
                    });
                }
                note_wait(wait);
                tokio::time::sleep(wait).await;
            }
            n_attempts += 1;
            let started = Instant::now();
            let sent =
                tokio::time::timeout_at(deadline.instant(), build(&self.client).send()).await;
            let (last, retry_after) = match sent {
                Err(_elapsed) => {
                    let mut last = "the invocation deadline passed during the request".to_owned();
                    if let Some(previous) = previous {
                        last = format!("{last} (the attempt before: {previous})");
                    }
                    return Err(HandlerError::Unavailable {
                        service,
                        n_attempts,
                        last,
                        retry_after: asked_to_wait,
                    });
                }
                Ok(Err(error)) if error.is_builder() => {
                    return Err(HandlerError::Request {
                        service,
                        source: error.without_url(),
                    });
                }
                Ok(Err(error)) => {
                    let kind = if error.is_timeout() {
                        "timed out"
                    } else if error.is_connect() {
                        "could not connect"
                    } else {
                        "request failed"
                    };
                    // The causes tell a refused connection from a failed DNS lookup or an
                    // untrusted certificate; without the URL, which may be a secret.
                    let source = error.without_url();
                    let causes = match std::error::Error::source(&source) {
                        Some(cause) => format!(": {}", error_chain(cause)),
                        None => String::new(),
                    };
                    (format!("{kind}{causes}"), None)
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    if status.is_success() {
                        return Ok(response);
                    }
                    if status.is_redirection() {
                        let location = response
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|value| value.to_str().ok());
                        return Err(HandlerError::Misconfigured {
                            service,
                            status: status.as_u16(),
                            message: redirect_message(response.url(), location),
                        });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status.is_server_error()
                    {
                        let retry_after = response
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|value| value.to_str().ok())
                            .and_then(parse_retry_after);
                        (format!("HTTP {}", status.as_u16()), retry_after)
                    } else {
                        let body = body_prefix(response, deadline).await;
                        let message = service_message(&body);
                        let status = status.as_u16();
                        if status == 401 || status == 403 {
                            return Err(HandlerError::Unauthorized {
                                service,
                                status,
                                message,
                            });
                        }
                        // The URL or the method is wrong, not the record: add-or-update
                        // calls and webhooks create what they address.
                        if matches!(status, 404 | 405 | 410) {
                            return Err(HandlerError::Misconfigured {
                                service,
                                status,
                                message,
                            });
                        }
                        return Err(HandlerError::Rejected {
                            service,
                            status,
                            message,
                        });
                    }
                }
            };
            if let Some(wait) = retry_after {
                asked_to_wait = retry_after;
                self.hold(service, wait, started.elapsed());
            }
            if n_attempts >= self.retry.max_attempts {
                return Err(HandlerError::Unavailable {
                    service,
                    n_attempts,
                    last,
                    retry_after: asked_to_wait,
                });
            }
            let wait = next_wait(retry_after, || self.retry.backoff(n_attempts));
            // The next attempt must have time to finish: one cut off by the deadline may
            // have reached the service, and its record's redelivery would repeat the side
            // effect. It is given as long as this one took, and at least a short request.
            last_attempt = started.elapsed();
            let attempt = last_attempt.max(MIN_ATTEMPT_TIME);
            if !deadline.allows(wait + attempt) {
                return Err(HandlerError::Unavailable {
                    service,
                    n_attempts,
                    last: format!("{last}; no time left to wait {wait:?} for a retry"),
                    retry_after: asked_to_wait,
                });
            }
            warn!(service, n_attempts, last = %last, wait_ms = wait.as_millis() as u64, "retrying");
            note_wait(wait);
            tokio::time::sleep(wait).await;
            previous = Some(last);
        }
    }
}

tokio::task_local! {
    /// The time a record's task spent waiting between attempts, on purpose: not what a
    /// request takes (see `BatchDriver::process`).
    pub(crate) static WAITED: Cell<Duration>;
}

/// Adds `wait` to the current record's [`WAITED`], when there is one.
fn note_wait(wait: Duration) {
    let _ = WAITED.try_with(|waited| waited.set(waited.get() + wait));
}

/// The rustls configuration of every HTTPS connection: aws-lc-rs, TLS 1.2 and 1.3, HTTP/2
/// or HTTP/1.1 by ALPN, and Mozilla's roots (see the module docs). It is built once per
/// process; each clone shares its root store and certificate verifier.
pub(crate) fn tls_config() -> rustls::ClientConfig {
    static CONFIG: LazyLock<rustls::ClientConfig> = LazyLock::new(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_root_certificates(root_store())
            .with_no_client_auth();
        // reqwest sets ALPN only on the configurations it builds itself.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    });
    CONFIG.clone()
}

/// The roots every server must chain to: Mozilla's, compiled in.
fn root_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The most of a failure's body that is read. The error keeps 500 characters of it, and a
/// service's JSON error fits in much less; the rest of a large body (an HTML error page, a
/// proxy's dump) is never downloaded.
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// The first [`MAX_ERROR_BODY_BYTES`] of `response`'s body as text (what arrived by the
/// deadline, if it comes first), with invalid UTF-8 replaced and a character cut at the end
/// dropped.
async fn body_prefix(mut response: reqwest::Response, deadline: Deadline) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY_BYTES {
        match tokio::time::timeout_at(deadline.instant(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let n_wanted = MAX_ERROR_BODY_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(n_wanted)]);
            }
            // The end of the body, a broken connection, or no time left: what came is
            // all the message gets.
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
        }
    }
    if let Err(error) = std::str::from_utf8(&bytes)
        && error.error_len().is_none()
    {
        bytes.truncate(error.valid_up_to());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What a redirect from `from` to `location` says in an error: where it points, as scheme,
/// host and port only. The path stays out, since it may be a secret: a Slack webhook
/// configured with `http://` is redirected to the same secret path over `https://`, and
/// errors are logged.
fn redirect_message(from: &reqwest::Url, location: Option<&str>) -> String {
    // A relative Location is resolved against the request's URL, whose origin is as safe
    // to show as the Location's own.
    match location.and_then(|location| from.join(location).ok()) {
        Some(to) if to.origin().is_tuple() => format!(
            "redirected to {}: configure the endpoint it points to (its path is not shown)",
            to.origin().ascii_serialization()
        ),
        Some(_) => {
            "redirected to a URL without a host: configure the endpoint it points to".to_owned()
        }
        None => {
            "redirected without a usable Location: configure the endpoint it points to".to_owned()
        }
    }
}

/// The longest `Retry-After` taken as given: past any invocation's deadline, and small
/// enough that adding it to an instant cannot overflow.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait before a retry: the service's `Retry-After`, or the backoff. A `Retry-After`
/// of no time (a date already past, a clock behind) is none: the backoff applies, rather
/// than a burst of attempts.
fn next_wait(retry_after: Option<Duration>, backoff: impl FnOnce() -> Duration) -> Duration {
    retry_after
        .filter(|wait| !wait.is_zero())
        .unwrap_or_else(backoff)
}

/// Parses a `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date (a date in the past
/// is no wait); at most [`MAX_RETRY_AFTER`].
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The service's error message from a response body: the usual JSON fields when present
/// (Mailchimp's `title` and `detail`, with the field and message of each entry of its
/// `errors`; Segment's `message`), else the text itself, shortened to 500 characters.
fn service_message(body: &str) -> String {
    const MAX_CHARS: usize = 500;
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => {
            let field = |name: &str| json.get(name).and_then(|v| v.as_str());
            let mut text = match (
                field("title"),
                field("detail"),
                field("message").or(field("error")),
            ) {
                (Some(title), Some(detail), _) => format!("{title}: {detail}"),
                (_, Some(detail), _) => detail.to_owned(),
                (_, _, Some(message)) => message.to_owned(),
                _ => body.trim().to_owned(),
            };
            // Mailchimp's detail for a 400 only points at `errors`, where the field is.
            let entries: Vec<String> = json
                .get("errors")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|error| {
                    let part = |name: &str| error.get(name).and_then(|v| v.as_str());
                    match (part("field"), part("message")) {
                        (Some(field), Some(message)) if !field.is_empty() => {
                            Some(format!("{field}: {message}"))
                        }
                        (_, Some(message)) => Some(message.to_owned()),
                        _ => None,
                    }
                })
                .collect();
            if !entries.is_empty() {
                text = format!("{text} [{}]", entries.join("; "));
            }
            text
        }
        Err(_) => body.trim().to_owned(),
    };
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut shortened: String = text.chars().take(MAX_CHARS).collect();
    if shortened.len() < text.len() {
        shortened.push('…');
    }
    shortened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_attempts: 10,
        };
        let check = |attempt, min_ms, max_ms| {
            let wait = policy.backoff(attempt);
            assert!(
                wait >= Duration::from_millis(min_ms) && wait <= Duration::from_millis(max_ms),
                "attempt {attempt}: {wait:?} not in [{min_ms}, {max_ms}] ms"
            );
        };
        check(1, 50, 100);
        check(2, 100, 200);
        check(3, 200, 400);
        check(8, 500, 1000);
        check(40, 500, 1000);
    }

    #[test]
    fn tls_config_trusts_the_aws_roots_and_offers_h2() {
        let config = tls_config();
        assert_eq!(config.alpn_protocols, [&b"h2"[..], b"http/1.1"]);
        // Every AWS endpoint chains to one of these (Amazon Trust Services).
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 3",
            "Starfield Services Root",
        ] {
            assert!(
                root_store().roots.iter().any(|anchor| anchor
                    .subject
                    .windows(name.len())
                    .any(|w| w == name.as_bytes())),
                "{name} is not among the compiled-in roots"
            );
        }
    }

    #[test]
    fn a_retry_after_of_no_time_keeps_the_backoff() {
        let backoff = || Duration::from_millis(200);
        assert_eq!(next_wait(None, backoff), Duration::from_millis(200));
        assert_eq!(
            next_wait(Some(Duration::ZERO), backoff),
            Duration::from_millis(200)
        );
        assert_eq!(
            next_wait(Some(Duration::from_secs(3)), backoff),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        // A date in the past: no wait; in the future: until then.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            (Duration::from_secs(118)..=Duration::from_secs(120)).contains(&wait),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn redirect_messages_show_the_origin_only() {
        let from = reqwest::Url::parse("http://hooks.example.com/services/T1/B2/secret").unwrap();
        let check = |location: Option<&str>, expected: &str| {
            assert_eq!(redirect_message(&from, location), expected);
        };
        check(
            Some("https://hooks.example.com/services/T1/B2/secret"),
            "redirected to https://hooks.example.com: configure the endpoint it points to \
             (its path is not shown)",
        );
        check(
            Some("https://user:secret@other.example.com:8443/secret?token=secret"),
            "redirected to https://other.example.com:8443: configure the endpoint it points \
             to (its path is not shown)",
        );
        check(
            Some("/moved/secret"),
            "redirected to http://hooks.example.com: configure the endpoint it points to \
             (its path is not shown)",
        );
        check(
            Some("data:text/plain,secret"),
            "redirected to a URL without a host: configure the endpoint it points to",
        );
        check(
            None,
            "redirected without a usable Location: configure the endpoint it points to",
        );
    }

    #[tokio::test]
    async fn body_prefix_stops_at_the_cap_between_characters() {
        let check = async |body: String, expected: &str| {
            let response = reqwest::Response::from(http::Response::new(body));
            let deadline = Deadline::after(Duration::from_secs(5));
            assert_eq!(body_prefix(response, deadline).await, expected);
        };
        let a = "a".repeat(MAX_ERROR_BODY_BYTES - 1);
        // "é" is two bytes: the cap falls inside it, and it is dropped whole.
        check(format!("{a}é and more"), &a).await;
        check(format!("{a}b and more"), &format!("{a}b")).await;
        check("short \u{fffd}".to_owned(), "short \u{fffd}").await;
    }

    #[test]
    fn service_messages() {
        let check = |body: &str, expected: &str| assert_eq!(service_message(body), expected);
        check(
            r#"{"type":"x","title":"Invalid Resource","status":400,"detail":"looks fake"}"#,
            "Invalid Resource: looks fake",
        );
        check(
            r#"{"title":"Invalid Resource","status":400,"detail":"The resource submitted could not be validated. For field-specific details, see the 'errors' array.","errors":[{"field":"merge_fields.LNAME","message":"This value is too long"},{"field":"","message":"Blank field"},{"code":7}]}"#,
            "Invalid Resource: The resource submitted could not be validated. For field-specific details, see the 'errors' array. [merge_fields.LNAME: This value is too long; Blank field]",
        );
        check(r#"{"success":false,"message":"bad key"}"#, "bad key");
        check("invalid_payload\n", "invalid_payload");
        check("", "(empty body)");
        assert_eq!(service_message(&"x".repeat(600)).chars().count(), 501);
    }
}
