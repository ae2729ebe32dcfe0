//! The Mercado Pago Orders API under `/mercadopago/v1/orders`: create, get, capture (full),
//! cancel, refund (full or partial). Amounts are decimal strings, errors are Mercado Pago's
//! `errors[]` shape, every POST honours `X-Idempotency-Key` (required on capture), scoped per
//! merchant and operation. Ids are a bijective rendering of Authcap's ([`ids`]), so orders made
//! by the native API are reachable here too.

pub mod error;
pub mod ids;
pub mod types;

use authcap_core::order::AuthorizationFailure;
use authcap_core::{
    Amount, CaptureMode, CaptureRequest, Card, Currency, DeclineCode, NewOrder, OrderStatus,
    RefundRequest as CoreRefund, RequestedAmount, Timestamp,
};
use authcap_store::{
    CredentialKind, IdempotencyClaim, OrderLocator, OrderRecord, ReferenceScope, Render, Request,
    StoredResponse, WriteError, Written,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::value::RawValue;

use crate::wire::PathParam;
use crate::wire::stored_response;
use crate::wire::{check_len, new_id, parse_json, raw_number_text, read_body, rfc3339};
use crate::{AppState, pipeline};
use error::{MpError, Op};
use types::*;

/// Where the dialect is mounted; the SDKs' base URL is `http://HOST:PORT/mercadopago`.
pub const PREFIX: &str = "/mercadopago";
/// The merchant's Mercado Pago access token.
pub const ACCESS_TOKEN: CredentialKind = CredentialKind("mercadopago_access_token");
/// Sandbox fault injection: `internal_error` or `idempotency_validation_failed` answer the
/// matching 500 and write nothing. Never fires unless sent.
pub const FAULT_HEADER: &str = "x-authcap-sandbox-fault";
const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 64;
const EXTERNAL_REFERENCE_CHARS_MAX: usize = 64;
const TEXT_CHARS_MAX: usize = 255;
const DEFAULT_CURRENCY: &str = "BRL";
const INSTALLMENTS_MAX: u32 = 99;

const APPROVE: &str = "4242424242424242";
const DECLINE: &str = "4000000000000002";
const INSUFFICIENT_FUNDS: &str = "4000000000009995";
const PROCESSOR_ERROR: &str = "4000000000000119";
const SETTLES_LATER: &str = "4000000000000259";

/// Mercado Pago's sandbox cardholder names (sent as `payer.first_name`), the simulator card
/// each one becomes, and the `status_detail` a failed payment shows.
const TRIGGERS: &[(&str, &str, &str)] = &[
    ("APRO", APPROVE, "accredited"),
    ("TEST", APPROVE, "accredited"),
    ("CONT", SETTLES_LATER, "in_process"),
    ("OTHE", DECLINE, "rejected_by_issuer"),
    ("CALL", DECLINE, "call_for_authorize"),
    ("FUND", INSUFFICIENT_FUNDS, "insufficient_amount"),
    ("SECU", DECLINE, "bad_filled_security_code"),
    ("EXPI", DECLINE, "bad_filled_date"),
    ("FORM", DECLINE, "bad_filled_other"),
    ("CARD", DECLINE, "bad_filled_card_number"),
    ("INST", DECLINE, "invalid_installments"),
    ("DUPL", DECLINE, "duplicated_payment"),
    ("LOCK", DECLINE, "card_disabled"),
    ("CTNA", DECLINE, "card_type_not_allowed"),
    ("ATTE", DECLINE, "max_attempts"),
    ("BLAC", DECLINE, "rejected_high_risk"),
    ("UNSU", PROCESSOR_ERROR, "processing_error"),
];

pub fn router() -> Router<AppState> {
    let orders = Router::new()
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/capture", post(capture_order))
        .route("/v1/orders/{id}/cancel", post(cancel_order))
        .route("/v1/orders/{id}/refund", post(refund_order))
        .fallback(|| async { MpError::NotFound })
        .method_not_allowed_fallback(|| async { MpError::MethodNotAllowed });
    Router::new().nest(PREFIX, orders)
}

async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<String, MpError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(MpError::Unauthorized)?;
    match app.credentials.merchant(ACCESS_TOKEN, token).await? {
        Some(merchant) => Ok(merchant),
        None if is_test_token(token) => Err(MpError::InvalidCredentials),
        None => Err(MpError::Unauthorized),
    }
}

