//! `/dashboard`: a merchant's orders, their timelines and webhook deliveries, captures, voids
//! and refunds through the same idempotent write path as the API, webhook endpoints, and the
//! sandbox clock — server-rendered HTML forms, no script.
//!
//! Every form carries the session's CSRF token and a fresh idempotency key, so a double click
//! submits one key twice and the second is a replay: nothing is captured twice.

use std::fmt::Write;
use std::time::Duration;

use authcap_core::command::{CaptureRequest, RefundRequest, RequestedAmount};
use authcap_core::{Amount, Currency, OrderStatus, Timestamp};
use authcap_store::{ListQuery, OrderLocator, OrderRecord, ReferenceScope, Request};
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::html::{escape, html, page, style};
use super::session::{self, Session};
use crate::native::webhooks::{CreateEndpointRequest, add_endpoint};
use crate::native::{render_capture, render_order, render_refund};
use crate::wire::{new_id, rfc3339};
use crate::{AppState, pipeline};

/// Orders shown per page.
const PAGE_SIZE: u32 = 25;

/// The longest text a form field may carry (amounts, search, URLs, keys).
const FIELD_CHARS_MAX: usize = 2048;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/", get(home))
        .route("/dashboard/style.css", get(style))
        .route("/dashboard/sign-in", get(sign_in_page).post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/orders", get(orders))
        .route("/dashboard/orders/{id}", get(order))
        .route("/dashboard/orders/{id}/{action}", post(order_action))
        .route("/dashboard/webhooks", get(webhooks).post(add_webhook))
        .route("/dashboard/webhooks/{id}", get(webhook))
        .route("/dashboard/webhooks/{id}/test", post(send_test))
        .route("/dashboard/events/{id}/redeliver", post(redeliver))
        .route("/dashboard/clock", get(clock))
        .route("/dashboard/clock/advance", post(advance_clock))
        // Forms are small: the API's body limit holds here too.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::wire::BODY_BYTES_MAX,
        ))
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

fn nav(app: &AppState, session: &Session) -> String {
    format!(
        "<a href=\"/dashboard/orders\">Orders</a><a href=\"/dashboard/webhooks\">Webhooks</a>\
         <a href=\"/dashboard/clock\">Clock</a><a href=\"/docs\">API reference</a>\
         <form method=\"post\" action=\"/dashboard/sign-out\">{}\
         <button class=\"link-button\" type=\"submit\">Sign out</button></form>",
        csrf_field(app, session)
    )
}

fn csrf_field(app: &AppState, session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        session.csrf_token(app)
    )
}

/// A hidden idempotency key: one per rendered form, so a resubmission is a replay.
fn key_field() -> String {
    format!(
        "<input type=\"hidden\" name=\"idempotency_key\" value=\"{}\">",
        new_id("dash_")
    )
}

fn notice(kind: &str, text: &str) -> String {
    format!(
        "<p class=\"notice {kind}\" role=\"{}\">{}</p>",
        if kind == "bad" { "alert" } else { "status" },
        escape(text)
    )
}

/// An amount as people read it: `€10.50`, `¥400`, `CHF 3.00`.
pub fn money(amount: Amount, currency: Currency) -> String {
    let number = currency.format_decimal(amount);
    let symbol = match currency.code() {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        "JPY" | "CNY" => "¥",
        "BRL" => "R$",
        "INR" => "₹",
        "KRW" => "₩",
        "AUD" => "A$",
        "CAD" => "CA$",
        "MXN" => "MX$",
        "SGD" => "S$",
        "MYR" => "RM",
        _ => return format!("{} {number}", currency.code()),
    };
    format!("{symbol}{number}")
}

fn when(at: Timestamp) -> String {
    let text = rfc3339(at);
    // Seconds are enough to read; the API keeps the milliseconds.
    let trimmed = text
        .get(..19)
        .map_or(text.clone(), |t| format!("{} UTC", t.replace('T', " ")));
    format!(
        "<time datetime=\"{}\">{}</time>",
        escape(&text),
        escape(&trimmed)
    )
}

/// The dialect an order was created through: the key its wire-only fields are kept under.
fn dialect(metadata: &str) -> &'static str {
    let value: serde_json::Value = serde_json::from_str(metadata).unwrap_or_default();
    ["mercadopago", "multisafepay", "optty", "pipwave"]
        .into_iter()
        .find(|name| value.get(name).is_some())
        .unwrap_or("native")
}

/// The signed-in merchant, or the way to the sign-in page.
async fn signed_in(app: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    Session::of(app, headers)
        .await
        .ok_or_else(|| see_other("/dashboard/sign-in"))
}

