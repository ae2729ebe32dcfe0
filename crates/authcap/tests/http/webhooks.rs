//! Events and webhooks: the events API, endpoints, Standard Webhooks deliveries verified by
//! independent code (and the `standardwebhooks` library when the SDKs are installed), retries
//! on the schedule driven by the clock, 410, redelivery, restarts, and merchant isolation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use super::support::*;

/// What a receiver got: the headers that matter and the body.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    query: String,
    headers: HeaderMap,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in turn; 200 once they run out.
    answers: Arc<Mutex<Vec<u16>>>,
    /// Bodies to answer, in turn; `OK` once they run out.
    bodies: Arc<Mutex<Vec<&'static str>>>,
    /// How long to wait before answering, in turn; at once when they run out.
    stalls: Arc<Mutex<Vec<Duration>>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.got.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
        query: query.unwrap_or_default(),
        headers: headers.clone(),
    });
    let status = {
        let mut answers = receiver.answers.lock().unwrap();
        if answers.is_empty() {
            200
        } else {
            answers.remove(0)
        }
    };
    let body = {
        let mut bodies = receiver.bodies.lock().unwrap();
        if bodies.is_empty() {
            "OK"
        } else {
            bodies.remove(0)
        }
    };
    let stall = {
        let mut stalls = receiver.stalls.lock().unwrap();
        (!stalls.is_empty()).then(|| stalls.remove(0))
    };
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    let mut answer_headers = HeaderMap::new();
    if (300..400).contains(&status) {
        answer_headers.insert("location", "http://127.0.0.1:9/elsewhere".parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), answer_headers, body)
}

impl Receiver {
    /// A receiver on an ephemeral port; its URL.
    async fn start(answers: Vec<u16>) -> (Receiver, String) {
        let receiver = Receiver {
            answers: Arc::new(Mutex::new(answers)),
            ..Receiver::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive).get(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time: the worker polls) until `count` deliveries arrived.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..100 {
            let got = self.got();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {count} deliveries, got {:?}", self.got());
    }
}

/// Standard Webhooks verification, written from the specification.
fn verify(secret: &str, received: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", received.id, received.timestamp).as_bytes());
    mac.update(&received.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    received
        .signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// The endpoint's recorded attempts' statuses, newest first, once `count` are recorded
/// (attempts are recorded just after the receiver has them).
async fn attempt_statuses(app: &TestApp, endpoint_id: &str, count: usize) -> Vec<i64> {
    let path = format!("/v1/webhook_endpoints/{endpoint_id}/deliveries");
    for _ in 0..100 {
        let deliveries = json_of(app.get(&path).await).await;
        let statuses: Vec<i64> = deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status_code"].as_i64().unwrap_or(0))
            .collect();
        if statuses.len() >= count {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {count} attempts recorded at {path}");
}

async fn create_endpoint(app: &TestApp, url: &str, events: Value) -> Value {
    let response = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "enabled_events": events}),
        )
        .await;
    assert_eq!(response.status(), 201);
    json_of(response).await
}

#[tokio::test]
async fn events_are_delivered_as_signed_standard_webhooks() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    let endpoint = create_endpoint(&app, &url, json!(["*"])).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(endpoint["id"].as_str().unwrap().starts_with("we_"));

    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let captured = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 400}))
        .await;
    assert_eq!(captured.status(), 201);
    let mut got = receiver.wait_for(2).await;
    for received in &got {
        assert!(
            verify(&secret, received),
            "signature verifies: {received:?}"
        );
    }
    // Deliveries run concurrently and may arrive in any order; the events API has the order.
    let order_of_events: Vec<String> = json_of(app.get("/v1/events").await).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort_by_key(|r| order_of_events.iter().position(|id| *id == r.id));
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let kinds: Vec<_> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["order.authorized", "capture.succeeded"]);
    // The order as it stood right after each event.
    assert_eq!(bodies[0]["data"]["object"]["captured_amount"], 0);
    assert_eq!(bodies[1]["data"]["object"]["captured_amount"], 400);
    assert_eq!(bodies[1]["data"]["object"]["id"], id);
    for (received, body) in got.iter().zip(&bodies) {
        assert_eq!(received.id, body["id"].as_str().unwrap());
        assert!(received.id.starts_with("evt_"));
    }
    // The events API shows the same bodies, newest first.
    let listed = json_of(app.get("/v1/events").await).await;
    assert_eq!(listed["data"][0], bodies[1]);
    assert_eq!(listed["data"][1], bodies[0]);
    let one = json_of(app.get(&format!("/v1/events/{}", got[0].id)).await).await;
    assert_eq!(one, bodies[0]);
    let filtered = json_of(app.get("/v1/events?type=capture.succeeded").await).await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let page = json_of(app.get("/v1/events?limit=1").await).await;
    assert_eq!(page["has_more"], true);
    let next = format!("/v1/events?limit=1&starting_after={}", got[1].id);
    assert_eq!(json_of(app.get(&next).await).await["data"][0], bodies[0]);
    // Each attempt is on record.
    let statuses = attempt_statuses(&app, endpoint["id"].as_str().unwrap(), 2).await;
    assert_eq!(statuses, [200, 200]);
    run_standardwebhooks_verifier(&secret, &got).await;
}

