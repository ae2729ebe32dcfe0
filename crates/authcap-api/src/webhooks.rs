//! Webhooks: the event body every endpoint receives, its Standard Webhooks signature, and the
//! delivery worker that carries out the deliveries the store planned with each event.
//!
//! The worker never runs inside the write path: it claims due deliveries with a lease (so one
//! node attempts each at a time, and a node that dies mid-delivery leaves it to the next
//! claim), sends them with bounded concurrency, a timeout and a bounded response, and records
//! each attempt. A 2xx is delivered; anything else — another status, a redirect (never
//! followed), a timeout, a refused connection — is retried on a schedule like Standard
//! Webhooks' (with jitter, honouring `Retry-After`) until about three days have passed; a 410
//! disables the endpoint.

use std::sync::Arc;

use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, ServerName},
};

use authcap_core::{Clock, EventKind};
use authcap_store::{
    DeliveryAttempt, DeliveryOutcome, DueDelivery, StoredEvent, SystemClock, WebhookEndpoint,
};
use axum::body::Bytes;
use axum::http::{Method, Request, Uri, header};
use base64::Engine;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::credentials::ServerSecret;
use crate::{AppState, notifications};

/// Delays before the 2nd, 3rd, … attempts; after the last the delivery is failed.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// How long one attempt may take, connection and response included, unless configured.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest attempt timeout that may be configured.
pub const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// How much of a receiver's answer is read.
const RESPONSE_BYTES_MAX: usize = 16 * 1024;

/// How many attempts are in flight at once, per node.
const ATTEMPTS_IN_FLIGHT_MAX: usize = 128;

/// How many slots must be free before the worker claims again.
const CLAIM_BATCH_MIN: u32 = 32;

/// How often an idle worker looks for due deliveries.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A claim on a delivery lasts twice an attempt's timeout (30 s at least), so that only a dead
/// worker's claims run out.
fn lease(timeout: Duration) -> Duration {
    (timeout * 2).max(Duration::from_secs(30))
}

/// The formats an endpoint can receive.
pub const FORMATS: &[&str] = &[
    "standard",
    "mercadopago",
    "multisafepay",
    "optty",
    "pipwave",
];

/// The event types a format has a notification for (`*` on an endpoint means these).
pub fn events_of(format: &str) -> Vec<&'static str> {
    EventKind::ALL
        .into_iter()
        .filter(|kind| format != "mercadopago" || mercadopago_action(*kind).is_some())
        .map(EventKind::as_str)
        .collect()
}

/// Mercado Pago's notification action for an event, if it has one.
pub fn mercadopago_action(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::OrderAuthorized => Some("order.action_required"),
        EventKind::OrderDeclined | EventKind::OrderFailed => Some("order.failed"),
        EventKind::CaptureSucceeded | EventKind::CaptureSettled => Some("order.processed"),
        EventKind::OrderVoided => Some("order.canceled"),
        EventKind::OrderExpired => Some("order.expired"),
        EventKind::RefundSucceeded => Some("order.refunded"),
        EventKind::CapturePending | EventKind::CaptureDeclined => None,
    }
}

/// The signing secret an endpoint of `format` is shown once, derived (never stored); none for
/// the formats signed with the merchant's own API credentials (MultiSafepay, Pipwave).
pub fn secret_of(server_secret: &ServerSecret, endpoint_id: &str, format: &str) -> Option<String> {
    match format {
        // Mercado Pago's secrets are hex text, used as the HMAC key as they are written.
        "mercadopago" => Some(hex::encode(
            server_secret.derive(&format!("webhook-endpoint:{endpoint_id}")),
        )),
        "multisafepay" | "pipwave" => None,
        _ => Some(endpoint_secret(server_secret, endpoint_id)),
    }
}

/// The signing secret of an endpoint, `whsec_` and base64 of 24 bytes derived from the server
/// secret: never stored.
pub fn endpoint_secret(server_secret: &ServerSecret, endpoint_id: &str) -> String {
    let key = endpoint_key(server_secret, endpoint_id);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

pub(crate) fn endpoint_key(server_secret: &ServerSecret, endpoint_id: &str) -> Vec<u8> {
    server_secret.derive(&format!("webhook-endpoint:{endpoint_id}"))[..24].to_vec()
}

/// A request to send: where, with which headers, what, and which answer accepts it.
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub acceptance: Acceptance,
}