/// A form post: from this site, in a session, with its CSRF token.
async fn posted(app: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Session, Response> {
    if !session::same_origin(headers) {
        return Err(html(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                "",
                &notice("bad", "Cross-site requests are refused."),
            ),
        ));
    }
    let session = signed_in(app, headers).await?;
    if !session.csrf_matches(app, csrf) {
        return Err(html(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                "",
                &notice(
                    "bad",
                    "This form has expired or did not come from this dashboard: reload the page and try again.",
                ),
            ),
        ));
    }
    Ok(session)
}

async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match Session::of(&app, &headers).await {
        Some(_) => see_other("/dashboard/orders"),
        None => see_other("/dashboard/sign-in"),
    }
}

fn sign_in_form(error: Option<&str>) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(error) = error {
        body.push_str(&notice("bad", error));
    }
    body.push_str(
        "<form method=\"post\" action=\"/dashboard/sign-in\" class=\"inline\">\
         <label for=\"secret_key\">Secret key<input id=\"secret_key\" name=\"secret_key\" \
         type=\"password\" autocomplete=\"current-password\" required maxlength=\"256\" \
         placeholder=\"sk_…\"></label><button type=\"submit\">Sign in</button></form>\
         <p class=\"muted\">The merchant's native secret key, as `authcap merchant create` printed it.</p>",
    );
    page("Sign in", "<a href=\"/docs\">API reference</a>", &body)
}

async fn sign_in_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if Session::of(&app, &headers).await.is_some() {
        return see_other("/dashboard/orders");
    }
    html(StatusCode::OK, sign_in_form(None))
}

#[derive(Deserialize)]
struct SignIn {
    secret_key: String,
}

async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !session::same_origin(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                "",
                &notice("bad", "Cross-site requests are refused."),
            ),
        );
    }
    let secret = form.secret_key.trim();
    let credential = if secret.is_empty() || secret.len() > 256 {
        None
    } else {
        app.credentials
            .credential(crate::native::SECRET_KEY, secret)
            .await
            .ok()
            .flatten()
    };
    let Some(credential) = credential else {
        // 401 counts toward the client's failed authentications, as in the API.
        return html(
            StatusCode::UNAUTHORIZED,
            sign_in_form(Some("That secret key is not one of a merchant's.")),
        );
    };
    let session = Session::new(credential.merchant_id, credential.generation);
    let mut response = see_other("/dashboard/orders");
    if let Ok(cookie) = session::set_cookie(&app, &headers, &session).parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(refused) = posted(&app, &headers, &form.csrf).await {
        return refused;
    }
    let mut response = see_other("/dashboard/sign-in");
    if let Ok(cookie) = session::clear_cookie(&headers).parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize, Default)]
