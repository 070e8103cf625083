//! Schemas for the EventBridge Schema Registry, in both formats it accepts.
//!
//! * [`Format::OpenApi3`]: the shape of the registry's own discovered schemas: an
//!   OpenAPI 3.0 document whose `components.schemas` hold an `AWSEvent` envelope (with
//!   `x-amazon-events-source` and `x-amazon-events-detail-type`) and the detail type.
//! * [`Format::JsonSchemaDraft4`]: the same envelope as a JSON Schema Draft 4 document with
//!   the detail under `definitions`.
//!
//! Both are converted programmatically from what schemars generates (draft 2020-12):
//! `$defs` move to the format's definitions section, `const` becomes a one-value `enum`,
//! documented enumerations become a plain `enum`, and nullable types use each dialect's
//! spelling. The output is deterministic: same types, same bytes.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde_json::{Map, Value, json};

use crate::{
    EventType,
    catalogue::{ENVELOPE_REQUIRED, envelope_properties},
};

/// A schema format the EventBridge Schema Registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// OpenAPI 3.0 (`Type: OpenApi3` in `AWS::EventSchemas::Schema`).
    OpenApi3,
    /// JSON Schema Draft 4 (`Type: JSONSchemaDraft4`).
    JsonSchemaDraft4,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 2] = [Format::OpenApi3, Format::JsonSchemaDraft4];

    /// The name used on the command line and in file paths.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenApi3 => "openapi3",
            Format::JsonSchemaDraft4 => "jsonschema-draft4",
        }
    }

    /// The `Type` of an `AWS::EventSchemas::Schema` holding this format.
    pub fn registry_type(self) -> &'static str {
        match self {
            Format::OpenApi3 => "OpenApi3",
            Format::JsonSchemaDraft4 => "JSONSchemaDraft4",
        }
    }

    fn definitions_pointer(self) -> &'static str {
        match self {
            Format::OpenApi3 => "#/components/schemas/",
            Format::JsonSchemaDraft4 => "#/definitions/",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown schema format {0:?} (expected openapi3 or jsonschema-draft4)")]
pub struct UnknownFormat(String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

/// The registry schema of one event type.
pub fn export(event_type: &EventType, format: Format) -> Value {
    let mut detail = event_type.detail_schema();
    let mut definitions = Map::new();
    if let Some(Value::Object(defs)) = detail.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (name, schema) in defs {
            definitions.insert(name, convert(schema, format));
        }
    }
    let detail_name = event_type.detail_type().to_owned();
    let mut detail = convert(detail, format);
    if let Some(object) = detail.as_object_mut() {
        object.remove("$schema");
    }

    let mut properties = envelope_properties();
    // One document per event type: its source and detail type are those, as validation
    // checks them.
    properties["source"] = json!({ "type": "string", "enum": [event_type.source()] });
    properties["detail-type"] = json!({ "type": "string", "enum": [event_type.detail_type()] });
    properties["detail"] =
        json!({ "$ref": format!("{}{detail_name}", format.definitions_pointer()) });
    let mut envelope = json!({
        "type": "object",
        "required": ENVELOPE_REQUIRED,
        "x-amazon-events-detail-type": event_type.detail_type(),
        "x-amazon-events-source": event_type.source(),
        "properties": properties,
    });
    let mut all_definitions = Map::new();
    all_definitions.insert(detail_name.clone(), detail);
    all_definitions.extend(definitions);

    match format {
        Format::OpenApi3 => {
            let mut schemas = Map::new();
            schemas.insert("AWSEvent".to_owned(), envelope);
            schemas.extend(all_definitions);
            json!({
                "openapi": "3.0.0",
                "info": {
                    "version": format!("{}.0.0", event_type.schema_version()),
                    "title": detail_name,
                },
                "paths": {},
                "components": { "schemas": schemas },
            })
        }
        Format::JsonSchemaDraft4 => {
            let object = envelope.as_object_mut().expect("the envelope is an object");
            let mut document = Map::new();
            document.insert(
                "$schema".to_owned(),
                "http://json-schema.org/draft-04/schema#".into(),
            );
            document.insert("title".to_owned(), "AWSEvent".into());
            document.append(object);
            document.insert("definitions".to_owned(), Value::Object(all_definitions));
            Value::Object(document)
        }
    }
}

/// The registry schemas of every event type, keyed by detail-type.
pub fn export_all(format: Format) -> BTreeMap<&'static str, Value> {
    crate::catalogue()
        .iter()
        .map(|t| (t.detail_type(), export(t, format)))
        .collect()
}

