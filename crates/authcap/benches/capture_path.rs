//! Throughput and latency of the durable capture path, against a baseline handler.
//!
//! `cargo bench --bench capture_path` serves Authcap in-process on a fresh SQLite file (or the
//! database in `AUTHCAP_BENCH_DATABASE`, e.g. a PostgreSQL URL) and drives it over HTTP from
//! `AUTHCAP_BENCH_CLIENTS` concurrent clients (default 64) for `AUTHCAP_BENCH_SECONDS` (default
//! 5) per phase. It prints requests per second and latency percentiles; nothing is asserted.
//! During the capture phase a webhook endpoint receives every event, and the delivery latency
//! (the event's time → the receiver has it, millisecond resolution) is printed too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authcap_api::credentials::{self, ServerSecret};
use authcap_api::{AppState, Config};
use authcap_core::Simulator;
use authcap_store::Store;
use serde_json::{Value, json};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Phase {
    fn print(&mut self) {
        self.latencies_us.sort_unstable();
        let at = |q: f64| {
            let index = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
            self.latencies_us.get(index).copied().unwrap_or(0)
        };
        println!(
            "{:<28} {:>8} req {:>6} err {:>9.0} req/s   p50 {:>6} us   p99 {:>7} us   max {:>7} us",
            self.name,
            self.requests,
            self.errors,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.99),
            at(1.0),
        );
    }
}

/// Whether the response has `status`, after reading its body (so the connection is reused).
async fn answered(response: reqwest::Result<reqwest::Response>, status: u16) -> bool {
    match response {
        Ok(response) => {
            let matches = response.status() == status;
            response.bytes().await.is_ok() && matches
        }
        Err(_) => false,
    }
}

/// Runs `request(n)` from `clients` tasks for `seconds`, recording each latency.
async fn run<F, Fut>(name: &'static str, clients: usize, seconds: u64, request: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let request = request.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    if !request(n).await {
                        errors += 1;
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut phase = Phase {
        name,
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        phase.requests += latencies.len();
        phase.errors += errors;
        phase.latencies_us.extend(latencies);
    }
    phase.elapsed = started.elapsed();
    phase
}

/// A webhook receiver in the same process: how long after its event each delivery arrived.
fn start_receiver(listener: std::net::TcpListener) -> Arc<std::sync::Mutex<Vec<u64>>> {
    let delays = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = delays.clone();
    let receive = move |body: axum::body::Bytes| {
        let recorded = recorded.clone();
        async move {
            let now = std::time::SystemTime::now();
            let event: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(at) = event["created_at"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
            {
                let delay = now.duration_since(at).unwrap_or_default();
                recorded.lock().unwrap().push(delay.as_millis() as u64);
            }
            "ok"
        }
    };
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let app = axum::Router::new().route("/hooks", axum::routing::post(receive));
    tokio::spawn(async move { axum::serve(listener, app).await });
    delays
}

fn print_delivery_latency(delays: &mut [u64], events: usize) {
    delays.sort_unstable();
    let at = |q: f64| {
        let index = ((delays.len() as f64 - 1.0) * q).round() as usize;
        delays.get(index).copied().unwrap_or(0)
    };
    println!(
        "{:<28} {:>8} of {} events delivered   p50 {:>6} ms   p99 {:>7} ms   max {:>7} ms",
        "webhook delivery latency",
        delays.len(),
        events,
        at(0.50),
        at(0.99),
        at(1.0),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let clients = env_or("AUTHCAP_BENCH_CLIENTS", 64);
    let seconds = env_or("AUTHCAP_BENCH_SECONDS", 5) as u64;
    let dir = std::env::temp_dir().join(format!("authcap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = std::env::var("AUTHCAP_BENCH_DATABASE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()));
    let store = Store::open(&database, Arc::new(Simulator))
        .await
        .expect("open the database");
    let secret = ServerSecret::load(&store, None).await.unwrap();
    let merchant = credentials::create_merchant(&store, &secret, "Bench")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(store.clone(), Config::default(), secret);
    tokio::spawn(authcap_api::serve(listener, state, std::future::pending()));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let key = merchant.secret_key.clone();
    println!(
        "authcap capture-path benchmark: backend {}, {clients} clients, {seconds} s per phase, {} cores",
        store.backend_name(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // Orders to capture against: many, so captures spread like real traffic.
    let orders_count = 2_000;
    let mut orders = Vec::with_capacity(orders_count);
    for n in 0..orders_count {
        let body = json!({"reference": format!("bench-{n}"), "amount": 1_000_000, "currency": "EUR",
            "payment_method": {"type": "card", "number": "4242424242424242"}});
        let order: Value = client
            .post(format!("{base}/v1/orders"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    let orders = Arc::new(orders);

    let (c, b) = (client.clone(), base.clone());
    run("baseline GET /healthz", clients, seconds, move |_| {
        let (c, b) = (c.clone(), b.clone());
        async move { answered(c.get(format!("{b}/healthz")).send().await, 200).await }
    })
    .await
    .print();

    let (c, b, k, o) = (client.clone(), base.clone(), key.clone(), orders.clone());
    run("GET /v1/orders/{id}", clients, seconds, move |n| {
        let (c, url, k) = (
            c.clone(),
            format!("{b}/v1/orders/{}", o[n % o.len()]),
            k.clone(),
        );
        async move { answered(c.get(url).bearer_auth(k).send().await, 200).await }
    })
    .await
    .print();

    // From here on every event is delivered to a receiver, as a merchant with a webhook has it.
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hooks = format!("http://{}/hooks", receiver.local_addr().unwrap());
    let delays = start_receiver(receiver);
    let endpoint = client
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": hooks, "enabled_events": ["capture.succeeded"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), 201);

    let (c, b, k, o) = (client.clone(), base.clone(), key.clone(), orders.clone());
    let mut captures = run("POST captures (durable)", clients, seconds, move |n| {
        let url = format!("{b}/v1/orders/{}/captures", o[n % o.len()]);
        let (c, k) = (c.clone(), k.clone());
        async move {
            let response = c
                .post(url)
                .bearer_auth(k)
                .header("Idempotency-Key", format!("cap-{n}"))
                .json(&json!({"amount": 1}))
                .send()
                .await;
            answered(response, 201).await
        }
    })
    .await;
    captures.print();
    // The deliveries still queued when the phase ended arrive within a few seconds.
    let captured = captures.requests - captures.errors;
    for _ in 0..600 {
        if delays.lock().unwrap().len() >= captured {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    print_delivery_latency(&mut delays.lock().unwrap(), captured);

    let (c, b, k) = (client.clone(), base.clone(), key.clone());
    run("POST orders (authorize)", clients, seconds, move |n| {
        let body = json!({"reference": format!("new-{n}"), "amount": 500, "currency": "EUR",
            "payment_method": {"type": "card", "number": "4242424242424242"}});
        let (c, url, k) = (c.clone(), format!("{b}/v1/orders"), k.clone());
        async move { answered(c.post(url).bearer_auth(k).json(&body).send().await, 201).await }
    })
    .await
    .print();

    let found = store.check().await.unwrap();
    println!("ledger check after the run: {} discrepancies", found.len());
    let _ = std::fs::remove_dir_all(&dir);
}
