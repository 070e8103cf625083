//! JSON text read the way a producer's input should be: a key given twice in one object
//! is an error naming where, not a value silently dropped.
//!
//! JSON allows duplicate keys, and readers disagree on them: `serde_json::Value` and
//! EventBridge's pattern matching keep the last, other readers keep the first or refuse.
//! Whichever one counts, the other was written by someone who expected it to arrive, so
//! the producer's entry points ([`from_slice`]) refuse it.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::validate::JsonPath;

/// Parses JSON text into a [`Value`], refusing an object that names a key twice.
///
/// The error for a duplicate key starts with its JSON path (`$.detail: duplicate key
/// "email" …`) and, as every `serde_json` error, ends with the line and column.
///
/// ```
/// let error = events_schema::strict::from_slice(br#"{"detail": {"email": "a@x.io", "email": "b@x.io"}}"#)
///     .unwrap_err();
/// assert!(error.to_string().starts_with(r#"$.detail: duplicate key "email""#));
/// ```
pub fn from_slice(text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = Node {
        path: &JsonPath::Root,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Parses JSON text into a [`Value`], refusing an object that names a key twice; see
/// [`from_slice`].
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    from_slice(text.as_bytes())
}

/// One value being read, and where it is.
struct Node<'a> {
    path: &'a JsonPath<'a>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no infinite or NaN numbers: serde_json refuses 1e400 before this.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            path: &JsonPath::Index(self.path, items.len()),
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "{}: duplicate key {} (JSON readers disagree on which value counts)",
                    self.path,
                    Value::from(key.as_str())
                )));
            }
            let value = map.next_value_seed(Node {
                path: &JsonPath::Key(self.path, &key),
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = r#"{"a": [1, -2, 3.5, 1e300, "x\u00e9", true, false, null, {}], "b": {"c": {"d": []}}}"#;
        assert_eq!(
            from_str(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        // Key order is kept, as the workspace's serde_json keeps it.
        let keys: Vec<String> = match from_str(r#"{"z": 1, "a": 2}"#).unwrap() {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => unreachable!(),
        };
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn names_a_duplicate_key_with_its_path_and_position() {
        let error = from_str("{\"detail\": {\"user\": [{\"id\": 1,\n \"id\": 2}]}}")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(r#"$.detail.user[0]: duplicate key "id" "#),
            "{error}"
        );
        assert!(error.ends_with("line 2 column 5"), "{error}");
        let error = from_str(r#"{"a b": {"": 1, "": 2}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(r#"$["a b"]: duplicate key "" "#),
            "{error}"
        );
        let error = from_str(r#"{"a": 1, "a": 1}"#).unwrap_err().to_string();
        assert!(error.starts_with(r#"$: duplicate key "a" "#), "{error}");
    }

    #[test]
    fn the_same_key_in_different_objects_is_no_duplicate() {
        assert_eq!(
            from_str(r#"{"a": {"id": 1}, "b": {"id": 2}, "c": [{"id": 3}, {"id": 4}]}"#).unwrap(),
            json!({"a": {"id": 1}, "b": {"id": 2}, "c": [{"id": 3}, {"id": 4}]})
        );
    }

    #[test]
    fn keeps_serde_json_errors_and_limits() {
        assert!(from_str(r#"{"a": 1} x"#).unwrap_err().is_syntax());
        assert!(from_str(r#"{"a": 1"#).unwrap_err().is_eof());
        assert!(from_str("1e400").is_err());
        // serde_json's recursion limit (128) still guards the stack.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            from_str(&deep)
                .unwrap_err()
                .to_string()
                .contains("recursion limit")
        );
    }
}
