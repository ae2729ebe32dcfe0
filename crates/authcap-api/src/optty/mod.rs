//! The Optty Merchant API under `/optty`: an OAuth 2 token endpoint issuing HS256 JWTs, and
//! orders addressed by the merchant's `orderReference` — create (authorized at once through the
//! simulator, capture deferred), read, capture, void, refund. Amounts are JSON numbers in major
//! units; errors are `{statusCode, message, error}`.
//!
//! References (`captureReference`, `voidReference`, `refundReference`, `orderReference`) are the
//! idempotency keys: the same reference with the same request replays the stored answer, with a
//! different request it is refused (400).

pub mod error;
pub mod token;
pub mod types;

use authcap_core::{
    Amount, AmountError, Capture, CaptureMode, CaptureRequest, Card, Currency, NewOrder, Order,
    OrderStatus, Refund, RefundRequest, RequestedAmount, Shipping, Timestamp,
};
use authcap_store::{
    ClaimKind, CredentialKind, IdempotencyClaim, OrderLocator, OrderNotifications, OrderRecord,
    ReferenceScope, Render, Request, StoredResponse, Written,
};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::wire::stored_response;
use crate::wire::{check_len, new_id, parse_json, read_body, rfc3339, sha256_hex};
use crate::{AppState, pipeline};
use error::Context;
pub use error::OpttyError;
use types::*;

/// The merchant's Optty client credentials, exchanged for a token at `POST /optty/token`.
pub const CLIENT_ID: CredentialKind = CredentialKind("optty_client_id");
pub const CLIENT_SECRET: CredentialKind = CredentialKind("optty_client_secret");

const REFERENCE_CHARS_MAX: usize = 100;
const TEXT_CHARS_MAX: usize = 255;
const CALLBACK_URL_CHARS_MAX: usize = 2048;
/// The simulator card an order gets when nothing asks for another outcome.
const DEFAULT_CARD: &str = "4242424242424242";

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/token", post(token::token))
        .route("/orders", post(create_order))
        .route("/orders/{order_reference}", get(get_order))
        .route("/orders/{order_reference}/capture", post(capture_order))
        .route("/orders/{order_reference}/void", post(void_order))
        .route("/orders/{order_reference}/refund", post(refund_order))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found);
    Router::new().nest("/optty", api)
}

/// NestJS answers an unknown route, or a known path with another method, with
/// `404 Cannot <METHOD> <path>`.
async fn not_found(method: Method, uri: Uri) -> OpttyError {
    // Inside the nest, the path has lost its `/optty` prefix.
    OpttyError::RouteNotFound(format!("Cannot {method} /optty{}", uri.path()))
}

/// A JSON object body (serde would also read a struct from an array, positionally).
fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, OpttyError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(OpttyError::Invalid("the body must be a JSON object".into()));
    }
    Ok(parse_json(bytes)?)
}

fn invalid(field: &str, why: impl std::fmt::Display) -> OpttyError {
    OpttyError::Invalid(format!("`{field}` {why}"))
}

fn path_reference(path: Result<Path<String>, PathRejection>) -> Result<String, OpttyError> {
    let Path(reference) =
        path.map_err(|_| invalid("orderReference", "is not a valid path segment"))?;
    Ok(reference)
}

fn reference(field: &str, value: &str) -> Result<(), OpttyError> {
    if check_len(value, 1, REFERENCE_CHARS_MAX) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format_args!("must be 1 to {REFERENCE_CHARS_MAX} characters"),
        ))
    }
}

fn text(field: &str, value: Option<String>, min: usize) -> Result<Option<String>, OpttyError> {
    match value {
        Some(v) if !check_len(&v, min, TEXT_CHARS_MAX) => Err(invalid(
            field,
            format_args!("must be {min} to {TEXT_CHARS_MAX} characters"),
        )),
        other => Ok(other),
    }
}

