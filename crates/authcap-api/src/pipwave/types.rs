//! Pipwave's wire: a flat map of fields (form data or a JSON object) kept as the exact text
//! received, the sha1 signature over them, and the JSON response bodies.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha1::{Digest, Sha1};

/// The request's fields, each value as the exact text received (a JSON number keeps its
/// literal, so `10.50` signs as `10.50`, never through a float).
#[derive(Debug, Default)]
pub struct Fields(BTreeMap<String, String>);

/// Why a body could not become fields.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldsError {
    /// Neither a JSON object nor form data.
    Syntax(String),
    /// The same field twice.
    Duplicate(String),
    /// A JSON value that is not a string or a number (object, array, boolean, null).
    NotScalar(String),
}

impl Fields {
    /// JSON when the first non-space byte is `{` (whatever the content type says: Pipwave's own
    /// client code posts JSON labelled as a form), form data otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Fields, FieldsError> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Fields::from_json(bytes),
            _ => Fields::from_form(bytes),
        }
    }

    fn from_json(bytes: &[u8]) -> Result<Fields, FieldsError> {
        let entries: Entries = serde_json::from_slice(bytes)
            .map_err(|error| FieldsError::Syntax(format!("the body is not valid JSON: {error}")))?;
        let mut fields = BTreeMap::new();
        for (key, raw) in entries.0 {
            let text = raw.get();
            let value = if text.starts_with('"') {
                serde_json::from_str::<String>(text)
                    .map_err(|e| FieldsError::Syntax(e.to_string()))?
            } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                text.to_owned()
            } else {
                return Err(FieldsError::NotScalar(key));
            };
            if fields.insert(key.clone(), value).is_some() {
                return Err(FieldsError::Duplicate(key));
            }
        }
        Ok(Fields(fields))
    }

    fn from_form(bytes: &[u8]) -> Result<Fields, FieldsError> {
        let mut fields = BTreeMap::new();
        for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let key = form_decode(key)?;
            if key.is_empty() {
                return Err(FieldsError::Syntax("a form field has no name".into()));
            }
            let value = form_decode(value)?;
            if fields.insert(key.clone(), value).is_some() {
                return Err(FieldsError::Duplicate(key));
            }
        }
        Ok(Fields(fields))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A field that is present and not empty (an empty value counts as not sent, though it is
    /// still signed as received).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The fields named in `signed` that are present, sorted by key.
    pub fn signed<'a>(&'a self, signed: &[&str]) -> Vec<(&'a str, &'a str)> {
        self.0
            .iter()
            .filter(|(k, _)| signed.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; the result must
/// be UTF-8. Strict: a malformed escape is an error, never guessed.
fn form_decode(text: &[u8]) -> Result<String, FieldsError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        FieldsError::Syntax("the body is neither JSON nor valid form data".into())
                    })?;
                out.push(hex);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| FieldsError::Syntax("form data must be UTF-8 once decoded".into()))
}

/// A JSON object's entries in order, duplicates kept (so that they can be refused).
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The text Pipwave signs: the pairs plus `api_secret`, sorted by key (PHP `ksort`), each as
/// `key:value`, with no separator between pairs.
pub fn signing_string(pairs: &[(&str, &str)], api_secret: &str) -> String {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("api_secret", api_secret));
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (key, value) in all {
        text.push_str(key);
        text.push(':');
        text.push_str(value);
    }
    text
}

/// `sha1(signing_string)` as 40 lowercase hex characters.
pub fn signature(pairs: &[(&str, &str)], api_secret: &str) -> String {
    hex::encode(Sha1::digest(signing_string(pairs, api_secret).as_bytes()))
}

/// Every answer: `status` is Pipwave's API status code as a JSON integer.
#[derive(Serialize)]
pub struct StatusBody<'a> {
    pub status: u16,
    pub message: &'a str,
}

#[derive(Serialize)]
pub struct CaptureBody {
    pub status: u16,
    pub message: &'static str,
    pub pw_id: String,
    pub txn_id: String,
    pub capture_id: String,
    pub capture_amount: String,
    pub currency_code: &'static str,
    /// True when a partial `capture_amount` was turned into a full capture because the
    /// payment method cannot capture partially.
    pub full_capture_fallback: bool,
    pub transaction_status: u8,
    pub require_capture: bool,
}