/// The independent `standardwebhooks` library (PyPI) accepts what was sent, when installed.
async fn run_standardwebhooks_verifier(secret: &str, got: &[Received]) {
    let messages: Vec<Value> = got
        .iter()
        .map(|r| {
            json!({"id": r.id, "timestamp": r.timestamp, "signature": r.signature,
                   "body": String::from_utf8(r.body.clone()).unwrap()})
        })
        .collect();
    verify_with_sdk(
        "standardwebhooks_verify.py",
        json!({"secret": secret, "messages": messages}),
    )
    .await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_schedule() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![500, 503]).await;
    let endpoint = create_endpoint(&app, &url, json!(["order.authorized"])).await;
    app.authorized_order(1000, APPROVE).await;
    receiver.wait_for(1).await;
    // Nothing more until the clock reaches the next attempt (5 s, then 5 min).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 1);
    app.clock.advance(Duration::from_secs(6));
    receiver.wait_for(2).await;
    app.clock.advance(Duration::from_secs(6 * 60));
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "one event, one webhook-id"
    );
    let statuses = attempt_statuses(&app, endpoint["id"].as_str().unwrap(), 3).await;
    assert_eq!(statuses, [200, 503, 500], "newest first");
    // Delivered: nothing more, however far the clock moves.
    app.clock.advance(Duration::from_secs(86_400));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 3);
}

