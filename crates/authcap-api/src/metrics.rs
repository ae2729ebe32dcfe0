//! `/metrics` in the Prometheus text format: HTTP requests by route template, method and status
//! with latency histograms; writes by operation and outcome; idempotent replays; SQLite group
//! sizes, commit (fsync) latency and writer queue depth; PostgreSQL pool usage and wait time;
//! webhook deliveries by outcome and their backlog. Optionally behind a bearer token
//! (`--metrics-token`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use authcap_store::StoreObserver;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// What a write came to, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Done (2xx).
    Succeeded,
    /// Refused by the core or the processor (4xx): its answer is kept like a success's.
    Refused,
    /// A retry answered from the idempotency record.
    Replayed,
    /// Not done: storage unavailable or at capacity (nothing written).
    Failed,
}

impl WriteOutcome {
    fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Succeeded => "succeeded",
            WriteOutcome::Refused => "refused",
            WriteOutcome::Replayed => "replayed",
            WriteOutcome::Failed => "failed",
        }
    }
}

/// Seconds, from 0.25 ms to ~16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    writes: Family<WriteLabels, Counter>,
    replays: Counter,
    deliveries: Family<OutcomeLabels, Counter>,
    delivery_backlog: Gauge,
    sqlite_group_writes: Histogram,
    sqlite_commit: Histogram,
    sqlite_queue: Gauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_waiting: Gauge,
    pool_max: Gauge,
    pool_wait: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("authcap");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_buckets,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its answer, by route template and method",
            http_duration.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "writes",
            "Writes (create, capture, release, refund) by operation and outcome",
            writes.clone(),
        );
        let replays = Counter::default();
        registry.register(
            "idempotent_replays",
            "Answers replayed from an idempotency record, every dialect",
            replays.clone(),
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, failed, endpoint_gone)",
            deliveries.clone(),
        );
        let delivery_backlog = Gauge::default();
        registry.register(
            "webhook_deliveries_pending",
            "Webhook deliveries not yet delivered nor failed (due or waiting for a retry)",
            delivery_backlog.clone(),
        );
        let sqlite_group_writes = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "sqlite_group_commit_writes",
            "SQLite: writes committed together by one fsync",
            sqlite_group_writes.clone(),
        );
        let sqlite_commit = latency_buckets();
        registry.register(
            "sqlite_commit_duration_seconds",
            "SQLite: time of a group's COMMIT (its fsync)",
            sqlite_commit.clone(),
        );
        let sqlite_queue = Gauge::default();
        registry.register(
            "sqlite_writer_queue_depth",
            "SQLite: writes waiting for the writer thread",
            sqlite_queue.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "postgres_pool_connections",
            "PostgreSQL: connections open in this node's pool",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "postgres_pool_idle_connections",
            "PostgreSQL: open connections not in use",
            pool_idle.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "postgres_pool_waiting_requests",
            "PostgreSQL: requests waiting for a connection",
            pool_waiting.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "postgres_pool_max_connections",
            "PostgreSQL: the most connections this node opens",
            pool_max.clone(),
        );
        let pool_wait = latency_buckets();
        registry.register(
            "postgres_pool_wait_seconds",
            "PostgreSQL: time a request waited for a pooled connection",
            pool_wait.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            writes,
            replays,
            deliveries,
            delivery_backlog,
            sqlite_group_writes,
            sqlite_commit,
            sqlite_queue,
            pool_connections,
            pool_idle,
            pool_waiting,
            pool_max,
            pool_wait,
        }
    }

    pub fn write(&self, operation: &'static str, outcome: WriteOutcome) {
        self.writes
            .get_or_create(&WriteLabels {
                operation,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn replayed(&self) {
        self.replays.inc();
    }

    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

impl StoreObserver for Metrics {
    fn group_committed(&self, writes: usize, commit: Duration) {
        self.sqlite_group_writes.observe(writes as f64);
        self.sqlite_commit.observe(commit.as_secs_f64());
    }

    fn connection_waited(&self, wait: Duration) {
        self.pool_wait.observe(wait.as_secs_f64());
    }
}

/// Counts every request by its route template (`/v1/orders/{id}`, never the id itself, so the
/// label set stays bounded), method and status, and times it.
pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    // Clients choose methods freely: only the standard ones become labels.
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    let metrics = &app.metrics;
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method: method.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .http_duration
        .get_or_create(&RouteLabels { route, method })
        .observe(started.elapsed().as_secs_f64());
    if response.headers().contains_key("idempotent-replayed") {
        metrics.replayed();
    }
    response
}

/// `GET /metrics`.
pub async fn render(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &app.config.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "send the metrics token as `Authorization: Bearer <token>`\n",
            )
                .into_response();
        }
    }
    let metrics = &app.metrics;
    if let Some(depth) = app.store.writer_queue_depth() {
        metrics
            .sqlite_queue
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    if let Some(pool) = app.store.pool_status() {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.pool_connections.set(gauge(pool.size));
        metrics.pool_idle.set(gauge(pool.available));
        metrics.pool_waiting.set(gauge(pool.waiting));
        metrics.pool_max.set(gauge(pool.max));
    }
    if let Ok(pending) = app.store.pending_deliveries().await {
        metrics.delivery_backlog.set(pending);
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The metrics every part of the server records into.
pub type SharedMetrics = Arc<Metrics>;