struct OrdersQuery {
    status: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

const STATUSES: [&str; 8] = [
    "authorized",
    "partially_captured",
    "captured",
    "refunded",
    "voided",
    "expired",
    "declined",
    "failed",
];

async fn orders(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<OrdersQuery>,
) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    let merchant = &session.merchant_id;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    let search = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty() && q.len() <= FIELD_CHARS_MAX);
    let now = match app.store.merchant_now(merchant).await {
        Ok(now) => now,
        Err(error) => return unavailable(&error),
    };
    let mut error = None;
    let (records, has_more) = match search {
        // An id finds its order; anything else is a reference.
        Some(id) if id.starts_with("ord_") => {
            match app
                .store
                .order(merchant, OrderLocator::Id(id.to_owned()))
                .await
            {
                Ok(found) => (found.into_iter().collect::<Vec<_>>(), false),
                Err(e) => return unavailable(&e),
            }
        }
        _ => {
            let status = match status.map(OrderStatus::parse) {
                Some(None) => {
                    error = Some("Unknown status: showing every order.");
                    None
                }
                Some(Some(status)) => Some(status),
                None => None,
            };
            let list = ListQuery {
                limit: PAGE_SIZE + 1,
                starting_after: query.after.clone().filter(|a| a.len() <= FIELD_CHARS_MAX),
                status,
                reference: search.map(str::to_owned),
            };
            match app.store.orders(merchant, list).await {
                Ok(mut records) => {
                    let more = records.len() > PAGE_SIZE as usize;
                    records.truncate(PAGE_SIZE as usize);
                    (records, more)
                }
                Err(e) => return unavailable(&e),
            }
        }
    };
    let mut body = String::from("<h1>Orders</h1>");
    if let Some(error) = error {
        body.push_str(&notice("bad", error));
    }
    body.push_str(
        "<form method=\"get\" action=\"/dashboard/orders\" class=\"inline\" role=\"search\">",
    );
    let _ = write!(
        body,
        "<label for=\"q\">Reference or id<input id=\"q\" name=\"q\" value=\"{}\" maxlength=\"200\"></label>\
         <label for=\"status\">Status<select id=\"status\" name=\"status\"><option value=\"\">any</option>",
        escape(search.unwrap_or(""))
    );
    for option in STATUSES {
        let _ = write!(
            body,
            "<option{}>{option}</option>",
            if status == Some(option) {
                " selected"
            } else {
                ""
            }
        );
    }
    body.push_str("</select></label><button type=\"submit\">Find</button></form>");
    if records.is_empty() {
        body.push_str("<p>No orders here.</p>");
    } else {
        body.push_str(
            "<div class=\"table-wrap\"><table><caption class=\"visually-hidden\">Orders, newest first</caption>\
             <thead><tr><th>Order</th><th>Reference</th><th>Status</th><th class=\"num\">Amount</th>\
             <th class=\"num optional\">Captured</th><th class=\"optional\">Created</th></tr></thead><tbody>",
        );
        for record in &records {
            let order = &record.order;
            let _ = write!(
                body,
                "<tr><td><a class=\"mono\" href=\"/dashboard/orders/{id}\">{id}</a></td><td>{reference}</td>\
                 <td><span class=\"status\">{status}</span></td><td class=\"num\">{amount}</td>\
                 <td class=\"num optional\">{captured}</td><td class=\"optional\">{created}</td></tr>",
                id = escape(&order.id),
                reference = escape(&order.reference),
                status = order.status(now).as_str(),
                amount = escape(&money(total(record), order.currency)),
                captured = escape(&money(order.captured_amount, order.currency)),
                created = when(order.created_at),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    if has_more && let Some(last) = records.last() {
        let mut next = format!("/dashboard/orders?after={}", escape(&last.order.id));
        if let Some(status) = status {
            let _ = write!(next, "&amp;status={}", escape(status));
        }
        if let Some(search) = search {
            let _ = write!(next, "&amp;q={}", escape(&urlencode(search)));
        }
        let _ = write!(
            body,
            "<nav class=\"pager\" aria-label=\"Pages\"><a href=\"{next}\">Older orders →</a></nav>"
        );
    }
    html(StatusCode::OK, page("Orders", &nav(&app, &session), &body))
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

fn total(record: &OrderRecord) -> Amount {
    record
        .order
        .amount
        .checked_add(record.order.surcharge)
        .unwrap_or(record.order.amount)
}

fn unavailable(error: &impl std::fmt::Display) -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Unavailable",
            "",
            &notice(
                "bad",
                &format!(
                    "The database is unavailable right now: {error}. Nothing was written; try again."
                ),
            ),
        ),
    )
}

fn not_found(app: &AppState, session: &Session, what: &str) -> Response {
    let words = format!("No such {what}.");
    html(
        StatusCode::NOT_FOUND,
        page("Not found", &nav(app, session), &notice("bad", &words)),
    )
}

/// The signed-in merchant's endpoint; another merchant's is as absent as a missing one.
async fn merchant_endpoint(
    app: &AppState,
    session: &Session,
    id: &str,
) -> Result<authcap_store::WebhookEndpoint, Response> {
    match app.store.endpoint(&session.merchant_id, id).await {
        Ok(Some(endpoint)) => Ok(endpoint),
        Ok(None) => Err(not_found(app, session, "endpoint")),
        Err(error) => Err(unavailable(&error)),
    }
}

#[derive(Deserialize, Default)]
struct Outcome {
    done: Option<String>,
    error: Option<String>,
    tested: Option<String>,
}

