//! The user events: [`UserSignedUp`] and [`UserLoggedIn`].

use std::{borrow::Cow, net::IpAddr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::{Email, Event, FieldError, LoginId, Timestamp, UserId};

/// The subscription plan a user signed up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// The free tier.
    Free,
    /// The paid plan for individuals.
    Pro,
    /// The paid plan for teams, billed per seat.
    Team,
    /// A negotiated enterprise contract.
    Enterprise,
}

/// How a user created their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupMethod {
    /// Email address and password.
    EmailPassword,
    /// Google account (OpenID Connect).
    Google,
    /// GitHub account (OAuth).
    Github,
    /// Enterprise single sign-on (SAML or OIDC).
    Sso,
    /// A link sent by email, no password.
    MagicLink,
    /// Created by an administrator's invitation.
    Invitation,
}

/// How a user proved who they are at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Email address and password.
    Password,
    /// Google account (OpenID Connect).
    Google,
    /// GitHub account (OAuth).
    Github,
    /// Enterprise single sign-on (SAML or OIDC).
    Sso,
    /// A link sent by email.
    MagicLink,
    /// A WebAuthn passkey.
    Passkey,
}

/// A user created an account. Published once per account, after the account is committed:
/// consumers handle one sign-up per user id ([`Event::idempotency_key`]).
///
/// Reactions: counted in analytics, added to the mailing list when `marketing_consent` is
/// true, announced on Slack.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UserSignedUp {
    /// The new user's id in the product; stable for the account's lifetime.
    pub user_id: UserId,
    /// The sign-up address, as [`Email`] checks it. Personal data: never logged.
    // The schema's `format: email` and `maxLength` (in characters) say less than the check:
    // the description says the rest, for producers written in other languages.
    #[schemars(
        description = "The sign-up address: a dot-atom local part (no quoted string) and a domain of two or more labels (no IP literal, no final dot, a last label not all digits); letters beyond ASCII are allowed (RFC 6531), except spaces, controls, invisible characters and noncharacters; at most 254 bytes of UTF-8, 64 before the @ (RFC 5321 counts bytes, maxLength counts characters); a domain label of at most 63 octets, for a label beyond ASCII those of its A-label (xn--...). Personal data: never logged."
    )]
    pub email: Email,
    /// The name the user chose to be shown as; may be empty.
    #[serde(default)]
    pub display_name: String,
    /// The plan chosen at sign-up.
    pub plan: Plan,
    /// How the account was created.
    pub signup_method: SignupMethod,
    /// Whether the user agreed to receive marketing email. Only then may the mailing list
    /// subscribe them.
    pub marketing_consent: bool,
    /// When the account was created (RFC 3339).
    pub signed_up_at: Timestamp,
}

impl Event for UserSignedUp {
    const SOURCE: &'static str = crate::SOURCE;
    const DETAIL_TYPE: &'static str = "UserSignedUp";
    const SCHEMA_VERSION: u32 = 1;

    /// The user id: an account signs up once.
    fn idempotency_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.user_id.as_str())
    }
}

impl UserSignedUp {
    /// Starts a sign-up event; fails on an empty user id or an invalid email.
    ///
    /// The defaults are the free plan, email-and-password sign-up, no marketing consent,
    /// no display name, and the current time.
    pub fn builder(
        user_id: impl Into<String>,
        email: impl Into<String>,
    ) -> Result<UserSignedUpBuilder, FieldError> {
        Ok(UserSignedUpBuilder(UserSignedUp {
            user_id: UserId::new(user_id)?,
            email: Email::new(email)?,
            display_name: String::new(),
            plan: Plan::Free,
            signup_method: SignupMethod::EmailPassword,
            marketing_consent: false,
            signed_up_at: Timestamp::now(),
        }))
    }
}

/// Builds a [`UserSignedUp`]; made by [`UserSignedUp::builder`].
#[derive(Debug, Clone)]
pub struct UserSignedUpBuilder(UserSignedUp);

impl UserSignedUpBuilder {
    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.0.display_name = name.into();
        self
    }
    /// Sets the plan.
    pub fn plan(mut self, plan: Plan) -> Self {
        self.0.plan = plan;
        self
    }
    /// Sets the sign-up method.
    pub fn signup_method(mut self, method: SignupMethod) -> Self {
        self.0.signup_method = method;
        self
    }
    /// Sets the marketing consent.
    pub fn marketing_consent(mut self, consent: bool) -> Self {
        self.0.marketing_consent = consent;
        self
    }
    /// Sets when the account was created.
    pub fn signed_up_at(mut self, at: Timestamp) -> Self {
        self.0.signed_up_at = at;
        self
    }
    /// Finishes the event.
    pub fn build(self) -> UserSignedUp {
        self.0
    }
}