/// A well-formed Mercado Pago test access token: `TEST-<digits>-<digits>-<hex>-<digits>`.
fn is_test_token(token: &str) -> bool {
    let Some(rest) = token.strip_prefix("TEST-") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    let digits = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 4
        && digits(parts[0])
        && digits(parts[1])
        && !parts[2].is_empty()
        && parts[2].len() <= 64
        && parts[2].bytes().all(|b| b.is_ascii_hexdigit())
        && digits(parts[3])
}

/// The `X-Idempotency-Key` claim for a POST, fingerprinted by path and body, scoped per
/// operation so one key may serve a create and a capture (the Node SDK resends it).
fn idempotency(
    headers: &HeaderMap,
    required: bool,
    op: Op,
    path: &str,
    body: &[u8],
) -> Result<Option<IdempotencyClaim>, MpError> {
    let key = pipeline::idempotency_key(headers, IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_CHARS_MAX)
        .map_err(|_| MpError::InvalidIdempotencyKeyLength)?;
    let Some(key) = key else {
        return if required {
            Err(MpError::EmptyRequiredHeader)
        } else {
            Ok(None)
        };
    };
    let scope = match op {
        Op::Create => "mercadopago:create",
        Op::Capture => "mercadopago:capture",
        Op::Cancel => "mercadopago:cancel",
        Op::Refund => "mercadopago:refund",
    };
    let post = axum::http::Method::POST;
    Ok(Some(pipeline::key_claim(scope, key, &post, path, body)))
}

/// The sandbox fault trigger: answers a 500 before anything is read or written.
fn sandbox_fault(headers: &HeaderMap) -> Result<(), MpError> {
    match headers.get(FAULT_HEADER).map(|v| v.to_str().unwrap_or("")) {
        None => Ok(()),
        Some("internal_error") => Err(MpError::InternalError),
        Some("idempotency_validation_failed") => Err(MpError::IdempotencyValidationFailed),
        Some(_) => Err(MpError::PropertyValue(format!(
            "{FAULT_HEADER} must be `internal_error` or `idempotency_validation_failed`"
        ))),
    }
}

fn order_id(mp_id: &str) -> Result<String, MpError> {
    ids::parse(ids::ORDER, "ord_", mp_id).ok_or(MpError::InvalidPathParam)
}

/// True for a body that carries nothing: empty, whitespace, `{}` or `null`.
fn is_empty_body(bytes: &[u8]) -> Result<bool, MpError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(true);
    }
    let value: serde_json::Value = parse_json(bytes)?;
    Ok(match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(map) => map.is_empty(),
        _ => false,
    })
}

/// A body that must carry nothing.
fn expect_empty(bytes: &[u8]) -> Result<(), MpError> {
    if is_empty_body(bytes)? {
        Ok(())
    } else {
        Err(MpError::UnsupportedProperties(
            "this endpoint takes no body".into(),
        ))
    }
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, MpError> {
    match value {
        Some(v) if !check_len(&v, 1, max) => Err(MpError::PropertyValue(format!(
            "{field} must be 1 to {max} characters"
        ))),
        other => Ok(other),
    }
}

/// A positive decimal string ("24.50"), checked for its shape here and resolved exactly
/// against the order's currency inside the write, never through a float.
fn decimal_amount(field: &str, raw: &RawValue) -> Result<RequestedAmount, MpError> {
    decimal_text(field, raw).map(RequestedAmount::Decimal)
}

/// A positive decimal string in a currency already known (an order being created).
fn decimal_in(field: &str, raw: &RawValue, currency: Currency) -> Result<Amount, MpError> {
    let text = decimal_text(field, raw)?;
    currency
        .parse_decimal(&text)
        .map_err(|e| MpError::PropertyValue(format!("{field} {e}")))
}

fn decimal_text(field: &str, raw: &RawValue) -> Result<String, MpError> {
    if !raw.get().starts_with('"') {
        return Err(MpError::PropertyType(format!(
            "{field} must be a decimal string such as \"24.50\""
        )));
    }
    let text = raw_number_text(raw).unwrap_or_default();
    let plain = {
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, "0"));
        !whole.is_empty()
            && !fraction.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
    };
    if !plain {
        return Err(MpError::PropertyValue(format!(
            "{field} must be a non-negative decimal string such as \"24.50\""
        )));
    }
    if text.bytes().all(|b| matches!(b, b'0' | b'.')) {
        return Err(MpError::PropertyValue(format!(
            "{field} must be greater than zero"
        )));
    }
    Ok(text)
}

