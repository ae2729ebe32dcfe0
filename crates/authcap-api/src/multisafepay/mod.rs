//! The MultiSafepay dialect under `/multisafepay/v1/json/`: orders with manual capture, partial
//! and full captures, cancelling the reservation, refunds — wire-compatible with MultiSafepay's
//! JSON API and its official SDKs (Python `multisafepay`, npm `@multisafepay/api-wrapper`).
//!
//! An order's `order_id` is the Authcap order's `reference`; a capture's `new_order_id` is the
//! capture's `reference`, readable with `GET /orders/{new_order_id}`. Every success is
//! `{"success":true,"data":…}`; every error is [`MspError`].

pub mod error;
pub mod types;

use authcap_core::{
    Amount, AmountError, Capture, CaptureMode, CaptureRequest, Card, Currency, NewOrder, Refund,
    RefundRequest, Shipping,
};
use authcap_store::{
    CredentialKind, IdempotencyClaim, OrderLocator, OrderNotifications, ReferenceScope, Render,
    Request, StoreError, StoredResponse, WriteError, Written,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{patch, post};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::wire::PathParam;
use crate::wire::stored_response;
use crate::wire::{check_len, new_id, parse_json, parse_minor_units, read_body};
use crate::{AppState, pipeline};
pub use error::MspError;
use types::*;

/// Where the dialect is mounted.
pub const PREFIX: &str = "/multisafepay/v1/json";
/// The merchant's MultiSafepay API key.
pub const API_KEY: CredentialKind = CredentialKind("multisafepay_api_key");
/// `order_id`, `new_order_id`, `invoice_id` and `gateway`.
const ID_CHARS_MAX: usize = 50;
/// `description` of orders, captures and refunds (MultiSafepay error 1008: max. 200).
const DESCRIPTION_CHARS_MAX: usize = 200;
/// `var1`..`var3` (MultiSafepay error 1010: max. 100).
const VAR_CHARS_MAX: usize = 100;
/// Other free text: `reason`, `carrier`, `tracktrace_code`, `memo`, card holder name.
const TEXT_CHARS_MAX: usize = 255;
/// URLs in `payment_options`.
const URL_CHARS_MAX: usize = 2048;
/// `payment_options.notification_url` (MultiSafepay: max. 150).
const NOTIFICATION_URL_CHARS_MAX: usize = 150;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
/// The card the simulator approves, used when an order names no card.
const DEFAULT_CARD: &str = "4242424242424242";

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/orders", post(create_order))
        .route(
            "/orders/{order_id}",
            axum::routing::get(get_order).patch(update_order),
        )
        .route("/orders/{order_id}/capture", post(capture_order))
        .route("/orders/{order_id}/refunds", post(refund_order))
        .route("/capture/{order_id}", patch(cancel_reservation))
        .fallback(|| async { MspError::UnknownEndpoint })
        .method_not_allowed_fallback(|| async { MspError::MethodNotAllowed });
    Router::new().nest(PREFIX, api)
}

// ---------------------------------------------------------------------------------------------
// Authentication, idempotency, field helpers
// ---------------------------------------------------------------------------------------------

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    format!("/?{query}")
        .parse()
        .ok()
        .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The API key from the `api_key` header, `Authorization: Bearer`, or `?api_key=`, in that
/// order. Other query parameters (`locale`, `order_id`, …) are ignored.
async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<String, MspError> {
    let from_header = headers
        .get("api_key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let from_bearer = || {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned())
    };
    let from_query = || {
        query_pairs(query)
            .into_iter()
            .find(|(name, _)| name == "api_key")
            .map(|(_, value)| value)
    };
    let key = from_header
        .or_else(from_bearer)
        .or_else(from_query)
        .filter(|k| !k.is_empty())
        .ok_or(MspError::InvalidApiKey)?;
    app.credentials
        .merchant(API_KEY, &key)
        .await?
        .ok_or(MspError::InvalidApiKey)
}

/// A claim under an `Idempotency-Key` header, or under the request's natural key (`order_id`
/// of a create, `new_order_id` of a capture), fingerprinted by method, path (without the
/// query, which the SDK varies) and body. `reused` is the error when the key was used for a
/// different request.
struct Claim {
    claim: IdempotencyClaim,
    reused: MspError,
}

