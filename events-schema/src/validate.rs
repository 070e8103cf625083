//! A small JSON Schema validator over the schemas this crate generates, so that
//! validation reports the first violation with its JSON path.
//!
//! It implements the keywords our schemas use (draft 2020-12 as schemars emits it):
//! `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`,
//! `oneOf`, `anyOf`, `$ref` into `$defs`, `minLength`, `maxLength`, `minimum`, `maximum`,
//! `pattern` in the form our ids use (not only white space) and the formats `email`,
//! `date-time`, `ipv4`, `ipv6`. An unknown keyword is ignored, as JSON Schema requires; so
//! are the patterns of emails and timestamps, which their formats check more strictly.

use std::fmt;

use serde_json::{Map, Value};

use crate::fields::{NOT_ONLY_BLANK, check_email, check_rfc3339, is_blank};

/// The first place where a JSON value breaks its schema.
///
/// Where the value itself helps (an enum value, an IP address), it is kept apart from the
/// reason: [`Violation::redacted`] drops it, for logs that must not hold event data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    path: String,
    reason: String,
    found: Option<String>,
    unknown_type: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)?;
        match &self.found {
            Some(found) => write!(f, ", found {found}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Violation {}

impl Violation {
    pub(crate) fn new(path: &JsonPath<'_>, reason: impl Into<String>) -> Violation {
        Violation {
            path: path.to_string(),
            reason: reason.into(),
            found: None,
            unknown_type: false,
        }
    }

    /// A violation that names a detail-type this catalogue does not have.
    pub(crate) fn unknown_type(path: &JsonPath<'_>, reason: impl Into<String>) -> Violation {
        Violation {
            unknown_type: true,
            ..Violation::new(path, reason)
        }
    }

    /// A violation that quotes the offending value.
    pub(crate) fn found(
        path: &JsonPath<'_>,
        reason: impl Into<String>,
        value: impl fmt::Display,
    ) -> Violation {
        Violation {
            found: Some(value.to_string()),
            ..Violation::new(path, reason)
        }
    }

    /// The same violation without the offending value: path and reason only.
    pub fn redacted(&self) -> Violation {
        Violation {
            found: None,
            ..self.clone()
        }
    }

    /// The JSON path of the offending value, e.g. `$.detail.email`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether the first fault found is a detail-type this version of the catalogue does
    /// not have (the envelope's shape was checked before it; the source and the detail,
    /// which depend on the type, were not). Rules route by detail-type, so a consumer that meets one is most likely
    /// older than the catalogue that routed the event to it: the event may decode once the
    /// consumer is upgraded, where any other violation is the event's own.
    pub fn is_unknown_type(&self) -> bool {
        self.unknown_type
    }
}

/// A JSON path built on the stack while walking a value.
#[derive(Clone, Copy)]
pub(crate) enum JsonPath<'a> {
    Root,
    Key(&'a JsonPath<'a>, &'a str),
    Index(&'a JsonPath<'a>, usize),
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonPath::Root => f.write_str("$"),
            JsonPath::Key(parent, key) => {
                let plain = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    write!(f, "{parent}.{key}")
                } else {
                    write!(f, "{parent}[{}]", Value::from(*key))
                }
            }
            JsonPath::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// What a validation reads against: the schema that holds `$defs`, and how fields that the
/// schema forbids (`additionalProperties: false`) are taken.
#[derive(Clone, Copy)]
pub(crate) struct Against<'a> {
    pub(crate) root: &'a Value,
    pub(crate) unknown_fields: UnknownFields,
}

/// How a validation takes an object's fields that its schema does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownFields {
    /// As the schema says: a producer's check, where an unknown field is a mistake.
    Refuse,
    /// Skipped: a consumer's reading, where an unknown field is one that a newer producer
    /// added.
    Ignore,
}

