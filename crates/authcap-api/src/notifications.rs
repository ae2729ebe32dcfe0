//! The dialects' own notifications, for endpoints with their `format`: each carries the order as
//! its dialect's `GET` showed it right after the event (kept with the event), signed the way
//! that provider's merchants verify it. Mercado Pago's lives in `webhooks` (it carries only the
//! order's id).

use authcap_core::{EventKind, Timestamp};
use authcap_store::{OrderRecord, StoredEvent, WebhookEndpoint};
use axum::http::Method;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha512;

use crate::AppState;
use crate::credentials::derived_credential;
use crate::webhooks::{Acceptance, Outgoing, endpoint_key, standard_signature};

/// Why a notification could not be made (recorded as the attempt's error, and retried).
pub type Unsendable = String;

/// What an event keeps: the order as each API showed it right after the event.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    native: Box<RawValue>,
    multisafepay: Box<RawValue>,
    optty: Box<RawValue>,
    pipwave: PipwaveFacts,
}

/// The order's facts a Pipwave notification carries.
#[derive(Clone, Serialize, Deserialize)]
pub struct PipwaveFacts {
    pub pw_id: String,
    pub txn_id: String,
    pub amount: String,
    pub currency_code: String,
    pub transaction_status: u8,
    pub require_capture: bool,
    pub captured_amount: String,
    pub refunded_amount: String,
}

/// Renders what an event keeps of its order (see [`Snapshot`]).
pub fn snapshot(record: &OrderRecord, at: Timestamp) -> Vec<u8> {
    let raw = |value: serde_json::Result<Box<RawValue>>| {
        value.unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
    };
    let order = &record.order;
    let money = |amount| order.currency.format_decimal(amount);
    let snapshot = Snapshot {
        native: raw(serde_json::value::to_raw_value(
            &crate::native::types::OrderBody::of(record, at),
        )),
        multisafepay: raw(serde_json::value::to_raw_value(
            &crate::multisafepay::types::OrderView::of(record, at),
        )),
        optty: raw(serde_json::value::to_raw_value(
            &crate::optty::order_response(record, at),
        )),
        pipwave: PipwaveFacts {
            pw_id: order.id.clone(),
            txn_id: order.reference.clone(),
            amount: money(order.amount),
            currency_code: order.currency.code().to_owned(),
            transaction_status: crate::pipwave::transaction_status(record, at),
            require_capture: !order.capturable_amount(at).is_zero(),
            captured_amount: money(order.captured_amount),
            refunded_amount: money(order.refunded_amount),
        },
    };
    serde_json::to_vec(&snapshot).unwrap_or_default()
}

/// A rendering an event kept of its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    Native,
    Multisafepay,
    Optty,
}

fn kept(event: &StoredEvent) -> Option<Snapshot> {
    serde_json::from_slice(event.payload.as_deref()?).ok()
}

/// The order as an API showed it right after the event. Events kept before every dialect's
/// rendering was kept hold the native one alone.
pub fn rendered(event: &StoredEvent, rendering: Rendering) -> Option<Box<RawValue>> {
    match (kept(event), rendering) {
        (Some(snapshot), Rendering::Native) => Some(snapshot.native),
        (Some(snapshot), Rendering::Multisafepay) => Some(snapshot.multisafepay),
        (Some(snapshot), Rendering::Optty) => Some(snapshot.optty),
        (None, Rendering::Native) => serde_json::from_slice(event.payload.as_deref()?).ok(),
        (None, _) => None,
    }
}

fn missing(format: &str) -> Unsendable {
    format!("the event was kept before {format} notifications existed")
}

fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

/// The merchant's API key in clear, or why it cannot be had.
async fn api_key(
    app: &AppState,
    merchant_id: &str,
    kind: authcap_store::CredentialKind,
    dialect: &str,
) -> Result<String, Unsendable> {
    derived_credential(
        &app.credentials,
        &app.store,
        &app.server_secret,
        merchant_id,
        kind,
    )
    .await
    .map_err(|e| format!("store: {e}"))?
    .ok_or_else(|| {
        format!(
            "the merchant's {dialect} API key predates signed notifications: rotate it \
             (authcap merchant rotate-credentials --dialect {dialect})"
        )
    })
}

