//! Declarative validation of request inputs.
//!
//! Every endpoint declares its input fields once ([`Field`]); [`validate`] checks the merged
//! input object against that declaration before the handler runs, in the original's order:
//! unknown keys, then missing required fields, then per field (alphabetically) type, pattern
//! and limits. The first failure becomes a 400 whose message names the field.

use serde_json::{Map, Value};

use super::error::ApiError;

pub use hanami_types::pattern::Pattern;

/// The server's check of a [`Pattern`].
pub trait PatternCheck {
    /// Checks a value, producing the API's 400 (naming the regular expression, as the
    /// original did) on mismatch.
    fn check(self, field: &str, value: &str) -> Result<(), ApiError>;
}

impl PatternCheck for Pattern {
    fn check(self, field: &str, value: &str) -> Result<(), ApiError> {
        if self.matches(value) {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "Given item '{field}' doesn't match with regex \"{}\"",
                self.regex()
            )))
        }
    }
}

/// The JSON type of a field, with its constraints.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string of `min..=max` bytes, optionally matching a pattern.
    Str {
        /// Required pattern, if any.
        pattern: Option<Pattern>,
        /// Minimum byte length.
        min: usize,
        /// Maximum byte length.
        max: usize,
    },
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// A JSON object from interface names (letters, digits and `_`, 1 to 254 characters,
    /// as templates have them) to strings (dataset uuids or names).
    Map,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Str { .. } => "a string",
            Kind::Int { .. } => "an integer",
            Kind::Bool => "a boolean",
            Kind::Map => "a JSON object of strings",
        }
    }
}

/// One declared input field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Key in the input object.
    pub name: &'static str,
    /// Type and constraints.
    pub kind: Kind,
    /// Whether the field must be present.
    pub required: bool,
}

impl Field {
    /// A required string field.
    pub const fn string(
        name: &'static str,
        pattern: Option<Pattern>,
        min: usize,
        max: usize,
    ) -> Self {
        Self {
            name,
            kind: Kind::Str { pattern, min, max },
            required: true,
        }
    }

    /// A required uuid field (36 characters of the uuid pattern).
    pub const fn uuid(name: &'static str) -> Self {
        Self::string(name, Some(Pattern::Uuid), 36, 36)
    }

    /// A required name field (4 to 254 characters of the name pattern).
    pub const fn name(name: &'static str) -> Self {
        Self::string(name, Some(Pattern::Name), 4, 254)
    }

    /// A required integer field.
    pub const fn int(name: &'static str, min: i64, max: i64) -> Self {
        Self {
            name,
            kind: Kind::Int { min, max },
            required: true,
        }
    }

