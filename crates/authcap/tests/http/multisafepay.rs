//! The MultiSafepay dialect: orders, manual capture (partial, full, several), cancelling the
//! reservation, refunds, every field and limit of both capture documents, errors in
//! MultiSafepay's shape, isolation, and the official Python SDK.

use std::time::Duration;

use authcap_api::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::*;

const P: &str = "/multisafepay/v1/json";

fn msp_as(app: &TestApp, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(&format!("{P}{path}")))
        .header("api_key", key)
}

async fn send_as(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = msp_as(app, key, method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let key = app.merchant.multisafepay_api_key.clone();
    send_as(app, &key, method, path, body).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    send(app, Method::GET, path, None).await
}

fn order(order_id: &str, amount: i64, card: Option<&str>) -> Value {
    let mut body = json!({
        "type": "direct", "order_id": order_id, "gateway": "VISA", "currency": "EUR",
        "amount": amount, "description": "Test order", "capture": "manual",
        "payment_options": {"notification_url": "https://shop.example/n",
                            "redirect_url": "https://shop.example/ok",
                            "cancel_url": "https://shop.example/cancel", "close_window": false},
        "customer": {"locale": "nl_NL", "first_name": "Jan", "email": "jan@example.com"},
    });
    if let Some(card) = card {
        body["gateway_info"] = json!({"card_number": card, "card_holder_name": "J. Jansen",
                                      "card_expiry_date": 3012, "cvc": "123"});
    }
    body
}

async fn create(app: &TestApp, order_id: &str, amount: i64, card: Option<&str>) -> Value {
    let (status, body) = post(app, "/orders", order(order_id, amount, card)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    body["data"].clone()
}

fn assert_error(status: StatusCode, body: &Value, http: u16, code: i64) {
    assert_eq!(status.as_u16(), http, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["data"], json!({}), "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert!(body["error_info"].as_str().is_some_and(|s| !s.is_empty()));
}

async fn capture(app: &TestApp, order_id: &str, body: Value) -> (StatusCode, Value) {
    post(app, &format!("/orders/{order_id}/capture"), body).await
}

#[tokio::test]
async fn create_partial_capture_capture_rest_get_refund() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let created = create(&app, "msp-1", 1000, Some(APPROVE)).await;
    assert_eq!(created["order_id"], "msp-1");
    assert!(created["transaction_id"].is_i64());
    assert_eq!(created["status"], "completed");
    assert_eq!(created["financial_status"], "initialized");
    assert_eq!(created["payment_url"], "https://shop.example/ok");

    let (status, read) = get(&app, "/orders/msp-1").await;
    assert_eq!(status, 200);
    assert_eq!(read["success"], true);
    let data = &read["data"];
    assert_eq!(data["transaction_id"], created["transaction_id"]);
    assert_eq!(data["amount"], 1000);
    assert_eq!(data["amount_refunded"], 0);
    assert_eq!(data["currency"], "EUR");
    assert_eq!(data["description"], "Test order");
    assert_eq!(data["items"], Value::Null);
    assert_eq!(data["capture"], "manual");
    assert_eq!(data["customer"]["first_name"], "Jan");
    assert_eq!(data["payment_details"]["type"], "VISA");
    assert_eq!(data["payment_details"]["last4"], "4242");
    assert_eq!(data["payment_details"]["card_expiry_date"], "3012");
    assert_eq!(data["payment_details"]["account_holder_name"], "J. Jansen");
    assert_eq!(data["created"].as_str().unwrap().len(), 19);

    // Partial capture with every field of the full-capture document.
    let (status, first) = capture(
        &app,
        "msp-1",
        json!({"amount": 400, "new_order_id": "msp-1-c1", "new_order_status": "completed",
               "invoice_id": "001", "tracktrace_code": "TT-1", "carrier": "DHL",
               "reason": "first box", "description": "box 1 of 2"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["success"], true);
    assert_eq!(first["data"]["order_id"], "msp-1-c1");
    let capture_tx = first["data"]["transaction_id"].as_i64().unwrap();
    assert!(capture_tx > 0 && capture_tx < (1 << 53));

    let (_, read) = get(&app, "/orders/msp-1").await;
    assert_eq!(read["data"]["status"], "completed");
    assert_eq!(read["data"]["financial_status"], "completed");

    // The capture's new_order_id reads back as its own transaction.
    let (status, sub) = get(&app, "/orders/msp-1-c1").await;
    assert_eq!(status, 200);
    assert_eq!(sub["data"]["order_id"], "msp-1-c1");
    assert_eq!(sub["data"]["amount"], 400);
    assert_eq!(sub["data"]["transaction_id"], capture_tx);
    assert_eq!(sub["data"]["status"], "completed");
    assert_eq!(sub["data"]["description"], "box 1 of 2");
    assert_eq!(sub["data"]["reason"], "first box");

    // The rest, with the partial-capture document's fields: amount as a digit string,
    // integer ids, memo and checkout_data, empty strings for unused text.
    let (status, rest) = capture(
        &app,
        "msp-1",
        json!({"amount": "600", "new_order_id": 12345, "new_order_status": "completed",
               "invoice_id": 77, "carrier": "", "reason": "", "memo": "shipped",
               "checkout_data": {"items": []}}),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    // Ids sent as JSON integers are answered as integers; the invoice id shows on the order.
    assert_eq!(rest["data"]["order_id"], 12345);
    let (_, sub) = get(&app, "/orders/12345").await;
    assert_eq!(sub["data"]["amount"], 600);
    assert_eq!(sub["data"]["order_id"], 12345);
    assert_eq!(sub["data"]["invoice_id"], 77);
    let (_, parent) = get(&app, "/orders/msp-1").await;
    assert_eq!(parent["data"]["invoice_id"], 77);
    assert_eq!(parent["data"]["order_id"], "msp-1");

    let (status, none_left) = capture(
        &app,
        "msp-1",
        json!({"amount": 1, "new_order_status": "completed"}),
    )
    .await;
    assert_error(status, &none_left, 409, 1022);

    // The native API sees the same order and captures.
    let native = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "msp-1").await))
            .await,
    )
    .await;
    assert_eq!(native["status"], "captured");
    assert_eq!(native["captured_amount"], 1000);
    let captures = native["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 2);
    assert_eq!(captures[0]["reference"], "msp-1-c1");
    assert_eq!(captures[0]["invoice_id"], "001");
    assert_eq!(captures[0]["shipping"]["carrier"], "DHL");
    assert_eq!(captures[0]["shipping"]["tracking_code"], "TT-1");
    assert_eq!(captures[1]["reference"], "12345");
    assert_eq!(captures[1]["invoice_id"], "77");
    assert_eq!(captures[1]["shipping"], Value::Null);

    // Refunds.
    let (status, refund) = post(
        &app,
        "/orders/msp-1/refunds",
        json!({"currency": "EUR", "amount": 250, "description": "dented"}),
    )
    .await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(refund["data"]["order_id"], "msp-1");
    assert!(refund["data"]["transaction_id"].is_i64());
    let (_, read) = get(&app, "/orders/msp-1").await;
    assert_eq!(read["data"]["amount_refunded"], 250);
    assert_eq!(read["data"]["status"], "partial_refunded");
    assert_eq!(read["data"]["financial_status"], "partial_refunded");
    let (status, too_much) = post(
        &app,
        "/orders/msp-1/refunds",
        json!({"currency": "EUR", "amount": 751}),
    )
    .await;
    assert_error(status, &too_much, 422, 1034);
    let (status, _) = post(
        &app,
        "/orders/msp-1/refunds",
        json!({"currency": "EUR", "amount": 750}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, read) = get(&app, "/orders/msp-1").await;
    assert_eq!(read["data"]["status"], "refunded");
    assert_eq!(read["data"]["financial_status"], "refunded");
    assert_eq!(read["data"]["amount_refunded"], 1000);
    let (status, none_left) = post(&app, "/orders/msp-1/refunds", json!({"amount": 1})).await;
    assert_error(status, &none_left, 409, 1034);
    let native = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "msp-1").await))
            .await,
    )
    .await;
    assert_eq!(native["refunds"][0]["reason"], "dented");
    assert_eq!(native["status"], "refunded");
    app.assert_ledger_consistent().await;
}

