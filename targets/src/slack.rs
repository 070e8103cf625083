//! The Slack target: announces each sign-up in a channel through an incoming webhook.
//!
//! `POST {SLACK_WEBHOOK_URL}` with a `text` (the notification and fallback) and `blocks`
//! (the formatted message). The email address is not posted: the channel learns who
//! signed up by display name and user id. Text from the event is escaped, so that a
//! display name cannot mention `@channel` or forge a link, and a long display name is cut
//! (marked `…`) so that the section stays within Slack's 3,000 characters. A login event
//! here was routed by a wrong rule and fails loudly.

use events_schema::{Envelope, Plan, SignupMethod, UserSignedUp};
use reqwest::Url;
use serde_json::{Value, json};
use tracing::warn;

use crate::{
    Deadline, Env, HandlerError, HttpClient, Secret, UserEvent, batch::Handler, config::ConfigError,
};

/// Where to post.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    // The webhook URL is a credential: anyone holding it can post to the channel.
    webhook_url: Secret,
}

impl SlackConfig {
    /// Posts to `webhook_url`. An `http://` URL to another machine is accepted, with a
    /// warning in the logs: the secret would cross the network unencrypted.
    pub fn new(webhook_url: impl Into<Secret>) -> Result<SlackConfig, ConfigError> {
        let webhook_url = webhook_url.into();
        // The parse error says what is wrong without repeating the URL.
        let url = crate::config::endpoint_url("SLACK_WEBHOOK_URL", webhook_url.expose())?;
        // Not refused: the tests and local mode point the handler at plain-HTTP servers,
        // and not only on this machine (a mock in another container).
        if is_cleartext_off_machine(&url) {
            warn!(
                "SLACK_WEBHOOK_URL uses http:// to another machine: the webhook URL, a secret, \
                 crosses the network unencrypted; Slack's webhooks are https://"
            );
        }
        Ok(SlackConfig { webhook_url })
    }

    /// Reads `SLACK_WEBHOOK_URL` (or `SLACK_WEBHOOK_URL_SECRET_ARN`).
    pub async fn from_env(env: &Env) -> Result<SlackConfig, ConfigError> {
        SlackConfig::new(env.secret("SLACK_WEBHOOK_URL").await?)
    }
}

