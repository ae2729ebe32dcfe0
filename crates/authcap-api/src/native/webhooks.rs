//! Events and webhook endpoints under `/v1`: what happened to the merchant's orders, newest
//! first, and where to send it.

use authcap_core::EventKind;
use authcap_store::{EventQuery, StoredEvent, WebhookEndpoint};
use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    LIST_LIMIT_DEFAULT, Problem, authenticate, invalid, one_page, page_limit,
    serde_urlencoded_pairs,
};
use crate::AppState;
use crate::webhooks::{FORMATS, event_json, events_of, secret_of};
use crate::wire::{PathParam, new_id, parse_json, read_body, rfc3339};

const URL_CHARS_MAX: usize = 2048;
const ENDPOINTS_PER_MERCHANT_MAX: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    pub url: String,
    pub enabled_events: Option<Vec<String>>,
    pub format: Option<String>,
}

#[derive(Serialize)]
struct EndpointBody<'a> {
    id: &'a str,
    object: &'static str,
    url: &'a str,
    format: &'a str,
    enabled_events: &'a [String],
    enabled: bool,
    created_at: String,
    /// Shown once, when the endpoint is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointBody<'_> {
    fn of(endpoint: &WebhookEndpoint, secret: Option<String>) -> EndpointBody<'_> {
        EndpointBody {
            id: &endpoint.id,
            object: "webhook_endpoint",
            url: &endpoint.url,
            format: &endpoint.format,
            enabled_events: &endpoint.enabled_events,
            enabled: endpoint.enabled,
            created_at: rfc3339(endpoint.created_at),
            secret,
        }
    }
}

#[derive(Serialize)]
struct List<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
}

fn event_raw(event: &StoredEvent) -> Box<RawValue> {
    let text = String::from_utf8(event_json(event)).unwrap_or_else(|_| "null".into());
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap())
}

pub async fn list_events(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let mut page = EventQuery {
        limit: LIST_LIMIT_DEFAULT,
        ..EventQuery::default()
    };
    for (name, value) in serde_urlencoded_pairs(query.as_deref().unwrap_or("")) {
        match name.as_str() {
            "limit" => page.limit = page_limit(&value)?,
            "starting_after" => page.starting_after = Some(value),
            "type" => {
                EventKind::parse(&value).ok_or_else(|| invalid("type", "is not an event type"))?;
                page.kind = Some(value);
            }
            other => return Err(invalid(other, "is not a known query parameter")),
        }
    }
    let limit = page.limit as usize;
    page.limit += 1;
    let mut events = app.store.event_page(&merchant_id, page).await?;
    let has_more = one_page(&mut events, limit);
    let body = List {
        object: "list",
        data: events.iter().map(event_raw).collect(),
        has_more,
    };
    Ok(Json(body).into_response())
}

pub async fn get_event(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let event = app
        .store
        .event(&merchant_id, &id)
        .await?
        .ok_or(Problem::EventNotFound)?;
    Ok(Json(event_raw(&event)).into_response())
}

#[derive(Serialize)]
struct Redelivered {
    object: &'static str,
    event: String,
    deliveries_planned: usize,
}