/// Which answers mean delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acceptance {
    Status2xx,
    /// MultiSafepay: a 200 whose first 100 characters contain `OK`.
    MultisafepayOk,
    /// Pipwave: a 2xx whose body is `OK`.
    PipwaveOk,
}

impl Acceptance {
    fn accepts(self, status: u16, body: &[u8]) -> bool {
        match self {
            Acceptance::Status2xx => (200..300).contains(&status),
            Acceptance::MultisafepayOk => {
                let start = &body[..body.len().min(100)];
                status == 200 && start.windows(2).any(|w| w == b"OK")
            }
            Acceptance::PipwaveOk => (200..300).contains(&status) && body.trim_ascii() == b"OK",
        }
    }
}

/// A Mercado Pago notification: `POST {url}?data.id=<order id, lowercased>&type=order`, its body
/// and headers (`x-request-id`, `x-signature: ts=<s>,v1=<hex HMAC-SHA256 of the manifest>`).
fn mercadopago_request(
    endpoint: &WebhookEndpoint,
    secret: &str,
    event: &StoredEvent,
    timestamp: i64,
) -> Option<Outgoing> {
    let action = mercadopago_action(event.event.kind)?;
    let order_id =
        crate::mercadopago::ids::render(crate::mercadopago::ids::ORDER, &event.event.order_id);
    let data_id = order_id.to_ascii_lowercase();
    let separator = if endpoint.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}data.id={data_id}&type=order", endpoint.url);
    let request_id = uuid_like();
    let manifest = format!("id:{data_id};request-id:{request_id};ts:{timestamp};");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(manifest.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let body = serde_json::json!({
        "action": action,
        "api_version": "v1",
        "application_id": stable_number(&event.merchant_id, "application").to_string(),
        "date_created": crate::wire::rfc3339(event.event.at),
        "id": event.id,
        "live_mode": false,
        "type": "order",
        "user_id": stable_number(&event.merchant_id, "user"),
        "data": {"id": order_id},
    });
    let headers = vec![
        ("x-request-id", request_id),
        ("x-signature", format!("ts={timestamp},v1={signature}")),
    ];
    Some(Outgoing {
        method: Method::POST,
        url,
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        acceptance: Acceptance::Status2xx,
    })
}

/// A random id shaped like a UUID (8-4-4-4-12 hex digits).
fn uuid_like() -> String {
    let hex = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A stable positive number for a merchant (Mercado Pago's numeric user and application ids).
fn stable_number(merchant_id: &str, what: &str) -> u64 {
    let digest = <Sha256 as sha2::Digest>::digest(format!("{what}:{merchant_id}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes) % 1_000_000_000_000
}

/// Standard Webhooks' `webhook-signature`: `v1,` and base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(signature)
    )
}

#[derive(Serialize)]
pub struct EventBody<'a> {
    pub id: &'a str,
    pub object: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub created_at: String,
    pub data: EventData<'a>,
}

#[derive(Serialize)]
pub struct EventData<'a> {
    /// The order as `GET /v1/orders/{id}` showed it right after the event.
    pub object: &'a RawValue,
}

