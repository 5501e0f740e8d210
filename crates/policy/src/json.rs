//! [`Json`]: a JSON value that borrows its strings and keys from the text it was read from, which is what the
//! rules read.
//!
//! The admission webhook reads every review into this instead of `serde_json::Value`: a `Value` copies every
//! string and key into its own allocation and every object into a `BTreeMap`, most of the cost of a review.
//! Here a string without escapes is a slice of the request body, and an object is a `Vec` of its entries in
//! document order. What the rules see is the same as through a `Value` ([`Json::from`] converts one, which is
//! how [`crate::validate`] takes a `Value`):
//!
//! - a key given twice means its last value ([`Json::get`]), as `serde_json`'s map keeps the last;
//! - [`Json::entries`] lists an object's keys sorted and without duplicates, the order of a `Value`'s map;
//! - equality and [`std::fmt::Display`] are a `Value`'s (object equality ignores order).

use std::{borrow::Cow, fmt};

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value borrowing from its source text (see the module documentation).
#[derive(Debug, Clone)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Entries in document order, a repeated key included (its last value counts).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value of `key` in an object (the last, if the key is repeated); `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// An object's entries sorted by key, each key once with its last value; `None` for anything else.
    pub fn entries(&self) -> Option<Vec<(&str, &Json<'a>)>> {
        let Json::Object(entries) = self else {
            return None;
        };
        let mut sorted: Vec<(&str, &Json<'a>)> = entries.iter().map(|(k, v)| (k.as_ref(), v)).collect();
        // Stable: of equal keys the last in the document stays last, and is the one kept.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut deduplicated: Vec<(&str, &Json<'a>)> = Vec::with_capacity(sorted.len());
        for entry in sorted {
            match deduplicated.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduplicated.push(entry),
            }
        }
        Some(deduplicated)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Json::String(_))
    }

    /// The same value as a `serde_json::Value` (allocates: for messages and patches, not for reading).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    map.insert(key.to_string(), value.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

impl<'a> From<&'a Value> for Json<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from(v)))
                    .collect(),
            ),
        }
    }
}

impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Json::Null, Json::Null) => true,
            (Json::Bool(a), Json::Bool(b)) => a == b,
            (Json::Number(a), Json::Number(b)) => a == b,
            (Json::String(a), Json::String(b)) => a == b,
            (Json::Array(a), Json::Array(b)) => a == b,
            // Written in the same order (the common case: old and new object of one update) is equal without
            // sorting; otherwise compare as maps.
            (Json::Object(a), Json::Object(b)) => {
                (a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y))
                    || self.entries() == other.entries()
            }
            _ => false,
        }
    }
}

impl fmt::Display for Json<'_> {
    /// Compact JSON, as a `Value` prints (keys sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_value(), f)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Reads any JSON value, borrowing what the deserializer lends.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        // As serde_json's own `Value` reads a number it cannot represent.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Json::Object(entries))
    }
}

/// A string (an object key, a field value) borrowed from the input when it has no escapes.
#[derive(Clone, Copy, Debug, Default)]
pub struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"a": "plain", "b\n": "esc\"aped"}"#;
        let json: Json = serde_json::from_str(text).unwrap();
        let Json::Object(entries) = &json else {
            panic!("{json:?}")
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("a")));
        assert!(matches!(entries[0].1, Json::String(Cow::Borrowed("plain"))));
        assert!(matches!(entries[1].0, Cow::Owned(_)));
        assert_eq!(json.get("b\n").and_then(Json::as_str), Some("esc\"aped"));
    }

    #[test]
    fn repeated_keys_mean_the_last_value_as_in_a_value() {
        let text = r#"{"z": 1, "a": {"k": 1, "k": 2}, "z": [true, null, 2.5, "s"]}"#;
        let json: Json = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(json.to_value(), value);
        assert_eq!(json.to_string(), value.to_string());
        assert_eq!(json.get("z"), Some(&Json::from(&value["z"])));
        let keys: Vec<&str> = json.entries().unwrap().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "z"]);
        assert_eq!(json, Json::from(&value));
    }

    #[test]
    fn equality_is_a_values() {
        let a: Json = serde_json::from_str(r#"{"x": 1, "y": [1, {"b": 2, "a": 1}]}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"y": [1, {"a": 1, "b": 2}], "x": 1}"#).unwrap();
        assert_eq!(a, b);
        let c: Json = serde_json::from_str(r#"{"x": 1.0, "y": [1, {"a": 1, "b": 2}]}"#).unwrap();
        assert_ne!(a, c, "1 and 1.0 differ, as in a Value");
        let value = json!({"x": 1, "y": [1, {"a": 1, "b": 2}]});
        assert_eq!(a, Json::from(&value));
    }
}
