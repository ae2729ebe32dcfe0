//! The native API: lifecycle, test cards, idempotency, concurrency, bad input, isolation.

use std::time::Duration;

use authcap_api::Config;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

async fn capture(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/v1/orders/{id}/captures"), body).await
}

#[tokio::test]
async fn create_partial_capture_capture_rest_refund() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let response = app
        .post("/v1/orders", json!({
            "reference": "order-1", "amount": 1000, "surcharge": 50, "currency": "EUR",
            "payment_method": {"type": "card", "number": APPROVE, "expiry": "12/30", "cvc": "123"},
        }))
        .await;
    assert_eq!(response.status(), 201);
    let order = json_of(response).await;
    let id = order["id"].as_str().unwrap();
    assert!(id.starts_with("ord_") && id.len() > 20);
    assert_eq!(order["status"], "authorized");
    assert_eq!(order["authorized_amount"], 1000);
    assert_eq!(order["capturable_amount"], 1050);
    assert_eq!(order["payment_method"]["last4"], "4242");

    let first = capture(
        &app,
        id,
        json!({"amount": 400, "reference": "ship-1",
        "invoice_id": "inv-1", "description": "first box", "reason": "shipped",
        "shipping": {"carrier": "DHL", "method": "express", "tracking_code": "TT1"}}),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    assert!(first["id"].as_str().unwrap().starts_with("cap_"));
    assert_eq!(first["amount"], 400);
    assert_eq!(first["shipping"]["carrier"], "DHL");
    assert_eq!(first["order"]["status"], "partially_captured");
    assert_eq!(first["order"]["capturable_amount"], 650);

    let rest = json_of(capture(&app, id, json!({})).await).await;
    assert_eq!(rest["amount"], 650);
    assert_eq!(rest["final"], true);
    assert_eq!(rest["order"]["status"], "captured");
    assert_eq!(rest["order"]["captured_amount"], 1050);
    assert_eq!(rest["order"]["capturable_amount"], 0);

    let over = capture(&app, id, json!({"amount": 1})).await;
    assert_eq!(over.status(), 409);
    assert_eq!(json_of(over).await["code"], "order_not_capturable");

    let refund = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"amount": 50, "reason": "dent"}),
        )
        .await;
    assert_eq!(refund.status(), 201);
    let refund = json_of(refund).await;
    assert!(refund["id"].as_str().unwrap().starts_with("ref_"));
    assert_eq!(refund["order"]["refunded_amount"], 50);
    let too_much = app
        .post(&format!("/v1/orders/{id}/refunds"), json!({"amount": 1001}))
        .await;
    assert_eq!(too_much.status(), 422);
    assert_eq!(json_of(too_much).await["code"], "amount_exceeds_refundable");
    let rest = json_of(
        app.post(&format!("/v1/orders/{id}/refunds"), json!({}))
            .await,
    )
    .await;
    assert_eq!(rest["amount"], 1000);
    assert_eq!(rest["order"]["status"], "refunded");
    let none_left = app
        .post(&format!("/v1/orders/{id}/refunds"), json!({}))
        .await;
    assert_eq!(json_of(none_left).await["code"], "order_not_refundable");

    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captures"].as_array().unwrap().len(), 2);
    assert_eq!(read["refunds"].as_array().unwrap().len(), 2);
    let captures = json_of(app.get(&format!("/v1/orders/{id}/captures")).await).await;
    assert_eq!(captures["data"][0]["reference"], "ship-1");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn amount_above_capturable_is_refused_and_changes_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let response = capture(&app, id, json!({"amount": 1001})).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem = json_of(response).await;
    assert_eq!(problem["code"], "amount_exceeds_capturable");
    assert_eq!(problem["status"], 422);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("amount_exceeds_capturable")
    );
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captured_amount"], 0);
}

