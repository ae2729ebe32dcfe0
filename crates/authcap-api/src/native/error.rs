//! Every way the native API fails, as `application/problem+json` with a stable `code`.

use authcap_core::CoreError;
use authcap_store::{StoreError, StoredResponse, WriteError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::wire::{BodyError, JsonError};

#[derive(Debug)]
pub enum Problem {
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    InvalidJson(String),
    InvalidRequest(String),
    InvalidIdempotencyKey,
    OrderNotFound,
    EventNotFound,
    EndpointNotFound,
    ReferenceTaken,
    OperationReferenceTaken,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    Refused(CoreError),
    /// The card was declined or the processor failed; the order exists and rides along.
    AuthorizationFailed {
        code: &'static str,
        order: Value,
    },
    Unavailable,
    Overloaded,
    /// Too many failed authentications from this client lately.
    TooManyFailedAuthentications,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<&'a Value>,
}

impl Problem {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use Problem::*;
        match self {
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "send your secret key as `Authorization: Bearer sk_…`".into(),
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "no such endpoint".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this endpoint does not take that method".into(),
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "Body too large",
                format!(
                    "request bodies are limited to {} bytes",
                    crate::wire::BODY_BYTES_MAX
                ),
            ),
            InvalidJson(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "Malformed JSON",
                format!("the body is not valid JSON: {why}"),
            ),
            InvalidRequest(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                why.clone(),
            ),
            InvalidIdempotencyKey => (
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Invalid idempotency key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            ),
            OrderNotFound => (
                StatusCode::NOT_FOUND,
                "order_not_found",
                "Order not found",
                "no order with this id".into(),
            ),
            EventNotFound => (
                StatusCode::NOT_FOUND,
                "event_not_found",
                "Event not found",
                "no event with this id".into(),
            ),
            EndpointNotFound => (
                StatusCode::NOT_FOUND,
                "webhook_endpoint_not_found",
                "Webhook endpoint not found",
                "no webhook endpoint with this id".into(),
            ),
            ReferenceTaken => (
                StatusCode::CONFLICT,
                "reference_already_exists",
                "Reference already exists",
                "you already have an order with this reference".into(),
            ),
            OperationReferenceTaken => (
                StatusCode::CONFLICT,
                "reference_already_exists",
                "Reference already exists",
                "this order already has a capture or refund with this reference".into(),
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
                "this Idempotency-Key was used for a different request".into(),
            ),
            IdempotencyRequestInProgress => (
                StatusCode::CONFLICT,
                "idempotency_request_in_progress",
                "Request in progress",
                "a request with this Idempotency-Key is still running; retry shortly".into(),
            ),
            Refused(error) => (
                refusal_status(*error),
                error.code(),
                "Refused",
                error.to_string(),
            ),
            AuthorizationFailed { code, .. } => (
                StatusCode::PAYMENT_REQUIRED,
                code,
                "Authorization failed",
                match *code {
                    "processor_error" => "the processor failed to authorize the payment".into(),
                    _ => "the card was declined".into(),
                },
            ),
            TooManyFailedAuthentications => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_authentications",
                "Too many failed authentications",
                "too many failed authentications from this address lately; retry after `Retry-After`"
                    .into(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "the server is at capacity; nothing was written, retry after `Retry-After`".into(),
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
                "storage is unavailable; nothing was written, retry later".into(),
            ),
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        let (status, code, title, detail) = self.parts();
        let order = match self {
            Problem::AuthorizationFailed { order, .. } => Some(order),
            _ => None,
        };
        let body = Body {
            kind: format!("https://authcap.dev/errors/{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            order,
        };
        StoredResponse {
            status: status.as_u16(),
            content_type: "application/problem+json".into(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

/// The HTTP status of each refusal; no wildcard arm, so a new refusal must be placed here.
pub fn refusal_status(error: CoreError) -> StatusCode {
    match error {
        CoreError::AmountTooLarge
        | CoreError::ZeroAmount
        | CoreError::InvalidAmount { .. }
        | CoreError::CurrencyMismatch { .. } => StatusCode::BAD_REQUEST,
        CoreError::OperationReferenceTaken | CoreError::CaptureModeAutomatic => {
            StatusCode::CONFLICT
        }
        CoreError::OrderNotCapturable
        | CoreError::AuthorizationExpired
        | CoreError::OrderNotVoidable
        | CoreError::NothingCaptured
        | CoreError::OrderNotRefundable => StatusCode::CONFLICT,
        CoreError::AmountExceedsCapturable { .. }
        | CoreError::PartialCaptureUnsupported { .. }
        | CoreError::AmountExceedsRefundable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::CaptureDeclined => StatusCode::PAYMENT_REQUIRED,
    }
}

impl From<&WriteError> for Problem {
    fn from(error: &WriteError) -> Problem {
        match error {
            WriteError::OrderNotFound => Problem::OrderNotFound,
            WriteError::TextContainsNul => {
                Problem::InvalidRequest("text must not contain NUL characters".into())
            }
            WriteError::ReferenceTaken => Problem::ReferenceTaken,
            WriteError::Refused(CoreError::OperationReferenceTaken) => {
                Problem::OperationReferenceTaken
            }
            WriteError::Refused(CoreError::InvalidAmount { error, currency }) => {
                Problem::InvalidRequest(format!("`amount` is not an amount of {currency}: {error}"))
            }
            WriteError::Refused(error) => Problem::Refused(*error),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        match error {
            StoreError::IdempotencyKeyReused => Problem::IdempotencyKeyReused,
            StoreError::IdempotencyRequestInProgress => Problem::IdempotencyRequestInProgress,
            StoreError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                Problem::Unavailable
            }
            StoreError::Overloaded(why) => {
                tracing::warn!(%why, "overloaded");
                Problem::Overloaded
            }
        }
    }
}

impl From<BodyError> for Problem {
    fn from(error: BodyError) -> Problem {
        match error {
            BodyError::TooLarge => Problem::BodyTooLarge,
            BodyError::Unreadable => Problem::InvalidRequest("the body could not be read".into()),
        }
    }
}

impl From<JsonError> for Problem {
    fn from(error: JsonError) -> Problem {
        match error {
            JsonError::Syntax(why) => Problem::InvalidJson(why),
            JsonError::Shape(why) => Problem::InvalidRequest(why),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        crate::wire::stored_response(self.to_stored(), false)
    }
}