async fn order(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(outcome): Query<Outcome>,
) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    let merchant = &session.merchant_id;
    let record = match app
        .store
        .order(merchant, OrderLocator::Id(id.clone()))
        .await
    {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(&app, &session, "order"),
        Err(error) => return unavailable(&error),
    };
    let (now, events, endpoints) = match tokio::try_join!(
        app.store.merchant_now(merchant),
        app.store.events(merchant, Some(&id), 500),
        app.store.endpoints(merchant),
    ) {
        Ok(found) => found,
        Err(error) => return unavailable(&error),
    };
    let order = &record.order;
    let currency = order.currency;
    let m = |amount: Amount| escape(&money(amount, currency));
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Order <span class=\"mono\">{}</span></h1>",
        escape(&order.id)
    );
    if let Some(done) = outcome.done.as_deref() {
        body.push_str(&notice("good", &done_text(done)));
    }
    if let Some(error) = outcome.error.as_deref() {
        body.push_str(&notice("bad", error.get(..500).unwrap_or(error)));
    }
    let _ = write!(
        body,
        "<p><span class=\"status\">{status}</span> · reference <strong>{reference}</strong> · \
         {brand} •••• {last4} · created through <strong>{dialect}</strong> · expires {expires}</p>",
        status = order.status(now).as_str(),
        reference = escape(&order.reference),
        brand = escape(&order.card_brand),
        last4 = escape(&order.card_last4),
        dialect = dialect(&order.metadata),
        expires = when(order.expires_at),
    );
    let _ = write!(
        body,
        "<dl class=\"amounts\"><div><dt>Authorized</dt><dd>{}</dd></div><div><dt>Captured</dt><dd>{}</dd></div>\
         <div><dt>Released</dt><dd>{}</dd></div><div><dt>Refunded</dt><dd>{}</dd></div>\
         <div><dt>Capturable</dt><dd id=\"capturable\">{}</dd></div><div><dt>Refundable</dt><dd>{}</dd></div></dl>",
        m(total(&record)),
        m(order.captured_amount),
        m(order.released_amount),
        m(order.refunded_amount),
        m(order.capturable_amount(now)),
        m(order.refundable_amount()),
    );
    actions_html(&mut body, &app, &session, &record, now);
    body.push_str("<h2>Timeline</h2><ol class=\"timeline\">");
    for event in &events {
        let detail = event_detail(&record, event.event.subject_id.as_deref());
        let _ = write!(
            body,
            "<li><strong>{kind}</strong> {amount} <span class=\"muted\">· {at} · <span class=\"mono\">{id}</span></span>{detail}</li>",
            kind = event.event.kind.as_str(),
            amount = m(event.event.amount),
            at = when(event.event.at),
            id = escape(&event.id),
        );
    }
    if events.is_empty() {
        body.push_str("<li>No events yet.</li>");
    }
    body.push_str("</ol>");
    deliveries_html(&mut body, &app, &session, &events, &endpoints).await;
    html(
        StatusCode::OK,
        page(&format!("Order {}", order.id), &nav(&app, &session), &body),
    )
}

fn done_text(done: &str) -> String {
    match done {
        "captured" => "Captured.".into(),
        "voided" => "Voided: the rest of the authorization is released.".into(),
        "refunded" => "Refunded.".into(),
        "redelivered" => "Redelivery planned.".into(),
        _ => "Done.".into(),
    }
}

/// What a capture or refund event was about: its shipping and invoice data, its reason.
fn event_detail(record: &OrderRecord, subject: Option<&str>) -> String {
    let Some(subject) = subject else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(capture) = record.captures.iter().find(|c| c.id == subject) {
        if let Some(reference) = &capture.reference {
            parts.push(format!("reference {reference}"));
        }
        if let Some(invoice) = &capture.invoice_id {
            parts.push(format!("invoice {invoice}"));
        }
        if let Some(shipping) = &capture.shipping {
            let shipped: Vec<&str> = [&shipping.carrier, &shipping.method, &shipping.tracking_code]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            if !shipped.is_empty() {
                parts.push(format!("shipped {}", shipped.join(" ")));
            }
        }
        if let Some(description) = &capture.description {
            parts.push(description.clone());
        }
    }
    if let Some(refund) = record.refunds.iter().find(|r| r.id == subject)
        && let Some(reason) = &refund.reason
    {
        parts.push(format!("reason: {reason}"));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "<br><span class=\"muted\">{}</span>",
        escape(&parts.join(" · "))
    )
}

