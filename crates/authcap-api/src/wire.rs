//! What every dialect needs at the edge: bounded bodies, exact amounts, ids, fingerprints, time.

use std::time::UNIX_EPOCH;

use authcap_core::{Amount, AmountError, Currency, Timestamp};
use authcap_store::StoredResponse;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The largest request body any endpoint reads.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// How long a client may take to send its body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn rfc3339(at: Timestamp) -> String {
    // humantime formats years up to 9999 only.
    const LAST_MILLIS: i64 = 253_402_300_799_999;
    let millis = at.millis().clamp(0, LAST_MILLIS) as u64;
    let time = UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

pub async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    // A declared Content-Length over the limit is refused at once, unread.
    if axum::body::HttpBody::size_hint(&body).lower() > BODY_BYTES_MAX as u64 {
        return Err(BodyError::TooLarge);
    }
    let read = axum::body::to_bytes(body, BODY_BYTES_MAX);
    let Ok(read) = tokio::time::timeout(BODY_READ_TIMEOUT, read).await else {
        return Err(BodyError::Unreadable);
    };
    read.map_err(|error| {
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
        let what = without_values(&inner.to_string());
        let message = match path.as_str() {
            "." | "" => what,
            _ => mask_long_numbers(&format!("`{path}`: {what}")),
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

/// A serde message without the value it complains about: `invalid type: integer
/// `4111111111111111`, expected a string` becomes `invalid type: integer, expected a string`.
/// A client may send a card number or CVC in any field, of any type; no answer, stored
/// response or log line repeats it.
pub fn without_values(message: &str) -> String {
    let mut out = message.to_owned();
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(start) = out.find(prefix).map(|at| at + prefix.len()) else {
            continue;
        };
        let end = out[start..]
            .find(", expected")
            .map_or(out.len(), |at| start + at);
        let kind_end = out[start..end]
            .find(['`', '"', '\''])
            .map_or(end, |at| start + at);
        let kind = out[start..kind_end].trim_end().to_owned();
        out.replace_range(start..end, &kind);
    }
    mask_long_numbers(&out)
}

/// Masks every run of 12 or more digits (a card number's shortest length), wherever it stands
/// (an unknown field's name, say).
fn mask_long_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 12 {
            out.push('…');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
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

pub use authcap_store::new_id;

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

/// Identifies a request for its idempotency claim by method, path and body, where a JSON body
/// counts by what it says, not how it is written: key order and whitespace do not matter,
/// and numbers keep their literal text (no float ever decides whether two amounts are equal).
pub fn fingerprint(method: &axum::http::Method, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<Box<RawValue>>(body)
        .ok()
        .and_then(|raw| canonical_json(&raw));
    let body = canonical.as_ref().map_or(body, |text| text.as_bytes());
    sha256_hex(&[method.as_str().as_bytes(), path.as_bytes(), body])
}

fn canonical_json(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    let canonical = match text.as_bytes().first()? {
        b'{' => {
            let fields: std::collections::BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(text).ok()?;
            let mut out = String::from("{");
            for (index, (name, value)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).ok()?);
                out.push(':');
                out.push_str(&canonical_json(value)?);
            }
            out.push('}');
            out
        }
        b'[' => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            let items = items
                .iter()
                .map(|item| canonical_json(item))
                .collect::<Option<Vec<_>>>()?;
            format!("[{}]", items.join(","))
        }
        b'"' => serde_json::to_string(&serde_json::from_str::<String>(text).ok()?).ok()?,
        _ => text.to_owned(),
    };
    Some(canonical)
}

/// Checks a free-text field's length in characters.
pub fn check_len(value: &str, min: usize, max: usize) -> bool {
    let chars = value.chars().count();
    (min..=max).contains(&chars)
}

/// The HTTP response for stored bytes; a replay says so in `Idempotent-Replayed: true`.
pub fn stored_response(stored: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = stored.content_type.parse() {
        headers.insert(axum::http::header::CONTENT_TYPE, value);
    }
    if replayed {
        headers.insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

/// The one parameter of a route's path, percent-decoded. A segment that does not decode to
/// UTF-8 is kept as sent: it names no order, so the dialect answers "not found" in its own
/// shape instead of axum's plain-text rejection.
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<PathParam, Self::Rejection> {
        use axum::extract::{Path, RawPathParams};
        if let Ok(Path(value)) = Path::<String>::from_request_parts(parts, state).await {
            return Ok(PathParam(value));
        }
        let raw = RawPathParams::from_request_parts(parts, state).await.ok();
        let value = raw
            .and_then(|params| params.iter().next().map(|(_, value)| value.to_owned()))
            .unwrap_or_default();
        Ok(PathParam(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_repeat_the_value() {
        for (message, expected) in [
            (
                "invalid type: integer `4111111111111111`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "invalid type: string \"123\", expected u32",
                "invalid type: string, expected u32",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer, expected u32",
            ),
            (
                "unknown field `4111111111111111`, expected `amount`",
                "unknown field `…`, expected `amount`",
            ),
            ("missing field `amount`", "missing field `amount`"),
        ] {
            assert_eq!(without_values(message), expected);
        }
    }
}