/// The Authcap id of the order with this reference.
async fn created_id(app: &TestApp, reference: &str) -> String {
    let list = json_of(app.get(&format!("/v1/orders?reference={reference}")).await).await;
    list["data"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn api_key_in_header_bearer_or_query() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    create(&app, "auth-1", 1000, None).await;
    let key = &app.merchant.multisafepay_api_key;
    let bearer = app
        .client
        .get(app.url(&format!("{P}/orders/auth-1?order_id=auth-1&locale=en_US")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let query = app
        .client
        .get(app.url(&format!("{P}/orders/auth-1?locale=en_US&api_key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);

    for response in [
        app.client
            .get(app.url(&format!("{P}/orders/auth-1")))
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url(&format!("{P}/orders/auth-1?api_key=nope")))
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url(&format!("{P}/orders/auth-1")))
            .header("api_key", "")
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url(&format!("{P}/orders/auth-1")))
            .bearer_auth(&app.merchant.secret_key)
            .send()
            .await
            .unwrap(),
    ] {
        let status = response.status();
        assert_error(status, &response.json().await.unwrap(), 401, 1032);
    }
    let (status, body) = send_as(
        &app,
        "wrong",
        Method::POST,
        "/orders",
        Some(order("x", 1, None)),
    )
    .await;
    assert_error(status, &body, 401, 1032);
}

#[tokio::test]
async fn create_validates_every_field() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let cases: Vec<(Value, u16, i64)> = vec![
        (json!({"type": "direct"}), 400, 1016),
        (without(order("v", 100, None), "type"), 400, 1016),
        (without(order("v", 100, None), "order_id"), 400, 1016),
        (without(order("v", 100, None), "currency"), 400, 1016),
        (without(order("v", 100, None), "amount"), 400, 1016),
        (without(order("v", 100, None), "description"), 400, 1008),
        (
            with(order("v", 100, None), "type", json!("teleport")),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "order_id", json!("o".repeat(51))),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "order_id", json!(1.5)),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "order_id", json!(true)),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "currency", json!("EURO")),
            400,
            1002,
        ),
        (
            with(order("v", 100, None), "currency", json!("eur")),
            400,
            1002,
        ),
        (
            with(order("v", 100, None), "amount", json!(10.5)),
            400,
            1001,
        ),
        (
            with(order("v", 100, None), "amount", json!(-100)),
            400,
            1001,
        ),
        (with(order("v", 100, None), "amount", json!(0)), 400, 1001),
        (
            with(order("v", 100, None), "amount", json!("ten")),
            400,
            1001,
        ),
        (
            with(order("v", 100, None), "amount", json!("10.00")),
            400,
            1001,
        ),
        (
            with(
                order("v", 100, None),
                "amount",
                json!(9_007_199_254_740_992_u64),
            ),
            400,
            1001,
        ),
        (
            with(order("v", 100, None), "amount", json!(null)),
            400,
            1016,
        ),
        (
            with(order("v", 100, None), "description", json!("d".repeat(201))),
            400,
            1008,
        ),
        (
            with(order("v", 100, None), "description", json!(7)),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "var1", json!("v".repeat(101))),
            400,
            1010,
        ),
        (
            with(order("v", 100, None), "var3", json!("v".repeat(101))),
            400,
            1010,
        ),
        (
            with(order("v", 100, None), "gateway", json!("g".repeat(51))),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "capture", json!("later")),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "customer", json!("jan")),
            400,
            1000,
        ),
        (
            with(
                order("v", 100, None),
                "gateway_info",
                json!({"card_number": "4242424242424241"}),
            ),
            400,
            1000,
        ),
        (
            with(
                order("v", 100, None),
                "gateway_info",
                json!({"card_number": true}),
            ),
            400,
            1000,
        ),
        (
            with(
                order("v", 100, None),
                "gateway_info",
                json!({"card_expiry_date": "3013"}),
            ),
            400,
            1000,
        ),
        (
            with(order("v", 100, None), "gateway_info", json!({"cvc": "12"})),
            400,
            1000,
        ),
        (
            with(
                order("v", 100, None),
                "gateway_info",
                json!({"card_holder_name": "n".repeat(256)}),
            ),
            400,
            1000,
        ),
        (
            with(
                order("v", 100, None),
                "payment_options",
                json!({"redirect_url": "u".repeat(2049)}),
            ),
            400,
            1000,
        ),
    ];
    for (body, http, code) in cases {
        let (status, answer) = post(&app, "/orders", body.clone()).await;
        assert_eq!(status.as_u16(), http, "{body} -> {answer}");
        assert_error(status, &answer, http, code);
    }
    let malformed = msp_as(
        &app,
        &app.merchant.multisafepay_api_key,
        Method::POST,
        "/orders",
    )
    .header("content-type", "application/json")
    .body("{\"type\":")
    .send()
    .await
    .unwrap();
    let status = malformed.status();
    assert_error(status, &malformed.json().await.unwrap(), 400, 1000);
    let huge = msp_as(
        &app,
        &app.merchant.multisafepay_api_key,
        Method::POST,
        "/orders",
    )
    .body(vec![b' '; 64 * 1024 + 1])
    .send()
    .await
    .unwrap();
    let status = huge.status();
    assert_error(status, &huge.json().await.unwrap(), 413, 1000);
    // Nothing was created.
    let list = json_of(app.get("/v1/orders").await).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // Limits are inclusive; integer order ids, digit-string amounts, unknown fields and
    // automatic capture are accepted.
    let mut edge = order(&"o".repeat(50), 100, None);
    edge["description"] = json!("d".repeat(200));
    edge["var1"] = json!("v".repeat(100));
    edge["plugin"] = json!({"shop": "x"});
    edge["shopping_cart"] = json!({"items": []});
    create_ok(&app, edge).await;
    let mut numeric = order("x", 100, None);
    numeric["order_id"] = json!(424242);
    numeric["amount"] = json!("100");
    numeric.as_object_mut().unwrap().remove("capture");
    let data = create_ok(&app, numeric).await;
    assert_eq!(data["order_id"], 424242);
    assert_eq!(data["financial_status"], "completed");
    let (_, read) = get(&app, "/orders/424242").await;
    assert_eq!(read["data"]["capture"], Value::Null);
    assert_eq!(read["data"]["status"], "completed");
    app.assert_ledger_consistent().await;
}