/// A JSON number in major units, exact, with at most 2 decimals (and no more than the
/// currency has), ≥ 0.
fn major_units(field: &str, raw: &RawValue, currency: Currency) -> Result<Amount, OpttyError> {
    let text = raw.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(invalid(field, "must be a number"));
    }
    let allowed = currency.exponent().min(2);
    let describe = |error: AmountError| match error {
        AmountError::NotANumber => invalid(field, "must be a number"),
        AmountError::Negative => invalid(field, "must not be less than 0"),
        AmountError::TooManyDecimals { .. } => invalid(
            field,
            format_args!(
                "must have at most {allowed} decimal places in {}",
                currency.code()
            ),
        ),
        AmountError::TooLarge => invalid(field, "is too large"),
    };
    authcap_core::money::parse_decimal(text, allowed).map_err(describe)?;
    currency.parse_decimal(text).map_err(describe)
}

/// A positive JSON number with at most 2 decimals, checked for its shape here and resolved
/// against the order's currency inside the write (where a currency with fewer decimals refuses
/// more). Returns the text and its value in hundredths, which identifies it (`10` = `10.00`).
fn positive_major_text(field: &str, raw: &RawValue) -> Result<(String, i64), OpttyError> {
    let text = raw.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(invalid(field, "must be a number"));
    }
    let hundredths = authcap_core::money::parse_decimal(text, 2).map_err(|error| match error {
        AmountError::NotANumber => invalid(field, "must be a number"),
        AmountError::Negative => invalid(field, "must not be less than 0"),
        AmountError::TooManyDecimals { .. } => invalid(field, "must have at most 2 decimal places"),
        AmountError::TooLarge => invalid(field, "is too large"),
    })?;
    positive(field, hundredths)?;
    Ok((text.to_owned(), hundredths.minor_units()))
}

fn positive(field: &str, amount: Amount) -> Result<Amount, OpttyError> {
    if amount.is_zero() {
        Err(invalid(field, "must be greater than 0"))
    } else {
        Ok(amount)
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> StoredResponse {
    pipeline::json_as(status, "application/json; charset=utf-8", body)
}

fn claim(scope: String, key: &str, fingerprint: serde_json::Value) -> IdempotencyClaim {
    IdempotencyClaim {
        scope,
        key: key.to_owned(),
        fingerprint: sha256_hex(&[fingerprint.to_string().as_bytes()]),
        kind: ClaimKind::ResourceId,
    }
}

async fn execute(
    app: &AppState,
    merchant_id: String,
    idempotency: IdempotencyClaim,
    request: Request,
    reference_field: &'static str,
) -> Result<Response, OpttyError> {
    pipeline::write(app, merchant_id, Some(idempotency), request)
        .await
        .map_err(|e| OpttyError::from_store(e, reference_field))
}

async fn find_order(
    app: &AppState,
    merchant_id: &str,
    reference: &str,
) -> Result<OrderRecord, OpttyError> {
    app.store
        .order(merchant_id, OrderLocator::Reference(reference.to_owned()))
        .await?
        .ok_or_else(|| OpttyError::OrderNotFound(reference.to_owned()))
}

// ---------------------------------------------------------------- statuses

/// Optty's order status: SUCCESSFUL once authorized (whatever was captured or refunded since),
/// CANCELLED when voided or expired before any capture, DECLINED, ERROR.
fn order_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Authorized
        | OrderStatus::PartiallyCaptured
        | OrderStatus::Captured
        | OrderStatus::Refunded => "SUCCESSFUL",
        OrderStatus::Voided | OrderStatus::Expired => "CANCELLED",
        OrderStatus::Declined => "DECLINED",
        OrderStatus::Failed => "ERROR",
    }
}

/// Authcap's `captureStatus`: NOT_AUTHORIZED, NOT_CAPTURED, PARTIALLY_CAPTURED, CAPTURED,
/// VOIDED, EXPIRED.
fn capture_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Declined | OrderStatus::Failed => "NOT_AUTHORIZED",
        OrderStatus::Authorized => "NOT_CAPTURED",
        OrderStatus::PartiallyCaptured => "PARTIALLY_CAPTURED",
        OrderStatus::Captured | OrderStatus::Refunded => "CAPTURED",
        OrderStatus::Voided => "VOIDED",
        OrderStatus::Expired => "EXPIRED",
    }
}

