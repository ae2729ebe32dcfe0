//! What an operator sees: request ids on every answer, in problem bodies and logs' spans, and
//! `/metrics` in the Prometheus text format, counters that move, and its optional token.

use reqwest::Method;
use serde_json::json;

use super::support::*;

fn request_id_of(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_problems_name_it() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let fresh = app.client.get(app.url("/healthz")).send().await.unwrap();
    let generated = request_id_of(&fresh);
    assert!(generated.starts_with("req_"), "{generated}");
    let another = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(request_id_of(&another), generated, "ids are fresh");

    // A caller's own id is kept…
    let kept = app
        .request(Method::GET, "/v1/orders/ord_missing")
        .header("x-request-id", "trace-4711/a")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id_of(&kept), "trace-4711/a");
    assert_eq!(kept.status(), 404);
    let problem = json_of(kept).await;
    assert_eq!(problem["request_id"], "trace-4711/a");
    assert_eq!(problem["code"], "order_not_found");

    // …unless it is unusable in headers and logs: then a fresh one replaces it.
    for unusable in ["x".repeat(129), "has space".to_owned(), String::new()] {
        let replaced = app
            .request(Method::GET, "/v1/orders/ord_missing")
            .header("x-request-id", unusable.as_str())
            .send()
            .await
            .unwrap();
        let id = request_id_of(&replaced);
        assert!(id.starts_with("req_"), "{unusable:?} → {id}");
        assert_eq!(json_of(replaced).await["request_id"], id.as_str());
    }

    // Every error the server itself answers carries it too, before any handler runs.
    let unauthenticated = app.client.get(app.url("/v1/orders")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let id = request_id_of(&unauthenticated);
    assert_eq!(json_of(unauthenticated).await["request_id"], id.as_str());

    // A replayed refusal is the stored answer, with this request's id.
    let order = app.authorized_order(1000, APPROVE).await;
    let path = format!("/v1/orders/{}/captures", order["id"].as_str().unwrap());
    let refuse = || {
        app.request(Method::POST, &path)
            .header("Idempotency-Key", "too-much")
            .json(&json!({"amount": 5000}))
            .send()
    };
    let first = refuse().await.unwrap();
    let first_id = request_id_of(&first);
    let first = json_of(first).await;
    let replay = refuse().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay_id = request_id_of(&replay);
    let mut replay = json_of(replay).await;
    assert_ne!(first_id, replay_id);
    assert_eq!(first["request_id"], first_id.as_str());
    assert_eq!(replay["request_id"], replay_id.as_str());
    replay["request_id"] = first["request_id"].clone();
    assert_eq!(replay, first);
}

/// The value of the sample whose line starts with `name{` and holds every label given.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_writes_replays_and_deliveries() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let before = scrape(&app).await;
    let route = [("route", "/v1/orders/{id}/captures"), ("method", "POST")];
    assert_eq!(sample(&before, "authcap_http_requests_total", &route), 0.0);

    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}/captures");
    for _ in 0..2 {
        let response = app
            .request(Method::POST, &path)
            .header("Idempotency-Key", "cap-1")
            .json(&json!({"amount": 400}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let refused = app.post(&path, json!({"amount": 5000})).await;
    assert_eq!(refused.status(), 422);

    // Made-up methods do not make new label sets.
    for n in 0..3 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
        app.client
            .request(method, app.url("/v1/orders"))
            .send()
            .await
            .unwrap();
    }
    let after = scrape(&app).await;
    assert!(!after.contains("MADEUP"));
    assert_eq!(
        sample(
            &after,
            "authcap_http_requests_total",
            &[("method", "other")]
        ),
        3.0
    );
    let created = [
        ("route", "/v1/orders/{id}/captures"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(sample(&after, "authcap_http_requests_total", &created), 2.0);
    assert_eq!(
        sample(
            &after,
            "authcap_http_request_duration_seconds_count",
            &route
        ),
        3.0
    );
    assert!(
        !after.contains(id),
        "route templates, never ids, are labels"
    );
    let write = |operation: &str, outcome: &str| {
        sample(
            &after,
            "authcap_writes_total",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    assert_eq!(write("create", "succeeded"), 1.0);
    assert_eq!(write("capture", "succeeded"), 1.0);
    assert_eq!(write("capture", "replayed"), 1.0);
    assert_eq!(write("capture", "refused"), 1.0);
    assert_eq!(sample(&after, "authcap_idempotent_replays_total", &[]), 1.0);
    match super::BACKEND {
        crate::Backend::Sqlite => {
            assert!(sample(&after, "authcap_sqlite_group_commit_writes_count", &[]) >= 3.0);
            assert!(sample(&after, "authcap_sqlite_commit_duration_seconds_count", &[]) >= 3.0);
            assert!(after.contains("authcap_sqlite_writer_queue_depth "));
        }
        crate::Backend::Postgres => {
            assert!(sample(&after, "authcap_postgres_pool_wait_seconds_count", &[]) >= 3.0);
            assert!(sample(&after, "authcap_postgres_pool_max_connections", &[]) >= 1.0);
        }
    }

    // A webhook endpoint: the delivery is counted, and the backlog empties.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}/hooks", receiver.local_addr().unwrap());
    let hooks_app = axum::Router::new().route("/hooks", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(receiver, hooks_app).await });
    let endpoint = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": hooks, "enabled_events": ["*"]}),
        )
        .await;
    assert_eq!(endpoint.status(), 201);
    app.authorized_order(1000, APPROVE).await;
    let mut delivered = 0.0;
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app).await;
        delivered = sample(
            &text,
            "authcap_webhook_deliveries_total",
            &[("outcome", "delivered")],
        );
        if delivered >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 1.0, "{text}");
    let scraped = scrape(&app).await;
    assert_eq!(
        sample(&scraped, "authcap_webhook_deliveries_pending", &[]),
        0.0
    );
}

#[tokio::test]
async fn metrics_ask_for_the_token_when_one_is_set() {
    let token = "metrics-token-0123456789";
    let Some(app) = TestApp::spawn_with(authcap_api::Config {
        metrics_token: Some(token.into()),
        ..authcap_api::Config::default()
    })
    .await
    else {
        return;
    };
    let url = app.url("/metrics");
    let missing = app.client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("metrics-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let secret_key = app
        .client
        .get(&url)
        .bearer_auth(&app.merchant.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret_key.status(),
        401,
        "a merchant's key is not the metrics token"
    );
    let right = app
        .client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("authcap_http_requests_total")
    );
}
