//! Three `authcap serve` processes on one PostgreSQL database, with clients spread over them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use reqwest::Client;
use serde_json::{Value, json};

use super::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_authcap");

/// Child processes killed when the test ends, however it ends.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_node(database: &str) -> Child {
    Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .env("AUTHCAP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authcap serve")
}

/// Waits for the node to say where it listens.
fn base_of(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("authcap serve exited early").unwrap();
        if let Some(base) = line.strip_prefix("listening on ") {
            break base.to_owned();
        }
    };
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    base
}

/// Authorizes an order through `base` and returns its id.
async fn create_order(
    client: &Client,
    base: &str,
    secret: &str,
    reference: &str,
    amount: i64,
) -> String {
    let order: Value = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(secret)
        .json(&order_body(reference, amount, APPROVE))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    order["id"].as_str().unwrap().to_owned()
}

#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    succeeded: usize,
    refused: usize,
}

async fn fire(
    client: &Client,
    requests: Vec<(String, Value, Option<String>)>,
    secret: &str,
) -> (Tally, Vec<(u16, String)>) {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|(url, body, key)| {
            let mut request = client.post(url).bearer_auth(secret).json(&body);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            })
        })
        .collect();
    let mut tally = Tally::default();
    let mut answers = Vec::new();
    for handle in handles {
        let (status, body) = handle.await.unwrap();
        tally.sent += 1;
        assert!(status < 500, "a node answered {status}: {body}");
        if status == 201 {
            tally.succeeded += 1
        } else {
            tally.refused += 1
        }
        answers.push((status, body));
    }
    (tally, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_database_keep_every_guarantee() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let database = Arc::new(database);
    // All three start at once on an empty database: migrations must take turns.
    let mut nodes = Nodes((0..3).map(|_| spawn_node(&database.url)).collect());
    let bases: Vec<String> = nodes.0.iter_mut().map(base_of).collect();
    let created = Command::new(BINARY)
        .args([
            "merchant",
            "create",
            "--name",
            "Multi-node",
            "--json",
            "--database",
            &database.url,
        ])
        .output()
        .expect("authcap merchant create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let merchant: Value = serde_json::from_slice(&created.stdout).unwrap();
    let secret = merchant["secret_key"].as_str().unwrap().to_owned();

    let client = Client::new();
    let node = |n: usize| &bases[n % bases.len()];

    let hot_id = create_order(&client, node(0), &secret, "hot-order", 10_000).await;

    // 60 partial captures of 250 ask for 15 000 against 10 000: exactly 40 fit.
    let captures = (0..60)
        .map(|n| {
            (
                format!("{}/v1/orders/{hot_id}/captures", node(n)),
                json!({"amount": 250}),
                None,
            )
        })
        .collect();
    let (capture_tally, _) = fire(&client, captures, &secret).await;

    // 30 refunds of 400 ask for 12 000 against 10 000 captured: exactly 25 fit.
    let refunds = (0..30)
        .map(|n| {
            (
                format!("{}/v1/orders/{hot_id}/refunds", node(n + 1)),
                json!({"amount": 400}),
                None,
            )
        })
        .collect();
    let (refund_tally, _) = fire(&client, refunds, &secret).await;

    // 20 keys, each sent to all three nodes at once: every key executes once.
    let wide_id = create_order(&client, node(1), &secret, "idempotent-order", 100_000).await;
    let keyed = (0..60)
        .map(|n| {
            let url = format!("{}/v1/orders/{wide_id}/captures", node(n));
            (url, json!({"amount": 100}), Some(format!("key-{}", n / 3)))
        })
        .collect();
    let (keyed_tally, answers) = fire(&client, keyed, &secret).await;
    for key in 0..20 {
        let bodies: Vec<&(u16, String)> = answers[key * 3..key * 3 + 3].iter().collect();
        let created: Vec<&String> = bodies
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b)
            .collect();
        assert!(!created.is_empty(), "key-{key}: {bodies:?}");
        assert!(
            created.iter().all(|b| *b == created[0]),
            "key-{key} answered differently"
        );
        for (status, body) in &bodies {
            assert!(
                *status == 201 || body.contains("idempotency_request_in_progress"),
                "{body}"
            );
        }
    }

    let read = |id: String, base: String| {
        let client = client.clone();
        let secret = secret.clone();
        async move {
            client
                .get(format!("{base}/v1/orders/{id}"))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let hot = read(hot_id, node(2).clone()).await;
    let wide = read(wide_id, node(0).clone()).await;
    drop(nodes);
    let check = Command::new(BINARY)
        .args(["check", "--database", &database.url])
        .output()
        .expect("authcap check");
    let check_output = String::from_utf8_lossy(&check.stdout).into_owned();

    println!(
        "multi-node figures: captures {capture_tally:?}; refunds {refund_tally:?}; \
         idempotent captures {keyed_tally:?}; hot order captured {} refunded {} of 10000; \
         keyed order captured {} (20 keys x 100); check: {}",
        hot["captured_amount"],
        hot["refunded_amount"],
        wide["captured_amount"],
        check_output.trim()
    );
    assert_eq!(capture_tally.succeeded, 40);
    assert_eq!(hot["captured_amount"], 10_000);
    let captured_sum: i64 = hot["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(captured_sum, 10_000);
    assert_eq!(refund_tally.succeeded, 25);
    assert_eq!(hot["refunded_amount"], 10_000);
    assert_eq!(
        wide["captured_amount"],
        20 * 100,
        "every key executed exactly once"
    );
    assert_eq!(wide["captures"].as_array().unwrap().len(), 20);
    assert!(
        check.status.success(),
        "authcap check failed: {check_output}"
    );
}