    /// A required boolean field.
    pub const fn boolean(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Bool,
            required: true,
        }
    }

    /// A required JSON-object field.
    pub const fn map(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Map,
            required: true,
        }
    }

    /// The same field, but optional.
    pub const fn optional(self) -> Self {
        Self {
            required: false,
            ..self
        }
    }

    fn check(&self, value: &Value) -> Result<(), ApiError> {
        let name = self.name;
        let wrong_type = || {
            ApiError::BadRequest(format!(
                "Value-validation failed, because item '{name}' has the wrong type: expected {}.",
                self.kind.type_name()
            ))
        };
        match self.kind {
            Kind::Str { pattern, min, max } => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                if let Some(p) = pattern {
                    p.check(name, s)?;
                }
                // Limits count bytes, as the original's did; the original's word for them
                // is right as long as every character is one byte.
                let unit = if s.is_ascii() {
                    "characters"
                } else {
                    "bytes (in UTF-8)"
                };
                if s.len() < min {
                    return Err(ApiError::BadRequest(format!(
                        "Given item '{name}' is shorter than {min} {unit}"
                    )));
                }
                if s.len() > max {
                    return Err(ApiError::BadRequest(format!(
                        "Given item '{name}' is longer than {max} {unit}"
                    )));
                }
            }
            Kind::Int { min, max } => {
                let n = integer(value).ok_or_else(wrong_type)?;
                if n < i128::from(min) {
                    return Err(ApiError::BadRequest(format!(
                        "Given item '{name}' is smaller than {min}"
                    )));
                }
                if n > i128::from(max) {
                    return Err(ApiError::BadRequest(format!(
                        "Given item '{name}' is bigger than {max}"
                    )));
                }
            }
            Kind::Bool => {
                value.as_bool().ok_or_else(wrong_type)?;
            }
            Kind::Map => {
                let map = value.as_object().ok_or_else(wrong_type)?;
                if let Some(key) = map.keys().find(|key| !is_interface_name(key)) {
                    return Err(ApiError::BadRequest(format!(
                        "Value-validation failed, because item '{name}' has the key '{}', \
                         which is no interface name (letters, digits and '_', 1 to \
                         {MAX_INTERFACE_NAME} characters).",
                        shortened(key)
                    )));
                }
                if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                    return Err(ApiError::BadRequest(format!(
                        "Value-validation failed, because item '{name}' maps '{}' to a \
                         value that is not a string.",
                        shortened(key)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The value of a JSON integer, also of one beyond 64 bits (which the parser reads as a
/// float, and a query string leaves as text; its value saturates at the bounds of `i128`,
/// far outside any limit) and of `-0` (read as the float −0.0); `None` for other values,
/// fractions and other floats included.
fn integer(value: &Value) -> Option<i128> {
    if let Some(text) = value.as_str() {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let beyond_64_bits = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && text.parse::<i64>().is_err();
        return beyond_64_bits.then_some(if text.starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        });
    }
    if let Some(n) = value.as_i64() {
        return Some(n.into());
    }
    if let Some(n) = value.as_u64() {
        return Some(n.into());
    }
    let f = value.as_f64()?;
    let beyond_64_bits = f.abs() >= 2f64.powi(63);
    let minus_zero = f == 0.0 && f.is_sign_negative();
    (f.is_finite() && (beyond_64_bits || minus_zero)).then_some(f as i128)
}

/// Longest interface name, as the template language allows it.
const MAX_INTERFACE_NAME: usize = hanami_engine::template::limits::MAX_NAME_LEN;

/// Whether `key` can name an input or output of a template.
fn is_interface_name(key: &str) -> bool {
    (1..=MAX_INTERFACE_NAME).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A client's text for an error message: at most 64 characters, control characters escaped.
/// `text` as a message quotes it: its first 64 characters, escaped where unprintable, and `…`
/// after them if there is more.
fn shortened(text: &str) -> String {
    let mut short: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().nth(64).is_some() {
        short.push('…');
    }
    short
}

/// Checks an input object against the declared fields, and writes its UUIDs in lowercase.
pub fn validate(fields: &[Field], input: &mut Map<String, Value>) -> Result<(), ApiError> {
    // serde_json's Map is ordered by key, so "first failure" is deterministic.
    if let Some(unknown) = input.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
        return Err(ApiError::BadRequest(format!(
            "Validation failed, because item '{}' is not in the list of allowed keys",
            shortened(unknown)
        )));
    }
    if let Some(missing) = fields
        .iter()
        .find(|f| f.required && !input.contains_key(f.name))
    {
        return Err(ApiError::BadRequest(format!(
            "Validation failed, because variable '{}' is required, but is not set.",
            missing.name
        )));
    }
    for (key, value) in input {
        let field = fields
            .iter()
            .find(|f| f.name == key)
            .expect("checked above");
        field.check(value)?;
        // UUIDs are case-insensitive; the server writes and stores them in lowercase.
        if let (
            Kind::Str {
                pattern: Some(Pattern::Uuid),
                ..
            },
            Value::String(uuid),
        ) = (field.kind, value)
        {
            uuid.make_ascii_lowercase();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[Field] = &[
        Field::string("id", Some(Pattern::Id), 4, 254),
        Field::int("page", 0, 10),
        Field::boolean("flag").optional(),
        Field::map("inputs").optional(),
    ];

    fn check(mut v: Value) -> Result<(), String> {
        validate(FIELDS, v.as_object_mut().unwrap()).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn uuids_are_lowercased() {
        const UUIDS: &[Field] = &[Field::uuid("uuid"), Field::string("name", None, 1, 64)];
        let mut input = json!({"uuid": "8A1B2C3D-0000-4000-8000-123456789ABC", "name": "ABC"});
        validate(UUIDS, input.as_object_mut().unwrap()).unwrap();
        assert_eq!(
            input,
            json!({"uuid": "8a1b2c3d-0000-4000-8000-123456789abc", "name": "ABC"})
        );
    }

    /// Unknown keys and map keys are quoted short: an answer does not repeat a key of a
    /// megabyte.
    #[test]
    fn long_keys_are_quoted_short() {
        let long = "k".repeat(100_000);
        let message = check(json!({ long.clone(): 1, "id": "abcd", "page": 1 })).unwrap_err();
        assert_eq!(
            message,
            format!(
                "Validation failed, because item '{}…' is not in the list of allowed keys",
                "k".repeat(64)
            )
        );
        let message = check(json!({"id": "abcd", "page": 1, "inputs": { long: 1 }})).unwrap_err();
        assert!(message.len() < 300, "{message}");
        assert!(
            message.contains(&format!("'{}…'", "k".repeat(64))),
            "{message}"
        );
        assert_eq!(
            check(json!({"idd": 1})).unwrap_err(),
            "Validation failed, because item 'idd' is not in the list of allowed keys"
        );
    }

    /// Limits count bytes; a message says so where that is not the number of characters.
    #[test]
    fn length_limits_name_their_unit() {
        const SECRET: &[Field] = &[Field::string("password", None, 8, 12)];
        let message = |secret: &str| {
            let mut input = json!({ "password": secret });
            validate(SECRET, input.as_object_mut().unwrap()).map_err(|e| e.message().to_owned())
        };
        assert!(message("äöüß").is_ok(), "eight bytes");
        assert_eq!(
            message("äöü").unwrap_err(),
            "Given item 'password' is shorter than 8 bytes (in UTF-8)"
        );
        assert_eq!(
            message("abcdefg").unwrap_err(),
            "Given item 'password' is shorter than 8 characters"
        );
        assert_eq!(
            message("abcdefghijkä").unwrap_err(),
            "Given item 'password' is longer than 12 bytes (in UTF-8)"
        );
    }

    #[test]
    fn accepts_valid_input() {
        check(json!({"id": "abcd", "page": 3})).unwrap();
        check(json!({"id": "abcd", "page": 0, "flag": true, "inputs": {}})).unwrap();
    }

    /// Integers beyond 64 bits are out of range, not of the wrong type; `-0` is 0, as in a
    /// query string.
    #[test]
    fn integers_of_any_size_are_integers() {
        let body = |text: &str| check(serde_json::from_str(text).unwrap());
        for big in ["9223372036854775808", "18446744073709551616", "1e30"] {
            let text = format!(r#"{{"id": "abcd", "page": {big}}}"#);
            assert_eq!(
                body(&text).unwrap_err(),
                "Given item 'page' is bigger than 10",
                "{big}"
            );
        }
        assert_eq!(
            body(r#"{"id": "abcd", "page": -99999999999999999999999}"#).unwrap_err(),
            "Given item 'page' is smaller than 0"
        );
        // As a query string leaves them: text.
        assert_eq!(
            body(r#"{"id": "abcd", "page": "99999999999999999999"}"#).unwrap_err(),
            "Given item 'page' is bigger than 10"
        );
        assert!(
            body(r#"{"id": "abcd", "page": "5"}"#)
                .unwrap_err()
                .contains("'page' has the wrong type: expected an integer")
        );
        body(r#"{"id": "abcd", "page": -0}"#).unwrap();
        assert!(
            body(r#"{"id": "abcd", "page": 2.5}"#)
                .unwrap_err()
                .contains("'page' has the wrong type: expected an integer")
        );
    }

    #[test]
    fn reports_each_problem() {
        let cases = [
            (
                json!({"id": "abcd", "page": 1, "x": 1}),
                "item 'x' is not in the list",
            ),
            (json!({"page": 1}), "variable 'id' is required"),
            (
                json!({"id": 5, "page": 1}),
                "'id' has the wrong type: expected a string",
            ),
            (
                json!({"id": "1abc", "page": 1}),
                "'id' doesn't match with regex",
            ),
            (
                json!({"id": "abc", "page": 1}),
                "'id' is shorter than 4 characters",
            ),
            (
                json!({"id": "a".repeat(255), "page": 1}),
                "'id' is longer than 254",
            ),
            (
                json!({"id": "abcd", "page": -1}),
                "'page' is smaller than 0",
            ),
            (
                json!({"id": "abcd", "page": 11}),
                "'page' is bigger than 10",
            ),
            (
                json!({"id": "abcd", "page": 1.5}),
                "'page' has the wrong type: expected an integer",
            ),
            (
                json!({"id": "abcd", "page": 1, "flag": "true"}),
                "'flag' has the wrong type",
            ),
            (
                json!({"id": "abcd", "page": 1, "inputs": []}),
                "'inputs' has the wrong type",
            ),
            (
                json!({"id": "abcd", "page": 1, "inputs": {"a": "x", "picture": 5}}),
                "item 'inputs' maps 'picture' to a value that is not a string",
            ),
            (
                json!({"id": "abcd", "page": 1, "inputs": {"": "x"}}),
                "item 'inputs' has the key '', which is no interface name",
            ),
            (
                json!({"id": "abcd", "page": 1, "inputs": {"a\nb": "x"}}),
                "item 'inputs' has the key 'a\\nb', which is no interface name",
            ),
            (
                json!({"id": "abcd", "page": 1, "inputs": {"b".repeat(100_000): "x"}}),
                &format!("item 'inputs' has the key '{}…', which", "b".repeat(64)),
            ),
        ];
        for (input, needle) in cases {
            let msg = check(input.clone()).unwrap_err();
            assert!(msg.contains(needle) && msg.len() < 400, "{input}: {msg}");
        }
    }
}