/// The simulator card chosen by the sandbox triggers: a cardholder name in `payer.first_name`
/// first, then a test card number sent as `payment_method.token`, else approval.
fn choose_card(payer: Option<&Payer>, token: Option<&str>) -> (String, Option<String>) {
    if let Some(name) = payer.and_then(|p| p.first_name.as_deref()) {
        let name = name.trim().to_ascii_uppercase();
        if let Some((trigger, card, _)) = TRIGGERS.iter().find(|(t, ..)| *t == name) {
            return ((*card).to_owned(), Some((*trigger).to_owned()));
        }
    }
    if let Some(token) = token
        && Card::is_plausible_number(token)
    {
        return (token.to_owned(), None);
    }
    (APPROVE.to_owned(), None)
}

fn new_order(merchant_id: String, request: CreateOrderRequest) -> Result<NewOrder, MpError> {
    if request.kind != "online" {
        return Err(MpError::PropertyValue("type must be `online`".into()));
    }
    let processing_mode = request
        .processing_mode
        .unwrap_or_else(|| "automatic".into());
    if processing_mode != "automatic" {
        return Err(MpError::PropertyValue(
            "processing_mode must be `automatic` (Authcap processes the payment at creation)"
                .into(),
        ));
    }
    let capture_mode_text = request.capture_mode.unwrap_or_else(|| "automatic".into());
    let capture_mode = match capture_mode_text.as_str() {
        "manual" => CaptureMode::Manual,
        "automatic" | "automatic_async" => CaptureMode::Automatic,
        _ => {
            return Err(MpError::PropertyValue(
                "capture_mode must be `manual`, `automatic` or `automatic_async`".into(),
            ));
        }
    };
    if !check_len(&request.external_reference, 1, EXTERNAL_REFERENCE_CHARS_MAX) {
        return Err(MpError::PropertyValue(format!(
            "external_reference must be 1 to {EXTERNAL_REFERENCE_CHARS_MAX} characters"
        )));
    }
    let currency_code = request
        .currency
        .unwrap_or_else(|| DEFAULT_CURRENCY.to_owned());
    let currency = Currency::parse(&currency_code)
        .map_err(|e| MpError::PropertyValue(format!("currency {e}")))?;
    let description = text("description", request.description, TEXT_CHARS_MAX)?;
    let payer = match request.payer {
        Some(payer) => Some(valid_payer(payer)?),
        None => None,
    };
    let mut payments = request.transactions.payments;
    if payments.len() > 1 {
        return Err(MpError::MaximumItems(
            "transactions.payments takes exactly one payment".into(),
        ));
    }
    let Some(payment) = payments.pop() else {
        return Err(MpError::MinimumItems(
            "transactions.payments needs one payment".into(),
        ));
    };
    let total = decimal_in("total_amount", &request.total_amount, currency)?;
    let amount = decimal_in("transactions.payments[0].amount", &payment.amount, currency)?;
    if total != amount {
        return Err(MpError::InvalidTotalAmount);
    }
    let method = payment.payment_method;
    let id = text("payment_method.id", Some(method.id), 50)?;
    let kind = text("payment_method.type", Some(method.kind), 50)?;
    text("payment_method.token", method.token.clone(), 255)?;
    let statement_descriptor = text(
        "payment_method.statement_descriptor",
        method.statement_descriptor,
        22,
    )?;
    if let Some(n) = method.installments
        && !(1..=INSTALLMENTS_MAX).contains(&n)
    {
        return Err(MpError::PropertyValue(format!(
            "payment_method.installments must be 1 to {INSTALLMENTS_MAX}"
        )));
    }
    let (card, trigger) = choose_card(payer.as_ref(), method.token.as_deref());
    let metadata = Metadata {
        mercadopago: OrderMeta {
            kind: Some(request.kind),
            processing_mode: Some(processing_mode),
            capture_mode: Some(capture_mode_text),
            description,
            payer,
            payment_method: Some(PaymentMethodEcho {
                id,
                kind,
                installments: method.installments,
                statement_descriptor,
            }),
            trigger,
        },
    };
    Ok(NewOrder {
        id: new_id("ord_"),
        merchant_id,
        reference: request.external_reference,
        amount,
        surcharge: Amount::ZERO,
        currency,
        capture_mode,
        card: Card {
            number: card,
            expiry: None,
            cvc: None,
        },
        authorization_ttl_ms: 0, // set by the caller
        metadata: serde_json::to_string(&metadata).unwrap_or_default(),
        automatic_capture_id: new_id("cap_"),
    })
}