/// The event as the native API and standard webhooks show it.
pub fn event_json(event: &StoredEvent) -> Vec<u8> {
    let payload = notifications::rendered(event, notifications::Rendering::Native)
        .unwrap_or_else(|| RawValue::from_string("null".into()).expect("null is JSON"));
    let body = EventBody {
        id: &event.id,
        object: "event",
        kind: event.event.kind.as_str(),
        created_at: crate::wire::rfc3339(event.event.at),
        data: EventData { object: &payload },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The delay before the attempt after `attempts` failed ones, with ±10 % jitter; `None` once
/// the schedule is spent.
fn next_delay(attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let planned = *RETRY_SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let jitter = 0.9 + rand::random::<f64>() * 0.2;
    let delay = planned.mul_f64(jitter);
    Some(retry_after.map_or(delay, |asked| {
        delay.max(asked.min(Duration::from_secs(86_400)))
    }))
}

/// What one attempt came to.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    accepted: bool,
}

impl Answer {
    fn failed(error: String) -> Answer {
        Answer {
            status: None,
            error: Some(error),
            retry_after: None,
            accepted: false,
        }
    }
}

/// Trusts the public web roots and `extra` certificates (DER) for `https://` deliveries.
pub fn tls_connector(extra: &[Vec<u8>]) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for der in extra {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("a webhook CA certificate: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file, as DER.
pub fn read_pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
}

/// Where a receiver listens: TLS or not, host, port.
type Origin = (bool, String, u16);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle keep-alive connections kept per origin (as many as attempts in flight, so that a busy
/// receiver's connections are all reused), origins kept, and idle connections in all, at most.
const IDLE_PER_ORIGIN_MAX: usize = ATTEMPTS_IN_FLIGHT_MAX;
const ORIGINS_MAX: usize = 256;
const IDLE_MAX: usize = 512;

/// The worker's outbound connections: the TLS set-up and the idle keep-alive connections.
pub struct Connections {
    tls: TlsConnector,
    idle: std::sync::Mutex<std::collections::HashMap<Origin, Vec<Sender>>>,
}

impl Connections {
    pub fn new(tls: TlsConnector) -> Connections {
        Connections {
            tls,
            idle: Default::default(),
        }
    }

    fn take_idle(&self, origin: &Origin) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let senders = idle.get_mut(origin)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn keep_idle(&self, origin: Origin, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= ORIGINS_MAX && !idle.contains_key(&origin) {
            idle.retain(|_, senders| {
                senders.retain(|sender| !sender.is_closed());
                !senders.is_empty()
            });
            if idle.len() >= ORIGINS_MAX {
                return;
            }
        }
        if idle.values().map(Vec::len).sum::<usize>() >= IDLE_MAX {
            return;
        }
        let senders = idle.entry(origin).or_default();
        if senders.len() < IDLE_PER_ORIGIN_MAX {
            senders.push(sender);
        }
    }

    async fn connect(&self, (secure, host, port): &Origin) -> Result<Sender, String> {
        let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if !secure {
            return handshake(stream).await;
        }
        let name =
            ServerName::try_from(host.clone()).map_err(|e| format!("TLS server name: {e}"))?;
        let stream = self
            .tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        handshake(stream).await
    }
}

async fn handshake<IO>(io: IO) -> Result<Sender, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What a receiver answered: status, `Retry-After`, and the answer's first bytes.
type Received = (u16, Option<Duration>, Bytes);

/// One request over a connection; the connection comes back when it can carry another (the
/// whole answer was read).
async fn exchange(
    mut sender: Sender,
    request: Request<Full<Bytes>>,
) -> Result<(Received, Option<Sender>), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // A bounded read of the answer, so a receiver cannot make the worker hold much.
    let answer = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let reusable = answer.is_ok();
    let answer = answer.unwrap_or_default();
    Ok(((status, retry_after, answer), reusable.then_some(sender)))
}

async fn send(outgoing: Outgoing, connections: &Connections, timeout: Duration) -> Answer {
    let Outgoing {
        method,
        url,
        headers,
        body,
        acceptance,
    } = outgoing;
    let failed = Answer::failed;
    let Ok(uri) = url.parse::<Uri>() else {
        return failed("the URL does not parse".into());
    };
    let (Some(host), Some(scheme @ ("http" | "https"))) = (uri.host(), uri.scheme_str()) else {
        return failed("only http:// and https:// URLs can be delivered to".into());
    };
    let secure = scheme == "https";
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let body = Bytes::from(body);
    let request = || {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, "authcap-webhooks");
        if method != Method::GET {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        request
            .body(Full::new(body.clone()))
            .map_err(|e| format!("request: {e}"))
    };
    // An IPv6 literal comes bracketed in URLs, bare in socket addresses.
    let origin: Origin = (
        secure,
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    );
    let attempt = async {
        // A kept connection the receiver has meanwhile closed fails at once; a new one is
        // then tried (at least once: receivers deduplicate by the event's id anyway).
        if let Some(sender) = connections.take_idle(&origin)
            && let Ok((received, reusable)) = exchange(sender, request()?).await
        {
            if let Some(sender) = reusable {
                connections.keep_idle(origin.clone(), sender);
            }
            return Ok(received);
        }
        let sender = connections.connect(&origin).await?;
        let (received, reusable) = exchange(sender, request()?).await?;
        if let Some(sender) = reusable {
            connections.keep_idle(origin.clone(), sender);
        }
        Ok::<Received, String>(received)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((status, retry_after, answer))) => {
            let accepted = acceptance.accepts(status, &answer);
            Answer {
                status: Some(status),
                error: (!accepted && (200..300).contains(&status))
                    .then(|| "the answer's body is not the OK this format requires".into()),
                retry_after,
                accepted,
            }
        }
        Ok(Err(error)) => failed(error),
        Err(_) => failed(format!("no answer within {timeout:?}")),
    }
}

/// What a test event's attempt came to: the receiver's status or why there was none, and how
/// long it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestDelivery {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub accepted: bool,
    pub duration_ms: u128,
}

