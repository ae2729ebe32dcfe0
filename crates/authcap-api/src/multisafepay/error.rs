//! Every way the MultiSafepay dialect fails, in MultiSafepay's own error shape:
//! `{"success":false,"data":{},"error_code":<int>,"error_info":"…"}`.
//!
//! Codes follow MultiSafepay's error reference where it has one (1001 invalid amount, 1002
//! invalid currency, 1006 invalid order id, 1008 invalid description, 1010 invalid variable,
//! 1016 missing data, 1024 transaction declined, 1032 invalid API key, 1034 cannot refund);
//! where the documents are silent the choice is listed in the README.

use authcap_core::order::AuthorizationFailure;
use authcap_core::{CoreError, DeclineCode};
use authcap_store::{StoreError, StoredResponse, WriteError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::wire::stored_response;
use crate::wire::{BodyError, JsonError};

#[derive(Debug)]
pub enum MspError {
    /// Missing or unknown API key.
    InvalidApiKey,
    UnknownEndpoint,
    MethodNotAllowed,
    BodyTooLarge,
    /// Malformed JSON, wrong types, unknown fields, over-long text, bad enum values.
    InvalidRequest(String),
    /// A required field is absent.
    MissingData(String),
    InvalidAmount(String),
    InvalidCurrency(String),
    InvalidDescription(String),
    InvalidVariable(String),
    OrderNotFound,
    /// The merchant already has an order with this `order_id`.
    OrderIdTaken,
    /// The `new_order_id` of a capture is already used.
    NewOrderIdTaken,
    /// An `Idempotency-Key` header reused for a different request.
    IdempotencyKeyReused,
    /// The same create, capture or idempotency key is still being processed.
    RequestInProgress,
    Refused(CoreError),
    /// The order was created but not authorized.
    AuthorizationFailed(AuthorizationFailure),
    Unavailable,
    Overloaded,
}

#[derive(Serialize)]
struct Body<'a> {
    success: bool,
    data: serde_json::Map<String, serde_json::Value>,
    error_code: u32,
    error_info: &'a str,
}

