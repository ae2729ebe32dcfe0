//! The Pipwave dialect: one URL, `POST /pipwave/payment` (also `/pipwave/v1/payment`), for
//! every action — `capture-payment`, `requery`, `cancel-payment`, `refund` — each signed with
//! sha1 over its fields and the merchant's `api_secret`.
//!
//! A request is checked in this order, the first failure answering: body readable and parsed
//! (JSON when it starts with `{`, form data otherwise) → `api_key` present → `x-api-key` equals
//! it and names a merchant (403) → `action` known (404) → no unknown fields → signature (401)
//! → `timestamp` an integer within the window → the action's own parameters (9001) → the
//! transaction, by `pw_id` (the Authcap order id) or `txn_id` (the merchant reference) →
//! one store write.

pub mod error;
pub mod types;

use authcap_core::{
    Amount, AmountError, Capture, CaptureRequest, Currency, OrderStatus, Refund, RefundRequest,
    RequestedAmount,
};
use authcap_store::{
    ClaimKind, CredentialKind, IdempotencyClaim, OrderLocator, OrderRecord, ReferenceScope, Render,
    Request, StoredResponse, Written,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq;

use crate::wire::stored_response;
use crate::wire::{check_len, new_id, read_body, sha256_hex};
use crate::{AppState, pipeline};
use error::{PwError, code, json_stored, param};
use types::*;

/// The merchant's Pipwave API key (its secret is derived, never stored).
pub const API_KEY: CredentialKind = CredentialKind("pipwave_api_key");

const API_KEY_CHARS_MAX: usize = 64;
const ACTION_CHARS_MAX: usize = 32;
const PW_ID_CHARS_MAX: usize = 32;
const TXN_ID_CHARS_MAX: usize = 255;
const REASON_CHARS_MAX: usize = 32;
const REF_TAG_CHARS_MAX: usize = 32;
const OP_CHARS_MAX: usize = 32;
const EXTRA_PARAM_CHARS_MAX: usize = 255;
const VERSION_CHARS_MAX: usize = 255;

pub fn router() -> Router<AppState> {
    let payment = Router::new()
        .route("/payment", post(payment))
        .route("/v1/payment", post(payment))
        .fallback(|| async { PwError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { PwError::MethodNotAllowed });
    Router::new().nest("/pipwave", payment).route(
        "/pipwave",
        axum::routing::any(|| async { PwError::NoSuchEndpoint }),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Capture,
    Requery,
    Cancel,
    Refund,
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        match text {
            "capture-payment" => Some(Action::Capture),
            "requery" => Some(Action::Requery),
            "cancel-payment" => Some(Action::Cancel),
            "refund" => Some(Action::Refund),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Capture => "capture-payment",
            Action::Requery => "requery",
            Action::Cancel => "cancel-payment",
            Action::Refund => "refund",
        }
    }

    /// The fields this action takes; each one that is present is signed (with `api_secret`).
    /// `signature` and `version` are accepted too and never signed.
    fn signed_fields(self) -> &'static [&'static str] {
        match self {
            Action::Capture => &[
                "timestamp",
                "action",
                "api_key",
                "pw_id",
                "txn_id",
                "capture_amount",
            ],
            Action::Requery => &["timestamp", "action", "api_key", "pw_id", "txn_id"],
            Action::Cancel => &[
                "timestamp",
                "action",
                "api_key",
                "pw_id",
                "txn_id",
                "reason",
                "ref_tag",
            ],
            Action::Refund => &[
                "timestamp",
                "action",
                "api_key",
                "op",
                "pw_id",
                "txn_id",
                "refund_amount",
                "extra_param",
            ],
        }
    }
}

/// A request whose api key, action, signature and timestamp have been verified.
struct Verified {
    merchant_id: String,
    action: Action,
    fields: Fields,
    claim: IdempotencyClaim,
}

async fn payment(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(&app, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Every field name a Pipwave request signs, in any action.
const SIGNED_NAMES: &[&str] = &[
    "action",
    "api_key",
    "api_secret",
    "capture_amount",
    "extra_param",
    "op",
    "pw_id",
    "reason",
    "ref_tag",
    "refund_amount",
    "timestamp",
    "txn_id",
];

/// What a verified request came to: an answer the store already kept under the signature (a
/// write), or one made here that must be kept under it now (a read, a refusal).
enum Answer {
    Kept(Response),
    Made(StoredResponse),
}

async fn handle(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, PwError> {
    let bytes = read_body(body).await?;
    let fields = Fields::parse(&bytes)?;
    let request = verify(app, headers, fields).await?;
    // The signature joins `key:value` pairs with no separator, so the same signature fits
    // other partitions of the same text. It is therefore used once, whatever the action and
    // whatever came of it: any other request under it is refused, an identical one replays.
    let merchant_id = request.merchant_id.clone();
    let claim = request.claim.clone();
    let answer = match unambiguous(&request.fields.signed(request.action.signed_fields())) {
        Err(refusal) => Err(refusal),
        Ok(()) => match request.action {
            Action::Capture => capture(app, request).await.map(Answer::Kept),
            Action::Requery => requery(app, request).await.map(Answer::Made),
            Action::Cancel => cancel(app, request).await.map(Answer::Kept),
            Action::Refund => refund(app, request).await,
        },
    };
    let made = match answer {
        Ok(Answer::Kept(response)) => return Ok(response),
        Ok(Answer::Made(response)) => response,
        Err(error) if error.is_answer() => error.to_stored(),
        Err(error) => return Err(error),
    };
    let kept = app.store.remember(&merchant_id, claim, made).await?;
    Ok(stored_response(kept.response, kept.replayed))
}

/// Refuses a signed value that holds another field's `name:`: such a request can be
/// re-partitioned into different fields under the same signature.
fn unambiguous(signed: &[(&str, &str)]) -> Result<(), PwError> {
    for (field, value) in signed {
        if let Some(name) = SIGNED_NAMES
            .iter()
            .find(|name| value.contains(&format!("{name}:")))
        {
            return Err(param(
                field,
                format_args!(
                    "must not contain `{name}:`: the signature could not tell the fields apart"
                ),
            ));
        }
    }
    Ok(())
}

async fn verify(app: &AppState, headers: &HeaderMap, fields: Fields) -> Result<Verified, PwError> {
    let api_key = fields
        .non_empty("api_key")
        .ok_or_else(|| param("api_key", "is required"))?;
    if !check_len(api_key, 1, API_KEY_CHARS_MAX) {
        return Err(param(
            "api_key",
            format_args!("must be at most {API_KEY_CHARS_MAX} characters"),
        ));
    }
    let header = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(PwError::ApiKey("send it in the `x-api-key` header too"))?;
    if !bool::from(header.as_bytes().ct_eq(api_key.as_bytes())) {
        return Err(PwError::ApiKey(
            "the `x-api-key` header and the `api_key` field differ",
        ));
    }
    let credential = app
        .credentials
        .credential(API_KEY, api_key)
        .await?
        .ok_or(PwError::ApiKey("no merchant has this api key"))?;
    let merchant_id = credential.merchant_id;

    let action_text = fields
        .non_empty("action")
        .ok_or_else(|| param("action", "is required"))?;
    if !check_len(action_text, 1, ACTION_CHARS_MAX) {
        return Err(param(
            "action",
            format_args!("must be at most {ACTION_CHARS_MAX} characters"),
        ));
    }
    let action = Action::parse(action_text).ok_or(PwError::UnknownAction)?;
    let signed = action.signed_fields();
    if let Some(unknown) = fields
        .keys()
        .find(|k| !signed.contains(k) && !matches!(*k, "signature" | "version"))
    {
        return Err(param(
            unknown,
            format_args!("is not a parameter of {}", action.name()),
        ));
    }
    if let Some(version) = fields.get("version")
        && !check_len(version, 0, VERSION_CHARS_MAX)
    {
        return Err(param(
            "version",
            format_args!("must be at most {VERSION_CHARS_MAX} characters"),
        ));
    }
    let timestamp_text = fields
        .non_empty("timestamp")
        .ok_or_else(|| param("timestamp", "is required"))?;

    let sent = fields.get("signature").ok_or(PwError::Signature(
        "`signature` is required: sha1 over the signed fields sorted by key, with api_secret",
    ))?;
    let pairs = fields.signed(signed);
    // The secret goes with the key presented: a rotated key has a new one.
    let secret = app
        .server_secret
        .pipwave_api_secret(&merchant_id, credential.generation);
    let expected = signature(&pairs, &secret);
    if !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        return Err(PwError::Signature(
            "sha1 over the signed fields sorted by key, each `key:value`, with api_secret",
        ));
    }

    let timestamp = parse_timestamp(timestamp_text)?;
    let window_seconds = app.config.pipwave_timestamp_window.as_secs() as i64;
    let skew_seconds = timestamp_skew(timestamp, app.store.now().millis().div_euclid(1000));
    if skew_seconds.unsigned_abs() > window_seconds as u64 {
        return Err(PwError::TimestampOutsideWindow {
            skew_seconds,
            window_seconds,
        });
    }

    // Pipwave has no idempotency key: the signature is one. An identical signed request (same
    // fields, same timestamp) replays the first answer instead of moving money twice.
    let flat: Vec<&[u8]> = pairs
        .iter()
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
        .collect();
    let claim = IdempotencyClaim {
        scope: "pipwave".into(),
        key: expected,
        fingerprint: sha256_hex(&flat),
        kind: ClaimKind::SingleUse,
    };
    Ok(Verified {
        merchant_id,
        action,
        fields,
        claim,
    })
}

/// A UNIX time in whole seconds: an optional `-` and 1 to 15 digits.
fn parse_timestamp(text: &str) -> Result<i64, PwError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(param(
            "timestamp",
            "must be a UNIX time: an integer number of seconds (GMT)",
        ));
    }
    text.parse()
        .map_err(|_| param("timestamp", "must be a UNIX time"))
}

/// How far `timestamp` is ahead of (positive) or behind (negative) `now`, in seconds.
fn timestamp_skew(timestamp: i64, now_seconds: i64) -> i64 {
    timestamp.saturating_sub(now_seconds)
}

fn optional_text<'a>(
    fields: &'a Fields,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, PwError> {
    match fields.non_empty(field) {
        Some(value) if !check_len(value, 1, max) => Err(param(
            field,
            format_args!("must be at most {max} characters"),
        )),
        other => Ok(other),
    }
}