fn header_claim(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Option<Claim>, MspError> {
    let key = pipeline::idempotency_key(headers, "idempotency-key", IDEMPOTENCY_KEY_CHARS_MAX)
        .map_err(|_| {
            MspError::InvalidRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            )
        })?;
    Ok(key.map(|key| Claim {
        claim: pipeline::key_claim("multisafepay:key", key, method, path, body),
        reused: MspError::IdempotencyKeyReused,
    }))
}

fn natural_claim(scope: &str, key: &str, path: &str, body: &[u8], reused: MspError) -> Claim {
    Claim {
        claim: pipeline::resource_claim(scope, key, &Method::POST, path, body),
        reused,
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> MspError {
    MspError::InvalidRequest(format!("`{field}` {why}"))
}

/// Free text: empty means absent (the documents' examples send `""`), else 1..=max chars.
fn text(
    field: &str,
    value: Option<String>,
    max: usize,
    error: fn(String) -> MspError,
) -> Result<Option<String>, MspError> {
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if !check_len(&v, 1, max) => {
            Err(error(format!("`{field}` must be at most {max} characters")))
        }
        other => Ok(other),
    }
}

/// An id documented as "integer / string": a JSON string, or an integer kept digit for digit
/// (and answered as an integer). Empty means absent.
fn id_text(field: &str, raw: Option<&RawValue>, max: usize) -> Result<Option<WireId>, MspError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let literal = raw.get();
    let is_number = !literal.starts_with('"');
    let value = if !is_number {
        serde_json::from_str::<String>(literal).map_err(|e| invalid(field, e))?
    } else if !literal.is_empty() && literal.bytes().all(|b| b.is_ascii_digit()) {
        literal.to_owned()
    } else {
        return Err(invalid(field, "must be a string or an integer"));
    };
    if value.is_empty() {
        return Ok(None);
    }
    if !check_len(&value, 1, max) {
        return Err(invalid(
            field,
            format_args!("must be at most {max} characters"),
        ));
    }
    Ok(Some(WireId::of(value, is_number)))
}

/// An amount in cents: a JSON integer, or a string of digits (the partial-capture document
/// shows `"amount": "2000"`). Never zero.
fn cents(field: &str, raw: &RawValue) -> Result<Amount, MspError> {
    let literal = raw.get();
    let parsed = if literal.starts_with('"') {
        match serde_json::from_str::<String>(literal) {
            Ok(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                authcap_core::money::parse_decimal(&s, 0)
            }
            _ => Err(AmountError::NotANumber),
        }
    } else {
        parse_minor_units(raw)
    };
    let amount = parsed.map_err(|error| {
        MspError::InvalidAmount(match error {
            AmountError::TooManyDecimals { .. } | AmountError::NotANumber => {
                format!("`{field}` must be a whole number of cents (1000 is 10.00 EUR)")
            }
            other => format!("`{field}` {other}"),
        })
    })?;
    if amount.is_zero() {
        return Err(MspError::InvalidAmount(format!(
            "`{field}` must be greater than zero"
        )));
    }
    Ok(amount)
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, MspError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        Ok(parse_json(bytes)?)
    }
}

fn success<T: Serialize>(data: T) -> StoredResponse {
    pipeline::json(StatusCode::OK, &Success::of(data))
}

