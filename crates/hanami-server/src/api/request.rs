//! Turning an HTTP request into an endpoint id and one JSON input object.
//!
//! As in the original: POST and PUT bodies must be JSON objects; GET and DELETE bodies are
//! ignored; query pairs are merged into the input (overriding body keys) with their values
//! typed by shape (integers, decimals, else strings). Unlike the original, a key given twice
//! in the body or twice in the query is refused (its JSON library kept the last silently, so
//! a check of one and a use of the other could disagree).

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::ApiError;

/// The endpoint id of a request path: the path without its leading `/`.
///
/// Paths must start with `/`, must not contain `..` and must be longer than five characters.
pub fn endpoint_id(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::BadRequest(
            "Request path must start with '/'".into(),
        ));
    };
    if path.contains("..") {
        return Err(ApiError::BadRequest(
            "Request path must not contain '..'".into(),
        ));
    }
    if path.len() <= 5 {
        return Err(ApiError::BadRequest("Uri is too short.".into()));
    }
    Ok(rest)
}

/// Parses a POST/PUT body, which must be a JSON object whose keys are all different, in
/// nested objects too.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let refused = |why: String| ApiError::BadRequest(format!("Failed to parse input-values{why}"));
    match parse_distinct(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(refused(format!(
            ": the body must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(JsonRefusal::Syntax(e)) => Err(refused(format!(", because of json-parser error: {e}"))),
        Err(JsonRefusal::Repeated(repeated)) => {
            Err(refused(format!(": the body gives {repeated}")))
        }
    }
}

/// Why a JSON text was refused.
pub(crate) enum JsonRefusal {
    /// It is no JSON: the parser's error.
    Syntax(serde_json::Error),
    /// An object in it gives a key more than once: which, in a message's words (`'k' more
    /// than once`, with ` in 'f'` where the object is the value of the outermost object's
    /// field `f`).
    Repeated(String),
}

/// Parses a JSON text whose objects give every key once, nested objects included. A leading
/// UTF-8 byte-order mark is skipped, as the original's JSON library skipped it.
pub(crate) fn parse_distinct(text: &[u8]) -> Result<Value, JsonRefusal> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    match serde_json::from_slice(text).map_err(JsonRefusal::Syntax)? {
        Distinct::Value(value) => Ok(value),
        Distinct::Repeated { key, within } => {
            let within = within.map_or(String::new(), |field| format!(" in '{}'", shown(&field)));
            Err(JsonRefusal::Repeated(format!(
                "'{}' more than once{within}",
                shown(&key)
            )))
        }
    }
}

/// What kind of JSON value `v` is, in words ("an array").
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A key for a message: whole if short, else its first 100 characters and `…`.
fn shown(key: &str) -> String {
    match key.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    }
}

/// A JSON value as `serde_json` reads it, unless an object in it gives a key more than once.
enum Distinct {
    /// The value.
    Value(Value),
    /// An object in it gives `key` more than once: the value itself, or an object within the
    /// value of its field `within` (the outermost object's field).
    Repeated {
        /// The key given twice.
        key: String,
        /// The outermost object's field whose value holds that object; `None` where the
        /// outermost object gives the key twice.
        within: Option<String>,
    },
}

impl<'de> Deserialize<'de> for Distinct {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DistinctVisitor)
    }
}

struct DistinctVisitor;