fn actions_html(
    body: &mut String,
    app: &AppState,
    session: &Session,
    record: &OrderRecord,
    now: Timestamp,
) {
    let order = &record.order;
    let capturable = order.capturable_amount(now);
    let refundable = order.refundable_amount();
    if capturable.is_zero() && refundable.is_zero() {
        return;
    }
    body.push_str("<h2>Actions</h2>");
    let exponent = order.currency.exponent();
    let step = if exponent == 0 {
        "1".to_owned()
    } else {
        format!("0.{}1", "0".repeat(usize::from(exponent) - 1))
    };
    let id = escape(&order.id);
    // Each form its own idempotency key.
    let hidden = || format!("{}{}", csrf_field(app, session), key_field());
    if !capturable.is_zero() {
        let (hidden, hidden2) = (hidden(), hidden());
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/dashboard/orders/{id}/capture\" class=\"inline\">{hidden}\
             <label for=\"capture-amount\">Capture ({code}; empty = all {all})\
             <input id=\"capture-amount\" name=\"amount\" inputmode=\"decimal\" step=\"{step}\" maxlength=\"32\"></label>\
             <label class=\"check\" for=\"capture-final\"><input id=\"capture-final\" type=\"checkbox\" name=\"final\" value=\"true\">final (release the rest)</label>\
             <button type=\"submit\">Capture</button></form>\
             <form method=\"post\" action=\"/dashboard/orders/{id}/void\" class=\"inline\">{hidden2}\
             <button type=\"submit\" class=\"danger\">Void the rest ({all})</button></form>",
            code = order.currency.code(),
            all = escape(&money(capturable, order.currency)),
        );
    }
    if !refundable.is_zero() {
        let hidden = hidden();
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/dashboard/orders/{id}/refund\" class=\"inline\">{hidden}\
             <label for=\"refund-amount\">Refund ({code}; empty = all {all})\
             <input id=\"refund-amount\" name=\"amount\" inputmode=\"decimal\" maxlength=\"32\"></label>\
             <label for=\"refund-reason\">Reason<input id=\"refund-reason\" name=\"reason\" maxlength=\"200\"></label>\
             <button type=\"submit\" class=\"secondary\">Refund</button></form>",
            code = order.currency.code(),
            all = escape(&money(refundable, order.currency)),
        );
    }
}

async fn deliveries_html(
    body: &mut String,
    app: &AppState,
    session: &Session,
    events: &[authcap_store::StoredEvent],
    endpoints: &[authcap_store::WebhookEndpoint],
) {
    body.push_str("<h2>Webhook deliveries</h2>");
    if endpoints.is_empty() {
        body.push_str("<p>No webhook endpoints: <a href=\"/dashboard/webhooks\">add one</a>.</p>");
        return;
    }
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    body.push_str(
        "<div class=\"table-wrap\"><table><thead><tr><th>Event</th><th>Endpoint</th><th>Attempted</th>\
         <th>Answer</th><th class=\"num\">ms</th></tr></thead><tbody>",
    );
    let mut any = false;
    for endpoint in endpoints {
        let attempts = app
            .store
            .delivery_attempts(&session.merchant_id, &endpoint.id, 500)
            .await
            .unwrap_or_default();
        for attempt in attempts
            .iter()
            .filter(|a| ids.contains(&a.event_id.as_str()))
        {
            any = true;
            let answer = match (attempt.status_code, &attempt.error) {
                (Some(status), None) => status.to_string(),
                (Some(status), Some(error)) => format!("{status}: {error}"),
                (None, Some(error)) => error.clone(),
                (None, None) => String::new(),
            };
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td><a href=\"/dashboard/webhooks/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                escape(&attempt.event_id),
                escape(&endpoint.id),
                escape(&endpoint.url),
                when(attempt.attempted_at),
                escape(&answer),
                attempt.duration_ms,
            );
        }
    }
    if !any {
        body.push_str("<tr><td colspan=\"5\">No attempts yet.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    let _ = write!(
        body,
        "<p class=\"muted\">Redeliver an event from <a href=\"/dashboard/webhooks\">its endpoint's page</a>. {} event(s).</p>",
        events.len()
    );
}

#[derive(Deserialize)]
struct MoneyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    r#final: Option<String>,
    #[serde(default)]
    reason: String,
}

