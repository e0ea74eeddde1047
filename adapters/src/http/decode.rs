//! The second decoding step: from a parsed JSON value to validated fields, each failure an
//! [`AdapterError::InvalidData`] that names the field and what was expected, never the value it held.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{AdapterError, AdapterResult};
use crate::ids::{Bin, Iin};

/// The JSON type of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Control characters (C0, DEL, C1) and the Unicode bidirectional formatting characters: the Arabic letter
/// mark, the left-to-right and right-to-left marks, embeddings and overrides (U+202A–U+202E), and isolates
/// (U+2066–U+2069).
fn is_forbidden_in_name(c: char) -> bool {
    crate::ids::is_forbidden_in_name(c)
}

/// One JSON object being decoded, with the words to name it in errors (`"person"`, `"permits[2]"`).
pub(crate) struct Doc<'a> {
    system: &'static str,
    what: String,
    object: &'a Map<String, Value>,
}

impl<'a> Doc<'a> {
    /// The value as an object, or invalid data.
    pub(crate) fn new(
        system: &'static str,
        what: impl Into<String>,
        value: &'a Value,
    ) -> AdapterResult<Self> {
        let what = what.into();
        match value {
            Value::Object(object) => Ok(Self {
                system,
                what,
                object,
            }),
            other => Err(AdapterError::InvalidData {
                system,
                detail: format!("{what}: expected an object, got {}", kind(other)),
            }),
        }
    }