/// Validates `value` against `schema`.
pub(crate) fn validate(
    root: Against<'_>,
    schema: &Value,
    value: &Value,
    path: &JsonPath<'_>,
) -> Result<(), Violation> {
    let Some(schema) = schema.as_object() else {
        return match schema {
            Value::Bool(false) => Err(Violation::new(path, "no value is allowed here")),
            _ => Ok(()),
        };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = resolve(root.root, reference)
            .ok_or_else(|| Violation::new(path, format!("unresolved schema $ref {reference}")))?;
        validate(root, target, value, path)?;
    }
    if let Some(expected) = schema.get("type") {
        check_type(expected, value, path)?;
    }
    if let Some(allowed) = schema.get("const")
        && allowed != value
    {
        return Err(Violation::found(path, format!("expected {allowed}"), value));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        return Err(Violation::found(
            path,
            format!("expected one of {}", list(allowed)),
            value,
        ));
    }
    if let Some(Value::Array(branches)) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
        check_branches(root, branches, value, path)?;
    }
    match value {
        Value::String(text) => check_string(schema, text, path)?,
        Value::Number(number) => check_number(schema, number, path)?,
        Value::Object(object) => check_object(root, schema, object, path)?,
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    validate(root, item_schema, item, &JsonPath::Index(path, index))?;
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    Ok(())
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_type(expected: &Value, value: &Value, path: &JsonPath<'_>) -> Result<(), Violation> {
    let found = type_name(value);
    let fits = |name: &Value| {
        let name = name.as_str().unwrap_or_default();
        name == found || (name == "number" && found == "integer")
    };
    let ok = match expected {
        Value::Array(names) => names.iter().any(fits),
        name => fits(name),
    };
    if ok {
        Ok(())
    } else {
        let expected = match expected {
            Value::Array(names) => list(names),
            name => name.as_str().unwrap_or_default().to_owned(),
        };
        Err(Violation::new(
            path,
            format!("expected {expected}, found {found}"),
        ))
    }
}

fn check_branches(
    root: Against<'_>,
    branches: &[Value],
    value: &Value,
    path: &JsonPath<'_>,
) -> Result<(), Violation> {
    let mut first_error = None;
    for branch in branches {
        match validate(root, branch, value, path) {
            Ok(()) => return Ok(()),
            Err(violation) => {
                first_error.get_or_insert(violation);
            }
        }
    }
    // Branches that each name a format (an IP address, v4 or v6) say so together.
    let formats: Vec<&str> = branches
        .iter()
        .filter_map(|b| b.get("format").and_then(Value::as_str))
        .collect();
    if formats.len() == branches.len() && formats.iter().all(|f| f.starts_with("ipv")) {
        return Err(Violation::found(
            path,
            "not an IPv4 or IPv6 address",
            format!("{}", value),
        ));
    }
    // Enumerations written as one branch per documented constant read better as a list.
    let constants: Vec<Value> = branches
        .iter()
        .filter_map(|b| b.get("const").cloned())
        .collect();
    if constants.len() == branches.len() {
        return Err(Violation::found(
            path,
            format!("expected one of {}", list(&constants)),
            value,
        ));
    }
    Err(first_error.unwrap_or_else(|| Violation::new(path, "matches no allowed form")))
}

fn check_string(
    schema: &Map<String, Value>,
    text: &str,
    path: &JsonPath<'_>,
) -> Result<(), Violation> {
    let n_chars = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && n_chars < min
    {
        let reason = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("shorter than {min} characters")
        };
        return Err(Violation::new(path, reason));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && n_chars > max
    {
        return Err(Violation::new(
            path,
            format!("longer than {max} characters"),
        ));
    }
    if schema.get("pattern").and_then(Value::as_str) == Some(NOT_ONLY_BLANK)
        && text.chars().all(is_blank)
    {
        return Err(Violation::new(path, "must not be only white space"));
    }
    let format_error = match schema.get("format").and_then(Value::as_str) {
        Some("email") => check_email(text)
            .err()
            .map(|r| format!("invalid email address: {r}")),
        Some("date-time") => check_rfc3339(text)
            .err()
            .map(|r| format!("invalid RFC 3339 timestamp {text:?}: {r}")),
        Some("ipv4") if text.parse::<std::net::Ipv4Addr>().is_err() => {
            return Err(Violation::found(
                path,
                "not an IPv4 address",
                format!("{text:?}"),
            ));
        }
        Some("ipv6") if text.parse::<std::net::Ipv6Addr>().is_err() => {
            return Err(Violation::found(
                path,
                "not an IPv6 address",
                format!("{text:?}"),
            ));
        }
        _ => None,
    };
    match format_error {
        Some(reason) => Err(Violation::new(path, reason)),
        None => Ok(()),
    }
}

fn check_number(
    schema: &Map<String, Value>,
    number: &serde_json::Number,
    path: &JsonPath<'_>,
) -> Result<(), Violation> {
    let Some(number) = number.as_f64() else {
        return Ok(());
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        return Err(Violation::new(
            path,
            format!("{number} is below the minimum {min}"),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        return Err(Violation::new(
            path,
            format!("{number} is above the maximum {max}"),
        ));
    }
    Ok(())
}

fn check_object(
    root: Against<'_>,
    schema: &Map<String, Value>,
    object: &Map<String, Value>,
    path: &JsonPath<'_>,
) -> Result<(), Violation> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(Violation::new(
                    &JsonPath::Key(path, name),
                    "missing required field",
                ));
            }
        }
    }
    for (key, item) in object {
        let item_path = JsonPath::Key(path, key);
        match properties.and_then(|p| p.get(key)) {
            Some(item_schema) => validate(root, item_schema, item, &item_path)?,
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) if root.unknown_fields == UnknownFields::Refuse => {
                    return Err(Violation::new(&item_path, "unknown field"));
                }
                Some(Value::Bool(false)) => {}
                Some(extra) => validate(root, extra, item, &item_path)?,
                None => {}
            },
        }
    }
    Ok(())
}

fn list(values: &[Value]) -> String {
    let items: Vec<String> = values.iter().map(Value::to_string).collect();
    items.join(", ")
}