/// A write from a form: the same claim and write path as the API, keyed by the form's key.
async fn form_write(
    app: &AppState,
    session: &Session,
    path: &str,
    form: &MoneyForm,
    request: Request,
) -> Result<Response, String> {
    let key = form.idempotency_key.trim();
    let claim = (!key.is_empty() && key.len() <= 255).then(|| {
        let fingerprinted = format!("{}|{}|{}", form.amount, form.r#final.is_some(), form.reason);
        pipeline::key_claim(
            "dashboard",
            key.to_owned(),
            &Method::POST,
            path,
            fingerprinted.as_bytes(),
        )
    });
    pipeline::write(app, session.merchant_id.clone(), claim, request)
        .await
        .map_err(|error| format!("Nothing was written: {error}"))
}

/// Back to the order page, saying what came of it in words.
async fn after_write(id: &str, done: &str, written: Result<Response, String>) -> Response {
    let response = match written {
        Ok(response) => response,
        Err(error) => {
            return see_other(&format!(
                "/dashboard/orders/{}?error={}",
                urlencode(id),
                urlencode(&error)
            ));
        }
    };
    if response.status().is_success() {
        return see_other(&format!("/dashboard/orders/{}?done={done}", urlencode(id)));
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let words = problem["detail"]
        .as_str()
        .or(problem["title"].as_str())
        .unwrap_or("refused")
        .to_owned();
    let title = problem["title"].as_str().unwrap_or("Refused");
    see_other(&format!(
        "/dashboard/orders/{}?error={}",
        urlencode(id),
        urlencode(&format!("{title}: {words}"))
    ))
}

fn requested(amount: &str) -> Result<Option<RequestedAmount>, String> {
    let amount = amount.trim();
    if amount.is_empty() {
        return Ok(None);
    }
    if amount.len() > 32 {
        return Err("The amount is too long.".into());
    }
    Ok(Some(RequestedAmount::Decimal(amount.to_owned())))
}

/// `POST /dashboard/orders/{id}/{capture|void|refund}`: the form's request, written as the
/// API writes it, then back to the order page saying what came of it.
async fn order_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<MoneyForm>,
) -> Response {
    let session = match posted(&app, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let order = OrderLocator::Id(id.clone());
    let (request, done) = match action.as_str() {
        "void" => (
            Request::Release {
                order,
                amount: None,
                render: Box::new(render_order),
            },
            "voided",
        ),
        "capture" | "refund" => {
            let amount = match requested(&form.amount) {
                Ok(amount) => amount,
                Err(error) => return after_write(&id, "", Err(error)).await,
            };
            if action == "capture" {
                let capture = CaptureRequest {
                    id: new_id("cap_"),
                    amount,
                    is_final: form.r#final.is_some(),
                    metadata: String::new(),
                    ..CaptureRequest::default()
                };
                let request = Request::Capture {
                    order,
                    request: capture,
                    reference_scope: ReferenceScope::Order,
                    render: Box::new(render_capture),
                };
                (request, "captured")
            } else {
                let reason = form.reason.trim();
                let refund = RefundRequest {
                    id: new_id("ref_"),
                    amount,
                    currency: None,
                    reference: None,
                    reason: (!reason.is_empty()).then(|| reason.chars().take(200).collect()),
                    metadata: String::new(),
                };
                let request = Request::Refund {
                    order,
                    request: refund,
                    render: Box::new(render_refund),
                };
                (request, "refunded")
            }
        }
        _ => return not_found(&app, &session, "order"),
    };
    let path = format!("/dashboard/orders/{id}/{action}");
    let written = form_write(&app, &session, &path, &form, request).await;
    after_write(&id, done, written).await
}

async fn webhooks(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    webhooks_page(&app, &session, None).await
}

async fn webhooks_page(app: &AppState, session: &Session, created: Option<String>) -> Response {
    let endpoints = match app.store.endpoints(&session.merchant_id).await {
        Ok(endpoints) => endpoints,
        Err(error) => return unavailable(&error),
    };
    let mut body = String::from("<h1>Webhook endpoints</h1>");
    if let Some(created) = created {
        body.push_str(&created);
    }
    if endpoints.is_empty() {
        body.push_str("<p>No endpoints yet.</p>");
    } else {
        body.push_str(
            "<div class=\"table-wrap\"><table><thead><tr><th>Endpoint</th><th>URL</th><th>Format</th>\
             <th>Events</th><th>Enabled</th></tr></thead><tbody>",
        );
        for endpoint in &endpoints {
            let _ = write!(
                body,
                "<tr><td><a class=\"mono\" href=\"/dashboard/webhooks/{id}\">{id}</a></td><td>{url}</td><td>{format}</td><td>{events}</td><td>{enabled}</td></tr>",
                id = escape(&endpoint.id),
                url = escape(&endpoint.url),
                format = escape(&endpoint.format),
                events = escape(&endpoint.enabled_events.join(", ")),
                enabled = if endpoint.enabled {
                    "yes"
                } else {
                    "no (answered 410)"
                },
            );
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str("<h2>Add an endpoint</h2><form method=\"post\" action=\"/dashboard/webhooks\" class=\"inline\">");
    body.push_str(&csrf_field(app, session));
    body.push_str(
        "<label for=\"url\">URL<input id=\"url\" name=\"url\" type=\"url\" required maxlength=\"2048\" placeholder=\"https://example.com/hooks\"></label>\
         <label for=\"format\">Format<select id=\"format\" name=\"format\">",
    );
    for format in crate::webhooks::FORMATS {
        let _ = write!(body, "<option>{format}</option>");
    }
    body.push_str(
        "</select></label><label for=\"events\">Events (comma-separated, * = all)\
         <input id=\"events\" name=\"events\" value=\"*\" maxlength=\"500\"></label>\
         <button type=\"submit\">Add</button></form>",
    );
    html(StatusCode::OK, page("Webhooks", &nav(app, session), &body))
}

#[derive(Deserialize)]
struct EndpointForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    events: String,
}

async fn add_webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<EndpointForm>,
) -> Response {
    let session = match posted(&app, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if form.url.len() > FIELD_CHARS_MAX || form.events.len() > FIELD_CHARS_MAX {
        return webhooks_page(
            &app,
            &session,
            Some(notice("bad", "The URL or the event list is too long.")),
        )
        .await;
    }
    let events: Vec<String> = form
        .events
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let request = CreateEndpointRequest {
        url: form.url.trim().to_owned(),
        enabled_events: (!events.is_empty()).then_some(events),
        format: (!form.format.is_empty()).then(|| form.format.clone()),
    };
    let message = match add_endpoint(&app, session.merchant_id.clone(), request).await {
        Ok((endpoint, secret)) => {
            let secret = secret.map_or_else(String::new, |secret| {
                format!(
                    " Its signing secret, shown this once: <code id=\"endpoint-secret\">{}</code>",
                    escape(&secret)
                )
            });
            format!(
                "<p class=\"notice good\" role=\"status\">Added <span class=\"mono\">{}</span>.{secret}</p>",
                escape(&endpoint.id)
            )
        }
        Err(problem) => notice("bad", &problem_words(problem).await),
    };
    webhooks_page(&app, &session, Some(message)).await
}

/// A native problem's `detail`, for a person.
async fn problem_words(problem: crate::native::Problem) -> String {
    let response = problem.into_response();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["detail"].as_str().unwrap_or("refused").to_owned()
}

async fn webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(outcome): Query<Outcome>,
) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    let endpoint = match merchant_endpoint(&app, &session, &id).await {
        Ok(endpoint) => endpoint,
        Err(missing) => return missing,
    };
    let attempts = match app
        .store
        .delivery_attempts(&session.merchant_id, &id, 200)
        .await
    {
        Ok(attempts) => attempts,
        Err(error) => return unavailable(&error),
    };
    let mut body = format!(
        "<h1>Endpoint <span class=\"mono\">{}</span></h1><p>{} · {} · events: {}</p>",
        escape(&endpoint.id),
        escape(&endpoint.url),
        escape(&endpoint.format),
        escape(&endpoint.enabled_events.join(", "))
    );
    if outcome.done.is_some() {
        body.push_str(&notice(
            "good",
            "Redelivery planned: it appears below once attempted.",
        ));
    }
    if let Some(tested) = outcome.tested.as_deref() {
        let tested = tested.get(..300).unwrap_or(tested);
        let good = tested.starts_with("Accepted");
        body.push_str(&notice(if good { "good" } else { "bad" }, tested));
    }
    if endpoint.format == "standard" {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/dashboard/webhooks/{}/test\" class=\"inline\">{}\
             <button type=\"submit\" class=\"secondary\">Send a test event</button></form>",
            escape(&endpoint.id),
            csrf_field(&app, &session)
        );
    } else {
        body.push_str(
            "<p class=\"muted\">Test events are sent to standard endpoints; a provider's format \
             notifies about an order: redeliver one of its events below.</p>",
        );
    }
    if let Some(error) = outcome.error.as_deref() {
        body.push_str(&notice("bad", error.get(..300).unwrap_or(error)));
    }
    body.push_str(
        "<h2>Deliveries</h2><div class=\"table-wrap\"><table><thead><tr><th>Event</th><th>Attempted</th>\
         <th>Answer</th><th class=\"num\">ms</th><th>Again</th></tr></thead><tbody>",
    );
    for attempt in &attempts {
        let answer = match (attempt.status_code, &attempt.error) {
            (Some(status), None) => status.to_string(),
            (Some(status), Some(error)) => format!("{status}: {error}"),
            (None, Some(error)) => error.clone(),
            (None, None) => String::new(),
        };
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{event}</td><td>{at}</td><td>{answer}</td><td class=\"num\">{ms}</td>\
             <td><form method=\"post\" action=\"/dashboard/events/{event}/redeliver\">{csrf}\
             <input type=\"hidden\" name=\"endpoint\" value=\"{endpoint}\">\
             <button type=\"submit\" class=\"secondary\">Redeliver</button></form></td></tr>",
            event = escape(&attempt.event_id),
            at = when(attempt.attempted_at),
            answer = escape(&answer),
            ms = attempt.duration_ms,
            csrf = csrf_field(&app, &session),
            endpoint = escape(&endpoint.id),
        );
    }
    if attempts.is_empty() {
        body.push_str("<tr><td colspan=\"5\">No attempts yet.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    html(
        StatusCode::OK,
        page("Endpoint", &nav(&app, &session), &body),
    )
}