/// Renders a schema document as the committed files hold it: pretty JSON, trailing newline.
pub fn to_pretty_string(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// Rewrites one draft 2020-12 schema (recursively) into `format`'s dialect.
fn convert(schema: Value, format: Format) -> Value {
    match schema {
        Value::Object(object) => Value::Object(convert_object(object, format)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|s| convert(s, format)).collect())
        }
        other => other,
    }
}

fn convert_object(object: Map<String, Value>, format: Format) -> Map<String, Value> {
    let mut out = Map::new();
    // Both dialects ignore the siblings of a `$ref`; keep them by moving the reference into
    // an `allOf`.
    if object.contains_key("$ref") && object.len() > 1 {
        let mut object = object;
        let reference = object.remove("$ref").expect("checked above");
        let mut wrapper = Map::new();
        wrapper.insert("$ref".to_owned(), reference);
        object.insert(
            "allOf".to_owned(),
            Value::Array(vec![Value::Object(wrapper)]),
        );
        return convert_object(object, format);
    }
    for (key, value) in object {
        match key.as_str() {
            "$schema" => {}
            "$ref" => {
                let target = value.as_str().unwrap_or_default();
                let name = target.strip_prefix("#/$defs/").unwrap_or(target);
                out.insert(
                    key,
                    format!("{}{name}", format.definitions_pointer()).into(),
                );
            }
            "const" => {
                out.insert("enum".to_owned(), Value::Array(vec![value]));
            }
            "examples" => {
                if let (Format::OpenApi3, Value::Array(examples)) = (format, value)
                    && let Some(first) = examples.into_iter().next()
                {
                    out.insert("example".to_owned(), first);
                }
            }
            "exclusiveMinimum" | "exclusiveMaximum" if value.is_number() => {
                // Draft 4 and OpenAPI 3.0 spell an exclusive bound as a boolean flag next to
                // `minimum` / `maximum`.
                let bound = if key == "exclusiveMinimum" {
                    "minimum"
                } else {
                    "maximum"
                };
                out.insert(bound.to_owned(), value);
                out.insert(key, true.into());
            }
            "type" => match (format, value) {
                (Format::OpenApi3, Value::Array(types)) => {
                    let non_null: Vec<Value> =
                        types.iter().filter(|t| *t != "null").cloned().collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".to_owned(), true.into());
                    }
                    if let [single] = non_null.as_slice() {
                        out.insert(key, single.clone());
                    }
                }
                (_, value) => {
                    out.insert(key, value);
                }
            },
            "oneOf" | "anyOf" => match enum_of_constants(&value) {
                Some(constants) => {
                    out.entry("type").or_insert_with(|| "string".into());
                    out.insert("enum".to_owned(), Value::Array(constants));
                }
                None => {
                    out.insert(key, convert(value, format));
                }
            },
            _ => {
                out.insert(key, convert(value, format));
            }
        }
    }
    out
}

/// `oneOf: [{"const": "a", "description": ..}, ..]`, as schemars renders a documented
/// enum, reads better as `enum: ["a", ..]` in both dialects and in generated code.
fn enum_of_constants(branches: &Value) -> Option<Vec<Value>> {
    let branches = branches.as_array()?;
    let mut constants = Vec::new();
    for branch in branches {
        let branch = branch.as_object()?;
        let allowed = ["const", "enum", "type", "description"];
        if branch.keys().any(|k| !allowed.contains(&k.as_str())) {
            return None;
        }
        match (branch.get("const"), branch.get("enum")) {
            (Some(value @ Value::String(_)), None) => constants.push(value.clone()),
            (None, Some(Value::Array(values))) if values.iter().all(Value::is_string) => {
                constants.extend(values.iter().cloned())
            }
            _ => return None,
        }
    }
    Some(constants)
}