/// Sends one `test` event, signed as every Standard Webhooks delivery is, straight to a
/// `standard` endpoint and waits for the answer: nothing is stored or retried. `None` for
/// endpoints of a provider's format, whose notifications are about an order.
pub async fn send_test_event(
    app: &AppState,
    endpoint: &WebhookEndpoint,
) -> Result<Option<TestDelivery>, String> {
    if endpoint.format != "standard" {
        return Ok(None);
    }
    let connections = Connections::new(tls_connector(&app.config.webhook_ca_certificates)?);
    let id = crate::wire::new_id("evt_test_");
    let timestamp = SystemClock.now().millis().div_euclid(1000);
    let body = serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "type": "test",
        "created_at": crate::wire::rfc3339(SystemClock.now()),
        "data": {"object": null},
    }))
    .unwrap_or_default();
    let key = endpoint_key(&app.server_secret, &endpoint.id);
    let signature = standard_signature(&key, &id, timestamp, &body);
    let outgoing = Outgoing {
        method: Method::POST,
        url: endpoint.url.clone(),
        headers: vec![
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
        body,
        acceptance: Acceptance::Status2xx,
    };
    let started = Instant::now();
    let answer = send(outgoing, &connections, app.config.webhook_attempt_timeout).await;
    Ok(Some(TestDelivery {
        status: answer.status,
        error: answer.error,
        accepted: answer.accepted,
        duration_ms: started.elapsed().as_millis(),
    }))
}

/// What came of an attempt, on its way to being recorded.
type Finished = (DeliveryAttempt, DeliveryOutcome);