#[derive(Deserialize)]
struct RedeliverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    endpoint: String,
}

async fn redeliver(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RedeliverForm>,
) -> Response {
    let session = match posted(&app, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let back = format!("/dashboard/webhooks/{}", urlencode(&form.endpoint));
    match app.store.redeliver(&session.merchant_id, &id).await {
        Ok(Some(_)) => see_other(&format!("{back}?done=redelivered")),
        Ok(None) => see_other(&format!("{back}?error={}", urlencode("No such event."))),
        Err(error) => unavailable(&error),
    }
}

async fn clock(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(outcome): Query<Outcome>,
) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    let now = match app.store.merchant_now(&session.merchant_id).await {
        Ok(now) => now,
        Err(error) => return unavailable(&error),
    };
    let ahead =
        Duration::from_millis(u64::try_from(now.millis() - app.store.now().millis()).unwrap_or(0));
    let mut body = String::from("<h1>Sandbox clock</h1>");
    if let Some(done) = outcome.done.as_deref() {
        body.push_str(&notice(
            "good",
            &format!(
                "The clock moved forward by {}.",
                done.get(..40).unwrap_or(done)
            ),
        ));
    }
    if let Some(error) = outcome.error.as_deref() {
        body.push_str(&notice("bad", error.get(..300).unwrap_or(error)));
    }
    let _ = write!(
        body,
        "<p>This merchant's clock reads <strong id=\"clock-now\">{}</strong>, {} ahead of the server's. \
         Authorizations expire, pending captures settle and webhook retries fall due by it.</p>",
        when(now),
        escape(&humantime::format_duration(Duration::from_secs(ahead.as_secs())).to_string()),
    );
    body.push_str("<form method=\"post\" action=\"/dashboard/clock/advance\" class=\"inline\">");
    body.push_str(&csrf_field(&app, &session));
    body.push_str("<label for=\"by\">Advance by<select id=\"by\" name=\"by\">");
    for (value, label) in [
        ("1h", "+1 hour"),
        ("1d", "+1 day"),
        ("7d", "+7 days"),
        ("8d", "+8 days"),
        ("30d", "+30 days"),
    ] {
        let _ = write!(body, "<option value=\"{value}\">{label}</option>");
    }
    body.push_str("</select></label><button type=\"submit\">Advance</button></form>");
    html(StatusCode::OK, page("Clock", &nav(&app, &session), &body))
}