#[derive(Serialize)]
pub struct RequeryBody {
    pub status: u16,
    pub message: &'static str,
    pub api_key: String,
    pub pw_id: String,
    pub txn_id: String,
    pub amount: String,
    pub processing_fee_amount: String,
    pub total_amount: String,
    pub final_amount: String,
    pub captured_amount: String,
    pub capturable_amount: String,
    pub refunded_amount: String,
    pub currency_code: &'static str,
    pub transaction_status: u8,
    pub require_capture: bool,
    pub reversible_payment: bool,
    pub payment_method_code: &'static str,
    pub payment_method_title: String,
}

#[derive(Serialize)]
pub struct CancelBody {
    pub status: u16,
    pub message: &'static str,
    pub pw_id: String,
    pub txn_id: String,
    pub transaction_status: u8,
}

#[derive(Serialize)]
pub struct RefundInitiateBody {
    pub status: u16,
    pub message: &'static str,
    pub pw_id: String,
    pub txn_id: String,
    pub supports_refund: bool,
    pub supports_partial_refund: bool,
    pub refundable_amount: String,
    pub currency_code: &'static str,
    pub extra_params: Vec<String>,
}

#[derive(Serialize)]
pub struct RefundBody {
    pub status: u16,
    pub message: &'static str,
    pub pw_id: String,
    pub txn_id: String,
    pub reverse_pw_id: String,
    pub refund_amount: String,
    pub currency_code: &'static str,
    /// Pipwave's refund status: 10 successful.
    pub refund_status: u8,
    pub transaction_status: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_byte_for_byte() {
        let pairs = [
            ("timestamp", "1700000000"),
            ("action", "capture-payment"),
            ("api_key", "KEY123"),
            ("pw_id", "PW0001"),
            ("capture_amount", "10.00"),
        ];
        assert_eq!(
            signing_string(&pairs, "SECRET456"),
            "action:capture-paymentapi_key:KEY123api_secret:SECRET456capture_amount:10.00\
             pw_id:PW0001timestamp:1700000000"
        );
        assert_eq!(
            signature(&pairs, "SECRET456"),
            "c9192da595b7495e87b49b57581d12206a2d13bb"
        );
    }

    #[test]
    fn json_numbers_keep_their_literal_and_strings_decode() {
        let fields = Fields::parse(
            br#" {"capture_amount": 10.50, "timestamp": 1700000000, "a": "x\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(fields.get("capture_amount"), Some("10.50"));
        assert_eq!(fields.get("timestamp"), Some("1700000000"));
        assert_eq!(fields.get("a"), Some("xé"));
    }

    #[test]
    fn json_refusals() {
        assert_eq!(
            Fields::parse(br#"{"a": "1", "a": "2"}"#).unwrap_err(),
            FieldsError::Duplicate("a".into())
        );
        assert_eq!(
            Fields::parse(br#"{"a": true}"#).unwrap_err(),
            FieldsError::NotScalar("a".into())
        );
        assert_eq!(
            Fields::parse(br#"{"a": null}"#).unwrap_err(),
            FieldsError::NotScalar("a".into())
        );
        assert!(matches!(
            Fields::parse(br#"{"a": "1""#).unwrap_err(),
            FieldsError::Syntax(_)
        ));
    }

    #[test]
    fn form_decoding() {
        let fields = Fields::parse(b"a=1+2%2B3&b=&c&d=%C3%A9&&").unwrap();
        assert_eq!(fields.get("a"), Some("1 2+3"));
        assert_eq!(fields.get("b"), Some(""));
        assert_eq!(fields.get("c"), Some(""));
        assert_eq!(fields.get("d"), Some("é"));
        assert!(matches!(
            Fields::parse(b"a=%zz").unwrap_err(),
            FieldsError::Syntax(_)
        ));
        assert!(matches!(
            Fields::parse(b"a=%C3").unwrap_err(),
            FieldsError::Syntax(_)
        ));
        assert_eq!(
            Fields::parse(b"a=1&a=2").unwrap_err(),
            FieldsError::Duplicate("a".into())
        );
        assert!(Fields::parse(b"").unwrap().keys().next().is_none());
    }
}
