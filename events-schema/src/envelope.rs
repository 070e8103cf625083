//! The [`Event`] trait and the EventBridge [`Envelope`].

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A typed event: a Rust type bound to one EventBridge `source` and `detail-type`.
///
/// The value of the type is the event's `detail`. The envelope around it is [`Envelope`].
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The EventBridge `source` field, e.g. `com.eventfork.users`.
    const SOURCE: &'static str;
    /// The EventBridge `detail-type` field, e.g. `UserSignedUp`.
    const DETAIL_TYPE: &'static str;
    /// The version of this event's schema. It grows by one on every breaking change, and
    /// is the major version of the schema published to the registry.
    const SCHEMA_VERSION: u32;

    /// What makes two events the same occurrence, as the producer sees it: consumers
    /// handle each key of a detail type once.
    ///
    /// It comes from the detail, not from the envelope's `id`: EventBridge gives every
    /// accepted `PutEvents` entry a new id, so a publish that is sent again after its answer
    /// was lost arrives twice with two ids, and only the detail tells the copies apart
    /// from two occurrences. It must not be empty.
    fn idempotency_key(&self) -> Cow<'_, str>;
}

/// An EventBridge event as delivered to rules, targets and archives, generic over its
/// `detail`.
///
/// Field names on the wire follow EventBridge exactly (`detail-type`, `replay-name`). Use
/// `Envelope<serde_json::Value>` (alias [`RawEnvelope`]) for an event of any type.
///
/// Its `Debug` leaves the detail out: a raw detail holds personal data (an email, an IP
/// address), which a log line must not.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The envelope version; EventBridge sends `"0"`.
    pub version: String,
    /// The event id EventBridge assigned; unique per accepted event (a second publish of
    /// one occurrence gets another), kept on replay. Consumers key idempotency on the
    /// detail's [`Event::idempotency_key`] instead.
    pub id: String,
    /// The detail type, e.g. `UserSignedUp`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The source, e.g. `com.eventfork.users`.
    pub source: String,
    /// The 12-digit AWS account id the event was published in.
    pub account: String,
    /// When the event happened (or was accepted), RFC 3339 in UTC.
    pub time: String,
    /// The AWS region, e.g. `us-east-1`.
    pub region: String,
    /// ARNs of the resources the event is about; often empty.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The event's own content.
    pub detail: T,
    /// The name of the replay that re-sent this event; absent on live events.
    #[serde(
        rename = "replay-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replay_name: Option<String>,
}

impl<T> std::fmt::Debug for Envelope<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("version", &self.version)
            .field("id", &self.id)
            .field("detail_type", &self.detail_type)
            .field("source", &self.source)
            .field("account", &self.account)
            .field("time", &self.time)
            .field("region", &self.region)
            .field("resources", &self.resources)
            .field("replay_name", &self.replay_name)
            .finish_non_exhaustive()
    }
}

/// An envelope whose detail has not been given a type yet.
pub type RawEnvelope = Envelope<serde_json::Value>;

impl<T> Envelope<T> {
    /// True when this event was re-sent by an archive replay.
    pub fn is_replay(&self) -> bool {
        self.replay_name.is_some()
    }

    /// Applies `f` to the detail, keeping every other field.
    pub fn map_detail<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            version: self.version,
            id: self.id,
            detail_type: self.detail_type,
            source: self.source,
            account: self.account,
            time: self.time,
            region: self.region,
            resources: self.resources,
            detail: f(self.detail),
            replay_name: self.replay_name,
        }
    }
}