fn reject_reason(order: &Order) -> Option<&'static str> {
    match order.failure {
        Some(authcap_core::order::AuthorizationFailure::Declined(code)) => Some(code.as_str()),
        Some(authcap_core::order::AuthorizationFailure::ProcessorError) | None => None,
    }
}

fn failure_reason(order: &Order) -> Option<&'static str> {
    match order.failure {
        Some(authcap_core::order::AuthorizationFailure::ProcessorError) => Some("processor_error"),
        Some(authcap_core::order::AuthorizationFailure::Declined(_)) | None => None,
    }
}

fn cancelled_by(status: OrderStatus) -> Option<&'static str> {
    match status {
        OrderStatus::Voided => Some("MERCHANT"),
        OrderStatus::Expired => Some("SYSTEM"),
        OrderStatus::Authorized
        | OrderStatus::PartiallyCaptured
        | OrderStatus::Captured
        | OrderStatus::Refunded
        | OrderStatus::Declined
        | OrderStatus::Failed => None,
    }
}

fn provider(order: &Order) -> String {
    OrderMetadata::of(&order.metadata)
        .bnpl_provider
        .unwrap_or_else(|| "AUTHCAP".to_owned())
}

pub fn order_response(record: &OrderRecord, now: Timestamp) -> OrderResponse {
    let order = &record.order;
    let currency = order.currency;
    let status = order.status(now);
    OrderResponse {
        merchant_reference: order.reference.clone(),
        status: order_status(status),
        amount: number(order.amount, currency),
        surcharge: number(order.surcharge, currency),
        currency: currency.code(),
        provider: provider(order),
        updated_at: rfc3339(order.updated_at),
        failure_reason: failure_reason(order),
        bnpl_order_id: order
            .authorization
            .as_ref()
            .map(|a| a.processor_reference.clone()),
        transaction_reference: order.id.clone(),
        reject_reason: reject_reason(order),
        partner_configuration: None,
        cancelled_by: cancelled_by(status),
        capture_status: capture_status(status),
        order_id: order.id.clone(),
        captured_amount: number(order.captured_amount, currency),
        refunded_amount: number(order.refunded_amount, currency),
        capturable_amount: number(order.capturable_amount(now), currency),
    }
}

// ---------------------------------------------------------------- create

/// The simulator card for an order: `testCard` if given, else a card number tagged onto the
/// customer's email (`jane+4000000000000002@example.com`), else the approving card.
fn choose_card(request: &CreateOrderRequest) -> Result<String, OpttyError> {
    if let Some(card) = &request.test_card {
        if !Card::is_plausible_number(card) {
            return Err(invalid(
                "testCard",
                "must be a card number of 12 to 19 digits that passes the Luhn check",
            ));
        }
        return Ok(card.clone());
    }
    let tagged = request
        .customer
        .as_ref()
        .and_then(|c| c.email.as_deref())
        .and_then(|email| email.split_once('@'))
        .and_then(|(local, _)| local.split_once('+'))
        .map(|(_, tag)| tag)
        .filter(|tag| Card::is_plausible_number(tag));
    Ok(tagged.unwrap_or(DEFAULT_CARD).to_owned())
}