impl MspError {
    /// HTTP status, MultiSafepay error code and error text. No wildcard arms: a new error
    /// anywhere in the core or the store fails to compile until it is placed here.
    pub fn parts(&self) -> (StatusCode, u32, String) {
        use MspError::*;
        match self {
            InvalidApiKey => (StatusCode::UNAUTHORIZED, 1032, "Invalid API key".into()),
            UnknownEndpoint => (StatusCode::NOT_FOUND, 1000, "Unknown endpoint".into()),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                1000,
                "Method not allowed on this endpoint".into(),
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                1000,
                format!(
                    "Request body too large: the limit is {} bytes",
                    crate::wire::BODY_BYTES_MAX
                ),
            ),
            InvalidRequest(why) => (StatusCode::BAD_REQUEST, 1000, format!("Invalid request: {why}")),
            MissingData(why) => (StatusCode::BAD_REQUEST, 1016, format!("Missing data: {why}")),
            InvalidAmount(why) => (StatusCode::BAD_REQUEST, 1001, format!("Invalid amount: {why}")),
            InvalidCurrency(why) => (
                StatusCode::BAD_REQUEST,
                1002,
                format!("Invalid currency: {why}"),
            ),
            InvalidDescription(why) => (
                StatusCode::BAD_REQUEST,
                1008,
                format!("Invalid description: {why}"),
            ),
            InvalidVariable(why) => (
                StatusCode::BAD_REQUEST,
                1010,
                format!("Invalid variable: {why}"),
            ),
            OrderNotFound => (StatusCode::NOT_FOUND, 1006, "Invalid transaction ID".into()),
            OrderIdTaken => (
                StatusCode::CONFLICT,
                1006,
                "Invalid order ID: an order with this order_id already exists".into(),
            ),
            NewOrderIdTaken => (
                StatusCode::CONFLICT,
                1006,
                "Invalid order ID: this new_order_id is already used".into(),
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                1000,
                "Invalid request: this Idempotency-Key was used for a different request".into(),
            ),
            RequestInProgress => (
                StatusCode::CONFLICT,
                1022,
                "Cannot initiate transaction: the same request is still being processed; retry shortly"
                    .into(),
            ),
            Refused(error) => refusal(*error),
            AuthorizationFailed(failure) => match failure {
                AuthorizationFailure::Declined(DeclineCode::CardDeclined) => (
                    StatusCode::PAYMENT_REQUIRED,
                    1024,
                    "Transaction declined".into(),
                ),
                AuthorizationFailure::Declined(DeclineCode::InsufficientFunds) => (
                    StatusCode::PAYMENT_REQUIRED,
                    1017,
                    "Insufficient funds".into(),
                ),
                AuthorizationFailure::ProcessorError => (
                    StatusCode::PAYMENT_REQUIRED,
                    1021,
                    "Cannot create transaction: the processor failed".into(),
                ),
            },
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                9999,
                "Unknown error: storage is unavailable; nothing was written, retry later".into(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                9999,
                "Unknown error: the server is at capacity; nothing was written, retry after `Retry-After`".into(),
            ),
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        let (status, error_code, error_info) = self.parts();
        let body = Body {
            success: false,
            data: serde_json::Map::new(),
            error_code,
            error_info: &error_info,
        };
        StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

fn refusal(error: CoreError) -> (StatusCode, u32, String) {
    let text = error.to_string();
    match error {
        CoreError::AmountTooLarge | CoreError::ZeroAmount | CoreError::InvalidAmount { .. } => (
            StatusCode::BAD_REQUEST,
            1001,
            format!("Invalid amount: {text}"),
        ),
        CoreError::AmountExceedsCapturable { .. } | CoreError::PartialCaptureUnsupported { .. } => {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                1001,
                format!("Invalid amount: {text}"),
            )
        }
        CoreError::OrderNotCapturable
        | CoreError::AuthorizationExpired
        | CoreError::OrderNotVoidable
        | CoreError::OperationReferenceTaken
        | CoreError::CaptureModeAutomatic => (
            StatusCode::CONFLICT,
            1022,
            format!("Cannot initiate transaction: {text}"),
        ),
        CoreError::CaptureDeclined => (
            StatusCode::PAYMENT_REQUIRED,
            1024,
            format!("Transaction declined: {text}"),
        ),
        CoreError::NothingCaptured | CoreError::OrderNotRefundable => (
            StatusCode::CONFLICT,
            1034,
            format!("Cannot refund transaction: {text}"),
        ),
        CoreError::CurrencyMismatch { currency } => (
            StatusCode::BAD_REQUEST,
            1002,
            format!(
                "Invalid currency: `currency` must be the order's currency, {}",
                currency.code()
            ),
        ),
        CoreError::AmountExceedsRefundable { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            1034,
            format!("Cannot refund transaction: {text}"),
        ),
    }
}

impl From<&WriteError> for MspError {
    fn from(error: &WriteError) -> MspError {
        match error {
            WriteError::OrderNotFound => MspError::OrderNotFound,
            WriteError::TextContainsNul => {
                MspError::InvalidRequest("text must not contain NUL characters".into())
            }
            WriteError::ReferenceTaken => MspError::OrderIdTaken,
            WriteError::Refused(CoreError::OperationReferenceTaken) => MspError::NewOrderIdTaken,
            WriteError::Refused(error) => MspError::Refused(*error),
        }
    }
}

impl From<StoreError> for MspError {
    fn from(error: StoreError) -> MspError {
        match error {
            StoreError::IdempotencyKeyReused => MspError::IdempotencyKeyReused,
            StoreError::IdempotencyRequestInProgress => MspError::RequestInProgress,
            StoreError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                MspError::Unavailable
            }
            StoreError::Overloaded(why) => {
                tracing::warn!(%why, "overloaded");
                MspError::Overloaded
            }
        }
    }
}

impl From<BodyError> for MspError {
    fn from(error: BodyError) -> MspError {
        match error {
            BodyError::TooLarge => MspError::BodyTooLarge,
            BodyError::Unreadable => MspError::InvalidRequest("the body could not be read".into()),
        }
    }
}

impl From<JsonError> for MspError {
    fn from(error: JsonError) -> MspError {
        match error {
            JsonError::Syntax(why) => MspError::InvalidRequest(format!("malformed JSON: {why}")),
            JsonError::Shape(why) => MspError::InvalidRequest(why),
        }
    }
}

impl IntoResponse for MspError {
    fn into_response(self) -> Response {
        stored_response(self.to_stored(), false)
    }
}