/// Whether requests to `url` leave this machine unencrypted.
fn is_cleartext_off_machine(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// The Slack handler.
#[derive(Debug, Clone)]
pub struct Slack {
    config: SlackConfig,
    http: HttpClient,
}

impl Slack {
    /// The target's name, in idempotency keys.
    pub const TARGET: &'static str = "slack";

    /// A handler posting to `config`'s webhook through `http`.
    pub fn new(config: SlackConfig, http: HttpClient) -> Slack {
        Slack { config, http }
    }
}

impl Handler for Slack {
    type Event = UserEvent;

    fn target(&self) -> &str {
        Slack::TARGET
    }

    async fn handle(&self, event: &UserEvent, deadline: Deadline) -> Result<(), HandlerError> {
        let envelope = match event {
            UserEvent::SignedUp(envelope) => envelope,
            UserEvent::LoggedIn(envelope) => {
                return Err(HandlerError::Misrouted {
                    target: Slack::TARGET,
                    detail_type: envelope.detail_type.clone(),
                });
            }
        };
        let body = message(envelope);
        self.http
            .send("slack", deadline, |client| {
                client.post(self.config.webhook_url.expose()).json(&body)
            })
            .await
            .map_err(webhook_error)?;
        Ok(())
    }
}

/// Slack's webhook errors by what they mean, not their status: a webhook that was removed
/// (`no_service`, 404) or whose workspace is gone is a credential to replace, like
/// `invalid_token` (403); a workspace's restriction (`action_prohibited`, 403), a lost or
/// archived channel (404, 410) or a message Slack cannot take from this code
/// (`invalid_payload`, 400) is the deployment's fault, not the record's: every record fails
/// alike until it is fixed. (Slack API docs, "Handling errors" for incoming webhooks.)
fn webhook_error(error: HandlerError) -> HandlerError {
    const CREDENTIAL: [&str; 5] = [
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
    ];
    const CONFIGURATION: [&str; 7] = [
        "action_prohibited",
        "channel_not_found",
        "channel_is_archived",
        "posting_to_general_channel_denied",
        "user_not_found",
        "invalid_payload",
        "too_many_attachments",
    ];
    let code = match &error {
        HandlerError::Rejected { message, .. }
        | HandlerError::Unauthorized { message, .. }
        | HandlerError::Misconfigured { message, .. } => message.trim(),
        _ => return error,
    };
    let credential = CREDENTIAL.contains(&code);
    let configuration = CONFIGURATION.contains(&code);
    match error {
        HandlerError::Rejected {
            service,
            status,
            message,
        }
        | HandlerError::Unauthorized {
            service,
            status,
            message,
        }
        | HandlerError::Misconfigured {
            service,
            status,
            message,
        } if credential => HandlerError::Unauthorized {
            service,
            status,
            message,
        },
        HandlerError::Rejected {
            service,
            status,
            message,
        }
        | HandlerError::Unauthorized {
            service,
            status,
            message,
        } if configuration => HandlerError::Misconfigured {
            service,
            status,
            message,
        },
        other => other,
    }
}

/// Escapes the three characters Slack's mrkdwn gives a meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The longest text of a section block; Slack answers a longer one with HTTP 400
/// (`invalid_blocks`), which would send the record to the dead-letter queue. Block Kit
/// reference, "Section block".
const SECTION_TEXT_MAX: usize = 3000;

/// The length of `text` as Slack may count it. Slack does not say whether it counts
/// characters or UTF-16 code units (JavaScript's `length`); the latter are never fewer,
/// so a text within the limit by this count is within it either way.
fn slack_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// [`escape`]d `text`, cut to at most `max` long ([`slack_len`]) with `…` marking the
/// cut. The cut falls between characters of `text`, never inside an escape sequence.
fn escape_within(text: &str, max: usize) -> String {
    let escaped = escape(text);
    if slack_len(&escaped) <= max {
        return escaped;
    }
    let budget = max.saturating_sub(slack_len("…"));
    let mut cut = String::new();
    let mut len = 0;
    for ch in text.chars() {
        let mut buffer = [0; 4];
        let piece = match ch {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => ch.encode_utf8(&mut buffer),
        };
        len += slack_len(piece);
        if len > budget {
            break;
        }
        cut.push_str(piece);
    }
    cut.push('…');
    cut
}

fn plan_name(plan: Plan) -> &'static str {
    match plan {
        Plan::Free => "Free",
        Plan::Pro => "Pro",
        Plan::Team => "Team",
        Plan::Enterprise => "Enterprise",
    }
}

fn method_name(method: SignupMethod) -> &'static str {
    match method {
        SignupMethod::EmailPassword => "email and password",
        SignupMethod::Google => "Google",
        SignupMethod::Github => "GitHub",
        SignupMethod::Sso => "single sign-on",
        SignupMethod::MagicLink => "magic link",
        SignupMethod::Invitation => "invitation",
    }
}