/// Checks the shape of a decimal(11,2): up to 9 integer digits, optionally a point and 1 or 2
/// decimals. The currency's own exponent is applied once the transaction is known.
fn decimal_11_2<'a>(fields: &'a Fields, field: &str) -> Result<Option<&'a str>, PwError> {
    let Some(text) = fields.non_empty(field) else {
        return Ok(None);
    };
    if text.starts_with('-') {
        return Err(param(field, "must not be negative"));
    }
    let (integer, fraction) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let valid = (1..=9).contains(&integer.len())
        && digits(integer)
        && fraction.is_none_or(|f| (1..=2).contains(&f.len()) && digits(f));
    if !valid {
        return Err(param(
            field,
            "must be a decimal(11,2): up to 9 digits, then optionally a point and 1 or 2 decimals",
        ));
    }
    Ok(Some(text))
}

/// A decimal(11,2) amount that must be positive; resolved against the transaction's currency
/// inside the write.
fn positive_amount(fields: &Fields, field: &str) -> Result<Option<RequestedAmount>, PwError> {
    let Some(text) = decimal_11_2(fields, field)? else {
        return Ok(None);
    };
    if text.bytes().all(|b| matches!(b, b'0' | b'.')) {
        return Err(param(field, "must be greater than zero"));
    }
    Ok(Some(RequestedAmount::Decimal(text.to_owned())))
}

