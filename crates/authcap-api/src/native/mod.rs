//! The native JSON API under `/v1`: amounts are integers in minor units, errors are
//! `application/problem+json`, every POST honours `Idempotency-Key`.

pub mod clock;
pub mod error;
pub mod types;
pub mod webhooks;

use authcap_core::{
    Amount, AmountError, Capture, CaptureMode, CaptureRequest, Card, Currency, NewOrder, Refund,
    RefundRequest, Shipping,
};
use authcap_store::{
    CredentialKind, IdempotencyClaim, ListQuery, OrderLocator, ReferenceScope, Render, Request,
    StoredResponse, WriteError, Written,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::value::RawValue;

use crate::wire::PathParam;
use crate::wire::{check_len, new_id, parse_json, parse_minor_units, read_body};
use crate::{AppState, pipeline};
pub use error::Problem;
use types::*;

const REFERENCE_CHARS_MAX: usize = 50;
const TEXT_CHARS_MAX: usize = 255;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
const LIST_LIMIT_MAX: u32 = 100;
const LIST_LIMIT_DEFAULT: u32 = 10;

/// The native API's one credential: the merchant's secret key.
pub const SECRET_KEY: CredentialKind = CredentialKind("secret_key");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(create_order).get(list_orders))
        .route("/v1/orders/{id}", get(get_order))
        .route(
            "/v1/orders/{id}/captures",
            post(capture_order).get(list_captures),
        )
        .route("/v1/orders/{id}/void", post(void_order))
        .route("/v1/orders/{id}/refunds", post(refund_order))
        .route("/v1/test_helpers/clock", get(clock::get_clock))
        .route("/v1/test_helpers/clock/advance", post(clock::advance_clock))
        .route("/v1/events", get(webhooks::list_events))
        .route("/v1/events/{id}", get(webhooks::get_event))
        .route("/v1/events/{id}/redeliver", post(webhooks::redeliver_event))
        .route(
            "/v1/webhook_endpoints",
            post(webhooks::create_endpoint).get(webhooks::list_endpoints),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            get(webhooks::get_endpoint).delete(webhooks::delete_endpoint),
        )
        .route(
            "/v1/webhook_endpoints/{id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .method_not_allowed_fallback(|| async { Problem::MethodNotAllowed })
}

pub async fn not_found() -> Problem {
    Problem::NotFound
}

pub(crate) async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<String, Problem> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(Problem::Unauthorized)?;
    app.credentials
        .merchant(SECRET_KEY, secret)
        .await?
        .ok_or(Problem::Unauthorized)
}

/// The caller's order with this id; another merchant's is as absent as a missing one.
async fn authenticated_order(
    app: &AppState,
    headers: &HeaderMap,
    id: String,
) -> Result<authcap_store::OrderRecord, Problem> {
    let merchant_id = authenticate(app, headers).await?;
    app.store
        .order(&merchant_id, OrderLocator::Id(id))
        .await?
        .ok_or(Problem::OrderNotFound)
}