/// A user logged in successfully. Counted in analytics only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UserLoggedIn {
    /// The user's id in the product.
    pub user_id: UserId,
    /// This login's id, unique across every producer of logins (a random UUID by default,
    /// or an id the producer's records already make unique, such as a UUID it stored): the
    /// same login published twice keeps it, and is counted once.
    pub login_id: LoginId,
    /// How the user authenticated.
    pub login_method: LoginMethod,
    /// Whether a second factor was checked during this login.
    pub mfa_used: bool,
    /// The client's IP address (IPv4 or IPv6) as the edge saw it.
    #[schemars(schema_with = "ip_address_schema")]
    pub ip_address: IpAddr,
    /// The client's `User-Agent` header, possibly empty.
    #[serde(default)]
    pub user_agent: String,
    /// When the login happened (RFC 3339).
    pub logged_in_at: Timestamp,
}

impl Event for UserLoggedIn {
    const SOURCE: &'static str = crate::SOURCE;
    const DETAIL_TYPE: &'static str = "UserLoggedIn";
    const SCHEMA_VERSION: u32 = 1;

    /// The login id.
    fn idempotency_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.login_id.as_str())
    }
}

impl UserLoggedIn {
    /// Starts a login event; fails on an empty user id.
    ///
    /// The defaults are a random login id ([`LoginId::random`]), a password login without
    /// MFA, an empty user agent and the current time. Build the event once per login and
    /// publish that value: building it again makes another login id.
    pub fn builder(
        user_id: impl Into<String>,
        ip_address: IpAddr,
    ) -> Result<UserLoggedInBuilder, FieldError> {
        Ok(UserLoggedInBuilder(UserLoggedIn {
            user_id: UserId::new(user_id)?,
            login_id: LoginId::random(),
            login_method: LoginMethod::Password,
            mfa_used: false,
            ip_address,
            user_agent: String::new(),
            logged_in_at: Timestamp::now(),
        }))
    }
}

/// Builds a [`UserLoggedIn`]; made by [`UserLoggedIn::builder`].
#[derive(Debug, Clone)]
pub struct UserLoggedInBuilder(UserLoggedIn);

impl UserLoggedInBuilder {
    /// Sets the login id, e.g. to the id of the producer's own login record.
    pub fn login_id(mut self, id: LoginId) -> Self {
        self.0.login_id = id;
        self
    }
    /// Sets the login method.
    pub fn login_method(mut self, method: LoginMethod) -> Self {
        self.0.login_method = method;
        self
    }
    /// Sets whether MFA was used.
    pub fn mfa_used(mut self, mfa_used: bool) -> Self {
        self.0.mfa_used = mfa_used;
        self
    }
    /// Sets the user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.0.user_agent = user_agent.into();
        self
    }
    /// Sets when the login happened.
    pub fn logged_in_at(mut self, at: Timestamp) -> Self {
        self.0.logged_in_at = at;
        self
    }
    /// Finishes the event.
    pub fn build(self) -> UserLoggedIn {
        self.0
    }
}

/// Without the personal data (the name; the email is redacted by its own type), so that
/// an event in a log line names the user by id only.
impl std::fmt::Debug for UserSignedUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSignedUp")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("display_name", &format_args!("<redacted>"))
            .field("plan", &self.plan)
            .field("signup_method", &self.signup_method)
            .field("marketing_consent", &self.marketing_consent)
            .field("signed_up_at", &self.signed_up_at)
            .finish()
    }
}

/// Without the personal data (the IP address and the user agent), so that an event in a
/// log line names the user by id only.
impl std::fmt::Debug for UserLoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLoggedIn")
            .field("user_id", &self.user_id)
            .field("login_id", &self.login_id)
            .field("login_method", &self.login_method)
            .field("mfa_used", &self.mfa_used)
            .field("ip_address", &format_args!("<redacted>"))
            .field("user_agent", &format_args!("<redacted>"))
            .field("logged_in_at", &self.logged_in_at)
            .finish()
    }
}

fn ip_address_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }],
    })
}