fn amount_in(field: &str, text: &str, currency: Currency) -> Result<Amount, PwError> {
    let amount = currency.parse_decimal(text).map_err(|error| match error {
        AmountError::TooManyDecimals { .. } => param(
            field,
            format_args!("{error} ({} has {})", currency.code(), currency.exponent()),
        ),
        other => param(field, other),
    })?;
    if amount.is_zero() {
        return Err(param(field, "must be greater than zero"));
    }
    Ok(amount)
}

/// How a write names its transaction, and the field that named it (for "not found").
struct Target {
    locator: OrderLocator,
    field: &'static str,
}

/// The transaction a write targets, without reading it: `pw_id` (Authcap order id) or
/// `txn_id` (merchant reference). Only when both are sent is the transaction read first, to
/// check that they name the same one.
async fn target(app: &AppState, merchant_id: &str, fields: &Fields) -> Result<Target, PwError> {
    let pw_id = optional_text(fields, "pw_id", PW_ID_CHARS_MAX)?;
    let txn_id = optional_text(fields, "txn_id", TXN_ID_CHARS_MAX)?;
    match (pw_id, txn_id) {
        (Some(_), Some(_)) => {
            let record = locate(app, merchant_id, fields).await?;
            Ok(Target {
                locator: OrderLocator::Id(record.order.id),
                field: "pw_id",
            })
        }
        (Some(pw_id), None) => Ok(Target {
            locator: OrderLocator::Id(pw_id.to_owned()),
            field: "pw_id",
        }),
        (None, Some(txn_id)) => Ok(Target {
            locator: OrderLocator::Reference(txn_id.to_owned()),
            field: "txn_id",
        }),
        (None, None) => Err(PwError::Parameter(
            "either `pw_id` or `txn_id` must be sent".into(),
        )),
    }
}