/// The webhook message for a sign-up.
pub(crate) fn message(envelope: &Envelope<UserSignedUp>) -> Value {
    const SECTION_PREFIX: &str = ":tada: *New sign-up*: ";
    let user = &envelope.detail;
    // At most 5 × 128 characters: a user id is short (`UserId::MAX_LEN`), a display name
    // has no limit and is cut to fit the section.
    let user_id = escape(user.user_id.as_str());
    let who = if user.display_name.trim().is_empty() {
        format!("`{user_id}`")
    } else {
        let suffix = format!(" (`{user_id}`)");
        let room = SECTION_TEXT_MAX - slack_len(SECTION_PREFIX) - slack_len(&suffix);
        format!("{}{suffix}", escape_within(user.display_name.trim(), room))
    };
    let plan = plan_name(user.plan);
    let method = method_name(user.signup_method);
    let text = format!("New sign-up: {who}, {plan} plan, via {method}");
    let mut context = format!("event `{}`", escape(&envelope.id));
    if let Some(replay_name) = &envelope.replay_name {
        context.push_str(&format!(" · replayed by `{}`", escape(replay_name)));
    }
    json!({
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": format!("{SECTION_PREFIX}{who}") },
                "fields": [
                    { "type": "mrkdwn", "text": format!("*Plan*\n{plan}") },
                    { "type": "mrkdwn", "text": format!("*Signed up with*\n{method}") },
                    { "type": "mrkdwn", "text": format!("*Marketing consent*\n{}",
                        if user.marketing_consent { "yes" } else { "no" }) },
                    { "type": "mrkdwn", "text": format!("*Signed up at*\n{}", user.signed_up_at) },
                ],
            },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": context } ] },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_mrkdwn() {
        assert_eq!(escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }

    #[test]
    fn escaped_text_is_cut_between_characters() {
        let check = |text: &str, max: usize, expected: &str| {
            assert_eq!(escape_within(text, max), expected, "{text:?} within {max}");
        };
        check("a&b", 7, "a&amp;b");
        check("a&b", 6, "a…");
        check("ab&", 6, "ab…");
        check("a<b>c", 10, "a&lt;b…");
        check("éèêë", 3, "éè…");
        // A character outside the BMP is two UTF-16 code units.
        check("🎉🎉🎉", 5, "🎉🎉…");
        check("🎉🎉🎉", 4, "🎉…");
        check("&", 0, "…");
    }

    #[test]
    fn a_long_display_name_fits_the_section() {
        let mut envelope: Envelope<UserSignedUp> = serde_json::from_value(json!({
            "version": "0", "id": "e-1", "detail-type": "UserSignedUp",
            "source": "com.eventfork.users", "account": "111122223333",
            "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "user_id": "<".repeat(128), "email": "ada@example.com",
                "display_name": "", "plan": "team", "signup_method": "github",
                "marketing_consent": false, "signed_up_at": "2026-11-27T09:00:00Z",
            },
        }))
        .unwrap();
        for name in ["&".repeat(5000), "🎉".repeat(2000), "é".repeat(3000)] {
            envelope.detail.display_name = name;
            let body = message(&envelope);
            let section = body["blocks"][0]["text"]["text"].as_str().unwrap();
            assert!(
                slack_len(section) <= SECTION_TEXT_MAX,
                "{}",
                slack_len(section)
            );
            assert!(
                slack_len(section) >= SECTION_TEXT_MAX - 5,
                "{}",
                slack_len(section)
            );
            assert!(section.ends_with(&format!("… (`{}`)", "&lt;".repeat(128))));
        }
    }

    #[test]
    fn plain_http_to_another_machine_is_noticed() {
        let check = |url: &str, expected: bool| {
            assert_eq!(
                is_cleartext_off_machine(&Url::parse(url).unwrap()),
                expected,
                "{url}"
            );
        };
        check("http://hooks.slack.com/services/T/B/x", true);
        check("http://10.0.0.7:8080/services/T/B/x", true);
        check("http://slack-mock:8080/services/T/B/x", true);
        check("https://hooks.slack.com/services/T/B/x", false);
        check("http://127.0.0.1:4010/slack/services/T/B/x", false);
        check("http://localhost:4010/x", false);
        check("http://[::1]:4010/x", false);
    }

    #[test]
    fn invalid_webhook_url_names_the_variable() {
        let error = SlackConfig::new("not a url").unwrap_err();
        assert_eq!(
            error.to_string(),
            "SLACK_WEBHOOK_URL is malformed: relative URL without a base"
        );
    }
}
