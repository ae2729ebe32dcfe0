//! `kill -9` in the middle of a stream of captures, several times: every acknowledged capture
//! is there afterwards, no retried key executes twice, and `authcap check` finds the ledger
//! whole.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authcap_api::credentials::{self, ServerSecret};
use authcap_core::Simulator;
use authcap_store::Store;
use reqwest::Client;
use serde_json::{Value, json};

use super::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_authcap");
const ROUNDS: usize = 3;
const STREAMS: usize = 8;

/// The node, killed when the test ends however it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A merchant made directly in the database, before any node serves it.
async fn merchant_on(database: &TestDatabase, name: &str) -> credentials::IssuedCredentials {
    let store = Store::open(&database.url, Arc::new(Simulator))
        .await
        .unwrap();
    let secret = ServerSecret::load(&store, None).await.unwrap();
    credentials::create_merchant(&store, &secret, name)
        .await
        .unwrap()
}

/// Starts `authcap serve` on the database and waits for its address.
fn start(database: &str) -> (Node, String) {
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .env("AUTHCAP_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authcap serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("authcap serve exited early").unwrap();
        if let Some(base) = line.strip_prefix("listening on ") {
            break base.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Node(child), base)
}

async fn capture(client: &Client, base: &str, secret: &str, id: &str, key: &str) -> Option<Value> {
    let response = client
        .post(format!("{base}/v1/orders/{id}/captures"))
        .bearer_auth(secret)
        .header("Idempotency-Key", key)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .ok()?;
    if response.status() != 201 {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_captures_survive_kill_9() {
    let Some(database) = TestDatabase::new().await.map(Arc::new) else {
        return;
    };
    let merchant = merchant_on(&database, "Crash").await;
    let secret = merchant.secret_key.clone();
    let client = Client::new();
    let mut id = String::new();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut sent: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let (node, base) = start(&database.url);
        if round == 0 {
            let order: Value = client
                .post(format!("{base}/v1/orders"))
                .bearer_auth(&secret)
                .json(&order_body("crash", 10_000_000, APPROVE))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            id = order["id"].as_str().unwrap().to_owned();
        }
        // Streams of captures, each under its own key, until the node dies under them.
        let streams: Vec<_> = (0..STREAMS)
            .map(|stream| {
                let (client, base, secret, id) =
                    (client.clone(), base.clone(), secret.clone(), id.clone());
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    let mut acknowledged = Vec::new();
                    for n in 0.. {
                        let key = format!("r{round}-s{stream}-{n}");
                        sent.push(key.clone());
                        match capture(&client, &base, &secret, &id, &key).await {
                            Some(_) => acknowledged.push(key),
                            None => break,
                        }
                    }
                    (sent, acknowledged)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(node); // SIGKILL, then reap.
        for stream in streams {
            let (stream_sent, stream_acknowledged) = stream.await.unwrap();
            sent.extend(stream_sent);
            acknowledged.extend(stream_acknowledged);
        }
    }
    assert!(acknowledged.len() > ROUNDS * STREAMS, "the streams ran");
    eprintln!(
        "crash figures: {} captures acknowledged of {} sent across {ROUNDS} kill -9",
        acknowledged.len(),
        sent.len()
    );

    // After the last kill: every acknowledged key replays its capture; every key at all,
    // retried, executes at most once.
    let (_node, base) = start(&database.url);
    for key in &acknowledged {
        let response = client
            .post(format!("{base}/v1/orders/{id}/captures"))
            .bearer_auth(&secret)
            .header("Idempotency-Key", key)
            .json(&json!({"amount": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{key} was acknowledged");
        assert_eq!(
            response.headers()["idempotent-replayed"],
            "true",
            "{key} was lost"
        );
    }
    for key in &sent {
        assert!(
            capture(&client, &base, &secret, &id, key).await.is_some(),
            "{key}"
        );
    }
    let order: Value = client
        .get(format!("{base}/v1/orders/{id}"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        order["captured_amount"],
        sent.len(),
        "each key captured exactly once"
    );
    assert_eq!(order["captures"].as_array().unwrap().len(), sent.len());
    let check = Command::new(BINARY)
        .args(["check", "--database", &database.url])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "authcap check: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// Receives webhooks on `listener`, recording each `webhook-id`.
fn receive_into(listener: std::net::TcpListener, got: Arc<std::sync::Mutex<Vec<String>>>) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let record = move |headers: axum::http::HeaderMap| {
        let got = got.clone();
        async move {
            if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                got.lock().unwrap().push(id.to_owned());
            }
            "ok"
        }
    };
    let app = axum::Router::new().route("/hooks", axum::routing::post(record));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_deliveries_survive_kill_9() {
    let Some(database) = TestDatabase::new().await.map(Arc::new) else {
        return;
    };
    let merchant = merchant_on(&database, "Crash").await;
    let client = Client::new();
    // The receiver's address, refusing connections until it starts (after the crash). An
    // attempt hanging on a silent address would keep its lease past the crash instead.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    drop(listener);
    let (node, base) = start(&database.url);
    let endpoint = client
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth(&merchant.secret_key)
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), 201);
    for n in 0..5 {
        let created = client
            .post(format!("{base}/v1/orders"))
            .bearer_auth(&merchant.secret_key)
            .json(&order_body(&format!("k9-{n}"), 100, APPROVE))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let events: Value = client
        .get(format!("{base}/v1/events?limit=100"))
        .bearer_auth(&merchant.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 5);
    drop(node); // kill -9, deliveries pending.

    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener =
        std::net::TcpListener::bind(url.trim_start_matches("http://").trim_end_matches("/hooks"))
            .expect("the receiver's port is free again");
    receive_into(listener, got.clone());
    let (_node, _) = start(&database.url);
    // The first attempts failed (nothing answered): retries come 5 s later. An attempt the kill
    // interrupted before it was recorded waits for its 30 s lease to run out.
    for _ in 0..450 {
        let received = got.lock().unwrap().clone();
        if expected.iter().all(|id| received.contains(id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "not every event was delivered after kill -9: got {:?}, expected {expected:?}",
        got.lock().unwrap()
    );
}

/// Three nodes on one database: each node's worker claims deliveries with a lease, so every
/// event reaches the receiver once, whichever node wrote it and whichever delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_each_event_once() {
    if super::BACKEND != crate::Backend::Postgres {
        return; // Several nodes share a PostgreSQL database; SQLite is one machine's.
    }
    let Some(database) = TestDatabase::new().await.map(Arc::new) else {
        return;
    };
    let merchant = merchant_on(&database, "Three nodes").await;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    receive_into(listener, got.clone());
    let nodes: Vec<(Node, String)> = (0..3).map(|_| start(&database.url)).collect();
    let client = Client::new();
    let endpoint = client
        .post(format!("{}/v1/webhook_endpoints", nodes[0].1))
        .bearer_auth(&merchant.secret_key)
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), 201);
    const ORDERS: usize = 30;
    let writes = (0..ORDERS).map(|n| {
        let (client, base, secret) = (client.clone(), nodes[n % 3].1.clone(), &merchant.secret_key);
        async move {
            let created = client
                .post(format!("{base}/v1/orders"))
                .bearer_auth(secret)
                .json(&order_body(&format!("three-{n}"), 100, APPROVE))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201);
        }
    });
    join_all(writes).await;
    let events: Value = client
        .get(format!("{}/v1/events?limit=100", nodes[1].1))
        .bearer_auth(&merchant.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut expected: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), ORDERS);
    for _ in 0..200 {
        if got.lock().unwrap().len() >= ORDERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every node polls several times more: a second delivery would have had time to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut received = got.lock().unwrap().clone();
    received.sort();
    expected.sort();
    assert_eq!(received, expected, "each event delivered exactly once");
}