/// The transaction named by `pw_id` (Authcap order id) or `txn_id` (merchant reference);
/// both must agree when both are sent. Another merchant's transaction is not found.
async fn locate(
    app: &AppState,
    merchant_id: &str,
    fields: &Fields,
) -> Result<OrderRecord, PwError> {
    let pw_id = optional_text(fields, "pw_id", PW_ID_CHARS_MAX)?;
    let txn_id = optional_text(fields, "txn_id", TXN_ID_CHARS_MAX)?;
    match (pw_id, txn_id) {
        (None, None) => Err(PwError::Parameter(
            "either `pw_id` or `txn_id` must be sent".into(),
        )),
        (Some(pw_id), txn_id) => {
            let record = app
                .store
                .order(merchant_id, OrderLocator::Id(pw_id.to_owned()))
                .await?
                .ok_or(PwError::TransactionNotFound("pw_id"))?;
            match txn_id {
                Some(txn_id) if txn_id != record.order.reference => {
                    Err(PwError::TransactionMismatch)
                }
                _ => Ok(record),
            }
        }
        (None, Some(txn_id)) => app
            .store
            .order(merchant_id, OrderLocator::Reference(txn_id.to_owned()))
            .await?
            .ok_or(PwError::TransactionNotFound("txn_id")),
    }
}

/// Pipwave's payment status code for an order: 0 pending, 1 failed, 2 cancelled,
/// 5 processing (authorized, awaiting capture), 10 paid, 20 full refund, 25 partial refund.
pub fn transaction_status(record: &OrderRecord, now: authcap_core::Timestamp) -> u8 {
    let order = &record.order;
    match order.status(now) {
        OrderStatus::Authorized => 5,
        OrderStatus::PartiallyCaptured | OrderStatus::Captured => {
            if order.refunded_amount.is_zero() {
                10
            } else if order.refunded_amount == order.captured_amount {
                20
            } else {
                25
            }
        }
        OrderStatus::Refunded => 20,
        OrderStatus::Voided | OrderStatus::Expired => 2,
        OrderStatus::Declined | OrderStatus::Failed => 1,
    }
}