fn valid_payer(payer: Payer) -> Result<Payer, MpError> {
    let short = |field: &str, value: &Option<String>, max: usize| match value {
        Some(v) if !check_len(v, 1, max) => Err(MpError::PropertyValue(format!(
            "payer.{field} must be 1 to {max} characters"
        ))),
        _ => Ok(()),
    };
    short("customer_id", &payer.customer_id, 64)?;
    short("entity_type", &payer.entity_type, 32)?;
    short("email", &payer.email, 254)?;
    short("first_name", &payer.first_name, 100)?;
    short("last_name", &payer.last_name, 100)?;
    if let Some(email) = &payer.email
        && !email.contains('@')
    {
        return Err(MpError::PropertyValue(
            "payer.email must be an email".into(),
        ));
    }
    if let Some(i) = &payer.identification {
        short("identification.type", &i.kind, 32)?;
        short("identification.number", &i.number, 64)?;
    }
    if let Some(p) = &payer.phone {
        short("phone.area_code", &p.area_code, 16)?;
        short("phone.number", &p.number, 32)?;
    }
    if let Some(a) = &payer.address {
        for (field, value) in [
            ("address.street_name", &a.street_name),
            ("address.street_number", &a.street_number),
            ("address.zip_code", &a.zip_code),
            ("address.neighborhood", &a.neighborhood),
            ("address.city", &a.city),
            ("address.state", &a.state),
            ("address.complement", &a.complement),
        ] {
            short(field, value, 255)?;
        }
    }
    Ok(payer)
}

/// Mercado Pago's `status` / `status_detail` for an order (and its one payment), derived from
/// the core state.
fn status_of(
    record: &OrderRecord,
    meta: &OrderMeta,
    now: Timestamp,
) -> (&'static str, &'static str) {
    let order = &record.order;
    match order.failure {
        Some(AuthorizationFailure::Declined(code)) => {
            let detail = meta
                .trigger
                .as_deref()
                .and_then(|t| TRIGGERS.iter().find(|(name, ..)| *name == t))
                .map(|(_, _, detail)| *detail)
                .filter(|d| !matches!(*d, "accredited" | "in_process" | "processing_error"))
                .unwrap_or(match code {
                    DeclineCode::CardDeclined => "rejected_by_issuer",
                    DeclineCode::InsufficientFunds => "insufficient_amount",
                });
            return ("failed", detail);
        }
        Some(AuthorizationFailure::ProcessorError) => return ("failed", "processing_error"),
        None => {}
    }
    match order.status(now) {
        OrderStatus::Authorized | OrderStatus::PartiallyCaptured => {
            ("action_required", "waiting_capture")
        }
        OrderStatus::Captured | OrderStatus::Refunded
            if record.captures.iter().any(|c| !c.is_settled(now)) =>
        {
            ("processing", "in_process")
        }
        OrderStatus::Captured if !order.refunded_amount.is_zero() => {
            ("processed", "partially_refunded")
        }
        OrderStatus::Captured => ("processed", "accredited"),
        OrderStatus::Refunded => ("refunded", "refunded"),
        OrderStatus::Voided => ("cancelled", "cancelled"),
        OrderStatus::Expired => ("expired", "expired"),
        OrderStatus::Declined | OrderStatus::Failed => ("failed", "processing_error"),
    }
}

