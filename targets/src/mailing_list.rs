//! The mailing-list target: adds each new user who gave marketing consent to a Mailchimp
//! audience.
//!
//! One Mailchimp Marketing API "add or update list member" call per sign-up:
//! `PUT {MAILCHIMP_API_BASE}/lists/{MAILCHIMP_LIST_ID}/members/{subscriber hash}`, where
//! the subscriber hash is the MD5 of the lower-cased email address, with HTTP Basic auth
//! (any user name, the API key as password) and the body
//!
//! ```json
//! { "email_address": "ada@example.com", "status_if_new": "subscribed",
//!   "merge_fields": { "FNAME": "Ada", "LNAME": "Lovelace" } }
//! ```
//!
//! with `?skip_merge_validation=true`, so that a merge field the audience requires and the
//! user lacks does not refuse the member.
//!
//! Only `status_if_new` is sent, never `status`: a member who unsubscribed stays
//! unsubscribed. The one exception: an existing *transactional* contact, whom the answer
//! shows still off the marketing list, gets the configured status in a second call
//! (`PATCH`), since the user consented. A user without marketing consent is not sent at
//! all. A login event here was routed by a wrong rule and fails loudly.

use md5::{Digest, Md5};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::{
    Deadline, Env, HandlerError, HttpClient, Secret, UserEvent, batch::Handler, config::ConfigError,
};
use events_schema::{Email, UserSignedUp};

/// The status a new member gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewMemberStatus {
    /// Subscribed at once (the user consented at sign-up).
    Subscribed,
    /// Sent Mailchimp's confirmation email first (double opt-in).
    Pending,
}

impl NewMemberStatus {
    fn as_str(self) -> &'static str {
        match self {
            NewMemberStatus::Subscribed => "subscribed",
            NewMemberStatus::Pending => "pending",
        }
    }
}

/// Where and how to add members.
#[derive(Debug, Clone)]
pub struct MailingListConfig {
    api_base: Url,
    list_id: String,
    api_key: Secret,
    status_if_new: NewMemberStatus,
}

impl MailingListConfig {
    /// Members added to `list_id` with `api_key`, at the API base of the key's data
    /// centre: `https://<dc>.api.mailchimp.com/3.0` for a key ending in `-<dc>`.
    pub fn new(
        api_key: impl Into<Secret>,
        list_id: impl Into<String>,
    ) -> Result<MailingListConfig, ConfigError> {
        let api_key = api_key.into();
        let api_base = default_api_base(&api_key)?;
        MailingListConfig::with_api_base(api_base.as_str(), api_key, list_id)
    }

    /// Members added to `list_id` with `api_key`, at `api_base` (e.g. a test server).
    pub fn with_api_base(
        api_base: &str,
        api_key: impl Into<Secret>,
        list_id: impl Into<String>,
    ) -> Result<MailingListConfig, ConfigError> {
        let api_base = crate::config::endpoint_url("MAILCHIMP_API_BASE", api_base)?;
        if api_base.cannot_be_a_base() {
            return Err(ConfigError::malformed(
                "MAILCHIMP_API_BASE",
                "not a base URL",
            ));
        }
        let list_id = list_id.into();
        if list_id.trim().is_empty() {
            return Err(ConfigError::Missing {
                name: "MAILCHIMP_LIST_ID".into(),
            });
        }
        Ok(MailingListConfig {
            api_base,
            list_id,
            api_key: api_key.into(),
            status_if_new: NewMemberStatus::Subscribed,
        })
    }

    /// The same configuration with new members getting `status`.
    pub fn with_status_if_new(mut self, status: NewMemberStatus) -> MailingListConfig {
        self.status_if_new = status;
        self
    }