#[tokio::test]
async fn test_cards_decide_the_outcome() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for (card, code) in [
        (DECLINE, "card_declined"),
        (INSUFFICIENT_FUNDS, "insufficient_funds"),
        (PROCESSOR_ERROR, "processor_error"),
    ] {
        let response = app
            .post("/v1/orders", order_body(&unique("r"), 1000, card))
            .await;
        assert_eq!(response.status(), 402, "{card}");
        let problem = json_of(response).await;
        assert_eq!(problem["code"], code);
        let status = if code == "processor_error" {
            "failed"
        } else {
            "declined"
        };
        assert_eq!(problem["order"]["status"], status);
        assert_eq!(problem["order"]["authorized_amount"], 0);
        let id = problem["order"]["id"].as_str().unwrap();
        let refused = capture(&app, id, json!({})).await;
        assert_eq!(json_of(refused).await["code"], "order_not_capturable");
    }

    let full_only = app.authorized_order(1000, FULL_CAPTURE_ONLY).await;
    let id = full_only["id"].as_str().unwrap();
    let partial = capture(&app, id, json!({"amount": 500})).await;
    assert_eq!(partial.status(), 422);
    assert_eq!(
        json_of(partial).await["code"],
        "partial_capture_unsupported"
    );
    assert_eq!(
        capture(&app, id, json!({"amount": 1000})).await.status(),
        201
    );

    let declines = app.authorized_order(1000, CAPTURE_DECLINED).await;
    let id = declines["id"].as_str().unwrap();
    let refused = capture(&app, id, json!({"amount": 100})).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(json_of(refused).await["code"], "capture_declined");
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["status"], "authorized");

    let later = app.authorized_order(1000, SETTLES_LATER).await;
    let id = later["id"].as_str().unwrap();
    let pending = json_of(capture(&app, id, json!({})).await).await;
    assert_eq!(pending["status"], "pending");
    app.advance(Duration::from_millis(2100)).await;
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captures"][0]["status"], "succeeded");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn automatic_capture_mode_captures_at_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut body = order_body("auto-1", 700, APPROVE);
    body["capture_mode"] = json!("automatic");
    let order = json_of(app.post("/v1/orders", body).await).await;
    assert_eq!(order["status"], "captured");
    assert_eq!(order["captured_amount"], 700);
    assert_eq!(order["capture_mode"], "automatic");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn void_releases_the_remainder() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let untouched = app.authorized_order(1000, APPROVE).await;
    let id = untouched["id"].as_str().unwrap();
    let voided = app.post(&format!("/v1/orders/{id}/void"), json!({})).await;
    assert_eq!(voided.status(), 200);
    let voided = json_of(voided).await;
    assert_eq!(voided["status"], "voided");
    assert_eq!(voided["released_amount"], 1000);
    let again = app.post(&format!("/v1/orders/{id}/void"), json!({})).await;
    assert_eq!(json_of(again).await["code"], "order_not_voidable");
    assert_eq!(
        json_of(capture(&app, id, json!({})).await).await["code"],
        "order_not_capturable"
    );

    let partly = app.authorized_order(1000, APPROVE).await;
    let id = partly["id"].as_str().unwrap();
    capture(&app, id, json!({"amount": 300})).await;
    let voided = json_of(
        app.request(Method::POST, &format!("/v1/orders/{id}/void"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(voided["status"], "captured");
    assert_eq!(voided["captured_amount"], 300);
    assert_eq!(voided["capturable_amount"], 0);
    assert_eq!(voided["released_amount"], 700);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn final_capture_releases_the_rest() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let captured = json_of(capture(&app, id, json!({"amount": 250, "final": true})).await).await;
    assert_eq!(captured["final"], true);
    assert_eq!(captured["order"]["status"], "captured");
    assert_eq!(captured["order"]["released_amount"], 750);
    assert_eq!(
        json_of(capture(&app, id, json!({"amount": 1})).await).await["code"],
        "order_not_capturable"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn authorizations_expire() {
    let config = Config {
        authorization_ttl: Duration::from_millis(800),
        ..Config::default()
    };
    let Some(app) = TestApp::spawn_with(config).await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let partly = app.authorized_order(1000, APPROVE).await;
    let partly_id = partly["id"].as_str().unwrap();
    assert_eq!(
        capture(&app, partly_id, json!({"amount": 100}))
            .await
            .status(),
        201
    );
    // Reads show the expiry before anything is written down.
    app.clock.advance(Duration::from_millis(900));
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["status"], "expired");
    assert_eq!(read["capturable_amount"], 0);
    let refused = capture(&app, id, json!({})).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(json_of(refused).await["code"], "authorization_expired");
    let partly = json_of(app.get(&format!("/v1/orders/{partly_id}")).await).await;
    assert_eq!(partly["status"], "captured");
    assert_eq!(partly["capturable_amount"], 0);
    // The server's own sweep may get there first; either way each expiry is written once.
    app.store.sweep().await.unwrap();
    assert_eq!(
        app.store.sweep().await.unwrap(),
        0,
        "an expiry is written down once"
    );
    let events = app
        .store
        .events(&app.merchant.merchant_id, None, 100)
        .await
        .unwrap();
    let expired: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == authcap_core::EventKind::OrderExpired)
        .map(|e| (e.event.order_id.as_str(), e.event.amount.minor_units()))
        .collect();
    assert_eq!(expired.len(), 2, "{events:?}");
    assert!(expired.contains(&(id, 1000)));
    assert!(expired.contains(&(partly_id, 900)));
    let swept = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(swept["status"], "expired");
    assert_eq!(swept["released_amount"], 1000);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn idempotency_replays_the_first_answer() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let body = order_body("idem-1", 1000, APPROVE);
    let send = |key: &str, body: &Value| {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send("key-1", &body).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();
    let again = send("key-1", &body).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);

    let different = send("key-1", &order_body("idem-2", 1000, APPROVE))
        .await
        .unwrap();
    assert_eq!(different.status(), 422);
    assert_eq!(json_of(different).await["code"], "idempotency_key_reused");

    let order: Value = serde_json::from_str(&first_body).unwrap();
    let id = order["id"].as_str().unwrap();
    let other_path = app
        .request(Method::POST, &format!("/v1/orders/{id}/captures"))
        .header("Idempotency-Key", "key-1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(other_path).await["code"], "idempotency_key_reused");

    // Refusals are remembered too: the retry gets the same refusal, not a fresh attempt.
    let over = || {
        app.request(Method::POST, &format!("/v1/orders/{id}/captures"))
            .header("Idempotency-Key", "cap-over")
            .json(&json!({"amount": 5000}))
            .send()
    };
    assert_eq!(over().await.unwrap().status(), 422);
    let replay = over().await.unwrap();
    assert_eq!(replay.status(), 422);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    for bad in ["", &"k".repeat(256)] {
        let response = send(bad, &order_body(&unique("r"), 1, APPROVE))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        assert_eq!(json_of(response).await["code"], "invalid_idempotency_key");
    }
    let longest = send(&"k".repeat(255), &order_body(&unique("r"), 1, APPROVE))
        .await
        .unwrap();
    assert_eq!(longest.status(), 201, "{}", longest.text().await.unwrap());

    // Keys belong to one merchant: another merchant's identical key executes on its own.
    let other = app.new_merchant().await;
    let theirs = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&other.secret_key)
        .header("Idempotency-Key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn concurrent_duplicates_execute_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(10_000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let sends = (0..16).map(|_| {
        app.request(Method::POST, &format!("/v1/orders/{id}/captures"))
            .header("Idempotency-Key", "same")
            .json(&json!({"amount": 100}))
            .send()
    });
    let responses = futures_join_all(sends).await;
    let mut created = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            409 => assert_eq!(
                json_of(response).await["code"],
                "idempotency_request_in_progress"
            ),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(created >= 1);
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captured_amount"], 100, "executed exactly once");
}

/// Runs futures concurrently on the test runtime.
pub async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, reqwest::Error>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap().unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_and_voids_stay_consistent() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for _ in 0..5 {
        let order = app.authorized_order(1_000, APPROVE).await;
        let id = order["id"].as_str().unwrap().to_owned();
        let sends = (0..12).map(|n| {
            let (path, body) = match n % 4 {
                0 => (format!("/v1/orders/{id}/void"), json!({})),
                _ => (format!("/v1/orders/{id}/captures"), json!({"amount": 100})),
            };
            app.request(Method::POST, &path).json(&body).send()
        });
        let responses = futures_join_all(sends).await;
        assert!(responses.iter().all(|r| r.status().as_u16() < 500));
        let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
        let captured = read["captured_amount"].as_i64().unwrap();
        let released = read["released_amount"].as_i64().unwrap();
        assert_eq!(
            captured + released,
            1000,
            "a void releases everything not captured"
        );
        assert_eq!(read["capturable_amount"], 0);
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let valid = order_body("bad-1", 1000, APPROVE);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("amount", json!(0)), "amount"),
        (with("amount", json!(-5)), "amount"),
        (with("amount", json!(10.5)), "amount"),
        (with("amount", json!("1000")), "amount"),
        (with("amount", json!(1e300)), "amount"),
        (with("amount", json!(9_007_199_254_740_992i64)), "amount"),
        (with("amount", json!(u64::MAX)), "amount"),
        (with("surcharge", json!(-1)), "surcharge"),
        (with("currency", json!("EURO")), "currency"),
        (with("currency", json!("XAU")), "currency"),
        (with("currency", json!(978)), "currency"),
        (with("reference", json!("")), "reference"),
        (with("reference", json!("r".repeat(51))), "reference"),
        (with("capture_mode", json!("later")), "capture_mode"),
        (with("unknown_field", json!(1)), "unknown_field"),
        (
            with(
                "payment_method",
                json!({"type": "card", "number": "4242424242424241"}),
            ),
            "payment_method.number",
        ),
        (
            with("payment_method", json!({"type": "iban", "number": APPROVE})),
            "payment_method.type",
        ),
        (
            with(
                "payment_method",
                json!({"type": "card", "number": APPROVE, "expiry": "13/30"}),
            ),
            "payment_method.expiry",
        ),
        (
            with(
                "payment_method",
                json!({"type": "card", "number": APPROVE, "cvc": "12a"}),
            ),
            "payment_method.cvc",
        ),
        (
            with(
                "payment_method",
                json!({"type": "card", "number": APPROVE, "pin": "1"}),
            ),
            "pin",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/v1/orders", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let problem = json_of(response).await;
        assert_eq!(problem["code"], "invalid_request", "{body}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem} should name {field}"
        );
    }
    let yen = json!({"reference": "yen", "amount": 1000, "currency": "JPY",
        "payment_method": {"type": "card", "number": APPROVE}});
    assert_eq!(app.post("/v1/orders", yen).await.status(), 201);

    let raw = |body: Vec<u8>| {
        app.request(Method::POST, "/v1/orders")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        b"{".to_vec(),
        b"not json".to_vec(),
        b"".to_vec(),
        vec![b'"', 0xff, 0xfe, b'"'],
    ] {
        let response = raw(body).await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(json_of(response).await["code"], "invalid_json");
    }
    let huge = format!("{{\"reference\": \"{}\"}}", "x".repeat(70 * 1024));
    let response = raw(huge.into_bytes()).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(json_of(response).await["code"], "body_too_large");

    for auth in [
        None,
        Some("Bearer sk_wrong"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let mut request = app.client.post(app.url("/v1/orders")).json(&valid);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(json_of(response).await["code"], "unauthorized");
    }

    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    for body in [
        json!({"amount": 0}),
        json!({"amount": "5"}),
        json!({"amount": 1.5}),
        json!({"final": "yes"}),
        json!({"reference": ""}),
        json!({"invoice_id": "i".repeat(51)}),
        json!({"shipping": {"carrier": "c", "boat": true}}),
        json!({"extra": 1}),
    ] {
        let response = capture(&app, id, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let list = json_of(app.get("/v1/orders?limit=100").await).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        2,
        "only the two valid orders exist"
    );
    assert_eq!(list["data"][0]["captured_amount"], 0);
    assert_eq!(app.get("/v1/nothing-here").await.status(), 404);
}

#[tokio::test]
async fn merchants_never_see_each_others_orders() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let other = app.new_merchant().await;
    let as_other = |method: Method, path: String| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(&other.secret_key)
            .json(&json!({}))
            .send()
    };
    for (method, path) in [
        (Method::GET, format!("/v1/orders/{id}")),
        (Method::GET, format!("/v1/orders/{id}/captures")),
        (Method::POST, format!("/v1/orders/{id}/captures")),
        (Method::POST, format!("/v1/orders/{id}/void")),
        (Method::POST, format!("/v1/orders/{id}/refunds")),
    ] {
        let response = as_other(method, path.clone()).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json_of(response).await["code"], "order_not_found");
    }
    let list = json_of(as_other(Method::GET, "/v1/orders".into()).await.unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    // The same reference is free for another merchant, and taken for the first.
    let reference = order["reference"].as_str().unwrap();
    let theirs = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&other.secret_key)
        .json(&order_body(reference, 1000, APPROVE))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201);
    let ours = app
        .post("/v1/orders", order_body(reference, 1000, APPROVE))
        .await;
    assert_eq!(ours.status(), 409);
    assert_eq!(json_of(ours).await["code"], "reference_already_exists");
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captured_amount"], 0);
}