fn meta_of(metadata: &str) -> OrderMeta {
    serde_json::from_str::<Metadata>(metadata)
        .map(|m| m.mercadopago)
        .unwrap_or_default()
}

fn order_body(record: &OrderRecord, now: Timestamp) -> OrderBody {
    let order = &record.order;
    let meta = meta_of(&order.metadata);
    let currency = order.currency;
    let money = |amount: Amount| currency.format_decimal(amount);
    let (status, status_detail) = status_of(record, &meta, now);
    let id = ids::render(ids::ORDER, &order.id);
    let payment_id = format!("{}{}", ids::PAYMENT, ids::digits(&id));
    let total = order
        .amount
        .checked_add(order.surcharge)
        .unwrap_or(order.amount);
    let method = meta.payment_method.clone().unwrap_or_default();
    let capture_mode = meta
        .capture_mode
        .clone()
        .unwrap_or_else(|| order.capture_mode.as_str().to_owned());
    OrderBody {
        id,
        kind: meta.kind.clone().unwrap_or_else(|| "online".into()),
        processing_mode: meta
            .processing_mode
            .clone()
            .unwrap_or_else(|| "automatic".into()),
        external_reference: order.reference.clone(),
        description: meta.description.clone(),
        total_amount: money(total),
        total_paid_amount: money(order.captured_amount),
        currency: currency.code(),
        status,
        status_detail,
        capture_mode,
        created_date: rfc3339(order.created_at),
        last_updated_date: rfc3339(order.updated_at),
        payer: meta.payer.clone(),
        transactions: TransactionsBody {
            payments: vec![PaymentBody {
                id: payment_id.clone(),
                reference_id: ids::reference_id(&order.id),
                amount: money(total),
                paid_amount: money(order.captured_amount),
                refunded_amount: money(order.refunded_amount),
                status,
                status_detail,
                payment_method: PaymentMethodBody {
                    id: method.id.unwrap_or_else(|| order.card_brand.clone()),
                    kind: method.kind.unwrap_or_else(|| "credit_card".into()),
                    installments: method.installments.unwrap_or(1),
                    statement_descriptor: method.statement_descriptor,
                },
            }],
            refunds: record
                .refunds
                .iter()
                .map(|r| RefundBody {
                    id: ids::render(ids::REFUND, &r.id),
                    transaction_id: payment_id.clone(),
                    reference_id: ids::reference_id(&r.id),
                    amount: money(r.amount),
                    status: "processed",
                })
                .collect(),
        },
    }
}

fn render<T>(op: Op, outcome: &Result<Written<T>, WriteError>) -> StoredResponse {
    let written = match outcome {
        Ok(written) => written,
        Err(error) => return MpError::of_write(op, error).to_stored(),
    };
    let body = order_body(&written.record, written.now);
    match op {
        Op::Create if written.record.order.failure.is_some() => MpError::PaymentFailed {
            details: vec![format!(
                "{}: {}",
                body.transactions.payments[0].id, body.status_detail
            )],
            order: serde_json::to_value(&body).unwrap_or_default(),
        }
        .to_stored(),
        Op::Create | Op::Refund => pipeline::json(StatusCode::CREATED, &body),
        Op::Capture | Op::Cancel => pipeline::json(StatusCode::OK, &body),
    }
}

fn renderer<T: 'static>(op: Op) -> Render<T> {
    Box::new(move |outcome| render(op, outcome))
}

async fn execute(
    app: &AppState,
    merchant_id: String,
    idempotency: Option<IdempotencyClaim>,
    request: Request,
) -> Result<Response, MpError> {
    Ok(pipeline::write(app, merchant_id, idempotency, request).await?)
}

