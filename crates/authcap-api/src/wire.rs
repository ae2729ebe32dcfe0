//! What every dialect needs at the edge: bounded bodies, exact amounts, ids, fingerprints, time.

use std::time::{SystemTime, UNIX_EPOCH};

use authcap_core::{Amount, AmountError, Currency, Timestamp};
use axum::body::{Body, Bytes};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The largest request body any endpoint reads.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

pub fn rfc3339(at: Timestamp) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(at.millis().max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

pub async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|error| {
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                if cause.is::<http_body_util::LengthLimitError>() {
                    return BodyError::TooLarge;
                }
                source = cause.source();
            }
            BodyError::Unreadable
        })
}

/// A JSON body that could not become the expected request.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all (syntax, truncation, bad UTF-8).
    Syntax(String),
    /// JSON of the wrong shape: wrong types, missing or unknown fields.
    Shape(String),
}

impl JsonError {
    pub fn message(&self) -> &str {
        match self {
            JsonError::Syntax(m) | JsonError::Shape(m) => m,
        }
    }
}

/// Parses JSON, naming the offending field in the error (`payment_method.number: …`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = parsed.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = match path.as_str() {
            "." | "" => inner.to_string(),
            _ => format!("`{path}`: {inner}"),
        };
        match inner.classify() {
            serde_json::error::Category::Data => JsonError::Shape(message),
            _ => JsonError::Syntax(message),
        }
    })?;
    deserializer
        .end()
        .map_err(|error| JsonError::Syntax(error.to_string()))?;
    Ok(value)
}

/// The text of a JSON number or string, kept verbatim so amounts never pass through a float.
pub fn raw_number_text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_owned())
    } else {
        None
    }
}

/// An integer amount in minor units from a JSON number's literal text ("1050"; not "10.5").
pub fn parse_minor_units(raw: &RawValue) -> Result<Amount, AmountError> {
    let text = raw.get();
    if text.starts_with('"') {
        return Err(AmountError::NotANumber);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if text.contains(['.', 'e', 'E']) {
            AmountError::TooManyDecimals { allowed: 0 }
        } else {
            AmountError::NotANumber
        });
    }
    if text.starts_with('-') && digits.bytes().any(|b| b != b'0') {
        return Err(AmountError::Negative);
    }
    authcap_core::money::parse_decimal(digits, 0)
}

/// A decimal amount in major units ("10.50" or 10.5) for `currency`.
pub fn parse_major_units(raw: &RawValue, currency: Currency) -> Result<Amount, AmountError> {
    let text = raw_number_text(raw).ok_or(AmountError::NotANumber)?;
    currency.parse_decimal(&text)
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by 128 random bits in base62: unguessable and URL-safe.
pub fn new_id(prefix: &str) -> String {
    let mut value: u128 = rand::rng().random();
    let mut id = String::with_capacity(prefix.len() + 22);
    id.push_str(prefix);
    for _ in 0..22 {
        id.push(BASE62[(value % 62) as usize] as char);
        value /= 62;
    }
    id
}

/// Random text of `len` characters drawn from `alphabet`.
pub fn random_text(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Checks a free-text field's length in characters.
pub fn check_len(value: &str, min: usize, max: usize) -> bool {
    let chars = value.chars().count();
    (min..=max).contains(&chars)
}
