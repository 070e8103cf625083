//! The analytics target: every user event becomes a Segment-compatible `track` call.
//!
//! `POST {ANALYTICS_ENDPOINT}` (default Segment's `https://api.segment.io/v1/track`) with
//! HTTP Basic auth, the write key as user name and an empty password, and the body
//!
//! ```json
//! { "userId": "user-42", "event": "User Signed Up",
//!   "messageId": "UserSignedUp-70e80c8f0995fbdf41feb7f5b5a061ea",
//!   "timestamp": "2026-11-27T09:00:00Z",
//!   "properties": { "plan": "pro", "signup_method": "google", "marketing_consent": true },
//!   "context": { "library": { "name": "eventfork-targets", "version": "0.1.0" } } }
//! ```
//!
//! The `messageId` is the detail type and the MD5 (hex) of the occurrence our idempotency
//! store keys on (`detail-type#key`: a sign-up's user id, a login's id), so that Segment's
//! own deduplication agrees with ours, also for an event that was published twice, while the
//! id stays within Segment's 100 characters whatever the length of the key. The email address, the IP address and the user agent are never sent.

use md5::{Digest, Md5};
use reqwest::Url;
use serde_json::{Value, json};

use crate::{
    Deadline, Env, HandlerError, HttpClient, Secret, UserEvent,
    batch::{Decode, Handler},
    config::ConfigError,
};

/// Segment's HTTP tracking API endpoint for `track` calls.
pub const SEGMENT_TRACK_URL: &str = "https://api.segment.io/v1/track";

/// Where and how to send tracking calls.
#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    endpoint: Url,
    write_key: Secret,
}

impl AnalyticsConfig {
    /// Tracking calls to `endpoint`, authenticated with `write_key`.
    pub fn new(
        endpoint: &str,
        write_key: impl Into<Secret>,
    ) -> Result<AnalyticsConfig, ConfigError> {
        let endpoint = crate::config::endpoint_url("ANALYTICS_ENDPOINT", endpoint)?;
        Ok(AnalyticsConfig {
            endpoint,
            write_key: write_key.into(),
        })
    }

    /// Reads `ANALYTICS_ENDPOINT` (optional, default [`SEGMENT_TRACK_URL`]) and
    /// `ANALYTICS_WRITE_KEY` (or `ANALYTICS_WRITE_KEY_SECRET_ARN`).
    pub async fn from_env(env: &Env) -> Result<AnalyticsConfig, ConfigError> {
        let endpoint = env
            .optional("ANALYTICS_ENDPOINT")?
            .unwrap_or(SEGMENT_TRACK_URL);
        let write_key = env.secret("ANALYTICS_WRITE_KEY").await?;
        AnalyticsConfig::new(endpoint, write_key)
    }

    /// The tracking endpoint.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }
}

/// The analytics handler: counts sign-ups and logins.
#[derive(Debug, Clone)]
pub struct Analytics {
    config: AnalyticsConfig,
    http: HttpClient,
}

impl Analytics {
    /// The target's name, in idempotency keys.
    pub const TARGET: &'static str = "analytics";

    /// A handler sending to `config`'s endpoint through `http`.
    pub fn new(config: AnalyticsConfig, http: HttpClient) -> Analytics {
        Analytics { config, http }
    }
}

impl Handler for Analytics {
    type Event = UserEvent;

    fn target(&self) -> &str {
        Analytics::TARGET
    }

    async fn handle(&self, event: &UserEvent, deadline: Deadline) -> Result<(), HandlerError> {
        let body = track_call(event);
        self.http
            .send("analytics", deadline, |client| {
                client
                    .post(self.config.endpoint.clone())
                    .basic_auth(self.config.write_key.expose(), Some(""))
                    .json(&body)
            })
            .await?;
        Ok(())
    }
}

/// The `messageId` of an occurrence: `<detail type>-<MD5 of "detail-type#key", hex>`.
pub(crate) fn message_id(detail_type: &str, key: &str) -> String {
    let digest = Md5::digest(format!("{detail_type}#{key}").as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{detail_type}-{hex}")
}

/// The `track` call body for `event`.
pub(crate) fn track_call(event: &UserEvent) -> Value {
    let message_id = message_id(event.detail_type(), &event.idempotency_key());
    let (user_id, name, timestamp, properties) = match event {
        UserEvent::SignedUp(envelope) => {
            let detail = &envelope.detail;
            (
                detail.user_id.as_str(),
                "User Signed Up",
                detail.signed_up_at.as_str(),
                json!({
                    "plan": detail.plan,
                    "signup_method": detail.signup_method,
                    "marketing_consent": detail.marketing_consent,
                }),
            )
        }
        UserEvent::LoggedIn(envelope) => {
            let detail = &envelope.detail;
            (
                detail.user_id.as_str(),
                "User Logged In",
                detail.logged_in_at.as_str(),
                json!({
                    "login_method": detail.login_method,
                    "mfa_used": detail.mfa_used,
                }),
            )
        }
    };
    json!({
        "userId": user_id,
        "event": name,
        "messageId": message_id,
        "timestamp": timestamp,
        "properties": properties,
        "context": {
            "library": { "name": "eventfork-targets", "version": env!("CARGO_PKG_VERSION") },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_short_and_distinct() {
        assert_eq!(
            message_id("UserSignedUp", "user-42"),
            "UserSignedUp-70e80c8f0995fbdf41feb7f5b5a061ea"
        );
        // The longest keys stay within Segment's 100 characters.
        let longest = "u".repeat(events_schema::UserId::MAX_LEN);
        assert_eq!(message_id("UserSignedUp", &longest).len(), 45);
        assert_ne!(
            message_id("UserSignedUp", "user-42"),
            message_id("UserLoggedIn", "user-42")
        );
    }
}