/// The claim of an `Idempotency-Key`, for this method, path and body.
fn idempotency_claim(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Option<IdempotencyClaim>, Problem> {
    let key = pipeline::idempotency_key(headers, "idempotency-key", IDEMPOTENCY_KEY_CHARS_MAX)
        .map_err(|_| Problem::InvalidIdempotencyKey)?;
    Ok(key.map(|key| pipeline::key_claim("native", key, method, path, body)))
}

/// The common start of a write on an existing order: authenticate, read the body, claim the
/// idempotency key, parse the body (an empty body is the request's defaults).
async fn write_request<T: serde::de::DeserializeOwned + Default>(
    app: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: Body,
) -> Result<(String, Option<IdempotencyClaim>, T), Problem> {
    let merchant_id = authenticate(app, headers).await?;
    let bytes = read_body(body).await?;
    let claim = idempotency_claim(headers, &Method::POST, path, &bytes)?;
    let request = if bytes.is_empty() {
        T::default()
    } else {
        parse_json(&bytes)?
    };
    Ok((merchant_id, claim, request))
}

pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Problem {
    Problem::InvalidRequest(format!("`{field}` {why}"))
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value {
        Some(v) if !check_len(&v, 1, max) => Err(invalid(
            field,
            format_args!("must be 1 to {max} characters"),
        )),
        other => Ok(other),
    }
}

fn minor_units(field: &str, raw: &RawValue) -> Result<Amount, Problem> {
    parse_minor_units(raw).map_err(|error| match error {
        AmountError::TooManyDecimals { .. } => invalid(
            field,
            "must be an integer number of minor units (1050 is 10.50 EUR)",
        ),
        other => invalid(field, other),
    })
}

fn positive_minor_units(field: &str, raw: &RawValue) -> Result<Amount, Problem> {
    let amount = minor_units(field, raw)?;
    if amount.is_zero() {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(amount)
}

fn new_order(
    app: &AppState,
    merchant_id: String,
    request: CreateOrderRequest,
) -> Result<NewOrder, Problem> {
    if !check_len(&request.reference, 1, REFERENCE_CHARS_MAX) {
        return Err(invalid(
            "reference",
            format_args!("must be 1 to {REFERENCE_CHARS_MAX} characters"),
        ));
    }
    let currency = Currency::parse(&request.currency).map_err(|e| invalid("currency", e))?;
    let amount = positive_minor_units("amount", &request.amount)?;
    let surcharge = match &request.surcharge {
        Some(raw) => minor_units("surcharge", raw)?,
        None => Amount::ZERO,
    };
    if amount.checked_add(surcharge).is_none() {
        return Err(invalid("surcharge", "makes amount + surcharge too large"));
    }
    let capture_mode = match request.capture_mode.as_deref() {
        None => CaptureMode::Manual,
        Some(mode) => CaptureMode::parse(mode)
            .ok_or_else(|| invalid("capture_mode", "must be `manual` or `automatic`"))?,
    };
    let method = request.payment_method;
    if method.kind != "card" {
        return Err(invalid("payment_method.type", "must be `card`"));
    }
    if !Card::is_plausible_number(&method.number) {
        return Err(invalid(
            "payment_method.number",
            "must be a card number of 12 to 19 digits that passes the Luhn check",
        ));
    }
    if let Some(expiry) = &method.expiry
        && !valid_expiry(expiry)
    {
        return Err(invalid("payment_method.expiry", "must be MM/YY"));
    }
    if let Some(cvc) = &method.cvc
        && !((3..=4).contains(&cvc.len()) && cvc.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("payment_method.cvc", "must be 3 or 4 digits"));
    }
    Ok(NewOrder {
        id: new_id("ord_"),
        merchant_id,
        reference: request.reference,
        amount,
        surcharge,
        currency,
        capture_mode,
        card: Card {
            number: method.number,
            expiry: method.expiry,
            cvc: method.cvc,
        },
        authorization_ttl_ms: app.config.authorization_ttl.as_millis() as i64,
        metadata: String::new(),
        automatic_capture_id: new_id("cap_"),
    })
}

fn valid_expiry(expiry: &str) -> bool {
    let bytes = expiry.as_bytes();
    bytes.len() == 5
        && bytes[2] == b'/'
        && bytes[..2].iter().chain(&bytes[3..]).all(u8::is_ascii_digit)
        && matches!(expiry[..2].parse::<u8>(), Ok(1..=12))
}

pub(crate) fn render_created(outcome: &Result<Written<()>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(written) => {
            let order = OrderBody::of(&written.record, written.now);
            match written.record.order.failure {
                None => pipeline::json(StatusCode::CREATED, &order),
                Some(failure) => Problem::AuthorizationFailed {
                    code: failure.code(),
                    order: serde_json::to_value(&order).unwrap_or_default(),
                }
                .to_stored(),
            }
        }
        Err(error) => Problem::from(error).to_stored(),
    }
}

