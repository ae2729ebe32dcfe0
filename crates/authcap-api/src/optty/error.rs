//! Every way the Optty dialect fails, as the NestJS-style body of the Optty Merchant API:
//! `{"statusCode": 400, "message": "…", "error": "Bad Request"}`.
//!
//! The capture schema knows only 400, 401 and 404, so every refusal of the core (not
//! capturable, amount too high, partial capture unsupported, expired, …) is a 400 whose message
//! says exactly why.

use authcap_core::{Amount, AmountError, CoreError, Currency};
use authcap_store::{StoreError, StoredResponse, WriteError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::wire::stored_response;
use crate::wire::{BodyError, JsonError};

#[derive(Debug)]
pub enum OpttyError {
    /// A bearer token that is missing, malformed, expired, wrongly signed or of another scope.
    Unauthorized(&'static str),
    /// `/token` with a client id and secret that do not belong to one merchant.
    InvalidClient,
    /// No route for this method and path (NestJS: `Cannot GET /…`).
    RouteNotFound(String),
    /// No order with this reference — or another merchant's.
    OrderNotFound(String),
    BodyTooLarge,
    /// Any validation failure; the message names the field.
    Invalid(String),
    /// The merchant already has an order with this `orderReference`.
    OrderReferenceTaken,
    /// The order already has a capture or refund with this reference (made by another API).
    OperationReferenceTaken(&'static str),
    /// The reference was used before for a different request.
    ReferenceReused(&'static str),
    /// The first request with this reference is still running.
    InProgress(&'static str),
    /// The core refused; `amount_field` names the amount the request sent.
    Refused {
        error: CoreError,
        amount_field: &'static str,
    },
    Unavailable,
    Overloaded,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "statusCode")]
    status_code: u16,
    message: &'a str,
    error: &'a str,
}

fn major(amount: Amount, currency: Currency) -> String {
    format!("{} {}", currency.format_decimal(amount), currency.code())
}

/// The message of each refusal; no wildcard arm, so a new refusal must be worded here.
fn refusal_message(error: CoreError, amount_field: &str) -> String {
    match error {
        CoreError::AmountTooLarge => format!("`{amount_field}` is too large"),
        CoreError::InvalidAmount {
            error: AmountError::TooManyDecimals { allowed },
            currency,
        } => format!(
            "`{amount_field}` must have at most {allowed} decimal places in {}",
            currency.code()
        ),
        CoreError::InvalidAmount { error, currency } => {
            format!("`{amount_field}` is not an amount of {}: {error}", currency.code())
        }
        CoreError::CurrencyMismatch { currency } => format!(
            "`refundAmount.currency` must be the order's currency {}",
            currency.code()
        ),
        CoreError::OperationReferenceTaken => "the reference is already used".into(),
        CoreError::CaptureModeAutomatic => {
            "orders with automatic capture are captured when created".into()
        }
        CoreError::ZeroAmount => format!("`{amount_field}` must be greater than 0"),
        CoreError::OrderNotCapturable => {
            "the order cannot be captured: it has no authorized amount left (declined, voided or fully captured)".into()
        }
        CoreError::AuthorizationExpired => "the authorization of this order has expired".into(),
        CoreError::AmountExceedsCapturable {
            capturable,
            currency,
        } => format!(
            "`amount` exceeds the remaining authorized amount of {}: the sum of all captures and voids cannot exceed the order amount plus surcharge",
            major(capturable, currency)
        ),
        CoreError::PartialCaptureUnsupported {
            capturable,
            currency,
        } => format!(
            "the payment method does not support partial capture or void: `amount` must be the full remaining amount of {}",
            major(capturable, currency)
        ),
        CoreError::CaptureDeclined => "the payment provider declined the capture".into(),
        CoreError::OrderNotVoidable => {
            "the order cannot be voided: it has no uncaptured authorized amount".into()
        }
        CoreError::NothingCaptured | CoreError::OrderNotRefundable => {
            "the order has no captured amount left to refund".into()
        }
        CoreError::AmountExceedsRefundable {
            refundable,
            currency,
        } => format!(
            "`refundAmount.amount` exceeds the refundable amount of {}",
            major(refundable, currency)
        ),
    }
}

impl OpttyError {
    fn parts(&self) -> (StatusCode, String) {
        use OpttyError::*;
        match self {
            Unauthorized(why) => (StatusCode::UNAUTHORIZED, (*why).to_owned()),
            InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid client credentials: `client_id` and `client_secret` must belong to one merchant".into(),
            ),
            RouteNotFound(what) => (StatusCode::NOT_FOUND, what.clone()),
            OrderNotFound(reference) => (
                StatusCode::NOT_FOUND,
                format!("order with reference `{reference}` not found"),
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request entity too large: bodies are limited to {} bytes",
                    crate::wire::BODY_BYTES_MAX
                ),
            ),
            Invalid(why) => (StatusCode::BAD_REQUEST, why.clone()),
            OrderReferenceTaken => (
                StatusCode::BAD_REQUEST,
                "`orderReference` already exists: it must be unique per merchant".into(),
            ),
            OperationReferenceTaken(field) => (
                StatusCode::BAD_REQUEST,
                format!("`{field}` was already used on this order"),
            ),
            ReferenceReused(field) => (
                StatusCode::BAD_REQUEST,
                format!("`{field}` was already used for a different request"),
            ),
            InProgress(field) => (
                StatusCode::BAD_REQUEST,
                format!("a request with this `{field}` is still being processed; retry shortly"),
            ),
            Refused {
                error,
                amount_field,
            } => (StatusCode::BAD_REQUEST, refusal_message(*error, amount_field)),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is unavailable; nothing was written, retry later".into(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at capacity; nothing was written, retry after `Retry-After`".into(),
            ),
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        let (status, message) = self.parts();
        let body = Body {
            status_code: status.as_u16(),
            message: &message,
            error: status.canonical_reason().unwrap_or("Error"),
        };
        StoredResponse {
            status: status.as_u16(),
            content_type: "application/json; charset=utf-8".into(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    /// A refused write, in the words of the request that made it.
    pub fn from_write(error: &WriteError, context: &Context) -> OpttyError {
        match error {
            WriteError::OrderNotFound => OpttyError::OrderNotFound(context.order_reference.clone()),
            WriteError::TextContainsNul => {
                OpttyError::Invalid("text must not contain NUL characters".into())
            }
            WriteError::ReferenceTaken => OpttyError::OrderReferenceTaken,
            WriteError::Refused(CoreError::OperationReferenceTaken) => {
                OpttyError::OperationReferenceTaken(context.reference_field)
            }
            WriteError::Refused(error) => OpttyError::Refused {
                error: *error,
                amount_field: context.amount_field,
            },
        }
    }

    pub fn from_store(error: StoreError, reference_field: &'static str) -> OpttyError {
        match error {
            StoreError::IdempotencyKeyReused => OpttyError::ReferenceReused(reference_field),
            StoreError::IdempotencyRequestInProgress => OpttyError::InProgress(reference_field),
            StoreError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                OpttyError::Unavailable
            }
            StoreError::Overloaded(why) => {
                tracing::warn!(%why, "overloaded");
                OpttyError::Overloaded
            }
        }
    }
}

/// What a write's error message needs to know about the request.
#[derive(Clone, Debug)]
pub struct Context {
    pub order_reference: String,
    pub reference_field: &'static str,
    /// The request's amount field, named in refusals about it.
    pub amount_field: &'static str,
}

/// Reads only fail on storage.
impl From<StoreError> for OpttyError {
    fn from(error: StoreError) -> OpttyError {
        OpttyError::from_store(error, "reference")
    }
}

impl From<BodyError> for OpttyError {
    fn from(error: BodyError) -> OpttyError {
        match error {
            BodyError::TooLarge => OpttyError::BodyTooLarge,
            BodyError::Unreadable => OpttyError::Invalid("the body could not be read".into()),
        }
    }
}

impl From<JsonError> for OpttyError {
    fn from(error: JsonError) -> OpttyError {
        match error {
            JsonError::Syntax(why) => {
                OpttyError::Invalid(format!("the body is not valid JSON: {why}"))
            }
            JsonError::Shape(why) => OpttyError::Invalid(why),
        }
    }
}

impl IntoResponse for OpttyError {
    fn into_response(self) -> Response {
        stored_response(self.to_stored(), false)
    }
}
