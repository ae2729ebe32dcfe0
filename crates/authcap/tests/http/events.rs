//! Every movement of money is an event the core names, stored in the same transaction as its
//! effect: one per change, none for a refusal (but a processor's decline), none twice for a
//! retried request, in the order they happened, for the merchant's own orders only.

use std::time::Duration;

use authcap_store::StoredEvent;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

async fn events_of(app: &TestApp, order_id: &str) -> Vec<StoredEvent> {
    app.store
        .events(&app.merchant.merchant_id, Some(order_id), 100)
        .await
        .unwrap()
}

/// `(type, amount, subject)` of each event of the order, in order.
async fn story(app: &TestApp, order_id: &str) -> Vec<(String, i64, Option<String>)> {
    events_of(app, order_id)
        .await
        .into_iter()
        .map(|e| {
            assert_eq!(e.event.order_id, order_id);
            assert!(e.id.starts_with("evt_"), "{}", e.id);
            (
                e.event.kind.as_str().to_owned(),
                e.event.amount.minor_units(),
                e.event.subject_id,
            )
        })
        .collect()
}

fn kinds(story: &[(String, i64, Option<String>)]) -> Vec<&str> {
    story.iter().map(|(kind, _, _)| kind.as_str()).collect()
}

async fn post_keyed(app: &TestApp, path: &str, key: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, path)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_movement_of_money_is_one_event() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut body = order_body(&unique("ev"), 1000, APPROVE);
    body["surcharge"] = json!(50);
    let order = json_of(post_keyed(&app, "/v1/orders", "create-1", body.clone()).await).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let captures = format!("/v1/orders/{id}/captures");
    let capture = json_of(post_keyed(&app, &captures, "cap-1", json!({"amount": 400})).await).await;
    let capture_id = capture["id"].as_str().unwrap().to_owned();
    // Retries replay; they write no second event.
    assert_eq!(
        post_keyed(&app, &captures, "cap-1", json!({"amount": 400}))
            .await
            .headers()["idempotent-replayed"],
        "true"
    );
    post_keyed(&app, "/v1/orders", "create-1", body).await;
    // Refusals change nothing and name nothing.
    let refused = post_keyed(&app, &captures, "cap-2", json!({"amount": 5000})).await;
    assert_eq!(refused.status(), 422);
    let refund = json_of(
        app.post(&format!("/v1/orders/{id}/refunds"), json!({"amount": 150}))
            .await,
    )
    .await;
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let voided = app.post(&format!("/v1/orders/{id}/void"), json!({})).await;
    assert_eq!(voided.status(), 200);

    assert_eq!(
        story(&app, &id).await,
        vec![
            ("order.authorized".into(), 1050, None),
            ("capture.succeeded".into(), 400, Some(capture_id)),
            ("refund.succeeded".into(), 150, Some(refund_id)),
            ("order.voided".into(), 650, None),
        ]
    );
    let times: Vec<_> = events_of(&app, &id)
        .await
        .iter()
        .map(|e| e.event.at)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn declines_failures_and_final_captures_are_named() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for (card, kind) in [
        (DECLINE, "order.declined"),
        (INSUFFICIENT_FUNDS, "order.declined"),
        (PROCESSOR_ERROR, "order.failed"),
    ] {
        let response = app
            .post("/v1/orders", order_body(&unique("ev"), 700, card))
            .await;
        assert_eq!(response.status(), 402);
        let id = json_of(response).await["order"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(story(&app, &id).await, vec![(kind.into(), 700, None)]);
    }

    // The processor's refusal of a capture is an event; the order does not change.
    let declining = app.authorized_order(1000, CAPTURE_DECLINED).await;
    let id = declining["id"].as_str().unwrap();
    let refused = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 300}))
        .await;
    assert_eq!(refused.status(), 402);
    let told = story(&app, id).await;
    assert_eq!(kinds(&told), ["order.authorized", "capture.declined"]);
    assert_eq!(told[1].1, 300);

    // A final capture releases the rest: captured, then voided, in that order.
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let captured = app
        .post(
            &format!("/v1/orders/{id}/captures"),
            json!({"amount": 250, "final": true}),
        )
        .await;
    assert_eq!(captured.status(), 201);
    let told = story(&app, id).await;
    assert_eq!(
        kinds(&told),
        ["order.authorized", "capture.succeeded", "order.voided"]
    );
    assert_eq!((told[1].1, told[2].1), (250, 750));

    // Automatic capture: authorized and captured in one write.
    let mut body = order_body(&unique("ev"), 900, APPROVE);
    body["capture_mode"] = json!("automatic");
    let auto = json_of(app.post("/v1/orders", body).await).await;
    let told = story(&app, auto["id"].as_str().unwrap()).await;
    assert_eq!(kinds(&told), ["order.authorized", "capture.succeeded"]);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn the_clock_settles_captures_and_expires_authorizations_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let later = app.authorized_order(1000, SETTLES_LATER).await;
    let later_id = later["id"].as_str().unwrap();
    let pending = json_of(
        app.post(
            &format!("/v1/orders/{later_id}/captures"),
            json!({"amount": 600}),
        )
        .await,
    )
    .await;
    assert_eq!(pending["status"], "pending");
    let open = app.authorized_order(1000, APPROVE).await;
    let open_id = open["id"].as_str().unwrap();
    assert_eq!(
        kinds(&story(&app, later_id).await),
        ["order.authorized", "capture.pending"]
    );

    app.advance(Duration::from_secs(3)).await;
    let told = story(&app, later_id).await;
    assert_eq!(
        kinds(&told),
        ["order.authorized", "capture.pending", "capture.settled"]
    );
    assert_eq!(told[2].1, 600);
    assert_eq!(
        json_of(app.get(&format!("/v1/orders/{later_id}")).await).await["captures"][0]["status"],
        "succeeded"
    );

    // Past the authorization's life: both orders expire, releasing what was left.
    app.advance(Duration::from_secs(8 * 24 * 3600)).await;
    app.advance(Duration::from_secs(1)).await;
    let told = story(&app, later_id).await;
    assert_eq!(told.len(), 4, "settled once, expired once: {told:?}");
    assert_eq!(told[3], ("order.expired".into(), 400, None));
    assert_eq!(
        story(&app, open_id).await[1],
        ("order.expired".into(), 1000, None)
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn dialects_name_the_same_events() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    // Mercado Pago: create manual, capture (final: releases nothing, everything captured).
    let created = app
        .client
        .post(app.url("/mercadopago/v1/orders"))
        .bearer_auth(&app.merchant.mercadopago_access_token)
        .header("X-Idempotency-Key", unique("mp"))
        .json(&json!({
            "type": "online", "processing_mode": "automatic", "capture_mode": "manual",
            "total_amount": "24.50", "external_reference": unique("mp"),
            "payer": {"email": "buyer@example.com"},
            "transactions": {"payments": [{"amount": "24.50",
                "payment_method": {"id": "master", "type": "credit_card", "token": "tok"}}]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mp_id = json_of(created).await["id"].as_str().unwrap().to_owned();
    let captured = app
        .client
        .post(app.url(&format!("/mercadopago/v1/orders/{mp_id}/capture")))
        .bearer_auth(&app.merchant.mercadopago_access_token)
        .header("X-Idempotency-Key", unique("mp"))
        .send()
        .await
        .unwrap();
    assert_eq!(captured.status(), 200);
    let listed = json_of(app.get("/v1/orders?limit=1").await).await;
    let id = listed["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        story(&app, id).await,
        vec![
            ("order.authorized".into(), 2450, None),
            (
                "capture.succeeded".into(),
                2450,
                listed["data"][0]["captures"][0]["id"]
                    .as_str()
                    .map(str::to_owned)
            ),
        ]
    );
}

#[tokio::test]
async fn events_belong_to_their_merchant() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let other = app.new_merchant().await;
    let theirs = app
        .store
        .events(&other.merchant_id, Some(id), 100)
        .await
        .unwrap();
    assert!(theirs.is_empty());
    let all = app
        .store
        .events(&other.merchant_id, None, 100)
        .await
        .unwrap();
    assert!(all.is_empty());
    assert_eq!(story(&app, id).await.len(), 1);
}
