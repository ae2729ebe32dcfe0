//! Authcap's HTTP server.
//!
//! Reading order: [`router`] mounts the native API ([`native`]) and one module per provider
//! dialect; [`credentials`] turns bearer secrets into merchants; [`wire`] holds what every dialect
//! shares (bounded body reading, exact amounts, ids, the clock).
//!
//! Dialect modules are the only places that know a wire format; they translate it into one
//! [`authcap_store::Operation`] and render the outcome in their own shape, including errors.

pub mod credentials;
pub mod face;
pub mod limits;
pub mod mercadopago;
pub mod metrics;
pub mod multisafepay;
pub mod native;
mod notifications;
pub mod openapi;
pub mod optty;
pub mod pipeline;
pub mod pipwave;
pub mod request_id;
pub mod server;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authcap_store::Store;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Settings read once at start and shared by every request.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long an authorization can be captured.
    pub authorization_ttl: Duration,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// How far a Pipwave request's `timestamp` may be from the server clock, either way.
    pub pipwave_timestamp_window: Duration,
    /// How many connections are served at once, and how long each may take to send a request.
    pub connections: server::ConnectionLimits,
    /// Failed authentications (401/403) allowed per client address and minute; past them the
    /// client is answered 429 until the minute ends.
    pub failed_authentications_per_minute: u32,
    /// Certificates (DER) trusted for `https://` webhook URLs besides the public web roots.
    pub webhook_ca_certificates: Vec<Vec<u8>>,
    /// How long one webhook attempt may take, connection and answer included.
    pub webhook_attempt_timeout: Duration,
    /// When set, `/metrics` answers only `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            authorization_ttl: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            pipwave_timestamp_window: Duration::from_secs(300),
            connections: server::ConnectionLimits::default(),
            failed_authentications_per_minute: limits::FAILURES_PER_WINDOW,
            webhook_ca_certificates: Vec::new(),
            webhook_attempt_timeout: webhooks::ATTEMPT_TIMEOUT,
            metrics_token: None,
        }
    }
}

/// What every handler shares: one allocation, so that handing it to a request is one
/// reference count.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    pub store: Store,
    pub config: Arc<Config>,
    pub credentials: credentials::Resolver,
    pub server_secret: credentials::ServerSecret,
    pub metrics: metrics::SharedMetrics,
    readiness: Arc<tokio::sync::Mutex<Option<Probed>>>,
    failed_authentications: limits::FailedAuthentications,
}

/// When writes were last probed, and what came of it.
type Probed = (Instant, Result<(), String>);

impl AppState {
    pub fn new(store: Store, config: Config, server_secret: credentials::ServerSecret) -> AppState {
        // Every event keeps the order as each API showed it right after.
        store.set_event_snapshot(Arc::new(notifications::snapshot));
        let metrics = Arc::new(metrics::Metrics::new());
        store.set_observer(metrics.clone());
        AppState(Arc::new(App {
            metrics,
            credentials: credentials::Resolver::new(store.clone()),
            failed_authentications: limits::FailedAuthentications::new(
                config.failed_authentications_per_minute,
            ),
            store,
            config: Arc::new(config),
            server_secret,
            readiness: Arc::default(),
        }))
    }

    /// Whether writes succeed, probed at most once per [`READINESS_PROBE_INTERVAL`] (a
    /// committed heartbeat), so that health checks under load cost nothing.
    pub async fn ready(&self) -> Result<(), String> {
        let mut last = self.readiness.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < READINESS_PROBE_INTERVAL
        {
            return result.clone();
        }
        let result = self.store.probe().await.map_err(|error| error.to_string());
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(native::router())
        .merge(optty::router())
        .merge(multisafepay::router())
        .merge(mercadopago::router())
        .merge(pipwave::router())
        .merge(face::dashboard::router())
        .route("/docs", axum::routing::get(face::docs::reference))
        .route("/openapi.json", axum::routing::get(openapi::document))
        .route("/metrics", axum::routing::get(metrics::render))
        .route("/healthz", axum::routing::get(health))
        .route("/readyz", axum::routing::get(health))
        .fallback(native::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit_failed_authentications,
        ))
        .layer(axum::middleware::from_fn(require_host))
        .layer(axum::middleware::from_fn(retry_after))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(state)
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_us = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::error!(%method, %path, status, elapsed_us, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_us, "request");
    }
    response
}

/// How often readiness commits a heartbeat, at most.
const READINESS_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// `ok` while writes succeed; 503 with the reason while they cannot (the database read-only,
/// unreachable, or out of space).
async fn health(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    use axum::response::IntoResponse;
    match app.ready().await {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: writes fail: {why}\n"),
        )
            .into_response(),
    }
}

/// How long a client is told to wait before retrying a 503 (storage unavailable, at capacity).
const RETRY_AFTER_SECONDS: &str = "1";

/// Every 503 says when to come back: nothing was written, so a retry is safe.
async fn retry_after(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// HTTP/1.1 requires a `Host` header (RFC 9112, 3.2): a request without one is refused.
async fn require_host(request: Request, next: Next) -> Response {
    let http11 = request.version() == axum::http::Version::HTTP_11;
    let has_host = request.headers().contains_key(axum::http::header::HOST)
        || request.uri().authority().is_some();
    if http11 && !has_host {
        return axum::response::IntoResponse::into_response(native::Problem::InvalidRequest(
            "HTTP/1.1 requests must carry a `Host` header".into(),
        ));
    }
    next.run(request).await
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = webhooks::tls_connector(&state.config.webhook_ca_certificates)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    spawn_housekeeping(state.clone());
    webhooks::spawn_worker(state.clone(), tls);
    let limits = state.config.connections;
    server::run(listener, router(state), limits, shutdown).await
}

/// How often the clock's consequences (expiries, settlements) are written down, with their
/// events. Reads show them at once whatever this is.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How often memory freed after a burst of connections is handed back to the system.
const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// How often idempotency keys past their time are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Background upkeep: write down expiries and settlements, forget old idempotency keys.
fn spawn_housekeeping(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<Instant> = None;
        let mut last_trim = Instant::now();
        loop {
            tick.tick().await;
            if let Err(error) = state.store.sweep().await {
                tracing::warn!(%error, "sweep failed");
            }
            if last_trim.elapsed() >= MEMORY_TRIM_INTERVAL {
                last_trim = Instant::now();
                server::return_free_memory();
            }
            if last_prune.is_some_and(|at| at.elapsed() < PRUNE_INTERVAL) {
                continue;
            }
            last_prune = Some(Instant::now());
            let ttl_ms =
                i64::try_from(state.config.idempotency_ttl.as_millis()).unwrap_or(i64::MAX);
            let horizon = state.store.now().millis().saturating_sub(ttl_ms);
            if let Err(error) = state.store.prune_idempotency(horizon).await {
                tracing::warn!(%error, "idempotency pruning failed");
            }
        }
    });
}