#[derive(Deserialize)]
struct AdvanceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    by: String,
}

async fn advance_clock(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AdvanceForm>,
) -> Response {
    let session = match posted(&app, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let by = match form.by.as_str() {
        "1h" => Duration::from_secs(3600),
        "1d" => Duration::from_secs(86_400),
        "7d" => Duration::from_secs(7 * 86_400),
        "8d" => Duration::from_secs(8 * 86_400),
        "30d" => Duration::from_secs(30 * 86_400),
        _ => {
            return see_other(&format!(
                "/dashboard/clock?error={}",
                urlencode("Choose how far to advance.")
            ));
        }
    };
    match crate::native::clock::advance(&app, &session.merchant_id, by).await {
        Ok(()) => see_other(&format!(
            "/dashboard/clock?done={}",
            urlencode(&humantime::format_duration(by).to_string())
        )),
        Err(problem) => see_other(&format!(
            "/dashboard/clock?error={}",
            urlencode(&problem_words(problem).await)
        )),
    }
}

async fn send_test(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let session = match posted(&app, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let endpoint = match merchant_endpoint(&app, &session, &id).await {
        Ok(endpoint) => endpoint,
        Err(missing) => return missing,
    };
    let words = match crate::webhooks::send_test_event(&app, &endpoint).await {
        Ok(Some(test)) => match (test.accepted, test.status, test.error) {
            (true, Some(status), _) => format!(
                "Accepted: the endpoint answered {status} in {} ms.",
                test.duration_ms
            ),
            (false, Some(status), error) => format!(
                "Not accepted: the endpoint answered {status}{} in {} ms.",
                error.map(|e| format!(" ({e})")).unwrap_or_default(),
                test.duration_ms
            ),
            (_, None, error) => format!("Not delivered: {}.", error.unwrap_or_default()),
        },
        Ok(None) => "Test events are sent to standard endpoints only.".to_owned(),
        Err(error) => format!("Not delivered: {error}."),
    };
    see_other(&format!(
        "/dashboard/webhooks/{}?tested={}",
        urlencode(&id),
        urlencode(&words)
    ))
}