/// MultiSafepay: `POST {url}?transactionid=<order_id>&timestamp=<s>` with the order as
/// `GET /orders/{order_id}` shows it in `data`, and `Auth: base64("<ts>:" + hex HMAC-SHA512(api
/// key, "<ts>:<body>"))`. The body is compact JSON with raw UTF-8, the form the Python SDK
/// re-serialises to, so both it and the PHP SDK's raw-body check pass. With `GET` (an order's
/// `notification_method`), the same query and nothing else: the merchant fetches the order.
pub(crate) async fn multisafepay(
    app: &AppState,
    endpoint: &WebhookEndpoint,
    event: &StoredEvent,
    timestamp: i64,
    method: Method,
) -> Result<Outgoing, Unsendable> {
    let view = rendered(event, Rendering::Multisafepay).ok_or_else(|| missing("MultiSafepay"))?;
    let order_id = serde_json::from_str::<serde_json::Value>(view.get())
        .ok()
        .and_then(|v| v.get("order_id").cloned())
        .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned))
        .unwrap_or_default();
    let query = serde_urlencoded::to_string([
        ("transactionid", order_id.as_str()),
        ("timestamp", &timestamp.to_string()),
    ])
    .map_err(|e| format!("render: {e}"))?;
    let url = with_query(&endpoint.url, &query);
    if method == Method::GET {
        return Ok(Outgoing {
            method,
            url,
            headers: Vec::new(),
            body: Vec::new(),
            acceptance: Acceptance::MultisafepayOk,
        });
    }
    let key = api_key(
        app,
        &event.merchant_id,
        crate::multisafepay::API_KEY,
        "multisafepay",
    )
    .await?;
    let body = view.get().as_bytes().to_vec();
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}:").as_bytes());
    mac.update(&body);
    let auth = format!("{timestamp}:{}", hex::encode(mac.finalize().into_bytes()));
    Ok(Outgoing {
        method,
        url,
        headers: vec![(
            "auth",
            base64::engine::general_purpose::STANDARD.encode(auth),
        )],
        body,
        acceptance: Acceptance::MultisafepayOk,
    })
}

/// The format of an Optty order's own `dynamicCallbackUrl`, and the events it receives.
pub const OPTTY_CALLBACK: &str = "optty_callback";
pub const OPTTY_CALLBACK_EVENTS: [EventKind; 3] = [
    EventKind::OrderAuthorized,
    EventKind::OrderDeclined,
    EventKind::OrderFailed,
];

/// The keys an Optty notification is signed with: the endpoint's secret, or for an order's
/// own callback the merchant's `optty_webhook_secret` of its newest Optty credentials.
async fn optty_keys(
    app: &AppState,
    endpoint: &WebhookEndpoint,
) -> Result<(String, Vec<u8>), Unsendable> {
    if endpoint.format != OPTTY_CALLBACK {
        return Ok((
            crate::webhooks::endpoint_secret(&app.server_secret, &endpoint.id),
            endpoint_key(&app.server_secret, &endpoint.id),
        ));
    }
    let merchant_id = &endpoint.merchant_id;
    let generation = app
        .store
        .newest_generation(merchant_id, crate::optty::CLIENT_ID)
        .await
        .map_err(|e| format!("store: {e}"))?
        .unwrap_or_default();
    Ok((
        app.server_secret
            .optty_webhook_secret(merchant_id, generation),
        app.server_secret.optty_webhook_key(merchant_id, generation),
    ))
}