pub async fn redeliver_event(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let planned = app
        .store
        .redeliver(&merchant_id, &id)
        .await?
        .ok_or(Problem::EventNotFound)?;
    let body = Redelivered {
        object: "redelivery",
        event: id,
        deliveries_planned: planned,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

pub async fn create_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let bytes = read_body(body).await?;
    let request: CreateEndpointRequest = parse_json(&bytes)?;
    let (endpoint, secret) = add_endpoint(&app, merchant_id, request).await?;
    let body = EndpointBody::of(&endpoint, secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Validates and adds a merchant's endpoint; with its signing secret, shown this once.
pub(crate) async fn add_endpoint(
    app: &AppState,
    merchant_id: String,
    request: CreateEndpointRequest,
) -> Result<(WebhookEndpoint, Option<String>), Problem> {
    let url = request.url;
    if url.is_empty() || url.chars().count() > URL_CHARS_MAX {
        return Err(invalid(
            "url",
            format_args!("must be 1 to {URL_CHARS_MAX} characters"),
        ));
    }
    let parsed: Option<axum::http::Uri> = url.parse().ok();
    match parsed.as_ref().and_then(|u| u.scheme_str()) {
        Some("http" | "https") if parsed.as_ref().and_then(|u| u.host()).is_some() => {}
        _ => {
            return Err(invalid(
                "url",
                "must be an absolute http:// or https:// URL",
            ));
        }
    }
    let format = request.format.unwrap_or_else(|| "standard".into());
    if !FORMATS.contains(&format.as_str()) {
        return Err(invalid(
            "format",
            format_args!("must be one of: {}", FORMATS.join(", ")),
        ));
    }
    let offered = events_of(&format);
    let mut enabled_events = request.enabled_events.unwrap_or_else(|| vec!["*".into()]);
    if enabled_events.is_empty()
        || enabled_events
            .iter()
            .any(|e| e != "*" && !offered.contains(&e.as_str()))
    {
        return Err(invalid(
            "enabled_events",
            format_args!(
                "must be [\"*\"] or a list of the event types the `{format}` format has: {}",
                offered.join(", ")
            ),
        ));
    }
    // `*` is every event the format has a notification for.
    if enabled_events.iter().any(|e| e == "*") && offered.len() < EventKind::ALL.len() {
        enabled_events = offered.iter().map(|e| (*e).to_owned()).collect();
    }
    if app.store.endpoints(&merchant_id).await?.len() >= ENDPOINTS_PER_MERCHANT_MAX {
        return Err(invalid(
            "url",
            format_args!("at most {ENDPOINTS_PER_MERCHANT_MAX} endpoints per merchant"),
        ));
    }
    let created_at = app.store.merchant_now(&merchant_id).await?;
    let endpoint = WebhookEndpoint {
        id: new_id("we_"),
        merchant_id,
        url,
        format,
        enabled_events,
        enabled: true,
        created_at,
    };
    app.store.create_endpoint(endpoint.clone()).await?;
    let secret = secret_of(&app.server_secret, &endpoint.id, &endpoint.format);
    Ok((endpoint, secret))
}

pub async fn list_endpoints(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let endpoints = app.store.endpoints(&merchant_id).await?;
    let body = List {
        object: "list",
        data: endpoints
            .iter()
            .map(|e| EndpointBody::of(e, None))
            .collect(),
        has_more: false,
    };
    Ok(Json(body).into_response())
}

pub async fn get_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let endpoint = app
        .store
        .endpoint(&merchant_id, &id)
        .await?
        .ok_or(Problem::EndpointNotFound)?;
    Ok(Json(EndpointBody::of(&endpoint, None)).into_response())
}

#[derive(Serialize)]
struct Deleted {
    id: String,
    object: &'static str,
    deleted: bool,
}

pub async fn delete_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    if !app.store.delete_endpoint(&merchant_id, &id).await? {
        return Err(Problem::EndpointNotFound);
    }
    let body = Deleted {
        id,
        object: "webhook_endpoint",
        deleted: true,
    };
    Ok(Json(body).into_response())
}

#[derive(Serialize)]
struct AttemptBody {
    object: &'static str,
    delivery: String,
    event: String,
    attempted_at: String,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

pub async fn list_deliveries(
    State(app): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    app.store
        .endpoint(&merchant_id, &id)
        .await?
        .ok_or(Problem::EndpointNotFound)?;
    let attempts = app.store.delivery_attempts(&merchant_id, &id, 100).await?;
    let body = List {
        object: "list",
        data: attempts
            .into_iter()
            .map(|a| AttemptBody {
                object: "delivery_attempt",
                delivery: a.delivery_id,
                event: a.event_id,
                attempted_at: rfc3339(a.attempted_at),
                status_code: a.status_code,
                error: a.error,
                duration_ms: a.duration_ms,
            })
            .collect(),
        has_more: false,
    };
    Ok(Json(body).into_response())
}