fn new_order(
    app: &AppState,
    merchant_id: String,
    request: &CreateOrderRequest,
) -> Result<NewOrder, OpttyError> {
    reference("orderReference", &request.order_reference)?;
    let provider = &request.bnpl_provider;
    if !(1..=50).contains(&provider.len())
        || !provider
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(
            "bnplProvider",
            "must be an APM provider name such as KLARNA (A-Z, 0-9, _)",
        ));
    }
    let country = &request.purchase_country;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "purchaseCountry",
            "must be an ISO 3166 alpha-2 code such as AU",
        ));
    }
    let currency =
        Currency::parse(&request.purchase_currency).map_err(|e| invalid("purchaseCurrency", e))?;
    let locale = text("locale", request.locale.clone(), 1)?;
    let amount = positive(
        "orderAmount",
        major_units("orderAmount", &request.order_amount, currency)?,
    )?;
    let optional = |field: &str, raw: &Option<Box<RawValue>>| -> Result<Amount, OpttyError> {
        match raw {
            Some(raw) => major_units(field, raw, currency),
            None => Ok(Amount::ZERO),
        }
    };
    let surcharge = optional("surcharge", &request.surcharge)?;
    let tax = optional("taxAmount", &request.tax_amount)?;
    let shipping = optional("shippingAmount", &request.shipping_amount)?;
    let discount = optional("discountAmount", &request.discount_amount)?;
    if amount.checked_add(surcharge).is_none() {
        return Err(invalid(
            "surcharge",
            "makes orderAmount + surcharge too large",
        ));
    }
    if let Some(items) = &request.order_items
        && !items.is_empty()
    {
        let mut sum: i128 = 0;
        for (index, item) in items.iter().enumerate() {
            if !check_len(&item.name, 1, TEXT_CHARS_MAX) {
                return Err(invalid(
                    &format!("orderItems[{index}].name"),
                    format_args!("must be 1 to {TEXT_CHARS_MAX} characters"),
                ));
            }
            if let Some(raw) = &item.unit_price {
                major_units(&format!("orderItems[{index}].unitPrice"), raw, currency)?;
            }
            let total = major_units(
                &format!("orderItems[{index}].totalAmount"),
                &item.total_amount,
                currency,
            )?;
            sum += i128::from(total.minor_units());
        }
        let expected = sum + i128::from(shipping.minor_units()) + i128::from(tax.minor_units())
            - i128::from(discount.minor_units());
        if expected != i128::from(amount.minor_units()) {
            return Err(invalid(
                "orderAmount",
                "must equal sum(orderItems.totalAmount) + shippingAmount + taxAmount - discountAmount",
            ));
        }
    }
    if let Some(customer) = &request.customer {
        text("customer.firstName", customer.first_name.clone(), 0)?;
        text("customer.lastName", customer.last_name.clone(), 0)?;
        text("customer.email", customer.email.clone(), 0)?;
        text("customer.phoneNumber", customer.phone_number.clone(), 0)?;
    }
    let card = choose_card(request)?;
    let metadata = MetadataEnvelope {
        optty: OrderMetadata {
            bnpl_provider: Some(provider.clone()),
            purchase_country: Some(country.clone()),
            locale,
            order_token: Some(new_id("otk_")),
        },
    };
    Ok(NewOrder {
        id: new_id("ord_"),
        merchant_id,
        reference: request.order_reference.clone(),
        amount,
        surcharge,
        currency,
        capture_mode: CaptureMode::Manual,
        card: Card {
            number: card,
            expiry: None,
            cvc: None,
        },
        authorization_ttl_ms: app.config.authorization_ttl.as_millis() as i64,
        metadata: serde_json::to_string(&metadata).unwrap_or_default(),
        automatic_capture_id: new_id("cap_"),
    })
}

pub async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpttyError> {
    let merchant_id = token::authenticate(&app, &headers).await?;
    let bytes = read_body(body).await?;
    let request: CreateOrderRequest = parse_object(&bytes)?;
    let new = new_order(&app, merchant_id.clone(), &request)?;
    let notify = callback(request.dynamic_callback_url.as_deref())?;
    let context = Context {
        order_reference: new.reference.clone(),
        reference_field: "orderReference",
        amount_field: "orderAmount",
    };
    let idempotency = pipeline::resource_claim(
        "optty:order",
        &new.reference,
        &Method::POST,
        "/optty/orders",
        &bytes,
    );
    let render: Render<()> = Box::new(move |outcome| match outcome {
        Ok(written) => {
            let order = &written.record.order;
            let currency = order.currency;
            let status = order.status(written.now);
            let metadata = OrderMetadata::of(&order.metadata);
            let body = CreateOrderResponse {
                order_id: order.id.clone(),
                order_token: metadata.order_token.unwrap_or_default(),
                redirect_url: None,
                bnpl_provider: metadata.bnpl_provider.unwrap_or_default(),
                order_reference: order.reference.clone(),
                status: order_status(status),
                amount: number(order.amount, currency),
                surcharge: number(order.surcharge, currency),
                currency: currency.code(),
                capture_status: capture_status(status),
                reject_reason: reject_reason(order),
                failure_reason: failure_reason(order),
            };
            json_response(StatusCode::CREATED, &body)
        }
        Err(error) => OpttyError::from_write(error, &context).to_stored(),
    });
    let request = Request::Create {
        new,
        notify,
        render,
    };
    execute(&app, merchant_id, idempotency, request, "orderReference").await
}

