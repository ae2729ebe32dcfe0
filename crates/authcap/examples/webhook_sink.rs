//! The benchmark's webhook receiver: answers every POST 200 and records how long after its
//! event (`created_at` of a native payload) each delivery arrived. `GET /stats` answers
//! `received=N p50_ms=… p99_ms=… max_ms=…`. `webhook_sink 127.0.0.1:9091`.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::{Router, body::Bytes, extract::State, routing::get, routing::post};

type Delays = Arc<Mutex<Vec<u64>>>;

async fn receive(State(delays): State<Delays>, body: Bytes) -> &'static str {
    let now = SystemTime::now();
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(at) = event["created_at"]
        .as_str()
        .and_then(|text| humantime::parse_rfc3339(text).ok())
    {
        let delay = now.duration_since(at).unwrap_or_default();
        delays.lock().unwrap().push(delay.as_millis() as u64);
    }
    "ok"
}

async fn stats(State(delays): State<Delays>) -> String {
    let mut delays = delays.lock().unwrap().clone();
    delays.sort_unstable();
    let at = |q: f64| {
        let index = ((delays.len().max(1) - 1) as f64 * q).round() as usize;
        delays.get(index).copied().unwrap_or(0)
    };
    format!(
        "received={} p50_ms={} p99_ms={} max_ms={}\n",
        delays.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9091".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new()
        .route("/hooks", post(receive))
        .route("/stats", get(stats))
        .with_state(Delays::default());
    axum::serve(listener, app).await
}