async fn execute(
    app: &AppState,
    merchant_id: String,
    claim: Option<Claim>,
    request: Request,
) -> Result<Response, MspError> {
    let (idempotency, reused) = match claim {
        Some(Claim { claim, reused }) => (Some(claim), Some(reused)),
        None => (None, None),
    };
    match pipeline::write(app, merchant_id, idempotency, request).await {
        Ok(response) => Ok(response),
        Err(StoreError::IdempotencyKeyReused) => {
            Err(reused.unwrap_or(MspError::IdempotencyKeyReused))
        }
        Err(other) => Err(other.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// POST /orders
// ---------------------------------------------------------------------------------------------

fn string_field(
    object: &Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<Option<String>, MspError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(name, "must be a string")),
    }
}

/// The card in `gateway_info` (`card_number`, `card_expiry_date` YYMM, `cvc`/`card_cvc`,
/// `card_holder_name`); without a card number the simulator's approving card is used.
fn card_of(
    gateway_info: Option<&Map<String, Value>>,
) -> Result<(Card, Option<String>, Option<String>), MspError> {
    let empty = Map::new();
    let info = gateway_info.unwrap_or(&empty);
    let number = string_field(info, "card_number", "gateway_info.card_number")?
        .map(|n| n.replace([' ', '-'], ""));
    let number = match number {
        None => DEFAULT_CARD.to_owned(),
        Some(n) if Card::is_plausible_number(&n) => n,
        Some(_) => {
            return Err(invalid(
                "gateway_info.card_number",
                "must be a card number of 12 to 19 digits that passes the Luhn check",
            ));
        }
    };
    let expiry_text = string_field(info, "card_expiry_date", "gateway_info.card_expiry_date")?;
    let expiry = match &expiry_text {
        None => None,
        Some(e) => {
            let valid = e.len() == 4
                && e.bytes().all(|b| b.is_ascii_digit())
                && matches!(e[2..].parse::<u8>(), Ok(1..=12));
            if !valid {
                return Err(invalid("gateway_info.card_expiry_date", "must be YYMM"));
            }
            Some(format!("{}/{}", &e[2..], &e[..2]))
        }
    };
    let cvc = match string_field(info, "cvc", "gateway_info.cvc")? {
        Some(c) => Some(c),
        None => string_field(info, "card_cvc", "gateway_info.card_cvc")?,
    };
    if let Some(c) = &cvc
        && !((3..=4).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("gateway_info.cvc", "must be 3 or 4 digits"));
    }
    let holder = text(
        "gateway_info.card_holder_name",
        string_field(info, "card_holder_name", "gateway_info.card_holder_name")?,
        TEXT_CHARS_MAX,
        MspError::InvalidRequest,
    )?;
    Ok((
        Card {
            number,
            expiry,
            cvc,
        },
        holder,
        expiry_text,
    ))
}

fn new_order(
    app: &AppState,
    merchant_id: String,
    request: CreateOrderRequest,
) -> Result<NewOrder, MspError> {
    let kind = request.kind.ok_or_else(|| missing("type"))?;
    if !matches!(kind.as_str(), "direct" | "redirect" | "paymentlink") {
        return Err(invalid(
            "type",
            "must be `direct`, `redirect` or `paymentlink`",
        ));
    }
    let order_id = id_text("order_id", request.order_id.as_deref(), ID_CHARS_MAX)?
        .ok_or_else(|| missing("order_id"))?;
    let order_id_is_number = order_id.is_number;
    let order_id = order_id.text;
    let currency_code = request.currency.ok_or_else(|| missing("currency"))?;
    let currency = Currency::parse(&currency_code)
        .map_err(|e| MspError::InvalidCurrency(format!("`currency` {e}")))?;
    let amount = cents(
        "amount",
        request.amount.as_deref().ok_or_else(|| missing("amount"))?,
    )?;
    let description = text(
        "description",
        request.description,
        DESCRIPTION_CHARS_MAX,
        MspError::InvalidDescription,
    )?
    .ok_or_else(|| MspError::InvalidDescription("`description` is required".into()))?;
    let gateway = text(
        "gateway",
        request.gateway,
        ID_CHARS_MAX,
        MspError::InvalidRequest,
    )?;
    let capture_mode = match request.capture.as_deref() {
        None | Some("") => CaptureMode::Automatic,
        Some("manual") => CaptureMode::Manual,
        Some(_) => return Err(invalid("capture", "must be `manual` (or absent)")),
    };
    let var = |field: &str, value| text(field, value, VAR_CHARS_MAX, MspError::InvalidVariable);
    let (var1, var2, var3) = (
        var("var1", request.var1)?,
        var("var2", request.var2)?,
        var("var3", request.var3)?,
    );
    let (card, card_holder_name, card_expiry_date) = card_of(request.gateway_info.as_ref())?;
    let (payment_url, cancel_url) = match &request.payment_options {
        Some(options) => {
            let url = |field: &str| {
                let name = format!("payment_options.{field}");
                text(
                    &name,
                    string_field(options, field, &name)?,
                    URL_CHARS_MAX,
                    MspError::InvalidRequest,
                )
            };
            (url("redirect_url")?, url("cancel_url")?)
        }
        None => (None, None),
    };
    let meta = OrderMeta {
        order_id_is_number,
        kind: Some(kind),
        gateway,
        description: Some(description),
        var1,
        var2,
        var3,
        items: request.items.filter(|i| !i.is_empty()),
        customer: request.customer,
        card_holder_name,
        card_expiry_date,
        // Authorization happens at once, so the "payment page" is the merchant's own
        // redirect page.
        payment_url,
        cancel_url,
    };
    Ok(NewOrder {
        id: new_id("ord_"),
        merchant_id,
        reference: order_id,
        amount,
        surcharge: Amount::ZERO,
        currency,
        capture_mode,
        card,
        authorization_ttl_ms: app.config.authorization_ttl.as_millis() as i64,
        metadata: write_meta(&meta),
        automatic_capture_id: new_id("cap_"),
    })
}