/// Attempts one delivery and hands what came of it to the recorder.
async fn deliver(
    app: &AppState,
    connections: &Connections,
    delivery: DueDelivery,
    finished: &mpsc::Sender<Finished>,
) {
    // Signature timestamps are real time, whatever the sandbox clock says.
    let timestamp = SystemClock.now().millis().div_euclid(1000);
    let endpoint = &delivery.endpoint;
    let event = &delivery.event;
    let request = match endpoint.format.as_str() {
        "mercadopago" => {
            let secret = secret_of(&app.server_secret, &endpoint.id, &endpoint.format);
            Ok(mercadopago_request(
                endpoint,
                &secret.unwrap_or_default(),
                event,
                timestamp,
            ))
        }
        format @ ("multisafepay" | "multisafepay_get") => {
            let method = if format == "multisafepay" {
                Method::POST
            } else {
                Method::GET
            };
            notifications::multisafepay(app, endpoint, event, timestamp, method)
                .await
                .map(Some)
        }
        "optty" | notifications::OPTTY_CALLBACK => {
            notifications::optty(app, endpoint, event, timestamp)
                .await
                .map(Some)
        }
        "pipwave" => notifications::pipwave(app, endpoint, event, timestamp)
            .await
            .map(Some),
        _ => {
            let body = event_json(&delivery.event);
            let key = endpoint_key(&app.server_secret, &endpoint.id);
            let signature = standard_signature(&key, &delivery.event.id, timestamp, &body);
            let headers = vec![
                ("webhook-id", delivery.event.id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ];
            Ok(Some(Outgoing {
                method: Method::POST,
                url: endpoint.url.clone(),
                headers,
                body,
                acceptance: Acceptance::Status2xx,
            }))
        }
    };
    let started = Instant::now();
    let answer = match request {
        Ok(Some(outgoing)) => send(outgoing, connections, app.config.webhook_attempt_timeout).await,
        // Planned before the endpoint's format had no notification for it: nothing to send.
        Ok(None) => Answer {
            status: Some(200),
            error: None,
            retry_after: None,
            accepted: true,
        },
        Err(unsendable) => Answer::failed(unsendable),
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let attempts = delivery.attempts + 1;
    // Retries are scheduled on the merchant's clock, so its sandbox clock moves them too.
    let now = match app.store.merchant_now(&delivery.endpoint.merchant_id).await {
        Ok(now) => now,
        Err(_) => app.store.now(),
    };
    let outcome = match answer.status {
        _ if answer.accepted => DeliveryOutcome::Delivered,
        Some(410) => DeliveryOutcome::EndpointGone,
        _ => match next_delay(attempts, answer.retry_after) {
            Some(delay) => {
                let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                DeliveryOutcome::RetryAt(now.plus_millis(millis))
            }
            None => DeliveryOutcome::Failed,
        },
    };
    app.metrics.delivery(match outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::RetryAt(_) => "retry",
        DeliveryOutcome::Failed => "failed",
        DeliveryOutcome::EndpointGone => "endpoint_gone",
    });
    let attempt = DeliveryAttempt {
        delivery_id: delivery.id.clone(),
        event_id: delivery.event.id.clone(),
        attempted_at: now,
        status_code: answer.status,
        error: answer.error,
        duration_ms,
    };
    // Unrecorded, the lease runs out and the delivery is attempted again: at least once.
    let _ = finished.send((attempt, outcome)).await;
}

/// How many finished attempts are recorded in one transaction at most.
const RECORDED_TOGETHER_MAX: usize = 256;

/// Records finished attempts, those that finished meanwhile together: one transaction each
/// time rather than one per attempt.
async fn record_attempts(app: AppState, mut finished: mpsc::Receiver<Finished>) {
    let mut batch = Vec::with_capacity(RECORDED_TOGETHER_MAX);
    while finished.recv_many(&mut batch, RECORDED_TOGETHER_MAX).await > 0 {
        let count = batch.len();
        if let Err(error) = app
            .store
            .finish_deliveries(std::mem::take(&mut batch))
            .await
        {
            // Their leases run out and they are attempted again: at least once.
            tracing::warn!(%error, count, "could not record delivery attempts");
        }
    }
}

/// Runs the delivery worker until the process ends: it claims as many due deliveries as it has
/// free slots (at least [`CLAIM_BATCH_MIN`]), and claims again as soon as that many are free
/// while work keeps coming; idle, it looks every [`POLL_INTERVAL`].
pub fn spawn_worker(app: AppState, tls: TlsConnector) {
    let connections = Arc::new(Connections::new(tls));
    let (finished, to_record) = mpsc::channel(ATTEMPTS_IN_FLIGHT_MAX);
    tokio::spawn(record_attempts(app.clone(), to_record));
    tokio::spawn(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(ATTEMPTS_IN_FLIGHT_MAX));
        loop {
            // Claims are writes: each waits for a batch of free slots, so that under load it
            // brings many deliveries rather than one.
            let Ok(mut free) = slots.clone().acquire_many_owned(CLAIM_BATCH_MIN).await else {
                return;
            };
            let more = u32::try_from(slots.available_permits()).unwrap_or(0);
            if let Ok(more) = slots.clone().try_acquire_many_owned(more) {
                free.merge(more);
            }
            let count = u32::try_from(free.num_permits()).unwrap_or(CLAIM_BATCH_MIN);
            let lease = lease(app.config.webhook_attempt_timeout);
            let claimed = match app.store.claim_deliveries(lease, count).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim deliveries");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(free);
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            for delivery in claimed {
                let Some(slot) = free.split(1) else {
                    break;
                };
                let (app, connections, finished) =
                    (app.clone(), connections.clone(), finished.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    deliver(&app, &connections, delivery, &finished).await;
                });
            }
        }
    });
}