    /// An invalid-data error about this object.
    pub(crate) fn invalid(&self, detail: impl std::fmt::Display) -> AdapterError {
        AdapterError::InvalidData {
            system: self.system,
            detail: format!("{}: {detail}", self.what),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> AdapterError {
        self.invalid(format_args!(
            "field `{key}` must be {expected}, got {}",
            kind(got)
        ))
    }

    /// The field, which must be present (it may be null).
    pub(crate) fn field(&self, key: &str) -> AdapterResult<&'a Value> {
        self.object
            .get(key)
            .ok_or_else(|| self.invalid(format_args!("missing field `{key}`")))
    }

    /// The field if present and not null.
    pub(crate) fn optional(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// A string field.
    pub(crate) fn str(&self, key: &str) -> AdapterResult<&'a str> {
        match self.field(key)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A string field, owned.
    pub(crate) fn string(&self, key: &str) -> AdapterResult<String> {
        self.str(key).map(str::to_owned)
    }

    /// A field kept raw for the caller to judge: a string as it is, any other JSON value as its JSON text
    /// (a number as its decimal digits). Only a missing field is an error. Used where one bad value must
    /// fail only the record it belongs to (a rename's BIN), not the whole page.
    pub(crate) fn raw_text(&self, key: &str) -> AdapterResult<String> {
        Ok(match self.field(key)? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A name field (of a person, an organisation, a permit's holder): a string that is not blank and holds
    /// no control character (NUL, escape sequences, line breaks) and no bidirectional formatting character
    /// (overrides, embeddings, isolates, marks). Names travel into permits, SDU and operator screens, where
    /// such characters would forge or hide text.
    pub(crate) fn name(&self, key: &str) -> AdapterResult<String> {
        let name = self.str(key)?;
        if name.trim().is_empty() {
            return Err(self.invalid(format_args!("field `{key}` is blank")));
        }
        if let Some(bad) = name.chars().find(|c| is_forbidden_in_name(*c)) {
            let what = if bad.is_control() {
                "a control character"
            } else {
                "a bidirectional formatting character"
            };
            return Err(self.invalid(format_args!(
                "field `{key}` contains {what} (U+{:04X})",
                u32::from(bad)
            )));
        }
        Ok(name.to_owned())
    }

    /// A boolean field.
    pub(crate) fn bool(&self, key: &str) -> AdapterResult<bool> {
        match self.field(key)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong_type(key, "a boolean", other)),
        }
    }

    /// An RFC 3339 time field.
    pub(crate) fn time(&self, key: &str) -> AdapterResult<DateTime<Utc>> {
        let raw = self.str(key)?;
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.invalid(format_args!("field `{key}` is not an RFC 3339 time")))
    }

    /// An array field.
    pub(crate) fn array(&self, key: &str) -> AdapterResult<&'a [Value]> {
        match self.field(key)? {
            Value::Array(items) => Ok(items),
            other => Err(self.wrong_type(key, "an array", other)),
        }
    }

    /// A string field that must be one of `allowed`; returns its index in `allowed`.
    pub(crate) fn one_of(&self, key: &str, allowed: &[&str]) -> AdapterResult<usize> {
        let raw = self.str(key)?;
        allowed.iter().position(|a| *a == raw).ok_or_else(|| {
            self.invalid(format_args!(
                "field `{key}` must be one of {}",
                allowed.join(", ")
            ))
        })
    }

    /// A BIN field: a string with a valid control digit.
    pub(crate) fn bin(&self, key: &str) -> AdapterResult<Bin> {
        Bin::parse(self.str(key)?)
            .map_err(|e| self.invalid(format_args!("field `{key}` is not a valid BIN: {e}")))
    }

    /// An IIN field: a string with a valid control digit.
    pub(crate) fn iin(&self, key: &str) -> AdapterResult<Iin> {
        Iin::parse(self.str(key)?)
            .map_err(|e| self.invalid(format_args!("field `{key}` is not a valid IIN: {e}")))
    }

    /// An optional KATO or OKED field: absent or null is `None`; anything else must be a string `parse`
    /// accepts, or the record is invalid data.
    pub(crate) fn optional_dim<T, E: std::fmt::Display>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> AdapterResult<Option<T>> {
        match self.optional(key) {
            None => Ok(None),
            Some(_) => {
                let raw = self.str(key)?;
                parse(raw)
                    .map(Some)
                    .map_err(|e| self.invalid(format_args!("field `{key}` {e}")))
            }
        }
    }

    /// An IIN field that may be null or absent.
    /// An optional field kept raw (as [`Doc::raw_text`]); absent or `null` is `None`.
    pub(crate) fn optional_raw(&self, key: &str) -> Option<String> {
        self.optional(key).map(|value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A BIN field that must be the one asked for: a registry answering about another organisation is
    /// wrong data.
    pub(crate) fn expect_bin(&self, key: &str, asked: &Bin) -> AdapterResult<Bin> {
        let bin = self.bin(key)?;
        if &bin != asked {
            return Err(self.invalid(format_args!(
                "field `{key}` names another organisation than the one asked for"
            )));
        }
        Ok(bin)
    }

    /// An IIN field that must be the one asked for.
    pub(crate) fn expect_iin(&self, key: &str, asked: &Iin) -> AdapterResult<Iin> {
        let iin = self.iin(key)?;
        if &iin != asked {
            return Err(self.invalid(format_args!(
                "field `{key}` names another person than the one asked for"
            )));
        }
        Ok(iin)
    }

    /// An IIN field that, when present, must be the one asked for. Used where the wire API echoes the IIN
    /// but the result does not carry it.
    pub(crate) fn check_echoed_iin(&self, key: &str, asked: &Iin) -> AdapterResult<()> {
        if self.object.contains_key(key) {
            self.expect_iin(key, asked)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_name_the_field_but_not_the_value() {
        let value = json!({"iin": "790415307771", "deceased": "790415307770"});
        let doc = Doc::new("civil_registry", "record", &value).unwrap();
        let err = doc.iin("iin").unwrap_err().to_string();
        assert!(
            err.contains("`iin`") && err.contains("control digit"),
            "{err}"
        );
        assert!(!err.contains("79041530777"), "{err}");
        let err = doc.bool("deceased").unwrap_err().to_string();
        assert!(err.contains("must be a boolean, got a string"), "{err}");
        assert!(!err.contains("79041530777"), "{err}");
        let err = doc.bool("declared_dead").unwrap_err().to_string();
        assert!(err.contains("missing field `declared_dead`"), "{err}");
    }

    #[test]
    fn raw_text_keeps_strings_and_spells_out_other_values() {
        let value = json!({"s": "0707", "n": 70740739532u64, "x": null});
        let doc = Doc::new("legal_entities", "rename", &value).unwrap();
        assert_eq!(doc.raw_text("s").unwrap(), "0707");
        assert_eq!(doc.raw_text("n").unwrap(), "70740739532");
        assert_eq!(doc.raw_text("x").unwrap(), "null");
        assert!(doc.raw_text("missing").is_err());
    }

    #[test]
    fn names_with_control_or_bidi_characters_are_refused() {
        let value = json!({
            "ok": "ТОО «Жаңа Технологиялар» (Астана) — O'Brien & Co.",
            "esc": "Серік \u{1b}[31mАхметов",
            "crlf": "ТОО\r\nX-Injected: 1",
            "rlo": "ТОО \u{202E}вокемхА",
            "isolate": "ТОО \u{2067}x\u{2069}",
            "blank": "  ",
        });
        let doc = Doc::new("legal_entities", "organization", &value).unwrap();
        assert!(doc.name("ok").is_ok());
        for key in ["esc", "crlf", "rlo", "isolate", "blank"] {
            let err = doc.name(key).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
        assert!(
            doc.name("esc")
                .unwrap_err()
                .to_string()
                .contains("control character (U+001B)")
        );
        assert!(
            doc.name("rlo")
                .unwrap_err()
                .to_string()
                .contains("bidirectional")
        );
    }

    #[test]
    fn an_optional_raw_field_may_be_null_or_absent_and_keeps_a_number_as_text() {
        let value = json!({"a": null, "c": 850214300013_u64, "d": "x"});
        let doc = Doc::new("legal_entities", "organization", &value).unwrap();
        assert_eq!(doc.optional_raw("a"), None);
        assert_eq!(doc.optional_raw("b"), None);
        assert_eq!(doc.optional_raw("c").as_deref(), Some("850214300013"));
        assert_eq!(doc.optional_raw("d").as_deref(), Some("x"));
    }
}