pub(crate) fn render_capture(outcome: &Result<Written<Capture>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(written) => {
            let currency = written.record.order.currency;
            let body = CaptureWithOrder {
                capture: CaptureBody::of(&written.result, currency, written.now),
                order: OrderBody::of(&written.record, written.now),
            };
            pipeline::json(StatusCode::CREATED, &body)
        }
        Err(error) => Problem::from(error).to_stored(),
    }
}

pub(crate) fn render_refund(outcome: &Result<Written<Refund>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(written) => {
            let body = RefundWithOrder {
                refund: RefundBody::of(&written.result),
                order: OrderBody::of(&written.record, written.now),
            };
            pipeline::json(StatusCode::CREATED, &body)
        }
        Err(error) => Problem::from(error).to_stored(),
    }
}

pub(crate) fn render_order(outcome: &Result<Written<Amount>, WriteError>) -> StoredResponse {
    match outcome {
        Ok(written) => pipeline::json(StatusCode::OK, &OrderBody::of(&written.record, written.now)),
        Err(error) => Problem::from(error).to_stored(),
    }
}

#[utoipa::path(post, path = "/v1/orders", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1..255 characters")),
    responses((status = 201, body = OrderBody), (status = 402, body = ProblemBody),
              (status = 400, body = ProblemBody), (status = 409, body = ProblemBody)),
    security(("bearer" = [])))]
pub async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let bytes = read_body(body).await?;
    let claim = idempotency_claim(&headers, &Method::POST, "/v1/orders", &bytes)?;
    let request: CreateOrderRequest = parse_json(&bytes)?;
    let new = new_order(&app, merchant_id.clone(), request)?;
    let render: Render<()> = Box::new(render_created);
    Ok(pipeline::write(
        &app,
        merchant_id,
        claim,
        Request::Create {
            new,
            notify: None,
            render,
        },
    )
    .await?)
}

#[utoipa::path(get, path = "/v1/orders/{id}", params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
pub async fn get_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let record = authenticated_order(&app, &headers, id).await?;
    let now = app.store.merchant_now(&record.order.merchant_id).await?;
    Ok(axum::Json(OrderBody::of(&record, now)).into_response())
}

/// A list's `limit` parameter: 1 to [`LIST_LIMIT_MAX`].
fn page_limit(value: &str) -> Result<u32, Problem> {
    value
        .parse()
        .ok()
        .filter(|l| (1..=LIST_LIMIT_MAX).contains(l))
        .ok_or_else(|| invalid("limit", "must be an integer from 1 to 100"))
}

/// Cuts `items`, fetched with one more than `limit`, to a page; whether there is more.
fn one_page<T>(items: &mut Vec<T>, limit: usize) -> bool {
    let has_more = items.len() > limit;
    items.truncate(limit);
    has_more
}

#[utoipa::path(get, path = "/v1/orders",
    params(("limit" = Option<u32>, Query, description = "1..100, default 10"),
           ("starting_after" = Option<String>, Query, description = "an order id: list older orders"),
           ("status" = Option<String>, Query), ("reference" = Option<String>, Query)),
    responses((status = 200, body = OrderList)), security(("bearer" = [])))]
pub async fn list_orders(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let mut list = ListQuery {
        limit: LIST_LIMIT_DEFAULT,
        ..ListQuery::default()
    };
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query.as_deref().unwrap_or(""));
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => list.limit = page_limit(&value)?,
            "starting_after" => list.starting_after = Some(value),
            "status" => {
                list.status = Some(
                    authcap_core::OrderStatus::parse(&value)
                        .ok_or_else(|| invalid("status", "is not an order status"))?,
                );
            }
            "reference" => list.reference = Some(value),
            other => return Err(invalid(other, "is not a known query parameter")),
        }
    }
    let limit = list.limit as usize;
    list.limit += 1;
    let mut records = app.store.orders(&merchant_id, list).await?;
    let has_more = one_page(&mut records, limit);
    let now = app.store.merchant_now(&merchant_id).await?;
    let body = OrderList {
        object: "list",
        data: records.iter().map(|r| OrderBody::of(r, now)).collect(),
        has_more,
    };
    Ok(axum::Json(body).into_response())
}