    /// Reads `MAILCHIMP_API_KEY` (or `MAILCHIMP_API_KEY_SECRET_ARN`), `MAILCHIMP_LIST_ID`,
    /// `MAILCHIMP_API_BASE` (optional, default from the key's data centre) and
    /// `MAILCHIMP_STATUS_IF_NEW` (optional, `subscribed` or `pending`, default
    /// `subscribed`).
    pub async fn from_env(env: &Env) -> Result<MailingListConfig, ConfigError> {
        let list_id = env.required("MAILCHIMP_LIST_ID")?.to_owned();
        let api_key = env.secret("MAILCHIMP_API_KEY").await?;
        let config = match env.optional("MAILCHIMP_API_BASE")? {
            Some(api_base) => MailingListConfig::with_api_base(api_base, api_key, list_id)?,
            None => MailingListConfig::new(api_key, list_id)?,
        };
        let status = match env.optional("MAILCHIMP_STATUS_IF_NEW")? {
            None | Some("subscribed") => NewMemberStatus::Subscribed,
            Some("pending") => NewMemberStatus::Pending,
            Some(_) => {
                return Err(ConfigError::malformed(
                    "MAILCHIMP_STATUS_IF_NEW",
                    "expected `subscribed` or `pending`",
                ));
            }
        };
        Ok(config.with_status_if_new(status))
    }

    /// The API base URL.
    pub fn api_base(&self) -> &str {
        self.api_base.as_str()
    }

    /// The audience (list) id.
    pub fn list_id(&self) -> &str {
        &self.list_id
    }

    /// The member's URL. Merge fields that the audience requires but the user lacks (a
    /// required last name, say) would get a 400 on every delivery; with
    /// `skip_merge_validation` Mailchimp adds the member without them.
    fn member_url(&self, email: &Email) -> Url {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .expect("checked at construction: the API base can be a base")
            .pop_if_empty()
            .extend(["lists", &self.list_id, "members", &subscriber_hash(email)]);
        url.query_pairs_mut()
            .append_pair("skip_merge_validation", "true");
        url
    }
}

/// `https://<dc>.api.mailchimp.com/3.0` for a key ending in `-<dc>`.
fn default_api_base(api_key: &Secret) -> Result<Url, ConfigError> {
    let malformed = || {
        ConfigError::malformed(
            "MAILCHIMP_API_KEY",
            "expected a key ending in -<dc> (e.g. -us21), or set MAILCHIMP_API_BASE",
        )
    };
    let (_, dc) = api_key.expose().rsplit_once('-').ok_or_else(malformed)?;
    if dc.is_empty() || !dc.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(malformed());
    }
    Url::parse(&format!("https://{dc}.api.mailchimp.com/3.0")).map_err(|_| malformed())
}

