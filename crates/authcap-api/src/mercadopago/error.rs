//! Every way the Mercado Pago dialect fails, in Mercado Pago's shape:
//! `{"errors":[{"code","message","details"}],"message","error","status","cause"}` — `errors` as
//! Mercado Pago sends it, `message`/`error`/`cause` because that is what both SDKs read.

use authcap_core::CoreError;
use authcap_store::{StoreError, StoredResponse, WriteError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::wire::stored_response;
use crate::wire::{BodyError, JsonError};

/// Which write a refusal comes from: the same core refusal reads differently per endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Capture,
    Cancel,
    Refund,
}

#[derive(Debug)]
pub enum MpError {
    EmptyRequiredHeader,
    InvalidIdempotencyKeyLength,
    InvalidPathParam,
    JsonSyntax(String),
    RequiredProperties(String),
    UnsupportedProperties(String),
    PropertyType(String),
    PropertyValue(String),
    InvalidTotalAmount,
    MinimumItems(String),
    MaximumItems(String),
    InvalidTransactionId,
    ExternalReferenceTaken,
    Unauthorized,
    InvalidCredentials,
    /// The order was created but its payment failed; the order rides along in `data`.
    PaymentFailed {
        details: Vec<String>,
        order: Value,
    },
    /// The processor declined the capture; nothing changed.
    CaptureFailed {
        details: Vec<String>,
    },
    OrderNotFound,
    TransactionNotFound,
    NotFound,
    MethodNotAllowed,
    IdempotencyKeyAlreadyUsed,
    CannotCaptureOrder,
    CannotCancelOrder,
    CannotRefundOrder,
    OperationNotSupported(String),
    BodyTooLarge,
    ResourceLocked,
    IdempotencyValidationFailed,
    InternalError,
    Overloaded,
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [String],
}