impl<'de> Visitor<'de> for DistinctVisitor {
    type Value = Distinct;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Distinct, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let repeated = if map.contains_key(&key) {
                entries.next_value::<IgnoredAny>()?;
                Distinct::Repeated { key, within: None }
            } else {
                match entries.next_value()? {
                    Distinct::Value(value) => {
                        map.insert(key, value);
                        continue;
                    }
                    Distinct::Repeated { key: inner, .. } => Distinct::Repeated {
                        key: inner,
                        within: Some(key),
                    },
                }
            };
            // The rest is read, so that a syntax error after it is still found.
            while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(repeated);
        }
        Ok(Distinct::Value(Value::Object(map)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Distinct, A::Error> {
        let mut values = Vec::new();
        while let Some(item) = items.next_element()? {
            match item {
                Distinct::Value(value) => values.push(value),
                repeated @ Distinct::Repeated { .. } => {
                    while items.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(repeated);
                }
            }
        }
        Ok(Distinct::Value(Value::Array(values)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Distinct, E> {
        // JSON holds finite numbers only.
        Ok(Distinct::Value(
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::String(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Distinct, E> {
        Ok(Distinct::Value(Value::String(value)))
    }
}

/// Refuses (400) a query string with a `password`: addresses end up in the logs of proxies.
pub fn refuse_password_in(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        if percent_decode(key)? == "password" {
            return Err(ApiError::BadRequest(
                "A password goes in the request's JSON body, never in its address (which \
                 proxies and logs keep): send it as the field 'password' of the body"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Merges the query string into the input object (a key of the body given in the query too
/// takes the query's value); a key given twice in the query is refused.
pub fn merge_query(query: &str, input: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut given = std::collections::HashSet::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, pair));
        let key = percent_decode(key)?;
        if !given.insert(key.clone()) {
            return Err(ApiError::BadRequest(format!(
                "The query gives '{key}' more than once"
            )));
        }
        let value = percent_decode(value)?;
        input.insert(key, typed(value));
    }
    Ok(())
}

/// A query value as JSON: integers and decimals become numbers, everything else a string.
/// Integers too large for 64 bits stay strings (and then fail type validation with a 400).
fn typed(value: String) -> Value {
    let digits = value.strip_prefix('-').unwrap_or(&value);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = if all_digits(digits) {
        value.parse::<i64>().ok().map(Number::from)
    } else {
        match digits.split_once('.') {
            Some((int, frac)) if all_digits(int) && all_digits(frac) => {
                value.parse::<f64>().ok().and_then(Number::from_f64)
            }
            _ => None,
        }
    };
    number.map_or(Value::String(value), Value::Number)
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("Invalid percent-encoding in query: '{s}'"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::BadRequest(format!("Query value is not UTF-8: '{s}'")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_ids() {
        assert_eq!(
            endpoint_id("/v1.0alpha/cluster").unwrap(),
            "v1.0alpha/cluster"
        );
        assert_eq!(endpoint_id("/v1.0a").unwrap(), "v1.0a");
        assert_eq!(
            endpoint_id("/v1.0").unwrap_err().message(),
            "Uri is too short."
        );
        assert!(endpoint_id("/v1.0alpha/../x").is_err());
        assert!(endpoint_id("v1.0alpha/x").is_err());
    }

    #[test]
    fn query_values_are_typed() {
        let mut input = Map::new();
        merge_query(
            "a=12&b=-3&c=1.5&d=abc&e=1e5&f=99999999999999999999&g&h=%41b%20c&page=0",
            &mut input,
        )
        .unwrap();
        assert_eq!(
            Value::Object(input),
            json!({"a": 12, "b": -3, "c": 1.5, "d": "abc", "e": "1e5",
                   "f": "99999999999999999999", "g": "g", "h": "Ab c", "page": 0})
        );
    }

    #[test]
    fn query_overrides_body() {
        let mut input = parse_body(br#"{"name": "body", "id": "x"}"#).unwrap();
        merge_query("name=query", &mut input).unwrap();
        assert_eq!(input["name"], "query");
        assert_eq!(input["id"], "x");
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(
            parse_body(b"{not json")
                .unwrap_err()
                .message()
                .contains("json-parser error")
        );
        assert!(parse_body(b"").is_err());
        assert!(
            parse_body(b"[1,2]")
                .unwrap_err()
                .message()
                .contains("an array")
        );
        assert!(merge_query("a=%zz", &mut Map::new()).is_err());
        for (body, kind) in [
            ("null", "null"),
            ("true", "a boolean"),
            ("-1", "a number"),
            ("1.5", "a number"),
            ("\"x\"", "a string"),
            ("[{\"a\": 1}, 2]", "an array"),
        ] {
            assert_eq!(
                parse_body(body.as_bytes()).unwrap_err().message(),
                format!("Failed to parse input-values: the body must be a JSON object, not {kind}")
            );
        }
        assert!(parse_body(b"{} x").is_err());
    }

    /// A leading UTF-8 byte-order mark is skipped, as the original's JSON library skipped
    /// it; one anywhere else, or a second one, is no JSON.
    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let body = parse_body(b"\xEF\xBB\xBF{\"id\": \"bom\"}").unwrap();
        assert_eq!(body["id"], "bom");
        for wrong in [
            &b"\xEF\xBB\xBF\xEF\xBB\xBF{}"[..],
            b" \xEF\xBB\xBF{}",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB{}",
        ] {
            let message = parse_body(wrong).unwrap_err().message();
            assert!(message.contains("json-parser error"), "{message}");
        }
    }

    /// A key given twice is refused, in the body as in the query, naming it (the last one
    /// was taken silently); nested objects and a key of the body given in the query again
    /// are as before.
    #[test]
    fn keys_given_twice_are_refused() {
        assert_eq!(
            parse_body(br#"{"uuid": "a", "name": "n", "uuid": "b"}"#)
                .unwrap_err()
                .message(),
            "Failed to parse input-values: the body gives 'uuid' more than once"
        );
        // What follows the repeated key is still read as JSON.
        assert!(
            parse_body(br#"{"a": 1, "a": 2, "b": }"#)
                .unwrap_err()
                .message()
                .contains("json-parser error")
        );
        let nested = br#"{"a": {"x": 1, "y": [1, {"z": null}, -2, 2.5, true, "s\u00e9"]}, "b": 2,
            "c": [], "d": {}, "e": 18446744073709551615, "f": -9223372036854775808, "g": 1e300}"#;
        assert_eq!(
            Value::Object(parse_body(nested).unwrap()),
            serde_json::from_slice::<Value>(nested).unwrap(),
            "as serde_json reads it"
        );
        // In nested objects too (the inputs of a task, say), also within arrays.
        for (body, within) in [
            (
                br#"{"inputs": {"picture": "a", "picture": "b"}}"#.as_slice(),
                "inputs",
            ),
            (
                br#"{"x": 1, "list": [{"ok": 1}, {"n": {"picture": 1, "picture": 2}}]}"#,
                "list",
            ),
        ] {
            assert_eq!(
                parse_body(body).unwrap_err().message(),
                format!(
                    "Failed to parse input-values: the body gives 'picture' more than once in \
                     '{within}'"
                )
            );
        }
        let long = format!(r#"{{"{0}": 1, "{0}": 2}}"#, "k".repeat(300));
        let message = parse_body(long.as_bytes()).unwrap_err().message();
        assert!(
            message.ends_with(&format!("'{}…' more than once", "k".repeat(100))),
            "{message}"
        );
        assert_eq!(
            merge_query("uuid=a&uuid%3D=b&u%75id=c", &mut Map::new())
                .unwrap_err()
                .message(),
            "The query gives 'uuid' more than once"
        );
        let mut input = Map::new();
        merge_query("a=1&b=2", &mut input).unwrap();
        assert_eq!(Value::Object(input), json!({"a": 1, "b": 2}));
    }
}