pub(crate) fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

#[utoipa::path(post, path = "/v1/orders/{id}/captures", request_body = CaptureOrderRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CaptureWithOrder), (status = 409, body = ProblemBody),
              (status = 422, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = [])))]
pub async fn capture_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, Problem> {
    let path = format!("/v1/orders/{id}/captures");
    let (merchant_id, claim, request) =
        write_request::<CaptureOrderRequest>(&app, &headers, &path, body).await?;
    let shipping = match request.shipping {
        Some(s) => Some(Shipping {
            carrier: text("shipping.carrier", s.carrier, TEXT_CHARS_MAX)?,
            method: text("shipping.method", s.method, TEXT_CHARS_MAX)?,
            tracking_code: text("shipping.tracking_code", s.tracking_code, TEXT_CHARS_MAX)?,
        }),
        None => None,
    };
    let capture = CaptureRequest {
        id: new_id("cap_"),
        amount: request
            .amount
            .as_deref()
            .map(|raw| positive_minor_units("amount", raw).map(Into::into))
            .transpose()?,
        is_final: request.r#final.unwrap_or(false),
        reference: text("reference", request.reference, TEXT_CHARS_MAX)?,
        invoice_id: text("invoice_id", request.invoice_id, REFERENCE_CHARS_MAX)?,
        description: text("description", request.description, TEXT_CHARS_MAX)?,
        reason: text("reason", request.reason, TEXT_CHARS_MAX)?,
        shipping,
        metadata: String::new(),
        ..CaptureRequest::default()
    };
    let request = Request::Capture {
        order: OrderLocator::Id(id),
        request: capture,
        reference_scope: ReferenceScope::Order,
        render: Box::new(render_capture),
    };
    Ok(pipeline::write(&app, merchant_id, claim, request).await?)
}

#[utoipa::path(get, path = "/v1/orders/{id}/captures", params(("id" = String, Path)),
    responses((status = 200, body = CaptureList)), security(("bearer" = [])))]
pub async fn list_captures(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let record = authenticated_order(&app, &headers, id).await?;
    let now = app.store.merchant_now(&record.order.merchant_id).await?;
    let currency = record.order.currency;
    let body = CaptureList {
        object: "list",
        data: record
            .captures
            .iter()
            .map(|c| CaptureBody::of(c, currency, now))
            .collect(),
        has_more: false,
    };
    Ok(axum::Json(body).into_response())
}

#[utoipa::path(post, path = "/v1/orders/{id}/void",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderBody), (status = 409, body = ProblemBody)),
    security(("bearer" = [])))]
pub async fn void_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, Problem> {
    let path = format!("/v1/orders/{id}/void");
    let (merchant_id, claim, EmptyRequest {}) = write_request(&app, &headers, &path, body).await?;
    let request = Request::Release {
        order: OrderLocator::Id(id),
        amount: None,
        render: Box::new(render_order),
    };
    Ok(pipeline::write(&app, merchant_id, claim, request).await?)
}

#[utoipa::path(post, path = "/v1/orders/{id}/refunds", request_body = RefundOrderRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = RefundWithOrder), (status = 409, body = ProblemBody),
              (status = 422, body = ProblemBody)),
    security(("bearer" = [])))]
pub async fn refund_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, Problem> {
    let path = format!("/v1/orders/{id}/refunds");
    let (merchant_id, claim, request) =
        write_request::<RefundOrderRequest>(&app, &headers, &path, body).await?;
    let refund = RefundRequest {
        id: new_id("ref_"),
        amount: request
            .amount
            .as_deref()
            .map(|raw| positive_minor_units("amount", raw).map(Into::into))
            .transpose()?,
        currency: None,
        reference: None,
        reason: text("reason", request.reason, TEXT_CHARS_MAX)?,
        metadata: String::new(),
    };
    let request = Request::Refund {
        order: OrderLocator::Id(id),
        request: refund,
        render: Box::new(render_refund),
    };
    Ok(pipeline::write(&app, merchant_id, claim, request).await?)
}