fn missing(field: &str) -> MspError {
    MspError::MissingData(format!("`{field}` is required"))
}

fn render_created(outcome: &Result<Written<()>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(written) => match written.record.order.failure {
            None => success(OrderView::of(&written.record, written.now)),
            Some(failure) => MspError::AuthorizationFailed(failure).to_stored(),
        },
        Err(error) => MspError::from(error).to_stored(),
    }
}

async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let bytes = read_body(body).await?;
    let path = format!("{PREFIX}/orders");
    let header = header_claim(&headers, &Method::POST, &path, &bytes)?;
    let request: CreateOrderRequest = parse_body(&bytes)?;
    let notify = order_notifications(request.payment_options.as_ref())?;
    let new = new_order(&app, merchant_id.clone(), request)?;
    // A retried create (same order_id, same body) replays the first answer; the same
    // order_id with another body is refused like any reused order_id.
    let claim = header.or_else(|| {
        Some(natural_claim(
            "multisafepay:order_id",
            &new.reference,
            &path,
            &bytes,
            MspError::OrderIdTaken,
        ))
    });
    let render: Render<()> = Box::new(render_created);
    let request = Request::Create {
        new,
        notify,
        render,
    };
    execute(&app, merchant_id, claim, request).await
}

/// `payment_options.notification_url` (and `notification_method`, `POST` by default): where
/// this order's status changes are notified.
fn order_notifications(
    options: Option<&Map<String, Value>>,
) -> Result<Option<OrderNotifications>, MspError> {
    let Some(options) = options else {
        return Ok(None);
    };
    let name = "payment_options.notification_url";
    let Some(url) = string_field(options, "notification_url", name)? else {
        return Ok(None);
    };
    if !check_len(&url, 1, NOTIFICATION_URL_CHARS_MAX) {
        return Err(invalid(
            name,
            format_args!("must be at most {NOTIFICATION_URL_CHARS_MAX} characters"),
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.parse::<axum::http::Uri>().is_err()
    {
        return Err(invalid(name, "must be an http:// or https:// URL"));
    }
    let method_name = "payment_options.notification_method";
    let format = match string_field(options, "notification_method", method_name)?
        .map(|m| m.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("POST") => "multisafepay",
        Some("GET") => "multisafepay_get",
        Some(_) => return Err(invalid(method_name, "must be `POST` or `GET`")),
    };
    Ok(Some(OrderNotifications {
        url,
        format: format.to_owned(),
        events: vec!["*".to_owned()],
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /orders/{order_id}
// ---------------------------------------------------------------------------------------------

async fn get_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathParam(order_id): PathParam,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let now = app.store.merchant_now(&merchant_id).await?;
    if let Some(record) = app
        .store
        .order(&merchant_id, OrderLocator::Reference(order_id.clone()))
        .await?
    {
        return Ok(json(success(OrderView::of(&record, now))));
    }
    if let Some(record) = app
        .store
        .order_by_capture_reference(&merchant_id, &order_id)
        .await?
        && let Some(capture) = record
            .captures
            .iter()
            .find(|c| c.reference.as_deref() == Some(order_id.as_str()))
    {
        return Ok(json(success(OrderView::of_capture(&record, capture))));
    }
    Err(MspError::OrderNotFound)
}

fn json(stored: StoredResponse) -> Response {
    stored_response(stored, false)
}

// ---------------------------------------------------------------------------------------------
// POST /orders/{order_id}/capture
// ---------------------------------------------------------------------------------------------

async fn capture_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathParam(order_id): PathParam,
    body: Body,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let bytes = read_body(body).await?;
    let path = format!("{PREFIX}/orders/{order_id}/capture");
    let header = header_claim(&headers, &Method::POST, &path, &bytes)?;
    let request: CaptureOrderRequest = parse_body(&bytes)?;
    match request.new_order_status.as_deref() {
        None => return Err(missing("new_order_status")),
        Some("completed") => {}
        Some(_) => return Err(invalid("new_order_status", "must be `completed`")),
    }
    let amount = request
        .amount
        .as_deref()
        .map(|raw| cents("amount", raw))
        .transpose()?;
    let new_order_id = id_text(
        "new_order_id",
        request.new_order_id.as_deref(),
        ID_CHARS_MAX,
    )?;
    let invoice_id = id_text("invoice_id", request.invoice_id.as_deref(), ID_CHARS_MAX)?;
    let bad = MspError::InvalidRequest;
    let tracktrace_code = text(
        "tracktrace_code",
        request.tracktrace_code,
        TEXT_CHARS_MAX,
        bad,
    )?;
    let carrier = text("carrier", request.carrier, TEXT_CHARS_MAX, bad)?;
    let reason = text("reason", request.reason, TEXT_CHARS_MAX, bad)?;
    let memo = text("memo", request.memo, TEXT_CHARS_MAX, bad)?;
    let description = text(
        "description",
        request.description,
        DESCRIPTION_CHARS_MAX,
        MspError::InvalidDescription,
    )?;

    // The new_order_id is the capture's natural key, claimed even when an Idempotency-Key is
    // sent: an identical retry replays the first answer, and two captures racing for one
    // new_order_id cannot both win. Without a new_order_id, the header is the key.
    let claim = new_order_id
        .as_ref()
        .map(|new_order_id| {
            natural_claim(
                "multisafepay:new_order_id",
                &new_order_id.text,
                &path,
                &bytes,
                MspError::NewOrderIdTaken,
            )
        })
        .or(header);

    let shipping = (carrier.is_some() || tracktrace_code.is_some()).then_some(Shipping {
        carrier,
        method: None,
        tracking_code: tracktrace_code,
    });
    let meta = CaptureMeta {
        new_order_status: request.new_order_status,
        new_order_id_is_number: new_order_id.as_ref().is_some_and(|id| id.is_number),
        invoice_id_is_number: invoice_id.as_ref().is_some_and(|id| id.is_number),
        memo,
        checkout_data: request.checkout_data,
    };
    let capture = CaptureRequest {
        id: new_id("cap_"),
        amount: amount.map(Into::into),
        is_final: false,
        reference: new_order_id.map(|id| id.text),
        invoice_id: invoice_id.map(|id| id.text),
        description,
        reason,
        shipping,
        metadata: write_meta(&meta),
        ..CaptureRequest::default()
    };
    // A new_order_id names one thing: not another order, nor another order's capture.
    let request = Request::Capture {
        order: OrderLocator::Reference(order_id),
        request: capture,
        reference_scope: ReferenceScope::Merchant,
        render: Box::new(render_capture),
    };
    execute(&app, merchant_id, claim, request).await
}

fn render_capture(outcome: &Result<Written<Capture>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(Written {
            record,
            result: capture,
            ..
        }) => success(TransactionData {
            transaction_id: derived_transaction_id(&capture.id),
            order_id: capture_wire_id(capture).unwrap_or_else(|| order_wire_id(&record.order)),
            refund_id: None,
        }),
        // Only a capture's new_order_id can be taken elsewhere.
        Err(WriteError::ReferenceTaken) => MspError::NewOrderIdTaken.to_stored(),
        Err(error) => MspError::from(error).to_stored(),
    }
}

// ---------------------------------------------------------------------------------------------
// PATCH /capture/{order_id} and PATCH /orders/{order_id}
// ---------------------------------------------------------------------------------------------

async fn cancel_reservation(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathParam(order_id): PathParam,
    body: Body,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let bytes = read_body(body).await?;
    let path = format!("{PREFIX}/capture/{order_id}");
    let claim = header_claim(&headers, &Method::PATCH, &path, &bytes)?;
    let request: CancelReservationRequest = parse_body(&bytes)?;
    match request.status.as_deref() {
        None => return Err(missing("status")),
        Some("cancelled") => {}
        Some(_) => return Err(invalid("status", "must be `cancelled`")),
    }
    text(
        "reason",
        request.reason,
        TEXT_CHARS_MAX,
        MspError::InvalidRequest,
    )?;
    text(
        "description",
        request.description,
        DESCRIPTION_CHARS_MAX,
        MspError::InvalidDescription,
    )?;
    let render: Render<Amount> = Box::new(|outcome| match outcome {
        Ok(written) => success(TransactionData {
            transaction_id: written.record.number,
            order_id: order_wire_id(&written.record.order),
            refund_id: None,
        }),
        Err(error) => MspError::from(error).to_stored(),
    });
    let request = Request::Release {
        order: OrderLocator::Reference(order_id),
        amount: None,
        render,
    };
    execute(&app, merchant_id, claim, request).await
}

async fn update_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathParam(order_id): PathParam,
    body: Body,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let bytes = read_body(body).await?;
    let path = format!("{PREFIX}/orders/{order_id}");
    let claim = header_claim(&headers, &Method::PATCH, &path, &bytes)?;
    let request: UpdateOrderRequest = parse_body(&bytes)?;
    let bad = MspError::InvalidRequest;
    for (field, value) in [
        ("reason", request.reason),
        ("tracktrace_code", request.tracktrace_code),
        ("carrier", request.carrier),
        ("ship_date", request.ship_date),
        ("po_number", request.po_number),
    ] {
        text(field, value, TEXT_CHARS_MAX, bad)?;
    }
    for (field, value) in [
        ("tracktrace_url", request.tracktrace_url),
        ("invoice_url", request.invoice_url),
    ] {
        text(field, value, URL_CHARS_MAX, bad)?;
    }
    id_text("invoice_id", request.invoice_id.as_deref(), ID_CHARS_MAX)?;
    let _ = (request.exclude_order, request.extend_expiration);
    match request.status.as_deref() {
        Some("cancelled") | Some("void") => {
            let render: Render<Amount> = Box::new(|outcome| match outcome {
                Ok(_) => success(Map::new()),
                Err(error) => MspError::from(error).to_stored(),
            });
            let request = Request::Release {
                order: OrderLocator::Reference(order_id),
                amount: None,
                render,
            };
            execute(&app, merchant_id, claim, request).await
        }
        None | Some("") => {
            // Shipping and invoice details are accepted but not kept: nothing moves money.
            app.store
                .order(&merchant_id, OrderLocator::Reference(order_id))
                .await?
                .ok_or(MspError::OrderNotFound)?;
            Ok(json(success(Map::new())))
        }
        Some(_) => Err(invalid(
            "status",
            "must be `cancelled` (or `void`); capture with POST /orders/{order_id}/capture",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// POST /orders/{order_id}/refunds
// ---------------------------------------------------------------------------------------------

async fn refund_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    PathParam(order_id): PathParam,
    body: Body,
) -> Result<Response, MspError> {
    let merchant_id = authenticate(&app, &headers, query.as_deref()).await?;
    let bytes = read_body(body).await?;
    let path = format!("{PREFIX}/orders/{order_id}/refunds");
    let claim = header_claim(&headers, &Method::POST, &path, &bytes)?;
    let request: RefundOrderRequest = parse_body(&bytes)?;
    let amount = cents(
        "amount",
        request.amount.as_deref().ok_or_else(|| missing("amount"))?,
    )?;
    let currency = match request.currency.as_deref() {
        None | Some("") => None,
        Some(code) => Some(
            Currency::parse(code)
                .map_err(|e| MspError::InvalidCurrency(format!("`currency` {e}")))?,
        ),
    };
    let description = text(
        "description",
        request.description,
        DESCRIPTION_CHARS_MAX,
        MspError::InvalidDescription,
    )?;
    let meta = RefundMeta {
        description: description.clone(),
        checkout_data: request.checkout_data,
    };
    let refund = RefundRequest {
        id: new_id("ref_"),
        amount: Some(amount.into()),
        currency,
        reference: None,
        reason: description,
        metadata: write_meta(&meta),
    };
    let render: Render<Refund> = Box::new(|outcome| match outcome {
        Ok(written) => success(TransactionData::of_refund(
            &written.record.order,
            &written.result,
        )),
        Err(error) => MspError::from(error).to_stored(),
    });
    let request = Request::Refund {
        order: OrderLocator::Reference(order_id),
        request: refund,
        render,
    };
    execute(&app, merchant_id, claim, request).await
}
