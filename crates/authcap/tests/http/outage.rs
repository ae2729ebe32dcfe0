//! PostgreSQL going away: the node answers 503 quickly, writes nothing, and recovers by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authcap_api::Config;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::support::*;

/// A TCP proxy that can cut every connection and refuse new ones, like a database going away.
struct Proxy {
    address: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // Dropping the socket refuses the connection.
                }
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                // Only cuts after this connection opened end it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { address, up, cut }
    }

    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn resume(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db?…` with `host:port` replaced.
fn with_authority(url: &str, authority: &str) -> (String, String) {
    let start = url
        .find('@')
        .map(|at| at + 1)
        .unwrap_or("postgres://".len());
    let end = start + url[start..].find('/').unwrap();
    (
        url[start..end].to_owned(),
        format!("{}{}{}", &url[..start], authority, &url[end..]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_503_while_the_database_is_away_and_recovers() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let database = Arc::new(database);
    let (upstream, _) = with_authority(&database.url, "");
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = with_authority(&database.url, &proxy.address);
    let app = TestApp::spawn_on_url(database, &proxied, Config::default()).await;
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();

    proxy.stop();
    let started = Instant::now();
    let read = app.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(read.status(), 503);
    assert_eq!(json_of(read).await["code"], "service_unavailable");
    let write = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 100}))
        .await;
    assert_eq!(write.status(), 503);
    let create = app
        .post("/v1/orders", order_body("during-outage", 100, APPROVE))
        .await;
    assert_eq!(create.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answers come quickly, not a hang"
    );

    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = app.get(&format!("/v1/orders/{id}")).await;
        if read.status() == 200 {
            let order = json_of(read).await;
            assert_eq!(
                order["captured_amount"], 0,
                "the refused capture wrote nothing"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let capture = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 100}))
        .await;
    assert_eq!(capture.status(), 201);
    let list = json_of(app.get("/v1/orders?reference=during-outage").await).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_larger_than_the_pool_waits_or_is_told_to_come_back() {
    let Some(database) = TestDatabase::new().await.map(Arc::new) else {
        return;
    };
    let url = database.url.clone();
    let pool = authcap_store::PoolSettings {
        connections_max: 2,
        statement_timeout: Duration::from_secs(10),
        wait: Duration::from_millis(100),
    };
    let app = TestApp::spawn_with_pool(database, &url, Config::default(), pool).await;
    let order = app.authorized_order(100_000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let capture = |key: String| {
        let request = app
            .request(reqwest::Method::POST, &format!("/v1/orders/{id}/captures"))
            .header("Idempotency-Key", key)
            .json(&json!({"amount": 1}));
        async move { request.send().await.unwrap() }
    };
    let keys: Vec<String> = (0..300).map(|n| format!("burst-{n}")).collect();
    let answers = join_all(keys.iter().cloned().map(capture)).await;
    let mut overloaded = Vec::new();
    let mut captured = 0;
    for (key, response) in keys.iter().zip(answers) {
        match response.status().as_u16() {
            201 => captured += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(json_of(response).await["code"], "overloaded");
                overloaded.push(key.clone());
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(!overloaded.is_empty(), "the burst did not exceed the pool");
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(
        read["captured_amount"], captured,
        "every acknowledged capture, no other"
    );
    // Nothing was half-written: the refused ones go through when retried.
    for key in overloaded {
        let mut answer = capture(key.clone()).await;
        while answer.status() == 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = capture(key.clone()).await;
        }
        assert_eq!(answer.status(), 201);
    }
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captured_amount"], 300);
    app.assert_ledger_consistent().await;
}