fn require_capture(record: &OrderRecord, now: authcap_core::Timestamp) -> bool {
    !record.order.capturable_amount(now).is_zero()
}

async fn execute(
    app: &AppState,
    verified: Verified,
    request: Request,
) -> Result<Response, PwError> {
    let claim = Some(verified.claim);
    Ok(pipeline::write(app, verified.merchant_id, claim, request).await?)
}

fn metadata(value: serde_json::Value) -> String {
    serde_json::json!({ "pipwave": value }).to_string()
}

async fn capture(app: &AppState, request: Verified) -> Result<Response, PwError> {
    let amount_text = decimal_11_2(&request.fields, "capture_amount")?.map(str::to_owned);
    let requested = positive_amount(&request.fields, "capture_amount")?;
    let target = target(app, &request.merchant_id, &request.fields).await?;
    // Only payments under AUTHORISATION can be captured, so a capture ends the authorization:
    // what it leaves is released. "If PG not supporting partial capture, full capture will be
    // done": the core captures everything instead of refusing a smaller amount.
    let capture = CaptureRequest {
        id: new_id("cap_"),
        amount: requested,
        is_final: true,
        full_capture_fallback: true,
        metadata: metadata(serde_json::json!({ "capture_amount": amount_text })),
        ..CaptureRequest::default()
    };
    let field = target.field;
    let render: Render<Capture> = Box::new(move |outcome| match outcome {
        Ok(Written {
            record,
            result: capture,
            now,
        }) => {
            let currency = record.order.currency;
            let asked = amount_text.and_then(|text| currency.parse_decimal(&text).ok());
            json_stored(
                StatusCode::OK,
                &CaptureBody {
                    status: code::OK,
                    message: "OK",
                    pw_id: record.order.id.clone(),
                    txn_id: record.order.reference.clone(),
                    capture_id: capture.id.clone(),
                    capture_amount: currency.format_decimal(capture.amount),
                    currency_code: currency.code(),
                    full_capture_fallback: asked.is_some_and(|amount| amount != capture.amount),
                    transaction_status: transaction_status(record, *now),
                    require_capture: require_capture(record, *now),
                },
            )
        }
        Err(error) => PwError::from_write(error, Action::Capture, field).to_stored(),
    });
    let write = Request::Capture {
        order: target.locator,
        request: capture,
        reference_scope: ReferenceScope::Order,
        render,
    };
    execute(app, request, write).await
}

async fn requery(app: &AppState, request: Verified) -> Result<StoredResponse, PwError> {
    let record = locate(app, &request.merchant_id, &request.fields).await?;
    let order = &record.order;
    let currency = order.currency;
    let money = |a| currency.format_decimal(a);
    let now = app.store.merchant_now(&request.merchant_id).await?;
    let body = RequeryBody {
        status: code::OK,
        message: "OK",
        api_key: request.fields.get("api_key").unwrap_or_default().to_owned(),
        pw_id: order.id.clone(),
        txn_id: order.reference.clone(),
        amount: money(order.amount),
        processing_fee_amount: money(order.surcharge),
        total_amount: money(
            order
                .amount
                .checked_add(order.surcharge)
                .unwrap_or(order.amount),
        ),
        final_amount: money(order.refundable_amount()),
        captured_amount: money(order.captured_amount),
        capturable_amount: money(order.capturable_amount(now)),
        refunded_amount: money(order.refunded_amount),
        currency_code: currency.code(),
        transaction_status: transaction_status(&record, now),
        require_capture: require_capture(&record, now),
        reversible_payment: true,
        payment_method_code: "credit_card",
        payment_method_title: format!("{} •••• {}", order.card_brand, order.card_last4),
    };
    Ok(json_stored(StatusCode::OK, &body))
}