/// Mailchimp's subscriber hash: the MD5 of the lower-cased address, in lower-case hex.
pub fn subscriber_hash(email: &Email) -> String {
    let digest = Md5::digest(email.to_lowercase().as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The mailing-list handler.
#[derive(Debug, Clone)]
pub struct MailingList {
    config: MailingListConfig,
    http: HttpClient,
}

impl MailingList {
    /// The target's name, in idempotency keys.
    pub const TARGET: &'static str = "mailing-list";

    /// A handler adding members as `config` says, through `http`.
    pub fn new(config: MailingListConfig, http: HttpClient) -> MailingList {
        MailingList { config, http }
    }
}

impl Handler for MailingList {
    type Event = UserEvent;

    fn target(&self) -> &str {
        MailingList::TARGET
    }

    async fn handle(&self, event: &UserEvent, deadline: Deadline) -> Result<(), HandlerError> {
        let signed_up = match event {
            UserEvent::SignedUp(envelope) => &envelope.detail,
            UserEvent::LoggedIn(envelope) => {
                return Err(HandlerError::Misrouted {
                    target: MailingList::TARGET,
                    detail_type: envelope.detail_type.clone(),
                });
            }
        };
        if !signed_up.marketing_consent {
            info!("no marketing consent: not added");
            return Ok(());
        }
        // Mailchimp takes no letters beyond ASCII before the @ ("cannot process UTF-8
        // characters in email address prefixes"): its 400 would come back on every retry.
        let local_part = signed_up
            .email
            .as_str()
            .rsplit_once('@')
            .map_or("", |(l, _)| l);
        if !local_part.is_ascii() {
            warn!(
                "Mailchimp does not take addresses with letters beyond ASCII before the @: not added"
            );
            return Ok(());
        }
        let url = self.config.member_url(&signed_up.email);
        let body = member_body(signed_up, self.config.status_if_new);
        let email = signed_up.email.as_str();
        let sent = self
            .call(reqwest::Method::PUT, &url, &body, email, deadline)
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(HandlerError::Rejected {
                status: 400,
                message,
                ..
            }) if kept_off_the_list(&message) => {
                // No retry or redrive can add them: only the person can, through a
                // sign-up form. Dead-lettering it would page someone for nothing.
                warn!(reason = %message, "Mailchimp keeps this address off the list: not added");
                return Ok(());
            }
            Err(HandlerError::Rejected {
                status: 400,
                message,
                ..
            }) if message.contains(TOO_MANY_SIGNUPS) => {
                // Mailchimp's throttle on one address, sent as a 400: a later delivery
                // gets through.
                return Err(HandlerError::Unavailable {
                    service: "mailchimp",
                    n_attempts: 1,
                    last: format!("HTTP 400: {message}"),
                    retry_after: None,
                });
            }
            Err(error) => return Err(error),
        };
        self.confirm_status(response, &url, email, deadline).await
    }
}

/// What the handler reads of a member Mailchimp returns.
#[derive(Debug, Deserialize)]
struct Member {
    status: Option<String>,
}

impl MailingList {
    /// One call on the member at `url`, with `body`; the errors never show `email`
    /// (Mailchimp's details quote the address: "... looks fake or invalid").
    async fn call(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: &Value,
        email: &str,
        deadline: Deadline,
    ) -> Result<reqwest::Response, HandlerError> {
        self.http
            .send("mailchimp", deadline, |client| {
                client
                    .request(method.clone(), url.clone())
                    .basic_auth("eventfork", Some(self.config.api_key.expose()))
                    .json(body)
            })
            .await
            .map_err(|error| error.redact(email))
    }

    /// Reads the member's status from the add-or-update answer. `status_if_new` does not
    /// touch an existing member: a transactional contact (one an e-commerce integration
    /// added, say) who now signs up with consent would stay off the marketing list, so it
    /// gets the configured status. One who unsubscribed or bounced stays as it is.
    async fn confirm_status(
        &self,
        response: reqwest::Response,
        url: &Url,
        email: &str,
        deadline: Deadline,
    ) -> Result<(), HandlerError> {
        let member = tokio::time::timeout_at(deadline.instant(), response.json::<Member>()).await;
        let status = match member {
            Ok(Ok(member)) => member.status,
            Ok(Err(_)) | Err(_) => None,
        };
        match status.as_deref() {
            Some("transactional") => {
                let body = json!({ "status": self.config.status_if_new.as_str() });
                let patched = self
                    .call(reqwest::Method::PATCH, url, &body, email, deadline)
                    .await;
                match patched {
                    Ok(_) => {}
                    // Refused for good, as the add-or-update call's own refusals are.
                    Err(HandlerError::Rejected {
                        status: 400,
                        message,
                        ..
                    }) if kept_off_the_list(&message) => {
                        warn!(reason = %message, "Mailchimp keeps this address off the list: not subscribed");
                        return Ok(());
                    }
                    Err(error) => return Err(error),
                }
                info!(
                    status = self.config.status_if_new.as_str(),
                    "a transactional contact consented: status updated"
                );
            }
            Some(status @ ("unsubscribed" | "cleaned")) => {
                info!(
                    status,
                    "already a member who left or bounced: left as it is"
                );
            }
            Some(_) => {}
            None => warn!("Mailchimp's answer has no readable member status: taken as added"),
        }
        Ok(())
    }
}

/// Part of the detail of Mailchimp's 400 for an address that signed up to many lists in a
/// short time: a throttle, not a refusal.
const TOO_MANY_SIGNUPS: &str = "signed up to a lot of lists very recently";

/// Whether a 400's message (`title: detail`) is one of Mailchimp's refusals that hold for
/// good: the address was permanently deleted ("forgotten") from the audience, or it
/// unsubscribed, bounced or is under compliance review. An address Mailchimp takes for
/// fake is not one of them: Mailchimp's guess can be wrong, so it reaches the dead-letter
/// queue, for someone to look at and redrive.
fn kept_off_the_list(message: &str) -> bool {
    [
        "Forgotten Email Not Subscribed:",
        "Member In Compliance State:",
    ]
    .iter()
    .any(|title| message.starts_with(title))
}

/// Mailchimp's text merge fields hold at most 255 characters; a longer value is refused
/// with a 400, so it is cut.
const MAX_MERGE_FIELD_CHARS: usize = 255;

fn merge_field(text: &str) -> Value {
    Value::String(text.chars().take(MAX_MERGE_FIELD_CHARS).collect())
}

/// The add-or-update body for `user`.
pub(crate) fn member_body(user: &UserSignedUp, status_if_new: NewMemberStatus) -> Value {
    let mut merge_fields = Map::new();
    let mut names = user.display_name.split_whitespace();
    if let Some(first) = names.next() {
        merge_fields.insert("FNAME".into(), merge_field(first));
        let rest: Vec<&str> = names.collect();
        if !rest.is_empty() {
            merge_fields.insert("LNAME".into(), merge_field(&rest.join(" ")));
        }
    }
    json!({
        "email_address": user.email.as_str(),
        "status_if_new": status_if_new.as_str(),
        "merge_fields": merge_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_hash_lowercases() {
        // The hash of "urist.mcvankab@freddiesjokes.com", as in Mailchimp's docs.
        let email = Email::new("Urist.McVankab@FreddiesJokes.com").unwrap();
        assert_eq!(subscriber_hash(&email), "62eeb292278cc15f5817cb78f7790b08");
    }

    #[test]
    fn api_base_from_key() {
        let check = |key: &str, expected: Result<&str, &str>| {
            let actual = MailingListConfig::new(key, "list")
                .map(|c| c.api_base().to_owned())
                .map_err(|e| e.to_string());
            assert_eq!(
                actual.as_deref().map_err(String::as_str),
                expected,
                "key {key:?}"
            );
        };
        check("0123abcd-us21", Ok("https://us21.api.mailchimp.com/3.0"));
        check("a-b-us6", Ok("https://us6.api.mailchimp.com/3.0"));
        let malformed = "MAILCHIMP_API_KEY is malformed: expected a key ending in -<dc> (e.g. -us21), or set MAILCHIMP_API_BASE";
        check("0123abcd", Err(malformed));
        check("0123abcd-", Err(malformed));
        check("0123-us21.evil.com/x", Err(malformed));
    }

    #[test]
    fn member_url_appends_to_the_base() {
        let email = Email::new("ada@example.com").unwrap();
        for base in ["http://127.0.0.1:9/3.0", "http://127.0.0.1:9/3.0/"] {
            let config = MailingListConfig::with_api_base(base, "k", "abc123").unwrap();
            assert_eq!(
                config.member_url(&email).as_str(),
                format!(
                    "http://127.0.0.1:9/3.0/lists/abc123/members/{}?skip_merge_validation=true",
                    subscriber_hash(&email)
                )
            );
        }
    }

    #[test]
    fn member_body_splits_the_display_name() {
        let user = UserSignedUp::builder("u1", "ada@example.com")
            .unwrap()
            .display_name("Ada King Lovelace")
            .build();
        let body = member_body(&user, NewMemberStatus::Pending);
        assert_eq!(
            body,
            json!({"email_address": "ada@example.com", "status_if_new": "pending",
                   "merge_fields": {"FNAME": "Ada", "LNAME": "King Lovelace"}})
        );
        let anonymous = UserSignedUp::builder("u1", "ada@example.com")
            .unwrap()
            .build();
        assert_eq!(
            member_body(&anonymous, NewMemberStatus::Subscribed)["merge_fields"],
            json!({})
        );
    }

    #[test]
    fn member_body_cuts_names_to_what_mailchimp_takes() {
        let long = "é".repeat(300);
        let user = UserSignedUp::builder("u1", "ada@example.com")
            .unwrap()
            .display_name(format!("{long} {long}"))
            .build();
        let body = member_body(&user, NewMemberStatus::Pending);
        for name in ["FNAME", "LNAME"] {
            assert_eq!(body["merge_fields"][name], "é".repeat(255), "{name}");
        }
    }
}