#[tokio::test]
async fn gone_disables_and_unreachable_is_retried() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![410]).await;
    let endpoint = create_endpoint(&app, &url, json!(["*"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    app.authorized_order(1000, APPROVE).await;
    receiver.wait_for(1).await;
    for _ in 0..40 {
        let read = json_of(
            app.get(&format!("/v1/webhook_endpoints/{endpoint_id}"))
                .await,
        )
        .await;
        if read["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = json_of(
        app.get(&format!("/v1/webhook_endpoints/{endpoint_id}"))
            .await,
    )
    .await;
    assert_eq!(read["enabled"], false);
    assert!(read.get("secret").is_none(), "the secret is shown once");
    app.authorized_order(1000, APPROVE).await;
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.got().len(),
        1,
        "a disabled endpoint receives nothing"
    );

    // A receiver that is not there: each attempt is recorded with why, and retried.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = create_endpoint(&app, &format!("http://{closed}/x"), json!(["*"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    app.authorized_order(1000, APPROVE).await;
    let path = format!("/v1/webhook_endpoints/{endpoint_id}/deliveries");
    let mut attempts = Value::Null;
    for _ in 0..40 {
        attempts = json_of(app.get(&path).await).await;
        if !attempts["data"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(attempts["data"][0]["status_code"].is_null());
    assert!(
        attempts["data"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connect")
    );
    app.clock.advance(Duration::from_secs(6));
    for _ in 0..40 {
        if json_of(app.get(&path).await).await["data"]
            .as_array()
            .unwrap()
            .len()
            >= 2
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the unreachable endpoint was not retried");
}

#[tokio::test]
async fn events_can_be_redelivered_and_survive_a_restart() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    create_endpoint(&app, &url, json!(["order.authorized"])).await;
    app.authorized_order(1000, APPROVE).await;
    let first = receiver.wait_for(1).await;
    let redelivered = app
        .post(&format!("/v1/events/{}/redeliver", first[0].id), json!({}))
        .await;
    assert_eq!(redelivered.status(), 202);
    let again = receiver.wait_for(2).await;
    assert_eq!(again[1].id, first[0].id);
    assert_eq!(again[1].body, first[0].body);

    // Events written while no server runs its worker are delivered by the next one.
    let (database, secret) = (app.database.clone(), app.merchant.secret_key.clone());
    let store = app.store.clone();
    drop(app);
    let _ = store; // The order below is written through a fresh server, as after a restart.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let restarted = TestApp::spawn_on(database, authcap_api::Config::default()).await;
    let created = restarted
        .client
        .post(restarted.url("/v1/orders"))
        .bearer_auth(&secret)
        .json(&order_body(&unique("r"), 500, APPROVE))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let got = receiver.wait_for(3).await;
    assert_eq!(got[2].json()["type"], "order.authorized");
}

#[tokio::test]
async fn endpoints_and_events_belong_to_their_merchant() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (_receiver, url) = Receiver::start(vec![]).await;
    let endpoint = create_endpoint(&app, &url, json!(["*"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    app.authorized_order(1000, APPROVE).await;
    let events = json_of(app.get("/v1/events").await).await;
    let event_id = events["data"][0]["id"].as_str().unwrap();
    let other = app.new_merchant().await;
    let as_other = |method: Method, path: String| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(&other.secret_key)
            .send()
    };
    for (method, path) in [
        (Method::GET, format!("/v1/events/{event_id}")),
        (Method::POST, format!("/v1/events/{event_id}/redeliver")),
        (Method::GET, format!("/v1/webhook_endpoints/{endpoint_id}")),
        (
            Method::GET,
            format!("/v1/webhook_endpoints/{endpoint_id}/deliveries"),
        ),
        (
            Method::DELETE,
            format!("/v1/webhook_endpoints/{endpoint_id}"),
        ),
    ] {
        let response = as_other(method.clone(), path.clone()).await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let theirs = json_of(as_other(Method::GET, "/v1/events".into()).await.unwrap()).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    let theirs = json_of(
        as_other(Method::GET, "/v1/webhook_endpoints".into())
            .await
            .unwrap(),
    )
    .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    // Still there for its owner, and deletable by it.
    let deleted = app
        .request(
            Method::DELETE,
            &format!("/v1/webhook_endpoints/{endpoint_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        app.get(&format!("/v1/webhook_endpoints/{endpoint_id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn endpoint_requests_are_validated() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for body in [
        json!({"url": "ftp://example.com/x"}),
        json!({"url": "not a url"}),
        json!({"url": "https:///no-host"}),
        json!({"url": "/relative"}),
        json!({"url": "http://example.com/x", "enabled_events": ["order.nope"]}),
        json!({"url": "http://example.com/x", "enabled_events": []}),
        json!({"url": "http://example.com/x", "format": "smoke-signals"}),
        json!({"url": "http://example.com/x", "extra": 1}),
        json!({"url": format!("http://example.com/{}", "x".repeat(3000))}),
    ] {
        let response = app.post("/v1/webhook_endpoints", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(app.get("/v1/events?type=nope").await.status(), 400);
    assert_eq!(app.get("/v1/events?limit=0").await.status(), 400);
    assert_eq!(app.get("/v1/events/evt_nope").await.status(), 404);
}

#[tokio::test]
async fn events_tail_prints_events_as_they_happen() {
    use std::io::BufRead;
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    app.authorized_order(1000, APPROVE).await;
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_authcap"))
        .args(["events", "tail", "--json", "--last", "1", "--database"])
        .arg(&app.database.url)
        .args(["--merchant", &app.merchant.merchant_id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (lines, arrived) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let next = || {
        let line = arrived
            .recv_timeout(Duration::from_secs(10))
            .expect("a line");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    assert_eq!(next()["type"], "order.authorized", "the last one before");
    let order = app.authorized_order(700, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    app.post(&format!("/v1/orders/{id}/captures"), json!({}))
        .await;
    let first = next();
    assert_eq!(first["type"], "order.authorized");
    assert_eq!(first["data"]["object"]["id"], id);
    assert_eq!(next()["type"], "capture.succeeded");
    let _ = tail.kill();
    let _ = tail.wait();
}

async fn advance(app: &TestApp, secret: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/test_helpers/clock/advance"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_merchant_has_a_sandbox_clock_that_drives_expiry_settlement_and_retries() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let other = app.new_merchant().await;
    let (receiver, url) = Receiver::start(vec![500]).await;
    create_endpoint(&app, &url, json!(["order.expired", "capture.settled"])).await;
    let open = app.authorized_order(1000, APPROVE).await;
    let open_id = open["id"].as_str().unwrap().to_owned();
    let later = app.authorized_order(1000, SETTLES_LATER).await;
    let later_id = later["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/orders/{later_id}/captures"),
        json!({"amount": 300}),
    )
    .await;
    let theirs = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&other.secret_key)
        .json(&order_body(&unique("o"), 1000, APPROVE))
        .send()
        .await
        .unwrap();
    let theirs_id = json_of(theirs).await["id"].as_str().unwrap().to_owned();
    let before = json_of(app.get("/v1/test_helpers/clock").await).await;
    assert_eq!(before["advanced_by_seconds"], 0);

    // Three seconds: the pending capture settles (its webhook fails once: retried at 5 s).
    let moved = advance(&app, &app.merchant.secret_key, json!({"seconds": 3})).await;
    assert_eq!(moved.status(), 200);
    assert_eq!(json_of(moved).await["advanced_by_seconds"], 3);
    let settled = receiver.wait_for(1).await;
    assert_eq!(settled[0].json()["type"], "capture.settled");
    assert_eq!(
        json_of(app.get(&format!("/v1/orders/{later_id}")).await).await["captures"][0]["status"],
        "succeeded"
    );
    // Eight days: the retry is due and sent, the authorizations expire and are announced,
    // before the advance answers.
    let moved = advance(
        &app,
        &app.merchant.secret_key,
        json!({"seconds": 8 * 86_400}),
    )
    .await;
    assert_eq!(moved.status(), 200);
    let got = receiver.wait_for(4).await;
    let kinds: Vec<_> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "order.expired").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "capture.settled").count(),
        2,
        "retried once"
    );
    let read = json_of(app.get(&format!("/v1/orders/{open_id}")).await).await;
    assert_eq!(read["status"], "expired");
    assert_eq!(read["released_amount"], 1000, "written down, not only read");
    let refused = app
        .post(
            &format!("/v1/orders/{open_id}/captures"),
            json!({"amount": 1}),
        )
        .await;
    assert_eq!(json_of(refused).await["code"], "authorization_expired");
    // Through the dialects too.
    let msp = app
        .client
        .get(app.url(&format!(
            "/multisafepay/v1/json/orders/{}",
            read["reference"].as_str().unwrap()
        )))
        .header("api_key", &app.merchant.multisafepay_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(msp).await["data"]["status"], "void");

    // The other merchant's clock did not move: its order is still open.
    let theirs = app
        .client
        .get(app.url(&format!("/v1/orders/{theirs_id}")))
        .bearer_auth(&other.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(theirs).await["status"], "authorized");
    let their_clock = app
        .client
        .get(app.url("/v1/test_helpers/clock"))
        .bearer_auth(&other.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(their_clock).await["advanced_by_seconds"], 0);
}

#[tokio::test]
async fn the_sandbox_clock_only_moves_forward_and_ages_idempotency_keys() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let key = |body: Value| {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "aging")
            .json(&body)
            .send()
    };
    assert_eq!(
        key(order_body("a1", 100, APPROVE)).await.unwrap().status(),
        201
    );
    assert_eq!(
        key(order_body("a2", 100, APPROVE)).await.unwrap().status(),
        422
    );
    let secret = app.merchant.secret_key.clone();
    for body in [
        json!({}),
        json!({"seconds": 0}),
        json!({"seconds": 5, "to": "2030-01-01T00:00:00Z"}),
        json!({"to": "2000-01-01T00:00:00Z"}),
        json!({"to": "yesterday"}),
        json!({"seconds": -5}),
    ] {
        assert_eq!(
            advance(&app, &secret, body.clone()).await.status(),
            400,
            "{body}"
        );
    }
    let clock = json_of(app.get("/v1/test_helpers/clock").await).await;
    let now = clock["now"].as_str().unwrap();
    let moved = advance(&app, &secret, json!({"to": now})).await;
    assert_eq!(moved.status(), 400, "not moving is not an advance");
    let moved = advance(&app, &secret, json!({"seconds": 25 * 3600})).await;
    assert_eq!(moved.status(), 200);
    // A day later the key is forgotten: it may serve another request.
    assert_eq!(
        key(order_body("a3", 100, APPROVE)).await.unwrap().status(),
        201
    );
}

#[tokio::test]
async fn mercadopago_endpoints_receive_mercadopago_notifications() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    let response = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "format": "mercadopago"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let endpoint = json_of(response).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let events = endpoint["enabled_events"].as_array().unwrap();
    assert!(!events.contains(&json!("capture.pending")), "{events:?}");
    let refused = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:1/x", "format": "mercadopago",
                   "enabled_events": ["capture.pending"]}),
        )
        .await;
    assert_eq!(refused.status(), 400);

    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/orders/{id}/captures"), json!({}))
        .await;
    app.post(&format!("/v1/orders/{id}/refunds"), json!({"amount": 100}))
        .await;
    let got = receiver.wait_for(3).await;
    let mut actions = Vec::new();
    let mut checks = Vec::new();
    for received in &got {
        let body = received.json();
        actions.push(body["action"].as_str().unwrap().to_owned());
        assert_eq!(body["type"], "order");
        assert_eq!(body["live_mode"], false);
        let order_id = body["data"]["id"].as_str().unwrap().to_owned();
        assert!(order_id.starts_with("ORD"));
        let data_id = order_id.to_ascii_lowercase();
        assert_eq!(received.query, format!("data.id={data_id}&type=order"));
        let request_id = received.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let signature = received.headers["x-signature"].to_str().unwrap().to_owned();
        // Independent check of the manifest's HMAC.
        let (ts, v1) = signature
            .split_once(',')
            .map(|(ts, v1)| (ts.trim_start_matches("ts="), v1.trim_start_matches("v1=")))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("id:{data_id};request-id:{request_id};ts:{ts};").as_bytes());
        assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
        // The id as notified reads the order.
        let read = app
            .client
            .get(app.url(&format!("/mercadopago/v1/orders/{data_id}")))
            .bearer_auth(&app.merchant.mercadopago_access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
        checks.push(json!({"x_signature": signature, "x_request_id": request_id,
                           "data_id": data_id}));
    }
    actions.sort();
    assert_eq!(
        actions,
        ["order.action_required", "order.processed", "order.refunded"]
    );
    verify_with_sdk(
        "mercadopago_webhook_verify.py",
        json!({"secret": secret, "notifications": checks}),
    )
    .await;
}

/// The received notifications in the order their events happened.
async fn in_event_order(
    app: &TestApp,
    mut got: Vec<Received>,
    id_of: impl Fn(&Received) -> String,
) -> Vec<Received> {
    let order_of_events: Vec<String> = json_of(app.get("/v1/events").await).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort_by_key(|r| order_of_events.iter().position(|id| *id == id_of(r)));
    got
}

async fn create_format_endpoint(app: &TestApp, url: &str, format: &str) -> Value {
    let response = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "format": format}),
        )
        .await;
    assert_eq!(response.status(), 201);
    json_of(response).await
}

/// Authorizes 10.00 EUR through MultiSafepay, captures 4.00 and refunds 1.00 (native API).
async fn authorize_capture_refund(app: &TestApp) -> (String, String) {
    let reference = unique("ntf");
    let created = app
        .client
        .post(app.url("/multisafepay/v1/json/orders"))
        .header("api_key", &app.merchant.multisafepay_api_key)
        .json(
            &json!({"type": "direct", "order_id": reference, "currency": "EUR",
                      "amount": 1000, "description": "Zoë's order / ünicode", "capture": "manual"}),
        )
        .send()
        .await
        .unwrap();
    let status = created.status();
    let body = json_of(created).await;
    assert_eq!(status, 200, "{body}");
    let events = json_of(app.get("/v1/events?limit=1").await).await;
    let id = events["data"][0]["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let captured = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 400}))
        .await;
    assert_eq!(captured.status(), 201);
    let refunded = app
        .post(&format!("/v1/orders/{id}/refunds"), json!({"amount": 100}))
        .await;
    assert_eq!(refunded.status(), 201);
    (reference, id)
}

/// MultiSafepay's `Auth` header, decoded: the timestamp and the hex HMAC.
fn msp_auth(received: &Received) -> (String, String) {
    let auth = received.headers["auth"].to_str().unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap(),
    )
    .unwrap();
    let (timestamp, hmac_hex) = decoded.split_once(':').unwrap();
    (timestamp.to_owned(), hmac_hex.to_owned())
}

fn msp_auth_timestamp(received: &Received) -> String {
    msp_auth(received).0
}

/// Whether `Auth` is hex HMAC-SHA512(key, "<timestamp>:<body>"), checked independently.
fn msp_auth_verifies(key: &str, received: &Received) -> bool {
    let (timestamp, hmac_hex) = msp_auth(received);
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}:").as_bytes());
    mac.update(&received.body);
    hex::encode(mac.finalize().into_bytes()) == hmac_hex
}

fn query_value(query: &str, name: &str) -> String {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn multisafepay_endpoints_receive_orders_signed_with_the_api_key() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    // The first answer lacks the OK MultiSafepay requires: it is retried.
    receiver.bodies.lock().unwrap().push("received");
    let endpoint = create_format_endpoint(&app, &url, "multisafepay").await;
    assert!(endpoint.get("secret").is_none(), "signed with the API key");
    let (reference, _) = authorize_capture_refund(&app).await;
    receiver.wait_for(3).await;
    app.clock.advance(Duration::from_secs(6));
    let got = receiver.wait_for(4).await;
    let key = app.merchant.multisafepay_api_key.clone();
    let mut checks = Vec::new();
    let mut statuses = Vec::new();
    for received in &got {
        assert_eq!(query_value(&received.query, "transactionid"), reference);
        let timestamp = query_value(&received.query, "timestamp");
        let auth = received.headers["auth"].to_str().unwrap();
        assert_eq!(msp_auth_timestamp(received), timestamp);
        assert!(msp_auth_verifies(&key, received));
        let body = received.json();
        assert_eq!(body["order_id"], reference.as_str());
        // Already in the compact, unescaped form the Python SDK re-serialises to.
        let text = String::from_utf8(received.body.clone()).unwrap();
        assert!(
            text.contains(r#""description":"Zoë's order / ünicode""#),
            "{text}"
        );
        statuses.push(body["status"].as_str().unwrap().to_owned());
        checks.push(
            json!({"body": String::from_utf8(received.body.clone()).unwrap(),
                           "auth": auth}),
        );
    }
    assert!(statuses.iter().any(|s| s == "completed"), "{statuses:?}");
    // The last notification is the order as GET /orders/{order_id} shows it.
    let read = app
        .client
        .get(app.url(&format!("/multisafepay/v1/json/orders/{reference}")))
        .header("api_key", &key)
        .send()
        .await
        .unwrap();
    let read = json_of(read).await;
    assert!(got.iter().any(|r| r.json() == read["data"]), "{read}");
    attempt_statuses(&app, endpoint["id"].as_str().unwrap(), 4).await;
    let deliveries = json_of(
        app.get(&format!(
            "/v1/webhook_endpoints/{}/deliveries",
            endpoint["id"].as_str().unwrap()
        ))
        .await,
    )
    .await;
    let errors: Vec<_> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["error"].is_null())
        .collect();
    assert_eq!(errors.len(), 1, "{deliveries}");
    verify_with_sdk(
        "multisafepay_webhook_verify.py",
        json!({"api_key": key, "notifications": checks}),
    )
    .await;
}

#[tokio::test]
async fn pipwave_endpoints_receive_notifications_signed_with_the_api_secret() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    receiver.bodies.lock().unwrap().push("");
    let endpoint = create_format_endpoint(&app, &url, "pipwave").await;
    assert!(
        endpoint.get("secret").is_none(),
        "signed with the api_secret"
    );
    let (reference, id) = authorize_capture_refund(&app).await;
    receiver.wait_for(3).await;
    app.clock.advance(Duration::from_secs(6));
    let got = receiver.wait_for(4).await;
    let mut types = Vec::new();
    for received in &got {
        let body = received.json();
        assert_eq!(body["api_key"], app.merchant.pipwave_api_key.as_str());
        assert_eq!(body["pw_id"], id.as_str());
        assert_eq!(body["txn_id"], reference.as_str());
        assert_eq!(body["currency_code"], "EUR");
        let text = |name: &str| match &body[name] {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.as_i64() == Some(0) => String::new(),
            other => other.to_string(),
        };
        // Independent: sha1 over the key-sorted `key:value` pairs with api_secret.
        let mut pairs = [
            ("amount", text("amount")),
            ("api_key", text("api_key")),
            ("api_secret", app.merchant.pipwave_api_secret.clone()),
            ("currency_code", text("currency_code")),
            ("pw_id", text("pw_id")),
            ("timestamp", text("timestamp")),
            ("transaction_status", text("transaction_status")),
            ("txn_id", text("txn_id")),
        ];
        pairs.sort();
        let signed: String = pairs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let digest = <sha1::Sha1 as sha1::Digest>::digest(signed.as_bytes());
        assert_eq!(body["signature"], hex::encode(digest));
        types.push((
            body["type"].as_str().unwrap().to_owned(),
            body["amount"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(
        types.contains(&("refund".into(), "1.00".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("payment".into(), "10.00".into())),
        "{types:?}"
    );
}

#[tokio::test]
async fn optty_endpoints_receive_status_updates() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    let endpoint = create_format_endpoint(&app, &url, "optty").await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let (reference, id) = authorize_capture_refund(&app).await;
    let got = receiver.wait_for(3).await;
    let got = in_event_order(&app, got, |r| {
        r.json()["eventId"].as_str().unwrap().to_owned()
    })
    .await;
    let events: Vec<_> = got
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "ORDER_ASYNC_CALLBACK",
            "ORDER_STATUS_UPDATE",
            "ORDER_STATUS_UPDATE"
        ]
    );
    for received in &got {
        let body = received.json();
        assert_eq!(body["orderReference"], reference.as_str());
        assert_eq!(body["transactionId"], id.as_str());
        assert_eq!(body["data"]["merchantReference"], reference.as_str());
        assert_eq!(body["status"], body["data"]["status"]);
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}|{reference}", body["status"].as_str().unwrap()).as_bytes());
        assert_eq!(
            received.headers["x-optty-signature"].to_str().unwrap(),
            hex::encode(mac.finalize().into_bytes())
        );
        assert!(verify(&secret, received), "whole-body signature");
    }
}

async fn msp_create(app: &TestApp, body: Value) -> (reqwest::StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/multisafepay/v1/json/orders"))
        .header("api_key", &app.merchant.multisafepay_api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), json_of(response).await)
}

