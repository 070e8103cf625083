//! The catalogue of every event type, and validation of arbitrary JSON against it.

use std::fmt;

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::{
    Event, UserLoggedIn, UserSignedUp, Violation,
    validate::{Against, JsonPath, UnknownFields},
};

/// One entry of the catalogue: what tools need to know about an event type without naming
/// its Rust type.
#[derive(Clone, Copy)]
pub struct EventType {
    detail_type: &'static str,
    source: &'static str,
    schema_version: u32,
    detail_schema: fn() -> Value,
    check_detail: fn(&Value) -> Result<(), String>,
}

impl EventType {
    /// The entry for `T`.
    pub const fn of<T: Event>() -> EventType {
        EventType {
            detail_type: T::DETAIL_TYPE,
            source: T::SOURCE,
            schema_version: T::SCHEMA_VERSION,
            detail_schema: detail_schema::<T>,
            check_detail: check_detail::<T>,
        }
    }

    /// The `detail-type`, e.g. `UserSignedUp`.
    pub fn detail_type(&self) -> &'static str {
        self.detail_type
    }

    /// The `source`, e.g. `com.eventfork.users`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The schema version (see [`Event::SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The JSON Schema (draft 2020-12, as schemars emits it) of the detail.
    pub fn detail_schema(&self) -> Value {
        (self.detail_schema)()
    }

    /// Checks that `detail` is a valid detail of this type, as a producer must send it: a
    /// field that the schema does not name is refused. The violation's path starts at
    /// `$.detail`.
    pub fn validate_detail(&self, detail: &Value) -> Result<(), Violation> {
        self.check_detail(detail, UnknownFields::Refuse)
    }

    fn check_detail(&self, detail: &Value, unknown_fields: UnknownFields) -> Result<(), Violation> {
        let root = JsonPath::Root;
        let path = JsonPath::Key(&root, "detail");
        let schema = self.detail_schema();
        let against = Against {
            root: &schema,
            unknown_fields,
        };
        crate::validate::validate(against, &schema, detail, &path)?;
        // The schema is generated from the type, so this only fails where the schema cannot
        // say everything the type checks; it keeps the two from ever disagreeing silently.
        (self.check_detail)(detail).map_err(|reason| Violation::new(&path, reason))
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventType")
            .field("detail_type", &self.detail_type)
            .field("source", &self.source)
            .field("schema_version", &self.schema_version)
            .finish()
    }
}

fn detail_schema<T: Event>() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

fn check_detail<T: Event>(detail: &Value) -> Result<(), String> {
    T::deserialize(detail).map(drop).map_err(|e| e.to_string())
}

static CATALOGUE: [EventType; 2] = [
    EventType::of::<UserSignedUp>(),
    EventType::of::<UserLoggedIn>(),
];

/// Every event type eventfork defines, in a stable order.
pub fn catalogue() -> &'static [EventType] {
    &CATALOGUE
}

/// The event type with this `detail-type`, if any.
pub fn find(detail_type: &str) -> Option<&'static EventType> {
    CATALOGUE.iter().find(|t| t.detail_type == detail_type)
}

/// The JSON Schema of the EventBridge envelope fields, shared by validation and the
/// registry export (`detail` is filled in per event type).
pub(crate) fn envelope_properties() -> Value {
    json!({
        "version": { "type": "string" },
        "id": { "type": "string", "minLength": 1 },
        "detail-type": { "type": "string" },
        "source": { "type": "string" },
        "account": { "type": "string" },
        "time": { "type": "string", "format": "date-time", "pattern": crate::fields::RFC3339_PATTERN },
        "region": { "type": "string" },
        "resources": { "type": "array", "items": { "type": "string" } },
        "replay-name": { "type": "string" },
    })
}

/// The envelope fields EventBridge always sets.
pub(crate) const ENVELOPE_REQUIRED: [&str; 9] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];

/// Says which event type a full EventBridge event (envelope and detail) is, or gives the
/// first violation with its JSON path: the producer's check.
///
/// `resources` may be missing (EventBridge accepts events without it); unknown envelope
/// fields are allowed, unknown detail fields are not. Consumers read with
/// [`validate_received`] instead.
pub fn validate_envelope(event: &Value) -> Result<&'static EventType, Violation> {
    validate_event(event, UnknownFields::Refuse)
}

/// Like [`validate_envelope`], but as a consumer reads: detail fields that this version of
/// the catalogue does not know are skipped, not refused.
///
/// A producer may add an optional field to an event before every consumer knows it;
/// consumers built before it go on reading the fields they know. The registry schema of a
/// version stays closed (`additionalProperties: false`): it describes what producers of
/// that version send, and the field arrives with the next version of the schema, which
/// consumers take up when they need the field. A field that changes what the others mean
/// (a test flag, a consent that overrides another) is not optional in this sense: it needs
/// a new [`Event::SCHEMA_VERSION`]. Everything else is checked as [`validate_envelope`]
/// checks it, including enum values: a new value is a breaking change too.
pub fn validate_received(event: &Value) -> Result<&'static EventType, Violation> {
    validate_event(event, UnknownFields::Ignore)
}

fn validate_event(
    event: &Value,
    unknown_fields: UnknownFields,
) -> Result<&'static EventType, Violation> {
    let root = JsonPath::Root;
    let envelope_schema = json!({
        "type": "object",
        "required": ENVELOPE_REQUIRED.iter().filter(|f| **f != "resources").collect::<Vec<_>>(),
        "properties": envelope_properties(),
    });
    let against = Against {
        root: &envelope_schema,
        unknown_fields,
    };
    crate::validate::validate(against, &envelope_schema, event, &root)?;
    let detail_type = event["detail-type"].as_str().unwrap_or_default();
    let source = event["source"].as_str().unwrap_or_default();
    let Some(event_type) = find(detail_type) else {
        let known: Vec<&str> = CATALOGUE.iter().map(|t| t.detail_type).collect();
        return Err(Violation::unknown_type(
            &JsonPath::Key(&root, "detail-type"),
            format!(
                "unknown detail-type {detail_type:?} (known: {})",
                known.join(", ")
            ),
        ));
    };
    if event_type.source != source {
        return Err(Violation::new(
            &JsonPath::Key(&root, "source"),
            format!(
                "{detail_type} events come from {:?}, found {source:?}",
                event_type.source
            ),
        ));
    }
    event_type.check_detail(&event["detail"], unknown_fields)?;
    Ok(event_type)
}