#[tokio::test]
async fn capture_references_are_unique_per_order() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        capture(&app, id, json!({"amount": 100, "reference": "c1"}))
            .await
            .status(),
        201
    );
    let again = capture(&app, id, json!({"amount": 100, "reference": "c1"})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(json_of(again).await["code"], "reference_already_exists");
    let other = app.authorized_order(1000, APPROVE).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        capture(&app, other_id, json!({"amount": 100, "reference": "c1"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn listing_is_paginated_newest_first_and_filtered() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut ids = Vec::new();
    for n in 0..5 {
        let response = app
            .post(
                "/v1/orders",
                order_body(&format!("list-{n}"), 100 + n, APPROVE),
            )
            .await;
        ids.push(json_of(response).await["id"].as_str().unwrap().to_owned());
    }
    app.post("/v1/orders", order_body("list-declined", 100, DECLINE))
        .await;
    let page = json_of(app.get("/v1/orders?limit=2&status=authorized").await).await;
    assert_eq!(page["has_more"], true);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data[0]["id"], ids[4].as_str());
    assert_eq!(data[1]["id"], ids[3].as_str());
    let next = json_of(
        app.get(&format!(
            "/v1/orders?limit=2&status=authorized&starting_after={}",
            ids[3]
        ))
        .await,
    )
    .await;
    assert_eq!(next["data"][0]["id"], ids[2].as_str());
    let last = json_of(
        app.get(&format!(
            "/v1/orders?limit=10&status=authorized&starting_after={}",
            ids[1]
        ))
        .await,
    )
    .await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["has_more"], false);
    let by_reference = json_of(app.get("/v1/orders?reference=list-2").await).await;
    assert_eq!(by_reference["data"][0]["id"], ids[2].as_str());
    let declined = json_of(app.get("/v1/orders?status=declined").await).await;
    assert_eq!(declined["data"].as_array().unwrap().len(), 1);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "status=nope",
        "colour=red",
    ] {
        let response = app.get(&format!("/v1/orders?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn openapi_and_health_are_served() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let document = json_of(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    // The document says what the server answers: errors as problem+json, with every status.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "405", "429", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            for (status, response) in responses {
                if !status.starts_with('2') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let list = &document["paths"]["/v1/orders"]["get"]["parameters"];
    let limit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 100);
    let capture = &document["paths"]["/v1/orders/{id}/captures"]["post"]["responses"];
    assert!(capture["402"].is_object() && capture["404"].is_object());
    assert!(capture["201"]["headers"]["Idempotent-Replayed"].is_object());
    let codes = &document["components"]["schemas"]["ProblemBody"]["properties"]["code"]["enum"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&json!("amount_exceeds_capturable"))
    );
    assert!(document["paths"]["/v1/orders/{id}/captures"]["post"].is_object());
    assert!(document["components"]["schemas"]["OrderBody"].is_object());
}

#[tokio::test]
async fn orders_survive_a_restart() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    capture(&app, &id, json!({"amount": 400})).await;
    let (database, secret) = (app.database.clone(), app.merchant.secret_key.clone());
    drop(app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let restarted = TestApp::spawn_on(database, Config::default()).await;
    let read = restarted
        .client
        .get(restarted.url(&format!("/v1/orders/{id}")))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(read).await["captured_amount"], 400);
    restarted.assert_ledger_consistent().await;
}