async fn create_ok(app: &TestApp, body: Value) -> Value {
    let (status, answer) = post(app, "/orders", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["data"].clone()
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn without(mut body: Value, field: &str) -> Value {
    body.as_object_mut().unwrap().remove(field);
    body
}

#[tokio::test]
async fn test_cards_decide_and_declined_orders_read_declined() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for (card, code) in [
        (DECLINE, 1024),
        (INSUFFICIENT_FUNDS, 1017),
        (PROCESSOR_ERROR, 1021),
    ] {
        let order_id = format!("card-{card}");
        let (status, body) = post(&app, "/orders", order(&order_id, 1000, Some(card))).await;
        assert_error(status, &body, 402, code);
        let (status, read) = get(&app, &format!("/orders/{order_id}")).await;
        assert_eq!(status, 200);
        assert_eq!(read["data"]["status"], "declined");
        assert_eq!(read["data"]["financial_status"], "declined");
        let (status, refused) =
            capture(&app, &order_id, json!({"new_order_status": "completed"})).await;
        assert_error(status, &refused, 409, 1022);
    }
    // Spaces in the card number are ignored.
    create(&app, "spaced", 1000, Some("4242 4242 4242 4242")).await;

    create(&app, "full-only", 1000, Some(FULL_CAPTURE_ONLY)).await;
    let (status, partial) = capture(
        &app,
        "full-only",
        json!({"amount": 500, "new_order_status": "completed"}),
    )
    .await;
    assert_error(status, &partial, 422, 1001);
    let (status, _) = capture(&app, "full-only", json!({"new_order_status": "completed"})).await;
    assert_eq!(status, 200);

    create(&app, "cap-declined", 1000, Some(CAPTURE_DECLINED)).await;
    let (status, declined) = capture(
        &app,
        "cap-declined",
        json!({"new_order_status": "completed"}),
    )
    .await;
    assert_error(status, &declined, 402, 1024);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn capture_validates_every_field() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    create(&app, "cv", 1000, None).await;
    create(&app, "other-order", 1000, None).await;
    let ok = json!({"amount": 100, "new_order_status": "completed"});
    let cases: Vec<(Value, u16, i64)> = vec![
        (json!({"amount": 100}), 400, 1016),
        (
            with(ok.clone(), "new_order_status", json!("shipped")),
            400,
            1000,
        ),
        (with(ok.clone(), "amount", json!(1001)), 422, 1001),
        (with(ok.clone(), "amount", json!(0)), 400, 1001),
        (with(ok.clone(), "amount", json!(1.5)), 400, 1001),
        (with(ok.clone(), "amount", json!(-1)), 400, 1001),
        (with(ok.clone(), "amount", json!("1e2")), 400, 1001),
        (
            with(ok.clone(), "new_order_id", json!("n".repeat(51))),
            400,
            1000,
        ),
        (with(ok.clone(), "new_order_id", json!(-5)), 400, 1000),
        (
            with(ok.clone(), "new_order_id", json!("other-order")),
            409,
            1006,
        ),
        (
            with(ok.clone(), "invoice_id", json!("i".repeat(51))),
            400,
            1000,
        ),
        (
            with(ok.clone(), "tracktrace_code", json!("t".repeat(256))),
            400,
            1000,
        ),
        (
            with(ok.clone(), "carrier", json!("c".repeat(256))),
            400,
            1000,
        ),
        (
            with(ok.clone(), "reason", json!("r".repeat(256))),
            400,
            1000,
        ),
        (with(ok.clone(), "memo", json!("m".repeat(256))), 400, 1000),
        (
            with(ok.clone(), "description", json!("d".repeat(201))),
            400,
            1008,
        ),
        (with(ok.clone(), "checkout_data", json!([1])), 400, 1000),
        (with(ok.clone(), "surprise", json!(1)), 400, 1000),
    ];
    for (body, http, code) in cases {
        let (status, answer) = capture(&app, "cv", body.clone()).await;
        assert_eq!(status.as_u16(), http, "{body} -> {answer}");
        assert_error(status, &answer, http, code);
    }
    let (status, empty) = send(&app, Method::POST, "/orders/cv/capture", None).await;
    assert_error(status, &empty, 400, 1016);
    let (status, missing) = capture(&app, "nope", ok.clone()).await;
    assert_error(status, &missing, 404, 1006);
    let (status, missing) =
        capture(&app, "nope", with(ok.clone(), "new_order_id", json!("n1"))).await;
    assert_error(status, &missing, 404, 1006);
    let read = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "cv").await))
            .await,
    )
    .await;
    assert_eq!(read["captured_amount"], 0);

    // Inclusive limits.
    let edge = json!({"amount": 100, "new_order_status": "completed",
        "new_order_id": "n".repeat(50), "invoice_id": "i".repeat(50),
        "tracktrace_code": "t".repeat(255), "carrier": "c".repeat(255),
        "reason": "r".repeat(255), "memo": "m".repeat(255), "description": "d".repeat(200)});
    let (status, answer) = capture(&app, "cv", edge).await;
    assert_eq!(status, 200, "{answer}");
    // Omitted amount captures everything left; the response names the order itself.
    let (status, rest) = capture(&app, "cv", json!({"new_order_status": "completed"})).await;
    assert_eq!(status, 200);
    assert_eq!(rest["data"]["order_id"], "cv");
    let read = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "cv").await))
            .await,
    )
    .await;
    assert_eq!(read["captured_amount"], 1000);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn retries_replay_and_reused_ids_are_refused() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let body = order("idem", 1000, None);
    let first = create(&app, "idem", 1000, None).await;
    let replay = msp_as(
        &app,
        &app.merchant.multisafepay_api_key,
        Method::POST,
        "/orders",
    )
    .json(&body)
    .send()
    .await
    .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json_of(replay).await["data"]["transaction_id"],
        first["transaction_id"]
    );
    let (status, taken) = post(&app, "/orders", order("idem", 999, None)).await;
    assert_error(status, &taken, 409, 1006);
    // An order_id taken by a native order.
    app.post("/v1/orders", order_body("native-ref", 500, APPROVE))
        .await;
    let (status, taken) = post(&app, "/orders", order("native-ref", 500, None)).await;
    assert_error(status, &taken, 409, 1006);

    let cap = json!({"amount": 300, "new_order_id": "idem-c1", "new_order_status": "completed"});
    let (status, a) = capture(&app, "idem", cap.clone()).await;
    assert_eq!(status, 200);
    let (status, b) = capture(&app, "idem", cap.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(a, b);
    let (status, reused) = capture(&app, "idem", with(cap.clone(), "amount", json!(200))).await;
    assert_error(status, &reused, 409, 1006);
    create(&app, "idem-2", 1000, None).await;
    let (status, reused) = capture(&app, "idem-2", cap.clone()).await;
    assert_error(status, &reused, 409, 1006);

    // A new_order_id is taken only by a capture that moved money: a refused capture leaves it
    // free for the corrected retry, and reading it finds nothing meanwhile.
    create(&app, "idem-3", 1000, None).await;
    let too_much =
        json!({"amount": 1700, "new_order_id": "idem-3-c", "new_order_status": "completed"});
    let (status, refused) = capture(&app, "idem-3", too_much.clone()).await;
    assert_eq!(status, 422, "{refused}");
    let (status, _) = get(&app, "/orders/idem-3-c").await;
    assert_eq!(status, 404);
    let (status, corrected) =
        capture(&app, "idem-3", with(too_much.clone(), "amount", json!(600))).await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["data"]["order_id"], "idem-3-c");
    // The same capture again, written with other whitespace and key order, replays.
    let text = r#"{ "new_order_status" : "completed", "new_order_id":"idem-3-c",  "amount": 600 }"#;
    let replay = msp_as(
        &app,
        &app.merchant.multisafepay_api_key,
        Method::POST,
        "/orders/idem-3/capture",
    )
    .header("content-type", "application/json")
    .body(text)
    .send()
    .await
    .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    // Idempotency-Key on refunds.
    let refund = |key: &'static str, amount: i64| {
        msp_as(
            &app,
            &app.merchant.multisafepay_api_key,
            Method::POST,
            "/orders/idem/refunds",
        )
        .header("idempotency-key", key)
        .json(&json!({"amount": amount, "currency": "EUR"}))
        .send()
    };
    let one = refund("r-1", 100).await.unwrap();
    assert_eq!(one.status(), 200);
    let again = refund("r-1", 100).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let other = refund("r-1", 50).await.unwrap();
    let status = other.status();
    assert_error(status, &other.json().await.unwrap(), 422, 1000);
    let bad = msp_as(
        &app,
        &app.merchant.multisafepay_api_key,
        Method::POST,
        "/orders/idem/refunds",
    )
    .header("idempotency-key", "k".repeat(256))
    .json(&json!({"amount": 1}))
    .send()
    .await
    .unwrap();
    let status = bad.status();
    assert_error(status, &bad.json().await.unwrap(), 400, 1000);
    let read = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "idem").await))
            .await,
    )
    .await;
    assert_eq!(read["captured_amount"], 300);
    assert_eq!(read["refunded_amount"], 100);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn cancel_reservation_and_order_updates() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    create(&app, "cr", 1000, None).await;
    capture(
        &app,
        "cr",
        json!({"amount": 400, "new_order_status": "completed"}),
    )
    .await;
    // The Python SDK sends unset fields as null.
    let (status, cancelled) = send(
        &app,
        Method::PATCH,
        "/capture/cr",
        Some(json!({"status": "cancelled", "reason": null})),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["data"]["order_id"], "cr");
    assert!(cancelled["data"]["transaction_id"].is_i64());
    let (_, read) = get(&app, "/orders/cr").await;
    assert_eq!(read["data"]["status"], "completed");
    assert_eq!(read["data"]["financial_status"], "completed");
    let native = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "cr").await))
            .await,
    )
    .await;
    assert_eq!(native["released_amount"], 600);
    assert_eq!(native["capturable_amount"], 0);
    let (status, again) = send(
        &app,
        Method::PATCH,
        "/capture/cr",
        Some(json!({"status": "cancelled", "reason": "again"})),
    )
    .await;
    assert_error(status, &again, 409, 1022);

    create(&app, "cr2", 1000, None).await;
    for (body, code) in [
        (Some(json!({"reason": "x"})), 1016),
        (None, 1016),
        (Some(json!({"status": "completed"})), 1000),
        (
            Some(json!({"status": "cancelled", "reason": "r".repeat(256)})),
            1000,
        ),
        (Some(json!({"status": "cancelled", "extra": 1})), 1000),
    ] {
        let (status, answer) = send(&app, Method::PATCH, "/capture/cr2", body).await;
        assert_error(status, &answer, 400, code);
    }
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/capture/cr2",
        Some(json!({"status": "cancelled", "reason": "out of stock", "description": "d"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, read) = get(&app, "/orders/cr2").await;
    assert_eq!(read["data"]["status"], "void");
    assert_eq!(read["data"]["financial_status"], "void");
    let (status, none) = send(
        &app,
        Method::PATCH,
        "/capture/missing",
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_error(status, &none, 404, 1006);

    // PATCH /orders: cancelled voids; shipping details alone are accepted.
    create(&app, "up", 1000, None).await;
    let (status, ok) = send(
        &app,
        Method::PATCH,
        "/orders/up",
        Some(
            json!({"tracktrace_code": "T1", "carrier": "PostNL", "ship_date": "2025-01-01",
                    "plugin": {"shop": "node"}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok, json!({"success": true, "data": {}}));
    let (status, bad) = send(
        &app,
        Method::PATCH,
        "/orders/up",
        Some(json!({"status": "shipped"})),
    )
    .await;
    assert_error(status, &bad, 400, 1000);
    let (status, bad) = send(
        &app,
        Method::PATCH,
        "/orders/up",
        Some(json!({"carrier": "c".repeat(256)})),
    )
    .await;
    assert_error(status, &bad, 400, 1000);
    let (status, ok) = send(
        &app,
        Method::PATCH,
        "/orders/up",
        Some(json!({"status": "cancelled", "exclude_order": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok, json!({"success": true, "data": {}}));
    let (_, read) = get(&app, "/orders/up").await;
    assert_eq!(read["data"]["status"], "void");
    let (status, again) = send(
        &app,
        Method::PATCH,
        "/orders/up",
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_error(status, &again, 409, 1022);
    let (status, none) = send(
        &app,
        Method::PATCH,
        "/orders/none",
        Some(json!({"carrier": "x"})),
    )
    .await;
    assert_error(status, &none, 404, 1006);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn refunds_validate_their_fields() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    create(&app, "rf", 1000, None).await;
    let (status, nothing) = post(&app, "/orders/rf/refunds", json!({"amount": 100})).await;
    assert_error(status, &nothing, 409, 1034);
    capture(&app, "rf", json!({"new_order_status": "completed"})).await;
    for (body, http, code) in [
        (json!({"currency": "EUR"}), 400, 1016),
        (json!({"amount": 0}), 400, 1001),
        (json!({"amount": 1.25}), 400, 1001),
        (json!({"amount": 100, "currency": "USD"}), 400, 1002),
        (json!({"amount": 100, "currency": "XYZ"}), 400, 1002),
        (
            json!({"amount": 100, "description": "d".repeat(201)}),
            400,
            1008,
        ),
        (json!({"amount": 100, "whatever": 1}), 400, 1000),
        (json!({"amount": 1001}), 422, 1034),
    ] {
        let (status, answer) = post(&app, "/orders/rf/refunds", body.clone()).await;
        assert_eq!(status.as_u16(), http, "{body} -> {answer}");
        assert_error(status, &answer, http, code);
    }
    let (status, missing) = post(
        &app,
        "/orders/none/refunds",
        json!({"amount": 1, "currency": "EUR"}),
    )
    .await;
    assert_error(status, &missing, 404, 1006);
    let (status, ok) = post(
        &app,
        "/orders/rf/refunds",
        json!({"amount": "1000", "currency": "EUR", "description": "all",
               "checkout_data": {"items": []}}),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["data"]["transaction_id"], ok["data"]["refund_id"]);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn other_merchants_orders_are_not_found() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    create(&app, "mine", 1000, None).await;
    capture(
        &app,
        "mine",
        json!({"amount": 100, "new_order_id": "mine-c1", "new_order_status": "completed"}),
    )
    .await;
    let other = app.new_merchant().await;
    let key = &other.multisafepay_api_key;
    for (method, path, body) in [
        (Method::GET, "/orders/mine", None),
        (Method::GET, "/orders/mine-c1", None),
        (
            Method::POST,
            "/orders/mine/capture",
            Some(json!({"new_order_status": "completed"})),
        ),
        (
            Method::POST,
            "/orders/mine/refunds",
            Some(json!({"amount": 1, "currency": "EUR"})),
        ),
        (
            Method::PATCH,
            "/capture/mine",
            Some(json!({"status": "cancelled"})),
        ),
        (
            Method::PATCH,
            "/orders/mine",
            Some(json!({"status": "cancelled"})),
        ),
    ] {
        let (status, answer) = send_as(&app, key, method, path, body).await;
        assert_error(status, &answer, 404, 1006);
    }
    // The other merchant may reuse the same order_id.
    let (status, _) = send_as(
        &app,
        key,
        Method::POST,
        "/orders",
        Some(order("mine", 10, None)),
    )
    .await;
    assert_eq!(status, 200);
    let native = json_of(
        app.get(&format!("/v1/orders/{}", created_id(&app, "mine").await))
            .await,
    )
    .await;
    assert_eq!(native["captured_amount"], 100);
    assert_eq!(native["capturable_amount"], 900);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_multisafepay_shape() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (status, body) = get(&app, "/nothing/here").await;
    assert_error(status, &body, 404, 1000);
    let (status, body) = send(&app, Method::DELETE, "/orders/x", None).await;
    assert_error(status, &body, 405, 1000);
    let (status, body) = get(&app, "/orders/x/capture").await;
    assert_error(status, &body, 405, 1000);
    let (status, body) = get(&app, "/orders/unknown").await;
    assert_error(status, &body, 404, 1006);
}

#[tokio::test]
async fn native_orders_and_captures_show_through_the_dialect() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let native = app
        .post("/v1/orders", order_body("from-native", 1000, APPROVE))
        .await;
    let id = json_of(native).await["id"].as_str().unwrap().to_owned();
    let (status, read) = get(&app, "/orders/from-native").await;
    assert_eq!(status, 200);
    assert_eq!(read["data"]["financial_status"], "initialized");
    assert_eq!(read["data"]["description"], Value::Null);
    assert_eq!(read["data"]["payment_details"]["type"], "VISA");
    app.post(
        &format!("/v1/orders/{id}/captures"),
        json!({"amount": 300, "reference": "n-cap"}),
    )
    .await;
    let (_, sub) = get(&app, "/orders/n-cap").await;
    assert_eq!(sub["data"]["amount"], 300);
    let (status, _) = capture(
        &app,
        "from-native",
        json!({"new_order_status": "completed"}),
    )
    .await;
    assert_eq!(status, 200);
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(read["status"], "captured");
    assert_eq!(read["captures"][1]["amount"], 700);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn expired_authorizations_read_void() {
    let config = Config {
        authorization_ttl: Duration::from_millis(600),
        ..Config::default()
    };
    let Some(app) = TestApp::spawn_with(config).await else {
        return;
    };
    create(&app, "exp", 1000, None).await;
    app.advance(Duration::from_millis(700)).await;
    let (_, read) = get(&app, "/orders/exp").await;
    assert_eq!(read["data"]["status"], "void");
    assert_eq!(read["data"]["financial_status"], "void");
    let (status, refused) = capture(&app, "exp", json!({"new_order_status": "completed"})).await;
    assert_error(status, &refused, 409, 1022);
    let (status, refused) = send(
        &app,
        Method::PATCH,
        "/capture/exp",
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_error(status, &refused, 409, 1022);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let base = format!("{}/multisafepay/v1/", app.base);
    run_sdk_script(
        "multisafepay_sdk.py",
        &[&base, &app.merchant.multisafepay_api_key],
    )
    .await;
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_wrapper() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let base = format!("{}/multisafepay/v1/json/", app.base);
    run_sdk_script(
        "multisafepay_node.js",
        &[&base, &app.merchant.multisafepay_api_key],
    )
    .await;
    app.assert_ledger_consistent().await;
}