/// Optty's event for a change: the authorization's outcome is `ORDER_ASYNC_CALLBACK`, every
/// later change `ORDER_STATUS_UPDATE`.
pub fn optty_event(kind: EventKind) -> &'static str {
    match kind {
        EventKind::OrderAuthorized | EventKind::OrderDeclined | EventKind::OrderFailed => {
            "ORDER_ASYNC_CALLBACK"
        }
        _ => "ORDER_STATUS_UPDATE",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpttyFields {
    status: String,
    merchant_reference: String,
}

/// Optty: `{"event", "status", "transactionId", "orderReference", "data": <GET
/// /orders/{orderReference}>}`, with `x-optty-signature` (hex HMAC-SHA512 over
/// `"{status}|{orderReference}"`, as Optty's plugins check redirects) and Standard Webhooks
/// headers over the whole body, both keyed with the endpoint's secret.
pub(crate) async fn optty(
    app: &AppState,
    endpoint: &WebhookEndpoint,
    event: &StoredEvent,
    timestamp: i64,
) -> Result<Outgoing, Unsendable> {
    let order = rendered(event, Rendering::Optty).ok_or_else(|| missing("Optty"))?;
    let fields: OpttyFields =
        serde_json::from_str(order.get()).map_err(|e| format!("render: {e}"))?;
    let body = serde_json::json!({
        "event": optty_event(event.event.kind),
        "eventId": event.id,
        "status": fields.status,
        "transactionId": event.event.order_id,
        "orderReference": fields.merchant_reference,
        "data": order,
    });
    let body = serde_json::to_vec(&body).map_err(|e| format!("render: {e}"))?;
    let (secret, key) = optty_keys(app, endpoint).await?;
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{}|{}", fields.status, fields.merchant_reference).as_bytes());
    let status_signature = hex::encode(mac.finalize().into_bytes());
    Ok(Outgoing {
        method: Method::POST,
        url: endpoint.url.clone(),
        headers: vec![
            ("x-optty-signature", status_signature),
            ("webhook-id", event.id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                standard_signature(&key, &event.id, timestamp, &body),
            ),
        ],
        body,
        acceptance: Acceptance::Status2xx,
    })
}

/// Pipwave: a JSON body with the payment's fields and `signature`, sha1 over `amount, api_key,
/// api_secret, currency_code, pw_id, timestamp, transaction_status, txn_id` sorted by key (PHP
/// `ksort`, with `0` signed as empty), keyed with the merchant's `api_secret`. `OK` answers it.
pub(crate) async fn pipwave(
    app: &AppState,
    endpoint: &WebhookEndpoint,
    event: &StoredEvent,
    timestamp: i64,
) -> Result<Outgoing, Unsendable> {
    let facts = kept(event)
        .map(|snapshot| snapshot.pipwave)
        .ok_or_else(|| missing("Pipwave"))?;
    let api_key = api_key(app, &event.merchant_id, crate::pipwave::API_KEY, "pipwave").await?;
    let generation = app
        .store
        .newest_generation(&event.merchant_id, crate::pipwave::API_KEY)
        .await
        .map_err(|e| format!("store: {e}"))?
        .unwrap_or_default();
    let api_secret = app
        .server_secret
        .pipwave_api_secret(&event.merchant_id, generation);
    let refund = event.event.kind == EventKind::RefundSucceeded;
    let amount = if refund {
        event.currency.format_decimal(event.event.amount)
    } else {
        facts.amount.clone()
    };
    let status = facts.transaction_status;
    let status_text = status.to_string();
    let timestamp_text = timestamp.to_string();
    // PHP's signers treat 0 as empty.
    let signed_status = if status == 0 {
        ""
    } else {
        status_text.as_str()
    };
    let pairs = [
        ("amount", amount.as_str()),
        ("api_key", api_key.as_str()),
        ("currency_code", facts.currency_code.as_str()),
        ("pw_id", facts.pw_id.as_str()),
        ("timestamp", timestamp_text.as_str()),
        ("transaction_status", signed_status),
        ("txn_id", facts.txn_id.as_str()),
    ];
    let signature = crate::pipwave::types::signature(&pairs, &api_secret);
    let body = serde_json::json!({
        "status": 200,
        "message": "OK",
        "api_key": api_key,
        "notification_id": event.id,
        "notification_date": timestamp,
        "type": if refund { "refund" } else { "payment" },
        "pw_id": facts.pw_id,
        "txn_id": facts.txn_id,
        "amount": amount,
        "currency_code": facts.currency_code,
        "transaction_status": status,
        "reverse_pw_id": if refund { event.event.subject_id.clone() } else { None },
        "require_capture": facts.require_capture,
        "captured_amount": facts.captured_amount,
        "refunded_amount": facts.refunded_amount,
        "timestamp": timestamp,
        "signature": signature,
    });
    Ok(Outgoing {
        method: Method::POST,
        url: endpoint.url.clone(),
        headers: Vec::new(),
        body: serde_json::to_vec(&body).map_err(|e| format!("render: {e}"))?,
        acceptance: Acceptance::PipwaveOk,
    })
}