#[tokio::test]
async fn nul_characters_and_undecodable_ids_are_client_errors_on_every_backend() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let response = app
        .post("/v1/orders", order_body("nul\u{0}ref", 100, APPROVE))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await["code"], "invalid_request");
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let capture = app
        .post(
            &format!("/v1/orders/{id}/captures"),
            json!({"amount": 100, "reason": "a\u{0}b"}),
        )
        .await;
    assert_eq!(capture.status(), 400);
    for path in [
        "/v1/orders/%00",
        "/v1/orders/%FF%FE",
        "/v1/orders?reference=%00",
    ] {
        let response = app.get(path).await;
        assert!(
            response.status() == 404 || response.status() == 200,
            "{path}"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("json"),
            "{path}"
        );
    }
    let void = app.post("/v1/orders/%00/void", json!({})).await;
    assert_eq!(void.status(), 404);
    assert_eq!(json_of(void).await["code"], "order_not_found");
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["captured_amount"], 0);
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_time() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let send = |reference: &str| {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "kept-a-while")
            .json(&order_body(reference, 100, APPROVE))
            .send()
    };
    assert_eq!(send("first").await.unwrap().status(), 201);
    assert_eq!(send("second").await.unwrap().status(), 422);
    let one_hour_ago = app.store.now().millis() - 3_600_000;
    assert_eq!(
        app.store.prune_idempotency(one_hour_ago).await.unwrap(),
        0,
        "young keys stay"
    );
    let later = app.store.now().millis() + 1;
    assert_eq!(app.store.prune_idempotency(later).await.unwrap(), 1);
    let reused = send("second").await.unwrap();
    assert_eq!(reused.status(), 201, "a pruned key is free again");
}