/// `dynamicCallbackUrl`: where the order's authorization outcome (`ORDER_ASYNC_CALLBACK`) goes.
fn callback(url: Option<&str>) -> Result<Option<OrderNotifications>, OpttyError> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !check_len(url, 1, CALLBACK_URL_CHARS_MAX) {
        return Err(invalid(
            "dynamicCallbackUrl",
            format_args!("must be at most {CALLBACK_URL_CHARS_MAX} characters"),
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.parse::<axum::http::Uri>().is_err()
    {
        return Err(invalid(
            "dynamicCallbackUrl",
            "must be an http:// or https:// URL",
        ));
    }
    Ok(Some(OrderNotifications {
        url: url.to_owned(),
        format: crate::notifications::OPTTY_CALLBACK.to_owned(),
        events: crate::notifications::OPTTY_CALLBACK_EVENTS
            .iter()
            .map(|kind| kind.as_str().to_owned())
            .collect(),
    }))
}

// ---------------------------------------------------------------- read

pub async fn get_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, OpttyError> {
    let merchant_id = token::authenticate(&app, &headers).await?;
    let reference = path_reference(path)?;
    let record = find_order(&app, &merchant_id, &reference).await?;
    Ok(stored_response(
        json_response(
            StatusCode::OK,
            &order_response(&record, app.store.merchant_now(&merchant_id).await?),
        ),
        false,
    )
    .into_response())
}

// ---------------------------------------------------------------- capture

pub async fn capture_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, OpttyError> {
    let merchant_id = token::authenticate(&app, &headers).await?;
    let order_reference = path_reference(path)?;
    let bytes = read_body(body).await?;
    if bytes.is_empty() {
        return Err(OpttyError::Invalid(
            "the body is required: `captureReference` and `amount`".into(),
        ));
    }
    let request: CaptureOrderDto = parse_object(&bytes)?;
    reference("captureReference", &request.capture_reference)?;
    let description = text("description", request.description, 0)?;
    let shipping = match request.shipping_info {
        Some(info) => {
            text(
                "shippingInfo.shippingCompany",
                Some(info.shipping_company.clone()),
                1,
            )?;
            text(
                "shippingInfo.shippingMethod",
                Some(info.shipping_method.clone()),
                1,
            )?;
            text(
                "shippingInfo.trackingNumber",
                Some(info.tracking_number.clone()),
                1,
            )?;
            Some(info)
        }
        None => None,
    };
    let (amount, hundredths) = positive_major_text("amount", &request.amount)?;
    let idempotency = claim(
        format!("optty:capture:{order_reference}"),
        &request.capture_reference,
        json!({
            "amount": hundredths,
            "description": description,
            "shippingInfo": shipping,
        }),
    );
    let capture = CaptureRequest {
        id: new_id("cap_"),
        amount: Some(RequestedAmount::Decimal(amount)),
        is_final: false,
        reference: Some(request.capture_reference.clone()),
        invoice_id: None,
        description,
        reason: None,
        shipping: shipping.map(|s| Shipping {
            carrier: Some(s.shipping_company),
            method: Some(s.shipping_method),
            tracking_code: Some(s.tracking_number),
        }),
        metadata: json!({"optty": {"captureReference": request.capture_reference}}).to_string(),
        ..CaptureRequest::default()
    };
    let context = Context {
        order_reference: order_reference.clone(),
        reference_field: "captureReference",
        amount_field: "amount",
    };
    let capture_reference = request.capture_reference;
    let render: Render<Capture> = Box::new(move |outcome| match outcome {
        Ok(Written {
            record,
            result: capture,
            ..
        }) => json_response(
            StatusCode::OK,
            &CaptureOrderResponse {
                capture_reference,
                capture_id: capture.id.clone(),
                captured_amount: number(capture.amount, record.order.currency),
            },
        ),
        Err(error) => OpttyError::from_write(error, &context).to_stored(),
    });
    let request = Request::Capture {
        order: OrderLocator::Reference(order_reference),
        request: capture,
        reference_scope: ReferenceScope::Order,
        render,
    };
    execute(&app, merchant_id, idempotency, request, "captureReference").await
}

// ---------------------------------------------------------------- void

pub async fn void_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, OpttyError> {
    let merchant_id = token::authenticate(&app, &headers).await?;
    let order_reference = path_reference(path)?;
    let bytes = read_body(body).await?;
    if bytes.is_empty() {
        return Err(OpttyError::Invalid(
            "the body is required: `voidReference` and `amount`".into(),
        ));
    }
    let request: VoidOrderDto = parse_object(&bytes)?;
    reference("voidReference", &request.void_reference)?;
    let description = text("description", request.description, 0)?;
    let (amount, hundredths) = positive_major_text("amount", &request.amount)?;
    let idempotency = claim(
        "optty:void".into(),
        &request.void_reference,
        json!({
            "order": order_reference,
            "amount": hundredths,
            "description": description,
        }),
    );
    let context = Context {
        order_reference: order_reference.clone(),
        reference_field: "voidReference",
        amount_field: "amount",
    };
    let void_reference = request.void_reference;
    let voided_id = new_id("void_");
    let render: Render<Amount> = Box::new(move |outcome| match outcome {
        Ok(written) => json_response(
            StatusCode::OK,
            &VoidOrderResponse {
                void_reference,
                voided_id,
                amount: number(written.result, written.record.order.currency),
            },
        ),
        Err(error) => OpttyError::from_write(error, &context).to_stored(),
    });
    let request = Request::Release {
        order: OrderLocator::Reference(order_reference),
        amount: Some(RequestedAmount::Decimal(amount)),
        render,
    };
    execute(&app, merchant_id, idempotency, request, "voidReference").await
}

// ---------------------------------------------------------------- refund

pub async fn refund_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, OpttyError> {
    let merchant_id = token::authenticate(&app, &headers).await?;
    let order_reference = path_reference(path)?;
    let bytes = read_body(body).await?;
    if bytes.is_empty() {
        return Err(OpttyError::Invalid(
            "the body is required: `refundReference` and `refundAmount`".into(),
        ));
    }
    let request: RefundOrderDto = parse_object(&bytes)?;
    reference("refundReference", &request.refund_reference)?;
    let description = text("refundDescription", request.refund_description, 0)?;
    let currency = Currency::parse(&request.refund_amount.currency)
        .map_err(|e| invalid("refundAmount.currency", e))?;
    let (amount, hundredths) =
        positive_major_text("refundAmount.amount", &request.refund_amount.amount)?;
    let idempotency = claim(
        "optty:refund".into(),
        &request.refund_reference,
        json!({
            "order": order_reference,
            "amount": hundredths,
            "description": description,
        }),
    );
    let refund = RefundRequest {
        id: new_id("ref_"),
        amount: Some(RequestedAmount::Decimal(amount)),
        currency: Some(currency),
        reference: Some(request.refund_reference.clone()),
        reason: description.clone(),
        metadata: json!({"optty": {"refundReference": request.refund_reference}}).to_string(),
    };
    let context = Context {
        order_reference: order_reference.clone(),
        reference_field: "refundReference",
        amount_field: "refundAmount.amount",
    };
    let refund_reference = request.refund_reference;
    let render: Render<Refund> = Box::new(move |outcome| match outcome {
        Ok(Written {
            record,
            result: refund,
            ..
        }) => json_response(
            StatusCode::OK,
            &RefundOrderResponse {
                refund_reference,
                bnpl_provider: provider(&record.order),
                refunded_amount: number(refund.amount, record.order.currency),
                refund_status: "SUCCESSFUL",
                description,
                refund_date: rfc3339(refund.created_at),
                bnpl_refund_id: refund.id.clone(),
            },
        ),
        Err(error) => OpttyError::from_write(error, &context).to_stored(),
    });
    let request = Request::Refund {
        order: OrderLocator::Reference(order_reference),
        request: refund,
        render,
    };
    execute(&app, merchant_id, idempotency, request, "refundReference").await
}
