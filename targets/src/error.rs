//! The errors of a handler, and the chain formatter used in logs.

use std::{error::Error, fmt::Write as _, time::Duration};

/// Why a handler failed to perform its side effect.
///
/// Messages never hold a secret, an email address or a webhook URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The service refused the request with a 4xx status that blames neither the
    /// credentials (401, 403), the target's configuration (404, 405, 410) nor the load
    /// (408, 429): retrying the same request cannot succeed.
    #[error("{service} rejected the request with HTTP {status}: {message}")]
    Rejected {
        /// The service, e.g. `mailchimp`.
        service: &'static str,
        /// The HTTP status.
        status: u16,
        /// The service's own error message, shortened.
        message: String,
    },
    /// The service refused the target's credentials (HTTP 401 or 403): a key or webhook
    /// that was rotated, revoked or mistyped. The same request cannot succeed, but the
    /// record may once the secret is fixed: it is retried with backoff, and a Lambda reads
    /// its secrets again before its next batch ([`crate::lambda::serve`]).
    #[error(
        "{service} refused the credentials with HTTP {status}: {message} (check the secret; the record is retried)"
    )]
    Unauthorized {
        /// The service, e.g. `mailchimp`.
        service: &'static str,
        /// The HTTP status, 401 or 403.
        status: u16,
        /// The service's own error message, shortened.
        message: String,
    },
    /// The service's answer points at the target's configuration or code, not at the
    /// record: a redirect (a wrong endpoint), a URL, list or channel that does not exist or
    /// is gone (404, 410), a method it does not take (405), or a service's own code for
    /// such a fault (Slack's `channel_is_archived`, say). Every record would fail the same
    /// way until the deployment is fixed, and then succeed: it is retried with backoff, as
    /// [`HandlerError::Unauthorized`] is, so that a fix comes before its events are dead
    /// letters. When the fix is likely a new secret (a Slack channel's new webhook), the
    /// Lambda reads its secrets again before its next batch
    /// ([`HandlerError::wants_fresh_config`]).
    #[error(
        "{service} refused the request with HTTP {status}: {message} (check the target's configuration; the record is retried)"
    )]
    Misconfigured {
        /// The service, e.g. `slack`.
        service: &'static str,
        /// The HTTP status.
        status: u16,
        /// The service's own error message, shortened.
        message: String,
    },
    /// The service kept failing (429, 5xx, timeouts, connection errors) until the retries
    /// were exhausted or the invocation ran out of time.
    #[error("{service} still failing after {n_attempts} attempt(s): {last}")]
    Unavailable {
        /// The service, e.g. `slack`.
        service: &'static str,
        /// How many requests were sent.
        n_attempts: u32,
        /// The last failure, e.g. `HTTP 503` or `timed out`.
        last: String,
        /// How long the service asked to be left alone (its last `Retry-After`), when it
        /// did: the record's next delivery waits at least that long.
        retry_after: Option<Duration>,
    },
    /// The event reached a target that does not handle its type: the rule that routed it
    /// here is wrong.
    #[error(
        "the {target} target does not handle {detail_type} events; check the rule that routes them to its queue"
    )]
    Misrouted {
        /// The target's name.
        target: &'static str,
        /// The event's detail type.
        detail_type: String,
    },
    /// The request could not be built, e.g. from a malformed endpoint URL.
    #[error("could not build the request to {service}")]
    Request {
        /// The service.
        service: &'static str,
        /// The cause, with any URL removed.
        #[source]
        source: reqwest::Error,
    },
}

impl HandlerError {
    /// Whether a later attempt may succeed. SQS retries every failed record; a
    /// [`HandlerError::Rejected`] one is moved to the dead-letter queue at once (see
    /// [`crate::RecordError::is_permanent`]), the other non-retryable ones come back at the
    /// queue's pace until its `maxReceiveCount`.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HandlerError::Unavailable { .. }
                | HandlerError::Unauthorized { .. }
                | HandlerError::Misconfigured { .. }
        )
    }

    /// Whether the service refused the credentials: the secret should be read again.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, HandlerError::Unauthorized { .. })
    }

    /// Whether the fix is likely a new secret, so that a process should read its
    /// configuration and secrets again before its next batch: refused credentials, or a
    /// Slack channel that is lost, archived or closed to the webhook (403, 404, 410),
    /// whose fix is a new webhook URL, which is a secret. Other misconfigurations (a
    /// Mailchimp list id, an endpoint, a redirect, a payload Slack cannot take) are fixed
    /// in the function's environment or code, which a new instance reads anyway.
    pub fn wants_fresh_config(&self) -> bool {
        matches!(
            self,
            HandlerError::Unauthorized { .. }
                | HandlerError::Misconfigured {
                    service: "slack",
                    status: 403 | 404 | 410,
                    ..
                }
        )
    }

    /// The least delay before the next attempt that the service asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HandlerError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error's kind, for the Lambda `errorType` field and for log queries.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Rejected { .. } => "Rejected",
            HandlerError::Unauthorized { .. } => "Unauthorized",
            HandlerError::Misconfigured { .. } => "Misconfigured",
            HandlerError::Unavailable { .. } => "Unavailable",
            HandlerError::Misrouted { .. } => "Misrouted",
            HandlerError::Request { .. } => "Request",
        }
    }

    /// Replaces every occurrence of `text` (e.g. an email address echoed by the service)
    /// in the messages.
    pub(crate) fn redact(mut self, text: &str) -> HandlerError {
        if text.is_empty() {
            return self;
        }
        if let HandlerError::Rejected { message, .. }
        | HandlerError::Unauthorized { message, .. }
        | HandlerError::Misconfigured { message, .. }
        | HandlerError::Unavailable { last: message, .. } = &mut self
        {
            *message = message.replace(text, "<redacted>");
            let lower = text.to_lowercase();
            *message = message.replace(&lower, "<redacted>");
        }
        self
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error_chain(&error),
        }
    }
}

/// Formats `error` and its sources as `outer: inner: innermost`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