#[tokio::test]
async fn a_multisafepay_orders_notification_url_receives_that_orders_changes() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    let reference = unique("own");
    let (status, body) = msp_create(
        &app,
        json!({"type": "direct", "order_id": reference, "currency": "EUR", "amount": 1000,
               "description": "own URL", "capture": "manual",
               "payment_options": {"notification_url": url, "notification_method": "POST"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Another order without a URL: nothing of it reaches this one's.
    let (status, _) = msp_create(
        &app,
        json!({"type": "direct", "order_id": unique("other"), "currency": "EUR",
               "amount": 500, "description": "no URL", "capture": "manual"}),
    )
    .await;
    assert_eq!(status, 200);
    let captured = app
        .client
        .post(app.url(&format!("/multisafepay/v1/json/orders/{reference}/capture")))
        .header("api_key", &app.merchant.multisafepay_api_key)
        .json(
            &json!({"amount": 400, "new_order_id": unique("cap"), "new_order_status": "completed"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(captured.status(), 200, "{}", captured.text().await.unwrap());
    let got = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_now = receiver.got();
    assert!(got_now.len() >= 2, "{got_now:?}");
    let key = app.merchant.multisafepay_api_key.clone();
    for received in &got {
        assert_eq!(query_value(&received.query, "transactionid"), reference);
        assert!(msp_auth_verifies(&key, received));
        assert_eq!(received.json()["order_id"], reference.as_str());
    }
    for received in &got_now {
        assert_eq!(query_value(&received.query, "transactionid"), reference);
    }
    // The order's own endpoint is not one of the merchant's endpoints.
    let listed = json_of(app.get("/v1/webhook_endpoints").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");

    // notification_method GET: the query alone, no body, no signature.
    let (get_receiver, get_url) = Receiver::start(vec![]).await;
    let get_reference = unique("get");
    let (status, _) = msp_create(
        &app,
        json!({"type": "direct", "order_id": get_reference, "currency": "EUR", "amount": 700,
               "description": "GET", "capture": "manual",
               "payment_options": {"notification_url": format!("{get_url}?shop=1"),
                                   "notification_method": "GET"}}),
    )
    .await;
    assert_eq!(status, 200);
    let got = get_receiver.wait_for(1).await;
    assert!(got[0].body.is_empty());
    assert!(!got[0].headers.contains_key("auth"));
    assert!(
        got[0].query.starts_with("shop=1&transactionid="),
        "{}",
        got[0].query
    );
    assert_eq!(query_value(&got[0].query, "transactionid"), get_reference);
}

#[tokio::test]
async fn a_bad_multisafepay_notification_url_is_refused_and_nothing_is_written() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for options in [
        json!({"notification_url": "ftp://example.com/x"}),
        json!({"notification_url": format!("http://example.com/{}", "a".repeat(140))}),
        json!({"notification_url": "http://example.com/x", "notification_method": "PUT"}),
        json!({"notification_url": 5.5}),
    ] {
        let reference = unique("bad");
        let (status, body) = msp_create(
            &app,
            json!({"type": "direct", "order_id": reference, "currency": "EUR", "amount": 100,
                   "description": "bad", "capture": "manual", "payment_options": options}),
        )
        .await;
        assert_eq!(status, 400, "{options}: {body}");
        assert_eq!(body["success"], false, "{body}");
        let read = app
            .client
            .get(app.url(&format!("/multisafepay/v1/json/orders/{reference}")))
            .header("api_key", &app.merchant.multisafepay_api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404);
    }
}

/// Runs an official-SDK verifier script on `checks` (written to a file it reads).
async fn verify_with_sdk(script: &str, checks: Value) {
    let file = std::env::temp_dir().join(format!("authcap-{}.json", unique("sdk")));
    std::fs::write(&file, checks.to_string()).unwrap();
    run_sdk_script(script, &[file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn multisafepay_notifications_are_signed_with_the_newest_api_key() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (receiver, url) = Receiver::start(vec![]).await;
    create_format_endpoint(&app, &url, "multisafepay").await;
    let rotated = authcap_api::credentials::rotate(
        &app.store,
        &app.server_secret,
        &app.merchant.merchant_id,
        &[authcap_api::credentials::CredentialSet::Multisafepay],
        Duration::ZERO,
    )
    .await
    .unwrap()
    .unwrap();
    let new_key = rotated.multisafepay_api_key.unwrap();
    assert_ne!(new_key, app.merchant.multisafepay_api_key);
    app.authorized_order(1000, APPROVE).await;
    let got = receiver.wait_for(1).await;
    assert!(msp_auth_verifies(&new_key, &got[0]));
    assert!(!msp_auth_verifies(
        &app.merchant.multisafepay_api_key,
        &got[0]
    ));
    // The rotated key is the one that works.
    let read = |key: String| {
        app.client
            .get(app.url("/multisafepay/v1/json/orders/none"))
            .header("api_key", key)
            .send()
    };
    assert_eq!(read(new_key.clone()).await.unwrap().status(), 404);
    assert_eq!(
        read(app.merchant.multisafepay_api_key.clone())
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn optty_token(app: &TestApp) -> String {
    let response = app
        .client
        .post(app.url("/optty/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "client_id={}&client_secret={}&grant_type=client_credentials&scope=api-user",
            app.merchant.optty_client_id, app.merchant.optty_client_secret
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json_of(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn optty_order(reference: &str, callback: Value) -> Value {
    json!({
        "orderReference": reference, "bnplProvider": "KLARNA", "purchaseCountry": "AU",
        "purchaseCurrency": "AUD", "locale": "en_AU", "orderAmount": 25.5,
        "customer": {"firstName": "Jane", "lastName": "Doe", "email": "jane@example.com",
                     "phoneNumber": "+61400000000"},
        "dynamicCallbackUrl": callback,
    })
}

#[tokio::test]
async fn an_optty_orders_dynamic_callback_url_receives_its_authorization_outcome() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = optty_token(&app).await;
    let (receiver, url) = Receiver::start(vec![]).await;
    let reference = unique("cb");
    let created = app
        .client
        .post(app.url("/optty/orders"))
        .bearer_auth(&token)
        .json(&optty_order(&reference, json!(url)))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let captured = app
        .client
        .post(app.url(&format!("/optty/orders/{reference}/capture")))
        .bearer_auth(&token)
        .json(&json!({"captureReference": unique("c"), "amount": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(captured.status(), 200, "{}", captured.text().await.unwrap());
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1, "only the authorization's outcome");
    let body = got[0].json();
    assert_eq!(body["event"], "ORDER_ASYNC_CALLBACK");
    assert_eq!(body["orderReference"], reference.as_str());
    let secret = &app.merchant.optty_webhook_secret;
    assert!(secret.starts_with("whsec_"));
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}|{reference}", body["status"].as_str().unwrap()).as_bytes());
    assert_eq!(
        got[0].headers["x-optty-signature"].to_str().unwrap(),
        hex::encode(mac.finalize().into_bytes())
    );
    assert!(verify(secret, &got[0]), "whole-body signature");

    for bad in [
        json!("ftp://x.example/cb"),
        json!(5),
        json!("not a url at all"),
    ] {
        let reference = unique("bad");
        let refused = app
            .client
            .post(app.url("/optty/orders"))
            .bearer_auth(&token)
            .json(&optty_order(&reference, bad.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let read = app
            .client
            .get(app.url(&format!("/optty/orders/{reference}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404, "nothing written for {bad}");
    }
}

/// A receiver speaking HTTPS with `certificate` (DER) and its key: each request's headers.
async fn start_tls_receiver(
    certificate: Vec<u8>,
    key: Vec<u8>,
) -> (Arc<Mutex<Vec<HeaderMap>>>, String) {
    use tokio_rustls::rustls;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls::pki_types::CertificateDer::from(certificate)],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/hooks",
        listener.local_addr().unwrap().port()
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let recorded = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, recorded) = (acceptor.clone(), recorded.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    recorded.lock().unwrap().push(request.headers().clone());
                    async move {
                        let _ = http_body_util::BodyExt::collect(request.into_body()).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"OK")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (got, url)
}

#[tokio::test]
async fn https_endpoints_are_delivered_to_when_their_certificate_is_trusted() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let certificate = generated.cert.der().to_vec();
    let key = generated.signing_key.serialize_der();
    let (got, url) = start_tls_receiver(certificate.clone(), key).await;

    // Trusted (as `--webhook-ca-file` does): delivered.
    let config = authcap_api::Config {
        webhook_ca_certificates: vec![certificate],
        ..authcap_api::Config::default()
    };
    let Some(app) = TestApp::spawn_with(config).await else {
        return;
    };
    let endpoint = create_endpoint(&app, &url, json!(["order.authorized"])).await;
    app.authorized_order(1000, APPROVE).await;
    let statuses = attempt_statuses(&app, endpoint["id"].as_str().unwrap(), 1).await;
    assert_eq!(statuses, [200]);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert!(got.lock().unwrap()[0].contains_key("webhook-signature"));

    // Not trusted: refused in the handshake, recorded, and retried later.
    let Some(other) = TestApp::spawn().await else {
        return;
    };
    let endpoint = create_endpoint(&other, &url, json!(["order.authorized"])).await;
    other.authorized_order(1000, APPROVE).await;
    let path = format!(
        "/v1/webhook_endpoints/{}/deliveries",
        endpoint["id"].as_str().unwrap()
    );
    for _ in 0..100 {
        let attempts = json_of(other.get(&path).await).await;
        if let Some(error) = attempts["data"][0]["error"].as_str() {
            assert!(error.contains("TLS"), "{error}");
            assert!(attempts["data"][0]["status_code"].is_null());
            assert_eq!(got.lock().unwrap().len(), 1, "nothing reached the receiver");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no attempt recorded");
}

#[tokio::test]
async fn every_event_type_reaches_every_format() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let formats = [
        "standard",
        "mercadopago",
        "multisafepay",
        "optty",
        "pipwave",
    ];
    let mut receivers = Vec::new();
    for format in formats {
        let (receiver, url) = Receiver::start(vec![]).await;
        create_format_endpoint(&app, &url, format).await;
        receivers.push(receiver);
    }
    // Every kind of movement: authorize, capture, void, refund, declines, failures, a declined
    // capture, a pending capture that settles, and authorizations that expire.
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let ok = |status: reqwest::StatusCode| assert!(status.is_success(), "{status}");
    ok(app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 300}))
        .await
        .status());
    ok(app
        .post(&format!("/v1/orders/{id}/void"), json!({}))
        .await
        .status());
    ok(app
        .post(&format!("/v1/orders/{id}/refunds"), json!({"amount": 100}))
        .await
        .status());
    for card in [DECLINE, PROCESSOR_ERROR] {
        let refused = app
            .post("/v1/orders", order_body(&unique("ev"), 500, card))
            .await;
        assert_eq!(refused.status(), 402);
    }
    let declining = app.authorized_order(1000, CAPTURE_DECLINED).await;
    let refused = app
        .post(
            &format!("/v1/orders/{}/captures", declining["id"].as_str().unwrap()),
            json!({"amount": 300}),
        )
        .await;
    assert_eq!(refused.status(), 402);
    let later = app.authorized_order(1000, SETTLES_LATER).await;
    ok(app
        .post(
            &format!("/v1/orders/{}/captures", later["id"].as_str().unwrap()),
            json!({"amount": 600}),
        )
        .await
        .status());
    app.advance(Duration::from_secs(3)).await;
    app.advance(Duration::from_secs(8 * 24 * 3600)).await;

    let events = json_of(app.get("/v1/events?limit=100").await).await;
    let kinds: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    let mut distinct = kinds.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        10,
        "every event type happened: {distinct:?}"
    );
    for (format, receiver) in formats.iter().zip(&receivers) {
        let expected = kinds
            .iter()
            .filter(|k| {
                *format != "mercadopago"
                    || !matches!(k.as_str(), "capture.pending" | "capture.declined")
            })
            .count();
        let got = receiver.wait_for(expected).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            receiver.got().len(),
            expected,
            "{format}: one notification per event"
        );
        let mut names: Vec<String> = got
            .iter()
            .map(|r| {
                let body = r.json();
                let name = match *format {
                    "standard" => &body["type"],
                    "mercadopago" => &body["action"],
                    "multisafepay" => &body["status"],
                    "optty" => &body["event"],
                    _ => &body["type"],
                };
                name.as_str().unwrap().to_owned()
            })
            .collect();
        names.sort();
        names.dedup();
        let expected_names: &[&str] = match *format {
            "standard" => &distinct.iter().map(String::as_str).collect::<Vec<_>>(),
            "mercadopago" => &[
                "order.action_required",
                "order.canceled",
                "order.expired",
                "order.failed",
                "order.processed",
                "order.refunded",
            ],
            "optty" => &["ORDER_ASYNC_CALLBACK", "ORDER_STATUS_UPDATE"],
            "pipwave" => &["payment", "refund"],
            _ => &names.iter().map(String::as_str).collect::<Vec<_>>(),
        };
        assert_eq!(names, expected_names, "{format}");
        if *format == "multisafepay" {
            assert!(names.len() >= 4, "several MultiSafepay statuses: {names:?}");
        }
    }
}

#[tokio::test]
async fn timeouts_and_redirects_are_failed_attempts_retried_later() {
    let config = authcap_api::Config {
        webhook_attempt_timeout: Duration::from_secs(1),
        ..authcap_api::Config::default()
    };
    let Some(app) = TestApp::spawn_with(config).await else {
        return;
    };
    // First a redirect (not followed), then an answer too late, then a good one.
    let (receiver, url) = Receiver::start(vec![302]).await;
    receiver
        .stalls
        .lock()
        .unwrap()
        .extend([Duration::ZERO, Duration::from_secs(3)]);
    let endpoint = create_endpoint(&app, &url, json!(["order.authorized"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    app.authorized_order(1000, APPROVE).await;
    receiver.wait_for(1).await;
    attempt_statuses(&app, &endpoint_id, 1).await;
    app.clock.advance(Duration::from_secs(6));
    receiver.wait_for(2).await;
    attempt_statuses(&app, &endpoint_id, 2).await;
    app.clock.advance(Duration::from_secs(6 * 60));
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(|r| r.id == got[0].id), "one event");
    attempt_statuses(&app, &endpoint_id, 3).await;
    let attempts = json_of(
        app.get(&format!("/v1/webhook_endpoints/{endpoint_id}/deliveries"))
            .await,
    )
    .await["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts[0]["status_code"], 200, "{attempts:?}");
    assert!(attempts[1]["status_code"].is_null());
    assert!(
        attempts[1]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{attempts:?}"
    );
    assert_eq!(attempts[2]["status_code"], 302, "recorded, not followed");
    assert_eq!(
        receiver.got().len(),
        3,
        "the redirect's target was never asked"
    );
}

/// A listener that counts the connections it accepts.
struct CountingListener {
    inner: tokio::net::TcpListener,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = axum::serve::Listener::accept(&mut self.inner).await;
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        accepted
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[tokio::test]
async fn deliveries_to_one_receiver_reuse_its_connection() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let receiver = Receiver::default();
    let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", inner.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = CountingListener {
        inner,
        accepted: accepted.clone(),
    };
    let hooks = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, hooks).await });
    create_endpoint(&app, &url, json!(["order.authorized"])).await;
    let deliveries = 8;
    for sent in 1..=deliveries {
        app.authorized_order(1000, APPROVE).await;
        receiver.wait_for(sent).await;
    }
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        connections < deliveries / 2,
        "{deliveries} deliveries one after another took {connections} connections"
    );
}