async fn cancel(app: &AppState, request: Verified) -> Result<Response, PwError> {
    // Validated and signed; a void has nowhere to keep them, so they are not stored.
    optional_text(&request.fields, "reason", REASON_CHARS_MAX)?;
    optional_text(&request.fields, "ref_tag", REF_TAG_CHARS_MAX)?;
    let target = target(app, &request.merchant_id, &request.fields).await?;
    let field = target.field;
    let render: Render<Amount> = Box::new(move |outcome| match outcome {
        Ok(written) => json_stored(
            StatusCode::OK,
            &CancelBody {
                status: code::OK,
                message: "OK",
                pw_id: written.record.order.id.clone(),
                txn_id: written.record.order.reference.clone(),
                transaction_status: transaction_status(&written.record, written.now),
            },
        ),
        Err(error) => PwError::from_write(error, Action::Cancel, field).to_stored(),
    });
    let write = Request::Release {
        order: target.locator,
        amount: None,
        render,
    };
    execute(app, request, write).await
}

async fn refund(app: &AppState, request: Verified) -> Result<Answer, PwError> {
    let op = optional_text(&request.fields, "op", OP_CHARS_MAX)?;
    let initiate = match op {
        Some("initiate") => true,
        None | Some("submit") => false,
        Some(_) => return Err(param("op", "must be `initiate` or `submit`")),
    };
    let amount_text = decimal_11_2(&request.fields, "refund_amount")?.map(str::to_owned);
    let extra_param = optional_text(&request.fields, "extra_param", EXTRA_PARAM_CHARS_MAX)?;
    if initiate {
        // A report only: it reads the transaction and writes nothing.
        let record = locate(app, &request.merchant_id, &request.fields).await?;
        let currency = record.order.currency;
        if let Some(text) = &amount_text {
            amount_in("refund_amount", text, currency)?;
        }
        let refundable = record.order.refundable_amount();
        let body = RefundInitiateBody {
            status: code::OK,
            message: "OK",
            pw_id: record.order.id.clone(),
            txn_id: record.order.reference.clone(),
            supports_refund: !refundable.is_zero(),
            supports_partial_refund: true,
            refundable_amount: currency.format_decimal(refundable),
            currency_code: currency.code(),
            extra_params: Vec::new(),
        };
        return Ok(Answer::Made(json_stored(StatusCode::OK, &body)));
    }
    let amount = positive_amount(&request.fields, "refund_amount")?;
    let target = target(app, &request.merchant_id, &request.fields).await?;
    let refund = RefundRequest {
        id: new_id("ref_"),
        amount,
        currency: None,
        reference: None,
        reason: None,
        metadata: metadata(serde_json::json!({
            "op": op.unwrap_or("submit"),
            "refund_amount": amount_text,
            "extra_param": extra_param,
        })),
    };
    let field = target.field;
    let render: Render<Refund> = Box::new(move |outcome| match outcome {
        Ok(Written {
            record,
            result: refund,
            now,
        }) => json_stored(
            StatusCode::OK,
            &RefundBody {
                status: code::OK,
                message: "OK",
                pw_id: record.order.id.clone(),
                txn_id: record.order.reference.clone(),
                reverse_pw_id: refund.id.clone(),
                refund_amount: record.order.currency.format_decimal(refund.amount),
                currency_code: record.order.currency.code(),
                refund_status: 10,
                transaction_status: transaction_status(record, *now),
            },
        ),
        Err(error) => PwError::from_write(error, Action::Refund, field).to_stored(),
    });
    let write = Request::Refund {
        order: target.locator,
        request: refund,
        render,
    };
    execute(app, request, write).await.map(Answer::Kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_window_edges() {
        let window = 300;
        let inside = |ts: i64| timestamp_skew(ts, 1_700_000_000).unsigned_abs() <= window;
        assert!(inside(1_700_000_000 - 300));
        assert!(inside(1_700_000_000 + 300));
        assert!(!inside(1_700_000_000 - 301));
        assert!(!inside(1_700_000_000 + 301));
        assert!(!inside(i64::MIN));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1700000000").unwrap(), 1_700_000_000);
        for bad in ["", "-", "1.5", "1e9", " 1", "0x10", "1234567890123456"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
