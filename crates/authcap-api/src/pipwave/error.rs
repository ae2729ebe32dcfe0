//! Every way the Pipwave dialect fails, as Pipwave's JSON `{"status": <API status code>,
//! "message": "…"}` with a matching HTTP status.

use authcap_core::{CoreError, Currency};
use authcap_store::{StoreError, StoredResponse, WriteError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Action;
use super::types::{FieldsError, StatusBody};
use crate::wire::{BODY_BYTES_MAX, BodyError};

/// Pipwave API status codes (docs: appendix "API Status Code").
pub mod code {
    pub const OK: u16 = 200;
    pub const FAILED: u16 = 400;
    pub const INVALID_SIGNATURE: u16 = 401;
    pub const INVALID_API_KEY: u16 = 403;
    pub const INVALID_ACTION: u16 = 404;
    pub const SERVER_ERROR: u16 = 500;
    pub const DUPLICATE_TXN_ID: u16 = 1002;
    pub const ALREADY_FULLY_REFUNDED: u16 = 4001;
    pub const NOT_FINALIZED: u16 = 4002;
    pub const REFUND_TOO_LARGE: u16 = 4003;
    pub const PARAMETER_ERROR: u16 = 9001;
}

#[derive(Debug)]
pub enum PwError {
    BodyTooLarge,
    /// A missing or malformed parameter; the message names the field.
    Parameter(String),
    /// Missing, unknown, or header and body disagree.
    ApiKey(&'static str),
    /// Missing or wrong signature.
    Signature(&'static str),
    UnknownAction,
    /// `timestamp` is further from the server clock than the configured window.
    TimestampOutsideWindow {
        skew_seconds: i64,
        window_seconds: i64,
    },
    /// No transaction of this merchant has this `pw_id` / `txn_id` (also another merchant's).
    TransactionNotFound(&'static str),
    /// `pw_id` and `txn_id` were both sent and name different transactions.
    TransactionMismatch,
    NoSuchEndpoint,
    MethodNotAllowed,
    /// The core refused.
    Refused {
        action: Action,
        error: CoreError,
    },
    DuplicateReference,
    /// The same signature came with a different request.
    SignatureReused,
    /// An identical request is still being processed.
    InProgress,
    Unavailable,
    Overloaded,
}

impl PwError {
    /// An answer to the request as it was sent, which an identical request must get again;
    /// not a passing state of the server (storage unavailable, still in progress) nor the
    /// refusal of a reused signature itself.
    pub fn is_answer(&self) -> bool {
        !matches!(
            self,
            PwError::Unavailable
                | PwError::Overloaded
                | PwError::InProgress
                | PwError::SignatureReused
        )
    }
}

pub fn param(field: &str, why: impl std::fmt::Display) -> PwError {
    PwError::Parameter(format!("`{field}` {why}"))
}

impl PwError {
    /// (HTTP status, Pipwave status, message). No wildcard arms: a new core refusal must be
    /// placed here before this compiles.
    fn parts(&self) -> (StatusCode, u16, String) {
        use PwError::*;
        use code::*;
        match self {
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                PARAMETER_ERROR,
                format!("request bodies are limited to {BODY_BYTES_MAX} bytes"),
            ),
            Parameter(why) => (StatusCode::BAD_REQUEST, PARAMETER_ERROR, why.clone()),
            ApiKey(why) => (
                StatusCode::FORBIDDEN,
                INVALID_API_KEY,
                format!("Invalid API key: {why}"),
            ),
            Signature(why) => (
                StatusCode::UNAUTHORIZED,
                INVALID_SIGNATURE,
                format!("Invalid signature: {why}"),
            ),
            UnknownAction => (
                StatusCode::NOT_FOUND,
                INVALID_ACTION,
                "Invalid action: `action` must be capture-payment, requery, cancel-payment or refund"
                    .into(),
            ),
            TimestampOutsideWindow {
                skew_seconds,
                window_seconds,
            } => (
                StatusCode::BAD_REQUEST,
                PARAMETER_ERROR,
                format!(
                    "`timestamp` is {} s {} the server clock; it must be within ±{window_seconds} s \
                     (a UNIX time in seconds, GMT)",
                    skew_seconds.unsigned_abs(),
                    if *skew_seconds < 0 { "behind" } else { "ahead of" },
                ),
            ),
            TransactionNotFound(field) => (
                StatusCode::NOT_FOUND,
                PARAMETER_ERROR,
                format!("`{field}`: no such transaction"),
            ),
            TransactionMismatch => (
                StatusCode::BAD_REQUEST,
                PARAMETER_ERROR,
                "`txn_id` does not belong to the transaction `pw_id`".into(),
            ),
            NoSuchEndpoint => (
                StatusCode::NOT_FOUND,
                INVALID_ACTION,
                "no such endpoint: every action is POST /pipwave/payment".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                FAILED,
                "every action is POST /pipwave/payment".into(),
            ),
            Refused { action, error } => refusal(*action, *error),
            DuplicateReference => (
                StatusCode::CONFLICT,
                DUPLICATE_TXN_ID,
                "Transaction ID (txn_id) duplicate".into(),
            ),
            SignatureReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                FAILED,
                "this signature was already used for a different request".into(),
            ),
            InProgress => (
                StatusCode::CONFLICT,
                FAILED,
                "an identical request is still being processed; retry shortly".into(),
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                "storage is unavailable; nothing was written, retry later".into(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                "the server is at capacity; nothing was written, retry after `Retry-After`".into(),
            ),
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        let (http, status, message) = self.parts();
        json_stored(
            http,
            &StatusBody {
                status,
                message: &message,
            },
        )
    }

    /// A refused write; `target` is the field that named the transaction.
    pub fn from_write(error: &WriteError, action: Action, target: &'static str) -> PwError {
        match error {
            WriteError::OrderNotFound => PwError::TransactionNotFound(target),
            WriteError::TextContainsNul => {
                PwError::Parameter("text must not contain NUL characters".into())
            }
            WriteError::ReferenceTaken
            | WriteError::Refused(CoreError::OperationReferenceTaken) => {
                PwError::DuplicateReference
            }
            WriteError::Refused(error) => PwError::Refused {
                action,
                error: *error,
            },
        }
    }
}

fn refusal(action: Action, error: CoreError) -> (StatusCode, u16, String) {
    use code::*;
    let money =
        |a, currency: Currency| format!("{} {}", currency.format_decimal(a), currency.code());
    let field = match action {
        Action::Refund => "refund_amount",
        Action::Capture | Action::Requery | Action::Cancel => "capture_amount",
    };
    match error {
        CoreError::AmountTooLarge => (
            StatusCode::BAD_REQUEST,
            PARAMETER_ERROR,
            format!("`{field}` is too large"),
        ),
        CoreError::ZeroAmount => (
            StatusCode::BAD_REQUEST,
            PARAMETER_ERROR,
            format!("`{field}` must be greater than zero"),
        ),
        CoreError::InvalidAmount { error, currency } => (
            StatusCode::BAD_REQUEST,
            PARAMETER_ERROR,
            format!(
                "`{field}` {error} ({} has {})",
                currency.code(),
                currency.exponent()
            ),
        ),
        CoreError::OperationReferenceTaken | CoreError::CaptureModeAutomatic => {
            (StatusCode::CONFLICT, FAILED, error.to_string())
        }
        CoreError::OrderNotCapturable => (
            StatusCode::CONFLICT,
            FAILED,
            "the transaction is not under AUTHORISATION status: nothing is left to capture".into(),
        ),
        CoreError::AuthorizationExpired => (
            StatusCode::CONFLICT,
            FAILED,
            "the authorization has expired; it can no longer be captured".into(),
        ),
        CoreError::AmountExceedsCapturable {
            capturable,
            currency,
        } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            PARAMETER_ERROR,
            format!(
                "`capture_amount` exceeds the capturable amount of {}",
                money(capturable, currency)
            ),
        ),
        CoreError::PartialCaptureUnsupported {
            capturable,
            currency,
        } => (
            StatusCode::CONFLICT,
            FAILED,
            format!(
                "this payment method allows only one capture of the full {}",
                money(capturable, currency)
            ),
        ),
        CoreError::CaptureDeclined => (
            StatusCode::PAYMENT_REQUIRED,
            FAILED,
            "the payment gateway declined the capture".into(),
        ),
        CoreError::OrderNotVoidable => (
            StatusCode::CONFLICT,
            FAILED,
            "the transaction cannot be cancelled: it is not under AUTHORISATION status \
             (already captured, cancelled, expired or failed)"
                .into(),
        ),
        CoreError::OrderNotRefundable => (
            StatusCode::CONFLICT,
            ALREADY_FULLY_REFUNDED,
            "Payment is already fully refunded".into(),
        ),
        CoreError::NothingCaptured => (
            StatusCode::CONFLICT,
            NOT_FINALIZED,
            "Payment not finalized yet: nothing has been captured".into(),
        ),
        CoreError::CurrencyMismatch { .. } => {
            (StatusCode::BAD_REQUEST, PARAMETER_ERROR, error.to_string())
        }
        CoreError::AmountExceedsRefundable {
            refundable,
            currency,
        } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            REFUND_TOO_LARGE,
            format!(
                "Refunded amount is more than current amount: at most {} can be refunded",
                money(refundable, currency)
            ),
        ),
    }
}

pub fn json_stored<T: serde::Serialize>(status: StatusCode, body: &T) -> StoredResponse {
    crate::pipeline::json(status, body)
}

impl From<StoreError> for PwError {
    fn from(error: StoreError) -> PwError {
        match error {
            StoreError::IdempotencyKeyReused => PwError::SignatureReused,
            StoreError::IdempotencyRequestInProgress => PwError::InProgress,
            StoreError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                PwError::Unavailable
            }
            StoreError::Overloaded(why) => {
                tracing::warn!(%why, "overloaded");
                PwError::Overloaded
            }
        }
    }
}

impl From<BodyError> for PwError {
    fn from(error: BodyError) -> PwError {
        match error {
            BodyError::TooLarge => PwError::BodyTooLarge,
            BodyError::Unreadable => PwError::Parameter("the body could not be read".into()),
        }
    }
}

impl From<FieldsError> for PwError {
    fn from(error: FieldsError) -> PwError {
        match error {
            FieldsError::Syntax(why) => PwError::Parameter(why),
            FieldsError::Duplicate(field) => param(&field, "is sent more than once"),
            FieldsError::NotScalar(field) => param(&field, "must be a string or a number"),
        }
    }
}

impl IntoResponse for PwError {
    fn into_response(self) -> Response {
        crate::wire::stored_response(self.to_stored(), false)
    }
}