async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MpError> {
    let merchant_id = authenticate(&app, &headers).await?;
    let bytes = read_body(body).await?;
    let claim = idempotency(&headers, false, Op::Create, "/v1/orders", &bytes)?;
    sandbox_fault(&headers)?;
    let request: CreateOrderRequest = parse_json(&bytes)?;
    let mut new = new_order(merchant_id.clone(), request)?;
    new.authorization_ttl_ms = app.config.authorization_ttl.as_millis() as i64;
    let render = renderer(Op::Create);
    execute(
        &app,
        merchant_id,
        claim,
        Request::Create {
            new,
            notify: None,
            render,
        },
    )
    .await
}

async fn get_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, MpError> {
    let merchant_id = authenticate(&app, &headers).await?;
    let order_id = order_id(&id)?;
    let record = app
        .store
        .order(&merchant_id, OrderLocator::Id(order_id))
        .await?
        .ok_or(MpError::OrderNotFound)?;
    Ok(stored_response(
        pipeline::json(
            StatusCode::OK,
            &order_body(&record, app.store.merchant_now(&merchant_id).await?),
        ),
        false,
    ))
}

async fn capture_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, MpError> {
    let merchant_id = authenticate(&app, &headers).await?;
    let order_id = order_id(&id)?;
    let bytes = read_body(body).await?;
    let path = format!("/v1/orders/{id}/capture");
    let claim = idempotency(&headers, true, Op::Capture, &path, &bytes)?;
    sandbox_fault(&headers)?;
    expect_empty(&bytes)?;
    let capture = CaptureRequest {
        id: new_id("cap_"),
        amount: None,
        is_final: true,
        metadata: r#"{"mercadopago":{}}"#.into(),
        manual_orders_only: true,
        ..CaptureRequest::default()
    };
    let request = Request::Capture {
        order: OrderLocator::Id(order_id),
        request: capture,
        reference_scope: ReferenceScope::Order,
        render: renderer(Op::Capture),
    };
    execute(&app, merchant_id, claim, request).await
}

async fn cancel_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, MpError> {
    let merchant_id = authenticate(&app, &headers).await?;
    let order_id = order_id(&id)?;
    let bytes = read_body(body).await?;
    let path = format!("/v1/orders/{id}/cancel");
    let claim = idempotency(&headers, false, Op::Cancel, &path, &bytes)?;
    sandbox_fault(&headers)?;
    expect_empty(&bytes)?;
    let request = Request::Release {
        order: OrderLocator::Id(order_id),
        amount: None,
        render: renderer(Op::Cancel),
    };
    execute(&app, merchant_id, claim, request).await
}

async fn refund_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, MpError> {
    let merchant_id = authenticate(&app, &headers).await?;
    let order_id = order_id(&id)?;
    let bytes = read_body(body).await?;
    let path = format!("/v1/orders/{id}/refund");
    let claim = idempotency(&headers, false, Op::Refund, &path, &bytes)?;
    sandbox_fault(&headers)?;
    let amount = if is_empty_body(&bytes)? {
        None
    } else {
        let request: RefundRequest = parse_json(&bytes)?;
        let mut transactions = request.transactions;
        if transactions.len() > 1 {
            return Err(MpError::MaximumItems(
                "transactions takes one entry: the order has one payment".into(),
            ));
        }
        let Some(transaction) = transactions.pop() else {
            return Err(MpError::MinimumItems(
                "transactions needs one entry; send no body for a full refund".into(),
            ));
        };
        let Some(payment_order) = ids::parse(ids::PAYMENT, "ord_", &transaction.id) else {
            return Err(MpError::InvalidTransactionId);
        };
        if payment_order != order_id {
            return Err(MpError::TransactionNotFound);
        }
        Some(decimal_amount(
            "transactions[0].amount",
            &transaction.amount,
        )?)
    };
    let refund = CoreRefund {
        id: new_id("ref_"),
        amount,
        currency: None,
        reference: None,
        reason: None,
        metadata: r#"{"mercadopago":{}}"#.into(),
    };
    let request = Request::Refund {
        order: OrderLocator::Id(order_id),
        request: refund,
        render: renderer(Op::Refund),
    };
    execute(&app, merchant_id, claim, request).await
}
