//! The registry schemas: deterministic, committed under `schemas/`, in the registry's shape.

use std::path::PathBuf;

use events_schema::registry::{self, Format};
use serde_json::Value;

fn committed_path(format: Format, detail_type: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(format.name())
        .join(format!("{detail_type}.json"))
}

/// The committed schemas are exactly what the code generates today.
#[test]
fn committed_schemas_are_up_to_date() {
    let mut stale = Vec::new();
    for format in Format::ALL {
        for (detail_type, schema) in registry::export_all(format) {
            let path = committed_path(format, detail_type);
            let fresh = registry::to_pretty_string(&schema);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(fresh.as_str()) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "the committed registry schemas are stale: {stale:?}\nrefresh them with:\n  \
         cargo run -p cli -- schemas export --format openapi3 --out schemas/openapi3\n  \
         cargo run -p cli -- schemas export --format jsonschema-draft4 --out schemas/jsonschema-draft4"
    );
}

#[test]
fn export_is_deterministic() {
    for format in Format::ALL {
        assert_eq!(registry::export_all(format), registry::export_all(format));
    }
}

#[test]
fn openapi3_has_the_registry_shape() {
    let schema = &registry::export_all(Format::OpenApi3)["UserSignedUp"];
    assert_eq!(schema["openapi"], "3.0.0");
    assert_eq!(schema["info"]["title"], "UserSignedUp");
    let event = &schema["components"]["schemas"]["AWSEvent"];
    assert_eq!(event["x-amazon-events-detail-type"], "UserSignedUp");
    assert_eq!(event["x-amazon-events-source"], "com.eventfork.users");
    assert_eq!(
        event["properties"]["detail"]["$ref"],
        "#/components/schemas/UserSignedUp"
    );
    let detail = &schema["components"]["schemas"]["UserSignedUp"];
    assert_eq!(detail["properties"]["email"]["format"], "email");
    assert_eq!(detail["additionalProperties"], false);
    assert_no_dialect_leftovers(schema);
}

#[test]
fn draft4_declares_its_dialect() {
    let schema = &registry::export_all(Format::JsonSchemaDraft4)["UserLoggedIn"];
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    assert_eq!(schema["x-amazon-events-detail-type"], "UserLoggedIn");
    assert_eq!(
        schema["properties"]["detail"]["$ref"],
        "#/definitions/UserLoggedIn"
    );
    let login_method = &schema["definitions"]["LoginMethod"];
    assert_eq!(login_method["type"], "string");
    assert_eq!(login_method["enum"][5], "passkey");
    assert_no_dialect_leftovers(schema);
}

/// No draft 2020-12 keyword survives the conversion.
#[track_caller]
fn assert_no_dialect_leftovers(value: &Value) {
    match value {
        Value::Object(object) => {
            for key in [
                "$defs",
                "const",
                "examples",
                "prefixItems",
                "unevaluatedProperties",
            ] {
                assert!(!object.contains_key(key), "{key} left in {value}");
            }
            if let Some(Value::String(reference)) = object.get("$ref") {
                assert!(!reference.contains("$defs"), "{reference}");
            }
            object.values().for_each(assert_no_dialect_leftovers);
        }
        Value::Array(items) => items.iter().for_each(assert_no_dialect_leftovers),
        _ => {}
    }
}