#[derive(Serialize)]
struct Cause<'a> {
    code: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [ErrorItem<'a>; 1],
    message: &'a str,
    error: &'a str,
    status: u16,
    cause: [Cause<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

impl MpError {
    /// Status, `errors[].code`, top-level `error`, message, details.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String, Vec<String>) {
        use MpError::*;
        let bad = StatusCode::BAD_REQUEST;
        let conflict = StatusCode::CONFLICT;
        let plain = |status, code, message: &str| (status, code, code, message.to_owned(), vec![]);
        let detailed = |code, message: &str, detail: &String| {
            (bad, code, code, message.to_owned(), vec![detail.clone()])
        };
        match self {
            EmptyRequiredHeader => plain(
                bad,
                "empty_required_header",
                "The \"X-Idempotency-Key\" header is required and was not sent. Make the requisition again including it.",
            ),
            InvalidIdempotencyKeyLength => plain(
                bad,
                "invalid_idempotency_key_length",
                "The value sent in the \"X-Idempotency-Key\" header exceeded the allowed size. The header accepts values between 1 and 64 characters.",
            ),
            InvalidPathParam => plain(
                bad,
                "invalid_path_param",
                "The \"order_id\" provided in the request path is not correct. Please confirm it and provide a valid ID to try again.",
            ),
            JsonSyntax(why) => detailed("json_syntax_error", "Invalid JSON was sent.", why),
            RequiredProperties(why) => detailed("required_properties", "Missing properties", why),
            UnsupportedProperties(why) => {
                detailed("unsupported_properties", "Unsupported properties", why)
            }
            PropertyType(why) => detailed("property_type", "Invalid property type", why),
            PropertyValue(why) => detailed("property_value", "Invalid property value", why),
            InvalidTotalAmount => plain(
                bad,
                "invalid_total_amount",
                "The value entered in \"total_amount\" is not equal to the sum of \"transactions.payments.amount\" of all transactions.",
            ),
            MinimumItems(why) => detailed("minimum_items", "Too few items", why),
            MaximumItems(why) => detailed("maximum_items", "Too many items", why),
            InvalidTransactionId => plain(
                bad,
                "invalid_transaction_id",
                "The transaction id provided is not correct.",
            ),
            ExternalReferenceTaken => (
                bad,
                "property_value",
                "property_value",
                "Invalid property value".into(),
                vec!["external_reference is already used by another order".into()],
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "401",
                "unauthorized",
                "The value sent as Access Token is incorrect. Please check and try again with the correct value.".into(),
                vec![],
            ),
            InvalidCredentials => plain(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "There is no support for test credentials. Use test users with production credentials for the sandbox environment and your production credentials for the production environment.",
            ),
            PaymentFailed { details, .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "failed",
                "failed",
                "Order was created but some transaction failed. Check the \"errors\" field for more information.".into(),
                details.clone(),
            ),
            CaptureFailed { details } => (
                StatusCode::PAYMENT_REQUIRED,
                "402",
                "failed",
                "Some transaction failed at the processor. Check the \"errors\" field for more information.".into(),
                details.clone(),
            ),
            OrderNotFound => plain(
                StatusCode::NOT_FOUND,
                "order_not_found",
                "Order not found. Please check if you provided the correct order ID.",
            ),
            TransactionNotFound => plain(
                StatusCode::NOT_FOUND,
                "transaction_not_found",
                "Transaction not found. Please check if you provided the correct transaction ID.",
            ),
            NotFound => plain(StatusCode::NOT_FOUND, "not_found", "Resource not found."),
            MethodNotAllowed => plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This endpoint does not take that method.",
            ),
            IdempotencyKeyAlreadyUsed => plain(
                conflict,
                "idempotency_key_already_used",
                "The value sent as the idempotency header (\"X-Idempotency-Key\") has already been used. Please try the request again sending a new value.",
            ),
            CannotCaptureOrder => plain(
                conflict,
                "cannot_capture_order",
                "Error. Order cannot be captured. The status of the order does not allow its capture. Only orders with \"status=action_required\" and \"status_detail=waiting_capture\" can be captured.",
            ),
            CannotCancelOrder => plain(
                conflict,
                "cannot_cancel_order",
                "The status of the order does not allow its cancellation. Only orders with status \"created\" or \"action_required\" can be cancelled.",
            ),
            CannotRefundOrder => plain(
                conflict,
                "cannot_refund_order",
                "The status of the order does not allow a refund: nothing captured is left to refund.",
            ),
            OperationNotSupported(why) => (
                conflict,
                "operation_not_supported",
                "operation_not_supported",
                "The operation is not supported for this order. Please check the order \"status\" and \"status_detail\" and try again.".into(),
                vec![why.clone()],
            ),
            BodyTooLarge => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_entity_too_large",
                "Request bodies are limited to 65536 bytes.",
            ),
            ResourceLocked => plain(
                StatusCode::LOCKED,
                "resource_locked",
                "A request with this X-Idempotency-Key is still being processed. Retry shortly.",
            ),
            IdempotencyValidationFailed => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "idempotency_validation_failed",
                "Validation fail. Please try submitting the request again.",
            ),
            InternalError => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Generic error. Please try submitting the request again.",
            ),
            Overloaded => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "The server is at capacity; nothing was written. Retry after `Retry-After`.",
            ),
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        let (status, code, error, message, details) = self.parts();
        let data = match self {
            MpError::PaymentFailed { order, .. } => Some(order),
            _ => None,
        };
        let body = Body {
            errors: [ErrorItem {
                code,
                message: &message,
                details: &details,
            }],
            message: &message,
            error,
            status: status.as_u16(),
            cause: [Cause {
                code,
                description: &message,
            }],
            data,
        };
        StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    /// A refusal by the store or the core, as the endpoint `op` reports it. No wildcard arms:
    /// a new refusal fails to compile until it is placed here.
    pub fn of_write(op: Op, error: &WriteError) -> MpError {
        match error {
            WriteError::OrderNotFound => MpError::OrderNotFound,
            WriteError::TextContainsNul => {
                MpError::PropertyValue("text must not contain NUL characters".into())
            }
            WriteError::ReferenceTaken => MpError::ExternalReferenceTaken,
            WriteError::Refused(error) => MpError::of_core(op, *error),
        }
    }

    fn of_core(op: Op, error: CoreError) -> MpError {
        match error {
            CoreError::AmountTooLarge => MpError::PropertyValue("amount is too large".into()),
            CoreError::ZeroAmount => {
                MpError::PropertyValue("amount must be greater than zero".into())
            }
            CoreError::InvalidAmount { error, .. } => {
                MpError::PropertyValue(format!("transactions[0].amount {error}"))
            }
            CoreError::CaptureModeAutomatic => MpError::OperationNotSupported(
                "orders with capture_mode automatic are captured when created".into(),
            ),
            CoreError::OperationReferenceTaken => MpError::state_conflict(op),
            CoreError::OrderNotCapturable
            | CoreError::AuthorizationExpired
            | CoreError::AmountExceedsCapturable { .. }
            | CoreError::PartialCaptureUnsupported { .. }
            | CoreError::OrderNotVoidable
            | CoreError::NothingCaptured
            | CoreError::OrderNotRefundable => MpError::state_conflict(op),
            CoreError::CaptureDeclined => MpError::CaptureFailed {
                details: vec!["the processor declined the capture".into()],
            },
            CoreError::CurrencyMismatch { .. } => MpError::PropertyValue(error.to_string()),
            CoreError::AmountExceedsRefundable { refundable, .. } => {
                MpError::PropertyValue(format!(
                    "transactions[].amount exceeds the refundable amount ({refundable} minor units)"
                ))
            }
        }
    }

    fn state_conflict(op: Op) -> MpError {
        match op {
            Op::Create => MpError::OperationNotSupported("the order cannot be created".into()),
            Op::Capture => MpError::CannotCaptureOrder,
            Op::Cancel => MpError::CannotCancelOrder,
            Op::Refund => MpError::CannotRefundOrder,
        }
    }
}

impl From<StoreError> for MpError {
    fn from(error: StoreError) -> MpError {
        match error {
            StoreError::IdempotencyKeyReused => MpError::IdempotencyKeyAlreadyUsed,
            StoreError::IdempotencyRequestInProgress => MpError::ResourceLocked,
            StoreError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                MpError::InternalError
            }
            StoreError::Overloaded(why) => {
                tracing::warn!(%why, "overloaded");
                MpError::Overloaded
            }
        }
    }
}

impl From<BodyError> for MpError {
    fn from(error: BodyError) -> MpError {
        match error {
            BodyError::TooLarge => MpError::BodyTooLarge,
            BodyError::Unreadable => MpError::JsonSyntax("the body could not be read".into()),
        }
    }
}

impl From<JsonError> for MpError {
    fn from(error: JsonError) -> MpError {
        match error {
            JsonError::Syntax(why) => MpError::JsonSyntax(why),
            JsonError::Shape(why) => {
                if why.contains("missing field") {
                    MpError::RequiredProperties(why)
                } else if why.contains("unknown field") {
                    MpError::UnsupportedProperties(why)
                } else {
                    MpError::PropertyType(why)
                }
            }
        }
    }
}

impl IntoResponse for MpError {
    fn into_response(self) -> Response {
        stored_response(self.to_stored(), false)
    }
}
